/* http mode: the response, and the tunnel after 101.
 *
 * Responses are read into the exchange's `ob`, their head parsed for framing
 * and passed on with the server's hop-by-hop headers replaced by ours (see
 * set_connection); `ob_end` marks how far `ob` holds bytes of the current
 * response. `ob` is taken when bytes arrive and given back as soon as they
 * are written. */
#include "base/counters.h"
#include "base/log.h"
#include "gateway/proxy/http_session.h"
#include "gateway/proxy/upstream.h"

#include <string.h>

/* Room kept free at the end of `ob` while a head is read, so that the
 * longest Connection line set_connection() adds always fits: the head is
 * edited in place, nothing is allocated. */
#define HEAD_SLACK (sizeof("Connection: keep-alive\r\n") - 1)

size_t http_ob_room(const struct http_exchange *x)
{
    size_t room = buf_room(x->ob), keep = x->resp_state <= RESP_INTERIM ? HEAD_SLACK : 0;
    return room > keep ? room - keep : 0;
}

static bool response_keepalive(const struct http_exchange *x)
{
    if (x->resp.minor == 1)
        return !(x->resp.flags & HF_CONN_CLOSE);
    return (x->resp.flags & HF_CONN_KA) != 0;
}

static bool interim(const struct http_exchange *x)
{
    return x->resp.status >= 100 && x->resp.status < 200 && x->resp.status != 101;
}

/* The exchange is over on both sides: recycle what can be, move on. */
static void exchange_done(struct http_session *s)
{
    struct http_exchange *x = s->x;
    http_request_done(s, x->resp.status, "ok");
    bool complete = x->req_state == REQ_DONE;
    bool reusable = x->keep_server && complete && x->req_sent == http_out_total(x);
    bool keep_client = x->keep_client;
    uint32_t req_len = x->req_len;
    attempt_release(&x->a, reusable);
    http_exchange_free(s);
    if (!keep_client || gw.draining || !conn_rebase(&s->c)) {
        http_free(s, false);
        return;
    }
    /* Pipelined bytes after this request start the next one. */
    if (s->ib) {
        s->ib->head += req_len;
        if (buf_len(s->ib) == 0) {
            buf_put(s->ib);
            s->ib = NULL;
        } else {
            buf_compact(s->ib);
        }
    }
    http_set_idle(s);
    if (s->ib && !http_process_input(s))
        return;
    http_update_interest(s);
}

/* A response head that cannot be passed on: 502, and the request is not
 * tried elsewhere (the same request would likely get the same answer). */
static bool bad_response(struct http_session *s, const char *what)
{
    struct http_exchange *x = s->x;
    log_warn("http: bad response from %s: %s", x->a.up->srv->name, what);
    attempt_failed(&x->a, FAULT_INVALID, 502);
    return false;
}

/* The server's Connection header, Keep-Alive and what Connection names
 * concern its connection to us, not ours to the client: they are dropped,
 * and ours added: `close` when the client connection ends after this
 * response (RFC 9112 9.6), `keep-alive` when it stays with an HTTP/1.0
 * client or for an HTTP/1.0 response (which would mean close without it),
 * else nothing. The head is edited in place in ob; HEAD_SLACK bytes were
 * kept free behind the bytes read. */
static void set_connection(struct http_exchange *x)
{
    const char *line = !x->keep_client ? "Connection: close\r\n"
                       : x->req.minor == 0 || x->resp.minor == 0 ? "Connection: keep-alive\r\n"
                                                                 : "";
    if (!*line && !(x->resp.flags & HF_HAS_HOP))
        return;
    struct buf *b = x->ob;
    char *h = buf_rpos(b);
    size_t old = x->resp.head_len, rest = buf_len(b) - old;
    size_t len = x->resp.flags & HF_HAS_HOP ? http_drop_hop(h, old) : old;
    size_t add = strlen(line);
    /* The head's empty line moves behind ours, the bytes after it follow. */
    memmove(h + len + add, h + old, rest);
    memcpy(h + len - 2, line, add);
    memcpy(h + len - 2 + add, "\r\n", 2);
    x->resp.head_len = (uint32_t)(len + add);
    b->tail = b->head + (uint32_t)(len + add + rest);
}

