/*
 * isolate_io.c: isolated mode's socket reads and writes, whole or not at
 * all, and a wait status in words.
 */
#include "isolate_internal.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

int sq__iso_write_all(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int sq__iso_read_all(int fd, void *buf, size_t n)
{
    char *p = buf;
    while (n > 0) {
        ssize_t r = read(fd, p, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

/* Wait up to seconds for fd to be readable (or closed). */
bool sq__iso_readable(int fd, double seconds)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int ms = seconds <= 0 ? 0 : (int)(seconds * 1000) + 1;
    for (;;) {
        int n = poll(&p, 1, ms);
        if (n < 0 && errno == EINTR)
            continue;
        return n > 0;
    }
}

/* "signal 11 (SIGSEGV, Segmentation fault)" or "exit status 3". */
void sq__iso_describe_status(int status, char *buf, size_t size)
{
    if (status < 0) {
        snprintf(buf, size, "an unknown cause (its wait status was not reported)");
    } else if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        const char *abbrev = sigabbrev_np(sig);
        snprintf(buf, size, "signal %d (SIG%s, %s)", sig, abbrev ? abbrev : "?", strsignal(sig));
    } else if (WIFEXITED(status)) {
        snprintf(buf, size, "exit status %d", WEXITSTATUS(status));
    } else {
        snprintf(buf, size, "wait status %#x", (unsigned)status);
    }
}
