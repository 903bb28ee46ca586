#ifndef SQ_DATABASE_H
#define SQ_DATABASE_H

#include "runtime.h"

/* Make rt->pgpool when a database is configured (its connections come when
 * jobs ask: PostgreSQL being down does not stop the start) and start the
 * budget thread (dbask.c). -1: out of memory. */
int sq_database_open(sq_runtime *rt);
/* Main thread, every turn of its loop; never waits on PostgreSQL. Weigh the
 * connection budget when the server's limits come, and at every beat (beat:
 * a heartbeat just went through). */
void sq_database_budget(sq_runtime *rt, bool beat);
/* Stop the budget thread and free rt->pgpool (left as is when the thread
 * cannot be stopped: the process is exiting). */
void sq_database_close(sq_runtime *rt);

#endif
