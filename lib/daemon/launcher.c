/*
 * launcher.c: the daemon's life, from start-up to exit (sq_main in cli.c
 * calls it; the worker pool is manager.c).
 *
 * Order at start: config -> plugins -> signals blocked in every thread ->
 * Redis reachable (retrying with capped backoff; TERM still works) -> workers
 * and poller start. The main thread then waits for signals with sigtimedwait,
 * so no code runs in signal context at all, and flushes stats between them.
 *
 * Signals: TERM/INT stop (a second one skips the wait), TSTP quiets, TTIN
 * logs what every worker is running (at most once every 5 s). See runtime.h
 * for the shutdown order.
 */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "beat.h"
#include "common.h"
#include "database.h"
#include "fetch/fetch.h"
#include "httpd.h" /* issue 17: /metrics, /healthz, /readyz */
#include "isolate.h"
#include "launcher.h"
#include "log.h"
#include "manager.h"
#include "metrics.h"
#include "notify.h"
#include "observe.h" /* issue 17 */
#include "proctitle.h"
#include "registry.h"
#include "runtime.h"

#define UNWIND_WAIT 3.0
#define JOIN_WAIT 6.0
/* After -t, what a stop may still take (pushing running jobs back, joining
 * the threads, the last writes), whatever Redis does: Heroku and systemd
 * send SIGKILL 30 s after TERM, with Sidekiq's -t of 25. */
#define STOP_GRACE 4.0
/* The main thread's Redis calls wait twice this at most, the first probe
 * after a failure this long (sq_redis_set_probe), so that signals are acted
 * on within about a second whatever Redis does. */
#define MAIN_PROBE 0.5

void sq_launcher_signal_set(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGTSTP);
    sigaddset(set, SIGTTIN);
}

/* Wait up to seconds for one of our signals; 0 when none came. */
static int wait_signal(double seconds)
{
    sigset_t set;
    sq_launcher_signal_set(&set);
    struct timespec ts = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
    int sig = sigtimedwait(&set, NULL, &ts);
    return sig > 0 ? sig : 0;
}

static void make_identity(sq_runtime *rt)
{
    char host[256];
    const char *dyno = getenv("DYNO");
    if (dyno != NULL && dyno[0] != '\0') {
        snprintf(host, sizeof host, "%s", dyno);
    } else if (gethostname(host, sizeof host) != 0) {
        snprintf(host, sizeof host, "localhost");
    }
    host[sizeof host - 1] = '\0';
    unsigned char nonce[6];
    sq__random_bytes(nonce, sizeof nonce);
    snprintf(rt->identity, sizeof rt->identity, "%s:%d:%02x%02x%02x%02x%02x%02x", host,
             (int)getpid(), nonce[0], nonce[1], nonce[2], nonce[3], nonce[4], nonce[5]);
}

/* TTIN dumps: at most one every TTIN_EVERY seconds, since each is a line
 * per worker (a flood of signals must not flood the log). A TTIN inside that
 * window is not lost: all of them are answered by one dump at its end. */
#define TTIN_EVERY 5.0

typedef struct ttin_state {
    double last;      /* monotonic time of the last dump; 0 before the first */
    unsigned waiting; /* TTINs received since then */
} ttin_state;

/* Dump when TTINs are waiting and the last dump is old enough. Returns
 * the seconds until a waiting dump is due (INFINITY when none waits). */
static double ttin_due(sq_runtime *rt, ttin_state *t)
{
    if (t->waiting == 0)
        return INFINITY;
    double now = sq__monotonic();
    if (t->last > 0 && now - t->last < TTIN_EVERY)
        return t->last + TTIN_EVERY - now;
    sq_manager_dump(rt, t->waiting, TTIN_EVERY);
    t->waiting = 0;
    t->last = now;
    return INFINITY;
}

/* The main thread's signals between its Redis calls (sq_redis_set_before):
 * a turn of the loop may make several round trips (a beat, recovery), each
 * up to a second with a slow Redis, so TTIN and TSTP are acted on before
 * every call, and a stop signal is kept for the loop (stop). */
typedef struct main_signals {
    sq_runtime *rt;
    ttin_state ttin;
    int stop; /* TERM or INT taken between calls, not yet acted on */
} main_signals;

