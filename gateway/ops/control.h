/* The control API on the stats listener: operator state of datacenters and
 * servers (drain, ready, down, weight) and sessions (read, move, forget).
 * The URL scheme and bodies are in proto/control_req.h; README "Control
 * API" documents them. The stats endpoint hands every request under
 * /control over, with what it found of its token. */
#ifndef EG_GATEWAY_OPS_CONTROL_H
#define EG_GATEWAY_OPS_CONTROL_H

#include "base/strbuf.h"
#include "healthcheck/admin.h"
#include "healthcheck/datacenter-types.h"

#include <stdbool.h>
#include <stddef.h>

struct control_auth {
    bool token_set;             /* stats_token is configured */
    bool ok;                    /* the request carries it (or none is needed) */
};

/* Takes over the connection FD whose first LEN bytes (a complete request
 * head, perhaps some body) are BUF. */
void control_adopt(int fd, const char *buf, size_t len, const struct control_auth *auth);

/* What /stats and /metrics show of operator state: the members of a
 * datacenter's or server's object, the "operator" member of the document,
 * and the metrics. */
void control_json_dc(struct sbuf *b, const struct dc *dc);
void control_json_srv(struct sbuf *b, const struct srv *s);
void control_json_stats(struct sbuf *b);
void control_metrics(struct sbuf *b);

/* The same facts for the status page. Whether operator state is the
 * fleet's (Redis) and how it stands with Redis: */
struct control_fleet {
    bool redis;                 /* a redis block: the state is the fleet's */
    bool connected;             /* Redis answers: changes are written */
    bool subscribed;            /* changes made elsewhere are heard as they happen */
    int pending;                /* changes made here, not yet written */
    unsigned long bad_messages; /* messages heard that did not parse */
};
void control_fleet(struct control_fleet *f);
/* What an operator said of DC into E, and in how many seconds the sessions
 * pinned to it leave (a drain's clock; 0 once it ran out, and for any other
 * state); false when no operator said anything of it. */
bool control_dc_admin(const struct dc *dc, struct admin_entry *e, double *leave_in_s);

#endif
