/*
 * fetch/reliable.h: the reliable strategy's parts (reliable.c: the workers'
 * side; recovery.c: leases, the registry and recovery; lease.c: the main
 * thread's schedule of them). Only fetch/ includes it.
 */
#ifndef SQ_FETCH_RELIABLE_H
#define SQ_FETCH_RELIABLE_H

#include "fetch.h"

/* Reliable fetch bookkeeping (recovery.c), all on the main thread's connection. */
#define SQ_WLISTS_KEY "squire:wlists"
/* Renew this process's lease in one script that, when the lease had lapsed
 * (or force is set), registers every working list again in the same step;
 * sets *lapsed when it had. */
int sq_lease_renew(sq_runtime *rt, bool force, bool *lapsed, sq_error *err);
/* Push back the jobs of dead processes (under a lock). Returns jobs recovered. */
long sq_recovery_run(sq_runtime *rt, sq_error *err);
/* One step of the slow sweep: SCAN from cursor ("0" starts; "0" again when
 * done) for squire:w:* lists the registry lacks; register them, and put back
 * the jobs of those whose process is gone (*recovered). */
int sq_recovery_sweep(sq_runtime *rt, char cursor[32], long *recovered, sq_error *err);
/* At a clean exit: drop our empty working lists, registry entries and lease. */
void sq_recovery_release(sq_runtime *rt);
/* The working list of worker tid for queue q (malloc'd). */
char *sq_working_list_key(const char *identity, const char *tid, const char *queue);

/* The main thread's duties (lease.c), as sq_fetch_ops attach / tick / detach. */
int sq__reliable_attach(sq_runtime *rt, sq_error *err);
double sq__reliable_tick(sq_runtime *rt, bool stopping);
void sq__reliable_detach(sq_runtime *rt, bool release);

#endif
