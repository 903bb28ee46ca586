/*
 * unit.h: helpers shared by the pure job suites (test_job, test_json_text,
 * test_retry): building a job from text, parsing rewritten payloads, the
 * retry plan of a failed job. Header-only: each suite uses what it needs.
 */
#ifndef SQ_TEST_UNIT_H
#define SQ_TEST_UNIT_H

#include <check.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "job.h"
#include "payload.h"

#define NOW 1700000000.5
#define LOOP(tc, fn, arr) tcase_add_loop_test(tc, fn, 0, (int)(sizeof(arr) / sizeof((arr)[0])))

/* ---- helpers ------------------------------------------------------------------ */

static char reason[256] __attribute__((unused));

/* Init job from len bytes of s (copied: the job takes its own malloc'd copy). */
static inline sq_job_status init_mem(sq_job *job, const char *s, size_t len,
                                     const sq_job_limits *lim)
{
    char *raw = malloc(len + 1);
    ck_assert_ptr_nonnull(raw);
    memcpy(raw, s, len);
    raw[len] = '\0';
    sq_job_status st = SQ_JOB_VALID;
    ck_assert_int_eq(sq_job_init(job, raw, len, "critical", lim, &st, reason, sizeof reason), 0);
    ck_assert_ptr_eq(job->raw, raw);
    ck_assert_uint_eq(job->raw_len, len);
    return st;
}

static inline sq_job_status init_str(sq_job *job, const char *s)
{
    return init_mem(job, s, strlen(s), NULL);
}

/* Init a job that must be valid. */
static inline void init_valid(sq_job *job, const char *s)
{
    sq_job_status st = init_str(job, s);
    ck_assert_msg(st == SQ_JOB_VALID, "%s: status %d (%s)", s, (int)st, reason);
}

static inline unsigned rnd_zero(unsigned n, void *st)
{
    (void)n;
    (void)st;
    return 0;
}

static inline unsigned rnd_fixed(unsigned n, void *st)
{
    unsigned v = *(const unsigned *)st;
    ck_assert_uint_eq(n, 10);
    return v;
}

/* Parse rewritten text, which must be a JSON object. New reference. */
static inline json_t *parse_object(const char *s, size_t len)
{
    json_error_t err;
    json_t *v = json_loadb(s, len, JSON_ALLOW_NUL, &err);
    ck_assert_msg(v != NULL, "output does not parse: %s: %.*s", err.text, (int)len, s);
    ck_assert(json_is_object(v));
    return v;
}

/* Parse a rewritten job payload the way squire reads it (numbers beyond
 * int64 or double included). New reference. */
static inline json_t *parse_job(const char *s, size_t len)
{
    sq_job job;
    char *raw = malloc(len + 1);
    memcpy(raw, s, len);
    raw[len] = '\0';
    sq_job_status st;
    ck_assert_int_eq(sq_job_init(&job, raw, len, "q", NULL, &st, reason, sizeof reason), 0);
    ck_assert_msg(st == SQ_JOB_VALID, "rewrite is not a valid job (%s): %.*s", reason, (int)len, s);
    json_t *o = json_incref(job.payload);
    sq_job_destroy(&job);
    return o;
}

static inline const char *str_member(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    ck_assert_msg(s != NULL, "%s is not a string", key);
    return s;
}

/* A failed job and its plan; the plan payload is parsed into *out when set. */
static inline sq_retry_plan plan_for(sq_job *job, int max_retries, unsigned rnd_value, json_t **out)
{
    sq_retry_plan plan;
    ck_assert_int_eq(sq_retry_plan_make(job, NOW, max_retries, rnd_fixed, &rnd_value, &plan), 0);
    if (plan.action == SQ_RETRY_DROP)
        ck_assert_ptr_null(plan.payload);
    else
        ck_assert_ptr_nonnull(plan.payload);
    if (plan.payload != NULL) {
        /* Every rewrite is a valid job and keeps every key of the original. */
        json_t *o = parse_job(plan.payload, plan.payload_len);
        const char *key;
        json_t *v;
        json_object_foreach(sq_job_payload(job), key, v)
            ck_assert_msg(json_object_get(o, key) != NULL, "%s lost in %s", key, plan.payload);
        if (out != NULL)
            *out = o;
        else
            json_decref(o);
    } else if (out != NULL) {
        *out = NULL;
    }
    return plan;
}

#endif
