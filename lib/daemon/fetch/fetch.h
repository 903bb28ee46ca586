/*
 * fetch/fetch.h: a fetch strategy, as Sidekiq's BasicFetch and the reliable
 * fetchers: how a worker takes a job, writes its outcome, gives it back, and
 * what the strategy needs from the worker pool, the main thread and Redis.
 */
#ifndef SQ_FETCH_H
#define SQ_FETCH_H

#include "runtime.h"

/* A fetch strategy: Sidekiq's BRPOP ("basic") or the reliable working list. */
struct sq_fetch_ops {
    const char *name;
    /* 1 and *u filled: a job; 0: nothing within the block timeout; -1: error. */
    int (*fetch)(sq_worker *w, sq_unit *u, sq_error *err);
    /* The job finished (success, or its failure was recorded elsewhere). */
    int (*ack)(sq_worker *w, const sq_unit *u, sq_error *err);
    /* Replace the job by `payload` in zset `retry` at score. */
    int (*retry)(sq_worker *w, const sq_unit *u, double score, const char *payload, size_t len,
                 sq_error *err);
    /* Replace the job by `payload` in the dead set (trimmed). */
    int (*dead)(sq_worker *w, const sq_unit *u, const char *payload, size_t len, sq_error *err);
    /* Give worker w's job back to the front of its queue, on redis r (the
     * worker's own, or the main thread's at hard shutdown). */
    int (*requeue)(sq_worker *w, sq_redis *r, const sq_unit *u, sq_error *err);
    /* Optional: requeue's command queued on r's pipeline (sq_redis_pipe_*),
     * so that hard shutdown pushes every job back in one round trip, as
     * Sidekiq's bulk_requeue does; a reply that is not an error means it is
     * back. 0, or -1 with err. */
    int (*requeue_append)(sq_redis *r, const sq_unit *u, sq_error *err);
    /* The worker is leaving its loop: write anything still pending. */
    int (*finish)(sq_worker *w, sq_error *err);

    /* What the strategy needs and what becomes of jobs, declared here so
     * that nothing outside fetch/ asks which strategy runs. */
    /* INFO's redis_version is enough (NULL: any Sidekiq's 4.0+ does); false
     * with why: squire cannot run against this server. */
    bool (*server_ok)(const char *version, char *why, size_t size);
    /* A running job's copy is in Redis: Redis without AOF is worth a warning. */
    bool keeps_running_jobs;
    /* What becomes of a job that could not be pushed back at hard shutdown,
     * and of one whose result could not be written at exit (log words). */
    const char *not_pushed_back;
    const char *unwritten_at_exit;

    /* Per worker (NULL: nothing): its state made before its thread starts,
     * freed after it ended (also when half made). */
    int (*worker_init)(sq_worker *w);
    void (*worker_free)(sq_worker *w);

    /* The main thread's duties (NULL: none). attach: before the first
     * fetch; 0 done, 1 Redis unreachable (called again after a back-off),
     * -1 fatal (err). tick: each turn of the main loop, and while shutdown
     * waits for running jobs (stopping); returns the most seconds the main
     * thread may wait before the next. detach: at the end; release: after
     * shutdown has joined what it could (give back what is registered);
     * frees rt->fetch_main (called again without release: nothing left). */
    int (*attach)(sq_runtime *rt, sq_error *err);
    double (*tick)(sq_runtime *rt, bool stopping);
    void (*detach)(sq_runtime *rt, bool release);
};

/* The strategy the config names. */
const sq_fetch_ops *sq_fetch_for(sq_fetch_mode mode);

/* Shared by the fetch strategies (fetch.c): drop set-aside queues from
 * w->order[0..n) and return how many are left; set queue q aside. */
size_t sq__usable_queues(sq_worker *w, size_t n);
bool sq__set_aside_queue(sq_worker *w, size_t q);
/* True, with err set, when every queue is set aside: the worker can fetch
 * nothing, which is a failing fetch (heartbeat, watchdog), not an idle one. */
bool sq__no_usable_queue(sq_worker *w, sq_error *err);

#endif
