/* Listening sockets. A socket is identified by its address: a reload that
 * keeps an address keeps its socket, so no connection is refused. */
#ifndef EG_LSN_H
#define EG_LSN_H

#include "gateway/gw.h"

struct lsn {
    struct dlist link;          /* gw.lsns */
    int refs;                   /* gw.lsns holds one, each connection one */
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
int lsn_prepare(struct gen *g, char *err, size_t errlen);
/* Closes what lsn_prepare() opened: the reload is abandoned. */
void lsn_abort(void);
/* Makes G's listeners the live ones: starts the new sockets, retargets the
 * kept ones, closes those G no longer has. */
void lsn_commit(struct gen *g);
/* Stops accepting everywhere (drain). */
void lsn_close_all(void);
void lsn_unref(struct lsn *l);
/* A connection of L ended: accepting resumes when L was at its limit. */
void lsn_conn_closed(struct lsn *l);
static inline void lsn_ref(struct lsn *l) { l->refs++; }

#endif
