/*
 * common.h: small helpers shared by every libsquire file (internal).
 */
#ifndef SQ_COMMON_H
#define SQ_COMMON_H

#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <time.h>

#include "squire.h"

#define SQ_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Set err (when non-NULL and not already set: the first error wins). */
void sq__error_set(sq_error *err, int code, const char *fmt, ...) SQ_PRINTF(3, 4);
void sq__error_vset(sq_error *err, int code, const char *fmt, va_list ap) SQ_PRINTF(3, 0);
void sq__error_clear(sq_error *err);

/* strdup / strndup that abort on out-of-memory are NOT used: lib/ returns errors.
 * These return NULL on failure like their libc twins, but accept NULL input. */
char *sq__strdup(const char *s);

/* Wall-clock epoch seconds with sub-second precision. */
double sq__now(void);
/* Monotonic seconds, for deadlines and durations. */
double sq__monotonic(void);
/* Sleep for seconds (restarting on EINTR). */
void sq__sleep(double seconds);
/* A condition variable whose timed waits count on the monotonic clock, and
 * the time seconds from now on that clock, for pthread_cond_timedwait. */
void sq__cond_init_monotonic(pthread_cond_t *cond);
struct timespec sq__deadline_in(double seconds);

/* The core never logs, prints or exits: it returns errors, and what it must
 * tell that is no error of the call at hand (a server notice, where the
 * sentinels say the master is) goes to a reporter its caller gives it. The
 * daemon's reporter is its log (log.c, sq_log_report); with none, such news
 * is dropped. level: SQ_REPORT_* (the same numbers as the log's levels). */
enum { SQ_REPORT_DEBUG = 0, SQ_REPORT_INFO, SQ_REPORT_WARN, SQ_REPORT_ERROR };
typedef void (*sq_report_fn)(void *ud, int level, const char *message);

/* How the pure modules read the environment, so that tests control it;
 * sq__getenv is getenv (the default for a NULL sq_getenv_fn). */
typedef const char *(*sq_getenv_fn)(const char *name);
const char *sq__getenv(const char *name);

/* A 24-hex-char Sidekiq jid (12 random bytes) into out[25]. */
void sq__jid(char out[25]);
/* n random bytes from the kernel (getrandom), falling back to a clock mix. */
void sq__random_bytes(void *buf, size_t n);
/* Thread-safe uniform random integer in [0, n); matches sq_rand_fn. */
unsigned sq__rand(unsigned n, void *unused);

#endif
