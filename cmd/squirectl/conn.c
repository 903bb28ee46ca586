/*
 * conn.c: the Redis side shared by squirectl's commands: connecting with the
 * URL from -u or the environment (shown only redacted), set scans, and
 * naming a queue or sorted set on the command line.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctl.h"

sq_redis *ctl_connect(const char *url, const char *cmd, int *rc)
{
    sq_error err = {0};
    sq_redis_url parsed = {0};
    if (sq_redis_url_from_environment(url, &parsed, &err) != 0) {
        fprintf(stderr, "squirectl %s: %s\n", cmd, err.message);
        *rc = CTL_CONFIG;
        return NULL;
    }
    sq_redis *r = sq_redis_new(&parsed, 5.0);
    sq_redis_url_destroy(&parsed);
    if (r == NULL) {
        fprintf(stderr, "squirectl %s: out of memory\n", cmd);
        *rc = CTL_ERROR;
        return NULL;
    }
    if (sq_redis_connect(r, &err) != 0) {
        *rc = ctl_fail(cmd, &err);
        sq_redis_free(r);
        return NULL;
    }
    return r;
}

sq_redis *ctl_open_no_operands(const char *url, int argc, char **argv, const char *allowed,
                               const char *usage, ctl_opts *o, int *rc)
{
    *rc = ctl_opts_parse(argc, argv, allowed, usage, o);
    if (*rc != CTL_OK) {
        *rc = *rc == CTL_HELP ? CTL_OK : *rc;
        return NULL;
    }
    if (o->nrest != 0) {
        *rc = ctl_usage_error(argv[0], usage, "unexpected arguments");
        return NULL;
    }
    return ctl_connect(url, argv[0], rc);
}

int ctl_fail(const char *cmd, const sq_error *err)
{
    fprintf(stderr, "squirectl %s: %s\n", cmd, err->message[0] ? err->message : "failed");
    return CTL_ERROR;
}

double ctl_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void ctl_strv_free(char **v, size_t n)
{
    if (v == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Append the members of one SSCAN reply page to *v. */
static int take_page(const redisReply *page, char ***v, size_t *n, size_t *cap)
{
    for (size_t i = 0; i < page->elements; i++) {
        const redisReply *m = page->element[i];
        if (m->type != REDIS_REPLY_STRING)
            continue;
        if (*n == *cap) {
            size_t nc = *cap ? *cap * 2 : 16;
            char **nv = realloc(*v, nc * sizeof *nv);
            if (nv == NULL)
                return -1;
            *v = nv;
            *cap = nc;
        }
        if (((*v)[*n] = strndup(m->str, m->len)) == NULL)
            return -1;
        (*n)++;
    }
    return 0;
}

char **ctl_smembers(sq_redis *r, const char *key, size_t *n, sq_error *err)
{
    char **v = NULL;
    size_t cap = 0;
    char cursor[32] = "0";
    *n = 0;
    do {
        redisReply *rep = sq_redis_cmd(r, err, "SSCAN %s %s COUNT 1000", key, cursor);
        if (rep == NULL)
            goto fail;
        if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
            rep->element[0]->type != REDIS_REPLY_STRING ||
            take_page(rep->element[1], &v, n, &cap) != 0) {
            freeReplyObject(rep);
            snprintf(err->message, sizeof err->message, "SSCAN %s: unexpected reply", key);
            err->code = SQ_EREDIS;
            goto fail;
        }
        snprintf(cursor, sizeof cursor, "%s", rep->element[0]->str);
        freeReplyObject(rep);
    } while (strcmp(cursor, "0") != 0);
    /* SSCAN may return a member twice: sort, then drop repeats */
    if (*n > 1)
        qsort(v, *n, sizeof *v, cmp_str);
    size_t w = 0;
    for (size_t i = 0; i < *n; i++) {
        if (w > 0 && strcmp(v[w - 1], v[i]) == 0)
            free(v[i]);
        else
            v[w++] = v[i];
    }
    *n = w;
    return v ? v : calloc(1, sizeof *v);
fail:
    ctl_strv_free(v, *n);
    *n = 0;
    return NULL;
}

int ctl_target(const char *name, char *buf, size_t size, bool *is_set, const char **qname)
{
    *qname = NULL;
    *is_set = true;
    if (strcmp(name, SQ_KEY_RETRY) == 0 || strcmp(name, SQ_KEY_DEAD) == 0) {
        snprintf(buf, size, "%s", name);
        return 0;
    }
    if (strcmp(name, "scheduled") == 0 || strcmp(name, "schedule") == 0) {
        snprintf(buf, size, SQ_KEY_SCHEDULE);
        return 0;
    }
    *is_set = false;
    size_t qlen = 0;
    const char *q = sq_queue_key_name(name, strlen(name), &qlen);
    if (q != NULL)
        name = q;
    if (!sq_queue_name_usable(name, strlen(name)) || sq_queue_key(buf, size, name) == 0)
        return -1;
    *qname = name;
    return 0;
}

/* ---- the configuration ---------------------------------------------------- */

static const char *config_path;
static sq_config config;
static int config_state; /* 0 not loaded, 1 loaded, -1 failed */
static sq_error config_err;
static sq_job_limits limits = {SQ_DEFAULT_MAX_PAYLOAD, SQ_JSON_MAX_DEPTH, SQ_JSON_MAX_ELEMENTS};

void ctl_set_config_path(const char *path)
{
    config_path = path;
}

const sq_config *ctl_config(sq_error *err)
{
    if (config_state == 0) {
        char *argv[] = {"squirectl", "-C", (char *)config_path, NULL};
        sq_action action;
        sq_config_init(&config);
        config_state =
            sq_config_load(&config, config_path ? 3 : 1, argv, NULL, &action, &config_err) == 0
                ? 1
                : -1;
        if (config_state == 1)
            limits.max_payload_bytes = config.max_payload_bytes;
    }
    if (config_state < 0) {
        *err = config_err;
        return NULL;
    }
    return &config;
}

const sq_job_limits *ctl_job_limits(void)
{
    sq_error ignored = {0};
    (void)ctl_config(&ignored);
    return &limits;
}

json_t *ctl_read_job(const char *raw, size_t len)
{
    json_t *job = NULL;
    sq_json_load_bounded(raw, len, ctl_job_limits(), &job, NULL, 0);
    return job;
}
