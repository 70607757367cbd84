/* http mode.
 *
 * A client connection goes [PROXY (header from a balancer)] -> [HANDSHAKE
 * (TLS)] -> IDLE -> HEAD -> ROUTE -> CONNECT -> EXCHANGE and back to IDLE for
 * the next request (HOLD while no datacenter is healthy, ERROR to send an
 * error and close, TUNNEL after 101 Switching Protocols).
 *
 * The request stays in the client buffer `ib` exactly as received; what goes
 * to the server is described by iovecs over it (a PROXY header when the
 * connection is new, the head minus hop-by-hop headers plus the forwarding
 * headers we add, then the body), so nothing is copied and a failed attempt
 * can be replayed from the same bytes. A request that outgrows one buffer is
 * kept whole in a larger one up to `replay_buffer`. Replay stops being
 * possible when a response byte reached the client, when the request reached
 * a server and is neither idempotent nor carries Idempotency-Key, or when the
 * body outgrew the replay buffer and sent bytes had to be dropped.
 *
 * Responses are read into `ob`, their head parsed for framing and passed on
 * unchanged; `ob_end` marks how far `ob` holds bytes of the current
 * response. Buffers are taken when bytes arrive and given back as soon as
 * they are written, so an idle keep-alive connection holds none. */
#include "gateway/proxy/http_session.h"
#include "gateway/balance/affinity.h"
#include "gateway/ops/access_log.h"
#include "base/buffer.h"
#include "gateway/proxy/client.h"
#include "proto/forward.h"
#include "proto/http.h"
#include "base/log.h"
#include "gateway/proxy/listener.h"
#include "proto/proxy_protocol.h"
#include "gateway/balance/route.h"
#include "base/counters.h"
#include "base/tls.h"
#include "gateway/proxy/upstream.h"
#include "healthcheck/datacenter.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

enum h1_state {
    H1_PROXY, H1_HANDSHAKE, H1_IDLE, H1_HEAD, H1_ROUTE, H1_HOLD, H1_CONNECT, H1_EXCHANGE, H1_TUNNEL,
    H1_ERROR
};

/* Segments of an outgoing request: every header line left behind costs one
 * (see fwd_prepare()); a request with more than MAX_DROPPED of them is
 * refused (400), which keeps it within MAX_IOV. */
#define MAX_IOV 64
#define MAX_DROPPED 40

struct h1s {
    struct conn c;
    uint8_t state;
    bool req_done;              /* the whole request was received */
    bool head_gone;             /* head bytes dropped from ib (body streamed) */
    bool replay_off;            /* request bytes dropped: no replay */
    bool reached;               /* request bytes were written to a server */
    bool resp_started;          /* response bytes were written to the client */
    bool resp_head;             /* response head parsed */
    bool resp_done;             /* whole response read from the server */
    bool keep_client;           /* the client connection persists afterwards */
    bool keep_server;           /* the server connection may go back to the pool */
    bool cl_eof;                /* client closed its sending side */
    bool tunnel_cl_eof, tunnel_sv_eof;
    bool accounted;             /* this request is in the stats (and the log) */
    bool stale_retried;         /* went out again after a stale kept connection */
    uint8_t method;
    int attempts;
    uint8_t pp_len;             /* PROXY header opening this attempt's connection */
    struct buf *ib, *ob;
    struct upstream *up;
    struct upstream *kept;           /* send_proxy: this client's own idle server connection */
    ev_tstamp req_start;        /* this request's head complete */
    uint64_t tx_req, tx_resp;   /* request bytes to the server, response bytes out */
    const char *a_dc;           /* datacenter and server of the last attempt, */
    char a_srv[64];             /* for the access log */
    uint32_t req_len;           /* bytes of this request in ib, from ib->head */
    uint32_t req_sent;          /* bytes of the outgoing request already written */
    uint32_t ohl;               /* length of the outgoing head */
    uint32_t ob_end;            /* ob: end of the current response's bytes */
    const char *err_msg;        /* H1_ERROR: static response being written */
    size_t err_len, err_sent;
    struct http_msg req, resp;
    struct http_body reqb, respb;
    struct route rt;
    struct affinity_req aff;
    size_t keylen;
    char key[AFFINITY_KEY_MAX];
    struct dlist link;          /* all sessions, for drain */
    struct fwd fwd;             /* what the request looks like towards the server */
    char a_method[16];          /* method and path kept for the access log */
    char a_path[256];
    uint16_t a_path_len;
    unsigned char pp[PP_BUILD_MAX];
    struct http_hdr req_hdrs[HTTP_MAX_HDRS];
    struct http_hdr resp_hdr;
};

_Static_assert(HTTP_MAX_HDRS == CONF_MAX_HEADERS, "the parser keeps max_headers headers");

static struct dlist sessions = {&sessions, &sessions};
static struct h1s *free_list;

static void on_client_io(struct ev_loop *loop, ev_io *w, int revents);
static void start_session(struct h1s *s);
static void on_server_io(struct ev_loop *loop, ev_io *w, int revents);
static void on_timeout(struct conn *c);
static void route_request(struct h1s *s);
static bool process_input(struct h1s *s);
static bool scan_body(struct h1s *s);

/* ---- lifecycle ---- */

static void request_done(struct h1s *s, int status, const char *end);

static void h1_free(struct h1s *s, bool abort_client)
{
    if (s->state >= H1_ROUTE && s->state <= H1_EXCHANGE)
        request_done(s, 0, abort_client ? "cut" : "client gone");
    if (s->state == H1_ROUTE)
        affinity_cancel(&s->aff);
    upstream_close(s->up);
    upstream_close(s->kept);
    buf_put(s->ib);
    buf_put(s->ob);
    if (abort_client)
        sk_abort(gw.loop, &s->c.sk);
    conn_done(&s->c);
    dlist_del(&s->link);
    *(struct h1s **)s = free_list;
    free_list = s;
}

