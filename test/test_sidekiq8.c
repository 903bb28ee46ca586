/*
 * test_sidekiq8.c: Sidekiq 8's integer-millisecond job timestamps (issue 16),
 * against fixtures derived from Sidekiq 8.1.7's source: its client writes
 * created_at and enqueued_at as Process.clock_gettime(CLOCK_REALTIME,
 * :millisecond) (job_util.rb, client.rb), its retry writes failed_at and
 * retried_at the same way (job_retry.rb), and its readers take an Integer as
 * milliseconds and a Float as seconds (api.rb time_from_timestamp,
 * job_retry.rb time_for). squire writes a job's times in the job's own unit
 * (lib/payload.c, lib/retry.c).
 * test_sidekiq_compat checks the same through Sidekiq 8.1.7's own API.
 */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "job.h"
#include "payload.h"

#define NOW 1795346292.8154736

/* Sidekiq 8.1.7's HardJob.perform_async(1), as its client pushes it. */
#define JOB8                                                                                       \
    "{\"retry\":true,\"queue\":\"default\",\"class\":\"HardJob\",\"args\":[1],"                    \
    "\"jid\":\"0123456789abcdef01234567\",\"created_at\":1795346290001,"                           \
    "\"enqueued_at\":1795346290002}"
/* Sidekiq 7.3.10's, for comparison. */
#define JOB7                                                                                       \
    "{\"retry\":true,\"queue\":\"default\",\"class\":\"HardJob\",\"args\":[1],"                    \
    "\"jid\":\"0123456789abcdef01234567\",\"created_at\":1795346290.001,"                          \
    "\"enqueued_at\":1795346290.002}"

static json_t *parse(const char *s)
{
    json_t *j = json_loads(s, 0, NULL);
    ck_assert_ptr_nonnull(j);
    return j;
}

