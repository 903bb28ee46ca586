/*
 * test_isolated.c: isolated mode (issue 15). Handlers that SIGSEGV, abort,
 * _exit, hang, ignore TERM or allocate without bound each cost exactly their
 * own job (retry or dead set, with Squire::WorkerCrashed or
 * Squire::JobTimeout), while the jobs next to them finish, the daemon stays
 * up and nothing is lost or run twice. Also: worker processes recycled
 * after N jobs and above an RSS limit, the per-process init hook, shutdown
 * in the middle of an isolated job, and the cooperative timeout of thread
 * mode.
 */
#include <unistd.h>

#include "itest.h"

/* squire -C <yaml + fast poller> -r testjobs -c conc -t stop [more] */
static void start_t(sqt_proc *p, const char *yaml, const char *conc, const char *stop,
                    const char *const *more)
{
    char text[1024];
    snprintf(text, sizeof text, ":poll_interval_average: 0.2\n:beat_interval: 1\n%s", yaml);
    const char *cfg = itest_config(text);
    const char *argv[20] = {"-C", cfg, "-r", SQ_TEST_ISOPLUGIN, "-c", conc, "-t", stop};
    int n = 8;
    for (int i = 0; more && more[i] && n < 18; i++)
        argv[n++] = more[i];
    argv[n] = NULL;
    sqt_squire_start(p, R.url, argv, NULL);
    ck_assert_msg(sqt_log_wait(p, "starting", 10), "squire did not start");
}

static void start(sqt_proc *p, const char *yaml, const char *conc, const char *const *more)
{
    start_t(p, yaml, conc, "5", more);
}

static const char *const ISOLATED[] = {"--isolated", NULL};

/* How a SIGSEGV handler's death reads: under AddressSanitizer its own SEGV
 * handler reports the fault and exits 1 instead. */
#if defined(__SANITIZE_ADDRESS__)
#define SEGV_DEATH "exit status 1"
#else
#define SEGV_DEATH "SIGSEGV"
#endif

/* The member of zset whose jid is jid (new reference), or NULL. */
static json_t *member_with_jid(const char *zset, const char *jid)
{
    redisReply *r = sqt_cmd(C, "ZRANGE %s 0 -1", zset);
    json_t *found = NULL;
    for (size_t i = 0; i < r->elements && found == NULL; i++) {
        json_t *j = json_loads(r->element[i]->str, 0, NULL);
        if (j != NULL && strcmp(json_string_value(json_object_get(j, "jid")), jid) == 0)
            found = j;
        else
            json_decref(j);
    }
    freeReplyObject(r);
    return found;
}

/* jid sits in zset with error_class cls and a message holding needle. */
static void assert_failed(const char *zset, const char *jid, const char *cls, const char *needle)
{
    json_t *j = member_with_jid(zset, jid);
    ck_assert_msg(j != NULL, "%s is not in %s", jid, zset);
    const char *c = json_string_value(json_object_get(j, "error_class"));
    const char *m = json_string_value(json_object_get(j, "error_message"));
    ck_assert_msg(c && strcmp(c, cls) == 0, "%s: error_class %s, want %s", jid, c, cls);
    ck_assert_msg(m && strstr(m, needle), "%s: error_message '%s' lacks '%s'", jid, m, needle);
    json_decref(j);
}

static long long runs(const char *jid)
{
    return sqt_int(C, "HGET test:runs %s", jid);
}

/* Nothing left behind: the queue and every working list are empty (a
 * finished job leaves its working list with the worker's next fetch: wait
 * a moment for it). */
static void assert_nothing_held(void)
{
    ck_assert_int_eq(sqt_int(C, "LLEN queue:default"), 0);
    long long held = 0;
    for (double until = sqt_now() + 5;;) {
        held = 0;
        redisReply *r = sqt_cmd(C, "KEYS squire:w:*");
        for (size_t i = 0; i < r->elements; i++)
            held += sqt_int(C, "LLEN %s", r->element[i]->str);
        freeReplyObject(r);
        if (held == 0 || sqt_now() > until)
            break;
        sqt_sleep(0.1);
    }
    ck_assert_int_eq(held, 0);
}

