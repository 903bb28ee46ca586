/*
 * yaml_doc.c: reading sidekiq.yml as a YAML document, within bounds.
 *
 * The file is read whole (at most SQ__CONFIG_MAX_FILE bytes). Its text (after
 * the ERB subset, config_erb.c) goes through libyaml's event parser alone,
 * which stops at the first node nested more than MAX_DEPTH deep or past
 * SQ__CONFIG_MAX_NODES (libyaml's costs grow faster than the text on such
 * input), then libyaml's document loader. Before anything is applied the
 * whole document is walked once with aliases expanded, capped at
 * SQ__CONFIG_MAX_NODES nodes and a fixed depth, which stops billion-laughs
 * documents and alias cycles. Mappings are flattened with the `<<` merge key
 * applied and duplicate keys rejected (libyaml leaves that check to the
 * loader).
 */
#include "yaml_doc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_DEPTH 64

unsigned long sq__yaml_line_of(const yaml_node_t *n)
{
    return (unsigned long)n->start_mark.line + 1;
}

const char *sq__yaml_scalar(const yaml_node_t *n)
{
    return (const char *)n->data.scalar.value;
}

bool sq__yaml_is_null(const yaml_node_t *n)
{
    if (n == NULL)
        return true;
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    const char *s = sq__yaml_scalar(n);
    return strcmp(s, "") == 0 || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 ||
           strcmp(s, "Null") == 0 || strcmp(s, "NULL") == 0;
}

const char *sq__yaml_describe(const yaml_node_t *n, char *buf, size_t size)
{
    if (sq__yaml_is_null(n))
        return "null";
    if (n->type == YAML_MAPPING_NODE)
        return "a mapping";
    if (n->type == YAML_SEQUENCE_NODE)
        return "a sequence";
    return sq__quote(sq__yaml_scalar(n), n->data.scalar.length, buf, size);
}

/* A key for a message: as written when plain, else quoted and escaped. */
const char *sq__yaml_key_text(const char *key, char *buf, size_t size)
{
    size_t n = strlen(key);
    for (size_t i = 0; i < n; i++)
        if (key[i] <= ' ' || key[i] > '~' || key[i] == '"')
            return sq__quote(key, n, buf, size);
    return n == 0 || n > 40 ? sq__quote(key, n, buf, size) : key;
}

int sq__yaml_fail(yctx *y, const yaml_node_t *at, const char *key, const char *what,
                  const yaml_node_t *got)
{
    char buf[128];
    sq__error_set(y->err, SQ_ECONFIG, "%s:%lu: %s: expected %s, got %s", y->name,
                  sq__yaml_line_of(at), key, what, sq__yaml_describe(got, buf, sizeof buf));
    return -1;
}

/* A scalar's text: NULs refused, and a plain `:sym` is Ruby's Symbol, i.e. "sym". */
const char *sq__yaml_text_of(yctx *y, const yaml_node_t *n, const char *key)
{
    const char *s = sq__yaml_scalar(n);
    if (strlen(s) != n->data.scalar.length) {
        sq__error_set(y->err, SQ_ECONFIG, "%s:%lu: %s: expected text, got a NUL character", y->name,
                      sq__yaml_line_of(n), key);
        return NULL;
    }
    if (n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && s[0] == ':' && s[1] != '\0')
        s++;
    return s;
}

yaml_node_t *sq__yaml_node(yctx *y, int index)
{
    return yaml_document_get_node(&y->doc, index);
}

static bool is_merge_key(const yaml_node_t *k)
{
    return k->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && strcmp(sq__yaml_scalar(k), "<<") == 0;
}

/* A key's name for Sidekiq: a plain `:key` is Ruby's Symbol :key, the same
 * as `key`; a quoted ":key" is the symbol :":key", another key. */
static const char *key_name(const yaml_node_t *k)
{
    const char *s = sq__yaml_scalar(k);
    return k->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && s[0] == ':' && s[1] != '\0' ? s + 1
                                                                                          : s;
}

static int duplicate(yctx *y, const yaml_node_t *k, const yaml_node_t *first)
{
    char buf[128];
    sq__error_set(y->err, SQ_ECONFIG, "%s:%lu: %s: duplicate key (also on line %lu)", y->name,
                  sq__yaml_line_of(k), sq__yaml_key_text(sq__yaml_scalar(k), buf, sizeof buf),
                  sq__yaml_line_of(first));
    return -1;
}

