#include "log.h"

#include <pthread.h>
#include <stdarg.h>
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

void sq_log_setup(bool verbose, bool timestamps)
{
    min_level = verbose ? SQ_LOG_DEBUG : SQ_LOG_INFO;
    /* Under systemd the journal stamps and levels each line itself. */
    journal = stdout_is_journal();
    with_time = timestamps && !journal;
}

void sq_log_thread_name(const char *name)
{
    snprintf(thread_name, sizeof thread_name, "%s", name);
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
    char head[96];
    static const char *const priority[] = {"<7>", "<6>", "<4>", "<3>"};

    if (journal)
        put_raw(line, sizeof line, &pos, priority[level]);
    if (with_time) {
        struct timeval tv;
        struct tm tm;
        gettimeofday(&tv, NULL);
        gmtime_r(&tv.tv_sec, &tm);
        size_t n = strftime(head, sizeof head, "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(head + n, sizeof head - n, ".%03dZ ", (int)(tv.tv_usec / 1000));
        put_raw(line, sizeof line, &pos, head);
    }
    snprintf(head, sizeof head, "pid=%d tid=%s ", (int)getpid(), thread_name);
    put_raw(line, sizeof line, &pos, head);
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
