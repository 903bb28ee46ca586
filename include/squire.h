/*
 * squire.h: the public API of libsquire, a Sidekiq-compatible job processor.
 *
 * A handler is a C function registered under a Sidekiq job class name. The
 * daemon fetches Sidekiq-format JSON jobs from Redis, finds the handler by
 * exact class name and calls it on one of its worker threads.
 *
 *     static sq_result hard_job(sq_job *job, void *ud) {
 *         const char *name = json_string_value(sq_job_arg(job, 0));
 *         if (name == NULL)
 *             return sq_job_fail(job, "ArgumentError", "args[0] must be a string");
 *         ...
 *         return SQ_OK;
 *     }
 *
 *     int squire_plugin_init(sq_registry *reg) {      // in a -r shared object
 *         return sq_register(reg, "HardJob", hard_job, NULL);
 *     }
 *
 * Ownership: every pointer returned by an sq_job accessor is borrowed from the
 * job and valid until the handler returns. Strings passed in are copied.
 * Functions that can fail return 0 / a pointer on success and a negative value
 * / NULL on failure, filling the optional caller-owned sq_error (first error wins).
 */
#ifndef SQUIRE_H
#define SQUIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SQ_VERSION "0.1.0"

#if defined(__GNUC__)
#define SQ_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define SQ_PRINTF(fmt, args)
#endif

/* What libsquire.so exports: the functions declared here and nothing else
 * (the library is built with -fvisibility=hidden). */
#if defined(__GNUC__)
#define SQ_API __attribute__((visibility("default")))
#else
#define SQ_API
#endif

/* ---- errors -------------------------------------------------------------- */

enum sq_error_code {
    SQ_EOK = 0,
    SQ_ENOMEM = -1,   /* out of memory */
    SQ_EINVAL = -2,   /* bad argument or bad input */
    SQ_EREDIS = -3,   /* Redis unreachable or answered with an error */
    SQ_ECONFIG = -4,  /* bad configuration (the daemon exits 78) */
    SQ_EUSAGE = -5,   /* bad command line (the daemon exits 64) */
    SQ_EIO = -6,      /* file or system call failed */
    SQ_EAUTH = -7,    /* Redis refused our credentials (exits 78 at startup) */
};

typedef struct sq_error {
    int code;           /* SQ_EOK while unset */
    char message[512];  /* never contains a password */
} sq_error;

/* ---- jobs and handlers -------------------------------------------------- */

typedef struct sq_job sq_job;
typedef struct sq_registry sq_registry;

typedef enum sq_result {
    SQ_OK = 0,       /* the job succeeded */
    SQ_FAILED = -1,  /* the job failed; see sq_job_fail */
} sq_result;

typedef sq_result (*sq_handler_fn)(sq_job *job, void *userdata);

/* The job id: 24 lowercase hex characters for jobs pushed by Sidekiq. */
SQ_API const char *sq_job_jid(const sq_job *job);

/* The class the handler was registered under. For an ActiveJob-wrapped job
 * this is the ActiveJob class (`wrapped`), not the wrapper. */
SQ_API const char *sq_job_class(const sq_job *job);

/* The queue the job was fetched from (no "queue:" prefix). */
SQ_API const char *sq_job_queue(const sq_job *job);

/* The job's arguments as a JSON array (borrowed). For ActiveJob jobs these
 * are the ActiveJob `arguments`, not the wrapper's single hash. */
SQ_API json_t *sq_job_args(const sq_job *job);
SQ_API size_t sq_job_argc(const sq_job *job);
/* args[i], or NULL when i is out of range (borrowed). */
SQ_API json_t *sq_job_arg(const sq_job *job, size_t i);

/* -1 on the first run; 0 on the first retry, 1 on the second, ... (Sidekiq's
 * `retry_count`, which a manual retry from the Web UI can make negative). */
SQ_API int sq_job_retry_count(const sq_job *job);

