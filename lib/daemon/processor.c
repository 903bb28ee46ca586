/*
 * processor.c: a worker thread. Fetch a job, run its handler, record the
 * result (ack, retry, dead), repeat until quiet.
 *
 * No job is dropped because Redis is unreachable at the moment its result
 * must be written: the write is retried with backoff, holding the job, until
 * it succeeds or the process is told to stop at once (then, in basic fetch,
 * the loss is logged with the jid; reliable fetch keeps the job in Redis).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common.h"
#include "fetch/fetch.h"
#include "isolate.h"
#include "log.h"
#include "metrics.h"
#include "observe.h" /* issue 17 */
#include "payload.h"
#include "registry.h"
#include "runtime.h"

bool sq_job_stopping(const sq_job *job)
{
    if (job->worker == NULL)
        return false;
    if (!atomic_load(&job->worker->rt->stopping))
        return sq__job_late(job->worker); /* thread mode: past its timeout */
    job->worker->saw_stop = true; /* a failure now is an interruption */
    return true;
}

struct pg_conn *sq_job_db(sq_job *job)
{
    sq_worker *w = job->worker;
    if (w == NULL)
        return NULL;
    if (w->db != NULL)
        return w->db;
    sq_error err = {0};
    if (w->rt->pgpool == NULL)
        sq__error_set(&err, SQ_ECONFIG, "no database configured (database: url, or $DATABASE_URL)");
    else
        w->db = sq_pgpool_checkout(w->rt->pgpool, &err);
    if (w->db == NULL)
        sq_outcome_fail(&job->outcome, "Squire::DatabaseUnavailable", err.message);
    return w->db;
}

sq_client *sq_job_client(sq_job *job)
{
    return job->worker != NULL ? job->worker->client : NULL;
}

void sq_job_log(const sq_job *job, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    sq_log_job(SQ_LOG_INFO, job, "%s", msg);
}

typedef int (*write_fn)(sq_worker *w, const sq_unit *u, const void *arg, sq_error *err);

static int write_requeue(sq_worker *w, const sq_unit *u, const void *arg, sq_error *err);

/* Run a result write until it succeeds; Redis outages only delay it. At a
 * hard stop, a write that still fails (a wrong-typed retry key, say) falls
 * back to pushing the job back to its queue, so it runs again rather than
 * vanish. */
static int persist(sq_worker *w, const sq_unit *u, const char *what, const char *jid, write_fn fn,
                   const void *arg)
{
    double began = 0;
    for (unsigned attempt = 0;; attempt++) {
        sq_error err = {0};
        if (fn(w, u, arg, &err) == 0) {
            if (attempt > 0)
                sq_log(SQ_LOG_INFO, "%s for jid=%s written after %.1f s", what, jid,
                       sq__monotonic() - began);
            return 0;
        }
        if (attempt == 0) {
            began = sq__monotonic();
            sq_log(SQ_LOG_WARN, "%s for jid=%s failed, will retry: %s", what, jid, err.message);
        }
        if (atomic_load(&w->rt->hard_stop)) {
            sq_error rq = {0};
            if (fn != write_requeue && write_requeue(w, u, NULL, &rq) == 0) {
                sq_log(SQ_LOG_WARN,
                       "%s for jid=%s not written at exit (%s); the job was pushed "
                       "back to its queue instead",
                       what, jid, err.message);
                return 0;
            }
            sq_log(SQ_LOG_ERROR, "%s for jid=%s abandoned at exit: %s (%s)", what, jid, err.message,
                   w->rt->fetch->unwritten_at_exit);
            return -1;
        }
        sq_runtime_rest(w->rt, sq_redis_backoff(attempt));
    }
}

struct zset_write {
    double score;
    const char *payload;
    size_t len;
};

static int write_ack(sq_worker *w, const sq_unit *u, const void *arg, sq_error *err)
{
    (void)arg;
    return w->rt->fetch->ack(w, u, err);
}

/* A `retry` key of another type (not an outage: it stays so until someone
 * fixes it) would hold the job, and soon every worker, forever; the job goes
 * to the dead set instead, error fields and all, where it can be retried
 * from. Only a dead key of the wrong type too leaves it held. */
