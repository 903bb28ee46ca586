/*
 * test_badinput.c: hostile input found by fuzzing the daemon (payloads over
 * a limit, odd but valid settings) against a real redis-server: every job
 * ends somewhere with the reason, and no script fails halfway.
 */
#include <unistd.h>

#include "itest.h"

/* A valid JSON object refused for a limit (size, nesting, value count; never
 * parsed) is a failure like a bad shape: its dead entry keeps every byte and
 * says why in error_class and error_message (it used to be buried bare, so the
 * Web UI showed a dead job with no error). */
START_TEST(over_limit_objects_go_dead_with_the_reason)
{
    static const char *const jids[] = {"d1d1d1d1d1d1d1d1d1d1d1d1", "e1e1e1e1e1e1e1e1e1e1e1e1",
                                       "f1f1f1f1f1f1f1f1f1f1f1f1"};
    static const char *const why[] = {"nesting", "values", "bytes"};
    size_t cap = 1200000, n;
    char *s = malloc(cap);
    /* 65 levels: the object and 64 brackets */
    n = (size_t)sprintf(s, "{\"class\":\"OkJob\",\"jid\":\"%s\",\"args\":", jids[0]);
    memset(s + n, '[', 64);
    memset(s + n + 64, ']', 64);
    n += 128;
    s[n++] = '}';
    freeReplyObject(sqt_cmd(C, "LPUSH queue:default %b", s, n));
    /* 100,001 values */
    n = (size_t)sprintf(s, "{\"class\":\"OkJob\",\"jid\":\"%s\",\"args\":[0", jids[1]);
    for (int i = 0; i < 100000; i++)
        s[n++] = ',', s[n++] = '0';
    n += (size_t)sprintf(s + n, "],\"n\":123456789012345678901234567890}");
    freeReplyObject(sqt_cmd(C, "LPUSH queue:default %b", s, n));
    /* over 1 MiB */
    n = (size_t)sprintf(s, "{\"class\":\"OkJob\",\"jid\":\"%s\",\"args\":[\"", jids[2]);
    memset(s + n, 'x', 1100000);
    n += 1100000;
    n += (size_t)sprintf(s + n, "\"]}");
    freeReplyObject(sqt_cmd(C, "LPUSH queue:default %b", s, n));
    free(s);

    sqt_proc p;
    itest_squire(&p, R.url, "2", NULL);
    ck_assert_int_eq(sqt_wait_int(C, 3, 15, "ZCARD dead"), 3);
    itest_stop(&p);
    redisReply *r = sqt_cmd(C, "ZRANGE dead 0 -1");
    int seen = 0;
    for (size_t i = 0; i < r->elements; i++) {
        json_error_t err;
        json_t *j =
            json_loadb(r->element[i]->str, r->element[i]->len, JSON_DECODE_INT_AS_REAL, &err);
        ck_assert_msg(j != NULL, "%s", err.text);
        const char *jid = json_string_value(json_object_get(j, "jid"));
        const char *ec = json_string_value(json_object_get(j, "error_class"));
        const char *em = json_string_value(json_object_get(j, "error_message"));
        ck_assert_msg(ec != NULL && em != NULL, "no error fields: %.200s", r->element[i]->str);
        ck_assert_str_eq(ec, "Squire::InvalidJob");
        ck_assert(json_is_real(json_object_get(j, "failed_at")));
        for (int k = 0; k < 3; k++)
            if (strcmp(jid, jids[k]) == 0) {
                ck_assert_msg(strstr(em, why[k]) != NULL, "%s: %s", jid, em);
                seen |= 1 << k;
            }
        json_decref(j);
    }
    /* the number's text is kept byte for byte */
    ck_assert_int_eq(sqt_int(C, "EVAL %s 0",
                             "for _, m in ipairs(redis.call('ZRANGE', 'dead', 0, -1)) do "
                             "if string.find(m, '\"n\":123456789012345678901234567890', 1, true) "
                             "then return 1 end end return 0"),
                     1);
    freeReplyObject(r);
    ck_assert_int_eq(seen, 7);
}
END_TEST

/* The poller reads a due member through the bounded reader, as a worker
 * reads a fetched job: one over max_payload_bytes is never parsed, and goes
 * to the dead set with the worker's reason instead of being parsed whole,
 * rewritten (enqueued_at) and pushed to its queue. A deep one likewise. */
