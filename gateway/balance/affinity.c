/* Session affinity.
 *
 * A table maps session keys to their datacenter (and to their home, the
 * datacenter they had before a failover, so that `failback on` can return
 * them). Datacenters are kept by name so that entries survive reloads.
 *
 * Without Redis the table is the affinity store: entries live `affinity ttl`
 * after their last use, the least recently used goes when it is full.
 *
 * With Redis the table is a cache in front of it. Redis holds
 * `<prefix>aff:<key>` (the datacenter) and `<prefix>home:<key>`; one Lua
 * script reads and decides atomically, so gateways that route the same new
 * session at the same moment settle on one answer. A cached answer is used
 * without asking while it is younger than `cache_ttl`; after that it is still
 * used, and revalidated in the background (which also refreshes the TTL in
 * Redis), so a hot session never waits. A cached answer pointing at a
 * datacenter that is down is not used: Redis decides the failover.
 *
 * When Redis is down or slower than `timeout`, nothing waits for it: the
 * cache answers, and sessions it does not know go by rendezvous hashing over
 * the healthy datacenters, on which every gateway agrees. */
#include "gateway/balance/affinity.h"
#include "base/alloc.h"
#include "base/log.h"
#include "gateway/balance/redis.h"
#include "gateway/balance/route.h"
#include "base/counters.h"
#include "base/siphash.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* KEYS: aff key, home key. ARGV: our choice for a new session or a failover,
 * ttl, failback (1/0), then the datacenters healthy for this listener.
 * Returns {datacenter, home or "", outcome}. */
static const char script[] =
    "local cur = redis.call('GET', KEYS[1])\n"
    "if not cur and ARGV[4] == '0' then return {ARGV[1], '', 'unknown'} end\n"
    "local home = redis.call('GET', KEYS[2])\n"
    "local ok = {}\n"
    "for i = 5, #ARGV do ok[ARGV[i]] = true end\n"
    "local back = {}\n"
    "for name in string.gmatch(ARGV[3], '[^,]+') do back[name] = true end\n"
    "if home and back[home] and ok[home] then\n"
    "  redis.call('SET', KEYS[1], home, 'EX', ARGV[2])\n"
    "  redis.call('DEL', KEYS[2])\n"
    "  return {home, '', 'failback'}\n"
    "end\n"
    "if cur and ok[cur] then\n"
    "  redis.call('EXPIRE', KEYS[1], ARGV[2])\n"
    "  if home then redis.call('EXPIRE', KEYS[2], ARGV[2]) end\n"
    "  return {cur, home or '', 'hit'}\n"
    "end\n"
    "local outcome = 'new'\n"
    "if cur then\n"
    "  outcome = 'failover'\n"
    "  if not home then home = cur end\n"
    "end\n"
    "if home == ARGV[1] then\n"
    "  home = false\n"
    "  redis.call('DEL', KEYS[2])\n"
    "elseif home then\n"
    "  redis.call('SET', KEYS[2], home, 'EX', ARGV[2])\n"
    "end\n"
    "redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])\n"
    "return {ARGV[1], home or '', outcome}\n";

struct affinity_ent {
    struct affinity_ent *hnext;
    struct dlist lru;           /* most recently used first */
    ev_tstamp expires;
    ev_tstamp fresh_until;      /* Redis mode: used without asking until then */
    bool revalidating;
    uint64_t hash;
    char dc[CONF_NAME_MAX];
    char home[CONF_NAME_MAX];   /* "" unless the session failed over */
    uint16_t klen;
    char key[];
};

/* A script call in flight. REQ is NULL for background calls, and once the
 * connection that asked gave up: the answer still updates the cache. */
struct affinity_call {
    struct affinity_req *req;
    bool counted;               /* a request's decision: counted in stats */
    uint16_t klen;
    char key[AFFINITY_KEY_MAX];
};

static struct ev_loop *affinity_loop;
static struct affinity_ent **buckets;
static size_t nbuckets, count;
static struct dlist lru = {&lru, &lru};
/* Calls in flight to Redis; a few are kept for the next ones. */
static struct pool call_pool = POOL_INIT(struct affinity_call, 256);
static struct {
    bool redis;
    size_t max_entries;
    double ttl;                 /* entry lifetime (Redis: the key's TTL) */
    double cache_ttl;
    char prefix[72];
} cfg;                          /* from the configuration: affinity_configure() */

bool affinity_key_valid(const char *key, size_t len)
{
    if (len == 0 || len > AFFINITY_KEY_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)key[i] < 0x20 || (unsigned char)key[i] > 0x7e)
            return false;
    return true;
}