static unsigned fwd_opts(const struct conf_listener *cl)
{
    return (cl->forward_for ? FWD_FOR : 0) | (cl->forwarded ? FWD_FORWARDED : 0);
}

static void limits_of(const struct conf_listener *cl, struct http_limits *lim)
{
    lim->max_line = cl->max_request_line;
    lim->max_head = cl->max_header_size;
    lim->max_headers = (uint16_t)cl->max_headers;
    lim->sess_header = cl->sess == SESS_HEADER ? cl->sess_name : NULL;
    lim->sess_header_len = (uint16_t)cl->sess_name_len;
}

static void reset_request(struct h1s *s)
{
    s->req_done = s->head_gone = s->replay_off = s->reached = false;
    s->resp_started = s->resp_head = s->resp_done = false;
    s->keep_client = s->keep_server = false;
    s->accounted = false;
    s->stale_retried = false;
    s->aff.call = NULL; /* affinity_cancel() may run for a request without a key */
    s->attempts = 0;
    s->req_len = s->req_sent = s->ohl = s->ob_end = 0;
    s->pp_len = 0;
    s->keylen = 0;
    s->tx_req = s->tx_resp = 0;
    s->a_dc = NULL;
    s->a_path_len = 0;
    http_msg_init(&s->req, false, s->req_hdrs, HTTP_MAX_HDRS);
}

void http_accept(int fd, struct listener *l, const struct net_addr *peer)
{
    struct h1s *s = free_list;
    if (s)
        free_list = *(struct h1s **)s;
    else if (!(s = malloc(sizeof(*s))))
        abort();
    s->ib = s->ob = NULL;
    s->up = s->kept = NULL;
    s->cl_eof = false;
    conn_init(&s->c, fd, l, peer, on_client_io, s, on_timeout);
    dlist_add(&sessions, &s->link);
    reset_request(s);
    if (s->c.cl->accept_proxy) {
        if (!conn_proxy_trusted(&s->c)) {
            h1_free(s, true);
            return;
        }
        s->state = H1_PROXY;
        conn_deadline(&s->c, conn_handshake_deadline(&s->c));
        sk_want_raw(gw.loop, &s->c.sk, EV_READ);
        return;
    }
    start_session(s);
}

/* After the PROXY header (if any): the TLS handshake, or the first request. */
static void start_session(struct h1s *s)
{
    if (s->c.tls) {
        s->state = H1_HANDSHAKE;
        conn_deadline(&s->c, conn_handshake_deadline(&s->c));
        sk_want_raw(gw.loop, &s->c.sk, EV_READ);
        return;
    }
    s->state = H1_IDLE;
    conn_deadline(&s->c, ev_now(gw.loop) + s->c.cl->idle_timeout);
    sk_want(gw.loop, &s->c.sk, true, false);
}

static void read_proxy(struct h1s *s)
{
    int rc = conn_proxy_step(&s->c);
    if (rc < 0)
        h1_free(s, true);
    else if (rc > 0)
        start_session(s);
}

void http_close_idle(void)
{
    for (struct dlist *n = sessions.next, *next; n != &sessions; n = next) {
        next = n->next;
        struct h1s *s = container_of(n, struct h1s, link);
        if (s->state == H1_IDLE)
            h1_free(s, false);
    }
}

/* ---- interest ---- */

static size_t ob_pending(const struct h1s *s)
{
    return s->ob ? s->ob_end - s->ob->head : 0;
}

/* The outgoing request: [PROXY header] head (ohl bytes) body. Once the head
 * is out and dropped from ib, only the body remains. */
static uint32_t out_total(const struct h1s *s)
{
    return s->head_gone ? s->req_len : s->pp_len + s->ohl + s->req_len - s->req.head_len;
}

static bool req_unsent(const struct h1s *s) { return s->req_sent < out_total(s); }

/* How large ib may grow to keep the whole request for a replay. */
static size_t replay_limit(const struct h1s *s)
{
    return MAX(buf_size(), s->c.cl->replay_buffer + s->req.head_len);
}

/* Whether more client bytes can be taken now (reading them may first grow
 * ib, or drop bytes the server already has). */
static bool ib_can_take(const struct h1s *s)
{
    if (!s->ib || buf_room(s->ib) > 0)
        return true;
    if (!s->replay_off && s->ib->cap < replay_limit(s))
        return true;
    return s->state == H1_EXCHANGE && !req_unsent(s);
}

/* The client stays readable during an exchange, also once its request is
 * complete (pipelined bytes wait in ib; a client leaving is noticed): turning
 * reading off and on for every request would cost a system call each. */
static bool client_readable(const struct h1s *s)
{
    if (s->cl_eof)
        return false;
    if (s->req_done)
        return !s->ib || buf_room(s->ib) > 0;
    return ib_can_take(s);
}

static void update_interest(struct h1s *s)
{
    bool crd = false, cwr = false, srd = false, swr = false;
    switch (s->state) {
    case H1_PROXY:
    case H1_HANDSHAKE:
        return; /* read_proxy() and conn_handshake() set what they wait for */
    case H1_IDLE:
    case H1_HEAD:
        crd = !s->cl_eof;
        break;
    case H1_ROUTE:
    case H1_HOLD:
        crd = client_readable(s);
        break;
    case H1_CONNECT:
        crd = client_readable(s);
        sk_want(gw.loop, &s->c.sk, crd, false);
        sk_want_raw(gw.loop, &s->up->sk, s->up->connected ? s->up->sk.hs_ev : EV_WRITE);
        return;
    case H1_EXCHANGE:
        crd = client_readable(s);
        cwr = ob_pending(s) > 0;
        srd = !s->resp_done && (!s->ob || buf_room(s->ob) > 0 || s->ob->head > 0);
        swr = req_unsent(s);
        break;
    case H1_TUNNEL:
        crd = !s->tunnel_cl_eof && (!s->ib || buf_room(s->ib) > 0);
        cwr = ob_pending(s) > 0;
        srd = !s->tunnel_sv_eof && (!s->ob || buf_room(s->ob) > 0);
        swr = s->ib && buf_len(s->ib) > 0;
        break;
    case H1_ERROR:
        cwr = s->err_sent < s->err_len;
        crd = !cwr;
        break;
    }
    sk_want(gw.loop, &s->c.sk, crd, cwr);
    if (s->up)
        sk_want(gw.loop, &s->up->sk, srd, swr);
}

