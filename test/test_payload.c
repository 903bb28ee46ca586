/*
 * test_payload.c: the payload rewrites (payload.c) and the bounded reader
 * every payload read from Redis goes through (sq_json_load_bounded), each a
 * pure function of its input, `now` and limits; hostile inputs included.
 */
#include <check.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "payload.h"

#define NOW 1700000000.5

static char reason[256];

/* The object text out parses to (asserting it does). */
static json_t *parsed(const char *out, size_t len)
{
    ck_assert_ptr_nonnull(out);
    ck_assert_uint_eq(strlen(out), len);
    json_error_t e;
    json_t *v = json_loadb(out, len, 0, &e);
    ck_assert_msg(json_is_object(v), "%s: %s", out, e.text);
    return v;
}

static json_t *read_ok(const char *s)
{
    json_t *v = NULL;
    ck_assert_int_eq(sq_json_load_bounded(s, strlen(s), NULL, &v, reason, sizeof reason),
                     SQ_JOB_VALID);
    ck_assert_ptr_nonnull(v);
    return v;
}

/* ---- the bounded reader ------------------------------------------------------ */

START_TEST(bounded_reads_an_object)
{
    json_t *v = read_ok("{\"class\":\"A\",\"big\":123456789012345678901234567890}");
    ck_assert_str_eq(json_string_value(json_object_get(v, "class")), "A");
    ck_assert(json_is_real(json_object_get(v, "big"))); /* read as a real, not refused */
    json_decref(v);
}
END_TEST

/* The size cap is the one sq_job_init applies, with the same reason. */
START_TEST(bounded_refuses_oversized_as_the_worker_does)
{
    size_t n = 4096;
    char *big = malloc(n + 1);
    memset(big, ' ', n);
    memcpy(big, "{\"a\":\"", 6);
    memset(big + 6, 'x', n - 8);
    memcpy(big + n - 2, "\"}", 2);
    big[n] = '\0';
    sq_job_limits lim = {n - 1, 64, 1000};
    json_t *v = (json_t *)1;
    ck_assert_int_eq(sq_json_load_bounded(big, n, &lim, &v, reason, sizeof reason),
                     SQ_JOB_OVER_LIMIT);
    ck_assert_ptr_null(v);
    ck_assert_str_eq(reason, "payload is 4096 bytes, over the 4095-byte limit");

    char worker_reason[256];
    sq_job job;
    sq_job_status st;
    char *copy = strdup(big);
    ck_assert_int_eq(
        sq_job_init(&job, copy, n, "q", &lim, &st, worker_reason, sizeof worker_reason), 0);
    ck_assert_int_eq(st, SQ_JOB_OVER_LIMIT);
    ck_assert_str_eq(worker_reason, reason);
    sq_job_destroy(&job);

    lim.max_payload_bytes = n; /* at the limit: read */
    ck_assert_int_eq(sq_json_load_bounded(big, n, &lim, &v, reason, sizeof reason), SQ_JOB_VALID);
    json_decref(v);
    free(big);
}
END_TEST

static const struct {
    const char *text;
    size_t len; /* 0: strlen */
    int status;
    const char *reason;
} hostile[] = {
    {"", 0, SQ_JOB_NOT_JSON, "invalid JSON"},
    {"not json", 0, SQ_JOB_NOT_JSON, "invalid JSON"},
    {"[1,2]", 0, SQ_JOB_NOT_JSON, "payload is an array, not a JSON object"},
    {"\"str\"", 0, SQ_JOB_NOT_JSON, "payload is a string, not a JSON object"},
    {"null", 0, SQ_JOB_NOT_JSON, "payload is null, not a JSON object"},
    {"{\"a\":1}\0{}", 10, SQ_JOB_NOT_JSON, "payload contains a NUL byte at offset 7"},
    {"{\"a\":", 0, SQ_JOB_NOT_JSON, "invalid JSON"},
    {"{\"a\":1}}", 0, SQ_JOB_NOT_JSON, "invalid JSON"},
    {"{\"a\":\"\xff\"}", 0, SQ_JOB_NOT_JSON, "invalid JSON"},
};

