/*
 * fetch/reliable.c: no job exists only in this process's memory.
 *
 * A fetched job is moved atomically (LMOVE/BLMOVE) from queue:<q> into this
 * worker's working list for that queue, squire:w:<identity>:<tid>:<q>, and
 * stays there until one script that starts with LREM of its exact bytes
 * moves it on: gone (success), to `retry`, to `dead`, or back to its queue.
 * A kill -9 at any instant therefore leaves the job in exactly one Redis key;
 * recovery.c hands the working lists of dead processes back to their queues.
 *
 * A worker holds at most one job, so its working lists hold at most that one
 * (plus, briefly, the last finished one whose LREM rides on the next fetch:
 * one round trip per job). If a fetch's reply is lost (connection reset after
 * the script ran), the moved job is not lost: the next fetch, told to look,
 * finds it in the worker's own list ("stranded") and runs it.
 *
 * When every queue is empty the worker blocks with BLMOVE on one queue, chosen
 * by worker index so that idle workers cover every queue and pickup is
 * immediate, as with BRPOP.
 *
 * Fencing (docs/reliability.md, the invariant): a job is moved into a working
 * list only while this process's lease exists, because only then are all its
 * working lists registered where recovery looks. The fetch scripts check the
 * lease in the same atomic step as the move and answer "fenced" without it;
 * the main thread then renews the lease, registering everything again. The
 * blocking BLMOVE cannot be made conditional: it is sent only when the last
 * renewal is recent enough that the lease outlives the BLMOVE's timeout.
 */
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "lease.h"
#include "log.h"
#include "recovery.h"
#include "sidekiq.h"

#define BLOCK_WAIT 2.0

/* KEYS[1..n]: the queue keys of this fetch, in its order; KEYS[n+1..2n]:
 * this worker's working list for each, same order; KEYS[2n+1]: the working
 * list of the job to acknowledge; KEYS[2n+2]: this process's lease;
 * KEYS[2n+3..]: only after a failed call, every working list of the worker
 * (canonical order), to look for a job a lost reply left there. ARGV: ack
 * payload ("" none), n.
 * Returns {acked, where, job, stranded, bad...}: `where` is the 1-based
 * position in this fetch's order, or with stranded = 1 the canonical index,
 * or -1: fenced (no lease, so our working lists may be unregistered; only
 * the ack ran); bad lists positions whose key is not a list.
 *
 * Two arguments per queue (the queue and its working list): what one LMOVE
 * needs. Redis deletes an empty list, so the first queue with a job is the
 * first key that exists: with more than 8 queues left it is found by EXISTS
 * over halves of the list (one EXISTS over them all, then log2(n) smaller
 * ones), O(n) key lookups inside Redis but O(log n) script calls instead of
 * one LMOVE call per empty queue. A key that exists but is not a list fails
 * its LMOVE and is reported (bad) for the caller to set aside. */
static sq_script fetch_script =
    SQ_SCRIPT("local n = tonumber(ARGV[2])\n"
              "local acked = -1\n"
              "if ARGV[1] ~= '' then acked = redis.call('LREM', KEYS[2 * n + 1], 1, ARGV[1]) end\n"
              "if redis.call('EXISTS', KEYS[2 * n + 2]) == 0 then return {acked, -1, '', 0} end\n"
              "for i = 2 * n + 3, #KEYS do\n"
              "  local v = redis.call('LINDEX', KEYS[i], -1)\n"
              "  if v then return {acked, i - 2 * n - 2, v, 1} end\n"
              "end\n"
              "local bad = {acked, 0, '', 0}\n"
              "local function exist(lo, hi)\n"
              "  for s = lo, hi, 1000 do\n"
              "    if redis.call('EXISTS', unpack(KEYS, s, math.min(s + 999, hi))) > 0 then\n"
              "      return true\n"
              "    end\n"
              "  end\n"
              "  return false\n"
              "end\n"
              "local j = 1\n"
              "while j <= n do\n"
              "  if n - j >= 8 then\n"
              "    if not exist(j, n) then break end\n"
              "    local hi = n\n"
              "    while j < hi do\n"
              "      local mid = math.floor((j + hi) / 2)\n"
              "      if exist(j, mid) then hi = mid else j = mid + 1 end\n"
              "    end\n"
              "  end\n"
              "  local v = redis.pcall('LMOVE', KEYS[j], KEYS[n + j], 'RIGHT', 'LEFT')\n"
              "  if type(v) == 'table' and v.err then bad[#bad + 1] = j\n"
              "  elseif v then return {acked, j, v, 0} end\n"
              "  j = j + 1\n"
              "end\n"
              "return bad\n");