START_TEST(crashes_cost_only_their_own_job)
{
    sqt_proc p;
    start(&p, "", "4", ISOLATED);
    char ok[12][25], segv[25], abrt[25], ex[25], chain[25];
    sq_push_opts dead = {.extra = json_pack("{s:i}", "retry", 0)};
    /* the neighbours first, so they are in flight when the crashes come */
    for (int i = 0; i < 12; i++)
        itest_push("WorkJob", "[1, 300]", NULL, ok[i]);
    itest_push("SegvJob", "[]", NULL, segv);
    itest_push("AbortJob", "[]", &dead, abrt);
    itest_push("ExitJob", "[]", NULL, ex);
    itest_push("ChainJob", "[]", NULL, chain); /* sq_job_client in a worker process */
    json_decref(dead.extra);
    ck_assert_int_eq(sqt_wait_int(C, 2, 20, "ZCARD retry"), 2);
    ck_assert_int_eq(sqt_wait_int(C, 1, 20, "ZCARD dead"), 1);
    ck_assert_int_eq(sqt_wait_int(C, 13, 20, "SCARD test:done"), 13); /* 12 + chain's OkJob */
    for (int i = 0; i < 12; i++) {
        ck_assert_int_eq(sqt_int(C, "SISMEMBER test:done %s", ok[i]), 1);
        ck_assert_int_eq(runs(ok[i]), 1);
    }
    assert_failed("retry", segv, "Squire::WorkerCrashed", SEGV_DEATH);
    assert_failed("dead", abrt, "Squire::WorkerCrashed", "SIGABRT");
    assert_failed("retry", ex, "Squire::WorkerCrashed", "exit status 7");
    ck_assert_int_eq(runs(segv), 1);
    ck_assert_int_eq(runs(abrt), 1);
    ck_assert_int_eq(runs(ex), 1);
    ck_assert_int_eq(runs(chain), 1);
    /* the daemon is up and its replaced worker processes take new jobs */
    ck_assert_int_eq(kill(p.pid, 0), 0);
    char after[25];
    itest_push("OkJob", "[]", NULL, after);
    ck_assert_int_eq(sqt_wait_int(C, 1, 10, "SISMEMBER test:done %s", after), 1);
    assert_nothing_held();
    itest_stop(&p);
    ck_assert_int_eq(sqt_int(C, "GET stat:failed"), 3);
    ck_assert_int_eq(sqt_int(C, "GET stat:processed"), 18);
}
END_TEST

/* A crash is seen even when a process the handler forked still holds the
 * worker process's socket open (no end of file on it). */
START_TEST(crash_is_seen_with_the_socket_held_open)
{
    sqt_proc p;
    start(&p, "", "1", ISOLATED);
    char jid[25], ok[25];
    double t0 = sqt_now();
    itest_push("ForkSegvJob", "[]", NULL, jid);
    itest_push("OkJob", "[]", NULL, ok);
    ck_assert_int_eq(sqt_wait_int(C, 1, 10, "ZCARD retry"), 1);
    ck_assert_msg(sqt_now() - t0 < 4, "the crash took %.1f s to be seen", sqt_now() - t0);
    assert_failed("retry", jid, "Squire::WorkerCrashed", SEGV_DEATH);
    ck_assert_int_eq(sqt_wait_int(C, 1, 10, "SISMEMBER test:done %s", ok), 1);
    ck_assert_int_eq(runs(jid), 1);
    itest_stop(&p);
}
END_TEST

/* The per-process pids the fork server (the daemon's child) and its worker
 * processes have, into procs; returns how many (the fork server first). */
static int family(pid_t daemon, int *procs, int max)
{
    char *out = NULL;
    sqt_sh(R.url, &out, "s=$(pgrep -P %d); echo $s $(pgrep -P $s)", (int)daemon);
    int n = 0;
    for (char *tok = strtok(out, " \n"); tok && n < max; tok = strtok(NULL, " \n"))
        procs[n++] = atoi(tok);
    free(out);
    return n;
}

static void assert_all_gone(const int *procs, int n)
{
    for (int i = 0; i < n; i++) {
        double until = sqt_now() + 5;
        while (kill(procs[i], 0) == 0 && sqt_now() < until)
            sqt_sleep(0.05);
        ck_assert_msg(kill(procs[i], 0) != 0, "process %d outlived the daemon", procs[i]);
    }
}

/* A handler that kills its own process group (kill(0, SIGKILL)) kills its
 * worker process, not the daemon that shares the group with it. */
