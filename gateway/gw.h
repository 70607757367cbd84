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
struct stats_lsn_row;

struct gen {
    int refs;
    unsigned id;
    struct conf *conf;
    struct dc **dcs;            /* same order as conf->dcs */
    int ndcs;
    struct tls_lsn **tls;       /* per conf listener, NULL without tls */
    struct stats_lsn_row **lst; /* per conf listener: its counters */
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
    int workers;                /* processes serving traffic (1: no master) */
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

/* Runs a gateway process (the only one, or a worker) on configuration C,
 * read from FILE, until it is stopped. Returns the exit code: 0, 1 (bad
 * configuration) or 2 (runtime failure at start). READY_FD (>= 0 in a
 * worker) gets a byte once the sockets are open. Takes ownership of C. */
int gw_run(struct conf *c, const char *file, int workers, int ready_fd);
/* SIGHUP: all or nothing. */
void gw_reload(void);
/* A configuration from FILE, certificates checked too (-t, the master's
 * reload), or NULL with every error in ERRS. */
struct conf *gw_load_checked(const char *file, struct conf_errs *errs);
/* Logs and counts a reload that could not be applied. */
void gw_reload_failed(struct conf_errs *errs, const char *what);
/* SIGTERM/SIGINT: stop accepting, let connections finish, then break the
 * loop (at the latest after drain_timeout). */
void gw_drain(void);

#endif
