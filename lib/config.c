/*
 * config.c: the option table, defaults and setters (the whole config is
 * checked in config_validate.c; --help is generated from the same table in
 * config_usage.c).
 *
 * Every value, whether from sidekiq.yml, a flag or an environment variable,
 * reaches the config through a row's setter, so parsing is strict in one
 * place: strtoll/strtod with errno and end-pointer checks, explicit bounds.
 */
#include "config_internal.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hostport.h"
#include "pgconninfo.h"
#include "sidekiq.h"

#define FIELD(name) offsetof(sq_config, name)

static int set_number(sq_config *c, const sq__option *o, const char *where, const char *text,
                      sq_error *err);
static int set_concurrency(sq_config *c, const sq__option *o, const char *where, const char *text,
                           sq_error *err);
static int set_double(sq_config *c, const sq__option *o, const char *where, const char *text,
                      sq_error *err);
static int set_bool(sq_config *c, const sq__option *o, const char *where, const char *text,
                    sq_error *err);
static int set_string(sq_config *c, const sq__option *o, const char *where, const char *text,
                      sq_error *err);
static int set_fetch(sq_config *c, const sq__option *o, const char *where, const char *text,
                     sq_error *err);
static int set_level(sq_config *c, const sq__option *o, const char *where, const char *text,
                     sq_error *err);
static int set_queue(sq_config *c, const sq__option *o, const char *where, const char *text,
                     sq_error *err);
static int set_label(sq_config *c, const sq__option *o, const char *where, const char *text,
                     sq_error *err);
static int set_require(sq_config *c, const sq__option *o, const char *where, const char *text,
                       sq_error *err);
static int set_flag_only(sq_config *c, const sq__option *o, const char *where, const char *text,
                         sq_error *err);
static int set_db_url(sq_config *c, const sq__option *o, const char *where, const char *text,
                      sq_error *err);
static int set_secret(sq_config *c, const sq__option *o, const char *where, const char *text,
                      sq_error *err);
static int set_verify_mode(sq_config *c, const sq__option *o, const char *where,
                           const char *text, sq_error *err);
static int set_sentinel(sq_config *c, const sq__option *o, const char *where, const char *text,
                        sq_error *err);
static int set_metrics(sq_config *c, const sq__option *o, const char *where, const char *text,
                       sq_error *err);
static int set_log_format(sq_config *c, const sq__option *o, const char *where,
                          const char *text, sq_error *err);
static int set_listen(sq_config *c, const sq__option *o, const char *where, const char *text,
                      sq_error *err);

