/*
 * recovery.c: the other half of reliable fetch. Leases say which processes
 * are alive; recovery hands the working lists of dead ones back.
 *
 * Keys (docs/redis-keys.md):
 *   squire:lease:<identity>   string with a TTL of lease_ttl, renewed by the
 *                             main thread every lease_ttl/4. Gone = dead.
 *   squire:wlists             hash: working-list key -> "<identity>\t<queue>",
 *                             written before the first fetch, so recovery
 *                             never scans the keyspace on its regular path.
 *   squire:recover-lock       SET NX PX: one recovering process at a time.
 *
 * The invariant (docs/reliability.md): while a process's lease exists, all
 * its working lists are registered. The lease is extended by a script that
 * leaves a lapsed lease (a stop, an outage) gone; a second script then sets
 * it and writes every registration again in the same step; a fetch moves a job only in a script (or right
 * after a local freshness check, for the blocking BLMOVE) that sees the lease;
 * recovery moves a job or drops a registration only in a script that sees the
 * lease gone. A slow sweep (SCAN squire:w:*) registers any non-empty working
 * list the registry lacks, so a window the rules above leave open (a process
 * stopped between its freshness check and its BLMOVE, then killed) still ends
 * with the jobs back in their queues.
 *
 * Recovery (at start and every lease_ttl * 0.75 s): for each registered list
 * whose owner's lease is gone, take its jobs one by one (LINDEX -1), count
 * the interruption in the payload (`interrupted_count`, as GitLab's reliable
 * fetcher does) and move it with one script conditional on LREM: back to the
 * front of its queue, or, at max_interruptions, to the dead set as
 * Squire::JobInterrupted (a job that keeps killing its process). An empty
 * list is dropped from the registry in the same atomic step that checks it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "log.h"
#include "payload.h"
#include "recovery.h"
#include "sidekiq.h"

#define LEASE_PREFIX "squire:lease:"
#define LOCK_KEY "squire:recover-lock"
#define BATCH 1000
#define LEASE_KEY_MAX 640
#define SWEEP_COUNT "1000"

/* KEYS: working list, queue, dead, owner's lease. ARGV: job, new payload,
 * "queue"|"dead", now, cutoff, max, queue name. 2: the owner is back. */
static sq_script recover_script = SQ_SCRIPT(
    SQ_LUA_DEAD_ADD
    "if redis.call('EXISTS', KEYS[4]) == 1 then return 2 end\n"
    "local target = ARGV[3] == 'dead' and KEYS[3] or KEYS[2]\n"
    "local t = redis.call('TYPE', target).ok\n"
    "local want = ARGV[3] == 'dead' and 'zset' or 'list'\n"
    "if t ~= want and t ~= 'none' then return redis.error_reply('WRONGTYPE ' .. target ..\n"
    "  ' has the wrong type') end\n"
    "if redis.call('LREM', KEYS[1], 1, ARGV[1]) ~= 1 then return 0 end\n"
    "if ARGV[3] == 'dead' then\n"
    "  dead_add(KEYS[3], ARGV[4], ARGV[2], ARGV[5], ARGV[6])\n"
    "else\n"
    "  redis.call('RPUSH', KEYS[2], ARGV[2])\n"
    "  redis.call('SADD', 'queues', ARGV[7])\n"
    "end\n"
    "return 1\n");

/* KEYS: registry, working list[, owner's lease]. Drop the entry only if the
 * list is empty and (when given) the owner's lease is gone: 2 owner back. */
static sq_script forget_script =
    SQ_SCRIPT("if KEYS[3] and redis.call('EXISTS', KEYS[3]) == 1 then return 2 end\n"
              "if redis.call('LLEN', KEYS[2]) == 0 then\n"
              "  redis.call('HDEL', KEYS[1], KEYS[2])\n"
              "  return 1\n"
              "end\n"
              "return 0\n");

/* KEYS: lease, registry. ARGV: ttl ms, "1" to register, then pairs of
 * working list and "<identity>\t<queue>". Without "1": extend the lease, or,
 * when it is gone, answer 1 and leave it gone (fetches stay fenced) so that
 * the caller sends the registrations. With "1": set the lease and write
 * every registration in the same atomic step, so no fetch can see the lease
 * without them. Returns 1 when the lease had lapsed (or never existed). */
