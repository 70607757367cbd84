#include "gateway/proxy/attempt.h"
#include "base/counters.h"
#include "base/log.h"
#include "gateway/ops/access_log.h"
#include "gateway/proxy/client.h"
#include "gateway/proxy/upstream.h"

#include <errno.h>
#include <string.h>

static void try_server(struct attempt *a, struct srv *s, bool fresh);

void attempt_init(struct attempt *a, const struct attempt_ops *ops, struct conn *c,
                  bool private_conn, struct upstream **kept)
{
    memset(a, 0, sizeof(*a));
    a->ops = ops;
    a->c = c;
    a->private_conn = private_conn;
    a->kept = kept;
    dlist_init(&a->hold.link);
}

static const struct conf_listener *cl_of(const struct attempt *a) { return a->c->cl; }

/* ---- holding ---- */

static void route(struct attempt *a);

static void unhold(struct attempt *a)
{
    if (a->state == ATTEMPT_HOLD)
        hold_del(&a->hold);
}

/* A datacenter became healthy (or the configuration changed): try again,
 * under the current generation. The deadline stays where holding started. */
static void on_wake(struct hold *h)
{
    struct attempt *a = container_of(h, struct attempt, hold);
    a->state = ATTEMPT_IDLE;
    if (!conn_rebase(a->c)) {
        a->ops->give_up(a, 503, "listener removed");
        return;
    }
    route(a);
}

static bool may_hold(const struct attempt *a)
{
    return !route_any_healthy(a->c->gen, cl_of(a)) && cl_of(a)->hold_timeout > 0 &&
           !gw.draining;
}

/* No server can be tried: wait for a datacenter when none is healthy (the
 * client sees a slow start, not an error), else give up. */
static void no_server(struct attempt *a, int status)
{
    if (!may_hold(a)) {
        a->state = ATTEMPT_IDLE;
        a->ops->give_up(a, status, status == 503 ? "no server" : "server failed");
        return;
    }
    if (a->hold_since == 0) {
        a->hold_since = ev_now(gw.loop);
        counters->held_total++;
    }
    a->state = ATTEMPT_HOLD;
    a->tries = 0;
    a->hold.wake = on_wake;
    hold_add(&a->hold);
    conn_deadline(a->c, a->hold_since + cl_of(a)->hold_timeout);
    a->ops->waiting(a);
}

/* ---- routing ---- */

static void route_to(struct attempt *a, struct dc *dc)
{
    struct srv *s = route_first(a->c->gen, cl_of(a), dc, &a->rt);
    if (!s) {
        no_server(a, 503);
        return;
    }
    a->rt.dc->st->requests_total++;
    try_server(a, s, false);
}

static void on_affinity(struct affinity_req *r, struct dc *dc)
{
    route_to(container_of(r, struct attempt, aff), dc);
}

static void route(struct attempt *a)
{
    a->state = ATTEMPT_ROUTE;
    struct dc *dc = NULL;
    if (a->key) {
        a->aff.done = on_affinity;
        if (!affinity_resolve(&a->aff, a->c->gen, cl_of(a), a->key, a->keylen, &dc)) {
            a->ops->waiting(a);
            return;
        }
    }
    route_to(a, dc);
}

void attempt_start(struct attempt *a)
{
    a->tries = 0;
    a->stale_retried = false;
    route(a);
}

/* ---- connecting ---- */

static void on_server_io(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    struct attempt *a = w->data;
    bool rd, wr;
    sk_ready(&a->up->sk, revents, &rd, &wr);
    a->ops->server_io(a, rd, wr);
}

/* The connection carries the exchange from now on: the mode drives it. */
static void ready(struct attempt *a)
{
    a->state = ATTEMPT_READY;
    ev_set_cb(&a->up->sk.io, on_server_io);
    a->up->sk.io.data = a;
    a->ops->ready(a);
}

static void on_connect_io(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop, (void)revents;
    struct attempt *a = w->data;
    int rc = upstream_connected(a->up);
    if (rc == EG_AGAIN) {
        sk_want_raw(gw.loop, &a->up->sk, a->up->sk.hs_ev);
        return;
    }
    if (rc == EG_ERR) {
        bool refused = a->up->sk.err == ECONNREFUSED;
        attempt_failed(a, refused ? DC_FAIL_REFUSED : DC_FAIL_RESET, 502);
        return;
    }
    ready(a);
}

/* A connection this client keeps (private), else one from the pool. */
static struct upstream *reuse(struct attempt *a, struct srv *s)
{
    if (a->private_conn) {
        struct upstream *u = a->kept ? *a->kept : NULL;
        if (a->kept)
            *a->kept = NULL;
        if (u && u->srv == s)
            return u;
        upstream_close(u);
        return NULL;
    }
    return upstream_pool_take(s);
}

/* Running out of descriptors or memory here says nothing about the server. */
static bool local_error(int err)
{
    return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM;
}

