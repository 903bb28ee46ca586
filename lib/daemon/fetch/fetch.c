/*
 * fetch.c: Sidekiq's BasicFetch. BRPOP over the worker's queues with a 2 s
 * timeout (so the worker notices quiet/stop), in strict or weighted order.
 * The fetched job lives only in this process until it finishes: a hard kill
 * loses it (the reliable fetch in reliable.c does not).
 */
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "fetch.h"
#include "log.h"
#include "sidekiq.h"

#define BRPOP_TIMEOUT "2"
#define BRPOP_WAIT 2.0

void sq_unit_clear(sq_unit *u)
{
    free(u->raw);
    free(u->queue);
    memset(u, 0, sizeof *u);
}

#define WRONGTYPE_RECHECK 60.0

/* Drop queues whose key is set aside from this fetch's order. */
size_t sq__usable_queues(sq_worker *w, size_t n)
{
    double now = 0;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        double until = w->skip_until[w->order[i]];
        if (until > 0) {
            if (now == 0)
                now = sq__monotonic();
            if (now < until)
                continue;
            w->skip_until[w->order[i]] = 0;
        }
        w->order[k++] = w->order[i];
    }
    return k;
}

/* BRPOP answered WRONGTYPE: find the keys that are not lists and set them
 * aside, so one bad key does not stop the other queues (logged once a
 * minute per worker 0, the others stay quiet). */
/* Set queue q aside when its key is not a list (logged by worker 0 only, so
 * once a minute rather than once per worker). Returns true when it was. */
bool sq__set_aside_queue(sq_worker *w, size_t q)
{
    redisReply *rep = sq_redis_cmd(w->redis, NULL, "TYPE %s", w->keys[q]);
    if (rep == NULL)
        return false;
    bool bad = rep->type == REDIS_REPLY_STATUS && strcmp(rep->str, "list") != 0 &&
               strcmp(rep->str, "none") != 0;
    if (bad) {
        w->skip_until[q] = sq__monotonic() + WRONGTYPE_RECHECK;
        snprintf(w->aside_error, sizeof w->aside_error, "%.60s is a %.20s, not a list", w->keys[q],
                 rep->str);
        if (w->index == 0)
            sq_log(SQ_LOG_ERROR, "%s is a %s, not a list: not fetching from queue %s for %.0f s",
                   w->keys[q], rep->str, w->rt->order.names[q], WRONGTYPE_RECHECK);
    }
    freeReplyObject(rep);
    return bad;
}

bool sq__no_usable_queue(sq_worker *w, sq_error *err)
{
    double now = sq__monotonic();
    for (size_t q = 0; q < w->rt->order.nqueues; q++)
        if (w->skip_until[q] == 0 || now >= w->skip_until[q])
            return false;
    sq__error_set(err, SQ_EREDIS,
                  "%s: no queue left to fetch from (each is rechecked every %.0f s)",
                  w->aside_error, WRONGTYPE_RECHECK);
    return true;
}

