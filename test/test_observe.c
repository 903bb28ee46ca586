/*
 * test_observe.c: issue 17, observability. The pure parts first (the
 * Prometheus writer, the JSON log line, W3C trace context, listen
 * addresses), then the real daemon against a real redis-server: /metrics
 * after jobs succeed and fail, /healthz and /readyz through TSTP and a
 * Redis outage, jobs flowing under a flood of slow HTTP clients, JSON logs
 * parsed back, a traceparent reaching the logs and the handler.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "daemon/log_json.h"
#include "daemon/prom.h"
#include "hostport.h"
#include "itest.h"
#include "trace.h"

/* ---- the Prometheus writer -------------------------------------------------- */

START_TEST(prom_escapes_label_values)
{
    sq_prom p;
    sq_prom_init(&p);
    sq_prom_family(&p, "squire_x_total", "counter", "a help\nwith \\ in it");
    sq_prom_sample(&p, "squire_x_total",
                   (const char *const[]){"class", "A\"B\\C\nD", "queue", "q", NULL}, 3);
    sq_prom_sample(&p, "squire_x_total",
                   (const char *const[]){"class", "bad\xff\xfe utf8 \xc3", NULL}, 1);
    sq_prom_sample(&p, "squire_x_total", (const char *const[]){"class", "caf\xc3\xa9", NULL}, 2);
    size_t len = 0;
    char *text = sq_prom_finish(&p, &len);
    ck_assert_ptr_nonnull(text);
    ck_assert_uint_eq(strlen(text), len);
    ck_assert_str_eq(text,
                     "# HELP squire_x_total a help\\nwith \\\\ in it\n"
                     "# TYPE squire_x_total counter\n"
                     "squire_x_total{class=\"A\\\"B\\\\C\\nD\",queue=\"q\"} 3\n"
                     "squire_x_total{class=\"bad\xef\xbf\xbd\xef\xbf\xbd utf8 \xef\xbf\xbd\"} 1\n"
                     "squire_x_total{class=\"caf\xc3\xa9\"} 2\n");
    free(text);
}
END_TEST

START_TEST(prom_histogram_is_cumulative)
{
    sq_prom p;
    sq_prom_init(&p);
    const double bounds[] = {0.005, 0.5, 2.5};
    const uint64_t counts[] = {2, 0, 3, 1}; /* the last: above 2.5 */
    sq_prom_histogram(&p, "squire_d_seconds", (const char *const[]){"class", "K", NULL}, bounds,
                      counts, 3, 12.25);
    sq_prom_sample(&p, "squire_g", NULL, 1.0 / 0.0);
    sq_prom_sample(&p, "squire_g", NULL, -1.0 / 0.0);
    sq_prom_sample(&p, "squire_g", NULL, 0.1);
    sq_prom_sample(&p, "squire_g", NULL, 1796150445.25);
    size_t len;
    char *text = sq_prom_finish(&p, &len);
    ck_assert_str_eq(text, "squire_d_seconds_bucket{class=\"K\",le=\"0.005\"} 2\n"
                           "squire_d_seconds_bucket{class=\"K\",le=\"0.5\"} 2\n"
                           "squire_d_seconds_bucket{class=\"K\",le=\"2.5\"} 5\n"
                           "squire_d_seconds_bucket{class=\"K\",le=\"+Inf\"} 6\n"
                           "squire_d_seconds_sum{class=\"K\"} 12.25\n"
                           "squire_d_seconds_count{class=\"K\"} 6\n"
                           "squire_g +Inf\n"
                           "squire_g -Inf\n"
                           "squire_g 0.1\n"
                           "squire_g 1796150445.25\n");
    free(text);
}
END_TEST

/* ---- W3C trace context ------------------------------------------------------- */

#define TP_OK "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
#define TRACE_ID "4bf92f3577b34da6a3ce929d0e0e4736"

static bool tp(const char *s)
{
    return sq_traceparent_valid(s, strlen(s), NULL);
}