/* FRESH: a new connection, not one kept or pooled. */
static void try_server(struct attempt *a, struct srv *s, bool fresh)
{
    a->tries++;
    if (access_log_format != ACCESS_LOG_OFF) {
        a->log_dc = s->dc->name; /* lives as long as our generation */
        memcpy(a->log_srv, s->name, sizeof(a->log_srv));
    }
    a->up = fresh ? NULL : reuse(a, s);
    if (a->up) {
        ready(a);
        return;
    }
    a->up = upstream_open(s);
    if (!a->up) {
        int err = errno;
        if (local_error(err)) {
            log_warn("cannot open a connection to %s: %s", s->name, strerror(err));
            a->state = ATTEMPT_IDLE;
            a->ops->give_up(a, 503, "out of local resources");
            return;
        }
        srv_traffic_failed(s, err == ECONNREFUSED ? DC_FAIL_REFUSED : DC_FAIL_RESET);
        attempt_failed(a, DC_FAIL_REFUSED, 502);
        return;
    }
    a->state = ATTEMPT_CONNECT;
    ev_set_cb(&a->up->sk.io, on_connect_io);
    a->up->sk.io.data = a;
    sk_want_raw(gw.loop, &a->up->sk, EV_WRITE);
    conn_deadline(a->c, ev_now(gw.loop) + cl_of(a)->connect_timeout);
    a->ops->waiting(a);
}

/* ---- failures ---- */

/* A kept-alive connection the server closed just as a request went out (the
 * keep-alive race) says nothing about the server. */
static struct srv *stale_server(const struct attempt *a, enum dc_fail kind)
{
    if (a->up && a->up->requests > 1 && kind == DC_FAIL_RESET && !a->stale_retried)
        return a->up->srv;
    return NULL;
}

static bool next_server(struct attempt *a)
{
    if (a->tries > cl_of(a)->retries)
        return false;
    struct dc *was = a->rt.dc;
    struct srv *next = route_next(a->c->gen, cl_of(a), &a->rt);
    if (!next)
        return false;
    counters->retries_total++;
    if (next->dc != was) {
        counters->failovers_total++;
        if (a->key)
            affinity_moved(a->c->gen, cl_of(a), a->key, a->keylen, next->dc, was);
    }
    try_server(a, next, false);
    return true;
}

void attempt_failed(struct attempt *a, enum dc_fail kind, int status)
{
    struct srv *stale = stale_server(a, kind);
    if (a->up) {
        if (!stale)
            srv_traffic_failed(a->up->srv, kind);
        upstream_close(a->up);
        a->up = NULL;
    }
    log_debug("attempt %d of a %s client failed (%s)", a->tries, cl_of(a)->name,
              kind == DC_FAIL_TIMEOUT ? "timeout" : kind == DC_FAIL_REFUSED ? "refused" : "reset");
    a->state = ATTEMPT_IDLE;
    if (!a->ops->replayable(a)) {
        a->ops->give_up(a, status, "server failed, no replay");
        return;
    }
    if (stale) {
        a->stale_retried = true;
        counters->retries_total++;
        a->tries--; /* not a failure of the server: no retry spent */
        try_server(a, stale, true);
        return;
    }
    if (next_server(a))
        return;
    no_server(a, status);
}

bool attempt_timeout(struct attempt *a)
{
    switch (a->state) {
    case ATTEMPT_CONNECT:
        attempt_failed(a, DC_FAIL_TIMEOUT, 504);
        return true;
    case ATTEMPT_HOLD:
        counters->hold_timeouts_total++;
        hold_del(&a->hold);
        a->state = ATTEMPT_IDLE;
        a->ops->give_up(a, 503, "hold timeout");
        return true;
    case ATTEMPT_IDLE:
    case ATTEMPT_ROUTE:
    case ATTEMPT_READY:
        return false;
    }
    return false;
}

/* ---- the end of an exchange ---- */

void attempt_cancel(struct attempt *a)
{
    if (a->state == ATTEMPT_ROUTE)
        affinity_cancel(&a->aff);
    unhold(a);
    upstream_close(a->up);
    a->up = NULL;
    a->state = ATTEMPT_IDLE;
}

/* A private idle server connection became readable: the server closed it. */
static void on_kept_io(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop, (void)revents;
    struct upstream **kept = w->data;
    upstream_close(*kept);
    *kept = NULL;
}

void attempt_release(struct attempt *a, bool reusable)
{
    struct upstream *u = a->up;
    a->up = NULL;
    a->state = ATTEMPT_IDLE;
    if (!reusable) {
        upstream_close(u);
    } else if (a->private_conn) {
        if (!a->kept) {
            upstream_close(u);
            return;
        }
        upstream_close(*a->kept);
        *a->kept = u;
        ev_set_cb(&u->sk.io, on_kept_io);
        u->sk.io.data = a->kept;
        sk_want(gw.loop, &u->sk, true, false);
    } else {
        upstream_pool_give(u);
    }
}

void attempt_reset(struct attempt *a)
{
    attempt_cancel(a);
    a->tries = 0;
    a->stale_retried = false;
    a->hold_since = 0;
    a->key = NULL;
    a->keylen = 0;
    a->log_dc = NULL;
}

void attempt_log(struct attempt *a, struct access_log_rec *r)
{
    if (access_log_format == ACCESS_LOG_OFF)
        return;
    char client[80];
    net_addr_str(&a->c->peer, client, sizeof(client));
    r->client = client;
    r->listener = cl_of(a)->name;
    r->session = a->key;
    r->session_len = a->keylen;
    r->dc = a->log_dc;
    r->server = a->log_dc ? a->log_srv : NULL;
    r->retries = a->tries > 0 ? a->tries - 1 : 0;
    access_log_write(r);
}
