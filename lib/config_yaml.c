/*
 * config_yaml.c: reading sidekiq.yml and applying it through the option table.
 *
 * The text goes through the ERB subset (config_erb.c), then libyaml's event
 * parser alone, which stops at the first node nested more than MAX_DEPTH
 * deep or past SQ__CONFIG_MAX_NODES (libyaml's costs grow faster than the
 * text on such input), then libyaml's document loader. Before anything is
 * applied the whole document is walked once with aliases expanded, capped at
 * SQ__CONFIG_MAX_NODES nodes and a fixed depth, which stops billion-laughs
 * documents and alias cycles. Mappings are
 * flattened with the `<<` merge key applied and duplicate keys rejected (libyaml
 * leaves that check to the loader). Keys lose one leading ':' so that Ruby's
 * symbol spelling `:concurrency:` and plain `concurrency:` are the same key.
 */
#include "config_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#define MAX_DEPTH 64

typedef struct ypair {
    const char *key; /* without its leading ':' */
    yaml_node_t *knode;
    yaml_node_t *value;
} ypair;

typedef struct ymap {
    ypair *v;
    size_t n, cap;
} ymap;

typedef struct yctx {
    sq_config *c;
    const char *name;
    const char *env;
    yaml_document_t doc;
    sq_error *err;
    size_t visited;
    sq__erb_skips skips; /* ERB tags not evaluated (config_erb.c) */
} yctx;

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

static unsigned long line_of(const yaml_node_t *n)
{
    return (unsigned long)n->start_mark.line + 1;
}

static const char *scalar(const yaml_node_t *n)
{
    return (const char *)n->data.scalar.value;
}

static bool is_null(const yaml_node_t *n)
{
    if (n == NULL)
        return true;
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    const char *s = scalar(n);
    return strcmp(s, "") == 0 || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 ||
           strcmp(s, "Null") == 0 || strcmp(s, "NULL") == 0;
}

static const char *describe(const yaml_node_t *n, char *buf, size_t size)
{
    if (is_null(n))
        return "null";
    if (n->type == YAML_MAPPING_NODE)
        return "a mapping";
    if (n->type == YAML_SEQUENCE_NODE)
        return "a sequence";
    return sq__quote(scalar(n), n->data.scalar.length, buf, size);
}

/* A key for a message: as written when plain, else quoted and escaped. */
static const char *key_text(const char *key, char *buf, size_t size)
{
    size_t n = strlen(key);
    for (size_t i = 0; i < n; i++)
        if (key[i] <= ' ' || key[i] > '~' || key[i] == '"')
            return sq__quote(key, n, buf, size);
    return n == 0 || n > 40 ? sq__quote(key, n, buf, size) : key;
}

static int fail(yctx *y, const yaml_node_t *at, const char *key, const char *what,
                const yaml_node_t *got)
{
    char buf[128];
    sq__error_set(y->err, SQ_ECONFIG, "%s:%lu: %s: expected %s, got %s", y->name, line_of(at), key,
                  what, describe(got, buf, sizeof buf));
    return -1;
}

/* A scalar's text: NULs refused, and a plain `:sym` is Ruby's Symbol, i.e. "sym". */
static const char *text_of(yctx *y, const yaml_node_t *n, const char *key)
{
    const char *s = scalar(n);
    if (strlen(s) != n->data.scalar.length) {
        sq__error_set(y->err, SQ_ECONFIG, "%s:%lu: %s: expected text, got a NUL character", y->name,
                      line_of(n), key);
        return NULL;
    }
    if (n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && s[0] == ':' && s[1] != '\0')
        s++;
    return s;
}

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
                        y->name, line_of(n), key, text, buf, buf, strtoull(d, NULL, 10)) < 0)
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
    if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE || scalar(n)[0] == ':')
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

static yaml_node_t *node(yctx *y, int index)
{
    return yaml_document_get_node(&y->doc, index);
}

static bool is_merge_key(const yaml_node_t *k)
{
    return k->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && strcmp(scalar(k), "<<") == 0;
}

