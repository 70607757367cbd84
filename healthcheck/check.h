/* Active health checks: tcp connect, HTTP request, TLS handshake. Each check
 * is a small state machine on the caller's loop; none owns a loop. */
#ifndef EG_HEALTHCHECK_CHECK_H
#define EG_HEALTHCHECK_CHECK_H

#include <ev.h>
#include <stddef.h>

struct srv;
struct check;
struct check_result;

struct check *check_start(struct ev_loop *loop, struct srv *s);
void check_stop(struct check *h);
/* Checks performed since start by the machine (its checker), for stats. */
unsigned long check_total(void);
/* The cause of a check result in one word ("timeout", "refused", ...), and
 * in words for a person ("timeout after 150 ms", "status 503"). */
const char *check_cause_name(int cause);
void check_describe(const struct check_result *r, char *buf, size_t len);

#endif
