/* tcp mode.
 *
 * A connection goes SETUP (client.c: PROXY header, TLS handshake) -> ATTEMPT
 * (the attempt engine routes, holds, connects) -> STREAM.
 * Until the server sends its first byte every byte sent to it stays in the
 * client-to-server pump (retained), so that a failed connect, or a reset or
 * close before the server spoke, is replayed on the next server or
 * datacenter without the client noticing. Once the server spoke, or when
 * retaining would need more than one buffer, the connection is a plain byte
 * pipe with backpressure and half-close passed through; between plain
 * sockets each direction splices once it moved TCP_SPLICE_AFTER bytes
 * (pump.h). */
#include "gateway/proxy/tcp.h"
#include "base/alloc.h"
#include "base/counters.h"
#include "base/log.h"
#include "gateway/ops/access_log.h"
#include "gateway/proxy/attempt.h"
#include "gateway/proxy/client.h"
#include "gateway/proxy/pump.h"
#include "gateway/proxy/upstream.h"
#include "proto/proxy_protocol.h"

#include <errno.h>
#include <string.h>

enum tcp_state {
    TCP_SETUP,          /* client.c reads the PROXY header, does the TLS handshake */
    TCP_ATTEMPT,        /* the attempt engine finds a server */
    TCP_STREAM,         /* bytes flow both ways */
};

struct tcp_session {
    struct conn c;
    enum tcp_state state;
    bool spoke;                 /* the server sent a byte: no more replay */
    bool replay_off;            /* too much to retain: no more replay */
    bool plain;                 /* no TLS on either side: the pumps may splice */
    uint8_t pp_len;             /* PROXY header opening each server connection */
    struct attempt a;
    struct pump c2s, s2c;
    uint64_t rx, tx;            /* bytes from and to the client */
    char ip[CONN_IP_MAX];        /* the client's address: the session key of `session client_ip` */
    unsigned char pp[PP_BUILD_MAX];
};

/* A direction splices (pump.h) once it moved this many bytes: short and
 * chatty streams, which save next to no copying (5-byte echoes measured the
 * same CPU per connection either way), then never hold a pipe's two
 * descriptors. */
#ifndef TCP_SPLICE_AFTER
#define TCP_SPLICE_AFTER (64 * 1024)
#endif

static struct pool sessions = POOL_INIT(struct tcp_session, 1024);

static void on_client_io(struct ev_loop *loop, ev_io *w, int revents);
static void on_timeout(struct conn *c);
static bool read_client(struct tcp_session *t);

/* Ends the connection; WHY goes to the access log. */
static void tcp_free(struct tcp_session *t, bool abort_client, const char *why)
{
    struct access_log_rec r = {.mode = "tcp", .end = why, .bytes_in = t->rx,
                               .bytes_out = t->tx,
                               .duration_s = ev_now(gw.loop) - t->c.started};
    attempt_log(&t->a, &r);
    attempt_cancel(&t->a);
    pump_clear(&t->c2s);
    pump_clear(&t->s2c);
    if (abort_client)
        sk_abort(gw.loop, &t->c.sk);
    conn_done(&t->c);
    pool_put(&sessions, t);
}

static void touch(struct tcp_session *t)
{
    conn_deadline(&t->c, ev_now(gw.loop) + t->c.cl->idle_timeout);
}

/* Client bytes are read while there is room, and, while retaining, only as
 * long as retaining fits in one buffer: past that, replay is given up. */
static bool client_readable(const struct tcp_session *t)
{
    const struct pump *p = &t->c2s;
    if (p->eof || p->pipe)
        return false;
    if (!p->b || buf_room(p->b) > 0 || p->b->head > 0)
        return true;
    return p->retain && p->sent > 0; /* reading gives up retaining to make room */
}

static void update_interest(struct tcp_session *t)
{
    sk_want(gw.loop, &t->c.sk, client_readable(t), pump_wants_write(&t->s2c));
    if (t->state == TCP_STREAM)
        sk_want(gw.loop, &t->a.up->sk, pump_wants_read(&t->s2c), pump_wants_write(&t->c2s));
}

/* ---- the attempt engine's callbacks ---- */

