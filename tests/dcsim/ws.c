/* WebSocket (RFC 6455) upgrade and echo.
 *
 * Data frames are echoed frame by frame as they arrive: the header goes out
 * at once (unmasked, same FIN and opcode, same length) and the payload is
 * unmasked and streamed behind it, so a frame of any size needs no buffer of
 * its size. Control frames are small and handled whole. */
#include "tests/dcsim/dcsim.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define WS_FIN 0x80
#define WS_CONTROL 0x08
#define WS_CONTROL_MAX 125

enum ws_opcode { WS_CONT = 0, WS_TEXT = 1, WS_BINARY = 2, WS_CLOSE = 8, WS_PING = 9, WS_PONG = 10 };

/* Sec-WebSocket-Accept: base64(SHA-1(key GUID)), 28 characters. */
static void ws_accept_value(const struct http_req *q, char out[32])
{
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int dlen = 0;
    char text[sizeof q->ws_key + sizeof WS_GUID];
    int n = snprintf(text, sizeof text, "%s%s", q->ws_key, WS_GUID);

    EVP_Digest(text, n, digest, &dlen, EVP_sha1(), NULL);
    EVP_EncodeBlock((unsigned char *)out, digest, dlen);
}

void ws_upgrade(struct conn *c)
{
    char accept[32];

    ws_accept_value(&c->req, accept);
    if (buf_reserve(&c->out, 256 + srv.name_len)) {
        c->state = CS_CLOSED;
        return;
    }
    c->out.len += snprintf(c->out.data + c->out.len, c->out.cap - c->out.len,
                           "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                           "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\nX-DC: %s\r\n\r\n",
                           accept, srv.name);
    memset(&c->ws, 0, sizeof c->ws);
    c->state = CS_WS;
}

/* Appends a frame header for an unmasked frame of LEN payload bytes. */
static int ws_put_header(struct conn *c, uint8_t b0, uint64_t len)
{
    uint8_t h[10];
    size_t n = 2;

    h[0] = b0;
    if (len < 126) {
        h[1] = len;
    } else if (len <= 0xffff) {
        h[1] = 126;
        h[2] = len >> 8;
        h[3] = len;
        n = 4;
    } else {
        h[1] = 127;
        for (int i = 0; i < 8; i++)
            h[2 + i] = len >> (56 - 8 * i);
        n = 10;
    }
    return buf_append(&c->out, h, n);
}

static enum step ws_send(struct conn *c, uint8_t b0, const uint8_t *payload, size_t len)
{
    if (ws_put_header(c, b0, len) || buf_append(&c->out, payload, len))
        c->state = CS_CLOSED;
    return STEP_PROGRESS;
}

/* A protocol error: close with 1002, as the RFC asks. */
static enum step ws_fail(struct conn *c)
{
    static const uint8_t code[] = { 1002 >> 8, 1002 & 0xff };

    ws_send(c, WS_FIN | WS_CLOSE, code, sizeof code);
    if (c->state != CS_CLOSED)
        conn_linger(c);
    return STEP_PROGRESS;
}

static enum step ws_control(struct conn *c, uint8_t b0, uint64_t len, size_t hlen)
{
    uint8_t payload[WS_CONTROL_MAX];

    if (!(b0 & WS_FIN) || len > WS_CONTROL_MAX)
        return ws_fail(c);
    if (buf_pending(&c->in) < hlen + len)
        return STEP_NEED_INPUT;
    const uint8_t *p = (const uint8_t *)buf_head(&c->in) + hlen;
    for (size_t i = 0; i < len; i++)
        payload[i] = p[i] ^ c->ws.mask[i & 3];
    buf_consume(&c->in, hlen + len);
    switch (b0 & 0x0f) {
    case WS_PING:
        return ws_send(c, WS_FIN | WS_PONG, payload, len);
    case WS_PONG:
        return STEP_PROGRESS;
    case WS_CLOSE:
        ws_send(c, WS_FIN | WS_CLOSE, payload, len);
        if (c->state != CS_CLOSED)
            conn_linger(c);
        return STEP_PROGRESS;
    default:
        return ws_fail(c);
    }
}

/* Parses a frame header; data frames start echoing, control frames run. */
static enum step ws_frame(struct conn *c)
{
    const uint8_t *p = (const uint8_t *)buf_head(&c->in);
    size_t avail = buf_pending(&c->in);

    if (avail < 2)
        return STEP_NEED_INPUT;
    unsigned len7 = p[1] & 0x7f;
    size_t ext = len7 == 126 ? 2 : len7 == 127 ? 8 : 0;
    size_t hlen = 2 + ext + (p[1] & 0x80 ? 4 : 0);
    if (avail < hlen)
        return STEP_NEED_INPUT;
    uint64_t len = ext ? 0 : len7;
    for (size_t i = 0; i < ext; i++)
        len = len << 8 | p[2 + i];
    if (len >> 63)
        return ws_fail(c);
    memset(c->ws.mask, 0, sizeof c->ws.mask);
    if (p[1] & 0x80)
        memcpy(c->ws.mask, p + hlen - 4, 4);

    uint8_t b0 = p[0];
    if (b0 & WS_CONTROL)
        return ws_control(c, b0, len, hlen);
    if ((b0 & 0x0f) > WS_BINARY)
        return ws_fail(c);
    buf_consume(&c->in, hlen);
    if (ws_put_header(c, b0 & (WS_FIN | 0x0f), len)) {
        c->state = CS_CLOSED;
        return STEP_BLOCKED;
    }
    c->ws.left = len;
    c->ws.mask_pos = 0;
    return STEP_PROGRESS;
}

/* Unmasks what has arrived of the current data frame into the output. */
static enum step ws_payload(struct conn *c)
{
    struct ws_frame *w = &c->ws;
    size_t n = buf_pending(&c->in);

    if (n > w->left)
        n = w->left;
    if (!n)
        return STEP_NEED_INPUT;
    if (buf_reserve(&c->out, n)) {
        c->state = CS_CLOSED;
        return STEP_BLOCKED;
    }
    const uint8_t *src = (const uint8_t *)buf_head(&c->in);
    uint8_t *dst = (uint8_t *)c->out.data + c->out.len;
    for (size_t i = 0; i < n; i++)
        dst[i] = src[i] ^ w->mask[w->mask_pos++ & 3];
    c->out.len += n;
    w->left -= n;
    buf_consume(&c->in, n);
    return STEP_PROGRESS;
}

enum step ws_on_input(struct conn *c)
{
    if (buf_pending(&c->out) > OUT_HIGH)
        return STEP_BLOCKED;
    return c->ws.left ? ws_payload(c) : ws_frame(c);
}
