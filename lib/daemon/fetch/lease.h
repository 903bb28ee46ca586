/*
 * fetch/lease.h: the reliable strategy's main-thread duties (lease.c).
 */
#ifndef SQ_FETCH_LEASE_H
#define SQ_FETCH_LEASE_H

#include "fetch.h"

/* The main thread's duties (lease.c), as sq_fetch_ops attach / tick / detach. */
int sq__reliable_attach(sq_runtime *rt, sq_error *err);
double sq__reliable_tick(sq_runtime *rt, bool stopping);
void sq__reliable_detach(sq_runtime *rt, bool release);

#endif
