/*
 * pgpool.c: PostgreSQL connections for handlers, shared by the workers.
 *
 * At most `size` connections exist; they are opened lazily, when a job asks
 * (sq_job_db) and none is idle. A job that finds the pool exhausted waits up
 * to checkout_timeout, then fails with a retryable error, as ActiveRecord's
 * "could not obtain a database connection within 5.000 seconds" does. A
 * connect that fails is tried again within the same deadline, so a server
 * restart shorter than checkout_timeout makes jobs wait, not fail.
 *
 * Each connection gets the URL's own settings plus squire's: options merged
 * (the URL's, then -c statement_timeout), application_name the URL's then
 * squire's name, in 63 bytes. Every message built from libpq text is
 * scrubbed of the URL's secrets (pgconninfo.c).
 *
 * No wait on the server is without a limit, even with connect_timeout=0 in
 * the URL (libpq's "for ever"): every connect gets connect_timeout (the
 * URL's, else squire's) for each host, each query squire runs itself and
 * each cancel it sends waits at most a limit too, so a server that hangs
 * fails the job that needs it and never holds a worker for good.
 *
 * A connection is never handed out broken: an idle one whose socket has
 * something to say (the FATAL a restarted server or pg_terminate_backend
 * leaves behind, or EOF) is dropped and replaced, and one returned in a bad
 * state is closed. One returned is reset before the next job sees it: a
 * query still running is cancelled (PQcancel), an open transaction rolled
 * back, then DISCARD ALL and unread notifications dropped, so no SET,
 * prepared statement, temp table, lock or NOTIFY of one job reaches the
 * next.
 *
 * libpq is loaded when the pool is made (pq.c). When it cannot be, the pool
 * still exists and every checkout and budget check fails with the reason,
 * as when PostgreSQL is unreachable: the daemon starts, says why, and jobs
 * that need the database fail and retry; `squire --check` fails.
 */
#include "pgpool.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common.h"
#include "pgcancel.h"
#include "pgconninfo.h"
#include "pq.h"

struct sq_pgpool {
    pthread_mutex_t lock; /* guards everything below */
    pthread_cond_t freed;
    const sq_pq *pq;   /* NULL when libpq could not be loaded: load_err says why */
    sq_error load_err;
    char *url;
    sq_pg_secrets secrets; /* in url: scrubbed from every message */
    char *app_name; /* the URL's application_name, then squire's */
    char *options;  /* the URL's options, then statement_timeout; NULL: the URL's */
    char *server;   /* host:port as the URL (or PGHOST, PGPORT) names them */
    int size;
    int open;       /* connections that exist: idle + checked out */
    PGconn **idle;
    int nidle;
    double checkout_timeout;
    double connect_timeout;
    double wait; /* how long squire waits for the server: connect_timeout, the URL's first */
    sq_report_fn report; /* server notices, cancels that failed; NULL: dropped */
    void *report_ud;
    long waits;     /* checkouts that found every connection in use and waited */
};

/* The settings libpq makes of url: its own, then those of the
 * pg_service.conf entry it names (service=) and the PG* environment
 * variables. libpq has no call that reads a service file but a connect:
 * this one is started with a bogus sslmode that libpq refuses before any
 * network use, once it has filled in every setting, and PQconninfo reads
 * them. NULL when libpq is missing or out of memory. */
static PQconninfoOption *libpq_settings(const sq_pq *pq, const char *url)
{
    if (pq == NULL)
        return NULL;
    const char *keys[] = {"dbname", "sslmode", NULL};
    const char *vals[] = {url, "squire-reads-settings-only", NULL};
    PGconn *c = pq->PQconnectStartParams(keys, vals, 1);
    PQconninfoOption *opts = c ? pq->PQconninfo(c) : NULL;
    pq->PQfinish(c);
    return opts;
}

/* keyword's value in opts, malloc'd, or NULL when unset or empty. */
static char *setting(const PQconninfoOption *opts, const char *keyword)
{
    for (const PQconninfoOption *o = opts; o && o->keyword; o++)
        if (strcmp(o->keyword, keyword) == 0 && o->val && o->val[0])
            return sq__strdup(o->val);
    return NULL;
}

/* What squire adds to the URL's settings: application_name (the URL's own
 * first, then squire's name, in 63 bytes) and options (the URL's own, then
 * squire's statement_timeout, which wins over one in the URL's options).
 * Without a statement_timeout the URL's options are left alone. The URL's
 * own include what its service= entry and the PG* variables give. */
