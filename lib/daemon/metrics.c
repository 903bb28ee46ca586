/*
 * metrics.c: Sidekiq's execution metrics (metrics.h). The key names, fields,
 * TTLs and bucket bounds are those of Sidekiq 7.3.10 and 8.1.7
 * (lib/sidekiq/metrics/{tracking,shared,query}.rb), checked against their
 * own Sidekiq::Metrics::Query by test_webui.
 *
 * Unlike Sidekiq, which files everything a flush carries under the minute of
 * the flush, a run is filed under the UTC minute it finished in.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "metrics.h"

/* Upper bounds (ms, exclusive) of buckets 0..24; 25 takes the rest. */
static const long long bucket_bounds[SQ_METRICS_BUCKETS - 1] = {
    20,   30,   45,   65,    100,   150,   225,   335,   500,    750,    1100,   1700,  2500,
    3800, 5750, 8500, 13000, 20000, 30000, 45000, 65000, 100000, 150000, 225000, 335000};

int sq_metrics_bucket(long long ms)
{
    int i = 0;
    while (i < SQ_METRICS_BUCKETS - 1 && ms >= bucket_bounds[i])
        i++;
    return i;
}

static struct tm utc(time_t t)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    return tm;
}

int sq_metrics_minute_key(int version, time_t t, char *buf, size_t size)
{
    struct tm tm = utc(t);
    if (version == 7) /* strftime("%Y%m%d|%-H:%-M") */
        return snprintf(buf, size, "j|%04d%02d%02d|%d:%d", tm.tm_year + 1900, tm.tm_mon + 1,
                        tm.tm_mday, tm.tm_hour, tm.tm_min);
    /* strftime("%y%m%d|%-H:%M") */
    return snprintf(buf, size, "j|%02d%02d%02d|%d:%02d", tm.tm_year % 100, tm.tm_mon + 1,
                    tm.tm_mday, tm.tm_hour, tm.tm_min);
}

int sq_metrics_rollup_key(time_t t, char *buf, size_t size)
{
    /* the minute key less its last digit: "j|250214|8:4" for 08:43 */
    struct tm tm = utc(t);
    return snprintf(buf, size, "j|%02d%02d%02d|%d:%d", tm.tm_year % 100, tm.tm_mon + 1, tm.tm_mday,
                    tm.tm_hour, tm.tm_min / 10);
}

size_t sq_metrics_hist_key(int version, const char *klass, size_t klen, time_t t, char *buf,
                           size_t size)
{
    struct tm tm = utc(t);
    char window[32];
    int wn =
        version == 7 /* "<Class>-%d-%H:%-M" : "h|<Class>-%-d-%-H:%-M" */
            ? snprintf(window, sizeof window, "-%02d-%02d:%d", tm.tm_mday, tm.tm_hour, tm.tm_min)
            : snprintf(window, sizeof window, "-%d-%d:%d", tm.tm_mday, tm.tm_hour, tm.tm_min);
    size_t prefix = version == 7 ? 0 : 2;
    size_t need = prefix + klen + (size_t)wn;
    if (size > need) {
        memcpy(buf, "h|", prefix);
        memcpy(buf + prefix, klass, klen);
        memcpy(buf + prefix + klen, window, (size_t)wn + 1);
    }
    return need;
}

int sq_metrics_bitfield_args(const uint32_t counts[SQ_METRICS_BUCKETS], const char **argv,
                             size_t *lens, char num[SQ_METRICS_BUCKETS][2][16])
{
    int n = 0;
    argv[n] = "OVERFLOW", lens[n++] = 8;
    argv[n] = "SAT", lens[n++] = 3;
    for (int i = 0; i < SQ_METRICS_BUCKETS; i++) {
        if (counts[i] == 0)
            continue;
        int a = snprintf(num[i][0], sizeof num[i][0], "#%d", i);
        int b = snprintf(num[i][1], sizeof num[i][1], "%u", counts[i]);
        argv[n] = "INCRBY", lens[n++] = 6;
        argv[n] = "u16", lens[n++] = 3;
        argv[n] = num[i][0], lens[n++] = (size_t)a;
        argv[n] = num[i][1], lens[n++] = (size_t)b;
    }
    return n;
}

