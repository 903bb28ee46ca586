/*
 * test_job.c: the job module (job.c): validation of fetched payloads
 * (reliability.md §6 rows 1-20), the handler API and sq_job_fail. Pure: no
 * Redis. Text splicing is in test_json_text.c, the retry rules in
 * test_retry.c, the payload rewrites in test_payload.c.
 */
#include "unit.h"

/* ---- bad input: reliability.md §6 rows 1, 2, 7, 8, 9, 11 --------------------- */

static const char *const not_json[] = {
    "hello",
    "{\"class\":\"A\"",
    "",
    "{",
    "{\"class\":\"A\",\"args\":[1,2}",
    "{\"class\":\"A\",\"args\":[]} trailing",
    "{'class':'A','args':[]}",
    "{\"class\":\"A\",\"args\":[],}",
    "\xff\xfe{}",
    "[]",
    "\"s\"",
    "42",
    "null",
    "true",
    "1.5",
    "[{\"class\":\"A\",\"args\":[]}]",
};

START_TEST(test_not_json)
{
    sq_job job;
    const char *s = not_json[_i];
    ck_assert_int_eq(init_str(&job, s), SQ_JOB_NOT_JSON);
    ck_assert_msg(reason[0] != '\0', "no reason for %s", s);
    ck_assert_ptr_null(job.payload);
    ck_assert_ptr_null(sq_job_args(&job));
    ck_assert_str_eq(sq_job_class(&job), "");
    ck_assert_str_eq(sq_job_jid(&job), "");
    size_t len;
    ck_assert_mem_eq(sq_job_raw(&job, &len), s, strlen(s));
    ck_assert_uint_eq(len, strlen(s));
    for (const char *p = reason; *p != '\0'; p++)
        ck_assert_msg(*p >= 0x20 && *p < 0x7f, "reason not printable: %s", reason);
    sq_job_destroy(&job);
}
END_TEST

START_TEST(test_not_object_reason)
{
    sq_job job;
    ck_assert_int_eq(init_str(&job, "[]"), SQ_JOB_NOT_JSON);
    ck_assert_str_eq(reason, "payload is an array, not a JSON object");
    sq_job_destroy(&job);
    ck_assert_int_eq(init_str(&job, "null"), SQ_JOB_NOT_JSON);
    ck_assert_str_eq(reason, "payload is null, not a JSON object");
    sq_job_destroy(&job);
    ck_assert_int_eq(init_str(&job, "hello"), SQ_JOB_NOT_JSON);
    ck_assert_msg(strncmp(reason, "invalid JSON: ", 14) == 0, "%s", reason);
    sq_job_destroy(&job);
}
END_TEST

START_TEST(test_huge_payload)
{
    size_t len = 10u << 20;
    char *raw = malloc(len + 1);
    memset(raw, ' ', len);
    memcpy(raw, "{\"class\":\"A\",\"args\":[\"", 22);
    raw[len - 3] = '"';
    raw[len - 2] = ']';
    raw[len - 1] = '}';
    raw[len] = '\0';
    sq_job_limits lim = {.max_payload_bytes = 1u << 20};
    sq_job job;
    sq_job_status st;
    ck_assert_int_eq(sq_job_init(&job, raw, len, "default", &lim, &st, reason, sizeof reason), 0);
    ck_assert_int_eq(st, SQ_JOB_OVER_LIMIT);
    ck_assert_str_eq(reason, "payload is 10485760 bytes, over the 1048576-byte limit");
    ck_assert_ptr_eq(job.raw, raw); /* kept, not copied */
    ck_assert_ptr_null(job.payload);
    sq_job_destroy(&job);
}
END_TEST

START_TEST(test_payload_at_limit)
{
    const char *s = "{\"class\":\"A\",\"args\":[]}";
    sq_job_limits lim = {.max_payload_bytes = strlen(s)};
    sq_job job;
    ck_assert_int_eq(init_mem(&job, s, strlen(s), &lim), SQ_JOB_VALID);
    sq_job_destroy(&job);
    lim.max_payload_bytes--;
    ck_assert_int_eq(init_mem(&job, s, strlen(s), &lim), SQ_JOB_OVER_LIMIT);
    sq_job_destroy(&job);
}
END_TEST

/* {"class":"A","args":<open><open>...<close><close>} with depth brackets. */
static char *nested(size_t depth, char open, char close, size_t *len)
{
    const char *head = "{\"class\":\"A\",\"args\":";
    size_t h = strlen(head);
    char *s = malloc(h + 2 * depth + 2);
    memcpy(s, head, h);
    memset(s + h, open, depth);
    memset(s + h + depth, close, depth);
    s[h + 2 * depth] = '}';
    s[h + 2 * depth + 1] = '\0';
    *len = h + 2 * depth + 1;
    return s;
}

