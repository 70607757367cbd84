/* http mode: HTTP/1.1 requests routed one by one, keep-alive on both sides.
 *
 * A client connection (struct http_session) goes SETUP (client.c: PROXY
 * header, TLS handshake) -> IDLE -> EXCHANGE -> IDLE ... with
 * TUNNEL after 101 Switching Protocols and ERROR to write an error response
 * and close. While IDLE it holds no buffer and no per-request state: a
 * struct http_exchange comes from a pool when a request's first byte
 * arrives and goes back when its response is out.
 *
 * The phases live in their own files: http_request.c (reading, parsing and
 * sending the request), http_response.c (the response, and the tunnel),
 * http_errors.c (error responses and accounting); http_session.c holds the
 * connection's life and dispatches events. */
#ifndef EG_GATEWAY_PROXY_HTTP_SESSION_H
#define EG_GATEWAY_PROXY_HTTP_SESSION_H

#include "base/net.h"
#include "gateway/proxy/attempt.h"
#include "gateway/proxy/client.h"
#include "gateway/proxy/pump.h"
#include "proto/forward.h"
#include "proto/http.h"
#include "proto/proxy_protocol.h"

/* What http mode gives its client connections (see conn_accept). */
extern const struct conn_ops http_conn_ops;
/* Closes client connections that sit idle between requests (drain). */
void http_close_idle(void);

/* ---- shared by the http_*.c files ---- */

enum http_phase {
    PHASE_SETUP,        /* client.c reads the PROXY header, does the TLS handshake */
    PHASE_IDLE,          /* between requests */
    PHASE_EXCHANGE,      /* a request and its response (see struct http_exchange) */
    PHASE_TUNNEL,        /* after 101: bytes both ways */
    PHASE_ERROR,        /* writing an error response, then closing */
};

/* How far the request has come from the client. */
enum req_progress {
    REQ_HEAD,           /* reading the head */
    REQ_BODY,           /* head parsed, body arriving */
    REQ_DONE,           /* all of it arrived */
};

/* How far the response has come from the server. */
enum resp_progress {
    RESP_HEAD,          /* reading a head */
    RESP_INTERIM,       /* a 1xx head parsed, being passed on: another head follows */
    RESP_BODY,          /* final head parsed, body arriving */
    RESP_DONE,          /* all of it read */
};

/* Interim (1xx) responses passed on for one request, at most: a server
 * sending them forever gets a 502. */
#define MAX_INTERIM 8

/* Segments of an outgoing request: every header line left behind costs one
 * (see fwd_prepare()); a request with more than MAX_DROPPED of them is
 * refused (400), which keeps it within MAX_IOV. */
#define MAX_IOV 64
#define MAX_DROPPED 40

struct http_exchange {
    struct attempt a;
    enum req_progress req_state;
    enum resp_progress resp_state;
    bool reached;               /* request bytes were written to a server (any attempt) */
    bool head_gone;             /* head bytes dropped from ib (body streamed) */
    bool replay_off;            /* request bytes dropped: no replay */
    bool resp_started;          /* response bytes were written to the client */
    bool mid_response;          /* part of a response went out: no answer of ours fits now */
    bool keep_client;           /* the client connection persists afterwards */
    bool keep_server;           /* the server connection may go back to the pool */
    bool accounted;             /* this request is in the stats (and the log) */
    bool buffering;             /* buffer_request: the body arrives before a server is chosen */
    uint8_t method;
    uint8_t interims;           /* 1xx heads passed on */
    uint8_t pp_len;             /* PROXY header opening this attempt's connection */
    struct buf *ob;             /* response bytes */
    ev_tstamp start;            /* first byte of the head */
    ev_tstamp body_start;       /* the head was complete */
    uint64_t body_in;           /* body bytes received so far */
    uint64_t tx_req, tx_resp;   /* request bytes to the server, response bytes out */
    uint32_t req_len;           /* bytes of this request in ib, from ib->head */
    uint32_t req_sent;          /* bytes of the outgoing request already written */
    uint32_t hedge_sent;        /* the same, on the hedge connection */
    uint32_t ohl;               /* length of the outgoing head */
    uint32_t ob_end;            /* ob: end of the current response's bytes */
    struct pump up, down;       /* TUNNEL: client to server, server to client */
    struct http_msg req, resp;
    struct http_body reqb, respb;
    struct fwd fwd;             /* what the request looks like towards the server */
    uint16_t log_path_len;
    char log_method[16];        /* method and path kept for the access log */
    char log_path[256];
    char key[AFFINITY_KEY_MAX];
    char ip[CONN_IP_MAX];       /* the client's address as text */
    unsigned char pp[PP_BUILD_MAX];
    struct http_hdr req_hdrs[HTTP_MAX_HDRS];
    struct http_hdr resp_hdr;
};

struct http_session {
    struct conn c;
    enum http_phase phase;
    bool cl_eof;                /* the client closed its sending side */
    struct buf *ib;             /* client bytes: the request, pipelined ones after it */
    struct http_exchange *x;    /* the request in progress, NULL while IDLE */
    struct upstream *kept;      /* send_proxy: this client's idle server connection */
    const char *err_msg;        /* ERROR: the response being written */
    uint16_t err_len, err_sent;
    struct dlist link;          /* all sessions, for drain */
};

/* http_session.c */
void http_free(struct http_session *s, bool abort_client);
void http_update_interest(struct http_session *s);
void http_set_idle(struct http_session *s);
/* The ready server connection can be read (RD) or written (WR). */
void http_server_io(struct http_session *s, bool rd, bool wr);

/* http_request.c: each returning bool returns false when the session ended
 * or moved on (another attempt, an error response). */
void http_exchange_free(struct http_session *s);
bool http_read_client(struct http_session *s);
bool http_process_input(struct http_session *s);
bool http_flush_request(struct http_session *s);
bool http_request_unsent(const struct http_exchange *x);
uint32_t http_out_total(const struct http_exchange *x);
bool http_client_readable(const struct http_session *s);
/* The exchange's request timed out (no complete head, body or answer). */
void http_request_timeout(struct http_session *s);
extern const struct attempt_ops http_attempt_ops;

/* http_response.c */
bool http_read_response(struct http_session *s);
bool http_flush_response(struct http_session *s);
void http_tunnel_io(struct http_session *s, bool client_side, bool rd, bool wr);
/* Room in ob for more response bytes. */
size_t http_ob_room(const struct http_exchange *x);
static inline size_t http_ob_pending(const struct http_exchange *x)
{
    return x->ob ? x->ob_end - x->ob->head : 0;
}

/* http_errors.c */
/* Answers STATUS and closes. When a response already started there is no
 * way to tell the client but to cut the connection. */
void http_send_error(struct http_session *s, int status);
void http_error_io(struct http_session *s, bool rd, bool wr);
/* Accounts for a finished request (STATUS 0: cut without a status). */
void http_request_done(struct http_session *s, int status, const char *end);

#endif
