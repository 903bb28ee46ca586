#ifndef SQ_PGCANCEL_H
#define SQ_PGCANCEL_H

/*
 * pgcancel.h: a cancel request with a limit (pgcancel.c).
 */
#include <stddef.h>

#include "pq.h"

/* Ask c's server to cancel what c runs (libpq's PQcancel), waiting for it
 * until the monotonic time until. 1: sent; 0: failed, why says why; -1: the
 * server did not take it by until (why says so); the request is then left
 * to finish on its own thread, and c may be closed. */
int sq_pg_cancel(const sq_pq *pq, PGconn *c, double until, char *why, size_t size);

#endif
