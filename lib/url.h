/*
 * url.h: a Redis address as Sidekiq's REDIS_URL / REDIS_PROVIDER give it,
 * with the TLS and sentinel options that travel with it (url.c). Pure: no
 * I/O, no globals; the environment is read through a caller-given function.
 */
#ifndef SQ_URL_H
#define SQ_URL_H

#include <stdbool.h>
#include <stddef.h>

#include "common.h"

typedef struct sq_redis_url {
    char *host;      /* NULL for a unix socket; the master's name with sentinels */
    int port;        /* default 6379 */
    char *path;      /* unix socket path, or NULL */
    char *username;  /* NULL unless given (Redis 6 ACL user) */
    char *password;  /* NULL unless given; percent-decoded */
    int db;          /* default 0 */
    /* The options below come from the config (redis:) and SQUIRE_REDIS_*
     * variables, not from the URL text. All zero is the safe default. */
    bool tls;              /* rediss:// */
    bool tls_no_verify;    /* ssl_verify_mode none: no certificate or name check */
    char *tls_ca_file;     /* PEM CA bundle (else the system store) */
    char *tls_ca_path;     /* directory of hashed CA certificates */
    char *tls_cert;        /* client certificate (PEM) */
    char *tls_key;         /* its private key (PEM) */
    char *tls_server_name; /* SNI and the name checked (else the host) */
    char **sentinels;      /* "host[:port]"; when any, host names the master */
    size_t nsentinels;
    char *sentinel_username;
    char *sentinel_password;
} sq_redis_url;

/* Parse redis://[[user][:pass]@]host[:port][/db], rediss://... (TLS),
 * redis://[::1]:6379, unix:///path/to.sock[?db=N]. NULL or "" means
 * redis://localhost:6379/0. Returns 0, or -1 with SQ_ECONFIG and a message
 * that never shows the password. */
int sq_redis_url_parse(const char *url, sq_redis_url *out, sq_error *err);
void sq_redis_url_destroy(sq_redis_url *u);
/* Deep copy of src into dst (dst is overwritten). -1 when out of memory. */
int sq_redis_url_copy(sq_redis_url *dst, const sq_redis_url *src);
/* Replace dst's TLS and sentinel options (not its address) with opts's. */
int sq_redis_url_set_options(sq_redis_url *dst, const sq_redis_url *opts, sq_error *err);
/* Override the options from SQUIRE_REDIS_SSL_VERIFY_MODE, _SSL_CA_FILE,
 * _SSL_CA_PATH, _SSL_CERT, _SSL_KEY, _SSL_SERVER_NAME, _SENTINELS
 * ("host:port,host:port"), _SENTINEL_USERNAME, _SENTINEL_PASSWORD. */
int sq_redis_url_apply_env(sq_redis_url *u, sq_getenv_fn getenv_fn, sq_error *err);
/* Cross-option checks (a certificate needs its key; a sentinel address
 * parses). where prefixes the message. */
int sq_redis_url_check_options(const sq_redis_url *u, const char *where, sq_error *err);
/* "host[:port]" (port default 26379, [v6] allowed) into host (malloc'd), port. */
int sq_redis_sentinel_parse(const char *text, char **host, int *port);
/* What clients without a config file use (the C client, squirectl): url, or
 * else the environment's URL, parsed, with the SQUIRE_REDIS_* options. */
int sq_redis_url_from_environment(const char *url, sq_redis_url *out, sq_error *err);

/* The URL the environment names: $REDIS_PROVIDER holds the NAME of the
 * variable with the URL (a value containing ':' is an error), else $REDIS_URL.
 * Returns 0 and sets *url (borrowed from the environment, may be NULL), or -1
 * with SQ_ECONFIG. */
int sq_redis_url_from_env(sq_getenv_fn getenv_fn, const char **url, sq_error *err);

/* none / peer (also VERIFY_NONE, OpenSSL::SSL::VERIFY_NONE, ...) into *no_verify. */
int sq_redis_verify_mode_parse(const char *text, bool *no_verify);

#endif