START_TEST(group_kill_costs_only_its_own_job)
{
    sqt_proc p;
    const char *const env[] = {"SQT_OWN_GROUP=1", NULL};
    char text[256];
    snprintf(text, sizeof text, ":poll_interval_average: 0.2\n:beat_interval: 1\n");
    const char *argv[] = {"-C", itest_config(text), "-r", SQ_TEST_ISOPLUGIN, "-c",
                          "2",  "--isolated",       NULL};
    sqt_squire_start(&p, R.url, argv, env);
    ck_assert_msg(sqt_log_wait(&p, "starting", 10), "squire did not start");
    char sleeper[25], killer[25], after[25];
    sq_push_opts dead = {.extra = json_pack("{s:i}", "retry", 0)};
    itest_push("SleepJob", "[1]", NULL, sleeper);
    ck_assert_int_eq(sqt_wait_int(C, 1, 10, "LLEN test:log"), 1);
    itest_push("KillGroupJob", "[]", &dead, killer);
    json_decref(dead.extra);
    ck_assert_int_eq(sqt_wait_int(C, 1, 10, "ZCARD dead"), 1);
    assert_failed("dead", killer, "Squire::WorkerCrashed", "SIGKILL");
    ck_assert_int_eq(sqt_wait_int(C, 1, 10, "SISMEMBER test:done %s", sleeper), 1);
    itest_push("OkJob", "[]", NULL, after);
    ck_assert_int_eq(sqt_wait_int(C, 1, 10, "SISMEMBER test:done %s", after), 1);
    ck_assert_int_eq(runs(killer), 1);
    ck_assert_int_eq(runs(sleeper), 1);
    assert_nothing_held();
    itest_stop(&p);
}
END_TEST

/* A handler that writes a truncated result header into its worker
 * process's socket and then hangs is still stopped at its timeout: the
 * daemon never waits on a worker process's bytes past the deadline. */
START_TEST(truncated_result_does_not_outlive_the_timeout)
{
    sqt_proc p;
    start(&p, ":worker_kill_grace: 0.5\n", "2", ISOLATED);
    char jid[25], ok[25];
    sq_push_opts one = {.extra = json_pack("{s:i, s:i}", "squire_timeout", 1, "retry", 0)};
    double t0 = sqt_now();
    itest_push("GarbageJob", "[]", &one, jid);
    json_decref(one.extra);
    ck_assert_int_eq(sqt_wait_int(C, 1, 12, "ZCARD dead"), 1);
    ck_assert_msg(sqt_now() - t0 < 6, "the timeout took %.1f s", sqt_now() - t0);
    assert_failed("dead", jid, "Squire::JobTimeout", "timeout of 1 s");
    ck_assert_int_eq(runs(jid), 1);
    itest_push("OkJob", "[]", NULL, ok);
    ck_assert_int_eq(sqt_wait_int(C, 1, 10, "SISMEMBER test:done %s", ok), 1);
    assert_nothing_held();
    itest_stop(&p);
}
END_TEST

/* More ways for a handler to wreck its process: stop itself, exit(0)
 * mid-job, close every inherited descriptor, leave a daemonized
 * grandchild holding them. Each costs its own job at most; the jobs
 * after them run in fresh (or the same, healthy) worker processes. */
START_TEST(assorted_misbehaviour_costs_only_its_own_job)
{
    sqt_proc p;
    start(&p, ":worker_kill_grace: 0.5\n", "2", ISOLATED);
    char stop[25], ex0[25], closer[25], daemonize[25], ok[6][25];
    sq_push_opts one = {.extra = json_pack("{s:i, s:i}", "squire_timeout", 1, "retry", 0)};
    itest_push("StopSelfJob", "[]", &one, stop);
    json_decref(one.extra);
    itest_push("ExitZeroJob", "[]", NULL, ex0);
    itest_push("CloseFdsJob", "[]", NULL, closer);
    itest_push("DaemonizeJob", "[]", NULL, daemonize);
    for (int i = 0; i < 6; i++)
        itest_push("OkJob", "[]", NULL, ok[i]);
    ck_assert_int_eq(sqt_wait_int(C, 1, 10, "ZCARD dead"), 1);
    ck_assert_int_eq(sqt_wait_int(C, 2, 10, "ZCARD retry"), 2);
    ck_assert_int_eq(sqt_wait_int(C, 7, 10, "SCARD test:done"), 7);
    assert_failed("dead", stop, "Squire::JobTimeout", "timeout of 1 s");
    assert_failed("retry", ex0, "Squire::WorkerCrashed", "exit status 0");
    assert_failed("retry", closer, "Squire::WorkerCrashed", "worker process");
    ck_assert_int_eq(sqt_int(C, "SISMEMBER test:done %s", daemonize), 1);
    for (int i = 0; i < 6; i++)
        ck_assert_int_eq(runs(ok[i]), 1);
    ck_assert_int_eq(runs(stop), 1);
    ck_assert_int_eq(runs(ex0), 1);
    ck_assert_int_eq(runs(closer), 1);
    ck_assert_int_eq(runs(daemonize), 1);
    assert_nothing_held();
    double t0 = sqt_now();
    itest_stop(&p); /* the grandchild holding a socket does not hold up the stop */
    ck_assert_msg(sqt_now() - t0 < 5, "the stop took %.1f s", sqt_now() - t0);
}
END_TEST