static bool parse_response_head(struct http_session *s)
{
    static const struct http_limits lim = {.max_line = 8192, .max_head = 65535,
                                           .max_headers = HTTP_MAX_HDRS};
    struct http_exchange *x = s->x;
    struct buf *b = x->ob;
    int rc = http_parse(&x->resp, buf_rpos(b), buf_len(b), &lim);
    if (rc == EG_AGAIN) {
        if (http_ob_room(x) > 0)
            return true;
        if (b->head > 0) { /* a head after an interim one: room at the front */
            buf_compact(b);
            x->ob_end = 0;
            return true;
        }
        return bad_response(s, "head too large");
    }
    if (rc == EG_ERR)
        return bad_response(s, x->resp.err);
    srv_traffic_ok(x->a.up->srv);
    if (interim(x)) {
        x->ob_end = b->head + x->resp.head_len;
        if (++x->interims > MAX_INTERIM)
            return bad_response(s, "too many interim responses");
        x->resp_state = RESP_INTERIM; /* passed on; the final head follows */
        return true;
    }
    const struct conf_listener *cl = s->c.cl;
    const char *v;
    size_t n;
    if (cl->sess_issued && http_find_set_cookie(buf_rpos(b), x->resp.head_len, cl->sess_name,
                                                cl->sess_name_len, &v, &n))
        attempt_session_issued(&x->a, v, n);
    attempt_answered(&x->a, x->resp.status);
    http_body_response(&x->respb, &x->resp, x->method);
    x->keep_server = response_keepalive(x) && x->respb.kind != BODY_CLOSE;
    /* Whether the client connection stays is decided here, once, so that the
     * head can say it. A request whose body has not all arrived closes it:
     * the rest would have to be read and thrown away first. */
    if (!x->keep_server || x->req_state != REQ_DONE || gw.draining || !conn_can_rebase(&s->c))
        x->keep_client = false;
    if (x->resp.status == 101) {
        x->resp_state = RESP_DONE; /* its Connection: upgrade is the server's to say */
    } else {
        x->resp_state = RESP_BODY;
        set_connection(x);
    }
    x->ob_end = b->head + x->resp.head_len;
    return true;
}

/* Advances ob_end over the response bytes read so far. */
static bool scan_response(struct http_session *s)
{
    struct http_exchange *x = s->x;
    struct buf *b = x->ob;
    if (x->resp_state == RESP_HEAD) {
        if (!parse_response_head(s))
            return false;
        if (x->resp_state == RESP_HEAD)
            return true;
    }
    if (x->resp_state != RESP_BODY)
        return true; /* interim head, or 101: nothing more to scan */
    size_t used;
    int rc = http_body_scan(&x->respb, b->data + x->ob_end, b->tail - x->ob_end, &used);
    if (rc == EG_ERR) {
        log_warn("http: bad response body from %s: %s", x->a.up->srv->name, x->respb.err);
        counters->invalid_responses_total++;
        x->keep_client = x->keep_server = false;
        x->resp_state = RESP_DONE;
        return true;
    }
    x->ob_end += (uint32_t)used;
    if (rc == EG_OK) {
        x->resp_state = RESP_DONE;
        if (x->ob_end < b->tail) { /* bytes nobody asked for */
            b->tail = x->ob_end;
            x->keep_server = false;
        }
    }
    return true;
}

static void enter_tunnel(struct http_session *s);

/* After an interim head went out, the next head is parsed. */
static bool next_head(struct http_session *s)
{
    struct http_exchange *x = s->x;
    x->resp_state = RESP_HEAD;
    x->mid_response = false; /* between an interim response and the final one */
    http_msg_init(&x->resp, true, &x->resp_hdr, 1);
    if (buf_len(x->ob) > 0)
        return scan_response(s) && http_flush_response(s);
    return true;
}

bool http_flush_response(struct http_session *s)
{
    struct http_exchange *x = s->x;
    if (http_ob_pending(x) > 0) {
        ssize_t w = sk_write(&s->c.sk, buf_rpos(x->ob), http_ob_pending(x));
        if (w == EG_ERR) {
            http_free(s, true);
            return false;
        }
        if (w > 0) {
            x->ob->head += (uint32_t)w;
            x->tx_resp += (uint64_t)w;
            x->resp_started = x->mid_response = true;
        }
    }
    if (http_ob_pending(x) > 0)
        return true;
    if (x->resp_state == RESP_INTERIM)
        return next_head(s);
    if (x->resp_state == RESP_DONE && x->resp.status == 101) {
        enter_tunnel(s);
        return false;
    }
    if (x->resp_state == RESP_DONE) {
        exchange_done(s);
        return false;
    }
    if (buf_len(x->ob) == 0) {
        buf_put(x->ob);
        x->ob = NULL;
        x->ob_end = 0;
    } else if (buf_room(x->ob) == 0) {
        x->ob_end -= x->ob->head;
        buf_compact(x->ob);
    }
    return true;
}

