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
#include "log_json.h" /* issue 17 */

static sq_log_level min_level = SQ_LOG_INFO;
static bool with_time = true;
static bool journal; /* stdout is the systemd journal: "<N>" priority prefixes */
static bool as_json; /* log_format: json */
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

void sq_log_json(bool on)
{
    as_json = on;
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

/* Characters a line must not show as they are: C0 and C1 controls and DEL
 * (they move the cursor or start terminal sequences), the Unicode line and
 * paragraph separators (they end a line for some readers) and the bidi
 * embedding, override and isolate controls (they reorder what is shown). */
static bool hidden(unsigned cp)
{
    return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) || cp == 0x2028 || cp == 0x2029 ||
           (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069);
}

/* The code point of the well-formed n-byte UTF-8 sequence at s (n <= 3 is
 * enough for hidden(); 4-byte ones are never hidden). */
static unsigned code_point(const unsigned char *s, size_t n)
{
    if (n == 1)
        return s[0];
    if (n == 2)
        return (unsigned)(s[0] & 0x1f) << 6 | (s[1] & 0x3f);
    if (n == 3)
        return (unsigned)(s[0] & 0x0f) << 12 | (unsigned)(s[1] & 0x3f) << 6 | (s[2] & 0x3f);
    return 0x10000;
}

/*
 * Append s (len bytes, NULs included) to buf at *pos, escaped so that the
 * line shows every byte and no byte can forge, end or reorder a line: a
 * backslash doubled; \n \r \t; other C0 controls and DEL as \xNN; C1
 * controls and the characters hidden() names as \uNNNN; each byte that is
 * not part of well-formed UTF-8 as \xNN (so \x80-\xff always means such a
 * byte). Never overflows: stops short of cap, whole escapes only.
 */
static void put_escaped(char *buf, size_t cap, size_t *pos, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < len && *pos + 8 < cap;) {
        if (u[i] >= 0x20 && u[i] < 0x7f && u[i] != '\\') { /* the common case */
            buf[(*pos)++] = s[i++];
            continue;
        }
        size_t bad = 0, n = sq_utf8_seq(u + i, len - i, &bad);
        unsigned cp = n > 0 ? code_point(u + i, n) : u[i];
        char *o = buf + *pos;
        if (n == 0 || (cp < 0x20 && cp != '\n' && cp != '\r' && cp != '\t') || cp == 0x7f) {
            o[0] = '\\', o[1] = 'x', o[2] = hex[u[i] >> 4], o[3] = hex[u[i] & 15];
            *pos += 4;
            i++; /* an invalid subpart: one byte at a time */
            continue;
        }
        if (cp == '\\' || cp == '\n' || cp == '\r' || cp == '\t') {
            o[0] = '\\';
            o[1] = cp == '\n' ? 'n' : cp == '\r' ? 'r' : cp == '\t' ? 't' : '\\';
            *pos += 2;
        } else if (hidden(cp)) {
            o[0] = '\\', o[1] = 'u';
            for (int k = 0; k < 4; k++)
                o[2 + k] = hex[cp >> (12 - 4 * k) & 15];
            *pos += 6;
        } else {
            memcpy(o, u + i, n);
            *pos += n;
        }
        i += n;
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

/* A result line's extra fields (sq_log_job_result). */
typedef struct result_fields {
    double elapsed; /* < 0: none */
    const char *error_class, *error_message;
} result_fields;

static void write_line(const char *line, size_t len)
{
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(STDOUT_FILENO, line + off, len - off);
        if (w <= 0)
            break;
        off += (size_t)w;
    }
}

/* "2026-11-22T12:00:00.123Z" into out (32 bytes), the second's text cached
 * (stamp holds at most 23 characters). */
static void timestamp(char *out)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (ts.tv_sec != stamp_sec) {
        struct tm tm;
        gmtime_r(&ts.tv_sec, &tm);
        strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
        stamp_sec = ts.tv_sec;
    }
    unsigned ms = (unsigned)(ts.tv_nsec / 1000000);
    size_t n = strlen(stamp); /* no snprintf: this runs for every line */
    memcpy(out, stamp, n);
    char frac[] = {
        '.', (char)('0' + ms / 100), (char)('0' + ms / 10 % 10), (char)('0' + ms % 10), 'Z', '\0'};
    memcpy(out + n, frac, sizeof frac);
}