/* A key's name for Sidekiq: a plain `:key` is Ruby's Symbol :key, the same
 * as `key`; a quoted ":key" is the symbol :":key", another key. */
static const char *key_name(const yaml_node_t *k)
{
    const char *s = scalar(k);
    return k->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && s[0] == ':' && s[1] != '\0' ? s + 1
                                                                                          : s;
}

static int duplicate(yctx *y, const yaml_node_t *k, const yaml_node_t *first)
{
    char buf[128];
    sq__error_set(y->err, SQ_ECONFIG, "%s:%lu: %s: duplicate key (also on line %lu)", y->name,
                  line_of(k), key_text(scalar(k), buf, sizeof buf), line_of(first));
    return -1;
}

/* Duplicate keys in any mapping, not only the ones squire reads. */
static int check_duplicates(yctx *y, const yaml_node_t *map)
{
    yaml_node_pair_t *start = map->data.mapping.pairs.start, *top = map->data.mapping.pairs.top;
    for (yaml_node_pair_t *p = start; p < top; p++) {
        yaml_node_t *k = node(y, p->key);
        if (k->type != YAML_SCALAR_NODE || is_merge_key(k))
            continue;
        for (yaml_node_pair_t *q = start; q < p; q++) {
            yaml_node_t *kq = node(y, q->key);
            if (kq->type == YAML_SCALAR_NODE && strcmp(key_name(kq), key_name(k)) == 0)
                return duplicate(y, k, kq);
        }
    }
    return 0;
}

static int too_deep(yctx *y, unsigned long line)
{
    sq__error_set(y->err, SQ_ECONFIG, "%s:%lu: YAML nested more than %d levels deep", y->name, line,
                  MAX_DEPTH);
    return -1;
}

static int too_large(yctx *y, unsigned long line)
{
    sq__error_set(y->err, SQ_ECONFIG,
                  "%s:%lu: YAML document too large after expanding aliases (more than %d "
                  "nodes; an alias bomb?)",
                  y->name, line, SQ__CONFIG_MAX_NODES);
    return -1;
}

/* Walk everything once, aliases expanded, against a node budget and a depth cap. */
static int walk(yctx *y, yaml_node_t *n, int depth)
{
    if (++y->visited > SQ__CONFIG_MAX_NODES)
        return too_large(y, line_of(n));
    if (depth > MAX_DEPTH)
        return too_deep(y, line_of(n));
    if (n->type == YAML_SEQUENCE_NODE) {
        for (yaml_node_item_t *i = n->data.sequence.items.start; i < n->data.sequence.items.top;
             i++)
            if (walk(y, node(y, *i), depth + 1) < 0)
                return -1;
    } else if (n->type == YAML_MAPPING_NODE) {
        if (check_duplicates(y, n) < 0)
            return -1;
        for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++)
            if (walk(y, node(y, p->key), depth + 1) < 0 ||
                walk(y, node(y, p->value), depth + 1) < 0)
                return -1;
    }
    return 0;
}

static const ypair *map_find(const ymap *m, const char *key)
{
    for (size_t i = 0; i < m->n; i++)
        if (strcmp(m->v[i].key, key) == 0)
            return &m->v[i];
    return NULL;
}

static int map_add(yctx *y, ymap *m, const char *key, yaml_node_t *k, yaml_node_t *v)
{
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 16;
        ypair *grown = realloc(m->v, cap * sizeof *grown);
        if (grown == NULL) {
            sq__error_set(y->err, SQ_ENOMEM, "out of memory");
            return -1;
        }
        m->v = grown;
        m->cap = cap;
    }
    m->v[m->n++] = (ypair){key, k, v};
    return 0;
}

static int flatten(yctx *y, yaml_node_t *map, ymap *out);

