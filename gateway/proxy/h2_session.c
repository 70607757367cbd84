/* HTTP/2 from clients: the connection, its nghttp2 session, limits and
 * floods, GOAWAY. Streams live in h2_stream.c. */
#include "gateway/proxy/h2_session.h"
#include "gateway/proxy/h2_upstream.h"
#include "base/alloc.h"
#include "base/buffer.h"
#include "base/counters.h"
#include "base/log.h"

#include <string.h>

/* Frames that do nothing useful (SETTINGS, PING, PRIORITY, empty DATA,
 * invalid frames) a connection may send: a burst, then so many a second.
 * A client resetting streams (Rapid Reset, CVE-2023-44487) likewise. */
#define GLITCH_BURST 1000
#define GLITCH_RATE 100
#define RESET_BURST 200
#define RESET_RATE 33
/* nghttp2's own limits, a little above ours so that ours speak first. */
#define NG_RESET_BURST (RESET_BURST + 20)
#define NG_MAX_CONTINUATIONS 8
/* After an error GOAWAY, how long the client has to take it. */
#define CLOSE_GRACE 2.0

static struct pool conn_pool = POOL_INIT(struct h2_conn, 256);
static struct dlist conns = {&conns, &conns};
static struct dlist flushq = {&flushq, &flushq};
static ev_prepare flush_w;
static nghttp2_session_callbacks *callbacks;
static nghttp2_option *options;
static struct log_limit flood_log;

static void conn_free(struct h2_conn *h);

/* ---- output: frames gathered in ob, written when the socket takes them ---- */

static ssize_t on_send(nghttp2_session *ng, const uint8_t *data, size_t len, int flags,
                       void *user)
{
    (void)ng, (void)flags;
    struct h2_conn *h = user;
    if (!h->ob)
        h->ob = buf_get();
    if (buf_room(h->ob) == 0 && h->ob->head > 0)
        buf_compact(h->ob);
    size_t n = MIN(len, buf_room(h->ob));
    if (n == 0)
        return NGHTTP2_ERR_WOULDBLOCK;
    memcpy(buf_wpos(h->ob), data, n);
    h->ob->tail += (uint32_t)n;
    return (ssize_t)n;
}

static bool ob_pending(const struct h2_conn *h) { return h->ob && buf_len(h->ob) > 0; }

/* Writes what ob holds; false when the socket is full or failed. */
static bool write_out(struct h2_conn *h)
{
    while (ob_pending(h)) {
        ssize_t w = sk_write(&h->c.sk, buf_rpos(h->ob), buf_len(h->ob));
        if (w == EG_AGAIN)
            return false;
        if (w == EG_ERR) {
            h->dead = true;
            return false;
        }
        h->ob->head += (uint32_t)w;
    }
    if (h->ob) {
        buf_put(h->ob);
        h->ob = NULL;
    }
    return true;
}

/* Sends what nghttp2 has for the client until the socket is full. After an
 * error GOAWAY written by hand (raw_goaway) nghttp2 is not asked again. */
static void flush(struct h2_conn *h)
{
    while (write_out(h) && !h->raw && nghttp2_session_want_write(h->ng)) {
        int rv = nghttp2_session_send(h->ng);
        if (rv != 0) {
            log_debug("h2: send failed: %s", nghttp2_strerror(rv));
            h->dead = true;
            return;
        }
        if (!ob_pending(h))
            return;
    }
}

static bool finished(struct h2_conn *h)
{
    if (h->dead)
        return true;
    if (ob_pending(h))
        return false;
    if (h->raw)
        return true;
    return !nghttp2_session_want_read(h->ng) && !nghttp2_session_want_write(h->ng);
}

/* After a round of work: the connection ends, or waits for what it needs. */
static void settle(struct h2_conn *h)
{
    if (finished(h)) {
        conn_free(h);
        return;
    }
    bool room = !h->ob || buf_room(h->ob) > 0 || h->ob->head > 0;
    bool rd = !h->cl_eof && h->state != H2C_CLOSING && room && nghttp2_session_want_read(h->ng);
    sk_want(gw.loop, &h->c.sk, rd, ob_pending(h));
}

