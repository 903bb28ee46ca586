/*
 * test_daemon.c: squire end to end against a real redis-server: jobs run,
 * fail into the retry set with Sidekiq's fields, die, get scheduled, survive
 * bad payloads, TERM/TSTP/TTIN, Redis restarts and bad credentials.
 */
#include <time.h>
#include <unistd.h>

#include "itest.h"

START_TEST(ok_job_runs_with_its_args)
{
    sqt_proc p;
    itest_squire(&p, R.url, "2", NULL);
    char jid[25];
    itest_push("OkJob", "[1, \"two\", {\"three\": [3.5, null]}]", NULL, jid);
    ck_assert_int_eq(sqt_wait_int(C, 1, 10, "SISMEMBER test:done %s", jid), 1);
    redisReply *r = sqt_cmd(C, "LINDEX test:log 0");
    json_t *rec = json_loads(r->str, 0, NULL);
    freeReplyObject(r);
    ck_assert_str_eq(json_string_value(json_object_get(rec, "class")), "OkJob");
    ck_assert_str_eq(json_string_value(json_object_get(rec, "queue")), "default");
    ck_assert_int_eq(json_integer_value(json_object_get(rec, "retry_count")), -1);
    json_t *want = json_loads("[1, \"two\", {\"three\": [3.5, null]}]", 0, NULL);
    ck_assert(json_equal(json_object_get(rec, "args"), want));
    json_decref(want);
    json_decref(rec);
    itest_stop(&p);
    /* stats flushed at exit, with the daily key and its 5-year TTL */
    ck_assert_int_eq(sqt_int(C, "GET stat:processed"), 1);
    char day[16];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(day, sizeof day, "%Y-%m-%d", &tm);
    ck_assert_int_eq(sqt_int(C, "GET stat:processed:%s", day), 1);
    ck_assert_int_gt(sqt_int(C, "TTL stat:processed:%s", day), 157000000);
}
END_TEST

START_TEST(failure_goes_to_retry_with_sidekiq_fields)
{
    sqt_proc p;
    itest_squire(&p, R.url, "2", NULL);
    /* a payload as Sidekiq writes it, with an unknown key and odd number text */
    const char *job = "{\"retry\":true,\"queue\":\"default\",\"args\":[\"ArgumentError\","
                      "\"bad thing\"],\"class\":\"FailJob\",\"jid\":\"0123456789abcdef01234567\","
                      "\"created_at\":1700000000.25,\"enqueued_at\":1700000000.5,"
                      "\"custom\":{\"n\":1.10}}";
    double before = sqt_wall();
    redisReply *r = sqt_cmd(C, "LPUSH queue:default %s", job);
    freeReplyObject(r);
    ck_assert_int_eq(sqt_wait_int(C, 1, 10, "ZCARD retry"), 1);
    double score;
    json_t *j = itest_only_member("retry", &score);
    ck_assert_str_eq(json_string_value(json_object_get(j, "error_class")), "ArgumentError");
    ck_assert_str_eq(json_string_value(json_object_get(j, "error_message")), "bad thing");
    ck_assert_int_eq(json_integer_value(json_object_get(j, "retry_count")), 0);
    ck_assert(json_is_real(json_object_get(j, "failed_at")));
    ck_assert(json_real_value(json_object_get(j, "failed_at")) >= before - 1);
    ck_assert_ptr_null(json_object_get(j, "retried_at"));
    ck_assert_str_eq(json_string_value(json_object_get(j, "queue")), "default");
    ck_assert_str_eq(json_string_value(json_object_get(j, "jid")), "0123456789abcdef01234567");
    ck_assert(json_is_object(json_object_get(j, "custom")));
    /* count 0: 15 s + rand(10) * 1 */
    ck_assert(score >= before + 15 - 1 && score <= sqt_wall() + 15 + 9 + 1);
    json_decref(j);
    /* the unknown key's number text survived byte for byte */
    r = sqt_cmd(C, "ZRANGE retry 0 -1");
    ck_assert_ptr_nonnull(strstr(r->element[0]->str, "\"custom\":{\"n\":1.10}"));
    freeReplyObject(r);
    itest_stop(&p);
    ck_assert_int_eq(sqt_int(C, "GET stat:failed"), 1);
    ck_assert_int_eq(sqt_int(C, "GET stat:processed"), 1);
}
END_TEST

START_TEST(retry_zero_goes_to_dead_set)
{
    sqt_proc p;
    itest_squire(&p, R.url, "2", NULL);
    char jid[25];
    redisReply *r = sqt_cmd(C, "LPUSH queue:default %s",
                            "{\"class\":\"FailJob\",\"args\":[\"IOError\",\"disk\"],\"retry\":0,"
                            "\"queue\":\"default\",\"jid\":\"aaaaaaaaaaaaaaaaaaaaaaaa\"}");
    freeReplyObject(r);
    ck_assert_int_eq(sqt_wait_int(C, 1, 10, "ZCARD dead"), 1);
    json_t *j = itest_only_member("dead", NULL);
    ck_assert_str_eq(json_string_value(json_object_get(j, "error_class")), "IOError");
    ck_assert_int_eq(json_integer_value(json_object_get(j, "retry_count")), 0);
    json_decref(j);
    ck_assert_int_eq(sqt_int(C, "ZCARD retry"), 0);
    /* retry: false drops the job: no retry entry, no dead entry */
    sq_push_opts no = {.retry = SQ_RETRY_NEVER};
    itest_push("FailJob", "[\"X\", \"y\"]", &no, jid);
    ck_assert_int_eq(sqt_wait_int(C, 1, 10, "HGET test:runs %s", jid), 1);
    sqt_sleep(0.3);
    ck_assert_int_eq(sqt_int(C, "ZCARD dead"), 1);
    ck_assert_int_eq(sqt_int(C, "ZCARD retry"), 0);
    itest_stop(&p);
}
END_TEST

START_TEST(kill_and_discard_dispositions)
{
    sqt_proc p;
    itest_squire(&p, R.url, "2", NULL);
    char k[25], d[25];
    itest_push("KillJob", "[]", NULL, k);
    itest_push("DiscardJob", "[]", NULL, d);
    ck_assert_int_eq(sqt_wait_int(C, 1, 10, "ZCARD dead"), 1);
    ck_assert_int_eq(sqt_wait_int(C, 1, 10, "HGET test:runs %s", d), 1);
    json_t *j = itest_only_member("dead", NULL);
    ck_assert_str_eq(json_string_value(json_object_get(j, "jid")), k);
    ck_assert_str_eq(json_string_value(json_object_get(j, "error_class")), "FatalError");
    json_decref(j);
    ck_assert_int_eq(sqt_int(C, "ZCARD retry"), 0);
    itest_stop(&p);
}
END_TEST

START_TEST(unknown_class_is_an_ordinary_failure)
{
    sqt_proc p;
    itest_squire(&p, R.url, "2", NULL);
    char jid[25];
    itest_push("NoSuchJob", "[]", NULL, jid);
    ck_assert_int_eq(sqt_wait_int(C, 1, 10, "ZCARD retry"), 1);
    json_t *j = itest_only_member("retry", NULL);
    ck_assert_str_eq(json_string_value(json_object_get(j, "error_class")), "Squire::NoHandler");
    ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(j, "error_message")),
                                 "NoSuchJob"));
    json_decref(j);
    itest_stop(&p);
}
END_TEST

/* reliability.md §6 rows 1-3, 6-8, 11: each bad payload reaches the dead set
 * and the daemon keeps serving. */
