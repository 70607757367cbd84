/* Connections to servers: opening them and keeping idle keep-alive ones in
 * a pool per server. */
#ifndef EG_UP_H
#define EG_UP_H

#include "gateway/sk.h"
#include "healthcheck/dc-types.h"

struct upc {
    struct sk sk;
    struct srv *srv;            /* referenced */
    struct dlist link;          /* srv->idle while pooled */
    struct dlist lru;           /* all pooled connections, oldest first */
    ev_tstamp idle_since;
    unsigned requests;          /* requests carried so far: 0 means fresh */
    bool connected;             /* TCP is up (TLS may still be shaking hands) */
    ev_tstamp opened;           /* when the connect started */
};

void up_module_init(struct ev_loop *loop);
/* Starts connecting to S. NULL with errno set when it failed at once. */
struct upc *up_open(struct srv *s);
/* Drives a connection being opened after its socket became ready: 1 when
 * it can carry bytes, 0 in progress (u->sk.hs_ev tells what to wait for),
 * or a negative errno (-ECONNREFUSED, ...; -EPROTO for a TLS failure). */
int up_connected(struct upc *u);
/* A live idle connection to S, or NULL. */
struct upc *up_pool_take(struct srv *s);
/* Parks U in its server's pool (or closes it when the pool is full or the
 * server is gone). */
void up_pool_give(struct upc *u);
void up_close(struct upc *u);
/* Closes every pooled connection of S. */
void up_pool_drain(struct srv *s);
size_t up_pooled(void);

#endif
