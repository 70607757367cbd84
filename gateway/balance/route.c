#include "gateway/balance/route.h"

#include <stdlib.h>
#include <string.h>

/* A new nearest datacenter must beat the current one by both margins, so
 * that measurement noise does not flap new sessions between two sites. */
#define HYST_REL 0.2
#define HYST_ABS_MS 1.0

static bool dc_listed(const struct conf_listener *cl, const struct dc *dc)
{
    for (int i = 0; i < cl->ndcs; i++)
        if (cl->dcs[i] == dc->idx)
            return true;
    return false;
}

static bool dc_excluded(const struct route *r, const struct dc *dc)
{
    if (!r)
        return false;
    for (int i = 0; i < r->nleft; i++)
        if (r->dcs_left[i] == dc)
            return true;
    return false;
}

static int up_weight(const struct dc *dc)
{
    int w = 0;
    for (int i = 0; i < dc->nsrvs; i++)
        if (dc->srvs[i]->up)
            w += dc->srvs[i]->weight;
    return w;
}

/* Is A nearer than B? Unknown RTTs (no checks yet) compare equal. */
static bool nearer(const struct dc *a, const struct dc *b)
{
    if (a->leader != b->leader)
        return a->leader;
    if (a->rtt_ms >= 0 && b->rtt_ms >= 0 && a->rtt_ms != b->rtt_ms)
        return a->rtt_ms < b->rtt_ms;
    int wa = up_weight(a), wb = up_weight(b);
    if (wa != wb)
        return wa > wb;
    return a->idx < b->idx;
}

static struct dc *nearest_of(const struct gen *g, const struct conf_listener *cl,
                             const struct route *r, bool drained_too)
{
    struct dc *best = NULL;
    for (int i = 0; i < cl->ndcs; i++) {
        struct dc *dc = g->dcs[cl->dcs[i]];
        if (!dc->healthy || dc_excluded(r, dc) || (!drained_too && dc->admin == ADMIN_DRAIN))
            continue;
        if (!best || dc->cd->priority < best->cd->priority ||
            (dc->cd->priority == best->cd->priority && nearer(dc, best)))
            best = dc;
    }
    return best;
}

/* A datacenter an operator drains takes no new session while another one
 * can: when all are drained, serving beats refusing. */
static struct dc *nearest(const struct gen *g, const struct conf_listener *cl,
                          const struct route *r)
{
    struct dc *dc = nearest_of(g, cl, r, false);
    return dc ? dc : nearest_of(g, cl, r, true);
}

struct dc *route_nearest(const struct gen *g, const struct conf_listener *cl)
{
    return nearest(g, cl, NULL);
}

bool route_any_healthy(const struct gen *g, const struct conf_listener *cl)
{
    return nearest(g, cl, NULL) != NULL;
}

bool route_untried(const struct gen *g, const struct conf_listener *cl, const struct route *r)
{
    return nearest(g, cl, r) != NULL;
}

static uint64_t hrw_score(const char *key, size_t len, const char *name);

/* The weighted share of a datacenter's servers that are up, 0 to 1. */
static double capacity(const struct dc *dc)
{
    int all = 0;
    for (int i = 0; i < dc->nsrvs; i++)
        all += dc->srvs[i]->weight;
    return all > 0 ? (double)up_weight(dc) / all : 0;
}

double route_giveaway(const struct dc *dc, double now)
{
    const struct conf_dc *cd = dc->cd;
    double keep = 1;
    double spill = cd->spill_threshold / 100.0;
    if (spill > 0 && capacity(dc) < spill)
        keep = capacity(dc) / spill;
    /* Slow start is for a return: not for the first time up, at start. */
    double since = now - dc->changed_at;
    if (cd->slow_start > 0 && since < cd->slow_start && dc->transitions > 1)
        keep *= MAX(since, 0) / cd->slow_start;
    return 1 - keep;
}

/* Where session KEY stands among all sessions, 0 to 1, the same on every
 * gateway: the sessions given away are those under the share given away. */
static double route_key_share(const char *key, size_t len)
{
    return (double)(hrw_score(key, len, "spill") >> 11) / (double)(1ULL << 53);
}

/* A datacenter an operator drains takes no session back. */
bool route_takes_back(const struct dc *dc, const char *key, size_t len, double now)
{
    return dc->healthy && dc->admin != ADMIN_DRAIN &&
           route_key_share(key, len) >= route_giveaway(dc, now);
}

struct dc *route_new_session(const struct gen *g, const struct conf_listener *cl,
                             const char *key, size_t len, double now)
{
    struct dc *first = nearest(g, cl, NULL);
    if (!first)
        return NULL;
    double share = route_giveaway(first, now);
    if (share <= 0)
        return first;
    /* The same sessions spill on every gateway; without a key, any may. */
    double u = key ? route_key_share(key, len) : (double)random() / ((double)RAND_MAX + 1);
    if (u >= share)
        return first;
    struct dc *next = route_spill_target(g, cl, first);
    return next ? next : first;
}

struct dc *route_spill_target(const struct gen *g, const struct conf_listener *cl,
                              struct dc *first)
{
    struct route r = {.nleft = 1, .dcs_left = {first}};
    return nearest(g, cl, &r);
}

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

static uint64_t hrw_score(const char *key, size_t len, const char *name)
{
    uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a, then a finalizer */
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)key[i]) * 0x100000001b3ULL;
    h = (h ^ 0xff) * 0x100000001b3ULL;
    for (const char *s = name; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
    return mix64(h);
}

