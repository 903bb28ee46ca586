#include "log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <stdlib.h>
#include <unistd.h>

#include "job.h"

static sq_log_level min_level = SQ_LOG_INFO;
static bool with_time = true;
static bool journal; /* stdout is the systemd journal: "<N>" priority prefixes */
static _Thread_local char thread_name[16] = "main";

/* Every job writes two lines, so the per-line work is kept small: the pid is
 * read once (and again in a forked child), and each thread keeps the text of
 * the current second and its "pid=.. tid=.. " prefix instead of calling
 * getpid, strftime and snprintf for each line. */
static atomic_int cached_pid;
static _Thread_local time_t stamp_sec = -1;
static _Thread_local char stamp[24]; /* "2026-11-22T12:00:00" */
static _Thread_local char prefix[48];
static _Thread_local int prefix_pid;

static void forget_pid(void)
{
    atomic_store(&cached_pid, 0);
}

static void register_fork_hook(void)
{
    pthread_atfork(NULL, NULL, forget_pid);
}

static int log_pid(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    int pid = atomic_load(&cached_pid);
    if (pid == 0) {
        pthread_once(&once, register_fork_hook);
        pid = (int)getpid();
        atomic_store(&cached_pid, pid);
    }
    return pid;
}

static const char *const level_names[] = {"DEBUG", "INFO", "WARN", "ERROR"};

/* Is stdout the journal? $JOURNAL_STREAM is "<dev>:<inode>" of the stream
 * systemd connected; it is inherited by children, so it only counts when it
 * names our stdout (systemd.exec(5)). */
static bool stdout_is_journal(void)
{
    const char *js = getenv("JOURNAL_STREAM");
    struct stat st;
    if (js == NULL || fstat(STDOUT_FILENO, &st) != 0)
        return false;
    char *end;
    unsigned long long dev = strtoull(js, &end, 10);
    if (*end != ':')
        return false;
    unsigned long long ino = strtoull(end + 1, &end, 10);
    return *end == '\0' && dev == (unsigned long long)st.st_dev &&
           ino == (unsigned long long)st.st_ino;
}

void sq_log_setup(sq_log_level min, bool timestamps)
{
    min_level = min;
    /* Under systemd the journal stamps and levels each line itself. */
    journal = stdout_is_journal();
    with_time = timestamps && !journal;
}

void sq_log_thread_name(const char *name)
{
    snprintf(thread_name, sizeof thread_name, "%s", name);
    prefix_pid = 0; /* rebuilt with the new name */
}

bool sq_log_enabled(sq_log_level level)
{
    return level >= min_level;
}

/* Append s to buf at *pos, escaping control characters; never overflows. */
static void put_escaped(char *buf, size_t cap, size_t *pos, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < len && *pos + 5 < cap; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch >= 0x20 && ch != 0x7f && ch != '\\') {
            buf[(*pos)++] = (char)ch;
        } else if (ch == '\\') {
            buf[(*pos)++] = '\\';
            buf[(*pos)++] = '\\';
        } else if (ch == '\n' || ch == '\r' || ch == '\t') {
            buf[(*pos)++] = '\\';
            buf[(*pos)++] = ch == '\n' ? 'n' : ch == '\r' ? 'r' : 't';
        } else {
            buf[(*pos)++] = '\\';
            buf[(*pos)++] = 'x';
            buf[(*pos)++] = hex[ch >> 4];
            buf[(*pos)++] = hex[ch & 15];
        }
    }
}

static void put_raw(char *buf, size_t cap, size_t *pos, const char *s)
{
    size_t n = strlen(s);
    if (n > cap - *pos - 2)
        n = cap - *pos - 2;
    memcpy(buf + *pos, s, n);
    *pos += n;
}

static void emit(sq_log_level level, const sq_job *job, const char *fmt, va_list ap)
{
    char line[4096];
    size_t pos = 0;
    static const char *const priority[] = {"<7>", "<6>", "<4>", "<3>"};

    if (journal)
        put_raw(line, sizeof line, &pos, priority[level]);
    if (with_time) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        if (ts.tv_sec != stamp_sec) {
            struct tm tm;
            gmtime_r(&ts.tv_sec, &tm);
            strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
            stamp_sec = ts.tv_sec;
        }
        put_raw(line, sizeof line, &pos, stamp);
        unsigned ms = (unsigned)(ts.tv_nsec / 1000000);
        char frac[] = {'.', (char)('0' + ms / 100), (char)('0' + ms / 10 % 10),
                       (char)('0' + ms % 10), 'Z', ' ', '\0'};
        put_raw(line, sizeof line, &pos, frac);
    }
    int pid = log_pid();
    if (prefix_pid != pid) {
        snprintf(prefix, sizeof prefix, "pid=%d tid=%s ", pid, thread_name);
        prefix_pid = pid;
    }
    put_raw(line, sizeof line, &pos, prefix);
    if (job != NULL) {
        const char *klass = job->klass ? job->klass : "?";
        put_raw(line, sizeof line, &pos, "class=");
        put_escaped(line, sizeof line, &pos, klass, strnlen(klass, 200));
        put_raw(line, sizeof line, &pos, " jid=");
        const char *jid = job->jid ? job->jid : "";
        put_escaped(line, sizeof line, &pos, jid, strnlen(jid, 64));
        put_raw(line, sizeof line, &pos, " ");
    }
    put_raw(line, sizeof line, &pos, level_names[level]);
    put_raw(line, sizeof line, &pos, ": ");

    char msg[3072];
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    if (n < 0)
        n = 0;
    size_t mlen = (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1;
    put_escaped(line, sizeof line, &pos, msg, mlen);
    line[pos++] = '\n';

    size_t off = 0;
    while (off < pos) {
        ssize_t w = write(STDOUT_FILENO, line + off, pos - off);
        if (w <= 0)
            break;
        off += (size_t)w;
    }
}

void sq_log(sq_log_level level, const char *fmt, ...)
{
    if (level < min_level)
        return;
    va_list ap;
    va_start(ap, fmt);
    emit(level, NULL, fmt, ap);
    va_end(ap);
}

void sq_log_job(sq_log_level level, const sq_job *job, const char *fmt, ...)
{
    if (level < min_level)
        return;
    va_list ap;
    va_start(ap, fmt);
    emit(level, job, fmt, ap);
    va_end(ap);
}
