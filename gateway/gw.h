/* The gateway's runtime: the current generation (a configuration and the
 * datacenters built from it), listeners, and what survives reloads. */
#ifndef EG_GW_H
#define EG_GW_H

#include "conf/conf-types.h"
#include "healthcheck/dc-types.h"
#include "gateway/util.h"

#include <ev.h>
#include <stdbool.h>

/* A generation lives while it is current or while a connection started
 * under it still runs. */
struct tls_lsn;

struct gen {
    int refs;
    unsigned id;
    struct conf *conf;
    struct dc **dcs;            /* same order as conf->dcs */
    int ndcs;
    struct tls_lsn **tls;       /* per conf listener, NULL without tls */
};

/* A client connection waiting for a healthy datacenter. */
struct hold {
    struct dlist link;
    void (*wake)(struct hold *h);
};

struct gw {
    struct ev_loop *loop;
    struct gen *gen;            /* current generation */
    const char *conf_file;
    bool draining;
    ev_tstamp started;
    struct dlist lsns;          /* struct lsn */
    struct dlist held;          /* struct hold */
    int nheld;
};

extern struct gw gw;

static inline struct gen *gen_ref(struct gen *g)
{
    g->refs++;
    return g;
}
void gen_unref(struct gen *g);

void gw_hold(struct hold *h);
void gw_unhold(struct hold *h);

void gw_init(struct ev_loop *loop, const char *conf_file);
/* Builds the first generation and opens its sockets. Returns 0, or the exit
 * code (1: bad configuration, 2: runtime failure) after logging why. Takes
 * ownership of C. */
int gw_start(struct conf *c);
/* SIGHUP: all or nothing. */
void gw_reload(void);
/* SIGTERM/SIGINT: stop accepting, let connections finish, then break the
 * loop (at the latest after drain_timeout). */
void gw_drain(void);

#endif
