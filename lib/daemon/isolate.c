/*
 * isolate.c: isolated mode and job timeouts (see isolate.h).
 *
 * Processes:
 *   daemon      threads as in thread mode; worker thread wN owns one worker
 *               process at a time (rt->iso) and waits for it.
 *   fork server forked from the daemon before any thread exists (pdeathsig
 *               KILL). Single-threaded: forks worker processes on request,
 *               hands the daemon two sockets per process (SCM_RIGHTS), sends
 *               signals on request, reaps its children and writes each wait
 *               status to that process's status socket. Signals go through
 *               it because only it knows whether a pid is still its child
 *               (no pid-reuse race). When the daemon's socket closes, it
 *               kills its children and exits.
 *   worker      forked by the fork server (pdeathsig KILL); runs the per-
 *               process init hook, says hello, then reads a job, runs its
 *               handler, writes the outcome, until its socket closes or it
 *               retires (N jobs, RSS limit). It talks to nobody else except
 *               through the handler (sq_job_db: its own pool of one
 *               connection; sq_job_client: its own Redis connection).
 *
 * Sockets: the control socket (SOCK_SEQPACKET, fixed-size messages, one
 * mutex in the daemon: a spawn's request and its reply go together); per
 * worker process a job socket (stream, length-prefixed frames) and a status
 * socket (the fork server writes the wait status, then closes it).
 *
 * Shutdown reaches a running handler through a flag in shared memory, which
 * sq_job_stopping reads. Each worker process leads a process group of its
 * own (a handler's kill(0, ...) stays inside it). Signals in a worker
 * process: INT, TSTP, TTIN, TTOU ignored (they are the daemon's, or a
 * terminal's for a background group); TERM from
 * the fork server (a timeout) kills it; TERM from anyone else (a service
 * manager signalling the whole group) is ignored, because the daemon runs
 * the shutdown and pushes back what is still running.
 */

#include "isolate.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "client.h"
#include "common.h"
#include "log.h"
#include "registry.h"

#define OP_SPAWN 1
#define OP_SIGNAL 2
#define HELLO_WAIT 60.0 /* seconds a new worker process may take in its init hook */
#define STATUS_WAIT 5.0 /* seconds for the wait status of a process that closed its socket */
#define FRAME_MAGIC 0x53514a31u
#define MAX_CLASS 4096
#define MAX_MESSAGE (4u << 20)
#define MAX_LINES 1024
#define MAX_LINE 65536

struct sq_forksrv {
    pid_t pid;
    int ctl;               /* the daemon's end of the control socket */
    pthread_mutex_t lock;  /* one request (and its reply) at a time */
    pthread_mutex_t state; /* guards gone and status (not lock: a spawn holds
                            * that while it waits for the fork server) */
    bool gone;             /* reaped */
    int status;            /* its wait status once gone */
};

typedef struct ctl_msg {
    int op;
    int sig;
    pid_t pid; /* OP_SIGNAL: the target; reply: the new pid, or -errno */
} ctl_msg;

typedef struct sq_child {
    pid_t pid;     /* 0: none */
    int job_fd;    /* stream: job frames out, result frames in */
    int status_fd; /* the fork server writes the wait status here */
    unsigned jobs;
} sq_child;

/* Per worker thread (by index): its worker process, and its job's
 * deadline for the main thread's warning (thread mode). */
typedef struct worker_iso {
    sq_child child;       /* the worker thread's alone */
    bool saw_deadline;    /* the worker thread's alone */
    unsigned failures;    /* the worker thread's alone: worker processes that did not start */
    pthread_mutex_t lock; /* guards the rest: the main thread reads it */
    double deadline;      /* monotonic end of the running job's timeout; 0: none */
    double timeout;
    bool late_warned;
    char klass[128], jid[64];
} worker_iso;

struct sq_isolation {
    sq_forksrv *fs; /* isolated mode; NULL in thread mode */
    int n;
    worker_iso *w;
};

static worker_iso *iso_of(const sq_worker *w)
{
    sq_isolation *iso = w->rt->iso;
    return iso != NULL && w->index >= 0 && w->index < iso->n ? &iso->w[w->index] : NULL;
}

struct job_frame {
    uint32_t magic, tid_len, queue_len;
    uint64_t raw_len;
};

struct result_frame {
    uint32_t magic;
    uint8_t failed, disposition, saw_stop, retire;
    double retry_in;
    uint32_t class_len, message_len, nlines;
};

/* ---- plumbing ------------------------------------------------------------ */