START_TEST(poller_buries_over_limit_members_unparsed)
{
    size_t n = 3000;
    char *big = malloc(n + 1);
    int h = sprintf(big, "{\"class\":\"OkJob\",\"jid\":\"b1\",\"args\":[\"");
    memset(big + h, 'x', n - (size_t)h - 3);
    memcpy(big + n - 3, "\"]}", 3);
    big[n] = '\0';
    freeReplyObject(sqt_cmd(C, "ZADD schedule 1 %b", big, n));
    char deep[400];
    int d = sprintf(deep, "{\"class\":\"OkJob\",\"jid\":\"b2\",\"args\":");
    memset(deep + d, '[', 70);
    memset(deep + d + 70, ']', 70);
    strcpy(deep + d + 140, "}");
    freeReplyObject(sqt_cmd(C, "ZADD retry 1 %s", deep));
    const char *argv[] = {
        "-C", itest_config(":poll_interval_average: 0.2\n:max_payload_bytes: 2048\n"),
        "-r", SQ_TEST_PLUGIN,
        "-c", "2",
        NULL};
    sqt_proc p;
    sqt_squire_start(&p, R.url, argv, NULL);
    ck_assert_msg(sqt_log_wait(&p, "starting", 10), "squire did not start");
    ck_assert_int_eq(sqt_wait_int(C, 2, 10, "ZCARD dead"), 2);
    itest_stop(&p);
    ck_assert_int_eq(sqt_int(C, "ZCARD schedule") + sqt_int(C, "ZCARD retry"), 0);
    ck_assert_int_eq(sqt_int(C, "SISMEMBER queues default"), 0); /* never queued */
    redisReply *r = sqt_cmd(C, "ZRANGE dead 0 -1");
    for (size_t i = 0; i < r->elements; i++) {
        json_t *j = json_loadb(r->element[i]->str, r->element[i]->len, 0, NULL);
        ck_assert_ptr_nonnull(j);
        const char *jid = json_string_value(json_object_get(j, "jid"));
        const char *em = json_string_value(json_object_get(j, "error_message"));
        ck_assert_str_eq(json_string_value(json_object_get(j, "error_class")),
                         "Squire::InvalidJob");
        ck_assert_ptr_null(json_object_get(j, "enqueued_at")); /* not rewritten as a move */
        if (strcmp(jid, "b1") == 0)
            ck_assert_str_eq(em, "payload is 3000 bytes, over the 2048-byte limit");
        else
            ck_assert_str_eq(em, "JSON nesting deeper than 64");
        json_decref(j);
    }
    freeReplyObject(r);
    free(big);
}
END_TEST

/* dead_max_jobs is any integer from 1 to LONG_MAX. The dead-set scripts
 * used to negate it as a Lua number, which Redis reads back as "-1e+17":
 * "ERR value is not an integer" after the member had moved, so the poller
 * gave up its pass and a worker logged a failed write and "may run twice".
 * Both paths (the poller's bury, reliable fetch's dead write) and the trim
 * itself are checked. */
START_TEST(any_dead_max_jobs_buries_and_trims)
{
    static const char *const maxes[] = {"100000000000000000", "9223372036854775807", "2"};
    for (int k = 0; k < 3; k++) {
        freeReplyObject(sqt_cmd(C, "DEL dead"));
        freeReplyObject(sqt_cmd(C, "ZADD schedule 1 %s", "not json"));
        freeReplyObject(sqt_cmd(C, "LPUSH queue:default %s",
                                "{\"class\":\"KillJob\",\"args\":[],\"jid\":\"k2k2\"}"));
        char yaml[200];
        snprintf(yaml, sizeof yaml, ":poll_interval_average: 0.2\n:dead_max_jobs: %s\n", maxes[k]);
        const char *argv[] = {"-C", itest_config(yaml), "-r", SQ_TEST_PLUGIN, "-c", "2", NULL};
        sqt_proc p;
        sqt_squire_start(&p, R.url, argv, NULL);
        ck_assert_msg(sqt_log_wait(&p, "starting", 10), "squire did not start");
        ck_assert_int_eq(sqt_wait_int(C, 0, 10, "ZCARD schedule"), 0);
        ck_assert_int_eq(sqt_wait_int(C, 0, 10, "LLEN queue:default"), 0);
        usleep(300000);
        itest_stop(&p);
        char *log = sqt_log_read(&p);
        ck_assert_msg(strstr(log, "not an integer") == NULL, "%s", log);
        ck_assert_msg(strstr(log, "may run twice") == NULL, "%s", log);
        free(log);
        ck_assert_int_eq(sqt_int(C, "ZCARD dead"), (k < 2 ? 2 : 1)); /* Sidekiq keeps max - 1 */
    }
}
END_TEST

