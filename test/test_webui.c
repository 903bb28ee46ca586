/*
 * test_webui.c: squire as Sidekiq's own API and Web UI see it (Debian's
 * ruby-sidekiq 6.4.1, and 7.3.10 from ../shared/third_party, each against a
 * running squire on a real redis-server):
 * ProcessSet, Workers, Stats, the Quiet and Stop buttons, and every page of
 * the Web UI rendered with squire's processes, jobs, retries and dead jobs.
 */
#include <math.h>
#include <time.h>

#include "itest.h"
#include "metrics.h"
#include "redis.h"

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

/* ---- issue 16: the Busy page never behind, the Metrics tab, the title --- */

static long long cmdstat_calls(const char *cmd)
{
    redisReply *r = sqt_cmd(C, "INFO commandstats");
    char needle[64];
    snprintf(needle, sizeof needle, "cmdstat_%s:calls=", cmd);
    const char *p = strstr(r->str, needle);
    long long n = p ? atoll(p + strlen(needle)) : 0;
    freeReplyObject(r);
    return n;
}

/* squire with beats 30 s apart: only the early refresh can show a job. */
static void start_slow_beat(sqt_proc *p, const char *extra_yaml)
{
    char yaml[512];
    snprintf(yaml, sizeof yaml, ":beat_interval: 30\n:tag: shop\n%s", extra_yaml);
    const char *argv[] = {"-C", itest_config(yaml), "-r", SQ_TEST_PLUGIN, "-c", "4", NULL};
    sqt_squire_start(p, R.url, argv, NULL);
    ck_assert(sqt_log_wait(p, "starting", 10));
    ck_assert_int_eq(sqt_wait_int(C, 1, 10, "SCARD processes"), 1); /* the first beat */
}

/* A 3 s job is on the Busy page (Sidekiq::Workers and the busy count)
 * within 2 s of starting and off it within 2 s of ending, though beats are
 * 30 s apart; short jobs cause no write of the work hash at all. */
START_TEST(busy_page_shows_a_running_job_within_a_second)
{
    sqt_proc p;
    start_slow_beat(&p, "");
    redisReply *r = sqt_cmd(C, "CONFIG RESETSTAT");
    freeReplyObject(r);
    char jid[25];
    for (int i = 0; i < 40; i++)
        itest_push("OkJob", "[]", NULL, jid);
    ck_assert_int_eq(sqt_wait_int(C, 40, 10, "HLEN test:runs"), 40);
    sqt_sleep(0.6);
    ck_assert_int_eq(cmdstat_calls("unlink"), 0); /* no write per short job */

    itest_push("SleepJob", "[3]", NULL, jid);
    char args[64];
    snprintf(args, sizeof args, "busy_watch %s 9", jid);
    json_t *w = webui(args);
    double started = json_real_value(json_object_get(w, "started"));
    double seen = json_real_value(json_object_get(w, "seen"));
    double ended = json_real_value(json_object_get(w, "ended"));
    double gone = json_real_value(json_object_get(w, "gone"));
    char *dump = json_dumps(w, 0);
    ck_assert_msg(started > 0 && seen > 0 && ended > 0 && gone > 0, "%s", dump);
    ck_assert_msg(seen - started <= 2.0 && seen < ended, "shown %.2f s after its start: %s",
                  seen - started, dump);
    ck_assert_msg(gone - ended <= 2.0, "left %.2f s after its end: %s", gone - ended, dump);
    free(dump);
    json_decref(w);
    /* the work hash was written twice: when the job passed 1 s, when it left */
    ck_assert_int_eq(cmdstat_calls("unlink"), 2);
    itest_stop(&p);
}
END_TEST

/* Wait up to 3 s for `ps -o args=` to show "squire <version> shop <rest>". */
static void assert_title(pid_t pid, const char *rest)
{
    char want[128], *out = NULL;
    snprintf(want, sizeof want, "squire %s shop %s\n", SQ_VERSION, rest);
    double until = sqt_now() + 3;
    do {
        free(out);
        sqt_sleep(0.1);
        ck_assert_int_eq(sqt_sh(NULL, &out, "ps -o args= -p %d", (int)pid), 0);
    } while (strcmp(out, want) != 0 && sqt_now() < until);
    ck_assert_str_eq(out, want);
    free(out);
}

/* `ps -o args=` shows the title Sidekiq would: version, tag, busy count,
 * then quiet and stopping once told so. */
