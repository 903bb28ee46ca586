/*
 * check.c: `squire --check`: what a deploy script or ExecStartPre runs before
 * starting squire. One line per check on stdout, then a verdict; exit 0 when
 * all pass, 78 for configuration problems, 69 when Redis is unreachable or
 * this config cannot fetch (one script over every queue key, as a fetch
 * calls it). Running processes whose heartbeat reports failing fetches are
 * shown as WARN lines.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "dbbudget.h"
#include "launcher.h"
#include "log.h"
#include "pgpool.h"
#include "redis.h"
#include "registry.h"
#include "sidekiq.h"

#define EX_UNAVAILABLE 69
#define EX_CONFIG 78

static void line(const char *what, bool ok, const char *fmt, ...) SQ_PRINTF(3, 4);
static void line(const char *what, bool ok, const char *fmt, ...)
{
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    printf("%-9s %-4s %s\n", what, ok ? "ok" : "FAIL", msg);
}

static int check_handlers(sq_registry *reg)
{
    const char *names[8];
    size_t n = sq_registry_names(reg, names, 8), total = sq_registry_count(reg);
    char list[400] = "";
    size_t pos = 0;
    for (size_t i = 0; i < n && pos < sizeof list; i++)
        pos += (size_t)snprintf(list + pos, sizeof list - pos, "%s%s", i ? ", " : "", names[i]);
    line("handlers", total > 0, "%zu registered%s%s%s", total, total ? " (" : "", list,
         total > n ? ", ...)" : total ? ")" : "; every job would fail with Squire::NoHandler");
    return total > 0 ? 0 : EX_CONFIG;
}

/* Every queue key this config fetches from, in one script call through the
 * same path as the fetch (so no argument count the config reaches is
 * refused): waiting jobs, and keys that are not lists. */
static sq_script probe_script = SQ_SCRIPT(
    "local n = 0\n"
    "for i = 1, #KEYS do\n"
    "  local t = redis.call('TYPE', KEYS[i]).ok\n"
    "  if t == 'list' then n = n + redis.call('LLEN', KEYS[i])\n"
    "  elseif t ~= 'none' then return redis.error_reply(KEYS[i] .. ' is a ' .. t ..\n"
    "    ', not a list: squire will not fetch from it') end\n"
    "end\n"
    "return n\n");

static int check_fetch(const sq_config *cfg, sq_redis *r)
{
    const char **keys = calloc(cfg->nqueues ? cfg->nqueues : 1, sizeof *keys);
    int rc = 0;
    for (size_t i = 0; keys && i < cfg->nqueues; i++)
        if ((keys[i] = sq_queue_key_dup(cfg->queues[i].name)) == NULL)
            rc = -1;
    sq_error err = {0};
    redisReply *rep = keys && rc == 0 ? sq_redis_eval(r, &probe_script, (int)cfg->nqueues,
                                                      (int)cfg->nqueues, keys, NULL, &err)
                                      : NULL;
    if (rep != NULL && rep->type == REDIS_REPLY_INTEGER) {
        line("fetch", true, "%zu queue%s, %lld job%s waiting", cfg->nqueues,
             cfg->nqueues == 1 ? "" : "s", rep->integer, rep->integer == 1 ? "" : "s");
    } else {
        line("fetch", false, "%s", err.code ? err.message : "out of memory");
        rc = EX_UNAVAILABLE;
    }
    if (rep)
        freeReplyObject(rep);
    for (size_t i = 0; keys && i < cfg->nqueues; i++)
        free((char *)keys[i]);
    free(keys);
    return rc;
}

/* Running processes whose heartbeat says their fetches are failing
 * (heartbeat.c's fetch_error): shown, but a stale entry of a process that
 * has just been restarted must not stop this one starting, so not fatal. */
static void check_processes(sq_redis *r)
{
    redisReply *all = sq_redis_cmd(r, NULL, "SMEMBERS " SQ_KEY_PROCESSES);
    size_t failing = 0, n = all && all->type == REDIS_REPLY_ARRAY ? all->elements : 0;
    for (size_t i = 0; i < n; i++) {
        const char *id = all->element[i]->str;
        redisReply *f = sq_redis_cmd(r, NULL, "HGET %s fetch_error", id);
        if (f != NULL && f->type == REDIS_REPLY_STRING && f->len > 0) {
            printf("%-9s %-4s process %s: fetch failing: %s\n", "processes", "WARN", id, f->str);
            failing++;
        }
        if (f)
            freeReplyObject(f);
    }
    if (failing == 0)
        line("processes", true, "%zu running, none reports failing fetches", n);
    if (all)
        freeReplyObject(all);
}

