/*
 * test_config.c: sidekiq.yml, flags, environment variables and Redis URLs.
 *
 * Bad files are data: test/fixtures/config/<case>.yml plus one row of
 * bad_fixtures[] (expected line and message). Everything else feeds YAML text
 * to sq_config_apply_yaml or argv to sq_config_load. The environment is a
 * fake table; each test runs in a fresh temporary directory so that the
 * default config path is under the test's control.
 */
#include <check.h>
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "config.h"
#include "redis.h"

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

/* ---- harness ------------------------------------------------------------- */

static char fixture_dir[PATH_MAX];
static char start_dir[PATH_MAX];
static char tmp_dir[64];

static sq_config cfg;
static sq_error err;
static sq_action action;

static struct {
    const char *name, *value;
} fake_env[16];
static size_t fake_env_n;

static const char *fake_getenv(const char *name)
{
    for (size_t i = 0; i < fake_env_n; i++)
        if (strcmp(fake_env[i].name, name) == 0)
            return fake_env[i].value;
    return NULL;
}

static void env_set(const char *name, const char *value)
{
    ck_assert_uint_lt(fake_env_n, 16);
    fake_env[fake_env_n].name = name;
    fake_env[fake_env_n].value = value;
    fake_env_n++;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

static void setup(void)
{
    fake_env_n = 0;
    memset(&err, 0, sizeof err);
    action = (sq_action)-1;
    sq_config_init(&cfg);
    snprintf(tmp_dir, sizeof tmp_dir, "/tmp/sq_test_config_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmp_dir));
    ck_assert_int_eq(chdir(tmp_dir), 0);
}

static void teardown(void)
{
    sq_config_destroy(&cfg);
    if (chdir(start_dir) != 0)
        abort();
    nftw(tmp_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void write_file(const char *path, const char *text, size_t len)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(text, 1, len, f), len);
    ck_assert_int_eq(fclose(f), 0);
}

static void write_text(const char *path, const char *text)
{
    write_file(path, text, strlen(text));
}

static const char *fixture(const char *name)
{
    static char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s", fixture_dir, name);
    return path;
}

/* Apply YAML text as "test.yml" in environment env. */
static int yml_env(const char *text, const char *env)
{
    return sq_config_apply_yaml(&cfg, "test.yml", text, strlen(text), env, fake_getenv, &err);
}

static int yml(const char *text)
{
    return yml_env(text, "development");
}

static int load_args(const char **args)
{
    char *argv[64];
    int argc = 0;
    while (args[argc] != NULL && argc < 63) {
        argv[argc] = (char *)args[argc];
        argc++;
    }
    argv[argc] = NULL;
    return sq_config_load(&cfg, argc, argv, fake_getenv, &action, &err);
}

#define LOAD(...) load_args((const char *[]){"squire", __VA_ARGS__, NULL})

#define ASSERT_ERR(rc, want_code, substr)                                                          \
    do {                                                                                           \
        ck_assert_int_eq((rc), -1);                                                                \
        ck_assert_msg(err.code == (want_code), "code %d, want %d (%s)", err.code, (want_code),     \
                      err.message);                                                                \
        ck_assert_msg(strstr(err.message, (substr)) != NULL, "message \"%s\" lacks \"%s\"",        \
                      err.message, (substr));                                                      \
    } while (0)

#define ASSERT_OK(rc) ck_assert_msg((rc) == 0, "failed: %s", err.message)

static bool has_warning(const char *substr)
{
    for (size_t i = 0; i < cfg.nwarnings; i++)
        if (strstr(cfg.warnings[i], substr) != NULL)
            return true;
    return false;
}

static void assert_queue(size_t i, const char *name, int weight)
{
    ck_assert_uint_gt(cfg.nqueues, i);
    ck_assert_str_eq(cfg.queues[i].name, name);
    ck_assert_int_eq(cfg.queues[i].weight, weight);
}

/* ---- defaults and ownership ---------------------------------------------- */

START_TEST(test_defaults)
{
    ck_assert_int_eq(cfg.concurrency, SQ_DEFAULT_CONCURRENCY);
    ck_assert_int_eq(cfg.timeout, 25);
    ck_assert_uint_eq(cfg.nqueues, 1);
    assert_queue(0, "default", 0);
    ck_assert_str_eq(cfg.tag, "");
    ck_assert_str_eq(cfg.environment, "development");
    ck_assert_int_eq(cfg.max_retries, 25);
    ck_assert_int_eq(cfg.dead_max_jobs, 10000);
    ck_assert_int_eq(cfg.dead_timeout_in_seconds, 15552000);
    ck_assert_double_eq(cfg.average_scheduled_poll_interval, 5.0);
    ck_assert_double_eq(cfg.poll_interval_average, 0);
    ck_assert_int_eq(cfg.fetch, SQ_FETCH_RELIABLE);
    ck_assert_int_eq(cfg.max_interruptions, 3);
    ck_assert_double_eq(cfg.lease_ttl, 20.0);
    ck_assert_uint_eq(cfg.max_payload_bytes, 1024 * 1024);
    ck_assert_ptr_null(cfg.redis_url);
    ck_assert_ptr_null(cfg.config_path);
    ck_assert(!cfg.verbose);
    ck_assert(!cfg.concurrency_set);
    ck_assert_uint_eq(cfg.nlabels + cfg.nrequires + cfg.nwarnings, 0);
    ASSERT_OK(sq_config_validate(&cfg, &err));
}
END_TEST

START_TEST(test_load_without_file_gives_defaults)
{
    ASSERT_OK(LOAD(NULL));
    ck_assert_int_eq(action, SQ_ACTION_RUN);
    ck_assert_ptr_null(cfg.config_path);
    ck_assert_int_eq(cfg.concurrency, 5);
    assert_queue(0, "default", 0);
    ck_assert_str_eq(cfg.environment, "development");
}
END_TEST

START_TEST(test_destroy_half_built_and_twice)
{
    sq_config c;
    memset(&c, 0, sizeof c);
    sq_config_destroy(&c);
    sq_config_destroy(&c);
    sq_config_destroy(NULL);
    sq_config_init(&c);
    sq_config_destroy(&c);
    sq_config_destroy(&c);
}
END_TEST

START_TEST(test_reapply_replaces_without_leaking)
{
    /* ASan's leak checker fails the run if any replaced string leaks. */
    for (int i = 0; i < 3; i++) {
        ASSERT_OK(yml("tag: one\nlabels: [a, b]\nrequire: [x.so]\nqueues: [q1, q2]\n"
                      "pidfile: p\n"));
        ASSERT_OK(yml("tag: two\nlabels: [c]\nrequire: y.so\nqueues: [q3]\n"));
    }
    ck_assert_str_eq(cfg.tag, "two");
    ck_assert_uint_eq(cfg.nlabels, 1);
    ck_assert_str_eq(cfg.labels[0], "c");
    ck_assert_uint_eq(cfg.nrequires, 1);
    ck_assert_str_eq(cfg.requires[0], "y.so");
    ck_assert_uint_eq(cfg.nqueues, 1);
    ck_assert_uint_eq(cfg.nwarnings, 3);
    ASSERT_OK(LOAD("-g", "three", "-e", "production"));
    ck_assert_str_eq(cfg.tag, "three");
}
END_TEST

/* ---- YAML keys and values ------------------------------------------------- */

START_TEST(test_both_key_spellings)
{
    ASSERT_OK(yml("concurrency: 7\n:timeout: 9\n:verbose: true\nmax_retries: 3\n"));
    ck_assert_int_eq(cfg.concurrency, 7);
    ck_assert(cfg.concurrency_set);
    ck_assert_int_eq(cfg.timeout, 9);
    ck_assert(cfg.verbose);
    ck_assert_int_eq(cfg.max_retries, 3);
    ck_assert_uint_eq(cfg.nwarnings, 0);
}
END_TEST

START_TEST(test_database_section)
{
    ASSERT_OK(yml(":database:\n  url: postgres://u@db/app\n  pool: 3\n  checkout_timeout: 0.5\n"
                  "  connect_timeout: 2\n  statement_timeout: 30\n  application_name: shop\n"));
    ck_assert_str_eq(cfg.db_url, "postgres://u@db/app");
    ck_assert_int_eq(cfg.db_pool, 3);
    ck_assert_double_eq(cfg.db_checkout_timeout, 0.5);
    ck_assert_double_eq(cfg.db_connect_timeout, 2);
    ck_assert_int_eq(cfg.db_statement_timeout, 30);
    ck_assert_str_eq(cfg.db_application_name, "shop");
    sq_config_destroy(&cfg);
    sq_config_init(&cfg);
    memset(&err, 0, sizeof err);
    ck_assert_int_eq(yml(":database:\n  url: x\n  poool: 3\n"), -1);
    ck_assert_int_eq(err.code, SQ_ECONFIG);
    ck_assert_ptr_nonnull(strstr(err.message, ":3: poool: unknown key in database:"));
    sq_config_destroy(&cfg);
    sq_config_init(&cfg);
    memset(&err, 0, sizeof err);
    ck_assert_int_eq(yml(":database: postgres://x\n"), -1);
    ck_assert_ptr_nonnull(strstr(err.message, "a mapping of settings"));
    sq_config_destroy(&cfg);
    sq_config_init(&cfg);
    memset(&err, 0, sizeof err);
    ck_assert_int_eq(yml(":database:\n  pool: many\n"), -1);
    ck_assert_ptr_nonnull(strstr(err.message, "expected an integer"));
}
END_TEST

/* The annotated example in the repository root is a real, loadable file. */
START_TEST(test_example_file_loads)
{
    ck_assert_msg(LOAD("-C", SQ_TEST_SOURCE_DIR "/sidekiq.yml.example") == 0, "%s", err.message);
    ck_assert_int_eq(cfg.timeout, 25);
    ck_assert_uint_eq(cfg.nqueues, 3);
    ck_assert_str_eq(cfg.queues[0].name, "critical");
    ck_assert_int_eq(cfg.queues[0].weight, 3);
    ck_assert_str_eq(cfg.tag, "myapp");
    ck_assert_int_eq(cfg.fetch, SQ_FETCH_RELIABLE);
    ck_assert_int_eq(cfg.max_interruptions, 3);
    ck_assert_double_eq(cfg.beat_interval, 10);
    ck_assert_int_eq(cfg.log_level, 1); /* info */
    ck_assert_int_eq(cfg.db_pool, 10);
    ck_assert_str_eq(cfg.db_application_name, "myapp-workers");
    ck_assert_uint_eq(cfg.nwarnings, 0);
    ck_assert_int_eq(sq_config_validate(&cfg, &err), 0);
}
END_TEST

START_TEST(test_every_key)
{
    ASSERT_OK(yml(":concurrency: 10\n:timeout: 30\n:queues: [a]\n:tag: app\n"
                  ":labels: [x, y]\n:require: [a.so, b.so]\n:verbose: yes\n:max_retries: 0\n"
                  ":dead_max_jobs: 1\n:dead_timeout_in_seconds: 60\n"
                  ":average_scheduled_poll_interval: 0.5\n:poll_interval_average: 15\n"
                  ":fetch: basic\n:max_payload_bytes: 4096\n:max_interruptions: 0\n"
                  ":lease_ttl: 2.5\n"));
    ck_assert_int_eq(cfg.concurrency, 10);
    ck_assert_int_eq(cfg.timeout, 30);
    assert_queue(0, "a", 0);
    ck_assert_str_eq(cfg.tag, "app");
    ck_assert_uint_eq(cfg.nlabels, 2);
    ck_assert_str_eq(cfg.labels[1], "y");
    ck_assert_uint_eq(cfg.nrequires, 2);
    ck_assert_str_eq(cfg.requires[0], "a.so");
    ck_assert(cfg.verbose);
    ck_assert_int_eq(cfg.max_retries, 0);
    ck_assert_int_eq(cfg.dead_max_jobs, 1);
    ck_assert_int_eq(cfg.dead_timeout_in_seconds, 60);
    ck_assert_double_eq(cfg.average_scheduled_poll_interval, 0.5);
    ck_assert_double_eq(cfg.poll_interval_average, 15);
    ck_assert_int_eq(cfg.fetch, SQ_FETCH_BASIC);
    ck_assert_int_eq(cfg.max_interruptions, 0);
    ck_assert_double_eq(cfg.lease_ttl, 2.5);
    ck_assert_uint_eq(cfg.max_payload_bytes, 4096);
    ASSERT_OK(sq_config_validate(&cfg, &err));
}
END_TEST

/* issue 16: the execution-metrics layout; Sidekiq 8's by default */
START_TEST(test_metrics_layout)
{
    ASSERT_OK(yml(":concurrency: 2\n"));
    ck_assert_uint_eq(cfg.metrics, SQ_METRICS_V8);
    static const struct {
        const char *yaml;
        unsigned want;
    } cases[] = {{"metrics: 7\n", SQ_METRICS_V7},
                 {":metrics: \"8\"\n", SQ_METRICS_V8},
                 {"metrics: both\n", SQ_METRICS_V7 | SQ_METRICS_V8},
                 {"metrics: off\n", 0},
                 {"metrics: false\n", 0}};
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        sq_config_destroy(&cfg);
        sq_config_init(&cfg);
        ASSERT_OK(yml(cases[i].yaml));
        ck_assert_msg(cfg.metrics == cases[i].want, "%s", cases[i].yaml);
    }
    sq_config_destroy(&cfg);
    sq_config_init(&cfg);
    ck_assert_int_eq(yml("metrics: [7]\n"), -1);
    ck_assert_int_eq(err.code, SQ_ECONFIG);
}
END_TEST

START_TEST(test_quoted_integers_and_symbols)
{
    ASSERT_OK(yml("concurrency: \"12\"\ntimeout: '8'\nfetch: :reliable\n"
                  "queues:\n  - :critical\n  - - :low\n    - \"2\"\n"));
    ck_assert_int_eq(cfg.concurrency, 12);
    ck_assert_int_eq(cfg.timeout, 8);
    ck_assert_int_eq(cfg.fetch, SQ_FETCH_RELIABLE);
    assert_queue(0, "critical", 0);
    assert_queue(1, "low", 2);
}
END_TEST

START_TEST(test_booleans)
{
    static const char *const on[] = {"true", "yes", "on", "True", "YES", "\"on\""};
    static const char *const off[] = {"false", "no", "off", "False", "NO", "'off'"};
    char text[64];
    for (size_t i = 0; i < 6; i++) {
        snprintf(text, sizeof text, "verbose: %s\n", on[i]);
        ASSERT_OK(yml(text));
        ck_assert(cfg.verbose);
        snprintf(text, sizeof text, "verbose: %s\n", off[i]);
        ASSERT_OK(yml(text));
        ck_assert(!cfg.verbose);
    }
    ASSERT_ERR(yml("verbose: 1\n"), SQ_ECONFIG, "verbose: expected true or false, got \"1\"");
}
END_TEST

START_TEST(test_log_level)
{
    ASSERT_OK(yml("concurrency: 2\n"));
    ck_assert_int_eq(cfg.log_level, 1); /* info: Sidekiq's default */
    const char *names[] = {"debug", "info", "warn", ":error"};
    for (int i = 0; i < 4; i++) {
        char text[64];
        snprintf(text, sizeof text, "log_level: %s\n", names[i]);
        ASSERT_OK(yml(text));
        ck_assert_int_eq(cfg.log_level, i);
    }
    ASSERT_ERR(yml("log_level: WARNING\n"), SQ_ECONFIG,
               "test.yml:1: log_level: expected debug, info, warn or error, got \"WARNING\"");
    err = (sq_error){0}; /* the first error wins: clear the YAML one */
    write_text("c.yml", "log_level: error\n");
    ASSERT_OK(LOAD("-C", "c.yml", "--log-level", "warn"));
    ck_assert_int_eq(cfg.log_level, 2);
    ASSERT_ERR(LOAD("-C", "c.yml", "--log-level=loud"), SQ_EUSAGE,
               "--log-level: expected debug, info, warn or error, got \"loud\"");
}
END_TEST

START_TEST(test_doubles)
{
    ASSERT_OK(yml("average_scheduled_poll_interval: 1e1\npoll_interval_average: .25\n"));
    ck_assert_double_eq(cfg.average_scheduled_poll_interval, 10);
    ck_assert_double_eq(cfg.poll_interval_average, 0.25);
    static const char *const bad[] = {"nan", "inf", "-1", "0", "0x10", "1e999", "5s", "\"\""};
    for (size_t i = 0; i < N_ELEMS(bad); i++) {
        char text[64];
        memset(&err, 0, sizeof err);
        snprintf(text, sizeof text, "poll_interval_average: %s\n", bad[i]);
        ASSERT_ERR(yml(text), SQ_ECONFIG,
                   "test.yml:1: poll_interval_average: expected a number greater than 0, got");
    }
}
END_TEST

START_TEST(test_null_values)
{
    /* null concurrency is unset, as in Sidekiq: RAILS_MAX_THREADS or a flag
     * may still set it (corpus 57), else validation refuses it */
    ASSERT_OK(yml("# c\nconcurrency:\n"));
    ASSERT_ERR(sq_config_validate(&cfg, &err), SQ_ECONFIG,
               "test.yml:2: concurrency: expected an integer from 1 to 1000, got null");
    memset(&err, 0, sizeof err);
    memset(&err, 0, sizeof err);
    /* queues present but null is unset, as in Sidekiq: the default, even over
     * the top level's list when the environment's section says null */
    static const char *const null_queues[] = {"queues: ~\n", ":queues:\n", "queues: null\n",
                                              "queues: [a, b]\nproduction:\n  :queues:\n"};
    for (size_t i = 0; i < N_ELEMS(null_queues); i++) {
        ASSERT_OK(yml_env(null_queues[i], "production"));
        ck_assert_uint_eq(cfg.nqueues, 1);
        ck_assert_str_eq(cfg.queues[0].name, "default");
        ck_assert_int_eq(cfg.queues[0].weight, 0);
    }
    ASSERT_ERR(yml("tag: null\n"), SQ_ECONFIG, "tag: expected a string, got null");
}
END_TEST

START_TEST(test_empty_and_comment_only_text)
{
    ASSERT_OK(yml(""));
    ASSERT_OK(yml("# everything commented out\n# concurrency: 5\n"));
    ASSERT_OK(yml("---\n"));
    ck_assert_int_eq(cfg.concurrency, 5);
}
END_TEST

START_TEST(test_found_values_are_escaped_and_cut)
{
    ASSERT_ERR(yml("tag: \"a\\x1b[31mred\\nline\"\n"), SQ_ECONFIG,
               "got \"a\\x1b[31mred\\x0aline\"");
    ck_assert_ptr_null(strchr(err.message, '\x1b'));
    ck_assert_ptr_null(strchr(err.message, '\n'));
    memset(&err, 0, sizeof err);
    char text[400] = "concurrency: ";
    memset(text + 13, 'x', 300);
    text[313] = '\n';
    text[314] = '\0';
    ASSERT_ERR(yml(text), SQ_ECONFIG, "xxxx\"...");
    ck_assert_uint_lt(strlen(err.message), 150);
}
END_TEST

/* A value quoted in an error never shows a password: the database URL put
 * straight under `database:` (or anywhere else a URL does not belong), a
 * keyword/value string, a Redis URL. */
START_TEST(test_found_values_never_show_a_password)
{
    static const char *const texts[] = {
        ":database: postgresql://app:Sq7pw@db/app\n",
        ":database: <%= 'postgres://app:Sq7pw@db.example.com:5432/app' %>\n",
        ":database:\n  pool: 'host=db password=Sq7pw'\n",
        ":concurrency: redis://:Sq7pw@cache:6379/0\n",
        ":database:\n  url: [postgresql://app:Sq7pw@db/app]\n",
        /* a NUL in the value is refused without showing what precedes it */
        ":concurrency: \"postgresql://app:Sq7pw@db/app\\0x\"\n",
        ":concurrency: \"password=Sq7pw\\0x\"\n",
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        sq_config_destroy(&cfg);
        sq_config_init(&cfg);
        memset(&err, 0, sizeof err);
        ck_assert_int_eq(yml(texts[i]), -1);
        ck_assert_int_eq(err.code, SQ_ECONFIG);
        ck_assert_msg(strstr(err.message, "Sq7pw") == NULL, "%s shows the password: %s", texts[i],
                      err.message);
    }
    /* the same on the command line */
    sq_config_destroy(&cfg);
    sq_config_init(&cfg);
    memset(&err, 0, sizeof err);
    const char *args[] = {"squire", "-c", "postgresql://app:Sq7pw@db/app", NULL};
    ck_assert_int_eq(load_args(args), -1);
    ck_assert_msg(strstr(err.message, "Sq7pw") == NULL, "-c shows the password: %s", err.message);
}
END_TEST

START_TEST(test_nul_byte_in_text)
{
    static const char text[] = "concurrency: 5\ntag: a\0b\n";
    ASSERT_ERR(
        sq_config_apply_yaml(&cfg, "bin.yml", text, sizeof text - 1, NULL, fake_getenv, &err),
        SQ_ECONFIG, "bin.yml:2: contains a NUL byte");
}
END_TEST

START_TEST(test_syntax_error_line_and_column)
{
    ASSERT_ERR(yml("concurrency: 5\ntimeout: 4\n  queues: [a\n"), SQ_ECONFIG,
               "test.yml:3:9: YAML syntax error: mapping values are not allowed in this context");
}
END_TEST

START_TEST(test_top_level_scalar)
{
    ASSERT_ERR(yml("just text\n"), SQ_ECONFIG,
               "test.yml:1: (top level): expected a mapping of settings, got \"just text\"");
}
END_TEST

/* ---- queues --------------------------------------------------------------- */

START_TEST(test_queue_forms)
{
    ASSERT_OK(yml("queues:\n  - critical\n  - [default, 3]\n  - \"low,1\"\n  - [solo]\n"
                  "  - \"spaced,  4 \"\n  - 'a:b.c-d_e'\n  - [zero, 0]\n"));
    ck_assert_uint_eq(cfg.nqueues, 7);
    assert_queue(0, "critical", 0);
    assert_queue(1, "default", 3);
    assert_queue(2, "low", 1);
    assert_queue(3, "solo", 0);
    assert_queue(4, "spaced", 4);
    assert_queue(5, "a:b.c-d_e", 0);
    assert_queue(6, "zero", 0);
}
END_TEST

START_TEST(test_queue_flow_and_block_styles)
{
    ASSERT_OK(yml(":queues: [[critical, 2], default]\n"));
    assert_queue(0, "critical", 2);
    assert_queue(1, "default", 0);
    ASSERT_OK(yml(":queues:\n- - high\n  - 5\n"));
    ck_assert_uint_eq(cfg.nqueues, 1);
    assert_queue(0, "high", 5);
}
END_TEST

START_TEST(test_queue_name_length)
{
    char text[400] = "queues:\n  - ";
    size_t at = strlen(text);
    memset(text + at, 'q', SQ_MAX_QUEUE_NAME);
    memcpy(text + at + SQ_MAX_QUEUE_NAME, "\n", 2);
    ASSERT_OK(yml(text));
    ck_assert_uint_eq(strlen(cfg.queues[0].name), SQ_MAX_QUEUE_NAME);
    memcpy(text + at + SQ_MAX_QUEUE_NAME, "q\n", 3);
    ASSERT_ERR(yml(text), SQ_ECONFIG, "test.yml:2: queues: expected a queue name of");
}
END_TEST

START_TEST(test_queue_4k_name_from_flag)
{
    char name[4097];
    memset(name, 'a', 4096);
    name[4096] = '\0';
    ASSERT_ERR(LOAD("-q", name), SQ_EUSAGE, "-q: expected a queue name of [A-Za-z0-9_:.-]");
}
END_TEST

START_TEST(test_queue_bad_entries)
{
    static const struct {
        const char *text, *want;
    } cases[] = {
        {"queues: [[a, 1, 2]]\n",
         "queues: expected a queue name or [name, weight], got a sequence"},
        {"queues: [[]]\n", "got a sequence"},
        {"queues: [[[a], 1]]\n", "queues: expected a queue name, got a sequence"},
        {"queues: [[a, [1]]]\n", "queues: expected a queue weight, got a sequence"},
        {"queues: [~]\n", "got null"},
        {"queues: [\"a,\"]\n", NULL},
        {"queues: [\",1\"]\n", "expected a queue name of"},
        {"queues: [\"a,1001\"]\n", "expected a queue weight from 0 to 1000, got \"1001\""},
        {"queues: [\"a,b,c\"]\n", "expected a queue weight from 0 to 1000, got \"b,c\""},
        {"queues: [\"a\\tb\"]\n", "got \"a\\x09b\""},
        {"queues: [a, \"a,2\"]\n", "queues: queue \"a\" is listed twice"},
        /* Sidekiq's "q ,2".split(",") keeps the space: its queue is "q ", not "q" */
        {"queues: [\"a ,2\"]\n", "expected a queue name of [A-Za-z0-9_:.-] (at most 255 "
                                 "bytes), got \"a \""},
        {"queues: [\" a\"]\n", "got \" a\""},
        {"queues: [\"a, 2\", \"b,3 \"]\n", NULL},
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        memset(&err, 0, sizeof err);
        if (cases[i].want == NULL)
            ASSERT_OK(yml(cases[i].text));
        else
            ASSERT_ERR(yml(cases[i].text), SQ_ECONFIG, cases[i].want);
    }
}
END_TEST

/* ---- unknown, removed and misspelt keys ---------------------------------- */

START_TEST(test_removed_keys_warn)
{
    ASSERT_OK(yml("concurrency: 5\n:pidfile: tmp/sidekiq.pid\nlogfile: log/sidekiq.log\n"
                  ":strict: false\ndaemon: true\n"));
    ck_assert_uint_eq(cfg.nwarnings, 4);
    ck_assert(has_warning("test.yml:2: pidfile: ignored (removed in Sidekiq 6.0; squire writes "
                          "no pidfile: run it under systemd"));
    ck_assert(has_warning("test.yml:3: logfile: ignored (removed in Sidekiq 6.0; squire logs to "
                          "stdout: let systemd's journal collect it, or redirect it"));
    ck_assert(has_warning("test.yml:4: strict: ignored"));
    ck_assert(has_warning("test.yml:5: daemon: ignored (removed in Sidekiq 6.0; squire stays in "
                          "the foreground: run it under systemd"));
}
END_TEST

START_TEST(test_other_gems_keys_warn)
{
    ASSERT_OK(yml(":scheduler:\n  :schedule:\n    x: {cron: '* * * * *', class: X}\n"
                  ":schedule: {}\n:limits:\n  pdf: 2\ncron: []\n:dynamic: true\n"));
    ck_assert_uint_eq(cfg.nwarnings, 5);
    ck_assert(has_warning("test.yml:1: scheduler: unknown key, ignored"));
    ck_assert(has_warning("test.yml:5: limits: unknown key, ignored"));
    ck_assert(has_warning("test.yml:7: cron: unknown key, ignored"));
}
END_TEST

START_TEST(test_did_you_mean)
{
    static const struct {
        const char *text, *want;
    } cases[] = {
        {"concurency: 5\n", "concurency: unknown key (did you mean concurrency?)"},
        {"queus: [a]\n", "queus: unknown key (did you mean queues?)"},
        {":queue: [a]\n", "queue: unknown key (did you mean queues?)"},
        {"Timeout: 5\n", "Timeout: unknown key (did you mean timeout?)"},
        {"tga: x\n", "tga: unknown key (did you mean tag?)"},
        {"max_retires: 3\n", "did you mean max_retries?"},
        {"verbos: true\n", "did you mean verbose?"},
        {"lables: [a]\n", "did you mean labels?"},
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        memset(&err, 0, sizeof err);
        ASSERT_ERR(yml(cases[i].text), SQ_ECONFIG, cases[i].want);
        ck_assert(strncmp(err.message, "test.yml:1: ", 12) == 0);
    }
}
END_TEST

START_TEST(test_short_unknown_keys_only_warn)
{
    ASSERT_OK(yml("log: x\nfoo: 1\nurl: redis://x\n"));
    ck_assert_uint_eq(cfg.nwarnings, 3);
    ck_assert(has_warning("test.yml:1: log: unknown key, ignored"));
}
END_TEST

START_TEST(test_odd_keys_are_quoted)
{
    ASSERT_OK(yml("\"bad key\\x07\": 1\n"));
    ck_assert(has_warning("test.yml:1: \"bad key\\x07\": unknown key"));
    ASSERT_ERR(yml("[a]: 1\n"), SQ_ECONFIG,
               "test.yml:1: (key): expected a plain key, got a sequence");
}
END_TEST

START_TEST(test_duplicate_keys)
{
    ASSERT_ERR(yml("concurrency: 5\ntimeout: 3\nconcurrency: 6\n"), SQ_ECONFIG,
               "test.yml:3: concurrency: duplicate key (also on line 1)");
    memset(&err, 0, sizeof err);
    ASSERT_ERR(yml(":tag: a\ntag: b\n"), SQ_ECONFIG,
               "test.yml:2: tag: duplicate key (also on line 1)");
    memset(&err, 0, sizeof err);
    ASSERT_ERR(yml("production:\n  timeout: 1\n  :timeout: 2\n"), SQ_ECONFIG,
               "test.yml:3: :timeout: duplicate key (also on line 2)");
    memset(&err, 0, sizeof err);
    ASSERT_ERR(yml("scheduler: 1\nscheduler: 2\n"), SQ_ECONFIG, "duplicate key");
}
END_TEST

/* ---- environments ---------------------------------------------------------- */

START_TEST(test_env_section_merge)
{
    static const char text[] = ":concurrency: 5\n:timeout: 8\n:queues: [a, b]\n:tag: top\n"
                               "production:\n  :concurrency: 20\n  :queues: [c]\n"
                               "staging:\n  :concurrency: 2\n"
                               "development:\n  :tag: dev\n"
                               "test:\n";
    ASSERT_OK(yml_env(text, "production"));
    ck_assert_int_eq(cfg.concurrency, 20);
    ck_assert_int_eq(cfg.timeout, 8);
    ck_assert_uint_eq(cfg.nqueues, 1);
    assert_queue(0, "c", 0);
    ck_assert_str_eq(cfg.tag, "top");
    ck_assert_uint_eq(cfg.nwarnings, 0);
}
END_TEST

START_TEST(test_env_section_other_env)
{
    static const char text[] = "concurrency: 5\nproduction:\n  concurrency: 20\n"
                               ":development:\n  tag: dev\n";
    ASSERT_OK(yml_env(text, "development"));
    ck_assert_int_eq(cfg.concurrency, 5);
    ck_assert_str_eq(cfg.tag, "dev");
}
END_TEST

START_TEST(test_env_section_custom_name_and_null)
{
    ASSERT_OK(yml_env("concurrency: 5\nqa_eu:\n  concurrency: 9\n", "qa_eu"));
    ck_assert_int_eq(cfg.concurrency, 9);
    ASSERT_OK(yml_env("concurrency: 4\nproduction:\n", "production"));
    ck_assert_int_eq(cfg.concurrency, 4);
}
END_TEST

START_TEST(test_env_section_precedes_top_level_order)
{
    /* The section is applied after the whole top level, wherever it appears. */
    ASSERT_OK(yml_env("production:\n  timeout: 3\ntimeout: 9\n", "production"));
    ck_assert_int_eq(cfg.timeout, 3);
}
END_TEST

START_TEST(test_env_precedence)
{
    /* _i: 0 = -e wins, 1 = APP_ENV, 2 = RAILS_ENV, 3 = RACK_ENV, 4 = development */
    static const char *const names[] = {"cli", "app", "rails", "rack", "development"};
    write_text("cfg.yml", "concurrency: 1\ncli: {concurrency: 10}\napp: {concurrency: 11}\n"
                          "rails: {concurrency: 12}\nrack: {concurrency: 13}\n"
                          "development: {concurrency: 14}\n");
    if (_i <= 1)
        env_set("APP_ENV", "app");
    if (_i <= 2)
        env_set("RAILS_ENV", "rails");
    if (_i <= 3)
        env_set("RACK_ENV", "rack");
    env_set("UNRELATED", "x");
    int rc = _i == 0 ? LOAD("-C", "cfg.yml", "-e", "cli") : LOAD("-C", "cfg.yml");
    ASSERT_OK(rc);
    ck_assert_str_eq(cfg.environment, names[_i]);
    ck_assert_int_eq(cfg.concurrency, 10 + _i);
}
END_TEST

/* Sidekiq's ENV["APP_ENV"] || ENV["RAILS_ENV"] || ...: "" is truthy in Ruby,
 * so a set but empty APP_ENV is the environment (no section applies). */
START_TEST(test_env_empty_var_is_chosen)
{
    env_set("APP_ENV", "");
    env_set("RAILS_ENV", "production");
    ASSERT_OK(LOAD(NULL));
    ck_assert_str_eq(cfg.environment, "");
}
END_TEST

/* ---- aliases and merge keys ------------------------------------------------ */

START_TEST(test_aliases_and_merge_key)
{
    static const char text[] = "base: &base\n  concurrency: 3\n  timeout: 7\n  tag: base\n"
                               "qs: &qs [a, [b, 2]]\n"
                               "<<: *base\n"
                               "tag: own\n"
                               "queues: *qs\n"
                               "production:\n  <<: [*base, {timeout: 99, verbose: true}]\n"
                               "  concurrency: 30\n";
    ASSERT_OK(yml(text));
    ck_assert_int_eq(cfg.concurrency, 3);
    ck_assert_int_eq(cfg.timeout, 7);
    ck_assert_str_eq(cfg.tag, "own"); /* explicit keys win over merged ones */
    assert_queue(1, "b", 2);
    sq_config_destroy(&cfg);
    sq_config_init(&cfg);
    ASSERT_OK(yml_env(text, "production"));
    ck_assert_int_eq(cfg.concurrency, 30);
    ck_assert_int_eq(cfg.timeout, 7); /* the first merged mapping wins */
    ck_assert(cfg.verbose);
}
END_TEST

START_TEST(test_merge_key_quoted_is_a_plain_key)
{
    ASSERT_OK(yml("\"<<\": {concurrency: 9}\n"));
    ck_assert_int_eq(cfg.concurrency, 5);
    ck_assert(has_warning("<<: unknown key"));
}
END_TEST

START_TEST(test_nesting_cap)
{
    char text[1024] = "x: ";
    size_t n = strlen(text);
    for (int i = 0; i < 100; i++)
        text[n++] = '[';
    for (int i = 0; i < 100; i++)
        text[n++] = ']';
    text[n++] = '\n';
    text[n] = '\0';
    ASSERT_ERR(yml(text), SQ_ECONFIG, "test.yml:1: YAML nested more than 64 levels deep");
}
END_TEST

START_TEST(test_node_cap_without_aliases)
{
    /* 12,000 plain entries: big documents are refused too, not only alias bombs. */
    size_t cap = 12000 * 4 + 32, n = 0;
    char *text = malloc(cap);
    n += (size_t)snprintf(text, cap, "x: [");
    for (int i = 0; i < 12000; i++)
        n += (size_t)snprintf(text + n, cap - n, "1,");
    snprintf(text + n - 1, cap - n + 1, "]\n");
    int rc = yml(text);
    free(text);
    ASSERT_ERR(rc, SQ_ECONFIG, "more than 10000 nodes");
}
END_TEST

/* ---- ERB ------------------------------------------------------------------- */

START_TEST(test_erb_env_lookups)
{
    env_set("THREADS", "11");
    env_set("TAG", "from-env");
    env_set("EMPTY", "");
    env_set("MIXED", "12abc");
    env_set("RACK_ENV", "staging");
    static const struct {
        const char *text;
        int concurrency;
    } cases[] = {
        {"concurrency: <%= ENV['THREADS'] %>\n", 11},
        {"concurrency: <%=ENV[\"THREADS\"]%>\n", 11},
        {"concurrency: <%=   ENV[ 'THREADS' ]   %>\n", 11},
        {"concurrency: <%= ENV.fetch('THREADS') %>\n", 11},
        {"concurrency: <%= ENV.fetch('NOPE', 7) %>\n", 7},
        {"concurrency: <%= ENV.fetch(\"NOPE\", \"8\") %>\n", 8},
        {"concurrency: <%= ENV.fetch('THREADS', 7) %>\n", 11},
        {"concurrency: <%= ENV.fetch('NOPE') { 9 } %>\n", 9},
        {"concurrency: <%= ENV.fetch('NOPE') { '10' } %>\n", 10},
        {"concurrency: <%= ENV['NOPE'] || 4 %>\n", 4},
        {"concurrency: <%= ENV['NOPE'] || '6' %>\n", 6},
        {"concurrency: <%= ENV['THREADS'] || 4 %>\n", 11},
        {"concurrency: <%= ENV['THREADS'].to_i %>\n", 11},
        {"concurrency: <%= ENV['MIXED'].to_i %>\n", 12},
        {"concurrency: <%= ENV.fetch('NOPE', 3).to_i %>\n", 3},
        {"concurrency: <%= (ENV['NOPE'] || 5).to_i %>\n", 5},
        {"concurrency: <%= (ENV['MIXED'] || 5).to_i %>\n", 12},
        {"concurrency: <%= ENV.fetch('NOPE') { 2 }.to_i %>\n", 2},
        {"concurrency: <%= ENV['THREADS'] -%>\n", 11},
        {"<%# a comment %>concurrency: 13\n", 13},
        {"concurrency: <%= ENV['THREADS'] ? ENV['THREADS'].to_i : 1 %>\n", 11},
        {"concurrency: <%= ENV['NOPE'] ? ENV['NOPE'].to_i : 1 %>\n", 1},
        {"concurrency: <%= ENV['EMPTY'] ? 3 : 1 %>\n", 3}, /* "" is truthy in Ruby */
        {"concurrency: <%= ENV.fetch(\"NOPE\") { 10 } %>\n", 10},
        {"concurrency: <%= ENV.fetch('NOPE', ENV['THREADS']) %>\n", 11},
        {"concurrency: <%= ENV.fetch('NOPE', 1) { 2 } %>\n", 2}, /* the block wins */
        {"concurrency: <%= ENV[\"THREAD#{'S'}\"] %>\n", 11},
        {"concurrency: <%= ['production', 'staging'].include?(ENV['RACK_ENV']) ? 20 : 5 %>\n", 20},
        {"concurrency: <%= ENV['RAILS_ENV'] == 'production' ? 25 : 4 %>\n", 4},
        {"concurrency: <%= ENV['RAILS_ENV'] != 'production' && 6 || 7 %>\n", 6},
        {"concurrency: <%= !ENV['NOPE'] ? 8 : 9 %>\n", 8},
        {"concurrency: <%= Integer(ENV.fetch('THREADS', 5)) %>\n", 11},
        {"concurrency: <%= Integer(ENV.fetch('NOPE', '1_2')) %>\n", 12},
        {"concurrency: <%= ENV.fetch('NOPE', 10).to_s.to_i %>\n", 10},
        {"concurrency: <%= Random.rand(3..3) %>\n", 3},
        {"concurrency: <%= rand(1...2) %>\n", 1},
        {"concurrency: 14 <%# trailing comment %>\n", 14},
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        cfg.concurrency = 0;
        ck_assert_msg(yml(cases[i].text) == 0, "%s: %s", cases[i].text, err.message);
        ck_assert_msg(cfg.concurrency == cases[i].concurrency, "%s gave %d", cases[i].text,
                      cfg.concurrency);
    }
    ASSERT_OK(yml("tag: <%= ENV['TAG'] %>\n"));
    ck_assert_str_eq(cfg.tag, "from-env");
    ASSERT_OK(yml("tag: \"<%= ENV['NOPE'] %>\"\n")); /* unset ENV['X'] is nil, printed as "" */
    ck_assert_str_eq(cfg.tag, "");
    ASSERT_OK(yml("tag: \"<%= ENV['EMPTY'] || 'dflt' %>\"\n")); /* "" is not nil in Ruby */
    ck_assert_str_eq(cfg.tag, "");
    ASSERT_OK(yml("tag: \"<%= ENV['NOPE'] || nil %>x\"\n"));
    ck_assert_str_eq(cfg.tag, "x");
    ASSERT_OK(yml("tag: \"a<%%b\"\n"));
    ck_assert_str_eq(cfg.tag, "a<%b");
}
END_TEST

START_TEST(test_erb_keeps_line_numbers)
{
    env_set("T", "1");
    ASSERT_ERR(yml("<%#\n  a comment\n  over three lines %>\nconcurrency: <%= ENV['T'] %>\n"
                   "timeout: zero\n"),
               SQ_ECONFIG, "test.yml:5: timeout: expected an integer");
}
END_TEST

START_TEST(test_erb_errors)
{
    env_set("NL", "a\nb");
    static const struct {
        const char *text, *want;
    } cases[] = {
        {"a: 1\nconcurrency: <%= 5 * 5 %>\n",
         "test.yml:2: concurrency: ERB <%= 5 * 5 %> is a form squire does not evaluate, and "
         "squire needs this value"},
        {"<% require 'socket' %>\n",
         "test.yml:1: ERB: \"<% require 'socket' %>\": a statement tag"},
        {"tag: <%= `id` %>\n", "tag: ERB <%= `id` %> is a form squire does not evaluate"},
        {"tag: <%= ENV['A'].upcase %>\n", "ERB <%= ENV['A'].upcase %> is a form"},
        {"tag: <%= ENV['A'] ; ENV['B'] %>\n", "is a form squire does not evaluate"},
        {"tag: <%= ENV['A B'] %>\n", "is a form squire does not evaluate"},
        {"concurrency: <%= ENV.fetch('A') { 1 } + 1 %>\n", "is a form squire does not evaluate"},
        {"concurrency: <%= File.read('/etc/passwd').size %>\n", "is a form squire does not"},
        {"concurrency: <%= system('touch /tmp/x') ? 1 : 2 %>\n", "is a form squire does not"},
        {"x: <%- ENV['A'] %>\n", "a statement tag"},
        {"tag: <%= ENV['A']\n %>\n", "test.yml:1: tag: ERB <%= ENV['A'] %> is a form"},
        {"\n\nx: <%= ENV.fetch('MISSING_VAR') %>\n",
         "test.yml:3: ERB: ENV.fetch('MISSING_VAR'): the variable is not set and has no default"},
        {":scheduler:\n  x: <%= ENV.fetch('MISSING_VAR') %>\n",
         "test.yml:2: ERB: ENV.fetch('MISSING_VAR'): the variable is not set"},
        {"x: <%= Integer(ENV.fetch('MIXED', 'ten')) %>\n",
         "Integer(\"ten\"): invalid value for Integer()"},
        {"x: <%= Integer(ENV['NOPE']) %>\n", "Integer(nil): can't convert"},
        {"concurrency: <%= Random.rand(1) + 1 %>\n", "ERB <%= Random.rand(1) + 1 %> is a form"},
        {"x: <%= true.to_i %>\n", "true.to_i: undefined method"},
        {"x: <%= ENV['NL'] %>\n", "test.yml:1: ERB: the value of an ERB tag contains a newline"},
        {"tag: <%= !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!nil %>\n",
         "is a form squire does not evaluate"},
        {"tag: <%= ((((((((((((((((((((((((((((((((((((((1)))))))))))))))))))))))))))))))))))) "
         "%>\n",
         "is a form squire does not evaluate"},
        {"x: 1\ny: <%= ENV['A']\n", "test.yml:2: ERB: unterminated tag"},
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        memset(&err, 0, sizeof err);
        ASSERT_ERR(yml(cases[i].text), SQ_ECONFIG, cases[i].want);
    }
}
END_TEST

/* ERB squire cannot evaluate is only fatal where squire needs the value:
 * a scheduler's cron lines, another gem's section, another environment's
 * settings are skipped with a warning naming file:line and the form. */
START_TEST(test_erb_skipped_where_unused)
{
    const char *text = ":concurrency: 3\n"
                       ":scheduler:\n"
                       "  :schedule:\n"
                       "    cleanup:\n"
                       "      cron: \"<%= Random.rand(0..59) %> 3 * * *\"\n"
                       "      every: <%= 1.day %>\n"
                       ":limits:\n"
                       "  big: <%= Foo.limit %>\n"
                       "pidfile: <%= Rails.root.join('tmp/pids/sidekiq.pid') %>\n"
                       "production:\n"
                       "  :concurrency: <%= Etc.nprocessors %>\n";
    ASSERT_OK(yml(text));
    ck_assert_int_eq(cfg.concurrency, 3);
    static const char *const want[] = {
        "test.yml:6: ERB <%= 1.day %> not evaluated (squire does not use this part of the file); "
        "skipped",
        "test.yml:8: ERB <%= Foo.limit %> not evaluated",
        "test.yml:9: ERB <%= Rails.root.join('tmp/pids/sidekiq.pid') %> not evaluated",
        "test.yml:11: ERB <%= Etc.nprocessors %> not evaluated",
    };
    for (size_t i = 0; i < N_ELEMS(want); i++) {
        bool found = false;
        for (size_t j = 0; j < cfg.nwarnings && !found; j++)
            found = strstr(cfg.warnings[j], want[i]) != NULL;
        ck_assert_msg(found, "no warning \"%s\"", want[i]);
    }
    /* in production the same file needs the value: refused, naming the form */
    ASSERT_ERR(yml_env(text, "production"), SQ_ECONFIG,
               "test.yml:11: concurrency: ERB <%= Etc.nprocessors %> is a form squire does not "
               "evaluate, and squire needs this value");
    /* a queue name or weight is needed too */
    memset(&err, 0, sizeof err);
    ASSERT_ERR(yml(":queues:\n  - [default, <%= Weights.default %>]\n"), SQ_ECONFIG,
               "test.yml:2: queues: ERB <%= Weights.default %> is a form");
    /* and so is a key: it may be any setting (Sidekiq: timeout 4 here) or
     * this environment's section; ERB keys in unused parts are skipped */
    static const char *const keys[] = {":<%= 'time' + 'out' %>: 4\n",
                                       "<%= Rails.env %>:\n  :concurrency: 9\n",
                                       "production:\n  <%= 'concur' * 1 %>rency: 9\n"};
    for (size_t i = 0; i < N_ELEMS(keys); i++) {
        memset(&err, 0, sizeof err);
        ASSERT_ERR(yml_env(keys[i], "production"), SQ_ECONFIG,
                   "in a key is a form squire does not evaluate");
    }
    ASSERT_OK(yml(":scheduler:\n  :schedule:\n    <%= 'job' + 'x' %>:\n      cron: '* * * * *'\n"));
}
END_TEST

static unsigned long long lcg(unsigned long long *st)
{
    *st = *st * 6364136223846793005ULL + 1442695040888963407ULL;
    return *st >> 33;
}

/* Adversarial: tags stitched from fragments of the grammar, valid or not,
 * in a used and an unused key. Each gives a value, a refusal naming the
 * file, or a skipped-tag warning; nothing crashes or leaks (the ASan run). */
START_TEST(test_erb_fragments_never_crash)
{
    env_set("A", "12");
    env_set("E", "");
    static const char *const frag[] = {"ENV['A']",
                                       "ENV['E']",
                                       "ENV['NOPE']",
                                       "ENV.fetch('A'",
                                       "ENV.fetch('NOPE'",
                                       ", 3)",
                                       ")",
                                       "(",
                                       "[",
                                       "]",
                                       "||",
                                       "&&",
                                       "!",
                                       " ? ",
                                       " : ",
                                       "'x'",
                                       "\"#{",
                                       "}\"",
                                       "\"a\"",
                                       "1",
                                       "-2",
                                       "..",
                                       "...",
                                       ".to_i",
                                       ".to_s",
                                       ".include?(",
                                       ",",
                                       "nil",
                                       "true",
                                       "Integer(",
                                       "rand(",
                                       "Random.rand(",
                                       "{",
                                       "}",
                                       "==",
                                       "!=",
                                       " ",
                                       "\\",
                                       "'",
                                       "\"",
                                       "#{",
                                       "%",
                                       "<%",
                                       ";"};
    unsigned long long st = 12345;
    for (int round = 0; round < 5000; round++) {
        char body[256] = "";
        int n = 1 + (int)(lcg(&st) % 8);
        for (int k = 0; k < n; k++)
            strcat(body, frag[lcg(&st) % N_ELEMS(frag)]);
        char text[400];
        snprintf(text, sizeof text, "%s: <%%= %s %%>\n", round % 2 ? "tag" : "other", body);
        memset(&err, 0, sizeof err);
        int rc = yml(text);
        ck_assert_msg(rc == 0 ||
                          (err.code == SQ_ECONFIG && strncmp(err.message, "test.yml:", 9) == 0),
                      "%s -> %d %s", text, rc, err.message);
    }
}
END_TEST

/* 400 queues from -q flags, as from the file: no cap on the command line. */
START_TEST(test_many_queue_flags)
{
    enum { NQ = 400 };
    char *argv[2 * NQ + 2];
    static char names[NQ][16];
    int argc = 0;
    argv[argc++] = "squire";
    for (int i = 0; i < NQ; i++) {
        snprintf(names[i], sizeof names[i], "q%d,%d", i, i % 4 + 1);
        argv[argc++] = "-q";
        argv[argc++] = names[i];
    }
    argv[argc] = NULL;
    ASSERT_OK(sq_config_load(&cfg, argc, argv, fake_getenv, &action, &err));
    ck_assert_uint_eq(cfg.nqueues, NQ);
    ck_assert_str_eq(cfg.queues[NQ - 1].name, "q399");
    ck_assert_int_eq(cfg.queues[NQ - 1].weight, 4);
}
END_TEST

/* Log lines name the queues, cut with a count when there are many. */
START_TEST(test_queue_list_for_logs)
{
    ASSERT_OK(yml("queues: [[a, 3], b]\n"));
    char buf[64];
    ck_assert_str_eq(sq_config_queue_list(&cfg, true, buf, sizeof buf), "a,3 b");
    ck_assert_str_eq(sq_config_queue_list(&cfg, false, buf, sizeof buf), "a b");
    char yaml[8192] = "queues:\n";
    for (int i = 0; i < 400; i++)
        snprintf(yaml + strlen(yaml), sizeof yaml - strlen(yaml), "  - [queue_%03d, 2]\n", i);
    ASSERT_OK(yml(yaml));
    char line[300];
    sq_config_queue_list(&cfg, true, line, sizeof line);
    ck_assert_uint_lt(strlen(line), sizeof line);
    ck_assert_ptr_nonnull(strstr(line, "queue_000,2 queue_001,2"));
    const char *more = strstr(line, " ... and ");
    ck_assert_ptr_nonnull(more);
    int shown = 0;
    for (const char *p = line; p < more; p++)
        shown += *p == ',';
    ck_assert_int_eq(shown + atoi(more + 9), 400);
}
END_TEST

START_TEST(test_erb_value_cannot_smuggle_settings)
{
    env_set("INJECT", "5\ntimeout: 1");
    ASSERT_ERR(yml("concurrency: <%= ENV['INJECT'] %>\n"), SQ_ECONFIG, "contains a newline");
    ck_assert_int_eq(cfg.timeout, 25);
}
END_TEST

/* ---- bad files (data-driven) ------------------------------------------------ */

static const struct bad_fixture {
    const char *file;
    const char *env; /* -e, or NULL */
    int line;        /* expected "<file>:<line>:" prefix; 0: not checked */
    const char *want;
} bad_fixtures[] = {
    {"concurrency_string.yml", NULL, 4,
     "concurrency: expected an integer from 1 to 1000, got \"ten\""},
    {"timeout_sequence.yml", NULL, 2,
     "timeout: expected an integer from 1 to 86400, got a sequence"},
    {"typo_key.yml", NULL, 2, "concurency: unknown key (did you mean concurrency?)"},
    {"duplicate_key.yml", NULL, 4, "concurrency: duplicate key (also on line 2)"},
    {"duplicate_spellings.yml", NULL, 2, ":concurrency: duplicate key (also on line 1)"},
    {"syntax_error.yml", NULL, 4,
     ":8: YAML syntax error: did not find expected ',' or ']' (while parsing a flow sequence "
     "started at line 3, column 9)"},
    {"bad_indent.yml", NULL, 3, ":2: YAML syntax error: did not find expected key"},
    {"concurrency_zero.yml", NULL, 1, "concurrency: expected an integer from 1 to 1000, got \"0\""},
    {"concurrency_negative.yml", NULL, 1,
     "concurrency: expected an integer from 1 to 1000, got \"-3\""},
    {"concurrency_trailing.yml", NULL, 2,
     "concurrency: expected an integer from 1 to 1000, got \"5abc\""},
    {"concurrency_huge.yml", NULL, 2,
     "concurrency: expected an integer from 1 to 1000, got \"1000000\""},
    {"timeout_huge.yml", NULL, 2,
     "timeout: expected an integer from 1 to 86400, got \"1000000000000\""},
    {"timeout_float.yml", NULL, 1, "timeout: expected an integer from 1 to 86400, got \"2.5\""},
    {"weight_negative.yml", NULL, 4, "queues: expected a queue weight from 0 to 1000, got \"-1\""},
    {"weight_word.yml", NULL, 2, "queues: expected a queue weight from 0 to 1000, got \"high\""},
    {"weight_float.yml", NULL, 2, "queues: expected a queue weight from 0 to 1000, got \"1.5\""},
    {"queue_space.yml", NULL, 3,
     "queues: expected a queue name of [A-Za-z0-9_:.-] (at most 255 bytes), got \"my queue\""},
    {"queue_nul.yml", NULL, 2, "queues: expected text, got a NUL character"},
    {"queue_twice.yml", NULL, 4, "queues: queue \"default\" is listed twice"},
    {"queue_entry_mapping.yml", NULL, 2,
     "queues: expected a queue name or [name, weight], got a mapping"},
    {"queues_empty.yml", NULL, 1, "queues: expected at least one queue, got []"},
    {"capsules.yml", NULL, 2, "capsules: not supported by squire; list queues under :queues:"},
    {"env_not_mapping.yml", "production", 2,
     "production: expected a mapping of settings for that environment, got \"10\""},
    {"env_bad_value.yml", "production", 4,
     "timeout: expected an integer from 1 to 86400, got \"never\""},
    {"verbose_word.yml", NULL, 1, "verbose: expected true or false, got \"maybe\""},
    {"fetch_word.yml", NULL, 2, "fetch: expected basic or reliable, got \"fast\""},
    {"metrics_word.yml", NULL, 2, "metrics: expected 8, 7, both or off, got \"9\""},
    {"poll_zero.yml", NULL, 1,
     "average_scheduled_poll_interval: expected a number greater than 0, got \"0\""},
    {"dead_max_zero.yml", NULL, 1, "dead_max_jobs: expected an integer of at least 1, got \"0\""},
    {"retries_negative.yml", NULL, 1, "max_retries: expected an integer of at least 0, got \"-1\""},
    {"tag_mapping.yml", NULL, 1, "tag: expected a string, got a mapping"},
    {"labels_mapping.yml", NULL, 1, "labels: expected a list of strings, got a mapping"},
    {"top_sequence.yml", NULL, 1, "(top level): expected a mapping of settings, got a sequence"},
    {"two_documents.yml", NULL, 3, "expected one YAML document, found a second one"},
    {"merge_scalar.yml", "production", 1,
     "<<: expected a mapping or a list of mappings to merge, got \"5\""},
    {"undefined_alias.yml", NULL, 1, ":14: YAML syntax error: found undefined alias"},
    {"erb_code.yml", NULL, 3, "timeout: ERB <%= 5 * 5 %> is a form squire does not evaluate"},
    {"erb_statement.yml", NULL, 2, "a statement tag (<% ... %>) runs code"},
    {"erb_fetch_unset.yml", NULL, 3,
     "ERB: ENV.fetch('SQ_UNSET_TIMEOUT'): the variable is not set and has no default"},
    {"erb_unterminated.yml", NULL, 1, "ERB: unterminated tag"},
    {"billion_laughs.yml", NULL, 0,
     "YAML document too large after expanding aliases (more than 10000 nodes; an alias bomb?)"},
    {"alias_cycle.yml", NULL, 1, "YAML nested more than 64 levels deep"},
};

START_TEST(test_bad_fixture)
{
    const struct bad_fixture *f = &bad_fixtures[_i];
    const char *path = fixture(f->file);
    int rc = f->env ? LOAD("-C", path, "-e", f->env) : LOAD("-C", path);
    ck_assert_msg(rc == -1, "%s loaded", f->file);
    ck_assert_msg(err.code == SQ_ECONFIG, "%s: code %d: %s", f->file, err.code, err.message);
    char prefix[PATH_MAX + 96];
    if (f->line > 0)
        snprintf(prefix, sizeof prefix, "%s:%d:", path, f->line);
    else
        snprintf(prefix, sizeof prefix, "%s:", path);
    ck_assert_msg(strncmp(err.message, prefix, strlen(prefix)) == 0, "%s: \"%s\" lacks prefix %s",
                  f->file, err.message, prefix);
    ck_assert_msg(strstr(err.message, f->want) != NULL, "%s: \"%s\" lacks \"%s\"", f->file,
                  err.message, f->want);
}
END_TEST

START_TEST(test_good_fixture)
{
    ASSERT_OK(LOAD("-C", fixture("good_full.yml")));
    ck_assert_str_eq(cfg.config_path, fixture("good_full.yml"));
    ck_assert_int_eq(cfg.concurrency, 7);
    ck_assert_int_eq(cfg.timeout, 20);
    ck_assert_uint_eq(cfg.nqueues, 3);
    assert_queue(0, "critical", 0);
    assert_queue(1, "default", 2);
    assert_queue(2, "low", 1);
    ck_assert_uint_eq(cfg.nlabels, 2);
    ck_assert_str_eq(cfg.requires[0], "./jobs.so");
    ck_assert_int_eq(cfg.max_retries, 10);
    ck_assert_int_eq(cfg.dead_max_jobs, 500);
    ck_assert_int_eq(cfg.dead_timeout_in_seconds, 3600);
    ck_assert_double_eq(cfg.average_scheduled_poll_interval, 2.5);
    ck_assert_double_eq(cfg.poll_interval_average, 10);
    ck_assert_int_eq(cfg.fetch, SQ_FETCH_RELIABLE);
    ck_assert_uint_eq(cfg.max_payload_bytes, 2048);
    ck_assert_str_eq(cfg.tag, "myapp");
    ck_assert(has_warning(":24: pidfile: ignored"));
    ck_assert(has_warning(":25: logfile: ignored"));
    ck_assert(has_warning(":26: strict: ignored"));
    ck_assert(has_warning(":27: schedule: unknown key, ignored"));
    ck_assert(has_warning(":3: defaults: unknown key, ignored"));
    ck_assert_uint_eq(cfg.nwarnings, 5);
}
END_TEST

START_TEST(test_good_fixture_production)
{
    env_set("RAILS_ENV", "production");
    ASSERT_OK(LOAD("-C", fixture("good_full.yml")));
    ck_assert_int_eq(cfg.concurrency, 12); /* ENV.fetch default */
    assert_queue(0, "prod", 0);
    ck_assert_uint_eq(cfg.nqueues, 1);
    sq_config_destroy(&cfg);
    sq_config_init(&cfg);
    memset(&err, 0, sizeof err);
    env_set("SQ_FIX_THREADS", "16");
    ASSERT_OK(LOAD("-C", fixture("good_full.yml"), "-c", "2"));
    ck_assert_int_eq(cfg.concurrency, 2);
}
END_TEST

/* ---- the file itself (row 36) ----------------------------------------------- */

START_TEST(test_explicit_config_missing)
{
    ASSERT_ERR(LOAD("-C", "/nonexistent/sidekiq.yml"), SQ_ECONFIG,
               "/nonexistent/sidekiq.yml: cannot read config file: No such file or directory");
}
END_TEST

START_TEST(test_config_is_directory)
{
    ck_assert_int_eq(mkdir("dir.yml", 0755), 0);
    ASSERT_ERR(LOAD("-C", "dir.yml"), SQ_ECONFIG,
               "dir.yml: cannot read config file: Is a directory");
}
END_TEST

START_TEST(test_config_empty)
{
    write_text("empty.yml", "");
    ASSERT_ERR(LOAD("-C", "empty.yml"), SQ_ECONFIG,
               "empty.yml: cannot read config file: the file is empty");
    memset(&err, 0, sizeof err);
    write_text("blank.yml", " \n\n\t\n");
    ASSERT_ERR(LOAD("-C", "blank.yml"), SQ_ECONFIG,
               "blank.yml: cannot read config file: the file is empty");
}
END_TEST

START_TEST(test_config_binary)
{
    static const char elf[] = "\x7f"
                              "ELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x03\0>\0";
    write_file("binary.yml", elf, sizeof elf - 1);
    ASSERT_ERR(LOAD("-C", "binary.yml"), SQ_ECONFIG, "binary.yml:1: contains a NUL byte");
}
END_TEST

START_TEST(test_config_too_big)
{
    size_t n = 2 * 1024 * 1024;
    char *big = malloc(n);
    memset(big, '#', n);
    write_file("big.yml", big, n);
    free(big);
    ASSERT_ERR(LOAD("-C", "big.yml"), SQ_ECONFIG,
               "big.yml: cannot read config file: larger than 1 MiB");
}
END_TEST

START_TEST(test_config_unreadable)
{
    /* A socket cannot be opened for reading, even by root. */
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    snprintf(addr.sun_path, sizeof addr.sun_path, "%s/sock.yml", tmp_dir);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&addr, sizeof addr), 0);
    ASSERT_ERR(LOAD("-C", "sock.yml"), SQ_ECONFIG, "sock.yml: cannot read config file: ");
    ck_assert_ptr_nonnull(strstr(err.message, strerror(ENXIO)));
    close(fd);
    if (geteuid() != 0) {
        memset(&err, 0, sizeof err);
        write_text("secret.yml", "concurrency: 5\n");
        ck_assert_int_eq(chmod("secret.yml", 0), 0);
        ASSERT_ERR(LOAD("-C", "secret.yml"), SQ_ECONFIG,
                   "secret.yml: cannot read config file: Permission denied");
    }
}
END_TEST