/* Redis dies and comes back while isolated jobs run: their results are
 * written once it is back, nothing is lost or run twice. */
START_TEST(redis_restart_mid_job_loses_and_repeats_nothing)
{
    sqt_proc p;
    start(&p, "", "2", ISOLATED);
    char a[25], b[25];
    itest_push("SleepJob", "[2]", NULL, a);
    itest_push("SleepJob", "[2]", NULL, b);
    ck_assert_int_eq(sqt_wait_int(C, 2, 10, "LLEN test:log"), 2);
    freeReplyObject(sqt_cmd(C, "SAVE")); /* the restart loads it: jobs in working lists */
    redisFree(C);
    C = NULL;
    sqt_redis_kill9(&R);
    sqt_sleep(0.5);
    sqt_redis_restart(&R);
    C = sqt_redis_connect(&R);
    ck_assert_int_eq(sqt_wait_int(C, 1, 20, "SISMEMBER test:done %s", a), 1);
    ck_assert_int_eq(sqt_wait_int(C, 1, 20, "SISMEMBER test:done %s", b), 1);
    ck_assert_int_eq(runs(a), 1);
    ck_assert_int_eq(runs(b), 1);
    ck_assert_int_eq(sqt_int(C, "ZCARD retry"), 0);
    ck_assert_int_eq(sqt_int(C, "ZCARD dead"), 0);
    assert_nothing_held();
    itest_stop(&p);
}
END_TEST

/* Run from a terminal with `stty tostop`, a worker process (a background
 * process group there) that writes to it is not stopped: here its log line
 * about the failing init hook, again at each new try. */
START_TEST(worker_processes_on_a_tostop_terminal_keep_running)
{
    char dir[256], jid[25];
    if (sqt_sh(NULL, NULL, "script -qec true /dev/null >/dev/null 2>&1") != 0) {
        fprintf(stderr, "skipped: script(1) cannot open a pseudo-terminal here\n");
        return;
    }
    sqt_tempdir(dir, "tty");
    itest_push("OkJob", "[]", NULL, jid);
    const char *cfg = itest_config(":poll_interval_average: 0.2\n");
    char *out = NULL;
    sqt_sh(R.url, &out,
           "cd %s && SQUIRE_ALLOW_ROOT=1 SQT_FAIL_CHILD_INIT=1 timeout -s KILL 3 script -qec "
           "'stty tostop; exec %s -C %s -r %s -c 1 -t 1 --isolated' /dev/null >tty.log 2>&1; "
           "grep -c 'the init hook failed' tty.log",
           dir, SQ_TEST_SQUIRE, cfg, SQ_TEST_ISOPLUGIN);
    int lines = atoi(out);
    free(out);
    ck_assert_msg(lines >= 2, "%d log lines from worker processes: stopped by SIGTTOU?", lines);
}
END_TEST

/* A handler that stops the fork server (SIGSTOP to its parent): the daemon
 * resumes it, worker processes still start, and TERM still stops the
 * daemon. */
START_TEST(stopped_fork_server_is_resumed)
{
    sqt_proc p;
    start(&p, "", "2", ISOLATED);
    char stopper[25], ok[4][25];
    itest_push("StopServerJob", "[]", NULL, stopper);
    ck_assert_int_eq(sqt_wait_int(C, 1, 10, "SISMEMBER test:done %s", stopper), 1);
    /* two at once: the second worker thread needs a new worker process */
    for (int i = 0; i < 4; i++)
        itest_push("SleepJob", "[0.3]", NULL, ok[i]);
    ck_assert_int_eq(sqt_wait_int(C, 5, 10, "SCARD test:done"), 5);
    ck_assert(sqt_log_wait(&p, "the fork server was stopped", 1));
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(runs(ok[i]), 1);
    assert_nothing_held();
    itest_stop(&p);
}
END_TEST

