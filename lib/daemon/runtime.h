/*
 * runtime.h: the daemon's moving parts and who owns what.
 *
 * Threads:
 *   main       signals (sigtimedwait: no handler code at all), stats flushes,
 *              the shutdown sequence. Owns rt->redis.
 *   w0..wN-1   workers: fetch a job, run its handler, record the result.
 *              Each owns its sq_redis and its current job.
 *   poller     moves due members of `retry` and `schedule` to their queues.
 *              Owns its sq_redis.
 *   dbbudget   with a database: asks PostgreSQL's limits (dbask.c), so
 *              that the main thread never waits on PostgreSQL. No Redis.
 *
 * Shared state lives in sq_runtime: flags are atomics; each worker's slot
 * (what it is running) is guarded by the worker's own mutex, because the
 * main thread reads it for TTIN and takes it over at hard shutdown. rt->lock
 * only pairs with rt->cond for sleeps; no thread holds two locks at once.
 *
 * A worker publishes a fetched job in its slot (under its lock) before doing
 * anything else with it, checking `quiet` there: the main thread sets quiet
 * before it looks at any slot, so every fetched job is either seen RUNNING by
 * the shutdown (and pushed back by it) or given back by its worker.
 *
 * Shutdown (TERM/INT): quiet (no more fetches, poller stops) -> wait up to
 * `timeout` for running jobs -> for every job still RUNNING, mark the slot
 * ABANDONED and push its exact bytes back to the front of its queue -> flush
 * stats -> exit. A worker whose slot was abandoned drops its result.
 */
#ifndef SQ_RUNTIME_H
#define SQ_RUNTIME_H

#include <pthread.h>
#include <stdatomic.h>

#include "config.h"
#include "dbbudget.h"
#include "job.h"
#include "queues.h"
#include "pgpool.h"
#include "redis.h"

/* A stats flush not yet acknowledged: sent again, as it was, until a reply comes. */
typedef struct sq_stats_batch {
    long processed, failed;
    long seq; /* its number; Redis applies each number once */
    char date[16];
} sq_stats_batch;

typedef struct sq_runtime sq_runtime;
typedef struct sq_worker sq_worker;

/* A fetched job as Redis knows it: the exact bytes and where they came from. */
typedef struct sq_unit {
    char *raw;    /* owned, NUL-terminated at len */
    size_t len;
    char *queue;  /* owned queue name, no "queue:" prefix */
    size_t qidx;  /* index of the queue in rt->order.names */
} sq_unit;

void sq_unit_clear(sq_unit *u);

/* The fetch strategy (fetch/fetch.h): chosen once, asked nothing about. */
typedef struct sq_fetch_ops sq_fetch_ops;

typedef enum sq_slot_state {
    SQ_SLOT_IDLE = 0,
    SQ_SLOT_RUNNING,   /* the handler has the job */
    SQ_SLOT_FINISHING, /* the worker is recording the result */
    SQ_SLOT_ABANDONED, /* shutdown pushed the job back; drop the result */
} sq_slot_state;

/*
 * A worker's slot: what it runs, seen by the main thread (TTIN, heartbeat,
 * watchdog) and taken over at hard shutdown. Opaque: its rules live in
 * runtime.c alone. The worker moves it IDLE -> RUNNING (publish) ->
 * FINISHING (claim) -> IDLE (release); the main thread may move RUNNING ->
 * ABANDONED (abandon), after which the worker's claim fails and it drops
 * its result.
 */
typedef struct sq_slot sq_slot;

/* What a slot shows, under its lock (peek). */
typedef struct sq_slot_view {
    sq_slot_state state;
    const sq_unit *unit; /* the published job (raw may be NULL when idle) */
    const char *klass, *jid; /* "" until named */
    double started_at;   /* wall clock at publish */
} sq_slot_view;

sq_slot *sq_slot_new(void);
void sq_slot_free(sq_slot *s);
/* Worker: show a fetched job u (borrowed until release) before anything else
 * happens to it. False when `quiet` is set: the slot is then FINISHING (busy,
 * so the shutdown waits) and the caller gives the job back. */
