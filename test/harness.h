/*
 * harness.h: real servers for the integration suites.
 *
 * sqt_redis_start runs a real redis-server on a free loopback port with its
 * data in a fresh temp dir; sqt_squire_start runs the real squire binary
 * against it with stdout captured to a log file. Nothing is mocked.
 */
#ifndef SQ_TEST_HARNESS_H
#define SQ_TEST_HARNESS_H

#include <check.h>
#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <sys/types.h>

typedef struct sqt_redis {
    pid_t pid;
    int port;
    char dir[256];
    char url[128];
    char extra[1536]; /* extra redis-server arguments, kept for restarts */
    int tls_port;     /* sqt_redis_start_tls: the TLS port (port stays plain) */
    char tls_url[128];
} sqt_redis;

/* The server binary: $SQ_REDIS_SERVER (e.g. valkey-server), else redis-server. */
const char *sqt_redis_server(void);

/* Start a sentinel ($SQ_REDIS_SERVER --sentinel) watching master on
 * 127.0.0.1:master_port, quorum 2, down after 1 s; r->port is its port. */
void sqt_sentinel_start(sqt_redis *r, const char *master, int master_port);

/* Make test certificates in dir with openssl: ca.crt (the CA), server.crt/.key
 * (signed by it, for localhost and 127.0.0.1), wrongname.crt/.key (signed by
 * it, for wrong.example only), client.crt/.key (signed by it), and
 * wrongca.crt (another CA that signed nothing here). */
void sqt_tls_certs(const char *dir);
/* Start a server with a plain port (r->port, r->url: for the test's own
 * checks) and a TLS port (r->tls_port, r->tls_url) presenting
 * <certdir>/<cert>.crt; client certificates are optional, checked against
 * ca.crt when given. */
void sqt_redis_start_tls(sqt_redis *r, const char *certdir, const char *cert, const char *extra);

/* Remove dir and everything under it (no symlink followed); errors ignored. */
void sqt_rmtree(const char *dir);
/* Wall-clock epoch seconds (sqt_now is monotonic). */
double sqt_wall(void);

/* A free TCP port on 127.0.0.1. */
int sqt_free_port(void);
/* A TCP server on 127.0.0.1 that accepts (the kernel's backlog does) and
 * never answers: a hung Redis, or a half-open connection. Returns the
 * listening socket (close it to stop); *port is its port. */
int sqt_silent_server(int *port);
/* A TCP server on 127.0.0.1 that answers every connection with the len bytes
 * of prefix, one a second, then filler, one a second, forever (it reads and
 * drops what it is sent): each read gets something well within any per-read
 * timeout while the reply, or the TLS record, never completes. Runs in a
 * child process that dies with the caller; returns its pid (for
 * sqt_trickle_stop), *port is its port. */
pid_t sqt_trickle_server(const char *prefix, size_t len, char filler, int *port);
/* The same behind TLS: the handshake completes (certdir's server.crt, made
 * by sqt_tls_certs), then the reply trickles, a TLS record a second. One
 * connection at a time. */
pid_t sqt_trickle_tls_server(const char *certdir, const char *prefix, size_t len, char filler,
                             int *port);
/* A TCP server on 127.0.0.1 that answers whatever each read brings with
 * reply, at once (a peer answering garbage, or a lying sentinel). One
 * connection at a time; stop it with sqt_trickle_stop. */
pid_t sqt_reply_server(const char *reply, int *port);
void sqt_trickle_stop(pid_t pid);
/* A TCP proxy on 127.0.0.1 to target_port whose every answer arrives delay
 * seconds late (a slow server or network that still works). Runs in a child
 * process that dies with the caller; stop it with sqt_trickle_stop. */
pid_t sqt_slow_proxy(int target_port, double delay, int *port);
/* A fresh temp dir (mkdtemp) whose path is written into out (256 bytes);
 * removed when the process that made it exits (SQUIRE_TEST_KEEP=1 keeps it). */
