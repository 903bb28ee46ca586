/*
 * trace.h: W3C Trace Context (https://www.w3.org/TR/trace-context/) for
 * jobs: the `traceparent` and `tracestate` top-level payload keys that the
 * OpenTelemetry Sidekiq instrumentation injects.
 *
 * Pure and strict: a value that breaks the grammar is ignored (a malformed
 * traceparent means no trace; a malformed tracestate means no tracestate),
 * never an error for the job, never a crash.
 */
#ifndef SQ_TRACE_H
#define SQ_TRACE_H

#include <stdbool.h>
#include <stddef.h>

#define SQ_TRACEPARENT_LEN 55  /* "00-<32 hex>-<16 hex>-<2 hex>" */
#define SQ_TRACEPARENT_MAX 512 /* bytes of a later version's traceparent */
#define SQ_TRACESTATE_MAX 512  /* bytes; the spec's limit for propagation */

/* Whether s (len bytes) is a valid traceparent: version 00 exactly 55
 * characters; a later version (not ff) 55 to SQ_TRACEPARENT_MAX, with
 * '-' after the first 55 and only visible ASCII (no space, no control
 * character: handlers may put it in an HTTP header); lowercase hex; trace id and parent id not all
 * zeros. When valid and trace_id is not NULL, the 32-hex trace id is copied there, NUL-ended. */
bool sq_traceparent_valid(const char *s, size_t len, char trace_id[33]);

/* Whether s (len bytes) is a valid tracestate: at most 512 bytes, at most 32
 * comma-separated list members (empty ones allowed, optional spaces and tabs
 * around each), each `key=value` with the spec's key grammar (lowercase
 * `[a-z][a-z0-9_*\/-]{0,255}`, or `tenant@system`) and a value of 1-256
 * printable ASCII characters other than ',' and '=' not ending in a space. */
bool sq_tracestate_valid(const char *s, size_t len);

#endif