static sq_script lease_script =
    SQ_SCRIPT("if ARGV[2] ~= '1' then\n"
              "  if redis.call('PEXPIRE', KEYS[1], ARGV[1]) == 1 then return 0 end\n"
              "  return 1\n"
              "end\n"
              "local had = redis.call('SET', KEYS[1], '1', 'PX', ARGV[1], 'GET')\n"
              "for i = 3, #ARGV, 200 do\n"
              "  redis.call('HSET', KEYS[2], unpack(ARGV, i, math.min(i + 199, #ARGV)))\n"
              "end\n"
              "if had then return 0 end\n"
              "return 1\n");

/* KEYS: registry, working list, owner's lease. ARGV: "<owner>\t<queue>".
 * The sweep's step: register a non-empty list the registry lacks. 0 nothing
 * to do, 1 registered (owner alive), 2 registered (owner's lease gone). */
static sq_script adopt_script =
    SQ_SCRIPT("if redis.call('HEXISTS', KEYS[1], KEYS[2]) == 1 then return 0 end\n"
              "if redis.call('LLEN', KEYS[2]) == 0 then return 0 end\n"
              "redis.call('HSET', KEYS[1], KEYS[2], ARGV[1])\n"
              "if redis.call('EXISTS', KEYS[3]) == 1 then return 1 end\n"
              "return 2\n");

/* Release the lock only if it is still ours (it may have expired). */
static sq_script unlock_script = SQ_SCRIPT(
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end\n"
    "return 0\n");

char *sq_working_list_key(const char *identity, const char *tid, const char *queue)
{
    size_t n = strlen(identity) + strlen(tid) + strlen(queue) + 16;
    char *k = malloc(n);
    if (k != NULL)
        snprintf(k, n, "squire:w:%s:%s:%s", identity, tid, queue);
    return k;
}

static void lease_key(char *out, size_t size, const char *identity)
{
    snprintf(out, size, LEASE_PREFIX "%s", identity);
}

/* Run the lease script; *gone when it answered 1. */
static int lease_call(sq_runtime *rt, int argc, const char **argv, bool *gone, sq_error *err)
{
    redisReply *rep = sq_redis_eval(rt->redis, &lease_script, 2, argc, argv, NULL, err);
    if (rep == NULL)
        return -1;
    *gone = rep->type == REDIS_REPLY_INTEGER && rep->integer == 1;
    freeReplyObject(rep);
    return 0;
}

int sq_lease_renew(sq_runtime *rt, bool force, bool *lapsed, sq_error *err)
{
    char ms[32];
    long long ttl = (long long)(rt->cfg->lease_ttl * 1000);
    snprintf(ms, sizeof ms, "%lld", ttl > 0 ? ttl : 1);
    bool gone = false;
    if (!force) { /* the common case: the lease is there, extend it */
        const char *argv[] = {rt->lease_key, SQ_WLISTS_KEY, ms, "0"};
        if (lease_call(rt, 4, argv, &gone, err) != 0)
            return -1;
        if (lapsed != NULL)
            *lapsed = gone;
        if (!gone)
            return 0;
    }
    size_t nq = rt->order.nqueues, n = (size_t)rt->nworkers * nq;
    const char **argv = calloc(4 + 2 * n, sizeof *argv);
    char **vals = calloc(n + 1, sizeof *vals);
    int rc = -1;
    if (argv == NULL || vals == NULL) {
        sq__error_set(err, SQ_ENOMEM, "out of memory renewing the lease");
        goto out;
    }
    size_t k = 0;
    argv[k++] = rt->lease_key;
    argv[k++] = SQ_WLISTS_KEY;
    argv[k++] = ms;
    argv[k++] = "1";
    for (int i = 0; i < rt->nworkers; i++) {
        for (size_t q = 0; q < nq; q++) {
            size_t j = (size_t)i * nq + q;
            size_t len = strlen(rt->identity) + strlen(rt->order.names[q]) + 2;
            if ((vals[j] = malloc(len)) == NULL) {
                sq__error_set(err, SQ_ENOMEM, "out of memory renewing the lease");
                goto out;
            }
            snprintf(vals[j], len, "%s\t%s", rt->identity, rt->order.names[q]);
            argv[k++] = RW(&rt->workers[i])->wkeys[q];
            argv[k++] = vals[j];
        }
    }
    rc = lease_call(rt, (int)k, argv, &gone, err);
    if (rc == 0 && lapsed != NULL && force)
        *lapsed = gone;
out:
    for (size_t j = 0; vals && j < n; j++)
        free(vals[j]);
    free(vals);
    free(argv);
    return rc;
}

