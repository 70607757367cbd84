/* HTTP/2 towards servers: shared connections and the streams on them.
 *
 * As on the client side (h2_session.c), frames are gathered in `ob` and
 * written when the socket takes them; entry points run between enter() and
 * leave(), and a connection is freed only at the outermost level. Streams
 * are found through nghttp2's stream user data, never through pointers
 * nghttp2 keeps, so that an owner may let go of its stream from within any
 * callback. */
#include "gateway/proxy/h2_upstream.h"
#include "base/alloc.h"
#include "base/buffer.h"
#include "base/counters.h"
#include "base/log.h"
#include "base/tls.h"
#include "gateway/balance/generation.h"
#include "healthcheck/datacenter.h"

#include <string.h>

#define MAX_STREAMS 100             /* per connection, whatever the server allows */
#define IDLE_TIMEOUT 10.0           /* a connection without streams closes after it */
#define CONN_WINDOW (1 << 20)
#define MAX_FIELDS 256              /* of one response head */

struct h2_up {
    struct upstream *conn;          /* the connection (its socket), owned */
    struct srv *srv;
    nghttp2_session *ng;
    struct buf *ob;                 /* frames for the server, while any are pending */
    struct dlist link;              /* all connections */
    struct dlist flush_link;
    struct dlist streams;           /* struct upstream.mux_link */
    int nstreams;
    int depth;
    bool dead;                      /* freed at the outermost level */
    bool closing;                   /* no new stream: GOAWAY received, server down */
    ev_tstamp idle_since;
};

static struct pool up_pool = POOL_INIT(struct h2_up, 64);
static struct pool stream_pool = POOL_INIT(struct upstream, 1024);
static struct dlist ups = {&ups, &ups};
static struct dlist flushq = {&flushq, &flushq};
static nghttp2_session_callbacks *callbacks;
static nghttp2_option *options;
static ev_timer purge_tm;

/* The header block being received: its frames are never interleaved with
 * another's (RFC 9113 4.3), so one set of fields serves every connection. */
static nghttp2_rcbuf *fields[2 * MAX_FIELDS];
static int nfields;

static void up_free(struct h2_up *m);

static void queue(struct h2_up *m)
{
    if (!m->dead && dlist_empty(&m->flush_link))
        dlist_add_tail(&flushq, &m->flush_link);
}

static void enter(struct h2_up *m) { m->depth++; }

static void leave(struct h2_up *m)
{
    if (--m->depth > 0)
        return;
    if (m->dead)
        up_free(m);
    else
        queue(m);
}

/* ---- output ---- */

static ssize_t on_send(nghttp2_session *ng, const uint8_t *data, size_t len, int flags,
                       void *user)
{
    (void)ng, (void)flags;
    struct h2_up *m = user;
    if (!m->ob)
        m->ob = buf_get();
    if (buf_room(m->ob) == 0 && m->ob->head > 0)
        buf_compact(m->ob);
    size_t n = MIN(len, buf_room(m->ob));
    if (n == 0)
        return NGHTTP2_ERR_WOULDBLOCK;
    memcpy(buf_wpos(m->ob), data, n);
    m->ob->tail += (uint32_t)n;
    return (ssize_t)n;
}

static bool ob_pending(const struct h2_up *m) { return m->ob && buf_len(m->ob) > 0; }

static bool write_out(struct h2_up *m)
{
    while (ob_pending(m)) {
        ssize_t w = sk_write(&m->conn->sk, buf_rpos(m->ob), buf_len(m->ob));
        if (w == EG_AGAIN)
            return false;
        if (w == EG_ERR) {
            m->dead = true;
            return false;
        }
        m->ob->head += (uint32_t)w;
        m->srv->st->bytes_out += (uint64_t)w;
        counters->bytes_out_total += (uint64_t)w;
    }
    buf_put(m->ob);
    m->ob = NULL;
    return true;
}

static void flush(struct h2_up *m)
{
    while (write_out(m) && nghttp2_session_want_write(m->ng)) {
        if (nghttp2_session_send(m->ng) != 0) {
            m->dead = true;
            return;
        }
        if (!ob_pending(m))
            return;
    }
}

static bool finished(struct h2_up *m)
{
    if (m->dead)
        return true;
    if (ob_pending(m))
        return false;
    if (m->closing && m->nstreams == 0)
        return true;
    return !nghttp2_session_want_read(m->ng) && !nghttp2_session_want_write(m->ng);
}

