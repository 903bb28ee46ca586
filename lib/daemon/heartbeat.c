/*
 * heartbeat.c: how squire appears in Sidekiq's Web UI and API, exactly like
 * a Sidekiq process (sidekiq-wire.md §9).
 *
 * Every beat, on the main thread:
 *   1. the jobs in progress: MULTI; UNLINK <id>:work <id>:workers; HSET both
 *      with tid -> {"queue","payload":"<raw job>","run_at"}; EXPIRE 60; EXEC.
 *      (`:workers` is the name Sidekiq 6.4.1, Debian's, reads.)
 *   2. PING, timed: rtt_us.
 *   3. MULTI; SADD processes <id>; HSET <id> info busy beat quiet rss rtt_us
 *      concurrency fetch_error [database]; EXPIRE <id> 60; RPOP <id>-signals;
 *      EXEC.
 *      While a worker's fetches have failed for SQ_FETCH_FAILING_SHOW_MS,
 *      `info` carries the label "fetch-failing" (the Web UI shows labels)
 *      and fetch_error the first error (squire --check reads it).
 * Between beats, sq_heartbeat_refresh writes step 1 again (and the busy
 * field) when a job has run a second unseen or a shown job left (issue 16).
 *
 * A popped signal is acted on as if the OS had delivered it, but only TSTP,
 * TERM and TTIN: anything else in the list is logged and ignored (squire
 * never passes Redis data to kill(2)).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <unistd.h>

#include "common.h"
#include "log.h"
#include "observe.h" /* issue 17 */
#include "runtime.h"
#include "sidekiq.h"

#define TTL "60"

static json_t *queue_weights(const sq_config *cfg)
{
    json_t *w = json_object();
    for (size_t i = 0; w && i < cfg->nqueues; i++)
        json_object_set_new(w, cfg->queues[i].name, json_integer(cfg->queues[i].weight));
    return w;
}

int sq_heartbeat_init(sq_runtime *rt)
{
    const sq_config *cfg = rt->cfg;
    char host[256];
    snprintf(host, sizeof host, "%.*s", (int)strcspn(rt->identity, ":"), rt->identity);
    json_t *queues = json_array(), *labels = json_array();
    for (size_t i = 0; i < rt->order.nqueues; i++)
        json_array_append_new(queues, json_string(rt->order.names[i]));
    for (size_t i = 0; i < cfg->nlabels; i++)
        json_array_append_new(labels, json_string(cfg->labels[i]));
    json_incref(labels);
    static const char *const modes[] = {"strict", "weighted", "random"};
    json_t *capsule = json_pack("{s:i, s:s, s:o}", "concurrency", cfg->concurrency, "mode",
                                modes[rt->order.mode], "weights", queue_weights(cfg));
    /* Every key Sidekiq 6.4.1, 7.x and 8.x read (§9.3); extra keys are ignored. */
    json_t *info = json_pack(
        "{s:s, s:f, s:i, s:s, s:i, s:o, s:[o], s:o, s:s, s:s, s:b, s:{s:o}}", "hostname", host,
        "started_at", rt->started_at, "pid", (int)getpid(), "tag", cfg->tag ? cfg->tag : "",
        "concurrency", cfg->concurrency, "queues", queues, "weights", queue_weights(cfg),
        "labels", labels, "identity", rt->identity, "version", "squire-" SQ_VERSION,
        "embedded", 0, "capsules", "default", capsule);
    if (info == NULL) {
        json_decref(labels);
        return -1;
    }
    rt->info_json = json_dumps(info, JSON_COMPACT);
    rt->work_shown = calloc((size_t)rt->nworkers + 1, sizeof *rt->work_shown);
    /* The Web UI shows labels next to the process: while its fetches fail
     * the process says so there (and in the fetch_error field). */
    json_array_append_new(labels, json_string(SQ_FETCH_FAILING_LABEL));
    rt->info_failing_json = json_dumps(info, JSON_COMPACT);
    json_decref(labels);
    json_decref(info);
    return rt->info_json && rt->info_failing_json && rt->work_shown ? 0 : -1;
}

static long rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = 0;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0)
            kb = strtol(line + 6, NULL, 10);
    if (f)
        fclose(f);
    return kb;
}

