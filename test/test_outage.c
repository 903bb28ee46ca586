/*
 * test_outage.c: the main thread stays responsive whatever Redis does
 * (docs/reliability.md, "Outages" and "Shutdown"). Redis is frozen with
 * SIGSTOP: connections open (the kernel's backlog accepts them) and every
 * command waits its whole timeout, as against a hung server or a network
 * that drops packets. Meanwhile TTIN and TSTP are acted on within about a
 * second, a TERM ends the process within -t and a few seconds, and reliable
 * fetch loses no job: what could not be pushed back stays in its working
 * list, and another process recovers it once Redis is back.
 */
#include <unistd.h>

#include "itest.h"

/* The -t of these tests, and how much longer than it a stop may take. */
#define STOP_TIMEOUT 3
#define STOP_SLACK 6.0
/* How late a signal may be acted on (about a second, on a loaded machine). */
#define SIGNAL_LATE 1.5

static const char *config(void)
{
    return itest_config(":poll_interval_average: 0.2\n:beat_interval: 1\n:lease_ttl: 2\n");
}

static void start(sqt_proc *p, const char *cfg)
{
    const char *argv[] = {"-C", cfg, "-r", SQ_TEST_PLUGIN, "-c", "3", "-t", "3", NULL};
    sqt_squire_start(p, R.url, argv, NULL);
    ck_assert_msg(sqt_log_wait(p, "starting", 10), "squire did not start");
}

/* Seconds until needle shows in p's log (polling), or -1 past timeout. */
static double log_delay(const sqt_proc *p, const char *needle, double timeout)
{
    double t0 = sqt_now();
    for (double until = t0 + timeout; sqt_now() < until; sqt_sleep(0.02)) {
        if (sqt_log_wait(p, needle, 0))
            return sqt_now() - t0;
    }
    return -1;
}

/* Jobs in working lists (what recovery hands back) and in queue:default. */
static long long jobs_kept(void)
{
    long long n = sqt_int(C, "LLEN queue:default");
    redisReply *r = sqt_cmd(C, "KEYS squire:w:*");
    for (size_t i = 0; i < r->elements; i++)
        n += sqt_int(C, "LLEN %s", r->element[i]->str);
    freeReplyObject(r);
    return n;
}

static void show_log(const sqt_proc *p)
{
    char *log = sqt_log_read(p);
    fprintf(stderr, "--- squire log ---\n%s\n", log);
    free(log);
}

/* Fenced by a frozen Redis (every renewal fails), the main thread still
 * answers TTIN and TSTP at once, and fetches again soon after Redis is
 * back. */
START_TEST(signals_are_acted_on_while_redis_is_frozen)
{
    sqt_proc p;
    start(&p, config());
    char jid[25];
    itest_push("OkJob", "[1]", NULL, jid);
    ck_assert_int_eq(sqt_wait_int(C, 1, 10, "SCARD test:done"), 1);
    kill(R.pid, SIGSTOP);
    bool fenced = sqt_log_wait(&p, "cannot renew the lease", 20);
    sqt_sleep(2.0); /* well into the outage: renewals keep failing */
    kill(p.pid, SIGTTIN);
    double ttin = log_delay(&p, "TTIN: 3 workers", 15);
    sqt_sleep(1.0);
    kill(p.pid, SIGTSTP);
    double tstp = log_delay(&p, "TSTP received", 15);
    kill(R.pid, SIGCONT);
    double renewed = log_delay(&p, "lease renewed: fetching again", 20);
    fprintf(stderr,
            "frozen Redis: TTIN after %.2f s, TSTP after %.2f s; renewal %.2f s after "
            "Redis was back\n",
            ttin, tstp, renewed);
    if (!fenced || ttin < 0 || ttin > SIGNAL_LATE || tstp < 0 || tstp > SIGNAL_LATE ||
        renewed < 0 || renewed > 3.0)
        show_log(&p);
    ck_assert_msg(fenced, "the lease's failure was not logged");
    ck_assert_msg(ttin >= 0 && ttin <= SIGNAL_LATE, "TTIN acted on after %.2f s", ttin);
    ck_assert_msg(tstp >= 0 && tstp <= SIGNAL_LATE, "TSTP acted on after %.2f s", tstp);
    ck_assert_msg(renewed >= 0 && renewed <= 3.0, "renewal %.2f s after Redis was back", renewed);
    /* the heartbeat is back and says quiet (the Web UI's state) */
    bool quiet = false;
    for (double until = sqt_now() + 10; !quiet && sqt_now() < until; sqt_sleep(0.2)) {
        redisReply *r = sqt_cmd(C, "SMEMBERS processes");
        if (r->elements == 1) {
            redisReply *q = sqt_cmd(C, "HGET %s quiet", r->element[0]->str);
            quiet = q->type == REDIS_REPLY_STRING && strcmp(q->str, "true") == 0;
            freeReplyObject(q);
        }
        freeReplyObject(r);
    }
    ck_assert_msg(quiet, "the heartbeat does not show the process quiet");
    double t0 = sqt_now();
    kill(p.pid, SIGTERM);
    ck_assert_int_eq(sqt_proc_wait(&p, 30), 0);
    ck_assert_msg(sqt_now() - t0 < STOP_SLACK, "an idle stop took %.1f s", sqt_now() - t0);
}
END_TEST

