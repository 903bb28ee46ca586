/*
 * test_metrics.c: the execution metrics of the Web UI's Metrics tab
 * (lib/daemon/metrics.c): the pure parts (histogram bucket, key names of Sidekiq
 * 7.x and 8.x, the BITFIELD arguments, the config value) and a flush into a
 * real redis-server, read back key by key. test_webui reads the same data
 * through Sidekiq's own Sidekiq::Metrics::Query.
 */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "metrics.h"
#include "redis.h"

/* 2025-02-14 08:43:00 UTC: the example in Sidekiq 8.1's tracking.rb */
#define T_0843 ((time_t)1739522580)
/* 2024-01-05 08:05:07 UTC: every field a single digit */
#define T_0805 ((time_t)1704441907)
/* 2026-12-01 23:59:59 UTC */
#define T_2359 ((time_t)1796169599)

START_TEST(buckets_follow_sidekiqs_bounds)
{
    /* a duration goes to the first bucket whose bound is greater */
    static const struct {
        long long ms;
        int bucket;
    } cases[] = {{0, 0},     {19, 0},      {20, 1},      {29, 1},        {30, 2},
                 {280, 7},   {999, 10},    {1100, 11},   {4000, 14},     {5749, 14},
                 {5750, 15}, {334999, 24}, {335000, 25}, {86400000, 25}, {-5, 0}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        ck_assert_msg(sq_metrics_bucket(cases[i].ms) == cases[i].bucket, "%lld ms -> %d, not %d",
                      cases[i].ms, sq_metrics_bucket(cases[i].ms), cases[i].bucket);
    /* every bucket is reachable, in order */
    int last = 0, seen = 1;
    for (long long ms = 0; ms < 400000; ms++) {
        int b = sq_metrics_bucket(ms);
        ck_assert_int_ge(b, last);
        ck_assert_int_le(b, last + 1);
        seen += b != last;
        last = b;
    }
    ck_assert_int_eq(seen, SQ_METRICS_BUCKETS);
}
END_TEST

START_TEST(minute_keys_of_both_layouts)
{
    char k[64];
    sq_metrics_minute_key(7, T_0843, k, sizeof k);
    ck_assert_str_eq(k, "j|20250214|8:43");
    sq_metrics_minute_key(8, T_0843, k, sizeof k);
    ck_assert_str_eq(k, "j|250214|8:43");
    sq_metrics_rollup_key(T_0843, k, sizeof k);
    ck_assert_str_eq(k, "j|250214|8:4");

    sq_metrics_minute_key(7, T_0805, k, sizeof k);
    ck_assert_str_eq(k, "j|20240105|8:5");
    sq_metrics_minute_key(8, T_0805, k, sizeof k);
    ck_assert_str_eq(k, "j|240105|8:05");
    sq_metrics_rollup_key(T_0805, k, sizeof k);
    ck_assert_str_eq(k, "j|240105|8:0");

    sq_metrics_minute_key(7, T_2359, k, sizeof k);
    ck_assert_str_eq(k, "j|20261201|23:59");
    sq_metrics_minute_key(8, T_2359, k, sizeof k);
    ck_assert_str_eq(k, "j|261201|23:59");
    sq_metrics_rollup_key(T_2359, k, sizeof k);
    ck_assert_str_eq(k, "j|261201|23:5");
    /* like snprintf when short */
    ck_assert_int_eq(sq_metrics_minute_key(8, T_2359, k, 4), 14);
    ck_assert_str_eq(k, "j|2");
}
END_TEST

START_TEST(histogram_keys_of_both_layouts)
{
    char k[128];
    size_t n = sq_metrics_hist_key(7, "HardJob", 7, T_0805, k, sizeof k);
    ck_assert_str_eq(k, "HardJob-05-08:5");
    ck_assert_uint_eq(n, strlen(k));
    sq_metrics_hist_key(8, "HardJob", 7, T_0805, k, sizeof k);
    ck_assert_str_eq(k, "h|HardJob-5-8:5");
    sq_metrics_hist_key(7, "A::B", 4, T_2359, k, sizeof k);
    ck_assert_str_eq(k, "A::B-01-23:59");
    sq_metrics_hist_key(8, "A::B", 4, T_2359, k, sizeof k);
    ck_assert_str_eq(k, "h|A::B-1-23:59");
    /* binary class names are copied whole; a short buffer is left alone */
    n = sq_metrics_hist_key(8, "a\0b", 3, T_0843, k, sizeof k);
    ck_assert_uint_eq(n, 3 + 2 + strlen("-14-8:43"));
    ck_assert_int_eq(memcmp(k, "h|a\0b-14-8:43", n + 1), 0);
    memset(k, 'x', sizeof k);
    ck_assert_uint_eq(sq_metrics_hist_key(8, "HardJob", 7, T_0805, k, 5), 15);
    ck_assert_int_eq(k[0], 'x');
}
END_TEST

START_TEST(bitfield_arguments_name_each_counted_bucket)
{
    uint32_t counts[SQ_METRICS_BUCKETS] = {0};
    const char *argv[2 + 4 * SQ_METRICS_BUCKETS];
    size_t lens[2 + 4 * SQ_METRICS_BUCKETS];
    char num[SQ_METRICS_BUCKETS][2][16];
    ck_assert_int_eq(sq_metrics_bitfield_args(counts, argv, lens, num), 2);
    ck_assert_str_eq(argv[0], "OVERFLOW");
    ck_assert_str_eq(argv[1], "SAT");
    counts[0] = 3;
    counts[14] = 1;
    counts[25] = 70000; /* saturates in Redis, not here */
    int n = sq_metrics_bitfield_args(counts, argv, lens, num);
    ck_assert_int_eq(n, 14);
    const char *want[] = {"OVERFLOW", "SAT", "INCRBY", "u16",    "#0",  "3",   "INCRBY",
                          "u16",      "#14", "1",      "INCRBY", "u16", "#25", "70000"};
    for (int i = 0; i < n; i++) {
        ck_assert_str_eq(argv[i], want[i]);
        ck_assert_uint_eq(lens[i], strlen(want[i]));
    }
    for (int i = 0; i < SQ_METRICS_BUCKETS; i++)
        counts[i] = 1;
    ck_assert_int_eq(sq_metrics_bitfield_args(counts, argv, lens, num), 2 + 4 * SQ_METRICS_BUCKETS);
}
END_TEST

START_TEST(layout_values)
{
    unsigned l = 99;
    ck_assert_int_eq(sq_config_metrics_parse("8", &l), 0);
    ck_assert_uint_eq(l, SQ_METRICS_V8);
    ck_assert_int_eq(sq_config_metrics_parse("7", &l), 0);
    ck_assert_uint_eq(l, SQ_METRICS_V7);
    ck_assert_int_eq(sq_config_metrics_parse("both", &l), 0);
    ck_assert_uint_eq(l, SQ_METRICS_V7 | SQ_METRICS_V8);
    ck_assert_int_eq(sq_config_metrics_parse("off", &l), 0);
    ck_assert_uint_eq(l, 0);
    ck_assert_int_eq(sq_config_metrics_parse("false", &l), 0);
    ck_assert_uint_eq(l, 0);
    l = 5;
    ck_assert_int_eq(sq_config_metrics_parse("9", &l), -1);
    ck_assert_int_eq(sq_config_metrics_parse("", &l), -1);
    ck_assert_int_eq(sq_config_metrics_parse(NULL, &l), -1);
    ck_assert_uint_eq(l, 5);
    ck_assert_str_eq(sq_config_metrics_name(SQ_METRICS_DEFAULT), "8");
    ck_assert_str_eq(sq_config_metrics_name(SQ_METRICS_V7 | SQ_METRICS_V8), "both");
    ck_assert_ptr_null(sq_metrics_new(4, 0)); /* off: recording is a no-op */
    sq_metrics_record(NULL, 0, "X", 1, false, 5, T_0843);
}
END_TEST

/* ---- against a real redis-server --------------------------------------- */

static sqt_redis R;
static redisContext *C;

static void redis_setup(void)
{
    sqt_redis_start(&R, NULL);
    C = sqt_redis_connect(&R);
}

static void redis_teardown(void)
{
    if (C)
        redisFree(C);
    sqt_redis_stop(&R);
}

static sq_redis *connect_lib(void)
{
    sq_redis_url url = {.host = "127.0.0.1", .port = R.port};
    sq_redis *r = sq_redis_new(&url, 3.0);
    ck_assert_ptr_nonnull(r);
    return r;
}

static long long hget(const char *key, const char *field)
{
    redisReply *r = sqt_cmd(C, "HGET %s %s", key, field);
    long long v = r->type == REDIS_REPLY_STRING ? atoll(r->str) : -1;
    freeReplyObject(r);
    return v;
}

/* The 26 u16 counters of a histogram key, as the UI reads them. */
static void hist(const char *key, long long out[SQ_METRICS_BUCKETS])
{
    char cmd[2048];
    int n = snprintf(cmd, sizeof cmd, "BITFIELD_RO %s", key);
    for (int i = 0; i < SQ_METRICS_BUCKETS; i++)
        n += snprintf(cmd + n, sizeof cmd - (size_t)n, " GET u16 #%d", i);
    redisReply *r = sqt_cmd(C, cmd);
    ck_assert_int_eq(r->type, REDIS_REPLY_ARRAY);
    ck_assert_uint_eq(r->elements, SQ_METRICS_BUCKETS);
    for (int i = 0; i < SQ_METRICS_BUCKETS; i++)
        out[i] = r->element[i]->integer;
    freeReplyObject(r);
}

START_TEST(flush_writes_each_minute_of_each_layout_once)
{
    time_t now = time(NULL);
    time_t before = now - 120; /* a run that finished two minutes ago */
    sq_metrics *m = sq_metrics_new(3, SQ_METRICS_V7 | SQ_METRICS_V8);
    ck_assert_ptr_nonnull(m);
    sq_metrics_record(m, 0, "OkJob", 5, false, 10, now);
    sq_metrics_record(m, 1, "OkJob", 5, false, 4000, now);
    sq_metrics_record(m, 2, "OkJob", 5, true, 99999, now); /* failed: counted, not timed */
    sq_metrics_record(m, 2, "FailJob", 7, true, 12, now);
    sq_metrics_record(m, 1, "OkJob", 5, false, 30, before);
    sq_metrics_record(m, 9, "OkJob", 5, false, 30, now); /* no such shard: ignored */
    sq_redis *r = connect_lib();
    sq_error err = {0};
    /* OkJob p, ms (two minutes), f (now); FailJob p, f: 7 per layout */
    ck_assert_int_eq(sq_metrics_flush(m, r, &err), 14);
    ck_assert_int_eq(sq_metrics_flush(m, r, &err), 0); /* nothing new */

    for (int v = 7; v <= 8; v++) {
        char key[64], old[64];
        sq_metrics_minute_key(v, now, key, sizeof key);
        sq_metrics_minute_key(v, before, old, sizeof old);
        ck_assert_int_eq(hget(key, "OkJob|p"), 3);
        ck_assert_int_eq(hget(key, "OkJob|f"), 1);
        ck_assert_int_eq(hget(key, "OkJob|ms"), 4010);
        ck_assert_int_eq(hget(key, "FailJob|p"), 1);
        ck_assert_int_eq(hget(key, "FailJob|f"), 1);
        ck_assert_int_eq(hget(key, "FailJob|ms"), -1); /* never timed */
        ck_assert_int_eq(hget(old, "OkJob|p"), 1);
        ck_assert_int_eq(hget(old, "OkJob|ms"), 30);
        ck_assert_int_eq(hget(old, "OkJob|f"), -1);
        long long ttl = sqt_int(C, "TTL %s", key);
        ck_assert_msg(ttl > SQ_METRICS_TTL - 60 && ttl <= SQ_METRICS_TTL, "TTL %lld", ttl);

        char hk[128];
        sq_metrics_hist_key(v, "OkJob", 5, now, hk, sizeof hk);
        long long h[SQ_METRICS_BUCKETS];
        hist(hk, h);
        for (int i = 0; i < SQ_METRICS_BUCKETS; i++)
            ck_assert_int_eq(h[i], i == 0 || i == 14 ? 1 : 0);
        ttl = sqt_int(C, "TTL %s", hk);
        ck_assert(ttl > SQ_METRICS_TTL - 60 && ttl <= SQ_METRICS_TTL);
        sq_metrics_hist_key(v, "FailJob", 7, now, hk, sizeof hk);
        ck_assert_int_eq(sqt_int(C, "EXISTS %s", hk), 0);
    }
    /* 8.x's 10-minute rollup holds both minutes when they share ten minutes */
    char roll[64], roll_old[64];
    sq_metrics_rollup_key(now, roll, sizeof roll);
    sq_metrics_rollup_key(before, roll_old, sizeof roll_old);
    long long p = hget(roll, "OkJob|p");
    ck_assert_int_eq(strcmp(roll, roll_old) == 0 ? p : p + hget(roll_old, "OkJob|p"), 4);
    long long ttl = sqt_int(C, "TTL %s", roll);
    ck_assert(ttl > SQ_METRICS_MID_TTL - 60 && ttl <= SQ_METRICS_MID_TTL);
    sq_metrics_free(m);
    sq_redis_free(r);
}
END_TEST

START_TEST(one_layout_writes_no_key_of_the_other)
{
    time_t now = time(NULL);
    for (int v = 7; v <= 8; v++) {
        redisReply *fl = sqt_cmd(C, "FLUSHALL");
        freeReplyObject(fl);
        sq_metrics *m = sq_metrics_new(1, v == 7 ? SQ_METRICS_V7 : SQ_METRICS_V8);
        sq_metrics_record(m, 0, "OkJob", 5, false, 25, now);
        sq_redis *r = connect_lib();
        sq_error err = {0};
        ck_assert_int_eq(sq_metrics_flush(m, r, &err), 2);
        /* 7: the minute hash and the histogram; 8: those and the rollup */
        ck_assert_int_eq(sqt_int(C, "DBSIZE"), v == 7 ? 2 : 3);
        char key[64];
        sq_metrics_minute_key(v, now, key, sizeof key);
        ck_assert_int_eq(hget(key, "OkJob|ms"), 25);
        sq_metrics_free(m);
        sq_redis_free(r);
    }
}
END_TEST

START_TEST(counts_wait_out_an_outage_and_are_written_once)
{
    time_t now = time(NULL);
    sq_metrics *m = sq_metrics_new(2, SQ_METRICS_V8);
    sq_redis *r = connect_lib();
    sq_metrics_record(m, 0, "OkJob", 5, false, 100, now);
    sqt_redis_kill9(&R);
    sq_error err = {0};
    ck_assert_int_eq(sq_metrics_flush(m, r, &err), -1);
    sq_metrics_record(m, 1, "OkJob", 5, false, 200, now);
    sqt_redis_restart(&R);
    redisFree(C);
    C = sqt_redis_connect(&R);
    sq_error e2 = {0};
    ck_assert_msg(sq_metrics_flush(m, r, &e2) == 2, "%s", e2.message);
    char key[64];
    sq_metrics_minute_key(8, now, key, sizeof key);
    ck_assert_int_eq(hget(key, "OkJob|p"), 2);
    ck_assert_int_eq(hget(key, "OkJob|ms"), 300);
    sq_metrics_free(m);
    sq_redis_free(r);
}
END_TEST

/* A backlog (Redis was away for hours) is written minute by minute, each
 * minute's hash holding its own classes; minutes older than 8 h are dropped. */
START_TEST(a_backlog_of_minutes_is_written_in_one_flush)
{
    time_t now = time(NULL);
    sq_metrics *m = sq_metrics_new(2, SQ_METRICS_V8);
    for (int min = 0; min < 300; min++)
        for (int k = 0; k < 20; k++) {
            char klass[16];
            int n = snprintf(klass, sizeof klass, "K%d", k);
            sq_metrics_record(m, (min + k) % 2, klass, (size_t)n, k == 3, min + k, now - min * 60);
        }
    sq_metrics_record(m, 0, "Old", 3, false, 1, now - SQ_METRICS_TTL - 600);
    sq_redis *r = connect_lib();
    sq_error err = {0};
    /* p for all, f for K3, ms for the others: 20 + 1 + 19 per minute */
    ck_assert_int_eq(sq_metrics_flush(m, r, &err), 300 * 40);
    for (int min = 0; min < 300; min += 37) {
        char key[64], field[16];
        sq_metrics_minute_key(8, now - min * 60, key, sizeof key);
        ck_assert_int_eq(sqt_int(C, "HLEN %s", key), 40);
        snprintf(field, sizeof field, "K7|ms");
        ck_assert_int_eq(hget(key, field), min + 7);
        ck_assert_int_eq(hget(key, "K3|f"), 1);
    }
    redisReply *keys = sqt_cmd(C, "KEYS h|Old-*");
    ck_assert_uint_eq(keys->elements, 0);
    freeReplyObject(keys);
    sq_metrics_free(m);
    sq_redis_free(r);
}
END_TEST

/* Workers record while the main thread flushes: every run is written once. */
struct hammer {
    sq_metrics *m;
    int shard;
};

static void *hammer(void *arg)
{
    struct hammer *h = arg;
    for (int i = 0; i < 20000; i++)
        sq_metrics_record(h->m, h->shard, i % 2 ? "OddJob" : "EvenJob", 6 + (i % 2 == 0),
                          i % 10 == 0, 1, time(NULL));
    return NULL;
}

START_TEST(concurrent_records_are_all_flushed)
{
    sq_metrics *m = sq_metrics_new(4, SQ_METRICS_V7);
    sq_redis *r = connect_lib();
    pthread_t t[4];
    struct hammer h[4];
    time_t t0 = time(NULL);
    for (int i = 0; i < 4; i++) {
        h[i] = (struct hammer){m, i};
        pthread_create(&t[i], NULL, hammer, &h[i]);
    }
    sq_error err = {0};
    for (int i = 0; i < 20; i++)
        ck_assert_int_ge(sq_metrics_flush(m, r, &err), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    ck_assert_int_ge(sq_metrics_flush(m, r, &err), 0);
    long long p = 0, f = 0;
    for (time_t t1 = t0 - t0 % 60; t1 <= time(NULL); t1 += 60) {
        char key[64];
        sq_metrics_minute_key(7, t1, key, sizeof key);
        p += (hget(key, "OddJob|p") > 0 ? hget(key, "OddJob|p") : 0) +
             (hget(key, "EvenJob|p") > 0 ? hget(key, "EvenJob|p") : 0);
        f += hget(key, "EvenJob|f") > 0 ? hget(key, "EvenJob|f") : 0;
    }
    ck_assert_int_eq(p, 80000);
    ck_assert_int_eq(f, 8000);
    sq_metrics_free(m);
    sq_redis_free(r);
}
END_TEST

/* Sidekiq's Metrics::Query#top_jobs splits each field of a minute hash at
 * every '|' and files it under the first part: "<class>|<metric>". A class
 * whose name holds '|' ("Foo|p", a C handler may be named so) must not land
 * its counts on class Foo, and no hostile name (quotes, ':', '-', unicode,
 * very long) may touch another class's field or histogram. */
START_TEST(hostile_class_names_never_touch_another_class)
{
    time_t now = time(NULL);
    sq_metrics *m = sq_metrics_new(1, SQ_METRICS_V7 | SQ_METRICS_V8);
    static char longname[9000];
    memset(longname, 'L', sizeof longname - 1);
    const char *names[] = {"Foo|p", "Foo|ms|p", "|Foo", "Foo|", "Foo\"'", "Foo:1",
                           "Foo-01-08:43", "F\xc3\xb6\xc3\xb6", longname};
    sq_metrics_record(m, 0, "Foo", 3, false, 10, now);
    for (size_t i = 0; i < SQ_ARRAY_LEN(names); i++)
        for (int k = 0; k < 5; k++)
            sq_metrics_record(m, 0, names[i], strlen(names[i]), k == 0, 5000, now);
    sq_redis *r = connect_lib();
    sq_error err = {0};
    ck_assert_int_gt(sq_metrics_flush(m, r, &err), 0);
    for (int v = 7; v <= 8; v++) {
        char key[64];
        sq_metrics_minute_key(v, now, key, sizeof key);
        redisReply *all = sqt_cmd(C, "HGETALL %s", key);
        ck_assert_int_eq(all->type, REDIS_REPLY_ARRAY);
        long long foo_p = 0, foo_ms = 0, foo_f = 0, classes = 0;
        for (size_t i = 0; i + 1 < all->elements; i += 2) {
            const char *field = all->element[i]->str;
            /* what top_jobs does: kls, metric = k.split("|") */
            const char *bar = strchr(field, '|');
            ck_assert_ptr_nonnull(bar);
            ck_assert_msg(strchr(bar + 1, '|') == NULL, "field %.60s splits wrongly", field);
            if (strncmp(field, "Foo", 3) == 0 && bar == field + 3) {
                long long n = atoll(all->element[i + 1]->str);
                if (strcmp(bar, "|p") == 0)
                    foo_p += n;
                else if (strcmp(bar, "|ms") == 0)
                    foo_ms += n;
                else
                    foo_f += n;
            }
            if (strcmp(bar, "|p") == 0)
                classes++;
        }
        freeReplyObject(all);
        ck_assert_int_eq(foo_p, 1);
        ck_assert_int_eq(foo_ms, 10);
        ck_assert_int_eq(foo_f, 0);
        ck_assert_int_eq(classes, 1 + (long long)SQ_ARRAY_LEN(names));
        /* Foo's histogram holds Foo's one run alone */
        char hk[128];
        sq_metrics_hist_key(v, "Foo", 3, now, hk, sizeof hk);
        long long h[SQ_METRICS_BUCKETS];
        hist(hk, h);
        for (int i = 0; i < SQ_METRICS_BUCKETS; i++)
            ck_assert_int_eq(h[i], i == 0 ? 1 : 0);
    }
    sq_metrics_free(m);
    sq_redis_free(r);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("metrics");
    TCase *pure = tcase_create("pure");
    tcase_add_test(pure, buckets_follow_sidekiqs_bounds);
    tcase_add_test(pure, minute_keys_of_both_layouts);
    tcase_add_test(pure, histogram_keys_of_both_layouts);
    tcase_add_test(pure, bitfield_arguments_name_each_counted_bucket);
    tcase_add_test(pure, layout_values);
    suite_add_tcase(s, pure);
    TCase *redis = tcase_create("redis");
    tcase_add_checked_fixture(redis, redis_setup, redis_teardown);
    tcase_set_timeout(redis, 60);
    tcase_add_test(redis, flush_writes_each_minute_of_each_layout_once);
    tcase_add_test(redis, one_layout_writes_no_key_of_the_other);
    tcase_add_test(redis, counts_wait_out_an_outage_and_are_written_once);
    tcase_add_test(redis, concurrent_records_are_all_flushed);
    tcase_add_test(redis, a_backlog_of_minutes_is_written_in_one_flush);
    tcase_add_test(redis, hostile_class_names_never_touch_another_class);
    suite_add_tcase(s, redis);
    return sqt_run(s);
}
