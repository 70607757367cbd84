/* The control API.
 *
 * A connection comes from the stats endpoint once the head of a /control
 * request is read: BODY (the rest of Content-Length) -> [WAIT: Redis
 * answers a session request] -> WRITE -> LINGER (our side shut, the
 * client's reads dropped until it closes) -> closed. One request per
 * connection, as on the stats endpoint.
 *
 * Every check happens before anything changes, in this order: the token
 * (401; 403 for a change from beyond loopback when no token is set), the
 * body's framing (411, 413), the path, method and body (404, 405, 400,
 * proto/control_req.c), then the names against the running configuration
 * (404). A refused request changes nothing and is counted.
 *
 * Operator state goes to healthcheck/admin.c (which logs it and applies it
 * to this machine's processes) and, with Redis, to the fleet
 * (gateway/balance/fleet.c). Session requests go to Redis when it is
 * configured, to the in-memory store otherwise. */
#include "gateway/ops/control.h"
#include "base/alloc.h"
#include "base/counters.h"
#include "base/log.h"
#include "base/net.h"
#include "base/socket.h"
#include "gateway/balance/affinity.h"
#include "gateway/balance/fleet.h"
#include "gateway/balance/generation.h"
#include "gateway/balance/redis.h"
#include "healthcheck/admin.h"
#include "healthcheck/datacenter.h"
#include "proto/control_req.h"
#include "proto/http.h"
#include "proto/json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define HEAD_MAX 8192
#define TIMEOUT 10.0

enum cconn_state { CC_BODY, CC_WAIT, CC_WRITE, CC_LINGER };

/* After the answer, what the client still sends (a body refused unread) is
 * read and dropped for this long before closing: closing with unread bytes
 * would reset the connection, and the client could lose the answer. */
#define LINGER 1.0

struct cconn {
    struct sk sk;
    ev_timer tm;
    enum cconn_state state;
    bool dead;                  /* closed while Redis was asked: freed by its answer */
    struct control_auth auth;
    bool loopback;
    char peer[64];
    struct http_msg req;
    struct http_hdr hdrs[64];
    struct ctl_cmd cmd;
    struct sbuf out;
    size_t sent;
    size_t inlen;
    char in[HEAD_MAX + CTL_BODY_MAX];
};

static void on_io(struct ev_loop *loop, ev_io *w, int revents);

/* ---- JSON of operator state ---- */

static void json_name(struct sbuf *b, const char *member, const char *s)
{
    sbuf_printf(b, "\"%s\": ", member);
    json_write_str(b, s, strlen(s));
}

bool control_dc_admin(const struct dc *dc, struct admin_entry *e, double *leave_in_s)
{
    if (!admin_get(dc->name, "", e))
        return false;
    double left = e->state == ADMIN_DRAIN ? e->until - ev_now(gw.loop) : 0;
    *leave_in_s = left > 0 ? left : 0;
    return true;
}

void control_json_dc(struct sbuf *b, const struct dc *dc)
{
    struct admin_entry e;
    double left;
    sbuf_printf(b, ", \"admin\": \"%s\", \"drained\": %s", admin_state_name(dc->admin),
                dc->drained ? "true" : "false");
    if (!control_dc_admin(dc, &e, &left))
        return;
    sbuf_printf(b, ", \"admin_since\": %.3f, \"sessions_leave_in_s\": %.1f, ", e.since, left);
    json_name(b, "admin_origin", e.origin);
}

void control_json_srv(struct sbuf *b, const struct srv *s)
{
    sbuf_printf(b, ", \"admin\": \"%s\", \"weight_configured\": %d", admin_state_name(s->admin),
                s->cs->weight);
}

static const char *fleet_word(void);

static void json_srv(struct sbuf *b, const struct srv *s, bool applied)
{
    struct admin_entry e;
    sbuf_printf(b, "{");
    json_name(b, "address", s->name);
    sbuf_printf(b, ", \"up\": %s, \"reason\": \"%s\", \"state\": \"%s\", \"weight\": %d, "
                "\"weight_configured\": %d",
                s->up ? "true" : "false", srv_reason_name(s->reason), admin_state_name(s->admin),
                s->weight, s->cs->weight);
    if (admin_get(s->dc->name, s->name, &e)) {
        sbuf_printf(b, ", ");
        json_name(b, "origin", e.origin);
    }
    if (applied)
        sbuf_printf(b, ", \"applied\": \"%s\"", fleet_word());
    sbuf_printf(b, "}");
}