/* The counts of one class in one minute. */
typedef struct entry {
    char *klass; /* owned, klen bytes + NUL */
    size_t klen;
    uint64_t hash;
    long long minute; /* epoch seconds / 60 */
    long long p, f, ok, ms;
    uint32_t hist[SQ_METRICS_BUCKETS];
} entry;

typedef struct table {
    entry *v;
    size_t n, cap;
} table;

typedef struct shard {
    pthread_mutex_t lock;
    table t;
} shard;

struct sq_metrics {
    unsigned layouts;
    int nshards;
    shard *shards;
    table pending; /* main thread: merged, not yet written */
};

static uint64_t hash_of(const char *s, size_t n, long long minute)
{
    uint64_t h = 1469598103934665603ULL ^ (uint64_t)minute;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    return h;
}

/* The entry for (klass, minute) in t, added when absent (NULL: out of memory). */
static entry *find(table *t, const char *klass, size_t klen, long long minute, uint64_t h)
{
    for (size_t i = t->n; i-- > 0;) { /* the newest first: the likeliest */
        entry *e = &t->v[i];
        if (e->hash == h && e->minute == minute && e->klen == klen &&
            memcmp(e->klass, klass, klen) == 0)
            return e;
    }
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 8;
        entry *v = realloc(t->v, cap * sizeof *v);
        if (v == NULL)
            return NULL;
        t->v = v;
        t->cap = cap;
    }
    char *copy = malloc(klen + 1);
    if (copy == NULL)
        return NULL;
    memcpy(copy, klass, klen);
    copy[klen] = '\0';
    entry *e = &t->v[t->n++];
    *e = (entry){.klass = copy, .klen = klen, .hash = h, .minute = minute};
    return e;
}

static void table_clear(table *t)
{
    for (size_t i = 0; i < t->n; i++)
        free(t->v[i].klass);
    free(t->v);
    *t = (table){0};
}

sq_metrics *sq_metrics_new(int nshards, unsigned layouts)
{
    layouts &= SQ_METRICS_V7 | SQ_METRICS_V8;
    if (layouts == 0 || nshards <= 0)
        return NULL;
    sq_metrics *m = calloc(1, sizeof *m);
    if (m == NULL || (m->shards = calloc((size_t)nshards, sizeof *m->shards)) == NULL) {
        free(m);
        return NULL;
    }
    m->layouts = layouts;
    m->nshards = nshards;
    for (int i = 0; i < nshards; i++)
        pthread_mutex_init(&m->shards[i].lock, NULL);
    return m;
}

void sq_metrics_free(sq_metrics *m)
{
    if (m == NULL)
        return;
    for (int i = 0; i < m->nshards; i++) {
        table_clear(&m->shards[i].t);
        pthread_mutex_destroy(&m->shards[i].lock);
    }
    table_clear(&m->pending);
    free(m->shards);
    free(m);
}

/* klass with each '|' written as "\xc2\xa6" ('¦'), malloc'd; *len gets its
 * length. NULL: out of memory. */
static char *metrics_name(const char *klass, size_t klen, size_t *len)
{
    size_t bars = 0;
    for (size_t i = 0; i < klen; i++)
        bars += klass[i] == '|';
    char *out = malloc(klen + bars + 1);
    if (out == NULL)
        return NULL;
    size_t n = 0;
    for (size_t i = 0; i < klen; i++) {
        if (klass[i] == '|') {
            out[n++] = '\xc2';
            out[n++] = '\xa6';
        } else {
            out[n++] = klass[i];
        }
    }
    out[n] = '\0';
    *len = n;
    return out;
}

void sq_metrics_record(sq_metrics *m, int shard_index, const char *klass, size_t klen, bool failed,
                       long long ms, time_t now)
{
    if (m == NULL || shard_index < 0 || shard_index >= m->nshards || klass == NULL)
        return;
    if (ms < 0)
        ms = 0;
    /* Sidekiq's readers split each field "<class>|<metric>" at every '|'
     * (Metrics::Query#top_jobs): a '|' in a name is shown as U+00A6 '¦' so
     * that "Foo|p" never adds to Foo's counts. Rare (no Ruby class has one),
     * so the copy is made only then. */
    char *named = NULL;
    if (memchr(klass, '|', klen) != NULL) {
        if ((named = metrics_name(klass, klen, &klen)) == NULL)
            return;
        klass = named;
    }
    long long minute = (long long)now / 60;
    uint64_t h = hash_of(klass, klen, minute);
    int bucket = failed ? 0 : sq_metrics_bucket(ms);
    shard *s = &m->shards[shard_index];
    pthread_mutex_lock(&s->lock);
    entry *e = find(&s->t, klass, klen, minute, h);
    if (e != NULL) {
        e->p++;
        if (failed) {
            e->f++;
        } else {
            e->ok++;
            e->ms += ms;
            if (e->hist[bucket] < UINT32_MAX)
                e->hist[bucket]++;
        }
    }
    pthread_mutex_unlock(&s->lock);
    free(named);
}

