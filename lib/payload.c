/*
 * payload.c: the payload rewrites (payload.h). Each builds the members it
 * owns as JSON text and splices them into the original bytes.
 */
#include "payload.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "sidekiq.h"

char *sq_job_invalid_payload(const sq_job *job, const char *reason, double now, size_t *out_len)
{
    return sq_json_mark_invalid(job->raw, job->raw_len, reason, now, out_len);
}

char *sq_json_mark_invalid(const char *raw, size_t raw_len, const char *reason, double now,
                           size_t *out_len)
{
    char timebuf[32];
    char *msg = sq_utf8_scrub(reason, reason != NULL ? strlen(reason) : 0, SQ_ERROR_MESSAGE_MAX);
    char *qmsg = msg != NULL ? sq_json_quote(msg, strlen(msg)) : NULL;
    char *out = NULL;
    if (qmsg != NULL) {
        sq_json_member set[] = {
            {"error_class", "\"" SQ_INVALID_JOB_CLASS "\""},
            {"error_message", qmsg},
            {"failed_at", sq_format_time(now, timebuf)},
        };
        /* a job that failed before keeps its first failure's time (a number) */
        size_t n = 0;
        const char *t = sq_json_member_text(raw, raw_len, "failed_at", &n);
        bool failed_before = t != NULL && (t[0] == '-' || (t[0] >= '0' && t[0] <= '9'));
        out =
            sq_json_splice(raw, raw_len, set, SQ_ARRAY_LEN(set) - failed_before, NULL, 0, out_len);
    }
    free(msg);
    free(qmsg);
    return out;
}

const char *sq_payload_queue(const json_t *job, bool *absent)
{
    json_t *v = json_object_get(job, "queue");
    *absent = v == NULL;
    if (v == NULL)
        return "default";
    const char *q = json_string_value(v);
    return q != NULL && sq_queue_name_usable(q, json_string_length(v)) ? q : NULL;
}

char *sq_payload_enqueued(const char *raw, size_t len, const json_t *job, double now,
                          size_t *out_len)
{
    char ts[32];
    sq_json_member set[] = {{"enqueued_at", sq_format_job_time(now, sq_payload_ms_times(job), ts)},
                            {"queue", "\"default\""}};
    bool no_queue = json_object_get(job, "queue") == NULL;
    return sq_json_splice(raw, len, set, no_queue ? 2 : 1, NULL, 0, out_len);
}

/* The JSON integer text t (n bytes, an optional '-' then digits) minus one,
 * exactly, whatever its size, into a new string: Ruby's Integer arithmetic. */
static char *integer_text_minus_one(const char *t, size_t n)
{
    bool neg = n > 0 && t[0] == '-';
    const char *d = t + neg;
    size_t nd = n - neg;
    char *out = malloc(nd + 3), *p = out + 1;
    if (out == NULL)
        return NULL;
    memcpy(p, d, nd);
    p[nd] = '\0';
    if (strspn(p, "0") == nd) { /* 0 or -0 */
        strcpy(out, "-1");
        return out;
    }
    if (neg) { /* -(|x| + 1) */
        size_t i = nd;
        while (i > 0 && p[i - 1] == '9')
            p[--i] = '0';
        if (i == 0) {
            memmove(p + 1, p, nd + 1);
            p[0] = '1';
        } else {
            p[i - 1]++;
        }
        out[0] = '-';
        return out;
    }
    size_t i = nd;
    while (p[i - 1] == '0')
        p[--i] = '9';
    p[i - 1]--;
    if (p[0] == '0' && nd > 1) /* 100 - 1: 099 */
        p++;
    memmove(out, p, strlen(p) + 1);
    return out;
}

/* retry_count - 1 as JSON text (malloc'd), as Ruby's `-= 1` on the number:
 * an integer of any size exactly (its text), a real as a real; NULL when
 * retry_count is not a number or out of memory. */
