/*
 * test_pg.c: squire's PostgreSQL pool (sq_job_db) end to end, against a real
 * redis-server and a real PostgreSQL (initdb/pg_ctl in a temp dir, see
 * pgharness.h) with the handlers of pgjobs.c: many jobs through a small pool,
 * a pool smaller than concurrency (waits, then Squire::DatabaseUnavailable),
 * PostgreSQL restarted or its backends terminated under the pool, the daemon
 * started while PostgreSQL is down, a handler that leaves a transaction
 * open, and libpq loaded only when a database is configured (and reported
 * when it cannot be). Connections are counted in pg_stat_activity by
 * application_name.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "itest.h"

#include "pgharness.h"

#define APP "sqtest-squire"

static sqt_pg PG;

/* ---- fixtures --------------------------------------------------------------- */

static void make_tables(void)
{
    sqt_pg_exec(&PG, "CREATE TABLE jobs_done(jid text PRIMARY KEY, n int NOT NULL, "
                     "runs int NOT NULL)");
    sqt_pg_exec(&PG, "CREATE TABLE tx_check(jid text PRIMARY KEY, idle bool, no_txid bool, "
                     "leaked_rows bigint)");
    sqt_pg_exec(&PG, "CREATE TABLE settings(jid text PRIMARY KEY, name text, value text)");
}

static void pg_setup(void)
{
    itest_setup();
    sqt_pg_start(&PG);
    make_tables();
}

static void nopg_setup(void)
{
    itest_setup();
    memset(&PG, 0, sizeof PG);
}

static void pg_teardown(void)
{
    sqt_pg_stop(&PG);
    itest_teardown();
}

/* squire -C <fast poller + database section> -r pgjobs -c conc -t 8.
 * db_yaml: the `:database:` keys after url, indented two spaces; url NULL
 * leaves it out (then $DATABASE_URL applies). */
static void pg_squire(sqt_proc *p, const char *url, int conc, const char *db_yaml,
                      const char *const *env)
{
    char yaml[2048], urlline[256] = "";
    if (url)
        snprintf(urlline, sizeof urlline, "  :url: %s\n", url);
    snprintf(yaml, sizeof yaml,
             ":poll_interval_average: 0.2\n:beat_interval: 1\n:database:\n%s%s", urlline,
             db_yaml ? db_yaml : "");
    const char *cfg = itest_config(yaml);
    char c[16];
    snprintf(c, sizeof c, "%d", conc);
    const char *argv[] = {"-C", cfg, "-r", SQ_TEST_PGPLUGIN, "-c", c, "-t", "8", NULL};
    sqt_squire_start(p, R.url, argv, env);
    if (!sqt_log_wait(p, "starting", 15)) {
        char *log = sqt_log_read(p);
        ck_abort_msg("squire did not start:\n%s", log);
    }
}

static void dump_log_on(bool bad, const sqt_proc *p)
{
    if (!bad)
        return;
    char *log = sqt_log_read(p);
    fprintf(stderr, "--- squire log ---\n%s\n", log);
    free(log);
}

static sq_client *client(void)
{
    sq_error err = {0};
    sq_client *c = sq_client_new(R.url, &err);
    ck_assert_msg(c != NULL, "%s", err.message);
    return c;
}

/* Push count UpsertJob(first + i, hold) jobs in one round trip. */
static void push_upserts(int first, int count, double hold)
{
    json_t *list = json_array();
    for (int i = 0; i < count; i++)
        json_array_append_new(list, json_pack("[i, f]", first + i, hold));
    sq_error err = {0};
    sq_client *c = client();
    ck_assert_msg(sq_push_bulk(c, "UpsertJob", list, NULL, &err) == 0, "%s", err.message);
    sq_client_free(c);
    json_decref(list);
}

/* Every member of the retry set, parsed (a new JSON array). */
static json_t *retry_jobs(void)
{
    redisReply *r = sqt_cmd(C, "ZRANGE retry 0 -1");
    ck_assert_int_eq(r->type, REDIS_REPLY_ARRAY);
    json_t *all = json_array();
    for (size_t i = 0; i < r->elements; i++) {
        json_t *j = json_loads(r->element[i]->str, 0, NULL);
        ck_assert_ptr_nonnull(j);
        json_array_append_new(all, j);
    }
    freeReplyObject(r);
    return all;
}