long long sq_runtime_fetch_failing(sq_runtime *rt, char *msg, size_t size)
{
    long long now = sq_runtime_ms(), worst = 0;
    if (size > 0)
        msg[0] = '\0';
    for (int i = 0; rt->workers && i < rt->nworkers; i++) {
        sq_worker *w = &rt->workers[i];
        long long since = atomic_load(&w->fetch_failing_ms);
        if (since == 0 || now - since <= worst)
            continue;
        worst = now - since > 0 ? now - since : 1;
        pthread_mutex_lock(&w->lock);
        snprintf(msg, size, "%.199s", w->fetch_error);
        pthread_mutex_unlock(&w->lock);
    }
    return worst;
}

/* What work_entry asks of a slot: its entry when its job has run min_age
 * seconds by wall clock at now (issue 16), and when that job started. */
struct work_ask {
    double now, min_age;
    double started; /* 0: idle */
    char *json;
};

static void work_json(const sq_slot_view *v, void *ud)
{
    struct work_ask *a = ud;
    const sq_unit *u = v->unit;
    if ((v->state != SQ_SLOT_RUNNING && v->state != SQ_SLOT_FINISHING) || u->raw == NULL)
        return;
    a->started = v->started_at;
    if (a->now - v->started_at < a->min_age)
        return;
    json_t *e = json_pack("{s:s, s:s%, s:I}", "queue", u->queue ? u->queue : "", "payload",
                          u->raw, u->len, "run_at", (json_int_t)v->started_at);
    if (e == NULL) /* payload not UTF-8: show it scrubbed rather than not at all */
        e = json_pack("{s:s, s:s, s:I}", "queue", u->queue ? u->queue : "", "payload",
                      "(invalid UTF-8)", (json_int_t)v->started_at);
    a->json = e ? json_dumps(e, JSON_COMPACT) : NULL;
    json_decref(e);
}

/* The work entry of worker w ({"queue","payload","run_at"}), or NULL when
 * idle or when its job has run less than min_age seconds (by wall clock at
 * now); *started gets the job's start (0: idle). */
static char *work_entry(sq_worker *w, double now, double min_age, double *started)
{
    struct work_ask a = {now, min_age, 0, NULL};
    sq_slot_peek(w->slot, work_json, &a);
    *started = a.started;
    return a.json;
}

/* Step 1: rewrite <id>:work and <id>:workers with the jobs that have run at
 * least min_age seconds; with busy (the early refresh), the busy field of
 * <id> too. Remembers what it showed (rt->work_shown) once Redis has it. */
static int write_work(sq_runtime *rt, double min_age, const char *busy, sq_error *err)
{
    char work[sizeof rt->identity + 16], workers[sizeof rt->identity + 16];
    snprintf(work, sizeof work, "%s:work", rt->identity);
    snprintf(workers, sizeof workers, "%s:workers", rt->identity);
    size_t max = 2 + 2 * (size_t)rt->nworkers;
    const char **argv = calloc(max, sizeof *argv);
    char **vals = calloc((size_t)rt->nworkers + 1, sizeof *vals);
    double *shown = calloc((size_t)rt->nworkers + 1, sizeof *shown);
    int rc = -1, n = 0;
    if (argv == NULL || vals == NULL || shown == NULL)
        goto out;
    size_t k = 2;
    double now = sq__now();
    for (int i = 0; i < rt->nworkers; i++) {
        double started;
        vals[i] = work_entry(&rt->workers[i], now, min_age, &started);
        if (vals[i] != NULL) {
            argv[k++] = rt->workers[i].tid;
            argv[k++] = vals[i];
            shown[i] = started;
        }
    }
    int queued = 0;
    if (sq_redis_pipe_cmd(rt->redis, err, "MULTI") != 0 ||
        sq_redis_pipe_cmd(rt->redis, err, "UNLINK %s %s", work, workers) != 0)
        goto out;
    queued = 2;
    for (int j = 0; k > 2 && j < 2; j++) {
        argv[0] = "HSET";
        argv[1] = j == 0 ? work : workers;
        if (sq_redis_pipe_argv(rt->redis, (int)k, argv, NULL, err) != 0 ||
            sq_redis_pipe_cmd(rt->redis, err, "EXPIRE %s " TTL, argv[1]) != 0)
            goto out;
        queued += 2;
    }
    /* The expiry keeps a hash that only this wrote (after an outage longer
     * than its TTL) from staying; Sidekiq's readers skip one without info. */
    if (busy != NULL && (sq_redis_pipe_cmd(rt->redis, err, "HSET %s busy %s", rt->identity,
                                           busy) != 0 ||
                         sq_redis_pipe_cmd(rt->redis, err, "EXPIRE %s " TTL, rt->identity) != 0))
        goto out;
    queued += busy != NULL ? 2 : 0;
    if (sq_redis_pipe_cmd(rt->redis, err, "EXEC") != 0)
        goto out;
    queued++;
    n = queued;
    rc = sq_redis_pipe_drain(rt->redis, n, NULL, err);
    if (rc == 0 && rt->work_shown != NULL)
        memcpy(rt->work_shown, shown, (size_t)rt->nworkers * sizeof *shown);
out:
    for (int i = 0; vals && i < rt->nworkers; i++)
        free(vals[i]);
    free(vals);
    free(argv);
    free(shown);
    return rc;
}

