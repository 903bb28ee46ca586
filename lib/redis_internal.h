/*
 * redis_internal.h: what the files of one Redis connection share. Internal.
 *
 *   redis_tls.c       the TLS context (shared per option set) and handshake
 *   redis_link.c      a connection's life: new/free, open a socket (timeouts,
 *                     keepalive, TLS), AUTH, SELECT, ROLE; the SIGPIPE guard
 *   redis_sentinel.c  asking the sentinels where the master is
 *   redis.c           connect, then commands, pipelines and scripts
 *
 * Each calls only the ones above it in this list, so no call cycle.
 */
#ifndef SQ_REDIS_INTERNAL_H
#define SQ_REDIS_INTERNAL_H

#include <openssl/ssl.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/time.h>

#include "common.h"
#include "redis.h"

/* TCP keepalive probes start after this many idle seconds, so a peer that
 * vanished (a half-open connection) is noticed even between commands. */
#define KEEPALIVE_INTERVAL 10

struct sq_redis {
    redisContext *ctx;
    sq_redis_url url;
    double timeout;
    double applied_timeout; /* what the socket currently has */
    SSL_CTX *ssl;           /* rediss://: shared, see tls_context() */
    char display[300];
    char master[300];     /* sentinels: "host:port" of the master last found */
    atomic_long connects; /* successful connects, the first included (metrics) */
    /* sq_redis_set_probe / sq_redis_set_deadline (monotonic times; 0: none) */
    double probe;      /* > 0: after a failure, wait retry_at out, then probe */
    unsigned failures; /* failures to reach the server in a row */
    double retry_at;   /* probe mode: calls fail at once until then */
    double deadline;   /* every call ends by then; past it, calls fail at once */
    sq_error down;     /* the last failure, repeated while waiting */
};

/* ---- redis_tls.c ----------------------------------------------------------- */

/* TLS on the fresh context c to host (the name checked against the
 * certificate unless the URL says not to verify). 0, or -1 with err set. */
int sq__redis_tls_start(sq_redis *r, redisContext *c, const char *host, const char *where,
                        sq_error *err);

/* ---- redis_link.c ---------------------------------------------------------- */

struct timeval sq__redis_timeval(double s);
/* The seconds a connect or a command (with extra_wait) may wait now: the
 * timeout, a probe's after a failure, never past the deadline. */
double sq__redis_wait(const sq_redis *r, double extra_wait);

/* SIGPIPE blocked in the calling thread around a call that does I/O (see
 * redis_link.c). */
typedef struct {
    sigset_t old;
    bool was_pending, on;
} pipe_guard;
void sq__redis_pipe_guard_on(pipe_guard *g);
/* failed: whether the call failed (only a failed write raises SIGPIPE). */
void sq__redis_pipe_guard_off(pipe_guard *g, bool failed);

/* Why c failed, in words (a timeout said as one), into buf. */
const char *sq__redis_io_reason(const sq_redis *r, const redisContext *c, char *buf, size_t size);
/* A connected (and, for rediss://, TLS-secured) context to host:port or the
 * URL's socket, or NULL with err set. where names the peer in messages. */
redisContext *sq__redis_open_context(sq_redis *r, const char *host, int port, const char *where,
                                     sq_error *err);
/* AUTH on a fresh connection (user may be NULL; no password: nothing). */
int sq__redis_authenticate(sq_redis *r, redisContext *c, const char *user, const char *password,
                           const char *where, sq_error *err);
/* r->ctx: a fresh connection to host:port (NULL: the URL's socket),
 * authenticated, on the right db and, behind sentinels, checked to be the
 * master. 0, or -1 with err set and r disconnected. */
int sq__redis_connect_to(sq_redis *r, const char *host, int port, sq_error *err);

/* ---- redis_sentinel.c ------------------------------------------------------ */

/* Connect r to the master the sentinels name. 0, or -1 with err set. */
int sq__redis_connect_via_sentinels(sq_redis *r, sq_error *err);

#endif
