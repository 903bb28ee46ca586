/*
 * test_reliability.c: the fault tests of reliable fetch (reliability.md §4).
 *
 * Several squire processes share a real redis-server (AOF, appendfsync
 * always) and a few thousand uniquely identified jobs while processes are
 * killed with SIGKILL and TERM and redis-server itself is killed and
 * restarted. Every job must run at least once, duplicates stay within what
 * was in flight, and no working list is left. The same run in basic mode
 * (Sidekiq's BRPOP) shows the loss reliable mode prevents.
 */
#include <sys/wait.h>
#include <unistd.h>

#include "itest.h"

#define NPROC_MAX 8

static void setup_aof(void)
{
    sqt_redis_start(&R, "--appendonly yes --appendfsync always");
    C = sqt_redis_connect(&R);
}

static void start(sqt_proc *p, const char *cfg)
{
    const char *argv[] = {"-C", cfg, "-r", SQ_TEST_PLUGIN, "-c", "4", "-t", "1", NULL};
    sqt_squire_start(p, R.url, argv, NULL);
    ck_assert_msg(sqt_log_wait(p, "starting", 10), "squire did not start");
}

/* n jobs of ms milliseconds, split over the given queues. */
static void push_work_to(int n, int ms, const char *const *queues, int nqueues)
{
    sq_error err = {0};
    sq_client *c = sq_client_new(R.url, &err);
    ck_assert_ptr_nonnull(c);
    for (int q = 0; q < nqueues; q++) {
        json_t *list = json_array();
        for (int i = q; i < n; i += nqueues)
            json_array_append_new(list, json_pack("[i,i]", i, ms));
        sq_push_opts o = {.queue = queues[q]};
        ck_assert_msg(sq_push_bulk(c, "WorkJob", list, &o, &err) == 0, "%s", err.message);
        json_decref(list);
    }
    sq_client_free(c);
}

static void push_work(int n, int ms)
{
    const char *q[] = {"default"};
    push_work_to(n, ms, q, 1);
}

static long long total_runs(void)
{
    redisReply *r = sqt_cmd(C, "HVALS test:runs");
    long long sum = 0;
    for (size_t i = 0; i < r->elements; i++)
        sum += strtoll(r->element[i]->str, NULL, 10);
    freeReplyObject(r);
    return sum;
}

/* Where jobs are, for a failure message. */
static void dump_state(void)
{
    redisReply *r = sqt_cmd(C, "KEYS *");
    for (size_t i = 0; i < r->elements; i++) {
        const char *k = r->element[i]->str;
        redisReply *t = sqt_cmd(C, "TYPE %s", k);
        long long n = strcmp(t->str, "list") == 0   ? sqt_int(C, "LLEN %s", k)
                      : strcmp(t->str, "zset") == 0 ? sqt_int(C, "ZCARD %s", k)
                      : strcmp(t->str, "hash") == 0 ? sqt_int(C, "HLEN %s", k)
                      : strcmp(t->str, "set") == 0  ? sqt_int(C, "SCARD %s", k)
                                                    : -1;
        fprintf(stderr, "  %s %s %lld\n", t->str, k, n);
        freeReplyObject(t);
    }
    freeReplyObject(r);
}

static void reconnect(void)
{
    redisFree(C);
    C = sqt_redis_connect(&R);
}

