/* The monitoring endpoint (`stats ADDR;`): a small HTTP server on its own
 * socket, one request per connection.
 *
 *   /         the status page (stats_page.c), rendered here for each request
 *   /stats    JSON
 *   /metrics  Prometheus text format
 *   /healthz  200 while accepting traffic, 503 while draining
 *
 * Counters are summed over every process (see stats.c); health, RTT, last
 * checks and server lists are this process's objects, which hold the
 * machine's one view (healthcheck/view.c). Pages are built fresh for each request:
 * this is not the data path, clarity beats speed here. */
#include "gateway/ops/stats_server.h"
#include "gateway/ops/control.h"
#include "proto/control_req.h"
#include "gateway/ops/stats_page.h"
#include "gateway/ops/stats_rates.h"
#include "base/alloc.h"
#include "gateway/balance/affinity.h"
#include "base/buffer.h"
#include "gateway/balance/generation.h"
#include "gateway/balance/route.h"
#include "proto/http.h"
#include "base/log.h"
#include "gateway/balance/redis.h"
#include "base/strbuf.h"
#include "base/socket.h"
#include "base/counters.h"
#include "healthcheck/server_dns.h"
#include "healthcheck/check.h"
#include "healthcheck/datacenter.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Connections read into their own small buffer, not the pool's, so that
 * buffers_in_use shows the data path alone. */
struct mconn {
    struct sk sk;
    char in[8192];
    size_t inlen;
    struct sbuf out;
    size_t sent;
    ev_timer tm;
    struct http_msg req;
    struct http_hdr hdrs[64];
};

static int lfd = -1;
static ev_io lio;
static struct net_addr laddr;
static bool lreuse;
static char token[256];          /* zero-padded: compared whole */
static size_t token_len;
static ev_timer retry_tm;        /* out of descriptors: accepting paused */
static struct log_limit accept_limit;

/* ---- JSON ---- */

static void json_num(struct sbuf *b, double v, double scale)
{
    if (v < 0)
        sbuf_printf(b, "null");
    else
        sbuf_printf(b, "%.3f", v * scale);
}

static const char *jbool(bool v) { return v ? "true" : "false"; }

/* The last active check: what it found, in a word and in words, how long it
 * took and how long ago it ended; null before the first one. */
static void json_last_check(struct sbuf *b, const struct srv *s, ev_tstamp now)
{
    const struct check_result *c = &s->last_check;
    if (c->cause == CHECK_C_NONE) {
        sbuf_printf(b, "null");
        return;
    }
    char what[128];
    check_describe(c, what, sizeof(what));
    for (char *p = what; *p; p++) /* free text (OpenSSL's, strerror's): no quote survives */
        *p = *p == '"' || *p == '\\' || (unsigned char)*p < 0x20 ? '\'' : *p;
    sbuf_printf(b, "{\"ok\": %s, \"cause\": \"%s\", \"result\": \"%s\", \"duration_ms\": %.3f, "
                "\"age_s\": %.3f}", jbool(c->ok), check_cause_name(c->cause), what,
                c->duration_ms, now - c->at);
}

/* A server that is down, or a datacenter, shows no RTT: the last one
 * measured says nothing of now. */
static void json_server(struct sbuf *b, const struct dc *dc, const struct srv *s, ev_tstamp now)
{
    struct stats_srv_row r;
    stats_sum_srv(dc->name, s->name, &r);
    sbuf_printf(b, "{\"address\": \"%s\", \"up\": %s, \"reason\": \"%s\", \"since_s\": %.0f, "
                "\"last_check\": ", s->name, jbool(s->up), srv_reason_name(s->reason),
                now - s->since);
    json_last_check(b, s, now);
    sbuf_printf(b, ", \"rtt_ms\": ");
    json_num(b, s->up ? s->rtt_ms : -1, 1);
    sbuf_printf(b,
                ", \"weight\": %d, \"tls\": %s, \"connections_active\": %ld, "
                "\"connections_total\": %lu, \"failures_total\": %lu, \"idle_pooled\": %d, "
                "\"bytes_in\": %lu, \"bytes_out\": %lu",
                s->weight, jbool(s->tls != NULL), (long)r.connections_active,
                (unsigned long)r.connections_total, (unsigned long)r.failures_total, s->nidle,
                (unsigned long)r.bytes_in, (unsigned long)r.bytes_out);
    control_json_srv(b, s);
    sbuf_printf(b, "}");
}