/* TERM while Redis is frozen, jobs running past -t: the process ends
 * within -t and a few seconds (Heroku and systemd SIGKILL 30 s after TERM,
 * with Sidekiq's -t of 25), and the jobs it could not push back wait in
 * their working lists: another process runs every one once Redis is back. */
static void stop_while_frozen(double frozen_before_term)
{
    enum { JOBS = 3 }; /* all running at the TERM */
    const char *cfg = config();
    sqt_proc p, q;
    start(&p, cfg);
    for (int i = 0; i < JOBS; i++) {
        char jid[25];
        itest_push("SleepJob", "[10]", NULL, jid); /* running past the stop */
    }
    ck_assert_int_eq(sqt_wait_int(C, 3, 10, "LLEN test:log"), 3); /* three started */
    kill(R.pid, SIGSTOP);
    sqt_sleep(frozen_before_term);
    double t0 = sqt_now();
    kill(p.pid, SIGTERM);
    /* during the wait for running jobs, TTIN says what is still running */
    sqt_sleep(0.5);
    kill(p.pid, SIGTTIN);
    double ttin = log_delay(&p, "TTIN: 3 workers", STOP_TIMEOUT);
    int st = sqt_proc_wait(&p, 60);
    double took = sqt_now() - t0;
    fprintf(stderr,
            "TERM %.1f s into a frozen Redis, -t %d: TTIN after %.2f s, the process ended "
            "after %.1f s (status %d)\n",
            frozen_before_term, STOP_TIMEOUT, ttin, took, st);
    kill(R.pid, SIGCONT);
    if (st != 0 || took > STOP_TIMEOUT + STOP_SLACK || ttin < 0 || ttin > SIGNAL_LATE)
        show_log(&p);
    ck_assert_msg(ttin >= 0 && ttin <= SIGNAL_LATE, "TTIN during the stop acted on after %.2f s",
                  ttin);
    ck_assert_int_eq(st, 0);
    ck_assert_msg(took <= STOP_TIMEOUT + STOP_SLACK, "the stop took %.1f s (-t %d)", took,
                  STOP_TIMEOUT);
    /* nothing lost: every job still in a queue or a working list */
    ck_assert_int_eq(sqt_int(C, "SCARD test:done"), 0);
    ck_assert_int_eq(jobs_kept(), JOBS);
    /* ... and another process runs them all (recovery after the lease) */
    start(&q, cfg);
    long long done = sqt_wait_int(C, JOBS, 60, "SCARD test:done");
    if (done != JOBS)
        show_log(&q);
    ck_assert_int_eq(done, JOBS);
    itest_stop(&q);
    redisReply *r = sqt_cmd(C, "KEYS squire:w:*");
    ck_assert_msg(r->elements == 0, "%zu working lists left", r->elements);
    freeReplyObject(r);
}

/* TERM at once: the first Redis calls of the stop find the outage. */
START_TEST(term_as_redis_freezes_ends_within_the_timeout)
{
    stop_while_frozen(0.2);
}
END_TEST

/* TERM well into the outage: fenced, renewals failing. */
START_TEST(term_during_a_frozen_redis_ends_within_the_timeout)
{
    stop_while_frozen(4.0);
}
END_TEST

/* A signal early in a freeze, while the main thread's first call to the
 * frozen Redis waits for its reply: acted on within about a second too. */
START_TEST(a_signal_early_in_a_freeze_is_acted_on_within_a_second)
{
    sqt_proc p;
    start(&p, config());
    sqt_sleep(1.5); /* the main thread renews the lease every 0.5 s */
    kill(R.pid, SIGSTOP);
    sqt_sleep(0.6);
    kill(p.pid, SIGTTIN);
    double ttin = log_delay(&p, "TTIN: 3 workers", 15);
    fprintf(stderr, "TTIN 0.6 s into a freeze acted on after %.2f s\n", ttin);
    kill(R.pid, SIGCONT);
    ck_assert_msg(ttin >= 0 && ttin <= SIGNAL_LATE, "TTIN acted on after %.2f s", ttin);
    itest_stop(&p);
}
END_TEST