static int merge_settings(sq_pgpool *p, const char *name, int statement_timeout)
{
    PQconninfoOption *opts = libpq_settings(p->pq, p->url);
    char *url_app = setting(opts, "application_name");
    char app[SQ_PG_APP_NAME_MAX + 1];
    sq_pg_app_name(url_app, name, app);
    free(url_app);
    p->app_name = sq__strdup(app);
    char *host = setting(opts, "host");
    if (host == NULL)
        host = setting(opts, "hostaddr");
    char *port = setting(opts, "port");
    size_t n = (host ? strlen(host) : 5) + (port ? strlen(port) : 4) + 2;
    if ((p->server = malloc(n)) != NULL)
        snprintf(p->server, n, "%s:%s", host ? host : "local", port ? port : "5432");
    free(host);
    free(port);
    /* a password with an unencoded '/' reads as the port: the name is
     * logged and published in Redis, so it is scrubbed like any message */
    char *raw = p->server;
    p->server = raw ? sq_pgpool_scrub(p, raw) : NULL;
    free(raw);
    /* the connect_timeout libpq applies: the URL's own (squire's keyword
     * wins over the service file's and $PGCONNECT_TIMEOUT), else squire's,
     * in seconds as libpq reads it; when the URL's is none (0: libpq would
     * wait for ever), squire's too, so that no wait of squire's on a server
     * that never answers is endless */
    PQconninfoOption *own_opts = p->pq ? p->pq->PQconninfoParse(p->url, NULL) : NULL;
    char *url_timeout = setting(own_opts, "connect_timeout");
    if (own_opts)
        p->pq->PQconninfoFree(own_opts);
    long t = url_timeout ? strtol(url_timeout, NULL, 10) : 0;
    free(url_timeout);
    double squires = p->connect_timeout < 2 ? 2 : p->connect_timeout;
    p->wait = t <= 0 ? squires : t < 2 ? 2 : (double)t;
    char *url_opts = statement_timeout > 0 ? setting(opts, "options") : NULL;
    if (opts)
        p->pq->PQconninfoFree(opts);
    if (p->server == NULL)
        return -1;
    if (statement_timeout <= 0)
        return p->app_name ? 0 : -1;
    n = (url_opts ? strlen(url_opts) : 0) + 64;
    p->options = malloc(n);
    if (p->options != NULL)
        snprintf(p->options, n, "%s%s-c statement_timeout=%d", url_opts ? url_opts : "",
                 url_opts ? " " : "", statement_timeout * 1000);
    free(url_opts);
    return p->app_name && p->options ? 0 : -1;
}

sq_pgpool *sq_pgpool_new(const char *url, const char *app_name, int size,
                         double checkout_timeout, double connect_timeout,
                         int statement_timeout)
{
    sq_pgpool *p = calloc(1, sizeof *p);
    if (p == NULL)
        return NULL;
    pthread_mutex_init(&p->lock, NULL);
    sq__cond_init_monotonic(&p->freed);
    p->size = size > 0 ? size : 1;
    p->checkout_timeout = checkout_timeout;
    p->connect_timeout = connect_timeout;
    p->pq = sq_pq_load(&p->load_err);
    p->url = sq__strdup(url);
    sq_pg_secrets_init(&p->secrets, url);
    p->idle = calloc((size_t)p->size, sizeof *p->idle);
    if (p->url == NULL || p->idle == NULL || merge_settings(p, app_name, statement_timeout) != 0) {
        sq_pgpool_free(p);
        return NULL;
    }
    return p;
}

void sq_pgpool_free(sq_pgpool *p)
{
    if (p == NULL)
        return;
    for (int i = 0; p->idle && i < p->nidle; i++)
        p->pq->PQfinish(p->idle[i]);
    free(p->idle);
    if (p->url != NULL)
        memset(p->url, 0, strlen(p->url));
    free(p->url);
    sq_pg_secrets_destroy(&p->secrets);
    free(p->app_name);
    free(p->options);
    free(p->server);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->freed);
    free(p);
}

int sq_pgpool_size(const sq_pgpool *p)
{
    return p->size;
}

/* err = what: the first line of libpq's message, scrubbed of the URL's
 * secrets (libpq quotes a URI or token it cannot parse), then cut to fit:
 * cut first, a long password (a cloud IAM token) would no longer match
 * whole and its head would show. */
