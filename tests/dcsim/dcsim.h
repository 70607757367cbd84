/* dcsim: the simulated datacenter used by edgegate's demo, tests and
 * benchmarks. One process, one libev loop, one listener; every connection is
 * a struct conn driven by an explicit state.
 *
 *   main.c  command line, listener, signals, accept
 *   conn.c  connection lifecycle and transport (plain TCP or TLS)
 *   http.c  HTTP/1.1 requests and answers
 *   ws.c    WebSocket upgrade and echo
 *   echo.c  raw TCP echo mode
 *   buf.c   byte buffers */
#ifndef DCSIM_H
#define DCSIM_H

#include <ev.h>
#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HDR_MAX (16 * 1024)        /* request line + header fields; also the input buffer */
#define OUT_HIGH (64 * 1024)       /* stop reading while more than this is unsent */
#define SRC_CHUNK (64 * 1024)      /* largest write of a streamed body */
#define IDLE_TIMEOUT 60.0          /* seconds without traffic before closing */
#define LINGER_TIMEOUT 5.0         /* seconds to wait for the peer's FIN after ours */
#define ECHO_MARKS 64              /* delayed echo: pending release times */

enum dcsim_mode { MODE_HTTP, MODE_ECHO };

/* Process-wide settings and state; there is one server per process. */
struct server {
    struct ev_loop *loop;
    const char *name;
    size_t name_len;
    enum dcsim_mode mode;
    double delay;              /* seconds before every answer (or echoed chunk) */
    int health_status;         /* what /health answers while healthy */
    bool health_failed;        /* SIGUSR1 seen: /health answers 503 */
    bool log;
    unsigned max_conns;        /* 0: unlimited */
    unsigned nconns;
    SSL_CTX *tls;              /* NULL: plain TCP */
    ev_io accept_w;
    ev_timer accept_retry;     /* re-enables accept after running out of fds */
};

extern struct server srv;

/* Pending bytes are data[off, len); appends go at len. */
struct buf {
    char *data;
    size_t off, len, cap;
};

static inline size_t buf_pending(const struct buf *b) { return b->len - b->off; }
static inline char *buf_head(const struct buf *b) { return b->data + b->off; }
/* Makes room for EXTRA bytes after len (compacting, then growing). -1: no memory. */
int buf_reserve(struct buf *b, size_t extra);
int buf_append(struct buf *b, const void *p, size_t n);
void buf_consume(struct buf *b, size_t n);
void buf_compact(struct buf *b);
void buf_free(struct buf *b);

enum conn_state {
    CS_HANDSHAKE,   /* TLS handshake in progress */
    CS_HEAD,        /* reading a request line and header fields */
    CS_BODY,        /* reading a request body */
    CS_WAIT,        /* request read, answer held back by the delay timer */
    CS_WS,          /* upgraded: WebSocket echo */
    CS_ECHO,        /* echo mode: raw TCP echo */
    CS_LINGER,      /* last bytes out, then FIN, then wait for the peer's FIN */
    CS_CLOSED,      /* to be freed by the event handler that saw it */
};

/* What a parsing step did; drives the per-connection processing loops. */
enum step { STEP_PROGRESS, STEP_NEED_INPUT, STEP_BLOCKED };

enum route { R_DEFAULT, R_HEALTH, R_ECHO, R_STATUS, R_BYTES, R_WS };

enum chunk_state { CH_SIZE, CH_DATA, CH_DATA_END, CH_TRAILER };

/* The request being read or answered; reset at each request line. */
struct http_req {
    char method[32];
    int minor;                 /* HTTP/1.minor */
    bool head;                 /* HEAD: answer without body */
    bool keep_alive;
    bool conn_close, conn_keep_alive;   /* Connection tokens seen */
    bool has_length;
    uint64_t length;           /* Content-Length */
    bool te_seen, chunked;
    bool upgrade_ws;
    bool expect_continue;
    char ws_key[64];
    enum route route;
    uint64_t arg;              /* status code or byte count, by route */
    double slow;               /* /slow/MS: extra seconds before answering */
    enum chunk_state chunk;
    uint64_t body_left;        /* body (or current chunk) bytes still to read */
    uint64_t body_len;         /* body bytes read */
    size_t trailer_len;
};

struct ws_frame {
    uint64_t left;             /* payload bytes of the current data frame to echo */
    uint8_t mask[4];           /* all zero for unmasked frames */
    unsigned mask_pos;
};

struct echo_mark {
    uint64_t end;              /* received-byte position this mark covers */
    ev_tstamp at;              /* when those bytes may be echoed */
};

/* Delayed echo: a ring of release times over the bytes held in `out`. */
struct echo_state {
    uint64_t received, released;
    struct echo_mark marks[ECHO_MARKS];
    unsigned head, count;
};

struct conn {
    int fd;
    SSL *ssl;
    enum conn_state state;
    bool peer_eof;             /* the peer will send nothing more */
    bool rd_drained;           /* last read found nothing more; wait for an event */
    bool wr_shut;              /* our FIN is sent */
    int rd_want, wr_want;      /* events reads / writes wait for (TLS may swap them) */
    int events;                /* what the io watcher is armed for */
    ev_io io;
    ev_timer idle;
    ev_timer delay;            /* --delay and /slow, or delayed echo release */
    ev_tstamp last_active;
    ev_tstamp idle_limit;
    struct buf in;             /* http: fixed HDR_MAX bytes */
    struct buf out;
    size_t out_hold;           /* bytes at the end of `out` not to send yet */
    const char *src;           /* streamed body, sent after `out` */
    uint64_t src_left;
    bool src_fill;             /* src repeats one chunk instead of advancing */
    struct buf target;         /* request target, kept until answered */
    struct buf body;           /* /echo request body */
    struct http_req req;
    struct ws_frame ws;
    struct echo_state echo;
};

/* main.c */
void log_line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void server_conn_closed(void);

/* conn.c */
void conn_open(int fd);
/* Reads up to LEN bytes. 0: nothing now; peer_eof or CS_CLOSED tell why else. */
size_t conn_recv(struct conn *c, void *p, size_t len);
/* Sends what it can of `out` (but out_hold) and then the streamed body.
 * True when anything was sent. */
bool conn_flush(struct conn *c);
bool conn_has_output(const struct conn *c);
void conn_linger(struct conn *c);

/* http.c */
void http_drive(struct conn *c);
bool http_wants_read(const struct conn *c);
void http_on_delay(struct conn *c);

/* ws.c */
void ws_upgrade(struct conn *c);
enum step ws_on_input(struct conn *c);

/* echo.c */
void echo_drive(struct conn *c);
bool echo_wants_read(const struct conn *c);
void echo_on_delay(struct conn *c);

#endif
