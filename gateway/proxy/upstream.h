/* Connections to servers: opening them and keeping idle keep-alive ones in
 * a pool per server. Towards servers marked h2 a connection is shared by
 * many streams (h2_upstream.h): the engine then holds a struct upstream
 * that stands for one stream (`mux` set, no socket), taken from and given
 * back to the pool, or closed, like any other. */
#ifndef EG_GATEWAY_PROXY_UPSTREAM_H
#define EG_GATEWAY_PROXY_UPSTREAM_H

#include "base/socket.h"
#include "healthcheck/datacenter-types.h"

struct h2_up;
struct h2_up_ops;

struct upstream {
    struct sk sk;
    struct srv *srv;            /* referenced */
    struct dlist link;          /* srv->idle while pooled */
    struct dlist lru;           /* all pooled connections, oldest first */
    ev_tstamp idle_since;
    unsigned requests;          /* requests carried so far: 0 means fresh */
    bool connected;             /* TCP is up (TLS may still be shaking hands) */
    ev_tstamp opened;           /* when the connect started */
    /* A stream of a shared HTTP/2 connection (see h2_upstream.h). */
    struct h2_up *mux;          /* its connection, NULL for a connection of its own */
    int32_t sid;                /* its stream, 0 before it is submitted */
    uint32_t unconsumed;        /* response bytes not yet given back to the window */
    struct dlist mux_link;      /* in mux->streams */
    const struct h2_up_ops *ops;
    void *owner;
};

void upstream_module_init(struct ev_loop *loop);
/* Starts connecting to S. NULL with errno set when it failed at once.
 * DELAYED_ACK: bytes will go as soon as it is up, the handshake's last ACK
 * rides on them. */
struct upstream *upstream_open(struct srv *s, bool delayed_ack);
/* Drives a connection being opened after its socket became ready: 1 when
 * it can carry bytes: EG_OK, EG_AGAIN (u->sk.hs_ev tells what to wait for),
 * or EG_ERR with u->sk.err set (ECONNREFUSED, ...; EPROTO for TLS). */
int upstream_connected(struct upstream *u);
/* A live idle connection to S, or NULL. */
struct upstream *upstream_pool_take(struct srv *s);
/* Parks U in its server's pool (or closes it when the pool is full or the
 * server is gone). */
void upstream_pool_give(struct upstream *u);
void upstream_close(struct upstream *u);
/* Closes every pooled connection of S. */
void upstream_pool_drain(struct srv *s);

#endif
