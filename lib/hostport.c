/*
 * hostport.c: "[HOST:]PORT" for listening sockets (hostport.h).
 */
#include "hostport.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "common.h"

#define EXPECTED                                                                                   \
    "expected PORT (loopback), HOST:PORT or [IPV6]:PORT with a numeric address or localhost "      \
    "and a port from 1 to 65535"

static int port_of(const char *s, int *port)
{
    long v = 0;
    if (*s == '\0' || strlen(s) > 5)
        return -1;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        v = v * 10 + (*p - '0');
    }
    if (v < 1 || v > 65535)
        return -1;
    *port = (int)v;
    return 0;
}

int sq_hostport_parse(const char *text, sq_hostport *out, sq_error *err)
{
    memset(out, 0, sizeof *out);
    const char *colon = text ? strrchr(text, ':') : NULL;
    const char *port = colon ? colon + 1 : text;
    char host[64] = "127.0.0.1";
    if (text == NULL || port_of(port, &out->port) != 0)
        goto bad;
    if (colon != NULL) {
        size_t n = (size_t)(colon - text);
        if (n >= 2 && text[0] == '[' && text[n - 1] == ']') {
            text++, n -= 2;
            out->ipv6 = true;
        }
        if (n == 0 || n >= sizeof host)
            goto bad;
        memcpy(host, text, n);
        host[n] = '\0';
        if (!out->ipv6 && strcmp(host, "localhost") == 0)
            snprintf(host, sizeof host, "127.0.0.1");
    }
    unsigned char addr[16];
    if (inet_pton(out->ipv6 ? AF_INET6 : AF_INET, host, addr) != 1)
        goto bad;
    snprintf(out->host, sizeof out->host, "%s", host);
    return 0;
bad:
    sq__error_set(err, SQ_ECONFIG, EXPECTED);
    return -1;
}
