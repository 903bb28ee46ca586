/*
 * procs.c: squirectl processes, quiet and stop: Sidekiq's ProcessSet and
 * Process#quiet!/#stop!. A process is a member of `processes` whose hash
 * still has `info`; members whose hash expired are skipped, as the API does.
 * A signal is MULTI; LPUSH <id>-signals TSTP|TERM; EXPIRE <id>-signals 60;
 * EXEC, picked up by the process's next heartbeat.
 */
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "job.h"

static const char *field_str(const redisReply *r, size_t i)
{
    return i < r->elements && r->element[i]->type == REDIS_REPLY_STRING ? r->element[i]->str : NULL;
}

/* One HMGET reply into p; returns false when the process is gone (no info). */
static bool read_process(const char *id, const redisReply *rep, ctl_process *p)
{
    const char *info = rep && rep->type == REDIS_REPLY_ARRAY ? field_str(rep, 0) : NULL;
    if (info == NULL)
        return false;
    memset(p, 0, sizeof *p);
    p->info = json_loads(info, 0, NULL);
    if (!json_is_object(p->info)) {
        json_decref(p->info);
        p->info = json_object();
    }
    const char *v;
    p->identity = strdup(id);
    p->busy = (v = field_str(rep, 1)) ? strtoll(v, NULL, 10) : 0;
    p->beat = (v = field_str(rep, 2)) ? strtod(v, NULL) : 0;
    p->quiet = (v = field_str(rep, 3)) && strcmp(v, "true") == 0;
    p->rss = (v = field_str(rep, 4)) ? strtoll(v, NULL, 10) : 0;
    p->rtt_us = (v = field_str(rep, 5)) ? strtoll(v, NULL, 10) : 0;
    /* 8.1.2+ moved concurrency to a hash field */
    if ((v = field_str(rep, 6)) != NULL && json_object_get(p->info, "concurrency") == NULL)
        json_object_set_new(p->info, "concurrency", json_integer(strtoll(v, NULL, 10)));
    return true;
}

int ctl_procs_fetch(sq_redis *r, ctl_process **out, size_t *n, sq_error *err)
{
    size_t nids;
    *out = NULL;
    *n = 0;
    char **ids = ctl_smembers(r, SQ_KEY_PROCESSES, &nids, err);
    if (ids == NULL)
        return -1;
    int rc = 0;
    for (size_t i = 0; i < nids && rc == 0; i++)
        rc = sq_redis_pipe_cmd(r, err, "HMGET %s info busy beat quiet rss rtt_us concurrency",
                               ids[i]);
    ctl_process *p = calloc(nids ? nids : 1, sizeof *p);
    for (size_t i = 0; i < nids && rc == 0; i++) {
        sq_error e = {0}; /* a member whose key is not a hash reads as gone */
        redisReply *rep = sq_redis_pipe_reply(r, &e);
        if (rep == NULL && !sq_redis_is_connected(r))
            rc = -1, *err = e;
        if (read_process(ids[i], rep, &p[*n]))
            (*n)++;
        if (rep)
            freeReplyObject(rep);
    }
    ctl_strv_free(ids, nids);
    if (rc != 0) {
        sq_redis_disconnect(r);
        ctl_procs_free(p, *n);
        *n = 0;
        return -1;
    }
    *out = p;
    return 0;
}

void ctl_procs_free(ctl_process *p, size_t n)
{
    for (size_t i = 0; p && i < n; i++) {
        free(p[i].identity);
        json_decref(p[i].info);
    }
    free(p);
}

static const char *info_str(const ctl_process *p, const char *key)
{
    return json_string_value(json_object_get(p->info, key));
}

/* "a, b" from info.queues (or the keys of 7.x weights when queues is absent). */
static char *queues_text(const ctl_process *p)
{
    json_t *q = json_object_get(p->info, "queues");
    json_t *list = json_array();
    size_t i;
    json_t *v;
    if (json_is_array(q)) {
        json_array_foreach(q, i, v) json_array_append(list, v);
    } else {
        json_t *w = json_array_get(json_object_get(p->info, "weights"), 0);
        const char *k;
        json_object_foreach(w, k, v) json_array_append_new(list, json_string(k));
    }
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    json_array_foreach(list, i, v)
    {
        const char *name = json_string_value(v);
        fprintf(f, "%s%s", i > 0 ? ", " : "", name ? name : "?");
    }
    fclose(f);
    json_decref(list);
    return buf;
}

static const char *or_dash(const char *s)
{
    return s ? s : "-";
}

static void add_row(ctl_table *t, const ctl_process *p, double now)
{
    char hostpid[300], conc[32], busy[32], started[32], beat[32], rss[32];
    snprintf(hostpid, sizeof hostpid, "%s:%lld", or_dash(info_str(p, "hostname")),
             (long long)json_integer_value(json_object_get(p->info, "pid")));
    snprintf(conc, sizeof conc, "%lld",
             (long long)json_integer_value(json_object_get(p->info, "concurrency")));
    snprintf(busy, sizeof busy, "%lld", p->busy);
    snprintf(rss, sizeof rss, "%lld MB", p->rss / 1024);
    ctl_fmt_age(now - p->beat, beat);
    char *queues = queues_text(p);
    const char *cells[] = {
        p->identity,
        hostpid,
        info_str(p, "tag"),
        ctl_fmt_time(sq_json_time(json_object_get(p->info, "started_at")), started),
        conc,
        busy,
        queues,
        p->quiet ? "yes" : "no",
        beat,
        rss};
    ctl_table_add(t, cells, 60);
    free(queues);
}

void ctl_procs_print(const ctl_process *p, size_t n, FILE *out)
{
    static const char *const heads[] = {"IDENTITY", "HOST:PID", "TAG",   "STARTED", "THREADS",
                                        "BUSY",     "QUEUES",   "QUIET", "BEAT",    "RSS"};
    ctl_table *t = ctl_table_new(10, heads);
    double now = ctl_now();
    for (size_t i = 0; i < n; i++)
        add_row(t, &p[i], now);
    ctl_table_print(t, out);
    ctl_table_free(t);
}

json_t *ctl_procs_json(const ctl_process *p, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(
            a, json_pack("{s:o, s:O, s:I, s:f, s:b, s:I, s:I}", "identity",
                         ctl_json_bytes(p[i].identity, strlen(p[i].identity)), "info", p[i].info,
                         "busy", (json_int_t)p[i].busy, "beat", p[i].beat, "quiet", p[i].quiet,
                         "rss", (json_int_t)p[i].rss, "rtt_us", (json_int_t)p[i].rtt_us));
    return a;
}

int ctl_processes(const char *url, int argc, char **argv)
{
    static const char usage[] = "Usage: squirectl processes [--json]\n";
    ctl_opts o;
    int rc;
    sq_redis *r = ctl_open_no_operands(url, argc, argv, "j", usage, &o, &rc);
    if (r == NULL)
        return rc;
    ctl_process *p;
    size_t n;
    sq_error err = {0};
    if (ctl_procs_fetch(r, &p, &n, &err) != 0)
        rc = ctl_fail(argv[0], &err);
    else if (o.json)
        ctl_json_print(ctl_procs_json(p, n), stdout);
    else
        ctl_procs_print(p, n, stdout);
    ctl_procs_free(p, n);
    sq_redis_free(r);
    return rc;
}
