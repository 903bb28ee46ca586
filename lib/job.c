/*
 * job.c: taking a fetched payload apart, and the handler-facing job API.
 *
 * sq_job_init never trusts the bytes: it checks the size, then makes one
 * linear pass (no recursion) that refuses NUL bytes, deep nesting and too
 * many values, and only then parses it: with sq_json_parse (json_parse.c,
 * a quarter of jansson's instructions), falling back to jansson's own
 * json_loadb for the exact error when that fails. Both build jansson values
 * and both recurse, bounded by max_depth.
 */
#include "job.h"

#include <execinfo.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "config.h"
#include "json_parse.h"
#include "trace.h"

#define SQ_BACKTRACE_MAX 50
#define DEFAULT_ERROR_CLASS "Squire::Error"

static const char *const activejob_wrappers[] = {
    "ActiveJob::QueueAdapters::SidekiqAdapter::JobWrapper",
    "Sidekiq::ActiveJob::Wrapper",
};

/* ---- reasons ---------------------------------------------------------------- */

static void reason_set(char *reason, size_t size, const char *fmt, ...) SQ_PRINTF(3, 4);

/* Format a reason, replacing anything but printable ASCII (jansson quotes
 * payload bytes in its messages) so that it can be logged as is. */
static void reason_set(char *reason, size_t size, const char *fmt, ...)
{
    if (reason == NULL || size == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, size, fmt, ap);
    va_end(ap);
    for (char *p = reason; *p != '\0'; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
            *p = '?';
}

/* ---- the pre-parse scan ----------------------------------------------------- */

/* Index of the quote closing the string opened at s[i], or n if unterminated. */
static size_t string_end(const char *s, size_t n, size_t i)
{
    for (i++; i < n; i++) {
        if (s[i] == '\\')
            i++;
        else if (s[i] == '"')
            return i;
    }
    return n;
}

/*
 * Reject what we refuse to hand to the parser: NUL bytes, nesting deeper than
 * max_depth, more than max_elements values. Values are counted as strings,
 * numbers, literals and containers, minus one per ':' (that string was a key).
 * Returns 0 when the text may be parsed, else SQ_JOB_NOT_JSON (a NUL byte: no
 * JSON text holds one) or SQ_JOB_OVER_LIMIT.
 */
static int prescan(const char *s, size_t n, const sq_job_limits *lim, char *reason, size_t rsize)
{
    const char *nul = memchr(s, '\0', n);
    if (nul != NULL) {
        reason_set(reason, rsize, "payload contains a NUL byte at offset %zu", (size_t)(nul - s));
        return SQ_JOB_NOT_JSON;
    }
    size_t depth = 0, values = 0;
    bool in_token = false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool token = false;
        switch (c) {
        case '"':
            values++;
            i = string_end(s, n, i);
            break;
        case '{':
        case '[':
            values++;
            if (++depth > (size_t)lim->max_depth) {
                reason_set(reason, rsize, "JSON nesting deeper than %d", lim->max_depth);
                return SQ_JOB_OVER_LIMIT;
            }
            break;
        case '}':
        case ']':
            depth -= depth > 0;
            break;
        case ':':
            values -= values > 0;
            break;
        case ',':
        case ' ':
        case '\t':
        case '\n':
        case '\r':
            break;
        default:
            token = true;
            values += !in_token;
            break;
        }
        in_token = token;
        if (c == ',' && values > lim->max_elements)
            break;
    }
    if (values > lim->max_elements) {
        reason_set(reason, rsize, "JSON has more than %zu values", lim->max_elements);
        return SQ_JOB_OVER_LIMIT;
    }
    return 0;
}

/* ---- numbers jansson cannot hold -------------------------------------------- */

static bool int_overflows(const char *t, size_t n)
{
    bool neg = t[0] == '-';
    const char *d = t + neg;
    size_t nd = n - neg;
    const char *max = neg ? "9223372036854775808" : "9223372036854775807";
    return nd > 19 || (nd == 19 && memcmp(d, max, 19) > 0);
}

/*
 * For the number token t (n bytes) that jansson cannot hold: how many of its
 * bytes to keep (*keep) and the text to write after them; NULL to keep it all.
 */
static const char *widen_number(const char *t, size_t n, size_t *keep)
{
    if (memchr(t, '.', n) == NULL && memchr(t, 'e', n) == NULL && memchr(t, 'E', n) == NULL) {
        *keep = n;
        return int_overflows(t, n) ? ".0" : NULL; /* a real, as JSON_DECODE_INT_AS_REAL gives */
    }
    char *e;
    double v = strtod(t, &e);
    if (e != t + n || !isinf(v))
        return NULL;
    *keep = 0;
    return v < 0 ? "-1.7976931348623157e308" : "1.7976931348623157e308";
}

