/* HTTP/2 from clients: one stream, an HTTP/1.1 request for the attempt
 * engine.
 *
 * Its header fields are kept as references to nghttp2's buffers until the
 * HEADERS end; then the HTTP/1.1 head is built (proto/h2_translate.h),
 * parsed with the same parser and limits as an HTTP/1.1 request (400, 414,
 * 431 alike), completed with the forwarding headers (proto/forward.h) and
 * copied into the stream's buffer `rq`, where the body follows as it
 * arrives: [head][payload][end]. Chunked framing, when the length is not
 * known, is written as the bytes go out, one chunk for whatever payload is
 * waiting, so that tiny DATA frames cost no framing each; the end (the last
 * chunk and the trailers) is kept as bytes. While the request may be
 * replayed the bytes stay in `rq` after they went out; a body larger than
 * the replay limit is forgotten as it goes, and only then given back to the
 * client's window.
 *
 * The response is read into `ob`, its head parsed and submitted as HEADERS,
 * its body unframed in place (Content-Length, chunked, or up to the close)
 * and handed to nghttp2 by the data provider as the client's window allows.
 * Interim (1xx) heads are passed on; trailers follow the DATA.
 *
 * Towards a server marked h2 the stream goes out as a stream of a shared
 * connection (h2_upstream.h): its fields come from the head in `rq` (with
 * the forwarding headers), its body from the payload, its trailers from the
 * end; the response's fields, DATA and trailers come back as they are, the
 * DATA through `ob` and given back to the server's window as the client
 * takes it. It fails over only before the response's head. */
#include "base/alloc.h"
#include "base/buffer.h"
#include "base/counters.h"
#include "base/log.h"
#include "gateway/ops/access_log.h"
#include "gateway/proxy/http_common.h"
#include "gateway/proxy/h2_session.h"
#include "gateway/proxy/h2_upstream.h"
#include "gateway/proxy/upstream.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct pool stream_pool = POOL_INIT(struct h2_stream, 1024);
static struct pool fields_pool = POOL_INIT(struct h2_fields, 64);

/* Request heads are built and parsed here, response heads parsed again here
 * with all their fields: one at a time, nothing of it kept per stream. */
static char scratch[65535];
static struct http_hdr scratch_hdrs[HTTP_MAX_HDRS];
static char trailer_scratch[H2T_MAX_TRAILER];

static const struct http_limits resp_limits = {.max_line = 8192, .max_head = 65535,
                                               .max_headers = HTTP_MAX_HDRS};

/* Interim (1xx) responses passed on for one request, at most. */
#define MAX_INTERIM 8

static void stream_timeout(struct conn *c);
static const struct conn_ops stream_conn_ops = {.timeout = stream_timeout};
static const struct attempt_ops h2_attempt_ops;

static nghttp2_session *ng_of(const struct h2_stream *s) { return s->h->ng; }

/* ---- life ---- */

struct h2_stream *h2_stream_new(struct h2_conn *h, int32_t id)
{
    struct h2_stream *s = pool_get(&stream_pool);
    memset(s, 0, offsetof(struct h2_stream, pp));
    if (!conn_stream_init(&s->c, &h->c, &stream_conn_ops)) {
        conn_stream_done(&s->c);
        pool_put(&stream_pool, s);
        return NULL;
    }
    s->h = h;
    s->id = id;
    s->log_method[0] = '\0'; /* an error may be logged before the head is known */
    s->log_path_len = 0;
    attempt_init(&s->a, &h2_attempt_ops, &s->c, s->c.cl->send_proxy != 0, NULL);
    s->a.mux = true;
    s->a.sends_first = true; /* the request head */
    dlist_add_tail(&h->streams, &s->link);
    h->nstreams++;
    counters->h2_streams_active++;
    s->start = ev_now(gw.loop);
    conn_deadline(&s->c, s->start + s->c.cl->request_timeout);
    return s;
}

static void release_fields(struct h2_stream *s)
{
    if (!s->fields)
        return;
    for (int i = 0; i < s->fields->n; i++)
        nghttp2_rcbuf_decref(s->fields->rc[i]);
    pool_put(&fields_pool, s->fields);
    s->fields = NULL;
}

/* Gives N received bytes back to the client's windows. */
static void give_back(struct h2_stream *s, uint64_t n)
{
    n = MIN(n, s->unconsumed);
    if (n == 0 || s->h->dead)
        return;
    s->unconsumed -= n;
    s->h->unconsumed -= n;
    nghttp2_session_consume(ng_of(s), s->id, (size_t)n);
}

/* Counts and logs the request once (STATUS 0: it ended without one). */
static void account(struct h2_stream *s, int status, const char *end)
{
    if (s->accounted)
        return;
    s->accounted = true;
    struct stats_lsn_row *l = s->c.lst;
    double took = ev_now(gw.loop) - s->start;
    l->requests_total++;
    l->status[status >= 100 && status < 600 ? status / 100 : 0]++;
    stats_observe(&l->request, took);
    struct access_log_rec r = {.mode = "h2", .end = end, .method = s->log_method,
                               .path = s->log_path, .path_len = s->log_path_len,
                               .status = status, .bytes_in = s->tx_req,
                               .bytes_out = s->tx_resp, .duration_s = took};
    attempt_log(&s->a, &r);
}

void h2_stream_free(struct h2_stream *s, const char *why)
{
    struct h2_conn *h = s->h;
    if (s->req_state != H2R_HEADERS)
        account(s, 0, why);
    attempt_cancel(&s->a);
    release_fields(s);
    give_back(s, s->unconsumed);
    if (!h->dead)
        nghttp2_session_set_stream_user_data(h->ng, s->id, NULL);
    buf_put(s->rq);
    buf_put(s->ob);
    free(s->trailers);
    conn_stream_done(&s->c);
    dlist_del(&s->link);
    counters->h2_streams_active--;
    if (--h->nstreams == 0 && h->state == H2C_OPEN)
        conn_deadline(&h->c, ev_now(gw.loop) + h->c.cl->idle_timeout);
    pool_put(&stream_pool, s);
}

/* Resets the stream; nghttp2 closes it (and h2_stream_free runs) once the
 * RST_STREAM is on its way. */
static void reset(struct h2_stream *s, uint32_t code, const char *why)
{
    account(s, s->submitted ? s->status : 0, why);
    attempt_cancel(&s->a);
    s->answered = true;
    nghttp2_submit_rst_stream(ng_of(s), NGHTTP2_FLAG_NONE, s->id, code);
}

