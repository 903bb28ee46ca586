#ifndef SQ_PGPOOL_H
#define SQ_PGPOOL_H

#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>

#include "common.h"

/* A thread-safe pool of at most `size` PostgreSQL connections (pgpool.c). */
typedef struct sq_pgpool sq_pgpool;

sq_pgpool *sq_pgpool_new(const char *url, const char *app_name, int size,
                         double checkout_timeout, double connect_timeout, int statement_timeout);
void sq_pgpool_free(sq_pgpool *p);
/* Where the pool reports server notices and what it could not clean up
 * (common.h); set before the first checkout. */
void sq_pgpool_set_reporter(sq_pgpool *p, sq_report_fn fn, void *ud);
int sq_pgpool_size(const sq_pgpool *p);
/* Connections checked out now, and checkouts so far that had to wait for
 * one (metrics). Any thread. */
void sq_pgpool_stats(sq_pgpool *p, int *in_use, long *waits);
/* A usable connection, or NULL with err (exhausted past the timeout, or the
 * server unreachable). */
PGconn *sq_pgpool_checkout(sq_pgpool *p, sq_error *err);
/* Give it back: rolled back if inside a transaction, closed if broken. */
void sq_pgpool_checkin(sq_pgpool *p, PGconn *c);
/* 0 when libpq accepts url (or libpq cannot be loaded: the pool reports
 * that), else -1 with an SQ_ECONFIG err saying why, the password hidden. */
int sq_pgpool_url_check(const char *url, sq_error *err);
/* What the server lets ordinary users open, and what is open now. */
typedef struct sq_pg_limits {
    int max_connections;
    int superuser_reserved; /* superuser_reserved_connections */
    int reserved;           /* reserved_connections (PostgreSQL 16+), else 0 */
    int allowed;            /* max_connections less both reserves */
    int in_use;             /* client backends now, not counting the one asking */
} sq_pg_limits;

/* The server's limits, asked on one of the pool's connections: an idle
 * one, or a new one (kept in the pool) when the pool has room; -1 (all in
 * use) when it has none, never a connection past the pool's size. The
 * connect and the answer are each waited for at most connect_timeout (the
 * URL's, else squire's; none when it is 0), and end within 100 ms once
 * *stop (may be NULL) is set: then -1. */
int sq_pgpool_budget(sq_pgpool *p, sq_pg_limits *out, const atomic_bool *stop, sq_error *err);
/* message with the URL's secrets (and anything shaped like a password)
 * replaced by REDACTED: a new string, NULL when out of memory. */
char *sq_pgpool_scrub(const sq_pgpool *p, const char *message);
/* "host:port" as the URL names the server (no user, database or password):
 * how processes sharing one server recognise each other. Borrowed. */
const char *sq_pgpool_server(const sq_pgpool *p);

#endif
