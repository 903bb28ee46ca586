/*
 * squirectl push: enqueue jobs exactly as Sidekiq's client does.
 *
 *   squirectl push HardJob '["bob", 3]'                 now, queue "default"
 *   squirectl push HardJob '["bob", 3]' -q critical --in 300
 *   squirectl push HardJob '["bob", 3]' --at 2026-12-01T09:00:00Z
 *   squirectl push HardJob --bulk < args.jsonl          one args array per line
 *   squirectl push HardJob '[]' --traceparent 00-<trace>-<span>-01   W3C trace context
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctl.h"

static void push_usage(FILE *out)
{
    fprintf(out,
            "Usage: squirectl push CLASS [ARGS_JSON] [options]\n"
            "  ARGS_JSON          the job's arguments as a JSON array (default [])\n"
            "  -q, --queue NAME   queue (default \"default\")\n"
            "      --in SECONDS   run after this many seconds\n"
            "      --at TIME      run at epoch seconds or ISO 8601 UTC (2026-12-01T09:00:00Z)\n"
            "  -r, --retry N      retries before the dead set: a number, true (25) or false\n"
            "      --bulk         read one ARGS_JSON array per line from stdin\n"
            "      --traceparent TP   W3C trace context for the job (00-<32 hex>-<16 hex>-<2 hex>)\n"
            "      --tracestate TS    and its tracestate (with --traceparent)\n"
            "Prints the jid of each job pushed (bulk: the count).\n");
}

int ctl_parse_time(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno == 0 && end != s && *end == '\0' && isfinite(v) && v > 0) {
        *out = v;
        return 0;
    }
    struct tm tm = {0};
    const char *rest = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (rest == NULL ||
        (strcmp(rest, "Z") != 0 && strcmp(rest, "") != 0 && strcmp(rest, "+00:00") != 0))
        return -1;
    *out = (double)timegm(&tm);
    return 0;
}

/* --retry true|false|N into opts (N = 0 goes through extra: dead at once). */
static int parse_retry(const char *s, sq_push_opts *opts)
{
    if (strcmp(s, "true") == 0) {
        opts->retry = SQ_RETRY_DEFAULT;
        return 0;
    }
    if (strcmp(s, "false") == 0) {
        opts->retry = SQ_RETRY_NEVER;
        return 0;
    }
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < 0 || v > 1000000)
        return -1;
    if (v == 0) {
        json_decref(opts->extra);
        opts->extra = json_pack("{s:i}", "retry", 0);
    } else {
        opts->retry = (int)v;
    }
    return 0;
}

static json_t *parse_args(const char *s, const char *where)
{
    json_error_t jerr;
    json_t *args = json_loads(s, JSON_DECODE_ANY, &jerr);
    if (args == NULL) {
        fprintf(stderr, "squirectl push: %s: not JSON: %s\n", where, jerr.text);
        return NULL;
    }
    if (!json_is_array(args)) {
        fprintf(stderr, "squirectl push: %s: expected a JSON array of arguments\n", where);
        json_decref(args);
        return NULL;
    }
    return args;
}

static int push_bulk_stdin(sq_client *c, const char *klass, const sq_push_opts *opts)
{
    json_t *list = json_array();
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    long lineno = 0;
    int rc = CTL_OK;
    while ((n = getline(&line, &cap, stdin)) > 0) {
        lineno++;
        if (strspn(line, " \t\r\n") == (size_t)n)
            continue;
        char where[32];
        snprintf(where, sizeof where, "stdin line %ld", lineno);
        json_t *args = parse_args(line, where);
        if (args == NULL) {
            rc = CTL_USAGE;
            break;
        }
        json_array_append_new(list, args);
    }
    free(line);
    if (rc == CTL_OK) {
        sq_error err = {0};
        if (sq_push_bulk(c, klass, list, opts, &err) != 0) {
            fprintf(stderr, "squirectl push: %s\n", err.message);
            rc = CTL_ERROR;
        } else {
            printf("%zu\n", json_array_size(list));
        }
    }
    json_decref(list);
    return rc;
}

int ctl_push(const char *url, int argc, char **argv)
{
    static const struct option longopts[] = {{"queue", required_argument, NULL, 'q'},
                                             {"in", required_argument, NULL, 'i'},
                                             {"at", required_argument, NULL, 'a'},
                                             {"retry", required_argument, NULL, 'r'},
                                             {"bulk", no_argument, NULL, 'b'},
                                             {"traceparent", required_argument, NULL, 'T'},
                                             {"tracestate", required_argument, NULL, 'S'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    sq_push_opts opts = {0};
    bool bulk = false;
    sq_client *c = NULL;
    char buf[512];
    int ch, rc = CTL_OK;
    optind = 0;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, "q:r:h", longopts, NULL)) != -1) {
        char *end;
        switch (ch) {
        case 'q':
            opts.queue = optarg;
            break;
        case 'i': {
            errno = 0;
            double s = strtod(optarg, &end);
            if (errno || end == optarg || *end || !isfinite(s) || s < 0) {
                fprintf(stderr, "squirectl push: --in: expected seconds, got \"%s\"\n", optarg);
                {
                    rc = CTL_USAGE;
                    goto out;
                }
            }
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            opts.at = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9 + s;
            break;
        }
        case 'a':
            if (ctl_parse_time(optarg, &opts.at) != 0) {
                fprintf(stderr,
                        "squirectl push: --at: expected epoch seconds or "
                        "YYYY-MM-DDTHH:MM:SSZ, got \"%s\"\n",
                        optarg);
                {
                    rc = CTL_USAGE;
                    goto out;
                }
            }
            break;
        case 'r':
            if (parse_retry(optarg, &opts) != 0) {
                fprintf(stderr,
                        "squirectl push: --retry: expected a number, true or false, "
                        "got \"%s\"\n",
                        optarg);
                {
                    rc = CTL_USAGE;
                    goto out;
                }
            }
            break;
        case 'b':
            bulk = true;
            break;
        case 'T': /* checked by the client: a malformed one is refused */
            opts.traceparent = optarg;
            break;
        case 'S':
            opts.tracestate = optarg;
            break;
        case 'h':
            push_usage(stdout);
            goto out;
        default:
            fprintf(stderr, "squirectl push: bad option %s\n",
                    ctl_safe_arg(argv[optind - 1], buf, sizeof buf));
            push_usage(stderr);
            {
                rc = CTL_USAGE;
                goto out;
            }
        }
    }
    int rest = argc - optind;
    if (rest < 1 || rest > 2 || (bulk && rest != 1)) {
        push_usage(stderr);
        {
            rc = CTL_USAGE;
            goto out;
        }
    }
    const char *klass = argv[optind];
    sq_error err = {0};
    c = sq_client_new(url, &err);
    if (c == NULL) {
        fprintf(stderr, "squirectl: %s\n", err.message);
        rc = err.code == SQ_ECONFIG ? 78 : CTL_ERROR;
        goto out;
    }
    if (bulk) {
        rc = push_bulk_stdin(c, klass, &opts);
    } else {
        json_t *args = rest == 2 ? parse_args(argv[optind + 1], "ARGS_JSON") : json_array();
        char jid[25];
        if (args == NULL) {
            rc = CTL_USAGE;
        } else if (sq_push(c, klass, args, &opts, jid, &err) != 0) {
            fprintf(stderr, "squirectl push: %s\n", err.message);
            rc = CTL_ERROR;
        } else {
            printf("%s\n", jid);
        }
        json_decref(args);
    }
out:
    sq_client_free(c);
    json_decref(opts.extra);
    return rc;
}