/* KEYS: queue, working list, lease. LMOVE only under the lease (fenced: -1). */
static sq_script move_script =
    SQ_SCRIPT("if redis.call('EXISTS', KEYS[3]) == 0 then return -1 end\n"
              "return redis.pcall('LMOVE', KEYS[1], KEYS[2], 'RIGHT', 'LEFT')\n");

/* KEYS: working list, target zset. ARGV: job, score, new payload. */
static sq_script retry_script = SQ_SCRIPT(
    "local t = redis.call('TYPE', KEYS[2]).ok\n"
    "if t ~= 'zset' and t ~= 'none' then return redis.error_reply('WRONGTYPE ' .. KEYS[2] ..\n"
    "  ' is not a sorted set') end\n"
    "if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 1 then\n"
    "  redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])\n"
    "  return 1\n"
    "end\n"
    "return 0\n");

/* KEYS: working list, dead. ARGV: job, now, new payload, cutoff, max. */
static sq_script dead_script = SQ_SCRIPT(
    SQ_LUA_DEAD_ADD
    "local t = redis.call('TYPE', KEYS[2]).ok\n"
    "if t ~= 'zset' and t ~= 'none' then return redis.error_reply('WRONGTYPE ' .. KEYS[2] ..\n"
    "  ' is not a sorted set') end\n"
    "if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 1 then\n"
    "  dead_add(KEYS[2], ARGV[2], ARGV[3], ARGV[4], ARGV[5])\n"
    "  return 1\n"
    "end\n"
    "return 0\n");

/* KEYS: working list, queue. ARGV: job. RPUSH: the job runs next. */
static sq_script requeue_script = SQ_SCRIPT(
    "local t = redis.call('TYPE', KEYS[2]).ok\n"
    "if t ~= 'list' and t ~= 'none' then return redis.error_reply('WRONGTYPE ' .. KEYS[2] ..\n"
    "  ' is not a list') end\n"
    "if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 1 then\n"
    "  redis.call('RPUSH', KEYS[2], ARGV[1])\n"
    "  return 1\n"
    "end\n"
    "return 0\n");

static void warn_duplicate(const char *what, const char *raw, size_t len)
{
    /* The job left our working list without us: recovery gave it to another
     * process while we ran it (our lease lapsed). It may run twice. */
    sq_log(SQ_LOG_WARN,
           "%s: the job was no longer in this worker's list (recovered by another "
           "process while it ran?); it may run twice; payload starts %.*s",
           what, (int)(len < 80 ? len : 80), raw);
}

static void clear_ack(sq_worker *w)
{
    free(RW(w)->ack_raw);
    RW(w)->ack_raw = NULL;
    RW(w)->ack_len = 0;
}

static int take_job(sq_worker *w, sq_unit *u, size_t qidx, const char *s, size_t len, sq_error *err)
{
    u->raw = malloc(len + 1);
    u->queue = strdup(w->rt->order.names[qidx]);
    if (u->raw == NULL || u->queue == NULL) {
        sq_unit_clear(u);
        /* The job stays in our working list; the next fetch looks there. */
        RW(w)->scan_stranded = true;
        sq__error_set(err, SQ_ENOMEM, "out of memory holding a fetched job");
        return -1;
    }
    memcpy(u->raw, s, len);
    u->raw[len] = '\0';
    u->len = len;
    u->qidx = qidx;
    return 1;
}

