/* Datacenter and server health.
 *
 * A server is up or down. Active checks move it with rise/fall hysteresis
 * (srv_check_result); traffic moves it down at once when nothing listens
 * (refused) or after `passive fall` consecutive resets or timeouts. A server
 * brought down by traffic needs `rise` good checks to come back, or, in a
 * datacenter without checks, comes back on probation after `passive timeout`.
 * A datacenter is healthy while at least `min_servers` of its servers are up. */
#include "healthcheck/datacenter.h"
#include "healthcheck/admin.h"
#include "healthcheck/view.h"
#include "base/tls.h"
#include "base/alloc.h"
#include "healthcheck/check.h"
#include "base/log.h"
#include "base/counters.h"

#include <stdlib.h>
#include <string.h>

/* Weight of a new RTT sample: high enough to follow a real change within a
 * few checks, low enough that one slow probe does not move traffic. */
#define RTT_ALPHA 0.3

struct dc_events dc_events;
struct dlist dc_live = {&dc_live, &dc_live};

static struct ev_loop *dc_loop;

static const char *const reason_names[] = {
    [SRV_R_START] = "start", [SRV_R_CHECK_OK] = "check passed",
    [SRV_R_CHECK_FAIL] = "check failed", [SRV_R_REFUSED] = "connection refused",
    [SRV_R_RESET] = "connection reset", [SRV_R_TIMEOUT] = "timeout",
    [SRV_R_PASSIVE_EXPIRED] = "passive down time over", [SRV_R_RELOAD] = "reload",
    [SRV_R_OUTLIER] = "ejected: consecutive 5xx answers",
    [SRV_R_EJECTION_OVER] = "ejection over", [SRV_R_ADMIN_DOWN] = "operator: down",
    [SRV_R_ADMIN_READY] = "operator: ready",
};

const char *srv_reason_name(int reason) { return reason_names[reason]; }

void dc_module_init(struct ev_loop *loop) { dc_loop = loop; }

struct dc *dc_create(const struct conf_dc *cd, int idx)
{
    struct dc *dc = eg_calloc(1, sizeof(*dc));
    dc->cd = cd;
    dc->name = cd->name;
    dc->idx = idx;
    dc->rtt_ms = -1;
    dc->changed_at = ev_now(dc_loop);
    dc->st = stats_dc(dc->name);
    dlist_init(&dc->live_link);
    view_adopt_dc(dc);
    admin_apply_dc(dc);
    return dc;
}

void dc_destroy(struct dc *dc)
{
    dlist_del(&dc->live_link);
    while (dc->nsrvs > 0)
        dc_remove_server(dc, dc->srvs[dc->nsrvs - 1]);
    for (int i = 0; dc->tls && i < dc->cd->nservers; i++)
        SSL_CTX_free(dc->tls[i]);
    free(dc->tls);
    free(dc->srvs);
    free(dc);
}

static void on_passive_timer(struct ev_loop *loop, ev_timer *w, int revents);

struct srv *dc_add_server(struct dc *dc, const struct conf_server *cs, const struct net_addr *a)
{
    struct srv *s = eg_calloc(1, sizeof(*s));
    s->refs = 1;
    s->dc = dc;
    s->cs = cs;
    s->addr = *a;
    s->weight = cs->weight;
    s->tls = dc->tls ? dc->tls[cs - dc->cd->servers] : NULL;
    if (s->tls)
        SSL_CTX_up_ref(s->tls);
    s->up = true;
    s->reason = SRV_R_START;
    s->since = ev_now(dc_loop);
    s->rtt_ms = -1;
    dlist_init(&s->idle);
    dlist_init(&s->inflight);
    net_addr_str(a, s->name, sizeof(s->name));
    s->st = stats_srv(dc->name, s->name);
    s->view_row = -1;
    ev_timer_init(&s->passive_tm, on_passive_timer, 0, 0);
    s->passive_tm.data = s;
    if (dc->nsrvs == dc->cap) {
        dc->cap = dc->cap ? dc->cap * 2 : 4;
        struct srv **n = eg_realloc(dc->srvs, sizeof(*n) * (size_t)dc->cap);
        dc->srvs = n;
    }
    dc->srvs[dc->nsrvs++] = s;
    view_adopt_srv(s);
    admin_apply_srv(s);
    if (dc->live && dc->cd->check.type != CHECK_NONE && view_checker())
        s->hc = check_start(dc_loop, s);
    dc_recompute(dc);
    return s;
}

