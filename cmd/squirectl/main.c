/*
 * squirectl: manage squire and Sidekiq data in Redis from the command line.
 *
 *   squirectl [-u URL] push CLASS [ARGS_JSON] [-q QUEUE] [--in SECONDS | --at TIME]
 *                                             [--retry N|true|false] [--bulk]
 *   squirectl stats | queues | processes                        [--json]
 *   squirectl jobs QUEUE|retry|scheduled|dead [--class C] [--jid J] [--limit N]
 *   squirectl retry (JID | --all) [--from retry|dead]
 *   squirectl kill JID [--from retry|scheduled]
 *   squirectl delete JID --from QUEUE|retry|scheduled|dead
 *   squirectl clear QUEUE|retry|scheduled|dead --yes
 *   squirectl quiet|stop (IDENTITY | --all)
 *   squirectl dashboard [--interval S] [--once]
 *
 * Every admin command takes --json (one line of JSON on stdout) and -h.
 * Exit status: 0 ok, 1 Redis or runtime error, 64 usage error, 78 bad Redis URL.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

static const struct ctl_command commands[] = {
    {"push", "push a job (now, later, or in bulk)", ctl_push},
    {"stats", "counters, set sizes and queue latencies", ctl_stats},
    {"queues", "queues with size and latency", ctl_queues},
    {"processes", "live squire and Sidekiq processes", ctl_processes},
    {"jobs", "list the jobs of a queue or of retry, scheduled, dead", ctl_jobs},
    {"retry", "retry a job of the retry or dead set now (by jid, or --all)", ctl_retry},
    {"delete", "delete one job by jid", ctl_delete},
    {"clear", "empty a queue or a set (--yes)", ctl_clear},
    {"kill", "move a retry or scheduled job to the dead set", ctl_kill},
    {"quiet", "quiet a process (TSTP), or --all", ctl_quiet},
    {"stop", "stop a process (TERM), or --all", ctl_stop},
    {"dashboard", "a live, refreshing view (like sidekiqmon)", ctl_dashboard},
};

static void usage(FILE *out)
{
    fprintf(out, "Usage: squirectl [-u REDIS_URL] [-C CONFIG] COMMAND [ARGS]\n\nCommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].help);
    fprintf(out, "\nThe Redis URL defaults to $REDIS_PROVIDER / $REDIS_URL / "
                 "redis://localhost:6379/0.\n"
                 "CONFIG is squire's sidekiq.yml (default ./config/sidekiq.yml when there):\n"
                 "its dead_max_jobs, dead_timeout_in_seconds and max_payload_bytes apply.\n"
                 "Run 'squirectl COMMAND -h' for a command's options.\n");
}

int main(int argc, char **argv)
{
    const char *url = NULL;
    char buf[512];
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "-V") == 0 || strcmp(argv[i], "--version") == 0) {
            printf("squirectl %s\n", SQ_VERSION);
            return 0;
        } else if ((strcmp(argv[i], "-C") == 0 || strcmp(argv[i], "--config") == 0) &&
                   i + 1 < argc) {
            ctl_set_config_path(argv[++i]);
        } else if ((strcmp(argv[i], "-u") == 0 || strcmp(argv[i], "--url") == 0) && i + 1 < argc) {
            url = argv[++i];
        } else if (strncmp(argv[i], "--url=", 6) == 0 || strncmp(argv[i], "-u", 2) == 0) {
            url = argv[i] + (argv[i][1] == '-' ? 6 : 2);
        } else {
            fprintf(stderr, "squirectl: unknown option %s\n",
                    ctl_safe_arg(argv[i], buf, sizeof buf));
            usage(stderr);
            return CTL_USAGE;
        }
    }
    if (i >= argc) {
        usage(stderr);
        return CTL_USAGE;
    }
    for (size_t c = 0; c < sizeof commands / sizeof commands[0]; c++)
        if (strcmp(argv[i], commands[c].name) == 0)
            return commands[c].run(url, argc - i, argv + i);
    fprintf(stderr, "squirectl: unknown command %s\n", ctl_safe_arg(argv[i], buf, sizeof buf));
    usage(stderr);
    return CTL_USAGE;
}
