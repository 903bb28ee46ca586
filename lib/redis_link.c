/*
 * redis_link.c: one Redis connection's life below the commands: create and
 * free it, open a socket to a server (timeouts, TCP keepalive, TLS), AUTH,
 * SELECT and, behind sentinels, ROLE; and the SIGPIPE guard every call that
 * does I/O wears. Both the sentinel lookup and the command layer use these.
 */
#include "redis_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct timeval sq__redis_timeval(double s)
{
    struct timeval tv;
    tv.tv_sec = (time_t)s;
    tv.tv_usec = (suseconds_t)((s - (double)tv.tv_sec) * 1e6);
    return tv;
}

static void make_display(sq_redis *r)
{
    const sq_redis_url *u = &r->url;
    const char *auth = u->password ? ":REDACTED@" : u->username ? "@" : "";
    const char *user = u->username ? u->username : "";
    const char *scheme = u->tls ? "rediss" : "redis";
    const char *via = u->nsentinels > 0 ? " (via sentinels)" : "";
    if (u->path != NULL)
        snprintf(r->display, sizeof r->display, "unix://%s?db=%d", u->path, u->db);
    else if (strchr(u->host, ':') != NULL)
        snprintf(r->display, sizeof r->display, "%s://%s%s[%s]:%d/%d%s", scheme, user, auth,
                 u->host, u->port, u->db, via);
    else
        snprintf(r->display, sizeof r->display, "%s://%s%s%s:%d/%d%s", scheme, user, auth, u->host,
                 u->port, u->db, via);
}

sq_redis *sq_redis_new(const sq_redis_url *url, double timeout)
{
    sq_redis *r = calloc(1, sizeof *r);
    if (r == NULL)
        return NULL;
    r->timeout = timeout > 0 ? timeout : 3.0;
    if (sq_redis_url_copy(&r->url, url) != 0) {
        free(r);
        return NULL;
    }
    make_display(r);
    return r;
}

void sq_redis_free(sq_redis *r)
{
    if (r == NULL)
        return;
    sq_redis_disconnect(r);
    sq_redis_url_destroy(&r->url);
    SSL_CTX_free(r->ssl);
    free(r);
}

void sq_redis_disconnect(sq_redis *r)
{
    if (r->ctx != NULL) {
        redisFree(r->ctx);
        r->ctx = NULL;
    }
}

bool sq_redis_is_connected(const sq_redis *r)
{
    return r->ctx != NULL && r->ctx->err == 0;
}

const char *sq_redis_display(const sq_redis *r)
{
    return r->display;
}

/* ---- SIGPIPE ------------------------------------------------------------- */

/* hiredis writes with send() without MSG_NOSIGNAL, and OpenSSL with write():
 * writing to a peer that has closed the connection (Redis at maxclients
 * closes new TLS connections at once) raises SIGPIPE, which kills a program
 * that does not ignore it (squirectl, a program using the C client) instead
 * of failing the call. Around each call that does I/O, SIGPIPE is blocked in
 * the calling thread, and one it raised there is discarded (as libpq does). */

static atomic_bool sigpipe_ignored;

void sq_redis_sigpipe_ignored(void)
{
    atomic_store(&sigpipe_ignored, true);
}

static sigset_t sigpipe_set(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    return set;
}

static bool sigpipe_pending(void)
{
    sigset_t pending;
    return sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1;
}

void sq__redis_pipe_guard_on(pipe_guard *g)
{
    g->on = !atomic_load_explicit(&sigpipe_ignored, memory_order_relaxed);
    if (!g->on)
        return;
    sigset_t set = sigpipe_set();
    pthread_sigmask(SIG_BLOCK, &set, &g->old);
    g->was_pending = sigismember(&g->old, SIGPIPE) == 1 && sigpipe_pending();
}

/* failed: whether the call failed (only a failed write raises SIGPIPE). */
void sq__redis_pipe_guard_off(pipe_guard *g, bool failed)
{
    if (!g->on)
        return;
    if (failed && !g->was_pending && sigpipe_pending()) {
        sigset_t set = sigpipe_set();
        struct timespec zero = {0, 0};
        sigtimedwait(&set, NULL, &zero);
    }
    pthread_sigmask(SIG_SETMASK, &g->old, NULL);
}