struct srv *dc_find_server(const struct dc *dc, const struct net_addr *a)
{
    for (int i = 0; i < dc->nsrvs; i++)
        if (net_addr_equal(&dc->srvs[i]->addr, a))
            return dc->srvs[i];
    return NULL;
}

/* Detaches a server from its datacenter; connections that still use it keep
 * it alive until they end; its pooled idle connections are closed. */
void dc_remove_server(struct dc *dc, struct srv *s)
{
    for (int i = 0; i < dc->nsrvs; i++)
        if (dc->srvs[i] == s) {
            memmove(&dc->srvs[i], &dc->srvs[i + 1], sizeof(s) * (size_t)(dc->nsrvs - i - 1));
            dc->nsrvs--;
            break;
        }
    if (s->hc) {
        check_stop(s->hc);
        s->hc = NULL;
    }
    ev_timer_stop(dc_loop, &s->passive_tm);
    s->dc = NULL;
    if (dc_events.server_removed)
        dc_events.server_removed(s);
    srv_unref(s);
    dc_recompute(dc);
}

void srv_unref(struct srv *s)
{
    if (--s->refs > 0)
        return;
    SSL_CTX_free(s->tls);
    SSL_SESSION_free(s->tls_sess);
    free(s);
}

void dc_inherit(struct dc *dc, const struct dc *old)
{
    dc->rtt_ms = old->rtt_ms;
    dc->leader = old->leader;
    if (dc->healthy == old->healthy) {
        dc->changed_at = old->changed_at;
        dc->transitions = old->transitions;
    } else {
        dc->transitions = old->transitions + 1;
    }
}

void dc_recompute(struct dc *dc)
{
    int nup = 0;
    for (int i = 0; i < dc->nsrvs; i++)
        nup += dc->srvs[i]->up;
    dc->nup = nup;
    bool healthy = nup >= dc->cd->min_servers;
    if (healthy == dc->healthy)
        return;
    dc->healthy = healthy;
    dc->transitions++;
    dc->changed_at = ev_now(dc_loop);
    if (!dc->live)
        return;
    /* A change applied from another process was logged there. */
    if (healthy && !view_applying())
        log_info("datacenter %s is up (%d of %d servers up)", dc->name, nup, dc->nsrvs);
    else if (!healthy && !view_applying())
        log_warn("datacenter %s is down (%d of %d servers up, %d needed)", dc->name, nup,
                 dc->nsrvs, dc->cd->min_servers);
    if (dc_events.health)
        dc_events.health(dc);
}

static void start_passive_timer(struct srv *s)
{
    ev_timer_set(&s->passive_tm, s->dc->cd->passive_timeout, 0);
    ev_timer_start(dc_loop, &s->passive_tm);
}

void dc_activate(struct dc *dc)
{
    dc->live = true;
    dlist_del(&dc->live_link);
    dlist_add_tail(&dc_live, &dc->live_link);
    for (int i = 0; i < dc->nsrvs; i++) {
        struct srv *s = dc->srvs[i];
        if (srv_checked(s) && view_checker())
            s->hc = check_start(dc_loop, s);
        else if (!srv_checked(s) && !s->up)
            start_passive_timer(s);
    }
    log_debug("datacenter %s: %d of %d servers up, %s", dc->name, dc->nup, dc->nsrvs,
              dc->healthy ? "healthy" : "not healthy");
    admin_watch(dc);
}