START_TEST(ps_shows_the_process_title)
{
    sqt_proc p;
    start_slow_beat(&p, "");
    assert_title(p.pid, "[0 of 4 busy]");
    char jid[25];
    itest_push("SleepJob", "[4]", NULL, jid);
    assert_title(p.pid, "[1 of 4 busy]"); /* with the early refresh, not only the beat */
    /* squirectl sees the busy count as early (beats are 30 s apart) */
    char *ctl = NULL;
    ck_assert_int_eq(sqt_sh(R.url, &ctl, "%s stats --json", SQ_TEST_SQUIRECTL), 0);
    json_t *st = json_loads(ctl, 0, NULL);
    ck_assert_msg(json_integer_value(json_object_get(st, "busy")) == 1, "%s", ctl);
    json_decref(st);
    free(ctl);
    kill(p.pid, SIGTSTP);
    assert_title(p.pid, "[1 of 4 busy] quiet");
    kill(p.pid, SIGTERM); /* the job still runs: the process waits, stopping */
    assert_title(p.pid, "[1 of 4 busy] stopping");
    ck_assert_int_eq(sqt_proc_wait(&p, 20), 0);
}
END_TEST

/* Whether s (a string of /proc/<pid>/environ) is one the process was given:
 * the test's own environment or what sqt_squire_start and the test add. */
static bool given_env(const char *s, const char *const *added)
{
    extern char **environ;
    for (char **e = environ; *e != NULL; e++)
        if (strcmp(*e, s) == 0)
            return true;
    for (int i = 0; added[i] != NULL; i++)
        if (strcmp(added[i], s) == 0)
            return true;
    return strncmp(s, "REDIS_URL=", 10) == 0 || strncmp(s, "SQUIRE_ALLOW_ROOT=", 18) == 0;
}

/* The title takes over argv's memory, and the environment's only as far as a
 * long title needs: /proc/<pid>/environ keeps every string the title does
 * not reach, whole (no fragment of a cut one), and cmdline the whole title. */
START_TEST(title_leaves_the_environment_it_does_not_need)
{
    static char pad[700];
    memcpy(pad, "SQ_TITLE_PAD=", 13);
    memset(pad + 13, 'p', sizeof pad - 14);
    const char *added[] = {pad, "SQ_TITLE_MARK=kept", NULL};
    for (int longtag = 0; longtag <= 1; longtag++) {
        /* 600: longer than a title squire writes (511): the tag is cut,
         * the busy count stays */
        char tag[601], yaml[700], want[700];
        memset(tag, 'T', sizeof tag - 1);
        tag[longtag ? sizeof tag - 1 : 4] = '\0';
        snprintf(yaml, sizeof yaml, ":beat_interval: 30\n:tag: %s\n", tag);
        if (longtag)
            tag[511 - strlen("squire " SQ_VERSION "  [0 of 2 busy]")] = '\0';
        const char *argv[] = {"-C", itest_config(yaml), "-r", SQ_TEST_PLUGIN, "-c", "2", NULL};
        sqt_proc p;
        sqt_squire_start(&p, R.url, argv, added);
        ck_assert(sqt_log_wait(&p, "starting", 10));
        snprintf(want, sizeof want, "squire %s %s [0 of 2 busy]\n", SQ_VERSION, tag);
        char *out = NULL;
        double until = sqt_now() + 3;
        do {
            free(out);
            sqt_sleep(0.1);
            ck_assert_int_eq(sqt_sh(NULL, &out, "ps -o args= -p %d", (int)p.pid), 0);
        } while (strcmp(out, want) != 0 && sqt_now() < until);
        ck_assert_str_eq(out, want);
        free(out);
        char path[64];
        snprintf(path, sizeof path, "/proc/%d/environ", (int)p.pid);
        FILE *f = fopen(path, "r");
        ck_assert_ptr_nonnull(f);
        static char env[1 << 16];
        size_t n = fread(env, 1, sizeof env - 1, f);
        fclose(f);
        env[n] = '\0';
        bool mark = false;
        for (size_t i = 0; i < n; i += strlen(env + i) + 1) {
            if (env[i] == '\0')
                continue;
            /* a long title runs on into the environment's memory */
            size_t len = strlen(env + i), wlen = strlen(want) - 1;
            bool title_tail = longtag && i == 0 && len < wlen &&
                              memcmp(want + wlen - len, env + i, len) == 0;
            ck_assert_msg(title_tail || given_env(env + i, added), "environ holds \"%.80s\"",
                          env + i);
            mark |= strcmp(env + i, "SQ_TITLE_MARK=kept") == 0;
        }
        ck_assert_msg(mark, "SQ_TITLE_MARK is gone from %s (tag of %zu)", path, strlen(tag));
        kill(p.pid, SIGTERM);
        ck_assert_int_eq(sqt_proc_wait(&p, 20), 0);
    }
}
END_TEST

