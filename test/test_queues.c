/*
 * test_queues.c: queue order (strict, weighted, random) as Sidekiq orders
 * them, and the exact-match handler registry.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "queues.h"
#include "registry.h"

static unsigned seq_state;
static unsigned fixed_rand(unsigned n, void *st)
{
    (void)st;
    return n ? (seq_state++ * 7u) % n : 0;
}

static unsigned lcg_rand(unsigned n, void *st)
{
    unsigned long long *x = st;
    *x = *x * 6364136223846793005ULL + 1442695040888963407ULL;
    return n ? (unsigned)((*x >> 33) % n) : 0;
}

START_TEST(strict_keeps_configured_order_and_dedups)
{
    sq_queue_conf q[] = {{"critical", 0}, {"default", 0}, {"critical", 0}, {"low", 0}};
    sq_queue_order o;
    ck_assert_int_eq(sq_queue_order_init(&o, q, 4), 0);
    ck_assert_int_eq(o.mode, SQ_QUEUES_STRICT);
    ck_assert_int_eq(o.nqueues, 3);
    size_t out[3], scratch[8];
    for (int round = 0; round < 5; round++) {
        ck_assert_int_eq(sq_queue_order_next(&o, out, scratch, fixed_rand, NULL), 3);
        ck_assert_str_eq(o.names[out[0]], "critical");
        ck_assert_str_eq(o.names[out[1]], "default");
        ck_assert_str_eq(o.names[out[2]], "low");
    }
    sq_queue_order_destroy(&o);
}
END_TEST

START_TEST(weighted_first_place_follows_the_weights)
{
    sq_queue_conf q[] = {{"critical", 3}, {"default", 1}};
    sq_queue_order o;
    ck_assert_int_eq(sq_queue_order_init(&o, q, 2), 0);
    ck_assert_int_eq(o.mode, SQ_QUEUES_WEIGHTED);
    ck_assert_int_eq(o.nexpanded, 4);
    size_t out[2], scratch[6];
    unsigned long long st = 42;
    int first_critical = 0, rounds = 40000;
    for (int i = 0; i < rounds; i++) {
        ck_assert_int_eq(sq_queue_order_next(&o, out, scratch, lcg_rand, &st), 2);
        ck_assert_uint_ne(out[0], out[1]);
        if (out[0] == 0)
            first_critical++;
    }
    /* P(first) = 3/4; 40k draws put it within 0.74..0.76 */
    double share = (double)first_critical / rounds;
    ck_assert_msg(share > 0.74 && share < 0.76, "critical first %.3f of the time", share);
    sq_queue_order_destroy(&o);
}
END_TEST

START_TEST(all_ones_is_random_and_unweighted_counts_once)
{
    sq_queue_conf ones[] = {{"a", 1}, {"b", 1}, {"c", 1}};
    sq_queue_order o;
    ck_assert_int_eq(sq_queue_order_init(&o, ones, 3), 0);
    ck_assert_int_eq(o.mode, SQ_QUEUES_RANDOM);
    sq_queue_order_destroy(&o);

    sq_queue_conf mixed[] = {{"a", 0}, {"b", 2}};
    ck_assert_int_eq(sq_queue_order_init(&o, mixed, 2), 0);
    ck_assert_int_eq(o.mode, SQ_QUEUES_WEIGHTED);
    ck_assert_int_eq(o.nexpanded, 3); /* a once, b twice */
    sq_queue_order_destroy(&o);
}
END_TEST

/* 400 weighted queues (GitLab lists 381): every fetch order names each queue
 * exactly once, whatever the shuffle. */