bool sq_slot_publish(sq_slot *s, const sq_unit *u, atomic_bool *quiet);
/* Worker: the class and jid, once parsed. */
void sq_slot_name(sq_slot *s, const char *klass, const char *jid);
/* Worker: take the result back from RUNNING (-> FINISHING). False when
 * the shutdown abandoned it (pushed it back): drop the result. */
bool sq_slot_claim(sq_slot *s);
/* Worker: done with the job (-> IDLE). */
void sq_slot_release(sq_slot *s);
/* Main thread at hard shutdown: RUNNING -> ABANDONED, with a copy of the job
 * into *copy (its raw or queue NULL when out of memory). False: not running. */
bool sq_slot_abandon(sq_slot *s, sq_unit *copy);
/* The jid the slot shows ("" until named), into out. */
void sq_slot_jid(sq_slot *s, char out[64]);
sq_slot_state sq_slot_state_now(sq_slot *s);
/* RUNNING or FINISHING: a job is held. */
bool sq_slot_busy(sq_slot *s);
/* Call fn with the slot's view, under its lock (fn must not block). */
void sq_slot_peek(sq_slot *s, void (*fn)(const sq_slot_view *v, void *ud), void *ud);

struct sq_worker {
    sq_runtime *rt;
    int index;
    char tid[16];
    pthread_t thread;
    bool started;
    sq_redis *redis;
    sq_client *client;      /* borrows redis, for sq_job_client */
    size_t *order;          /* queue indexes for one fetch */
    size_t *scratch;
    char **keys;            /* "queue:<name>" per queue index */
    double *skip_until;     /* per queue: wrong-typed key, not asked for until then */
    char aside_error[160];  /* why the last queue was set aside */
    void *fetch_state;      /* the fetch strategy's own (its worker_init makes it) */
    bool saw_stop;          /* the current handler saw sq_job_stopping() say true */
    atomic_llong alive_ms;  /* monotonic ms of the loop's last turn (watchdog) */
    atomic_llong fetch_failing_ms; /* monotonic ms when fetches began to fail; 0: they work */
    char fetch_error[200];  /* the first failure of that run (under lock) */
    PGconn *db;             /* checked out by the current job (sq_job_db), or NULL */
    uint64_t rng;

    pthread_mutex_t lock;   /* guards fetch_error */
    sq_slot *slot;          /* what it runs (runtime.c) */
};

struct sq_runtime {
    const sq_config *cfg;
    sq_registry *reg;
    sq_redis_url url;
    sq_queue_order order;
    sq_job_limits limits;
    const sq_fetch_ops *fetch;
    void *fetch_main;       /* the strategy's main-thread state (its attach makes it) */
    char identity[300];
    char lease_key[320];    /* squire:lease:<identity> */

    atomic_bool quiet;      /* stop fetching */
    atomic_bool stopping;   /* shutdown under way (sq_job_stopping) */
    atomic_bool hard_stop;  /* give up on pending writes, exit now */
    atomic_bool fenced;     /* reliable: lease not renewed in time; stop fetching */
    atomic_bool lease_wanted; /* reliable: a fetch found the lease gone: renew now */
    atomic_llong lease_sent_ms; /* reliable: when the last renewal that worked was sent */
    atomic_long processed;  /* not yet flushed */
    atomic_long failed;
    sq_stats_batch stats; /* stats.c, main thread only */
    struct sq_metrics *metrics; /* issue 16: execution metrics (metrics.h); NULL when off */

    pthread_mutex_t lock;   /* with cond: wakes sleeping threads on quiet/stop */
    pthread_cond_t cond;