static int check_redis(const sq_config *cfg)
{
    sq_redis_url url = {0};
    sq_error err = {0};
    if (sq_config_redis_url(cfg, &url, &err) != 0) {
        line("redis", false, "%s", err.message);
        return EX_CONFIG;
    }
    sq_redis *r = sq_redis_new(&url, 3.0);
    sq_redis_url_destroy(&url);
    redisReply *info = r ? sq_redis_cmd(r, &err, "INFO") : NULL;
    int rc = 0;
    if (info == NULL || info->type != REDIS_REPLY_STRING) {
        bool auth = err.code == SQ_EAUTH || err.code == SQ_ECONFIG ||
                    sq_redis_error_is(&err, "NOAUTH") || sq_redis_error_is(&err, "WRONGPASS") ||
                    sq_redis_error_is(&err, "NOPERM");
        line("redis", false, "%s", err.code ? err.message : "INFO failed");
        rc = auth ? EX_CONFIG : EX_UNAVAILABLE;
    } else {
        char v[32] = "?", policy[64] = "?", aof[8] = "?";
        sq_redis_info_field(info->str, "redis_version", v, sizeof v);
        sq_redis_info_field(info->str, "maxmemory_policy", policy, sizeof policy);
        sq_redis_info_field(info->str, "aof_enabled", aof, sizeof aof);
        bool fetch_ok = cfg->fetch != SQ_FETCH_RELIABLE || sq_redis_version_at_least(v, 6, 2);
        char valkey[32], product[64] = "";
        if (sq_redis_info_field(info->str, "valkey_version", valkey, sizeof valkey))
            snprintf(product, sizeof product, "Valkey %s, compatible with ", valkey);
        line("redis", fetch_ok, "%s: %sRedis %s%s", sq_redis_display(r), product, v,
             fetch_ok ? "" : " has no LMOVE: reliable fetch needs 6.2+ (or fetch: basic)");
        line("redis", true, "maxmemory-policy %s%s, appendonly %s%s", policy,
             strcmp(policy, "noeviction") ? " (warning: Redis may evict jobs)" : "",
             strcmp(aof, "1") ? "no" : "yes",
             strcmp(aof, "1") ? " (warning: a Redis crash loses recent jobs)" : "");
        rc = fetch_ok ? 0 : EX_CONFIG;
        if (rc == 0)
            rc = check_fetch(cfg, r);
        check_processes(r);
    }
    if (info)
        freeReplyObject(info);
    sq_redis_free(r);
    return rc;
}

/* Other processes' pools, from Redis; unknown (-1) when it cannot be asked. */
static int peer_pools(const sq_config *cfg, const char *server, int *procs)
{
    sq_redis_url url = {0};
    sq_redis *r = NULL;
    int pools = -1;
    if (sq_redis_url_parse(cfg->redis_url, &url, NULL) == 0 &&
        (r = sq_redis_new(&url, 3.0)) != NULL &&
        sq_dbbudget_peers(r, NULL, server, &pools, procs, NULL) != 0)
        pools = -1;
    sq_redis_free(r);
    sq_redis_url_destroy(&url);
    return pools;
}

static int check_database(const sq_config *cfg)
{
    if (cfg->db_url == NULL)
        return 0;
    int size = cfg->db_pool > 0 ? cfg->db_pool : cfg->concurrency;
    sq_pgpool *p = sq_pgpool_new(cfg->db_url, "squire --check", size, 1, cfg->db_connect_timeout,
                                 0);
    if (p != NULL)
        sq_pgpool_set_reporter(p, sq_log_report, NULL);
    sq_dbbudget b = {0};
    sq_error err = {0};
    int rc = p && sq_dbbudget_init(&b, p) == 0 && sq_pgpool_budget(p, &b.lim, NULL, &err) == 0
                 ? 0
                 : EX_UNAVAILABLE;
    if (rc != 0) {
        line("database", false, "%s", err.code ? err.message : "out of memory");
    } else {
        /* the processes already running against this server, plus this one */
        int procs = 0, pools = peer_pools(cfg, sq_pgpool_server(p), &procs);
        char msg[700];
        bool over = sq_dbbudget_verdict(&b, pools > 0 ? pools : 0, procs, b.lim.in_use, msg,
                                        sizeof msg);
        line("database", true, "%s%s%s", over ? "warning: " : "", msg,
             pools < 0 ? " (other processes not counted: Redis unreachable)" : "");
    }
    sq_dbbudget_destroy(&b);
    sq_pgpool_free(p);
    return rc;
}

int sq__check(const sq_config *cfg, sq_registry *reg)
{
    char queues[300];
    sq_config_queue_list(cfg, false, queues, sizeof queues);
    line("config", true, "%s: concurrency %d, timeout %d s, queues [%s], fetch %s",
         cfg->config_path ? cfg->config_path : "(no file: defaults and flags)",
         cfg->concurrency, cfg->timeout, queues,
         cfg->fetch == SQ_FETCH_RELIABLE ? "reliable" : "basic");
    int rc = check_handlers(reg);
    int rr = check_redis(cfg);
    int rd = check_database(cfg);
    if (rc == 0)
        rc = rr ? rr : rd;
    printf("squire --check: %s\n", rc == 0 ? "OK" : "FAILED");
    return rc;
}
