/* Active health checks.
 *
 * One small state machine per server on the caller's loop: IDLE (waiting for
 * the next round) -> CONNECT -> [TLS handshake] -> [SEND request -> RECV
 * response] -> result. Rounds are spread with jitter so that many servers
 * with the same interval are not probed in lockstep.
 *
 * http checks keep their connection alive between rounds (as Envoy does): a
 * round then costs one write and one read instead of a TCP handshake and
 * teardown. A kept connection that the server closed in between is not a
 * failure; the round reconnects. Round-trip times are measured the same way
 * either way: tcp and tls from connect to established, http from request to
 * response. Servers reached over TLS are checked over TLS, with the same
 * verification as traffic. */
#include "healthcheck/check.h"
#include "base/alloc.h"
#include "healthcheck/datacenter.h"
#include "healthcheck/view.h"
#include "proto/http.h"
#include "base/counters.h"
#include "base/log.h"
#include "base/net.h"
#include "base/socket.h"
#include "base/tls.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum hc_state { HC_IDLE, HC_CONNECT, HC_TLS, HC_SEND, HC_RECV };

struct check {
    struct srv *srv;
    struct ev_loop *loop;
    ev_timer tm;                /* next round while idle, timeout while probing */
    struct sk sk;               /* http: kept open between rounds */
    uint8_t state;
    bool reused;                /* this round runs on a kept connection */
    ev_tstamp started;          /* round start (for the schedule) */
    ev_tstamp t0;               /* RTT measurement start */
    size_t sent, rlen;
    size_t req_len;
    struct http_msg resp;
    struct http_hdr resp_hdr;
    struct http_body body;
    bool head_done;
    char req[512];
    char rbuf[2048];
};

static SSL_CTX *tls_ctx;

unsigned long check_total(void) { return view_checks_total(); }

static const struct conf_check *check_of(const struct check *h) { return &h->srv->dc->cd->check; }

/* Uniform in [lo, hi). */
static double jitter(double lo, double hi) { return lo + (hi - lo) * (random() / (RAND_MAX + 1.0)); }

static void on_timer(struct ev_loop *loop, ev_timer *w, int revents);
static void on_io(struct ev_loop *loop, ev_io *w, int revents);
static void start_round(struct check *h);

static void schedule(struct check *h, double after)
{
    ev_timer_stop(h->loop, &h->tm);
    ev_timer_set(&h->tm, after, 0);
    ev_timer_start(h->loop, &h->tm);
}

/* Reset rather than close: a check a second per server would otherwise pile
 * up tens of thousands of TIME_WAIT sockets. */
static void drop_conn(struct check *h) { sk_abort(h->loop, &h->sk); }

/* Next round: interval from this one's start, +-10% */
static void schedule_next(struct check *h)
{
    h->state = HC_IDLE;
    double next = check_of(h)->interval * jitter(0.9, 1.1) - (ev_time() - h->started);
    schedule(h, next > 0.001 ? next : 0.001);
}

static bool status_ok(const struct check *h)
{
    int expect = check_of(h)->expect;
    int st = h->resp.status;
    return expect ? st == expect : st >= 200 && st < 400;
}

static const char *const cause_names[] = {
    [CHECK_C_NONE] = "none", [CHECK_C_OK] = "ok", [CHECK_C_TIMEOUT] = "timeout",
    [CHECK_C_REFUSED] = "refused", [CHECK_C_RESET] = "reset",
    [CHECK_C_UNREACHABLE] = "unreachable", [CHECK_C_CONNECT] = "connect",
    [CHECK_C_TLS] = "tls", [CHECK_C_STATUS] = "status", [CHECK_C_CLOSED] = "closed",
    [CHECK_C_BAD_RESPONSE] = "bad_response",
};

const char *check_cause_name(int cause) { return cause_names[cause]; }

