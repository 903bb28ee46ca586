/*
 * json_text.h: JSON as text (json_text.c): a payload's members replaced in
 * place with every other byte kept, strings quoted, Sidekiq's timestamps
 * written and read, UTF-8 checked and scrubbed. Pure: no I/O.
 */
#ifndef SQ_JSON_TEXT_H
#define SQ_JSON_TEXT_H

#include <stddef.h>

#include <jansson.h>

typedef struct sq_json_member {
    const char *key;        /* plain key, no quotes */
    const char *value_json; /* the value as JSON text, e.g. "12", "\"x\"", "1700000000.5" */
} sq_json_member;

/*
 * A new malloc'd JSON object text: the top-level object `raw` with each key in
 * `set` replaced in place (or appended when absent) and each key in `remove`
 * dropped (every occurrence). Every other byte of every other member is kept.
 * raw must be a JSON object (as accepted by sq_job_init). Returns NULL on
 * malformed input or out of memory.
 */
char *sq_json_splice(const char *raw, size_t raw_len, const sq_json_member *set, size_t nset,
                     const char *const *remove, size_t nremove, size_t *out_len);

/* Encode s (len bytes) as a JSON string literal, malloc'd; invalid UTF-8 is
 * replaced with U+FFFD first. */
char *sq_json_quote(const char *s, size_t len);

/* Format epoch seconds the way Sidekiq 6/7 writes timestamps: a float that
 * always has a decimal point, microsecond precision ("1700000000.123456").
 * buf must hold 32 bytes. Returns buf. */
char *sq_format_time(double t, char buf[32]);

/* Read a payload timestamp: a JSON real is seconds (Sidekiq <= 7), an integer
 * above 1e11 is milliseconds (Sidekiq 8), a smaller integer is seconds.
 * Returns -1 when v is missing or not a number. */
double sq_json_time(const json_t *v);

/* Copy s into a malloc'd string of at most max_chars characters, with
 * invalid UTF-8 sequences replaced by U+FFFD. */
char *sq_utf8_scrub(const char *s, size_t len, size_t max_chars);
/* Length of the well-formed UTF-8 sequence at s (1..4 bytes, n available),
 * or 0 with *bad set to the length of its maximal invalid subpart. */
size_t sq_utf8_seq(const unsigned char *s, size_t n, size_t *bad);

#endif