/* clang-format off */
static const sq__option options[] = {
    {NULL, 'C', "config", "PATH", SQ__OPT_CONFIG, FIELD(config_path), 0, 0, 0, 0,
     "config/sidekiq.yml", "YAML config file", set_flag_only},
    {"concurrency", 'c', "concurrency", "INT", SQ__OPT_INT, FIELD(concurrency),
     1, SQ_MAX_CONCURRENCY, SQ_DEFAULT_CONCURRENCY, 0, NULL,
     "worker threads (else $RAILS_MAX_THREADS)", set_concurrency},
    {"queues", 'q', "queue", "NAME[,WEIGHT]", SQ__OPT_QUEUES, 0, 0, 0, 0, 0, "default",
     "queue to process, repeatable; replaces the file's list", set_queue},
    {NULL, 'e', "environment", "ENV", SQ__OPT_ENV, FIELD(environment), 0, 0, 0, 0,
     "development", "environment section to use (else $APP_ENV, $RAILS_ENV, $RACK_ENV)",
     set_flag_only},
    {"timeout", 't', "timeout", "INT", SQ__OPT_INT, FIELD(timeout), 1, SQ_MAX_TIMEOUT,
     SQ_DEFAULT_TIMEOUT, 0, NULL, "seconds running jobs get to finish at shutdown",
     set_number},
    {"tag", 'g', "tag", "TAG", SQ__OPT_STRING, FIELD(tag), 0, 0, 0, 0, "",
     "tag shown in the process title and the Web UI", set_string},
    {"require", 'r', "require", "PATH", SQ__OPT_LIST, 0, 0, 0, 0, 0, NULL,
     "shared object with handlers (or app directory), repeatable", set_require},
    {"verbose", 'v', "verbose", NULL, SQ__OPT_BOOL, FIELD(verbose), 0, 1, 0, 0, NULL,
     "log at DEBUG level", set_bool},
    {"log_level", 0, "log-level", "LEVEL", SQ__OPT_LEVEL, FIELD(log_level), 0, 3, 1, 0, NULL,
     "debug, info (a start and a done line per job), warn or error", set_level},
    {"log_format", 0, "log-format", "FORMAT", SQ__OPT_STRING, FIELD(log_format), 0, 0, 0, 0,
     "text", "text, or json: one JSON object per line", set_log_format},
    {"metrics_address", 0, "metrics", "[HOST:]PORT", SQ__OPT_STRING, FIELD(metrics_address),
     0, 0, 0, 0, NULL, "serve /metrics, /healthz, /readyz over HTTP (PORT alone: loopback)",
     set_listen},
    {"fetch", 0, "fetch", "MODE", SQ__OPT_FETCH, FIELD(fetch), 0, 1, SQ_FETCH_RELIABLE, 0, NULL,
     "reliable (no job lost on kill -9) or basic (Sidekiq's BRPOP)", set_fetch},
    {NULL, 0, "check", NULL, SQ__OPT_BOOL, FIELD(check), 0, 1, 0, 0, NULL,
     "check config, handlers and Redis, print a verdict and exit", set_bool},
    {NULL, 0, "allow-root", NULL, SQ__OPT_BOOL, FIELD(allow_root), 0, 1, 0, 0, NULL,
     "run even as root (else refused; also $SQUIRE_ALLOW_ROOT=1)", set_bool},
    {NULL, 'V', "version", NULL, SQ__OPT_VERSION, 0, 0, 0, 0, 0, NULL,
     "print the version and exit", set_flag_only},
    {NULL, 'h', "help", NULL, SQ__OPT_HELP, 0, 0, 0, 0, 0, NULL,
     "print this help and exit", set_flag_only},
    {"labels", 0, NULL, NULL, SQ__OPT_LIST, 0, 0, 0, 0, 0, NULL,
     "labels shown in the Web UI (a list)", set_label},
    {"max_retries", 0, NULL, NULL, SQ__OPT_INT, FIELD(max_retries), 0, INT_MAX,
     SQ_DEFAULT_MAX_RETRIES, 0, NULL, "retries before a job is dead", set_number},
    {"dead_max_jobs", 0, NULL, NULL, SQ__OPT_LONG, FIELD(dead_max_jobs), 1, LONG_MAX,
     SQ_DEFAULT_DEAD_MAX_JOBS, 0, NULL, "dead set size cap", set_number},
    {"dead_timeout_in_seconds", 0, NULL, NULL, SQ__OPT_LONG, FIELD(dead_timeout_in_seconds),
     1, LONG_MAX, SQ_DEFAULT_DEAD_TIMEOUT, 0, NULL, "dead set age cap", set_number},
    {"average_scheduled_poll_interval", 0, NULL, NULL, SQ__OPT_DOUBLE,
     FIELD(average_scheduled_poll_interval), 0, 0, 0, SQ_DEFAULT_POLL_AVERAGE, NULL,
     "seconds between full passes over retry/schedule, across all processes", set_double},
    {"poll_interval_average", 0, NULL, NULL, SQ__OPT_DOUBLE, FIELD(poll_interval_average),
     0, 0, 0, 0, "process count x average",
     "seconds between this process's full passes; no 1 s checks in between", set_double},
    {"max_interruptions", 0, NULL, NULL, SQ__OPT_INT, FIELD(max_interruptions), 0, 1000,
     SQ_DEFAULT_MAX_INTERRUPTIONS, 0, NULL,
     "reliable fetch: deaths of a job's process before the job is dead (0: never)", set_number},
    {"lease_ttl", 0, NULL, NULL, SQ__OPT_DOUBLE, FIELD(lease_ttl), 0, 0, 0, SQ_DEFAULT_LEASE_TTL,
     NULL, "reliable fetch: seconds out of touch before a process's jobs are recovered",
     set_double},
    {"beat_interval", 0, NULL, NULL, SQ__OPT_DOUBLE, FIELD(beat_interval), 0, 0, 0,
     SQ_DEFAULT_BEAT_INTERVAL, NULL,
     "seconds between heartbeats (the Web UI's Busy page; remote Quiet/Stop)", set_double},
    {"database.url", 0, NULL, NULL, SQ__OPT_STRING, FIELD(db_url), 0, 0, 0, 0, NULL,
     "PostgreSQL URL for handlers (else $DATABASE_URL)", set_db_url},
    {"database.pool", 0, NULL, NULL, SQ__OPT_INT, FIELD(db_pool), 0, SQ_MAX_CONCURRENCY, 0, 0,
     "concurrency", "PostgreSQL connections this process may open", set_number},
    {"database.checkout_timeout", 0, NULL, NULL, SQ__OPT_DOUBLE, FIELD(db_checkout_timeout), 0,
     0, 0, 5.0, NULL, "seconds a job waits for a free connection", set_double},
    {"database.connect_timeout", 0, NULL, NULL, SQ__OPT_DOUBLE, FIELD(db_connect_timeout), 0, 0,
     0, 5.0, NULL, "seconds to connect to PostgreSQL", set_double},
    {"database.statement_timeout", 0, NULL, NULL, SQ__OPT_INT, FIELD(db_statement_timeout), 0,
     86400, 0, 0, NULL, "seconds a statement may run (0: the server's setting)", set_number},
    {"database.application_name", 0, NULL, NULL, SQ__OPT_STRING, FIELD(db_application_name), 0,
     0, 0, 0, NULL, "application_name in pg_stat_activity (else the process identity)",
     set_string},
    {"redis.url", 0, NULL, NULL, SQ__OPT_STRING, FIELD(redis_url), 0, 0, 0, 0, NULL,
     "Redis URL, redis:// or rediss:// (REDIS_URL / REDIS_PROVIDER win)", set_string},
    {"redis.ssl_verify_mode", 0, NULL, NULL, SQ__OPT_VERIFY, 0, 0, 0, 0, 0, "peer",
     "rediss://: peer (check the certificate and name) or none", set_verify_mode},
    {"redis.ssl_ca_file", 0, NULL, NULL, SQ__OPT_STRING, FIELD(redis_opts.tls_ca_file), 0, 0, 0,
     0, NULL, "rediss://: PEM file of trusted CAs (else the system store)", set_string},
    {"redis.ssl_ca_path", 0, NULL, NULL, SQ__OPT_STRING, FIELD(redis_opts.tls_ca_path), 0, 0, 0,
     0, NULL, "rediss://: directory of trusted CAs (c_rehash)", set_string},
    {"redis.ssl_cert", 0, NULL, NULL, SQ__OPT_STRING, FIELD(redis_opts.tls_cert), 0, 0, 0, 0,
     NULL, "rediss://: client certificate (PEM)", set_string},
    {"redis.ssl_key", 0, NULL, NULL, SQ__OPT_STRING, FIELD(redis_opts.tls_key), 0, 0, 0, 0, NULL,
     "rediss://: the client certificate's private key (PEM)", set_secret},
    {"redis.ssl_server_name", 0, NULL, NULL, SQ__OPT_STRING, FIELD(redis_opts.tls_server_name),
     0, 0, 0, 0, NULL, "rediss://: SNI and the name to check (else the URL's host)",
     set_string},
    {"redis.sentinels", 0, NULL, NULL, SQ__OPT_LIST, 0, 0, 0, 0, 0, NULL,
     "Sentinel host[:port] list; the URL's host is then the master's name", set_sentinel},
    {"redis.sentinel_username", 0, NULL, NULL, SQ__OPT_STRING,
     FIELD(redis_opts.sentinel_username), 0, 0, 0, 0, NULL, "ACL user for the sentinels",
     set_string},
    {"redis.sentinel_password", 0, NULL, NULL, SQ__OPT_STRING,
     FIELD(redis_opts.sentinel_password), 0, 0, 0, 0, NULL, "password for the sentinels",
     set_secret},
    {"isolated", 0, "isolated", NULL, SQ__OPT_BOOL, FIELD(isolated), 0, 1, 0, 0, NULL,
     "run handlers in supervised worker processes (a crash costs one job)", set_bool},
    {"job_timeout", 0, NULL, NULL, SQ__OPT_INT, FIELD(job_timeout), 0, SQ_MAX_TIMEOUT, 0, 0,
     "none", "seconds a job may run (isolated: killed past it; threads: asked to stop)",
     set_number},
    {"worker_kill_grace", 0, NULL, NULL, SQ__OPT_DOUBLE, FIELD(worker_kill_grace), 0, 0, 0, 5.0,
     NULL, "isolated: seconds between TERM and KILL of a timed-out worker", set_double},
    {"worker_max_jobs", 0, NULL, NULL, SQ__OPT_INT, FIELD(worker_max_jobs), 0, INT_MAX, 0, 0,
     "never", "isolated: replace a worker process after this many jobs", set_number},
    {"worker_max_rss_mb", 0, NULL, NULL, SQ__OPT_LONG, FIELD(worker_max_rss_mb), 0, 1L << 30, 0,
     0, "none", "isolated: replace a worker process above this RSS, between jobs", set_number},
    {"worker_max_memory_mb", 0, NULL, NULL, SQ__OPT_LONG, FIELD(worker_max_memory_mb), 0,
     1L << 30, 0, 0, "none", "isolated: address-space limit of each worker process",
     set_number},
    {"job_cpu_limit", 0, NULL, NULL, SQ__OPT_INT, FIELD(job_cpu_limit), 0, 86400, 0, 0, "none",
     "isolated: CPU seconds a job may use before its worker process is stopped", set_number},
    {"max_payload_bytes", 0, NULL, NULL, SQ__OPT_SIZE, FIELD(max_payload_bytes), 1024,
     SQ__MAX_PAYLOAD_CAP, SQ_DEFAULT_MAX_PAYLOAD, 0, NULL,
     "larger jobs go to the dead set unparsed", set_number},
    /* issue 16: the Web UI's Metrics tab (metrics.h) */
    {"metrics", 0, NULL, NULL, SQ__OPT_METRICS, FIELD(metrics), 0, 0, SQ_METRICS_DEFAULT, 0,
     NULL, "execution metrics for the Web UI's Metrics tab: Sidekiq 8's layout, 7's, both or off",
     set_metrics},
};
/* clang-format on */

