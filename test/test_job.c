/*
 * test_job.c: the job module: validation of fetched payloads (reliability.md
 * §6 rows 1-20), the handler API, text splicing, and Sidekiq's retry rules
 * (sidekiq-wire.md §6). Pure: no Redis.
 */
#include <check.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "job.h"
#include "payload.h"

#define NOW 1700000000.5

/* ---- helpers ------------------------------------------------------------------ */

static char reason[256];

/* Init job from len bytes of s (copied: the job takes its own malloc'd copy). */
static sq_job_status init_mem(sq_job *job, const char *s, size_t len, const sq_job_limits *lim)
{
    char *raw = malloc(len + 1);
    ck_assert_ptr_nonnull(raw);
    memcpy(raw, s, len);
    raw[len] = '\0';
    sq_job_status st = SQ_JOB_VALID;
    ck_assert_int_eq(sq_job_init(job, raw, len, "critical", lim, &st, reason, sizeof reason), 0);
    ck_assert_ptr_eq(job->raw, raw);
    ck_assert_uint_eq(job->raw_len, len);
    return st;
}

static sq_job_status init_str(sq_job *job, const char *s)
{
    return init_mem(job, s, strlen(s), NULL);
}

/* Init a job that must be valid. */
static void init_valid(sq_job *job, const char *s)
{
    sq_job_status st = init_str(job, s);
    ck_assert_msg(st == SQ_JOB_VALID, "%s: status %d (%s)", s, (int)st, reason);
}

static unsigned rnd_zero(unsigned n, void *st)
{
    (void)n;
    (void)st;
    return 0;
}

static unsigned rnd_fixed(unsigned n, void *st)
{
    unsigned v = *(const unsigned *)st;
    ck_assert_uint_eq(n, 10);
    return v;
}

/* Parse rewritten text, which must be a JSON object. New reference. */
static json_t *parse_object(const char *s, size_t len)
{
    json_error_t err;
    json_t *v = json_loadb(s, len, JSON_ALLOW_NUL, &err);
    ck_assert_msg(v != NULL, "output does not parse: %s: %.*s", err.text, (int)len, s);
    ck_assert(json_is_object(v));
    return v;
}

/* Parse a rewritten job payload the way squire reads it (numbers beyond
 * int64 or double included). New reference. */
static json_t *parse_job(const char *s, size_t len)
{
    sq_job job;
    char *raw = malloc(len + 1);
    memcpy(raw, s, len);
    raw[len] = '\0';
    sq_job_status st;
    ck_assert_int_eq(sq_job_init(&job, raw, len, "q", NULL, &st, reason, sizeof reason), 0);
    ck_assert_msg(st == SQ_JOB_VALID, "rewrite is not a valid job (%s): %.*s", reason, (int)len, s);
    json_t *o = json_incref(job.payload);
    sq_job_destroy(&job);
    return o;
}

static const char *str_member(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    ck_assert_msg(s != NULL, "%s is not a string", key);
    return s;
}

static char *splice_str(const char *raw, const sq_json_member *set, size_t nset,
                        const char *const *remove, size_t nremove)
{
    size_t len = 0;
    char *out = sq_json_splice(raw, strlen(raw), set, nset, remove, nremove, &len);
    if (out != NULL) {
        ck_assert_uint_eq(strlen(out), len);
        json_decref(parse_object(out, len));
    }
    return out;
}

static void assert_splice(const char *raw, const sq_json_member *set, size_t nset,
                          const char *const *remove, size_t nremove, const char *want)
{
    char *out = splice_str(raw, set, nset, remove, nremove);
    ck_assert_ptr_nonnull(out);
    ck_assert_str_eq(out, want);
    free(out);
}

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