START_TEST(kill_9_of_the_daemon_leaves_no_worker_process)
{
    sqt_proc p;
    start(&p, "", "2", ISOLATED);
    char a[25], b[25];
    itest_push("SleepJob", "[30]", NULL, a);
    itest_push("SleepJob", "[30]", NULL, b);
    ck_assert_int_eq(sqt_wait_int(C, 2, 10, "LLEN test:log"), 2);
    int procs[8];
    int n = family(p.pid, procs, 8);
    ck_assert_int_eq(n, 3);
    sqt_proc_stop(&p, SIGKILL);
    assert_all_gone(procs, n);
    /* both jobs stay in their working lists for recovery: none lost */
    redisReply *r = sqt_cmd(C, "KEYS squire:w:*");
    long long held = 0;
    for (size_t i = 0; i < r->elements; i++)
        held += sqt_int(C, "LLEN %s", r->element[i]->str);
    freeReplyObject(r);
    ck_assert_int_eq(held, 2);
}
END_TEST

START_TEST(hung_jobs_are_killed_at_their_timeouts)
{
    sqt_proc p;
    start(&p, ":job_timeout: 2\n:worker_kill_grace: 0.5\n", "4", ISOLATED);
    char hang[25], stubborn[25], sleeper[25], ok[6][25];
    /* per-job key (1 s), per-class timeout (1 s, TERM ignored: KILL), config (2 s) */
    sq_push_opts one = {.extra = json_pack("{s:i, s:i}", "squire_timeout", 1, "retry", 0)};
    double t0 = sqt_now();
    itest_push("HangJob", "[]", &one, hang);
    json_decref(one.extra);
    itest_push("StubbornJob", "[]", NULL, stubborn);
    itest_push("SleepJob", "[30]", NULL, sleeper);
    for (int i = 0; i < 6; i++)
        itest_push("WorkJob", "[1, 200]", NULL, ok[i]);
    ck_assert_int_eq(sqt_wait_int(C, 1, 15, "ZCARD dead"), 1);
    ck_assert_int_eq(sqt_wait_int(C, 2, 15, "ZCARD retry"), 2);
    double took = sqt_now() - t0;
    ck_assert_msg(took < 6, "timeouts took %.1f s", took);
    assert_failed("dead", hang, "Squire::JobTimeout", "timeout of 1 s");
    assert_failed("dead", hang, "Squire::JobTimeout", "SIGTERM");
    assert_failed("retry", stubborn, "Squire::JobTimeout", "SIGKILL");
    assert_failed("retry", sleeper, "Squire::JobTimeout", "timeout of 2 s");
    ck_assert_int_eq(sqt_wait_int(C, 6, 10, "SCARD test:done"), 6);
    ck_assert_int_eq(runs(hang), 1);
    ck_assert_int_eq(runs(stubborn), 1);
    ck_assert_int_eq(kill(p.pid, 0), 0);
    ck_assert(sqt_log_wait(&p, "past its timeout of 1 s: stopping worker process", 1));
    assert_nothing_held();
    itest_stop(&p);
}
END_TEST

START_TEST(cpu_limit_stops_a_spinning_job_not_a_sleeping_one)
{
    sqt_proc p;
    start(&p, ":job_cpu_limit: 1\n", "2", ISOLATED);
    char hang[25], sleeper[25];
    itest_push("HangJob", "[]", NULL, hang);
    itest_push("SleepJob", "[2]", NULL, sleeper);
    ck_assert_int_eq(sqt_wait_int(C, 1, 20, "ZCARD retry"), 1);
    assert_failed("retry", hang, "Squire::JobTimeout", "CPU time");
    assert_failed("retry", hang, "Squire::JobTimeout", "SIGXCPU");
    /* 2 s asleep is not 2 s of CPU */
    ck_assert_int_eq(sqt_wait_int(C, 1, 10, "SISMEMBER test:done %s", sleeper), 1);
    ck_assert_int_eq(runs(hang), 1);
    itest_stop(&p);
}
END_TEST

