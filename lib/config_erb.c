/*
 * config_erb.c: the ERB subset squire evaluates in sidekiq.yml: the tags.
 *
 * Sidekiq runs the whole file through ERB, which is code execution from a
 * config file. squire runs no code: it evaluates the side-effect-free
 * expressions real files use, with Ruby's semantics, by a fixed grammar
 * (erb_eval.c). This file finds the tags:
 *
 *   tag     := '<%=' expr '%>' | '<%#' anything '%>' | '<%%' (a literal "<%")
 *
 * `-%>` closes a tag and, as in Sidekiq's ERB (trim_mode "-"), removes the
 * newline right after it, joining the next line to the tag's; that newline
 * is put back at the end of the joined line, so later lines keep their
 * numbers.
 *
 * What Ruby would raise on is an error here too: Sidekiq fails on such a
 * file. A form erb_eval.c does not evaluate is not evaluated: the tag is
 * replaced by a placeholder and recorded, and the YAML loader refuses it
 * where squire needs the value (naming file:line and the form) and warns
 * where it does not (a sidekiq-scheduler or sidekiq-cron section, say).
 * `<% %>` statement tags change the file's shape and are always refused.
 */
#include "erb_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int fail(erb *e, const char *what)
{
    sq__error_set(e->err, SQ_ECONFIG, "%s:%lu: ERB: %s", e->name, e->line, what);
    return -1;
}

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
    return sq__erb_buf_add(out, token, strlen(token), e->err);
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
    buf text = {0};
    int rc = sq__erb_eval(e, body + 1, close, &text);
    if (rc == 0 && text.data != NULL &&
        (memchr(text.data, '\n', text.len) != NULL || memchr(text.data, '\r', text.len) != NULL))
        rc = fail(e, "the value of an ERB tag contains a newline");
    else if (rc == 0)
        rc = sq__erb_buf_add(out, text.data ? text.data : "", text.len, e->err);
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
        if (sq__erb_buf_add(out, "\n", 1, err) < 0)
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
        return sq__erb_buf_add(out, s, n, e->err) < 0 ||
                       (last && add_newlines(out, e->pending, e->err) < 0)
                   ? -1
                   : 0;
    size_t head = (size_t)(nl + 1 - s);
    if (sq__erb_buf_add(out, s, head, e->err) < 0 || add_newlines(out, e->pending, e->err) < 0)
        return -1;
    e->pending = 0;
    return sq__erb_buf_add(out, s + head, n - head, e->err);
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
            if (sq__erb_buf_add(out, "<%", 2, e->err) < 0)
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
    if (sq__erb_buf_add(&b, "", 0, err) < 0 || expand(&e, text, len, &b) < 0) {
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