/* ---- our own responses ---- */

static const struct {
    int status;
    const char *body;
} err_bodies[] = {
    {400, "bad request\n"}, {405, "method not allowed\n"}, {408, "request timeout\n"},
    {413, "content too large\n"}, {414, "uri too long\n"},
    {431, "header fields too large\n"}, {501, "not implemented\n"}, {502, "bad gateway\n"},
    {503, "service unavailable\n"}, {504, "gateway timeout\n"},
    {505, "http version not supported\n"},
};

static const char *err_body(int status)
{
    for (size_t i = 0; i < ARRAY_LEN(err_bodies); i++)
        if (err_bodies[i].status == status)
            return err_bodies[i].body;
    return err_bodies[0].body;
}

static ssize_t read_err_body(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t len,
                             uint32_t *flags, nghttp2_data_source *src, void *user)
{
    (void)ng, (void)id, (void)user;
    struct h2_stream *s = src->ptr;
    const char *body = err_body(s->status);
    size_t left = strlen(body) - s->tx_resp, n = MIN(len, left);
    memcpy(buf, body + s->tx_resp, n);
    s->tx_resp += n;
    if (n == left)
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

#define NV(n, v, vl) {(uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, (vl), NGHTTP2_NV_FLAG_NONE}

/* Answers STATUS ourselves; a response already under way is cut. */
static void respond(struct h2_stream *s, int status)
{
    http_count_error(status);
    if (s->submitted) {
        reset(s, NGHTTP2_INTERNAL_ERROR, "cut");
        return;
    }
    bool maybe = s->reached && (status == 502 || status == 504);
    bool pinned = status == 503 && attempt_pinned_down(&s->a);
    attempt_cancel(&s->a);
    account(s, status, "error");
    s->answered = true;
    s->status = (uint16_t)status;
    s->tx_resp = 0;
    buf_put(s->rq);
    s->rq = NULL;
    give_back(s, s->unconsumed);
    char code[8], len[8];
    snprintf(code, sizeof(code), "%03d", status % 1000);
    int ll = snprintf(len, sizeof(len), "%zu", strlen(err_body(status)));
    nghttp2_nv nv[6] = {
        NV(":status", code, 3), NV("content-type", "text/plain", 10),
        NV("cache-control", "no-store", 8), NV("content-length", len, (size_t)ll),
    };
    size_t n = 4;
    if (status == 503)
        nv[n++] = (nghttp2_nv)NV("retry-after", "1", 1);
    /* A request that reached a server and cannot be tried again may have
     * been processed there (see http_errors.c). */
    if (maybe)
        nv[n++] = (nghttp2_nv)NV("edgegate-processed", "unknown", 7);
    else if (pinned)
        nv[n++] = (nghttp2_nv)NV("edgegate-cause", "session datacenter down", 23);
    nghttp2_data_provider prd = {.source.ptr = s, .read_callback = read_err_body};
    nghttp2_submit_response(ng_of(s), s->id, nv, n, &prd);
    conn_deadline(&s->c, ev_now(gw.loop) + s->c.cl->idle_timeout);
}

/* ---- the request's head ---- */

static uint32_t header_list_limit(const struct h2_stream *s)
{
    return s->c.cl->max_header_size + 1024; /* as announced in SETTINGS */
}

static bool append(struct h2_stream *s, const void *p, size_t n);

/* A trailer field of the request: in the chunked body's trailer section
 * (a request framed by Content-Length has none in HTTP/1.1). */
static void request_trailer(struct h2_stream *s, nghttp2_vec name, nghttp2_vec value)
{
    if (!s->rq || !s->chunked || s->answered || s->hdr_bytes > 2 * header_list_limit(s) ||
        !h2t_trailer_allowed((const char *)name.base, name.len))
        return;
    if (!s->fin) {
        s->fin = true;
        if (!append(s, "0\r\n", 3))
            return;
    }
    size_t at = s->fin_len;
    if (!append(s, name.base, name.len) || !append(s, ": ", 2) ||
        !append(s, value.base, value.len) || !append(s, "\r\n", 2))
        s->fin_len = (uint32_t)at; /* dropped whole */
}

int h2_stream_header(struct h2_stream *s, const nghttp2_frame *f, nghttp2_rcbuf *name,
                     nghttp2_rcbuf *value)
{
    nghttp2_vec n = nghttp2_rcbuf_get_buf(name), v = nghttp2_rcbuf_get_buf(value);
    s->hdr_bytes += (uint32_t)(n.len + v.len + 32);
    if (f->headers.cat == NGHTTP2_HCAT_HEADERS) {
        request_trailer(s, n, v);
        return 0;
    }
    if (s->too_large)
        return 0;
    if (s->hdr_bytes > header_list_limit(s) ||
        (s->fields && s->fields->n >= (int)ARRAY_LEN(s->fields->rc))) {
        s->too_large = true;
        release_fields(s);
        return 0;
    }
    if (!s->fields) {
        s->fields = pool_get(&fields_pool);
        s->fields->n = 0;
    }
    nghttp2_rcbuf_incref(name);
    nghttp2_rcbuf_incref(value);
    s->fields->rc[s->fields->n++] = name;
    s->fields->rc[s->fields->n++] = value;
    return 0;
}

/* Where the session key is in the request M (head in scratch). */
static const char *find_key(struct h2_stream *s, const struct http_msg *m, size_t *n)
{
    const struct conf_listener *cl = s->c.cl;
    const char *v = NULL;
    *n = 0;
    switch (cl->sess) {
    case SESS_NONE:
        break;
    case SESS_HEADER:
        if (m->sess_hdr >= 0) {
            v = scratch + m->hdrs[m->sess_hdr].val;
            *n = m->hdrs[m->sess_hdr].val_len;
        }
        break;
    case SESS_COOKIE:
        http_find_cookie(m, scratch, cl->sess_name, cl->sess_name_len, &v, n);
        break;
    case SESS_SNI:
        v = conn_sni(&s->h->c);
        *n = v ? strlen(v) : 0;
        break;
    case SESS_CLIENT_IP:
        v = s->ip;
        *n = strlen(v);
        break;
    }
    return v;
}

/* False (after answering 400) when the key is bad. */
static bool extract_key(struct h2_stream *s, const struct http_msg *m)
{
    size_t n;
    const char *v = find_key(s, m, &n);
    if (!v || n == 0)
        return true;
    if (s->c.cl->sess != SESS_CLIENT_IP && !affinity_key_valid(v, n)) {
        counters->bad_session_keys_total++;
        respond(s, 400);
        return false;
    }
    memcpy(s->key, v, n);
    s->a.key = s->key;
    s->a.keylen = (uint16_t)n;
    return true;
}

static void keep_for_log(struct h2_stream *s, const struct http_msg *m)
{
    size_t ml = MIN((size_t)m->method_len, sizeof(s->log_method) - 1);
    memcpy(s->log_method, scratch, ml);
    s->log_method[ml] = '\0';
    s->log_path_len = (uint16_t)MIN((size_t)m->target_len, sizeof(s->log_path));
    memcpy(s->log_path, scratch + m->target, s->log_path_len);
}

/* The head as the server gets it (with the forwarding headers), in rq. */
static bool store_head(struct h2_stream *s, struct http_msg *m)
{
    struct fwd fwd;
    struct iovec iov[HTTP_MAX_HDRS + 8];
    fwd_prepare(&fwd, m, scratch, http_fwd_opts(s->c.cl), s->ip, s->c.tls);
    int n = fwd_head(&fwd, m, scratch, iov, 0);
    s->rq = buf_get();
    for (int i = 0; i < n; i++)
        if (!append(s, iov[i].iov_base, iov[i].iov_len))
            return false;
    s->head_len = s->pay_len;
    s->pay_len = 0;
    return true;
}

/* The HEADERS of a request ended: its head is built and checked, and the
 * engine takes it. BODY: DATA follows. */
static void start_request(struct h2_stream *s, bool body)
{
    struct h2t_field f[H2_MAX_FIELDS];
    size_t nf = 0;
    for (int i = 0; s->fields && i < s->fields->n; i += 2) {
        nghttp2_vec n = nghttp2_rcbuf_get_buf(s->fields->rc[i]);
        nghttp2_vec v = nghttp2_rcbuf_get_buf(s->fields->rc[i + 1]);
        f[nf++] = (struct h2t_field){(const char *)n.base, (const char *)v.base,
                                     (uint32_t)n.len, (uint32_t)v.len};
        /* HTTP/1.1 servers do without it, HTTP/2 ones (gRPC) may want it. */
        if (n.len == 2 && memcmp(n.base, "te", 2) == 0)
            s->te_trailers = true;
    }
    struct h2t_req_info info;
    int len = h2t_request_head(f, nf, body, scratch, sizeof(scratch), &info);
    release_fields(s);
    if (len <= 0) {
        log_debug("h2: bad request from %s: %s", s->c.cl->name, len ? info.err : "too large");
        respond(s, len ? 400 : 431);
        return;
    }
    struct http_limits lim;
    http_limits_of(s->c.cl, &lim);
    struct http_msg m;
    http_msg_init(&m, false, scratch_hdrs, HTTP_MAX_HDRS);
    int rc = http_parse(&m, scratch, (size_t)len, &lim);
    if (rc != EG_OK) {
        log_debug("h2: bad request from %s: %s", s->c.cl->name, m.err ? m.err : "incomplete");
        respond(s, rc == EG_ERR ? m.err_status : 400);
        return;
    }
    s->method = m.method;
    if (access_log_format != ACCESS_LOG_OFF)
        keep_for_log(s, &m);
    if (m.method == HTTP_CONNECT) {
        respond(s, 405);
        return;
    }
    s->idempotent = http_method_idempotent(m.method) || (m.flags & HF_IDEMPOTENCY);
    s->chunked = info.chunked;
    if (!extract_key(s, &m))
        return;
    if (!store_head(s, &m)) {
        respond(s, 431);
        return;
    }
    if (!body) {
        s->req_state = H2R_DONE;
        s->fin = true;
    }
    attempt_start(&s->a);
}

void h2_stream_headers_done(struct h2_stream *s, const nghttp2_frame *f)
{
    if (f->headers.cat != NGHTTP2_HCAT_REQUEST || s->req_state != H2R_HEADERS)
        return;
    s->req_state = H2R_BODY;
    s->body_start = ev_now(gw.loop);
    counters->requests_total++;
    counters->h2_requests_total++;
    conn_peer_ip(&s->c, s->ip);
    if (s->too_large) {
        respond(s, 431);
        return;
    }
    start_request(s, !(f->hd.flags & NGHTTP2_FLAG_END_STREAM));
}

/* ---- the request towards the server ---- */

/* Appends to rq, growing it: what it holds is bounded by the stream's
 * window (request bytes are given back only once they left it). */
static bool append(struct h2_stream *s, const void *p, size_t n)
{
    struct buf *b = s->rq;
    size_t end = s->head_len + s->pay_len + s->fin_len;
    if (end + n > b->cap) {
        size_t cap = MAX((size_t)b->cap * 2, end + n);
        if (cap > 64 * 1024 * 1024)
            return false;
        b = s->rq = buf_grow(b, cap);
    }
    memcpy(b->data + end, p, n);
    b->tail = (uint32_t)(end + n);
    if (s->fin)
        s->fin_len += (uint32_t)n;
    else
        s->pay_len += (uint32_t)n;
    return true;
}

/* Whether O lacks part of the request. */
static bool unsent(const struct h2_stream *s, const struct h2_out *o)
{
    return s->rq && (o->head_sent < s->pp_len + s->head_len || o->body_sent < s->pay_len ||
                     o->chunk_open || o->fin_sent < s->fin_len);
}

static bool request_unsent(const struct h2_stream *s) { return unsent(s, &s->out); }

/* The next bytes of the outgoing request for O: [PROXY header] head, then
 * the body (raw, or one chunk for whatever payload waits), then the end. */
static int out_iov(struct h2_stream *s, struct h2_out *o, struct iovec *iov)
{
    char *base = s->rq->data;
    int n = 0;
    if (o->head_sent < s->pp_len + s->head_len) {
        if (o->head_sent < s->pp_len)
            n = iov_add(iov, n, s->pp + o->head_sent, s->pp_len - o->head_sent);
        uint32_t from = o->head_sent > s->pp_len ? o->head_sent - s->pp_len : 0;
        n = iov_add(iov, n, base + from, s->head_len - from);
    }
    char *pay = base + s->head_len;
    if (!s->chunked) {
        n = iov_add(iov, n, pay + o->body_sent, s->pay_len - o->body_sent);
    } else {
        if (!o->chunk_open && o->body_sent < s->pay_len) {
            o->chunk_open = true;
            o->chunk_len = s->pay_len - o->body_sent;
            o->chunk_hl = (uint8_t)h2t_chunk_head(o->chunk_hdr, o->chunk_len);
            o->chunk_pos = 0;
        }
        if (o->chunk_open) {
            uint32_t hl = o->chunk_hl, c = o->chunk_pos, dl = o->chunk_len;
            if (c < hl)
                n = iov_add(iov, n, o->chunk_hdr + c, hl - c);
            uint32_t pfrom = c > hl ? c - hl : 0;
            if (pfrom < dl)
                n = iov_add(iov, n, pay + o->body_sent + pfrom, dl - pfrom);
            uint32_t sfrom = c > hl + dl ? c - hl - dl : 0;
            return iov_add(iov, n, &"\r\n"[sfrom], 2 - sfrom);
        }
    }
    if (o->body_sent == s->pay_len)
        n = iov_add(iov, n, pay + s->pay_len + o->fin_sent, s->fin_len - o->fin_sent);
    return n;
}

/* Accounts for W bytes written for O, in the order out_iov gave them. */
static void advance(struct h2_stream *s, struct h2_out *o, size_t w)
{
    size_t take = MIN(w, (size_t)(s->pp_len + s->head_len - o->head_sent));
    o->head_sent += (uint32_t)take;
    w -= take;
    if (o->chunk_open) {
        uint32_t total = o->chunk_hl + o->chunk_len + 2;
        take = MIN(w, (size_t)(total - o->chunk_pos));
        o->chunk_pos += (uint32_t)take;
        w -= take;
        if (o->chunk_pos == total) {
            o->chunk_open = false;
            o->body_sent += o->chunk_len;
        }
        return;
    }
    if (!s->chunked) {
        take = MIN(w, (size_t)(s->pay_len - o->body_sent));
        o->body_sent += (uint32_t)take;
        w -= take;
    }
    o->fin_sent += (uint32_t)w;
}

/* Writes what can go to SK for O: the bytes written (possibly 0), or
 * EG_ERR. */
static ssize_t send_out(struct h2_stream *s, struct h2_out *o, struct sk *sk)
{
    struct iovec iov[6];
    ssize_t total = 0;
    while (unsent(s, o)) {
        int n = out_iov(s, o, iov);
        if (n == 0)
            break;
        ssize_t w = sk_writev(sk, iov, n);
        if (w == EG_AGAIN)
            break;
        if (w == EG_ERR)
            return EG_ERR;
        advance(s, o, (size_t)w);
        total += w;
    }
    return total;
}

/* Forgets what the server has: the request can no longer be replayed, and
 * the client may send more. */
static void drop_sent(struct h2_stream *s)
{
    uint32_t head = 0, pay = s->out.body_sent;
    if (s->a.hedge) /* it still writes them */
        return;
    if (s->head_len > 0) {
        if (s->out.head_sent < s->pp_len + s->head_len)
            return;
        head = s->head_len;
    }
    if (head == 0 && pay == 0)
        return;
    uint32_t rest = s->pay_len - pay + s->fin_len;
    memmove(s->rq->data, s->rq->data + head + pay, rest);
    if (head) {
        s->head_len = s->out.head_sent = 0;
        s->pp_len = 0;
    }
    s->pay_len -= pay;
    s->out.body_sent = 0;
    s->rq->tail = rest;
    s->replay_off = true;
    give_back(s, pay);
}

/* No more retaining: bytes go as soon as the server has them. */
static void stop_retaining(struct h2_stream *s)
{
    if (!s->rq)
        return;
    if (s->a.state == ATTEMPT_READY)
        drop_sent(s);
}

/* Whether request bytes the server has are kept for a replay: up to the
 * replay limit, and while the connection's window is not half held by
 * bytes waiting (else streams keeping theirs would starve one another:
 * nothing given back, no window for anyone). */
static bool retaining(const struct h2_stream *s)
{
    uint64_t limit = MIN((uint64_t)s->c.cl->replay_buffer, (uint64_t)H2_STREAM_WINDOW - 1);
    return !s->submitted && s->body_in <= limit && s->h->unconsumed <= H2_CONN_WINDOW / 2;
}

/* The connection's window is half held: every stream gives back what the
 * server has. */
static void relieve(struct h2_conn *h)
{
    for (struct dlist *n = h->streams.next; n != &h->streams; n = n->next) {
        struct h2_stream *s = container_of(n, struct h2_stream, link);
        if (s->rq && s->a.state == ATTEMPT_READY)
            drop_sent(s);
    }
}

static void touch(struct h2_stream *s)
{
    conn_deadline(&s->c, ev_now(gw.loop) + s->c.cl->idle_timeout);
}

/* The request moved: while its body arrives the client must keep sending
 * (body_min_rate, idle_timeout, as in http mode), else idle_timeout. */
static void request_moved(struct h2_stream *s)
{
    if (s->req_state == H2R_BODY)
        conn_deadline(&s->c, conn_body_deadline(&s->c, s->body_start, s->body_in));
    else
        touch(s);
}

/* The whole request is out: the server must answer now (or a hedge may
 * race it), counted from when it was first all out on this attempt. */
static void await_answer(struct h2_stream *s)
{
    if (s->req_state == H2R_DONE && !request_unsent(s) && s->resp_state < H2P_BODY &&
        s->a.answer_at == 0)
        attempt_await_answer(&s->a, s->idempotent);
}

/* Writes what can go to the server. False when the attempt moved on. */
static bool write_request(struct h2_stream *s)
{
    struct upstream *u = s->a.up;
    ssize_t w = send_out(s, &s->out, &u->sk);
    if (w == EG_ERR) {
        attempt_failed(&s->a, FAULT_RESET, 502);
        return false;
    }
    if (w > 0) {
        s->reached = true;
        s->tx_req += (uint64_t)w;
        u->srv->st->bytes_out += (uint64_t)w;
        counters->bytes_out_total += (uint64_t)w;
        if (!retaining(s))
            drop_sent(s);
    }
    await_answer(s);
    return true;
}

static bool via_mux(const struct h2_stream *s)
{
    return s->a.state == ATTEMPT_READY && s->a.up->mux;
}

static void server_interest(struct h2_stream *s)
{
    if (s->a.state != ATTEMPT_READY || s->a.up->mux)
        return;
    bool rd = s->resp_state != H2P_DONE &&
              (!s->ob || buf_room(s->ob) > 0 || s->ob->head > 0);
    sk_want(gw.loop, &s->a.up->sk, rd, request_unsent(s));
}

/* More of the request can go to the server. */
static void push_request(struct h2_stream *s)
{
    if (s->a.state != ATTEMPT_READY)
        return;
    if (s->a.up->mux)
        h2_up_resume(s->a.up);
    else if (write_request(s))
        server_interest(s);
}

void h2_stream_data(struct h2_stream *s, const uint8_t *data, size_t len)
{
    s->unconsumed += len;
    s->h->unconsumed += len;
    s->body_in += len;
    if (!s->rq || s->answered || s->fin) {
        give_back(s, len); /* answered already, or not wanted: dropped */
        return;
    }
    if (!append(s, data, len)) {
        respond(s, 413);
        return;
    }
    if (s->h->unconsumed > H2_CONN_WINDOW / 2)
        relieve(s->h);
    if (s->a.state != ATTEMPT_READY)
        return;
    request_moved(s);
    if (!retaining(s))
        stop_retaining(s);
    push_request(s);
}

void h2_stream_end(struct h2_stream *s)
{
    if (s->req_state == H2R_DONE)
        return;
    s->req_state = H2R_DONE;
    if (!s->rq || s->answered)
        return;
    if (s->chunked) {
        bool ok = s->fin ? append(s, "\r\n", 2) : (s->fin = true, append(s, "0\r\n\r\n", 5));
        if (!ok) {
            respond(s, 413);
            return;
        }
    }
    s->fin = true;
    push_request(s);
}

/* ---- the response ---- */

static ssize_t read_body(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t len,
                         uint32_t *flags, nghttp2_data_source *src, void *user);

static void bad_response(struct h2_stream *s, const char *what)
{
    log_warn("h2: bad response from %s: %s", s->a.up->srv->name, what);
    attempt_failed(&s->a, FAULT_INVALID, 502);
}

/* Submits the head of M (in ob): a final one with the body to follow
 * (BODY), or an interim one. */
static void submit_head(struct h2_stream *s, bool final, bool body)
{
    struct http_msg m;
    http_msg_init(&m, true, scratch_hdrs, HTTP_MAX_HDRS);
    http_parse(&m, buf_rpos(s->ob), s->resp.head_len, &resp_limits);
    struct h2t_field f[HTTP_MAX_HDRS];
    size_t n = h2t_response_fields(&m, buf_rpos(s->ob), f, ARRAY_LEN(f));
    nghttp2_nv nv[HTTP_MAX_HDRS + 1];
    char code[8];
    snprintf(code, sizeof(code), "%03u", m.status % 1000u);
    nv[0] = (nghttp2_nv)NV(":status", code, 3);
    for (size_t i = 0; i < n; i++)
        nv[i + 1] = (nghttp2_nv){(uint8_t *)f[i].name, (uint8_t *)f[i].value, f[i].name_len,
                                 f[i].value_len, NGHTTP2_NV_FLAG_NONE};
    if (!final) {
        nghttp2_submit_headers(ng_of(s), NGHTTP2_FLAG_NONE, s->id, NULL, nv, n + 1, NULL);
        return;
    }
    nghttp2_data_provider prd = {.source.ptr = s, .read_callback = read_body};
    nghttp2_submit_response(ng_of(s), s->id, nv, n + 1, body ? &prd : NULL);
}

static bool interim(const struct http_msg *m)
{
    return m->status >= 100 && m->status < 200;
}

/* A head was parsed: passed on. False when the attempt moved on. */
static bool response_head(struct h2_stream *s)
{
    srv_traffic_ok(s->a.up->srv);
    if (s->resp.status == 101)
        return bad_response(s, "101 to an HTTP/2 request"), false;
    if (interim(&s->resp)) {
        if (++s->interims > MAX_INTERIM)
            return bad_response(s, "too many interim responses"), false;
        submit_head(s, false, false);
        s->ob->head += s->resp.head_len;
        http_msg_init(&s->resp, true, &s->resp_hdr, 1);
        return true;
    }
    const struct conf_listener *cl = s->c.cl;
    const char *v;
    size_t n;
    if (cl->sess_issued && http_find_set_cookie(buf_rpos(s->ob), s->resp.head_len, cl->sess_name,
                                                cl->sess_name_len, &v, &n))
        attempt_session_issued(&s->a, v, n);
    attempt_answered(&s->a, s->resp.status);
    http_body_response(&s->respb, &s->resp, s->method);
    bool body = s->respb.kind != BODY_NONE;
    s->status = s->resp.status;
    s->submitted = true;
    submit_head(s, true, body);
    s->ob->head += s->resp.head_len;
    s->resp_state = H2P_BODY;
    h2t_unchunk_init(&s->unchunk);
    bool ka = s->resp.minor == 1 ? !(s->resp.flags & HF_CONN_CLOSE)
                                 : (s->resp.flags & HF_CONN_KA) != 0;
    s->keep_server = ka && s->respb.kind != BODY_CLOSE;
    stop_retaining(s); /* a response started: no replay any more */
    return true;
}

static void keep_trailers(struct h2_stream *s, size_t n)
{
    if (n == 0)
        return;
    s->trailers = eg_realloc(s->trailers, s->trailers_len + n);
    memcpy(s->trailers + s->trailers_len, trailer_scratch, n);
    s->trailers_len += (uint32_t)n;
}

/* The server's part is over: its connection goes back to the pool when it
 * carried the whole request and the whole response. */
static void server_done(struct h2_stream *s)
{
    bool complete = s->req_state == H2R_DONE && !request_unsent(s);
    attempt_release(&s->a, s->keep_server && complete);
    if (!complete) {
        /* The server answered before the request's end: the rest of it is
         * not wanted any more. */
        buf_put(s->rq);
        s->rq = NULL;
        give_back(s, s->unconsumed);
    }
}

static void payload_ready(struct h2_stream *s)
{
    if (s->deferred && (s->pay > 0 || s->resp_state == H2P_DONE)) {
        s->deferred = false;
        nghttp2_session_resume_data(ng_of(s), s->id);
    }
}

/* Unframes the body bytes after the payload already in ob. False when the
 * stream moved on. */
static bool scan_body(struct h2_stream *s)
{
    struct buf *b = s->ob;
    char *p = b->data + b->head + s->pay;
    size_t len = b->tail - b->head - s->pay, used, out;
    int rc;
    if (s->respb.kind == BODY_CHUNKED) {
        size_t tl = 0;
        rc = h2t_unchunk(&s->unchunk, p, len, &used, &out, trailer_scratch, &tl);
        keep_trailers(s, tl);
        if (rc == EG_ERR)
            s->respb.err = s->unchunk.err;
    } else {
        rc = http_body_scan(&s->respb, p, len, &used);
        out = used;
    }
    if (rc == EG_ERR) {
        log_warn("h2: bad response body from %s: %s", s->a.up->srv->name, s->respb.err);
        counters->invalid_responses_total++;
        reset(s, NGHTTP2_INTERNAL_ERROR, "invalid response");
        return false;
    }
    s->pay += (uint32_t)out;
    b->tail = b->head + s->pay;
    if (rc == EG_OK) {
        if (used < len) /* bytes nobody asked for */
            s->keep_server = false;
        s->resp_state = H2P_DONE;
        server_done(s);
    }
    payload_ready(s);
    return true;
}

static bool scan_response(struct h2_stream *s)
{
    while (s->resp_state == H2P_HEAD) {
        struct buf *b = s->ob;
        int rc = http_parse(&s->resp, buf_rpos(b), buf_len(b), &resp_limits);
        if (rc == EG_AGAIN) {
            if (buf_room(b) > 0)
                return true;
            if (b->head > 0) {
                buf_compact(b);
                return true;
            }
            return bad_response(s, "head too large"), false;
        }
        if (rc == EG_ERR)
            return bad_response(s, s->resp.err), false;
        if (!response_head(s))
            return false;
    }
    return s->resp_state != H2P_BODY || scan_body(s);
}

/* Reads from the server while ob has room. False when the stream moved on. */
static bool read_response(struct h2_stream *s)
{
    struct upstream *u = s->a.up;
    if (!s->ob)
        s->ob = buf_get();
    if (buf_room(s->ob) == 0) {
        buf_compact(s->ob);
        if (buf_room(s->ob) == 0)
            return true;
    }
    ssize_t n = sk_read(&u->sk, buf_wpos(s->ob), buf_room(s->ob));
    if (n == EG_AGAIN)
        return true;
    if (n > 0) {
        s->ob->tail += (uint32_t)n;
        u->srv->st->bytes_in += (uint64_t)n;
        touch(s);
        return scan_response(s);
    }
    /* The server closed or reset. */
    if (s->resp_state == H2P_BODY && s->respb.kind == BODY_CLOSE && n == 0) {
        s->keep_server = false;
        s->resp_state = H2P_DONE;
        server_done(s);
        payload_ready(s);
        return false;
    }
    if (!s->submitted) {
        attempt_failed(&s->a, FAULT_RESET, 502);
        return false;
    }
    reset(s, NGHTTP2_INTERNAL_ERROR, "server cut");
    return false;
}

/* The data provider: payload from ob as the client's windows allow. */
static ssize_t read_body(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t len,
                         uint32_t *flags, nghttp2_data_source *src, void *user)
{
    (void)id, (void)user;
    struct h2_stream *s = src->ptr;
    size_t n = MIN(len, (size_t)s->pay);
    if (n > 0) {
        memcpy(buf, buf_rpos(s->ob), n);
        s->ob->head += (uint32_t)n;
        s->pay -= (uint32_t)n;
        s->tx_resp += n;
        if (s->ob->head == s->ob->tail)
            s->ob->head = s->ob->tail = 0;
        touch(s);
        if (via_mux(s))
            h2_up_consume(s->a.up, n); /* the server may send more */
        else
            server_interest(s); /* room again */
    }
    if (s->pay == 0 && s->resp_state == H2P_DONE) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        buf_put(s->ob);
        s->ob = NULL;
        struct h2t_field f[64];
        size_t nt = s->trailers ? h2t_trailer_fields(s->trailers, s->trailers_len, f, 64) : 0;
        if (nt > 0) {
            nghttp2_nv nv[64];
            for (size_t i = 0; i < nt; i++)
                nv[i] = (nghttp2_nv){(uint8_t *)f[i].name, (uint8_t *)f[i].value,
                                     f[i].name_len, f[i].value_len, NGHTTP2_NV_FLAG_NONE};
            if (nghttp2_submit_trailer(ng, s->id, nv, nt) == 0)
                *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
        }
        return (ssize_t)n;
    }
    if (n == 0) {
        s->deferred = true;
        return NGHTTP2_ERR_DEFERRED;
    }
    return (ssize_t)n;
}

