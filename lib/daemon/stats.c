/*
 * stats.c: Sidekiq's processed/failed counters. Workers bump atomics; the
 * main thread flushes them every beat and at exit to the keys Sidekiq 7
 * writes (lifetime and UTC-daily keys, daily keys kept 5 years).
 *
 * Each flush is a numbered batch, applied by a script that first checks and
 * records the batch number in squire:stats:<identity>. A batch whose reply
 * was lost (a timeout: Redis may run it later, when it wakes) is sent again
 * as it was, with the same number, until a reply comes; new counts wait for
 * the next batch. So a count is neither lost nor added twice, however many
 * copies of a batch reach Redis.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common.h"
#include "runtime.h"
#include "sidekiq.h"

#define DAILY_TTL "157680000"
#define SEQ_TTL "86400" /* a day: longer than any copy waits in a frozen server */

/* KEYS: stat:processed, stat:processed:<date>, stat:failed, stat:failed:<date>,
 * squire:stats:<identity>. ARGV: processed, failed, batch number, daily TTL,
 * number TTL. pcall: a wrong-typed stat key fails alone, and the batch still
 * counts as applied (it is not sent again at every flush). */
static sq_script flush_script =
    SQ_SCRIPT("if tonumber(redis.call('GET', KEYS[5]) or '0') >= tonumber(ARGV[3]) then\n"
              "  return 0\n"
              "end\n"
              "redis.call('SET', KEYS[5], ARGV[3], 'EX', ARGV[5])\n"
              "for i = 0, 1 do\n"
              "  local n = ARGV[i + 1]\n"
              "  if n ~= '0' then\n"
              "    redis.pcall('INCRBY', KEYS[2 * i + 1], n)\n"
              "    redis.pcall('INCRBY', KEYS[2 * i + 2], n)\n"
              "    redis.pcall('EXPIRE', KEYS[2 * i + 2], ARGV[4])\n"
              "  end\n"
              "end\n"
              "return 1\n");

/* Send batch b; 0 once Redis has it (applied now or before). */
static int send_batch(const sq_runtime *rt, sq_redis *r, const sq_stats_batch *b, sq_error *err)
{
    char keys[5][340], p[24], f[24], seq[24];
    snprintf(keys[0], sizeof keys[0], SQ_KEY_STAT_PROCESSED);
    snprintf(keys[1], sizeof keys[1], SQ_KEY_STAT_PROCESSED ":%s", b->date);
    snprintf(keys[2], sizeof keys[2], SQ_KEY_STAT_FAILED);
    snprintf(keys[3], sizeof keys[3], SQ_KEY_STAT_FAILED ":%s", b->date);
    snprintf(keys[4], sizeof keys[4], "squire:stats:%s", rt->identity);
    snprintf(p, sizeof p, "%ld", b->processed);
    snprintf(f, sizeof f, "%ld", b->failed);
    snprintf(seq, sizeof seq, "%ld", b->seq);
    const char *argv[] = {keys[0], keys[1], keys[2], keys[3],   keys[4],
                          p,       f,       seq,     DAILY_TTL, SEQ_TTL};
    redisReply *rep = sq_redis_eval(r, &flush_script, 5, 10, argv, NULL, err);
    if (rep == NULL)
        return -1;
    freeReplyObject(rep);
    return 0;
}

int sq_stats_flush(sq_runtime *rt, sq_redis *r, sq_error *err)
{
    sq_stats_batch *b = &rt->stats;
    /* A batch left from a failed flush goes first, as it was; then the
     * counts made since, as a new batch. */
    for (;;) {
        bool resend = b->processed != 0 || b->failed != 0;
        if (!resend) {
            b->processed = atomic_exchange(&rt->processed, 0);
            b->failed = atomic_exchange(&rt->failed, 0);
            if (b->processed == 0 && b->failed == 0)
                return 0;
            b->seq++;
            time_t now = time(NULL);
            struct tm tm;
            gmtime_r(&now, &tm);
            strftime(b->date, sizeof b->date, "%Y-%m-%d", &tm);
        }
        if (send_batch(rt, r, b, err) != 0)
            return -1; /* the batch is kept and sent again */
        b->processed = b->failed = 0;
        if (!resend)
            return 0;
    }
}
