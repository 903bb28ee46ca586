/*
 * trace.c: the W3C traceparent / tracestate grammar (trace.h).
 */
#include "trace.h"

#include <string.h>

static bool lower_hex(const char *s, size_t n, bool *all_zero)
{
    bool zero = true;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false;
        zero = zero && c == '0';
    }
    if (all_zero != NULL)
        *all_zero = zero;
    return true;
}

bool sq_traceparent_valid(const char *s, size_t len, char trace_id[33])
{
    bool zero;
    if (s == NULL || len < SQ_TRACEPARENT_LEN || !lower_hex(s, 2, NULL) || memcmp(s, "ff", 2) == 0)
        return false;
    if (memcmp(s, "00", 2) == 0 ? len != SQ_TRACEPARENT_LEN
                                : len > SQ_TRACEPARENT_LEN && s[SQ_TRACEPARENT_LEN] != '-')
        return false;
    if (len > SQ_TRACEPARENT_MAX)
        return false;
    for (size_t i = SQ_TRACEPARENT_LEN; i < len; i++) /* a later version's rest */
        if (s[i] <= 0x20 || s[i] > 0x7e)
            return false;
    if (s[2] != '-' || s[35] != '-' || s[52] != '-')
        return false;
    if (!lower_hex(s + 3, 32, &zero) || zero) /* trace id */
        return false;
    if (!lower_hex(s + 36, 16, &zero) || zero) /* parent id */
        return false;
    if (!lower_hex(s + 53, 2, NULL)) /* flags */
        return false;
    if (trace_id != NULL) {
        memcpy(trace_id, s + 3, 32);
        trace_id[32] = '\0';
    }
    return true;
}

static bool key_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '*' ||
           c == '/';
}

/* simple-key = lcalpha 0*255(key chars); tenant-id = (lcalpha / DIGIT)
 * 0*240(key chars); system-id = lcalpha 0*13(key chars). */
static bool key_valid(const char *k, size_t n)
{
    const char *at = memchr(k, '@', n);
    size_t head = at ? (size_t)(at - k) : n;
    if (head == 0 || (!(k[0] >= 'a' && k[0] <= 'z') && !(at && k[0] >= '0' && k[0] <= '9')))
        return false;
    if (head > (at ? 241u : 256u))
        return false;
    for (size_t i = 1; i < head; i++)
        if (!key_char(k[i]))
            return false;
    if (at == NULL)
        return true;
    size_t sys = n - head - 1;
    if (sys == 0 || sys > 14 || !(at[1] >= 'a' && at[1] <= 'z'))
        return false;
    for (size_t i = 2; i <= sys; i++)
        if (!key_char(at[i]))
            return false;
    return true;
}

static bool value_valid(const char *v, size_t n)
{
    if (n == 0 || n > 256 || v[n - 1] == ' ')
        return false;
    for (size_t i = 0; i < n; i++)
        if (v[i] < 0x20 || v[i] > 0x7e || v[i] == ',' || v[i] == '=')
            return false;
    return true;
}

static bool member_valid(const char *m, size_t n)
{
    while (n > 0 && (m[0] == ' ' || m[0] == '\t'))
        m++, n--;
    while (n > 0 && (m[n - 1] == ' ' || m[n - 1] == '\t'))
        n--;
    if (n == 0)
        return true; /* an empty member is allowed and ignored */
    const char *eq = memchr(m, '=', n);
    return eq != NULL && key_valid(m, (size_t)(eq - m)) &&
           value_valid(eq + 1, n - (size_t)(eq - m) - 1);
}

bool sq_tracestate_valid(const char *s, size_t len)
{
    if (s == NULL || len > SQ_TRACESTATE_MAX)
        return false;
    unsigned members = 0;
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && s[i] != ',')
            continue;
        if (!member_valid(s + start, i - start) || ++members > 32)
            return false;
        start = i + 1;
    }
    return true;
}
