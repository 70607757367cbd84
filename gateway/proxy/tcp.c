/* tcp mode.
 *
 * A connection goes [PROXY (header from a balancer)] -> [HANDSHAKE (client
 * TLS)] -> ROUTE (affinity lookup) -> CONNECT (TCP, then TLS to the server
 * if configured) -> STREAM, or HOLD while no datacenter is healthy. Until the server sends its first byte
 * every byte sent to it stays in c2s (between head and head + c2s_sent), so
 * that a failed connect, or a reset or close before the server spoke, can be
 * replayed on the next server or datacenter without the client noticing.
 * Once the server spoke, or when retaining would need more than one buffer,
 * sent bytes are dropped and the connection is a plain byte pipe with
 * backpressure (a side is read only while the buffer towards its peer has
 * room) and half-close passed through. */
#include "gateway/proxy/tcp.h"
#include "gateway/balance/affinity.h"
#include "gateway/ops/access_log.h"
#include "base/buffer.h"
#include "gateway/proxy/client.h"
#include "base/log.h"
#include "gateway/proxy/listener.h"
#include "proto/proxy_protocol.h"
#include "gateway/balance/route.h"
#include "base/counters.h"
#include "base/tls.h"
#include "gateway/proxy/upstream.h"
#include "healthcheck/datacenter.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

enum tcp_state { TCP_PROXY, TCP_HANDSHAKE, TCP_ROUTE, TCP_HOLD, TCP_CONNECT, TCP_STREAM };

struct tcpc {
    struct conn c;
    uint8_t state;
    bool cl_eof;                /* client finished sending */
    bool sv_eof;                /* server finished sending */
    bool sv_shut;               /* we shut the server's receiving side */
    bool cl_shut;               /* we shut the client's receiving side */
    bool spoke;                 /* the server sent a byte: no more replay */
    bool replay_off;            /* too much to retain: no more replay */
    int attempts;
    struct upstream *up;
    struct buf *c2s, *s2c;
    uint32_t c2s_sent;          /* bytes after c2s->head already sent */
    uint8_t pp_len, pp_sent;    /* PROXY header opening the server connection */
    unsigned char pp[PP_BUILD_MAX];
    uint64_t rx, tx;            /* bytes from and to the client */
    const char *a_dc;           /* datacenter and server of the last attempt, */
    char a_srv[64];             /* for the access log */
    struct route rt;
    struct affinity_req aff;
    char key[AFFINITY_KEY_MAX];
    size_t keylen;
    struct tcpc *next_free;
};

static struct tcpc *free_list;

static void log_connection(struct tcpc *t, const char *why)
{
    if (access_log_format == ACCESS_LOG_OFF)
        return;
    char client[80];
    net_addr_str(&t->c.peer, client, sizeof(client));
    struct access_log_rec r = {
        .client = client, .listener = t->c.cl->name, .mode = "tcp",
        .session = t->keylen ? t->key : NULL, .session_len = t->keylen,
        .dc = t->a_dc, .server = t->a_dc ? t->a_srv : NULL,
        .bytes_in = t->rx, .bytes_out = t->tx, .duration_s = ev_now(gw.loop) - t->c.started,
        .retries = t->attempts > 0 ? t->attempts - 1 : 0, .end = why,
    };
    access_log_write(&r);
}

static void on_client_io(struct ev_loop *loop, ev_io *w, int revents);
static void on_server_io(struct ev_loop *loop, ev_io *w, int revents);
static void on_timeout(struct conn *c);
static void start_routing(struct tcpc *t);
static void start_session(struct tcpc *t);

/* Ends the connection; WHY goes to the access log. */
static void tcp_free(struct tcpc *t, bool abort_client, const char *why)
{
    log_connection(t, why);
    if (t->state == TCP_ROUTE)
        affinity_cancel(&t->aff);
    upstream_close(t->up);
    buf_put(t->c2s);
    buf_put(t->s2c);
    if (abort_client)
        sk_abort(gw.loop, &t->c.sk);
    conn_done(&t->c);
    t->next_free = free_list;
    free_list = t;
}

