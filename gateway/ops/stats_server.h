/* Layer gateway/ops: what operators read (stats endpoint, access log). It
 * may use the layers below gateway/proxy; the proxy reports to it through
 * counters and access-log records. */
/* The monitoring endpoint: HTML status page, JSON, Prometheus, health. */
#ifndef EG_GATEWAY_OPS_STATS_SERVER_H
#define EG_GATEWAY_OPS_STATS_SERVER_H

#include "conf/conf-types.h"

#include <stdbool.h>
#include <stddef.h>

/* Opens, moves or closes the endpoint to match C. REUSEPORT: workers share
 * the address. */
int stats_server_apply(const struct conf *c, bool reuseport, char *err, size_t errlen);

#endif
