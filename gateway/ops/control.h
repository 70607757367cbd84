/* The control API on the stats listener: operator state of datacenters and
 * servers (drain, ready, down, weight) and sessions (read, move, forget).
 * The URL scheme and bodies are in proto/control_req.h; README "Control
 * API" documents them. The stats endpoint hands every request under
 * /control over, with what it found of its token. */
#ifndef EG_GATEWAY_OPS_CONTROL_H
#define EG_GATEWAY_OPS_CONTROL_H

#include "base/strbuf.h"
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

#endif
