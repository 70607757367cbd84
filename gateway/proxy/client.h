/* What every client connection has, whatever its mode: the client socket,
 * the generation and listener it runs under, and one timer for all its
 * timeouts. tcp.c and h1.c embed it first in their own structures. */
#ifndef EG_GATEWAY_PROXY_CLIENT_H
#define EG_GATEWAY_PROXY_CLIENT_H

#include "gateway/balance/generation.h"
#include "base/socket.h"

struct listener;

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
    void (*on_timeout)(struct conn *c);
    ev_tstamp started;
    struct net_addr proxy_dst;  /* destination a balancer announced (len 0: none) */
    char ip[46];                /* the peer's address as text, once asked for */
    uint8_t iplen;
    bool tls;                   /* the client speaks TLS */
};

void conn_init(struct conn *c, int fd, struct listener *l, const struct net_addr *peer,
               void (*io_cb)(struct ev_loop *, ev_io *, int), void *owner,
               void (*on_timeout)(struct conn *c));
/* Releases the client socket and everything the base holds. */
void conn_done(struct conn *c);
/* Sets when on_timeout runs. Cheap when the deadline moves later (the usual
 * case of activity pushing an idle timeout): the armed timer re-arms itself
 * lazily when it fires. */
void conn_deadline(struct conn *c, ev_tstamp at);
/* Moves an idle connection to the current generation. False when its
 * listener is gone from the configuration. */
bool conn_rebase(struct conn *c);
/* The client's address as text (cached: it is needed on every request). */
const char *conn_peer_ip(struct conn *c);
/* Drives the client's TLS handshake: 1 done, 0 in progress (the watcher
 * waits for what TLS needs), -1 failed. */
int conn_handshake(struct conn *c);
/* The server name the client sent in its TLS handshake, or NULL. */
const char *conn_sni(const struct conn *c);
/* Whether the listener takes a PROXY header from this peer. */
bool conn_proxy_trusted(const struct conn *c);
/* Reads the PROXY header a trusted balancer sends first, on a readiness
 * event or when the retry set here is due: 1 done (peer is now the real
 * client), 0 not all there yet (retried shortly), -1 bad or out of time
 * (handshake_timeout from the accept). */
int conn_proxy_step(struct conn *c);
/* The deadline of the PROXY header and TLS handshake, from the accept. */
ev_tstamp conn_handshake_deadline(const struct conn *c);
/* The PROXY header (send_proxy) for a server connection of this client:
 * its address, and the destination it reached (as a balancer announced it,
 * else our listener's). Returns its length in OUT (PP_BUILD_MAX bytes). */
size_t conn_proxy_header(const struct conn *c, unsigned char *out);

#endif
