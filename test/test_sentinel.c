/*
 * test_sentinel.c: Redis Sentinel as Sidekiq users configure it: a master
 * name in the URL (redis://mymaster) and a list of sentinels. A master, a
 * replica and three sentinels on loopback; the master is killed, squire
 * follows the master the sentinels elect, and jobs keep running.
 */
#include <unistd.h>

#include "itest.h"

#define MASTER "mymaster"

static sqt_redis S[3]; /* sentinels */
static sqt_redis replica;
static char sentinels[128];

static redisReply *sentinel_cmd(int i, const char *fmt, const char *arg)
{
    redisContext *c = sqt_redis_connect(&S[i]);
    redisReply *r = sqt_cmd(c, fmt, arg);
    redisFree(c);
    return r;
}

/* The port sentinel i names for the master now (0: none). */
static int master_port(int i)
{
    redisReply *r = sentinel_cmd(i, "SENTINEL get-master-addr-by-name %s", MASTER);
    int port = r->type == REDIS_REPLY_ARRAY && r->elements == 2 ? atoi(r->element[1]->str) : 0;
    freeReplyObject(r);
    return port;
}

/* Until every sentinel knows the replica and the two other sentinels: only
 * then can they agree on a failover. */
static void wait_sentinels_ready(void)
{
    double until = sqt_now() + 40;
    for (;;) {
        bool ready = true;
        for (int i = 0; i < 3 && ready; i++) {
            redisReply *r = sentinel_cmd(i, "SENTINEL replicas %s", MASTER);
            ready = r->type == REDIS_REPLY_ARRAY && r->elements == 1;
            freeReplyObject(r);
            r = sentinel_cmd(i, "SENTINEL sentinels %s", MASTER);
            ready = ready && r->type == REDIS_REPLY_ARRAY && r->elements == 2;
            freeReplyObject(r);
        }
        if (ready)
            return;
        ck_assert_msg(sqt_now() < until, "the sentinels did not find each other");
        sqt_sleep(0.2);
    }
}

static void setup(void)
{
    itest_setup(); /* R: the master */
    char extra[64];
    snprintf(extra, sizeof extra, "--replicaof 127.0.0.1 %d", R.port);
    sqt_redis_start(&replica, extra);
    size_t n = 0;
    for (int i = 0; i < 3; i++) {
        sqt_sentinel_start(&S[i], MASTER, R.port);
        n += (size_t)snprintf(sentinels + n, sizeof sentinels - n, "%s127.0.0.1:%d", i ? "," : "",
                              S[i].port);
    }
    setenv("SQUIRE_REDIS_SENTINELS", sentinels, 1); /* for sq_client_new in this process */
    wait_sentinels_ready();
}

static void teardown(void)
{
    for (int i = 0; i < 3; i++)
        sqt_redis_stop(&S[i]);
    sqt_redis_stop(&replica);
    itest_teardown();
}

/* Push n NoopJobs with the C client, through the sentinels. */
static void push_jobs(int n)
{
    sq_error err = {0};
    sq_client *c = sq_client_new("redis://" MASTER "/0", &err);
    ck_assert_msg(c != NULL, "%s", err.message);
    for (int i = 0; i < n; i++) {
        json_t *args = json_pack("[i]", i);
        char jid[25];
        ck_assert_msg(sq_push(c, "NoopJob", args, NULL, jid, &err) == 0, "%s", err.message);
        json_decref(args);
    }
    sq_client_free(c);
}

/* squire with 3 workers at url behind the sentinels in list, once it has
 * found the master (R). */
