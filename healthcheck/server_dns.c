/* c-ares integration: c-ares owns its sockets and tells us, through the
 * socket-state callback, which ones to watch; we watch them with libev and
 * hand readiness back with ares_process_fd(). One timer covers c-ares'
 * own timeouts (retransmissions). Nothing here ever blocks. */
#include "healthcheck/server_dns.h"
#include "base/alloc.h"
#include "healthcheck/datacenter.h"
#include "healthcheck/view.h"
#include "base/log.h"

#include <ares.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A failed resolution is retried sooner than the normal interval. */
#define RETRY_AFTER 2.0

struct dns_sock {
    struct dns_sock *next;
    ev_io io;
};

struct dns_name {
    struct dlist link;
    struct dc *dc;
    const struct conf_server *cs;
    ev_timer tm;
    bool busy;                  /* a query is in flight */
    bool dead;                  /* unwatched while busy: freed by the callback */
    bool failing;
    uint32_t view_seq;          /* not the checker: the view's addresses last applied */
};

static struct ev_loop *dns_loop;
static ares_channel channel;
static bool ready;
static struct dns_sock *socks;
static ev_timer ares_tm;
static struct dlist names = {&names, &names};

unsigned long dns_queries_total(void) { return view_dns_queries_total(); }

static void rearm_timeout(void)
{
    struct timeval tv, *tvp = ares_timeout(channel, NULL, &tv);
    ev_timer_stop(dns_loop, &ares_tm);
    if (!tvp)
        return;
    ev_timer_set(&ares_tm, (double)tvp->tv_sec + tvp->tv_usec / 1e6 + 0.001, 0);
    ev_timer_start(dns_loop, &ares_tm);
}

static void on_sock_io(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    ares_process_fd(channel, (revents & EV_READ) ? w->fd : ARES_SOCKET_BAD,
                    (revents & EV_WRITE) ? w->fd : ARES_SOCKET_BAD);
    rearm_timeout();
}

static void on_ares_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop, (void)w, (void)revents;
    ares_process_fd(channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
    rearm_timeout();
}

static void on_sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
    (void)data;
    struct dns_sock **pp = &socks;
    while (*pp && (*pp)->io.fd != fd)
        pp = &(*pp)->next;
    struct dns_sock *s = *pp;
    if (!readable && !writable) {
        if (s) {
            ev_io_stop(dns_loop, &s->io);
            *pp = s->next;
            free(s);
        }
        return;
    }
    if (!s) {
        s = eg_calloc(1, sizeof(*s));
        s->next = socks;
        socks = s;
    } else {
        ev_io_stop(dns_loop, &s->io);
    }
    ev_io_init(&s->io, on_sock_io, fd, (readable ? EV_READ : 0) | (writable ? EV_WRITE : 0));
    ev_io_start(dns_loop, &s->io);
}

int dns_init(struct ev_loop *loop, char *err, size_t errlen)
{
    dns_loop = loop;
    int rc = ares_library_init(ARES_LIB_INIT_ALL);
    struct ares_options o = {0};
    o.sock_state_cb = on_sock_state;
    o.timeout = 1000;
    o.tries = 2;
    if (rc == ARES_SUCCESS)
        rc = ares_init_options(&channel, &o,
                               ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES);
    if (rc != ARES_SUCCESS) {
        snprintf(err, errlen, "cannot start the DNS resolver: %s", ares_strerror(rc));
        return -1;
    }
    ev_timer_init(&ares_tm, on_ares_timeout, 0, 0);
    ready = true;
    return 0;
}

static void name_free(struct dns_name *n)
{
    ev_timer_stop(dns_loop, &n->tm);
    dlist_del(&n->link);
    free(n);
}

static void schedule(struct dns_name *n, double after)
{
    ev_timer_stop(dns_loop, &n->tm);
    ev_timer_set(&n->tm, after, 0);
    ev_timer_start(dns_loop, &n->tm);
}

static bool addr_in(const struct net_addr *a, const struct net_addr *set, int n)
{
    for (int i = 0; i < n; i++)
        if (net_addr_equal(a, &set[i]))
            return true;
    return false;
}

/* Makes the datacenter's servers from this name match ADDRS. */
static void sync_servers(struct dns_name *n, const struct net_addr *addrs, int count)
{
    struct dc *dc = n->dc;
    for (int i = dc->nsrvs - 1; i >= 0; i--) {
        struct srv *s = dc->srvs[i];
        if (s->cs == n->cs && !addr_in(&s->addr, addrs, count)) {
            log_info("%s: %s no longer resolves to %s, server removed", dc->name, n->cs->host,
                     s->name);
            dc_remove_server(dc, s);
        }
    }
    for (int i = 0; i < count; i++) {
        struct srv *s = dc_find_server(dc, &addrs[i]);
        if (s)
            continue;
        s = dc_add_server(dc, n->cs, &addrs[i]);
        log_info("%s: %s resolves to %s, server added", dc->name, n->cs->host, s->name);
    }
}

#define MAX_ADDRS 64

