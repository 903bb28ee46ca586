/*
 * actions.c: squirectl retry, kill, delete and clear, as the Web UI and
 * Sidekiq's API do them, but always on the exact member bytes:
 *
 *   retry   SortedEntry#retry: remove the member, then push it like the
 *           client (retry_count decremented when present, enqueued_at = now,
 *           SADD queues, LPUSH queue:<q>);
 *   kill    SortedEntry#kill: move the member to `dead` with DeadSet#kill's
 *           trim, to the configured dead_timeout_in_seconds and
 *           dead_max_jobs (ctl_config: -C, else ./config/sidekiq.yml);
 *   delete  ZREM / LREM 1 of the exact member;
 *   clear   a queue: MULTI UNLINK queue:<q>; SREM queues <q>; a set: DEL.
 *
 * A move is one script that only writes the destination when its ZREM
 * removed that member, so a job is moved at most once even when a poller or
 * another admin races us; destination types are checked first, because a
 * script is not rolled back when a command fails midway.
 */
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "ctl.h"
#include "job.h"
#include "payload.h"

/* Members found by jid (or all of them), copied out of the page replies. */
typedef struct found {
    const char *jid; /* NULL: every member */
    char **raw;
    size_t *len;
    size_t n, cap;
} found;

static int collect(const char *raw, size_t len, double score, void *ctx)
{
    found *f = ctx;
    if (f->jid != NULL && !ctl_raw_has_jid(raw, len, f->jid))
        return 0;
    if (f->n == f->cap) {
        f->cap = f->cap ? f->cap * 2 : 8;
        f->raw = realloc(f->raw, f->cap * sizeof *f->raw);
        f->len = realloc(f->len, f->cap * sizeof *f->len);
        if (f->raw == NULL || f->len == NULL)
            abort();
    }
    f->raw[f->n] = malloc(len + 1);
    if (f->raw[f->n] == NULL)
        abort();
    memcpy(f->raw[f->n], raw, len);
    f->raw[f->n][len] = '\0';
    f->len[f->n++] = len;
    return 0;
}

static void found_free(found *f)
{
    for (size_t i = 0; i < f->n; i++)
        free(f->raw[i]);
    free(f->raw);
    free(f->len);
}

/* ---- retry ---------------------------------------------------------------- */

/* The payload as Client#push writes it back (sq_payload_requeued). NULL
 * when not a job. */
static char *requeued_payload(const char *raw, size_t len, size_t *out_len, char **queue)
{
    json_t *job = ctl_read_job(raw, len);
    char *out = job ? sq_payload_requeued(raw, len, job, ctl_now(), queue, out_len) : NULL;
    json_decref(job);
    return out;
}

/* Move one member of zset back to its queue. 1 moved, 0 gone, -1 error. */
static int requeue(sq_redis *r, const char *zset, const char *raw, size_t len, sq_error *err)
{
    char *queue = NULL;
    size_t newlen = 0;
    char *moved = requeued_payload(raw, len, &newlen, &queue);
    if (moved == NULL) {
        free(queue);
        snprintf(err->message, sizeof err->message, "a %s entry is not a JSON job; left in place",
                 zset);
        err->code = SQ_EINVAL;
        return -1;
    }
    char key[SQ_QUEUE_KEY_MAX];
    size_t klen = sq_queue_key(key, sizeof key, queue);
    const char *argv[] = {zset, key, SQ_KEY_QUEUES, raw, moved, queue};
    size_t lens[] = {strlen(zset), klen, 6, len, newlen, strlen(queue)};
    redisReply *rep = sq_redis_eval(r, &sq_script_zset_to_queue, 3, 6, argv, lens, err);
    free(moved);
    bool replied = rep != NULL;
    long long rc = rep && rep->type == REDIS_REPLY_INTEGER ? rep->integer : -3;
    if (rep)
        freeReplyObject(rep);
    if (rc < 0 && replied) {
        snprintf(err->message, sizeof err->message, "%.200s has the wrong type; job left in %s",
                 rc == -1 ? key : SQ_KEY_QUEUES, zset);
        err->code = SQ_EREDIS;
    }
    free(queue);
    return rc < 0 ? -1 : (int)rc;
}

/* Retry every member of f from zset. A member that is not a JSON job stays
 * where it is (warned about); the others still move. Returns -1 on a Redis
 * error or when a member had to be left. */
static int requeue_found(sq_redis *r, const char *zset, found *f, size_t *moved, sq_error *err)
{
    int rc = 0;
    for (size_t i = 0; i < f->n; i++) {
        sq_error e = {0};
        int m = requeue(r, zset, f->raw[i], f->len[i], &e);
        if (m < 0 && e.code == SQ_EINVAL) {
            fprintf(stderr, "squirectl retry: %s\n", e.message);
            rc = -1;
            continue;
        }
        if (m < 0) {
            *err = e;
            return -1;
        }
        *moved += (size_t)m;
    }
    return rc;
}

static const char retry_usage[] =
    "Usage: squirectl retry (JID | --all) [--from retry|dead] [--json]\n"
    "  puts the job back on its queue now (retry_count - 1), as the Web UI's Retry Now.\n"
    "  A JID is looked for in retry, then dead; --all takes the whole --from set (default "
    "retry).\n";

