/*
 * test_config_cli.c: the command line and environment variables
 * (config_cli.c): flags over the file, usage errors, RAILS_MAX_THREADS,
 * REDIS_URL / REDIS_PROVIDER. Scaffolding in configtest.h.
 */
#include "configtest.h"

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


/* ---- suite ----------------------------------------------------------------------- */

static Suite *config_cli_suite(void)
{
    Suite *s = suite_create("config_cli");
    TCase *tc = tcase_create("config_cli");
    tcase_add_checked_fixture(tc, setup, teardown);
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
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return config_test_run(config_cli_suite());
}