const sq__option *sq__options(void)
{
    return options;
}

size_t sq__options_count(void)
{
    return SQ_ARRAY_LEN(options);
}

const sq__option *sq__option_by_key(const char *key)
{
    for (size_t i = 0; i < SQ_ARRAY_LEN(options); i++)
        if (options[i].key != NULL && strcmp(options[i].key, key) == 0)
            return &options[i];
    return NULL;
}

bool sq__option_is_list(const sq__option *o)
{
    return o->type == SQ__OPT_QUEUES || o->type == SQ__OPT_LIST;
}

const char *sq__option_expects(const sq__option *o, char *buf, size_t size)
{
    switch (o->type) {
    case SQ__OPT_INT:
    case SQ__OPT_LONG:
    case SQ__OPT_SIZE:
        if (o->max == LONG_MAX || (o->type == SQ__OPT_INT && o->max == INT_MAX))
            snprintf(buf, size, "an integer of at least %ld", o->min);
        else
            snprintf(buf, size, "an integer from %ld to %ld", o->min, o->max);
        return buf;
    case SQ__OPT_DOUBLE:
        snprintf(buf, size, "a number greater than %ld", o->min);
        return buf;
    case SQ__OPT_BOOL:
        return "true or false";
    case SQ__OPT_FETCH:
        return "basic or reliable";
    case SQ__OPT_LEVEL:
        return "debug, info, warn or error";
    case SQ__OPT_VERIFY:
        return "none or peer";
    case SQ__OPT_METRICS:
        return "8, 7, both or off";
    case SQ__OPT_QUEUES:
        return "a list of queue names";
    case SQ__OPT_LIST:
        return "a list of strings";
    case SQ__OPT_CONFIG:
        return "a file path";
    case SQ__OPT_ENV:
        return "an environment name";
    default:
        return "a string";
    }
}

