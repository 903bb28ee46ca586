/*
 * test_retry.c: Sidekiq's retry rules (retry.c, sidekiq-wire.md §6): the
 * delay, the retry plan of a failed job and the encoded backtrace. Pure:
 * no Redis.
 */
#include "unit.h"
#include <zlib.h>


static size_t b64_decode(const char *s, unsigned char *out)
{
    unsigned acc = 0;
    int bits = 0;
    size_t o = 0;
    for (; *s != '\0' && *s != '='; s++) {
        const char *tab = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        const char *p = strchr(tab, *s);
        ck_assert_msg(p != NULL, "bad base64 char %c", *s);
        acc = (acc << 6) | (unsigned)(p - tab);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
        }
    }
    return o;
}

/* Decode error_backtrace the way Sidekiq's UI does. New reference (an array). */
static json_t *decode_backtrace(const char *b64)
{
    unsigned char *z = malloc(strlen(b64));
    size_t zlen = b64_decode(b64, z);
    uLongf plen = 1 << 20;
    unsigned char *plain = malloc(plen);
    ck_assert_int_eq(uncompress(plain, &plen, z, (uLong)zlen), Z_OK);
    json_error_t err;
    json_t *arr = json_loadb((const char *)plain, plen, 0, &err);
    ck_assert_msg(json_is_array(arr), "backtrace JSON: %s", err.text);
    free(z);
    free(plain);
    return arr;
}


/* Run a default failure of payload s through the retry plan. */
static sq_retry_plan fail_plan(const char *s, int max_retries, json_t **out)
{
    sq_job job;
    init_valid(&job, s);
    sq_job_fail(&job, "RuntimeError", "boom");
    sq_retry_plan plan = plan_for(&job, max_retries, 0, out);
    sq_job_destroy(&job);
    return plan;
}


/* ---- retry decisions ---------------------------------------------------------- */

START_TEST(test_delay_table)
{
    static const double want[] = {15, 16, 31, 96, 271, 640};
    for (int c = 0; c < 6; c++)
        ck_assert_double_eq(sq_retry_delay(c, rnd_zero, NULL), want[c]);
    unsigned nine = 9;
    for (int c = 0; c < 6; c++)
        ck_assert_double_eq(sq_retry_delay(c, rnd_fixed, &nine), want[c] + 9.0 * (c + 1));
    ck_assert_double_eq(sq_retry_delay(24, rnd_zero, NULL), 331791);
    /* The real random source stays within 0..9 times count+1. */
    for (int i = 0; i < 200; i++) {
        double d = sq_retry_delay(2, NULL, NULL) - 31;
        ck_assert(d >= 0 && d <= 27 && fmod(d, 3) == 0);
    }
}
END_TEST

START_TEST(test_plan_first_failure)
{
    sq_job job;
    init_valid(&job, "{\"retry\":true,\"queue\":\"default\",\"class\":\"HardJob\",\"args\":[\"a\",1.10],"
                     "\"jid\":\"abc\",\"bid\":\"B1\",\"tags\":[\"t\"],\"created_at\":1.0e9}");
    sq_job_fail(&job, "RuntimeError", "it broke");
    json_t *o;
    sq_retry_plan plan = plan_for(&job, 25, 0, &o);
    ck_assert_int_eq(plan.action, SQ_RETRY_SCHEDULE);
    ck_assert_int_eq(plan.count, 0);
    ck_assert_double_eq_tol(plan.at, NOW + 15, 1e-6);
    ck_assert_int_eq(json_integer_value(json_object_get(o, "retry_count")), 0);
    ck_assert(json_is_integer(json_object_get(o, "retry_count")));
    ck_assert(json_is_real(json_object_get(o, "failed_at")));
    ck_assert_double_eq_tol(json_real_value(json_object_get(o, "failed_at")), NOW, 1e-6);
    ck_assert_ptr_null(json_object_get(o, "retried_at"));
    ck_assert_ptr_null(json_object_get(o, "error_backtrace"));
    ck_assert_str_eq(str_member(o, "error_class"), "RuntimeError");
    ck_assert_str_eq(str_member(o, "error_message"), "it broke");
    ck_assert_str_eq(str_member(o, "queue"), "critical"); /* the fetched queue */
    ck_assert_str_eq(str_member(o, "bid"), "B1");
    ck_assert_ptr_nonnull(json_object_get(o, "tags"));
    ck_assert_str_eq(plan.payload,
                     "{\"retry\":true,\"queue\":\"critical\",\"class\":\"HardJob\",\"args\":[\"a\",1.10],"
                     "\"jid\":\"abc\",\"bid\":\"B1\",\"tags\":[\"t\"],\"created_at\":1.0e9,"
                     "\"error_message\":\"it broke\",\"error_class\":\"RuntimeError\","
                     "\"failed_at\":1700000000.500000,\"retry_count\":0}");
    json_decref(o);
    sq_retry_plan_destroy(&plan);
    sq_retry_plan_destroy(NULL);
    sq_job_destroy(&job);
}
END_TEST

