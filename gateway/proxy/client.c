#include "gateway/proxy/client.h"
#include "base/alloc.h"
#include "gateway/proxy/listener.h"
#include "proto/proxy_protocol.h"
#include "base/counters.h"
#include "base/tls.h"

#include <errno.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>

/* The most client connections open at once since conn_high_water() last
 * asked: bursts shorter than the trim timer's period count too. */
static unsigned long high_water;

static void on_setup_io(struct ev_loop *loop, ev_io *w, int revents);
static void conn_on_timeout(struct conn *c);

static void on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    struct conn *c = w->data;
    ev_tstamp now = ev_now(loop);
    /* A millisecond of slack: libev may wake up a little early. */
    if (c->deadline > now + 0.001) {
        ev_timer_set(&c->tm, c->deadline - now, 0);
        ev_timer_start(loop, &c->tm);
        c->tm_at = c->deadline;
        return;
    }
    conn_on_timeout(c);
}

static void conn_start(struct conn *c);

static void conn_init(struct conn *c, int fd, struct listener *l, const struct net_addr *peer,
                      const struct conn_ops *ops)
{
    sk_init(&c->sk, fd, on_setup_io, c);
    c->ops = ops;
    c->setup = CONN_PROXY;
    c->gen = gen_ref(gw.gen);
    c->cl = &c->gen->conf->lsns[l->cidx];
    c->lst = c->gen->lst[l->cidx];
    c->lst->connections_total++;
    c->lst->connections_active++;
    c->lsn = l;
    listener_ref(l);
    l->nconns++;
    c->peer = *peer;
    ev_timer_init(&c->tm, on_timer, 0, 0);
    c->tm.data = c;
    c->deadline = c->tm_at = 0;
    c->started = ev_now(gw.loop);
    c->proxy_dst.len = 0;
    struct tls_lsn *t = c->gen->tls[l->cidx];
    c->tls = t != NULL;
    if (t && !(c->sk.ssl = tls_lsn_ssl(t, fd)))
        c->tls = false; /* out of memory: the handshake fails it */
    counters->connections_total++;
    counters->connections_active++;
    if (counters->connections_active > high_water)
        high_water = counters->connections_active;
}

unsigned long conn_high_water(void)
{
    unsigned long h = high_water;
    high_water = counters->connections_active;
    return h;
}

void conn_accept(int fd, struct listener *l, const struct net_addr *peer,
                 const struct conn_ops *ops)
{
    struct conn *c = pool_get(ops->pool);
    memset(c, 0, ops->pool->size);
    conn_init(c, fd, l, peer, ops);
    ops->init(c);
    conn_start(c);
}

void conn_done(struct conn *c)
{
    ev_timer_stop(gw.loop, &c->tm);
    sk_close(gw.loop, &c->sk);
    c->lsn->nconns--;
    c->lst->connections_active--;
    listener_conn_closed(c->lsn);
    listener_unref(c->lsn);
    gen_unref(c->gen);
    counters->connections_active--;
}

bool conn_stream_init(struct conn *c, const struct conn *parent, const struct conn_ops *ops)
{
    memset(c, 0, sizeof(*c));
    c->sk.fd = -1;
    c->gen = gen_ref(parent->gen);
    c->cl = parent->cl;
    c->lst = parent->lst;
    c->lsn = parent->lsn;
    c->peer = parent->peer;
    c->proxy_dst = parent->proxy_dst;
    c->tls = parent->tls;
    c->ops = ops;
    c->setup = CONN_ESTABLISHED;
    c->started = ev_now(gw.loop);
    ev_timer_init(&c->tm, on_timer, 0, 0);
    c->tm.data = c;
    return conn_rebase(c);
}

void conn_stream_done(struct conn *c)
{
    ev_timer_stop(gw.loop, &c->tm);
    gen_unref(c->gen);
}

/* Slow senders (slowloris with a body) hold a server connection: the grace
 * lets a client's first bytes be slow (TCP slow start, a mobile radio). */
#define BODY_GRACE 2.0

ev_tstamp conn_body_deadline(const struct conn *c, ev_tstamp start, uint64_t in)
{
    ev_tstamp idle = ev_now(gw.loop) + c->cl->idle_timeout;
    if (c->cl->body_min_rate == 0)
        return idle;
    return MIN(idle, start + BODY_GRACE + (double)in / c->cl->body_min_rate);
}

void conn_deadline(struct conn *c, ev_tstamp at)
{
    c->deadline = at;
    if (ev_is_active(&c->tm)) {
        if (c->tm_at <= at)
            return;
        ev_timer_stop(gw.loop, &c->tm);
    }
    ev_tstamp now = ev_now(gw.loop);
    ev_timer_set(&c->tm, at > now ? at - now : 0, 0);
    ev_timer_start(gw.loop, &c->tm);
    c->tm_at = at;
}

