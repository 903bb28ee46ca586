/*
 * test_chaos.c: seeded, randomised fault schedules against reliable fetch
 * (issue 12; docs/reliability.md).
 *
 * A real redis-server (appendonly yes, appendfsync always), three squire
 * processes (-c 4, lease_ttl 2) and thousands of jobs pushed by Sidekiq's own
 * Ruby client (push_bulk) onto two weighted queues. While they run, a
 * schedule drawn from the seed applies every fault kind at least once, in a
 * random order, with random extras and gaps:
 *
 *   kill     SIGKILL of a random squire, and a replacement
 *   cut      CLIENT KILL TYPE normal (every connection, replies lost)
 *   restart  SIGKILL of redis-server, restarted within a second
 *   term     SIGTERM of a random squire, and a replacement
 *   stop     SIGSTOP of a squire past its lease, SIGCONT, a SIGKILL later
 *   outage   redis-server down for longer than the lease
 *   freeze   redis-server SIGSTOPped for longer than the lease
 *
 * Each job's handler (ChaosJob in testjobs.c) appends its jid to a per-process
 * file with O_APPEND once its work is done, which no fault undoes. The checker
 * then counts lost jobs (pushed, never recorded) and duplicates (recorded
 * more than once) and asserts lost = 0 and duplicates within what was in
 * flight at the faults that allow them.
 *
 * Environment:
 *   SQ_CHAOS_SEED=n    replay the schedule of seed n (one run). A failure
 *                      prints its seed. Timing is real, so a replay applies
 *                      the same faults at the same moments, not the same
 *                      interleaving.
 *   SQ_CHAOS_SEEDS=k   runs with fresh random seeds (default 3: ~3 minutes)
 *   SQ_CHAOS_SOAK=s    keep running fresh seeds for s seconds (e.g. 1800)
 *   SQ_CHAOS_JOBS=n    jobs per run (default 6000)
 */
#include <dirent.h>
#include <stdarg.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

#include "itest.h"

#define NPROC 3
#define CONC 4
#define TTL 2.0
#define MAXP 96

enum fault { F_KILL, F_CUT, F_RESTART, F_TERM, F_STOP, F_OUTAGE, F_FREEZE, F_KINDS };
static const char *const fault_names[] = {"kill", "cut",    "restart", "term",
                                          "stop", "outage", "freeze"};
/* Jobs a fault may leave to run twice, at most: what one process (CONC) or
 * every process (NPROC * CONC) had in flight. */
static const int fault_dups[] = {CONC, NPROC *CONC, NPROC *CONC, CONC,
                                 CONC, NPROC *CONC, NPROC *CONC};

static uint64_t rng;
static unsigned long long seed;
static double t0;
static sqt_proc procs[MAXP];
static int nprocs, live[NPROC];
static const char *cfg_path;
static char rec_dir[256], env_dir[300];

static unsigned rnd(unsigned n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (unsigned)(rng % n);
}

static double rndf(double lo, double hi)
{
    return lo + (hi - lo) * (double)rnd(10000) / 10000.0;
}

static void note(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "[chaos seed=%llu t=%5.1f] ", seed, sqt_now() - t0);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* kill(2) that never reaches a process group: pid 0 would signal this suite. */
static void signal_pid(pid_t pid, int sig)
{
    if (pid > 0)
        kill(pid, sig);
}

static void kill_all(void)
{
    for (int i = 0; i < nprocs; i++)
        if (procs[i].pid > 0) {
            signal_pid(procs[i].pid, SIGCONT);
            sqt_proc_stop(&procs[i], SIGKILL);
        }
    if (R.pid > 0)
        signal_pid(R.pid, SIGCONT);
}