START_TEST(bounded_refuses_hostile_text)
{
    size_t len = hostile[_i].len ? hostile[_i].len : strlen(hostile[_i].text);
    json_t *v = NULL;
    int st = sq_json_load_bounded(hostile[_i].text, len, NULL, &v, reason, sizeof reason);
    ck_assert_int_eq(st, hostile[_i].status);
    ck_assert_ptr_null(v);
    ck_assert_msg(strncmp(reason, hostile[_i].reason, strlen(hostile[_i].reason)) == 0, "%s",
                  reason);
    for (const char *p = reason; *p; p++) /* printable: safe to log */
        ck_assert((unsigned char)*p >= 0x20 && (unsigned char)*p < 0x7f);
}
END_TEST

START_TEST(bounded_refuses_depth_and_width)
{
    char deep[300];
    size_t n = 0;
    deep[n++] = '{';
    deep[n++] = '"', deep[n++] = 'a', deep[n++] = '"', deep[n++] = ':';
    for (int i = 0; i < 100; i++)
        deep[n++] = '[';
    for (int i = 0; i < 100; i++)
        deep[n++] = ']';
    deep[n++] = '}';
    json_t *v = NULL;
    ck_assert_int_eq(sq_json_load_bounded(deep, n, NULL, &v, reason, sizeof reason),
                     SQ_JOB_OVER_LIMIT);
    ck_assert_str_eq(reason, "JSON nesting deeper than 64");
    ck_assert_ptr_null(v);

    const char *wide = "{\"a\":[1,2,3,4,5,6,7,8,9,10]}";
    sq_job_limits lim = {1 << 20, 64, 5};
    ck_assert_int_eq(sq_json_load_bounded(wide, strlen(wide), &lim, &v, reason, sizeof reason),
                     SQ_JOB_OVER_LIMIT);
    ck_assert_str_eq(reason, "JSON has more than 5 values");
    /* NULL reason is allowed */
    ck_assert_int_eq(sq_json_load_bounded(wide, strlen(wide), &lim, &v, NULL, 0),
                     SQ_JOB_OVER_LIMIT);
}
END_TEST

/* ---- invalid-job wrapping ---------------------------------------------------- */

START_TEST(invalid_payload_wraps_an_object)
{
    const char *raw = "{\"class\":7,\"n\":1.50,\"x\":\"\\u00e9\"}";
    size_t len = 0;
    char *out = sq_json_mark_invalid(raw, strlen(raw), "class is not a string", NOW, &len);
    ck_assert_str_eq(out, "{\"class\":7,\"n\":1.50,\"x\":\"\\u00e9\",\"error_class\":"
                          "\"Squire::InvalidJob\",\"error_message\":\"class is not a string\","
                          "\"failed_at\":1700000000.500000}");
    free(out);
    /* hostile reason: quotes, control bytes, invalid UTF-8 all stay valid JSON */
    out = sq_json_mark_invalid(raw, strlen(raw), "bad \"q\" \n \xff\xfe end", NOW, &len);
    json_t *v = parsed(out, len);
    ck_assert_str_eq(json_string_value(json_object_get(v, "error_message")),
                     "bad \"q\" \n \xef\xbf\xbd\xef\xbf\xbd end");
    json_decref(v);
    free(out);
    /* NULL reason: an empty message */
    out = sq_json_mark_invalid(raw, strlen(raw), NULL, NOW, &len);
    v = parsed(out, len);
    ck_assert_str_eq(json_string_value(json_object_get(v, "error_message")), "");
    json_decref(v);
    free(out);
}
END_TEST

