/*
 * config.h: squire's configuration: sidekiq.yml, command-line flags and
 * environment variables, all fed through one option table.
 *
 * Precedence, lowest first: built-in defaults, the file's top level, the
 * file's environment section (e.g. `production:`), environment-variable
 * defaults (RAILS_MAX_THREADS for concurrency when neither file nor flag set
 * it), command-line flags. A `-q` list replaces the file's queues.
 *
 * Pure: no logging, no exit; the environment is read through a caller-given
 * function so that tests control it.
 */
#ifndef SQ_CONFIG_H
#define SQ_CONFIG_H

#include "common.h"
#include "sidekiq.h"
#include "url.h"

#define SQ_DEFAULT_CONCURRENCY 5
#define SQ_DEFAULT_TIMEOUT 25
#define SQ_DEFAULT_MAX_RETRIES 25
#define SQ_DEFAULT_DEAD_MAX_JOBS 10000
#define SQ_DEFAULT_DEAD_TIMEOUT (180L * 24 * 3600)
#define SQ_DEFAULT_POLL_AVERAGE 5.0
#define SQ_DEFAULT_MAX_PAYLOAD (1024 * 1024)
#define SQ_DEFAULT_MAX_INTERRUPTIONS 3
#define SQ_DEFAULT_LEASE_TTL 20.0
#define SQ_DEFAULT_BEAT_INTERVAL 10.0
#define SQ_MAX_CONCURRENCY 1000
#define SQ_MAX_TIMEOUT 86400

typedef struct sq_queue_conf {
    char *name;  /* owned; a usable queue name (sidekiq.h) */
    int weight;  /* 0 = unweighted */
} sq_queue_conf;

/* Execution-metrics layouts (sq_config.metrics; issue 16, lib/daemon/metrics.h). */
#define SQ_METRICS_V7 1u
#define SQ_METRICS_V8 2u
#define SQ_METRICS_DEFAULT SQ_METRICS_V8 /* what current Sidekiq (8.x) reads */

typedef enum sq_fetch_mode { SQ_FETCH_BASIC = 0, SQ_FETCH_RELIABLE = 1 } sq_fetch_mode;

typedef struct sq_config {
    char *config_path;  /* the file that was read, NULL if none */
    char *environment;  /* -e, APP_ENV, RAILS_ENV, RACK_ENV, "development" */
    int concurrency;
    int timeout;        /* seconds to wait for running jobs at shutdown */
    sq_queue_conf *queues;
    size_t nqueues;     /* at least 1 ("default") after loading */
    char *tag;          /* -g; "" when unset */
    char **labels;
    size_t nlabels;
    char **requires;    /* -r / :require: shared objects, in order */
    size_t nrequires;
    bool verbose;
    int log_level; /* 0 debug, 1 info, 2 warn, 3 error (log.h); -v means debug */
    char *log_format;      /* "text" (default) or "json" (issue 17) */
    char *metrics_address; /* [host:]port of /metrics, /healthz, /readyz; NULL: off */
    int max_retries;
    long dead_max_jobs;
    long dead_timeout_in_seconds;
    double average_scheduled_poll_interval;
    double poll_interval_average;  /* 0 = unset (derived from the process count) */
    char *redis_url;    /* from REDIS_PROVIDER / REDIS_URL; NULL = redis://localhost:6379/0 */
    sq_redis_url redis_opts; /* redis: TLS and sentinel options only (no address) */
    sq_fetch_mode fetch;
    int max_interruptions; /* reliable: deaths of a job's process before it is dead (0: never) */
    double lease_ttl;      /* reliable: seconds a silent process keeps its jobs */
    double beat_interval;  /* seconds between heartbeats (Sidekiq 7: 10) */
    size_t max_payload_bytes;
    unsigned metrics;      /* execution-metrics layouts (metrics.h): 8.x by default */
    bool concurrency_set; /* set by file or flag (RAILS_MAX_THREADS applies otherwise) */
    char *concurrency_null; /* "<file>:<line>" when the file left it null: as in Sidekiq,
                             * unset, so RAILS_MAX_THREADS applies, else an error */
    /* database: (PostgreSQL for handlers, pgpool.c) */
    char *db_url;              /* default $DATABASE_URL; NULL: no database */
    char *db_url_where;        /* owned: "<file>:<line>: database.url" that set it */
    char *metrics_where;       /* owned: "<file>:<line>: metrics_address" (or the flag) */
    int db_pool;               /* 0: concurrency */
    double db_checkout_timeout;
    double db_connect_timeout;
    int db_statement_timeout;  /* seconds; 0: the server's default */
    char *db_application_name; /* NULL: the process identity */
    /* isolated mode (isolate.c): handlers run in supervised worker processes */
    bool isolated;
    int job_timeout;           /* seconds a job may run; 0: no limit */
    double worker_kill_grace;  /* seconds between TERM and KILL of a timed-out worker */
    int worker_max_jobs;       /* isolated: recycle a worker process after N jobs (0: never) */
    long worker_max_rss_mb;    /* isolated: recycle one above this RSS, between jobs (0: never) */
    long worker_max_memory_mb; /* isolated: address-space limit per worker process (0: none) */
    int job_cpu_limit;         /* isolated: CPU seconds a job may use (0: no limit) */
    bool check;         /* --check: validate config, plugins and Redis, then exit */
    bool allow_root;    /* --allow-root (or $SQUIRE_ALLOW_ROOT=1): never from the file */
    char **warnings;    /* owned messages for the daemon to log ("<file>:<line>: pidfile: ignored ...") */
    size_t nwarnings;
} sq_config;

