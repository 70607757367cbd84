/* Server connections. Structures come from a pool; pooled connections
 * are watched for readability so that a server closing an idle connection
 * is noticed before a request is sent on it, and purged after an idle
 * timeout shorter than typical server keep-alive timeouts. */
#include "gateway/proxy/upstream.h"
#include "base/alloc.h"
#include "gateway/proxy/h2_upstream.h"
#include "base/log.h"
#include "base/net.h"
#include "healthcheck/datacenter.h"
#include "base/counters.h"
#include "base/tls.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct ev_loop *upstream_loop;
static struct pool upstream_pool = POOL_INIT(struct upstream, 1024);
static struct dlist lru = {&lru, &lru};
static int max_idle = 1024;
static double idle_timeout = 10;
static ev_timer purge_tm;

static void on_pooled_io(struct ev_loop *loop, ev_io *w, int revents);
static struct upstream *upstream_pool_take_one(struct upstream *u);

static void on_purge(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)w, (void)revents;
    ev_tstamp now = ev_now(loop);
    while (!dlist_empty(&lru)) {
        struct upstream *u = container_of(lru.next, struct upstream, lru);
        if (now - u->idle_since < idle_timeout)
            break;
        upstream_close(upstream_pool_take_one(u));
    }
}

void upstream_module_init(struct ev_loop *loop)
{
    upstream_loop = loop;
    ev_timer_init(&purge_tm, on_purge, 1, 1);
    ev_timer_start(loop, &purge_tm);
    ev_unref(loop); /* the purge timer alone must not keep the loop running */
}


struct upstream *upstream_open(struct srv *s, bool delayed_ack)
{
    int fd = net_connect(&s->addr, NET_NODELAY | (delayed_ack ? NET_DELAYED_ACK : 0));
    if (fd < 0)
        return NULL;
    struct upstream *u = pool_get(&upstream_pool);
    memset(u, 0, sizeof(*u));
    sk_init(&u->sk, fd, NULL, NULL);
    u->srv = s;
    srv_ref(s);
    dlist_init(&u->link);
    dlist_init(&u->lru);
    u->requests = 0;
    u->idle_since = 0;
    u->connected = false;
    u->opened = ev_time();
    s->st->connections_total++;
    s->st->connections_active++;
    return u;
}

void upstream_close(struct upstream *u)
{
    if (!u)
        return;
    if (u->mux) {
        h2_up_release(u, false);
        return;
    }
    if (!dlist_empty(&u->link)) {
        dlist_del(&u->link);
        dlist_del(&u->lru);
        u->srv->nidle--;
        counters->pooled_now--;
    }
    sk_close(upstream_loop, &u->sk);
    u->srv->st->connections_active--;
    srv_unref(u->srv);
    pool_put(&upstream_pool, u);
}

static int failed(struct upstream *u, int err)
{
    u->sk.err = err;
    return EG_ERR;
}

int upstream_connected(struct upstream *u)
{
    struct srv *s = u->srv;
    if (!u->connected) {
        int err = net_connect_result(u->sk.fd);
        if (err)
            return failed(u, err);
        u->connected = true;
        if (!s->tls) {
            stats_observe(&s->st->connect, ev_time() - u->opened);
            return EG_OK;
        }
        if (!(u->sk.ssl = srv_tls_session(s, u->sk.fd)))
            return failed(u, ENOMEM);
        if (s->cs->h2)
            tls_offer_h2(u->sk.ssl); /* asked of traffic only: checks speak HTTP/1.1 */
        if (s->tls_sess)
            SSL_set_session(u->sk.ssl, s->tls_sess);
    }
    int rc = sk_handshake(&u->sk);
    if (rc == EG_AGAIN)
        return EG_AGAIN;
    if (rc != EG_OK) {
        log_warn("TLS handshake with %s failed", s->name);
        return failed(u, EPROTO);
    }
    /* Keep the session: the next connection resumes instead of a full
     * handshake. */
    SSL_SESSION *sess = SSL_get1_session(u->sk.ssl);
    if (sess) {
        SSL_SESSION_free(s->tls_sess);
        s->tls_sess = sess;
    }
    stats_observe(&s->st->connect, ev_time() - u->opened);
    return EG_OK;
}

/* Removes U from the pool without closing it. */
static struct upstream *upstream_pool_take_one(struct upstream *u)
{
    dlist_del(&u->link);
    dlist_del(&u->lru);
    u->srv->nidle--;
    counters->pooled_now--;
    return u;
}

struct upstream *upstream_pool_take(struct srv *s)
{
    if (s->cs->h2)
        return h2_up_take(s);
    if (dlist_empty(&s->idle))
        return NULL;
    /* Most recently used first: the least likely to have been closed. */
    return upstream_pool_take_one(container_of(s->idle.next, struct upstream, link));
}

void upstream_pool_give(struct upstream *u)
{
    if (u->mux) {
        h2_up_release(u, true);
        return;
    }
    struct srv *s = u->srv;
    /* A server of a retired generation gets no more requests: no pooling. */
    if (!s->dc || !s->dc->live || !s->up || s->nidle >= max_idle) {
        upstream_close(u);
        return;
    }
    u->idle_since = ev_now(upstream_loop);
    dlist_add(&s->idle, &u->link);
    dlist_add_tail(&lru, &u->lru);
    s->nidle++;
    counters->pooled_now++;
    ev_set_cb(&u->sk.io, on_pooled_io);
    u->sk.io.data = u;
    sk_want(upstream_loop, &u->sk, true, false);
}

/* An idle server connection became readable: the server closed it (or sent
 * bytes nobody asked for). Either way it cannot carry a request. */
static void on_pooled_io(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop, (void)revents;
    upstream_close(upstream_pool_take_one(w->data));
}

void upstream_pool_drain(struct srv *s)
{
    h2_up_drain(s);
    while (!dlist_empty(&s->idle))
        upstream_close(upstream_pool_take(s));
}
