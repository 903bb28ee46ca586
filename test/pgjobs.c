/*
 * pgjobs.c: PostgreSQL handlers test_pg.c loads with `-r`. They reach the
 * database only through sq_job_db, so what the pool hands out is what they
 * see. The tables are the test's (created by its fixture):
 *
 *     jobs_done(jid text PRIMARY KEY, n int NOT NULL, runs int NOT NULL)
 *     tx_check(jid text PRIMARY KEY, idle bool, no_txid bool, leaked_rows bigint)
 *     settings(jid text PRIMARY KEY, name text, value text)
 */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <squire.h>

/* Fail with the connection's error, classed the way the pg gem would. */
static sq_result pg_fail(sq_job *job, PGconn *conn, const char *what)
{
    const char *msg = PQerrorMessage(conn);
    int len = (int)strcspn(msg, "\n");
    return sq_job_fail(job, PQstatus(conn) == CONNECTION_BAD ? "PG::ConnectionBad" : "PG::Error",
                       "%s: %.*s", what, len, msg);
}

/* Run one parameterised statement; SQ_OK or the job failed. */
static sq_result run(sq_job *job, PGconn *conn, const char *what, const char *sql, int n,
                     const char *const *params)
{
    PGresult *r = PQexecParams(conn, sql, n, NULL, params, NULL, NULL, 0);
    ExecStatusType s = PQresultStatus(r);
    PQclear(r);
    if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK)
        return pg_fail(job, conn, what);
    return SQ_OK;
}

/* The job's connection, checking the API's promise that a second call in the
 * same job returns the same one. NULL: the job has been failed already. */
static PGconn *db(sq_job *job)
{
    PGconn *conn = sq_job_db(job);
    if (conn == NULL)
        return NULL;
    if (sq_job_db(job) != conn) {
        sq_job_fail(job, "Squire::TestFailure", "sq_job_db returned two connections in one job");
        return NULL;
    }
    if (PQstatus(conn) != CONNECTION_OK) {
        sq_job_fail(job, "Squire::TestFailure", "sq_job_db handed out a broken connection");
        return NULL;
    }
    return conn;
}

static sq_result hold(sq_job *job, PGconn *conn, double seconds)
{
    if (seconds <= 0)
        return SQ_OK;
    char s[32];
    snprintf(s, sizeof s, "%.3f", seconds);
    const char *p[] = {s};
    return run(job, conn, "pg_sleep", "SELECT pg_sleep($1::float8)", 1, p);
}

static sq_result upsert(sq_job *job, PGconn *conn, long long n)
{
    char nbuf[32];
    snprintf(nbuf, sizeof nbuf, "%lld", n);
    const char *p[] = {sq_job_jid(job), nbuf};
    return run(job, conn, "upsert",
               "INSERT INTO jobs_done(jid, n, runs) VALUES($1, $2::int, 1) "
               "ON CONFLICT (jid) DO UPDATE SET runs = jobs_done.runs + 1",
               2, p);
}

/* UpsertJob(n[, hold_seconds]): record one run of this jid (idempotent by
 * jid: a second run counts runs = 2), holding the connection first if asked. */
static sq_result upsert_job(sq_job *job, void *ud)
{
    (void)ud;
    json_t *n = sq_job_arg(job, 0);
    if (!json_is_integer(n))
        return sq_job_fail(job, "ArgumentError", "UpsertJob(n: Integer[, hold: Float])");
    PGconn *conn = db(job);
    if (conn == NULL)
        return SQ_FAILED;
    if (hold(job, conn, json_number_value(sq_job_arg(job, 1))) != SQ_OK)
        return SQ_FAILED;
    return upsert(job, conn, (long long)json_integer_value(n));
}

/* HoldJob(seconds): keep a connection busy (server side, in pg_sleep) to
 * exhaust the pool, then record the run with n = 0. */
static sq_result hold_job(sq_job *job, void *ud)
{
    (void)ud;
    PGconn *conn = db(job);
    if (conn == NULL)
        return SQ_FAILED;
    if (hold(job, conn, json_number_value(sq_job_arg(job, 0))) != SQ_OK)
        return SQ_FAILED;
    return upsert(job, conn, 0);
}

/* OpenTxJob([mode]): BEGIN and INSERT this jid with n = -1, then return
 * SQ_OK without COMMIT. mode "error" also aborts the transaction (1/0), so
 * the connection is returned in the failed-transaction state. The pool must
 * roll back: the row never appears. */
