/* Session affinity.
 *
 * The table below maps a session key to its datacenter (and to its home, the
 * datacenter it had before a failover, so that `failback on` can return it).
 * Without Redis the table is the affinity store itself; entries live `ttl`
 * after their last use and the least recently used one goes when the table is
 * full. Datacenters are kept by name so that entries survive reloads. */
#include "gateway/aff.h"
#include "gateway/log.h"
#include "gateway/route.h"
#include "gateway/stats.h"

#include <stdlib.h>
#include <string.h>

struct aff_ent {
    struct aff_ent *hnext;
    struct dlist lru;           /* most recently used first */
    ev_tstamp expires;
    uint64_t hash;
    char dc[CONF_NAME_MAX];
    char home[CONF_NAME_MAX];   /* "" unless the session failed over */
    uint16_t klen;
    char key[];
};

static struct ev_loop *aff_loop;
static struct aff_ent **buckets;
static size_t nbuckets, count;
static struct dlist lru = {&lru, &lru};
static size_t max_entries = 100000;
static double ttl = 3600;

bool aff_key_valid(const char *key, size_t len)
{
    if (len == 0 || len > AFF_KEY_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)key[i] < 0x20 || (unsigned char)key[i] > 0x7e)
            return false;
    return true;
}

static uint64_t key_hash(const char *k, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)k[i]) * 0x100000001b3ULL;
    return h ^ (h >> 29);
}

static void table_grow(void)
{
    size_t nb = nbuckets ? nbuckets * 2 : 1024;
    struct aff_ent **b = calloc(nb, sizeof(*b));
    if (!b)
        abort();
    for (size_t i = 0; i < nbuckets; i++)
        for (struct aff_ent *e = buckets[i], *next; e; e = next) {
            next = e->hnext;
            e->hnext = b[e->hash & (nb - 1)];
            b[e->hash & (nb - 1)] = e;
        }
    free(buckets);
    buckets = b;
    nbuckets = nb;
}

static struct aff_ent *table_find(const char *k, size_t n, uint64_t h)
{
    if (!nbuckets)
        return NULL;
    for (struct aff_ent *e = buckets[h & (nbuckets - 1)]; e; e = e->hnext)
        if (e->hash == h && e->klen == n && memcmp(e->key, k, n) == 0)
            return e;
    return NULL;
}

static void table_remove(struct aff_ent *e)
{
    struct aff_ent **pp = &buckets[e->hash & (nbuckets - 1)];
    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    dlist_del(&e->lru);
    count--;
    free(e);
}

static struct aff_ent *table_insert(const char *k, size_t n, uint64_t h)
{
    if (count >= max_entries && !dlist_empty(&lru))
        table_remove(container_of(lru.prev, struct aff_ent, lru));
    if (count >= nbuckets)
        table_grow();
    struct aff_ent *e = calloc(1, sizeof(*e) + n);
    if (!e)
        abort();
    e->hash = h;
    e->klen = (uint16_t)n;
    memcpy(e->key, k, n);
    e->hnext = buckets[h & (nbuckets - 1)];
    buckets[h & (nbuckets - 1)] = e;
    dlist_init(&e->lru);
    dlist_add(&lru, &e->lru);
    count++;
    return e;
}

static struct dc *dc_by_name(const struct gen *g, const struct conf_listener *cl,
                             const char *name)
{
    for (int i = 0; i < cl->ndcs; i++) {
        struct dc *dc = g->dcs[cl->dcs[i]];
        if (strcmp(dc->name, name) == 0)
            return dc;
    }
    return NULL;
}

static void set_name(char *dst, const char *src)
{
    size_t n = strlen(src);
    if (n >= CONF_NAME_MAX)
        n = CONF_NAME_MAX - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* Applies the routing rules to a known session: its datacenter while healthy
 * (or its home, with failback on, once home is healthy again), else the
 * nearest, which becomes its datacenter. */
static struct dc *settle(struct aff_ent *e, struct gen *g, const struct conf_listener *cl)
{
    if (cl->failback && e->home[0]) {
        struct dc *home = dc_by_name(g, cl, e->home);
        if (home && home->healthy) {
            log_debug("session failback to %s", home->name);
            set_name(e->dc, home->name);
            e->home[0] = '\0';
            return home;
        }
    }
    struct dc *dc = dc_by_name(g, cl, e->dc);
    if (dc && dc->healthy)
        return dc;
    struct dc *next = route_nearest(g, cl);
    if (!next)
        return NULL;
    counters->failovers_total++;
    if (!e->home[0])
        set_name(e->home, e->dc);
    set_name(e->dc, next->name);
    return next;
}

bool aff_resolve(struct aff_req *r, struct gen *g, const struct conf_listener *cl,
                 const char *key, size_t len, struct dc **out)
{
    (void)r;
    ev_tstamp now = ev_now(aff_loop);
    uint64_t h = key_hash(key, len);
    struct aff_ent *e = table_find(key, len, h);
    if (e && e->expires <= now) {
        table_remove(e);
        e = NULL;
    }
    if (e) {
        counters->affinity_hits_total++;
        dlist_del(&e->lru);
        dlist_add(&lru, &e->lru);
        e->expires = now + ttl;
        *out = settle(e, g, cl);
        return true;
    }
    counters->affinity_misses_total++;
    struct dc *dc = route_nearest(g, cl);
    if (dc) {
        e = table_insert(key, len, h);
        set_name(e->dc, dc->name);
        e->expires = now + ttl;
    }
    *out = dc;
    return true;
}

void aff_cancel(struct aff_req *r) { (void)r; }

void aff_moved(struct gen *g, const struct conf_listener *cl, const char *key, size_t len,
               struct dc *dc)
{
    (void)g, (void)cl;
    struct aff_ent *e = table_find(key, len, key_hash(key, len));
    if (!e || strcmp(e->dc, dc->name) == 0)
        return;
    if (!e->home[0])
        set_name(e->home, e->dc);
    set_name(e->dc, dc->name);
}

void aff_init(struct ev_loop *loop) { aff_loop = loop; }

size_t aff_count(void) { return count; }

void aff_status(struct aff_status *st)
{
    st->configured = false;
    st->connected = false;
    st->degraded_s = 0;
}