START_TEST(test_deep_nesting)
{
    size_t len;
    char *s = nested(100000, '[', ']', &len);
    sq_job job;
    ck_assert_int_eq(init_mem(&job, s, len, NULL), SQ_JOB_OVER_LIMIT);
    ck_assert_str_eq(reason, "JSON nesting deeper than 64");
    /* its dead entry says why, spliced without reading the nesting */
    size_t dlen;
    char *dead = sq_job_invalid_payload(&job, reason, NOW, &dlen);
    ck_assert_ptr_nonnull(dead);
    ck_assert_mem_eq(dead, s, len - 1);
    ck_assert_ptr_nonnull(strstr(dead + len - 1, "\"error_class\":\"Squire::InvalidJob\""));
    ck_assert_ptr_nonnull(strstr(dead + len - 1, "\"JSON nesting deeper than 64\""));
    free(dead);
    sq_job_destroy(&job);
    free(s);
    /* Objects nest the same way, in any order. */
    const char *obj = "{\"class\":\"A\",\"args\":[{\"a\":{\"a\":{\"a\":[[1]]}}}]}";
    sq_job_limits lim = {.max_depth = 6};
    ck_assert_int_eq(init_mem(&job, obj, strlen(obj), &lim), SQ_JOB_OVER_LIMIT);
    sq_job_destroy(&job);
    lim.max_depth = 7;
    ck_assert_int_eq(init_mem(&job, obj, strlen(obj), &lim), SQ_JOB_VALID);
    sq_job_destroy(&job);
}
END_TEST

START_TEST(test_depth_limit_exact)
{
    size_t len;
    /* The object is level 1, so 63 brackets reach 64. */
    char *s = nested(63, '[', ']', &len);
    sq_job job;
    ck_assert_int_eq(init_mem(&job, s, len, NULL), SQ_JOB_VALID);
    sq_job_destroy(&job);
    free(s);
    s = nested(64, '[', ']', &len);
    ck_assert_int_eq(init_mem(&job, s, len, NULL), SQ_JOB_OVER_LIMIT);
    sq_job_destroy(&job);
    free(s);
}
END_TEST

START_TEST(test_brackets_in_strings_do_not_nest)
{
    char s[512];
    char deep[201];
    memset(deep, '[', 100);
    memset(deep + 100, '{', 100);
    deep[200] = '\0';
    snprintf(s, sizeof s, "{\"class\":\"A\",\"args\":[\"%s\\\"[[\"]}", deep);
    sq_job job;
    init_valid(&job, s);
    ck_assert_uint_eq(sq_job_argc(&job), 1);
    sq_job_destroy(&job);
}
END_TEST

START_TEST(test_wide_array)
{
    size_t n = 1000000, len = 0;
    char *s = malloc(2 * n + 64);
    len += (size_t)snprintf(s, 64, "{\"class\":\"A\",\"args\":[");
    for (size_t i = 0; i < n; i++) {
        s[len++] = '1';
        s[len++] = ',';
    }
    s[len - 1] = ']';
    s[len++] = '}';
    sq_job job;
    sq_job_limits lim = {.max_payload_bytes = 4u << 20};
    ck_assert_int_eq(init_mem(&job, s, len, &lim), SQ_JOB_OVER_LIMIT);
    ck_assert_str_eq(reason, "JSON has more than 100000 values");
    sq_job_destroy(&job);
    free(s);
}
END_TEST

START_TEST(test_wide_object)
{
    size_t n = 200000, len = 0;
    char *s = malloc(16 * n + 64);
    len += (size_t)snprintf(s, 64, "{\"class\":\"A\",\"args\":[],\"x\":{");
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(s + len, 32, "\"k%zu\":0,", i);
    s[len - 1] = '}';
    s[len++] = '}';
    sq_job job;
    sq_job_limits lim = {.max_payload_bytes = 8u << 20};
    ck_assert_int_eq(init_mem(&job, s, len, &lim), SQ_JOB_OVER_LIMIT);
    sq_job_destroy(&job);
    free(s);
}
END_TEST