/* issue 16: the Busy page never behind. Between beats the work hash is
 * written again, at most every SQ_WORK_REFRESH_GAP seconds, when a job not
 * shown has run SQ_WORK_SHOW_AFTER seconds or a job shown has left its
 * worker. Short jobs cause no write of their own; a job shown by a beat
 * causes at most one when it leaves. Returns 1 when it wrote, 0 when
 * nothing was due, -1 on error. */
int sq_heartbeat_refresh(sq_runtime *rt, sq_error *err)
{
    if (rt->work_shown == NULL || rt->workers == NULL)
        return 0;
    double mono = sq__monotonic();
    if (mono < rt->work_refresh_after)
        return 0;
    double now = sq__now();
    bool due = false;
    for (int i = 0; i < rt->nworkers && !due; i++) {
        struct work_ask a = {now, 1e300, 0, NULL}; /* its start only */
        sq_slot_peek(rt->workers[i].slot, work_json, &a);
        double cur = a.started;
        double shown = rt->work_shown[i];
        due = (shown != 0 && shown != cur) ||
              (cur != 0 && shown != cur && now - cur >= SQ_WORK_SHOW_AFTER);
    }
    if (!due)
        return 0;
    rt->work_refresh_after = mono + SQ_WORK_REFRESH_GAP;
    char busy[16];
    snprintf(busy, sizeof busy, "%d", sq_runtime_busy(rt));
    if (write_work(rt, SQ_WORK_SHOW_AFTER, busy, err) == 0)
        return 1;
    /* Redis is not answering: leave it to the beat for a while rather than
     * hold the main thread (lease, signals) in a timeout twice a second. */
    rt->work_refresh_after = sq__monotonic() + SQ_WORK_REFRESH_BACKOFF;
    return -1;
}

static long ping_us(sq_runtime *rt)
{
    double t0 = sq__monotonic();
    redisReply *rep = sq_redis_cmd(rt->redis, NULL, "PING");
    if (rep == NULL)
        return -1;
    freeReplyObject(rep);
    return (long)((sq__monotonic() - t0) * 1e6);
}

static int signal_named(const char *name)
{
    if (strcmp(name, "TSTP") == 0)
        return SIGTSTP;
    if (strcmp(name, "TERM") == 0)
        return SIGTERM;
    if (strcmp(name, "TTIN") == 0)
        return SIGTTIN;
    return 0;
}