int ctl_retry(const char *url, int argc, char **argv)
{
    ctl_opts o;
    int rc = ctl_opts_parse(argc, argv, "afj", retry_usage, &o);
    if (rc != CTL_OK)
        return rc == CTL_HELP ? CTL_OK : rc;
    if (o.all ? o.nrest != 0 : o.nrest != 1)
        return ctl_usage_error(argv[0], retry_usage, "give one JID or --all");
    if (o.from && strcmp(o.from, "retry") != 0 && strcmp(o.from, "dead") != 0)
        return ctl_usage_error(argv[0], retry_usage, "--from must be retry or dead");
    const char *sets[2] = {o.from ? o.from : "retry", o.from || o.all ? NULL : "dead"};
    sq_redis *r = ctl_connect(url, argv[0], &rc);
    if (r == NULL)
        return rc;
    sq_error err = {0};
    size_t moved = 0;
    for (size_t s = 0; s < 2 && sets[s] && rc == CTL_OK && (o.all || moved == 0); s++) {
        found f = {.jid = o.all ? NULL : o.rest[0]};
        if (ctl_each_member(r, sets[s], true, collect, &f, &err) != 0 ||
            requeue_found(r, sets[s], &f, &moved, &err) != 0)
            rc = err.code ? ctl_fail(argv[0], &err) : CTL_ERROR;
        found_free(&f);
    }
    if (rc == CTL_OK && !o.all && moved == 0) {
        fprintf(stderr, "squirectl retry: no job %s in %s\n", o.rest[0],
                o.from ? o.from : "retry or dead");
        rc = CTL_ERROR;
    }
    if (o.json)
        ctl_json_print(json_pack("{s:I}", "retried", (json_int_t)moved), stdout);
    else
        printf("retried %zu\n", moved);
    sq_redis_free(r);
    return rc;
}

/* ---- kill ----------------------------------------------------------------- */

/* Move one member to the dead set, trimmed to the configured limits (lim). */
static int kill_one(sq_redis *r, const sq_dead_limits *lim, const char *zset, const char *raw,
                    size_t len, sq_error *err)
{
    sq_dead_args a;
    sq_dead_args_make(ctl_now(), lim, &a);
    const char *argv[] = {zset, SQ_KEY_DEAD, raw, a.score, a.cutoff, a.max};
    size_t lens[] = {strlen(zset), 4, len, strlen(a.score), strlen(a.cutoff), strlen(a.max)};
    redisReply *rep = sq_redis_eval(r, &sq_script_zset_to_dead, 2, 6, argv, lens, err);
    if (rep == NULL)
        return -1;
    long long rc = rep->type == REDIS_REPLY_INTEGER ? rep->integer : 0;
    freeReplyObject(rep);
    if (rc < 0) {
        snprintf(err->message, sizeof err->message, "dead is not a sorted set; job left in %s",
                 zset);
        err->code = SQ_EREDIS;
        return -1;
    }
    return (int)rc;
}

static const char kill_usage[] =
    "Usage: squirectl kill JID [--from retry|scheduled] [--json]\n"
    "  moves the job to the dead set (looked for in retry, then scheduled).\n";

int ctl_kill(const char *url, int argc, char **argv)
{
    ctl_opts o;
    int rc = ctl_opts_parse(argc, argv, "fj", kill_usage, &o);
    if (rc != CTL_OK)
        return rc == CTL_HELP ? CTL_OK : rc;
    if (o.nrest != 1)
        return ctl_usage_error(argv[0], kill_usage, "give one JID");
    const char *sets[2] = {SQ_KEY_RETRY, SQ_KEY_SCHEDULE};
    if (o.from) {
        bool retry = strcmp(o.from, "retry") == 0;
        if (!retry && strcmp(o.from, "scheduled") != 0 && strcmp(o.from, "schedule") != 0)
            return ctl_usage_error(argv[0], kill_usage, "--from must be retry or scheduled");
        sets[0] = retry ? SQ_KEY_RETRY : SQ_KEY_SCHEDULE;
        sets[1] = NULL;
    }
    sq_error err = {0};
    const sq_config *cfg = ctl_config(&err);
    if (cfg == NULL) {
        fprintf(stderr, "squirectl %s: %s\n", argv[0], err.message);
        return CTL_CONFIG;
    }
    sq_dead_limits lim = sq_config_dead_limits(cfg);
    sq_redis *r = ctl_connect(url, argv[0], &rc);
    if (r == NULL)
        return rc;
    int killed = 0;
    for (size_t s = 0; s < 2 && sets[s] && rc == CTL_OK && killed == 0; s++) {
        found f = {.jid = o.rest[0]};
        if (ctl_each_member(r, sets[s], true, collect, &f, &err) != 0)
            rc = ctl_fail(argv[0], &err);
        for (size_t i = 0; i < f.n && rc == CTL_OK; i++) {
            int k = kill_one(r, &lim, sets[s], f.raw[i], f.len[i], &err);
            if (k < 0)
                rc = ctl_fail(argv[0], &err);
            else
                killed += k;
        }
        found_free(&f);
    }
    if (rc == CTL_OK && killed == 0) {
        fprintf(stderr, "squirectl kill: no job %s in %s\n", o.rest[0],
                o.from ? o.from : "retry or scheduled");
        rc = CTL_ERROR;
    }
    if (o.json)
        ctl_json_print(json_pack("{s:i}", "killed", killed), stdout);
    else
        printf("killed %d\n", killed);
    sq_redis_free(r);
    return rc;
}