/* A second TERM skips the wait for running jobs, also when both come while
 * Redis is frozen (a signal that comes while the same one is pending is
 * lost, so the main thread must have taken the first). */
START_TEST(a_second_term_in_a_freeze_skips_the_wait)
{
    const char *cfg = config();
    const char *argv[] = {"-C", cfg, "-r", SQ_TEST_PLUGIN, "-c", "3", "-t", "20", NULL};
    sqt_proc p;
    sqt_squire_start(&p, R.url, argv, NULL);
    ck_assert_msg(sqt_log_wait(&p, "starting", 10), "squire did not start");
    char jid[25];
    for (int i = 0; i < 3; i++)
        itest_push("SleepJob", "[30]", NULL, jid);
    ck_assert_int_eq(sqt_wait_int(C, 3, 10, "LLEN test:log"), 3);
    sqt_sleep(0.5);
    kill(R.pid, SIGSTOP);
    sqt_sleep(0.5);
    double t0 = sqt_now();
    kill(p.pid, SIGTERM);
    sqt_sleep(1.5);
    kill(p.pid, SIGTERM);
    int st = sqt_proc_wait(&p, 40);
    double took = sqt_now() - t0;
    kill(R.pid, SIGCONT);
    fprintf(stderr, "two TERMs 1.5 s apart in a freeze, -t 20: ended after %.1f s\n", took);
    if (st != 0 || took > 1.5 + STOP_SLACK)
        show_log(&p);
    ck_assert_int_eq(st, 0);
    ck_assert_msg(took <= 1.5 + STOP_SLACK, "the second TERM did not skip the wait: %.1f s", took);
    ck_assert_int_eq(jobs_kept(), 3);
}
END_TEST

/* A Redis that works but answers every command 0.7 s late (longer than the
 * main thread's first probe waits), after a short freeze has put the main
 * connection in probe mode: the probes must find it again, the lease be
 * renewed and jobs fetched, not stay fenced for as long as Redis is slow. */
START_TEST(a_slow_redis_after_a_freeze_is_used_again)
{
    int port;
    pid_t proxy = sqt_slow_proxy(R.port, 0.7, &port);
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/0", port);
    const char *cfg =
        itest_config(":poll_interval_average: 0.2\n:beat_interval: 5\n:lease_ttl: 6\n");
    const char *argv[] = {"-C", cfg, "-r", SQ_TEST_PLUGIN, "-c", "2", "-t", "3", NULL};
    sqt_proc p;
    sqt_squire_start(&p, url, argv, NULL);
    ck_assert_msg(sqt_log_wait(&p, "starting", 10), "squire did not start");
    char jid[25];
    itest_push("OkJob", "[1]", NULL, jid);
    ck_assert_int_eq(sqt_wait_int(C, 1, 20, "SCARD test:done"), 1);
    kill(R.pid, SIGSTOP);
    bool fenced = sqt_log_wait(&p, "cannot renew the lease", 20);
    kill(R.pid, SIGCONT);
    double renewed = log_delay(&p, "lease renewed: fetching again", 15);
    itest_push("OkJob", "[2]", NULL, jid);
    long long done = sqt_wait_int(C, 2, 15, "SCARD test:done");
    fprintf(stderr, "slow Redis (0.7 s a reply) after a freeze: renewed after %.2f s\n", renewed);
    if (!fenced || renewed < 0 || done != 2)
        show_log(&p);
    ck_assert_msg(fenced, "the lease's failure was not logged");
    ck_assert_msg(renewed >= 0, "the lease was not renewed within 15 s of a slow Redis's return");
    ck_assert_int_eq(done, 2);
    kill(p.pid, SIGTERM);
    ck_assert_int_eq(sqt_proc_wait(&p, 30), 0);
    sqt_trickle_stop(proxy);
}
END_TEST

/* Basic fetch, as Sidekiq: the jobs running at a hard stop are pushed back
 * when Redis answers in time, also a slow Redis (0.7 s a reply): Sidekiq
 * sends them all in one round trip, so must squire. */