int sq_heartbeat_beat(sq_runtime *rt, int *sig, sq_error *err)
{
    *sig = 0;
    if (write_work(rt, 0, NULL, err) != 0)
        return -1;
    long rtt = ping_us(rt);
    if (rtt >= 0)
        sq_observe_redis_rtt((double)rtt / 1e6); /* issue 17 */
    char beat[32], busy[16], rtt_s[24], rss[24], conc[16], sigkey[sizeof rt->identity + 16];
    sq_format_time(sq__now(), beat);
    snprintf(busy, sizeof busy, "%d", sq_runtime_busy(rt));
    snprintf(rtt_s, sizeof rtt_s, "%ld", rtt < 0 ? 0 : rtt);
    snprintf(rss, sizeof rss, "%ld", rss_kb());
    snprintf(conc, sizeof conc, "%d", rt->cfg->concurrency);
    snprintf(sigkey, sizeof sigkey, "%s-signals", rt->identity);
    const char *quiet = atomic_load(&rt->quiet) ? "true" : "false";
    char fetch_error[240];
    bool failing = sq_runtime_fetch_failing(rt, fetch_error, sizeof fetch_error) >=
                   SQ_FETCH_FAILING_SHOW_MS;
    if (!failing)
        fetch_error[0] = '\0';
    const char *hset[] = {"HSET",        rt->identity,
                          "info",        failing ? rt->info_failing_json : rt->info_json,
                          "busy",        busy,
                          "beat",        beat,
                          "quiet",       quiet,
                          "rss",         rss,
                          "rtt_us",      rtt_s,
                          "concurrency", conc,
                          "fetch_error", fetch_error,
                          SQ_DBBUDGET_FIELD, rt->dbbudget.field};
    /* the database field (dbbudget.c) only when a database is configured */
    int nhset = (int)SQ_ARRAY_LEN(hset) - (rt->dbbudget.field ? 0 : 2);
    if (sq_redis_pipe_cmd(rt->redis, err, "MULTI") != 0 ||
        sq_redis_pipe_cmd(rt->redis, err, "SADD " SQ_KEY_PROCESSES " %s", rt->identity) != 0 ||
        sq_redis_pipe_argv(rt->redis, nhset, hset, NULL, err) != 0 ||
        sq_redis_pipe_cmd(rt->redis, err, "EXPIRE %s " TTL, rt->identity) != 0 ||
        sq_redis_pipe_cmd(rt->redis, err, "RPOP %s", sigkey) != 0 ||
        sq_redis_pipe_cmd(rt->redis, err, "EXEC") != 0)
        return -1;
    redisReply *exec = NULL;
    if (sq_redis_pipe_drain(rt->redis, 6, &exec, err) != 0 || exec == NULL) {
        if (exec)
            freeReplyObject(exec);
        return -1;
    }
    if (exec->type == REDIS_REPLY_ARRAY && exec->elements == 4 &&
        exec->element[3]->type == REDIS_REPLY_STRING) {
        const char *name = exec->element[3]->str;
        *sig = signal_named(name);
        if (*sig == 0)
            sq_log(SQ_LOG_WARN, "ignoring unknown remote signal %.40s", name);
        else
            sq_log(SQ_LOG_INFO, "remote signal %s received", name);
    }
    freeReplyObject(exec);
    return 0;
}

void sq_heartbeat_cleanup(sq_runtime *rt)
{
    redisReply *lock = sq_redis_cmd(rt->redis, NULL, "SET process_cleanup 1 NX EX 60");
    bool won = lock && lock->type == REDIS_REPLY_STATUS;
    if (lock)
        freeReplyObject(lock);
    if (!won)
        return;
    redisReply *all = sq_redis_cmd(rt->redis, NULL, "SMEMBERS " SQ_KEY_PROCESSES);
    if (all == NULL)
        return;
    int pruned = 0;
    for (size_t i = 0; all->type == REDIS_REPLY_ARRAY && i < all->elements; i++) {
        const char *id = all->element[i]->str;
        redisReply *info = sq_redis_cmd(rt->redis, NULL, "HGET %s info", id);
        if (info != NULL && info->type == REDIS_REPLY_NIL) {
            redisReply *rm = sq_redis_cmd(rt->redis, NULL, "SREM " SQ_KEY_PROCESSES " %s", id);
            if (rm)
                freeReplyObject(rm);
            pruned++;
        }
        if (info)
            freeReplyObject(info);
    }
    freeReplyObject(all);
    if (pruned > 0)
        sq_log(SQ_LOG_INFO, "removed %d dead process(es) from the process list", pruned);
}

void sq_heartbeat_stop(sq_runtime *rt)
{
    char work[sizeof rt->identity + 16], workers[sizeof rt->identity + 16];
    snprintf(work, sizeof work, "%s:work", rt->identity);
    snprintf(workers, sizeof workers, "%s:workers", rt->identity);
    redisReply *r = sq_redis_cmd(rt->redis, NULL, "SREM " SQ_KEY_PROCESSES " %s", rt->identity);
    if (r)
        freeReplyObject(r);
    r = sq_redis_cmd(rt->redis, NULL, "UNLINK %s %s", work, workers);
    if (r)
        freeReplyObject(r);
}
