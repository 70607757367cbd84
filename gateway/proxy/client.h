/* What every client connection has, whatever its mode: the client socket,
 * the generation and listener it runs under, one timer for all its timeouts,
 * and its setup: [PROXY header from a balancer] -> [TLS handshake | sniffing
 * for the HTTP/2 preface] -> established, after which the mode (tcp.c,
 * http_session.c, h2_session.c, which embed it) takes over. A connection
 * that turns out to speak HTTP/2 (ALPN h2, or the preface) moves from the
 * mode it was accepted under (http) to the one that speaks it (h2).
 *
 * The streams of an HTTP/2 connection are clients of their own for the
 * attempt engine: each has a struct conn without a socket (conn_stream_init)
 * holding its generation and its timer. */
#ifndef EG_GATEWAY_PROXY_CLIENT_H
#define EG_GATEWAY_PROXY_CLIENT_H

#include "gateway/balance/generation.h"
#include "base/socket.h"

struct listener;
struct conn;

enum conn_setup {
    CONN_PROXY,         /* reading the PROXY header of a balancer */
    CONN_SNIFF,         /* cleartext with http2 on: waiting for the first bytes */
    CONN_HANDSHAKE,     /* client TLS handshake */
    CONN_ESTABLISHED,   /* the mode drives the connection */
};

/* What a mode gives its client connections. */
struct conn_ops {
    /* The mode's structures (struct conn first) come from this pool. */
    struct pool *pool;
    /* A connection was accepted and initialised: the mode sets up its part
     * (zeroed) before the setup starts. */
    void (*init)(struct conn *c);
    /* The client socket's events once established. */
    void (*io)(struct ev_loop *loop, ev_io *w, int revents);
    /* The deadline passed (see conn_deadline), once established. */
    void (*timeout)(struct conn *c);
    /* Setup is over: the mode starts. */
    void (*established)(struct conn *c);
    /* Setup failed; WHY for the access log, ABORT: reset the client. The
     * mode frees the connection. */
    void (*failed)(struct conn *c, bool abort, const char *why);
    /* The mode that takes over the connections that speak HTTP/2, NULL for
     * none (see conn_ops.detach). */
    const struct conn_ops *h2;
    /* Another mode took C over (its socket, timer and references, before
     * established): the mode frees only its own part. */
    void (*detach)(struct conn *c);
};

struct pool;

struct conn {
    struct sk sk;               /* the client */
    struct gen *gen;            /* referenced */
    const struct conf_listener *cl;
    struct stats_lsn_row *lst;  /* the listener's counters */
    struct listener *lsn;            /* referenced */
    struct net_addr peer;
    ev_timer tm;
    ev_tstamp deadline;         /* when on_timeout runs, see conn_deadline() */
    ev_tstamp tm_at;            /* when the timer is armed for */
    const struct conn_ops *ops;
    ev_tstamp started;
    enum conn_setup setup;
    struct net_addr proxy_dst;  /* destination a balancer announced (len 0: none) */
    bool tls;                   /* the client speaks TLS */
};

/* A new client connection on listener L, of the mode OPS: initialised, then
 * its setup started (the PROXY header and the TLS handshake where the
 * listener asks for them), which ends in ops->established or ops->failed. */
void conn_accept(int fd, struct listener *l, const struct net_addr *peer,
                 const struct conn_ops *ops);
/* Releases the client socket and everything the base holds. */
void conn_done(struct conn *c);
/* The most client connections open at once since the last call. */
unsigned long conn_high_water(void);
/* C, a stream of the established connection PARENT: same listener, peer and
 * TLS flag, its own reference to the current generation (to PARENT's when
 * the listener is gone from it: false) and its own timer, which runs
 * OPS->timeout; no socket. */
bool conn_stream_init(struct conn *c, const struct conn *parent, const struct conn_ops *ops);
void conn_stream_done(struct conn *c);
/* Sets when on_timeout runs. Cheap when the deadline moves later (the usual
 * case of activity pushing an idle timeout): the armed timer re-arms itself
 * lazily when it fires. */
void conn_deadline(struct conn *c, ev_tstamp at);
/* When a request body that began at START and brought IN bytes so far must
 * have brought more: within idle_timeout of the last bytes, and, with
 * body_min_rate, on average at that rate after its first 2 seconds (the
 * deadline moves 1/rate seconds later with every byte). Past it: 408. */
ev_tstamp conn_body_deadline(const struct conn *c, ev_tstamp start, uint64_t in);
/* Moves an idle connection to the current generation. False when its
 * listener is gone from the configuration. */
bool conn_rebase(struct conn *c);
/* Whether conn_rebase() would succeed now: a connection that could not is
 * closed after its current request. */
bool conn_can_rebase(const struct conn *c);
#define CONN_IP_MAX 46

/* The client's address as text, in BUF (CONN_IP_MAX bytes). Not kept in the
 * connection: an idle connection holds as little as it can. */
const char *conn_peer_ip(const struct conn *c, char *buf);
/* The server name the client sent in its TLS handshake, or NULL. */
const char *conn_sni(const struct conn *c);
/* The PROXY header (send_proxy) for a server connection of this client:
 * its address, and the destination it reached (as a balancer announced it,
 * else our listener's). Returns its length in OUT (PP_BUILD_MAX bytes). */
size_t conn_proxy_header(const struct conn *c, unsigned char *out);

#endif