START_TEST(test_default_path_used)
{
    ck_assert_int_eq(mkdir("config", 0755), 0);
    write_text("config/sidekiq.yml", "concurrency: 8\n");
    ASSERT_OK(LOAD(NULL));
    ck_assert_str_eq(cfg.config_path, "config/sidekiq.yml");
    ck_assert_int_eq(cfg.concurrency, 8);
}
END_TEST

START_TEST(test_default_path_erb)
{
    env_set("N", "9");
    ck_assert_int_eq(mkdir("config", 0755), 0);
    write_text("config/sidekiq.yml.erb", "concurrency: <%= ENV['N'] %>\n");
    ASSERT_OK(LOAD(NULL));
    ck_assert_str_eq(cfg.config_path, "config/sidekiq.yml.erb");
    ck_assert_int_eq(cfg.concurrency, 9);
}
END_TEST

START_TEST(test_default_path_under_require_dir)
{
    ck_assert_int_eq(mkdir("app", 0755), 0);
    ck_assert_int_eq(mkdir("app/config", 0755), 0);
    write_text("app/config/sidekiq.yml", "timeout: 6\n");
    ASSERT_OK(LOAD("-r", "missing.so", "-r", "app"));
    ck_assert_str_eq(cfg.config_path, "app/config/sidekiq.yml");
    ck_assert_int_eq(cfg.timeout, 6);
    ck_assert_uint_eq(cfg.nrequires, 2);
}
END_TEST

