/*
 * test_json_parse.c: sq_json_parse against json_loadb (jansson 2.14, the
 * flags squire parses payloads with). Whatever sq_json_parse accepts,
 * json_loadb must accept with an equal tree (same types, values, key order);
 * whatever json_loadb accepts, sq_json_parse must accept too, except text
 * with a raw NUL byte, which sq_json_parse always refuses (lib/job.c then
 * falls back to json_loadb). A hand-written corpus states each rule; a
 * mutation fuzzer with a fixed seed looks for disagreements. Pure: no Redis.
 */
#include <check.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_parse.h"

#define FLAGS (JSON_ALLOW_NUL | JSON_DECODE_ANY)
#define FUZZ_ITERATIONS 200000
#define FUZZ_MAX_LEN 4096

/* ---- comparing the two parsers ---------------------------------------------------- */

typedef enum verdict {
    BOTH_REJECT = 0,
    BOTH_ACCEPT,
    ONLY_JANSSON, /* allowed only with a raw NUL byte in the text */
} verdict;

/* s as C-escaped text for failure messages (static buffer, truncated). */
static const char *show(const char *s, size_t n)
{
    static char out[2048];
    size_t o = 0;
    for (size_t i = 0; i < n && o + 8 < sizeof out; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f && c != '\\')
            out[o++] = (char)c;
        else
            o += (size_t)snprintf(out + o, sizeof out - o, "\\x%02x", c);
    }
    out[o] = '\0';
    return out;
}

/* Same types, values and key order all the way down: stricter than
 * json_equal, which ignores key order and takes 0.0 == -0.0. */
static bool same_tree(const json_t *a, const json_t *b)
{
    if (json_typeof(a) != json_typeof(b))
        return false;
    switch (json_typeof(a)) {
    case JSON_OBJECT: {
        if (json_object_size(a) != json_object_size(b))
            return false;
        void *ia = json_object_iter((json_t *)a), *ib = json_object_iter((json_t *)b);
        for (; ia != NULL && ib != NULL; ia = json_object_iter_next((json_t *)a, ia),
                                         ib = json_object_iter_next((json_t *)b, ib)) {
            size_t n = json_object_iter_key_len(ia);
            if (n != json_object_iter_key_len(ib) ||
                memcmp(json_object_iter_key(ia), json_object_iter_key(ib), n) != 0 ||
                !same_tree(json_object_iter_value(ia), json_object_iter_value(ib)))
                return false;
        }
        return ia == NULL && ib == NULL;
    }
    case JSON_ARRAY:
        if (json_array_size(a) != json_array_size(b))
            return false;
        for (size_t i = 0; i < json_array_size(a); i++)
            if (!same_tree(json_array_get(a, i), json_array_get(b, i)))
                return false;
        return true;
    case JSON_STRING:
        return json_string_length(a) == json_string_length(b) &&
               memcmp(json_string_value(a), json_string_value(b), json_string_length(a)) == 0;
    case JSON_INTEGER:
        return json_integer_value(a) == json_integer_value(b);
    case JSON_REAL:
        return json_real_value(a) == json_real_value(b) &&
               signbit(json_real_value(a)) == signbit(json_real_value(b));
    default:
        return true; /* true, false, null */
    }
}

/* Parse s both ways and check they agree; returns how. */
static verdict compare(const char *s, size_t n)
{
    json_error_t jerr, serr;
    json_t *j = json_loadb(s, n, FLAGS, &jerr);
    json_t *q = sq_json_parse(s, n, &serr);
    verdict v = BOTH_REJECT;
    if (q != NULL) {
        ck_assert_msg(j != NULL, "sq_json_parse accepts what json_loadb rejects (%s): \"%s\"",
                      jerr.text, show(s, n));
        ck_assert_msg(json_equal(j, q), "trees differ: \"%s\"", show(s, n));
        ck_assert_msg(same_tree(j, q), "types, values or key order differ: \"%s\"", show(s, n));
        v = BOTH_ACCEPT;
    } else if (j != NULL) {
        ck_assert_msg(memchr(s, '\0', n) != NULL,
                      "json_loadb accepts what sq_json_parse rejects: \"%s\"", show(s, n));
        v = ONLY_JANSSON;
    }
    if (q == NULL) {
        ck_assert_int_eq(json_error_code(&serr), json_error_unknown);
        ck_assert_int_ge(serr.position, 0);
        ck_assert_int_le(serr.position, (int)n);
    }
    json_decref(j);
    json_decref(q);
    return v;
}

