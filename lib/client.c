/*
 * client.c: pushing jobs, producing the same payloads and commands as
 * Sidekiq's Ruby client: SADD queues + LPUSH queue:<q> (pipelined) for
 * immediate jobs, ZADD schedule for future ones, 24-hex jids, float epoch
 * timestamps.
 */
#include "client.h"

#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "job.h"
#include "sidekiq.h"
#include "trace.h"

#define BULK_BATCH 1000

struct sq_client {
    sq_redis *redis;
    bool owned;
};

sq_client *sq_client_new(const char *url, sq_error *err)
{
    sq_redis_url parsed = {0};
    if (sq_redis_url_from_environment(url, &parsed, err) != 0)
        return NULL;
    sq_client *c = calloc(1, sizeof *c);
    if (c != NULL)
        c->redis = sq_redis_new(&parsed, 3.0);
    sq_redis_url_destroy(&parsed);
    if (c == NULL || c->redis == NULL) {
        free(c);
        sq__error_set(err, SQ_ENOMEM, "out of memory");
        return NULL;
    }
    c->owned = true;
    return c;
}

sq_client *sq__client_borrow(sq_redis *r)
{
    sq_client *c = calloc(1, sizeof *c);
    if (c != NULL)
        c->redis = r;
    return c;
}

void sq_client_free(sq_client *c)
{
    if (c == NULL)
        return;
    if (c->owned)
        sq_redis_free(c->redis);
    free(c);
}

/* W3C trace context to set on the job: refused when malformed (a consumer
 * would ignore it), and a tracestate only goes with a traceparent. */
static int check_trace(const sq_push_opts *opts, sq_error *err)
{
    const char *tp = opts ? opts->traceparent : NULL, *ts = opts ? opts->tracestate : NULL;
    if (tp != NULL && !sq_traceparent_valid(tp, strlen(tp), NULL)) {
        sq__error_set(err, SQ_EINVAL, "push: traceparent: expected the W3C format "
                                      "00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>");
        return -1;
    }
    if (ts != NULL && (tp == NULL || !sq_tracestate_valid(ts, strlen(ts)))) {
        sq__error_set(err, SQ_EINVAL, tp == NULL ? "push: tracestate given without a traceparent"
                                                 : "push: tracestate: expected W3C key=value "
                                                   "members, at most 32 and 512 bytes");
        return -1;
    }
    return 0;
}

static int check_args(const char *class_name, const sq_push_opts *opts, sq_error *err)
{
    if (class_name == NULL || class_name[0] == '\0') {
        sq__error_set(err, SQ_EINVAL, "push: class name is empty");
        return -1;
    }
    const char *q = opts && opts->queue ? opts->queue : "default";
    if (!sq_queue_name_usable(q, strlen(q))) {
        sq__error_set(err, SQ_EINVAL, "push: queue name %.100s: expected " SQ_QUEUE_NAME_RULE, q);
        return -1;
    }
    if (opts && opts->extra && !json_is_object(opts->extra)) {
        sq__error_set(err, SQ_EINVAL, "push: extra options must be a JSON object");
        return -1;
    }
    return check_trace(opts, err);
}

json_t *sq__client_payload(const char *class_name, json_t *args, const sq_push_opts *opts,
                           double now, bool scheduled, sq_error *err)
{
    if (!json_is_array(args)) {
        sq__error_set(err, SQ_EINVAL, "push: args must be a JSON array");
        return NULL;
    }
    char jid[25];
    sq__jid(jid);
    const char *q = opts && opts->queue ? opts->queue : "default";
    json_t *retry = !opts || opts->retry == SQ_RETRY_DEFAULT ? json_true()
                    : opts->retry < 0                        ? json_false()
                                                             : json_integer(opts->retry);
    json_t *p = json_object();
    if (p == NULL)
        goto oom;
    if (json_object_set_new(p, "retry", retry) || json_object_set_new(p, "queue", json_string(q)) ||
        json_object_set(p, "args", args) ||
        json_object_set_new(p, "class", json_string(class_name)) ||
        json_object_set_new(p, "jid", json_string(jid)) ||
        json_object_set_new(p, "created_at", json_real(now)))
        goto oom;
    if (!scheduled && json_object_set_new(p, "enqueued_at", json_real(now)))
        goto oom;
    if (opts && opts->extra) {
        const char *key;
        json_t *v;
        json_object_foreach(opts->extra, key, v)
        {
            /* identity and timing fields are the client's to set */
            if (strcmp(key, "jid") == 0 || strcmp(key, "class") == 0 || strcmp(key, "args") == 0 ||
                strcmp(key, "enqueued_at") == 0 || strcmp(key, "at") == 0)
                continue;
            if (json_object_set(p, key, v))
                goto oom;
        }
    }
    if (opts && opts->traceparent &&
        json_object_set_new(p, "traceparent", json_string(opts->traceparent)))
        goto oom;
    if (opts && opts->tracestate &&
        json_object_set_new(p, "tracestate", json_string(opts->tracestate)))
        goto oom;
    return p;
oom:
    json_decref(p);
    sq__error_set(err, SQ_ENOMEM, "push: out of memory");
    return NULL;
}

