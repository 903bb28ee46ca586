/*
 * redact.c: secrets kept out of what people read. A Redis URL with its
 * password REDACTED, and any text quoted for a message (a config value, a
 * flag, a URL) with the passwords of a URL or connection string in it
 * REDACTED (pgconninfo.c), control characters escaped and long values cut.
 * Pure: no I/O, no globals.
 */
#include "redact.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "pgconninfo.h"

#define REDACTED "REDACTED"

char *sq_redis_url_redact(const char *url)
{
    if (url == NULL)
        return sq__strdup("");
    const char *scheme = strstr(url, "://");
    const char *start = scheme != NULL ? scheme + 3 : url;
    const char *at = strrchr(start, '@');
    if (at == NULL || at == start)
        return sq__strdup(url);
    const char *colon = memchr(start, ':', (size_t)(at - start));
    const char *pass = colon != NULL ? colon + 1 : start;
    if (pass == at)
        return sq__strdup(url); /* "user:@host": no password */
    size_t head = (size_t)(pass - url), tail = strlen(at);
    char *out = malloc(head + sizeof REDACTED - 1 + tail + 1);
    if (out == NULL)
        return NULL;
    memcpy(out, url, head);
    memcpy(out + head, REDACTED, sizeof REDACTED - 1);
    memcpy(out + head + sizeof REDACTED - 1, at, tail + 1);
    return out;
}

/* text[0, len) with the passwords of any URL or connection string in it
 * REDACTED (pgconninfo.c), malloc'd; NULL when out of memory. */
static char *without_passwords(const char *text, size_t len, size_t *out_len)
{
    char *raw = malloc(len + 1);
    if (raw == NULL)
        return NULL;
    memcpy(raw, text, len);
    raw[len] = '\0';
    if (strlen(raw) != len) { /* a NUL inside: shown escaped, cut there */
        *out_len = strlen(raw);
        return raw;
    }
    sq_pg_secrets secrets;
    sq_pg_secrets_init(&secrets, raw);
    size_t cap = len * sizeof SQ_PG_REDACTED + 1;
    char *safe = malloc(cap);
    if (safe != NULL)
        sq_pg_scrub(&secrets, raw, safe, cap);
    sq_pg_secrets_destroy(&secrets);
    memset(raw, 0, len);
    free(raw);
    *out_len = safe ? strlen(safe) : 0;
    return safe;
}

const char *sq__quote(const char *value, size_t value_len, char *buf, size_t size)
{
    static const size_t shown = 40;
    size_t o = 0, len = 0;
    if (size < 16)
        return "";
    char *text = without_passwords(value, value_len, &len);
    if (text == NULL)
        return "(value withheld: out of memory)";
    /* A URL with a password (scheme://user:pass@host, user:pass@host) is
     * shown with the password REDACTED, whatever key it was given for. */
    const char *at = memrchr(text, '@', len);
    if (at != NULL &&
        (memmem(text, len, "://", 3) != NULL || memchr(text, ':', (size_t)(at - text)) != NULL)) {
        char *safe = sq_redis_url_redact(text);
        free(text);
        if (safe == NULL)
            return "(not shown)";
        text = safe;
        len = strlen(safe);
    }
    buf[o++] = '"';
    for (size_t i = 0; i < len && i < shown && o + 8 < size; i++) {
        unsigned char ch = (unsigned char)text[i];
        if (ch == '"' || ch == '\\')
            o += (size_t)snprintf(buf + o, size - o, "\\%c", ch);
        else if (ch < 0x20 || ch == 0x7f)
            o += (size_t)snprintf(buf + o, size - o, "\\x%02x", ch);
        else
            buf[o++] = (char)ch;
    }
    buf[o++] = '"';
    if (len > shown && o + 4 < size)
        o += (size_t)snprintf(buf + o, size - o, "...");
    buf[o] = '\0';
    free(text);
    return buf;
}
