/* libFuzzer target: the HTTP/2 input path. The input (after a first byte
 * that sets the read size) follows the client preface into an nghttp2
 * server session set up as h2_session.c sets up its own (options, SETTINGS,
 * connection window), fed in pieces as reads would deliver it, with frames
 * sent back after each piece. Its callbacks do with what nghttp2 hands them
 * what h2_stream.c does: header fields kept per stream, turned into an
 * HTTP/1.1 head (h2t_request_head) that the HTTP/1.1 parser then judges,
 * requests answered, DATA given back to the windows. A DATA payload is also
 * taken as an HTTP/1.1 response: its head translated (h2t_response_fields),
 * its body undone (h2t_unchunk) with its trailers (h2t_trailer_fields). */
#include "proto/h2_translate.h"

#include <nghttp2/nghttp2.h>
#include <stdlib.h>
#include <string.h>

#define MAX_STREAMS 8
#define MAX_FIELDS 64

struct stream {
    int32_t id;
    int n;
    nghttp2_rcbuf *rc[2 * MAX_FIELDS];
};

static struct stream streams[MAX_STREAMS];
static char head[65535];

static struct stream *find(int32_t id, bool create)
{
    for (int i = 0; i < MAX_STREAMS; i++)
        if (streams[i].id == id)
            return &streams[i];
    if (!create)
        return NULL;
    for (int i = 0; i < MAX_STREAMS; i++)
        if (streams[i].id == 0) {
            streams[i].id = id;
            streams[i].n = 0;
            return &streams[i];
        }
    return NULL;
}

static void drop(struct stream *s)
{
    for (int i = 0; i < s->n; i++)
        nghttp2_rcbuf_decref(s->rc[i]);
    s->n = 0;
    s->id = 0;
}

static ssize_t on_send(nghttp2_session *ng, const uint8_t *d, size_t len, int flags, void *u)
{
    (void)ng, (void)d, (void)flags, (void)u;
    return (ssize_t)len;
}

static int on_begin_headers(nghttp2_session *ng, const nghttp2_frame *f, void *u)
{
    (void)ng, (void)u;
    if (f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_REQUEST)
        find(f->hd.stream_id, true);
    return 0;
}

