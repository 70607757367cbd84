/* The stats endpoint: a small HTTP server on its own socket, answering one
 * request per connection. Pages are built fresh for each request; this is
 * not the data path, so clarity beats speed here. */
#include "gateway/stats.h"
#include "gateway/aff.h"
#include "gateway/buf.h"
#include "gateway/gw.h"
#include "gateway/http.h"
#include "gateway/log.h"
#include "gateway/rds.h"
#include "gateway/sbuf.h"
#include "gateway/sk.h"
#include "healthcheck/dc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static struct stats_counters own_counters;
struct stats_counters *counters = &own_counters;

/* Stats connections read into their own small buffer, not the pool's, so
 * that buffers_in_use shows the data path alone. */
struct sconn {
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

/* ---- pages ---- */

static void json_rtt(struct sbuf *b, double ms)
{
    if (ms < 0)
        sbuf_printf(b, "null");
    else
        sbuf_printf(b, "%.3f", ms);
}

static void json_server(struct sbuf *b, const struct srv *s)
{
    sbuf_printf(b, "{\"address\": \"");
    sbuf_json_str(b, s->name);
    sbuf_printf(b, "\", \"up\": %s, \"reason\": \"%s\", \"rtt_ms\": ", s->up ? "true" : "false",
                srv_reason_name(s->reason));
    json_rtt(b, s->rtt_ms);
    sbuf_printf(b,
                ", \"weight\": %d, \"connections_active\": %d, \"connections_total\": %lu, "
                "\"failures_total\": %lu, \"idle_pooled\": %d, \"bytes_in\": %lu, "
                "\"bytes_out\": %lu}",
                s->weight, s->conns_active, (unsigned long)s->conns_total,
                (unsigned long)s->fails_total, s->nidle, (unsigned long)s->bytes_in,
                (unsigned long)s->bytes_out);
}

static void json_dc(struct sbuf *b, const struct dc *dc, ev_tstamp now)
{
    sbuf_printf(b, "{\"name\": \"");
    sbuf_json_str(b, dc->name);
    sbuf_printf(b, "\", \"healthy\": %s, \"priority\": %d, \"rtt_ms\": ",
                dc->healthy ? "true" : "false", dc->cd->priority);
    json_rtt(b, dc->rtt_ms);
    sbuf_printf(b,
                ", \"nearest\": %s, \"servers_up\": %d, \"min_servers\": %d, "
                "\"transitions_total\": %lu, \"since_s\": %.0f, \"sessions_total\": %lu, "
                "\"requests_total\": %lu, \"servers\": [",
                dc->leader ? "true" : "false", dc->nup, dc->cd->min_servers,
                (unsigned long)dc->transitions, now - dc->changed_at,
                (unsigned long)dc->sessions_total, (unsigned long)dc->requests_total);
    for (int i = 0; i < dc->nsrvs; i++) {
        if (i)
            sbuf_add(b, ", ", 2);
        json_server(b, dc->srvs[i]);
    }
    sbuf_printf(b, "]}");
}

#define COUNTER(name) {#name, offsetof(struct stats_counters, name)}

static const struct {
    const char *name;
    size_t off;
} counter_fields[] = {
    COUNTER(connections_total), COUNTER(connections_active), COUNTER(requests_total),
    COUNTER(retries_total), COUNTER(failovers_total), COUNTER(client_errors_total),
    COUNTER(reloads_total), COUNTER(reload_failures_total), COUNTER(affinity_hits_total),
    COUNTER(affinity_misses_total), COUNTER(affinity_cache_hits_total),
    COUNTER(failbacks_total), COUNTER(bad_session_keys_total), COUNTER(held_total),
    COUNTER(hold_timeouts_total), COUNTER(http_400_total), COUNTER(http_502_total),
    COUNTER(http_503_total), COUNTER(http_504_total), COUNTER(bytes_in_total),
    COUNTER(bytes_out_total),
};

static uint64_t counter_value(size_t off)
{
    return *(const uint64_t *)((const char *)counters + off);
}

void stats_json(struct sbuf *b)
{
    ev_tstamp now = ev_time();
    sbuf_printf(b, "{\"version\": \"%s\", \"uptime_s\": %.0f, \"pid\": %d, \"draining\": %s, ",
                EG_VERSION, now - gw.started, (int)getpid(), gw.draining ? "true" : "false");
    sbuf_printf(b, "\"generation\": %u, \"datacenters\": [", gw.gen->id);
    for (int i = 0; i < gw.gen->ndcs; i++) {
        if (i)
            sbuf_add(b, ", ", 2);
        json_dc(b, gw.gen->dcs[i], ev_now(gw.loop));
    }
    struct rds_status rs;
    rds_status(&rs);
    sbuf_printf(b,
                "], \"redis\": {\"configured\": %s, \"connected\": %s, \"degraded_s\": %.1f, "
                "\"server\": \"%s\", \"commands_total\": %lu, \"timeouts_total\": %lu, "
                "\"errors_total\": %lu, \"reconnects_total\": %lu}, "
                "\"affinity\": {\"entries\": %lu}, \"counters\": {",
                rs.configured ? "true" : "false", rs.connected ? "true" : "false", rs.degraded_s,
                rs.server, rs.commands, rs.timeouts, rs.errors, rs.reconnects,
                (unsigned long)aff_count());
    for (size_t i = 0; i < ARRAY_LEN(counter_fields); i++)
        sbuf_printf(b, "%s\"%s\": %lu", i ? ", " : "", counter_fields[i].name,
                    (unsigned long)counter_value(counter_fields[i].off));
    sbuf_printf(b, ", \"held_now\": %d, \"buffers_in_use\": %lu}}\n", gw.nheld,
                (unsigned long)buf_in_use());
}

/* ---- connections ---- */

static void sconn_free(struct sconn *c)
{
    ev_timer_stop(gw.loop, &c->tm);
    sk_close(gw.loop, &c->sk);
    sbuf_free(&c->out);
    free(c);
}

static void respond(struct sconn *c, int status, const char *type, struct sbuf *body)
{
    const char *reason = status == 200 ? "OK" : status == 404 ? "Not Found"
                         : status == 503 ? "Service Unavailable" : "Bad Request";
    sbuf_printf(&c->out,
                "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                "Cache-Control: no-store\r\nConnection: close\r\n\r\n",
                status, reason, type, body->len);
    if (c->req.method != HTTP_HEAD)
        sbuf_add(&c->out, body->s ? body->s : "", body->len);
    sbuf_free(body);
}

static void route(struct sconn *c)
{
    struct sbuf body = {0};
    const char *t = c->in + c->req.target;
    size_t tl = c->req.target_len;
    const char *q = memchr(t, '?', tl);
    if (q)
        tl = (size_t)(q - t);
#define PATH_IS(p) (tl == strlen(p) && memcmp(t, p, tl) == 0)
    if (c->req.method != HTTP_GET && c->req.method != HTTP_HEAD) {
        sbuf_printf(&body, "only GET\n");
        respond(c, 400, "text/plain", &body);
    } else if (PATH_IS("/stats")) {
        stats_json(&body);
        respond(c, 200, "application/json", &body);
    } else if (PATH_IS("/healthz")) {
        sbuf_printf(&body, gw.draining ? "draining\n" : "ok\n");
        respond(c, gw.draining ? 503 : 200, "text/plain", &body);
    } else {
        sbuf_printf(&body, "not found\n");
        respond(c, 404, "text/plain", &body);
    }
#undef PATH_IS
}

static void on_conn_io(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    struct sconn *c = w->data;
    bool rd, wr;
    sk_ready(&c->sk, revents, &rd, &wr);
    if (rd && c->out.len == 0) {
        ssize_t n = sk_read(&c->sk, c->in + c->inlen, sizeof(c->in) - c->inlen);
        if (n == 0 || n == SK_ERROR) {
            sconn_free(c);
            return;
        }
        if (n > 0) {
            c->inlen += (size_t)n;
            struct http_limits lim = {.max_line = 4096, .max_head = 8192, .max_headers = 64};
            int rc = http_parse(&c->req, c->in, c->inlen, &lim);
            if (rc == HTTP_ERROR || (rc == HTTP_AGAIN && c->inlen == sizeof(c->in))) {
                sconn_free(c);
                return;
            }
            if (rc == HTTP_DONE)
                route(c);
        }
    }
    if (c->out.len > c->sent) {
        ssize_t n = sk_write(&c->sk, c->out.s + c->sent, c->out.len - c->sent);
        if (n == SK_ERROR) {
            sconn_free(c);
            return;
        }
        if (n > 0)
            c->sent += (size_t)n;
        if (c->sent == c->out.len) {
            sconn_free(c);
            return;
        }
    }
    sk_want(gw.loop, &c->sk, c->out.len == 0, c->out.len > c->sent);
}

static void on_conn_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop, (void)revents;
    sconn_free(w->data);
}

