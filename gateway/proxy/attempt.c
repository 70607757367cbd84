#include "gateway/proxy/attempt.h"
#include "base/counters.h"
#include "base/log.h"
#include "gateway/ops/access_log.h"
#include "gateway/proxy/client.h"
#include "gateway/proxy/upstream.h"

#include <errno.h>
#include <string.h>

static void try_server(struct attempt *a, struct srv *s, bool fresh);
static void charge(struct attempt *a, struct srv *s, enum attempt_fault fault);

void attempt_init(struct attempt *a, const struct attempt_ops *ops, struct conn *c,
                  bool private_conn, struct upstream **kept)
{
    memset(a, 0, sizeof(*a));
    a->ops = ops;
    a->c = c;
    a->private_conn = private_conn;
    a->kept = kept;
    dlist_init(&a->hold.link);
    dlist_init(&a->inflight);
}

/* ---- the server connection ---- */

static void set_up(struct attempt *a, struct upstream *u)
{
    a->up = u;
    dlist_add_tail(&u->srv->inflight, &a->inflight);
}

/* Detaches the server connection (the caller closes or keeps it). */
static struct upstream *take_up(struct attempt *a)
{
    struct upstream *u = a->up;
    if (u)
        dlist_del(&a->inflight);
    a->up = NULL;
    return u;
}

/* ---- the retry budget ---- */

/* Retries (and hedges) may add at most retry_budget percent of the
 * requests of the last RETRY_WINDOW seconds, and always RETRY_MIN: a burst
 * of failing requests cannot multiply itself onto the servers that still
 * answer. */
#define RETRY_WINDOW 10
#define RETRY_MIN 10

static struct {
    long second[RETRY_WINDOW];
    unsigned requests[RETRY_WINDOW], retries[RETRY_WINDOW];
} budget;

static int budget_slot(void)
{
    long now = (long)ev_now(gw.loop);
    int i = (int)(now % RETRY_WINDOW);
    if (budget.second[i] != now) {
        budget.second[i] = now;
        budget.requests[i] = budget.retries[i] = 0;
    }
    return i;
}

static bool budget_allows_retry(void)
{
    int slot = budget_slot();
    long now = budget.second[slot];
    unsigned requests = 0, retries = 0;
    for (int i = 0; i < RETRY_WINDOW; i++)
        if (now - budget.second[i] < RETRY_WINDOW) {
            requests += budget.requests[i];
            retries += budget.retries[i];
        }
    if (retries >= RETRY_MIN && retries * 100 >= requests * (unsigned)gw.gen->conf->retry_budget) {
        counters->retry_budget_exhausted_total++;
        return false;
    }
    budget.retries[slot]++;
    return true;
}

static const struct conf_listener *cl_of(const struct attempt *a) { return a->c->cl; }

/* ---- holding ---- */

/* Servers marked down so far: a request awaiting a verdict (await_verdict)
 * learns from it that an outage, not the request, reset its attempts. */
static unsigned long down_verdicts;

static void route(struct attempt *a);

static void enter_hold(struct attempt *a)
{
    a->state = ATTEMPT_HOLD;
    hold_add(&a->hold);
    a->c->lst->held_now++;
}

/* Out of HOLD; the hold queue already let go of it when WOKEN. */
static void leave_hold(struct attempt *a, bool woken)
{
    if (!woken)
        hold_del(&a->hold);
    a->c->lst->held_now--;
    a->state = ATTEMPT_IDLE;
}

static void unhold(struct attempt *a)
{
    if (a->state == ATTEMPT_HOLD)
        leave_hold(a, false);
}

/* A datacenter became healthy (or the configuration changed): try again,
 * under the current generation. The deadline stays where holding started. */
static void on_wake(struct hold *h)
{
    struct attempt *a = container_of(h, struct attempt, hold);
    leave_hold(a, true);
    if (!conn_rebase(a->c)) {
        a->ops->give_up(a, 503, "listener removed");
        return;
    }
    if (a->awaiting_verdict) {
        if (down_verdicts == a->downs_before) { /* not sent again before a verdict */
            enter_hold(a);
            return;
        }
        a->awaiting_verdict = false; /* an outage: servers were marked down meanwhile */
    }
    route(a);
}

/* Waiting makes sense while no datacenter the request may go to is
 * healthy: none of the listener's, or, for a session pinned by `affinity
 * strict`, its own. */