void h2_stream_sent_end(struct h2_stream *s)
{
    account(s, s->status, s->answered && !s->submitted ? "error" : "ok");
    /* The client may stop sending what nobody will read (RFC 9113 8.1). */
    if (s->req_state != H2R_DONE)
        nghttp2_submit_rst_stream(ng_of(s), NGHTTP2_FLAG_NONE, s->id, NGHTTP2_NO_ERROR);
}

/* ---- towards an HTTP/2 server ---- */

static struct h2_stream *owner_enter(void *owner)
{
    struct h2_stream *s = owner;
    h2_enter(s->h);
    return s;
}

static size_t up_body(void *owner, uint8_t *buf, size_t len, bool *eof)
{
    struct h2_stream *s = owner_enter(owner);
    struct h2_conn *h = s->h;
    size_t n = 0;
    *eof = true; /* no request left: answered meanwhile */
    if (s->rq) {
        n = MIN(len, (size_t)(s->pay_len - s->out.body_sent));
        memcpy(buf, s->rq->data + s->head_len + s->out.body_sent, n);
        s->out.body_sent += (uint32_t)n;
        s->tx_req += n;
        *eof = s->req_state == H2R_DONE && s->out.body_sent == s->pay_len;
        if (*eof)
            s->out.fin_sent = s->fin_len; /* the trailers go as HEADERS */
        if (!retaining(s))
            drop_sent(s);
        if (*eof)
            await_answer(s);
        else if (n)
            request_moved(s);
    }
    h2_leave(h);
    return n;
}

