/*
 * test_keys.c: the Sidekiq data model (sidekiq.c): key names, the
 * queue-name rule, queue keys (many queues at once), the dead-set trim
 * arguments, and the one dead-set write against a real Redis.
 */
#include <check.h>
#include <float.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "config.h"
#include "job.h"
#include "sidekiq.h"

START_TEST(key_names_are_sidekiqs)
{
    ck_assert_str_eq(SQ_KEY_QUEUES, "queues");
    ck_assert_str_eq(SQ_KEY_RETRY, "retry");
    ck_assert_str_eq(SQ_KEY_SCHEDULE, "schedule");
    ck_assert_str_eq(SQ_KEY_DEAD, "dead");
    ck_assert_str_eq(SQ_KEY_PROCESSES, "processes");
    ck_assert_str_eq(SQ_QUEUE_KEY_PREFIX, "queue:");
    ck_assert_uint_eq(strlen(SQ_QUEUE_KEY_PREFIX), SQ_QUEUE_KEY_PREFIX_LEN);
}
END_TEST

START_TEST(queue_key_builds_and_parses)
{
    char buf[SQ_QUEUE_KEY_MAX];
    ck_assert_uint_eq(sq_queue_key(buf, sizeof buf, "default"), 13);
    ck_assert_str_eq(buf, "queue:default");
    size_t qlen = 99;
    const char *q = sq_queue_key_name(buf, strlen(buf), &qlen);
    ck_assert_ptr_nonnull(q);
    ck_assert_uint_eq(qlen, 7);
    ck_assert_int_eq(memcmp(q, "default", 7), 0);
    /* a queue named like a key keeps its own prefix: queue:queue:x */
    ck_assert_uint_eq(sq_queue_key(buf, sizeof buf, "queue:x"), 13);
    ck_assert_str_eq(buf, "queue:queue:x");
    /* not queue keys */
    ck_assert_ptr_null(sq_queue_key_name("retry", 5, &qlen));
    ck_assert_ptr_null(sq_queue_key_name("queue", 5, &qlen));
    ck_assert_ptr_null(sq_queue_key_name("Queue:x", 7, &qlen));
    ck_assert_ptr_null(sq_queue_key_name("", 0, &qlen));
    /* "queue:" itself names the empty queue: the caller's rule refuses it */
    q = sq_queue_key_name("queue:", 6, &qlen);
    ck_assert_ptr_nonnull(q);
    ck_assert_uint_eq(qlen, 0);
    ck_assert(!sq_queue_name_usable(q, qlen));
}
END_TEST

START_TEST(queue_key_refuses_what_does_not_fit)
{
    char small[10] = "junk";
    ck_assert_uint_eq(sq_queue_key(small, sizeof small, "abc"), 9);
    ck_assert_str_eq(small, "queue:abc");
    ck_assert_uint_eq(sq_queue_key(small, sizeof small, "abcd"), 0);
    ck_assert_str_eq(small, "");
    ck_assert_uint_eq(sq_queue_key(small, 0, "a"), 0);
    /* the longest usable name fits SQ_QUEUE_KEY_MAX exactly */
    char name[SQ_MAX_QUEUE_NAME + 1];
    memset(name, 'q', SQ_MAX_QUEUE_NAME);
    name[SQ_MAX_QUEUE_NAME] = '\0';
    char buf[SQ_QUEUE_KEY_MAX];
    ck_assert_uint_eq(sq_queue_key(buf, sizeof buf, name), SQ_MAX_QUEUE_NAME + 6);
    ck_assert_uint_eq(strlen(buf), SQ_MAX_QUEUE_NAME + 6);
    char *dup = sq_queue_key_dup(name);
    ck_assert_str_eq(dup, buf);
    free(dup);
}
END_TEST

/* The rule, name by name: usable (what squire accepts anywhere) and
 * portable (what the Web UI can open a queue page for). */