void sqt_tempdir(char *out, const char *tag);
/* A systemd credentials dir (LoadCredential=) holding the file `name` with
 * `text` and a newline; env (320 bytes) gets "CREDENTIALS_DIRECTORY=<dir>". */
void sqt_credential(char *env, const char *name, const char *text);

/* Start redis-server; extra is appended to its command line (may be NULL),
 * e.g. "--appendonly yes --requirepass s3cret". Waits until it answers. */
void sqt_redis_start(sqt_redis *r, const char *extra);
void sqt_redis_stop(sqt_redis *r);    /* SIGTERM, wait, remove the dir */
void sqt_redis_kill9(sqt_redis *r);   /* SIGKILL, keep the dir */
void sqt_redis_restart(sqt_redis *r); /* start again on the same port and dir */
redisContext *sqt_redis_connect(const sqt_redis *r);
/* Run one command and return the reply (caller frees), asserting no I/O error. */
redisReply *sqt_cmd(redisContext *c, const char *fmt, ...);
long long sqt_int(redisContext *c, const char *fmt, ...);

typedef struct sqt_proc {
    pid_t pid;
    char log[300];
} sqt_proc;

/* Run squire with argv (NULL-terminated, without argv[0]) and REDIS_URL=url.
 * Extra environment as "NAME=value" strings in env (NULL-terminated or NULL). */
void sqt_squire_start(sqt_proc *p, const char *url, const char *const *argv,
                      const char *const *env);
/* The same for another program built on sq_main (binary is its path). */
void sqt_proc_start(sqt_proc *p, const char *binary, const char *url, const char *const *argv,
                    const char *const *env);
/* Wait for exit; returns the exit status (or 128+signal), -1 on timeout. */
int sqt_proc_wait(sqt_proc *p, double timeout);
/* Kill (if still running) and reap. */
void sqt_proc_stop(sqt_proc *p, int sig);
/* Whether the process's log contains needle; waits up to timeout seconds. */
bool sqt_log_wait(const sqt_proc *p, const char *needle, double timeout);
/* The log as a malloc'd string. */
/* The whole file at path, NUL-terminated ("" when it cannot be opened); free it. */
char *sqt_file_read(const char *path);
char *sqt_log_read(const sqt_proc *p);

/* Wait until `cmd` (an integer-reply command) returns >= want, up to timeout.
 * Returns the last value. */
long long sqt_wait_int(redisContext *c, long long want, double timeout, const char *fmt, ...);

/* Run a command line through /bin/sh with REDIS_URL set; capture stdout
 * (malloc'd, into *out when out is not NULL). Returns the exit status. */
int sqt_sh(const char *url, char **out, const char *fmt, ...);

/* Run test/ruby/<script> with ruby and the given arguments, loading the
 * Sidekiq chosen by sqt_sidekiq_use. */
int sqt_ruby(const char *url, char **out, const char *script, const char *args);
/* The same in an environment holding only PATH, HOME, LANG and env (shell
 * words, e.g. "RAILS_ENV='production'"), without REDIS_URL. */
int sqt_ruby_env(char **out, const char *env, const char *script, const char *args);
/* Which Sidekiq sqt_ruby loads: NULL for Debian's ruby-sidekiq (6.4.1), or
 * "7.3.10" for the copy in <repo>/../shared/third_party (through RUBYLIB). */
void sqt_sidekiq_use(const char *version);
/* Whether ../shared/third_party holds sidekiq-<version> ("8.1.7": its client
 * and API run on Ruby 3.1 through ruby31_compat.rb; sqt_sidekiq_use takes it). */
bool sqt_third_party_has(const char *version);
/* The version sqt_ruby's scripts should report ("6.4.1" or the one chosen). */
const char *sqt_sidekiq_expected(void);
/* The absolute path of <repo>/../shared/third_party when it holds
 * sidekiq-7.3.10, else NULL (a user's clone without it). */
const char *sqt_third_party(void);

double sqt_now(void);
void sqt_sleep(double s);

/* Run a Check suite; returns the process exit status. */
int sqt_run(Suite *s);

#endif
