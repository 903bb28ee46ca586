/*
 * config_internal.h: the option table and the helpers that the config files
 * share (config.c, config_cli.c, config_yaml.c, yaml_doc.c, config_erb.c and
 * the erb_*.c files). Internal.
 *
 * Every setting goes through one row of the table: the YAML loader, the
 * command-line parser and the --help text all read it, and both the file and
 * the flags call the same setter, so a value is validated the same way
 * wherever it came from.
 */
#ifndef SQ_CONFIG_INTERNAL_H
#define SQ_CONFIG_INTERNAL_H

#include "common.h"
#include "config.h"
#include "redact.h"

/* Caps that protect the process from hostile or broken files. */
#define SQ__CONFIG_MAX_FILE (1024 * 1024) /* bytes in sidekiq.yml */
#define SQ__CONFIG_MAX_NODES 10000        /* YAML nodes visited, aliases expanded */
#define SQ__MAX_QUEUE_WEIGHT 1000
#define SQ__MAX_PAYLOAD_CAP (512L * 1024 * 1024) /* Redis proto-max-bulk-len */

typedef enum sq__opt_type {
    SQ__OPT_INT,     /* int field */
    SQ__OPT_LONG,    /* long field */
    SQ__OPT_SIZE,    /* size_t field */
    SQ__OPT_DOUBLE,  /* double field, > min */
    SQ__OPT_BOOL,    /* bool field; a flag without a value sets it */
    SQ__OPT_STRING,  /* owned char * field */
    SQ__OPT_FETCH,   /* basic | reliable */
    SQ__OPT_LEVEL,   /* debug | info | warn | error: int field, 0..3 */
    SQ__OPT_VERIFY,  /* none | peer: redis_opts.tls_no_verify (default peer) */
    SQ__OPT_METRICS, /* 8 | 7 | both | off: unsigned field (metrics.h layout bits) */
    SQ__OPT_QUEUES,  /* the queue list: "name", "name,weight" or [name, weight] */
    SQ__OPT_LIST,    /* owned char ** list (labels, require) */
    SQ__OPT_CONFIG,  /* -C: handled by the loader */
    SQ__OPT_ENV,     /* -e: handled by the loader */
    SQ__OPT_HELP,    /* -h */
    SQ__OPT_VERSION, /* -V */
} sq__opt_type;

typedef struct sq__option sq__option;

/* Apply one value. `where` prefixes any error ("<file>:<line>: key" or "-c");
 * text is the scalar as written (NULL for a flag without a value). For list
 * options it appends one element. Returns 0 or -1 with err set. */
typedef int (*sq__setter)(sq_config *c, const sq__option *o, const char *where, const char *text,
                          sq_error *err);

struct sq__option {
    const char *key;       /* YAML key, NULL for a flag-only option */
    int short_flag;        /* 0 if none */
    const char *long_flag; /* NULL if none */
    const char *arg_name;  /* the flag's value in --help; NULL: takes no value */
    sq__opt_type type;
    size_t offset;       /* field in sq_config (scalar types) */
    long min, max;       /* integer bounds; double: value must be > min */
    long def_long;       /* default for INT/LONG/SIZE/BOOL/FETCH */
    double def_double;   /* default for DOUBLE (0 = unset) */
    const char *def_str; /* default for STRING, or the text --help shows */
    const char *help;
    sq__setter set;
};

/* The table, in --help order; sq__options_count() rows. */
const sq__option *sq__options(void);
size_t sq__options_count(void);
/* The row for a YAML key (already stripped of its leading ':'), or NULL. */
const sq__option *sq__option_by_key(const char *key);
/* "an integer from 1 to 1000", "true or false", ... into buf. */
const char *sq__option_expects(const sq__option *o, char *buf, size_t size);
/* True for options whose YAML value is a sequence. */
bool sq__option_is_list(const sq__option *o);
/* Put an option back to its default (queues: ["default"]). */
void sq__option_default(sq_config *c, const sq__option *o);
/* Empty a list option before a file's sequence or a -q list replaces it. */
void sq__option_clear(sq_config *c, const sq__option *o);

/* Append queue `name` with weight text (NULL or "" = unweighted). */
int sq__config_add_queue(sq_config *c, const char *where, const char *name, const char *weight,
                         sq_error *err);
/* For config_validate.c: the number rule of row o (syntax, bounds) applied
 * to text, into c; and a config's queue list emptied. */
int sq__config_set_number(sq_config *c, const sq__option *o, const char *where, const char *text,
                          sq_error *err);
void sq__config_queues_free(sq_config *c);
/* "debug", "info", "warn" or "error" (level 0..3), for --help. */
const char *sq__config_level_name(long level);
/* Push a formatted warning onto c->warnings. -1 only when out of memory. */
int sq__config_warn(sq_config *c, sq_error *err, const char *fmt, ...) SQ_PRINTF(3, 4);




/* Read a whole config file (NUL-terminated copy in *text). Directories,
 * unreadable, empty and over-size files are SQ_ECONFIG errors naming path. */
int sq__config_read_file(const char *path, char **text, size_t *len, sq_error *err);

/* Ruby's Kernel#Integer on a string (erb_value.c): surrounding blanks, a sign, the bases
 * 0x 0b 0o 0d and a leading 0 (octal), single underscores between digits.
 * 0, or -1 when Ruby raises ArgumentError. */
int sq__ruby_integer(const char *s, size_t len, long long *out);

/* An ERB tag squire does not evaluate (config_erb.c): the expanded text
 * holds SQ__ERB_TOKEN "<index>_" in its place. */
#define SQ__ERB_TOKEN "__squire_unevaluated_erb_"
typedef struct sq__erb_skipped {
    unsigned long line;
    char form[96]; /* the expression as written, quoted and cut */
} sq__erb_skipped;
typedef struct sq__erb_skips {
    sq__erb_skipped *v;
    size_t n;
} sq__erb_skips;

/* Evaluate the ERB tags in text (see config_erb.c). *out is a new
 * NUL-terminated buffer of *outlen bytes with the same number of lines;
 * tags not evaluated are appended to skips (free skips->v). */
int sq__erb_expand(const char *name, const char *text, size_t len, sq_getenv_fn getenv_fn,
                   char **out, size_t *outlen, sq__erb_skips *skips, sq_error *err);
/* The skipped tag whose placeholder text holds, or NULL. */
const sq__erb_skipped *sq__erb_skip_in(const sq__erb_skips *skips, const char *text);

#endif