static bool may_hold(const struct attempt *a, bool outage)
{
    bool stuck = attempt_pinned_down(a) || !route_any_healthy(a->c->gen, cl_of(a)) ||
                 (outage && !route_untried(a->c->gen, cl_of(a), &a->rt));
    return stuck && cl_of(a)->hold_timeout > 0 && !gw.draining;
}

bool attempt_pinned_down(const struct attempt *a)
{
    return a->rt.pinned && !a->rt.dc->healthy;
}

/* hold_max: past it, what would wait is answered at once. */
static bool hold_full(const struct attempt *a)
{
    int max = cl_of(a)->hold_max;
    return max > 0 && a->hold_since == 0 && a->c->lst->held_now >= max;
}

/* No server can be tried: wait for a datacenter when none is healthy (the
 * client sees a slow start, not an error), else give up. OUTAGE: the last
 * attempt found nothing listening or answering, as when every datacenter
 * died at once: those this request tried count as down even before their
 * checks say so. */
static void no_server(struct attempt *a, int status, bool outage)
{
    if (!may_hold(a, outage)) {
        a->state = ATTEMPT_IDLE;
        a->ops->give_up(a, status, attempt_pinned_down(a) ? "session datacenter down"
                                   : status == 503 ? "no server" : "server failed");
        return;
    }
    if (hold_full(a)) {
        counters->hold_full_total++;
        a->state = ATTEMPT_IDLE;
        a->ops->give_up(a, 503, "hold full");
        return;
    }
    if (a->hold_since == 0) {
        a->hold_since = ev_now(gw.loop);
        counters->held_total++;
    }
    a->tries = 0;
    a->hold.wake = on_wake;
    enter_hold(a);
    conn_deadline(a->c, a->hold_since + cl_of(a)->hold_timeout);
    a->ops->waiting(a);
}

/* How long S's checks take to mark it down (passive checks: a second). */
static double verdict_time(const struct srv *s)
{
    if (!s || !s->dc)
        return 0;
    const struct conf_check *ck = &s->dc->cd->check;
    return ck->type == CHECK_NONE ? 1.0 : ck->interval * ck->fall + ck->timeout;
}

/* Every attempt was reset before an answer: servers killed at once (the
 * checks will mark them down), or a request that crashes them (a query of
 * death: nothing else fails). Only the verdict tells them apart, so the
 * request waits for it without going out again, for WAIT (verdict_time()
 * of the last server tried): a server marked down meanwhile makes it an
 * outage (held as usual, replayed when a datacenter is back: on_wake,
 * attempt_timeout); none, a 502. */
static bool await_verdict(struct attempt *a, double wait)
{
    const struct conf_listener *cl = cl_of(a);
    if (wait <= 0 || cl->hold_timeout <= 0 || gw.draining || hold_full(a))
        return false;
    if (a->hold_since == 0) {
        a->hold_since = ev_now(gw.loop);
        counters->held_total++;
    }
    a->awaiting_verdict = true;
    a->downs_before = down_verdicts;
    a->tries = 0;
    a->hold.wake = on_wake;
    enter_hold(a);
    conn_deadline(a->c, a->hold_since + MIN(wait, cl->hold_timeout));
    a->ops->waiting(a);
    return true;
}

/* ---- routing ---- */

