#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

double sqt_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void sqt_sleep(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

int sqt_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

int sqt_silent_server(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(listen(fd, 64), 0);
    socklen_t len = sizeof a;
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

#define TRICKLE_MAX_CONNS 64

/* The trickle server's loop (in its own process): accept, drop what comes
 * in, and each second send every connection its next byte. */
static void trickle_loop(int lfd, const char *prefix, size_t len, char filler)
{
    struct pollfd pfd[TRICKLE_MAX_CONNS + 1];
    size_t sent[TRICKLE_MAX_CONNS + 1];
    int n = 1;
    pfd[0] = (struct pollfd){.fd = lfd, .events = POLLIN};
    double next = sqt_now() + 1;
    for (;;) {
        int wait = (int)((next - sqt_now()) * 1000);
        if (poll(pfd, (nfds_t)n, wait > 0 ? wait : 0) < 0 && errno != EINTR)
            _exit(1);
        if ((pfd[0].revents & POLLIN) && n <= TRICKLE_MAX_CONNS) {
            int c = accept(lfd, NULL, NULL);
            if (c >= 0) {
                pfd[n] = (struct pollfd){.fd = c, .events = POLLIN};
                sent[n++] = 0;
            }
        }
        for (int i = 1; i < n; i++) {
            char buf[4096];
            if ((pfd[i].revents & (POLLIN | POLLHUP | POLLERR)) &&
                recv(pfd[i].fd, buf, sizeof buf, MSG_DONTWAIT) == 0) {
                close(pfd[i].fd); /* the client gave up */
                pfd[i] = pfd[--n];
                sent[i--] = sent[n];
            }
        }
        if (sqt_now() < next)
            continue;
        next += 1;
        for (int i = 1; i < n; i++) {
            char b = sent[i] < len ? prefix[sent[i]] : filler;
            if (send(pfd[i].fd, &b, 1, MSG_NOSIGNAL | MSG_DONTWAIT) == 1)
                sent[i]++;
        }
    }
}

static void trickle_tls_loop(int lfd, const char *certdir, const char *prefix, size_t len,
                             char filler)
{
    signal(SIGPIPE, SIG_IGN);
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    char crt[320], key[320];
    snprintf(crt, sizeof crt, "%s/server.crt", certdir);
    snprintf(key, sizeof key, "%s/server.key", certdir);
    if (ctx == NULL || SSL_CTX_use_certificate_chain_file(ctx, crt) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1)
        _exit(1);
    for (;;) {
        int c = accept(lfd, NULL, NULL);
        if (c < 0)
            continue;
        SSL *ssl = SSL_new(ctx);
        SSL_set_fd(ssl, c);
        if (SSL_accept(ssl) == 1) {
            for (size_t i = 0;; i++) {
                char b = i < len ? prefix[i] : filler;
                if (SSL_write(ssl, &b, 1) != 1)
                    break; /* the client gave up */
                sleep(1);
            }
        }
        SSL_free(ssl);
        close(c);
    }
}

/* A listening port (*port) served by loop(lfd, arg) in a child process that
 * dies with the test. */
static pid_t serve_in_child(void (*loop)(int lfd, const void *arg), const void *arg, int *port)
{
    int lfd = sqt_silent_server(port);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        signal(SIGTERM, SIG_DFL);
        loop(lfd, arg);
        _exit(0);
    }
    close(lfd);
    return pid;
}

typedef struct trickle_arg {
    const char *certdir, *prefix;
    size_t len;
    char filler;
} trickle_arg;

static void trickle_serve(int lfd, const void *arg)
{
    const trickle_arg *t = arg;
    if (t->certdir != NULL)
        trickle_tls_loop(lfd, t->certdir, t->prefix, t->len, t->filler);
    else
        trickle_loop(lfd, t->prefix, t->len, t->filler);
}

/* A trickle server in a child process: TLS when certdir is not NULL. */
static pid_t trickle_start(const char *certdir, const char *prefix, size_t len, char filler,
                           int *port)
{
    trickle_arg t = {certdir, prefix, len, filler};
    return serve_in_child(trickle_serve, &t, port);
}

pid_t sqt_trickle_server(const char *prefix, size_t len, char filler, int *port)
{
    return trickle_start(NULL, prefix, len, filler, port);
}

pid_t sqt_trickle_tls_server(const char *certdir, const char *prefix, size_t len, char filler,
                             int *port)
{
    return trickle_start(certdir, prefix, len, filler, port);
}

/* In the child: each request read on a connection is answered with reply. */
static void reply_serve(int lfd, const void *arg)
{
    const char *reply = arg;
    for (;;) {
        int c = accept(lfd, NULL, NULL);
        char buf[4096];
        while (c >= 0 && recv(c, buf, sizeof buf, 0) > 0)
            if (send(c, reply, strlen(reply), MSG_NOSIGNAL) < 0)
                break;
        if (c >= 0)
            close(c);
    }
}

pid_t sqt_reply_server(const char *reply, int *port)
{
    return serve_in_child(reply_serve, reply, port);
}

void sqt_trickle_stop(pid_t pid)
{
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

/* The slow proxy's side of one connection (a process of its own): what the
 * client sends goes on at once; each chunk the server answers is held delay
 * seconds before it is passed on. */
static void slow_pipe(int cfd, int target_port, double delay)
{
    int sfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)target_port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (sfd < 0 || connect(sfd, (struct sockaddr *)&a, sizeof a) != 0)
        _exit(0);
    char buf[65536];
    for (;;) {
        struct pollfd pfd[2] = {{.fd = cfd, .events = POLLIN}, {.fd = sfd, .events = POLLIN}};
        if (poll(pfd, 2, -1) < 0 && errno != EINTR)
            _exit(0);
        for (int i = 0; i < 2; i++) {
            if (!(pfd[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            ssize_t n = read(pfd[i].fd, buf, sizeof buf);
            if (n <= 0)
                _exit(0);
            if (i == 1)
                sqt_sleep(delay);
            for (ssize_t off = 0; off < n;) {
                ssize_t w = write(pfd[1 - i].fd, buf + off, (size_t)(n - off));
                if (w <= 0)
                    _exit(0);
                off += w;
            }
        }
    }
}

pid_t sqt_slow_proxy(int target_port, double delay, int *port)
{
    int lfd = sqt_silent_server(port);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGCHLD, SIG_IGN); /* connections' processes reap themselves */
        signal(SIGPIPE, SIG_IGN);
        for (;;) {
            int cfd = accept(lfd, NULL, NULL);
            if (cfd < 0)
                continue;
            if (fork() == 0) {
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                close(lfd);
                slow_pipe(cfd, target_port, delay);
            }
            close(cfd);
        }
    }
    close(lfd);
    return pid;
}

/* Temp dirs made by this process (and by each forked Check child), removed
 * when it exits, even after a failed check: each process removes only the
 * ones it made, never its parent's. SQUIRE_TEST_KEEP=1 keeps them. */
#define MAX_TEMPDIRS 64
static struct {
    char path[256];
    pid_t owner;
} tempdirs[MAX_TEMPDIRS];
static int ntempdirs;

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    remove(path);
    return 0;
}

void sqt_rmtree(const char *dir)
{
    nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

double sqt_wall(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The integration suites' server and connection (itest.h). */
sqt_redis R;
redisContext *C;

static void remove_tempdirs(void)
{
    const char *keep = getenv("SQUIRE_TEST_KEEP");
    if (keep != NULL && keep[0] != '\0' && strcmp(keep, "0") != 0)
        return;
    for (int i = 0; i < ntempdirs; i++)
        if (tempdirs[i].owner == getpid())
            sqt_rmtree(tempdirs[i].path);
}

void sqt_tempdir(char *out, const char *tag)
{
    static bool registered; /* atexit handlers survive fork: once is enough */
    const char *base = getenv("TMPDIR");
    snprintf(out, 256, "%s/squire-%s-XXXXXX", base && base[0] ? base : "/tmp", tag);
    ck_assert_ptr_nonnull(mkdtemp(out));
    if (!registered)
        registered = atexit(remove_tempdirs) == 0;
    if (ntempdirs < MAX_TEMPDIRS) {
        snprintf(tempdirs[ntempdirs].path, sizeof tempdirs[ntempdirs].path, "%s", out);
        tempdirs[ntempdirs++].owner = getpid();
    }
}

void sqt_credential(char *env, const char *name, const char *text)
{
    char dir[256], path[400];
    sqt_tempdir(dir, "cred");
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "%s\n", text);
    ck_assert_int_eq(fclose(f), 0);
    snprintf(env, 320, "CREDENTIALS_DIRECTORY=%s", dir);
}

const char *sqt_redis_server(void)
{
    const char *s = getenv("SQ_REDIS_SERVER");
    return s != NULL && s[0] != '\0' ? s : "redis-server";
}

static void spawn_redis(sqt_redis *r)
{
    char cmd[2400];
    if (strncmp(r->extra, "--sentinel", 10) == 0) /* sqt_sentinel_start */
        snprintf(cmd, sizeof cmd, "exec %s %s/sentinel.conf --sentinel", sqt_redis_server(),
                 r->dir);
    else
        snprintf(cmd, sizeof cmd,
                 "exec %s --bind 127.0.0.1 --port %d --dir %s --save '' "
                 "--appendonly no --logfile %s/redis.log %s",
                 sqt_redis_server(), r->port, r->dir, r->dir, r->extra);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        /* Die with the test (a failed Check test skips its teardown), and
         * never hold the test runner's output pipe open. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int devnull = open("/dev/null", O_RDWR);
        dup2(devnull, 0);
        dup2(devnull, 1);
        dup2(devnull, 2);
        setpgid(0, 0);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    r->pid = pid;
    double until = sqt_now() + 10;
    while (sqt_now() < until) {
        struct timeval tv = {1, 0};
        redisContext *c = redisConnectWithTimeout("127.0.0.1", r->port, tv);
        if (c && !c->err) {
            redisReply *rep = redisCommand(c, "PING");
            bool ok = rep && (rep->type == REDIS_REPLY_STATUS ||
                              (rep->type == REDIS_REPLY_ERROR && strstr(rep->str, "NOAUTH")));
            if (rep)
                freeReplyObject(rep);
            redisFree(c);
            if (ok)
                return;
        } else if (c) {
            redisFree(c);
        }
        sqt_sleep(0.02);
    }
    ck_abort_msg("redis-server on port %d did not start", r->port);
}

void sqt_redis_start(sqt_redis *r, const char *extra)
{
    memset(r, 0, sizeof *r);
    r->port = sqt_free_port();
    sqt_tempdir(r->dir, "redis");
    snprintf(r->extra, sizeof r->extra, "%s", extra ? extra : "");
    snprintf(r->url, sizeof r->url, "redis://127.0.0.1:%d/0", r->port);
    spawn_redis(r);
}

void sqt_sentinel_start(sqt_redis *r, const char *master, int master_port)
{
    memset(r, 0, sizeof *r);
    r->port = sqt_free_port();
    sqt_tempdir(r->dir, "sentinel");
    snprintf(r->extra, sizeof r->extra, "--sentinel");
    snprintf(r->url, sizeof r->url, "redis://127.0.0.1:%d/0", r->port);
    char path[300];
    snprintf(path, sizeof path, "%s/sentinel.conf", r->dir);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f,
            "bind 127.0.0.1\nport %d\ndir %s\nlogfile %s/redis.log\n"
            "sentinel monitor %s 127.0.0.1 %d 2\n"
            "sentinel down-after-milliseconds %s 1000\n"
            "sentinel failover-timeout %s 10000\n"
            "sentinel parallel-syncs %s 1\n",
            r->port, r->dir, r->dir, master, master_port, master, master, master);
    fclose(f);
    spawn_redis(r);
}

void sqt_tls_certs(const char *dir)
{
    /* EC keys: fast to make. Each leaf is signed by ca.crt. */
    int rc = sqt_sh(NULL, NULL,
                    "cd '%s' && set -e; exec 2>openssl.log; "
                    "ca() { openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 "
                    "-nodes -keyout $1.key -out $1.crt -days 2 -subj /CN=$1; }; "
                    "leaf() { openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 "
                    "-nodes -keyout $1.key -out $1.csr -subj /CN=$2; "
                    "printf 'subjectAltName=%%s\\nextendedKeyUsage=%%s\\n' \"$3\" $4 > $1.ext; "
                    "openssl x509 -req -in $1.csr -CA ca.crt -CAkey ca.key -CAcreateserial "
                    "-out $1.crt -days 2 -extfile $1.ext; }; "
                    "ca ca; ca wrongca; "
                    "leaf server localhost DNS:localhost,IP:127.0.0.1 serverAuth; "
                    "leaf wrongname wrong.example DNS:wrong.example serverAuth; "
                    "leaf client squire-client DNS:squire-client clientAuth",
                    dir);
    ck_assert_msg(rc == 0, "openssl could not make the test certificates in %s", dir);
}

void sqt_redis_start_tls(sqt_redis *r, const char *certdir, const char *cert, const char *extra)
{
    memset(r, 0, sizeof *r);
    r->port = sqt_free_port();
    do
        r->tls_port = sqt_free_port();
    while (r->tls_port == r->port);
    sqt_tempdir(r->dir, "redis");
    snprintf(r->extra, sizeof r->extra,
             "--tls-port %d --tls-cert-file %s/%s.crt --tls-key-file %s/%s.key "
             "--tls-ca-cert-file %s/ca.crt --tls-auth-clients optional %s",
             r->tls_port, certdir, cert, certdir, cert, certdir, extra ? extra : "");
    snprintf(r->url, sizeof r->url, "redis://127.0.0.1:%d/0", r->port);
    snprintf(r->tls_url, sizeof r->tls_url, "rediss://127.0.0.1:%d/0", r->tls_port);
    spawn_redis(r);
}

static void reap(pid_t pid, int sig)
{
    if (pid <= 0)
        return;
    kill(pid, sig);
    int st;
    double until = sqt_now() + 10;
    while (waitpid(pid, &st, WNOHANG) == 0) {
        if (sqt_now() > until) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            return;
        }
        sqt_sleep(0.01);
    }
}

void sqt_redis_kill9(sqt_redis *r)
{
    reap(r->pid, SIGKILL);
    r->pid = 0;
}

void sqt_redis_restart(sqt_redis *r)
{
    spawn_redis(r);
}

void sqt_redis_stop(sqt_redis *r)
{
    reap(r->pid, SIGTERM);
    r->pid = 0;
    if (r->dir[0]) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", r->dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", r->dir);
    }
}

