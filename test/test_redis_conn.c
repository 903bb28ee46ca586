/*
 * test_redis_conn.c: how squire connects: timeouts against a server that
 * never answers, and TLS (rediss://) against real servers started with
 * certificates the test makes with openssl, with jobs pushed by the real
 * Sidekiq Ruby client.
 *
 * TLS servers keep a plain port too (R.url) for the test's own checks; the
 * processes under test get only the rediss:// URL.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "itest.h"

#define PASSWORD "s3cret-pw"

static char certs[256];

static void no_secret(const char *text)
{
    ck_assert_msg(strstr(text, PASSWORD) == NULL, "the password leaked: %s", text);
}

/* ---- timeouts ------------------------------------------------------------ */

/* The bound a connect must keep, in seconds, plus a margin for a loaded
 * machine. */
#define MARGIN 2.5

/* squirectl stats at url fails within its 5 s connect timeout, saying what,
 * naming the server and not the password. */
static void squirectl_gives_up(const char *url, const char *what)
{
    char *out;
    double t0 = sqt_now();
    int rc = sqt_sh(url, &out, "timeout -s KILL 30 '%s' stats 2>&1", SQ_TEST_SQUIRECTL);
    double took = sqt_now() - t0;
    ck_assert_msg(rc == 1, "%s: squirectl exited %d after %.1f s: %s", url, rc, took, out);
    ck_assert_msg(took < 5 + MARGIN, "%s: squirectl took %.1f s (bound 5 s)", url, took);
    ck_assert_msg(strstr(out, what) != NULL && strstr(out, "timed out") != NULL, "%s: %s", url,
                  out);
    ck_assert_msg(strstr(out, "REDACTED@127.0.0.1") != NULL, "names no server: %s", out);
    no_secret(out);
    free(out);
}

START_TEST(squirectl_gives_up_on_a_silent_server)
{
    int port;
    int fd = sqt_silent_server(&port);
    static const char *const schemes[] = {"redis", "rediss"};
    for (size_t i = 0; i < 2; i++) {
        char url[128];
        snprintf(url, sizeof url, "%s://:" PASSWORD "@127.0.0.1:%d/0", schemes[i], port);
        squirectl_gives_up(url, "no answer within");
    }
    close(fd);
}
END_TEST

START_TEST(check_gives_up_on_a_silent_server)
{
    int port;
    int fd = sqt_silent_server(&port);
    char url[128], *out;
    snprintf(url, sizeof url, "redis://:" PASSWORD "@127.0.0.1:%d/0", port);
    double t0 = sqt_now();
    int rc = sqt_sh(url, &out, "SQUIRE_ALLOW_ROOT=1 '%s' --check -r '%s' 2>&1", SQ_TEST_SQUIRE,
                    SQ_TEST_PLUGIN);
    double took = sqt_now() - t0;
    ck_assert_msg(rc != 0, "--check passed against a silent server: %s", out);
    ck_assert_msg(took < 15, "--check took %.1f s", took);
    ck_assert_msg(strstr(out, "no answer within") != NULL, "%s", out);
    no_secret(out);
    free(out);
    close(fd);
}
END_TEST

/* The daemon waits (it may be started before Redis) with a clear message,
 * and a TERM still stops it at once. */
START_TEST(daemon_waits_on_a_silent_server_and_stops_on_term)
{
    int port;
    int fd = sqt_silent_server(&port);
    char url[128];
    snprintf(url, sizeof url, "redis://:" PASSWORD "@127.0.0.1:%d/0", port);
    sqt_proc p;
    const char *argv[] = {"-r", SQ_TEST_PLUGIN, NULL};
    sqt_squire_start(&p, url, argv, NULL);
    ck_assert(sqt_log_wait(&p, "waiting for Redis", 15));
    ck_assert(sqt_log_wait(&p, "no answer within", 1));
    double t0 = sqt_now();
    kill(p.pid, SIGTERM);
    ck_assert_int_eq(sqt_proc_wait(&p, 15), 0);
    ck_assert_msg(sqt_now() - t0 < 10, "stop took %.1f s", sqt_now() - t0);
    char *log = sqt_log_read(&p);
    no_secret(log);
    free(log);
    close(fd);
}
END_TEST

/* Servers that answer the connection's first bytes one a second, forever:
 * a reply to AUTH that never ends (redis://), a TLS record whose body never
 * comes (rediss://). Each read gets a byte within a second, well under the
 * timeout; only a deadline on the whole connect cuts them off. */
static const struct {
    const char *scheme, *prefix;
    size_t len;
    char filler;
    const char *what; /* in the error: what timed out */
} trickles[] = {
    {"redis", "+", 1, 'O', "AUTH: no answer within"},
    {"rediss", "\x16\x03\x03\x40\x00", 5, 'x', "handshake"},
};