/* "<where>: expected <what>, got "<text>"" */
static int expected_what(const char *where, const char *what, const char *text, sq_error *err)
{
    char got[128];
    sq__error_set(err, SQ_ECONFIG, "%s: expected %s, got %s", where, what,
                  text == NULL ? "nothing" : sq__quote(text, strlen(text), got, sizeof got));
    return -1;
}

static int expected(const sq__option *o, const char *where, const char *text, sq_error *err)
{
    char what[64];
    return expected_what(where, sq__option_expects(o, what, sizeof what), text, err);
}

/* Strict decimal integer: optional '-', digits, nothing else. */
static int parse_long(const char *text, long long *out)
{
    if (text == NULL || !(text[0] == '-' || (text[0] >= '0' && text[0] <= '9')))
        return -1;
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0')
        return -1;
    *out = v;
    return 0;
}

static int set_number(sq_config *c, const sq__option *o, const char *where, const char *text,
                      sq_error *err)
{
    long long v;
    if (parse_long(text, &v) < 0 || v < o->min || v > o->max)
        return expected(o, where, text, err);
    char *field = (char *)c + o->offset;
    if (o->type == SQ__OPT_INT)
        *(int *)(void *)field = (int)v;
    else if (o->type == SQ__OPT_LONG)
        *(long *)(void *)field = (long)v;
    else
        *(size_t *)(void *)field = (size_t)v;
    return 0;
}