redisContext *sqt_redis_connect(const sqt_redis *r)
{
    struct timeval tv = {5, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", r->port, tv);
    ck_assert_msg(c && !c->err, "connect to test redis: %s", c ? c->errstr : "oom");
    return c;
}

redisReply *sqt_cmd(redisContext *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *rep = redisvCommand(c, fmt, ap);
    va_end(ap);
    ck_assert_msg(rep != NULL, "redis command failed: %s", c->errstr);
    return rep;
}

long long sqt_int(redisContext *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *rep = redisvCommand(c, fmt, ap);
    va_end(ap);
    ck_assert_msg(rep != NULL, "redis command failed: %s", c->errstr);
    long long v = rep->type == REDIS_REPLY_INTEGER  ? rep->integer
                  : rep->type == REDIS_REPLY_STRING ? strtoll(rep->str, NULL, 10)
                                                    : 0;
    freeReplyObject(rep);
    return v;
}

long long sqt_wait_int(redisContext *c, long long want, double timeout, const char *fmt, ...)
{
    double until = sqt_now() + timeout;
    long long v = 0;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        redisReply *rep = redisvCommand(c, fmt, ap);
        va_end(ap);
        ck_assert_msg(rep != NULL, "redis command failed: %s", c->errstr);
        v = rep->type == REDIS_REPLY_INTEGER  ? rep->integer
            : rep->type == REDIS_REPLY_STRING ? strtoll(rep->str, NULL, 10)
                                              : 0;
        freeReplyObject(rep);
        if (v >= want || sqt_now() > until)
            return v;
        sqt_sleep(0.02);
    }
}