/* Trailer fields live here until nghttp2 copied them. */
static char up_trailer_text[H2T_MAX_TRAILER];

static size_t up_trailers(void *owner, nghttp2_nv *nv, size_t cap)
{
    struct h2_stream *s = owner;
    /* The end is "0\r\n", the trailer lines, "\r\n". */
    if (!s->rq || !s->chunked || s->fin_len <= 5)
        return 0;
    uint32_t len = s->fin_len - 5;
    memcpy(up_trailer_text, s->rq->data + s->head_len + s->pay_len + 3, len);
    struct h2t_field f[64];
    size_t n = h2t_trailer_fields(up_trailer_text, len, f, MIN(cap, ARRAY_LEN(f)));
    for (size_t i = 0; i < n; i++)
        nv[i] = (nghttp2_nv){(uint8_t *)f[i].name, (uint8_t *)f[i].value, f[i].name_len,
                             f[i].value_len, NGHTTP2_NV_FLAG_NONE};
    return n;
}

/* `session cookie NAME issued`: a Set-Cookie field of the server's that
 * sets the session cookie pins the session. */
static void session_issued(struct h2_stream *s, const nghttp2_nv *nv, size_t n)
{
    const struct conf_listener *cl = s->c.cl;
    if (!cl->sess_issued)
        return;
    for (size_t i = 0; i < n; i++) {
        char line[4096];
        if (nv[i].namelen != 10 || memcmp(nv[i].name, "set-cookie", 10) != 0 ||
            nv[i].valuelen + 12 > sizeof(line))
            continue;
        int len = snprintf(line, sizeof(line), "set-cookie:%.*s", (int)nv[i].valuelen,
                           (const char *)nv[i].value);
        const char *v;
        size_t vl;
        if (http_find_set_cookie(line, (size_t)len, cl->sess_name, cl->sess_name_len, &v, &vl)) {
            attempt_session_issued(&s->a, v, vl);
            return;
        }
    }
}

