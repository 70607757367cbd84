/* Layer gateway/ops: what operators read (stats endpoint, access log). It
 * may use the layers below gateway/proxy; the proxy reports to it through
 * counters and access-log records. */
/* The monitoring endpoint: HTML status page, JSON, Prometheus, health. */
#ifndef EG_GATEWAY_OPS_STATS_SERVER_H
#define EG_GATEWAY_OPS_STATS_SERVER_H

#include "base/counters.h"
#include "conf/conf-types.h"

#include <stdbool.h>
#include <stddef.h>

/* Opens, moves or closes the endpoint to match C. REUSEPORT: workers share
 * the address. */
int stats_server_apply(const struct conf *c, bool reuseport, char *err, size_t errlen);

/* The counters /stats and /metrics show, in their order: how many, the name
 * of the I-th and its value in C (for the page, which groups them). */
size_t stats_counter_count(void);
const char *stats_counter_name(size_t i);
uint64_t stats_counter_value(const struct stats_counters *c, size_t i);

#endif
