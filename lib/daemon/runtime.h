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

/* A fetch strategy: Sidekiq's BRPOP ("basic") or the reliable working list. */
typedef struct sq_fetch_ops {
    const char *name;
    /* 1 and *u filled: a job; 0: nothing within the block timeout; -1: error. */
    int (*fetch)(sq_worker *w, sq_unit *u, sq_error *err);
    /* The job finished (success, or its failure was recorded elsewhere). */
    int (*ack)(sq_worker *w, const sq_unit *u, sq_error *err);
    /* Replace the job by `payload` in zset `retry` at score. */
    int (*retry)(sq_worker *w, const sq_unit *u, double score, const char *payload, size_t len,
                 sq_error *err);
    /* Replace the job by `payload` in the dead set (trimmed). */
    int (*dead)(sq_worker *w, const sq_unit *u, const char *payload, size_t len, sq_error *err);
    /* Give worker w's job back to the front of its queue, on redis r (the
     * worker's own, or the main thread's at hard shutdown). */
    int (*requeue)(sq_worker *w, sq_redis *r, const sq_unit *u, sq_error *err);
    /* The worker is leaving its loop: write anything still pending. */
    int (*finish)(sq_worker *w, sq_error *err);
} sq_fetch_ops;

extern const sq_fetch_ops sq_fetch_basic;
extern const sq_fetch_ops sq_fetch_reliable;

typedef enum sq_slot_state {
    SQ_SLOT_IDLE = 0,
    SQ_SLOT_RUNNING,   /* the handler has the job */
    SQ_SLOT_FINISHING, /* the worker is recording the result */
    SQ_SLOT_ABANDONED, /* shutdown pushed the job back; drop the result */
} sq_slot_state;

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
    char **wkeys;           /* reliable: this worker's working list per queue */
    char *ack_raw;          /* reliable: a finished job whose LREM rides on the next fetch */
    size_t ack_len;
    size_t ack_qidx;
    unsigned rounds;        /* fetches so far: rotates the queue blocked on when idle */
    bool scan_stranded;     /* a fetch failed: the next one looks for a job it moved */
    bool saw_stop;          /* the current handler saw sq_job_stopping() say true */
    atomic_llong alive_ms;  /* monotonic ms of the loop's last turn (watchdog) */
    atomic_llong fetch_failing_ms; /* monotonic ms when fetches began to fail; 0: they work */
    char fetch_error[200];  /* the first failure of that run (under lock) */
    PGconn *db;             /* checked out by the current job (sq_job_db), or NULL */
    uint64_t rng;

    pthread_mutex_t lock;   /* guards the slot below */
    sq_slot_state state;
    sq_unit unit;
    char klass[128];
    char jid[64];
    double started_at;      /* wall clock */
};

struct sq_runtime {
    const sq_config *cfg;
    sq_registry *reg;
    sq_redis_url url;
    sq_queue_order order;
    sq_job_limits limits;
    const sq_fetch_ops *fetch;
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

    pthread_mutex_t lock;   /* with cond: wakes sleeping threads on quiet/stop */
    pthread_cond_t cond;

    sq_redis *redis;        /* main thread's connection */
    char *info_json;        /* heartbeat: the process's `info`, built once */
    char *info_failing_json; /* the same with the label "fetch-failing" */
    atomic_bool fetch_outage; /* said "fetch failed", not yet "fetching again" */
    atomic_llong redis_ok_ms; /* monotonic ms of the main thread's last good heartbeat */
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

/* Shared by the fetch strategies (fetch/fetch.c): drop set-aside queues from
 * w->order[0..n) and return how many are left; set queue q aside. */
size_t sq__usable_queues(sq_worker *w, size_t n);
bool sq__set_aside_queue(sq_worker *w, size_t q);
/* True, with err set, when every queue is set aside: the worker can fetch
 * nothing, which is a failing fetch (heartbeat, watchdog), not an idle one. */
bool sq__no_usable_queue(sq_worker *w, sq_error *err);

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

/* The process registry Sidekiq's Web UI and API read (heartbeat.c), on the
 * main thread's connection. */
int sq_heartbeat_init(sq_runtime *rt);
/* One beat. A remote signal popped from <identity>-signals (TSTP, TERM or
 * TTIN; anything else is logged and dropped) is returned in *sig (0: none). */
int sq_heartbeat_beat(sq_runtime *rt, int *sig, sq_error *err);
/* Prune dead identities from `processes` (at most once a minute fleet-wide). */
void sq_heartbeat_cleanup(sq_runtime *rt);
/* At a clean exit: leave the registry (the <identity> hash expires). */
void sq_heartbeat_stop(sq_runtime *rt);
/* A worker whose fetches have failed this long shows it in the heartbeat;
 * this long while Redis answers the main thread, and the watchdog is no
 * longer pinged (launcher.c). */
#define SQ_FETCH_FAILING_SHOW_MS 5000
#define SQ_FETCH_FAILING_STUCK_MS 10000
#define SQ_FETCH_FAILING_LABEL "fetch-failing"
/* Workers with a job (RUNNING or FINISHING). */
int sq_runtime_busy(sq_runtime *rt);
/* How long (ms) the longest run of failed fetches of any worker has lasted,
 * 0 when every worker's last fetch worked; its first error into msg. */
long long sq_runtime_fetch_failing(sq_runtime *rt, char *msg, size_t size);

/* The watchdog's question (launcher.c), also /healthz's: is every thread
 * still turning? False with the culprit in who when not. Any thread, once
 * the workers and poller have started. */
bool sq_runtime_progress(sq_runtime *rt, char *who, size_t size);

/* Monotonic milliseconds, for the progress stamps above. */
long long sq_runtime_ms(void);

/* Per-thread fast random source for shuffles (xorshift, seeded from the kernel). */
unsigned sq_worker_rand(unsigned n, void *worker);

#endif
