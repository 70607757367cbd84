/* Active health checks: tcp connect, HTTP request, TLS handshake. Each check
 * is a small state machine on the caller's loop; none owns a loop. */
#ifndef EG_HC_H
#define EG_HC_H

#include <ev.h>

struct srv;
struct hc;

struct hc *hc_start(struct ev_loop *loop, struct srv *s);
void hc_stop(struct hc *h);
/* Checks performed since start, for tests and stats. */
unsigned long hc_total(void);

#endif
