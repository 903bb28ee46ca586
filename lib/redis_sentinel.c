/*
 * redis_sentinel.c: finding the master through Redis Sentinel: each
 * sentinel in turn is asked for the master's address, and the server it
 * names must say it is the master; the address is reported once per change.
 */
#include "redis_internal.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Ask one sentinel where the master is: 0 with host/port set, else -1. */
static int ask_sentinel(sq_redis *r, const char *sentinel, double deadline, char *host,
                        size_t hsize, int *port, sq_error *err)
{
    char *shost;
    int sport;
    if (sq_redis_sentinel_parse(sentinel, &shost, &sport) != 0) {
        sq__error_set(err, SQ_ECONFIG, "bad sentinel address \"%s\"", sentinel);
        return -1;
    }
    char where[300];
    snprintf(where, sizeof where, " (sentinel %s)", sentinel);
    redisContext *c = sq__redis_open_context(r, shost, sport, where, deadline, err);
    free(shost);
    if (c == NULL)
        return -1;
    int rc = -1;
    if (sq__redis_authenticate(r, c, r->url.sentinel_username, r->url.sentinel_password, where,
                               deadline, err) == 0) {
        char buf[160];
        redisReply *rep =
            sq__redis_connect_cmd(c, deadline, "SENTINEL get-master-addr-by-name %s", r->url.host);
        if (rep == NULL)
            sq__error_set(err, sq__redis_io_code(c), "%s%s: %s", r->display, where,
                          sq__redis_io_reason(r, c, buf, sizeof buf));
        else if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 &&
                 rep->element[0]->type == REDIS_REPLY_STRING &&
                 rep->element[1]->type == REDIS_REPLY_STRING) {
            snprintf(host, hsize, "%s", rep->element[0]->str);
            *port = atoi(rep->element[1]->str);
            rc = *port > 0 && *port < 65536 && host[0] != '\0' ? 0 : -1;
            if (rc != 0)
                sq__error_set(err, SQ_EREDIS, "%s%s: no usable master address: %.100s:%.20s",
                              r->display, where, rep->element[0]->str, rep->element[1]->str);
        } else if (rep->type == REDIS_REPLY_ERROR)
            sq__error_set(err, SQ_EREDIS, "%s%s: %.200s", r->display, where, rep->str);
        else
            sq__error_set(err, SQ_EREDIS, "%s%s: no master named \"%s\"", r->display, where,
                          r->url.host);
        if (rep)
            freeReplyObject(rep);
    }
    redisFree(c);
    return rc;
}

static sq_report_fn reporter;
static void *reporter_ud;

void sq_redis_set_reporter(sq_report_fn fn, void *ud)
{
    reporter = fn;
    reporter_ud = ud;
}

/* Report where the master is once per change for the whole process, not
 * once per connection (every worker has one). */
static void log_master(const char *name, const char *addr)
{
    static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    static char last[600];
    char now[sizeof last];
    snprintf(now, sizeof now, "%s %s", name, addr);
    pthread_mutex_lock(&lock);
    bool changed = strcmp(now, last) != 0;
    if (changed)
        snprintf(last, sizeof last, "%s", now);
    pthread_mutex_unlock(&lock);
    if (changed && reporter != NULL) {
        char msg[sizeof last + 40];
        snprintf(msg, sizeof msg, "sentinels: master \"%s\" is at %s", name, addr);
        reporter(reporter_ud, SQ_REPORT_INFO, msg);
    }
}

/* Report e, from a sentinel (!found) or from the master one named. */
static int sentinel_failure(const sq_error *e, bool found, sq_error *err)
{
    if (found)
        sq__error_set(err, e->code, "%s", e->message);
    else
        sq__error_set(err, e->code ? e->code : SQ_EREDIS, "no sentinel gave the master: %s",
                      e->message);
    return -1;
}

/* The deadline for sentinel i's step (asking it, or connecting to the
 * master it named): an equal share of the time left among the sentinels
 * not yet done, so a hung sentinel, or a hung master a stale one names,
 * does not starve the ones after it; the last gets all that is left. */
static double share_of(const sq_redis *r, size_t i, double deadline)
{
    double now = sq__monotonic();
    return now + (deadline - now) / (double)(r->url.nsentinels - i);
}

/* Each sentinel in turn until one names a server that is the master: a
 * sentinel that does not answer, or that names a replica or a dead server
 * (it is behind: a stale config, a partition), is passed over. All of it by
 * deadline: asking each sentinel, and connecting to the master it names,
 * each take at most a share of the time left (share_of). */
int sq__redis_connect_via_sentinels(sq_redis *r, double deadline, sq_error *err)
{
    sq_error lookup = {0}, master = {0};
    for (size_t i = 0; i < r->url.nsentinels; i++) {
        sq_error e = {0};
        char host[256];
        int port;
        bool found = ask_sentinel(r, r->url.sentinels[i], share_of(r, i, deadline), host,
                                  sizeof host, &port, &e) == 0;
        if (found) {
            snprintf(r->master, sizeof r->master, "%s:%d", host, port);
            if (sq__redis_connect_to(r, host, port, share_of(r, i, deadline), &e) == 0) {
                log_master(r->url.host, r->master);
                return 0;
            }
        }
        /* A sentinel refusing our credentials or TLS settings: the others
         * will too. A master refusing them may be a stale sentinel's wrong
         * address: the others are asked first. */
        if (!found && (e.code == SQ_ECONFIG || e.code == SQ_EAUTH))
            return sentinel_failure(&e, false, err);
        sq_error *keep = found ? &master : &lookup;
        if (keep->code == 0 || (found && (e.code == SQ_ECONFIG || e.code == SQ_EAUTH)))
            *keep = e;
    }
    return master.code != 0 ? sentinel_failure(&master, true, err)
                            : sentinel_failure(&lookup, false, err);
}
