/*
 * config_cli.c: sq_config_load, the whole load in precedence order.
 *
 *   1. argv is parsed (getopt_long, built from the option table) into a list
 *      of (option, value) pairs, and the values are checked on a scratch
 *      config so that a bad flag is a usage error before any file is read;
 *   2. the environment: -e, APP_ENV, RAILS_ENV, RACK_ENV, "development";
 *   3. the file: -C PATH, else <first -r directory or .>/config/sidekiq.yml
 *      (then .yml.erb); a missing default file means defaults;
 *   4. the flags again, over the file (a -q list replaces the file's queues);
 *   5. RAILS_MAX_THREADS when nothing set concurrency; the Redis URL;
 *   6. sq_config_validate.
 *
 * getopt keeps global state: optind is reset to 0 (glibc's full
 * re-initialisation) so the loader can run many times in one process, and
 * opterr = 0 so that getopt never prints.
 */
#include "config_internal.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_OPTIONS 32
#define LONG_ONLY 256 /* getopt val for row i without a short flag: LONG_ONLY + i */

typedef struct cli_arg {
    const sq__option *o;
    const char *value; /* borrowed from argv; NULL for a flag without one */
    char where[48];    /* "-c" or "--concurrency" */
} cli_arg;

typedef struct cli {
    cli_arg *v; /* one per option given: at most argc, so no cap a list of -q can reach */
    size_t n, cap;
    bool help, version;
} cli;

/* "<what> "<arg>" (see --help)" */
static int usage_error(sq_error *err, const char *what, const char *arg)
{
    char quoted[128];
    sq__error_set(err, SQ_EUSAGE, "%s %s (see --help)", what,
                  sq__quote(arg, strlen(arg), quoted, sizeof quoted));
    return -1;
}

static void build_getopt(char *shorts, size_t size, struct option *longs)
{
    const sq__option *opts = sq__options();
    size_t s = 0, l = 0;
    shorts[s++] = ':';
    for (size_t i = 0; i < sq__options_count() && s + 3 < size; i++) {
        int val = opts[i].short_flag != 0 ? opts[i].short_flag : LONG_ONLY + (int)i;
        if (opts[i].short_flag != 0) {
            shorts[s++] = (char)opts[i].short_flag;
            if (opts[i].arg_name != NULL)
                shorts[s++] = ':';
        }
        if (opts[i].long_flag != NULL)
            longs[l++] = (struct option){
                opts[i].long_flag, opts[i].arg_name ? required_argument : no_argument, NULL, val};
    }
    shorts[s] = '\0';
    longs[l] = (struct option){0};
}

static const sq__option *option_for(int val)
{
    const sq__option *opts = sq__options();
    if (val >= LONG_ONLY && (size_t)(val - LONG_ONLY) < sq__options_count())
        return &opts[val - LONG_ONLY];
    for (size_t i = 0; i < sq__options_count(); i++)
        if (opts[i].short_flag != 0 && opts[i].short_flag == val)
            return &opts[i];
    return NULL;
}

/* How the user spelled the option: "--name" when the last argv word was long. */
static void spelled(const sq__option *o, const char *word, char *buf, size_t size)
{
    if ((o->short_flag == 0 || strncmp(word, "--", 2) == 0) && o->long_flag != NULL)
        snprintf(buf, size, "--%s", o->long_flag);
    else
        snprintf(buf, size, "-%c", o->short_flag);
}

static int getopt_error(int ch, char **argv, sq_error *err)
{
    const char *word = argv[optind - 1];
    const sq__option *o = optopt != 0 ? option_for(optopt) : NULL;
    char flag[48], what[64];
    if (o != NULL)
        spelled(o, word, flag, sizeof flag);
    if (ch == ':' && o != NULL) {
        sq__error_set(err, SQ_EUSAGE, "%s: missing value (expected %s)", flag,
                      sq__option_is_list(o) ? o->arg_name
                                            : sq__option_expects(o, what, sizeof what));
        return -1;
    }
    if (o != NULL && o->arg_name == NULL && strncmp(word, "--", 2) == 0) {
        sq__error_set(err, SQ_EUSAGE, "%s: takes no value", flag);
        return -1;
    }
    if (optopt != 0 && optopt < LONG_ONLY) {
        char text[2] = {(char)optopt, '\0'};
        sq__error_set(err, SQ_EUSAGE, "unknown option -%s (see --help)", text);
        return -1;
    }
    return usage_error(err, "unknown or ambiguous option", word);
}