static int set_concurrency(sq_config *c, const sq__option *o, const char *where, const char *text,
                           sq_error *err)
{
    if (set_number(c, o, where, text, err) < 0)
        return -1;
    c->concurrency_set = true;
    free(c->concurrency_null);
    c->concurrency_null = NULL;
    return 0;
}

static int set_double(sq_config *c, const sq__option *o, const char *where, const char *text,
                      sq_error *err)
{
    if (text == NULL || text[0] == '\0' || strspn(text, "0123456789.eE+-") != strlen(text))
        return expected(o, where, text, err);
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (errno != 0 || *end != '\0' || !isfinite(v) || v <= (double)o->min)
        return expected(o, where, text, err);
    *(double *)(void *)((char *)c + o->offset) = v;
    return 0;
}

static int set_bool(sq_config *c, const sq__option *o, const char *where, const char *text,
                    sq_error *err)
{
    static const char *const yes[] = {"true", "yes", "on"};
    static const char *const no[] = {"false", "no", "off"};
    bool *field = (bool *)(void *)((char *)c + o->offset);
    if (text == NULL) { /* a flag without a value */
        *field = true;
        return 0;
    }
    for (size_t i = 0; i < SQ_ARRAY_LEN(yes); i++) {
        if (strcasecmp(text, yes[i]) == 0 || strcasecmp(text, no[i]) == 0) {
            *field = strcasecmp(text, yes[i]) == 0;
            return 0;
        }
    }
    return expected(o, where, text, err);
}

