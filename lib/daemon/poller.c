/*
 * poller.c: the poller. Moves due members of the `retry` and `schedule`
 * zsets onto their queues, like Sidekiq's Scheduled::Poller, but wakes when
 * a job is due rather than on Sidekiq's random 2.5-7.5 s cadence.
 *
 * A pass reads up to BATCH due members at a time with ZRANGEBYSCORE,
 * rewrites each (enqueued_at = now) in C, and moves it with one script that
 * only pushes if its ZREM removed that exact member. The pop and the push
 * are one atomic step, so no job is lost between them and, with any number
 * of squire and Sidekiq pollers on one Redis, each member is moved exactly
 * once. Like Sidekiq's (Client#push), it reads any valid JSON, numbers
 * beyond int64 or double included (their text is kept as written), and
 * sends a member without `queue` to `default`. A member that cannot be read
 * (not JSON, a `queue` that is not a usable name) goes to the dead set the
 * same way; Sidekiq's push raises on those and loses them.
 *
 * Between passes the poller only peeks: one pipelined round trip of two
 * O(log n) commands reads the earliest member of each zset. A head that is
 * due starts a pass (then a new peek); otherwise the poller sleeps until the
 * earliest of
 *   (a) the earliest head's score: jobs already in a zset run on time;
 *   (b) a check tick, uniform in [0.5, 1) s, so that a job added after the
 *       peek is found within a second;
 *   (c) Sidekiq 7's interval: poll_interval_average, or
 *       average_scheduled_poll_interval x (number of processes), times a
 *       random [0.5, 1.5) (fewer than 10 processes) or [0, 1). Reaching it
 *       runs a pass whatever the peek says.
 * An explicit poll_interval_average is the cadence the user asked for: no
 * check ticks (b), and no initial wait (as Sidekiq). Otherwise the first
 * look comes after one tick, not Sidekiq's 10-15 s: a peek is too cheap to
 * need spreading out across a fleet that restarts together.
 *
 * Members that a pass saw due and had to leave in place (their queue key has
 * the wrong type, or a failure stopped the pass) would keep the head due and
 * the poller spinning. So the peek only looks above seen[z], the time the
 * last pass over z started; such members are retried by the pass at (c).
 * So is a member added with a score in the past behind them, which no
 * Sidekiq client writes (perform_at with a past time pushes to the queue).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "log.h"
#include "payload.h"
#include "runtime.h"
#include "sidekiq.h"

#define BATCH 100
#define NZSETS 2
#define TICK_MIN 0.5     /* check tick: uniform in [TICK_MIN, 2 x TICK_MIN) s */
#define MAX_NAP 3600.0   /* longer waits are split (watchdog stamp, huge intervals) */
#define WAKE_SLACK 0.001 /* wake just after a head's score, not just before */

static const char *const zsets[NZSETS] = {SQ_KEY_RETRY, SQ_KEY_SCHEDULE};

typedef struct poller {
    sq_runtime *rt;
    sq_redis *r;
    bool cadence;        /* poll_interval_average set: no check ticks */
    double seen[NZSETS]; /* wall clock the last pass over each zset started */
    unsigned outage;     /* failed passes or peeks in a row */
} poller;

/* The moves are sq_script_zset_to_queue / _to_dead (scripts.c): type-checked
 * before anything is removed, so a wrong-typed key never loses a member. */

/* Move member m to the dead set as payload (plen bytes; m itself when NULL). */
static int bury(sq_runtime *rt, sq_redis *r, const char *zset, const char *m, size_t len,
                const char *payload, size_t plen, sq_error *err)
{
    sq_dead_limits lim = sq_config_dead_limits(rt->cfg);
    sq_dead_args a;
    sq_dead_args_make(sq__now(), &lim, &a);
    const char *argv[] = {zset, SQ_KEY_DEAD, m, a.score, a.cutoff, a.max, payload};
    size_t lens[] = {strlen(zset), 4, len, strlen(a.score), strlen(a.cutoff), strlen(a.max), plen};
    redisReply *rep =
        sq_redis_eval(r, &sq_script_zset_to_dead, 2, payload ? 7 : 6, argv, lens, err);
    if (rep == NULL)
        return -1;
    bool wrongtype = rep->type == REDIS_REPLY_INTEGER && rep->integer < 0;
    freeReplyObject(rep);
    if (wrongtype) {
        sq__error_set(err, SQ_EREDIS, "WRONGTYPE the dead key is not a sorted set");
        return -1;
    }
    return 0;
}

/* A wrong-typed queue key: logged at most once a minute, member left in place. */
static void warn_wrongtype(sq_runtime *rt, const char *key)
{
    static _Thread_local double last;
    (void)rt;
    double now = sq__monotonic();
    if (last == 0 || now - last > 60) {
        last = now;
        sq_log(SQ_LOG_ERROR,
               "poller: %.300s has the wrong type; due jobs that need it stay "
               "where they are until the key is fixed",
               key);
    }
}

