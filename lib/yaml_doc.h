/*
 * yaml_doc.h: sidekiq.yml as a YAML document, read within bounds
 * (yaml_doc.c), for the loader that maps Sidekiq's keys (config_yaml.c).
 * Internal.
 */
#ifndef SQ_YAML_DOC_H
#define SQ_YAML_DOC_H

#include "config_internal.h"

#include <yaml.h>

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

/* Apply the loaded document's root node (not NULL). 0 or -1 with y->err. */
typedef int (*sq__yaml_apply_fn)(yctx *y, yaml_node_t *root);

/* Bound the event stream (depth, nodes, %TAG directives, syntax), load the
 * first document, refuse a second one and hand the root to apply. */
int sq__yaml_load(yctx *y, const char *text, size_t len, sq__yaml_apply_fn apply);
/* Walk everything once, aliases expanded, against a node budget and a depth
 * cap (duplicate keys refused in every mapping). */
int sq__yaml_walk(yctx *y, yaml_node_t *n, int depth);
/* The pairs of a mapping node, merge keys applied, duplicates refused. */
int sq__yaml_flatten(yctx *y, yaml_node_t *map, ymap *out);
const ypair *sq__yaml_map_find(const ymap *m, const char *key);
yaml_node_t *sq__yaml_node(yctx *y, int index);

unsigned long sq__yaml_line_of(const yaml_node_t *n);
const char *sq__yaml_scalar(const yaml_node_t *n);
/* A plain empty, ~ or null scalar (or no node). */
bool sq__yaml_is_null(const yaml_node_t *n);
/* "null", "a mapping", "a sequence" or the scalar quoted, into buf. */
const char *sq__yaml_describe(const yaml_node_t *n, char *buf, size_t size);
/* A key for a message: as written when plain, else quoted and escaped. */
const char *sq__yaml_key_text(const char *key, char *buf, size_t size);
/* "<file>:<line>: key: expected what, got <got>" as y->err; -1. */
int sq__yaml_fail(yctx *y, const yaml_node_t *at, const char *key, const char *what,
                  const yaml_node_t *got);
/* A scalar's text: NULs refused, and a plain `:sym` is Ruby's Symbol, i.e. "sym". */
const char *sq__yaml_text_of(yctx *y, const yaml_node_t *n, const char *key);

#endif