/* ---- errors ---- */

#define ERR_RESP(code, reason, extra, body)                                              \
    "HTTP/1.1 " code " " reason "\r\nContent-Type: text/plain\r\nCache-Control: no-store\r\n" \
    extra "Content-Length: " #body "\r\nConnection: close\r\n\r\n"

static const struct {
    int status;
    const char *resp;
} err_resps[] = {
    {400, ERR_RESP("400", "Bad Request", "", 12) "bad request\n"},
    {405, ERR_RESP("405", "Method Not Allowed", "", 19) "method not allowed\n"},
    {408, ERR_RESP("408", "Request Timeout", "", 16) "request timeout\n"},
    {413, ERR_RESP("413", "Content Too Large", "", 18) "content too large\n"},
    {414, ERR_RESP("414", "URI Too Long", "", 13) "uri too long\n"},
    {431, ERR_RESP("431", "Request Header Fields Too Large", "", 24)
              "header fields too large\n"},
    {501, ERR_RESP("501", "Not Implemented", "", 16) "not implemented\n"},
    {502, ERR_RESP("502", "Bad Gateway", "", 12) "bad gateway\n"},
    {503, ERR_RESP("503", "Service Unavailable", "Retry-After: 1\r\n", 20)
              "service unavailable\n"},
    {504, ERR_RESP("504", "Gateway Timeout", "", 16) "gateway timeout\n"},
    {505, ERR_RESP("505", "HTTP Version Not Supported", "", 27)
              "http version not supported\n"},
};

/* Accounts for a finished request (STATUS 0: cut without a status). */
static void request_done(struct h1s *s, int status, const char *end)
{
    if (s->accounted)
        return;
    s->accounted = true;
    struct stats_lsn_row *l = s->c.lst;
    double took = ev_now(gw.loop) - s->req_start;
    l->requests_total++;
    l->status[status >= 100 && status < 600 ? status / 100 : 0]++;
    stats_observe(&l->request, took);
    if (access_log_format == ACCESS_LOG_OFF)
        return;
    char client[80];
    net_addr_str(&s->c.peer, client, sizeof(client));
    struct access_log_rec r = {
        .client = client, .listener = s->c.cl->name, .mode = "http",
        .session = s->keylen ? s->key : NULL, .session_len = s->keylen,
        .dc = s->a_dc, .server = s->a_dc ? s->a_srv : NULL,
        .method = s->a_method, .path = s->a_path, .path_len = s->a_path_len,
        .status = status, .bytes_in = s->tx_req, .bytes_out = s->tx_resp, .duration_s = took,
        .retries = s->attempts > 0 ? s->attempts - 1 : 0, .end = end,
    };
    access_log_write(&r);
}

static void count_error(int status)
{
    counters->client_errors_total++;
    switch (status) {
    case 502: counters->http_502_total++; break;
    case 503: counters->http_503_total++; break;
    case 504: counters->http_504_total++; break;
    default:
        if (status < 500)
            counters->http_4xx_total++;
        else
            counters->http_5xx_other_total++;
    }
}

/* Answers STATUS and closes. When a response already started there is no
 * way to tell the client but to cut the connection. */
static void send_error(struct h1s *s, int status)
{
    count_error(status);
    if (s->state >= H1_HEAD)
        request_done(s, status, "error");
    if (s->state == H1_ROUTE)
        affinity_cancel(&s->aff);
    conn_unhold(&s->c);
    upstream_close(s->up);
    s->up = NULL;
    if (s->resp_started) {
        h1_free(s, true);
        return;
    }
    s->err_msg = err_resps[0].resp;
    for (size_t i = 0; i < ARRAY_LEN(err_resps); i++)
        if (err_resps[i].status == status)
            s->err_msg = err_resps[i].resp;
    s->err_len = strlen(s->err_msg);
    s->err_sent = 0;
    s->state = H1_ERROR;
    buf_put(s->ob);
    s->ob = NULL;
    /* Give the client a moment to read the answer before we close. */
    conn_deadline(&s->c, ev_now(gw.loop) + 2);
    update_interest(s);
}

/* ---- the outgoing request ---- */

/* Describes the outgoing request from byte SKIP on: [PROXY header] head
 * (see fwd.c) body. */
static int build_iov(struct h1s *s, struct iovec *iov, size_t skip)
{
    char *base = buf_rpos(s->ib);
    struct iovec all[MAX_IOV];
    int n = iov_add(all, 0, s->pp, s->pp_len);
    if (!s->head_gone)
        n = fwd_head(&s->fwd, &s->req, base, all, n);
    uint32_t body_from = s->head_gone ? 0 : s->req.head_len;
    n = iov_add(all, n, base + body_from, s->req_len - body_from);
    int out = 0;
    for (int i = 0; i < n; i++) {
        if (skip >= all[i].iov_len) {
            skip -= all[i].iov_len;
            continue;
        }
        iov[out].iov_base = (char *)all[i].iov_base + skip;
        iov[out].iov_len = all[i].iov_len - skip;
        skip = 0;
        out++;
    }
    return out;
}

