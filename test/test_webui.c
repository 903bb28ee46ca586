/*
 * test_webui.c: squire as Sidekiq's own API and Web UI see it (Debian's
 * ruby-sidekiq 6.4.1, and 7.3.10 from ../shared/third_party, each against a
 * running squire on a real redis-server):
 * ProcessSet, Workers, Stats, the Quiet and Stop buttons, and every page of
 * the Web UI rendered with squire's processes, jobs, retries and dead jobs.
 */
#include <time.h>

#include "itest.h"

static json_t *webui(const char *args)
{
    char *out = NULL;
    int st = sqt_ruby(R.url, &out, "webui.rb", args);
    ck_assert_msg(st == 0, "ruby webui.rb %s exited %d: %.500s", args, st, out);
    json_t *j = json_loads(out, JSON_DECODE_ANY, NULL);
    ck_assert_msg(j != NULL, "not JSON: %.500s", out);
    free(out);
    return j;
}

/* squire with a 1 s beat, tag and labels, two queues. */
static void start(sqt_proc *p, const char *timeout)
{
    const char *cfg = itest_config(":beat_interval: 1\n:poll_interval_average: 0.5\n"
                                   ":tag: shop\n:labels: [c-workers]\n");
    const char *argv[] = {"-C", cfg, "-r", SQ_TEST_PLUGIN, "-c", "4", "-t", timeout,
                          "-q", "critical,3", "-q", "default", NULL};
    sqt_squire_start(p, R.url, argv, NULL);
    ck_assert(sqt_log_wait(p, "starting", 10));
}

static json_t *only_process(void)
{
    json_t *ps = NULL;
    double until = sqt_now() + 10;
    do {
        json_decref(ps);
        ps = webui("processes");
    } while (json_array_size(ps) != 1 && sqt_now() < until && (sqt_sleep(0.2), 1));
    ck_assert_int_eq(json_array_size(ps), 1);
    return ps;
}

START_TEST(process_set_and_workers_show_squire)
{
    sqt_proc p;
    start(&p, "2");
    char jid[25];
    itest_push("SleepJob", "[20]", NULL, jid);
    ck_assert_int_eq(sqt_wait_int(C, 1, 10, "LLEN test:log"), 1);
    sqt_sleep(1.5); /* one beat with the job running */
    json_t *ps = only_process();
    json_t *proc = json_array_get(ps, 0);
    ck_assert_int_eq(json_integer_value(json_object_get(proc, "concurrency")), 4);
    ck_assert_str_eq(json_string_value(json_object_get(proc, "tag")), "shop");
    ck_assert_int_eq(json_integer_value(json_object_get(proc, "pid")), p.pid);
    ck_assert_int_eq(json_integer_value(json_object_get(proc, "busy")), 1);
    ck_assert(json_is_false(json_object_get(proc, "quiet")) ||
              strcmp(json_string_value(json_object_get(proc, "quiet")), "false") == 0);
    json_t *want = json_loads("[\"critical\",\"default\"]", 0, NULL);
    ck_assert(json_equal(json_object_get(proc, "queues"), want));
    json_decref(want);
    ck_assert_str_eq(json_string_value(json_array_get(json_object_get(proc, "labels"), 0)),
                     "c-workers");
    ck_assert_int_gt(json_integer_value(json_object_get(proc, "rss")), 0);

    json_t *ws = webui("workers");
    ck_assert_int_eq(json_array_size(ws), 1);
    json_t *w = json_array_get(ws, 0);
    ck_assert_str_eq(json_string_value(json_object_get(w, "class")), "SleepJob");
    ck_assert_str_eq(json_string_value(json_object_get(w, "jid")), jid);
    ck_assert_str_eq(json_string_value(json_object_get(w, "queue")), "default");
    ck_assert_str_eq(json_string_value(json_object_get(w, "process")),
                     json_string_value(json_object_get(proc, "identity")));
    json_decref(ws);
    json_t *st = webui("stats");
    ck_assert_int_eq(json_integer_value(json_object_get(st, "workers_size")), 1);
    ck_assert_int_eq(json_integer_value(json_object_get(st, "processes_size")), 1);
    json_decref(st);
    kill(p.pid, SIGTERM);
    ck_assert_int_eq(sqt_proc_wait(&p, 20), 0);
    /* a clean exit leaves the process list */
    ck_assert_int_eq(sqt_int(C, "SCARD processes"), 0);
    const char *id = json_string_value(json_object_get(proc, "identity"));
    ck_assert_int_eq(sqt_int(C, "EXISTS %s:work", id), 0);
    ck_assert_int_eq(sqt_int(C, "EXISTS %s:workers", id), 0);
    json_decref(ps);
}
END_TEST