void sqt_squire_start(sqt_proc *p, const char *url, const char *const *argv, const char *const *env)
{
    sqt_proc_start(p, SQ_TEST_SQUIRE, url, argv, env);
}

void sqt_proc_start(sqt_proc *p, const char *binary, const char *url, const char *const *argv,
                    const char *const *env)
{
    char dir[256];
    sqt_tempdir(dir, "log");
    snprintf(p->log, sizeof p->log, "%s/squire.log", dir);
    const char *args[64];
    int n = 0;
    args[n++] = binary;
    for (int i = 0; argv && argv[i] && n < 62; i++)
        args[n++] = argv[i];
    args[n] = NULL;
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        /* Until exec this child runs with the handlers Check gave the test
         * process, whose SIGTERM handler signals the whole process group:
         * a TERM aimed at a squire just started must not reach the test. */
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        int devnull = open("/dev/null", O_RDONLY);
        dup2(devnull, 0);
        int fd = open(p->log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        /* nothing of the test's (its Redis connection above all) leaks
         * into squire, whose handlers may write to what they inherit */
        for (int other = 3; other < 1024; other++)
            close(other);
        if (url)
            setenv("REDIS_URL", url, 1);
        /* the suites run as root in sandboxes and CI; env may say otherwise */
        setenv("SQUIRE_ALLOW_ROOT", "1", 1);
        for (int i = 0; env && env[i]; i++) {
            if (strcmp(env[i], "JOURNAL_STREAM=auto") == 0) {
                /* as systemd sets it: the device:inode of our stdout */
                struct stat st;
                char v[64];
                if (fstat(1, &st) == 0) {
                    snprintf(v, sizeof v, "%llu:%llu", (unsigned long long)st.st_dev,
                             (unsigned long long)st.st_ino);
                    setenv("JOURNAL_STREAM", v, 1);
                }
                continue;
            }
            if (strcmp(env[i], "SQT_OWN_GROUP=1") == 0) {
                /* a process group of its own, as a service manager or a
                 * shell's job control gives it: a group signal sent from
                 * inside squire must not reach the test */
                setpgid(0, 0);
                continue;
            }
            putenv((char *)env[i]);
        }
        execv(binary, (char *const *)args);
        _exit(127);
    }
    p->pid = pid;
}

