/* Runtime state of datacenters and their servers, shared by routing, health
 * checks, the proxy paths and stats. */
#ifndef EG_HEALTHCHECK_DATACENTER_TYPES_H
#define EG_HEALTHCHECK_DATACENTER_TYPES_H

#include "conf/conf-types.h"
#include "base/net.h"
#include "base/util.h"

#include <ev.h>
#include <openssl/ssl.h>
#include <stdbool.h>
#include <stdint.h>

struct check;
struct stats_srv_row;
struct stats_dc_row;

/* Why a server changed state: logged and shown in stats. */
enum srv_reason {
    SRV_R_START, SRV_R_CHECK_OK, SRV_R_CHECK_FAIL, SRV_R_REFUSED, SRV_R_RESET,
    SRV_R_TIMEOUT, SRV_R_PASSIVE_EXPIRED, SRV_R_RELOAD, SRV_R_OUTLIER, SRV_R_EJECTION_OVER,
    SRV_R_ADMIN_DOWN, SRV_R_ADMIN_READY
};

/* What an operator said of a datacenter or a server (healthcheck/admin.h);
 * the numbers are those of the control API's enum ctl_state. */
enum admin_state { ADMIN_READY, ADMIN_DRAIN, ADMIN_DOWN };

/* How a server's last active check ended (shown in stats): a cause, and its
 * detail where one applies. */
enum check_cause {
    CHECK_C_NONE,               /* no check has ended yet */
    CHECK_C_OK,                 /* connected, handshake done, or an expected status */
    CHECK_C_TIMEOUT,            /* no verdict within the check's timeout */
    CHECK_C_REFUSED,            /* nothing listens */
    CHECK_C_RESET,              /* the connection was reset */
    CHECK_C_UNREACHABLE,        /* no route to the host or its network */
    CHECK_C_CONNECT,            /* another connect error: detail is the errno */
    CHECK_C_TLS,                /* handshake failed: detail is the X509 verify result */
    CHECK_C_STATUS,             /* http: a status not expected: detail is the status */
    CHECK_C_CLOSED,             /* http: closed before the response */
    CHECK_C_BAD_RESPONSE,       /* http: an answer that does not parse */
};

struct check_result {
    uint8_t cause;              /* enum check_cause */
    bool ok;
    int detail;                 /* status (OK and STATUS), errno, verify result */
    double duration_ms;         /* from the round's start to its verdict */
    ev_tstamp at;               /* when it ended (the loop's clock) */
};

struct srv {
    int refs;                   /* the datacenter holds one, each connection one */
    struct dc *dc;              /* NULL once removed from its datacenter */
    const struct conf_server *cs;
    struct net_addr addr;
    char name[64];              /* "ip:port" */
    int weight;                 /* the configured one, or the operator's (0: drain) */
    int cur_weight;             /* smooth weighted round-robin state */
    uint8_t admin;              /* enum admin_state: its own, or down with its datacenter */
    bool up;
    int reason;                 /* enum srv_reason of the last transition */
    ev_tstamp since;            /* when it last went up or down (kept across reloads) */
    struct check_result last_check;
    int good, bad;              /* consecutive check results (rise/fall) */
    int passive_fails;          /* consecutive traffic failures */
    int answers_5xx;            /* consecutive answers of passive codes (outlier detection) */
    int ejections;              /* ejections in a row, each twice as long as the last */
    ev_tstamp ejected_until;    /* outlier: not back before then, whatever the checks say */
    ev_timer passive_tm;        /* brings a passively failed server back without checks */
    double rtt_ms;              /* EWMA of check round trips, < 0 while unknown */
    struct check *hc;              /* active check, NULL without one */
    SSL_CTX *tls;               /* TLS towards the server, NULL for plain TCP */
    SSL_SESSION *tls_sess;      /* last session, to resume the next handshake */
    struct dlist idle;          /* pooled keep-alive connections */
    struct dlist inflight;      /* attempts connecting to it or carrying an exchange */
    int nidle;
    struct stats_srv_row *st;   /* traffic counters */
    int view_row;               /* its row in the machine's health view, -1 none */
    uint32_t view_seq;          /* the row's version last applied */
};

struct dc {
    const struct conf_dc *cd;
    const char *name;
    int idx;                    /* index in the generation's and conf's arrays */
    bool healthy;
    bool live;                  /* its generation is current: checks run, changes are told */
    bool leader;                /* nearest of its priority tier, with hysteresis */
    uint8_t admin;              /* enum admin_state: drain avoids it for new sessions */
    bool drained;               /* drained for drain_timeout: pinned sessions leave too */
    struct dlist live_link;     /* in dc_live while its generation is current */
    int view_row;               /* its row in the machine's health view, -1 none */
    uint32_t view_seq;          /* the row's version last applied */
    int nup;
    double rtt_ms;              /* EWMA over all its servers' checks, < 0 unknown */
    struct srv **srvs;
    int nsrvs, cap;
    SSL_CTX **tls;              /* per conf server (cd->servers), NULL entries: plain */
    uint64_t transitions;       /* healthy <-> unhealthy */
    ev_tstamp changed_at;
    struct stats_dc_row *st;    /* traffic counters */
};

#endif