/* ---- the corpus --------------------------------------------------------------------- */

typedef struct sample {
    const char *s;
    size_t n;
    verdict want;
} sample;

/* clang-format off */
#define OK(lit) {lit, sizeof(lit) - 1, BOTH_ACCEPT}
#define BAD(lit) {lit, sizeof(lit) - 1, BOTH_REJECT}
#define NUL_QUIRK(lit) {lit, sizeof(lit) - 1, ONLY_JANSSON}

static const sample corpus[] = {
    /* Sidekiq payloads */
    OK("{\"retry\":true,\"queue\":\"default\",\"class\":\"NoopJob\",\"args\":[1],"
       "\"jid\":\"1bb810a22e3f0632530a0cc8\",\"created_at\":1763823874.1234567,"
       "\"enqueued_at\":1763823874.1234567}"),
    OK("{\"class\":\"HardJob\",\"args\":[\"bob\",3,{\"nested\":[1,2.5,null,true,{\"k\":\"v\"}]}],"
       "\"retry\":5,\"queue\":\"critical\",\"backtrace\":true,\"jid\":\"b4a577edbccf1d805744efa2\","
       "\"created_at\":1700000000.123456,\"enqueued_at\":1700000000.1234567,\"retry_count\":2,"
       "\"error_message\":\"undefined method `foo' for nil:NilClass\",\"error_class\":"
       "\"NoMethodError\",\"failed_at\":1700000001.5,\"retried_at\":1700000100.25}"),
    OK("{\"class\":\"ActiveJob::QueueAdapters::SidekiqAdapter::JobWrapper\",\"wrapped\":"
       "\"SignupMailer\",\"queue\":\"mailers\",\"args\":[{\"job_class\":\"SignupMailer\","
       "\"job_id\":\"0f3b6c1e-7d1a-4c4e-9a51-2f4c2b8d9e10\",\"provider_job_id\":null,"
       "\"queue_name\":\"mailers\",\"priority\":null,\"arguments\":[\"welcome\",{\"_aj_globalid\":"
       "\"gid://app/User/42\"},{\"_aj_symbol_keys\":[]}],\"executions\":0,"
       "\"exception_executions\":{},\"locale\":\"en\",\"timezone\":\"UTC\",\"enqueued_at\":"
       "\"2023-11-14T22:13:20Z\"}],\"retry\":true,\"jid\":\"a3c1e2\",\"created_at\":1700000000.5,"
       "\"enqueued_at\":1700000000.5}"),
    OK("{\"class\":\"NotifyJob\",\"args\":[\"Zo\\u00eb \\ud83d\\ude00\",\"\xc3\xbcn\xc3\xaf"
       "c\xc3\xb6"
       "d\xc3\xa9 \xf0\x9f\x98\x80\",\"line1\\nline2\\t\\\"quoted\\\" \\\\ back\\/slash\","
       "\"\\u0000nul\"],\"jid\":\"x\"}"),
    OK("{\"class\":\"J\",\"args\":[9223372036854775807,-9223372036854775808],\"created_at\":"
       "1700000000123,\"enqueued_at\":1700000000123,\"retry_count\":0}"),
    OK("{\"retry\":false,\"queue\":\"low\",\"class\":\"Deep\",\"args\":[[[[[[\"deep\"]]]]]],"
       "\"jid\":\"z\",\"tags\":[\"a\",\"b\"],\"cattr\":{\"tenant\":\"acme\"},\"at\":1.5e9}"),
    BAD("{\"class\":\"BigJob\",\"args\":[12345678901234567890],\"jid\":\"y\"}"),
    BAD("{\"class\":\"J\",\"args\":[],\"x\":1e400}"),
    BAD("{\"class\":\"J\",\"args\":[1,],\"jid\":\"j\"}"),
    BAD("{\"class\":\"J\",\"args\":[1]"),
    /* structure and whitespace */
    OK("{}"), OK("[]"), OK("\"\""),
    OK(" \t\n\r{ \t\n\r\"a\" \t\n\r: \t\n\r1 \t\n\r, \"b\" : [ 1 , 2 ] }\r\n\t "),
    OK("[1,\"a\",true,false,null,{},[],1.5,-0]"), OK("[[[[]]]]"),
    OK("{\"a\":{\"b\":{\"c\":[1,[2,[3]]]}}}"),
    OK("{\"a\":1,\"a\":2}"), OK("{\"a\":1,\"b\":2,\"a\":{\"c\":3}}"), OK("{\"\":1}"),
    OK("{\"\\u0041\":1,\"\\n\":2,\"a\\\"b\":3,\"\xc3\xa9\":4}"),
    OK("{\"a\":1,\"b\":2,\"c\":3,\"d\":4,\"e\":5,\"f\":6,\"g\":7,\"h\":8,\"i\":9,"
       "\"j\":10,\"k\":11}"),
    OK("[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17]"),
    BAD(""), BAD(" "), BAD("\r\n"), BAD("{"), BAD("}"), BAD("["), BAD("]"), BAD("[1,]"),
    BAD("{\"a\":1,}"), BAD("{,}"), BAD("[,]"), BAD("[,1]"), BAD("{\"a\"}"), BAD("{\"a\":}"),
    BAD("{\"a\" 1}"), BAD("{a:1}"), BAD("{'a':1}"), BAD("{\"a\":1 \"b\":2}"), BAD("[1 2]"),
    BAD("{} {}"), BAD("[] x"), BAD("1 2"), BAD("\"a\" \"b\""), BAD("{\"a\":1]"), BAD("[1}"),
    BAD("{\"a\":1}}"), BAD("[[]"), BAD("[]]"), BAD("{1:2}"), BAD("{null:1}"), BAD("[1:2]"),
    BAD("/* c */ {}"), BAD("// c\n{}"), BAD("\x0b" "1"), BAD("\x0c" "1"), BAD("\xc2\xa0" "1"),
    BAD("\xef\xbb\xbf{}"), BAD("\xc3\xa9"), BAD("[\xc3\xa9]"), BAD("{\"a\":1}\x80"),
    /* numbers */
    OK("0"), OK("-0"), OK("1"), OK("-1"), OK("123"), OK("0.5"), OK("-0.0"), OK("1e5"), OK("1E5"),
    OK("1e+5"), OK("1e-5"), OK("1.5E-10"), OK("0e0"), OK("-0e-0"), OK("0E+00"),
    OK("9223372036854775807"), OK("-9223372036854775808"), OK("1700000000.123456"),
    OK("1763823874.1234567"), OK("1e-400"), OK("-1e-400"), OK("4.9e-324"), OK("2.5e-324"),
    OK("1.7976931348623157e308"), OK("123456789012345678901234567890.5"), OK("1e308"), OK("0.1"),
    OK("100000000000000000000000e-10"), OK("[-1,-0.5,-1e-2]"), OK("[1e5,2]"), OK("{\"a\":-0}"),
    BAD("01"), BAD("-01"), BAD("00"), BAD("+1"), BAD(".5"), BAD("1."), BAD("-"), BAD("-.5"),
    BAD("1e"), BAD("1e+"), BAD("1E-"), BAD("1.e5"), BAD("0x1F"), BAD("1..2"), BAD("1.5.3"),
    BAD("--1"), BAD("-a"), BAD("Infinity"), BAD("-Infinity"), BAD("NaN"),
    BAD("9223372036854775808"), BAD("-9223372036854775809"), BAD("99999999999999999999"),
    BAD("1e400"), BAD("-1E400"),
    BAD("1.8e308"), BAD("[1e999]"), BAD("1_000"), BAD("1,5"), BAD("1e5e5"), BAD("1-2"), BAD("[1.]"),
    BAD("[-]"), BAD("[01]"),
    /* literals */
    OK("true"), OK("false"), OK("null"), OK(" [true, false ,null] "),
    BAD("tru"), BAD("truex"), BAD("True"), BAD("NULL"), BAD("nul"), BAD("falsey"), BAD("[true1]"),
    BAD("[nullnull]"), BAD("t"), BAD("undefined"), BAD("true false"),
    /* strings */
    OK("\"abc\""), OK("\"\\\" \\\\ \\/ \\b \\f \\n \\r \\t\""),
    OK("\"\\u0041\\u00e9\\u4E2D\\uD834\\uDD1E\\u00E9\""), OK("\"\\u0000\""), OK("\"a\\u0000b\""),
    OK("\"\xc3\xa9\xe4\xb8\xad\xf0\x9d\x84\x9e\""),
    OK("\"\\uFFFF\\uffff\\uE000\\u007f\\u0080\\u07FF\\u0800\""),
    OK("\"\x7f\""), OK("\"\\uDBFF\\uDFFF\\uD800\\uDC00\""), OK("\"\xf4\x8f\xbf\xbf\""),
    OK("\"\xef\xbf\xbf\""), OK("\"\xed\x9f\xbf\""), OK("\"\xee\x80\x80\""), OK("\"\xc2\x80\""),
    OK("\"\xdf\xbf\""), OK("\"\xe0\xa0\x80\""), OK("\"\xf0\x90\x80\x80\""), OK("\"'\""),
    OK("\"{}[],:\""),
    BAD("\"abc"), BAD("\"\\\""), BAD("\"\\"), BAD("\""), BAD("\"\\x\""), BAD("\"\\a\""),
    BAD("\"\\'\""), BAD("\"\\u12\""), BAD("\"\\u12G4\""), BAD("\"\\u\""), BAD("\"\\U0041\""),
    BAD("\"\\uD834\""), BAD("\"\\uDD1E\""), BAD("\"\\uD834\\u0041\""), BAD("\"\\uD834\\n\""),
    BAD("\"\\uD834x\""), BAD("\"\\uD834\\uD834\""), BAD("\"\\uD834\\uDD1\""), BAD("\"\\uD834\\"),
    BAD("\"\\uDBFF\\uE000\""), BAD("\"a\tb\""), BAD("\"a\nb\""), BAD("\"\x01\""), BAD("\"\x1f\""),
    BAD("\"a\0b\""), BAD("\"\x80\""), BAD("\"\xbf\""), BAD("\"\xc0\x80\""), BAD("\"\xc1\xbf\""),
    BAD("\"\xe0\x80\x80\""), BAD("\"\xe0\x9f\xbf\""), BAD("\"\xed\xa0\x80\""),
    BAD("\"\xed\xbf\xbf\""),
    BAD("\"\xf0\x80\x80\x80\""), BAD("\"\xf0\x8f\xbf\xbf\""), BAD("\"\xf4\x90\x80\x80\""),
    BAD("\"\xf5\x80\x80\x80\""), BAD("\"\xf8\x88\x80\x80\x80\""), BAD("\"\xfe\""), BAD("\"\xff\""),
    BAD("\"\xc3\""), BAD("\"\xe4\xb8\""), BAD("\"\xf0\x9d\x84\""), BAD("\"\xc3\x28\""),
    BAD("\"\xe4\x28\xad\""), BAD("\"\xc3"), BAD("\"\\\xc3\xa9\""), BAD("'a'"),
    /* keys may not hold U+0000 (json_error_null_byte_in_key) */
    BAD("{\"a\\u0000b\":1}"), BAD("{\"\\u0000\":1}"), OK("{\"a\":\"\\u0000\"}"),
    /* raw NUL bytes: jansson 2.14 skips one after a number or a literal */
    NUL_QUIRK("1\0"), NUL_QUIRK("true\0"), NUL_QUIRK("[1\0,2]"), NUL_QUIRK("{\"a\":null\0}"),
    NUL_QUIRK("-0.5e3\0 "),
    BAD("\0"), BAD("[\0]"), BAD("{}\0"), BAD("\"\"\0"), BAD("1\0\0"), BAD("\0" "1"),
    BAD("[1,\0 2]"),
};
/* clang-format on */