START_TEST(reliable_fetch_loses_nothing_under_kills_and_redis_restarts)
{
    enum { JOBS = 3000 };
    /* two weighted queues: fetches go through the ordering script as well as
     * the single-queue pipeline (when one queue is empty) */
    const char *cfg = itest_config(":lease_ttl: 2\n:poll_interval_average: 0.5\n"
                                   ":queues:\n  - [default, 2]\n  - [low, 1]\n");
    const char *queues[] = {"default", "low"};
    sqt_proc p[NPROC_MAX];
    int np = 0, kills = 0;
    push_work_to(JOBS, 5, queues, 2);
    for (; np < 3; np++)
        start(&p[np], cfg);

    ck_assert_int_ge(sqt_wait_int(C, 300, 60, "SCARD test:done"), 300);
    kill(p[0].pid, SIGKILL), kills++;
    sqt_proc_wait(&p[0], 5);
    start(&p[np++], cfg);

    ck_assert_int_ge(sqt_wait_int(C, 900, 60, "SCARD test:done"), 900);
    kill(p[1].pid, SIGTERM);
    ck_assert_int_eq(sqt_proc_wait(&p[1], 15), 0);
    start(&p[np++], cfg);

    ck_assert_int_ge(sqt_wait_int(C, 1500, 60, "SCARD test:done"), 1500);
    redisFree(C);
    C = NULL;
    sqt_redis_kill9(&R);
    sqt_sleep(0.5);
    sqt_redis_restart(&R);
    C = sqt_redis_connect(&R);

    ck_assert_int_ge(sqt_wait_int(C, 1800, 60, "SCARD test:done"), 1800);
    /* cut every squire connection a few times: replies are lost at random
     * points, and jobs a lost reply left in a working list must still run */
    for (int i = 0; i < 5; i++) {
        redisReply *k = sqt_cmd(C, "CLIENT KILL TYPE normal SKIPME yes");
        freeReplyObject(k);
        sqt_sleep(0.15);
    }

    ck_assert_int_ge(sqt_wait_int(C, 2100, 60, "SCARD test:done"), 2100);
    kill(p[2].pid, SIGKILL), kills++;
    sqt_proc_wait(&p[2], 5);
    start(&p[np++], cfg);

    long long done = sqt_wait_int(C, JOBS, 90, "SCARD test:done");
    if (done != JOBS)
        dump_state();
    ck_assert_msg(done == JOBS, "only %lld of %d jobs ran", done, JOBS);
    /* dead processes' registry entries go once their lists are recovered */
    long long live_entries = 3 * 4 * 2; /* processes x workers x queues */
    double until = sqt_now() + 15;
    while (sqt_int(C, "HLEN squire:wlists") > live_entries && sqt_now() < until)
        sqt_sleep(0.2);
    ck_assert_int_eq(sqt_int(C, "HLEN squire:wlists"), live_entries);
    for (int i = 0; i < np; i++)
        if (p[i].pid > 0) {
            kill(p[i].pid, SIGTERM);
            ck_assert_int_eq(sqt_proc_wait(&p[i], 20), 0);
        }
    reconnect();
    redisReply *r = sqt_cmd(C, "KEYS squire:w:*");
    ck_assert_msg(r->elements == 0, "%zu working lists left", r->elements);
    freeReplyObject(r);
    ck_assert_int_eq(sqt_int(C, "HLEN squire:wlists"), 0);
    ck_assert_int_eq(sqt_int(C, "LLEN queue:default"), 0);
    ck_assert_int_eq(sqt_int(C, "LLEN queue:low"), 0);
    ck_assert_int_eq(sqt_int(C, "ZCARD dead"), 0);
    long long dups = total_runs() - JOBS;
    /* at most what the killed processes had in flight, plus, for the Redis
     * kill and the 5 connection cuts, one per worker each */
    long long bound = kills * 4 + 6 * 3 * 4;
    fprintf(stderr, "reliable: %d jobs, %d SIGKILLs, 1 TERM, 5 connection cuts, 1 redis-server SIGKILL: "
            "0 lost, %lld duplicates (bound %lld)\n", JOBS, kills, dups, bound);
    ck_assert_int_ge(dups, 0);
    ck_assert_int_le(dups, bound);
}
END_TEST

