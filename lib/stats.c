/*
 * stats.c: Sidekiq's processed/failed counters. Workers bump atomics; the
 * main thread flushes them every few seconds and at exit with the same six
 * commands Sidekiq 7 sends (lifetime and UTC-daily keys, daily keys kept 5
 * years). A failed flush puts the counts back so nothing is lost.
 */
#include <stdio.h>
#include <time.h>

#include "common.h"
#include "runtime.h"

#define DAILY_TTL "157680000"

static int flush_pair(sq_redis *r, const char *name, long n, const char *date, sq_error *err)
{
    if (sq_redis_pipe_cmd(r, err, "INCRBY stat:%s %ld", name, n) != 0 ||
        sq_redis_pipe_cmd(r, err, "INCRBY stat:%s:%s %ld", name, date, n) != 0 ||
        sq_redis_pipe_cmd(r, err, "EXPIRE stat:%s:%s " DAILY_TTL, name, date) != 0)
        return -1;
    return 3;
}

int sq_stats_flush(sq_runtime *rt, sq_redis *r, sq_error *err)
{
    long p = atomic_exchange(&rt->processed, 0);
    long f = atomic_exchange(&rt->failed, 0);
    if (p == 0 && f == 0)
        return 0;

    char date[16];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(date, sizeof date, "%Y-%m-%d", &tm);

    int a = flush_pair(r, "processed", p, date, err);
    int b = a < 0 ? -1 : flush_pair(r, "failed", f, date, err);
    int rc = a < 0 || b < 0 ? -1 : sq_redis_pipe_drain(r, a + b, NULL, err);
    if (rc != 0 && !sq_redis_is_connected(r)) {
        /* The connection failed: we cannot tell which INCRBYs landed, so
         * count them again next time (at worst twice after an outage, never
         * lost). An error reply (a wrong-typed stat key) is different: the
         * other commands did land, and putting the counts back would add
         * them again at every flush. */
        atomic_fetch_add(&rt->processed, p);
        atomic_fetch_add(&rt->failed, f);
    }
    return rc;
}