/* Start trickle i; its URL (with the password) into url. */
static pid_t start_trickle(size_t i, char *url, size_t size)
{
    int port;
    pid_t peer = sqt_trickle_server(trickles[i].prefix, trickles[i].len, trickles[i].filler, &port);
    snprintf(url, size, "%s://:" PASSWORD "@127.0.0.1:%d/0", trickles[i].scheme, port);
    return peer;
}

START_TEST(squirectl_gives_up_on_a_trickling_server)
{
    for (size_t i = 0; i < sizeof trickles / sizeof trickles[0]; i++) {
        char url[128];
        pid_t peer = start_trickle(i, url, sizeof url);
        squirectl_gives_up(url, trickles[i].what);
        sqt_trickle_stop(peer);
    }
}
END_TEST

/* --check gives up within the daemon's 3 s; the daemon says it waits for
 * Redis within them, goes on trying, and stops on TERM. */
START_TEST(check_and_daemon_give_up_on_a_trickling_server)
{
    for (size_t i = 0; i < sizeof trickles / sizeof trickles[0]; i++) {
        char url[128], *out;
        pid_t peer = start_trickle(i, url, sizeof url);
        double t0 = sqt_now();
        int rc =
            sqt_sh(url, &out, "SQUIRE_ALLOW_ROOT=1 timeout -s KILL 30 '%s' --check -r '%s' 2>&1",
                   SQ_TEST_SQUIRE, SQ_TEST_PLUGIN);
        double took = sqt_now() - t0;
        ck_assert_msg(rc != 0 && rc != 137, "%s: --check exited %d after %.1f s: %s", url, rc, took,
                      out);
        ck_assert_msg(took < 3 + MARGIN, "%s: --check took %.1f s (bound 3 s)", url, took);
        ck_assert_msg(strstr(out, trickles[i].what) != NULL, "%s: %s", url, out);
        no_secret(out);
        free(out);

        sqt_proc p;
        const char *argv[] = {"-r", SQ_TEST_PLUGIN, NULL};
        t0 = sqt_now();
        sqt_squire_start(&p, url, argv, NULL);
        bool waits = sqt_log_wait(&p, "waiting for Redis", 3 + MARGIN + 1);
        took = sqt_now() - t0;
        char *log = sqt_log_read(&p);
        ck_assert_msg(waits, "%s: no \"waiting for Redis\" after %.1f s: %s", url, took, log);
        ck_assert_msg(strstr(log, trickles[i].what) != NULL, "%s: %s", url, log);
        free(log);
        kill(p.pid, SIGTERM);
        ck_assert_int_eq(sqt_proc_wait(&p, 15), 0);
        log = sqt_log_read(&p);
        no_secret(log);
        free(log);
        sqt_trickle_stop(peer);
    }
}
END_TEST

/* A program using the C client: sq_push at url fails within its 3 s
 * connect timeout, saying what, naming the server and not the password. */
static void client_gives_up(const char *url, const char *what)
{
    sq_error err = {0};
    sq_client *c = sq_client_new(url, &err);
    ck_assert_msg(c != NULL, "%s", err.message);
    json_t *args = json_array();
    char jid[25];
    double t0 = sqt_now();
    int rc = sq_push(c, "NoopJob", args, NULL, jid, &err);
    double took = sqt_now() - t0;
    json_decref(args);
    ck_assert_msg(rc != 0, "%s: sq_push succeeded", url);
    ck_assert_msg(took < 3 + MARGIN, "%s: sq_push took %.1f s (bound 3 s)", url, took);
    ck_assert_msg(strstr(err.message, what) != NULL, "%s: %s", url, err.message);
    ck_assert_msg(strstr(err.message, ":REDACTED@127.0.0.1") != NULL, "%s", err.message);
    no_secret(err.message);
    sq_client_free(c);
}

START_TEST(the_c_client_gives_up_on_a_trickling_server)
{
    alarm(30); /* the old code hangs here: fail, not wait for Check's timeout */
    for (size_t i = 0; i < sizeof trickles / sizeof trickles[0]; i++) {
        char url[128];
        pid_t peer = start_trickle(i, url, sizeof url);
        client_gives_up(url, trickles[i].what);
        sqt_trickle_stop(peer);
    }
    alarm(0);
}
END_TEST

/* A db the server does not have (databases 16: 0..15) is a configuration
 * error, like refused credentials: the daemon stops with 78 and says why,
 * instead of waiting for Redis forever; --check fails with 78 too. */
