/*
 * test_deploy.c: squire as systemd and operators run it. A datagram socket
 * in the test plays systemd's notify socket: READY=1 only once Redis
 * answers, STATUS= while waiting, WATCHDOG=1 while it works, STOPPING=1 on
 * TERM. Also --check, the root refusal, journal priorities and secrets from
 * $CREDENTIALS_DIRECTORY.
 */
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "itest.h"

typedef struct listener {
    int fd;
    char path[300];
    char seen[16384]; /* every datagram so far, one per line */
    size_t len;
} listener;

static void listen_notify(listener *l)
{
    char dir[256];
    sqt_tempdir(dir, "notify");
    snprintf(l->path, sizeof l->path, "%s/notify.sock", dir);
    l->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    ck_assert_int_ge(l->fd, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    ck_assert_uint_lt(strlen(l->path), sizeof a.sun_path);
    memcpy(a.sun_path, l->path, strlen(l->path) + 1);
    ck_assert_int_eq(bind(l->fd, (struct sockaddr *)&a, sizeof a), 0);
    l->len = 0;
    l->seen[0] = '\0';
}

/* Collect datagrams until needle has been seen or timeout passes. */
static bool notify_wait(listener *l, const char *needle, double timeout)
{
    double until = sqt_now() + timeout;
    for (;;) {
        char buf[1024];
        ssize_t n;
        while ((n = recv(l->fd, buf, sizeof buf - 1, 0)) > 0) {
            buf[n] = '\0';
            l->len += (size_t)snprintf(l->seen + l->len, sizeof l->seen - l->len, "%s\n", buf);
            if (l->len >= sizeof l->seen - 1) /* keep the tail */
                l->len = 0;
        }
        if (strstr(l->seen, needle))
            return true;
        if (sqt_now() > until)
            return false;
        sqt_sleep(0.02);
    }
}

/* Start squire with systemd's notify socket (l) and a 1 s watchdog. */
static void start_watched(listener *l, sqt_proc *p, const char *url, const char *const *argv)
{
    listen_notify(l);
    char sock[320];
    snprintf(sock, sizeof sock, "NOTIFY_SOCKET=%s", l->path);
    const char *env[] = {sock, "WATCHDOG_USEC=1000000", NULL};
    sqt_squire_start(p, url, argv, env);
}

START_TEST(ready_only_once_redis_answers_then_watchdog_and_stopping)
{
    listener l;
    int port = sqt_free_port();
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/0", port);
    const char *argv[] = {"-r", SQ_TEST_PLUGIN, "-c", "2", "-t", "2", NULL};
    sqt_proc p;
    start_watched(&l, &p, url, argv);
    ck_assert(notify_wait(&l, "STATUS=waiting for Redis", 5));
    sqt_sleep(1);
    ck_assert_ptr_null(strstr(l.seen, "READY=1"));
    /* Redis comes up on that port */
    itest_redis_on_port(port);
    ck_assert(notify_wait(&l, "READY=1", 10));
    /* it pings the watchdog every 0.5 s while it works */
    size_t before = 0;
    for (const char *s = l.seen; (s = strstr(s, "WATCHDOG=1")); s++)
        before++;
    char jid[25];
    itest_push("OkJob", "[]", NULL, jid);
    ck_assert_int_eq(sqt_wait_int(C, 1, 10, "SISMEMBER test:done %s", jid), 1);
    notify_wait(&l, "never", 2.0);
    size_t after = 0;
    for (const char *s = l.seen; (s = strstr(s, "WATCHDOG=1")); s++)
        after++;
    ck_assert_msg(after >= before + 3, "watchdog pings: %zu then %zu", before, after);
    ck_assert(notify_wait(&l, "busy", 3)); /* STATUS=0 of 2 busy */
    kill(p.pid, SIGTERM);
    ck_assert(notify_wait(&l, "STOPPING=1", 5));
    ck_assert_int_eq(sqt_proc_wait(&p, 15), 0);
    close(l.fd);
}
END_TEST

/* A Redis outage is not a reason for systemd to restart squire: the threads
 * keep turning (backing off), so the watchdog keeps being pinged. */
START_TEST(watchdog_keeps_pinging_through_a_redis_outage)
{
    listener l;
    const char *argv[] = {"-r", SQ_TEST_PLUGIN, "-c", "2", "-t", "2", NULL};
    sqt_proc p;
    start_watched(&l, &p, R.url, argv);
    ck_assert(notify_wait(&l, "READY=1", 10));
    redisFree(C);
    C = NULL;
    sqt_redis_kill9(&R);
    l.len = 0;
    l.seen[0] = '\0';
    notify_wait(&l, "never", 4.0);
    size_t pings = 0;
    for (const char *s = l.seen; (s = strstr(s, "WATCHDOG=1")); s++)
        pings++;
    ck_assert_msg(pings >= 5, "only %zu watchdog pings during the outage", pings);
    sqt_redis_restart(&R);
    C = sqt_redis_connect(&R);
    kill(p.pid, SIGTERM);
    ck_assert_int_eq(sqt_proc_wait(&p, 15), 0);
    close(l.fd);
}
END_TEST

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *s = hay; (s = strstr(s, needle)); s++)
        n++;
    return n;
}

