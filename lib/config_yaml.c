/*
 * config_yaml.c: applying sidekiq.yml through the option table.
 *
 * The text goes through the ERB subset (config_erb.c), then is read as a
 * YAML document within bounds (yaml_doc.c). The top level, then the
 * environment's section, is applied key by key: keys lose one leading ':'
 * so that Ruby's symbol spelling `:concurrency:` and plain `concurrency:`
 * are the same key; numbers are read as Psych reads them; keys Sidekiq
 * removed are warned about, unknown keys get a "did you mean".
 */
#include "yaml_doc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Keys Sidekiq once had: accepted with a warning. */
static const struct {
    const char *key, *why;
} removed_keys[] = {
    {"pidfile", "removed in Sidekiq 6.0; squire writes no pidfile: run it under systemd, "
                "which tracks the process (packaging/systemd/squire.service)"},
    {"logfile", "removed in Sidekiq 6.0; squire logs to stdout: let systemd's journal collect "
                "it, or redirect it (squire >> log/squire.log)"},
    {"daemon", "removed in Sidekiq 6.0; squire stays in the foreground: run it under systemd "
               "or your process manager (Procfile)"},
    {"strict", "as in Sidekiq; strict order applies when no queue has a weight"},
    {"environment", "choose the environment with -e, APP_ENV, RAILS_ENV or RACK_ENV"},
};

/* Top-level sections for other environments are not errors. */
static const char *const env_names[] = {"development", "test", "staging", "production"};

/* Psych (YAML 1.1) reads a plain integer with a leading 0 as octal: Sidekiq
 * gets 8 from `concurrency: 010`. A number's text is rewritten the same way
 * (into buf), with a warning when that differs from the decimal reading. */
static const char *yaml_number(yctx *y, const yaml_node_t *n, const char *text, const char *key,
                               char *buf, size_t size)
{
    const char *d = text + (text[0] == '-');
    if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE || d[0] != '0' || d[1] == '\0' ||
        strspn(d, "01234567") != strlen(d) || strlen(d) > 20)
        return text;
    unsigned long long v = strtoull(d, NULL, 8);
    snprintf(buf, size, "%s%llu", d == text ? "" : "-", v);
    if (strtoull(d, NULL, 10) != v &&
        sq__config_warn(y->c, y->err,
                        "%s:%lu: %s: %s is octal in YAML: Sidekiq reads it as %s, and so does "
                        "squire (write %s; if you meant %llu, drop the leading 0)",
                        y->name, sq__yaml_line_of(n), key, text, buf, buf,
                        strtoull(d, NULL, 10)) < 0)
        return NULL;
    return buf;
}

/* Psych's INTEGER forms (YAML 1.1): 0b.., 0.. (octal), decimal with single
 * '_' or ',' between digits, 0x..; and base 60 as Psych reads it (h:m:s or
 * h:m, so 1:30 is 5400). */
