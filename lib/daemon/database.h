#ifndef SQ_DATABASE_H
#define SQ_DATABASE_H

#include "runtime.h"

/* Make rt->pgpool when a database is configured (its connections come when
 * jobs ask: PostgreSQL being down does not stop the start). -1: out of memory. */
int sq_database_open(sq_runtime *rt);
/* Weigh the connection budget (first: at start, the verdict always logged). */
void sq_database_budget(sq_runtime *rt, bool first);

#endif