static int on_header(nghttp2_session *ng, const nghttp2_frame *f, nghttp2_rcbuf *name,
                     nghttp2_rcbuf *value, uint8_t flags, void *u)
{
    (void)ng, (void)flags, (void)u;
    struct stream *s = find(f->hd.stream_id, false);
    if (!s || f->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    if (s->n + 2 > 2 * MAX_FIELDS)
        return 0;
    nghttp2_rcbuf_incref(name);
    nghttp2_rcbuf_incref(value);
    s->rc[s->n++] = name;
    s->rc[s->n++] = value;
    return 0;
}

static ssize_t read_body(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t len,
                         uint32_t *flags, nghttp2_data_source *src, void *u)
{
    (void)ng, (void)id, (void)src, (void)u;
    size_t n = len < 5 ? len : 5;
    memcpy(buf, "hello", n);
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

/* What h2_stream.c does when a request's HEADERS end. */
static void request(nghttp2_session *ng, struct stream *s, bool body)
{
    struct h2t_field f[MAX_FIELDS];
    size_t nf = 0;
    for (int i = 0; i < s->n; i += 2) {
        nghttp2_vec n = nghttp2_rcbuf_get_buf(s->rc[i]);
        nghttp2_vec v = nghttp2_rcbuf_get_buf(s->rc[i + 1]);
        f[nf++] = (struct h2t_field){(const char *)n.base, (const char *)v.base,
                                     (uint32_t)n.len, (uint32_t)v.len};
    }
    struct h2t_req_info info;
    int len = h2t_request_head(f, nf, body, head, sizeof(head), &info);
    if (len < 0 && !info.err)
        abort();
    if (len > 0) {
        static struct http_hdr hdrs[HTTP_MAX_HDRS];
        static const struct http_limits lim = {.max_line = 8192, .max_head = 15360,
                                               .max_headers = HTTP_MAX_HDRS};
        struct http_msg m;
        http_msg_init(&m, false, hdrs, HTTP_MAX_HDRS);
        int rc = http_parse(&m, head, (size_t)len, &lim);
        /* A complete head always parses to its end, or is refused. */
        if (rc == EG_AGAIN || (rc == EG_OK && m.head_len != (uint32_t)len))
            abort();
        if (rc == EG_OK && info.chunked && !(m.flags & HF_CHUNKED))
            abort();
    }
    int32_t id = s->id;
    drop(s);
    nghttp2_nv nv[] = {{(uint8_t *)":status", (uint8_t *)"200", 7, 3, NGHTTP2_NV_FLAG_NONE}};
    nghttp2_data_provider prd = {.read_callback = read_body};
    nghttp2_submit_response(ng, id, nv, 1, &prd);
}

static int on_frame_recv(nghttp2_session *ng, const nghttp2_frame *f, void *u)
{
    (void)u;
    struct stream *s = find(f->hd.stream_id, false);
    if (s && f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_REQUEST)
        request(ng, s, !(f->hd.flags & NGHTTP2_FLAG_END_STREAM));
    return 0;
}

/* A DATA payload as an HTTP/1.1 response: head, then a chunked body. */
static void as_response(const uint8_t *data, size_t len)
{
    static char buf[16384];
    static struct http_hdr hdrs[HTTP_MAX_HDRS];
    static const struct http_limits lim = {.max_line = 8192, .max_head = 16384,
                                           .max_headers = HTTP_MAX_HDRS};
    if (len > sizeof(buf))
        len = sizeof(buf);
    memcpy(buf, data, len);
    struct http_msg m;
    http_msg_init(&m, true, hdrs, HTTP_MAX_HDRS);
    size_t body = 0;
    if (http_parse(&m, buf, len, &lim) == EG_OK) {
        struct h2t_field f[HTTP_MAX_HDRS];
        size_t n = h2t_response_fields(&m, buf, f, HTTP_MAX_HDRS);
        for (size_t i = 0; i < n; i++)
            if (f[i].name < buf || f[i].value + f[i].value_len > buf + len)
                abort();
        body = m.head_len;
    }
    static char tr[H2T_MAX_TRAILER];
    size_t trl = 0, used, out;
    struct h2t_unchunk uc;
    h2t_unchunk_init(&uc);
    int rc = h2t_unchunk(&uc, buf + body, len - body, &used, &out, tr, &trl);
    if (used > len - body || out > used || trl > H2T_MAX_TRAILER || (rc == EG_ERR && !uc.err))
        abort();
    struct h2t_field tf[32];
    size_t nt = h2t_trailer_fields(tr, trl, tf, 32);
    for (size_t i = 0; i < nt; i++)
        if (!h2t_trailer_allowed(tf[i].name, tf[i].name_len))
            abort();
}

static int on_data(nghttp2_session *ng, uint8_t flags, int32_t id, const uint8_t *data,
                   size_t len, void *u)
{
    (void)flags, (void)u;
    as_response(data, len);
    nghttp2_session_consume(ng, id, len);
    return 0;
}

static int on_stream_close(nghttp2_session *ng, int32_t id, uint32_t code, void *u)
{
    (void)ng, (void)code, (void)u;
    struct stream *s = find(id, false);
    if (s)
        drop(s);
    return 0;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    static nghttp2_session_callbacks *cb;
    static nghttp2_option *opt;
    if (!cb) {
        nghttp2_session_callbacks_new(&cb);
        nghttp2_session_callbacks_set_send_callback(cb, on_send);
        nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
        nghttp2_session_callbacks_set_on_header_callback2(cb, on_header);
        nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data);
        nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
        nghttp2_option_new(&opt);
        nghttp2_option_set_no_auto_window_update(opt, 1);
        nghttp2_option_set_stream_reset_rate_limit(opt, 220, 33);
        nghttp2_option_set_max_continuations(opt, 8);
        nghttp2_option_set_no_closed_streams(opt, 1);
    }
    if (size < 1)
        return 0;
    size_t step = (size_t)(data[0] % 64) + 1;
    data++, size--;
    nghttp2_session *ng;
    if (nghttp2_session_server_new2(&ng, cb, NULL, opt) != 0)
        return 0;
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 100},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 65535},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, 16384},
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
        {NGHTTP2_SETTINGS_NO_RFC7540_PRIORITIES, 1},
    };
    nghttp2_submit_settings(ng, NGHTTP2_FLAG_NONE, iv, 5);
    nghttp2_session_set_local_window_size(ng, NGHTTP2_FLAG_NONE, 0, 1 << 20);
    static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    if (nghttp2_session_mem_recv(ng, (const uint8_t *)preface, sizeof(preface) - 1) >= 0) {
        for (size_t off = 0; off < size;) {
            size_t n = size - off < step ? size - off : step;
            ssize_t rv = nghttp2_session_mem_recv(ng, data + off, n);
            if (rv < 0 || nghttp2_session_send(ng) != 0)
                break;
            off += n;
        }
    }
    for (int i = 0; i < MAX_STREAMS; i++)
        if (streams[i].id)
            drop(&streams[i]);
    nghttp2_session_del(ng);
    return 0;
}