static void on_ready(struct attempt *a)
{
    struct tcp_session *t = container_of(a, struct tcp_session, a);
    t->state = TCP_STREAM;
    a->up->requests++;
    a->rt.dc->st->sessions_total++;
    pump_rewind(&t->c2s, t->pp, t->pp_len);
    t->s2c.eof = t->s2c.shut = false;
    t->plain = !sk_is_tls(&t->c.sk) && !sk_is_tls(&a->up->sk);
    touch(t);
    size_t put;
    if (pump_write(&t->c2s, &a->up->sk, &put) != PUMP_OK) {
        attempt_failed(a, FAULT_RESET, 502);
        return;
    }
    a->up->srv->st->bytes_out += put;
    counters->bytes_out_total += put;
    update_interest(t);
}

static void on_give_up(struct attempt *a, int status, const char *why)
{
    struct tcp_session *t = container_of(a, struct tcp_session, a);
    if (status == 503)
        counters->client_errors_total++;
    log_debug("tcp: %s for a connection of %s", why, t->c.cl->name);
    tcp_free(t, true, why);
}

static bool replayable(const struct attempt *a)
{
    const struct tcp_session *t = container_of(a, struct tcp_session, a);
    return !t->spoke && !t->replay_off;
}

static void on_waiting(struct attempt *a)
{
    struct tcp_session *t = container_of(a, struct tcp_session, a);
    t->state = TCP_ATTEMPT;
    update_interest(t);
}

static bool flush_c2s(struct tcp_session *t);
static bool read_server(struct tcp_session *t);
static void after_io(struct tcp_session *t);

static void on_server_io(struct attempt *a, bool rd, bool wr)
{
    struct tcp_session *t = container_of(a, struct tcp_session, a);
    if ((wr && !flush_c2s(t)) || (rd && !read_server(t)))
        return;
    after_io(t);
}

/* The server was marked down: a connection it has not spoken on yet moves
 * to another server; a stream is closed (on_down close, the default), so
 * that the client reconnects to a healthy datacenter rather than wait on a
 * dead one. */
static void on_server_down(struct attempt *a)
{
    struct tcp_session *t = container_of(a, struct tcp_session, a);
    if (replayable(a))
        attempt_failed(a, FAULT_DOWN, 502);
    else if (t->c.cl->on_down == ON_DOWN_CLOSE)
        tcp_free(t, true, "server down");
}

static const struct attempt_ops tcp_attempt_ops = {
    .ready = on_ready, .give_up = on_give_up, .replayable = replayable, .waiting = on_waiting,
    .server_io = on_server_io, .server_down = on_server_down,
};

/* ---- session start ---- */

/* After the PROXY header and the TLS handshake: the real client's address
 * and the SNI are known, either may be the session key. */
static void on_established(struct conn *c)
{
    struct tcp_session *t = container_of(c, struct tcp_session, c);
    if (c->cl->sess == SESS_CLIENT_IP) {
        t->a.key = conn_peer_ip(c, t->ip);
        t->a.keylen = (uint16_t)strlen(t->a.key);
    } else if (c->cl->sess == SESS_SNI && conn_sni(c)) {
        const char *sni = conn_sni(c);
        size_t n = strlen(sni);
        if (!affinity_key_valid(sni, n)) {
            counters->bad_session_keys_total++;
            tcp_free(t, true, "bad session key");
            return;
        }
        t->a.key = sni; /* lives as long as the TLS session */
        t->a.keylen = (uint16_t)n;
    }
    t->state = TCP_ATTEMPT;
    if (c->cl->send_proxy)
        t->pp_len = (uint8_t)conn_proxy_header(c, t->pp);
    /* A client usually speaks first, and has by now: read it before
     * connecting, so that the server connection's handshake can end on
     * its bytes (delayed_ack). */
    if (!read_client(t))
        return;
    t->a.sends_first = t->pp_len > 0 || pump_pending(&t->c2s) > 0;
    attempt_start(&t->a);
}

static void on_setup_failed(struct conn *c, bool abort, const char *why)
{
    tcp_free(container_of(c, struct tcp_session, c), abort, why);
}

static void on_accepted(struct conn *c)
{
    struct tcp_session *t = container_of(c, struct tcp_session, c);
    attempt_init(&t->a, &tcp_attempt_ops, c, true, NULL);
    t->c2s.retain = true;
}

const struct conn_ops tcp_conn_ops = {
    .pool = &sessions, .init = on_accepted, .io = on_client_io, .timeout = on_timeout,
    .established = on_established, .failed = on_setup_failed,
};

/* ---- streaming: each returns false when the connection was freed ---- */