    sq_redis *redis;        /* main thread's connection */
    char *info_json;        /* heartbeat: the process's `info`, built once */
    char *info_failing_json; /* the same with the label "fetch-failing" */
    double *work_shown;     /* issue 16, heartbeat.c: each worker's job start in the last
                             * work hash written (0: none shown); main thread */
    double work_refresh_after; /* monotonic: no early work-hash write before this */
    atomic_bool fetch_outage; /* said "fetch failed", not yet "fetching again" */
    atomic_llong redis_ok_ms; /* monotonic ms of the main thread's last good heartbeat */
    struct sq_isolation *iso; /* timeouts; isolated mode's fork server (isolate.c) */
    /* issue 17: the first good heartbeat since the last failed one; 0 after a failure */
    atomic_llong redis_ok_since_ms;
    sq_pgpool *pgpool;      /* PostgreSQL for handlers, or NULL when none is configured */
    sq_dbbudget dbbudget;   /* with pgpool: the connections of all processes sharing it */
    double started_at;      /* wall clock at boot */
    sq_worker *workers;
    int nworkers;
    pthread_t poller;
    bool poller_started;
    atomic_llong poller_due_ms; /* the poller is stuck if still asleep after this */
    bool stuck;             /* main thread: the watchdog is not being pinged */
};

/* worker thread body (processor.c) */
void *sq_processor_main(void *arg);
/* poller thread body (poller.c) */
void *sq_scheduler_main(void *arg);

/* Sleep up to seconds, waking early when quiet is set. Returns true when
 * woken by quiet. */
bool sq_runtime_nap(sq_runtime *rt, double seconds);
/* Sleep up to seconds, waking early only for hard_stop (for back-off while
 * holding a job, which must go on through quiet). Returns true on hard_stop. */
bool sq_runtime_rest(sq_runtime *rt, double seconds);
/* Set quiet / hard_stop and wake every sleeping thread. */
void sq_runtime_quiet(sq_runtime *rt);
void sq_runtime_hard_stop(sq_runtime *rt);

/* Flush the processed/failed counters (lifetime and UTC daily keys), once:
 * a batch whose reply was lost is sent again as it was, and Redis applies it
 * only if it has not already. */
int sq_stats_flush(sq_runtime *rt, sq_redis *r, sq_error *err);

/* The process registry Sidekiq's Web UI and API read (heartbeat.c), on the
 * main thread's connection. */
int sq_heartbeat_init(sq_runtime *rt);
/* One beat. A remote signal popped from <identity>-signals (TSTP, TERM or
 * TTIN; anything else is logged and dropped) is returned in *sig (0: none). */
int sq_heartbeat_beat(sq_runtime *rt, int *sig, sq_error *err);
/* Prune dead identities from `processes` (at most once a minute fleet-wide). */
void sq_heartbeat_cleanup(sq_runtime *rt);
/* issue 16: between beats, write the work hash again when a job has run
 * SQ_WORK_SHOW_AFTER s unseen or a shown one left (at most every
 * SQ_WORK_REFRESH_GAP s). 1: written, 0: nothing due, -1: error. */
int sq_heartbeat_refresh(sq_runtime *rt, sq_error *err);
#define SQ_WORK_SHOW_AFTER 1.0
#define SQ_WORK_REFRESH_GAP 0.5
#define SQ_WORK_REFRESH_BACKOFF 5.0 /* after a failed refresh */
/* At a clean exit: leave the registry (the <identity> hash expires). */
void sq_heartbeat_stop(sq_runtime *rt);
/* A worker whose fetches have failed this long shows it in the heartbeat;
 * this long while Redis answers the main thread, and the watchdog is no
 * longer pinged (manager.c). */
#define SQ_FETCH_FAILING_SHOW_MS 5000
#define SQ_FETCH_FAILING_STUCK_MS 10000
#define SQ_FETCH_FAILING_LABEL "fetch-failing"
/* Workers with a job (RUNNING or FINISHING). */
int sq_runtime_busy(sq_runtime *rt);
/* How long (ms) the longest run of failed fetches of any worker has lasted,
 * 0 when every worker's last fetch worked; its first error into msg. */
long long sq_runtime_fetch_failing(sq_runtime *rt, char *msg, size_t size);

/* Monotonic milliseconds, for the progress stamps above. */
long long sq_runtime_ms(void);

/* Per-thread fast random source for shuffles (xorshift, seeded from the kernel). */
unsigned sq_worker_rand(unsigned n, void *worker);

#endif