START_TEST(a_db_out_of_range_stops_the_daemon)
{
    char url[128];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/16", R.port);
    sqt_proc p;
    const char *argv[] = {"-r", SQ_TEST_PLUGIN, NULL};
    sqt_squire_start(&p, url, argv, NULL);
    int st = sqt_proc_wait(&p, 15);
    char *log = sqt_log_read(&p);
    ck_assert_msg(st == 78, "exit %d: %s", st, log);
    ck_assert_msg(strstr(log, "SELECT 16: ERR DB index is out of range") != NULL, "%s", log);
    free(log);
    char *out;
    int rc = sqt_sh(url, &out, "SQUIRE_ALLOW_ROOT=1 '%s' --check -r '%s' 2>&1", SQ_TEST_SQUIRE,
                    SQ_TEST_PLUGIN);
    ck_assert_msg(rc == 78 && strstr(out, "out of range") != NULL, "%d %s", rc, out);
    free(out);
}
END_TEST

/* A server that does not know AUTH (renamed away, as some hosts do; a
 * sentinel older than 5.0.1) answers with the command's arguments quoted:
 * the password must not reach squirectl's, --check's or the log's message. */
START_TEST(a_server_without_auth_does_not_echo_the_password)
{
    sqt_redis s;
    sqt_redis_start(&s, "--rename-command AUTH \"\"");
    char url[128], *out;
    snprintf(url, sizeof url, "redis://:" PASSWORD "@127.0.0.1:%d/0", s.port);
    int rc = sqt_sh(url, &out, "'%s' stats 2>&1", SQ_TEST_SQUIRECTL);
    ck_assert_msg(rc == 1 && strstr(out, "AUTH refused: ERR unknown command") != NULL, "%d %s", rc,
                  out);
    no_secret(out);
    free(out);
    rc = sqt_sh(url, &out, "SQUIRE_ALLOW_ROOT=1 '%s' --check -r '%s' 2>&1", SQ_TEST_SQUIRE,
                SQ_TEST_PLUGIN);
    ck_assert_msg(rc == 78 && strstr(out, "AUTH refused") != NULL, "%d %s", rc, out);
    no_secret(out);
    free(out);
    sqt_proc p;
    const char *argv[] = {"-r", SQ_TEST_PLUGIN, NULL};
    sqt_squire_start(&p, url, argv, NULL);
    ck_assert_int_eq(sqt_proc_wait(&p, 15), 78);
    char *log = sqt_log_read(&p);
    ck_assert_msg(strstr(log, "AUTH refused") != NULL, "%s", log);
    no_secret(log);
    free(log);
    sqt_redis_stop(&s);
}
END_TEST

/* Redis at maxclients answers a new connection "-ERR max number of clients
 * reached" and closes it, whatever it was sent: that is the reply AUTH (or
 * SELECT) reads. It is an outage, not refused credentials or a bad db: the
 * daemon waits (and starts once a slot frees), --check says unavailable (69),
 * neither exits 78. */
START_TEST(redis_at_maxclients_is_an_outage_not_bad_credentials)
{
    for (int i = 0; i < 2; i++) { /* the reply AUTH reads; SELECT's (no password) */
        sqt_redis s;
        sqt_redis_start(&s, i == 0 ? "--maxclients 1 --requirepass " PASSWORD : "--maxclients 1");
        char url[128], *out;
        if (i == 0)
            snprintf(url, sizeof url, "redis://:" PASSWORD "@127.0.0.1:%d/0", s.port);
        else
            snprintf(url, sizeof url, "redis://127.0.0.1:%d/1", s.port);
        redisContext *hold = sqt_redis_connect(&s); /* the one slot */
        int rc = sqt_sh(url, &out, "SQUIRE_ALLOW_ROOT=1 '%s' --check -r '%s' 2>&1", SQ_TEST_SQUIRE,
                        SQ_TEST_PLUGIN);
        ck_assert_msg(rc == 69 && strstr(out, "max number of clients") != NULL, "%s: %d %s", url,
                      rc, out);
        no_secret(out);
        free(out);
        sqt_proc p;
        const char *argv[] = {"-r", SQ_TEST_PLUGIN, NULL};
        sqt_squire_start(&p, url, argv, NULL);
        bool waits = sqt_log_wait(&p, "waiting for Redis", 10);
        int st = sqt_proc_wait(&p, 1); /* -1: still running */
        char *log = sqt_log_read(&p);
        ck_assert_msg(waits && st == -1 && strstr(log, "max number of clients") != NULL,
                      "%s: exit %d: %s", url, st, log);
        free(log);
        redisFree(hold);
        if (!sqt_log_wait(&p, "Redis is reachable", 15)) {
            log = sqt_log_read(&p);
            ck_abort_msg("%s: never connected: %s", url, log);
        }
        kill(p.pid, SIGTERM);
        st = sqt_proc_wait(&p, 15);
        log = sqt_log_read(&p);
        ck_assert_msg(st == 0, "%s: exit %d: %s", url, st, log);
        no_secret(log);
        free(log);
        sqt_redis_stop(&s);
    }
}
END_TEST