START_TEST(test_plan_later_failure)
{
    json_t *o;
    sq_retry_plan plan = fail_plan("{\"class\":\"A\",\"args\":[],\"retry_count\":2,\"failed_at\":1600000000.5,"
                                   "\"error_message\":\"old\",\"retried_at\":1.0}",
                                   25, &o);
    ck_assert_int_eq(plan.action, SQ_RETRY_SCHEDULE);
    ck_assert_int_eq(plan.count, 3);
    ck_assert_double_eq_tol(plan.at, NOW + 96, 1e-6);
    ck_assert_int_eq(json_integer_value(json_object_get(o, "retry_count")), 3);
    ck_assert_double_eq(json_real_value(json_object_get(o, "failed_at")), 1600000000.5);
    ck_assert_double_eq_tol(json_real_value(json_object_get(o, "retried_at")), NOW, 1e-6);
    ck_assert_str_eq(str_member(o, "error_message"), "boom");
    ck_assert_ptr_nonnull(strstr(plan.payload, "\"failed_at\":1600000000.5,"));
    json_decref(o);
    sq_retry_plan_destroy(&plan);
}
END_TEST

START_TEST(test_plan_negative_retry_count)
{
    json_t *o;
    sq_retry_plan plan = fail_plan("{\"class\":\"A\",\"args\":[],\"retry_count\":-1}", 25, &o);
    ck_assert_int_eq(plan.action, SQ_RETRY_SCHEDULE);
    ck_assert_int_eq(plan.count, 0);
    ck_assert_double_eq_tol(plan.at, NOW + 15, 1e-6);
    ck_assert_int_eq(json_integer_value(json_object_get(o, "retry_count")), 0);
    ck_assert_ptr_nonnull(json_object_get(o, "retried_at")); /* it was present */
    ck_assert_ptr_null(json_object_get(o, "failed_at"));
    json_decref(o);
    sq_retry_plan_destroy(&plan);
    /* Odd retry_count values are normalised, never lost. */
    plan = fail_plan("{\"class\":\"A\",\"args\":[],\"retry_count\":\"7\"}", 25, &o);
    ck_assert_int_eq(plan.count, 0);
    ck_assert_int_eq(json_integer_value(json_object_get(o, "retry_count")), 0);
    ck_assert_ptr_nonnull(json_object_get(o, "failed_at"));
    json_decref(o);
    sq_retry_plan_destroy(&plan);
    plan = fail_plan("{\"class\":\"A\",\"args\":[],\"retry_count\":1.9}", 25, &o);
    ck_assert_int_eq(plan.count, 2);
    json_decref(o);
    sq_retry_plan_destroy(&plan);
    plan = fail_plan("{\"class\":\"A\",\"args\":[],\"retry_count\":99999999999999999999999}", 25, &o);
    ck_assert_int_eq(plan.count, INT_MAX);
    ck_assert_int_eq(plan.action, SQ_RETRY_DEAD);
    json_decref(o);
    sq_retry_plan_destroy(&plan);
}
END_TEST

START_TEST(test_plan_retry_false)
{
    sq_retry_plan plan = fail_plan("{\"class\":\"A\",\"args\":[],\"retry\":false}", 25, NULL);
    ck_assert_int_eq(plan.action, SQ_RETRY_DROP);
    plan = fail_plan("{\"class\":\"A\",\"args\":[],\"retry\":null}", 25, NULL);
    ck_assert_int_eq(plan.action, SQ_RETRY_DROP);
    plan = fail_plan("{\"class\":\"A\",\"args\":[],\"retry\":false,\"retry_count\":30}", 25, NULL);
    ck_assert_int_eq(plan.action, SQ_RETRY_DROP);
}
END_TEST