/* Connections with frames to send are flushed once per loop round, just
 * before the loop waits: the answers of many streams go out in one write.
 * Flushing the connections to clients and those to servers (h2_upstream.c)
 * feeds each other (windows, request bodies): until neither has more. */
static void on_prepare(struct ev_loop *loop, ev_prepare *w, int revents)
{
    (void)loop, (void)w, (void)revents;
    do {
        while (!dlist_empty(&flushq)) {
            struct h2_conn *h = container_of(flushq.next, struct h2_conn, flush_link);
            dlist_del(&h->flush_link);
            h->depth++;
            flush(h);
            h->depth--;
            settle(h);
        }
    } while (h2_up_flush_pending() || !dlist_empty(&flushq));
}

void h2_enter(struct h2_conn *h) { h->depth++; }

void h2_leave(struct h2_conn *h)
{
    if (--h->depth > 0)
        return;
    if (h->dead) {
        conn_free(h);
        return;
    }
    if (dlist_empty(&h->flush_link))
        dlist_add_tail(&flushq, &h->flush_link);
}

/* ---- errors, limits, floods ---- */

/* An error GOAWAY written by hand, for when nghttp2 itself gave up on the
 * session (a bad preface, a flood it detected). */
static void raw_goaway(struct h2_conn *h, uint32_t code)
{
    uint32_t last = (uint32_t)nghttp2_session_get_last_proc_stream_id(h->ng);
    unsigned char f[17] = {0, 0, 8, NGHTTP2_GOAWAY, 0, 0, 0, 0, 0,
                           (unsigned char)(last >> 24) & 0x7f, (unsigned char)(last >> 16),
                           (unsigned char)(last >> 8), (unsigned char)last,
                           (unsigned char)(code >> 24), (unsigned char)(code >> 16),
                           (unsigned char)(code >> 8), (unsigned char)code};
    if (!h->ob)
        h->ob = buf_get();
    if (buf_room(h->ob) < sizeof(f))
        return; /* frames are pending already: closing says enough */
    memcpy(buf_wpos(h->ob), f, sizeof(f));
    h->ob->tail += sizeof(f);
    counters->h2_goaway_error_total++;
}

static void closing(struct h2_conn *h)
{
    conn_deadline(&h->c, ev_now(gw.loop) + CLOSE_GRACE);
}

void h2_terminate(struct h2_conn *h, uint32_t code)
{
    if (h->state == H2C_CLOSING)
        return;
    if (nghttp2_session_terminate_session(h->ng, code) != 0) {
        h->dead = true;
        return;
    }
    /* nghttp2 sends the GOAWAY and then wants nothing more. */
    h->state = H2C_CLOSING;
    closing(h);
}

/* nghttp2 refused the input: the session is over. */
static void input_failed(struct h2_conn *h, int rv)
{
    uint32_t code = NGHTTP2_PROTOCOL_ERROR;
    if (rv == NGHTTP2_ERR_FLOODED || rv == NGHTTP2_ERR_TOO_MANY_CONTINUATIONS) {
        counters->h2_floods_total++;
        log_limited(&flood_log, 10, LOG_WARN, "h2: %s from a client of %s: closing",
                    nghttp2_strerror(rv), h->c.cl->name);
        code = NGHTTP2_ENHANCE_YOUR_CALM;
    } else if (rv != NGHTTP2_ERR_BAD_CLIENT_MAGIC) {
        code = rv == NGHTTP2_ERR_NOMEM ? NGHTTP2_INTERNAL_ERROR : NGHTTP2_PROTOCOL_ERROR;
    }
    log_debug("h2: closing a connection of %s: %s", h->c.cl->name, nghttp2_strerror(rv));
    h->state = H2C_CLOSING;
    h->raw = true;
    raw_goaway(h, code);
    closing(h);
}

static void flood(struct h2_conn *h, const char *what)
{
    counters->h2_floods_total++;
    log_limited(&flood_log, 10, LOG_WARN, "h2: %s from a client of %s: closing", what,
                h->c.cl->name);
    h2_terminate(h, NGHTTP2_ENHANCE_YOUR_CALM);
}