/* A fetch found no lease: ask the main thread to renew (which registers our
 * working lists again) and wait for it. */
static int lease_gone(sq_runtime *rt)
{
    atomic_store(&rt->lease_wanted, true);
    sq_runtime_nap(rt, 0.2);
    return 0;
}

/* Nothing anywhere: wait on one queue so a new job is picked up at once.
 * Worker k waits on queue k mod nq (skipping set-aside queues), so idle
 * workers cover every queue when there are at least as many workers as
 * queues; with fewer, each worker's queue rotates after every wait. */
static int block_fetch(sq_worker *w, sq_unit *u, sq_error *err)
{
    sq_runtime *rt = w->rt;
    size_t nq = rt->order.nqueues, q = nq;
    size_t start = (size_t)w->index;
    if ((size_t)rt->nworkers < nq)
        start += (size_t)RW(w)->rounds++ * (size_t)rt->nworkers;
    for (size_t i = 0; i < nq && q == nq; i++) {
        size_t c = (start + i) % nq;
        if (w->skip_until[c] == 0 || sq__monotonic() >= w->skip_until[c])
            q = c;
    }
    if (q == nq)
        return 0;
    /* The lease must outlive this BLMOVE by a margin: sent at the last
     * renewal that worked, it lasts lease_ttl from then. */
    double ttl = rt->cfg->lease_ttl, block = ttl / 4 < BLOCK_WAIT ? ttl / 4 : BLOCK_WAIT;
    double age = (double)(sq_runtime_ms() - atomic_load(&rt->lease_sent_ms)) / 1000.0;
    if (age + block + ttl / 4 > ttl) {
        atomic_store(&rt->lease_wanted, true);
        sq_runtime_nap(rt, block);
        return 0;
    }
    char timeout[32];
    snprintf(timeout, sizeof timeout, "%.3f", block);
    const char *argv[] = {"BLMOVE", w->keys[q], RW(w)->wkeys[q], "RIGHT", "LEFT", timeout};
    size_t lens[6];
    for (int i = 0; i < 6; i++)
        lens[i] = strlen(argv[i]);
    sq_error e = {0};
    redisReply *rep = sq_redis_argv(w->redis, 6, argv, lens, block, &e);
    if (rep == NULL) {
        RW(w)->scan_stranded = true; /* a lost BLMOVE reply leaves the job with us */
        if (sq_redis_error_is(&e, "WRONGTYPE")) {
            sq__set_aside_queue(w, q);
            return 0;
        }
        sq__error_set(err, e.code, "%s", e.message);
        return -1;
    }
    int rc = 0;
    if (rep->type == REDIS_REPLY_STRING)
        rc = take_job(w, u, q, rep->str, rep->len, err);
    freeReplyObject(rep);
    return rc;
}

/* One queue to ask: no order to honour, so plain commands in one round trip
 * (the pending ack's LREM, then LMOVE) do what the script does, at a fraction
 * of Redis's cost. Returns like reliable_fetch. */
