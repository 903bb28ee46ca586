/*
 * dbbudget.c: does every squire process sharing a PostgreSQL server fit in
 * what the server allows?
 *
 * Pools open lazily, so the server's count of connections says nothing
 * about what the processes started so far may open under load. Instead each
 * process publishes its pool size and the server it points at in its
 * process hash (SQ_DBBUDGET_FIELD, refreshed by every heartbeat, gone 60 s
 * after the process), and the check sums the pools of the live processes
 * naming the same host:port. The limit is what non-superusers may open:
 * max_connections less superuser_reserved_connections (and PostgreSQL 16's
 * reserved_connections). Processes on another Redis, and other clients that
 * open connections later, are not seen: only those in use at start-up are
 * counted, against this process's pool.
 */
#include "dbbudget.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "sidekiq.h"

int sq_dbbudget_init(sq_dbbudget *b, sq_pgpool *pool)
{
    memset(b, 0, sizeof *b);
    b->pool = pool;
    b->size = sq_pgpool_size(pool);
    json_t *f = json_pack("{s:i, s:s}", "pool", b->size, "server", sq_pgpool_server(pool));
    b->field = f ? json_dumps(f, JSON_COMPACT) : NULL;
    json_decref(f);
    return b->field ? 0 : -1;
}

void sq_dbbudget_destroy(sq_dbbudget *b)
{
    free(b->field);
    b->field = NULL;
}

/* The pool a process hash field gives for server, else 0. */
static int published_pool(const redisReply *v, const char *server)
{
    if (v == NULL || v->type != REDIS_REPLY_STRING)
        return 0;
    json_t *j = json_loadb(v->str, v->len, 0, NULL);
    const char *s = json_string_value(json_object_get(j, "server"));
    json_int_t n = json_integer_value(json_object_get(j, "pool"));
    int pool = s && strcmp(s, server) == 0 && n > 0 && n <= 1000000 ? (int)n : 0;
    json_decref(j);
    return pool;
}

int sq_dbbudget_peers(sq_redis *r, const char *self, const char *server, int *pools, int *procs,
                      sq_error *err)
{
    *pools = *procs = 0;
    redisReply *all = sq_redis_cmd(r, err, "SMEMBERS " SQ_KEY_PROCESSES);
    if (all == NULL)
        return -1;
    int rc = 0, sent = 0;
    for (size_t i = 0; all->type == REDIS_REPLY_ARRAY && i < all->elements && rc == 0; i++)
        if (self == NULL || strcmp(all->element[i]->str, self) != 0) {
            rc = sq_redis_pipe_cmd(r, err, "HGET %s " SQ_DBBUDGET_FIELD, all->element[i]->str);
            sent += rc == 0;
        }
    /* Every reply is read, errors too (a member that is not a hash answers
     * WRONGTYPE): one left unread would be taken for the reply of the next
     * command on this connection. Only a broken connection stops early. */
    for (int i = 0; i < sent; i++) {
        sq_error one = {0};
        redisReply *v = sq_redis_pipe_reply(r, &one);
        if (v == NULL) {
            if (!sq_redis_is_connected(r)) {
                *err = one;
                rc = -1;
                break;
            }
            continue;
        }
        int n = published_pool(v, server);
        *pools += n;
        *procs += n > 0;
        freeReplyObject(v);
    }
    freeReplyObject(all);
    return rc;
}

bool sq_dbbudget_verdict(const sq_dbbudget *b, int peer_pools, int peer_procs, int in_use,
                         char *msg, size_t size)
{
    const sq_pg_limits *l = &b->lim;
    const char *server = sq_pgpool_server(b->pool);
    char limit[200];
    int n = snprintf(limit, sizeof limit,
                     "%d the server allows (max_connections %d - "
                     "superuser_reserved_connections %d",
                     l->allowed, l->max_connections, l->superuser_reserved);
    if (l->reserved > 0)
        n += snprintf(limit + n, sizeof limit - (size_t)n, " - reserved_connections %d",
                      l->reserved);
    snprintf(limit + n, sizeof limit - (size_t)n, ")");
    int total = b->size + peer_pools;
    bool all_over = total > l->allowed, alone_over = in_use >= 0 && b->size + in_use > l->allowed;
    static const char remedy[] = "lower database: pool, raise max_connections, or put a "
                                 "pooler (PgBouncer) in front and point database: url at it";
    char now[48] = "";
    if (in_use >= 0)
        snprintf(now, sizeof now, "; %d in use now", in_use);
    if (all_over)
        snprintf(msg, size,
                 "database %s: %d squire processes may open %d connections (pool %d "
                 "here, %d in %d other%s), more than the %s%s: %s",
                 server, peer_procs + 1, total, b->size, peer_pools, peer_procs,
                 peer_procs == 1 ? "" : "s", limit, now, remedy);
    else if (alone_over)
        snprintf(msg, size,
                 "database %s: pool %d and the %d connections in use now pass the %s: "
                 "%s",
                 server, b->size, in_use, limit, remedy);
    else
        snprintf(msg, size, "database %s: pool %d (%d in %d squire process%s) of the %s%s", server,
                 b->size, total, peer_procs + 1, peer_procs ? "es" : "", limit, now);
    return all_over || alone_over;
}