static void json_dc(struct sbuf *b, const struct dc *dc, ev_tstamp now)
{
    struct stats_dc_row r;
    stats_sum_dc(dc->name, &r);
    sbuf_printf(b, "{\"name\": \"%s\", \"healthy\": %s, \"priority\": %d, \"rtt_ms\": ", dc->name,
                jbool(dc->healthy), dc->cd->priority);
    json_num(b, dc->healthy ? dc->rtt_ms : -1, 1);
    sbuf_printf(b,
                ", \"nearest\": %s, \"servers_up\": %d, \"min_servers\": %d, "
                "\"transitions_total\": %lu, \"since_s\": %.0f, \"sessions_total\": %lu, "
                "\"requests_total\": %lu, \"new_sessions_given_away\": %.3f",
                jbool(dc->leader), dc->nup, dc->cd->min_servers, (unsigned long)dc->transitions,
                now - dc->changed_at, (unsigned long)r.sessions_total,
                (unsigned long)r.requests_total, dc->healthy ? route_giveaway(dc, now) : 1.0);
    control_json_dc(b, dc);
    sbuf_printf(b, ", \"servers\": [");
    for (int i = 0; i < dc->nsrvs; i++) {
        sbuf_add(b, i ? ", " : "", i ? 2 : 0);
        json_server(b, dc, dc->srvs[i], now);
    }
    sbuf_printf(b, "]}");
}

/* Where the listener's new sessions go now: its nearest healthy datacenter,
 * the share it gives away (spill-over, slow start) and to which one. */
static void json_new_sessions(struct sbuf *b, const struct conf_listener *cl, ev_tstamp now)
{
    struct dc *first = route_nearest(gw.gen, cl);
    if (!first) {
        sbuf_printf(b, "{\"datacenter\": null, \"given_away\": 0, \"spill_to\": null}");
        return;
    }
    double away = route_giveaway(first, now);
    struct dc *next = away > 0 ? route_spill_target(gw.gen, cl, first) : NULL;
    sbuf_printf(b, "{\"datacenter\": \"%s\", \"given_away\": %.3f, \"spill_to\": ", first->name,
                next ? away : 0);
    sbuf_printf(b, next ? "\"%s\"}" : "null}", next ? next->name : "");
}

static void json_listener(struct sbuf *b, const struct conf_listener *cl, ev_tstamp now)
{
    struct stats_lsn_row r;
    stats_sum_lsn(cl->name, &r);
    sbuf_printf(b,
                "{\"name\": \"%s\", \"mode\": \"%s\", \"tls\": %s, \"connections_active\": %ld, "
                "\"held_now\": %ld, \"connections_total\": %lu, \"requests_total\": %lu, \"responses\": {"
                "\"1xx\": %lu, \"2xx\": %lu, \"3xx\": %lu, \"4xx\": %lu, \"5xx\": %lu}, "
                "\"new_sessions\": ",
                cl->name, cl->mode == MODE_TCP ? "tcp" : "http", jbool(cl->ncerts > 0),
                (long)r.connections_active, (long)r.held_now, (unsigned long)r.connections_total,
                (unsigned long)r.requests_total, (unsigned long)r.status[1],
                (unsigned long)r.status[2], (unsigned long)r.status[3],
                (unsigned long)r.status[4], (unsigned long)r.status[5]);
    json_new_sessions(b, cl, now);
    sbuf_printf(b, "}");
}

#define COUNTER(name) {#name, offsetof(struct stats_counters, name)}