/* A failed job and its plan; the plan payload is parsed into *out when set. */
static sq_retry_plan plan_for(sq_job *job, int max_retries, unsigned rnd_value, json_t **out)
{
    sq_retry_plan plan;
    ck_assert_int_eq(sq_retry_plan_make(job, NOW, max_retries, rnd_fixed, &rnd_value, &plan), 0);
    if (plan.action == SQ_RETRY_DROP)
        ck_assert_ptr_null(plan.payload);
    else
        ck_assert_ptr_nonnull(plan.payload);
    if (plan.payload != NULL) {
        /* Every rewrite is a valid job and keeps every key of the original. */
        json_t *o = parse_job(plan.payload, plan.payload_len);
        const char *key;
        json_t *v;
        json_object_foreach(sq_job_payload(job), key, v)
            ck_assert_msg(json_object_get(o, key) != NULL, "%s lost in %s", key, plan.payload);
        if (out != NULL)
            *out = o;
        else
            json_decref(o);
    } else if (out != NULL) {
        *out = NULL;
    }
    return plan;
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

/* ---- splice ----------------------------------------------------------------- */

START_TEST(test_splice_keeps_text)
{
    sq_json_member set[] = {{"class", "\"B\""}};
    assert_splice("{\"a\":1.10,\"b\":1e2,\"c\":[1,{\"x\":\"}\"}],\"class\":\"A\",\"d\":-0.0}", set, 1,
                  NULL, 0, "{\"a\":1.10,\"b\":1e2,\"c\":[1,{\"x\":\"}\"}],\"class\":\"B\",\"d\":-0.0}");
}
END_TEST

START_TEST(test_splice_in_place_and_append)
{
    sq_json_member set[] = {{"queue", "\"y\""}, {"retry_count", "0"}, {"failed_at", "1.500000"}};
    assert_splice("{\"a\":1,\"queue\":\"x\",\"b\":2}", set, 3, NULL, 0,
                  "{\"a\":1,\"queue\":\"y\",\"b\":2,\"retry_count\":0,\"failed_at\":1.500000}");
}
END_TEST

START_TEST(test_splice_remove)
{
    const char *const rm[] = {"at", "enqueued_at"};
    assert_splice("{\"at\":1,\"a\":2,\"at\":3,\"enqueued_at\":4.5}", NULL, 0, rm, 2, "{\"a\":2}");
    assert_splice("{\"at\":1}", NULL, 0, rm, 2, "{}");
    sq_json_member set[] = {{"enqueued_at", "9.000000"}};
    assert_splice("{\"at\":1,\"a\":2}", set, 1, rm, 1, "{\"a\":2,\"enqueued_at\":9.000000}");
}
END_TEST

START_TEST(test_splice_duplicates)
{
    sq_json_member set[] = {{"q", "9"}};
    assert_splice("{\"q\":1,\"a\":2,\"q\":3}", set, 1, NULL, 0, "{\"q\":9,\"a\":2}");
    /* Unowned duplicates are kept as they were. */
    assert_splice("{\"z\":1,\"z\":2}", set, 1, NULL, 0, "{\"z\":1,\"z\":2,\"q\":9}");
    /* A key given twice in set is written once, with its first value. */
    sq_json_member twice[] = {{"k", "1"}, {"k", "2"}};
    assert_splice("{}", twice, 2, NULL, 0, "{\"k\":1}");
    assert_splice("{\"k\":0}", twice, 2, NULL, 0, "{\"k\":1}");
}
END_TEST

START_TEST(test_splice_escaped_keys)
{
    sq_json_member set[] = {{"queue", "\"y\""}};
    assert_splice("{\"\\u0071ueue\":\"x\",\"queu\\u0065\":\"z\"}", set, 1, NULL, 0,
                  "{\"\\u0071ueue\":\"y\"}");
    sq_json_member quote[] = {{"a\"b\\c/\n", "1"}};
    assert_splice("{\"a\\\"b\\\\c\\/\\n\":0}", quote, 1, NULL, 0, "{\"a\\\"b\\\\c\\/\\n\":1}");
    /* Appended keys are quoted. */
    assert_splice("{}", quote, 1, NULL, 0, "{\"a\\\"b\\\\c/\\n\":1}");
    /* Non-ASCII keys, escaped as a surrogate pair or not. */
    sq_json_member emoji[] = {{"\xf0\x9f\x98\x80", "2"}};
    assert_splice("{\"\\ud83d\\ude00\":1}", emoji, 1, NULL, 0, "{\"\\ud83d\\ude00\":2}");
    assert_splice("{\"\xf0\x9f\x98\x80\":1}", emoji, 1, NULL, 0, "{\"\xf0\x9f\x98\x80\":2}");
    /* A key that is a prefix or extension does not match. */
    assert_splice("{\"queues\":1,\"queu\":2}", set, 1, NULL, 0,
                  "{\"queues\":1,\"queu\":2,\"queue\":\"y\"}");
}
END_TEST

START_TEST(test_splice_whitespace)
{
    sq_json_member set[] = {{"b", "3"}};
    assert_splice(" \n{ \"a\" : 1 ,\t\"b\"\r\n:\n2 , \"c\": [ 1 , 2 ] } \n", set, 1, NULL, 0,
                  "{\"a\" : 1,\"b\":3,\"c\": [ 1 , 2 ]}");
    assert_splice("{ }", NULL, 0, NULL, 0, "{}");
    assert_splice("{}", set, 1, NULL, 0, "{\"b\":3}");
    assert_splice("\t{\n}\n", set, 1, NULL, 0, "{\"b\":3}");
}
END_TEST

START_TEST(test_splice_nested_strings)
{
    sq_json_member set[] = {{"t", "true"}};
    assert_splice("{\"s\":\"}{][\\\"\\\\\",\"t\":{\"u\":\"}\",\"v\":[\"]\",{}]},\"w\":\"\\\\\"}", set,
                  1, NULL, 0, "{\"s\":\"}{][\\\"\\\\\",\"t\":true,\"w\":\"\\\\\"}");
    /* Values of every type are skipped whole. */
    sq_json_member z[] = {{"z", "null"}};
    assert_splice("{\"a\":true,\"b\":false,\"c\":null,\"d\":-1.5E+3,\"e\":\"\",\"f\":[],\"g\":{}}", z,
                  1, NULL, 0,
                  "{\"a\":true,\"b\":false,\"c\":null,\"d\":-1.5E+3,\"e\":\"\",\"f\":[],\"g\":{},"
                  "\"z\":null}");
}
END_TEST

static const char *const splice_malformed[] = {
    "",
    "   ",
    "[]",
    "\"x\"",
    "{",
    "{\"a\":1",
    "{\"a\" 1}",
    "{\"a\":}",
    "{\"a\":1,}",
    "{,}",
    "{a:1}",
    "{\"a\":1} x",
    "{\"a\":1}}",
    "{\"a\":\"unterminated}",
    "{\"a\":[1,2}",
    "{\"a\":1 \"b\":2}",
    "{\"\\x\":1}",
    "{\"\\u00zz\":1}",
};

START_TEST(test_splice_malformed)
{
    sq_json_member set[] = {{"k", "1"}};
    size_t len = 99;
    const char *s = splice_malformed[_i];
    ck_assert_ptr_null(sq_json_splice(s, strlen(s), set, 1, NULL, 0, &len));
}
END_TEST

START_TEST(test_splice_length_aware)
{
    /* Only raw_len bytes are read: what follows is ignored. */
    const char *s = "{\"a\":1}garbage";
    size_t len;
    char *out = sq_json_splice(s, 7, NULL, 0, NULL, 0, &len);
    ck_assert_str_eq(out, "{\"a\":1}");
    free(out);
}
END_TEST

/* ---- text helpers -------------------------------------------------------------- */

START_TEST(test_quote)
{
    char *q = sq_json_quote("a\"b\\c\n\t\r\b\f\x01\x1f/\x7f\xc3\xa9", 16);
    ck_assert_str_eq(q, "\"a\\\"b\\\\c\\n\\t\\r\\b\\f\\u0001\\u001f/\x7f\xc3\xa9\"");
    free(q);
    q = sq_json_quote("a\0b\xff", 4);
    ck_assert_str_eq(q, "\"a\\u0000b\xef\xbf\xbd\"");
    free(q);
    q = sq_json_quote("", 0);
    ck_assert_str_eq(q, "\"\"");
    free(q);
}
END_TEST

START_TEST(test_scrub)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"plain", "plain"},
        {"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"},
        {"a\xff"
         "b",
         "a\xef\xbf\xbd"
         "b"},
        {"\xe3\x81", "\xef\xbf\xbd"},                                 /* truncated: one U+FFFD */
        {"\xe3\x81x", "\xef\xbf\xbdx"},                               /* cut short by x */
        {"\xc0\x80", "\xef\xbf\xbd\xef\xbf\xbd"},                     /* overlong NUL */
        {"\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},     /* a surrogate */
        {"\xf4\x90\x80\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"}, /* > U+10FFFF */
        {"\x80", "\xef\xbf\xbd"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *s = sq_utf8_scrub(cases[i].in, strlen(cases[i].in), SIZE_MAX);
        ck_assert_str_eq(s, cases[i].out);
        free(s);
    }
    char *s = sq_utf8_scrub("\xc3\xa9\xc3\xa9\xff\xc3\xa9", 7, 3); /* counts characters */
    ck_assert_str_eq(s, "\xc3\xa9\xc3\xa9\xef\xbf\xbd");
    free(s);
    s = sq_utf8_scrub(NULL, 0, 10);
    ck_assert_str_eq(s, "");
    free(s);
}
END_TEST

