/*
 * httpd.h: the daemon's HTTP endpoint (`metrics_address`, off by default),
 * served by libmicrohttpd on one internal thread:
 *
 *   GET /metrics  Prometheus text (observe.h)
 *   GET /healthz  200 while every thread is turning (the systemd watchdog's
 *                 rule, sq_manager_progress, and the main loop has come
 *                 round within SQ_HTTPD_MAIN_STUCK_MS), 503 when one is stuck
 *   GET /readyz   200 when the process fetches jobs: started, Redis
 *                 reachable, not quiet, not stopping, not fenced; else 503
 *
 * Anything else: 404, or 405 for a method other than GET and HEAD. Abuse
 * is bounded: at most SQ_HTTPD_MAX_PER_ADDRESS connections from one client
 * address and SQ_HTTPD_MAX_CONNECTIONS in all (more wait in the listen
 * backlog, or are closed on accept when their address is over its share),
 * SQ_HTTPD_TIMEOUT seconds of silence closes one, and a request's headers
 * must fit SQ_HTTPD_MEMORY bytes. A flood from one address thus leaves
 * room for the kubelet's probes and Prometheus, and the endpoint answers
 * again SQ_HTTPD_TIMEOUT seconds after a slow client falls silent. Workers
 * never wait on the endpoint: a scrape reads counters and the last Redis
 * sample, never Redis itself.
 */
#ifndef SQ_HTTPD_H
#define SQ_HTTPD_H

#include "squire.h"

#define SQ_HTTPD_MAX_CONNECTIONS 64
#define SQ_HTTPD_MAX_PER_ADDRESS 16
#define SQ_HTTPD_TIMEOUT 5 /* seconds */
/* a request must come whole within this of its connection's first byte
 * (or of the last answer on it), however the client dribbles */
#define SQ_HTTPD_DEADLINE_MS 10000
#define SQ_HTTPD_MEMORY (16 * 1024)
#define SQ_HTTPD_MAIN_STUCK_MS 30000

struct sq_runtime;

/* Listen on address (config syntax, hostport.h) and serve rt. 0, or -1
 * with err (SQ_ECONFIG: the address is unusable, e.g. already in use),
 * which begins with where the address was set ("FILE:LINE: metrics_address"
 * or "--metrics"; NULL: "metrics_address"). */
int sq_httpd_start(struct sq_runtime *rt, const char *address, const char *where, sq_error *err);
/* The workers and poller run: /healthz and /readyz judge them from now on
 * (before, /healthz says starting, /readyz 503). */
void sq_httpd_workers_started(void);
/* The main loop came round (launcher.c, each turn): the watchdog is pinged
 * from that loop, so /healthz asks the same of it. */
void sq_httpd_main_turned(void);
/* Stop serving (a no-op when not started). */
void sq_httpd_stop(void);

#endif
