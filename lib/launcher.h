#ifndef SQ_LAUNCHER_H
#define SQ_LAUNCHER_H

#include "config.h"

/* squire --check (check.c): the process exit status. */
int sq__check(const sq_config *cfg, sq_registry *reg);

#endif
