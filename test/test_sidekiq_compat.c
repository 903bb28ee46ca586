/*
 * test_sidekiq_compat.c: squire against the real Sidekiq Ruby client and API,
 * Debian's ruby-sidekiq 6.4.1 and 7.3.10 from ../shared/third_party (one
 * test case each, chosen by RUBYLIB), sharing one real redis-server: jobs that
 * Ruby pushes run in C handlers, and what squire writes (retries, dead jobs,
 * pushes from squirectl) reads back through Sidekiq's own API.
 */
#include <math.h>
#include <time.h>

#include "itest.h"

/* Run the Ruby driver and parse its JSON output (new reference). */
static json_t *ruby(const char *args)
{
    char *out = NULL;
    int st = sqt_ruby(R.url, &out, "sidekiq.rb", args);
    ck_assert_msg(st == 0, "ruby sidekiq.rb %s exited %d: %s", args, st, out);
    json_error_t e;
    json_t *j = json_loads(out, JSON_DECODE_ANY, &e);
    ck_assert_msg(j != NULL, "ruby output is not JSON: %s", out);
    free(out);
    return j;
}

static const char *jid_of(json_t *j)
{
    return json_string_value(json_object_get(j, "jid"));
}

START_TEST(ruby_client_jobs_run_in_c_handlers)
{
    sqt_proc p;
    itest_squire(&p, R.url, "2", NULL);
    json_t *a = ruby("push OkJob '[1,\"two\"]'");
    json_t *b = ruby("perform_async");
    json_t *c = ruby("perform_in 1");
    json_t *d = ruby("push_bulk 5");
    ck_assert_int_eq(sqt_wait_int(C, 1, 10, "SISMEMBER test:done %s", jid_of(a)), 1);
    ck_assert_int_eq(sqt_wait_int(C, 1, 10, "SISMEMBER test:done %s", jid_of(b)), 1);
    ck_assert_int_eq(sqt_wait_int(C, 1, 10, "SISMEMBER test:done %s", jid_of(c)), 1);
    json_t *jids = json_object_get(d, "jids");
    ck_assert_int_eq(json_array_size(jids), 5);
    for (size_t i = 0; i < 5; i++)
        ck_assert_int_eq(sqt_wait_int(C, 1, 10, "SISMEMBER test:done %s",
                                      json_string_value(json_array_get(jids, i))), 1);
    /* the handler saw perform_async's args exactly */
    redisReply *r = sqt_cmd(C, "LRANGE test:log 0 -1");
    bool seen = false;
    for (size_t i = 0; i < r->elements; i++)
        if (strstr(r->element[i]->str, jid_of(b))) {
            json_t *rec = json_loads(r->element[i]->str, 0, NULL);
            json_t *want = json_loads("[1,\"two\",{\"three\":[3.5,null]}]", 0, NULL);
            ck_assert(json_equal(json_object_get(rec, "args"), want));
            ck_assert_str_eq(json_string_value(json_object_get(rec, "class")), "HardJob");
            json_decref(want);
            json_decref(rec);
            seen = true;
        }
    freeReplyObject(r);
    ck_assert(seen);
    json_decref(a), json_decref(b), json_decref(c), json_decref(d);
    itest_stop(&p);
    json_t *s = ruby("stats");
    ck_assert_int_eq(json_integer_value(json_object_get(s, "processed")), 8);
    ck_assert_int_eq(json_integer_value(json_object_get(s, "failed")), 0);
    json_decref(s);
}
END_TEST

/* failed_at in the unit of the Sidekiq that pushed the job (8.x: integer
 * ms; issue 16), read back by its API as a time within the last minute. */
static void assert_failed_at(json_t *e)
{
    bool v8 = strncmp(sqt_sidekiq_expected(), "8.", 2) == 0;
    ck_assert_str_eq(json_string_value(json_object_get(e, "failed_at_class")),
                     v8 ? "Integer" : "Float");
    double at = json_real_value(json_object_get(e, "failed_at_epoch"));
    ck_assert_msg(fabs(at - (double)time(NULL)) < 60, "failed_at reads as %f", at);
}

