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

#include "httpd.h"   /* issue 17: /metrics, /healthz, /readyz */
#include "metrics.h" /* issue 17 */
#include "common.h"
#include "launcher.h"
#include "log.h"
#include "manager.h"
#include "notify.h"
#include "registry.h"
#include "runtime.h"

#define UNWIND_WAIT 3.0
#define JOIN_WAIT 6.0

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

static void dump_threads(sq_runtime *rt, unsigned signals)
{
    double now = sq__now();
    char note[96] = "";
    if (signals > 1)
        snprintf(note, sizeof note, " (%u TTIN signals coalesced: at most one dump every %.0f s)",
                 signals, TTIN_EVERY);
    sq_log(SQ_LOG_INFO, "TTIN: %d workers, quiet=%s%s", rt->nworkers,
           atomic_load(&rt->quiet) ? "true" : "false", note);
    for (int i = 0; i < rt->nworkers; i++) {
        sq_worker *w = &rt->workers[i];
        pthread_mutex_lock(&w->lock);
        static const char *const states[] = {"idle", "running", "recording the result of",
                                             "abandoned (pushed back)"};
        if (w->state == SQ_SLOT_IDLE)
            sq_log(SQ_LOG_INFO, "TTIN: %s idle", w->tid);
        else
            sq_log(SQ_LOG_INFO, "TTIN: %s %s class=%s jid=%s queue=%s for %.1f s", w->tid,
                   states[w->state], w->klass, w->jid, w->unit.queue ? w->unit.queue : "?",
                   now - w->started_at);
        pthread_mutex_unlock(&w->lock);
    }
}

/* Dump when TTINs are waiting and the last dump is old enough. Returns
 * the seconds until a waiting dump is due (INFINITY when none waits). */
