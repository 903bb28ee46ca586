/*
 * beat.c: the main thread's periodic duties, which the launcher's loop
 * calls: the heartbeat with the stats and metrics flushes that go with it,
 * the Busy page's refresh between beats, the process title, and the
 * systemd watchdog (pinged only while every thread is seen to progress).
 */
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>

#include "beat.h"
#include "common.h"
#include "database.h"
#include "log.h"
#include "manager.h"
#include "metrics.h"
#include "notify.h"
#include "observe.h"
#include "proctitle.h"
#include "runtime.h"

/* Ping systemd's watchdog when due, only while progress is seen. */
void sq_beat_watchdog(sq_runtime *rt, double *next)
{
    double period = sq_notify_watchdog_period();
    if (period <= 0 || sq__monotonic() < *next)
        return;
    *next = sq__monotonic() + period;
    char who[200];
    bool was_stuck = rt->stuck;
    rt->stuck = !sq_manager_progress(rt, who, sizeof who);
    if (!rt->stuck) {
        sq_notify("WATCHDOG=1");
    } else {
        bool thread = strncmp(who, "workers", 7) != 0;
        if (!was_stuck) /* once per episode, not once per watchdog period */
            sq_log(SQ_LOG_ERROR, "%s%s%s: not pinging the watchdog", thread ? "thread " : "", who,
                   thread ? " is not making progress" : "");
        sq_notify_status("stuck: %s%s", thread ? "thread " : "", who);
    }
}

/* issue 16: the process title, as Sidekiq's: each beat, on quiet and stop. */
void sq_beat_title(sq_runtime *rt)
{
    char title[512];
    size_t room = sq_proctitle_room();
    sq_proctitle_format(title, room > 0 && room < sizeof title ? room + 1 : sizeof title,
                        rt->cfg->tag, sq_runtime_busy(rt), rt->nworkers,
                        atomic_load(&rt->stopping) ? "stopping"
                        : atomic_load(&rt->quiet)  ? "quiet"
                                                   : NULL);
    sq_proctitle_set(title);
}

/* One heartbeat, with the stats flush that goes with it (as Sidekiq 7:
 * counts reach Redis each beat and at exit, and stay in memory when a flush
 * fails). Returns the remote signal the beat brought (0: none). */
int sq_beat(sq_runtime *rt)
{
    sq_error err = {0}, serr = {0};
    int sig = 0;
    if (sq_stats_flush(rt, rt->redis, &serr) != 0)
        sq_log(SQ_LOG_DEBUG, "stats flush deferred: %s", serr.message);
    sq_error merr = {0}; /* issue 16: the Metrics tab, each beat */
    if (sq_metrics_flush(rt->metrics, rt->redis, &merr) < 0)
        sq_log(SQ_LOG_DEBUG, "metrics flush failed: %s", merr.message);
    if (sq_heartbeat_beat(rt, &sig, &err) != 0) {
        sq_log(SQ_LOG_DEBUG, "heartbeat failed: %s", err.message);
        atomic_store(&rt->redis_ok_since_ms, 0); /* issue 17 */
    } else {
        atomic_store(&rt->redis_ok_ms, sq_runtime_ms());
        long long none = 0; /* issue 17: the first good beat after a failed one */
        atomic_compare_exchange_strong(&rt->redis_ok_since_ms, &none, sq_runtime_ms());
        sq_database_budget(rt, true);
        sq_error oerr = {0}; /* issue 17: queue gauges, at a bounded cadence */
        if (sq_observe_sample(rt, &oerr) != 0)
            sq_log(SQ_LOG_DEBUG, "metrics sample: %s", oerr.message);
    }
    char msg[200];
    long long failing = sq_runtime_fetch_failing(rt, msg, sizeof msg);
    if (failing >= SQ_FETCH_FAILING_SHOW_MS)
        sq_notify_status("fetch failing for %lld s: %s", failing / 1000, msg);
    else
        sq_notify_status("%s%d of %d busy", atomic_load(&rt->quiet) ? "quiet, " : "",
                         sq_runtime_busy(rt), rt->nworkers);
    sq_beat_title(rt);
    return sig;
}

/* issue 16: between beats, the work hash when a job passed a second or a
 * shown one left (heartbeat.c), and the process title with it. */
void sq_beat_refresh(sq_runtime *rt)
{
    sq_error err = {0};
    sq_database_budget(rt, false); /* the server's limits, when they come */
    int rc = sq_heartbeat_refresh(rt, &err);
    if (rc < 0)
        sq_log(SQ_LOG_DEBUG, "busy refresh failed: %s", err.message);
    else if (rc > 0)
        sq_beat_title(rt);
}
