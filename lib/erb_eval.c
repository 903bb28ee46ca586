/*
 * erb_eval.c: the expression inside an ERB tag of sidekiq.yml, evaluated by
 * a fixed grammar with Ruby's semantics; nothing is ever run (config_erb.c
 * reads the tags and says why squire runs no code):
 *
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
 *
 * What Ruby would raise on (ENV.fetch of an unset variable without a
 * default, Integer("x"), true.to_i) is an error here too: Sidekiq fails on
 * such a file. Any other form (method calls, arithmetic, statements inside
 * an expression) stops with E_UNSUPPORTED, and the tag is deferred.
 */
#include "erb_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
        return sq__erb_unsupported(e);
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
                rc = sq__erb_buf_add(&b, "\\", 1, e->err), ch = next;
            else
                rc = sq__erb_unsupported(e);
        } else if (quote == '"' && ch == '#' && e->p < e->end && *e->p == '{') {
            e->p++;
            value inner = {0};
            if (parse_expr(e, &inner) < 0 || !eat(e, "}") ||
                sq__erb_to_text(e, &inner, false, &b) < 0)
                rc = e->status == E_OK ? sq__erb_unsupported(e) : -1;
            sq__erb_vfree(&inner);
            continue;
        }
        if (rc == 0)
            rc = sq__erb_buf_add(&b, &ch, 1, e->err);
        if (b.len > MAX_TEXT)
            rc = sq__erb_unsupported(e);
    }
    if (rc == 0 && e->p >= e->end)
        rc = sq__erb_unsupported(e);
    if (rc == 0) {
        e->p++;
        rc = sq__erb_set_str(e, v, b.data ? b.data : "", b.len);
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
        return sq__erb_unsupported(e);
    *out = sq__erb_string_to_i(start, (size_t)(e->p - start));
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
        return sq__erb_unsupported(e);
    return 0;
}

static int lookup_env(erb *e, const char *name, value *v)
{
    const char *s = e->getenv_fn(name);
    sq__erb_vfree(v);
    if (s == NULL)
        return 0;
    return sq__erb_set_str(e, v, s, strlen(s));
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
    return e->p > start && eat(e, "|") ? 0 : sq__erb_unsupported(e);
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
        rc = sq__erb_unsupported(e);
    if (rc == 0)
        rc = lookup_env(e, name.s, v);
    if (rc == 0 && eat(e, "{")) {
        sq__erb_vfree(&def);
        int dead = v->t != V_NIL;
        e->dead += dead;
        rc = block_param(e);
        if (rc == 0)
            rc = parse_expr(e, &def);
        e->dead -= dead;
        if (rc == 0 && !eat(e, "}"))
            rc = sq__erb_unsupported(e);
        has_default = true;
    }
    if (rc == 0 && v->t == V_NIL) {
        if (!has_default)
            rc = sq__erb_raise(e,
                               "ENV.fetch('%s'): the variable is not set and has no default "
                               "(Ruby raises KeyError); set it or give a default",
                               name.s);
        else
            *v = def, memset(&def, 0, sizeof def);
    }
    sq__erb_vfree(&name);
    sq__erb_vfree(&def);
    return rc;
}

/* Random.rand(a..b), (a...b) or (n): Kernel#rand likewise. */
static int parse_rand(erb *e, value *v)
{
    long long lo = 0, hi = 0;
    if (!eat(e, "(") || parse_integer(e, &lo) < 0)
        return sq__erb_unsupported(e);
    bool exclusive = false;
    if (eat(e, "...")) {
        exclusive = true;
    } else if (!eat(e, "..")) {
        hi = lo, lo = 0, exclusive = true; /* rand(n): 0...n */
        if (hi <= 0)
            return sq__erb_unsupported(e); /* rand(0) is a Float */
        goto close;
    }
    if (parse_integer(e, &hi) < 0)
        return -1;
close:
    if (!eat(e, ")"))
        return sq__erb_unsupported(e);
    if (exclusive)
        hi--;
    if (hi < lo) {
        sq__erb_vfree(v); /* an empty range: rand gives nil */
        return 0;
    }
    e->rng ^= e->rng << 13, e->rng ^= e->rng >> 7, e->rng ^= e->rng << 17;
    sq__erb_set_int(v, lo + (long long)(e->rng % (unsigned long long)(hi - lo + 1)));
    return 0;
}

/* A new nil item at the end of list v, or NULL with the error set. */
static value *list_push(erb *e, value *v)
{
    if (v->n >= 256) {
        sq__erb_unsupported(e);
        return NULL;
    }
    value *grown = realloc(v->items, (v->n + 1) * sizeof *grown);
    if (grown == NULL) {
        sq__erb_oom(e);
        return NULL;
    }
    v->items = grown;
    memset(&v->items[v->n], 0, sizeof *v->items);
    return &v->items[v->n++];
}

static int parse_list(erb *e, value *v)
{
    sq__erb_vfree(v);
    v->t = V_LIST;
    if (eat(e, "]"))
        return 0;
    do {
        value *item = list_push(e, v);
        if (item == NULL || parse_expr(e, item) < 0)
            return -1;
    } while (eat(e, ","));
    return eat(e, "]") ? 0 : sq__erb_unsupported(e);
}

