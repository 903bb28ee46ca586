#include "notify.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static struct sockaddr_un addr;
static socklen_t addr_len;
static double watchdog_period;

void sq_notify_init(void)
{
    const char *path = getenv("NOTIFY_SOCKET");
    addr_len = 0;
    if (path != NULL && (path[0] == '/' || path[0] == '@') &&
        strlen(path) < sizeof addr.sun_path) {
        memset(&addr, 0, sizeof addr);
        addr.sun_family = AF_UNIX;
        memcpy(addr.sun_path, path, strlen(path));
        if (path[0] == '@')
            addr.sun_path[0] = '\0';
        addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path));
    }
    watchdog_period = 0;
    const char *usec = getenv("WATCHDOG_USEC"), *pid = getenv("WATCHDOG_PID");
    if (usec != NULL && (pid == NULL || strtol(pid, NULL, 10) == (long)getpid())) {
        double us = strtod(usec, NULL);
        if (us >= 1000) /* systemd asks for at least 1 ms; Sidekiq refuses < 1 s */
            watchdog_period = us / 2e6;
    }
}

bool sq_notify_enabled(void)
{
    return addr_len > 0;
}

void sq_notify(const char *msg)
{
    if (addr_len == 0)
        return;
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return;
    /* Best effort: the supervisor may be gone or not reading (a full socket
     * buffer must not block the main thread); nothing to do about it. */
    ssize_t n = sendto(fd, msg, strlen(msg), MSG_NOSIGNAL | MSG_DONTWAIT,
                       (struct sockaddr *)&addr, addr_len);
    (void)n;
    close(fd);
}

void sq_notify_status(const char *fmt, ...)
{
    if (addr_len == 0)
        return;
    char buf[256] = "STATUS=";
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + 7, sizeof buf - 7, fmt, ap);
    va_end(ap);
    sq_notify(buf);
}

double sq_notify_watchdog_period(void)
{
    return addr_len > 0 ? watchdog_period : 0;
}