START_TEST(test_plan_retry_zero)
{
    json_t *o;
    sq_retry_plan plan = fail_plan("{\"class\":\"A\",\"args\":[],\"retry\":0}", 25, &o);
    ck_assert_int_eq(plan.action, SQ_RETRY_DEAD);
    ck_assert_double_eq(plan.at, NOW);
    ck_assert_int_eq(json_integer_value(json_object_get(o, "retry_count")), 0);
    ck_assert_str_eq(str_member(o, "error_class"), "RuntimeError");
    ck_assert_ptr_nonnull(json_object_get(o, "failed_at"));
    json_decref(o);
    sq_retry_plan_destroy(&plan);
    plan = fail_plan("{\"class\":\"A\",\"args\":[],\"retry\":-1}", 25, NULL);
    ck_assert_int_eq(plan.action, SQ_RETRY_DEAD);
    sq_retry_plan_destroy(&plan);
}
END_TEST

START_TEST(test_plan_retry_three)
{
    sq_retry_plan plan = fail_plan("{\"class\":\"A\",\"args\":[],\"retry\":3,\"retry_count\":1}", 25, NULL);
    ck_assert_int_eq(plan.action, SQ_RETRY_SCHEDULE);
    ck_assert_int_eq(plan.count, 2);
    ck_assert_double_eq_tol(plan.at, NOW + 31, 1e-6);
    sq_retry_plan_destroy(&plan);
    plan = fail_plan("{\"class\":\"A\",\"args\":[],\"retry\":3,\"retry_count\":2}", 25, NULL);
    ck_assert_int_eq(plan.action, SQ_RETRY_DEAD);
    ck_assert_int_eq(plan.count, 3);
    ck_assert_double_eq(plan.at, NOW);
    sq_retry_plan_destroy(&plan);
}
END_TEST

/* `retry` values that are neither integers nor false/null mean max_retries. */
static const char *const retry_other[] = {"\"5\"", "5.5", "{}", "[]", "true", "1e308", "3.0"};

START_TEST(test_plan_retry_other_types)
{
    char s[128];
    snprintf(s, sizeof s, "{\"class\":\"A\",\"args\":[],\"retry\":%s,\"retry_count\":23}", retry_other[_i]);
    sq_retry_plan plan = fail_plan(s, 25, NULL);
    ck_assert_int_eq(plan.action, SQ_RETRY_SCHEDULE);
    ck_assert_int_eq(plan.count, 24);
    sq_retry_plan_destroy(&plan);
    snprintf(s, sizeof s, "{\"class\":\"A\",\"args\":[],\"retry\":%s,\"retry_count\":24}", retry_other[_i]);
    plan = fail_plan(s, 25, NULL);
    ck_assert_int_eq(plan.action, SQ_RETRY_DEAD);
    sq_retry_plan_destroy(&plan);
    /* Absent `retry` too. */
    plan = fail_plan("{\"class\":\"A\",\"args\":[],\"retry_count\":24}", 25, NULL);
    ck_assert_int_eq(plan.action, SQ_RETRY_DEAD);
    sq_retry_plan_destroy(&plan);
    plan = fail_plan("{\"class\":\"A\",\"args\":[],\"retry_count\":4}", 5, NULL);
    ck_assert_int_eq(plan.action, SQ_RETRY_DEAD);
    sq_retry_plan_destroy(&plan);
}
END_TEST

START_TEST(test_plan_retry_huge)
{
    sq_retry_plan plan = fail_plan("{\"class\":\"A\",\"args\":[],\"retry\":9000000000000,\"retry_count\":999998}",
                                   25, NULL);
    ck_assert_int_eq(plan.action, SQ_RETRY_SCHEDULE);
    sq_retry_plan_destroy(&plan);
    plan = fail_plan("{\"class\":\"A\",\"args\":[],\"retry\":9000000000000,\"retry_count\":999999}", 25,
                     NULL);
    ck_assert_int_eq(plan.action, SQ_RETRY_DEAD);
    sq_retry_plan_destroy(&plan);
}
END_TEST

START_TEST(test_plan_retry_queue)
{
    json_t *o;
    sq_retry_plan plan = fail_plan("{\"class\":\"A\",\"args\":[],\"queue\":\"q\",\"retry_queue\":\"low\"}", 25, &o);
    ck_assert_str_eq(str_member(o, "queue"), "low");
    ck_assert_str_eq(str_member(o, "retry_queue"), "low");
    json_decref(o);
    sq_retry_plan_destroy(&plan);
    plan = fail_plan("{\"class\":\"A\",\"args\":[],\"queue\":\"q\",\"retry_queue\":\"\"}", 25, &o);
    ck_assert_str_eq(str_member(o, "queue"), "critical");
    json_decref(o);
    sq_retry_plan_destroy(&plan);
    plan = fail_plan("{\"class\":\"A\",\"args\":[],\"retry_queue\":7}", 25, &o);
    ck_assert_str_eq(str_member(o, "queue"), "critical"); /* appended when absent */
    json_decref(o);
    sq_retry_plan_destroy(&plan);
}
END_TEST

