/*
 * config_erb.c: the ERB subset squire evaluates in sidekiq.yml.
 *
 * Sidekiq runs the whole file through ERB, which is code execution from a
 * config file. squire runs no code: it evaluates the side-effect-free
 * expressions real files use, with Ruby's semantics, by a fixed grammar:
 *
 *   tag     := '<%=' expr '%>' | '<%#' anything '%>' | '<%%' (a literal "<%")
 *   expr    := or ['?' expr ':' expr]
 *   or      := and {'||' and}           and := equal {'&&' equal}
 *   equal   := unary [('==' | '!=') unary]
 *   unary   := '!' unary | postfix
 *   postfix := primary {('.' | '&.') method}
 *   method  := 'to_i' | 'to_s' | 'nil?' | 'empty?' | 'strip' | 'split' ['(' expr ')']
 *            | 'include?' '(' expr ')'
 *   primary := ENV '[' string ']'
 *            | ENV '.fetch' '(' string [',' expr] ')' ['{' ['|' name '|'] expr '}']
 *            | Random.rand '(' int ('..' | '...') int | int ')' | rand '(' ... ')'
 *            | Integer '(' expr ')' | '(' expr ')' | '[' [expr {',' expr}] ']'
 *            | '%w[' words ']' | 'single' | "double with #{expr}" | integer | nil
 *            | true | false
 *
 * Ruby's semantics: an unset ENV['X'] is nil, which prints as ""; a set but
 * empty variable is "" (truthy, so `|| default` does not apply); only nil
 * and false are falsy; .to_i keeps the leading integer ("12abc" -> 12);
 * Integer() reads 0x, 0b, 0o and a leading 0 as Ruby does. Branches Ruby
 * does not run (the right of a decided || or &&, the untaken arm of ?:, the
 * block of a fetch whose variable is set, a call after nil&.) are parsed but
 * cannot raise: `ENV['X'] ? Integer(ENV['X']) : 5` is 5 when X is unset.
 * `-%>` closes a tag and, as in Sidekiq's ERB (trim_mode "-"), removes the
 * newline right after it, joining the next line to the tag's; that newline
 * is put back at the end of the joined line, so later lines keep their
 * numbers.
 *
 * What Ruby would raise on (ENV.fetch of an unset variable without a
 * default, Integer("x"), true.to_i) is an error here too: Sidekiq fails on
 * such a file. Any other form (method calls, arithmetic, statements inside
 * an expression) is not evaluated: the tag is replaced by a placeholder and
 * recorded, and the YAML loader refuses it where squire needs the value
 * (naming file:line and the form) and warns where it does not (a
 * sidekiq-scheduler or sidekiq-cron section, say). `<% %>` statement tags
 * change the file's shape and are always refused.
 */
#include "config_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_NESTING 32
#define MAX_TEXT 4096 /* bytes of one value */

typedef enum vtype { V_NIL, V_BOOL, V_INT, V_STR, V_LIST } vtype;

typedef struct value {
    vtype t;
    bool b;
    long long i;
    char *s; /* V_STR: owned, NUL-terminated at len */
    size_t len;
    struct value *items; /* V_LIST: owned */
    size_t n;
} value;

/* How an evaluation stopped: a form squire does not evaluate (deferred),
 * or what Ruby itself would raise on (the whole file fails). */
enum { E_OK, E_UNSUPPORTED, E_RUBY };

typedef struct erb {
    const char *name; /* file name for messages */
    unsigned long line;
    sq_getenv_fn getenv_fn;
    sq_error *err;
    const char *p, *end; /* the tag body being parsed */
    int status;
    int depth;
    char ruby_error[300];
    unsigned long pending; /* newlines `-%>` removed, not yet put back */
    int dead;              /* > 0: in a branch Ruby does not run (the right of a decided ||
                            * or &&, the other arm of ?:, a fetch block of a set variable):
                            * it is parsed, but what it would raise does not count */
    uint64_t rng;
    sq__erb_skips *skips;
} erb;

typedef struct buf {
    char *data;
    size_t len, cap;
} buf;

static int buf_add(buf *b, const char *s, size_t n, sq_error *err)
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

static int fail(erb *e, const char *what)
{
    sq__error_set(e->err, SQ_ECONFIG, "%s:%lu: ERB: %s", e->name, e->line, what);
    return -1;
}