static bool psych_integer(const char *s, long long *out)
{
    const char *d = s + (*s == '-' || *s == '+');
    char clean[64];
    size_t n = 0, len = strlen(s);
    if (len >= sizeof clean)
        return false;
    if (strchr(d, ':') != NULL) { /* [-+]?[0-9][0-9_]*(:[0-5]?[0-9]){1,2} */
        long long v = 0;
        int parts = 0;
        for (const char *p = d; *p; parts++) {
            size_t k = strspn(p, parts == 0 ? "0123456789_" : "0123456789");
            if (k == 0 || (parts == 0 && *p == '_') ||
                (parts > 0 && (k > 2 || (k == 2 && *p > '5'))))
                return false;
            long long part = 0;
            for (size_t i = 0; i < k; i++)
                if (p[i] != '_')
                    part = part * 10 + (p[i] - '0');
            v = v * 60 +
                (parts == 0 && *s == '-' ? -part : part); /* the sign is the first part's */
            p += k;
            if (*p == ':' && p[1] != '\0')
                p++;
            else if (*p != '\0')
                return false;
        }
        if (parts < 2 || parts > 3)
            return false;
        if (parts == 2) /* Psych: h:m, in seconds */
            v *= 60;
        *out = v;
        return true;
    }
    bool ok;
    if (d[0] == '0' && (d[1] == 'b' || d[1] == 'x'))
        ok = d[2] != '\0' &&
             strspn(d + 2, d[1] == 'b' ? "01_," : "0123456789abcdefABCDEF_,") == strlen(d + 2);
    else if (d[0] == '0')
        ok = d[1] == '\0' || strspn(d + 1, "01234567_,") == strlen(d + 1);
    else {
        ok = d[0] >= '1' && d[0] <= '9';
        for (const char *p = d + 1; ok && *p; p++)
            ok = (*p >= '0' && *p <= '9') ||
                 ((*p == '_' || *p == ',') && p[1] >= '0' && p[1] <= '9' && p++);
    }
    if (!ok)
        return false;
    for (const char *p = s; *p; p++)
        if (*p != '_' && *p != ',')
            clean[n++] = *p;
    return sq__ruby_integer(clean, n, out) == 0;
}

/* The queue name Sidekiq gets from a plain scalar that Psych reads as a
 * boolean or an integer (`- on` is the queue "true", `- 010` is "8"), in buf;
 * else text itself. */
static const char *psych_name(const yaml_node_t *n, const char *text, char *buf, size_t size)
{
    static const char *const yes[] = {"yes", "true", "on"}, *const no[] = {"no", "false", "off"};
    if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE || sq__yaml_scalar(n)[0] == ':')
        return text; /* quoted, or a :symbol */
    for (size_t i = 0; i < SQ_ARRAY_LEN(yes); i++) {
        if (strcasecmp(text, yes[i]) == 0)
            return "true";
        if (strcasecmp(text, no[i]) == 0)
            return "false";
    }
    long long v;
    if ((text[0] >= '0' && text[0] <= '9') || text[0] == '-' || text[0] == '+') {
        if (psych_integer(text, &v)) {
            snprintf(buf, size, "%lld", v);
            return buf;
        }
    }
    return text;
}

static bool is_number(const sq__option *o)
{
    return o->type == SQ__OPT_INT || o->type == SQ__OPT_LONG || o->type == SQ__OPT_SIZE ||
           o->type == SQ__OPT_DOUBLE;
}

/* A value squire needs must not come from an ERB tag it did not evaluate. */
static int needs_erb(yctx *y, const char *text, const char *key)
{
    const sq__erb_skipped *k = sq__erb_skip_in(&y->skips, text);
    if (k == NULL)
        return 0;
    sq__error_set(y->err, SQ_ECONFIG,
                  "%s:%lu: %s: ERB <%%= %s %%> is a form squire does not evaluate, and squire "
                  "needs this value: write the value, or use ENV['X'], ENV.fetch('X', default), "
                  "||, ?:, ==, .to_i, .to_s, \"#{...}\", [...].include?(...) or Random.rand(a..b)",
                  y->name, k->line, key, k->form);
    return -1;
}

/* ---- applying pairs ------------------------------------------------------ */