static const struct {
    const char *name;
    size_t off;
} counter_fields[] = {
    COUNTER(connections_total), COUNTER(connections_active), COUNTER(requests_total),
    COUNTER(retries_total), COUNTER(failovers_total), COUNTER(inflight_moved_total),
    COUNTER(invalid_responses_total), COUNTER(retry_budget_exhausted_total),
    COUNTER(hedges_total), COUNTER(hedges_won_total),
    COUNTER(client_errors_total),
    COUNTER(reloads_total), COUNTER(reload_failures_total), COUNTER(affinity_hits_total),
    COUNTER(affinity_misses_total), COUNTER(affinity_cache_hits_total),
    COUNTER(failbacks_total), COUNTER(bad_session_keys_total), COUNTER(held_total),
    COUNTER(hold_expired_total), COUNTER(hold_full_total), COUNTER(http_4xx_total),
    COUNTER(http_5xx_other_total),
    COUNTER(http_502_total),
    COUNTER(http_503_total), COUNTER(http_504_total), COUNTER(bytes_in_total),
    COUNTER(bytes_out_total), COUNTER(tls_handshakes_total), COUNTER(tls_resumed_total),
    COUNTER(tls_failures_total), COUNTER(max_connections_hits_total),
    COUNTER(worker_restarts_total), COUNTER(log_lines_dropped_total),
    COUNTER(check_local_errors_total), COUNTER(h2_connections_total),
    COUNTER(h2_requests_total), COUNTER(h2_streams_active), COUNTER(h2_resets_client_total),
    COUNTER(h2_resets_refused_total), COUNTER(h2_resets_protocol_total),
    COUNTER(h2_resets_internal_total), COUNTER(h2_resets_cancel_total),
    COUNTER(h2_goaway_graceful_total), COUNTER(h2_goaway_error_total), COUNTER(h2_floods_total),
    COUNTER(h2_upstream_streams_total), COUNTER(control_requests_total),
    COUNTER(control_refused_total), COUNTER(operator_changes_total),
    COUNTER(operator_fleet_changes_total), COUNTER(session_moves_total),
};

/* Requests and connections by protocol: http mode's are HTTP/1.1 unless
 * they became HTTP/2. */
struct by_proto {
    uint64_t conns[2], reqs[2];
};

static void by_protocol(const struct stats_counters *c, struct by_proto *p)
{
    const struct conf *cf = gw.gen->conf;
    uint64_t http_conns = 0;
    for (int i = 0; i < cf->nlsns; i++) {
        struct stats_lsn_row r;
        stats_sum_lsn(cf->lsns[i].name, &r);
        if (cf->lsns[i].mode == MODE_HTTP)
            http_conns += r.connections_total;
    }
    p->conns[1] = c->h2_connections_total;
    p->conns[0] = http_conns > p->conns[1] ? http_conns - p->conns[1] : 0;
    p->reqs[1] = c->h2_requests_total;
    p->reqs[0] = c->requests_total - c->h2_requests_total;
}

static uint64_t field(const struct stats_counters *c, size_t off)
{
    return *(const uint64_t *)((const char *)c + off);
}

size_t stats_counter_count(void) { return ARRAY_LEN(counter_fields); }

const char *stats_counter_name(size_t i) { return counter_fields[i].name; }

uint64_t stats_counter_value(const struct stats_counters *c, size_t i)
{
    return field(c, counter_fields[i].off);
}

static void stats_json(struct sbuf *b)
{
    ev_tstamp now = ev_time();
    struct stats_counters c;
    stats_sum_counters(&c);
    const struct conf *cf = gw.gen->conf;
    sbuf_printf(b,
                "{\"version\": \"%s\", \"uptime_s\": %.0f, \"pid\": %d, \"workers\": %d, "
                "\"draining\": %s, \"generation\": %u, \"datacenters\": [",
                EG_VERSION, now - gw.started, (int)getpid(), gw.workers, jbool(gw.draining),
                gw.gen->id);
    for (int i = 0; i < gw.gen->ndcs; i++) {
        sbuf_add(b, i ? ", " : "", i ? 2 : 0);
        json_dc(b, gw.gen->dcs[i], ev_now(gw.loop));
    }
    sbuf_printf(b, "], \"listeners\": [");
    for (int i = 0; i < cf->nlsns; i++) {
        sbuf_add(b, i ? ", " : "", i ? 2 : 0);
        json_listener(b, &cf->lsns[i], ev_now(gw.loop));
    }
    struct redis_status rs;
    redis_status(&rs);
    sbuf_printf(b,
                "], \"redis\": {\"configured\": %s, \"connected\": %s, \"degraded_s\": %.1f, "
                "\"server\": \"%s\", \"commands_total\": %lu, \"timeouts_total\": %lu, "
                "\"errors_total\": %lu, \"reconnects_total\": %lu}, "
                "\"affinity\": {\"entries\": %lu}, ",
                jbool(rs.configured), jbool(rs.connected), rs.degraded_s, rs.server, rs.commands,
                rs.timeouts, rs.errors, rs.reconnects, (unsigned long)affinity_count());
    control_json_stats(b);
    sbuf_printf(b, ", \"counters\": {");
    for (size_t i = 0; i < ARRAY_LEN(counter_fields); i++)
        sbuf_printf(b, "%s\"%s\": %lu", i ? ", " : "", counter_fields[i].name,
                    (unsigned long)field(&c, counter_fields[i].off));
    struct by_proto bp;
    by_protocol(&c, &bp);
    sbuf_printf(b,
                ", \"held_now\": %d, \"buffers_in_use\": %lu, \"pooled_connections\": %lu, "
                "\"checks_total\": %lu, \"dns_queries_total\": %lu}, \"protocols\": {"
                "\"h1\": {\"connections_total\": %lu, \"requests_total\": %lu}, "
                "\"h2\": {\"connections_total\": %lu, \"requests_total\": %lu, "
                "\"streams_active\": %lu}}, ",
                (int)c.held_now, (unsigned long)buf_in_use(), (unsigned long)c.pooled_now, check_total(),
                dns_queries_total(), (unsigned long)bp.conns[0], (unsigned long)bp.reqs[0],
                (unsigned long)bp.conns[1], (unsigned long)bp.reqs[1],
                (unsigned long)c.h2_streams_active);
    rates_json(b);
    sbuf_printf(b, "}\n");
}

