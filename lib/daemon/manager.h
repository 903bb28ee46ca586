#ifndef SQ_MANAGER_H
#define SQ_MANAGER_H

#include "runtime.h"

/* The worker pool (manager.c), driven by the launcher on the main thread. */

/* Allocate rt->nworkers workers with their connections and keys. */
int sq_manager_prepare(sq_runtime *rt);
/* Start the worker threads and the poller; an errno value on failure. */
int sq_manager_start(sq_runtime *rt);
/* True while any worker holds a job (RUNNING or FINISHING). */
bool sq_manager_busy(sq_runtime *rt);
/* Hard shutdown: push every job still running back; returns how many were. */
int sq_manager_requeue_running(sq_runtime *rt);
/* Join the threads that finish within wait seconds; true when all did. */
bool sq_manager_join(sq_runtime *rt, double wait);
void sq_manager_free(sq_runtime *rt);
/* TTIN: log what every worker runs; signals: how many TTINs this answers
 * (at most one dump every `every` seconds). */
void sq_manager_dump(sq_runtime *rt, unsigned signals, double every);
/* The watchdog's question: is every thread turning (false: who is stuck)? */
bool sq_manager_progress(sq_runtime *rt, char *who, size_t size);

#endif