/* The per-job key as Ruby sets it: HangJob.set(squire_timeout: 1) */
START_TEST(timeout_set_from_ruby_is_enforced)
{
    sqt_proc p;
    start(&p, "", "1", ISOLATED);
    char *out = NULL;
    ck_assert_int_eq(sqt_ruby(R.url, &out, "sidekiq.rb", "set_timeout 1"), 0);
    json_t *j = json_loads(out, 0, NULL);
    free(out);
    ck_assert_ptr_nonnull(j);
    char jid[64];
    snprintf(jid, sizeof jid, "%s", json_string_value(json_object_get(j, "jid")));
    json_decref(j);
    ck_assert_int_eq(sqt_wait_int(C, 1, 15, "ZCARD dead"), 1);
    assert_failed("dead", jid, "Squire::JobTimeout", "timeout of 1 s");
    ck_assert_int_eq(runs(jid), 1);
    itest_stop(&p);
}
END_TEST

START_TEST(runaway_allocation_costs_its_job)
{
#if defined(__SANITIZE_ADDRESS__)
    printf("SKIP runaway_allocation_costs_its_job: an address-space limit and ASan's shadow "
           "memory exclude each other\n");
    return;
#endif
    sqt_proc p;
    start(&p, ":worker_max_memory_mb: 200\n", "2", ISOLATED);
    char hog[25], ok[4][25];
    itest_push("HogJob", "[]", NULL, hog);
    for (int i = 0; i < 4; i++)
        itest_push("WorkJob", "[1, 200]", NULL, ok[i]);
    ck_assert_int_eq(sqt_wait_int(C, 1, 20, "ZCARD retry"), 1);
    assert_failed("retry", hog, "Squire::WorkerCrashed", "SIGSEGV");
    ck_assert_int_eq(sqt_wait_int(C, 4, 10, "SCARD test:done"), 4);
    ck_assert_int_eq(runs(hog), 1);
    ck_assert_int_eq(kill(p.pid, 0), 0);
    assert_nothing_held();
    itest_stop(&p);
}
END_TEST

/* The pids PidJob recorded, in order, into pids (max n); returns how many. */
static int recorded_pids(int *pids, int n, bool *all_inited)
{
    redisReply *r = sqt_cmd(C, "LRANGE test:log 0 -1");
    int k = 0;
    *all_inited = true;
    for (size_t i = 0; i < r->elements && k < n; i++) {
        json_t *j = json_loads(r->element[i]->str, 0, NULL);
        const char *what = json_string_value(json_object_get(j, "what"));
        if (what && strncmp(what, "pid:", 4) == 0) {
            pids[k++] = atoi(what + 4);
            if (strstr(what, ":init") == NULL)
                *all_inited = false;
        }
        json_decref(j);
    }
    freeReplyObject(r);
    return k;
}

START_TEST(worker_processes_are_recycled_and_inited)
{
    sqt_proc p;
    start(&p, ":worker_max_jobs: 2\n", "1", ISOLATED);
    char jid[25];
    for (int i = 0; i < 6; i++) {
        itest_push("PidJob", "[]", NULL, jid);
        ck_assert_int_eq(sqt_wait_int(C, 1, 10, "SISMEMBER test:done %s", jid), 1);
    }
    int pids[6];
    bool inited;
    ck_assert_int_eq(recorded_pids(pids, 6, &inited), 6);
    ck_assert_msg(inited, "the per-process init hook did not run in every worker process");
    for (int i = 0; i < 6; i += 2) {
        ck_assert_int_eq(pids[i], pids[i + 1]);
        ck_assert_int_ne(pids[i], p.pid);
        if (i > 0)
            ck_assert_int_ne(pids[i], pids[i - 1]);
    }
    ck_assert(sqt_log_wait(&p, "retired after 2 jobs", 1));
    /* an idle worker process killed from outside is replaced, and the next
     * job is not charged for it */
    itest_push("PidJob", "[]", NULL, jid);
    ck_assert_int_eq(sqt_wait_int(C, 1, 10, "SISMEMBER test:done %s", jid), 1);
    int seven[7];
    ck_assert_int_eq(recorded_pids(seven, 7, &inited), 7);
    kill(seven[6], SIGKILL);
    sqt_sleep(0.3);
    itest_push("PidJob", "[]", NULL, jid);
    ck_assert_int_eq(sqt_wait_int(C, 1, 10, "SISMEMBER test:done %s", jid), 1);
    ck_assert_int_eq(runs(jid), 2); /* its pid: record and its ok record */
    ck_assert_int_eq(sqt_int(C, "ZCARD retry"), 0);
    ck_assert(sqt_log_wait(&p, "ended between jobs with signal 9", 1));
    itest_stop(&p);

    /* above an RSS limit: every worker process retires after its job */
    redisReply *r = sqt_cmd(C, "DEL test:log test:done");
    freeReplyObject(r);
    start(&p, ":worker_max_rss_mb: 1\n", "1", ISOLATED);
    for (int i = 0; i < 3; i++) {
        itest_push("PidJob", "[]", NULL, jid);
        ck_assert_int_eq(sqt_wait_int(C, 1, 10, "SISMEMBER test:done %s", jid), 1);
    }
    ck_assert_int_eq(recorded_pids(pids, 3, &inited), 3);
    ck_assert(pids[0] != pids[1] && pids[1] != pids[2] && pids[0] != pids[2]);
    itest_stop(&p);
}
END_TEST