/* A hash at `retry` used to hold each failed job in its worker, retrying
 * the write forever: with as many failures as workers, nothing else ran.
 * In both fetch modes the failed jobs now go to the dead set with their
 * error fields, and the other jobs run. */
START_TEST(wrong_typed_retry_does_not_stall_the_workers)
{
    static const char *const modes[] = {"reliable", "basic"};
    for (int k = 0; k < 2; k++) {
        freeReplyObject(sqt_cmd(C, "FLUSHALL"));
        freeReplyObject(sqt_cmd(C, "HSET retry a b"));
        for (int i = 0; i < 4; i++)
            freeReplyObject(sqt_cmd(C,
                                    "LPUSH queue:default {\"class\":\"FailJob\",\"args\":"
                                    "[\"E\",\"m\"],\"jid\":\"f%d\"}",
                                    i));
        freeReplyObject(sqt_cmd(C, "LPUSH queue:default %s",
                                "{\"class\":\"OkJob\",\"args\":[],\"jid\":\"o1\"}"));
        const char *more[] = {"--fetch", modes[k], NULL}; /* -c 3: 4 failures fill it */
        sqt_proc p;
        itest_squire(&p, R.url, "2", more);
        ck_assert_int_eq(sqt_wait_int(C, 1, 10, "SISMEMBER test:done o1"), 1);
        ck_assert_int_eq(sqt_wait_int(C, 4, 10, "ZCARD dead"), 4);
        itest_stop(&p);
        ck_assert(sqt_log_wait(&p, "retry has the wrong type", 1));
        redisReply *r = sqt_cmd(C, "ZRANGE dead 0 -1");
        for (size_t i = 0; i < r->elements; i++) {
            json_t *j = json_loads(r->element[i]->str, 0, NULL);
            ck_assert_str_eq(json_string_value(json_object_get(j, "error_class")), "E");
            ck_assert_str_eq(json_string_value(json_object_get(j, "error_message")), "m");
            json_decref(j);
        }
        freeReplyObject(r);
        ck_assert_int_eq(sqt_int(C, "HLEN retry"), 1); /* left alone */
        ck_assert_int_eq(sqt_int(C, "LLEN queue:default"), 0);
    }
}
END_TEST

/* A database.url that libpq cannot parse is judged at start-up, after the
 * file was read; the error used to say "sidekiq.yml: database: url:" with
 * no line. It names file, line and key like every other config error. */
START_TEST(bad_database_url_names_file_line_and_key)
{
    const char *cfg = itest_config("concurrency: 2\nproduction:\n  database:\n"
                                   "    url: not-a-url\n");
    char *out = NULL;
    int st = sqt_sh(R.url, &out, "%s -C %s -e production --allow-root 2>&1", SQ_TEST_SQUIRE, cfg);
    ck_assert_msg(st == 78, "exit %d:\n%s", st, out);
    ck_assert_msg(strstr(out, "sidekiq.yml:4: database.url: not a PostgreSQL URL") != NULL, "%s",
                  out);
    free(out);
}
END_TEST

static Suite *badinput_suite(void)
{
    Suite *s = suite_create("badinput");
    TCase *tc = tcase_create("end_to_end");
    tcase_add_checked_fixture(tc, itest_setup, itest_teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, over_limit_objects_go_dead_with_the_reason);
    tcase_add_test(tc, any_dead_max_jobs_buries_and_trims);
    tcase_add_test(tc, poller_buries_over_limit_members_unparsed);
    tcase_add_test(tc, wrong_typed_retry_does_not_stall_the_workers);
    tcase_add_test(tc, bad_database_url_names_file_line_and_key);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return sqt_run(badinput_suite());
}