/* Redis freezes under a running daemon (SIGSTOP: connections stay open,
 * nothing answers) before the beat that flushes the first job's count:
 * every thread times out instead of hanging, work resumes when Redis does,
 * and no count is lost or doubled. */
START_TEST(threads_time_out_and_resume_when_redis_freezes)
{
    sqt_proc p;
    itest_squire(&p, R.url, "5", NULL);
    char jid[25];
    itest_push("OkJob", "[1]", NULL, jid);
    ck_assert_int_eq(sqt_wait_int(C, 1, 10, "SCARD test:done"), 1);
    kill(R.pid, SIGSTOP);
    sqt_sleep(9); /* longer than every command timeout and blocking wait */
    kill(R.pid, SIGCONT);
    ck_assert_msg(sqt_log_wait(&p, "no answer within", 5), "no timeout was logged");
    itest_push("OkJob", "[2]", NULL, jid);
    ck_assert_int_eq(sqt_wait_int(C, 2, 20, "SCARD test:done"), 2);
    /* the heartbeat is back too: the process is listed and fresh */
    double beat = 0;
    for (double until = sqt_now() + 10; sqt_now() < until; sqt_sleep(0.2)) {
        redisReply *r = sqt_cmd(C, "SMEMBERS processes");
        if (r->elements == 1) {
            redisReply *b = sqt_cmd(C, "HGET %s beat", r->element[0]->str);
            beat = b->type == REDIS_REPLY_STRING ? strtod(b->str, NULL) : 0;
            freeReplyObject(b);
        }
        freeReplyObject(r);
        if (beat > 0 && (double)time(NULL) - beat < 3)
            break;
    }
    ck_assert_msg(beat > 0 && (double)time(NULL) - beat < 3, "no fresh heartbeat (%.1f)", beat);
    /* Each job is counted once in stat:processed (the Web UI's Processed),
     * though the flush of the first one timed out, and Redis ran it, and any
     * retry that reached it meanwhile, when it woke. */
    ck_assert_int_eq(sqt_wait_int(C, 2, 10, "GET stat:processed"), 2);
    itest_stop(&p);
    ck_assert_int_eq(sqt_int(C, "GET stat:processed"), 2);
}
END_TEST

/* ---- TLS ----------------------------------------------------------------- */

static sqt_redis T;      /* the TLS server */
static redisContext *TC; /* plain connection to it, authenticated */
static char tls_url[160];

static void tls_setup(void)
{
    sqt_tempdir(certs, "certs");
    sqt_tls_certs(certs);
}

static void tls_teardown(void)
{
    if (TC)
        redisFree(TC);
    TC = NULL;
    if (T.pid)
        sqt_redis_stop(&T);
}

static void tls_start(const char *cert, const char *extra)
{
    char more[512];
    snprintf(more, sizeof more, "--requirepass " PASSWORD " %s", extra ? extra : "");
    sqt_redis_start_tls(&T, certs, cert, more);
    snprintf(tls_url, sizeof tls_url, "rediss://:" PASSWORD "@127.0.0.1:%d/0", T.tls_port);
    TC = sqt_redis_connect(&T);
    redisReply *r = sqt_cmd(TC, "AUTH " PASSWORD);
    ck_assert_int_ne(r->type, REDIS_REPLY_ERROR);
    freeReplyObject(r);
}

/* A config file with these lines (and a fast poller and heartbeat). */
static const char *tls_config(const char *lines)
{
    char yaml[1024];
    snprintf(yaml, sizeof yaml, ":poll_interval_average: 0.2\n:beat_interval: 1\n%s",
             lines ? lines : "");
    return itest_config(yaml);
}

/* Jobs from Sidekiq's Ruby client over rediss:// (verify: the env names the
 * Ruby client's ssl_params) reach squire over rediss://: workers, poller and
 * heartbeat all on TLS. */
static void run_sidekiq_jobs_over_tls(const char *config, const char *const *env,
                                      const char *shell_env)
{
    sqt_proc p;
    const char *argv[] = {"-C", config, "-r", SQ_TEST_PLUGIN, "-c", "2", NULL};
    sqt_squire_start(&p, tls_url, argv, env);
    ck_assert_msg(sqt_log_wait(&p, "starting", 10), "squire did not start");
    char *out;
    for (int i = 0; i < 3; i++) {
        int rc = sqt_ruby(tls_url, &out, "sidekiq.rb", "push NoopJob '[1, \"two\"]'");
        ck_assert_msg(rc == 0 && strstr(out, "\"jid\"") != NULL, "sidekiq push: %d %s", rc, out);
        free(out);
    }
    /* a scheduled job: the poller moves it over TLS */
    int rc =
        sqt_sh(tls_url, &out, "%s '%s' push NoopJob --in 1 2>&1", shell_env, SQ_TEST_SQUIRECTL);
    ck_assert_msg(rc == 0, "squirectl push: %s", out);
    free(out);
    ck_assert_int_eq(sqt_wait_int(TC, 4, 20, "GET stat:processed"), 4);
    ck_assert_int_eq(sqt_int(TC, "LLEN queue:default"), 0);
    ck_assert_int_eq(sqt_int(TC, "ZCARD schedule"), 0);
    ck_assert_int_eq(sqt_wait_int(TC, 1, 10, "SCARD processes"), 1);
    kill(p.pid, SIGTERM);
    ck_assert_int_eq(sqt_proc_wait(&p, 30), 0);
    char *log = sqt_log_read(&p);
    ck_assert_msg(strstr(log, "rediss://:REDACTED@127.0.0.1") != NULL, "%s", log);
    no_secret(log);
    free(log);
}

