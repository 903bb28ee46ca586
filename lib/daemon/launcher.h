#ifndef SQ_LAUNCHER_H
#define SQ_LAUNCHER_H

#include <signal.h>

#include "config.h"

#define EX_USAGE 64
#define EX_NOPERM 77
#define EX_CONFIG 78

/* The daemon's life (launcher.c): start-up, serve until TERM/INT, shutdown.
 * Returns the process exit status. */
int sq_launcher_run(const sq_config *cfg, sq_registry *reg);
/* The signals the main thread waits for (blocked in every thread). */
void sq_launcher_signal_set(sigset_t *set);

/* squire --check (check.c): the process exit status. */
int sq__check(const sq_config *cfg, sq_registry *reg);

#endif
