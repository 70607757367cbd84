/* HTTP/2 from clients (RFC 9113), with nghttp2.
 *
 * A connection (struct h2_conn) comes from http mode once its client speaks
 * HTTP/2 (ALPN h2, or the preface on a cleartext listener with `http2 on`,
 * see client.c). It runs an nghttp2 server session over its struct sk, so
 * that TLS goes through the same socket layer: bytes read are fed to
 * nghttp2 at once (no input buffer is kept), frames nghttp2 produces are
 * gathered in `ob` and written when the socket takes them; `ob` is held only
 * while frames are pending, so an idle connection holds no buffer.
 *
 * Each stream (struct h2_stream) is an HTTP/1.1 request for the attempt
 * engine, with a struct conn of its own (conn_stream_init: its generation,
 * its timer) and a struct attempt: routing, affinity, failover, replay,
 * holding, error responses, access log and counters are those of http mode.
 * Its request is translated (proto/h2_translate.h) and goes out over a
 * pooled HTTP/1.1 server connection; the response comes back translated.
 *
 * Memory is bounded by the flow-control windows: request DATA is given back
 * to the client's window (nghttp2_session_consume) only once it left the
 * stream's buffer, so a stream buffers at most its window (64 KiB) and the
 * connection at most the connection window; a response is read from its
 * server only while the stream's one buffer has room, and handed to nghttp2
 * only as the client's windows open.
 *
 * Entry points (socket events, timers, the engine's callbacks) run between
 * h2_enter() and h2_leave(): frames are sent, and a connection or stream
 * freed, only at the outermost level, so no callback finds its object gone. */
#ifndef EG_GATEWAY_PROXY_H2_SESSION_H
#define EG_GATEWAY_PROXY_H2_SESSION_H

#include "gateway/proxy/attempt.h"
#include "gateway/proxy/client.h"
#include "proto/forward.h"
#include "proto/h2_translate.h"
#include "proto/http.h"
#include "proto/proxy_protocol.h"

#include <nghttp2/nghttp2.h>

/* What the HTTP/2 mode gives the connections it takes over (see conn_ops.h2). */
extern const struct conn_ops h2_conn_ops;
/* A graceful GOAWAY on every HTTP/2 connection (drain, reload): clients open
 * new connections for new requests, those in flight finish. */
void h2_goaway_all(void);

/* ---- shared by h2_session.c and h2_stream.c ---- */

/* Limits (see README, HTTP/2). */
#define H2_MAX_STREAMS 100          /* concurrent streams per connection */
#define H2_STREAM_WINDOW 65535      /* per stream: request bytes buffered at most */
#define H2_CONN_WINDOW (1 << 20)    /* per connection */
#define H2_MAX_FIELDS 256           /* header fields of one request, cookie crumbs included */

enum h2_conn_state {
    H2C_OPEN,           /* streams come and go */
    H2C_GOAWAY,         /* graceful GOAWAY sent or queued: closes after the last stream */
    H2C_CLOSING,        /* an error: the GOAWAY goes out, then the connection closes */
};

struct h2_conn {
    struct conn c;
    enum h2_conn_state state;
    nghttp2_session *ng;
    struct buf *ob;             /* frames for the client, while any are pending */
    struct dlist streams;
    struct dlist link;          /* all connections (drain, reload) */
    struct dlist flush_link;    /* connections with frames to send this loop round */
    int32_t max_stream_id;      /* the highest a HEADERS frame named */
    uint64_t unconsumed;        /* request bytes of all streams not given back yet */
    int nstreams;
    int depth;                  /* h2_enter() nesting */
    bool dead;                  /* freed at the outermost h2_leave() */
    bool raw;                   /* nghttp2 gave up on the session: not asked again */
    bool cl_eof;                /* the client closed its sending side */
    double glitch_tokens;       /* budget for frames that do nothing (see h2_glitch) */
    ev_tstamp glitch_at;
    double reset_tokens;        /* budget for client resets (Rapid Reset) */
    ev_tstamp reset_at;
};

enum h2_req_progress {
    H2R_HEADERS,        /* header fields arriving */
    H2R_BODY,           /* head sent to the engine, DATA arriving */
    H2R_DONE,           /* END_STREAM received */
};

enum h2_resp_progress {
    H2P_NONE,           /* no server answer yet */
    H2P_HEAD,           /* reading a response head */
    H2P_BODY,           /* final head submitted, body arriving */
    H2P_DONE,           /* all of the server's response read */
};

/* Header fields of a request while they arrive: references to nghttp2's
 * buffers, given back once the head is built. */