/* The payload a recovered job goes back with (sq_payload_interrupted); *dead
 * when it has been interrupted max_interruptions times. NULL: keep the raw
 * bytes (the bounded reader refused them: a worker buries the job when it
 * is fetched again, as it buries any such payload). */
static char *interrupted(sq_runtime *rt, const char *job, size_t len, bool *dead, size_t *outlen)
{
    *dead = false;
    json_t *obj = NULL;
    if (sq_json_load_bounded(job, len, &rt->limits, &obj, NULL, 0) != SQ_JOB_VALID)
        return NULL;
    char *out =
        sq_payload_interrupted(job, len, obj, sq__now(), rt->cfg->max_interruptions, dead, outlen);
    json_decref(obj);
    if (out == NULL)
        *dead = false;
    return out;
}

/* Move one orphaned job. Returns 1 moved, 0 not there any more, 2 its owner
 * is back (leave its lists alone), -1 error. */
static int recover_one(sq_runtime *rt, const char *wkey, const char *lease, const char *queue,
                       const char *job, size_t len, sq_error *err)
{
    bool dead = false;
    size_t newlen = len;
    char *fresh = interrupted(rt, job, len, &dead, &newlen);
    const char *payload = fresh ? fresh : job;
    if (fresh == NULL)
        newlen = len;

    char qkey[SQ_QUEUE_KEY_MAX];
    sq_queue_key(qkey, sizeof qkey, queue);
    sq_dead_limits lim = sq_config_dead_limits(rt->cfg);
    sq_dead_args a;
    sq_dead_args_make(sq__now(), &lim, &a);
    const char *argv[] = {
        wkey,    qkey,     SQ_KEY_DEAD, lease, job, payload, dead ? "dead" : "queue",
        a.score, a.cutoff, a.max,       queue};
    size_t lens[] = {strlen(wkey),
                     strlen(qkey),
                     4,
                     strlen(lease),
                     len,
                     newlen,
                     strlen(argv[6]),
                     strlen(a.score),
                     strlen(a.cutoff),
                     strlen(a.max),
                     strlen(queue)};
    redisReply *rep = sq_redis_eval(rt->redis, &recover_script, 4, 11, argv, lens, err);
    free(fresh);
    if (rep == NULL)
        return -1;
    int moved = rep->type == REDIS_REPLY_INTEGER ? (int)rep->integer : 0;
    freeReplyObject(rep);
    if (moved == 2)
        return 2;
    if (moved == 1 && dead)
        sq_log(SQ_LOG_WARN, "recovered job from %s moved to the dead set: interrupted %d times",
               wkey, rt->cfg->max_interruptions);
    return moved;
}

/* Owners checked in this pass: one EXISTS per process, not per list. */
struct seen {
    const char *owner[64];
    bool alive[64];
    size_t n;
};

static bool owner_alive(sq_runtime *rt, struct seen *seen, const char *owner, sq_error *err,
                        bool *failed)
{
    for (size_t i = 0; i < seen->n; i++)
        if (strcmp(seen->owner[i], owner) == 0)
            return seen->alive[i];
    redisReply *rep = sq_redis_cmd(rt->redis, err, "EXISTS " LEASE_PREFIX "%s", owner);
    if (rep == NULL) {
        *failed = true;
        return true;
    }
    bool alive = rep->type == REDIS_REPLY_INTEGER && rep->integer > 0;
    freeReplyObject(rep);
    if (seen->n < SQ_ARRAY_LEN(seen->owner)) {
        seen->owner[seen->n] = owner;
        seen->alive[seen->n++] = alive;
    }
    return alive;
}

/* Drain one dead process's working list, and drop its registration once it
 * is empty; both stop as soon as the owner's lease is back. Returns jobs
 * moved or -1. */