/* ---- Prometheus ---- */

static void prom_head(struct sbuf *b, const char *name, const char *type, const char *help)
{
    sbuf_printf(b, "# HELP edgegate_%s %s\n# TYPE edgegate_%s %s\n", name, help, name, type);
}

static void prom_hist(struct sbuf *b, const char *name, const char *labels,
                      const struct stats_hist *h)
{
    uint64_t cum = 0;
    for (int i = 0; i <= STATS_BUCKETS; i++) {
        cum += h->count[i];
        if (i < STATS_BUCKETS)
            sbuf_printf(b, "edgegate_%s_bucket{%s,le=\"%g\"} %lu\n", name, labels, stats_le[i],
                        (unsigned long)cum);
        else
            sbuf_printf(b, "edgegate_%s_bucket{%s,le=\"+Inf\"} %lu\n", name, labels,
                        (unsigned long)cum);
    }
    sbuf_printf(b, "edgegate_%s_sum{%s} %.6f\nedgegate_%s_count{%s} %lu\n", name, labels, h->sum,
                name, labels, (unsigned long)cum);
}

static void prom_counters(struct sbuf *b)
{
    struct stats_counters c;
    stats_sum_counters(&c);
    for (size_t i = 0; i < ARRAY_LEN(counter_fields); i++) {
        const char *n = counter_fields[i].name;
        bool gauge = strcmp(n, "connections_active") == 0 || strcmp(n, "h2_streams_active") == 0;
        prom_head(b, n, gauge ? "gauge" : "counter", gauge ? "open client connections"
                                                            : "see README: Stats");
        sbuf_printf(b, "edgegate_%s %lu\n", n, (unsigned long)field(&c, counter_fields[i].off));
    }
}

static void prom_datacenters(struct sbuf *b)
{
    const struct gen *g = gw.gen;
    prom_head(b, "datacenter_healthy", "gauge", "1 while the datacenter takes traffic");
    for (int i = 0; i < g->ndcs; i++)
        sbuf_printf(b, "edgegate_datacenter_healthy{dc=\"%s\"} %d\n", g->dcs[i]->name,
                    g->dcs[i]->healthy);
    prom_head(b, "datacenter_rtt_seconds", "gauge", "EWMA of check round trips");
    for (int i = 0; i < g->ndcs; i++)
        if (g->dcs[i]->healthy && g->dcs[i]->rtt_ms >= 0)
            sbuf_printf(b, "edgegate_datacenter_rtt_seconds{dc=\"%s\"} %.6f\n", g->dcs[i]->name,
                        g->dcs[i]->rtt_ms / 1000);
    prom_head(b, "datacenter_new_sessions_given_away", "gauge",
              "share of new sessions sent to the next datacenter (spill-over, slow start)");
    for (int i = 0; i < g->ndcs; i++)
        sbuf_printf(b, "edgegate_datacenter_new_sessions_given_away{dc=\"%s\"} %.3f\n",
                    g->dcs[i]->name,
                    g->dcs[i]->healthy ? route_giveaway(g->dcs[i], ev_now(gw.loop)) : 1.0);
    prom_head(b, "datacenter_requests_total", "counter", "requests routed to the datacenter");
    for (int i = 0; i < g->ndcs; i++) {
        struct stats_dc_row r;
        stats_sum_dc(g->dcs[i]->name, &r);
        sbuf_printf(b, "edgegate_datacenter_requests_total{dc=\"%s\"} %lu\n", g->dcs[i]->name,
                    (unsigned long)r.requests_total);
    }
    prom_head(b, "datacenter_sessions_total", "counter", "tcp connections routed to it");
    for (int i = 0; i < g->ndcs; i++) {
        struct stats_dc_row r;
        stats_sum_dc(g->dcs[i]->name, &r);
        sbuf_printf(b, "edgegate_datacenter_sessions_total{dc=\"%s\"} %lu\n", g->dcs[i]->name,
                    (unsigned long)r.sessions_total);
    }
}

