/*
 * opts.c: the one option table behind every admin command. Each command
 * names the options it accepts; the rest are usage errors.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "ctl.h"
#include "redact.h"

static const struct option longopts[] = {{"all", no_argument, NULL, 'a'},
                                         {"class", required_argument, NULL, 'c'},
                                         {"from", required_argument, NULL, 'f'},
                                         {"help", no_argument, NULL, 'h'},
                                         {"interval", required_argument, NULL, 'i'},
                                         {"jid", required_argument, NULL, 'J'},
                                         {"json", no_argument, NULL, 'j'},
                                         {"limit", required_argument, NULL, 'n'},
                                         {"once", no_argument, NULL, 'o'},
                                         {"yes", no_argument, NULL, 'y'},
                                         {NULL, 0, NULL, 0}};

const char *ctl_safe_arg(const char *arg, char *buf, size_t size)
{
    if (strchr(arg, '@') == NULL)
        return arg;
    char *safe = sq_redis_url_redact(arg);
    snprintf(buf, size, "%s", safe != NULL ? safe : "(not shown)");
    free(safe);
    return buf;
}

static int bad(const char *cmd, const char *usage, const char *what, const char *arg)
{
    char buf[512];
    fprintf(stderr, "squirectl %s: %s%s%s\n%s", cmd, what, arg ? " " : "",
            arg ? ctl_safe_arg(arg, buf, sizeof buf) : "", usage);
    return CTL_USAGE;
}

static int set_value(ctl_opts *o, int ch, const char *arg)
{
    char *end;
    errno = 0;
    switch (ch) {
    case 'c':
        o->klass = arg;
        return 0;
    case 'f':
        o->from = arg;
        return 0;
    case 'J':
        o->jid = arg;
        return 0;
    case 'n': {
        long v = strtol(arg, &end, 10);
        if (errno || end == arg || *end || v < 0)
            return -1;
        o->limit = v;
        return 0;
    }
    case 'i': {
        double v = strtod(arg, &end);
        if (errno || end == arg || *end || !isfinite(v) || v < 0.1 || v > 86400)
            return -1;
        o->interval = v;
        return 0;
    }
    }
    return -1;
}

int ctl_opts_parse(int argc, char **argv, const char *allowed, const char *usage, ctl_opts *o)
{
    int ch;
    memset(o, 0, sizeof *o);
    o->limit = 100;
    o->interval = 2.0;
    optind = 0;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        if (ch == 'h') {
            printf("%s", usage);
            return CTL_HELP;
        }
        if (ch == '?' || ch == ':' || strchr(allowed, ch) == NULL)
            return bad(argv[0], usage, "bad option", argv[optind - 1]);
        if (ch == 'j')
            o->json = true;
        else if (ch == 'a')
            o->all = true;
        else if (ch == 'y')
            o->yes = true;
        else if (ch == 'o')
            o->once = true;
        else if (set_value(o, ch, optarg) != 0)
            return bad(argv[0], usage, "bad value", optarg);
    }
    o->rest = argv + optind;
    o->nrest = argc - optind;
    return CTL_OK;
}

int ctl_usage_error(const char *cmd, const char *usage, const char *msg)
{
    return bad(cmd, usage, msg, NULL);
}
