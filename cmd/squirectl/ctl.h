#ifndef SQUIRECTL_H
#define SQUIRECTL_H

#include <squire.h>

#define CTL_OK 0
#define CTL_ERROR 1
#define CTL_USAGE 64

/* A subcommand: argv[0] is its own name; url may be NULL (environment). */
struct ctl_command {
    const char *name;
    const char *help;
    int (*run)(const char *url, int argc, char **argv);
};

int ctl_push(const char *url, int argc, char **argv);

/* Parse a time: epoch seconds ("1700000000.5") or ISO 8601 UTC
 * ("2026-11-22T12:00:00Z"). Returns 0 or -1. */
int ctl_parse_time(const char *s, double *out);

#endif