START_TEST(test_default_path_bad_file_is_an_error)
{
    ck_assert_int_eq(mkdir("config", 0755), 0);
    write_text("config/sidekiq.yml", "concurrency: lots\n");
    ASSERT_ERR(LOAD(NULL), SQ_ECONFIG, "config/sidekiq.yml:1: concurrency: expected an integer");
}
END_TEST

/* ---- command line -------------------------------------------------------------- */

START_TEST(test_flags_override_file)
{
    write_text("c.yml", "concurrency: 7\ntimeout: 9\ntag: file\nverbose: false\nfetch: reliable\n");
    ASSERT_OK(LOAD("-C", "c.yml", "-c", "3", "-g", "cli", "-v", "--fetch", "basic"));
    ck_assert_int_eq(cfg.concurrency, 3);
    ck_assert_int_eq(cfg.timeout, 9);
    ck_assert_str_eq(cfg.tag, "cli");
    ck_assert(cfg.verbose);
    ck_assert_int_eq(cfg.fetch, SQ_FETCH_BASIC);
    ck_assert(cfg.concurrency_set);
}
END_TEST

START_TEST(test_long_flags)
{
    write_text("c.yml", "production:\n  timeout: 4\n");
    ASSERT_OK(LOAD("--config", "c.yml", "--concurrency=4", "--queue", "a,2", "--environment",
                   "production", "--tag", "t", "--require", "x.so", "--verbose", "--fetch=reliable",
                   "--timeout", "30"));
    ck_assert_int_eq(cfg.concurrency, 4);
    assert_queue(0, "a", 2);
    ck_assert_str_eq(cfg.environment, "production");
    ck_assert_int_eq(cfg.timeout, 30);
    ck_assert_str_eq(cfg.tag, "t");
    ck_assert_str_eq(cfg.requires[0], "x.so");
    ck_assert(cfg.verbose);
    ck_assert_int_eq(cfg.fetch, SQ_FETCH_RELIABLE);
}
END_TEST