/* `<<: *base` or `<<: [*a, *b]`: keys not already present, earlier sources first. */
static int merge(yctx *y, yaml_node_t *src, ymap *out)
{
    if (src->type == YAML_SEQUENCE_NODE) {
        for (yaml_node_item_t *i = src->data.sequence.items.start; i < src->data.sequence.items.top;
             i++)
            if (merge(y, node(y, *i), out) < 0)
                return -1;
        return 0;
    }
    if (src->type != YAML_MAPPING_NODE)
        return fail(y, src, "<<", "a mapping or a list of mappings to merge", src);
    ymap from = {0};
    int rc = flatten(y, src, &from);
    for (size_t i = 0; rc == 0 && i < from.n; i++)
        if (map_find(out, from.v[i].key) == NULL)
            rc = map_add(y, out, from.v[i].key, from.v[i].knode, from.v[i].value);
    free(from.v);
    return rc;
}

static int add_explicit(yctx *y, ymap *out, yaml_node_t *k, yaml_node_t *v)
{
    if (k->type != YAML_SCALAR_NODE)
        return fail(y, k, "(key)", "a plain key", k);
    const char *key = text_of(y, k, "(key)");
    if (key == NULL)
        return -1;
    const ypair *dup = map_find(out, key);
    if (dup != NULL)
        return duplicate(y, k, dup->knode);
    return map_add(y, out, key, k, v);
}

/* The pairs of a mapping node, merge keys applied, duplicates refused. */
static int flatten(yctx *y, yaml_node_t *map, ymap *out)
{
    yaml_node_pair_t *start = map->data.mapping.pairs.start, *top = map->data.mapping.pairs.top;
    for (yaml_node_pair_t *p = start; p < top; p++) {
        yaml_node_t *k = node(y, p->key);
        if (!(k->type == YAML_SCALAR_NODE && is_merge_key(k)) &&
            add_explicit(y, out, k, node(y, p->value)) < 0)
            return -1;
    }
    for (yaml_node_pair_t *p = start; p < top; p++) {
        yaml_node_t *k = node(y, p->key);
        if (k->type == YAML_SCALAR_NODE && is_merge_key(k) && merge(y, node(y, p->value), out) < 0)
            return -1;
    }
    return 0;
}

/* ---- applying pairs ------------------------------------------------------ */

