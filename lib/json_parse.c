/*
 * json_parse.c: a recursive-descent JSON reader over a byte buffer that
 * builds jansson values with jansson's own constructors.
 *
 * Why: json_loadb reads one character at a time through a stream callback
 * and copies every token into a growing buffer; on a 160-byte job payload
 * that was two thirds of squire's instructions per no-op job. This reader
 * looks at each byte once and hands strings and keys straight from the input
 * to jansson, which copies them once.
 *
 * It follows jansson 2.14's lexer (load.c) rule for rule, so that whatever
 * it accepts json_loadb accepts too, with an equal tree: whitespace is
 * space, tab, LF and CR; strings are well-formed UTF-8 without raw control
 * bytes, \u escapes pair surrogates and refuse lone ones, and a key may not
 * hold U+0000; a number without fraction or exponent is a json_int_t (out of
 * range fails), any other is a double from strtod (overflow to infinity
 * fails, underflow gives 0 or a subnormal); a literal is a run of ASCII
 * letters that must be exactly true, false or null; depth counts every value
 * as jansson does. test/test_json_parse.c checks this against json_loadb.
 *
 * Recursion is bounded by SQ_JSON_PARSE_MAX_DEPTH, as jansson's is; the
 * frames are small (the scratch buffer lives in the reader, not the stack).
 */
#include "json_parse.h"

#include "json_text.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(sizeof(json_int_t) == sizeof(long long), "json_int_t is long long");

typedef struct reader {
    const unsigned char *p, *end;
    size_t depth;
    char *buf; /* scratch: strings with escapes, number text; local or malloc'd */
    size_t cap;
    char local[128];
} reader;

/* A decoded string: in the input, or in the reader's scratch buffer. */
typedef struct span {
    const char *s;
    size_t n;
    bool scratch;
} span;

static json_t *read_value(reader *r);

/* ---- bytes -------------------------------------------------------------------- */

static bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static bool is_alpha(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static void skip_ws(reader *r)
{
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\n' || *r->p == '\r' || *r->p == '\t'))
        r->p++;
}

static const unsigned char *skip_digits(const unsigned char *p, const unsigned char *end)
{
    while (p < end && is_digit(*p))
        p++;
    return p;
}

/* Make the scratch buffer hold n bytes; its contents are not kept. */
static int reserve(reader *r, size_t n)
{
    if (n <= r->cap)
        return 0;
    size_t cap = n > 2 * r->cap ? n : 2 * r->cap;
    char *p = malloc(cap);
    if (p == NULL)
        return -1;
    if (r->buf != r->local)
        free(r->buf);
    r->buf = p;
    r->cap = cap;
    return 0;
}

/* ---- strings ------------------------------------------------------------------ */

/* Length of the well-formed UTF-8 sequence at p (2 to 4 bytes), or 0: no
 * overlong forms, no UTF-16 surrogates, nothing above U+10FFFF, as jansson's
 * utf8_check_first and utf8_check_full (the rule is sq_utf8_seq's). */
static size_t utf8_len(const unsigned char *p, const unsigned char *end)
{
    size_t bad = 0;
    return sq_utf8_seq(p, (size_t)(end - p), &bad);
}

/* 1 for the bytes that end a run of plain ASCII in a string: control bytes,
 * '"', '\\', and every byte from 0x80 (UTF-8, checked on its own). */
static const unsigned char not_plain[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
};

/* The end of the run at p that a string holds as is: stops at a quote, a
 * backslash, a control byte, a byte that starts no valid UTF-8, or end. */
static const unsigned char *skip_plain(const unsigned char *p, const unsigned char *end)
{
    for (;;) {
        while (p < end && !not_plain[*p])
            p++;
        size_t k = p < end && *p >= 0x80 ? utf8_len(p, end) : 0;
        if (k == 0)
            return p;
        p += k;
    }
}

/* The quote closing a string at or after p (which is inside it), or NULL. */
static const unsigned char *closing_quote(const unsigned char *p, const unsigned char *end)
{
    while (p < end && *p != '"') {
        if (*p == '\\' && end - p < 2)
            return NULL;
        p += *p == '\\' ? 2 : 1;
    }
    return p < end ? p : NULL;
}

/* The value of 4 hex digits at p (either case), or -1. */
static long hex4(const unsigned char *p)
{
    long v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned c = p[i], d;
        if (is_digit((unsigned char)c))
            d = c - '0';
        else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
            d = (c | 0x20) - 'a' + 10;
        else
            return -1;
        v = v * 16 + d;
    }
    return v;
}

/* The code point of the \u escape at p (the backslash), a surrogate pair
 * taking two; *len is how many bytes it spans. -1 when invalid. */
