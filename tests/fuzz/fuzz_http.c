/* libFuzzer target: the HTTP parser. The input is parsed as a request head
 * and body, fed in pieces whose sizes come from the first input byte, and the
 * result must equal the result of parsing it in one piece. Then the same
 * bytes are parsed as a response. */
#include "proto/http.h"

#include <stdlib.h>
#include <string.h>

static const struct http_limits lim = {.max_line = 8192, .max_head = 16384,
                                       .max_headers = HTTP_MAX_HDRS,
                                       .sess_header = "X-Session", .sess_header_len = 9};

static int parse_whole(struct http_msg *m, struct http_hdr *h, const char *p, size_t n,
                       bool resp)
{
    http_msg_init(m, resp, h, resp ? 1 : HTTP_MAX_HDRS);
    return http_parse(m, p, n, &lim);
}

static int parse_split(struct http_msg *m, struct http_hdr *h, const char *p, size_t n,
                       size_t step, bool resp)
{
    http_msg_init(m, resp, h, resp ? 1 : HTTP_MAX_HDRS);
    int rc = EG_AGAIN;
    for (size_t len = step; rc == EG_AGAIN; len += step) {
        if (len > n)
            len = n;
        rc = http_parse(m, p, len, &lim);
        if (len == n)
            break;
    }
    return rc;
}

static void body(const struct http_msg *m, const char *p, size_t n, size_t step, bool resp)
{
    struct http_body b;
    if (resp)
        http_body_response(&b, m, HTTP_GET);
    else
        http_body_request(&b, m);
    size_t off = 0;
    while (off < n) {
        size_t used, len = step < n - off ? step : n - off;
        int rc = http_body_scan(&b, p + off, len, &used);
        if (used > len)
            abort();
        off += used;
        if (rc != EG_AGAIN || used < len)
            break;
    }
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t step = (size_t)(data[0] % 16) + 1;
    const char *p = (const char *)data + 1;
    size_t n = size - 1;
    static struct http_hdr h1[HTTP_MAX_HDRS], h2[HTTP_MAX_HDRS];
    for (int resp = 0; resp < 2; resp++) {
        struct http_msg a, b;
        int ra = parse_whole(&a, h1, p, n, resp);
        int rb = parse_split(&b, h2, p, n, step, resp);
        if (ra != rb || (ra == EG_OK && (a.head_len != b.head_len || a.flags != b.flags ||
                                             a.content_length != b.content_length)))
            abort();
        if (ra == EG_ERR && (a.err_status == 0 || a.err == NULL))
            abort();
        if (ra == EG_OK) {
            if (a.head_len > n)
                abort();
            const char *v;
            size_t vl;
            if (http_find_cookie(&a, p, "sid", 3, &v, &vl) && (v < p || v + vl > p + n))
                abort();
            body(&a, p + a.head_len, n - a.head_len, step, resp);
        }
    }
    return 0;
}