static void act_on(main_signals *m, int sig)
{
    if (sig == SIGTSTP && !atomic_load(&m->rt->quiet)) {
        sq_log(SQ_LOG_INFO, "TSTP received: quiet, no new jobs will be fetched");
        sq_runtime_quiet(m->rt);
        sq_beat_title(m->rt);
    } else if (sig == SIGTTIN) {
        m->ttin.waiting++;
        ttin_due(m->rt, &m->ttin);
    }
}

static void signals_between_calls(void *ud)
{
    main_signals *m = ud;
    for (int sig; (sig = wait_signal(0)) != 0;) {
        if (sig == SIGTERM || sig == SIGINT)
            m->stop = sig;
        else
            act_on(m, sig);
    }
    ttin_due(m->rt, &m->ttin);
}

/* A stop signal taken between calls, or 0; it is then acted on. */
static int take_stop(main_signals *m)
{
    int sig = m->stop;
    m->stop = 0;
    return sig;
}

/* Connect the main connection, retrying through outages. Returns 0, 1 when a
 * stop signal arrived first, or -1 with err for a fatal (credentials) error. */
static int connect_patiently(sq_runtime *rt, sq_error *err)
{
    for (unsigned attempt = 0;; attempt++) {
        sq_error e = {0};
        redisReply *rep = NULL;
        if (sq_redis_connect(rt->redis, &e) == 0)
            rep = sq_redis_cmd(rt->redis, &e, "PING");
        if (rep != NULL) {
            freeReplyObject(rep);
            if (attempt > 0)
                sq_log(SQ_LOG_INFO, "Redis is reachable at %s", sq_redis_display(rt->redis));
            return 0;
        }
        if (e.code == SQ_EAUTH || e.code == SQ_ECONFIG || sq_redis_error_is(&e, "NOAUTH") ||
            sq_redis_error_is(&e, "WRONGPASS") || sq_redis_error_is(&e, "NOPERM")) {
            sq__error_set(err, e.code == SQ_ECONFIG ? SQ_ECONFIG : SQ_EAUTH, "%s", e.message);
            return -1;
        }
        if (attempt == 0) {
            sq_log(SQ_LOG_WARN, "waiting for Redis: %s", e.message);
            sq_notify_status("waiting for Redis: %s", e.message);
        }
        if (sq_notify_watchdog_period() > 0)
            sq_notify("WATCHDOG=1"); /* waiting is progress: nothing is stuck */
        int sig = wait_signal(sq_redis_backoff(attempt + 3));
        if (sig == SIGTERM || sig == SIGINT)
            return 1;
        if (sig == SIGTSTP && !atomic_load(&rt->quiet)) {
            sq_log(SQ_LOG_INFO, "TSTP received: quiet, no jobs will be fetched");
            sq_runtime_quiet(rt);
        }
    }
}

/* INFO checks at boot: the version (what the fetch strategy needs, and
 * Sidekiq's 4.0), and the settings under which Redis itself can lose jobs. Returns -1 when
 * squire cannot run against this server. */
static int check_server(sq_runtime *rt)
{
    redisReply *rep = sq_redis_cmd(rt->redis, NULL, "INFO");
    if (rep == NULL || rep->type != REDIS_REPLY_STRING) {
        if (rep)
            freeReplyObject(rep);
        return 0; /* INFO may be renamed away; the commands themselves will tell */
    }
    int rc = 0;
    char v[32], policy[64], aof[8], why[200];
    if (sq_redis_info_field(rep->str, "redis_version", v, sizeof v)) {
        if (rt->fetch->server_ok != NULL && !rt->fetch->server_ok(v, why, sizeof why)) {
            sq_log(SQ_LOG_ERROR, "%s", why);
            rc = -1;
        } else if (!sq_redis_version_at_least(v, 4, 0)) {
            sq_log(SQ_LOG_WARN, "Redis %s is older than 4.0, which Sidekiq requires", v);
        }
    }
    if (sq_redis_info_field(rep->str, "maxmemory_policy", policy, sizeof policy) &&
        strcmp(policy, "noeviction") != 0)
        sq_log(SQ_LOG_WARN,
               "Redis maxmemory-policy is %s; it should be noeviction or Redis may "
               "silently drop jobs",
               policy);
    if (sq_redis_info_field(rep->str, "aof_enabled", aof, sizeof aof) && strcmp(aof, "0") == 0 &&
        rt->fetch->keeps_running_jobs)
        sq_log(SQ_LOG_WARN, "Redis runs without AOF (appendonly no): if Redis itself crashes, "
                            "jobs written since its last snapshot are lost, whatever squire does");
    freeReplyObject(rep);
    return rc;
}