START_TEST(four_hundred_weighted_queues_each_once_per_fetch)
{
    enum { NQ = 400 };
    sq_queue_conf q[NQ];
    char names[NQ][8];
    for (int i = 0; i < NQ; i++) {
        snprintf(names[i], sizeof names[i], "q%d", i);
        q[i].name = names[i];
        q[i].weight = i % 5 + 1;
    }
    sq_queue_order o;
    ck_assert_int_eq(sq_queue_order_init(&o, q, NQ), 0);
    ck_assert_int_eq(o.mode, SQ_QUEUES_WEIGHTED);
    ck_assert_uint_eq(sq_queue_order_scratch_len(&o), o.nexpanded + NQ);
    size_t *scratch = calloc(sq_queue_order_scratch_len(&o), sizeof *scratch), out[NQ];
    unsigned long long st = 7;
    for (int round = 0; round < 50; round++) {
        ck_assert_int_eq(sq_queue_order_next(&o, out, scratch, lcg_rand, &st), NQ);
        bool seen[NQ] = {0};
        for (int i = 0; i < NQ; i++) {
            ck_assert_uint_lt(out[i], NQ);
            ck_assert(!seen[out[i]]);
            seen[out[i]] = true;
        }
    }
    free(scratch);
    sq_queue_order_destroy(&o);
}
END_TEST

static sq_result h1(sq_job *j, void *ud)
{
    (void)j, (void)ud;
    return SQ_OK;
}
static sq_result h2(sq_job *j, void *ud)
{
    (void)j, (void)ud;
    return SQ_FAILED;
}

START_TEST(registry_is_exact_match_and_grows)
{
    sq_registry *reg = sq_registry_new();
    ck_assert_int_eq(sq_register(reg, "HardJob", h1, NULL), 0);
    ck_assert_int_eq(sq_register(reg, NULL, h1, NULL), -1);
    ck_assert_int_eq(sq_register(reg, "", h1, NULL), -1);
    ck_assert_int_eq(sq_register(reg, "X", NULL, NULL), -1);
    char name[32];
    for (int i = 0; i < 500; i++) {
        snprintf(name, sizeof name, "Job%d", i);
        ck_assert_int_eq(sq_register(reg, name, h2, (void *)(long)i), 0);
    }
    ck_assert_uint_eq(sq_registry_count(reg), 501);
    void *ud = NULL;
    ck_assert_ptr_eq(sq_registry_lookup(reg, "HardJob", &ud), h1);
    ck_assert_ptr_null(sq_registry_lookup(reg, "hardjob", NULL));
    ck_assert_ptr_null(sq_registry_lookup(reg, "HardJob ", NULL));
    ck_assert_ptr_null(sq_registry_lookup(reg, "Hard", NULL));
    ck_assert_ptr_eq(sq_registry_lookup(reg, "Job321", &ud), h2);
    ck_assert_int_eq((long)ud, 321);
    /* re-registering replaces */
    ck_assert_int_eq(sq_register(reg, "HardJob", h2, NULL), 0);
    ck_assert_ptr_eq(sq_registry_lookup(reg, "HardJob", NULL), h2);
    ck_assert_uint_eq(sq_registry_count(reg), 501);
    sq_registry_free(reg);
    sq_registry_free(NULL);
}
END_TEST

START_TEST(plugin_errors_name_the_file)
{
    sq_registry *reg = sq_registry_new();
    sq_error err = {0};
    ck_assert_int_eq(sq_plugin_load(reg, "/nonexistent/libx.so", &err), -1);
    ck_assert_int_eq(err.code, SQ_ECONFIG);
    ck_assert_ptr_nonnull(strstr(err.message, "/nonexistent/libx.so"));
    sq_error e2 = {0};
    ck_assert_int_eq(sq_plugin_load(reg, "/tmp", &e2), -1);
    ck_assert_ptr_nonnull(strstr(e2.message, "directory"));
    sq_error e3 = {0};
    ck_assert_int_eq(sq_plugin_load(reg, SQ_TEST_PLUGIN, &e3), 0);
    ck_assert_ptr_nonnull(sq_registry_lookup(reg, "OkJob", NULL));
    sq_registry_free(reg);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("queues");
    TCase *tc = tcase_create("order");
    tcase_add_test(tc, strict_keeps_configured_order_and_dedups);
    tcase_add_test(tc, weighted_first_place_follows_the_weights);
    tcase_add_test(tc, all_ones_is_random_and_unweighted_counts_once);
    tcase_add_test(tc, four_hundred_weighted_queues_each_once_per_fetch);
    tcase_add_test(tc, registry_is_exact_match_and_grows);
    tcase_add_test(tc, plugin_errors_name_the_file);
    suite_add_tcase(s, tc);
    return sqt_run(s);
}
