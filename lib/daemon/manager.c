/*
 * manager.c: the worker pool, as Sidekiq's Manager: the workers' slots and
 * connections made, their threads (and the poller's) started, joined and
 * freed, and at hard shutdown the jobs still running pushed back.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "common.h"
#include "log.h"
#include "manager.h"
#include "sidekiq.h"

bool sq_manager_busy(sq_runtime *rt)
{
    for (int i = 0; i < rt->nworkers; i++) {
        sq_worker *w = &rt->workers[i];
        pthread_mutex_lock(&w->lock);
        bool busy = w->state == SQ_SLOT_RUNNING || w->state == SQ_SLOT_FINISHING;
        pthread_mutex_unlock(&w->lock);
        if (busy)
            return true;
    }
    return false;
}

/* Hard shutdown: push every job still running back to the front of its
 * queue. Slots are taken over under their locks (RUNNING -> ABANDONED, so the
 * worker drops its result later); the writes happen outside any lock, within
 * one overall budget, and stop once the connection is known dead: a frozen
 * Redis must not hold the exit past Heroku's 30 s. In reliable mode a job
 * that could not be pushed back stays in its working list for recovery. */
#define REQUEUE_BUDGET 5.0

int sq_manager_requeue_running(sq_runtime *rt)
{
    size_t cap = rt->nworkers > 0 ? (size_t)rt->nworkers : 1;
    sq_unit *units = calloc(cap, sizeof *units);
    sq_worker **owners = calloc(cap, sizeof *owners);
    int n = 0, pushed = 0;
    if (units == NULL || owners == NULL) {
        free(units), free(owners);
        sq_log(SQ_LOG_ERROR, "out of memory pushing running jobs back");
        return 0;
    }
    for (int i = 0; i < rt->nworkers; i++) {
        sq_worker *w = &rt->workers[i];
        pthread_mutex_lock(&w->lock);
        if (w->state == SQ_SLOT_RUNNING) {
            w->state = SQ_SLOT_ABANDONED;
            units[n].raw = malloc(w->unit.len + 1);
            units[n].queue = sq__strdup(w->unit.queue);
            units[n].len = w->unit.len;
            units[n].qidx = w->unit.qidx;
            if (units[n].raw != NULL)
                memcpy(units[n].raw, w->unit.raw, w->unit.len + 1);
            owners[n++] = w;
        }
        pthread_mutex_unlock(&w->lock);
    }
    double until = sq__monotonic() + REQUEUE_BUDGET;
    bool dead = false;
    for (int i = 0; i < n; i++) {
        bool ok = false;
        for (int attempt = 0; attempt < 2 && !ok && !dead && units[i].raw && units[i].queue &&
                              sq__monotonic() < until;
             attempt++) {
            sq_error err = {0};
            ok = rt->fetch->requeue(owners[i], rt->redis, &units[i], &err) == 0;
            if (!ok) {
                sq_log(SQ_LOG_ERROR, "pushing back a job from %s failed: %s", units[i].queue,
                       err.message);
                dead = !sq_redis_is_connected(rt->redis) && attempt == 1;
            }
        }
        if (ok)
            pushed++;
        else
            sq_log(SQ_LOG_ERROR, "a running job from queue %s was not pushed back%s",
                   units[i].queue ? units[i].queue : "?",
                   rt->fetch == &sq_fetch_reliable ? "; it stays in its working list and another "
                                                     "process will recover it"
                                                   : "; it is lost (use fetch: reliable)");
        sq_unit_clear(&units[i]);
    }
    free(units);
    free(owners);
    return pushed;
}

