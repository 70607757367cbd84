/* The machine's health view (see view.h).
 *
 * Each row carries its own version; the table one more, bumped by every
 * write, which the processes poll (every 10ms) to know whether to look at
 * their rows at all. A process writes only what it decided: the checker
 * round-trip times, check verdicts, each server's last check (shown by
 * whichever process answers /stats) and which datacenter of each tier is
 * the nearest (its hysteresis depends on every sample, which the others
 * may not all see), any process the verdicts its traffic gave (and the
 * operator's, which every process applies alike), with when it went up or
 * down.
 * Applying a row goes through the same calls a local verdict does
 * (srv_set_up), so that what a worker has in flight to a server another
 * process marked down moves at once there too; what is applied is not
 * written back. */
#include "healthcheck/view.h"
#include "healthcheck/datacenter.h"
#include "healthcheck/server_dns.h"
#include "base/log.h"
#include "base/shm.h"
#include "base/util.h"

#include <stdio.h>
#include <string.h>

#define POLL_INTERVAL 0.01

struct view_srv {
    char dc[CONF_NAME_MAX];
    char addr[64];
    uint32_t seq;
    bool up;
    uint8_t reason;
    double since;               /* when it last went up or down, as its writer saw it */
    double rtt_ms;
    double ejected_until;
    struct check_result last_check;
};

struct view_dc {
    char name[CONF_NAME_MAX];
    uint32_t seq;
    double rtt_ms;
    bool leader;                /* nearest of its tier, as the checker decided */
};

struct view_names {
    char dc[CONF_NAME_MAX];
    char spec[272];
    uint32_t seq;
    int n;
    struct net_addr addrs[VIEW_MAX_ADDRS];
};

struct view_area {
    int lock;
    uint64_t seq;
    uint64_t checks, dns_queries;
    int nsrv, ndc, nnames;
    struct view_srv srv[VIEW_MAX_SRV];
    struct view_dc dc[VIEW_MAX_DC];
    struct view_names names[VIEW_MAX_NAMES];
};

static struct view_area *area;
static int nprocs = 1;
static bool checker = true;
static bool applying;           /* a row is being applied: not written back */
static uint64_t seen_seq;
static struct ev_loop *view_loop;
static ev_timer poll_tm;

void view_shared_init(int n)
{
    area = shm_map(sizeof(*area), "the health view");
    nprocs = n;
}

static void ensure(void)
{
    if (!area) /* tests and tools that never called view_shared_init */
        view_shared_init(1);
}

void view_set_checker(bool c) { checker = c; }

bool view_checker(void) { return checker; }

bool view_applying(void) { return applying; }

static void bump(void) { __atomic_store_n(&area->seq, area->seq + 1, __ATOMIC_RELEASE); }

/* ---- servers and datacenters ---- */

static int find_srv(const char *dc, const char *addr)
{
    for (int i = 0; i < area->nsrv; i++)
        if (strcmp(area->srv[i].addr, addr) == 0 && strcmp(area->srv[i].dc, dc) == 0)
            return i;
    return -1;
}

static void full(const char *what)
{
    static bool said;
    if (!said)
        log_warn("health view: more than %s; the others are checked by each worker alone",
                 what);
    said = true;
}

void view_adopt_srv(struct srv *s)
{
    ensure();
    shm_lock(&area->lock);
    int i = find_srv(s->dc->name, s->name);
    if (i >= 0) {
        const struct view_srv *r = &area->srv[i];
        s->up = r->up;
        s->reason = r->reason;
        s->since = r->since;
        s->last_check = r->last_check;
        s->rtt_ms = r->rtt_ms;
        s->ejected_until = r->ejected_until;
        s->view_seq = r->seq;
    } else if (area->nsrv < VIEW_MAX_SRV) {
        i = area->nsrv;
        struct view_srv *r = &area->srv[i];
        snprintf(r->dc, sizeof(r->dc), "%s", s->dc->name);
        snprintf(r->addr, sizeof(r->addr), "%s", s->name);
        r->up = s->up;
        r->reason = (uint8_t)s->reason;
        r->since = s->since;
        r->last_check = s->last_check;
        r->rtt_ms = s->rtt_ms;
        r->ejected_until = s->ejected_until;
        r->seq = s->view_seq = 1;
        __atomic_store_n(&area->nsrv, i + 1, __ATOMIC_RELEASE);
        bump();
    }
    s->view_row = i;
    shm_unlock(&area->lock);
    if (i < 0)
        full("1024 servers");
}