static void pq_error(const sq_pgpool *p, sq_error *err, int code, const char *what,
                     const char *message)
{
    char *line = strndup(message, strcspn(message, "\n"));
    char *safe = line ? sq_pgpool_scrub(p, line) : NULL;
    sq__error_set(err, code, "%s%s", what, safe ? safe : "(message withheld: out of memory)");
    free(safe);
    free(line);
}

void sq_pgpool_set_reporter(sq_pgpool *p, sq_report_fn fn, void *ud)
{
    p->report = fn;
    p->report_ud = ud;
}

/* Server notices go to the pool's reporter (the daemon's log), one line
 * each, not raw to stderr, scrubbed like any libpq message. An ERROR or
 * FATAL that arrives while the connection is idle (pg_terminate_backend, a
 * server shutting down) comes this way too, and is reported at WARN: it is
 * why connections get replaced. */
static void log_notice(void *arg, const PGresult *res)
{
    const sq_pgpool *p = arg;
    const char *sev = p->pq->PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
    bool bad = sev && (strcmp(sev, "ERROR") == 0 || strcmp(sev, "FATAL") == 0 ||
                       strcmp(sev, "PANIC") == 0);
    sq_error e = {0};
    pq_error(p, &e, SQ_EIO, "PostgreSQL: ", p->pq->PQresultErrorMessage(res));
    if (p->report != NULL)
        p->report(p->report_ud, bad ? SQ_REPORT_WARN : SQ_REPORT_INFO, e.message);
}

/* Start a connection with the pool's settings: libpq's blocking connect
 * (wait), or its non-blocking start (PQconnectPoll finishes it,
 * connect_stoppable). NULL only when out of memory. */
static PGconn *connect_start(const sq_pgpool *p, bool wait)
{
    char timeout[16];
    snprintf(timeout, sizeof timeout, "%d", (int)(p->wait + 0.999));
    /* later keywords win: squire's merged application_name and options
     * over the URL's, and connect_timeout as p->wait reads it (the URL's,
     * else squire's; never libpq's "0: for ever") */
    const char *keys[] = {"dbname", "connect_timeout", "application_name",
                          p->options ? "options" : NULL, NULL};
    const char *vals[] = {p->url, timeout, p->app_name, p->options, NULL};
    return wait ? p->pq->PQconnectdbParams(keys, vals, 1)
                : p->pq->PQconnectStartParams(keys, vals, 1);
}

/* c when it is connected (its notices then go to the log), else NULL with
 * err saying why (why, or libpq's message) and c finished. */
static PGconn *connected(sq_pgpool *p, PGconn *c, const char *why, sq_error *err)
{
    const sq_pq *pq = p->pq;
    if (c == NULL || why != NULL || pq->PQstatus(c) != CONNECTION_OK) {
        char where[300]; /* libpq names the server in its own messages */
        snprintf(where, sizeof where, "server at %s: %s", p->server, why ? why : "");
        pq_error(p, err, SQ_EIO, "cannot connect to PostgreSQL: ",
                 why ? where
                 : c ? pq->PQerrorMessage(c)
                     : "out of memory");
        pq->PQfinish(c);
        return NULL;
    }
    pq->PQsetNoticeReceiver(c, log_notice, p);
    return c;
}

/* ---- squire's own questions: never longer than connect_timeout, stoppable ---- */

/* How a wait for the server ended. */
enum { READY, STOPPED, TIMED_OUT, FAILED };

/* Wait until c's socket is ready for events, until the monotonic time until
 * (0: no limit), looking at *stop (may be NULL) every 100 ms. */
static int wait_ready(const sq_pq *pq, PGconn *c, short events, double until,
                      const atomic_bool *stop)
{
    for (;;) {
        if (stop != NULL && atomic_load(stop))
            return STOPPED;
        double slice = 0.1;
        if (until > 0 && until - sq__monotonic() < slice)
            slice = until - sq__monotonic();
        if (slice <= 0)
            return TIMED_OUT;
        struct pollfd pfd = {.fd = pq->PQsocket(c), .events = events};
        int r = poll(&pfd, 1, (int)(slice * 1000) + 1);
        if (r > 0)
            return READY;
        if (r < 0 && errno != EINTR)
            return FAILED;
    }
}

