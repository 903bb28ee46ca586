/*
 * isolate.h: isolated mode (handlers in supervised worker processes) and
 * job timeouts in both modes (isolate.c and the files isolate_internal.h
 * lists).
 *
 * The parent keeps everything Redis: fetch, ack, retry, dead set, heartbeat,
 * poller, stats, signals. A worker thread hands its job's bytes to its own
 * worker process and waits for the outcome (class, message, disposition,
 * backtrace) with the job's deadline. Worker processes are forked by a fork
 * server, itself forked at start-up while the daemon still has one thread
 * (handlers already loaded), so no child ever inherits a lock some other
 * thread held. The parent knows which job each worker process holds (the
 * worker thread that waits for it): a process that dies fails that job
 * alone (Squire::WorkerCrashed), through the normal retry rules.
 */
#ifndef SQ_ISOLATE_H
#define SQ_ISOLATE_H

#include "runtime.h"

typedef struct sq_forksrv sq_forksrv;
typedef struct sq_isolation sq_isolation;

/* rt->iso: per-worker timeout state, and in isolated mode (cfg->isolated)
 * the fork server, started now: call while the process has a single thread,
 * with the handlers registered, rt->nworkers and rt->identity set. -1 with
 * err when it cannot be started. */
int sq_isolation_start(sq_runtime *rt, sq_error *err);
/* After the workers are gone: the fork server stopped (it kills the worker
 * processes it still has), rt->iso freed. */
void sq_isolation_stop(sq_runtime *rt);
/* Handlers run in worker processes. */
bool sq_isolated(const sq_runtime *rt);

/* The fork server itself. identity is the daemon's (the worker processes'
 * default application_name). */
sq_forksrv *sq_forksrv_start(const sq_config *cfg, sq_registry *reg, const char *identity,
                             sq_error *err);
/* False once the fork server has died (why: how), which no worker process
 * outlives: the daemon must then stop, to be started again. */
bool sq_forksrv_alive(sq_forksrv *fs, char *why, size_t size);
/* Close its socket (it kills the worker processes it still has and exits)
 * and reap it. NULL is a no-op. */
void sq_forksrv_stop(sq_forksrv *fs);

/* The seconds job may run: the payload's "squire_timeout" (a number > 0),
 * else the timeout its class was registered with, else the config's
 * job_timeout; 0 means no limit. */
double sq_job_timeout_for(const sq_job *job, const sq_registry *reg, const sq_config *cfg);

/* Isolated mode: run job in worker w's process (started, or replaced, as
 * needed); job->outcome gets the result. Returns 0 when the job ran (it
 * succeeded, failed, crashed its process or timed out), 1 when no worker
 * process could be had (err says why; the job did not run and goes back to
 * its queue). At a hard stop the process is killed and the result, whatever
 * it is, belongs to an abandoned slot. */
int sq_child_run(sq_worker *w, sq_job *job, double timeout, sq_error *err);
/* The worker thread is leaving: end its worker process. */
void sq_child_release(sq_worker *w);

/* Thread mode, around a handler call: its deadline (0: none), for
 * sq_job_stopping and the main thread's warning. _end returns whether the
 * handler saw sq_job_stopping say true for it. */
void sq__deadline_begin(sq_worker *w, const sq_job *job, double timeout);
bool sq__deadline_end(sq_worker *w);
/* For sq_job_stopping when the daemon is not (yet) stopping. Thread mode:
 * true once w's running job is past its deadline. In a worker process:
 * true once the daemon is shutting down (w->saw_stop set). */
bool sq__job_late(sq_worker *w);
/* Main thread, each turn. Thread mode: log once per job that one is past
 * its deadline. Isolated: false once the fork server has died (logged),
 * when the daemon must stop. */
bool sq_isolate_watch(sq_runtime *rt);

/* Call a handler in this thread: the PostgreSQL connection goes back to the
 * pool, a failure without a message becomes Squire::Error, the message is
 * scrubbed of the database password and cut. processor.c calls it in
 * thread mode, a worker process in isolated mode. */
void sq__handler_call(sq_worker *w, sq_job *job, sq_handler_fn fn, void *ud);

#endif