static void up_head(void *owner, const nghttp2_nv *nv, size_t n, bool end)
{
    struct h2_stream *s = owner_enter(owner);
    struct h2_conn *h = s->h;
    int status = 0;
    if (n > 0 && nv[0].namelen == 7 && memcmp(nv[0].name, ":status", 7) == 0 &&
        nv[0].valuelen == 3)
        status = atoi((const char *)nv[0].value);
    srv_traffic_ok(s->a.up->srv);
    if (status < 100 || status == 101 || (status < 200 && ++s->interims > MAX_INTERIM)) {
        log_warn("h2: bad response head from %s", s->a.up->srv->name);
        attempt_failed(&s->a, FAULT_INVALID, 502);
    } else if (status < 200) {
        nghttp2_submit_headers(ng_of(s), NGHTTP2_FLAG_NONE, s->id, NULL, nv, n, NULL);
    } else {
        session_issued(s, nv, n);
        attempt_answered(&s->a, status);
        s->status = (uint16_t)status;
        s->submitted = true;
        s->keep_server = true;
        s->resp_state = H2P_BODY;
        nghttp2_data_provider prd = {.source.ptr = s, .read_callback = read_body};
        nghttp2_submit_response(ng_of(s), s->id, nv, n, end ? NULL : &prd);
        stop_retaining(s); /* a response started: no replay any more */
    }
    h2_leave(h);
}

