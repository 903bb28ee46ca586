/*
 * proctitle.h: the title `ps` and `top` show for the daemon (issue 16), as
 * Sidekiq sets $0: "squire 0.1.0 shop [2 of 5 busy]", then "quiet" or
 * "stopping" at the end once the process is told so.
 *
 * Linux shows /proc/<pid>/cmdline, the memory of the original argv strings:
 * sq_proctitle_init takes that memory over (with the environment strings
 * that follow it, which are copied first; a title uses them only when argv's
 * are too short, and then only up to the end of the string it reaches, so
 * /proc/<pid>/environ keeps the rest), so it must run before any other
 * thread starts and before anything keeps a pointer to an environment
 * string. It copies argv's strings and points argv at the copies, so the
 * caller's argv stays readable. When argv is not the process's own (a
 * program calling sq_main with an argv it made), the title is left alone.
 */
#ifndef SQ_PROCTITLE_H
#define SQ_PROCTITLE_H

#include <stddef.h>

/* Returns 0 when titles can be set, -1 when they cannot (they are ignored). */
int sq_proctitle_init(int argc, char **argv);
/* Show title (cut to the space there is). */
void sq_proctitle_set(const char *title);
/* The longest title there is room for (0: titles are not set). */
size_t sq_proctitle_room(void);
/* "squire <version> [<tag> ][<busy> of <concurrency> busy][ <state>]" into
 * buf; like snprintf, except that a tag too long for size is cut first. tag
 * and state may be NULL or "". */
int sq_proctitle_format(char *buf, size_t size, const char *tag, int busy, int concurrency,
                        const char *state);

#endif