void view_adopt_dc(struct dc *dc)
{
    ensure();
    shm_lock(&area->lock);
    int i;
    for (i = 0; i < area->ndc && strcmp(area->dc[i].name, dc->name) != 0; i++)
        ;
    if (i < area->ndc) {
        dc->rtt_ms = area->dc[i].rtt_ms;
        dc->leader = area->dc[i].leader;
        dc->view_seq = area->dc[i].seq;
    } else if (area->ndc < VIEW_MAX_DC) {
        snprintf(area->dc[i].name, sizeof(area->dc[i].name), "%s", dc->name);
        area->dc[i].rtt_ms = dc->rtt_ms;
        area->dc[i].leader = dc->leader;
        area->dc[i].seq = dc->view_seq = 1;
        __atomic_store_n(&area->ndc, i + 1, __ATOMIC_RELEASE);
        bump();
    } else {
        i = -1;
    }
    dc->view_row = i;
    shm_unlock(&area->lock);
    if (i < 0)
        full("64 datacenters");
}

static bool same_check(const struct check_result *a, const struct check_result *b)
{
    return a->at == b->at && a->cause == b->cause && a->ok == b->ok &&
           a->detail == b->detail && a->duration_ms == b->duration_ms;
}

/* A verdict on S (up or down, and why, since when; an ejection's end):
 * every process may write one. Round trips and the last check are the
 * checker's. */
bool view_publish_srv(struct srv *s)
{
    if (applying)
        return false;
    if (s->view_row < 0 || !s->dc || !s->dc->live)
        return true;
    shm_lock(&area->lock);
    struct view_srv *r = &area->srv[s->view_row];
    bool verdict = r->up != s->up || r->reason != s->reason ||
                   r->ejected_until != s->ejected_until;
    bool rtt = checker && r->rtt_ms != s->rtt_ms;
    bool check = checker && !same_check(&r->last_check, &s->last_check);
    if (verdict || rtt || check) {
        if (verdict) {
            r->up = s->up;
            r->reason = (uint8_t)s->reason;
            r->since = s->since;
            r->ejected_until = s->ejected_until;
        }
        if (rtt)
            r->rtt_ms = s->rtt_ms;
        if (check)
            r->last_check = s->last_check;
        __atomic_store_n(&r->seq, r->seq + 1, __ATOMIC_RELEASE);
        s->view_seq = r->seq;
        bump();
    }
    shm_unlock(&area->lock);
    return verdict;
}

void view_publish_dc(struct dc *dc)
{
    if (dc->view_row < 0 || !checker || !dc->live)
        return;
    shm_lock(&area->lock);
    struct view_dc *r = &area->dc[dc->view_row];
    if (r->rtt_ms != dc->rtt_ms || r->leader != dc->leader) {
        r->rtt_ms = dc->rtt_ms;
        r->leader = dc->leader;
        __atomic_store_n(&r->seq, r->seq + 1, __ATOMIC_RELEASE);
        dc->view_seq = r->seq;
        bump();
    }
    shm_unlock(&area->lock);
}

/* ---- names ---- */

static int find_names(const char *dc, const char *spec)
{
    for (int i = 0; i < area->nnames; i++)
        if (strcmp(area->names[i].spec, spec) == 0 && strcmp(area->names[i].dc, dc) == 0)
            return i;
    return -1;
}

void view_publish_names(const char *dc, const char *spec, const struct net_addr *addrs, int n)
{
    ensure();
    n = MIN(n, VIEW_MAX_ADDRS);
    shm_lock(&area->lock);
    int i = find_names(dc, spec);
    if (i < 0 && area->nnames < VIEW_MAX_NAMES) {
        i = area->nnames;
        snprintf(area->names[i].dc, sizeof(area->names[i].dc), "%s", dc);
        snprintf(area->names[i].spec, sizeof(area->names[i].spec), "%s", spec);
        area->names[i].n = -1;
        __atomic_store_n(&area->nnames, i + 1, __ATOMIC_RELEASE);
    }
    struct view_names *r = i >= 0 ? &area->names[i] : NULL;
    if (r && (r->n != n || memcmp(r->addrs, addrs, sizeof(*addrs) * (size_t)n) != 0)) {
        r->n = n;
        memcpy(r->addrs, addrs, sizeof(*addrs) * (size_t)n);
        r->seq++;
        bump();
    }
    shm_unlock(&area->lock);
    if (i < 0)
        full("256 server names");
}