static int write_all(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int read_all(int fd, void *buf, size_t n)
{
    char *p = buf;
    while (n > 0) {
        ssize_t r = read(fd, p, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

/* Wait up to seconds for fd to be readable (or closed). */
static bool readable(int fd, double seconds)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int ms = seconds <= 0 ? 0 : (int)(seconds * 1000) + 1;
    for (;;) {
        int n = poll(&p, 1, ms);
        if (n < 0 && errno == EINTR)
            continue;
        return n > 0;
    }
}

/* "signal 11 (SIGSEGV, Segmentation fault)" or "exit status 3". */
static void describe_status(int status, char *buf, size_t size)
{
    if (status < 0) {
        snprintf(buf, size, "an unknown cause (its wait status was not reported)");
    } else if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        const char *abbrev = sigabbrev_np(sig);
        snprintf(buf, size, "signal %d (SIG%s, %s)", sig, abbrev ? abbrev : "?", strsignal(sig));
    } else if (WIFEXITED(status)) {
        snprintf(buf, size, "exit status %d", WEXITSTATUS(status));
    } else {
        snprintf(buf, size, "wait status %#x", (unsigned)status);
    }
}

/* ---- the worker process ---------------------------------------------------- */

/* Shared by the daemon and every worker process (MAP_SHARED, made before
 * the fork server): set when the daemon shuts down, read by sq_job_stopping
 * in a worker process. A flag in memory, not a signal, so that no handler's
 * sleep or read is cut short by it. */
static atomic_bool *shared_stop;

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
    if (write_all(fd, &h, sizeof h) != 0 || write_all(fd, o->error_class, h.class_len) != 0 ||
        write_all(fd, o->error_message, h.message_len) != 0)
        return -1;
    for (uint32_t i = 0; i < h.nlines; i++) {
        uint32_t n = (uint32_t)strlen(o->backtrace[i]);
        if (n > MAX_LINE)
            n = MAX_LINE;
        if (write_all(fd, &n, sizeof n) != 0 || write_all(fd, o->backtrace[i], n) != 0)
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
    if (r < (ssize_t)sizeof h && (r < 0 || read_all(fd, (char *)&h + r, sizeof h - (size_t)r)))
        return -1;
    if (h.magic != FRAME_MAGIC || h.tid_len >= 16 || h.queue_len > 4096 ||
        h.raw_len > (uint64_t)SIZE_MAX - 1)
        return -1;
    *queue = malloc(h.queue_len + 1);
    *raw = malloc((size_t)h.raw_len + 1);
    if (*queue == NULL || *raw == NULL || read_all(fd, tid, h.tid_len) != 0 ||
        read_all(fd, *queue, h.queue_len) != 0 || read_all(fd, *raw, (size_t)h.raw_len) != 0) {
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

/* The daemon's identity: the worker processes' application_name by default,
 * as the daemon's own pool would have it. */
static char identity[300];

static _Noreturn void child_main(int fd, pid_t server, const sq_config *cfg, sq_registry *reg)
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
            cfg->db_url, cfg->db_application_name ? cfg->db_application_name : identity, 1,
            cfg->db_checkout_timeout, cfg->db_connect_timeout, cfg->db_statement_timeout);
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
    if (write_all(fd, &hello, 1) != 0)
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

/* ---- the fork server ------------------------------------------------------- */

typedef struct server_child {
    pid_t pid;
    int status_fd;
} server_child;

typedef struct server {
    int ctl, sigfd;
    server_child *kids;
    size_t nkids, cap;
} server;

static int send_fds(int ctl, pid_t pid, const int *fds, int nfds)
{
    ctl_msg reply = {.pid = pid};
    struct iovec iov = {&reply, sizeof reply};
    union {
        char buf[CMSG_SPACE(2 * sizeof(int))];
        struct cmsghdr align;
    } u;
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
    if (nfds > 0) {
        memset(&u, 0, sizeof u);
        m.msg_control = u.buf;
        m.msg_controllen = CMSG_SPACE((size_t)nfds * sizeof(int));
        struct cmsghdr *c = CMSG_FIRSTHDR(&m);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN((size_t)nfds * sizeof(int));
        memcpy(CMSG_DATA(c), fds, (size_t)nfds * sizeof(int));
    }
    ssize_t n;
    do
        n = sendmsg(ctl, &m, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    return n == (ssize_t)sizeof reply ? 0 : -1;
}

static void server_spawn(server *s, const sq_config *cfg, sq_registry *reg)
{
    int job[2] = {-1, -1}, st[2] = {-1, -1};
    if (s->nkids == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        server_child *k = realloc(s->kids, cap * sizeof *k);
        if (k == NULL) {
            send_fds(s->ctl, -ENOMEM, NULL, 0);
            return;
        }
        s->kids = k;
        s->cap = cap;
    }
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, job) != 0 ||
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, st) != 0) {
        int e = errno;
        for (int i = 0; i < 2; i++) {
            if (job[i] >= 0)
                close(job[i]);
            if (st[i] >= 0)
                close(st[i]);
        }
        send_fds(s->ctl, -e, NULL, 0);
        return;
    }
    pid_t self = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        close(s->ctl);
        close(s->sigfd);
        for (size_t i = 0; i < s->nkids; i++)
            close(s->kids[i].status_fd);
        close(job[0]), close(st[0]), close(st[1]);
        child_main(job[1], self, cfg, reg);
    }
    int e = errno;
    close(job[1]);
    if (pid < 0) {
        close(job[0]), close(st[0]), close(st[1]);
        send_fds(s->ctl, -e, NULL, 0);
        return;
    }
    int fds[2] = {job[0], st[0]};
    send_fds(s->ctl, pid, fds, 2); /* if the daemon is gone, EOF ends us next */
    close(job[0]);
    close(st[0]);
    s->kids[s->nkids++] = (server_child){pid, st[1]};
}

