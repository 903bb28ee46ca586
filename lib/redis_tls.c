/*
 * redis_tls.c: TLS for rediss:// connections: one SSL_CTX per set of
 * options, shared by the process, and the handshake on a fresh socket with
 * the server's name checked.
 */
#include "redis_internal.h"

#include <arpa/inet.h>
#include <hiredis/hiredis_ssl.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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
                        const char *errstr, sq_error *err)
{
    long v = SSL_get_verify_result(ssl);
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

bool sq__redis_tls_refused(char *buf, size_t size)
{
    unsigned long e = ERR_peek_last_error();
    if (ERR_GET_LIB(e) != ERR_LIB_SSL)
        return false;
    switch (ERR_GET_REASON(e)) {
    case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
    case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_REVOKED:
    case SSL_R_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE:
    case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
    case SSL_R_TLSV1_ALERT_ACCESS_DENIED:
        break;
    default:
        return false;
    }
    const char *why = ERR_reason_error_string(e);
    snprintf(buf, size, "%s (%s); set ssl_cert and ssl_key", SQ__TLS_CERT_REFUSED,
             why ? why : "alert");
    return true;
}

/* TLS handshake on a connected context, checking the certificate and the
 * server's name (hiredis itself does not check names), done by deadline. */
int sq__redis_tls_start(sq_redis *r, redisContext *c, const char *host, const char *where,
                        double deadline, sq_error *err)
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
    /* c is non-blocking (connecting): hiredis starts the handshake and
     * returns; it is driven here, each wait for the time left. */
    if (redisInitiateSSL(c, ssl) != REDIS_OK) {
        tls_failure(r, ssl, name, where, strstr(c->errstr, "(null)") ? "" : c->errstr, err);
        SSL_free(ssl);
        return -1;
    }
    for (;;) { /* c owns ssl now */
        ERR_clear_error();
        errno = 0;
        int rc = SSL_connect(ssl);
        if (rc == 1)
            return 0;
        int e = SSL_get_error(ssl, rc);
        if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
            char buf[256];
            const char *why = e != SSL_ERROR_SYSCALL ? ssl_reason(buf, sizeof buf)
                              : errno != 0           ? strerror(errno)
                                                     : "the server closed the connection";
            tls_failure(r, ssl, name, where, why, err);
            return -1;
        }
        if (sq__redis_wait(c, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline) != 0) {
            sq__error_set(err, SQ_EREDIS,
                          "TLS to %s%s: no answer within the %g s connect timeout (timed out in "
                          "the handshake; the server or the network hangs, or answers too slowly)",
                          r->display, where, r->connect_wait > 0 ? r->connect_wait : r->timeout);
            return -1;
        }
    }
}
