#include "redis.h"

#include <arpa/inet.h>
#include <errno.h>
#include <hiredis/hiredis_ssl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"

/* TCP keepalive probes start after this many idle seconds, so a peer that
 * vanished (a half-open connection) is noticed even between commands. */
#define KEEPALIVE_INTERVAL 10

struct sq_redis {
    redisContext *ctx;
    sq_redis_url url;
    double timeout;
    double applied_timeout; /* what the socket currently has */
    SSL_CTX *ssl;           /* rediss://: shared, see tls_context() */
    char display[300];
    char master[300]; /* sentinels: "host:port" of the master last found */
    atomic_long connects; /* successful connects, the first included (metrics) */
};

static pthread_mutex_t script_lock = PTHREAD_MUTEX_INITIALIZER;

static struct timeval to_timeval(double s)
{
    struct timeval tv;
    tv.tv_sec = (time_t)s;
    tv.tv_usec = (suseconds_t)((s - (double)tv.tv_sec) * 1e6);
    return tv;
}

static void make_display(sq_redis *r)
{
    const sq_redis_url *u = &r->url;
    const char *auth = u->password ? ":REDACTED@" : u->username ? "@" : "";
    const char *user = u->username ? u->username : "";
    const char *scheme = u->tls ? "rediss" : "redis";
    const char *via = u->nsentinels > 0 ? " (via sentinels)" : "";
    if (u->path != NULL)
        snprintf(r->display, sizeof r->display, "unix://%s?db=%d", u->path, u->db);
    else if (strchr(u->host, ':') != NULL)
        snprintf(r->display, sizeof r->display, "%s://%s%s[%s]:%d/%d%s", scheme, user, auth,
                 u->host, u->port, u->db, via);
    else
        snprintf(r->display, sizeof r->display, "%s://%s%s%s:%d/%d%s", scheme, user, auth, u->host,
                 u->port, u->db, via);
}

sq_redis *sq_redis_new(const sq_redis_url *url, double timeout)
{
    sq_redis *r = calloc(1, sizeof *r);
    if (r == NULL)
        return NULL;
    r->timeout = timeout > 0 ? timeout : 3.0;
    if (sq_redis_url_copy(&r->url, url) != 0) {
        free(r);
        return NULL;
    }
    make_display(r);
    return r;
}

void sq_redis_free(sq_redis *r)
{
    if (r == NULL)
        return;
    sq_redis_disconnect(r);
    sq_redis_url_destroy(&r->url);
    SSL_CTX_free(r->ssl);
    free(r);
}

void sq_redis_disconnect(sq_redis *r)
{
    if (r->ctx != NULL) {
        redisFree(r->ctx);
        r->ctx = NULL;
    }
}

bool sq_redis_is_connected(const sq_redis *r)
{
    return r->ctx != NULL && r->ctx->err == 0;
}

const char *sq_redis_display(const sq_redis *r)
{
    return r->display;
}

/* ---- TLS ------------------------------------------------------------------ */

/* One SSL_CTX per distinct set of options, shared (reference counted) by
 * every connection of the process: loading the system CA store once, not
 * once per worker. */
static pthread_mutex_t tls_lock = PTHREAD_MUTEX_INITIALIZER;
static SSL_CTX *tls_cached;
static char tls_cached_key[4200];

/* The last OpenSSL error as text ("no such file", ...). */
static const char *ssl_reason(char *buf, size_t size)
{
    unsigned long e = ERR_peek_last_error();
    if (e == 0)
        return "unknown error";
    const char *why = ERR_reason_error_string(e);
    snprintf(buf, size, "%s", why ? why : "unknown error");
    return buf;
}

