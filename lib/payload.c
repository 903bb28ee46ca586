/*
 * payload.c: the payload rewrites (payload.h). Each builds the members it
 * owns as JSON text and splices them into the original bytes.
 */
#include "payload.h"

#include <limits.h>
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
        out = sq_json_splice(raw, raw_len, set, SQ_ARRAY_LEN(set), NULL, 0, out_len);
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
    sq_json_member set[] = {{"enqueued_at", sq_format_time(now, ts)}, {"queue", "\"default\""}};
    bool no_queue = json_object_get(job, "queue") == NULL;
    return sq_json_splice(raw, len, set, no_queue ? 2 : 1, NULL, 0, out_len);
}

char *sq_payload_requeued(const char *raw, size_t len, const json_t *job, double now, char **queue,
                          size_t *out_len)
{
    *queue = NULL;
    json_t *qv = json_object_get(job, "queue");
    const char *q = json_string_value(qv);
    if (q != NULL && !sq_queue_name_usable(q, json_string_length(qv)))
        return NULL;
    json_t *rc = json_object_get(job, "retry_count");
    char count[32], ts[32];
    sq_json_member set[3] = {{"enqueued_at", sq_format_time(now, ts)}};
    size_t nset = 1;
    if (json_is_integer(rc)) {
        json_int_t n = json_integer_value(rc);
        snprintf(count, sizeof count, "%lld", n > LLONG_MIN ? (long long)n - 1 : (long long)n);
        set[nset++] = (sq_json_member){"retry_count", count};
    }
    if (q == NULL)
        set[nset++] = (sq_json_member){"queue", "\"default\""};
    if ((*queue = strdup(q != NULL ? q : "default")) == NULL)
        return NULL;
    char *out = sq_json_splice(raw, len, set, nset, NULL, 0, out_len);
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
                            {"failed_at", sq_format_time(now, ts)}};
    bool has_failed_at = json_object_get(job, "failed_at") != NULL;
    return sq_json_splice(raw, len, set, has_failed_at ? 3 : 4, NULL, 0, out_len);
}
