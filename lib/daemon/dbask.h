#ifndef SQ_DBASK_H
#define SQ_DBASK_H

/*
 * dbask.h: the server's connection limits, asked on a thread of its own
 * (dbask.c), so that a PostgreSQL that is down, slow or hanging never holds
 * the main thread.
 */
#include <stdbool.h>

#include "pgpool.h"

typedef struct sq_dbask sq_dbask;

/* Start asking pool's server for its limits (sq_pgpool_budget): now, then
 * every SQ_DBASK_AGAIN seconds after a failure, until it answers. NULL with
 * err when out of memory or no thread can be made. pool must outlive it
 * (sq_dbask_stop). */
#define SQ_DBASK_AGAIN 60.0
sq_dbask *sq_dbask_start(sq_pgpool *pool, sq_error *err);

/* What came since the last call (main thread; never waits on the server):
 * 1 the answer, into *lim (the thread has then ended); -1 a failure, into
 * err; 0 nothing new. */
int sq_dbask_news(sq_dbask *a, sq_pg_limits *lim, sq_error *err);

/* Stop the thread (a wait on the server ends within 100 ms) and free a.
 * False when it did not end within wait seconds (a call libpq cannot be
 * interrupted in: a host name that takes long to resolve): it is then left
 * running, a not freed, and the caller must not free the pool (the process
 * is exiting). NULL: true. */
bool sq_dbask_stop(sq_dbask *a, double wait);

#endif
