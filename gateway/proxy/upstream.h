/* Connections to servers: opening them and keeping idle keep-alive ones in
 * a pool per server. */
#ifndef EG_GATEWAY_PROXY_UPSTREAM_H
#define EG_GATEWAY_PROXY_UPSTREAM_H

#include "base/socket.h"
#include "healthcheck/datacenter-types.h"

struct upstream {
    struct sk sk;
    struct srv *srv;            /* referenced */
    struct dlist link;          /* srv->idle while pooled */
    struct dlist lru;           /* all pooled connections, oldest first */
    ev_tstamp idle_since;
    unsigned requests;          /* requests carried so far: 0 means fresh */
    bool connected;             /* TCP is up (TLS may still be shaking hands) */
    ev_tstamp opened;           /* when the connect started */
};

void upstream_module_init(struct ev_loop *loop);
/* Starts connecting to S. NULL with errno set when it failed at once. */
struct upstream *upstream_open(struct srv *s);
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