static double ttin_due(sq_runtime *rt, ttin_state *t)
{
    if (t->waiting == 0)
        return INFINITY;
    double now = sq__monotonic();
    if (t->last > 0 && now - t->last < TTIN_EVERY)
        return t->last + TTIN_EVERY - now;
    dump_threads(rt, t->waiting);
    t->waiting = 0;
    t->last = now;
    return INFINITY;
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

/* INFO checks at boot: the version (reliable fetch needs LMOVE, Redis 6.2),
 * and the settings under which Redis itself can lose jobs. Returns -1 when
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
    char v[32], policy[64], aof[8];
    if (sq_redis_info_field(rep->str, "redis_version", v, sizeof v)) {
        if (rt->fetch == &sq_fetch_reliable && !sq_redis_version_at_least(v, 6, 2)) {
            sq_log(SQ_LOG_ERROR, "Redis %s has no LMOVE; reliable fetch needs Redis 6.2 or "
                   "later (or set fetch: basic)", v);
            rc = -1;
        } else if (!sq_redis_version_at_least(v, 4, 0)) {
            sq_log(SQ_LOG_WARN, "Redis %s is older than 4.0, which Sidekiq requires", v);
        }
    }
    if (sq_redis_info_field(rep->str, "maxmemory_policy", policy, sizeof policy) &&
        strcmp(policy, "noeviction") != 0)
        sq_log(SQ_LOG_WARN, "Redis maxmemory-policy is %s; it should be noeviction or Redis may "
               "silently drop jobs", policy);
    if (sq_redis_info_field(rep->str, "aof_enabled", aof, sizeof aof) && strcmp(aof, "0") == 0 &&
        rt->fetch == &sq_fetch_reliable)
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
           "fetch=%s timeout=%d s redis=%s handlers=%zu environment=%s",
           SQ_VERSION, rt->identity, cfg->tag ? cfg->tag : "", cfg->concurrency, queues,
           rt->fetch->name, cfg->timeout, sq_redis_display(rt->redis), sq_registry_count(rt->reg),
           cfg->environment ? cfg->environment : "development");
}

/* Reliable fetch: the main thread's lease keeping, recovery and sweep. */
typedef struct lease_state {
    double last_ok;      /* monotonic: the last renewal that worked (its reply) */
    double streak_since; /* monotonic: since when renewals have worked without a gap */
    double grace;        /* seconds of streak before recovering others */
    bool started;        /* a renewal has worked at least once */
    char cursor[32];     /* the sweep's SCAN cursor ("0": not sweeping) */
    bool sweeping;
} lease_state;

/* Renew the lease; fence when it cannot be renewed in time (others may soon
 * recover our jobs), unfence when it can again. The renewal script registers
 * every working list again whenever it finds the lease lapsed, so a process
 * that wakes from a stop or an outage fetches only into registered lists.
 *
 * The streak: recovery takes a peer's jobs only after this process has seen
 * Redis answer every renewal, without a gap of more than lease_ttl * 0.6, for
 * `grace` seconds (lease_ttl and then some). A peer whose lease is gone then
 * was silent while Redis was up, not merely while Redis (or this process)
 * was away: after an outage the first process back waits for the others. */
static void keep_lease(sq_runtime *rt, lease_state *ls)
{
    sq_error err = {0};
    bool lapsed = false;
    double sent = sq__monotonic();
    long long sent_ms = sq_runtime_ms();
    double ttl = rt->cfg->lease_ttl;
    if (sq_lease_renew(rt, false, &lapsed, &err) == 0) {
        double now = sq__monotonic();
        if (lapsed)
            sq_log(SQ_LOG_WARN,
                   "lease had expired (out of touch with Redis for %.1f s): working lists "
                   "registered again before any further fetch; jobs running then may have been "
                   "recovered by another process and run twice",
                   now - ls->last_ok);
        if (!ls->started || lapsed || sent - ls->last_ok > ttl * 0.6)
            ls->streak_since = now;
        ls->started = true;
        atomic_store(&rt->lease_sent_ms, sent_ms);
        atomic_store(&rt->lease_wanted, false);
        if (atomic_load(&rt->fenced))
            sq_log(SQ_LOG_INFO, "lease renewed: fetching again");
        atomic_store(&rt->fenced, false);
        ls->last_ok = now;
    } else if (sent - ls->last_ok > ttl * 0.75 && !atomic_load(&rt->fenced)) {
        atomic_store(&rt->fenced, true);
        sq_log(SQ_LOG_WARN,
               "cannot renew the lease for %.1f s (%s): not fetching until Redis "
               "answers",
               sent - ls->last_ok, err.message);
    }
}

/* Whether Redis has answered us long enough that a missing lease means a
 * dead process (see keep_lease). */
static bool may_recover(const lease_state *ls)
{
    return ls->started && sq__monotonic() - ls->streak_since >= ls->grace &&
           sq__monotonic() - ls->last_ok < ls->grace;
}

static void recover(sq_runtime *rt)
{
    sq_error err = {0};
    long n = sq_recovery_run(rt, &err);
    if (n < 0)
        sq_log(SQ_LOG_WARN, "recovery of dead processes' jobs failed: %s", err.message);
    sq_metrics_recovered(n); /* issue 17 */
}

/* One step of the slow sweep (one SCAN call per main-loop turn while a pass
 * is under way). */
static void sweep_step(sq_runtime *rt, lease_state *ls)
{
    sq_error err = {0};
    long n = 0;
    if (!ls->sweeping) {
        snprintf(ls->cursor, sizeof ls->cursor, "0");
        ls->sweeping = true;
    }
    if (sq_recovery_sweep(rt, ls->cursor, &n, &err) != 0) {
        sq_log(SQ_LOG_DEBUG, "sweep: %s (again next pass)", err.message);
        ls->sweeping = false;
        return;
    }
    if (strcmp(ls->cursor, "0") == 0)
        ls->sweeping = false;
}

#define STUCK_MS 30000

/* The watchdog's question: is every thread still turning? A worker inside a
 * handler may take as long as its job needs; one waiting for a job must come
 * round at least every few seconds (its blocking fetch is 2 s), Redis or no
 * Redis. The poller must wake when it said it would. */
bool sq_runtime_progress(sq_runtime *rt, char *who, size_t size)
{
    long long now = sq_runtime_ms();
    if (atomic_load(&rt->quiet))
        return true; /* quiet: workers are done fetching; the main loop pings */
    for (int i = 0; i < rt->nworkers; i++) {
        sq_worker *w = &rt->workers[i];
        pthread_mutex_lock(&w->lock);
        bool idle = w->state == SQ_SLOT_IDLE;
        pthread_mutex_unlock(&w->lock);
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
    if (failing > SQ_FETCH_FAILING_STUCK_MS &&
        atomic_load(&rt->redis_ok_ms) > now - failing + 1000) {
        snprintf(who, size, "workers cannot fetch (for %lld s: %.120s)", failing / 1000, msg);
        return false;
    }
    return true;
}

/* Ping systemd's watchdog when due, only while progress is seen. */
static void watchdog(sq_runtime *rt, double *next)
{
    double period = sq_notify_watchdog_period();
    if (period <= 0 || sq__monotonic() < *next)
        return;
    *next = sq__monotonic() + period;
    char who[200];
    bool was_stuck = rt->stuck;
    rt->stuck = !sq_runtime_progress(rt, who, sizeof who);
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

/* The connection budget of every process sharing the database server
 * (dbbudget.c): at start (first: the server's limits asked, its count of
 * connections in use counted, the verdict logged), then at every beat,
 * logged when the verdict changes, as processes come and go. */
static void check_db_budget(sq_runtime *rt, bool first)
{
    sq_dbbudget *b = &rt->dbbudget;
    if (rt->pgpool == NULL || (!b->known && !first && sq__monotonic() < b->next_ask))
        return;
    sq_error err = {0};
    if (!b->known) {
        if (sq_pgpool_budget(rt->pgpool, &b->lim, &err) != 0) {
            if (first)
                sq_log(SQ_LOG_WARN, "database: %s; starting anyway, jobs that need it will fail "
                       "and retry", err.message);
            b->next_ask = sq__monotonic() + 60;
            return;
        }
        b->known = true;
        first = true; /* the in-use count is fresh */
    }
    int pools = 0, procs = 0;
    if (sq_dbbudget_peers(rt->redis, rt->identity, sq_pgpool_server(rt->pgpool), &pools, &procs,
                          &err) != 0) {
        sq_log(SQ_LOG_DEBUG, "database budget: %s", err.message);
        return;
    }
    char msg[700];
    bool over = sq_dbbudget_verdict(b, pools, procs, first ? b->lim.in_use : -1, msg, sizeof msg);
    if (first || over != b->over)
        sq_log(over ? SQ_LOG_WARN : SQ_LOG_INFO, "%s", msg);
    b->over = over;
}

/* One heartbeat, with the stats flush that goes with it (as Sidekiq 7:
 * counts reach Redis each beat and at exit, and stay in memory when a flush
 * fails). Returns the remote signal the beat brought (0: none). */
static int beat(sq_runtime *rt)
{
    sq_error err = {0}, serr = {0};
    int sig = 0;
    if (sq_stats_flush(rt, rt->redis, &serr) != 0)
        sq_log(SQ_LOG_DEBUG, "stats flush deferred: %s", serr.message);
    if (sq_heartbeat_beat(rt, &sig, &err) != 0) {
        sq_log(SQ_LOG_DEBUG, "heartbeat failed: %s", err.message);
    } else {
        atomic_store(&rt->redis_ok_ms, sq_runtime_ms());
        check_db_budget(rt, false);
        sq_error merr = {0}; /* issue 17: queue gauges, at a bounded cadence */
        if (sq_metrics_sample(rt, &merr) != 0)
            sq_log(SQ_LOG_DEBUG, "metrics sample: %s", merr.message);
    }
    char msg[200];
    long long failing = sq_runtime_fetch_failing(rt, msg, sizeof msg);
    if (failing >= SQ_FETCH_FAILING_SHOW_MS)
        sq_notify_status("fetch failing for %lld s: %s", failing / 1000, msg);
    else
        sq_notify_status("%s%d of %d busy", atomic_load(&rt->quiet) ? "quiet, " : "",
                         sq_runtime_busy(rt), rt->nworkers);
    return sig;
}

/* Main loop until TERM/INT: quiet on TSTP, dump on TTIN, flush stats, beat,
 * and for reliable fetch keep the lease and recover dead processes' jobs.
 * Signals from the Web UI (through the heartbeat) act like the OS's. */
static void serve(sq_runtime *rt, lease_state *ls)
{
    double next_beat = sq__monotonic() + rt->cfg->beat_interval;
    double next_cleanup = sq__monotonic() + 60;
    double next_watchdog = 0;
    bool reliable = rt->fetch == &sq_fetch_reliable;
    double ttl = rt->cfg->lease_ttl;
    double lease_every = ttl / 4, recover_every = ttl * 0.75;
    /* The sweep: a pass every few minutes (15 leases, between 1 and 5 min). */
    double sweep_every = ttl * 15 < 60 ? 60 : ttl * 15 > 300 ? 300 : ttl * 15;
    double next_lease = sq__monotonic() + lease_every;
    double next_recover = sq__monotonic();
    double next_sweep = sq__monotonic() + ls->grace, next_step = 0;
    ttin_state ttin = {0};
    for (;;) {
        sq_httpd_main_turned(); /* issue 17: /healthz sees the main loop turn */
        if (reliable) {
            double now = sq__monotonic();
            if (now >= next_lease || atomic_load(&rt->lease_wanted)) {
                keep_lease(rt, ls);
                next_lease = now + lease_every;
            }
            if (now >= next_recover && !atomic_load(&rt->quiet) && may_recover(ls)) {
                recover(rt);
                next_recover = now + recover_every;
            }
            if ((ls->sweeping || now >= next_sweep) && now >= next_step && may_recover(ls)) {
                sweep_step(rt, ls); /* one SCAN call a second: never a burst */
                next_step = now + 1.0;
                if (!ls->sweeping)
                    next_sweep = now + sweep_every;
            }
        }
        watchdog(rt, &next_watchdog);
        double tick = reliable && lease_every < 1.0 ? lease_every : 1.0;
        if (reliable && tick > 0.25)
            tick = 0.25; /* a worker that found the lease gone waits on us */
        if (rt->cfg->beat_interval < tick)
            tick = rt->cfg->beat_interval;
        double wd = sq_notify_watchdog_period();
        if (wd > 0 && wd < tick)
            tick = wd;
        double ttin_wait = ttin_due(rt, &ttin);
        if (ttin_wait < tick)
            tick = ttin_wait;
        int sig = wait_signal(tick);
        if (sig == 0 && sq__monotonic() >= next_beat) {
            sig = beat(rt);
            next_beat = sq__monotonic() + rt->cfg->beat_interval;
        }
        if (sq__monotonic() >= next_cleanup) {
            sq_heartbeat_cleanup(rt);
            next_cleanup = sq__monotonic() + 60;
        }
        if (sig == SIGTERM || sig == SIGINT) {
            sq_log(SQ_LOG_INFO, "%s received: shutting down", sig == SIGTERM ? "TERM" : "INT");
            return;
        }
        if (sig == SIGTSTP && !atomic_load(&rt->quiet)) {
            sq_log(SQ_LOG_INFO, "TSTP received: quiet, no new jobs will be fetched");
            sq_runtime_quiet(rt);
        } else if (sig == SIGTTIN) {
            ttin.waiting++;
            ttin_due(rt, &ttin);
        }
    }
}

/* Returns true when every thread finished (a clean exit is possible). */
static bool shut_down(sq_runtime *rt, lease_state *ls)
{
    sq_notify("STOPPING=1");
    atomic_store(&rt->stopping, true);
    sq_runtime_quiet(rt);
    double deadline = sq__monotonic() + rt->cfg->timeout;
    double next_beat = sq__monotonic(), next_watchdog = 0;
    double next_lease = sq__monotonic() + rt->cfg->lease_ttl / 4;
    while (sq_manager_busy(rt) && sq__monotonic() < deadline) {
        watchdog(rt, &next_watchdog);
        if (rt->fetch == &sq_fetch_reliable && sq__monotonic() >= next_lease) {
            keep_lease(rt, ls); /* running jobs stay ours while we wait for them */
            next_lease = sq__monotonic() + rt->cfg->lease_ttl / 4;
        }
        if (sq__monotonic() >= next_beat) {
            beat(rt); /* the Web UI shows the process quiet, still busy */
            next_beat = sq__monotonic() + rt->cfg->beat_interval;
        }
        int sig = wait_signal(0.1);
        if (sig == SIGTERM || sig == SIGINT) {
            sq_log(SQ_LOG_INFO, "second stop signal: not waiting for running jobs");
            break;
        }
    }
    int pushed = sq_manager_requeue_running(rt);
    if (pushed > 0)
        sq_log(SQ_LOG_INFO, "Pushed %d jobs back to Redis", pushed);
    /* Workers recording a result get a moment to finish the write. */
    double unwind = sq__monotonic() + UNWIND_WAIT;
    while (sq_manager_busy(rt) && sq__monotonic() < unwind)
        sq__sleep(0.05);
    sq_runtime_hard_stop(rt);
    /* A worker may sit in a blocking fetch (2 s) on a slow socket (3 s). */
    bool all = sq_manager_join(rt, JOIN_WAIT);
    if (rt->fetch == &sq_fetch_reliable)
        sq_recovery_release(rt);
    sq_heartbeat_stop(rt);
    sq_error err = {0};
    if (sq_stats_flush(rt, rt->redis, &err) != 0)
        sq_log(SQ_LOG_WARN, "final stats flush failed: %s", err.message);
    return all;
}

/* The pool is made now; its connections when jobs ask. PostgreSQL being
 * down does not stop the start. */
static int open_database(sq_runtime *rt)
{
    const sq_config *cfg = rt->cfg;
    if (cfg->db_url == NULL)
        return 0;
    int size = cfg->db_pool > 0 ? cfg->db_pool : cfg->concurrency;
    rt->pgpool = sq_pgpool_new(cfg->db_url, cfg->db_application_name ? cfg->db_application_name
                                                                      : rt->identity,
                               size, cfg->db_checkout_timeout, cfg->db_connect_timeout,
                               cfg->db_statement_timeout);
    if (rt->pgpool == NULL || sq_dbbudget_init(&rt->dbbudget, rt->pgpool) != 0)
        return -1;
    check_db_budget(rt, true);
    return 0;
}

int sq_launcher_run(const sq_config *cfg, sq_registry *reg)
{
    sq_runtime rt = {0};
    sq_error err = {0};
    int status = 0;

    rt.cfg = cfg;
    rt.reg = reg;
    rt.fetch = cfg->fetch == SQ_FETCH_RELIABLE ? &sq_fetch_reliable : &sq_fetch_basic;
    rt.limits = (sq_job_limits){cfg->max_payload_bytes, SQ_JSON_MAX_DEPTH, SQ_JSON_MAX_ELEMENTS};
    pthread_mutex_init(&rt.lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&rt.cond, &ca);
    pthread_condattr_destroy(&ca);
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
    rt.nworkers = cfg->concurrency;
    log_start(&rt);
    /* issue 17: up before Redis, so a liveness probe sees the wait as alive */
    if (cfg->metrics_address != NULL && sq_httpd_start(&rt, cfg->metrics_address, &err) != 0) {
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
    if (open_database(&rt) != 0 || sq_manager_prepare(&rt) != 0 || sq_heartbeat_init(&rt) != 0) {
        sq_log(SQ_LOG_ERROR, "out of memory preparing workers");
        status = 1;
        goto done;
    }
    /* Recovery waits until Redis has answered for lease_ttl plus a renewal
     * period plus a reply timeout (3 s): every live peer has had its chance. */
    lease_state ls = {.grace = cfg->lease_ttl * 1.25 + 3.0};
    if (rt.fetch == &sq_fetch_reliable) {
        /* Lease and registry, in one step, before the first fetch (waiting
         * out an outage like any other). What dead processes left behind is
         * handed back once the grace has passed (serve). */
        for (unsigned attempt = 0;; attempt++) {
            sq_error e = {0};
            long long sent_ms = sq_runtime_ms();
            if (sq_lease_renew(&rt, true, NULL, &e) == 0) {
                atomic_store(&rt.lease_sent_ms, sent_ms);
                ls.started = true;
                ls.last_ok = ls.streak_since = sq__monotonic();
                break;
            }
            if (sq_redis_is_connected(rt.redis)) { /* an error reply: ACL, wrong types */
                sq_log(SQ_LOG_ERROR, "cannot register with Redis: %s", e.message);
                status = EX_CONFIG;
                goto done;
            }
            if (attempt == 0)
                sq_log(SQ_LOG_WARN, "waiting for Redis: %s", e.message);
            int sig = wait_signal(sq_redis_backoff(attempt + 3));
            if (sig == SIGTERM || sig == SIGINT)
                goto done;
        }
    }
    /* In the Web UI before the first job; dead identities pruned. */
    if (beat(&rt) == SIGTSTP)
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
        if (!shut_down(&rt, &ls))
            _exit(1);
        status = 1;
        goto done;
    }
    serve(&rt, &ls);
    if (!shut_down(&rt, &ls)) {
        /* A handler is still running (its job was pushed back): end the
         * process without unwinding memory that thread may still touch. */
        sq_log(SQ_LOG_INFO, "Bye!");
        _exit(0);
    }
    sq_log(SQ_LOG_INFO, "Bye!");
done:
    sq_httpd_stop(); /* issue 17 */
    sq_manager_free(&rt);
    sq_redis_free(rt.redis);
    free(rt.info_json);
    sq_dbbudget_destroy(&rt.dbbudget);
    free(rt.info_failing_json);
    sq_pgpool_free(rt.pgpool);
    sq_queue_order_destroy(&rt.order);
    sq_redis_url_destroy(&rt.url);
    pthread_cond_destroy(&rt.cond);
    pthread_mutex_destroy(&rt.lock);
    return status;
}
