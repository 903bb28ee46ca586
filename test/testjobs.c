/*
 * testjobs.c: handlers the integration suites load with `-r`. Each records
 * what it saw in Redis (through the worker's own connection, sq_job_client)
 * so that a test can check from outside what ran, how often and with what.
 */
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <squire.h>

#include "testjobs.h"

/* Each worker thread records through its own connection to the test's
 * Redis (REDIS_URL is always redis://127.0.0.1:PORT/0 in the suites),
 * freed when the thread exits. */
static pthread_key_t conn_key;
static pthread_once_t conn_once = PTHREAD_ONCE_INIT;

static void free_conn(void *c)
{
    redisFree(c);
}

static void make_key(void)
{
    pthread_key_create(&conn_key, free_conn);
}

static redisContext *test_redis(void)
{
    pthread_once(&conn_once, make_key);
    redisContext *conn = pthread_getspecific(conn_key);
    if (conn != NULL && conn->err == 0)
        return conn;
    if (conn != NULL)
        redisFree(conn);
    /* SQT_TEST_REDIS_URL: a plain port when squire itself talks TLS */
    const char *url = getenv("SQT_TEST_REDIS_URL");
    if (url == NULL || url[0] == '\0')
        url = getenv("REDIS_URL");
    int port = 6379;
    const char *colon = url ? strrchr(url, ':') : NULL;
    if (colon != NULL)
        port = (int)strtol(colon + 1, NULL, 10);
    struct timeval tv = {5, 0};
    conn = redisConnectWithTimeout("127.0.0.1", port, tv);
    pthread_setspecific(conn_key, conn);
    return conn;
}

/* Record one event atomically (MULTI/EXEC), retrying for up to 30 s while
 * Redis is unreachable: the suites kill redis-server under running jobs, and
 * a job's side effects must survive that like a real job's would. A retry
 * after a lost EXEC reply can count a run twice, never zero times. */
static void record(sq_job *job, const char *what)
{
    json_t *rec = json_pack("{s:s, s:s, s:s, s:s, s:i, s:O}", "jid", sq_job_jid(job), "class",
                            sq_job_class(job), "queue", sq_job_queue(job), "what", what,
                            "retry_count", sq_job_retry_count(job), "args", sq_job_args(job));
    size_t raw_len;
    const char *raw = sq_job_raw(job, &raw_len);
    json_object_set_new(rec, "raw", json_stringn(raw, raw_len)); /* NULL (not UTF-8): not set */
    char *s = json_dumps(rec, JSON_COMPACT);
    const char *jid = sq_job_jid(job);
    bool counted = strcmp(what, "start") != 0, done = strcmp(what, "ok") == 0;
    for (int attempt = 0; attempt < 300; attempt++) {
        redisContext *c = test_redis();
        if (c != NULL && c->err == 0) {
            int n = 3;
            redisAppendCommand(c, "MULTI");
            redisAppendCommand(c, "RPUSH test:log %s", s);
            if (counted)
                redisAppendCommand(c, "HINCRBY test:runs %s 1", jid), n++;
            if (done)
                redisAppendCommand(c, "SADD test:done %s", jid), n++;
            redisAppendCommand(c, "EXEC");
            bool ok = true;
            for (int i = 0; i < n; i++) {
                redisReply *r = NULL;
                if (redisGetReply(c, (void **)&r) != REDIS_OK) {
                    ok = false;
                    break;
                }
                if (i == n - 1 && (r == NULL || r->type != REDIS_REPLY_ARRAY))
                    ok = false;
                freeReplyObject(r);
            }
            if (ok)
                break;
        }
        usleep(100000);
    }
    free(s);
    json_decref(rec);
}

void testjobs_record(sq_job *job, const char *what)
{
    record(job, what);
}

static sq_result ok_job(sq_job *job, void *ud)
{
    (void)ud;
    record(job, "ok");
    return SQ_OK;
}