static bool has_control_chars(const char *s)
{
    for (; *s != '\0'; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return true;
    return false;
}

static int replace_string(char **field, const char *text, sq_error *err)
{
    char *copy = sq__strdup(text);
    if (copy == NULL) {
        sq__error_set(err, SQ_ENOMEM, "out of memory");
        return -1;
    }
    free(*field);
    *field = copy;
    return 0;
}

static int set_string(sq_config *c, const sq__option *o, const char *where, const char *text,
                      sq_error *err)
{
    if (text == NULL || has_control_chars(text))
        return expected(o, where, text, err);
    return replace_string((char **)(void *)((char *)c + o->offset), text, err);
}

/* A string that is a secret (a password) or may hold one (a key given as
 * its PEM text): checked like any string, but a refused value is not shown. */
static int set_secret(sq_config *c, const sq__option *o, const char *where, const char *text,
                      sq_error *err)
{
    if (text != NULL && has_control_chars(text)) {
        const char *what = strstr(o->key, "ssl_") != NULL ? "the path of a PEM file" : "a string";
        sq__error_set(err, SQ_ECONFIG,
                      "%s: expected %s, got text with control characters or line breaks (not "
                      "shown)",
                      where, what);
        return -1;
    }
    return set_string(c, o, where, text, err);
}

/* database.url, and where it was set: libpq judges it only at start-up
 * (libsquire loads libpq then), and its verdict names that file and line. */
static int set_db_url(sq_config *c, const sq__option *o, const char *where, const char *text,
                      sq_error *err)
{
    if (set_secret(c, o, where, text, err) < 0)
        return -1;
    return replace_string(&c->db_url_where, where, err);
}

/* -C and -e: a non-empty value; the loader decides what to do with it. */
static int set_flag_only(sq_config *c, const sq__option *o, const char *where, const char *text,
                         sq_error *err)
{
    if (o->type != SQ__OPT_CONFIG && o->type != SQ__OPT_ENV)
        return 0;
    if (text == NULL || text[0] == '\0' || has_control_chars(text))
        return expected(o, where, text, err);
    return replace_string((char **)(void *)((char *)c + o->offset), text, err);
}

static int list_push(char ***v, size_t *n, const char *text, sq_error *err);

static int set_verify_mode(sq_config *c, const sq__option *o, const char *where,
                           const char *text, sq_error *err)
{
    if (sq_redis_verify_mode_parse(text, &c->redis_opts.tls_no_verify) < 0)
        return expected(o, where, text, err);
    return 0;
}

static int set_sentinel(sq_config *c, const sq__option *o, const char *where, const char *text,
                        sq_error *err)
{
    char *host;
    int port;
    if (sq_redis_sentinel_parse(text, &host, &port) < 0)
        return expected_what(where, "a sentinel as host[:port]", text, err);
    free(host);
    return list_push(&c->redis_opts.sentinels, &c->redis_opts.nsentinels, text, err);
}

static int set_metrics(sq_config *c, const sq__option *o, const char *where, const char *text,
                       sq_error *err)
{
    if (sq_config_metrics_parse(text, &c->metrics) != 0)
        return expected(o, where, text, err);
    return 0;
}

static int set_log_format(sq_config *c, const sq__option *o, const char *where,
                          const char *text, sq_error *err)
{
    if (text == NULL || (strcmp(text, "text") != 0 && strcmp(text, "json") != 0))
        return expected_what(where, "text or json", text, err);
    return set_string(c, o, where, text, err);
}

/* metrics_address: checked now (hostport.h), listened on by the daemon. */
static int set_listen(sq_config *c, const sq__option *o, const char *where, const char *text,
                      sq_error *err)
{
    sq_hostport hp;
    if (text == NULL || sq_hostport_parse(text, &hp, NULL) != 0)
        return expected_what(where,
                             "PORT (loopback), HOST:PORT or [IPV6]:PORT, with a numeric address "
                             "or localhost and a port from 1 to 65535",
                             text, err);
    if (set_string(c, o, where, text, err) < 0)
        return -1;
    return replace_string(&c->metrics_where, where, err); /* for "cannot listen" */
}

static int set_fetch(sq_config *c, const sq__option *o, const char *where, const char *text,
                     sq_error *err)
{
    if (text != NULL && strcmp(text, "basic") == 0)
        c->fetch = SQ_FETCH_BASIC;
    else if (text != NULL && strcmp(text, "reliable") == 0)
        c->fetch = SQ_FETCH_RELIABLE;
    else
        return expected(o, where, text, err);
    return 0;
}

static const char *const level_names[] = {"debug", "info", "warn", "error"};

const char *sq__config_level_name(long level)
{
    return level_names[level];
}

static int set_level(sq_config *c, const sq__option *o, const char *where, const char *text,
                     sq_error *err)
{
    for (int i = 0; text != NULL && i < (int)SQ_ARRAY_LEN(level_names); i++) {
        if (strcmp(text, level_names[i]) == 0) {
            c->log_level = i;
            return 0;
        }
    }
    return expected(o, where, text, err);
}

static int list_push(char ***v, size_t *n, const char *text, sq_error *err)
{
    char *copy = sq__strdup(text);
    char **grown = copy == NULL ? NULL : realloc(*v, (*n + 1) * sizeof **v);
    if (grown == NULL) {
        free(copy);
        sq__error_set(err, SQ_ENOMEM, "out of memory");
        return -1;
    }
    grown[(*n)++] = copy;
    *v = grown;
    return 0;
}

static void list_free(char ***v, size_t *n)
{
    for (size_t i = 0; i < *n; i++)
        free((*v)[i]);
    free(*v);
    *v = NULL;
    *n = 0;
}

static int set_label(sq_config *c, const sq__option *o, const char *where, const char *text,
                     sq_error *err)
{
    if (text == NULL || text[0] == '\0' || has_control_chars(text))
        return expected_what(where, "a non-empty string", text, err);
    return list_push(&c->labels, &c->nlabels, text, err);
}

static int set_require(sq_config *c, const sq__option *o, const char *where, const char *text,
                       sq_error *err)
{
    if (text == NULL || text[0] == '\0' || has_control_chars(text))
        return expected_what(where, "a non-empty path", text, err);
    return list_push(&c->requires, &c->nrequires, text, err);
}

static void queues_free(sq_config *c)
{
    for (size_t i = 0; i < c->nqueues; i++)
        free(c->queues[i].name);
    free(c->queues);
    c->queues = NULL;
    c->nqueues = 0;
}

void sq__config_queues_free(sq_config *c)
{
    queues_free(c);
}

int sq__config_set_number(sq_config *c, const sq__option *o, const char *where, const char *text,
                          sq_error *err)
{
    return set_number(c, o, where, text, err);
}

void sq__option_clear(sq_config *c, const sq__option *o)
{
    if (o->type == SQ__OPT_QUEUES)
        queues_free(c);
    else if (o->set == set_label)
        list_free(&c->labels, &c->nlabels);
    else if (o->set == set_require)
        list_free(&c->requires, &c->nrequires);
    else if (o->set == set_sentinel)
        list_free(&c->redis_opts.sentinels, &c->redis_opts.nsentinels);
}

int sq__config_add_queue(sq_config *c, const char *where, const char *name, const char *weight,
                         sq_error *err)
{
    long long w = 0;
    if (!sq_queue_name_usable(name, strlen(name)))
        return expected_what(where, "a queue name of " SQ_QUEUE_NAME_RULE, name, err);
    if (weight != NULL && weight[0] != '\0' &&
        (parse_long(weight, &w) < 0 || w < 0 || w > SQ__MAX_QUEUE_WEIGHT))
        return expected_what(where, "a queue weight from 0 to 1000", weight, err);
    for (size_t i = 0; i < c->nqueues; i++) {
        if (strcmp(c->queues[i].name, name) == 0) {
            sq__error_set(err, SQ_ECONFIG, "%s: queue \"%s\" is listed twice", where, name);
            return -1;
        }
    }
    char *copy = sq__strdup(name);
    sq_queue_conf *grown =
        copy == NULL ? NULL : realloc(c->queues, (c->nqueues + 1) * sizeof *grown);
    if (grown == NULL) {
        free(copy);
        sq__error_set(err, SQ_ENOMEM, "out of memory");
        return -1;
    }
    grown[c->nqueues].name = copy;
    grown[c->nqueues].weight = (int)w;
    c->queues = grown;
    c->nqueues++;
    return 0;
}

static const char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        s[--n] = '\0';
    return s;
}