START_TEST(bad_payloads_go_to_the_dead_set)
{
    sqt_proc p;
    itest_squire(&p, R.url, "2", NULL);
    static const char *raw[] = {"hello", "{\"class\":\"OkJob\"", "", "[]", "42", "null"};
    for (size_t i = 0; i < sizeof raw / sizeof raw[0]; i++) {
        redisReply *r = sqt_cmd(C, "LPUSH queue:default %b", raw[i], strlen(raw[i]));
        freeReplyObject(r);
    }
    redisReply *r = sqt_cmd(C, "LPUSH queue:default %b", "{\"class\":\"OkJob\",\0\"args\":[]}",
                            (size_t)27);
    freeReplyObject(r);
    r = sqt_cmd(C, "LPUSH queue:default %s", "{\"class\":42,\"args\":[],\"jid\":\"b1\"}");
    freeReplyObject(r);
    r = sqt_cmd(C, "LPUSH queue:default %s", "{\"class\":\"OkJob\",\"args\":\"x\",\"jid\":\"b2\"}");
    freeReplyObject(r);
    /* 100k-deep nesting */
    size_t deep = 100000;
    char *nest = malloc(deep * 2 + 64);
    size_t n = (size_t)sprintf(nest, "{\"class\":\"OkJob\",\"args\":");
    memset(nest + n, '[', deep);
    memset(nest + n + deep, ']', deep);
    n += 2 * deep;
    nest[n++] = '}';
    r = sqt_cmd(C, "LPUSH queue:default %b", nest, n);
    freeReplyObject(r);
    free(nest);
    /* 2 MB payload, over the 1 MiB default limit */
    size_t big = 2 * 1024 * 1024;
    char *huge = malloc(big);
    memset(huge, ' ', big);
    memcpy(huge, "{\"class\":\"OkJob\",\"args\":[\"", 26);
    memcpy(huge + big - 3, "\"]}", 3);
    memset(huge + 26, 'x', big - 29);
    r = sqt_cmd(C, "LPUSH queue:default %b", huge, big);
    freeReplyObject(r);
    free(huge);
    char jid[25];
    itest_push("OkJob", "[]", NULL, jid);
    ck_assert_int_eq(sqt_wait_int(C, 1, 15, "SISMEMBER test:done %s", jid), 1);
    ck_assert_int_eq(sqt_wait_int(C, 11, 5, "ZCARD dead"), 11);
    /* not-JSON payloads are stored as their raw bytes */
    ck_assert_int_ge(sqt_int(C, "ZSCORE dead hello"), 1);
    ck_assert_int_ge(sqt_int(C, "ZSCORE dead %b", "", (size_t)0), 1);
    /* bad shapes and objects over a limit (the deep and the huge one) carry
     * the reason */
    r = sqt_cmd(C, "ZRANGE dead 0 -1");
    int with_reason = 0;
    for (size_t i = 0; i < r->elements; i++)
        if (strstr(r->element[i]->str, "Squire::InvalidJob"))
            with_reason++;
    freeReplyObject(r);
    ck_assert_int_eq(with_reason, 4);
    ck_assert_int_eq(sqt_int(C, "ZCARD retry"), 0);
    itest_stop(&p);
}
END_TEST

START_TEST(scheduled_job_runs_when_due)
{
    sqt_proc p;
    itest_squire(&p, R.url, "2", NULL);
    char jid[25];
    sq_push_opts o = {.at = sqt_wall() + 1.0};
    itest_push("OkJob", "[\"later\"]", &o, jid);
    ck_assert_int_eq(sqt_int(C, "ZCARD schedule"), 1);
    ck_assert_int_eq(sqt_int(C, "SISMEMBER test:done %s", jid), 0);
    ck_assert_int_eq(sqt_wait_int(C, 1, 10, "SISMEMBER test:done %s", jid), 1);
    ck_assert_int_eq(sqt_int(C, "ZCARD schedule"), 0);
    ck_assert_int_eq(sqt_int(C, "SISMEMBER queues default"), 1);
    itest_stop(&p);
}
END_TEST

/* Scheduled jobs are not held back by the poll interval. Default settings: a
 * job scheduled after start-up runs within a second or so of its time (no
 * 10-15 s initial wait, heads checked at most a second apart). An explicit
 * poll_interval_average of 30: a job already in the set when squire starts
 * runs when due (the poller wakes at the head's time). Sidekiq's timing
 * would be 7.5 s+ late in the first case and 13 s+ in the second. */