/* What the command line asked for. */
typedef enum sq_action {
    SQ_ACTION_RUN = 0,
    SQ_ACTION_HELP,     /* -h: print sq_config_usage() to stdout, exit 0 */
    SQ_ACTION_VERSION,  /* -V: print "squire <version>", exit 0 */
} sq_action;

/* The `metrics` value: "8", "7", "both" or "off"/"false" into *layouts
 * (SQ_METRICS_* bits); -1 for anything else. */
int sq_config_metrics_parse(const char *text, unsigned *layouts);
/* "8", "7", "both" or "off". */
const char *sq_config_metrics_name(unsigned layouts);

/* Fill c with the built-in defaults (owned strings allocated). */
void sq_config_init(sq_config *c);
/* Free everything c owns; c may be half-built. */
void sq_config_destroy(sq_config *c);

/*
 * The whole load: parse argv (getopt-style, argv[0] is the program name),
 * pick the environment, read the file (-C PATH; else <first require dir or
 * ".">/config/sidekiq.yml when it exists), merge, validate.
 *
 * Returns 0 and sets *action, or -1 with err->code SQ_EUSAGE (bad flag: the
 * message names the flag and what was expected) or SQ_ECONFIG (the message
 * starts "<file>:<line>: <key>: " and says what was expected and what was found).
 * getenv_fn NULL means getenv.
 */
int sq_config_load(sq_config *c, int argc, char **argv, sq_getenv_fn getenv_fn,
                   sq_action *action, sq_error *err);

/* Apply one YAML document held in memory as if it were the file `name`
 * (used by sq_config_load and by tests). Same error contract. */
int sq_config_apply_yaml(sq_config *c, const char *name, const char *text, size_t len,
                         const char *environment, sq_getenv_fn getenv_fn, sq_error *err);

/* Check cross-field rules (queues non-empty, etc.). Same error contract. */
int sq_config_validate(const sq_config *c, sq_error *err);

/* The --help text, generated from the option table (static storage). */
const char *sq_config_usage(void);

/* The daemon's Redis address with its options: the URL (REDIS_URL, ...,
 * redis.url) parsed, plus the redis: TLS and sentinel options. */
int sq_config_redis_url(const sq_config *c, sq_redis_url *out, sq_error *err);

/* The queue list for a log line: "a b,3 c" (weights when asked), cut to fit
 * size with " ... and N more". Returns buf. */
const char *sq_config_queue_list(const sq_config *c, bool weights, char *buf, size_t size);

/* The configured dead-set limits (dead_max_jobs, dead_timeout_in_seconds),
 * for sq_dead_add (sidekiq.h). */
sq_dead_limits sq_config_dead_limits(const sq_config *cfg);

#endif