static int write_retry(sq_worker *w, const sq_unit *u, const void *arg, sq_error *err)
{
    const struct zset_write *z = arg;
    if (w->rt->fetch->retry(w, u, z->score, z->payload, z->len, err) == 0)
        return 0;
    if (!sq_redis_error_is(err, "WRONGTYPE"))
        return -1;
    sq_error dead = {0};
    if (w->rt->fetch->dead(w, u, z->payload, z->len, &dead) != 0)
        return -1; /* err still says why the retry failed */
    char jid[64];
    sq_slot_jid(w->slot, jid);
    sq_log(SQ_LOG_ERROR, "retry has the wrong type (%s): jid=%s went to the dead set instead",
           err->message, jid);
    return 0;
}

static int write_dead(sq_worker *w, const sq_unit *u, const void *arg, sq_error *err)
{
    const struct zset_write *z = arg;
    return w->rt->fetch->dead(w, u, z->payload, z->len, err);
}

static int write_requeue(sq_worker *w, const sq_unit *u, const void *arg, sq_error *err)
{
    (void)arg;
    return w->rt->fetch->requeue(w, w->redis, u, err);
}

/* Take the slot back from RUNNING. False when shutdown already requeued it. */
static bool claim_result(sq_worker *w)
{
    return sq_slot_claim(w->slot);
}

static void release_slot(sq_worker *w, sq_unit *u)
{
    sq_slot_release(w->slot);
    sq_unit_clear(u);
}

/* A payload that can never run goes to the dead set at once: with the
 * reason in its error fields when it is an object (a bad shape, or one over
 * a limit, which is left unparsed), else as its raw bytes. */
static void bury_invalid(sq_worker *w, sq_unit *u, sq_job *job, sq_job_status status,
                         const char *reason)
{
    struct zset_write z = {0};
    char *payload = NULL;
    if (status == SQ_JOB_BAD_SHAPE || status == SQ_JOB_OVER_LIMIT)
        payload = sq_job_invalid_payload(job, reason, sq__now(), &z.len);
    if (payload != NULL) {
        z.payload = payload;
    } else {
        z.payload = u->raw; /* not JSON: the raw bytes, as Sidekiq does */
        z.len = u->len;
    }
    if (status == SQ_JOB_NOT_JSON && u->len <= w->rt->limits.max_payload_bytes)
        sq_log(SQ_LOG_WARN,
               "invalid job from queue %s moved to the dead set: %s; payload "
               "starts %.60s",
               u->queue, reason, u->raw);
    else if (status == SQ_JOB_BAD_SHAPE) /* class= and jid= as written, NULs and all */
        sq_log_job(SQ_LOG_WARN, job, "invalid job from queue %s moved to the dead set: %s",
                   u->queue, reason);
    else
        sq_log(SQ_LOG_WARN, "invalid job from queue %s moved to the dead set: %s", u->queue,
               reason);
    if (claim_result(w))
        persist(w, u, "dead-set entry", job->jid ? job->jid : "", write_dead, &z);
    free(payload);
}

/* Show a fetched job in the slot before anything else happens to it. False
 * when the process is going quiet: the slot is then FINISHING (busy, so the
 * shutdown waits) and the caller gives the job back. */
static bool publish(sq_worker *w, const sq_unit *u)
{
    return sq_slot_publish(w->slot, u, &w->rt->quiet);
}

/* Thread mode: a job that failed after sq_job_stopping told it its time was
 * up failed by its timeout, whatever it said. */
static void timed_out_cooperatively(sq_job *job, double timeout)
{
    sq_outcome *o = &job->outcome;
    char msg[600];
    snprintf(msg, sizeof msg, "the job ran past its timeout of %g s and stopped (thread mode): %s",
             timeout, o->error_message ? o->error_message : "");
    sq_disposition d = o->disposition;
    double in = o->retry_in;
    sq_outcome_destroy(o);
    sq_outcome_fail(o, "Squire::JobTimeout", msg);
    o->disposition = d;
    o->retry_in = in;
}

/* What became of a job's handler call. */
enum ran { RAN, NO_PROCESS, NO_HANDLER };

/* Run the job's handler, here (thread mode) or in the worker's process
 * (isolated). NO_PROCESS: it could not run at all (no worker process), and
 * the job goes back to its queue. NO_HANDLER: no handler is registered for
 * its class (the job has failed). */