static bool flush_c2s(struct tcp_session *t)
{
    size_t put;
    if (pump_write(&t->c2s, &t->a.up->sk, &put) != PUMP_OK) {
        if (t->spoke) {
            tcp_free(t, true, "server reset");
            return false;
        }
        attempt_failed(&t->a, FAULT_RESET, 502);
        return false;
    }
    if (put > 0) {
        t->a.up->srv->st->bytes_out += put;
        counters->bytes_out_total += put;
        touch(t);
    }
    return true;
}

static bool flush_s2c(struct tcp_session *t)
{
    size_t put;
    if (pump_write(&t->s2c, &t->c.sk, &put) != PUMP_OK) {
        tcp_free(t, true, "client reset");
        return false;
    }
    if (put > 0) {
        t->tx += put;
        touch(t);
    }
    return true;
}

/* The last end to pass on, when P's source ended with nothing left to
 * write and the other direction is finished: the connection is closed next,
 * which sends the FIN a shutdown would, so the shutdown is skipped. */
static void end_with_close(struct pump *p, const struct pump *other)
{
    if (p->eof && !p->shut && pump_pending(p) == 0 && pump_finished(other))
        p->shut = true;
}

/* Reads the client and writes to the server until pump_read_more() says
 * stop; while no server is connected, one read. */
static bool read_client(struct tcp_session *t)
{
    struct pump *p = &t->c2s;
    for (size_t moved = 0;;) {
        if (p->retain && p->b && buf_room(p->b) == 0 && p->sent > 0) {
            /* Retaining would take a second buffer: forget what the server
             * already has, and with it the chance to replay. */
            t->replay_off = true;
            pump_stop_retaining(p);
        }
        size_t got;
        p->splice = t->plain && t->rx >= TCP_SPLICE_AFTER;
        if (pump_read(p, &t->c.sk, &got) != PUMP_OK) {
            tcp_free(t, false, "client reset");
            return false;
        }
        if (got > 0) {
            t->rx += got;
            counters->bytes_in_total += got;
            touch(t);
        }
        if (t->state != TCP_STREAM)
            return true;
        end_with_close(p, &t->s2c);
        if (!flush_c2s(t))
            return false;
        moved += got;
        if (!pump_read_more(p, got, moved))
            return true;
    }
}

/* Reads the server and writes to the client until pump_read_more() says
 * stop; the server's end or reset is handled once nothing more came. */
static bool read_server(struct tcp_session *t)
{
    struct upstream *u = t->a.up;
    size_t got, moved = 0;
    enum pump_status rc;
    t->s2c.splice = t->plain && t->tx >= TCP_SPLICE_AFTER;
    while ((rc = pump_read(&t->s2c, &u->sk, &got)) == PUMP_OK && got > 0) {
        u->srv->st->bytes_in += got;
        if (!t->spoke) {
            t->spoke = true;
            srv_traffic_ok(u->srv);
            pump_stop_retaining(&t->c2s);
        }
        touch(t);
        if (!flush_s2c(t))
            return false;
        moved += got;
        if (!pump_read_more(&t->s2c, got, moved))
            return true;
    }
    bool ended = rc != PUMP_OK || t->s2c.eof;
    /* A server that closes or resets before saying anything, while the
     * client still talks, failed this attempt: replay elsewhere. */
    if (ended && !t->spoke && !t->c2s.eof && !t->replay_off) {
        t->s2c.eof = false;
        attempt_failed(&t->a, FAULT_RESET, 502);
        return false;
    }
    if (rc != PUMP_OK) {
        tcp_free(t, true, "server reset");
        return false;
    }
    end_with_close(&t->s2c, &t->c2s);
    return flush_s2c(t);
}

/* Both directions ended and were passed on. */
static void after_io(struct tcp_session *t)
{
    if (pump_finished(&t->c2s) && pump_finished(&t->s2c)) {
        tcp_free(t, false, "ok");
        return;
    }
    update_interest(t);
}

static void on_client_io(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    struct tcp_session *t = container_of(w->data, struct tcp_session, c);
    bool rd, wr;
    sk_ready(&t->c.sk, revents, &rd, &wr);
    if (wr && t->state == TCP_STREAM && !flush_s2c(t))
        return;
    if (rd && !read_client(t))
        return;
    if (t->state == TCP_STREAM)
        after_io(t);
    else
        update_interest(t);
}

static void on_timeout(struct conn *c)
{
    struct tcp_session *t = container_of(c, struct tcp_session, c);
    if (t->state == TCP_ATTEMPT && attempt_timeout(&t->a))
        return;
    log_debug("tcp: idle timeout on %s", t->c.cl->name);
    tcp_free(t, false, "idle timeout");
}
