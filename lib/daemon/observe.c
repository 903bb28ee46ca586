/*
 * observe.c: the counters, the Redis sample and the /metrics text
 * (observe.h; the families are listed in docs/deployment.md).
 *
 * Threads: a worker counts into its own table (found through a
 * thread-local pointer, made on its first job), under that table's mutex,
 * which a scrape takes only to copy the table. A pair of class and queue
 * new to a thread is admitted under names_lock (taken with no other). The list of tables grows
 * under tables_lock and is never shortened while the process runs. The
 * sample (queue and set sizes) is written by the main thread and read by
 * scrapes under sample_lock. No thread holds two of these locks at once,
 * except a scrape that takes a worker slot lock (sq_runtime_busy) while
 * holding none of them.
 */
#include "observe.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "prom.h"
#include "runtime.h"

static const double bounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                1,     2.5,  5,     10,   30,  60,   300};
#define NB SQ_ARRAY_LEN(bounds)

typedef struct series {
    char klass[SQ_OBSERVE_CLASS_MAX + 1];
    char queue[SQ_MAX_QUEUE_NAME + 1];
    uint64_t processed, failed;
    uint64_t buckets[NB + 1]; /* not cumulative; the last: above every bound */
    double sum;
} series;

typedef struct table {
    pthread_mutex_t lock; /* guards s and n */
    series *s;
    size_t n, cap;
    size_t last; /* the series of the previous job: often the same */
    struct table *next;
} table;

static atomic_bool enabled;
static pthread_mutex_t tables_lock = PTHREAD_MUTEX_INITIALIZER;
static table *tables;
static _Thread_local table *mine;
static atomic_long recovered;
static _Atomic double redis_rtt = -1;

typedef struct queue_sample {
    char *name;
    long long size;
    double latency; /* seconds; 0 when empty */
} queue_sample;

static pthread_mutex_t sample_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
    bool taken;
    double at; /* monotonic */
    queue_sample *queues;
    size_t nqueues;
    long long retry, schedule, dead;
} sample;

void sq_observe_enable(void)
{
    atomic_store(&enabled, true);
}

bool sq_observe_enabled(void)
{
    return atomic_load(&enabled);
}

static table *my_table(void)
{
    if (mine != NULL)
        return mine;
    table *t = calloc(1, sizeof *t);
    if (t == NULL)
        return NULL;
    pthread_mutex_init(&t->lock, NULL);
    pthread_mutex_lock(&tables_lock);
    t->next = tables;
    tables = t;
    pthread_mutex_unlock(&tables_lock);
    return mine = t;
}

/* The (class, queue) pairs any table holds: a pair new to the process is
 * admitted while there are fewer than SQ_OBSERVE_MAX_SERIES, so the output
 * stays bounded whatever class names jobs carry. Asked only when a thread
 * meets a pair for the first time. */
static pthread_mutex_t names_lock = PTHREAD_MUTEX_INITIALIZER;
static char **names; /* "class\0queue" */
static size_t nnames;

static bool admitted(const char *klass, const char *queue)
{
    size_t kl = strlen(klass), ql = strlen(queue);
    bool ok = false;
    pthread_mutex_lock(&names_lock);
    for (size_t i = 0; i < nnames && !ok; i++)
        ok = strcmp(names[i], klass) == 0 && strcmp(names[i] + kl + 1, queue) == 0;
    if (!ok && nnames < SQ_OBSERVE_MAX_SERIES) {
        char **grown = nnames % 64 == 0 ? realloc(names, (nnames + 64) * sizeof *names) : names;
        char *name = grown ? malloc(kl + ql + 2) : NULL;
        if (grown != NULL)
            names = grown;
        if (name != NULL) {
            memcpy(name, klass, kl + 1);
            memcpy(name + kl + 1, queue, ql + 1);
            names[nnames++] = name;
            ok = true;
        }
    }
    pthread_mutex_unlock(&names_lock);
    return ok;
}

/* The series for (klass, queue) in t, made when new; the "(other)" one
 * for a pair the process has no room for. NULL when out of memory. */
