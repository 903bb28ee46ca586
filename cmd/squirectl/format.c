/*
 * format.c: how squirectl prints. Job data is untrusted: every cell goes
 * through ctl_escape, so a payload cannot move the cursor, clear the screen
 * or retitle the terminal. JSON output is ASCII-only for the same reason.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctl.h"
#include "job.h"

struct ctl_table {
    size_t ncols, nrows, cap;
    char **cells; /* nrows + 1 rows (the head first) of ncols escaped cells */
};

/* Length of the valid UTF-8 sequence at s (1-4), or 0 when s[0] starts none;
 * *cp receives its code point. */
static size_t utf8_len(const unsigned char *s, size_t n, unsigned *cp)
{
    unsigned c = s[0];
    size_t need;
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c >= 0xC2 && c <= 0xDF)
        need = 1, c &= 0x1F;
    else if (c >= 0xE0 && c <= 0xEF)
        need = 2, c &= 0x0F;
    else if (c >= 0xF0 && c <= 0xF4)
        need = 3, c &= 0x07;
    else
        return 0;
    if (need >= n)
        return 0;
    for (size_t i = 1; i <= need; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        c = (c << 6) | (s[i] & 0x3F);
    }
    bool overlong = (need == 2 && c < 0x800) || (need == 3 && c < 0x10000);
    if (overlong || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
        return 0;
    *cp = c;
    return need + 1;
}

/* The escape for one character, or NULL when it prints as itself. */
static const char *escape_for(unsigned cp, size_t n, const unsigned char *s, char buf[16])
{
    if (n == 0) {
        snprintf(buf, 16, "\\x%02x", s[0]);
        return buf;
    }
    if (cp == '\n')
        return "\\n";
    if (cp == '\t')
        return "\\t";
    if (cp == '\r')
        return "\\r";
    if (cp < 0x20 || cp == 0x7f) {
        snprintf(buf, 16, "\\x%02x", cp);
        return buf;
    }
    if ((cp >= 0x80 && cp <= 0x9f) || cp == 0x2028 || cp == 0x2029 ||
        (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069)) {
        snprintf(buf, 16, "\\u{%x}", cp);
        return buf;
    }
    return NULL;
}

char *ctl_escape(const char *str, size_t len, size_t max_chars)
{
    const unsigned char *s = (const unsigned char *)(str ? str : "");
    if (str == NULL)
        len = 0;
    /* worst case: every byte becomes "\u{xxxxx}" (9 bytes); plus "..." */
    char *out = malloc(len * 9 + 4);
    if (out == NULL)
        abort();
    size_t o = 0, chars = 0, i = 0;
    while (i < len) {
        if (max_chars > 0 && chars >= max_chars) {
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        unsigned cp = 0;
        size_t n = utf8_len(s + i, len - i, &cp);
        char buf[16];
        const char *esc = escape_for(cp, n, s + i, buf);
        size_t m = esc ? strlen(esc) : n;
        memcpy(out + o, esc ? esc : (const char *)s + i, m);
        o += m;
        chars += esc ? m : 1;
        i += n ? n : 1;
    }
    out[o] = '\0';
    return out;
}

json_t *ctl_json_bytes(const char *s, size_t len)
{
    json_t *j = json_stringn(s, len);
    if (j == NULL) {
        char *clean = sq_utf8_scrub(s, len, (size_t)-1);
        j = json_string(clean ? clean : "");
        free(clean);
    }
    return j;
}

void ctl_json_print(json_t *j, FILE *out)
{
    if (j != NULL)
        json_dumpf(j, out, JSON_COMPACT | JSON_ENSURE_ASCII | JSON_ENCODE_ANY);
    fputc('\n', out);
    json_decref(j);
}

const char *ctl_fmt_time(double t, char buf[32])
{
    if (!(t > 0) || t > 253402300799.0) {
        snprintf(buf, 32, "-");
        return buf;
    }
    time_t s = (time_t)t;
    struct tm tm;
    gmtime_r(&s, &tm);
    strftime(buf, 32, "%Y-%m-%d %H:%M:%S UTC", &tm);
    return buf;
}

const char *ctl_fmt_age(double d, char buf[32])
{
    const char *sign = d < 0 ? "-" : "";
    double a = d < 0 ? -d : d;
    long s = (long)a;
    if (a < 60)
        snprintf(buf, 32, "%s%.2fs", sign, a);
    else if (s < 3600)
        snprintf(buf, 32, "%s%ldm %lds", sign, s / 60, s % 60);
    else if (s < 86400)
        snprintf(buf, 32, "%s%ldh %ldm", sign, s / 3600, s % 3600 / 60);
    else
        snprintf(buf, 32, "%s%ldd %ldh", sign, s / 86400, s % 86400 / 3600);
    return buf;
}

/* ---- tables ---------------------------------------------------------------- */

ctl_table *ctl_table_new(size_t ncols, const char *const *heads)
{
    ctl_table *t = calloc(1, sizeof *t);
    if (t == NULL)
        abort();
    t->ncols = ncols;
    ctl_table_add(t, heads, 0);
    t->nrows = 0; /* the head is row 0 of cells, not a data row */
    return t;
}

void ctl_table_add(ctl_table *t, const char *const *cells, size_t max_width)
{
    size_t row = t->cells == NULL ? 0 : t->nrows + 1;
    if (row + 1 > t->cap) {
        t->cap = t->cap ? t->cap * 2 : 16;
        t->cells = realloc(t->cells, t->cap * t->ncols * sizeof *t->cells);
        if (t->cells == NULL)
            abort();
    }
    for (size_t c = 0; c < t->ncols; c++) {
        const char *v = cells[c] ? cells[c] : "-";
        t->cells[row * t->ncols + c] = ctl_escape(v, strlen(v), max_width);
    }
    if (row > 0)
        t->nrows++;
}

/* Characters (not bytes) in escaped, valid UTF-8 text. */
static size_t width(const char *s)
{
    size_t w = 0;
    for (; *s; s++)
        w += ((unsigned char)*s & 0xC0) != 0x80;
    return w;
}

void ctl_table_print(const ctl_table *t, FILE *out)
{
    size_t w[t->ncols];
    for (size_t c = 0; c < t->ncols; c++) {
        w[c] = 0;
        for (size_t r = 0; r <= t->nrows; r++) {
            size_t n = width(t->cells[r * t->ncols + c]);
            w[c] = n > w[c] ? n : w[c];
        }
    }
    for (size_t r = 0; r <= t->nrows; r++) {
        for (size_t c = 0; c < t->ncols; c++) {
            const char *v = t->cells[r * t->ncols + c];
            bool last = c + 1 == t->ncols;
            fputs(v, out);
            for (size_t pad = width(v); !last && pad < w[c] + 2; pad++)
                fputc(' ', out);
        }
        fputc('\n', out);
    }
}

void ctl_table_free(ctl_table *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < (t->nrows + 1) * t->ncols && t->cells; i++)
        free(t->cells[i]);
    free(t->cells);
    free(t);
}