START_TEST(stats_count_what_squire_processed_and_failed)
{
    sqt_proc p;
    start(&p, "2");
    char jid[25];
    for (int i = 0; i < 3; i++)
        itest_push("OkJob", "[]", NULL, jid);
    itest_push("FailJob", "[\"E\",\"m\"]", NULL, jid);
    ck_assert_int_eq(sqt_wait_int(C, 4, 10, "HLEN test:runs"), 4);
    itest_stop(&p);
    json_t *st = webui("stats");
    ck_assert_int_eq(json_integer_value(json_object_get(st, "processed")), 4);
    ck_assert_int_eq(json_integer_value(json_object_get(st, "failed")), 1);
    ck_assert_int_eq(json_integer_value(json_object_get(st, "retry_size")), 1);
    json_decref(st);
}
END_TEST

START_TEST(quiet_and_stop_buttons_work_within_a_beat)
{
    sqt_proc p;
    start(&p, "2");
    json_t *ps = only_process();
    char cmd[400];
    snprintf(cmd, sizeof cmd, "quiet '%s'",
             json_string_value(json_object_get(json_array_get(ps, 0), "identity")));
    json_decref(webui(cmd));
    ck_assert(sqt_log_wait(&p, "remote signal TSTP received", 3));
    sqt_sleep(1.5); /* the next beat writes quiet=true */
    json_t *after = only_process();
    ck_assert(json_is_true(json_object_get(json_array_get(after, 0), "stopping")));
    json_decref(after);
    /* quiet: a new job is not fetched */
    char jid[25];
    itest_push("OkJob", "[]", NULL, jid);
    sqt_sleep(2.5);
    ck_assert_int_eq(sqt_int(C, "LLEN queue:default"), 1);
    snprintf(cmd, sizeof cmd, "stop '%s'",
             json_string_value(json_object_get(json_array_get(ps, 0), "identity")));
    json_decref(webui(cmd));
    ck_assert_int_eq(sqt_proc_wait(&p, 10), 0);
    ck_assert(sqt_log_wait(&p, "remote signal TERM received", 1));
    json_decref(ps);
}
END_TEST

START_TEST(unknown_remote_signals_are_ignored)
{
    sqt_proc p;
    start(&p, "2");
    json_t *ps = only_process();
    const char *id = json_string_value(json_object_get(json_array_get(ps, 0), "identity"));
    redisReply *r = sqt_cmd(C, "LPUSH %s-signals KILL", id);
    freeReplyObject(r);
    ck_assert(sqt_log_wait(&p, "ignoring unknown remote signal KILL", 3));
    ck_assert_int_eq(sqt_proc_wait(&p, 0), -1); /* still running */
    json_decref(ps);
    itest_stop(&p);
}
END_TEST

START_TEST(dead_identities_are_pruned)
{
    redisReply *r = sqt_cmd(C, "SADD processes ghost:1:000000000000");
    freeReplyObject(r);
    sqt_proc p;
    start(&p, "2");
    ck_assert(sqt_log_wait(&p, "removed 1 dead process", 5));
    ck_assert_int_eq(sqt_int(C, "SISMEMBER processes ghost:1:000000000000"), 0);
    itest_stop(&p);
}
END_TEST

/* Every page of the Web UI renders squire's data: a busy process, a queue,
 * a retry, a dead job (incl. a raw non-JSON one) and a scheduled job. */
