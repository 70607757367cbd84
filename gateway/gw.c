/* A gateway process: its start and run, generations and reload, the hold
 * queue, and drain.
 *
 * A generation is a configuration and the datacenter objects built from it.
 * A reload builds a complete new generation next to the running one (new
 * sockets included) and only then switches; any failure leaves the running
 * generation untouched. Servers that keep their datacenter and address
 * inherit their health state and RTT, so a reload never flaps a datacenter. */
#include "gateway/gw.h"
#include "conf/conf.h"
#include "gateway/aff.h"
#include "gateway/alog.h"
#include "gateway/buf.h"
#include "gateway/h1.h"
#include "gateway/log.h"
#include "gateway/lsn.h"
#include "gateway/mon.h"
#include "gateway/priv.h"
#include "gateway/route.h"
#include "gateway/stats.h"
#include "gateway/tls.h"
#include "gateway/up.h"
#include "healthcheck/dc.h"
#include "healthcheck/dns.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct gw gw;

static unsigned gen_ids;

static struct dc *find_dc(const struct gen *g, const char *name)
{
    for (int i = 0; g && i < g->ndcs; i++)
        if (strcmp(g->dcs[i]->name, name) == 0)
            return g->dcs[i];
    return NULL;
}

static void populate(struct dc *dc, const struct dc *old)
{
    const struct conf_dc *cd = dc->cd;
    for (int k = 0; k < cd->nservers; k++) {
        const struct conf_server *cs = &cd->servers[k];
        if (cs->resolve) {
            dns_watch(dc, cs, old);
            continue;
        }
        struct srv *s = dc_add_server(dc, cs, &cs->addr);
        struct srv *prev = old ? dc_find_server(old, &cs->addr) : NULL;
        if (prev)
            srv_inherit(s, prev);
    }
    if (old) {
        dc->rtt_ms = old->rtt_ms;
        dc->leader = old->leader;
    }
    dc_recompute(dc);
}

static void gen_retire(struct gen *g);

/* TLS towards the servers of DC, one context per `server` line with tls. */
static bool dc_tls(struct dc *dc, const struct conf *c, struct conf_errs *errs)
{
    const struct conf_dc *cd = dc->cd;
    bool any = false, ok = true;
    for (int k = 0; k < cd->nservers; k++)
        any |= cd->servers[k].tls;
    if (!any)
        return true;
    dc->tls = calloc((size_t)cd->nservers, sizeof(*dc->tls));
    if (!dc->tls)
        abort();
    for (int k = 0; k < cd->nservers; k++)
        if (cd->servers[k].tls && !(dc->tls[k] = tls_client_ctx(c, &cd->servers[k], errs)))
            ok = false;
    return ok;
}

/* A complete generation for C, certificates loaded, or NULL with every
 * problem in ERRS (*UNREADABLE: a file could not be read). */
static struct gen *gen_create(struct conf *c, struct gen *prev, struct conf_errs *errs,
                              bool *unreadable)
{
    struct gen *g = calloc(1, sizeof(*g));
    if (!g)
        abort();
    g->refs = 1;
    g->id = ++gen_ids;
    g->conf = c;
    g->ndcs = c->ndcs;
    g->dcs = calloc((size_t)c->ndcs, sizeof(*g->dcs));
    g->tls = calloc((size_t)c->nlsns, sizeof(*g->tls));
    g->lst = calloc((size_t)c->nlsns, sizeof(*g->lst));
    if (!g->dcs || !g->tls || !g->lst)
        abort();
    for (int i = 0; i < c->nlsns; i++)
        g->lst[i] = stats_lsn(c->lsns[i].name);
    bool ok = true;
    for (int i = 0; i < c->nlsns; i++)
        if (c->lsns[i].ncerts && !(g->tls[i] = tls_lsn_create(c, &c->lsns[i], errs, unreadable)))
            ok = false;
    for (int i = 0; i < c->ndcs; i++) {
        g->dcs[i] = dc_create(&c->dcs[i], i);
        if (!dc_tls(g->dcs[i], c, errs))
            ok = false;
        else
            populate(g->dcs[i], find_dc(prev, c->dcs[i].name));
    }
    if (!ok) {
        gen_retire(g);
        gen_unref(g);
        return NULL;
    }
    route_update_leaders(g);
    return g;
}

static void gen_activate(struct gen *g)
{
    for (int i = 0; i < g->ndcs; i++)
        dc_activate(g->dcs[i]);
}