/* W3C trace context (https://www.w3.org/TR/trace-context/) the job carries
 * as the top-level keys `traceparent` and `tracestate`, as OpenTelemetry's
 * Sidekiq instrumentation writes them; they are kept through retries. Each
 * is NULL when absent or malformed (checked strictly; a malformed one is
 * ignored, never an error). The trace id is the traceparent's 32 lowercase
 * hex characters; squire logs it on the job's lines. tracestate is only
 * given with a valid traceparent. Borrowed, valid while the handler runs. */
SQ_API const char *sq_job_trace_id(const sq_job *job);
SQ_API const char *sq_job_traceparent(const sq_job *job);
SQ_API const char *sq_job_tracestate(const sq_job *job);

/* The whole parsed payload (borrowed): every key Sidekiq or the app wrote. */
SQ_API json_t *sq_job_payload(const sq_job *job);

/* The exact bytes fetched from Redis (borrowed; may contain NUL). */
SQ_API const char *sq_job_raw(const sq_job *job, size_t *len);

/* True once the daemon is shutting down: a long handler should stop at a
 * safe point and return SQ_FAILED; the job is pushed back to its queue.
 * In thread mode it also turns true once the job is past its timeout
 * (sq_handler_opts): a failure returned then is a Squire::JobTimeout. */
SQ_API bool sq_job_stopping(const sq_job *job);

/* Log one line at INFO through the daemon's log, tagged with the job's class
 * and jid (control characters escaped). Never log secrets or whole args. */
SQ_API void sq_job_log(const sq_job *job, const char *fmt, ...) SQ_PRINTF(2, 3);

/* Record a failure. error_class is a Ruby-style class name shown in the Web UI
 * (NULL means "Squire::Error"); the message is formatted, capped at 10,000
 * characters and made valid UTF-8. Returns SQ_FAILED so that a handler can
 * `return sq_job_fail(job, ...)`. The first call wins. */
SQ_API sq_result sq_job_fail(sq_job *job, const char *error_class, const char *fmt, ...)
    SQ_PRINTF(3, 4);

/* After sq_job_fail: retry after this many seconds instead of Sidekiq's
 * count^4 + 15 backoff (Sidekiq's sidekiq_retry_in). Jitter is still added. */
SQ_API void sq_job_retry_in(sq_job *job, double seconds);

/* After sq_job_fail: no more retries, send the job to the dead set now
 * (Sidekiq's sidekiq_retry_in returning :kill). */
SQ_API void sq_job_kill(sq_job *job);

/* After sq_job_fail: drop the job, no retry and no dead entry (:discard). */
SQ_API void sq_job_discard(sq_job *job);

/* ---- PostgreSQL ------------------------------------------------------------ */

struct pg_conn; /* libpq's PGconn: #include <libpq-fe.h> to use it */

/*
 * Borrow a PostgreSQL connection from squire's pool (configured under
 * `database:` in sidekiq.yml; $DATABASE_URL by default). The first call in
 * a job checks one out, waiting up to checkout_timeout; later calls in the
 * same job return the same connection; it goes back to the pool when the
 * handler returns, rolled back first if a transaction was left open. A
 * connection that broke (server restart, pg_terminate_backend) is replaced,
 * never handed out.
 *
 * Returns NULL when no connection could be had (pool exhausted for
 * checkout_timeout, server down, no database configured): the job has then
 * already been failed with a retryable error, so the handler just returns
 * SQ_FAILED. Borrowed: do not PQfinish it.
 */
SQ_API struct pg_conn *sq_job_db(sq_job *job);

/* ---- registry ------------------------------------------------------------ */

/* Register fn for jobs whose class is exactly class_name. Registering a name
 * twice replaces the earlier handler. Returns 0, or -1 on a bad argument. */
SQ_API int sq_register(sq_registry *reg, const char *class_name, sq_handler_fn fn, void *userdata);

/* Per-handler options (zero-initialised: the defaults). */
typedef struct sq_handler_opts {
    double timeout; /* seconds a job of this class may run; 0: the config's job_timeout.
                     * A job's own "squire_timeout" payload key wins over both. Isolated
                     * mode kills the worker process past it (Squire::JobTimeout); thread
                     * mode makes sq_job_stopping() return true and logs a warning. */
} sq_handler_opts;

