/* Unit tests of gateway/http.c: request and response heads, body framing,
 * incremental parsing at every split, and the strict rejections that keep
 * two parsers from disagreeing on framing (request smuggling). */
#include "proto/http.h"
#include "base/util.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const struct http_limits lim = {
    .max_line = 8192, .max_head = 32768, .max_headers = HTTP_MAX_HDRS,
};

/* A message with its own header storage. */
struct msg {
    struct http_msg m;
    struct http_hdr hdrs[HTTP_MAX_HDRS];
};

static int parse_n(struct msg *r, bool response, const char *buf, size_t len,
                   const struct http_limits *l)
{
    http_msg_init(&r->m, response, r->hdrs, response ? 1 : HTTP_MAX_HDRS);
    return http_parse(&r->m, buf, len, l ? l : &lim);
}

static int parse_req(struct msg *r, const char *buf)
{
    return parse_n(r, false, buf, strlen(buf), NULL);
}

static int parse_resp(struct msg *r, const char *buf)
{
    return parse_n(r, true, buf, strlen(buf), NULL);
}

#define assert_span(buf, off, len, str)                          \
    do {                                                         \
        assert_int_equal((len), strlen(str));                    \
        assert_memory_equal((buf) + (off), (str), strlen(str));  \
    } while (0)

/* The header named NAME (case-insensitive), NULL when absent. */
static const struct http_hdr *find_hdr(const struct msg *r, const char *buf, const char *name)
{
    size_t n = strlen(name);
    for (int i = 0; i < r->m.nhdrs && i < HTTP_MAX_HDRS; i++)
        if (r->hdrs[i].name_len == n && strncasecmp(buf + r->hdrs[i].name, name, n) == 0)
            return &r->hdrs[i];
    return NULL;
}

static void expect_error_n(const char *buf, size_t len, int status, const struct http_limits *l)
{
    struct msg r;
    int rc = parse_n(&r, false, buf, len, l);
    if (rc != EG_ERR || r.m.err_status != status)
        print_error("request %.*s\n gave rc %d status %d (%s), wanted status %d\n", (int)len, buf,
                    rc, r.m.err_status, r.m.err ? r.m.err : "-", status);
    assert_int_equal(rc, EG_ERR);
    assert_int_equal(r.m.err_status, status);
    assert_non_null(r.m.err);
}

static void expect_error(const char *buf, int status)
{
    expect_error_n(buf, strlen(buf), status, NULL);
}

static void expect_resp_error(const char *buf)
{
    struct msg r;
    int rc = parse_resp(&r, buf);
    if (rc != EG_ERR || r.m.err_status != 502)
        print_error("response %s\n gave rc %d status %d\n", buf, rc, r.m.err_status);
    assert_int_equal(rc, EG_ERR);
    assert_int_equal(r.m.err_status, 502);
}

/* Scans a whole body in one call; returns the rc and sets *used. */
static int scan_all(struct http_body *b, const char *p, size_t len, size_t *used)
{
    *used = 0;
    return http_body_scan(b, p, len, used);
}

/* ---- valid requests ---- */

static void get_request(void **state)
{
    (void)state;
    const char *s = "GET /index.html?q=1 HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n";
    struct msg r;
    assert_int_equal(parse_req(&r, s), EG_OK);
    assert_int_equal(r.m.method, HTTP_GET);
    assert_int_equal(r.m.method_len, 3);
    assert_span(s, r.m.target, r.m.target_len, "/index.html?q=1");
    assert_int_equal(r.m.minor, 1);
    assert_int_equal(r.m.line_len, strlen("GET /index.html?q=1 HTTP/1.1\r\n"));
    assert_int_equal(r.m.head_len, strlen(s));
    assert_int_equal(r.m.nhdrs, 2);
    assert_span(s, r.hdrs[0].name, r.hdrs[0].name_len, "Host");
    assert_span(s, r.hdrs[0].val, r.hdrs[0].val_len, "example.com");
    assert_span(s, r.hdrs[0].line, r.hdrs[0].line_len, "Host: example.com\r\n");
    assert_int_equal(r.hdrs[0].kind, HH_HOST);
    assert_int_equal(r.hdrs[1].kind, HH_OTHER);
    assert_int_equal(r.m.content_length, -1);
    assert_true(r.m.flags & HF_HAS_HOST);
    assert_false(r.m.flags & (HF_CHUNKED | HF_HAS_CL));
    struct http_body b;
    http_body_request(&b, &r.m);
    assert_int_equal(b.kind, BODY_NONE);
}

