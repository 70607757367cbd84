/* Layer gateway/balance: where traffic goes (generations, routing,
 * affinity, Redis). It may use base, proto, conf and healthcheck. */
/* The gateway's runtime, as every module above the healthcheck layer sees
 * it: the event loop, the current generation, whether the process drains.
 *
 * A generation is a configuration and everything built from it: the
 * datacenters and their servers, TLS contexts, counter rows. It lives while
 * it is current or while a connection started under it still runs. The
 * process layer decides when a new one becomes current (start, reload). */
#ifndef EG_GATEWAY_BALANCE_GENERATION_H
#define EG_GATEWAY_BALANCE_GENERATION_H

#include "base/util.h"
#include "conf/conf-types.h"
#include "healthcheck/datacenter-types.h"

#include <ev.h>
#include <stdbool.h>

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
    struct tls_ticket_keys *tkeys; /* tls_ticket_keys, NULL without */
};

struct gw {
    struct ev_loop *loop;
    struct gen *gen;            /* current generation */
    bool draining;
    ev_tstamp started;
    int workers;                /* processes serving traffic (1: no master) */
};

extern struct gw gw;

static inline struct gen *gen_ref(struct gen *g)
{
    g->refs++;
    return g;
}
void gen_unref(struct gen *g);

/* A complete generation for C (taking it), certificates loaded, servers
 * carried over from PREV (their health and RTT), or NULL with every problem
 * in ERRS (*UNREADABLE: a file could not be read, a runtime failure). It is
 * quiet (no checks, no DNS) until activated. */
struct gen *gen_create(struct conf *c, struct gen *prev, struct conf_errs *errs,
                       bool *unreadable);
/* G becomes current: its checks and name resolution start. */
void gen_activate(struct gen *g);
/* G is no longer current: checks, DNS and pooled connections stop. */
void gen_retire(struct gen *g);
/* Checks every certificate and key of C (what -t and a reload run). */
int gen_check_tls(const struct conf *c, struct conf_errs *errs, bool *unreadable);

#endif