/* APPLIED: the answer to a change, saying how far it went. */
static void json_dc(struct sbuf *b, const struct dc *dc, bool applied)
{
    sbuf_printf(b, "{");
    json_name(b, "name", dc->name);
    sbuf_printf(b, ", \"state\": \"%s\", \"healthy\": %s, \"servers_up\": %d, \"drained\": %s",
                admin_state_name(dc->admin), dc->healthy ? "true" : "false", dc->nup,
                dc->drained ? "true" : "false");
    struct admin_entry e;
    double left;
    if (control_dc_admin(dc, &e, &left)) {
        sbuf_printf(b, ", \"since\": %.3f, \"sessions_leave_in_s\": %.1f, ", e.since, left);
        json_name(b, "origin", e.origin);
    }
    sbuf_printf(b, ", \"servers\": [");
    for (int i = 0; i < dc->nsrvs; i++) {
        sbuf_printf(b, i ? ", " : "");
        json_srv(b, dc->srvs[i], false);
    }
    sbuf_printf(b, "]");
    if (applied)
        sbuf_printf(b, ", \"applied\": \"%s\"", fleet_word());
    sbuf_printf(b, "}");
}

/* How far a change went: this machine only (no Redis), written to Redis
 * (the fleet has it), or waiting for Redis to come back. */
static const char *fleet_word(void)
{
    if (!fleet_on())
        return "local";
    return fleet_connected() ? "fleet" : "pending";
}

void control_fleet(struct control_fleet *f)
{
    f->redis = fleet_on();
    f->connected = fleet_connected();
    f->subscribed = fleet_ready();
    f->pending = fleet_pending();
    f->bad_messages = fleet_bad_messages();
}

static void json_fleet(struct sbuf *b)
{
    struct control_fleet f;
    control_fleet(&f);
    sbuf_printf(b,
                "{\"redis\": %s, \"connected\": %s, \"subscribed\": %s, \"pending\": %d, "
                "\"bad_messages\": %lu}",
                f.redis ? "true" : "false", f.connected ? "true" : "false",
                f.subscribed ? "true" : "false", f.pending, f.bad_messages);
}

static void json_changes(struct sbuf *b)
{
    struct admin_event ev[ADMIN_EVENTS];
    int n = admin_events(ev, ADMIN_EVENTS);
    sbuf_printf(b, "[");
    for (int i = 0; i < n; i++) {
        sbuf_printf(b, "%s{\"at\": %.3f, ", i ? ", " : "", ev[i].at);
        json_name(b, "origin", ev[i].origin);
        sbuf_printf(b, ", ");
        json_name(b, "what", ev[i].what);
        sbuf_printf(b, "}");
    }
    sbuf_printf(b, "]");
}

static void json_overview(struct sbuf *b)
{
    sbuf_printf(b, "{\"fleet\": ");
    json_fleet(b);
    sbuf_printf(b, ", \"datacenters\": [");
    for (int i = 0; i < gw.gen->ndcs; i++) {
        sbuf_printf(b, i ? ", " : "");
        json_dc(b, gw.gen->dcs[i], false);
    }
    sbuf_printf(b, "], \"changes\": ");
    json_changes(b);
    sbuf_printf(b, "}\n");
}

void control_json_stats(struct sbuf *b)
{
    sbuf_printf(b, "\"operator\": {\"fleet\": ");
    json_fleet(b);
    sbuf_printf(b, ", \"changes\": ");
    json_changes(b);
    sbuf_printf(b, "}");
}

