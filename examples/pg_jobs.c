/*
 * pg_jobs.c: an example handler that writes to PostgreSQL through squire's
 * connection pool. Built as build/libpg_jobs.so and loaded with
 *
 *     squire -C config/sidekiq.yml -r ./build/libpg_jobs.so
 *
 * with the database in sidekiq.yml (or just DATABASE_URL in the environment):
 *
 *     :concurrency: 10
 *     :database:
 *       url: postgres://app@db.internal/app_production
 *       pool: 5               # default: concurrency; each one is a server connection
 *       checkout_timeout: 5   # seconds a job waits for a free connection
 *
 * Build your own the same way once squire is installed:
 *
 *     cc -shared -fPIC -o libpg_jobs.so pg_jobs.c \
 *        $(pkg-config --cflags --libs squire libpq)
 *
 * From Rails, `RecordSignupJob.perform_async(user.id, user.email)` runs
 * record_signup_job below.
 */
#include <libpq-fe.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include <squire.h>

/* Fail the job with what PostgreSQL said. Sidekiq retries it (with backoff)
 * unless the data itself is bad, which no retry can fix: SQLSTATE class 22
 * (data exception, e.g. a string too long) and 23 (integrity constraint)
 * send it straight to the dead set instead. */
static sq_result pg_fail(sq_job *job, PGconn *conn, PGresult *res, const char *what)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = PQerrorMessage(conn);
    int len = (int)strcspn(msg, "\n"); /* libpq's messages end in a newline */
    if (PQstatus(conn) == CONNECTION_BAD) {
        /* The server went away mid-job. Returning is enough: squire's pool
         * sees the broken connection and replaces it, and the retry gets a
         * good one. */
        sq_job_fail(job, "PG::ConnectionBad", "%s: %.*s", what, len, msg);
    } else {
        sq_job_fail(job, "PG::Error", "%s: [%s] %.*s", what, state ? state : "?", len, msg);
        if (state && (strncmp(state, "22", 2) == 0 || strncmp(state, "23", 2) == 0))
            sq_job_kill(job);
    }
    return SQ_FAILED;
}

/* Run one statement with text parameters; the result, or NULL after failing
 * the job. */
static PGresult *exec(sq_job *job, PGconn *conn, const char *what, const char *sql, int nparams,
                      const char *const *params)
{
    PGresult *res = PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(res);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
        return res;
    pg_fail(job, conn, res, what);
    PQclear(res);
    return NULL;
}

/* Create the table the first time any worker needs it. A real app creates
 * tables in its migrations; this keeps the example self-contained. The
 * advisory lock serialises concurrent CREATE TABLE IF NOT EXISTS (which can
 * otherwise fail with a duplicate-key error when two sessions race), across
 * workers and across squire processes. */
static atomic_bool table_ready;

static int ensure_table(sq_job *job, PGconn *conn)
{
    if (atomic_load(&table_ready))
        return 0;
    static const char *const steps[] = {
        "BEGIN",
        "SELECT pg_advisory_xact_lock(hashtext('squire example: signups'))",
        "CREATE TABLE IF NOT EXISTS signups ("
        "  jid         text PRIMARY KEY,"      /* one row per job: retries are no-ops */
        "  user_id     bigint NOT NULL,"
        "  email       text NOT NULL,"
        "  recorded_at timestamptz NOT NULL DEFAULT now())",
        "COMMIT",
    };
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        PGresult *res = exec(job, conn, "create table signups", steps[i], 0, NULL);
        if (res == NULL)
            return -1; /* a transaction left open is rolled back by the pool */
        PQclear(res);
    }
    atomic_store(&table_ready, true);
    return 0;
}

/* RecordSignupJob(user_id, email): record a signup once per job.
 *
 * Sidekiq runs a job at least once: a retry after a lost connection, or a
 * job recovered after `kill -9`, runs it again with the same jid. Keying the
 * row by jid makes the second run a no-op (ON CONFLICT DO NOTHING) instead
 * of a duplicate signup. */
static sq_result record_signup_job(sq_job *job, void *ud)
{
    (void)ud;
    json_t *user_id = sq_job_arg(job, 0);
    const char *email = json_string_value(sq_job_arg(job, 1));
    if (!json_is_integer(user_id) || email == NULL || sq_job_argc(job) != 2) {
        /* Bad arguments will not get better with retries. */
        sq_job_fail(job, "ArgumentError", "expected (user_id: Integer, email: String), got %zu args",
                    sq_job_argc(job));
        sq_job_kill(job);
        return SQ_FAILED;
    }

    /* Borrow this job's connection: it may wait up to checkout_timeout for
     * a free one. NULL means none could be had (pool busy, server down):
     * squire has already failed the job with Squire::DatabaseUnavailable and
     * will retry it, so just return. Never PQfinish it: it goes back to the
     * pool by itself when this function returns. */
    PGconn *conn = sq_job_db(job);
    if (conn == NULL)
        return SQ_FAILED;

    if (ensure_table(job, conn) != 0)
        return SQ_FAILED;

    char uid[32];
    snprintf(uid, sizeof uid, "%lld", (long long)json_integer_value(user_id));
    /* Always parameters ($1...), never the arguments pasted into the SQL. */
    const char *params[] = {sq_job_jid(job), uid, email};
    PGresult *res = exec(job, conn, "insert signup",
                         "INSERT INTO signups (jid, user_id, email) VALUES ($1, $2::bigint, $3) "
                         "ON CONFLICT (jid) DO NOTHING",
                         3, params);
    if (res == NULL)
        return SQ_FAILED;
    bool inserted = strcmp(PQcmdTuples(res), "1") == 0;
    PQclear(res);

    /* Log the id, not the email: logs are not the place for personal data. */
    if (inserted)
        sq_job_log(job, "recorded signup of user %s", uid);
    else
        sq_job_log(job, "signup of user %s already recorded by an earlier run", uid);
    return SQ_OK;
}

int squire_plugin_init(sq_registry *reg);

int squire_plugin_init(sq_registry *reg)
{
    return sq_register(reg, "RecordSignupJob", record_signup_job, NULL);
}
