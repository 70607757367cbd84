/* Rates of the last minute, for the status page and /stats: once a second
 * the process that serves the stats endpoint samples the counters summed
 * over every process into a small ring. */
#ifndef EG_GATEWAY_OPS_STATS_RATES_H
#define EG_GATEWAY_OPS_STATS_RATES_H

#include "base/strbuf.h"

#include <ev.h>
#include <stdbool.h>

#define RATES_SERIES 60         /* per-second values kept: one minute */

enum rates_kind {
    RATES_REQUESTS,             /* http requests, tcp connections */
    RATES_HTTP_5XX,             /* 5xx answers clients received, the servers' own included */
    RATES_ERRORS,               /* errors the gateway answered itself (client_errors_total) */
    RATES_KINDS
};

/* Sampling runs while the stats endpoint is open. */
void rates_start(struct ev_loop *loop);
void rates_stop(void);
/* Per second over the last SECONDS (1 to 60), counted up to now; over what
 * has been sampled when the process is younger. */
double rates_per_s(enum rates_kind k, int seconds);
/* The last RATES_SERIES whole seconds, oldest first, into OUT; the number of
 * seconds known (the first ones are 0 while fewer were sampled). */
int rates_series(enum rates_kind k, double out[RATES_SERIES]);
/* "rates": {...} for /stats. */
void rates_json(struct sbuf *b);

#endif
