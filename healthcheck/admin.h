/* Operator state: what an operator said of datacenters and servers (drain,
 * ready, down, a weight), kept by name so that it outlives reloads, in
 * memory shared by every process of the machine (a worker that serves the
 * request and its siblings see one table), and applied to the datacenter
 * and server objects of the running generation:
 *
 *   datacenter drain  new sessions avoid it (while another one can take
 *                     them); sessions pinned to it stay until `until`
 *   datacenter down   its servers are marked down, as checks would: what is
 *                     in flight to them moves at once
 *   server drain      new requests and connections avoid it (weight 0 too)
 *   server down       marked down, as above
 *   ready             undoes either; a server kept down by an operator comes
 *                     back once its checks pass (at once without checks)
 *
 * Who changes it (the control API, the fleet's Redis) is above this layer;
 * here the table is kept, logged and applied. */
#ifndef EG_HEALTHCHECK_ADMIN_H
#define EG_HEALTHCHECK_ADMIN_H

#include "healthcheck/datacenter-types.h"

#define ADMIN_MAX 512           /* datacenters and servers with operator state (a Redis
                                 * reply of ours holds at most 1024 elements) */
#define ADMIN_EVENTS 32         /* changes kept for the stats page */
#define ADMIN_ADDR_MAX 64
#define ADMIN_ORIGIN_MAX 64

struct admin_entry {
    char dc[CONF_NAME_MAX];
    char srv[ADMIN_ADDR_MAX];   /* "": the datacenter itself */
    uint8_t state;              /* enum admin_state */
    bool pending;               /* changed here, not yet written to Redis */
    int32_t weight;             /* -1: the configured weight */
    double since, until;        /* seconds since the epoch; drain: pinned sessions leave at until */
    double changed;             /* when it was last changed */
    char origin[ADMIN_ORIGIN_MAX];  /* who changed it: a client address, "redis" */
};

struct admin_event {
    double at;
    char origin[ADMIN_ORIGIN_MAX];
    char what[256];
};

/* Maps the table shared by NPROCS processes (before the master forks;
 * without it a process has a private one). */
void admin_shared_init(int nprocs);
void admin_init(struct ev_loop *loop);

/* Sets the state of E->dc (and E->srv) to E's: state, weight, since,
 * until, origin; READY with weight -1 removes the entry. Logs and records
 * the change, applies it to the running datacenters at once. PENDING marks
 * it as still to be written to Redis. Returns true when something changed. */
bool admin_set(const struct admin_entry *e, bool pending);
/* The same for a change heard from the fleet (Redis): logged as such, and
 * ignored while this machine's own change of that entry is pending. */
bool admin_set_fleet(const struct admin_entry *e);
/* The entry of DC (SRV "" for the datacenter); false when it has none. */
bool admin_get(const char *dc, const char *srv, struct admin_entry *out);
/* Copies up to MAX entries; returns how many there are. */
int admin_list(struct admin_entry *out, int max);
/* The fleet's whole state (read from Redis): entries not in ES go back to
 * ready, except those still pending (written here while Redis was away).
 * Returns how many entries changed. */
int admin_replace(const struct admin_entry *es, int n);
/* Every entry is to be written to Redis again (it lost them); returns how
 * many there are. */
int admin_mark_pending(void);
/* The entry of DC/SRV was written to Redis as it was at CHANGED. */
void admin_written(const char *dc, const char *srv, double changed);
/* The most recent changes, newest first; returns how many. */
int admin_events(struct admin_event *out, int max);

/* Called by datacenter.c: a datacenter's generation becomes current; a
 * datacenter or server is created (it starts with its operator state). */
void admin_watch(struct dc *dc);
void admin_apply_dc(struct dc *dc);
void admin_apply_srv(struct srv *s);

const char *admin_state_name(int state);

#endif
