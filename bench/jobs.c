/*
 * jobs.c: the benchmark's handlers (bench/run loads build/libbenchjobs.so).
 *
 *   NoopJob     does nothing. The plugin notes when the first one started and
 *               when the N-th ($SQUIRE_BENCH_JOBS) ended and reports
 *               "bench: N jobs in S s", so start-up and shutdown are not in
 *               the measured time. The count lives in shared memory mapped
 *               at plugin init, so that it also adds up across the worker
 *               processes of isolated mode (forked after the init).
 *   MsJob       sleeps 1 ms, then counts like NoopJob.
 *   PickupJob   args [pushed_at_ns]: records start - pushed_at (pickup
 *               latency; bench/client.c pushes them one at a time).
 *   LateJob     args [due_at_ns]: records start - due_at (how late a
 *               scheduled job ran).
 *
 * After N PickupJobs or LateJobs the plugin reports "<name>: n=N p50=.. p99=..
 * max=.. ms". Reports go to the log and, with $SQUIRE_BENCH_OUT set, to that
 * file, so the benchmark need not read the (large) log while it runs.
 * Times are CLOCK_REALTIME nanoseconds: pusher and worker share the machine.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <squire.h>

static long target;

static long long now_ns(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void report(const sq_job *job, const char *line)
{
    sq_job_log(job, "%s", line);
    const char *out = getenv("SQUIRE_BENCH_OUT");
    FILE *f = out ? fopen(out, "w") : NULL;
    if (f) {
        fprintf(f, "%s\n", line);
        fclose(f);
    }
}

/* ---- throughput --------------------------------------------------------- */

typedef struct counts {
    atomic_long done;
    atomic_llong first_ns;
} counts;

static counts *shared; /* MAP_SHARED: one count for the daemon and its worker processes */

static sq_result count(sq_job *job)
{
    long long zero = 0;
    atomic_compare_exchange_strong(&shared->first_ns, &zero, now_ns(CLOCK_MONOTONIC));
    if (atomic_fetch_add(&shared->done, 1) + 1 != target)
        return SQ_OK;
    char line[80];
    snprintf(line, sizeof line, "bench: %ld jobs in %.6f s", target,
             (double)(now_ns(CLOCK_MONOTONIC) - atomic_load(&shared->first_ns)) / 1e9);
    report(job, line);
    return SQ_OK;
}

static sq_result noop_job(sq_job *job, void *ud)
{
    (void)ud;
    return count(job);
}

static sq_result ms_job(sq_job *job, void *ud)
{
    (void)ud;
    usleep(1000);
    return count(job);
}

/* ---- latency ------------------------------------------------------------ */

typedef struct delays {
    const char *name;
    double *ms;
    atomic_long n;
} delays;

static delays pickup = {"pickup", NULL, 0}, lateness = {"lateness", NULL, 0};

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile of the sorted v[0..n). */
static double percentile(const double *v, long n, double p)
{
    long rank = (long)(p / 100.0 * (double)n + 0.999999);
    return v[rank < 1 ? 0 : rank > n ? n - 1 : rank - 1];
}

static sq_result record(sq_job *job, delays *d)
{
    long long started = now_ns(CLOCK_REALTIME);
    json_t *arg = sq_job_arg(job, 0);
    if (!json_is_integer(arg)) {
        sq_job_fail(job, "ArgumentError", "expected [time_ns]");
        return SQ_FAILED;
    }
    long i = atomic_fetch_add(&d->n, 1);
    if (i >= target)
        return SQ_OK;
    d->ms[i] = (double)(started - json_integer_value(arg)) / 1e6;
    if (i + 1 == target) {
        qsort(d->ms, (size_t)target, sizeof *d->ms, by_value);
        char line[160];
        snprintf(line, sizeof line, "%s: n=%ld p50=%.3f p99=%.3f max=%.3f ms", d->name, target,
                 percentile(d->ms, target, 50), percentile(d->ms, target, 99),
                 d->ms[target - 1]);
        report(job, line);
    }
    return SQ_OK;
}

static sq_result pickup_job(sq_job *job, void *ud)
{
    (void)ud;
    return record(job, &pickup);
}

static sq_result late_job(sq_job *job, void *ud)
{
    (void)ud;
    return record(job, &lateness);
}

int squire_plugin_init(sq_registry *reg)
{
    const char *n = getenv("SQUIRE_BENCH_JOBS");
    target = n ? strtol(n, NULL, 10) : 100000;
    if (target < 1)
        target = 1;
    pickup.ms = calloc((size_t)target, sizeof(double));
    lateness.ms = calloc((size_t)target, sizeof(double));
    if (pickup.ms == NULL || lateness.ms == NULL)
        return -1;
    void *page = mmap(NULL, sizeof *shared, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                      -1, 0);
    if (page == MAP_FAILED)
        return -1;
    shared = page; /* zero-filled */
    if (sq_register(reg, "NoopJob", noop_job, NULL) != 0 ||
        sq_register(reg, "MsJob", ms_job, NULL) != 0 ||
        sq_register(reg, "PickupJob", pickup_job, NULL) != 0)
        return -1;
    return sq_register(reg, "LateJob", late_job, NULL);
}
