/* Operator state.
 *
 * The table lives in a shared anonymous mapping made before the master
 * forks, so every worker reads and writes the same one, and it outlives
 * workers that die and reloads. Writers take the mapping's lock
 * (base/shm.h); a change bumps a sequence number. Each process applies the
 * table to its own datacenter objects: at once when it made the change,
 * within a poll interval (10ms) when a sibling did.
 *
 * Applying is idempotent: each object keeps what was last applied to it
 * (dc->admin, srv->admin, srv->weight) and only a difference acts. A server
 * an operator takes down goes through srv_set_up() like one a check takes
 * down, so that what is in flight to it moves (dc_events.server_down). */
#include "healthcheck/admin.h"
#include "healthcheck/datacenter.h"
#include "base/log.h"
#include "base/shm.h"
#include "base/util.h"

#include <stdio.h>
#include <string.h>

/* How often a process looks for changes its siblings made. */
#define POLL_INTERVAL 0.01

struct admin_area {
    int lock;                   /* owner's pid, 0 when free */
    uint64_t seq;               /* bumped by every change */
    int n;
    struct admin_entry e[ADMIN_MAX];
    uint64_t nevents;
    struct admin_event ev[ADMIN_EVENTS];
};

static struct admin_area *area;
static int nprocs = 1;
static struct ev_loop *admin_loop;
static ev_timer poll_tm, expiry_tm;
/* This process's copy of the table, as last applied. */
static struct admin_entry snap[ADMIN_MAX];
static int nsnap;
static uint64_t applied_seq = UINT64_MAX;

static const char *const state_names[] = {[ADMIN_READY] = "ready", [ADMIN_DRAIN] = "drain",
                                           [ADMIN_DOWN] = "down"};

const char *admin_state_name(int state)
{
    return state >= 0 && state < (int)ARRAY_LEN(state_names) ? state_names[state] : "?";
}

void admin_shared_init(int n)
{
    area = shm_map(sizeof(*area), "operator state");
    nprocs = n;
}

static double now(void) { return admin_loop ? ev_now(admin_loop) : ev_time(); }

static void lock(void)
{
    if (!area) /* a process that did not call admin_init (tests, tools) */
        admin_shared_init(1);
    shm_lock(&area->lock);
}

static void unlock(void) { shm_unlock(&area->lock); }

static void changed_locked(void) { __atomic_store_n(&area->seq, area->seq + 1, __ATOMIC_RELEASE); }

/* ---- the table (lock held) ---- */

static int find(const struct admin_entry *es, int n, const char *dc, const char *srv)
{
    for (int i = 0; i < n; i++)
        if (strcmp(es[i].dc, dc) == 0 && strcmp(es[i].srv, srv) == 0)
            return i;
    return -1;
}

/* An entry that says nothing: ready, configured weight. Kept only while
 * pending, to tell Redis that the state was cleared. */
static bool is_default(const struct admin_entry *e)
{
    return e->state == ADMIN_READY && e->weight < 0;
}

/* Times travel through Redis as text with milliseconds. */
static bool same_time(double a, double b) { return a - b < 0.002 && b - a < 0.002; }

static bool same(const struct admin_entry *a, const struct admin_entry *b)
{
    if (a->state != b->state || a->weight != b->weight)
        return false;
    return a->state != ADMIN_DRAIN || (same_time(a->since, b->since) && same_time(a->until, b->until));
}

static void remove_at(int i)
{
    area->e[i] = area->e[--area->n];
}

static void describe(const struct admin_entry *e, char *buf, size_t len)
{
    char what[96];
    if (e->state == ADMIN_DRAIN && !e->srv[0])
        snprintf(what, sizeof(what), "drain (pinned sessions leave in %.0fs)",
                 e->until - e->since);
    else
        snprintf(what, sizeof(what), "%s", admin_state_name(e->state));
    if (e->srv[0] && e->weight >= 0)
        snprintf(what + strlen(what), sizeof(what) - strlen(what), ", weight %d", e->weight);
    else if (e->srv[0] && e->state == ADMIN_READY)
        snprintf(what + strlen(what), sizeof(what) - strlen(what), ", configured weight");
    if (e->srv[0])
        snprintf(buf, len, "server %s of %s: %s", e->srv, e->dc, what);
    else
        snprintf(buf, len, "datacenter %s: %s", e->dc, what);
}

