/* The directive table: every directive and option of the configuration, with
 * where it may appear, its arguments, bounds, default, where its value goes
 * and what it means. docs/configuration.md and edgegate.conf(5) are generated
 * from these rows (tools/conf-reference.c); a default written anywhere else
 * would be a second truth. Rows of one context are listed in the order -T
 * prints them. */
#include "conf/directive.h"
#include "conf/handlers.h"
#include "conf/parser.h"
#include "conf/validate.h"
#include "base/util.h"

#define KiB 1024.0
#define MiB (1024.0 * 1024)

static const struct conf_enum on_off[] = {{"on", 1}, {"off", 0}, {NULL, 0}};
static const struct conf_enum syslog_formats[] = {
    {"rfc3164", LOG_RFC3164}, {"rfc5424", LOG_RFC5424}, {NULL, 0},
};
static const struct conf_enum modes[] = {{"http", MODE_HTTP}, {"tcp", MODE_TCP}, {NULL, 0}};
static const struct conf_enum pins[] = {{"prefer", PIN_PREFER}, {"strict", PIN_STRICT}, {NULL, 0}};
static const struct conf_enum on_downs[] = {{"close", ON_DOWN_CLOSE}, {"keep", ON_DOWN_KEEP}, {NULL, 0}};
static const struct conf_enum proxy_versions[] = {
    {"v1", SEND_PROXY_V1}, {"v2", SEND_PROXY_V2}, {"off", SEND_PROXY_OFF}, {NULL, 0},
};