/* Stops what only the current generation may run: checks, DNS, pools. */
static void gen_retire(struct gen *g)
{
    for (int i = 0; i < g->ndcs; i++) {
        dns_unwatch(g->dcs[i]);
        dc_retire(g->dcs[i]);
    }
}

void gen_unref(struct gen *g)
{
    if (--g->refs > 0)
        return;
    for (int i = 0; i < g->ndcs; i++)
        if (g->dcs[i])
            dc_destroy(g->dcs[i]);
    for (int i = 0; i < g->conf->nlsns; i++)
        tls_lsn_free(g->tls[i]);
    free(g->tls);
    free(g->lst);
    free(g->dcs);
    conf_free(g->conf);
    free(g);
}

/* ---- hold queue ---- */

void gw_hold(struct hold *h)
{
    dlist_add_tail(&gw.held, &h->link);
    gw.nheld++;
}

void gw_unhold(struct hold *h)
{
    dlist_del(&h->link);
    gw.nheld--;
}

/* Lets every held connection try again. Those that still find nothing go
 * back to the (new) queue, so the walk below always ends. */
static void wake_held(void)
{
    if (dlist_empty(&gw.held))
        return;
    struct dlist batch;
    batch.next = gw.held.next;
    batch.prev = gw.held.prev;
    batch.next->prev = &batch;
    batch.prev->next = &batch;
    dlist_init(&gw.held);
    while (!dlist_empty(&batch)) {
        struct hold *h = container_of(batch.next, struct hold, link);
        dlist_del(&h->link);
        h->wake(h);
    }
}

static void on_dc_change(struct dc *dc)
{
    route_update_leaders(gw.gen);
    if (dc->healthy)
        wake_held();
}

static void on_server_removed(struct srv *s) { up_pool_drain(s); }

static void gw_init(struct ev_loop *loop, const char *conf_file)
{
    gw.loop = loop;
    gw.conf_file = conf_file;
    gw.started = ev_time();
    dlist_init(&gw.lsns);
    dlist_init(&gw.held);
    dc_on_change = on_dc_change;
    dc_on_server_removed = on_server_removed;
}

/* ---- start and reload ---- */

static int gw_start(struct conf *c)
{
    struct conf_errs errs = {0};
    bool unreadable = false;
    struct gen *g = gen_create(c, NULL, &errs, &unreadable);
    if (!g) {
        conf_errs_log(&errs);
        conf_errs_free(&errs);
        return unreadable ? 2 : 1;
    }
    char err[EG_ERRLEN * 2];
    if (lsn_prepare(g, err, sizeof(err)) != EG_OK) {
        log_err("%s", err);
        gen_retire(g);
        gen_unref(g);
        return 2;
    }
    if (mon_apply(c, gw.workers > 1, err, sizeof(err)) != EG_OK) {
        log_err("%s", err);
        lsn_abort();
        gen_retire(g);
        gen_unref(g);
        return 2;
    }
    gw.gen = g;
    gen_activate(g);
    lsn_commit(g);
    aff_configure(c);
    alog_format = c->access_log;
    return 0;
}

struct conf *gw_load_checked(const char *file, struct conf_errs *errs)
{
    bool unreadable = false;
    struct conf *c = conf_load(file, errs);
    if (c && tls_check_conf(c, errs, &unreadable) != EG_OK) {
        conf_free(c);
        return NULL;
    }
    return c;
}

void gw_reload_failed(struct conf_errs *errs, const char *what)
{
    conf_errs_log(errs);
    conf_errs_free(errs);
    counters->reload_failures_total++;
    log_err("reload failed: %s", what);
}