START_TEST(web_ui_renders_every_page)
{
    sqt_proc p;
    start(&p, "2");
    char jid[25];
    itest_push("FailJob", "[\"ArgumentError\",\"bad thing\"]", NULL, jid);
    sq_push_opts d = {.extra = json_pack("{s:i}", "retry", 0)};
    char dead[25];
    itest_push("FailJob", "[\"IOError\",\"disk\"]", &d, dead);
    json_decref(d.extra);
    redisReply *r = sqt_cmd(C, "LPUSH queue:default %s", "not json at all");
    freeReplyObject(r);
    char slow[25];
    itest_push("SleepJob", "[20]", NULL, slow);
    sq_push_opts later = {.at = (double)time(NULL) + 3600};
    itest_push("OkJob", "[\"later\"]", &later, jid);
    ck_assert_int_eq(sqt_wait_int(C, 1, 10, "ZCARD retry"), 1);
    ck_assert_int_eq(sqt_wait_int(C, 2, 10, "ZCARD dead"), 2);
    sqt_sleep(1.5);
    json_t *pages = webui("pages");
    ck_assert_int_ge(json_array_size(pages), 12);
    bool busy_shows_squire = false, retry_shows_error = false, morgue_shows = false;
    for (size_t i = 0; i < json_array_size(pages); i++) {
        json_t *pg = json_array_get(pages, i);
        const char *path = json_string_value(json_object_get(pg, "path"));
        const char *body = json_string_value(json_object_get(pg, "body"));
        ck_assert_msg(json_integer_value(json_object_get(pg, "status")) == 200,
                      "%s answered %lld", path,
                      (long long)json_integer_value(json_object_get(pg, "status")));
        if (strcmp(path, "/busy") == 0)
            busy_shows_squire = strstr(body, "shop") != NULL && strstr(body, "SleepJob") != NULL;
        if (strcmp(path, "/retries") == 0)
            retry_shows_error = strstr(body, "ArgumentError") != NULL;
        if (strcmp(path, "/morgue") == 0)
            morgue_shows = strstr(body, "IOError") != NULL;
    }
    ck_assert_msg(busy_shows_squire, "the Busy page does not show squire's process and job");
    ck_assert(retry_shows_error);
    ck_assert(morgue_shows);
    json_decref(pages);
    itest_stop(&p);
}
END_TEST

/* On Heroku the dyno name is the host in the identity, and log lines carry
 * no timestamp (the router adds its own), as Sidekiq does. */
START_TEST(heroku_dyno_names_the_process)
{
    sqt_proc p;
    const char *cfg = itest_config(":beat_interval: 1\n");
    const char *argv[] = {"-C", cfg, "-r", SQ_TEST_PLUGIN, NULL};
    const char *env[] = {"DYNO=worker.1", NULL};
    sqt_squire_start(&p, R.url, argv, env);
    ck_assert(sqt_log_wait(&p, "starting", 10));
    json_t *ps = only_process();
    json_t *proc = json_array_get(ps, 0);
    ck_assert_str_eq(json_string_value(json_object_get(proc, "hostname")), "worker.1");
    ck_assert(strncmp(json_string_value(json_object_get(proc, "identity")), "worker.1:", 9) == 0);
    json_decref(ps);
    itest_stop(&p);
    char *log = sqt_log_read(&p);
    ck_assert_msg(strncmp(log, "pid=", 4) == 0, "log line starts with: %.40s", log);
    free(log);
}
END_TEST

START_TEST(the_chosen_sidekiq_is_the_one_loaded)
{
    json_t *v = webui("version");
    ck_assert_str_eq(json_string_value(json_object_get(v, "version")), sqt_sidekiq_expected());
    json_decref(v);
}
END_TEST

static TCase *webui_case(const char *name, void (*setup)(void))
{
    TCase *tc = tcase_create(name);
    tcase_add_checked_fixture(tc, setup, itest_teardown);
    tcase_set_timeout(tc, 90);
    tcase_add_test(tc, the_chosen_sidekiq_is_the_one_loaded);
    tcase_add_test(tc, process_set_and_workers_show_squire);
    tcase_add_test(tc, stats_count_what_squire_processed_and_failed);
    tcase_add_test(tc, quiet_and_stop_buttons_work_within_a_beat);
    tcase_add_test(tc, unknown_remote_signals_are_ignored);
    tcase_add_test(tc, dead_identities_are_pruned);
    tcase_add_test(tc, web_ui_renders_every_page);
    tcase_add_test(tc, heroku_dyno_names_the_process);
    return tc;
}

int main(void)
{
    Suite *s = suite_create("webui");
    itest_add_sidekiq_cases(s, "sidekiq_6_4_1_api_and_web", "sidekiq_7_3_10_api_and_web", webui_case);
    return sqt_run(s);
}