static void server_reap(server *s)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        for (size_t i = 0; i < s->nkids; i++) {
            if (s->kids[i].pid != pid)
                continue;
            (void)!write(s->kids[i].status_fd, &status, sizeof status);
            close(s->kids[i].status_fd);
            s->kids[i] = s->kids[--s->nkids];
            break;
        }
    }
}

static _Noreturn void server_main(int ctl, pid_t daemon, const sq_config *cfg, sq_registry *reg)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != daemon)
        _exit(0);
    prctl(PR_SET_NAME, "squire-forksrv");
    sq_log_thread_name("forksrv");
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_BLOCK, &chld, NULL);
    server s = {.ctl = ctl, .sigfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK)};
    if (s.sigfd < 0)
        _exit(1);
    for (;;) {
        struct pollfd p[2] = {{.fd = ctl, .events = POLLIN}, {.fd = s.sigfd, .events = POLLIN}};
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (p[1].revents) {
            struct signalfd_siginfo si;
            while (read(s.sigfd, &si, sizeof si) > 0)
                ;
            server_reap(&s);
        }
        if (p[0].revents == 0)
            continue;
        ctl_msg m;
        ssize_t n = recv(ctl, &m, sizeof m, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n != (ssize_t)sizeof m)
            break; /* the daemon is gone (or exits) */
        if (m.op == OP_SPAWN) {
            server_spawn(&s, cfg, reg);
        } else if (m.op == OP_SIGNAL) {
            for (size_t i = 0; i < s.nkids; i++)
                if (s.kids[i].pid == m.pid && m.pid > 0)
                    kill(m.pid, m.sig);
        }
    }
    for (size_t i = 0; i < s.nkids; i++)
        kill(s.kids[i].pid, SIGKILL);
    while (wait(NULL) > 0 || errno == EINTR)
        ;
    _exit(0);
}

sq_forksrv *sq_forksrv_start(const sq_config *cfg, sq_registry *reg, const char *ident,
                             sq_error *err)
{
    snprintf(identity, sizeof identity, "%s", ident);
    sq_forksrv *fs = calloc(1, sizeof *fs);
    int sv[2];
    if (fs == NULL || socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
        sq__error_set(err, SQ_EIO, "cannot start the fork server: %s", strerror(errno));
        free(fs);
        return NULL;
    }
    if (shared_stop == NULL) {
        void *page = mmap(NULL, sizeof *shared_stop, PROT_READ | PROT_WRITE,
                          MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (page == MAP_FAILED) {
            sq__error_set(err, SQ_EIO, "cannot start the fork server: %s", strerror(errno));
            close(sv[0]), close(sv[1]);
            free(fs);
            return NULL;
        }
        shared_stop = page;
    }
    atomic_store(shared_stop, false);
    pid_t daemon = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        close(sv[0]);
        server_main(sv[1], daemon, cfg, reg);
    }
    int e = errno;
    close(sv[1]);
    if (pid < 0) {
        close(sv[0]);
        free(fs);
        sq__error_set(err, SQ_EIO, "cannot start the fork server: %s", strerror(e));
        return NULL;
    }
    fs->pid = pid;
    fs->ctl = sv[0];
    pthread_mutex_init(&fs->lock, NULL);
    pthread_mutex_init(&fs->state, NULL);
    return fs;
}

