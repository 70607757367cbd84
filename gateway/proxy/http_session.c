/* http mode: the client connection's life, what it waits for, and the
 * dispatch of its events to the phase that handles them. */
#include "gateway/proxy/http_session.h"
#include "base/alloc.h"
#include "base/counters.h"
#include "base/log.h"
#include "gateway/proxy/h2_session.h"
#include "gateway/proxy/upstream.h"

#include <string.h>

static struct dlist sessions = {&sessions, &sessions};
static struct pool session_pool = POOL_INIT(struct http_session, 1024);

static void on_client_io(struct ev_loop *loop, ev_io *w, int revents);
static void on_timeout(struct conn *c);

void http_free(struct http_session *s, bool abort_client)
{
    if (s->x) {
        if (s->x->req_state != REQ_HEAD)
            http_request_done(s, 0, abort_client ? "cut" : "client gone");
        http_exchange_free(s);
    }
    upstream_close(s->kept);
    buf_put(s->ib);
    if (abort_client)
        sk_abort(gw.loop, &s->c.sk);
    conn_done(&s->c);
    dlist_del(&s->link);
    pool_put(&session_pool, s);
}

void http_set_idle(struct http_session *s)
{
    s->phase = PHASE_IDLE;
    conn_deadline(&s->c, ev_now(gw.loop) + s->c.cl->idle_timeout);
    sk_want(gw.loop, &s->c.sk, !s->cl_eof, false);
}

static void on_established(struct conn *c)
{
    http_set_idle(container_of(c, struct http_session, c));
}

static void on_setup_failed(struct conn *c, bool abort, const char *why)
{
    (void)why;
    http_free(container_of(c, struct http_session, c), abort);
}

static void on_accepted(struct conn *c)
{
    dlist_add(&sessions, &container_of(c, struct http_session, c)->link);
}

/* The connection speaks HTTP/2: h2_session.c took it over during setup. */
static void on_detach(struct conn *c)
{
    struct http_session *s = container_of(c, struct http_session, c);
    dlist_del(&s->link);
    pool_put(&session_pool, s);
}

const struct conn_ops http_conn_ops = {
    .pool = &session_pool, .init = on_accepted, .io = on_client_io, .timeout = on_timeout,
    .established = on_established, .failed = on_setup_failed, .h2 = &h2_conn_ops,
    .detach = on_detach,
};

void http_close_idle(void)
{
    for (struct dlist *n = sessions.next, *next; n != &sessions; n = next) {
        next = n->next;
        struct http_session *s = container_of(n, struct http_session, link);
        if (s->phase == PHASE_IDLE)
            http_free(s, false);
    }
}

/* ---- what the sockets are watched for ---- */

static void exchange_interest(struct http_session *s)
{
    struct http_exchange *x = s->x;
    bool crd = x->req_state == REQ_HEAD ? !s->cl_eof : http_client_readable(s);
    bool cwr = http_ob_pending(x) > 0;
    sk_want(gw.loop, &s->c.sk, crd, cwr);
    if (x->a.state != ATTEMPT_READY)
        return; /* the engine watches a connection it is opening */
    bool srd = x->resp_state != RESP_DONE &&
               (!x->ob || http_ob_room(x) > 0 || x->ob->head > 0);
    sk_want(gw.loop, &x->a.up->sk, srd, http_request_unsent(x));
}

void http_update_interest(struct http_session *s)
{
    switch (s->phase) {
    case PHASE_SETUP:
        return; /* client.c sets what the setup waits for */
    case PHASE_IDLE:
        sk_want(gw.loop, &s->c.sk, !s->cl_eof, false);
        return;
    case PHASE_EXCHANGE:
        exchange_interest(s);
        return;
    case PHASE_TUNNEL: {
        struct http_exchange *x = s->x;
        sk_want(gw.loop, &s->c.sk, pump_wants_read(&x->up), pump_wants_write(&x->down));
        sk_want(gw.loop, &x->a.up->sk, pump_wants_read(&x->down), pump_wants_write(&x->up));
        return;
    }
    case PHASE_ERROR: {
        bool cwr = s->err_sent < s->err_len;
        sk_want(gw.loop, &s->c.sk, !cwr, cwr);
        return;
    }
    }
}

/* ---- events ---- */

static void on_client_io(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    struct http_session *s = container_of(w->data, struct http_session, c);
    bool rd, wr;
    switch (s->phase) {
    case PHASE_SETUP:
        return;
    case PHASE_ERROR:
        sk_ready(&s->c.sk, revents, &rd, &wr);
        http_error_io(s, rd, wr);
        return;
    case PHASE_TUNNEL:
        sk_ready(&s->c.sk, revents, &rd, &wr);
        http_tunnel_io(s, true, rd, wr);
        return;
    case PHASE_IDLE:
    case PHASE_EXCHANGE:
        break;
    }
    sk_ready(&s->c.sk, revents, &rd, &wr);
    if (wr && s->x && !http_flush_response(s))
        return;
    if (rd && !http_read_client(s))
        return;
    http_update_interest(s);
}

void http_server_io(struct http_session *s, bool rd, bool wr)
{
    if (s->phase == PHASE_TUNNEL) {
        http_tunnel_io(s, false, rd, wr);
        return;
    }
    if ((wr && !http_flush_request(s)) || (rd && !http_read_response(s)))
        return;
    http_update_interest(s);
}

static void on_timeout(struct conn *c)
{
    struct http_session *s = container_of(c, struct http_session, c);
    switch (s->phase) {
    case PHASE_EXCHANGE:
        if (!attempt_timeout(&s->x->a))
            http_request_timeout(s);
        return;
    case PHASE_SETUP:
    case PHASE_IDLE:
    case PHASE_TUNNEL:
    case PHASE_ERROR:
        http_free(s, false);
        return;
    }
}
