/* Layer healthcheck: datacenters and servers, their health (active checks,
 * passive failures), RTT and names. It may use base, proto and conf; it
 * tells the gateway of changes through dc_events, never by calling it. */
/* Datacenters and servers: health state, passive failure accounting, RTT. */
#ifndef EG_HEALTHCHECK_DATACENTER_H
#define EG_HEALTHCHECK_DATACENTER_H

#include "healthcheck/datacenter-types.h"

enum dc_fail { DC_FAIL_REFUSED, DC_FAIL_RESET, DC_FAIL_TIMEOUT };

/* What the gateway is told; set once at start. Health changes and RTT
 * updates are separate events: an RTT update comes with every passing check,
 * and must not cost what a change of health does (waking held traffic). */
struct dc_events {
    /* A datacenter became healthy or unhealthy. */
    void (*health)(struct dc *dc);
    /* A datacenter's RTT moved (recompute the nearest). */
    void (*rtt)(struct dc *dc);
    /* A server was marked down (checks, traffic, an operator): what is in
     * flight to it moves. */
    void (*server_down)(struct srv *s);
    /* A server leaves its datacenter (DNS change, reload). */
    void (*server_removed)(struct srv *s);
};
extern struct dc_events dc_events;

/* The datacenters of the current generation (struct dc's live_link). */
extern struct dlist dc_live;

void dc_module_init(struct ev_loop *loop);
struct dc *dc_create(const struct conf_dc *cd, int idx);
/* Removes every server and frees the datacenter. */
void dc_destroy(struct dc *dc);
struct srv *dc_add_server(struct dc *dc, const struct conf_server *cs, const struct net_addr *a);
void dc_remove_server(struct dc *dc, struct srv *s);
struct srv *dc_find_server(const struct dc *dc, const struct net_addr *a);

static inline void srv_ref(struct srv *s) { s->refs++; }
void srv_unref(struct srv *s);

void srv_set_up(struct srv *s, bool up, int reason);
/* Whether active checks watch S (in this process or in the machine's
 * checker, healthcheck/view.h). */
bool srv_checked(const struct srv *s);
/* An operator no longer keeps S down: it comes up now when nothing says
 * otherwise (no active check, or its checks have been passing), else once
 * its checks pass. */
void srv_admin_release(struct srv *s);
/* Another process of the machine marked S down (healthcheck/view.h): without
 * active checks, this one brings it back on its own timer as that one would
 * (so that it comes back even if that one is gone). */
void srv_marked_elsewhere(struct srv *s);
/* Traffic outcomes (passive health). */
void srv_traffic_failed(struct srv *s, enum dc_fail kind);
void srv_traffic_ok(struct srv *s);
/* A final response's STATUS from S: consecutive 502/503/504 answers eject
 * it for a while (passive 5xx N, eject D, max_ejected). */
void srv_answered(struct srv *s, int status);
/* An active check's outcome R (kept as the server's last check); RTT_MS
 * counts when it passed. */
void srv_check_result(struct srv *s, const struct check_result *r, double rtt_ms);
/* Copies health state, its since-time, the last check and RTT from an older
 * incarnation (reload). */
void srv_inherit(struct srv *s, const struct srv *old);
/* Copies RTT, nearest status and the time of the last change of health from
 * an older incarnation of DC (reload), once DC's servers are in: a reload
 * that changes nothing restarts no "up for" and no slow start. */
void dc_inherit(struct dc *dc, const struct dc *old);

/* A TLS session towards S (which has `tls`) on FD: its SNI and the name its
 * certificate must carry come from the configuration. */
SSL *srv_tls_session(const struct srv *s, int fd);

const char *srv_reason_name(int reason);
void dc_recompute(struct dc *dc);
/* The datacenter's generation becomes current: checks start, changes are
 * logged and told. Before that a datacenter is being built and stays quiet. */
void dc_activate(struct dc *dc);
/* The datacenter's generation is no longer current: checks stop. */
void dc_retire(struct dc *dc);

#endif