static enum ran run_handler(sq_worker *w, sq_job *job)
{
    void *ud = NULL;
    sq_handler_fn fn = sq_registry_lookup(w->rt->reg, job->klass, &ud);
    if (fn == NULL) {
        char msg[300];
        snprintf(msg, sizeof msg, "no handler registered for class %.200s", job->klass);
        sq_outcome_fail(&job->outcome, "Squire::NoHandler", msg);
        return NO_HANDLER;
    }
    double timeout = sq_job_timeout_for(job, w->rt->reg, w->rt->cfg);
    if (sq_isolated(w->rt)) {
        sq_error err = {0};
        if (sq_child_run(w, job, timeout, &err) == 0)
            return RAN;
        sq_log_job(SQ_LOG_ERROR, job, "cannot run: %s; the job goes back to its queue",
                   err.message);
        return NO_PROCESS;
    }
    sq__deadline_begin(w, job, timeout);
    sq__handler_call(w, job, fn, ud);
    if (sq__deadline_end(w) && job->outcome.failed && !w->saw_stop)
        timed_out_cooperatively(job, timeout);
    return RAN;
}

static void record_failure(sq_worker *w, sq_unit *u, sq_job *job, double elapsed)
{
    sq_runtime *rt = w->rt;
    const sq_outcome *o = &job->outcome;

    if (w->saw_stop) {
        /* Interrupted by shutdown: not a failure; it runs again after restart. */
        sq_log_job(SQ_LOG_INFO, job, "interrupted by shutdown after %.3f sec, pushed back",
                   elapsed);
        persist(w, u, "requeue", job->jid, write_requeue, NULL);
        return;
    }
    atomic_fetch_add(&rt->processed, 1);
    atomic_fetch_add(&rt->failed, 1);
    sq_observe_job(job->klass, job->klass_len, u->queue, elapsed, true); /* issue 17 */

    sq_retry_plan plan = {0};
    if (sq_retry_plan_make(job, sq__now(), rt->cfg->max_retries, sq_worker_rand, w, &plan) != 0) {
        sq_log_job(SQ_LOG_ERROR, job, "out of memory planning a retry; pushing the job back");
        persist(w, u, "requeue", job->jid, write_requeue, NULL);
        return;
    }
    struct zset_write z = {plan.at, plan.payload, plan.payload_len};
    switch (plan.action) {
    case SQ_RETRY_SCHEDULE:
        sq_log_job_result(SQ_LOG_WARN, job, elapsed, o->error_class, o->error_message,
                          "fail: %.3f sec: %s: %.200s (retry_count %d, next try in %.0f s)",
                          elapsed, o->error_class, o->error_message, plan.count,
                          plan.at - sq__now());
        persist(w, u, "retry", job->jid, write_retry, &z);
        break;
    case SQ_RETRY_DEAD:
        sq_log_job_result(SQ_LOG_WARN, job, elapsed, o->error_class, o->error_message,
                          "fail: %.3f sec: %s: %.200s (retries exhausted, adding to "
                          "the dead set)",
                          elapsed, o->error_class, o->error_message);
        persist(w, u, "dead-set entry", job->jid, write_dead, &z);
        break;
    case SQ_RETRY_DROP:
        sq_log_job_result(SQ_LOG_WARN, job, elapsed, o->error_class, o->error_message,
                          "fail: %.3f sec: %s: %.200s (no retry, discarded)", elapsed,
                          o->error_class, o->error_message);
        persist(w, u, "ack", job->jid, write_ack, NULL);
        break;
    }
    sq_retry_plan_destroy(&plan);
}

