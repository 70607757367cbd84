/* Active health checks.
 *
 * One small state machine per server on the caller's loop: IDLE (waiting for
 * the next round) -> CONNECT -> [TLS handshake] -> [SEND request -> RECV
 * status line] -> result. A round's round trip (from connect to result) feeds
 * the RTT estimate. Rounds are spread with jitter so that many servers with
 * the same interval are not probed in lockstep. */
#include "healthcheck/hc.h"
#include "healthcheck/dc.h"
#include "gateway/log.h"
#include "gateway/net.h"
#include "gateway/sk.h"

#include <errno.h>
#include <openssl/err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum hc_state { HC_IDLE, HC_CONNECT, HC_TLS, HC_SEND, HC_RECV };

struct hc {
    struct srv *srv;
    struct ev_loop *loop;
    ev_timer tm;                /* next round while idle, timeout while probing */
    struct sk sk;
    uint8_t state;
    ev_tstamp started;
    size_t sent, rlen;
    char req[512];
    size_t req_len;
    char rbuf[256];
};

static SSL_CTX *tls_ctx;
static unsigned long total;

unsigned long hc_total(void) { return total; }

static const struct conf_check *check_of(const struct hc *h) { return &h->srv->dc->cd->check; }

/* Uniform in [lo, hi). */
static double jitter(double lo, double hi) { return lo + (hi - lo) * (random() / (RAND_MAX + 1.0)); }

static void on_timer(struct ev_loop *loop, ev_timer *w, int revents);
static void on_io(struct ev_loop *loop, ev_io *w, int revents);

static void schedule(struct hc *h, double after)
{
    ev_timer_stop(h->loop, &h->tm);
    ev_timer_set(&h->tm, after, 0);
    ev_timer_start(h->loop, &h->tm);
}

static void finish(struct hc *h, bool ok, const char *why)
{
    double rtt_ms = (ev_time() - h->started) * 1000;
    sk_close(h->loop, &h->sk);
    h->state = HC_IDLE;
    total++;
    if (!ok)
        log_debug("check of %s (%s) failed: %s", h->srv->name, h->srv->dc->name, why);
    const struct conf_check *ck = check_of(h);
    /* Next round: interval from this one's start, +-10% */
    double next = ck->interval * jitter(0.9, 1.1) - (ev_time() - h->started);
    schedule(h, next > 0.001 ? next : 0.001);
    srv_check_result(h->srv, ok, rtt_ms); /* may log and reroute: last */
}

static void build_request(struct hc *h)
{
    const struct conf_check *ck = check_of(h);
    const char *host = ck->host ? ck->host : h->srv->cs->host;
    int n = snprintf(h->req, sizeof(h->req),
                     "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: edgegate-check\r\n"
                     "Connection: close\r\n\r\n",
                     ck->path, host);
    h->req_len = n > 0 && (size_t)n < sizeof(h->req) ? (size_t)n : 0;
}

static void start_round(struct hc *h)
{
    h->started = ev_time();
    h->sent = h->rlen = 0;
    int fd = net_connect(&h->srv->addr);
    if (fd < 0) {
        h->state = HC_CONNECT;
        sk_init(&h->sk, -1, on_io, h);
        finish(h, false, strerror(errno));
        return;
    }
    sk_init(&h->sk, fd, on_io, h);
    h->state = HC_CONNECT;
    sk_want_raw(h->loop, &h->sk, EV_WRITE);
    schedule(h, check_of(h)->timeout);
}

static void on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop, (void)revents;
    struct hc *h = w->data;
    if (h->state == HC_IDLE)
        start_round(h);
    else
        finish(h, false, "timeout");
}