/* ---- the table ---- */

/* Session keys come from clients: with an unkeyed hash anyone can send
 * thousands of keys that share one bucket and make every lookup walk them
 * all. Each process hashes with its own secret key instead. (Rendezvous
 * hashing in route.c must stay unkeyed: gateways of a fleet agree on it.) */
static struct siphash_key hash_key;

static uint64_t key_hash(const char *k, size_t n) { return siphash24(&hash_key, k, n); }

static void table_grow(void)
{
    size_t nb = nbuckets ? nbuckets * 2 : 1024;
    struct affinity_ent **b = eg_calloc(nb, sizeof(*b));
    for (size_t i = 0; i < nbuckets; i++)
        for (struct affinity_ent *e = buckets[i], *next; e; e = next) {
            next = e->hnext;
            e->hnext = b[e->hash & (nb - 1)];
            b[e->hash & (nb - 1)] = e;
        }
    free(buckets);
    buckets = b;
    nbuckets = nb;
}

static struct affinity_ent *table_find(const char *k, size_t n)
{
    if (!nbuckets)
        return NULL;
    uint64_t h = key_hash(k, n);
    for (struct affinity_ent *e = buckets[h & (nbuckets - 1)]; e; e = e->hnext)
        if (e->hash == h && e->klen == n && memcmp(e->key, k, n) == 0)
            return e;
    return NULL;
}

static void table_remove(struct affinity_ent *e)
{
    struct affinity_ent **pp = &buckets[e->hash & (nbuckets - 1)];
    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    dlist_del(&e->lru);
    count--;
    free(e);
}

static struct affinity_ent *table_insert(const char *k, size_t n)
{
    while (count >= cfg.max_entries && !dlist_empty(&lru))
        table_remove(container_of(lru.prev, struct affinity_ent, lru));
    if (count >= nbuckets)
        table_grow();
    struct affinity_ent *e = eg_calloc(1, sizeof(*e) + n);
    e->hash = key_hash(k, n);
    e->klen = (uint16_t)n;
    memcpy(e->key, k, n);
    e->hnext = buckets[e->hash & (nbuckets - 1)];
    buckets[e->hash & (nbuckets - 1)] = e;
    dlist_init(&e->lru);
    dlist_add(&lru, &e->lru);
    count++;
    return e;
}

/* A live entry for KEY, or NULL (expired ones go). */
static struct affinity_ent *lookup(const char *key, size_t len)
{
    struct affinity_ent *e = table_find(key, len);
    if (e && e->expires <= ev_now(affinity_loop)) {
        table_remove(e);
        return NULL;
    }
    if (e) {
        dlist_del(&e->lru);
        dlist_add(&lru, &e->lru);
    }
    return e;
}

static struct affinity_ent *entry_for(const char *key, size_t len)
{
    struct affinity_ent *e = table_find(key, len);
    return e ? e : table_insert(key, len);
}