static int basic_fetch(sq_worker *w, sq_unit *u, sq_error *err)
{
    sq_runtime *rt = w->rt;
    size_t n = sq_queue_order_next(&rt->order, w->order, w->scratch, sq_worker_rand, w);
    n = sq__usable_queues(w, n);
    if (n == 0) {
        sq_runtime_nap(rt, BRPOP_WAIT); /* every queue set aside */
        return 0;
    }
    const char *argv[n + 2];
    size_t lens[n + 2];

    argv[0] = "BRPOP";
    lens[0] = 5;
    for (size_t i = 0; i < n; i++) {
        argv[i + 1] = w->keys[w->order[i]];
        lens[i + 1] = strlen(argv[i + 1]);
    }
    argv[n + 1] = BRPOP_TIMEOUT;
    lens[n + 1] = strlen(BRPOP_TIMEOUT);

    sq_error e = {0};
    redisReply *rep = sq_redis_argv(w->redis, (int)n + 2, argv, lens, BRPOP_WAIT, &e);
    if (rep == NULL && sq_redis_error_is(&e, "WRONGTYPE")) {
        for (size_t i = 0; i < n; i++)
            sq__set_aside_queue(w, w->order[i]);
        return 0;
    }
    if (rep == NULL) {
        sq__error_set(err, e.code, "%s", e.message);
        return -1;
    }
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2) {
        freeReplyObject(rep);
        return 0; /* nil: timed out */
    }
    redisReply *key = rep->element[0], *val = rep->element[1];
    size_t qlen = 0;
    const char *qname =
        key->type == REDIS_REPLY_STRING ? sq_queue_key_name(key->str, key->len, &qlen) : NULL;
    if (qname == NULL || val->type != REDIS_REPLY_STRING) {
        freeReplyObject(rep);
        sq__error_set(err, SQ_EREDIS, "BRPOP: unexpected reply");
        return -1;
    }
    u->raw = malloc(val->len + 1);
    u->queue = strndup(qname, qlen);
    if (u->raw == NULL || u->queue == NULL) {
        /* Out of memory with a popped job in hand: give it back. */
        const char *av[] = {"RPUSH", key->str, val->str};
        size_t al[] = {5, key->len, val->len};
        redisReply *back = sq_redis_argv(w->redis, 3, av, al, 0, err);
        if (back)
            freeReplyObject(back);
        sq_unit_clear(u);
        freeReplyObject(rep);
        sq__error_set(err, SQ_ENOMEM, "out of memory holding a fetched job");
        return -1;
    }
    memcpy(u->raw, val->str, val->len);
    u->raw[val->len] = '\0';
    u->len = val->len;
    u->qidx = 0;
    for (size_t i = 0; i < rt->order.nqueues; i++)
        if (strcmp(rt->order.names[i], u->queue) == 0)
            u->qidx = i;
    freeReplyObject(rep);
    return 1;
}

static int basic_ack(sq_worker *w, const sq_unit *u, sq_error *err)
{
    (void)w, (void)u, (void)err;
    return 0; /* BasicFetch writes nothing per job */
}

static int basic_retry(sq_worker *w, const sq_unit *u, double score, const char *payload,
                       size_t len, sq_error *err)
{
    (void)u;
    char s[32];
    sq_format_time(score, s);
    const char *argv[] = {"ZADD", SQ_KEY_RETRY, s, payload};
    size_t lens[] = {4, 5, strlen(s), len};
    redisReply *rep = sq_redis_argv(w->redis, 4, argv, lens, 0, err);
    if (rep == NULL)
        return -1;
    freeReplyObject(rep);
    return 0;
}

static int basic_dead(sq_worker *w, const sq_unit *u, const char *payload, size_t len,
                      sq_error *err)
{
    (void)u;
    sq_dead_limits lim = sq_config_dead_limits(w->rt->cfg);
    return sq_dead_add(w->redis, &lim, payload, len, sq__now(), err);
}

static int basic_finish(sq_worker *w, sq_error *err)
{
    (void)w, (void)err;
    return 0;
}

/* RPUSH: the job runs next. */
static int basic_requeue_append(sq_redis *r, const sq_unit *u, sq_error *err)
{
    char key[SQ_QUEUE_KEY_MAX];
    size_t klen = sq_queue_key(key, sizeof key, u->queue);
    const char *argv[] = {"RPUSH", key, u->raw};
    size_t lens[] = {5, klen, u->len};
    return sq_redis_pipe_argv(r, 3, argv, lens, err);
}

static int basic_requeue(sq_worker *w, sq_redis *r, const sq_unit *u, sq_error *err)
{
    (void)w;
    if (basic_requeue_append(r, u, err) != 0)
        return -1;
    redisReply *rep = sq_redis_pipe_reply(r, err);
    if (rep == NULL)
        return -1;
    freeReplyObject(rep);
    return 0;
}

const sq_fetch_ops sq_fetch_basic = {
    .name = "basic",
    .fetch = basic_fetch,
    .ack = basic_ack,
    .retry = basic_retry,
    .dead = basic_dead,
    .requeue = basic_requeue,
    .requeue_append = basic_requeue_append,
    .finish = basic_finish,
    .not_pushed_back = "it is lost (use fetch: reliable)",
    .unwritten_at_exit = "the job is lost",
};