static void log_start(sq_runtime *rt)
{
    const sq_config *cfg = rt->cfg;
    char queues[512];
    sq_config_queue_list(cfg, true, queues, sizeof queues);
    sq_log(SQ_LOG_INFO,
           "squire %s starting: identity=%s tag=%s concurrency=%d queues=[%s] "
           "fetch=%s workers=%s timeout=%d s redis=%s handlers=%zu environment=%s",
           SQ_VERSION, rt->identity, cfg->tag ? cfg->tag : "", cfg->concurrency, queues,
           rt->fetch->name, cfg->isolated ? "isolated" : "threads", cfg->timeout,
           sq_redis_display(rt->redis), sq_registry_count(rt->reg),
           cfg->environment ? cfg->environment : "development");
}

/* Main loop until TERM/INT: quiet on TSTP, dump on TTIN, flush stats, beat,
 * and the fetch strategy's duties (reliable: the lease, recovery of dead
 * processes' jobs). Signals from the Web UI (through the heartbeat) act like
 * the OS's. Returns true when it stopped because the fork server died
 * (isolated mode). */
static bool serve(sq_runtime *rt, main_signals *m)
{
    ttin_state *ttin = &m->ttin;
    double next_beat = sq__monotonic() + rt->cfg->beat_interval;
    double next_cleanup = sq__monotonic() + 60;
    double next_watchdog = 0;
    for (;;) {
        sq_httpd_main_turned(); /* issue 17: /healthz sees the main loop turn */
        double tick = 1.0;
        if (rt->fetch->tick != NULL) {
            double want = rt->fetch->tick(rt, false);
            if (want < tick)
                tick = want;
        }
        sq_beat_watchdog(rt, &next_watchdog);
        if (!sq_isolate_watch(rt)) /* timeouts; isolated: the fork server died */
            return true;
        if (rt->cfg->beat_interval < tick)
            tick = rt->cfg->beat_interval;
        double wd = sq_notify_watchdog_period();
        if (wd > 0 && wd < tick)
            tick = wd;
        double ttin_wait = ttin_due(rt, ttin);
        if (ttin_wait < tick)
            tick = ttin_wait;
        if (tick > SQ_BEAT_BUSY_TICK)
            tick = SQ_BEAT_BUSY_TICK; /* issue 16: the Busy page within a second */
        int sig = take_stop(m);
        if (sig == 0)
            sig = wait_signal(tick);
        if (sig == 0 && sq__monotonic() >= next_beat) {
            sig = sq_beat(rt);
            next_beat = sq__monotonic() + rt->cfg->beat_interval;
        } else if (sig == 0) {
            sq_beat_refresh(rt);
        }
        if (sq__monotonic() >= next_cleanup) {
            sq_heartbeat_cleanup(rt);
            next_cleanup = sq__monotonic() + 60;
        }
        if (sig != SIGTERM && sig != SIGINT && m->stop != 0) {
            act_on(m, sig); /* a stop came during this turn's calls */
            sig = take_stop(m);
        }
        if (sig == SIGTERM || sig == SIGINT) {
            sq_log(SQ_LOG_INFO, "%s received: shutting down", sig == SIGTERM ? "TERM" : "INT");
            return false;
        }
        act_on(m, sig);
    }
}