static sq_result open_tx_job(sq_job *job, void *ud)
{
    (void)ud;
    const char *mode = json_string_value(sq_job_arg(job, 0));
    PGconn *conn = db(job);
    if (conn == NULL)
        return SQ_FAILED;
    if (run(job, conn, "begin", "BEGIN", 0, NULL) != SQ_OK ||
        upsert(job, conn, -1) != SQ_OK)
        return SQ_FAILED;
    if (mode != NULL && strcmp(mode, "error") == 0) {
        PGresult *r = PQexec(conn, "SELECT 1/0");
        PQclear(r);
        if (PQtransactionStatus(conn) != PQTRANS_INERROR)
            return sq_job_fail(job, "Squire::TestFailure", "1/0 did not abort the transaction");
    }
    return SQ_OK; /* no COMMIT, no ROLLBACK: the pool's problem now */
}

/* TxCheckJob: the connection it gets must be idle, outside any transaction.
 * Records what it saw (and how many of OpenTxJob's rows it can see, which
 * would be 1 inside a leaked transaction) in tx_check. */
static sq_result tx_check_job(sq_job *job, void *ud)
{
    (void)ud;
    PGconn *conn = db(job);
    if (conn == NULL)
        return SQ_FAILED;
    PGTransactionStatusType ts = PQtransactionStatus(conn);
    if (ts != PQTRANS_IDLE)
        return sq_job_fail(job, "Squire::TransactionLeaked",
                           "connection handed out in transaction state %d (PQTRANS_IDLE is %d)",
                           (int)ts, (int)PQTRANS_IDLE);
    PGresult *r = PQexec(conn, "SELECT txid_current_if_assigned() IS NULL, "
                               "(SELECT count(*) FROM jobs_done WHERE n = -1)");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        PQclear(r);
        return pg_fail(job, conn, "tx check");
    }
    char no_txid[8], leaked[32];
    snprintf(no_txid, sizeof no_txid, "%s", PQgetvalue(r, 0, 0));
    snprintf(leaked, sizeof leaked, "%s", PQgetvalue(r, 0, 1));
    PQclear(r);
    const char *p[] = {sq_job_jid(job), no_txid, leaked};
    return run(job, conn, "record",
               "INSERT INTO tx_check(jid, idle, no_txid, leaked_rows) "
               "VALUES($1, true, $2::bool, $3::bigint)",
               3, p);
}

/* ShowJob(name): record current_setting(name) as this connection sees it. */
static sq_result show_job(sq_job *job, void *ud)
{
    (void)ud;
    const char *name = json_string_value(sq_job_arg(job, 0));
    if (name == NULL)
        return sq_job_fail(job, "ArgumentError", "ShowJob(name: String)");
    PGconn *conn = db(job);
    if (conn == NULL)
        return SQ_FAILED;
    const char *p[] = {sq_job_jid(job), name};
    return run(job, conn, "show",
               "INSERT INTO settings(jid, name, value) VALUES($1, $2, current_setting($2))", 2,
               p);
}

/* DirtyJob(n): record the run, then leave session state behind, and fail
 * if the last job on this connection left its own: SET search_path and statement_timeout, a
 * prepared statement and a temp table (both fail when they exist already). */
static sq_result dirty_job(sq_job *job, void *ud)
{
    (void)ud;
    PGconn *conn = db(job);
    if (conn == NULL ||
        upsert(job, conn, (long long)json_integer_value(sq_job_arg(job, 0))) != SQ_OK)
        return SQ_FAILED;
    if (run(job, conn, "set",
            "SELECT set_config('search_path', 'pg_catalog', false), "
            "set_config('statement_timeout', '1234', false)",
            0, NULL) != SQ_OK ||
        run(job, conn, "temp table", "CREATE TEMP TABLE sq_dirty(x int)", 0, NULL) != SQ_OK)
        return SQ_FAILED;
    PGresult *r = PQprepare(conn, "sq_dirty", "SELECT 1", 0, NULL);
    ExecStatusType s = PQresultStatus(r);
    PQclear(r);
    if (s != PGRES_COMMAND_OK)
        return pg_fail(job, conn, "prepare");
    return SQ_OK;
}

/* RunawayJob(seconds): record the run, then start pg_sleep(seconds) with
 * PQsendQuery and return without reading its result: the query is still
 * running on the server when the connection goes back to the pool. */
static sq_result runaway_job(sq_job *job, void *ud)
{
    (void)ud;
    PGconn *conn = db(job);
    if (conn == NULL || upsert(job, conn, -2) != SQ_OK)
        return SQ_FAILED;
    char sql[64];
    snprintf(sql, sizeof sql, "SELECT pg_sleep(%.3f)", json_number_value(sq_job_arg(job, 0)));
    if (!PQsendQuery(conn, sql))
        return pg_fail(job, conn, "send");
    return SQ_OK;
}

