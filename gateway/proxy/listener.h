/* Listening sockets. A socket is identified by its address: a reload that
 * keeps an address keeps its socket, so no connection is refused. */
#ifndef EG_GATEWAY_PROXY_LISTENER_H
#define EG_GATEWAY_PROXY_LISTENER_H

#include "gateway/balance/generation.h"

struct listener {
    struct dlist link;          /* the live or the pending sockets */
    int refs;                   /* the list holds one, each connection one */
    int fd;
    ev_io io;
    struct net_addr addr;
    char name[CONF_NAME_MAX];   /* listener the address belongs to */
    int cidx;                   /* its index in gw.gen->conf->lsns */
    bool closed;
    bool keep;                  /* reload bookkeeping */
    bool paused;                /* at max_connections: not accepting */
    int nconns;
};

/* Opens the sockets of G's listeners that are not open yet. On failure
 * nothing changes (the new sockets are closed) and ERR says why. */
int listener_prepare(struct gen *g, char *err, size_t errlen);
/* Closes what listener_prepare() opened: the reload is abandoned. */
void listener_abort(void);
/* Makes G's listeners the live ones: starts the new sockets, retargets the
 * kept ones, closes those G no longer has. */
void listener_commit(struct gen *g);
/* Stops accepting everywhere (drain). */
void listener_close_all(void);
void listener_unref(struct listener *l);
/* A connection of L ended: accepting resumes when L was at its limit. */
void listener_conn_closed(struct listener *l);
static inline void listener_ref(struct listener *l) { l->refs++; }

#endif