static const char *wait_failure(int how)
{
    return how == STOPPED ? "stopped" : how == TIMED_OUT ? "timeout expired" : strerror(errno);
}

/* A connection. With stop, libpq's non-blocking connect, the wait
 * squire's, so that *stop ends it; connect_timeout (p->wait) bounds each
 * host, though a host that hangs ends the connect (libpq's own wait would
 * go on to the next host: a multi-host URL's failover). Without stop,
 * libpq's blocking connect, its connect_timeout p->wait too. */
static PGconn *connect_stoppable(sq_pgpool *p, const atomic_bool *stop, sq_error *err)
{
    if (stop == NULL)
        return connected(p, connect_start(p, true), NULL, err);
    const sq_pq *pq = p->pq;
    PGconn *c = connect_start(p, false);
    const char *why = NULL;
    if (c != NULL && pq->PQstatus(c) != CONNECTION_BAD) {
        double t = p->wait, until = sq__monotonic() + t;
        const char *host = pq->PQhost(c);
        PostgresPollingStatusType st = PGRES_POLLING_WRITING;
        while (why == NULL && st != PGRES_POLLING_OK && st != PGRES_POLLING_FAILED) {
            int how =
                wait_ready(pq, c, st == PGRES_POLLING_READING ? POLLIN : POLLOUT, until, stop);
            if (how != READY)
                why = wait_failure(how);
            else
                st = pq->PQconnectPoll(c);
            if (pq->PQhost(c) != host) { /* the next host: its own connect_timeout */
                host = pq->PQhost(c);
                until = sq__monotonic() + t;
            }
        }
    }
    return connected(p, c, why, err);
}

/* The next result of the query c runs, or NULL: none left, or (*why set)
 * the server did not answer by until, *stop was set, or c broke. */
static PGresult *next_result(const sq_pq *pq, PGconn *c, double until, const atomic_bool *stop,
                             const char **why)
{
    while (pq->PQisBusy(c)) {
        int how = wait_ready(pq, c, POLLIN, until, stop);
        if (how != READY) {
            *why = wait_failure(how);
            return NULL;
        }
        if (!pq->PQconsumeInput(c))
            return NULL; /* broken: PQerrorMessage says why */
    }
    return pq->PQgetResult(c);
}

/* Drop the notifications libpq has read and queued on c; how many. */
static int drop_notifies(const sq_pq *pq, PGconn *c)
{
    int notifies = 0;
    PGnotify *n;
    while ((n = pq->PQnotifies(c)) != NULL) {
        pq->PQfreemem(n);
        notifies++;
    }
    return notifies;
}

/* An idle connection is usable unless its socket has news. A healthy idle
 * connection has nothing to read but NOTIFY messages; anything else (the
 * FATAL a restarted server or pg_terminate_backend leaves, EOF) means it is
 * gone, even while libpq still reports CONNECTION_OK. */
static bool still_good(const sq_pq *pq, PGconn *c)
{
    if (pq->PQstatus(c) != CONNECTION_OK)
        return false;
    struct pollfd pfd = {.fd = pq->PQsocket(c), .events = POLLIN};
    int r = poll(&pfd, 1, 0);
    if (r == 0)
        return true;
    if (r < 0 || (pfd.revents & (POLLERR | POLLHUP | POLLNVAL)))
        return false;
    if (!pq->PQconsumeInput(c) || pq->PQstatus(c) != CONNECTION_OK)
        return false;
    return drop_notifies(pq, c) > 0 && pq->PQtransactionStatus(c) == PQTRANS_IDLE;
}

/* Whether libpq is there; if not, err says why. */
static bool loaded(const sq_pgpool *p, sq_error *err)
{
    if (p->pq == NULL)
        sq__error_set(err, p->load_err.code, "%s", p->load_err.message);
    return p->pq != NULL;
}

/* Connect, trying again until the checkout's deadline: a server that is
 * restarting (refused, starting up, shutting down) for less than
 * checkout_timeout costs the job a wait, not a retry with Sidekiq's 15 s+
 * backoff. Between attempts 50 ms, doubling to 500 ms; an attempt itself
 * may pass the deadline by up to connect_timeout. */
