/*
 * runtime.c: the primitives every daemon thread shares: sleeps that wake on
 * quiet or hard stop, raising those flags, the monotonic clock in ms, and
 * the worker slot with its rules (runtime.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "runtime.h"

/* Sleep on rt->cond until flag is set or seconds pass. */
static bool sleep_unless(sq_runtime *rt, atomic_bool *flag, double seconds)
{
    struct timespec ts = sq__deadline_in(seconds);
    pthread_mutex_lock(&rt->lock);
    while (!atomic_load(flag)) {
        if (pthread_cond_timedwait(&rt->cond, &rt->lock, &ts) == ETIMEDOUT)
            break;
    }
    pthread_mutex_unlock(&rt->lock);
    return atomic_load(flag);
}

bool sq_runtime_nap(sq_runtime *rt, double seconds)
{
    return sleep_unless(rt, &rt->quiet, seconds);
}

bool sq_runtime_rest(sq_runtime *rt, double seconds)
{
    return sleep_unless(rt, &rt->hard_stop, seconds);
}

static void raise_flag(sq_runtime *rt, atomic_bool *flag)
{
    pthread_mutex_lock(&rt->lock);
    atomic_store(flag, true);
    pthread_cond_broadcast(&rt->cond);
    pthread_mutex_unlock(&rt->lock);
}

void sq_runtime_quiet(sq_runtime *rt)
{
    raise_flag(rt, &rt->quiet);
}

void sq_runtime_hard_stop(sq_runtime *rt)
{
    raise_flag(rt, &rt->hard_stop);
}

long long sq_runtime_ms(void)
{
    return (long long)(sq__monotonic() * 1000);
}

unsigned sq_worker_rand(unsigned n, void *worker)
{
    sq_worker *w = worker;
    /* xorshift64*: fast, per thread, good enough for shuffles and jitter */
    uint64_t x = w->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    w->rng = x;
    uint64_t r = x * 2685821657736338717ULL;
    return n <= 1 ? 0 : (unsigned)((r >> 32) % n);
}

struct sq_slot {
    pthread_mutex_t lock; /* guards everything below; held by no one for long */
    sq_slot_state state;
    sq_unit unit; /* a shallow copy of the worker's job: it owns the bytes */
    char klass[128];
    char jid[64];
    double started_at;
};

sq_slot *sq_slot_new(void)
{
    sq_slot *s = calloc(1, sizeof *s);
    if (s != NULL)
        pthread_mutex_init(&s->lock, NULL);
    return s;
}

void sq_slot_free(sq_slot *s)
{
    if (s == NULL)
        return;
    pthread_mutex_destroy(&s->lock);
    free(s);
}

bool sq_slot_publish(sq_slot *s, const sq_unit *u, atomic_bool *quiet)
{
    pthread_mutex_lock(&s->lock);
    bool run = !atomic_load(quiet);
    s->unit = *u; /* shared view: the main thread may requeue it at shutdown */
    s->state = run ? SQ_SLOT_RUNNING : SQ_SLOT_FINISHING;
    s->klass[0] = s->jid[0] = '\0';
    s->started_at = sq__now();
    pthread_mutex_unlock(&s->lock);
    return run;
}

void sq_slot_name(sq_slot *s, const char *klass, const char *jid)
{
    pthread_mutex_lock(&s->lock);
    snprintf(s->klass, sizeof s->klass, "%s", klass ? klass : "?");
    snprintf(s->jid, sizeof s->jid, "%s", jid ? jid : "");
    pthread_mutex_unlock(&s->lock);
}

bool sq_slot_claim(sq_slot *s)
{
    pthread_mutex_lock(&s->lock);
    bool mine = s->state == SQ_SLOT_RUNNING;
    if (mine)
        s->state = SQ_SLOT_FINISHING;
    pthread_mutex_unlock(&s->lock);
    return mine;
}

void sq_slot_release(sq_slot *s)
{
    pthread_mutex_lock(&s->lock);
    s->state = SQ_SLOT_IDLE;
    s->unit = (sq_unit){0};
    s->klass[0] = s->jid[0] = '\0';
    pthread_mutex_unlock(&s->lock);
}

bool sq_slot_abandon(sq_slot *s, sq_unit *copy)
{
    pthread_mutex_lock(&s->lock);
    bool running = s->state == SQ_SLOT_RUNNING;
    if (running) {
        s->state = SQ_SLOT_ABANDONED;
        copy->raw = malloc(s->unit.len + 1);
        copy->queue = sq__strdup(s->unit.queue);
        copy->len = s->unit.len;
        copy->qidx = s->unit.qidx;
        if (copy->raw != NULL)
            memcpy(copy->raw, s->unit.raw, s->unit.len + 1);
    }
    pthread_mutex_unlock(&s->lock);
    return running;
}

void sq_slot_jid(sq_slot *s, char out[64])
{
    pthread_mutex_lock(&s->lock);
    snprintf(out, 64, "%s", s->jid);
    pthread_mutex_unlock(&s->lock);
}

sq_slot_state sq_slot_state_now(sq_slot *s)
{
    pthread_mutex_lock(&s->lock);
    sq_slot_state st = s->state;
    pthread_mutex_unlock(&s->lock);
    return st;
}

bool sq_slot_busy(sq_slot *s)
{
    sq_slot_state st = sq_slot_state_now(s);
    return st == SQ_SLOT_RUNNING || st == SQ_SLOT_FINISHING;
}

int sq_runtime_busy(sq_runtime *rt)
{
    int busy = 0;
    for (int i = 0; rt->workers && i < rt->nworkers; i++) {
        busy += sq_slot_busy(rt->workers[i].slot);
    }
    return busy;
}

void sq_slot_peek(sq_slot *s, void (*fn)(const sq_slot_view *v, void *ud), void *ud)
{
    pthread_mutex_lock(&s->lock);
    sq_slot_view v = {s->state, &s->unit, s->klass, s->jid, s->started_at};
    fn(&v, ud);
    pthread_mutex_unlock(&s->lock);
}