/* PipelineRunawayJob(seconds): record the run, then pipeline two queries
 * each with its own sync, pg_sleep(0.5) and pg_sleep(seconds), and return
 * without reading a result. One cancel stops only the first: the second
 * starts after it and is left running, unless the pool cancels again. */
static sq_result pipeline_runaway_job(sq_job *job, void *ud)
{
    (void)ud;
    PGconn *conn = db(job);
    if (conn == NULL || upsert(job, conn, -3) != SQ_OK)
        return SQ_FAILED;
    char sql[64];
    snprintf(sql, sizeof sql, "SELECT pg_sleep(%.3f)", json_number_value(sq_job_arg(job, 0)));
    if (!PQenterPipelineMode(conn) ||
        !PQsendQueryParams(conn, "SELECT pg_sleep(0.5)", 0, NULL, NULL, NULL, NULL, 0) ||
        !PQpipelineSync(conn) || !PQsendQueryParams(conn, sql, 0, NULL, NULL, NULL, NULL, 0) ||
        !PQpipelineSync(conn))
        return pg_fail(job, conn, "pipeline");
    return SQ_OK;
}

/* ListenJob: record in settings (name "notifies") how many notifications
 * the connection already holds, then LISTEN sq_chan and NOTIFY it, leaving
 * the notification unread in libpq's queue: what the next job on this
 * connection finds, if the pool does not clear it. */
static sq_result listen_job(sq_job *job, void *ud)
{
    (void)ud;
    PGconn *conn = db(job);
    if (conn == NULL)
        return SQ_FAILED;
    PQconsumeInput(conn);
    int stale = 0;
    PGnotify *n;
    while ((n = PQnotifies(conn)) != NULL) {
        PQfreemem(n);
        stale++;
    }
    char count[16];
    snprintf(count, sizeof count, "%d", stale);
    const char *p[] = {sq_job_jid(job), count};
    if (run(job, conn, "record",
            "INSERT INTO settings(jid, name, value) VALUES($1, 'notifies', $2)", 2, p) != SQ_OK)
        return SQ_FAILED;
    const char *jid[] = {sq_job_jid(job)};
    if (run(job, conn, "listen", "LISTEN sq_chan", 0, NULL) != SQ_OK ||
        run(job, conn, "notify", "SELECT pg_notify('sq_chan', $1)", 1, jid) != SQ_OK)
        return SQ_FAILED;
    return SQ_OK;
}

/* LeakJob: fail the way a handler's own PQconnectdb(getenv("DATABASE_URL"))
 * might, quoting the URL. squire must not pass the password on. */
static sq_result leak_job(sq_job *job, void *ud)
{
    (void)ud;
    const char *url = getenv("DATABASE_URL");
    return sq_job_fail(job, "PG::ConnectionBad", "could not connect with \"%s\"",
                       url ? url : "(no DATABASE_URL)");
}

/* UpsertThenWaitJob(n, seconds[, leave]): record the run, then (leave true)
 * start pg_sleep(60) without reading its result, then wait seconds in the
 * handler (not in the server) and succeed: the test freezes the backend or
 * the server meanwhile, so the connection goes back to the pool with a
 * server that no longer answers (and, left, a query still running). */
static sq_result upsert_then_wait_job(sq_job *job, void *ud)
{
    (void)ud;
    PGconn *conn = db(job);
    if (conn == NULL ||
        upsert(job, conn, (long long)json_integer_value(sq_job_arg(job, 0))) != SQ_OK)
        return SQ_FAILED;
    if (json_is_true(sq_job_arg(job, 2)) && !PQsendQuery(conn, "SELECT pg_sleep(60)"))
        return pg_fail(job, conn, "send");
    double s = json_number_value(sq_job_arg(job, 1));
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0)
        ;
    return SQ_OK;
}

int squire_plugin_init(sq_registry *reg);

int squire_plugin_init(sq_registry *reg)
{
    return sq_register(reg, "UpsertJob", upsert_job, NULL) |
           sq_register(reg, "HoldJob", hold_job, NULL) |
           sq_register(reg, "OpenTxJob", open_tx_job, NULL) |
           sq_register(reg, "TxCheckJob", tx_check_job, NULL) |
           sq_register(reg, "ShowJob", show_job, NULL) |
           sq_register(reg, "DirtyJob", dirty_job, NULL) |
           sq_register(reg, "RunawayJob", runaway_job, NULL) |
           sq_register(reg, "PipelineRunawayJob", pipeline_runaway_job, NULL) |
           sq_register(reg, "ListenJob", listen_job, NULL) |
           sq_register(reg, "LeakJob", leak_job, NULL) |
           sq_register(reg, "UpsertThenWaitJob", upsert_then_wait_job, NULL);
}