/* Move one due member. Returns 1 moved, 0 someone else took it, -1 error. */
static int move_one(sq_runtime *rt, sq_redis *r, const char *zset, const char *m, size_t len,
                    sq_error *err)
{
    json_t *obj = NULL;
    char why[160];
    bool absent = false;
    int st = sq_json_load_bounded(m, len, &rt->limits, &obj, why, sizeof why);
    if (st < 0) {
        sq__error_set(err, SQ_ENOMEM, "cannot read a %s entry", zset);
        return -1;
    }
    const char *queue = obj != NULL ? sq_payload_queue(obj, &absent) : NULL;
    if (queue == NULL) {
        if (obj != NULL)
            snprintf(why, sizeof why, "queue is not a usable queue name");
        /* an object gets the reason, as a worker buries a bad shape or an
         * oversized payload; anything else goes as its raw bytes */
        size_t plen = 0;
        char *payload =
            st != SQ_JOB_NOT_JSON ? sq_json_mark_invalid(m, len, why, sq__now(), &plen) : NULL;
        json_decref(obj);
        sq_error e = {0};
        int rc = bury(rt, r, zset, m, len, payload, plen, &e);
        free(payload);
        if (rc == 0) {
            sq_log(SQ_LOG_WARN, "unreadable %s entry (%s) moved to the dead set", zset, why);
            return 1;
        }
        if (sq_redis_error_is(&e, "WRONGTYPE")) {
            warn_wrongtype(rt, SQ_KEY_DEAD);
            return 0;
        }
        sq__error_set(err, e.code, "%s", e.message);
        return -1;
    }
    size_t newlen = 0;
    char *moved = sq_payload_enqueued(m, len, obj, sq__now(), &newlen);
    if (moved == NULL) {
        json_decref(obj);
        sq__error_set(err, SQ_ENOMEM, "cannot rewrite a %s entry", zset);
        return -1;
    }
    char key[SQ_QUEUE_KEY_MAX];
    size_t klen = sq_queue_key(key, sizeof key, queue);
    const char *argv[] = {zset, key, SQ_KEY_QUEUES, m, moved, queue};
    size_t lens[] = {strlen(zset), klen, 6, len, newlen, strlen(queue)};
    redisReply *rep = sq_redis_eval(r, &sq_script_zset_to_queue, 3, 6, argv, lens, err);
    free(moved);
    json_decref(obj);
    if (rep == NULL)
        return -1;
    long long rc = rep->type == REDIS_REPLY_INTEGER ? rep->integer : 0;
    freeReplyObject(rep);
    if (rc < 0) {
        warn_wrongtype(rt, rc == -1 ? key : SQ_KEY_QUEUES);
        return 0;
    }
    return rc == 1;
}

/* One pass over one zset. Members that cannot move (their queue key has the
 * wrong type) stay at the front of the due range; the offset skips past them
 * so they do not hold back the others. Returns members moved, or -1. */
static long enqueue_due(sq_runtime *rt, sq_redis *r, const char *zset, sq_error *err)
{
    long total = 0, stuck = 0;
    char now[32];
    for (;;) {
        if (atomic_load(&rt->quiet))
            return total;
        sq_format_time(sq__now(), now);
        redisReply *rep =
            sq_redis_cmd(r, err, "ZRANGEBYSCORE %s -inf %s LIMIT %ld %d", zset, now, stuck, BATCH);
        if (rep == NULL)
            return -1;
        if (rep->type != REDIS_REPLY_ARRAY) {
            freeReplyObject(rep);
            return total;
        }
        size_t n = rep->elements;
        for (size_t i = 0; i < n; i++) {
            redisReply *m = rep->element[i];
            if (m->type != REDIS_REPLY_STRING)
                continue;
            int rc = move_one(rt, r, zset, m->str, m->len, err);
            if (rc < 0) {
                freeReplyObject(rep);
                return -1;
            }
            total += rc;
            stuck += rc == 0;
        }
        freeReplyObject(rep);
        if (n < BATCH)
            return total;
    }
}

/* Sidekiq's wait before the next full pass (one SCARD unless
 * poll_interval_average is set). */
static double pass_interval(sq_runtime *rt, sq_redis *r)
{
    const sq_config *cfg = rt->cfg;
    long procs = 1;
    double interval = cfg->poll_interval_average;
    if (interval <= 0) {
        redisReply *rep = sq_redis_cmd(r, NULL, "SCARD " SQ_KEY_PROCESSES);
        if (rep != NULL && rep->type == REDIS_REPLY_INTEGER && rep->integer > 1)
            procs = (long)rep->integer;
        if (rep)
            freeReplyObject(rep);
        interval = (double)procs * cfg->average_scheduled_poll_interval;
    }
    double u = (double)sq__rand(1000000, NULL) / 1e6;
    return procs < 10 ? interval * u + interval / 2 : interval * u;
}

static double check_tick(void)
{
    return TICK_MIN + TICK_MIN * (double)sq__rand(1000000, NULL) / 1e6;
}