static void post_with_content_length(void **state)
{
    (void)state;
    const char *s = "POST /api HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n"
                    "Idempotency-Key: k1\r\nExpect: 100-continue\r\n\r\nhello world";
    struct msg r;
    assert_int_equal(parse_req(&r, s), EG_OK);
    assert_int_equal(r.m.method, HTTP_POST);
    assert_int_equal(r.m.content_length, 11);
    assert_true(r.m.flags & HF_HAS_CL);
    assert_true(r.m.flags & HF_IDEMPOTENCY);
    assert_true(r.m.flags & HF_EXPECT_100);
    assert_int_equal(r.m.head_len, strlen(s) - 11);
    struct http_body b;
    http_body_request(&b, &r.m);
    assert_int_equal(b.kind, BODY_LENGTH);
    size_t used;
    assert_int_equal(scan_all(&b, s + r.m.head_len, 5, &used), EG_AGAIN);
    assert_int_equal(used, 5);
    assert_int_equal(scan_all(&b, s + r.m.head_len + 5, 6, &used), EG_OK);
    assert_int_equal(used, 6);
}

static const char chunked_body[] = "5;name=value;q=\"x y\"\r\nhello\r\n"
                                   "1A\r\nabcdefghijklmnopqrstuvwxyz\r\n"
                                   "0;last\r\nX-Trailer: one\r\nX-Other: two\r\n\r\n";

static void chunked_post_with_extensions_and_trailers(void **state)
{
    (void)state;
    char s[512];
    snprintf(s, sizeof(s), "POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n%s"
                           "GET /next HTTP/1.1\r\n", chunked_body);
    struct msg r;
    assert_int_equal(parse_req(&r, s), EG_OK);
    assert_true(r.m.flags & HF_CHUNKED);
    assert_true(r.m.flags & HF_HAS_TE);
    assert_int_equal(r.m.content_length, -1);
    struct http_body b;
    http_body_request(&b, &r.m);
    assert_int_equal(b.kind, BODY_CHUNKED);
    size_t used;
    assert_int_equal(scan_all(&b, s + r.m.head_len, strlen(s) - r.m.head_len, &used), EG_OK);
    assert_int_equal(used, strlen(chunked_body));
    assert_null(b.err);
}

static void te_is_case_insensitive_and_may_list_codings(void **state)
{
    (void)state;
    struct msg r;
    assert_int_equal(parse_req(&r, "POST / HTTP/1.1\r\nHost: a\r\ntransfer-encoding: gzip, "
                                   "Chunked\r\n\r\n"),
                     EG_OK);
    assert_true(r.m.flags & HF_CHUNKED);
}

static void http10_request(void **state)
{
    (void)state;
    const char *s = "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
    struct msg r;
    assert_int_equal(parse_req(&r, s), EG_OK);
    assert_int_equal(r.m.minor, 0);
    assert_false(r.m.flags & HF_HAS_HOST);
    assert_true(r.m.flags & HF_CONN_KA);
}

static void connection_tokens(void **state)
{
    (void)state;
    struct msg r;
    assert_int_equal(parse_req(&r, "GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, close\r\n"
                                   "Upgrade: websocket\r\n\r\n"),
                     EG_OK);
    assert_true(r.m.flags & HF_CONN_CLOSE);
    assert_true(r.m.flags & HF_CONN_UPGRADE);
    assert_true(r.m.flags & HF_UPGRADE);
    assert_false(r.m.flags & HF_CONN_KA);
}

static void other_methods(void **state)
{
    (void)state;
    struct msg r;
    assert_int_equal(parse_req(&r, "DELETE /x HTTP/1.1\r\nHost: a\r\n\r\n"), EG_OK);
    assert_int_equal(r.m.method, HTTP_DELETE);
    assert_int_equal(parse_req(&r, "PURGE /x HTTP/1.1\r\nHost: a\r\n\r\n"), EG_OK);
    assert_int_equal(r.m.method, HTTP_OTHER);
    assert_int_equal(r.m.method_len, 5);
    assert_int_equal(parse_req(&r, "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"), EG_OK);
    assert_int_equal(r.m.method, HTTP_OPTIONS);
    assert_true(http_method_idempotent(HTTP_PUT));
    assert_false(http_method_idempotent(HTTP_POST));
    assert_false(http_method_idempotent(HTTP_PATCH));
}

static void pipelined_requests(void **state)
{
    (void)state;
    const char *s = "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
                    "GET /b HTTP/1.1\r\nHost: y\r\n\r\n"
                    "GET /c HTTP/1.1\r\n";
    size_t n = strlen(s);
    struct msg r;
    assert_int_equal(parse_n(&r, false, s, n, NULL), EG_OK);
    assert_span(s, r.m.target, r.m.target_len, "/a");
    struct http_body b;
    http_body_request(&b, &r.m);
    size_t used;
    assert_int_equal(scan_all(&b, s + r.m.head_len, n - r.m.head_len, &used), EG_OK);
    assert_int_equal(used, 5);

    const char *second = s + r.m.head_len + used;
    assert_int_equal(parse_n(&r, false, second, n - (size_t)(second - s), NULL), EG_OK);
    assert_int_equal(r.m.method, HTTP_GET);
    assert_span(second, r.m.target, r.m.target_len, "/b");
    assert_span(second, r.hdrs[0].val, r.hdrs[0].val_len, "y");
    http_body_request(&b, &r.m);
    assert_int_equal(b.kind, BODY_NONE);

    const char *third = second + r.m.head_len;
    assert_int_equal(parse_n(&r, false, third, n - (size_t)(third - s), NULL), EG_AGAIN);
}