static long drain_list(sq_runtime *rt, const char *wkey, const char *owner, const char *queue,
                       long budget, sq_error *err)
{
    char lease[LEASE_KEY_MAX];
    lease_key(lease, sizeof lease, owner);
    long moved = 0;
    while (moved < budget) {
        redisReply *rep = sq_redis_cmd(rt->redis, err, "LINDEX %s -1", wkey);
        if (rep == NULL)
            return -1;
        if (rep->type != REDIS_REPLY_STRING) {
            freeReplyObject(rep);
            const char *argv[] = {SQ_WLISTS_KEY, wkey, lease};
            redisReply *f = sq_redis_eval(rt->redis, &forget_script, 3, 3, argv, NULL, err);
            if (f == NULL)
                return -1;
            freeReplyObject(f);
            return moved;
        }
        int rc = recover_one(rt, wkey, lease, queue, rep->str, rep->len, err);
        freeReplyObject(rep);
        if (rc < 0)
            return -1;
        if (rc == 2) {
            sq_log(SQ_LOG_INFO, "process %s renewed its lease during recovery: its jobs stay",
                   owner);
            return moved;
        }
        moved += rc;
    }
    return moved;
}

long sq_recovery_run(sq_runtime *rt, sq_error *err)
{
    redisReply *lock = sq_redis_cmd(rt->redis, err, "SET " LOCK_KEY " %s NX PX %lld", rt->identity,
                                    (long long)(rt->cfg->lease_ttl * 1500) + 1000);
    if (lock == NULL)
        return -1;
    bool won = lock->type == REDIS_REPLY_STATUS;
    freeReplyObject(lock);
    if (!won)
        return 0;

    redisReply *all = sq_redis_cmd(rt->redis, err, "HGETALL " SQ_WLISTS_KEY);
    if (all == NULL)
        return -1;
    long total = 0;
    bool failed = false;
    struct seen seen = {.n = 0};
    for (size_t i = 0; i + 1 < all->elements && !failed && total < BATCH; i += 2) {
        if (all->element[i]->type != REDIS_REPLY_STRING ||
            all->element[i + 1]->type != REDIS_REPLY_STRING)
            continue;
        const char *wkey = all->element[i]->str;
        char *val = all->element[i + 1]->str;
        /* the last tab: queue names have none, an identity (DYNO) may */
        char *tab = strrchr(val, '\t');
        if (tab == NULL)
            continue;
        *tab = '\0';
        const char *owner = val, *queue = tab + 1;
        if (strlen(owner) + sizeof LEASE_PREFIX >= LEASE_KEY_MAX)
            continue; /* not one of ours: identities are shorter */
        if (strcmp(owner, rt->identity) == 0 || owner_alive(rt, &seen, owner, err, &failed))
            continue;
        long n = drain_list(rt, wkey, owner, queue, BATCH - total, err);
        if (n < 0)
            failed = true;
        else if (n > 0) {
            total += n;
            sq_log(SQ_LOG_INFO, "recovered %ld job(s) of dead process %s from queue %s", n, owner,
                   queue);
        }
    }
    freeReplyObject(all);
    const char *argv[] = {LOCK_KEY, rt->identity};
    redisReply *un = sq_redis_eval(rt->redis, &unlock_script, 1, 2, argv, NULL, NULL);
    if (un)
        freeReplyObject(un);
    return failed ? -1 : total;
}

/* Split squire:w:<host>:<pid>:<12 hex>:w<n>:<queue> into owner and queue
 * (the host may hold colons, the queue too). */
static bool parse_working_list(const char *key, char *owner, size_t size, const char **queue)
{
    static const char prefix[] = "squire:w:";
    if (strncmp(key, prefix, sizeof prefix - 1) != 0)
        return false;
    const char *id = key + sizeof prefix - 1;
    for (const char *p = strstr(id, ":w"); p != NULL; p = strstr(p + 1, ":w")) {
        const char *d = p + 2;
        while (*d >= '0' && *d <= '9')
            d++;
        if (d == p + 2 || *d != ':' || p - id < 13 || p[-13] != ':')
            continue;
        bool hex = true;
        for (int i = 1; i <= 12 && hex; i++)
            hex = strchr("0123456789abcdef", p[-i]) != NULL && p[-i] != '\0';
        size_t n = (size_t)(p - id);
        if (!hex || n >= size)
            continue;
        memcpy(owner, id, n);
        owner[n] = '\0';
        *queue = d + 1;
        return **queue != '\0';
    }
    return false;
}