bool sq_forksrv_alive(sq_forksrv *fs, char *why, size_t size)
{
    pthread_mutex_lock(&fs->state);
    int st = 0;
    if (!fs->gone && waitpid(fs->pid, &st, WNOHANG | WUNTRACED) == fs->pid) {
        if (WIFSTOPPED(st)) {
            /* stopped (a handler's kill(getppid(), SIGSTOP)): no worker
             * process could start, and every spawn would wait for it */
            sq_log(SQ_LOG_WARN, "the fork server was stopped (signal %d); resuming it",
                   WSTOPSIG(st));
            kill(fs->pid, SIGCONT);
        } else {
            fs->gone = true;
            fs->status = st;
        }
    }
    bool gone = fs->gone;
    int status = fs->status;
    pthread_mutex_unlock(&fs->state);
    if (gone && why != NULL)
        describe_status(status, why, size);
    return !gone;
}

void sq_forksrv_stop(sq_forksrv *fs)
{
    if (fs == NULL)
        return;
    close(fs->ctl);
    if (!fs->gone)
        kill(fs->pid, SIGCONT); /* a stopped fork server would never see the close */
    int status;
    while (!fs->gone && waitpid(fs->pid, &status, 0) < 0 && errno == EINTR)
        ;
    pthread_mutex_destroy(&fs->lock);
    pthread_mutex_destroy(&fs->state);
    free(fs);
}

/* ---- the daemon's side ----------------------------------------------------- */

static void send_signal(sq_forksrv *fs, pid_t pid, int sig)
{
    ctl_msg m = {.op = OP_SIGNAL, .sig = sig, .pid = pid};
    pthread_mutex_lock(&fs->lock);
    (void)!send(fs->ctl, &m, sizeof m, MSG_NOSIGNAL);
    pthread_mutex_unlock(&fs->lock);
}

static void close_child(sq_child *c)
{
    if (c->job_fd >= 0)
        close(c->job_fd);
    if (c->status_fd >= 0)
        close(c->status_fd);
    *c = (sq_child){.job_fd = -1, .status_fd = -1};
}

/* Wait up to seconds for c's outcome on its job socket, or for its end on
 * either socket (the status socket also tells of a process whose job
 * socket some process it forked still holds open). */
static bool settled(const sq_child *c, double seconds)
{
    struct pollfd p[2] = {{.fd = c->job_fd, .events = POLLIN},
                          {.fd = c->status_fd, .events = POLLIN}};
    for (;;) {
        int n = poll(p, 2, seconds <= 0 ? 0 : (int)(seconds * 1000) + 1);
        if (n < 0 && errno == EINTR)
            continue;
        return n > 0;
    }
}

#define STATUS_LOST (-2) /* reap_child: the fork server closed the socket unsaid: it died */

/* The wait status of c, once its job socket has closed; -1 when the fork
 * server did not say within the wait, STATUS_LOST when it is gone (it
 * writes every status before it closes the socket, so only its own end
 * closes one unsaid). The process is forgotten. */
static int reap_child(sq_child *c, double wait)
{
    int status = -1;
    if (readable(c->status_fd, wait)) {
        ssize_t n;
        do
            n = read(c->status_fd, &status, sizeof status);
        while (n < 0 && errno == EINTR);
        if (n == 0)
            status = STATUS_LOST;
        else if (n != (ssize_t)sizeof status)
            status = -1;
    }
    close_child(c);
    return status;
}

