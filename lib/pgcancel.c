/*
 * pgcancel.c: a cancel request with a limit.
 *
 * PQcancel opens a connection of its own to the server, sends the request
 * and waits for the server to close it, all blocking and without a limit
 * (libpq 15): a server that is frozen (its postmaster stopped, its host
 * gone from the network) while the kernel still accepts the connection
 * holds the caller for ever. The pool cancels a query a handler left
 * running on the worker putting the connection back, so the request runs
 * on a thread of its own, and the worker waits for it only until its
 * deadline. A request still waiting then is left to its thread, which frees
 * what it holds when the server answers or the connection breaks.
 */
#include "pgcancel.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common.h"

typedef struct request {
    const sq_pq *pq; /* pq.c's table: lives as long as the process */
    PGcancel *k;
    pthread_mutex_t lock; /* guards what follows */
    pthread_cond_t cond;  /* done */
    bool done, ok, abandoned;
    char why[256];
} request;

static void request_free(request *r)
{
    r->pq->PQfreeCancel(r->k);
    pthread_cond_destroy(&r->cond);
    pthread_mutex_destroy(&r->lock);
    free(r);
}

static void *send_cancel(void *arg)
{
    request *r = arg;
    char why[256] = "";
    bool ok = r->pq->PQcancel(r->k, why, sizeof why);
    pthread_mutex_lock(&r->lock);
    r->done = true;
    r->ok = ok;
    snprintf(r->why, sizeof r->why, "%s", why);
    bool abandoned = r->abandoned;
    pthread_cond_signal(&r->cond);
    pthread_mutex_unlock(&r->lock);
    if (abandoned)
        request_free(r);
    return NULL;
}

int sq_pg_cancel(const sq_pq *pq, PGconn *c, double until, char *why, size_t size)
{
    request *r = calloc(1, sizeof *r);
    if (r == NULL || (r->k = pq->PQgetCancel(c)) == NULL) {
        free(r);
        snprintf(why, size, "out of memory");
        return 0;
    }
    r->pq = pq;
    pthread_mutex_init(&r->lock, NULL);
    sq__cond_init_monotonic(&r->cond);
    pthread_attr_t attr;
    pthread_t t;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int e = pthread_create(&t, &attr, send_cancel, r);
    pthread_attr_destroy(&attr);
    if (e != 0) {
        snprintf(why, size, "cannot start a thread for it: %s", strerror(e));
        request_free(r);
        return 0;
    }
    double left = until - sq__monotonic();
    struct timespec deadline = sq__deadline_in(left > 0 ? left : 0);
    pthread_mutex_lock(&r->lock);
    while (!r->done && pthread_cond_timedwait(&r->cond, &r->lock, &deadline) != ETIMEDOUT)
        ;
    bool done = r->done;
    int rc = done ? r->ok : -1;
    if (done)
        snprintf(why, size, "%s", r->why);
    else
        snprintf(why, size, "the server did not take the request in time");
    r->abandoned = !done;
    pthread_mutex_unlock(&r->lock);
    if (done)
        request_free(r);
    return rc;
}