static int fetch_one_queue(sq_worker *w, sq_unit *u, size_t q, sq_error *err)
{
    sq_error e = {0};
    int queued = 0;
    if (RW(w)->ack_raw != NULL) {
        const char *av[] = {"LREM", RW(w)->wkeys[RW(w)->ack_qidx], "1", RW(w)->ack_raw};
        size_t al[] = {4, strlen(av[1]), 1, RW(w)->ack_len};
        if (sq_redis_pipe_argv(w->redis, 4, av, al, &e) != 0)
            goto failed;
        queued++;
    }
    /* EVAL, not EVALSHA: a pipelined NOSCRIPT could not be retried in place. */
    const char *mv[] = {"EVAL",     move_script.source, "3",
                        w->keys[q], RW(w)->wkeys[q],    w->rt->lease_key};
    if (sq_redis_pipe_argv(w->redis, 6, mv, NULL, &e) != 0)
        goto failed;
    queued++;
    if (queued == 2) {
        redisReply *ack = sq_redis_pipe_reply(w->redis, &e);
        if (ack == NULL && !sq_redis_is_connected(w->redis))
            goto failed;
        if (ack != NULL && ack->type == REDIS_REPLY_INTEGER && ack->integer == 0)
            warn_duplicate("ack", RW(w)->ack_raw, RW(w)->ack_len);
        if (ack != NULL)
            freeReplyObject(ack);
        clear_ack(w);
    }
    sq_error me = {0};
    redisReply *rep = sq_redis_pipe_reply(w->redis, &me);
    if (rep == NULL) {
        if (sq_redis_error_is(&me, "WRONGTYPE")) {
            sq__set_aside_queue(w, q);
            return 0;
        }
        e = me;
        goto failed;
    }
    int rc = 0;
    bool fenced = rep->type == REDIS_REPLY_INTEGER && rep->integer == -1;
    if (rep->type == REDIS_REPLY_STRING)
        rc = take_job(w, u, q, rep->str, rep->len, err);
    freeReplyObject(rep);
    if (fenced)
        return lease_gone(w->rt);
    if (rc == 0 && !atomic_load(&w->rt->quiet))
        rc = block_fetch(w, u, err);
    return rc;
failed:
    RW(w)->scan_stranded = true;
    sq__error_set(err, e.code ? e.code : SQ_EREDIS, "%s", e.message);
    return -1;
}

static int reliable_fetch(sq_worker *w, sq_unit *u, sq_error *err)
{
    sq_runtime *rt = w->rt;
    size_t nq = rt->order.nqueues;

    if (atomic_load(&rt->fenced)) {
        /* Out of touch with Redis for too long: our jobs may be handed to
         * others, so take no more until the lease is renewed. */
        sq_runtime_nap(rt, 0.5);
        return 0;
    }
    size_t n = sq_queue_order_next(&rt->order, w->order, w->scratch, sq_worker_rand, w);
    n = sq__usable_queues(w, n);
    if (n == 1 && !RW(w)->scan_stranded)
        return fetch_one_queue(w, u, w->order[0], err);

    size_t scan = RW(w)->scan_stranded ? nq : 0;
    size_t nkeys = 2 * n + 2 + scan, argc = nkeys + 2;
    const char **argv = calloc(argc, sizeof *argv);
    size_t *lens = calloc(argc, sizeof *lens);
    if (argv == NULL || lens == NULL) {
        free(argv), free(lens);
        sq__error_set(err, SQ_ENOMEM, "out of memory fetching");
        return -1;
    }
    char count[24];
    snprintf(count, sizeof count, "%zu", n);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        argv[k++] = w->keys[w->order[i]];
    for (size_t i = 0; i < n; i++)
        argv[k++] = RW(w)->wkeys[w->order[i]];
    argv[k++] = RW(w)->wkeys[RW(w)->ack_raw ? RW(w)->ack_qidx : 0];
    argv[k++] = rt->lease_key;
    for (size_t q = 0; q < scan; q++)
        argv[k++] = RW(w)->wkeys[q];
    argv[k] = RW(w)->ack_raw ? RW(w)->ack_raw : "";
    lens[k++] = RW(w)->ack_len;
    argv[k++] = count;
    for (size_t i = 0; i < k; i++)
        if (lens[i] == 0 && argv[i] != RW(w)->ack_raw)
            lens[i] = strlen(argv[i]);

    sq_error e = {0};
    redisReply *rep = sq_redis_eval(w->redis, &fetch_script, (int)nkeys, (int)k, argv, lens, &e);
    free(argv), free(lens);
    if (rep == NULL) {
        /* The script may or may not have run; either way the next fetch
         * sends the ack again (LREM is idempotent) and looks for a job it
         * may have moved. */
        RW(w)->scan_stranded = true;
        sq__error_set(err, e.code, "%s", e.message);
        return -1;
    }
    bool scanned = RW(w)->scan_stranded;
    RW(w)->scan_stranded = false;
    int rc = 0;
    if (rep->type == REDIS_REPLY_ARRAY && rep->elements >= 4) {
        long long acked = rep->element[0]->integer;
        long long at = rep->element[1]->integer;
        bool stranded = rep->element[3]->integer == 1;
        if (RW(w)->ack_raw != NULL && acked == 0)
            warn_duplicate("ack", RW(w)->ack_raw, RW(w)->ack_len);
        clear_ack(w);
        if (at == -1) {
            /* fenced before the scan: a job a lost reply left is looked for
             * next time */
            RW(w)->scan_stranded = scanned;
            freeReplyObject(rep);
            return lease_gone(rt);
        }
        for (size_t i = 4; i < rep->elements; i++)
            if (rep->element[i]->type == REDIS_REPLY_INTEGER && rep->element[i]->integer >= 1 &&
                (size_t)rep->element[i]->integer <= n)
                sq__set_aside_queue(w, w->order[rep->element[i]->integer - 1]);
        size_t limit = stranded ? nq : n;
        if (at >= 1 && (size_t)at <= limit && rep->element[2]->type == REDIS_REPLY_STRING) {
            size_t q = stranded ? (size_t)at - 1 : w->order[at - 1];
            if (stranded)
                sq_log(SQ_LOG_INFO, "resuming a job left in %s by a lost reply", RW(w)->wkeys[q]);
            rc = take_job(w, u, q, rep->element[2]->str, rep->element[2]->len, err);
        }
    } else {
        sq__error_set(err, SQ_EREDIS, "fetch script: unexpected reply");
        rc = -1;
    }
    freeReplyObject(rep);
    if (rc == 0 && n > 0 && !atomic_load(&rt->quiet))
        rc = block_fetch(w, u, err);
    else if (rc == 0 && n == 0)
        sq_runtime_nap(rt, BLOCK_WAIT); /* every queue set aside */
    return rc;
}

