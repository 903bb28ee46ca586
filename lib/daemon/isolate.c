/*
 * isolate.c: isolated mode, the daemon's side (see isolate.h and, for the
 * processes and sockets, isolate_internal.h): a worker thread starts its
 * worker process through the fork server, hands it each job, and waits for
 * the outcome within the job's deadline, ending it when it runs over.
 */
#include "isolate_internal.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"

#define HELLO_WAIT 60.0 /* seconds a new worker process may take in its init hook */
#define STATUS_WAIT 5.0 /* seconds for the wait status of a process that closed its socket */

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
    if (sq__iso_readable(c->status_fd, wait)) {
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
    while (!sq__iso_readable(c->job_fd, 0.1)) {
        if (atomic_load(&w->rt->hard_stop) || sq__monotonic() > until) {
            send_signal(fs, c->pid, SIGKILL);
            reap_child(c, STATUS_WAIT);
            sq__error_set(err, SQ_EIO, "a new worker process did not start within %.0f s",
                          HELLO_WAIT);
            return -1;
        }
    }
    if (sq__iso_read_all(c->job_fd, &hello, 1) != 0 || hello != 'H') {
        pid_t pid = c->pid;
        char how[160];
        sq__iso_describe_status(reap_child(c, STATUS_WAIT), how, sizeof how);
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
    return sq__iso_write_all(c->job_fd, &h, sizeof h) == 0 &&
                   sq__iso_write_all(c->job_fd, w->tid, h.tid_len) == 0 &&
                   sq__iso_write_all(c->job_fd, job->queue, h.queue_len) == 0 &&
                   sq__iso_write_all(c->job_fd, job->raw, job->raw_len) == 0
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
    sq__iso_describe_status(reap_child(c, STATUS_WAIT), how, sizeof how);
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
        if (!sq__iso_readable(r->fd, left < 0.1 ? left : 0.1))
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
            int got = sq__iso_readable(c->job_fd, 0)
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
            sq__iso_describe_status(status, how, sizeof how);
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
            atomic_store(sq__shared_stop, true); /* sq_job_stopping turns true there */
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
