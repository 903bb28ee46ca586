#ifndef SQ_PGCONNINFO_H
#define SQ_PGCONNINFO_H

/*
 * pgconninfo.h: the PostgreSQL connection string as text (pgconninfo.c):
 * the secrets in it, and messages scrubbed of them. Pure: no libpq, no I/O.
 */
#include <stddef.h>

/* What a secret is replaced by (the same word Redis URLs use). */
#define SQ_PG_REDACTED "REDACTED"
/* PostgreSQL keeps the first NAMEDATALEN - 1 bytes of application_name. */
#define SQ_PG_APP_NAME_MAX 63

/* The passwords a connection string carries, each as written and decoded:
 * URL userinfo, `password=` in a URL query or a keyword/value string
 * (quoted or not, its name percent-encoded or not), `sslpassword=`. Found
 * leniently, so a string libpq cannot parse still gives up its secrets, and
 * however many there are. Owns copies; destroy wipes them. */
typedef struct sq_pg_secrets {
    char **s;
    int n, cap;
} sq_pg_secrets;

void sq_pg_secrets_init(sq_pg_secrets *s, const char *conninfo);
void sq_pg_secrets_destroy(sq_pg_secrets *s);

/* in, copied to out[size] with every secret of s (may be NULL) replaced by
 * REDACTED, and whatever looks like one too: the password of any
 * scheme://user:password@ and the value after any `password=`. Always
 * NUL-terminates; out may not overlap in. */
void sq_pg_scrub(const sq_pg_secrets *s, const char *in, char *out, size_t size);

/* application_name for a pool: the URL's own name (may be NULL or "") then
 * squire's name, space-separated, in at most SQ_PG_APP_NAME_MAX bytes. When
 * squire's name is an identity host:pid:nonce that does not fit, the host is
 * cut first, then the nonce, never the pid; the URL's name is cut to leave
 * squire's part room. out must hold SQ_PG_APP_NAME_MAX + 1 bytes. */
void sq_pg_app_name(const char *url_name, const char *name, char out[SQ_PG_APP_NAME_MAX + 1]);

#endif