/* Logs and records a change (lock held). */
static void record(const struct admin_entry *e, bool from_fleet)
{
    struct admin_event *ev = &area->ev[area->nevents++ % ADMIN_EVENTS];
    ev->at = now();
    snprintf(ev->origin, sizeof(ev->origin), "%s", from_fleet ? "redis" : e->origin);
    describe(e, ev->what, sizeof(ev->what));
    if (from_fleet)
        log_info("operator: %s (by redis, from %s)", ev->what, e->origin[0] ? e->origin : "?");
    else
        log_info("operator: %s (by %s)", ev->what, e->origin);
}

static void admin_sync(void);

/* Sets one entry (lock held); true when the state it says changed. An
 * entry that says the same as before is left as it is (the fleet's echo
 * of a change made here, each worker hearing the same message). */
static bool set_locked(const struct admin_entry *e, bool pending, bool from_fleet)
{
    int i = find(area->e, area->n, e->dc, e->srv);
    struct admin_entry *cur = i >= 0 ? &area->e[i] : NULL;
    static const struct admin_entry dflt = {.state = ADMIN_READY, .weight = -1};
    bool changed = !same(cur ? cur : &dflt, e);
    if (!changed && (cur ? cur->pending == pending : !pending))
        return false;
    if (is_default(e) && !pending) {
        if (cur)
            remove_at(i);
    } else if (cur || area->n < ADMIN_MAX) {
        cur = cur ? cur : &area->e[area->n++];
        *cur = *e;
        cur->pending = pending;
        cur->changed = now();
    } else {
        log_warn("operator: more than %d datacenters and servers with operator state: %s/%s "
                 "not kept", ADMIN_MAX, e->dc, e->srv);
        return false;
    }
    if (changed)
        record(e, from_fleet);
    changed_locked();
    return changed;
}

bool admin_set_fleet(const struct admin_entry *e)
{
    lock();
    int i = find(area->e, area->n, e->dc, e->srv);
    /* Ours, not yet written, wins: it is written as soon as Redis takes it. */
    bool changed = !(i >= 0 && area->e[i].pending) && set_locked(e, false, true);
    unlock();
    admin_sync();
    return changed;
}

bool admin_set(const struct admin_entry *e, bool pending)
{
    lock();
    bool changed = set_locked(e, pending, false);
    unlock();
    admin_sync();
    return changed;
}

bool admin_get(const char *dc, const char *srv, struct admin_entry *out)
{
    lock();
    int i = find(area->e, area->n, dc, srv);
    if (i >= 0)
        *out = area->e[i];
    unlock();
    return i >= 0 && !is_default(out);
}

int admin_list(struct admin_entry *out, int max)
{
    lock();
    int n = area->n;
    memcpy(out, area->e, sizeof(*out) * (size_t)MIN(n, max));
    unlock();
    return n;
}

int admin_replace(const struct admin_entry *es, int n)
{
    int changes = 0;
    lock();
    for (int i = area->n - 1; i >= 0; i--) {
        const struct admin_entry *cur = &area->e[i];
        if (cur->pending || find(es, n, cur->dc, cur->srv) >= 0)
            continue;
        struct admin_entry cleared = {.state = ADMIN_READY, .weight = -1};
        memcpy(cleared.dc, cur->dc, sizeof(cleared.dc));
        memcpy(cleared.srv, cur->srv, sizeof(cleared.srv));
        snprintf(cleared.origin, sizeof(cleared.origin), "fleet state");
        changes += set_locked(&cleared, false, true);
    }
    for (int k = 0; k < n; k++) {
        int i = find(area->e, area->n, es[k].dc, es[k].srv);
        if (i >= 0 && area->e[i].pending)
            continue; /* ours wins: it is written next */
        if (i < 0 || !same(&area->e[i], &es[k]))
            changes += set_locked(&es[k], false, true);
    }
    unlock();
    admin_sync();
    return changes;
}

int admin_mark_pending(void)
{
    int n = 0;
    lock();
    for (int i = 0; i < area->n; i++)
        if (!area->e[i].pending && !is_default(&area->e[i])) {
            area->e[i].pending = true;
            n++;
        }
    if (n)
        changed_locked();
    unlock();
    return n;
}

void admin_written(const char *dc, const char *srv, double changed)
{
    lock();
    int i = find(area->e, area->n, dc, srv);
    if (i >= 0 && area->e[i].changed == changed) {
        area->e[i].pending = false;
        if (is_default(&area->e[i]))
            remove_at(i);
        changed_locked();
    }
    unlock();
}

