/*
 * noop.c: the benchmark's handler. NoopJob does nothing; the plugin notes
 * when the first job started and when the N-th ($SQUIRE_BENCH_JOBS) ended,
 * and logs "bench: N jobs in S s", so that start-up and shutdown are not in
 * the measured time.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <squire.h>

static atomic_long done;
static atomic_llong first_ns;
static long target;

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static sq_result noop_job(sq_job *job, void *ud)
{
    (void)ud;
    long long zero = 0;
    atomic_compare_exchange_strong(&first_ns, &zero, now_ns());
    if (atomic_fetch_add(&done, 1) + 1 == target)
        sq_job_log(job, "bench: %ld jobs in %.6f s", target,
                   (double)(now_ns() - atomic_load(&first_ns)) / 1e9);
    return SQ_OK;
}

int squire_plugin_init(sq_registry *reg)
{
    const char *n = getenv("SQUIRE_BENCH_JOBS");
    target = n ? strtol(n, NULL, 10) : 100000;
    return sq_register(reg, "NoopJob", noop_job, NULL);
}