static size_t c2s_unsent(const struct tcpc *t)
{
    return t->c2s ? buf_len(t->c2s) - t->c2s_sent : 0;
}

static bool retaining(const struct tcpc *t) { return !t->spoke && !t->replay_off; }

/* Forgets bytes the server has: after it spoke they are never needed again. */
static void drop_sent(struct tcpc *t)
{
    if (!t->c2s)
        return;
    t->c2s->head += t->c2s_sent;
    t->c2s_sent = 0;
    if (buf_len(t->c2s) == 0) {
        buf_put(t->c2s);
        t->c2s = NULL;
    }
}

/* Room for client bytes: compacts, and gives up replay when the only way to
 * make room is to forget bytes already sent. */
static size_t c2s_room(struct tcpc *t, bool make)
{
    struct buf *b = t->c2s;
    if (!b || buf_room(b) > 0)
        return b ? buf_room(b) : buf_size();
    if (retaining(t)) {
        if (t->c2s_sent == 0)
            return 0;
        if (!make)
            return 1;
        t->replay_off = true;
        drop_sent(t);
        if (!t->c2s)
            return buf_size();
    }
    if (b->head == 0)
        return 0;
    if (make)
        buf_compact(b);
    return buf_size() - buf_len(b);
}

static size_t s2c_room(struct tcpc *t, bool make)
{
    struct buf *b = t->s2c;
    if (!b)
        return buf_size();
    if (buf_room(b) == 0 && make)
        buf_compact(b);
    return buf_room(b) > 0 ? buf_room(b) : (size_t)(b->head > 0);
}

static void update_interest(struct tcpc *t)
{
    if (t->state == TCP_HANDSHAKE || t->state == TCP_PROXY)
        return; /* conn_handshake() and read_proxy() set what they wait for */
    bool crd = !t->cl_eof && c2s_room(t, false) > 0;
    bool cwr = t->s2c && buf_len(t->s2c) > 0;
    sk_want(gw.loop, &t->c.sk, crd, cwr);
    if (!t->up)
        return;
    if (t->state == TCP_CONNECT) {
        sk_want_raw(gw.loop, &t->up->sk, t->up->connected ? t->up->sk.hs_ev : EV_WRITE);
        return;
    }
    bool srd = !t->sv_eof && s2c_room(t, false) > 0;
    bool swr = c2s_unsent(t) > 0 || t->pp_sent < t->pp_len;
    sk_want(gw.loop, &t->up->sk, srd, swr);
}

/* Both directions finished: client sent EOF and we passed it on, server sent
 * EOF and we passed it on. */
static bool finished(const struct tcpc *t)
{
    return t->cl_eof && t->sv_shut && t->sv_eof && t->cl_shut;
}

static void touch(struct tcpc *t)
{
    conn_deadline(&t->c, ev_now(gw.loop) + t->c.cl->idle_timeout);
}

static void on_wake(struct hold *h)
{
    struct tcpc *t = container_of(h, struct tcpc, c.hold);
    conn_unhold(&t->c);
    if (!conn_rebase(&t->c)) {
        tcp_free(t, false, "listener removed");
        return;
    }
    start_routing(t);
}

/* No server can be tried: wait for a datacenter if none is healthy (the
 * client sees a slow start, not an error), else give up. */
static void no_server(struct tcpc *t)
{
    if (!route_any_healthy(t->c.gen, t->c.cl) && t->c.cl->hold_timeout > 0 && !gw.draining) {
        if (t->state != TCP_HOLD)
            conn_deadline(&t->c, ev_now(gw.loop) + t->c.cl->hold_timeout);
        t->state = TCP_HOLD;
        t->attempts = 0;
        conn_hold(&t->c, on_wake);
        update_interest(t);
        return;
    }
    counters->client_errors_total++;
    log_debug("tcp: no server for a connection of %s", t->c.cl->name);
    tcp_free(t, true, "no server");
}

static void connect_failed(struct tcpc *t, int err);