START_TEST(the_unit_follows_created_at_then_enqueued_at)
{
    static const struct {
        const char *json;
        bool ms;
    } cases[] = {
        {JOB8, true},
        {JOB7, false},
        {"{\"created_at\":1795346290}", false}, /* integer seconds: not 8.x */
        {"{\"enqueued_at\":1795346290002}", true},
        {"{\"created_at\":1795346290.5,\"enqueued_at\":1795346290002}", false},
        {"{\"created_at\":\"1795346290002\"}", false},
        {"{}", false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *j = parse(cases[i].json);
        ck_assert_msg(sq_payload_ms_times(j) == cases[i].ms, "%s", cases[i].json);
        json_decref(j);
    }
    ck_assert(!sq_payload_ms_times(NULL));
}
END_TEST

START_TEST(times_are_written_in_that_unit)
{
    char buf[32];
    ck_assert_str_eq(sq_format_job_time(NOW, true, buf), "1795346292815");
    ck_assert_str_eq(sq_format_job_time(NOW, false, buf), "1795346292.815474");
    ck_assert_str_eq(sq_format_job_time(NAN, true, buf), "0");
    ck_assert_str_eq(sq_format_job_time(1e300, true, buf), "9000000000000000000");
}
END_TEST

static unsigned rnd_zero(unsigned n, void *st)
{
    (void)n, (void)st;
    return 0;
}

/* The plan for job (text) failing at now; free both. */
static void plan_at(const char *text, double now, sq_job *job, sq_retry_plan *plan)
{
    sq_job_status st = SQ_JOB_VALID;
    char reason[128];
    memset(job, 0, sizeof *job);
    ck_assert_int_eq(
        sq_job_init(job, strdup(text), strlen(text), "default", NULL, &st, reason, sizeof reason),
        0);
    ck_assert_int_eq(st, SQ_JOB_VALID);
    sq_outcome_fail(&job->outcome, "RuntimeError", "boom");
    ck_assert_int_eq(sq_retry_plan_make(job, now, 25, rnd_zero, NULL, plan), 0);
}

/* The rewritten payload of job (text) failing at now; parsed. */
static json_t *fail_at(const char *text, double now)
{
    sq_job job;
    sq_retry_plan plan;
    plan_at(text, now, &job, &plan);
    ck_assert_ptr_nonnull(plan.payload);
    json_t *out = json_loadb(plan.payload, plan.payload_len, 0, NULL);
    ck_assert_ptr_nonnull(out);
    sq_retry_plan_destroy(&plan);
    sq_job_destroy(&job);
    return out;
}

START_TEST(a_sidekiq_8_job_fails_in_milliseconds)
{
    json_t *first = fail_at(JOB8, NOW);
    json_t *t = json_object_get(first, "failed_at");
    ck_assert_msg(json_is_integer(t), "failed_at is not an integer");
    ck_assert_int_eq(json_integer_value(t), 1795346292815LL);
    ck_assert_int_eq(json_integer_value(json_object_get(first, "created_at")), 1795346290001LL);
    char *again = json_dumps(first, JSON_COMPACT);
    json_t *second = fail_at(again, NOW + 20);
    ck_assert(json_is_integer(json_object_get(second, "retried_at")));
    ck_assert_int_eq(json_integer_value(json_object_get(second, "retried_at")), 1795346312815LL);
    ck_assert_int_eq(json_integer_value(json_object_get(second, "failed_at")), 1795346292815LL);
    free(again);
    json_decref(first);
    json_decref(second);

    /* a 7.x job keeps float seconds */
    json_t *seven = fail_at(JOB7, NOW);
    ck_assert(json_is_real(json_object_get(seven, "failed_at")));
    ck_assert(fabs(json_real_value(json_object_get(seven, "failed_at")) - NOW) < 1e-5);
    json_decref(seven);
}
END_TEST

/* retry_for counts from an 8.x failed_at in ms (job_retry.rb: time_for). */
START_TEST(retry_for_reads_milliseconds)
{
    const char *text = "{\"retry\":true,\"queue\":\"default\",\"class\":\"HardJob\",\"args\":[],"
                       "\"jid\":\"0123456789abcdef01234567\",\"created_at\":1795346290001,"
                       "\"retry_count\":0,\"failed_at\":1795346290001,\"retry_for\":60}";
    json_t *soon = fail_at(text, 1795346290.001 + 30); /* within retry_for: retried */
    ck_assert_int_eq(json_integer_value(json_object_get(soon, "retry_count")), 1);
    json_decref(soon);
    sq_job job;
    sq_retry_plan plan;
    plan_at(text, 1795346290.001 + 61, &job, &plan);
    ck_assert_int_eq(plan.action, SQ_RETRY_DEAD); /* past retry_for: dead */
    sq_retry_plan_destroy(&plan);
    sq_job_destroy(&job);
}
END_TEST

/* The poller's move, squirectl's retry and the recovery's verdict write a
 * Sidekiq 8 job's times in ms too, and a 7.x job's in float seconds. */
START_TEST(every_rewrite_keeps_the_jobs_unit)
{
    for (int v = 7; v <= 8; v++) {
        const char *text = v == 8 ? JOB8 : JOB7;
        json_t *job = parse(text);
        size_t len = 0;
        char *out[3], *queue = NULL;
        bool dead = false;
        out[0] = sq_payload_enqueued(text, strlen(text), job, NOW, &len);
        out[1] = sq_payload_requeued(text, strlen(text), job, NOW, &queue, &len);
        out[2] = sq_payload_interrupted(text, strlen(text), job, NOW, 1, &dead, &len);
        ck_assert(dead);
        const char *field[] = {"enqueued_at", "enqueued_at", "failed_at"};
        for (int i = 0; i < 3; i++) {
            ck_assert_ptr_nonnull(out[i]);
            json_t *o = parse(out[i]);
            json_t *t = json_object_get(o, field[i]);
            if (v == 8) {
                ck_assert_msg(json_is_integer(t), "%s", out[i]);
                ck_assert_int_eq(json_integer_value(t), 1795346292815LL);
            } else {
                ck_assert_msg(json_is_real(t), "%s", out[i]);
            }
            json_decref(o);
            free(out[i]);
        }
        free(queue);
        json_decref(job);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("sidekiq8");
    TCase *tc = tcase_create("timestamps");
    tcase_add_test(tc, the_unit_follows_created_at_then_enqueued_at);
    tcase_add_test(tc, times_are_written_in_that_unit);
    tcase_add_test(tc, a_sidekiq_8_job_fails_in_milliseconds);
    tcase_add_test(tc, retry_for_reads_milliseconds);
    tcase_add_test(tc, every_rewrite_keeps_the_jobs_unit);
    suite_add_tcase(s, tc);
    return sqt_run(s);
}
