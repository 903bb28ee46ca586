/*
 * dashboard.c: squirectl dashboard, a live view like sidekiqmon: the stats,
 * the processes and the queues, redrawn every --interval seconds (default 2)
 * until Ctrl-C. --once prints one frame without clearing the screen.
 * The signal handler only sets a flag; the loop sleeps until the next frame.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctl.h"

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

/* One frame into out (a memory stream, so the screen is written at once). */
static int frame(sq_redis *r, const ctl_opts *o, FILE *out, sq_error *err)
{
    ctl_summary s;
    ctl_process *p = NULL;
    size_t n = 0;
    if (ctl_stats_fetch(r, &s, err) != 0)
        return -1;
    if (ctl_procs_fetch(r, &p, &n, err) != 0) {
        ctl_stats_destroy(&s);
        return -1;
    }
    if (o->json) {
        ctl_json_print(json_pack("{s:f, s:o, s:o}", "time", ctl_now(), "stats", ctl_stats_json(&s),
                                 "processes", ctl_procs_json(p, n)),
                       out);
    } else {
        char now[32];
        fprintf(out, "squire dashboard  %s  %s\n\n", sq_redis_display(r),
                ctl_fmt_time(ctl_now(), now));
        ctl_stats_print(&s, out);
        fprintf(out, "\nProcesses (%zu live)\n", n);
        ctl_procs_print(p, n, out);
    }
    ctl_procs_free(p, n);
    ctl_stats_destroy(&s);
    return 0;
}

static void sleep_until_next(double seconds)
{
    struct timespec ts = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
    while (!stop_requested && nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static const char usage[] =
    "Usage: squirectl dashboard [--interval SECONDS] [--once] [--json]\n"
    "  redraws stats, processes and queues every interval (default 2 s) until Ctrl-C;\n"
    "  --once prints one frame and exits.\n";

static void show(const char *text, size_t len, bool clear)
{
    if (clear)
        fputs("\033[H\033[2J", stdout);
    fwrite(text, 1, len, stdout);
    fflush(stdout);
}

int ctl_dashboard(const char *url, int argc, char **argv)
{
    ctl_opts o;
    int rc;
    sq_redis *r = ctl_open_no_operands(url, argc, argv, "jio", usage, &o, &rc);
    if (r == NULL)
        return rc;
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    bool clear = !o.once && !o.json;
    while (!stop_requested) {
        char *buf = NULL;
        size_t len = 0;
        FILE *out = open_memstream(&buf, &len);
        sq_error err = {0};
        int f = frame(r, &o, out, &err);
        if (f != 0 && !o.once)
            fprintf(out, "squirectl dashboard: %s (retrying)\n", err.message);
        fclose(out);
        if (f == 0 || !o.once)
            show(buf, len, clear);
        free(buf);
        if (o.once) {
            rc = f == 0 ? CTL_OK : ctl_fail(argv[0], &err);
            break;
        }
        sleep_until_next(o.interval);
    }
    sq_redis_free(r);
    return rc;
}