void control_metrics(struct sbuf *b)
{
    const struct gen *g = gw.gen;
    sbuf_printf(b, "# HELP edgegate_datacenter_admin_state operator state (1 for the one it "
                   "is in)\n# TYPE edgegate_datacenter_admin_state gauge\n");
    for (int i = 0; i < g->ndcs; i++)
        for (int st = ADMIN_READY; st <= ADMIN_DOWN; st++)
            sbuf_printf(b, "edgegate_datacenter_admin_state{dc=\"%s\",state=\"%s\"} %d\n",
                        g->dcs[i]->name, admin_state_name(st), g->dcs[i]->admin == st);
    sbuf_printf(b, "# HELP edgegate_server_admin_state operator state (1 for the one it is "
                   "in)\n# TYPE edgegate_server_admin_state gauge\n");
    for (int i = 0; i < g->ndcs; i++)
        for (int k = 0; k < g->dcs[i]->nsrvs; k++)
            for (int st = ADMIN_READY; st <= ADMIN_DOWN; st++)
                sbuf_printf(b,
                            "edgegate_server_admin_state{dc=\"%s\",server=\"%s\",state=\"%s\"} "
                            "%d\n",
                            g->dcs[i]->name, g->dcs[i]->srvs[k]->name, admin_state_name(st),
                            g->dcs[i]->srvs[k]->admin == st);
    sbuf_printf(b, "# HELP edgegate_server_weight weight in use (the operator's or the "
                   "configured one)\n# TYPE edgegate_server_weight gauge\n");
    for (int i = 0; i < g->ndcs; i++)
        for (int k = 0; k < g->dcs[i]->nsrvs; k++)
            sbuf_printf(b, "edgegate_server_weight{dc=\"%s\",server=\"%s\"} %d\n",
                        g->dcs[i]->name, g->dcs[i]->srvs[k]->name, g->dcs[i]->srvs[k]->weight);
    sbuf_printf(b, "# HELP edgegate_operator_pending operator changes not yet written to "
                   "Redis\n# TYPE edgegate_operator_pending gauge\nedgegate_operator_pending "
                   "%d\n",
                fleet_pending());
}

/* ---- the connection ---- */

static void cconn_free(struct cconn *c)
{
    ev_timer_stop(gw.loop, &c->tm);
    sk_close(gw.loop, &c->sk);
    sbuf_free(&c->out);
    if (c->state == CC_WAIT)
        c->dead = true; /* the Redis answer frees it */
    else
        free(c);
}

static const char *reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    default: return "Service Unavailable";
    }
}

/* Sends STATUS with BODY (taken) and closes once written. */
static void reply(struct cconn *c, int status, struct sbuf *body)
{
    if (status >= 400 && status < 500)
        counters->control_refused_total++;
    sbuf_printf(&c->out,
                "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                "Cache-Control: no-store\r\nConnection: close\r\n%s\r\n",
                status, reason(status), body->len,
                status == 401 ? "WWW-Authenticate: Bearer\r\n" : "");
    if (c->req.method != HTTP_HEAD)
        sbuf_add(&c->out, body->s ? body->s : "", body->len);
    sbuf_free(body);
    c->state = CC_WRITE;
    sk_want(gw.loop, &c->sk, false, true);
}

static void reply_error(struct cconn *c, int status, const char *msg)
{
    struct sbuf b = {0};
    sbuf_printf(&b, "{\"error\": ");
    json_write_str(&b, msg, strlen(msg));
    sbuf_printf(&b, "}\n");
    reply(c, status, &b);
}

static struct dc *find_dc(const char *name)
{
    for (int i = 0; i < gw.gen->ndcs; i++)
        if (strcmp(gw.gen->dcs[i]->name, name) == 0)
            return gw.gen->dcs[i];
    return NULL;
}

static struct srv *find_srv(const struct dc *dc, const char *name)
{
    for (int i = 0; i < dc->nsrvs; i++)
        if (strcmp(dc->srvs[i]->name, name) == 0)
            return dc->srvs[i];
    return NULL;
}

/* ---- operator state ---- */

static void answer_dc(struct cconn *c, const struct dc *dc, bool changed)
{
    struct sbuf b = {0};
    json_dc(&b, dc, changed);
    sbuf_printf(&b, "\n");
    reply(c, 200, &b);
}

