/*
 * metrics.h: Sidekiq's execution metrics (the Web UI's Metrics tab), per job
 * class per UTC minute: jobs run (`p`), failed (`f`), milliseconds of the
 * successful runs (`ms`) and a 26-bucket histogram of those runs' times.
 *
 * Workers record into their own shard (a mutex no other thread takes except
 * the flush, which swaps the shard's table out); the main thread flushes
 * every shard with each beat and at exit, in one pipelined round trip.
 *
 * Two layouts, chosen by the `metrics` config key (docs/configuration.md):
 *   7.x  j|<YYYYMMDD>|<H>:<M>            hash, 8 h   (H, M not zero-padded)
 *        <Class>-<DD>-<HH>:<M>           bitfield, 8 h
 *   8.x  j|<YYMMDD>|<H>:<MM>             hash, 8 h
 *        j|<YYMMDD>|<H>:<M/10>           hash, 3 days (10-minute rollup)
 *        h|<Class>-<D>-<H>:<M>           bitfield, 8 h
 * The two never share a key, so `both` writes each alongside the other.
 */
#ifndef SQ_METRICS_H
#define SQ_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "common.h"
#include "config.h" /* the layout bits, SQ_METRICS_V7 / _V8 */
#include "redis.h"

#define SQ_METRICS_BUCKETS 26
#define SQ_METRICS_TTL 28800      /* 8 h: minute keys and histograms (both layouts) */
#define SQ_METRICS_MID_TTL 259200 /* 3 days: 8.x 10-minute rollups */

/* Pure parts (unit-tested). */
/* The histogram bucket of a run of ms milliseconds: the first whose upper
 * bound is greater than ms (Sidekiq's BUCKET_INTERVALS); 25 is "Slow". */
int sq_metrics_bucket(long long ms);
/* The minute hash of time t (UTC) in layout 7 or 8; like snprintf. */
int sq_metrics_minute_key(int version, time_t t, char *buf, size_t size);
/* The 8.x 10-minute rollup hash of t; like snprintf. */
int sq_metrics_rollup_key(time_t t, char *buf, size_t size);
/* The histogram key of class klass (klen bytes, binary) for t in layout 7
 * or 8. Returns the length it needs, like snprintf; buf holds it (not
 * NUL-terminated when klass has NULs) when size is greater. */
size_t sq_metrics_hist_key(int version, const char *klass, size_t klen, time_t t, char *buf,
                           size_t size);
/* The BITFIELD arguments after the key for counts: "OVERFLOW" "SAT" then
 * "INCRBY" "u16" "#<i>" "<n>" for each bucket with n > 0. argv and lens get
 * up to 2 + 4 * SQ_METRICS_BUCKETS entries; the numbers are written into num.
 * Returns how many were filled (2 means no bucket: send nothing). */
int sq_metrics_bitfield_args(const uint32_t counts[SQ_METRICS_BUCKETS], const char **argv,
                             size_t *lens, char num[SQ_METRICS_BUCKETS][2][16]);

typedef struct sq_metrics sq_metrics;

/* One shard per worker. layouts 0 (off) returns NULL: recording is then a no-op. */
sq_metrics *sq_metrics_new(int nshards, unsigned layouts);
void sq_metrics_free(sq_metrics *m);
/* A job of class klass ran on shard's worker for ms milliseconds and
 * finished at wall-clock time now; failed runs are counted, not timed. */
void sq_metrics_record(sq_metrics *m, int shard, const char *klass, size_t klen, bool failed,
                       long long ms, time_t now);
/* Write everything recorded since the last flush (main thread). When Redis
 * cannot be reached the counts are kept for the next flush; when a reply is
 * lost after sending they are dropped (a count is never written twice).
 * Returns the number of HINCRBY commands sent, or -1 with err set. */
int sq_metrics_flush(sq_metrics *m, sq_redis *r, sq_error *err);

#endif
