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

static bool valid_queue_name(const char *q)
{
    size_t n = strlen(q);
    if (n == 0 || n > 255)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)q[i] < 0x21 || q[i] == 0x7f)
            return false;
    return true;
}

int ctl_target(const char *name, char *buf, size_t size, bool *is_set, const char **qname)
{
    *qname = NULL;
    *is_set = true;
    if (strcmp(name, "retry") == 0 || strcmp(name, "dead") == 0) {
        snprintf(buf, size, "%s", name);
        return 0;
    }
    if (strcmp(name, "scheduled") == 0 || strcmp(name, "schedule") == 0) {
        snprintf(buf, size, "schedule");
        return 0;
    }
    *is_set = false;
    if (strncmp(name, "queue:", 6) == 0)
        name += 6;
    if (!valid_queue_name(name) || strlen(name) + 7 > size)
        return -1;
    snprintf(buf, size, "queue:%s", name);
    *qname = name;
    return 0;
}