static const struct {
    const char *name;
    size_t len; /* 0: strlen */
    bool usable, portable;
} names[] = {
    {"default", 0, true, true},
    {"critical:high.v2-x_y", 0, true, true},
    {"a", 0, true, true},
    {"", 0, false, false},
    {"my queue", 0, false, false},
    {"tab\there", 0, false, false},
    {"nl\n", 0, false, false},
    {"del\x7f", 0, false, false},
    {"nul\0x", 5, false, false},
    {",1", 0, true, false},
    {"a/b", 0, true, false},
    {"caf\xc3\xa9", 0, true, false},
    {"{braces}", 0, true, false},
    {"\xff\xfe", 0, false, false},
    {"\xe6\x97\xa5", 0, true, false},
    {"caf\xc3", 0, false, false},
    {"\xed\xa0\x80", 0, false, false}, /* a UTF-16 surrogate */
};

START_TEST(queue_name_rule)
{
    size_t len = names[_i].len ? names[_i].len : strlen(names[_i].name);
    ck_assert_msg(sq_queue_name_usable(names[_i].name, len) == names[_i].usable, "usable %s",
                  names[_i].name);
    ck_assert_msg(sq_queue_name_portable(names[_i].name, len) == names[_i].portable, "portable %s",
                  names[_i].name);
}
END_TEST

START_TEST(queue_name_length_and_bytes)
{
    char name[SQ_MAX_QUEUE_NAME + 2];
    memset(name, 'a', sizeof name);
    ck_assert(sq_queue_name_usable(name, SQ_MAX_QUEUE_NAME));
    ck_assert(sq_queue_name_portable(name, SQ_MAX_QUEUE_NAME));
    ck_assert(!sq_queue_name_usable(name, SQ_MAX_QUEUE_NAME + 1));
    ck_assert(!sq_queue_name_portable(name, SQ_MAX_QUEUE_NAME + 1));
    ck_assert(!sq_queue_name_usable(NULL, 3));
    /* every one-byte name: portable implies usable, and the two rules are
     * exactly the documented ones */
    for (int c = 0; c < 256; c++) {
        char b = (char)c;
        bool usable = c > 0x20 && c < 0x7f; /* alone, a byte >= 0x80 is not UTF-8 */
        bool portable = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                        (c >= '0' && c <= '9') || c == '_' || c == ':' || c == '.' || c == '-';
        ck_assert_msg(sq_queue_name_usable(&b, 1) == usable, "byte %d", c);
        ck_assert_msg(sq_queue_name_portable(&b, 1) == portable, "byte %d", c);
        ck_assert(!sq_queue_name_portable(&b, 1) || sq_queue_name_usable(&b, 1));
    }
}
END_TEST

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Many queues: 5000 names, short and at the 255-byte limit, each has its
 * own key, and each key gives back exactly its name. */
START_TEST(many_queue_keys_are_distinct_and_round_trip)
{
    enum { N = 5000 };
    char **keys = calloc(N, sizeof *keys);
    char name[SQ_MAX_QUEUE_NAME + 1];
    for (int i = 0; i < N; i++) {
        if (i % 2 == 0) {
            snprintf(name, sizeof name, "q%d", i);
        } else {
            memset(name, 'z', SQ_MAX_QUEUE_NAME);
            name[SQ_MAX_QUEUE_NAME] = '\0';
            int n = snprintf(name, sizeof name, "%d", i);
            name[n] = '.';
        }
        ck_assert(sq_queue_name_portable(name, strlen(name)));
        keys[i] = sq_queue_key_dup(name);
        ck_assert_ptr_nonnull(keys[i]);
        size_t qlen = 0;
        const char *q = sq_queue_key_name(keys[i], strlen(keys[i]), &qlen);
        ck_assert_ptr_nonnull(q);
        ck_assert_uint_eq(qlen, strlen(name));
        ck_assert_int_eq(memcmp(q, name, qlen), 0);
    }
    qsort(keys, N, sizeof *keys, cmp_str);
    for (int i = 1; i < N; i++)
        ck_assert_str_ne(keys[i - 1], keys[i]);
    for (int i = 0; i < N; i++)
        free(keys[i]);
    free(keys);
}
END_TEST