/* Success: the LREM rides on the next fetch (one round trip per job). */
static int reliable_ack(sq_worker *w, const sq_unit *u, sq_error *err)
{
    char *copy = malloc(u->len + 1);
    if (copy == NULL) {
        sq__error_set(err, SQ_ENOMEM, "out of memory acknowledging a job");
        return -1;
    }
    memcpy(copy, u->raw, u->len + 1);
    clear_ack(w);
    RW(w)->ack_raw = copy;
    RW(w)->ack_len = u->len;
    RW(w)->ack_qidx = u->qidx;
    return 0;
}

/* Run one LREM-conditional script; 0 when it ran (whatever it found). */
static int run_conditional(sq_redis *r, sq_script *s, const char *what, int argc, const char **argv,
                           const size_t *lens, sq_error *err)
{
    redisReply *rep = sq_redis_eval(r, s, 2, argc, argv, lens, err);
    if (rep == NULL)
        return -1;
    if (rep->type == REDIS_REPLY_INTEGER && rep->integer == 0)
        warn_duplicate(what, argv[2], lens[2]);
    freeReplyObject(rep);
    return 0;
}

static int reliable_retry(sq_worker *w, const sq_unit *u, double score, const char *payload,
                          size_t len, sq_error *err)
{
    char s[32];
    sq_format_time(score, s);
    const char *argv[] = {RW(w)->wkeys[u->qidx], SQ_KEY_RETRY, u->raw, s, payload};
    size_t lens[] = {strlen(argv[0]), 5, u->len, strlen(s), len};
    return run_conditional(w->redis, &retry_script, "retry", 5, argv, lens, err);
}