static int spawn(sq_worker *w, sq_child *c, sq_error *err)
{
    sq_forksrv *fs = w->rt->iso->fs;
    ctl_msg m = {.op = OP_SPAWN}, reply = {0};
    union {
        char buf[CMSG_SPACE(2 * sizeof(int))];
        struct cmsghdr align;
    } u;
    struct iovec iov = {&reply, sizeof reply};
    struct msghdr msg = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf};
    ssize_t n = -1;
    pthread_mutex_lock(&fs->lock);
    if (send(fs->ctl, &m, sizeof m, MSG_NOSIGNAL) == (ssize_t)sizeof m) {
        do
            n = recvmsg(fs->ctl, &msg, MSG_CMSG_CLOEXEC);
        while (n < 0 && errno == EINTR);
    }
    pthread_mutex_unlock(&fs->lock);
    int fds[2] = {-1, -1};
    struct cmsghdr *cm = n == (ssize_t)sizeof reply ? CMSG_FIRSTHDR(&msg) : NULL;
    if (cm != NULL && cm->cmsg_type == SCM_RIGHTS && cm->cmsg_len == CMSG_LEN(sizeof fds))
        memcpy(fds, CMSG_DATA(cm), sizeof fds);
    if (n != (ssize_t)sizeof reply || reply.pid <= 0 || fds[0] < 0) {
        for (int i = 0; i < 2; i++)
            if (fds[i] >= 0)
                close(fds[i]);
        if (n == (ssize_t)sizeof reply && reply.pid < 0)
            sq__error_set(err, SQ_EIO, "the fork server cannot fork: %s", strerror(-reply.pid));
        else
            sq__error_set(err, SQ_EIO, "the fork server is gone");
        return -1;
    }
    *c = (sq_child){.pid = reply.pid, .job_fd = fds[0], .status_fd = fds[1]};
    /* Its hello says the init hook is done and the process takes jobs. */
    char hello = 0;
    double until = sq__monotonic() + HELLO_WAIT;
    while (!readable(c->job_fd, 0.1)) {
        if (atomic_load(&w->rt->hard_stop) || sq__monotonic() > until) {
            send_signal(fs, c->pid, SIGKILL);
            reap_child(c, STATUS_WAIT);
            sq__error_set(err, SQ_EIO, "a new worker process did not start within %.0f s",
                          HELLO_WAIT);
            return -1;
        }
    }
    if (read_all(c->job_fd, &hello, 1) != 0 || hello != 'H') {
        pid_t pid = c->pid;
        char how[160];
        describe_status(reap_child(c, STATUS_WAIT), how, sizeof how);
        sq__error_set(err, SQ_EIO, "worker process %d ended before its first job, with %s",
                      (int)pid, how);
        return -1;
    }
    sq_log(SQ_LOG_DEBUG, "worker process %d started for %s", (int)c->pid, w->tid);
    return 0;
}

static int send_job(sq_worker *w, sq_child *c, const sq_job *job)
{
    struct job_frame h = {.magic = FRAME_MAGIC,
                          .tid_len = (uint32_t)strlen(w->tid),
                          .queue_len = (uint32_t)strlen(job->queue),
                          .raw_len = job->raw_len};
    return write_all(c->job_fd, &h, sizeof h) == 0 &&
                   write_all(c->job_fd, w->tid, h.tid_len) == 0 &&
                   write_all(c->job_fd, job->queue, h.queue_len) == 0 &&
                   write_all(c->job_fd, job->raw, job->raw_len) == 0
               ? 0
               : -1;
}

/* A process that ended while idle (killed from outside, out of memory) is
 * replaced before the job is handed over, and the job is not charged. */
static bool died_idle(sq_worker *w, sq_child *c)
{
    if (!settled(c, 0))
        return false;
    pid_t pid = c->pid;
    char how[160];
    describe_status(reap_child(c, STATUS_WAIT), how, sizeof how);
    sq_log(SQ_LOG_WARN, "worker process %d of %s ended between jobs with %s; replacing it",
           (int)pid, w->tid, how);
    return true;
}

/* A result's bytes, read by until (monotonic) at the latest: a handler can
 * write into its worker process's socket (a truncated header, then a
 * hang), and no wait on those bytes may outlast the job's deadline or a
 * hard stop. 0, or -1 when the socket closed, broke or stayed silent. */
typedef struct result_reader {
    int fd;
    double until;
    const atomic_bool *hard_stop;
    bool late; /* the bytes did not come by until */
} result_reader;

static int read_by(result_reader *r, void *buf, size_t n)
{
    char *p = buf;
    while (n > 0) {
        double left = r->until - sq__monotonic();
        if (left <= 0 || atomic_load(r->hard_stop)) {
            r->late = true;
            return -1;
        }
        if (!readable(r->fd, left < 0.1 ? left : 0.1))
            continue;
        ssize_t got = read(r->fd, p, n);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            return -1;
        p += got;
        n -= (size_t)got;
    }
    return 0;
}

/* 0 with job->outcome set; -1 when the process closed its socket first,
 * -2 when what it sent is not a result (malformed, or incomplete by
 * until). */
