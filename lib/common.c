#include "common.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

void sq__error_vset(sq_error *err, int code, const char *fmt, va_list ap)
{
    if (err == NULL || err->code != SQ_EOK)
        return;
    err->code = code;
    vsnprintf(err->message, sizeof err->message, fmt, ap);
}

void sq__error_set(sq_error *err, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sq__error_vset(err, code, fmt, ap);
    va_end(ap);
}

void sq__error_clear(sq_error *err)
{
    if (err != NULL) {
        err->code = SQ_EOK;
        err->message[0] = '\0';
    }
}

char *sq__strdup(const char *s)
{
    return s == NULL ? NULL : strdup(s);
}

double sq__now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double sq__monotonic(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void sq__sleep(double seconds)
{
    if (seconds <= 0)
        return;
    struct timespec ts;
    ts.tv_sec = (time_t)seconds;
    ts.tv_nsec = (long)((seconds - (double)ts.tv_sec) * 1e9);
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

void sq__cond_init_monotonic(pthread_cond_t *cond)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(cond, &ca);
    pthread_condattr_destroy(&ca);
}

struct timespec sq__deadline_in(double seconds)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    double end = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9 + seconds;
    ts.tv_sec = (time_t)end;
    ts.tv_nsec = (long)((end - (double)ts.tv_sec) * 1e9);
    return ts;
}

void sq__random_bytes(void *buf, size_t n)
{
    unsigned char *p = buf;
    size_t got = 0;
    while (got < n) {
        ssize_t r = getrandom(p + got, n - got, 0);
        if (r > 0) {
            got += (size_t)r;
        } else if (r < 0 && errno != EINTR) {
            /* No entropy source: mix the clock; uniqueness, not secrecy, is needed. */
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            unsigned long long x = (unsigned long long)ts.tv_nsec * 6364136223846793005ULL +
                                   (unsigned long long)ts.tv_sec + got;
            p[got++] = (unsigned char)(x >> 33);
        }
    }
}

void sq__jid(char out[25])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char b[12];
    sq__random_bytes(b, sizeof b);
    for (size_t i = 0; i < sizeof b; i++) {
        out[2 * i] = hex[b[i] >> 4];
        out[2 * i + 1] = hex[b[i] & 15];
    }
    out[24] = '\0';
}

unsigned sq__rand(unsigned n, void *unused)
{
    (void)unused;
    if (n <= 1)
        return 0;
    /* Rejection sampling keeps the distribution uniform. */
    unsigned limit = (unsigned)(-n % n);
    unsigned r;
    do {
        sq__random_bytes(&r, sizeof r);
    } while (r < limit);
    return r % n;
}

const char *sq__getenv(const char *name)
{
    return getenv(name);
}