static int reliable_dead(sq_worker *w, const sq_unit *u, const char *payload, size_t len,
                         sq_error *err)
{
    sq_dead_limits lim = sq_config_dead_limits(w->rt->cfg);
    sq_dead_args a;
    sq_dead_args_make(sq__now(), &lim, &a);
    const char *argv[] = {RW(w)->wkeys[u->qidx], SQ_KEY_DEAD, u->raw, a.score, payload, a.cutoff, a.max};
    size_t lens[] = {strlen(argv[0]), 4, u->len, strlen(a.score), len, strlen(a.cutoff),
                     strlen(a.max)};
    return run_conditional(w->redis, &dead_script, "dead-set entry", 7, argv, lens, err);
}

static int reliable_requeue(sq_worker *w, sq_redis *r, const sq_unit *u, sq_error *err)
{
    const char *argv[] = {RW(w)->wkeys[u->qidx], w->keys[u->qidx], u->raw};
    size_t lens[] = {strlen(argv[0]), strlen(argv[1]), u->len};
    return run_conditional(r, &requeue_script, "requeue", 3, argv, lens, err);
}

/* Leaving: send the last ack on its own. */
static int reliable_finish(sq_worker *w, sq_error *err)
{
    if (RW(w)->ack_raw == NULL)
        return 0;
    const char *argv[] = {"LREM", RW(w)->wkeys[RW(w)->ack_qidx], "1", RW(w)->ack_raw};
    size_t lens[] = {4, strlen(argv[1]), 1, RW(w)->ack_len};
    redisReply *rep = sq_redis_argv(w->redis, 4, argv, lens, 0, err);
    if (rep == NULL)
        return -1;
    if (rep->type == REDIS_REPLY_INTEGER && rep->integer == 0)
        warn_duplicate("ack", RW(w)->ack_raw, RW(w)->ack_len);
    freeReplyObject(rep);
    clear_ack(w);
    return 0;
}

/* LMOVE and BLMOVE came with Redis 6.2. */
static bool reliable_server_ok(const char *version, char *why, size_t size)
{
    if (sq_redis_version_at_least(version, 6, 2))
        return true;
    snprintf(why, size,
             "Redis %s has no LMOVE; reliable fetch needs Redis 6.2 or later (or set "
             "fetch: basic)",
             version);
    return false;
}

/* The worker's state: its working list for each queue, and the rest above. */
static int reliable_worker_init(sq_worker *w)
{
    const sq_runtime *rt = w->rt;
    if ((w->fetch_state = calloc(1, sizeof(reliable_worker))) == NULL)
        return -1;
    RW(w)->scan_stranded = true; /* cheap once, and correct after any restart */
    RW(w)->wkeys = calloc(rt->order.nqueues, sizeof *RW(w)->wkeys);
    if (RW(w)->wkeys == NULL)
        return -1;
    for (size_t q = 0; q < rt->order.nqueues; q++)
        if ((RW(w)->wkeys[q] = sq_working_list_key(rt->identity, w->tid, rt->order.names[q])) ==
            NULL)
            return -1;
    return 0;
}

static void reliable_worker_free(sq_worker *w)
{
    if (w->fetch_state == NULL)
        return;
    for (size_t q = 0; RW(w)->wkeys && q < w->rt->order.nqueues; q++)
        free(RW(w)->wkeys[q]);
    free(RW(w)->wkeys);
    clear_ack(w);
    free(w->fetch_state);
    w->fetch_state = NULL;
}

const sq_fetch_ops sq_fetch_reliable = {
    .name = "reliable",
    .fetch = reliable_fetch,
    .ack = reliable_ack,
    .retry = reliable_retry,
    .dead = reliable_dead,
    .requeue = reliable_requeue,
    .finish = reliable_finish,
    .server_ok = reliable_server_ok,
    .keeps_running_jobs = true,
    .not_pushed_back = "it stays in its working list and another process will recover it",
    .unwritten_at_exit = "it stays in its working list and will be recovered",
    .worker_init = reliable_worker_init,
    .worker_free = reliable_worker_free,
    .attach = sq__reliable_attach,
    .tick = sq__reliable_tick,
    .detach = sq__reliable_detach,
};
