/*
 * scheduler.c: the poller. Moves due members of the `retry` and `schedule`
 * zsets onto their queues, like Sidekiq's Scheduled::Poller.
 *
 * Each round reads up to BATCH due members with ZRANGEBYSCORE, rewrites each
 * (enqueued_at = now) in C, and moves it with one script that only pushes if
 * its ZREM removed that exact member. The pop and the push are one atomic
 * step, so no job is lost between them and, with any number of squire and
 * Sidekiq pollers on one Redis, each member is moved exactly once.
 * A member that cannot be read (not JSON, no usable queue) goes to the dead
 * set the same way.
 *
 * Sleep between rounds follows Sidekiq 7: interval = poll_interval_average,
 * or average_scheduled_poll_interval * (number of processes); a random wait
 * in [0.5, 1.5) x interval (fewer than 10 processes) or [0, 1) x interval.
 */
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "log.h"
#include "runtime.h"

#define BATCH 100

/* The moves are sq_script_zset_to_queue / _to_dead (scripts.c): type-checked
 * before anything is removed, so a wrong-typed key never loses a member. */

static bool valid_queue_name(const char *q)
{
    size_t n = strlen(q);
    if (n == 0 || n > SQ_MAX_QUEUE_NAME)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)q[i] < 0x21 || q[i] == 0x7f)
            return false;
    return true;
}

static int bury(sq_runtime *rt, sq_redis *r, const char *zset, const char *m, size_t len,
                sq_error *err)
{
    char now[32], cutoff[32], max[32];
    double t = sq__now();
    sq_format_time(t, now);
    sq_format_time(t - (double)rt->cfg->dead_timeout_in_seconds, cutoff);
    snprintf(max, sizeof max, "%ld", rt->cfg->dead_max_jobs);
    const char *argv[] = {zset, "dead", m, now, cutoff, max};
    size_t lens[] = {strlen(zset), 4, len, strlen(now), strlen(cutoff), strlen(max)};
    redisReply *rep = sq_redis_eval(r, &sq_script_zset_to_dead, 2, 6, argv, lens, err);
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
    json_error_t jerr;
    json_t *obj = json_loadb(m, len, JSON_ALLOW_NUL, &jerr);
    const char *queue = obj ? json_string_value(json_object_get(obj, "queue")) : NULL;
    if (obj == NULL || !json_is_object(obj) || queue == NULL || !valid_queue_name(queue)) {
        json_decref(obj);
        sq_error e = {0};
        if (bury(rt, r, zset, m, len, &e) == 0) {
            sq_log(SQ_LOG_WARN, "unreadable %s entry (%s) moved to the dead set", zset,
                   obj == NULL ? "not JSON" : "no valid queue");
            return 1;
        }
        if (sq_redis_error_is(&e, "WRONGTYPE")) {
            warn_wrongtype(rt, "dead");
            return 0;
        }
        sq__error_set(err, e.code, "%s", e.message);
        return -1;
    }
    char ts[32];
    sq_json_member set[] = {{"enqueued_at", sq_format_time(sq__now(), ts)}};
    size_t newlen = 0;
    char *moved = sq_json_splice(m, len, set, 1, NULL, 0, &newlen);
    if (moved == NULL) {
        json_decref(obj);
        sq__error_set(err, SQ_ENOMEM, "cannot rewrite a %s entry", zset);
        return -1;
    }
    size_t qlen = strlen(queue);
    char key[qlen + 7];
    memcpy(key, "queue:", 6);
    memcpy(key + 6, queue, qlen + 1);
    const char *argv[] = {zset, key, "queues", m, moved, queue};
    size_t lens[] = {strlen(zset), qlen + 6, 6, len, newlen, qlen};
    redisReply *rep = sq_redis_eval(r, &sq_script_zset_to_queue, 3, 6, argv, lens, err);
    free(moved);
    json_decref(obj);
    if (rep == NULL)
        return -1;
    long long rc = rep->type == REDIS_REPLY_INTEGER ? rep->integer : 0;
    freeReplyObject(rep);
    if (rc < 0) {
        warn_wrongtype(rt, rc == -1 ? key : "queues");
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

static double next_wait(sq_runtime *rt, sq_redis *r)
{
    const sq_config *cfg = rt->cfg;
    long procs = 1;
    double interval = cfg->poll_interval_average;
    if (interval <= 0) {
        redisReply *rep = sq_redis_cmd(r, NULL, "SCARD processes");
        if (rep != NULL && rep->type == REDIS_REPLY_INTEGER && rep->integer > 1)
            procs = (long)rep->integer;
        if (rep)
            freeReplyObject(rep);
        interval = (double)procs * cfg->average_scheduled_poll_interval;
    }
    double u = (double)sq__rand(1000000, NULL) / 1e6;
    return procs < 10 ? interval * u + interval / 2 : interval * u;
}

void *sq_scheduler_main(void *arg)
{
    sq_runtime *rt = arg;
    const sq_config *cfg = rt->cfg;
    sq_redis *r = sq_redis_new(&rt->url, 3.0);
    unsigned outage = 0;

    sq_log_thread_name("poller");
    if (r == NULL) {
        sq_log(SQ_LOG_ERROR, "poller: out of memory; scheduled jobs will not be moved");
        return NULL;
    }
    /* Initial wait, as Sidekiq, so a fleet restarting together spreads out;
     * skipped when poll_interval_average is set explicitly. */
    double first =
        cfg->poll_interval_average > 0 ? 0 : 10.0 + 5.0 * (double)sq__rand(1000, NULL) / 1000.0;
    atomic_store(&rt->poller_due_ms, sq_runtime_ms() + (long long)(first * 1000) + 30000);
    sq_runtime_nap(rt, first);
    while (!atomic_load(&rt->quiet)) {
        atomic_store(&rt->poller_due_ms, sq_runtime_ms() + 60000);
        /* retry and schedule independently: trouble with one (a wrong-typed
         * key) must not stop the other */
        sq_error err = {0}, err2 = {0};
        long a = enqueue_due(rt, r, "retry", &err);
        long b = enqueue_due(rt, r, "schedule", &err2);
        if (a < 0 || b < 0) {
            const char *why = a < 0 ? err.message : err2.message;
            bool down = !sq_redis_is_connected(r);
            if (outage++ == 0)
                sq_log(SQ_LOG_WARN, "poller: %s", why);
            sq_runtime_nap(rt, down ? sq_redis_backoff(outage) : next_wait(rt, r));
            continue;
        }
        if (outage > 0)
            sq_log(SQ_LOG_INFO, "poller: moving due jobs again");
        outage = 0;
        double wait = next_wait(rt, r);
        atomic_store(&rt->poller_due_ms, sq_runtime_ms() + (long long)(wait * 1000) + 30000);
        sq_runtime_nap(rt, wait);
    }
    sq_redis_free(r);
    return NULL;
}