/* %w[a b] (or %w(...), %w{...}, %w<...>): a list of words. Escapes and
 * nested brackets are not evaluated. */
static int parse_words(erb *e, value *v)
{
    static const char opens[] = "[({<", closes[] = "])}>";
    const char *o = e->p < e->end && *e->p != '\0' ? strchr(opens, *e->p) : NULL;
    if (o == NULL)
        return sq__erb_unsupported(e);
    char open = *o, close = closes[o - opens];
    e->p++;
    sq__erb_vfree(v);
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
            return sq__erb_unsupported(e);
        value *item = list_push(e, v);
        if (item == NULL || sq__erb_set_str(e, item, word, (size_t)(e->p - word)) < 0)
            return -1;
    }
}

static int parse_primary(erb *e, value *v)
{
    value name = {0};
    if (eat(e, "(")) {
        if (parse_expr(e, v) < 0)
            return -1;
        return eat(e, ")") ? 0 : sq__erb_unsupported(e);
    }
    if (eat(e, "["))
        return parse_list(e, v);
    if (eat(e, "%w"))
        return parse_words(e, v);
    if (eat(e, "ENV")) {
        if (eat(e, ".fetch") && eat(e, "("))
            return parse_fetch(e, v);
        if (!eat(e, "["))
            return sq__erb_unsupported(e);
        int rc = env_name(e, &name);
        if (rc == 0)
            rc = eat(e, "]") ? lookup_env(e, name.s, v) : sq__erb_unsupported(e);
        sq__erb_vfree(&name);
        return rc;
    }
    if (eat(e, "Random.rand") || eat(e, "rand"))
        return parse_rand(e, v);
    if (eat(e, "Integer")) {
        if (!eat(e, "(") || parse_expr(e, v) < 0)
            return sq__erb_unsupported(e);
        if (!eat(e, ")"))
            return sq__erb_unsupported(e);
        long long i = v->i;
        if (v->t == V_STR && sq__erb_strict_integer(e, v, &i) < 0)
            return -1;
        if (v->t != V_STR && v->t != V_INT)
            return sq__erb_raise(
                e, "Integer(%s): can't convert it into Integer (Ruby raises TypeError)",
                v->t == V_NIL ? "nil" : "a non-number");
        sq__erb_set_int(v, i);
        return 0;
    }
    if (eat(e, "nil")) {
        sq__erb_vfree(v);
        return 0;
    }
    if (eat(e, "true") || eat(e, "false")) {
        sq__erb_set_bool(v, e->p[-1] == 'e' && e->p[-2] == 'u');
        return 0;
    }
    if (at(e, '\'') || at(e, '"'))
        return parse_string(e, v);
    long long i;
    if (parse_integer(e, &i) < 0)
        return -1;
    sq__erb_set_int(v, i);
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
        if (item == NULL || sq__erb_set_str(e, item, s, (size_t)(stop - s)) < 0) {
            sq__erb_vfree(&list);
            return -1;
        }
        s = stop + skip;
        if (!awk && skip > 0 && s == end) /* "a," : a trailing empty field */
            break;
    }
    while (list.n > 0 && list.items[list.n - 1].len == 0)
        sq__erb_vfree(&list.items[--list.n]);
    sq__erb_vfree(v);
    *v = list;
    return 0;
}

/* One method call on v: 1 when `name` is one squire knows and it was
 * applied, 0 when it is not one of them, -1 on an error. */