/* One Sidekiq's reader of the Metrics tab: totals of class k (NULL: absent). */
static json_t *metrics_of(const char *version, const char *args, const char *klass)
{
    sqt_sidekiq_use(version);
    json_t *all = webui(args);
    json_t *k = json_object_get(all, klass);
    json_incref(k);
    json_decref(all);
    sqt_sidekiq_use(NULL);
    return k;
}

static long long total(json_t *t, const char *metric)
{
    return json_integer_value(json_object_get(t, metric));
}

/* The Metrics page's row of klass shows ok successes and failed failures
 * (7.3.10's metrics.erb: the class's link, then <td class="num"> cells,
 * each number in a <span>). */
static void assert_metrics_row(const char *body, const char *klass, int ok, int failed)
{
    char link[128];
    snprintf(link, sizeof link, ">%s</a>", klass);
    const char *p = strstr(body, link);
    ck_assert_msg(p != NULL, "no row for %s on /metrics", klass);
    int got[2];
    for (int i = 0; i < 2; i++) {
        p = strstr(p, "<td class=\"num\">");
        ck_assert_ptr_nonnull(p);
        p += strlen("<td class=\"num\">");
        while (*p == '<') /* number_with_delimiter's <span data-nwp=...> */
            p = strchr(p, '>') + 1;
        got[i] = atoi(p);
    }
    ck_assert_msg(got[0] == ok && got[1] == failed, "%s: %d ok, %d failed on /metrics: %.600s",
                  klass, got[0], got[1], strstr(body, link));
}

/* After jobs that succeed, fail and take different times, Sidekiq's own
 * Sidekiq::Metrics::Query (7.3.10 and 8.1.7) reads back what squire ran, in
 * the layout each reads (`metrics: both`), and 7.3.10's Metrics pages show it. */
