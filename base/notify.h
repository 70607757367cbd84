/* Service manager notifications (systemd's sd_notify protocol, without
 * libsystemd): readiness, reload and stop, for a unit of Type=notify. */
#ifndef EG_BASE_NOTIFY_H
#define EG_BASE_NOTIFY_H

#include <stddef.h>

/* Takes $NOTIFY_SOCKET for this process, the service's main one, and
 * removes it from the environment. Nothing to do (EG_OK) when it is not set;
 * EG_ERR with a message in ERR when it names no usable socket. */
int notify_init(char *err, size_t errlen);
/* READY=1 (and MAINPID): the listeners are open, or a reload is over. */
void notify_ready(void);
/* RELOADING=1: a reload starts; notify_ready() when it is over. */
void notify_reloading(void);
/* STOPPING=1, and the stop timeout extended to cover DRAIN_TIMEOUT seconds
 * of drain. */
void notify_stopping(double drain_timeout);

#endif
