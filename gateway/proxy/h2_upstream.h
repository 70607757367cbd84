/* HTTP/2 towards servers marked `h2` (cleartext prior knowledge, or TLS with
 * ALPN h2): one connection carries the streams of many clients, over an
 * nghttp2 client session driven from the loop.
 *
 * A stream is a struct upstream of its own (`mux` set, no socket), so that
 * the attempt engine handles it as any server connection: it takes one from
 * the pool (upstream_pool_take: a stream on a connection with room), gives
 * it back when the exchange is over (upstream_pool_give) or closes it
 * (upstream_close: the stream is reset). A fresh connection the engine
 * opened to such a server becomes a shared one when its first stream is
 * ready (h2_up_adopt).
 *
 * The stream's owner (an HTTP/2 client stream, h2_stream.c) gives the
 * request (fields, then body and trailers as they come, through ops) and
 * gets the response (head, data, trailers, end, or failure) through ops.
 * Response bytes are given back to the server's window (h2_up_consume)
 * only once the owner passed them on: a stream holds at most one buffer. */
#ifndef EG_GATEWAY_PROXY_H2_UPSTREAM_H
#define EG_GATEWAY_PROXY_H2_UPSTREAM_H

#include "gateway/proxy/upstream.h"

#include <nghttp2/nghttp2.h>
#include <stdbool.h>
#include <sys/types.h>

struct h2_up_ops {
    /* Request body: up to LEN bytes into BUF; *EOF once it ended (its
     * trailers, if any, are asked next). 0 without EOF: nothing yet (the
     * owner calls h2_up_resume when there is). */
    size_t (*body)(void *owner, uint8_t *buf, size_t len, bool *eof);
    /* The request's trailers, at most CAP, into NV (valid until the call
     * returns); how many. */
    size_t (*trailers)(void *owner, nghttp2_nv *nv, size_t cap);
    /* A response head, :status first; END: the response ends with it. */
    void (*head)(void *owner, const nghttp2_nv *nv, size_t n, bool end);
    void (*data)(void *owner, const uint8_t *p, size_t len);
    /* The response's trailers; its end follows. */
    void (*trailer)(void *owner, const nghttp2_nv *nv, size_t n);
    /* The whole response arrived. */
    void (*end)(void *owner);
    /* The stream ended without its response. REFUSED: the server did not
     * process it (REFUSED_STREAM, beyond its GOAWAY, or the connection
     * failed before it went out). */
    void (*failed)(void *owner, uint32_t code, bool refused);
};

/* A stream on a connection to S with room, or NULL. */
struct upstream *h2_up_take(struct srv *s);
/* CONN, just opened by the engine, becomes a shared connection; returns
 * its first stream, or NULL (CONN untouched) when TLS did not settle on h2. */
struct upstream *h2_up_adopt(struct upstream *conn);
/* Sends the request of stream V: fields NV (pseudo-headers first), a body
 * to follow when BODY. EG_ERR when the connection cannot take it. */
int h2_up_submit(struct upstream *v, const nghttp2_nv *nv, size_t n, bool body,
                 const struct h2_up_ops *ops, void *owner);
/* More request body (or its end) waits for V. */
void h2_up_resume(struct upstream *v);
/* N response bytes of V left its owner's buffer. */
void h2_up_consume(struct upstream *v, size_t n);
/* The engine is done with V (DONE: its exchange completed; else the stream
 * is reset). */
void h2_up_release(struct upstream *v, bool done);
/* S is down or removed: its connections take no new stream and close once
 * their streams are over. */
void h2_up_drain(struct srv *s);
/* Sends what every connection has pending; true when it did anything
 * (h2_session.c's loop-round flusher calls it). */
bool h2_up_flush_pending(void);

#endif
