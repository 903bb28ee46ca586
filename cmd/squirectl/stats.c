/*
 * stats.c: squirectl stats and queues, computed as Sidekiq::Stats and
 * Sidekiq::Queue do: counters by GET, set sizes by ZCARD/SCARD, busy as the
 * sum of each registered process's `busy` field, enqueued as the sum of the
 * sizes of the queues in `queues`, and a queue's latency as now minus the
 * enqueued_at of its rightmost (oldest) job.
 */
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "job.h"

static long long reply_int(const redisReply *r)
{
    if (r == NULL)
        return 0;
    if (r->type == REDIS_REPLY_INTEGER)
        return r->integer;
    if (r->type == REDIS_REPLY_STRING)
        return strtoll(r->str, NULL, 10); /* Ruby's to_i: garbage reads as 0 */
    return 0;
}

/* Latency from an LRANGE key -1 -1 reply: 0 for an empty queue, and 0 when
 * the job has no readable enqueued_at (Sidekiq uses `now` then). */
static double latency_of(const redisReply *r, double now)
{
    if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements == 0 ||
        r->element[0]->type != REDIS_REPLY_STRING)
        return 0;
    json_t *job = ctl_read_job(r->element[0]->str, r->element[0]->len);
    double t = sq_json_time(json_object_get(job, "enqueued_at"));
    json_decref(job);
    return t < 0 ? 0 : now - t;
}

/* Sizes and latencies of every queue in `queues`, pipelined. */
static int fetch_queues(sq_redis *r, ctl_summary *s, sq_error *err)
{
    size_t n;
    char **names = ctl_smembers(r, SQ_KEY_QUEUES, &n, err);
    if (names == NULL)
        return -1;
    s->queues = calloc(n ? n : 1, sizeof *s->queues);
    for (size_t i = 0; i < n; i++) {
        char *key = sq_queue_key_dup(names[i]);
        if (key == NULL || sq_redis_pipe_cmd(r, err, "LLEN %s", key) != 0 ||
            sq_redis_pipe_cmd(r, err, "LRANGE %s -1 -1", key) != 0) {
            if (key == NULL) {
                snprintf(err->message, sizeof err->message, "out of memory");
                err->code = SQ_ENOMEM;
            }
            free(key);
            ctl_strv_free(names, n);
            return -1;
        }
        free(key);
    }
    double now = ctl_now();
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        sq_error e = {0}; /* a wrong-typed queue key reads as empty, as in the UI */
        redisReply *len = sq_redis_pipe_reply(r, &e);
        redisReply *last = sq_redis_pipe_reply(r, &e);
        if ((len == NULL || last == NULL) && !sq_redis_is_connected(r))
            rc = -1, *err = e;
        ctl_queue *q = &s->queues[s->nqueues++];
        q->name = names[i];
        names[i] = NULL;
        q->size = reply_int(len);
        q->latency = latency_of(last, now);
        s->enqueued += q->size;
        if (len)
            freeReplyObject(len);
        if (last)
            freeReplyObject(last);
        if (rc != 0)
            break;
    }
    ctl_strv_free(names, n);
    return rc;
}

/* busy = sum of HGET <id> busy over `processes` (Stats#workers_size). */
static int fetch_busy(sq_redis *r, ctl_summary *s, sq_error *err)
{
    size_t n;
    char **ids = ctl_smembers(r, SQ_KEY_PROCESSES, &n, err);
    if (ids == NULL)
        return -1;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = sq_redis_pipe_cmd(r, err, "HGET %s busy", ids[i]);
    for (size_t i = 0; i < n && rc == 0; i++) {
        sq_error e = {0};
        redisReply *rep = sq_redis_pipe_reply(r, &e);
        if (rep == NULL && !sq_redis_is_connected(r))
            rc = -1, *err = e;
        s->busy += reply_int(rep);
        if (rep)
            freeReplyObject(rep);
    }
    ctl_strv_free(ids, n);
    return rc;
}