/* ---- values ---------------------------------------------------------------- */

static void vfree(value *v)
{
    free(v->s);
    for (size_t i = 0; i < v->n; i++)
        vfree(&v->items[i]);
    free(v->items);
    memset(v, 0, sizeof *v);
}

static int unsupported(erb *e)
{
    if (e->status == E_OK)
        e->status = E_UNSUPPORTED;
    return -1;
}

static int ruby_raise(erb *e, const char *fmt, ...) SQ_PRINTF(2, 3);
static int ruby_raise(erb *e, const char *fmt, ...)
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

static int out_of_memory(erb *e)
{
    e->dead = 0;
    return ruby_raise(e, "%s", "out of memory");
}

static int set_str(erb *e, value *v, const char *s, size_t n)
{
    if (n > MAX_TEXT)
        return unsupported(e);
    char *copy = malloc(n + 1);
    if (copy == NULL)
        return out_of_memory(e);
    memcpy(copy, s, n);
    copy[n] = '\0';
    vfree(v);
    v->t = V_STR;
    v->s = copy;
    v->len = n;
    return 0;
}

static void set_int(value *v, long long i)
{
    vfree(v);
    v->t = V_INT;
    v->i = i;
}

static void set_bool(value *v, bool b)
{
    vfree(v);
    v->t = V_BOOL;
    v->b = b;
}

static bool truthy(const value *v)
{
    return !(v->t == V_NIL || (v->t == V_BOOL && !v->b));
}

static bool equal(const value *a, const value *b)
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
            if (!equal(&a->items[i], &b->items[i]))
                return false;
        return true;
    }
    return false;
}

/* Ruby's to_s (inspect for the elements of a list) appended to out. */
static int to_text(erb *e, const value *v, bool inspect, buf *out)
{
    char num[32];
    switch (v->t) {
    case V_NIL:
        return inspect ? buf_add(out, "nil", 3, e->err) : 0;
    case V_BOOL:
        return buf_add(out, v->b ? "true" : "false", v->b ? 4 : 5, e->err);
    case V_INT:
        snprintf(num, sizeof num, "%lld", v->i);
        return buf_add(out, num, strlen(num), e->err);
    case V_STR:
        if (!inspect)
            return buf_add(out, v->s, v->len, e->err);
        if (buf_add(out, "\"", 1, e->err) < 0)
            return -1;
        for (size_t i = 0; i < v->len; i++)
            if ((v->s[i] == '"' || v->s[i] == '\\') && buf_add(out, "\\", 1, e->err) < 0)
                return -1;
            else if (buf_add(out, v->s + i, 1, e->err) < 0)
                return -1;
        return buf_add(out, "\"", 1, e->err);
    case V_LIST:
        if (buf_add(out, "[", 1, e->err) < 0)
            return -1;
        for (size_t i = 0; i < v->n; i++)
            if ((i > 0 && buf_add(out, ", ", 2, e->err) < 0) ||
                to_text(e, &v->items[i], true, out) < 0)
                return -1;
        return buf_add(out, "]", 1, e->err);
    }
    return 0;
}

/* Ruby's String#to_i: leading blanks, a sign, digits (underscores between
 * them); anything else ends it, and no digits give 0. */
static long long string_to_i(const char *s, size_t len)
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
static int strict_integer(erb *e, const value *v, long long *out)
{
    if (sq__ruby_integer(v->s, v->len, out) == 0)
        return 0;
    char q[80];
    sq__quote(v->s, v->len, q, sizeof q);
    return ruby_raise(e, "Integer(%s): invalid value for Integer() (Ruby raises ArgumentError)", q);
}

/* ---- the parser -------------------------------------------------------------- */

static void skip_space(erb *e)
{
    while (e->p < e->end && (*e->p == ' ' || *e->p == '\t'))
        e->p++;
}

static bool ident_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '?' || c == '!';
}

static bool eat(erb *e, const char *word)
{
    skip_space(e);
    size_t n = strlen(word);
    if ((size_t)(e->end - e->p) < n || memcmp(e->p, word, n) != 0)
        return false;
    /* a name must end where the word does: `.to_i` is not `.to_int` */
    if (ident_char(word[n - 1]) && e->p + n < e->end && ident_char(e->p[n]) && word[n - 1] != '?')
        return false;
    e->p += n;
    return true;
}

