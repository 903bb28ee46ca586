/*
 * job_call.c: the handler call both modes share, and job timeouts: the
 * deadline a thread-mode handler sees through sq_job_stopping, and the
 * daemon's shutdown as a worker process sees it.
 */
#include "isolate_internal.h"

#include <stdio.h>
#include <stdlib.h>

#include "registry.h"

/* Shared by the daemon and every worker process (MAP_SHARED, made before
 * the fork server): set when the daemon shuts down, read by sq_job_stopping
 * in a worker process. A flag in memory, not a signal, so that no handler's
 * sleep or read is cut short by it. */
atomic_bool *sq__shared_stop;

void sq__handler_call(sq_worker *w, sq_job *job, sq_handler_fn fn, void *ud)
{
    sq_result r = fn(job, ud);
    if (w->db != NULL) { /* back to the pool the moment the handler is done */
        sq_pgpool_checkin(w->rt->pgpool, w->db);
        w->db = NULL;
    }
    if (r != SQ_OK && !job->outcome.failed)
        sq_outcome_fail(&job->outcome, "Squire::Error",
                        "handler returned SQ_FAILED without calling sq_job_fail");
    char *safe = w->rt->pgpool && job->outcome.error_message
                     ? sq_pgpool_scrub(w->rt->pgpool, job->outcome.error_message)
                     : NULL;
    if (safe != NULL) { /* a handler's own connect error may quote the URL */
        free(job->outcome.error_message);
        job->outcome.error_message = safe;
    }
    /* cut only now: cut first, a long password would no longer match whole */
    sq_outcome_cut(&job->outcome);
}

double sq_job_timeout_for(const sq_job *job, const sq_registry *reg, const sq_config *cfg)
{
    const json_t *v = json_object_get(job->payload, "squire_timeout");
    if (json_is_number(v) && json_number_value(v) > 0)
        return json_number_value(v);
    double t = sq_registry_timeout(reg, job->klass);
    return t > 0 ? t : cfg->job_timeout;
}

void sq__deadline_begin(sq_worker *w, const sq_job *job, double timeout)
{
    worker_iso *wi = iso_of(w);
    if (wi == NULL)
        return;
    wi->saw_deadline = false;
    pthread_mutex_lock(&wi->lock);
    wi->timeout = timeout;
    wi->deadline = timeout > 0 ? sq__monotonic() + timeout : 0;
    wi->late_warned = false;
    snprintf(wi->klass, sizeof wi->klass, "%s", job->klass ? job->klass : "?");
    snprintf(wi->jid, sizeof wi->jid, "%s", job->jid ? job->jid : "");
    pthread_mutex_unlock(&wi->lock);
}

bool sq__deadline_end(sq_worker *w)
{
    worker_iso *wi = iso_of(w);
    if (wi == NULL)
        return false;
    pthread_mutex_lock(&wi->lock);
    wi->deadline = 0;
    pthread_mutex_unlock(&wi->lock);
    return wi->saw_deadline;
}

bool sq__job_late(sq_worker *w)
{
    if (sq__shared_stop != NULL && atomic_load(sq__shared_stop)) {
        w->saw_stop = true; /* a worker process: the daemon is shutting down */
        return true;
    }
    worker_iso *wi = iso_of(w);
    /* the deadline is written by this thread only: read without the lock */
    if (wi == NULL || wi->deadline <= 0 || sq__monotonic() < wi->deadline)
        return false;
    wi->saw_deadline = true;
    return true;
}
