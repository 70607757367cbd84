/* Counter slots. Slot 0 belongs to the first process (the only one, or the
 * master); workers get the others. Totals of workers that died are kept in
 * `retired`, so that counters never go backwards when one is replaced. */
#include "base/counters.h"
#include "base/util.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

const double stats_le[STATS_BUCKETS] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                        0.1,    0.25,  0.5,    1,     2.5,  5,     10};

struct stats_area {
    int nslots;
    struct stats_slot retired;
    struct stats_slot slot[];
};

static struct stats_area *area;
static struct stats_slot *me;
struct stats_counters *counters;

/* Rows a full table cannot hold are counted here and never shown. */
static struct stats_lsn_row listener_overflow;
static struct stats_dc_row dc_overflow;
static struct stats_srv_row srv_overflow;

void stats_init(int nslots)
{
    size_t size = sizeof(*area) + sizeof(struct stats_slot) * (size_t)nslots;
    area = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (area == MAP_FAILED) {
        fprintf(stderr, "edgegate: cannot map %zu bytes for counters\n", size);
        abort();
    }
    area->nslots = nslots;
    stats_use_slot(0);
}

void stats_use_slot(int i)
{
    me = &area->slot[i];
    memset(me, 0, sizeof(*me));
    me->pid = getpid();
    counters = &me->c;
}

/* ---- rows ---- */

static void add_hist(struct stats_hist *d, const struct stats_hist *s)
{
    for (int i = 0; i <= STATS_BUCKETS; i++)
        d->count[i] += s->count[i];
    d->sum += s->sum;
}

static void add_counters(struct stats_counters *d, const struct stats_counters *s)
{
    uint64_t *dp = (uint64_t *)d;
    const uint64_t *sp = (const uint64_t *)s;
    for (size_t i = 0; i < sizeof(*d) / sizeof(uint64_t); i++)
        dp[i] += sp[i];
}

static void add_lsn(struct stats_lsn_row *d, const struct stats_lsn_row *s)
{
    d->connections_active += s->connections_active;
    d->held_now += s->held_now;
    d->connections_total += s->connections_total;
    d->requests_total += s->requests_total;
    for (int i = 0; i < 6; i++)
        d->status[i] += s->status[i];
    add_hist(&d->request, &s->request);
}

static void add_dc(struct stats_dc_row *d, const struct stats_dc_row *s)
{
    d->sessions_total += s->sessions_total;
    d->requests_total += s->requests_total;
}

static void add_srv(struct stats_srv_row *d, const struct stats_srv_row *s)
{
    d->connections_active += s->connections_active;
    d->connections_total += s->connections_total;
    d->failures_total += s->failures_total;
    d->bytes_in += s->bytes_in;
    d->bytes_out += s->bytes_out;
    add_hist(&d->connect, &s->connect);
}

/* Other processes read the tables while their owner appends to them: a
 * row is counted only once it is filled in. */
static int published(const int *n) { return __atomic_load_n(n, __ATOMIC_ACQUIRE); }
static void publish(int *n) { __atomic_store_n(n, *n + 1, __ATOMIC_RELEASE); }

static struct stats_lsn_row *find_lsn(struct stats_slot *sl, const char *name, bool create)
{
    for (int i = 0, n = published(&sl->nlsn); i < n; i++)
        if (strcmp(sl->lsn[i].name, name) == 0)
            return &sl->lsn[i];
    if (!create || sl->nlsn == STATS_MAX_LSN)
        return NULL;
    struct stats_lsn_row *r = &sl->lsn[sl->nlsn];
    snprintf(r->name, sizeof(r->name), "%s", name);
    publish(&sl->nlsn);
    return r;
}

static struct stats_dc_row *find_dc(struct stats_slot *sl, const char *name, bool create)
{
    for (int i = 0, n = published(&sl->ndc); i < n; i++)
        if (strcmp(sl->dc[i].name, name) == 0)
            return &sl->dc[i];
    if (!create || sl->ndc == STATS_MAX_DC)
        return NULL;
    struct stats_dc_row *r = &sl->dc[sl->ndc];
    snprintf(r->name, sizeof(r->name), "%s", name);
    publish(&sl->ndc);
    return r;
}

