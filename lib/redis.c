/*
 * redis.c: one Redis connection's commands: connect (directly or through
 * the sentinels), commands and pipelines with their waits, errors that drop
 * the connection, Lua scripts by SHA. Below it: redis_internal.h.
 */
#include "redis_internal.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static pthread_mutex_t script_lock = PTHREAD_MUTEX_INITIALIZER;

/* e into err, as sq__error_set would (a first error stays). */
static void pass(sq_error *err, const sq_error *e)
{
    if (err != NULL && err->code == SQ_EOK)
        *err = *e;
}

/* Probe mode and deadline (sq_redis_set_probe, sq_redis_set_deadline): true,
 * with err set, when no call may be tried now. */
static bool held(sq_redis *r, sq_error *err)
{
    double now = sq__monotonic();
    if (r->deadline > 0 && now >= r->deadline) {
        sq__error_set(err, SQ_EREDIS, "%s: not tried: no time left (stopping)", r->display);
        return true;
    }
    if (r->probe > 0 && r->failures > 0 && now < r->retry_at) {
        pass(err, &r->down);
        return true;
    }
    return false;
}

/* The server could not be reached or did not answer (probe mode: wait a
 * back-off out before trying again). A wait that the deadline cut short says
 * nothing about the server (a slow one would have answered): no back-off, so
 * the calls after the deadline moves (a stop's push-back) get their full
 * wait. */
static void failed(sq_redis *r, const sq_error *e)
{
    if (r->probe <= 0 || (r->deadline > 0 && sq__monotonic() >= r->deadline - 0.01))
        return;
    double backoff = r->failures >= 2 ? 1.0 : r->failures == 1 ? 0.5 : 0.25;
    r->failures++;
    r->retry_at = sq__monotonic() + backoff;
    r->down = *e;
}

void sq_redis_set_probe(sq_redis *r, double probe)
{
    r->probe = probe;
}

void sq_redis_set_before(sq_redis *r, void (*fn)(void *), void *ud)
{
    r->before = fn;
    r->before_ud = ud;
}

void sq_redis_set_deadline(sq_redis *r, double deadline)
{
    r->deadline = deadline;
}

int sq_redis_connect(sq_redis *r, sq_error *err)
{
    if (sq_redis_is_connected(r))
        return 0;
    sq_redis_disconnect(r);
    if (held(r, err))
        return -1;
    sq_error e = {0};
    pipe_guard g;
    sq__redis_pipe_guard_on(&g);
    /* the whole connect by one deadline (redis_internal.h): the timeout,
     * a probe's after a failure, never past the caller's deadline */
    r->connect_wait = sq__redis_budget(r, 0);
    double deadline = sq__monotonic() + r->connect_wait;
    int rc = r->url.nsentinels > 0
                 ? sq__redis_connect_via_sentinels(r, deadline, &e)
                 : sq__redis_connect_to(r, r->url.path != NULL ? NULL : r->url.host, r->url.port,
                                        deadline, &e);
    sq__redis_pipe_guard_off(&g, rc != 0);
    if (rc == 0) {
        atomic_fetch_add(&r->connects, 1);
        return 0;
    }
    if (e.code == SQ_EREDIS)
        failed(r, &e); /* not refused credentials: an answer, not an outage */
    pass(err, &e);
    return rc;
}

long sq_redis_reconnects(const sq_redis *r)
{
    long n = r != NULL ? atomic_load(&((sq_redis *)r)->connects) : 0;
    return n > 1 ? n - 1 : 0;
}

/* Connected, with the socket's wait set for a command that blocks up to
 * extra seconds on the server; -1 with err when not. */
static int ready(sq_redis *r, double extra, sq_error *err)
{
    if (r->before != NULL)
        r->before(r->before_ud);
    if (sq_redis_connect(r, err) != 0 || held(r, err))
        return -1;
    double want = sq__redis_budget(r, extra);
    if (want != r->applied_timeout) {
        redisSetTimeout(r->ctx, sq__redis_timeval(want));
        r->applied_timeout = want;
    }
    return 0;
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
        char buf[160];
        sq_error e = {0};
        sq__error_set(&e, SQ_EREDIS, "%s: %s", r->display,
                      sq__redis_io_reason(r, r->ctx, buf, sizeof buf));
        failed(r, &e);
        pass(err, &e);
        sq_redis_disconnect(r);
        return NULL;
    }
    r->failures = 0; /* an answer */
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
    if (ready(r, extra_wait, err) != 0)
        return NULL;
    pipe_guard g;
    sq__redis_pipe_guard_on(&g);
    redisReply *rep = redisCommandArgv(r->ctx, argc, argv, lens);
    sq__redis_pipe_guard_off(&g, rep == NULL);
    return check_reply(r, rep, err);
}

redisReply *sq_redis_cmd(sq_redis *r, sq_error *err, const char *fmt, ...)
{
    if (ready(r, 0, err) != 0)
        return NULL;
    pipe_guard g;
    sq__redis_pipe_guard_on(&g);
    va_list ap;
    va_start(ap, fmt);
    redisReply *rep = redisvCommand(r->ctx, fmt, ap);
    va_end(ap);
    sq__redis_pipe_guard_off(&g, rep == NULL);
    return check_reply(r, rep, err);
}

int sq_redis_pipe_argv(sq_redis *r, int argc, const char **argv, const size_t *lens, sq_error *err)
{
    if (ready(r, 0, err) != 0)
        return -1;
    if (redisAppendCommandArgv(r->ctx, argc, argv, lens) != REDIS_OK) {
        sq__error_set(err, SQ_ENOMEM, "%s: cannot queue a command", r->display);
        sq_redis_disconnect(r);
        return -1;
    }
    return 0;
}

int sq_redis_pipe_cmd(sq_redis *r, sq_error *err, const char *fmt, ...)
{
    if (ready(r, 0, err) != 0)
        return -1;
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
    pipe_guard g;
    sq__redis_pipe_guard_on(&g);
    if (redisGetReply(r->ctx, &rep) != REDIS_OK)
        rep = NULL;
    sq__redis_pipe_guard_off(&g, rep == NULL);
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
    /* As many arguments as the caller has (a fetch passes some per queue,
     * and a user may list hundreds of queues): no fixed cap. */
    if (argc < 0 || nkeys < 0 || nkeys > argc) {
        sq__error_set(err, SQ_EINVAL, "script called with %d keys of %d arguments", nkeys, argc);
        return NULL;
    }
    const char **av = malloc(((size_t)argc + 3) * sizeof *av);
    size_t *al = malloc(((size_t)argc + 3) * sizeof *al);
    if (av == NULL || al == NULL) {
        free(av), free(al);
        sq__error_set(err, SQ_ENOMEM, "out of memory calling a script with %d arguments", argc);
        return NULL;
    }
    char nk[16];
    char sha[41];
    redisReply *rep = NULL;
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
        rep = sq_redis_argv(r, argc + 3, av, al, 0, &local);
        if (rep != NULL)
            goto out;
        if (!sq_redis_error_is(&local, "NOSCRIPT") || attempt == 1) {
            sq__error_set(err, local.code, "%s", local.message);
            goto out;
        }
        if (load_script(r, s, err) != 0)
            goto out;
    }
    sq__error_set(err, SQ_EREDIS, "%s: script could not be loaded", r->display);
out:
    free(av);
    free(al);
    return rep;
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