/*
 * Copy s (n bytes) into out (or measure when out is NULL), turning integers
 * beyond int64 into reals and reals beyond double into +-DBL_MAX, so that
 * jansson accepts the payload; every other number stays as it is.
 */
static size_t widen_walk(const char *s, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        size_t start = i, keep = 0;
        const char *w = NULL;
        if (s[i] == '"') {
            i = string_end(s, n, i) + 1;
            if (i > n)
                i = n;
        } else if (s[i] == '-' || (s[i] >= '0' && s[i] <= '9')) {
            while (i < n && s[i] != '\0' && strchr("0123456789+-.eE", s[i]) != NULL)
                i++;
            w = widen_number(s + start, i - start, &keep);
        } else {
            i++;
        }
        if (w == NULL)
            keep = i - start;
        if (out != NULL)
            memcpy(out + o, s + start, keep);
        o += keep;
        if (w != NULL) {
            if (out != NULL)
                memcpy(out + o, w, strlen(w));
            o += strlen(w);
        }
    }
    return o;
}

/*
 * sq_json_parse first (about a quarter of json_loadb's instructions). When it
 * fails, jansson parses again, so that the error (text, line, column, code)
 * is exactly jansson's, and text that only jansson takes still loads.
 */
static json_t *parse(const char *s, size_t n, json_error_t *err)
{
    json_t *v = sq_json_parse(s, n, NULL);
    if (v != NULL)
        return v;
    return json_loadb(s, n, JSON_ALLOW_NUL | JSON_DECODE_ANY, err);
}

/* Parse raw; a payload that fails only on a number's range is parsed again
 * from a widened copy. NULL with err (optional) filled on failure. */
json_t *sq_json_load_lenient(const char *raw, size_t n, json_error_t *err)
{
    json_error_t local;
    if (err == NULL)
        err = &local;
    json_t *v = parse(raw, n, err);
    if (v != NULL || json_error_code(err) != json_error_numeric_overflow)
        return v;
    size_t wn = widen_walk(raw, n, NULL);
    char *w = malloc(wn + 1);
    if (w == NULL) {
        snprintf(err->text, sizeof err->text, "out of memory");
        err->text[JSON_ERROR_TEXT_LENGTH - 1] = (char)json_error_out_of_memory;
        return NULL;
    }
    widen_walk(raw, n, w);
    w[wn] = '\0';
    v = parse(w, wn, err);
    free(w);
    return v;
}

/* ---- shape ------------------------------------------------------------------ */

/* A usable class name: a non-empty string without NUL characters (the
 * registry matches C strings). NULL with *why set otherwise. */
static const char *class_name(const json_t *v, const char **why)
{
    const char *s = json_string_value(v);
    if (v == NULL)
        *why = "is missing";
    else if (s == NULL)
        *why = "is not a string";
    else if (s[0] == '\0')
        *why = "is empty";
    else if (strlen(s) != json_string_length(v))
        *why = "contains a NUL character";
    else
        return s;
    return NULL;
}

static bool is_activejob_wrapper(const char *klass)
{
    for (size_t i = 0; i < SQ_ARRAY_LEN(activejob_wrappers); i++)
        if (strcmp(klass, activejob_wrappers[i]) == 0)
            return true;
    return false;
}

/* ActiveJob: dispatch on the ActiveJob class with its `arguments`. */
static sq_job_status unwrap_activejob(sq_job *job, json_t *hash, char *reason, size_t rsize)
{
    const char *why;
    const char *name = class_name(json_object_get(job->payload, "wrapped"), &why);
    if (name == NULL)
        name = class_name(json_object_get(hash, "job_class"), &why);
    if (name == NULL) {
        reason_set(reason, rsize, "ActiveJob job_class %s and wrapped is unusable", why);
        return SQ_JOB_BAD_SHAPE;
    }
    json_t *arguments = json_object_get(hash, "arguments");
    if (!json_is_array(arguments)) {
        reason_set(reason, rsize, "ActiveJob arguments is missing or not an array");
        return SQ_JOB_BAD_SHAPE;
    }
    job->klass = name;
    job->args = arguments;
    return SQ_JOB_VALID;
}

static int clamp_int(double v)
{
    if (v >= (double)INT_MAX)
        return INT_MAX;
    if (v <= (double)INT_MIN)
        return INT_MIN;
    return (int)v;
}