static void header_values_are_trimmed(void **state)
{
    (void)state;
    const char *s = "GET / HTTP/1.1\r\nHost:   a.example  \r\nX-Tab:\t\tv 1\t \r\n"
                    "X-Empty:\r\nX-Blank:    \r\nX-Inner: a  b\r\n\r\n";
    struct msg r;
    assert_int_equal(parse_req(&r, s), EG_OK);
    const struct http_hdr *h = find_hdr(&r, s, "host");
    assert_non_null(h);
    assert_span(s, h->val, h->val_len, "a.example");
    h = find_hdr(&r, s, "x-tab");
    assert_span(s, h->val, h->val_len, "v 1");
    assert_int_equal(find_hdr(&r, s, "X-Empty")->val_len, 0);
    assert_int_equal(find_hdr(&r, s, "X-Blank")->val_len, 0);
    h = find_hdr(&r, s, "X-Inner");
    assert_span(s, h->val, h->val_len, "a  b");
}

static const struct http_limits sess_lim = {
    .max_line = 8192, .max_head = 32768, .max_headers = HTTP_MAX_HDRS,
    .sess_header = "X-Session", .sess_header_len = 9,
};

static void session_header_found(void **state)
{
    (void)state;
    const char *s = "GET / HTTP/1.1\r\nHost: a\r\nx-session:  s-42 \r\nX-Sessions: no\r\n\r\n";
    struct msg r;
    assert_int_equal(parse_n(&r, false, s, strlen(s), &sess_lim), EG_OK);
    assert_int_equal(r.m.sess_hdr, 1);
    assert_span(s, r.hdrs[1].val, r.hdrs[1].val_len, "s-42");
    assert_int_equal(r.hdrs[1].kind, HH_SESSION);

    assert_int_equal(parse_n(&r, false, s, strlen(s), &lim), EG_OK);
    assert_int_equal(r.m.sess_hdr, -1);
}

static void repeated_session_header_is_rejected(void **state)
{
    (void)state;
    const char *s = "GET / HTTP/1.1\r\nHost: a\r\nX-Session: 1\r\nX-Session: 2\r\n\r\n";
    expect_error_n(s, strlen(s), 400, &sess_lim);
}

static bool cookie(const struct msg *r, const char *buf, const char *name, const char *want)
{
    const char *v = NULL;
    size_t n = 0;
    if (!http_find_cookie(&r->m, buf, name, strlen(name), &v, &n))
        return want == NULL;
    return want && n == strlen(want) && memcmp(v, want, n) == 0;
}

static void cookies_found_among_several(void **state)
{
    (void)state;
    const char *s = "GET / HTTP/1.1\r\nHost: a\r\n"
                    "Cookie: theme=dark; xsid=wrong;sid=\"abc123\"; empty=\r\n"
                    "Accept: */*\r\n"
                    "cookie: lang=en ; other=4;flag\r\n\r\n";
    struct msg r;
    assert_int_equal(parse_req(&r, s), EG_OK);
    assert_true(cookie(&r, s, "sid", "abc123"));
    assert_true(cookie(&r, s, "theme", "dark"));
    assert_true(cookie(&r, s, "xsid", "wrong"));
    assert_true(cookie(&r, s, "empty", ""));
    assert_true(cookie(&r, s, "lang", "en"));
    assert_true(cookie(&r, s, "other", "4"));
    assert_true(cookie(&r, s, "si", NULL));
    assert_true(cookie(&r, s, "flag", NULL));
    assert_true(cookie(&r, s, "dark", NULL));
    assert_true(cookie(&r, s, "missing", NULL));
}

static void set_cookie_found_in_a_response_head(void **state)
{
    (void)state;
    static const char head[] = "HTTP/1.1 200 OK\r\nSet-Cookie: other=1; Path=/\r\n"
                               "set-cookie:  sid=\"abc123\" ; HttpOnly\r\nContent-Length: 0\r\n\r\n";
    const char *v;
    size_t n;
    assert_true(http_find_set_cookie(head, sizeof(head) - 1, "sid", 3, &v, &n));
    assert_int_equal(n, 6);
    assert_memory_equal(v, "abc123", 6);
    assert_true(http_find_set_cookie(head, sizeof(head) - 1, "other", 5, &v, &n));
    assert_int_equal(n, 1);
    assert_false(http_find_set_cookie(head, sizeof(head) - 1, "si", 2, &v, &n));
    assert_false(http_find_set_cookie("HTTP/1.1 200 OK\r\nX-Set-Cookie: sid=1\r\n\r\n", 40,
                                      "sid", 3, &v, &n));
}

/* Drops the hop-by-hop lines of HEAD (parsed first, as the gateway does)
 * and compares with WANT. */