START_TEST(basic_fetch_loses_jobs_on_kill_9)
{
    enum { JOBS = 1000 };
    const char *cfg = itest_config(":fetch: basic\n:poll_interval_average: 0.5\n");
    sqt_proc p[3];
    push_work(JOBS, 20);
    start(&p[0], cfg);
    start(&p[1], cfg);
    ck_assert_int_ge(sqt_wait_int(C, 200, 60, "SCARD test:done"), 200);
    /* the process to kill runs jobs (a slow start under ASan could leave
     * it empty-handed, and then nothing is lost) */
    ck_assert_msg(sqt_log_wait(&p[0], "start", 30), "the first squire ran no job");
    ck_assert_int_gt(sqt_int(C, "LLEN queue:default"), 100);
    kill(p[0].pid, SIGKILL);
    sqt_proc_wait(&p[0], 5);
    start(&p[2], cfg);
    /* drain: the queue empties and nothing more finishes */
    double until = sqt_now() + 60;
    while (sqt_int(C, "LLEN queue:default") > 0 && sqt_now() < until)
        sqt_sleep(0.1);
    sqt_sleep(1.0);
    long long done = sqt_int(C, "SCARD test:done");
    fprintf(stderr, "basic: %d jobs, 1 SIGKILL: %lld lost\n", JOBS, JOBS - done);
    ck_assert_int_lt(done, JOBS);
    ck_assert_int_le(JOBS - done, 4); /* what the killed process had in flight */
    kill(p[1].pid, SIGTERM);
    kill(p[2].pid, SIGTERM);
    ck_assert_int_eq(sqt_proc_wait(&p[1], 20), 0);
    ck_assert_int_eq(sqt_proc_wait(&p[2], 20), 0);
}
END_TEST

/* A handler that kills its own process runs exactly max_interruptions times
 * and then sits in the dead set once; the fleet keeps running. */
START_TEST(poison_job_runs_n_times_then_dies)
{
    const char *cfg = itest_config(":lease_ttl: 1\n:max_interruptions: 3\n");
    const char *argv[] = {"-C", cfg, "-r", SQ_TEST_PLUGIN, "-c", "2", NULL};
    char jid[25];
    itest_push("CrashJob", "[]", NULL, jid);
    char ok[25];
    itest_push("OkJob", "[]", NULL, ok);
    sqt_proc p;
    int starts = 0;
    double until = sqt_now() + 60;
    while (sqt_int(C, "ZCARD dead") == 0 && sqt_now() < until) {
        sqt_squire_start(&p, R.url, argv, NULL);
        starts++;
        while (sqt_proc_wait(&p, 0.1) == -1 && sqt_int(C, "ZCARD dead") == 0 && sqt_now() < until)
            ;
    }
    ck_assert_int_eq(sqt_int(C, "ZCARD dead"), 1);
    ck_assert_int_eq(sqt_int(C, "HGET test:runs %s", jid), 3);
    json_t *j = itest_only_member("dead", NULL);
    ck_assert_str_eq(json_string_value(json_object_get(j, "jid")), jid);
    ck_assert_str_eq(json_string_value(json_object_get(j, "error_class")), "Squire::JobInterrupted");
    ck_assert_int_eq(json_integer_value(json_object_get(j, "interrupted_count")), 3);
    json_decref(j);
    /* the process that buried it is alive and serves other jobs */
    ck_assert_int_eq(sqt_wait_int(C, 1, 10, "SISMEMBER test:done %s", ok), 1);
    ck_assert_int_eq(sqt_proc_wait(&p, 0), -1);
    itest_stop(&p);
    ck_assert_int_eq(sqt_int(C, "HGET test:runs %s", jid), 3);
    ck_assert_int_eq(sqt_int(C, "LLEN queue:default"), 0);
}
END_TEST

/* A process frozen past its lease loses its job to another process; when it
 * wakes, its ack finds the job gone and says it may have run twice. */
START_TEST(stopped_process_is_fenced_and_reports_the_duplicate)
{
    const char *cfg = itest_config(":lease_ttl: 1\n");
    const char *argv[] = {"-C", cfg, "-r", SQ_TEST_PLUGIN, "-c", "1", NULL};
    sqt_proc a, b;
    sqt_squire_start(&a, R.url, argv, NULL);
    ck_assert(sqt_log_wait(&a, "starting", 10));
    char jid[25];
    itest_push("SleepJob", "[2]", NULL, jid);
    ck_assert_int_eq(sqt_wait_int(C, 1, 10, "LLEN test:log"), 1);
    kill(a.pid, SIGSTOP);
    sqt_squire_start(&b, R.url, argv, NULL);
    /* b recovers the job once a's lease is gone, and runs it */
    ck_assert_int_eq(sqt_wait_int(C, 1, 20, "SISMEMBER test:done %s", jid), 1);
    kill(a.pid, SIGCONT);
    ck_assert(sqt_log_wait(&a, "may run twice", 20));
    ck_assert(sqt_log_wait(&a, "lease had expired", 20));
    ck_assert_int_eq(sqt_wait_int(C, 2, 10, "HGET test:runs %s", jid), 2);
    itest_stop(&a);
    itest_stop(&b);
    ck_assert_int_eq(sqt_int(C, "ZCARD retry"), 0);
    ck_assert_int_eq(sqt_int(C, "LLEN queue:default"), 0);
}
END_TEST