START_TEST(scheduled_jobs_run_on_time_whatever_the_poll_interval)
{
    static const struct {
        const char *yaml;
        bool before_start; /* schedule before starting squire */
    } cases[] = {
        {":beat_interval: 1\n", false},
        {":beat_interval: 1\n:poll_interval_average: 30\n", true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *argv[] = {
            "-C", itest_config(cases[i].yaml), "-r", SQ_TEST_PLUGIN, "-c", "3", "-t", "2", NULL};
        sqt_proc p;
        char jid[25];
        sq_push_opts o = {0};
        if (cases[i].before_start) {
            o.at = sqt_wall() + 2.0;
            itest_push("OkJob", "[\"soon\"]", &o, jid);
        }
        sqt_squire_start(&p, R.url, argv, NULL);
        ck_assert_msg(sqt_log_wait(&p, "starting", 10), "squire did not start");
        if (!cases[i].before_start) {
            sqt_sleep(0.5);
            o.at = sqt_wall() + 2.0;
            itest_push("OkJob", "[\"soon\"]", &o, jid);
        }
        double limit = 6.0; /* seconds late, wide on purpose: this is not a speed test */
        sqt_wait_int(C, 1, o.at + limit - sqt_wall(), "SISMEMBER test:done %s", jid);
        double late = sqt_wall() - o.at;
        ck_assert_msg(sqt_int(C, "SISMEMBER test:done %s", jid) == 1,
                      "case %zu: the job had not run %.1f s after its time", i, late);
        itest_stop(&p);
    }
}
END_TEST

START_TEST(retry_in_reruns_until_success)
{
    sqt_proc p;
    itest_squire(&p, R.url, "2", NULL);
    char jid[25];
    /* one failure, retried after 1 s + Sidekiq's jitter (0..9 s at count 0) */
    itest_push("FlakyJob", "[1]", NULL, jid);
    ck_assert_int_eq(sqt_wait_int(C, 1, 20, "SISMEMBER test:done %s", jid), 1);
    ck_assert_int_eq(sqt_int(C, "HGET test:runs %s", jid), 2);
    /* the handler saw retry_count -1, then 0 */
    redisReply *r = sqt_cmd(C, "LRANGE test:log 0 -1");
    ck_assert_int_eq(r->elements, 2);
    for (int i = 0; i < 2; i++) {
        json_t *rec = json_loads(r->element[i]->str, 0, NULL);
        ck_assert_int_eq(json_integer_value(json_object_get(rec, "retry_count")), i - 1);
        json_decref(rec);
    }
    freeReplyObject(r);
    itest_stop(&p);
    ck_assert_int_eq(sqt_int(C, "GET stat:failed"), 1);
    ck_assert_int_eq(sqt_int(C, "GET stat:processed"), 2);
}
END_TEST

START_TEST(handler_can_push_jobs)
{
    sqt_proc p;
    itest_squire(&p, R.url, "2", NULL);
    char jid[25];
    itest_push("ChainJob", "[]", NULL, jid);
    ck_assert_int_eq(sqt_wait_int(C, 1, 10, "SCARD test:done"), 1);
    itest_stop(&p);
}
END_TEST

static const char *SLOW_JOB = "{\"class\":\"SleepJob\",  \"args\":[30],\"jid\":\"cccccccccccccccccccccccc\","
                              "\"queue\":\"default\",\"x-unknown\":[1.50, \"\\u00e9\"],"
                              "\"enqueued_at\":1700000000.123456}";

START_TEST(term_pushes_running_jobs_back_byte_for_byte)
{
    sqt_proc p;
    itest_squire(&p, R.url, "1", NULL);
    redisReply *r = sqt_cmd(C, "LPUSH queue:default %s", SLOW_JOB);
    freeReplyObject(r);
    ck_assert_int_eq(sqt_wait_int(C, 1, 10, "LLEN test:log"), 1);
    ck_assert_int_eq(sqt_int(C, "LLEN queue:default"), 0);
    double t0 = sqt_now();
    kill(p.pid, SIGTERM);
    ck_assert_int_eq(sqt_proc_wait(&p, 15), 0);
    ck_assert(sqt_now() - t0 < 6);
    r = sqt_cmd(C, "LRANGE queue:default 0 -1");
    ck_assert_int_eq(r->elements, 1);
    ck_assert_str_eq(r->element[0]->str, SLOW_JOB);
    freeReplyObject(r);
    ck_assert_int_eq(sqt_int(C, "ZCARD retry"), 0);
}
END_TEST

START_TEST(second_term_skips_the_wait)
{
    sqt_proc p;
    itest_squire(&p, R.url, "25", NULL);
    redisReply *r = sqt_cmd(C, "LPUSH queue:default %s", SLOW_JOB);
    freeReplyObject(r);
    ck_assert_int_eq(sqt_wait_int(C, 1, 10, "LLEN test:log"), 1);
    double t0 = sqt_now();
    kill(p.pid, SIGTERM);
    sqt_sleep(0.5);
    kill(p.pid, SIGTERM);
    ck_assert_int_eq(sqt_proc_wait(&p, 15), 0);
    ck_assert(sqt_now() - t0 < 6);
    r = sqt_cmd(C, "LRANGE queue:default 0 -1");
    ck_assert_int_eq(r->elements, 1);
    ck_assert_str_eq(r->element[0]->str, SLOW_JOB);
    freeReplyObject(r);
}
END_TEST

START_TEST(job_that_stops_politely_is_requeued_not_retried)
{
    sqt_proc p;
    itest_squire(&p, R.url, "10", NULL);
    char jid[25];
    itest_push("PoliteSleepJob", "[30]", NULL, jid);
    ck_assert_int_eq(sqt_wait_int(C, 1, 10, "LLEN test:log"), 1);
    kill(p.pid, SIGTERM);
    ck_assert_int_eq(sqt_proc_wait(&p, 15), 0);
    ck_assert_int_eq(sqt_int(C, "LLEN queue:default"), 1);
    ck_assert_int_eq(sqt_int(C, "ZCARD retry"), 0);
    ck_assert_int_eq(sqt_int(C, "ZCARD dead"), 0);
}
END_TEST

START_TEST(tstp_quiets_and_ttin_reports)
{
    sqt_proc p;
    itest_squire(&p, R.url, "2", NULL);
    redisReply *r = sqt_cmd(C, "LPUSH queue:default %s", SLOW_JOB);
    freeReplyObject(r);
    ck_assert_int_eq(sqt_wait_int(C, 1, 10, "LLEN test:log"), 1);
    kill(p.pid, SIGTTIN);
    ck_assert(sqt_log_wait(&p, "running class=SleepJob jid=cccccccccccccccccccccccc", 5));
    kill(p.pid, SIGTSTP);
    ck_assert(sqt_log_wait(&p, "TSTP received", 5));
    sqt_sleep(2.5); /* idle workers leave their 2 s BRPOP */
    char jid[25];
    itest_push("OkJob", "[]", NULL, jid);
    sqt_sleep(1.5);
    ck_assert_int_eq(sqt_int(C, "LLEN queue:default"), 1);
    kill(p.pid, SIGTERM);
    ck_assert_int_eq(sqt_proc_wait(&p, 15), 0);
    ck_assert_int_eq(sqt_int(C, "LLEN queue:default"), 2);
}
END_TEST

START_TEST(strict_queue_order)
{
    sqt_proc p;
    const char *cfg = itest_config(":poll_interval_average: 0.2\n:queues:\n  - critical\n  - low\n");
    const char *argv[] = {"-C", cfg, "-r", SQ_TEST_PLUGIN, "-c", "1", NULL};
    for (int i = 0; i < 5; i++) {
        sq_push_opts lo = {.queue = "low"}, hi = {.queue = "critical"};
        char jid[25];
        itest_push("OkJob", "[\"low\"]", &lo, jid);
        itest_push("OkJob", "[\"critical\"]", &hi, jid);
    }
    sqt_squire_start(&p, R.url, argv, NULL);
    ck_assert_int_eq(sqt_wait_int(C, 10, 10, "SCARD test:done"), 10);
    redisReply *r = sqt_cmd(C, "LRANGE test:log 0 -1");
    for (size_t i = 0; i < r->elements; i++)
        ck_assert_ptr_nonnull(strstr(r->element[i]->str, i < 5 ? "\"critical\"" : "\"low\""));
    freeReplyObject(r);
    itest_stop(&p);
}
END_TEST

START_TEST(wrong_typed_queue_does_not_stop_the_others)
{
    sqt_proc p;
    redisReply *r = sqt_cmd(C, "SET queue:broken oops");
    freeReplyObject(r);
    const char *more[] = {"-q", "broken", "-q", "default", NULL};
    itest_squire(&p, R.url, "2", more);
    char jid[25];
    itest_push("OkJob", "[]", NULL, jid);
    ck_assert_int_eq(sqt_wait_int(C, 1, 10, "SISMEMBER test:done %s", jid), 1);
    ck_assert(sqt_log_wait(&p, "queue:broken is a string, not a list", 5));
    itest_stop(&p);
}
END_TEST

/* When every queue's key is the wrong type the workers fetch nothing at all:
 * that is a failing fetch (log, the heartbeat's label and fetch_error), not
 * an idle, healthy process. */
START_TEST(every_queue_wrong_typed_does_not_look_healthy)
{
    sqt_proc p;
    freeReplyObject(sqt_cmd(C, "SET queue:only oops"));
    const char *more[] = {"-q", "only", "--fetch", _i ? "basic" : "reliable", NULL};
    itest_squire(&p, R.url, "2", more);
    ck_assert(sqt_log_wait(&p, "queue:only is a string, not a list", 10));
    ck_assert(sqt_log_wait(&p, "fetch failed:", 10));
    redisReply *info = NULL;
    for (int i = 0; i < 100; i++) { /* shown after SQ_FETCH_FAILING_SHOW_MS, at a beat */
        redisReply *ids = sqt_cmd(C, "SMEMBERS processes");
        if (ids->elements == 1) {
            info = sqt_cmd(C, "HGET %s info", ids->element[0]->str);
            if (info->type == REDIS_REPLY_STRING && strstr(info->str, "\"fetch-failing\"")) {
                redisReply *fe = sqt_cmd(C, "HGET %s fetch_error", ids->element[0]->str);
                ck_assert_msg(strstr(fe->str, "queue:only is a string"), "%s", fe->str);
                freeReplyObject(fe);
                freeReplyObject(ids);
                break;
            }
            freeReplyObject(info);
            info = NULL;
        }
        freeReplyObject(ids);
        sqt_sleep(0.1);
    }
    ck_assert_msg(info != NULL, "the process never showed fetch-failing");
    freeReplyObject(info);
    freeReplyObject(sqt_cmd(C, "DEL queue:only"));
    itest_stop(&p);
}
END_TEST

START_TEST(survives_a_redis_restart)
{
    sqt_proc p;
    itest_squire(&p, R.url, "2", NULL);
    char jid[25];
    itest_push("OkJob", "[1]", NULL, jid);
    ck_assert_int_eq(sqt_wait_int(C, 1, 10, "SISMEMBER test:done %s", jid), 1);
    redisFree(C);
    sqt_redis_kill9(&R);
    sqt_sleep(1.5);
    ck_assert_int_eq(sqt_proc_wait(&p, 0), -1); /* still running */
    sqt_redis_restart(&R);
    C = sqt_redis_connect(&R);
    itest_push("OkJob", "[2]", NULL, jid);
    ck_assert_int_eq(sqt_wait_int(C, 1, 15, "SISMEMBER test:done %s", jid), 1);
    ck_assert(sqt_log_wait(&p, "fetch failed", 1));
    ck_assert(sqt_log_wait(&p, "fetching again", 1));
    itest_stop(&p);
}
END_TEST

START_TEST(waits_for_redis_at_start)
{
    sqt_proc p;
    int port = sqt_free_port();
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/0", port);
    const char *cfg = itest_config(":poll_interval_average: 0.2\n");
    const char *argv[] = {"-C", cfg, "-r", SQ_TEST_PLUGIN, NULL};
    sqt_squire_start(&p, url, argv, NULL);
    ck_assert(sqt_log_wait(&p, "waiting for Redis", 5));
    /* bring a Redis up on that port */
    itest_redis_on_port(port);
    char jid[25];
    itest_push("OkJob", "[]", NULL, jid);
    ck_assert_int_eq(sqt_wait_int(C, 1, 15, "SISMEMBER test:done %s", jid), 1);
    itest_stop(&p);
}
END_TEST

START_TEST(passwords_work_and_are_never_logged)
{
    redisFree(C);
    sqt_redis_stop(&R);
    sqt_redis_start(&R, "--requirepass hunter2secret");
    C = sqt_redis_connect(&R);
    redisReply *r = sqt_cmd(C, "AUTH hunter2secret");
    freeReplyObject(r);
    char good[128], bad[128];
    snprintf(good, sizeof good, "redis://:hunter2secret@127.0.0.1:%d/0", R.port);
    snprintf(bad, sizeof bad, "redis://:wrongsecret9@127.0.0.1:%d/0", R.port);

    sqt_proc p;
    const char *argv[] = {"-r", SQ_TEST_PLUGIN, NULL};
    sqt_squire_start(&p, bad, argv, NULL);
    ck_assert_int_eq(sqt_proc_wait(&p, 10), 78);
    char *log = sqt_log_read(&p);
    ck_assert_ptr_null(strstr(log, "wrongsecret9"));
    ck_assert_ptr_nonnull(strstr(log, "AUTH"));
    free(log);

    sqt_squire_start(&p, good, argv, NULL);
    ck_assert(sqt_log_wait(&p, "starting", 10));
    /* the test handlers record without a password: give them a user-less
     * path by pushing a job that needs no recording */
    sq_error err = {0};
    sq_client *c = sq_client_new(good, &err);
    ck_assert_ptr_nonnull(c);
    json_t *args = json_pack("[s,s]", "E", "m");
    sq_push_opts o = {.retry = SQ_RETRY_NEVER};
    ck_assert_int_eq(sq_push(c, "NoSuchJob", args, &o, NULL, &err), 0);
    json_decref(args);
    sq_client_free(c);
    ck_assert(sqt_log_wait(&p, "no handler registered", 10));
    kill(p.pid, SIGTERM);
    ck_assert_int_eq(sqt_proc_wait(&p, 15), 0);
    log = sqt_log_read(&p);
    ck_assert_ptr_null(strstr(log, "hunter2secret"));
    ck_assert_ptr_nonnull(strstr(log, "REDACTED"));
    free(log);
}
END_TEST

START_TEST(bad_config_and_flags_exit_with_their_codes)
{
    sqt_proc p;
    const char *cfg = itest_config(":concurrency: ten\n");
    const char *a1[] = {"-C", cfg, NULL};
    sqt_squire_start(&p, R.url, a1, NULL);
    ck_assert_int_eq(sqt_proc_wait(&p, 10), 78);
    char *log = sqt_log_read(&p);
    ck_assert_ptr_nonnull(strstr(log, "sidekiq.yml:1"));
    ck_assert_ptr_nonnull(strstr(log, "concurrency"));
    free(log);

    const char *a2[] = {"-c", "abc", NULL};
    sqt_squire_start(&p, R.url, a2, NULL);
    ck_assert_int_eq(sqt_proc_wait(&p, 10), 64);

    const char *a3[] = {"--no-such-flag", NULL};
    sqt_squire_start(&p, R.url, a3, NULL);
    ck_assert_int_eq(sqt_proc_wait(&p, 10), 64);

    const char *a4[] = {"-C", "/nonexistent/sidekiq.yml", NULL};
    sqt_squire_start(&p, R.url, a4, NULL);
    ck_assert_int_eq(sqt_proc_wait(&p, 10), 78);

    const char *a5[] = {"-r", "/nonexistent/libjobs.so", NULL};
    sqt_squire_start(&p, R.url, a5, NULL);
    ck_assert_int_eq(sqt_proc_wait(&p, 10), 78);

    const char *a6[] = {"-V", NULL};
    sqt_squire_start(&p, R.url, a6, NULL);
    ck_assert_int_eq(sqt_proc_wait(&p, 10), 0);
    ck_assert(sqt_log_wait(&p, "squire " SQ_VERSION, 1));

    const char *a7[] = {"-h", NULL};
    sqt_squire_start(&p, R.url, a7, NULL);
    ck_assert_int_eq(sqt_proc_wait(&p, 10), 0);
    ck_assert(sqt_log_wait(&p, "--concurrency", 1));
}
END_TEST

START_TEST(squirectl_push_now_later_and_bulk)
{
    char *out = NULL;
    ck_assert_int_eq(sqt_sh(R.url, &out, "%s push OkJob '[1, \"a\"]' -q mail", SQ_TEST_SQUIRECTL), 0);
    ck_assert_int_eq(strlen(out), 25);
    free(out);
    ck_assert_int_eq(sqt_int(C, "LLEN queue:mail"), 1);
    ck_assert_int_eq(sqt_int(C, "SISMEMBER queues mail"), 1);
    ck_assert_int_eq(sqt_sh(R.url, NULL, "%s push OkJob '[2]' --in 60", SQ_TEST_SQUIRECTL), 0);
    ck_assert_int_eq(sqt_sh(R.url, NULL, "%s push OkJob '[3]' --at 2099-01-01T00:00:00Z",
                            SQ_TEST_SQUIRECTL), 0);
    ck_assert_int_eq(sqt_int(C, "ZCARD schedule"), 2);
    ck_assert_int_eq(sqt_int(C, "ZCOUNT schedule 4070908800 4070908800"), 1);
    ck_assert_int_eq(sqt_sh(R.url, &out, "printf '[1]\\n[2]\\n\\n[3]\\n' | %s push OkJob --bulk",
                            SQ_TEST_SQUIRECTL), 0);
    ck_assert_str_eq(out, "3\n");
    free(out);
    ck_assert_int_eq(sqt_int(C, "LLEN queue:default"), 3);
    ck_assert_int_eq(sqt_sh(R.url, NULL, "%s push OkJob 'not json' 2>/dev/null",
                            SQ_TEST_SQUIRECTL), 64);
    ck_assert_int_eq(sqt_sh(R.url, NULL, "%s push OkJob '[]' --in soon 2>/dev/null",
                            SQ_TEST_SQUIRECTL), 64);
}
END_TEST

START_TEST(program_with_its_own_main_runs_its_handlers)
{
    sqt_proc p;
    const char *argv[] = {"-c", "2", "-q", "reports", NULL};
    sqt_proc_start(&p, SQ_TEST_EMBEDDED, R.url, argv, NULL);
    ck_assert(sqt_log_wait(&p, "starting", 10));
    char jid[25];
    sq_push_opts o = {.queue = "reports"};
    itest_push("ReportJob", "[7]", &o, jid);
    ck_assert(sqt_log_wait(&p, "embedded: building report 7", 10));
    itest_stop(&p);
}
END_TEST

/* A wrong-typed `queues` key must not make the poller drop the job it pops;
 * and due jobs behind 150 stuck ones (wrong-typed queue) still move. */
START_TEST(poller_never_drops_or_starves_on_wrong_types)
{
    redisReply *r = sqt_cmd(C, "SET queues oops");
    freeReplyObject(r);
    r = sqt_cmd(C, "SET queue:mail oops");
    freeReplyObject(r);
    r = sqt_cmd(C, "ZADD schedule 1 %s", "{\"class\":\"OkJob\",\"args\":[],\"queue\":\"other\","
                "\"jid\":\"eeeeeeeeeeeeeeeeeeeeeeee\"}");
    freeReplyObject(r);
    for (int i = 0; i < 150; i++) {
        char m[128];
        snprintf(m, sizeof m, "{\"class\":\"OkJob\",\"args\":[%d],\"queue\":\"mail\"}", i);
        r = sqt_cmd(C, "ZADD retry 2 %s", m);
        freeReplyObject(r);
    }
    sqt_proc p;
    const char *more[] = {"-q", "default", "-q", "other", NULL};
    itest_squire(&p, R.url, "2", more);
    ck_assert(sqt_log_wait(&p, "has the wrong type", 10));
    sqt_sleep(1);
    ck_assert_int_eq(sqt_int(C, "ZCARD schedule"), 1); /* still there, not lost */
    r = sqt_cmd(C, "DEL queues");
    freeReplyObject(r);
    ck_assert_int_eq(sqt_wait_int(C, 1, 10, "SISMEMBER test:done eeeeeeeeeeeeeeeeeeeeeeee"), 1);
    /* a due default job behind the 150 stuck mail ones */
    r = sqt_cmd(C, "ZADD retry 3 %s", "{\"class\":\"OkJob\",\"args\":[],\"queue\":\"default\","
                "\"jid\":\"ffffffffffffffffffffffff\"}");
    freeReplyObject(r);
    ck_assert_int_eq(sqt_wait_int(C, 1, 10, "SISMEMBER test:done ffffffffffffffffffffffff"), 1);
    ck_assert_int_eq(sqt_int(C, "ZCARD retry"), 150);
    itest_stop(&p);
}
END_TEST

/* The records test:log holds for jid, in order (a new reference: an array). */
static json_t *records_of(const char *jid)
{
    json_t *out = json_array();
    redisReply *r = sqt_cmd(C, "LRANGE test:log 0 -1");
    for (size_t i = 0; i < r->elements; i++) {
        json_t *rec = json_loads(r->element[i]->str, 0, NULL);
        const char *j = json_string_value(json_object_get(rec, "jid"));
        if (j != NULL && strcmp(j, jid) == 0)
            json_array_append(out, rec);
        json_decref(rec);
    }
    freeReplyObject(r);
    return out;
}

/* Any valid JSON number, even one jansson cannot hold (beyond int64, beyond
 * double), is a job like any other: the poller moves it from `schedule` and
 * from `retry` (after a failure's rewrite), and its text stays byte for
 * byte. Entries without `queue` go to `default`, as Sidekiq's poller does. */
START_TEST(poller_moves_any_json_number_and_defaults_the_queue)
{
#define BIG_ARGS "[1,18446744073709551616,1e400,-1e400,-184467440737095516160.5e-3,1E+400]"
    static const char flaky[] =
        "{\"class\":\"FlakyJob\",\"args\":" BIG_ARGS ",\"queue\":\"default\","
        "\"jid\":\"a1a1a1a1a1a1a1a1a1a1a1a1\",\"n\":18446744073709551616}";
    static const char noqueue_sched[] =
        "{\"class\":\"OkJob\",\"args\":[1e400],\"jid\":\"b2b2b2b2b2b2b2b2b2b2b2b2\"}";
    static const char noqueue_retry[] =
        "{\"class\":\"OkJob\",\"args\":[],\"jid\":\"c3c3c3c3c3c3c3c3c3c3c3c3\",\"retry\":true,"
        "\"retry_count\":0,\"error_class\":\"E\",\"error_message\":\"m\",\"failed_at\":1.5}";
    redisReply *r = sqt_cmd(C, "ZADD schedule 1 %s", flaky);
    freeReplyObject(r);
    r = sqt_cmd(C, "ZADD schedule 2 %s", noqueue_sched);
    freeReplyObject(r);
    r = sqt_cmd(C, "ZADD retry 3 %s", noqueue_retry);
    freeReplyObject(r);
    sqt_proc p;
    itest_squire(&p, R.url, "2", NULL);
    ck_assert_int_eq(sqt_wait_int(C, 1, 20, "SISMEMBER test:done a1a1a1a1a1a1a1a1a1a1a1a1"), 1);
    ck_assert_int_eq(sqt_wait_int(C, 1, 5, "SISMEMBER test:done b2b2b2b2b2b2b2b2b2b2b2b2"), 1);
    ck_assert_int_eq(sqt_wait_int(C, 1, 5, "SISMEMBER test:done c3c3c3c3c3c3c3c3c3c3c3c3"), 1);
    ck_assert_int_eq(sqt_int(C, "ZCARD dead"), 0);
    ck_assert_int_eq(sqt_int(C, "ZCARD retry"), 0);
    ck_assert_int_eq(sqt_int(C, "ZCARD schedule"), 0);
    /* scheduled, failed (the retry rewrite), moved from retry, ran: every run
     * saw the numbers as they were written. One failure only: a retry waits
     * 1 s plus Sidekiq's jitter (up to 9 s at count 0, 18 s at count 1). */
    json_t *recs = records_of("a1a1a1a1a1a1a1a1a1a1a1a1");
    ck_assert_int_eq(json_array_size(recs), 2);
    static const char *const what[] = {"fail", "ok"};
    for (size_t i = 0; i < 2; i++) {
        json_t *rec = json_array_get(recs, i);
        const char *raw = json_string_value(json_object_get(rec, "raw"));
        ck_assert_str_eq(json_string_value(json_object_get(rec, "what")), what[i]);
        ck_assert_int_eq(json_integer_value(json_object_get(rec, "retry_count")), (int)i - 1);
        ck_assert_ptr_nonnull(raw);
        ck_assert_msg(strstr(raw, "\"args\":" BIG_ARGS ",") != NULL, "run %zu: %s", i, raw);
        ck_assert_msg(strstr(raw, "\"n\":18446744073709551616") != NULL, "run %zu: %s", i, raw);
    }
    json_decref(recs);
    static const char *const noqueue[] = {"b2b2b2b2b2b2b2b2b2b2b2b2", "c3c3c3c3c3c3c3c3c3c3c3c3"};
    for (size_t i = 0; i < 2; i++) {
        recs = records_of(noqueue[i]);
        ck_assert_int_eq(json_array_size(recs), 1);
        json_t *rec = json_array_get(recs, 0);
        ck_assert_str_eq(json_string_value(json_object_get(rec, "queue")), "default");
        const char *raw = json_string_value(json_object_get(rec, "raw"));
        ck_assert_msg(strstr(raw, "\"queue\":\"default\"") != NULL, "%s", raw);
        json_decref(recs);
    }
    ck_assert_int_eq(sqt_int(C, "SISMEMBER queues default"), 1);
    itest_stop(&p);
#undef BIG_ARGS
}
END_TEST

/* A due entry whose `queue` is unusable goes to the dead set as an invalid
 * job with the reason (error_class, error_message, failed_at), as a worker
 * buries a payload of a bad shape; one that is not JSON as its raw bytes. */
START_TEST(poller_buries_an_unusable_queue_with_the_reason)
{
    static const char *const entries[] = {
        "{\"class\":\"OkJob\",\"args\":[],\"queue\":null,\"jid\":\"a8a8a8a8a8a8a8a8a8a8a8a8\"}",
        "{\"class\":\"OkJob\",\"args\":[],\"queue\":\"\",\"jid\":\"b8b8b8b8b8b8b8b8b8b8b8b8\"}",
        "{\"class\":\"OkJob\",\"args\":[],\"queue\":\"a b\",\"jid\":\"c8c8c8c8c8c8c8c8c8c8c8c8\"}",
        "not json",
    };
    for (size_t i = 0; i < sizeof entries / sizeof entries[0]; i++)
        freeReplyObject(
            sqt_cmd(C, "ZADD %s %d %s", i % 2 ? "retry" : "schedule", (int)i + 1, entries[i]));
    sqt_proc p;
    itest_squire(&p, R.url, "2", NULL);
    ck_assert_int_eq(sqt_wait_int(C, 4, 10, "ZCARD dead"), 4);
    itest_stop(&p);
    ck_assert_int_ge(sqt_int(C, "ZSCORE dead %s", "not json"), 1);
    redisReply *r = sqt_cmd(C, "ZRANGE dead 0 -1");
    int invalid = 0;
    for (size_t i = 0; i < r->elements; i++) {
        json_t *j = json_loads(r->element[i]->str, 0, NULL);
        if (j == NULL)
            continue;
        ck_assert_str_eq(json_string_value(json_object_get(j, "error_class")),
                         "Squire::InvalidJob");
        ck_assert_msg(strstr(json_string_value(json_object_get(j, "error_message")), "queue"), "%s",
                      r->element[i]->str);
        ck_assert(json_is_real(json_object_get(j, "failed_at")));
        ck_assert_ptr_nonnull(json_object_get(j, "queue")); /* kept as written */
        invalid++;
        json_decref(j);
    }
    freeReplyObject(r);
    ck_assert_int_eq(invalid, 3);
    ck_assert_int_eq(sqt_int(C, "ZCARD schedule") + sqt_int(C, "ZCARD retry"), 0);
}
END_TEST

/* Recovery counts interruptions of a job holding numbers jansson cannot
 * hold too (the old code could not read it, so a poison job with such a
 * number crashed process after process), and keeps their text. */
START_TEST(recovery_counts_interruptions_of_any_json_number)
{
    static const char job[] = "{\"class\":\"CrashJob\",\"args\":[18446744073709551616,1e400],"
                              "\"queue\":\"default\",\"jid\":\"c7c7c7c7c7c7c7c7c7c7c7c7\"}";
    freeReplyObject(sqt_cmd(C, "LPUSH queue:default %s", job));
    const char *cfg = itest_config(":lease_ttl: 1\n:max_interruptions: 2\n");
    const char *argv[] = {"-C", cfg, "-r", SQ_TEST_PLUGIN, "-c", "2", NULL};
    sqt_proc p;
    double until = sqt_now() + 40;
    while (sqt_int(C, "ZCARD dead") == 0 && sqt_now() < until) {
        sqt_squire_start(&p, R.url, argv, NULL);
        while (sqt_proc_wait(&p, 0.1) == -1 && sqt_int(C, "ZCARD dead") == 0 && sqt_now() < until)
            ;
    }
    ck_assert_int_eq(sqt_int(C, "ZCARD dead"), 1);
    redisReply *r = sqt_cmd(C, "ZRANGE dead 0 -1");
    const char *m = r->element[0]->str;
    ck_assert_msg(strstr(m, "\"args\":[18446744073709551616,1e400],") != NULL, "%s", m);
    ck_assert_msg(strstr(m, "\"interrupted_count\":2") != NULL, "%s", m);
    ck_assert_msg(strstr(m, "Squire::JobInterrupted") != NULL, "%s", m);
    freeReplyObject(r);
    if (sqt_proc_wait(&p, 0) == -1)
        itest_stop(&p);
}
END_TEST

/* Write n bytes of text to a fresh file; returns its path (static buffer). */
static const char *write_file(const char *name, const char *text, size_t n)
{
    static char path[300];
    char dir[256];
    sqt_tempdir(dir, "yml");
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(text, 1, n, f), n);
    fclose(f);
    return path;
}

