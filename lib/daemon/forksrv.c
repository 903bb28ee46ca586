/*
 * forksrv.c: the fork server of isolated mode, forked from the daemon
 * while it has one thread: it forks worker processes on request, hands
 * their sockets over, signals them on request and reports how each ended.
 */
#include "isolate_internal.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"

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
        sq__child_main(job[1], self, cfg, reg);
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
    snprintf(sq__child_identity, sizeof sq__child_identity, "%s", ident);
    sq_forksrv *fs = calloc(1, sizeof *fs);
    int sv[2];
    if (fs == NULL || socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
        sq__error_set(err, SQ_EIO, "cannot start the fork server: %s", strerror(errno));
        free(fs);
        return NULL;
    }
    if (sq__shared_stop == NULL) {
        void *page = mmap(NULL, sizeof *sq__shared_stop, PROT_READ | PROT_WRITE,
                          MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (page == MAP_FAILED) {
            sq__error_set(err, SQ_EIO, "cannot start the fork server: %s", strerror(errno));
            close(sv[0]), close(sv[1]);
            free(fs);
            return NULL;
        }
        sq__shared_stop = page;
    }
    atomic_store(sq__shared_stop, false);
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
        sq__iso_describe_status(status, why, size);
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