START_TEST(test_element_count_exact)
{
    /* object + "A" + array + n numbers; keys do not count. */
    const char *s = "{\"class\":\"A\",\"args\":[1,2,3,4,5,6,7]}";
    sq_job_limits lim = {.max_elements = 10};
    sq_job job;
    ck_assert_int_eq(init_mem(&job, s, strlen(s), &lim), SQ_JOB_VALID);
    sq_job_destroy(&job);
    const char *t = "{\"class\":\"A\",\"args\":[1,2,3,4,5,6,7,true]}";
    ck_assert_int_eq(init_mem(&job, t, strlen(t), &lim), SQ_JOB_OVER_LIMIT);
    sq_job_destroy(&job);
}
END_TEST

START_TEST(test_raw_nul)
{
    static const char s[] = "{\"class\":\"A\",\"args\":[\"a\0b\"]}";
    sq_job job;
    ck_assert_int_eq(init_mem(&job, s, sizeof s - 1, NULL), SQ_JOB_NOT_JSON);
    ck_assert_str_eq(reason, "payload contains a NUL byte at offset 23");
    size_t len;
    ck_assert_mem_eq(sq_job_raw(&job, &len), s, sizeof s - 1);
    ck_assert_uint_eq(len, sizeof s - 1);
    sq_job_destroy(&job);
    /* A NUL right after a valid object is not ignored either. */
    static const char t[] = "{\"class\":\"A\",\"args\":[]}\0";
    ck_assert_int_eq(init_mem(&job, t, sizeof t - 1, NULL), SQ_JOB_NOT_JSON);
    sq_job_destroy(&job);
}
END_TEST

START_TEST(test_escaped_nul)
{
    sq_job job;
    init_valid(&job, "{\"class\":\"A\",\"args\":[\"a\\u0000b\"],\"jid\":\"j\"}");
    json_t *a = sq_job_arg(&job, 0);
    ck_assert_uint_eq(json_string_length(a), 3);
    ck_assert_mem_eq(json_string_value(a), "a\0b", 3);
    sq_job_destroy(&job);
    /* ...but not in a class name, which the registry matches as a C string. */
    ck_assert_int_eq(init_str(&job, "{\"class\":\"A\\u0000B\",\"args\":[],\"jid\":\"x\\u0000y\"}"),
                     SQ_JOB_BAD_SHAPE);
    ck_assert_str_eq(reason, "class contains a NUL character");
    /* the log shows both whole: their lengths count the NUL */
    ck_assert_uint_eq(job.klass_len, 3);
    ck_assert_mem_eq(job.klass, "A\0B", 3);
    ck_assert_uint_eq(job.jid_len, 3);
    ck_assert_mem_eq(job.jid, "x\0y", 3);
    sq_job_destroy(&job);
}
END_TEST

/* ---- bad shape: rows 3, 6 ---------------------------------------------------- */

static const struct {
    const char *payload, *reason;
} bad_shape[] = {
    {"{\"args\":[]}", "class is missing"},
    {"{\"class\":42,\"args\":[]}", "class is not a string"},
    {"{\"class\":{},\"args\":[]}", "class is not a string"},
    {"{\"class\":null,\"args\":[]}", "class is not a string"},
    {"{\"class\":\"\",\"args\":[]}", "class is empty"},
    {"{\"class\":\"A\"}", "args is missing"},
    {"{\"class\":\"A\",\"args\":{}}", "args is not an array"},
    {"{\"class\":\"A\",\"args\":\"x\"}", "args is not an array"},
    {"{\"class\":\"A\",\"args\":null}", "args is not an array"},
    {"{\"class\":\"A\",\"args\":1}", "args is not an array"},
    {"{\"class\":\"Sidekiq::ActiveJob::Wrapper\",\"args\":[{\"arguments\":[]}]}",
     "ActiveJob job_class is missing and wrapped is unusable"},
    {"{\"class\":\"Sidekiq::ActiveJob::Wrapper\",\"wrapped\":\"J\",\"args\":[{\"arguments\":{}}]}",
     "ActiveJob arguments is missing or not an array"},
    {"{\"class\":\"Sidekiq::ActiveJob::Wrapper\",\"wrapped\":\"J\",\"args\":[{}]}",
     "ActiveJob arguments is missing or not an array"},
};

