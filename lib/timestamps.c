/*
 * timestamps.c: a job's timestamp unit (timestamps.h).
 */
#include <math.h>
#include <stdio.h>

#include "job.h"
#include "timestamps.h"

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