/* DYNO (or the host name) is the user's text and may hold a tab, the
 * separator of the registry's "<identity>\t<queue>" values. Recovery must
 * still find the owner's lease and the right queue: a killed process's job
 * goes back to queue:default, not to a queue named after half the identity
 * that no process ever serves. b serves another queue, so the job stays
 * where recovery put it. */
START_TEST(identity_with_a_tab_recovers_into_the_right_queue)
{
    const char *cfg = itest_config(":lease_ttl: 1\n");
    const char *argv_a[] = {"-C", cfg, "-r", SQ_TEST_PLUGIN, "-c", "1", NULL};
    const char *argv_b[] = {"-C", cfg, "-r", SQ_TEST_PLUGIN, "-c", "1", "-q", "other", NULL};
    const char *env[] = {"DYNO=web\t1", NULL};
    sqt_proc a, b;
    sqt_squire_start(&a, R.url, argv_a, env);
    ck_assert(sqt_log_wait(&a, "starting", 10));
    char jid[25];
    itest_push("SleepJob", "[30]", NULL, jid);
    ck_assert_int_eq(sqt_wait_int(C, 1, 10, "LLEN test:log"), 1);
    kill(a.pid, SIGKILL);
    sqt_proc_wait(&a, 5);
    sqt_squire_start(&b, R.url, argv_b, NULL);
    ck_assert_msg(sqt_wait_int(C, 1, 20, "LLEN queue:default") == 1,
                  "the killed process's job did not come back to queue:default");
    redisReply *keys = sqt_cmd(C, "KEYS queue:*");
    ck_assert_int_eq(keys->elements, 1);
    freeReplyObject(keys);
    itest_stop(&b);
}
END_TEST

/* A fetch whose reply was lost may have moved a job into the worker's own
 * working list: the next fetch looks through all of that worker's lists
 * (here 12, the job in the tenth) and runs it. The failed fetch is made by
 * refusing scripts for a moment; the job is put where a lost reply would
 * have left it. */
START_TEST(a_job_left_by_a_lost_reply_is_resumed)
{
    const char *cfg = itest_config(":beat_interval: 1\n");
    const char *argv[40] = {"-C", cfg, "-r", SQ_TEST_PLUGIN, "-c", "1", "-t", "2"};
    int n = 8;
    static char names[12][8];
    for (int i = 0; i < 12; i++) {
        snprintf(names[i], sizeof names[i], "q%02d", i);
        argv[n++] = "-q";
        argv[n++] = names[i];
    }
    argv[n] = NULL;
    sqt_proc p;
    sqt_squire_start(&p, R.url, argv, NULL);
    ck_assert(sqt_log_wait(&p, "starting", 10));
    /* the worker's working list for q09, from the registry */
    char wlist[400] = "";
    for (double until = sqt_now() + 10; wlist[0] == '\0' && sqt_now() < until; sqt_sleep(0.1)) {
        redisReply *r = sqt_cmd(C, "HKEYS squire:wlists");
        for (size_t i = 0; i < r->elements; i++) {
            size_t len = strlen(r->element[i]->str);
            if (len > 7 && strcmp(r->element[i]->str + len - 7, ":w0:q09") == 0)
                snprintf(wlist, sizeof wlist, "%s", r->element[i]->str);
        }
        freeReplyObject(r);
    }
    ck_assert_msg(wlist[0] != '\0', "no working list for q09 registered");
    freeReplyObject(sqt_cmd(C, "ACL SETUSER default -evalsha -eval -lmove -blmove"));
    ck_assert(sqt_log_wait(&p, "fetch failed:", 10));
    const char *job = "{\"class\":\"OkJob\",\"args\":[\"stranded\"],\"queue\":\"q09\","
                      "\"jid\":\"5a5a5a5a5a5a5a5a5a5a5a5a\",\"retry\":true}";
    freeReplyObject(sqt_cmd(C, "LPUSH %s %s", wlist, job));
    freeReplyObject(sqt_cmd(C, "ACL SETUSER default +@all"));
    ck_assert_int_eq(sqt_wait_int(C, 1, 20, "SISMEMBER test:done 5a5a5a5a5a5a5a5a5a5a5a5a"), 1);
    ck_assert(sqt_log_wait(&p, "resuming a job left in", 5));
    ck_assert(sqt_log_wait(&p, ":w0:q09 by a lost reply", 1));
    itest_stop(&p);
    /* acknowledged (the ack rides on the next fetch, or is sent at exit) */
    ck_assert_int_eq(sqt_int(C, "LLEN %s", wlist), 0);
    ck_assert_int_eq(sqt_int(C, "HGET test:runs 5a5a5a5a5a5a5a5a5a5a5a5a"), 1);
}
END_TEST

