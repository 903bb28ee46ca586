/*
 * config_usage.c: the --help text, generated once from the option table:
 * each flag and each sidekiq.yml key with its help and default.
 */
#include "config_internal.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>

static char usage_text[8192];
static pthread_once_t usage_once = PTHREAD_ONCE_INIT;

static void append(size_t *len, const char *fmt, ...) SQ_PRINTF(2, 3);
static void append(size_t *len, const char *fmt, ...)
{
    if (*len >= sizeof usage_text)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(usage_text + *len, sizeof usage_text - *len, fmt, ap);
    va_end(ap);
    if (n > 0)
        *len += (size_t)n;
}

static const char *default_text(const sq__option *o, char *buf, size_t size)
{
    switch (o->type) {
    case SQ__OPT_INT:
    case SQ__OPT_LONG:
    case SQ__OPT_SIZE:
        snprintf(buf, size, "%ld", o->def_long);
        return buf;
    case SQ__OPT_DOUBLE:
        if (o->def_double == 0)
            return o->def_str;
        snprintf(buf, size, "%g", o->def_double);
        return buf;
    case SQ__OPT_BOOL:
        return o->def_long ? "true" : "false";
    case SQ__OPT_FETCH:
        return o->def_long == SQ_FETCH_RELIABLE ? "reliable" : "basic";
    case SQ__OPT_METRICS:
        return sq_config_metrics_name((unsigned)o->def_long);
    case SQ__OPT_LEVEL:
        return sq__config_level_name(o->def_long);
    default:
        return o->def_str != NULL && o->def_str[0] != '\0' ? o->def_str : NULL;
    }
}

static void append_row(size_t *len, const char *left, const sq__option *o)
{
    char buf[64];
    const char *def = default_text(o, buf, sizeof buf);
    append(len, "  %-32s %s", left, o->help);
    if (def != NULL)
        append(len, " (default: %s)", def);
    append(len, "\n");
}

static void build_usage(void)
{
    size_t len = 0;
    char left[64];
    append(&len, "Usage: squire [options]\n\nOptions (they override the config file):\n");
    for (size_t i = 0; i < sq__options_count(); i++) {
        const sq__option *o = &sq__options()[i];
        if (o->short_flag == 0 && o->long_flag == NULL)
            continue;
        char shortf[8] = "    ";
        if (o->short_flag != 0)
            snprintf(shortf, sizeof shortf, "-%c, ", o->short_flag);
        snprintf(left, sizeof left, "%s--%s%s%s", shortf, o->long_flag, o->arg_name ? " " : "",
                 o->arg_name ? o->arg_name : "");
        append_row(&len, left, o);
    }
    append(&len, "\nConfig file keys (sidekiq.yml; \"key:\" or \":key:\"):\n");
    for (size_t i = 0; i < sq__options_count(); i++)
        if (sq__options()[i].key != NULL)
            append_row(&len, sq__options()[i].key, &sq__options()[i]);
    append(&len, "\nEnvironment: REDIS_URL, REDIS_PROVIDER (the name of the variable holding "
                 "the URL),\n  RAILS_MAX_THREADS, APP_ENV, RAILS_ENV, RACK_ENV,\n"
                 "  SQUIRE_REDIS_<KEY> for each redis.<key> above but url (they win over "
                 "the file),\n  e.g. SQUIRE_REDIS_SSL_VERIFY_MODE=none, "
                 "SQUIRE_REDIS_SENTINELS=host:port,host:port.\n");
}

const char *sq_config_usage(void)
{
    pthread_once(&usage_once, build_usage);
    return usage_text;
}