START_TEST(test_bad_shape)
{
    sq_job job;
    const char *s = bad_shape[_i].payload;
    ck_assert_int_eq(init_str(&job, s), SQ_JOB_BAD_SHAPE);
    ck_assert_str_eq(reason, bad_shape[_i].reason);
    /* An object: kept, with `class` and `jid` as written for the log. */
    ck_assert(json_is_object(job.payload));
    const char *klass = json_string_value(json_object_get(job.payload, "class"));
    ck_assert_str_eq(sq_job_class(&job), klass != NULL ? klass : "");
    ck_assert_uint_eq(job.klass_len, strlen(sq_job_class(&job)));
    ck_assert_ptr_null(sq_job_args(&job));

    /* It goes to the dead set with error fields, every other byte kept. */
    size_t len;
    char *dead = sq_job_invalid_payload(&job, reason, NOW, &len);
    ck_assert_ptr_nonnull(dead);
    json_t *o = parse_object(dead, len);
    ck_assert_str_eq(str_member(o, "error_class"), "Squire::InvalidJob");
    ck_assert_str_eq(str_member(o, "error_message"), bad_shape[_i].reason);
    ck_assert(json_is_real(json_object_get(o, "failed_at")));
    ck_assert_double_eq_tol(json_real_value(json_object_get(o, "failed_at")), NOW, 1e-6);
    ck_assert_ptr_nonnull(strstr(dead, "\"failed_at\":1700000000.500000"));
    json_decref(o);
    free(dead);
    sq_job_destroy(&job);
}
END_TEST

START_TEST(test_invalid_payload_keeps_text)
{
    sq_job job;
    const char *s = "{\"x\":1.10, \"class\":7,\"args\":[1e2],\"error_class\":\"Old\"}";
    ck_assert_int_eq(init_str(&job, s), SQ_JOB_BAD_SHAPE);
    size_t len;
    char *dead = sq_job_invalid_payload(&job, "bad \xff \"quote\"", NOW, &len);
    ck_assert_str_eq(dead, "{\"x\":1.10,\"class\":7,\"args\":[1e2],"
                           "\"error_class\":\"Squire::InvalidJob\","
                           "\"error_message\":\"bad \xEF\xBF\xBD \\\"quote\\\"\","
                           "\"failed_at\":1700000000.500000}");
    free(dead);
    sq_job_destroy(&job);
}
END_TEST

/* ---- valid jobs, rows 14, 15, 18, 19 ----------------------------------------- */

START_TEST(test_accessors)
{
    sq_job job;
    const char *s = "{\"class\":\"HardJob\",\"args\":[\"x\",2],\"jid\":\"0123456789abcdef01234567\","
                    "\"queue\":\"default\",\"retry\":true,\"bid\":\"B\"}";
    init_valid(&job, s);
    ck_assert_str_eq(sq_job_jid(&job), "0123456789abcdef01234567");
    ck_assert_str_eq(sq_job_class(&job), "HardJob");
    ck_assert_str_eq(sq_job_queue(&job), "critical"); /* the list it came from (row 18) */
    ck_assert(json_is_array(sq_job_args(&job)));
    ck_assert_uint_eq(sq_job_argc(&job), 2);
    ck_assert_str_eq(json_string_value(sq_job_arg(&job, 0)), "x");
    ck_assert_int_eq(json_integer_value(sq_job_arg(&job, 1)), 2);
    ck_assert_ptr_null(sq_job_arg(&job, 2));
    ck_assert_int_eq(sq_job_retry_count(&job), -1);
    ck_assert_str_eq(json_string_value(json_object_get(sq_job_payload(&job), "bid")), "B");
    size_t len;
    ck_assert_str_eq(sq_job_raw(&job, &len), s);
    ck_assert_uint_eq(len, strlen(s));
    ck_assert_ptr_nonnull(sq_job_raw(&job, NULL));
    sq_job_destroy(&job);
}
END_TEST

START_TEST(test_empty_args)
{
    sq_job job;
    init_valid(&job, "{\"class\":\"A\",\"args\":[]}");
    ck_assert_ptr_nonnull(sq_job_args(&job));
    ck_assert_uint_eq(sq_job_argc(&job), 0);
    ck_assert_ptr_null(sq_job_arg(&job, 0));
    sq_job_destroy(&job);
}
END_TEST

START_TEST(test_jid)
{
    sq_job job;
    init_valid(&job, "{\"class\":\"A\",\"args\":[]}");
    ck_assert_str_eq(sq_job_jid(&job), "");
    sq_job_destroy(&job);
    init_valid(&job, "{\"class\":\"A\",\"args\":[],\"jid\":12}");
    ck_assert_str_eq(sq_job_jid(&job), "");
    sq_job_destroy(&job);
    init_valid(&job, "{\"class\":\"A\",\"args\":[],\"jid\":null}");
    ck_assert_str_eq(sq_job_jid(&job), "");
    sq_job_destroy(&job);
    init_valid(&job, "{\"class\":\"A\",\"args\":[],\"jid\":\"\"}");
    ck_assert_str_eq(sq_job_jid(&job), "");
    sq_job_destroy(&job);
}
END_TEST

