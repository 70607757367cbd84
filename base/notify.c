/* The sd_notify(3) protocol, which is small enough not to need libsystemd:
 * a state change is one datagram of KEY=VALUE lines sent to the unix socket
 * named by $NOTIFY_SOCKET, a path, or an abstract name written with a
 * leading '@'.
 *
 * Only the process that took the socket in notify_init() speaks. Workers are
 * forked from it and share this memory, but systemd hears the main process
 * only (NotifyAccess=main) and would log every message of theirs as refused.
 * A send never blocks the loop: a message the socket cannot take at once is
 * dropped, and logged. */
#include "base/notify.h"
#include "base/log.h"
#include "base/util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* Time the master of workers may need, after drain_timeout, to kill and reap
 * workers that did not finish (see master.c's stop()). */
#define STOP_MARGIN 10.0

static int notify_fd = -1;
static pid_t notify_pid;
static struct sockaddr_un notify_addr;
static socklen_t notify_addrlen;

int notify_init(char *err, size_t errlen)
{
    const char *name = getenv("NOTIFY_SOCKET");
    if (!name || !*name)
        return EG_OK;
    size_t len = strlen(name);
    int rc = EG_ERR;
    if ((name[0] != '/' && name[0] != '@') || len >= sizeof(notify_addr.sun_path)) {
        snprintf(err, errlen, "NOTIFY_SOCKET=%s: not a unix socket path or abstract name", name);
        goto out;
    }
    notify_addr.sun_family = AF_UNIX;
    memcpy(notify_addr.sun_path, name, len);
    if (name[0] == '@')
        notify_addr.sun_path[0] = '\0'; /* abstract: no terminating NUL either */
    notify_addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
    notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (notify_fd < 0) {
        snprintf(err, errlen, "NOTIFY_SOCKET: cannot create a socket: %s", strerror(errno));
        goto out;
    }
    notify_pid = getpid();
    rc = EG_OK;
out:
    unsetenv("NOTIFY_SOCKET");
    return rc;
}

static void notify_send(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void notify_send(const char *fmt, ...)
{
    if (notify_fd < 0 || getpid() != notify_pid)
        return;
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (sendto(notify_fd, msg, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL,
               (struct sockaddr *)&notify_addr, notify_addrlen) != n)
        log_warn("cannot tell the service manager %.*s: %s", (int)strcspn(msg, "\n"), msg,
                 strerror(errno));
}

void notify_ready(void)
{
    notify_send("READY=1\nMAINPID=%d", (int)getpid());
}

/* MONOTONIC_USEC tells this reload from an earlier one: systemd's
 * Type=notify-reload (253 and later) requires it; Type=notify ignores it. */
void notify_reloading(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    notify_send("RELOADING=1\nMONOTONIC_USEC=%llu",
                (unsigned long long)ts.tv_sec * 1000000ull + (unsigned long long)ts.tv_nsec / 1000);
}

/* EXTEND_TIMEOUT_USEC lets a drain_timeout longer than the unit's
 * TimeoutStopSec run to its end instead of being cut by SIGKILL. */
void notify_stopping(double drain_timeout)
{
    notify_send("STOPPING=1\nEXTEND_TIMEOUT_USEC=%llu", (unsigned long long)((drain_timeout + STOP_MARGIN) * 1e6));
}
