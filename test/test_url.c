/*
 * test_url.c: Redis URLs (url.c): parsing, redaction, display, sentinels,
 * and secrets never shown. Scaffolding in configtest.h.
 */
#include "configtest.h"

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


/* ---- suite ----------------------------------------------------------------------- */

static Suite *url_suite(void)
{
    Suite *s = suite_create("url");
    TCase *tc = tcase_create("url");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_redis_section);
    tcase_add_test(tc, test_redis_cert_needs_key);
    tcase_add_test(tc, test_redis_env_options);
    tcase_add_test(tc, test_sentinel_address_parse);
    tcase_add_loop_test(tc, test_url_parse_good, 0, (int)N_ELEMS(good_urls));
    tcase_add_loop_test(tc, test_url_parse_bad, 0, (int)N_ELEMS(bad_urls));
    tcase_add_test(tc, test_url_redact);
    tcase_add_test(tc, test_url_errors_never_show_password);
    tcase_add_test(tc, test_config_errors_never_show_secrets);
    tcase_add_test(tc, test_url_display);
    tcase_add_test(tc, test_sentinels_need_a_master_name);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return config_test_run(url_suite());
}
