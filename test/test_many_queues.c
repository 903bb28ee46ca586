/*
 * test_many_queues.c: any number of queues, in every fetch mode (issue 11).
 *
 * Real sidekiq.yml files list many queues (Rails adds mailers,
 * active_storage_*, action_mailbox_*; GitLab weighs 381). The real Sidekiq
 * client pushes one job to every queue of a 6-queue strict, a 50-queue
 * random and a 400-queue weighted config, and every one of them must run, in
 * reliable and basic fetch alike.
 */
#include "itest.h"

enum mode { STRICT, WEIGHTED, RANDOM };

/* Write a sidekiq.yml with nq queues (weighted: weights 1..3; random: all 1)
 * and the list of queue names, one a line, for the Ruby pusher. */
static const char *many_queues_config(size_t nq, enum mode mode, const char *fetch, char *names)
{
    size_t cap = 200 + nq * 64;
    char *yaml = malloc(cap), *list = malloc(nq * 32 + 1);
    ck_assert_ptr_nonnull(yaml);
    ck_assert_ptr_nonnull(list);
    size_t pos = (size_t)snprintf(yaml, cap,
                                  ":concurrency: 4\n:fetch: %s\n:beat_interval: 1\n"
                                  ":poll_interval_average: 0.5\n:queues:\n",
                                  fetch);
    size_t lpos = 0;
    list[0] = '\0';
    for (size_t i = 0; i < nq; i++) {
        if (mode != STRICT)
            pos += (size_t)snprintf(yaml + pos, cap - pos, "  - [q%03zu, %zu]\n", i,
                                    mode == WEIGHTED ? i % 3 + 1 : 1);
        else
            pos += (size_t)snprintf(yaml + pos, cap - pos, "  - q%03zu\n", i);
        lpos += (size_t)snprintf(list + lpos, nq * 32 + 1 - lpos, "q%03zu\n", i);
    }
    const char *path = itest_config(yaml);
    char dir[256];
    sqt_tempdir(dir, "names");
    snprintf(names, 300, "%s/queues.txt", dir);
    FILE *f = fopen(names, "w");
    ck_assert_ptr_nonnull(f);
    fputs(list, f);
    fclose(f);
    free(yaml);
    free(list);
    return path;
}

static void every_queue_drains(size_t nq, enum mode mode, const char *fetch)
{
    char names[300], args[400];
    const char *cfg = many_queues_config(nq, mode, fetch, names);
    sqt_proc p;
    const char *argv[] = {"-C", cfg, "-r", SQ_TEST_PLUGIN, "-t", "2", NULL};
    sqt_squire_start(&p, R.url, argv, NULL);
    ck_assert_msg(sqt_log_wait(&p, "starting", 10), "squire did not start");

    char *out = NULL;
    snprintf(args, sizeof args, "push_queues '%s'", names);
    int st = sqt_ruby(R.url, &out, "sidekiq.rb", args);
    ck_assert_msg(st == 0, "ruby push_queues exited %d: %s", st, out);
    json_t *jids = json_loads(out, 0, NULL);
    ck_assert_msg(json_is_array(jids), "not a JSON array: %.300s", out);
    ck_assert_int_eq(json_array_size(jids), nq);
    free(out);

    long long done = sqt_wait_int(C, (long long)nq, 60, "SCARD test:done");
    if (done != (long long)nq) {
        char *log = sqt_log_read(&p);
        fprintf(stderr, "--- squire log (%s, %zu queues) ---\n%.3000s\n", fetch, nq, log);
        free(log);
    }
    ck_assert_int_eq(done, (long long)nq);
    for (size_t i = 0; i < nq; i++) {
        const char *jid = json_string_value(json_array_get(jids, i));
        ck_assert_int_eq(sqt_int(C, "SISMEMBER test:done %s", jid), 1);
        char key[32];
        snprintf(key, sizeof key, "queue:q%03zu", i);
        ck_assert_int_eq(sqt_int(C, "LLEN %s", key), 0);
    }
    /* each ran exactly once, from its own queue */
    redisReply *r = sqt_cmd(C, "LRANGE test:log 0 -1");
    ck_assert_int_eq(r->elements, nq);
    for (size_t i = 0; i < r->elements; i++) {
        json_t *rec = json_loads(r->element[i]->str, 0, NULL);
        ck_assert_ptr_nonnull(rec);
        ck_assert_str_eq(json_string_value(json_object_get(rec, "queue")),
                         json_string_value(json_array_get(json_object_get(rec, "args"), 0)));
        json_decref(rec);
    }
    freeReplyObject(r);
    json_decref(jids);
    itest_stop(&p);
}

/* Queue names a Ruby app pushes that are not [A-Za-z0-9_:.-] (unicode,
 * symbols) are served when the configuration lists them, in both fetch
 * modes: Sidekiq serves them, and so must squire. */
