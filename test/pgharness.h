/*
 * pgharness.h: a real PostgreSQL for the integration suites.
 *
 * sqt_pg_start runs initdb into a fresh temp dir and starts the server with
 * pg_ctl on a free loopback port (trust auth, user postgres, fsync off,
 * max_connections 40). As root, initdb, pg_ctl and postgres run as the
 * `postgres` user (PostgreSQL refuses root) and the dir is chowned to it.
 *
 * pg_ctl daemonizes the postmaster, so PR_SET_PDEATHSIG cannot tie it to the
 * test. Instead every started server gets a watchdog process (in its own
 * session, out of reach of Check's killpg) that waits on a pipe only the test
 * process holds: when the test dies in any way (failed assertion's _exit,
 * Check's timeout SIGKILL, a crash) the pipe reaches EOF and the watchdog runs
 * `pg_ctl stop -m immediate` and removes the dir. sqt_pg_stop disarms it.
 */
#ifndef SQ_TEST_PGHARNESS_H
#define SQ_TEST_PGHARNESS_H

#include <stdbool.h>
#include <sys/types.h>

typedef struct sqt_pg {
    int port;
    char dir[256];      /* temp dir: data/ inside it, the socket and pg.log */
    char data[300];     /* the data directory */
    char url[128];      /* postgresql://postgres@127.0.0.1:PORT/postgres */
    char bindir[256];   /* where initdb and pg_ctl are */
    pid_t watchdog;     /* stops the server if the test dies */
    int watch_fd;       /* write end of the watchdog's pipe */
    void *conn;         /* the harness's own PGconn (application_name sqt-harness) */
} sqt_pg;

/* initdb + start on a free port (port 0) or on the given port. Asserts. */
void sqt_pg_start(sqt_pg *pg);
void sqt_pg_start_on(sqt_pg *pg, int port);
/* Stop (immediate), disarm the watchdog and remove the dir. Idempotent. */
void sqt_pg_stop(sqt_pg *pg);
/* Take the server down (pg_ctl stop -m fast: backends are terminated) and
 * bring it back on the same dir and port. */
void sqt_pg_down(sqt_pg *pg);
void sqt_pg_up(sqt_pg *pg);
void sqt_pg_restart(sqt_pg *pg);

/* Run SQL (printf-style) through the harness's connection, asserting it
 * succeeds. sqt_pg_str returns the first column of the first row, malloc'd
 * (NULL for no row or SQL NULL); sqt_pg_int parses it (0 for NULL). */
void sqt_pg_exec(sqt_pg *pg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
char *sqt_pg_str(sqt_pg *pg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
long long sqt_pg_int(sqt_pg *pg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The same without asserting (the server may be down): false on any error. */
bool sqt_pg_try_int(sqt_pg *pg, long long *out, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Connections in pg_stat_activity whose application_name is app (exact), or
 * -1 when the server cannot be asked. */
long long sqt_pg_count_app(sqt_pg *pg, const char *app);

/* The server log (malloc'd), for failure messages. */
char *sqt_pg_log(const sqt_pg *pg);

#endif