static int read_result(sq_child *c, sq_job *job, double until, const atomic_bool *hard_stop,
                       bool *saw_stop, bool *retire)
{
    struct result_frame h;
    result_reader rd = {.fd = c->job_fd, .until = until, .hard_stop = hard_stop};
    if (read_by(&rd, &h, sizeof h) != 0)
        return rd.late ? -2 : -1;
    if (h.magic != FRAME_MAGIC || h.class_len > MAX_CLASS || h.message_len > MAX_MESSAGE ||
        h.nlines > MAX_LINES)
        return -2;
    char *cls = malloc(h.class_len + 1), *msg = malloc(h.message_len + 1);
    char **lines = h.nlines ? calloc(h.nlines, sizeof *lines) : NULL;
    int rc = cls && msg && (h.nlines == 0 || lines) ? 0 : -1;
    if (rc == 0 && (read_by(&rd, cls, h.class_len) != 0 || read_by(&rd, msg, h.message_len) != 0))
        rc = -1;
    for (uint32_t i = 0; rc == 0 && i < h.nlines; i++) {
        uint32_t n;
        if (read_by(&rd, &n, sizeof n) != 0 || n > MAX_LINE || (lines[i] = malloc(n + 1)) == NULL ||
            read_by(&rd, lines[i], n) != 0)
            rc = rd.late || n > MAX_LINE ? -2 : -1;
        else
            lines[i][n] = '\0';
    }
    if (rc == -1 && rd.late)
        rc = -2;
    if (rc == 0 && h.failed) {
        cls[h.class_len] = msg[h.message_len] = '\0';
        sq_outcome *o = &job->outcome;
        sq_outcome_fail(o, h.class_len ? cls : NULL, msg);
        o->disposition = (sq_disposition)h.disposition;
        o->retry_in = h.retry_in;
        o->backtrace = lines;
        o->nbacktrace = h.nlines;
        lines = NULL;
    }
    for (uint32_t i = 0; lines && i < h.nlines; i++)
        free(lines[i]);
    free(lines);
    free(cls);
    free(msg);
    *saw_stop = h.saw_stop;
    *retire = h.retire;
    return rc;
}

/* A worker that cannot start a worker process (the init hook fails, fork
 * fails) must not look healthy: it shows like one whose fetches fail (the
 * heartbeat's fetch-failing label and fetch_error, --check, and after a
 * while the watchdog), until a process starts again. */
static void cannot_work(sq_worker *w, const sq_error *err)
{
    /* back off (up to 5 s, jittered) so that a hook failing for a while
     * does not fork, fail and log in a tight loop */
    sq_runtime_rest(w->rt, sq_redis_backoff(iso_of(w)->failures++));
    long long none = 0;
    if (!atomic_compare_exchange_strong(&w->fetch_failing_ms, &none, sq_runtime_ms()))
        return;
    pthread_mutex_lock(&w->lock);
    snprintf(w->fetch_error, sizeof w->fetch_error, "%.199s", err->message);
    pthread_mutex_unlock(&w->lock);
}