int sqt_proc_wait(sqt_proc *p, double timeout)
{
    double until = sqt_now() + timeout;
    int st;
    for (;;) {
        pid_t r = waitpid(p->pid, &st, WNOHANG);
        if (r == p->pid) {
            p->pid = 0;
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        }
        if (sqt_now() > until)
            return -1;
        sqt_sleep(0.01);
    }
}

void sqt_proc_stop(sqt_proc *p, int sig)
{
    reap(p->pid, sig);
    p->pid = 0;
}

char *sqt_file_read(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return strdup("");
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    size_t n;
    while ((n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (cap - len < 2048) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
    }
    buf[len] = '\0';
    fclose(f);
    return buf;
}

char *sqt_log_read(const sqt_proc *p)
{
    return sqt_file_read(p->log);
}

bool sqt_log_wait(const sqt_proc *p, const char *needle, double timeout)
{
    double until = sqt_now() + timeout;
    for (;;) {
        char *s = sqt_log_read(p);
        bool found = strstr(s, needle) != NULL;
        free(s);
        if (found)
            return true;
        if (sqt_now() > until)
            return false;
        sqt_sleep(0.02);
    }
}

static char *slurp_fd(int fd)
{
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    ssize_t n;
    while ((n = read(fd, buf + len, cap - len - 1)) > 0) {
        len += (size_t)n;
        if (cap - len < 2048) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
    }
    buf[len] = '\0';
    return buf;
}

int sqt_sh(const char *url, char **out, const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], 1);
        close(fds[1]);
        if (url)
            setenv("REDIS_URL", url, 1);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    char *s = slurp_fd(fds[0]);
    close(fds[0]);
    int st;
    waitpid(pid, &st, 0);
    if (out)
        *out = s;
    else
        free(s);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static const char *sidekiq_version; /* NULL: Debian's ruby-sidekiq */