START_TEST(metrics_tab_shows_what_squire_ran_in_both_layouts)
{
    if (!sqt_third_party_has("7.3.10")) {
        printf("SKIP metrics: ../shared/third_party/sidekiq-7.3.10 is absent\n");
        return;
    }
    sqt_proc p;
    const char *argv[] = {"-C", itest_config(":beat_interval: 1\n:metrics: both\n"), "-r",
                          SQ_TEST_PLUGIN, "-c", "4", NULL};
    sqt_squire_start(&p, R.url, argv, NULL);
    ck_assert(sqt_log_wait(&p, "starting", 10));
    char jid[25];
    for (int i = 0; i < 3; i++)
        itest_push("OkJob", "[]", NULL, jid);
    sq_push_opts dead = {.extra = json_pack("{s:i}", "retry", 0)};
    for (int i = 0; i < 2; i++)
        itest_push("FailJob", "[\"E\",\"m\"]", &dead, jid);
    json_decref(dead.extra);
    itest_push("SleepJob", "[0.55]", NULL, jid); /* 500..750 ms: bucket 9 */
    itest_push("SleepJob", "[0.55]", NULL, jid);
    itest_push("SleepJob", "[1.2]", NULL, jid); /* 1100..1700 ms: bucket 11 */
    /* ActiveJob: counted under the wrapped class, as Sidekiq names it */
    sq_push_opts aj = {.extra = json_pack("{s:s}", "wrapped", "MyActiveJob")};
    itest_push("ActiveJob::QueueAdapters::SidekiqAdapter::JobWrapper",
               "[{\"job_class\":\"MyActiveJob\",\"arguments\":[]}]", &aj, jid);
    json_decref(aj.extra);
    ck_assert_int_eq(sqt_wait_int(C, 9, 10, "HLEN test:runs"), 9);
    itest_stop(&p); /* the last counts go with the flush at exit */

    const char *versions[] = {"7.3.10", "8.1.7"};
    for (int v = 0; v < 2; v++) {
        if (!sqt_third_party_has(versions[v])) {
            printf("SKIP metrics through Sidekiq %s: absent\n", versions[v]);
            continue;
        }
        json_t *ok = metrics_of(versions[v], "metrics 60", "OkJob");
        json_t *fail = metrics_of(versions[v], "metrics 60", "FailJob");
        json_t *sleep = metrics_of(versions[v], "metrics 60", "SleepJob");
        ck_assert_msg(ok && fail && sleep, "Sidekiq %s sees no metrics", versions[v]);
        json_t *aj_t = metrics_of(versions[v], "metrics 60", "MyActiveJob");
        ck_assert_msg(aj_t != NULL && total(aj_t, "p") == 1, "no MyActiveJob");
        json_decref(aj_t);
        ck_assert_ptr_null(metrics_of(versions[v], "metrics 60",
                                      "ActiveJob::QueueAdapters::SidekiqAdapter::JobWrapper"));
        ck_assert_int_eq(total(ok, "p"), 3);
        ck_assert_int_eq(total(ok, "f"), 0);
        ck_assert_int_eq(total(fail, "p"), 2);
        ck_assert_int_eq(total(fail, "f"), 2);
        ck_assert_int_eq(total(fail, "ms"), 0); /* failures are not timed */
        ck_assert_int_eq(total(sleep, "p"), 3);
        ck_assert_int_eq(total(sleep, "f"), 0);
        long long ms = total(sleep, "ms");
        ck_assert_msg(ms >= 2300 && ms < 2300 + 3 * 150, "SleepJob ms %lld", ms);
        json_decref(ok);
        json_decref(fail);
        json_decref(sleep);

        sqt_sidekiq_use(versions[v]);
        json_t *job = webui("metrics_job SleepJob");
        json_t *hist = json_object_get(job, "hist");
        for (int i = 0; i < SQ_METRICS_BUCKETS; i++)
            ck_assert_msg(json_integer_value(json_array_get(hist, (size_t)i)) ==
                              (i == 9 ? 2 : i == 11 ? 1 : 0),
                          "Sidekiq %s: bucket %d holds %lld", versions[v], i,
                          (long long)json_integer_value(json_array_get(hist, (size_t)i)));
        json_decref(job);
        sqt_sidekiq_use(NULL);
    }
    if (sqt_third_party_has("8.1.7")) { /* 8.x's 10-minute rollups: its "hours" view */
        json_t *ok = metrics_of("8.1.7", "metrics h1", "OkJob");
        ck_assert_ptr_nonnull(ok);
        ck_assert_int_eq(total(ok, "p"), 3);
        json_decref(ok);
    }
    sqt_sidekiq_use("7.3.10");
    json_t *pages = webui("metrics_pages SleepJob OkJob");
    for (size_t i = 0; i < json_array_size(pages); i++) {
        json_t *pg = json_array_get(pages, i);
        const char *path = json_string_value(json_object_get(pg, "path"));
        const char *body = json_string_value(json_object_get(pg, "body"));
        ck_assert_msg(json_integer_value(json_object_get(pg, "status")) == 200, "%s", path);
        const char *klass = strcmp(path, "/metrics") == 0 ? "SleepJob" : path + 9;
        ck_assert_msg(strstr(body, klass) != NULL, "%s does not show %s", path, klass);
        if (strcmp(path, "/metrics") == 0) { /* each row: successes, failures */
            assert_metrics_row(body, "OkJob", 3, 0);
            assert_metrics_row(body, "FailJob", 0, 2);
            assert_metrics_row(body, "SleepJob", 3, 0);
            assert_metrics_row(body, "MyActiveJob", 1, 0);
        }
        if (strcmp(path, "/metrics/SleepJob") == 0) /* the histogram's series: 2 and 1 */
            ck_assert_msg(strstr(body, "[0,0,0,0,0,0,0,0,0,0,0,0,0,0,1,0,2,0,0,0,0,0,0,0,0,0]") ||
                              strstr(body, "[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 2"),
                          "no histogram in %.2000s", strstr(body, "hist") ? strstr(body, "hist") : body);
    }
    ck_assert_int_eq(json_array_size(pages), 3);
    json_decref(pages);
    sqt_sidekiq_use(NULL);
}
END_TEST