/* The row of C's listener in the current configuration, -1 when it is gone. */
static int current_listener(const struct conn *c)
{
    const struct conf *nc = gw.gen->conf;
    for (int i = 0; i < nc->nlsns; i++)
        if (strcmp(nc->lsns[i].name, c->cl->name) == 0 && nc->lsns[i].mode == c->cl->mode)
            return i;
    return -1;
}

bool conn_can_rebase(const struct conn *c)
{
    return c->gen == gw.gen || current_listener(c) >= 0;
}

bool conn_rebase(struct conn *c)
{
    if (c->gen == gw.gen)
        return true;
    int i = current_listener(c);
    if (i < 0)
        return false;
    gen_unref(c->gen);
    c->gen = gen_ref(gw.gen);
    c->cl = &gw.gen->conf->lsns[i];
    c->lst = c->gen->lst[i]; /* same name, same row */
    return true;
}

const char *conn_peer_ip(const struct conn *c, char *buf)
{
    return net_ip_str(&c->peer.ss.sa, buf, CONN_IP_MAX);
}

static int handshake(struct conn *c)
{
    if (!c->sk.ssl)
        return EG_ERR;
    int rc = sk_handshake(&c->sk);
    if (rc == EG_OK)
        tls_count_handshake(c->sk.ssl);
    else if (rc == EG_AGAIN)
        sk_want_raw(gw.loop, &c->sk, c->sk.hs_ev);
    else
        tls_count_failure();
    return rc;
}

const char *conn_sni(const struct conn *c)
{
    return sk_sni(&c->sk);
}

static bool in_cidr(const struct net_addr *a, const struct conf_cidr *c)
{
    if (a->ss.ss_family != c->net.ss.ss_family)
        return false;
    const unsigned char *x, *y;
    if (a->ss.ss_family == AF_INET) {
        x = (const unsigned char *)&((const struct sockaddr_in *)&a->ss)->sin_addr;
        y = (const unsigned char *)&((const struct sockaddr_in *)&c->net.ss)->sin_addr;
    } else {
        x = (const unsigned char *)&((const struct sockaddr_in6 *)&a->ss)->sin6_addr;
        y = (const unsigned char *)&((const struct sockaddr_in6 *)&c->net.ss)->sin6_addr;
    }
    int bits = c->bits, i = 0;
    for (; bits >= 8; bits -= 8, i++)
        if (x[i] != y[i])
            return false;
    return bits == 0 || ((x[i] ^ y[i]) >> (8 - bits)) == 0;
}

static bool proxy_trusted(const struct conn *c)
{
    if (c->cl->nproxy_from == 0)
        return true;
    for (int i = 0; i < c->cl->nproxy_from; i++)
        if (in_cidr(&c->peer, &c->cl->proxy_from[i]))
            return true;
    return false;
}

static int read_proxy(struct conn *c)
{
    unsigned char buf[PP_MAX_HEADER];
    /* Peek: what follows the header (a TLS hello, a request) must stay in
     * the socket for whoever reads next. */
    ssize_t n = recv(c->sk.fd, buf, sizeof(buf), MSG_PEEK);
    if (n <= 0)
        return n < 0 && errno == EAGAIN ? EG_AGAIN : EG_ERR;
    struct pp_info pi;
    int len = pp_parse(buf, (size_t)n, &pi);
    if (len <= 0)
        return len == 0 && n < (ssize_t)sizeof(buf) ? EG_AGAIN : EG_ERR;
    if (recv(c->sk.fd, buf, (size_t)len, 0) != len)
        return EG_ERR;
    if (!pi.local) {
        c->peer = pi.src;
        c->proxy_dst = pi.dst;
    }
    return EG_OK;
}

static ev_tstamp setup_deadline(const struct conn *c)
{
    return c->started + c->cl->handshake_timeout;
}

/* A header split over several segments is polled again after a short
 * pause: the socket stays readable (the header is only peeked), so waiting
 * for readability would spin. */
static int proxy_step(struct conn *c)
{
    if (ev_now(gw.loop) >= setup_deadline(c))
        return EG_ERR;
    int rc = read_proxy(c);
    if (rc == EG_AGAIN) {
        sk_want_raw(gw.loop, &c->sk, 0);
        conn_deadline(c, MIN(ev_now(gw.loop) + 0.005, setup_deadline(c)));
    }
    return rc;
}

/* ---- setup: PROXY header, TLS handshake or HTTP/2 preface ---- */

/* Moves C to mode OPS: a structure of OPS' takes over the socket, the timer
 * and the references (watchers stopped while they move), and C's mode frees
 * its own part. */
static struct conn *handover(struct conn *c, const struct conn_ops *ops)
{
    struct conn *n = pool_get(ops->pool);
    memset(n, 0, ops->pool->size);
    ev_timer_stop(gw.loop, &c->tm);
    ev_clear_pending(gw.loop, &c->tm);
    sk_want_raw(gw.loop, &c->sk, 0);
    ev_clear_pending(gw.loop, &c->sk.io);
    *n = *c;
    n->sk.io.data = n;
    n->tm.data = n;
    n->ops = ops;
    c->ops->detach(c);
    ops->init(n);
    return n;
}