static void answer_srv(struct cconn *c, const struct srv *s, bool changed)
{
    struct sbuf b = {0};
    json_srv(&b, s, changed);
    sbuf_printf(&b, "\n");
    reply(c, 200, &b);
}

/* Applies E here, then to the fleet. */
static void change(struct admin_entry *e, const struct cconn *c)
{
    snprintf(e->origin, sizeof(e->origin), "%s", c->peer);
    admin_set(e, fleet_on());
    counters->operator_changes_total++;
    fleet_push();
}

static void put_dc(struct cconn *c, struct dc *dc)
{
    struct admin_entry e = {.state = (uint8_t)c->cmd.state, .weight = -1}, cur;
    snprintf(e.dc, sizeof(e.dc), "%s", dc->name);
    double now = ev_now(gw.loop);
    bool draining = admin_get(dc->name, "", &cur) && cur.state == ADMIN_DRAIN;
    if (e.state == ADMIN_DRAIN && draining && c->cmd.drain_timeout < 0) {
        /* Draining already: asking again does not restart the clock. */
        e.since = cur.since;
        e.until = cur.until;
    } else {
        e.since = now;
        e.until = now + (e.state != ADMIN_DRAIN ? 0
                         : c->cmd.drain_timeout >= 0 ? c->cmd.drain_timeout
                                                     : gw.gen->conf->drain_timeout);
    }
    change(&e, c);
    answer_dc(c, dc, true);
}

static void put_srv(struct cconn *c, struct srv *s)
{
    struct admin_entry e;
    if (!admin_get(s->dc->name, s->name, &e))
        e = (struct admin_entry){.state = ADMIN_READY, .weight = -1};
    snprintf(e.dc, sizeof(e.dc), "%s", s->dc->name);
    snprintf(e.srv, sizeof(e.srv), "%s", s->name);
    if (c->cmd.state != CTL_KEEP)
        e.state = (uint8_t)c->cmd.state;
    if (c->cmd.weight != CTL_WEIGHT_KEEP)
        e.weight = c->cmd.weight;
    e.since = e.until = ev_now(gw.loop);
    change(&e, c);
    answer_srv(c, s, true);
}

/* ---- sessions ---- */

static void answer_session(struct cconn *c, const char *source, const char *dc,
                           const char *home, double ttl_s)
{
    struct sbuf b = {0};
    sbuf_printf(&b, "{");
    json_name(&b, "key", c->cmd.key);
    sbuf_printf(&b, ", ");
    json_name(&b, "dc", dc);
    sbuf_printf(&b, ", \"home\": ");
    if (home && home[0])
        json_write_str(&b, home, strlen(home));
    else
        sbuf_printf(&b, "null");
    sbuf_printf(&b, ", \"ttl_s\": ");
    if (ttl_s >= 0)
        sbuf_printf(&b, "%.1f", ttl_s);
    else
        sbuf_printf(&b, "null");
    sbuf_printf(&b, ", \"source\": \"%s\"}\n", source);
    reply(c, 200, &b);
}

/* The local table's answer: the store without Redis, the cache with it
 * (while Redis is away). */
static void session_local(struct cconn *c, const char *source)
{
    struct affinity_answer a;
    double ttl;
    if (affinity_peek(c->cmd.key, c->cmd.key_len, &a, &ttl))
        answer_session(c, source, a.dc, a.home, ttl);
    else if (fleet_on())
        reply_error(c, 503, "Redis is unavailable and this gateway has no copy of the session");
    else
        reply_error(c, 404, "no such session");
}

/* A Redis answer arrives; the connection may have gone meanwhile. */
static bool resumed(struct cconn *c)
{
    c->state = CC_BODY;
    if (!c->dead)
        return true;
    free(c);
    return false;
}

static void on_session_read(void *ctx, bool ok, const struct fleet_session *s)
{
    struct cconn *c = ctx;
    if (!resumed(c))
        return;
    if (!ok)
        session_local(c, "cache");
    else if (!s->found)
        reply_error(c, 404, "no such session");
    else
        answer_session(c, "redis", s->dc, s->home, s->ttl_s);
}