static void set_name(char *dst, const char *src)
{
    snprintf(dst, CONF_NAME_MAX, "%s", src);
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

/* A datacenter a session may stay in (or return to): healthy, and not one
 * an operator has drained for longer than its drain_timeout. */
static struct dc *healthy_by_name(const struct gen *g, const struct conf_listener *cl,
                                  const char *name)
{
    struct dc *dc = name[0] ? dc_by_name(g, cl, name) : NULL;
    return dc && dc->healthy && !dc->drained ? dc : NULL;
}

/* `affinity strict`: the session's datacenter whatever its health, unless
 * an operator drained it. */
static struct dc *pinned_by_name(const struct gen *g, const struct conf_listener *cl,
                                 const char *name)
{
    struct dc *dc = dc_by_name(g, cl, name);
    return dc && !dc->drained ? dc : NULL;
}

static bool strict(const struct conf_listener *cl) { return cl->pin == PIN_STRICT; }

/* `session cookie NAME issued`: a key no server set pins nothing. */
static bool issued_only(const struct conf_listener *cl) { return cl->sess_issued; }

/* The entry's datacenter when the routing rules let it be used as it is:
 * healthy, and not due back home (failback on, home healthy again); with
 * `affinity strict`, whatever its health. */
/* The session's home when it is due back there (failback on). */
static struct dc *due_home(const struct affinity_ent *e, const struct gen *g,
                           const struct conf_listener *cl)
{
    struct dc *home = cl->failback ? healthy_by_name(g, cl, e->home) : NULL;
    if (home && route_takes_back(home, e->key, e->klen, ev_now(affinity_loop)))
        return home;
    return NULL;
}

static struct dc *usable(const struct affinity_ent *e, const struct gen *g,
                         const struct conf_listener *cl)
{
    if (strict(cl))
        return pinned_by_name(g, cl, e->dc);
    if (due_home(e, g, cl))
        return NULL;
    return healthy_by_name(g, cl, e->dc);
}

/* Applies the routing rules to a known session locally (no Redis): home
 * when due back, its datacenter while healthy, else the nearest. */
static struct dc *settle(struct affinity_ent *e, const struct gen *g, const struct conf_listener *cl,
                         struct dc *nearest)
{
    struct dc *pinned = strict(cl) ? pinned_by_name(g, cl, e->dc) : NULL;
    if (pinned)
        return pinned;
    struct dc *home = due_home(e, g, cl);
    if (home) {
        counters->failbacks_total++;
        set_name(e->dc, home->name);
        e->home[0] = '\0';
        return home;
    }
    struct dc *dc = healthy_by_name(g, cl, e->dc);
    if (dc || !nearest)
        return dc;
    counters->failovers_total++;
    if (!e->home[0])
        set_name(e->home, e->dc);
    if (strcmp(e->home, nearest->name) == 0)
        e->home[0] = '\0';
    set_name(e->dc, nearest->name);
    return nearest;
}

/* ---- Redis ---- */

bool affinity_parse_reply(const redisReply *r, struct affinity_answer *a)
{
    static const char *const outcomes[] = {"hit", "new", "failover", "failback", "unknown"};
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 3)
        return false;
    for (int i = 0; i < 3; i++) {
        const redisReply *e = r->element[i];
        if (!e || e->type != REDIS_REPLY_STRING || e->len >= CONF_NAME_MAX)
            return false;
        for (size_t k = 0; k < e->len; k++)
            if ((unsigned char)e->str[k] <= 0x20 || (unsigned char)e->str[k] >= 0x7f)
                return false;
    }
    if (r->element[0]->len == 0)
        return false;
    memcpy(a->dc, r->element[0]->str, r->element[0]->len + 1);
    memcpy(a->home, r->element[1]->str, r->element[1]->len + 1);
    for (int i = 0; i < (int)ARRAY_LEN(outcomes); i++)
        if (strcmp(r->element[2]->str, outcomes[i]) == 0) {
            a->outcome = i;
            return true;
        }
    return false;
}

static void count_outcome(int outcome)
{
    switch (outcome) {
    case AFFINITY_HIT: counters->affinity_hits_total++; break;
    case AFFINITY_NEW: counters->affinity_misses_total++; break;
    case AFFINITY_FAILOVER: counters->failovers_total++; break;
    case AFFINITY_FAILBACK: counters->failbacks_total++; break;
    }
}

/* The decision for a session when Redis cannot give one. */
static struct dc *fallback(struct affinity_ent *e, const struct gen *g, const struct conf_listener *cl,
                           const char *key, size_t len)
{
    struct dc *nearest = route_nearest(g, cl);
    if (e)
        return settle(e, g, cl, nearest);
    if (issued_only(cl))
        return route_new_session(g, cl, key, len, ev_now(affinity_loop));
    struct dc *dc = route_hrw(g, cl, key, len);
    if (dc) {
        counters->affinity_misses_total++;
        e = entry_for(key, len);
        set_name(e->dc, dc->name);
        e->fresh_until = 0; /* ask Redis as soon as it is back */
        e->expires = ev_now(affinity_loop) + cfg.ttl;
    }
    return dc;
}

/* The script's answer for a key no server set: routed as a new session,
 * without pinning it. */
static void unknown_key(struct affinity_call *call, const struct affinity_answer *a)
{
    struct affinity_req *r = call->req;
    pool_put(&call_pool, call);
    if (!r)
        return;
    r->call = NULL;
    counters->affinity_misses_total++;
    r->done(r, healthy_by_name(r->gen, r->cl, a->dc)); /* may free r: last */
}