/* Returns true when every thread finished (a clean exit is possible). */
static bool shut_down(sq_runtime *rt, main_signals *m)
{
    sq_notify("STOPPING=1");
    atomic_store(&rt->stopping, true);
    sq_runtime_quiet(rt);
    sq_beat_title(rt);
    double deadline = sq__monotonic() + rt->cfg->timeout, end = deadline + STOP_GRACE;
    sq_redis_set_deadline(rt->redis, deadline); /* no call outlasts the wait */
    double next_beat = sq__monotonic(), next_watchdog = 0;
    while (sq_manager_busy(rt) && sq__monotonic() < deadline) {
        sq_beat_watchdog(rt, &next_watchdog);
        if (rt->fetch->tick != NULL)
            rt->fetch->tick(rt, true); /* reliable: running jobs stay ours meanwhile */
        if (sq__monotonic() >= next_beat) {
            sq_beat(rt); /* the Web UI shows the process quiet, still busy */
            next_beat = sq__monotonic() + rt->cfg->beat_interval;
        }
        int sig = take_stop(m);
        if (sig == 0)
            sig = wait_signal(0.1);
        if (sig == SIGTERM || sig == SIGINT) {
            sq_log(SQ_LOG_INFO, "second stop signal: not waiting for running jobs");
            break;
        }
        act_on(m, sig); /* TTIN: what the stop is waiting for (TSTP: quiet already) */
        ttin_due(rt, &m->ttin);
        sq_beat_refresh(rt); /* finished jobs leave the Busy page at once */
    }
    /* From here every Redis call ends by `end`; past it they are skipped:
     * what is not pushed back stays in its working list (reliable fetch),
     * the lease and the process's entry expire by themselves. */
    sq_redis_set_deadline(rt->redis, end);
    int pushed = sq_manager_requeue_running(rt);
    if (pushed > 0)
        sq_log(SQ_LOG_INFO, "Pushed %d jobs back to Redis", pushed);
    /* Workers recording a result get a moment to finish the write. */
    double unwind = fmin(sq__monotonic() + UNWIND_WAIT, end);
    while (sq_manager_busy(rt) && sq__monotonic() < unwind)
        sq__sleep(0.05);
    sq_runtime_hard_stop(rt);
    /* A worker may sit in a blocking fetch (2 s) on a slow socket (3 s). */
    bool all = sq_manager_join(rt, fmax(fmin(JOIN_WAIT, end - sq__monotonic()), 0));
    if (rt->fetch->detach != NULL)
        rt->fetch->detach(rt, true);
    sq_heartbeat_stop(rt);
    sq_error err = {0};
    if (sq_stats_flush(rt, rt->redis, &err) != 0)
        sq_log(SQ_LOG_WARN, "final stats flush failed: %s", err.message);
    sq_error merr = {0}; /* issue 16: and at exit, as Sidekiq 8 */
    if (sq_metrics_flush(rt->metrics, rt->redis, &merr) < 0)
        sq_log(SQ_LOG_WARN, "final metrics flush failed: %s", merr.message);
    return all;
}

