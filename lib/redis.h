/*
 * redis.h: one Redis connection, owned by one thread.
 *
 * Wraps a hiredis context with what every caller needs: connect with AUTH and
 * SELECT from a parsed URL, socket timeouts and TCP keepalive, and recovery
 * from failure. A hiredis context is unusable after an I/O error, so after one
 * the context is dropped and the next command reconnects. READONLY/LOADING
 * style errors also drop the connection (a failover may have moved the
 * primary). Lua scripts run by SHA and are reloaded on NOSCRIPT.
 *
 * Not thread-safe: a connection belongs to the thread that uses it.
 */
#ifndef SQ_REDIS_H
#define SQ_REDIS_H

#include <hiredis/hiredis.h>

#include "common.h"
#include "url.h"

typedef struct sq_redis sq_redis;

/* Copy url; nothing is connected yet. timeout is the socket timeout for
 * ordinary commands in seconds; blocking commands add their own wait. */
sq_redis *sq_redis_new(const sq_redis_url *url, double timeout);
void sq_redis_free(sq_redis *r);

/* Connect now (a no-op when connected). Returns 0, or -1 with SQ_EREDIS
 * (unreachable) or SQ_EAUTH (credentials refused). */
int sq_redis_connect(sq_redis *r, sq_error *err);
bool sq_redis_is_connected(const sq_redis *r);
/* How many times this connection was made again after its first connect
 * (outages, failovers). Any thread may read it. */
long sq_redis_reconnects(const sq_redis *r);
/* Drop the connection; the next command reconnects. */
void sq_redis_disconnect(sq_redis *r);
/* For a thread that must stay responsive (the daemon's main thread): no
 * step (connect, handshake, reply) waits longer than 2 x probe (nor the
 * timeout); after a failure to reach the server (no answer, no connection),
 * calls fail at once with that failure's error for a back-off (0.25 s,
 * doubling to 1 s), then the next call tries again with at most probe
 * seconds for each step, twice that from the second probe on (a server that
 * answers, only slower than a probe waits, is found again); the first
 * answer ends it. 0: off. */
void sq_redis_set_probe(sq_redis *r, double probe);
/* fn(ud) is called before every call on r (a command, each command queued
 * on a pipeline), so that a thread that must stay responsive acts on what
 * came meanwhile (the daemon's main thread: its signals) between the round
 * trips of a longer task, a slow server's included. fn must not use r.
 * NULL: none. */
void sq_redis_set_before(sq_redis *r, void (*fn)(void *), void *ud);
/* Every call ends by deadline (sq__monotonic's clock): the waits shrink to
 * the time left, and past it calls fail at once. 0: none. */
void sq_redis_set_deadline(sq_redis *r, double deadline);

/*
 * Run one command from argv/lens (binary safe). Returns the reply (free it
 * with freeReplyObject), or NULL with err set: on an I/O failure, and on an
 * error reply (err->message holds Redis's text, e.g. "WRONGTYPE ...").
 * extra_wait is added to the socket timeout (for BRPOP and friends).
 */
redisReply *sq_redis_argv(sq_redis *r, int argc, const char **argv, const size_t *lens,
                          double extra_wait, sq_error *err);
/* printf-like hiredis format (%s, %b, %d); same contract as sq_redis_argv. */
redisReply *sq_redis_cmd(sq_redis *r, sq_error *err, const char *fmt, ...);

/* Pipelining: append commands, then read each reply in order with
 * sq_redis_pipe_reply. On any failure the connection is dropped. */
int sq_redis_pipe_argv(sq_redis *r, int argc, const char **argv, const size_t *lens, sq_error *err);
int sq_redis_pipe_cmd(sq_redis *r, sq_error *err, const char *fmt, ...);
redisReply *sq_redis_pipe_reply(sq_redis *r, sq_error *err);
/* Read n queued replies. Returns 0 when none was an error. When last is not
 * NULL, the n-th reply is handed over there (NULL if it failed). */
int sq_redis_pipe_drain(sq_redis *r, int n, redisReply **last, sq_error *err);

/* A Lua script, run by SHA (loaded on first use and after NOSCRIPT). Define
 * them as static storage: SQ_SCRIPT("return 1"). */
typedef struct sq_script {
    const char *source;
    char sha[41];
} sq_script;
#define SQ_SCRIPT(src)                                                                             \
    {                                                                                              \
        (src),                                                                                     \
        {                                                                                          \
            0                                                                                      \
        }                                                                                          \
    }

/* Shared sorted-set moves (scripts.c): member -> queue, member -> dead set. */
extern sq_script sq_script_zset_to_queue;
extern sq_script sq_script_zset_to_dead;

redisReply *sq_redis_eval(sq_redis *r, sq_script *s, int nkeys, int argc, const char **argv,
                          const size_t *lens, sq_error *err);

/* The value of `field` in an INFO reply ("redis_version", ...) into out;
 * false when absent. */
bool sq_redis_info_field(const char *info, const char *field, char *out, size_t size);

/* Whether a redis_version string ("7.0.15") is at least major.minor
 * (reliable fetch needs 6.2 for LMOVE). */
bool sq_redis_version_at_least(const char *version, long major, long minor);

/* True when err came from an error reply starting with prefix ("WRONGTYPE"). */
bool sq_redis_error_is(const sq_error *err, const char *prefix);

/* The URL as it may be logged ("redis://:REDACTED@host:6379/0"). */
const char *sq_redis_display(const sq_redis *r);

/* Retry policy for outages: capped exponential backoff with full jitter.
 * attempt 0 -> up to 0.1 s, doubling to a cap of 5 s. */
double sq_redis_backoff(unsigned attempt);

/* Where the connections of this process report news that is no error (the
 * sentinels' master moving), once per change for the process; none set:
 * dropped (common.h). */
void sq_redis_set_reporter(sq_report_fn fn, void *ud);

/* The process ignores SIGPIPE (sq_main): calls need not block it around
 * their I/O. */
void sq_redis_sigpipe_ignored(void);

#endif