/* retry_count: an integer as is (clamped), a real truncated, else absent. */
static int read_retry_count(const json_t *v)
{
    if (json_is_integer(v)) {
        json_int_t n = json_integer_value(v);
        return n > INT_MAX ? INT_MAX : n < INT_MIN ? INT_MIN : (int)n;
    }
    if (json_is_real(v))
        return clamp_int(json_real_value(v)); /* the cast truncates */
    return -1;
}

static sq_job_status check_shape(sq_job *job, char *reason, size_t rsize)
{
    json_t *p = job->payload;
    const char *why;
    const char *klass = class_name(json_object_get(p, "class"), &why);
    if (klass == NULL) {
        reason_set(reason, rsize, "class %s", why);
        return SQ_JOB_BAD_SHAPE;
    }
    json_t *args = json_object_get(p, "args");
    if (!json_is_array(args)) {
        reason_set(reason, rsize, args == NULL ? "args is missing" : "args is not an array");
        return SQ_JOB_BAD_SHAPE;
    }
    job->klass = klass;
    job->args = args;
    json_t *first = json_array_get(args, 0);
    if (is_activejob_wrapper(klass) && json_is_object(first))
        return unwrap_activejob(job, first, reason, rsize);
    return SQ_JOB_VALID;
}

static const char *json_type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER:
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    default: return "an object";
    }
}

/* ---- init / destroy ---------------------------------------------------------- */

static const sq_job_limits *limits_or_default(const sq_job_limits *lim, sq_job_limits *buf)
{
    buf->max_payload_bytes = SQ_DEFAULT_MAX_PAYLOAD;
    buf->max_depth = SQ_JSON_MAX_DEPTH;
    buf->max_elements = SQ_JSON_MAX_ELEMENTS;
    if (lim != NULL) {
        if (lim->max_payload_bytes > 0)
            buf->max_payload_bytes = lim->max_payload_bytes;
        if (lim->max_depth > 0)
            buf->max_depth = lim->max_depth;
        if (lim->max_elements > 0)
            buf->max_elements = lim->max_elements;
    }
    return buf;
}

/* The bytes of s that the retry machinery wrote: the values of its error
 * fields plus room for its timestamps, count and queue; 0 without them. */
static size_t retry_fields_bytes(const char *s, size_t n)
{
    static const char *const keys[] = {"error_message", "error_class", "error_backtrace"};
    size_t total = 0;
    bool failed = false;
    for (size_t i = 0; i < SQ_ARRAY_LEN(keys); i++) {
        size_t vlen = 0;
        if (sq_json_member_text(s, n, keys[i], &vlen) != NULL) {
            total += vlen;
            failed = true;
        }
    }
    return failed ? total + SQ_RETRY_FIELDS_FIXED : 0;
}

/* Over the size limit: a job within it stays within it after failures (its
 * retry fields do not count, up to SQ_RETRY_FIELDS_SLACK bytes), so that a
 * job the size of the limit is retried, not buried when it comes due. */
static bool over_size(const char *s, size_t n, size_t max)
{
    if (n <= max)
        return false;
    if (n - max > SQ_RETRY_FIELDS_SLACK)
        return true;
    size_t fields = retry_fields_bytes(s, n);
    return fields >= n || n - fields > max;
}

int sq_json_load_bounded(const char *s, size_t n, const sq_job_limits *lim, json_t **out,
                         char *reason, size_t rsize)
{
    sq_job_limits lbuf;
    lim = limits_or_default(lim, &lbuf);
    *out = NULL;
    if (reason != NULL && rsize > 0)
        reason[0] = '\0';
    if (over_size(s, n, lim->max_payload_bytes)) {
        reason_set(reason, rsize, "payload is %zu bytes, over the %zu-byte limit", n,
                   lim->max_payload_bytes);
        return SQ_JOB_OVER_LIMIT;
    }
    int refused = prescan(s, n, lim, reason, rsize);
    if (refused != 0)
        return refused;
    json_error_t err;
    json_t *v = sq_json_load_lenient(s, n, &err);
    if (v == NULL) {
        if (json_error_code(&err) == json_error_out_of_memory)
            return -1;
        reason_set(reason, rsize, "invalid JSON: %s at line %d column %d", err.text, err.line,
                   err.column);
        return SQ_JOB_NOT_JSON;
    }
    if (!json_is_object(v)) {
        reason_set(reason, rsize, "payload is %s, not a JSON object", json_type_name(v));
        json_decref(v);
        return SQ_JOB_NOT_JSON;
    }
    *out = v;
    return SQ_JOB_VALID;
}