/* Add src's counts into dst's entry for the same class and minute. */
static int merge(table *dst, const entry *src)
{
    entry *e = find(dst, src->klass, src->klen, src->minute, src->hash);
    if (e == NULL)
        return -1;
    e->p += src->p;
    e->f += src->f;
    e->ok += src->ok;
    e->ms += src->ms;
    for (int i = 0; i < SQ_METRICS_BUCKETS; i++)
        e->hist[i] =
            src->hist[i] > UINT32_MAX - e->hist[i] ? UINT32_MAX : e->hist[i] + src->hist[i];
    return 0;
}

/* A growable byte buffer for the keys of one flush. */
typedef struct keybuf {
    char *s;
    size_t cap;
} keybuf;

static const char *hist_key(keybuf *k, int version, const entry *e, size_t *len)
{
    *len = sq_metrics_hist_key(version, e->klass, e->klen, (time_t)(e->minute * 60), k->s, k->cap);
    if (*len >= k->cap) {
        char *s = realloc(k->s, *len + 1);
        if (s == NULL)
            return NULL;
        k->s = s;
        k->cap = *len + 1;
        sq_metrics_hist_key(version, e->klass, e->klen, (time_t)(e->minute * 60), k->s, k->cap);
    }
    return k->s;
}

/* Queue HINCRBYs of the count entries at v (one minute's) into hash key, then
 * its EXPIRE. Returns commands queued, or -1. */
static int queue_hash(sq_redis *r, const entry *v, size_t count, const char *key, int ttl,
                      keybuf *field, sq_error *err)
{
    int sent = 0, hincrs = 0;
    for (size_t i = 0; i < count; i++) {
        const entry *e = &v[i];
        const struct {
            const char *suffix;
            long long n;
            bool write;
        } fields[] = {{"|p", e->p, true}, {"|f", e->f, e->f > 0}, {"|ms", e->ms, e->ok > 0}};
        for (size_t j = 0; j < SQ_ARRAY_LEN(fields); j++) {
            if (!fields[j].write)
                continue;
            size_t flen = e->klen + strlen(fields[j].suffix);
            if (flen + 1 > field->cap) {
                char *s = realloc(field->s, flen + 1);
                if (s == NULL) {
                    sq__error_set(err, SQ_ENOMEM, "out of memory");
                    return -1;
                }
                field->s = s;
                field->cap = flen + 1;
            }
            memcpy(field->s, e->klass, e->klen);
            memcpy(field->s + e->klen, fields[j].suffix, strlen(fields[j].suffix) + 1);
            char n[24];
            int nl = snprintf(n, sizeof n, "%lld", fields[j].n);
            const char *argv[] = {"HINCRBY", key, field->s, n};
            size_t lens[] = {7, strlen(key), flen, (size_t)nl};
            if (sq_redis_pipe_argv(r, 4, argv, lens, err) != 0)
                return -1;
            sent++;
            hincrs++;
        }
    }
    if (hincrs > 0) {
        if (sq_redis_pipe_cmd(r, err, "EXPIRE %s %d", key, ttl) != 0)
            return -1;
        sent++;
    }
    return sent;
}

static int by_minute(const void *a, const void *b)
{
    long long x = ((const entry *)a)->minute, y = ((const entry *)b)->minute;
    return (x > y) - (x < y);
}

/* Queue the whole of pending; *hincrs gets the HINCRBY count. Returns the
 * commands queued, or -1. */
