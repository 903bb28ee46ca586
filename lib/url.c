/*
 * url.c: Redis URLs, as Sidekiq's REDIS_URL / REDIS_PROVIDER give them.
 *
 * redis://[[user][:pass]@]host[:port][/db][?db=N], rediss://... (TLS),
 * redis://[::1]:6379, unix://[[user][:pass]@]/path/to.sock[?db=N]. The user
 * info runs to the LAST '@' so that an unencoded '@' or '/' in a password still parses, and the
 * redactor uses the same rule, so what parses as a password is what is
 * hidden. As in redis-client (Sidekiq 7), user info without a ':' is a
 * password: redis://secret@host. Also the TLS and sentinel options that
 * travel with a URL (url.h), and the SQUIRE_REDIS_* variables that set
 * them. Pure: no I/O, no globals.
 */
#include "url.h"

#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "redact.h"


static int url_error(const char *url, const char *problem, sq_error *err)
{
    char *safe = sq_redis_url_redact(url);
    char quoted[256];
    sq__error_set(err, SQ_ECONFIG, "invalid Redis URL %s: %s",
                  safe ? sq__quote(safe, strlen(safe), quoted, sizeof quoted) : "(URL)", problem);
    free(safe);
    return -1;
}

static int hex(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* Percent-decode s[0..n) into a new string; NULL for bad escapes or a NUL. */
static char *decode(const char *s, size_t n, bool *bad)
{
    char *out = malloc(n + 1);
    size_t o = 0;
    for (size_t i = 0; out != NULL && i < n; i++) {
        int hi, lo;
        if (s[i] != '%') {
            out[o++] = s[i];
        } else if (i + 2 < n && (hi = hex(s[i + 1])) >= 0 && (lo = hex(s[i + 2])) >= 0 &&
                   (hi | lo) != 0) {
            out[o++] = (char)(hi * 16 + lo);
            i += 2;
        } else {
            free(out);
            *bad = true;
            return NULL;
        }
    }
    if (out != NULL)
        out[o] = '\0';
    return out;
}

/* Strict non-negative decimal in [lo, hi]; s[0..n). */
static int parse_uint(const char *s, size_t n, long lo, long hi, int *out)
{
    if (n == 0 || n > 10 || strspn(s, "0123456789") < n)
        return -1;
    char digits[16];
    memcpy(digits, s, n);
    digits[n] = '\0';
    char *end;
    errno = 0;
    long v = strtol(digits, &end, 10);
    if (errno != 0 || *end != '\0' || v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

static int parse_userinfo(const char *url, const char *s, size_t n, sq_redis_url *out,
                          sq_error *err)
{
    const char *colon = memchr(s, ':', n);
    const char *pass = colon != NULL ? colon + 1 : s;
    size_t user_len = colon != NULL ? (size_t)(colon - s) : 0;
    size_t pass_len = n - (size_t)(pass - s);
    bool bad = false;
    if (user_len > 0)
        out->username = decode(s, user_len, &bad);
    if (pass_len > 0 && !bad)
        out->password = decode(pass, pass_len, &bad);
    if (bad)
        return url_error(url, "bad percent-encoding in the user info", err);
    if ((user_len > 0 && out->username == NULL) || (pass_len > 0 && out->password == NULL)) {
        sq__error_set(err, SQ_ENOMEM, "out of memory");
        return -1;
    }
    return 0;
}

/* "?db=N" (the only parameter squire knows). */
static int parse_query(const char *url, const char *q, sq_redis_url *out, sq_error *err)
{
    while (q != NULL && *q != '\0') {
        const char *amp = strchr(q, '&');
        size_t n = amp != NULL ? (size_t)(amp - q) : strlen(q);
        if (n < 3 || memcmp(q, "db=", 3) != 0)
            return url_error(url, "unsupported query parameter (only db=N is known)", err);
        if (parse_uint(q + 3, n - 3, 0, INT_MAX, &out->db) < 0)
            return url_error(url, "db must be a non-negative integer", err);
        q = amp != NULL ? amp + 1 : NULL;
    }
    return 0;
}

static int parse_host_port(const char *url, const char *s, size_t n, sq_redis_url *out,
                           sq_error *err)
{
    const char *host = s, *port = NULL;
    size_t host_len;
    if (n > 0 && s[0] == '[') {
        const char *close = memchr(s, ']', n);
        if (close == NULL || close == s + 1)
            return url_error(url, "bad IPv6 address (expected [address])", err);
        host = s + 1;
        host_len = (size_t)(close - host);
        if (close + 1 < s + n && close[1] != ':')
            return url_error(url, "unexpected text after the IPv6 address", err);
        port = close + 1 < s + n ? close + 2 : NULL;
    } else {
        const char *colon = memchr(s, ':', n);
        host_len = colon != NULL ? (size_t)(colon - s) : n;
        port = colon != NULL ? colon + 1 : NULL;
        if (port != NULL && memchr(port, ':', (size_t)(s + n - port)) != NULL)
            return url_error(url, "an IPv6 address must be written in brackets", err);
    }
    if (host_len == 0 || strcspn(host, " \t\r\n%@/?#") < host_len)
        return url_error(url, "missing or bad host", err);
    if (port != NULL && parse_uint(port, (size_t)(s + n - port), 1, 65535, &out->port) < 0)
        return url_error(url, "port must be an integer from 1 to 65535", err);
    out->host = strndup(host, host_len);
    if (out->host == NULL) {
        sq__error_set(err, SQ_ENOMEM, "out of memory");
        return -1;
    }
    return 0;
}

/* After "redis://" and the user info: host[:port][/db][?query]. */
static int parse_tcp(const char *url, const char *s, sq_redis_url *out, sq_error *err)
{
    const char *query = strchr(s, '?');
    size_t len = query != NULL ? (size_t)(query - s) : strlen(s);
    const char *slash = memchr(s, '/', len);
    size_t hp = slash != NULL ? (size_t)(slash - s) : len;
    if (parse_host_port(url, s, hp, out, err) < 0)
        return -1;
    if (slash != NULL && slash + 1 < s + len &&
        parse_uint(slash + 1, len - hp - 1, 0, INT_MAX, &out->db) < 0)
        return url_error(url, "db must be a non-negative integer", err);
    return parse_query(url, query != NULL ? query + 1 : NULL, out, err);
}

/* After "unix://" and the user info: /path[?db=N]. */
static int parse_unix(const char *url, const char *s, sq_redis_url *out, sq_error *err)
{
    const char *query = strchr(s, '?');
    size_t len = query != NULL ? (size_t)(query - s) : strlen(s);
    if (len < 2 || s[0] != '/')
        return url_error(url, "expected unix:///absolute/path.sock", err);
    out->path = strndup(s, len);
    if (out->path == NULL) {
        sq__error_set(err, SQ_ENOMEM, "out of memory");
        return -1;
    }
    return parse_query(url, query != NULL ? query + 1 : NULL, out, err);
}

static int parse(const char *url, sq_redis_url *out, sq_error *err)
{
    bool is_unix = strncmp(url, "unix://", 7) == 0;
    out->tls = strncmp(url, "rediss://", 9) == 0;
    if (!is_unix && !out->tls && strncmp(url, "redis://", 8) != 0)
        return url_error(url, "expected redis://host[:port][/db], rediss:// (TLS) or unix:///path",
                         err);
    if (strpbrk(url, " \t\r\n") != NULL)
        return url_error(url, "contains whitespace", err);
    const char *rest = url + (is_unix ? 7 : out->tls ? 9 : 8);
    const char *at = strrchr(rest, '@');
    if (at != NULL) {
        if (parse_userinfo(url, rest, (size_t)(at - rest), out, err) < 0)
            return -1;
        rest = at + 1;
    }
    return is_unix ? parse_unix(url, rest, out, err) : parse_tcp(url, rest, out, err);
}

int sq_redis_url_parse(const char *url, sq_redis_url *out, sq_error *err)
{
    memset(out, 0, sizeof *out);
    out->port = 6379;
    int rc;
    if (url == NULL || url[0] == '\0') {
        out->host = sq__strdup("localhost");
        rc = out->host != NULL ? 0 : -1;
        if (rc < 0)
            sq__error_set(err, SQ_ENOMEM, "out of memory");
    } else {
        rc = parse(url, out, err);
    }
    if (rc < 0)
        sq_redis_url_destroy(out);
    return rc;
}

static void free_secret(char *s)
{
    if (s != NULL)
        explicit_bzero(s, strlen(s));
    free(s);
}

/* The TLS and sentinel options only. */
static void options_destroy(sq_redis_url *u)
{
    free(u->tls_ca_file);
    free(u->tls_ca_path);
    free(u->tls_cert);
    free(u->tls_key);
    free(u->tls_server_name);
    for (size_t i = 0; i < u->nsentinels; i++)
        free(u->sentinels[i]);
    free(u->sentinels);
    free(u->sentinel_username);
    free_secret(u->sentinel_password);
    u->tls_no_verify = false;
    u->tls_ca_file = u->tls_ca_path = u->tls_cert = u->tls_key = u->tls_server_name = NULL;
    u->sentinels = NULL;
    u->nsentinels = 0;
    u->sentinel_username = u->sentinel_password = NULL;
}

void sq_redis_url_destroy(sq_redis_url *u)
{
    if (u == NULL)
        return;
    free(u->host);
    free(u->path);
    free(u->username);
    free_secret(u->password);
    options_destroy(u);
    memset(u, 0, sizeof *u);
}

/* *dst = copy of src; false when out of memory. */
static bool dup_field(char **dst, const char *src)
{
    *dst = sq__strdup(src);
    return src == NULL || *dst != NULL;
}

static bool copy_options(sq_redis_url *dst, const sq_redis_url *src)
{
    dst->tls_no_verify = src->tls_no_verify;
    bool ok = dup_field(&dst->tls_ca_file, src->tls_ca_file) &&
              dup_field(&dst->tls_ca_path, src->tls_ca_path) &&
              dup_field(&dst->tls_cert, src->tls_cert) && dup_field(&dst->tls_key, src->tls_key) &&
              dup_field(&dst->tls_server_name, src->tls_server_name) &&
              dup_field(&dst->sentinel_username, src->sentinel_username) &&
              dup_field(&dst->sentinel_password, src->sentinel_password);
    if (ok && src->nsentinels > 0) {
        dst->sentinels = calloc(src->nsentinels, sizeof *dst->sentinels);
        ok = dst->sentinels != NULL;
        for (size_t i = 0; ok && i < src->nsentinels; i++, dst->nsentinels++)
            ok = dup_field(&dst->sentinels[i], src->sentinels[i]);
    }
    return ok;
}

int sq_redis_url_copy(sq_redis_url *dst, const sq_redis_url *src)
{
    memset(dst, 0, sizeof *dst);
    dst->port = src->port;
    dst->db = src->db;
    dst->tls = src->tls;
    if (dup_field(&dst->host, src->host) && dup_field(&dst->path, src->path) &&
        dup_field(&dst->username, src->username) && dup_field(&dst->password, src->password) &&
        copy_options(dst, src))
        return 0;
    sq_redis_url_destroy(dst);
    return -1;
}

int sq_redis_url_set_options(sq_redis_url *dst, const sq_redis_url *opts, sq_error *err)
{
    options_destroy(dst);
    if (copy_options(dst, opts))
        return 0;
    options_destroy(dst);
    sq__error_set(err, SQ_ENOMEM, "out of memory");
    return -1;
}

int sq_redis_sentinel_parse(const char *text, char **host, int *port)
{
    *host = NULL;
    *port = 26379;
    if (text == NULL || text[0] == '\0' || strpbrk(text, " \t\r\n/@?#") != NULL)
        return -1;
    size_t n = strlen(text);
    const char *h = text, *p = NULL;
    size_t hl;
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (close == NULL || close == text + 1 || (close[1] != '\0' && close[1] != ':'))
            return -1;
        h = text + 1;
        hl = (size_t)(close - h);
        p = close[1] == ':' ? close + 2 : NULL;
    } else {
        const char *colon = strchr(text, ':');
        if (colon != NULL && strchr(colon + 1, ':') != NULL)
            return -1;
        hl = colon != NULL ? (size_t)(colon - text) : n;
        p = colon != NULL ? colon + 1 : NULL;
    }
    if (hl == 0 || (p != NULL && parse_uint(p, strlen(p), 1, 65535, port) < 0))
        return -1;
    *host = strndup(h, hl);
    return *host != NULL ? 0 : -1;
}

int sq_redis_url_check_options(const sq_redis_url *u, const char *where, sq_error *err)
{
    /* A path with line breaks is the PEM text itself (a config var holding
     * the key): refused without showing it, since a key is a secret. */
    const struct {
        const char *name, *value;
    } paths[] = {{"ssl_ca_file", u->tls_ca_file},
                 {"ssl_ca_path", u->tls_ca_path},
                 {"ssl_cert", u->tls_cert},
                 {"ssl_key", u->tls_key}};
    for (size_t i = 0; i < SQ_ARRAY_LEN(paths); i++) {
        if (paths[i].value != NULL && strpbrk(paths[i].value, "\r\n") != NULL) {
            sq__error_set(err, SQ_ECONFIG,
                          "%s: %s: expected the path of a PEM file, got text with line breaks "
                          "(not shown)",
                          where, paths[i].name);
            return -1;
        }
    }
    if ((u->tls_cert == NULL) != (u->tls_key == NULL)) {
        sq__error_set(err, SQ_ECONFIG, "%s: ssl_cert and ssl_key go together (got only %s)", where,
                      u->tls_cert != NULL ? "ssl_cert" : "ssl_key");
        return -1;
    }
    if (u->nsentinels > 0 && u->path != NULL) {
        sq__error_set(err, SQ_ECONFIG,
                      "%s: sentinels: the URL's host names the master, and a unix:// URL has "
                      "none (use redis://<master name>)",
                      where);
        return -1;
    }
    for (size_t i = 0; i < u->nsentinels; i++) {
        char *host;
        int port;
        if (sq_redis_sentinel_parse(u->sentinels[i], &host, &port) < 0) {
            char quoted[128];
            sq__error_set(
                err, SQ_ECONFIG, "%s: sentinels: expected host[:port], got %s", where,
                sq__quote(u->sentinels[i], strlen(u->sentinels[i]), quoted, sizeof quoted));
            return -1;
        }
        free(host);
    }
    return 0;
}

/* The SQUIRE_REDIS_* variables and where each goes. */
static const struct {
    const char *name;
    size_t offset;
} env_strings[] = {
    {"SQUIRE_REDIS_SSL_CA_FILE", offsetof(sq_redis_url, tls_ca_file)},
    {"SQUIRE_REDIS_SSL_CA_PATH", offsetof(sq_redis_url, tls_ca_path)},
    {"SQUIRE_REDIS_SSL_CERT", offsetof(sq_redis_url, tls_cert)},
    {"SQUIRE_REDIS_SSL_KEY", offsetof(sq_redis_url, tls_key)},
    {"SQUIRE_REDIS_SSL_SERVER_NAME", offsetof(sq_redis_url, tls_server_name)},
    {"SQUIRE_REDIS_SENTINEL_USERNAME", offsetof(sq_redis_url, sentinel_username)},
    {"SQUIRE_REDIS_SENTINEL_PASSWORD", offsetof(sq_redis_url, sentinel_password)},
};

int sq_redis_verify_mode_parse(const char *text, bool *no_verify)
{
    if (text != NULL && (strcasecmp(text, "none") == 0 || strcmp(text, "VERIFY_NONE") == 0 ||
                         strcmp(text, "OpenSSL::SSL::VERIFY_NONE") == 0)) {
        *no_verify = true;
        return 0;
    }
    if (text != NULL && (strcasecmp(text, "peer") == 0 || strcmp(text, "VERIFY_PEER") == 0 ||
                         strcmp(text, "OpenSSL::SSL::VERIFY_PEER") == 0)) {
        *no_verify = false;
        return 0;
    }
    return -1;
}

/* Replace the sentinel list with the comma-separated list text. */
static int set_sentinel_list(sq_redis_url *u, const char *text, sq_error *err)
{
    for (size_t i = 0; i < u->nsentinels; i++)
        free(u->sentinels[i]);
    free(u->sentinels);
    u->sentinels = NULL;
    u->nsentinels = 0;
    size_t cap = 1;
    for (const char *p = text; *p; p++)
        cap += *p == ',';
    u->sentinels = calloc(cap, sizeof *u->sentinels);
    if (u->sentinels == NULL)
        goto oom;
    for (const char *p = text; *p != '\0';) {
        size_t n = strcspn(p, ",");
        while (n > 0 && (*p == ' ' || *p == '\t'))
            p++, n--;
        size_t m = n;
        while (m > 0 && (p[m - 1] == ' ' || p[m - 1] == '\t'))
            m--;
        if (m > 0 && (u->sentinels[u->nsentinels++] = strndup(p, m)) == NULL)
            goto oom;
        p += n;
        if (*p == ',')
            p++;
    }
    return 0;
oom:
    sq__error_set(err, SQ_ENOMEM, "out of memory");
    return -1;
}

int sq_redis_url_apply_env(sq_redis_url *u, sq_getenv_fn getenv_fn, sq_error *err)
{
    sq_getenv_fn get = getenv_fn != NULL ? getenv_fn : sq__getenv;
    const char *v = get("SQUIRE_REDIS_SSL_VERIFY_MODE");
    if (v != NULL && v[0] != '\0' && sq_redis_verify_mode_parse(v, &u->tls_no_verify) < 0) {
        char quoted[128];
        sq__error_set(err, SQ_ECONFIG,
                      "SQUIRE_REDIS_SSL_VERIFY_MODE: expected none or peer, got %s",
                      sq__quote(v, strlen(v), quoted, sizeof quoted));
        return -1;
    }
    for (size_t i = 0; i < SQ_ARRAY_LEN(env_strings); i++) {
        v = get(env_strings[i].name);
        if (v == NULL || v[0] == '\0')
            continue;
        char **field = (char **)(void *)((char *)u + env_strings[i].offset);
        char *copy = sq__strdup(v);
        if (copy == NULL) {
            sq__error_set(err, SQ_ENOMEM, "out of memory");
            return -1;
        }
        free_secret(*field);
        *field = copy;
    }
    v = get("SQUIRE_REDIS_SENTINELS");
    if (v != NULL && v[0] != '\0' && set_sentinel_list(u, v, err) < 0)
        return -1;
    return sq_redis_url_check_options(u, "SQUIRE_REDIS_*", err);
}

int sq_redis_url_from_environment(const char *url, sq_redis_url *out, sq_error *err)
{
    const char *u = url;
    memset(out, 0, sizeof *out);
    if (u == NULL && sq_redis_url_from_env(NULL, &u, err) != 0)
        return -1;
    if (sq_redis_url_parse(u, out, err) != 0)
        return -1;
    if (sq_redis_url_apply_env(out, NULL, err) != 0) {
        sq_redis_url_destroy(out);
        return -1;
    }
    return 0;
}

int sq_redis_url_from_env(sq_getenv_fn getenv_fn, const char **url, sq_error *err)
{
    sq_getenv_fn get = getenv_fn != NULL ? getenv_fn : sq__getenv;
    const char *provider = get("REDIS_PROVIDER");
    *url = NULL;
    if (provider != NULL && provider[0] != '\0') {
        if (strchr(provider, ':') != NULL) {
            sq__error_set(err, SQ_ECONFIG,
                          "REDIS_PROVIDER should be set to the name of the variable that holds "
                          "the Redis URL (e.g. REDISTOGO_URL), not to the URL itself");
            return -1;
        }
        const char *v = get(provider);
        if (v != NULL && v[0] != '\0') {
            *url = v;
            return 0;
        }
    }
    const char *v = get("REDIS_URL");
    *url = v != NULL && v[0] != '\0' ? v : NULL;
    return 0;
}
