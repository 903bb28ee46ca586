#include "pgharness.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <grp.h>
#include <libpq-fe.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

/* ---- finding the tools ---------------------------------------------------- */

static bool has_initdb(const char *bindir)
{
    char p[300];
    snprintf(p, sizeof p, "%s/initdb", bindir);
    return access(p, X_OK) == 0;
}

/* pg_config --bindir, else the newest /usr/lib/postgresql/N/bin (Debian
 * keeps initdb and pg_ctl off PATH), else /usr/local/bin and /usr/bin. */
static void find_bindir(char out[256])
{
    FILE *f = popen("pg_config --bindir 2>/dev/null", "r");
    if (f != NULL) {
        char line[256] = "";
        char *got = fgets(line, sizeof line, f);
        pclose(f);
        line[strcspn(line, "\r\n")] = '\0';
        if (got != NULL && line[0] && has_initdb(line)) {
            snprintf(out, 256, "%s", line);
            return;
        }
    }
    glob_t g;
    if (glob("/usr/lib/postgresql/*/bin/initdb", 0, NULL, &g) == 0 && g.gl_pathc > 0) {
        /* glob sorts: the last is the newest major version (for equal widths) */
        const char *best = g.gl_pathv[g.gl_pathc - 1];
        snprintf(out, 256, "%.*s", (int)(strlen(best) - strlen("/initdb")), best);
        globfree(&g);
        return;
    }
    const char *dirs[] = {"/usr/local/bin", "/usr/bin"};
    for (size_t i = 0; i < 2; i++)
        if (has_initdb(dirs[i])) {
            snprintf(out, 256, "%s", dirs[i]);
            return;
        }
    ck_abort_msg("PostgreSQL's initdb not found (pg_config --bindir, /usr/lib/postgresql/*/bin)");
}

/* ---- running them (as postgres when we are root) ---------------------------- */

static void close_from(int lowfd, int keep)
{
    long max = sysconf(_SC_OPEN_MAX);
    if (max < 0 || max > 65536)
        max = 65536;
    for (int fd = lowfd; fd < max; fd++)
        if (fd != keep)
            close(fd);
}

/* In a forked child: become the postgres user when running as root. */
static int drop_to_postgres(void)
{
    if (geteuid() != 0)
        return 0;
    struct passwd *pw = getpwnam("postgres");
    if (pw == NULL)
        return -1;
    if (setgroups(0, NULL) != 0 || setgid(pw->pw_gid) != 0 || setuid(pw->pw_uid) != 0)
        return -1;
    setenv("HOME", pw->pw_dir, 1);
    setenv("USER", "postgres", 1);
    return 0;
}

/* Run bindir/tool with args (NULL-terminated, without argv[0]), output
 * appended to log; returns the exit status (or 128+signal, 127 on exec
 * failure). Never asserts: the watchdog uses it too. */