static int add_arg(cli *cl, const sq__option *o, char **argv, int longindex, sq_error *err)
{
    if (o->type == SQ__OPT_HELP || o->type == SQ__OPT_VERSION) {
        cl->help |= o->type == SQ__OPT_HELP;
        cl->version |= o->type == SQ__OPT_VERSION;
        return 0;
    }
    if (cl->n == cl->cap)
        return usage_error(err, "too many options at", argv[optind - 1]); /* not reached */
    cli_arg *a = &cl->v[cl->n];
    if (longindex >= 0)
        snprintf(a->where, sizeof a->where, "--%s", o->long_flag);
    else
        snprintf(a->where, sizeof a->where, "-%c", o->short_flag);
    for (size_t i = 0; i < cl->n; i++) {
        if (cl->v[i].o == o && !sq__option_is_list(o)) {
            sq__error_set(err, SQ_EUSAGE, "%s: given more than once", a->where);
            return -1;
        }
    }
    a->o = o;
    a->value = o->arg_name != NULL ? optarg : NULL;
    cl->n++;
    return 0;
}

static int parse_argv(int argc, char **argv, cli *cl, sq_error *err)
{
    char shorts[2 * MAX_OPTIONS + 2];
    struct option longs[MAX_OPTIONS + 1];
    build_getopt(shorts, sizeof shorts, longs);
    opterr = 0;
    optind = 0;
    for (;;) {
        int longindex = -1;
        int ch = getopt_long(argc, argv, shorts, longs, &longindex);
        if (ch == -1)
            break;
        const sq__option *o = ch == '?' || ch == ':' ? NULL : option_for(ch);
        if (o == NULL)
            return getopt_error(ch, argv, err);
        if (add_arg(cl, o, argv, longindex, err) < 0)
            return -1;
    }
    if (optind < argc)
        return usage_error(err, "unexpected argument", argv[optind]);
    return 0;
}

/* Apply the flags; a setter's config error becomes a usage error. -C and -e
 * are only checked: the loader has used them by the time the final pass runs. */
static int apply_cli(sq_config *c, const cli *cl, bool final, sq_error *err)
{
    bool queues_replaced = false;
    for (size_t i = 0; i < cl->n; i++) {
        const cli_arg *a = &cl->v[i];
        if (final && (a->o->type == SQ__OPT_CONFIG || a->o->type == SQ__OPT_ENV))
            continue; /* the loader used them already */
        if (a->o->type == SQ__OPT_QUEUES && !queues_replaced) {
            sq__option_clear(c, a->o);
            queues_replaced = true;
        }
        sq_error local = {0};
        if (a->o->set(c, a->o, a->where, a->value, &local) < 0) {
            sq__error_set(err, local.code == SQ_ENOMEM ? SQ_ENOMEM : SQ_EUSAGE, "%s",
                          local.message);
            return -1;
        }
    }
    return 0;
}

static int check_cli(const cli *cl, sq_error *err)
{
    sq_config scratch;
    sq_config_init(&scratch);
    int rc = apply_cli(&scratch, cl, false, err);
    sq_config_destroy(&scratch);
    return rc;
}

static const char *flag_value(const cli *cl, sq__opt_type type)
{
    for (size_t i = 0; i < cl->n; i++)
        if (cl->v[i].o->type == type)
            return cl->v[i].value;
    return NULL;
}

static int set_owned(char **field, const char *value, sq_error *err)
{
    char *copy = sq__strdup(value);
    if (copy == NULL) {
        sq__error_set(err, SQ_ENOMEM, "out of memory");
        return -1;
    }
    free(*field);
    *field = copy;
    return 0;
}

static int choose_environment(sq_config *c, const cli *cl, sq_getenv_fn get, sq_error *err)
{
    static const char *const vars[] = {"APP_ENV", "RAILS_ENV", "RACK_ENV"};
    const char *env = flag_value(cl, SQ__OPT_ENV);
    /* Sidekiq's ENV["APP_ENV"] || ...: a set but empty variable is chosen too. */
    for (size_t i = 0; env == NULL && i < SQ_ARRAY_LEN(vars); i++)
        env = get(vars[i]);
    return set_owned(&c->environment, env != NULL ? env : "development", err);
}

/* The directory a -r names, for the default config path. */
static const char *app_dir(const cli *cl)
{
    struct stat st;
    for (size_t i = 0; i < cl->n; i++)
        if (cl->v[i].o->set == sq__option_by_key("require")->set &&
            stat(cl->v[i].value, &st) == 0 && S_ISDIR(st.st_mode))
            return cl->v[i].value;
    return NULL;
}

/* The default file: <dir>/config/sidekiq.yml, then .yml.erb. *path stays
 * NULL when neither exists. */