static void start_squire(sqt_proc *p, const char *url, const char *list)
{
    char env_sentinels[240];
    snprintf(env_sentinels, sizeof env_sentinels, "SQUIRE_REDIS_SENTINELS=%s", list);
    const char *env[] = {env_sentinels, NULL};
    const char *cfg = itest_config(":poll_interval_average: 0.2\n:beat_interval: 1\n");
    const char *argv[] = {"-C", cfg, "-r", SQ_TEST_PLUGIN, "-c", "3", NULL};
    sqt_squire_start(p, url, argv, env);
    char at[64];
    snprintf(at, sizeof at, "master \"" MASTER "\" is at 127.0.0.1:%d", R.port);
    ck_assert_msg(sqt_log_wait(p, at, 15), "squire did not find the master");
}

START_TEST(squire_follows_the_master_through_a_failover)
{
    sqt_proc p;
    start_squire(&p, "redis://" MASTER "/0", sentinels);
    char at[64];
    push_jobs(5);
    ck_assert_int_eq(sqt_wait_int(C, 5, 20, "GET stat:processed"), 5);

    /* the master dies; the sentinels promote the replica */
    redisFree(C);
    C = NULL;
    sqt_redis_kill9(&R);
    double until = sqt_now() + 60;
    while (master_port(0) != replica.port) {
        ck_assert_msg(sqt_now() < until, "no failover within 60 s");
        sqt_sleep(0.2);
    }
    snprintf(at, sizeof at, "master \"" MASTER "\" is at 127.0.0.1:%d", replica.port);
    ck_assert_msg(sqt_log_wait(&p, at, 30), "squire did not follow the new master");

    /* jobs keep running, on the new master */
    redisContext *c = sqt_redis_connect(&replica);
    long long before = sqt_int(c, "GET stat:processed");
    push_jobs(5);
    ck_assert_int_ge(sqt_wait_int(c, before + 5, 30, "GET stat:processed"), before + 5);
    ck_assert_int_eq(sqt_int(c, "LLEN queue:default"), 0);
    /* the heartbeat moved along: the process is listed on the new master */
    ck_assert_int_eq(sqt_wait_int(c, 1, 10, "SCARD processes"), 1);
    redisFree(c);
    itest_stop(&p);
}
END_TEST

/* A planned failover (SENTINEL FAILOVER): the old master stays up and
 * becomes a replica. squire must not stay on it: a reconnection that reaches
 * it finds ROLE slave, and a write there answers READONLY; both send squire
 * back to the sentinels. */
START_TEST(squire_leaves_a_demoted_master)
{
    sqt_proc p;
    start_squire(&p, "redis://" MASTER "/0", sentinels);
    char at[64];
    push_jobs(3);
    ck_assert_int_eq(sqt_wait_int(C, 3, 20, "GET stat:processed"), 3);
    redisReply *r = sentinel_cmd(0, "SENTINEL failover %s", MASTER);
    ck_assert_msg(r->type == REDIS_REPLY_STATUS, "SENTINEL failover: %s", r->str);
    freeReplyObject(r);
    double until = sqt_now() + 60;
    while (master_port(0) != replica.port) {
        ck_assert_msg(sqt_now() < until, "no failover within 60 s");
        sqt_sleep(0.2);
    }
    snprintf(at, sizeof at, "master \"" MASTER "\" is at 127.0.0.1:%d", replica.port);
    ck_assert_msg(sqt_log_wait(&p, at, 30), "squire did not follow the new master");
    redisContext *c = sqt_redis_connect(&replica);
    long long before = sqt_int(c, "GET stat:processed");
    push_jobs(3);
    ck_assert_int_ge(sqt_wait_int(c, before + 3, 30, "GET stat:processed"), before + 3);
    ck_assert_int_eq(sqt_int(c, "LLEN queue:default"), 0);
    redisFree(c);
    itest_stop(&p);
    /* the old master is a replica now */
    redisFree(C);
    C = sqt_redis_connect(&R);
    r = sqt_cmd(C, "ROLE");
    ck_assert_str_eq(r->element[0]->str, "slave");
    freeReplyObject(r);
}
END_TEST

