/*
 * fetch/lease.c: the main thread's side of reliable fetch, as the strategy's
 * attach / tick / detach (fetch.h): the lease registered before the first
 * fetch and renewed every lease_ttl / 4, fencing the workers when it cannot
 * be; recovery of dead processes' jobs every lease_ttl * 0.75 once Redis has
 * answered long enough; the slow sweep, one SCAN call a second; at a clean
 * exit, the registrations released (recovery.c does the Redis work).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "lease.h"
#include "log.h"
#include "observe.h" /* issue 17 */
#include "recovery.h"

/* Reliable fetch: the main thread's lease keeping, recovery and sweep. */
typedef struct lease_state {
    double next_lease, next_recover, next_sweep, next_step; /* monotonic: when next */
    double last_ok;      /* monotonic: the last renewal that worked (its reply) */
    double streak_since; /* monotonic: since when renewals have worked without a gap */
    double grace;        /* seconds of streak before recovering others */
    bool started;        /* a renewal has worked at least once */
    char cursor[32];     /* the sweep's SCAN cursor ("0": not sweeping) */
    bool sweeping;
} lease_state;

/* Renew the lease; fence when it cannot be renewed in time (others may soon
 * recover our jobs), unfence when it can again. The renewal script registers
 * every working list again whenever it finds the lease lapsed, so a process
 * that wakes from a stop or an outage fetches only into registered lists.
 *
 * The streak: recovery takes a peer's jobs only after this process has seen
 * Redis answer every renewal, without a gap of more than lease_ttl * 0.6, for
 * `grace` seconds (lease_ttl and then some). A peer whose lease is gone then
 * was silent while Redis was up, not merely while Redis (or this process)
 * was away: after an outage the first process back waits for the others. */
static void keep_lease(sq_runtime *rt, lease_state *ls)
{
    sq_error err = {0};
    bool lapsed = false;
    double sent = sq__monotonic();
    long long sent_ms = sq_runtime_ms();
    double ttl = rt->cfg->lease_ttl;
    if (sq_lease_renew(rt, false, &lapsed, &err) == 0) {
        double now = sq__monotonic();
        if (lapsed)
            sq_log(SQ_LOG_WARN,
                   "lease had expired (out of touch with Redis for %.1f s): working lists "
                   "registered again before any further fetch; jobs running then may have been "
                   "recovered by another process and run twice",
                   now - ls->last_ok);
        if (!ls->started || lapsed || sent - ls->last_ok > ttl * 0.6)
            ls->streak_since = now;
        ls->started = true;
        atomic_store(&rt->lease_sent_ms, sent_ms);
        atomic_store(&rt->lease_wanted, false);
        if (atomic_load(&rt->fenced))
            sq_log(SQ_LOG_INFO, "lease renewed: fetching again");
        atomic_store(&rt->fenced, false);
        ls->last_ok = now;
    } else if (sent - ls->last_ok > ttl * 0.75 && !atomic_load(&rt->fenced)) {
        atomic_store(&rt->fenced, true);
        sq_log(SQ_LOG_WARN,
               "cannot renew the lease for %.1f s (%s): not fetching until Redis "
               "answers",
               sent - ls->last_ok, err.message);
    }
}

/* Whether Redis has answered us long enough that a missing lease means a
 * dead process (see keep_lease). */
static bool may_recover(const lease_state *ls)
{
    return ls->started && sq__monotonic() - ls->streak_since >= ls->grace &&
           sq__monotonic() - ls->last_ok < ls->grace;
}

static void recover(sq_runtime *rt)
{
    sq_error err = {0};
    long n = sq_recovery_run(rt, &err);
    if (n < 0)
        sq_log(SQ_LOG_WARN, "recovery of dead processes' jobs failed: %s", err.message);
    sq_observe_recovered(n); /* issue 17 */
}

/* One step of the slow sweep (one SCAN call per main-loop turn while a pass
 * is under way). */
