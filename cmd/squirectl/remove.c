/*
 * remove.c: squirectl delete and clear, as the Web UI's Delete buttons:
 * one job by its exact member bytes (ZREM, or LREM queue:<q> 1), or a whole
 * queue (MULTI UNLINK queue:<q>; SREM queues <q>; EXEC) or set (DEL).
 */
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

struct deleter {
    sq_redis *r;
    const char *key, *jid;
    bool is_set;
    long deleted;
    sq_error *err;
    bool failed;
};

/* Delete each member carrying the jid as we meet it. The walk pages by
 * offset, so a deletion shifts the next page: the jid is rare enough that
 * skipping a neighbour only matters for duplicates, and those are re-found
 * by the loop in ctl_delete. */
static int delete_visit(const char *raw, size_t len, double score, void *ctx)
{
    struct deleter *d = ctx;
    if (!ctl_raw_has_jid(raw, len, d->jid))
        return 0;
    const char *argv[] = {d->is_set ? "ZREM" : "LREM", d->key, d->is_set ? raw : "1", raw};
    size_t lens[] = {4, strlen(d->key), d->is_set ? len : 1, len};
    redisReply *rep = sq_redis_argv(d->r, d->is_set ? 3 : 4, argv, lens, 0, d->err);
    if (rep == NULL) {
        d->failed = true;
        return 1;
    }
    if (rep->type == REDIS_REPLY_INTEGER)
        d->deleted += rep->integer;
    freeReplyObject(rep);
    return 1; /* restart the walk: offsets moved */
}

static const char delete_usage[] =
    "Usage: squirectl delete JID --from QUEUE|retry|scheduled|dead [--json]\n";

int ctl_delete(const char *url, int argc, char **argv)
{
    ctl_opts o;
    int rc = ctl_opts_parse(argc, argv, "fj", delete_usage, &o);
    if (rc != CTL_OK)
        return rc == CTL_HELP ? CTL_OK : rc;
    char key[300];
    const char *qname;
    bool is_set;
    if (o.nrest != 1 || o.from == NULL || ctl_target(o.from, key, sizeof key, &is_set, &qname) != 0)
        return ctl_usage_error(argv[0], delete_usage, "give one JID and --from");
    sq_redis *r = ctl_connect(url, argv[0], &rc);
    if (r == NULL)
        return rc;
    sq_error err = {0};
    struct deleter d = {r, key, o.rest[0], is_set, 0, &err, false};
    for (long before = -1; before != d.deleted && !d.failed;) {
        before = d.deleted;
        if (ctl_each_member(r, key, is_set, delete_visit, &d, &err) != 0)
            d.failed = true;
    }
    if (d.failed)
        rc = ctl_fail(argv[0], &err);
    else if (d.deleted == 0) {
        fprintf(stderr, "squirectl delete: no job %s in %s\n", o.rest[0], key);
        rc = CTL_ERROR;
    }
    if (o.json)
        ctl_json_print(json_pack("{s:I}", "deleted", (json_int_t)d.deleted), stdout);
    else
        printf("deleted %ld\n", d.deleted);
    sq_redis_free(r);
    return rc;
}

/* MULTI; UNLINK queue:<q>; SREM queues <q>; EXEC, as Queue#clear. */
static int clear_queue(sq_redis *r, const char *key, const char *qname, sq_error *err)
{
    if (sq_redis_pipe_cmd(r, err, "MULTI") != 0 ||
        sq_redis_pipe_cmd(r, err, "UNLINK %s", key) != 0 ||
        sq_redis_pipe_cmd(r, err, "SREM " SQ_KEY_QUEUES " %s", qname) != 0 ||
        sq_redis_pipe_cmd(r, err, "EXEC") != 0)
        return -1;
    redisReply *exec = NULL;
    int rc = sq_redis_pipe_drain(r, 4, &exec, err);
    if (exec)
        freeReplyObject(exec);
    return rc;
}

static const char clear_usage[] =
    "Usage: squirectl clear QUEUE|retry|scheduled|dead --yes [--json]\n"
    "  deletes every job there (a queue is also removed from the Web UI's list).\n";

int ctl_clear(const char *url, int argc, char **argv)
{
    ctl_opts o;
    int rc = ctl_opts_parse(argc, argv, "yj", clear_usage, &o);
    if (rc != CTL_OK)
        return rc == CTL_HELP ? CTL_OK : rc;
    char key[300];
    const char *qname;
    bool is_set;
    if (o.nrest != 1 || ctl_target(o.rest[0], key, sizeof key, &is_set, &qname) != 0)
        return ctl_usage_error(argv[0], clear_usage, "name one queue or set");
    if (!o.yes)
        return ctl_usage_error(argv[0], clear_usage, "this deletes jobs; add --yes to confirm");
    sq_redis *r = ctl_connect(url, argv[0], &rc);
    if (r == NULL)
        return rc;
    sq_error err = {0};
    long long n = 0;
    redisReply *size = sq_redis_cmd(r, &err, is_set ? "ZCARD %s" : "LLEN %s", key);
    bool sized = size != NULL;
    if (size != NULL) {
        n = size->type == REDIS_REPLY_INTEGER ? size->integer : 0;
        freeReplyObject(size);
    }
    redisReply *del = sized && is_set ? sq_redis_cmd(r, &err, "DEL %s", key) : NULL;
    if (!sized || (is_set ? del == NULL : clear_queue(r, key, qname, &err) != 0))
        rc = ctl_fail(argv[0], &err);
    else if (o.json)
        ctl_json_print(json_pack("{s:s, s:I}", "cleared", key, (json_int_t)n), stdout);
    else
        printf("cleared %s (%lld jobs)\n", key, n);
    if (del)
        freeReplyObject(del);
    sq_redis_free(r);
    return rc;
}
