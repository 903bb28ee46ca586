/*
 * json_text.c: JSON as text: splicing members into a payload without
 * re-serialising it, quoting strings, timestamps, and UTF-8 scrubbing.
 *
 * The splice scanner walks only the top level of the object. A nested value
 * is skipped by counting brackets outside strings, so it uses no recursion
 * and no stack proportional to the nesting depth.
 */
#include "json_text.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- a growable output buffer ------------------------------------------- */

typedef struct sbuf {
    char *p;
    size_t len, cap;
    bool failed; /* out of memory: every later add is a no-op */
} sbuf;

static void sb_add(sbuf *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->cap - b->len < n + 1) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap - b->len < n + 1) {
            if (cap > SIZE_MAX / 2) {
                b->failed = true;
                return;
            }
            cap *= 2;
        }
        char *p = realloc(b->p, cap);
        if (p == NULL) {
            b->failed = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_addc(sbuf *b, char c)
{
    sb_add(b, &c, 1);
}

/* ---- UTF-8 ----------------------------------------------------------------- */

/*
 * Length of the well-formed UTF-8 sequence at s (1..4 bytes), or 0 with *bad
 * set to the length of its maximal invalid subpart (at least 1), which is
 * replaced by one U+FFFD (Unicode's "best practice", as Ruby's scrub does).
 */
size_t sq_utf8_seq(const unsigned char *s, size_t n, size_t *bad)
{
    unsigned c = s[0], lo = 0x80, hi = 0xBF;
    size_t need;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        need = 1;
    else if (c >= 0xE0 && c <= 0xEF)
        need = 2;
    else if (c >= 0xF0 && c <= 0xF4)
        need = 3;
    else {
        *bad = 1;
        return 0;
    }
    if (c == 0xE0)
        lo = 0xA0; /* no overlongs */
    else if (c == 0xED)
        hi = 0x9F; /* no surrogates */
    else if (c == 0xF0)
        lo = 0x90;
    else if (c == 0xF4)
        hi = 0x8F; /* nothing above U+10FFFF */
    size_t i = 1;
    for (; i <= need && i < n; i++) {
        if (s[i] < lo || s[i] > hi)
            break;
        lo = 0x80;
        hi = 0xBF;
    }
    if (i > need)
        return need + 1;
    *bad = i;
    return 0;
}

static const char replacement[] = "\xEF\xBF\xBD"; /* U+FFFD */

/* Scrub s into out (or only measure when out is NULL); returns the output size. */
static size_t scrub_walk(const unsigned char *s, size_t len, size_t max_chars, char *out)
{
    size_t i = 0, o = 0;
    for (size_t chars = 0; i < len && chars < max_chars; chars++) {
        size_t bad = 0, n = sq_utf8_seq(s + i, len - i, &bad);
        const char *src = n ? (const char *)s + i : replacement;
        size_t m = n ? n : 3;
        if (out != NULL)
            memcpy(out + o, src, m);
        o += m;
        i += n ? n : bad;
    }
    return o;
}

/* Scrubbed malloc'd copy; *out_len excludes the terminating NUL (the copy
 * keeps any NUL bytes of s). */
static char *scrub_copy(const char *s, size_t len, size_t max_chars, size_t *out_len)
{
    if (s == NULL)
        len = 0;
    size_t n = scrub_walk((const unsigned char *)s, len, max_chars, NULL);
    char *out = malloc(n + 1);
    if (out == NULL)
        return NULL;
    scrub_walk((const unsigned char *)s, len, max_chars, out);
    out[n] = '\0';
    *out_len = n;
    return out;
}

char *sq_utf8_scrub(const char *s, size_t len, size_t max_chars)
{
    size_t n;
    return scrub_copy(s, len, max_chars, &n);
}

/* ---- quoting ---------------------------------------------------------------- */

/* Escape valid UTF-8 s into out (or measure when out is NULL), quotes included. */
static size_t quote_walk(const char *s, size_t len, char *out)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    char esc[7];
#define PUT(str, n)                                                                                \
    do {                                                                                           \
        if (out != NULL)                                                                           \
            memcpy(out + o, (str), (n));                                                           \
        o += (n);                                                                                  \
    } while (0)
    PUT("\"", 1);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *named = NULL;
        switch (c) {
        case '"': named = "\\\""; break;
        case '\\': named = "\\\\"; break;
        case '\b': named = "\\b"; break;
        case '\f': named = "\\f"; break;
        case '\n': named = "\\n"; break;
        case '\r': named = "\\r"; break;
        case '\t': named = "\\t"; break;
        default: break;
        }
        if (named != NULL) {
            PUT(named, 2);
        } else if (c < 0x20) {
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            PUT(esc, 6);
        } else {
            PUT(s + i, 1);
        }
    }
    PUT("\"", 1);
