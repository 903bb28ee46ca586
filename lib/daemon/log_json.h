/*
 * log_json.h: one log line as a JSON object (`log_format: json`), in the
 * shape of Sidekiq's JSON formatter so that the same log pipeline reads
 * both:
 *
 *   {"ts":"2026-12-01T12:00:00.123Z","pid":4242,"tid":"w3","lvl":"INFO",
 *    "msg":"done: 0.012 sec","ctx":{"class":"HardJob","jid":"1a2b...",
 *    "queue":"default","elapsed":0.012,"trace_id":"4bf92f35..."}}
 *
 * ctx is present on a job's lines only and holds what the job has:
 * class, jid, queue, trace_id (W3C, when the job carries a valid
 * traceparent), and on a result line elapsed (seconds), error_class and
 * error_message. Pure: the caller passes the time text, pid and thread.
 *
 * Every string is escaped for JSON (quote, backslash, controls as \uXXXX,
 * U+2028/2029 too) and made valid UTF-8 (each byte of an invalid sequence
 * becomes U+FFFD), so job data can neither break the object nor forge a
 * line. Long strings are cut (whole characters only); the line is always
 * one complete object.
 */
#ifndef SQ_LOG_JSON_H
#define SQ_LOG_JSON_H

#include <stddef.h>

typedef struct sq_log_text {
    const char *s; /* may hold NUL bytes; NULL: absent */
    size_t len;
} sq_log_text;

typedef struct sq_log_record {
    const char *ts; /* "2026-12-01T12:00:00.123Z", or NULL (no timestamps) */
    int pid;
    const char *tid;
    const char *level; /* "INFO", ... */
    sq_log_text msg;
    /* the job's, when the line is about one (has_job) */
    int has_job;
    sq_log_text klass, jid, queue, error_class, error_message;
    const char *trace_id; /* NULL or "" when none */
    double elapsed;       /* < 0: none */
} sq_log_record;

#define SQ_LOG_JSON_MAX 16384 /* a line never exceeds this, newline included */

/* Write the object and a newline into buf (cap >= 1024). Returns its length. */
size_t sq_log_json_line(char *buf, size_t cap, const sq_log_record *r);

#endif
