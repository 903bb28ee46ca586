/*
 * proctitle.c: the process title (proctitle.h).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proctitle.h"
#include "squire.h"

extern char **environ;

static char *area; /* the original argv (and environment) strings */
static size_t area_len;
static size_t argv_len;   /* argv's part of area */
static size_t dirty;      /* area[0, dirty) may hold a title: the rest is as it was */
static char **arg_copies; /* argv's strings, which argv now points at */

/* Field 48 of /proc/self/stat, where the kernel says argv begins. */
static unsigned long arg_start(void)
{
    FILE *f = fopen("/proc/self/stat", "r");
    char buf[2048];
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f)
        fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')'); /* the command name may hold spaces */
    if (p == NULL)
        return 0;
    /* p + 2 is field 3; field 48 is 45 fields further */
    p += 2;
    for (int field = 3; field < 48 && p != NULL; field++) {
        p = strchr(p, ' ');
        if (p)
            p++;
    }
    return p ? strtoul(p, NULL, 10) : 0;
}

int sq_proctitle_init(int argc, char **argv)
{
    if (area != NULL)
        return 0;
    if (argc < 1 || argv == NULL || argv[0] == NULL ||
        arg_start() != (unsigned long)(uintptr_t)argv[0])
        return -1;
    char *start = argv[0];
    /* The strings laid end to end: argv's, then (usually) the environment's. */
    char *end = argv[0] + strlen(argv[0]) + 1;
    for (int i = 1; i < argc && argv[i] == end; i++)
        end += strlen(argv[i]) + 1;
    size_t args_end = (size_t)(end - start);
    size_t nenv = 0;
    while (environ != NULL && environ[nenv] != NULL)
        nenv++;
    char **env = calloc(nenv + 1, sizeof *env);
    char **args = calloc((size_t)argc + 1, sizeof *args);
    if (env == NULL || args == NULL) {
        free(env);
        free(args);
        return -1;
    }
    for (size_t i = 0; i < nenv; i++)
        if ((env[i] = strdup(environ[i])) == NULL)
            return -1; /* out of memory at start-up: the copies made are kept */
    for (int i = 0; i < argc; i++)
        if ((args[i] = strdup(argv[i])) == NULL)
            return -1;
    for (size_t i = 0; i < nenv && environ[i] == end; i++)
        end += strlen(environ[i]) + 1;
    environ = env;
    for (int i = 0; i < argc; i++)
        argv[i] = args[i];
    arg_copies = args;
    /* glibc's program_invocation_name points into argv[0] too */
    program_invocation_name = args[0];
    const char *slash = strrchr(args[0], '/');
    program_invocation_short_name = (char *)(slash ? slash + 1 : args[0]);
    area = start;
    area_len = (size_t)(end - start);
    argv_len = args_end;
    dirty = 0;
    return 0;
}

void sq_proctitle_set(const char *title)
{
    if (area == NULL || area_len < 2)
        return;
    size_t n = strlen(title);
    if (n > area_len - 1)
        n = area_len - 1;
    /* NULs after it to the end of argv's part (ps shows the title alone) or,
     * when it runs into the environment's, to the end of the environment
     * string its NUL lands in: /proc/<pid>/environ keeps every string the
     * title does not reach, whole. The kernel reads a title that runs past
     * argv up to its NUL (argv's last byte is then not NUL). */
    size_t stop = argv_len;
    if (n + 1 > argv_len) {
        stop = n;
        while (stop >= dirty && stop < area_len - 1 && area[stop] != '\0')
            stop++;
        stop++;
    }
    if (stop < dirty)
        stop = dirty; /* a longer title's tail */
    memcpy(area, title, n);
    memset(area + n, 0, stop - n);
    dirty = stop;
}

size_t sq_proctitle_room(void)
{
    return area != NULL && area_len >= 2 ? area_len - 1 : 0;
}

int sq_proctitle_format(char *buf, size_t size, const char *tag, int busy, int concurrency,
                        const char *state)
{
    bool has_state = state != NULL && state[0] != '\0';
    char rest[96]; /* " [2 of 5 busy] stopping" */
    int rn = snprintf(rest, sizeof rest, " [%d of %d busy]%s%s", busy, concurrency,
                      has_state ? " " : "", has_state ? state : "");
    size_t head = strlen("squire " SQ_VERSION), tlen = tag != NULL ? strlen(tag) : 0;
    /* A tag too long for size is cut (at a character's start), so that
     * the busy count and the state stay in the title. */
    if (tlen > 0 && size > 0 && head + 1 + tlen + (size_t)rn > size - 1) {
        size_t room = size - 1 > head + 1 + (size_t)rn ? size - 1 - head - 1 - (size_t)rn : 0;
        tlen = room;
        while (tlen > 0 && ((unsigned char)tag[tlen] & 0xC0) == 0x80)
            tlen--;
    }
    return snprintf(buf, size, "squire %s%s%.*s%s", SQ_VERSION, tlen > 0 ? " " : "", (int)tlen,
                    tlen > 0 ? tag : "", rest);
}
