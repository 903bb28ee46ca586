/*
 * prom.c: the Prometheus text format writer (prom.h).
 */
#include "prom.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "job.h" /* sq_utf8_seq */

void sq_prom_init(sq_prom *p)
{
    memset(p, 0, sizeof *p);
}

static bool reserve(sq_prom *p, size_t more)
{
    if (p->failed)
        return false;
    if (p->len + more + 1 <= p->cap)
        return true;
    size_t cap = p->cap ? p->cap : 4096;
    while (cap < p->len + more + 1)
        cap *= 2;
    char *b = realloc(p->buf, cap);
    if (b == NULL) {
        p->failed = true;
        return false;
    }
    p->buf = b;
    p->cap = cap;
    return true;
}

static void put(sq_prom *p, const char *s, size_t n)
{
    if (!reserve(p, n))
        return;
    memcpy(p->buf + p->len, s, n);
    p->len += n;
    p->buf[p->len] = '\0';
}

static void puts_(sq_prom *p, const char *s)
{
    put(p, s, strlen(s));
}

/* Escaped as the format asks of label values (\\, \", \n; help text: only
 * \\ and \n), every invalid UTF-8 byte replaced by U+FFFD. */
static void put_escaped(sq_prom *p, const char *s, bool quote)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t len = strlen(s);
    for (size_t i = 0; i < len;) {
        size_t bad = 0, n = u[i] < 0x80 ? 1 : sq_utf8_seq(u + i, len - i, &bad);
        if (n == 0) {
            put(p, "\xef\xbf\xbd", 3);
            i++;
        } else if (u[i] == '\\') {
            put(p, "\\\\", 2), i++;
        } else if (u[i] == '\n') {
            put(p, "\\n", 2), i++;
        } else if (u[i] == '"' && quote) {
            put(p, "\\\"", 2), i++;
        } else {
            put(p, s + i, n), i += n;
        }
    }
}

size_t sq_prom_label_copy(char *out, size_t cap, const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t pos = 0;
    for (size_t i = 0; s != NULL && i < len && u[i] != '\0';) {
        size_t bad = 0, n = u[i] < 0x80 ? 1 : sq_utf8_seq(u + i, len - i, &bad);
        const char *c = n ? s + i : "\xef\xbf\xbd";
        size_t clen = n ? n : 3;
        if (pos + clen + 1 > cap)
            break;
        memcpy(out + pos, c, clen);
        pos += clen;
        i += n ? n : 1;
    }
    if (cap > 0)
        out[pos] = '\0';
    return pos;
}

/* The shortest text that reads back as v (0.005, not 0.0050000000000000001). */
static const char *number(double v, char buf[40])
{
    if (isnan(v))
        return "NaN";
    if (isinf(v))
        return v > 0 ? "+Inf" : "-Inf";
    if (v == floor(v) && fabs(v) < 1e15) {
        snprintf(buf, 40, "%.0f", v);
        return buf;
    }
    for (int prec = 6; prec <= 17; prec++) {
        snprintf(buf, 40, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    return buf;
}

static void put_number(sq_prom *p, double v)
{
    char buf[40];
    puts_(p, number(v, buf));
}

void sq_prom_family(sq_prom *p, const char *name, const char *type, const char *help)
{
    puts_(p, "# HELP ");
    puts_(p, name);
    puts_(p, " ");
    put_escaped(p, help, false);
    puts_(p, "\n# TYPE ");
    puts_(p, name);
    puts_(p, " ");
    puts_(p, type);
    puts_(p, "\n");
}

/* name{labels[,le="bound"]} value\n */
static void sample(sq_prom *p, const char *name, const char *suffix, sq_prom_labels labels,
                   const char *le, double value)
{
    puts_(p, name);
    puts_(p, suffix);
    bool any = (labels != NULL && labels[0] != NULL) || le != NULL;
    if (any)
        puts_(p, "{");
    bool first = true;
    for (size_t i = 0; labels != NULL && labels[i] != NULL; i += 2) {
        puts_(p, first ? "" : ",");
        puts_(p, labels[i]);
        puts_(p, "=\"");
        put_escaped(p, labels[i + 1] ? labels[i + 1] : "", true);
        puts_(p, "\"");
        first = false;
    }
    if (le != NULL) {
        puts_(p, first ? "le=\"" : ",le=\"");
        puts_(p, le);
        puts_(p, "\"");
    }
    if (any)
        puts_(p, "}");
    puts_(p, " ");
    put_number(p, value);
    puts_(p, "\n");
}

void sq_prom_sample(sq_prom *p, const char *name, sq_prom_labels labels, double value)
{
    sample(p, name, "", labels, NULL, value);
}

void sq_prom_histogram(sq_prom *p, const char *name, sq_prom_labels labels, const double *bounds,
                       const uint64_t *counts, size_t nb, double sum)
{
    uint64_t total = 0;
    char le[40];
    for (size_t i = 0; i < nb; i++) {
        total += counts[i];
        sample(p, name, "_bucket", labels, number(bounds[i], le), (double)total);
    }
    total += counts[nb];
    sample(p, name, "_bucket", labels, "+Inf", (double)total);
    sample(p, name, "_sum", labels, NULL, sum);
    sample(p, name, "_count", labels, NULL, (double)total);
}

char *sq_prom_finish(sq_prom *p, size_t *len)
{
    char *out = NULL;
    if (!p->failed && reserve(p, 0)) {
        p->buf[p->len] = '\0';
        out = p->buf;
        *len = p->len;
        p->buf = NULL;
    }
    sq_prom_destroy(p);
    return out;
}

void sq_prom_destroy(sq_prom *p)
{
    free(p->buf);
    sq_prom_init(p);
}