static void up_data(void *owner, const uint8_t *p, size_t len)
{
    struct h2_stream *s = owner_enter(owner);
    struct h2_conn *h = s->h;
    if (!s->ob)
        s->ob = buf_get();
    if (buf_room(s->ob) < len)
        buf_compact(s->ob);
    if (buf_room(s->ob) < len) /* more than the window we gave: not kept */
        s->ob = buf_grow(s->ob, s->ob->tail + len);
    memcpy(buf_wpos(s->ob), p, len);
    s->ob->tail += (uint32_t)len;
    s->pay += (uint32_t)len;
    touch(s);
    payload_ready(s);
    h2_leave(h);
}

static void up_trailer(void *owner, const nghttp2_nv *nv, size_t n)
{
    struct h2_stream *s = owner_enter(owner);
    struct h2_conn *h = s->h;
    for (size_t i = 0; i < n; i++) {
        size_t len = nv[i].namelen + nv[i].valuelen + 4;
        if (s->trailers_len + len > H2T_MAX_TRAILER)
            break;
        s->trailers = eg_realloc(s->trailers, s->trailers_len + len);
        char *t = s->trailers + s->trailers_len;
        memcpy(t, nv[i].name, nv[i].namelen);
        memcpy(t + nv[i].namelen, ": ", 2);
        memcpy(t + nv[i].namelen + 2, nv[i].value, nv[i].valuelen);
        memcpy(t + len - 2, "\r\n", 2);
        s->trailers_len += (uint32_t)len;
    }
    h2_leave(h);
}

