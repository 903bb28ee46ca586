/*
 * config_erb.c: the ERB subset squire accepts in sidekiq.yml.
 *
 * Sidekiq runs the whole file through ERB, which is code execution from a
 * config file. squire evaluates no templates: it recognises only the ENV
 * lookups that real files use, as a fixed grammar, and refuses any other tag.
 *
 *   tag    := '<%=' expr '%>' | '<%#' anything '%>' | '<%%' (a literal "<%")
 *   expr   := value ['.to_i'] | '(' value ')' '.to_i'
 *   value  := lookup ['.to_i'] ['||' literal]
 *   lookup := ENV '[' string ']'
 *           | ENV '.fetch' '(' string [',' literal] ')' ['{' literal '}']
 *   literal:= 'single' | "double" | integer | nil
 *
 * Ruby's semantics: an unset ENV['X'] is nil, which prints as ""; a set but
 * empty variable is "" (not nil, so `|| default` does not apply); .to_i keeps
 * the leading integer ("12abc" -> 12, "" -> 0). `-%>` closes a tag too, but
 * the newline after it is kept so that line numbers stay true.
 */
#include "config_internal.h"

#include <stdlib.h>
#include <string.h>

typedef struct erb {
    const char *name; /* file name for messages */
    unsigned long line;
    sq_getenv_fn getenv_fn;
    sq_error *err;
    const char *p, *end; /* the tag body being parsed */
} erb;

typedef struct buf {
    char *data;
    size_t len, cap;
} buf;

/* An expression's value: is_nil, or text (borrowed or in own[]). */
typedef struct value {
    bool is_nil;
    const char *text;
    size_t len;
    char own[64];
} value;

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

static int unsupported(erb *e)
{
    return fail(e, "only ENV lookups are supported in ERB tags (<%= ENV['X'] %>, "
                   "<%= ENV.fetch('X', default) %>, <%= ENV['X'] || default %>)");
}

static void skip_space(erb *e)
{
    while (e->p < e->end && (*e->p == ' ' || *e->p == '\t'))
        e->p++;
}

static bool eat(erb *e, const char *word)
{
    skip_space(e);
    size_t n = strlen(word);
    if ((size_t)(e->end - e->p) < n || memcmp(e->p, word, n) != 0)
        return false;
    e->p += n;
    return true;
}

/* 'text' or "text" (only \\ and the quote may be escaped; no #{}). */
static int parse_string(erb *e, value *v)
{
    skip_space(e);
    if (e->p >= e->end || (*e->p != '\'' && *e->p != '"'))
        return -1;
    char quote = *e->p++;
    size_t n = 0;
    while (e->p < e->end && *e->p != quote) {
        char ch = *e->p++;
        if (ch == '\\' && e->p < e->end && (*e->p == quote || *e->p == '\\'))
            ch = *e->p++;
        else if (ch == '\\' || (quote == '"' && ch == '#' && e->p < e->end && *e->p == '{'))
            return -1;
        if (n + 1 >= sizeof v->own)
            return -1;
        v->own[n++] = ch;
    }
    if (e->p >= e->end)
        return -1;
    e->p++;
    v->own[n] = '\0';
    v->is_nil = false;
    v->text = v->own;
    v->len = n;
    return 0;
}

static int parse_literal(erb *e, value *v)
{
    skip_space(e);
    if (eat(e, "nil")) {
        v->is_nil = true;
        return 0;
    }
    if (parse_string(e, v) == 0)
        return 0;
    const char *start = e->p;
    if (e->p < e->end && *e->p == '-')
        e->p++;
    while (e->p < e->end && *e->p >= '0' && *e->p <= '9')
        e->p++;
    size_t n = (size_t)(e->p - start);
    if (n == 0 || (n == 1 && *start == '-') || n >= sizeof v->own)
        return -1;
    memcpy(v->own, start, n);
    v->own[n] = '\0';
    v->is_nil = false;
    v->text = v->own;
    v->len = n;
    return 0;
}

