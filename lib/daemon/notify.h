/*
 * notify.h: systemd's service notification protocol, without libsystemd:
 * one datagram per message to the unix socket named by $NOTIFY_SOCKET (a
 * leading '@' means the abstract namespace). Every call is a no-op when
 * squire does not run under a notify-aware supervisor.
 */
#ifndef SQ_NOTIFY_H
#define SQ_NOTIFY_H

#include <stdbool.h>

#include "squire.h"

/* Read $NOTIFY_SOCKET and $WATCHDOG_USEC (honouring $WATCHDOG_PID). */
void sq_notify_init(void);
bool sq_notify_enabled(void);
/* Send "READY=1", "STOPPING=1", "WATCHDOG=1", "STATUS=..." (newline-joined). */
void sq_notify(const char *msg);
void sq_notify_status(const char *fmt, ...) SQ_PRINTF(1, 2);
/* The watchdog ping period (half of WATCHDOG_USEC), or 0 when none is asked. */
double sq_notify_watchdog_period(void);

#endif
