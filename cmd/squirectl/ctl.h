#ifndef SQUIRECTL_H
#define SQUIRECTL_H

#include <stdio.h>

#include <squire.h>

#include "config.h"
#include "job.h"
#include "redis.h"
#include "sidekiq.h"

#define CTL_OK 0
#define CTL_ERROR 1
#define CTL_USAGE 64
#define CTL_CONFIG 78
#define CTL_HELP (-1) /* ctl_opts_parse printed the help: exit 0 */

/* A subcommand: argv[0] is its own name; url may be NULL (environment). */
struct ctl_command {
    const char *name;
    const char *help;
    int (*run)(const char *url, int argc, char **argv);
};

int ctl_push(const char *url, int argc, char **argv);
int ctl_stats(const char *url, int argc, char **argv);
int ctl_queues(const char *url, int argc, char **argv);
int ctl_processes(const char *url, int argc, char **argv);
int ctl_jobs(const char *url, int argc, char **argv);
int ctl_retry(const char *url, int argc, char **argv);
int ctl_delete(const char *url, int argc, char **argv);
int ctl_clear(const char *url, int argc, char **argv);
int ctl_kill(const char *url, int argc, char **argv);
int ctl_quiet(const char *url, int argc, char **argv);
int ctl_stop(const char *url, int argc, char **argv);
int ctl_dashboard(const char *url, int argc, char **argv);

/* Parse a time: epoch seconds ("1700000000.5") or ISO 8601 UTC
 * ("2026-11-22T12:00:00Z"). Returns 0 or -1. */
int ctl_parse_time(const char *s, double *out);

/* ---- opts.c: options shared by the admin commands ---------------------- */

typedef struct ctl_opts {
    bool json, all, yes, once;
    const char *klass, *jid, *from; /* borrowed from argv */
    long limit;                     /* default 100; 0 = no limit */
    double interval;                /* default 2 s */
    char **rest;                    /* the operands */
    int nrest;
} ctl_opts;

/* Parse argv (argv[0] is the command) accepting only the options whose
 * letters are in allowed: a --all, c --class, f --from, i --interval,
 * J --jid, j --json, n --limit, o --once, y --yes (-h always). Returns
 * CTL_OK, CTL_HELP (usage printed to stdout) or CTL_USAGE (error printed). */
int ctl_opts_parse(int argc, char **argv, const char *allowed, const char *usage, ctl_opts *o);
/* arg for an error message: a URL in it (given where it does not belong)
 * with its password REDACTED. Returns arg or buf. */
const char *ctl_safe_arg(const char *arg, char *buf, size_t size);
/* Print "squirectl CMD: msg" and usage to stderr; returns CTL_USAGE. */
int ctl_usage_error(const char *cmd, const char *usage, const char *msg);

/* ---- conn.c: connecting and small Redis helpers ------------------------- */

/* Connect to url (NULL: $REDIS_PROVIDER / $REDIS_URL / localhost). On failure
 * prints "squirectl CMD: <reason>" (the URL redacted) to stderr, sets *rc
 * (CTL_CONFIG for a bad URL, CTL_ERROR otherwise) and returns NULL. */
sq_redis *ctl_connect(const char *url, const char *cmd, int *rc);
/* For a command that takes options but no operands: parse them into o, refuse
 * operands, connect. NULL with *rc set when the command is done: CTL_OK after
 * -h, else the usage or connection error's exit code. */
sq_redis *ctl_open_no_operands(const char *url, int argc, char **argv, const char *allowed,
                               const char *usage, ctl_opts *o, int *rc);
/* Report err for cmd on stderr; returns CTL_ERROR. */
int ctl_fail(const char *cmd, const sq_error *err);
/* Wall-clock epoch seconds. */
double ctl_now(void);
/* Every member of a set (SSCAN), sorted; a new array of new strings, or NULL
 * with err set. *n receives the count. Free with ctl_strv_free. */
char **ctl_smembers(sq_redis *r, const char *key, size_t *n, sq_error *err);
void ctl_strv_free(char **v, size_t n);
/* The key a target names: "retry", "dead", "schedule" (for "scheduled" or
 * "schedule"), or "queue:<name>" for anything else ("queue:x" forces a queue).
 * Writes the key into buf; *is_set tells a sorted set from a list; *qname
 * points into name at the queue's name (NULL for sets). Returns -1 for an
 * empty or invalid queue name. */
int ctl_target(const char *name, char *buf, size_t size, bool *is_set, const char **qname);