int sq_manager_prepare(sq_runtime *rt)
{
    rt->workers = calloc((size_t)rt->nworkers, sizeof *rt->workers);
    if (rt->workers == NULL)
        return -1;
    for (int i = 0; i < rt->nworkers; i++) {
        sq_worker *w = &rt->workers[i];
        w->rt = rt;
        w->index = i;
        snprintf(w->tid, sizeof w->tid, "w%d", i);
        pthread_mutex_init(&w->lock, NULL);
        sq__random_bytes(&w->rng, sizeof w->rng);
        w->rng |= 1;
        w->scan_stranded = true; /* cheap once, and correct after any restart */
        atomic_store(&w->alive_ms, sq_runtime_ms());
        /* BRPOP blocks 2 s; the socket waits longer. */
        w->redis = sq_redis_new(&rt->url, 3.0);
        w->order = calloc(rt->order.nqueues, sizeof *w->order);
        w->scratch = calloc(sq_queue_order_scratch_len(&rt->order), sizeof *w->scratch);
        w->keys = calloc(rt->order.nqueues, sizeof *w->keys);
        w->skip_until = calloc(rt->order.nqueues, sizeof *w->skip_until);
        if (!w->redis || !w->order || !w->scratch || !w->keys || !w->skip_until)
            return -1;
        for (size_t q = 0; q < rt->order.nqueues; q++) {
            w->keys[q] = sq_queue_key_dup(rt->order.names[q]);
            if (w->keys[q] == NULL)
                return -1;
        }
        w->client = sq__client_borrow(w->redis);
        w->wkeys = calloc(rt->order.nqueues, sizeof *w->wkeys);
        if (w->client == NULL || w->wkeys == NULL)
            return -1;
        for (size_t q = 0; q < rt->order.nqueues; q++)
            if ((w->wkeys[q] = sq_working_list_key(rt->identity, w->tid, rt->order.names[q])) ==
                NULL)
                return -1;
    }
    return 0;
}

int sq_manager_start(sq_runtime *rt)
{
    for (int i = 0; i < rt->nworkers; i++) {
        sq_worker *w = &rt->workers[i];
        int e = pthread_create(&w->thread, NULL, sq_processor_main, w);
        if (e != 0)
            return e;
        w->started = true;
        char name[24]; /* the kernel keeps 15 chars: "squire-w999" fits */
        snprintf(name, sizeof name, "squire-%.8s", w->tid);
        name[15] = '\0';
        pthread_setname_np(w->thread, name);
    }
    atomic_store(&rt->poller_due_ms, sq_runtime_ms() + 60000);
    int e = pthread_create(&rt->poller, NULL, sq_scheduler_main, rt);
    if (e != 0)
        return e;
    rt->poller_started = true;
    pthread_setname_np(rt->poller, "squire-poller");
    return 0;
}

void sq_manager_free(sq_runtime *rt)
{
    for (int i = 0; rt->workers && i < rt->nworkers; i++) {
        sq_worker *w = &rt->workers[i];
        sq_client_free(w->client);
        sq_redis_free(w->redis);
        for (size_t q = 0; w->keys && q < rt->order.nqueues; q++)
            free(w->keys[q]);
        for (size_t q = 0; w->wkeys && q < rt->order.nqueues; q++)
            free(w->wkeys[q]);
        free(w->keys);
        free(w->wkeys);
        free(w->ack_raw);
        free(w->skip_until);
        free(w->order);
        free(w->scratch);
        pthread_mutex_destroy(&w->lock);
    }
    free(rt->workers);
    rt->workers = NULL;
}

/* Join threads that have finished within wait seconds. A worker whose job
 * was abandoned (still inside its handler) is not waited for: the process
 * ends past it. Returns true when every thread was joined. */
bool sq_manager_join(sq_runtime *rt, double wait)
{
    double until = sq__monotonic() + wait;
    bool all = true;
    for (int i = 0; i < rt->nworkers; i++) {
        sq_worker *w = &rt->workers[i];
        if (!w->started)
            continue;
        bool done = false;
        for (;;) {
            done = pthread_tryjoin_np(w->thread, NULL) == 0;
            pthread_mutex_lock(&w->lock);
            bool abandoned = w->state == SQ_SLOT_ABANDONED;
            pthread_mutex_unlock(&w->lock);
            if (done || abandoned || sq__monotonic() > until)
                break;
            sq__sleep(0.02);
        }
        if (done)
            w->started = false;
        else
            all = false;
    }
    if (rt->poller_started) {
        for (;;) {
            if (pthread_tryjoin_np(rt->poller, NULL) == 0) {
                rt->poller_started = false;
                break;
            }
            if (sq__monotonic() > until) {
                all = false;
                break;
            }
            sq__sleep(0.02);
        }
    }
    return all;
}