static PGconn *connect_until(sq_pgpool *p, const struct timespec *until, sq_error *err)
{
    double end = (double)until->tv_sec + (double)until->tv_nsec / 1e9, pause = 0.05;
    for (;;) {
        sq_error e = {0};
        PGconn *c = connect_stoppable(p, NULL, &e);
        if (c != NULL)
            return c;
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        double left = end - ((double)now.tv_sec + (double)now.tv_nsec / 1e9);
        if (left <= pause) {
            sq__error_set(err, e.code, "%s", e.message);
            return NULL;
        }
        sq__sleep(pause);
        pause = pause * 2 < 0.5 ? pause * 2 : 0.5;
    }
}

void sq_pgpool_stats(sq_pgpool *p, int *in_use, long *waits)
{
    pthread_mutex_lock(&p->lock);
    *in_use = p->open - p->nidle;
    *waits = p->waits;
    pthread_mutex_unlock(&p->lock);
}

PGconn *sq_pgpool_checkout(sq_pgpool *p, sq_error *err)
{
    if (!loaded(p, err))
        return NULL;
    struct timespec until = sq__deadline_in(p->checkout_timeout);
    bool waited = false;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        if (p->nidle > 0) {
            PGconn *c = p->idle[--p->nidle];
            pthread_mutex_unlock(&p->lock);
            if (still_good(p->pq, c))
                return c;
            p->pq->PQfinish(c); /* replaced below, in the same wait */
            pthread_mutex_lock(&p->lock);
            p->open--;
            continue;
        }
        if (p->open < p->size) {
            p->open++;
            pthread_mutex_unlock(&p->lock);
            PGconn *c = connect_until(p, &until, err);
            if (c != NULL)
                return c;
            pthread_mutex_lock(&p->lock);
            p->open--;
            pthread_cond_signal(&p->freed);
            pthread_mutex_unlock(&p->lock);
            return NULL;
        }
        if (!waited)
            p->waits++;
        waited = true;
        if (pthread_cond_timedwait(&p->freed, &p->lock, &until) == ETIMEDOUT &&
            p->nidle == 0 && p->open >= p->size) {
            pthread_mutex_unlock(&p->lock);
            sq__error_set(err, SQ_EIO,
                          "could not obtain a database connection within %.3f seconds (pool %d, "
                          "all in use)",
                          p->checkout_timeout, p->size);
            return NULL;
        }
    }
}

/* How long a query a handler left running has to end, after the first
 * cancel, before its connection is closed instead. */
#define CANCEL_WAIT 2.0

/* How often the cancel is sent again while results still come: a cancel
 * that reaches the server before the query starts (it travels on its own
 * connection) is ignored, and each query of a pipeline needs its own. */
#define CANCEL_AGAIN 0.1

/* Ask the server to cancel what c is running (a new connection of libpq's:
 * PQcancel), waiting for the server until the monotonic time until
 * (pgcancel.c). False when it did not take the request by then. */
static bool cancel(const sq_pgpool *p, PGconn *c, double until)
{
    char why[256];
    int sent = sq_pg_cancel(p->pq, c, until, why, sizeof why);
    if (sent != 1) {
        sq_error e = {0};
        pq_error(p, &e, SQ_EIO, "PostgreSQL: cannot cancel a query a handler left running: ",
                 why);
        if (p->report != NULL)
            p->report(p->report_ud, SQ_REPORT_WARN, e.message);
    }
    return sent >= 0;
}

/* Is c at rest: no result to come, out of pipeline mode? Reads and drops
 * what has arrived. False with *bad when it never can be (COPY, which only
 * the handler can end). */
static bool at_rest(const sq_pq *pq, PGconn *c, bool *bad)
{
    bool ended = false;
    while (!pq->PQisBusy(c)) {
        PGresult *r = pq->PQgetResult(c);
        if (r == NULL) {
            /* in a pipeline, NULL ends one query's results, not all: the
             * next query's may follow at once (a second NULL: wait) */
            if (pq->PQpipelineStatus(c) == PQ_PIPELINE_OFF || pq->PQexitPipelineMode(c))
                return pq->PQtransactionStatus(c) != PQTRANS_ACTIVE;
            if (ended)
                return false;
            ended = true;
            continue;
        }
        ended = false;
        ExecStatusType st = pq->PQresultStatus(r);
        pq->PQclear(r);
        if (st == PGRES_COPY_IN || st == PGRES_COPY_OUT || st == PGRES_COPY_BOTH) {
            *bad = true;
            return false;
        }
    }
    return false;
}