static void sweep_step(sq_runtime *rt, lease_state *ls)
{
    sq_error err = {0};
    long n = 0;
    if (!ls->sweeping) {
        snprintf(ls->cursor, sizeof ls->cursor, "0");
        ls->sweeping = true;
    }
    if (sq_recovery_sweep(rt, ls->cursor, &n, &err) != 0) {
        sq_log(SQ_LOG_DEBUG, "sweep: %s (again next pass)", err.message);
        ls->sweeping = false;
        return;
    }
    if (strcmp(ls->cursor, "0") == 0)
        ls->sweeping = false;
}

int sq__reliable_attach(sq_runtime *rt, sq_error *err)
{
    lease_state *ls = rt->fetch_main;
    if (ls == NULL) {
        if ((ls = rt->fetch_main = calloc(1, sizeof *ls)) == NULL) {
            sq__error_set(err, SQ_ENOMEM, "out of memory");
            return -1;
        }
        /* Recovery waits until Redis has answered for lease_ttl plus a renewal
         * period plus a reply timeout (3 s): every live peer has had its chance. */
        ls->grace = rt->cfg->lease_ttl * 1.25 + 3.0;
    }
    /* Lease and registry, in one step, before the first fetch (waiting
     * out an outage like any other). What dead processes left behind is
     * handed back once the grace has passed (tick). */
    sq_error e = {0};
    long long sent_ms = sq_runtime_ms();
    if (sq_lease_renew(rt, true, NULL, &e) == 0) {
        atomic_store(&rt->lease_sent_ms, sent_ms);
        ls->started = true;
        ls->last_ok = ls->streak_since = sq__monotonic();
        double ttl = rt->cfg->lease_ttl, now = sq__monotonic();
        ls->next_lease = now + ttl / 4;
        ls->next_recover = now;
        ls->next_sweep = now + ls->grace;
        return 0;
    }
    if (sq_redis_is_connected(rt->redis)) { /* an error reply: ACL, wrong types */
        sq__error_set(err, SQ_ECONFIG, "cannot register with Redis: %s", e.message);
        return -1;
    }
    sq__error_set(err, e.code ? e.code : SQ_EREDIS, "%s", e.message);
    return 1;
}

double sq__reliable_tick(sq_runtime *rt, bool stopping)
{
    lease_state *ls = rt->fetch_main;
    double ttl = rt->cfg->lease_ttl;
    double lease_every = ttl / 4, recover_every = ttl * 0.75;
    /* The sweep: a pass every few minutes (15 leases, between 1 and 5 min). */
    double sweep_every = ttl * 15 < 60 ? 60 : ttl * 15 > 300 ? 300 : ttl * 15;
    double now = sq__monotonic();
    if (stopping) {
        if (now >= ls->next_lease) {
            keep_lease(rt, ls); /* running jobs stay ours while we wait for them */
            ls->next_lease = sq__monotonic() + lease_every;
        }
        return lease_every;
    }
    if (now >= ls->next_lease || atomic_load(&rt->lease_wanted)) {
        keep_lease(rt, ls);
        ls->next_lease = now + lease_every;
    }
    if (now >= ls->next_recover && !atomic_load(&rt->quiet) && may_recover(ls)) {
        recover(rt);
        ls->next_recover = now + recover_every;
    }
    if ((ls->sweeping || now >= ls->next_sweep) && now >= ls->next_step && may_recover(ls)) {
        sweep_step(rt, ls); /* one SCAN call a second: never a burst */
        ls->next_step = now + 1.0;
        if (!ls->sweeping)
            ls->next_sweep = now + sweep_every;
    }
    /* a worker that found the lease gone waits on us */
    return lease_every < 0.25 ? lease_every : 0.25;
}

void sq__reliable_detach(sq_runtime *rt, bool release)
{
    if (release)
        sq_recovery_release(rt);
    free(rt->fetch_main);
    rt->fetch_main = NULL;
}