/* A worker whose fetches keep failing while Redis answers everything else
 * (here: its ACL refuses scripts and list moves) is not healthy: one log line for
 * the outage, the heartbeat's label and fetch_error, systemd's STATUS,
 * squire --check, and after SQ_FETCH_FAILING_STUCK_MS no more watchdog
 * pings. When the fetches work again, all of that clears. */
START_TEST(failing_fetches_do_not_look_healthy)
{
    listener l;
    const char *cfg = itest_config(":beat_interval: 1\n");
    const char *argv[] = {"-C", cfg, "-r", SQ_TEST_PLUGIN, "-c", "2", "-t", "2",
                          "-q", "a", "-q", "b", NULL};
    sqt_proc p;
    start_watched(&l, &p, R.url, argv);
    ck_assert(notify_wait(&l, "READY=1", 10));
    freeReplyObject(sqt_cmd(C, "ACL SETUSER default -evalsha -eval -lmove -blmove -brpop"));
    ck_assert(sqt_log_wait(&p, "fetch failed:", 10));
    char jid[25];
    sq_push_opts opts = {.queue = "b"};
    itest_push("OkJob", "[]", &opts, jid); /* waits until fetching works again */
    ck_assert(notify_wait(&l, "STATUS=fetch failing for", 10));
    /* the heartbeat: the label the Web UI shows, and the error */
    redisReply *ids = sqt_cmd(C, "SMEMBERS processes");
    ck_assert_int_eq(ids->elements, 1);
    char id[300];
    snprintf(id, sizeof id, "%s", ids->element[0]->str);
    freeReplyObject(ids);
    redisReply *info = sqt_cmd(C, "HGET %s info", id);
    ck_assert_ptr_nonnull(strstr(info->str, "\"fetch-failing\""));
    freeReplyObject(info);
    redisReply *fe = sqt_cmd(C, "HGET %s fetch_error", id);
    ck_assert_int_eq(fe->type, REDIS_REPLY_STRING);
    ck_assert_msg(strstr(fe->str, "NOPERM") || strstr(fe->str, "permission"), "%s", fe->str);
    freeReplyObject(fe);
    /* --check shows the failing process, and that this config cannot fetch */
    char *out = NULL;
    int st = sqt_sh(R.url, &out, "%s --check --allow-root -r %s -q a -q b", SQ_TEST_SQUIRE,
                    SQ_TEST_PLUGIN);
    ck_assert_msg(strstr(out, "WARN process ") && strstr(out, "fetch failing"), "%s", out);
    ck_assert_msg(strstr(out, "fetch     FAIL ") && strstr(out, "NOPERM"), "%s", out);
    ck_assert_int_eq(st, 69);
    free(out);
    /* the watchdog stops being pinged */
    if (!sqt_log_wait(&p, "not pinging the watchdog", 15)) {
        l.len = 0;
        notify_wait(&l, "never", 0.1);
        char *l2 = sqt_log_read(&p);
        ck_abort_msg("the watchdog was still pinged: %s\n%s", l2, l.seen);
    }
    ck_assert(notify_wait(&l, "STATUS=stuck: workers cannot fetch", 5));
    l.len = 0;
    l.seen[0] = '\0';
    notify_wait(&l, "never", 2.5);
    ck_assert_msg(count(l.seen, "WATCHDOG=1") == 0, "pinged while stuck: %s", l.seen);
    /* once for the process, not once per worker or per retry */
    char *log = sqt_log_read(&p);
    ck_assert_msg(count(log, "fetch failed:") == 1, "%s", log);
    ck_assert_int_eq(count(log, "not pinging the watchdog"), 1);
    free(log);

    freeReplyObject(sqt_cmd(C, "ACL SETUSER default +@all"));
    ck_assert_int_eq(sqt_wait_int(C, 1, 15, "SISMEMBER test:done %s", jid), 1);
    ck_assert(sqt_log_wait(&p, "fetching again after", 10));
    l.len = 0;
    l.seen[0] = '\0';
    /* pinged again once every worker has tried again (after its back-off) */
    ck_assert(notify_wait(&l, "WATCHDOG=1", 15));
    notify_wait(&l, "never", 2.5);
    ck_assert_int_ge(count(l.seen, "WATCHDOG=1"), 2);
    sqt_sleep(1.5); /* a beat */
    fe = sqt_cmd(C, "HGET %s fetch_error", id);
    ck_assert_str_eq(fe->str, "");
    freeReplyObject(fe);
    info = sqt_cmd(C, "HGET %s info", id);
    ck_assert_ptr_null(strstr(info->str, "fetch-failing"));
    freeReplyObject(info);
    kill(p.pid, SIGTERM);
    ck_assert_int_eq(sqt_proc_wait(&p, 15), 0);
    close(l.fd);
}
END_TEST

