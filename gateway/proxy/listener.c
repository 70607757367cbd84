/* Listeners: accept loop and socket lifecycle across reloads. */
#include "gateway/proxy/listener.h"
#include "base/alloc.h"
#include "gateway/proxy/http_session.h"
#include "base/log.h"
#include "base/counters.h"
#include "gateway/proxy/tcp.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

/* Accepts per readiness event: enough to drain a burst, few enough to let
 * established connections run between bursts. */
#define ACCEPT_BATCH 64

/* Descriptors kept for everything but client connections and their server
 * connections: listening sockets, the stats endpoint, Redis, DNS, the log,
 * the event loop. Checks take one more per server. */
#define FD_RESERVE 64

static struct dlist live = {&live, &live};       /* accepting now */
static struct dlist pending = {&pending, &pending}; /* opened by prepare, not live yet */
static ev_timer retry_tm;                            /* out of descriptors: pause accept */
static int default_max;                              /* for listeners without max_connections */
static struct log_limit limit_log, pause_log;

static void accept_pause(struct ev_loop *loop);

/* Connections of listener NAME, over all its addresses. */
static int listener_conns(const char *name)
{
    int n = 0;
    for (struct dlist *d = live.next; d != &live; d = d->next) {
        struct listener *l = container_of(d, struct listener, link);
        if (strcmp(l->name, name) == 0)
            n += l->nconns;
    }
    return n;
}

/* At max_connections a listener stops accepting: new clients wait in the
 * kernel's accept queue (not refused) until a connection ends. */
static void set_paused(const char *name, bool paused)
{
    for (struct dlist *d = live.next; d != &live; d = d->next) {
        struct listener *l = container_of(d, struct listener, link);
        if (strcmp(l->name, name) != 0 || l->closed || l->paused == paused)
            continue;
        l->paused = paused;
        if (paused)
            ev_io_stop(gw.loop, &l->io);
        else
            ev_io_start(gw.loop, &l->io);
    }
}

static bool at_limit(const struct listener *l)
{
    int max = gw.gen->conf->lsns[l->cidx].max_connections;
    if (max == 0)
        max = default_max;
    return max > 0 && listener_conns(l->name) >= max;
}

/* max_connections 0 means as many as the descriptor limit allows: a client
 * connection may hold a server connection too, so the listeners without a
 * limit share half of what is left after the reserve and one check
 * connection per server. Accepting beyond that would run the process out
 * of descriptors, and its health checks with it. */
static void derive_default_max(const struct gen *g)
{
    const struct conf *c = g->conf;
    int unlimited = 0, servers = 0;
    for (int i = 0; i < c->nlsns; i++)
        unlimited += c->lsns[i].max_connections == 0;
    for (int i = 0; i < g->ndcs; i++)
        servers += g->dcs[i]->nsrvs;
    struct rlimit rl;
    if (!unlimited || getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    long nofile = (long)MIN(rl.rlim_cur, (rlim_t)INT_MAX);
    int max = (int)MAX((nofile - FD_RESERVE - servers) / 2 / unlimited, 1);
    if (max != default_max)
        log_info("listeners without max_connections take up to %d connections each "
                 "(%ld descriptors)", max, nofile);
    default_max = max;
}

void listener_conn_closed(struct listener *l)
{
    if (l->paused && !at_limit(l))
        set_paused(l->name, false);
}

static void on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)revents;
    struct listener *l = w->data;
    for (int i = 0; i < ACCEPT_BATCH && !l->closed; i++) {
        if (at_limit(l)) {
            counters->max_connections_hits_total++;
            log_limited(&limit_log, 10, LOG_WARN,
                        "listener %s: max_connections reached, new clients wait", l->name);
            set_paused(l->name, true);
            return;
        }
        struct net_addr peer;
        peer.len = sizeof(peer.ss);
        int fd = accept4(l->fd, (struct sockaddr *)&peer.ss, &peer.len,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (net_local_exhaustion(errno)) {
                log_limited(&pause_log, 10, LOG_WARN,
                            "listener %s: accept: %s, pausing accepts for 100ms", l->name,
                            strerror(errno));
                accept_pause(loop);
            }
            return;
        }
        const struct conf_listener *cl = &gw.gen->conf->lsns[l->cidx];
        conn_accept(fd, l, &peer, cl->mode == MODE_TCP ? &tcp_conn_ops : &http_conn_ops);
    }
}