static const struct {
    const char *value;
    int want;
} retry_counts[] = {
    {"3", 3},
    {"0", 0},
    {"-1", -1},
    {"-5", -5},
    {"2.7", 2},
    {"-2.7", -2},
    {"1e3", 1000},
    {"4611686018427387904", INT_MAX},
    {"-4611686018427387904", INT_MIN},
    {"9223372036854775808", INT_MAX}, /* 2^63: beyond int64, read as a real */
    {"1e300", INT_MAX},
    {"\"3\"", -1},
    {"true", -1},
    {"null", -1},
    {"[1]", -1},
};

START_TEST(test_retry_count_read)
{
    char s[128];
    snprintf(s, sizeof s, "{\"class\":\"A\",\"args\":[],\"retry_count\":%s}", retry_counts[_i].value);
    sq_job job;
    init_valid(&job, s);
    ck_assert_int_eq(sq_job_retry_count(&job), retry_counts[_i].want);
    sq_job_destroy(&job);
}
END_TEST

START_TEST(test_huge_integers)
{
    sq_job job;
    const char *s = "{\"class\":\"A\",\"args\":[123456789012345678901234567890,-99999999999999999999,"
                    "9223372036854775807,-9223372036854775808,1e400,-1e400,5,\"9999999999999999999999\"],"
                    "\"retry\":3}";
    init_valid(&job, s);
    ck_assert(json_is_real(sq_job_arg(&job, 0)));
    ck_assert_double_eq_tol(json_real_value(sq_job_arg(&job, 0)), 1.2345678901234568e29, 1e15);
    ck_assert(json_is_real(sq_job_arg(&job, 1)));
    ck_assert(json_real_value(sq_job_arg(&job, 1)) < -9e19);
    ck_assert(json_is_integer(sq_job_arg(&job, 2)));
    ck_assert(json_integer_value(sq_job_arg(&job, 2)) == INT64_MAX);
    ck_assert(json_is_integer(sq_job_arg(&job, 3)));
    ck_assert(json_integer_value(sq_job_arg(&job, 3)) == INT64_MIN);
    ck_assert(json_is_real(sq_job_arg(&job, 4)));
    ck_assert(json_real_value(sq_job_arg(&job, 4)) > 1e308);
    ck_assert(json_real_value(sq_job_arg(&job, 5)) < -1e308);
    ck_assert(json_is_integer(sq_job_arg(&job, 6))); /* ordinary integers stay integers */
    ck_assert_str_eq(json_string_value(sq_job_arg(&job, 7)), "9999999999999999999999");
    ck_assert(json_is_integer(json_object_get(job.payload, "retry")));
    /* The raw text is untouched, and so is a rewrite of it. */
    ck_assert_str_eq(job.raw, s);
    sq_job_fail(&job, NULL, "x");
    sq_retry_plan plan = plan_for(&job, 25, 0, NULL);
    ck_assert_int_eq(plan.action, SQ_RETRY_SCHEDULE);
    ck_assert_ptr_nonnull(strstr(plan.payload, "[123456789012345678901234567890,-99999999999999999999,"));
    ck_assert_ptr_nonnull(strstr(plan.payload, "1e400,-1e400,5,"));
    sq_retry_plan_destroy(&plan);
    sq_job_destroy(&job);
}
END_TEST

START_TEST(test_huge_integer_with_bad_json)
{
    sq_job job;
    ck_assert_int_eq(init_str(&job, "{\"class\":\"A\",\"args\":[99999999999999999999999,]}"),
                     SQ_JOB_NOT_JSON);
    sq_job_destroy(&job);
    ck_assert_int_eq(init_str(&job, "[99999999999999999999999]"), SQ_JOB_NOT_JSON);
    ck_assert_str_eq(reason, "payload is an array, not a JSON object");
    sq_job_destroy(&job);
}
END_TEST

START_TEST(test_whitespace_and_unicode_payload)
{
    sq_job job;
    init_valid(&job, " \n\t{ \"class\" : \"Caf\\u00e9Job\" ,\r\n \"args\" : [ \"\xe2\x82\xac\" ] } \n");
    ck_assert_str_eq(sq_job_class(&job), "Caf\xc3\xa9Job");
    ck_assert_str_eq(json_string_value(sq_job_arg(&job, 0)), "\xe2\x82\xac");
    sq_job_destroy(&job);
}
END_TEST