START_TEST(basic_fetch_pushes_back_every_job_to_a_slow_redis)
{
    enum { JOBS = 8 };
    int port;
    pid_t proxy = sqt_slow_proxy(R.port, 0.7, &port);
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/0", port);
    const char *cfg = itest_config(":fetch: basic\n:beat_interval: 5\n");
    const char *argv[] = {"-C", cfg, "-r", SQ_TEST_PLUGIN, "-c", "8", "-t", "1", NULL};
    sqt_proc p;
    sqt_squire_start(&p, url, argv, NULL);
    ck_assert_msg(sqt_log_wait(&p, "starting", 10), "squire did not start");
    for (int i = 0; i < JOBS; i++) {
        char jid[25];
        itest_push("SleepJob", "[30]", NULL, jid);
    }
    ck_assert_int_eq(sqt_wait_int(C, JOBS, 30, "LLEN test:log"), JOBS);
    double t0 = sqt_now();
    kill(p.pid, SIGTERM);
    int st = sqt_proc_wait(&p, 30);
    double took = sqt_now() - t0;
    long long back = sqt_int(C, "LLEN queue:default");
    fprintf(stderr, "basic fetch, slow Redis, -t 1: %lld of %d jobs pushed back, %.1f s\n", back,
            JOBS, took);
    if (st != 0 || back != JOBS)
        show_log(&p);
    sqt_trickle_stop(proxy);
    ck_assert_int_eq(st, 0);
    ck_assert_msg(took <= 1 + STOP_SLACK, "the stop took %.1f s", took);
    ck_assert_int_eq(back, JOBS);
}
END_TEST

/* Seconds until the n-th (from 1) line holding needle shows in p's log. */
static double nth_log_delay(const sqt_proc *p, const char *needle, int n, double timeout)
{
    double t0 = sqt_now();
    for (double until = t0 + timeout; sqt_now() < until; sqt_sleep(0.02)) {
        char *log = sqt_log_read(p);
        int seen = 0;
        for (const char *x = log; (x = strstr(x, needle)) != NULL; x++)
            seen++;
        free(log);
        if (seen >= n)
            return sqt_now() - t0;
    }
    return -1;
}

/* A Redis that answers every command, 0.7 s late: the main loop's turns
 * (a beat is several round trips) must not hold signals for seconds. */
START_TEST(signals_are_acted_on_with_a_slow_redis)
{
    int port;
    pid_t proxy = sqt_slow_proxy(R.port, 0.7, &port);
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/0", port);
    const char *cfg = itest_config(":beat_interval: 1\n");
    const char *argv[] = {"-C", cfg, "-r", SQ_TEST_PLUGIN, "-c", "2", NULL};
    sqt_proc p;
    sqt_squire_start(&p, url, argv, NULL);
    ck_assert_msg(sqt_log_wait(&p, "starting", 10), "squire did not start");
    sqt_sleep(2.0);
    double worst = 0;
    for (int i = 1; i <= 3; i++) {
        kill(p.pid, SIGTTIN);
        double d = nth_log_delay(&p, "TTIN: 2 workers", i, 15);
        fprintf(stderr, "slow Redis: TTIN %d acted on after %.2f s\n", i, d);
        worst = d < 0 || d > worst ? (d < 0 ? 99 : d) : worst;
        sqt_sleep(5.2 + 0.3 * i); /* past the dumps' 5 s rate limit, elsewhere in a turn */
    }
    kill(p.pid, SIGTSTP);
    double tstp = log_delay(&p, "TSTP received", 15);
    fprintf(stderr, "slow Redis: TSTP acted on after %.2f s\n", tstp);
    itest_stop(&p);
    sqt_trickle_stop(proxy);
    ck_assert_msg(worst <= SIGNAL_LATE, "a TTIN acted on after %.2f s", worst);
    ck_assert_msg(tstp >= 0 && tstp <= SIGNAL_LATE, "TSTP acted on after %.2f s", tstp);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("outage");
    TCase *tc = tcase_create("frozen redis");
    tcase_add_checked_fixture(tc, itest_setup, itest_teardown);
    tcase_set_timeout(tc, 180);
    tcase_add_test(tc, signals_are_acted_on_while_redis_is_frozen);
    tcase_add_test(tc, term_as_redis_freezes_ends_within_the_timeout);
    tcase_add_test(tc, term_during_a_frozen_redis_ends_within_the_timeout);
    tcase_add_test(tc, a_signal_early_in_a_freeze_is_acted_on_within_a_second);
    tcase_add_test(tc, a_second_term_in_a_freeze_skips_the_wait);
    suite_add_tcase(s, tc);
    TCase *slow = tcase_create("slow redis");
    tcase_add_checked_fixture(slow, itest_setup, itest_teardown);
    tcase_set_timeout(slow, 180);
    tcase_add_test(slow, a_slow_redis_after_a_freeze_is_used_again);
    tcase_add_test(slow, basic_fetch_pushes_back_every_job_to_a_slow_redis);
    tcase_add_test(slow, signals_are_acted_on_with_a_slow_redis);
    suite_add_tcase(s, slow);
    return sqt_run(s);
}