static sq_result fail_job(sq_job *job, void *ud)
{
    (void)ud;
    record(job, "fail");
    const char *cls = json_string_value(sq_job_arg(job, 0));
    const char *msg = json_string_value(sq_job_arg(job, 1));
    return sq_job_fail(job, cls, "%s", msg ? msg : "boom");
}

static sq_result kill_job(sq_job *job, void *ud)
{
    (void)ud;
    record(job, "kill");
    sq_job_fail(job, "FatalError", "do not retry");
    sq_job_kill(job);
    return SQ_FAILED;
}

static sq_result discard_job(sq_job *job, void *ud)
{
    (void)ud;
    record(job, "discard");
    sq_job_fail(job, "IgnoredError", "drop me");
    sq_job_discard(job);
    return SQ_FAILED;
}

/* Fails its first args[0] runs (asking for 1 s retries), then succeeds. */
static sq_result flaky_job(sq_job *job, void *ud)
{
    (void)ud;
    json_int_t need = json_integer_value(sq_job_arg(job, 0));
    if (sq_job_retry_count(job) + 1 < need) {
        record(job, "fail");
        sq_job_fail(job, "FlakyError", "attempt %d", sq_job_retry_count(job) + 2);
        sq_job_retry_in(job, 1);
        return SQ_FAILED;
    }
    record(job, "ok");
    return SQ_OK;
}

/* Sleeps args[0] seconds. */
static void sleep_arg0(sq_job *job)
{
    double s = json_number_value(sq_job_arg(job, 0));
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

/* Sleeps args[0] seconds without looking at sq_job_stopping. */
static sq_result sleep_job(sq_job *job, void *ud)
{
    (void)ud;
    record(job, "start");
    sleep_arg0(job);
    record(job, "ok");
    return SQ_OK;
}

/* Sleeps up to args[0] seconds, stopping early when the daemon stops. */
static sq_result polite_sleep_job(sq_job *job, void *ud)
{
    (void)ud;
    record(job, "start");
    double s = json_number_value(sq_job_arg(job, 0));
    for (double t = 0; t < s; t += 0.05) {
        if (sq_job_stopping(job))
            return sq_job_fail(job, "Interrupted", "stopping");
        usleep(50000);
    }
    record(job, "ok");
    return SQ_OK;
}

/* Sleeps args[0] seconds, then finishes its work though the daemon is
 * stopping (it looks at sq_job_stopping and carries on). */
static sq_result finish_job(sq_job *job, void *ud)
{
    (void)ud;
    record(job, "start");
    sleep_arg0(job);
    record(job, sq_job_stopping(job) ? "ok while stopping" : "ok");
    return SQ_OK;
}

/* WorkJob(n, ms): a unit of work of ms milliseconds, recorded once done. */
static sq_result work_job(sq_job *job, void *ud)
{
    (void)ud;
    json_int_t ms = json_integer_value(sq_job_arg(job, 1));
    usleep((useconds_t)(ms > 0 ? ms : 0) * 1000);
    record(job, "ok");
    return SQ_OK;
}

/* ChaosJob(n, ms) (test_chaos.c): ms milliseconds of work, then its jid on
 * a line of $SQ_CHAOS_DIR/runs.<pid>, appended with one write(2) (O_APPEND):
 * the record survives SIGKILL of this process and restarts of Redis alike. */
static sq_result chaos_job(sq_job *job, void *ud)
{
    (void)ud;
    json_int_t ms = json_integer_value(sq_job_arg(job, 1));
    usleep((useconds_t)(ms > 0 ? ms : 0) * 1000);
    const char *dir = getenv("SQ_CHAOS_DIR");
    if (dir == NULL)
        return sq_job_fail(job, "ChaosError", "SQ_CHAOS_DIR is not set");
    char path[4096], line[80];
    snprintf(path, sizeof path, "%s/runs.%d", dir, (int)getpid());
    int n = snprintf(line, sizeof line, "%s\n", sq_job_jid(job));
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0 || n <= 0 || n >= (int)sizeof line || write(fd, line, (size_t)n) != n) {
        if (fd >= 0)
            close(fd);
        return sq_job_fail(job, "ChaosError", "cannot record the run in %s", path);
    }
    close(fd);
    return SQ_OK;
}

