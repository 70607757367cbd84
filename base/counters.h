/* Counters. Each process writes its own slot (single writer, no atomics);
 * with workers the slots live in shared memory and readers sum them. Rows
 * for listeners, datacenters and servers are found by name once, when the
 * object is created, and then written directly on the hot path. */
#ifndef EG_BASE_COUNTERS_H
#define EG_BASE_COUNTERS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define STATS_NAME 64
#define STATS_MAX_LSN 32
#define STATS_MAX_DC 64
#define STATS_MAX_SRV 512
#define STATS_BUCKETS 14

/* Upper bounds of the latency buckets, in seconds (a last one is +Inf). */
extern const double stats_le[STATS_BUCKETS];

struct stats_counters {
    uint64_t connections_total;
    uint64_t connections_active;
    uint64_t requests_total;
    uint64_t retries_total;
    uint64_t failovers_total;
    uint64_t inflight_moved_total;  /* in flight to a server when it was marked down */
    uint64_t invalid_responses_total; /* server answers that could not be passed on */
    uint64_t retry_budget_exhausted_total; /* retries refused: too many of late */
    uint64_t hedges_total, hedges_won_total; /* second attempts (hedge_after), and those answering first */
    uint64_t client_errors_total;   /* requests that ended with an error the client saw */
    uint64_t reloads_total;
    uint64_t reload_failures_total;
    uint64_t affinity_hits_total;
    uint64_t affinity_misses_total;
    uint64_t affinity_cache_hits_total; /* answered by the local cache (Redis mode) */
    uint64_t failbacks_total;
    uint64_t bad_session_keys_total;
    uint64_t held_now;              /* a gauge: waiting for a datacenter now */
    uint64_t held_total;
    uint64_t pooled_now;            /* a gauge: idle server connections in pools */            /* requests that waited for a datacenter */
    uint64_t hold_expired_total;
    uint64_t hold_full_total;       /* refused at once: hold_max requests already held */
    /* Error responses the gateway itself sent: any 4xx, then 5xx by kind. */
    uint64_t http_4xx_total, http_502_total, http_503_total, http_504_total;
    uint64_t http_5xx_other_total;
    uint64_t bytes_in_total, bytes_out_total;
    uint64_t tls_handshakes_total, tls_resumed_total, tls_failures_total;
    uint64_t max_connections_hits_total;
    uint64_t worker_restarts_total;
    uint64_t log_lines_dropped_total;   /* the log sink could not take them */
    uint64_t check_local_errors_total;  /* check rounds skipped: no descriptor, buffer, memory */
    /* HTTP/2 from clients (requests_total counts its requests too). */
    uint64_t h2_connections_total;
    uint64_t h2_requests_total;
    uint64_t h2_streams_active;         /* a gauge */
    uint64_t h2_resets_client_total;    /* RST_STREAM received: the client cancelled */
    uint64_t h2_resets_refused_total;   /* REFUSED_STREAM sent: over the limit, draining */
    uint64_t h2_resets_protocol_total;  /* malformed streams (PROTOCOL_ERROR, FLOW_CONTROL_ERROR...) */
    uint64_t h2_resets_internal_total;  /* responses cut: the server failed mid-way */
    uint64_t h2_resets_cancel_total;    /* streams we gave up on: timeouts */
    uint64_t h2_goaway_graceful_total;  /* drain, reload, idle */
    uint64_t h2_goaway_error_total;     /* protocol errors, bad preface, floods */
    uint64_t h2_floods_total;           /* rapid reset, CONTINUATION, SETTINGS/PING/empty frames */
    /* HTTP/2 towards servers. */
    uint64_t h2_upstream_streams_total;
    uint64_t control_requests_total;    /* requests to the control API */
    uint64_t control_refused_total;     /* of which refused (400, 401, 403, 404, 405, 413) */
    uint64_t operator_changes_total;    /* operator state changed through the control API */
    uint64_t operator_fleet_changes_total; /* changed by what another gateway wrote to Redis */
    uint64_t session_moves_total;       /* sessions moved or forgotten by an operator */
};

struct stats_hist {
    uint64_t count[STATS_BUCKETS + 1];
    double sum;
};

struct stats_lsn_row {
    char name[STATS_NAME];
    int64_t connections_active;
    int64_t held_now;               /* requests or connections waiting for a datacenter */
    uint64_t connections_total, requests_total;
    uint64_t status[6];             /* responses by class: 1xx .. 5xx, [0] other */
    struct stats_hist request;      /* request durations */
};

struct stats_dc_row {
    char name[STATS_NAME];
    uint64_t sessions_total, requests_total;
};

struct stats_srv_row {
    char dc[STATS_NAME];
    char addr[STATS_NAME];
    int64_t connections_active;
    uint64_t connections_total, failures_total, bytes_in, bytes_out;
    struct stats_hist connect;      /* connect (and TLS handshake) durations */
};

struct stats_slot {
    pid_t pid;                      /* 0: free */
    struct stats_counters c;
    int nlsn, ndc, nsrv;
    struct stats_lsn_row lsn[STATS_MAX_LSN];
    struct stats_dc_row dc[STATS_MAX_DC];
    struct stats_srv_row srv[STATS_MAX_SRV];
};

extern struct stats_counters *counters;

/* Single process: one private slot. With workers the master maps NSLOTS
 * shared slots (slot 0 is its own) before forking. */
void stats_init(int nslots);
/* This process writes slot I from now on (a worker after fork). */
void stats_use_slot(int i);
/* Folds slot I (a dead worker's) into the retired totals and frees it. */
void stats_retire_slot(int i);

struct stats_lsn_row *stats_lsn(const char *name);
struct stats_dc_row *stats_dc(const char *name);
struct stats_srv_row *stats_srv(const char *dc, const char *addr);
void stats_observe(struct stats_hist *h, double seconds);

/* Sums over every process, for the stats endpoint. */
void stats_sum_counters(struct stats_counters *out);
void stats_sum_lsn(const char *name, struct stats_lsn_row *out);
void stats_sum_dc(const char *name, struct stats_dc_row *out);
void stats_sum_srv(const char *dc, const char *addr, struct stats_srv_row *out);

#endif
