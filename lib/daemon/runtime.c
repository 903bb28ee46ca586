/*
 * runtime.c: the primitives every daemon thread shares: sleeps that wake on
 * quiet or hard stop, raising those flags, the monotonic clock in ms.
 */
#include <errno.h>

#include "common.h"
#include "runtime.h"

/* Sleep on rt->cond until flag is set or seconds pass. */
static bool sleep_unless(sq_runtime *rt, atomic_bool *flag, double seconds)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    double end = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9 + seconds;
    ts.tv_sec = (time_t)end;
    ts.tv_nsec = (long)((end - (double)ts.tv_sec) * 1e9);
    pthread_mutex_lock(&rt->lock);
    while (!atomic_load(flag)) {
        if (pthread_cond_timedwait(&rt->cond, &rt->lock, &ts) == ETIMEDOUT)
            break;
    }
    pthread_mutex_unlock(&rt->lock);
    return atomic_load(flag);
}

bool sq_runtime_nap(sq_runtime *rt, double seconds)
{
    return sleep_unless(rt, &rt->quiet, seconds);
}

bool sq_runtime_rest(sq_runtime *rt, double seconds)
{
    return sleep_unless(rt, &rt->hard_stop, seconds);
}

static void raise_flag(sq_runtime *rt, atomic_bool *flag)
{
    pthread_mutex_lock(&rt->lock);
    atomic_store(flag, true);
    pthread_cond_broadcast(&rt->cond);
    pthread_mutex_unlock(&rt->lock);
}

void sq_runtime_quiet(sq_runtime *rt)
{
    raise_flag(rt, &rt->quiet);
}

void sq_runtime_hard_stop(sq_runtime *rt)
{
    raise_flag(rt, &rt->hard_stop);
}

long long sq_runtime_ms(void)
{
    return (long long)(sq__monotonic() * 1000);
}
