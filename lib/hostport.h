/*
 * hostport.h: a listening address as written in the config
 * (`metrics_address`): "PORT", "HOST:PORT" or "[IPV6]:PORT", where HOST is
 * an IPv4 literal, "localhost" or (bracketed) an IPv6 literal. A bare port
 * means the loopback address 127.0.0.1: squire listens on other interfaces
 * only when told ("0.0.0.0:9394", "[::]:9394"). Pure.
 */
#ifndef SQ_HOSTPORT_H
#define SQ_HOSTPORT_H

#include <stdbool.h>
#include <stddef.h>

#include "squire.h"

typedef struct sq_hostport {
    char host[64]; /* numeric: "127.0.0.1", "::1", "0.0.0.0", "::" */
    int port;      /* 1..65535 */
    bool ipv6;
} sq_hostport;

/* Parse text into out. Returns 0, or -1 with err (SQ_ECONFIG, the message
 * says what was expected, without a prefix). */
int sq_hostport_parse(const char *text, sq_hostport *out, sq_error *err);

#endif
