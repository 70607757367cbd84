/* http mode: the request.
 *
 * The request stays in the client buffer `ib` exactly as received; what goes
 * to the server is described by iovecs over it (a PROXY header when the
 * connection is new, the head minus hop-by-hop headers plus the forwarding
 * headers we add, then the body), so nothing is copied and a failed attempt
 * can be replayed from the same bytes. A request that outgrows one buffer is
 * kept whole in a larger one up to `replay_buffer`. Replay stops being
 * possible when a response byte reached the client, when the request reached
 * a server and is neither idempotent nor carries Idempotency-Key, or when the
 * body outgrew the replay buffer and sent bytes had to be dropped. */
#include "base/alloc.h"
#include "base/counters.h"
#include "base/log.h"
#include "gateway/ops/access_log.h"
#include "gateway/proxy/http_common.h"
#include "gateway/proxy/http_session.h"
#include "gateway/proxy/upstream.h"

#include <string.h>

_Static_assert(HTTP_MAX_HDRS == CONF_MAX_HEADERS, "the parser keeps max_headers headers");

static struct pool exchange_pool = POOL_INIT(struct http_exchange, 256);

static struct http_exchange *exchange_new(struct http_session *s)
{
    struct http_exchange *x = pool_get(&exchange_pool);
    memset(x, 0, offsetof(struct http_exchange, log_method));
    attempt_init(&x->a, &http_attempt_ops, &s->c, s->c.cl->send_proxy, &s->kept);
    x->a.sends_first = true; /* the request head */
    http_msg_init(&x->req, false, x->req_hdrs, HTTP_MAX_HDRS);
    s->x = x;
    return x;
}

void http_exchange_free(struct http_session *s)
{
    struct http_exchange *x = s->x;
    attempt_cancel(&x->a);
    buf_put(x->ob);
    pump_clear(&x->up);
    pump_clear(&x->down);
    pool_put(&exchange_pool, x);
    s->x = NULL;
}

static struct http_session *session_of(const struct attempt *a)
{
    return container_of(a->c, struct http_session, c);
}

/* ---- the outgoing request ---- */

/* The outgoing request: [PROXY header] head (ohl bytes) body. Once the head
 * is out and dropped from ib, only the body remains. */
uint32_t http_out_total(const struct http_exchange *x)
{
    return x->head_gone ? x->req_len : x->pp_len + x->ohl + x->req_len - x->req.head_len;
}

bool http_request_unsent(const struct http_exchange *x)
{
    return x->req_sent < http_out_total(x);
}