/* The outgoing head's length (the bytes it replaces in ib are head_len). */
static uint32_t outgoing_head_len(struct h1s *s)
{
    struct iovec iov[MAX_IOV];
    int n = fwd_head(&s->fwd, &s->req, buf_rpos(s->ib), iov, 0);
    uint32_t total = 0;
    for (int i = 0; i < n; i++)
        total += (uint32_t)iov[i].iov_len;
    return total;
}

/* Forgets request bytes already written, to make room for more body: the
 * request can no longer be replayed. Only once the head is out. */
static bool drop_sent_request(struct h1s *s)
{
    uint32_t consumed;
    if (s->head_gone) {
        consumed = s->req_sent;
    } else {
        uint32_t head_out = s->pp_len + s->ohl;
        if (s->req_sent < head_out)
            return false;
        consumed = s->req.head_len + (s->req_sent - head_out);
        s->head_gone = true;
        s->pp_len = 0;
    }
    s->ib->head += consumed;
    s->req_len -= consumed;
    s->req_sent = 0;
    s->replay_off = true;
    buf_compact(s->ib);
    return true;
}

/* Makes room in a full ib: a larger buffer while the request still fits in
 * the replay limit, else (once the server has them) drop sent bytes. */
static bool make_room(struct h1s *s)
{
    if (!s->replay_off && s->ib->cap < replay_limit(s)) {
        s->ib = buf_grow(s->ib, MIN(replay_limit(s), (size_t)s->ib->cap * 4));
        return true;
    }
    return s->state == H1_EXCHANGE && drop_sent_request(s);
}

static bool can_replay(const struct h1s *s)
{
    if (s->replay_off || s->resp_started)
        return false;
    if (!s->reached)
        return true;
    return http_method_idempotent(s->method) || (s->req.flags & HF_IDEMPOTENCY);
}

static void attempt_failed(struct h1s *s, enum dc_fail kind, int status);

/* Returns false when the session was freed or moved on to another attempt. */
static bool flush_request(struct h1s *s)
{
    if (!req_unsent(s))
        return true;
    struct iovec iov[MAX_IOV];
    int n = build_iov(s, iov, s->req_sent);
    ssize_t w = sk_writev(&s->up->sk, iov, n);
    if (w == SK_ERROR) {
        attempt_failed(s, DC_FAIL_RESET, 502);
        return false;
    }
    if (w > 0) {
        s->req_sent += (uint32_t)w;
        s->tx_req += (uint64_t)w;
        s->reached = true;
        s->up->srv->st->bytes_out += (uint64_t)w;
        counters->bytes_out_total += (uint64_t)w;
        /* All out: from now on the server has response_timeout to answer. */
        if (s->req_done && !req_unsent(s) && !s->resp_head)
            conn_deadline(&s->c, ev_now(gw.loop) + s->c.cl->response_timeout);
    }
    return true;
}

/* ---- attempts: connect, failover, hold ---- */

static void on_wake(struct hold *h)
{
    struct h1s *s = container_of(h, struct h1s, c.hold);
    conn_unhold(&s->c);
    route_request(s);
}

static void no_server(struct h1s *s)
{
    if (!s->reached && !route_any_healthy(s->c.gen, s->c.cl) && s->c.cl->hold_timeout > 0 &&
        !gw.draining) {
        if (s->state != H1_HOLD)
            conn_deadline(&s->c, ev_now(gw.loop) + s->c.cl->hold_timeout);
        s->state = H1_HOLD;
        s->attempts = 0;
        conn_hold(&s->c, on_wake);
        update_interest(s);
        return;
    }
    send_error(s, 503);
}

static void start_exchange(struct h1s *s)
{
    s->state = H1_EXCHANGE;
    http_msg_init(&s->resp, true, &s->resp_hdr, 1);
    ev_set_cb(&s->up->sk.io, on_server_io);
    s->up->sk.io.data = s;
    s->up->requests++;
    if (!flush_request(s))
        return;
    if (!s->req_done || req_unsent(s)) /* else flush_request set response_timeout */
        conn_deadline(&s->c, ev_now(gw.loop) + s->c.cl->idle_timeout);
    update_interest(s);
}

/* With send_proxy a server connection is bound to its client (the header
 * names the client): kept between this client's requests, never pooled. */
static struct upstream *reuse(struct h1s *s, struct srv *srv)
{
    struct upstream *u = s->kept;
    s->kept = NULL;
    if (u && u->srv == srv)
        return u;
    upstream_close(u);
    return s->c.cl->send_proxy ? NULL : upstream_pool_take(srv);
}

/* FRESH: a new connection, not one kept or pooled. */
static void try_server(struct h1s *s, struct srv *srv, bool fresh)
{
    s->attempts++;
    if (access_log_format != ACCESS_LOG_OFF) {
        s->a_dc = srv->dc->name; /* lives as long as our generation */
        memcpy(s->a_srv, srv->name, sizeof(s->a_srv));
    }
    s->req_sent = 0;
    s->pp_len = 0;
    s->up = fresh ? NULL : reuse(s, srv);
    if (s->up) {
        start_exchange(s);
        return;
    }
    if (s->c.cl->send_proxy)
        s->pp_len = (uint8_t)conn_proxy_header(&s->c, s->pp);
    s->up = upstream_open(srv);
    if (!s->up) {
        srv_traffic_failed(srv, errno == ECONNREFUSED ? DC_FAIL_REFUSED : DC_FAIL_RESET);
        attempt_failed(s, DC_FAIL_REFUSED, 502);
        return;
    }
    s->state = H1_CONNECT;
    ev_set_cb(&s->up->sk.io, on_server_io);
    s->up->sk.io.data = s;
    conn_deadline(&s->c, ev_now(gw.loop) + s->c.cl->connect_timeout);
    update_interest(s);
}