#define NCORPUS (sizeof corpus / sizeof corpus[0])

START_TEST(test_corpus)
{
    const sample *c = &corpus[_i];
    verdict got = compare(c->s, c->n);
    ck_assert_msg(got == c->want, "\"%s\": verdict %d, want %d", show(c->s, c->n), (int)got,
                  (int)c->want);
}
END_TEST

/* ---- built cases: long text, deep nesting ---------------------------------------------- */

/* open/close repeated depth times around mid. Caller frees. */
static char *nest(const char *open, const char *mid, const char *close, size_t depth, size_t *n)
{
    size_t lo = strlen(open), lm = strlen(mid), lc = strlen(close);
    char *s = malloc(depth * (lo + lc) + lm + 1), *o = s;
    ck_assert_ptr_nonnull(s);
    for (size_t i = 0; i < depth; i++, o += lo)
        memcpy(o, open, lo);
    memcpy(o, mid, lm);
    o += lm;
    for (size_t i = 0; i < depth; i++, o += lc)
        memcpy(o, close, lc);
    *o = '\0';
    *n = (size_t)(o - s);
    return s;
}

static void check_nest(const char *open, const char *mid, const char *close, size_t depth,
                       verdict want)
{
    size_t n;
    char *s = nest(open, mid, close, depth, &n);
    ck_assert_msg(compare(s, n) == want, "%s%s%s x %zu", open, mid, close, depth);
    free(s);
}