/* Push count payloads (already dumped) to their queue or the schedule. */
static int send_batch(sq_client *c, const char *queue, char **json, size_t count, double at,
                      sq_error *err)
{
    size_t argc = count * (at > 0 ? 2 : 1) + 2;
    const char **argv = calloc(argc, sizeof *argv);
    size_t *lens = calloc(argc, sizeof *lens);
    char key[SQ_QUEUE_KEY_MAX], score[32];
    int rc = -1, queued = 0;
    if (argv == NULL || lens == NULL) {
        sq__error_set(err, SQ_ENOMEM, "push: out of memory");
        goto out;
    }
    size_t k = 0;
    if (at > 0) {
        sq_format_time(at, score);
        argv[k++] = "ZADD";
        argv[k++] = SQ_KEY_SCHEDULE;
        for (size_t i = 0; i < count; i++) {
            argv[k++] = score;
            argv[k++] = json[i];
        }
    } else {
        sq_queue_key(key, sizeof key, queue);
        if (sq_redis_pipe_cmd(c->redis, err, "SADD " SQ_KEY_QUEUES " %s", queue) != 0)
            goto out;
        queued++;
        argv[k++] = "LPUSH";
        argv[k++] = key;
        for (size_t i = 0; i < count; i++)
            argv[k++] = json[i];
    }
    for (size_t i = 0; i < k; i++)
        lens[i] = strlen(argv[i]);
    if (sq_redis_pipe_argv(c->redis, (int)k, argv, lens, err) != 0)
        goto out;
    queued++;
    /* The LPUSH / ZADD decides: a failed SADD (a wrong-typed `queues` key)
     * only hides the queue from the Web UI; the job itself was pushed. */
    redisReply *last = NULL;
    sq_error drain_err = {0};
    sq_redis_pipe_drain(c->redis, queued, &last, &drain_err);
    queued = 0;
    if (last != NULL) {
        rc = 0;
        freeReplyObject(last);
    } else {
        sq__error_set(err, drain_err.code ? drain_err.code : SQ_EREDIS, "push: %s",
                      drain_err.message[0] ? drain_err.message : "no reply");
    }
out:
    if (queued > 0)
        sq_redis_disconnect(c->redis); /* unread replies: start clean */
    free(argv);
    free(lens);
    return rc;
}

int sq_push_bulk(sq_client *c, const char *class_name, json_t *args_list, const sq_push_opts *opts,
                 sq_error *err)
{
    if (c == NULL || check_args(class_name, opts, err) != 0)
        return -1;
    if (!json_is_array(args_list)) {
        sq__error_set(err, SQ_EINVAL, "push_bulk: expected an array of args arrays");
        return -1;
    }
    double now = sq__now();
    double at = opts && opts->at > now ? opts->at : 0;
    const char *q = opts && opts->queue ? opts->queue : "default";
    size_t total = json_array_size(args_list);
    char **json = calloc(total < BULK_BATCH ? total + 1 : BULK_BATCH, sizeof *json);
    if (json == NULL) {
        sq__error_set(err, SQ_ENOMEM, "push: out of memory");
        return -1;
    }
    int rc = 0;
    for (size_t start = 0; start < total && rc == 0; start += BULK_BATCH) {
        size_t n = total - start < BULK_BATCH ? total - start : BULK_BATCH;
        size_t made = 0;
        for (; made < n; made++) {
            json_t *p = sq__client_payload(class_name, json_array_get(args_list, start + made),
                                           opts, now, at > 0, err);
            json[made] = p ? json_dumps(p, JSON_COMPACT) : NULL;
            json_decref(p);
            if (json[made] == NULL) {
                sq__error_set(err, SQ_ENOMEM, "push: cannot encode job %zu", start + made);
                rc = -1;
                break;
            }
        }
        if (rc == 0)
            rc = send_batch(c, q, json, n, at, err);
        for (size_t i = 0; i < made; i++)
            free(json[i]);
    }
    free(json);
    return rc;
}

int sq_push(sq_client *c, const char *class_name, json_t *args, const sq_push_opts *opts,
            char jid_out[25], sq_error *err)
{
    if (c == NULL || check_args(class_name, opts, err) != 0)
        return -1;
    double now = sq__now();
    double at = opts && opts->at > now ? opts->at : 0;
    json_t *p = sq__client_payload(class_name, args, opts, now, at > 0, err);
    if (p == NULL)
        return -1;
    char *s = json_dumps(p, JSON_COMPACT);
    if (jid_out != NULL)
        snprintf(jid_out, 25, "%s", json_string_value(json_object_get(p, "jid")));
    json_decref(p);
    if (s == NULL) {
        sq__error_set(err, SQ_ENOMEM, "push: cannot encode the job");
        return -1;
    }
    int rc = send_batch(c, opts && opts->queue ? opts->queue : "default", &s, 1, at, err);
    free(s);
    return rc;
}
