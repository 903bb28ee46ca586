/*
 * dbask.c: the server's connection limits (the budget check, database.c),
 * asked on a thread of its own.
 *
 * Asking means connecting and running a query, and a PostgreSQL server that
 * accepts the connection and never answers holds the asker for as long as
 * libpq waits: the URL's connect_timeout, which may be 300 s or none. On the
 * main thread that wait would stop the lease renewal (peers would recover
 * this live process's jobs), the heartbeat, signals and the watchdog. So the
 * main thread only reads what this thread publishes (sq_dbask_news, under a
 * lock never held across a call to the server), at every turn of its loop.
 *
 * The thread asks at once, then again every SQ_DBASK_AGAIN seconds after a
 * failure, and ends with the first answer. Its waits on the server are
 * squire's own (pgpool.c: libpq's non-blocking calls with poll), so the stop
 * flag ends them within 100 ms: a shutdown never waits for connect_timeout.
 */
#include "dbask.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common.h"

struct sq_dbask {
    sq_pgpool *pool; /* borrowed */
    pthread_t thread;
    atomic_bool stop;
    pthread_mutex_t lock; /* guards what follows */
    pthread_cond_t cond;  /* stop set, or the thread ended */
    int news;             /* 1 answered, -1 failed, 0 nothing since the last read */
    sq_pg_limits lim;
    sq_error err;
    bool done; /* the thread has ended */
};

static void *ask(void *arg)
{
    sq_dbask *a = arg;
    for (;;) {
        sq_pg_limits lim = {0};
        sq_error err = {0};
        int rc = sq_pgpool_budget(a->pool, &lim, &a->stop, &err);
        pthread_mutex_lock(&a->lock);
        if (!atomic_load(&a->stop)) {
            a->news = rc == 0 ? 1 : -1;
            a->lim = lim;
            a->err = err;
        }
        struct timespec again = sq__deadline_in(SQ_DBASK_AGAIN);
        while (rc != 0 && !atomic_load(&a->stop) &&
               pthread_cond_timedwait(&a->cond, &a->lock, &again) != ETIMEDOUT)
            ;
        bool end = rc == 0 || atomic_load(&a->stop);
        if (end) {
            a->done = true;
            pthread_cond_broadcast(&a->cond);
        }
        pthread_mutex_unlock(&a->lock);
        if (end)
            return NULL;
    }
}

sq_dbask *sq_dbask_start(sq_pgpool *pool, sq_error *err)
{
    sq_dbask *a = calloc(1, sizeof *a);
    if (a == NULL) {
        sq__error_set(err, SQ_ENOMEM, "out of memory");
        return NULL;
    }
    a->pool = pool;
    atomic_init(&a->stop, false);
    pthread_mutex_init(&a->lock, NULL);
    sq__cond_init_monotonic(&a->cond);
    int e = pthread_create(&a->thread, NULL, ask, a);
    if (e != 0) {
        sq__error_set(err, SQ_EIO, "cannot start the database budget thread: %s", strerror(e));
        pthread_cond_destroy(&a->cond);
        pthread_mutex_destroy(&a->lock);
        free(a);
        return NULL;
    }
    return a;
}

int sq_dbask_news(sq_dbask *a, sq_pg_limits *lim, sq_error *err)
{
    pthread_mutex_lock(&a->lock);
    int news = a->news;
    if (news > 0)
        *lim = a->lim;
    else if (news < 0)
        *err = a->err;
    a->news = 0;
    pthread_mutex_unlock(&a->lock);
    return news;
}

bool sq_dbask_stop(sq_dbask *a, double wait)
{
    if (a == NULL)
        return true;
    struct timespec until = sq__deadline_in(wait);
    pthread_mutex_lock(&a->lock);
    atomic_store(&a->stop, true);
    pthread_cond_broadcast(&a->cond);
    while (!a->done && pthread_cond_timedwait(&a->cond, &a->lock, &until) != ETIMEDOUT)
        ;
    bool done = a->done;
    pthread_mutex_unlock(&a->lock);
    if (!done) {
        pthread_detach(a->thread); /* still in libpq; the process is exiting */
        return false;
    }
    pthread_join(a->thread, NULL);
    pthread_cond_destroy(&a->cond);
    pthread_mutex_destroy(&a->lock);
    free(a);
    return true;
}
