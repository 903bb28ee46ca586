/*
 * worker_process.c: a worker process of isolated mode: forked by the fork
 * server, it runs the init hook, says hello, then reads a job, runs its
 * handler and writes the outcome, until its socket closes or it retires.
 */
#include "isolate_internal.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include "client.h"
#include "log.h"
#include "registry.h"

/* The daemon's identity: the worker processes' application_name by default,
 * as the daemon's own pool would have it. */
char sq__child_identity[300];

static void on_term(int sig, siginfo_t *si, void *ctx)
{
    (void)ctx;
    if (si->si_pid != getppid())
        return; /* the service manager's TERM is the daemon's business */
    signal(sig, SIG_DFL);
    raise(sig);
}

static void child_signals(void)
{
    struct sigaction sa = {0};
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sa.sa_handler = SIG_IGN;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTSTP, &sa, NULL);
    sigaction(SIGTTIN, &sa, NULL);
    /* its own process group is a background one on a terminal: a write to
     * it (the log, with stty tostop) must not stop the process */
    sigaction(SIGTTOU, &sa, NULL);
    sa.sa_flags = SA_RESTART | SA_SIGINFO;
    sa.sa_sigaction = on_term;
    sigaction(SIGTERM, &sa, NULL);
    sa.sa_flags = 0;
    sa.sa_handler = SIG_DFL;
    sigaction(SIGCHLD, &sa, NULL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

static long rss_mb(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long size = 0, resident = 0;
    if (f == NULL)
        return 0;
    if (fscanf(f, "%ld %ld", &size, &resident) != 2)
        resident = 0;
    fclose(f);
    return resident * (sysconf(_SC_PAGESIZE) / 1024) / 1024;
}

static int send_result(int fd, const sq_job *job, bool saw_stop, bool retire)
{
    const sq_outcome *o = &job->outcome;
    struct result_frame h = {.magic = FRAME_MAGIC,
                             .failed = o->failed,
                             .disposition = (uint8_t)o->disposition,
                             .saw_stop = saw_stop,
                             .retire = retire,
                             .retry_in = o->retry_in,
                             .class_len = o->error_class ? (uint32_t)strlen(o->error_class) : 0,
                             .message_len =
                                 o->error_message ? (uint32_t)strlen(o->error_message) : 0,
                             .nlines = (uint32_t)o->nbacktrace};
    if (h.class_len > MAX_CLASS)
        h.class_len = MAX_CLASS;
    if (h.message_len > MAX_MESSAGE)
        h.message_len = MAX_MESSAGE;
    if (h.nlines > MAX_LINES)
        h.nlines = MAX_LINES;
    if (sq__iso_write_all(fd, &h, sizeof h) != 0 ||
        sq__iso_write_all(fd, o->error_class, h.class_len) != 0 ||
        sq__iso_write_all(fd, o->error_message, h.message_len) != 0)
        return -1;
    for (uint32_t i = 0; i < h.nlines; i++) {
        uint32_t n = (uint32_t)strlen(o->backtrace[i]);
        if (n > MAX_LINE)
            n = MAX_LINE;
        if (sq__iso_write_all(fd, &n, sizeof n) != 0 ||
            sq__iso_write_all(fd, o->backtrace[i], n) != 0)
            return -1;
    }
    return 0;
}

/* Read one job frame: 1 a job, 0 the daemon closed the socket, -1 broken. */
static int read_job(int fd, char tid[16], char **queue, char **raw, size_t *len)
{
    struct job_frame h;
    ssize_t r;
    do
        r = read(fd, &h, sizeof h);
    while (r < 0 && errno == EINTR);
    if (r == 0)
        return 0;
    if (r < (ssize_t)sizeof h &&
        (r < 0 || sq__iso_read_all(fd, (char *)&h + r, sizeof h - (size_t)r)))
        return -1;
    if (h.magic != FRAME_MAGIC || h.tid_len >= 16 || h.queue_len > 4096 ||
        h.raw_len > (uint64_t)SIZE_MAX - 1)
        return -1;
    *queue = malloc(h.queue_len + 1);
    *raw = malloc((size_t)h.raw_len + 1);
    if (*queue == NULL || *raw == NULL || sq__iso_read_all(fd, tid, h.tid_len) != 0 ||
        sq__iso_read_all(fd, *queue, h.queue_len) != 0 ||
        sq__iso_read_all(fd, *raw, (size_t)h.raw_len) != 0) {
        free(*queue), free(*raw);
        return -1;
    }
    tid[h.tid_len] = '\0';
    (*queue)[h.queue_len] = '\0';
    (*raw)[h.raw_len] = '\0';
    *len = (size_t)h.raw_len;
    return 1;
}

/* job_cpu_limit: SIGXCPU (which ends the process) once this job has used
 * seconds of CPU time on top of what the process had used before it; 0
 * lifts it. Only the soft limit moves: an unprivileged process cannot
 * raise its hard limit again. */
static void cpu_budget(int seconds)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_CPU, &rl) != 0)
        return;
    rl.rlim_cur = rl.rlim_max;
    if (seconds > 0) {
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        rlim_t used = (rlim_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + 1);
        if (rl.rlim_max == RLIM_INFINITY || used + (rlim_t)seconds < rl.rlim_max)
            rl.rlim_cur = used + (rlim_t)seconds;
    }
    setrlimit(RLIMIT_CPU, &rl);
}