static struct stats_srv_row *find_srv(struct stats_slot *sl, const char *dc, const char *addr,
                                      bool create)
{
    for (int i = 0, n = published(&sl->nsrv); i < n; i++)
        if (strcmp(sl->srv[i].dc, dc) == 0 && strcmp(sl->srv[i].addr, addr) == 0)
            return &sl->srv[i];
    if (!create || sl->nsrv == STATS_MAX_SRV)
        return NULL;
    struct stats_srv_row *r = &sl->srv[sl->nsrv];
    snprintf(r->dc, sizeof(r->dc), "%s", dc);
    snprintf(r->addr, sizeof(r->addr), "%s", addr);
    publish(&sl->nsrv);
    return r;
}

struct stats_lsn_row *stats_lsn(const char *name)
{
    struct stats_lsn_row *r = find_lsn(me, name, true);
    return r ? r : &listener_overflow;
}

struct stats_dc_row *stats_dc(const char *name)
{
    struct stats_dc_row *r = find_dc(me, name, true);
    return r ? r : &dc_overflow;
}

struct stats_srv_row *stats_srv(const char *dc, const char *addr)
{
    struct stats_srv_row *r = find_srv(me, dc, addr, true);
    return r ? r : &srv_overflow;
}

void stats_observe(struct stats_hist *h, double seconds)
{
    int i = 0;
    while (i < STATS_BUCKETS && seconds > stats_le[i])
        i++;
    h->count[i]++;
    h->sum += seconds;
}

void stats_retire_slot(int i)
{
    struct stats_slot *s = &area->slot[i], *r = &area->retired;
    struct stats_counters gone = s->c;
    add_counters(&r->c, &s->c);
    /* Its connections, held requests and pooled connections are gone. */
    r->c.connections_active -= gone.connections_active;
    r->c.held_now -= gone.held_now;
    r->c.pooled_now -= gone.pooled_now;
    for (int k = 0; k < s->nlsn; k++) {
        struct stats_lsn_row *d = find_lsn(r, s->lsn[k].name, true);
        if (d) {
            add_lsn(d, &s->lsn[k]);
            d->connections_active -= s->lsn[k].connections_active;
            d->held_now -= s->lsn[k].held_now;
        }
    }
    for (int k = 0; k < s->ndc; k++) {
        struct stats_dc_row *d = find_dc(r, s->dc[k].name, true);
        if (d)
            add_dc(d, &s->dc[k]);
    }
    for (int k = 0; k < s->nsrv; k++) {
        struct stats_srv_row *d = find_srv(r, s->srv[k].dc, s->srv[k].addr, true);
        if (d) {
            add_srv(d, &s->srv[k]);
            d->connections_active -= s->srv[k].connections_active;
        }
    }
    memset(s, 0, sizeof(*s));
}

/* ---- sums ---- */

#define EACH_SLOT(sl)                                                                     \
    for (struct stats_slot *sl = &area->retired; sl;                                      \
         sl = sl == &area->retired ? &area->slot[0]                                       \
              : sl + 1 < area->slot + area->nslots ? sl + 1 : NULL)

void stats_sum_counters(struct stats_counters *out)
{
    memset(out, 0, sizeof(*out));
    EACH_SLOT(sl)
        add_counters(out, &sl->c);
}

void stats_sum_lsn(const char *name, struct stats_lsn_row *out)
{
    memset(out, 0, sizeof(*out));
    EACH_SLOT(sl) {
        const struct stats_lsn_row *r = find_lsn(sl, name, false);
        if (r)
            add_lsn(out, r);
    }
}

void stats_sum_dc(const char *name, struct stats_dc_row *out)
{
    memset(out, 0, sizeof(*out));
    EACH_SLOT(sl) {
        const struct stats_dc_row *r = find_dc(sl, name, false);
        if (r)
            add_dc(out, r);
    }
}

void stats_sum_srv(const char *dc, const char *addr, struct stats_srv_row *out)
{
    memset(out, 0, sizeof(*out));
    EACH_SLOT(sl) {
        const struct stats_srv_row *r = find_srv(sl, dc, addr, false);
        if (r)
            add_srv(out, r);
    }
}