START_TEST(failed_job_reads_back_through_sidekiq_retry_set)
{
    sqt_proc p;
    itest_squire(&p, R.url, "2", NULL);
    json_t *a = ruby("fail");
    ck_assert_int_eq(sqt_wait_int(C, 1, 10, "ZCARD retry"), 1);
    json_t *set = ruby("retries");
    ck_assert_int_eq(json_array_size(set), 1);
    json_t *e = json_array_get(set, 0);
    ck_assert_str_eq(jid_of(e), jid_of(a));
    ck_assert_str_eq(json_string_value(json_object_get(e, "klass")), "FailJob");
    ck_assert_str_eq(json_string_value(json_object_get(e, "error_class")), "RuntimeError");
    ck_assert_str_eq(json_string_value(json_object_get(e, "error_message")), "it broke");
    ck_assert_int_eq(json_integer_value(json_object_get(e, "retry_count")), 0);
    assert_failed_at(e);
    ck_assert_str_eq(json_string_value(json_object_get(e, "queue")), "default");
    /* backtrace: true -> Sidekiq decodes our base64(zlib(JSON)) into lines */
    json_t *bt = json_object_get(e, "error_backtrace");
    ck_assert(json_is_array(bt));
    ck_assert_int_gt(json_array_size(bt), 0);
    ck_assert(json_is_string(json_array_get(bt, 0)));

    /* the Web UI's Retry: retry_count goes to -1 and the job is re-queued;
     * squire runs it, fails it again, and it comes back with retry_count 0
     * and retried_at set */
    json_t *rr = ruby("retry_all");
    ck_assert_int_eq(json_integer_value(json_object_get(rr, "retried")), 1);
    ck_assert_int_eq(sqt_wait_int(C, 2, 10, "HGET test:runs %s", jid_of(a)), 2);
    ck_assert_int_eq(sqt_wait_int(C, 1, 10, "ZCARD retry"), 1);
    json_t *again = ruby("retries");
    json_t *e2 = json_array_get(again, 0);
    ck_assert_int_eq(json_integer_value(json_object_get(e2, "retry_count")), 0);
    ck_assert(json_is_number(json_object_get(e2, "retried_at")));
    json_decref(again);
    json_decref(rr);
    json_decref(set);
    json_decref(a);
    itest_stop(&p);
}
END_TEST

START_TEST(exhausted_job_reads_back_through_sidekiq_dead_set)
{
    sqt_proc p;
    itest_squire(&p, R.url, "2", NULL);
    /* a Ruby class with sidekiq_options retry: 0 */
    json_t *a = ruby("dead_job");
    ck_assert_int_eq(sqt_wait_int(C, 1, 10, "ZCARD dead"), 1);
    json_t *dead = ruby("dead");
    ck_assert_int_eq(json_array_size(dead), 1);
    json_t *e = json_array_get(dead, 0);
    ck_assert_str_eq(jid_of(e), jid_of(a));
    ck_assert_str_eq(json_string_value(json_object_get(e, "klass")), "DeadJob");
    ck_assert_str_eq(json_string_value(json_object_get(e, "error_class")), "Timeout::Error");
    ck_assert_str_eq(json_string_value(json_object_get(e, "error_message")), "slow");
    ck_assert_int_eq(json_integer_value(json_object_get(e, "retry_count")), 0);
    assert_failed_at(e);
    ck_assert_int_eq(sqt_int(C, "ZCARD retry"), 0);
    json_decref(dead);
    json_decref(a);

    /* a retry-set entry whose retries ran out: the poller brings it back,
     * it fails again, and dies */
    redisReply *r = sqt_cmd(C, "ZADD retry 1 %s", "{\"class\":\"FailJob\",\"args\":[\"E\",\"m\"],"
                            "\"retry\":2,\"retry_count\":1,\"queue\":\"default\","
                            "\"jid\":\"dddddddddddddddddddddddd\",\"failed_at\":1700000000.5}");
    freeReplyObject(r);
    ck_assert_int_eq(sqt_wait_int(C, 2, 10, "ZCARD dead"), 2);
    dead = ruby("dead");
    bool found = false;
    for (size_t i = 0; i < json_array_size(dead); i++) {
        json_t *d = json_array_get(dead, i);
        if (strcmp(jid_of(d), "dddddddddddddddddddddddd") == 0) {
            ck_assert_int_eq(json_integer_value(json_object_get(d, "retry_count")), 2);
            ck_assert(json_is_number(json_object_get(d, "retried_at")));
            found = true;
        }
    }
    ck_assert(found);
    json_decref(dead);
    itest_stop(&p);
}
END_TEST

START_TEST(squirectl_pushes_are_read_by_sidekiq_api)
{
    char *out = NULL;
    ck_assert_int_eq(sqt_sh(R.url, &out, "%s push HardJob '[\"bob\", 3]' -q critical",
                            SQ_TEST_SQUIRECTL), 0);
    out[24] = '\0';
    json_t *q = ruby("queue critical");
    ck_assert_int_eq(json_array_size(q), 1);
    json_t *j = json_array_get(q, 0);
    ck_assert_str_eq(jid_of(j), out);
    ck_assert_str_eq(json_string_value(json_object_get(j, "klass")), "HardJob");
    ck_assert_str_eq(json_string_value(json_object_get(j, "queue")), "critical");
    ck_assert_str_eq(json_string_value(json_object_get(j, "enqueued_at_class")), "Float");
    ck_assert(json_is_true(json_object_get(j, "retry")));
    json_t *want = json_loads("[\"bob\", 3]", 0, NULL);
    ck_assert(json_equal(json_object_get(j, "args"), want));
    json_decref(want);
    double lat = json_number_value(json_object_get(j, "latency"));
    ck_assert(lat >= 0 && lat < 60);
    json_decref(q);
    free(out);

    ck_assert_int_eq(sqt_sh(R.url, &out, "%s push HardJob '[1]' --in 3600", SQ_TEST_SQUIRECTL), 0);
    out[24] = '\0';
    json_t *s = ruby("scheduled");
    ck_assert_int_eq(json_array_size(s), 1);
    ck_assert_str_eq(jid_of(json_array_get(s, 0)), out);
    double at = json_number_value(json_object_get(json_array_get(s, 0), "at"));
    ck_assert(at > 0);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(s, 0), "enqueued_at_class")),
                     "NilClass");
    json_decref(s);
    free(out);
}
END_TEST

