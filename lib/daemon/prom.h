/*
 * prom.h: the Prometheus text exposition format, version 0.0.4
 * (https://prometheus.io/docs/instrumenting/exposition_formats/), written
 * into a growing buffer. Pure: no clock, no I/O, no globals.
 *
 * A family is opened with sq_prom_family (its # HELP and # TYPE lines)
 * and followed by its samples. Label values are escaped as the format asks
 * (backslash, double quote, line feed) and made valid UTF-8 (each byte of
 * an invalid sequence becomes U+FFFD), so a hostile job class cannot break
 * the output. Numbers: integers as integers, others with 17 significant
 * digits, +Inf / -Inf / NaN spelled as Prometheus reads them.
 *
 * Allocation failures are remembered: every later call is a no-op and
 * sq_prom_finish returns NULL.
 */
#ifndef SQ_PROM_H
#define SQ_PROM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct sq_prom {
    char *buf;
    size_t len, cap;
    bool failed; /* out of memory */
} sq_prom;

/* Labels as a NULL-terminated list of name, value pairs; names must be
 * valid Prometheus label names (the caller's constants), values any bytes
 * up to NUL. NULL means no labels. */
typedef const char *const *sq_prom_labels;

void sq_prom_init(sq_prom *p);
/* type: "counter", "gauge" or "histogram". help is written escaped. */
void sq_prom_family(sq_prom *p, const char *name, const char *type, const char *help);
void sq_prom_sample(sq_prom *p, const char *name, sq_prom_labels labels, double value);
/* One histogram series: nb upper bounds (ascending, finite) with the count
 * of observations that fell into each bucket (not cumulative: this call
 * accumulates), then the +Inf bucket, _sum and _count. counts has nb + 1
 * entries, the last for observations above the highest bound. */
void sq_prom_histogram(sq_prom *p, const char *name, sq_prom_labels labels, const double *bounds,
                       const uint64_t *counts, size_t nb, double sum);
/* s (len bytes, up to a NUL) as the label value it will be shown as: valid
 * UTF-8 (U+FFFD for each bad byte), cut at a character boundary to fit cap
 * bytes with its NUL. Values kept to count by should be made with this, so
 * that two that are shown alike are counted as one series. */
size_t sq_prom_label_copy(char *out, size_t cap, const char *s, size_t len);
/* The text (malloc'd, NUL-terminated, *len bytes), or NULL when an
 * allocation failed; p is empty afterwards either way. */
char *sq_prom_finish(sq_prom *p, size_t *len);
void sq_prom_destroy(sq_prom *p);

#endif
