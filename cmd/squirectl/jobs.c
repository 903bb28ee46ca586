/*
 * jobs.c: squirectl jobs: the jobs of a queue (newest first, as the Web UI's
 * queue page) or of the retry, scheduled or dead set (by ascending score, as
 * the Web UI), filtered by class and jid. Payloads that are not JSON are
 * listed as raw text, as the Web UI does.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "job.h"

#define PAGE 500

static const char usage[] =
    "Usage: squirectl jobs QUEUE|retry|scheduled|dead [--class C] [--jid J] [--limit N] [--json]\n"
    "  QUEUE may be written queue:NAME for a queue named like a set.\n"
    "  --limit N   show at most N jobs (default 100; 0: all)\n";

/* Check the key's type first: a wrong type is an error, a missing key empty. */
static int check_type(sq_redis *r, const char *key, bool is_set, sq_error *err)
{
    redisReply *t = sq_redis_cmd(r, err, "TYPE %s", key);
    if (t == NULL)
        return -1;
    const char *want = is_set ? "zset" : "list";
    int rc = 0;
    if (t->type != REDIS_REPLY_STATUS ||
        (strcmp(t->str, want) != 0 && strcmp(t->str, "none") != 0)) {
        snprintf(err->message, sizeof err->message, "%.200s is a %.20s, not a %s", key,
                 t->type == REDIS_REPLY_STATUS ? t->str : "?", want);
        err->code = SQ_EREDIS;
        rc = -1;
    }
    freeReplyObject(t);
    return rc;
}

int ctl_each_member(sq_redis *r, const char *key, bool is_set, ctl_visit_fn fn, void *ctx,
                    sq_error *err)
{
    if (check_type(r, key, is_set, err) != 0)
        return -1;
    size_t step = is_set ? 2 : 1;
    for (long start = 0;; start += PAGE) {
        redisReply *rep =
            is_set
                ? sq_redis_cmd(r, err, "ZRANGE %s %ld %ld WITHSCORES", key, start, start + PAGE - 1)
                : sq_redis_cmd(r, err, "LRANGE %s %ld %ld", key, start, start + PAGE - 1);
        if (rep == NULL)
            return -1;
        int stop = rep->type != REDIS_REPLY_ARRAY || rep->elements == 0;
        for (size_t i = 0; !stop && i + step <= rep->elements; i += step) {
            const redisReply *m = rep->element[i];
            double score = is_set ? strtod(rep->element[i + 1]->str, NULL) : 0;
            stop = fn(m->str, m->len, score, ctx);
        }
        size_t got = rep->type == REDIS_REPLY_ARRAY ? rep->elements / step : 0;
        freeReplyObject(rep);
        if (stop || got < PAGE)
            return 0;
    }
}

const char *ctl_job_jid(const json_t *job)
{
    const char *jid = json_string_value(json_object_get(job, "jid"));
    return jid ? jid : "";
}

bool ctl_raw_has_jid(const char *raw, size_t len, const char *jid)
{
    if (memmem(raw, len, jid, strlen(jid)) == NULL)
        return false;
    json_t *job = ctl_read_job(raw, len);
    bool yes = strcmp(ctl_job_jid(job), jid) == 0;
    json_decref(job);
    return yes;
}

/* ---- listing --------------------------------------------------------------- */

struct listing {
    const ctl_opts *o;
    bool is_set;
    long shown;
    ctl_table *table;
    json_t *json;
};

static const char *class_of(const json_t *job)
{
    const char *c = json_string_value(json_object_get(job, "display_class"));
    if (c == NULL)
        c = json_string_value(json_object_get(job, "wrapped"));
    if (c == NULL)
        c = json_string_value(json_object_get(job, "class"));
    return c;
}

static bool class_matches(const json_t *job, const char *want)
{
    static const char *const keys[] = {"class", "wrapped", "display_class"};
    for (size_t i = 0; i < 3; i++) {
        const char *v = json_string_value(json_object_get(job, keys[i]));
        if (v && strcmp(v, want) == 0)
            return true;
    }
    return false;
}

static json_t *time_json(const json_t *job, const char *key)
{
    double t = sq_json_time(json_object_get(job, key));
    return t < 0 ? json_null() : json_real(t);
}