START_TEST(activejob_payloads_dispatch_on_the_wrapped_class)
{
    sqt_proc p;
    itest_squire(&p, R.url, "2", NULL);
    json_t *a = ruby("activejob");
    ck_assert_int_eq(sqt_wait_int(C, 1, 10, "SISMEMBER test:done %s", jid_of(a)), 1);
    redisReply *r = sqt_cmd(C, "LINDEX test:log 0");
    json_t *rec = json_loads(r->str, 0, NULL);
    freeReplyObject(r);
    ck_assert_str_eq(json_string_value(json_object_get(rec, "class")), "MyActiveJob");
    json_t *args = json_object_get(rec, "args");
    ck_assert_int_eq(json_array_size(args), 2);
    ck_assert_int_eq(json_integer_value(json_array_get(args, 0)), 42);
    json_decref(rec);
    json_decref(a);
    itest_stop(&p);
}
END_TEST

/* Ruby writes integers beyond 64 bits as they are; a job carrying them that
 * Sidekiq's client scheduled is moved by squire's poller (from `schedule`,
 * then from `retry` after a failure) and every run sees the same text. */
START_TEST(ruby_bignums_are_scheduled_and_retried_byte_for_byte)
{
    sqt_proc p;
    json_t *a =
        ruby("push_at FlakyJob '[1,18446744073709551616,-123456789012345678901234567890]' 1");
    ck_assert_int_eq(sqt_int(C, "ZCARD schedule"), 1);
    itest_squire(&p, R.url, "2", NULL);
    ck_assert_int_eq(sqt_wait_int(C, 1, 20, "SISMEMBER test:done %s", jid_of(a)), 1);
    ck_assert_int_eq(sqt_int(C, "ZCARD dead"), 0);
    redisReply *r = sqt_cmd(C, "LRANGE test:log 0 -1");
    ck_assert_int_eq(r->elements, 2); /* fail, ok */
    for (size_t i = 0; i < r->elements; i++) {
        json_t *rec = json_loads(r->element[i]->str, 0, NULL);
        const char *raw = json_string_value(json_object_get(rec, "raw"));
        ck_assert_ptr_nonnull(raw);
        ck_assert_msg(
            strstr(raw, "\"args\":[1,18446744073709551616,-123456789012345678901234567890]"), "%s",
            raw);
        json_decref(rec);
    }
    freeReplyObject(r);
    json_decref(a);
    itest_stop(&p);
}
END_TEST

START_TEST(the_chosen_sidekiq_is_the_one_loaded)
{
    json_t *v = ruby("version");
    ck_assert_str_eq(json_string_value(json_object_get(v, "version")), sqt_sidekiq_expected());
    json_decref(v);
}
END_TEST

static TCase *compat_case(const char *name, void (*setup)(void))
{
    TCase *tc = tcase_create(name);
    tcase_add_checked_fixture(tc, setup, itest_teardown);
    tcase_set_timeout(tc, 90);
    tcase_add_test(tc, the_chosen_sidekiq_is_the_one_loaded);
    tcase_add_test(tc, ruby_client_jobs_run_in_c_handlers);
    tcase_add_test(tc, failed_job_reads_back_through_sidekiq_retry_set);
    tcase_add_test(tc, exhausted_job_reads_back_through_sidekiq_dead_set);
    tcase_add_test(tc, squirectl_pushes_are_read_by_sidekiq_api);
    tcase_add_test(tc, activejob_payloads_dispatch_on_the_wrapped_class);
    tcase_add_test(tc, ruby_bignums_are_scheduled_and_retried_byte_for_byte);
    return tc;
}

int main(void)
{
    Suite *s = suite_create("sidekiq_compat");
    itest_add_sidekiq_cases(s, "ruby_sidekiq_6_4_1", "ruby_sidekiq_7_3_10", compat_case);
    if (sqt_third_party_has("8.1.7"))
        suite_add_tcase(s, compat_case("ruby_sidekiq_8_1_7", itest_setup_sidekiq_8));
    return sqt_run(s);
}
