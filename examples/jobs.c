/*
 * jobs.c: example handlers, built as build/libjobs.so and loaded with
 *
 *     squire -r ./build/libjobs.so -q default -q critical,2
 *
 * Build your own the same way once squire is installed:
 *
 *     cc -shared -fPIC -o libjobs.so jobs.c $(pkg-config --cflags --libs squire)
 *
 * From Rails, `HardJob.perform_async("bob", 3)` runs hard_job below.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

#include <squire.h>

/* HardJob(name, count): Sidekiq's classic example. "fail" as the name fails,
 * so the job shows up in the Retries tab of the Web UI. */
static sq_result hard_job(sq_job *job, void *ud)
{
    (void)ud;
    const char *name = json_string_value(sq_job_arg(job, 0));
    json_t *count = sq_job_arg(job, 1);
    if (name == NULL || !json_is_integer(count))
        return sq_job_fail(job, "ArgumentError", "expected (name: String, count: Integer), got %zu args",
                           sq_job_argc(job));
    if (strcmp(name, "fail") == 0)
        return sq_job_fail(job, "RuntimeError", "%s asked to fail (count %lld)", name,
                           (long long)json_integer_value(count));
    sq_job_log(job, "hard work for %.40s x%lld", name, (long long)json_integer_value(count));
    return SQ_OK;
}

/* SleepyJob(seconds): a slow job that stops early when the daemon shuts
 * down; squire then pushes it back to its queue to run again. */
static sq_result sleepy_job(sq_job *job, void *ud)
{
    (void)ud;
    double seconds = json_number_value(sq_job_arg(job, 0));
    struct timespec slice = {0, 100 * 1000 * 1000};
    for (double t = 0; t < seconds; t += 0.1) {
        if (sq_job_stopping(job))
            return sq_job_fail(job, "Interrupt", "stopped after %.1f of %.1f s", t, seconds);
        nanosleep(&slice, NULL);
    }
    return SQ_OK;
}

/* FlakyJob(failures): fails its first `failures` runs, asking to be retried
 * in 2 s (instead of Sidekiq's 15 s and up), then succeeds. */
static sq_result flaky_job(sq_job *job, void *ud)
{
    (void)ud;
    json_int_t failures = json_integer_value(sq_job_arg(job, 0));
    int attempt = sq_job_retry_count(job) + 2; /* first run is attempt 1 */
    if (attempt <= failures) {
        sq_job_fail(job, "Net::ReadTimeout", "upstream timed out (attempt %d of %lld)", attempt,
                    (long long)failures + 1);
        sq_job_retry_in(job, 2);
        return SQ_FAILED;
    }
    sq_job_log(job, "succeeded on attempt %d", attempt);
    return SQ_OK;
}

/* ChecksumJob(path): data processing: the CRC-32 of a file. A missing file
 * is a permanent error, so the job goes straight to the dead set. */
static sq_result checksum_job(sq_job *job, void *ud)
{
    (void)ud;
    const char *path = json_string_value(sq_job_arg(job, 0));
    if (path == NULL)
        return sq_job_fail(job, "ArgumentError", "expected a file path");
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        int e = errno;
        sq_job_fail(job, "Errno::ENOENT", "%s: %s", path, strerror(e));
        sq_job_kill(job);
        return SQ_FAILED;
    }
    unsigned char buf[65536];
    size_t n;
    uLong crc = crc32(0L, Z_NULL, 0);
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        crc = crc32(crc, buf, (uInt)n);
    fclose(f);
    sq_job_log(job, "crc32 %08lx", (unsigned long)crc);
    return SQ_OK;
}

/* WelcomeEmailJob: an ActiveJob (`WelcomeEmailJob.perform_later(user_id)`);
 * squire unwraps it, so args are the ActiveJob arguments. */
static sq_result welcome_email_job(sq_job *job, void *ud)
{
    (void)ud;
    json_t *user = sq_job_arg(job, 0);
    if (!json_is_integer(user))
        return sq_job_fail(job, "ArgumentError", "expected a user id");
    sq_job_log(job, "would send a welcome email to user %lld", (long long)json_integer_value(user));
    return SQ_OK;
}

int squire_plugin_init(sq_registry *reg)
{
    if (sq_register(reg, "HardJob", hard_job, NULL) != 0 ||
        sq_register(reg, "SleepyJob", sleepy_job, NULL) != 0 ||
        sq_register(reg, "FlakyJob", flaky_job, NULL) != 0 ||
        sq_register(reg, "ChecksumJob", checksum_job, NULL) != 0 ||
        sq_register(reg, "WelcomeEmailJob", welcome_email_job, NULL) != 0)
        return -1;
    return 0;
}
