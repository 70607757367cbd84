/* Unit tests of proto/h2_translate.c: HTTP/2 requests as HTTP/1.1 heads,
 * HTTP/1.1 responses as HTTP/2 fields, chunked bodies undone in place with
 * their trailers, trailer fields. */
#include "proto/h2_translate.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#define F(n, v) {(n), (v), sizeof(n) - 1, sizeof(v) - 1}

static char out[4096];

static int build(const struct h2t_field *f, size_t n, bool body, struct h2t_req_info *info)
{
    int len = h2t_request_head(f, n, body, out, sizeof(out), info);
    if (len > 0)
        out[len] = '\0';
    return len;
}

static void request_line_host_and_cookies(void **state)
{
    (void)state;
    struct h2t_field f[] = {
        F(":method", "GET"), F(":scheme", "https"), F(":authority", "site.test"),
        F(":path", "/a?b=c"), F("cookie", "a=1"), F("accept", "*/*"), F("cookie", "sid=x"),
        F("host", "other.test"), F("te", "trailers"),
    };
    struct h2t_req_info info;
    assert_true(build(f, 9, false, &info) > 0);
    assert_string_equal(out, "GET /a?b=c HTTP/1.1\r\nhost: site.test\r\naccept: */*\r\n"
                             "cookie: a=1; sid=x\r\n\r\n");
    assert_false(info.chunked);
}

static void host_kept_without_authority(void **state)
{
    (void)state;
    struct h2t_field f[] = {F(":method", "GET"), F(":path", "/"), F("host", "h.test")};
    struct h2t_req_info info;
    assert_true(build(f, 3, false, &info) > 0);
    assert_string_equal(out, "GET / HTTP/1.1\r\nhost: h.test\r\n\r\n");
}

static void body_framing(void **state)
{
    (void)state;
    struct h2t_field f[] = {F(":method", "POST"), F(":path", "/p"), F(":authority", "a"),
                            F("content-length", "5")};
    struct h2t_req_info info;
    assert_true(build(f, 4, true, &info) > 0);
    assert_string_equal(out, "POST /p HTTP/1.1\r\nhost: a\r\ncontent-length: 5\r\n\r\n");
    assert_true(info.has_cl);
    assert_false(info.chunked);
    assert_true(build(f, 3, true, &info) > 0);
    assert_string_equal(out, "POST /p HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n");
    assert_true(info.chunked);
    assert_true(build(f, 3, false, &info) > 0);
    assert_string_equal(out, "POST /p HTTP/1.1\r\nhost: a\r\ncontent-length: 0\r\n\r\n");
}

static void refused_requests(void **state)
{
    (void)state;
    struct h2t_req_info info;
    struct h2t_field nopath[] = {F(":method", "GET"), F(":authority", "a")};
    assert_int_equal(build(nopath, 2, false, &info), -1);
    struct h2t_field late[] = {F(":method", "GET"), F("x", "1"), F(":path", "/")};
    assert_int_equal(build(late, 3, false, &info), -1);
    struct h2t_field crlf[] = {F(":method", "GET"), F(":path", "/"), F("x", "a\r\nevil: 1")};
    assert_int_equal(build(crlf, 3, false, &info), -1);
    struct h2t_field space[] = {F(":method", "GET"), F(":path", "/ HTTP/1.0\r\n")};
    assert_int_equal(build(space, 2, false, &info), -1);
    struct h2t_field big[] = {F(":method", "GET"), F(":path", "/")};
    assert_int_equal(h2t_request_head(big, 2, false, out, 10, &info), 0);
}

static void chunk_heads(void **state)
{
    (void)state;
    char b[20];
    assert_int_equal(h2t_chunk_head(b, 0), 3);
    assert_memory_equal(b, "0\r\n", 3);
    assert_int_equal(h2t_chunk_head(b, 0x1a2b), 6);
    assert_memory_equal(b, "1a2b\r\n", 6);
}