/* H2: the client speaks HTTP/2, the mode that speaks it takes over. */
static void established(struct conn *c, bool h2)
{
    c->setup = CONN_ESTABLISHED;
    if (h2)
        c = handover(c, c->ops->h2);
    ev_set_cb(&c->sk.io, c->ops->io);
    c->ops->established(c);
}

static bool sniffs(const struct conn *c)
{
    return !c->tls && c->ops->h2 && c->cl->http2;
}

/* After the PROXY header (if any): the TLS handshake, sniffing for the
 * HTTP/2 preface, or the mode. */
static void after_proxy(struct conn *c)
{
    if (sniffs(c)) {
        /* Until its first byte the client is idle, as between requests. */
        c->setup = CONN_SNIFF;
        conn_deadline(c, c->started + c->cl->idle_timeout);
        sk_want_raw(gw.loop, &c->sk, EV_READ);
        return;
    }
    if (!c->tls) {
        established(c, false);
        return;
    }
    c->setup = CONN_HANDSHAKE;
    conn_deadline(c, setup_deadline(c));
    sk_want_raw(gw.loop, &c->sk, EV_READ);
}

static void proxy_io(struct conn *c)
{
    int rc = proxy_step(c);
    if (rc == EG_ERR)
        c->ops->failed(c, true, "no valid proxy header");
    else if (rc == EG_OK)
        after_proxy(c);
}

static void handshake_io(struct conn *c)
{
    int rc = handshake(c);
    if (rc == EG_ERR)
        c->ops->failed(c, false, "tls handshake failed");
    else if (rc == EG_OK) {
        bool h2 = c->ops->h2 && tls_alpn_h2(c->sk.ssl);
        sk_tls_take_over(&c->sk);
        established(c, h2);
    }
}

/* The client connection preface of HTTP/2 (RFC 9113 3.4) starts with a
 * request line no HTTP/1 client sends; the HTTP/2 mode checks the rest. */
static const char h2_preface[] = "PRI * HTTP/2.0\r\n";
#define H2_PREFACE_LEN (sizeof(h2_preface) - 1)

/* Peeks at the first bytes of a cleartext client: the preface goes to the
 * HTTP/2 mode, anything else (an end or an error included) to HTTP/1.1,
 * which reads it. A prefix of the preface is polled again after a short
 * pause, as a split PROXY header is. */
static void sniff_io(struct conn *c)
{
    char buf[H2_PREFACE_LEN];
    ssize_t n = recv(c->sk.fd, buf, sizeof(buf), MSG_PEEK);
    if (n < 0 && errno == EAGAIN)
        return;
    if (n > 0 && memcmp(buf, h2_preface, (size_t)n) == 0 && (size_t)n < H2_PREFACE_LEN) {
        if (ev_now(gw.loop) < c->started + c->cl->idle_timeout) {
            sk_want_raw(gw.loop, &c->sk, 0);
            conn_deadline(c, MIN(ev_now(gw.loop) + 0.005, c->started + c->cl->idle_timeout));
            return;
        }
    }
    established(c, n == (ssize_t)H2_PREFACE_LEN && memcmp(buf, h2_preface, H2_PREFACE_LEN) == 0);
}

static void on_setup_io(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop, (void)revents;
    struct conn *c = w->data;
    if (c->setup == CONN_PROXY)
        proxy_io(c);
    else if (c->setup == CONN_SNIFF)
        sniff_io(c);
    else
        handshake_io(c);
}

static void conn_on_timeout(struct conn *c)
{
    switch (c->setup) {
    case CONN_PROXY:
        proxy_io(c); /* a retry, or out of time */
        return;
    case CONN_SNIFF:
        if (ev_now(gw.loop) >= c->started + c->cl->idle_timeout) {
            c->ops->failed(c, false, "idle timeout");
            return;
        }
        sk_want_raw(gw.loop, &c->sk, EV_READ);
        sniff_io(c); /* a retry */
        return;
    case CONN_HANDSHAKE:
        tls_count_failure();
        c->ops->failed(c, false, "tls handshake timeout");
        return;
    case CONN_ESTABLISHED:
        c->ops->timeout(c);
        return;
    }
}

static void conn_start(struct conn *c)
{
    if (!c->cl->accept_proxy) {
        after_proxy(c);
        return;
    }
    if (!proxy_trusted(c)) {
        c->ops->failed(c, true, "proxy untrusted");
        return;
    }
    conn_deadline(c, setup_deadline(c));
    sk_want_raw(gw.loop, &c->sk, EV_READ);
}

size_t conn_proxy_header(const struct conn *c, unsigned char *out)
{
    struct net_addr dst = c->proxy_dst;
    if (dst.len == 0) {
        dst.len = sizeof(dst.ss);
        if (getsockname(c->sk.fd, (struct sockaddr *)&dst.ss, &dst.len) != 0)
            return 0;
    }
    return pp_build(c->cl->send_proxy, &c->peer, &dst, out, PP_BUILD_MAX);
}