/* "name" or "name,weight" (Sidekiq 7 and -q). As in Sidekiq's split(",")
 * and to_i, spaces around the weight do not count, but the name is kept as
 * written: "q ,2" is the queue "q " there, which squire refuses. */
static int set_queue(sq_config *c, const sq__option *o, const char *where, const char *text,
                     sq_error *err)
{
    if (text == NULL)
        return expected(o, where, text, err);
    char buf[SQ_MAX_QUEUE_NAME + 64];
    if (strlen(text) >= sizeof buf)
        return expected_what(where, "a queue name of " SQ_QUEUE_NAME_RULE, text, err);
    memcpy(buf, text, strlen(text) + 1);
    char *comma = strchr(buf, ',');
    if (comma != NULL)
        *comma = '\0';
    return sq__config_add_queue(c, where, buf, comma == NULL ? NULL : trim(comma + 1), err);
}

int sq__config_warn(sq_config *c, sq_error *err, const char *fmt, ...)
{
    va_list ap;
    char *msg = NULL;
    va_start(ap, fmt);
    int n = vasprintf(&msg, fmt, ap);
    va_end(ap);
    char **grown = n < 0 ? NULL : realloc(c->warnings, (c->nwarnings + 1) * sizeof *grown);
    if (grown == NULL) {
        if (n >= 0)
            free(msg);
        sq__error_set(err, SQ_ENOMEM, "out of memory");
        return -1;
    }
    grown[c->nwarnings++] = msg;
    c->warnings = grown;
    return 0;
}