START_TEST(traceparent_grammar)
{
    char id[33] = "unchanged";
    ck_assert(sq_traceparent_valid(TP_OK, strlen(TP_OK), id));
    ck_assert_str_eq(id, TRACE_ID);
    ck_assert(tp("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"));
    /* a later version may carry more after a '-' */
    ck_assert(tp("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-ever"));
    ck_assert(tp("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
    const char *bad[] = {
        "",
        "00",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  /* uppercase */
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  /* zero trace id */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  /* zero parent id */
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  /* version ff */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-", /* 00 with more */
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x", /* more without '-' */
        "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",  /* dash misplaced */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",  /* not hex */
        "0x-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        " 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        ck_assert_msg(!tp(bad[i]), "accepted %s", bad[i]);
    /* a NUL inside (JSON lets a string hold one) is not hex */
    const char nul[] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0\0";
    ck_assert(!sq_traceparent_valid(nul, 55, NULL));
    /* what a later version carries after the '-' is handed to handlers as
     * is (sq_job_traceparent), which put it in HTTP headers: no control
     * characters, no non-ASCII, no NUL, and not without bound */
    ck_assert(!tp("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x\r\nX-Evil: 1"));
    ck_assert(!tp("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-caf\xc3\xa9"));
    ck_assert(!tp("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-a b"));
    const char nul2[] = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-a\0b";
    ck_assert(!sq_traceparent_valid(nul2, sizeof nul2 - 1, NULL));
    char huge[4096];
    memset(huge, 'a', sizeof huge - 1);
    huge[sizeof huge - 1] = '\0';
    memcpy(huge, "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-", 56);
    ck_assert(!tp(huge));
    huge[SQ_TRACEPARENT_MAX] = '\0';
    ck_assert(tp(huge));
}
END_TEST

static bool ts(const char *s)
{
    return sq_tracestate_valid(s, strlen(s));
}

START_TEST(tracestate_grammar)
{
    ck_assert(ts(""));
    ck_assert(ts("rojo=00f067aa0ba902b7"));
    ck_assert(ts("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"));
    ck_assert(ts(" rojo=1 ,\tcongo=2 ,,"));
    ck_assert(ts("tenant1@vendor=x,a*b/c-d_e=v"));
    ck_assert(!ts("Rojo=1"));           /* uppercase key */
    ck_assert(!ts("rojo"));             /* no value */
    ck_assert(!ts("rojo="));            /* empty value */
    ck_assert(!ts("rojo=a,b"));         /* "b" is no member */
    ck_assert(!ts("rojo=a=b"));         /* '=' in the value */
    ck_assert(!ts("rojo=\x01"));        /* a control */
    ck_assert(!ts("rojo=caf\xc3\xa9")); /* not ASCII */
    ck_assert(!ts("@vendor=x"));
    ck_assert(!ts("t@=x"));
    char many[600] = "";
    for (int i = 0; i < 33; i++) /* 33 members */
        snprintf(many + strlen(many), sizeof many - strlen(many), "%sk%d=v", i ? "," : "", i);
    ck_assert(!ts(many));
    char big[600];
    memset(big, 'a', sizeof big);
    memcpy(big, "k=", 2);
    big[513] = '\0';
    ck_assert(!ts(big)); /* over 512 bytes */
}
END_TEST

/* ---- listen addresses ---------------------------------------------------------- */

START_TEST(hostport_forms)
{
    sq_hostport hp;
    sq_error err = {0};
    ck_assert_int_eq(sq_hostport_parse("9394", &hp, &err), 0);
    ck_assert_str_eq(hp.host, "127.0.0.1"); /* loopback unless told */
    ck_assert_int_eq(hp.port, 9394);
    ck_assert_int_eq(sq_hostport_parse("0.0.0.0:80", &hp, &err), 0);
    ck_assert_str_eq(hp.host, "0.0.0.0");
    ck_assert_int_eq(sq_hostport_parse("localhost:1", &hp, &err), 0);
    ck_assert_str_eq(hp.host, "127.0.0.1");
    ck_assert_int_eq(sq_hostport_parse("[::1]:65535", &hp, &err), 0);
    ck_assert(hp.ipv6);
    ck_assert_str_eq(hp.host, "::1");
    const char *bad[] = {"",       ":9394", "0",        "65536",      "x:80",
                         "::1:80", "[::1]", "1.2.3.4:", "1.2.3.4:8o", "example.com:80",
                         "[]:80",  "-1",    "+80",      "9394 "};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        sq_error e = {0};
        ck_assert_msg(sq_hostport_parse(bad[i], &hp, &e) == -1, "accepted '%s'", bad[i]);
        ck_assert_int_eq(e.code, SQ_ECONFIG);
    }
}
END_TEST

/* ---- JSON log lines --------------------------------------------------------------- */

static json_t *parse_line(const char *line, size_t len)
{
    ck_assert_msg(len > 0 && line[len - 1] == '\n', "no newline");
    ck_assert_msg(memchr(line, '\n', len - 1) == NULL, "a newline inside the line");
    json_error_t e;
    json_t *j = json_loadb(line, len - 1, JSON_ALLOW_NUL, &e);
    ck_assert_msg(j != NULL, "not JSON (%s): %.*s", e.text, (int)len, line);
    return j;
}

START_TEST(log_json_hostile_strings)
{
    static const char klass[] = "Evil\"Class\\\n\r\t\x01\x1b[31m\x7f\xe2\x80\xa8\xc2\x85 \xff\xc3";
    static const char msg[] = "he said \"hi\"\x00 and left";
    sq_log_record r = {.ts = "2026-12-01T12:00:00.123Z",
                       .pid = 42,
                       .tid = "w1",
                       .level = "WARN",
                       .msg = {msg, sizeof msg - 1},
                       .has_job = 1,
                       .klass = {klass, sizeof klass - 1},
                       .jid = {"j\"1", 3},
                       .queue = {"default", 7},
                       .trace_id = TRACE_ID,
                       .elapsed = 1.5,
                       .error_class = {"Err\"", 4},
                       .error_message = {"bad \xf0\x9f\x92\xa5 \xed\xa0\x80", 12}};
    char buf[SQ_LOG_JSON_MAX];
    size_t n = sq_log_json_line(buf, sizeof buf, &r);
    json_t *j = parse_line(buf, n);
    ck_assert_str_eq(json_string_value(json_object_get(j, "lvl")), "WARN");
    ck_assert_int_eq(json_integer_value(json_object_get(j, "pid")), 42);
    ck_assert_str_eq(json_string_value(json_object_get(j, "tid")), "w1");
    ck_assert_str_eq(json_string_value(json_object_get(j, "ts")), "2026-12-01T12:00:00.123Z");
    json_t *m = json_object_get(j, "msg");
    ck_assert_uint_eq(json_string_length(m), sizeof msg - 1); /* the NUL kept, as \u0000 */
    ck_assert_mem_eq(json_string_value(m), msg, sizeof msg - 1);
    json_t *ctx = json_object_get(j, "ctx");
    ck_assert_str_eq(
        json_string_value(json_object_get(ctx, "class")),
        "Evil\"Class\\\n\r\t\x01\x1b[31m\x7f\xe2\x80\xa8\xc2\x85 \xef\xbf\xbd\xef\xbf\xbd");
    ck_assert_str_eq(json_string_value(json_object_get(ctx, "jid")), "j\"1");
    ck_assert_str_eq(json_string_value(json_object_get(ctx, "queue")), "default");
    ck_assert_str_eq(json_string_value(json_object_get(ctx, "trace_id")), TRACE_ID);
    ck_assert(json_real_value(json_object_get(ctx, "elapsed")) == 1.5);
    ck_assert_str_eq(json_string_value(json_object_get(ctx, "error_class")), "Err\"");
    /* a surrogate encoded in UTF-8 is not UTF-8: three replacement characters */
    ck_assert_str_eq(json_string_value(json_object_get(ctx, "error_message")),
                     "bad \xf0\x9f\x92\xa5 \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
    /* what a terminal or a JavaScript reader would act on is escaped */
    ck_assert_ptr_null(memchr(buf, '\x1b', n));
    ck_assert_ptr_null(strstr(buf, "\xe2\x80\xa8"));
    ck_assert_ptr_nonnull(strstr(buf, "\\u2028"));
    json_decref(j);
}
END_TEST

START_TEST(log_json_long_strings_are_cut_whole)
{
    size_t big = 100000;
    char *s = malloc(big);
    for (size_t i = 0; i < big; i += 2)
        s[i] = '"', s[i + 1] = '\x01'; /* worst case: 2 and 6 bytes each escaped */
    sq_log_record r = {.pid = 1,
                       .tid = "main",
                       .level = "INFO",
                       .msg = {s, big},
                       .has_job = 1,
                       .klass = {s, big},
                       .jid = {s, big},
                       .queue = {s, big},
                       .error_class = {s, big},
                       .error_message = {s, big},
                       .elapsed = -1};
    char buf[SQ_LOG_JSON_MAX];
    size_t n = sq_log_json_line(buf, sizeof buf, &r);
    ck_assert_uint_le(n, sizeof buf);
    json_t *j = parse_line(buf, n);
    ck_assert_ptr_null(json_object_get(j, "ts")); /* no timestamps: no ts */
    ck_assert_ptr_nonnull(json_object_get(json_object_get(j, "ctx"), "error_message"));
    ck_assert_ptr_null(json_object_get(json_object_get(j, "ctx"), "elapsed"));
    json_decref(j);
    free(s);
}
END_TEST

/* ---- the daemon ------------------------------------------------------------------- */

/* A TCP socket connected (or connecting, with SOCK_NONBLOCK) to 127.0.0.1:port. */
static int connect_loopback(int port, int flags)
{
    int fd = socket(AF_INET, SOCK_STREAM | flags, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    return fd;
}

typedef struct http_reply {
    int status; /* 0: no answer */
    char body[4 << 20];
} http_reply;

/* One request to 127.0.0.1:port, answered within timeout seconds. */
static void http_get(int port, const char *method, const char *path, http_reply *out,
                     double timeout)
{
    memset(out, 0, sizeof *out);
    int fd = connect_loopback(port, 0);
    if (fd < 0)
        return;
    char req[512];
    int n =
        snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
                 method, path);
    ck_assert_int_eq(write(fd, req, (size_t)n), n);
    static char buf[4 << 20];
    size_t len = 0;
    double until = sqt_now() + timeout;
    while (len < sizeof buf - 1 && sqt_now() < until) {
        struct pollfd pf = {fd, POLLIN, 0};
        if (poll(&pf, 1, 100) <= 0)
            continue;
        ssize_t r = read(fd, buf + len, sizeof buf - 1 - len);
        if (r <= 0)
            break;
        len += (size_t)r;
    }
    close(fd);
    buf[len] = '\0';
    if (sscanf(buf, "HTTP/1.%*d %d", &out->status) != 1)
        out->status = 0;
    const char *body = strstr(buf, "\r\n\r\n");
    if (body != NULL)
        snprintf(out->body, sizeof out->body, "%s", body + 4);
}

static int status_of(int port, const char *path)
{
    http_reply *r = malloc(sizeof *r);
    http_get(port, "GET", path, r, 5);
    int st = r->status;
    free(r);
    return st;
}

/* Wait up to timeout for path to answer want. */
static bool wait_status(int port, const char *path, int want, double timeout)
{
    double until = sqt_now() + timeout;
    do {
        if (status_of(port, path) == want)
            return true;
        sqt_sleep(0.1);
    } while (sqt_now() < until);
    return false;
}

/* The value of the sample line that starts with `series ` in text; -1 if none. */
static double sample_value(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = text; p != NULL && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (strncmp(p, series, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
    return -1;
}

/* Every line is a comment or `name[{labels}] value` with a known family,
 * the text promtool's parser would take: each sample's family was
 * announced by # TYPE before it. */
static void check_exposition(const char *text)
{
    char family[128] = "";
    for (const char *p = text; *p;) {
        const char *end = strchr(p, '\n');
        ck_assert_msg(end != NULL, "last line without newline");
        if (strncmp(p, "# TYPE ", 7) == 0) {
            sscanf(p + 7, "%127s", family);
        } else if (p[0] != '#') {
            ck_assert_msg(family[0] && strncmp(p, family, strlen(family)) == 0,
                          "sample outside its family: %.*s", (int)(end - p), p);
            const char *q = p;
            while ((*q >= 'a' && *q <= 'z') || *q == '_')
                q++;
            if (*q == '{') { /* labels: name="escaped", ... */
                q++;
                while (*q != '}') {
                    while ((*q >= 'a' && *q <= 'z') || *q == '_')
                        q++;
                    ck_assert_msg(q[0] == '=' && q[1] == '"', "bad label at %.*s", (int)(end - p),
                                  p);
                    for (q += 2; *q != '"'; q++) {
                        ck_assert_msg(*q != '\n' && *q != '\0', "unterminated label value");
                        if (*q == '\\') {
                            q++;
                            ck_assert_msg(*q == '\\' || *q == '"' || *q == 'n', "bad escape");
                        }
                    }
                    q++;
                    if (*q == ',')
                        q++;
                }
                q++;
            }
            ck_assert_msg(*q == ' ', "no value: %.*s", (int)(end - p), p);
            char *stop;
            strtod(q + 1, &stop);
            ck_assert_msg(stop == end || strncmp(q + 1, "+Inf", 4) == 0, "bad value: %.*s",
                          (int)(end - p), p);
        }
        p = end + 1;
    }
}

/* Debian's promtool (the prometheus package, scripts/deps) must accept
 * the text: its parser and its linter (names, units, help, types). */
static void promtool_accepts(const char *text)
{
    char dir[256], path[300];
    sqt_tempdir(dir, "prom");
    snprintf(path, sizeof path, "%s/metrics.txt", dir);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
    char *out = NULL;
    int st = sqt_sh(R.url, &out, "promtool check metrics < %s 2>&1", path);
    ck_assert_msg(st == 0, "promtool check metrics: exit %d: %s", st, out ? out : "");
    free(out);
}

static int metrics_port;

/* Scrape /metrics into r until series reads want (or timeout); true if it did. */
static bool scrape_until(http_reply *r, const char *series, double want, double timeout)
{
    double until = sqt_now() + timeout;
    for (;;) {
        http_get(metrics_port, "GET", "/metrics", r, 5);
        ck_assert_int_eq(r->status, 200);
        if (sample_value(r->body, series) == want)
            return true;
        if (sqt_now() > until)
            return false;
        sqt_sleep(0.1);
    }
}

static void start_squire(sqt_proc *p, const char *yaml_extra, const char *const *more)
{
    metrics_port = sqt_free_port();
    char yaml[1024], port[16];
    snprintf(yaml, sizeof yaml,
             ":poll_interval_average: 0.2\n:beat_interval: 1\n:queues: [default, critical]\n%s",
             yaml_extra ? yaml_extra : "");
    snprintf(port, sizeof port, "%d", metrics_port);
    const char *argv[40] = {"-C", itest_config(yaml), "-r", SQ_TEST_PLUGIN, "-c", "3", "-t",
                            "5",  "--metrics",        port};
    int n = 10;
    for (int i = 0; more && more[i] && n < 38; i++)
        argv[n++] = more[i];
    argv[n] = NULL;
    sqt_squire_start(p, R.url, argv, NULL);
    ck_assert_msg(sqt_log_wait(p, "serving /metrics", 10), "no endpoint");
    ck_assert_msg(wait_status(metrics_port, "/readyz", 200, 10), "never ready");
}

static void push_n(const char *klass, const char *args, const char *queue, int n)
{
    for (int i = 0; i < n; i++) {
        char jid[25];
        sq_push_opts o = {.queue = queue, .retry = SQ_RETRY_NEVER};
        itest_push(klass, args, &o, jid);
    }
}

START_TEST(metrics_count_jobs_by_class_and_queue)
{
    sqt_proc p;
    start_squire(&p, NULL, NULL);
    push_n("OkJob", "[]", "default", 5);
    push_n("FailJob", "[\"BadError\", \"no\"]", "critical", 3);
    push_n("SleepJob", "[0.3]", "default", 2);
    /* a class no handler knows, with every character a label must escape */
    redisReply *rep = sqt_cmd(C, "LPUSH queue:default %s",
                              "{\"class\":\"Evil\\\"Job\\\\\\nX\",\"args\":[],\"jid\":\"e1\","
                              "\"retry\":false}");
    freeReplyObject(rep);
    ck_assert_int_ge(sqt_wait_int(C, 7, 15, "SCARD test:done"), 7);
    http_reply *r = malloc(sizeof *r);
    /* the last job's counters land just after its record */
    scrape_until(r, "squire_jobs_processed_total{class=\"Evil\\\"Job\\\\\\nX\",queue=\"default\"}",
                 1, 10);
    const char *t = r->body;
    check_exposition(t);
    promtool_accepts(t);
    ck_assert(sample_value(t, "squire_jobs_processed_total{class=\"OkJob\",queue=\"default\"}") ==
              5);
    ck_assert(sample_value(t, "squire_jobs_failed_total{class=\"OkJob\",queue=\"default\"}") == 0);
    ck_assert(
        sample_value(t, "squire_jobs_processed_total{class=\"FailJob\",queue=\"critical\"}") == 3);
    ck_assert(sample_value(t, "squire_jobs_failed_total{class=\"FailJob\",queue=\"critical\"}") ==
              3);
    ck_assert(sample_value(
                  t, "squire_jobs_failed_total{class=\"Evil\\\"Job\\\\\\nX\",queue=\"default\"}") ==
              1);
    ck_assert(sample_value(t, "squire_job_duration_seconds_count{class=\"OkJob\"}") == 5);
    ck_assert(sample_value(t, "squire_job_duration_seconds_bucket{class=\"OkJob\",le=\"+Inf\"}") ==
              5);
    /* the sleepers took 0.3 s: above the 0.25 bucket, within 0.5 */
    ck_assert(
        sample_value(t, "squire_job_duration_seconds_bucket{class=\"SleepJob\",le=\"0.25\"}") == 0);
    ck_assert(
        sample_value(t, "squire_job_duration_seconds_bucket{class=\"SleepJob\",le=\"0.5\"}") == 2);
    ck_assert(sample_value(t, "squire_job_duration_seconds_sum{class=\"SleepJob\"}") >= 0.6);
    ck_assert(sample_value(t, "squire_jobs_in_flight") == 0);
    ck_assert(sample_value(t, "squire_workers") == 3);
    ck_assert(sample_value(t, "squire_process_start_time_seconds") > sqt_now() - 120);
    ck_assert(sample_value(t, "squire_build_info{version=\"" SQ_VERSION "\"}") == 1);
    ck_assert(sample_value(t, "squire_redis_reconnects_total") == 0);
    ck_assert_ptr_nonnull(strstr(t, "# TYPE squire_job_duration_seconds histogram\n"));
    ck_assert_ptr_nonnull(strstr(t, "# TYPE squire_jobs_processed_total counter\n"));

    /* a job running now is in flight */
    rep =
        sqt_cmd(C, "LPUSH queue:default %s", "{\"class\":\"SleepJob\",\"args\":[3],\"jid\":\"s\"}");
    freeReplyObject(rep);
    ck_assert(scrape_until(r, "squire_jobs_in_flight", 1, 3));
    /* set sizes come from the heartbeat's sample (every 2 s at most), not
     * from the scrape */
    rep = sqt_cmd(C, "ZADD dead 1 a 2 b");
    freeReplyObject(rep);
    rep = sqt_cmd(C, "ZADD schedule 9999999999 c");
    freeReplyObject(rep);
    ck_assert(scrape_until(r, "squire_dead_set_size", 2, 10));
    ck_assert(sample_value(r->body, "squire_scheduled_set_size") == 1);
    ck_assert(sample_value(r->body, "squire_retry_set_size") == 0);
    ck_assert(sample_value(r->body, "squire_queue_size{queue=\"critical\"}") == 0);
    ck_assert(sample_value(r->body, "squire_queue_latency_seconds{queue=\"default\"}") == 0);
    check_exposition(r->body);
    promtool_accepts(r->body);
    free(r);
    itest_stop(&p);
}
END_TEST

/* 600 jobs of 600 made-up classes (no handler: each fails): at most 500
 * pairs are shown, the rest counted under "(other)", and nothing is lost. */
START_TEST(metrics_cardinality_is_bounded)
{
    sqt_proc p;
    start_squire(&p, NULL, NULL);
    for (int i = 0; i < 600; i++)
        redisAppendCommand(
            C, "LPUSH queue:critical {\"class\":\"Made%dUp\",\"args\":[],\"retry\":false}", i);
    for (int i = 0; i < 600; i++) {
        redisReply *rep = NULL;
        ck_assert_int_eq(redisGetReply(C, (void **)&rep), REDIS_OK);
        freeReplyObject(rep);
    }
    http_reply *r = malloc(sizeof *r);
    double until = sqt_now() + 20, total = 0;
    int lines = 0;
    do {
        sqt_sleep(0.3);
        http_get(metrics_port, "GET", "/metrics", r, 5);
        total = 0, lines = 0;
        for (const char *q = strstr(r->body, "\nsquire_jobs_failed_total{"); q != NULL;
             q = strstr(q + 1, "\nsquire_jobs_failed_total{")) {
            total += strtod(strchr(q, '}') + 2, NULL);
            lines++;
        }
    } while (total < 600 && sqt_now() < until);
    ck_assert(total == 600);
    ck_assert_int_eq(lines, 501);
    ck_assert(
        sample_value(r->body, "squire_jobs_failed_total{class=\"(other)\",queue=\"critical\"}") ==
        100);
    promtool_accepts(r->body);
    free(r);
    itest_stop(&p);
}
END_TEST

/* Each series (name and labels) appears once in the text: a class label is
 * cut at 200 bytes and shown as valid UTF-8 (U+FFFD for a bad byte), so
 * classes that differ only in a character the cut splits must be counted
 * as one series, not written as two with the same labels, which Prometheus
 * drops as duplicate samples. (Payloads that are not valid UTF-8 never
 * reach a handler: they are dead before they are counted.) */
static void no_duplicate_series(const char *text)
{
    size_t n = 0;
    const char **lines = NULL;
    for (const char *p = text; *p; p = strchr(p, '\n') + 1) {
        if (*p == '#')
            continue;
        lines = realloc(lines, (n + 1) * sizeof *lines);
        lines[n++] = p;
    }
    for (size_t i = 0; i < n; i++) {
        const char *ei = strchr(lines[i], '\n');
        while (ei > lines[i] && ei[-1] != ' ')
            ei--;
        for (size_t j = i + 1; j < n; j++) {
            const char *ej = strchr(lines[j], '\n');
            while (ej > lines[j] && ej[-1] != ' ')
                ej--;
            ck_assert_msg(ei - lines[i] != ej - lines[j] ||
                              memcmp(lines[i], lines[j], (size_t)(ei - lines[i])) != 0,
                          "series twice: %.*s", (int)(ei - lines[i]), lines[i]);
        }
    }
    free(lines);
}

START_TEST(metrics_bad_utf8_classes_are_one_series)
{
    sqt_proc p;
    start_squire(&p, NULL, NULL);
    /* 199 bytes and a character cut by the 200-byte limit, two ways */
    char ls[200], longer[400], longer2[400];
    memset(ls, 'L', 199);
    ls[199] = '\0';
    snprintf(longer, sizeof longer, "%s\xc3\xa9", ls);
    snprintf(longer2, sizeof longer2, "%s\xe2\x82\xac", ls);
    const char *klass[] = {"Dup\xff", "Dup\xfe", "Dup\xef\xbf\xbd", longer, longer2};
    for (int i = 0; i < 5; i++) {
        char job[600];
        int n =
            snprintf(job, sizeof job,
                     "{\"class\":\"%s\",\"args\":[],\"jid\":\"u%d\",\"retry\":false}", klass[i], i);
        freeReplyObject(sqt_cmd(C, "LPUSH queue:default %b", job, (size_t)n));
    }
    http_reply *r = malloc(sizeof *r);
    double until = sqt_now() + 15, total;
    do {
        sqt_sleep(0.2);
        http_get(metrics_port, "GET", "/metrics", r, 5);
        total = 0;
        for (const char *q = strstr(r->body, "\nsquire_jobs_processed_total{"); q != NULL;
             q = strstr(q + 1, "\nsquire_jobs_processed_total{"))
            total += strtod(strchr(q, '}') + 2, NULL);
    } while (total < 3 && sqt_now() < until);
    ck_assert_msg(total == 3, "%g jobs counted", total);
    check_exposition(r->body);
    no_duplicate_series(r->body);
    ck_assert(sample_value(r->body, "squire_jobs_processed_total{class=\"Dup\xef\xbf\xbd\","
                                    "queue=\"default\"}") == 1);
    promtool_accepts(r->body);
    free(r);
    itest_stop(&p);
}
END_TEST

START_TEST(endpoint_refuses_what_it_does_not_serve)
{
    sqt_proc p;
    start_squire(&p, NULL, NULL);
    http_reply *r = malloc(sizeof *r);
    static const struct {
        const char *method, *path;
        int status;
    } cases[] = {{"POST", "/metrics", 405},
                 {"DELETE", "/healthz", 405},
                 {"GET", "/metrics/../etc/passwd", 404},
                 {"GET", "/", 404},
                 {"HEAD", "/healthz", 200}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        http_get(metrics_port, cases[i].method, cases[i].path, r, 5);
        ck_assert_msg(r->status == cases[i].status, "%s %s: %d", cases[i].method, cases[i].path,
                      r->status);
    }
    /* a request line and headers over the memory limit: refused, not served */
    int fd = connect_loopback(metrics_port, 0);
    ck_assert_int_ge(fd, 0);
    char *huge = malloc(100000);
    memset(huge, 'a', 100000);
    memcpy(huge, "GET /metrics?", 13);
    ssize_t w = send(fd, huge, 100000, MSG_NOSIGNAL); /* may stop short: the server closes */
    (void)w;
    char buf[256] = "";
    struct pollfd pf = {fd, POLLIN, 0};
    ck_assert_int_eq(poll(&pf, 1, 6000), 1);
    ssize_t got = read(fd, buf, sizeof buf - 1);
    ck_assert_msg(got <= 0 || strstr(buf, " 200 ") == NULL, "served: %s", buf);
    close(fd);
    free(huge);
    ck_assert_int_eq(status_of(metrics_port, "/healthz"), 200);
    free(r);
    itest_stop(&p);
}
END_TEST

START_TEST(readyz_follows_quiet_and_redis)
{
    sqt_proc p;
    start_squire(&p, NULL, NULL);
    http_reply *r = malloc(sizeof *r);
    http_get(metrics_port, "GET", "/healthz", r, 5);
    ck_assert_int_eq(r->status, 200);

    /* Redis goes away: not ready (a probe takes the pod out), still alive */
    sqt_redis_kill9(&R);
    ck_assert_msg(wait_status(metrics_port, "/readyz", 503, 10), "ready without Redis");
    http_get(metrics_port, "GET", "/readyz", r, 5);
    ck_assert_msg(strstr(r->body, "not ready") != NULL, "%s", r->body);
    ck_assert_int_eq(status_of(metrics_port, "/healthz"), 200);
    http_get(metrics_port, "GET", "/metrics", r, 5); /* a scrape never waits on Redis */
    ck_assert_int_eq(r->status, 200);
    sqt_redis_restart(&R);
    redisFree(C);
    C = sqt_redis_connect(&R);
    ck_assert_msg(wait_status(metrics_port, "/readyz", 200, 20), "not ready after Redis came back");
    http_get(metrics_port, "GET", "/metrics", r, 5);
    ck_assert(sample_value(r->body, "squire_redis_reconnects_total") >= 1);

    /* quiet (TSTP): not ready, still alive; it stays so */
    kill(p.pid, SIGTSTP);
    ck_assert_msg(wait_status(metrics_port, "/readyz", 503, 5), "ready while quiet");
    http_get(metrics_port, "GET", "/readyz", r, 5);
    ck_assert_str_eq(r->body, "not ready: quiet\n");
    ck_assert_int_eq(status_of(metrics_port, "/healthz"), 200);
    http_get(metrics_port, "GET", "/metrics", r, 5);
    ck_assert(sample_value(r->body, "squire_quiet") == 1);
    free(r);
    itest_stop(&p);
}
END_TEST

/* Redis answers but refuses every fetch (an ACL): not ready at once, and
 * after 10 s not alive either, as the watchdog would judge; both mend when
 * the fetches work again. */
/* Redis hangs (SIGSTOP) past the 10 s after which failing fetches count
 * as stuck, then answers again: the heartbeat mends at once, the workers'
 * back-off a few seconds later. /healthz must not call the process stuck
 * in between (a liveness probe or the systemd watchdog would kill a
 * process that is only waiting for its retry). */
START_TEST(healthz_stays_alive_as_redis_comes_back)
{
    sqt_proc p;
    start_squire(&p, NULL, NULL);
    kill(R.pid, SIGSTOP);
    sqt_sleep(15);
    kill(R.pid, SIGCONT);
    double until = sqt_now() + 8;
    int bad = 0;
    http_reply *r = malloc(sizeof *r);
    while (sqt_now() < until && bad == 0) {
        http_get(metrics_port, "GET", "/healthz", r, 2);
        bad = r->status == 503;
        sqt_sleep(0.05);
    }
    ck_assert_msg(!bad, "/healthz after Redis came back: %s", r->body);
    ck_assert_msg(wait_status(metrics_port, "/readyz", 200, 15), "never ready again");
    free(r);
    itest_stop(&p);
}
END_TEST

START_TEST(healthz_fails_when_workers_cannot_fetch)
{
    sqt_proc p;
    start_squire(&p, NULL, NULL);
    freeReplyObject(sqt_cmd(C, "ACL SETUSER default -evalsha -eval -lmove -blmove -brpop"));
    ck_assert_msg(wait_status(metrics_port, "/readyz", 503, 5), "ready while fetches fail");
    ck_assert_msg(wait_status(metrics_port, "/healthz", 503, 20), "alive while no fetch works");
    http_reply *r = malloc(sizeof *r);
    http_get(metrics_port, "GET", "/healthz", r, 5);
    ck_assert_msg(strstr(r->body, "stuck: workers cannot fetch") != NULL, "%s", r->body);
    freeReplyObject(sqt_cmd(C, "ACL SETUSER default +@all"));
    ck_assert_msg(wait_status(metrics_port, "/healthz", 200, 15), "still stuck");
    ck_assert_msg(wait_status(metrics_port, "/readyz", 200, 10), "not ready again");
    free(r);
    itest_stop(&p);
}
END_TEST

/* Slow clients and a flood of connections: jobs keep flowing, and the
 * endpoint answers again once the silent connections time out. */
START_TEST(slow_clients_do_not_stall_workers)
{
    sqt_proc p;
    start_squire(&p, NULL, NULL);
    enum { NCONN = 300 };
    int fds[NCONN];
    int opened = 0;
    for (int i = 0; i < NCONN; i++) {
        fds[i] = connect_loopback(metrics_port, SOCK_NONBLOCK);
        opened += fds[i] >= 0;
        /* half a request line, then silence (slowloris) */
        ssize_t w = send(fds[i], "GET /metr", 9, MSG_NOSIGNAL);
        (void)w;
    }
    ck_assert_int_gt(opened, 200);
    /* 300 jobs while every connection slot is held by a silent client */
    double t0 = sqt_now();
    sq_error err = {0};
    sq_client *c = sq_client_new(R.url, &err);
    json_t *list = json_array();
    for (int i = 0; i < 300; i++)
        json_array_append_new(list, json_pack("[i, i]", i, 1));
    sq_push_opts o = {.queue = "default"};
    ck_assert_int_eq(sq_push_bulk(c, "WorkJob", list, &o, &err), 0);
    json_decref(list);
    sq_client_free(c);
    ck_assert_int_eq(sqt_wait_int(C, 300, 20, "SCARD test:done"), 300);
    double took = sqt_now() - t0;
    printf("slow_clients: 300 jobs of 1 ms with %d silent connections open: %.2f s\n", opened,
           took);
    /* keep the slow clients dribbling one byte a second past the timeout */
    for (int s = 0; s < 2; s++) {
        for (int i = 0; i < NCONN; i++) {
            ssize_t w = send(fds[i], "i", 1, MSG_NOSIGNAL);
            (void)w;
        }
        sqt_sleep(1);
    }
    /* the silent ones are dropped after the timeout: the endpoint answers */
    ck_assert_msg(wait_status(metrics_port, "/healthz", 200, 15), "endpoint never recovered");
    for (int i = 0; i < NCONN; i++)
        close(fds[i]);
    ck_assert_int_eq(status_of(metrics_port, "/readyz"), 200);
    itest_stop(&p);
}
END_TEST

/* Every line of the log, parsed with a JSON parser. */
/* Slowloris that never stops: 16 clients (the per-address limit) send
 * one header line a second, so the idle timeout never fires. A probe from
 * the same address (a kubelet, a curl in the pod) must still get an answer
 * within seconds, not wait for ever: a request has a deadline from its
 * first byte, whatever the client keeps sending. */
START_TEST(dribbling_clients_are_cut_off)
{
    sqt_proc p;
    start_squire(&p, NULL, NULL);
    enum { NCONN = 16 };
    int fds[NCONN];
    for (int i = 0; i < NCONN; i++) {
        fds[i] = connect_loopback(metrics_port, SOCK_NONBLOCK);
        ck_assert_int_ge(fds[i], 0);
        ssize_t w = send(fds[i], "GET /healthz HTTP/1.1\r\n", 23, MSG_NOSIGNAL);
        (void)w;
    }
    sqt_sleep(0.5);
    ck_assert_int_eq(status_of(metrics_port, "/healthz"), 0); /* every slot held */
    double until = sqt_now() + 20;
    int st = 0;
    while (st != 200 && sqt_now() < until) {
        for (int i = 0; i < NCONN; i++) {
            ssize_t w = send(fds[i], "X-A: b\r\n", 8, MSG_NOSIGNAL);
            (void)w;
        }
        http_reply *r = malloc(sizeof *r);
        http_get(metrics_port, "GET", "/healthz", r, 1);
        st = r->status;
        free(r);
        sqt_sleep(0.5);
    }
    ck_assert_msg(st == 200, "/healthz never answered while 16 clients dribbled");
    for (int i = 0; i < NCONN; i++)
        close(fds[i]);
    itest_stop(&p);
}
END_TEST

static json_t *log_lines(const sqt_proc *p)
{
    char *log = sqt_log_read(p);
    json_t *all = json_array();
    for (char *line = log, *end; *line; line = end + 1) {
        end = strchr(line, '\n');
        ck_assert_msg(end != NULL, "a line without its newline");
        json_array_append_new(all, parse_line(line, (size_t)(end - line) + 1));
    }
    free(log);
    return all;
}

/* The line with msg starting with prefix and ctx.jid == jid (borrowed). */
static json_t *find_line(json_t *lines, const char *jid, const char *prefix)
{
    size_t i;
    json_t *l;
    json_array_foreach(lines, i, l)
    {
        const char *m = json_string_value(json_object_get(l, "msg"));
        json_t *ctx = json_object_get(l, "ctx");
        const char *j = json_string_value(json_object_get(ctx, "jid"));
        if (m && j && strcmp(j, jid) == 0 && strncmp(m, prefix, strlen(prefix)) == 0)
            return l;
    }
    return NULL;
}

START_TEST(json_logs_parse_back_with_trace_ids)
{
    sqt_proc p;
    metrics_port = 0;
    const char *cfg = itest_config(":poll_interval_average: 0.2\n:beat_interval: 1\n"
                                   ":log_format: json\n");
    const char *argv[] = {"-C", cfg, "-r", SQ_TEST_PLUGIN, "-c", "2", "-t", "5", NULL};
    sqt_squire_start(&p, R.url, argv, NULL);
    ck_assert(sqt_log_wait(&p, "starting", 10));
    char jid[25], traced[25], parent[25];
    sq_push_opts fail = {.retry = SQ_RETRY_NEVER};
    /* hostile error class and message: quotes, controls, an escape sequence,
     * a line separator and a byte that is not UTF-8 */
    itest_push("FailJob", "[\"Err\\\"Q\", \"line1\\nline2\\u0001\\u001b[2J\\u2028\\\"end\\\\\"]",
               &fail, jid);
    /* an unknown class holding a control and a quote; a payload that is
     * not UTF-8 (its first bytes are logged) */
    redisReply *rep = sqt_cmd(C, "LPUSH queue:default %s",
                              "{\"class\":\"Bad\\u0001\\\"\",\"args\":[],\"jid\":\"raw1\","
                              "\"retry\":false}");
    freeReplyObject(rep);
    rep = sqt_cmd(C, "LPUSH queue:default %s", "{\"class\":\"X\xff\xfe\",\"args\":[]}");
    freeReplyObject(rep);
    /* trace context: a valid one through the C client, then handed on by
     * the handler to the job it pushes; a malformed one is ignored */
    sq_push_opts t = {.traceparent = TP_OK, .tracestate = "rojo=00f067aa0ba902b7"};
    itest_push("TraceJob", "[true]", &t, traced);
    rep = sqt_cmd(C, "LPUSH queue:default %s",
                  "{\"class\":\"TraceJob\",\"args\":[false],\"jid\":\"badtp\","
                  "\"traceparent\":\"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01\","
                  "\"tracestate\":\"rojo=1\"}");
    freeReplyObject(rep);
    /* a failing traced job: its retry keeps the context, its fail line the id */
    char retried[25];
    sq_push_opts tf = {.retry = 3, .traceparent = TP_OK};
    itest_push("FailJob", "[\"E\", \"m\"]", &tf, retried);
    ck_assert_int_ge(sqt_wait_int(C, 3, 15, "HLEN test:trace"), 3);
    ck_assert_int_eq(sqt_wait_int(C, 1, 10, "ZCARD retry"), 1);
    rep = sqt_cmd(C, "ZRANGE retry 0 0");
    json_t *member = json_loads(rep->element[0]->str, 0, NULL);
    ck_assert_str_eq(json_string_value(json_object_get(member, "traceparent")), TP_OK);
    ck_assert_str_eq(json_string_value(json_object_get(member, "jid")), retried);
    json_decref(member);
    freeReplyObject(rep);
    (void)parent;
    sqt_sleep(0.5);
    itest_stop(&p);

    json_t *lines = log_lines(&p);
    ck_assert_int_gt(json_array_size(lines), 8);
    json_t *l = find_line(lines, jid, "fail:");
    ck_assert_ptr_nonnull(l);
    json_t *ctx = json_object_get(l, "ctx");
    ck_assert_str_eq(json_string_value(json_object_get(l, "lvl")), "WARN");
    ck_assert_str_eq(json_string_value(json_object_get(ctx, "class")), "FailJob");
    ck_assert_str_eq(json_string_value(json_object_get(ctx, "queue")), "default");
    ck_assert_str_eq(json_string_value(json_object_get(ctx, "error_class")), "Err\"Q");
    ck_assert_str_eq(json_string_value(json_object_get(ctx, "error_message")),
                     "line1\nline2\x01\x1b[2J\xe2\x80\xa8\"end\\");
    ck_assert(json_is_real(json_object_get(ctx, "elapsed")));
    ck_assert_ptr_null(json_object_get(ctx, "trace_id"));
    ck_assert_int_gt(json_integer_value(json_object_get(l, "pid")), 0);
    ck_assert_ptr_nonnull(json_object_get(l, "ts"));
    ck_assert_ptr_nonnull(json_object_get(l, "tid"));

    l = find_line(lines, "raw1", "fail:");
    ck_assert_ptr_nonnull(l);
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(l, "ctx"), "class")),
                     "Bad\x01\"");
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(l, "ctx"), "error_class")),
                     "Squire::NoHandler");
    size_t i;
    json_t *any;
    bool seen = false;
    json_array_foreach(lines, i, any)
    {
        const char *m = json_string_value(json_object_get(any, "msg"));
        if (m && strstr(m, "invalid job from queue default") && strstr(m, "\xef\xbf\xbd"))
            seen = true;
    }
    ck_assert_msg(seen, "no line for the payload that is not UTF-8");

    l = find_line(lines, traced, "done:");
    ck_assert_ptr_nonnull(l);
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(l, "ctx"), "trace_id")),
                     TRACE_ID);
    ck_assert_ptr_nonnull(find_line(lines, traced, "start"));
    l = find_line(lines, retried, "fail:");
    ck_assert_ptr_nonnull(l);
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(l, "ctx"), "trace_id")),
                     TRACE_ID);
    l = find_line(lines, "badtp", "done:");
    ck_assert_ptr_nonnull(l);
    ck_assert_ptr_null(json_object_get(json_object_get(l, "ctx"), "trace_id"));

    /* the handler saw the context; its child carried it on */
    rep = sqt_cmd(C, "HGET test:trace %s", traced);
    ck_assert_str_eq(rep->str, TRACE_ID "|" TP_OK "|rojo=00f067aa0ba902b7");
    freeReplyObject(rep);
    rep = sqt_cmd(C, "HGET test:trace badtp");
    ck_assert_str_eq(rep->str, "-|-|-");
    freeReplyObject(rep);
    rep = sqt_cmd(C, "HGETALL test:trace");
    int children = 0;
    for (size_t k = 0; k + 1 < rep->elements; k += 2)
        if (strcmp(rep->element[k]->str, traced) != 0 &&
            strcmp(rep->element[k]->str, "badtp") != 0) {
            ck_assert_str_eq(rep->element[k + 1]->str, TRACE_ID "|" TP_OK "|rojo=00f067aa0ba902b7");
            children++;
        }
    ck_assert_int_eq(children, 1);
    freeReplyObject(rep);
    json_decref(lines);
}
END_TEST

