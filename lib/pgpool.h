#ifndef SQ_PGPOOL_H
#define SQ_PGPOOL_H

#include <libpq-fe.h>
#include <pthread.h>

#include "squire.h"

/* A thread-safe pool of at most `size` PostgreSQL connections (pgpool.c). */
typedef struct sq_pgpool sq_pgpool;

sq_pgpool *sq_pgpool_new(const char *url, const char *app_name, int size,
                         double checkout_timeout, double connect_timeout, int statement_timeout);
void sq_pgpool_free(sq_pgpool *p);
int sq_pgpool_size(const sq_pgpool *p);
/* A usable connection, or NULL with err (exhausted past the timeout, or the
 * server unreachable). */
PGconn *sq_pgpool_checkout(sq_pgpool *p, sq_error *err);
/* Give it back: rolled back if inside a transaction, closed if broken. */
void sq_pgpool_checkin(sq_pgpool *p, PGconn *c);
/* 0 when libpq accepts url (or libpq cannot be loaded: the pool reports
 * that), else -1 with an SQ_ECONFIG err saying why, the password hidden. */
int sq_pgpool_url_check(const char *url, sq_error *err);
/* The server's max_connections and the connections in use (one short-lived
 * connection of its own). */
int sq_pgpool_budget(sq_pgpool *p, int *max_connections, int *in_use, sq_error *err);

#endif