/* sq_register with options (opts may be NULL). -1 on a bad argument (a
 * negative or NaN timeout among them). */
SQ_API int sq_register_opts(sq_registry *reg, const char *class_name, sq_handler_fn fn,
                            void *userdata, const sq_handler_opts *opts);

/* Isolated mode (`isolated: true`, --isolated): fn runs once in each worker
 * process when it starts, before its first job: open the connections a
 * process keeps between jobs here. A non-zero return ends that process (its
 * job is pushed back unrun; the worker shows as failing in the heartbeat
 * until a process starts). Unused in thread mode.
 * Registering again replaces the hook. */
typedef int (*sq_child_init_fn)(void *userdata);
SQ_API int sq_register_child_init(sq_registry *reg, sq_child_init_fn fn, void *userdata);

SQ_API sq_registry *sq_registry_new(void);
SQ_API void sq_registry_free(sq_registry *reg);

/* A shared object named by `-r` or `:require:` exports this; it returns 0 on
 * success. It runs once, on the main thread, before any job is fetched. */
#define SQ_PLUGIN_INIT_SYMBOL "squire_plugin_init"
typedef int (*sq_plugin_init_fn)(sq_registry *reg);

/* Run the daemon with Sidekiq's command line (-C -c -q -e -t -g -r -v -V -h)
 * and the handlers already in reg (plus any loaded by -r). Returns the process
 * exit status: 0 after a clean shutdown, 64 for usage errors, 78 for config
 * errors. A program that links libsquire can call this from its own main. */
SQ_API int sq_main(int argc, char **argv, sq_registry *reg);

/* ---- client: pushing jobs ----------------------------------------------- */

typedef struct sq_client sq_client;

/* Connect to the Redis named by url (redis://[user:pass@]host:port/db,
 * rediss://... for TLS, or unix:///path?db=N); NULL url means
 * $REDIS_PROVIDER / $REDIS_URL / localhost. TLS and Sentinel options come
 * from the SQUIRE_REDIS_* variables (docs/configuration.md).
 * A client is not thread-safe: use one per thread. The program need not
 * ignore SIGPIPE: a closed connection fails the call, it never raises one. */
SQ_API sq_client *sq_client_new(const char *url, sq_error *err);
SQ_API void sq_client_free(sq_client *c);

#define SQ_RETRY_DEFAULT 0  /* Sidekiq's default: "retry": true (25 retries) */
#define SQ_RETRY_NEVER (-1) /* "retry": false: no retry and no dead-set entry */

/* Zero-initialised options mean Sidekiq's defaults. */
typedef struct sq_push_opts {
    const char *queue;  /* NULL means "default" */
    int retry;          /* SQ_RETRY_DEFAULT, SQ_RETRY_NEVER, or N > 0 retries. For
                         * "retry": 0 (dead on the first failure) put it in extra. */
    double at;          /* 0: now; otherwise epoch seconds to run at */
    json_t *extra;      /* optional object merged over the payload (borrowed), e.g.
                         * {"retry": 0, "backtrace": true, "tags": ["x"]} */
    const char *traceparent; /* optional W3C trace context for the job, e.g. from
                              * sq_job_traceparent(job) in a handler that pushes */
    const char *tracestate;  /* (a push with a malformed one fails, SQ_EINVAL) */
} sq_push_opts;

/* Push one job of class with args (a JSON array, borrowed). opts may be NULL.
 * Writes the new jid (25 bytes with NUL) into jid_out when it is not NULL. */
SQ_API int sq_push(sq_client *c, const char *class_name, json_t *args, const sq_push_opts *opts,
                   char jid_out[25], sq_error *err);

/* Push n jobs of one class in one round trip, one args array per job
 * (args_list is an array of arrays, borrowed). */
SQ_API int sq_push_bulk(sq_client *c, const char *class_name, json_t *args_list,
                        const sq_push_opts *opts, sq_error *err);

/* From inside a handler: a client that shares the worker thread's Redis
 * connection (borrowed; valid until the handler returns). */
SQ_API sq_client *sq_job_client(sq_job *job);

#ifdef __cplusplus
}
#endif
#endif /* SQUIRE_H */