void gw_reload(void)
{
    struct conf_errs errs = {0};
    log_info("reloading %s", gw.conf_file);
    struct conf *c = conf_load(gw.conf_file, &errs);
    if (!c) {
        gw_reload_failed(&errs, "still running the previous configuration");
        return;
    }
    if (c->buffer_size != gw.gen->conf->buffer_size)
        log_warn("buffer_size changes take effect at the next restart");
    bool unreadable = false;
    struct gen *g = gen_create(c, gw.gen, &errs, &unreadable); /* loads certificates */
    if (!g) {
        gw_reload_failed(&errs, "still running the previous configuration");
        return;
    }
    char err[EG_ERRLEN * 2];
    bool lsn_ok = lsn_prepare(g, err, sizeof(err)) == EG_OK;
    if (!lsn_ok || mon_apply(c, gw.workers > 1, err, sizeof(err)) != EG_OK) {
        if (lsn_ok)
            lsn_abort();
        log_err("%s", err);
        log_err("reload failed: still running the previous configuration");
        counters->reload_failures_total++;
        gen_retire(g);
        gen_unref(g);
        return;
    }
    lsn_commit(g);
    struct gen *old = gw.gen;
    gen_retire(old);
    gw.gen = g;
    gen_activate(g);
    gen_unref(old);
    aff_configure(c);
    alog_format = c->access_log;
    log_level = c->log_level;
    if (gw.workers == 1) /* with workers, the master counts reloads */
        counters->reloads_total++;
    log_info("configuration reloaded (generation %u)", g->id);
    wake_held();
}

/* ---- drain ---- */

static ev_timer drain_tm, drain_poll;

static void on_drain_deadline(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)w, (void)revents;
    log_warn("drain timeout: closing %lu connections",
             (unsigned long)counters->connections_active);
    ev_break(loop, EVBREAK_ALL);
}

static void on_drain_poll(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)w, (void)revents;
    h1_close_idle();
    if (counters->connections_active == 0)
        ev_break(loop, EVBREAK_ALL);
}

void gw_drain(void)
{
    if (gw.draining)
        return;
    gw.draining = true;
    log_info("draining: no new connections, %lu open ones may finish within %.0fs",
             (unsigned long)counters->connections_active, gw.gen->conf->drain_timeout);
    lsn_close_all();
    h1_close_idle();
    wake_held();
    ev_timer_init(&drain_tm, on_drain_deadline, gw.gen->conf->drain_timeout, 0);
    ev_timer_start(gw.loop, &drain_tm);
    ev_timer_init(&drain_poll, on_drain_poll, 0, 0.05);
    ev_timer_again(gw.loop, &drain_poll);
}

/* ---- the process ---- */

static void on_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)loop, (void)revents;
    switch (w->signum) {
    case SIGHUP:
        gw_reload();
        break;
    case SIGUSR1:
        if (log_reopen() != EG_OK)
            log_err("cannot reopen the log file: %s", strerror(errno));
        else
            log_info("log file reopened");
        break;
    default:
        gw_drain();
    }
}

int gw_run(struct conf *c, const char *file, int workers, int ready_fd)
{
    struct ev_loop *loop = ev_default_loop(EVBACKEND_EPOLL | EVFLAG_NOENV);
    if (!loop) {
        log_err("cannot start the event loop");
        return 2;
    }
    /* Timers (checks, timeouts) may fire up to 10ms late: batching them saves
     * most wakeups when thousands of servers are checked. I/O is not delayed,
     * and check round trips are timed with the clock, not the timers. */
    ev_set_timeout_collect_interval(loop, 0.01);
    srandom((unsigned)getpid() ^ (unsigned)(ev_time() * 1000));
    buf_pool_init(c->buffer_size);
    gw_init(loop, file);
    gw.workers = workers;
    dc_module_init(loop);
    up_module_init(loop);
    aff_init(loop);
    char err[EG_ERRLEN * 2];
    if (dns_init(loop, err, sizeof(err)) != 0) {
        log_err("%s", err);
        return 2;
    }
    const char *user = c->user ? strdup(c->user) : NULL; /* c belongs to gw now */
    int rc = gw_start(c);
    if (rc != 0)
        return rc;
    if (priv_drop(user, err, sizeof(err)) != EG_OK) {
        log_err("%s", err);
        return 2;
    }
    free((char *)user);
    if (ready_fd >= 0) {
        char b = 1;
        if (write(ready_fd, &b, 1) != 1)
            log_warn("cannot tell the master this worker is ready");
        close(ready_fd);
    }
    static ev_signal sigs[4];
    const int signums[4] = {SIGHUP, SIGTERM, SIGINT, SIGUSR1};
    for (int i = 0; i < 4; i++) {
        ev_signal_init(&sigs[i], on_signal, signums[i]);
        ev_signal_start(loop, &sigs[i]);
        ev_unref(loop);
    }
    log_attach(loop);
    if (workers == 1)
        log_info("edgegate %s started: %d datacenters, %d listeners", EG_VERSION, c->ndcs,
                 c->nlsns);
    ev_run(loop, 0);
    log_detach();
    return 0;
}