START_TEST(test_q_replaces_file_queues)
{
    write_text("c.yml", "queues: [a, b]\n");
    ASSERT_OK(LOAD("-C", "c.yml", "-q", "c", "-q", "d,3", "-q", "e"));
    ck_assert_uint_eq(cfg.nqueues, 3);
    assert_queue(0, "c", 0);
    assert_queue(1, "d", 3);
    assert_queue(2, "e", 0);
    sq_config_destroy(&cfg);
    sq_config_init(&cfg);
    ASSERT_OK(LOAD("-C", "c.yml"));
    ck_assert_uint_eq(cfg.nqueues, 2);
}
END_TEST

START_TEST(test_r_appends_to_file_require)
{
    write_text("c.yml", "require: [a.so]\n");
    ASSERT_OK(LOAD("-C", "c.yml", "-r", "b.so", "-r", "c.so"));
    ck_assert_uint_eq(cfg.nrequires, 3);
    ck_assert_str_eq(cfg.requires[0], "a.so");
    ck_assert_str_eq(cfg.requires[2], "c.so");
}
END_TEST

START_TEST(test_help_and_version)
{
    ASSERT_OK(LOAD("-h"));
    ck_assert_int_eq(action, SQ_ACTION_HELP);
    ASSERT_OK(LOAD("--version"));
    ck_assert_int_eq(action, SQ_ACTION_VERSION);
    ASSERT_OK(LOAD("-c", "4", "--help", "-C", "/nonexistent.yml"));
    ck_assert_int_eq(action, SQ_ACTION_HELP); /* no file is read for --help */
    ASSERT_ERR(LOAD("-h", "-x"), SQ_EUSAGE, "unknown option -x");
}
END_TEST