static series *find(table *t, const char *klass, const char *queue)
{
    if (t->last < t->n && strcmp(t->s[t->last].klass, klass) == 0 &&
        strcmp(t->s[t->last].queue, queue) == 0)
        return &t->s[t->last];
    for (size_t i = 0; i < t->n; i++) {
        if (strcmp(t->s[i].klass, klass) == 0 && strcmp(t->s[i].queue, queue) == 0) {
            t->last = i;
            return &t->s[i];
        }
    }
    if (strcmp(klass, SQ_OBSERVE_OTHER_CLASS) != 0 && !admitted(klass, queue))
        return find(t, SQ_OBSERVE_OTHER_CLASS, queue);
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 8;
        series *s = realloc(t->s, cap * sizeof *s);
        if (s == NULL)
            return NULL;
        t->s = s;
        t->cap = cap;
    }
    series *s = &t->s[t->n];
    memset(s, 0, sizeof *s);
    snprintf(s->klass, sizeof s->klass, "%s", klass);
    snprintf(s->queue, sizeof s->queue, "%s", queue);
    t->last = t->n++;
    return s;
}

void sq_observe_job(const char *klass, size_t klass_len, const char *queue, double seconds,
                    bool failed)
{
    if (!atomic_load_explicit(&enabled, memory_order_relaxed))
        return;
    table *t = my_table();
    if (t == NULL)
        return;
    /* kept as shown (prom.h): a NUL inside ends it, a cut character or bad
     * byte reads U+FFFD, so classes shown alike share one series */
    char name[SQ_OBSERVE_CLASS_MAX + 1];
    sq_prom_label_copy(name, sizeof name, klass, klass ? klass_len : 0);
    size_t b = 0;
    while (b < NB && seconds > bounds[b])
        b++;
    pthread_mutex_lock(&t->lock);
    series *s = find(t, name, queue ? queue : "");
    if (s != NULL) {
        s->processed++;
        s->failed += failed;
        s->buckets[b]++;
        s->sum += seconds;
    }
    pthread_mutex_unlock(&t->lock);
}

void sq_observe_recovered(long n)
{
    if (n > 0)
        atomic_fetch_add(&recovered, n);
}

void sq_observe_redis_rtt(double seconds)
{
    atomic_store(&redis_rtt, seconds);
}

/* ---- the Redis sample ------------------------------------------------------- */

static void sample_clear(queue_sample *q, size_t n)
{
    for (size_t i = 0; q != NULL && i < n; i++)
        free(q[i].name);
    free(q);
}

/* The age of the oldest job of a queue from its tail payload, as Sidekiq's
 * Queue#latency; 0 when it cannot be read. */
static double latency_of(const redisReply *rep, double now, size_t max)
{
    if (rep == NULL || rep->type != REDIS_REPLY_STRING || rep->len > max)
        return 0;
    json_t *j = sq_json_load_lenient(rep->str, rep->len, NULL);
    double t = sq_json_time(json_object_get(j, "enqueued_at"));
    json_decref(j);
    return t > 0 && now > t ? now - t : 0;
}

static long long int_of(const redisReply *rep)
{
    return rep != NULL && rep->type == REDIS_REPLY_INTEGER ? rep->integer : 0;
}

/* One pipeline: ZCARD retry, schedule, dead, then LLEN and LINDEX -1 per
 * queue. Fills q (n entries) and sets[3]. */
static int read_sizes(sq_runtime *rt, queue_sample *q, size_t n, long long sets[3], sq_error *err)
{
    static const char *const zsets[] = {"retry", "schedule", "dead"};
    for (size_t i = 0; i < 3; i++)
        if (sq_redis_pipe_cmd(rt->redis, err, "ZCARD %s", zsets[i]) != 0)
            return -1;
    for (size_t i = 0; i < n; i++)
        if (sq_redis_pipe_cmd(rt->redis, err, "LLEN queue:%s", q[i].name) != 0 ||
            sq_redis_pipe_cmd(rt->redis, err, "LINDEX queue:%s -1", q[i].name) != 0)
            return -1;
    double now = sq__now();
    for (size_t i = 0; i < 3 + 2 * n; i++) {
        sq_error e = {0};
        redisReply *rep = sq_redis_pipe_reply(rt->redis, &e);
        if (rep == NULL && !sq_redis_is_connected(rt->redis)) {
            sq__error_set(err, e.code, "%s", e.message);
            return -1; /* the connection is gone: no more replies */
        }
        if (rep == NULL) /* an error reply (a wrong-typed key): that one reads 0 */
            continue;
        if (i < 3)
            sets[i] = int_of(rep);
        else if ((i - 3) % 2 == 0)
            q[(i - 3) / 2].size = int_of(rep);
        else
            q[(i - 3) / 2].latency = latency_of(rep, now, rt->limits.max_payload_bytes);
        freeReplyObject(rep);
    }
    return 0;
}