int sq_recovery_sweep(sq_runtime *rt, char cursor[32], long *recovered, sq_error *err)
{
    *recovered = 0;
    redisReply *rep = sq_redis_cmd(rt->redis, err, "SCAN %s MATCH squire:w:* COUNT " SWEEP_COUNT,
                                   cursor);
    if (rep == NULL)
        return -1;
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
        rep->element[0]->type != REDIS_REPLY_STRING ||
        rep->element[1]->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(rep);
        sq__error_set(err, SQ_EREDIS, "SCAN: unexpected reply");
        return -1;
    }
    snprintf(cursor, 32, "%s", rep->element[0]->str);
    int rc = 0;
    redisReply *keys = rep->element[1];
    for (size_t i = 0; i < keys->elements && rc == 0; i++) {
        const char *wkey = keys->element[i]->str, *queue = NULL;
        char owner[sizeof rt->identity], lease[LEASE_KEY_MAX], *val = NULL;
        if (keys->element[i]->type != REDIS_REPLY_STRING ||
            !parse_working_list(wkey, owner, sizeof owner, &queue) ||
            !sq_queue_name_usable(queue, strlen(queue))) {
            sq_log(SQ_LOG_DEBUG, "sweep: %s is not a squire working list; left alone",
                   keys->element[i]->str);
            continue;
        }
        lease_key(lease, sizeof lease, owner);
        size_t len = strlen(owner) + strlen(queue) + 2;
        if ((val = malloc(len)) == NULL) {
            sq__error_set(err, SQ_ENOMEM, "out of memory sweeping");
            rc = -1;
            break;
        }
        snprintf(val, len, "%s\t%s", owner, queue);
        const char *argv[] = {SQ_WLISTS_KEY, wkey, lease, val};
        redisReply *a = sq_redis_eval(rt->redis, &adopt_script, 3, 4, argv, NULL, err);
        free(val);
        if (a == NULL) {
            rc = -1;
            break;
        }
        long long what = a->type == REDIS_REPLY_INTEGER ? a->integer : 0;
        freeReplyObject(a);
        if (what == 0)
            continue;
        sq_log(SQ_LOG_WARN, "sweep: working list %s held jobs but had no registration; %s", wkey,
               what == 1 ? "registered it again (its process is alive)"
                         : "its process is gone: putting its jobs back");
        if (what == 2 && strcmp(owner, rt->identity) != 0) {
            long n = drain_list(rt, wkey, owner, queue, BATCH, err);
            if (n < 0)
                rc = -1;
            else
                *recovered += n;
            if (n > 0)
                sq_log(SQ_LOG_WARN, "sweep: put %ld job(s) of process %s back on queue %s", n,
                       owner, queue);
        }
    }
    freeReplyObject(rep);
    return rc;
}

void sq_recovery_release(sq_runtime *rt)
{
    /* The lease goes first: a worker thread still about (not joined) is
     * fenced from then on, and no registration is dropped under a live lease. */
    char lease[LEASE_KEY_MAX];
    lease_key(lease, sizeof lease, rt->identity);
    redisReply *rep = sq_redis_cmd(rt->redis, NULL, "DEL %s", lease);
    if (rep == NULL)
        return; /* Redis is gone: others recover after the lease */
    freeReplyObject(rep);
    for (int i = 0; i < rt->nworkers; i++) {
        for (size_t q = 0; q < rt->order.nqueues; q++) {
            const char *argv[] = {SQ_WLISTS_KEY, RW(&rt->workers[i])->wkeys[q], lease};
            rep = sq_redis_eval(rt->redis, &forget_script, 3, 3, argv, NULL, NULL);
            if (rep == NULL)
                return;
            if (rep->type == REDIS_REPLY_INTEGER && rep->integer != 1)
                sq_log(SQ_LOG_WARN, "%s still holds a job; another process will recover it",
                       RW(&rt->workers[i])->wkeys[q]);
            freeReplyObject(rep);
        }
    }
}