int view_names(const char *dc, const char *spec, struct net_addr *addrs, uint32_t *seq)
{
    ensure();
    shm_lock(&area->lock);
    int i = find_names(dc, spec), n = -1;
    if (i >= 0) {
        n = area->names[i].n;
        *seq = area->names[i].seq;
        if (n > 0)
            memcpy(addrs, area->names[i].addrs, sizeof(*addrs) * (size_t)n);
    }
    shm_unlock(&area->lock);
    return n;
}

/* ---- counts ---- */

void view_count_check(void)
{
    ensure();
    __atomic_fetch_add(&area->checks, 1, __ATOMIC_RELAXED);
}

void view_count_dns_query(void)
{
    ensure();
    __atomic_fetch_add(&area->dns_queries, 1, __ATOMIC_RELAXED);
}

unsigned long view_checks_total(void)
{
    ensure();
    return (unsigned long)__atomic_load_n(&area->checks, __ATOMIC_RELAXED);
}

unsigned long view_dns_queries_total(void)
{
    ensure();
    return (unsigned long)__atomic_load_n(&area->dns_queries, __ATOMIC_RELAXED);
}

/* ---- applying what others wrote ---- */

static void apply_srv(struct srv *s)
{
    struct view_srv r;
    if (s->view_row < 0 || __atomic_load_n(&area->srv[s->view_row].seq, __ATOMIC_ACQUIRE) ==
                               s->view_seq)
        return;
    shm_lock(&area->lock);
    r = area->srv[s->view_row];
    shm_unlock(&area->lock);
    s->view_seq = r.seq;
    s->rtt_ms = r.rtt_ms;
    s->ejected_until = r.ejected_until;
    s->last_check = r.last_check;
    if (r.up == s->up) {
        if (r.reason == s->reason)
            s->since = r.since; /* the same verdict, reached here too: one time */
        return;
    }
    applying = true;
    srv_set_up(s, r.up, r.reason);
    if (!r.up && !s->up)
        srv_marked_elsewhere(s);
    if (s->up == r.up) /* not an operator's down that checks cannot lift */
        s->since = r.since;
    applying = false;
}

static void apply_dc(struct dc *dc)
{
    bool rtt = false;
    if (dc->view_row >= 0 &&
        __atomic_load_n(&area->dc[dc->view_row].seq, __ATOMIC_ACQUIRE) != dc->view_seq) {
        shm_lock(&area->lock);
        dc->rtt_ms = area->dc[dc->view_row].rtt_ms;
        dc->leader = area->dc[dc->view_row].leader;
        dc->view_seq = area->dc[dc->view_row].seq;
        shm_unlock(&area->lock);
        rtt = true;
    }
    for (int i = 0; i < dc->nsrvs; i++)
        apply_srv(dc->srvs[i]);
    if (rtt && dc_events.rtt)
        dc_events.rtt(dc);
}

static void on_poll(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop, (void)w, (void)revents;
    uint64_t seq = __atomic_load_n(&area->seq, __ATOMIC_ACQUIRE);
    if (seq == seen_seq)
        return;
    seen_seq = seq;
    if (!checker)
        dns_apply_shared();
    for (struct dlist *n = dc_live.next; n != &dc_live; n = n->next)
        apply_dc(container_of(n, struct dc, live_link));
}

void view_init(struct ev_loop *loop)
{
    ensure();
    view_loop = loop;
    if (nprocs <= 1)
        return;
    ev_timer_init(&poll_tm, on_poll, POLL_INTERVAL, POLL_INTERVAL);
    ev_timer_start(loop, &poll_tm);
    ev_unref(loop); /* it alone must not keep the loop running */
}