/* One queue from its name and weight nodes (weight NULL: unweighted). */
static int apply_queue_pair(yctx *y, const sq__option *o, const char *where, yaml_node_t *name,
                            yaml_node_t *weight)
{
    char number[32], name_buf[32];
    if (weight != NULL && sq__yaml_is_null(weight))
        weight = NULL; /* nil.to_i: unweighted */
    if (name->type != YAML_SCALAR_NODE || sq__yaml_is_null(name))
        return sq__yaml_fail(y, name, o->key, "a queue name", name);
    if (weight != NULL && (weight->type != YAML_SCALAR_NODE || sq__yaml_is_null(weight)))
        return sq__yaml_fail(y, weight, o->key, "a queue weight", weight);
    const char *n = sq__yaml_text_of(y, name, o->key);
    if (n != NULL)
        n = psych_name(name, n, name_buf, sizeof name_buf);
    const char *w = weight == NULL ? NULL : sq__yaml_text_of(y, weight, o->key);
    if (w != NULL)
        w = yaml_number(y, weight, w, o->key, number, sizeof number);
    if (n == NULL || (weight != NULL && w == NULL) || needs_erb(y, n, o->key) < 0 ||
        (w != NULL && needs_erb(y, w, o->key) < 0))
        return -1;
    return sq__config_add_queue(y->c, where, n, w, y->err);
}

static int apply_item(yctx *y, const sq__option *o, yaml_node_t *item)
{
    char where[640];
    snprintf(where, sizeof where, "%s:%lu: %s", y->name, sq__yaml_line_of(item), o->key);
    char number[32];
    if (item->type == YAML_SCALAR_NODE && !sq__yaml_is_null(item)) {
        const char *text = sq__yaml_text_of(y, item, o->key);
        if (text != NULL && o->type == SQ__OPT_QUEUES)
            text = psych_name(item, text, number, sizeof number);
        return text == NULL || needs_erb(y, text, o->key) < 0
                   ? -1
                   : o->set(y->c, o, where, text, y->err);
    }
    bool pair = item->type == YAML_SEQUENCE_NODE &&
                item->data.sequence.items.top - item->data.sequence.items.start <= 2 &&
                item->data.sequence.items.top > item->data.sequence.items.start;
    if (o->type != SQ__OPT_QUEUES || !pair)
        return sq__yaml_fail(
            y, item, o->key,
            o->type == SQ__OPT_QUEUES ? "a queue name or [name, weight]" : "a string", item);
    yaml_node_t *name = sq__yaml_node(y, item->data.sequence.items.start[0]);
    yaml_node_t *weight = item->data.sequence.items.start + 1 < item->data.sequence.items.top
                              ? sq__yaml_node(y, item->data.sequence.items.start[1])
                              : NULL;
    return apply_queue_pair(y, o, where, name, weight);
}

/* `queues: {critical: 2, low: ~}`: Sidekiq's Array(hash) is [[name, weight], ...]. */
static int apply_queue_map(yctx *y, const sq__option *o, yaml_node_t *map)
{
    ymap m = {0};
    int rc = sq__yaml_flatten(y, map, &m);
    sq__option_clear(y->c, o);
    for (size_t i = 0; rc == 0 && i < m.n; i++) {
        char where[640];
        snprintf(where, sizeof where, "%s:%lu: %s", y->name, sq__yaml_line_of(m.v[i].knode),
                 o->key);
        rc = apply_queue_pair(y, o, where, m.v[i].knode, m.v[i].value);
    }
    free(m.v);
    return rc;
}

static int apply_list(yctx *y, const sq__option *o, const ypair *p)
{
    char what[64];
    yaml_node_t *v = p->value;
    if (v->type == YAML_SCALAR_NODE && !sq__yaml_is_null(v)) { /* Array("critical") */
        sq__option_clear(y->c, o);
        return apply_item(y, o, v);
    }
    if (o->type == SQ__OPT_QUEUES && sq__yaml_is_null(v)) {
        sq__option_default(y->c, o); /* Sidekiq: unset, so ["default"] */
        return 0;
    }
    if (o->type == SQ__OPT_QUEUES && v->type == YAML_MAPPING_NODE &&
        v->data.mapping.pairs.top > v->data.mapping.pairs.start)
        return apply_queue_map(y, o, v);
    if (v->type != YAML_SEQUENCE_NODE)
        return sq__yaml_fail(y, p->knode, o->key, sq__option_expects(o, what, sizeof what), v);
    if (o->type == SQ__OPT_QUEUES && v->data.sequence.items.top == v->data.sequence.items.start) {
        sq__error_set(y->err, SQ_ECONFIG, "%s:%lu: queues: expected at least one queue, got []",
                      y->name, sq__yaml_line_of(p->knode));
        return -1;
    }
    sq__option_clear(y->c, o);
    for (yaml_node_item_t *i = v->data.sequence.items.start; i < v->data.sequence.items.top; i++)
        if (apply_item(y, o, sq__yaml_node(y, *i)) < 0)
            return -1;
    return 0;
}