/* YAML bombs of up to 1 MiB each fail `--check` with file:line and exit 78,
 * with the work bounded: the run gets 5 s of CPU (ulimit -t; SIGXCPU
 * otherwise), where each takes milliseconds. The old code took 30 s to
 * minutes on the first three. */
START_TEST(yaml_bombs_fail_fast_with_file_and_line)
{
    enum { MIB = 1024 * 1024 };
    char *text = malloc(MIB);
    static const struct {
        const char *name, *want;
    } cases[] = {
        {"nested.yml", "nested.yml:1: YAML nested more than 64 levels deep"},
        {"keys.yml", "keys.yml:5000: YAML document too large"},
        {"anchors.yml", "anchors.yml:1: YAML document too large"},
        {"tags.yml", "tags.yml:65: more than 64 %TAG directives"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        size_t n = 0;
        if (c == 0) { /* x: [[[...]]], depth 524,286 */
            size_t depth = (MIB - 4) / 2;
            n = (size_t)sprintf(text, "x: ");
            memset(text + n, '[', depth);
            memset(text + n + depth, ']', depth);
            n += 2 * depth;
            text[n++] = '\n';
        } else if (c == 1) { /* 85,000 keys in one mapping */
            for (int i = 0; i < 85000; i++)
                n += (size_t)sprintf(text + n, "k%07d: 1\n", i);
        } else if (c == 2) { /* 40,000 anchors, 40,000 aliases */
            n += (size_t)sprintf(text + n, "a: [");
            for (int i = 0; i < 40000; i++)
                n += (size_t)sprintf(text + n, "&a%d 1,", i);
            n += (size_t)sprintf(text + n - 1, "]\nb: [") - 1;
            for (int i = 0; i < 40000; i++)
                n += (size_t)sprintf(text + n, "*a39999,");
            n += (size_t)sprintf(text + n - 1, "]\n") - 1;
        } else { /* 40,000 %TAG directives */
            for (int i = 0; i < 40000; i++)
                n += (size_t)sprintf(text + n, "%%TAG !t%d! tag:x%d:\n", i, i);
            n += (size_t)sprintf(text + n, "---\nx: 1\n");
        }
        ck_assert_uint_le(n, MIB);
        const char *path = write_file(cases[c].name, text, n);
        char *out = NULL;
        int st = sqt_sh(R.url, &out, "ulimit -t 5; exec %s --check --allow-root -C %s 2>&1",
                        SQ_TEST_SQUIRE, path);
        ck_assert_msg(st == 78, "%s: exit %d (137 or 152: out of CPU time): %.300s", cases[c].name, st,
                      out);
        ck_assert_msg(strstr(out, cases[c].want) != NULL, "%s: %.300s", cases[c].name, out);
        free(out);
    }
    free(text);
}
END_TEST

/* How many lines of the log contain needle. */
static int count_lines(const char *log, const char *needle)
{
    int n = 0;
    for (const char *p = log; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

/* 200 TTINs in about a second at -c 50 write at most two dumps (one at
 * once, one coalescing the rest five seconds later), not 200 x 51 lines,
 * and the second says how many signals it stands for. */
START_TEST(ttin_flood_is_coalesced)
{
    sqt_proc p;
    const char *argv[] = {"-r", SQ_TEST_PLUGIN, "-c", "50", "-t", "2", NULL};
    sqt_squire_start(&p, R.url, argv, NULL);
    ck_assert_msg(sqt_log_wait(&p, "starting", 10), "squire did not start");
    for (int i = 0; i < 200; i++) {
        kill(p.pid, SIGTTIN);
        sqt_sleep(0.005);
    }
    ck_assert(sqt_log_wait(&p, "coalesced", 10));
    sqt_sleep(1);
    char *log = sqt_log_read(&p);
    int dumps = count_lines(log, "TTIN: 50 workers");
    int lines = count_lines(log, "TTIN: ");
    ck_assert_msg(dumps == 2, "%d dumps", dumps);
    ck_assert_int_eq(lines, 2 * 51);
    ck_assert_int_eq(count_lines(log, "coalesced"), 1);
    free(log);
    /* a TTIN after a quiet spell is dumped at once, not 5 s later */
    sqt_sleep(4.5);
    kill(p.pid, SIGTTIN);
    double sent = sqt_now();
    for (dumps = 2; dumps < 3 && sqt_now() < sent + 10; sqt_sleep(0.05)) {
        log = sqt_log_read(&p);
        dumps = count_lines(log, "TTIN: 50 workers");
        free(log);
    }
    ck_assert_int_eq(dumps, 3);
    ck_assert_msg(sqt_now() - sent < 4, "the dump came %.1f s after the TTIN", sqt_now() - sent);
    itest_stop(&p);
}
END_TEST

/* Job text reaches the log escaped, whole: C0 and C1 controls, bytes that
 * are not UTF-8, and NUL characters inside `class` and `jid` (which JSON
 * allows as \u0000) are shown as escapes, never copied raw or cut short. */
START_TEST(log_escapes_c1_invalid_utf8_and_nul)
{
    static const char *const payloads[] = {
        "{\"class\":\"Ok\\u0000Evil\",\"args\":[],\"jid\":\"d4d4d4d4d4d4d4d4d4d4d4d4\"}",
        "{\"class\":\"NoSuch\\u0085Job\\u009b31m\",\"args\":[],\"jid\":"
        "\"e5e5e5e5e5e5e5e5e5e5e5e5\"}",
        "{\"class\":\"Bad\xff\xfe\xc2Job\",\"args\":[]}",
        "{\"class\":\"OkJob\",\"args\":[],\"jid\":\"f6\\u0000f6\\u2028x\\u202e\"}",
    };
    for (size_t i = 0; i < sizeof payloads / sizeof payloads[0]; i++) {
        redisReply *r = sqt_cmd(C, "LPUSH queue:default %s", payloads[i]);
        freeReplyObject(r);
    }
    sqt_proc p;
    itest_squire(&p, R.url, "2", NULL);
    ck_assert_int_eq(sqt_wait_int(C, 2, 10, "ZCARD dead"), 2);
    ck_assert_int_eq(sqt_wait_int(C, 1, 10, "ZCARD retry"), 1);
    ck_assert(sqt_log_wait(&p, "jid=f6\\x00f6\\u2028x\\u202e ", 10));
    itest_stop(&p);
    char *log = sqt_log_read(&p);
    static const char *const want[] = {
        "class=Ok\\x00Evil jid=d4d4d4d4d4d4d4d4d4d4d4d4 WARN: invalid job",
        "class=NoSuch\\u0085Job\\u009b31m jid=e5e5e5e5e5e5e5e5e5e5e5e5 WARN: fail",
        "no handler registered for class NoSuch\\u0085Job\\u009b31m",
        "Bad\\xff\\xfe\\xc2Job",
        "class=OkJob jid=f6\\x00f6\\u2028x\\u202e INFO",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        ck_assert_msg(strstr(log, want[i]) != NULL, "no \"%s\" in the log:\n%s", want[i], log);
    for (const unsigned char *b = (const unsigned char *)log; *b != '\0'; b++)
        ck_assert_msg(*b == '\n' || (*b >= 0x20 && *b < 0x7f),
                      "byte 0x%02x at offset %ld of the log", *b, (long)(b - (unsigned char *)log));
    free(log);
}
END_TEST

/* An error reply on a stat key must not re-add the counts at every flush. */
START_TEST(stats_are_not_recounted_after_an_error_reply)
{
    redisReply *r = sqt_cmd(C, "SET stat:processed oops");
    freeReplyObject(r);
    sqt_proc p;
    itest_squire(&p, R.url, "2", NULL);
    char jid[25];
    sq_push_opts o = {.retry = SQ_RETRY_NEVER};
    for (int i = 0; i < 3; i++)
        itest_push("FailJob", "[\"E\", \"m\"]", &o, jid);
    ck_assert_int_eq(sqt_wait_int(C, 3, 10, "LLEN test:log"), 3);
    sqt_sleep(3); /* periodic flushes, one per beat */
    itest_stop(&p); /* and the one at exit */
    ck_assert_int_eq(sqt_int(C, "GET stat:failed"), 3);
}
END_TEST

/* log_level: warn drops every INFO line (the start and done line of each
 * job, the banner) and keeps the warnings: a failure is still logged. */
START_TEST(log_level_warn_keeps_failures_only)
{
    const char *cfg = itest_config(":poll_interval_average: 0.2\n:log_level: warn\n");
    const char *argv[] = {"-C", cfg, "-r", SQ_TEST_PLUGIN, "-c", "2", "-t", "2", NULL};
    sqt_proc p;
    sqt_squire_start(&p, R.url, argv, NULL);
    char ok[25], bad[25];
    itest_push("OkJob", "[]", NULL, ok);
    itest_push("FailJob", "[\"E\", \"m\"]", NULL, bad);
    ck_assert_int_eq(sqt_wait_int(C, 1, 10, "SISMEMBER test:done %s", ok), 1);
    ck_assert_int_eq(sqt_wait_int(C, 1, 10, "ZCARD retry"), 1);
    ck_assert(sqt_log_wait(&p, "WARN: fail:", 5));
    itest_stop(&p);
    char *log = sqt_log_read(&p);
    ck_assert_msg(strstr(log, " INFO: ") == NULL, "an INFO line at log_level warn:\n%s", log);
    free(log);
}
END_TEST

/* At exit, a failure that cannot be recorded (wrong-typed retry key) is
 * pushed back to its queue rather than lost. */
START_TEST(unrecordable_failure_is_pushed_back_at_exit)
{
    redisReply *r = sqt_cmd(C, "SET retry oops");
    freeReplyObject(r);
    freeReplyObject(sqt_cmd(C, "SET dead oops")); /* else it goes there instead */
    sqt_proc p;
    itest_squire(&p, R.url, "1", NULL);
    char jid[25];
    itest_push("FailJob", "[\"E\", \"m\"]", NULL, jid);
    ck_assert(sqt_log_wait(&p, "failed, will retry", 10));
    kill(p.pid, SIGTERM);
    ck_assert_int_eq(sqt_proc_wait(&p, 20), 0);
    ck_assert(sqt_log_wait(&p, "pushed back to its queue instead", 1));
    ck_assert_int_eq(sqt_int(C, "LLEN queue:default"), 1);
}
END_TEST

/* A frozen Redis cannot hold the exit past Heroku's 30 s. */
START_TEST(shutdown_is_bounded_when_redis_hangs)
{
    sqt_proc p;
    itest_squire(&p, R.url, "1", NULL);
    for (int i = 0; i < 3; i++) {
        char jid[25];
        itest_push("SleepJob", "[30]", NULL, jid);
    }
    ck_assert_int_eq(sqt_wait_int(C, 3, 10, "LLEN test:log"), 3);
    kill(R.pid, SIGSTOP);
    double t0 = sqt_now();
    kill(p.pid, SIGTERM);
    int st = sqt_proc_wait(&p, 40);
    double took = sqt_now() - t0;
    kill(R.pid, SIGCONT);
    ck_assert_int_eq(st, 0);
    ck_assert_msg(took < 25, "shutdown took %.1f s", took);
    /* reliable fetch: the jobs are still in Redis (working lists) */
    redisReply *r = sqt_cmd(C, "KEYS squire:w:*");
    ck_assert_int_eq(r->elements, 3);
    freeReplyObject(r);
}
END_TEST

/* TSTP while waiting for Redis: once Redis is up, nothing is fetched. */
START_TEST(tstp_before_redis_is_up_keeps_the_process_quiet)
{
    sqt_proc p;
    int port = sqt_free_port();
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/0", port);
    const char *argv[] = {"-r", SQ_TEST_PLUGIN, NULL};
    sqt_squire_start(&p, url, argv, NULL);
    ck_assert(sqt_log_wait(&p, "waiting for Redis", 5));
    kill(p.pid, SIGTSTP);
    ck_assert(sqt_log_wait(&p, "TSTP received", 5));
    itest_redis_on_port(port);
    char jid[25];
    itest_push("OkJob", "[]", NULL, jid);
    sqt_sleep(3);
    ck_assert_int_eq(sqt_int(C, "LLEN queue:default"), 1);
    itest_stop(&p);
}
END_TEST

/* Idle workers cover every queue: a job pushed to any of them starts at
 * once, not after a blocking wait on another queue times out (2 s). */
START_TEST(idle_pickup_is_immediate_on_every_queue)
{
    sqt_proc p;
    const char *more[] = {"-q", "alpha", "-q", "beta", "-q", "gamma", NULL};
    itest_squire(&p, R.url, "2", more);
    sqt_sleep(2.5); /* every worker is now blocked waiting */
    static const char *const queues[] = {"gamma", "beta", "alpha", "gamma", "alpha"};
    for (size_t i = 0; i < sizeof queues / sizeof queues[0]; i++) {
        char jid[25];
        sq_push_opts o = {.queue = queues[i]};
        itest_push("OkJob", "[]", &o, jid);
        double t0 = sqt_now();
        ck_assert_int_eq(sqt_wait_int(C, 1, 5, "SISMEMBER test:done %s", jid), 1);
        double took = sqt_now() - t0;
        ck_assert_msg(took < 0.5, "job on %s waited %.2f s", queues[i], took);
        sqt_sleep(0.3);
    }
    itest_stop(&p);
}
END_TEST

/* Redis settings under which Redis itself can lose jobs are called out. */
START_TEST(warns_about_eviction_and_missing_aof)
{
    redisFree(C);
    sqt_redis_stop(&R);
    sqt_redis_start(&R, "--maxmemory 100mb --maxmemory-policy allkeys-lru");
    C = sqt_redis_connect(&R);
    sqt_proc p;
    itest_squire(&p, R.url, "2", NULL);
    ck_assert(sqt_log_wait(&p, "maxmemory-policy is allkeys-lru", 5));
    ck_assert(sqt_log_wait(&p, "without AOF", 5));
    itest_stop(&p);

    redisFree(C);
    sqt_redis_stop(&R);
    sqt_redis_start(&R, "--appendonly yes");
    C = sqt_redis_connect(&R);
    itest_squire(&p, R.url, "2", NULL);
    sqt_sleep(0.5);
    itest_stop(&p);
    char *log = sqt_log_read(&p);
    ck_assert_ptr_null(strstr(log, "without AOF"));
    ck_assert_ptr_null(strstr(log, "maxmemory-policy"));
    free(log);
}
END_TEST

static Suite *daemon_suite(void)
{
    Suite *s = suite_create("daemon");
    TCase *tc = tcase_create("end_to_end");
    tcase_add_checked_fixture(tc, itest_setup, itest_teardown);
    tcase_set_timeout(tc, 90);
    tcase_add_test(tc, ok_job_runs_with_its_args);
    tcase_add_test(tc, log_level_warn_keeps_failures_only);
    tcase_add_test(tc, failure_goes_to_retry_with_sidekiq_fields);
    tcase_add_test(tc, retry_zero_goes_to_dead_set);
    tcase_add_test(tc, kill_and_discard_dispositions);
    tcase_add_test(tc, unknown_class_is_an_ordinary_failure);
    tcase_add_test(tc, bad_payloads_go_to_the_dead_set);
    tcase_add_test(tc, scheduled_job_runs_when_due);
    tcase_add_test(tc, scheduled_jobs_run_on_time_whatever_the_poll_interval);
    tcase_add_test(tc, retry_in_reruns_until_success);
    tcase_add_test(tc, handler_can_push_jobs);
    tcase_add_test(tc, term_pushes_running_jobs_back_byte_for_byte);
    tcase_add_test(tc, second_term_skips_the_wait);
    tcase_add_test(tc, job_that_stops_politely_is_requeued_not_retried);
    tcase_add_test(tc, tstp_quiets_and_ttin_reports);
    tcase_add_test(tc, strict_queue_order);
    tcase_add_test(tc, wrong_typed_queue_does_not_stop_the_others);
    tcase_add_test(tc, survives_a_redis_restart);
    tcase_add_test(tc, waits_for_redis_at_start);
    tcase_add_test(tc, passwords_work_and_are_never_logged);
    tcase_add_test(tc, bad_config_and_flags_exit_with_their_codes);
    tcase_add_test(tc, squirectl_push_now_later_and_bulk);
    tcase_add_test(tc, program_with_its_own_main_runs_its_handlers);
    tcase_add_test(tc, poller_never_drops_or_starves_on_wrong_types);
    tcase_add_test(tc, stats_are_not_recounted_after_an_error_reply);
    tcase_add_test(tc, unrecordable_failure_is_pushed_back_at_exit);
    tcase_add_test(tc, shutdown_is_bounded_when_redis_hangs);
    tcase_add_test(tc, tstp_before_redis_is_up_keeps_the_process_quiet);
    tcase_add_test(tc, idle_pickup_is_immediate_on_every_queue);
    tcase_add_test(tc, warns_about_eviction_and_missing_aof);
    suite_add_tcase(s, tc);
    /* issue 12's bad inputs, a case of their own (CK_RUN_CASE=bad_inputs) */
    tc = tcase_create("bad_inputs");
    tcase_add_checked_fixture(tc, itest_setup, itest_teardown);
    tcase_set_timeout(tc, 90);
    tcase_add_test(tc, poller_moves_any_json_number_and_defaults_the_queue);
    tcase_add_test(tc, poller_buries_an_unusable_queue_with_the_reason);
    tcase_add_test(tc, recovery_counts_interruptions_of_any_json_number);
    tcase_add_test(tc, yaml_bombs_fail_fast_with_file_and_line);
    tcase_add_test(tc, ttin_flood_is_coalesced);
    tcase_add_test(tc, log_escapes_c1_invalid_utf8_and_nul);
    suite_add_tcase(s, tc);
    /* workers that can fetch nothing (CK_RUN_CASE=fetch_health) */
    tc = tcase_create("fetch_health");
    tcase_add_checked_fixture(tc, itest_setup, itest_teardown);
    tcase_set_timeout(tc, 90);
    tcase_add_loop_test(tc, every_queue_wrong_typed_does_not_look_healthy, 0, 2);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return sqt_run(daemon_suite());
}