/* jansson counts every value: 2048 containers, or 2047 around a scalar. */
START_TEST(test_depth_limit)
{
    check_nest("[", "", "]", SQ_JSON_PARSE_MAX_DEPTH, BOTH_ACCEPT);
    check_nest("[", "", "]", SQ_JSON_PARSE_MAX_DEPTH + 1, BOTH_REJECT);
    check_nest("[", "1", "]", SQ_JSON_PARSE_MAX_DEPTH - 1, BOTH_ACCEPT);
    check_nest("[", "1", "]", SQ_JSON_PARSE_MAX_DEPTH, BOTH_REJECT);
    check_nest("{\"a\":", "{}", "}", SQ_JSON_PARSE_MAX_DEPTH - 1, BOTH_ACCEPT);
    check_nest("{\"a\":", "{}", "}", SQ_JSON_PARSE_MAX_DEPTH, BOTH_REJECT);
    check_nest("[", "", "]", 100000, BOTH_REJECT);
    check_nest("[", "", "", 100000, BOTH_REJECT);
}
END_TEST

/* Strings, keys and numbers longer than the reader's 128-byte local scratch. */
START_TEST(test_long_tokens)
{
    char s[20000];
    size_t n = 0;
    n += (size_t)snprintf(s + n, sizeof s - n, "{\"");
    for (int i = 0; i < 300; i++)
        n += (size_t)snprintf(s + n, sizeof s - n, "k\\u00e9\\n");
    n += (size_t)snprintf(s + n, sizeof s - n, "\":[\"");
    for (int i = 0; i < 2000; i++)
        n += (size_t)snprintf(s + n, sizeof s - n, "%s", i % 7 ? "ab" : "\\t\\uD834\\uDD1E");
    n += (size_t)snprintf(s + n, sizeof s - n, "\",1.");
    for (int i = 0; i < 500; i++)
        s[n++] = (char)('0' + i % 10);
    n += (size_t)snprintf(s + n, sizeof s - n, "e-3,0.");
    for (int i = 0; i < 400; i++)
        s[n++] = '0';
    n += (size_t)snprintf(s + n, sizeof s - n, "1,");
    for (int i = 0; i < 300; i++)
        s[n++] = '9';
    n += (size_t)snprintf(s + n, sizeof s - n, "]}");
    /* a 300-digit integer overflows */
    ck_assert_int_eq(compare(s, n), BOTH_REJECT);
    s[n - 2] = '.';
    s[n - 1] = '5';
    s[n++] = ']';
    s[n++] = '}';
    ck_assert_int_eq(compare(s, n), BOTH_ACCEPT);
}
END_TEST

