/*
 * json_parse.h: a JSON reader that builds jansson values in one pass over
 * the bytes, for the payload of every fetched job (internal).
 */
#ifndef SQ_JSON_PARSE_H
#define SQ_JSON_PARSE_H

#include <stddef.h>

#include <jansson.h>

/* jansson 2.14's JSON_PARSER_MAX_DEPTH: every value counts, the top one is 1. */
#define SQ_JSON_PARSE_MAX_DEPTH 2048

/*
 * Parse s (n bytes, no NUL terminator needed) into a new reference, accepting
 * only what json_loadb(s, n, JSON_ALLOW_NUL | JSON_DECODE_ANY) accepts and
 * building the tree it would build (same types, values and key order;
 * duplicate keys keep the last value).
 *
 * Returns NULL on any failure: invalid JSON, a number out of range, nesting
 * deeper than SQ_JSON_PARSE_MAX_DEPTH, out of memory, and a raw NUL byte,
 * which is always refused (jansson 2.14 skips one after a number or a
 * literal). It does not tell these apart: err (optional) then only holds the
 * byte offset where reading stopped (err->position), line and column -1 and
 * json_error_unknown. A caller that needs the reason parses again with
 * json_loadb, which also accepts the raw-NUL quirk.
 */
json_t *sq_json_parse(const char *s, size_t n, json_error_t *err);

#endif