START_TEST(test_plan_dead_false)
{
    sq_retry_plan plan = fail_plan("{\"class\":\"A\",\"args\":[],\"retry\":0,\"dead\":false}", 25, NULL);
    ck_assert_int_eq(plan.action, SQ_RETRY_DROP);
    plan = fail_plan("{\"class\":\"A\",\"args\":[],\"retry\":2,\"dead\":false}", 25, NULL);
    ck_assert_int_eq(plan.action, SQ_RETRY_SCHEDULE);
    sq_retry_plan_destroy(&plan);
    /* Only JSON false counts. */
    plan = fail_plan("{\"class\":\"A\",\"args\":[],\"retry\":0,\"dead\":null}", 25, NULL);
    ck_assert_int_eq(plan.action, SQ_RETRY_DEAD);
    sq_retry_plan_destroy(&plan);
    plan = fail_plan("{\"class\":\"A\",\"args\":[],\"retry\":0,\"dead\":\"false\"}", 25, NULL);
    ck_assert_int_eq(plan.action, SQ_RETRY_DEAD);
    sq_retry_plan_destroy(&plan);
}
END_TEST

START_TEST(test_plan_retry_for)
{
    char s[256];
    snprintf(s, sizeof s, "{\"class\":\"A\",\"args\":[],\"retry_count\":0,\"failed_at\":%.6f,\"retry_for\":50}",
             NOW - 100);
    sq_retry_plan plan = fail_plan(s, 25, NULL);
    ck_assert_int_eq(plan.action, SQ_RETRY_DEAD);
    sq_retry_plan_destroy(&plan);
    snprintf(s, sizeof s, "{\"class\":\"A\",\"args\":[],\"retry_count\":0,\"failed_at\":%.6f,\"retry_for\":200}",
             NOW - 100);
    plan = fail_plan(s, 25, NULL);
    ck_assert_int_eq(plan.action, SQ_RETRY_SCHEDULE);
    sq_retry_plan_destroy(&plan);
    /* Sidekiq 8 writes failed_at in integer milliseconds. */
    snprintf(s, sizeof s, "{\"class\":\"A\",\"args\":[],\"retry_count\":0,\"failed_at\":%lld,\"retry_for\":50}",
             (long long)((NOW - 100) * 1000));
    plan = fail_plan(s, 25, NULL);
    ck_assert_int_eq(plan.action, SQ_RETRY_DEAD);
    sq_retry_plan_destroy(&plan);
    /* First failure: failed_at is now, so the window has not passed. */
    plan = fail_plan("{\"class\":\"A\",\"args\":[],\"retry_for\":0}", 25, NULL);
    ck_assert_int_eq(plan.action, SQ_RETRY_SCHEDULE);
    sq_retry_plan_destroy(&plan);
    /* A non-number retry_for is ignored. */
    plan = fail_plan("{\"class\":\"A\",\"args\":[],\"retry_count\":0,\"failed_at\":1.0,\"retry_for\":\"1\"}",
                     25, NULL);
    ck_assert_int_eq(plan.action, SQ_RETRY_SCHEDULE);
    sq_retry_plan_destroy(&plan);
}
END_TEST

/* Fail payload s with a disposition; returns the plan. */
static sq_retry_plan disposition_plan(const char *s, sq_disposition d, double retry_in, unsigned rnd)
{
    sq_job job;
    init_valid(&job, s);
    sq_job_fail(&job, "E", "m");
    if (d == SQ_DISP_KILL)
        sq_job_kill(&job);
    else if (d == SQ_DISP_DISCARD)
        sq_job_discard(&job);
    else if (d == SQ_DISP_RETRY_IN)
        sq_job_retry_in(&job, retry_in);
    sq_retry_plan plan = plan_for(&job, 25, rnd, NULL);
    sq_job_destroy(&job);
    return plan;
}

