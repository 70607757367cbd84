/* Process counters, read by the stats endpoint. */
#ifndef EG_STATS_H
#define EG_STATS_H

#include <stddef.h>
#include <stdint.h>

struct stats_counters {
    uint64_t connections_total;
    uint64_t connections_active;
    uint64_t requests_total;
    uint64_t retries_total;
    uint64_t failovers_total;
    uint64_t client_errors_total;   /* requests that ended with an error the client saw */
    uint64_t reloads_total;
    uint64_t reload_failures_total;
    uint64_t affinity_hits_total;
    uint64_t affinity_misses_total;
    uint64_t affinity_cache_hits_total; /* answered by the local cache (Redis mode) */
    uint64_t failbacks_total;
    uint64_t bad_session_keys_total;
    uint64_t held_total;            /* requests that waited for a datacenter */
    uint64_t hold_timeouts_total;
    uint64_t http_400_total, http_502_total, http_503_total, http_504_total;
    uint64_t bytes_in_total, bytes_out_total;
};

extern struct stats_counters *counters;

struct conf;
struct sbuf;

/* Opens, moves or closes the stats endpoint to match C. */
int stats_apply(const struct conf *c, char *err, size_t errlen);
void stats_json(struct sbuf *b);

#endif