/* One queue from its name and weight nodes (weight NULL: unweighted). */
static int apply_queue_pair(yctx *y, const sq__option *o, const char *where, yaml_node_t *name,
                            yaml_node_t *weight)
{
    char number[32], name_buf[32];
    if (weight != NULL && is_null(weight))
        weight = NULL; /* nil.to_i: unweighted */
    if (name->type != YAML_SCALAR_NODE || is_null(name))
        return fail(y, name, o->key, "a queue name", name);
    if (weight != NULL && (weight->type != YAML_SCALAR_NODE || is_null(weight)))
        return fail(y, weight, o->key, "a queue weight", weight);
    const char *n = text_of(y, name, o->key);
    if (n != NULL)
        n = psych_name(name, n, name_buf, sizeof name_buf);
    const char *w = weight == NULL ? NULL : text_of(y, weight, o->key);
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
    snprintf(where, sizeof where, "%s:%lu: %s", y->name, line_of(item), o->key);
    char number[32];
    if (item->type == YAML_SCALAR_NODE && !is_null(item)) {
        const char *text = text_of(y, item, o->key);
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
        return fail(y, item, o->key,
                    o->type == SQ__OPT_QUEUES ? "a queue name or [name, weight]" : "a string",
                    item);
    yaml_node_t *name = node(y, item->data.sequence.items.start[0]);
    yaml_node_t *weight = item->data.sequence.items.start + 1 < item->data.sequence.items.top
                              ? node(y, item->data.sequence.items.start[1])
                              : NULL;
    return apply_queue_pair(y, o, where, name, weight);
}

/* `queues: {critical: 2, low: ~}`: Sidekiq's Array(hash) is [[name, weight], ...]. */
static int apply_queue_map(yctx *y, const sq__option *o, yaml_node_t *map)
{
    ymap m = {0};
    int rc = flatten(y, map, &m);
    sq__option_clear(y->c, o);
    for (size_t i = 0; rc == 0 && i < m.n; i++) {
        char where[640];
        snprintf(where, sizeof where, "%s:%lu: %s", y->name, line_of(m.v[i].knode), o->key);
        rc = apply_queue_pair(y, o, where, m.v[i].knode, m.v[i].value);
    }
    free(m.v);
    return rc;
}

static int apply_list(yctx *y, const sq__option *o, const ypair *p)
{
    char what[64];
    yaml_node_t *v = p->value;
    if (v->type == YAML_SCALAR_NODE && !is_null(v)) { /* Array("critical") */
        sq__option_clear(y->c, o);
        return apply_item(y, o, v);
    }
    if (o->type == SQ__OPT_QUEUES && is_null(v)) {
        sq__option_default(y->c, o); /* Sidekiq: unset, so ["default"] */
        return 0;
    }
    if (o->type == SQ__OPT_QUEUES && v->type == YAML_MAPPING_NODE &&
        v->data.mapping.pairs.top > v->data.mapping.pairs.start)
        return apply_queue_map(y, o, v);
    if (v->type != YAML_SEQUENCE_NODE)
        return fail(y, p->knode, o->key, sq__option_expects(o, what, sizeof what), v);
    if (o->type == SQ__OPT_QUEUES && v->data.sequence.items.top == v->data.sequence.items.start) {
        sq__error_set(y->err, SQ_ECONFIG, "%s:%lu: queues: expected at least one queue, got []",
                      y->name, line_of(p->knode));
        return -1;
    }
    sq__option_clear(y->c, o);
    for (yaml_node_item_t *i = v->data.sequence.items.start; i < v->data.sequence.items.top; i++)
        if (apply_item(y, o, node(y, *i)) < 0)
            return -1;
    return 0;
}

static int apply_option(yctx *y, const sq__option *o, const ypair *p)
{
    char what[64], where[640];
    if (sq__option_is_list(o))
        return apply_list(y, o, p);
    if (o->set == sq__option_by_key("concurrency")->set && is_null(p->value)) {
        /* Sidekiq: unset, then RAILS_MAX_THREADS or an error (config_cli.c) */
        free(y->c->concurrency_null);
        if (asprintf(&y->c->concurrency_null, "%s:%lu", y->name, line_of(p->knode)) < 0) {
            y->c->concurrency_null = NULL;
            sq__error_set(y->err, SQ_ENOMEM, "out of memory");
            return -1;
        }
        sq__option_default(y->c, o);
        y->c->concurrency_set = false;
        return 0;
    }
    if (p->value->type != YAML_SCALAR_NODE || is_null(p->value))
        return fail(y, p->knode, o->key, sq__option_expects(o, what, sizeof what), p->value);
    const char *text = text_of(y, p->value, o->key);
    char number[32];
    if (text != NULL && is_number(o))
        text = yaml_number(y, p->value, text, o->key, number, sizeof number);
    if (text == NULL || needs_erb(y, text, o->key) < 0)
        return -1;
    snprintf(where, sizeof where, "%s:%lu: %s", y->name, line_of(p->knode), o->key);
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
    unsigned long line = line_of(p->knode);
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
    bool section = p->value->type == YAML_MAPPING_NODE || is_null(p->value);
    if (top && section && is_env_name(p->key))
        return 0;
    const char *near = did_you_mean(p->key);
    if (near != NULL && p->value->type != YAML_MAPPING_NODE) {
        char buf[128];
        sq__error_set(y->err, SQ_ECONFIG, "%s:%lu: %s: unknown key (did you mean %s?)", y->name,
                      line, key_text(p->key, buf, sizeof buf), near);
        return -1;
    }
    char buf[128];
    return sq__config_warn(y->c, y->err, "%s:%lu: %s: unknown key, ignored", y->name, line,
                           key_text(p->key, buf, sizeof buf));
}

/* A section of options (database:): its keys are the table's
 * "<section>.<key>" rows. */
static int apply_section(yctx *y, const ypair *p, const char *section)
{
    if (is_null(p->value))
        return 0;
    if (p->value->type != YAML_MAPPING_NODE)
        return fail(y, p->knode, p->key, "a mapping of settings", p->value);
    ymap sub = {0};
    int rc = flatten(y, p->value, &sub);
    for (size_t i = 0; rc == 0 && i < sub.n; i++) {
        char name[128];
        snprintf(name, sizeof name, "%s.%s", section, sub.v[i].key);
        const sq__option *o = sq__option_by_key(name);
        if (o == NULL) {
            sq__error_set(y->err, SQ_ECONFIG, "%s:%lu: %s: unknown key in %s:", y->name,
                          line_of(sub.v[i].knode), sub.v[i].key, section);
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
    if (is_null(root))
        return 0;
    if (root->type != YAML_MAPPING_NODE)
        return fail(y, root, "(top level)", "a mapping of settings", root);
    ymap top = {0}, section = {0};
    unquote_symbols(y);
    int rc = walk(y, root, 0) < 0 || flatten(y, root, &top) < 0 ? -1 : 0;
    const ypair *env = rc == 0 ? map_find(&top, y->env) : NULL;
    if (env != NULL && env->value->type != YAML_MAPPING_NODE && !is_null(env->value))
        rc =
            fail(y, env->knode, env->key, "a mapping of settings for that environment", env->value);
    if (rc == 0)
        rc = apply_pairs(y, &top, true);
    if (rc == 0 && env != NULL && env->value->type == YAML_MAPPING_NODE) {
        rc = flatten(y, env->value, &section);
        if (rc == 0)
            rc = apply_pairs(y, &section, false);
    }
    free(top.v);
    free(section.v);
    return rc;
}

static int syntax_error(yctx *y, const yaml_parser_t *parser)
{
    if (parser->error == YAML_MEMORY_ERROR) {
        sq__error_set(y->err, SQ_ENOMEM, "%s: out of memory parsing YAML", y->name);
        return -1;
    }
    char context[160] = "";
    if (parser->context != NULL)
        snprintf(context, sizeof context, " (%s started at line %lu, column %lu)", parser->context,
                 (unsigned long)parser->context_mark.line + 1,
                 (unsigned long)parser->context_mark.column + 1);
    sq__error_set(y->err, SQ_ECONFIG, "%s:%lu:%lu: YAML syntax error: %s%s", y->name,
                  (unsigned long)parser->problem_mark.line + 1,
                  (unsigned long)parser->problem_mark.column + 1,
                  parser->problem ? parser->problem : "unknown error", context);
    return -1;
}

/* ---- bounds, before the loader ------------------------------------------ */

/*
 * libyaml's scanner and loader are not linear on every input: the scanner
 * looks through every open flow collection for each token (37 s of CPU for
 * a 200 KB `x: [[[...]]]`), the loader searches every anchor for each alias,
 * and %TAG directives are checked against each other. So the limits are
 * enforced on the event stream first, stopping at the first event past them,
 * and only a document within them is loaded and walked (walk() then bounds
 * it with aliases expanded).
 */

#define MAX_TAG_DIRECTIVES 64

/* libyaml reads every %TAG of a document before its first event: count the
 * lines that start one (a quoted scalar's line that does is counted too). */
static int bound_directives(yctx *y, const char *text, size_t len)
{
    size_t tags = 0;
    unsigned long line = 1;
    for (const char *p = text, *end = text + len; p < end; line++) {
        if (end - p >= 4 && memcmp(p, "%TAG", 4) == 0 && ++tags > MAX_TAG_DIRECTIVES) {
            sq__error_set(y->err, SQ_ECONFIG, "%s:%lu: more than %d %%TAG directives", y->name,
                          line, MAX_TAG_DIRECTIVES);
            return -1;
        }
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        p = nl != NULL ? nl + 1 : end;
    }
    return 0;
}

/* One event of the stream against the limits: *open collections, *nodes
 * in this document (an alias counts one). 1 go on, 0 the stream ended, -1. */
static int bound_event(yctx *y, const yaml_event_t *ev, size_t *open, size_t *nodes)
{
    unsigned long line = (unsigned long)ev->start_mark.line + 1;
    switch (ev->type) {
    case YAML_STREAM_END_EVENT:
        return 0;
    case YAML_DOCUMENT_START_EVENT:
        *nodes = 0;
        return 1;
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
        --*open;
        return 1;
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT:
    case YAML_SCALAR_EVENT:
    case YAML_ALIAS_EVENT:
        break;
    default:
        return 1;
    }
    if (*open > MAX_DEPTH) /* the node's depth, as walk() counts it */
        return too_deep(y, line);
    if (++*nodes > SQ__CONFIG_MAX_NODES)
        return too_large(y, line);
    *open += ev->type == YAML_SEQUENCE_START_EVENT || ev->type == YAML_MAPPING_START_EVENT;
    return 1;
}

/* Read the whole stream as events, failing at the first one past a limit
 * (or a syntax error), so that any file fails in time linear in its size. */
static int bound(yctx *y, const char *text, size_t len)
{
    if (bound_directives(y, text, len) < 0)
        return -1;
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) {
        sq__error_set(y->err, SQ_ENOMEM, "%s: out of memory parsing YAML", y->name);
        return -1;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    size_t open = 0, nodes = 0;
    int rc = 1;
    while (rc > 0) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&parser, &ev)) {
            rc = syntax_error(y, &parser);
            break;
        }
        rc = bound_event(y, &ev, &open, &nodes);
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&parser);
    return rc;
}