int sq_launcher_run(const sq_config *cfg, sq_registry *reg)
{
    sq_runtime rt = {0};
    main_signals sigs = {.rt = &rt}; /* TTIN is answered in the stop's wait too */
    sq_error err = {0};
    int status = 0;

    rt.cfg = cfg;
    rt.reg = reg;
    rt.fetch = sq_fetch_for(cfg->fetch);
    rt.limits = (sq_job_limits){cfg->max_payload_bytes, SQ_JSON_MAX_DEPTH, SQ_JSON_MAX_ELEMENTS};
    pthread_mutex_init(&rt.lock, NULL);
    sq__cond_init_monotonic(&rt.cond);
    make_identity(&rt);
    snprintf(rt.lease_key, sizeof rt.lease_key, "squire:lease:%s", rt.identity);
    rt.started_at = sq__now();

    if (sq_config_redis_url(cfg, &rt.url, &err) != 0 ||
        sq_queue_order_init(&rt.order, cfg->queues, cfg->nqueues) != 0 ||
        (rt.redis = sq_redis_new(&rt.url, 3.0)) == NULL) {
        sq_log(SQ_LOG_ERROR, "%s", err.code ? err.message : "out of memory");
        status = err.code == SQ_ECONFIG ? EX_CONFIG : 1;
        goto done;
    }
    sq_redis_set_probe(rt.redis, MAIN_PROBE); /* an outage does not hold the main loop */
    rt.nworkers = cfg->concurrency;
    log_start(&rt);
    /* timeouts; isolated: the fork server, forked while this is the only
     * thread (so before the HTTP endpoint's threads) */
    if (sq_isolation_start(&rt, &err) != 0) {
        sq_log(SQ_LOG_ERROR, "%s", err.message);
        status = 1;
        goto done;
    }
    /* issue 17: up before Redis, so a liveness probe sees the wait as alive */
    if (cfg->metrics_address != NULL &&
        sq_httpd_start(&rt, cfg->metrics_address, cfg->metrics_where, &err) != 0) {
        sq_log(SQ_LOG_ERROR, "%s", err.message);
        status = EX_CONFIG;
        goto done;
    }
    if (sq_registry_count(reg) == 0)
        sq_log(SQ_LOG_WARN, "no handlers registered (use -r libjobs.so or :require:); every job "
                            "will fail with Squire::NoHandler");

    int c = connect_patiently(&rt, &err);
    if (c < 0) {
        sq_log(SQ_LOG_ERROR, "%s", err.message);
        status = EX_CONFIG;
        goto done;
    }
    if (c > 0) {
        sq_log(SQ_LOG_INFO, "stopped before Redis became reachable");
        goto done;
    }
    if (check_server(&rt) != 0) {
        status = EX_CONFIG;
        goto done;
    }
    rt.metrics = sq_metrics_new(rt.nworkers, cfg->metrics); /* issue 16; NULL when off */
    if (sq_database_open(&rt) != 0 || sq_manager_prepare(&rt) != 0 || sq_heartbeat_init(&rt) != 0 ||
        (cfg->metrics != 0 && rt.metrics == NULL)) {
        sq_log(SQ_LOG_ERROR, "out of memory preparing workers");
        status = 1;
        goto done;
    }
    /* from here on (the workers' slots made, which TTIN shows), signals are
     * acted on between the main thread's calls */
    sq_redis_set_before(rt.redis, signals_between_calls, &sigs);
    /* The strategy's start (reliable: lease and registry, in one step),
     * before the first fetch, waiting out an outage like any other. */
    for (unsigned attempt = 0; rt.fetch->attach != NULL; attempt++) {
        sq_error e = {0};
        int a = rt.fetch->attach(&rt, &e);
        if (a == 0)
            break;
        if (a < 0) {
            sq_log(SQ_LOG_ERROR, "%s", e.message);
            status = e.code == SQ_ENOMEM ? 1 : EX_CONFIG;
            goto done;
        }
        if (attempt == 0)
            sq_log(SQ_LOG_WARN, "waiting for Redis: %s", e.message);
        int sig = take_stop(&sigs);
        if (sig == 0)
            sig = wait_signal(sq_redis_backoff(attempt + 3));
        if (sig == SIGTERM || sig == SIGINT)
            goto done;
        act_on(&sigs, sig);
    }
    /* In the Web UI before the first job; dead identities pruned. */
    if (sq_beat(&rt) == SIGTSTP)
        sq_runtime_quiet(&rt);
    sq_heartbeat_cleanup(&rt);
    int e = sq_manager_start(&rt);
    if (e == 0) {
        sq_httpd_workers_started(); /* issue 17 */
        sq_notify("READY=1");
        sq_notify_status("0 of %d busy", rt.nworkers);
    }
    if (e != 0) {
        /* Threads already started may hold jobs: stop like a TERM. */
        sq_log(SQ_LOG_ERROR, "cannot start threads: %s", strerror(e));
        if (!shut_down(&rt, &sigs))
            _exit(1);
        status = 1;
        goto done;
    }
    if (serve(&rt, &sigs))
        status = 1; /* the fork server died */
    if (!shut_down(&rt, &sigs)) {
        /* A handler is still running (its job was pushed back): end the
         * process without unwinding memory that thread may still touch. */
        sq_log(SQ_LOG_INFO, "Bye!");
        _exit(status);
    }
    sq_log(SQ_LOG_INFO, "Bye!");
done:
    if (rt.redis != NULL)
        sq_redis_set_before(rt.redis, NULL, NULL); /* the slots go below */
    sq_httpd_stop();                               /* issue 17 */
    if (rt.fetch->detach != NULL)
        rt.fetch->detach(&rt, false); /* frees what a clean shutdown left */
    sq_manager_free(&rt);
    sq_isolation_stop(&rt);
    sq_metrics_free(rt.metrics);
    sq_redis_free(rt.redis);
    free(rt.info_json);
    free(rt.work_shown);
    sq_database_close(&rt); /* the budget thread, then the pool */
    sq_dbbudget_destroy(&rt.dbbudget);
    free(rt.info_failing_json);
    sq_queue_order_destroy(&rt.order);
    sq_redis_url_destroy(&rt.url);
    pthread_cond_destroy(&rt.cond);
    pthread_mutex_destroy(&rt.lock);
    return status;
}