/* A sentinel that lies: it was left behind (a stale config, a partition)
 * and names the replica as the master. Listed first, it must not keep squire
 * off the master the other sentinels name: an address that fails the ROLE
 * check, or refuses the credentials (the replica has no user "app"), sends
 * squire to the next sentinel, not back to the same one or out. */
START_TEST(a_stale_sentinel_listed_first_is_passed_over)
{
    sqt_redis stale;
    sqt_sentinel_start(&stale, MASTER, replica.port);
    redisContext *sc = sqt_redis_connect(&stale);
    /* it must never fail over on its own: it only lies */
    freeReplyObject(sqt_cmd(sc, "SENTINEL SET %s down-after-milliseconds 3600000", MASTER));
    redisReply *r = sqt_cmd(sc, "SENTINEL get-master-addr-by-name %s", MASTER);
    ck_assert_int_eq(atoi(r->element[1]->str), replica.port);
    freeReplyObject(r);
    redisFree(sc);
    char list[200], env_sentinels[240];
    snprintf(list, sizeof list, "127.0.0.1:%d,%s", stale.port, sentinels);
    snprintf(env_sentinels, sizeof env_sentinels, "SQUIRE_REDIS_SENTINELS=%s", list);

    freeReplyObject(sqt_cmd(C, "ACL SETUSER app on >apppw ~* &* +@all"));
    const char *url = "redis://app:apppw@" MASTER "/0";
    char *out;
    int rc = sqt_sh("redis://" MASTER "/0", &out, "%s '%s' stats 2>&1", env_sentinels,
                    SQ_TEST_SQUIRECTL);
    ck_assert_msg(rc == 0 && strstr(out, "Processed:") != NULL, "%d %s", rc, out);
    free(out);
    rc = sqt_sh(url, &out, "%s '%s' stats 2>&1", env_sentinels, SQ_TEST_SQUIRECTL);
    ck_assert_msg(rc == 0 && strstr(out, "Processed:") != NULL, "%d %s", rc, out);
    free(out);

    sqt_proc p;
    start_squire(&p, url, list);
    setenv("SQUIRE_REDIS_SENTINELS", list, 1);
    push_jobs(5);
    setenv("SQUIRE_REDIS_SENTINELS", sentinels, 1);
    ck_assert_int_eq(sqt_wait_int(C, 5, 20, "GET stat:processed"), 5);
    itest_stop(&p);
    char *log = sqt_log_read(&p);
    char at[64];
    snprintf(at, sizeof at, "master \"" MASTER "\" is at 127.0.0.1:%d", replica.port);
    ck_assert_msg(strstr(log, at) == NULL, "the replica was logged as the master: %s", log);
    free(log);
    sqt_redis_stop(&stale);
}
END_TEST

/* A master name no sentinel knows, or no sentinel reachable: a clear
 * message, and squirectl gives up in bounded time. */
START_TEST(an_unknown_master_name_is_reported)
{
    char *out;
    int rc = sqt_sh("redis://nosuchmaster/0", &out, "SQUIRE_REDIS_SENTINELS='%s' '%s' stats 2>&1",
                    sentinels, SQ_TEST_SQUIRECTL);
    ck_assert_msg(rc != 0 && strstr(out, "no master named \"nosuchmaster\"") != NULL, "%d %s", rc,
                  out);
    free(out);
    int dead = sqt_free_port();
    rc = sqt_sh("redis://" MASTER "/0", &out, "SQUIRE_REDIS_SENTINELS=127.0.0.1:%d '%s' stats 2>&1",
                dead, SQ_TEST_SQUIRECTL);
    ck_assert_msg(rc != 0 && strstr(out, "no sentinel gave the master") != NULL, "%d %s", rc, out);
    free(out);
}
END_TEST

/* A hung sentinel listed first (it accepts and never answers) costs only its
 * share of the connect timeout: the sentinels after it are still asked in
 * time, and squirectl reaches the master. */
