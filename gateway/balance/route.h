/* Server selection: the session's datacenter while healthy, otherwise the
 * nearest healthy one (priority, then measured RTT with hysteresis, then
 * weight); inside a datacenter smooth weighted round-robin; after a failure
 * the next server, then the next datacenter. */
#ifndef EG_GATEWAY_BALANCE_ROUTE_H
#define EG_GATEWAY_BALANCE_ROUTE_H

#include "gateway/balance/generation.h"

/* One request's (or connection's) way through servers and datacenters. */
struct route {
    struct dc *dc;              /* datacenter of the current attempt */
    struct srv *tried[CONF_MAX_RETRIES + 1];
    struct dc *dcs_left[CONF_MAX_RETRIES + 1];
    int ntried, nleft;
    bool pinned;                /* affinity strict: never another datacenter than dc */
};

/* The datacenter a new session goes to, NULL when none of the listener's
 * datacenters is healthy. */
struct dc *route_nearest(const struct gen *g, const struct conf_listener *cl);
/* The datacenter of a new session (KEY may be NULL): the nearest healthy
 * one, unless it gives this session away, to the next-nearest: a share of
 * new sessions spills over while it is short of servers (spill_threshold)
 * and while it ramps back after an outage (slow_start). Sessions are picked
 * by a hash of their key, the same on every gateway. NOW: the loop's time. */
struct dc *route_new_session(const struct gen *g, const struct conf_listener *cl,
                             const char *key, size_t len, double now);
/* Where the new sessions FIRST (the nearest) gives away go: the next-nearest
 * healthy datacenter of CL, NULL when there is none. */
struct dc *route_spill_target(const struct gen *g, const struct conf_listener *cl,
                              struct dc *first);
/* The share of new sessions DC gives away now, 0 to 1. */
double route_giveaway(const struct dc *dc, double now);
/* Whether DC, healthy, takes session KEY back home now (failback on): during
 * its slow start, sessions come back in key order, not all at once. */
bool route_takes_back(const struct dc *dc, const char *key, size_t len, double now);
/* Rendezvous hashing of a session key over the healthy datacenters of the
 * best priority: gateways that cannot share state still agree. */
struct dc *route_hrw(const struct gen *g, const struct conf_listener *cl, const char *key,
                     size_t len);
/* The first server, in DC when it is healthy (else the nearest). NULL when
 * no datacenter can take it. With `affinity strict`, DC (the session's) is
 * the only one: NULL while it is down. */
struct srv *route_first(const struct gen *g, const struct conf_listener *cl, struct dc *dc,
                        struct route *r);
/* The next server after the current one failed. */
struct srv *route_next(const struct gen *g, const struct conf_listener *cl, struct route *r);
/* Recomputes each priority tier's nearest datacenter after RTT changes. */
void route_update_leaders(const struct gen *g);
bool route_any_healthy(const struct gen *g, const struct conf_listener *cl);
/* Whether a healthy datacenter remains that route R has not left behind. */
bool route_untried(const struct gen *g, const struct conf_listener *cl, const struct route *r);

#endif