struct dc *route_hrw(const struct gen *g, const struct conf_listener *cl, const char *key,
                     size_t len)
{
    struct dc *first = nearest(g, cl, NULL);
    if (!first)
        return NULL;
    struct dc *best = NULL;
    uint64_t best_score = 0;
    for (int i = 0; i < cl->ndcs; i++) {
        struct dc *dc = g->dcs[cl->dcs[i]];
        if (!dc->healthy || dc->cd->priority != first->cd->priority ||
            (dc->admin == ADMIN_DRAIN && first->admin != ADMIN_DRAIN))
            continue;
        uint64_t sc = hrw_score(key, len, dc->name);
        if (!best || sc > best_score) {
            best = dc;
            best_score = sc;
        }
    }
    return best;
}

static bool srv_tried(const struct route *r, const struct srv *s)
{
    for (int i = 0; i < r->ntried; i++)
        if (r->tried[i] == s)
            return true;
    return false;
}

/* Smooth weighted round-robin (as nginx): every candidate gains its weight,
 * the richest is chosen and pays the total. Spreads even uneven weights
 * evenly over time. A server an operator drains (or weighs 0) is a
 * candidate only when no other is left, all of them then weighing 1. */
static struct srv *pick_from(struct dc *dc, struct route *r, bool drained_too)
{
    struct srv *best = NULL;
    int total = 0;
    /* Panic: too few servers left to carry the load, use them all. */
    bool panic = capacity(dc) * 100 < dc->cd->panic_threshold;
    for (int i = 0; i < dc->nsrvs; i++) {
        struct srv *s = dc->srvs[i];
        if ((!s->up && !panic) || srv_tried(r, s))
            continue;
        int w = s->weight;
        if (s->admin == ADMIN_DRAIN || w == 0) {
            if (!drained_too)
                continue;
            w = 1;
        }
        s->cur_weight += w;
        total += w;
        if (!best || s->cur_weight > best->cur_weight)
            best = s;
    }
    if (best) {
        best->cur_weight -= total;
        r->tried[r->ntried++] = best;
    }
    return best;
}

static struct srv *pick_server(struct dc *dc, struct route *r)
{
    struct srv *s = pick_from(dc, r, false);
    return s ? s : pick_from(dc, r, true);
}

/* `affinity strict`: a session whose datacenter is known never leaves it. */
static bool pinned(const struct conf_listener *cl, const struct route *r)
{
    return cl->pin == PIN_STRICT && r->pinned;
}

struct srv *route_first(const struct gen *g, const struct conf_listener *cl, struct dc *dc,
                        struct route *r)
{
    memset(r, 0, sizeof(*r));
    /* A datacenter drained for drain_timeout lets its sessions go, strict
     * ones included: an operator moving them is not a failure to wait out. */
    if (dc && dc->drained)
        dc = NULL;
    if (dc && dc_listed(cl, dc) && cl->pin == PIN_STRICT) {
        r->pinned = true;
        r->dc = dc;
        return dc->healthy ? route_next(g, cl, r) : NULL;
    }
    if (!dc || !dc->healthy || !dc_listed(cl, dc))
        dc = nearest(g, cl, NULL);
    if (!dc)
        return NULL;
    r->dc = dc;
    struct srv *s = pick_server(dc, r);
    return s ? s : route_next(g, cl, r);
}

struct srv *route_next(const struct gen *g, const struct conf_listener *cl, struct route *r)
{
    while (r->ntried < (int)ARRAY_LEN(r->tried) && r->nleft < (int)ARRAY_LEN(r->dcs_left)) {
        if (r->dc && r->dc->healthy) { /* one that went down meanwhile is left */
            struct srv *s = pick_server(r->dc, r);
            if (s)
                return s;
            r->dcs_left[r->nleft++] = r->dc;
        }
        if (pinned(cl, r))
            return NULL;
        r->dc = nearest(g, cl, r);
        if (!r->dc)
            return NULL;
    }
    return NULL;
}

void route_update_leaders(const struct gen *g)
{
    for (int i = 0; i < g->ndcs; i++) {
        struct dc *cur = g->dcs[i];
        if (!cur->leader)
            continue;
        /* The leader of this tier: challenged by the nearest healthy peer. */
        struct dc *best = NULL;
        for (int k = 0; k < g->ndcs; k++) {
            struct dc *d = g->dcs[k];
            if (d == cur || !d->healthy || d->rtt_ms < 0 || d->cd->priority != cur->cd->priority)
                continue;
            if (!best || d->rtt_ms < best->rtt_ms)
                best = d;
        }
        bool beaten = best && (!cur->healthy || cur->rtt_ms < 0 ||
                               (best->rtt_ms < cur->rtt_ms * (1 - HYST_REL) &&
                                best->rtt_ms < cur->rtt_ms - HYST_ABS_MS));
        if (beaten) {
            cur->leader = false;
            best->leader = true;
        }
    }
    /* Tiers without a leader get their nearest healthy datacenter. */
    for (int i = 0; i < g->ndcs; i++) {
        struct dc *d = g->dcs[i];
        if (d->leader || !d->healthy || d->rtt_ms < 0)
            continue;
        bool tier_has_leader = false;
        struct dc *best = d;
        for (int k = 0; k < g->ndcs; k++) {
            struct dc *o = g->dcs[k];
            if (o->cd->priority != d->cd->priority)
                continue;
            tier_has_leader |= o->leader;
            if (o->healthy && o->rtt_ms >= 0 && o->rtt_ms < best->rtt_ms)
                best = o;
        }
        if (!tier_has_leader)
            best->leader = true;
    }
}
