/*
 * erb_internal.h: what the ERB files share (config_erb.c reads the tags,
 * erb_eval.c evaluates the expression inside one, erb_value.c holds Ruby's
 * values and conversions). Internal.
 */
#ifndef SQ_ERB_INTERNAL_H
#define SQ_ERB_INTERNAL_H

#include "config_internal.h"

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

/* ---- erb_value.c ----------------------------------------------------------- */

/* Append s[0..n) to b, keeping it NUL-terminated. */
int sq__erb_buf_add(buf *b, const char *s, size_t n, sq_error *err);
void sq__erb_vfree(value *v);
/* A form squire does not evaluate: -1 with status E_UNSUPPORTED. */
int sq__erb_unsupported(erb *e);
/* What Ruby raises on: -1 with status E_RUBY and the message (0 in a dead branch). */
int sq__erb_raise(erb *e, const char *fmt, ...) SQ_PRINTF(2, 3);
int sq__erb_oom(erb *e);
int sq__erb_set_str(erb *e, value *v, const char *s, size_t n);
void sq__erb_set_int(value *v, long long i);
void sq__erb_set_bool(value *v, bool b);
/* Ruby truthiness: all but nil and false. */
bool sq__erb_truthy(const value *v);
/* Ruby's == */
bool sq__erb_equal(const value *a, const value *b);
/* Ruby's to_s (inspect for the elements of a list) appended to out. */
int sq__erb_to_text(erb *e, const value *v, bool inspect, buf *out);
/* Ruby's String#to_i. */
long long sq__erb_string_to_i(const char *s, size_t len);
/* Kernel#Integer on a string value. */
int sq__erb_strict_integer(erb *e, const value *v, long long *out);

/* ---- erb_eval.c ------------------------------------------------------------ */

/* Evaluate the expression in p..end (a tag's body after "<%=") and append
 * its text to text. -1 with e->status E_UNSUPPORTED (defer the tag), E_RUBY
 * (e->ruby_error says what Ruby raises) or E_OK (err set: out of memory). */
int sq__erb_eval(erb *e, const char *p, const char *end, buf *text);

#endif