void check_describe(const struct check_result *r, char *buf, size_t len)
{
    switch ((enum check_cause)r->cause) {
    case CHECK_C_NONE: snprintf(buf, len, "no check yet"); return;
    case CHECK_C_OK:
        if (r->detail)
            snprintf(buf, len, "status %d", r->detail);
        else
            snprintf(buf, len, "ok");
        return;
    case CHECK_C_TIMEOUT: snprintf(buf, len, "timeout after %.0f ms", r->duration_ms); return;
    case CHECK_C_REFUSED: snprintf(buf, len, "refused"); return;
    case CHECK_C_RESET: snprintf(buf, len, "reset"); return;
    case CHECK_C_UNREACHABLE: snprintf(buf, len, "unreachable"); return;
    case CHECK_C_CONNECT: snprintf(buf, len, "connect: %s", strerror(r->detail)); return;
    case CHECK_C_TLS:
        if (r->detail != X509_V_OK)
            snprintf(buf, len, "TLS error: %s", X509_verify_cert_error_string(r->detail));
        else
            snprintf(buf, len, "TLS error");
        return;
    case CHECK_C_STATUS: snprintf(buf, len, "status %d", r->detail); return;
    case CHECK_C_CLOSED: snprintf(buf, len, "closed before the response"); return;
    case CHECK_C_BAD_RESPONSE: snprintf(buf, len, "invalid response"); return;
    }
    snprintf(buf, len, "?");
}

/* What a failed connect, send or read says about the server. */
static enum check_cause errno_cause(int err, enum check_cause otherwise)
{
    switch (err) {
    case ECONNREFUSED: return CHECK_C_REFUSED;
    case ECONNRESET:
    case EPIPE: return CHECK_C_RESET;
    case EHOSTUNREACH:
    case ENETUNREACH: return CHECK_C_UNREACHABLE;
    case ETIMEDOUT: return CHECK_C_TIMEOUT;
    default: return otherwise;
    }
}

/* The round ends with a verdict: CAUSE (CHECK_C_OK when it passed) and its
 * DETAIL. KEEP: the http connection stays open for the next round. */
static void finish(struct check *h, enum check_cause cause, int detail, bool keep)
{
    ev_tstamp end = ev_time();
    double rtt_ms = (end - h->t0) * 1000;
    struct check_result r = {.cause = (uint8_t)cause, .ok = cause == CHECK_C_OK,
                             .detail = detail, .duration_ms = (end - h->started) * 1000,
                             .at = ev_now(h->loop)};
    if (keep) {
        /* Watch the idle connection: a close by the server is noticed now,
         * not by the next round. */
        sk_want(h->loop, &h->sk, true, false);
    } else {
        drop_conn(h);
    }
    view_count_check();
    if (!r.ok && log_level >= LOG_DEBUG) {
        char why[96];
        check_describe(&r, why, sizeof(why));
        log_debug("check of %s (%s) failed: %s", h->srv->name, h->srv->dc->name, why);
    }
    schedule_next(h);
    srv_check_result(h->srv, &r, rtt_ms); /* may log and reroute: last */
}

/* A status passes or fails the round. */
static void finish_status(struct check *h, bool keep)
{
    finish(h, status_ok(h) ? CHECK_C_OK : CHECK_C_STATUS, h->resp.status, keep);
}

/* A socket we could not open for want of local resources says nothing about
 * the server: blaming it would take every datacenter down at once when the
 * gateway runs out of descriptors. The round is skipped, without a verdict;
 * the next one comes at the usual interval. */
static void skip_round(struct check *h, int err)
{
    static struct log_limit limit;
    counters->check_local_errors_total++;
    log_limited(&limit, 10, LOG_WARN, "check of %s (%s) skipped: %s (a local shortage, not "
                "the server's fault)", h->srv->name, h->srv->dc->name, strerror(err));
    schedule_next(h);
}

/* The kept connection failed before answering: the server closed it while
 * idle (keep-alive timeout, restart). Not a verdict; connect afresh. */
static bool retry_fresh(struct check *h)
{
    if (!h->reused || h->sent == 0 || h->rlen > 0 || h->head_done)
        return false;
    drop_conn(h);
    start_round(h);
    return true;
}

static void build_request(struct check *h)
{
    const struct conf_check *ck = check_of(h);
    const char *host = ck->host ? ck->host : h->srv->cs->host;
    int n = snprintf(h->req, sizeof(h->req),
                     "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: edgegate-check\r\n\r\n",
                     ck->path, host);
    h->req_len = n > 0 && (size_t)n < sizeof(h->req) ? (size_t)n : 0;
}

