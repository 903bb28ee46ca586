/*
 * test_json_text.c: JSON text helpers (json_text.c): splicing members into
 * a payload's original bytes, quoting, UTF-8 scrubbing and Sidekiq's
 * timestamps. Pure: no Redis.
 */
#include "unit.h"


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


static Suite *json_text_suite(void)
{
    Suite *s = suite_create("json_text");
    TCase *tc = tcase_create("text");
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
    return s;
}

int main(void)
{
    return sqt_run(json_text_suite());
}
