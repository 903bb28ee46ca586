#include "redis.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

struct sq_redis {
    redisContext *ctx;
    sq_redis_url url;
    double timeout;
    double applied_timeout; /* what the socket currently has */
    char display[300];
};

static pthread_mutex_t script_lock = PTHREAD_MUTEX_INITIALIZER;

static struct timeval to_timeval(double s)
{
    struct timeval tv;
    tv.tv_sec = (time_t)s;
    tv.tv_usec = (suseconds_t)((s - (double)tv.tv_sec) * 1e6);
    return tv;
}

static void make_display(sq_redis *r)
{
    const sq_redis_url *u = &r->url;
    const char *auth = u->password ? ":REDACTED@" : "";
    const char *user = u->username ? u->username : "";
    if (u->path != NULL)
        snprintf(r->display, sizeof r->display, "unix://%s?db=%d", u->path, u->db);
    else if (strchr(u->host, ':') != NULL)
        snprintf(r->display, sizeof r->display, "redis://%s%s[%s]:%d/%d", user, auth, u->host,
                 u->port, u->db);
    else
        snprintf(r->display, sizeof r->display, "redis://%s%s%s:%d/%d", user, auth, u->host,
                 u->port, u->db);
}

sq_redis *sq_redis_new(const sq_redis_url *url, double timeout)
{
    sq_redis *r = calloc(1, sizeof *r);
    if (r == NULL)
        return NULL;
    r->timeout = timeout > 0 ? timeout : 3.0;
    r->url.port = url->port;
    r->url.db = url->db;
    r->url.host = sq__strdup(url->host);
    r->url.path = sq__strdup(url->path);
    r->url.username = sq__strdup(url->username);
    r->url.password = sq__strdup(url->password);
    if ((url->host && !r->url.host) || (url->path && !r->url.path) ||
        (url->username && !r->url.username) || (url->password && !r->url.password)) {
        sq_redis_free(r);
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
    if (r->url.password)
        memset(r->url.password, 0, strlen(r->url.password));
    sq_redis_url_destroy(&r->url);
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

/* AUTH and SELECT on a fresh connection. */
static int handshake(sq_redis *r, sq_error *err)
{
    redisReply *rep;
    if (r->url.password != NULL) {
        if (r->url.username != NULL)
            rep = redisCommand(r->ctx, "AUTH %s %s", r->url.username, r->url.password);
        else
            rep = redisCommand(r->ctx, "AUTH %s", r->url.password);
        if (rep == NULL) {
            sq__error_set(err, SQ_EREDIS, "%s: AUTH: %s", r->display, r->ctx->errstr);
            return -1;
        }
        if (rep->type == REDIS_REPLY_ERROR) {
            sq__error_set(err, SQ_EAUTH, "%s: AUTH refused: %.200s", r->display, rep->str);
            freeReplyObject(rep);
            return -1;
        }
        freeReplyObject(rep);
    }
    if (r->url.db != 0) {
        rep = redisCommand(r->ctx, "SELECT %d", r->url.db);
        if (rep == NULL || rep->type == REDIS_REPLY_ERROR) {
            int code = SQ_EREDIS;
            if (rep != NULL && (strncmp(rep->str, "NOAUTH", 6) == 0 ||
                                strncmp(rep->str, "NOPERM", 6) == 0))
                code = SQ_EAUTH;
            sq__error_set(err, code, "%s: SELECT %d: %.200s", r->display, r->url.db,
                          rep ? rep->str : r->ctx->errstr);
            if (rep)
                freeReplyObject(rep);
            return -1;
        }
        freeReplyObject(rep);
    }
    return 0;
}

int sq_redis_connect(sq_redis *r, sq_error *err)
{
    if (sq_redis_is_connected(r))
        return 0;
    sq_redis_disconnect(r);
    struct timeval tv = to_timeval(r->timeout);
    if (r->url.path != NULL)
        r->ctx = redisConnectUnixWithTimeout(r->url.path, tv);
    else
        r->ctx = redisConnectWithTimeout(r->url.host, r->url.port, tv);
    if (r->ctx == NULL) {
        sq__error_set(err, SQ_ENOMEM, "%s: cannot allocate a connection", r->display);
        return -1;
    }
    if (r->ctx->err) {
        sq__error_set(err, SQ_EREDIS, "connect %s: %s", r->display, r->ctx->errstr);
        sq_redis_disconnect(r);
        return -1;
    }
    redisSetTimeout(r->ctx, tv);
    r->applied_timeout = r->timeout;
    if (r->url.path == NULL)
        redisEnableKeepAlive(r->ctx);
    if (handshake(r, err) != 0) {
        sq_redis_disconnect(r);
        return -1;
    }
    return 0;
}

static void set_wait(sq_redis *r, double extra)
{
    double want = r->timeout + extra;
    if (want != r->applied_timeout) {
        redisSetTimeout(r->ctx, to_timeval(want));
        r->applied_timeout = want;
    }
}

/* Errors after which this connection should not be reused. */
static bool error_drops_connection(const char *msg)
{
    static const char *const prefixes[] = {"READONLY", "LOADING", "MASTERDOWN", "NOREPLICAS",
                                           "UNBLOCKED"};
    for (size_t i = 0; i < SQ_ARRAY_LEN(prefixes); i++)
        if (strncmp(msg, prefixes[i], strlen(prefixes[i])) == 0)
            return true;
    return false;
}

/* Turn a raw hiredis result into our contract. */
static redisReply *check_reply(sq_redis *r, redisReply *rep, sq_error *err)
{
    if (rep == NULL) {
        sq__error_set(err, SQ_EREDIS, "%s: %s", r->display,
                      r->ctx && r->ctx->errstr[0] ? r->ctx->errstr : "connection lost");
        sq_redis_disconnect(r);
        return NULL;
    }
    if (rep->type == REDIS_REPLY_ERROR) {
        sq__error_set(err, SQ_EREDIS, "%.300s", rep->str);
        if (error_drops_connection(rep->str))
            sq_redis_disconnect(r);
        freeReplyObject(rep);
        return NULL;
    }
    return rep;
}

redisReply *sq_redis_argv(sq_redis *r, int argc, const char **argv, const size_t *lens,
                          double extra_wait, sq_error *err)
{
    if (sq_redis_connect(r, err) != 0)
        return NULL;
    set_wait(r, extra_wait);
    redisReply *rep = redisCommandArgv(r->ctx, argc, argv, lens);
    return check_reply(r, rep, err);
}

redisReply *sq_redis_cmd(sq_redis *r, sq_error *err, const char *fmt, ...)
{
    if (sq_redis_connect(r, err) != 0)
        return NULL;
    set_wait(r, 0);
    va_list ap;
    va_start(ap, fmt);
    redisReply *rep = redisvCommand(r->ctx, fmt, ap);
    va_end(ap);
    return check_reply(r, rep, err);
}

int sq_redis_pipe_argv(sq_redis *r, int argc, const char **argv, const size_t *lens, sq_error *err)
{
    if (sq_redis_connect(r, err) != 0)
        return -1;
    set_wait(r, 0);
    if (redisAppendCommandArgv(r->ctx, argc, argv, lens) != REDIS_OK) {
        sq__error_set(err, SQ_ENOMEM, "%s: cannot queue a command", r->display);
        sq_redis_disconnect(r);
        return -1;
    }
    return 0;
}

int sq_redis_pipe_cmd(sq_redis *r, sq_error *err, const char *fmt, ...)
{
    if (sq_redis_connect(r, err) != 0)
        return -1;
    set_wait(r, 0);
    va_list ap;
    va_start(ap, fmt);
    int rc = redisvAppendCommand(r->ctx, fmt, ap);
    va_end(ap);
    if (rc != REDIS_OK) {
        sq__error_set(err, SQ_ENOMEM, "%s: cannot queue a command", r->display);
        sq_redis_disconnect(r);
        return -1;
    }
    return 0;
}

redisReply *sq_redis_pipe_reply(sq_redis *r, sq_error *err)
{
    if (r->ctx == NULL) {
        sq__error_set(err, SQ_EREDIS, "%s: connection lost", r->display);
        return NULL;
    }
    void *rep = NULL;
    if (redisGetReply(r->ctx, &rep) != REDIS_OK)
        rep = NULL;
    return check_reply(r, rep, err);
}

int sq_redis_pipe_drain(sq_redis *r, int n, redisReply **last, sq_error *err)
{
    int rc = 0;
    if (last != NULL)
        *last = NULL;
    for (int i = 0; i < n; i++) {
        redisReply *rep = sq_redis_pipe_reply(r, err);
        if (rep == NULL) {
            rc = -1;
            if (!sq_redis_is_connected(r))
                break;
        } else if (last != NULL && i == n - 1) {
            *last = rep;
        } else {
            freeReplyObject(rep);
        }
    }
    return rc;
}

static int load_script(sq_redis *r, sq_script *s, sq_error *err)
{
    redisReply *rep = sq_redis_cmd(r, err, "SCRIPT LOAD %s", s->source);
    if (rep == NULL)
        return -1;
    int rc = -1;
    if (rep->type == REDIS_REPLY_STRING && rep->len == 40) {
        pthread_mutex_lock(&script_lock);
        memcpy(s->sha, rep->str, 40);
        s->sha[40] = '\0';
        pthread_mutex_unlock(&script_lock);
        rc = 0;
    } else {
        sq__error_set(err, SQ_EREDIS, "%s: SCRIPT LOAD: unexpected reply", r->display);
    }
    freeReplyObject(rep);
    return rc;
}

redisReply *sq_redis_eval(sq_redis *r, sq_script *s, int nkeys, int argc, const char **argv,
                          const size_t *lens, sq_error *err)
{
    enum { MAX_ARGS = 16 };
    const char *small_av[MAX_ARGS + 3], **av = small_av;
    size_t small_al[MAX_ARGS + 3], *al = small_al;
    char nk[16];
    char sha[41];
    redisReply *out = NULL;

    if (argc > MAX_ARGS) { /* the lease script registers every working list */
        av = malloc(((size_t)argc + 3) * sizeof *av);
        al = malloc(((size_t)argc + 3) * sizeof *al);
        if (av == NULL || al == NULL) {
            free(av), free(al);
            sq__error_set(err, SQ_ENOMEM, "out of memory calling a script");
            return NULL;
        }
    }
    for (int attempt = 0; attempt < 2; attempt++) {
        pthread_mutex_lock(&script_lock);
        memcpy(sha, s->sha, sizeof sha);
        pthread_mutex_unlock(&script_lock);
        if (sha[0] == '\0') {
            if (load_script(r, s, err) != 0)
                goto out;
            continue;
        }
        snprintf(nk, sizeof nk, "%d", nkeys);
        av[0] = "EVALSHA";
        al[0] = 7;
        av[1] = sha;
        al[1] = 40;
        av[2] = nk;
        al[2] = strlen(nk);
        for (int i = 0; i < argc; i++) {
            av[i + 3] = argv[i];
            al[i + 3] = lens ? lens[i] : strlen(argv[i]);
        }
        sq_error local = {0};
        redisReply *rep = sq_redis_argv(r, argc + 3, av, al, 0, &local);
        if (rep != NULL) {
            out = rep;
            goto out;
        }
        if (!sq_redis_error_is(&local, "NOSCRIPT") || attempt == 1) {
            sq__error_set(err, local.code, "%s", local.message);
            goto out;
        }
        if (load_script(r, s, err) != 0)
            goto out;
    }
    sq__error_set(err, SQ_EREDIS, "%s: script could not be loaded", r->display);
out:
    if (av != small_av) {
        free(av);
        free(al);
    }
    return out;
}

bool sq_redis_info_field(const char *info, const char *field, char *out, size_t size)
{
    size_t n = strlen(field);
    for (const char *p = info; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, field, n) == 0 && p[n] == ':') {
            size_t len = strcspn(p + n + 1, "\r\n");
            snprintf(out, size, "%.*s", (int)len, p + n + 1);
            return true;
        }
    }
    return false;
}

bool sq_redis_version_at_least(const char *version, long major, long minor)
{
    char *end;
    long ma = strtol(version, &end, 10);
    long mi = *end == '.' ? strtol(end + 1, NULL, 10) : 0;
    return ma > major || (ma == major && mi >= minor);
}

bool sq_redis_error_is(const sq_error *err, const char *prefix)
{
    return err != NULL && err->code == SQ_EREDIS &&
           strncmp(err->message, prefix, strlen(prefix)) == 0;
}

double sq_redis_backoff(unsigned attempt)
{
    double cap = 0.1;
    for (unsigned i = 0; i < attempt && cap < 5.0; i++)
        cap *= 2;
    if (cap > 5.0)
        cap = 5.0;
    /* full jitter, but never a busy loop */
    double j = (double)sq__rand(1000, NULL) / 1000.0;
    double d = cap * j;
    return d < 0.05 ? 0.05 : d;
}