static void prom_servers(struct sbuf *b)
{
    const struct gen *g = gw.gen;
    static const char *const metrics[][3] = {
        {"server_up", "gauge", "1 while the server is up"},
        {"server_connections_active", "gauge", "open connections to the server"},
        {"server_connections_total", "counter", "connections opened to the server"},
        {"server_failures_total", "counter", "refused, reset or timed out traffic"},
        {"server_bytes_in_total", "counter", "bytes received from the server"},
        {"server_bytes_out_total", "counter", "bytes sent to the server"},
    };
    for (size_t m = 0; m < ARRAY_LEN(metrics); m++) {
        prom_head(b, metrics[m][0], metrics[m][1], metrics[m][2]);
        for (int i = 0; i < g->ndcs; i++)
            for (int k = 0; k < g->dcs[i]->nsrvs; k++) {
                const struct srv *s = g->dcs[i]->srvs[k];
                struct stats_srv_row r;
                stats_sum_srv(g->dcs[i]->name, s->name, &r);
                double v = m == 0 ? s->up : m == 1 ? (double)r.connections_active
                           : m == 2 ? (double)r.connections_total
                           : m == 3 ? (double)r.failures_total
                           : m == 4 ? (double)r.bytes_in : (double)r.bytes_out;
                sbuf_printf(b, "edgegate_%s{dc=\"%s\",server=\"%s\"} %.0f\n", metrics[m][0],
                            g->dcs[i]->name, s->name, v);
            }
    }
    prom_head(b, "connect_duration_seconds", "histogram",
              "time to connect to a server (with its TLS handshake)");
    for (int i = 0; i < g->ndcs; i++)
        for (int k = 0; k < g->dcs[i]->nsrvs; k++) {
            struct stats_srv_row r;
            char labels[200];
            stats_sum_srv(g->dcs[i]->name, g->dcs[i]->srvs[k]->name, &r);
            snprintf(labels, sizeof(labels), "dc=\"%s\",server=\"%s\"", g->dcs[i]->name,
                     g->dcs[i]->srvs[k]->name);
            prom_hist(b, "connect_duration_seconds", labels, &r.connect);
        }
}

static void prom_listeners(struct sbuf *b)
{
    const struct conf *c = gw.gen->conf;
    prom_head(b, "listener_connections_active", "gauge", "open client connections");
    for (int i = 0; i < c->nlsns; i++) {
        struct stats_lsn_row r;
        stats_sum_lsn(c->lsns[i].name, &r);
        sbuf_printf(b, "edgegate_listener_connections_active{listener=\"%s\"} %ld\n",
                    c->lsns[i].name, (long)r.connections_active);
    }
    prom_head(b, "listener_responses_total", "counter", "responses by status class");
    for (int i = 0; i < c->nlsns; i++) {
        struct stats_lsn_row r;
        stats_sum_lsn(c->lsns[i].name, &r);
        for (int k = 1; k <= 5; k++)
            sbuf_printf(b, "edgegate_listener_responses_total{listener=\"%s\",class=\"%dxx\"} %lu\n",
                        c->lsns[i].name, k, (unsigned long)r.status[k]);
    }
    prom_head(b, "request_duration_seconds", "histogram",
              "time from a request's head to the end of its response");
    for (int i = 0; i < c->nlsns; i++) {
        struct stats_lsn_row r;
        char labels[100];
        stats_sum_lsn(c->lsns[i].name, &r);
        snprintf(labels, sizeof(labels), "listener=\"%s\"", c->lsns[i].name);
        prom_hist(b, "request_duration_seconds", labels, &r.request);
    }
}