/* Load the first document, refuse a second one, apply. */
static int load(yctx *y, const char *text, size_t len)
{
    yaml_parser_t parser;
    yaml_document_t extra;
    if (bound(y, text, len) < 0)
        return -1;
    if (!yaml_parser_initialize(&parser)) {
        sq__error_set(y->err, SQ_ENOMEM, "%s: out of memory parsing YAML", y->name);
        return -1;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    int rc = -1;
    if (!yaml_parser_load(&parser, &y->doc)) {
        rc = syntax_error(y, &parser);
    } else {
        if (!yaml_parser_load(&parser, &extra)) {
            rc = syntax_error(y, &parser);
        } else {
            yaml_node_t *second = yaml_document_get_root_node(&extra);
            if (second != NULL)
                sq__error_set(y->err, SQ_ECONFIG,
                              "%s:%lu: expected one YAML document, found a second one", y->name,
                              line_of(second));
            yaml_node_t *root = yaml_document_get_root_node(&y->doc);
            rc = second != NULL ? -1 : root == NULL ? 0 : apply_root(y, root);
            yaml_document_delete(&extra);
        }
        yaml_document_delete(&y->doc);
    }
    yaml_parser_delete(&parser);
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
    int rc = load(&y, expanded, explen);
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

/* ---- the file ------------------------------------------------------------ */

static int file_error(const char *path, const char *what, sq_error *err)
{
    sq__error_set(err, SQ_ECONFIG, "%s: cannot read config file: %s", path, what);
    return -1;
}

static int read_all(int fd, const char *path, char **text, size_t *len, sq_error *err)
{
    size_t cap = 0, n = 0;
    char *data = NULL;
    for (;;) {
        if (n > SQ__CONFIG_MAX_FILE) {
            free(data);
            return file_error(path, "larger than 1 MiB", err);
        }
        if (n + 1 >= cap) {
            char *grown = realloc(data, cap = cap ? cap * 2 : 4096);
            if (grown == NULL) {
                free(data);
                sq__error_set(err, SQ_ENOMEM, "%s: out of memory", path);
                return -1;
            }
            data = grown;
        }
        ssize_t r = read(fd, data + n, cap - n - 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int saved = errno;
            free(data);
            return file_error(path, strerror(saved), err);
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    data[n] = '\0';
    *text = data;
    *len = n;
    return 0;
}

int sq__config_read_file(const char *path, char **text, size_t *len, sq_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return file_error(path, strerror(errno), err);
    struct stat st;
    int rc = fstat(fd, &st) < 0    ? file_error(path, strerror(errno), err)
             : S_ISDIR(st.st_mode) ? file_error(path, strerror(EISDIR), err)
                                   : read_all(fd, path, text, len, err);
    close(fd);
    if (rc == 0 && strspn(*text, " \t\r\n") == *len) {
        free(*text);
        *text = NULL;
        return file_error(path, "the file is empty", err);
    }
    return rc;
}