START_TEST(invalid_payload_refuses_non_objects)
{
    size_t len = 0;
    ck_assert_ptr_null(sq_json_mark_invalid("[1]", 3, "r", NOW, &len));
    ck_assert_ptr_null(sq_json_mark_invalid("{\"a\":", 5, "r", NOW, &len));
    ck_assert_ptr_null(sq_json_mark_invalid("", 0, "r", NOW, &len));
    /* a long reason is cut to SQ_ERROR_MESSAGE_MAX characters */
    char *r = malloc(SQ_ERROR_MESSAGE_MAX + 100);
    memset(r, 'r', SQ_ERROR_MESSAGE_MAX + 99);
    r[SQ_ERROR_MESSAGE_MAX + 99] = '\0';
    char *out = sq_json_mark_invalid("{}", 2, r, NOW, &len);
    json_t *v = parsed(out, len);
    ck_assert_uint_eq(strlen(json_string_value(json_object_get(v, "error_message"))),
                      SQ_ERROR_MESSAGE_MAX);
    json_decref(v);
    free(out);
    free(r);
}
END_TEST

/* ---- queue of a payload, enqueue ----------------------------------------------- */

static const struct {
    const char *json;
    const char *queue; /* NULL: unusable */
    bool absent;
} queues[] = {
    {"{}", "default", true},
    {"{\"queue\":\"mail\"}", "mail", false},
    {"{\"queue\":\"caf\\u00e9\"}", "caf\xc3\xa9", false},
    {"{\"queue\":\"\"}", NULL, false},
    {"{\"queue\":\"a b\"}", NULL, false},
    {"{\"queue\":\"a\\u0000b\"}", NULL, false},
    {"{\"queue\":7}", NULL, false},
    {"{\"queue\":null}", NULL, false},
    {"{\"queue\":[\"x\"]}", NULL, false},
};

START_TEST(payload_queue_rule)
{
    json_t *v = read_ok(queues[_i].json);
    bool absent = !queues[_i].absent;
    const char *q = sq_payload_queue(v, &absent);
    if (queues[_i].queue == NULL)
        ck_assert_ptr_null(q);
    else
        ck_assert_str_eq(q, queues[_i].queue);
    ck_assert(absent == queues[_i].absent);
    json_decref(v);
}
END_TEST

START_TEST(payload_queue_length_limit)
{
    char json[400];
    int n = snprintf(json, sizeof json, "{\"queue\":\"");
    memset(json + n, 'q', 256);
    strcpy(json + n + 256, "\"}");
    json_t *v = read_ok(json);
    bool absent;
    ck_assert_ptr_null(sq_payload_queue(v, &absent));
    json_decref(v);
    strcpy(json + n + 255, "\"}");
    v = read_ok(json);
    ck_assert_uint_eq(strlen(sq_payload_queue(v, &absent)), 255);
    json_decref(v);
}
END_TEST

START_TEST(enqueued_sets_time_and_keeps_the_rest)
{
    const char *raw = "{\"class\":\"A\",\"enqueued_at\":1.0,\"big\":123456789012345678901234567890,"
                      "\"queue\":\"mail\",\"at\":5}";
    json_t *v = read_ok(raw);
    size_t len = 0;
    char *out = sq_payload_enqueued(raw, strlen(raw), v, NOW, &len);
    ck_assert_str_eq(out, "{\"class\":\"A\",\"enqueued_at\":1700000000.500000,"
                          "\"big\":123456789012345678901234567890,\"queue\":\"mail\",\"at\":5}");
    ck_assert_uint_eq(len, strlen(out));
    free(out);
    json_decref(v);
    /* no queue: "default" is written, as Client#push does */
    raw = "{\"class\":\"A\"}";
    v = read_ok(raw);
    out = sq_payload_enqueued(raw, strlen(raw), v, 2.25, &len);
    ck_assert_str_eq(out, "{\"class\":\"A\",\"enqueued_at\":2.250000,\"queue\":\"default\"}");
    free(out);
    json_decref(v);
    /* duplicate keys: every one rewritten, none added */
    raw = "{\"enqueued_at\":1,\"queue\":\"q\",\"enqueued_at\":2}";
    v = read_ok(raw);
    out = sq_payload_enqueued(raw, strlen(raw), v, 3, &len);
    ck_assert_ptr_null(strstr(out, ":1,"));
    ck_assert_ptr_null(strstr(out, ":2}"));
    free(out);
    json_decref(v);
}
END_TEST