/* The configuration squire would read here: the file of the global -C
 * option, else ./config/sidekiq.yml when it exists, else the defaults;
 * loaded once. NULL with err set when it does not load. */
void ctl_set_config_path(const char *path);
const sq_config *ctl_config(sq_error *err);
/* The payload limits of that configuration (max_payload_bytes), or the
 * defaults when it does not load: every payload squirectl reads goes
 * through the bounded reader with them. */
const sq_job_limits *ctl_job_limits(void);
/* A member read through the bounded reader: a new JSON object, or NULL
 * (not JSON, not an object, over the limits). */
json_t *ctl_read_job(const char *raw, size_t len);

/* ---- format.c: output --------------------------------------------------- */

/* A table printed with aligned columns; cells are escaped copies. */
typedef struct ctl_table ctl_table;
ctl_table *ctl_table_new(size_t ncols, const char *const *heads);
/* Add a row of ncols cells (borrowed; NULL prints "-"); each is escaped and
 * cut to max_width characters (0: no limit). */
void ctl_table_add(ctl_table *t, const char *const *cells, size_t max_width);
void ctl_table_print(const ctl_table *t, FILE *out);
void ctl_table_free(ctl_table *t);

/* A printable copy of len bytes: invalid UTF-8 replaced, control characters
 * (C0, DEL, C1) written as \n, \t, \xNN or \u{NN}, at most max_chars
 * characters ("..." appended when cut; 0: no limit). malloc'd; never NULL. */
char *ctl_escape(const char *s, size_t len, size_t max_chars);
/* A JSON string value from arbitrary bytes (invalid UTF-8 replaced). */
json_t *ctl_json_bytes(const char *s, size_t len);
/* Print j as one line of ASCII-only JSON and release it (steals j). */
void ctl_json_print(json_t *j, FILE *out);
/* "2026-11-22 12:00:00 UTC" (or "-" for t <= 0) into buf[32]. */
const char *ctl_fmt_time(double t, char buf[32]);
/* A duration for people: "0.52s", "3m 20s", "2h 5m", "3d 4h" into buf[32]. */
const char *ctl_fmt_age(double seconds, char buf[32]);

/* ---- stats.c: the numbers behind stats, queues and dashboard ------------ */

typedef struct ctl_queue {
    char *name;
    long long size;
    double latency; /* seconds; now - enqueued_at of the oldest (rightmost) job */
} ctl_queue;

typedef struct ctl_summary {
    long long processed, failed, busy, enqueued, retries, scheduled, dead, processes;
    ctl_queue *queues; /* sorted by name */
    size_t nqueues;
} ctl_summary;

int ctl_stats_fetch(sq_redis *r, ctl_summary *s, sq_error *err);
void ctl_stats_destroy(ctl_summary *s);
void ctl_stats_print(const ctl_summary *s, FILE *out);
void ctl_queues_print(const ctl_summary *s, FILE *out);
json_t *ctl_stats_json(const ctl_summary *s);
json_t *ctl_queues_json(const ctl_summary *s);

/* ---- jobs.c: walking a queue or sorted set ------------------------------- */

/* Called for each member: raw bytes (borrowed), score (0 for a list).
 * Return 0 to go on, 1 to stop. */
typedef int (*ctl_visit_fn)(const char *raw, size_t len, double score, void *ctx);
/* Visit the members of key in pages: a list from the left (newest first,
 * as the Web UI), a sorted set by ascending score. Returns 0, or -1 with err
 * (a key of another type is an error). */
int ctl_each_member(sq_redis *r, const char *key, bool is_set, ctl_visit_fn fn, void *ctx,
                    sq_error *err);
/* The jid of a payload (borrowed from job), "" when missing. */
const char *ctl_job_jid(const json_t *job);
/* Whether raw is a job with exactly this jid (cheap text test first). */
bool ctl_raw_has_jid(const char *raw, size_t len, const char *jid);

/* ---- procs.c ------------------------------------------------------------ */

typedef struct ctl_process {
    char *identity;
    json_t *info; /* the parsed info object (owned) */
    long long busy, rss, rtt_us;
    double beat;
    bool quiet;
} ctl_process;

/* Live processes (members of `processes` whose hash still has `info`),
 * sorted by identity, as Sidekiq's ProcessSet#each. */
int ctl_procs_fetch(sq_redis *r, ctl_process **out, size_t *n, sq_error *err);
void ctl_procs_free(ctl_process *p, size_t n);
void ctl_procs_print(const ctl_process *p, size_t n, FILE *out);
json_t *ctl_procs_json(const ctl_process *p, size_t n);

#endif