static bool valid_env_name(const char *s)
{
    static const char ok[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_";
    return s[0] != '\0' && (s[0] < '0' || s[0] > '9') && strspn(s, ok) == strlen(s);
}

static void lookup_env(erb *e, const char *name, value *v)
{
    const char *s = e->getenv_fn(name);
    v->is_nil = s == NULL;
    v->text = s;
    v->len = s == NULL ? 0 : strlen(s);
}

static int parse_fetch(erb *e, const char *name, value *v)
{
    value def = {.is_nil = true};
    bool has_default = false;
    if (eat(e, ",")) {
        if (parse_literal(e, &def) < 0)
            return unsupported(e);
        has_default = true;
    }
    if (!eat(e, ")"))
        return unsupported(e);
    if (eat(e, "{")) {
        if (has_default || parse_literal(e, &def) < 0 || !eat(e, "}"))
            return unsupported(e);
        has_default = true;
    }
    lookup_env(e, name, v);
    if (!v->is_nil)
        return 0;
    if (!has_default) {
        char msg[200];
        snprintf(msg, sizeof msg, "ENV.fetch('%s'): %s is not set and has no default", name, name);
        return fail(e, msg);
    }
    *v = def;
    if (!v->is_nil)
        v->text = v->own;
    return 0;
}

static int parse_lookup(erb *e, value *v)
{
    value name;
    bool fetch;
    if (!eat(e, "ENV"))
        return unsupported(e);
    if (eat(e, "["))
        fetch = false;
    else if (eat(e, ".fetch") && eat(e, "("))
        fetch = true;
    else
        return unsupported(e);
    if (parse_string(e, &name) < 0 || !valid_env_name(name.own))
        return unsupported(e);
    if (fetch)
        return parse_fetch(e, name.own, v);
    if (!eat(e, "]"))
        return unsupported(e);
    lookup_env(e, name.own, v);
    return 0;
}

/* Ruby's String#to_i: leading blanks, a sign, digits; anything else gives 0. */
static void to_i(value *v)
{
    const char *s = v->is_nil ? "" : v->text;
    size_t i = 0, n = 0;
    while (i < v->len && (s[i] == ' ' || s[i] == '\t'))
        i++;
    bool neg = i < v->len && s[i] == '-';
    if (i < v->len && (s[i] == '-' || s[i] == '+'))
        i++;
    while (i < v->len && s[i] == '0' && i + 1 < v->len && s[i + 1] >= '0' && s[i + 1] <= '9')
        i++;
    char out[sizeof v->own];
    if (neg)
        out[n++] = '-';
    size_t digits = 0;
    while (i < v->len && s[i] >= '0' && s[i] <= '9' && n + 1 < sizeof out) {
        out[n++] = s[i++];
        digits++;
    }
    if (digits == 0 || (digits == 1 && out[n - 1] == '0')) { /* "", "-0" */
        out[0] = '0';
        n = 1;
    }
    memcpy(v->own, out, n);
    v->own[n] = '\0';
    v->is_nil = false;
    v->text = v->own;
    v->len = n;
}

static int parse_value(erb *e, value *v)
{
    if (parse_lookup(e, v) < 0)
        return -1;
    if (eat(e, ".to_i"))
        to_i(v);
    if (eat(e, "||")) {
        value def;
        if (parse_literal(e, &def) < 0)
            return unsupported(e);
        if (v->is_nil) {
            *v = def;
            if (!v->is_nil)
                v->text = v->own;
        }
    }
    return 0;
}

static int parse_expr(erb *e, value *v)
{
    if (eat(e, "(")) {
        if (parse_value(e, v) < 0)
            return -1;
        if (!eat(e, ")") || !eat(e, ".to_i"))
            return unsupported(e);
        to_i(v);
    } else if (parse_value(e, v) < 0) {
        return -1;
    } else if (eat(e, ".to_i")) {
        to_i(v);
    }
    skip_space(e);
    return e->p == e->end ? 0 : unsupported(e);
}

static unsigned long count_lines(const char *s, size_t n)
{
    unsigned long lines = 0;
    for (size_t i = 0; i < n; i++)
        lines += s[i] == '\n';
    return lines;
}

/* One tag: text[0..n) is "<%...%>" including the delimiters. */
static int expand_tag(erb *e, const char *tag, size_t n, buf *out)
{
    const char *body = tag + 2, *close = tag + n - 2;
    if (close > body && close[-1] == '-')
        close--;
    if (*body == '#') /* a comment: the caller keeps only its newlines */
        return 0;
    if (*body != '=' || memchr(body, '\n', (size_t)(close - body)) != NULL)
        return unsupported(e);
    e->p = body + 1;
    e->end = close;
    value v;
    if (parse_expr(e, &v) < 0)
        return -1;
    if (v.is_nil)
        return 0;
    if (memchr(v.text, '\n', v.len) != NULL || memchr(v.text, '\r', v.len) != NULL)
        return fail(e, "the value of an ENV lookup contains a newline");
    return buf_add(out, v.text, v.len, e->err);
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

static int expand(erb *e, const char *text, size_t len, buf *out)
{
    const char *p = text, *end = text + len;
    for (;;) {
        const char *open = find(p, end, "<%");
        if (open == NULL)
            return buf_add(out, p, (size_t)(end - p), e->err);
        if (buf_add(out, p, (size_t)(open - p), e->err) < 0)
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
    }
}

int sq__erb_expand(const char *name, const char *text, size_t len, sq_getenv_fn getenv_fn,
                   char **out, size_t *outlen, sq_error *err)
{
    erb e = {.name = name, .line = 1, .getenv_fn = getenv_fn, .err = err};
    buf b = {0};
    if (buf_add(&b, "", 0, err) < 0 || expand(&e, text, len, &b) < 0) {
        free(b.data);
        return -1;
    }
    *out = b.data;
    *outlen = b.len;
    return 0;
}