static void begin_http(struct check *h)
{
    h->state = HC_SEND;
    h->sent = h->rlen = 0;
    h->head_done = false;
    http_msg_init(&h->resp, true, &h->resp_hdr, 1);
    h->t0 = ev_time();
}

static void step(struct check *h, int revents);

static void start_round(struct check *h)
{
    const struct conf_check *ck = check_of(h);
    schedule(h, ck->timeout - (ev_time() - h->started));
    if (ck->type == CHECK_HTTP && h->sk.fd >= 0) {
        h->reused = true;
        begin_http(h);
        step(h, 0);
        return;
    }
    h->reused = false;
    h->t0 = ev_time();
    int fd = net_connect(&h->srv->addr, ck->type == CHECK_HTTP ? NET_NODELAY : 0);
    h->state = HC_CONNECT;
    sk_init(&h->sk, fd, on_io, h);
    if (fd < 0 && net_local_exhaustion(errno)) {
        skip_round(h, errno);
        return;
    }
    if (fd < 0) {
        finish(h, errno_cause(errno, CHECK_C_CONNECT), errno, false);
        return;
    }
    /* Both events: a connect that failed reports readable too, one that
     * succeeded only writable, which spares asking the socket. */
    sk_want_raw(h->loop, &h->sk, EV_READ | EV_WRITE);
}

static void on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop, (void)revents;
    struct check *h = w->data;
    if (h->state == HC_IDLE) {
        h->started = ev_time();
        start_round(h);
    } else {
        finish(h, CHECK_C_TIMEOUT, 0, false);
    }
}

static void start_tls(struct check *h)
{
    /* A `check tls` of a plain server only proves that TLS answers: it is
     * not verified, but it sends the name so that SNI routing works. */
    if (!h->srv->tls && !tls_ctx) {
        char err[EG_ERRLEN];
        if (!(tls_ctx = tls_client_ctx(NULL, err, sizeof(err)))) {
            finish(h, CHECK_C_TLS, X509_V_OK, false);
            return;
        }
    }
    h->sk.ssl = h->srv->tls ? srv_tls_session(h->srv, h->sk.fd)
                            : tls_client_ssl(tls_ctx, h->sk.fd,
                                             h->srv->cs->resolve ? h->srv->cs->host : NULL,
                                             NULL, false);
    if (!h->sk.ssl) {
        finish(h, CHECK_C_TLS, X509_V_OK, false);
        return;
    }
    h->state = HC_TLS;
}

/* Consumes the response: head, then body, so the connection can carry the
 * next round. */
static void read_response(struct check *h)
{
    for (;;) {
        ssize_t n = sk_read(&h->sk, h->rbuf + h->rlen, sizeof(h->rbuf) - h->rlen);
        if (n == EG_AGAIN)
            return;
        if (n <= 0) {
            if (h->head_done && h->body.kind == BODY_CLOSE && n == 0) {
                finish_status(h, false);
                return;
            }
            if (!retry_fresh(h))
                finish(h, n == 0 ? CHECK_C_CLOSED : errno_cause(h->sk.err, CHECK_C_CLOSED),
                       h->sk.err, false);
            return;
        }
        h->rlen += (size_t)n;
        size_t from = 0;
        if (!h->head_done) {
            static const struct http_limits lim = {.max_line = 1024, .max_head = 2048,
                                                   .max_headers = HTTP_MAX_HDRS};
            int rc = http_parse(&h->resp, h->rbuf, h->rlen, &lim);
            if (rc == EG_AGAIN && h->rlen < sizeof(h->rbuf))
                continue;
            if (rc != EG_OK) {
                finish(h, CHECK_C_BAD_RESPONSE, 0, false);
                return;
            }
            if (h->resp.status < 200) { /* interim: the final head follows */
                memmove(h->rbuf, h->rbuf + h->resp.head_len, h->rlen - h->resp.head_len);
                h->rlen -= h->resp.head_len;
                http_msg_init(&h->resp, true, &h->resp_hdr, 1);
                continue;
            }
            h->head_done = true;
            http_body_response(&h->body, &h->resp, HTTP_GET);
            from = h->resp.head_len;
        }
        size_t used, avail = h->rlen - from;
        int rc = http_body_scan(&h->body, h->rbuf + from, avail, &used);
        h->rlen = 0; /* body bytes are not kept */
        if (rc == EG_ERR) {
            finish(h, CHECK_C_BAD_RESPONSE, 0, false);
            return;
        }
        if (rc == EG_OK) {
            /* Reusable when the server keeps it open and sent nothing extra. */
            bool keep = !(h->resp.flags & HF_CONN_CLOSE) && h->resp.minor == 1 &&
                        used == avail;
            finish_status(h, keep);
            return;
        }
    }
}