/* ---- connecting ----------------------------------------------------------- */

/* c->errstr of a context whose connect deadline passed. */
static const char deadline_passed[] = "connect deadline passed";

double sq__redis_budget(const sq_redis *r, double extra_wait)
{
    double w = r->timeout;
    /* probe mode: no wait longer than twice the probe, so that the first
     * call into a frozen server holds the caller no longer than a probe
     * does; after a failure the first probe waits probe seconds, the next
     * ones twice that, so that a server answering every command a little
     * later than probe (slow, not down) is found again */
    double probe = r->failures == 1 ? r->probe : 2 * r->probe;
    if (r->probe > 0 && probe < w)
        w = probe;
    w += extra_wait;
    if (r->deadline > 0) {
        double left = r->deadline - sq__monotonic();
        if (left < w)
            w = left > 0.001 ? left : 0.001;
    }
    return w;
}

/* hiredis reports a socket timeout as EAGAIN's text: say what it means. */
const char *sq__redis_io_reason(const sq_redis *r, const redisContext *c, char *buf, size_t size)
{
    const char *s = c != NULL && c->errstr[0] ? c->errstr : "connection lost";
    if (strcmp(s, deadline_passed) == 0) {
        snprintf(buf, size,
                 "no answer within the %g s connect timeout (timed out; the server or the "
                 "network hangs, or answers too slowly)",
                 r->connect_wait > 0 ? r->connect_wait : r->timeout);
        return buf;
    }
    if ((c != NULL && c->err == REDIS_ERR_TIMEOUT) ||
        strstr(s, "Resource temporarily unavailable") != NULL || strstr(s, "timed out") != NULL) {
        snprintf(buf, size, "no answer within %g s (timed out; the server or the network hangs)",
                 r->applied_timeout);
        return buf;
    }
    return s;
}

/* Whether c's I/O blocks (each read and write with the command timeout) or
 * returns at once (connecting: the caller polls). The flag is hiredis's
 * public REDIS_BLOCK, which its read and write functions consult. */
static int set_blocking(redisContext *c, bool on)
{
    int fl = fcntl(c->fd, F_GETFL);
    if (fl < 0 || fcntl(c->fd, F_SETFL, on ? fl & ~O_NONBLOCK : fl | O_NONBLOCK) < 0)
        return -1;
    if (on)
        c->flags |= REDIS_BLOCK;
    else
        c->flags &= ~REDIS_BLOCK;
    return 0;
}

static redisReply *deadline_reached(redisContext *c)
{
    c->err = REDIS_ERR_TIMEOUT;
    snprintf(c->errstr, sizeof c->errstr, "%s", deadline_passed);
    return NULL;
}

int sq__redis_io_code(const redisContext *c)
{
    return strncmp(c->errstr, SQ__TLS_CERT_REFUSED, strlen(SQ__TLS_CERT_REFUSED)) == 0 ? SQ_ECONFIG
                                                                                       : SQ_EREDIS;
}

/* A connect-time write or read failed on c: with TLS, say so if the server
 * refused the client certificate. The server closes right after its alert,
 * so the write of the command may fail first (reset): then what did arrive
 * is read once more, the alert among it. NULL. */
static redisReply *io_failed(redisContext *c)
{
    if (c->privctx == NULL || sq__redis_tls_refused(c->errstr, sizeof c->errstr)) {
        if (c->privctx != NULL)
            c->err = REDIS_ERR_OTHER;
        return NULL;
    }
    int was = c->err;
    char why[sizeof c->errstr];
    memcpy(why, c->errstr, sizeof why);
    c->err = 0;
    (void)redisBufferRead(c);
    if (sq__redis_tls_refused(c->errstr, sizeof c->errstr)) {
        c->err = REDIS_ERR_OTHER;
    } else {
        c->err = was;
        memcpy(c->errstr, why, sizeof why);
    }
    return NULL;
}