/* Describes the outgoing request from byte SKIP on. */
static int build_iov(struct http_session *s, struct iovec *iov, size_t skip)
{
    struct http_exchange *x = s->x;
    char *base = buf_rpos(s->ib);
    struct iovec all[MAX_IOV];
    int n = iov_add(all, 0, x->pp, x->pp_len);
    if (!x->head_gone)
        n = fwd_head(&x->fwd, &x->req, base, all, n);
    uint32_t body_from = x->head_gone ? 0 : x->req.head_len;
    n = iov_add(all, n, base + body_from, x->req_len - body_from);
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
static uint32_t outgoing_head_len(struct http_session *s)
{
    struct iovec iov[MAX_IOV];
    int n = fwd_head(&s->x->fwd, &s->x->req, buf_rpos(s->ib), iov, 0);
    uint32_t total = 0;
    for (int i = 0; i < n; i++)
        total += (uint32_t)iov[i].iov_len;
    return total;
}

static bool idempotent(const struct http_exchange *x)
{
    return http_method_idempotent(x->method) || (x->req.flags & HF_IDEMPOTENCY);
}

bool http_flush_request(struct http_session *s)
{
    struct http_exchange *x = s->x;
    if (!http_request_unsent(x))
        return true;
    struct iovec iov[MAX_IOV];
    int n = build_iov(s, iov, x->req_sent);
    ssize_t w = sk_writev(&x->a.up->sk, iov, n);
    if (w == EG_ERR) {
        attempt_failed(&x->a, FAULT_RESET, 502);
        return false;
    }
    if (w > 0) {
        x->req_sent += (uint32_t)w;
        x->tx_req += (uint64_t)w;
        x->reached = true;
        x->a.up->srv->st->bytes_out += (uint64_t)w;
        counters->bytes_out_total += (uint64_t)w;
        /* All out: the server must answer now (or a hedge may race it). */
        if (x->req_state == REQ_DONE && !http_request_unsent(x) && x->resp_state < RESP_BODY)
            attempt_await_answer(&x->a, idempotent(x));
    }
    return true;
}

/* ---- keeping the request for a replay ---- */

/* How large ib may grow to keep the whole request for a replay. */
static size_t replay_limit(const struct http_session *s)
{
    return MAX(buf_size(), s->c.cl->replay_buffer + s->x->req.head_len);
}

/* Forgets request bytes already written, to make room for more body: the
 * request can no longer be replayed. Only once the head is out. */
static bool drop_sent_request(struct http_session *s)
{
    struct http_exchange *x = s->x;
    uint32_t consumed;
    if (x->head_gone) {
        consumed = x->req_sent;
    } else {
        uint32_t head_out = x->pp_len + x->ohl;
        if (x->req_sent < head_out)
            return false;
        consumed = x->req.head_len + (x->req_sent - head_out);
        x->head_gone = true;
        x->pp_len = 0;
    }
    s->ib->head += consumed;
    x->req_len -= consumed;
    x->req_sent = 0;
    x->replay_off = true;
    buf_compact(s->ib);
    return true;
}

/* Makes room in a full ib: a larger buffer while the request still fits in
 * the replay limit, else (once the server has them) drop sent bytes. */
static bool make_room(struct http_session *s)
{
    struct http_exchange *x = s->x;
    if (!x->replay_off && s->ib->cap < replay_limit(s)) {
        s->ib = buf_grow(s->ib, MIN(replay_limit(s), (size_t)s->ib->cap * 4));
        return true;
    }
    return x->a.state == ATTEMPT_READY && drop_sent_request(s);
}

/* Whether more client bytes can be taken now (reading them may first grow
 * ib, or drop bytes the server already has). */
static bool ib_can_take(const struct http_session *s)
{
    const struct http_exchange *x = s->x;
    if (!s->ib || buf_room(s->ib) > 0)
        return true;
    if (!x->replay_off && s->ib->cap < replay_limit(s))
        return true;
    return x->a.state == ATTEMPT_READY && !http_request_unsent(x);
}

/* The client stays readable during an exchange, also once its request is
 * complete (pipelined bytes wait in ib; a client leaving is noticed): turning
 * reading off and on for every request would cost a system call each. */
bool http_client_readable(const struct http_session *s)
{
    if (s->cl_eof)
        return false;
    if (s->x->req_state == REQ_DONE)
        return !s->ib || buf_room(s->ib) > 0;
    return ib_can_take(s);
}

/* ---- the request body ---- */

static ev_tstamp body_deadline(const struct http_session *s)
{
    return conn_body_deadline(&s->c, s->x->body_start, s->x->body_in);
}

/* ---- the attempt engine's callbacks ---- */

static void on_ready(struct attempt *a)
{
    struct http_session *s = session_of(a);
    struct http_exchange *x = s->x;
    struct upstream *u = a->up;
    x->req_sent = x->hedge_sent = 0;
    x->pp_len = 0;
    if (s->c.cl->send_proxy && u->requests == 0 && !x->head_gone)
        x->pp_len = (uint8_t)conn_proxy_header(&s->c, x->pp);
    buf_put(x->ob);
    x->ob = NULL;
    x->ob_end = 0;
    x->resp_state = RESP_HEAD;
    x->interims = 0;
    http_msg_init(&x->resp, true, &x->resp_hdr, 1);
    u->requests++;
    if (!http_flush_request(s))
        return;
    if (x->req_state != REQ_DONE) /* else flush_request awaits the answer */
        conn_deadline(&s->c, body_deadline(s));
    else if (http_request_unsent(x))
        conn_deadline(&s->c, ev_now(gw.loop) + s->c.cl->idle_timeout);
    http_update_interest(s);
}

static void on_give_up(struct attempt *a, int status, const char *why)
{
    (void)why;
    http_send_error(session_of(a), status);
}

static bool replayable(const struct attempt *a)
{
    const struct http_exchange *x = session_of(a)->x;
    if (x->replay_off || x->resp_started)
        return false;
    if (!x->reached)
        return true;
    return idempotent(x);
}

static void on_waiting(struct attempt *a) { http_update_interest(session_of(a)); }

static void on_server_io(struct attempt *a, bool rd, bool wr)
{
    http_server_io(session_of(a), rd, wr);
}

/* The server was marked down. A request none of whose answer reached the
 * client moves (replayed when it may be, else a 502 saying it may have been
 * processed); a tunnel is closed so that the client reconnects elsewhere
 * (unless on_down keep); a
 * response already on its way is left to finish. */
static void on_server_down(struct attempt *a)
{
    struct http_session *s = session_of(a);
    if (s->phase == PHASE_TUNNEL) {
        if (s->c.cl->on_down == ON_DOWN_CLOSE)
            http_free(s, true);
    }
    else if (!s->x->resp_started)
        attempt_failed(a, FAULT_DOWN, 502);
}

/* Writes the request on the hedge connection, as on the first one. */
static bool on_hedge_write(struct attempt *a)
{
    struct http_session *s = session_of(a);
    struct http_exchange *x = s->x;
    struct iovec iov[MAX_IOV];
    if (x->hedge_sent < http_out_total(x)) {
        int n = build_iov(s, iov, x->hedge_sent);
        ssize_t w = sk_writev(&a->hedge->sk, iov, n);
        if (w == EG_ERR)
            return false;
        if (w > 0)
            x->hedge_sent += (uint32_t)w;
    }
    sk_want(gw.loop, &a->hedge->sk, true, x->hedge_sent < http_out_total(x));
    return true;
}

static void on_hedge_won(struct attempt *a)
{
    struct http_session *s = session_of(a);
    s->x->req_sent = s->x->hedge_sent;
    http_update_interest(s);
}

const struct attempt_ops http_attempt_ops = {
    .ready = on_ready, .give_up = on_give_up, .replayable = replayable, .waiting = on_waiting,
    .server_io = on_server_io, .hedge_write = on_hedge_write, .hedge_won = on_hedge_won,
    .server_down = on_server_down,
};

/* ---- the request head ---- */

/* Where the session key is in this request (NULL: it has none). */
static const char *find_key(struct http_session *s, size_t *n)
{
    struct http_exchange *x = s->x;
    const char *v = NULL;
    *n = 0;
    switch (s->c.cl->sess) {
    case SESS_NONE:
        break;
    case SESS_HEADER:
        if (x->req.sess_hdr >= 0) {
            v = buf_rpos(s->ib) + x->req.hdrs[x->req.sess_hdr].val;
            *n = x->req.hdrs[x->req.sess_hdr].val_len;
        }
        break;
    case SESS_COOKIE:
        http_find_cookie(&x->req, buf_rpos(s->ib), s->c.cl->sess_name, s->c.cl->sess_name_len,
                         &v, n);
        break;
    case SESS_SNI:
        v = conn_sni(&s->c);
        *n = v ? strlen(v) : 0;
        break;
    case SESS_CLIENT_IP:
        v = x->ip;
        *n = strlen(v);
        break;
    }
    return v;
}

/* Copies the session key (ib moves under it); false (after answering 400)
 * when it is bad. */
static bool extract_key(struct http_session *s)
{
    struct http_exchange *x = s->x;
    size_t n;
    const char *v = find_key(s, &n);
    if (!v || n == 0)
        return true;
    if (s->c.cl->sess != SESS_CLIENT_IP && !affinity_key_valid(v, n)) {
        counters->bad_session_keys_total++;
        http_send_error(s, 400);
        return false;
    }
    memcpy(x->key, v, n);
    x->a.key = x->key;
    x->a.keylen = (uint16_t)n;
    return true;
}

/* Keeps what the access log needs of the head: it may be gone (streamed
 * bodies) by the time the request ends. */
static void keep_for_log(struct http_session *s)
{
    struct http_exchange *x = s->x;
    const char *base = buf_rpos(s->ib);
    size_t ml = MIN((size_t)x->req.method_len, sizeof(x->log_method) - 1);
    memcpy(x->log_method, base, ml);
    x->log_method[ml] = '\0';
    x->log_path_len = (uint16_t)MIN((size_t)x->req.target_len, sizeof(x->log_path));
    memcpy(x->log_path, base + x->req.target, x->log_path_len);
}

static bool scan_body(struct http_session *s);

/* The body may arrive before a server is chosen (buffer_request): routing
 * starts once it is all there or buffer_request bytes of it are. */
static void start_when_buffered(struct http_session *s)
{
    struct http_exchange *x = s->x;
    size_t want = MIN(s->c.cl->buffer_request, s->c.cl->replay_buffer);
    if (x->req_state != REQ_DONE && x->body_in < want) {
        conn_deadline(&s->c, body_deadline(s));
        return;
    }
    x->buffering = false;
    attempt_start(&x->a);
}

static void head_complete(struct http_session *s)
{
    struct http_exchange *x = s->x;
    counters->requests_total++;
    x->req_state = REQ_BODY;
    if (access_log_format != ACCESS_LOG_OFF)
        keep_for_log(s);
    x->method = x->req.method;
    conn_peer_ip(&s->c, x->ip);
    if (x->method == HTTP_CONNECT) {
        http_send_error(s, 405);
        return;
    }
    if (fwd_prepare(&x->fwd, &x->req, buf_rpos(s->ib), http_fwd_opts(s->c.cl), x->ip, s->c.tls) >
        MAX_DROPPED) {
        http_send_error(s, 400);
        return;
    }
    http_body_request(&x->reqb, &x->req);
    x->keep_client = x->req.minor == 1 ? !(x->req.flags & HF_CONN_CLOSE)
                                       : (x->req.flags & HF_CONN_KA) != 0;
    x->req_len = x->req.head_len;
    x->ohl = outgoing_head_len(s);
    x->body_start = ev_now(gw.loop);
    if (!extract_key(s) || !scan_body(s))
        return;
    x->body_in = x->req_len - x->req.head_len; /* what came with the head */
    x->buffering = true;
    start_when_buffered(s);
}

/* Scans newly received body bytes; REQ_DONE at the request's end. False
 * after answering an error. */
static bool scan_body(struct http_session *s)
{
    struct http_exchange *x = s->x;
    if (x->req_state == REQ_DONE || !s->ib)
        return true;
    size_t avail = buf_len(s->ib) - x->req_len, used;
    int rc = http_body_scan(&x->reqb, buf_rpos(s->ib) + x->req_len, avail, &used);
    if (rc == EG_ERR) {
        log_debug("http: bad request body: %s", x->reqb.err);
        if (x->reached || x->resp_started) {
            http_free(s, true);
            return false;
        }
        http_send_error(s, 400);
        return false;
    }
    x->req_len += (uint32_t)used;
    if (rc == EG_OK)
        x->req_state = REQ_DONE;
    return true;
}

/* The first byte of a request: its exchange starts, and the head must be
 * complete within request_timeout. */
static void begin_request(struct http_session *s)
{
    struct http_exchange *x = exchange_new(s);
    s->phase = PHASE_EXCHANGE;
    x->start = ev_now(gw.loop);
    conn_deadline(&s->c, x->start + s->c.cl->request_timeout);
}

/* Parses what ib holds of a head. False when the session ended. */
static bool parse_head(struct http_session *s)
{
    struct buf *b = s->ib;
    /* Empty lines before a request line are allowed (RFC 9112 2.2). */
    while (!s->x && buf_len(b) > 0 && (*buf_rpos(b) == '\r' || *buf_rpos(b) == '\n'))
        b->head++;
    if (buf_len(b) == 0)
        return true;
    if (!s->x)
        begin_request(s);
    struct http_exchange *x = s->x;
    struct http_limits lim;
    http_limits_of(s->c.cl, &lim);
    int rc = http_parse(&x->req, buf_rpos(b), buf_len(b), &lim);
    if (rc == EG_AGAIN) {
        if (buf_room(b) > 0)
            return true;
        if (b->head > 0) {
            buf_compact(b);
            return true;
        }
        http_send_error(s, 431);
        return false;
    }
    if (rc == EG_ERR) {
        log_debug("http: bad request from %s: %s", s->c.cl->name, x->req.err);
        http_send_error(s, x->req.err_status);
        return false;
    }
    head_complete(s);
    return true;
}

bool http_process_input(struct http_session *s)
{
    if (!s->x || s->x->req_state == REQ_HEAD) {
        if (!s->ib)
            return true;
        if (!parse_head(s))
            return false;
        if (s->phase != PHASE_EXCHANGE || s->x->req_state == REQ_HEAD)
            return true;
    }
    if (!scan_body(s))
        return false;
    if (s->x->buffering) {
        start_when_buffered(s);
        return s->phase == PHASE_EXCHANGE;
    }
    if (s->x->a.state == ATTEMPT_READY)
        return http_flush_request(s);
    return true;
}

bool http_read_client(struct http_session *s)
{
    struct http_exchange *x = s->x;
    if (!s->ib)
        s->ib = buf_get();
    bool in_body = x && x->req_state == REQ_BODY;
    if (buf_room(s->ib) == 0 && in_body && !make_room(s))
        return true;
    if (buf_room(s->ib) == 0)
        return true;
    ssize_t n = sk_read(&s->c.sk, buf_wpos(s->ib), buf_room(s->ib));
    if (n > 0) {
        s->ib->tail += (uint32_t)n;
        counters->bytes_in_total += (uint64_t)n;
        if (in_body) {
            x->body_in += (uint64_t)n;
            if (x->a.state == ATTEMPT_READY)
                conn_deadline(&s->c, body_deadline(s));
        }
        return http_process_input(s);
    }
    if (buf_len(s->ib) == 0) {
        buf_put(s->ib);
        s->ib = NULL;
    }
    if (n == EG_AGAIN)
        return true;
    if (n == EG_ERR || !x || x->req_state == REQ_HEAD) {
        http_free(s, false);
        return false;
    }
    /* EOF after a complete request: the client may still read the answer,
     * unless it is held, where it would only take a place from another. */
    s->cl_eof = true;
    x->keep_client = false;
    if (x->req_state != REQ_DONE || x->a.state == ATTEMPT_HOLD) {
        http_free(s, false);
        return false;
    }
    return true;
}

void http_request_timeout(struct http_session *s)
{
    struct http_exchange *x = s->x;
    if (x->req_state == REQ_HEAD || x->buffering) {
        http_send_error(s, 408);
        return;
    }
    if (x->a.state != ATTEMPT_READY) {
        http_free(s, false);
        return;
    }
    if (x->resp_state >= RESP_BODY || x->resp_started) {
        http_free(s, true);
    } else if (x->req_state != REQ_DONE) {
        http_send_error(s, 408); /* the client stopped sending its body */
    } else {
        /* No answer in time: another server for a request that may be
         * replayed, 504 otherwise. */
        attempt_failed(&x->a, FAULT_SLOW, 504);
    }
}