START_TEST(text_logs_carry_the_trace_id)
{
    sqt_proc p;
    itest_squire(&p, R.url, "5", NULL);
    char jid[25];
    sq_push_opts t = {.traceparent = TP_OK};
    itest_push("OkJob", "[]", &t, jid);
    ck_assert_int_ge(sqt_wait_int(C, 1, 10, "SCARD test:done"), 1);
    char needle[200];
    snprintf(needle, sizeof needle, "jid=%s trace_id=" TRACE_ID " INFO: done", jid);
    ck_assert_msg(sqt_log_wait(&p, needle, 5), "no %s", needle);
    itest_stop(&p);
}
END_TEST

START_TEST(push_refuses_malformed_trace_context)
{
    sq_error err = {0};
    sq_client *c = sq_client_new(R.url, &err);
    json_t *args = json_array();
    char jid[25];
    sq_push_opts o = {.traceparent = "00-xyz"};
    ck_assert_int_eq(sq_push(c, "OkJob", args, &o, jid, &err), -1);
    ck_assert_int_eq(err.code, SQ_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.message, "traceparent"));
    sq_error e2 = {0};
    sq_push_opts o2 = {.tracestate = "a=b"};
    ck_assert_int_eq(sq_push(c, "OkJob", args, &o2, jid, &e2), -1);
    sq_error e3 = {0};
    sq_push_opts o3 = {.traceparent = TP_OK, .tracestate = "A=b"};
    ck_assert_int_eq(sq_push(c, "OkJob", args, &o3, jid, &e3), -1);
    ck_assert_int_eq(sqt_int(C, "LLEN queue:default"), 0);
    json_decref(args);
    sq_client_free(c);
    /* squirectl push: the same check, then the context on the payload */
    ck_assert_int_ne(sqt_sh(R.url, NULL, "%s push OkJob '[]' --traceparent 00-abc 2>/dev/null",
                            SQ_TEST_SQUIRECTL),
                     0);
    ck_assert_int_eq(sqt_int(C, "LLEN queue:default"), 0);
    ck_assert_int_eq(sqt_sh(R.url, NULL, "%s push OkJob '[]' --traceparent %s --tracestate a=b",
                            SQ_TEST_SQUIRECTL, TP_OK),
                     0);
    redisReply *rep = sqt_cmd(C, "LINDEX queue:default 0");
    json_t *job = json_loads(rep->str, 0, NULL);
    ck_assert_str_eq(json_string_value(json_object_get(job, "traceparent")), TP_OK);
    ck_assert_str_eq(json_string_value(json_object_get(job, "tracestate")), "a=b");
    json_decref(job);
    freeReplyObject(rep);
}
END_TEST

