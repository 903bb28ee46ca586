/*
 * retry.c: what a failed job becomes, following Sidekiq 7's job_retry.rb
 * (process_retry, delay_for, retries_exhausted), as a pure function of the
 * job, its outcome, `now` and a random source.
 *
 * Order of the decision, as in Ruby: `retry` false/null drops the job before
 * anything else; the payload is rewritten (error fields, retry_count,
 * failed_at/retried_at, queue, error_backtrace); an exhausted or killed job
 * goes to the dead set unless `dead` is false; otherwise it is scheduled.
 * One deliberate difference: sq_job_discard() drops the job even when its
 * retries are exhausted (Ruby would never ask sidekiq_retry_in then).
 */
#include "job.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "common.h"

#define RETRY_MAX_CAP 1000000

double sq_retry_delay(int count, sq_rand_fn rnd, void *rnd_state)
{
    double c = count;
    if (rnd == NULL)
        rnd = sq__rand;
    return c * c * c * c + 15 + (double)rnd(10, rnd_state) * (c + 1);
}

/* ---- backtrace encoding ------------------------------------------------------- */

static char *base64(const unsigned char *s, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *out = malloc((n + 2) / 3 * 4 + 1), *o = out;
    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)s[i] << 16;
        if (i + 1 < n)
            v |= (unsigned)s[i + 1] << 8;
        if (i + 2 < n)
            v |= s[i + 2];
        *o++ = tab[v >> 18];
        *o++ = tab[(v >> 12) & 63];
        *o++ = i + 1 < n ? tab[(v >> 6) & 63] : '=';
        *o++ = i + 2 < n ? tab[v & 63] : '=';
    }
    *o = '\0';
    return out;
}

/* The JSON array text of lines[0..n), malloc'd. */
static char *json_lines(char *const *lines, size_t n, size_t *len)
{
    char **q = calloc(n + 1, sizeof *q);
    char *out = NULL;
    size_t total = 2 + n;
    if (q == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        q[i] = sq_json_quote(lines[i], strlen(lines[i]));
        if (q[i] == NULL)
            goto done;
        total += strlen(q[i]);
    }
    out = malloc(total + 1);
    if (out == NULL)
        goto done;
    size_t o = 0;
    out[o++] = '[';
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            out[o++] = ',';
        memcpy(out + o, q[i], strlen(q[i]));
        o += strlen(q[i]);
    }
    out[o++] = ']';
    out[o] = '\0';
    *len = o;
done:
    for (size_t i = 0; i < n; i++)
        free(q[i]);
    free(q);
    return out;
}

/* base64(zlib(JSON array of lines)) as Sidekiq 7's compress_backtrace, as a
 * JSON string literal; malloc'd. */
static char *encode_backtrace(char *const *lines, size_t n)
{
    size_t jlen;
    char *json = json_lines(lines, n, &jlen), *b64 = NULL, *quoted = NULL;
    uLongf zlen = compressBound((uLong)(json != NULL ? jlen : 0));
    unsigned char *z = json != NULL ? malloc(zlen) : NULL;
    if (z != NULL &&
        compress2(z, &zlen, (const Bytef *)json, (uLong)jlen, Z_DEFAULT_COMPRESSION) == Z_OK)
        b64 = base64(z, zlen);
    if (b64 != NULL)
        quoted = sq_json_quote(b64, strlen(b64));
    free(json);
    free(z);
    free(b64);
    return quoted;
}

/* How many backtrace lines the payload's `backtrace` option keeps. */
static size_t backtrace_lines(const json_t *opt, size_t available)
{
    if (json_is_true(opt))
        return available;
    if (json_is_number(opt) && json_number_value(opt) >= 1) {
        double n = json_number_value(opt);
        return n < (double)available ? (size_t)n : available; /* the cast truncates */
    }
    return 0;
}

/* ---- the decision -------------------------------------------------------------- */

/* `retry` as a retry limit: integers are the limit (clamped), anything else
 * but false/null means the configured default. */
static int retry_max(const json_t *retry, int max_retries)
{
    if (!json_is_integer(retry))
        return max_retries < 0 ? 0 : max_retries;
    json_int_t n = json_integer_value(retry);
    return n < 0 ? 0 : n > RETRY_MAX_CAP ? RETRY_MAX_CAP : (int)n;
}

static bool retry_disabled(const json_t *retry)
{
    return json_is_false(retry) || json_is_null(retry);
}