/* Heroku's setting: verification off (self-signed certificates). */
START_TEST(sidekiq_jobs_run_over_tls_with_verification_off)
{
    tls_start("server", NULL);
    setenv("SQT_SSL_VERIFY", "none", 1);
    const char *env[] = {"SQUIRE_REDIS_SSL_VERIFY_MODE=none", NULL};
    run_sidekiq_jobs_over_tls(tls_config(NULL), env, "SQUIRE_REDIS_SSL_VERIFY_MODE=none");
    /* and squirectl, the same way */
    char *out;
    int rc = sqt_sh(tls_url, &out, "SQUIRE_REDIS_SSL_VERIFY_MODE=none '%s' stats 2>&1",
                    SQ_TEST_SQUIRECTL);
    ck_assert_msg(rc == 0 && strstr(out, "Processed: 4") != NULL, "%d %s", rc, out);
    free(out);
}
END_TEST

/* Verification on, against the CA in redis.ssl_ca_file; squirectl and
 * --check over TLS too. */
START_TEST(sidekiq_jobs_run_over_tls_with_a_ca_file)
{
    tls_start("server", NULL);
    char ca[320], lines[400];
    snprintf(ca, sizeof ca, "%s/ca.crt", certs);
    setenv("SQT_SSL_CA_FILE", ca, 1);
    snprintf(lines, sizeof lines, "redis:\n  ssl_ca_file: %s\n", ca);
    const char *config = tls_config(lines);
    char shell_env[400];
    snprintf(shell_env, sizeof shell_env, "SQUIRE_REDIS_SSL_CA_FILE='%s'", ca);
    run_sidekiq_jobs_over_tls(config, NULL, shell_env);
    char *out;
    int rc = sqt_sh(tls_url, &out, "SQUIRE_REDIS_SSL_CA_FILE='%s' '%s' stats 2>&1", ca,
                    SQ_TEST_SQUIRECTL);
    ck_assert_msg(rc == 0 && strstr(out, "Processed: 4") != NULL, "%d %s", rc, out);
    free(out);
    rc = sqt_sh(tls_url, &out, "SQUIRE_ALLOW_ROOT=1 '%s' --check -C '%s' -r '%s' 2>&1",
                SQ_TEST_SQUIRE, config, SQ_TEST_PLUGIN);
    ck_assert_msg(rc == 0 && strstr(out, "rediss://:REDACTED@127.0.0.1") != NULL, "%d %s", rc, out);
    no_secret(out);
    free(out);
    /* the name is checked: the URL says 127.0.0.1, the certificate has it */
    rc = sqt_sh(tls_url, &out, "SQUIRE_REDIS_SSL_CA_FILE='%s' '%s' queues 2>&1", ca,
                SQ_TEST_SQUIRECTL);
    ck_assert_msg(rc == 0, "%s", out);
    free(out);
}
END_TEST

/* squire with config exits 78 with a message containing want, naming the
 * URL redacted; --check with it fails the same way. */
static void daemon_refuses(const char *config, const char *want)
{
    sqt_proc p;
    const char *argv[] = {"-C", config, "-r", SQ_TEST_PLUGIN, NULL};
    sqt_squire_start(&p, tls_url, argv, NULL);
    int st = sqt_proc_wait(&p, 20);
    char *log = sqt_log_read(&p);
    ck_assert_msg(st == 78, "exit %d: %s", st, log);
    ck_assert_msg(strstr(log, "TLS to rediss://:REDACTED@127.0.0.1") != NULL, "%s", log);
    ck_assert_msg(strstr(log, want) != NULL, "%s", log);
    no_secret(log);
    free(log);
    char *out;
    int rc = sqt_sh(tls_url, &out, "SQUIRE_ALLOW_ROOT=1 '%s' --check -C '%s' -r '%s' 2>&1",
                    SQ_TEST_SQUIRE, config, SQ_TEST_PLUGIN);
    ck_assert_msg(rc != 0 && strstr(out, want) != NULL, "%d %s", rc, out);
    no_secret(out);
    free(out);
}

/* Verification is on by default: the system store does not know the test
 * CA, and a wrong CA file does not either. Clear message, exit 78, no
 * password anywhere. */