/* Takes one token from a bucket of BURST refilled at RATE a second. */
static bool spend(double *tokens, ev_tstamp *at, double burst, double rate)
{
    ev_tstamp now = ev_now(gw.loop);
    *tokens = MIN(burst, *tokens + (now - *at) * rate);
    *at = now;
    *tokens -= 1;
    return *tokens >= 0;
}

void h2_glitch(struct h2_conn *h)
{
    if (!spend(&h->glitch_tokens, &h->glitch_at, GLITCH_BURST, GLITCH_RATE))
        flood(h, "too many frames doing nothing");
}

/* ---- nghttp2's callbacks ---- */

static struct h2_stream *stream_of(struct h2_conn *h, int32_t id)
{
    return id ? nghttp2_session_get_stream_user_data(h->ng, id) : NULL;
}

static int on_begin_headers(nghttp2_session *ng, const nghttp2_frame *f, void *user)
{
    struct h2_conn *h = user;
    if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    struct h2_stream *s = NULL;
    if (h->state == H2C_OPEN && !gw.draining && h->nstreams < H2_MAX_STREAMS)
        s = h2_stream_new(h, f->hd.stream_id);
    if (!s) {
        nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, f->hd.stream_id, NGHTTP2_REFUSED_STREAM);
        return 0;
    }
    nghttp2_session_set_stream_user_data(ng, f->hd.stream_id, s);
    return 0;
}

/* A HEADERS frame opening a stream whose identifier was used before: nghttp2
 * forgets closed streams and would ignore it quietly, but it is a
 * connection error (RFC 9113 5.1.1). Trailers go to a stream still open. */
static int on_begin_frame(nghttp2_session *ng, const nghttp2_frame_hd *hd, void *user)
{
    struct h2_conn *h = user;
    if (hd->type != NGHTTP2_HEADERS || hd->stream_id == 0)
        return 0;
    if (hd->stream_id > h->max_stream_id) {
        h->max_stream_id = hd->stream_id;
        return 0;
    }
    if (!nghttp2_session_find_stream(ng, hd->stream_id))
        h2_terminate(h, NGHTTP2_PROTOCOL_ERROR);
    return 0;
}

static int on_header(nghttp2_session *ng, const nghttp2_frame *f, nghttp2_rcbuf *name,
                     nghttp2_rcbuf *value, uint8_t flags, void *user)
{
    (void)ng, (void)flags;
    struct h2_stream *s = stream_of(user, f->hd.stream_id);
    return s ? h2_stream_header(s, f, name, value) : 0;
}

static int on_frame_recv(nghttp2_session *ng, const nghttp2_frame *f, void *user)
{
    (void)ng;
    struct h2_conn *h = user;
    struct h2_stream *s = stream_of(h, f->hd.stream_id);
    bool end = f->hd.flags & NGHTTP2_FLAG_END_STREAM;
    switch (f->hd.type) {
    case NGHTTP2_HEADERS:
        if (s)
            h2_stream_headers_done(s, f);
        break;
    case NGHTTP2_DATA:
        if (f->hd.length == 0 && !end)
            h2_glitch(h);
        break;
    case NGHTTP2_SETTINGS:
    case NGHTTP2_PING:
        if (!(f->hd.flags & NGHTTP2_FLAG_ACK))
            h2_glitch(h);
        return 0;
    case NGHTTP2_PRIORITY:
        h2_glitch(h);
        return 0;
    case NGHTTP2_RST_STREAM:
        counters->h2_resets_client_total++;
        if (!spend(&h->reset_tokens, &h->reset_at, RESET_BURST, RESET_RATE))
            flood(h, "too many stream resets (rapid reset)");
        return 0;
    default:
        return 0;
    }
    s = stream_of(h, f->hd.stream_id); /* a header error may have ended it */
    if (s && end)
        h2_stream_end(s);
    return 0;
}

