/* The parsed configuration. Every structure below lives in the arena of its
 * struct conf and is freed with it; a reload builds a whole new tree. The
 * defaults of every field are rows of the directive table (conf/directives.c),
 * nowhere else. */
#ifndef EG_CONF_CONF_TYPES_H
#define EG_CONF_CONF_TYPES_H

#include "base/log.h"
#include "base/net.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CONF_NAME_MAX 64
#define CONF_MAX_RETRIES 16
#define CONF_MAX_HEADERS 100    /* the parser keeps this many (HTTP_MAX_HDRS) */

enum conf_mode { MODE_HTTP, MODE_TCP };
enum conf_sess { SESS_NONE, SESS_HEADER, SESS_COOKIE, SESS_CLIENT_IP, SESS_SNI };
enum conf_check_type { CHECK_NONE, CHECK_TCP, CHECK_HTTP, CHECK_TLS };
/* The value is the PROXY protocol version sent (0: none). */
enum conf_send_proxy { SEND_PROXY_OFF, SEND_PROXY_V1, SEND_PROXY_V2 };
/* Whether a session may leave its datacenter while that one is down. */
enum conf_pin { PIN_PREFER, PIN_STRICT };
enum conf_on_down { ON_DOWN_CLOSE, ON_DOWN_KEEP };
enum conf_access_log { CONF_ACCESS_LOG_OFF, CONF_ACCESS_LOG_KV, CONF_ACCESS_LOG_JSON };

/* Where a directive was written, for errors found once the file is parsed.
 * FILE is the included file's name when it came from an `include`. */
struct conf_loc {
    const char *file;
    int line;
};

struct conf_server {
    char *spec;             /* as written, "host:port" */
    char *host;
    uint16_t port;
    bool resolve;           /* host is a name, resolved asynchronously */
    struct net_addr addr;   /* when host is numeric */
    int weight;
    bool tls;               /* TLS to the server */
    bool h2;                /* HTTP/2 to the server (prior knowledge, or ALPN h2 over TLS) */
    char *verify;           /* CA file: verify the server's certificate */
    char *sni;              /* server name sent (and verified), default host */
    const char *file;
    int line;
};

struct conf_check {
    enum conf_check_type type;
    char *path;             /* http: request path */
    char *host;             /* http: Host header, default the server's host */
    int expect;             /* http: expected status, 0 = any 2xx/3xx */
    double interval, timeout;
    int rise, fall;
    const char *file;
    int line;
};

struct conf_dc {
    char *name;
    const char *file;
    int line;
    int priority;
    struct conf_server *servers;
    int nservers;
    int server_lines;       /* `server` directives, valid or not */
    struct conf_check check;
    int min_servers;        /* up servers needed for the datacenter to be healthy */
    int passive_fall;       /* consecutive traffic failures that mark a server down */
    double passive_timeout; /* without active checks: how long a server stays down */
    int passive_5xx;        /* consecutive answers of passive_codes that eject a server (0: off) */
    const char *passive_codes; /* "502,503,504" as written */
    uint64_t passive_code_bits[2]; /* bit N-500: status N counts (from passive_codes) */
    double passive_eject;   /* the first ejection's length; each repeat doubles it */
    int max_ejected;        /* percent of the servers that may be ejected at once */
    int spill_threshold;    /* percent of capacity below which new sessions spill over */
    int panic_threshold;    /* percent of capacity below which down servers are used too */
    double slow_start;      /* new sessions ramp back over it once the datacenter returns */
    double resolve_interval;
};

struct conf_cert {
    char *cert, *key;
    const char *file;
    int line;
};

struct conf_cidr {
    struct net_addr net;
    int bits;
};

struct conf_listen {
    struct net_addr addr;
    const char *file;
    int line;
};