START_TEST(test_format_time)
{
    char buf[32];
    ck_assert_str_eq(sq_format_time(1700000000.0, buf), "1700000000.000000");
    ck_assert_str_eq(sq_format_time(1795346311.829032, buf), "1795346311.829032");
    ck_assert_str_eq(sq_format_time(0, buf), "0.000000");
    ck_assert_str_eq(sq_format_time(NAN, buf), "0.000000");
    ck_assert_str_eq(sq_format_time(INFINITY, buf), "0.000000");
    double samples[] = {1, 1.5, -3, 1e12, 1e300, -1e300};
    for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++) {
        sq_format_time(samples[i], buf);
        ck_assert_msg(strchr(buf, '.') != NULL, "%s", buf);
        json_t *v = json_loads(buf, JSON_DECODE_ANY, NULL);
        ck_assert(json_is_real(v));
        json_decref(v);
    }
}
END_TEST

START_TEST(test_json_time)
{
    json_t *o = json_loads("{\"f\":1700000000.25,\"ms\":1700000000250,\"s\":1700000000,"
                           "\"str\":\"2024-01-01\",\"neg\":-5,\"null\":null}",
                           0, NULL);
    ck_assert_double_eq(sq_json_time(json_object_get(o, "f")), 1700000000.25);
    ck_assert_double_eq(sq_json_time(json_object_get(o, "ms")), 1700000000.25);
    ck_assert_double_eq(sq_json_time(json_object_get(o, "s")), 1700000000.0);
    ck_assert_double_eq(sq_json_time(json_object_get(o, "str")), -1);
    ck_assert_double_eq(sq_json_time(json_object_get(o, "null")), -1);
    ck_assert_double_eq(sq_json_time(json_object_get(o, "missing")), -1);
    ck_assert_double_eq(sq_json_time(NULL), -1);
    json_decref(o);
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

/* ---- the suite ---------------------------------------------------------------- */

#define LOOP(tc, fn, arr) tcase_add_loop_test(tc, fn, 0, (int)(sizeof(arr) / sizeof((arr)[0])))

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

    tc = tcase_create("text");
    tcase_add_test(tc, test_splice_keeps_text);
    tcase_add_test(tc, test_splice_in_place_and_append);
    tcase_add_test(tc, test_splice_remove);
    tcase_add_test(tc, test_splice_duplicates);
    tcase_add_test(tc, test_splice_escaped_keys);
    tcase_add_test(tc, test_splice_whitespace);
    tcase_add_test(tc, test_splice_nested_strings);
    LOOP(tc, test_splice_malformed, splice_malformed);
    tcase_add_test(tc, test_splice_length_aware);
    tcase_add_test(tc, test_quote);
    tcase_add_test(tc, test_scrub);
    tcase_add_test(tc, test_format_time);
    tcase_add_test(tc, test_json_time);
    suite_add_tcase(s, tc);

    tc = tcase_create("fail");
    tcase_add_test(tc, test_fail_basics);
    tcase_add_test(tc, test_fail_default_class);
    tcase_add_test(tc, test_fail_message_cap);
    tcase_add_test(tc, test_dispositions);
    tcase_add_test(tc, test_outcome_direct);
    suite_add_tcase(s, tc);

    tc = tcase_create("retry");
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
    SRunner *sr = srunner_create(job_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