int sq_child_run(sq_worker *w, sq_job *job, double timeout, sq_error *err)
{
    sq_runtime *rt = w->rt;
    sq_forksrv *fs = rt->iso->fs;
    sq_child *c = &iso_of(w)->child;
    for (int attempt = 0;; attempt++) {
        if (c->pid > 0 && died_idle(w, c))
            continue;
        if (c->pid == 0 && spawn(w, c, err) != 0) {
            cannot_work(w, err);
            return 1;
        }
        if (attempt == 0 && iso_of(w)->failures > 0) { /* it has a process and a job */
            iso_of(w)->failures = 0;
            atomic_store(&w->fetch_failing_ms, 0);
        }
        if (send_job(w, c, job) == 0)
            break;
        /* It died as the job was being handed over: not the job's doing
         * (the job was not all there to read). */
        if (attempt >= 1) {
            sq__error_set(err, SQ_EIO, "worker process %d closed its socket before taking the job",
                          (int)c->pid);
            send_signal(fs, c->pid, SIGKILL);
            reap_child(c, STATUS_WAIT);
            return 1;
        }
        died_idle(w, c);
    }
    double started = sq__monotonic();
    double deadline = timeout > 0 ? started + timeout : 0, signalled_at = 0;
    int sent = 0; /* the last signal sent to end it: SIGTERM, SIGKILL */
    bool told_to_stop = false;
    pid_t pid = c->pid;
    for (;;) {
        if (settled(c, 0.1)) {
            bool saw_stop = false, retire = false;
            /* the whole result by the deadline (plus the grace), or within
             * STATUS_WAIT when the job has none */
            double now = sq__monotonic();
            double until = deadline > 0
                               ? (deadline > now ? deadline : now) + rt->cfg->worker_kill_grace
                               : now + STATUS_WAIT;
            int got = readable(c->job_fd, 0)
                          ? read_result(c, job, until, &rt->hard_stop, &saw_stop, &retire)
                          : -1;
            if (got == 0) {
                w->saw_stop = saw_stop;
                c->jobs++;
                if (retire) {
                    unsigned jobs = c->jobs;
                    reap_child(c, STATUS_WAIT);
                    sq_log(SQ_LOG_INFO, "worker process %d of %s retired after %u jobs", (int)pid,
                           w->tid, jobs);
                }
                return 0;
            }
            /* It died, or broke the protocol (a handler writing into the
             * socket): end it in either case, then ask how it ended. */
            send_signal(fs, pid, SIGKILL);
            int status = reap_child(c, STATUS_WAIT);
            char how[160];
            if (status == STATUS_LOST) {
                /* its processes die with it: not this job's doing */
                sq__error_set(err, SQ_EIO, "the fork server died");
                return 1;
            }
            describe_status(status, how, sizeof how);
            if (status >= 0 && WIFSIGNALED(status) && WTERMSIG(status) == SIGXCPU) {
                char msg[300];
                snprintf(msg, sizeof msg,
                         "the job used more than its %d s of CPU time (job_cpu_limit); its worker "
                         "process %d was stopped (%s)",
                         rt->cfg->job_cpu_limit, (int)pid, how);
                sq_outcome_fail(&job->outcome, "Squire::JobTimeout", msg);
            } else if (sent != 0 || (got == -2 && deadline > 0 && sq__monotonic() >= deadline)) {
                char msg[300];
                snprintf(msg, sizeof msg,
                         "the job ran past its timeout of %g s; its worker process %d was "
                         "stopped (%s)",
                         timeout, (int)pid, how);
                sq_outcome_fail(&job->outcome, "Squire::JobTimeout", msg);
            } else if (got == -2) {
                char msg[300];
                snprintf(msg, sizeof msg,
                         "worker process %d wrote something other than a result into its socket "
                         "(the handler wrote to a descriptor it does not own?); it was stopped "
                         "(%s)",
                         (int)pid, how);
                sq_outcome_fail(&job->outcome, "Squire::WorkerCrashed", msg);
            } else {
                char msg[300];
                snprintf(msg, sizeof msg, "worker process %d died from %s while running the job",
                         (int)pid, how);
                sq_outcome_fail(&job->outcome, "Squire::WorkerCrashed", msg);
            }
            return 0;
        }
        double now = sq__monotonic();
        if (atomic_load(&rt->hard_stop) && sent != SIGKILL) {
            /* the slot was abandoned (its job pushed back) or is: end it */
            send_signal(fs, pid, SIGKILL);
            sent = SIGKILL;
            signalled_at = now;
            sq_outcome_fail(&job->outcome, "Squire::JobTimeout", "stopped at shutdown");
        }
        if (!told_to_stop && atomic_load(&rt->stopping)) {
            atomic_store(shared_stop, true); /* sq_job_stopping turns true there */
            told_to_stop = true;
        }
        if (sent == 0 && deadline > 0 && now >= deadline) {
            sq_log_job(SQ_LOG_WARN, job,
                       "past its timeout of %g s: stopping worker process %d (TERM, KILL after "
                       "%g s)",
                       timeout, (int)pid, rt->cfg->worker_kill_grace);
            send_signal(fs, pid, SIGTERM);
            sent = SIGTERM;
            signalled_at = now;
        } else if (sent == SIGTERM && now >= signalled_at + rt->cfg->worker_kill_grace) {
            send_signal(fs, pid, SIGKILL);
            sent = SIGKILL;
            signalled_at = now;
        } else if (sent == SIGKILL && now >= signalled_at + STATUS_WAIT) {
            /* the fork server is gone, or the kernel is stuck on it */
            close_child(c);
            sq_outcome_fail(&job->outcome, "Squire::WorkerCrashed",
                            "the worker process could not be stopped");
            return 0;
        }
    }
}

void sq_child_release(sq_worker *w)
{
    worker_iso *wi = sq_isolated(w->rt) ? iso_of(w) : NULL;
    if (wi != NULL && wi->child.pid > 0) {
        /* closing its socket ends an idle process; one still running a job
         * (a hard stop) is killed */
        send_signal(w->rt->iso->fs, wi->child.pid, SIGKILL);
        close_child(&wi->child);
    }
}

int sq_isolation_start(sq_runtime *rt, sq_error *err)
{
    sq_isolation *iso = calloc(1, sizeof *iso);
    worker_iso *w = calloc(rt->nworkers > 0 ? (size_t)rt->nworkers : 1, sizeof *w);
    if (iso == NULL || w == NULL) {
        free(iso), free(w);
        sq__error_set(err, SQ_ENOMEM, "out of memory");
        return -1;
    }
    iso->n = rt->nworkers;
    iso->w = w;
    for (int i = 0; i < iso->n; i++) {
        w[i].child = (sq_child){.job_fd = -1, .status_fd = -1};
        pthread_mutex_init(&w[i].lock, NULL);
    }
    if (rt->cfg->isolated &&
        (iso->fs = sq_forksrv_start(rt->cfg, rt->reg, rt->identity, err)) == NULL) {
        rt->iso = iso;
        sq_isolation_stop(rt);
        return -1;
    }
    rt->iso = iso;
    return 0;
}