static int apply_option(yctx *y, const sq__option *o, const ypair *p)
{
    char what[64], where[640];
    if (sq__option_is_list(o))
        return apply_list(y, o, p);
    if (o->set == sq__option_by_key("concurrency")->set && sq__yaml_is_null(p->value)) {
        /* Sidekiq: unset, then RAILS_MAX_THREADS or an error (config_cli.c) */
        free(y->c->concurrency_null);
        if (asprintf(&y->c->concurrency_null, "%s:%lu", y->name, sq__yaml_line_of(p->knode)) < 0) {
            y->c->concurrency_null = NULL;
            sq__error_set(y->err, SQ_ENOMEM, "out of memory");
            return -1;
        }
        sq__option_default(y->c, o);
        y->c->concurrency_set = false;
        return 0;
    }
    if (p->value->type != YAML_SCALAR_NODE || sq__yaml_is_null(p->value))
        return sq__yaml_fail(y, p->knode, o->key, sq__option_expects(o, what, sizeof what),
                             p->value);
    const char *text = sq__yaml_text_of(y, p->value, o->key);
    char number[32];
    if (text != NULL && is_number(o))
        text = yaml_number(y, p->value, text, o->key, number, sizeof number);
    if (text == NULL || needs_erb(y, text, o->key) < 0)
        return -1;
    snprintf(where, sizeof where, "%s:%lu: %s", y->name, sq__yaml_line_of(p->knode), o->key);
    return o->set(y->c, o, where, text, y->err);
}

/* Optimal string alignment distance (a transposition costs 1), capped inputs. */
static size_t distance(const char *a, const char *b)
{
    size_t n = strlen(a), m = strlen(b);
    if (n > 40 || m > 40)
        return 99;
    size_t d[41][41];
    for (size_t i = 0; i <= n; i++)
        d[i][0] = i;
    for (size_t j = 0; j <= m; j++)
        d[0][j] = j;
    for (size_t i = 1; i <= n; i++) {
        for (size_t j = 1; j <= m; j++) {
            size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
            size_t best = d[i - 1][j - 1] + cost;
            if (d[i - 1][j] + 1 < best)
                best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best)
                best = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    }
    return d[n][m];
}

/* The known key an unknown one is probably a typo of, or NULL. Short keys
 * need a closer match so that e.g. `log:` is not taken for `tag:`. */
static const char *did_you_mean(const char *key)
{
    char lower[48];
    size_t n = strlen(key);
    if (n >= sizeof lower)
        return NULL;
    for (size_t i = 0; i <= n; i++)
        lower[i] = (char)(key[i] >= 'A' && key[i] <= 'Z' ? key[i] + 32 : key[i]);
    const sq__option *opts = sq__options();
    for (size_t i = 0; i < sq__options_count(); i++) {
        if (opts[i].key == NULL)
            continue;
        size_t d = distance(lower, opts[i].key);
        if (d <= 1 || (d == 2 && n >= 5))
            return opts[i].key;
    }
    return NULL;
}

static bool is_env_name(const char *key)
{
    for (size_t i = 0; i < SQ_ARRAY_LEN(env_names); i++)
        if (strcmp(key, env_names[i]) == 0)
            return true;
    return false;
}

