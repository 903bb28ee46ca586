/*
 * pgconninfo.c: secrets in a PostgreSQL connection string, and messages
 * scrubbed of them.
 *
 * libpq's parse errors quote the failing token or the whole URI (`invalid
 * percent-encoded token: "PW%zz"`, `... in URI: "postgresql://app:PW@[..."`),
 * so nothing libpq says about a connection may be shown as it is. The
 * secrets are found by a lenient scan of the string itself (libpq cannot
 * tell us the password of a URL it cannot parse), then replaced wherever
 * they appear, raw or percent-decoded; anything else shaped like a password
 * (user:password@ after a scheme, `password=value`) goes too.
 */
#include "pgconninfo.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- finding the secrets -------------------------------------------------- */

static void add(sq_pg_secrets *s, const char *p, size_t len)
{
    if (len == 0)
        return;
    for (int i = 0; i < s->n; i++)
        if (strlen(s->s[i]) == len && memcmp(s->s[i], p, len) == 0)
            return;
    if (s->n == s->cap) {
        int cap = s->cap ? s->cap * 2 : 16;
        char **grown = realloc(s->s, (size_t)cap * sizeof *grown);
        if (grown == NULL)
            return;
        s->s = grown;
        s->cap = cap;
    }
    char *copy = malloc(len + 1);
    if (copy == NULL)
        return;
    memcpy(copy, p, len);
    copy[len] = '\0';
    s->s[s->n++] = copy;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)tolower((unsigned char)c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* p[0, len) %XX-decoded (bad escapes kept) into d (len + 1 bytes); the
 * decoded length. */
static size_t decode(const char *p, size_t len, char *d)
{
    size_t j = 0;
    for (size_t i = 0; i < len; i++) {
        if (p[i] == '%' && i + 2 < len && hexval(p[i + 1]) >= 0 && hexval(p[i + 2]) >= 0) {
            d[j++] = (char)(hexval(p[i + 1]) * 16 + hexval(p[i + 2]));
            i += 2;
        } else {
            d[j++] = p[i];
        }
    }
    d[j] = '\0';
    return j;
}

/* The value as written and, when it differs, %XX-decoded. */
static void add_decoded(sq_pg_secrets *s, const char *p, size_t len)
{
    add(s, p, len);
    char *d = malloc(len + 1);
    if (d == NULL)
        return;
    add(s, d, decode(p, len, d));
    memset(d, 0, len);
    free(d);
}

/* postgres[ql]://user:password@...: libpq ends the user info at the first
 * '@' (before any '/'); an unencoded '@', '/' or '?' in a password makes
 * the last '@' before the query (else the last at all) the end meant. Both
 * readings are kept. */
static void uri_password(sq_pg_secrets *s, const char *ci)
{
    const char *rest = NULL;
    if (strncmp(ci, "postgresql://", 13) == 0)
        rest = ci + 13;
    else if (strncmp(ci, "postgres://", 11) == 0)
        rest = ci + 11;
    if (rest == NULL)
        return;
    size_t span = strcspn(rest, "?");
    const char *first = memchr(rest, '@', strcspn(rest, "/")), *last = NULL;
    for (size_t i = 0; i < span; i++)
        if (rest[i] == '@')
            last = rest + i;
    if (last == NULL)
        last = strrchr(rest, '@');
    const char *ends[] = {first, last};
    for (size_t i = 0; i < 2; i++) {
        const char *colon = ends[i] ? memchr(rest, ':', (size_t)(ends[i] - rest)) : NULL;
        if (colon != NULL)
            add_decoded(s, colon + 1, (size_t)(ends[i] - colon - 1));
    }
    /* An unencoded '/' in the password, and no '@' before it: libpq takes
     * user:before-the-slash for host:port and the rest for the database
     * name, and quotes both in its errors. Both halves are secrets. */
    const char *slash = rest + strcspn(rest, "/");
    const char *colon = memchr(rest, ':', (size_t)(slash - rest));
    if (first == NULL && last != NULL && *slash == '/' && last > slash && colon != NULL) {
        add_decoded(s, colon + 1, (size_t)(slash - colon - 1));
        add_decoded(s, slash + 1, (size_t)(last - slash - 1));
    }
}

/* A URI's query parameters whose name, percent-decoded as libpq decodes
 * it, is [ssl]password (passw%6Frd=...): the value up to the next '&'. */
static void query_passwords(sq_pg_secrets *s, const char *ci)
{
    if (strncmp(ci, "postgresql://", 13) != 0 && strncmp(ci, "postgres://", 11) != 0)
        return;
    for (const char *p = strchr(ci, '?'); p != NULL; p = strchr(p, '&')) {
        p++;
        size_t pair = strcspn(p, "&"), name = strcspn(p, "=&");
        if (name >= pair)
            continue;
        char *key = malloc(name + 1);
        if (key == NULL)
            return;
        decode(p, name, key);
        if (strcasestr(key, "password") != NULL)
            add_decoded(s, p + name + 1, pair - name - 1);
        free(key);
    }
}

/* A keyword/value value at v as libpq reads it: quoted, up to the closing
 * quote, else up to whitespace; a backslash escapes the next character
 * either way (`password=a\ b` is "a b"). As written (and decoded) and as
 * read. */
static void add_kv_value(sq_pg_secrets *s, const char *v)
{
    bool quoted = *v == '\'';
    const char *start = v + quoted, *q = start;
    char *buf = malloc(strlen(start) + 1);
    size_t j = 0;
    for (; *q && (quoted ? *q != '\'' : !isspace((unsigned char)*q)); q++) {
        if (*q == '\\' && q[1])
            q++;
        if (buf)
            buf[j++] = *q;
    }
    add_decoded(s, start, (size_t)(q - start));
    if (buf) {
        add(s, buf, j);
        memset(buf, 0, j);
        free(buf);
    }
    /* Words after it up to the next key=value are the rest of a password
     * with a space left unquoted (password=ab cd) or a quote doubled as in
     * SQL ('ab''cd'): libpq quotes them as keywords it cannot parse. */
    for (q += quoted && *q == '\''; *q;) {
        q += strspn(q, " \t\r\n");
        size_t word = strcspn(q, " \t\r\n");
        if (word == 0 || memchr(q, '=', word) != NULL)
            break;
        add(s, q, word);
        q += word;
    }
}

/* Every `[ssl]password = value`: a URL query parameter or a keyword/value
 * pair, quoted or not. Unquoted, both readings are kept: to '&' and to
 * whitespace. */
static void keyword_passwords(sq_pg_secrets *s, const char *ci)
{
    for (const char *p = ci; (p = strcasestr(p, "password")) != NULL;) {
        p += 8;
        const char *v = p + strspn(p, " \t\r\n");
        if (*v != '=')
            continue;
        v++;
        v += strspn(v, " \t\r\n");
        add_kv_value(s, v);
        if (*v != '\'')
            add_decoded(s, v, strcspn(v, "& \t\r\n"));
    }
}

void sq_pg_secrets_init(sq_pg_secrets *s, const char *conninfo)
{
    memset(s, 0, sizeof *s);
    if (conninfo == NULL)
        return;
    uri_password(s, conninfo);
    query_passwords(s, conninfo);
    keyword_passwords(s, conninfo);
}

void sq_pg_secrets_destroy(sq_pg_secrets *s)
{
    for (int i = 0; i < s->n; i++) {
        memset(s->s[i], 0, strlen(s->s[i]));
        free(s->s[i]);
    }
    free(s->s);
    s->s = NULL;
    s->n = s->cap = 0;
}

/* ---- scrubbing -------------------------------------------------------------- */

typedef struct {
    char *out;
    size_t size, len;
} sink;

static void put(sink *k, const char *p, size_t n)
{
    for (size_t i = 0; i < n && k->len + 1 < k->size; i++)
        k->out[k->len++] = p[i];
    k->out[k->len] = '\0';
}

static void put_redacted(sink *k)
{
    put(k, SQ_PG_REDACTED, sizeof SQ_PG_REDACTED - 1);
}

/* The longest secret at p, or 0. */
static size_t secret_at(const sq_pg_secrets *s, const char *p)
{
    size_t best = 0;
    for (int i = 0; s != NULL && i < s->n; i++) {
        size_t n = strlen(s->s[i]);
        if (n > best && strncmp(p, s->s[i], n) == 0)
            best = n;
    }
    return best;
}

/* At p (just after "://"): the length of "user:" and of the password in a
 * user:password@ within one token, or 0. */
static size_t userinfo_password(const char *p, size_t *pass_len)
{
    size_t run = strcspn(p, " \t\r\n\"'"), at = 0;
    for (size_t i = 0; i < run; i++)
        if (p[i] == '@')
            at = i;
    const char *colon = at ? memchr(p, ':', at) : NULL;
    if (colon == NULL || (size_t)(colon - p) + 1 >= at)
        return 0;
    *pass_len = at - (size_t)(colon - p) - 1;
    return (size_t)(colon - p) + 1;
}

/* At p: "password" [spaces] "=" [spaces] value. The length up to the value
 * (after an opening quote) and the value's, or 0. */
static size_t password_value(const char *p, size_t *value_len)
{
    if (strncasecmp(p, "password", 8) != 0)
        return 0;
    size_t i = 8 + strspn(p + 8, " \t");
    if (p[i] != '=')
        return 0;
    i++;
    i += strspn(p + i, " \t");
    if (p[i] == '\'' || p[i] == '"') {
        const char *end = strchr(p + i + 1, p[i]);
        *value_len = end ? (size_t)(end - p - i - 1) : strlen(p + i + 1);
        return i + 1;
    }
    *value_len = strcspn(p + i, " \t\r\n&\"',;");
    return i;
}

void sq_pg_scrub(const sq_pg_secrets *s, const char *in, char *out, size_t size)
{
    if (size == 0)
        return;
    out[0] = '\0';
    if (in == NULL)
        return;
    /* first the known secrets, then whatever is shaped like one */
    size_t cap = strlen(in) * (sizeof SQ_PG_REDACTED) + 1;
    char *mid = malloc(cap);
    if (mid == NULL) {
        snprintf(out, size, "(message withheld: out of memory)");
        return;
    }
    sink a = {mid, cap, 0};
    mid[0] = '\0';
    for (const char *p = in; *p;) {
        size_t n = secret_at(s, p);
        if (n > 0) {
            put_redacted(&a);
            p += n;
        } else {
            put(&a, p++, 1);
        }
    }
    sink b = {out, size, 0};
    for (const char *p = mid; *p;) {
        size_t head, n = 0;
        if (strncmp(p, "://", 3) == 0 && (head = userinfo_password(p + 3, &n)) > 0) {
            put(&b, p, 3 + head);
            p += 3 + head;
        } else if ((head = password_value(p, &n)) > 0) {
            put(&b, p, head);
            p += head;
        }
        if (n > 0) {
            put_redacted(&b);
            p += n;
        } else if (*p) {
            put(&b, p++, 1);
        }
    }
    memset(mid, 0, cap);
    free(mid);
}

/* ---- application_name --------------------------------------------------------- */

/* The length of s's longest prefix of at most max bytes that does not cut a
 * UTF-8 sequence. */
static size_t utf8_prefix(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n <= max)
        return n;
    while (max > 0 && ((unsigned char)s[max] & 0xC0) == 0x80)
        max--;
    return max;
}

