/*
 * log.h: the daemon's log: one line per event on stdout, written with a
 * single write(2) so lines from different threads never interleave.
 *
 *   2026-11-22T12:00:00.123Z pid=4242 tid=w3 class=HardJob jid=1a2b... INFO: done: 0.012 sec
 *
 * Timestamps are dropped when $DYNO is set (Heroku's router adds its own), as
 * Sidekiq does. Control characters (C0 and C1), the Unicode line separators,
 * bidi controls and bytes that are not UTF-8 are escaped (\n, \x1b, \u0085,
 * \xff, ...), so job data can never forge or hide a line. Job args are never
 * logged.
 * Used by the runtime modules (launcher, processor, scheduler); the pure
 * modules return errors instead.
 */
#ifndef SQ_LOG_H
#define SQ_LOG_H

#include "squire.h"

typedef enum sq_log_level { SQ_LOG_DEBUG = 0, SQ_LOG_INFO, SQ_LOG_WARN, SQ_LOG_ERROR } sq_log_level;

/* Lines below min are dropped; timestamps off for Heroku ($DYNO). */
void sq_log_setup(sq_log_level min, bool timestamps);
/* `log_format: json`: one JSON object per line (log_json.h) instead of text. */
void sq_log_json(bool on);
/* The short thread name shown as tid= (copied; at most 15 chars). */
void sq_log_thread_name(const char *name);
bool sq_log_enabled(sq_log_level level);

void sq_log(sq_log_level level, const char *fmt, ...) SQ_PRINTF(2, 3);
/* The core's reporter (common.h): message logged at level; ud unused. */
void sq_log_report(void *ud, int level, const char *message);
/* Same, with class= and jid= taken from the job (escaped). */
void sq_log_job(sq_log_level level, const sq_job *job, const char *fmt, ...) SQ_PRINTF(3, 4);
/* A job's result line: the same, and in JSON its elapsed seconds and, for
 * a failure, error_class and error_message as fields of their own (NULL:
 * none). A job with a valid traceparent shows its trace id (trace_id=). */
void sq_log_job_result(sq_log_level level, const sq_job *job, double elapsed,
                       const char *error_class, const char *error_message, const char *fmt, ...)
    SQ_PRINTF(6, 7);

#endif