static void send_request(struct check *h)
{
    ssize_t w = sk_write(&h->sk, h->req + h->sent, h->req_len - h->sent);
    if (w == EG_ERR || h->req_len == 0) {
        if (!retry_fresh(h))
            finish(h, errno_cause(h->sk.err, CHECK_C_CLOSED), h->sk.err, false);
        return;
    }
    if (w > 0)
        h->sent += (size_t)w;
    if (h->sent < h->req_len) {
        sk_want(h->loop, &h->sk, false, true);
        return;
    }
    h->state = HC_RECV;
    sk_want(h->loop, &h->sk, true, false);
}

static void on_connected(struct check *h, int revents)
{
    int err = (revents & EV_READ) ? net_connect_result(h->sk.fd) : 0;
    if (err) {
        finish(h, errno_cause(err, CHECK_C_CONNECT), err, false);
        return;
    }
    switch (check_of(h)->type) {
    case CHECK_TCP:
        finish(h, CHECK_C_OK, 0, false);
        return;
    case CHECK_TLS:
        start_tls(h);
        return;
    default:
        if (h->srv->tls)
            start_tls(h);
        else
            begin_http(h);
    }
}

/* A reset is the network's word; anything else, the certificate's or the
 * protocol's. */
static void tls_failed(struct check *h)
{
    if (h->sk.err && errno_cause(h->sk.err, CHECK_C_TLS) != CHECK_C_TLS) {
        finish(h, errno_cause(h->sk.err, CHECK_C_TLS), h->sk.err, false);
        return;
    }
    finish(h, CHECK_C_TLS, (int)SSL_get_verify_result(h->sk.ssl), false);
}

static void step(struct check *h, int revents)
{
    switch (h->state) {
    case HC_CONNECT:
        on_connected(h, revents);
        if (h->state == HC_TLS || h->state == HC_SEND)
            step(h, 0);
        return;
    case HC_TLS: {
        int rc = sk_handshake(&h->sk);
        if (rc == EG_AGAIN) {
            sk_want_raw(h->loop, &h->sk, h->sk.hs_ev);
        } else if (rc != EG_OK) {
            tls_failed(h);
        } else if (check_of(h)->type == CHECK_TLS) {
            finish(h, CHECK_C_OK, 0, false);
        } else {
            begin_http(h); /* an http check over TLS */
            step(h, 0);
        }
        return;
    }
    case HC_SEND:
        send_request(h);
        if (h->state == HC_RECV)
            read_response(h);
        return;
    case HC_RECV:
        read_response(h);
        return;
    default:
        /* Idle kept connection became readable: closed by the server, or
         * bytes nobody asked for. Either way it cannot serve a round. */
        drop_conn(h);
    }
}

static void on_io(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    step(w->data, revents);
}

struct check *check_start(struct ev_loop *loop, struct srv *s)
{
    struct check *h = eg_calloc(1, sizeof(*h));
    h->srv = s;
    h->loop = loop;
    h->sk.fd = -1;
    ev_timer_init(&h->tm, on_timer, 0, 0);
    h->tm.data = h;
    if (s->dc->cd->check.type == CHECK_HTTP)
        build_request(h);
    /* The first round soon, but not all servers at the same instant. */
    double first = s->dc->cd->check.interval;
    schedule(h, jitter(0, first < 0.5 ? first : 0.5));
    return h;
}

void check_stop(struct check *h)
{
    ev_timer_stop(h->loop, &h->tm);
    drop_conn(h);
    free(h);
}
