/*
 * erb_value.c: the Ruby values the ERB evaluator computes with (nil, true
 * and false, Integer, String, Array) and Ruby's conversions between them:
 * to_s, inspect, String#to_i, Kernel#Integer.
 */
#include "erb_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int sq__erb_buf_add(buf *b, const char *s, size_t n, sq_error *err)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *grown = realloc(b->data, cap);
        if (grown == NULL) {
            sq__error_set(err, SQ_ENOMEM, "out of memory");
            return -1;
        }
        b->data = grown;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

void sq__erb_vfree(value *v)
{
    free(v->s);
    for (size_t i = 0; i < v->n; i++)
        sq__erb_vfree(&v->items[i]);
    free(v->items);
    memset(v, 0, sizeof *v);
}

int sq__erb_unsupported(erb *e)
{
    if (e->status == E_OK)
        e->status = E_UNSUPPORTED;
    return -1;
}

int sq__erb_raise(erb *e, const char *fmt, ...)
{
    if (e->dead > 0)
        return 0;
    if (e->status != E_RUBY) {
        e->status = E_RUBY;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->ruby_error, sizeof e->ruby_error, fmt, ap);
        va_end(ap);
    }
    return -1;
}

int sq__erb_oom(erb *e)
{
    e->dead = 0;
    return sq__erb_raise(e, "%s", "out of memory");
}

int sq__erb_set_str(erb *e, value *v, const char *s, size_t n)
{
    if (n > MAX_TEXT)
        return sq__erb_unsupported(e);
    char *copy = malloc(n + 1);
    if (copy == NULL)
        return sq__erb_oom(e);
    memcpy(copy, s, n);
    copy[n] = '\0';
    sq__erb_vfree(v);
    v->t = V_STR;
    v->s = copy;
    v->len = n;
    return 0;
}

void sq__erb_set_int(value *v, long long i)
{
    sq__erb_vfree(v);
    v->t = V_INT;
    v->i = i;
}

void sq__erb_set_bool(value *v, bool b)
{
    sq__erb_vfree(v);
    v->t = V_BOOL;
    v->b = b;
}

bool sq__erb_truthy(const value *v)
{
    return !(v->t == V_NIL || (v->t == V_BOOL && !v->b));
}

bool sq__erb_equal(const value *a, const value *b)
{
    if (a->t != b->t)
        return false;
    switch (a->t) {
    case V_NIL:
        return true;
    case V_BOOL:
        return a->b == b->b;
    case V_INT:
        return a->i == b->i;
    case V_STR:
        return a->len == b->len && memcmp(a->s, b->s, a->len) == 0;
    case V_LIST:
        if (a->n != b->n)
            return false;
        for (size_t i = 0; i < a->n; i++)
            if (!sq__erb_equal(&a->items[i], &b->items[i]))
                return false;
        return true;
    }
    return false;
}

/* Ruby's to_s (inspect for the elements of a list) appended to out. */
int sq__erb_to_text(erb *e, const value *v, bool inspect, buf *out)
{
    char num[32];
    switch (v->t) {
    case V_NIL:
        return inspect ? sq__erb_buf_add(out, "nil", 3, e->err) : 0;
    case V_BOOL:
        return sq__erb_buf_add(out, v->b ? "true" : "false", v->b ? 4 : 5, e->err);
    case V_INT:
        snprintf(num, sizeof num, "%lld", v->i);
        return sq__erb_buf_add(out, num, strlen(num), e->err);
    case V_STR:
        if (!inspect)
            return sq__erb_buf_add(out, v->s, v->len, e->err);
        if (sq__erb_buf_add(out, "\"", 1, e->err) < 0)
            return -1;
        for (size_t i = 0; i < v->len; i++)
            if ((v->s[i] == '"' || v->s[i] == '\\') && sq__erb_buf_add(out, "\\", 1, e->err) < 0)
                return -1;
            else if (sq__erb_buf_add(out, v->s + i, 1, e->err) < 0)
                return -1;
        return sq__erb_buf_add(out, "\"", 1, e->err);
    case V_LIST:
        if (sq__erb_buf_add(out, "[", 1, e->err) < 0)
            return -1;
        for (size_t i = 0; i < v->n; i++)
            if ((i > 0 && sq__erb_buf_add(out, ", ", 2, e->err) < 0) ||
                sq__erb_to_text(e, &v->items[i], true, out) < 0)
                return -1;
        return sq__erb_buf_add(out, "]", 1, e->err);
    }
    return 0;
}

/* Ruby's String#to_i: leading blanks, a sign, digits (underscores between
 * them); anything else ends it, and no digits give 0. */
long long sq__erb_string_to_i(const char *s, size_t len)
{
    size_t i = 0;
    while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
        i++;
    bool neg = i < len && s[i] == '-';
    if (i < len && (s[i] == '-' || s[i] == '+'))
        i++;
    unsigned long long n = 0;
    for (; i < len; i++) {
        if (s[i] == '_' && i + 1 < len && s[i + 1] >= '0' && s[i + 1] <= '9' && i > 0 &&
            s[i - 1] >= '0' && s[i - 1] <= '9')
            continue;
        if (s[i] < '0' || s[i] > '9')
            break;
        if (n < 1000000000000000000ULL)
            n = n * 10 + (unsigned)(s[i] - '0');
    }
    return neg ? -(long long)n : (long long)n;
}

static int digit_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z')
        return (c | 0x20) - 'a' + 10;
    return 99;
}

int sq__ruby_integer(const char *s, size_t len, long long *out)
{
    size_t i = 0;
    while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n'))
        i++;
    bool neg = i < len && s[i] == '-';
    if (i < len && (s[i] == '-' || s[i] == '+'))
        i++;
    int base = 10;
    if (i + 1 < len && s[i] == '0') {
        const char *prefixes = "xXbBoOdD";
        const int bases[] = {16, 16, 2, 2, 8, 8, 10, 10};
        const char *pre = strchr(prefixes, s[i + 1]);
        if (pre != NULL && s[i + 1] != '\0')
            base = bases[pre - prefixes], i += 2;
        else
            base = 8; /* the leading 0 is itself a digit */
    }
    size_t digits = 0;
    unsigned long long n = 0;
    for (; i < len; i++) {
        if (s[i] == '_') {
            if (digits == 0 || i + 1 >= len || digit_value(s[i + 1]) >= base)
                return -1;
            continue;
        }
        int d = digit_value(s[i]);
        if (d >= base)
            break;
        if (n < 1000000000000000000ULL)
            n = n * (unsigned)base + (unsigned)d;
        digits++;
    }
    while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n'))
        i++;
    if (digits == 0 || i != len)
        return -1;
    *out = neg ? -(long long)n : (long long)n;
    return 0;
}

/* Kernel#Integer on a string. */
int sq__erb_strict_integer(erb *e, const value *v, long long *out)
{
    if (sq__ruby_integer(v->s, v->len, out) == 0)
        return 0;
    char q[80];
    sq__quote(v->s, v->len, q, sizeof q);
    return sq__erb_raise(e, "Integer(%s): invalid value for Integer() (Ruby raises ArgumentError)",
                         q);
}