static const struct usage_case {
    const char *args[6];
    const char *want;
} usage_cases[] = {
    {{"-x"}, "unknown option -x (see --help)"},
    {{"--bogus"}, "unknown or ambiguous option \"--bogus\" (see --help)"},
    {{"--c", "5"}, "unknown or ambiguous option \"--c\""},
    {{"-c"}, "-c: missing value (expected an integer from 1 to 1000)"},
    {{"--concurrency"}, "--concurrency: missing value (expected an integer from 1 to 1000)"},
    {{"--fetch"}, "--fetch: missing value (expected basic or reliable)"},
    {{"-c", "abc"}, "-c: expected an integer from 1 to 1000, got \"abc\""},
    {{"--concurrency", "abc"}, "--concurrency: expected an integer from 1 to 1000, got \"abc\""},
    {{"-c", "99999999999999999999"},
     "-c: expected an integer from 1 to 1000, got \"99999999999999999999\""},
    {{"-c", "0"}, "-c: expected an integer from 1 to 1000, got \"0\""},
    {{"-c", "1001"}, "got \"1001\""},
    {{"-c", " 5"}, "got \" 5\""},
    {{"-c", "5 "}, "got \"5 \""},
    {{"-c", "+5"}, "got \"+5\""},
    {{"-c", ""}, "got \"\""},
    {{"-t", "0"}, "-t: expected an integer from 1 to 86400, got \"0\""},
    {{"-t", "1e12"}, "-t: expected an integer from 1 to 86400, got \"1e12\""},
    {{"-q", "bad name"}, "-q: expected a queue name of"},
    {{"-q", "a,-1"}, "-q: expected a queue weight from 0 to 1000, got \"-1\""},
    {{"-q", "a", "-q", "a,2"}, "-q: queue \"a\" is listed twice"},
    {{"--fetch", "fast"}, "--fetch: expected basic or reliable, got \"fast\""},
    {{"-c", "5", "extra"}, "unexpected argument \"extra\" (see --help)"},
    {{"-c", "5", "-c", "6"}, "-c: given more than once"},
    {{"-c", "5", "--concurrency", "6"}, "--concurrency: given more than once"},
    {{"-v", "-v"}, "-v: given more than once"},
    {{"-e", ""}, "-e: expected an environment name, got \"\""},
    {{"-C", ""}, "-C: expected a file path, got \"\""},
    {{"--verbose=yes"}, "--verbose: takes no value"},
    {{"-g", "a\x1b[0m"}, "-g: expected a string, got \"a\\x1b[0m\""},
    {{"-r", ""}, "-r: expected a non-empty path, got \"\""},
    {{"-q"}, "-q: missing value (expected NAME[,WEIGHT])"},
};