/* issue 16: the `metrics` value (execution-metrics layouts). */
int sq_config_metrics_parse(const char *text, unsigned *layouts)
{
    static const struct {
        const char *name;
        unsigned bits;
    } names[] = {{"8", SQ_METRICS_V8},
                 {"7", SQ_METRICS_V7},
                 {"both", SQ_METRICS_V7 | SQ_METRICS_V8},
                 {"off", 0},
                 {"false", 0}};
    for (size_t i = 0; text != NULL && i < SQ_ARRAY_LEN(names); i++)
        if (strcmp(text, names[i].name) == 0) {
            *layouts = names[i].bits;
            return 0;
        }
    return -1;
}

const char *sq_config_metrics_name(unsigned layouts)
{
    switch (layouts & (SQ_METRICS_V7 | SQ_METRICS_V8)) {
    case SQ_METRICS_V7:
        return "7";
    case SQ_METRICS_V8:
        return "8";
    case SQ_METRICS_V7 | SQ_METRICS_V8:
        return "both";
    default:
        return "off";
    }
}

/* ---- init / destroy ------------------------------------------------------ */

void sq__option_default(sq_config *c, const sq__option *o)
{
    char *field = (char *)c + o->offset;
    switch (o->type) {
    case SQ__OPT_INT:
        *(int *)(void *)field = (int)o->def_long;
        break;
    case SQ__OPT_LONG:
        *(long *)(void *)field = o->def_long;
        break;
    case SQ__OPT_SIZE:
        *(size_t *)(void *)field = (size_t)o->def_long;
        break;
    case SQ__OPT_DOUBLE:
        *(double *)(void *)field = o->def_double;
        break;
    case SQ__OPT_BOOL:
        *(bool *)(void *)field = o->def_long != 0;
        break;
    case SQ__OPT_FETCH:
        c->fetch = (sq_fetch_mode)o->def_long;
        break;
    case SQ__OPT_METRICS:
        *(unsigned *)(void *)field = (unsigned)o->def_long;
        break;
    case SQ__OPT_LEVEL:
        *(int *)(void *)field = (int)o->def_long;
        break;
    case SQ__OPT_STRING:
    case SQ__OPT_ENV:
        free(*(char **)(void *)field);
        *(char **)(void *)field = sq__strdup(o->def_str);
        break;
    case SQ__OPT_QUEUES:
        queues_free(c);
        sq__config_add_queue(c, "default", o->def_str, NULL, NULL);
        break;
    default:
        break;
    }
}

void sq_config_init(sq_config *c)
{
    memset(c, 0, sizeof *c);
    for (size_t i = 0; i < SQ_ARRAY_LEN(options); i++)
        sq__option_default(c, &options[i]);
}

void sq_config_destroy(sq_config *c)
{
    if (c == NULL)
        return;
    free(c->config_path);
    free(c->concurrency_null);
    free(c->environment);
    free(c->tag);
    free(c->log_format);
    free(c->metrics_address);
    free(c->redis_url);
    sq_redis_url_destroy(&c->redis_opts);
    free(c->db_url);
    free(c->db_url_where);
    free(c->metrics_where);
    free(c->db_application_name);
    queues_free(c);
    list_free(&c->labels, &c->nlabels);
    list_free(&c->requires, &c->nrequires);
    list_free(&c->warnings, &c->nwarnings);
    memset(c, 0, sizeof *c);
}

const char *sq_config_queue_list(const sq_config *c, bool weights, char *buf, size_t size)
{
    size_t pos = 0;
    if (size > 0)
        buf[0] = '\0';
    for (size_t i = 0; i < c->nqueues; i++) {
        char one[SQ_MAX_QUEUE_NAME + 32];
        int n = weights && c->queues[i].weight > 0
                    ? snprintf(one, sizeof one, "%s%s,%d", i ? " " : "", c->queues[i].name,
                               c->queues[i].weight)
                    : snprintf(one, sizeof one, "%s%s", i ? " " : "", c->queues[i].name);
        if (n < 0)
            break;
        /* room for this one and for " ... and 99999 more" */
        if (pos + (size_t)n + 24 > size) {
            snprintf(buf + pos, size - pos, " ... and %zu more", c->nqueues - i);
            break;
        }
        memcpy(buf + pos, one, (size_t)n + 1);
        pos += (size_t)n;
    }
    return buf;
}

sq_dead_limits sq_config_dead_limits(const sq_config *cfg)
{
    return (sq_dead_limits){cfg->dead_max_jobs, cfg->dead_timeout_in_seconds};
}