static void on_script(void *ctx, const redisReply *reply)
{
    struct affinity_call *call = ctx;
    struct affinity_answer a;
    bool ok = affinity_parse_reply(reply, &a);
    if (ok && a.outcome == AFFINITY_UNKNOWN) {
        unknown_key(call, &a);
        return;
    }
    struct affinity_ent *e = table_find(call->key, call->klen);
    if (ok) {
        if (!e)
            e = table_insert(call->key, call->klen);
        set_name(e->dc, a.dc);
        set_name(e->home, a.home);
        e->fresh_until = ev_now(affinity_loop) + cfg.cache_ttl;
        e->expires = ev_now(affinity_loop) + cfg.ttl;
        if (call->counted)
            count_outcome(a.outcome);
    } else if (reply) {
        log_warn("redis: unexpected answer to the affinity script (type %d)", reply->type);
    }
    if (e)
        e->revalidating = false;
    struct affinity_req *r = call->req;
    pool_put(&call_pool, call);
    if (!r)
        return;
    r->call = NULL;
    struct dc *dc = ok && e ? usable(e, r->gen, r->cl) : NULL;
    if (!dc)
        dc = fallback(e, r->gen, r->cl, r->key, r->len);
    r->done(r, dc); /* may free r: last */
}

/* The datacenters that take session KEY back home now (failback), as the
 * script's comma-separated list. */
static size_t failback_list(const struct gen *g, const struct conf_listener *cl, const char *key,
                            size_t len, char *out, size_t cap)
{
    size_t n = 0;
    out[0] = '\0';
    for (int i = 0; cl->failback && i < cl->ndcs; i++) {
        const struct dc *dc = g->dcs[cl->dcs[i]];
        if (route_takes_back(dc, key, len, ev_now(affinity_loop)))
            n += (size_t)snprintf(out + n, cap - n, "%s%s", n ? "," : "", dc->name);
        if (n >= cap)
            return cap - 1;
    }
    return n;
}

/* Sends the script for KEY with CHOICE as the datacenter for a new session
 * or a failover. Returns false when Redis cannot take it now. */
static bool call_script(struct affinity_req *r, const struct gen *g, const struct conf_listener *cl,
                        const char *key, size_t len, const struct dc *choice,
                        const struct dc *exclude)
{
    struct affinity_call *call = pool_get(&call_pool);
    call->req = r;
    call->counted = r != NULL;
    call->klen = (uint16_t)len;
    memcpy(call->key, key, len);

    char k1[AFFINITY_KEY_MAX + 96], k2[AFFINITY_KEY_MAX + 96], ttl[24];
    const char *argv[64];
    size_t argl[64];
    int n = 0;
    argl[n] = (size_t)snprintf(k1, sizeof(k1), "%saff:%.*s", cfg.prefix, (int)len, key);
    argv[n++] = k1;
    argl[n] = (size_t)snprintf(k2, sizeof(k2), "%shome:%.*s", cfg.prefix, (int)len, key);
    argv[n++] = k2;
    argv[n] = choice->name;
    argl[n] = strlen(choice->name);
    n++;
    argl[n] = (size_t)snprintf(ttl, sizeof(ttl), "%.0f", cfg.ttl);
    argv[n++] = ttl;
    char back[CONF_NAME_MAX * 8];
    argv[n] = back;
    argl[n++] = failback_list(g, cl, key, len, back, sizeof(back));
    argv[n] = r && issued_only(cl) ? "0" : "1"; /* may the script create the key? */
    argl[n++] = 1;
    for (int i = 0; i < cl->ndcs && n < (int)ARRAY_LEN(argv) - 4; i++) {
        const struct dc *dc = g->dcs[cl->dcs[i]];
        /* Strict sessions stay where they are: to the script, every
         * datacenter is one they may stay in. */
        if ((dc->healthy || strict(cl)) && dc != exclude && !dc->drained) {
            argv[n] = dc->name;
            argl[n++] = strlen(dc->name);
        }
    }
    if (!redis_script(script, 2, n, argv, argl, on_script, call)) {
        pool_put(&call_pool, call);
        return false;
    }
    if (r)
        r->call = call;
    return true;
}

/* ---- entry points ---- */

static struct dc *resolve_memory(const struct gen *g, const struct conf_listener *cl,
                                 const char *key, size_t len)
{
    struct affinity_ent *e = lookup(key, len);
    if (e) {
        counters->affinity_hits_total++;
        e->expires = ev_now(affinity_loop) + cfg.ttl;
        return settle(e, g, cl, route_nearest(g, cl));
    }
    struct dc *nearest = route_new_session(g, cl, key, len, ev_now(affinity_loop));
    if (nearest && !issued_only(cl)) {
        counters->affinity_misses_total++;
        e = table_insert(key, len);
        set_name(e->dc, nearest->name);
        e->expires = ev_now(affinity_loop) + cfg.ttl;
    }
    return nearest;
}