redisReply *sq__redis_connect_cmd(redisContext *c, double deadline, const char *fmt, ...)
{
    ERR_clear_error(); /* what the OpenSSL queue holds after a failure is this command's */
    va_list ap;
    va_start(ap, fmt);
    int rc = redisvAppendCommand(c, fmt, ap);
    va_end(ap);
    if (rc != REDIS_OK)
        return NULL;
    int done = 0;
    while (!done) {
        if (redisBufferWrite(c, &done) != REDIS_OK)
            return io_failed(c);
        if (!done && sq__redis_wait(c, POLLOUT, deadline) != 0)
            return deadline_reached(c);
    }
    for (;;) {
        void *rep = NULL;
        if (redisGetReplyFromReader(c, &rep) != REDIS_OK)
            return NULL;
        if (rep != NULL)
            return rep;
        /* read first: TLS may hold bytes the socket no longer shows */
        size_t had = c->reader->len;
        if (redisBufferRead(c) != REDIS_OK)
            return io_failed(c);
        if (c->reader->len == had && sq__redis_wait(c, POLLIN, deadline) != 0)
            return deadline_reached(c);
    }
}

redisContext *sq__redis_open_context(sq_redis *r, const char *host, int port, const char *where,
                                     double deadline, sq_error *err)
{
    double left = deadline - sq__monotonic();
    struct timeval connect_tv = sq__redis_timeval(left > 0.001 ? left : 0.001);
    struct timeval tv = sq__redis_timeval(r->timeout);
    redisOptions o = {0};
    if (host == NULL)
        REDIS_OPTIONS_SET_UNIX(&o, r->url.path);
    else
        REDIS_OPTIONS_SET_TCP(&o, host, port);
    o.connect_timeout = &connect_tv;
    o.command_timeout = &tv;
    redisContext *c = redisConnectWithOptions(&o);
    if (c == NULL) {
        sq__error_set(err, SQ_ENOMEM, "%s: cannot allocate a connection", r->display);
        return NULL;
    }
    char buf[160];
    if (c->err == 0 && set_blocking(c, false) != 0)
        snprintf(c->errstr, sizeof c->errstr, "%s", strerror(errno)), c->err = REDIS_ERR_IO;
    if (c->err) {
        sq__error_set(err, SQ_EREDIS, "connect %s%s: %s", r->display, where,
                      sq__redis_io_reason(r, c, buf, sizeof buf));
        redisFree(c);
        return NULL;
    }
    if (host != NULL)
        redisEnableKeepAliveWithInterval(c, KEEPALIVE_INTERVAL);
    if (r->url.tls && host != NULL && sq__redis_tls_start(r, c, host, where, deadline, err) != 0) {
        redisFree(c);
        return NULL;
    }
    return c;
}

/* An error a server sends whatever it was asked, for a while: Redis at
 * maxclients answers a new connection with it and closes it (so it is the
 * reply AUTH or SELECT reads), or is loading, or busy with a script. An
 * outage to wait out, not refused credentials or a bad db. */
static bool server_unavailable(const char *msg)
{
    static const char *const prefixes[] = {"ERR max number of clients reached", "LOADING", "BUSY",
                                           "MASTERDOWN", "TRYAGAIN"};
    for (size_t i = 0; i < SQ_ARRAY_LEN(prefixes); i++)
        if (strncmp(msg, prefixes[i], strlen(prefixes[i])) == 0)
            return true;
    return false;
}

/* AUTH on a fresh connection (user may be NULL). */
int sq__redis_authenticate(sq_redis *r, redisContext *c, const char *user, const char *password,
                           const char *where, double deadline, sq_error *err)
{
    if (password == NULL)
        return 0;
    redisReply *rep = user != NULL
                          ? sq__redis_connect_cmd(c, deadline, "AUTH %s %s", user, password)
                          : sq__redis_connect_cmd(c, deadline, "AUTH %s", password);
    char buf[160];
    if (rep == NULL) {
        sq__error_set(err, sq__redis_io_code(c), "%s%s: AUTH: %s", r->display, where,
                      sq__redis_io_reason(r, c, buf, sizeof buf));
        return -1;
    }
    int rc = 0;
    if (rep->type == REDIS_REPLY_ERROR && server_unavailable(rep->str)) {
        sq__error_set(err, SQ_EREDIS, "%s%s: AUTH: %.200s", r->display, where, rep->str);
        rc = -1;
    } else if (rep->type == REDIS_REPLY_ERROR) {
        /* A server that does not know AUTH (renamed, an old sentinel) quotes
         * the command's arguments, the password among them: the reply is
         * shown up to its first quote only. */
        size_t n = strcspn(rep->str, "'\"");
        sq__error_set(err, SQ_EAUTH, "%s%s: AUTH refused: %.*s%s", r->display, where,
                      (int)(n < 200 ? n : 200), rep->str,
                      rep->str[n] != '\0' ? "(the rest quotes the password: not shown)" : "");
        rc = -1;
    }
    freeReplyObject(rep);
    return rc;
}