bool http_read_response(struct http_session *s)
{
    struct http_exchange *x = s->x;
    if (!x->ob) {
        x->ob = buf_get();
        x->ob_end = 0;
    }
    if (http_ob_room(x) == 0) {
        x->ob_end -= x->ob->head;
        buf_compact(x->ob);
        if (http_ob_room(x) == 0)
            return true;
    }
    ssize_t n = sk_read(&x->a.up->sk, buf_wpos(x->ob), http_ob_room(x));
    if (n == EG_AGAIN)
        return true;
    if (n > 0) {
        x->ob->tail += (uint32_t)n;
        x->a.up->srv->st->bytes_in += (uint64_t)n;
        conn_deadline(&s->c, ev_now(gw.loop) + s->c.cl->idle_timeout);
        if (!scan_response(s))
            return false;
        return http_flush_response(s);
    }
    /* The server closed or reset. */
    if (x->resp_state == RESP_BODY && x->respb.kind == BODY_CLOSE && n == 0) {
        x->resp_state = RESP_DONE;
        x->keep_client = x->keep_server = false;
        return http_flush_response(s);
    }
    if (!x->resp_started && x->resp_state < RESP_BODY) {
        attempt_failed(&x->a, FAULT_RESET, 502);
        return false;
    }
    /* Cut in the middle of a response: nothing to do but cut the client. */
    http_free(s, true);
    return false;
}

/* ---- the tunnel after 101 ---- */

static void drop_if_empty(struct pump *p)
{
    if (p->b && buf_len(p->b) == 0)
        pump_clear(p);
}

static void enter_tunnel(struct http_session *s)
{
    struct http_exchange *x = s->x;
    http_request_done(s, 101, "upgrade");
    s->phase = PHASE_TUNNEL;
    /* Client bytes after the upgrade request are tunnel data already, and so
     * are server bytes after the 101 head. */
    if (s->ib)
        s->ib->head += x->req_len;
    x->up.b = s->ib;
    x->up.eof = s->cl_eof;
    s->ib = NULL;
    x->down.b = x->ob;
    x->ob = NULL;
    drop_if_empty(&x->up);
    drop_if_empty(&x->down);
    x->up.splice = x->down.splice = !sk_is_tls(&s->c.sk) && !sk_is_tls(&x->a.up->sk);
    conn_deadline(&s->c, ev_now(gw.loop) + s->c.cl->idle_timeout);
    http_update_interest(s);
}

/* Moves bytes through a pump, reading (RD) until pump_read_more() says
 * stop; false (the session ended) on a reset. */
static bool pump_step(struct http_session *s, struct pump *p, struct sk *from, struct sk *to,
                      bool rd)
{
    size_t got = 0, put, moved = 0;
    do {
        if (rd && pump_read(p, from, &got) != PUMP_OK) {
            http_free(s, true);
            return false;
        }
        if (pump_write(p, to, &put) != PUMP_OK) {
            http_free(s, true);
            return false;
        }
        moved += got;
    } while (rd && pump_read_more(p, got, moved));
    return true;
}

void http_tunnel_io(struct http_session *s, bool client_side, bool rd, bool wr)
{
    struct http_exchange *x = s->x;
    struct sk *cl = &s->c.sk, *sv = &x->a.up->sk;
    bool ok = client_side ? pump_step(s, &x->up, cl, sv, rd) &&
                                (!wr || pump_step(s, &x->down, sv, cl, false))
                          : pump_step(s, &x->down, sv, cl, rd) &&
                                (!wr || pump_step(s, &x->up, cl, sv, false));
    if (!ok)
        return;
    if (pump_finished(&x->up) && pump_finished(&x->down)) {
        http_free(s, false);
        return;
    }
    conn_deadline(&s->c, ev_now(gw.loop) + s->c.cl->idle_timeout);
    http_update_interest(s);
}