/* Jobs left anywhere but done: a failure message names where they sit. */
static void assert_all_done(long long jobs, double timeout)
{
    long long done = sqt_wait_int(C, jobs, timeout, "SCARD test:done");
    if (done != jobs)
        dump_state();
    ck_assert_msg(done == jobs, "only %lld of %lld jobs ran (the rest are stranded)", done, jobs);
}

/* Issue 12, first repro: a process stopped past its lease has its working
 * lists recovered (and unregistered) by a peer. When it resumes it must
 * register them again before it fetches, or the jobs it takes next are
 * stranded when it dies later. */
START_TEST(lapsed_lease_while_alive_strands_nothing)
{
    enum { JOBS = 400 };
    const char *cfg = itest_config(":lease_ttl: 2\n:poll_interval_average: 0.5\n");
    sqt_proc a, b;
    push_work(JOBS, 200);
    start(&a, cfg);
    start(&b, cfg);
    ck_assert_int_ge(sqt_wait_int(C, 30, 60, "SCARD test:done"), 30);
    kill(a.pid, SIGSTOP);
    sqt_sleep(6.0); /* past the lease (2 s) and a recovery pass of b's */
    kill(a.pid, SIGCONT);
    sqt_sleep(2.0); /* a takes more jobs */
    ck_assert_int_gt(sqt_int(C, "LLEN queue:default"), 0);
    kill(a.pid, SIGKILL);
    sqt_proc_wait(&a, 5);
    assert_all_done(JOBS, 90);
    itest_stop(&b);
    redisReply *r = sqt_cmd(C, "KEYS squire:w:*");
    ck_assert_msg(r->elements == 0, "%zu working lists left", r->elements);
    freeReplyObject(r);
}
END_TEST

/* Issue 12, second repro: after a Redis outage longer than the lease every
 * lease has expired. The first process back must not take the registrations
 * of peers that have had no chance to renew yet (here: two still stopped
 * for less than lease_ttl after Redis is back), or their jobs are stranded
 * when one of them dies later. */
START_TEST(first_back_after_outage_does_not_harvest_peers)
{
    enum { JOBS = 400 };
    const char *cfg = itest_config(":lease_ttl: 3\n:poll_interval_average: 0.5\n");
    sqt_proc a, b, c;
    push_work(JOBS, 200);
    start(&a, cfg);
    start(&b, cfg);
    start(&c, cfg);
    ck_assert_int_ge(sqt_wait_int(C, 30, 60, "SCARD test:done"), 30);
    redisFree(C);
    C = NULL;
    sqt_redis_kill9(&R);
    sqt_sleep(4.5); /* longer than the lease: every lease is gone */
    kill(b.pid, SIGSTOP);
    kill(c.pid, SIGSTOP);
    sqt_redis_restart(&R);
    C = sqt_redis_connect(&R);
    sqt_sleep(2.5); /* a is back; b and c silent for less than lease_ttl */
    kill(b.pid, SIGCONT);
    kill(c.pid, SIGCONT);
    sqt_sleep(2.0);
    ck_assert_int_gt(sqt_int(C, "LLEN queue:default"), 0);
    kill(b.pid, SIGKILL);
    sqt_proc_wait(&b, 5);
    assert_all_done(JOBS, 90);
    itest_stop(&a);
    itest_stop(&c);
    redisReply *r = sqt_cmd(C, "KEYS squire:w:*");
    ck_assert_msg(r->elements == 0, "%zu working lists left", r->elements);
    freeReplyObject(r);
}
END_TEST