START_TEST(test_plan_kill_discard_retry_in)
{
    const char *s = "{\"class\":\"A\",\"args\":[],\"retry_count\":1}";
    sq_retry_plan plan = disposition_plan(s, SQ_DISP_KILL, 0, 0);
    ck_assert_int_eq(plan.action, SQ_RETRY_DEAD);
    ck_assert_double_eq(plan.at, NOW);
    ck_assert_int_eq(plan.count, 2);
    sq_retry_plan_destroy(&plan);
    plan = disposition_plan("{\"class\":\"A\",\"args\":[],\"retry\":false}", SQ_DISP_KILL, 0, 0);
    ck_assert_int_eq(plan.action, SQ_RETRY_DROP);
    plan = disposition_plan("{\"class\":\"A\",\"args\":[],\"dead\":false}", SQ_DISP_KILL, 0, 0);
    ck_assert_int_eq(plan.action, SQ_RETRY_DROP);
    plan = disposition_plan(s, SQ_DISP_DISCARD, 0, 0);
    ck_assert_int_eq(plan.action, SQ_RETRY_DROP);
    plan = disposition_plan("{\"class\":\"A\",\"args\":[],\"retry\":0}", SQ_DISP_DISCARD, 0, 0);
    ck_assert_int_eq(plan.action, SQ_RETRY_DROP);
    /* retry_in: count 2, jitter 3 * (2 + 1). */
    plan = disposition_plan(s, SQ_DISP_RETRY_IN, 60, 3);
    ck_assert_int_eq(plan.action, SQ_RETRY_SCHEDULE);
    ck_assert_double_eq_tol(plan.at, NOW + 69, 1e-6);
    sq_retry_plan_destroy(&plan);
    /* A non-positive retry_in falls back to the default, as in Sidekiq. */
    plan = disposition_plan(s, SQ_DISP_RETRY_IN, 0, 0);
    ck_assert_double_eq_tol(plan.at, NOW + 31, 1e-6);
    sq_retry_plan_destroy(&plan);
    /* An exhausted job still dies with retry_in. */
    plan = disposition_plan("{\"class\":\"A\",\"args\":[],\"retry\":1,\"retry_count\":0}", SQ_DISP_RETRY_IN,
                            60, 0);
    ck_assert_int_eq(plan.action, SQ_RETRY_DEAD);
    sq_retry_plan_destroy(&plan);
}
END_TEST

START_TEST(test_plan_jitter)
{
    unsigned five = 5;
    char s[128];
    for (int rc = -1; rc < 5; rc++) {
        if (rc < 0)
            snprintf(s, sizeof s, "{\"class\":\"A\",\"args\":[]}");
        else
            snprintf(s, sizeof s, "{\"class\":\"A\",\"args\":[],\"retry_count\":%d}", rc);
        sq_job job;
        init_valid(&job, s);
        sq_job_fail(&job, "E", "m");
        sq_retry_plan plan = plan_for(&job, 25, five, NULL);
        double c = rc + 1;
        ck_assert_double_eq_tol(plan.at, NOW + c * c * c * c + 15 + 5 * (c + 1), 1e-6);
        sq_retry_plan_destroy(&plan);
        sq_job_destroy(&job);
    }
}
END_TEST

START_TEST(test_plan_without_fail)
{
    /* A handler that returned SQ_FAILED without sq_job_fail. */
    sq_job job;
    init_valid(&job, "{\"class\":\"A\",\"args\":[]}");
    json_t *o;
    sq_retry_plan plan = plan_for(&job, 25, 0, &o);
    ck_assert_str_eq(str_member(o, "error_class"), "Squire::Error");
    ck_assert_str_eq(str_member(o, "error_message"), "");
    json_decref(o);
    sq_retry_plan_destroy(&plan);
    sq_job_destroy(&job);
}
END_TEST

/* ---- backtraces ------------------------------------------------------------------- */

START_TEST(test_backtrace_encoding)
{
    sq_job job;
    init_valid(&job, "{\"class\":\"A\",\"args\":[],\"backtrace\":true}");
    sq_outcome_fail(&job.outcome, "E", "m");
    static const char *const lines[] = {"app.c:10:in `run'", "quote \" and \\ and \xc3\xa9",
                                        "bad \xff byte"};
    job.outcome.nbacktrace = 3;
    job.outcome.backtrace = calloc(3, sizeof(char *));
    for (size_t i = 0; i < 3; i++)
        job.outcome.backtrace[i] = strdup(lines[i]);
    json_t *o;
    sq_retry_plan plan = plan_for(&job, 25, 0, &o);
    const char *b64 = str_member(o, "error_backtrace");
    ck_assert_ptr_null(strchr(b64, '\n'));
    json_t *arr = decode_backtrace(b64);
    ck_assert_uint_eq(json_array_size(arr), 3);
    ck_assert_str_eq(json_string_value(json_array_get(arr, 0)), lines[0]);
    ck_assert_str_eq(json_string_value(json_array_get(arr, 1)), lines[1]);
    ck_assert_str_eq(json_string_value(json_array_get(arr, 2)), "bad \xef\xbf\xbd byte");
    json_decref(arr);
    json_decref(o);
    sq_retry_plan_destroy(&plan);
    sq_job_destroy(&job);
}
END_TEST