/* The current attempt failed before any response byte reached the client.
 * KIND is reported to the server's health when a connection exists (when
 * opening it failed, the caller reported already). */
static void attempt_failed(struct h1s *s, enum dc_fail kind, int status)
{
    struct dc *was = s->rt.dc;
    /* A kept-alive connection the server closed just as this request went
     * out (the keep-alive race) says nothing about the server: the request
     * goes out again on a fresh connection to it, once. */
    struct srv *stale = NULL;
    if (s->up && s->up->requests > 1 && kind == DC_FAIL_RESET && !s->stale_retried)
        stale = s->up->srv;
    if (s->up) {
        if (!stale)
            srv_traffic_failed(s->up->srv, kind);
        upstream_close(s->up);
        s->up = NULL;
    }
    buf_put(s->ob);
    s->ob = NULL;
    s->resp_head = false;
    if (!can_replay(s)) {
        send_error(s, status);
        return;
    }
    if (stale) {
        s->stale_retried = true;
        counters->retries_total++;
        s->attempts--; /* not a failure of the server: no retry spent */
        try_server(s, stale, true);
        return;
    }
    if (s->attempts <= s->c.cl->retries) {
        struct srv *next = route_next(s->c.gen, s->c.cl, &s->rt);
        if (next) {
            counters->retries_total++;
            if (next->dc != was) {
                counters->failovers_total++;
                if (s->keylen)
                    affinity_moved(s->c.gen, s->c.cl, s->key, s->keylen, next->dc, was);
            }
            try_server(s, next, false);
            return;
        }
    }
    if (!route_any_healthy(s->c.gen, s->c.cl) && !s->reached) {
        no_server(s);
        return;
    }
    send_error(s, status);
}

static void route_to(struct h1s *s, struct dc *dc)
{
    struct srv *srv = route_first(s->c.gen, s->c.cl, dc, &s->rt);
    if (!srv) {
        no_server(s);
        return;
    }
    s->rt.dc->st->requests_total++;
    try_server(s, srv, false);
}

static void on_affinity(struct affinity_req *r, struct dc *dc)
{
    route_to(container_of(r, struct h1s, aff), dc);
}

static void route_request(struct h1s *s)
{
    s->state = H1_ROUTE;
    if (s->keylen) {
        struct dc *dc;
        s->aff.done = on_affinity;
        if (!affinity_resolve(&s->aff, s->c.gen, s->c.cl, s->key, s->keylen, &dc))
            return;
        route_to(s, dc);
        return;
    }
    route_to(s, NULL);
}

/* ---- request head ---- */

/* Extracts the session key; false (after answering 400) when it is bad. */
static bool extract_key(struct h1s *s)
{
    const char *v = NULL;
    size_t n = 0;
    const char *base = buf_rpos(s->ib);
    switch (s->c.cl->sess) {
    case SESS_HEADER:
        if (s->req.sess_hdr >= 0) {
            v = base + s->req.hdrs[s->req.sess_hdr].val;
            n = s->req.hdrs[s->req.sess_hdr].val_len;
        }
        break;
    case SESS_COOKIE:
        http_find_cookie(&s->req, base, s->c.cl->sess_name, s->c.cl->sess_name_len, &v, &n);
        break;
    case SESS_SNI:
        v = conn_sni(&s->c);
        n = v ? strlen(v) : 0;
        break;
    case SESS_CLIENT_IP:
        v = conn_peer_ip(&s->c);
        s->keylen = s->c.iplen;
        memcpy(s->key, v, s->keylen);
        return true;
    }
    if (!v || n == 0)
        return true;
    if (!affinity_key_valid(v, n)) {
        counters->bad_session_keys_total++;
        send_error(s, 400);
        return false;
    }
    memcpy(s->key, v, n);
    s->keylen = n;
    return true;
}

/* Keeps what the access log needs of the head: it may be gone (streamed
 * bodies) by the time the request ends. */
static void keep_for_log(struct h1s *s)
{
    const char *base = buf_rpos(s->ib);
    size_t ml = MIN((size_t)s->req.method_len, sizeof(s->a_method) - 1);
    memcpy(s->a_method, base, ml);
    s->a_method[ml] = '\0';
    s->a_path_len = (uint16_t)MIN((size_t)s->req.target_len, sizeof(s->a_path));
    memcpy(s->a_path, base + s->req.target, s->a_path_len);
}

static void head_complete(struct h1s *s)
{
    counters->requests_total++;
    if (access_log_format != ACCESS_LOG_OFF)
        keep_for_log(s);
    s->method = s->req.method;
    if (s->method == HTTP_CONNECT) {
        send_error(s, 405);
        return;
    }
    if (fwd_prepare(&s->fwd, &s->req, buf_rpos(s->ib), fwd_opts(s->c.cl), conn_peer_ip(&s->c),
                    s->c.tls) > MAX_DROPPED) {
        send_error(s, 400);
        return;
    }
    http_body_request(&s->reqb, &s->req);
    bool ka = s->req.minor == 1 ? !(s->req.flags & HF_CONN_CLOSE)
                                : (s->req.flags & HF_CONN_KA) != 0;
    s->keep_client = ka;
    s->req_len = s->req.head_len;
    s->ohl = outgoing_head_len(s);
    if (!extract_key(s) || !scan_body(s))
        return;
    route_request(s);
}

/* Scans newly received body bytes; sets req_done at the request's end.
 * False after answering an error. */
