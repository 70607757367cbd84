/* Session affinity: which datacenter a session lives in. Kept in Redis when
 * configured (shared by a fleet of gateways) with a local cache in front,
 * in memory otherwise. */
#ifndef EG_AFF_H
#define EG_AFF_H

#include "gateway/gw.h"

#define AFF_KEY_MAX 256

struct aff_req {
    /* Called once when a pending resolution ends; DC is NULL when no
     * datacenter is healthy. */
    void (*done)(struct aff_req *r, struct dc *dc);
    struct dlist link;
    struct gen *gen;
    const struct conf_listener *cl;
    const char *key;
    size_t len;
};

/* Session keys the gateway accepts: printable ASCII, at most 256 bytes. */
bool aff_key_valid(const char *key, size_t len);
/* The datacenter of session KEY: its affinity when that datacenter is
 * healthy, else the nearest healthy one, written as the new affinity.
 * Returns true with *DC set (possibly NULL: nothing healthy), or false when
 * R->done will be called. KEY must stay valid until then. */
bool aff_resolve(struct aff_req *r, struct gen *g, const struct conf_listener *cl,
                 const char *key, size_t len, struct dc **dc);
void aff_cancel(struct aff_req *r);
/* The session's traffic moved to DC (its datacenter failed mid-attempt). */
void aff_moved(struct gen *g, const struct conf_listener *cl, const char *key, size_t len,
               struct dc *dc);
struct aff_status {
    bool configured;            /* a redis block is configured */
    bool connected;
    double degraded_s;          /* time spent without Redis while configured */
};

void aff_status(struct aff_status *st);
void aff_init(struct ev_loop *loop);
size_t aff_count(void);

#endif