static void prom_redis(struct sbuf *b)
{
    struct redis_status rs;
    redis_status(&rs);
    prom_head(b, "redis_connected", "gauge", "1 while Redis answers");
    sbuf_printf(b, "edgegate_redis_connected %d\n", rs.connected);
    prom_head(b, "redis_degraded_seconds_total", "counter", "time spent without Redis");
    sbuf_printf(b, "edgegate_redis_degraded_seconds_total %.1f\n", rs.degraded_s);
    prom_head(b, "redis_timeouts_total", "counter", "commands slower than the timeout");
    sbuf_printf(b, "edgegate_redis_timeouts_total %lu\n", rs.timeouts);
}

static void metrics(struct sbuf *b)
{
    prom_head(b, "info", "gauge", "build information");
    sbuf_printf(b, "edgegate_info{version=\"%s\"} 1\n", EG_VERSION);
    prom_head(b, "uptime_seconds", "gauge", "seconds since start");
    sbuf_printf(b, "edgegate_uptime_seconds %.0f\n", ev_time() - gw.started);
    prom_counters(b);
    prom_datacenters(b);
    prom_servers(b);
    prom_listeners(b);
    prom_redis(b);
    struct stats_counters c;
    stats_sum_counters(&c);
    prom_head(b, "held_requests", "gauge", "requests waiting for a healthy datacenter");
    sbuf_printf(b, "edgegate_held_requests %lu\n", (unsigned long)c.held_now);
    prom_head(b, "pooled_connections", "gauge", "idle keep-alive connections to servers");
    sbuf_printf(b, "edgegate_pooled_connections %lu\n", (unsigned long)c.pooled_now);
    struct by_proto bp;
    by_protocol(&c, &bp);
    prom_head(b, "protocol_connections_total", "counter", "client connections by protocol");
    for (int i = 0; i < 2; i++)
        sbuf_printf(b, "edgegate_protocol_connections_total{protocol=\"h%d\"} %lu\n", i + 1,
                    (unsigned long)bp.conns[i]);
    prom_head(b, "protocol_requests_total", "counter", "requests by protocol");
    for (int i = 0; i < 2; i++)
        sbuf_printf(b, "edgegate_protocol_requests_total{protocol=\"h%d\"} %lu\n", i + 1,
                    (unsigned long)bp.reqs[i]);
    prom_head(b, "h2_resets_total", "counter", "HTTP/2 streams reset, by cause");
    sbuf_printf(b,
                "edgegate_h2_resets_total{cause=\"client\"} %lu\n"
                "edgegate_h2_resets_total{cause=\"refused\"} %lu\n"
                "edgegate_h2_resets_total{cause=\"protocol\"} %lu\n"
                "edgegate_h2_resets_total{cause=\"internal\"} %lu\n"
                "edgegate_h2_resets_total{cause=\"cancel\"} %lu\n",
                (unsigned long)c.h2_resets_client_total, (unsigned long)c.h2_resets_refused_total,
                (unsigned long)c.h2_resets_protocol_total,
                (unsigned long)c.h2_resets_internal_total, (unsigned long)c.h2_resets_cancel_total);
    prom_head(b, "checks_total", "counter", "active health checks performed");
    sbuf_printf(b, "edgegate_checks_total %lu\n", check_total());
    prom_head(b, "dns_queries_total", "counter", "DNS queries sent");
    sbuf_printf(b, "edgegate_dns_queries_total %lu\n", dns_queries_total());
    control_metrics(b);
}

/* ---- requests ---- */

static void mconn_free(struct mconn *c)
{
    ev_timer_stop(gw.loop, &c->tm);
    sk_close(gw.loop, &c->sk);
    sbuf_free(&c->out);
    free(c);
}

static void respond(struct mconn *c, int status, const char *type, struct sbuf *body)
{
    const char *reason = status == 200   ? "OK"
                         : status == 401 ? "Unauthorized"
                         : status == 404 ? "Not Found"
                         : status == 405 ? "Method Not Allowed"
                         : status == 503 ? "Service Unavailable"
                                         : "Bad Request";
    sbuf_printf(&c->out,
                "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                "Cache-Control: no-store\r\nConnection: close\r\n%s\r\n",
                status, reason, type, body->len,
                status == 401 ? "WWW-Authenticate: Bearer\r\n" : "");
    if (c->req.method != HTTP_HEAD)
        sbuf_add(&c->out, body->s ? body->s : "", body->len);
    sbuf_free(body);
}

