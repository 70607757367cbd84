/* A gateway process: its start and run, generations and reload, the hold
 * queue, and drain.
 *
 * A generation is a configuration and the datacenter objects built from it.
 * A reload builds a complete new generation next to the running one (new
 * sockets included) and only then switches; any failure leaves the running
 * generation untouched. Servers that keep their datacenter and address
 * inherit their health state and RTT, so a reload never flaps a datacenter. */
#include "gateway/process/gateway.h"
#include "gateway/balance/generation.h"
#include "gateway/proxy/attempt.h"
#include "gateway/proxy/hold.h"
#include "base/alloc.h"
#include "conf/conf.h"
#include "gateway/balance/affinity.h"
#include "gateway/balance/fleet.h"
#include "gateway/ops/access_log.h"
#include "base/buffer.h"
#include "gateway/proxy/h2_session.h"
#include "gateway/proxy/http_session.h"
#include "base/log.h"
#include "base/notify.h"
#include "gateway/proxy/listener.h"
#include "gateway/ops/stats_server.h"
#include "gateway/process/privileges.h"
#include "gateway/balance/route.h"
#include "base/counters.h"
#include "base/tls.h"
#include "gateway/proxy/upstream.h"
#include "healthcheck/admin.h"
#include "healthcheck/datacenter.h"
#include "healthcheck/server_dns.h"
#include "healthcheck/view.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *conf_file;

/* The nearest datacenter of each tier: decided by the process that checks
 * (with hysteresis over every round trip it measures), followed by the
 * others through the machine's health view. */
static void update_leaders(void)
{
    if (!view_checker())
        return;
    route_update_leaders(gw.gen);
    for (int i = 0; i < gw.gen->ndcs; i++)
        view_publish_dc(gw.gen->dcs[i]);
}

/* A datacenter that went down (too few servers up) gives up what is in
 * flight to its servers that are still up, as a server marked down does. */
static void on_dc_health(struct dc *dc)
{
    update_leaders();
    if (dc->healthy) {
        hold_wake_all();
        return;
    }
    for (int i = 0; i < dc->nsrvs; i++)
        if (dc->srvs[i]->up)
            attempt_server_down(dc->srvs[i]);
}

static void on_dc_rtt(struct dc *dc)
{
    (void)dc;
    update_leaders();
}

static void on_server_removed(struct srv *s) { upstream_pool_drain(s); }

/* What is in flight to a server marked down moves at once, and its idle
 * pooled connections are dropped. */
static void on_server_down(struct srv *s)
{
    upstream_pool_drain(s);
    attempt_server_down(s);
}

static void gw_init(struct ev_loop *loop, const char *file)
{
    gw.loop = loop;
    conf_file = file;
    gw.started = ev_time();
    dc_events.health = on_dc_health;
    dc_events.rtt = on_dc_rtt;
    dc_events.server_down = on_server_down;
    dc_events.server_removed = on_server_removed;
}

/* ---- start and reload ---- */

/* The access log's form for the configuration's word: two enums, one per
 * layer, tied here where both are seen (-Wswitch checks that none is left). */
static enum access_log_format access_log_of(enum conf_access_log a)
{
    switch (a) {
    case CONF_ACCESS_LOG_OFF: return ACCESS_LOG_OFF;
    case CONF_ACCESS_LOG_KV: return ACCESS_LOG_KV;
    case CONF_ACCESS_LOG_JSON: return ACCESS_LOG_JSON;
    }
    return ACCESS_LOG_OFF;
}

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
    if (listener_prepare(g, err, sizeof(err)) != EG_OK) {
        log_err("%s", err);
        gen_retire(g);
        gen_unref(g);
        return 2;
    }
    if (stats_server_apply(c, gw.workers > 1, err, sizeof(err)) != EG_OK) {
        log_err("%s", err);
        listener_abort();
        gen_retire(g);
        gen_unref(g);
        return 2;
    }
    gw.gen = g;
    gen_activate(g);
    listener_commit(g);
    affinity_configure(c);
    fleet_configure(c);
    access_log_format = access_log_of(c->access_log);
    return 0;
}

int gw_logs_prepare(const struct conf *c, struct gw_logs *l, struct conf_errs *errs)
{
    conf_log_targets(c, &l->t[LOG_MAIN], &l->t[LOG_ACCESS]);
    for (int i = LOG_MAIN; i <= LOG_ACCESS; i++) {
        char err[EG_ERRLEN];
        l->fd[i] = -1;
        l->change[i] = log_changes(i, &l->t[i]);
        if (l->change[i] && log_target_open(&l->t[i], &l->fd[i], err, sizeof(err)) != EG_OK) {
            const struct conf_loc *at = i == LOG_MAIN ? &c->log_at : &c->access_log_at;
            conf_errs_add(errs, at->file, at->line, "\"%s\": %s",
                          i == LOG_MAIN ? "log" : "access_log", err);
            l->change[i] = false;
            gw_logs_discard(l);
            return EG_ERR;
        }
    }
    return EG_OK;
}