static void session_changed(struct cconn *c, const char *source)
{
    const struct ctl_cmd *cmd = &c->cmd;
    counters->session_moves_total++;
    if (cmd->method == HTTP_DELETE) {
        affinity_forget(cmd->key, cmd->key_len);
        log_info("operator: session %s forgotten (by %s)", cmd->key, c->peer);
        struct sbuf b = {0};
        sbuf_printf(&b, "{");
        json_name(&b, "key", cmd->key);
        sbuf_printf(&b, ", \"forgotten\": true, \"source\": \"%s\"}\n", source);
        reply(c, 200, &b);
        return;
    }
    affinity_place(cmd->key, cmd->key_len, cmd->to_dc);
    log_info("operator: session %s moved to %s (by %s)", cmd->key, cmd->to_dc, c->peer);
    answer_session(c, source, cmd->to_dc, NULL, gw.gen->conf->redis.on
                                                     ? gw.gen->conf->redis.ttl
                                                     : gw.gen->conf->affinity_ttl);
}

static void on_session_written(void *ctx, bool ok, const struct fleet_session *s)
{
    (void)s;
    struct cconn *c = ctx;
    if (!resumed(c))
        return;
    if (ok)
        session_changed(c, "redis");
    else
        reply_error(c, 503, "Redis did not answer: the session may or may not have changed");
}

static void session(struct cconn *c)
{
    const struct ctl_cmd *cmd = &c->cmd;
    if (!affinity_key_valid(cmd->key, cmd->key_len)) {
        reply_error(c, 400, "not a session key the gateway accepts");
        return;
    }
    if (cmd->method == HTTP_PUT && !find_dc(cmd->to_dc)) {
        reply_error(c, 404, "no such datacenter");
        return;
    }
    if (!fleet_on()) {
        if (cmd->method == HTTP_GET || cmd->method == HTTP_HEAD)
            session_local(c, "memory");
        else
            session_changed(c, "memory");
        return;
    }
    bool asked;
    if (cmd->method == HTTP_GET || cmd->method == HTTP_HEAD)
        asked = fleet_session_get(cmd->key, cmd->key_len, on_session_read, c);
    else if (cmd->method == HTTP_PUT)
        asked = fleet_session_move(cmd->key, cmd->key_len, cmd->to_dc, on_session_written, c);
    else
        asked = fleet_session_forget(cmd->key, cmd->key_len, on_session_written, c);
    if (asked) {
        c->state = CC_WAIT;
        sk_want(gw.loop, &c->sk, false, false);
    } else if (cmd->method == HTTP_GET || cmd->method == HTTP_HEAD) {
        session_local(c, "cache");
    } else {
        reply_error(c, 503, "Redis is unavailable: sessions cannot be changed fleet-wide now");
    }
}

/* ---- requests ---- */

static void execute(struct cconn *c)
{
    const char *t = c->in + c->req.target;
    const char *q = memchr(t, '?', c->req.target_len);
    size_t plen = q ? (size_t)(q - t) : c->req.target_len;
    size_t blen = c->req.content_length > 0 ? (size_t)c->req.content_length : 0;
    char err[160];
    int status = ctl_parse(c->req.method, t, plen, c->in + c->req.head_len, blen, &c->cmd, err,
                           sizeof(err));
    if (status) {
        reply_error(c, status, err);
        return;
    }
    const struct ctl_cmd *cmd = &c->cmd;
    if (cmd->object == CTL_OVERVIEW) {
        struct sbuf b = {0};
        json_overview(&b);
        reply(c, 200, &b);
        return;
    }
    if (cmd->object == CTL_SESSION) {
        session(c);
        return;
    }
    struct dc *dc = find_dc(cmd->dc);
    struct srv *s = dc && cmd->object == CTL_SERVER ? find_srv(dc, cmd->server) : NULL;
    if (!dc || (cmd->object == CTL_SERVER && !s)) {
        reply_error(c, 404, dc ? "no such server in this datacenter" : "no such datacenter");
        return;
    }
    bool put = cmd->method == HTTP_PUT;
    if (s && put)
        put_srv(c, s);
    else if (s)
        answer_srv(c, s, false);
    else if (put)
        put_dc(c, dc);
    else
        answer_dc(c, dc, false);
}