static void on_resolved(void *arg, int status, int timeouts, struct ares_addrinfo *res)
{
    (void)timeouts;
    struct dns_name *n = arg;
    n->busy = false;
    if (n->dead || status == ARES_EDESTRUCTION) {
        if (res)
            ares_freeaddrinfo(res);
        name_free(n);
        return;
    }
    const struct conf_dc *cd = n->dc->cd;
    if (status != ARES_SUCCESS || !res || !res->nodes) {
        if (!n->failing)
            log_warn("%s: cannot resolve %s: %s (keeping its last known addresses)",
                     n->dc->name, n->cs->host, ares_strerror(status));
        n->failing = true;
        if (res)
            ares_freeaddrinfo(res);
        schedule(n, MIN(cd->resolve_interval, RETRY_AFTER));
        return;
    }
    if (n->failing)
        log_info("%s: %s resolves again", n->dc->name, n->cs->host);
    n->failing = false;
    struct net_addr addrs[MAX_ADDRS];
    int count = 0, ttl = 0;
    for (struct ares_addrinfo_node *a = res->nodes; a && count < MAX_ADDRS; a = a->ai_next) {
        if (a->ai_family != AF_INET && a->ai_family != AF_INET6)
            continue;
        struct net_addr na = {.len = (socklen_t)a->ai_addrlen};
        memcpy(&na.ss, a->ai_addr, a->ai_addrlen);
        net_addr_set_port(&na, n->cs->port);
        if (!addr_in(&na, addrs, count))
            addrs[count++] = na;
        if (a->ai_ttl > 0 && (ttl == 0 || a->ai_ttl < ttl))
            ttl = a->ai_ttl;
    }
    ares_freeaddrinfo(res);
    sync_servers(n, addrs, count);
    view_publish_names(n->dc->name, n->cs->spec, addrs, count);
    double next = cd->resolve_interval;
    if (ttl >= 1 && ttl < next)
        next = ttl;
    schedule(n, next);
}

static void on_name_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop, (void)revents;
    struct dns_name *n = w->data;
    if (n->busy || !ready)
        return;
    char port[8];
    snprintf(port, sizeof(port), "%u", n->cs->port);
    struct ares_addrinfo_hints hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    n->busy = true;
    view_count_dns_query();
    ares_getaddrinfo(channel, n->cs->host, port, &hints, on_resolved, n);
    rearm_timeout();
}

static void apply_shared(struct dns_name *n);

void dns_watch(struct dc *dc, const struct conf_server *cs, const struct dc *old)
{
    struct dns_name *n = eg_calloc(1, sizeof(*n));
    n->dc = dc;
    n->cs = cs;
    ev_timer_init(&n->tm, on_name_timer, 0, 0);
    n->tm.data = n;
    dlist_add_tail(&names, &n->link);
    for (int i = 0; old && i < old->nsrvs; i++) {
        const struct srv *os = old->srvs[i];
        if (os->cs && strcmp(os->cs->spec, cs->spec) == 0) {
            struct srv *s = dc_add_server(dc, cs, &os->addr);
            srv_inherit(s, os);
        }
    }
    if (view_checker())
        schedule(n, 0);
    else
        apply_shared(n);
}

/* Not the checker: the servers of N are what the checker resolved. */
static void apply_shared(struct dns_name *n)
{
    struct net_addr addrs[VIEW_MAX_ADDRS];
    uint32_t seq;
    int count = view_names(n->dc->name, n->cs->spec, addrs, &seq);
    if (count < 0 || seq == n->view_seq)
        return;
    n->view_seq = seq;
    sync_servers(n, addrs, count);
}

void dns_apply_shared(void)
{
    for (struct dlist *l = names.next; l != &names; l = l->next)
        apply_shared(container_of(l, struct dns_name, link));
}

void dns_unwatch(struct dc *dc)
{
    for (struct dlist *l = names.next, *next; l != &names; l = next) {
        next = l->next;
        struct dns_name *n = container_of(l, struct dns_name, link);
        if (n->dc != dc)
            continue;
        if (n->busy) {
            n->dead = true;
            ev_timer_stop(dns_loop, &n->tm);
        } else {
            name_free(n);
        }
    }
}

struct lookup {
    dns_cb cb;
    void *ctx;
    uint16_t port;
};

static void on_lookup(void *arg, int status, int timeouts, struct ares_addrinfo *res)
{
    (void)timeouts;
    struct lookup *l = arg;
    struct net_addr a, *found = NULL;
    for (struct ares_addrinfo_node *n = res && status == ARES_SUCCESS ? res->nodes : NULL; n;
         n = n->ai_next) {
        if (n->ai_family != AF_INET && n->ai_family != AF_INET6)
            continue;
        a.len = (socklen_t)n->ai_addrlen;
        memcpy(&a.ss, n->ai_addr, n->ai_addrlen);
        net_addr_set_port(&a, l->port);
        found = &a;
        break;
    }
    if (res)
        ares_freeaddrinfo(res);
    if (status != ARES_EDESTRUCTION)
        l->cb(l->ctx, found);
    free(l);
}

void dns_lookup(const char *host, uint16_t port, dns_cb cb, void *ctx)
{
    char spec[300], err[EG_ERRLEN];
    struct net_addr a;
    snprintf(spec, sizeof(spec), strchr(host, ':') ? "[%s]:%u" : "%s:%u", host, port);
    if (net_parse_addr(spec, &a, err, sizeof(err)) == EG_OK) {
        cb(ctx, &a);
        return;
    }
    if (!ready) {
        cb(ctx, NULL);
        return;
    }
    struct lookup *l = eg_malloc(sizeof(*l));
    *l = (struct lookup){.cb = cb, .ctx = ctx, .port = port};
    struct ares_addrinfo_hints hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    view_count_dns_query();
    ares_getaddrinfo(channel, host, NULL, &hints, on_lookup, l);
    rearm_timeout();
}