START_TEST(a_silent_sentinel_listed_first_is_passed_over)
{
    int port;
    int fd = sqt_silent_server(&port);
    char *out;
    double t0 = sqt_now();
    int rc = sqt_sh("redis://" MASTER "/0", &out,
                    "SQUIRE_REDIS_SENTINELS='127.0.0.1:%d,%s' timeout -s KILL 30 '%s' stats 2>&1",
                    port, sentinels, SQ_TEST_SQUIRECTL);
    double took = sqt_now() - t0;
    ck_assert_msg(rc == 0 && strstr(out, "Processed:") != NULL, "%d after %.1f s: %s", rc, took,
                  out);
    ck_assert_msg(took < 5 + 2.5, "squirectl took %.1f s", took);
    free(out);
    close(fd);
}
END_TEST

/* A stale sentinel listed first names a master that accepts and never
 * answers (the old master, hung, or an address now blackholed): that
 * master costs only a share of the connect timeout, not all of it, so the
 * sentinels after it are still asked and squirectl and the C client reach
 * the real master, every time they connect. */
START_TEST(a_hung_master_named_by_a_stale_sentinel_is_passed_over)
{
    alarm(60);
    int port;
    int fd = sqt_silent_server(&port);
    sqt_redis stale;
    sqt_sentinel_start(&stale, MASTER, port); /* alone: it never fails over */
    char list[200];
    snprintf(list, sizeof list, "127.0.0.1:%d,%s", stale.port, sentinels);
    redisContext *sc = sqt_redis_connect(&stale);
    redisReply *r = sqt_cmd(sc, "SENTINEL get-master-addr-by-name %s", MASTER);
    ck_assert_int_eq(atoi(r->element[1]->str), port);
    freeReplyObject(r);
    redisFree(sc);
    char *out;
    double t0 = sqt_now();
    int rc = sqt_sh("redis://" MASTER "/0", &out,
                    "SQUIRE_REDIS_SENTINELS='%s' timeout -s KILL 30 '%s' stats 2>&1", list,
                    SQ_TEST_SQUIRECTL);
    double took = sqt_now() - t0;
    ck_assert_msg(rc == 0 && strstr(out, "Processed:") != NULL, "%d after %.1f s: %s", rc, took,
                  out);
    ck_assert_msg(took < 5 + 2.5, "squirectl took %.1f s", took);
    free(out);
    setenv("SQUIRE_REDIS_SENTINELS", list, 1);
    sq_error err = {0};
    sq_client *c = sq_client_new("redis://" MASTER "/0", &err);
    ck_assert_msg(c != NULL, "%s", err.message);
    json_t *args = json_array();
    char jid[25];
    rc = sq_push(c, "NoopJob", args, NULL, jid, &err);
    json_decref(args);
    sq_client_free(c);
    setenv("SQUIRE_REDIS_SENTINELS", sentinels, 1);
    ck_assert_msg(rc == 0, "sq_push: %s", err.message);
    ck_assert_int_eq(sqt_int(C, "LLEN queue:default"), 1);
    sqt_redis_stop(&stale);
    close(fd);
    alarm(0);
}
END_TEST

/* A sentinel answering an address that is no address (port 0): the error
 * says what it answered, not nothing. */
START_TEST(a_sentinel_naming_no_address_is_reported)
{
    int port;
    pid_t peer = sqt_reply_server("*2\r\n$9\r\n127.0.0.1\r\n$1\r\n0\r\n", &port);
    char *out;
    int rc = sqt_sh("redis://" MASTER "/0", &out,
                    "SQUIRE_REDIS_SENTINELS=127.0.0.1:%d timeout -s KILL 30 '%s' stats 2>&1", port,
                    SQ_TEST_SQUIRECTL);
    ck_assert_msg(rc == 1 && strstr(out, "127.0.0.1:0") != NULL &&
                      strstr(out, "(sentinel 127.0.0.1:") != NULL,
                  "%d %s", rc, out);
    free(out);
    sqt_trickle_stop(peer);
}
END_TEST