const struct conf_directive conf_directives[] = {
    /* ---- anywhere ---- */
    {.name = "include", .ctx = CTX_ANY, .kind = KIND_CUSTOM, .args = "FILE|GLOB",
     .min_args = 1, .max_args = 1, .set = conf_include,
     .help = "reads FILE, or each file GLOB matches in name order, as if its statements were "
             "written here; a relative path is relative to the directory of the file that "
             "includes it"},

    /* ---- top level ---- */
    {.name = "workers", .ctx = CTX_MAIN, .kind = KIND_INT, .min = 1, .max = 256, .zero = "auto",
     .def = "1", CONF_AT(struct conf, workers),
     .help = "worker processes; auto: one per CPU. With more than one, a master forks them (each "
             "with its own SO_REUSEPORT sockets), restarts any that dies and relays signals; a "
             "change applies at the next restart"},
    {.name = "user", .ctx = CTX_MAIN, .kind = KIND_WORD, .args = "NAME",
     CONF_AT(struct conf, user),
     .help = "become NAME once sockets are open, keeping only CAP_NET_BIND_SERVICE; reloads "
             "re-read the configuration and certificates as NAME"},
    {.name = "pid", .ctx = CTX_MAIN, .kind = KIND_PATH, .flags = F_ABSOLUTE,
     CONF_AT(struct conf, pid_file), CONF_LOC(struct conf, pid_at),
     .help = "write the process id to FILE (the master's with workers)"},
    {.name = "log", .ctx = CTX_MAIN, .kind = KIND_CUSTOM,
     .args = "[FILE | syslog [FACILITY]] error|warn|info|debug", .min_args = 1, .max_args = 3,
     .def = "info", .set = conf_set_log, .print = conf_print_log,
     .help = "the least severe messages logged, and where: standard error (the default), an "
             "absolute FILE (SIGUSR1 reopens it) or syslog, with FACILITY (default daemon: "
             "kern, user, daemon, auth, local0 to local7, ...)"},
    {.name = "access_log", .ctx = CTX_MAIN, .kind = KIND_CUSTOM,
     .args = "off | on|json [FILE | syslog [FACILITY]]", .min_args = 1, .max_args = 3,
     .def = "off", .set = conf_set_access_log, .print = conf_print_access_log,
     .help = "one line per http request or tcp connection, key=value (on) or JSON, into the "
             "log, or into an absolute FILE of its own (SIGUSR1 reopens it), or to syslog "
             "(severity info, FACILITY default daemon)"},
    {.name = "syslog", .ctx = CTX_MAIN, .kind = KIND_OPTIONS, .args = "OPTION VALUE ...",
     .help = "how lines for log syslog and access_log ... syslog are sent: datagrams that "
             "never wait (a full socket queue is waited for by the loop; what does not fit the "
             "buffer is dropped and counted in log_lines_dropped_total)"},
    {.name = "socket", .parent = "syslog", .ctx = CTX_MAIN, .kind = KIND_PATH,
     .flags = F_ABSOLUTE, .def = "/dev/log", CONF_AT(struct conf, syslog_socket),
     .help = "the local datagram socket of the syslog daemon (journald, rsyslog)"},
    {.name = "format", .parent = "syslog", .ctx = CTX_MAIN, .kind = KIND_ENUM,
     .values = syslog_formats, .def = "rfc3164", CONF_AT(struct conf, syslog_format),
     .help = "rfc3164: <PRI>Mmm dd hh:mm:ss edgegate[PID]: MSG, as syslog(3) sends it; rfc5424: "
             "<PRI>1 TIME HOST edgegate PID MSGID - MSG, with milliseconds, MSGID access for "
             "access lines"},
    {.name = "stats", .ctx = CTX_MAIN, .kind = KIND_CUSTOM, .args = "ADDR:PORT|off",
     .min_args = 1, .max_args = 1, .def = "off", .set = conf_set_stats,
     .print = conf_print_stats,
     .help = "the stats endpoint: an HTML page at /, JSON at /stats, Prometheus at /metrics, "
             "/healthz"},
    {.name = "stats_token", .ctx = CTX_MAIN, .kind = KIND_WORD, .args = "TOKEN", .min = 8,
     CONF_AT(struct conf, stats_token),
     .help = "the stats endpoint asks for Authorization: Bearer TOKEN (or ?token=TOKEN for the "
             "page), except /healthz"},
    {.name = "buffer_size", .ctx = CTX_MAIN, .kind = KIND_SIZE, .min = 4 * KiB, .max = MiB,
     .def = "16k", CONF_AT(struct conf, buffer_size),
     .help = "size of every I/O buffer; a request head must fit in one (restart to change)"},
    {.name = "drain_timeout", .ctx = CTX_MAIN, .kind = KIND_DURATION, .def = "30s",
     CONF_AT(struct conf, drain_timeout),
     .help = "how long SIGTERM waits for open connections to finish"},
    {.name = "retry_budget", .ctx = CTX_MAIN, .kind = KIND_INT, .min = 0, .max = 100,
     .def = "20", CONF_AT(struct conf, retry_budget),
     .help = "retries and hedges may add at most this percent of the requests of the last "
             "10 seconds (and 10 at least), so that failing requests cannot multiply the load "
             "on the servers that still answer"},
    {.name = "tls_ticket_keys", .ctx = CTX_MAIN, .kind = KIND_PATH, .flags = F_ABSOLUTE,
     CONF_AT(struct conf, tls_ticket_keys), CONF_LOC(struct conf, tls_ticket_keys_at),
     .def_doc = "keys derived from a per-process secret, rotated hourly",
     .help = "TLS session ticket keys shared by a fleet, so that a ticket one gateway issued "
             "resumes on another: one key per line, 160 hex digits (openssl rand -hex 80), "
             "the first encrypts, all decrypt; re-read at reload"},
    {.name = "affinity", .ctx = CTX_MAIN, .kind = KIND_OPTIONS, .args = "OPTION VALUE ...",
     .help = "the in-memory affinity store, used without a redis block"},
    {.name = "size", .parent = "affinity", .ctx = CTX_MAIN, .kind = KIND_INT, .min = 1,
     .max = 100000000, .def = "100000", CONF_AT(struct conf, affinity_size),
     .help = "sessions kept; the least recently used go first"},
    {.name = "ttl", .parent = "affinity", .ctx = CTX_MAIN, .kind = KIND_DURATION,
     .flags = F_POSITIVE, .def = "1h", CONF_AT(struct conf, affinity_ttl),
     .help = "how long a session keeps its datacenter unused"},
    {.name = "redis", .ctx = CTX_MAIN, .kind = KIND_BLOCK,
     .args = "HOST:PORT | sentinel HOST:PORT ...", .min_args = 1,
     .max_args = 1 + CONF_MAX_SENTINELS, .block_ctx = CTX_REDIS, .open = conf_open_redis,
     .close = conf_close_redis, .print = conf_print_redis,
     .help = "keep session affinity in Redis, shared by every gateway of a fleet (without it: "
             "in memory); sentinel: find the primary through Sentinel and follow its failovers"},
    {.name = "datacenter", .ctx = CTX_MAIN, .kind = KIND_BLOCK, .args = "NAME", .min_args = 1,
     .max_args = 1, .block_ctx = CTX_DC, .open = conf_open_datacenter,
     .close = conf_close_datacenter, .print = conf_print_datacenters,
     .help = "a datacenter: its servers and how they are checked"},
    {.name = "listener", .ctx = CTX_MAIN, .kind = KIND_BLOCK, .args = "NAME", .min_args = 1,
     .max_args = 1, .block_ctx = CTX_LSN, .open = conf_open_listener,
     .close = conf_close_listener, .print = conf_print_listeners,
     .help = "where clients connect and how their traffic is routed"},

    /* ---- redis block ---- */
    {.name = "password", .ctx = CTX_REDIS, .kind = KIND_WORD, .args = "PASSWORD",
     CONF_AT(struct conf_redis, password), .help = "sent with AUTH"},
    {.name = "master", .ctx = CTX_REDIS, .kind = KIND_WORD, .args = "NAME",
     CONF_AT(struct conf_redis, master),
     .help = "redis sentinel: the name of the monitored primary (required there, only there)"},
    {.name = "db", .ctx = CTX_REDIS, .kind = KIND_INT, .min = 0, .max = 1000000, .def = "0",
     CONF_AT(struct conf_redis, db), .help = "database number"},
    {.name = "prefix", .ctx = CTX_REDIS, .kind = KIND_WORD, .args = "PREFIX", .max = 64,
     .def = "edgegate:", CONF_AT(struct conf_redis, prefix),
     .help = "starts every key: PREFIXaff:KEY and PREFIXhome:KEY"},
    {.name = "ttl", .ctx = CTX_REDIS, .kind = KIND_DURATION, .min = 1, .def = "1h",
     CONF_AT(struct conf_redis, ttl),
     .help = "affinity lifetime, refreshed on use"},
    {.name = "timeout", .ctx = CTX_REDIS, .kind = KIND_DURATION, .flags = F_POSITIVE,
     .def = "50ms", CONF_AT(struct conf_redis, timeout),
     .help = "a slower answer counts as Redis being down: the gateway answers without it"},
    {.name = "cache_size", .ctx = CTX_REDIS, .kind = KIND_INT, .min = 1, .max = 100000000,
     .def = "65536", CONF_AT(struct conf_redis, cache_size),
     .help = "sessions kept in the local cache in front of Redis"},
    {.name = "cache_ttl", .ctx = CTX_REDIS, .kind = KIND_DURATION, .def = "10s",
     CONF_AT(struct conf_redis, cache_ttl),
     .help = "a cached answer is used without asking Redis for this long, then revalidated in "
             "the background"},

    /* ---- datacenter block ---- */
    {.name = "priority", .ctx = CTX_DC, .kind = KIND_INT, .min = 0, .max = 1000000, .def = "1",
     CONF_AT(struct conf_dc, priority),
     .help = "lower is preferred; ties are broken by measured round-trip time"},
    {.name = "server", .ctx = CTX_DC, .kind = KIND_CUSTOM, .flags = F_REPEAT,
     .args = "HOST:PORT [OPTION ...]", .min_args = 1, .max_args = 9, .set = conf_set_server,
     .print = conf_print_servers,
     .help = "a server; a HOST name is resolved with c-ares and re-resolved"},
    {.name = "weight", .parent = "server", .ctx = CTX_DC, .kind = KIND_INT, .min = 1,
     .max = 1000, .def = "1", CONF_AT(struct conf_server, weight),
     .help = "share of the datacenter's new connections"},
    {.name = "tls", .parent = "server", .ctx = CTX_DC, .kind = KIND_FLAG,
     CONF_AT(struct conf_server, tls), .def_doc = "off", .help = "TLS to the server"},
    {.name = "verify", .parent = "server", .ctx = CTX_DC, .kind = KIND_PATH, .args = "CAFILE",
     CONF_AT(struct conf_server, verify), .def_doc = "no verification",
     .help = "with tls: check the server's certificate against CAFILE, and its name"},
    {.name = "sni", .parent = "server", .ctx = CTX_DC, .kind = KIND_HOST,
     CONF_AT(struct conf_server, sni), .def_doc = "HOST",
     .help = "with tls: the server name sent and verified"},
    {.name = "h2", .parent = "server", .ctx = CTX_DC, .kind = KIND_FLAG,
     CONF_AT(struct conf_server, h2), .def_doc = "off",
     .help = "the server speaks HTTP/2 (prior knowledge, or ALPN h2 with tls): the streams of "
             "HTTP/2 clients share its connections; HTTP/1.1 requests are not sent to it"},
    {.name = "check", .ctx = CTX_DC, .kind = KIND_CUSTOM,
     .args = "tcp|tls [OPTION ...] | http PATH [OPTION ...]", .min_args = 1, .max_args = 14,
     .set = conf_set_check, .print = conf_print_check, .def_doc = "none: passive checks only",
     .help = "active health check of every server: a connection, a TLS handshake, or an HTTP "
             "request (kept alive between rounds, over TLS for tls servers)"},
    {.name = "interval", .parent = "check", .ctx = CTX_DC, .kind = KIND_DURATION,
     .flags = F_POSITIVE, .def = "1s", CONF_AT(struct conf_check, interval),
     .help = "time between two checks of a server"},
    {.name = "timeout", .parent = "check", .ctx = CTX_DC, .kind = KIND_DURATION,
     .flags = F_POSITIVE, .def = "1s", CONF_AT(struct conf_check, timeout),
     .help = "a check slower than this failed"},
    {.name = "rise", .parent = "check", .ctx = CTX_DC, .kind = KIND_INT, .min = 1, .max = 100,
     .def = "2", CONF_AT(struct conf_check, rise),
     .help = "consecutive good checks that bring a server up"},
    {.name = "fall", .parent = "check", .ctx = CTX_DC, .kind = KIND_INT, .min = 1, .max = 100,
     .def = "3", CONF_AT(struct conf_check, fall),
     .help = "consecutive failed checks that mark a server down"},
    {.name = "expect", .parent = "check", .ctx = CTX_DC, .kind = KIND_INT, .args = "CODE",
     .min = 100, .max = 599, .only = "http", CONF_AT(struct conf_check, expect),
     .def_doc = "any 2xx or 3xx", .help = "http: the status required"},
    {.name = "host", .parent = "check", .ctx = CTX_DC, .kind = KIND_HOST, .only = "http",
     CONF_AT(struct conf_check, host), .def_doc = "the server's host",
     .help = "http: the Host header sent"},
    {.name = "min_servers", .ctx = CTX_DC, .kind = KIND_INT, .min = 1, .max = 100000,
     .def = "1", CONF_AT(struct conf_dc, min_servers),
     .help = "up servers needed for the datacenter to be healthy"},
    {.name = "passive", .ctx = CTX_DC, .kind = KIND_OPTIONS, .args = "OPTION VALUE ...",
     .help = "failures seen in traffic; a refused connection marks a server down at once"},
    {.name = "fall", .parent = "passive", .ctx = CTX_DC, .kind = KIND_INT, .min = 0,
     .max = 1000, .def = "3", CONF_AT(struct conf_dc, passive_fall),
     .help = "consecutive resets or timeouts that mark a server down; 0 disables it"},
    {.name = "timeout", .parent = "passive", .ctx = CTX_DC, .kind = KIND_DURATION,
     .flags = F_POSITIVE, .def = "10s", CONF_AT(struct conf_dc, passive_timeout),
     .help = "without active checks: how long a passively failed server stays down"},
    {.name = "5xx", .parent = "passive", .ctx = CTX_DC, .kind = KIND_INT, .min = 0,
     .max = 1000, .def = "0", CONF_AT(struct conf_dc, passive_5xx),
     .help = "consecutive answers with one of the `codes` that eject a server (outlier "
             "detection); 0: off"},
    {.name = "codes", .parent = "passive", .ctx = CTX_DC, .kind = KIND_WORD, .args = "CODE,...",
     .max = 200, .def = "502,503,504", CONF_AT(struct conf_dc, passive_codes),
     .help = "the 5xx statuses that count towards `5xx`, separated by commas"},
    {.name = "eject", .parent = "passive", .ctx = CTX_DC, .kind = KIND_DURATION,
     .flags = F_POSITIVE, .def = "10s", CONF_AT(struct conf_dc, passive_eject),
     .help = "how long an ejected server stays out the first time; each repeat doubles it, up "
             "to ten times"},
    {.name = "spill_threshold", .ctx = CTX_DC, .kind = KIND_INT, .min = 0, .max = 100,
     .def = "70", CONF_AT(struct conf_dc, spill_threshold),
     .help = "percent: below this share of its servers' weight up, a proportional share of new "
             "sessions (by a hash of the session key, the same on every gateway) goes to the "
             "next-nearest datacenter; 0: off"},
    {.name = "panic_threshold", .ctx = CTX_DC, .kind = KIND_INT, .min = 0, .max = 100,
     .def = "0", CONF_AT(struct conf_dc, panic_threshold),
     .help = "percent: below this share of its servers' weight up, servers marked down are "
             "used too rather than overloading the few left; 0: off"},
    {.name = "slow_start", .ctx = CTX_DC, .kind = KIND_DURATION, .def = "0",
     CONF_AT(struct conf_dc, slow_start),
     .help = "once the datacenter is healthy again, the share of new sessions it takes back "
             "grows from none to all over this time (by session key hash); 0: at once"},
    {.name = "max_ejected", .ctx = CTX_DC, .kind = KIND_INT, .min = 0, .max = 100, .def = "50",
     CONF_AT(struct conf_dc, max_ejected),
     .help = "percent of a datacenter's servers outlier detection may eject at once (one at "
             "least)"},
    {.name = "resolve_interval", .ctx = CTX_DC, .kind = KIND_DURATION, .flags = F_POSITIVE,
     .def = "30s", CONF_AT(struct conf_dc, resolve_interval),
     .help = "how often server names are resolved again (sooner when the DNS TTL is shorter)"},

    /* ---- listener block ---- */
    {.name = "listen", .ctx = CTX_LSN, .kind = KIND_CUSTOM, .flags = F_REPEAT,
     .args = "IP:PORT", .min_args = 1, .max_args = 1, .set = conf_set_listen,
     .print = conf_print_listens,
     .help = "an address to accept clients on ([IPv6]:PORT, *:PORT for any IPv4)"},
    {.name = "mode", .ctx = CTX_LSN, .kind = KIND_ENUM, .values = modes, .def = "http",
     CONF_AT(struct conf_listener, mode),
     .help = "http: requests are parsed, each one routed; tcp: bytes are relayed"},
    {.name = "tls", .ctx = CTX_LSN, .kind = KIND_CUSTOM, .flags = F_REPEAT,
     .args = "cert FILE key FILE", .min_args = 1, .max_args = 4, .set = conf_set_tls,
     .print = conf_print_tls,
     .help = "terminate TLS; the first certificate is the default, SNI picks another by its "
             "DNS names"},
    {.name = "session", .ctx = CTX_LSN, .kind = KIND_CUSTOM,
     .args = "header NAME|cookie NAME [issued]|client_ip|sni|none", .min_args = 1,
     .max_args = 3,
     .def = "none", .set = conf_set_session, .print = conf_print_session,
     .help = "the session key that keeps a client in one datacenter; none: every request is a "
             "new session; issued: only cookies a server set (Set-Cookie) pin a session, so "
             "clients cannot fill the affinity store with keys of their own"},
    {.name = "datacenters", .ctx = CTX_LSN, .kind = KIND_CUSTOM, .args = "NAME ...",
     .min_args = 1, .max_args = CONF_ANY_ARGS, .set = conf_set_dc_list,
     .print = conf_print_dc_list, .def_doc = "every datacenter",
     .help = "the datacenters this listener routes to"},
    {.name = "failback", .ctx = CTX_LSN, .kind = KIND_ENUM, .values = on_off, .def = "off",
     CONF_AT(struct conf_listener, failback),
     .help = "on: a session returns to its home datacenter once it is healthy again"},
    {.name = "retries", .ctx = CTX_LSN, .kind = KIND_INT, .min = 0, .max = CONF_MAX_RETRIES,
     .def = "2", CONF_AT(struct conf_listener, retries),
     .help = "attempts on another server or datacenter before the client sees an error"},
    {.name = "connect_timeout", .ctx = CTX_LSN, .kind = KIND_DURATION, .flags = F_POSITIVE,
     .def = "1s", CONF_AT(struct conf_listener, connect_timeout),
     .help = "a server connection must be established within it, else the next one is tried"},
    {.name = "idle_timeout", .ctx = CTX_LSN, .kind = KIND_DURATION, .flags = F_POSITIVE,
     .def = "60s", CONF_AT(struct conf_listener, idle_timeout),
     .help = "a connection without traffic for this long is closed"},
    {.name = "hold_timeout", .ctx = CTX_LSN, .kind = KIND_DURATION, .def = "5s",
     CONF_AT(struct conf_listener, hold_timeout),
     .help = "how long traffic waits while no datacenter is healthy before 503 (http) or close "
             "(tcp); 0 disables holding"},
    {.name = "hold_max", .ctx = CTX_LSN, .kind = KIND_INT, .min = 0, .max = 10000000,
     .def = "0", CONF_AT(struct conf_listener, hold_max),
     .help = "requests or connections held at once; past it, 503 with Retry-After (http) or "
             "close (tcp) at once; 0: no limit"},
    {.name = "try_timeout", .ctx = CTX_LSN, .kind = KIND_DURATION, .def = "0",
     CONF_AT(struct conf_listener, try_timeout),
     .help = "http: an attempt's first response byte must arrive within it, else an idempotent "
             "request goes to the next server; 0: off"},
    {.name = "hedge_after", .ctx = CTX_LSN, .kind = KIND_DURATION, .def = "0",
     CONF_AT(struct conf_listener, hedge_after),
     .help = "http: an idempotent request (or HTTP/2 stream) without an answer after it goes "
             "to the next datacenter too; the first answer wins; not towards h2 servers; 0: off"},
    {.name = "affinity", .ctx = CTX_LSN, .kind = KIND_ENUM, .values = pins, .def = "prefer",
     CONF_AT(struct conf_listener, pin),
     .help = "prefer: a session follows to the nearest healthy datacenter while its own is "
             "down; strict: it never moves (held, or 503)"},
    {.name = "on_down", .ctx = CTX_LSN, .kind = KIND_ENUM, .values = on_downs, .def = "close",
     CONF_AT(struct conf_listener, on_down),
     .help = "what a tunnel (tcp stream, WebSocket) to a server marked down becomes: close: it "
             "is closed so that the client reconnects to a healthy datacenter; keep: it is left "
             "to run (a server that is only unreachable for checks may still carry it)"},
    {.name = "handshake_timeout", .ctx = CTX_LSN, .kind = KIND_DURATION, .flags = F_POSITIVE,
     .def = "10s", CONF_AT(struct conf_listener, handshake_timeout),
     .help = "the TLS handshake (and PROXY header) must complete within it"},
    {.name = "request_timeout", .ctx = CTX_LSN, .kind = KIND_DURATION, .flags = F_POSITIVE,
     .def = "10s", CONF_AT(struct conf_listener, request_timeout),
     .help = "http: a request head must arrive within it (else 408)"},
    {.name = "response_timeout", .ctx = CTX_LSN, .kind = KIND_DURATION, .flags = F_POSITIVE,
     .def = "30s", CONF_AT(struct conf_listener, response_timeout),
     .help = "http: the first response byte must arrive within it; idempotent requests then "
             "fail over, others get 504"},
    {.name = "max_request_line", .ctx = CTX_LSN, .kind = KIND_SIZE, .min = 256, .max = 65535,
     .def = "8k", CONF_AT(struct conf_listener, max_request_line),
     .help = "http: a longer request line gets 414"},
    {.name = "max_header_size", .ctx = CTX_LSN, .kind = KIND_SIZE, .min = 1024, .max = 65535,
     .def = "15k", CONF_AT(struct conf_listener, max_header_size),
     .help = "http: a longer request head gets 431; it must fit in buffer_size minus 1k"},
    {.name = "max_headers", .ctx = CTX_LSN, .kind = KIND_INT, .min = 1,
     .max = CONF_MAX_HEADERS, .def = "100", CONF_AT(struct conf_listener, max_headers),
     .help = "http: more header lines get 431"},
    {.name = "replay_buffer", .ctx = CTX_LSN, .kind = KIND_SIZE, .min = 0, .max = 64 * MiB,
     .def = "64k", CONF_AT(struct conf_listener, replay_buffer),
     .help = "request bodies up to this size are kept to be replayed on failover"},
    {.name = "body_min_rate", .ctx = CTX_LSN, .kind = KIND_SIZE, .min = 0, .max = 1024 * MiB,
     .def = "0", CONF_AT(struct conf_listener, body_min_rate),
     .help = "http: bytes per second a request body (HTTP/2 streams' too) must average after "
             "its first 2 seconds, else 408 (a slow sender holds no server connection for long); "
             "0: off"},
    {.name = "buffer_request", .ctx = CTX_LSN, .kind = KIND_SIZE, .min = 0, .max = 64 * MiB,
     .def = "0", CONF_AT(struct conf_listener, buffer_request),
     .help = "http: a request body is received up to this size (at most replay_buffer) before "
             "a server is chosen, so that slow senders tie up no server connection; 0: off"},
    {.name = "max_connections", .ctx = CTX_LSN, .kind = KIND_INT, .min = 0, .max = 10000000,
     .def = "0", CONF_AT(struct conf_listener, max_connections),
     .help = "at the limit the listener stops accepting (clients wait in the kernel's queue); "
             "0: no limit"},
    {.name = "delayed_ack", .ctx = CTX_LSN, .kind = KIND_ENUM, .values = on_off, .def = "on",
     CONF_AT(struct conf_listener, delayed_ack),
     .help = "on: a new connection's first ACKs wait to ride on data (TCP_QUICKACK off on the "
             "listening socket, and on a server connection opened with bytes waiting to go): "
             "up to three packets fewer per connection; off for a client that sends twice "
             "without TCP_NODELAY before anything answers (its second send waits up to 40 ms)"},
    {.name = "defer_accept", .ctx = CTX_LSN, .kind = KIND_ENUM, .values = on_off,
     CONF_AT(struct conf_listener, defer_accept), CONF_LOC(struct conf_listener, defer_accept_at),
     .def_doc = "on in http mode, else off",
     .help = "on: a connection is handed to edgegate once the client's first bytes arrived "
             "(TCP_DEFER_ACCEPT): one wake-up per new connection instead of two; a client that "
             "sends nothing is accepted after a second or more, and holds no descriptor until "
             "then. Off for protocols whose server speaks first"},
    {.name = "forward_for", .ctx = CTX_LSN, .kind = KIND_ENUM, .values = on_off, .def = "on",
     CONF_AT(struct conf_listener, forward_for),
     .help = "http: append the client address to X-Forwarded-For and set X-Forwarded-Proto"},
    {.name = "forwarded", .ctx = CTX_LSN, .kind = KIND_ENUM, .values = on_off, .def = "off",
     CONF_AT(struct conf_listener, forwarded),
     .help = "http: add an RFC 7239 Forwarded header"},
    {.name = "http2", .ctx = CTX_LSN, .kind = KIND_ENUM, .values = on_off,
     CONF_AT(struct conf_listener, http2), CONF_LOC(struct conf_listener, http2_at),
     .def_doc = "on with tls, else off",
     .help = "http: HTTP/2 from clients: ALPN h2 with tls; without, a client that opens with "
             "the HTTP/2 preface (prior knowledge)"},
    {.name = "send_proxy", .ctx = CTX_LSN, .kind = KIND_ENUM, .values = proxy_versions,
     .def = "off", CONF_AT(struct conf_listener, send_proxy),
     .help = "open every server connection with a PROXY protocol header of this version"},
    {.name = "accept_proxy", .ctx = CTX_LSN, .kind = KIND_CUSTOM, .args = "[from CIDR ...]",
     .min_args = 0, .max_args = CONF_ANY_ARGS, .set = conf_set_accept_proxy,
     .print = conf_print_accept_proxy, .def_doc = "off",
     .help = "clients come through a balancer that sends a PROXY header (v1 or v2) first; "
             "from: who may send one"},
};

const size_t conf_ndirectives = ARRAY_LEN(conf_directives);