/* Whether the request may go on; else it was answered. */
static bool admitted(struct cconn *c)
{
    bool changes = ctl_method_changes(c->req.method);
    if (!c->auth.ok) {
        reply_error(c, 401, "a bearer token is required");
        return false;
    }
    if (changes && !c->auth.token_set && !c->loopback) {
        reply_error(c, 403, "changes from beyond loopback need stats_token to be set");
        return false;
    }
    if (c->req.flags & HF_CHUNKED) {
        reply_error(c, 411, "a body needs Content-Length");
        return false;
    }
    if (c->req.content_length > CTL_BODY_MAX) {
        reply_error(c, 413, "the body is limited to 4096 bytes");
        return false;
    }
    return true;
}

/* Runs the request once its body is all there. */
static void progress(struct cconn *c)
{
    size_t need = c->req.head_len + (c->req.content_length > 0 ? (size_t)c->req.content_length : 0);
    if (c->inlen >= need)
        execute(c);
    else
        sk_want(gw.loop, &c->sk, true, false);
}

static void linger(struct cconn *c)
{
    c->state = CC_LINGER;
    shutdown(c->sk.fd, SHUT_WR);
    ev_timer_stop(gw.loop, &c->tm);
    ev_timer_set(&c->tm, LINGER, 0);
    ev_timer_start(gw.loop, &c->tm);
    sk_want(gw.loop, &c->sk, true, false);
}

static void on_io(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    struct cconn *c = w->data;
    bool rd, wr;
    sk_ready(&c->sk, revents, &rd, &wr);
    if (rd && (c->state == CC_BODY || c->state == CC_LINGER)) {
        char drop[4096];
        bool body = c->state == CC_BODY;
        ssize_t n = body ? sk_read(&c->sk, c->in + c->inlen, sizeof(c->in) - c->inlen)
                         : sk_read(&c->sk, drop, sizeof(drop));
        if (n == 0 || n == EG_ERR) {
            cconn_free(c);
            return;
        }
        if (n > 0 && body) {
            c->inlen += (size_t)n;
            progress(c);
        }
    }
    if (c->state != CC_WRITE)
        return;
    ssize_t n = sk_write(&c->sk, c->out.s + c->sent, c->out.len - c->sent);
    if (n == EG_ERR) {
        cconn_free(c);
        return;
    }
    if (n > 0)
        c->sent += (size_t)n;
    if (c->sent == c->out.len)
        linger(c);
}

static void on_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop, (void)revents;
    cconn_free(w->data);
}

void control_adopt(int fd, const char *buf, size_t len, const struct control_auth *auth)
{
    struct cconn *c = eg_calloc(1, sizeof(*c));
    counters->control_requests_total++;
    c->auth = *auth;
    c->inlen = MIN(len, sizeof(c->in));
    memcpy(c->in, buf, c->inlen);
    sk_init(&c->sk, fd, on_io, c);
    ev_timer_init(&c->tm, on_timeout, TIMEOUT, 0);
    c->tm.data = c;
    ev_timer_start(gw.loop, &c->tm);
    struct net_addr peer = {.len = sizeof(peer.ss)};
    if (getpeername(fd, &peer.ss.sa, &peer.len) == 0) {
        net_addr_str(&peer, c->peer, sizeof(c->peer));
        c->loopback = net_addr_is_loopback(&peer);
    } else {
        snprintf(c->peer, sizeof(c->peer), "?");
    }
    /* The stats endpoint parsed this head already: the same limits hold. */
    struct http_limits lim = {.max_line = 4096, .max_head = HEAD_MAX, .max_headers = 64};
    http_msg_init(&c->req, false, c->hdrs, ARRAY_LEN(c->hdrs));
    if (http_parse(&c->req, c->in, c->inlen, &lim) != EG_OK) {
        reply_error(c, 400, "malformed request");
        return;
    }
    if (admitted(c))
        progress(c);
}