int sq_observe_sample(sq_runtime *rt, sq_error *err)
{
    if (!sq_observe_enabled())
        return 0;
    pthread_mutex_lock(&sample_lock);
    bool due = !sample.taken || sq__monotonic() - sample.at >= SQ_OBSERVE_SAMPLE_EVERY;
    pthread_mutex_unlock(&sample_lock);
    if (!due)
        return 0;
    size_t n =
        rt->order.nqueues < SQ_OBSERVE_MAX_QUEUES ? rt->order.nqueues : SQ_OBSERVE_MAX_QUEUES;
    queue_sample *q = calloc(n ? n : 1, sizeof *q);
    long long sets[3] = {0, 0, 0};
    for (size_t i = 0; q != NULL && i < n; i++)
        if ((q[i].name = sq__strdup(rt->order.names[i])) == NULL) {
            sample_clear(q, n);
            q = NULL;
        }
    if (q == NULL) {
        sq__error_set(err, SQ_ENOMEM, "metrics sample: out of memory");
        return -1;
    }
    if (read_sizes(rt, q, n, sets, err) != 0) {
        sample_clear(q, n);
        return -1;
    }
    pthread_mutex_lock(&sample_lock);
    queue_sample *old = sample.queues;
    size_t nold = sample.nqueues;
    sample.queues = q;
    sample.nqueues = n;
    sample.retry = sets[0], sample.schedule = sets[1], sample.dead = sets[2];
    sample.taken = true;
    sample.at = sq__monotonic();
    pthread_mutex_unlock(&sample_lock);
    sample_clear(old, nold);
    return 0;
}

/* ---- rendering ------------------------------------------------------------------ */

static int by_class_queue(const void *a, const void *b)
{
    const series *x = a, *y = b;
    int c = strcmp(x->klass, y->klass);
    return c != 0 ? c : strcmp(x->queue, y->queue);
}

/* Every table's series, copied, sorted by (class, queue) and merged. */
static series *collect(size_t *count)
{
    size_t n = 0, cap = 0;
    series *all = NULL;
    pthread_mutex_lock(&tables_lock);
    table *head = tables;
    pthread_mutex_unlock(&tables_lock);
    for (table *t = head; t != NULL; t = t->next) { /* next never changes once set */
        pthread_mutex_lock(&t->lock);
        if (n + t->n > cap) {
            size_t c = (n + t->n) * 2;
            series *grown = realloc(all, (c ? c : 1) * sizeof *grown);
            if (grown == NULL) {
                pthread_mutex_unlock(&t->lock);
                free(all);
                return NULL;
            }
            all = grown;
            cap = c;
        }
        memcpy(all + n, t->s, t->n * sizeof *all);
        n += t->n;
        pthread_mutex_unlock(&t->lock);
    }
    if (n > 1)
        qsort(all, n, sizeof *all, by_class_queue);
    size_t out = 0;
    for (size_t i = 0; i < n; i++) {
        if (out > 0 && by_class_queue(&all[out - 1], &all[i]) == 0) {
            series *d = &all[out - 1];
            d->processed += all[i].processed;
            d->failed += all[i].failed;
            d->sum += all[i].sum;
            for (size_t b = 0; b <= NB; b++)
                d->buckets[b] += all[i].buckets[b];
        } else {
            all[out++] = all[i];
        }
    }
    *count = out;
    if (all == NULL)
        all = malloc(sizeof *all); /* an empty list is not a failure */
    return all;
}

static void render_jobs(sq_prom *p, const series *s, size_t n)
{
    sq_prom_family(p, "squire_jobs_processed_total", "counter",
                   "Jobs whose handler ran (failed ones included, as Sidekiq's processed)");
    for (size_t i = 0; i < n; i++)
        sq_prom_sample(p, "squire_jobs_processed_total",
                       (const char *const[]){"class", s[i].klass, "queue", s[i].queue, NULL},
                       (double)s[i].processed);
    sq_prom_family(p, "squire_jobs_failed_total", "counter", "Jobs whose handler failed");
    for (size_t i = 0; i < n; i++)
        sq_prom_sample(p, "squire_jobs_failed_total",
                       (const char *const[]){"class", s[i].klass, "queue", s[i].queue, NULL},
                       (double)s[i].failed);
    sq_prom_family(p, "squire_job_duration_seconds", "histogram",
                   "Time a job's handler ran, by class");
    for (size_t i = 0; i < n;) { /* sorted by class: one histogram per run of a class */
        series h = s[i];
        size_t j = i + 1;
        for (; j < n && strcmp(s[j].klass, h.klass) == 0; j++) {
            h.sum += s[j].sum;
            for (size_t b = 0; b <= NB; b++)
                h.buckets[b] += s[j].buckets[b];
        }
        sq_prom_histogram(p, "squire_job_duration_seconds",
                          (const char *const[]){"class", h.klass, NULL}, bounds, h.buckets, NB,
                          h.sum);
        i = j;
    }
}