/* The slow sweep: a working list with a job but no registration (what the
 * BLMOVE window or a hand-restored key can leave) is found by SCAN, and its
 * job is put back and run, with a warning; a live process's unregistered
 * list is registered again, its job left alone. */
START_TEST(sweep_puts_back_jobs_of_unregistered_working_lists)
{
    const char *cfg = itest_config(":lease_ttl: 1\n");
    const char *job = "{\"class\":\"OkJob\",\"args\":[],\"jid\":\"0123456789abcdef01234567\","
                      "\"queue\":\"default\",\"retry\":true,\"created_at\":1700000000.0,"
                      "\"enqueued_at\":1700000000.0}";
    const char *orphan = "squire:w:gone:4242:0123456789ab:w0:default";
    const char *alive = "squire:w:there:4343:abcdef012345:w1:default";
    freeReplyObject(sqt_cmd(C, "LPUSH %s %s", orphan, job));
    freeReplyObject(sqt_cmd(C, "LPUSH %s %s", alive, "{\"held\":1}"));
    freeReplyObject(sqt_cmd(C, "SET squire:lease:there:4343:abcdef012345 1 EX 600"));
    const char *argv[] = {"-C", cfg, "-r", SQ_TEST_PLUGIN, "-c", "2", NULL};
    sqt_proc p;
    sqt_squire_start(&p, R.url, argv, NULL);
    ck_assert_int_eq(sqt_wait_int(C, 1, 30, "SISMEMBER test:done 0123456789abcdef01234567"), 1);
    ck_assert(sqt_log_wait(&p, "sweep: working list squire:w:gone:4242:0123456789ab:w0:default",
                           5));
    ck_assert(sqt_log_wait(&p, "sweep: put 1 job(s) of process gone:4242:0123456789ab back", 5));
    ck_assert_int_eq(sqt_int(C, "EXISTS %s", orphan), 0);
    /* the live one: registered, untouched */
    ck_assert(sqt_log_wait(&p, "registered it again (its process is alive)", 5));
    ck_assert_int_eq(sqt_int(C, "LLEN %s", alive), 1);
    ck_assert_int_eq(sqt_int(C, "HEXISTS squire:wlists %s", alive), 1);
    itest_stop(&p);
}
END_TEST

/* Recovery walks the registry in order; a list it cannot drain (its queue
 * key or the working list itself has the wrong type) must not hold back the
 * lists after it: the third, good one is recovered and its job runs, and
 * the other two stay where they are, their jobs unlost. */
START_TEST(a_wrong_typed_key_does_not_stall_recovery_of_others)
{
    const char *cfg = itest_config(":lease_ttl: 1\n");
    const char *job = "{\"class\":\"OkJob\",\"args\":[],\"jid\":\"00000000000000000000abcd\","
                      "\"queue\":\"default\",\"retry\":true}";
    const char *held = "{\"class\":\"OkJob\",\"args\":[],\"jid\":\"00000000000000000000beef\","
                       "\"queue\":\"blocked\",\"retry\":true}";
    const char *w_blocked = "squire:w:gone:1:0123456789ab:w0:blocked";
    const char *w_string = "squire:w:gone:1:0123456789ab:w0:strange";
    const char *w_good = "squire:w:gone:1:0123456789ab:w0:default";
    freeReplyObject(sqt_cmd(C, "SET queue:blocked not-a-list"));
    freeReplyObject(sqt_cmd(C, "LPUSH %s %s", w_blocked, held));
    freeReplyObject(sqt_cmd(C, "SET %s not-a-list", w_string));
    freeReplyObject(sqt_cmd(C, "LPUSH %s %s", w_good, job));
    /* a small hash keeps insertion order: the bad entries come first */
    freeReplyObject(
        sqt_cmd(C, "HSET squire:wlists %s %s", w_blocked, "gone:1:0123456789ab\tblocked"));
    freeReplyObject(
        sqt_cmd(C, "HSET squire:wlists %s %s", w_string, "gone:1:0123456789ab\tstrange"));
    freeReplyObject(sqt_cmd(C, "HSET squire:wlists %s %s", w_good, "gone:1:0123456789ab\tdefault"));
    const char *argv[] = {"-C", cfg, "-r", SQ_TEST_PLUGIN, "-c", "1", NULL};
    sqt_proc p;
    sqt_squire_start(&p, R.url, argv, NULL);
    ck_assert_msg(sqt_wait_int(C, 1, 15, "SISMEMBER test:done 00000000000000000000abcd") == 1,
                  "the good working list was not recovered behind the wrong-typed ones");
    ck_assert_int_eq(sqt_int(C, "LLEN %s", w_blocked), 1);
    ck_assert(sqt_log_wait(&p, "queue:blocked", 5));
    itest_stop(&p);
}
END_TEST