/* Cancel what c runs, again every CANCEL_AGAIN seconds, and drop its
 * results until it comes to rest, for at most CANCEL_WAIT seconds. False
 * when it does not. A pipeline's queries the handler did not sync are
 * synced first, so that they run (and are cancelled) now. */
static bool stop_and_drain(const sq_pgpool *p, PGconn *c)
{
    const sq_pq *pq = p->pq;
    bool bad = false;
    if (pq->PQpipelineStatus(c) != PQ_PIPELINE_OFF && !pq->PQpipelineSync(c))
        return false;
    double now = sq__monotonic(), until = now + CANCEL_WAIT, again = now;
    for (;;) {
        if (at_rest(pq, c, &bad))
            return true;
        now = sq__monotonic();
        if (bad || now >= until)
            return false;
        if (now >= again) {
            if (!cancel(p, c, until))
                return false; /* a server that does not take a cancel: close c */
            now = sq__monotonic();
            again = now + CANCEL_AGAIN;
        }
        /* the next cancel or the end, whichever is first */
        if (wait_ready(pq, c, POLLIN, again < until ? again : until, NULL) == FAILED ||
            !pq->PQconsumeInput(c))
            return false;
    }
}

/* Run sql on c, waiting for the server at most p->wait: one that stops
 * answering (frozen, its host gone) must not hold the worker putting the
 * connection back. */
static bool exec_ok(const sq_pgpool *p, PGconn *c, const char *sql)
{
    const sq_pq *pq = p->pq;
    double until = sq__monotonic() + p->wait;
    const char *why = NULL;
    bool ok = false;
    if (!pq->PQsendQuery(c, sql))
        return false;
    for (PGresult *r; (r = next_result(pq, c, until, NULL, &why)) != NULL; pq->PQclear(r))
        ok = pq->PQresultStatus(r) == PGRES_COMMAND_OK;
    return ok && why == NULL;
}

/* Bring a returned connection back to what a new one looks like: a query
 * still running cancelled and drained, an open transaction rolled back,
 * then DISCARD ALL (SET values, prepared statements, temp tables, cursors,
 * LISTEN, advisory locks: gone; the start-up options and application_name
 * stay) and the notifications libpq has queued dropped. False: close it
 * instead. */
static bool reset(const sq_pgpool *p, PGconn *c)
{
    const sq_pq *pq = p->pq;
    if (pq->PQstatus(c) != CONNECTION_OK)
        return false;
    pq->PQsetnonblocking(c, 0);
    pq->PQsetNoticeReceiver(c, log_notice, (void *)p);
    if ((pq->PQtransactionStatus(c) == PQTRANS_ACTIVE ||
         pq->PQpipelineStatus(c) != PQ_PIPELINE_OFF) &&
        !stop_and_drain(p, c))
        return false;
    PGTransactionStatusType ts = pq->PQtransactionStatus(c);
    if (ts != PQTRANS_IDLE && ts != PQTRANS_INTRANS && ts != PQTRANS_INERROR)
        return false;
    /* DISCARD ALL cannot run inside a transaction: roll back first */
    if (ts != PQTRANS_IDLE && !exec_ok(p, c, "ROLLBACK"))
        return false;
    if (!exec_ok(p, c, "DISCARD ALL") || pq->PQtransactionStatus(c) != PQTRANS_IDLE)
        return false;
    /* UNLISTEN stops new ones; those libpq read already would reach the
     * next job's PQnotifies */
    drop_notifies(pq, c);
    return true;
}

void sq_pgpool_checkin(sq_pgpool *p, PGconn *c)
{
    if (c == NULL)
        return;
    /* p->pq is not NULL: c came from sq_pgpool_checkout */
    bool keep = reset(p, c);
    pthread_mutex_lock(&p->lock);
    if (keep) {
        p->idle[p->nidle++] = c;
    } else {
        p->open--;
    }
    pthread_cond_signal(&p->freed);
    pthread_mutex_unlock(&p->lock);
    if (!keep)
        p->pq->PQfinish(c);
}

/* A connection of borrow's that is not coming back: its place is free. */
static void forget(sq_pgpool *p)
{
    pthread_mutex_lock(&p->lock);
    p->open--;
    pthread_cond_signal(&p->freed);
    pthread_mutex_unlock(&p->lock);
}

/* A connection of the pool's for squire's own question, without waiting
 * for the pool: an idle one, else a new one if the pool has room, else NULL
 * (err: all in use). Never one past `size`. Back with sq_pgpool_checkin, or
 * PQfinish and forget. */
