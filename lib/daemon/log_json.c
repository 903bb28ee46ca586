/*
 * log_json.c: a log record as one line of JSON (log_json.h).
 */
#include "log_json.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "job.h" /* sq_utf8_seq */

/* Room kept for what follows a string: the rest of the keys, numbers and
 * closing braces (each string field is cut to leave it). */
#define TAIL 400

typedef struct out {
    char *buf;
    size_t cap, pos;
} out;

static void raw(out *o, const char *s)
{
    size_t n = strlen(s);
    if (o->pos + n < o->cap) {
        memcpy(o->buf + o->pos, s, n);
        o->pos += n;
    }
}

/* A JSON string literal of t, cut (at a character boundary) to stay within
 * limit bytes of output and to leave TAIL bytes of the buffer. */
static void str(out *o, sq_log_text t, size_t limit)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *u = (const unsigned char *)t.s;
    size_t stop = o->cap > TAIL + o->pos ? o->cap - TAIL : o->pos;
    if (stop > o->pos + limit)
        stop = o->pos + limit;
    raw(o, "\"");
    for (size_t i = 0; u != NULL && i < t.len;) {
        char esc[8];
        size_t elen = 0, n = 1, bad = 0;
        unsigned c = u[i];
        if (c >= 0x80) {
            n = sq_utf8_seq(u + i, t.len - i, &bad);
            if (n == 0) {
                memcpy(esc, "\\ufffd", 6), elen = 6, n = 1;
            } else {
                unsigned cp = n == 2 ? (c & 0x1fu) << 6 | (u[i + 1] & 0x3fu)
                              : n == 3
                                  ? (c & 0x0fu) << 12 | (u[i + 1] & 0x3fu) << 6 | (u[i + 2] & 0x3fu)
                                  : 0x10000;
                if ((cp >= 0x80 && cp <= 0x9f) || cp == 0x2028 || cp == 0x2029) {
                    esc[0] = '\\', esc[1] = 'u';
                    for (int k = 0; k < 4; k++)
                        esc[2 + k] = hex[cp >> (12 - 4 * k) & 15];
                    elen = 6;
                }
            }
        } else if (c == '"' || c == '\\') {
            esc[0] = '\\', esc[1] = (char)c, elen = 2;
        } else if (c == '\n' || c == '\r' || c == '\t') {
            esc[0] = '\\', esc[1] = c == '\n' ? 'n' : c == '\r' ? 'r' : 't', elen = 2;
        } else if (c < 0x20 || c == 0x7f) {
            memcpy(esc, "\\u00", 4), esc[4] = hex[c >> 4], esc[5] = hex[c & 15], elen = 6;
        }
        size_t need = elen ? elen : n;
        if (o->pos + need > stop)
            break;
        memcpy(o->buf + o->pos, elen ? esc : t.s + i, need);
        o->pos += need;
        i += n;
    }
    raw(o, "\"");
}

static void key(out *o, const char *k, bool *first)
{
    raw(o, *first ? "\"" : ",\"");
    raw(o, k);
    raw(o, "\":");
    *first = false;
}

static sq_log_text text_of(const char *s)
{
    return (sq_log_text){s, s ? strlen(s) : 0};
}

static void job_ctx(out *o, const sq_log_record *r)
{
    bool first = true;
    raw(o, ",\"ctx\":{");
    key(o, "class", &first);
    str(o, r->klass, 400);
    key(o, "jid", &first);
    str(o, r->jid, 200);
    if (r->queue.s != NULL) {
        key(o, "queue", &first);
        str(o, r->queue, 600);
    }
    if (r->trace_id != NULL && r->trace_id[0] != '\0') {
        key(o, "trace_id", &first);
        str(o, text_of(r->trace_id), 40);
    }
    if (r->elapsed >= 0) {
        char num[40];
        snprintf(num, sizeof num, "%.3f", r->elapsed);
        key(o, "elapsed", &first);
        raw(o, num);
    }
    if (r->error_class.s != NULL) {
        key(o, "error_class", &first);
        str(o, r->error_class, 600);
    }
    if (r->error_message.s != NULL) {
        key(o, "error_message", &first);
        str(o, r->error_message, 4000);
    }
    raw(o, "}");
}

size_t sq_log_json_line(char *buf, size_t cap, const sq_log_record *r)
{
    out o = {buf, cap - 1, 0}; /* the newline always fits */
    bool first = true;
    char num[24];
    raw(&o, "{");
    if (r->ts != NULL) {
        key(&o, "ts", &first);
        str(&o, text_of(r->ts), 40);
    }
    snprintf(num, sizeof num, "%d", r->pid);
    key(&o, "pid", &first);
    raw(&o, num);
    key(&o, "tid", &first);
    str(&o, text_of(r->tid), 40);
    key(&o, "lvl", &first);
    str(&o, text_of(r->level), 10);
    key(&o, "msg", &first);
    str(&o, r->msg, 6000);
    if (r->has_job)
        job_ctx(&o, r);
    raw(&o, "}");
    buf[o.pos++] = '\n';
    return o.pos;
}