START_TEST(dead_args_follow_the_limits)
{
    sq_dead_args a;
    char want[32];
    sq_dead_limits lim = {10000, 15552000};
    sq_dead_args_make(1700000000.25, &lim, &a);
    ck_assert_str_eq(a.score, sq_format_time(1700000000.25, want));
    ck_assert_str_eq(a.cutoff, sq_format_time(1700000000.25 - 15552000, want));
    ck_assert_str_eq(a.max, "10000");
    lim = (sq_dead_limits){LONG_MAX, 1};
    sq_dead_args_make(100, &lim, &a);
    ck_assert_str_eq(a.max, "9223372036854775807"); /* text, never "9.2e+18" */
    ck_assert_str_eq(a.cutoff, sq_format_time(99, want));
    lim = (sq_dead_limits){1, LONG_MAX};
    sq_dead_args_make(100, &lim, &a);
    ck_assert_str_eq(a.max, "1");
    ck_assert_str_eq(a.cutoff, sq_format_time(100 - (double)LONG_MAX, want));

    sq_config cfg;
    sq_config_init(&cfg);
    cfg.dead_max_jobs = 7;
    cfg.dead_timeout_in_seconds = 60;
    lim = sq_config_dead_limits(&cfg);
    ck_assert_int_eq(lim.max_jobs, 7);
    ck_assert_int_eq(lim.timeout_seconds, 60);
    sq_config_destroy(&cfg);
}
END_TEST

/* ---- the one dead-set write, on a real Redis --------------------------------- */

static sqt_redis R;
static redisContext *C;
static sq_redis *S;

static void redis_up(void)
{
    sqt_redis_start(&R, NULL);
    C = sqt_redis_connect(&R);
    sq_redis_url url = {0};
    sq_error err = {0};
    ck_assert_int_eq(sq_redis_url_parse(R.url, &url, &err), 0);
    S = sq_redis_new(&url, 5.0);
    sq_redis_url_destroy(&url);
    ck_assert_int_eq(sq_redis_connect(S, &err), 0);
}

static void redis_down(void)
{
    sq_redis_free(S);
    redisFree(C);
    sqt_redis_stop(&R);
}

START_TEST(dead_add_trims_by_count_and_age)
{
    sq_error err = {0};
    freeReplyObject(sqt_cmd(C, "DEL dead"));
    sq_dead_limits lim = {3, 100};
    /* an old member, past the age cutoff of the next write */
    ck_assert_int_eq(sq_dead_add(S, &lim, "old", 3, 1000, &err), 0);
    ck_assert_int_eq(sqt_int(C, "ZCARD dead"), 1);
    for (int i = 0; i < 5; i++) {
        char m[16];
        snprintf(m, sizeof m, "m%d", i);
        ck_assert_int_eq(sq_dead_add(S, &lim, m, strlen(m), 2000 + i, &err), 0);
    }
    /* Sidekiq's rank trim 0 -max keeps max - 1 members: the newest */
    ck_assert_int_eq(sqt_int(C, "ZCARD dead"), 2);
    ck_assert_int_eq(sqt_int(C, "ZSCORE dead m4"), 2004);
    ck_assert_int_eq(sqt_int(C, "ZSCORE dead m3"), 2003);
    redisReply *r = sqt_cmd(C, "ZSCORE dead old");
    ck_assert_int_eq(r->type, REDIS_REPLY_NIL);
    freeReplyObject(r);
    /* binary payloads keep their bytes */
    ck_assert_int_eq(sq_dead_add(S, &lim, "a\0b", 3, 3000, &err), 0);
    r = sqt_cmd(C, "ZRANGE dead -1 -1");
    ck_assert_uint_eq(r->element[0]->len, 3);
    ck_assert_int_eq(memcmp(r->element[0]->str, "a\0b", 3), 0);
    freeReplyObject(r);
}
END_TEST

