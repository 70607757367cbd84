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

bool conn_rebase(struct conn *c)
{
    if (c->gen == gw.gen)
        return true;
    const struct conf *nc = gw.gen->conf;
    for (int i = 0; i < nc->nlsns; i++)
        if (strcmp(nc->lsns[i].name, c->cl->name) == 0 && nc->lsns[i].mode == c->cl->mode) {
            gen_unref(c->gen);
            c->gen = gen_ref(gw.gen);
            c->cl = &nc->lsns[i];
            c->lst = c->gen->lst[i]; /* same name, same row */
            return true;
        }
    return false;
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
    return c->sk.ssl ? tls_sni(c->sk.ssl) : NULL;
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

/* ---- setup: PROXY header, TLS handshake ---- */

static void established(struct conn *c)
{
    c->setup = CONN_ESTABLISHED;
    ev_set_cb(&c->sk.io, c->ops->io);
    c->ops->established(c);
}

/* After the PROXY header (if any): the TLS handshake, or the mode. */
static void after_proxy(struct conn *c)
{
    if (!c->tls) {
        established(c);
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
    else if (rc == EG_OK)
        established(c);
}

static void on_setup_io(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop, (void)revents;
    struct conn *c = w->data;
    if (c->setup == CONN_PROXY)
        proxy_io(c);
    else
        handshake_io(c);
}

static void conn_on_timeout(struct conn *c)
{
    switch (c->setup) {
    case CONN_PROXY:
        proxy_io(c); /* a retry, or out of time */
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