static int on_data(nghttp2_session *ng, uint8_t flags, int32_t id, const uint8_t *data,
                   size_t len, void *user)
{
    (void)flags;
    struct h2_stream *s = stream_of(user, id);
    if (s)
        h2_stream_data(s, data, len);
    else
        nghttp2_session_consume(ng, id, len); /* a stream we answered or refused */
    return 0;
}

static int on_stream_close(nghttp2_session *ng, int32_t id, uint32_t code, void *user)
{
    (void)ng;
    struct h2_stream *s = stream_of(user, id);
    if (s)
        h2_stream_free(s, code == NGHTTP2_NO_ERROR ? "client gone" : "reset");
    return 0;
}

static int on_frame_send(nghttp2_session *ng, const nghttp2_frame *f, void *user)
{
    (void)ng;
    struct h2_conn *h = user;
    switch (f->hd.type) {
    case NGHTTP2_RST_STREAM:
        switch (f->rst_stream.error_code) {
        case NGHTTP2_NO_ERROR: break;
        case NGHTTP2_REFUSED_STREAM: counters->h2_resets_refused_total++; break;
        case NGHTTP2_INTERNAL_ERROR: counters->h2_resets_internal_total++; break;
        case NGHTTP2_CANCEL: counters->h2_resets_cancel_total++; break;
        default: counters->h2_resets_protocol_total++; break;
        }
        return 0;
    case NGHTTP2_GOAWAY:
        if (f->goaway.error_code == NGHTTP2_NO_ERROR)
            counters->h2_goaway_graceful_total++;
        else
            counters->h2_goaway_error_total++;
        return 0;
    case NGHTTP2_DATA:
    case NGHTTP2_HEADERS:
        if (f->hd.flags & NGHTTP2_FLAG_END_STREAM) {
            struct h2_stream *s = stream_of(h, f->hd.stream_id);
            if (s)
                h2_stream_sent_end(s);
        }
        return 0;
    default:
        return 0;
    }
}

static int on_invalid_frame(nghttp2_session *ng, const nghttp2_frame *f, int err, void *user)
{
    (void)ng, (void)f;
    log_debug("h2: invalid frame: %s", nghttp2_strerror(err));
    h2_glitch(user);
    return 0;
}

/* Limits that nghttp2 enforces for us: those of RFC 9113 (frame sizes,
 * windows, stream states, header validation), floods of SETTINGS and PING
 * acknowledgements the client does not read, CONTINUATION floods, resets. */
static void init_nghttp2(void)
{
    nghttp2_session_callbacks_new(&callbacks);
    nghttp2_session_callbacks_set_send_callback(callbacks, on_send);
    nghttp2_session_callbacks_set_on_begin_frame_callback(callbacks, on_begin_frame);
    nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback2(callbacks, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, on_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, on_stream_close);
    nghttp2_session_callbacks_set_on_frame_send_callback(callbacks, on_frame_send);
    nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(callbacks, on_invalid_frame);
    nghttp2_option_new(&options);
    nghttp2_option_set_no_auto_window_update(options, 1);
    nghttp2_option_set_stream_reset_rate_limit(options, NG_RESET_BURST, RESET_RATE);
    nghttp2_option_set_max_continuations(options, NG_MAX_CONTINUATIONS);
    nghttp2_option_set_no_closed_streams(options, 1);
    ev_prepare_init(&flush_w, on_prepare);
    ev_prepare_start(gw.loop, &flush_w);
    ev_unref(gw.loop); /* the flusher alone must not keep the loop running */
}

/* ---- the connection ---- */

static void on_init(struct conn *c)
{
    struct h2_conn *h = container_of(c, struct h2_conn, c);
    dlist_init(&h->streams);
    dlist_init(&h->flush_link);
    dlist_add(&conns, &h->link);
}

static void conn_free(struct h2_conn *h)
{
    h->dead = true;
    while (!dlist_empty(&h->streams))
        h2_stream_free(container_of(h->streams.next, struct h2_stream, link),
                       h->cl_eof ? "client gone" : "cut");
    nghttp2_session_del(h->ng);
    buf_put(h->ob);
    dlist_del(&h->link);
    dlist_del(&h->flush_link);
    conn_done(&h->c);
    pool_put(&conn_pool, h);
}