void dc_retire(struct dc *dc)
{
    dc->live = false;
    dlist_del(&dc->live_link);
    for (int i = 0; i < dc->nsrvs; i++) {
        struct srv *s = dc->srvs[i];
        if (s->hc) {
            check_stop(s->hc);
            s->hc = NULL;
        }
        ev_timer_stop(dc_loop, &s->passive_tm);
        if (dc_events.server_removed)
            dc_events.server_removed(s);
    }
}

void srv_set_up(struct srv *s, bool up, int reason)
{
    /* What an operator took down stays down, whatever checks say. */
    if (s->up == up || (up && s->admin == ADMIN_DOWN))
        return;
    s->up = up;
    s->reason = reason;
    s->since = ev_now(dc_loop);
    s->good = s->bad = 0;
    if (up)
        s->passive_fails = 0;
    if (!s->dc)
        return;
    bool quiet = !view_publish_srv(s) || !s->dc->live;
    if (!quiet && up)
        log_info("server %s of %s is up (%s)", s->name, s->dc->name, reason_names[reason]);
    else if (!quiet)
        log_warn("server %s of %s is down (%s)", s->name, s->dc->name, reason_names[reason]);
    dc_recompute(s->dc);
    if (!up && s->dc && s->dc->live && dc_events.server_down)
        dc_events.server_down(s);
}

bool srv_checked(const struct srv *s) { return s->dc && s->dc->cd->check.type != CHECK_NONE; }

/* Only the process that checks knows how the checks went; the others hear
 * of it through the machine's view. */
void srv_admin_release(struct srv *s)
{
    if (!s->dc)
        return;
    if (!srv_checked(s) || (view_checker() && s->good >= s->dc->cd->check.rise))
        srv_set_up(s, true, SRV_R_ADMIN_READY);
}

void srv_marked_elsewhere(struct srv *s)
{
    if (srv_checked(s) || !s->dc->live || ev_is_active(&s->passive_tm))
        return;
    if (s->reason == SRV_R_OUTLIER) {
        double left = s->ejected_until - ev_now(dc_loop);
        ev_timer_set(&s->passive_tm, left > 0.001 ? left : 0.001, 0);
        ev_timer_start(dc_loop, &s->passive_tm);
    } else if (s->reason == SRV_R_REFUSED || s->reason == SRV_R_RESET ||
               s->reason == SRV_R_TIMEOUT) {
        start_passive_timer(s);
    }
}

/* The passive down time, or an ejection, is over. An ejected server that
 * active checks watch comes back once they pass again. */
static void on_passive_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop, (void)revents;
    struct srv *s = w->data;
    bool ejected = s->reason == SRV_R_OUTLIER;
    if (ejected && srv_checked(s) && (!view_checker() || s->good < s->dc->cd->check.rise))
        return;
    srv_set_up(s, true, ejected ? SRV_R_EJECTION_OVER : SRV_R_PASSIVE_EXPIRED);
}

void srv_traffic_failed(struct srv *s, enum dc_fail kind)
{
    s->st->failures_total++;
    if (!s->dc || !s->up)
        return;
    const struct conf_dc *cd = s->dc->cd;
    if (cd->passive_fall == 0)
        return;
    s->passive_fails++;
    /* Refused means nothing listens: no reason to wait for more evidence. */
    if (kind != DC_FAIL_REFUSED && s->passive_fails < cd->passive_fall)
        return;
    int reason = kind == DC_FAIL_REFUSED ? SRV_R_REFUSED
                 : kind == DC_FAIL_RESET ? SRV_R_RESET : SRV_R_TIMEOUT;
    srv_set_up(s, false, reason);
    if (!srv_checked(s) && s->dc->live)
        start_passive_timer(s);
}

void srv_traffic_ok(struct srv *s) { s->passive_fails = 0; }

