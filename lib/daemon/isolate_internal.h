/*
 * isolate_internal.h: what the files of isolated mode share (see isolate.h).
 * Internal.
 *
 *   isolate.c         the daemon's side: a worker thread's worker process,
 *                     its job handed over and its outcome read, its deadline
 *   forksrv.c         the fork server
 *   worker_process.c  a worker process: init hook, then job after job
 *   job_call.c        the handler call and job timeouts, both modes
 *   isolate_io.c      reads and writes on the sockets, wait statuses in words
 *
 * Each calls only the ones below it in this list, so no call cycle.
 *
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
#ifndef SQ_ISOLATE_INTERNAL_H
#define SQ_ISOLATE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>

#include "isolate.h"

#define OP_SPAWN 1
#define OP_SIGNAL 2
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

static inline worker_iso *iso_of(const sq_worker *w)
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

/* ---- isolate_io.c ---------------------------------------------------------- */

/* All n bytes, or -1 (send with MSG_NOSIGNAL; EINTR retried). */
int sq__iso_write_all(int fd, const void *buf, size_t n);
/* All n bytes, or -1 at EOF or an error. */
int sq__iso_read_all(int fd, void *buf, size_t n);
/* Wait up to seconds for fd to be readable (or closed). */
bool sq__iso_readable(int fd, double seconds);
/* "signal 11 (SIGSEGV, Segmentation fault)" or "exit status 3". */
void sq__iso_describe_status(int status, char *buf, size_t size);

/* ---- job_call.c ------------------------------------------------------------ */

/* The daemon's shutdown flag in memory shared with every worker process
 * (made by sq_forksrv_start; NULL in thread mode). */
extern atomic_bool *sq__shared_stop;

/* ---- worker_process.c ------------------------------------------------------ */

/* The daemon's identity: the worker processes' application_name by default. */
extern char sq__child_identity[300];
/* A new worker process (forked by the fork server, pid server): serve jobs
 * on fd until it closes or the process retires. */
_Noreturn void sq__child_main(int fd, pid_t server, const sq_config *cfg, sq_registry *reg);

#endif