static void route_to(struct attempt *a, struct dc *dc)
{
    struct srv *s = route_first(a->c->gen, cl_of(a), dc, &a->rt);
    if (!s) {
        no_server(a, 503, false);
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
    if (!a->key) { /* every request is a new session */
        route_to(a, route_new_session(a->c->gen, cl_of(a), NULL, 0, ev_now(gw.loop)));
        return;
    }
    a->aff.done = on_affinity;
    if (!affinity_resolve(&a->aff, a->c->gen, cl_of(a), a->key, a->keylen, &dc)) {
        a->ops->waiting(a);
        return;
    }
    route_to(a, dc);
}

void attempt_start(struct attempt *a)
{
    a->tries = 0;
    a->stale_retried = a->charged = false;
    budget.requests[budget_slot()]++;
    route(a);
}

/* ---- connecting ---- */

static void drop_hedge(struct attempt *a)
{
    upstream_close(a->hedge);
    a->hedge = NULL;
    a->hedge_ready = false;
}

static void on_server_io(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    struct attempt *a = w->data;
    bool rd, wr;
    sk_ready(&a->up->sk, revents, &rd, &wr);
    if (rd) { /* the first connection answers first */
        a->answering = true;
        a->hedge_at = 0;
        if (a->hedge)
            drop_hedge(a);
    }
    a->ops->server_io(a, rd, wr);
}

/* The connection carries the exchange from now on: the mode drives it. */
static void ready(struct attempt *a)
{
    a->state = ATTEMPT_READY;
    a->answering = false;
    a->answer_at = a->hedge_at = 0;
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
        attempt_failed(a, a->up->sk.err == ECONNREFUSED ? FAULT_REFUSED : FAULT_RESET, 502);
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

/* Whether a new server connection's handshake may end on the first bytes
 * sent rather than on an ACK of its own (the listener's delayed_ack). */
static bool opens_quietly(const struct attempt *a)
{
    return a->sends_first && cl_of(a)->delayed_ack;
}

/* FRESH: a new connection, not one kept or pooled. */
static void try_server(struct attempt *a, struct srv *s, bool fresh)
{
    if (s->cs->h2 && !a->mux && cl_of(a)->mode == MODE_HTTP) {
        a->state = ATTEMPT_IDLE;
        a->ops->give_up(a, 502, "an HTTP/2 server for an HTTP/1.1 request");
        return;
    }
    a->tries++;
    if (access_log_format != ACCESS_LOG_OFF) {
        a->log_dc = s->dc->name; /* lives as long as our generation */
        memcpy(a->log_srv, s->name, sizeof(a->log_srv));
    }
    struct upstream *u = fresh ? NULL : reuse(a, s);
    if (u) {
        set_up(a, u);
        ready(a);
        return;
    }
    u = upstream_open(s, opens_quietly(a));
    if (!u) {
        int err = errno;
        if (net_local_exhaustion(err)) { /* says nothing about the server */
            static struct log_limit limit;
            log_limited(&limit, 10, LOG_WARN, "cannot open a connection to %s: %s", s->name,
                        strerror(err));
            a->state = ATTEMPT_IDLE;
            a->ops->give_up(a, 503, "out of local resources");
            return;
        }
        enum attempt_fault fault = err == ECONNREFUSED ? FAULT_REFUSED : FAULT_RESET;
        charge(a, s, fault);
        attempt_failed(a, fault, 502);
        return;
    }
    set_up(a, u);
    a->state = ATTEMPT_CONNECT;
    ev_set_cb(&a->up->sk.io, on_connect_io);
    a->up->sk.io.data = a;
    sk_want_raw(gw.loop, &a->up->sk, EV_WRITE);
    conn_deadline(a->c, ev_now(gw.loop) + cl_of(a)->connect_timeout);
    a->ops->waiting(a);
}

/* ---- failures ---- */

/* Reports FAULT to S's health, once per request. */
static void charge(struct attempt *a, struct srv *s, enum attempt_fault fault)
{
    if (fault == FAULT_INVALID) {
        counters->invalid_responses_total++;
        return;
    }
    /* A refused connection cannot be the request's doing: nothing listens
     * there, and every one of them counts (else, with every datacenter
     * gone at once, the servers a request tried after the first would stay
     * up, and nothing would be held). */
    if (fault == FAULT_DOWN || (a->charged && fault != FAULT_REFUSED) ||
        (fault == FAULT_SLOW && s->hc))
        return;
    a->charged = true;
    srv_traffic_failed(s, fault == FAULT_REFUSED ? DC_FAIL_REFUSED
                          : fault == FAULT_RESET ? DC_FAIL_RESET : DC_FAIL_TIMEOUT);
}

/* A kept-alive connection the server closed just as a request went out (the
 * keep-alive race) says nothing about the server. */
static bool stale(const struct upstream *u, const struct attempt *a, enum attempt_fault fault)
{
    return u && u->requests > 1 && fault == FAULT_RESET && !a->stale_retried;
}

static bool next_server(struct attempt *a)
{
    if (a->tries > cl_of(a)->retries)
        return false;
    struct dc *was = a->rt.dc;
    struct srv *next = route_next(a->c->gen, cl_of(a), &a->rt);
    if (!next || !budget_allows_retry())
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

static const char *fault_name(enum attempt_fault f)
{
    static const char *const names[] = {"refused", "reset", "connect timeout", "no answer in time",
                                        "server down", "invalid response"};
    return names[f];
}

void attempt_failed(struct attempt *a, enum attempt_fault fault, int status)
{
    drop_hedge(a);
    struct upstream *u = take_up(a);
    struct srv *s = u ? u->srv : NULL;
    bool race = stale(u, a, fault);
    if (s) {
        srv_ref(s);
        upstream_close(u);
        if (!race)
            charge(a, s, fault); /* may mark it down: a is off its list by now */
    }
    log_debug("attempt %d of a %s client failed (%s)", a->tries, cl_of(a)->name,
              fault_name(fault));
    a->state = ATTEMPT_IDLE;
    if (fault == FAULT_INVALID || !a->ops->replayable(a)) {
        if (s)
            srv_unref(s);
        a->ops->give_up(a, status, fault == FAULT_INVALID ? "invalid response"
                                                          : "server failed, no replay");
        return;
    }
    if (race) {
        a->stale_retried = true;
        counters->retries_total++;
        a->tries--; /* not a failure of the server: no retry spent */
        try_server(a, s, true);
        srv_unref(s);
        return;
    }
    double verdict_wait = fault == FAULT_RESET ? verdict_time(s) : 0;
    if (s)
        srv_unref(s);
    if (next_server(a))
        return;
    if (verdict_wait > 0 && !may_hold(a, false) && await_verdict(a, verdict_wait))
        return;
    no_server(a, status, fault == FAULT_REFUSED || fault == FAULT_TIMEOUT ||
                             fault == FAULT_DOWN);
}

/* ---- waiting for the answer, hedging ---- */

static void on_hedge_io(struct ev_loop *loop, ev_io *w, int revents);

/* The hedge answered first: it takes the first connection's place. */
static void hedge_wins(struct attempt *a)
{
    struct upstream *u = a->hedge;
    a->hedge = NULL;
    a->hedge_ready = false;
    a->answering = true;
    upstream_close(take_up(a));
    set_up(a, u);
    ev_set_cb(&u->sk.io, on_server_io);
    u->sk.io.data = a;
    counters->hedges_won_total++;
    a->ops->hedge_won(a);
}

static void on_hedge_io(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    struct attempt *a = w->data;
    if (!a->hedge_ready) {
        int rc = upstream_connected(a->hedge);
        if (rc == EG_AGAIN) {
            sk_want_raw(gw.loop, &a->hedge->sk, a->hedge->sk.hs_ev);
            return;
        }
        a->hedge_ready = rc == EG_OK;
        if (a->hedge_ready)
            a->hedge->requests++;
        if (!a->hedge_ready || !a->ops->hedge_write(a))
            drop_hedge(a);
        return;
    }
    bool rd, wr;
    sk_ready(&a->hedge->sk, revents, &rd, &wr);
    if (rd) {
        hedge_wins(a);
        return;
    }
    if (wr && !a->ops->hedge_write(a))
        drop_hedge(a);
}

/* Sends the request a second time, to a server of the next datacenter (this
 * one is as slow for the hedge as for us). False when there is none that
 * speaks HTTP/1.1, or the retry budget refuses. */
static bool hedge(struct attempt *a)
{
    struct route r = a->rt;
    if (r.nleft < (int)ARRAY_LEN(r.dcs_left))
        r.dcs_left[r.nleft++] = r.dc;
    r.dc = NULL;
    struct srv *s = route_next(a->c->gen, cl_of(a), &r);
    if (!s || s->cs->h2 || !budget_allows_retry())
        return false;
    struct upstream *u = upstream_pool_take(s);
    bool pooled = u != NULL;
    if (!u && !(u = upstream_open(s, opens_quietly(a))))
        return false;
    a->rt = r;
    a->hedge = u;
    a->hedge_ready = pooled;
    counters->hedges_total++;
    ev_set_cb(&u->sk.io, on_hedge_io);
    u->sk.io.data = a;
    if (pooled) {
        u->requests++;
        if (!a->ops->hedge_write(a))
            drop_hedge(a);
    } else {
        sk_want_raw(gw.loop, &u->sk, EV_WRITE);
    }
    return true;
}

/* Whether the request on the ready connection may be hedged: the listener
 * asks for it, the connection is HTTP/1.1 and shared, nothing of an answer
 * came, and the session may leave its datacenter. */
static bool may_hedge(const struct attempt *a)
{
    return cl_of(a)->hedge_after > 0 && !a->hedge && !a->answering && !a->rt.pinned &&
           !a->private_conn && !a->up->mux;
}

/* How long the server has for its first response byte: response_timeout,
 * or try_timeout for a request that may go to another server afterwards
 * (idempotent, and not on its last try). */
static double answer_timeout(const struct attempt *a, bool idempotent)
{
    const struct conf_listener *cl = cl_of(a);
    if (cl->try_timeout > 0 && idempotent && a->tries <= cl->retries)
        return MIN(cl->try_timeout, cl->response_timeout);
    return cl->response_timeout;
}

void attempt_await_answer(struct attempt *a, bool idempotent)
{
    ev_tstamp now = ev_now(gw.loop);
    a->answer_at = now + answer_timeout(a, idempotent);
    a->hedge_at = idempotent && may_hedge(a) ? now + cl_of(a)->hedge_after : 0;
    conn_deadline(a->c, a->hedge_at > 0 ? MIN(a->hedge_at, a->answer_at) : a->answer_at);
}

/* The deadline is hedge_after's, not the answer's: the request goes to the
 * next datacenter too when it may still be replayed. */
static bool hedge_due(struct attempt *a)
{
    ev_tstamp now = ev_now(gw.loop);
    if (a->hedge_at == 0 || now < a->hedge_at || now >= a->answer_at)
        return false;
    a->hedge_at = 0;
    if (a->ops->replayable(a))
        hedge(a);
    conn_deadline(a->c, a->answer_at);
    return true;
}

void attempt_session_issued(struct attempt *a, const char *key, size_t len)
{
    struct dc *dc = a->up->srv->dc;
    if (dc)
        affinity_issued(a->c->gen, cl_of(a), key, len, dc);
}

void attempt_answered(struct attempt *a, int status)
{
    struct srv *s = a->up->srv;
    dlist_del(&a->inflight);
    srv_answered(s, status);
    dlist_add_tail(&s->inflight, &a->inflight);
}

/* Moves every attempt on S, in a batch of its own: handling one may start
 * others (on other servers) but never on S, which is down. */
void attempt_server_down(struct srv *s)
{
    down_verdicts++;
    struct dlist batch;
    if (dlist_empty(&s->inflight))
        return;
    batch.next = s->inflight.next;
    batch.prev = s->inflight.prev;
    batch.next->prev = &batch;
    batch.prev->next = &batch;
    dlist_init(&s->inflight);
    while (!dlist_empty(&batch)) {
        struct attempt *a = container_of(batch.next, struct attempt, inflight);
        dlist_del(&a->inflight);
        dlist_add_tail(&s->inflight, &a->inflight); /* where take_up expects it */
        counters->inflight_moved_total++;
        if (a->state == ATTEMPT_CONNECT)
            attempt_failed(a, FAULT_DOWN, 502);
        else
            a->ops->server_down(a);
    }
}

bool attempt_timeout(struct attempt *a)
{
    switch (a->state) {
    case ATTEMPT_CONNECT:
        attempt_failed(a, FAULT_TIMEOUT, 504);
        return true;
    case ATTEMPT_HOLD:
        leave_hold(a, false);
        if (a->awaiting_verdict) {
            a->awaiting_verdict = false;
            if (down_verdicts == a->downs_before) /* servers stayed up: the request's doing */
                a->ops->give_up(a, 502, "server failed");
            else
                route(a); /* an outage after all: wherever it can go now, or held */
            return true;
        }
        counters->hold_expired_total++;
        a->ops->give_up(a, 503, "hold timeout");
        return true;
    case ATTEMPT_READY:
        return hedge_due(a);
    case ATTEMPT_IDLE:
    case ATTEMPT_ROUTE:
        return false;
    }
    return false;
}

/* ---- the end of an exchange ---- */

void attempt_cancel(struct attempt *a)
{
    drop_hedge(a);
    if (a->state == ATTEMPT_ROUTE)
        affinity_cancel(&a->aff);
    unhold(a);
    upstream_close(take_up(a));
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
    drop_hedge(a);
    struct upstream *u = take_up(a);
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