/* Duplicate keys in any mapping, not only the ones squire reads. */
static int check_duplicates(yctx *y, const yaml_node_t *map)
{
    yaml_node_pair_t *start = map->data.mapping.pairs.start, *top = map->data.mapping.pairs.top;
    for (yaml_node_pair_t *p = start; p < top; p++) {
        yaml_node_t *k = sq__yaml_node(y, p->key);
        if (k->type != YAML_SCALAR_NODE || is_merge_key(k))
            continue;
        for (yaml_node_pair_t *q = start; q < p; q++) {
            yaml_node_t *kq = sq__yaml_node(y, q->key);
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
int sq__yaml_walk(yctx *y, yaml_node_t *n, int depth)
{
    if (++y->visited > SQ__CONFIG_MAX_NODES)
        return too_large(y, sq__yaml_line_of(n));
    if (depth > MAX_DEPTH)
        return too_deep(y, sq__yaml_line_of(n));
    if (n->type == YAML_SEQUENCE_NODE) {
        for (yaml_node_item_t *i = n->data.sequence.items.start; i < n->data.sequence.items.top;
             i++)
            if (sq__yaml_walk(y, sq__yaml_node(y, *i), depth + 1) < 0)
                return -1;
    } else if (n->type == YAML_MAPPING_NODE) {
        if (check_duplicates(y, n) < 0)
            return -1;
        for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++)
            if (sq__yaml_walk(y, sq__yaml_node(y, p->key), depth + 1) < 0 ||
                sq__yaml_walk(y, sq__yaml_node(y, p->value), depth + 1) < 0)
                return -1;
    }
    return 0;
}

const ypair *sq__yaml_map_find(const ymap *m, const char *key)
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

/* `<<: *base` or `<<: [*a, *b]`: keys not already present, earlier sources first. */
static int merge(yctx *y, yaml_node_t *src, ymap *out)
{
    if (src->type == YAML_SEQUENCE_NODE) {
        for (yaml_node_item_t *i = src->data.sequence.items.start; i < src->data.sequence.items.top;
             i++)
            if (merge(y, sq__yaml_node(y, *i), out) < 0)
                return -1;
        return 0;
    }
    if (src->type != YAML_MAPPING_NODE)
        return sq__yaml_fail(y, src, "<<", "a mapping or a list of mappings to merge", src);
    ymap from = {0};
    int rc = sq__yaml_flatten(y, src, &from);
    for (size_t i = 0; rc == 0 && i < from.n; i++)
        if (sq__yaml_map_find(out, from.v[i].key) == NULL)
            rc = map_add(y, out, from.v[i].key, from.v[i].knode, from.v[i].value);
    free(from.v);
    return rc;
}

static int add_explicit(yctx *y, ymap *out, yaml_node_t *k, yaml_node_t *v)
{
    if (k->type != YAML_SCALAR_NODE)
        return sq__yaml_fail(y, k, "(key)", "a plain key", k);
    const char *key = sq__yaml_text_of(y, k, "(key)");
    if (key == NULL)
        return -1;
    const ypair *dup = sq__yaml_map_find(out, key);
    if (dup != NULL)
        return duplicate(y, k, dup->knode);
    return map_add(y, out, key, k, v);
}

/* The pairs of a mapping node, merge keys applied, duplicates refused. */
int sq__yaml_flatten(yctx *y, yaml_node_t *map, ymap *out)
{
    yaml_node_pair_t *start = map->data.mapping.pairs.start, *top = map->data.mapping.pairs.top;
    for (yaml_node_pair_t *p = start; p < top; p++) {
        yaml_node_t *k = sq__yaml_node(y, p->key);
        if (!(k->type == YAML_SCALAR_NODE && is_merge_key(k)) &&
            add_explicit(y, out, k, sq__yaml_node(y, p->value)) < 0)
            return -1;
    }
    for (yaml_node_pair_t *p = start; p < top; p++) {
        yaml_node_t *k = sq__yaml_node(y, p->key);
        if (k->type == YAML_SCALAR_NODE && is_merge_key(k) &&
            merge(y, sq__yaml_node(y, p->value), out) < 0)
            return -1;
    }
    return 0;
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
 * and only a document within them is loaded and walked (sq__yaml_walk() then bounds
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
    if (*open > MAX_DEPTH) /* the node's depth, as sq__yaml_walk() counts it */
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
int sq__yaml_load(yctx *y, const char *text, size_t len, sq__yaml_apply_fn apply)
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
                              sq__yaml_line_of(second));
            yaml_node_t *root = yaml_document_get_root_node(&y->doc);
            rc = second != NULL ? -1 : root == NULL ? 0 : apply(y, root);
            yaml_document_delete(&extra);
        }
        yaml_document_delete(&y->doc);
    }
    yaml_parser_delete(&parser);
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
