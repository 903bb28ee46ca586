/*
 * config_validate.c: the config as a whole checked once every source
 * (sidekiq.yml, flags, environment) has been applied: each number read
 * again through its row's rule, the queue list, the Redis URL with its
 * options.
 */
#include "config_internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static int validate_number(const sq_config *c, const sq__option *o, sq_error *err)
{
    const char *field = (const char *)c + o->offset;
    char text[64];
    if (o->type == SQ__OPT_INT)
        snprintf(text, sizeof text, "%d", *(const int *)(const void *)field);
    else if (o->type == SQ__OPT_LONG)
        snprintf(text, sizeof text, "%ld", *(const long *)(const void *)field);
    else
        snprintf(text, sizeof text, "%zu", *(const size_t *)(const void *)field);
    sq_config scratch;
    memset(&scratch, 0, sizeof scratch);
    char where[128];
    snprintf(where, sizeof where, "config: %s", o->key);
    return sq__config_set_number(&scratch, o, where, text, err);
}

static int validate_double(const sq_config *c, const sq__option *o, sq_error *err)
{
    double v = *(const double *)(const void *)((const char *)c + o->offset);
    if (isfinite(v) && (v > (double)o->min || (v == 0 && o->def_double == 0)))
        return 0;
    sq__error_set(err, SQ_ECONFIG, "config: %s: expected a number greater than %ld, got %g", o->key,
                  o->min, v);
    return -1;
}

static int validate_queues(const sq_config *c, sq_error *err)
{
    if (c->nqueues == 0) {
        sq__error_set(err, SQ_ECONFIG, "config: queues: expected at least one queue, got none");
        return -1;
    }
    sq_config scratch;
    memset(&scratch, 0, sizeof scratch);
    int rc = 0;
    for (size_t i = 0; i < c->nqueues && rc == 0; i++) {
        char weight[32];
        snprintf(weight, sizeof weight, "%d", c->queues[i].weight);
        rc = sq__config_add_queue(&scratch, "config: queues",
                                  c->queues[i].name ? c->queues[i].name : "", weight, err);
    }
    sq__config_queues_free(&scratch);
    return rc;
}

int sq_config_validate(const sq_config *c, sq_error *err)
{
    if (c->concurrency_null != NULL) { /* neither a flag nor RAILS_MAX_THREADS set it */
        sq__error_set(err, SQ_ECONFIG,
                      "%s: concurrency: expected an integer from 1 to 1000, got null (Sidekiq "
                      "reads null as unset, then takes RAILS_MAX_THREADS, which is not set)",
                      c->concurrency_null);
        return -1;
    }
    for (size_t i = 0; i < sq__options_count(); i++) {
        const sq__option *o = &sq__options()[i];
        int rc = 0;
        if (o->type == SQ__OPT_INT || o->type == SQ__OPT_LONG || o->type == SQ__OPT_SIZE)
            rc = validate_number(c, o, err);
        else if (o->type == SQ__OPT_DOUBLE)
            rc = validate_double(c, o, err);
        if (rc < 0)
            return -1;
    }
    if (c->environment == NULL || c->tag == NULL) {
        sq__error_set(err, SQ_ENOMEM, "config: out of memory");
        return -1;
    }
    if (validate_queues(c, err) < 0)
        return -1;
    sq_redis_url u;
    if (sq_config_redis_url(c, &u, err) < 0)
        return -1;
    sq_redis_url_destroy(&u);
    return 0;
}

int sq_config_redis_url(const sq_config *c, sq_redis_url *out, sq_error *err)
{
    if (sq_redis_url_parse(c->redis_url, out, err) < 0)
        return -1;
    if (sq_redis_url_set_options(out, &c->redis_opts, err) < 0 ||
        sq_redis_url_check_options(out, "config: redis", err) < 0) {
        sq_redis_url_destroy(out);
        return -1;
    }
    return 0;
}