/* A `queues` key of the wrong type (someone's string) must not turn every
 * recovered job into a script error: the job goes back to its queue (the
 * SADD is what cannot be done) and recovery says nothing failed. */
START_TEST(recovery_puts_jobs_back_when_queues_has_the_wrong_type)
{
    const char *cfg = itest_config(":lease_ttl: 1\n");
    const char *w = "squire:w:gone:1:0123456789ab:w0:default";
    for (int i = 0; i < 3; i++) {
        char job[200];
        snprintf(job, sizeof job,
                 "{\"class\":\"OkJob\",\"args\":[],\"jid\":\"0000000000000000000000a%d\","
                 "\"queue\":\"default\"}",
                 i);
        freeReplyObject(sqt_cmd(C, "LPUSH %s %s", w, job));
    }
    freeReplyObject(sqt_cmd(C, "HSET squire:wlists %s %s", w, "gone:1:0123456789ab\tdefault"));
    freeReplyObject(sqt_cmd(C, "SET queues not-a-set"));
    const char *argv[] = {"-C", cfg, "-r", SQ_TEST_PLUGIN, "-c", "1", NULL};
    sqt_proc p;
    sqt_squire_start(&p, R.url, argv, NULL);
    ck_assert_int_eq(sqt_wait_int(C, 3, 15, "SCARD test:done"), 3);
    ck_assert(sqt_log_wait(&p, "recovered 3 job(s) of dead process gone:1:0123456789ab", 5));
    itest_stop(&p);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("reliability");
    TCase *tc = tcase_create("faults");
    tcase_add_checked_fixture(tc, setup_aof, itest_teardown);
    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, reliable_fetch_loses_nothing_under_kills_and_redis_restarts);
    tcase_add_test(tc, basic_fetch_loses_jobs_on_kill_9);
    tcase_add_test(tc, poison_job_runs_n_times_then_dies);
    tcase_add_test(tc, a_job_left_by_a_lost_reply_is_resumed);
    tcase_add_test(tc, stopped_process_is_fenced_and_reports_the_duplicate);
    suite_add_tcase(s, tc);
    /* issue 12 (CK_RUN_CASE=lapsed runs only these) */
    TCase *ident = tcase_create("identity");
    tcase_add_checked_fixture(ident, setup_aof, itest_teardown);
    tcase_set_timeout(ident, 120);
    tcase_add_test(ident, identity_with_a_tab_recovers_into_the_right_queue);
    suite_add_tcase(s, ident);
    TCase *lapsed = tcase_create("lapsed");
    tcase_add_checked_fixture(lapsed, setup_aof, itest_teardown);
    tcase_set_timeout(lapsed, 240);
    tcase_add_test(lapsed, lapsed_lease_while_alive_strands_nothing);
    tcase_add_test(lapsed, first_back_after_outage_does_not_harvest_peers);
    tcase_add_test(lapsed, sweep_puts_back_jobs_of_unregistered_working_lists);
    tcase_add_test(lapsed, a_wrong_typed_key_does_not_stall_recovery_of_others);
    tcase_add_test(lapsed, recovery_puts_jobs_back_when_queues_has_the_wrong_type);
    suite_add_tcase(s, lapsed);
    return sqt_run(s);
}
