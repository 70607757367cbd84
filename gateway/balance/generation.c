/* Building, activating and freeing generations. */
#include "gateway/balance/generation.h"
#include "base/alloc.h"
#include "base/counters.h"
#include "base/tls.h"
#include "conf/conf.h"
#include "gateway/balance/route.h"
#include "healthcheck/datacenter.h"
#include "healthcheck/server_dns.h"

#include <stdlib.h>
#include <string.h>

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
    dc_recompute(dc);
    if (old)
        dc_inherit(dc, old);
}

static SSL_CTX *server_tls(const struct conf_server *cs, struct conf_errs *errs)
{
    char err[EG_ERRLEN];
    SSL_CTX *ctx = tls_client_ctx(cs->verify, err, sizeof(err));
    if (!ctx)
        conf_errs_add(errs, cs->file, cs->line, "\"server\": %s", err);
    return ctx;
}

/* The contexts of listener CL, NULL with the problems in ERRS. */
static struct tls_lsn *listener_tls(const struct conf_listener *cl, struct conf_errs *errs,
                                    bool *unreadable)
{
    struct tls_lsn *t = tls_lsn_new(cl->ncerts, cl->mode == MODE_HTTP, cl->http2);
    bool ok = true;
    for (int i = 0; i < cl->ncerts; i++) {
        char err[EG_ERRLEN * 2];
        if (tls_lsn_add_cert(t, cl->certs[i].cert, cl->certs[i].key, err, sizeof(err),
                             unreadable) != EG_OK) {
            conf_errs_add(errs, cl->certs[i].file, cl->certs[i].line, "\"tls\": %s", err);
            ok = false;
        }
    }
    if (!ok) {
        tls_lsn_free(t);
        return NULL;
    }
    return t;
}

/* The fleet's ticket keys, NULL with the problem in ERRS. */
static struct tls_ticket_keys *ticket_keys(const struct conf *c, struct conf_errs *errs,
                                           bool *unreadable)
{
    char err[EG_ERRLEN * 2];
    struct tls_ticket_keys *k = tls_ticket_keys_load(c->tls_ticket_keys, err, sizeof(err),
                                                     unreadable);
    if (!k)
        conf_errs_add(errs, c->tls_ticket_keys_at.file, c->tls_ticket_keys_at.line,
                      "\"tls_ticket_keys\": %s", err);
    return k;
}

/* TLS towards the servers of DC, one context per `server` line with tls. */
static bool dc_tls(struct dc *dc, struct conf_errs *errs)
{
    const struct conf_dc *cd = dc->cd;
    bool any = false, ok = true;
    for (int k = 0; k < cd->nservers; k++)
        any |= cd->servers[k].tls;
    if (!any)
        return true;
    dc->tls = eg_calloc((size_t)cd->nservers, sizeof(*dc->tls));
    for (int k = 0; k < cd->nservers; k++)
        if (cd->servers[k].tls && !(dc->tls[k] = server_tls(&cd->servers[k], errs)))
            ok = false;
    return ok;
}

struct gen *gen_create(struct conf *c, struct gen *prev, struct conf_errs *errs,
                              bool *unreadable)
{
    struct gen *g = eg_calloc(1, sizeof(*g));
    g->refs = 1;
    g->id = ++gen_ids;
    g->conf = c;
    g->ndcs = c->ndcs;
    g->dcs = eg_calloc((size_t)c->ndcs, sizeof(*g->dcs));
    g->tls = eg_calloc((size_t)c->nlsns, sizeof(*g->tls));
    g->lst = eg_calloc((size_t)c->nlsns, sizeof(*g->lst));
    for (int i = 0; i < c->nlsns; i++)
        g->lst[i] = stats_lsn(c->lsns[i].name);
    bool ok = true;
    for (int i = 0; i < c->nlsns; i++)
        if (c->lsns[i].ncerts && !(g->tls[i] = listener_tls(&c->lsns[i], errs, unreadable)))
            ok = false;
    if (c->tls_ticket_keys && !(g->tkeys = ticket_keys(c, errs, unreadable)))
        ok = false;
    for (int i = 0; i < c->ndcs; i++) {
        g->dcs[i] = dc_create(&c->dcs[i], i);
        if (!dc_tls(g->dcs[i], errs))
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

void gen_activate(struct gen *g)
{
    tls_ticket_keys_use(g->tkeys);
    for (int i = 0; i < g->ndcs; i++)
        dc_activate(g->dcs[i]);
}

/* Stops what only the current generation may run: checks, DNS, pools. */
void gen_retire(struct gen *g)
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
    tls_ticket_keys_free(g->tkeys);
    free(g->lst);
    free(g->dcs);
    conf_free(g->conf);
    free(g);
}

int gen_check_tls(const struct conf *c, struct conf_errs *errs, bool *unreadable)
{
    int before = errs->count;
    if (c->tls_ticket_keys)
        tls_ticket_keys_free(ticket_keys(c, errs, unreadable));
    for (int i = 0; i < c->nlsns; i++)
        if (c->lsns[i].ncerts)
            tls_lsn_free(listener_tls(&c->lsns[i], errs, unreadable));
    for (int d = 0; d < c->ndcs; d++)
        for (int k = 0; k < c->dcs[d].nservers; k++)
            if (c->dcs[d].servers[k].tls)
                SSL_CTX_free(server_tls(&c->dcs[d].servers[k], errs));
    return errs->count == before ? EG_OK : EG_ERR;
}