static void gauge(sq_prom *p, const char *name, const char *help, double v)
{
    sq_prom_family(p, name, "gauge", help);
    sq_prom_sample(p, name, NULL, v);
}

static void counter(sq_prom *p, const char *name, const char *help, double v)
{
    sq_prom_family(p, name, "counter", help);
    sq_prom_sample(p, name, NULL, v);
}

static void render_sample(sq_prom *p)
{
    pthread_mutex_lock(&sample_lock);
    if (!sample.taken) {
        pthread_mutex_unlock(&sample_lock);
        return;
    }
    sq_prom_family(p, "squire_queue_size", "gauge", "Jobs waiting in the queue (LLEN)");
    for (size_t i = 0; i < sample.nqueues; i++)
        sq_prom_sample(p, "squire_queue_size",
                       (const char *const[]){"queue", sample.queues[i].name, NULL},
                       (double)sample.queues[i].size);
    sq_prom_family(p, "squire_queue_latency_seconds", "gauge",
                   "Age of the oldest job in the queue (its enqueued_at)");
    for (size_t i = 0; i < sample.nqueues; i++)
        sq_prom_sample(p, "squire_queue_latency_seconds",
                       (const char *const[]){"queue", sample.queues[i].name, NULL},
                       sample.queues[i].latency);
    gauge(p, "squire_retry_set_size", "Jobs in the retry set", (double)sample.retry);
    gauge(p, "squire_scheduled_set_size", "Jobs in the schedule set", (double)sample.schedule);
    gauge(p, "squire_dead_set_size", "Jobs in the dead set", (double)sample.dead);
    gauge(p, "squire_metrics_sample_age_seconds",
          "Seconds since the queue and set sizes were read from Redis",
          sq__monotonic() - sample.at);
    pthread_mutex_unlock(&sample_lock);
}

static void render_process(sq_prom *p, sq_runtime *rt)
{
    gauge(p, "squire_workers", "Worker threads (concurrency)", rt->nworkers);
    gauge(p, "squire_jobs_in_flight", "Jobs being run or recorded now", sq_runtime_busy(rt));
    gauge(p, "squire_quiet", "1 while the process fetches no jobs (TSTP, or stopping)",
          atomic_load(&rt->quiet) ? 1 : 0);
    double rtt = atomic_load(&redis_rtt);
    if (rtt >= 0)
        gauge(p, "squire_redis_roundtrip_seconds", "The heartbeat's last timed PING", rtt);
    long reconnects = sq_redis_reconnects(rt->redis);
    for (int i = 0; i < rt->nworkers; i++)
        reconnects += sq_redis_reconnects(rt->workers[i].redis);
    counter(p, "squire_redis_reconnects_total",
            "Redis connections made again after a failure (main thread and workers)",
            (double)reconnects);
    counter(p, "squire_jobs_recovered_total",
            "Jobs of dead processes pushed back to their queues by this process",
            (double)atomic_load(&recovered));
    if (rt->pgpool != NULL) {
        int in_use;
        long waits;
        sq_pgpool_stats(rt->pgpool, &in_use, &waits);
        gauge(p, "squire_db_pool_connections_in_use", "PostgreSQL connections checked out", in_use);
        gauge(p, "squire_db_pool_size", "PostgreSQL connections the pool may open",
              sq_pgpool_size(rt->pgpool));
        counter(p, "squire_db_pool_waits_total",
                "Checkouts that found every connection in use and waited", (double)waits);
    }
    gauge(p, "squire_process_start_time_seconds", "Start time of the process, in epoch seconds",
          rt->started_at);
    sq_prom_family(p, "squire_build_info", "gauge", "squire's version");
    sq_prom_sample(p, "squire_build_info", (const char *const[]){"version", SQ_VERSION, NULL}, 1);
}

char *sq_observe_render(sq_runtime *rt, size_t *len)
{
    size_t n = 0;
    series *s = collect(&n);
    if (s == NULL)
        return NULL;
    sq_prom p;
    sq_prom_init(&p);
    render_jobs(&p, s, n);
    free(s);
    render_sample(&p);
    render_process(&p, rt);
    return sq_prom_finish(&p, len);
}