/* name in at most budget bytes (out holds budget + 1): an identity
 * host:pid:nonce loses host bytes first, then the nonce, never the pid. */
static void fit_name(const char *name, size_t budget, char *out)
{
    size_t len = strlen(name);
    const char *last = strrchr(name, ':'), *mid = NULL;
    for (const char *q = last ? last - 1 : NULL; q && q >= name && mid == NULL; q--)
        if (*q == ':')
            mid = q;
    bool identity =
        mid != NULL && last - mid > 1 && strspn(mid + 1, "0123456789") == (size_t)(last - mid - 1);
    if (len > budget && identity) {
        size_t host = (size_t)(mid - name), tail = len - host, pid = (size_t)(last - mid);
        if (tail <= budget) {
            snprintf(out, budget + 1, "%.*s%s", (int)utf8_prefix(name, budget - tail), name, mid);
            return;
        }
        if (pid <= budget) {
            size_t keep = utf8_prefix(name, budget - pid);
            snprintf(out, budget + 1, "%.*s%.*s", (int)(keep < host ? keep : host), name, (int)pid,
                     mid);
            return;
        }
    }
    snprintf(out, budget + 1, "%.*s", (int)utf8_prefix(name, budget), name);
}

void sq_pg_app_name(const char *url_name, const char *name, char out[SQ_PG_APP_NAME_MAX + 1])
{
    const size_t max = SQ_PG_APP_NAME_MAX;
    if (url_name == NULL || url_name[0] == '\0') {
        fit_name(name, max, out);
        return;
    }
    size_t ul = strlen(url_name), nl = strlen(name);
    /* squire's part gets what the URL's name leaves, but at least 32 bytes
     * (room for ":pid:nonce" and some host) */
    size_t room = ul + 1 < max ? max - ul - 1 : 0, least = nl < 32 ? nl : 32;
    char part[SQ_PG_APP_NAME_MAX + 1];
    fit_name(name, room > least ? room : least, part);
    size_t keep = utf8_prefix(url_name, max - 1 - strlen(part));
    memcpy(out, url_name, keep);
    out[keep] = ' ';
    memcpy(out + keep + 1, part, strlen(part) + 1);
}