int admin_events(struct admin_event *out, int max)
{
    lock();
    int n = (int)MIN(area->nevents, (uint64_t)MIN(max, ADMIN_EVENTS));
    for (int i = 0; i < n; i++)
        out[i] = area->ev[(area->nevents - 1 - (uint64_t)i) % ADMIN_EVENTS];
    unlock();
    return n;
}

/* ---- applying ---- */

static void refresh(void)
{
    if (!area)
        admin_shared_init(1);
    uint64_t seq = __atomic_load_n(&area->seq, __ATOMIC_ACQUIRE);
    if (seq == applied_seq)
        return;
    lock();
    nsnap = area->n;
    memcpy(snap, area->e, sizeof(*snap) * (size_t)nsnap);
    applied_seq = area->seq;
    unlock();
}

static const struct admin_entry *snap_find(const char *dc, const char *srv)
{
    int i = find(snap, nsnap, dc, srv);
    return i >= 0 ? &snap[i] : NULL;
}

static void apply_srv(struct srv *s)
{
    const struct admin_entry *e = snap_find(s->dc->name, s->name);
    int st = e ? e->state : ADMIN_READY;
    if (s->dc->admin == ADMIN_DOWN)
        st = ADMIN_DOWN;
    s->weight = e && e->weight >= 0 ? e->weight : s->cs->weight;
    if (st == s->admin)
        return;
    bool was_down = s->admin == ADMIN_DOWN;
    s->admin = (uint8_t)st;
    if (st == ADMIN_DOWN)
        srv_set_up(s, false, SRV_R_ADMIN_DOWN);
    else if (was_down)
        srv_admin_release(s);
}

static void apply_dc(struct dc *dc)
{
    const struct admin_entry *e = snap_find(dc->name, "");
    dc->admin = (uint8_t)(e ? e->state : ADMIN_READY);
    bool drained = e && e->state == ADMIN_DRAIN && now() >= e->until;
    if (drained && !dc->drained && dc->live)
        log_debug("datacenter %s: drained, its pinned sessions leave now", dc->name);
    dc->drained = drained;
    for (int i = 0; i < dc->nsrvs; i++)
        apply_srv(dc->srvs[i]);
}

void admin_apply_dc(struct dc *dc)
{
    refresh();
    apply_dc(dc);
}

void admin_apply_srv(struct srv *s)
{
    refresh();
    apply_srv(s);
}

/* The next time a drain ends (its pinned sessions leave then). */
static void arm_expiry(void)
{
    double next = 0, t = now();
    for (int i = 0; i < nsnap; i++)
        if (snap[i].state == ADMIN_DRAIN && !snap[i].srv[0] && snap[i].until > t &&
            (next == 0 || snap[i].until < next))
            next = snap[i].until;
    ev_timer_stop(admin_loop, &expiry_tm);
    if (next > 0) {
        ev_timer_set(&expiry_tm, next - t + 0.001, 0);
        ev_timer_start(admin_loop, &expiry_tm);
    }
}

static void apply_all(void)
{
    for (struct dlist *n = dc_live.next; n != &dc_live; n = n->next)
        apply_dc(container_of(n, struct dc, live_link));
    if (admin_loop)
        arm_expiry();
}

static void admin_sync(void)
{
    uint64_t seq = area ? __atomic_load_n(&area->seq, __ATOMIC_ACQUIRE) : applied_seq;
    if (seq == applied_seq)
        return;
    refresh();
    apply_all();
}

static void on_poll(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop, (void)w, (void)revents;
    admin_sync();
}

static void on_expiry(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop, (void)w, (void)revents;
    refresh();
    apply_all();
}

void admin_watch(struct dc *dc)
{
    admin_apply_dc(dc);
    if (admin_loop)
        arm_expiry();
}

void admin_init(struct ev_loop *loop)
{
    if (!area)
        admin_shared_init(1);
    admin_loop = loop;
    ev_timer_init(&expiry_tm, on_expiry, 0, 0);
    ev_timer_init(&poll_tm, on_poll, POLL_INTERVAL, POLL_INTERVAL);
    if (nprocs > 1) {
        ev_timer_start(loop, &poll_tm);
        ev_unref(loop); /* it alone must not keep the loop running */
    }
}