START_TEST(an_unknown_ca_is_refused_clearly)
{
    tls_start("server", NULL);
    char lines[400];
    daemon_refuses(tls_config(NULL), "unknown CA"); /* the system store */
    snprintf(lines, sizeof lines, "redis:\n  ssl_ca_file: %s/wrongca.crt\n", certs);
    daemon_refuses(tls_config(lines), "unknown CA");
    char *out;
    int rc = sqt_sh(tls_url, &out, "SQUIRE_REDIS_SSL_CA_FILE='%s/wrongca.crt' '%s' stats 2>&1",
                    certs, SQ_TEST_SQUIRECTL);
    ck_assert_msg(rc != 0 && strstr(out, "unknown CA") != NULL, "%d %s", rc, out);
    no_secret(out);
    free(out);
    /* a CA directory that is not there is named, not taken for an unknown CA */
    rc = sqt_sh(tls_url, &out, "SQUIRE_REDIS_SSL_CA_PATH='%s/nodir' '%s' stats 2>&1", certs,
                SQ_TEST_SQUIRECTL);
    ck_assert_msg(rc != 0 && strstr(out, "cannot load ssl_ca_path") != NULL &&
                      strstr(out, "No such file or directory") != NULL,
                  "%d %s", rc, out);
    free(out);
    ck_assert_int_eq(sqt_int(TC, "DBSIZE"), 0);
}
END_TEST

/* A certificate from the right CA for another name. */
START_TEST(a_wrong_server_name_is_refused_clearly)
{
    tls_start("wrongname", NULL);
    char ca[320], lines[400];
    snprintf(ca, sizeof ca, "%s/ca.crt", certs);
    snprintf(lines, sizeof lines, "redis:\n  ssl_ca_file: %s\n", ca);
    daemon_refuses(tls_config(lines), "name mismatch: the server's certificate is not for this "
                                      "host (set redis.ssl_server_name / "
                                      "SQUIRE_REDIS_SSL_SERVER_NAME to the name it carries) "
                                      "(checked name \"127.0.0.1\")");
    char *out;
    int rc = sqt_sh(tls_url, &out, "SQUIRE_REDIS_SSL_CA_FILE='%s' '%s' stats 2>&1", ca,
                    SQ_TEST_SQUIRECTL);
    ck_assert_msg(rc != 0 && strstr(out, "name mismatch") != NULL, "%d %s", rc, out);
    free(out);
    /* the name the certificate carries, given as ssl_server_name, passes */
    rc = sqt_sh(tls_url, &out,
                "SQUIRE_REDIS_SSL_CA_FILE='%s' SQUIRE_REDIS_SSL_SERVER_NAME=wrong.example "
                "'%s' stats 2>&1",
                ca, SQ_TEST_SQUIRECTL);
    ck_assert_msg(rc == 0, "%d %s", rc, out);
    free(out);
}
END_TEST

/* A server that requires client certificates: with ssl_cert/ssl_key the
 * C client pushes; without them the connection is refused. */
START_TEST(client_certificates_are_presented)
{
    tls_start("server", "--tls-auth-clients yes");
    char env[1024];
    snprintf(env, sizeof env,
             "SQUIRE_REDIS_SSL_CA_FILE='%s/ca.crt' SQUIRE_REDIS_SSL_CERT='%s/client.crt' "
             "SQUIRE_REDIS_SSL_KEY='%s/client.key'",
             certs, certs, certs);
    char *out;
    int rc = sqt_sh(tls_url, &out, "%s '%s' push NoopJob 2>&1", env, SQ_TEST_SQUIRECTL);
    ck_assert_msg(rc == 0, "%d %s", rc, out);
    free(out);
    ck_assert_int_eq(sqt_int(TC, "LLEN queue:default"), 1);
    rc = sqt_sh(tls_url, &out, "SQUIRE_REDIS_SSL_CA_FILE='%s/ca.crt' '%s' push NoopJob 2>&1", certs,
                SQ_TEST_SQUIRECTL);
    ck_assert_msg(rc != 0, "pushed without a client certificate: %s", out);
    no_secret(out);
    free(out);
    ck_assert_int_eq(sqt_int(TC, "LLEN queue:default"), 1);
    /* a key that does not exist is named */
    rc = sqt_sh(tls_url, &out,
                "SQUIRE_REDIS_SSL_CERT='%s/client.crt' SQUIRE_REDIS_SSL_KEY=/nonexistent.key "
                "'%s' stats 2>&1",
                certs, SQ_TEST_SQUIRECTL);
    ck_assert_msg(rc != 0 && strstr(out, "cannot load ssl_key /nonexistent.key") != NULL, "%s",
                  out);
    free(out);
    /* the key's PEM text in the variable (as config vars often hold it) is
     * refused without being shown, by squirectl and by the daemon */
    char *key_path, *key_body;
    ck_assert_int_gt(asprintf(&key_path, "%s/client.key", certs), 0);
    char *key = sqt_file_read(key_path);
    ck_assert_ptr_nonnull(strstr(key, "-----BEGIN"));
    key_body = strchr(key, '\n') + 1;
    key_body[20] = '\0'; /* the first 20 bytes of the secret */
    rc = sqt_sh(tls_url, &out,
                "SQUIRE_REDIS_SSL_CERT='%s/client.crt' SQUIRE_REDIS_SSL_KEY=\"$(cat '%s')\" "
                "'%s' stats 2>&1",
                certs, key_path, SQ_TEST_SQUIRECTL);
    ck_assert_msg(rc != 0 && strstr(out, "ssl_key") != NULL, "%d %s", rc, out);
    ck_assert_msg(strstr(out, key_body) == NULL, "the key leaked: %s", out);
    free(out);
    rc = sqt_sh(tls_url, &out,
                "SQUIRE_ALLOW_ROOT=1 SQUIRE_REDIS_SSL_CERT='%s/client.crt' "
                "SQUIRE_REDIS_SSL_KEY=\"$(cat '%s')\" '%s' --check -r '%s' 2>&1",
                certs, key_path, SQ_TEST_SQUIRE, SQ_TEST_PLUGIN);
    ck_assert_msg(rc == 78 && strstr(out, "ssl_key") != NULL, "%d %s", rc, out);
    ck_assert_msg(strstr(out, key_body) == NULL, "the key leaked: %s", out);
    free(out);
    free(key);
    free(key_path);
}
END_TEST