static long unicode_escape(const unsigned char *p, const unsigned char *q, size_t *len)
{
    long cp = q - p >= 6 ? hex4(p + 2) : -1;
    *len = 6;
    if (cp >= 0xDC00 && cp <= 0xDFFF)
        return -1;
    if (cp < 0xD800 || cp > 0xDBFF)
        return cp;
    if (q - p < 12 || p[6] != '\\' || p[7] != 'u')
        return -1;
    long lo = hex4(p + 8);
    if (lo < 0xDC00 || lo > 0xDFFF)
        return -1;
    *len = 12;
    return 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
}

static char *put_utf8(char *o, long cp)
{
    if (cp < 0x80) {
        *o++ = (char)cp;
    } else if (cp < 0x800) {
        *o++ = (char)(0xC0 | (cp >> 6));
        *o++ = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        *o++ = (char)(0xE0 | (cp >> 12));
        *o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
        *o++ = (char)(0x80 | (cp & 0x3F));
    } else {
        *o++ = (char)(0xF0 | (cp >> 18));
        *o++ = (char)(0x80 | ((cp >> 12) & 0x3F));
        *o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
        *o++ = (char)(0x80 | (cp & 0x3F));
    }
    return o;
}

/* Decode the escape at p (a backslash before the closing quote q) to *o.
 * Returns the byte after it, or NULL when invalid. */
static const unsigned char *unescape(const unsigned char *p, const unsigned char *q, char **o)
{
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    if (p[1] == 'u') {
        size_t len;
        long cp = unicode_escape(p, q, &len);
        if (cp < 0)
            return NULL;
        *o = put_utf8(*o, cp);
        return p + len;
    }
    const char *f = p[1] != '\0' ? strchr(from, p[1]) : NULL;
    if (f == NULL)
        return NULL;
    *(*o)++ = to[f - from];
    return p + 2;
}

/* The rest of a string from its first escape at p (start is just past the
 * opening quote), decoded into the scratch buffer. */
static int read_escaped(reader *r, const unsigned char *start, const unsigned char *p, span *out)
{
    const unsigned char *q = closing_quote(p, r->end);
    if (q == NULL || reserve(r, (size_t)(q - start)) < 0)
        return -1;
    /* Decoding never grows the text: an escape of 2, 6 or 12 bytes gives 1-4. */
    char *o = r->buf;
    memcpy(o, start, (size_t)(p - start));
    o += p - start;
    while (p < q) {
        const unsigned char *e = *p == '\\' ? unescape(p, q, &o) : skip_plain(p, q);
        if (e == NULL || e == p)
            return -1;
        if (*p != '\\') {
            memcpy(o, p, (size_t)(e - p));
            o += e - p;
        }
        p = e;
    }
    r->p = q + 1;
    *out = (span){r->buf, (size_t)(o - r->buf), true};
    return 0;
}

/* The string whose opening quote is just before r->p. */
static int read_string(reader *r, span *out)
{
    const unsigned char *start = r->p, *p = skip_plain(start, r->end);
    if (p < r->end && *p == '"') {
        r->p = p + 1;
        *out = (span){(const char *)start, (size_t)(p - start), false};
        return 0;
    }
    if (p < r->end && *p == '\\')
        return read_escaped(r, start, p, out);
    return -1;
}

/* ---- numbers and literals ----------------------------------------------------- */

/* The integer text s..end (an optional '-' and digits), as json_loadb reads
 * it with strtoll: NULL beyond int64 (jansson: json_error_numeric_overflow). */
static json_t *make_integer(const unsigned char *s, const unsigned char *end)
{
    bool neg = *s == '-';
    unsigned long long v = 0, max = neg ? (unsigned long long)LLONG_MAX + 1 : LLONG_MAX;
    for (const unsigned char *p = s + neg; p < end; p++) {
        unsigned d = *p - '0';
        if (v > (max - d) / 10)
            return NULL;
        v = v * 10 + d;
    }
    return json_integer(neg && v > 0 ? -(json_int_t)(v - 1) - 1 : (json_int_t)v);
}

/* The real number text s (n bytes, valid JSON) through strtod, as jansson
 * does: NULL on overflow to infinity. A locale whose decimal point is not '.'
 * makes strtod stop early; that fails too (jansson handles it). */
static json_t *make_real(reader *r, const unsigned char *s, size_t n)
{
    if (reserve(r, n + 1) < 0)
        return NULL;
    memcpy(r->buf, s, n);
    r->buf[n] = '\0';
    char *e;
    errno = 0;
    double v = strtod(r->buf, &e);
    if (e != r->buf + n || (errno == ERANGE && isinf(v)))
        return NULL;
    return json_real(v);
}

/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static json_t *read_number(reader *r)
{
    const unsigned char *s = r->p, *p = s + (*s == '-'), *end = r->end;
    bool real = false;
    if (p == end || !is_digit(*p))
        return NULL;
    p = *p == '0' ? p + 1 : skip_digits(p, end);
    if (p < end && *p == '.') {
        if (++p == end || !is_digit(*p))
            return NULL;
        p = skip_digits(p, end);
        real = true;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        p += p < end && (*p == '+' || *p == '-');
        if (p == end || !is_digit(*p))
            return NULL;
        p = skip_digits(p, end);
        real = true;
    }
    r->p = p;
    return real ? make_real(r, s, (size_t)(p - s)) : make_integer(s, p);
}