START_TEST(bad_metrics_address_exits_78)
{
    sqt_proc p;
    const char *argv[] = {"--metrics", "example.com:80", NULL};
    sqt_squire_start(&p, R.url, argv, NULL);
    ck_assert_int_eq(sqt_proc_wait(&p, 10), 64); /* a bad flag */
    ck_assert(sqt_log_wait(&p, "expected PORT (loopback)", 1));
    const char *bad = itest_config(":metrics_address: \"0.0.0.0:99999\"\n");
    const char *argv1[] = {"-C", bad, NULL};
    sqt_squire_start(&p, R.url, argv1, NULL);
    ck_assert_int_eq(sqt_proc_wait(&p, 10), 78); /* a bad file */
    ck_assert(sqt_log_wait(&p, ":1: metrics_address: expected PORT", 1));
    /* a port already taken: said, and exit 78 rather than run unobservable */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(listen(fd, 1), 0);
    socklen_t al = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &al);
    char port[16];
    snprintf(port, sizeof port, "%d", ntohs(a.sin_port));
    const char *argv2[] = {"--metrics", port, NULL};
    sqt_squire_start(&p, R.url, argv2, NULL);
    ck_assert_int_eq(sqt_proc_wait(&p, 10), 78);
    ck_assert(sqt_log_wait(&p, "--metrics: cannot listen on", 1));
    /* the same from a file: its file, line and key, as for any bad value */
    char yaml[64];
    snprintf(yaml, sizeof yaml, ":concurrency: 2\n:metrics_address: %s\n", port);
    const char *taken = itest_config(yaml);
    char want[400];
    snprintf(want, sizeof want, "%s:2: metrics_address: cannot listen on %s", taken, port);
    const char *argv4[] = {"-C", taken, NULL};
    sqt_squire_start(&p, R.url, argv4, NULL);
    ck_assert_int_eq(sqt_proc_wait(&p, 10), 78);
    ck_assert_msg(sqt_log_wait(&p, want, 1), "no \"%s\"", want);
    close(fd);
    const char *cfg = itest_config(":log_format: yaml\n");
    const char *argv3[] = {"-C", cfg, NULL};
    sqt_squire_start(&p, R.url, argv3, NULL);
    ck_assert_int_eq(sqt_proc_wait(&p, 10), 78);
    ck_assert(sqt_log_wait(&p, "log_format: expected text or json", 1));
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("observe");
    TCase *pure = tcase_create("pure");
    tcase_add_test(pure, prom_escapes_label_values);
    tcase_add_test(pure, prom_histogram_is_cumulative);
    tcase_add_test(pure, traceparent_grammar);
    tcase_add_test(pure, tracestate_grammar);
    tcase_add_test(pure, hostport_forms);
    tcase_add_test(pure, log_json_hostile_strings);
    tcase_add_test(pure, log_json_long_strings_are_cut_whole);
    suite_add_tcase(s, pure);
    TCase *d = tcase_create("daemon");
    tcase_add_checked_fixture(d, itest_setup, itest_teardown);
    tcase_set_timeout(d, 60);
    tcase_add_test(d, metrics_count_jobs_by_class_and_queue);
    tcase_add_test(d, metrics_cardinality_is_bounded);
    tcase_add_test(d, metrics_bad_utf8_classes_are_one_series);
    tcase_add_test(d, endpoint_refuses_what_it_does_not_serve);
    tcase_add_test(d, readyz_follows_quiet_and_redis);
    tcase_add_test(d, healthz_fails_when_workers_cannot_fetch);
    tcase_add_test(d, healthz_stays_alive_as_redis_comes_back);
    tcase_add_test(d, slow_clients_do_not_stall_workers);
    tcase_add_test(d, dribbling_clients_are_cut_off);
    tcase_add_test(d, json_logs_parse_back_with_trace_ids);
    tcase_add_test(d, text_logs_carry_the_trace_id);
    tcase_add_test(d, push_refuses_malformed_trace_context);
    tcase_add_test(d, bad_metrics_address_exits_78);
    suite_add_tcase(s, d);
    return s;
}

int main(void)
{
    return sqt_run(suite());
}