static bool at(erb *e, char c)
{
    skip_space(e);
    return e->p < e->end && *e->p == c;
}

static int parse_expr(erb *e, value *v);

/* 'text' (only \\ and \' escaped) or "text" with \\ \" \n \t escapes and #{expr}. */
static int parse_string(erb *e, value *v)
{
    skip_space(e);
    if (e->p >= e->end || (*e->p != '\'' && *e->p != '"'))
        return unsupported(e);
    char quote = *e->p++;
    buf b = {0};
    int rc = 0;
    while (rc == 0 && e->p < e->end && *e->p != quote) {
        char ch = *e->p++;
        if (ch == '\\' && e->p < e->end) {
            char next = *e->p++;
            if (next == quote || next == '\\')
                ch = next;
            else if (quote == '"' && next == 'n')
                ch = '\n';
            else if (quote == '"' && next == 't')
                ch = '\t';
            else if (quote == '\'')
                rc = buf_add(&b, "\\", 1, e->err), ch = next;
            else
                rc = unsupported(e);
        } else if (quote == '"' && ch == '#' && e->p < e->end && *e->p == '{') {
            e->p++;
            value inner = {0};
            if (parse_expr(e, &inner) < 0 || !eat(e, "}") || to_text(e, &inner, false, &b) < 0)
                rc = e->status == E_OK ? unsupported(e) : -1;
            vfree(&inner);
            continue;
        }
        if (rc == 0)
            rc = buf_add(&b, &ch, 1, e->err);
        if (b.len > MAX_TEXT)
            rc = unsupported(e);
    }
    if (rc == 0 && e->p >= e->end)
        rc = unsupported(e);
    if (rc == 0) {
        e->p++;
        rc = set_str(e, v, b.data ? b.data : "", b.len);
    }
    free(b.data);
    return rc;
}

static int parse_integer(erb *e, long long *out)
{
    skip_space(e);
    const char *start = e->p;
    if (e->p < e->end && *e->p == '-')
        e->p++;
    const char *digits = e->p;
    while (e->p < e->end && ((*e->p >= '0' && *e->p <= '9') || (*e->p == '_' && e->p > digits)))
        e->p++;
    if (e->p == digits || e->p - start > 18)
        return unsupported(e);
    *out = string_to_i(start, (size_t)(e->p - start));
    return 0;
}