static void unicode_queues_drain(const char *fetch)
{
    static const char *const qs[] = {"\xc3\xa9mails", "\xe6\x97\xa5\xe6\x9c\xac", "a/b{c}",
                                     "mailers@v2"};
    size_t nq = sizeof qs / sizeof qs[0];
    char yaml[512], names[300], args[400], dir[256];
    size_t pos = (size_t)snprintf(yaml, sizeof yaml, ":fetch: %s\n:queues:\n", fetch);
    sqt_tempdir(dir, "names");
    snprintf(names, sizeof names, "%s/queues.txt", dir);
    FILE *f = fopen(names, "w");
    ck_assert_ptr_nonnull(f);
    for (size_t i = 0; i < nq; i++) {
        pos += (size_t)snprintf(yaml + pos, sizeof yaml - pos, "  - \"%s\"\n", qs[i]);
        fprintf(f, "%s\n", qs[i]);
    }
    fclose(f);
    const char *cfg = itest_config(yaml);
    sqt_proc p;
    const char *argv[] = {"-C", cfg, "-r", SQ_TEST_PLUGIN, "-t", "2", NULL};
    sqt_squire_start(&p, R.url, argv, NULL);
    ck_assert_msg(sqt_log_wait(&p, "starting", 10), "squire did not start");
    char *out = NULL;
    snprintf(args, sizeof args, "push_queues '%s'", names);
    ck_assert_int_eq(sqt_ruby(R.url, &out, "sidekiq.rb", args), 0);
    free(out);
    ck_assert_int_eq(sqt_wait_int(C, (long long)nq, 20, "SCARD test:done"), (long long)nq);
    for (size_t i = 0; i < nq; i++)
        ck_assert_int_eq(sqt_int(C, "LLEN queue:%s", qs[i]), 0);
    itest_stop(&p);
}

START_TEST(unicode_queue_names_drain_reliable)
{
    unicode_queues_drain("reliable");
}
END_TEST

START_TEST(unicode_queue_names_drain_basic)
{
    unicode_queues_drain("basic");
}
END_TEST

START_TEST(six_strict_queues_drain_reliable)
{
    every_queue_drains(6, STRICT, "reliable");
}
END_TEST

START_TEST(six_strict_queues_drain_basic)
{
    every_queue_drains(6, STRICT, "basic");
}
END_TEST

START_TEST(fifty_random_queues_drain_reliable)
{
    every_queue_drains(50, RANDOM, "reliable");
}
END_TEST

START_TEST(fifty_random_queues_drain_basic)
{
    every_queue_drains(50, RANDOM, "basic");
}
END_TEST

START_TEST(four_hundred_weighted_queues_drain_reliable)
{
    every_queue_drains(400, WEIGHTED, "reliable");
}
END_TEST

START_TEST(four_hundred_weighted_queues_drain_basic)
{
    every_queue_drains(400, WEIGHTED, "basic");
}
END_TEST

/* Sidekiq's strict order over many queues: with every queue holding a job
 * before squire starts, one worker takes them in the configured order (the
 * reliable fetch finds the first non-empty queue by halving the list). A
 * key that is not a list, in the middle, is set aside without stopping the
 * queues after it. */
static void strict_order_holds(const char *fetch)
{
    enum { NQ = 20 };
    char names[300];
    const char *cfg = many_queues_config(NQ, STRICT, fetch, names);
    for (int i = 0; i < NQ; i++) {
        char key[32];
        snprintf(key, sizeof key, "queue:q%03d", i);
        if (i == 7) {
            freeReplyObject(sqt_cmd(C, "SET %s not-a-list", key));
            continue;
        }
        for (int k = 0; k < 2; k++) {
            char jid[25];
            sq_push_opts opts = {.queue = key + 6};
            char args[32];
            snprintf(args, sizeof args, "[\"q%03d\"]", i);
            itest_push("OkJob", args, &opts, jid);
        }
    }
    sqt_proc p;
    const char *argv[] = {"-C", cfg, "-r", SQ_TEST_PLUGIN, "-t", "2", "-c", "1", NULL};
    sqt_squire_start(&p, R.url, argv, NULL);
    ck_assert_int_eq(sqt_wait_int(C, 2 * (NQ - 1), 30, "SCARD test:done"), 2 * (NQ - 1));
    redisReply *r = sqt_cmd(C, "LRANGE test:log 0 -1");
    ck_assert_int_eq(r->elements, 2 * (NQ - 1));
    for (size_t i = 0; i < r->elements; i++) {
        int q = (int)(i / 2) + ((int)(i / 2) >= 7);
        char want[16];
        snprintf(want, sizeof want, "q%03d", q);
        json_t *rec = json_loads(r->element[i]->str, 0, NULL);
        ck_assert_str_eq(json_string_value(json_object_get(rec, "queue")), want);
        json_decref(rec);
    }
    freeReplyObject(r);
    ck_assert(sqt_log_wait(&p, "queue:q007 is a string, not a list", 5));
    itest_stop(&p);
}

START_TEST(strict_order_holds_reliable)
{
    strict_order_holds("reliable");
}
END_TEST

START_TEST(strict_order_holds_basic)
{
    strict_order_holds("basic");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("many_queues");
    TCase *tc = tcase_create("sidekiq_client_every_queue");
    tcase_add_checked_fixture(tc, itest_setup, itest_teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, unicode_queue_names_drain_reliable);
    tcase_add_test(tc, unicode_queue_names_drain_basic);
    tcase_add_test(tc, six_strict_queues_drain_reliable);
    tcase_add_test(tc, six_strict_queues_drain_basic);
    tcase_add_test(tc, fifty_random_queues_drain_reliable);
    tcase_add_test(tc, fifty_random_queues_drain_basic);
    tcase_add_test(tc, four_hundred_weighted_queues_drain_reliable);
    tcase_add_test(tc, four_hundred_weighted_queues_drain_basic);
    tcase_add_test(tc, strict_order_holds_reliable);
    tcase_add_test(tc, strict_order_holds_basic);
    suite_add_tcase(s, tc);
    return sqt_run(s);
}