static void try_connect(struct tcpc *t, struct srv *s)
{
    t->attempts++;
    if (access_log_format != ACCESS_LOG_OFF) {
        t->a_dc = s->dc->name; /* lives as long as our generation */
        memcpy(t->a_srv, s->name, sizeof(t->a_srv));
    }
    t->state = TCP_CONNECT;
    t->c2s_sent = 0;
    t->sv_eof = t->sv_shut = false;
    t->pp_len = t->pp_sent = 0;
    if (t->c.cl->send_proxy)
        t->pp_len = (uint8_t)conn_proxy_header(&t->c, t->pp);
    t->up = upstream_open(s);
    if (!t->up) {
        int err = errno;
        srv_traffic_failed(s, err == ECONNREFUSED ? DC_FAIL_REFUSED : DC_FAIL_RESET);
        connect_failed(t, err);
        return;
    }
    ev_set_cb(&t->up->sk.io, on_server_io);
    t->up->sk.io.data = t;
    conn_deadline(&t->c, ev_now(gw.loop) + t->c.cl->connect_timeout);
    update_interest(t);
}

/* The current attempt failed before the server spoke: next server, next
 * datacenter, or hold. The failure was already reported to health. */
static void connect_failed(struct tcpc *t, int err)
{
    struct dc *was = t->rt.dc;
    upstream_close(t->up);
    t->up = NULL;
    log_debug("tcp: attempt %d failed: %s", t->attempts, strerror(err));
    if (t->replay_off) {
        tcp_free(t, true, "server failed, no replay");
        return;
    }
    if (t->attempts <= t->c.cl->retries) {
        struct srv *s = route_next(t->c.gen, t->c.cl, &t->rt);
        if (s) {
            counters->retries_total++;
            if (s->dc != was) {
                counters->failovers_total++;
                if (t->keylen)
                    affinity_moved(t->c.gen, t->c.cl, t->key, t->keylen, s->dc, was);
            }
            try_connect(t, s);
            return;
        }
    }
    no_server(t);
}

static void server_failed(struct tcpc *t, enum dc_fail kind, int err)
{
    srv_traffic_failed(t->up->srv, kind);
    connect_failed(t, err);
}

static void route_to(struct tcpc *t, struct dc *dc)
{
    struct srv *s = route_first(t->c.gen, t->c.cl, dc, &t->rt);
    if (!s) {
        no_server(t);
        return;
    }
    try_connect(t, s);
}

static void on_affinity(struct affinity_req *r, struct dc *dc)
{
    route_to(container_of(r, struct tcpc, aff), dc);
}

static void start_routing(struct tcpc *t)
{
    t->state = TCP_ROUTE;
    if (t->keylen) {
        struct dc *dc;
        t->aff.done = on_affinity;
        if (!affinity_resolve(&t->aff, t->c.gen, t->c.cl, t->key, t->keylen, &dc))
            return;
        route_to(t, dc);
        return;
    }
    route_to(t, NULL);
}

void tcp_accept(int fd, struct listener *l, const struct net_addr *peer)
{
    struct tcpc *t = free_list;
    if (t)
        free_list = t->next_free;
    else if (!(t = malloc(sizeof(*t))))
        abort();
    memset(t, 0, sizeof(*t));
    conn_init(&t->c, fd, l, peer, on_client_io, t, on_timeout);
    if (t->c.cl->accept_proxy) {
        if (!conn_proxy_trusted(&t->c)) {
            tcp_free(t, true, "proxy untrusted");
            return;
        }
        t->state = TCP_PROXY;
        conn_deadline(&t->c, conn_handshake_deadline(&t->c));
        sk_want_raw(gw.loop, &t->c.sk, EV_READ);
        return;
    }
    start_session(t);
}