struct conf_listener {
    char *name;
    const char *file;
    int line;
    struct conf_listen *listens;
    int nlistens;
    enum conf_mode mode;
    struct conf_cert *certs;
    int ncerts;
    enum conf_sess sess;
    struct conf_loc sess_at;
    char *sess_name;
    size_t sess_name_len;
    bool sess_issued;       /* cookie: only keys a server set in a response pin a session */
    char **dc_names;        /* as written; resolved into dcs by validation */
    int ndc_names;
    struct conf_loc dcs_at;
    int *dcs;               /* indices into conf.dcs */
    int ndcs;
    bool failback;
    int retries;
    double connect_timeout;
    double idle_timeout;
    double hold_timeout;    /* how long traffic waits while no datacenter is up */
    int hold_max;           /* requests or connections held at once (0: no limit) */
    double try_timeout;     /* http: one attempt's first response byte (0: off) */
    double hedge_after;     /* http: a second attempt when no answer came within it (0: off) */
    size_t body_min_rate;   /* http: bytes per second a request body must keep up (0: off) */
    size_t buffer_request;  /* http: body bytes received before a server is chosen (0: off) */
    enum conf_pin pin;      /* affinity prefer|strict */
    enum conf_on_down on_down; /* tunnels to a server marked down: close|keep */
    double handshake_timeout;
    double request_timeout; /* http: a request head must arrive within it */
    double response_timeout;/* http: the first response byte must arrive within it */
    uint32_t max_request_line;
    uint32_t max_header_size;
    int max_headers;
    size_t replay_buffer;   /* request bytes kept for replay on failover */
    int max_connections;    /* 0: no limit */
    bool delayed_ack;       /* the first ACKs ride on the answer (TCP_QUICKACK off) */
    bool defer_accept;      /* accepted once the client's first bytes are in (default: http mode) */
    struct conf_loc defer_accept_at;
    bool forward_for;       /* X-Forwarded-For and X-Forwarded-Proto */
    bool forwarded;         /* RFC 7239 Forwarded */
    enum conf_send_proxy send_proxy;
    bool accept_proxy;      /* a PROXY header precedes each client connection */
    bool http2;             /* HTTP/2 from clients (default: with tls) */
    struct conf_loc http2_at;
    struct conf_cidr *proxy_from;  /* who may send it (none listed: anyone) */
    int nproxy_from;
};

#define CONF_MAX_SENTINELS 8

struct conf_hostport {
    char *host;
    uint16_t port;
};

struct conf_redis {
    bool on;
    const char *file;
    int line;
    bool sentinel;              /* addrs are sentinels, `master` names the set */
    struct conf_hostport addrs[CONF_MAX_SENTINELS];
    int naddrs;
    char *master;
    char *password;
    int db;
    char *prefix;
    double ttl;                 /* affinity lifetime, refreshed on use */
    double timeout;             /* a slower answer counts as Redis being down */
    size_t cache_size;          /* local cache entries */
    double cache_ttl;           /* a cached answer is used without asking for this long */
};

struct conf {
    char *file;
    struct conf_arena *arena;
    int workers;            /* 0 = auto */
    enum log_level log_level;
    char *log_file;             /* log FILE LEVEL */
    bool log_syslog;            /* log syslog [FACILITY] LEVEL */
    int log_facility;
    struct conf_loc log_at;
    bool stats_on;
    struct net_addr stats_addr;
    char *stats_token;          /* bearer token required by the stats endpoint */
    size_t buffer_size;
    double drain_timeout;
    int retry_budget;       /* retries and hedges, in percent of recent requests */
    struct conf_dc *dcs;
    int ndcs;
    struct conf_listener *lsns;
    int nlsns;
    struct conf_redis redis;
    enum conf_access_log access_log;
    char *access_log_file;      /* access_log on|json FILE */
    bool access_log_syslog;     /* access_log on|json syslog [FACILITY] */
    int access_log_facility;
    struct conf_loc access_log_at;
    char *syslog_socket;        /* where syslog datagrams go */
    enum log_syslog_format syslog_format;
    char *user;                 /* drop root for this user after binding */
    char *pid_file;
    struct conf_loc pid_at;
    size_t affinity_size;       /* in-memory affinity (no redis block) */
    double affinity_ttl;
    char *tls_ticket_keys;      /* TLS session ticket keys shared by a fleet */
    struct conf_loc tls_ticket_keys_at;
};

/* Errors are collected, one "FILE:LINE: message" line each. */
struct conf_errs {
    char *text;
    size_t len, cap;
    int count;
};

#endif