static void drop_hop_gives(const char *head, const char *want)
{
    char buf[512];
    size_t len = strlen(head);
    memcpy(buf, head, len);
    struct http_hdr h;
    struct http_msg m;
    static const struct http_limits lim = {.max_line = 8192, .max_head = 65535,
                                           .max_headers = HTTP_MAX_HDRS};
    http_msg_init(&m, true, &h, 1);
    assert_int_equal(http_parse(&m, buf, len, &lim), EG_OK);
    assert_int_equal(m.head_len, len);
    size_t n = http_drop_hop(buf, len);
    assert_int_equal(n, strlen(want));
    assert_memory_equal(buf, want, n);
}

static void hop_by_hop_response_headers_dropped(void **state)
{
    (void)state;
    drop_hop_gives("HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Length: 17\r\n"
                   "Connection: keep-alive\r\nKeep-Alive: timeout=5\r\n\r\n",
                   "HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Length: 17\r\n\r\n");
    /* Named in Connection: dropped, wherever they are; framing stays. */
    drop_hop_gives("HTTP/1.1 200 OK\r\nX-Hop: 1\r\nconnection: close, x-hop ,"
                   "Content-Length\r\nContent-Length: 0\r\nX-Kept: 2\r\nPROXY-CONNECTION: x\r\n"
                   "Connection: X-Other\r\nx-other: 3\r\n\r\n",
                   "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-Kept: 2\r\n\r\n");
    drop_hop_gives("HTTP/1.0 204 No Content\r\nConnection: close\r\n\r\n",
                   "HTTP/1.0 204 No Content\r\n\r\n");
    drop_hop_gives("HTTP/1.1 200 OK\r\nX-A: connection\r\nContent-Length: 0\r\n\r\n",
                   "HTTP/1.1 200 OK\r\nX-A: connection\r\nContent-Length: 0\r\n\r\n");
    drop_hop_gives("HTTP/1.1 200 OK\r\n\r\n", "HTTP/1.1 200 OK\r\n\r\n");
}

static void no_cookie_header(void **state)
{
    (void)state;
    const char *s = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    struct msg r;
    assert_int_equal(parse_req(&r, s), EG_OK);
    assert_true(cookie(&r, s, "sid", NULL));
}

/* ---- incremental parsing ---- */

static const char *split_samples[] = {
    "GET /index.html HTTP/1.1\r\nHost: example.com\r\nUser-Agent: t/1\r\n\r\n",
    "POST /api HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
    "POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    "GET / HTTP/1.0\r\n\r\n",
    "GET / HTTP/1.1\r\nHost:   a  \r\nX-Session: s1\r\nCookie: a=1; sid=2\r\n"
    "Cookie: b=3\r\n\r\nGET /next HTTP/1.1\r\n",
    /* errors must not depend on the split either */
    "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
    "GET / HTTP/1.1\r\nX: y\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: a\n\r\n",
    "GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",
    "GET / HTTP/2.0\r\nHost: a\r\n\r\n",
    "GET / HTTP/1.1\r\nHost : a\r\n\r\n",
};

static void same_result(const struct msg *a, int rca, const struct msg *b, int rcb,
                        const char *buf)
{
    assert_int_equal(rca, rcb);
    if (rca == EG_ERR) {
        assert_int_equal(a->m.err_status, b->m.err_status);
        assert_string_equal(a->m.err, b->m.err);
        return;
    }
    assert_int_equal(a->m.head_len, b->m.head_len);
    assert_int_equal(a->m.line_len, b->m.line_len);
    assert_int_equal(a->m.method, b->m.method);
    assert_int_equal(a->m.minor, b->m.minor);
    assert_int_equal(a->m.target, b->m.target);
    assert_int_equal(a->m.target_len, b->m.target_len);
    assert_int_equal(a->m.content_length, b->m.content_length);
    assert_int_equal(a->m.flags, b->m.flags);
    assert_int_equal(a->m.nhdrs, b->m.nhdrs);
    assert_int_equal(a->m.sess_hdr, b->m.sess_hdr);
    assert_memory_equal(a->m.cookie_hdr, b->m.cookie_hdr, sizeof(a->m.cookie_hdr));
    for (int i = 0; i < a->m.nhdrs; i++) {
        assert_int_equal(a->hdrs[i].name, b->hdrs[i].name);
        assert_int_equal(a->hdrs[i].name_len, b->hdrs[i].name_len);
        assert_int_equal(a->hdrs[i].val, b->hdrs[i].val);
        assert_int_equal(a->hdrs[i].val_len, b->hdrs[i].val_len);
        assert_int_equal(a->hdrs[i].line_len, b->hdrs[i].line_len);
        assert_int_equal(a->hdrs[i].kind, b->hdrs[i].kind);
    }
    (void)buf;
}

static void split_at_every_byte_one_by_one(void **state)
{
    (void)state;
    for (size_t k = 0; k < ARRAY_LEN(split_samples); k++) {
        const char *s = split_samples[k];
        size_t n = strlen(s);
        struct msg whole, inc;
        int rcw = parse_n(&whole, false, s, n, &sess_lim);
        assert_true(rcw != EG_AGAIN);
        http_msg_init(&inc.m, false, inc.hdrs, HTTP_MAX_HDRS);
        int rc = EG_AGAIN;
        for (size_t len = 1; len <= n && rc == EG_AGAIN; len++)
            rc = http_parse(&inc.m, s, len, &sess_lim);
        same_result(&whole, rcw, &inc, rc, s);
    }
}

