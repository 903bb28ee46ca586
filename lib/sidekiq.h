/*
 * sidekiq.h: the Sidekiq data model in Redis, in one place: the key names,
 * the queue-name rule, and the dead set with its trim.
 *
 * Every file that names a Sidekiq key, checks a queue name or writes the
 * dead set goes through here (docs/redis-keys.md lists the keys). Pure
 * except sq_dead_add, which runs the one dead-set script.
 */
#ifndef SQ_SIDEKIQ_H
#define SQ_SIDEKIQ_H

#include <stdbool.h>
#include <stddef.h>

#include "redis.h"

/* ---- keys ------------------------------------------------------------------ */

#define SQ_KEY_QUEUES "queues"                 /* set of queue names */
#define SQ_KEY_RETRY "retry"                   /* zset: failed jobs by retry time */
#define SQ_KEY_SCHEDULE "schedule"             /* zset: scheduled jobs by run time */
#define SQ_KEY_DEAD "dead"                     /* zset: dead jobs by death time */
#define SQ_KEY_PROCESSES "processes"           /* set of process identities */
#define SQ_KEY_STAT_PROCESSED "stat:processed" /* counter; ":<yyyy-mm-dd>" the day's */
#define SQ_KEY_STAT_FAILED "stat:failed"       /* counter; ":<yyyy-mm-dd>" the day's */
#define SQ_QUEUE_KEY_PREFIX "queue:"           /* list queue:<name> */
#define SQ_QUEUE_KEY_PREFIX_LEN 6

/* The longest queue name, in bytes; a queue key with its NUL: */
#define SQ_MAX_QUEUE_NAME 255
#define SQ_QUEUE_KEY_MAX (SQ_QUEUE_KEY_PREFIX_LEN + SQ_MAX_QUEUE_NAME + 1)

/* ---- the queue-name rule ----------------------------------------------------- */

/*
 * One rule: a usable name (sq_queue_name_usable) is 1..255 bytes of
 * well-formed UTF-8 with no NUL, control byte, space or DEL. It is what a
 * configuration, -q and sq_push accept, and what squire accepts in a
 * payload's `queue` or a queue key another Sidekiq client wrote (the poller,
 * squirectl): any name a Ruby app can push and Sidekiq serve, unicode
 * included (Ruby's JSON only carries UTF-8).
 * A portable name (sq_queue_name_portable) is a usable name of
 * [A-Za-z0-9_:.-] only: the names Sidekiq's Web UI can open a queue page
 * for. squire requires it nowhere.
 */
bool sq_queue_name_usable(const char *name, size_t len);
bool sq_queue_name_portable(const char *name, size_t len);
/* The words of the rule, for error messages. */
#define SQ_QUEUE_NAME_RULE "1-255 bytes of UTF-8 without spaces or control characters"

/* "queue:<name>" into buf (size bytes, NUL-terminated). Returns its length,
 * or 0 (buf "") when it does not fit. */
size_t sq_queue_key(char *buf, size_t size, const char *name);
/* The same, malloc'd; NULL when out of memory. */
char *sq_queue_key_dup(const char *name);
/* The queue name in the key (len bytes): a pointer past "queue:" with *qlen
 * set, or NULL when key is not a queue key. */
const char *sq_queue_key_name(const char *key, size_t len, size_t *qlen);

/* ---- the dead set ------------------------------------------------------------ */

typedef struct sq_dead_limits {
    long max_jobs;        /* dead_max_jobs, >= 1 */
    long timeout_seconds; /* dead_timeout_in_seconds, >= 1 */
} sq_dead_limits;

/* The text arguments of one dead-set write at time now: its score, the age
 * cutoff (now - timeout) and the count cap. Sidekiq's trim: ZREMRANGEBYSCORE
 * -inf cutoff, ZREMRANGEBYRANK 0 -max (which keeps max - 1 members). */
typedef struct sq_dead_args {
    char score[32];
    char cutoff[32];
    char max[32];
} sq_dead_args;

void sq_dead_args_make(double now, const sq_dead_limits *lim, sq_dead_args *a);

/*
 * The one dead-set write, as a Lua function that every script writing the
 * dead set starts with: dead_add(key, score, member, cutoff, max) adds the
 * member and trims by age, then by count. max is negated as text: a Lua
 * number above 2^53 goes back to Redis as "1e+17", not an integer.
 */
#define SQ_LUA_DEAD_ADD                                                                            \
    "local function dead_add(key, score, member, cutoff, max)\n"                                   \
    "  redis.call('ZADD', key, score, member)\n"                                                   \
    "  redis.call('ZREMRANGEBYSCORE', key, '-inf', cutoff)\n"                                      \
    "  redis.call('ZREMRANGEBYRANK', key, 0, '-' .. max)\n"                                        \
    "end\n"

/* Add payload (len bytes) to the dead set at now, trimmed to lim. An error
 * (a `dead` key of the wrong type: "WRONGTYPE ...") leaves Redis unchanged.
 * Returns 0 or -1 with err set. */
int sq_dead_add(sq_redis *r, const sq_dead_limits *lim, const char *payload, size_t len, double now,
                sq_error *err);

#endif