START_TEST(dead_add_huge_max_and_wrong_type)
{
    sq_error err = {0};
    freeReplyObject(sqt_cmd(C, "DEL dead"));
    sq_dead_limits lim = {LONG_MAX, LONG_MAX};
    for (int i = 0; i < 3; i++) {
        char m[16];
        snprintf(m, sizeof m, "h%d", i);
        ck_assert_int_eq(sq_dead_add(S, &lim, m, strlen(m), 10 + i, &err), 0);
    }
    ck_assert_int_eq(sqt_int(C, "ZCARD dead"), 3);
    freeReplyObject(sqt_cmd(C, "DEL dead"));
    freeReplyObject(sqt_cmd(C, "SET dead x"));
    ck_assert_int_eq(sq_dead_add(S, &lim, "j", 1, 20, &err), -1);
    ck_assert_msg(strstr(err.message, "WRONGTYPE") != NULL, "%s", err.message);
    redisReply *r = sqt_cmd(C, "GET dead");
    ck_assert_str_eq(r->str, "x");
    freeReplyObject(r);
    freeReplyObject(sqt_cmd(C, "DEL dead"));
}
END_TEST

/* The poller's and squirectl's move (sq_script_zset_to_dead) writes with
 * the same trim as sq_dead_add. */
START_TEST(zset_to_dead_uses_the_same_trim)
{
    sq_error err = {0};
    freeReplyObject(sqt_cmd(C, "DEL dead retry"));
    for (int i = 0; i < 4; i++)
        freeReplyObject(sqt_cmd(C, "ZADD dead %d d%d", 100 + i, i));
    freeReplyObject(sqt_cmd(C, "ZADD retry 1 victim"));
    sq_dead_limits lim = {3, 1000000};
    sq_dead_args a;
    sq_dead_args_make(200, &lim, &a);
    const char *argv[] = {"retry", "dead", "victim", a.score, a.cutoff, a.max};
    redisReply *rep = sq_redis_eval(S, &sq_script_zset_to_dead, 2, 6, argv, NULL, &err);
    ck_assert_ptr_nonnull(rep);
    ck_assert_int_eq(rep->integer, 1);
    freeReplyObject(rep);
    ck_assert_int_eq(sqt_int(C, "ZCARD dead"), 2);
    ck_assert_int_eq(sqt_int(C, "ZSCORE dead victim"), 200);
    ck_assert_int_eq(sqt_int(C, "ZCARD retry"), 0);
}
END_TEST

static Suite *keys_suite(void)
{
    Suite *s = suite_create("keys");
    TCase *tc = tcase_create("model");
    tcase_add_test(tc, key_names_are_sidekiqs);
    tcase_add_test(tc, queue_key_builds_and_parses);
    tcase_add_test(tc, queue_key_refuses_what_does_not_fit);
    tcase_add_loop_test(tc, queue_name_rule, 0, (int)(sizeof names / sizeof names[0]));
    tcase_add_test(tc, queue_name_length_and_bytes);
    tcase_add_test(tc, many_queue_keys_are_distinct_and_round_trip);
    tcase_add_test(tc, dead_args_follow_the_limits);
    suite_add_tcase(s, tc);
    tc = tcase_create("dead_set");
    tcase_add_unchecked_fixture(tc, redis_up, redis_down);
    tcase_add_test(tc, dead_add_trims_by_count_and_age);
    tcase_add_test(tc, dead_add_huge_max_and_wrong_type);
    tcase_add_test(tc, zset_to_dead_uses_the_same_trim);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return sqt_run(keys_suite());
}