static void settle(struct h2_up *m)
{
    if (finished(m)) {
        enter(m);
        m->dead = true;
        leave(m);
        return;
    }
    sk_want(gw.loop, &m->conn->sk, nghttp2_session_want_read(m->ng), ob_pending(m));
}

bool h2_up_flush_pending(void)
{
    bool any = false;
    while (!dlist_empty(&flushq)) {
        struct h2_up *m = container_of(flushq.next, struct h2_up, flush_link);
        dlist_del(&m->flush_link);
        any = true;
        enter(m);
        flush(m);
        m->depth--;
        if (m->dead)
            up_free(m);
        else
            settle(m);
    }
    return any;
}

/* ---- streams ---- */

static struct upstream *stream_new(struct h2_up *m)
{
    struct upstream *v = pool_get(&stream_pool);
    memset(v, 0, sizeof(*v));
    v->sk.fd = -1;
    v->srv = m->srv;
    srv_ref(v->srv);
    v->mux = m;
    v->requests = 1; /* never taken for a stale keep-alive connection */
    v->connected = true;
    v->opened = ev_now(gw.loop);
    dlist_init(&v->link);
    dlist_init(&v->lru);
    dlist_add_tail(&m->streams, &v->mux_link);
    m->nstreams++;
    return v;
}

/* V leaves its connection (which may go on). */
static void detach(struct h2_up *m, struct upstream *v)
{
    if (v->sid > 0) {
        nghttp2_session_set_stream_user_data(m->ng, v->sid, NULL);
        if (v->unconsumed)
            nghttp2_session_consume(m->ng, v->sid, v->unconsumed);
    }
    v->unconsumed = 0;
    v->sid = -1;
    dlist_del(&v->mux_link);
    if (--m->nstreams == 0)
        m->idle_since = ev_now(gw.loop);
}

static struct upstream *stream_of(struct h2_up *m, int32_t id)
{
    return nghttp2_session_get_stream_user_data(m->ng, id);
}

