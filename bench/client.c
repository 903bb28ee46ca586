/*
 * client.c: squire-bench, the benchmark's pusher (bench/run drives it).
 *
 *   squire-bench enqueue N          N sq_push calls, one round trip each
 *   squire-bench bulk N [BATCH]     N jobs by sq_push_bulk, BATCH (1000) a call
 *   squire-bench pickup N GAP_MS    N PickupJobs, one every GAP_MS, each
 *                                   carrying its push time (bench/jobs.c)
 *   squire-bench schedule N MIN MAX N LateJobs due MIN..MAX s from now
 *                                   (uniform), each carrying its due time
 *
 * The first two print "<mode>: N jobs in S s, R jobs/s" and push NoopJobs.
 * Redis is $REDIS_URL, as for squire.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <squire.h>

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long long real_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int fail(const char *what, const sq_error *err)
{
    fprintf(stderr, "squire-bench: %s: %s\n", what, err->message);
    return 1;
}

static int push_one(sq_client *c, const char *klass, long long arg, double at)
{
    sq_error err = {0};
    json_t *args = json_pack("[I]", (json_int_t)arg);
    sq_push_opts opts = {.at = at};
    int rc = args ? sq_push(c, klass, args, &opts, NULL, &err) : -1;
    json_decref(args);
    if (rc != 0)
        return fail("push", &err);
    return 0;
}

static int enqueue(sq_client *c, long n)
{
    double t0 = mono();
    for (long i = 0; i < n; i++)
        if (push_one(c, "NoopJob", i, 0) != 0)
            return 1;
    double s = mono() - t0;
    printf("enqueue: %ld jobs in %.6f s, %.0f jobs/s\n", n, s, (double)n / s);
    return 0;
}

static int bulk(sq_client *c, long n, long batch)
{
    double t0 = mono();
    for (long done = 0; done < n;) {
        long k = n - done < batch ? n - done : batch;
        json_t *list = json_array();
        for (long i = 0; i < k; i++)
            json_array_append_new(list, json_pack("[I]", (json_int_t)(done + i)));
        sq_error err = {0};
        int rc = sq_push_bulk(c, "NoopJob", list, NULL, &err);
        json_decref(list);
        if (rc != 0)
            return fail("bulk push", &err);
        done += k;
    }
    double s = mono() - t0;
    printf("bulk: %ld jobs in %.6f s, %.0f jobs/s\n", n, s, (double)n / s);
    return 0;
}

static int pickup(sq_client *c, long n, long gap_ms)
{
    struct timespec gap = {gap_ms / 1000, (gap_ms % 1000) * 1000000L};
    for (long i = 0; i < n; i++) {
        nanosleep(&gap, NULL);
        if (push_one(c, "PickupJob", real_ns(), 0) != 0)
            return 1;
    }
    return 0;
}

static int schedule(sq_client *c, long n, double min, double max)
{
    srand((unsigned)real_ns());
    for (long i = 0; i < n; i++) {
        double at = (double)real_ns() / 1e9 + min + (max - min) * rand() / (double)RAND_MAX;
        if (push_one(c, "LateJob", (long long)(at * 1e9), at) != 0)
            return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: squire-bench enqueue N | bulk N [BATCH] | pickup N GAP_MS | "
                        "schedule N MIN_S MAX_S\n");
        return 64;
    }
    const char *mode = argv[1];
    long n = strtol(argv[2], NULL, 10);
    sq_error err = {0};
    sq_client *c = sq_client_new(NULL, &err);
    if (c == NULL)
        return fail("connect", &err);
    int rc = 64;
    if (strcmp(mode, "enqueue") == 0)
        rc = enqueue(c, n);
    else if (strcmp(mode, "bulk") == 0)
        rc = bulk(c, n, argc > 3 ? strtol(argv[3], NULL, 10) : 1000);
    else if (strcmp(mode, "pickup") == 0 && argc > 3)
        rc = pickup(c, n, strtol(argv[3], NULL, 10));
    else if (strcmp(mode, "schedule") == 0 && argc > 4)
        rc = schedule(c, n, strtod(argv[3], NULL), strtod(argv[4], NULL));
    else
        fprintf(stderr, "squire-bench: unknown mode or missing arguments: %s\n", mode);
    sq_client_free(c);
    return rc;
}
