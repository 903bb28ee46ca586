/*
 * fetch/recovery.h: the reliable strategy's bookkeeping in Redis
 * (recovery.c): leases, the working-list registry, recovery of dead
 * processes' jobs; and a worker's reliable state, which both reliable.c and
 * recovery.c read. Only fetch/ includes it.
 */
#ifndef SQ_FETCH_RECOVERY_H
#define SQ_FETCH_RECOVERY_H

#include "fetch.h"

/* A worker's own state (w->fetch_state), made by reliable.c's
 * worker_init; the working lists are what recovery.c registers. */
typedef struct reliable_worker {
    char **wkeys;  /* this worker's working list per queue */
    char *ack_raw; /* a finished job whose LREM rides on the next fetch */
    size_t ack_len;
    size_t ack_qidx;
    unsigned rounds;    /* fetches so far: rotates the queue blocked on when idle */
    bool scan_stranded; /* a fetch failed: the next one looks for a job it moved */
} reliable_worker;

#define RW(w) ((reliable_worker *)(w)->fetch_state)

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

#endif