START_TEST(test_usage_errors)
{
    const struct usage_case *u = &usage_cases[_i];
    const char *args[8] = {"squire"};
    for (int i = 0; i < 6 && u->args[i] != NULL; i++)
        args[i + 1] = u->args[i];
    int rc = load_args(args);
    ck_assert_msg(rc == -1 && err.code == SQ_EUSAGE, "case %d: rc %d code %d \"%s\"", _i, rc,
                  err.code, err.message);
    ck_assert_msg(strstr(err.message, u->want) != NULL, "case %d: \"%s\" lacks \"%s\"", _i,
                  err.message, u->want);
    ck_assert_ptr_null(strchr(err.message, '\x1b'));
}
END_TEST

START_TEST(test_usage_error_before_config_error)
{
    ASSERT_ERR(LOAD("-C", "/nonexistent.yml", "-c", "abc"), SQ_EUSAGE, "-c: expected an integer");
}
END_TEST

START_TEST(test_load_is_reentrant)
{
    write_text("c.yml", "concurrency: 7\n");
    for (int i = 0; i < 50; i++) {
        sq_config_destroy(&cfg);
        sq_config_init(&cfg);
        memset(&err, 0, sizeof err);
        if (i % 3 == 0) {
            ASSERT_ERR(LOAD("-c", "x"), SQ_EUSAGE, "-c: expected");
        } else if (i % 3 == 1) {
            ASSERT_OK(LOAD("-C", "c.yml", "-q", "a", "-t", "3"));
            ck_assert_int_eq(cfg.concurrency, 7);
            ck_assert_int_eq(cfg.timeout, 3);
        } else {
            ASSERT_OK(LOAD("--concurrency", "9", "-v"));
            ck_assert_int_eq(cfg.concurrency, 9);
            ck_assert(cfg.verbose);
        }
    }
}
END_TEST

/* ---- environment variables -------------------------------------------------- */

START_TEST(test_rails_max_threads)
{
    env_set("RAILS_MAX_THREADS", "16");
    ASSERT_OK(LOAD(NULL));
    ck_assert_int_eq(cfg.concurrency, 16);
    ck_assert(!cfg.concurrency_set);
    write_text("c.yml", "concurrency: 7\n");
    sq_config_destroy(&cfg);
    sq_config_init(&cfg);
    ASSERT_OK(LOAD("-C", "c.yml"));
    ck_assert_int_eq(cfg.concurrency, 7);
    sq_config_destroy(&cfg);
    sq_config_init(&cfg);
    ASSERT_OK(LOAD("-c", "3"));
    ck_assert_int_eq(cfg.concurrency, 3);
}
END_TEST

START_TEST(test_rails_max_threads_invalid)
{
    env_set("RAILS_MAX_THREADS", "lots");
    ASSERT_ERR(LOAD(NULL), SQ_ECONFIG,
               "RAILS_MAX_THREADS: expected an integer from 1 to 1000, got \"lots\"");
    memset(&err, 0, sizeof err);
    ASSERT_OK(LOAD("-c", "2")); /* not consulted when -c is given */
    ck_assert_int_eq(cfg.concurrency, 2);
}
END_TEST

START_TEST(test_redis_url_from_env)
{
    env_set("REDIS_URL", "redis://cache:6380/2");
    ASSERT_OK(LOAD(NULL));
    ck_assert_str_eq(cfg.redis_url, "redis://cache:6380/2");
}
END_TEST

START_TEST(test_redis_provider)
{
    env_set("REDIS_PROVIDER", "REDISTOGO_URL");
    env_set("REDISTOGO_URL", "redis://togo:1234/1");
    env_set("REDIS_URL", "redis://other");
    ASSERT_OK(LOAD(NULL));
    ck_assert_str_eq(cfg.redis_url, "redis://togo:1234/1");
    const char *url = NULL;
    ASSERT_OK(sq_redis_url_from_env(fake_getenv, &url, &err));
    ck_assert_str_eq(url, "redis://togo:1234/1");
}
END_TEST

START_TEST(test_redis_provider_unset_target_falls_back)
{
    env_set("REDIS_PROVIDER", "MISSING_URL");
    env_set("REDIS_URL", "redis://fallback");
    const char *url = NULL;
    ASSERT_OK(sq_redis_url_from_env(fake_getenv, &url, &err));
    ck_assert_str_eq(url, "redis://fallback");
    fake_env_n = 0;
    ASSERT_OK(sq_redis_url_from_env(fake_getenv, &url, &err));
    ck_assert_ptr_null(url);
}
END_TEST

START_TEST(test_redis_provider_holding_a_url)
{
    env_set("REDIS_PROVIDER", "redis://:hunter2@host:6379");
    ASSERT_ERR(LOAD(NULL), SQ_ECONFIG, "REDIS_PROVIDER should be set to the name of the variable");
    ck_assert_ptr_null(strstr(err.message, "hunter2"));
}
END_TEST

START_TEST(test_bad_redis_url_in_env)
{
    env_set("REDIS_URL", "redis://:hunter2@host:99999/0");
    ASSERT_ERR(LOAD(NULL), SQ_ECONFIG,
               "REDIS_URL: invalid Redis URL \"redis://:REDACTED@host:99999/0\"");
    ck_assert_ptr_null(strstr(err.message, "hunter2"));
    ck_assert_ptr_null(cfg.redis_url);
    memset(&err, 0, sizeof err);
    fake_env_n = 0;
    env_set("REDIS_PROVIDER", "MY_URL");
    env_set("MY_URL", "rediss://u:hunter2@host:0");
    ASSERT_ERR(LOAD(NULL), SQ_ECONFIG, "MY_URL: invalid Redis URL");
    ck_assert_ptr_nonnull(strstr(err.message, "port must be an integer"));
    ck_assert_ptr_null(strstr(err.message, "hunter2"));
}
END_TEST

/* ---- Redis URLs ----------------------------------------------------------------- */

static const struct url_case {
    const char *url;
    const char *host, *path, *user, *pass;
    int port, db;
} good_urls[] = {
    {NULL, "localhost", NULL, NULL, NULL, 6379, 0},
    {"", "localhost", NULL, NULL, NULL, 6379, 0},
    {"redis://localhost", "localhost", NULL, NULL, NULL, 6379, 0},
    {"redis://localhost/", "localhost", NULL, NULL, NULL, 6379, 0},
    {"redis://10.0.0.5:6380/3", "10.0.0.5", NULL, NULL, NULL, 6380, 3},
    {"redis://cache.example.com:1/15", "cache.example.com", NULL, NULL, NULL, 1, 15},
    {"redis://h:65535", "h", NULL, NULL, NULL, 65535, 0},
    {"redis://[::1]", "::1", NULL, NULL, NULL, 6379, 0},
    {"redis://[::1]:6380/2", "::1", NULL, NULL, NULL, 6380, 2},
    {"redis://[fe80::1:2]:7000", "fe80::1:2", NULL, NULL, NULL, 7000, 0},
    {"redis://:secret@h", "h", NULL, NULL, "secret", 6379, 0},
    {"redis://user:secret@h:1/2", "h", NULL, "user", "secret", 1, 2},
    {"redis://user:@h", "h", NULL, "user", NULL, 6379, 0},
    {"redis://secret@h", "h", NULL, NULL, "secret", 6379, 0}, /* redis-client: a password */
    {"redis://us%40er:p%3Ass%2Fw%25rd@h", "h", NULL, "us@er", "p:ss/w%rd", 6379, 0},
    {"redis://u:p@ss/w@h/4", "h", NULL, "u", "p@ss/w", 6379, 4},
    {"redis://h/0?db=5", "h", NULL, NULL, NULL, 6379, 5},
    {"unix:///tmp/redis.sock", NULL, "/tmp/redis.sock", NULL, NULL, 6379, 0},
    {"unix:///run/redis/redis.sock?db=3", NULL, "/run/redis/redis.sock", NULL, NULL, 6379, 3},
    {"unix://:pw@/run/r.sock", NULL, "/run/r.sock", NULL, "pw", 6379, 0},
    {"rediss://:pw@ec2-1-2-3-4.compute.example.com:25070", "ec2-1-2-3-4.compute.example.com",
     NULL, NULL, "pw", 25070, 0},
    {"rediss://default:pw@[::1]:6380/2", "::1", NULL, "default", "pw", 6380, 2},
};

START_TEST(test_url_parse_good)
{
    const struct url_case *u = &good_urls[_i];
    sq_redis_url p;
    ck_assert_msg(sq_redis_url_parse(u->url, &p, &err) == 0, "%s: %s", u->url, err.message);
    ck_assert_pstr_eq(p.host, u->host);
    ck_assert_pstr_eq(p.path, u->path);
    ck_assert_pstr_eq(p.username, u->user);
    ck_assert_pstr_eq(p.password, u->pass);
    ck_assert_int_eq(p.port, u->port);
    ck_assert_int_eq(p.db, u->db);
    ck_assert(p.tls == (u->url != NULL && strncmp(u->url, "rediss://", 9) == 0));
    ck_assert(!p.tls_no_verify); /* verification is on unless asked off */
    sq_redis_url_destroy(&p);
    sq_redis_url_destroy(&p);
}
END_TEST

/* Sentinels name the master by the URL's host: a unix:// URL has none, and
 * the combination is refused before anything connects (it crashed). */
START_TEST(test_sentinels_need_a_master_name)
{
    env_set("REDIS_URL", "unix:///run/redis.sock");
    env_set("SQUIRE_REDIS_SENTINELS", "10.0.0.1:26379");
    ASSERT_ERR(LOAD(NULL), SQ_ECONFIG, "sentinels");
    ck_assert_msg(strstr(err.message, "unix://") != NULL, "%s", err.message);
    sq_config_destroy(&cfg);
    sq_config_init(&cfg);
    memset(&err, 0, sizeof err);
    fake_env_n = 0;
    ASSERT_OK(yml(":redis:\n  url: unix:///run/redis.sock\n  sentinels: [\"10.0.0.1\"]\n"));
    ASSERT_ERR(sq_config_validate(&cfg, &err), SQ_ECONFIG, "sentinels");
    /* squirectl and the C client */
    setenv("SQUIRE_REDIS_SENTINELS", "10.0.0.1:26379", 1);
    sq_redis_url u;
    memset(&err, 0, sizeof err);
    int rc = sq_redis_url_from_environment("unix:///run/redis.sock", &u, &err);
    unsetenv("SQUIRE_REDIS_SENTINELS");
    ASSERT_ERR(rc, SQ_ECONFIG, "sentinels");
}
END_TEST