/* One job in the worker process: parse it (the daemon already checked it),
 * run its handler through the thread mode's path, send the outcome. */
static int child_job(int fd, sq_worker *w, bool *retire)
{
    sq_runtime *rt = w->rt;
    char tid[16], *queue = NULL, *raw = NULL;
    size_t len = 0;
    int got = read_job(fd, tid, &queue, &raw, &len);
    if (got <= 0)
        return got;
    sq_log_thread_name(tid);
    sq_job job;
    memset(&job, 0, sizeof job);
    sq_job_status status = SQ_JOB_VALID;
    char reason[256] = "";
    if (sq_job_init(&job, raw, len, queue, &rt->limits, &status, reason, sizeof reason) != 0) {
        sq_outcome_fail(&job.outcome, "Squire::WorkerCrashed",
                        "the worker process ran out of memory reading the job");
    } else if (status != SQ_JOB_VALID) {
        sq_outcome_fail(&job.outcome, "Squire::InvalidJob", reason);
    } else {
        void *ud = NULL;
        sq_handler_fn fn = sq_registry_lookup(rt->reg, job.klass, &ud);
        job.worker = w;
        w->saw_stop = false;
        cpu_budget(rt->cfg->job_cpu_limit);
        if (fn != NULL)
            sq__handler_call(w, &job, fn, ud);
        else
            sq_outcome_fail(&job.outcome, "Squire::NoHandler", "no handler registered");
        cpu_budget(0);
    }
    free(queue);
    static unsigned jobs_run;
    jobs_run++;
    const sq_config *cfg = rt->cfg;
    *retire = (cfg->worker_max_jobs > 0 && jobs_run >= (unsigned)cfg->worker_max_jobs) ||
              (cfg->worker_max_rss_mb > 0 && rss_mb() > cfg->worker_max_rss_mb);
    int rc = send_result(fd, &job, w->saw_stop, *retire);
    sq_job_destroy(&job);
    return rc == 0 ? 1 : -1;
}

static void child_limits(const sq_config *cfg)
{
    if (cfg->worker_max_memory_mb > 0) {
        rlim_t bytes = (rlim_t)cfg->worker_max_memory_mb * 1024 * 1024;
        struct rlimit rl = {bytes, bytes};
        if (setrlimit(RLIMIT_AS, &rl) != 0)
            sq_log(SQ_LOG_WARN, "worker process: cannot limit its address space to %ld MB: %s",
                   cfg->worker_max_memory_mb, strerror(errno));
    }
}

_Noreturn void sq__child_main(int fd, pid_t server, const sq_config *cfg, sq_registry *reg)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != server)
        _exit(1);
    prctl(PR_SET_NAME, "squire-worker");
    /* A process group of its own: a handler's kill(0, sig) (or a kill of
     * -getpgrp()) reaches its own process and what it forked, never the
     * daemon. A terminal's INT/TSTP then reach the daemon alone, which
     * stops its worker processes itself. */
    setpgid(0, 0);
    child_signals();
    child_limits(cfg);
    sq_log_thread_name("init");

    static sq_runtime rt;
    static sq_worker w;
    rt.cfg = cfg;
    rt.reg = reg;
    rt.limits = (sq_job_limits){cfg->max_payload_bytes, SQ_JSON_MAX_DEPTH, SQ_JSON_MAX_ELEMENTS};
    if (cfg->db_url != NULL) /* one connection: this process runs one job at a time */
        rt.pgpool = sq_pgpool_new(
            cfg->db_url, cfg->db_application_name ? cfg->db_application_name : sq__child_identity,
            1, cfg->db_checkout_timeout, cfg->db_connect_timeout, cfg->db_statement_timeout);
    if (rt.pgpool != NULL) /* notices and errors into the log, as the daemon's pool */
        sq_pgpool_set_reporter(rt.pgpool, sq_log_report, NULL);
    sq_error err = {0};
    if (sq_config_redis_url(cfg, &rt.url, &err) == 0 &&
        (w.redis = sq_redis_new(&rt.url, 3.0)) != NULL) /* connects when first used */
        w.client = sq__client_borrow(w.redis);
    w.rt = &rt;
    snprintf(w.tid, sizeof w.tid, "child");

    void *ud = NULL;
    sq_child_init_fn init = sq_registry_child_init(reg, &ud);
    if (init != NULL && init(ud) != 0) {
        sq_log(SQ_LOG_ERROR, "worker process %d: the init hook failed", (int)getpid());
        _exit(3);
    }
    char hello = 'H';
    if (sq__iso_write_all(fd, &hello, 1) != 0)
        _exit(0);
    for (;;) {
        bool retire = false;
        int rc = child_job(fd, &w, &retire);
        if (rc <= 0 || retire)
            break;
    }
    /* _exit: the daemon's atexit handlers and stdio buffers are not ours */
    _exit(0);
}