static PGconn *borrow(sq_pgpool *p, const atomic_bool *stop, sq_error *err)
{
    pthread_mutex_lock(&p->lock);
    PGconn *c = p->nidle > 0 ? p->idle[--p->nidle] : NULL;
    bool room = c != NULL || p->open < p->size;
    if (c == NULL && room)
        p->open++;
    pthread_mutex_unlock(&p->lock);
    if (!room) {
        sq__error_set(err, SQ_EIO, "all %d connections of the pool in use", p->size);
        return NULL;
    }
    if (c != NULL && still_good(p->pq, c))
        return c;
    if (c != NULL)
        p->pq->PQfinish(c); /* its place is taken by the new one */
    if ((c = connect_stoppable(p, stop, err)) == NULL)
        forget(p);
    return c;
}

int sq_pgpool_budget(sq_pgpool *p, sq_pg_limits *out, const atomic_bool *stop, sq_error *err)
{
    if (!loaded(p, err))
        return -1;
    const sq_pq *pq = p->pq;
    PGconn *c = borrow(p, stop, err);
    if (c == NULL)
        return -1;
    /* reserved_connections is PostgreSQL 16's (for pg_use_reserved_
     * connections members); in use: client backends only, not the server's
     * own workers. The answer is waited for as long as a connect may take. */
    double until = sq__monotonic() + p->wait;
    const char *why = NULL;
    PGresult *r = NULL;
    if (pq->PQsendQuery(c, "SELECT current_setting('max_connections')::int, "
                           "current_setting('superuser_reserved_connections')::int, "
                           "coalesce(current_setting('reserved_connections', true), "
                           "'0')::int, (SELECT count(*) FROM pg_stat_activity "
                           "WHERE backend_type = 'client backend')::int"))
        r = next_result(pq, c, until, stop, &why);
    for (PGresult *more; r != NULL && (more = next_result(pq, c, until, stop, &why)) != NULL;)
        pq->PQclear(more);
    int rc = -1;
    if (why == NULL && pq->PQresultStatus(r) == PGRES_TUPLES_OK && pq->PQntuples(r) == 1) {
        out->max_connections = (int)strtol(pq->PQgetvalue(r, 0, 0), NULL, 10);
        out->superuser_reserved = (int)strtol(pq->PQgetvalue(r, 0, 1), NULL, 10);
        out->reserved = (int)strtol(pq->PQgetvalue(r, 0, 2), NULL, 10);
        out->allowed = out->max_connections - out->superuser_reserved - out->reserved;
        out->in_use = (int)strtol(pq->PQgetvalue(r, 0, 3), NULL, 10) - 1; /* not this one */
        rc = 0;
    } else {
        pq_error(p, err, SQ_EIO, why ? "PostgreSQL did not answer: " : "PostgreSQL: ",
                 why ? why : pq->PQerrorMessage(c));
    }
    pq->PQclear(r);
    if (why == NULL) {
        sq_pgpool_checkin(p, c);
    } else { /* a query still running on a server that does not answer: no reset */
        pq->PQfinish(c);
        forget(p);
    }
    return rc;
}

char *sq_pgpool_scrub(const sq_pgpool *p, const char *message)
{
    size_t n = strlen(message) * sizeof SQ_PG_REDACTED + 1;
    char *out = malloc(n);
    if (out != NULL)
        sq_pg_scrub(&p->secrets, message, out, n);
    return out;
}

const char *sq_pgpool_server(const sq_pgpool *p)
{
    return p->server;
}

int sq_pgpool_url_check(const char *url, sq_error *err)
{
    sq_error lerr = {0};
    const sq_pq *pq = sq_pq_load(&lerr);
    if (pq == NULL)
        return 0; /* cannot tell: the pool reports the missing library */
    char *why = NULL;
    PQconninfoOption *opts = pq->PQconninfoParse(url, &why);
    if (opts != NULL) {
        pq->PQconninfoFree(opts);
        return 0;
    }
    sq_pgpool probe = {0};
    sq_pg_secrets_init(&probe.secrets, url);
    pq_error(&probe, err, SQ_ECONFIG, "not a PostgreSQL URL or connection string: ",
             why ? why : "out of memory");
    sq_pg_secrets_destroy(&probe.secrets);
    pq->PQfreemem(why);
    return -1;
}