bool affinity_resolve(struct affinity_req *r, struct gen *g, const struct conf_listener *cl,
                 const char *key, size_t len, struct dc **out)
{
    r->call = NULL;
    if (!cfg.redis) {
        *out = resolve_memory(g, cl, key, len);
        return true;
    }
    struct affinity_ent *e = lookup(key, len);
    struct dc *dc = e ? usable(e, g, cl) : NULL;
    if (dc) {
        counters->affinity_hits_total++;
        counters->affinity_cache_hits_total++;
        if (ev_now(affinity_loop) >= e->fresh_until && !e->revalidating && redis_ready())
            e->revalidating = call_script(NULL, g, cl, key, len, dc, NULL);
        *out = dc;
        return true;
    }
    struct dc *nearest = route_new_session(g, cl, key, len, ev_now(affinity_loop));
    if (!nearest) {
        *out = NULL; /* nothing healthy: the caller holds the traffic */
        return true;
    }
    r->gen = g;
    r->cl = cl;
    r->key = key;
    r->len = len;
    if (call_script(r, g, cl, key, len, nearest, NULL))
        return false;
    *out = fallback(e, g, cl, key, len);
    return true;
}

void affinity_cancel(struct affinity_req *r)
{
    if (r->call) {
        r->call->req = NULL;
        r->call = NULL;
    }
}

void affinity_moved(struct gen *g, const struct conf_listener *cl, const char *key, size_t len,
               struct dc *dc, struct dc *from)
{
    struct affinity_ent *e = table_find(key, len);
    if (e && strcmp(e->dc, dc->name) != 0) {
        if (!e->home[0])
            set_name(e->home, e->dc);
        if (strcmp(e->home, dc->name) == 0)
            e->home[0] = '\0';
        set_name(e->dc, dc->name);
    }
    if (cfg.redis)
        call_script(NULL, g, cl, key, len, dc, from);
}

void affinity_issued(struct gen *g, const struct conf_listener *cl, const char *key, size_t len,
                     struct dc *dc)
{
    if (!affinity_key_valid(key, len))
        return;
    struct affinity_ent *e = entry_for(key, len);
    set_name(e->dc, dc->name);
    e->home[0] = '\0';
    e->expires = ev_now(affinity_loop) + cfg.ttl;
    e->fresh_until = 0;
    if (cfg.redis)
        call_script(NULL, g, cl, key, len, dc, NULL);
}

void affinity_init(struct ev_loop *loop)
{
    affinity_loop = loop;
    if (siphash_key_random(&hash_key) != EG_OK) {
        log_err("affinity: no random bytes for the table's hash key");
        abort();
    }
    redis_init(loop);
    redis_set_script(script);
}

void affinity_configure(const struct conf *c)
{
    bool was_redis = cfg.redis;
    cfg.redis = c->redis.on;
    cfg.max_entries = cfg.redis ? c->redis.cache_size : c->affinity_size;
    cfg.ttl = cfg.redis ? c->redis.ttl : c->affinity_ttl;
    cfg.cache_ttl = c->redis.cache_ttl;
    snprintf(cfg.prefix, sizeof(cfg.prefix), "%s", c->redis.prefix);
    /* Entries learnt without Redis are checked with it once it is there. */
    if (cfg.redis && !was_redis)
        for (struct dlist *n = lru.next; n != &lru; n = n->next)
            container_of(n, struct affinity_ent, lru)->fresh_until = 0;
    while (count > cfg.max_entries)
        table_remove(container_of(lru.prev, struct affinity_ent, lru));
    redis_configure(&c->redis);
}

size_t affinity_count(void) { return count; }

/* ---- operators ---- */

bool affinity_peek(const char *key, size_t len, struct affinity_answer *a, double *ttl_s)
{
    struct affinity_ent *e = lookup(key, len);
    if (!e)
        return false;
    set_name(a->dc, e->dc);
    set_name(a->home, e->home);
    a->outcome = AFFINITY_HIT;
    *ttl_s = e->expires - ev_now(affinity_loop);
    return true;
}

void affinity_place(const char *key, size_t len, const char *dc)
{
    struct affinity_ent *e = entry_for(key, len);
    set_name(e->dc, dc);
    e->home[0] = '\0';
    e->expires = ev_now(affinity_loop) + cfg.ttl;
    e->fresh_until = cfg.redis ? ev_now(affinity_loop) + cfg.cache_ttl : 0;
}

void affinity_forget(const char *key, size_t len)
{
    struct affinity_ent *e = table_find(key, len);
    if (e)
        table_remove(e);
}