/* The error is not jansson's: position only, code json_error_unknown. */
START_TEST(test_error_fields)
{
    json_error_t err;
    ck_assert_ptr_null(sq_json_parse("[1, #]", 6, &err));
    ck_assert_int_eq(json_error_code(&err), json_error_unknown);
    ck_assert_int_eq(err.position, 4);
    ck_assert_int_eq(err.line, -1);
    ck_assert_ptr_null(sq_json_parse("[1, #]", 6, NULL));
    json_t *v = sq_json_parse("[1] trailing", 3, NULL); /* n bounds the text */
    ck_assert_ptr_nonnull(v);
    json_decref(v);
}
END_TEST

/* ---- the mutation fuzzer -------------------------------------------------------------- */

static uint64_t rng_state = 0x9E3779B97F4A7C15u;

static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static size_t rnd_below(size_t n)
{
    return n == 0 ? 0 : (size_t)(rnd() % n);
}

static void insert_bytes(char *s, size_t *n, size_t at, const char *b, size_t k)
{
    if (*n + k > FUZZ_MAX_LEN)
        return;
    memmove(s + at + k, s + at, *n - at);
    memcpy(s + at, b, k);
    *n += k;
}

/* One random edit of s (n bytes, room for FUZZ_MAX_LEN). */
static void mutate(char *s, size_t *n)
{
    static const char special[] = "\"\\{}[],:0-eE.u";
    size_t at = rnd_below(*n + 1);
    char c;
    switch (rnd_below(9)) {
    case 0: /* flip a bit */
        if (*n > 0)
            s[rnd_below(*n)] ^= (char)(1u << rnd_below(8));
        break;
    case 1: /* delete a byte */
        if (at < *n) {
            memmove(s + at, s + at + 1, *n - at - 1);
            (*n)--;
        }
        break;
    case 2: { /* duplicate a span */
        size_t from = rnd_below(*n), len = 1 + rnd_below(16);
        if (from + len > *n)
            len = *n - from;
        char span[16];
        memcpy(span, s + from, len);
        insert_bytes(s, n, at, span, len);
        break;
    }
    case 3: /* insert a byte JSON cares about */
    case 4:
        c = special[rnd_below(sizeof special - 1)];
        insert_bytes(s, n, at, &c, 1);
        break;
    case 5: /* insert a high byte */
        c = (char)(0x80 + rnd_below(0x80));
        insert_bytes(s, n, at, &c, 1);
        break;
    case 6: /* overwrite with any byte */
        if (at < *n)
            s[at] = (char)rnd_below(256);
        break;
    case 7: /* insert whitespace, the only byte JSON ignores */
        c = " \t\n\r"[rnd_below(4)];
        insert_bytes(s, n, at, &c, 1);
        break;
    default: /* overwrite with a digit or a letter */
        if (at < *n)
            s[at] = "0123456789aeEfltnru"[rnd_below(19)];
        break;
    }
}