START_TEST(test_null_limits_and_queue)
{
    char *raw = strdup("{\"class\":\"A\",\"args\":[]}");
    sq_job job;
    ck_assert_int_eq(sq_job_init(&job, raw, strlen(raw), NULL, NULL, NULL, NULL, 0), 0);
    ck_assert_str_eq(sq_job_queue(&job), "");
    ck_assert_str_eq(sq_job_class(&job), "A");
    sq_job_destroy(&job);
    sq_job_destroy(NULL);
}
END_TEST

/* ---- ActiveJob, row 20 ----------------------------------------------------- */

START_TEST(test_activejob_rails_payload)
{
    const char *s =
        "{\"retry\":true,\"queue\":\"mailers\",\"class\":\"ActiveJob::QueueAdapters::SidekiqAdapter::"
        "JobWrapper\",\"wrapped\":\"ActionMailer::MailDeliveryJob\",\"args\":[{\"job_class\":"
        "\"ActionMailer::MailDeliveryJob\",\"job_id\":\"5e5a3c39-7c8f-4a7e-9d0b-5a9a2b0f6a11\","
        "\"provider_job_id\":null,\"queue_name\":\"mailers\",\"priority\":null,\"arguments\":["
        "\"UserMailer\",\"welcome\",\"deliver_now\",{\"params\":{\"user\":{\"_aj_globalid\":"
        "\"gid://app/User/42\"},\"_aj_symbol_keys\":[\"user\"]},\"args\":[],\"_aj_ruby2_keywords\":"
        "[\"params\",\"args\"]}],\"executions\":0,\"exception_executions\":{},\"locale\":\"en\","
        "\"timezone\":\"UTC\",\"enqueued_at\":\"2024-05-01T12:00:00.123456789Z\"}],\"jid\":"
        "\"2f3b0f1e4c5d6a7b8c9d0e1f\",\"created_at\":1714564800.123,\"enqueued_at\":1714564800.124}";
    sq_job job;
    init_valid(&job, s);
    ck_assert_str_eq(sq_job_class(&job), "ActionMailer::MailDeliveryJob");
    ck_assert_str_eq(sq_job_jid(&job), "2f3b0f1e4c5d6a7b8c9d0e1f");
    ck_assert_uint_eq(sq_job_argc(&job), 4);
    ck_assert_str_eq(json_string_value(sq_job_arg(&job, 0)), "UserMailer");
    json_t *params = json_object_get(sq_job_arg(&job, 3), "params");
    ck_assert_str_eq(
        json_string_value(json_object_get(json_object_get(params, "user"), "_aj_globalid")),
        "gid://app/User/42");
    /* The retry rewrite keeps the wrapper payload as it was. */
    sq_job_fail(&job, "Net::SMTPAuthenticationError", "535 auth failed");
    json_t *o;
    sq_retry_plan plan = plan_for(&job, 25, 0, &o);
    ck_assert_str_eq(str_member(o, "class"), "ActiveJob::QueueAdapters::SidekiqAdapter::JobWrapper");
    ck_assert_str_eq(str_member(o, "wrapped"), "ActionMailer::MailDeliveryJob");
    ck_assert_ptr_nonnull(strstr(plan.payload, "\"_aj_globalid\":\"gid://app/User/42\""));
    json_decref(o);
    sq_retry_plan_destroy(&plan);
    sq_job_destroy(&job);
}
END_TEST

START_TEST(test_activejob_sidekiq8_wrapper)
{
    sq_job job;
    init_valid(&job, "{\"class\":\"Sidekiq::ActiveJob::Wrapper\",\"args\":[{\"job_class\":\"MyJob\","
                     "\"arguments\":[1,\"two\"]}],\"jid\":\"j\"}");
    ck_assert_str_eq(sq_job_class(&job), "MyJob"); /* no `wrapped`: job_class */
    ck_assert_uint_eq(sq_job_argc(&job), 2);
    ck_assert_int_eq(json_integer_value(sq_job_arg(&job, 0)), 1);
    sq_job_destroy(&job);
    /* `wrapped` wins over job_class; an unusable `wrapped` falls back. */
    init_valid(&job, "{\"class\":\"Sidekiq::ActiveJob::Wrapper\",\"wrapped\":\"W\","
                     "\"args\":[{\"job_class\":\"J\",\"arguments\":[]}]}");
    ck_assert_str_eq(sq_job_class(&job), "W");
    sq_job_destroy(&job);
    init_valid(&job, "{\"class\":\"Sidekiq::ActiveJob::Wrapper\",\"wrapped\":5,"
                     "\"args\":[{\"job_class\":\"J\",\"arguments\":[]}]}");
    ck_assert_str_eq(sq_job_class(&job), "J");
    sq_job_destroy(&job);
}
END_TEST