static const char *const priority[] = {"<7>", "<6>", "<4>", "<3>"};

/* issue 17: the same event as one JSON object (log_json.h). */
static void emit_json(sq_log_level level, const sq_job *job, const result_fields *rf,
                      const char *fmt, va_list ap)
{
    char msg[6000], ts[32], line[SQ_LOG_JSON_MAX + 4];
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    size_t mlen = n < 0 ? 0 : (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1;
    if (with_time)
        timestamp(ts);
    sq_log_record r = {.ts = with_time ? ts : NULL,
                       .pid = log_pid(),
                       .tid = thread_name,
                       .level = level_names[level],
                       .msg = {msg, mlen},
                       .elapsed = -1};
    if (job != NULL) {
        r.has_job = 1;
        r.klass = (sq_log_text){job->klass ? job->klass : "", job->klass ? job->klass_len : 0};
        r.jid = (sq_log_text){job->jid ? job->jid : "", job->jid ? job->jid_len : 0};
        r.queue = (sq_log_text){job->queue, job->queue ? strlen(job->queue) : 0};
        r.trace_id = job->trace_id;
    }
    if (rf != NULL) {
        r.elapsed = rf->elapsed;
        if (rf->error_class != NULL)
            r.error_class = (sq_log_text){rf->error_class, strlen(rf->error_class)};
        if (rf->error_message != NULL)
            r.error_message = (sq_log_text){rf->error_message, strlen(rf->error_message)};
    }
    size_t pos = 0;
    if (journal) {
        memcpy(line, priority[level], 3);
        pos = 3;
    }
    pos += sq_log_json_line(line + pos, SQ_LOG_JSON_MAX, &r);
    write_line(line, pos);
}

static void emit(sq_log_level level, const sq_job *job, const result_fields *rf, const char *fmt,
                 va_list ap)
{
    char line[4096];
    size_t pos = 0;

    if (as_json) {
        emit_json(level, job, rf, fmt, ap);
        return;
    }
    if (journal)
        put_raw(line, sizeof line, &pos, priority[level]);
    if (with_time) {
        char ts[32];
        timestamp(ts);
        put_raw(line, sizeof line, &pos, ts);
        put_raw(line, sizeof line, &pos, " ");
    }
    int pid = log_pid();
    if (prefix_pid != pid) {
        snprintf(prefix, sizeof prefix, "pid=%d tid=%s ", pid, thread_name);
        prefix_pid = pid;
    }
    put_raw(line, sizeof line, &pos, prefix);
    if (job != NULL) { /* lengths from the JSON: a NUL character is shown, not an end */
        put_raw(line, sizeof line, &pos, "class=");
        if (job->klass != NULL)
            put_escaped(line, sizeof line, &pos, job->klass,
                        job->klass_len < 200 ? job->klass_len : 200);
        put_raw(line, sizeof line, &pos, " jid=");
        if (job->jid != NULL)
            put_escaped(line, sizeof line, &pos, job->jid, job->jid_len < 64 ? job->jid_len : 64);
        if (job->trace_id[0] != '\0') { /* issue 17: valid W3C hex only (trace.h) */
            put_raw(line, sizeof line, &pos, " trace_id=");
            put_raw(line, sizeof line, &pos, job->trace_id);
        }
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
    write_line(line, pos);
}

void sq_log(sq_log_level level, const char *fmt, ...)
{
    if (level < min_level)
        return;
    va_list ap;
    va_start(ap, fmt);
    emit(level, NULL, NULL, fmt, ap);
    va_end(ap);
}

void sq_log_job(sq_log_level level, const sq_job *job, const char *fmt, ...)
{
    if (level < min_level)
        return;
    va_list ap;
    va_start(ap, fmt);
    emit(level, job, NULL, fmt, ap);
    va_end(ap);
}

void sq_log_job_result(sq_log_level level, const sq_job *job, double elapsed,
                       const char *error_class, const char *error_message, const char *fmt, ...)
{
    if (level < min_level)
        return;
    result_fields rf = {elapsed, error_class, error_message};
    va_list ap;
    va_start(ap, fmt);
    emit(level, job, &rf, fmt, ap);
    va_end(ap);
}

void sq_log_report(void *ud, int level, const char *message)
{
    sq_log(level < SQ_LOG_DEBUG || level > SQ_LOG_ERROR ? SQ_LOG_WARN : (sq_log_level)level, "%s",
           message);
}
