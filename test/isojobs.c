/*
 * isojobs.c: handlers that break their process, for test_isolated.c. Each
 * records its run (counted in test:runs) before it misbehaves, so a test
 * can tell a job that ran once from one that ran twice or never.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testjobs.h"

static pid_t inited_in; /* the process the per-process init hook ran in */

/* Fails when $SQT_FAIL_CHILD_INIT is set (a dependency that is down). */
static int child_init(void *ud)
{
    (void)ud;
    inited_in = getpid();
    return getenv("SQT_FAIL_CHILD_INIT") != NULL ? -1 : 0;
}

static sq_result segv_job(sq_job *job, void *ud)
{
    (void)ud;
    testjobs_record(job, "segv");
    volatile int *p = NULL;
    *p = 1;
    return SQ_OK;
}

static sq_result abort_job(sq_job *job, void *ud)
{
    (void)ud;
    testjobs_record(job, "abort");
    abort();
}

static sq_result exit_job(sq_job *job, void *ud)
{
    (void)ud;
    testjobs_record(job, "exit");
    _exit(7);
}

/* Spins forever without looking at sq_job_stopping. */
static sq_result hang_job(sq_job *job, void *ud)
{
    (void)ud;
    testjobs_record(job, "hang");
    for (volatile unsigned long i = 0;; i++)
        ;
    return SQ_OK;
}

/* Spins forever and ignores TERM: only KILL ends it. */
static sq_result stubborn_job(sq_job *job, void *ud)
{
    (void)ud;
    signal(SIGTERM, SIG_IGN);
    testjobs_record(job, "stubborn");
    for (;;)
        pause();
    return SQ_OK;
}

/* Allocates and touches 1 MB at a time, forever, without checking malloc:
 * as a leaking handler does. */
static sq_result hog_job(sq_job *job, void *ud)
{
    (void)ud;
    testjobs_record(job, "hog");
    for (;;) {
        char *p = malloc(1 << 20);
        memset(p, 1, 1 << 20);
    }
    return SQ_OK;
}

/* Forks a process that keeps every inherited descriptor (its worker
 * process's socket among them) open for 5 s, then crashes. */
static sq_result fork_segv_job(sq_job *job, void *ud)
{
    (void)ud;
    testjobs_record(job, "forksegv");
    if (fork() == 0) {
        sleep(5);
        _exit(0);
    }
    volatile int *p = NULL;
    *p = 1;
    return SQ_OK;
}

/* Kills its own process group, as a handler cleaning up "its" processes
 * with kill(0, ...) does. Safe only when squire runs in a group of its own
 * (the test starts it so). */
static sq_result killgroup_job(sq_job *job, void *ud)
{
    (void)ud;
    testjobs_record(job, "killgroup");
    kill(0, SIGKILL);
    sleep(5); /* not reached when the kill reached itself */
    return SQ_OK;
}

/* Writes two bytes of garbage into every socket it inherited (its worker
 * process's job socket among them: a truncated result header), then
 * hangs without reading or answering. */
static sq_result garbage_job(sq_job *job, void *ud)
{
    (void)ud;
    testjobs_record(job, "garbage");
    for (int fd = 3; fd < 1024; fd++) {
        struct stat st;
        if (fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode))
            (void)!write(fd, "xx", 2);
    }
    for (;;)
        pause();
    return SQ_OK;
}

/* Stops itself (SIGSTOP): only its timeout's KILL ends it. */
static sq_result stop_self_job(sq_job *job, void *ud)
{
    (void)ud;
    testjobs_record(job, "stopself");
    raise(SIGSTOP);
    return SQ_OK;
}

/* exit(0) in the middle of the job: atexit handlers run, no result is sent. */
static sq_result exit_zero_job(sq_job *job, void *ud)
{
    (void)ud;
    testjobs_record(job, "exit0");
    exit(0);
}

/* Closes every descriptor it inherited, then returns as if all went well. */
static sq_result close_fds_job(sq_job *job, void *ud)
{
    (void)ud;
    testjobs_record(job, "closefds");
    for (int fd = 3; fd < 1024; fd++)
        close(fd);
    return SQ_OK;
}

/* Double-forks a grandchild that keeps every inherited descriptor for 20 s
 * (a daemonizing library), and succeeds. */
static sq_result daemonize_job(sq_job *job, void *ud)
{
    (void)ud;
    pid_t pid = fork();
    if (pid == 0) {
        if (fork() == 0) {
            setsid();
            sleep(20);
        }
        _exit(0);
    }
    if (pid > 0)
        waitpid(pid, NULL, 0);
    testjobs_record(job, "ok");
    return SQ_OK;
}

/* Stops its worker process's parent, the fork server, and succeeds. */
static sq_result stop_server_job(sq_job *job, void *ud)
{
    (void)ud;
    kill(getppid(), SIGSTOP);
    testjobs_record(job, "ok");
    return SQ_OK;
}

/* Records "pid:<its process>:<init hook ran here>" and succeeds. */
static sq_result pid_job(sq_job *job, void *ud)
{
    (void)ud;
    char what[64];
    snprintf(what, sizeof what, "pid:%d:%s", (int)getpid(), inited_in == getpid() ? "init" : "-");
    testjobs_record(job, what);
    testjobs_record(job, "ok");
    return SQ_OK;
}

int testjobs_register_isolated(sq_registry *reg)
{
    sq_handler_opts quick = {.timeout = 1};
    int rc = 0;
    rc |= sq_register(reg, "SegvJob", segv_job, NULL);
    rc |= sq_register(reg, "AbortJob", abort_job, NULL);
    rc |= sq_register(reg, "ExitJob", exit_job, NULL);
    rc |= sq_register(reg, "HangJob", hang_job, NULL);
    rc |= sq_register_opts(reg, "StubbornJob", stubborn_job, NULL, &quick);
    rc |= sq_register(reg, "HogJob", hog_job, NULL);
    rc |= sq_register(reg, "PidJob", pid_job, NULL);
    rc |= sq_register(reg, "ForkSegvJob", fork_segv_job, NULL);
    rc |= sq_register(reg, "KillGroupJob", killgroup_job, NULL);
    rc |= sq_register(reg, "GarbageJob", garbage_job, NULL);
    rc |= sq_register(reg, "StopSelfJob", stop_self_job, NULL);
    rc |= sq_register(reg, "ExitZeroJob", exit_zero_job, NULL);
    rc |= sq_register(reg, "CloseFdsJob", close_fds_job, NULL);
    rc |= sq_register(reg, "DaemonizeJob", daemonize_job, NULL);
    rc |= sq_register(reg, "StopServerJob", stop_server_job, NULL);
    rc |= sq_register_child_init(reg, child_init, NULL);
    return rc;
}