START_TEST(term_stops_isolated_jobs_and_pushes_them_back)
{
    sqt_proc p;
    start_t(&p, "", "2", "1", ISOLATED);
    char polite[25], sleeper[25];
    itest_push("PoliteSleepJob", "[30]", NULL, polite);
    itest_push("SleepJob", "[30]", NULL, sleeper);
    ck_assert_int_eq(sqt_wait_int(C, 2, 10, "LLEN test:log"), 2);
    int procs[8];
    int nprocs = family(p.pid, procs, 8);
    ck_assert_int_eq(nprocs, 3);
    /* the Web UI's Busy page sees both jobs, as in thread mode */
    redisReply *r = sqt_cmd(C, "SMEMBERS processes");
    ck_assert_int_eq(r->elements, 1);
    char ident[300];
    snprintf(ident, sizeof ident, "%s", r->element[0]->str);
    freeReplyObject(r);
    ck_assert_int_eq(sqt_wait_int(C, 2, 5, "HLEN %s:work", ident), 2);
    ck_assert_int_eq(sqt_wait_int(C, 2, 5, "HGET %s busy", ident), 2);
    double t0 = sqt_now();
    kill(p.pid, SIGTERM);
    ck_assert_int_eq(sqt_proc_wait(&p, 15), 0);
    ck_assert(sqt_now() - t0 < 6);
    /* the polite one saw sq_job_stopping in its process; the other was
     * pushed back after -t 1 and its process killed: both back, unfailed */
    ck_assert_int_eq(sqt_int(C, "LLEN queue:default"), 2);
    ck_assert_int_eq(sqt_int(C, "ZCARD retry"), 0);
    ck_assert_int_eq(sqt_int(C, "ZCARD dead"), 0);
    ck_assert(sqt_log_wait(&p, "interrupted by shutdown", 1));
    assert_all_gone(procs, nprocs); /* no worker process outlives the daemon */
}
END_TEST

/* An init hook that fails leaves the job unrun and uncharged, and the
 * process does not look healthy meanwhile. */
START_TEST(failing_init_hook_charges_nothing_and_does_not_look_healthy)
{
    const char *cfg = itest_config(":poll_interval_average: 0.2\n:beat_interval: 1\n");
    const char *argv[] = {"-C", cfg, "-r", SQ_TEST_ISOPLUGIN, "-c", "1", "--isolated", NULL};
    const char *env[] = {"SQT_FAIL_CHILD_INIT=1", NULL};
    sqt_proc p;
    sqt_squire_start(&p, R.url, argv, env);
    ck_assert(sqt_log_wait(&p, "starting", 10));
    char jid[25];
    itest_push("OkJob", "[]", NULL, jid);
    ck_assert(sqt_log_wait(&p, "the init hook failed", 10));
    redisReply *r = sqt_cmd(C, "SMEMBERS processes");
    ck_assert_int_eq(r->elements, 1);
    char ident[300];
    snprintf(ident, sizeof ident, "%s", r->element[0]->str);
    freeReplyObject(r);
    /* after 5 s the heartbeat says so, with the reason */
    double until = sqt_now() + 15;
    bool shown = false;
    while (!shown && sqt_now() < until) {
        r = sqt_cmd(C, "HGET %s fetch_error", ident);
        shown = r->type == REDIS_REPLY_STRING && strstr(r->str, "before its first job");
        freeReplyObject(r);
        if (!shown)
            sqt_sleep(0.2);
    }
    ck_assert_msg(shown, "the heartbeat does not show the failing worker");
    r = sqt_cmd(C, "HGET %s info", ident);
    ck_assert_ptr_nonnull(strstr(r->str, "fetch-failing"));
    freeReplyObject(r);
    itest_stop(&p);
    ck_assert_int_eq(sqt_int(C, "HGET test:runs %s", jid), 0);
    ck_assert_int_eq(sqt_int(C, "ZCARD retry"), 0);
    ck_assert_int_eq(sqt_int(C, "ZCARD dead"), 0);
    ck_assert_int_eq(sqt_int(C, "LLEN queue:default"), 1);
}
END_TEST

