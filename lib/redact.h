#ifndef SQ_REDACT_H
#define SQ_REDACT_H

#include <stddef.h>

/* A malloc'd copy of url with any password replaced by "REDACTED". */
char *sq_redis_url_redact(const char *url);

/* `text` quoted for a message: the passwords of a URL or connection string
 * in it REDACTED, escaped control characters, long values cut to a short
 * prefix with "...". Returns buf. */
const char *sq__quote(const char *text, size_t len, char *buf, size_t size);

#endif