START_TEST(test_backtrace_captured)
{
    sq_job job;
    init_valid(&job, "{\"class\":\"A\",\"args\":[],\"backtrace\":true}");
    sq_job_fail(&job, "E", "m");
    ck_assert_uint_gt(job.outcome.nbacktrace, 0);
    ck_assert_uint_le(job.outcome.nbacktrace, 50);
    json_t *o;
    sq_retry_plan plan = plan_for(&job, 25, 0, &o);
    json_t *arr = decode_backtrace(str_member(o, "error_backtrace"));
    ck_assert_uint_eq(json_array_size(arr), job.outcome.nbacktrace);
    for (size_t i = 0; i < job.outcome.nbacktrace; i++)
        ck_assert_str_eq(json_string_value(json_array_get(arr, i)), job.outcome.backtrace[i]);
    json_decref(arr);
    json_decref(o);
    sq_retry_plan_destroy(&plan);
    sq_job_destroy(&job);
}
END_TEST

START_TEST(test_backtrace_limit)
{
    sq_job job;
    init_valid(&job, "{\"class\":\"A\",\"args\":[],\"backtrace\":2}");
    sq_job_fail(&job, "E", "m");
    ck_assert_uint_ge(job.outcome.nbacktrace, 2);
    json_t *o;
    sq_retry_plan plan = plan_for(&job, 25, 0, &o);
    json_t *arr = decode_backtrace(str_member(o, "error_backtrace"));
    ck_assert_uint_eq(json_array_size(arr), 2);
    json_decref(arr);
    json_decref(o);
    sq_retry_plan_destroy(&plan);
    sq_job_destroy(&job);
}
END_TEST

static const char *const no_backtrace[] = {
    "{\"class\":\"A\",\"args\":[]}",
    "{\"class\":\"A\",\"args\":[],\"backtrace\":false}",
    "{\"class\":\"A\",\"args\":[],\"backtrace\":0}",
    "{\"class\":\"A\",\"args\":[],\"backtrace\":-3}",
    "{\"class\":\"A\",\"args\":[],\"backtrace\":null}",
};

START_TEST(test_backtrace_off)
{
    sq_job job;
    init_valid(&job, no_backtrace[_i]);
    sq_job_fail(&job, "E", "m");
    ck_assert_ptr_null(job.outcome.backtrace);
    json_t *o;
    sq_retry_plan plan = plan_for(&job, 25, 0, &o);
    ck_assert_ptr_null(json_object_get(o, "error_backtrace"));
    json_decref(o);
    sq_retry_plan_destroy(&plan);
    sq_job_destroy(&job);
}
END_TEST


static Suite *retry_suite(void)
{
    Suite *s = suite_create("retry");
    TCase *tc = tcase_create("retry");
    tcase_add_test(tc, test_delay_table);
    tcase_add_test(tc, test_plan_first_failure);
    tcase_add_test(tc, test_plan_later_failure);
    tcase_add_test(tc, test_plan_negative_retry_count);
    tcase_add_test(tc, test_plan_retry_false);
    tcase_add_test(tc, test_plan_retry_zero);
    tcase_add_test(tc, test_plan_retry_three);
    LOOP(tc, test_plan_retry_other_types, retry_other);
    tcase_add_test(tc, test_plan_retry_huge);
    tcase_add_test(tc, test_plan_retry_queue);
    tcase_add_test(tc, test_plan_dead_false);
    tcase_add_test(tc, test_plan_retry_for);
    tcase_add_test(tc, test_plan_kill_discard_retry_in);
    tcase_add_test(tc, test_plan_jitter);
    tcase_add_test(tc, test_plan_without_fail);
    tcase_add_test(tc, test_backtrace_encoding);
    tcase_add_test(tc, test_backtrace_captured);
    tcase_add_test(tc, test_backtrace_limit);
    LOOP(tc, test_backtrace_off, no_backtrace);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return sqt_run(retry_suite());
}