/* A connection for the suite's own reads, made again after Redis restarts. */
static redisContext *conn(void)
{
    for (int i = 0; i < 100 && (C == NULL || C->err); i++) {
        if (C != NULL)
            redisFree(C);
        struct timeval tv = {5, 0};
        C = redisConnectWithTimeout("127.0.0.1", R.port, tv);
        if (C->err)
            sqt_sleep(0.1);
    }
    ck_assert_msg(C != NULL && !C->err, "cannot reach the test's redis-server");
    return C;
}

/* An integer reply, or -1 when the command fails (Redis may be away). */
static long long try_int(const char *cmd)
{
    redisReply *r = redisCommand(conn(), cmd);
    long long v = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    if (r)
        freeReplyObject(r);
    return v;
}

static void start_slot(int slot)
{
    ck_assert_int_lt(nprocs, MAXP);
    const char *argv[] = {"-C", cfg_path, "-r", SQ_TEST_PLUGIN, "-c", "4", "-t", "5", NULL};
    const char *env[] = {env_dir, NULL};
    sqt_squire_start(&procs[nprocs], R.url, argv, env);
    /* a signal before squire blocks its signals would find the default
     * action (or, before exec, Check's handler): wait for the start line */
    ck_assert_msg(sqt_log_wait(&procs[nprocs], "starting", 20), "squire did not start: %s",
                  procs[nprocs].log);
    live[slot] = nprocs++;
}

static int crashed; /* squire processes that ended without being told to */

/* Whether any live squire has ended by itself (a crash). */
static void check_alive(void)
{
    for (int k = 0; k < NPROC; k++) {
        sqt_proc *p = &procs[live[k]];
        if (p->pid <= 0)
            continue;
        int st = sqt_proc_wait(p, 0);
        if (st != -1) {
            crashed++;
            note("squire %d ended by itself with status %d; log %s", live[k], st, p->log);
        }
    }
}

static void replace(int slot, int sig)
{
    check_alive();
    sqt_proc *p = &procs[live[slot]];
    note("%s squire %d (pid %d), starting a replacement", sig == SIGKILL ? "SIGKILL" : "SIGTERM",
         live[slot], (int)p->pid);
    signal_pid(p->pid, SIGCONT);
    signal_pid(p->pid, sig);
    int st = sqt_proc_wait(p, sig == SIGKILL ? 5 : 30);
    if (sig == SIGTERM && st != 0)
        note("squire %d exited with %d after TERM", live[slot], st);
    if (st == -1)
        sqt_proc_stop(p, SIGKILL);
    p->pid = 0;
    start_slot(slot);
}

static void redis_down(void)
{
    if (C != NULL) {
        redisFree(C);
        C = NULL;
    }
    sqt_redis_kill9(&R);
}

static void redis_up(void)
{
    sqt_redis_restart(&R);
    conn();
}

static int strcmp_ptr(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The sorted lines of every file in dir whose name starts with prefix. */
static char **read_lines(const char *dir, const char *prefix, size_t *n)
{
    size_t cap = 1024;
    char **v = malloc(cap * sizeof *v);
    *n = 0;
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, prefix, strlen(prefix)) != 0)
            continue;
        char path[600];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        char *text = sqt_file_read(path);
        for (char *save = NULL, *l = strtok_r(text, "\n", &save); l;
             l = strtok_r(NULL, "\n", &save)) {
            if (*n == cap)
                v = realloc(v, (cap *= 2) * sizeof *v);
            v[(*n)++] = strdup(l);
        }
        free(text);
    }
    closedir(d);
    qsort(v, *n, sizeof *v, strcmp_ptr);
    return v;
}