int ctl_stats_fetch(sq_redis *r, ctl_summary *s, sq_error *err)
{
    static const char *const cmds[][2] = {
        {"GET", SQ_KEY_STAT_PROCESSED}, {"GET", SQ_KEY_STAT_FAILED}, {"ZCARD", SQ_KEY_RETRY},
        {"ZCARD", SQ_KEY_SCHEDULE},     {"ZCARD", SQ_KEY_DEAD},      {"SCARD", SQ_KEY_PROCESSES}};
    long long *dst[] = {&s->processed, &s->failed, &s->retries,
                        &s->scheduled, &s->dead,   &s->processes};
    memset(s, 0, sizeof *s);
    for (size_t i = 0; i < 6; i++)
        if (sq_redis_pipe_cmd(r, err, "%s %s", cmds[i][0], cmds[i][1]) != 0)
            return -1;
    for (size_t i = 0; i < 6 && sq_redis_is_connected(r); i++) {
        redisReply *rep = sq_redis_pipe_reply(r, err);
        *dst[i] = reply_int(rep);
        if (rep)
            freeReplyObject(rep);
    }
    if (err->code != 0 || fetch_busy(r, s, err) != 0 || fetch_queues(r, s, err) != 0) {
        sq_redis_disconnect(r); /* never leave unread replies behind */
        return -1;
    }
    return 0;
}

void ctl_stats_destroy(ctl_summary *s)
{
    for (size_t i = 0; i < s->nqueues; i++)
        free(s->queues[i].name);
    free(s->queues);
    memset(s, 0, sizeof *s);
}

void ctl_queues_print(const ctl_summary *s, FILE *out)
{
    static const char *const heads[] = {"QUEUE", "SIZE", "LATENCY"};
    ctl_table *t = ctl_table_new(3, heads);
    for (size_t i = 0; i < s->nqueues; i++) {
        char size[32], lat[32];
        snprintf(size, sizeof size, "%lld", s->queues[i].size);
        const char *cells[] = {s->queues[i].name, size, ctl_fmt_age(s->queues[i].latency, lat)};
        ctl_table_add(t, cells, 60);
    }
    ctl_table_print(t, out);
    ctl_table_free(t);
}

void ctl_stats_print(const ctl_summary *s, FILE *out)
{
    fprintf(out,
            "Processed: %lld\nFailed:    %lld\nBusy:      %lld\nEnqueued:  %lld\n"
            "Retries:   %lld\nScheduled: %lld\nDead:      %lld\nProcesses: %lld\n\n",
            s->processed, s->failed, s->busy, s->enqueued, s->retries, s->scheduled, s->dead,
            s->processes);
    ctl_queues_print(s, out);
}

json_t *ctl_queues_json(const ctl_summary *s)
{
    json_t *a = json_array();
    for (size_t i = 0; i < s->nqueues; i++)
        json_array_append_new(
            a, json_pack("{s:o, s:I, s:f}", "name",
                         ctl_json_bytes(s->queues[i].name, strlen(s->queues[i].name)), "size",
                         (json_int_t)s->queues[i].size, "latency", s->queues[i].latency));
    return a;
}

json_t *ctl_stats_json(const ctl_summary *s)
{
    return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o}", "processed",
                     (json_int_t)s->processed, "failed", (json_int_t)s->failed, "busy",
                     (json_int_t)s->busy, "enqueued", (json_int_t)s->enqueued, "retries",
                     (json_int_t)s->retries, "scheduled", (json_int_t)s->scheduled, "dead",
                     (json_int_t)s->dead, "processes", (json_int_t)s->processes, "queues",
                     ctl_queues_json(s));
}

static int run_stats(const char *url, int argc, char **argv, bool queues_only)
{
    const char *usage =
        queues_only ? "Usage: squirectl queues [--json]\n" : "Usage: squirectl stats [--json]\n";
    ctl_opts o;
    int rc;
    sq_redis *r = ctl_open_no_operands(url, argc, argv, "j", usage, &o, &rc);
    if (r == NULL)
        return rc;
    ctl_summary s;
    sq_error err = {0};
    if (ctl_stats_fetch(r, &s, &err) != 0)
        rc = ctl_fail(argv[0], &err);
    else if (o.json)
        ctl_json_print(queues_only ? ctl_queues_json(&s) : ctl_stats_json(&s), stdout);
    else if (queues_only)
        ctl_queues_print(&s, stdout);
    else
        ctl_stats_print(&s, stdout);
    ctl_stats_destroy(&s);
    sq_redis_free(r);
    return rc;
}

int ctl_stats(const char *url, int argc, char **argv)
{
    return run_stats(url, argc, argv, false);
}

int ctl_queues(const char *url, int argc, char **argv)
{
    return run_stats(url, argc, argv, true);
}