static int apply_unknown(yctx *y, const ypair *p, bool top)
{
    unsigned long line = sq__yaml_line_of(p->knode);
    const sq__erb_skipped *erb = sq__erb_skip_in(&y->skips, p->key);
    if (erb != NULL) { /* it may name any setting, or this environment's section */
        sq__error_set(y->err, SQ_ECONFIG,
                      "%s:%lu: ERB <%%= %s %%> in a key is a form squire does not evaluate, and "
                      "squire needs it to know which setting this is: write the key out",
                      y->name, erb->line, erb->form);
        return -1;
    }
    for (size_t i = 0; i < SQ_ARRAY_LEN(removed_keys); i++)
        if (strcmp(p->key, removed_keys[i].key) == 0)
            return sq__config_warn(y->c, y->err, "%s:%lu: %s: ignored (%s)", y->name, line, p->key,
                                   removed_keys[i].why);
    if (strcmp(p->key, "capsules") == 0) {
        sq__error_set(
            y->err, SQ_ECONFIG,
            "%s:%lu: capsules: not supported by squire; list queues under :queues:", y->name, line);
        return -1;
    }
    if (p->key[0] == ':' && sq__option_by_key(p->key + 1) != NULL)
        return sq__config_warn(y->c, y->err,
                               "%s:%lu: \"%s\": ignored: Ruby reads a quoted \"%s\" as the symbol "
                               ":\"%s\", not %s, so Sidekiq does not use it either (write %s: "
                               "unquoted)",
                               y->name, line, p->key, p->key, p->key, p->key, p->key);
    bool section = p->value->type == YAML_MAPPING_NODE || sq__yaml_is_null(p->value);
    if (top && section && is_env_name(p->key))
        return 0;
    const char *near = did_you_mean(p->key);
    if (near != NULL && p->value->type != YAML_MAPPING_NODE) {
        char buf[128];
        sq__error_set(y->err, SQ_ECONFIG, "%s:%lu: %s: unknown key (did you mean %s?)", y->name,
                      line, sq__yaml_key_text(p->key, buf, sizeof buf), near);
        return -1;
    }
    char buf[128];
    return sq__config_warn(y->c, y->err, "%s:%lu: %s: unknown key, ignored", y->name, line,
                           sq__yaml_key_text(p->key, buf, sizeof buf));
}

/* A section of options (database:): its keys are the table's
 * "<section>.<key>" rows. */
static int apply_section(yctx *y, const ypair *p, const char *section)
{
    if (sq__yaml_is_null(p->value))
        return 0;
    if (p->value->type != YAML_MAPPING_NODE)
        return sq__yaml_fail(y, p->knode, p->key, "a mapping of settings", p->value);
    ymap sub = {0};
    int rc = sq__yaml_flatten(y, p->value, &sub);
    for (size_t i = 0; rc == 0 && i < sub.n; i++) {
        char name[128];
        snprintf(name, sizeof name, "%s.%s", section, sub.v[i].key);
        const sq__option *o = sq__option_by_key(name);
        if (o == NULL) {
            sq__error_set(y->err, SQ_ECONFIG, "%s:%lu: %s: unknown key in %s:", y->name,
                          sq__yaml_line_of(sub.v[i].knode), sub.v[i].key, section);
            rc = -1;
        } else {
            ypair named = sub.v[i];
            named.key = name;
            rc = apply_option(y, o, &named);
        }
    }
    free(sub.v);
    return rc;
}

static int apply_pairs(yctx *y, const ymap *m, bool top)
{
    for (size_t i = 0; i < m->n; i++) {
        const ypair *p = &m->v[i];
        if (strcmp(p->key, "database") == 0 || strcmp(p->key, "redis") == 0) {
            if (apply_section(y, p, p->key) < 0)
                return -1;
            continue;
        }
        const sq__option *o = sq__option_by_key(p->key);
        if (top && strcmp(p->key, y->env) == 0)
            continue; /* applied after the top level */
        if ((o != NULL ? apply_option(y, o, p) : apply_unknown(y, p, top)) < 0)
            return -1;
    }
    return 0;
}