/* A server that requires client certificates, and squire has none: over
 * TLS 1.3 the handshake completes on squire's side and the server's alert
 * (certificate required) comes with the answer to AUTH. That is a TLS
 * configuration error like an unknown CA: the daemon exits 78 saying so, not
 * "waiting for Redis: Server closed the connection" forever. */
START_TEST(a_refused_client_certificate_stops_the_daemon)
{
    tls_start("server", "--tls-auth-clients yes");
    char lines[400];
    snprintf(lines, sizeof lines, "redis:\n  ssl_ca_file: %s/ca.crt\n", certs);
    const char *config = tls_config(lines);
    sqt_proc p;
    const char *argv[] = {"-C", config, "-r", SQ_TEST_PLUGIN, NULL};
    sqt_squire_start(&p, tls_url, argv, NULL);
    int st = sqt_proc_wait(&p, 10);
    char *log = sqt_log_read(&p);
    if (st == -1)
        sqt_proc_stop(&p, SIGKILL);
    ck_assert_msg(st == 78, "exit %d: %s", st, log);
    ck_assert_msg(strstr(log, "rediss://:REDACTED@127.0.0.1") != NULL &&
                      strstr(log, "client certificate") != NULL,
                  "%s", log);
    no_secret(log);
    free(log);
    char *out;
    int rc = sqt_sh(tls_url, &out, "SQUIRE_ALLOW_ROOT=1 '%s' --check -C '%s' -r '%s' 2>&1",
                    SQ_TEST_SQUIRE, config, SQ_TEST_PLUGIN);
    ck_assert_msg(rc == 78 && strstr(out, "client certificate") != NULL, "%d %s", rc, out);
    no_secret(out);
    free(out);
}
END_TEST

/* Redis at maxclients closes a new connection as soon as it accepts it; over
 * TLS the client is writing its handshake by then. squirectl and a program
 * using the C client (neither ignores SIGPIPE) get a clear error instead of
 * being killed by SIGPIPE. */
START_TEST(a_server_that_closes_at_once_is_an_error_not_a_signal)
{
    tls_start("server", "--maxclients 1"); /* TC holds the one slot */
    char ca[320], env[400];
    snprintf(ca, sizeof ca, "%s/ca.crt", certs);
    snprintf(env, sizeof env, "SQUIRE_REDIS_SSL_CA_FILE='%s'", ca);
    for (int i = 0; i < 5; i++) {
        char *out;
        int rc = sqt_sh(tls_url, &out, "%s '%s' stats 2>&1", env, SQ_TEST_SQUIRECTL);
        ck_assert_msg(rc == 1, "squirectl exited %d: %s", rc, out);
        ck_assert_msg(strstr(out, "TLS to rediss://:REDACTED@127.0.0.1") != NULL, "%s", out);
        no_secret(out);
        free(out);
    }
    /* the C client, in this process (SIGPIPE at its default) */
    setenv("SQUIRE_REDIS_SSL_CA_FILE", ca, 1);
    for (int i = 0; i < 5; i++) {
        sq_error err = {0};
        sq_client *c = sq_client_new(tls_url, &err);
        ck_assert_msg(c != NULL, "%s", err.message);
        char jid[25];
        json_t *args = json_array();
        ck_assert_int_ne(sq_push(c, "NoopJob", args, NULL, jid, &err), 0);
        json_decref(args);
        ck_assert_msg(strstr(err.message, "TLS to rediss://:REDACTED@") != NULL, "%s", err.message);
        sq_client_free(c);
    }
    unsetenv("SQUIRE_REDIS_SSL_CA_FILE");
}
END_TEST

