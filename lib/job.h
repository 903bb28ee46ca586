/*
 * job.h: a fetched job, its validation, and the pure rewrites that the
 * retry, dead-set and scheduler paths apply to its payload.
 *
 * Design: the exact bytes fetched from Redis are kept for the life of the job
 * (requeue, LREM and the Web UI all match on them). Rewrites never round-trip
 * the payload through a JSON library: they splice the original text, keeping
 * every other member, its key order and its number text byte for byte, and
 * replace or append only the members they own.
 *
 * Everything here is pure: no Redis, no clock, no logging. `now` and the
 * random source are arguments.
 */
#ifndef SQ_JOB_H
#define SQ_JOB_H

#include "json_text.h"
#include "squire.h"

#define SQ_ERROR_MESSAGE_MAX 10000 /* characters, as Sidekiq */
#define SQ_JSON_MAX_DEPTH 64       /* nesting cap, checked before parsing */
#define SQ_JSON_MAX_ELEMENTS 100000

/* How a job asked to be treated after a failure. */
typedef enum sq_disposition {
    SQ_DISP_DEFAULT = 0, /* Sidekiq's rules from the payload's `retry` */
    SQ_DISP_RETRY_IN,    /* retry after outcome.retry_in seconds (+ jitter) */
    SQ_DISP_KILL,        /* straight to the dead set */
    SQ_DISP_DISCARD,     /* drop */
} sq_disposition;

typedef struct sq_outcome {
    bool failed;
    char *error_class;   /* owned */
    char *error_message; /* owned, valid UTF-8, <= SQ_ERROR_MESSAGE_MAX chars */
    sq_disposition disposition;
    double retry_in;
    char **backtrace;    /* owned lines, or NULL */
    size_t nbacktrace;
} sq_outcome;

struct sq_worker; /* the runtime side of a job (processor.c) */

struct sq_job {
    char *raw;            /* owned exact bytes; raw[raw_len] == '\0' for convenience */
    size_t raw_len;
    char *queue;          /* owned: the queue the job was fetched from */
    json_t *payload;      /* owned parsed object; NULL when not a JSON object */
    const char *jid;      /* borrowed from payload; "" if missing */
    size_t jid_len;       /* bytes of jid: JSON lets it hold NUL characters */
    const char *klass;    /* dispatch class: `wrapped` for ActiveJob, else `class`;
                             for a bad shape, `class` as written (for the log) */
    size_t klass_len;     /* bytes of klass (NUL characters only in a bad shape) */
    json_t *args;         /* borrowed: the args array (ActiveJob: `arguments`) */
    int retry_count;      /* -1 when absent */
    const char *traceparent; /* borrowed from payload when valid (trace.h), else NULL */
    const char *tracestate;  /* borrowed, valid, and only with a traceparent; else NULL */
    char trace_id[33];       /* the traceparent's trace id, "" without one */
    sq_outcome outcome;
    struct sq_worker *worker; /* borrowed, set by the processor; NULL in tests */
};

/* Why a payload cannot run at all (it goes straight to the dead set). */
typedef enum sq_job_status {
    SQ_JOB_VALID = 0,
    SQ_JOB_NOT_JSON,     /* bytes are not a JSON object: dead as raw bytes */
    SQ_JOB_BAD_SHAPE,    /* an object, but class/args unusable: dead with error fields */
    SQ_JOB_OVER_LIMIT,   /* over the size, depth or value-count limit, not parsed: dead
                            with error fields when its top level is an object, else raw */
} sq_job_status;

/* What a failure may add to a payload: error_message (10,000 characters, up
 * to 6 bytes each as JSON), error_backtrace (50 frames, compressed), the
 * class, timestamps and count. Not counted against max_payload_bytes. */
#define SQ_RETRY_FIELDS_SLACK (128 * 1024)
#define SQ_RETRY_FIELDS_FIXED 256 /* failed_at, retried_at, retry_count, queue */

typedef struct sq_job_limits {
    size_t max_payload_bytes; /* larger payloads are SQ_JOB_OVER_LIMIT, not parsed; the
                                 values of error_message, error_class and error_backtrace
                                 do not count (up to SQ_RETRY_FIELDS_SLACK) */
    int max_depth;
    size_t max_elements;
} sq_job_limits;