START_TEST(test_activejob_not_a_hash)
{
    /* A wrapper whose args[0] is not an object runs as the wrapper class. */
    sq_job job;
    init_valid(&job, "{\"class\":\"Sidekiq::ActiveJob::Wrapper\",\"args\":[\"x\"]}");
    ck_assert_str_eq(sq_job_class(&job), "Sidekiq::ActiveJob::Wrapper");
    ck_assert_uint_eq(sq_job_argc(&job), 1);
    sq_job_destroy(&job);
    init_valid(&job, "{\"class\":\"ActiveJob::QueueAdapters::SidekiqAdapter::JobWrapper\",\"args\":[]}");
    ck_assert_str_eq(sq_job_class(&job), "ActiveJob::QueueAdapters::SidekiqAdapter::JobWrapper");
    sq_job_destroy(&job);
    /* Other classes with a hash argument are left alone. */
    init_valid(&job, "{\"class\":\"A\",\"wrapped\":\"B\",\"args\":[{\"arguments\":[]}]}");
    ck_assert_str_eq(sq_job_class(&job), "A");
    ck_assert(json_is_object(sq_job_arg(&job, 0)));
    sq_job_destroy(&job);
}
END_TEST


/* ---- sq_job_fail and the outcome ------------------------------------------------- */

START_TEST(test_fail_basics)
{
    sq_job job;
    init_valid(&job, "{\"class\":\"A\",\"args\":[]}");
    ck_assert_int_eq(sq_job_fail(&job, "ArgumentError", "bad arg %d: %s", 3, "x"), SQ_FAILED);
    ck_assert(job.outcome.failed);
    ck_assert_str_eq(job.outcome.error_class, "ArgumentError");
    ck_assert_str_eq(job.outcome.error_message, "bad arg 3: x");
    ck_assert_ptr_null(job.outcome.backtrace); /* no `backtrace` option */
    /* The first call wins. */
    ck_assert_int_eq(sq_job_fail(&job, "Other", "second"), SQ_FAILED);
    ck_assert_str_eq(job.outcome.error_class, "ArgumentError");
    ck_assert_str_eq(job.outcome.error_message, "bad arg 3: x");
    sq_job_destroy(&job);
}
END_TEST

START_TEST(test_fail_default_class)
{
    sq_job job;
    init_valid(&job, "{\"class\":\"A\",\"args\":[]}");
    sq_job_fail(&job, NULL, "m");
    ck_assert_str_eq(job.outcome.error_class, "Squire::Error");
    sq_job_destroy(&job);
    init_valid(&job, "{\"class\":\"A\",\"args\":[]}");
    sq_job_fail(&job, "", "%s", "");
    ck_assert_str_eq(job.outcome.error_class, "Squire::Error");
    ck_assert_str_eq(job.outcome.error_message, "");
    sq_job_destroy(&job);
    init_valid(&job, "{\"class\":\"A\",\"args\":[]}");
    sq_job_fail(&job, "Bad\xff", "msg \xc3");
    ck_assert_str_eq(job.outcome.error_class, "Bad\xef\xbf\xbd");
    ck_assert_str_eq(job.outcome.error_message, "msg \xef\xbf\xbd");
    sq_job_destroy(&job);
}
END_TEST

