/*
 * httpd.h: the daemon's HTTP endpoint (`metrics_address`, off by default),
 * served by libmicrohttpd on one internal thread:
 *
 *   GET /metrics  Prometheus text (metrics.h)
 *   GET /healthz  200 while every thread is turning (the systemd watchdog's
 *                 rule, sq_runtime_progress), 503 when one is stuck
 *   GET /readyz   200 when the process fetches jobs: started, Redis
 *                 reachable, not quiet, not stopping, not fenced; else 503
 *
 * Anything else: 404, or 405 for a method other than GET and HEAD. Abuse
 * is bounded: at most SQ_HTTPD_MAX_CONNECTIONS connections at once (more
 * are closed on accept), SQ_HTTPD_TIMEOUT seconds of silence closes one,
 * and a request's headers must fit SQ_HTTPD_MEMORY bytes. Workers never
 * wait on the endpoint: a scrape reads counters and the last Redis sample,
 * never Redis itself.
 */
#ifndef SQ_HTTPD_H
#define SQ_HTTPD_H

#include "squire.h"

#define SQ_HTTPD_MAX_CONNECTIONS 32
#define SQ_HTTPD_TIMEOUT 5 /* seconds */
#define SQ_HTTPD_MEMORY (16 * 1024)

struct sq_runtime;

/* Listen on address (config syntax, hostport.h) and serve rt. 0, or -1
 * with err (SQ_ECONFIG: the address is unusable, e.g. already in use). */
int sq_httpd_start(struct sq_runtime *rt, const char *address, sq_error *err);
/* The workers and poller run: /healthz and /readyz judge them from now on
 * (before, /healthz says starting, /readyz 503). */
void sq_httpd_workers_started(void);
/* Stop serving (a no-op when not started). */
void sq_httpd_stop(void);

#endif