static void process(sq_worker *w, sq_unit *u)
{
    sq_runtime *rt = w->rt;
    sq_job job;
    sq_job_status status = SQ_JOB_VALID;
    char reason[256] = "";

    memset(&job, 0, sizeof job);
    char *copy = malloc(u->len + 1);
    if (copy == NULL ||
        (memcpy(copy, u->raw, u->len + 1), sq_job_init(&job, copy, u->len, u->queue, &rt->limits,
                                                       &status, reason, sizeof reason) != 0)) {
        /* Out of memory: give the job back untouched and slow down. */
        sq_log(SQ_LOG_ERROR, "out of memory reading a job from %s; pushing it back", u->queue);
        if (claim_result(w))
            persist(w, u, "requeue", "", write_requeue, NULL);
        sq_job_destroy(&job);
        release_slot(w, u);
        sq_runtime_nap(rt, 1);
        return;
    }
    job.worker = w;
    w->saw_stop = false;

    sq_slot_name(w->slot, job.klass, job.jid);

    if (status != SQ_JOB_VALID) {
        bury_invalid(w, u, &job, status, reason);
    } else {
        if (job.jid_len == 0)
            sq_log_job(SQ_LOG_WARN, &job, "job has no jid");
        sq_log_job(SQ_LOG_INFO, &job, "start");
        double t0 = sq__monotonic();
        enum ran ran = run_handler(w, &job);
        double elapsed = sq__monotonic() - t0;
        /* issue 16: the Metrics tab counts runs of a handler, as Sidekiq's
         * middleware sees them (not a missing class, not an interruption:
         * a failure after the handler saw the stop; a success then counts) */
        if (ran == RAN && !(job.outcome.failed && w->saw_stop))
            sq_metrics_record(rt->metrics, w->index, job.klass, job.klass_len, job.outcome.failed,
                              (long long)(elapsed * 1000), time(NULL));
        if (!claim_result(w)) {
            sq_log_job(SQ_LOG_INFO, &job, "finished after shutdown pushed it back; result dropped");
        } else if (ran == NO_PROCESS) {
            persist(w, u, "requeue", job.jid, write_requeue, NULL);
            sq_runtime_nap(rt, 1);
        } else if (!job.outcome.failed) {
            atomic_fetch_add(&rt->processed, 1);
            sq_observe_job(job.klass, job.klass_len, u->queue, elapsed, false); /* issue 17 */
            long ms = (long)(elapsed * 1000 + 0.5); /* integer formatting: this line is hot */
            sq_log_job_result(SQ_LOG_INFO, &job, elapsed, NULL, NULL, "done: %ld.%03ld sec",
                              ms / 1000, ms % 1000);
            persist(w, u, "ack", job.jid, write_ack, NULL);
        } else {
            record_failure(w, u, &job, elapsed);
        }
    }
    sq_job_destroy(&job);
    release_slot(w, u);
}

/* A run of failed fetches begins: the heartbeat, the watchdog and --check
 * see it (heartbeat.c, manager.c); the log says so once for the process,
 * when the first worker fails, not once per worker. */
static void fetch_failing(sq_worker *w, const sq_error *err)
{
    pthread_mutex_lock(&w->lock);
    snprintf(w->fetch_error, sizeof w->fetch_error, "%.199s", err->message);
    pthread_mutex_unlock(&w->lock);
    atomic_store(&w->fetch_failing_ms, sq_runtime_ms());
    if (!atomic_exchange(&w->rt->fetch_outage, true))
        sq_log(SQ_LOG_WARN, "fetch failed: %s (said once until fetching works again)",
               err->message);
}

static void fetch_works(sq_worker *w)
{
    long long since = atomic_exchange(&w->fetch_failing_ms, 0);
    if (atomic_exchange(&w->rt->fetch_outage, false))
        sq_log(SQ_LOG_INFO, "fetching again after %.1f s",
               (double)(sq_runtime_ms() - since) / 1000.0);
}

void *sq_processor_main(void *arg)
{
    sq_worker *w = arg;
    sq_runtime *rt = w->rt;
    unsigned outage = 0;

    sq_log_thread_name(w->tid);
    while (!atomic_load(&rt->quiet)) {
        atomic_store(&w->alive_ms, sq_runtime_ms());
        sq_unit u = {0};
        sq_error err = {0};
        int got = rt->fetch->fetch(w, &u, &err);
        if (got == 0 && sq__no_usable_queue(w, &err))
            got = -1;
        if (got < 0) {
            if (outage++ == 0)
                fetch_failing(w, &err);
            sq_runtime_nap(rt, sq_redis_backoff(outage));
            continue;
        }
        if (outage > 0) {
            fetch_works(w);
            outage = 0;
        }
        if (got == 0)
            continue;
        if (!publish(w, &u)) {
            /* Fetched while going quiet: give it back unrun, at the front. */
            persist(w, &u, "requeue", "", write_requeue, NULL);
            release_slot(w, &u);
            break;
        }
        process(w, &u);
    }
    sq_child_release(w);
    /* Write what the fetch strategy still holds (reliable: the last ack). */
    for (unsigned attempt = 0;; attempt++) {
        sq_error err = {0};
        if (rt->fetch->finish(w, &err) == 0)
            break;
        if (atomic_load(&rt->hard_stop) || attempt >= 20) {
            sq_log(SQ_LOG_WARN, "last ack not written (%s); the job may run again", err.message);
            break;
        }
        sq_runtime_rest(rt, sq_redis_backoff(attempt));
    }
    return NULL;
}