static int saturating_inc(int n)
{
    return n == INT_MAX ? n : n + 1;
}

/* When the job first failed: the payload's failed_at on later failures. */
static double first_failure(const json_t *payload, bool retried, double now)
{
    double t = retried ? sq_json_time(json_object_get(payload, "failed_at")) : -1;
    return t < 0 ? now : t;
}

static bool retry_for_expired(const json_t *payload, bool retried, double now)
{
    const json_t *rf = json_object_get(payload, "retry_for");
    if (!json_is_number(rf))
        return false;
    return first_failure(payload, retried, now) + json_number_value(rf) < now;
}

static double delay_for(const sq_outcome *o, int count, sq_rand_fn rnd, void *st)
{
    if (rnd == NULL)
        rnd = sq__rand;
    double c = count, jitter = (double)rnd(10, st) * (c + 1);
    if (o->disposition == SQ_DISP_RETRY_IN && isfinite(o->retry_in) && o->retry_in > 0)
        return o->retry_in + jitter;
    return c * c * c * c + 15 + jitter;
}

static const char *queue_for(const sq_job *job)
{
    const char *rq = json_string_value(json_object_get(job->payload, "retry_queue"));
    if (rq != NULL && rq[0] != '\0')
        return rq;
    return job->queue != NULL ? job->queue : "";
}

/* The rewritten payload: error fields, count, timestamp, queue, backtrace. */
static char *rewrite(const sq_job *job, double now, bool retried, int count, size_t *len)
{
    const sq_outcome *o = &job->outcome;
    const char *cls = o->error_class != NULL ? o->error_class : "Squire::Error";
    const char *msg = o->error_message != NULL ? o->error_message : "";
    const char *queue = queue_for(job);
    char countbuf[16], timebuf[32], *out = NULL;
    char *qcls = sq_json_quote(cls, strlen(cls));
    char *qmsg = sq_json_quote(msg, strlen(msg));
    char *qqueue = sq_json_quote(queue, strlen(queue));
    size_t nlines = backtrace_lines(json_object_get(job->payload, "backtrace"), o->nbacktrace);
    char *bt = nlines > 0 ? encode_backtrace(o->backtrace, nlines) : NULL;
    snprintf(countbuf, sizeof countbuf, "%d", count);
    sq_json_member set[] = {
        {"queue", qqueue},
        {"error_message", qmsg},
        {"error_class", qcls},
        {retried ? "retried_at" : "failed_at", sq_format_time(now, timebuf)},
        {"retry_count", countbuf},
        {"error_backtrace", bt},
    };
    size_t nset = SQ_ARRAY_LEN(set) - (bt == NULL);
    if (qcls != NULL && qmsg != NULL && qqueue != NULL && (nlines == 0 || bt != NULL))
        out = sq_json_splice(job->raw, job->raw_len, set, nset, NULL, 0, len);
    free(qcls);
    free(qmsg);
    free(qqueue);
    free(bt);
    return out;
}

int sq_retry_plan_make(const sq_job *job, double now, int max_retries, sq_rand_fn rnd,
                       void *rnd_state, sq_retry_plan *plan)
{
    const json_t *p = job->payload;
    const json_t *retry = json_object_get(p, "retry");
    bool retried = json_is_number(json_object_get(p, "retry_count"));
    sq_disposition disp = job->outcome.disposition;

    memset(plan, 0, sizeof *plan);
    plan->count = retried ? saturating_inc(job->retry_count) : 0;
    if (retry_disabled(retry) || disp == SQ_DISP_DISCARD)
        return 0; /* SQ_RETRY_DROP */
    bool dead = disp == SQ_DISP_KILL || plan->count >= retry_max(retry, max_retries) ||
                retry_for_expired(p, retried, now);
    if (dead && json_is_false(json_object_get(p, "dead")))
        return 0;
    plan->action = dead ? SQ_RETRY_DEAD : SQ_RETRY_SCHEDULE;
    plan->at = dead ? now : now + delay_for(&job->outcome, plan->count, rnd, rnd_state);
    plan->payload = rewrite(job, now, retried, plan->count, &plan->payload_len);
    if (plan->payload == NULL) {
        plan->action = SQ_RETRY_DROP;
        return -1;
    }
    return 0;
}

void sq_retry_plan_destroy(sq_retry_plan *plan)
{
    if (plan == NULL)
        return;
    free(plan->payload);
    memset(plan, 0, sizeof *plan);
}