START_TEST(fork_server_death_stops_the_daemon_and_loses_nothing)
{
    sqt_proc p;
    start(&p, "", "2", ISOLATED);
    char sleeper[25];
    itest_push("SleepJob", "[30]", NULL, sleeper);
    ck_assert_int_eq(sqt_wait_int(C, 1, 10, "LLEN test:log"), 1);
    char *out = NULL;
    sqt_sh(R.url, &out, "pgrep -P %d", (int)p.pid);
    int server = atoi(out);
    free(out);
    ck_assert_int_gt(server, 1);
    kill(server, SIGKILL);
    /* its worker processes die with it; the daemon cannot run jobs any
     * more, so it stops (exit 1, for the service manager to restart it) and
     * the job that was running goes back to its queue, uncharged */
    ck_assert_int_eq(sqt_proc_wait(&p, 15), 1);
    ck_assert(sqt_log_wait(&p, "the fork server died", 1));
    ck_assert_int_eq(sqt_int(C, "LLEN queue:default"), 1);
    ck_assert_int_eq(sqt_int(C, "ZCARD retry"), 0);
    ck_assert_int_eq(sqt_int(C, "ZCARD dead"), 0);
}
END_TEST

START_TEST(thread_mode_timeout_is_cooperative)
{
    sqt_proc p;
    start(&p, ":job_timeout: 1\n", "2", NULL);
    char polite[25], sleeper[25];
    itest_push("PoliteSleepJob", "[30]", NULL, polite);
    itest_push("SleepJob", "[2.5]", NULL, sleeper);
    /* the polite one is told to stop by sq_job_stopping: a JobTimeout */
    ck_assert_int_eq(sqt_wait_int(C, 1, 10, "ZCARD retry"), 1);
    assert_failed("retry", polite, "Squire::JobTimeout", "timeout of 1 s");
    /* the other cannot be stopped: warned about, then it finishes */
    ck_assert(sqt_log_wait(&p, "is past its timeout of 1 s", 5));
    ck_assert_int_eq(sqt_wait_int(C, 1, 10, "SISMEMBER test:done %s", sleeper), 1);
    itest_stop(&p);
}
END_TEST

static Suite *isolated_suite(void)
{
    Suite *s = suite_create("isolated");
    TCase *tc = tcase_create("isolated");
    tcase_add_checked_fixture(tc, itest_setup, itest_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, crashes_cost_only_their_own_job);
    tcase_add_test(tc, crash_is_seen_with_the_socket_held_open);
    tcase_add_test(tc, group_kill_costs_only_its_own_job);
    tcase_add_test(tc, truncated_result_does_not_outlive_the_timeout);
    tcase_add_test(tc, assorted_misbehaviour_costs_only_its_own_job);
    tcase_add_test(tc, redis_restart_mid_job_loses_and_repeats_nothing);
    tcase_add_test(tc, worker_processes_on_a_tostop_terminal_keep_running);
    tcase_add_test(tc, stopped_fork_server_is_resumed);
    tcase_add_test(tc, kill_9_of_the_daemon_leaves_no_worker_process);
    tcase_add_test(tc, hung_jobs_are_killed_at_their_timeouts);
    tcase_add_test(tc, cpu_limit_stops_a_spinning_job_not_a_sleeping_one);
    tcase_add_test(tc, timeout_set_from_ruby_is_enforced);
    tcase_add_test(tc, runaway_allocation_costs_its_job);
    tcase_add_test(tc, worker_processes_are_recycled_and_inited);
    tcase_add_test(tc, term_stops_isolated_jobs_and_pushes_them_back);
    tcase_add_test(tc, failing_init_hook_charges_nothing_and_does_not_look_healthy);
    tcase_add_test(tc, fork_server_death_stops_the_daemon_and_loses_nothing);
    tcase_add_test(tc, thread_mode_timeout_is_cooperative);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return sqt_run(isolated_suite());
}