static int limit(struct h2_up *m)
{
    uint32_t peer = nghttp2_session_get_remote_settings(m->ng,
                                                        NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
    return (int)MIN((uint32_t)MAX_STREAMS, peer);
}

struct upstream *h2_up_take(struct srv *s)
{
    for (struct dlist *n = ups.next; n != &ups; n = n->next) {
        struct h2_up *m = container_of(n, struct h2_up, link);
        if (m->srv == s && !m->dead && !m->closing && m->nstreams < limit(m))
            return stream_new(m);
    }
    return NULL;
}

static ssize_t read_body(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t len,
                         uint32_t *flags, nghttp2_data_source *src, void *user)
{
    (void)src, (void)user;
    struct upstream *v = nghttp2_session_get_stream_user_data(ng, id);
    if (!v)
        return NGHTTP2_ERR_DEFERRED; /* let go of: its reset is on its way */
    bool eof = false;
    size_t n = v->ops->body(v->owner, buf, len, &eof);
    if (nghttp2_session_get_stream_user_data(ng, id) != v)
        return NGHTTP2_ERR_DEFERRED;
    if (!eof)
        return n ? (ssize_t)n : NGHTTP2_ERR_DEFERRED;
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    nghttp2_nv nv[64];
    size_t nt = v->ops->trailers(v->owner, nv, ARRAY_LEN(nv));
    if (nt > 0 && nghttp2_submit_trailer(ng, id, nv, nt) == 0)
        *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
    return (ssize_t)n;
}

int h2_up_submit(struct upstream *v, const nghttp2_nv *nv, size_t n, bool body,
                 const struct h2_up_ops *ops, void *owner)
{
    struct h2_up *m = v->mux;
    if (v->sid != 0 || m->dead)
        return EG_ERR;
    v->ops = ops;
    v->owner = owner;
    nghttp2_data_provider prd = {.read_callback = read_body};
    int32_t sid = nghttp2_submit_request(m->ng, NULL, nv, n, body ? &prd : NULL, v);
    if (sid < 0) {
        log_debug("h2: cannot send a request to %s: %s", m->srv->name, nghttp2_strerror(sid));
        return EG_ERR;
    }
    v->sid = sid;
    counters->h2_upstream_streams_total++;
    queue(m);
    return EG_OK;
}

void h2_up_resume(struct upstream *v)
{
    if (v->sid <= 0)
        return;
    nghttp2_session_resume_data(v->mux->ng, v->sid);
    queue(v->mux);
}

void h2_up_consume(struct upstream *v, size_t n)
{
    n = MIN(n, (size_t)v->unconsumed);
    if (v->sid <= 0 || n == 0)
        return;
    v->unconsumed -= (uint32_t)n;
    nghttp2_session_consume(v->mux->ng, v->sid, n);
    queue(v->mux);
}

void h2_up_release(struct upstream *v, bool done)
{
    if (v->sid != -1) {
        struct h2_up *m = v->mux;
        if (v->sid > 0 && !done)
            nghttp2_submit_rst_stream(m->ng, NGHTTP2_FLAG_NONE, v->sid, NGHTTP2_CANCEL);
        detach(m, v);
        queue(m);
    }
    srv_unref(v->srv);
    pool_put(&stream_pool, v);
}

/* ---- nghttp2's callbacks ---- */

static int on_begin_headers(nghttp2_session *ng, const nghttp2_frame *f, void *user)
{
    (void)ng, (void)f, (void)user;
    nfields = 0;
    return 0;
}

static int on_header(nghttp2_session *ng, const nghttp2_frame *f, nghttp2_rcbuf *name,
                     nghttp2_rcbuf *value, uint8_t flags, void *user)
{
    (void)ng, (void)f, (void)flags, (void)user;
    if (nfields + 2 > (int)ARRAY_LEN(fields))
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* resets the stream */
    nghttp2_rcbuf_incref(name);
    nghttp2_rcbuf_incref(value);
    fields[nfields++] = name;
    fields[nfields++] = value;
    return 0;
}

static void drop_fields(void)
{
    for (int i = 0; i < nfields; i++)
        nghttp2_rcbuf_decref(fields[i]);
    nfields = 0;
}

/* A header block ended: a response head (it has :status) or trailers. */
static void headers(struct upstream *v, bool end)
{
    nghttp2_nv nv[MAX_FIELDS];
    size_t n = 0;
    bool head = false;
    for (int i = 0; i < nfields; i += 2) {
        nghttp2_vec k = nghttp2_rcbuf_get_buf(fields[i]), val = nghttp2_rcbuf_get_buf(fields[i + 1]);
        head = head || (k.len == 7 && memcmp(k.base, ":status", 7) == 0);
        nv[n++] = (nghttp2_nv){k.base, val.base, k.len, val.len, NGHTTP2_NV_FLAG_NONE};
    }
    if (head)
        v->ops->head(v->owner, nv, n, end);
    else
        v->ops->trailer(v->owner, nv, n);
}

static int on_frame_recv(nghttp2_session *ng, const nghttp2_frame *f, void *user)
{
    (void)ng;
    struct h2_up *m = user;
    struct upstream *v = f->hd.stream_id ? stream_of(m, f->hd.stream_id) : NULL;
    switch (f->hd.type) {
    case NGHTTP2_HEADERS:
        if (v)
            headers(v, f->hd.flags & NGHTTP2_FLAG_END_STREAM);
        drop_fields();
        break;
    case NGHTTP2_DATA:
        break;
    case NGHTTP2_GOAWAY:
        m->closing = true;
        return 0;
    default:
        return 0;
    }
    /* The owner may have let go of it meanwhile. */
    v = f->hd.stream_id ? stream_of(m, f->hd.stream_id) : NULL;
    if (v && (f->hd.flags & NGHTTP2_FLAG_END_STREAM))
        v->ops->end(v->owner);
    return 0;
}

static int on_data(nghttp2_session *ng, uint8_t flags, int32_t id, const uint8_t *data,
                   size_t len, void *user)
{
    (void)flags;
    struct upstream *v = stream_of(user, id);
    if (!v) {
        nghttp2_session_consume(ng, id, len);
        return 0;
    }
    v->unconsumed += (uint32_t)len;
    v->ops->data(v->owner, data, len);
    return 0;
}

static int on_stream_close(nghttp2_session *ng, int32_t id, uint32_t code, void *user)
{
    (void)ng;
    struct h2_up *m = user;
    struct upstream *v = stream_of(m, id);
    if (!v)
        return 0;
    const struct h2_up_ops *ops = v->ops;
    void *owner = v->owner;
    detach(m, v);
    ops->failed(owner, code ? code : NGHTTP2_INTERNAL_ERROR, code == NGHTTP2_REFUSED_STREAM);
    return 0;
}

static void init_nghttp2(void);

/* ---- connections ---- */

static void read_server(struct h2_up *m)
{
    char in[16384];
    for (int i = 0; i < 4 && !m->dead; i++) {
        ssize_t n = sk_read(&m->conn->sk, in, sizeof(in));
        if (n == EG_AGAIN)
            return;
        if (n <= 0) {
            m->dead = true;
            return;
        }
        m->srv->st->bytes_in += (uint64_t)n;
        ssize_t rv = nghttp2_session_mem_recv(m->ng, (const uint8_t *)in, (size_t)n);
        if (rv < 0) {
            log_warn("h2: bad frames from %s: %s", m->srv->name, nghttp2_strerror((int)rv));
            counters->invalid_responses_total++;
            m->dead = true;
            return;
        }
        if ((size_t)n < sizeof(in))
            return;
    }
}

static void on_io(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    struct h2_up *m = w->data;
    bool rd, wr;
    sk_ready(&m->conn->sk, revents, &rd, &wr);
    enter(m);
    if (wr)
        flush(m);
    if (rd && !m->dead)
        read_server(m);
    leave(m);
}

/* The streams still on a connection that ends fail: those that never
 * went out may go elsewhere as if refused. */
static void up_free(struct h2_up *m)
{
    m->dead = true;
    m->depth++;
    while (!dlist_empty(&m->streams)) {
        struct upstream *v = container_of(m->streams.next, struct upstream, mux_link);
        bool sent = v->sid > 0;
        const struct h2_up_ops *ops = v->ops;
        void *owner = v->owner;
        detach(m, v);
        if (ops)
            ops->failed(owner, NGHTTP2_CANCEL, !sent);
    }
    drop_fields();
    nghttp2_session_del(m->ng);
    buf_put(m->ob);
    dlist_del(&m->link);
    dlist_del(&m->flush_link);
    upstream_close(m->conn);
    pool_put(&up_pool, m);
}

struct upstream *h2_up_adopt(struct upstream *conn)
{
    if (conn->sk.ssl && !tls_alpn_h2(conn->sk.ssl)) {
        log_warn("h2: %s did not agree to HTTP/2 (ALPN)", conn->srv->name);
        return NULL;
    }
    if (!callbacks)
        init_nghttp2();
    struct h2_up *m = pool_get(&up_pool);
    memset(m, 0, sizeof(*m));
    if (nghttp2_session_client_new2(&m->ng, callbacks, m, options) != 0) {
        pool_put(&up_pool, m);
        return NULL;
    }
    m->conn = conn;
    m->srv = conn->srv;
    dlist_init(&m->streams);
    dlist_init(&m->flush_link);
    dlist_add(&ups, &m->link);
    m->idle_since = ev_now(gw.loop);
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 0},
        /* A response never needs more than the stream's one buffer. */
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, (uint32_t)buf_size()},
    };
    nghttp2_submit_settings(m->ng, NGHTTP2_FLAG_NONE, iv, ARRAY_LEN(iv));
    nghttp2_session_set_local_window_size(m->ng, NGHTTP2_FLAG_NONE, 0, CONN_WINDOW);
    ev_set_cb(&conn->sk.io, on_io);
    conn->sk.io.data = m;
    queue(m);
    return stream_new(m);
}

void h2_up_drain(struct srv *s)
{
    for (struct dlist *n = ups.next; n != &ups; n = n->next) {
        struct h2_up *m = container_of(n, struct h2_up, link);
        if (m->srv == s) {
            m->closing = true;
            queue(m);
        }
    }
}

static void on_purge(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)w, (void)revents;
    ev_tstamp now = ev_now(loop);
    for (struct dlist *n = ups.next; n != &ups; n = n->next) {
        struct h2_up *m = container_of(n, struct h2_up, link);
        if (m->nstreams == 0 && now - m->idle_since >= IDLE_TIMEOUT) {
            m->closing = true;
            queue(m);
        }
    }
}

static void init_nghttp2(void)
{
    nghttp2_session_callbacks_new(&callbacks);
    nghttp2_session_callbacks_set_send_callback(callbacks, on_send);
    nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback2(callbacks, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, on_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, on_stream_close);
    nghttp2_option_new(&options);
    nghttp2_option_set_no_auto_window_update(options, 1);
    nghttp2_option_set_max_continuations(options, 8);
    ev_timer_init(&purge_tm, on_purge, 1, 1);
    ev_timer_start(gw.loop, &purge_tm);
    ev_unref(gw.loop);
}