static size_t utf8_chars(const char *s)
{
    size_t n = 0;
    for (; *s != '\0'; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

START_TEST(test_fail_message_cap)
{
    /* 12,000 two-byte characters: capped at 10,000 characters (20,000 bytes)
     * when the processor cuts it, after scrubbing it of the database URL's
     * secrets (sq_job_fail keeps it whole until then). */
    size_t n = 12000;
    char *big = malloc(2 * n + 1);
    for (size_t i = 0; i < n; i++)
        memcpy(big + 2 * i, "\xc3\xa9", 2);
    big[2 * n] = '\0';
    sq_job job;
    init_valid(&job, "{\"class\":\"A\",\"args\":[]}");
    sq_job_fail(&job, "E", "%s", big);
    ck_assert_uint_eq(strlen(job.outcome.error_message), 2 * n);
    sq_outcome_cut(&job.outcome);
    ck_assert_uint_eq(strlen(job.outcome.error_message), 2 * SQ_ERROR_MESSAGE_MAX);
    ck_assert_uint_eq(utf8_chars(job.outcome.error_message), SQ_ERROR_MESSAGE_MAX);
    /* The rewritten payload carries it intact. */
    json_t *o;
    sq_retry_plan plan = plan_for(&job, 25, 0, &o);
    ck_assert_uint_eq(utf8_chars(str_member(o, "error_message")), SQ_ERROR_MESSAGE_MAX);
    json_decref(o);
    sq_retry_plan_destroy(&plan);
    sq_job_destroy(&job);
    /* Long ASCII, with invalid bytes counted as one character each. */
    memset(big, 'x', 2 * n);
    big[5] = '\xff';
    init_valid(&job, "{\"class\":\"A\",\"args\":[]}");
    sq_job_fail(&job, "E", "%s%s", big, "tail");
    sq_outcome_cut(&job.outcome);
    ck_assert_uint_eq(utf8_chars(job.outcome.error_message), SQ_ERROR_MESSAGE_MAX);
    ck_assert_uint_eq(strlen(job.outcome.error_message), SQ_ERROR_MESSAGE_MAX + 2);
    ck_assert_mem_eq(job.outcome.error_message, "xxxxx\xef\xbf\xbdxx", 10);
    sq_job_destroy(&job);
    free(big);
}
END_TEST

START_TEST(test_dispositions)
{
    sq_job job;
    init_valid(&job, "{\"class\":\"A\",\"args\":[]}");
    sq_job_kill(&job); /* harmless without a failure */
    sq_job_discard(&job);
    sq_job_retry_in(&job, 5);
    ck_assert(!job.outcome.failed);
    sq_job_fail(&job, NULL, "x");
    sq_job_retry_in(&job, 30);
    ck_assert_int_eq(job.outcome.disposition, SQ_DISP_RETRY_IN);
    ck_assert_double_eq(job.outcome.retry_in, 30);
    sq_job_kill(&job);
    ck_assert_int_eq(job.outcome.disposition, SQ_DISP_KILL);
    sq_job_discard(&job);
    ck_assert_int_eq(job.outcome.disposition, SQ_DISP_DISCARD);
    sq_job_destroy(&job);
    sq_job_kill(NULL);
    sq_job_discard(NULL);
    sq_job_retry_in(NULL, 1);
    ck_assert_int_eq(sq_job_fail(NULL, NULL, "x"), SQ_FAILED);
}
END_TEST

START_TEST(test_outcome_direct)
{
    sq_outcome o = {0};
    sq_outcome_fail(&o, NULL, NULL);
    ck_assert_str_eq(o.error_class, "Squire::Error");
    ck_assert_str_eq(o.error_message, "");
    sq_outcome_fail(&o, "X", "y");
    ck_assert_str_eq(o.error_class, "Squire::Error");
    sq_outcome_destroy(&o);
    ck_assert(!o.failed);
}
END_TEST

static Suite *job_suite(void)
{
    Suite *s = suite_create("job");
    TCase *tc = tcase_create("bad_input");
    LOOP(tc, test_not_json, not_json);
    tcase_add_test(tc, test_not_object_reason);
    tcase_add_test(tc, test_huge_payload);
    tcase_add_test(tc, test_payload_at_limit);
    tcase_add_test(tc, test_deep_nesting);
    tcase_add_test(tc, test_depth_limit_exact);
    tcase_add_test(tc, test_brackets_in_strings_do_not_nest);
    tcase_add_test(tc, test_wide_array);
    tcase_add_test(tc, test_wide_object);
    tcase_add_test(tc, test_element_count_exact);
    tcase_add_test(tc, test_raw_nul);
    tcase_add_test(tc, test_escaped_nul);
    LOOP(tc, test_bad_shape, bad_shape);
    tcase_add_test(tc, test_invalid_payload_keeps_text);
    tcase_add_test(tc, test_huge_integers);
    tcase_add_test(tc, test_huge_integer_with_bad_json);
    tcase_set_timeout(tc, 60);
    suite_add_tcase(s, tc);
    tc = tcase_create("valid");
    tcase_add_test(tc, test_accessors);
    tcase_add_test(tc, test_empty_args);
    tcase_add_test(tc, test_jid);
    LOOP(tc, test_retry_count_read, retry_counts);
    tcase_add_test(tc, test_whitespace_and_unicode_payload);
    tcase_add_test(tc, test_null_limits_and_queue);
    tcase_add_test(tc, test_activejob_rails_payload);
    tcase_add_test(tc, test_activejob_sidekiq8_wrapper);
    tcase_add_test(tc, test_activejob_not_a_hash);
    suite_add_tcase(s, tc);
    tc = tcase_create("fail");
    tcase_add_test(tc, test_fail_basics);
    tcase_add_test(tc, test_fail_default_class);
    tcase_add_test(tc, test_fail_message_cap);
    tcase_add_test(tc, test_dispositions);
    tcase_add_test(tc, test_outcome_direct);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return sqt_run(job_suite());
}