static int call_method(erb *e, value *v)
{
    if (eat(e, "to_i")) {
        if (v->t == V_STR)
            sq__erb_set_int(v, sq__erb_string_to_i(v->s, v->len));
        else if (v->t == V_NIL)
            sq__erb_set_int(v, 0);
        else if (v->t != V_INT &&
                 sq__erb_raise(e, "%s.to_i: undefined method (Ruby raises NoMethodError)",
                               v->t == V_BOOL ? (v->b ? "true" : "false") : "a list") < 0)
            return -1;
    } else if (eat(e, "to_s")) {
        buf b = {0};
        int rc = sq__erb_to_text(e, v, false, &b) < 0
                     ? -1
                     : sq__erb_set_str(e, v, b.data ? b.data : "", b.len);
        free(b.data);
        if (rc < 0)
            return -1;
    } else if (eat(e, "nil?")) {
        sq__erb_set_bool(v, v->t == V_NIL);
    } else if (eat(e, "empty?") || eat(e, "strip")) {
        bool empty = e->p[-1] == '?';
        if (v->t != V_STR && !(empty && v->t == V_LIST))
            return sq__erb_raise(e, "%s.%s: undefined method (Ruby raises NoMethodError)",
                                 v->t == V_NIL ? "nil" : "the value",
                                 empty ? "empty?" : "strip") < 0
                       ? -1
                       : 1;
        if (empty) {
            sq__erb_set_bool(v, v->t == V_STR ? v->len == 0 : v->n == 0);
        } else {
            size_t a = 0, b = v->len;
            while (a < b && strchr(" \t\n\v\f\r", v->s[a]) != NULL)
                a++;
            while (b > a && strchr(" \t\n\v\f\r", v->s[b - 1]) != NULL)
                b--;
            value t = {0};
            if (sq__erb_set_str(e, &t, v->s + a, b - a) < 0)
                return -1;
            sq__erb_vfree(v);
            *v = t;
        }
    } else if (eat(e, "split")) {
        value sep = {0};
        bool arg = eat(e, "(");
        if (arg && (parse_expr(e, &sep) < 0 || !eat(e, ")"))) {
            sq__erb_vfree(&sep);
            return sq__erb_unsupported(e);
        }
        if (arg && (sep.t != V_STR || sep.len == 0)) { /* a regexp, nil or "": not evaluated */
            sq__erb_vfree(&sep);
            return sq__erb_unsupported(e);
        }
        int rc = 0;
        if (v->t == V_STR)
            rc = split_string(e, v, arg ? &sep : NULL);
        else if (sq__erb_raise(e, "%s.split: undefined method (Ruby raises NoMethodError)",
                               v->t == V_NIL ? "nil" : "the value") < 0)
            rc = -1;
        sq__erb_vfree(&sep);
        if (rc < 0)
            return -1;
    } else if (eat(e, "include?")) {
        value arg = {0};
        bool paren = eat(e, "(");
        if (!paren || parse_expr(e, &arg) < 0 || !eat(e, ")")) {
            sq__erb_vfree(&arg);
            return sq__erb_unsupported(e);
        }
        bool found = false;
        if (v->t == V_LIST) {
            for (size_t i = 0; i < v->n && !found; i++)
                found = sq__erb_equal(&v->items[i], &arg);
        } else if (v->t == V_STR && arg.t == V_STR) {
            found = memmem(v->s, v->len, arg.s, arg.len) != NULL;
        } else if (sq__erb_raise(e, "%s.include?: not a list or a string (Ruby raises an error)",
                                 v->t == V_NIL ? "nil" : "the value") < 0) {
            sq__erb_vfree(&arg);
            return -1;
        }
        sq__erb_vfree(&arg);
        sq__erb_set_bool(v, found);
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
        sq__erb_vfree(&skipped);
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
            return sq__erb_unsupported(e);
        int rc = parse_unary(e, v);
        e->depth--;
        if (rc < 0)
            return -1;
        sq__erb_set_bool(v, !sq__erb_truthy(v));
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
        sq__erb_vfree(&rhs);
        return -1;
    }
    bool same = sq__erb_equal(v, &rhs);
    sq__erb_vfree(&rhs);
    sq__erb_set_bool(v, eq ? same : !same);
    return 0;
}

/* a && b, a || b: Ruby's short-circuit values (the operand, not a bool). */
static int parse_logic(erb *e, value *v, bool is_or)
{
    if ((is_or ? parse_logic(e, v, false) : parse_equal(e, v)) < 0)
        return -1;
    while (eat(e, is_or ? "||" : "&&")) {
        value rhs = {0};
        int dead = sq__erb_truthy(v) == is_or; /* decided: Ruby does not run the rest */
        e->dead += dead;
        int rc = is_or ? parse_logic(e, &rhs, false) : parse_equal(e, &rhs);
        e->dead -= dead;
        if (rc < 0) {
            sq__erb_vfree(&rhs);
            return -1;
        }
        if (sq__erb_truthy(v) == !is_or) {
            sq__erb_vfree(v);
            *v = rhs;
        } else {
            sq__erb_vfree(&rhs);
        }
    }
    return 0;
}

static int parse_expr(erb *e, value *v)
{
    if (++e->depth > MAX_NESTING)
        return sq__erb_unsupported(e);
    int rc = parse_logic(e, v, true);
    if (rc == 0 && at(e, '?')) {
        e->p++;
        value yes = {0}, no = {0};
        bool t = sq__erb_truthy(v);
        e->dead += !t;
        rc = parse_expr(e, &yes);
        e->dead -= !t;
        if (rc == 0 && !eat(e, ":"))
            rc = sq__erb_unsupported(e);
        e->dead += t;
        if (rc == 0)
            rc = parse_expr(e, &no);
        e->dead -= t;
        if (rc == 0) {
            sq__erb_vfree(v);
            *v = t ? yes : no;
            memset(t ? &yes : &no, 0, sizeof yes);
        }
        sq__erb_vfree(&yes);
        sq__erb_vfree(&no);
    }
    e->depth--;
    return rc;
}

int sq__erb_eval(erb *e, const char *p, const char *end, buf *text)
{
    e->p = p;
    e->end = end;
    e->status = E_OK;
    e->depth = 0;
    e->dead = 0;
    value v = {0};
    int rc = parse_expr(e, &v);
    skip_space(e);
    if (rc == 0 && e->p != e->end)
        rc = sq__erb_unsupported(e), e->status = E_UNSUPPORTED;
    if (rc == 0 && sq__erb_to_text(e, &v, false, text) < 0)
        rc = -1, e->status = E_RUBY;
    sq__erb_vfree(&v);
    return rc;
}
