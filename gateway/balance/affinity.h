/* Session affinity: which datacenter a session lives in. Kept in Redis when
 * configured (shared by a fleet of gateways) with a local cache in front,
 * in memory otherwise. */
#ifndef EG_GATEWAY_BALANCE_AFFINITY_H
#define EG_GATEWAY_BALANCE_AFFINITY_H

#include "gateway/balance/generation.h"

#include <hiredis/hiredis.h>

#define AFFINITY_KEY_MAX 256

struct affinity_call;

struct affinity_req {
    /* Called once when a pending resolution ends; DC is NULL when no
     * datacenter is healthy. */
    void (*done)(struct affinity_req *r, struct dc *dc);
    struct affinity_call *call;      /* the Redis call answering it */
    struct gen *gen;
    const struct conf_listener *cl;
    const char *key;
    size_t len;
};

/* Session keys the gateway accepts: printable ASCII, at most 256 bytes. */
bool affinity_key_valid(const char *key, size_t len);
/* The datacenter of session KEY: its affinity when that datacenter is
 * healthy, else the nearest healthy one, written as the new affinity.
 * Returns true with *DC set (possibly NULL: nothing healthy), or false when
 * R->done will be called. KEY must stay valid until then. */
bool affinity_resolve(struct affinity_req *r, struct gen *g, const struct conf_listener *cl,
                 const char *key, size_t len, struct dc **dc);
void affinity_cancel(struct affinity_req *r);
/* The session's traffic moved to DC because FROM failed mid-attempt. */
void affinity_moved(struct gen *g, const struct conf_listener *cl, const char *key, size_t len,
               struct dc *dc, struct dc *from);
/* A server set session cookie KEY (`session cookie NAME issued`) in an
 * answer from DC: the session is pinned there from now on. */
void affinity_issued(struct gen *g, const struct conf_listener *cl, const char *key, size_t len,
                     struct dc *dc);
/* Applies the affinity settings of C (Redis or in memory, sizes, TTLs). */
void affinity_configure(const struct conf *c);

/* What the affinity script answers. */
enum affinity_outcome {
    AFFINITY_HIT, AFFINITY_NEW, AFFINITY_FAILOVER, AFFINITY_FAILBACK,
    AFFINITY_UNKNOWN,           /* `session cookie NAME issued`: no server set this key */
};
struct affinity_answer {
    char dc[CONF_NAME_MAX];
    char home[CONF_NAME_MAX];
    int outcome;
};
/* Reads a script reply; false when it is not of the expected shape (any
 * reply, however malformed, is safe to pass). */
bool affinity_parse_reply(const redisReply *r, struct affinity_answer *a);
void affinity_init(struct ev_loop *loop);
size_t affinity_count(void);

/* Operators (the control API): the local table's entry for KEY (the store
 * without Redis, the cache with it), with the seconds it has left; a
 * session placed in DC by hand (its home forgotten); a session forgotten. */
bool affinity_peek(const char *key, size_t len, struct affinity_answer *a, double *ttl_s);
void affinity_place(const char *key, size_t len, const char *dc);
void affinity_forget(const char *key, size_t len);

#endif