/* ---- requeue by hand (squirectl retry) ------------------------------------------ */

START_TEST(requeued_decrements_retry_count)
{
    const char *raw = "{\"class\":\"A\",\"queue\":\"mail\",\"retry_count\":3,\"x\":1.50}";
    json_t *v = read_ok(raw);
    char *queue = NULL;
    size_t len = 0;
    char *out = sq_payload_requeued(raw, strlen(raw), v, NOW, &queue, &len);
    ck_assert_str_eq(out, "{\"class\":\"A\",\"queue\":\"mail\",\"retry_count\":2,\"x\":1.50,"
                          "\"enqueued_at\":1700000000.500000}");
    ck_assert_str_eq(queue, "mail");
    free(out);
    free(queue);
    json_decref(v);
}
END_TEST

static const struct {
    const char *json;
    const char *queue; /* NULL: refused */
    const char *count; /* the retry_count text written, NULL: member left alone */
} requeues[] = {
    {"{\"class\":\"A\"}", "default", NULL},
    {"{\"class\":\"A\",\"queue\":7}", "default", NULL},
    {"{\"class\":\"A\",\"queue\":null}", "default", NULL},
    {"{\"class\":\"A\",\"queue\":\"a b\"}", NULL, NULL},
    {"{\"class\":\"A\",\"queue\":\"\"}", NULL, NULL},
    {"{\"retry_count\":\"3\"}", "default", NULL},
    {"{\"retry_count\":0}", "default", "-1"},
    {"{\"retry_count\":-9223372036854775808}", "default", "-9223372036854775808"},
    {"{\"retry_count\":9223372036854775807}", "default", "9223372036854775806"},
};

START_TEST(requeued_hostile)
{
    const char *raw = requeues[_i].json;
    json_t *v = read_ok(raw);
    char *queue = (char *)"junk";
    size_t len = 0;
    char *out = sq_payload_requeued(raw, strlen(raw), v, NOW, &queue, &len);
    if (requeues[_i].queue == NULL) {
        ck_assert_ptr_null(out);
        ck_assert_ptr_null(queue);
    } else {
        ck_assert_str_eq(queue, requeues[_i].queue);
        json_t *o = parsed(out, len);
        ck_assert_str_eq(json_string_value(json_object_get(o, "queue")), requeues[_i].queue);
        ck_assert(json_real_value(json_object_get(o, "enqueued_at")) == NOW);
        if (requeues[_i].count != NULL) {
            char want[64];
            snprintf(want, sizeof want, "\"retry_count\":%s", requeues[_i].count);
            ck_assert_msg(strstr(out, want) != NULL, "%s", out);
        } else {
            ck_assert(
                json_equal(json_object_get(o, "retry_count"), json_object_get(v, "retry_count")) ||
                json_object_get(v, "retry_count") == NULL);
        }
        json_decref(o);
    }
    free(out);
    free(queue);
    json_decref(v);
}
END_TEST

/* ---- interruption (reliable-fetch recovery) --------------------------------------- */

static const struct {
    const char *json;
    int max;
    const char *count;
    bool dead;
} interrupts[] = {
    {"{\"class\":\"A\"}", 3, "1", false},
    {"{\"class\":\"A\",\"interrupted_count\":1}", 3, "2", false},
    {"{\"class\":\"A\",\"interrupted_count\":2}", 3, "3", true},
    {"{\"class\":\"A\",\"interrupted_count\":50}", 3, "51", true},
    {"{\"class\":\"A\",\"interrupted_count\":-5}", 3, "1", false},
    {"{\"class\":\"A\",\"interrupted_count\":\"2\"}", 3, "1", false},
    {"{\"class\":\"A\",\"interrupted_count\":2.5}", 3, "1", false},
    {"{\"class\":\"A\",\"interrupted_count\":9223372036854775807}", 3, "9223372036854775807", true},
    {"{\"class\":\"A\",\"interrupted_count\":999}", 0, "1000", false}, /* 0: never dead */
    {"{\"class\":\"A\"}", 1, "1", true},
};