static const char *jstr(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

/* The retry set as "class: message" lines, for failure messages. */
static char *retry_summary(void)
{
    json_t *all = retry_jobs();
    size_t cap = 8192, len = 0;
    char *s = calloc(1, cap);
    size_t i;
    json_t *j;
    json_array_foreach(all, i, j)
    {
        if (len + 600 > cap)
            break;
        len += (size_t)snprintf(s + len, cap - len, "  %s %s: %.400s\n", jstr(j, "class"),
                                jstr(j, "error_class"), jstr(j, "error_message"));
    }
    json_decref(all);
    return s;
}

/* Make every retry due now (instead of Sidekiq's 15 s+ backoff): the
 * scheduler (poll_interval_average 0.2) moves them back to their queue. */
static void force_retries(void)
{
    redisReply *r = sqt_cmd(C, "ZRANGE retry 0 -1");
    for (size_t i = 0; i < r->elements; i++)
        freeReplyObject(sqt_cmd(C, "ZADD retry XX 0 %b", r->element[i]->str,
                                (size_t)r->element[i]->len));
    freeReplyObject(r);
}

static long long rows(const char *where)
{
    return sqt_pg_int(&PG, "SELECT count(*) FROM jobs_done WHERE %s", where);
}

/* Wait until rows(where) >= want, sampling squire's connection count all
 * along; returns the last row count. *max_conns keeps the highest sample. */
static long long wait_rows(const char *where, long long want, double timeout, long long *max_conns)
{
    double until = sqt_now() + timeout;
    long long n = 0;
    for (;;) {
        long long conns = sqt_pg_count_app(&PG, APP);
        if (max_conns && conns > *max_conns)
            *max_conns = conns;
        if (!sqt_pg_try_int(&PG, &n, "SELECT count(*) FROM jobs_done WHERE %s", where))
            n = 0;
        if (n >= want || sqt_now() > until)
            return n;
        sqt_sleep(0.02);
    }
}

/* Sample squire's connection count for `seconds`, keeping the maximum. */
static void sample_conns(double seconds, long long *max_conns)
{
    double until = sqt_now() + seconds;
    while (sqt_now() < until) {
        long long conns = sqt_pg_count_app(&PG, APP);
        if (conns > *max_conns)
            *max_conns = conns;
        sqt_sleep(0.02);
    }
}

static long long wait_conns_at_most(long long want, double timeout)
{
    double until = sqt_now() + timeout;
    long long n;
    while ((n = sqt_pg_count_app(&PG, APP)) > want && sqt_now() < until)
        sqt_sleep(0.05);
    return n;
}

static bool log_has_line(const sqt_proc *p, const char *a, const char *b)
{
    char *log = sqt_log_read(p);
    bool found = false;
    for (char *line = strtok(log, "\n"); line && !found; line = strtok(NULL, "\n"))
        found = strstr(line, a) && strstr(line, b);
    free(log);
    return found;
}

/* A setting as a job's connection sees it: ShowJob(name) run, its row read
 * (malloc'd). */
static char *show_setting(const char *name)
{
    char jid[25], args[100];
    snprintf(args, sizeof args, "[\"%s\"]", name);
    itest_push("ShowJob", args, NULL, jid);
    double until = sqt_now() + 10;
    while (sqt_pg_int(&PG, "SELECT count(*) FROM public.settings WHERE jid = '%s'", jid) < 1 &&
           sqt_int(C, "ZCARD retry") == 0 && sqt_now() < until)
        sqt_sleep(0.02);
    char *v = sqt_pg_str(&PG, "SELECT value FROM public.settings WHERE jid = '%s'", jid);
    char *rs = retry_summary();
    ck_assert_msg(v != NULL, "ShowJob(%s) recorded nothing; retry set:\n%s", name, rs);
    free(rs);
    return v;
}

static void assert_setting(const char *name, const char *want)
{
    char *v = show_setting(name);
    ck_assert_msg(strcmp(v, want) == 0, "%s is \"%s\", want \"%s\"", name, v, want);
    free(v);
}

/* ---- many jobs through a small pool ----------------------------------------- */

START_TEST(many_jobs_share_a_small_pool)
{
    sqt_proc p;
    pg_squire(&p, PG.url, 8, "  :pool: 4\n  :checkout_timeout: 5\n  :application_name: " APP "\n",
              NULL);
    /* the budget: pool against max_connections (40), no warning for 4 */
    ck_assert_msg(sqt_log_wait(&p, "max_connections", 5), "no pool budget line in the log");
    ck_assert(!log_has_line(&p, "WARN", "max_connections"));

    push_upserts(1, 500, 0.01);
    long long max_conns = 0;
    long long n = wait_rows("true", 500, 90, &max_conns);
    char *rs = retry_summary();
    dump_log_on(n != 500, &p);
    ck_assert_msg(n == 500, "%lld of 500 jobs wrote their row; retry set:\n%s", n, rs);
    free(rs);
    /* each job exactly once, every argument written */
    ck_assert_int_eq(rows("runs <> 1"), 0);
    ck_assert_int_eq(sqt_pg_int(&PG, "SELECT sum(n) FROM jobs_done"), 500LL * 501 / 2);
    ck_assert_int_eq(sqt_pg_int(&PG, "SELECT count(DISTINCT n) FROM jobs_done"), 500);
    ck_assert_int_eq(sqt_int(C, "ZCARD retry"), 0);
    /* never more connections than the pool, and the pool was really shared
     * by the 8 workers (4 connections busy at once at some point) */
    ck_assert_msg(max_conns <= 4, "%lld connections for a pool of 4", max_conns);
    ck_assert_msg(max_conns >= 2, "only %lld connection(s) seen: was the pool used?", max_conns);
    /* idle connections stay open for reuse, still within the pool */
    ck_assert_int_le(sqt_pg_count_app(&PG, APP), 4);
    ck_assert_int_eq(sqt_pg_int(&PG,
                                "SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                                "'" APP "' AND state LIKE 'idle in transaction%%'"),
                     0);
    itest_stop(&p);
    /* nothing left behind once squire exits */
    ck_assert_int_eq(wait_conns_at_most(0, 10), 0);
}
END_TEST

/* Isolated mode (issue 15): each worker process has its own pool of one
 * connection, kept between its jobs. */
START_TEST(isolated_workers_each_use_their_own_connection)
{
    sqt_proc p;
    pg_squire(&p, PG.url, 4, "  :application_name: " APP "\n:isolated: true\n", NULL);
    push_upserts(1, 60, 0.01);
    long long max_conns = 0;
    long long n = wait_rows("true", 60, 30, &max_conns);
    dump_log_on(n != 60, &p);
    ck_assert_int_eq(n, 60);
    ck_assert_int_eq(rows("runs <> 1"), 0);
    ck_assert_int_eq(sqt_int(C, "ZCARD retry"), 0);
    /* one per worker process, and the daemon's own for its budget check */
    ck_assert_msg(max_conns <= 5, "%lld connections for 4 worker processes", max_conns);
    ck_assert_msg(max_conns >= 1, "no connection seen");
    ck_assert_int_eq(sqt_pg_int(&PG,
                                "SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                                "'" APP "' AND state LIKE 'idle in transaction%%'"),
                     0);
    itest_stop(&p);
    ck_assert_int_eq(wait_conns_at_most(0, 10), 0);
}
END_TEST

/* ---- a pool smaller than concurrency ---------------------------------------- */

START_TEST(exhausted_pool_times_out_with_a_retryable_error)
{
    sqt_proc p;
    pg_squire(&p, PG.url, 3,
              "  :pool: 1\n  :checkout_timeout: 0.5\n  :application_name: " APP "\n", NULL);
    char hold[25];
    itest_push("HoldJob", "[3]", NULL, hold);
    /* the one connection is busy in pg_sleep */
    double until = sqt_now() + 10;
    while (sqt_pg_int(&PG, "SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                           "'" APP "' AND state = 'active' AND query LIKE '%%pg_sleep%%'") < 1) {
        ck_assert_msg(sqt_now() < until, "HoldJob never held a connection");
        sqt_sleep(0.02);
    }
    double t0 = sqt_now();
    char a[25], b[25];
    itest_push("UpsertJob", "[1]", NULL, a);
    itest_push("UpsertJob", "[2]", NULL, b);
    long long inretry = sqt_wait_int(C, 2, 10, "ZCARD retry");
    double waited = sqt_now() - t0;
    dump_log_on(inretry != 2, &p);
    ck_assert_int_eq(inretry, 2);
    /* they gave up after the checkout timeout, long before HoldJob let go */
    ck_assert_msg(waited < 2.5, "waiters failed after %.2f s (checkout_timeout 0.5)", waited);
    ck_assert_int_eq(rows("true"), 0);
    json_t *all = retry_jobs();
    size_t i;
    json_t *j;
    json_array_foreach(all, i, j)
    {
        ck_assert_str_eq(jstr(j, "class"), "UpsertJob");
        ck_assert_str_eq(jstr(j, "error_class"), "Squire::DatabaseUnavailable");
        const char *msg = jstr(j, "error_message");
        ck_assert_msg(strstr(msg, "0.5") != NULL, "message does not name the timeout: %s", msg);
        ck_assert_int_eq(json_integer_value(json_object_get(j, "retry_count")), 0);
        /* retryable: Sidekiq's default retry applies, not the dead set */
        double waited_job = json_number_value(json_object_get(j, "failed_at")) -
                            json_number_value(json_object_get(j, "enqueued_at"));
        ck_assert_msg(waited_job >= 0.4, "failed after %.3f s: did it wait at all?", waited_job);
    }
    json_decref(all);
    ck_assert_int_eq(sqt_int(C, "ZCARD dead"), 0);
    ck_assert_int_le(sqt_pg_count_app(&PG, APP), 1);

    /* HoldJob finishes and gives the connection back: no deadlock */
    ck_assert_int_eq(wait_rows("n = 0", 1, 10, NULL), 1);
    char c[25];
    itest_push("UpsertJob", "[3]", NULL, c);
    ck_assert_int_eq(wait_rows("n = 3", 1, 10, NULL), 1);
    ck_assert_int_le(sqt_pg_count_app(&PG, APP), 1);
    /* and the two that timed out succeed when retried */
    force_retries();
    long long ok = wait_rows("n IN (1, 2)", 2, 10, NULL);
    dump_log_on(ok != 2, &p);
    ck_assert_int_eq(ok, 2);
    ck_assert_int_eq(sqt_int(C, "ZCARD retry"), 0);
    itest_stop(&p);
}
END_TEST

/* ---- PostgreSQL going away under the pool ----------------------------------- */

/* 20 jobs warm the pool (2 connections, idle afterwards). */
static void warm_pool(sqt_proc *p)
{
    pg_squire(p, PG.url, 4,
              "  :pool: 2\n  :checkout_timeout: 2\n  :connect_timeout: 2\n"
              "  :application_name: " APP "\n",
              NULL);
    push_upserts(1, 20, 0.05);
    long long max_conns = 0;
    ck_assert_int_eq(wait_rows("n BETWEEN 1 AND 20", 20, 20, &max_conns), 20);
    ck_assert_int_le(max_conns, 2);
    ck_assert_int_eq(sqt_int(C, "ZCARD retry"), 0);
    /* the pool keeps its idle connections: they are what breaks next */
    ck_assert_int_ge(sqt_pg_count_app(&PG, APP), 1);
}

/* After the pool's idle connections broke, 40 new jobs all succeed at their
 * first attempt: a broken connection is never handed out. */
static void after_recovery_all_succeed(sqt_proc *p)
{
    long long max_conns = 0;
    push_upserts(201, 40, 0.02);
    long long n = wait_rows("n BETWEEN 201 AND 240", 40, 30, &max_conns);
    char *rs = retry_summary();
    dump_log_on(n != 40 || sqt_int(C, "ZCARD retry") != 0, p);
    ck_assert_msg(n == 40 && sqt_int(C, "ZCARD retry") == 0,
                  "%lld of 40 jobs succeeded after recovery; retry set:\n%s", n, rs);
    free(rs);
    ck_assert_int_eq(rows("runs <> 1"), 0);
    ck_assert_msg(max_conns <= 2, "%lld connections for a pool of 2", max_conns);
    ck_assert_int_le(sqt_pg_count_app(&PG, APP), 2);
}

START_TEST(restart_while_idle_never_hands_out_a_broken_connection)
{
    sqt_proc p;
    warm_pool(&p);
    sqt_pg_restart(&PG);
    ck_assert_int_eq(sqt_pg_count_app(&PG, APP), 0);
    after_recovery_all_succeed(&p);
    ck_assert_int_eq(kill(p.pid, 0), 0);
    itest_stop(&p);
}
END_TEST

START_TEST(terminated_backends_are_replaced)
{
    sqt_proc p;
    warm_pool(&p);
    long long killed = sqt_pg_int(&PG, "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) "
                                       "FROM pg_stat_activity WHERE application_name = '" APP
                                       "') t");
    ck_assert_int_ge(killed, 1);
    ck_assert_int_eq(wait_conns_at_most(0, 5), 0);
    after_recovery_all_succeed(&p);
    itest_stop(&p);
}
END_TEST

START_TEST(restart_mid_run_jobs_fail_retry_and_succeed)
{
    sqt_proc p;
    warm_pool(&p);
    /* 40 jobs of 0.1 s on 2 connections: about 2 s of work; the server goes
     * down 0.5 s in, for 1 s */
    push_upserts(101, 40, 0.1);
    long long max_conns = 0;
    sample_conns(0.5, &max_conns);
    sqt_pg_down(&PG);
    sqt_sleep(1.0);
    ck_assert_int_eq(kill(p.pid, 0), 0);
    sqt_pg_up(&PG);
    /* every job either wrote its row or failed into the retry set */
    double until = sqt_now() + 30;
    long long done = 0, failed = 0;
    do {
        sample_conns(0.1, &max_conns);
        done = rows("n BETWEEN 101 AND 140");
        failed = sqt_int(C, "ZCARD retry");
    } while (done + failed < 40 && sqt_now() < until);
    char *rs = retry_summary();
    dump_log_on(done + failed != 40, &p);
    ck_assert_msg(done + failed == 40, "%lld done + %lld failed of 40; retry set:\n%s", done,
                  failed, rs);
    ck_assert_msg(failed >= 1, "no job failed while PostgreSQL was down");
    /* the failures are database failures, never a handler that was handed a
     * connection the pool should have known was broken */
    json_t *all = retry_jobs();
    size_t i;
    json_t *j;
    json_array_foreach(all, i, j)
    {
        const char *ec = jstr(j, "error_class");
        ck_assert_msg(strcmp(ec, "Squire::DatabaseUnavailable") == 0 ||
                          strcmp(ec, "PG::ConnectionBad") == 0 || strcmp(ec, "PG::Error") == 0,
                      "unexpected failure: %s: %s", ec, jstr(j, "error_message"));
    }
    json_decref(all);
    free(rs);
    /* retried (now rather than in 15 s), they all succeed */
    force_retries();
    long long n = wait_rows("n BETWEEN 101 AND 140", 40, 30, &max_conns);
    rs = retry_summary();
    dump_log_on(n != 40, &p);
    ck_assert_msg(n == 40, "%lld of 40 after retrying; retry set:\n%s", n, rs);
    free(rs);
    ck_assert_int_eq(sqt_int(C, "ZCARD retry"), 0);
    ck_assert_int_eq(rows("runs <> 1"), 0);
    /* and new work runs cleanly */
    after_recovery_all_succeed(&p);
    ck_assert_msg(max_conns <= 2, "%lld connections for a pool of 2", max_conns);
    itest_stop(&p);
    ck_assert_int_eq(wait_conns_at_most(0, 10), 0);
}
END_TEST

/* The FATAL a terminated backend leaves behind is logged at WARN: an
 * operator running at log_level warn sees why connections were replaced. */
START_TEST(server_fatal_is_logged_at_warn)
{
    sqt_proc p;
    pg_squire(&p, PG.url, 1, "  :pool: 1\n  :application_name: " APP "\n", NULL);
    char a[25], b[25];
    itest_push("UpsertJob", "[1]", NULL, a);
    ck_assert_int_eq(wait_rows("n = 1", 1, 10, NULL), 1);
    ck_assert_int_eq(sqt_pg_count_app(&PG, APP), 1);
    ck_assert_int_eq(sqt_pg_int(&PG, "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) "
                                     "FROM pg_stat_activity WHERE application_name = '" APP
                                     "') t"),
                     1);
    ck_assert_int_eq(wait_conns_at_most(0, 5), 0);
    itest_push("UpsertJob", "[2]", NULL, b);
    ck_assert_int_eq(wait_rows("n = 2", 1, 10, NULL), 1);
    char *log = sqt_log_read(&p);
    bool warned = false;
    for (char *line = strtok(log, "\n"); line && !warned; line = strtok(NULL, "\n"))
        warned = strstr(line, " WARN: ") && strstr(line, "FATAL") &&
                 strstr(line, "terminating connection");
    free(log);
    dump_log_on(!warned, &p);
    ck_assert_msg(warned, "no WARN line for the server's FATAL");
    itest_stop(&p);
}
END_TEST

/* A restart with a sub-second gap under a backlog: checkouts wait out the
 * reconnect instead of failing at once, so only jobs whose queries the
 * shutdown itself killed (about one per connection) go to retry and its
 * 15 s+ backoff. */
START_TEST(brief_outage_does_not_fill_the_retry_set)
{
    sqt_proc p;
    pg_squire(&p, PG.url, 4, "  :pool: 2\n  :application_name: " APP "\n", NULL);
    push_upserts(1, 10, 0.01);
    ck_assert_int_eq(wait_rows("n BETWEEN 1 AND 10", 10, 20, NULL), 10);
    /* 60 jobs of 0.05 s on 2 connections: 1.5 s of work; down 0.2 s in */
    push_upserts(101, 60, 0.05);
    sqt_sleep(0.2);
    double t0 = sqt_now();
    sqt_pg_down(&PG);
    sqt_sleep(0.5);
    sqt_pg_up(&PG);
    double gap = sqt_now() - t0;
    double until = sqt_now() + 30;
    long long done = 0, failed = 0;
    do {
        sqt_sleep(0.1);
        done = rows("n BETWEEN 101 AND 160");
        failed = sqt_int(C, "ZCARD retry");
    } while (done + failed < 60 && sqt_now() < until);
    fprintf(stderr, "brief outage: %lld of 60 jobs to retry over a %.2f s restart\n", failed,
            gap);
    char *rs = retry_summary();
    if (failed > 3)
        fprintf(stderr, "--- retry set ---\n%s", rs);
    free(rs);
    ck_assert_msg(done + failed == 60, "%lld done + %lld failed of 60", done, failed);
    ck_assert_msg(failed <= 3, "%lld of 60 jobs went to retry over a %.2f s restart (pool 2)",
                  failed, gap);
    ck_assert_int_eq(rows("runs <> 1"), 0);
    itest_stop(&p);
}
END_TEST

/* ---- PostgreSQL down at start ----------------------------------------------- */

START_TEST(starts_while_postgres_is_down)
{
    int port = sqt_free_port();
    char url[128];
    snprintf(url, sizeof url, "postgresql://postgres@127.0.0.1:%d/postgres", port);
    sqt_proc p;
    pg_squire(&p, url, 2,
              "  :pool: 2\n  :checkout_timeout: 1\n  :connect_timeout: 2\n"
              "  :application_name: " APP "\n",
              NULL);
    char a[25];
    itest_push("UpsertJob", "[1]", NULL, a);
    long long inretry = sqt_wait_int(C, 1, 10, "ZCARD retry");
    dump_log_on(inretry != 1, &p);
    ck_assert_int_eq(inretry, 1);
    json_t *j = itest_only_member("retry", NULL);
    ck_assert_str_eq(jstr(j, "error_class"), "Squire::DatabaseUnavailable");
    ck_assert_msg(strcasestr(jstr(j, "error_message"), "refused") != NULL,
                  "the message does not say why: %s", jstr(j, "error_message"));
    json_decref(j);
    sqt_sleep(0.5);
    ck_assert_int_eq(kill(p.pid, 0), 0);

    /* PostgreSQL comes up later: the pool connects lazily */
    sqt_pg_start_on(&PG, port);
    make_tables();
    char b[25];
    itest_push("UpsertJob", "[2]", NULL, b);
    long long ok = wait_rows("n = 2", 1, 10, NULL);
    dump_log_on(ok != 1, &p);
    ck_assert_int_eq(ok, 1);
    force_retries();
    ck_assert_int_eq(wait_rows("n = 1", 1, 10, NULL), 1);
    ck_assert_int_le(sqt_pg_count_app(&PG, APP), 2);
    itest_stop(&p);
}
END_TEST

static long long sessions_of(const char *db)
{
    return sqt_pg_int(&PG, "SELECT sessions FROM pg_stat_database WHERE datname = '%s'", db);
}

/* PostgreSQL down at start: the budget is asked again 60 s later, while a
 * job holds the pool's only connection. The question must not take a
 * connection past `pool` (no new session while the job holds its own). */
START_TEST(late_budget_check_stays_within_the_pool)
{
    int port = sqt_free_port();
    char url[128];
    snprintf(url, sizeof url, "postgresql://postgres@127.0.0.1:%d/sqjobs", port);
    sqt_proc p;
    pg_squire(&p, url, 1, "  :pool: 1\n  :checkout_timeout: 5\n  :application_name: " APP "\n",
              NULL);
    double started = sqt_now();
    sqt_pg_start_on(&PG, port);
    sqt_pg_exec(&PG, "CREATE DATABASE sqjobs");
    char a[25];
    itest_push("HoldJob", "[90]", NULL, a);
    double until = sqt_now() + 15;
    while (sqt_pg_count_app(&PG, APP) < 1 && sqt_now() < until)
        sqt_sleep(0.05);
    ck_assert_int_eq(sqt_pg_count_app(&PG, APP), 1);
    sqt_sleep(1.5); /* its session counted (stats flush at most once a second) */
    long long before = sessions_of("sqjobs");
    sqt_sleep(started + 66 - sqt_now()); /* past the second budget check */
    long long after = sessions_of("sqjobs");
    ck_assert_int_eq(sqt_pg_count_app(&PG, APP), 1);
    dump_log_on(after != before, &p);
    ck_assert_msg(after == before,
                  "%lld more session(s) to the database while the pool's one connection was "
                  "in use",
                  after - before);
    itest_stop(&p);
}
END_TEST

/* ---- a server that never answers ------------------------------------------------ */

/* A plain TCP listener on a free loopback port that accepts every connection
 * and never says a word: a PostgreSQL that hangs before its first reply.
 * Connections accepted before fail_until (monotonic, sqt_now) are closed at
 * once instead, a server that fails fast. */
typedef struct hang_server {
    int fd, port;
    double fail_until;
    pthread_t thread;
    int held[64];
    int nheld;
} hang_server;

static void *hang_accept(void *arg)
{
    hang_server *h = arg;
    for (;;) {
        int c = accept4(h->fd, NULL, NULL, SOCK_CLOEXEC);
        if (c < 0)
            return NULL; /* shut down */
        if (sqt_now() < h->fail_until || h->nheld == (int)(sizeof h->held / sizeof h->held[0]))
            close(c);
        else
            h->held[h->nheld++] = c;
    }
}

static void hang_start(hang_server *h, double fail_for)
{
    memset(h, 0, sizeof *h);
    h->fail_until = sqt_now() + fail_for;
    h->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(h->fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    ck_assert_int_eq(bind(h->fd, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(listen(h->fd, 16), 0);
    ck_assert_int_eq(getsockname(h->fd, (struct sockaddr *)&a, &len), 0);
    h->port = ntohs(a.sin_port);
    ck_assert_int_eq(pthread_create(&h->thread, NULL, hang_accept, h), 0);
}

static void hang_stop(hang_server *h)
{
    shutdown(h->fd, SHUT_RDWR); /* wakes accept */
    pthread_join(h->thread, NULL);
    close(h->fd);
    for (int i = 0; i < h->nheld; i++)
        close(h->held[i]);
}

/* squire, reliable fetch (lease_ttl 4: renewed every second), beat_interval
 * 1, its database at h with connect_timeout=60 in the URL (which wins over
 * squire's own). */
static void hang_squire(sqt_proc *p, const hang_server *h)
{
    char url[160], yaml[512];
    snprintf(url, sizeof url, "postgresql://postgres@127.0.0.1:%d/postgres?connect_timeout=60",
             h->port);
    snprintf(yaml, sizeof yaml,
             ":poll_interval_average: 0.2\n:beat_interval: 1\n:fetch: reliable\n"
             ":lease_ttl: 4\n:database:\n  :url: %s\n  :connect_timeout: 1\n",
             url);
    const char *cfg = itest_config(yaml);
    const char *argv[] = {"-C", cfg, "-r", SQ_TEST_PGPLUGIN, "-c", "2", "-t", "8", NULL};
    sqt_squire_start(p, R.url, argv, NULL);
    ck_assert_msg(sqt_log_wait(p, "starting", 15), "squire did not start");
}

/* The process's identity, once its first heartbeat is in Redis (within
 * timeout), else "". */
static void beat_identity(double timeout, char out[300])
{
    out[0] = '\0';
    if (sqt_wait_int(C, 1, timeout, "SCARD processes") < 1)
        return;
    redisReply *r = sqt_cmd(C, "SRANDMEMBER processes");
    if (r->type == REDIS_REPLY_STRING)
        snprintf(out, 300, "%s", r->str);
    freeReplyObject(r);
}

static double beat_of(const char *id)
{
    redisReply *r = sqt_cmd(C, "HGET %s beat", id);
    double b = r->type == REDIS_REPLY_STRING ? strtod(r->str, NULL) : 0;
    freeReplyObject(r);
    return b;
}

/* The main thread is free while the database hangs: the heartbeat moves at
 * every sample (1.5 s apart, beat_interval 1), the lease (lease_ttl 4,
 * renewed every second) never runs low, and a TERM ends the process within
 * 5 s (the URL's connect_timeout is 60). Kills p before failing. */
static void assert_main_thread_free(sqt_proc *p, const char *id)
{
    char why[400] = "";
    double last = beat_of(id);
    for (int i = 0; i < 4 && !why[0]; i++) {
        sqt_sleep(1.5);
        double b = beat_of(id);
        long long ttl = sqt_int(C, "PTTL squire:lease:%s", id);
        if (b <= last)
            snprintf(why, sizeof why,
                     "heartbeat stuck at %.3f for 1.5 s (beat_interval 1): the main thread is "
                     "held by the database",
                     last);
        else if (ttl < 2000)
            snprintf(why, sizeof why,
                     "lease squire:lease:%s not renewed: PTTL %lld ms (lease_ttl 4 s)", id, ttl);
        last = b;
    }
    double t0 = sqt_now();
    kill(p->pid, SIGTERM);
    int st = why[0] ? -1 : sqt_proc_wait(p, 5);
    if (!why[0] && st != 0)
        snprintf(why, sizeof why, "TERM not acted on within 5 s (exit %d after %.1f s)", st,
                 sqt_now() - t0);
    if (why[0]) {
        dump_log_on(true, p);
        sqt_proc_stop(p, SIGKILL);
        ck_abort_msg("%s", why);
    }
}

/* The server hangs from the first connection: the budget question at start
 * must not hold the start (the first heartbeat comes at once), nor the main
 * thread after it. */
START_TEST(hanging_database_at_start_never_holds_the_main_thread)
{
    hang_server h;
    hang_start(&h, 0);
    sqt_proc p;
    hang_squire(&p, &h);
    double t0 = sqt_now();
    char id[300];
    beat_identity(5, id);
    if (!id[0]) {
        dump_log_on(true, &p);
        sqt_proc_stop(&p, SIGKILL);
        hang_stop(&h);
        ck_abort_msg("no heartbeat %.1f s after the start: the start waits for the database",
                     sqt_now() - t0);
    }
    assert_main_thread_free(&p, id);
    hang_stop(&h);
}
END_TEST

/* The server fails fast at start (limits unknown: asked again 60 s later),
 * then hangs: the later question must not hold the main thread either. */
START_TEST(hanging_database_later_never_holds_the_main_thread)
{
    hang_server h;
    hang_start(&h, 20);
    double started = sqt_now();
    sqt_proc p;
    hang_squire(&p, &h);
    ck_assert_msg(sqt_log_wait(&p, "starting anyway", 10), "no failed budget check at start");
    char id[300];
    beat_identity(5, id);
    ck_assert_msg(id[0], "no heartbeat");
    sqt_sleep(started + 62 - sqt_now()); /* past the second question, which hangs */
    assert_main_thread_free(&p, id);
    hang_stop(&h);
    ck_assert_int_ge(h.nheld, 1); /* it was asked, and hung */
}
END_TEST

/* connect_timeout=0 in the URL is libpq's "wait for ever": `squire --check`
 * against a server that never answers must still end, with a FAIL, within
 * squire's own connect_timeout (5 s by default), not hang. */
START_TEST(check_with_connect_timeout_zero_ends_against_a_hanging_server)
{
    hang_server h;
    hang_start(&h, 0);
    char *out = NULL;
    double t0 = sqt_now();
    int st = sqt_sh(R.url, &out,
                    "DATABASE_URL='postgresql://app:"
                    "s3cr3t-pw"
                    "@127.0.0.1:%d/db?connect_timeout=0' "
                    "timeout -s KILL 30 %s --check --allow-root -r %s 2>&1",
                    h.port, SQ_TEST_SQUIRE, SQ_TEST_PLUGIN);
    double took = sqt_now() - t0;
    hang_stop(&h);
    ck_assert_msg(st == 69 && took < 20,
                  "--check exit %d after %.1f s (want 69 within squire's connect_timeout; 137: "
                  "killed, it hung):\n%s",
                  st, took, out);
    ck_assert_msg(strstr(out, "database  FAIL") != NULL, "no database FAIL line:\n%s", out);
    ck_assert_msg(strstr(out, "s3cr3t-pw") == NULL, "the password shows:\n%s", out);
    free(out);
}
END_TEST

/* A job that needs the database, with connect_timeout=0 in the URL and a
 * server that never answers: the job fails and goes to retry with the
 * connect's failure (within checkout_timeout plus squire's connect_timeout),
 * whether its connection is the pool's only one (pool 1: the budget question
 * at start must have given its place back, not keep it for ever) or another
 * (pool 2: its own connect must end). */
START_TEST(job_with_connect_timeout_zero_fails_against_a_hanging_server)
{
    hang_server h;
    hang_start(&h, 0);
    for (int pool = 1; pool <= 2; pool++) {
        char yaml[512];
        snprintf(yaml, sizeof yaml,
                 ":poll_interval_average: 0.2\n:beat_interval: 1\n:database:\n  :url: "
                 "postgresql://postgres@127.0.0.1:%d/postgres?connect_timeout=0\n"
                 "  :pool: %d\n  :connect_timeout: 2\n  :checkout_timeout: 1\n",
                 h.port, pool);
        const char *cfg = itest_config(yaml);
        const char *argv[] = {"-C", cfg, "-r", SQ_TEST_PGPLUGIN, "-c", "1", "-t", "3", NULL};
        sqt_proc p;
        sqt_squire_start(&p, R.url, argv, NULL);
        ck_assert_msg(sqt_log_wait(&p, "starting", 15), "squire did not start");
        sqt_sleep(6); /* the budget question at start has had its connect_timeout (2 s) */
        char a[25];
        itest_push("UpsertJob", "[1]", NULL, a);
        long long n = sqt_wait_int(C, 1, 15, "ZCARD retry");
        json_t *j = n == 1 ? itest_only_member("retry", NULL) : NULL;
        const char *msg = j ? jstr(j, "error_message") : "";
        if (n != 1 || strstr(msg, "cannot connect") == NULL) {
            dump_log_on(true, &p);
            sqt_proc_stop(&p, SIGKILL);
            hang_stop(&h);
            ck_abort_msg("pool %d: %s%s", pool,
                         n != 1 ? "the job did not fail within 15 s (connect_timeout 2, "
                                  "checkout_timeout 1): its worker waits on the database for ever"
                                : "the job did not fail on the connect: ",
                         msg);
        }
        json_decref(j);
        itest_stop(&p);
        freeReplyObject(sqt_cmd(C, "DEL retry"));
    }
    hang_stop(&h);
}
END_TEST

/* The handler's query went through, then the server stops answering on its
 * connection (its backend frozen with SIGSTOP) before the connection goes
 * back to the pool. Putting it back (ROLLBACK, DISCARD ALL) must not wait on
 * that server for ever: the job that succeeded is recorded and the worker
 * takes the next job (one worker, so the second job runs only after). */
START_TEST(frozen_backend_at_checkin_does_not_hold_the_worker)
{
    sqt_proc p;
    pg_squire(&p, PG.url, 1, "  :pool: 1\n  :connect_timeout: 2\n  :application_name: " APP "\n",
              NULL);
    char a[25], b[25];
    itest_push("UpsertThenWaitJob", "[1, 3]", NULL, a);
    long long pid = 0;
    for (double until = sqt_now() + 10; sqt_now() < until && pid == 0; sqt_sleep(0.05))
        if (sqt_pg_int(&PG, "SELECT count(*) FROM jobs_done WHERE n = 1") == 1)
            pid = sqt_pg_int(&PG,
                             "SELECT pid FROM pg_stat_activity WHERE application_name = '" APP "'");
    ck_assert_msg(pid > 0, "the first job never ran");
    ck_assert_int_eq(kill((pid_t)pid, SIGSTOP), 0); /* the handler still waits (3 s) */
    itest_push("UpsertJob", "[2]", NULL, b);
    bool done = wait_rows("n = 2", 1, 15, NULL) == 1;
    kill((pid_t)pid, SIGCONT);
    if (!done) {
        dump_log_on(true, &p);
        sqt_proc_stop(&p, SIGKILL);
        ck_abort_msg("the second job did not run within 15 s of the first one's backend "
                     "freezing: the worker waits for ever putting the connection back");
    }
    itest_stop(&p);
}
END_TEST

/* The postmaster's pid, from postmaster.pid. */
static pid_t postmaster_pid(void)
{
    char path[400];
    snprintf(path, sizeof path, "%s/postmaster.pid", PG.data);
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    long pid = 0;
    ck_assert_int_eq(fscanf(f, "%ld", &pid), 1);
    fclose(f);
    return (pid_t)pid;
}

/* The handler left a query running, then the whole server froze (its
 * postmaster stopped: the kernel still accepts connections for it, nobody
 * reads them). The cancel sent when the connection comes back must not wait
 * for that server for ever: the worker goes on to the next job, which fails
 * on its connect and goes to retry. */
START_TEST(frozen_server_at_cancel_does_not_hold_the_worker)
{
    sqt_proc p;
    pg_squire(&p, PG.url, 1,
              "  :pool: 1\n  :connect_timeout: 2\n  :checkout_timeout: 1\n"
              "  :application_name: " APP "\n",
              NULL);
    char a[25], b[25];
    itest_push("UpsertThenWaitJob", "[1, 3, true]", NULL, a);
    bool ran = wait_rows("n = 1", 1, 10, NULL) == 1;
    ck_assert_msg(ran, "the first job never ran");
    pid_t pm = postmaster_pid();
    ck_assert_int_eq(kill(pm, SIGSTOP), 0); /* the handler still waits (3 s) */
    itest_push("UpsertJob", "[2]", NULL, b);
    long long n = sqt_wait_int(C, 1, 20, "ZCARD retry");
    kill(pm, SIGCONT);
    if (n != 1) {
        dump_log_on(true, &p);
        sqt_proc_stop(&p, SIGKILL);
        ck_abort_msg("the second job had no outcome within 20 s of the server freezing: the "
                     "worker waits for ever cancelling the first one's query");
    }
    itest_stop(&p);
}
END_TEST

/* A multi-host URL whose first host accepts and never answers: as libpq's
 * own connect does, a job's connect and `squire --check` go on to the next
 * host after connect_timeout, and get the real server there. (pool 2: the
 * budget question at start holds one connection place meanwhile.) */
START_TEST(multi_host_url_fails_over_past_a_hanging_host)
{
    hang_server h;
    hang_start(&h, 0);
    char url[200], db[300];
    snprintf(url, sizeof url, "postgresql://postgres@127.0.0.1:%d,127.0.0.1:%d/postgres", h.port,
             PG.port);
    snprintf(db, sizeof db,
             "  :pool: 2\n  :connect_timeout: 2\n  :checkout_timeout: 1\n"
             "  :application_name: " APP "\n");
    sqt_proc p;
    pg_squire(&p, url, 1, db, NULL);
    char a[25];
    itest_push("UpsertJob", "[1]", NULL, a);
    bool done = wait_rows("n = 1", 1, 20, NULL) == 1;
    char *out = NULL;
    int st = sqt_sh(R.url, &out,
                    "DATABASE_URL='%s' timeout -s KILL 30 %s --check --allow-root -r %s 2>&1", url,
                    SQ_TEST_SQUIRE, SQ_TEST_PLUGIN);
    hang_stop(&h);
    dump_log_on(!done, &p);
    ck_assert_msg(done, "the job never ran on the second host");
    ck_assert_msg(st == 0 && strstr(out, "database  ok"), "--check exit %d:\n%s", st, out);
    free(out);
    itest_stop(&p);
}
END_TEST

/* KNOWN STALL, not fixed (run with SQ_TEST_KNOWN_STALLS=1): a service=
 * entry whose pg_service.conf blocks on open (a FIFO here; a hung network
 * file system in life). libpq reads it inside the connect start squire
 * calls on the main thread to learn the URL's settings (pgpool.c,
 * libpq_settings, from sq_database_open), so the start stops there: no
 * heartbeat, and TERM is not acted on. */
START_TEST(blocking_service_file_never_holds_the_main_thread)
{
    char dir[256], fifo[300], svc[320];
    sqt_tempdir(dir, "svc");
    snprintf(fifo, sizeof fifo, "%s/pg_service.conf", dir);
    ck_assert_int_eq(mkfifo(fifo, 0600), 0);
    snprintf(svc, sizeof svc, "PGSERVICEFILE=%s", fifo);
    const char *env[] = {svc, "DATABASE_URL=service=sqsvc", NULL};
    const char *cfg = itest_config(":poll_interval_average: 0.2\n:beat_interval: 1\n");
    const char *argv[] = {"-C", cfg, "-r", SQ_TEST_PGPLUGIN, "-c", "1", "-t", "3", NULL};
    sqt_proc p;
    sqt_squire_start(&p, R.url, argv, env);
    char id[300];
    beat_identity(8, id);
    kill(p.pid, SIGTERM);
    int st = sqt_proc_wait(&p, 5);
    if (st < 0)
        sqt_proc_stop(&p, SIGKILL);
    ck_assert_msg(id[0] && st == 0,
                  "a service file that blocks on open: %s; TERM %s",
                  id[0] ? "heartbeats came" : "no heartbeat within 8 s of the start",
                  st == 0 ? "ended the process" : "not acted on within 5 s");
}
END_TEST

START_TEST(no_database_configured_fails_the_job_not_the_daemon)
{
    sqt_proc p;
    const char *cfg = itest_config(":poll_interval_average: 0.2\n:beat_interval: 1\n");
    const char *argv[] = {"-C", cfg, "-r", SQ_TEST_PGPLUGIN, "-c", "2", "-t", "8", NULL};
    sqt_squire_start(&p, R.url, argv, NULL); /* main() unset DATABASE_URL */
    ck_assert(sqt_log_wait(&p, "starting", 15));
    char a[25];
    itest_push("UpsertJob", "[1]", NULL, a);
    ck_assert_int_eq(sqt_wait_int(C, 1, 10, "ZCARD retry"), 1);
    json_t *j = itest_only_member("retry", NULL);
    ck_assert_str_eq(jstr(j, "error_class"), "Squire::DatabaseUnavailable");
    ck_assert_str_ne(jstr(j, "error_message"), "");
    json_decref(j);
    ck_assert_int_eq(kill(p.pid, 0), 0);
    itest_stop(&p);
}
END_TEST

/* ---- transactions left open ----------------------------------------------------- */

START_TEST(open_transaction_does_not_poison_the_next_job)
{
    sqt_proc p;
    /* one worker, one connection: each job gets the one before's connection */
    pg_squire(&p, PG.url, 1, "  :pool: 1\n  :application_name: " APP "\n", NULL);
    char a[25], b[25], c[25], d[25];
    itest_push("OpenTxJob", "[]", NULL, a);
    itest_push("TxCheckJob", "[]", NULL, b);
    itest_push("OpenTxJob", "[\"error\"]", NULL, c);
    itest_push("TxCheckJob", "[]", NULL, d);
    double until = sqt_now() + 15;
    while (sqt_pg_int(&PG, "SELECT count(*) FROM tx_check") < 2 &&
           sqt_int(C, "ZCARD retry") == 0 && sqt_now() < until)
        sqt_sleep(0.05);
    char *rs = retry_summary();
    long long checked = sqt_pg_int(&PG, "SELECT count(*) FROM tx_check");
    dump_log_on(checked != 2, &p);
    ck_assert_msg(checked == 2 && sqt_int(C, "ZCARD retry") == 0,
                  "%lld of 2 checks recorded; retry set:\n%s", checked, rs);
    free(rs);
    /* both checks ran outside any transaction and saw no leaked row */
    ck_assert_int_eq(sqt_pg_int(&PG, "SELECT count(*) FROM tx_check WHERE idle AND no_txid "
                                     "AND leaked_rows = 0"),
                     2);
    ck_assert_int_eq(sqt_pg_int(&PG, "SELECT count(*) FROM tx_check WHERE jid IN ('%s', '%s')",
                                b, d),
                     2);
    /* the uncommitted inserts were rolled back, not committed */
    ck_assert_int_eq(rows("n = -1"), 0);
    ck_assert_int_eq(sqt_pg_int(&PG,
                                "SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                                "'" APP "' AND state LIKE 'idle in transaction%%'"),
                     0);
    ck_assert_int_le(sqt_pg_count_app(&PG, APP), 1);
    /* and the connection still works for ordinary jobs */
    char e[25];
    itest_push("UpsertJob", "[7]", NULL, e);
    ck_assert_int_eq(wait_rows("n = 7", 1, 10, NULL), 1);
    itest_stop(&p);
}
END_TEST

/* ---- sessions reset between jobs ------------------------------------------------ */

/* One connection, two jobs that each SET, PREPARE and CREATE TEMP TABLE:
 * the second finds none of the first's state (DISCARD ALL), and the
 * settings squire gave the connection at start-up survive the reset. */
START_TEST(session_state_is_reset_between_jobs)
{
    sqt_proc p;
    pg_squire(&p, PG.url, 1, "  :pool: 1\n  :statement_timeout: 7\n  :application_name: " APP "\n",
              NULL);
    char a[25], b[25];
    itest_push("DirtyJob", "[1]", NULL, a);
    itest_push("DirtyJob", "[2]", NULL, b);
    long long n = wait_rows("n IN (1, 2)", 2, 10, NULL);
    char *rs = retry_summary();
    dump_log_on(n != 2, &p);
    ck_assert_msg(n == 2, "%lld of 2 DirtyJobs ran; retry set:\n%s", n, rs);
    free(rs);
    ck_assert_int_eq(sqt_pg_count_app(&PG, APP), 1); /* the same connection, reused */
    assert_setting("search_path", "\"$user\", public");
    assert_setting("statement_timeout", "7s");
    assert_setting("application_name", APP);
    rs = retry_summary();
    ck_assert_msg(sqt_int(C, "ZCARD retry") == 0, "retry set:\n%s", rs);
    free(rs);
    itest_stop(&p);
}
END_TEST

/* A handler that LISTENs and leaves a notification unread: the next job on
 * the connection (pool 1) must not find it (DISCARD ALL unlistens, but
 * what libpq has already read stays queued in the connection). */
START_TEST(unread_notifications_do_not_reach_the_next_job)
{
    sqt_proc p;
    pg_squire(&p, PG.url, 1, "  :pool: 1\n  :application_name: " APP "\n", NULL);
    char a[25], b[25];
    itest_push("ListenJob", "[]", NULL, a);
    itest_push("ListenJob", "[]", NULL, b);
    double until = sqt_now() + 10;
    while (sqt_pg_int(&PG, "SELECT count(*) FROM settings WHERE name = 'notifies'") < 2 &&
           sqt_now() < until)
        sqt_sleep(0.05);
    char *rs = retry_summary();
    ck_assert_msg(sqt_pg_int(&PG, "SELECT count(*) FROM settings WHERE name = 'notifies'") == 2,
                  "the ListenJobs did not both run; retry set:\n%s", rs);
    free(rs);
    ck_assert_int_eq(sqt_pg_count_app(&PG, APP), 1); /* the same connection, reused */
    ck_assert_msg(sqt_pg_int(&PG, "SELECT count(*) FROM settings WHERE name = 'notifies' "
                                  "AND value <> '0'") == 0,
                  "a job found the notification the previous job left unread");
    itest_stop(&p);
}
END_TEST

static long long sleeping_queries(void)
{
    return sqt_pg_int(&PG, "SELECT count(*) FROM pg_stat_activity WHERE application_name = '" APP
                           "' AND state = 'active' AND query LIKE '%%pg_sleep%%'");
}

/* Run `cls` (a handler that records row n = `marker`, then leaves
 * pg_sleep(60) running and returns): within a few seconds the query is no
 * longer running on the server, and the connection serves the next job. */
static void assert_runaway_cancelled(const char *cls, int marker)
{
    sqt_proc p;
    pg_squire(&p, PG.url, 1, "  :pool: 1\n  :application_name: " APP "\n", NULL);
    char a[25], b[25], where[32];
    itest_push(cls, "[60]", NULL, a);
    snprintf(where, sizeof where, "n = %d", marker);
    ck_assert_int_eq(wait_rows(where, 1, 10, NULL), 1);
    double until = sqt_now() + 4;
    long long running;
    while ((running = sleeping_queries()) > 0 && sqt_now() < until)
        sqt_sleep(0.05);
    dump_log_on(running != 0, &p);
    ck_assert_msg(running == 0, "%s's pg_sleep(60) still runs on the server", cls);
    itest_push("UpsertJob", "[5]", NULL, b);
    ck_assert_int_eq(wait_rows("n = 5", 1, 10, NULL), 1);
    ck_assert_int_eq(sqt_int(C, "ZCARD retry"), 0);
    ck_assert_int_le(sqt_pg_count_app(&PG, APP), 1);
    itest_stop(&p);
}

/* A handler that returns with a query still running: it is cancelled, not
 * left executing on the server (even when the first cancel reaches the
 * server before the query has started). */
START_TEST(query_left_running_is_cancelled)
{
    assert_runaway_cancelled("RunawayJob", -2);
}
END_TEST

/* The same with a pipeline of two synced queries: the first cancel stops the
 * first, and the second, which starts after it, must be cancelled too. */
START_TEST(pipelined_queries_left_running_are_cancelled)
{
    assert_runaway_cancelled("PipelineRunawayJob", -3);
}
END_TEST

/* ---- configuration reaches the connection --------------------------------------- */

/* `service=` names a pg_service.conf entry whose options and
 * application_name are the URL's own: kept, squire's added, as when the
 * URL spells them out. */
START_TEST(service_file_options_and_application_name_are_kept)
{
    sqt_pg_exec(&PG, "CREATE SCHEMA sq_custom");
    char dir[256], svc[300], env[320];
    sqt_tempdir(dir, "svc");
    snprintf(svc, sizeof svc, "%s/pg_service.conf", dir);
    FILE *f = fopen(svc, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "[sqsvc]\nhost=127.0.0.1\nport=%d\nuser=postgres\ndbname=postgres\n"
               "options=-c search_path=sq_custom,public\napplication_name=svcapp\n",
            PG.port);
    fclose(f);
    snprintf(env, sizeof env, "PGSERVICEFILE=%s", svc);
    const char *envs[] = {env, NULL};
    sqt_proc p;
    pg_squire(&p, "service=sqsvc", 2,
              "  :statement_timeout: 7\n  :application_name: sqtest-named\n", envs);
    assert_setting("statement_timeout", "7s");
    assert_setting("search_path", "sq_custom,public");
    assert_setting("application_name", "svcapp sqtest-named");
    itest_stop(&p);
}
END_TEST

/* The URL in a systemd credential (LoadCredential=database_url), longer than
 * 2 KB (a cloud IAM token as password is 1-2 KB): read whole, so its last
 * setting, application_name, reaches the connection. */
START_TEST(long_url_from_a_systemd_credential)
{
    char url[3200], cred[320];
    snprintf(url, sizeof url, "%s?options=-c%%20sq.pad%%3D%03000d&application_name=sqcred",
             PG.url, 7);
    sqt_credential(cred, "database_url", url);
    const char *env[] = {cred, NULL};
    sqt_proc p;
    pg_squire(&p, NULL, 1, "  :pool: 1\n", env);
    char a[25];
    itest_push("UpsertJob", "[1]", NULL, a);
    long long n = wait_rows("n = 1", 1, 10, NULL);
    dump_log_on(n != 1, &p);
    ck_assert_int_eq(n, 1);
    ck_assert_int_eq(sqt_pg_int(&PG, "SELECT count(*) FROM pg_stat_activity "
                                     "WHERE application_name LIKE 'sqcred %%'"),
                     1);
    itest_stop(&p);
}
END_TEST

START_TEST(database_url_env_statement_timeout_and_application_name)
{
    sqt_proc p;
    static char env_url[200];
    snprintf(env_url, sizeof env_url, "DATABASE_URL=%s", PG.url);
    const char *env[] = {env_url, NULL};
    /* no url: in the file: $DATABASE_URL */
    pg_squire(&p, NULL, 2, "  :statement_timeout: 7\n  :application_name: sqtest-named\n", env);
    assert_setting("statement_timeout", "7s");
    assert_setting("application_name", "sqtest-named");
    itest_stop(&p);
}
END_TEST

/* application_name is the identity host:pid:nonce; a long DYNO (or
 * hostname) is cut so that the pid survives in its 63 bytes. */
static void assert_identity_app_name(const char *dyno)
{
    char env_dyno[200];
    snprintf(env_dyno, sizeof env_dyno, "DYNO=%s", dyno ? dyno : "");
    const char *env[] = {env_dyno, NULL};
    sqt_proc p;
    pg_squire(&p, PG.url, 2, NULL, dyno ? env : NULL);
    char *an = show_setting("application_name");
    char pid[32];
    snprintf(pid, sizeof pid, ":%d:", (int)p.pid);
    ck_assert_msg(strstr(an, pid) != NULL, "application_name %s is not host:%d:nonce", an,
                  (int)p.pid);
    ck_assert_msg(dyno == NULL || strncmp(an, dyno, 11) == 0, "%s does not start with DYNO", an);
    ck_assert_int_le(strlen(an), 63);
    free(an);
    itest_stop(&p);
}

START_TEST(default_application_name_is_the_identity)
{
    assert_identity_app_name(NULL);
}
END_TEST

START_TEST(long_identity_keeps_the_pid_in_application_name)
{
    assert_identity_app_name("worker-with-a-very-long-name-from-a-platform-that-likes-long-"
                             "names.1");
}
END_TEST

/* The URL's own options and application_name are kept: squire adds its
 * statement_timeout to the options and its name after the URL's. */
START_TEST(url_options_and_application_name_are_kept)
{
    sqt_pg_exec(&PG, "CREATE SCHEMA sq_custom");
    char url[300];
    snprintf(url, sizeof url,
             "%s?options=-c%%20search_path%%3Dsq_custom,public&application_name=urlapp", PG.url);
    sqt_proc p;
    pg_squire(&p, url, 2, "  :statement_timeout: 7\n  :application_name: sqtest-named\n", NULL);
    assert_setting("search_path", "sq_custom,public");
    assert_setting("statement_timeout", "7s");
    assert_setting("application_name", "urlapp sqtest-named");
    itest_stop(&p);
}
END_TEST

START_TEST(budget_warns_past_max_connections)
{
    sqt_proc p;
    /* 45 connections against max_connections 40 */
    pg_squire(&p, PG.url, 45, "  :application_name: " APP "\n", NULL);
    ck_assert_msg(sqt_log_wait(&p, "max_connections", 5), "no pool budget line in the log");
    ck_assert_msg(log_has_line(&p, "WARN", "max_connections"),
                  "no warning for a pool of 45 against max_connections 40");
    /* a warning, not a refusal: jobs still run */
    char a[25];
    itest_push("UpsertJob", "[1]", NULL, a);
    ck_assert_int_eq(wait_rows("n = 1", 1, 10, NULL), 1);
    itest_stop(&p);
}
END_TEST

/* ---- secrets ---------------------------------------------------------------------- */

/* Every key and value in Redis as text (strings, lists, sets, sorted sets,
 * hashes, streams), for a leak scan. */
static char *redis_everything(void)
{
    size_t cap = 1 << 16, len = 0;
    char *all = calloc(1, cap);
    redisReply *keys = sqt_cmd(C, "KEYS *");
    for (size_t i = 0; i < keys->elements; i++) {
        const char *k = keys->element[i]->str;
        redisReply *t = sqt_cmd(C, "TYPE %s", k);
        const char *ty = t->str;
        redisReply *v = strcmp(ty, "string") == 0  ? sqt_cmd(C, "GET %s", k)
                        : strcmp(ty, "list") == 0  ? sqt_cmd(C, "LRANGE %s 0 -1", k)
                        : strcmp(ty, "set") == 0   ? sqt_cmd(C, "SMEMBERS %s", k)
                        : strcmp(ty, "zset") == 0  ? sqt_cmd(C, "ZRANGE %s 0 -1", k)
                        : strcmp(ty, "hash") == 0  ? sqt_cmd(C, "HGETALL %s", k)
                        : strcmp(ty, "stream") == 0 ? sqt_cmd(C, "XRANGE %s - +", k)
                                                    : NULL;
        const char *parts[1 + 1024];
        size_t lens[1 + 1024], n = 0;
        parts[n] = k;
        lens[n++] = strlen(k);
        if (v && v->type == REDIS_REPLY_STRING) {
            parts[n] = v->str;
            lens[n++] = v->len;
        }
        for (size_t j = 0; v && v->type == REDIS_REPLY_ARRAY && j < v->elements && n < 1025; j++)
            if (v->element[j]->type == REDIS_REPLY_STRING) {
                parts[n] = v->element[j]->str;
                lens[n++] = v->element[j]->len;
            }
        for (size_t j = 0; j < n; j++) {
            while (len + lens[j] + 2 > cap)
                all = realloc(all, cap *= 2);
            memcpy(all + len, parts[j], lens[j]);
            len += lens[j];
            all[len++] = '\n';
            all[len] = '\0';
        }
        if (v)
            freeReplyObject(v);
        freeReplyObject(t);
    }
    freeReplyObject(keys);
    return all;
}

#define SECRET "Sq7pw" /* in every password below, and nowhere else */

static void assert_secret_kept(const char *what, const char *text)
{
    const char *hit = strstr(text, SECRET);
    const char *from = hit && hit - text > 200 ? hit - 200 : text;
    ck_assert_msg(hit == NULL, "%s shows the password:\n%s%.400s", what, from > text ? "..." : "",
                  from);
}

/* s as a shell word: '...' with every ' written '\'' (static buffer). */
static const char *shell_word(const char *s)
{
    static char out[1024];
    size_t j = 0;
    out[j++] = '\'';
    for (; *s && j + 6 < sizeof out; s++) {
        if (*s == '\'') {
            memcpy(out + j, "'\\''", 4);
            j += 4;
        } else {
            out[j++] = *s;
        }
    }
    out[j++] = '\'';
    out[j] = '\0';
    return out;
}

/* s as a YAML single-quoted scalar (static buffer). */
static const char *yaml_quoted(const char *s)
{
    static char out[1024];
    size_t j = 0;
    out[j++] = '\'';
    for (; *s && j + 4 < sizeof out; s++) {
        if (*s == '\'')
            out[j++] = '\'';
        out[j++] = *s;
    }
    out[j++] = '\'';
    out[j] = '\0';
    return out;
}

/* URLs libpq cannot parse, each with a password: a configuration error.
 * `squire --check` (DATABASE_URL) and the daemon (file:line: database.url) both exit
 * 78 naming where the URL came from, and neither shows the password. */
START_TEST(malformed_urls_are_config_errors_that_never_show_the_password)
{
    int port = sqt_free_port();
    char urls[10][1024];
    const size_t n = sizeof urls[0];
    snprintf(urls[0], n, "postgresql://app:" SECRET "Bracket@[127.0.0.1:%d/db", port);
    snprintf(urls[1], n, "postgresql://app:" SECRET "%%zz@127.0.0.1:%d/db", port);
    snprintf(urls[2], n, "postgresql://app@127.0.0.1:%d/db?password=" SECRET "Q&bogus=1", port);
    snprintf(urls[3], n, "password=" SECRET "Kv host=127.0.0.1 port=%d nonsense", port);
    snprintf(urls[4], n, "password='" SECRET " q\\'x' host=127.0.0.1 port=%d nonsense", port);
    snprintf(urls[5], n, "postgres://app:" SECRET "@x@h1:%d,[::1/db", port);
    /* libpq decodes a parameter's name too: passw%6Frd is password */
    snprintf(urls[6], n, "postgresql://app@127.0.0.1:%d/db?passw%%6Frd=" SECRET "%%zz", port);
    /* a long password (a cloud IAM token) in a URI libpq quotes whole: the
     * message is longer than an error holds */
    snprintf(urls[7], n, "postgresql://app:" SECRET "%0600d@[::1:%d/db", 7, port);
    /* keyword/value, a space in the password left unquoted, a quote
     * doubled as in SQL: libpq quotes the rest as a keyword */
    snprintf(urls[8], n, "host=127.0.0.1 port=%d password=ab " SECRET " dbname=db", port);
    snprintf(urls[9], n, "host=127.0.0.1 port=%d password='ab''" SECRET "' dbname=db", port);
    for (size_t i = 0; i < sizeof urls / sizeof urls[0]; i++) {
        char *out = NULL;
        int st = sqt_sh(R.url, &out, "DATABASE_URL=%s %s --check --allow-root -r %s 2>&1",
                        shell_word(urls[i]), SQ_TEST_SQUIRE, SQ_TEST_PLUGIN);
        assert_secret_kept("squire --check", out);
        ck_assert_msg(st == 78, "--check exit %d for %s (want 78):\n%s", st, urls[i], out);
        ck_assert_msg(strstr(out, "DATABASE_URL") != NULL, "the key is not named:\n%s", out);
        free(out);

        char yaml[2048];
        snprintf(yaml, sizeof yaml, ":database:\n  :url: %s\n", yaml_quoted(urls[i]));
        const char *cfg = itest_config(yaml);
        const char *argv[] = {"-C", cfg, "-r", SQ_TEST_PGPLUGIN, "-c", "2", NULL};
        sqt_proc p;
        sqt_squire_start(&p, R.url, argv, NULL);
        st = sqt_proc_wait(&p, 15);
        char *log = sqt_log_read(&p);
        assert_secret_kept("the log", log);
        ck_assert_msg(st == 78, "squire exit %d for %s (want 78):\n%s", st, urls[i], log);
        ck_assert_msg(strstr(log, "sidekiq.yml:2: database.url: not a PostgreSQL URL") != NULL,
                      "the key is not named:\n%s", log);
        free(log);
    }
    char *all = redis_everything();
    assert_secret_kept("Redis", all);
    free(all);
}
END_TEST

/* A URL that parses but fails at every connect (below: libpq rejects an
 * option value that quotes the password) is an outage, not a config error:
 * the daemon runs, jobs retry, and neither the log, the retry set nor
 * anything else in Redis shows the password, not even when a handler's
 * own error message quotes the URL. */
static void assert_connect_errors_hidden(const char *url, const char *why)
{
    char env_url[300];
    snprintf(env_url, sizeof env_url, "DATABASE_URL=%s", url);
    const char *env[] = {env_url, NULL};
    sqt_proc p;
    pg_squire(&p, NULL, 2, "  :pool: 2\n  :checkout_timeout: 0.5\n", env);
    char a[25], b[25], c[25];
    itest_push("UpsertJob", "[1]", NULL, a);
    itest_push("UpsertJob", "[2]", NULL, b);
    /* and a handler whose own error quotes $DATABASE_URL */
    itest_push("LeakJob", "[]", NULL, c);
    ck_assert_int_eq(sqt_wait_int(C, 3, 15, "ZCARD retry"), 3);
    json_t *all = retry_jobs();
    size_t i;
    json_t *j;
    json_array_foreach(all, i, j)
    {
        const char *msg = jstr(j, "error_message");
        assert_secret_kept("error_message", msg);
        ck_assert_msg(strstr(msg, strcmp(jstr(j, "class"), "LeakJob") ? why : "REDACTED"),
                      "the message does not say why: %s", msg);
    }
    json_decref(all);
    char *out = NULL;
    int st = sqt_sh(R.url, &out, "DATABASE_URL=%s %s --check --allow-root -r %s 2>&1",
                    shell_word(url), SQ_TEST_SQUIRE, SQ_TEST_PLUGIN);
    assert_secret_kept("squire --check", out);
    ck_assert_msg(st == 69, "--check exit %d (want 69):\n%s", st, out);
    free(out);
    itest_stop(&p);
    char *log = sqt_log_read(&p);
    assert_secret_kept("the log", log);
    free(log);
    char *everything = redis_everything();
    assert_secret_kept("Redis", everything);
    free(everything);
}

START_TEST(connect_errors_never_show_the_password)
{
    char url[256];
    snprintf(url, sizeof url,
             "postgresql://app:" SECRET "@127.0.0.1:%d/db?sslmode=" SECRET "&connect_timeout=2",
             sqt_free_port());
    assert_connect_errors_hidden(url, "sslmode");
}
END_TEST

/* A handler's error quoting a URL whose password (a cloud IAM token) ends
 * past the 10,000 characters a job error keeps: the message is cut after
 * it is scrubbed, not before, so no head of the password is left. */
START_TEST(long_handler_error_never_shows_the_password)
{
    static char env_url[12100];
    snprintf(env_url, sizeof env_url,
             "DATABASE_URL=postgresql://app:" SECRET "%012000d@127.0.0.1:%d/db", 7,
             sqt_free_port());
    const char *env[] = {env_url, NULL};
    sqt_proc p;
    pg_squire(&p, NULL, 1, "  :pool: 1\n", env);
    char a[25];
    itest_push("LeakJob", "[]", NULL, a);
    ck_assert_int_eq(sqt_wait_int(C, 1, 15, "ZCARD retry"), 1);
    json_t *j = itest_only_member("retry", NULL);
    const char *msg = jstr(j, "error_message");
    assert_secret_kept("error_message", msg);
    ck_assert_msg(strstr(msg, "could not connect with") != NULL, "the message is lost: %.100s",
                  msg);
    json_decref(j);
    itest_stop(&p);
    char *log = sqt_log_read(&p);
    assert_secret_kept("the log", log);
    free(log);
}
END_TEST

/* An unencoded '/' in the password (base64 passwords have them): libpq
 * reads app:<before the slash> as host:port and the rest as the database
 * name. Neither half may show: not in the connect error, not in the
 * server name the log and the budget field in Redis carry. */
START_TEST(slash_in_password_never_shows)
{
    char url[256];
    snprintf(url, sizeof url,
             "postgresql://app:" SECRET "/" SECRET "x@127.0.0.1:%d/db?connect_timeout=2",
             sqt_free_port());
    assert_connect_errors_hidden(url, "port");
}
END_TEST

/* keyword/value, the password's space escaped with a backslash, as libpq
 * allows unquoted: quoted back by a handler (LeakJob), no part shows. */
START_TEST(escaped_space_in_password_never_shows)
{
    char url[256];
    snprintf(url, sizeof url,
             "host=127.0.0.1 port=%d password=ab\\ " SECRET " dbname=db connect_timeout=2",
             sqt_free_port());
    assert_connect_errors_hidden(url, "connect");
}
END_TEST

/* ---- the budget of every process sharing the server ------------------------------ */

/* Two processes with pool 20 each against the 37 connections the server
 * allows (max_connections 40 - superuser_reserved_connections 3): each
 * alone fits, together they do not. Both must say so (whichever started
 * first learns of the other at a heartbeat), with the remedy; each
 * publishes its pool in its process hash, which Sidekiq's API and Web UI
 * ignore; --check counts the running processes too. */
/* Members of `processes` that are not hashes (left by hand, or by another
 * tool) answer the budget's HGET with WRONGTYPE. The budget read stopped at
 * the first error and left the other replies unread on the main thread's
 * connection, so every later command there (lease, stats, heartbeat) read
 * an earlier command's reply. The process must go on as if they were not
 * there: its lease and heartbeat hold and jobs run. */
START_TEST(budget_survives_processes_that_are_not_hashes)
{
    for (int i = 0; i < 6; i++) {
        freeReplyObject(sqt_cmd(C, "SADD processes bogus-%d", i));
        freeReplyObject(sqt_cmd(C, "SET bogus-%d not-a-hash", i));
    }
    sqt_proc p;
    pg_squire(&p, PG.url, 2, "  :pool: 2\n  :application_name: " APP "\n", NULL);
    sqt_sleep(4.0); /* beats, each with a budget read over the bogus members */
    char jid[25];
    for (int i = 1; i <= 20; i++) {
        char args[32];
        snprintf(args, sizeof args, "[%d]", i);
        itest_push("UpsertJob", args, NULL, jid);
    }
    long long done = wait_rows("true", 20, 20, NULL);
    dump_log_on(done != 20, &p);
    ck_assert_int_eq(done, 20);
    ck_assert_msg(!log_has_line(&p, "WARN", "lease"), "the lease was lost");
    ck_assert_msg(!log_has_line(&p, "ERROR", ""), "an error was logged");
    itest_stop(&p);
    dump_log_on(sqt_int(C, "GET stat:processed") != 20, &p);
    ck_assert_int_eq(sqt_int(C, "GET stat:processed"), 20);
}
END_TEST

START_TEST(budget_counts_every_process_sharing_the_server)
{
    sqt_proc a, b;
    const char *db = "  :pool: 20\n  :application_name: " APP "\n";
    pg_squire(&a, PG.url, 2, db, NULL);
    ck_assert_msg(sqt_log_wait(&a, "max_connections", 5), "no pool budget line in the log");
    ck_assert(!log_has_line(&a, "WARN", "max_connections"));
    pg_squire(&b, PG.url, 2, db, NULL);
    ck_assert_msg(sqt_log_wait(&b, "max_connections", 5), "no pool budget line in the log");
    const char *want[] = {"2 squire processes may open 40 connections", "the server allows",
                          "max_connections 40 - superuser_reserved_connections 3",
                          "lower database: pool", "raise max_connections", "PgBouncer"};
    sqt_proc *procs[] = {&a, &b};
    for (int i = 0; i < 2; i++) {
        double until = sqt_now() + 5;
        while (!log_has_line(procs[i], "WARN", want[0]) && sqt_now() < until)
            sqt_sleep(0.1);
        dump_log_on(!log_has_line(procs[i], "WARN", want[0]), procs[i]);
        for (size_t k = 0; k < sizeof want / sizeof want[0]; k++)
            ck_assert_msg(log_has_line(procs[i], want[0], want[k]),
                          "process %d: no WARN line with \"%s\"", i + 1, want[k]);
    }
    /* the published field */
    redisReply *ids = sqt_cmd(C, "SMEMBERS processes");
    ck_assert_int_eq(ids->elements, 2);
    for (size_t i = 0; i < ids->elements; i++) {
        redisReply *v = sqt_cmd(C, "HGET %s database", ids->element[i]->str);
        ck_assert_int_eq(v->type, REDIS_REPLY_STRING);
        json_t *j = json_loads(v->str, 0, NULL);
        ck_assert_int_eq(json_integer_value(json_object_get(j, "pool")), 20);
        ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(j, "server")), ":"));
        json_decref(j);
        freeReplyObject(v);
    }
    freeReplyObject(ids);
    /* Sidekiq's API and Web UI still read both processes */
    char *out = NULL;
    int st = sqt_ruby(R.url, &out, "webui.rb", "processes");
    json_t *ps = json_loads(out ? out : "", 0, NULL);
    ck_assert_msg(st == 0 && json_array_size(ps) == 2, "webui.rb processes: %d %s", st, out);
    json_decref(ps);
    free(out);
    st = sqt_ruby(R.url, &out, "webui.rb", "pages");
    ck_assert_msg(st == 0 && strstr(out, "\"status\":500") == NULL, "webui.rb pages: %d", st);
    free(out);
    /* --check for a third process counts the two running ones */
    st = sqt_sh(R.url, &out, "DATABASE_URL='%s' %s --check --allow-root -r %s 2>&1", PG.url,
                SQ_TEST_SQUIRE, SQ_TEST_PLUGIN);
    ck_assert_msg(st == 0 && strstr(out, "3 squire processes may open") != NULL &&
                      strstr(out, "PgBouncer") != NULL,
                  "exit %d:\n%s", st, out);
    free(out);
    /* one goes: the other is back within the budget, and says so */
    itest_stop(&b);
    ck_assert_msg(sqt_log_wait(&a, "pool 20 (20 in 1 squire process) of the 37", 5),
                  "no all-clear after the second process stopped");
    itest_stop(&a);
}
END_TEST

/* ---- libpq loaded only for a database ------------------------------------------ */

/* How many distinct libpq files pid maps. */
static int libpq_files(pid_t pid)
{
    char path[64], line[512], seen[4][256];
    snprintf(path, sizeof path, "/proc/%d/maps", (int)pid);
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    int n = 0;
    while (fgets(line, sizeof line, f) != NULL) {
        char *file = strchr(line, '/');
        if (file == NULL || strstr(file, "/libpq.so") == NULL)
            continue;
        file[strcspn(file, "\n")] = '\0';
        bool dup = false;
        for (int i = 0; i < n; i++)
            dup = dup || strcmp(seen[i], file) == 0;
        if (!dup && n < 4)
            snprintf(seen[n++], sizeof seen[0], "%s", file);
    }
    fclose(f);
    return n;
}

/* squire -C <database url> -r plugin -c 2, started and past its pool
 * budget check (libpq loaded by then). */
static void squire_with_database(sqt_proc *p, const char *plugin)
{
    char yaml[512];
    snprintf(yaml, sizeof yaml,
             ":poll_interval_average: 0.2\n:database:\n  :url: %s\n  :application_name: " APP
             "\n",
             PG.url);
    const char *cfg = itest_config(yaml);
    const char *argv[] = {"-C", cfg, "-r", plugin, "-c", "2", "-t", "8", NULL};
    sqt_squire_start(p, R.url, argv, NULL);
    ck_assert_msg(sqt_log_wait(p, "max_connections", 15), "no pool budget line in the log");
}

START_TEST(libpq_is_loaded_only_for_a_database)
{
    /* no database: libpq is never mapped, jobs run */
    sqt_proc p;
    itest_squire(&p, R.url, "8", NULL);
    char a[25];
    itest_push("OkJob", "[]", NULL, a);
    ck_assert_int_eq(sqt_wait_int(C, 1, 10, "SISMEMBER test:done %s", a), 1);
    ck_assert_msg(libpq_files(p.pid) == 0, "libpq mapped without a database");
    itest_stop(&p);

    /* a database, handlers that do not use libpq: the pool loads it */
    squire_with_database(&p, SQ_TEST_PLUGIN);
    ck_assert_msg(!log_has_line(&p, "WARN", "database"), "the pool could not use PostgreSQL");
    ck_assert_int_eq(libpq_files(p.pid), 1);
    itest_stop(&p);

    /* handlers linked with libpq: one libpq for them and the pool, and the
     * connection the pool lends works with the handler's own PQ* calls */
    squire_with_database(&p, SQ_TEST_PGPLUGIN);
    char b[25];
    itest_push("UpsertJob", "[1]", NULL, b);
    long long n = wait_rows("n = 1", 1, 10, NULL);
    dump_log_on(n != 1, &p);
    ck_assert_int_eq(n, 1);
    ck_assert_int_eq(libpq_files(p.pid), 1);
    itest_stop(&p);

    /* squire --check loads it too, and reaches the server */
    char *out = NULL;
    int st = sqt_sh(R.url, &out, "DATABASE_URL='%s' %s --check --allow-root -r %s 2>&1", PG.url,
                    SQ_TEST_SQUIRE, SQ_TEST_PLUGIN);
    ck_assert_msg(st == 0 && strstr(out, "max_connections") != NULL, "exit %d:\n%s", st, out);
    free(out);
}
END_TEST

/* A libpq.so.5 that is not a library, first on LD_LIBRARY_PATH: the one the
 * dynamic linker tries to load, and fails to. Written into dir. */
static void broken_libpq(char dir[256], char lib[300])
{
    sqt_tempdir(dir, "nolibpq");
    snprintf(lib, 300, "%s/libpq.so.5", dir);
    FILE *f = fopen(lib, "w");
    ck_assert_ptr_nonnull(f);
    fclose(f);
}

START_TEST(missing_libpq_is_reported_not_fatal)
{
    char dir[256], lib[300], env_ld[300], env_url[200];
    broken_libpq(dir, lib);
    snprintf(env_ld, sizeof env_ld, "LD_LIBRARY_PATH=%s", dir);
    snprintf(env_url, sizeof env_url, "DATABASE_URL=postgresql://postgres@127.0.0.1:%d/postgres",
             sqt_free_port());

    /* squire --check fails, naming the library and dlopen's reason */
    char *out = NULL;
    int st = sqt_sh(R.url, &out, "%s %s %s --check --allow-root -r %s 2>&1", env_ld, env_url,
                    SQ_TEST_SQUIRE, SQ_TEST_PLUGIN);
    ck_assert_msg(st == 69, "exit %d (want 69: database unavailable):\n%s", st, out);
    ck_assert_msg(strstr(out, "FAIL cannot load PostgreSQL's client library libpq.so.5: ") &&
                      strstr(out, "file too short"),
                  "%s", out);
    free(out);

    /* the daemon starts, says why, and runs jobs that need no database */
    sqt_proc p;
    const char *cfg = itest_config(":poll_interval_average: 0.2\n:beat_interval: 1\n");
    const char *argv[] = {"-C", cfg, "-r", SQ_TEST_PLUGIN, "-c", "2", "-t", "8", NULL};
    const char *env[] = {env_ld, env_url, NULL};
    sqt_squire_start(&p, R.url, argv, env);
    ck_assert(sqt_log_wait(&p, "starting", 15));
    ck_assert(sqt_log_wait(&p, "database: cannot load", 5));
    ck_assert(log_has_line(&p, "WARN", "libpq.so.5: file too short"));
    char a[25];
    itest_push("OkJob", "[]", NULL, a);
    ck_assert_int_eq(sqt_wait_int(C, 1, 10, "SISMEMBER test:done %s", a), 1);
    itest_stop(&p);
    unlink(lib);
    rmdir(dir);
}
END_TEST

static Suite *pg_suite(void)
{
    Suite *s = suite_create("pg");
    TCase *tc = tcase_create("pool");
    tcase_add_checked_fixture(tc, pg_setup, pg_teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, many_jobs_share_a_small_pool);
    tcase_add_test(tc, exhausted_pool_times_out_with_a_retryable_error);
    tcase_add_test(tc, restart_while_idle_never_hands_out_a_broken_connection);
    tcase_add_test(tc, terminated_backends_are_replaced);
    tcase_add_test(tc, server_fatal_is_logged_at_warn);
    tcase_add_test(tc, restart_mid_run_jobs_fail_retry_and_succeed);
    tcase_add_test(tc, brief_outage_does_not_fill_the_retry_set);
    tcase_add_test(tc, open_transaction_does_not_poison_the_next_job);
    tcase_add_test(tc, session_state_is_reset_between_jobs);
    tcase_add_test(tc, query_left_running_is_cancelled);
    tcase_add_test(tc, pipelined_queries_left_running_are_cancelled);
    tcase_add_test(tc, unread_notifications_do_not_reach_the_next_job);
    tcase_add_test(tc, database_url_env_statement_timeout_and_application_name);
    tcase_add_test(tc, default_application_name_is_the_identity);
    tcase_add_test(tc, url_options_and_application_name_are_kept);
    tcase_add_test(tc, long_url_from_a_systemd_credential);
    tcase_add_test(tc, service_file_options_and_application_name_are_kept);
    tcase_add_test(tc, long_identity_keeps_the_pid_in_application_name);
    tcase_add_test(tc, budget_warns_past_max_connections);
    tcase_add_test(tc, budget_counts_every_process_sharing_the_server);
    tcase_add_test(tc, libpq_is_loaded_only_for_a_database);
    tcase_add_test(tc, isolated_workers_each_use_their_own_connection);
    suite_add_tcase(s, tc);

    /* its own case: CK_RUN_CASE=budget_peers runs it alone */
    TCase *peers = tcase_create("budget_peers");
    tcase_add_checked_fixture(peers, pg_setup, pg_teardown);
    tcase_set_timeout(peers, 120);
    tcase_add_test(peers, budget_survives_processes_that_are_not_hashes);
    suite_add_tcase(s, peers);

    /* its own case: CK_RUN_CASE=hang runs it alone */
    TCase *hang = tcase_create("hang");
    tcase_add_checked_fixture(hang, nopg_setup, pg_teardown);
    tcase_set_timeout(hang, 120);
    tcase_add_test(hang, hanging_database_at_start_never_holds_the_main_thread);
    tcase_add_test(hang, hanging_database_later_never_holds_the_main_thread);
    /* connect_timeout=0 in the URL (libpq: no limit) against a server that
     * never answers; CK_RUN_CASE=unbounded runs it alone */
    TCase *unbounded = tcase_create("unbounded");
    tcase_add_checked_fixture(unbounded, nopg_setup, pg_teardown);
    tcase_set_timeout(unbounded, 120);
    tcase_add_test(unbounded, check_with_connect_timeout_zero_ends_against_a_hanging_server);
    tcase_add_test(unbounded, job_with_connect_timeout_zero_fails_against_a_hanging_server);
    suite_add_tcase(s, unbounded);
    /* a backend frozen (SIGSTOP) under a connection; CK_RUN_CASE=frozen */
    TCase *frozen = tcase_create("frozen");
    tcase_add_checked_fixture(frozen, pg_setup, pg_teardown);
    tcase_set_timeout(frozen, 120);
    tcase_add_test(frozen, frozen_backend_at_checkin_does_not_hold_the_worker);
    tcase_add_test(frozen, frozen_server_at_cancel_does_not_hold_the_worker);
    tcase_add_test(frozen, multi_host_url_fails_over_past_a_hanging_host);
    suite_add_tcase(s, frozen);
    suite_add_tcase(s, hang);

    TCase *down = tcase_create("down");
    tcase_add_checked_fixture(down, nopg_setup, pg_teardown);
    tcase_set_timeout(down, 120);
    tcase_add_test(down, starts_while_postgres_is_down);
    tcase_add_test(down, late_budget_check_stays_within_the_pool);
    tcase_add_test(down, no_database_configured_fails_the_job_not_the_daemon);
    tcase_add_test(down, missing_libpq_is_reported_not_fatal);
    tcase_add_test(down, malformed_urls_are_config_errors_that_never_show_the_password);
    tcase_add_test(down, connect_errors_never_show_the_password);
    tcase_add_test(down, slash_in_password_never_shows);
    tcase_add_test(down, escaped_space_in_password_never_shows);
    tcase_add_test(down, long_handler_error_never_shows_the_password);
    suite_add_tcase(s, down);

    /* known stalls, not fixed yet: they fail; SQ_TEST_KNOWN_STALLS=1 runs them */
    if (getenv("SQ_TEST_KNOWN_STALLS") != NULL) {
        TCase *known = tcase_create("known_stalls");
        tcase_add_checked_fixture(known, nopg_setup, pg_teardown);
        tcase_set_timeout(known, 60);
        tcase_add_test(known, blocking_service_file_never_holds_the_main_thread);
        suite_add_tcase(s, known);
    }
    return s;
}

int main(void)
{
    unsetenv("DATABASE_URL"); /* the suites choose */
    return sqt_run(pg_suite());
}