static int run_tool(const char *bindir, const char *tool, const char *const *args,
                    const char *log, bool die_with_parent)
{
    char path[300];
    snprintf(path, sizeof path, "%s/%s", bindir, tool);
    const char *argv[32];
    int n = 0;
    argv[n++] = path;
    for (int i = 0; args[i] && n < 31; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        if (die_with_parent)
            prctl(PR_SET_PDEATHSIG, SIGKILL);
        int in = open("/dev/null", O_RDONLY);
        int out = open(log ? log : "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0644);
        dup2(in, 0);
        dup2(out, 1);
        dup2(out, 2);
        /* the postmaster inherits pg_ctl's descriptors: leak none of ours
         * (Redis sockets, Check's files, a watchdog's pipe) */
        close_from(3, -1);
        if (drop_to_postgres() != 0) {
            dprintf(2, "cannot switch to the postgres user (PostgreSQL refuses root)\n");
            _exit(126);
        }
        unsetenv("PGDATA");
        unsetenv("PGPORT");
        unsetenv("PGHOST");
        execv(path, (char *const *)argv);
        dprintf(2, "exec %s: %s\n", path, strerror(errno));
        _exit(127);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* The file's text ("" when missing), only its last 3000 bytes. */
static char *slurp(const char *path)
{
    char *buf = sqt_file_read(path);
    size_t len = strlen(buf);
    /* keep failure messages short: the tail is what matters */
    if (len > 3000) {
        memmove(buf, buf + len - 3000, 3001);
    }
    return buf;
}

char *sqt_pg_log(const sqt_pg *pg)
{
    char p[300];
    snprintf(p, sizeof p, "%s/pg.log", pg->dir);
    return slurp(p);
}

static int ctl_stop(const sqt_pg *pg, const char *mode)
{
    char log[300];
    snprintf(log, sizeof log, "%s/pg_ctl.log", pg->dir);
    const char *args[] = {"-D", pg->data, "-m", mode, "-w", "-t", "30", "stop", NULL};
    return run_tool(pg->bindir, "pg_ctl", args, log, false);
}

/* ---- the watchdog ------------------------------------------------------------ */

static void arm_watchdog(sqt_pg *pg)
{
    int fds[2];
    ck_assert_int_eq(pipe2(fds, O_CLOEXEC), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        /* Own session: Check kills the test's process group on a timeout. */
        setsid();
        signal(SIGHUP, SIG_IGN);
        signal(SIGPIPE, SIG_IGN);
        int devnull = open("/dev/null", O_RDWR);
        dup2(devnull, 0);
        dup2(devnull, 1);
        dup2(devnull, 2);
        close_from(3, fds[0]);
        char c = 0;
        ssize_t n;
        while ((n = read(fds[0], &c, 1)) < 0 && errno == EINTR)
            ;
        if (n == 1 && c == 'd')
            _exit(0); /* disarmed: sqt_pg_stop did the work */
        /* EOF: the test died without stopping its server */
        ctl_stop(pg, "immediate");
        sqt_rmtree(pg->dir);
        _exit(0);
    }
    close(fds[0]);
    pg->watchdog = pid;
    pg->watch_fd = fds[1];
}

static void disarm_watchdog(sqt_pg *pg)
{
    if (pg->watchdog <= 0)
        return;
    ssize_t w = write(pg->watch_fd, "d", 1);
    (void)w;
    close(pg->watch_fd);
    waitpid(pg->watchdog, NULL, 0);
    pg->watchdog = 0;
    pg->watch_fd = -1;
}

/* ---- start / stop -------------------------------------------------------------- */

static void harness_disconnect(sqt_pg *pg)
{
    if (pg->conn != NULL)
        PQfinish(pg->conn);
    pg->conn = NULL;
}

void sqt_pg_up(sqt_pg *pg)
{
    char log[300], opts[600];
    snprintf(log, sizeof log, "%s/pg.log", pg->dir);
    snprintf(opts, sizeof opts,
             "-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off "
             "-c synchronous_commit=off -c max_connections=40",
             pg->port, pg->dir);
    const char *args[] = {"-D", pg->data, "-l", log, "-o", opts, "-w", "-t", "30", "start", NULL};
    int st = run_tool(pg->bindir, "pg_ctl", args, NULL, true);
    if (st != 0) {
        char *l = sqt_pg_log(pg);
        ck_abort_msg("pg_ctl start on port %d failed (%d):\n%s", pg->port, st, l);
    }
}

void sqt_pg_down(sqt_pg *pg)
{
    harness_disconnect(pg);
    int st = ctl_stop(pg, "fast");
    ck_assert_msg(st == 0, "pg_ctl stop -m fast failed (%d)", st);
}

void sqt_pg_restart(sqt_pg *pg)
{
    sqt_pg_down(pg);
    sqt_pg_up(pg);
}

void sqt_pg_start(sqt_pg *pg)
{
    sqt_pg_start_on(pg, 0);
}

void sqt_pg_start_on(sqt_pg *pg, int port)
{
    memset(pg, 0, sizeof *pg);
    pg->watch_fd = -1;
    find_bindir(pg->bindir);
    pg->port = port > 0 ? port : sqt_free_port();
    sqt_tempdir(pg->dir, "pg");
    if (geteuid() == 0) {
        struct passwd *pw = getpwnam("postgres");
        ck_assert_msg(pw != NULL, "running as root and there is no postgres user to run "
                                  "PostgreSQL as (it refuses root)");
        ck_assert_int_eq(chown(pg->dir, pw->pw_uid, pw->pw_gid), 0);
    }
    snprintf(pg->data, sizeof pg->data, "%s/data", pg->dir);
    snprintf(pg->url, sizeof pg->url, "postgresql://postgres@127.0.0.1:%d/postgres", pg->port);
    arm_watchdog(pg); /* from here on the dir goes away even if the test dies */

    char log[300];
    snprintf(log, sizeof log, "%s/initdb.log", pg->dir);
    const char *args[] = {"-D",          pg->data,  "-A", "trust", "-U", "postgres",
                          "--no-sync",   "-E",      "UTF8", "--locale=C",
                          "--no-instructions", NULL};
    int st = run_tool(pg->bindir, "initdb", args, log, true);
    if (st != 0) {
        char *l = slurp(log);
        ck_abort_msg("initdb into %s failed (%d) (as root the dir must be reachable by the "
                     "postgres user: TMPDIR?):\n%s",
                     pg->data, st, l);
    }
    sqt_pg_up(pg);
}

void sqt_pg_stop(sqt_pg *pg)
{
    if (pg->dir[0] == '\0')
        return;
    harness_disconnect(pg);
    ctl_stop(pg, "immediate");
    disarm_watchdog(pg);
    sqt_rmtree(pg->dir);
    pg->dir[0] = '\0';
}

/* ---- SQL ------------------------------------------------------------------------- */

static PGconn *harness_conn(sqt_pg *pg)
{
    if (pg->conn != NULL && PQstatus(pg->conn) == CONNECTION_OK)
        return pg->conn;
    harness_disconnect(pg);
    char ci[256];
    snprintf(ci, sizeof ci, "%s?application_name=sqt-harness&connect_timeout=3", pg->url);
    pg->conn = PQconnectdb(ci);
    return pg->conn;
}

/* One statement; NULL result and the error in err on failure. Retries once
 * on a fresh connection when the cached one broke (a server restart). */
static PGresult *query(sqt_pg *pg, const char *sql, char *err, size_t errlen)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        PGconn *c = harness_conn(pg);
        if (PQstatus(c) != CONNECTION_OK) {
            snprintf(err, errlen, "connect %s: %s", pg->url, PQerrorMessage(c));
            return NULL;
        }
        PGresult *res = PQexec(c, sql);
        ExecStatusType s = PQresultStatus(res);
        if (s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK)
            return res;
        snprintf(err, errlen, "%.300s: %s", sql, PQerrorMessage(c));
        PQclear(res);
        if (PQstatus(c) == CONNECTION_OK)
            return NULL; /* an SQL error, not a broken connection */
    }
    return NULL;
}

static char *vquery_str(sqt_pg *pg, bool must, bool *ok, const char *fmt, va_list ap)
{
    char sql[4096], err[1024];
    vsnprintf(sql, sizeof sql, fmt, ap);
    PGresult *res = query(pg, sql, err, sizeof err);
    if (res == NULL) {
        if (must)
            ck_abort_msg("%s", err);
        *ok = false;
        return NULL;
    }
    *ok = true;
    char *v = NULL;
    if (PQntuples(res) > 0 && PQnfields(res) > 0 && !PQgetisnull(res, 0, 0))
        v = strdup(PQgetvalue(res, 0, 0));
    PQclear(res);
    return v;
}

void sqt_pg_exec(sqt_pg *pg, const char *fmt, ...)
{
    va_list ap;
    bool ok;
    va_start(ap, fmt);
    free(vquery_str(pg, true, &ok, fmt, ap));
    va_end(ap);
}

char *sqt_pg_str(sqt_pg *pg, const char *fmt, ...)
{
    va_list ap;
    bool ok;
    va_start(ap, fmt);
    char *v = vquery_str(pg, true, &ok, fmt, ap);
    va_end(ap);
    return v;
}

long long sqt_pg_int(sqt_pg *pg, const char *fmt, ...)
{
    va_list ap;
    bool ok;
    va_start(ap, fmt);
    char *v = vquery_str(pg, true, &ok, fmt, ap);
    va_end(ap);
    long long n = v ? strtoll(v, NULL, 10) : 0;
    free(v);
    return n;
}

bool sqt_pg_try_int(sqt_pg *pg, long long *out, const char *fmt, ...)
{
    va_list ap;
    bool ok;
    va_start(ap, fmt);
    char *v = vquery_str(pg, false, &ok, fmt, ap);
    va_end(ap);
    if (ok && out)
        *out = v ? strtoll(v, NULL, 10) : 0;
    free(v);
    return ok;
}

long long sqt_pg_count_app(sqt_pg *pg, const char *app)
{
    char quoted[256];
    size_t j = 0;
    for (size_t i = 0; app[i] && j + 3 < sizeof quoted; i++) {
        if (app[i] == '\'')
            quoted[j++] = '\'';
        quoted[j++] = app[i];
    }
    quoted[j] = '\0';
    long long n = -1;
    if (!sqt_pg_try_int(pg, &n,
                        "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client "
                        "backend' AND application_name = '%s'",
                        quoted))
        return -1;
    return n;
}
