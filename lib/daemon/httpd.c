/*
 * httpd.c: /metrics, /healthz and /readyz over libmicrohttpd (httpd.h).
 *
 * One internal thread (libmicrohttpd's, with epoll or poll) answers every
 * connection; a request is answered from memory at once, so a slow or
 * silent client costs a socket until the timeout, not a thread. The thread
 * inherits the signal mask sq_main set, so it never takes our signals.
 */
#include "httpd.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common.h"
#include "hostport.h"
#include "log.h"
#include "manager.h"
#include "observe.h"
#include "runtime.h"

static struct MHD_Daemon *daemon_;
static atomic_bool workers_started;
static char start_error[256]; /* libmicrohttpd's message while starting */
static atomic_bool starting;
static atomic_llong main_turn_ms; /* monotonic ms of the main loop's last turn */

/* Every open connection, so that one whose request takes longer than
 * SQ_HTTPD_DEADLINE_MS (a client that keeps dribbling header lines, which
 * the idle timeout never catches) is cut off by sq_httpd_main_turned.
 * Linked in and out by libmicrohttpd's thread (its connection notices; a
 * closed one is unlinked before its socket is closed), walked by the main
 * thread, both under conns_lock, so a socket is shut down only while open. */
typedef struct conn {
    int fd;
    long long since_ms; /* its first byte, or its last request answered */
    bool cut;
    struct conn *prev, *next;
} conn;

static pthread_mutex_t conns_lock = PTHREAD_MUTEX_INITIALIZER;
static conn *conns;

static void notify(void *cls, struct MHD_Connection *c, void **ctx,
                   enum MHD_ConnectionNotificationCode toe)
{
    (void)cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        conn *n = ci != NULL ? calloc(1, sizeof *n) : NULL;
        if (n == NULL)
            return;
        n->fd = ci->connect_fd;
        n->since_ms = sq_runtime_ms();
        pthread_mutex_lock(&conns_lock);
        n->next = conns;
        if (conns != NULL)
            conns->prev = n;
        conns = n;
        pthread_mutex_unlock(&conns_lock);
        *ctx = n;
    } else if (toe == MHD_CONNECTION_NOTIFY_CLOSED && *ctx != NULL) {
        conn *n = *ctx;
        pthread_mutex_lock(&conns_lock);
        if (n->prev != NULL)
            n->prev->next = n->next;
        else
            conns = n->next;
        if (n->next != NULL)
            n->next->prev = n->prev;
        pthread_mutex_unlock(&conns_lock);
        free(n);
        *ctx = NULL;
    }
}

/* A request answered: the connection's clock starts again (keep-alive). */
static void answered(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    if (ci == NULL || ci->socket_context == NULL)
        return;
    pthread_mutex_lock(&conns_lock);
    ((conn *)ci->socket_context)->since_ms = sq_runtime_ms();
    pthread_mutex_unlock(&conns_lock);
}

/* Shut down (not close: libmicrohttpd owns the socket and closes it when
 * it reads the end) every connection past its deadline. */