/* The default layout is 8.x's: no 7.x key is written. */
START_TEST(metrics_default_to_sidekiq_8s_layout)
{
    sqt_proc p;
    const char *argv[] = {"-C", itest_config(":beat_interval: 1\n"), "-r", SQ_TEST_PLUGIN, NULL};
    sqt_squire_start(&p, R.url, argv, NULL);
    ck_assert(sqt_log_wait(&p, "starting", 10));
    char jid[25];
    itest_push("OkJob", "[]", NULL, jid);
    ck_assert_int_eq(sqt_wait_int(C, 1, 10, "HLEN test:runs"), 1);
    itest_stop(&p);
    char key[64];
    time_t now = time(NULL);
    sq_metrics_minute_key(8, now, key, sizeof key);
    long long p8 = sqt_int(C, "EXISTS %s", key);
    sq_metrics_minute_key(8, now - 60, key, sizeof key); /* the minute may have turned */
    p8 += sqt_int(C, "EXISTS %s", key);
    ck_assert_int_eq(p8, 1);
    redisReply *r = sqt_cmd(C, "KEYS j|20*");
    ck_assert_int_eq(r->elements, 0); /* j|<YYYYMMDD>: 7.x */
    freeReplyObject(r);
    r = sqt_cmd(C, "KEYS OkJob-*");
    ck_assert_int_eq(r->elements, 0);
    freeReplyObject(r);
    r = sqt_cmd(C, "KEYS h|OkJob-*");
    ck_assert_int_eq(r->elements, 1);
    freeReplyObject(r);
}
END_TEST

/* The runs of class klass in every minute hash and rollup squire wrote. */
static long long metric_runs(const char *klass)
{
    long long n = 0;
    redisReply *keys = sqt_cmd(C, "KEYS j|*");
    for (size_t i = 0; i < keys->elements; i++) {
        redisReply *r = sqt_cmd(C, "HGET %s %s|p", keys->element[i]->str, klass);
        n += r->type == REDIS_REPLY_STRING ? atoll(r->str) : 0;
        freeReplyObject(r);
    }
    freeReplyObject(keys);
    return n;
}

/* TERM while a job runs that looks at sq_job_stopping and finishes anyway:
 * it succeeds (acked, counted processed), so the Metrics tab counts it too,
 * in the flush at exit. */
START_TEST(metrics_count_a_job_that_finishes_while_stopping)
{
    sqt_proc p;
    const char *argv[] = {"-C", itest_config(":beat_interval: 1\n"), "-r", SQ_TEST_PLUGIN, NULL};
    sqt_squire_start(&p, R.url, argv, NULL);
    ck_assert(sqt_log_wait(&p, "starting", 10));
    char jid[25];
    itest_push("FinishJob", "[1.5]", NULL, jid);
    ck_assert(sqt_log_wait(&p, "class=FinishJob", 10));
    kill(p.pid, SIGTERM);
    ck_assert_int_eq(sqt_proc_wait(&p, 20), 0);
    ck_assert(sqt_log_wait(&p, "done:", 0));
    ck_assert_int_eq(sqt_int(C, "LLEN queue:default"), 0);
    /* its minute hash and the 10-minute rollup: once each */
    ck_assert_int_eq(metric_runs("FinishJob"), 2);
}
END_TEST

/* Key names where every time field is one digit: the latest hh:m5 at least
 * a minute ago, written by the library, read by each Sidekiq as of then. */
START_TEST(metrics_keys_match_sidekiqs_reader_at_one_digit_minutes)
{
    if (!sqt_third_party_has("7.3.10")) {
        printf("SKIP metrics keys: ../shared/third_party/sidekiq-7.3.10 is absent\n");
        return;
    }
    time_t at = time(NULL) - 60;
    at -= at % 60;
    while ((at / 60) % 60 != 5)
        at -= 60;
    at += 30;
    sq_metrics *m = sq_metrics_new(1, SQ_METRICS_V7 | SQ_METRICS_V8);
    sq_metrics_record(m, 0, "Mod::Job", 8, false, 4000, at);
    sq_metrics_record(m, 0, "Mod::Job", 8, true, 1, at);
    sq_redis_url url = {.host = "127.0.0.1", .port = R.port};
    sq_redis *r = sq_redis_new(&url, 3.0);
    sq_error err = {0};
    ck_assert_int_eq(sq_metrics_flush(m, r, &err), 6);
    sq_metrics_free(m);
    sq_redis_free(r);
    const char *versions[] = {"7.3.10", "8.1.7"};
    for (int v = 0; v < 2; v++) {
        if (!sqt_third_party_has(versions[v]))
            continue;
        char args[96];
        snprintf(args, sizeof args, "metrics 1 %lld", (long long)at);
        json_t *t = metrics_of(versions[v], args, "Mod::Job");
        ck_assert_msg(t != NULL, "Sidekiq %s finds nothing at %lld", versions[v], (long long)at);
        ck_assert_int_eq(total(t, "p"), 2);
        ck_assert_int_eq(total(t, "f"), 1);
        ck_assert_int_eq(total(t, "ms"), 4000);
        json_decref(t);
        sqt_sidekiq_use(versions[v]);
        snprintf(args, sizeof args, "metrics_job Mod::Job %lld", (long long)at);
        json_t *job = webui(args);
        ck_assert_int_eq(json_integer_value(json_array_get(json_object_get(job, "hist"), 14)), 1);
        json_decref(job);
        sqt_sidekiq_use(NULL);
    }
}
END_TEST

