/*
 * signals.c: squirectl quiet and stop, as the Web UI's Quiet and Stop buttons
 * (Process#quiet!/#stop!): MULTI; LPUSH <id>-signals TSTP|TERM;
 * EXPIRE <id>-signals 60; EXEC. The process acts on it at its next beat.
 * Only live processes are signalled: a member of `processes` whose hash still
 * has `info`, and not an embedded one (Sidekiq 7 refuses those too).
 */
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

static int send_signal(sq_redis *r, const char *id, const char *sig, sq_error *err)
{
    size_t idlen = strlen(id);
    char key[idlen + 9];
    memcpy(key, id, idlen);
    memcpy(key + idlen, "-signals", 9);
    if (sq_redis_pipe_cmd(r, err, "MULTI") != 0 ||
        sq_redis_pipe_cmd(r, err, "LPUSH %s %s", key, sig) != 0 ||
        sq_redis_pipe_cmd(r, err, "EXPIRE %s 60", key) != 0 ||
        sq_redis_pipe_cmd(r, err, "EXEC") != 0)
        return -1;
    redisReply *exec = NULL;
    int rc = sq_redis_pipe_drain(r, 4, &exec, err);
    if (rc == 0 && (exec == NULL || exec->type != REDIS_REPLY_ARRAY)) {
        snprintf(err->message, sizeof err->message, "signal %s: transaction aborted", id);
        err->code = SQ_EREDIS;
        rc = -1;
    }
    if (exec)
        freeReplyObject(exec);
    return rc;
}

static bool embedded(const ctl_process *p)
{
    return json_is_true(json_object_get(p->info, "embedded"));
}

/* Find id among the live processes; prints why not and returns NULL. */
static const ctl_process *find_live(const char *cmd, const ctl_process *p, size_t n, const char *id)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(p[i].identity, id) != 0)
            continue;
        if (!embedded(&p[i]))
            return &p[i];
        fprintf(stderr, "squirectl %s: %s is an embedded process; it cannot be signalled\n", cmd,
                id);
        return NULL;
    }
    char *safe = ctl_escape(id, strlen(id), 200);
    fprintf(stderr, "squirectl %s: no live process %s (see squirectl processes)\n", cmd, safe);
    free(safe);
    return NULL;
}

/* Signal id, or every live non-embedded process. Prints each identity done. */
static int signal_procs(sq_redis *r, const ctl_opts *o, const char *cmd, const char *sig)
{
    ctl_process *p;
    size_t n, done = 0;
    sq_error err = {0};
    if (ctl_procs_fetch(r, &p, &n, &err) != 0)
        return ctl_fail(cmd, &err);
    int rc = CTL_OK;
    const ctl_process *only = o->all ? NULL : find_live(cmd, p, n, o->rest[0]);
    json_t *list = json_array();
    for (size_t i = 0; i < n && rc == CTL_OK; i++) {
        if (o->all ? embedded(&p[i]) : &p[i] != only)
            continue;
        if (send_signal(r, p[i].identity, sig, &err) != 0)
            rc = ctl_fail(cmd, &err);
        else
            json_array_append_new(list, ctl_json_bytes(p[i].identity, strlen(p[i].identity)));
        done++;
    }
    if (!o->all && done == 0)
        rc = CTL_ERROR;
    if (o->json)
        ctl_json_print(json_pack("{s:s, s:O}", "signal", sig, "sent", list), stdout);
    else
        for (size_t i = 0; i < json_array_size(list); i++) {
            char *safe = ctl_escape(json_string_value(json_array_get(list, i)),
                                    strlen(json_string_value(json_array_get(list, i))), 0);
            printf("%s %s\n", sig, safe);
            free(safe);
        }
    json_decref(list);
    ctl_procs_free(p, n);
    return rc;
}

static int run_signal(const char *url, int argc, char **argv, const char *sig)
{
    char usage[200];
    snprintf(usage, sizeof usage,
             "Usage: squirectl %s (IDENTITY | --all) [--json]\n"
             "  sends %s to a process through <identity>-signals (acted on at its next beat)\n",
             argv[0], sig);
    ctl_opts o;
    int rc = ctl_opts_parse(argc, argv, "aj", usage, &o);
    if (rc != CTL_OK)
        return rc == CTL_HELP ? CTL_OK : rc;
    if (o.all ? o.nrest != 0 : o.nrest != 1)
        return ctl_usage_error(argv[0], usage, "give one IDENTITY or --all");
    sq_redis *r = ctl_connect(url, argv[0], &rc);
    if (r == NULL)
        return rc;
    rc = signal_procs(r, &o, argv[0], sig);
    sq_redis_free(r);
    return rc;
}

int ctl_quiet(const char *url, int argc, char **argv)
{
    return run_signal(url, argc, argv, "TSTP");
}

int ctl_stop(const char *url, int argc, char **argv)
{
    return run_signal(url, argc, argv, "TERM");
}
