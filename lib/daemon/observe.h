/*
 * observe.h: what /metrics shows (docs/deployment.md lists every family).
 *
 * Counting on the job path is lock-cheap: each worker thread counts into
 * its own table, guarded by the table's own mutex, which only a scrape
 * ever contends for (for the moment it copies the table). The number of
 * (class, queue) pairs the process shows is capped: jobs of further pairs
 * (hostile or mistyped class names) are counted under the class "(other)".
 *
 * Queue sizes and latency and the retry / schedule / dead set sizes are
 * read from Redis by the main thread at the heartbeat, at most once every
 * SQ_OBSERVE_SAMPLE_EVERY seconds and for at most SQ_OBSERVE_MAX_QUEUES
 * configured queues; a scrape reads the last sample and never Redis.
 *
 * Everything is off (no table, no sampling) until sq_observe_enable.
 */
#ifndef SQ_OBSERVE_H
#define SQ_OBSERVE_H

#include <stdbool.h>
#include <stddef.h>

#include "squire.h"

#define SQ_OBSERVE_MAX_SERIES 500 /* (class, queue) pairs in the process */
#define SQ_OBSERVE_CLASS_MAX 200  /* bytes of a class name kept as a label */
#define SQ_OBSERVE_MAX_QUEUES 500 /* queues whose size and latency are sampled */
#define SQ_OBSERVE_SAMPLE_EVERY 2.0
#define SQ_OBSERVE_OTHER_CLASS "(other)"

struct sq_runtime;

void sq_observe_enable(void);
bool sq_observe_enabled(void);

/* A job finished on this thread (a handler ran): klass is klass_len bytes
 * (may hold NUL characters), seconds its run time. Any thread. */
void sq_observe_job(const char *klass, size_t klass_len, const char *queue, double seconds,
                    bool failed);
/* Jobs of dead processes pushed back by recovery. */
void sq_observe_recovered(long n);
/* The heartbeat's timed PING. */
void sq_observe_redis_rtt(double seconds);

/* Main thread, at the heartbeat: read queue and set sizes from Redis when
 * the last sample is old enough. 0, or -1 with err (the old sample stays). */
int sq_observe_sample(struct sq_runtime *rt, sq_error *err);

/* The whole /metrics text (malloc'd, *len bytes), or NULL when out of
 * memory. Any thread; takes each worker table's lock briefly. */
char *sq_observe_render(struct sq_runtime *rt, size_t *len);

#endif