/* What Sidekiq 8.1.7's Busy page reads (busy.html.erb and GET /busy, read
 * from its source: its Web UI needs rack 3.2, so its readers run here
 * without the page) takes squire's process and a running job without error. */
START_TEST(sidekiq_8_busy_page_readers_accept_squire)
{
    if (!sqt_third_party_has("8.1.7")) {
        printf("SKIP Sidekiq 8.1.7: ../shared/third_party/sidekiq-8.1.7 is absent\n");
        return;
    }
    sqt_proc p;
    start(&p, "2");
    char jid[25];
    itest_push("SleepJob", "[4]", NULL, jid);
    ck_assert_int_eq(sqt_wait_int(C, 1, 10, "LLEN test:log"), 1);
    sqt_sleep(1.5);
    sqt_sidekiq_use("8.1.7");
    json_t *b = webui("busy8");
    sqt_sidekiq_use(NULL);
    char *dump = json_dumps(b, JSON_COMPACT);
    ck_assert_msg(json_integer_value(json_object_get(b, "processes")) == 1, "%s", dump);
    ck_assert_msg(json_integer_value(json_object_get(b, "threads")) == 4, "%s", dump);
    ck_assert_msg(json_integer_value(json_object_get(b, "busy")) == 1, "%s", dump);
    json_t *row = json_array_get(json_object_get(b, "rows"), 0);
    ck_assert_str_eq(json_string_value(json_object_get(row, "tag")), "shop");
    ck_assert_int_eq(json_integer_value(json_object_get(row, "concurrency")), 4);
    ck_assert_int_eq(json_integer_value(json_object_get(row, "busy")), 1);
    ck_assert(json_is_false(json_object_get(row, "embedded")));
    json_t *queues = json_loads("[\"critical\",\"default\"]", 0, NULL);
    ck_assert_msg(json_equal(json_object_get(row, "queues"), queues), "%s", dump);
    json_decref(queues);
    double now = (double)time(NULL);
    ck_assert(fabs(json_real_value(json_object_get(row, "started_at")) - now) < 60);
    json_t *job = json_array_get(json_object_get(b, "jobs"), 0);
    ck_assert_str_eq(json_string_value(json_object_get(job, "jid")), jid);
    ck_assert_str_eq(json_string_value(json_object_get(job, "class")), "SleepJob");
    ck_assert_str_eq(json_string_value(json_object_get(job, "queue")), "default");
    ck_assert_msg(fabs(json_real_value(json_object_get(job, "run_at")) - now) < 10, "%s", dump);
    ck_assert_msg(fabs(json_real_value(json_object_get(job, "created_at")) - now) < 60, "%s", dump);
    free(dump);
    json_decref(b);
    itest_stop(&p);
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
    tcase_add_test(tc, busy_page_shows_a_running_job_within_a_second);
    return tc;
}

int main(void)
{
    Suite *s = suite_create("webui");
    itest_add_sidekiq_cases(s, "sidekiq_6_4_1_api_and_web", "sidekiq_7_3_10_api_and_web", webui_case);
    /* issue 16: squire's own side, read through each Sidekiq inside the test */
    TCase *own = tcase_create("metrics_and_title");
    tcase_add_checked_fixture(own, itest_setup, itest_teardown);
    tcase_set_timeout(own, 90);
    tcase_add_test(own, ps_shows_the_process_title);
    tcase_add_test(own, title_leaves_the_environment_it_does_not_need);
    tcase_add_test(own, metrics_count_a_job_that_finishes_while_stopping);
    tcase_add_test(own, sidekiq_8_busy_page_readers_accept_squire);
    tcase_add_test(own, metrics_tab_shows_what_squire_ran_in_both_layouts);
    tcase_add_test(own, metrics_default_to_sidekiq_8s_layout);
    tcase_add_test(own, metrics_keys_match_sidekiqs_reader_at_one_digit_minutes);
    suite_add_tcase(s, own);
    return sqt_run(s);
}