static void response_fields_drop_hop_by_hop(void **state)
{
    (void)state;
    char head[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: keep-alive, X-Hop\r\n"
                  "Keep-Alive: timeout=5\r\nX-Hop: 1\r\nTransfer-Encoding: chunked\r\n"
                  "Set-Cookie: a=1\r\n\r\n";
    struct http_hdr hdrs[HTTP_MAX_HDRS];
    struct http_msg m;
    struct http_limits lim = {.max_line = 8192, .max_head = 65535, .max_headers = 100};
    http_msg_init(&m, true, hdrs, HTTP_MAX_HDRS);
    assert_int_equal(http_parse(&m, head, strlen(head), &lim), EG_OK);
    struct h2t_field f[10];
    size_t n = h2t_response_fields(&m, head, f, 10);
    assert_int_equal(n, 2);
    assert_memory_equal(f[0].name, "content-type", 12);
    assert_memory_equal(f[0].value, "text/plain", 10);
    assert_memory_equal(f[1].name, "set-cookie", 10);
}

static void unchunk_in_place_with_trailers(void **state)
{
    (void)state;
    char body[] = "5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nGrpc-Status: 0\r\n"
                  "Content-Length: 3\r\n\r\nNEXT";
    char tr[H2T_MAX_TRAILER];
    size_t trl = 0, used, outn;
    struct h2t_unchunk u;
    h2t_unchunk_init(&u);
    assert_int_equal(h2t_unchunk(&u, body, strlen(body), &used, &outn, tr, &trl), EG_OK);
    assert_int_equal(used, strlen(body) - 4);
    assert_int_equal(outn, 11);
    assert_memory_equal(body, "hello world", 11);
    struct h2t_field f[4];
    assert_int_equal(h2t_trailer_fields(tr, trl, f, 4), 1);
    assert_memory_equal(f[0].name, "grpc-status", 11);
    assert_int_equal(f[0].value_len, 1);
    assert_memory_equal(f[0].value, "0", 1);
}

/* Fed one byte at a time, the same payload and trailers come out. */
static void unchunk_split(void **state)
{
    (void)state;
    const char *src = "3\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nx-t: v\r\n\r\n";
    char buf[128], tr[H2T_MAX_TRAILER], got[64];
    size_t trl = 0, gl = 0, used, outn;
    struct h2t_unchunk u;
    h2t_unchunk_init(&u);
    int rc = EG_AGAIN;
    for (size_t i = 0; src[i] && rc == EG_AGAIN; i++) {
        buf[0] = src[i];
        rc = h2t_unchunk(&u, buf, 1, &used, &outn, tr, &trl);
        assert_int_equal(used, 1);
        memcpy(got + gl, buf, outn);
        gl += outn;
    }
    assert_int_equal(rc, EG_OK);
    assert_int_equal(gl, 19);
    assert_memory_equal(got, "abc0123456789abcdef", 19);
    assert_int_equal(trl, 8);
    assert_memory_equal(tr, "x-t: v\r\n", 8);
}

static void unchunk_errors(void **state)
{
    (void)state;
    const char *bad[] = {"x\r\n", "3\r\nabcd\r\n", "3\nabc", "0\r\n\x01\r\n\r\n",
                         "fffffffffffffffff\r\n"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char buf[64], tr[H2T_MAX_TRAILER];
        size_t trl = 0, used, outn;
        struct h2t_unchunk u;
        h2t_unchunk_init(&u);
        strcpy(buf, bad[i]);
        assert_int_equal(h2t_unchunk(&u, buf, strlen(buf), &used, &outn, tr, &trl), EG_ERR);
        assert_non_null(u.err);
    }
}

static void trailer_names(void **state)
{
    (void)state;
    assert_true(h2t_trailer_allowed("grpc-status", 11));
    assert_false(h2t_trailer_allowed("content-length", 14));
    assert_false(h2t_trailer_allowed("host", 4));
    assert_false(h2t_trailer_allowed(":status", 7));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(request_line_host_and_cookies),
        cmocka_unit_test(host_kept_without_authority),
        cmocka_unit_test(body_framing),
        cmocka_unit_test(refused_requests),
        cmocka_unit_test(chunk_heads),
        cmocka_unit_test(response_fields_drop_hop_by_hop),
        cmocka_unit_test(unchunk_in_place_with_trailers),
        cmocka_unit_test(unchunk_split),
        cmocka_unit_test(unchunk_errors),
        cmocka_unit_test(trailer_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