/* After the PROXY header (if any): the TLS handshake, or routing. */
static void start_session(struct tcpc *t)
{
    if (t->c.cl->sess == SESS_CLIENT_IP) { /* the real client, once PROXY told */
        t->keylen = strlen(conn_peer_ip(&t->c));
        memcpy(t->key, t->c.ip, t->keylen);
    }
    if (t->c.tls) {
        t->state = TCP_HANDSHAKE;
        conn_deadline(&t->c, conn_handshake_deadline(&t->c));
        sk_want_raw(gw.loop, &t->c.sk, EV_READ);
        return;
    }
    start_routing(t);
}

static void read_proxy(struct tcpc *t)
{
    int rc = conn_proxy_step(&t->c);
    if (rc < 0)
        tcp_free(t, true, "no valid proxy header");
    else if (rc > 0)
        start_session(t);
}

/* The client's TLS handshake is done: the SNI may be the session key. */
static void handshake_done(struct tcpc *t)
{
    const char *sni = conn_sni(&t->c);
    if (t->c.cl->sess == SESS_SNI && sni) {
        size_t n = strlen(sni);
        if (!affinity_key_valid(sni, n)) {
            counters->bad_session_keys_total++;
            tcp_free(t, true, "bad session key");
            return;
        }
        memcpy(t->key, sni, n);
        t->keylen = n;
    }
    start_routing(t);
}

/* ---- streaming ---- */

/* Each returns false when the connection was freed. */

static bool flush_c2s(struct tcpc *t)
{
    size_t n = c2s_unsent(t);
    size_t pp = (size_t)(t->pp_len - t->pp_sent);
    if (n > 0 || pp > 0) {
        /* The PROXY header (if any is left) goes first, in the same write. */
        struct iovec iov[2] = {{t->pp + t->pp_sent, pp},
                               {n ? buf_rpos(t->c2s) + t->c2s_sent : NULL, n}};
        ssize_t w = sk_writev(&t->up->sk, iov + (pp == 0), (pp > 0) + (n > 0));
        if (w == SK_ERROR) {
            if (t->spoke) {
                tcp_free(t, true, "server reset");
                return false;
            }
            server_failed(t, DC_FAIL_RESET, t->up->sk.err);
            return false;
        }
        if (w > 0) {
            size_t from_pp = MIN((size_t)w, pp);
            t->pp_sent += (uint8_t)from_pp;
            w -= (ssize_t)from_pp;
            t->c2s_sent += (uint32_t)w;
            t->up->srv->st->bytes_out += (uint64_t)w;
            counters->bytes_out_total += (uint64_t)w;
            touch(t);
            if (!retaining(t))
                drop_sent(t);
        }
    }
    if (t->cl_eof && !t->sv_shut && c2s_unsent(t) == 0 && t->pp_sent == t->pp_len) {
        sk_shutdown_wr(&t->up->sk);
        t->sv_shut = true;
    }
    return true;
}

static bool flush_s2c(struct tcpc *t)
{
    if (t->s2c && buf_len(t->s2c) > 0) {
        ssize_t w = sk_write(&t->c.sk, buf_rpos(t->s2c), buf_len(t->s2c));
        if (w == SK_ERROR) {
            tcp_free(t, true, "client reset");
            return false;
        }
        if (w > 0) {
            t->s2c->head += (uint32_t)w;
            t->tx += (uint64_t)w;
            touch(t);
            if (buf_len(t->s2c) == 0) {
                buf_put(t->s2c);
                t->s2c = NULL;
            }
        }
    }
    if (t->sv_eof && !t->cl_shut && !t->s2c) {
        sk_shutdown_wr(&t->c.sk);
        t->cl_shut = true;
    }
    return true;
}

static bool read_client(struct tcpc *t)
{
    size_t room = c2s_room(t, true);
    if (room == 0)
        return true;
    if (!t->c2s)
        t->c2s = buf_get();
    ssize_t n = sk_read(&t->c.sk, buf_wpos(t->c2s), room);
    if (n > 0) {
        t->c2s->tail += (uint32_t)n;
        t->rx += (uint64_t)n;
        counters->bytes_in_total += (uint64_t)n;
        touch(t);
    } else if (n == 0) {
        t->cl_eof = true;
    } else if (n == SK_ERROR) {
        tcp_free(t, false, "client reset");
        return false;
    }
    if (t->c2s && buf_len(t->c2s) == 0) {
        buf_put(t->c2s);
        t->c2s = NULL;
    }
    return t->state != TCP_STREAM || flush_c2s(t);
}