static bool scan_body(struct h1s *s)
{
    if (s->req_done || !s->ib)
        return true;
    size_t avail = buf_len(s->ib) - s->req_len, used;
    int rc = http_body_scan(&s->reqb, buf_rpos(s->ib) + s->req_len, avail, &used);
    if (rc == HTTP_ERROR) {
        log_debug("http: bad request body: %s", s->reqb.err);
        if (s->reached || s->resp_started) {
            h1_free(s, true);
            return false;
        }
        send_error(s, 400);
        return false;
    }
    s->req_len += (uint32_t)used;
    if (rc == HTTP_DONE)
        s->req_done = true;
    return true;
}

/* Parses what ib holds in HEAD/IDLE state. False when the session ended. */
static bool parse_head(struct h1s *s)
{
    struct buf *b = s->ib;
    /* Empty lines before a request line are allowed (RFC 9112 2.2). */
    while (s->req.pos == 0 && buf_len(b) > 0 && (*buf_rpos(b) == '\r' || *buf_rpos(b) == '\n'))
        b->head++;
    if (buf_len(b) == 0)
        return true;
    if (s->state == H1_IDLE) {
        s->state = H1_HEAD;
        s->req_start = ev_now(gw.loop);
        conn_deadline(&s->c, s->req_start + s->c.cl->request_timeout);
    }
    struct http_limits lim;
    limits_of(s->c.cl, &lim);
    int rc = http_parse(&s->req, buf_rpos(b), buf_len(b), &lim);
    if (rc == HTTP_AGAIN) {
        if (buf_room(b) == 0) {
            if (b->head > 0) {
                buf_compact(b);
                return true;
            }
            send_error(s, 431);
            return false;
        }
        return true;
    }
    if (rc == HTTP_ERROR) {
        log_debug("http: bad request from %s: %s", s->c.cl->name, s->req.err);
        send_error(s, s->req.err_status);
        return false;
    }
    head_complete(s);
    return true;
}

/* Handles whatever the client sent, according to the state. */
static bool process_input(struct h1s *s)
{
    if (s->state == H1_IDLE || s->state == H1_HEAD) {
        if (!s->ib)
            return true;
        if (!parse_head(s))
            return false;
        if (s->state == H1_IDLE || s->state == H1_HEAD || s->state == H1_ERROR)
            return true;
    }
    if (!scan_body(s))
        return false;
    if (s->state == H1_EXCHANGE)
        return flush_request(s);
    return true;
}

/* ---- response ---- */

static bool response_keepalive(const struct h1s *s)
{
    if (s->resp.minor == 1)
        return !(s->resp.flags & HF_CONN_CLOSE);
    return (s->resp.flags & HF_CONN_KA) != 0;
}

/* A kept (private) idle server connection became readable: the server
 * closed it. */
static void on_kept_io(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop, (void)revents;
    struct h1s *s = w->data;
    upstream_close(s->kept);
    s->kept = NULL;
}

/* The exchange is over on both sides: recycle what can be, move on. */
static void exchange_done(struct h1s *s)
{
    request_done(s, s->resp.status, "ok");
    bool reusable = s->keep_server && s->req_done && s->req_sent == out_total(s);
    if (reusable && s->c.cl->send_proxy) {
        s->kept = s->up;
        ev_set_cb(&s->kept->sk.io, on_kept_io);
        sk_want(gw.loop, &s->kept->sk, true, false);
    } else if (reusable) {
        upstream_pool_give(s->up);
    } else {
        upstream_close(s->up);
    }
    s->up = NULL;
    buf_put(s->ob);
    s->ob = NULL;
    if (!s->keep_client || !s->req_done || gw.draining || !conn_rebase(&s->c)) {
        h1_free(s, false);
        return;
    }
    /* Pipelined bytes after this request start the next one. */
    if (s->ib) {
        s->ib->head += s->req_len;
        if (buf_len(s->ib) == 0) {
            buf_put(s->ib);
            s->ib = NULL;
        } else {
            buf_compact(s->ib);
        }
    }
    reset_request(s);
    s->state = H1_IDLE;
    conn_deadline(&s->c, ev_now(gw.loop) + s->c.cl->idle_timeout);
    if (s->ib && !process_input(s))
        return;
    update_interest(s);
}

static bool parse_response_head(struct h1s *s)
{
    static const struct http_limits lim = {.max_line = 8192, .max_head = 65535,
                                           .max_headers = HTTP_MAX_HDRS};
    struct buf *b = s->ob;
    int rc = http_parse(&s->resp, buf_rpos(b), buf_len(b), &lim);
    if (rc == HTTP_AGAIN) {
        if (buf_room(b) == 0) {
            attempt_failed(s, DC_FAIL_RESET, 502);
            return false;
        }
        return true;
    }
    if (rc == HTTP_ERROR) {
        log_warn("http: bad response from %s: %s", s->up->srv->name, s->resp.err);
        attempt_failed(s, DC_FAIL_RESET, 502);
        return false;
    }
    srv_traffic_ok(s->up->srv);
    s->resp_head = true;
    s->ob_end = b->head + s->resp.head_len;
    if (s->resp.status >= 100 && s->resp.status < 200 && s->resp.status != 101) {
        /* Interim response: pass it on, the final one follows. */
        s->resp_done = false;
        return true;
    }
    http_body_response(&s->respb, &s->resp, s->method);
    s->keep_server = response_keepalive(s) && s->respb.kind != BODY_CLOSE;
    if (!response_keepalive(s) || s->respb.kind == BODY_CLOSE)
        s->keep_client = false;
    return true;
}

