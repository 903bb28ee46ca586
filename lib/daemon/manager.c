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
#include "fetch/fetch.h"
#include "log.h"
#include "manager.h"
#include "sidekiq.h"

bool sq_manager_busy(sq_runtime *rt)
{
    for (int i = 0; i < rt->nworkers; i++) {
        if (sq_slot_busy(rt->workers[i].slot))
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

/* The strategy's requeue for every job in one round trip where it can (basic
 * fetch, as Sidekiq's bulk_requeue: a slow Redis gets them all back in the
 * time one takes); done[i] says which are back. The rest go one by one. */
static void requeue_pipelined(sq_runtime *rt, const sq_unit *units, int n, bool *done)
{
    if (rt->fetch->requeue_append == NULL)
        return;
    int queued = 0;
    int *which = calloc(n > 0 ? (size_t)n : 1, sizeof *which);
    if (which == NULL)
        return;
    for (int i = 0; i < n; i++) {
        sq_error err = {0};
        if (units[i].raw == NULL || units[i].queue == NULL)
            continue;
        if (rt->fetch->requeue_append(rt->redis, &units[i], &err) != 0)
            break;
        which[queued++] = i;
    }
    for (int k = 0; k < queued; k++) {
        sq_error err = {0};
        redisReply *rep = sq_redis_pipe_reply(rt->redis, &err);
        if (rep == NULL) {
            sq_log(SQ_LOG_ERROR, "pushing back a job from %s failed: %s", units[which[k]].queue,
                   err.message);
            if (!sq_redis_is_connected(rt->redis))
                break;
            continue;
        }
        done[which[k]] = true;
        freeReplyObject(rep);
    }
    free(which);
}

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
        if (sq_slot_abandon(w->slot, &units[n]))
            owners[n++] = w;
    }
    double until = sq__monotonic() + REQUEUE_BUDGET;
    bool dead = false;
    bool *done = calloc(cap, sizeof *done);
    if (done != NULL)
        requeue_pipelined(rt, units, n, done);
    for (int i = 0; i < n; i++) {
        bool ok = done != NULL && done[i];
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
            sq_log(SQ_LOG_ERROR, "a running job from queue %s was not pushed back; %s",
                   units[i].queue ? units[i].queue : "?", rt->fetch->not_pushed_back);
        sq_unit_clear(&units[i]);
    }
    free(units);
    free(owners);
    free(done);
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
        if ((w->slot = sq_slot_new()) == NULL)
            return -1;
        sq__random_bytes(&w->rng, sizeof w->rng);
        w->rng |= 1;
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
        if (w->client == NULL || (rt->fetch->worker_init && rt->fetch->worker_init(w) != 0))
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
        if (rt->fetch->worker_free != NULL)
            rt->fetch->worker_free(w);
        sq_client_free(w->client);
        sq_redis_free(w->redis);
        for (size_t q = 0; w->keys && q < rt->order.nqueues; q++)
            free(w->keys[q]);
        free(w->keys);
        free(w->skip_until);
        free(w->order);
        free(w->scratch);
        pthread_mutex_destroy(&w->lock);
        sq_slot_free(w->slot);
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
            bool abandoned = sq_slot_state_now(w->slot) == SQ_SLOT_ABANDONED;
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

/* TTIN: a line for the pool, then one per worker saying what it runs. */
struct dump_line {
    const char *tid;
    double now;
};

static void dump_worker(const sq_slot_view *v, void *ud)
{
    const struct dump_line *d = ud;
    static const char *const states[] = {"idle", "running", "recording the result of",
                                         "abandoned (pushed back)"};
    if (v->state == SQ_SLOT_IDLE)
        sq_log(SQ_LOG_INFO, "TTIN: %s idle", d->tid);
    else
        sq_log(SQ_LOG_INFO, "TTIN: %s %s class=%s jid=%s queue=%s for %.1f s", d->tid,
               states[v->state], v->klass, v->jid, v->unit->queue ? v->unit->queue : "?",
               d->now - v->started_at);
}

void sq_manager_dump(sq_runtime *rt, unsigned signals, double every)
{
    double now = sq__now();
    char note[96] = "";
    if (signals > 1)
        snprintf(note, sizeof note, " (%u TTIN signals coalesced: at most one dump every %.0f s)",
                 signals, every);
    sq_log(SQ_LOG_INFO, "TTIN: %d workers, quiet=%s%s", rt->nworkers,
           atomic_load(&rt->quiet) ? "true" : "false", note);
    for (int i = 0; i < rt->nworkers; i++) {
        struct dump_line d = {rt->workers[i].tid, now};
        sq_slot_peek(rt->workers[i].slot, dump_worker, &d);
    }
}

#define STUCK_MS 30000
/* Redis answering the heartbeat this long without a miss: a worker past
 * its longest back-off (5 s) and reply timeout (3 s) has fetched again. */
#define REDIS_MENDED_MS 10000

/* The watchdog's question: is every thread still turning? A worker inside a
 * handler may take as long as its job needs; one waiting for a job must come
 * round at least every few seconds (its blocking fetch is 2 s), Redis or no
 * Redis. The poller must wake when it said it would. */
bool sq_manager_progress(sq_runtime *rt, char *who, size_t size)
{
    long long now = sq_runtime_ms();
    if (atomic_load(&rt->quiet))
        return true; /* quiet: workers are done fetching; the main loop pings */
    for (int i = 0; i < rt->nworkers; i++) {
        sq_worker *w = &rt->workers[i];
        bool idle = sq_slot_state_now(w->slot) == SQ_SLOT_IDLE;
        if (idle && now - atomic_load(&w->alive_ms) > STUCK_MS) {
            snprintf(who, size, "%s", w->tid);
            return false;
        }
    }
    if (rt->poller_started && now > atomic_load(&rt->poller_due_ms)) {
        snprintf(who, size, "poller");
        return false;
    }
    /* Turning is not working: fetches failing for long while Redis answers
     * the heartbeat (a refused command, a broken script) will not mend by
     * waiting. A Redis outage is left to the back-off: restarting would not
     * bring Redis back. */
    char msg[200];
    long long failing = sq_runtime_fetch_failing(rt, msg, sizeof msg);
    long long mended = atomic_load(&rt->redis_ok_since_ms);
    if (failing > SQ_FETCH_FAILING_STUCK_MS &&
        atomic_load(&rt->redis_ok_ms) > now - failing + 1000 && mended > 0 &&
        now - mended > REDIS_MENDED_MS) {
        snprintf(who, size, "workers cannot fetch (for %lld s: %.120s)", failing / 1000, msg);
        return false;
    }
    return true;
}