static int default_path(const cli *cl, char **path, sq_error *err)
{
    static const char *const names[] = {"config/sidekiq.yml", "config/sidekiq.yml.erb"};
    const char *dir = app_dir(cl);
    for (size_t i = 0; i < SQ_ARRAY_LEN(names); i++) {
        if (asprintf(path, "%s%s%s", dir ? dir : "", dir ? "/" : "", names[i]) < 0) {
            *path = NULL;
            sq__error_set(err, SQ_ENOMEM, "out of memory");
            return -1;
        }
        struct stat st;
        if (stat(*path, &st) == 0 || (errno != ENOENT && errno != ENOTDIR))
            return 0;
        free(*path);
        *path = NULL;
    }
    return 0;
}

static int load_file(sq_config *c, const cli *cl, sq_getenv_fn get, sq_error *err)
{
    const char *explicit = flag_value(cl, SQ__OPT_CONFIG);
    char *path = NULL;
    if (explicit == NULL && default_path(cl, &path, err) < 0)
        return -1;
    if (explicit == NULL && path == NULL)
        return 0; /* no file: defaults */
    if (explicit != NULL && set_owned(&path, explicit, err) < 0)
        return -1;
    free(c->config_path);
    c->config_path = path;
    char *text = NULL;
    size_t len = 0;
    int rc = sq__config_read_file(path, &text, &len, err);
    if (rc == 0)
        rc = sq_config_apply_yaml(c, path, text, len, c->environment, get, err);
    free(text);
    return rc;
}

static int apply_env_defaults(sq_config *c, sq_getenv_fn get, sq_error *err)
{
    const char *threads = get("RAILS_MAX_THREADS");
    const sq__option *o = sq__option_by_key("concurrency");
    if (!c->concurrency_set && threads != NULL && threads[0] != '\0') {
        /* Sidekiq: Integer(ENV["RAILS_MAX_THREADS"]), so "010" is 8 and "0x10" 16 */
        long long n;
        char decimal[32];
        const char *text = threads;
        if (sq__ruby_integer(threads, strlen(threads), &n) == 0) {
            snprintf(decimal, sizeof decimal, "%lld", n);
            text = decimal;
        }
        if (o->set(c, o, "RAILS_MAX_THREADS", text, err) < 0)
            return -1;
        c->concurrency_set = false; /* not set by the file or a flag */
    }
    if (sq_redis_url_apply_env(&c->redis_opts, get, err) < 0)
        return -1;
    const char *url = NULL;
    if (sq_redis_url_from_env(get, &url, err) < 0)
        return -1;
    if (url == NULL)
        return 0;
    const char *provider = get("REDIS_PROVIDER");
    const char *var =
        provider != NULL && provider[0] != '\0' && get(provider) == url ? provider : "REDIS_URL";
    sq_redis_url parsed;
    sq_error local = {0};
    if (sq_redis_url_parse(url, &parsed, &local) < 0) {
        sq__error_set(err, local.code, "%s: %s", var, local.message);
        return -1;
    }
    sq_redis_url_destroy(&parsed);
    return set_owned(&c->redis_url, url, err);
}

int sq_config_load(sq_config *c, int argc, char **argv, sq_getenv_fn getenv_fn, sq_action *action,
                   sq_error *err)
{
    sq_getenv_fn get = getenv_fn != NULL ? getenv_fn : sq__getenv;
    cli *cl = calloc(1, sizeof *cl);
    *action = SQ_ACTION_RUN;
    if (cl != NULL) {
        cl->cap = argc > 0 ? (size_t)argc : 1;
        cl->v = calloc(cl->cap, sizeof *cl->v);
    }
    if (cl == NULL || cl->v == NULL) {
        free(cl);
        sq__error_set(err, SQ_ENOMEM, "out of memory");
        return -1;
    }
    int rc = parse_argv(argc, argv, cl, err);
    if (rc == 0 && (cl->help || cl->version)) {
        *action = cl->help ? SQ_ACTION_HELP : SQ_ACTION_VERSION;
        free(cl->v);
        free(cl);
        return 0;
    }
    if (rc == 0)
        rc = check_cli(cl, err);
    if (rc == 0)
        rc = choose_environment(c, cl, get, err);
    if (rc == 0)
        rc = load_file(c, cl, get, err);
    if (rc == 0)
        rc = apply_cli(c, cl, true, err);
    if (rc == 0)
        rc = apply_env_defaults(c, get, err);
    if (rc == 0)
        rc = sq_config_validate(c, err);
    free(cl->v);
    free(cl);
    return rc;
}