/* Advances ob_end over the response bytes read so far. */
static bool scan_response(struct h1s *s)
{
    struct buf *b = s->ob;
    if (!s->resp_head) {
        if (!parse_response_head(s))
            return false;
        if (!s->resp_head)
            return true;
    }
    /* 1xx interim heads are passed on before the final head is parsed. */
    if (s->resp.status < 200 && s->resp.status != 101)
        return true;
    if (s->resp.status == 101) {
        s->resp_done = true;
        return true;
    }
    size_t used;
    int rc = http_body_scan(&s->respb, b->data + s->ob_end, b->tail - s->ob_end, &used);
    if (rc == HTTP_ERROR) {
        log_warn("http: bad response body from %s: %s", s->up->srv->name, s->respb.err);
        s->keep_client = s->keep_server = false;
        s->resp_done = true;
        return true;
    }
    s->ob_end += (uint32_t)used;
    if (rc == HTTP_DONE) {
        s->resp_done = true;
        if (s->ob_end < b->tail) { /* bytes nobody asked for */
            b->tail = s->ob_end;
            s->keep_server = false;
        }
    }
    return true;
}

static void enter_tunnel(struct h1s *s);

/* Writes response bytes to the client. False when the session ended. */
static bool flush_response(struct h1s *s)
{
    if (ob_pending(s) > 0) {
        ssize_t w = sk_write(&s->c.sk, buf_rpos(s->ob), ob_pending(s));
        if (w == SK_ERROR) {
            h1_free(s, true);
            return false;
        }
        if (w > 0) {
            s->ob->head += (uint32_t)w;
            s->tx_resp += (uint64_t)w;
            s->resp_started = true;
        }
    }
    if (ob_pending(s) > 0)
        return true;
    if (s->resp_head && s->resp.status < 200 && s->resp.status != 101) {
        /* The interim response is out: parse the next head. */
        s->resp_head = false;
        http_msg_init(&s->resp, true, &s->resp_hdr, 1);
        if (buf_len(s->ob) > 0)
            return scan_response(s) && flush_response(s);
    }
    if (s->resp_done && s->resp.status == 101) {
        enter_tunnel(s);
        return false;
    }
    if (s->resp_done) {
        exchange_done(s);
        return false;
    }
    if (buf_len(s->ob) == 0) {
        buf_put(s->ob);
        s->ob = NULL;
        s->ob_end = 0;
    } else if (buf_room(s->ob) == 0) {
        s->ob_end -= s->ob->head;
        buf_compact(s->ob);
    }
    return true;
}

static bool read_response(struct h1s *s)
{
    if (!s->ob) {
        s->ob = buf_get();
        s->ob_end = 0;
    }
    if (buf_room(s->ob) == 0) {
        s->ob_end -= s->ob->head;
        buf_compact(s->ob);
        if (buf_room(s->ob) == 0)
            return true;
    }
    ssize_t n = sk_read(&s->up->sk, buf_wpos(s->ob), buf_room(s->ob));
    if (n == SK_AGAIN)
        return true;
    if (n > 0) {
        s->ob->tail += (uint32_t)n;
        s->up->srv->st->bytes_in += (uint64_t)n;
        conn_deadline(&s->c, ev_now(gw.loop) + s->c.cl->idle_timeout);
        if (!scan_response(s))
            return false;
        return flush_response(s);
    }
    /* The server closed or reset. */
    if (s->resp_head && s->respb.kind == BODY_CLOSE && n == 0) {
        s->resp_done = true;
        s->keep_client = s->keep_server = false;
        return flush_response(s);
    }
    if (!s->resp_started && !s->resp_head) {
        attempt_failed(s, DC_FAIL_RESET, 502);
        return false;
    }
    /* Cut in the middle of a response: nothing to do but cut the client. */
    h1_free(s, true);
    return false;
}

/* ---- tunnel (after 101) ---- */

static void enter_tunnel(struct h1s *s)
{
    request_done(s, 101, "upgrade");
    s->state = H1_TUNNEL;
    s->tunnel_cl_eof = s->cl_eof;
    s->tunnel_sv_eof = false;
    /* Client bytes after the upgrade request are tunnel data already. */
    if (s->ib) {
        s->ib->head += s->req_len;
        if (buf_len(s->ib) == 0) {
            buf_put(s->ib);
            s->ib = NULL;
        }
    }
    if (s->ob) {
        s->ob_end = s->ob->tail;
        if (buf_len(s->ob) == 0) {
            buf_put(s->ob);
            s->ob = NULL;
        }
    }
    conn_deadline(&s->c, ev_now(gw.loop) + s->c.cl->idle_timeout);
    update_interest(s);
}

/* Moves bytes one way through the tunnel. False when the session ended. */
static bool tunnel_pump(struct h1s *s, struct sk *from, struct sk *to, struct buf **bp,
                        bool *eof, bool read, bool write)
{
    if (read && !*eof) {
        if (!*bp)
            *bp = buf_get();
        struct buf *b = *bp;
        if (buf_room(b) == 0)
            buf_compact(b);
        if (buf_room(b) > 0) {
            ssize_t n = sk_read(from, buf_wpos(b), buf_room(b));
            if (n > 0) {
                b->tail += (uint32_t)n;
                conn_deadline(&s->c, ev_now(gw.loop) + s->c.cl->idle_timeout);
            } else if (n == 0) {
                *eof = true;
            } else if (n == SK_ERROR) {
                h1_free(s, true);
                return false;
            }
        }
        write = true;
    }
    struct buf *b = *bp;
    if (write && b && buf_len(b) > 0) {
        ssize_t w = sk_write(to, buf_rpos(b), buf_len(b));
        if (w == SK_ERROR) {
            h1_free(s, true);
            return false;
        }
        if (w > 0)
            b->head += (uint32_t)w;
    }
    if (b && buf_len(b) == 0) {
        buf_put(b);
        *bp = NULL;
        if (*eof)
            sk_shutdown_wr(to);
    } else if (!b && *eof && read) {
        sk_shutdown_wr(to);
    }
    if (s->ob)
        s->ob_end = s->ob->tail;
    return true;
}