/* Whether S (N bytes) is the token, in a time that tells nothing about the
 * token: neither how many of its bytes S got right (CRYPTO_memcmp) nor its
 * length (both sides are compared over the whole zero-padded array). Only
 * N itself, which the client chose, decides the early refusal. */
static bool token_equal(const char *s, size_t n)
{
    char padded[sizeof(token)] = {0};
    if (n >= sizeof(token))
        return false;
    memcpy(padded, s, n);
    return (CRYPTO_memcmp(padded, token, sizeof(token)) == 0) & (n == token_len);
}

/* The token may come as "Authorization: Bearer T" or, for a browser
 * opening the page, as ?token=T (QUERY, NULL when not accepted). */
static bool authorized(const struct mconn *c, const char *query, size_t qlen)
{
    if (!token_len)
        return true;
    for (int i = 0; i < c->req.nhdrs; i++) {
        const struct http_hdr *h = &c->req.hdrs[i];
        if (h->name_len == 13 && strncasecmp(c->in + h->name, "authorization", 13) == 0 &&
            h->val_len >= 7 && strncasecmp(c->in + h->val, "Bearer ", 7) == 0 &&
            token_equal(c->in + h->val + 7, h->val_len - 7))
            return true;
    }
    for (const char *q = query, *end = query + qlen; q && q < end;) {
        const char *amp = memchr(q, '&', (size_t)(end - q));
        size_t n = amp ? (size_t)(amp - q) : (size_t)(end - q);
        if (n >= 6 && memcmp(q, "token=", 6) == 0 && token_equal(q + 6, n - 6))
            return true;
        q = amp ? amp + 1 : NULL;
    }
    return false;
}

static void route(struct mconn *c)
{
    struct sbuf body = {0};
    const char *t = c->in + c->req.target;
    size_t tl = c->req.target_len;
    const char *q = memchr(t, '?', tl);
    size_t ql = q ? tl - (size_t)(q - t) - 1 : 0;
    if (q)
        tl = (size_t)(q - t);
#define PATH_IS(p) (tl == strlen(p) && memcmp(t, p, tl) == 0)
    if (c->req.method != HTTP_GET && c->req.method != HTTP_HEAD) {
        sbuf_printf(&body, "GET only\n");
        respond(c, 405, "text/plain", &body);
    } else if (PATH_IS("/healthz")) {
        sbuf_printf(&body, gw.draining ? "draining\n" : "ok\n");
        respond(c, gw.draining ? 503 : 200, "text/plain", &body);
    } else if (!authorized(c, q ? q + 1 : NULL, ql)) {
        sbuf_printf(&body, "a bearer token is required\n");
        respond(c, 401, "text/plain", &body);
    } else if (PATH_IS("/stats")) {
        stats_json(&body);
        respond(c, 200, "application/json", &body);
    } else if (PATH_IS("/metrics")) {
        metrics(&body);
        respond(c, 200, "text/plain; version=0.0.4", &body);
    } else if (PATH_IS("/")) {
        stats_page(&body);
        respond(c, 200, "text/html; charset=utf-8", &body);
    } else {
        sbuf_printf(&body, "not found\n");
        respond(c, 404, "text/plain", &body);
    }
#undef PATH_IS
}

/* Requests under /control go to the control API with what was found of
 * their token. A change needs it in the Authorization header: a token in a
 * URL ends up in shell histories and proxy logs. */
static bool adopt_control(struct mconn *c)
{
    const char *t = c->in + c->req.target;
    const char *q = memchr(t, '?', c->req.target_len);
    size_t pl = q ? (size_t)(q - t) : c->req.target_len;
    if (!ctl_path_claimed(t, pl))
        return false;
    bool header_only = ctl_method_changes(c->req.method) || !q;
    struct control_auth auth = {
        .token_set = token_len > 0,
        .ok = authorized(c, header_only ? NULL : q + 1, q ? c->req.target_len - pl - 1 : 0),
    };
    ev_timer_stop(gw.loop, &c->tm);
    ev_io_stop(gw.loop, &c->sk.io);
    control_adopt(c->sk.fd, c->in, c->inlen, &auth);
    sbuf_free(&c->out);
    free(c);
    return true;
}