/* Outlier detection never empties a datacenter: at most max_ejected percent
 * of its servers are out for it at once, one at least. */
static bool may_eject(const struct dc *dc)
{
    int out = 0;
    for (int i = 0; i < dc->nsrvs; i++)
        out += !dc->srvs[i]->up && dc->srvs[i]->reason == SRV_R_OUTLIER;
    return out == 0 || (out + 1) * 100 <= dc->cd->max_ejected * dc->nsrvs;
}

static void eject(struct srv *s)
{
    const struct conf_dc *cd = s->dc->cd;
    ev_tstamp now = ev_now(dc_loop);
    /* A server that behaved for ten first ejections starts over. */
    if (now - s->ejected_until > 10 * cd->passive_eject)
        s->ejections = 0;
    double d = cd->passive_eject * (double)(1 << MIN(s->ejections, 3));
    d = MIN(d, 10 * cd->passive_eject);
    s->ejections++;
    s->ejected_until = now + d;
    s->answers_5xx = 0;
    srv_set_up(s, false, SRV_R_OUTLIER);
    ev_timer_stop(dc_loop, &s->passive_tm);
    ev_timer_set(&s->passive_tm, d, 0);
    ev_timer_start(dc_loop, &s->passive_tm);
}

void srv_answered(struct srv *s, int status)
{
    if (!s->dc || s->dc->cd->passive_5xx == 0)
        return;
    const uint64_t *bits = s->dc->cd->passive_code_bits;
    int n = status - 500;
    if (n < 0 || n > 99 || !(bits[n / 64] & 1ULL << (n % 64))) {
        s->answers_5xx = 0;
        return;
    }
    if (++s->answers_5xx >= s->dc->cd->passive_5xx && s->up && may_eject(s->dc))
        eject(s);
}

static double ewma(double old, double sample)
{
    return old < 0 ? sample : old + RTT_ALPHA * (sample - old);
}

void srv_check_result(struct srv *s, const struct check_result *r, double rtt_ms)
{
    if (!s->dc)
        return;
    const struct conf_check *ck = &s->dc->cd->check;
    s->last_check = *r;
    if (r->ok) {
        s->rtt_ms = ewma(s->rtt_ms, rtt_ms);
        s->dc->rtt_ms = ewma(s->dc->rtt_ms, rtt_ms);
        view_publish_srv(s);
        view_publish_dc(s->dc);
        if (dc_events.rtt)
            dc_events.rtt(s->dc);
        s->bad = 0;
        if (!s->up && ++s->good >= ck->rise && ev_now(dc_loop) >= s->ejected_until)
            srv_set_up(s, true, SRV_R_CHECK_OK);
    } else {
        view_publish_srv(s); /* the result, for the workers that do not check */
        s->good = 0;
        if (s->up && ++s->bad >= ck->fall)
            srv_set_up(s, false, SRV_R_CHECK_FAIL);
    }
}

void srv_inherit(struct srv *s, const struct srv *old)
{
    s->up = old->up;
    s->reason = old->reason;
    s->since = old->since;
    s->last_check = old->last_check;
    s->good = old->good;
    s->bad = old->bad;
    s->passive_fails = old->passive_fails;
    s->rtt_ms = old->rtt_ms;
    if (s->admin == ADMIN_DOWN)
        s->up = false;
    if (!s->up && !srv_checked(s) && s->dc->live)
        start_passive_timer(s);
}

SSL *srv_tls_session(const struct srv *s, int fd)
{
    const struct conf_server *cs = s->cs;
    const char *sni = cs->sni ? cs->sni : cs->resolve ? cs->host : NULL;
    /* The name checked: sni when given, else the host as written (an IP
     * address is checked against the certificate's IP addresses). */
    const char *check = !cs->verify ? NULL : cs->sni ? cs->sni : cs->host;
    return tls_client_ssl(s->tls, fd, sni, check, check && !cs->sni && !cs->resolve);
}
