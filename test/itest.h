/*
 * itest.h: shared set-up for the daemon integration suites: a real
 * redis-server per test (Check forks each test) and a squire started with
 * the test handlers and a fast poller.
 */
#ifndef SQ_ITEST_H
#define SQ_ITEST_H

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include <squire.h>

/* The test's server and a connection to it (defined in harness.c). */
extern sqt_redis R;
extern redisContext *C;

static inline void itest_setup(void)
{
    sqt_redis_start(&R, NULL);
    C = sqt_redis_connect(&R);
}

static inline void itest_teardown(void)
{
    if (C)
        redisFree(C);
    sqt_redis_stop(&R);
}

/* Fixtures for the suites that run the Ruby scripts: each Sidekiq version
 * is one test case with its own set-up. */
static inline void itest_setup_sidekiq_6(void)
{
    sqt_sidekiq_use(NULL);
    itest_setup();
}

static inline void itest_setup_sidekiq_7(void)
{
    sqt_sidekiq_use("7.3.10");
    itest_setup();
}

/* Add the case for Debian's 6.4.1 and, when ../shared/third_party holds it,
 * the one for 7.3.10 (else say why it is skipped). make(name, setup) builds
 * a case with every test. */
static inline void itest_add_sidekiq_cases(Suite *s, const char *name6, const char *name7,
                                           TCase *(*make)(const char *, void (*)(void)))
{
    suite_add_tcase(s, make(name6, itest_setup_sidekiq_6));
    if (sqt_third_party() != NULL)
        suite_add_tcase(s, make(name7, itest_setup_sidekiq_7));
    else
        printf("SKIP Sidekiq 7.3.10: %s/../shared/third_party/sidekiq-7.3.10 is absent "
               "(only the 6.4.1 cases run)\n",
               SQ_TEST_SOURCE_DIR);
}

/* Replace the test's Redis with a new one on `port`: for tests that start
 * squire against a port where nothing listens yet. */
static inline void itest_redis_on_port(int port)
{
    if (C)
        redisFree(C);
    sqt_redis_stop(&R);
    memset(&R, 0, sizeof R);
    R.port = port;
    sqt_tempdir(R.dir, "redis");
    snprintf(R.url, sizeof R.url, "redis://127.0.0.1:%d/0", port);
    sqt_redis_restart(&R);
    C = sqt_redis_connect(&R);
}

/* Write yaml to a temp sidekiq.yml and return its path (static buffer). */
static inline const char *itest_config(const char *yaml)
{
    static char path[300];
    char dir[256];
    sqt_tempdir(dir, "cfg");
    snprintf(path, sizeof path, "%s/sidekiq.yml", dir);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(yaml, f);
    fclose(f);
    return path;
}

/* squire -C <fast poller config> -r testjobs -c 3 -t <timeout> [more...] */
static inline void itest_squire(sqt_proc *p, const char *url, const char *timeout,
                         const char *const *more)
{
    const char *cfg = itest_config(":poll_interval_average: 0.2\n:beat_interval: 1\n");
    const char *argv[40] = {"-C", cfg, "-r", SQ_TEST_PLUGIN, "-c", "3", "-t", timeout};
    int n = 8;
    for (int i = 0; more && more[i] && n < 38; i++)
        argv[n++] = more[i];
    argv[n] = NULL;
    sqt_squire_start(p, url, argv, NULL);
    ck_assert_msg(sqt_log_wait(p, "starting", 10), "squire did not start");
}

static inline void itest_stop(sqt_proc *p)
{
    if (p->pid > 0) {
        kill(p->pid, SIGTERM);
        int st = sqt_proc_wait(p, 40);
        if (st != 0) {
            char *log = sqt_log_read(p);
            fprintf(stderr, "--- squire log ---\n%s\n", log);
            free(log);
        }
        ck_assert_int_eq(st, 0);
    }
}

/* Push one job with the C client; returns its jid in jid. */
static inline void itest_push(const char *klass, const char *args_json, const sq_push_opts *opts,
                       char jid[25])
{
    sq_error err = {0};
    sq_client *c = sq_client_new(R.url, &err);
    ck_assert_msg(c != NULL, "%s", err.message);
    json_t *args = json_loads(args_json, 0, NULL);
    ck_assert_ptr_nonnull(args);
    ck_assert_msg(sq_push(c, klass, args, opts, jid, &err) == 0, "%s", err.message);
    json_decref(args);
    sq_client_free(c);
}

/* The one member of a zset (retry/dead/schedule), parsed (new reference). */
static inline json_t *itest_only_member(const char *zset, double *score)
{
    redisReply *r = sqt_cmd(C, "ZRANGE %s 0 -1 WITHSCORES", zset);
    ck_assert_int_eq(r->type, REDIS_REPLY_ARRAY);
    ck_assert_int_eq(r->elements, 2);
    json_error_t e;
    json_t *j = json_loads(r->element[0]->str, 0, &e);
    ck_assert_msg(j != NULL, "%s is not JSON: %s", zset, r->element[0]->str);
    if (score)
        *score = strtod(r->element[1]->str, NULL);
    freeReplyObject(r);
    return j;
}

#endif