static void on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)w, (void)revents;
    for (int i = 0; i < 16; i++) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        struct sconn *c = calloc(1, sizeof(*c));
        if (!c)
            abort();
        sk_init(&c->sk, fd, on_conn_io, c);
        http_msg_init(&c->req, false, c->hdrs, ARRAY_LEN(c->hdrs));
        ev_timer_init(&c->tm, on_conn_timeout, 10, 0);
        c->tm.data = c;
        ev_timer_start(loop, &c->tm);
        sk_want(loop, &c->sk, true, false);
    }
}

static void stats_close(void)
{
    if (lfd < 0)
        return;
    ev_io_stop(gw.loop, &lio);
    close(lfd);
    lfd = -1;
}

int stats_apply(const struct conf *c, char *err, size_t errlen)
{
    if (!c->stats_on) {
        stats_close();
        return EG_OK;
    }
    if (lfd >= 0 && net_addr_equal(&laddr, &c->stats_addr))
        return EG_OK;
    char e[EG_ERRLEN];
    int fd = net_listen(&c->stats_addr, 128, false, e, sizeof(e));
    if (fd < 0) {
        snprintf(err, errlen, "%s: stats: %s", c->file, e);
        return EG_ERR;
    }
    stats_close();
    lfd = fd;
    laddr = c->stats_addr;
    ev_io_init(&lio, on_accept, fd, EV_READ);
    ev_io_start(gw.loop, &lio);
    return EG_OK;
}