static void up_end(void *owner)
{
    struct h2_stream *s = owner_enter(owner);
    struct h2_conn *h = s->h;
    s->resp_state = H2P_DONE;
    server_done(s);
    payload_ready(s);
    h2_leave(h);
}

/* The server reset the stream or its connection ended: before the head the
 * request may go elsewhere (as if refused when the server did not process
 * it: no charge, replayed whatever its method), after it the client's
 * stream is reset. */
static void up_failed(void *owner, uint32_t code, bool refused)
{
    struct h2_stream *s = owner_enter(owner);
    struct h2_conn *h = s->h;
    log_debug("h2: stream %d of %s: the server ended it (%s)", s->id, s->c.cl->name,
              nghttp2_http2_strerror(code));
    if (s->submitted) {
        reset(s, NGHTTP2_INTERNAL_ERROR, "server reset");
    } else {
        if (refused)
            s->reached = false;
        attempt_failed(&s->a, refused ? FAULT_DOWN : FAULT_RESET, 502);
    }
    h2_leave(h);
}

static const struct h2_up_ops up_ops = {
    .body = up_body, .trailers = up_trailers, .head = up_head, .data = up_data,
    .trailer = up_trailer, .end = up_end, .failed = up_failed,
};

/* The request's fields for an HTTP/2 server, from the head in rq. */
static size_t request_fields(struct h2_stream *s, nghttp2_nv *nv, size_t cap)
{
    static const struct http_limits lim = {.max_line = 65535, .max_head = 65535,
                                           .max_headers = HTTP_MAX_HDRS};
    struct http_msg m;
    http_msg_init(&m, false, scratch_hdrs, HTTP_MAX_HDRS);
    if (http_parse(&m, s->rq->data, s->head_len, &lim) != EG_OK)
        return 0;
    struct h2t_field f[HTTP_MAX_HDRS + 5];
    size_t n = h2t_request_fields(&m, s->rq->data, s->a.up->srv->tls ? "https" : "http", f,
                                  ARRAY_LEN(f) - 1);
    if (s->te_trailers)
        f[n++] = (struct h2t_field){"te", "trailers", 2, 8};
    n = MIN(n, cap);
    for (size_t i = 0; i < n; i++)
        nv[i] = (nghttp2_nv){(uint8_t *)f[i].name, (uint8_t *)f[i].value, f[i].name_len,
                             f[i].value_len, NGHTTP2_NV_FLAG_NONE};
    return n;
}