void gw_logs_apply(struct gw_logs *l)
{
    for (int i = LOG_MAIN; i <= LOG_ACCESS; i++)
        if (l->change[i])
            log_use(i, &l->t[i], l->fd[i]);
}

void gw_logs_discard(struct gw_logs *l)
{
    for (int i = LOG_MAIN; i <= LOG_ACCESS; i++)
        if (l->fd[i] >= 0) {
            close(l->fd[i]);
            l->fd[i] = -1;
        }
}

struct conf *gw_load_checked(const char *file, struct conf_errs *errs)
{
    bool unreadable = false;
    struct conf *c = conf_load(file, errs);
    if (c && gen_check_tls(c, errs, &unreadable) != EG_OK) {
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
    log_info("reloading %s", conf_file);
    struct conf *c = conf_load(conf_file, &errs);
    if (!c) {
        gw_reload_failed(&errs, "still running the previous configuration");
        return;
    }
    if (c->buffer_size != gw.gen->conf->buffer_size)
        log_warn("buffer_size changes take effect at the next restart");
    struct gw_logs logs;
    if (gw_logs_prepare(c, &logs, &errs) != EG_OK) {
        conf_free(c);
        gw_reload_failed(&errs, "still running the previous configuration");
        return;
    }
    bool unreadable = false;
    struct gen *g = gen_create(c, gw.gen, &errs, &unreadable); /* loads certificates */
    if (!g) {
        gw_logs_discard(&logs);
        gw_reload_failed(&errs, "still running the previous configuration");
        return;
    }
    char err[EG_ERRLEN * 2];
    bool listener_ok = listener_prepare(g, err, sizeof(err)) == EG_OK;
    if (!listener_ok || stats_server_apply(c, gw.workers > 1, err, sizeof(err)) != EG_OK) {
        if (listener_ok)
            listener_abort();
        log_err("%s", err);
        log_err("reload failed: still running the previous configuration");
        counters->reload_failures_total++;
        gw_logs_discard(&logs);
        gen_retire(g);
        gen_unref(g);
        return;
    }
    listener_commit(g);
    struct gen *old = gw.gen;
    gen_retire(old);
    gw.gen = g;
    gen_activate(g);
    gen_unref(old);
    affinity_configure(c);
    fleet_configure(c); /* re-reads the fleet's operator state */
    access_log_format = access_log_of(c->access_log);
    log_level = c->log_level;
    gw_logs_apply(&logs);
    if (gw.workers == 1) /* with workers, the master counts reloads */
        counters->reloads_total++;
    log_info("configuration reloaded (generation %u)", g->id);
    hold_wake_all();
    /* HTTP/2 clients move to new connections, made under the new generation. */
    h2_goaway_all();
}

/* ---- drain ---- */

static ev_timer drain_tm, drain_poll, trim_tm;

static void on_trim(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop, (void)w, (void)revents;
    eg_release_after_peak((unsigned long)counters->connections_active, conn_high_water());
}

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
    http_close_idle();
    if (counters->connections_active == 0)
        ev_break(loop, EVBREAK_ALL);
}

void gw_drain(void)
{
    if (gw.draining)
        return;
    gw.draining = true;
    notify_stopping(gw.gen->conf->drain_timeout);
    log_info("draining: no new connections, %lu open ones may finish within %.0fs",
             (unsigned long)counters->connections_active, gw.gen->conf->drain_timeout);
    listener_close_all();
    http_close_idle();
    h2_goaway_all();
    hold_wake_all();
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
        notify_reloading();
        gw_reload();
        notify_ready();
        break;
    case SIGUSR1:
        if (log_reopen() != EG_OK)
            log_err("cannot reopen a log file: %s", strerror(errno));
        else
            log_info("log files reopened");
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
    admin_init(loop);
    view_init(loop);
    upstream_module_init(loop);
    affinity_init(loop);
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
    static ev_signal sigs[4];
    const int signums[4] = {SIGHUP, SIGTERM, SIGINT, SIGUSR1};
    for (int i = 0; i < 4; i++) {
        ev_signal_init(&sigs[i], on_signal, signums[i]);
        ev_signal_start(loop, &sigs[i]);
        ev_unref(loop);
    }
    /* Ready once a SIGHUP or SIGTERM that follows would be handled. */
    if (ready_fd >= 0) {
        char b = 1;
        if (write(ready_fd, &b, 1) != 1)
            log_warn("cannot tell the master this worker is ready");
        close(ready_fd);
    }
    notify_ready(); /* a worker's is not sent: the master speaks for all */
    ev_timer_init(&trim_tm, on_trim, 2, 2);
    ev_timer_start(loop, &trim_tm);
    ev_unref(loop); /* the trim timer alone must not keep the loop running */
    log_attach(loop);
    if (workers == 1)
        log_info("edgegate %s started: %d datacenters, %d listeners", EG_VERSION, c->ndcs,
                 c->nlsns);
    ev_run(loop, 0);
    log_detach();
    return 0;
}