static void read_client(struct h2_conn *h)
{
    char in[16384];
    for (int i = 0; i < 4 && h->state != H2C_CLOSING && !h->dead; i++) {
        ssize_t n = sk_read(&h->c.sk, in, sizeof(in));
        if (n == EG_AGAIN)
            return;
        if (n <= 0) {
            h->cl_eof = true;
            h->dead = true;
            return;
        }
        counters->bytes_in_total += (uint64_t)n;
        ssize_t rv = nghttp2_session_mem_recv(h->ng, (const uint8_t *)in, (size_t)n);
        if (rv < 0) {
            input_failed(h, (int)rv);
            return;
        }
        if ((size_t)n < sizeof(in))
            return;
    }
}

static void on_client_io(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    struct h2_conn *h = container_of(w->data, struct h2_conn, c);
    bool rd, wr;
    sk_ready(&h->c.sk, revents, &rd, &wr);
    h2_enter(h);
    if (wr)
        flush(h);
    if (rd && !h->dead)
        read_client(h);
    h2_leave(h);
}

/* A graceful GOAWAY: the streams the client opened so far are served, no new
 * one is, the connection closes after the last. */
static void goaway(struct h2_conn *h)
{
    if (h->state != H2C_OPEN)
        return;
    h->state = H2C_GOAWAY;
    nghttp2_submit_goaway(h->ng, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(h->ng),
                          NGHTTP2_NO_ERROR, NULL, 0);
}

static void on_timeout(struct conn *c)
{
    struct h2_conn *h = container_of(c, struct h2_conn, c);
    h2_enter(h);
    if (h->state == H2C_CLOSING || (h->state == H2C_GOAWAY && h->nstreams == 0)) {
        h->dead = true; /* the client did not take our GOAWAY in time */
    } else if (h->nstreams == 0) {
        goaway(h); /* idle */
        closing(h);
    }
    h2_leave(h);
}

static void on_established(struct conn *c)
{
    struct h2_conn *h = container_of(c, struct h2_conn, c);
    if (!callbacks)
        init_nghttp2();
    counters->h2_connections_total++;
    h->glitch_tokens = GLITCH_BURST;
    h->reset_tokens = RESET_BURST;
    h->glitch_at = h->reset_at = ev_now(gw.loop);
    if (nghttp2_session_server_new2(&h->ng, callbacks, h, options) != 0) {
        log_warn("h2: cannot create a session");
        h->ng = NULL;
        h2_enter(h);
        h->dead = true;
        h2_leave(h);
        return;
    }
    uint32_t max_list = h->c.cl->max_header_size + 1024;
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, H2_MAX_STREAMS},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, H2_STREAM_WINDOW},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, max_list},
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
        {NGHTTP2_SETTINGS_NO_RFC7540_PRIORITIES, 1},
    };
    nghttp2_submit_settings(h->ng, NGHTTP2_FLAG_NONE, iv, ARRAY_LEN(iv));
    nghttp2_session_set_local_window_size(h->ng, NGHTTP2_FLAG_NONE, 0, H2_CONN_WINDOW);
    conn_deadline(c, ev_now(gw.loop) + c->cl->idle_timeout);
    h2_enter(h);
    if (gw.draining)
        goaway(h);
    /* The client's first frames may be in the socket (or in TLS) already. */
    read_client(h);
    h2_leave(h);
}

static void on_setup_failed(struct conn *c, bool abort, const char *why)
{
    (void)c, (void)abort, (void)why; /* never: h2 connections come established */
}

const struct conn_ops h2_conn_ops = {
    .pool = &conn_pool, .init = on_init, .io = on_client_io, .timeout = on_timeout,
    .established = on_established, .failed = on_setup_failed,
};

void h2_goaway_all(void)
{
    for (struct dlist *n = conns.next, *next; n != &conns; n = next) {
        next = n->next;
        struct h2_conn *h = container_of(n, struct h2_conn, link);
        h2_enter(h);
        goaway(h);
        h2_leave(h);
    }
}