static void split_in_two_at_every_position(void **state)
{
    (void)state;
    for (size_t k = 0; k < ARRAY_LEN(split_samples); k++) {
        const char *s = split_samples[k];
        size_t n = strlen(s);
        struct msg whole, two;
        int rcw = parse_n(&whole, false, s, n, &sess_lim);
        for (size_t cut = 0; cut < n; cut++) {
            int rc = parse_n(&two, false, s, cut, &sess_lim);
            if (rc == EG_AGAIN)
                rc = http_parse(&two.m, s, n, &sess_lim);
            same_result(&whole, rcw, &two, rc, s);
        }
    }
}

/* Sets up a chunked body's framing the way the gateway does. */
static void chunked_framing(struct http_body *b)
{
    const char *h = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
    struct msg r;
    assert_int_equal(parse_req(&r, h), EG_OK);
    http_body_request(b, &r.m);
    assert_int_equal(b->kind, BODY_CHUNKED);
}

static void chunked_body_split_in_two_at_every_position(void **state)
{
    (void)state;
    char s[512];
    size_t blen = strlen(chunked_body);
    int n = snprintf(s, sizeof(s), "%sPOST /next", chunked_body);
    for (size_t cut = 0; cut <= blen; cut++) {
        struct http_body b;
        chunked_framing(&b);
        size_t u1 = 0, u2 = 0;
        int rc = http_body_scan(&b, s, cut, &u1);
        if (rc == EG_OK) {
            assert_int_equal(cut, blen);
            assert_int_equal(u1, blen);
            continue;
        }
        assert_int_equal(rc, EG_AGAIN);
        assert_int_equal(u1, cut);
        assert_int_equal(http_body_scan(&b, s + cut, (size_t)n - cut, &u2), EG_OK);
        assert_int_equal(cut + u2, blen);
    }
}

static void chunked_body_fed_byte_by_byte(void **state)
{
    (void)state;
    size_t blen = strlen(chunked_body);
    struct http_body b;
    chunked_framing(&b);
    for (size_t i = 0; i < blen; i++) {
        size_t used = 0;
        int rc = http_body_scan(&b, chunked_body + i, 1, &used);
        assert_int_equal(used, 1);
        assert_int_equal(rc, i + 1 == blen ? EG_OK : EG_AGAIN);
    }
    size_t used = 9;
    assert_int_equal(http_body_scan(&b, "GET", 3, &used), EG_OK);
    assert_int_equal(used, 0);
}

/* ---- malformed requests ---- */

static void content_length_with_transfer_encoding(void **state)
{
    (void)state;
    expect_error("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
                 "Transfer-Encoding: chunked\r\n\r\n", 400);
    expect_error("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
                 "Content-Length: 5\r\n\r\n", 400);
}

static void repeated_content_length(void **state)
{
    (void)state;
    expect_error("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
                 400);
    expect_error("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
                 400);
}

static void non_numeric_content_length(void **state)
{
    (void)state;
    expect_error("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: abc\r\n\r\n", 400);
    expect_error("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5x\r\n\r\n", 400);
    expect_error("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n", 400);
    expect_error("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x10\r\n\r\n", 400);
    expect_error("POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n", 400);
    expect_error("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n",
                 400);
}