/* Parse job->raw into job->payload. Returns a status, or -1 when out of memory. */
static int load(sq_job *job, const sq_job_limits *lim, char *reason, size_t rsize)
{
    int rc = sq_json_load_bounded(job->raw, job->raw_len, lim, &job->payload, reason, rsize);
    return rc != SQ_JOB_VALID ? rc : (int)check_shape(job, reason, rsize);
}

/* A job that is not JSON keeps only its bytes and queue. */
static void forget_payload(sq_job *job)
{
    json_decref(job->payload);
    job->payload = NULL;
    job->klass = job->jid = "";
    job->klass_len = job->jid_len = 0;
    job->args = NULL;
}

/* *s and *len from the string v (which may hold NUL characters); unchanged
 * when v is not a string. */
static void string_of(const json_t *v, const char **s, size_t *len)
{
    if (json_is_string(v)) {
        *s = json_string_value(v);
        *len = json_string_length(v);
    }
}

/* W3C trace context: kept only when it follows the grammar (trace.h). */
static void read_trace(sq_job *job)
{
    const char *tp = NULL, *ts = NULL;
    size_t tp_len = 0, ts_len = 0;
    string_of(json_object_get(job->payload, "traceparent"), &tp, &tp_len);
    if (tp == NULL || !sq_traceparent_valid(tp, tp_len, job->trace_id))
        return;
    job->traceparent = tp;
    string_of(json_object_get(job->payload, "tracestate"), &ts, &ts_len);
    if (ts != NULL && strlen(ts) == ts_len && sq_tracestate_valid(ts, ts_len))
        job->tracestate = ts;
}

int sq_job_init(sq_job *job, char *raw, size_t raw_len, const char *queue,
                const sq_job_limits *lim, sq_job_status *status, char *reason,
                size_t reason_size)
{
    sq_job_limits lbuf;
    memset(job, 0, sizeof *job);
    job->raw = raw;
    job->raw_len = raw_len;
    job->klass = job->jid = "";
    job->retry_count = -1;
    if (reason != NULL && reason_size > 0)
        reason[0] = '\0';
    job->queue = sq__strdup(queue != NULL ? queue : "");
    int rc = job->queue == NULL ? -1 : load(job, limits_or_default(lim, &lbuf), reason, reason_size);
    if (rc < 0) {
        forget_payload(job);
        return -1;
    }
    if (status != NULL)
        *status = (sq_job_status)rc;
    if (rc == SQ_JOB_NOT_JSON || rc == SQ_JOB_OVER_LIMIT) {
        forget_payload(job);
        return 0;
    }
    string_of(json_object_get(job->payload, "jid"), &job->jid, &job->jid_len);
    read_trace(job);
    if (rc != SQ_JOB_VALID) { /* a bad shape: `class` as written, for the log */
        job->args = NULL;
        job->klass = "";
        job->klass_len = 0;
        string_of(json_object_get(job->payload, "class"), &job->klass, &job->klass_len);
        return 0;
    }
    job->klass_len = strlen(job->klass); /* class_name refused NUL characters */
    job->retry_count = read_retry_count(json_object_get(job->payload, "retry_count"));
    return 0;
}

void sq_job_destroy(sq_job *job)
{
    if (job == NULL)
        return;
    json_decref(job->payload);
    free(job->raw);
    free(job->queue);
    sq_outcome_destroy(&job->outcome);
    memset(job, 0, sizeof *job);
}

/* ---- accessors --------------------------------------------------------------- */

const char *sq_job_jid(const sq_job *job) { return job->jid; }
const char *sq_job_class(const sq_job *job) { return job->klass; }
const char *sq_job_queue(const sq_job *job) { return job->queue; }
json_t *sq_job_args(const sq_job *job) { return job->args; }
size_t sq_job_argc(const sq_job *job) { return json_array_size(job->args); }
json_t *sq_job_arg(const sq_job *job, size_t i) { return json_array_get(job->args, i); }
int sq_job_retry_count(const sq_job *job) { return job->retry_count; }
const char *sq_job_trace_id(const sq_job *job) { return job->trace_id[0] ? job->trace_id : NULL; }
const char *sq_job_traceparent(const sq_job *job) { return job->traceparent; }
const char *sq_job_tracestate(const sq_job *job) { return job->tracestate; }
json_t *sq_job_payload(const sq_job *job) { return job->payload; }

const char *sq_job_raw(const sq_job *job, size_t *len)
{
    if (len != NULL)
        *len = job->raw_len;
    return job->raw;
}