static int queue_all(sq_metrics *m, sq_redis *r, int *hincrs, sq_error *err)
{
    table *t = &m->pending;
    keybuf field = {0}, hkey = {0};
    int sent = 0;
    *hincrs = 0;
    /* by minute: each minute's hashes get its run of entries */
    qsort(t->v, t->n, sizeof *t->v, by_minute);
    size_t run = 0; /* entries of this minute from here on */
    for (size_t i = 0; i < t->n && sent >= 0; i++) {
        const entry *e = &t->v[i];
        bool first = i == 0 || t->v[i - 1].minute != e->minute;
        if (first)
            for (run = 1; i + run < t->n && t->v[i + run].minute == e->minute;)
                run++;
        time_t at = (time_t)(e->minute * 60);
        for (int version = 7; first && version <= 8 && sent >= 0; version++) {
            if (!(m->layouts & (version == 7 ? SQ_METRICS_V7 : SQ_METRICS_V8)))
                continue;
            char key[64];
            sq_metrics_minute_key(version, at, key, sizeof key);
            int n = queue_hash(r, e, run, key, SQ_METRICS_TTL, &field, err);
            if (n > 0)
                *hincrs += n - 1;
            sent = n < 0 ? -1 : sent + n;
            if (version == 8 && sent >= 0) {
                /* the rollup: the same counts again, under the 10 minutes */
                sq_metrics_rollup_key(at, key, sizeof key);
                n = queue_hash(r, e, run, key, SQ_METRICS_MID_TTL, &field, err);
                sent = n < 0 ? -1 : sent + n;
            }
        }
        for (int version = 7; e->ok > 0 && version <= 8 && sent >= 0; version++) {
            if (!(m->layouts & (version == 7 ? SQ_METRICS_V7 : SQ_METRICS_V8)))
                continue;
            size_t klen;
            const char *key = hist_key(&hkey, version, e, &klen);
            const char *argv[2 + 2 + 4 * SQ_METRICS_BUCKETS];
            size_t lens[SQ_ARRAY_LEN(argv)];
            char num[SQ_METRICS_BUCKETS][2][16];
            if (key == NULL) {
                sq__error_set(err, SQ_ENOMEM, "out of memory");
                sent = -1;
                break;
            }
            argv[0] = "BITFIELD", lens[0] = 8;
            argv[1] = key, lens[1] = klen;
            int argc = 2 + sq_metrics_bitfield_args(e->hist, argv + 2, lens + 2, num);
            char ttl[16];
            int tlen = snprintf(ttl, sizeof ttl, "%d", SQ_METRICS_TTL);
            const char *exp[] = {"EXPIRE", key, ttl};
            size_t elens[] = {6, klen, (size_t)tlen};
            if (argc <= 4) /* no bucket counted */
                continue;
            if (sq_redis_pipe_argv(r, argc, argv, lens, err) != 0 ||
                sq_redis_pipe_argv(r, 3, exp, elens, err) != 0)
                sent = -1;
            else
                sent += 2;
        }
    }
    free(field.s);
    free(hkey.s);
    return sent;
}

int sq_metrics_flush(sq_metrics *m, sq_redis *r, sq_error *err)
{
    if (m == NULL)
        return 0;
    bool oom = false;
    for (int i = 0; i < m->nshards; i++) {
        shard *s = &m->shards[i];
        pthread_mutex_lock(&s->lock);
        table t = s->t;
        s->t = (table){0};
        pthread_mutex_unlock(&s->lock);
        for (size_t j = 0; j < t.n; j++)
            oom |= merge(&m->pending, &t.v[j]) != 0;
        table_clear(&t);
    }
    if (oom)
        sq_log(SQ_LOG_WARN, "out of memory merging execution metrics; some counts were dropped");
    /* Counts older than the keys' TTL would expire on arrival. */
    long long oldest = (long long)time(NULL) / 60 - SQ_METRICS_TTL / 60;
    size_t kept = 0;
    for (size_t i = 0; i < m->pending.n; i++) {
        if (m->pending.v[i].minute < oldest)
            free(m->pending.v[i].klass);
        else
            m->pending.v[kept++] = m->pending.v[i];
    }
    m->pending.n = kept;
    if (kept == 0)
        return 0;
    /* Not reachable: nothing was sent, keep the counts for the next flush. */
    if (sq_redis_connect(r, err) != 0)
        return -1;
    int hincrs = 0;
    int queued = queue_all(m, r, &hincrs, err);
    int rc = queued < 0 ? -1 : sq_redis_pipe_drain(r, queued, NULL, err);
    if (queued < 0)
        sq_redis_disconnect(r); /* half a pipeline may sit in the buffer */
    /* Sent (in part or whole): never sent again, so never counted twice. */
    table_clear(&m->pending);
    return rc == 0 ? hincrs : -1;
}