struct h2_fields {
    nghttp2_rcbuf *rc[2 * H2_MAX_FIELDS];
    int n;
};

/* How far one server connection has a stream's outgoing request:
 * [PROXY header] head, then the body (raw, or chunked: one chunk for
 * whatever payload waits when the last one went out), then the end. */
struct h2_out {
    uint32_t head_sent;         /* of pp + head */
    uint32_t body_sent;         /* payload bytes out (whole chunks when chunked) */
    uint32_t chunk_len, chunk_pos;  /* the chunk being written, bytes of it out */
    uint32_t fin_sent;
    bool chunk_open;            /* a chunk of the request body is being written */
    uint8_t chunk_hl;
    char chunk_hdr[20];
};

struct h2_stream {
    struct conn c;              /* the engine's view: generation, timer */
    struct attempt a;
    struct h2_conn *h;
    struct dlist link;          /* h->streams */
    int32_t id;
    enum h2_req_progress req_state;
    enum h2_resp_progress resp_state;
    bool too_large;             /* header list over the limit: 431 */
    bool chunked;               /* the request body goes out chunked */
    bool fin;                   /* the request's end is in rq (fin_len bytes) */
    bool idempotent;            /* may be replayed once it reached a server */
    bool reached;               /* request bytes were written to a server */
    bool replay_off;            /* request bytes were dropped: no replay */
    bool submitted;             /* a final response head was submitted */
    bool answered;              /* our own response went out instead */
    bool deferred;              /* the data provider waits for bytes */
    bool keep_server;           /* the server connection may be pooled */
    bool accounted;             /* counted and logged */
    bool te_trailers;           /* the client said `te: trailers` */
    uint8_t method;
    uint8_t interims;           /* 1xx heads passed on */
    uint8_t pp_len;
    uint16_t status;
    uint32_t hdr_bytes;         /* header list size so far (RFC 9113 6.5.2) */
    struct h2_fields *fields;   /* while header fields arrive */
    /* The request towards the server, in rq: [head][payload][end]. */
    struct buf *rq;
    uint32_t head_len, pay_len, fin_len;
    struct h2_out out;          /* how far the ready connection has it */
    struct h2_out hedge_out;    /* and the hedge connection (hedge_after) */
    ev_tstamp body_start;       /* the request's HEADERS ended (body_min_rate) */
    uint64_t body_in;           /* DATA bytes received */
    uint64_t unconsumed;        /* DATA bytes not yet given back to the windows */
    /* The response from the server, in ob: [payload for the client][bytes
     * being read]. */
    struct buf *ob;
    uint32_t pay;               /* payload bytes at ob->head */
    struct http_msg resp;
    struct http_hdr resp_hdr;
    struct http_body respb;
    struct h2t_unchunk unchunk;
    char *trailers;             /* the response's trailer section, when it has one */
    uint32_t trailers_len;
    ev_tstamp start;
    uint64_t tx_req, tx_resp;
    unsigned char pp[PP_BUILD_MAX];
    char key[AFFINITY_KEY_MAX];
    char ip[CONN_IP_MAX];
    char log_method[16];
    uint16_t log_path_len;
    char log_path[256];
};

/* h2_session.c */
void h2_enter(struct h2_conn *h);
void h2_leave(struct h2_conn *h);
/* Counts a frame that does nothing (SETTINGS, PING, PRIORITY, empty DATA):
 * beyond a budget the connection is closed (ENHANCE_YOUR_CALM). */
void h2_glitch(struct h2_conn *h);
/* Ends the connection: GOAWAY with CODE, then close. */
void h2_terminate(struct h2_conn *h, uint32_t code);

/* h2_stream.c: nghttp2's stream callbacks and the engine's. */
struct h2_stream *h2_stream_new(struct h2_conn *h, int32_t id);
/* Frees S without a word to nghttp2 (the connection ends, or nghttp2 closed
 * the stream): whatever runs is cancelled, the request accounted. */
void h2_stream_free(struct h2_stream *s, const char *why);
int h2_stream_header(struct h2_stream *s, const nghttp2_frame *f, nghttp2_rcbuf *name,
                     nghttp2_rcbuf *value);
void h2_stream_headers_done(struct h2_stream *s, const nghttp2_frame *f);
void h2_stream_data(struct h2_stream *s, const uint8_t *data, size_t len);
void h2_stream_end(struct h2_stream *s);
/* The frame that ended our side of the stream went out. */
void h2_stream_sent_end(struct h2_stream *s);

#endif