/* Each round starts from a valid corpus entry and edits it 1-2 times per
 * iteration, for 4 iterations, drifting further from valid JSON. */
START_TEST(test_fuzz)
{
    const sample *valid[NCORPUS];
    size_t nvalid = 0;
    for (size_t i = 0; i < NCORPUS; i++)
        if (corpus[i].want == BOTH_ACCEPT)
            valid[nvalid++] = &corpus[i];
    /* SQ_FUZZ_ITERATIONS and SQ_FUZZ_SEED run it longer or elsewhere by hand. */
    const char *env = getenv("SQ_FUZZ_ITERATIONS");
    long iterations = env != NULL ? strtol(env, NULL, 10) : FUZZ_ITERATIONS;
    if ((env = getenv("SQ_FUZZ_SEED")) != NULL)
        rng_state ^= strtoull(env, NULL, 10) << 1; /* stays odd, so never 0 */
    static char s[FUZZ_MAX_LEN];
    size_t n = 0;
    long counts[3] = {0};
    for (long it = 0; it < iterations; it++) {
        if (it % 4 == 0) {
            const sample *seed = valid[rnd_below(nvalid)];
            memcpy(s, seed->s, seed->n);
            n = seed->n;
        }
        for (size_t k = 1 + rnd_below(2); k > 0; k--)
            mutate(s, &n);
        counts[compare(s, n)]++;
    }
    printf("fuzz: %ld iterations, %ld valid, %ld invalid, %ld only jansson (raw NUL)\n", iterations,
           counts[BOTH_ACCEPT], counts[BOTH_REJECT], counts[ONLY_JANSSON]);
    ck_assert_int_gt(counts[BOTH_ACCEPT], iterations / 50);
    ck_assert_int_gt(counts[BOTH_REJECT], iterations / 2);
}
END_TEST

/* ---- the suite -------------------------------------------------------------------- */

static Suite *json_parse_suite(void)
{
    Suite *s = suite_create("json_parse");
    TCase *tc = tcase_create("differential");
    tcase_add_loop_test(tc, test_corpus, 0, (int)NCORPUS);
    tcase_add_test(tc, test_depth_limit);
    tcase_add_test(tc, test_long_tokens);
    tcase_add_test(tc, test_error_fields);
    tcase_add_test(tc, test_fuzz);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(json_parse_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