/* How a URL is named in logs and messages: the password REDACTED, the user
 * kept, and the '@' that separates them from the host kept too. */
START_TEST(test_url_display)
{
    static const struct {
        const char *url, *shown;
    } cases[] = {
        {"redis://app:pw@h:1/2", "redis://app:REDACTED@h:1/2"},
        {"redis://:pw@h", "redis://:REDACTED@h:6379/0"},
        {"redis://app:@h:1", "redis://app@h:1/0"},
        {"rediss://[::1]:7/3", "rediss://[::1]:7/3"},
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        sq_redis_url u;
        ck_assert_int_eq(sq_redis_url_parse(cases[i].url, &u, &err), 0);
        sq_redis *r = sq_redis_new(&u, 1);
        ck_assert_str_eq(sq_redis_display(r), cases[i].shown);
        sq_redis_free(r);
        sq_redis_url_destroy(&u);
    }
}
END_TEST

/* The redis: section: TLS and sentinel options, checked like any key. */
START_TEST(test_redis_section)
{
    ck_assert(!cfg.redis_opts.tls_no_verify);
    ASSERT_OK(yml(":redis:\n  url: rediss://:pw@cache:6380/1\n  ssl_verify_mode: none\n"
                  "  ssl_ca_file: /etc/ca.pem\n  ssl_ca_path: /etc/cas\n  ssl_cert: c.pem\n"
                  "  ssl_key: k.pem\n  ssl_server_name: cache.internal\n"
                  "  sentinels: [\"10.0.0.1:26379\", \"s2\", \"[::1]:5000\"]\n"
                  "  sentinel_username: sen\n  sentinel_password: sp\n"));
    ck_assert_str_eq(cfg.redis_url, "rediss://:pw@cache:6380/1");
    ck_assert(cfg.redis_opts.tls_no_verify);
    ck_assert_str_eq(cfg.redis_opts.tls_ca_file, "/etc/ca.pem");
    ck_assert_str_eq(cfg.redis_opts.tls_ca_path, "/etc/cas");
    ck_assert_str_eq(cfg.redis_opts.tls_cert, "c.pem");
    ck_assert_str_eq(cfg.redis_opts.tls_key, "k.pem");
    ck_assert_str_eq(cfg.redis_opts.tls_server_name, "cache.internal");
    ck_assert_uint_eq(cfg.redis_opts.nsentinels, 3);
    ck_assert_str_eq(cfg.redis_opts.sentinels[1], "s2");
    ck_assert_str_eq(cfg.redis_opts.sentinel_username, "sen");
    ck_assert_str_eq(cfg.redis_opts.sentinel_password, "sp");
    sq_redis_url u;
    ASSERT_OK(sq_config_redis_url(&cfg, &u, &err));
    ck_assert(u.tls && u.tls_no_verify);
    ck_assert_str_eq(u.host, "cache");
    ck_assert_str_eq(u.tls_server_name, "cache.internal");
    ck_assert_uint_eq(u.nsentinels, 3);
    ck_assert_str_eq(u.sentinel_password, "sp");
    sq_redis_url_destroy(&u);
    /* peer turns verification back on; Ruby's spelling is accepted */
    ASSERT_OK(yml(":redis:\n  ssl_verify_mode: OpenSSL::SSL::VERIFY_PEER\n"));
    ck_assert(!cfg.redis_opts.tls_no_verify);
    ASSERT_ERR(yml(":redis:\n  ssl_verify_mode: maybe\n"), SQ_ECONFIG,
               "test.yml:2: redis.ssl_verify_mode: expected none or peer, got \"maybe\"");
    memset(&err, 0, sizeof err);
    ASSERT_ERR(yml(":redis:\n  sentinels:\n    - \"h:99999\"\n"), SQ_ECONFIG,
               "expected a sentinel as host[:port]");
    memset(&err, 0, sizeof err);
    ASSERT_ERR(yml(":redis:\n  ssl_verfy_mode: none\n"), SQ_ECONFIG,
               "ssl_verfy_mode: unknown key in redis:");
}
END_TEST

/* A certificate without its key is caught before any connection. */
START_TEST(test_redis_cert_needs_key)
{
    ASSERT_OK(yml(":redis:\n  ssl_cert: /c.pem\n"));
    ASSERT_ERR(sq_config_validate(&cfg, &err), SQ_ECONFIG,
               "config: redis: ssl_cert and ssl_key go together (got only ssl_cert)");
}
END_TEST

/* SQUIRE_REDIS_* set the same options and win over the file (Heroku sets
 * config vars, not files); the sentinel password never shows in errors. */
START_TEST(test_redis_env_options)
{
    const char *y = ":redis:\n  url: redis://from-file:1\n  ssl_verify_mode: peer\n"
                    "  ssl_ca_file: /file.pem\n";
    char path[128];
    snprintf(path, sizeof path, "%s/s.yml", tmp_dir);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(y, f);
    fclose(f);
    env_set("REDIS_URL", "rediss://:pw@h:6380");
    env_set("SQUIRE_REDIS_SSL_VERIFY_MODE", "none");
    env_set("SQUIRE_REDIS_SSL_CA_FILE", "/env.pem");
    env_set("SQUIRE_REDIS_SENTINELS", " a:1 , b ,[::1]:3");
    env_set("SQUIRE_REDIS_SENTINEL_PASSWORD", "hunter2");
    ASSERT_OK(LOAD("-C", path));
    ck_assert_str_eq(cfg.redis_url, "rediss://:pw@h:6380"); /* REDIS_URL wins too */
    ck_assert(cfg.redis_opts.tls_no_verify);
    ck_assert_str_eq(cfg.redis_opts.tls_ca_file, "/env.pem");
    ck_assert_uint_eq(cfg.redis_opts.nsentinels, 3);
    ck_assert_str_eq(cfg.redis_opts.sentinels[0], "a:1");
    ck_assert_str_eq(cfg.redis_opts.sentinels[1], "b");
    ck_assert_str_eq(cfg.redis_opts.sentinels[2], "[::1]:3");
    ck_assert_str_eq(cfg.redis_opts.sentinel_password, "hunter2");
    sq_config_destroy(&cfg);
    sq_config_init(&cfg);
    fake_env_n = 0;
    env_set("SQUIRE_REDIS_SSL_VERIFY_MODE", "off-ish");
    ASSERT_ERR(LOAD(NULL), SQ_ECONFIG,
               "SQUIRE_REDIS_SSL_VERIFY_MODE: expected none or peer, got \"off-ish\"");
    sq_config_destroy(&cfg);
    sq_config_init(&cfg);
    memset(&err, 0, sizeof err);
    fake_env_n = 0;
    env_set("SQUIRE_REDIS_SENTINELS", "a:1,b:x");
    env_set("SQUIRE_REDIS_SENTINEL_PASSWORD", "hunter2");
    ASSERT_ERR(LOAD(NULL), SQ_ECONFIG, "sentinels: expected host[:port], got \"b:x\"");
    ck_assert_ptr_null(strstr(err.message, "hunter2"));
}
END_TEST

START_TEST(test_sentinel_address_parse)
{
    static const struct {
        const char *in, *host;
        int port;
    } good[] = {{"h", "h", 26379}, {"h:1", "h", 1}, {"[::1]", "::1", 26379},
                {"[fe80::2]:7", "fe80::2", 7}, {"10.0.0.1:26380", "10.0.0.1", 26380}};
    for (size_t i = 0; i < N_ELEMS(good); i++) {
        char *host;
        int port;
        ck_assert_msg(sq_redis_sentinel_parse(good[i].in, &host, &port) == 0, "%s", good[i].in);
        ck_assert_str_eq(host, good[i].host);
        ck_assert_int_eq(port, good[i].port);
        free(host);
    }
    static const char *const bad[] = {"", ":1", "h:", "h:0", "h:65536", "::1", "[::1",
                                      "[]:1", "h h", "redis://h", "u@h", "h:1:2"};
    for (size_t i = 0; i < N_ELEMS(bad); i++) {
        char *host;
        int port;
        ck_assert_msg(sq_redis_sentinel_parse(bad[i], &host, &port) == -1, "%s", bad[i]);
        ck_assert_ptr_null(host);
    }
}
END_TEST

static const struct {
    const char *url, *want;
} bad_urls[] = {
    {"rediss://:s3cr3t@h:0", "port must be an integer from 1 to 65535"},
    {"rediss://:s3cr3t@/tmp/r.sock", "missing or bad host"},
    {"http://u:s3cr3t@h", "expected redis://host[:port][/db], rediss:// (TLS) or unix:///path"},
    {"localhost:6379", "expected redis://"},
    {"REDIS://h", "expected redis://"},
    {"redis://u:s3cr3t@h:0", "port must be an integer from 1 to 65535"},
    {"redis://u:s3cr3t@h:65536", "port must be an integer from 1 to 65535"},
    {"redis://u:s3cr3t@h:abc", "port must be"},
    {"redis://u:s3cr3t@h:", "port must be"},
    {"redis://u:s3cr3t@h:-1", "port must be"},
    {"redis://u:s3cr3t@h/x", "db must be a non-negative integer"},
    {"redis://u:s3cr3t@h/-1", "db must be a non-negative integer"},
    {"redis://u:s3cr3t@h/1/2", "db must be"},
    {"redis://u:s3cr3t@h/99999999999", "db must be"},
    {"redis://u:s3cr3t@h?db=x", "db must be"},
    {"redis://u:s3cr3t@h?timeout=5", "unsupported query parameter"},
    {"redis://u:s3cr3t@", "missing or bad host"},
    {"redis://u:s3cr3t@:6379", "missing or bad host"},
    {"redis://u:s3cr3t@::1:6379", "an IPv6 address must be written in brackets"},
    {"redis://u:s3cr3t@[::1", "bad IPv6 address"},
    {"redis://u:s3cr3t@[]:1", "bad IPv6 address"},
    {"redis://u:s3cr3t@[::1]x", "unexpected text after the IPv6 address"},
    {"redis://u:s3cr3t%zz@h", "bad percent-encoding in the user info"},
    {"redis://u:s3cr3t%4@h", "bad percent-encoding"},
    {"redis://u:s3cr3t%00@h", "bad percent-encoding"},
    {"redis://u:s3cr3t@h h", "contains whitespace"},
    {"unix://u:s3cr3t@relative.sock", "expected unix:///absolute/path.sock"},
    {"unix://", "expected unix:///absolute/path.sock"},
    {"unix:///tmp/r.sock?foo=1", "unsupported query parameter"},
};

START_TEST(test_url_parse_bad)
{
    sq_redis_url p;
    memset(&p, 0x5a, sizeof p);
    int rc = sq_redis_url_parse(bad_urls[_i].url, &p, &err);
    ck_assert_msg(rc == -1 && err.code == SQ_ECONFIG, "%s: rc %d", bad_urls[_i].url, rc);
    ck_assert_msg(strstr(err.message, bad_urls[_i].want) != NULL, "\"%s\" lacks \"%s\"",
                  err.message, bad_urls[_i].want);
    ck_assert_msg(strncmp(err.message, "invalid Redis URL \"", 19) == 0, "%s", err.message);
    ck_assert_msg(strstr(err.message, "s3cr3t") == NULL, "password leaked: %s", err.message);
    ck_assert_ptr_null(p.host); /* cleaned up on failure */
    ck_assert_ptr_null(p.password);
    sq_redis_url_destroy(&p);
}
END_TEST

START_TEST(test_url_redact)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"redis://user:s3cr3t@h:6379/0", "redis://user:REDACTED@h:6379/0"},
        {"redis://:s3cr3t@h", "redis://:REDACTED@h"},
        {"redis://s3cr3t@h", "redis://REDACTED@h"},
        {"redis://user:@h", "redis://user:@h"},
        {"redis://h:6379/0", "redis://h:6379/0"},
        {"redis://@h", "redis://@h"},
        {"rediss://u:s3cr3t@h", "rediss://u:REDACTED@h"},
        {"unix://:s3cr3t@/tmp/r.sock?db=1", "unix://:REDACTED@/tmp/r.sock?db=1"},
        {"redis://u:p@s3cr3t/x@h", "redis://u:REDACTED@h"},
        {"redis://u:s3cr3t:more@h", "redis://u:REDACTED@h"},
        {"u:s3cr3t@h", "u:REDACTED@h"},
        {"garbage", "garbage"},
        {"", ""},
        {"@", "@"},
        {"://", "://"},
        {"redis://[::1]:6379", "redis://[::1]:6379"},
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        char *r = sq_redis_url_redact(cases[i].in);
        ck_assert_ptr_nonnull(r);
        ck_assert_str_eq(r, cases[i].out);
        ck_assert_ptr_null(strstr(r, "s3cr3t"));
        free(r);
    }
    char *r = sq_redis_url_redact(NULL);
    ck_assert_str_eq(r, "");
    free(r);
}
END_TEST

START_TEST(test_url_errors_never_show_password)
{
    /* Every bad-URL shape with a password in it, through the config loader too. */
    for (size_t i = 0; i < N_ELEMS(bad_urls); i++) {
        sq_config_destroy(&cfg);
        sq_config_init(&cfg);
        memset(&err, 0, sizeof err);
        fake_env_n = 0;
        env_set("REDIS_URL", bad_urls[i].url);
        ck_assert_int_eq(LOAD(NULL), -1);
        ck_assert_msg(strstr(err.message, "s3cr3t") == NULL, "leak: %s", err.message);
        char *r = sq_redis_url_redact(bad_urls[i].url);
        ck_assert_msg(strstr(r, "s3cr3t") == NULL || strstr(bad_urls[i].url, "@") == NULL,
                      "redact leak: %s", r);
        free(r);
    }
}
END_TEST