START_TEST(check_mode_gives_a_verdict)
{
    char *out = NULL;
    /* good: config, handlers, Redis */
    ck_assert_int_eq(sqt_sh(R.url, &out, "%s --check --allow-root -r %s", SQ_TEST_SQUIRE,
                            SQ_TEST_PLUGIN), 0);
    ck_assert_ptr_nonnull(strstr(out, "squire --check: OK"));
    /* the handler line names some of the plugin's classes (at most 8, in
     * the registry's order, which moves as test handlers are added) */
    ck_assert_ptr_nonnull(strstr(out, " registered ("));
    ck_assert_msg(strstr(out, "OkJob") || strstr(out, "FailJob") || strstr(out, "SleepJob") ||
                      strstr(out, "HardJob"),
                  "no known handler in: %s", out);
    ck_assert_ptr_nonnull(strstr(out, "Redis 7"));
    free(out);
    /* no handlers: a config problem */
    ck_assert_int_eq(sqt_sh(R.url, &out, "%s --check --allow-root", SQ_TEST_SQUIRE), 78);
    ck_assert_ptr_nonnull(strstr(out, "0 registered"));
    free(out);
    /* Redis unreachable: 69, and the password is not shown */
    char bad[96];
    snprintf(bad, sizeof bad, "redis://:sekrit99@127.0.0.1:%d/0", sqt_free_port());
    ck_assert_int_eq(sqt_sh(bad, &out, "%s --check --allow-root -r %s", SQ_TEST_SQUIRE,
                            SQ_TEST_PLUGIN), 69);
    ck_assert_ptr_nonnull(strstr(out, "FAILED"));
    ck_assert_ptr_null(strstr(out, "sekrit99"));
    free(out);
    /* a bad config file: 78 before anything else */
    const char *cfg = itest_config(":concurrency: lots\n");
    ck_assert_int_eq(sqt_sh(R.url, NULL, "%s --check --allow-root -C %s 2>/dev/null",
                            SQ_TEST_SQUIRE, cfg), 78);
}
END_TEST

