/*
 * cli.c: the command-line entry, sq_main: flags and config, credentials
 * ($CREDENTIALS_DIRECTORY), the root check, plugins, then `--check` or the
 * launcher.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"
#include "launcher.h"
#include "log.h"
#include "notify.h"
#include "pgpool.h"
#include "proctitle.h"
#include "redis.h"
#include "registry.h"

/* Read one URL from $CREDENTIALS_DIRECTORY/<name> into *out (malloc'd),
 * unless *out is already set; nothing when there is no such file. */
static int read_credential(const char *name, char **out, sq_error *err)
{
    const char *dir = getenv("CREDENTIALS_DIRECTORY");
    if (*out != NULL || dir == NULL)
        return 0;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    /* whole: a URL whose password is a cloud IAM token passes 2 KB */
    struct stat st;
    size_t size = fstat(fileno(f), &st) == 0 && st.st_size > 0 ? (size_t)st.st_size : 0;
    char *url = malloc(size + 1);
    size_t n = url ? fread(url, 1, size, f) : 0;
    fclose(f);
    *out = NULL;
    if (url != NULL) {
        url[n] = '\0';
        url[strcspn(url, "\r\n")] = '\0';
        *out = strdup(url);
        memset(url, 0, n);
        free(url);
    }
    if (*out == NULL)
        sq__error_set(err, SQ_ENOMEM, "%s: out of memory", path);
    return *out ? 0 : -1;
}

/* Where the URLs come from when the config and environment name none:
 * PostgreSQL: database.url, else $DATABASE_URL, else the credential
 * database_url; Redis: the credential redis_url (systemd LoadCredential=). */
static int load_credential(sq_config *cfg, sq_error *err)
{
    /* where the database URL came from, named when libpq cannot parse it */
    char key[4200];
    snprintf(key, sizeof key, "%s", cfg->db_url_where ? cfg->db_url_where : "database.url");
    const char *env = getenv("DATABASE_URL");
    if (cfg->db_url == NULL && env != NULL && env[0] != '\0') {
        snprintf(key, sizeof key, "DATABASE_URL");
        if ((cfg->db_url = strdup(env)) == NULL) {
            sq__error_set(err, SQ_ENOMEM, "out of memory");
            return -1;
        }
    }
    bool had_url = cfg->db_url != NULL;
    if (read_credential("database_url", &cfg->db_url, err) != 0)
        return -1;
    if (!had_url && cfg->db_url != NULL)
        snprintf(key, sizeof key, "%s/database_url", getenv("CREDENTIALS_DIRECTORY"));
    sq_error perr = {0};
    if (cfg->db_url != NULL && sq_pgpool_url_check(cfg->db_url, &perr) != 0) {
        sq__error_set(err, SQ_ECONFIG, "%s: %s", key, perr.message);
        return -1;
    }
    bool from_file = cfg->redis_url == NULL;
    if (read_credential("redis_url", &cfg->redis_url, err) != 0)
        return -1;
    if (!from_file || cfg->redis_url == NULL)
        return 0;
    sq_redis_url parsed = {0};
    if (sq_redis_url_parse(cfg->redis_url, &parsed, &perr) != 0) {
        sq__error_set(err, SQ_ECONFIG, "%s/redis_url: %s", getenv("CREDENTIALS_DIRECTORY"),
                      perr.message);
        return -1;
    }
    sq_redis_url_destroy(&parsed);
    return 0;
}

int sq_main(int argc, char **argv, sq_registry *reg)
{
    sq_config cfg;
    sq_action action = SQ_ACTION_RUN;
    sq_error err = {0};
    int status = 0;
    sq_registry *own = NULL;

    /* issue 16: before anything keeps an argv or environment string */
    sq_proctitle_init(argc, argv);
    sq_config_init(&cfg);
    if (sq_config_load(&cfg, argc, argv, NULL, &action, &err) != 0) {
        fprintf(stderr, "squire: %s\n", err.message);
        if (err.code == SQ_EUSAGE)
            fprintf(stderr, "Run 'squire -h' to see the flags.\n");
        sq_config_destroy(&cfg);
        return err.code == SQ_EUSAGE ? EX_USAGE : EX_CONFIG;
    }
    if (action == SQ_ACTION_HELP) {
        fputs(sq_config_usage(), stdout);
        goto out;
    }
    if (action == SQ_ACTION_VERSION) {
        printf("squire %s\n", SQ_VERSION);
        goto out;
    }
    const char *dyno = getenv("DYNO");
    sq_log_setup(cfg.verbose ? SQ_LOG_DEBUG : (sq_log_level)cfg.log_level,
                 dyno == NULL || dyno[0] == '\0');
    sq_redis_set_reporter(sq_log_report, NULL);
    sq_log_json(cfg.log_format != NULL && strcmp(cfg.log_format, "json") == 0); /* issue 17 */
    for (size_t i = 0; i < cfg.nwarnings; i++)
        sq_log(SQ_LOG_WARN, "%s", cfg.warnings[i]);
    sq_notify_init();

    const char *allow = getenv("SQUIRE_ALLOW_ROOT");
    if (geteuid() == 0 && !cfg.allow_root && !(allow && strcmp(allow, "1") == 0)) {
        fprintf(stderr, "squire: refusing to run as root: handlers run with every privilege "
                        "it has. Use a dedicated user (systemd: DynamicUser=yes), or pass "
                        "--allow-root (or SQUIRE_ALLOW_ROOT=1) if you must.\n");
        status = EX_NOPERM;
        goto out;
    }
    if (load_credential(&cfg, &err) != 0) {
        if (cfg.check)
            printf("%-9s FAIL %s\nsquire --check: FAILED\n", "database", err.message);
        fprintf(stderr, "squire: %s\n", err.message);
        status = EX_CONFIG;
        goto out;
    }

    /* Block our signals before any thread exists, so every thread inherits
     * the mask and only the main thread's sigtimedwait sees them. */
    sigset_t set;
    sq_launcher_signal_set(&set);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    sq_redis_sigpipe_ignored();

    if (reg == NULL)
        reg = own = sq_registry_new();
    if (reg == NULL) {
        status = 1;
        goto out;
    }
    for (size_t i = 0; i < cfg.nrequires; i++) {
        sq_error perr = {0};
        struct stat st;
        if (stat(cfg.requires[i], &st) == 0 && S_ISDIR(st.st_mode)) {
            /* Sidekiq's `-r .` names the app directory; the config file is
             * looked up there, and handlers come from shared objects. */
            sq_log(SQ_LOG_DEBUG, "require %s: a directory, no handlers loaded from it",
                   cfg.requires[i]);
            continue;
        }
        if (sq_plugin_load(reg, cfg.requires[i], &perr) != 0) {
            if (cfg.check)
                printf("%-9s FAIL %s\nsquire --check: FAILED\n", "handlers", perr.message);
            sq_log(SQ_LOG_ERROR, "%s", perr.message);
            status = EX_CONFIG;
            goto out;
        }
    }
    status = cfg.check ? sq__check(&cfg, reg) : sq_launcher_run(&cfg, reg);
out:
    sq_registry_free(own);
    sq_config_destroy(&cfg);
    return status;
}