void sq_isolation_stop(sq_runtime *rt)
{
    sq_isolation *iso = rt->iso;
    if (iso == NULL)
        return;
    sq_forksrv_stop(iso->fs);
    for (int i = 0; i < iso->n; i++)
        pthread_mutex_destroy(&iso->w[i].lock);
    free(iso->w);
    free(iso);
    rt->iso = NULL;
}

bool sq_isolated(const sq_runtime *rt)
{
    return rt->iso != NULL && rt->iso->fs != NULL;
}

/* ---- the handler call, both modes --------------------------------------- */

void sq__handler_call(sq_worker *w, sq_job *job, sq_handler_fn fn, void *ud)
{
    sq_result r = fn(job, ud);
    if (w->db != NULL) { /* back to the pool the moment the handler is done */
        sq_pgpool_checkin(w->rt->pgpool, w->db);
        w->db = NULL;
    }
    if (r != SQ_OK && !job->outcome.failed)
        sq_outcome_fail(&job->outcome, "Squire::Error",
                        "handler returned SQ_FAILED without calling sq_job_fail");
    char *safe = w->rt->pgpool && job->outcome.error_message
                     ? sq_pgpool_scrub(w->rt->pgpool, job->outcome.error_message)
                     : NULL;
    if (safe != NULL) { /* a handler's own connect error may quote the URL */
        free(job->outcome.error_message);
        job->outcome.error_message = safe;
    }
    /* cut only now: cut first, a long password would no longer match whole */
    sq_outcome_cut(&job->outcome);
}

/* ---- timeouts ---------------------------------------------------------------- */

double sq_job_timeout_for(const sq_job *job, const sq_registry *reg, const sq_config *cfg)
{
    const json_t *v = json_object_get(job->payload, "squire_timeout");
    if (json_is_number(v) && json_number_value(v) > 0)
        return json_number_value(v);
    double t = sq_registry_timeout(reg, job->klass);
    return t > 0 ? t : cfg->job_timeout;
}

void sq__deadline_begin(sq_worker *w, const sq_job *job, double timeout)
{
    worker_iso *wi = iso_of(w);
    if (wi == NULL)
        return;
    wi->saw_deadline = false;
    pthread_mutex_lock(&wi->lock);
    wi->timeout = timeout;
    wi->deadline = timeout > 0 ? sq__monotonic() + timeout : 0;
    wi->late_warned = false;
    snprintf(wi->klass, sizeof wi->klass, "%s", job->klass ? job->klass : "?");
    snprintf(wi->jid, sizeof wi->jid, "%s", job->jid ? job->jid : "");
    pthread_mutex_unlock(&wi->lock);
}

bool sq__deadline_end(sq_worker *w)
{
    worker_iso *wi = iso_of(w);
    if (wi == NULL)
        return false;
    pthread_mutex_lock(&wi->lock);
    wi->deadline = 0;
    pthread_mutex_unlock(&wi->lock);
    return wi->saw_deadline;
}

bool sq__job_late(sq_worker *w)
{
    if (shared_stop != NULL && atomic_load(shared_stop)) {
        w->saw_stop = true; /* a worker process: the daemon is shutting down */
        return true;
    }
    worker_iso *wi = iso_of(w);
    /* the deadline is written by this thread only: read without the lock */
    if (wi == NULL || wi->deadline <= 0 || sq__monotonic() < wi->deadline)
        return false;
    wi->saw_deadline = true;
    return true;
}

bool sq_isolate_watch(sq_runtime *rt)
{
    sq_isolation *iso = rt->iso;
    char why[160];
    if (iso == NULL)
        return true;
    if (iso->fs != NULL) { /* the worker threads enforce their deadlines */
        if (sq_forksrv_alive(iso->fs, why, sizeof why))
            return true;
        sq_log(SQ_LOG_ERROR,
               "the fork server died (%s): no job can run; shutting down to be restarted", why);
        return false;
    }
    double now = sq__monotonic();
    for (int i = 0; i < iso->n; i++) {
        worker_iso *wi = &iso->w[i];
        pthread_mutex_lock(&wi->lock);
        if (wi->deadline > 0 && now >= wi->deadline && !wi->late_warned) {
            wi->late_warned = true;
            sq_log(SQ_LOG_WARN,
                   "w%d: class=%s jid=%s is past its timeout of %g s; in thread mode the timeout "
                   "is cooperative (sq_job_stopping now says true); run with isolated: true to "
                   "enforce it",
                   i, wi->klass, wi->jid, wi->timeout);
        }
        pthread_mutex_unlock(&wi->lock);
    }
    return true;
}