/* ---- the connect timeout bounds the whole discovery ----------------------- */

#define MARGIN 2.5

/* Three sentinels that accept and never answer, or answer a byte a second
 * forever: squirectl gives up within its 5 s in all (not 5 s per sentinel),
 * the C client within its 3 s, each naming what timed out. */
START_TEST(hung_sentinels_are_given_up_on_within_the_connect_timeout)
{
    alarm(60); /* the old code's C client hangs on trickling sentinels */
    for (int trickle = 0; trickle < 2; trickle++) {
        int fds[3] = {-1, -1, -1}, port;
        pid_t peers[3] = {0, 0, 0};
        char list[128];
        size_t n = 0;
        for (int i = 0; i < 3; i++) {
            if (trickle)
                peers[i] = sqt_trickle_server("+", 1, 'O', &port);
            else
                fds[i] = sqt_silent_server(&port);
            n += (size_t)snprintf(list + n, sizeof list - n, "%s127.0.0.1:%d", i ? "," : "", port);
        }
        char *out;
        double t0 = sqt_now();
        int rc = sqt_sh("redis://:s3cret-pw@" MASTER "/0", &out,
                        "SQUIRE_REDIS_SENTINELS='%s' timeout -s KILL 40 '%s' stats 2>&1", list,
                        SQ_TEST_SQUIRECTL);
        double took = sqt_now() - t0;
        ck_assert_msg(rc == 1, "%s: exit %d after %.1f s: %s", list, rc, took, out);
        ck_assert_msg(took < 5 + MARGIN, "%s: squirectl took %.1f s (bound 5 s): %s", list, took,
                      out);
        ck_assert_msg(strstr(out, "no sentinel gave the master") != NULL &&
                          strstr(out, "(sentinel 127.0.0.1:") != NULL &&
                          strstr(out, "timed out") != NULL,
                      "%s", out);
        ck_assert_msg(strstr(out, "s3cret-pw") == NULL, "the password leaked: %s", out);
        free(out);

        setenv("SQUIRE_REDIS_SENTINELS", list, 1);
        sq_error err = {0};
        sq_client *c = sq_client_new("redis://" MASTER "/0", &err);
        ck_assert_msg(c != NULL, "%s", err.message);
        json_t *args = json_array();
        char jid[25];
        t0 = sqt_now();
        rc = sq_push(c, "NoopJob", args, NULL, jid, &err);
        took = sqt_now() - t0;
        json_decref(args);
        sq_client_free(c);
        ck_assert_msg(rc != 0, "sq_push succeeded");
        ck_assert_msg(took < 3 + MARGIN, "%s: sq_push took %.1f s (bound 3 s): %s", list, took,
                      err.message);
        ck_assert_msg(strstr(err.message, "timed out") != NULL, "%s", err.message);
        for (int i = 0; i < 3; i++) {
            if (fds[i] >= 0)
                close(fds[i]);
            if (peers[i] > 0)
                sqt_trickle_stop(peers[i]);
        }
    }
    alarm(0);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("sentinel");
    TCase *tc = tcase_create("sentinel");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 180);
    tcase_add_test(tc, squire_follows_the_master_through_a_failover);
    tcase_add_test(tc, squire_leaves_a_demoted_master);
    tcase_add_test(tc, an_unknown_master_name_is_reported);
    tcase_add_test(tc, a_stale_sentinel_listed_first_is_passed_over);
    tcase_add_test(tc, a_silent_sentinel_listed_first_is_passed_over);
    tcase_add_test(tc, a_hung_master_named_by_a_stale_sentinel_is_passed_over);
    suite_add_tcase(s, tc);
    tc = tcase_create("deadlines");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, hung_sentinels_are_given_up_on_within_the_connect_timeout);
    tcase_add_test(tc, a_sentinel_naming_no_address_is_reported);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return sqt_run(suite());
}
