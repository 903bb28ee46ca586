/*
 * payload.h: every rewrite of a job payload that squire writes back to
 * Redis, outside the retry plan (retry.c): the invalid-job wrapping, the
 * move of a due job to its queue, the requeue of a retried job and the
 * interruption count of a recovered one.
 *
 * Pure: no Redis, no clock, no logging; `now` and limits are arguments.
 * Each rewrite splices the original text (sq_json_splice), so every member
 * it does not own keeps its bytes, and takes the payload parsed once by the
 * bounded reader (sq_json_load_bounded) beside its raw bytes.
 */
#ifndef SQ_PAYLOAD_H
#define SQ_PAYLOAD_H

#include "job.h"

#define SQ_INVALID_JOB_CLASS "Squire::InvalidJob"
#define SQ_INTERRUPTED_CLASS "Squire::JobInterrupted"

/* The dead-set payload for a job that cannot run at all (SQ_JOB_BAD_SHAPE,
 * SQ_JOB_OVER_LIMIT): raw with error_class "Squire::InvalidJob", error_message
 * = reason, failed_at = now; NULL when raw's top level is not an object. For
 * SQ_JOB_NOT_JSON the raw bytes themselves go to the dead set. */
char *sq_job_invalid_payload(const sq_job *job, const char *reason, double now, size_t *out_len);
/* The same for any JSON object text raw (a due member the poller cannot
 * move). New malloc'd text, or NULL (malformed, out of memory). */
char *sq_json_mark_invalid(const char *raw, size_t raw_len, const char *reason, double now,
                           size_t *out_len);

/* The queue the job object names: its `queue`, or "default" with *absent
 * set when it has none (as Sidekiq's Client#push). NULL when `queue` is
 * there but not a usable queue name (sq_queue_name_usable). */
const char *sq_payload_queue(const json_t *job, bool *absent);

/* A due retry or scheduled job moving to its queue (the poller):
 * enqueued_at = now, queue "default" when job has none. New malloc'd text,
 * or NULL (malformed, out of memory). */
char *sq_payload_enqueued(const char *raw, size_t len, const json_t *job, double now,
                          size_t *out_len);

/* A job retried by hand (squirectl retry) as Client#push writes it back:
 * enqueued_at = now, retry_count - 1 when it is an integer, queue "default"
 * when `queue` is absent or not a string. *queue (malloc'd) is the queue it
 * goes to. NULL when `queue` is a string but not a usable name, or out of
 * memory. */
char *sq_payload_requeued(const char *raw, size_t len, const json_t *job, double now, char **queue,
                          size_t *out_len);

/* A job whose process died while running it (reliable-fetch recovery):
 * interrupted_count + 1 (a missing, non-integer or negative count counts
 * as 0). When max_interruptions > 0 and the count reaches it, *dead is set
 * and the payload also gets error_class "Squire::JobInterrupted", an
 * error_message and failed_at = now (kept when present). New malloc'd
 * text, or NULL (malformed, out of memory). */
char *sq_payload_interrupted(const char *raw, size_t len, const json_t *job, double now,
                             int max_interruptions, bool *dead, size_t *out_len);

#endif