static json_t *job_json(const json_t *job, const char *raw, size_t len, double score, bool is_set)
{
    json_t *o = json_object();
    json_object_set_new(o, "jid", job ? json_string(ctl_job_jid(job)) : json_null());
    json_object_set_new(o, "class", class_of(job) ? json_string(class_of(job)) : json_null());
    static const char *const copied[] = {"queue", "args", "retry_count", "error_class",
                                         "error_message"};
    for (size_t i = 0; i < 5; i++) {
        json_t *v = json_object_get(job, copied[i]);
        json_object_set(o, copied[i], v ? v : json_null());
    }
    static const char *const times[] = {"enqueued_at", "created_at", "failed_at", "retried_at"};
    for (size_t i = 0; i < 4; i++)
        json_object_set_new(o, times[i], time_json(job, times[i]));
    if (is_set)
        json_object_set_new(o, "score", json_real(score));
    json_object_set_new(o, "payload", ctl_json_bytes(raw, len));
    return o;
}

static void add_row(struct listing *l, const json_t *job, const char *raw, size_t len, double score)
{
    char when[32], retries[32];
    double t = l->is_set ? score : sq_json_time(json_object_get(job, "enqueued_at"));
    json_t *rc = json_object_get(job, "retry_count");
    snprintf(retries, sizeof retries, "%lld", (long long)json_integer_value(rc));
    char *args = job ? json_dumps(json_object_get(job, "args"),
                                  JSON_COMPACT | JSON_ENCODE_ANY | JSON_ENSURE_ASCII)
                     : strndup(raw, len); /* not JSON: the raw text, escaped */
    const char *ec = json_string_value(json_object_get(job, "error_class"));
    const char *em = json_string_value(json_object_get(job, "error_message"));
    char *error = NULL;
    if (ec || em) {
        size_t n = (ec ? strlen(ec) : 0) + (em ? strlen(em) : 0) + 3;
        error = malloc(n);
        snprintf(error, n, "%s: %s", ec ? ec : "", em ? em : "");
    }
    const char *cells[] = {ctl_fmt_time(t, when),
                           job ? ctl_job_jid(job) : "-",
                           job ? class_of(job) : "(not JSON)",
                           json_string_value(json_object_get(job, "queue")),
                           args,
                           json_is_integer(rc) ? retries : NULL,
                           error};
    ctl_table_add(l->table, cells, 50);
    free(args);
    free(error);
}

static int visit(const char *raw, size_t len, double score, void *ctx)
{
    struct listing *l = ctx;
    json_t *job = ctl_read_job(raw, len);
    bool match = (l->o->klass == NULL || (job && class_matches(job, l->o->klass))) &&
                 (l->o->jid == NULL || (job && strcmp(ctl_job_jid(job), l->o->jid) == 0));
    if (match) {
        if (l->json)
            json_array_append_new(l->json, job_json(job, raw, len, score, l->is_set));
        else
            add_row(l, job, raw, len, score);
        l->shown++;
    }
    json_decref(job);
    return l->o->limit > 0 && l->shown >= l->o->limit;
}

int ctl_jobs(const char *url, int argc, char **argv)
{
    const char *heads[] = {"ENQUEUED", "JID", "CLASS", "QUEUE", "ARGS", "RETRIES", "ERROR"};
    ctl_opts o;
    int rc = ctl_opts_parse(argc, argv, "jcJn", usage, &o);
    if (rc != CTL_OK)
        return rc == CTL_HELP ? CTL_OK : rc;
    char key[300];
    const char *qname;
    struct listing l = {.o = &o};
    if (o.nrest != 1 || ctl_target(o.rest[0], key, sizeof key, &l.is_set, &qname) != 0)
        return ctl_usage_error(argv[0], usage, "name one queue or set");
    sq_redis *r = ctl_connect(url, argv[0], &rc);
    if (r == NULL)
        return rc;
    if (l.is_set)
        heads[0] = strcmp(key, "retry") == 0  ? "RETRY AT"
                   : strcmp(key, "dead") == 0 ? "DIED AT"
                                              : "RUN AT";
    if (o.json)
        l.json = json_array();
    else
        l.table = ctl_table_new(7, heads);
    sq_error err = {0};
    if (ctl_each_member(r, key, l.is_set, visit, &l, &err) != 0)
        rc = ctl_fail(argv[0], &err);
    else if (o.json)
        ctl_json_print(json_incref(l.json), stdout);
    else
        ctl_table_print(l.table, stdout);
    json_decref(l.json);
    ctl_table_free(l.table);
    sq_redis_free(r);
    return rc;
}