#undef PUT
    return o;
}

char *sq_json_quote(const char *s, size_t len)
{
    size_t clen;
    char *clean = scrub_copy(s, len, SIZE_MAX, &clen); /* NUL bytes become \u0000 */
    if (clean == NULL)
        return NULL;
    size_t n = quote_walk(clean, clen, NULL);
    char *out = malloc(n + 1);
    if (out != NULL) {
        quote_walk(clean, clen, out);
        out[n] = '\0';
    }
    free(clean);
    return out;
}

/* ---- timestamps ------------------------------------------------------------- */

char *sq_format_time(double t, char buf[32])
{
    if (!isfinite(t))
        t = 0;
    if (t > 1e18)
        t = 1e18;
    if (t < -1e18)
        t = -1e18;
    snprintf(buf, 32, "%.6f", t);
    return buf;
}

double sq_json_time(const json_t *v)
{
    if (json_is_real(v))
        return json_real_value(v);
    if (json_is_integer(v)) {
        json_int_t n = json_integer_value(v);
        return n > 100000000000LL ? (double)n / 1000.0 : (double)n;
    }
    return -1;
}

/* ---- the top-level scanner --------------------------------------------------- */

static const char *skip_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

/* p at '"': the byte after the closing quote, or NULL when unterminated. */
static const char *skip_string(const char *p, const char *end)
{
    for (p++; p < end; p++) {
        if (*p == '\\')
            p++;
        else if (*p == '"')
            return p + 1;
    }
    return NULL;
}

/* p at '{' or '[': the byte after the matching close, or NULL. */
static const char *skip_container(const char *p, const char *end)
{
    size_t depth = 0;
    while (p < end) {
        char c = *p;
        if (c == '"') {
            p = skip_string(p, end);
            if (p == NULL)
                return NULL;
            continue;
        }
        if (c == '{' || c == '[') {
            depth++;
        } else if (c == '}' || c == ']') {
            if (--depth == 0)
                return p + 1;
        }
        p++;
    }
    return NULL;
}

static bool is_token_char(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           c == '-' || c == '+' || c == '.';
}

/* The byte after the value starting at p, or NULL when there is none. */
static const char *skip_value(const char *p, const char *end)
{
    if (p >= end)
        return NULL;
    if (*p == '"')
        return skip_string(p, end);
    if (*p == '{' || *p == '[')
        return skip_container(p, end);
    const char *q = p;
    while (q < end && is_token_char(*q))
        q++;
    return q == p ? NULL : q;
}

static int hex4(const char *p, const char *end, unsigned *out)
{
    unsigned v = 0;
    if (end - p < 4)
        return -1;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        unsigned d;
        if (c >= '0' && c <= '9')
            d = (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            d = (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            d = (unsigned)(c - 'A' + 10);
        else
            return -1;
        v = v * 16 + d;
    }
    *out = v;
    return 0;
}

static void put_utf8(sbuf *b, unsigned cp)
{
    char u[4];
    if (cp < 0x80) {
        u[0] = (char)cp;
        sb_add(b, u, 1);
    } else if (cp < 0x800) {
        u[0] = (char)(0xC0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3F));
        sb_add(b, u, 2);
    } else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F));
        sb_add(b, u, 3);
    } else {
        u[0] = (char)(0xF0 | (cp >> 18));
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[3] = (char)(0x80 | (cp & 0x3F));
        sb_add(b, u, 4);
    }
}

/* Decode an escape at p (just after the backslash) into b; returns the byte
 * after it, or NULL when malformed. */
static const char *decode_escape(const char *p, const char *end, sbuf *b)
{
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    if (p >= end)
        return NULL;
    const char *named = memchr(from, *p, sizeof from - 1);
    if (named != NULL) {
        sb_addc(b, to[named - from]);
        return p + 1;
    }
    unsigned cp, lo;
    if (*p != 'u' || hex4(p + 1, end, &cp) < 0)
        return NULL;
    p += 5;
    if (cp >= 0xD800 && cp <= 0xDBFF && end - p >= 6 && p[0] == '\\' && p[1] == 'u' &&
        hex4(p + 2, end, &lo) == 0 && lo >= 0xDC00 && lo <= 0xDFFF) {
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        p += 6;
    }
    put_utf8(b, cp);
    return p;
}

/* Decode the key string between p (after the opening quote) and end (at the
 * closing quote) into b. Returns 0, or -1 when malformed. */