static void cut_overdue(void)
{
    long long now = sq_runtime_ms();
    pthread_mutex_lock(&conns_lock);
    for (conn *n = conns; n != NULL; n = n->next)
        if (!n->cut && now - n->since_ms > SQ_HTTPD_DEADLINE_MS) {
            shutdown(n->fd, SHUT_RDWR);
            n->cut = true;
        }
    pthread_mutex_unlock(&conns_lock);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[256];
    vsnprintf(msg, sizeof msg, fmt, ap);
    msg[strcspn(msg, "\n")] = '\0';
    if (atomic_load(&starting))
        snprintf(start_error, sizeof start_error, "%s", msg);
    else /* per-connection trouble (a reset, a too-large request): not news */
        sq_log(SQ_LOG_DEBUG, "http: %s", msg);
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *type,
                             char *body, size_t len, bool owned)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(
        len, body, owned ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_MUST_COPY);
    if (r == NULL) {
        if (owned)
            free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result text(struct MHD_Connection *c, unsigned status, const char *fmt, ...)
    SQ_PRINTF(3, 4);

static enum MHD_Result text(struct MHD_Connection *c, unsigned status, const char *fmt, ...)
{
    char body[400];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(body, sizeof body, fmt, ap);
    va_end(ap);
    size_t len = n < 0 ? 0 : (size_t)n < sizeof body ? (size_t)n : sizeof body - 1;
    return reply(c, status, "text/plain; charset=utf-8", body, len, false);
}

/* Why the process is not ready, or NULL when it is. */
static const char *not_ready(sq_runtime *rt)
{
    if (!atomic_load(&workers_started))
        return "starting";
    if (atomic_load(&rt->stopping))
        return "stopping";
    if (atomic_load(&rt->quiet))
        return "quiet";
    if (atomic_load(&rt->fenced))
        return "lease not renewed (Redis out of reach)";
    if (atomic_load(&rt->fetch_outage))
        return "fetching fails (Redis out of reach?)";
    /* the heartbeat reached Redis lately: two beats and a reply timeout */
    long long quiet_ms = (long long)(rt->cfg->beat_interval * 2000) + 3000;
    if (sq_runtime_ms() - atomic_load(&rt->redis_ok_ms) > quiet_ms)
        return "heartbeat has not reached Redis";
    return NULL;
}

static enum MHD_Result healthz(struct MHD_Connection *c, sq_runtime *rt)
{
    if (!atomic_load(&workers_started))
        return text(c, MHD_HTTP_OK, "ok: starting\n");
    if (atomic_load(&rt->stopping))
        return text(c, MHD_HTTP_OK, "ok: stopping\n");
    long long main_ms = atomic_load(&main_turn_ms);
    if (main_ms > 0 && sq_runtime_ms() - main_ms > SQ_HTTPD_MAIN_STUCK_MS)
        return text(c, MHD_HTTP_SERVICE_UNAVAILABLE, "stuck: main thread (for %lld s)\n",
                    (sq_runtime_ms() - main_ms) / 1000);
    char who[200];
    if (!sq_manager_progress(rt, who, sizeof who))
        return text(c, MHD_HTTP_SERVICE_UNAVAILABLE, "stuck: %s\n", who);
    return text(c, MHD_HTTP_OK, "ok\n");
}

static enum MHD_Result metrics(struct MHD_Connection *c, sq_runtime *rt)
{
    if (!atomic_load(&workers_started))
        return text(c, MHD_HTTP_SERVICE_UNAVAILABLE, "starting\n");
    size_t len = 0;
    char *body = sq_observe_render(rt, &len);
    if (body == NULL)
        return text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
    return reply(c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", body, len, true);
}

static enum MHD_Result answer(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **con_cls)
{
    sq_runtime *rt = cls;
    (void)version, (void)upload, (void)upload_size, (void)con_cls;
    answered(c);
    /* Answered on the first call, before any body is read: a body is never
     * wanted, and libmicrohttpd closes a connection whose body is unread. */
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
        return text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET and HEAD\n");
    if (strcmp(url, "/metrics") == 0)
        return metrics(c, rt);
    if (strcmp(url, "/healthz") == 0)
        return healthz(c, rt);
    if (strcmp(url, "/readyz") == 0) {
        const char *why = not_ready(rt);
        return why ? text(c, MHD_HTTP_SERVICE_UNAVAILABLE, "not ready: %s\n", why)
                   : text(c, MHD_HTTP_OK, "ready\n");
    }
    return text(c, MHD_HTTP_NOT_FOUND, "not found: try /metrics, /healthz or /readyz\n");
}

int sq_httpd_start(sq_runtime *rt, const char *address, const char *where, sq_error *err)
{
    where = where != NULL ? where : "metrics_address";
    sq_hostport hp;
    sq_error perr = {0};
    if (sq_hostport_parse(address, &hp, &perr) != 0) {
        sq__error_set(err, SQ_ECONFIG, "%s: %s: %s", where, address, perr.message);
        return -1;
    }
    struct sockaddr_in in4 = {0};
    struct sockaddr_in6 in6 = {0};
    struct sockaddr *sa = (struct sockaddr *)&in4;
    if (hp.ipv6) {
        in6.sin6_family = AF_INET6;
        in6.sin6_port = htons((uint16_t)hp.port);
        inet_pton(AF_INET6, hp.host, &in6.sin6_addr);
        sa = (struct sockaddr *)&in6;
    } else {
        in4.sin_family = AF_INET;
        in4.sin_port = htons((uint16_t)hp.port);
        inet_pton(AF_INET, hp.host, &in4.sin_addr);
    }
    start_error[0] = '\0';
    atomic_store(&starting, true);
    daemon_ = MHD_start_daemon(
        MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG | (hp.ipv6 ? MHD_USE_IPv6 : 0),
        (uint16_t)hp.port, NULL, NULL, answer, rt, MHD_OPTION_SOCK_ADDR, sa,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)SQ_HTTPD_MAX_CONNECTIONS,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)SQ_HTTPD_MAX_PER_ADDRESS,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)SQ_HTTPD_TIMEOUT,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)SQ_HTTPD_MEMORY, MHD_OPTION_EXTERNAL_LOGGER,
        mhd_log, NULL, MHD_OPTION_NOTIFY_CONNECTION, notify, NULL, MHD_OPTION_END);
    atomic_store(&starting, false);
    if (daemon_ == NULL) {
        sq__error_set(err, SQ_ECONFIG, "%s: cannot listen on %s: %s", where, address,
                      start_error[0] ? start_error : "libmicrohttpd refused to start");
        return -1;
    }
    sq_observe_enable();
    sq_log(SQ_LOG_INFO, "serving /metrics, /healthz and /readyz on http://%s%s%s:%d",
           hp.ipv6 ? "[" : "", hp.host, hp.ipv6 ? "]" : "", hp.port);
    return 0;
}

void sq_httpd_main_turned(void)
{
    atomic_store(&main_turn_ms, sq_runtime_ms());
    if (daemon_ != NULL)
        cut_overdue();
}

void sq_httpd_workers_started(void)
{
    atomic_store(&workers_started, true);
}

void sq_httpd_stop(void)
{
    if (daemon_ != NULL)
        MHD_stop_daemon(daemon_);
    daemon_ = NULL;
    atomic_store(&workers_started, false);
}
