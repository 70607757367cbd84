/* Server connections. Structures come from a free list; pooled connections
 * are watched for readability so that a server closing an idle connection
 * is noticed before a request is sent on it, and purged after an idle
 * timeout shorter than typical server keep-alive timeouts. */
#include "gateway/up.h"
#include "gateway/log.h"
#include "gateway/net.h"
#include "healthcheck/dc.h"
#include "gateway/stats.h"
#include "gateway/tls.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

static struct ev_loop *up_loop;
static struct upc *free_list;
static struct dlist lru = {&lru, &lru};
static size_t npooled;
static int max_idle = 1024;
static double idle_timeout = 10;
static ev_timer purge_tm;

static void on_pooled_io(struct ev_loop *loop, ev_io *w, int revents);
static struct upc *up_pool_take_one(struct upc *u);

static void on_purge(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)w, (void)revents;
    ev_tstamp now = ev_now(loop);
    while (!dlist_empty(&lru)) {
        struct upc *u = container_of(lru.next, struct upc, lru);
        if (now - u->idle_since < idle_timeout)
            break;
        up_close(up_pool_take_one(u));
    }
}

void up_module_init(struct ev_loop *loop)
{
    up_loop = loop;
    ev_timer_init(&purge_tm, on_purge, 1, 1);
    ev_timer_start(loop, &purge_tm);
    ev_unref(loop); /* the purge timer alone must not keep the loop running */
}

size_t up_pooled(void) { return npooled; }

static struct upc *upc_alloc(void)
{
    struct upc *u = free_list;
    if (u)
        free_list = *(struct upc **)u;
    else if (!(u = malloc(sizeof(*u))))
        abort();
    return u;
}

struct upc *up_open(struct srv *s)
{
    int fd = net_connect(&s->addr, true);
    if (fd < 0)
        return NULL;
    struct upc *u = upc_alloc();
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

void up_close(struct upc *u)
{
    if (!u)
        return;
    if (!dlist_empty(&u->link)) {
        dlist_del(&u->link);
        dlist_del(&u->lru);
        u->srv->nidle--;
        npooled--;
    }
    sk_close(up_loop, &u->sk);
    u->srv->st->connections_active--;
    srv_unref(u->srv);
    *(struct upc **)u = free_list;
    free_list = u;
}

int up_connected(struct upc *u)
{
    struct srv *s = u->srv;
    if (!u->connected) {
        int err = net_connect_result(u->sk.fd);
        if (err)
            return -err;
        u->connected = true;
        if (!s->tls) {
            stats_observe(&s->st->connect, ev_time() - u->opened);
            return 1;
        }
        if (!(u->sk.ssl = tls_client_ssl(s->tls, s->cs, u->sk.fd)))
            return -ENOMEM;
        if (s->tls_sess)
            SSL_set_session(u->sk.ssl, s->tls_sess);
    }
    int rc = sk_handshake(&u->sk);
    if (rc == SK_AGAIN)
        return 0;
    if (rc != 1) {
        log_warn("TLS handshake with %s failed", s->name);
        return -EPROTO;
    }
    /* Keep the session: the next connection resumes instead of a full
     * handshake. */
    SSL_SESSION *sess = SSL_get1_session(u->sk.ssl);
    if (sess) {
        SSL_SESSION_free(s->tls_sess);
        s->tls_sess = sess;
    }
    stats_observe(&s->st->connect, ev_time() - u->opened);
    return 1;
}

/* Removes U from the pool without closing it. */
static struct upc *up_pool_take_one(struct upc *u)
{
    dlist_del(&u->link);
    dlist_del(&u->lru);
    u->srv->nidle--;
    npooled--;
    return u;
}

struct upc *up_pool_take(struct srv *s)
{
    if (dlist_empty(&s->idle))
        return NULL;
    /* Most recently used first: the least likely to have been closed. */
    return up_pool_take_one(container_of(s->idle.next, struct upc, link));
}

void up_pool_give(struct upc *u)
{
    struct srv *s = u->srv;
    /* A server of a retired generation gets no more requests: no pooling. */
    if (!s->dc || !s->dc->live || !s->up || s->nidle >= max_idle) {
        up_close(u);
        return;
    }
    u->idle_since = ev_now(up_loop);
    dlist_add(&s->idle, &u->link);
    dlist_add_tail(&lru, &u->lru);
    s->nidle++;
    npooled++;
    ev_set_cb(&u->sk.io, on_pooled_io);
    u->sk.io.data = u;
    sk_want(up_loop, &u->sk, true, false);
}

/* An idle server connection became readable: the server closed it (or sent
 * bytes nobody asked for). Either way it cannot carry a request. */
static void on_pooled_io(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop, (void)revents;
    up_close(up_pool_take_one(w->data));
}

void up_pool_drain(struct srv *s)
{
    while (!dlist_empty(&s->idle))
        up_close(up_pool_take(s));
}