static sq_result crash_job(sq_job *job, void *ud)
{
    (void)ud;
    record(job, "crash");
    raise(SIGKILL);
    return SQ_OK;
}

/* Does nothing and records nothing (for servers the handlers cannot
 * reach directly, e.g. behind sentinels): stat:processed counts it. */
static sq_result noop_job(sq_job *job, void *ud)
{
    (void)job, (void)ud;
    return SQ_OK;
}

/* Pushes a follow-up OkJob from inside a handler. */
static sq_result chain_job(sq_job *job, void *ud)
{
    (void)ud;
    record(job, "chain");
    sq_error err = {0};
    json_t *args = json_pack("[s]", sq_job_jid(job));
    char jid[25];
    int rc = sq_push(sq_job_client(job), "OkJob", args, NULL, jid, &err);
    json_decref(args);
    return rc == 0 ? SQ_OK : sq_job_fail(job, "PushError", "%s", err.message);
}

/* TraceJob (test_observe.c): records the W3C trace context it was given
 * (test:trace, a hash jid -> "<trace id>|<traceparent>|<tracestate>", "-"
 * for NULL) and, when args[0] is true, pushes an OkJob carrying it on. */
static sq_result trace_job(sq_job *job, void *ud)
{
    (void)ud;
    const char *id = sq_job_trace_id(job), *tp = sq_job_traceparent(job),
               *ts = sq_job_tracestate(job);
    char seen[1200];
    snprintf(seen, sizeof seen, "%s|%s|%s", id ? id : "-", tp ? tp : "-", ts ? ts : "-");
    redisContext *c = test_redis();
    redisReply *r = c ? redisCommand(c, "HSET test:trace %s %s", sq_job_jid(job), seen) : NULL;
    freeReplyObject(r);
    if (!json_is_true(sq_job_arg(job, 0)))
        return SQ_OK;
    sq_error err = {0};
    sq_push_opts opts = {.traceparent = tp, .tracestate = ts};
    json_t *args = json_pack("[s]", sq_job_jid(job));
    char jid[25];
    int rc = sq_push(sq_job_client(job), "TraceJob", args, &opts, jid, &err);
    json_decref(args);
    return rc == 0 ? SQ_OK : sq_job_fail(job, "PushError", "%s", err.message);
}

int squire_plugin_init(sq_registry *reg)
{
    int rc = 0;
    rc |= sq_register(reg, "OkJob", ok_job, NULL);
    rc |= sq_register(reg, "HardJob", ok_job, NULL);
    rc |= sq_register(reg, "MyActiveJob", ok_job, NULL);
    rc |= sq_register(reg, "FailJob", fail_job, NULL);
    rc |= sq_register(reg, "DeadJob", fail_job, NULL);
    rc |= sq_register(reg, "KillJob", kill_job, NULL);
    rc |= sq_register(reg, "DiscardJob", discard_job, NULL);
    rc |= sq_register(reg, "FlakyJob", flaky_job, NULL);
    rc |= sq_register(reg, "SleepJob", sleep_job, NULL);
    rc |= sq_register(reg, "PoliteSleepJob", polite_sleep_job, NULL);
    rc |= sq_register(reg, "FinishJob", finish_job, NULL);
    rc |= sq_register(reg, "CrashJob", crash_job, NULL);
    rc |= sq_register(reg, "WorkJob", work_job, NULL);
    rc |= sq_register(reg, "ChaosJob", chaos_job, NULL);
    rc |= sq_register(reg, "ChainJob", chain_job, NULL);
    rc |= sq_register(reg, "NoopJob", noop_job, NULL);
    rc |= sq_register(reg, "TraceJob", trace_job, NULL);
#ifdef SQ_TESTJOBS_ISOLATED /* the isojobs plugin: these and isojobs.c's handlers */
    rc |= testjobs_register_isolated(reg);
#endif
    return rc;
}