static void on_retry(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)w, (void)revents;
    for (struct dlist *n = live.next; n != &live; n = n->next) {
        struct listener *l = container_of(n, struct listener, link);
        if (!l->closed && !l->paused)
            ev_io_start(loop, &l->io);
    }
}

static void accept_pause(struct ev_loop *loop)
{
    if (ev_is_active(&retry_tm))
        return;
    for (struct dlist *n = live.next; n != &live; n = n->next)
        ev_io_stop(loop, &container_of(n, struct listener, link)->io);
    ev_timer_init(&retry_tm, on_retry, 0.1, 0);
    ev_timer_start(loop, &retry_tm);
}

static struct listener *find_live(const struct net_addr *a)
{
    for (struct dlist *n = live.next; n != &live; n = n->next) {
        struct listener *l = container_of(n, struct listener, link);
        if (!l->closed && net_addr_equal(&l->addr, a))
            return l;
    }
    return NULL;
}

static void close_pending(void)
{
    while (!dlist_empty(&pending)) {
        struct listener *l = container_of(pending.next, struct listener, link);
        dlist_del(&l->link);
        close(l->fd);
        free(l);
    }
}

int listener_prepare(struct gen *g, char *err, size_t errlen)
{
    const struct conf *c = g->conf;
    for (int i = 0; i < c->nlsns; i++)
        for (int a = 0; a < c->lsns[i].nlistens; a++) {
            const struct net_addr *addr = &c->lsns[i].listens[a].addr;
            if (find_live(addr))
                continue;
            char e[EG_ERRLEN];
            int fd = net_listen(addr, 4096, gw.workers > 1, e, sizeof(e));
            if (fd < 0) {
                snprintf(err, errlen, "%s:%d: listener \"%s\": %s", c->file,
                         c->lsns[i].listens[a].line, c->lsns[i].name, e);
                close_pending();
                return EG_ERR;
            }
            struct listener *l = eg_calloc(1, sizeof(*l));
            l->refs = 1;
            l->fd = fd;
            l->addr = *addr;
            l->cidx = i;
            ev_io_init(&l->io, on_accept, fd, EV_READ);
            l->io.data = l;
            dlist_add_tail(&pending, &l->link);
        }
    return EG_OK;
}

void listener_abort(void) { close_pending(); }

static void listener_close(struct listener *l)
{
    if (l->closed)
        return;
    l->closed = true;
    ev_io_stop(gw.loop, &l->io);
    close(l->fd);
    l->fd = -1;
    dlist_del(&l->link);
    listener_unref(l);
}

void listener_commit(struct gen *g)
{
    const struct conf *c = g->conf;
    derive_default_max(g);
    for (struct dlist *n = live.next; n != &live; n = n->next)
        container_of(n, struct listener, link)->keep = false;
    while (!dlist_empty(&pending)) {
        struct listener *l = container_of(pending.next, struct listener, link);
        dlist_del(&l->link);
        dlist_add_tail(&live, &l->link);
        l->keep = true;
        ev_io_start(gw.loop, &l->io);
    }
    for (int i = 0; i < c->nlsns; i++)
        for (int a = 0; a < c->lsns[i].nlistens; a++) {
            struct listener *l = find_live(&c->lsns[i].listens[a].addr);
            l->keep = true;
            l->cidx = i;
            /* What accepted connections start with: the ACK of a client's
             * first bytes rides on the answer (delayed_ack), and they are
             * handed over once those bytes are in (defer_accept). */
            net_set_quickack(l->fd, !c->lsns[i].delayed_ack);
            net_set_defer_accept(l->fd, c->lsns[i].defer_accept ? 1 : 0);
            snprintf(l->name, sizeof(l->name), "%s", c->lsns[i].name);
        }
    for (struct dlist *n = live.next, *next; n != &live; n = next) {
        next = n->next;
        struct listener *l = container_of(n, struct listener, link);
        if (!l->keep) {
            log_info("listener %s: closing its socket (removed from the configuration)", l->name);
            listener_close(l);
        }
    }
}

void listener_close_all(void)
{
    while (!dlist_empty(&live))
        listener_close(container_of(live.next, struct listener, link));
}

void listener_unref(struct listener *l)
{
    if (--l->refs == 0)
        free(l);
}