START_TEST(refuses_root_unless_told)
{
    if (geteuid() != 0)
        return; /* only meaningful as root */
    char *out = NULL;
    ck_assert_int_eq(sqt_sh(R.url, &out, "SQUIRE_ALLOW_ROOT= %s -r %s 2>&1", SQ_TEST_SQUIRE,
                            SQ_TEST_PLUGIN), 77);
    ck_assert_ptr_nonnull(strstr(out, "refusing to run as root"));
    free(out);
    sqt_proc p;
    const char *env[] = {"SQUIRE_ALLOW_ROOT=0", NULL};
    const char *argv[] = {"--allow-root", "-r", SQ_TEST_PLUGIN, NULL};
    sqt_squire_start(&p, R.url, argv, env);
    ck_assert(sqt_log_wait(&p, "starting", 10));
    itest_stop(&p);
}
END_TEST

START_TEST(journal_lines_carry_priorities)
{
    sqt_proc p;
    /* an inherited JOURNAL_STREAM that is not our stdout changes nothing */
    const char *inherited[] = {"JOURNAL_STREAM=8:12345", NULL};
    const char *argv1[] = {"-r", SQ_TEST_PLUGIN, "-c", "1", NULL};
    sqt_squire_start(&p, R.url, argv1, inherited);
    ck_assert(sqt_log_wait(&p, "starting", 10));
    itest_stop(&p);
    char *plain = sqt_log_read(&p);
    ck_assert_msg(plain[0] != '<', "priority prefix outside the journal: %.60s", plain);
    free(plain);

    const char *env[] = {"JOURNAL_STREAM=auto", NULL};
    const char *argv[] = {"-r", SQ_TEST_PLUGIN, "-c", "1", NULL};
    sqt_squire_start(&p, R.url, argv, env);
    ck_assert(sqt_log_wait(&p, "<6>pid=", 10));
    char jid[25];
    itest_push("FailJob", "[\"E\",\"m\"]", NULL, jid);
    ck_assert(sqt_log_wait(&p, "<4>pid=", 10)); /* the failure is a warning */
    itest_stop(&p);
    char *log = sqt_log_read(&p);
    ck_assert_msg(log[0] == '<', "journal line without priority: %.60s", log);
    free(log);
}
END_TEST

START_TEST(redis_url_from_a_systemd_credential)
{
    char cred[320];
    sqt_credential(cred, "redis_url", R.url);
    const char *env[] = {cred, NULL};
    const char *argv[] = {"-r", SQ_TEST_PLUGIN, NULL};
    sqt_proc p;
    sqt_squire_start(&p, NULL, argv, env); /* no REDIS_URL */
    ck_assert(sqt_log_wait(&p, "starting", 10));
    /* it serves this Redis: its heartbeat is here and it runs a job from it
     * (the test handlers record through $REDIS_URL, unset here, so use one
     * squire reports on itself) */
    ck_assert_int_eq(sqt_wait_int(C, 1, 10, "SCARD processes"), 1);
    char jid[25];
    sq_push_opts o = {.retry = SQ_RETRY_NEVER};
    itest_push("NoSuchJob", "[]", &o, jid);
    ck_assert(sqt_log_wait(&p, "no handler registered for class NoSuchJob", 10));
    itest_stop(&p);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("deploy");
    TCase *tc = tcase_create("systemd_and_operations");
    tcase_add_checked_fixture(tc, itest_setup, itest_teardown);
    tcase_set_timeout(tc, 90);
    tcase_add_test(tc, ready_only_once_redis_answers_then_watchdog_and_stopping);
    tcase_add_test(tc, watchdog_keeps_pinging_through_a_redis_outage);
    tcase_add_test(tc, failing_fetches_do_not_look_healthy);
    tcase_add_test(tc, check_mode_gives_a_verdict);
    tcase_add_test(tc, refuses_root_unless_told);
    tcase_add_test(tc, journal_lines_carry_priorities);
    tcase_add_test(tc, redis_url_from_a_systemd_credential);
    suite_add_tcase(s, tc);
    return sqt_run(s);
}