static void start_tls(struct hc *h)
{
    if (!tls_ctx) {
        tls_ctx = SSL_CTX_new(TLS_client_method());
        if (!tls_ctx) {
            finish(h, false, "cannot create a TLS context");
            return;
        }
        SSL_CTX_set_min_proto_version(tls_ctx, TLS1_2_VERSION);
        SSL_CTX_set_verify(tls_ctx, SSL_VERIFY_NONE, NULL);
    }
    h->sk.ssl = SSL_new(tls_ctx);
    if (!h->sk.ssl) {
        finish(h, false, "cannot create a TLS session");
        return;
    }
    SSL_set_fd(h->sk.ssl, h->sk.fd);
    SSL_set_connect_state(h->sk.ssl);
    if (h->srv->cs->resolve)
        SSL_set_tlsext_host_name(h->sk.ssl, h->srv->cs->host);
    h->state = HC_TLS;
}

/* Reads the status line; true once the result is known. */
static void read_status(struct hc *h)
{
    ssize_t n = sk_read(&h->sk, h->rbuf + h->rlen, sizeof(h->rbuf) - 1 - h->rlen);
    if (n == SK_AGAIN)
        return;
    if (n <= 0) {
        finish(h, false, "connection closed before the status line");
        return;
    }
    h->rlen += (size_t)n;
    h->rbuf[h->rlen] = '\0';
    char *eol = strstr(h->rbuf, "\r\n");
    if (!eol) {
        if (h->rlen == sizeof(h->rbuf) - 1)
            finish(h, false, "status line too long");
        return;
    }
    int status = 0;
    if (sscanf(h->rbuf, "HTTP/1.%*[01] %3d", &status) != 1) {
        finish(h, false, "malformed status line");
        return;
    }
    int expect = check_of(h)->expect;
    bool ok = expect ? status == expect : status >= 200 && status < 400;
    char why[64];
    snprintf(why, sizeof(why), "status %d", status);
    finish(h, ok, why);
}

static void step(struct hc *h)
{
    const struct conf_check *ck = check_of(h);
    if (h->state == HC_CONNECT) {
        int err = net_connect_result(h->sk.fd);
        if (err) {
            finish(h, false, strerror(err));
            return;
        }
        if (ck->type == CHECK_TCP) {
            finish(h, true, NULL);
            return;
        }
        if (ck->type == CHECK_TLS) {
            start_tls(h);
            if (h->state != HC_TLS)
                return;
        } else {
            h->state = HC_SEND;
            build_request(h);
        }
    }
    if (h->state == HC_TLS) {
        int rc = sk_handshake(&h->sk);
        if (rc == SK_AGAIN) {
            sk_want_raw(h->loop, &h->sk, h->sk.hs_ev);
            return;
        }
        finish(h, rc == 1, rc == 1 ? NULL : "TLS handshake failed");
        return;
    }
    if (h->state == HC_SEND) {
        ssize_t w = sk_write(&h->sk, h->req + h->sent, h->req_len - h->sent);
        if (w == SK_ERROR || h->req_len == 0) {
            finish(h, false, "cannot send the request");
            return;
        }
        if (w > 0)
            h->sent += (size_t)w;
        if (h->sent < h->req_len) {
            sk_want(h->loop, &h->sk, false, true);
            return;
        }
        h->state = HC_RECV;
    }
    read_status(h);
    if (h->state == HC_RECV)
        sk_want(h->loop, &h->sk, true, false);
}

static void on_io(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop, (void)revents;
    step(w->data);
}

struct hc *hc_start(struct ev_loop *loop, struct srv *s)
{
    struct hc *h = calloc(1, sizeof(*h));
    if (!h)
        abort();
    h->srv = s;
    h->loop = loop;
    h->sk.fd = -1;
    ev_timer_init(&h->tm, on_timer, 0, 0);
    h->tm.data = h;
    /* The first round soon, but not all servers at the same instant. */
    double first = s->dc->cd->check.interval;
    schedule(h, jitter(0, first < 0.5 ? first : 0.5));
    return h;
}

void hc_stop(struct hc *h)
{
    ev_timer_stop(h->loop, &h->tm);
    sk_close(h->loop, &h->sk);
    free(h);
}