static bool valid_env_name(const char *s)
{
    static const char ok[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_";
    return s[0] != '\0' && (s[0] < '0' || s[0] > '9') && strspn(s, ok) == strlen(s);
}

static int env_name(erb *e, value *name)
{
    if (parse_string(e, name) < 0)
        return -1;
    if (!valid_env_name(name->s))
        return unsupported(e);
    return 0;
}

static int lookup_env(erb *e, const char *name, value *v)
{
    const char *s = e->getenv_fn(name);
    vfree(v);
    if (s == NULL)
        return 0;
    return set_str(e, v, s, strlen(s));
}

/* A block's `|name|`, which the block's expression cannot use (an unknown
 * identifier is a form squire does not evaluate). */
static int block_param(erb *e)
{
    if (!eat(e, "|"))
        return 0;
    skip_space(e);
    const char *start = e->p;
    while (e->p < e->end && ident_char(*e->p))
        e->p++;
    return e->p > start && eat(e, "|") ? 0 : unsupported(e);
}

/* ENV.fetch('X' [, default]) [{ [|key|] default }]: the default argument is
 * evaluated, the block only when the variable is unset. */
static int parse_fetch(erb *e, value *v)
{
    value name = {0}, def = {0};
    bool has_default = false;
    int rc = env_name(e, &name);
    if (rc == 0 && eat(e, ",")) {
        rc = parse_expr(e, &def);
        has_default = true;
    }
    if (rc == 0 && !eat(e, ")"))
        rc = unsupported(e);
    if (rc == 0)
        rc = lookup_env(e, name.s, v);
    if (rc == 0 && eat(e, "{")) {
        vfree(&def);
        int dead = v->t != V_NIL;
        e->dead += dead;
        rc = block_param(e);
        if (rc == 0)
            rc = parse_expr(e, &def);
        e->dead -= dead;
        if (rc == 0 && !eat(e, "}"))
            rc = unsupported(e);
        has_default = true;
    }
    if (rc == 0 && v->t == V_NIL) {
        if (!has_default)
            rc = ruby_raise(e,
                            "ENV.fetch('%s'): the variable is not set and has no default "
                            "(Ruby raises KeyError); set it or give a default",
                            name.s);
        else
            *v = def, memset(&def, 0, sizeof def);
    }
    vfree(&name);
    vfree(&def);
    return rc;
}

/* Random.rand(a..b), (a...b) or (n): Kernel#rand likewise. */
static int parse_rand(erb *e, value *v)
{
    long long lo = 0, hi = 0;
    if (!eat(e, "(") || parse_integer(e, &lo) < 0)
        return unsupported(e);
    bool exclusive = false;
    if (eat(e, "...")) {
        exclusive = true;
    } else if (!eat(e, "..")) {
        hi = lo, lo = 0, exclusive = true; /* rand(n): 0...n */
        if (hi <= 0)
            return unsupported(e); /* rand(0) is a Float */
        goto close;
    }
    if (parse_integer(e, &hi) < 0)
        return -1;
close:
    if (!eat(e, ")"))
        return unsupported(e);
    if (exclusive)
        hi--;
    if (hi < lo) {
        vfree(v); /* an empty range: rand gives nil */
        return 0;
    }
    e->rng ^= e->rng << 13, e->rng ^= e->rng >> 7, e->rng ^= e->rng << 17;
    set_int(v, lo + (long long)(e->rng % (unsigned long long)(hi - lo + 1)));
    return 0;
}

/* A new nil item at the end of list v, or NULL with the error set. */
static value *list_push(erb *e, value *v)
{
    if (v->n >= 256) {
        unsupported(e);
        return NULL;
    }
    value *grown = realloc(v->items, (v->n + 1) * sizeof *grown);
    if (grown == NULL) {
        out_of_memory(e);
        return NULL;
    }
    v->items = grown;
    memset(&v->items[v->n], 0, sizeof *v->items);
    return &v->items[v->n++];
}

static int parse_list(erb *e, value *v)
{
    vfree(v);
    v->t = V_LIST;
    if (eat(e, "]"))
        return 0;
    do {
        value *item = list_push(e, v);
        if (item == NULL || parse_expr(e, item) < 0)
            return -1;
    } while (eat(e, ","));
    return eat(e, "]") ? 0 : unsupported(e);
}

/* %w[a b] (or %w(...), %w{...}, %w<...>): a list of words. Escapes and
 * nested brackets are not evaluated. */
static int parse_words(erb *e, value *v)
{
    static const char opens[] = "[({<", closes[] = "])}>";
    const char *o = e->p < e->end && *e->p != '\0' ? strchr(opens, *e->p) : NULL;
    if (o == NULL)
        return unsupported(e);
    char open = *o, close = closes[o - opens];
    e->p++;
    vfree(v);
    v->t = V_LIST;
    for (;;) {
        skip_space(e);
        if (e->p < e->end && *e->p == close) {
            e->p++;
            return 0;
        }
        const char *word = e->p;
        while (e->p < e->end && *e->p != ' ' && *e->p != '\t' && *e->p != close && *e->p != open &&
               *e->p != '\\')
            e->p++;
        if (e->p >= e->end || *e->p == open || *e->p == '\\')
            return unsupported(e);
        value *item = list_push(e, v);
        if (item == NULL || set_str(e, item, word, (size_t)(e->p - word)) < 0)
            return -1;
    }
}

static int parse_primary(erb *e, value *v)
{
    value name = {0};
    if (eat(e, "(")) {
        if (parse_expr(e, v) < 0)
            return -1;
        return eat(e, ")") ? 0 : unsupported(e);
    }
    if (eat(e, "["))
        return parse_list(e, v);
    if (eat(e, "%w"))
        return parse_words(e, v);
    if (eat(e, "ENV")) {
        if (eat(e, ".fetch") && eat(e, "("))
            return parse_fetch(e, v);
        if (!eat(e, "["))
            return unsupported(e);
        int rc = env_name(e, &name);
        if (rc == 0)
            rc = eat(e, "]") ? lookup_env(e, name.s, v) : unsupported(e);
        vfree(&name);
        return rc;
    }
    if (eat(e, "Random.rand") || eat(e, "rand"))
        return parse_rand(e, v);
    if (eat(e, "Integer")) {
        if (!eat(e, "(") || parse_expr(e, v) < 0)
            return unsupported(e);
        if (!eat(e, ")"))
            return unsupported(e);
        long long i = v->i;
        if (v->t == V_STR && strict_integer(e, v, &i) < 0)
            return -1;
        if (v->t != V_STR && v->t != V_INT)
            return ruby_raise(e,
                              "Integer(%s): can't convert it into Integer (Ruby raises TypeError)",
                              v->t == V_NIL ? "nil" : "a non-number");
        set_int(v, i);
        return 0;
    }
    if (eat(e, "nil")) {
        vfree(v);
        return 0;
    }
    if (eat(e, "true") || eat(e, "false")) {
        set_bool(v, e->p[-1] == 'e' && e->p[-2] == 'u');
        return 0;
    }
    if (at(e, '\'') || at(e, '"'))
        return parse_string(e, v);
    long long i;
    if (parse_integer(e, &i) < 0)
        return -1;
    set_int(v, i);
    return 0;
}

/* String#split with no argument or a literal separator: " " (or none)
 * splits on runs of blanks, ignoring them at the ends; trailing empty
 * fields are dropped, as in Ruby. */
static int split_string(erb *e, value *v, const value *sep)
{
    value list = {.t = V_LIST};
    const char *s = v->s, *end = v->s + v->len;
    bool awk = sep == NULL || (sep->len == 1 && sep->s[0] == ' ');
    const char *blanks = " \t\n\v\f\r";
    while (awk && s < end && strchr(blanks, *s) != NULL && *s != '\0')
        s++;
    while (s < end) {
        const char *stop = s;
        size_t skip = 0;
        if (awk) {
            while (stop < end && (*stop == '\0' || strchr(blanks, *stop) == NULL))
                stop++;
            for (const char *b = stop; b < end && *b != '\0' && strchr(blanks, *b); b++)
                skip++;
        } else {
            const char *hit = memmem(s, (size_t)(end - s), sep->s, sep->len);
            stop = hit != NULL ? hit : end;
            skip = hit != NULL ? sep->len : 0;
        }
        value *item = list_push(e, &list);
        if (item == NULL || set_str(e, item, s, (size_t)(stop - s)) < 0) {
            vfree(&list);
            return -1;
        }
        s = stop + skip;
        if (!awk && skip > 0 && s == end) /* "a," : a trailing empty field */
            break;
    }
    while (list.n > 0 && list.items[list.n - 1].len == 0)
        vfree(&list.items[--list.n]);
    vfree(v);
    *v = list;
    return 0;
}

/* One method call on v: 1 when `name` is one squire knows and it was
 * applied, 0 when it is not one of them, -1 on an error. */
static int call_method(erb *e, value *v)
{
    if (eat(e, "to_i")) {
        if (v->t == V_STR)
            set_int(v, string_to_i(v->s, v->len));
        else if (v->t == V_NIL)
            set_int(v, 0);
        else if (v->t != V_INT &&
                 ruby_raise(e, "%s.to_i: undefined method (Ruby raises NoMethodError)",
                            v->t == V_BOOL ? (v->b ? "true" : "false") : "a list") < 0)
            return -1;
    } else if (eat(e, "to_s")) {
        buf b = {0};
        int rc = to_text(e, v, false, &b) < 0 ? -1 : set_str(e, v, b.data ? b.data : "", b.len);
        free(b.data);
        if (rc < 0)
            return -1;
    } else if (eat(e, "nil?")) {
        set_bool(v, v->t == V_NIL);
    } else if (eat(e, "empty?") || eat(e, "strip")) {
        bool empty = e->p[-1] == '?';
        if (v->t != V_STR && !(empty && v->t == V_LIST))
            return ruby_raise(e, "%s.%s: undefined method (Ruby raises NoMethodError)",
                              v->t == V_NIL ? "nil" : "the value", empty ? "empty?" : "strip") < 0
                       ? -1
                       : 1;
        if (empty) {
            set_bool(v, v->t == V_STR ? v->len == 0 : v->n == 0);
        } else {
            size_t a = 0, b = v->len;
            while (a < b && strchr(" \t\n\v\f\r", v->s[a]) != NULL)
                a++;
            while (b > a && strchr(" \t\n\v\f\r", v->s[b - 1]) != NULL)
                b--;
            value t = {0};
            if (set_str(e, &t, v->s + a, b - a) < 0)
                return -1;
            vfree(v);
            *v = t;
        }
    } else if (eat(e, "split")) {
        value sep = {0};
        bool arg = eat(e, "(");
        if (arg && (parse_expr(e, &sep) < 0 || !eat(e, ")"))) {
            vfree(&sep);
            return unsupported(e);
        }
        if (arg && (sep.t != V_STR || sep.len == 0)) { /* a regexp, nil or "": not evaluated */
            vfree(&sep);
            return unsupported(e);
        }
        int rc = 0;
        if (v->t == V_STR)
            rc = split_string(e, v, arg ? &sep : NULL);
        else if (ruby_raise(e, "%s.split: undefined method (Ruby raises NoMethodError)",
                            v->t == V_NIL ? "nil" : "the value") < 0)
            rc = -1;
        vfree(&sep);
        if (rc < 0)
            return -1;
    } else if (eat(e, "include?")) {
        value arg = {0};
        bool paren = eat(e, "(");
        if (!paren || parse_expr(e, &arg) < 0 || !eat(e, ")")) {
            vfree(&arg);
            return unsupported(e);
        }
        bool found = false;
        if (v->t == V_LIST) {
            for (size_t i = 0; i < v->n && !found; i++)
                found = equal(&v->items[i], &arg);
        } else if (v->t == V_STR && arg.t == V_STR) {
            found = memmem(v->s, v->len, arg.s, arg.len) != NULL;
        } else if (ruby_raise(e, "%s.include?: not a list or a string (Ruby raises an error)",
                              v->t == V_NIL ? "nil" : "the value") < 0) {
            vfree(&arg);
            return -1;
        }
        vfree(&arg);
        set_bool(v, found);
    } else {
        return 0;
    }
    return 1;
}

/* primary {'.' method | '&.' method}: `x&.m` is nil when x is nil (only
 * that call is skipped: `nil&.to_i.to_s` is "", as in Ruby). */
static int parse_postfix(erb *e, value *v)
{
    if (parse_primary(e, v) < 0)
        return -1;
    for (;;) {
        const char *mark = e->p;
        bool safe = eat(e, "&.");
        if (!safe && !eat(e, "."))
            return 0;
        value skipped = {0};
        bool skip = safe && v->t == V_NIL;
        e->dead += skip;
        int rc = call_method(e, skip ? &skipped : v);
        e->dead -= skip;
        vfree(&skipped);
        if (rc <= 0) {
            if (rc == 0)
                e->p = mark;
            return rc;
        }
    }
}

static int parse_unary(erb *e, value *v)
{
    skip_space(e);
    if (e->p < e->end && *e->p == '!' && !(e->p + 1 < e->end && e->p[1] == '=')) {
        e->p++;
        if (++e->depth > MAX_NESTING) /* "!!!!..." must not exhaust the stack */
            return unsupported(e);
        int rc = parse_unary(e, v);
        e->depth--;
        if (rc < 0)
            return -1;
        set_bool(v, !truthy(v));
        return 0;
    }
    return parse_postfix(e, v);
}

static int parse_equal(erb *e, value *v)
{
    if (parse_unary(e, v) < 0)
        return -1;
    bool eq = eat(e, "==");
    if (!eq && !eat(e, "!="))
        return 0;
    value rhs = {0};
    if (parse_unary(e, &rhs) < 0) {
        vfree(&rhs);
        return -1;
    }
    bool same = equal(v, &rhs);
    vfree(&rhs);
    set_bool(v, eq ? same : !same);
    return 0;
}

/* a && b, a || b: Ruby's short-circuit values (the operand, not a bool). */
static int parse_logic(erb *e, value *v, bool is_or)
{
    if ((is_or ? parse_logic(e, v, false) : parse_equal(e, v)) < 0)
        return -1;
    while (eat(e, is_or ? "||" : "&&")) {
        value rhs = {0};
        int dead = truthy(v) == is_or; /* decided: Ruby does not run the rest */
        e->dead += dead;
        int rc = is_or ? parse_logic(e, &rhs, false) : parse_equal(e, &rhs);
        e->dead -= dead;
        if (rc < 0) {
            vfree(&rhs);
            return -1;
        }
        if (truthy(v) == !is_or) {
            vfree(v);
            *v = rhs;
        } else {
            vfree(&rhs);
        }
    }
    return 0;
}

static int parse_expr(erb *e, value *v)
{
    if (++e->depth > MAX_NESTING)
        return unsupported(e);
    int rc = parse_logic(e, v, true);
    if (rc == 0 && at(e, '?')) {
        e->p++;
        value yes = {0}, no = {0};
        bool t = truthy(v);
        e->dead += !t;
        rc = parse_expr(e, &yes);
        e->dead -= !t;
        if (rc == 0 && !eat(e, ":"))
            rc = unsupported(e);
        e->dead += t;
        if (rc == 0)
            rc = parse_expr(e, &no);
        e->dead -= t;
        if (rc == 0) {
            vfree(v);
            *v = t ? yes : no;
            memset(t ? &yes : &no, 0, sizeof yes);
        }
        vfree(&yes);
        vfree(&no);
    }
    e->depth--;
    return rc;
}

/* ---- tags ------------------------------------------------------------------ */

static unsigned long count_lines(const char *s, size_t n)
{
    unsigned long lines = 0;
    for (size_t i = 0; i < n; i++)
        lines += s[i] == '\n';
    return lines;
}

/* Record a tag squire does not evaluate and put its placeholder in out. */
static int defer(erb *e, const char *body, size_t n, buf *out)
{
    sq__erb_skips *s = e->skips;
    sq__erb_skipped *grown = realloc(s->v, (s->n + 1) * sizeof *grown);
    if (grown == NULL) {
        sq__error_set(e->err, SQ_ENOMEM, "out of memory");
        return -1;
    }
    s->v = grown;
    sq__erb_skipped *k = &s->v[s->n];
    k->line = e->line;
    while (n > 0 && (*body == ' ' || *body == '\t' || *body == '\n'))
        body++, n--;
    while (n > 0 && (body[n - 1] == ' ' || body[n - 1] == '\t' || body[n - 1] == '\n'))
        n--;
    size_t keep = n < sizeof k->form - 4 ? n : sizeof k->form - 4;
    for (size_t i = 0; i < keep; i++)
        k->form[i] = body[i] == '\n' || body[i] == '\t' || body[i] == '\r' ? ' ' : body[i];
    memcpy(k->form + keep, keep < n ? "..." : "", keep < n ? 4 : 1);
    char token[48];
    snprintf(token, sizeof token, SQ__ERB_TOKEN "%zu_", s->n++);
    return buf_add(out, token, strlen(token), e->err);
}

/* One tag: text[0..n) is "<%...%>" including the delimiters. */
static int expand_tag(erb *e, const char *tag, size_t n, buf *out)
{
    const char *body = tag + 2, *close = tag + n - 2;
    if (close > body && close[-1] == '-')
        close--;
    if (*body == '#') /* a comment: the caller keeps only its newlines */
        return 0;
    if (*body != '=') {
        char form[80];
        sq__quote(tag, n, form, sizeof form);
        char msg[300];
        snprintf(msg, sizeof msg,
                 "%s: a statement tag (<%% ... %%>) runs code and changes the file's shape; "
                 "squire evaluates only <%%= expression %%> tags: write the YAML out",
                 form);
        return fail(e, msg);
    }
    if (memchr(body, '\n', (size_t)(close - body)) != NULL)
        return defer(e, body + 1, (size_t)(close - body - 1), out);
    e->p = body + 1;
    e->end = close;
    e->status = E_OK;
    e->depth = 0;
    e->dead = 0;
    value v = {0};
    int rc = parse_expr(e, &v);
    skip_space(e);
    if (rc == 0 && e->p != e->end)
        rc = unsupported(e), e->status = E_UNSUPPORTED;
    buf text = {0};
    if (rc == 0 && to_text(e, &v, false, &text) < 0)
        rc = -1, e->status = E_RUBY;
    vfree(&v);
    if (rc == 0 && text.data != NULL &&
        (memchr(text.data, '\n', text.len) != NULL || memchr(text.data, '\r', text.len) != NULL))
        rc = fail(e, "the value of an ERB tag contains a newline");
    else if (rc == 0)
        rc = buf_add(out, text.data ? text.data : "", text.len, e->err);
    else if (e->status == E_UNSUPPORTED)
        rc = defer(e, body + 1, (size_t)(close - body - 1), out);
    else if (e->status == E_RUBY)
        rc = fail(e, e->ruby_error);
    free(text.data);
    return rc;
}

static int add_newlines(buf *out, unsigned long n, sq_error *err)
{
    for (; n > 0; n--)
        if (buf_add(out, "\n", 1, err) < 0)
            return -1;
    return 0;
}

static const char *find(const char *p, const char *end, const char *what)
{
    size_t n = strlen(what);
    for (; p + n <= end; p++)
        if (memcmp(p, what, n) == 0)
            return p;
    return NULL;
}

/* Text between tags. The newlines that `-%>` removed are put back after the
 * end of the line they joined, so that the lines after it keep their numbers. */
static int add_text(erb *e, buf *out, const char *s, size_t n, bool last)
{
    const char *nl = e->pending > 0 ? memchr(s, '\n', n) : NULL;
    if (nl == NULL)
        return buf_add(out, s, n, e->err) < 0 || (last && add_newlines(out, e->pending, e->err) < 0)
                   ? -1
                   : 0;
    size_t head = (size_t)(nl + 1 - s);
    if (buf_add(out, s, head, e->err) < 0 || add_newlines(out, e->pending, e->err) < 0)
        return -1;
    e->pending = 0;
    return buf_add(out, s + head, n - head, e->err);
}

static int expand(erb *e, const char *text, size_t len, buf *out)
{
    const char *p = text, *end = text + len;
    for (;;) {
        const char *open = find(p, end, "<%");
        if (open == NULL)
            return add_text(e, out, p, (size_t)(end - p), true);
        if (add_text(e, out, p, (size_t)(open - p), false) < 0)
            return -1;
        e->line += count_lines(p, (size_t)(open - p));
        if (open + 2 < end && open[2] == '%') { /* <%% is a literal <% */
            if (buf_add(out, "<%", 2, e->err) < 0)
                return -1;
            p = open + 3;
            continue;
        }
        const char *close = find(open + 2, end, "%>");
        if (close == NULL)
            return fail(e, "unterminated tag (no %>)");
        size_t n = (size_t)(close + 2 - open);
        unsigned long inner = count_lines(open, n);
        if (expand_tag(e, open, n, out) < 0 || add_newlines(out, inner, e->err) < 0)
            return -1;
        e->line += inner;
        p = close + 2;
        /* trim_mode "-", as Sidekiq's ERB: `-%>` eats the newline after it,
         * joining the next line to this one. */
        size_t eol = p < end && *p == '\n'                         ? 1
                     : p + 1 < end && p[0] == '\r' && p[1] == '\n' ? 2
                                                                   : 0;
        if (n >= 5 && close[-1] == '-' && eol > 0) {
            p += eol;
            e->line++;
            e->pending++;
        }
    }
}

int sq__erb_expand(const char *name, const char *text, size_t len, sq_getenv_fn getenv_fn,
                   char **out, size_t *outlen, sq__erb_skips *skips, sq_error *err)
{
    erb e = {.name = name, .line = 1, .getenv_fn = getenv_fn, .err = err, .skips = skips};
    e.rng = (uint64_t)time(NULL) * 0x9E3779B97F4A7C15ULL ^ (uint64_t)getpid() ^ (uintptr_t)&e;
    if (e.rng == 0)
        e.rng = 1;
    buf b = {0};
    if (buf_add(&b, "", 0, err) < 0 || expand(&e, text, len, &b) < 0) {
        free(b.data);
        return -1;
    }
    *out = b.data;
    *outlen = b.len;
    return 0;
}

const sq__erb_skipped *sq__erb_skip_in(const sq__erb_skips *skips, const char *text)
{
    const char *t = skips && skips->n ? strstr(text, SQ__ERB_TOKEN) : NULL;
    if (t == NULL)
        return NULL;
    size_t i = (size_t)strtoul(t + strlen(SQ__ERB_TOKEN), NULL, 10);
    return i < skips->n ? &skips->v[i] : NULL;
}