/* The engine has a server marked h2 ready: a stream on a shared connection
 * (the engine's fresh connection becomes one), the request submitted. */
static void ready_h2(struct h2_stream *s)
{
    struct upstream *u = s->a.up;
    if (!u->mux) {
        struct upstream *v = h2_up_adopt(u);
        if (!v) {
            attempt_failed(&s->a, FAULT_RESET, 502);
            return;
        }
        s->a.up = v; /* the connection now belongs to the shared session */
    }
    s->out = (struct h2_out){.head_sent = s->head_len};
    s->pp_len = 0;
    buf_put(s->ob);
    s->ob = NULL;
    s->pay = 0;
    s->interims = 0;
    s->resp_state = H2P_HEAD;
    nghttp2_nv nv[HTTP_MAX_HDRS + 6];
    size_t n = request_fields(s, nv, ARRAY_LEN(nv));
    bool body = s->req_state != H2R_DONE || s->pay_len > 0 || (s->chunked && s->fin_len > 5);
    if (n == 0 || h2_up_submit(s->a.up, nv, n, body, &up_ops, s) != EG_OK) {
        attempt_failed(&s->a, FAULT_RESET, 502);
        return;
    }
    s->reached = true;
    if (body)
        request_moved(s);
    else
        await_answer(s);
}

/* ---- the engine's callbacks ---- */

static struct h2_stream *stream_of(const struct attempt *a)
{
    return container_of(a, struct h2_stream, a);
}

static void ready_h2(struct h2_stream *s);

static void on_ready(struct attempt *a)
{
    struct h2_stream *s = stream_of(a);
    struct h2_conn *h = s->h;
    h2_enter(h);
    struct upstream *u = a->up;
    if (u->srv->cs->h2) {
        ready_h2(s);
        h2_leave(h);
        return;
    }
    s->out = s->hedge_out = (struct h2_out){0};
    s->pp_len = 0;
    if (s->c.cl->send_proxy && u->requests == 0 && s->head_len > 0)
        s->pp_len = (uint8_t)conn_proxy_header(&h->c, s->pp);
    buf_put(s->ob);
    s->ob = NULL;
    s->pay = 0;
    s->interims = 0;
    s->resp_state = H2P_HEAD;
    http_msg_init(&s->resp, true, &s->resp_hdr, 1);
    u->requests++;
    if (write_request(s)) {
        if (s->req_state != H2R_DONE || request_unsent(s))
            request_moved(s);
        server_interest(s);
    }
    h2_leave(h);
}

static void on_give_up(struct attempt *a, int status, const char *why)
{
    struct h2_stream *s = stream_of(a);
    h2_enter(s->h);
    log_debug("h2: stream %d of %s: %s", s->id, s->c.cl->name, why);
    respond(s, status);
    h2_leave(s->h);
}

static bool replayable(const struct attempt *a)
{
    const struct h2_stream *s = stream_of(a);
    if (s->replay_off || s->submitted)
        return false;
    return !s->reached || s->idempotent;
}

static void on_waiting(struct attempt *a) { (void)a; }

static void on_server_io(struct attempt *a, bool rd, bool wr)
{
    struct h2_stream *s = stream_of(a);
    struct h2_conn *h = s->h;
    h2_enter(h);
    if ((!wr || write_request(s)) && (!rd || read_response(s)))
        server_interest(s);
    h2_leave(h);
}

/* As in http mode: what has not answered yet moves, a response on its way
 * is left to finish. */
static void on_server_down(struct attempt *a)
{
    struct h2_stream *s = stream_of(a);
    h2_enter(s->h);
    if (!s->submitted)
        attempt_failed(a, FAULT_DOWN, 502);
    h2_leave(s->h);
}

/* Writes the request on the hedge connection, from its first byte, as on
 * the first one: the same bytes of rq, framed anew. */
static bool on_hedge_write(struct attempt *a)
{
    struct h2_stream *s = stream_of(a);
    if (!s->rq || s->replay_off || send_out(s, &s->hedge_out, &a->hedge->sk) == EG_ERR)
        return false;
    sk_want(gw.loop, &a->hedge->sk, true, unsent(s, &s->hedge_out));
    return true;
}

/* The hedge answered first: the response is read from it, and what it lacks
 * of the request goes on from where it was. */
static void on_hedge_won(struct attempt *a)
{
    struct h2_stream *s = stream_of(a);
    h2_enter(s->h);
    s->out = s->hedge_out;
    server_interest(s);
    h2_leave(s->h);
}

static const struct attempt_ops h2_attempt_ops = {
    .ready = on_ready, .give_up = on_give_up, .replayable = replayable, .waiting = on_waiting,
    .server_io = on_server_io, .hedge_write = on_hedge_write, .hedge_won = on_hedge_won,
    .server_down = on_server_down,
};

/* ---- timeouts ---- */

static void stream_timeout(struct conn *c)
{
    struct h2_stream *s = container_of(c, struct h2_stream, c);
    struct h2_conn *h = s->h;
    h2_enter(h);
    if (attempt_timeout(&s->a)) {
        h2_leave(h);
        return;
    }
    if (s->answered || s->submitted || s->req_state == H2R_HEADERS ||
        s->a.state != ATTEMPT_READY)
        reset(s, NGHTTP2_CANCEL, "timeout"); /* stalled: client or server */
    else if (s->req_state != H2R_DONE)
        respond(s, 408); /* the client stopped sending its body */
    else
        attempt_failed(&s->a, FAULT_SLOW, 504);
    h2_leave(h);
}