static bool read_server(struct tcpc *t)
{
    if (s2c_room(t, true) == 0)
        return true;
    if (!t->s2c)
        t->s2c = buf_get();
    ssize_t n = sk_read(&t->up->sk, buf_wpos(t->s2c), buf_room(t->s2c));
    if (n > 0) {
        t->s2c->tail += (uint32_t)n;
        t->up->srv->st->bytes_in += (uint64_t)n;
        if (!t->spoke) {
            t->spoke = true;
            srv_traffic_ok(t->up->srv);
            drop_sent(t);
        }
        touch(t);
        return flush_s2c(t);
    }
    if (t->s2c && buf_len(t->s2c) == 0) {
        buf_put(t->s2c);
        t->s2c = NULL;
    }
    if (n == SK_AGAIN)
        return true;
    /* A server that closes or resets before saying anything, while the
     * client still talks, failed this attempt: replay elsewhere. */
    if (!t->spoke && !t->cl_eof && !t->replay_off) {
        server_failed(t, DC_FAIL_RESET, n == 0 ? ECONNRESET : t->up->sk.err);
        return false;
    }
    if (n == SK_ERROR) {
        tcp_free(t, true, "server reset");
        return false;
    }
    t->sv_eof = true;
    return flush_s2c(t);
}

static void on_connected(struct tcpc *t)
{
    int rc = upstream_connected(t->up);
    if (rc == 0) {
        update_interest(t);
        return;
    }
    if (rc < 0) {
        server_failed(t, rc == -ECONNREFUSED ? DC_FAIL_REFUSED : DC_FAIL_RESET, -rc);
        return;
    }
    t->state = TCP_STREAM;
    t->rt.dc->st->sessions_total++;
    touch(t);
    if (!flush_c2s(t))
        return;
    update_interest(t);
}

static void after_io(struct tcpc *t)
{
    if (finished(t)) {
        tcp_free(t, false, "ok");
        return;
    }
    update_interest(t);
}

static void on_client_io(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    struct tcpc *t = w->data;
    if (t->state == TCP_PROXY) {
        read_proxy(t);
        return;
    }
    if (t->state == TCP_HANDSHAKE) {
        int rc = conn_handshake(&t->c);
        if (rc < 0)
            tcp_free(t, false, "tls handshake failed");
        else if (rc > 0)
            handshake_done(t);
        return;
    }
    bool rd, wr;
    sk_ready(&t->c.sk, revents, &rd, &wr);
    if (wr && !flush_s2c(t))
        return;
    if (rd && !read_client(t))
        return;
    after_io(t);
}

static void on_server_io(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    struct tcpc *t = w->data;
    if (t->state == TCP_CONNECT) {
        on_connected(t);
        return;
    }
    bool rd, wr;
    sk_ready(&t->up->sk, revents, &rd, &wr);
    if (wr && !flush_c2s(t))
        return;
    if (rd && !read_server(t))
        return;
    after_io(t);
}

static void on_timeout(struct conn *c)
{
    struct tcpc *t = container_of(c, struct tcpc, c);
    switch (t->state) {
    case TCP_CONNECT:
        srv_traffic_failed(t->up->srv, DC_FAIL_TIMEOUT);
        connect_failed(t, ETIMEDOUT);
        return;
    case TCP_HOLD:
        counters->hold_timeouts_total++;
        counters->client_errors_total++;
        tcp_free(t, true, "hold timeout");
        return;
    case TCP_HANDSHAKE:
        tls_count_failure();
        tcp_free(t, false, "tls handshake timeout");
        return;
    case TCP_PROXY:
        read_proxy(t);
        return;
    default:
        log_debug("tcp: idle timeout on %s", t->c.cl->name);
        tcp_free(t, false, "idle timeout");
    }
}
