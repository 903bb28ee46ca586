/*
 * timestamps.h: the unit of a job's timestamps (issue 16). Sidekiq 6.x and
 * 7.x write created_at, enqueued_at, failed_at and retried_at as float epoch
 * seconds; 8.x writes integer epoch milliseconds, and its readers tell the
 * two apart by JSON type. squire writes a job's times in the unit the job
 * already uses: integer ms when its created_at (else enqueued_at) is an
 * integer of milliseconds (a job from Sidekiq 8), float seconds otherwise.
 * Pure.
 */
#ifndef SQ_TIMESTAMPS_H
#define SQ_TIMESTAMPS_H

#include <jansson.h>
#include <stdbool.h>

/* True when payload's times are Sidekiq 8's integer milliseconds. */
bool sq_payload_ms_times(const json_t *payload);
/* t (epoch seconds) as JSON number text in that unit: "1795346292815" or
 * "1795346292.815412". */
char *sq_format_job_time(double t, bool ms, char buf[32]);

#endif
