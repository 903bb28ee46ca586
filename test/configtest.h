/*
 * configtest.h: the scaffolding shared by the configuration suites
 * (test_config, test_config_erb, test_config_cli, test_url): a fresh temp
 * dir per test (so the default config path is under the test's control), a
 * fake environment table, YAML text or argv fed to the loader, and the
 * fixtures under test/fixtures/config. Header-only: each suite uses what it
 * needs.
 */
#ifndef SQ_TEST_CONFIGTEST_H
#define SQ_TEST_CONFIGTEST_H

#include <check.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "config.h"
#include "harness.h"
#include "redact.h"
#include "redis.h"

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

/* ---- harness ------------------------------------------------------------- */

static char fixture_dir[PATH_MAX] __attribute__((unused));
static char start_dir[PATH_MAX] __attribute__((unused));
static char tmp_dir[64] __attribute__((unused));

static sq_config cfg;
static sq_error err;
static sq_action action __attribute__((unused));

static struct {
    const char *name, *value;
} fake_env[16];
static size_t fake_env_n;

static inline const char *fake_getenv(const char *name)
{
    for (size_t i = 0; i < fake_env_n; i++)
        if (strcmp(fake_env[i].name, name) == 0)
            return fake_env[i].value;
    return NULL;
}

static inline void env_set(const char *name, const char *value)
{
    ck_assert_uint_lt(fake_env_n, 16);
    fake_env[fake_env_n].name = name;
    fake_env[fake_env_n].value = value;
    fake_env_n++;
}

static inline void setup(void)
{
    fake_env_n = 0;
    memset(&err, 0, sizeof err);
    action = (sq_action)-1;
    sq_config_init(&cfg);
    snprintf(tmp_dir, sizeof tmp_dir, "/tmp/sq_test_config_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmp_dir));
    ck_assert_int_eq(chdir(tmp_dir), 0);
}

static inline void teardown(void)
{
    sq_config_destroy(&cfg);
    if (chdir(start_dir) != 0)
        abort();
    sqt_rmtree(tmp_dir);
}

static inline void write_file(const char *path, const char *text, size_t len)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(text, 1, len, f), len);
    ck_assert_int_eq(fclose(f), 0);
}

static inline void write_text(const char *path, const char *text)
{
    write_file(path, text, strlen(text));
}

static inline const char *fixture(const char *name)
{
    static char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s", fixture_dir, name);
    return path;
}

/* Apply YAML text as "test.yml" in environment env. */
static inline int yml_env(const char *text, const char *env)
{
    return sq_config_apply_yaml(&cfg, "test.yml", text, strlen(text), env, fake_getenv, &err);
}

static inline int yml(const char *text)
{
    return yml_env(text, "development");
}

static inline int load_args(const char **args)
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

static inline bool has_warning(const char *substr)
{
    for (size_t i = 0; i < cfg.nwarnings; i++)
        if (strstr(cfg.warnings[i], substr) != NULL)
            return true;
    return false;
}

static inline void assert_queue(size_t i, const char *name, int weight)
{
    ck_assert_uint_gt(cfg.nqueues, i);
    ck_assert_str_eq(cfg.queues[i].name, name);
    ck_assert_int_eq(cfg.queues[i].weight, weight);
}

static inline void find_fixtures(void)
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

/* Run the suite from the start directory with the fixtures found. */
static inline int config_test_run(Suite *s)
{
    if (getcwd(start_dir, sizeof start_dir) == NULL)
        return 1;
    find_fixtures();
    return sqt_run(s);
}

#endif