/*
 * Take ownership of raw (malloc'd, raw_len bytes, NUL-terminated at raw_len)
 * and parse it. Never fails on bad input: returns the status, and for a bad
 * one writes a human reason into `reason` (e.g. "payload is 10485760 bytes,
 * over the 1048576-byte limit", "JSON nesting deeper than 64", "class is
 * missing or not a string", "args is not an array"). Returns -1 only when out
 * of memory (job left empty). The job must be released with sq_job_destroy.
 *
 * ActiveJob: class "ActiveJob::QueueAdapters::SidekiqAdapter::JobWrapper" or
 * "Sidekiq::ActiveJob::Wrapper" with args[0] an object: klass = `wrapped`
 * (or args[0].job_class), args = args[0].arguments.
 * A jid that is missing or not a string reads as "".
 * Integers too big for int64 are accepted (parsed as reals) rather than
 * rejected.
 */
int sq_job_init(sq_job *job, char *raw, size_t raw_len, const char *queue,
                const sq_job_limits *lim, sq_job_status *status,
                char *reason, size_t reason_size);
void sq_job_destroy(sq_job *job);

/*
 * Parse the JSON text s (n bytes) as a worker reads a fetched payload: any
 * valid JSON loads, and a number jansson cannot hold (an integer beyond
 * int64, a real beyond double) is read as a real (+-DBL_MAX when infinite)
 * instead of failing. For reading only: whoever writes the job back splices
 * the original text (sq_json_splice), which keeps every number as written.
 * No size, depth or element limits beyond jansson's own (sq_job_init adds
 * them). Returns a new reference, or NULL with err (optional) filled.
 */
json_t *sq_json_load_lenient(const char *s, size_t n, json_error_t *err);

/*
 * The bounded reader: every payload read from Redis goes through it. Refuses
 * what sq_job_init refuses, with the same reasons: over max_payload_bytes,
 * nesting or value count (SQ_JOB_OVER_LIMIT, not parsed), a NUL byte, text
 * that is not JSON or not an object (SQ_JOB_NOT_JSON). lim NULL: defaults.
 * SQ_JOB_VALID with *out a new object; else *out NULL and reason filled;
 * -1 when out of memory.
 */
int sq_json_load_bounded(const char *s, size_t n, const sq_job_limits *lim, json_t **out,
                         char *reason, size_t rsize);

/* ---- retry ------------------------------------------------------------------ */

typedef enum sq_retry_action {
    SQ_RETRY_DROP = 0,  /* retry false, discard, or dead:false when exhausted */
    SQ_RETRY_SCHEDULE,  /* ZADD retry <at> <payload> */
    SQ_RETRY_DEAD,      /* ZADD dead <now> <payload> + trim */
} sq_retry_action;

typedef struct sq_retry_plan {
    sq_retry_action action;
    double at;          /* score: retry time, or now for dead */
    char *payload;      /* malloc'd rewritten JSON (NULL for DROP) */
    size_t payload_len;
    int count;          /* the new retry_count */
} sq_retry_plan;

/* Random integer in [0, n): tests pass a fixed one. */
typedef unsigned (*sq_rand_fn)(unsigned n, void *state);

/* Sidekiq's default delay for a retry count: count^4 + 15 + rand(10)*(count+1). */
double sq_retry_delay(int count, sq_rand_fn rnd, void *rnd_state);

/*
 * Decide what a failed job becomes, following Sidekiq's job_retry.rb exactly:
 * `retry` true/absent -> max_retries; integer N -> N (negative -> 0, huge ->
 * capped); false/null -> DROP; other types -> max_retries. retry_count is
 * incremented when present (it may be negative) and set to 0 with failed_at
 * otherwise; retried_at on later failures; error_class and error_message
 * from job->outcome; queue = retry_queue or the fetched queue; error_backtrace
 * = base64(zlib(JSON array)) when `backtrace` is true or N (first N lines) and
 * the outcome has lines. Exhausted when count >= max, or retry_for is set and
 * failed_at + retry_for < now. Exhausted jobs go DEAD unless `dead` is false
 * (DROP). The outcome's disposition overrides the delay, kills or discards.
 * The payload is written with sq_json_splice from job->raw.
 * Returns 0, or -1 when out of memory.
 */
int sq_retry_plan_make(const sq_job *job, double now, int max_retries, sq_rand_fn rnd,
                       void *rnd_state, sq_retry_plan *plan);

/* The invalid-job payload: sq_job_invalid_payload (payload.h). */

void sq_retry_plan_destroy(sq_retry_plan *plan);

/* Record a failure on the job (the public sq_job_fail without varargs). */
void sq_outcome_fail(sq_outcome *o, const char *error_class, const char *message);
/* Cut the error message to SQ_ERROR_MESSAGE_MAX characters: sq_job_fail
 * keeps it whole so that secrets are scrubbed before any cut. */
void sq_outcome_cut(sq_outcome *o);
void sq_outcome_destroy(sq_outcome *o);

#endif
