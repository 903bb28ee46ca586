/*
 * test_config.c: sidekiq.yml (config.c, config_yaml.c): defaults, keys and
 * values, queues, unknown keys, environments, aliases, bad files, the file
 * itself, and validation.
 *
 * Bad files are data: test/fixtures/config/<case>.yml plus one row of
 * bad_fixtures[] (expected line and message). Everything else feeds YAML text
 * to sq_config_apply_yaml or argv to sq_config_load. The environment is a
 * fake table; each test runs in a fresh temporary directory so that the
 * default config path is under the test's control (configtest.h).
 */
#include "configtest.h"

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
    tcase_add_test(tc, test_example_file_loads);
    tcase_add_test(tc, test_database_section);
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
    tcase_add_test(tc, test_validate);
    tcase_add_test(tc, test_usage_text);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return config_test_run(config_suite());
}