static char *retry_count_minus_one(const char *raw, size_t len, const json_t *rc)
{
    if (!json_is_number(rc))
        return NULL;
    size_t n = 0;
    const char *t = sq_json_member_text(raw, len, "retry_count", &n);
    if (t != NULL && n > 0 && strcspn(t, ".eE") >= n) /* the integer as written */
        return integer_text_minus_one(t, n);
    char buf[40];
    snprintf(buf, sizeof buf, "%.17g", json_number_value(rc) - 1);
    if (strcspn(buf, ".eEn") == strlen(buf)) /* keep it a Float: "2" -> "2.0" */
        strcat(buf, ".0");
    return sq__strdup(buf);
}

char *sq_payload_requeued(const char *raw, size_t len, const json_t *job, double now, char **queue,
                          size_t *out_len)
{
    *queue = NULL;
    json_t *qv = json_object_get(job, "queue");
    const char *q = json_string_value(qv);
    if (q != NULL && !sq_queue_name_usable(q, json_string_length(qv)))
        return NULL;
    char ts[32];
    const json_t *rc = json_object_get(job, "retry_count");
    char *count = retry_count_minus_one(raw, len, rc);
    if (json_is_number(rc) && count == NULL)
        return NULL; /* out of memory */
    sq_json_member set[3] = {{"enqueued_at", sq_format_job_time(now, sq_payload_ms_times(job), ts)}};
    size_t nset = 1;
    if (count != NULL)
        set[nset++] = (sq_json_member){"retry_count", count};
    if (q == NULL)
        set[nset++] = (sq_json_member){"queue", "\"default\""};
    char *out = NULL;
    if ((*queue = strdup(q != NULL ? q : "default")) != NULL)
        out = sq_json_splice(raw, len, set, nset, NULL, 0, out_len);
    free(count);
    if (out == NULL) {
        free(*queue);
        *queue = NULL;
    }
    return out;
}

char *sq_payload_interrupted(const char *raw, size_t len, const json_t *job, double now,
                             int max_interruptions, bool *dead, size_t *out_len)
{
    json_int_t prior = json_integer_value(json_object_get(job, "interrupted_count"));
    long long count = prior > 0 && prior < LLONG_MAX ? (long long)prior + 1 : prior > 0 ? prior : 1;
    *dead = max_interruptions > 0 && count >= max_interruptions;

    char num[32], ts[32], msg[200];
    snprintf(num, sizeof num, "%lld", count);
    if (!*dead) {
        sq_json_member set[] = {{"interrupted_count", num}};
        return sq_json_splice(raw, len, set, 1, NULL, 0, out_len);
    }
    snprintf(msg, sizeof msg,
             "\"the process running this job died %lld times while running it; "
             "not retried (poison job?)\"",
             count);
    sq_json_member set[] = {{"interrupted_count", num},
                            {"error_class", "\"" SQ_INTERRUPTED_CLASS "\""},
                            {"error_message", msg},
                            {"failed_at", sq_format_job_time(now, sq_payload_ms_times(job), ts)}};
    bool has_failed_at = json_object_get(job, "failed_at") != NULL;
    return sq_json_splice(raw, len, set, has_failed_at ? 3 : 4, NULL, 0, out_len);
}

/* ---- timestamps (issue 16) ------------------------------------------------ */

/* Integers above this are milliseconds (1e11 s is the year 5138). */
#define MS_FLOOR 100000000000LL

bool sq_payload_ms_times(const json_t *payload)
{
    const json_t *t = json_object_get(payload, "created_at");
    if (t == NULL)
        t = json_object_get(payload, "enqueued_at");
    return json_is_integer(t) && json_integer_value(t) > MS_FLOOR;
}

char *sq_format_job_time(double t, bool ms, char buf[32])
{
    if (!ms)
        return sq_format_time(t, buf);
    if (!isfinite(t) || t < 0)
        t = 0;
    if (t > 9e15)
        t = 9e15;
    snprintf(buf, 32, "%lld", (long long)llround(t * 1000.0));
    return buf;
}