/* AUTH and SELECT on a fresh connection. */
static int handshake(sq_redis *r, const char *where, double deadline, sq_error *err)
{
    redisReply *rep;
    if (sq__redis_authenticate(r, r->ctx, r->url.username, r->url.password, where, deadline, err) !=
        0)
        return -1;
    if (r->url.db != 0) {
        rep = sq__redis_connect_cmd(r->ctx, deadline, "SELECT %d", r->url.db);
        if (rep == NULL || rep->type == REDIS_REPLY_ERROR) {
            int code = rep == NULL ? sq__redis_io_code(r->ctx) : SQ_EREDIS;
            char buf[160];
            if (rep != NULL && server_unavailable(rep->str))
                code = SQ_EREDIS;
            else if (rep != NULL &&
                     (strncmp(rep->str, "NOAUTH", 6) == 0 || strncmp(rep->str, "NOPERM", 6) == 0))
                code = SQ_EAUTH;
            else if (rep != NULL && strncmp(rep->str, "ERR ", 4) == 0)
                code = SQ_ECONFIG; /* db out of range, cluster mode: waiting will not help */
            sq__error_set(err, code, "%s%s: SELECT %d: %.200s", r->display, where, r->url.db,
                          rep ? rep->str : sq__redis_io_reason(r, r->ctx, buf, sizeof buf));
            if (rep)
                freeReplyObject(rep);
            return -1;
        }
        freeReplyObject(rep);
    }
    return 0;
}

/* Sentinels: the server must say it is the master (it may be a demoted one
 * that the sentinels have not caught up with yet). */
static int check_role(sq_redis *r, double deadline, sq_error *err)
{
    redisReply *rep = sq__redis_connect_cmd(r->ctx, deadline, "ROLE");
    char buf[160];
    if (rep == NULL) {
        sq__error_set(err, sq__redis_io_code(r->ctx), "%s: ROLE: %s", r->display,
                      sq__redis_io_reason(r, r->ctx, buf, sizeof buf));
        return -1;
    }
    bool master = rep->type == REDIS_REPLY_ARRAY && rep->elements > 0 &&
                  rep->element[0]->type == REDIS_REPLY_STRING &&
                  strcmp(rep->element[0]->str, "master") == 0;
    if (!master)
        sq__error_set(err, SQ_EREDIS, "%s: %s is not the master (%s); asking the sentinels again",
                      r->display, r->master,
                      rep->type == REDIS_REPLY_ARRAY && rep->elements > 0 &&
                              rep->element[0]->type == REDIS_REPLY_STRING
                          ? rep->element[0]->str
                      : rep->type == REDIS_REPLY_ERROR ? rep->str
                                                       : "no role");
    freeReplyObject(rep);
    return master ? 0 : -1;
}

/* A fresh connection to host:port (NULL: the URL's socket), authenticated,
 * on the right db and, behind sentinels, checked to be the master. */
int sq__redis_connect_to(sq_redis *r, const char *host, int port, double deadline, sq_error *err)
{
    char where[320] = "";
    if (r->url.nsentinels > 0)
        snprintf(where, sizeof where, " (master at %s)", r->master);
    r->ctx = sq__redis_open_context(r, host, port, where, deadline, err);
    if (r->ctx == NULL)
        return -1;
    r->applied_timeout = r->timeout;
    if (handshake(r, where, deadline, err) != 0 ||
        (r->url.nsentinels > 0 && check_role(r, deadline, err) != 0)) {
        sq_redis_disconnect(r);
        return -1;
    }
    if (set_blocking(r->ctx, true) != 0) {
        sq__error_set(err, SQ_EREDIS, "%s%s: %s", r->display, where, strerror(errno));
        sq_redis_disconnect(r);
        return -1;
    }
    return 0;
}