static int decode_key(const char *p, const char *end, sbuf *b)
{
    b->len = 0;
    sb_add(b, "", 0);
    while (p < end) {
        const char *bs = memchr(p, '\\', (size_t)(end - p));
        const char *stop = bs != NULL ? bs : end;
        sb_add(b, p, (size_t)(stop - p));
        if (bs == NULL)
            break;
        p = decode_escape(bs + 1, end, b);
        if (p == NULL)
            return -1;
    }
    return b->failed ? -1 : 0;
}

static bool key_is(const sbuf *key, const char *name)
{
    size_t n = strlen(name);
    return key->len == n && memcmp(key->p, name, n) == 0;
}

static long set_index(const sbuf *key, const sq_json_member *set, size_t nset)
{
    for (size_t i = 0; i < nset; i++)
        if (key_is(key, set[i].key))
            return (long)i;
    return -1;
}

static bool in_list(const sbuf *key, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (key_is(key, list[i]))
            return true;
    return false;
}

/* The state of one splice. */
typedef struct splice {
    const sq_json_member *set;
    size_t nset;
    const char *const *remove;
    size_t nremove;
    bool *done; /* set[i] already written */
    sbuf out;
    sbuf key;
    size_t members; /* members written so far */
} splice;

static void emit(splice *sp, const char *key_json, size_t key_len, const char *value,
                 size_t value_len)
{
    if (sp->members++ > 0)
        sb_addc(&sp->out, ',');
    sb_add(&sp->out, key_json, key_len);
    if (value != NULL) {
        sb_addc(&sp->out, ':');
        sb_add(&sp->out, value, value_len);
    }
}

/* One member of the input: key text [kstart, kend), whole member [kstart, vend). */
static void splice_member(splice *sp, const char *kstart, const char *kend, const char *vend)
{
    long i = set_index(&sp->key, sp->set, sp->nset);
    if (i >= 0) {
        if (!sp->done[i]) {
            sp->done[i] = true;
            const char *v = sp->set[i].value_json;
            emit(sp, kstart, (size_t)(kend - kstart), v, strlen(v));
        }
        return;
    }
    if (in_list(&sp->key, sp->remove, sp->nremove))
        return;
    emit(sp, kstart, (size_t)(vend - kstart), NULL, 0);
}

/* Walk the members after '{'; returns the byte after '}', or NULL. */
static const char *splice_members(splice *sp, const char *p, const char *end)
{
    p = skip_ws(p, end);
    if (p < end && *p == '}')
        return p + 1;
    for (;;) {
        if (p >= end || *p != '"')
            return NULL;
        const char *kstart = p, *kend = skip_string(p, end);
        if (kend == NULL || decode_key(kstart + 1, kend - 1, &sp->key) < 0)
            return NULL;
        p = skip_ws(kend, end);
        if (p >= end || *p != ':')
            return NULL;
        p = skip_value(skip_ws(p + 1, end), end);
        if (p == NULL)
            return NULL;
        splice_member(sp, kstart, kend, p);
        p = skip_ws(p, end);
        if (p < end && *p == '}')
            return p + 1;
        if (p >= end || *p != ',')
            return NULL;
        p = skip_ws(p + 1, end);
    }
}

static bool repeats_earlier(const sq_json_member *set, size_t i)
{
    for (size_t j = 0; j < i; j++)
        if (strcmp(set[j].key, set[i].key) == 0)
            return true;
    return false;
}

static void splice_append(splice *sp)
{
    for (size_t i = 0; i < sp->nset; i++) {
        if (sp->done[i] || repeats_earlier(sp->set, i))
            continue; /* written in place, or a repeat of an earlier set key */
        char *k = sq_json_quote(sp->set[i].key, strlen(sp->set[i].key));
        if (k == NULL) {
            sp->out.failed = true;
            return;
        }
        const char *v = sp->set[i].value_json;
        emit(sp, k, strlen(k), v, strlen(v));
        free(k);
    }
}

char *sq_json_splice(const char *raw, size_t raw_len, const sq_json_member *set, size_t nset,
                     const char *const *remove, size_t nremove, size_t *out_len)
{
    splice sp = {.set = set, .nset = nset, .remove = remove, .nremove = nremove};
    const char *end = raw + raw_len, *p = skip_ws(raw, end);
    sp.done = calloc(nset + 1, sizeof *sp.done);
    if (sp.done == NULL || p >= end || *p != '{')
        goto fail;
    sb_addc(&sp.out, '{');
    p = splice_members(&sp, p + 1, end);
    if (p == NULL || skip_ws(p, end) != end)
        goto fail;
    splice_append(&sp);
    sb_addc(&sp.out, '}');
    if (sp.out.failed)
        goto fail;
    free(sp.done);
    free(sp.key.p);
    if (out_len != NULL)
        *out_len = sp.out.len;
    return sp.out.p;
fail:
    free(sp.done);
    free(sp.key.p);
    free(sp.out.p);
    return NULL;
}