/* ---- outcome ----------------------------------------------------------------- */

/* A failure, its message cut to max_chars characters. */
static void outcome_fail(sq_outcome *o, const char *error_class, const char *message,
                         size_t max_chars)
{
    if (o->failed)
        return;
    o->failed = true;
    if (error_class == NULL || error_class[0] == '\0')
        error_class = DEFAULT_ERROR_CLASS;
    if (message == NULL)
        message = "";
    /* Out of memory leaves a field NULL; the retry plan then writes defaults. */
    o->error_class = sq_utf8_scrub(error_class, strlen(error_class), SQ_ERROR_MESSAGE_MAX);
    o->error_message = sq_utf8_scrub(message, strlen(message), max_chars);
}

void sq_outcome_fail(sq_outcome *o, const char *error_class, const char *message)
{
    outcome_fail(o, error_class, message, SQ_ERROR_MESSAGE_MAX);
}

void sq_outcome_cut(sq_outcome *o)
{
    char *cut = o->error_message ? sq_utf8_scrub(o->error_message, strlen(o->error_message),
                                                 SQ_ERROR_MESSAGE_MAX)
                                 : NULL;
    if (cut != NULL) {
        free(o->error_message);
        o->error_message = cut;
    }
}

void sq_outcome_destroy(sq_outcome *o)
{
    free(o->error_class);
    free(o->error_message);
    for (size_t i = 0; i < o->nbacktrace; i++)
        free(o->backtrace[i]);
    free(o->backtrace);
    memset(o, 0, sizeof *o);
}

/* The payload's `backtrace` option asks for lines: true, or a number >= 1. */
static bool wants_backtrace(const sq_job *job)
{
    const json_t *v = json_object_get(job->payload, "backtrace");
    return json_is_true(v) || (json_is_number(v) && json_number_value(v) >= 1);
}

#if defined(__GNUC__)
__attribute__((noinline))
#endif
/* The C call stack of sq_job_fail's caller (this frame and sq_job_fail skipped). */
static void capture_backtrace(sq_outcome *o)
{
    enum { SKIP = 2 };
    void *frames[SQ_BACKTRACE_MAX + SKIP];
    int n = backtrace(frames, (int)SQ_ARRAY_LEN(frames));
    if (n <= SKIP)
        return;
    char **symbols = backtrace_symbols(frames + SKIP, n - SKIP);
    if (symbols == NULL)
        return;
    o->backtrace = calloc((size_t)(n - SKIP), sizeof *o->backtrace);
    for (int i = 0; o->backtrace != NULL && i < n - SKIP; i++) {
        o->backtrace[i] = sq__strdup(symbols[i]);
        if (o->backtrace[i] != NULL)
            o->nbacktrace++;
    }
    free(symbols);
}

static char *vformat(const char *fmt, va_list ap) SQ_PRINTF(1, 0);

/* A malloc'd vsnprintf of any length; NULL when out of memory or bad format. */
static char *vformat(const char *fmt, va_list ap)
{
    va_list copy;
    va_copy(copy, ap);
    int n = vsnprintf(NULL, 0, fmt, copy);
    va_end(copy);
    if (n < 0)
        return NULL;
    char *s = malloc((size_t)n + 1);
    if (s != NULL)
        vsnprintf(s, (size_t)n + 1, fmt, ap);
    return s;
}

sq_result sq_job_fail(sq_job *job, const char *error_class, const char *fmt, ...)
{
    if (job == NULL || job->outcome.failed)
        return SQ_FAILED;
    char *message = NULL;
    if (fmt != NULL) {
        va_list ap;
        va_start(ap, fmt);
        message = vformat(fmt, ap);
        va_end(ap);
    }
    /* whole: the processor scrubs it of the database URL's secrets, then
     * cuts it (sq_outcome_cut) */
    outcome_fail(&job->outcome, error_class, message != NULL ? message : "", SIZE_MAX);
    free(message);
    if (wants_backtrace(job))
        capture_backtrace(&job->outcome);
    return SQ_FAILED;
}

void sq_job_retry_in(sq_job *job, double seconds)
{
    if (job == NULL)
        return;
    job->outcome.disposition = SQ_DISP_RETRY_IN;
    job->outcome.retry_in = seconds;
}

void sq_job_kill(sq_job *job)
{
    if (job != NULL)
        job->outcome.disposition = SQ_DISP_KILL;
}

void sq_job_discard(sq_job *job)
{
    if (job != NULL)
        job->outcome.disposition = SQ_DISP_DISCARD;
}
