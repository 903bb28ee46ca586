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

#include <errno.h>
#include <openssl/ssl.h>
#include <poll.h>
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
    double connect_wait;    /* the budget of the connect under way (messages) */
    SSL_CTX *ssl;           /* rediss://: shared, see tls_context() */
    char display[300];
    char master[300];     /* sentinels: "host:port" of the master last found */
    atomic_long connects; /* successful connects, the first included (metrics) */
    /* sq_redis_set_probe / sq_redis_set_deadline (monotonic times; 0: none) */
    double probe;           /* > 0: after a failure, wait retry_at out, then probe */
    unsigned failures;      /* failures to reach the server in a row */
    double retry_at;        /* probe mode: calls fail at once until then */
    double deadline;        /* every call ends by then; past it, calls fail at once */
    sq_error down;          /* the last failure, repeated while waiting */
    void (*before)(void *); /* sq_redis_set_before: called before every call */
    void *before_ud;
};

/* ---- redis_tls.c ----------------------------------------------------------- */

/* TLS on the fresh (connecting) context c to host (the name checked against
 * the certificate unless the URL says not to verify), the handshake done by
 * deadline. 0, or -1 with err set (c then owns what was set up). */
int sq__redis_tls_start(sq_redis *r, redisContext *c, const char *host, const char *where,
                        double deadline, sq_error *err);

/* How a connect-time error caused by the server refusing squire's client
 * certificate begins (c->errstr; the code is then SQ_ECONFIG). */
#define SQ__TLS_CERT_REFUSED "TLS: the server refused the client certificate"
/* After a failed read on a connection whose handshake completed: whether
 * the thread's OpenSSL errors say the server refused squire's client
 * certificate (a TLS 1.3 server's alert comes after the handshake, with the
 * answer to the first command); if so, why into buf. */
bool sq__redis_tls_refused(char *buf, size_t size);

/* ---- redis_link.c ---------------------------------------------------------- */

struct timeval sq__redis_timeval(double s);
/* The seconds a connect or a command (with extra_wait) may wait now: the
 * timeout, a probe's after a failure, never past the deadline. */
double sq__redis_budget(const sq_redis *r, double extra_wait);

/* Connecting is bounded as a whole: sq_redis_connect computes one deadline
 * (sq__monotonic() + the timeout) and passes it down. While connecting, a
 * context is non-blocking and every wait is a poll() for the time left, so a
 * peer that answers a byte at a time is cut off as surely as a silent one
 * (hiredis's blocking I/O bounds each read, not a reply or a handshake). */

/* Wait until c's socket is ready for events (POLLIN, POLLOUT) or the
 * deadline passes: 0, or -1 at the deadline. Inline: redis_tls.c and
 * redis_link.c both wait, and neither may call the other's. */
static inline int sq__redis_wait(const redisContext *c, short events, double deadline)
{
    for (;;) {
        double left = deadline - sq__monotonic();
        if (left <= 0)
            return -1;
        struct pollfd p = {.fd = c->fd, .events = events};
        int n = poll(&p, 1, (int)(left * 1000) + 1);
        if (n > 0)
            return 0;
        if (n < 0 && errno != EINTR)
            return -1;
    }
}

/* SIGPIPE blocked in the calling thread around a call that does I/O (see
 * redis_link.c). */
typedef struct {
    sigset_t old;
    bool was_pending, on;
} pipe_guard;
void sq__redis_pipe_guard_on(pipe_guard *g);
/* failed: whether the call failed (only a failed write raises SIGPIPE). */
void sq__redis_pipe_guard_off(pipe_guard *g, bool failed);

/* Why c failed, in words (a timeout said as one, the connect deadline
 * naming the connect timeout), into buf. */
const char *sq__redis_io_reason(const sq_redis *r, const redisContext *c, char *buf, size_t size);
/* The error code for a connect-time command that got no reply on c:
 * SQ_ECONFIG when the server refused the client certificate, else
 * SQ_EREDIS (an outage). */
int sq__redis_io_code(const redisContext *c);
/* A connected (and, for rediss://, TLS-secured) context to host:port or the
 * URL's socket, still connecting (non-blocking), or NULL with err set. where
 * names the peer in messages. */
redisContext *sq__redis_open_context(sq_redis *r, const char *host, int port, const char *where,
                                     double deadline, sq_error *err);
/* One command on a connecting context, its reply read by deadline: the
 * reply, or NULL with c->err set. */
redisReply *sq__redis_connect_cmd(redisContext *c, double deadline, const char *fmt, ...);
/* AUTH on a fresh connection (user may be NULL; no password: nothing). */
int sq__redis_authenticate(sq_redis *r, redisContext *c, const char *user, const char *password,
                           const char *where, double deadline, sq_error *err);
/* r->ctx: a fresh connection to host:port (NULL: the URL's socket),
 * authenticated, on the right db and, behind sentinels, checked to be the
 * master, all by deadline; then blocking, each command with the timeout.
 * 0, or -1 with err set and r disconnected. */
int sq__redis_connect_to(sq_redis *r, const char *host, int port, double deadline, sq_error *err);

/* ---- redis_sentinel.c ------------------------------------------------------ */

/* Connect r to the master the sentinels name, by deadline. 0, or -1 with
 * err set. */
int sq__redis_connect_via_sentinels(sq_redis *r, double deadline, sq_error *err);

#endif