static SSL_CTX *tls_build(const sq_redis_url *u, sq_error *err)
{
    char why[256];
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL) {
        sq__error_set(err, SQ_ENOMEM, "TLS: cannot create a context: %s",
                      ssl_reason(why, sizeof why));
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx, u->tls_no_verify ? SSL_VERIFY_NONE : SSL_VERIFY_PEER, NULL);
    const char *bad = NULL;
    why[0] = '\0';
    struct stat st;
    if (u->tls_ca_path != NULL && (stat(u->tls_ca_path, &st) != 0 || !S_ISDIR(st.st_mode))) {
        /* OpenSSL would open it only when it looks for a CA, and then say
         * "unknown CA": name the real problem now */
        bad = "ssl_ca_path";
        snprintf(why, sizeof why, "%s", strerror(access(u->tls_ca_path, F_OK) ? errno : ENOTDIR));
    } else if (u->tls_ca_file != NULL || u->tls_ca_path != NULL) {
        if (SSL_CTX_load_verify_locations(ctx, u->tls_ca_file, u->tls_ca_path) != 1)
            bad = u->tls_ca_file != NULL ? "ssl_ca_file" : "ssl_ca_path";
    } else if (!u->tls_no_verify && SSL_CTX_set_default_verify_paths(ctx) != 1) {
        bad = "the system CA store";
    }
    if (bad == NULL && u->tls_cert != NULL &&
        SSL_CTX_use_certificate_chain_file(ctx, u->tls_cert) != 1)
        bad = "ssl_cert";
    if (bad == NULL && u->tls_key != NULL &&
        (SSL_CTX_use_PrivateKey_file(ctx, u->tls_key, SSL_FILETYPE_PEM) != 1 ||
         SSL_CTX_check_private_key(ctx) != 1))
        bad = "ssl_key";
    if (bad != NULL) {
        const char *path = strcmp(bad, "ssl_ca_file") == 0   ? u->tls_ca_file
                           : strcmp(bad, "ssl_ca_path") == 0 ? u->tls_ca_path
                           : strcmp(bad, "ssl_cert") == 0    ? u->tls_cert
                           : strcmp(bad, "ssl_key") == 0     ? u->tls_key
                                                             : NULL;
        if (why[0] == '\0' && path != NULL && access(path, R_OK) != 0)
            snprintf(why, sizeof why, "%s", strerror(errno));
        else if (why[0] == '\0')
            ssl_reason(why, sizeof why);
        sq__error_set(err, SQ_ECONFIG, "TLS: cannot load %s%s%s: %s", bad, path ? " " : "",
                      path ? path : "", why);
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

static SSL_CTX *tls_context(const sq_redis_url *u, sq_error *err)
{
    char key[sizeof tls_cached_key];
    snprintf(key, sizeof key, "%d|%s|%s|%s|%s", u->tls_no_verify,
             u->tls_ca_file ? u->tls_ca_file : "", u->tls_ca_path ? u->tls_ca_path : "",
             u->tls_cert ? u->tls_cert : "", u->tls_key ? u->tls_key : "");
    pthread_mutex_lock(&tls_lock);
    SSL_CTX *ctx = NULL;
    if (tls_cached != NULL && strcmp(key, tls_cached_key) == 0) {
        ctx = tls_cached;
        SSL_CTX_up_ref(ctx);
    } else if ((ctx = tls_build(u, err)) != NULL) {
        SSL_CTX_free(tls_cached);
        tls_cached = ctx;
        SSL_CTX_up_ref(ctx);
        snprintf(tls_cached_key, sizeof tls_cached_key, "%s", key);
    }
    pthread_mutex_unlock(&tls_lock);
    return ctx;
}

static bool is_ip_address(const char *s)
{
    unsigned char buf[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

/* Why a handshake failed, in words a user can act on. */
static void tls_failure(sq_redis *r, SSL *ssl, const char *name, const char *where,
                        const char *errstr, int saved_errno, sq_error *err)
{
    long v = SSL_get_verify_result(ssl);
    if (v == X509_V_OK && (saved_errno == EAGAIN || saved_errno == EWOULDBLOCK)) {
        sq__error_set(err, SQ_EREDIS,
                      "TLS to %s%s: no answer within %g s (timed out in the "
                      "handshake; the server or the network hangs)",
                      r->display, where, r->timeout);
        return;
    }
    const char *hint = NULL;
    int code = SQ_EREDIS;
    switch (v) {
    case X509_V_OK:
        break;
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_CERT_SIGNATURE_FAILURE:
        hint = "unknown CA: the server's certificate is not signed by a trusted CA (set "
               "redis.ssl_ca_file / SQUIRE_REDIS_SSL_CA_FILE, or ssl_verify_mode none for a "
               "provider with self-signed certificates such as Heroku)";
        code = SQ_ECONFIG;
        break;
    case X509_V_ERR_HOSTNAME_MISMATCH:
    case X509_V_ERR_IP_ADDRESS_MISMATCH:
        hint = "name mismatch: the server's certificate is not for this host (set "
               "redis.ssl_server_name / SQUIRE_REDIS_SSL_SERVER_NAME to the name it carries)";
        code = SQ_ECONFIG;
        break;
    case X509_V_ERR_CERT_HAS_EXPIRED:
    case X509_V_ERR_CERT_NOT_YET_VALID:
        hint = "the server's certificate has expired or is not valid yet";
        code = SQ_ECONFIG;
        break;
    default:
        hint = X509_verify_cert_error_string(v);
        code = SQ_ECONFIG;
        break;
    }
    if (hint != NULL)
        sq__error_set(err, code, "TLS to %s%s failed: %s (checked name \"%s\")", r->display, where,
                      hint, name);
    else
        sq__error_set(err, code, "TLS to %s%s failed: handshake refused or broken: %s", r->display,
                      where, errstr[0] ? errstr : "no reason given");
}

/* TLS handshake on a connected context, checking the certificate and the
 * server's name (hiredis itself does not check names). */
static int tls_start(sq_redis *r, redisContext *c, const char *host, const char *where,
                     sq_error *err)
{
    if (r->ssl == NULL && (r->ssl = tls_context(&r->url, err)) == NULL)
        return -1;
    SSL *ssl = SSL_new(r->ssl);
    if (ssl == NULL) {
        sq__error_set(err, SQ_ENOMEM, "TLS: out of memory");
        return -1;
    }
    const char *name = r->url.tls_server_name ? r->url.tls_server_name : host;
    bool ip = is_ip_address(name);
    if (!ip)
        SSL_set_tlsext_host_name(ssl, name);
    if (!r->url.tls_no_verify) {
        X509_VERIFY_PARAM *param = SSL_get0_param(ssl);
        X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        if ((ip ? X509_VERIFY_PARAM_set1_ip_asc(param, name)
                : X509_VERIFY_PARAM_set1_host(param, name, 0)) != 1) {
            SSL_free(ssl);
            sq__error_set(err, SQ_ECONFIG, "TLS to %s: bad server name \"%s\"", r->display, name);
            return -1;
        }
    }
    errno = 0;
    if (redisInitiateSSL(c, ssl) == REDIS_OK)
        return 0; /* the context owns ssl now */
    tls_failure(r, ssl, name, where, strstr(c->errstr, "(null)") ? "" : c->errstr, errno, err);
    SSL_free(ssl);
    return -1;
}

/* ---- SIGPIPE ------------------------------------------------------------- */

/* hiredis writes with send() without MSG_NOSIGNAL, and OpenSSL with write():
 * writing to a peer that has closed the connection (Redis at maxclients
 * closes new TLS connections at once) raises SIGPIPE, which kills a program
 * that does not ignore it (squirectl, a program using the C client) instead
 * of failing the call. Around each call that does I/O, SIGPIPE is blocked in
 * the calling thread, and one it raised there is discarded (as libpq does). */
typedef struct {
    sigset_t old;
    bool was_pending, on;
} pipe_guard;

static atomic_bool sigpipe_ignored;

void sq_redis_sigpipe_ignored(void)
{
    atomic_store(&sigpipe_ignored, true);
}

static sigset_t sigpipe_set(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    return set;
}

static bool sigpipe_pending(void)
{
    sigset_t pending;
    return sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1;
}

static void pipe_guard_on(pipe_guard *g)
{
    g->on = !atomic_load_explicit(&sigpipe_ignored, memory_order_relaxed);
    if (!g->on)
        return;
    sigset_t set = sigpipe_set();
    pthread_sigmask(SIG_BLOCK, &set, &g->old);
    g->was_pending = sigismember(&g->old, SIGPIPE) == 1 && sigpipe_pending();
}

/* failed: whether the call failed (only a failed write raises SIGPIPE). */
static void pipe_guard_off(pipe_guard *g, bool failed)
{
    if (!g->on)
        return;
    if (failed && !g->was_pending && sigpipe_pending()) {
        sigset_t set = sigpipe_set();
        struct timespec zero = {0, 0};
        sigtimedwait(&set, NULL, &zero);
    }
    pthread_sigmask(SIG_SETMASK, &g->old, NULL);
}

/* ---- connecting ----------------------------------------------------------- */

/* hiredis reports a socket timeout as EAGAIN's text: say what it means. */
static const char *io_reason(const sq_redis *r, const redisContext *c, char *buf, size_t size)
{
    const char *s = c != NULL && c->errstr[0] ? c->errstr : "connection lost";
    if ((c != NULL && c->err == REDIS_ERR_TIMEOUT) ||
        strstr(s, "Resource temporarily unavailable") != NULL || strstr(s, "timed out") != NULL) {
        snprintf(buf, size, "no answer within %g s (timed out; the server or the network hangs)",
                 r->timeout);
        return buf;
    }
    return s;
}

/* A connected (and, for rediss://, TLS-secured) context to host:port or the
 * URL's socket, or NULL with err set. where names the peer in messages. */
static redisContext *open_context(sq_redis *r, const char *host, int port, const char *where,
                                  sq_error *err)
{
    struct timeval tv = to_timeval(r->timeout);
    redisOptions o = {0};
    if (host == NULL)
        REDIS_OPTIONS_SET_UNIX(&o, r->url.path);
    else
        REDIS_OPTIONS_SET_TCP(&o, host, port);
    o.connect_timeout = &tv;
    o.command_timeout = &tv;
    redisContext *c = redisConnectWithOptions(&o);
    if (c == NULL) {
        sq__error_set(err, SQ_ENOMEM, "%s: cannot allocate a connection", r->display);
        return NULL;
    }
    char buf[160];
    if (c->err) {
        sq__error_set(err, SQ_EREDIS, "connect %s%s: %s", r->display, where,
                      io_reason(r, c, buf, sizeof buf));
        redisFree(c);
        return NULL;
    }
    if (host != NULL)
        redisEnableKeepAliveWithInterval(c, KEEPALIVE_INTERVAL);
    if (r->url.tls && host != NULL && tls_start(r, c, host, where, err) != 0) {
        redisFree(c);
        return NULL;
    }
    return c;
}

/* AUTH on a fresh connection (user may be NULL). */
static int authenticate(sq_redis *r, redisContext *c, const char *user, const char *password,
                        const char *where, sq_error *err)
{
    if (password == NULL)
        return 0;
    redisReply *rep = user != NULL ? redisCommand(c, "AUTH %s %s", user, password)
                                   : redisCommand(c, "AUTH %s", password);
    char buf[160];
    if (rep == NULL) {
        sq__error_set(err, SQ_EREDIS, "%s%s: AUTH: %s", r->display, where,
                      io_reason(r, c, buf, sizeof buf));
        return -1;
    }
    int rc = 0;
    if (rep->type == REDIS_REPLY_ERROR) {
        /* A server that does not know AUTH (renamed, an old sentinel) quotes
         * the command's arguments, the password among them: the reply is
         * shown up to its first quote only. */
        size_t n = strcspn(rep->str, "'\"");
        sq__error_set(err, SQ_EAUTH, "%s%s: AUTH refused: %.*s%s", r->display, where,
                      (int)(n < 200 ? n : 200), rep->str,
                      rep->str[n] != '\0' ? "(the rest quotes the password: not shown)" : "");
        rc = -1;
    }
    freeReplyObject(rep);
    return rc;
}

/* AUTH and SELECT on a fresh connection. */
static int handshake(sq_redis *r, const char *where, sq_error *err)
{
    redisReply *rep;
    if (authenticate(r, r->ctx, r->url.username, r->url.password, where, err) != 0)
        return -1;
    if (r->url.db != 0) {
        rep = redisCommand(r->ctx, "SELECT %d", r->url.db);
        if (rep == NULL || rep->type == REDIS_REPLY_ERROR) {
            int code = SQ_EREDIS;
            char buf[160];
            if (rep != NULL &&
                (strncmp(rep->str, "NOAUTH", 6) == 0 || strncmp(rep->str, "NOPERM", 6) == 0))
                code = SQ_EAUTH;
            else if (rep != NULL && strncmp(rep->str, "ERR ", 4) == 0)
                code = SQ_ECONFIG; /* db out of range, cluster mode: waiting will not help */
            sq__error_set(err, code, "%s%s: SELECT %d: %.200s", r->display, where, r->url.db,
                          rep ? rep->str : io_reason(r, r->ctx, buf, sizeof buf));
            if (rep)
                freeReplyObject(rep);
            return -1;
        }
        freeReplyObject(rep);
    }
    return 0;
}

/* Ask one sentinel where the master is: 0 with host/port set, else -1. */
static int ask_sentinel(sq_redis *r, const char *sentinel, char *host, size_t hsize, int *port,
                        sq_error *err)
{
    char *shost;
    int sport;
    if (sq_redis_sentinel_parse(sentinel, &shost, &sport) != 0) {
        sq__error_set(err, SQ_ECONFIG, "bad sentinel address \"%s\"", sentinel);
        return -1;
    }
    char where[300];
    snprintf(where, sizeof where, " (sentinel %s)", sentinel);
    redisContext *c = open_context(r, shost, sport, where, err);
    free(shost);
    if (c == NULL)
        return -1;
    int rc = -1;
    if (authenticate(r, c, r->url.sentinel_username, r->url.sentinel_password, where, err) == 0) {
        char buf[160];
        redisReply *rep = redisCommand(c, "SENTINEL get-master-addr-by-name %s", r->url.host);
        if (rep == NULL)
            sq__error_set(err, SQ_EREDIS, "%s%s: %s", r->display, where,
                          io_reason(r, c, buf, sizeof buf));
        else if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 &&
                 rep->element[0]->type == REDIS_REPLY_STRING &&
                 rep->element[1]->type == REDIS_REPLY_STRING) {
            snprintf(host, hsize, "%s", rep->element[0]->str);
            *port = atoi(rep->element[1]->str);
            rc = *port > 0 ? 0 : -1;
        } else if (rep->type == REDIS_REPLY_ERROR)
            sq__error_set(err, SQ_EREDIS, "%s%s: %.200s", r->display, where, rep->str);
        else
            sq__error_set(err, SQ_EREDIS, "%s%s: no master named \"%s\"", r->display, where,
                          r->url.host);
        if (rep)
            freeReplyObject(rep);
    }
    redisFree(c);
    return rc;
}

/* Sentinels: the server must say it is the master (it may be a demoted one
 * that the sentinels have not caught up with yet). */
static int check_role(sq_redis *r, sq_error *err)
{
    redisReply *rep = redisCommand(r->ctx, "ROLE");
    char buf[160];
    if (rep == NULL) {
        sq__error_set(err, SQ_EREDIS, "%s: ROLE: %s", r->display,
                      io_reason(r, r->ctx, buf, sizeof buf));
        return -1;
    }
    bool master = rep->type == REDIS_REPLY_ARRAY && rep->elements > 0 &&
                  rep->element[0]->type == REDIS_REPLY_STRING &&
                  strcmp(rep->element[0]->str, "master") == 0;
    if (!master)
        sq__error_set(err, SQ_EREDIS, "%s: %s is not the master (%s); asking the sentinels again",
                      r->display, r->master,
                      rep->type == REDIS_REPLY_ARRAY && rep->elements > 0 &&
                              rep->element[0]->type == REDIS_REPLY_STRING
                          ? rep->element[0]->str
                      : rep->type == REDIS_REPLY_ERROR ? rep->str
                                                       : "no role");
    freeReplyObject(rep);
    return master ? 0 : -1;
}

static sq_report_fn reporter;
static void *reporter_ud;

void sq_redis_set_reporter(sq_report_fn fn, void *ud)
{
    reporter = fn;
    reporter_ud = ud;
}

/* Report where the master is once per change for the whole process, not
 * once per connection (every worker has one). */
static void log_master(const char *name, const char *addr)
{
    static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    static char last[600];
    char now[sizeof last];
    snprintf(now, sizeof now, "%s %s", name, addr);
    pthread_mutex_lock(&lock);
    bool changed = strcmp(now, last) != 0;
    if (changed)
        snprintf(last, sizeof last, "%s", now);
    pthread_mutex_unlock(&lock);
    if (changed && reporter != NULL) {
        char msg[sizeof last + 40];
        snprintf(msg, sizeof msg, "sentinels: master \"%s\" is at %s", name, addr);
        reporter(reporter_ud, SQ_REPORT_INFO, msg);
    }
}

/* A fresh connection to host:port (NULL: the URL's socket), authenticated,
 * on the right db and, behind sentinels, checked to be the master. */
static int connect_to(sq_redis *r, const char *host, int port, sq_error *err)
{
    char where[320] = "";
    if (r->url.nsentinels > 0)
        snprintf(where, sizeof where, " (master at %s)", r->master);
    r->ctx = open_context(r, host, port, where, err);
    if (r->ctx == NULL)
        return -1;
    r->applied_timeout = r->timeout;
    if (handshake(r, where, err) != 0 || (r->url.nsentinels > 0 && check_role(r, err) != 0)) {
        sq_redis_disconnect(r);
        return -1;
    }
    return 0;
}

/* Report e, from a sentinel (!found) or from the master one named. */
static int sentinel_failure(const sq_error *e, bool found, sq_error *err)
{
    if (found)
        sq__error_set(err, e->code, "%s", e->message);
    else
        sq__error_set(err, e->code ? e->code : SQ_EREDIS, "no sentinel gave the master: %s",
                      e->message);
    return -1;
}

/* Each sentinel in turn until one names a server that is the master: a
 * sentinel that does not answer, or that names a replica or a dead server
 * (it is behind: a stale config, a partition), is passed over. */
static int connect_via_sentinels(sq_redis *r, sq_error *err)
{
    sq_error lookup = {0}, master = {0};
    for (size_t i = 0; i < r->url.nsentinels; i++) {
        sq_error e = {0};
        char host[256];
        int port;
        bool found = ask_sentinel(r, r->url.sentinels[i], host, sizeof host, &port, &e) == 0;
        if (found) {
            snprintf(r->master, sizeof r->master, "%s:%d", host, port);
            if (connect_to(r, host, port, &e) == 0) {
                log_master(r->url.host, r->master);
                return 0;
            }
        }
        /* A sentinel refusing our credentials or TLS settings: the others
         * will too. A master refusing them may be a stale sentinel's wrong
         * address: the others are asked first. */
        if (!found && (e.code == SQ_ECONFIG || e.code == SQ_EAUTH))
            return sentinel_failure(&e, false, err);
        sq_error *keep = found ? &master : &lookup;
        if (keep->code == 0 || (found && (e.code == SQ_ECONFIG || e.code == SQ_EAUTH)))
            *keep = e;
    }
    return master.code != 0 ? sentinel_failure(&master, true, err)
                            : sentinel_failure(&lookup, false, err);
}

int sq_redis_connect(sq_redis *r, sq_error *err)
{
    if (sq_redis_is_connected(r))
        return 0;
    sq_redis_disconnect(r);
    pipe_guard g;
    pipe_guard_on(&g);
    int rc = r->url.nsentinels > 0
                 ? connect_via_sentinels(r, err)
                 : connect_to(r, r->url.path != NULL ? NULL : r->url.host, r->url.port, err);
    pipe_guard_off(&g, rc != 0);
    if (rc == 0)
        atomic_fetch_add(&r->connects, 1);
    return rc;
}

long sq_redis_reconnects(const sq_redis *r)
{
    long n = r != NULL ? atomic_load(&((sq_redis *)r)->connects) : 0;
    return n > 1 ? n - 1 : 0;
}

static void set_wait(sq_redis *r, double extra)
{
    double want = r->timeout + extra;
    if (want != r->applied_timeout) {
        redisSetTimeout(r->ctx, to_timeval(want));
        r->applied_timeout = want;
    }
}

/* Errors after which this connection should not be reused. */
static bool error_drops_connection(const char *msg)
{
    static const char *const prefixes[] = {"READONLY", "LOADING", "MASTERDOWN", "NOREPLICAS",
                                           "UNBLOCKED"};
    for (size_t i = 0; i < SQ_ARRAY_LEN(prefixes); i++)
        if (strncmp(msg, prefixes[i], strlen(prefixes[i])) == 0)
            return true;
    return false;
}

/* Turn a raw hiredis result into our contract. */
static redisReply *check_reply(sq_redis *r, redisReply *rep, sq_error *err)
{
    if (rep == NULL) {
        char buf[160];
        sq__error_set(err, SQ_EREDIS, "%s: %s", r->display, io_reason(r, r->ctx, buf, sizeof buf));
        sq_redis_disconnect(r);
        return NULL;
    }
    if (rep->type == REDIS_REPLY_ERROR) {
        sq__error_set(err, SQ_EREDIS, "%.300s", rep->str);
        if (error_drops_connection(rep->str))
            sq_redis_disconnect(r);
        freeReplyObject(rep);
        return NULL;
    }
    return rep;
}

redisReply *sq_redis_argv(sq_redis *r, int argc, const char **argv, const size_t *lens,
                          double extra_wait, sq_error *err)
{
    if (sq_redis_connect(r, err) != 0)
        return NULL;
    set_wait(r, extra_wait);
    pipe_guard g;
    pipe_guard_on(&g);
    redisReply *rep = redisCommandArgv(r->ctx, argc, argv, lens);
    pipe_guard_off(&g, rep == NULL);
    return check_reply(r, rep, err);
}

redisReply *sq_redis_cmd(sq_redis *r, sq_error *err, const char *fmt, ...)
{
    if (sq_redis_connect(r, err) != 0)
        return NULL;
    set_wait(r, 0);
    pipe_guard g;
    pipe_guard_on(&g);
    va_list ap;
    va_start(ap, fmt);
    redisReply *rep = redisvCommand(r->ctx, fmt, ap);
    va_end(ap);
    pipe_guard_off(&g, rep == NULL);
    return check_reply(r, rep, err);
}

int sq_redis_pipe_argv(sq_redis *r, int argc, const char **argv, const size_t *lens, sq_error *err)
{
    if (sq_redis_connect(r, err) != 0)
        return -1;
    set_wait(r, 0);
    if (redisAppendCommandArgv(r->ctx, argc, argv, lens) != REDIS_OK) {
        sq__error_set(err, SQ_ENOMEM, "%s: cannot queue a command", r->display);
        sq_redis_disconnect(r);
        return -1;
    }
    return 0;
}

int sq_redis_pipe_cmd(sq_redis *r, sq_error *err, const char *fmt, ...)
{
    if (sq_redis_connect(r, err) != 0)
        return -1;
    set_wait(r, 0);
    va_list ap;
    va_start(ap, fmt);
    int rc = redisvAppendCommand(r->ctx, fmt, ap);
    va_end(ap);
    if (rc != REDIS_OK) {
        sq__error_set(err, SQ_ENOMEM, "%s: cannot queue a command", r->display);
        sq_redis_disconnect(r);
        return -1;
    }
    return 0;
}

redisReply *sq_redis_pipe_reply(sq_redis *r, sq_error *err)
{
    if (r->ctx == NULL) {
        sq__error_set(err, SQ_EREDIS, "%s: connection lost", r->display);
        return NULL;
    }
    void *rep = NULL;
    pipe_guard g;
    pipe_guard_on(&g);
    if (redisGetReply(r->ctx, &rep) != REDIS_OK)
        rep = NULL;
    pipe_guard_off(&g, rep == NULL);
    return check_reply(r, rep, err);
}

int sq_redis_pipe_drain(sq_redis *r, int n, redisReply **last, sq_error *err)
{
    int rc = 0;
    if (last != NULL)
        *last = NULL;
    for (int i = 0; i < n; i++) {
        redisReply *rep = sq_redis_pipe_reply(r, err);
        if (rep == NULL) {
            rc = -1;
            if (!sq_redis_is_connected(r))
                break;
        } else if (last != NULL && i == n - 1) {
            *last = rep;
        } else {
            freeReplyObject(rep);
        }
    }
    return rc;
}

static int load_script(sq_redis *r, sq_script *s, sq_error *err)
{
    redisReply *rep = sq_redis_cmd(r, err, "SCRIPT LOAD %s", s->source);
    if (rep == NULL)
        return -1;
    int rc = -1;
    if (rep->type == REDIS_REPLY_STRING && rep->len == 40) {
        pthread_mutex_lock(&script_lock);
        memcpy(s->sha, rep->str, 40);
        s->sha[40] = '\0';
        pthread_mutex_unlock(&script_lock);
        rc = 0;
    } else {
        sq__error_set(err, SQ_EREDIS, "%s: SCRIPT LOAD: unexpected reply", r->display);
    }
    freeReplyObject(rep);
    return rc;
}

redisReply *sq_redis_eval(sq_redis *r, sq_script *s, int nkeys, int argc, const char **argv,
                          const size_t *lens, sq_error *err)
{
    /* As many arguments as the caller has (a fetch passes some per queue,
     * and a user may list hundreds of queues): no fixed cap. */
    if (argc < 0 || nkeys < 0 || nkeys > argc) {
        sq__error_set(err, SQ_EINVAL, "script called with %d keys of %d arguments", nkeys, argc);
        return NULL;
    }
    const char **av = malloc(((size_t)argc + 3) * sizeof *av);
    size_t *al = malloc(((size_t)argc + 3) * sizeof *al);
    if (av == NULL || al == NULL) {
        free(av), free(al);
        sq__error_set(err, SQ_ENOMEM, "out of memory calling a script with %d arguments", argc);
        return NULL;
    }
    char nk[16];
    char sha[41];
    redisReply *rep = NULL;
    for (int attempt = 0; attempt < 2; attempt++) {
        pthread_mutex_lock(&script_lock);
        memcpy(sha, s->sha, sizeof sha);
        pthread_mutex_unlock(&script_lock);
        if (sha[0] == '\0') {
            if (load_script(r, s, err) != 0)
                goto out;
            continue;
        }
        snprintf(nk, sizeof nk, "%d", nkeys);
        av[0] = "EVALSHA";
        al[0] = 7;
        av[1] = sha;
        al[1] = 40;
        av[2] = nk;
        al[2] = strlen(nk);
        for (int i = 0; i < argc; i++) {
            av[i + 3] = argv[i];
            al[i + 3] = lens ? lens[i] : strlen(argv[i]);
        }
        sq_error local = {0};
        rep = sq_redis_argv(r, argc + 3, av, al, 0, &local);
        if (rep != NULL)
            goto out;
        if (!sq_redis_error_is(&local, "NOSCRIPT") || attempt == 1) {
            sq__error_set(err, local.code, "%s", local.message);
            goto out;
        }
        if (load_script(r, s, err) != 0)
            goto out;
    }
    sq__error_set(err, SQ_EREDIS, "%s: script could not be loaded", r->display);
out:
    free(av);
    free(al);
    return rep;
}

bool sq_redis_info_field(const char *info, const char *field, char *out, size_t size)
{
    size_t n = strlen(field);
    for (const char *p = info; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, field, n) == 0 && p[n] == ':') {
            size_t len = strcspn(p + n + 1, "\r\n");
            snprintf(out, size, "%.*s", (int)len, p + n + 1);
            return true;
        }
    }
    return false;
}

bool sq_redis_version_at_least(const char *version, long major, long minor)
{
    char *end;
    long ma = strtol(version, &end, 10);
    long mi = *end == '.' ? strtol(end + 1, NULL, 10) : 0;
    return ma > major || (ma == major && mi >= minor);
}

bool sq_redis_error_is(const sq_error *err, const char *prefix)
{
    return err != NULL && err->code == SQ_EREDIS &&
           strncmp(err->message, prefix, strlen(prefix)) == 0;
}

double sq_redis_backoff(unsigned attempt)
{
    double cap = 0.1;
    for (unsigned i = 0; i < attempt && cap < 5.0; i++)
        cap *= 2;
    if (cap > 5.0)
        cap = 5.0;
    /* full jitter, but never a busy loop */
    double j = (double)sq__rand(1000, NULL) / 1000.0;
    double d = cap * j;
    return d < 0.05 ? 0.05 : d;
}
