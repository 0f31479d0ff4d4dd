/*
 * daemon/sdnotify.c — sd_notify(3) without libsystemd: one datagram of newline-separated
 * KEY=VALUE assignments to the Unix socket in $NOTIFY_SOCKET. A leading '@' names a socket
 * in the abstract namespace (its first byte becomes NUL). See sdnotify.h.
 */
#include "sdnotify.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int ssmd_notify(const char *fmt, ...) {
    const char *path = getenv("NOTIFY_SOCKET");
    if (!path || !*path) return 0;
    size_t plen = strlen(path);
    struct sockaddr_un sa;
    if ((path[0] != '/' && path[0] != '@') || plen >= sizeof sa.sun_path) return -1;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n < 0) return -1;
    if ((size_t)n >= sizeof msg) n = (int)sizeof msg - 1;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, path, plen);
    if (path[0] == '@') sa.sun_path[0] = '\0';
    socklen_t salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen + (path[0] == '/'));
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    ssize_t sent;
    do sent = sendto(fd, msg, (size_t)n, MSG_NOSIGNAL, (struct sockaddr *)&sa, salen);
    while (sent < 0 && errno == EINTR);
    close(fd);
    return sent == n ? 1 : -1;
}

uint64_t ssmd_notify_watchdog_usec(void) {
    const char *usec = getenv("WATCHDOG_USEC");
    if (!usec || !*usec) return 0;
    const char *pid = getenv("WATCHDOG_PID");
    if (pid && *pid && strtol(pid, NULL, 10) != (long)getpid()) return 0;
    char *end;
    unsigned long long v = strtoull(usec, &end, 10);
    return *end ? 0 : (uint64_t)v;
}