START_TEST(interrupted_counts_and_buries)
{
    const char *raw = interrupts[_i].json;
    json_t *v = read_ok(raw);
    bool dead = !interrupts[_i].dead;
    size_t len = 0;
    char *out = sq_payload_interrupted(raw, strlen(raw), v, NOW, interrupts[_i].max, &dead, &len);
    ck_assert(dead == interrupts[_i].dead);
    char want[64];
    snprintf(want, sizeof want, "\"interrupted_count\":%s", interrupts[_i].count);
    ck_assert_msg(strstr(out, want) != NULL, "%s", out);
    json_t *o = parsed(out, len);
    ck_assert_str_eq(json_string_value(json_object_get(o, "class")), "A");
    if (dead) {
        ck_assert_str_eq(json_string_value(json_object_get(o, "error_class")),
                         "Squire::JobInterrupted");
        char msg[160];
        snprintf(msg, sizeof msg, "the process running this job died %s times",
                 interrupts[_i].count);
        ck_assert_msg(strstr(json_string_value(json_object_get(o, "error_message")), msg) != NULL,
                      "%s", out);
        ck_assert(json_real_value(json_object_get(o, "failed_at")) == NOW);
    } else {
        ck_assert_ptr_null(json_object_get(o, "error_class"));
        ck_assert_ptr_null(json_object_get(o, "failed_at"));
    }
    json_decref(o);
    free(out);
    json_decref(v);
}
END_TEST

START_TEST(interrupted_keeps_failed_at_and_text)
{
    const char *raw = "{\"failed_at\":12,\"n\":1.50,\"interrupted_count\":2}";
    json_t *v = read_ok(raw);
    bool dead = false;
    size_t len = 0;
    char *out = sq_payload_interrupted(raw, strlen(raw), v, NOW, 3, &dead, &len);
    ck_assert(dead);
    ck_assert_str_eq(out, "{\"failed_at\":12,\"n\":1.50,\"interrupted_count\":3,\"error_class\":"
                          "\"Squire::JobInterrupted\",\"error_message\":\"the process running "
                          "this job died 3 times while running it; not retried (poison job?)\"}");
    free(out);
    json_decref(v);
}
END_TEST

#define LOOP(tc, fn, arr) tcase_add_loop_test(tc, fn, 0, (int)(sizeof(arr) / sizeof((arr)[0])))

static Suite *payload_suite(void)
{
    Suite *s = suite_create("payload");
    TCase *tc = tcase_create("bounded_reader");
    tcase_add_test(tc, bounded_reads_an_object);
    tcase_add_test(tc, bounded_refuses_oversized_as_the_worker_does);
    LOOP(tc, bounded_refuses_hostile_text, hostile);
    tcase_add_test(tc, bounded_refuses_depth_and_width);
    suite_add_tcase(s, tc);
    tc = tcase_create("rewrites");
    tcase_add_test(tc, invalid_payload_wraps_an_object);
    tcase_add_test(tc, invalid_payload_refuses_non_objects);
    LOOP(tc, payload_queue_rule, queues);
    tcase_add_test(tc, payload_queue_length_limit);
    tcase_add_test(tc, enqueued_sets_time_and_keeps_the_rest);
    tcase_add_test(tc, requeued_decrements_retry_count);
    LOOP(tc, requeued_hostile, requeues);
    LOOP(tc, interrupted_counts_and_buries, interrupts);
    tcase_add_test(tc, interrupted_keeps_failed_at_and_text);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return sqt_run(payload_suite());
}
