#ifndef SQ_DBBUDGET_H
#define SQ_DBBUDGET_H

/*
 * dbbudget.h: the connections every squire process sharing a PostgreSQL
 * server may open, against what the server allows (dbbudget.c).
 */
#include <stdbool.h>

#include "pgpool.h"
#include "redis.h"

/* The process hash field each process with a database publishes with its
 * heartbeat: {"pool":N,"server":"host:port"}. Sidekiq reads the fields it
 * knows (HMGET) and never this one. */
#define SQ_DBBUDGET_FIELD "database"

typedef struct sq_dbbudget {
    sq_pgpool *pool;  /* borrowed */
    int size;         /* this process's pool */
    char *field;      /* owned: the heartbeat field's value */
    sq_pg_limits lim; /* the server's, when known */
    bool known;
    bool over;            /* the last verdict */
    bool fresh;           /* lim.in_use just counted: the verdict not yet logged */
    bool warned;          /* the first failure to ask was logged */
    struct sq_dbask *ask; /* the thread that asks the server (dbask.c), or NULL */
} sq_dbbudget;

/* Set b up for pool (borrowed, not NULL); -1 out of memory. */
int sq_dbbudget_init(sq_dbbudget *b, sq_pgpool *pool);
void sq_dbbudget_destroy(sq_dbbudget *b);

/* The pools the live processes other than self (may be NULL) publish for
 * server, summed into *pools over *procs processes. */
int sq_dbbudget_peers(sq_redis *r, const char *self, const char *server, int *pools, int *procs,
                      sq_error *err);

/* One line for the log or --check into msg: the total against the limit,
 * and when over it what to do. in_use < 0: not counted (a later check,
 * when the start-up count is stale). True when over. */
bool sq_dbbudget_verdict(const sq_dbbudget *b, int peer_pools, int peer_procs, int in_use,
                         char *msg, size_t size);

#endif