/* Psych reads a plain `:"name"` or `:'name'` as the symbol :name (the text up
 * to the last matching quote, less one leading ':'). Rewrite such scalars in
 * place to `:name`, once, so that keys and values read like any `:name`. */
static void unquote_symbols(yctx *y)
{
    for (yaml_node_t *n = y->doc.nodes.start; n < y->doc.nodes.top; n++) {
        if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
            continue;
        char *s = (char *)n->data.scalar.value;
        size_t len = n->data.scalar.length;
        if (len < 3 || s[0] != ':' || (s[1] != '"' && s[1] != '\'') || strlen(s) != len)
            continue;
        char *last = strrchr(s + 2, s[1]);
        if (last == NULL)
            continue;
        char *inner = s + 2 + (s[2] == ':');
        size_t k = last > inner ? (size_t)(last - inner) : 0;
        memmove(s + 1, inner, k);
        s[k + 1] = '\0';
        n->data.scalar.length = k + 1;
    }
}

/* The top level, then the environment's section shallow-merged over it. */
static int apply_root(yctx *y, yaml_node_t *root)
{
    if (sq__yaml_is_null(root))
        return 0;
    if (root->type != YAML_MAPPING_NODE)
        return sq__yaml_fail(y, root, "(top level)", "a mapping of settings", root);
    ymap top = {0}, section = {0};
    unquote_symbols(y);
    int rc = sq__yaml_walk(y, root, 0) < 0 || sq__yaml_flatten(y, root, &top) < 0 ? -1 : 0;
    const ypair *env = rc == 0 ? sq__yaml_map_find(&top, y->env) : NULL;
    if (env != NULL && env->value->type != YAML_MAPPING_NODE && !sq__yaml_is_null(env->value))
        rc = sq__yaml_fail(y, env->knode, env->key, "a mapping of settings for that environment",
                           env->value);
    if (rc == 0)
        rc = apply_pairs(y, &top, true);
    if (rc == 0 && env != NULL && env->value->type == YAML_MAPPING_NODE) {
        rc = sq__yaml_flatten(y, env->value, &section);
        if (rc == 0)
            rc = apply_pairs(y, &section, false);
    }
    free(top.v);
    free(section.v);
    return rc;
}

int sq_config_apply_yaml(sq_config *c, const char *name, const char *text, size_t len,
                         const char *environment, sq_getenv_fn getenv_fn, sq_error *err)
{
    yctx y = {.c = c, .name = name ? name : "(config)", .err = err};
    if (text == NULL) {
        text = "";
        len = 0;
    }
    y.env = environment ? environment : c->environment ? c->environment : "development";
    const char *nul = memchr(text, '\0', len);
    if (nul != NULL) {
        unsigned long line = 1;
        for (const char *p = text; p < nul; p++)
            line += *p == '\n';
        sq__error_set(err, SQ_ECONFIG, "%s:%lu: contains a NUL byte (not a YAML text file)", y.name,
                      line);
        return -1;
    }
    char *expanded;
    size_t explen;
    if (sq__erb_expand(y.name, text, len, getenv_fn ? getenv_fn : sq__getenv, &expanded, &explen,
                       &y.skips, err) < 0) {
        free(y.skips.v);
        return -1;
    }
    int rc = sq__yaml_load(&y, expanded, explen, apply_root);
    /* Tags squire did not evaluate, in parts of the file it does not read
     * (a scheduler's cron lines, another gem's section): said, not fatal. */
    for (size_t i = 0; rc == 0 && i < y.skips.n; i++)
        rc = sq__config_warn(c, err,
                             "%s:%lu: ERB <%%= %s %%> not evaluated (squire does not use this "
                             "part of the file); skipped",
                             y.name, y.skips.v[i].line, y.skips.v[i].form);
    free(y.skips.v);
    free(expanded);
    return rc;
}