const char *sqt_third_party(void)
{
    static char dir[PATH_MAX];
    char *real = realpath(SQ_TEST_SOURCE_DIR "/../shared/third_party", NULL);
    if (real == NULL)
        return NULL;
    snprintf(dir, sizeof dir, "%s", real);
    free(real);
    char probe[PATH_MAX + 64];
    snprintf(probe, sizeof probe, "%s/sidekiq-7.3.10/lib/sidekiq.rb", dir);
    return access(probe, R_OK) == 0 ? dir : NULL;
}

bool sqt_third_party_has(const char *version)
{
    const char *tp = sqt_third_party();
    char probe[PATH_MAX + 64];
    snprintf(probe, sizeof probe, "%s/sidekiq-%s/lib/sidekiq.rb", tp ? tp : "", version);
    return tp != NULL && access(probe, R_OK) == 0;
}

void sqt_sidekiq_use(const char *version)
{
    sidekiq_version = version;
}

const char *sqt_sidekiq_expected(void)
{
    return sidekiq_version ? sidekiq_version : "6.4.1";
}

static int run_ruby(const char *url, char **out, const char *prefix, const char *script,
                    const char *args)
{
    char lib[4 * PATH_MAX + 160] = "";
    if (sidekiq_version != NULL) {
        const char *tp = sqt_third_party();
        ck_assert_msg(tp != NULL && sqt_third_party_has(sidekiq_version),
                      "Sidekiq %s asked for but ../shared/third_party lacks it", sidekiq_version);
        if (strcmp(sidekiq_version, "8.1.7") == 0) /* its client and API, on Ruby 3.1 */
            snprintf(lib, sizeof lib,
                     "RUBYOPT='-r%s/ruby31_compat.rb' RUBYLIB='%s/sidekiq-8.1.7/lib:"
                     "%s/redis-client-0.30.0/lib:%s/connection_pool-2.5.5/lib' ",
                     tp, tp, tp, tp);
        else {
            ck_assert_str_eq(sidekiq_version, "7.3.10");
            snprintf(lib, sizeof lib,
                     "RUBYLIB='%s/sidekiq-7.3.10/lib:%s/redis-client-0.26.4/lib:"
                     "%s/connection_pool-2.5.5/lib' ",
                     tp, tp, tp);
        }
    }
    return sqt_sh(url, out, "%s%sruby -W0 '%s/test/ruby/%s' %s", prefix, lib, SQ_TEST_SOURCE_DIR,
                  script, args ? args : "");
}

int sqt_ruby(const char *url, char **out, const char *script, const char *args)
{
    return run_ruby(url, out, "", script, args);
}

int sqt_ruby_env(char **out, const char *env, const char *script, const char *args)
{
    char prefix[2048];
    snprintf(prefix, sizeof prefix, "env -i PATH=\"$PATH\" HOME=\"$HOME\" LANG=C.UTF-8 %s ",
             env ? env : "");
    return run_ruby(NULL, out, prefix, script, args);
}

int sqt_run(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