static void negative_content_length(void **state)
{
    (void)state;
    expect_error("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 400);
    expect_error("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\n", 400);
}

static void transfer_encoding_not_ending_in_chunked(void **state)
{
    (void)state;
    expect_error("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 400);
    expect_error("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n", 400);
}

static void chunked_then_gzip(void **state)
{
    (void)state;
    expect_error("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400);
    expect_error("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
                 "Transfer-Encoding: gzip\r\n\r\n", 400);
    expect_error("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", 400);
}

static void transfer_encoding_in_http10(void **state)
{
    (void)state;
    expect_error("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400);
}

static void bare_lf_line_endings(void **state)
{
    (void)state;
    expect_error("GET / HTTP/1.1\nHost: a\n\n", 400);
    expect_error("GET / HTTP/1.1\r\nHost: a\n\r\n", 400);
    expect_error("GET / HTTP/1.1\r\nHost: a\r\n\n", 400);
}

static void bare_cr(void **state)
{
    (void)state;
    expect_error("GET / HTTP/1.1\rHost: a\r\n\r\n", 400);
    expect_error("GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n", 400);
    expect_error("GET / HTTP/1.1\r\nHost: a\r\n\rX", 400);
}

static void obs_fold(void **state)
{
    (void)state;
    expect_error("GET / HTTP/1.1\r\nHost: a\r\nX: b\r\n c\r\n\r\n", 400);
    expect_error("GET / HTTP/1.1\r\n\tHost: a\r\n\r\n", 400);
}

static void space_before_colon(void **state)
{
    (void)state;
    expect_error("GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400);
    expect_error("GET / HTTP/1.1\r\nHost: a\r\nContent-Length\t: 5\r\n\r\n", 400);
}

static void invalid_char_in_header_name(void **state)
{
    (void)state;
    expect_error("GET / HTTP/1.1\r\nHost: a\r\nX(y): 1\r\n\r\n", 400);
    expect_error("GET / HTTP/1.1\r\nHost: a\r\n: 1\r\n\r\n", 400);
    expect_error("GET / HTTP/1.1\r\nHost: a\r\nX\xc3\xa9: 1\r\n\r\n", 400);
}

static void nul_in_header_value(void **state)
{
    (void)state;
    static const char s[] = "GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n";
    expect_error_n(s, sizeof(s) - 1, 400, NULL);
    static const char del[] = "GET / HTTP/1.1\r\nHost: a\r\nX: a\x7f\r\n\r\n";
    expect_error_n(del, sizeof(del) - 1, 400, NULL);
}

static void missing_host_in_http11(void **state)
{
    (void)state;
    expect_error("GET / HTTP/1.1\r\nAccept: */*\r\n\r\n", 400);
}

static void repeated_host(void **state)
{
    (void)state;
    expect_error("GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", 400);
}

static void request_line_too_long(void **state)
{
    (void)state;
    size_t n = 9000;
    char *s = malloc(n + 64);
    assert_non_null(s);
    memcpy(s, "GET /", 5);
    memset(s + 5, 'a', n);
    strcpy(s + 5 + n, " HTTP/1.1\r\nHost: a\r\n\r\n");
    expect_error(s, 414);
    /* The same request with a shorter target fits. */
    strcpy(s + 5 + 8000, " HTTP/1.1\r\nHost: a\r\n\r\n");
    struct msg r;
    assert_int_equal(parse_req(&r, s), EG_OK);
    assert_int_equal(r.m.target_len, 8001);
    free(s);
}

static const struct http_limits small = {.max_line = 64, .max_head = 256, .max_headers = 5};

static void too_many_headers(void **state)
{
    (void)state;
    const char *five = "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n";
    struct msg r;
    assert_int_equal(parse_n(&r, false, five, strlen(five), &small), EG_OK);
    assert_int_equal(r.m.nhdrs, 5);
    const char *six = "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\n\r\n";
    expect_error_n(six, strlen(six), 431, &small);
}

static void head_too_large(void **state)
{
    (void)state;
    char s[512];
    snprintf(s, sizeof(s), "GET / HTTP/1.1\r\nHost: a\r\nX-Big: %0300d\r\n\r\n", 7);
    expect_error_n(s, strlen(s), 431, &small);
    /* Still incomplete, but already past the limit. */
    expect_error_n(s, 260, 431, &small);
}

static void unsupported_http_version(void **state)
{
    (void)state;
    expect_error("GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505);
    expect_error("GET / HTTP/3.0\r\nHost: a\r\n\r\n", 505);
    expect_error("GET / HTTP/1.2\r\nHost: a\r\n\r\n", 505);
}

static void malformed_http_version(void **state)
{
    (void)state;
    expect_error("GET / http/1.1\r\nHost: a\r\n\r\n", 400);
    expect_error("GET / HTTP/1.10\r\nHost: a\r\n\r\n", 400);
    expect_error("GET / HTTP/1\r\nHost: a\r\n\r\n", 400);
    expect_error("GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 400);
    expect_error("GET / \r\nHost: a\r\n\r\n", 400);
}

static void missing_target(void **state)
{
    (void)state;
    expect_error("GET  HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    expect_error("GET HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    expect_error("GET\r\nHost: a\r\n\r\n", 400);
}

static void malformed_method(void **state)
{
    (void)state;
    expect_error(" / HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    expect_error("G(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    expect_error("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA / HTTP/1.1\r\nHost: a\r\n\r\n", 400);
}

/* Scans BODY as a chunked body in one go and expects an error. */
static void expect_chunk_error(const char *body)
{
    struct http_body b;
    chunked_framing(&b);
    size_t used;
    int rc = http_body_scan(&b, body, strlen(body), &used);
    if (rc != EG_ERR)
        print_error("chunked body \"%s\" gave rc %d\n", body, rc);
    assert_int_equal(rc, EG_ERR);
    assert_non_null(b.err);
}

static void bad_chunk_size(void **state)
{
    (void)state;
    expect_chunk_error("zz\r\nhello\r\n0\r\n\r\n");
    expect_chunk_error("-5\r\nhello\r\n0\r\n\r\n");
    expect_chunk_error(" 5\r\nhello\r\n0\r\n\r\n");
    expect_chunk_error("\r\nhello\r\n0\r\n\r\n");
    expect_chunk_error("0x5\r\nhello\r\n0\r\n\r\n");
    expect_chunk_error("5\nhello\r\n0\r\n\r\n");
}

static void chunk_size_overflow(void **state)
{
    (void)state;
    expect_chunk_error("10000000000000005\r\nhello\r\n0\r\n\r\n");
    expect_chunk_error("FFFFFFFFFFFFFFFFFFFF\r\n");
}

static void chunk_data_longer_than_size(void **state)
{
    (void)state;
    expect_chunk_error("3\r\nhello\r\n0\r\n\r\n");
    expect_chunk_error("5\r\nhello\n0\r\n\r\n");
}

static void bad_trailer(void **state)
{
    (void)state;
    expect_chunk_error("0\r\n bad: trailer\r\n\r\n");
    expect_chunk_error("0\r\nX: a\nY: b\r\n\r\n");
}

/* ---- responses ---- */

static void response_status_line_forms(void **state)
{
    (void)state;
    struct msg r;
    assert_int_equal(parse_resp(&r, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"), EG_OK);
    assert_int_equal(r.m.status, 200);
    assert_int_equal(r.m.minor, 1);
    assert_int_equal(parse_resp(&r, "HTTP/1.0 404 Not Found\r\n\r\n"), EG_OK);
    assert_int_equal(r.m.status, 404);
    assert_int_equal(r.m.minor, 0);
    assert_int_equal(parse_resp(&r, "HTTP/1.1 503\r\n\r\n"), EG_OK);
    assert_int_equal(r.m.status, 503);
    assert_int_equal(parse_resp(&r, "HTTP/1.1 302 \r\nLocation: /x\r\n\r\n"), EG_OK);
    assert_int_equal(r.m.status, 302);
    assert_int_equal(parse_resp(&r, "HTTP/1.1 200 It is \tfine\r\n\r\n"), EG_OK);
    assert_int_equal(r.m.head_len, strlen("HTTP/1.1 200 It is \tfine\r\n\r\n"));
    assert_int_equal(r.m.nhdrs, 0);
    /* a response needs no Host, and keeps only the last header */
    assert_int_equal(parse_resp(&r, "HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\n\r\n"), EG_OK);
    assert_int_equal(r.m.nhdrs, 2);
}

static void malformed_status_lines(void **state)
{
    (void)state;
    expect_resp_error("HTTP/1.1 20 OK\r\n\r\n");
    expect_resp_error("HTTP/1.1 2000 OK\r\n\r\n");
    expect_resp_error("HTTP/1.1 099 Low\r\n\r\n");
    expect_resp_error("HTTP/1.1 abc OK\r\n\r\n");
    expect_resp_error("HTTP/2.0 200 OK\r\n\r\n");
    expect_resp_error("http/1.1 200 OK\r\n\r\n");
    expect_resp_error("HTTP/1.1 200 OK\nX: 1\r\n\r\n");
    expect_resp_error("HTTP/1.1 200 OK\r\nX : 1\r\n\r\n");
    expect_resp_error("HTTP/1.1 200 OK\r\nX: 1\r\n folded\r\n\r\n");
    expect_resp_error("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n");
    expect_resp_error("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"
                      "Transfer-Encoding: chunked\r\n\r\n");
}

/* A response whose version token runs past max_line fails with 502, not
 * with the request status 414. */
static void overlong_response_version_is_502(void **state)
{
    (void)state;
    char s[200];
    memset(s, 'H', 100);
    strcpy(s + 100, " 200 OK\r\n\r\n");
    struct msg r;
    assert_int_equal(parse_n(&r, true, s, strlen(s), &small), EG_ERR);
    assert_int_equal(r.m.err_status, 502);
}

static void response_body_kind(const char *head, int method, int kind, uint64_t left)
{
    struct msg r;
    assert_int_equal(parse_resp(&r, head), EG_OK);
    struct http_body b;
    http_body_response(&b, &r.m, method);
    if (b.kind != kind)
        print_error("%s to method %d: body kind %d, wanted %d\n", head, method, b.kind, kind);
    assert_int_equal(b.kind, kind);
    if (kind == BODY_LENGTH)
        assert_int_equal(b.left, left);
}

static void responses_without_body(void **state)
{
    (void)state;
    response_body_kind("HTTP/1.1 100 Continue\r\n\r\n", HTTP_POST, BODY_NONE, 0);
    response_body_kind("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n", HTTP_GET,
                       BODY_NONE, 0);
    response_body_kind("HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n", HTTP_GET,
                       BODY_NONE, 0);
    response_body_kind("HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n", HTTP_GET,
                       BODY_NONE, 0);
    response_body_kind("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", HTTP_HEAD, BODY_NONE, 0);
    response_body_kind("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", HTTP_GET, BODY_NONE, 0);
}

static void response_with_content_length(void **state)
{
    (void)state;
    response_body_kind("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", HTTP_GET, BODY_LENGTH, 10);
    struct msg r;
    const char *s = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcHTTP/1.1";
    assert_int_equal(parse_resp(&r, s), EG_OK);
    struct http_body b;
    http_body_response(&b, &r.m, HTTP_GET);
    size_t used;
    assert_int_equal(scan_all(&b, s + r.m.head_len, strlen(s) - r.m.head_len, &used), EG_OK);
    assert_int_equal(used, 3);
}

static void response_close_delimited(void **state)
{
    (void)state;
    response_body_kind("HTTP/1.0 200 OK\r\n\r\n", HTTP_GET, BODY_CLOSE, 0);
    response_body_kind("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n", HTTP_GET, BODY_CLOSE, 0);
    struct msg r;
    assert_int_equal(parse_resp(&r, "HTTP/1.1 200 OK\r\n\r\n"), EG_OK);
    struct http_body b;
    http_body_response(&b, &r.m, HTTP_GET);
    size_t used;
    assert_int_equal(scan_all(&b, "anything at all", 15, &used), EG_AGAIN);
    assert_int_equal(used, 15);
}

static void response_chunked(void **state)
{
    (void)state;
    char s[512];
    snprintf(s, sizeof(s), "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%sHTTP/1.1 200",
             chunked_body);
    struct msg r;
    assert_int_equal(parse_resp(&r, s), EG_OK);
    struct http_body b;
    http_body_response(&b, &r.m, HTTP_GET);
    assert_int_equal(b.kind, BODY_CHUNKED);
    size_t used;
    assert_int_equal(scan_all(&b, s + r.m.head_len, strlen(s) - r.m.head_len, &used), EG_OK);
    assert_int_equal(used, strlen(chunked_body));
}

static void response_split_one_by_one(void **state)
{
    (void)state;
    const char *s = "HTTP/1.1 404 Not Found\r\nContent-Length: 7\r\nServer: t\r\n\r\n";
    size_t n = strlen(s);
    struct msg r;
    http_msg_init(&r.m, true, r.hdrs, 1);
    int rc = EG_AGAIN;
    size_t len = 0;
    while (rc == EG_AGAIN && len < n)
        rc = http_parse(&r.m, s, ++len, &lim);
    assert_int_equal(rc, EG_OK);
    assert_int_equal(len, n);
    assert_int_equal(r.m.status, 404);
    assert_int_equal(r.m.content_length, 7);
    assert_int_equal(r.m.head_len, n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(get_request),
        cmocka_unit_test(post_with_content_length),
        cmocka_unit_test(chunked_post_with_extensions_and_trailers),
        cmocka_unit_test(te_is_case_insensitive_and_may_list_codings),
        cmocka_unit_test(http10_request),
        cmocka_unit_test(connection_tokens),
        cmocka_unit_test(other_methods),
        cmocka_unit_test(pipelined_requests),
        cmocka_unit_test(header_values_are_trimmed),
        cmocka_unit_test(session_header_found),
        cmocka_unit_test(repeated_session_header_is_rejected),
        cmocka_unit_test(cookies_found_among_several),
        cmocka_unit_test(no_cookie_header),
        cmocka_unit_test(split_at_every_byte_one_by_one),
        cmocka_unit_test(split_in_two_at_every_position),
        cmocka_unit_test(chunked_body_split_in_two_at_every_position),
        cmocka_unit_test(chunked_body_fed_byte_by_byte),
        cmocka_unit_test(content_length_with_transfer_encoding),
        cmocka_unit_test(repeated_content_length),
        cmocka_unit_test(non_numeric_content_length),
        cmocka_unit_test(negative_content_length),
        cmocka_unit_test(transfer_encoding_not_ending_in_chunked),
        cmocka_unit_test(chunked_then_gzip),
        cmocka_unit_test(transfer_encoding_in_http10),
        cmocka_unit_test(bare_lf_line_endings),
        cmocka_unit_test(bare_cr),
        cmocka_unit_test(obs_fold),
        cmocka_unit_test(space_before_colon),
        cmocka_unit_test(invalid_char_in_header_name),
        cmocka_unit_test(nul_in_header_value),
        cmocka_unit_test(missing_host_in_http11),
        cmocka_unit_test(repeated_host),
        cmocka_unit_test(request_line_too_long),
        cmocka_unit_test(too_many_headers),
        cmocka_unit_test(head_too_large),
        cmocka_unit_test(unsupported_http_version),
        cmocka_unit_test(malformed_http_version),
        cmocka_unit_test(missing_target),
        cmocka_unit_test(malformed_method),
        cmocka_unit_test(bad_chunk_size),
        cmocka_unit_test(chunk_size_overflow),
        cmocka_unit_test(chunk_data_longer_than_size),
        cmocka_unit_test(bad_trailer),
        cmocka_unit_test(response_status_line_forms),
        cmocka_unit_test(malformed_status_lines),
        cmocka_unit_test(overlong_response_version_is_502),
        cmocka_unit_test(responses_without_body),
        cmocka_unit_test(response_with_content_length),
        cmocka_unit_test(set_cookie_found_in_a_response_head),
        cmocka_unit_test(hop_by_hop_response_headers_dropped),
        cmocka_unit_test(response_close_delimited),
        cmocka_unit_test(response_chunked),
        cmocka_unit_test(response_split_one_by_one),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