static void tunnel_io(struct h1s *s, bool client_side, bool rd, bool wr)
{
    struct sk *cl = &s->c.sk, *sv = &s->up->sk;
    bool ok = client_side ? tunnel_pump(s, cl, sv, &s->ib, &s->tunnel_cl_eof, rd, false) &&
                                tunnel_pump(s, sv, cl, &s->ob, &s->tunnel_sv_eof, false, wr)
                          : tunnel_pump(s, sv, cl, &s->ob, &s->tunnel_sv_eof, rd, false) &&
                                tunnel_pump(s, cl, sv, &s->ib, &s->tunnel_cl_eof, false, wr);
    if (!ok)
        return;
    if (s->tunnel_cl_eof && s->tunnel_sv_eof && !s->ib && !s->ob) {
        h1_free(s, false);
        return;
    }
    update_interest(s);
}

/* ---- event handlers ---- */

static bool read_client(struct h1s *s)
{
    if (!s->ib)
        s->ib = buf_get();
    if (buf_room(s->ib) == 0 && s->state > H1_HEAD && !s->req_done && !make_room(s))
        return true;
    if (buf_room(s->ib) == 0)
        return true;
    ssize_t n = sk_read(&s->c.sk, buf_wpos(s->ib), buf_room(s->ib));
    if (n > 0) {
        s->ib->tail += (uint32_t)n;
        counters->bytes_in_total += (uint64_t)n;
        if (s->state == H1_EXCHANGE && !s->req_done)
            conn_deadline(&s->c, ev_now(gw.loop) + s->c.cl->idle_timeout);
        return process_input(s);
    }
    if (buf_len(s->ib) == 0) {
        buf_put(s->ib);
        s->ib = NULL;
    }
    if (n == SK_AGAIN)
        return true;
    if (n == SK_ERROR || s->state == H1_IDLE || s->state == H1_HEAD || s->state == H1_ERROR) {
        h1_free(s, false);
        return false;
    }
    /* EOF after a complete request: the client may still read the answer. */
    s->cl_eof = true;
    s->keep_client = false;
    if (!s->req_done) {
        h1_free(s, false);
        return false;
    }
    return true;
}

static void error_io(struct h1s *s, bool rd, bool wr)
{
    if (wr && s->err_sent < s->err_len) {
        ssize_t w = sk_write(&s->c.sk, s->err_msg + s->err_sent, s->err_len - s->err_sent);
        if (w == SK_ERROR) {
            h1_free(s, false);
            return;
        }
        if (w > 0)
            s->err_sent += (size_t)w;
        if (s->err_sent == s->err_len)
            sk_shutdown_wr(&s->c.sk);
    }
    if (rd) {
        /* Lingering close: drain what the client still sends, so that
         * closing does not reset the connection before it read the answer. */
        char sink[4096];
        ssize_t n = sk_read(&s->c.sk, sink, sizeof(sink));
        if (n == 0 || n == SK_ERROR) {
            h1_free(s, false);
            return;
        }
    }
    update_interest(s);
}

static void on_client_io(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    struct h1s *s = w->data;
    if (s->state == H1_PROXY) {
        read_proxy(s);
        return;
    }
    if (s->state == H1_HANDSHAKE) {
        int rc = conn_handshake(&s->c);
        if (rc < 0) {
            h1_free(s, false);
        } else if (rc > 0) {
            s->state = H1_IDLE;
            conn_deadline(&s->c, ev_now(gw.loop) + s->c.cl->idle_timeout);
            sk_want(gw.loop, &s->c.sk, true, false);
        }
        return;
    }
    bool rd, wr;
    sk_ready(&s->c.sk, revents, &rd, &wr);
    if (s->state == H1_ERROR) {
        error_io(s, rd, wr);
        return;
    }
    if (s->state == H1_TUNNEL) {
        tunnel_io(s, true, rd, wr);
        return;
    }
    if (wr && !flush_response(s))
        return;
    if (rd && !read_client(s))
        return;
    if (s->state != H1_ERROR)
        update_interest(s);
}

static void on_connected(struct h1s *s)
{
    int rc = upstream_connected(s->up);
    if (rc == 0) {
        update_interest(s);
        return;
    }
    if (rc < 0) {
        attempt_failed(s, rc == -ECONNREFUSED ? DC_FAIL_REFUSED : DC_FAIL_RESET, 502);
        return;
    }
    start_exchange(s);
}

static void on_server_io(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    struct h1s *s = w->data;
    if (s->state == H1_CONNECT) {
        on_connected(s);
        return;
    }
    bool rd, wr;
    sk_ready(&s->up->sk, revents, &rd, &wr);
    if (s->state == H1_TUNNEL) {
        tunnel_io(s, false, rd, wr);
        return;
    }
    if (wr && !flush_request(s))
        return;
    if (rd && !read_response(s))
        return;
    update_interest(s);
}

static void on_timeout(struct conn *c)
{
    struct h1s *s = container_of(c, struct h1s, c);
    switch (s->state) {
    case H1_CONNECT:
        attempt_failed(s, DC_FAIL_TIMEOUT, 504);
        return;
    case H1_HOLD:
        counters->hold_timeouts_total++;
        send_error(s, 503);
        return;
    case H1_EXCHANGE:
        if (s->resp_head || s->resp_started) {
            h1_free(s, true);
        } else if (!s->req_done) {
            send_error(s, 408); /* the client stopped sending its body */
        } else {
            /* No answer in time: another server for a request that may be
             * replayed, 504 otherwise. */
            attempt_failed(s, DC_FAIL_TIMEOUT, 504);
        }
        return;
    case H1_PROXY:
        read_proxy(s);
        return;
    case H1_HEAD:
        send_error(s, 408);
        return;
    case H1_HANDSHAKE:
        tls_count_failure();
        h1_free(s, false);
        return;
    default:
        h1_free(s, false);
    }
}