/* A server that completes the TLS handshake, then answers AUTH a byte a
 * second, each in a TLS record of its own: squirectl and the C client give
 * up within their connect timeouts all the same. */
START_TEST(a_reply_trickled_over_tls_is_cut_off)
{
    alarm(60); /* the old code hangs in both */
    int port;
    pid_t peer = sqt_trickle_tls_server(certs, "+", 1, 'O', &port);
    char url[128], ca[320];
    snprintf(url, sizeof url, "rediss://:" PASSWORD "@127.0.0.1:%d/0", port);
    snprintf(ca, sizeof ca, "%s/ca.crt", certs);
    setenv("SQUIRE_REDIS_SSL_CA_FILE", ca, 1);
    squirectl_gives_up(url, "AUTH: no answer within");
    client_gives_up(url, "AUTH: no answer within");
    unsetenv("SQUIRE_REDIS_SSL_CA_FILE");
    sqt_trickle_stop(peer);
    alarm(0);
}
END_TEST

/* The harness runs the server scripts/test asks for ($SQ_REDIS_SERVER), and
 * --check names it. */
START_TEST(check_names_the_server_the_harness_runs)
{
    char *out;
    int rc = sqt_sh(R.url, &out, "SQUIRE_ALLOW_ROOT=1 '%s' --check -r '%s' 2>&1", SQ_TEST_SQUIRE,
                    SQ_TEST_PLUGIN);
    bool valkey = strstr(sqt_redis_server(), "valkey") != NULL;
    ck_assert_msg(rc == 0, "%s", out);
    ck_assert_msg(strstr(out, valkey ? ": Valkey 8." : ": Redis 7.") != NULL, "%s: %s",
                  sqt_redis_server(), out);
    free(out);
}
END_TEST

/* rediss:// to a port that speaks plain Redis. */
START_TEST(tls_to_a_plain_port_fails_clearly)
{
    char url[128], *out;
    snprintf(url, sizeof url, "rediss://127.0.0.1:%d/0", R.port);
    double t0 = sqt_now();
    int rc =
        sqt_sh(url, &out, "SQUIRE_REDIS_SSL_VERIFY_MODE=none '%s' stats 2>&1", SQ_TEST_SQUIRECTL);
    ck_assert_msg(rc != 0 && strstr(out, "handshake") != NULL, "%d %s", rc, out);
    ck_assert_msg(sqt_now() - t0 < 15, "took %.1f s", sqt_now() - t0);
    free(out);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("redis_conn");
    TCase *tc = tcase_create("timeouts");
    tcase_add_checked_fixture(tc, itest_setup, itest_teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, squirectl_gives_up_on_a_silent_server);
    tcase_add_test(tc, check_gives_up_on_a_silent_server);
    tcase_add_test(tc, daemon_waits_on_a_silent_server_and_stops_on_term);
    tcase_add_test(tc, squirectl_gives_up_on_a_trickling_server);
    tcase_add_test(tc, check_and_daemon_give_up_on_a_trickling_server);
    tcase_add_test(tc, the_c_client_gives_up_on_a_trickling_server);
    tcase_add_test(tc, threads_time_out_and_resume_when_redis_freezes);
    tcase_add_test(tc, tls_to_a_plain_port_fails_clearly);
    tcase_add_test(tc, a_db_out_of_range_stops_the_daemon);
    tcase_add_test(tc, a_server_without_auth_does_not_echo_the_password);
    tcase_add_test(tc, redis_at_maxclients_is_an_outage_not_bad_credentials);
    tcase_add_test(tc, check_names_the_server_the_harness_runs);
    suite_add_tcase(s, tc);
    tc = tcase_create("tls");
    tcase_add_checked_fixture(tc, tls_setup, tls_teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, sidekiq_jobs_run_over_tls_with_verification_off);
    tcase_add_test(tc, sidekiq_jobs_run_over_tls_with_a_ca_file);
    tcase_add_test(tc, an_unknown_ca_is_refused_clearly);
    tcase_add_test(tc, a_wrong_server_name_is_refused_clearly);
    tcase_add_test(tc, client_certificates_are_presented);
    tcase_add_test(tc, a_refused_client_certificate_stops_the_daemon);
    tcase_add_test(tc, a_server_that_closes_at_once_is_an_error_not_a_signal);
    tcase_add_test(tc, a_reply_trickled_over_tls_is_cut_off);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return sqt_run(suite());
}