/* The earliest member of each zset above seen[z], in one round trip.
 * *head gets the earliest of their scores (wall clock), INFINITY when there
 * is none; a zset whose key has the wrong type has none. Returns 0, or -1
 * with err set when Redis could not be asked (the connection is dropped). */
static int peek(poller *pl, double *head, sq_error *err)
{
    for (int z = 0; z < NZSETS; z++) {
        char ts[32], min[40] = "-inf";
        if (isfinite(pl->seen[z]))
            snprintf(min, sizeof min, "(%s", sq_format_time(pl->seen[z], ts));
        if (sq_redis_pipe_cmd(pl->r, err, "ZRANGEBYSCORE %s %s +inf WITHSCORES LIMIT 0 1", zsets[z],
                              min) != 0)
            return -1;
    }
    *head = INFINITY;
    for (int z = 0; z < NZSETS; z++) {
        sq_error e = {0};
        redisReply *rep = sq_redis_pipe_reply(pl->r, &e);
        if (rep == NULL) {
            if (sq_redis_is_connected(pl->r))
                continue; /* an error reply (WRONGTYPE): no head */
            sq__error_set(err, e.code, "%s", e.message);
            return -1;
        }
        if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 &&
            rep->element[1]->type == REDIS_REPLY_STRING) {
            double score = strtod(rep->element[1]->str, NULL);
            if (score < *head)
                *head = score;
        }
        freeReplyObject(rep);
    }
    return 0;
}

/* A full pass: retry, then schedule, independently (trouble with one, a
 * wrong-typed key, must not stop the other), and seen[z] advanced for each.
 * A lost connection ends the pass there (back off, then pass again).
 * Returns 0, or -1 with err set (the first failure). */
static int pass(poller *pl, sq_error *err)
{
    int rc = 0;
    for (int z = 0; z < NZSETS; z++) {
        double start = sq__now();
        if (enqueue_due(pl->rt, pl->r, zsets[z], err) < 0) {
            rc = -1;
            if (!sq_redis_is_connected(pl->r))
                break;
        }
        pl->seen[z] = start;
    }
    return rc;
}

/* Seconds until the next look: the earliest of the head's score (wall
 * clock), a check tick (unless poll_interval_average sets the cadence) and
 * the next full pass (monotonic). */
static double next_wake(const poller *pl, double head, double full_at)
{
    double wait = full_at - sq__monotonic();
    if (!pl->cadence) {
        double tick = check_tick();
        if (tick < wait)
            wait = tick;
    }
    double until_head = head - sq__now() + WAKE_SLACK; /* INFINITY when none */
    if (until_head < wait)
        wait = until_head;
    return wait > 0 ? wait : 0;
}

/* Sleep, with the watchdog stamp set past the wake-up and then past the
 * work that follows it. Returns true when quiet. */
static bool nap(sq_runtime *rt, double wait)
{
    if (wait > MAX_NAP)
        wait = MAX_NAP;
    if (wait > 0) {
        atomic_store(&rt->poller_due_ms, sq_runtime_ms() + (long long)(wait * 1000) + 30000);
        if (sq_runtime_nap(rt, wait))
            return true;
    }
    atomic_store(&rt->poller_due_ms, sq_runtime_ms() + 60000);
    return atomic_load(&rt->quiet);
}

/* Log an outage once when it starts; true when the connection is down. */
static bool failed(poller *pl, const sq_error *err)
{
    if (pl->outage++ == 0)
        sq_log(SQ_LOG_WARN, "poller: %s", err->message);
    return !sq_redis_is_connected(pl->r);
}

void *sq_scheduler_main(void *arg)
{
    sq_runtime *rt = arg;
    poller pl = {.rt = rt,
                 .r = sq_redis_new(&rt->url, 3.0),
                 .cadence = rt->cfg->poll_interval_average > 0,
                 .seen = {-INFINITY, -INFINITY}};

    sq_log_thread_name("poller");
    if (pl.r == NULL) {
        sq_log(SQ_LOG_ERROR, "poller: out of memory; scheduled jobs will not be moved");
        return NULL;
    }
    double wait = pl.cadence ? 0 : check_tick();
    double full_at = 0; /* monotonic: the next pass whatever the peek says */
    while (!nap(rt, wait)) {
        sq_error err = {0};
        double head = INFINITY;
        bool full = sq__monotonic() >= full_at;
        int rc = full ? 0 : peek(&pl, &head, &err);
        if (rc == 0 && (full || head <= sq__now())) {
            full = true;
            rc = pass(&pl, &err);
        }
        if (rc < 0 && failed(&pl, &err)) {
            wait = sq_redis_backoff(pl.outage);
            full_at = 0; /* pass again once Redis answers */
            continue;
        }
        if (full)
            full_at = sq__monotonic() + pass_interval(rt, pl.r);
        if (full && rc == 0 && pl.outage > 0) {
            sq_log(SQ_LOG_INFO, "poller: moving due jobs again");
            pl.outage = 0;
        }
        /* after a pass, peek again at once: something may have come due */
        wait = full ? 0 : next_wake(&pl, head, full_at);
    }
    sq_redis_free(pl.r);
    return NULL;
}