static void free_lines(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

typedef struct tally {
    long lost, dups, unknown, runs;
    char first_lost[64];
} tally;

/* Compare what was pushed with what the handlers recorded. */
static tally count(char **pushed, size_t np)
{
    size_t nr;
    char **runs = read_lines(rec_dir, "runs.", &nr);
    tally t = {.runs = (long)nr};
    size_t i = 0, j = 0;
    while (i < np || j < nr) {
        int c = i == np ? 1 : j == nr ? -1 : strcmp(pushed[i], runs[j]);
        if (c < 0) {
            if (t.lost++ == 0)
                snprintf(t.first_lost, sizeof t.first_lost, "%s", pushed[i]);
            i++;
        } else if (c > 0) {
            t.unknown++; /* recorded, never pushed: cannot happen */
            j++;
        } else {
            size_t k = j + 1;
            while (k < nr && strcmp(runs[k], runs[j]) == 0)
                k++;
            t.dups += (long)(k - j - 1);
            i++;
            j = k;
        }
    }
    free_lines(runs, nr);
    return t;
}

/* Where jobs sit, for a failure message. */
static void dump_state(void)
{
    redisReply *r = redisCommand(conn(), "KEYS *");
    for (size_t i = 0; r && i < r->elements; i++) {
        const char *k = r->element[i]->str;
        if (strncmp(k, "squire:w:", 9) == 0 || strncmp(k, "queue:", 6) == 0 ||
            strcmp(k, "retry") == 0 || strcmp(k, "dead") == 0 || strcmp(k, "schedule") == 0) {
            redisReply *t = redisCommand(C, "TYPE %s", k);
            long long n = -1;
            if (t && strcmp(t->str, "list") == 0)
                n = sqt_int(C, "LLEN %s", k);
            else if (t && strcmp(t->str, "zset") == 0)
                n = sqt_int(C, "ZCARD %s", k);
            fprintf(stderr, "  %s %s %lld\n", t ? t->str : "?", k, n);
            if (t)
                freeReplyObject(t);
        }
    }
    if (r)
        freeReplyObject(r);
    fprintf(stderr, "  squire:wlists has %lld entries\n", sqt_int(C, "HLEN squire:wlists"));
}

static unsigned long long fresh_seed(void)
{
    unsigned long long s = 0;
    FILE *f = fopen("/dev/urandom", "rb");
    if (f == NULL || fread(&s, sizeof s, 1, f) != 1)
        s = (unsigned long long)sqt_now() * 1000003ULL ^ (unsigned long long)getpid();
    if (f)
        fclose(f);
    return s % 1000000000ULL;
}

/* One seeded run. Returns normally when it passed. */
static void chaos_run(unsigned long long s, int jobs)
{
    seed = s;
    rng = (s * 2654435761ULL) ^ 0x9e3779b97f4a7c15ULL;
    if (rng == 0)
        rng = 1;
    t0 = sqt_now();
    nprocs = 0;
    crashed = 0;
    fprintf(stderr, "chaos: seed %llu, %d jobs; replay with SQ_CHAOS_SEED=%llu\n", s, jobs, s);

    sqt_redis_start(&R, "--appendonly yes --appendfsync always");
    C = NULL;
    conn();
    sqt_tempdir(rec_dir, "chaos");
    snprintf(env_dir, sizeof env_dir, "SQ_CHAOS_DIR=%s", rec_dir);
    cfg_path = itest_config(":lease_ttl: 2\n:max_interruptions: 0\n:poll_interval_average: 0.5\n"
                            ":beat_interval: 1\n:queues:\n  - [high, 2]\n  - [low, 1]\n");

    /* jobs first, with Sidekiq's own client */
    char jids_path[300], args[400];
    snprintf(jids_path, sizeof jids_path, "%s/jids", rec_dir);
    snprintf(args, sizeof args, "%d %llu '%s'", jobs, s, jids_path);
    char *out = NULL;
    int rc = sqt_ruby(R.url, &out, "chaos.rb", args);
    ck_assert_msg(rc == 0, "chaos.rb failed (%d): %s", rc, out ? out : "");
    free(out);
    size_t np;
    char **pushed = read_lines(rec_dir, "jids", &np);
    ck_assert_int_eq((long)np, jobs);

    for (int i = 0; i < NPROC; i++)
        start_slot(i);

    /* the schedule: every kind once, then extras; shuffled */
    enum fault plan[F_KINDS + 5];
    int nplan = 0;
    for (int k = 0; k < F_KINDS; k++)
        plan[nplan++] = (enum fault)k;
    for (int k = 0; k < 5; k++)
        plan[nplan++] = (enum fault)rnd(F_KINDS);
    for (int i = nplan - 1; i > 0; i--) {
        int j = (int)rnd((unsigned)i + 1);
        enum fault x = plan[i];
        plan[i] = plan[j];
        plan[j] = x;
    }
    char list[200] = "";
    for (int i = 0; i < nplan; i++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? " " : "",
                 fault_names[plan[i]]);
    note("schedule: %s", list);
    long bound = 0;
    int stopped = -1; /* a squire resumed after a stop, to be killed later */
    sqt_sleep(rndf(1.0, 2.0));
    for (int i = 0; i < nplan; i++) {
        enum fault f = plan[i];
        bound += fault_dups[f];
        note("%lld jobs queued", try_int("LLEN queue:high") + try_int("LLEN queue:low"));
        int slot = (int)rnd(NPROC);
        double hold = rndf(TTL + 1.0, TTL + 3.0);
        switch (f) {
        case F_KILL:
            replace(slot, SIGKILL);
            break;
        case F_TERM:
            replace(slot, SIGTERM);
            break;
        case F_CUT: {
            note("CLIENT KILL TYPE normal");
            redisReply *r = redisCommand(conn(), "CLIENT KILL TYPE normal SKIPME yes");
            if (r)
                freeReplyObject(r);
            break;
        }
        case F_RESTART:
            note("SIGKILL redis-server, restart");
            redis_down();
            sqt_sleep(rndf(0.1, 1.0));
            redis_up();
            break;
        case F_OUTAGE:
            note("redis-server down for %.1f s (lease %.0f s)", hold, TTL);
            redis_down();
            sqt_sleep(hold);
            redis_up();
            break;
        case F_FREEZE:
            note("redis-server stopped (SIGSTOP) for %.1f s", hold);
            signal_pid(R.pid, SIGSTOP);
            sqt_sleep(hold);
            signal_pid(R.pid, SIGCONT);
            break;
        case F_STOP:
            if (stopped >= 0) { /* one at a time: kill the last one first */
                bound += CONC;
                replace(stopped, SIGKILL);
            }
            note("SIGSTOP squire %d (pid %d) for %.1f s", live[slot], (int)procs[live[slot]].pid,
                 hold);
            signal_pid(procs[live[slot]].pid, SIGSTOP);
            sqt_sleep(hold);
            signal_pid(procs[live[slot]].pid, SIGCONT);
            note("SIGCONT squire %d", live[slot]);
            stopped = slot;
            break;
        default:
            break;
        }
        sqt_sleep(rndf(0.5, 2.5));
        if (stopped >= 0 && (f != F_STOP || i == nplan - 1)) {
            bound += CONC;
            replace(stopped, SIGKILL); /* stopped past the lease, resumed, now killed */
            stopped = -1;
        }
    }
    if (stopped >= 0) {
        bound += CONC;
        replace(stopped, SIGKILL);
    }
    note("faults done; draining");
    check_alive();

    /* drain: every job recorded, or give up after recovery has had time */
    tally t = count(pushed, np);
    double until = sqt_now() + 90;
    while (t.lost > 0 && sqt_now() < until) {
        sqt_sleep(1.0);
        t = count(pushed, np);
    }
    for (int i = 0; i < NPROC; i++) {
        sqt_proc *p = &procs[live[i]];
        signal_pid(p->pid, SIGTERM);
        int st = sqt_proc_wait(p, 30);
        if (st != 0) { /* a clean TERM exits 0: anything else (a sanitizer, a hang) fails */
            crashed++;
            note("squire %d exited with %d at the end; log %s", live[i], st, p->log);
        }
        if (st == -1)
            sqt_proc_stop(p, SIGKILL);
        p->pid = 0;
    }
    t = count(pushed, np);
    long long wl = 0;
    redisReply *r = redisCommand(conn(), "KEYS squire:w:*");
    if (r) {
        wl = (long long)r->elements;
        freeReplyObject(r);
    }
    long long queued = try_int("LLEN queue:high") + try_int("LLEN queue:low");
    long long dead = try_int("ZCARD dead"), retry = try_int("ZCARD retry");
    fprintf(stderr,
            "chaos: seed %llu: %d jobs, %d faults (%d squire starts): lost %ld, duplicates %ld "
            "(bound %ld), runs %ld, working lists left %lld, queued %lld, retry %lld, dead %lld, "
            "%.0f s\n",
            s, jobs, nplan, nprocs, t.lost, t.dups, bound, t.runs, wl, queued, retry, dead,
            sqt_now() - t0);
    if (t.lost > 0 || wl > 0 || t.dups > bound || t.unknown > 0 || dead != 0 || retry != 0) {
        dump_state();
        fprintf(stderr,
                "chaos: FAILED with seed %llu (first lost jid %s); replay: "
                "SQ_CHAOS_SEED=%llu ctest --test-dir build -R test_chaos "
                "--output-on-failure (SQUIRE_TEST_KEEP=1 keeps the logs)\n",
                s, t.first_lost, s);
    }
    free_lines(pushed, np);
    kill_all();
    redisFree(C);
    C = NULL;
    sqt_redis_stop(&R);
    ck_assert_msg(crashed == 0, "seed %llu: %d squire process(es) crashed", s, crashed);
    ck_assert_msg(t.lost == 0, "seed %llu: %ld of %d jobs lost", s, t.lost, jobs);
    ck_assert_msg(wl == 0, "seed %llu: %lld working lists left", s, wl);
    ck_assert_msg(t.unknown == 0, "seed %llu: %ld runs of jobs never pushed", s, t.unknown);
    ck_assert_msg(dead == 0 && retry == 0, "seed %llu: %lld dead, %lld retries", s, dead, retry);
    ck_assert_msg(t.dups <= bound,
                  "seed %llu: %ld duplicates, more than the %ld in flight at "
                  "faults",
                  s, t.dups, bound);
}

static long env_long(const char *name, long dflt)
{
    const char *v = getenv(name);
    return v && v[0] ? strtol(v, NULL, 10) : dflt;
}

START_TEST(chaos_loses_nothing)
{
    atexit(kill_all);
    int jobs = (int)env_long("SQ_CHAOS_JOBS", 6000);
    const char *given = getenv("SQ_CHAOS_SEED");
    if (given && given[0]) {
        if (_i == 0)
            chaos_run(strtoull(given, NULL, 10), jobs);
        return;
    }
    long soak = env_long("SQ_CHAOS_SOAK", 0);
    if (soak <= 0) {
        chaos_run(fresh_seed(), jobs);
        return;
    }
    if (_i != 0)
        return;
    double end = sqt_now() + (double)soak;
    int runs = 0;
    while (sqt_now() < end) {
        chaos_run(fresh_seed(), jobs);
        fprintf(stderr, "chaos soak: %d run(s) passed, %.0f s left\n", ++runs, end - sqt_now());
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("chaos");
    TCase *tc = tcase_create("chaos");
    long soak = env_long("SQ_CHAOS_SOAK", 0);
    tcase_set_timeout(tc, soak > 0 ? (double)soak + 400 : 200);
    int seeds = (int)env_long("SQ_CHAOS_SEEDS", 3);
    if (getenv("SQ_CHAOS_SEED") || soak > 0 || seeds < 1)
        seeds = 1;
    tcase_add_loop_test(tc, chaos_loses_nothing, 0, seeds);
    suite_add_tcase(s, tc);
    return sqt_run(s);
}