static void on_conn_io(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    struct mconn *c = w->data;
    bool rd, wr;
    sk_ready(&c->sk, revents, &rd, &wr);
    if (rd && c->out.len == 0) {
        ssize_t n = sk_read(&c->sk, c->in + c->inlen, sizeof(c->in) - c->inlen);
        if (n == 0 || n == EG_ERR) {
            mconn_free(c);
            return;
        }
        if (n > 0) {
            c->inlen += (size_t)n;
            struct http_limits lim = {.max_line = 4096, .max_head = 8192, .max_headers = 64};
            int rc = http_parse(&c->req, c->in, c->inlen, &lim);
            if (rc == EG_ERR || (rc == EG_AGAIN && c->inlen == sizeof(c->in))) {
                mconn_free(c);
                return;
            }
            if (rc == EG_OK && adopt_control(c))
                return;
            if (rc == EG_OK)
                route(c);
        }
    }
    if (c->out.len > c->sent) {
        ssize_t n = sk_write(&c->sk, c->out.s + c->sent, c->out.len - c->sent);
        if (n == EG_ERR) {
            mconn_free(c);
            return;
        }
        if (n > 0)
            c->sent += (size_t)n;
        if (c->sent == c->out.len) {
            mconn_free(c);
            return;
        }
    }
    sk_want(gw.loop, &c->sk, c->out.len == 0, c->out.len > c->sent);
}

static void on_conn_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop, (void)revents;
    mconn_free(w->data);
}

static void on_retry(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)w, (void)revents;
    if (lfd >= 0)
        ev_io_start(loop, &lio);
}

/* Out of descriptors (or buffers, or memory), the connection waiting to be
 * accepted stays in the queue and the socket stays readable: trying again
 * at once would spin the loop. Wait a little, as the data listeners do. */
static void accept_pause(struct ev_loop *loop)
{
    log_limited(&accept_limit, 10, LOG_WARN, "stats: accept: %s, pausing accepts for 100ms",
                strerror(errno));
    ev_io_stop(loop, &lio);
    ev_timer_stop(loop, &retry_tm);
    ev_timer_set(&retry_tm, 0.1, 0);
    ev_timer_start(loop, &retry_tm);
}

static void on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)w, (void)revents;
    for (int i = 0; i < 16; i++) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (net_local_exhaustion(errno))
                accept_pause(loop);
            return;
        }
        struct mconn *c = eg_calloc(1, sizeof(*c));
        sk_init(&c->sk, fd, on_conn_io, c);
        http_msg_init(&c->req, false, c->hdrs, ARRAY_LEN(c->hdrs));
        ev_timer_init(&c->tm, on_conn_timeout, 10, 0);
        c->tm.data = c;
        ev_timer_start(loop, &c->tm);
        sk_want(loop, &c->sk, true, false);
    }
}

static bool is_loopback(const struct net_addr *a)
{
    if (a->ss.ss_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)&a->ss)->sin_addr.s_addr) >> 24) == 127;
    return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)&a->ss)->sin6_addr);
}

static void stats_server_close(void)
{
    if (lfd < 0)
        return;
    ev_io_stop(gw.loop, &lio);
    ev_timer_stop(gw.loop, &retry_tm);
    close(lfd);
    lfd = -1;
}

/* The token changes only with a configuration that is applied: a reload
 * that fails keeps the running one's. */
static void set_token(const struct conf *c)
{
    memset(token, 0, sizeof(token));
    snprintf(token, sizeof(token), "%s", c->stats_token ? c->stats_token : "");
    token_len = strlen(token);
}

int stats_server_apply(const struct conf *c, bool reuseport, char *err, size_t errlen)
{
    if (!c->stats_on) {
        stats_server_close();
        rates_stop();
        set_token(c);
        return EG_OK;
    }
    if (lfd >= 0 && net_addr_equal(&laddr, &c->stats_addr) && lreuse == reuseport) {
        set_token(c);
        return EG_OK;
    }
    char e[EG_ERRLEN];
    int fd = net_listen(&c->stats_addr, 128, reuseport, e, sizeof(e));
    if (fd < 0) {
        snprintf(err, errlen, "%s: stats: %s", c->file, e);
        return EG_ERR;
    }
    stats_server_close();
    set_token(c);
    rates_start(gw.loop);
    if (!token[0] && !is_loopback(&c->stats_addr))
        log_warn("stats on a non-loopback address without stats_token: anyone who can "
                 "reach it reads it");
    lfd = fd;
    laddr = c->stats_addr;
    lreuse = reuseport;
    ev_io_init(&lio, on_accept, fd, EV_READ);
    ev_io_start(gw.loop, &lio);
    ev_timer_init(&retry_tm, on_retry, 0, 0);
    return EG_OK;
}