/* A secret in a value the config refuses is never echoed: a URL's password,
 * the sentinel password, a key given as PEM text instead of a path, from
 * the file or from the SQUIRE_REDIS_* variables. The message still names
 * the key and what was expected. */
START_TEST(test_config_errors_never_show_secrets)
{
    static const struct {
        const char *yaml, *want;
    } files[] = {
        {":redis: \"redis://:s3cr3t@cache:6379/0\"\n", "redis: expected a mapping"},
        {":redis:\n  url: \"redis://:s3cr3t\\tx@cache:6379/0\"\n", "redis.url: expected"},
        {":redis:\n  sentinel_password: \"s3cr3t\\t\"\n", "redis.sentinel_password: expected"},
        {":redis:\n  sentinels: [\"redis://:s3cr3t@10.0.0.1:26379\"]\n", "redis.sentinels"},
        {":redis:\n  sentinels: [\":s3cr3t@10.0.0.1:26379\"]\n", "redis.sentinels"},
        {":redis:\n  sentinels: \"app:s3cr3t@10.0.0.1\"\n", "redis.sentinels"},
        {":redis:\n  ssl_key: \"-----BEGIN PRIVATE KEY-----\\nMIGs3cr3t\\n\"\n",
         "redis.ssl_key: expected"},
        {":database:\n  url: \"postgres://app:s3cr3t\\t@db/app\"\n", "database.url: expected"},
    };
    for (size_t i = 0; i < N_ELEMS(files); i++) {
        sq_config_destroy(&cfg);
        sq_config_init(&cfg);
        memset(&err, 0, sizeof err);
        ASSERT_ERR(yml(files[i].yaml), SQ_ECONFIG, files[i].want);
        ck_assert_msg(strstr(err.message, "s3cr3t") == NULL, "leak: %s", err.message);
    }
    static const struct {
        const char *name, *value, *other, *want;
    } vars[] = {
        {"SQUIRE_REDIS_SENTINELS", "10.0.0.1,redis://:s3cr3t@10.0.0.2:26379", NULL, "sentinels"},
        {"SQUIRE_REDIS_SENTINELS", "user:s3cr3t@10.0.0.2", NULL, "sentinels"},
        {"SQUIRE_REDIS_SSL_KEY",
         "-----BEGIN PRIVATE KEY-----\nMIGs3cr3t\n-----END PRIVATE KEY-----\n",
         "SQUIRE_REDIS_SSL_CERT", "ssl_key: expected the path of a PEM file"},
    };
    for (size_t i = 0; i < N_ELEMS(vars); i++) {
        sq_config_destroy(&cfg);
        sq_config_init(&cfg);
        memset(&err, 0, sizeof err);
        fake_env_n = 0;
        env_set(vars[i].name, vars[i].value);
        if (vars[i].other != NULL)
            env_set(vars[i].other, "/etc/squire/client.pem");
        ASSERT_ERR(LOAD(NULL), SQ_ECONFIG, vars[i].want);
        ck_assert_msg(strstr(err.message, "s3cr3t") == NULL, "leak: %s", err.message);
        /* squirectl and the C client read the same variables */
        setenv(vars[i].name, vars[i].value, 1);
        if (vars[i].other != NULL)
            setenv(vars[i].other, "/etc/squire/client.pem", 1);
        sq_redis_url u;
        memset(&err, 0, sizeof err);
        ck_assert_int_eq(sq_redis_url_from_environment("redis://h", &u, &err), -1);
        unsetenv(vars[i].name);
        if (vars[i].other != NULL)
            unsetenv(vars[i].other);
        ck_assert_msg(strstr(err.message, vars[i].want) != NULL, "%s", err.message);
        ck_assert_msg(strstr(err.message, "s3cr3t") == NULL, "leak: %s", err.message);
    }
}
END_TEST

/* ---- validate and usage ---------------------------------------------------------- */

START_TEST(test_validate)
{
    ASSERT_OK(sq_config_validate(&cfg, &err));
    cfg.concurrency = 0;
    ASSERT_ERR(sq_config_validate(&cfg, &err), SQ_ECONFIG,
               "config: concurrency: expected an integer from 1 to 1000, got \"0\"");
    cfg.concurrency = 5;
    memset(&err, 0, sizeof err);
    cfg.average_scheduled_poll_interval = 0;
    ASSERT_ERR(sq_config_validate(&cfg, &err), SQ_ECONFIG, "average_scheduled_poll_interval");
    cfg.average_scheduled_poll_interval = 5;
    memset(&err, 0, sizeof err);
    free(cfg.queues[0].name);
    cfg.queues[0].name = strdup("bad name");
    ASSERT_ERR(sq_config_validate(&cfg, &err), SQ_ECONFIG, "config: queues: expected a queue name");
    free(cfg.queues[0].name);
    free(cfg.queues);
    cfg.queues = NULL;
    cfg.nqueues = 0;
    memset(&err, 0, sizeof err);
    ASSERT_ERR(sq_config_validate(&cfg, &err), SQ_ECONFIG,
               "config: queues: expected at least one queue");
    ASSERT_OK(yml("queues: [a]\n"));
    memset(&err, 0, sizeof err);
    cfg.redis_url = strdup("redis://:pw@h:0");
    ASSERT_ERR(sq_config_validate(&cfg, &err), SQ_ECONFIG, "invalid Redis URL");
}
END_TEST

START_TEST(test_usage_text)
{
    const char *u = sq_config_usage();
    static const char *const want[] = {
        "Usage: squire",
        "-C, --config PATH",
        "-c, --concurrency INT",
        "-q, --queue NAME[,WEIGHT]",
        "-e, --environment ENV",
        "-t, --timeout INT",
        "-g, --tag TAG",
        "-r, --require PATH",
        "-v, --verbose",
        "-V, --version",
        "-h, --help",
        "--fetch MODE",
        "(default: 5)",
        "(default: 25)",
        "(default: reliable)",
        "(default: default)",
        "(default: development)",
        "(default: config/sidekiq.yml)",
        "max_retries",
        "dead_max_jobs",
        "(default: 10000)",
        "(default: 15552000)",
        "average_scheduled_poll_interval",
        "poll_interval_average",
        "max_payload_bytes",
        "(default: 1048576)",
        "labels",
        "REDIS_URL",
        "REDIS_PROVIDER",
        "RAILS_MAX_THREADS",
        "APP_ENV",
    };
    for (size_t i = 0; i < N_ELEMS(want); i++)
        ck_assert_msg(strstr(u, want[i]) != NULL, "usage lacks \"%s\"", want[i]);
    ck_assert_ptr_eq(u, sq_config_usage());
}
END_TEST

/* ---- suite ----------------------------------------------------------------------- */

static Suite *config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("config");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_load_without_file_gives_defaults);
    tcase_add_test(tc, test_destroy_half_built_and_twice);
    tcase_add_test(tc, test_reapply_replaces_without_leaking);
    tcase_add_test(tc, test_both_key_spellings);
    tcase_add_test(tc, test_every_key);
    tcase_add_test(tc, test_metrics_layout);
    tcase_add_test(tc, test_example_file_loads);
    tcase_add_test(tc, test_database_section);
    tcase_add_test(tc, test_redis_section);
    tcase_add_test(tc, test_redis_cert_needs_key);
    tcase_add_test(tc, test_redis_env_options);
    tcase_add_test(tc, test_sentinel_address_parse);
    tcase_add_test(tc, test_quoted_integers_and_symbols);
    tcase_add_test(tc, test_booleans);
    tcase_add_test(tc, test_log_level);
    tcase_add_test(tc, test_doubles);
    tcase_add_test(tc, test_null_values);
    tcase_add_test(tc, test_empty_and_comment_only_text);
    tcase_add_test(tc, test_found_values_are_escaped_and_cut);
    tcase_add_test(tc, test_found_values_never_show_a_password);
    tcase_add_test(tc, test_nul_byte_in_text);
    tcase_add_test(tc, test_syntax_error_line_and_column);
    tcase_add_test(tc, test_top_level_scalar);
    tcase_add_test(tc, test_queue_forms);
    tcase_add_test(tc, test_queue_flow_and_block_styles);
    tcase_add_test(tc, test_queue_name_length);
    tcase_add_test(tc, test_queue_4k_name_from_flag);
    tcase_add_test(tc, test_queue_bad_entries);
    tcase_add_test(tc, test_removed_keys_warn);
    tcase_add_test(tc, test_other_gems_keys_warn);
    tcase_add_test(tc, test_did_you_mean);
    tcase_add_test(tc, test_short_unknown_keys_only_warn);
    tcase_add_test(tc, test_odd_keys_are_quoted);
    tcase_add_test(tc, test_duplicate_keys);
    tcase_add_test(tc, test_env_section_merge);
    tcase_add_test(tc, test_env_section_other_env);
    tcase_add_test(tc, test_env_section_custom_name_and_null);
    tcase_add_test(tc, test_env_section_precedes_top_level_order);
    tcase_add_loop_test(tc, test_env_precedence, 0, 5);
    tcase_add_test(tc, test_env_empty_var_is_chosen);
    tcase_add_test(tc, test_aliases_and_merge_key);
    tcase_add_test(tc, test_merge_key_quoted_is_a_plain_key);
    tcase_add_test(tc, test_nesting_cap);
    tcase_add_test(tc, test_node_cap_without_aliases);
    tcase_add_test(tc, test_erb_env_lookups);
    tcase_add_test(tc, test_erb_keeps_line_numbers);
    tcase_add_test(tc, test_erb_errors);
    tcase_add_test(tc, test_erb_value_cannot_smuggle_settings);
    tcase_add_test(tc, test_erb_skipped_where_unused);
    tcase_add_test(tc, test_queue_list_for_logs);
    tcase_add_test(tc, test_many_queue_flags);
    tcase_add_test(tc, test_erb_fragments_never_crash);
    tcase_add_loop_test(tc, test_bad_fixture, 0, (int)N_ELEMS(bad_fixtures));
    tcase_add_test(tc, test_good_fixture);
    tcase_add_test(tc, test_good_fixture_production);
    tcase_add_test(tc, test_explicit_config_missing);
    tcase_add_test(tc, test_config_is_directory);
    tcase_add_test(tc, test_config_empty);
    tcase_add_test(tc, test_config_binary);
    tcase_add_test(tc, test_config_too_big);
    tcase_add_test(tc, test_config_unreadable);
    tcase_add_test(tc, test_default_path_used);
    tcase_add_test(tc, test_default_path_erb);
    tcase_add_test(tc, test_default_path_under_require_dir);
    tcase_add_test(tc, test_default_path_bad_file_is_an_error);
    tcase_add_test(tc, test_flags_override_file);
    tcase_add_test(tc, test_long_flags);
    tcase_add_test(tc, test_q_replaces_file_queues);
    tcase_add_test(tc, test_r_appends_to_file_require);
    tcase_add_test(tc, test_help_and_version);
    tcase_add_loop_test(tc, test_usage_errors, 0, (int)N_ELEMS(usage_cases));
    tcase_add_test(tc, test_usage_error_before_config_error);
    tcase_add_test(tc, test_load_is_reentrant);
    tcase_add_test(tc, test_rails_max_threads);
    tcase_add_test(tc, test_rails_max_threads_invalid);
    tcase_add_test(tc, test_redis_url_from_env);
    tcase_add_test(tc, test_redis_provider);
    tcase_add_test(tc, test_redis_provider_unset_target_falls_back);
    tcase_add_test(tc, test_redis_provider_holding_a_url);
    tcase_add_test(tc, test_bad_redis_url_in_env);
    tcase_add_loop_test(tc, test_url_parse_good, 0, (int)N_ELEMS(good_urls));
    tcase_add_loop_test(tc, test_url_parse_bad, 0, (int)N_ELEMS(bad_urls));
    tcase_add_test(tc, test_url_redact);
    tcase_add_test(tc, test_url_errors_never_show_password);
    tcase_add_test(tc, test_config_errors_never_show_secrets);
    tcase_add_test(tc, test_url_display);
    tcase_add_test(tc, test_sentinels_need_a_master_name);
    tcase_add_test(tc, test_validate);
    tcase_add_test(tc, test_usage_text);
    suite_add_tcase(s, tc);
    return s;
}

static void find_fixtures(void)
{
#ifdef SQ_TEST_SOURCE_DIR
    snprintf(fixture_dir, sizeof fixture_dir, "%s/test/fixtures/config", SQ_TEST_SOURCE_DIR);
#else
    /* test/test_config.c -> test/fixtures/config, resolved before tests chdir. */
    const char *file = __FILE__;
    const char *slash = strrchr(file, '/');
    int dirlen = slash != NULL ? (int)(slash - file + 1) : 0;
    char rel[PATH_MAX];
    snprintf(rel, sizeof rel, "%s%.*sfixtures/config", file[0] == '/' ? "" : "./", dirlen, file);
    if (realpath(rel, fixture_dir) == NULL)
        snprintf(fixture_dir, sizeof fixture_dir, "%s", rel);
#endif
}

int main(void)
{
    if (getcwd(start_dir, sizeof start_dir) == NULL)
        return 1;
    find_fixtures();
    SRunner *sr = srunner_create(config_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed != 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