/* jansson takes the whole run of ASCII letters, so "truex" is not "true". */
static json_t *read_literal(reader *r)
{
    const unsigned char *s = r->p, *p = s;
    while (p < r->end && is_alpha(*p))
        p++;
    r->p = p;
    size_t n = (size_t)(p - s);
    if (n == 4 && memcmp(s, "true", 4) == 0)
        return json_true();
    if (n == 5 && memcmp(s, "false", 5) == 0)
        return json_false();
    if (n == 4 && memcmp(s, "null", 4) == 0)
        return json_null();
    return NULL;
}

/* ---- containers --------------------------------------------------------------- */

static json_t *read_string_value(reader *r)
{
    span s;
    return read_string(r, &s) < 0 ? NULL : json_stringn_nocheck(s.s, s.n);
}

/* One "key": value member into o. The key is copied out of the scratch
 * buffer, which the value may need. */
static int read_member(reader *r, json_t *o)
{
    span key;
    if (r->p == r->end || *r->p != '"')
        return -1;
    r->p++;
    if (read_string(r, &key) < 0)
        return -1;
    char *copy = NULL;
    if (key.scratch) {
        if (memchr(key.s, '\0', key.n) != NULL) /* jansson: json_error_null_byte_in_key */
            return -1;
        if ((copy = malloc(key.n + 1)) == NULL)
            return -1;
        key.s = memcpy(copy, key.s, key.n);
    }
    skip_ws(r);
    int rc = -1;
    if (r->p < r->end && *r->p == ':') {
        r->p++;
        rc = json_object_setn_new_nocheck(o, key.s, key.n, read_value(r));
    }
    free(copy);
    return rc;
}

/* After a member or an element: true past a ',' (more follow), false past
 * the closing bracket, -1 otherwise. */
static int next_item(reader *r, char close)
{
    skip_ws(r);
    if (r->p == r->end)
        return -1;
    char c = (char)*r->p++;
    return c == ',' ? 1 : c == close ? 0 : -1;
}

static json_t *read_object(reader *r)
{
    json_t *o = json_object();
    if (o == NULL)
        return NULL;
    skip_ws(r);
    if (r->p < r->end && *r->p == '}') {
        r->p++;
        return o;
    }
    int more = 1;
    while (more == 1) {
        skip_ws(r);
        more = read_member(r, o) < 0 ? -1 : next_item(r, '}');
    }
    if (more == 0)
        return o;
    json_decref(o);
    return NULL;
}

static json_t *read_array(reader *r)
{
    json_t *a = json_array();
    if (a == NULL)
        return NULL;
    skip_ws(r);
    if (r->p < r->end && *r->p == ']') {
        r->p++;
        return a;
    }
    int more = 1;
    while (more == 1)
        more = json_array_append_new(a, read_value(r)) < 0 ? -1 : next_item(r, ']');
    if (more == 0)
        return a;
    json_decref(a);
    return NULL;
}

static json_t *read_value(reader *r)
{
    skip_ws(r);
    if (r->p == r->end || ++r->depth > SQ_JSON_PARSE_MAX_DEPTH)
        return NULL;
    json_t *v;
    switch (*r->p) {
    case '{':
        r->p++;
        v = read_object(r);
        break;
    case '[':
        r->p++;
        v = read_array(r);
        break;
    case '"':
        r->p++;
        v = read_string_value(r);
        break;
    default: /* read_literal gives NULL for anything that is not a letter */
        v = *r->p == '-' || is_digit(*r->p) ? read_number(r) : read_literal(r);
        break;
    }
    r->depth -= v != NULL;
    return v;
}

/* ---- entry -------------------------------------------------------------------- */

static void error_set(json_error_t *err, size_t offset)
{
    if (err == NULL)
        return;
    memset(err, 0, sizeof *err);
    err->line = err->column = -1;
    err->position = offset > INT_MAX ? INT_MAX : (int)offset;
    snprintf(err->source, sizeof err->source, "<sq_json_parse>");
    snprintf(err->text, sizeof err->text, "not parsed; json_loadb gives the reason");
    err->text[JSON_ERROR_TEXT_LENGTH - 1] = (char)json_error_unknown;
}

json_t *sq_json_parse(const char *s, size_t n, json_error_t *err)
{
    reader r = {.p = (const unsigned char *)s, .end = (const unsigned char *)s + n};
    r.buf = r.local;
    r.cap = sizeof r.local;
    json_t *v = read_value(&r);
    skip_ws(&r);
    if (v != NULL && r.p != r.end) {
        json_decref(v);
        v = NULL;
    }
    if (r.buf != r.local)
        free(r.buf);
    if (v == NULL)
        error_set(err, (size_t)(r.p - (const unsigned char *)s));
    return v;
}
