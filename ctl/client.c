/* A blocking HTTP/1.1 client for one request: connect (bounded by the
 * timeout), send, read until the server closes (the stats listener answers
 * one request per connection with Connection: close), then parse the head
 * with the gateway's own parser and take Content-Length bytes of body. */
#include "ctl/client.h"
#include "base/util.h"
#include "proto/http.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_RESPONSE (16 * 1024 * 1024)

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Waits for EVENTS on FD until DEADLINE; false on timeout. */
static bool wait_fd(int fd, short events, double deadline)
{
    for (;;) {
        double left = deadline - now();
        if (left <= 0)
            return false;
        struct pollfd p = {.fd = fd, .events = events};
        int n = poll(&p, 1, (int)(left * 1000) + 1);
        if (n > 0)
            return true;
        if (n < 0 && errno != EINTR)
            return false;
    }
}

static int open_conn(const struct net_addr *addr, double deadline, char *err, size_t errlen)
{
    char a[80];
    net_addr_str(addr, a, sizeof(a));
    int fd = net_connect(addr, NET_NODELAY);
    if (fd < 0) {
        snprintf(err, errlen, "cannot connect to %s: %s", a, strerror(errno));
        return -1;
    }
    int e = 0;
    if (!wait_fd(fd, POLLOUT, deadline))
        e = ETIMEDOUT;
    else
        e = net_connect_result(fd);
    if (e) {
        snprintf(err, errlen, "cannot connect to %s: %s", a, strerror(e));
        close(fd);
        return -1;
    }
    return fd;
}

void ctl_path_escape(struct sbuf *b, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            strchr("-._~:", c))
            sbuf_add(b, s, 1);
        else
            sbuf_printf(b, "%%%02X", c);
    }
}

static int parse(struct sbuf *in, struct ctl_response *resp, char *err, size_t errlen)
{
    struct http_msg m;
    struct http_hdr hdrs[64];
    struct http_limits lim = {.max_line = 8192, .max_head = 65535, .max_headers = 64};
    http_msg_init(&m, true, hdrs, ARRAY_LEN(hdrs));
    if (!in->len || http_parse(&m, in->s, in->len, &lim) != EG_OK) {
        snprintf(err, errlen, "not an HTTP answer");
        return EG_ERR;
    }
    size_t body = in->len - m.head_len;
    if (m.content_length >= 0 && (size_t)m.content_length < body)
        body = (size_t)m.content_length;
    if (m.content_length >= 0 && (size_t)m.content_length > body) {
        snprintf(err, errlen, "answer cut short");
        return EG_ERR;
    }
    resp->status = m.status;
    sbuf_add(&resp->body, in->s + m.head_len, body);
    sbuf_add(&resp->body, "", 1); /* a NUL after it, not counted */
    resp->body.len--;
    return EG_OK;
}

int ctl_request(const struct net_addr *addr, const char *method, const char *path,
                const char *body, const char *token, double timeout, struct ctl_response *resp,
                char *err, size_t errlen)
{
    memset(resp, 0, sizeof(*resp));
    double deadline = now() + timeout;
    int fd = open_conn(addr, deadline, err, errlen);
    if (fd < 0)
        return EG_ERR;
    struct sbuf req = {0}, in = {0};
    sbuf_printf(&req, "%s %s HTTP/1.1\r\nHost: edgegate\r\nUser-Agent: edgegatectl/%s\r\n"
                      "Connection: close\r\n",
                method, path, EG_VERSION);
    if (token)
        sbuf_printf(&req, "Authorization: Bearer %s\r\n", token);
    if (body)
        sbuf_printf(&req, "Content-Type: application/json\r\nContent-Length: %zu\r\n",
                    strlen(body));
    sbuf_printf(&req, "\r\n%s", body ? body : "");
    int rc = EG_ERR;
    for (size_t sent = 0; sent < req.len;) {
        ssize_t n = send(fd, req.s + sent, req.len - sent, MSG_NOSIGNAL);
        if (n < 0 && errno == EAGAIN && wait_fd(fd, POLLOUT, deadline))
            continue;
        if (n <= 0) {
            snprintf(err, errlen, "cannot send the request: %s",
                     n < 0 ? strerror(errno) : "connection closed");
            goto out;
        }
        sent += (size_t)n;
    }
    for (;;) {
        char buf[16384];
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n < 0 && errno == EAGAIN) {
            if (!wait_fd(fd, POLLIN, deadline)) {
                snprintf(err, errlen, "no answer within %.0fs", timeout);
                goto out;
            }
            continue;
        }
        if (n < 0) {
            snprintf(err, errlen, "cannot read the answer: %s", strerror(errno));
            goto out;
        }
        if (n == 0)
            break;
        if (in.len + (size_t)n > MAX_RESPONSE) {
            snprintf(err, errlen, "answer too large");
            goto out;
        }
        sbuf_add(&in, buf, (size_t)n);
    }
    rc = parse(&in, resp, err, errlen);
out:
    close(fd);
    sbuf_free(&req);
    sbuf_free(&in);
    return rc;
}
