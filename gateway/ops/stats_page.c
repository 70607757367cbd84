/* The status page. It answers, in this order, what an operator asks during
 * an outage: what is wrong right now (the banner), how much traffic fails
 * (rates of the last 10 s and minute), where new sessions go (per
 * listener), which datacenters and servers are down, since when and why
 * (the last check of each server), what operators did (drains, downs,
 * weights, the recent changes), then the counters, grouped, errors marked
 * when they are not zero.
 *
 * Operator state comes from where /stats takes it (gateway/ops/control.c),
 * where new sessions go from routing itself (gateway/balance/route.c).
 *
 * The shell (styles, the refresh script) is gateway/ops/stats_page.html,
 * compiled in; what is live is written at its <!--STATUS--> mark. Names of
 * datacenters and listeners are validated words ([A-Za-z0-9._-]) and server
 * names addresses; free text (check results, Redis' address) and what
 * operators' changes carry (origins, descriptions, which may come from the
 * fleet's Redis) is escaped. Not the data path: clarity beats speed here. */
#include "gateway/ops/stats_page.h"
#include "base/buffer.h"
#include "base/counters.h"
#include "gateway/balance/affinity.h"
#include "gateway/balance/generation.h"
#include "gateway/balance/redis.h"
#include "gateway/balance/route.h"
#include "gateway/ops/control.h"
#include "gateway/ops/stats_rates.h"
#include "gateway/ops/stats_server.h"
#include "healthcheck/check.h"
#include "healthcheck/datacenter.h"
#include "healthcheck/server_dns.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static const char shell[] =
#include "stats_page.inc"
    ;

#define MARK "<!--STATUS-->"
#define MAX_LISTED 6            /* servers named in the banner before "and N more" */

/* ---- words ---- */

static void esc(struct sbuf *b, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&': sbuf_add(b, "&amp;", 5); break;
        case '<': sbuf_add(b, "&lt;", 4); break;
        case '>': sbuf_add(b, "&gt;", 4); break;
        case '"': sbuf_add(b, "&quot;", 6); break;
        default: sbuf_add(b, s, 1);
        }
    }
}

/* "12 s", "4 min 12 s", "3 h 12 min", "2 d 3 h" */
static const char *dur(double s, char *buf, size_t len)
{
    long v = s < 0 ? 0 : (long)s;
    if (v < 60)
        snprintf(buf, len, "%ld s", v);
    else if (v < 3600)
        snprintf(buf, len, "%ld min %ld s", v / 60, v % 60);
    else if (v < 86400)
        snprintf(buf, len, "%ld h %ld min", v / 3600, v % 3600 / 60);
    else
        snprintf(buf, len, "%ld d %ld h", v / 86400, v % 86400 / 3600);
    return buf;
}

static const char *ago(double s, char *buf, size_t len)
{
    char d[32];
    if (s < 10)
        snprintf(buf, len, "%.1f s ago", s < 0 ? 0 : s);
    else
        snprintf(buf, len, "%s ago", dur(s, d, sizeof(d)));
    return buf;
}

/* 1234567 -> "1,234,567" */
static const char *num(uint64_t v, char *buf, size_t len)
{
    char digits[32];
    int n = snprintf(digits, sizeof(digits), "%llu", (unsigned long long)v);
    size_t o = 0;
    for (int i = 0; i < n && o + 2 < len; i++) {
        if (i > 0 && (n - i) % 3 == 0)
            buf[o++] = ',';
        buf[o++] = digits[i];
    }
    buf[o] = '\0';
    return buf;
}

static const char *bytes(uint64_t v, char *buf, size_t len)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double x = (double)v;
    int u = 0;
    while (x >= 1024 && u < 4) {
        x /= 1024;
        u++;
    }
    snprintf(buf, len, u ? "%.1f %s" : "%.0f %s", x, units[u]);
    return buf;
}

static const char *rate_str(double v, char *buf, size_t len)
{
    if (v <= 0)
        snprintf(buf, len, "0");
    else if (v < 10)
        snprintf(buf, len, "%.1f", v);
    else
        num((uint64_t)(v + 0.5), buf, len);
    return buf;
}

static const char *ms(double v, char *buf, size_t len)
{
    if (v < 0)
        snprintf(buf, len, "&ndash;");
    else
        snprintf(buf, len, v < 10 ? "%.2f ms" : "%.1f ms", v);
    return buf;
}

static const char *plural(long n, const char *one, const char *many)
{
    return n == 1 ? one : many;
}

/* ---- the banner ---- */

enum sev { SEV_OK, SEV_WARN, SEV_BAD };

struct banner {
    struct sbuf head;           /* the headline: problems in a few words */
    struct sbuf items;          /* one line each, with the details */
    enum sev worst;
};

static void problem(struct banner *bn, enum sev sev, const char *headline, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void problem(struct banner *bn, enum sev sev, const char *headline, const char *fmt, ...)
{
    if (sev > bn->worst)
        bn->worst = sev;
    sbuf_printf(&bn->head, "%s<span class=\"%s\">%s</span>", bn->head.len ? " &middot; " : "",
                sev == SEV_BAD ? "bad" : "warn", headline);
    /* Whole, however long: a line cut short could cut a tag. */
    va_list ap;
    va_start(ap, fmt);
    char *line = NULL;
    int n = vasprintf(&line, fmt, ap);
    va_end(ap);
    sbuf_printf(&bn->items, "<li class=\"%s\">%s</li>", sev == SEV_BAD ? "bad" : "warn",
                n >= 0 ? line : "");
    if (n >= 0)
        free(line);
}

/* Why server S is down, in words: an ejection, else its last check (what a
 * person wants to read), else the reason of its last transition. */
static const char *down_why(const struct srv *s, char *buf, size_t len)
{
    if (s->reason == SRV_R_OUTLIER) {
        snprintf(buf, len, "ejected after consecutive 5xx answers");
        return buf;
    }
    if (!s->last_check.ok && s->last_check.cause != CHECK_C_NONE) {
        char what[128];
        check_describe(&s->last_check, what, sizeof(what));
        struct sbuf e = {0};
        esc(&e, what);
        snprintf(buf, len, "%s", e.s ? e.s : "");
        sbuf_free(&e);
        return buf;
    }
    snprintf(buf, len, "%s", srv_reason_name(s->reason));
    return buf;
}

static void banner_datacenters(struct banner *bn, ev_tstamp now)
{
    const struct gen *g = gw.gen;
    char d[32], why[256];
    for (int i = 0; i < g->ndcs; i++) {
        const struct dc *dc = g->dcs[i];
        if (dc->healthy || dc->admin == ADMIN_DOWN) /* an operator's: banner_operator */
            continue;
        char head[128];
        snprintf(head, sizeof(head), "Datacenter %s down", dc->name);
        const struct srv *first = NULL;
        for (int k = 0; k < dc->nsrvs && !first; k++)
            if (!dc->srvs[k]->up)
                first = dc->srvs[k];
        why[0] = '\0';
        if (first) {
            char w[200];
            snprintf(why, sizeof(why), "; %s: %s", first->name, down_why(first, w, sizeof(w)));
        }
        problem(bn, SEV_BAD, head,
                "<b>Datacenter %s is down</b> for %s: %d of %d servers up, %d needed%s",
                dc->name, dur(now - dc->changed_at, d, sizeof(d)), dc->nup, dc->nsrvs,
                dc->cd->min_servers, why);
    }
}

/* Servers down in datacenters that are still up: the datacenter serves,
 * with less. Those of a datacenter that is down are in its own line. */
static void banner_servers(struct banner *bn, ev_tstamp now)
{
    const struct gen *g = gw.gen;
    int down = 0, ejected = 0;
    struct sbuf list = {0};
    char d[32], why[256];
    for (int i = 0; i < g->ndcs; i++) {
        const struct dc *dc = g->dcs[i];
        for (int k = 0; dc->healthy && k < dc->nsrvs; k++) {
            const struct srv *s = dc->srvs[k];
            if (s->up || s->admin == ADMIN_DOWN) /* an operator's: banner_operator */
                continue;
            ejected += s->reason == SRV_R_OUTLIER;
            if (++down <= MAX_LISTED)
                sbuf_printf(&list, "%s%s of %s (%s, for %s)", down > 1 ? "; " : "", s->name,
                            dc->name, down_why(s, why, sizeof(why)),
                            dur(now - s->since, d, sizeof(d)));
        }
    }
    if (down > MAX_LISTED)
        sbuf_printf(&list, "; and %d more", down - MAX_LISTED);
    if (down) {
        char head[64];
        snprintf(head, sizeof(head), "%d %s down%s", down, plural(down, "server", "servers"),
                 ejected ? " or ejected" : "");
        problem(bn, SEV_WARN, head, "<b>%d %s down</b>: %s", down,
                plural(down, "server", "servers"), list.s);
    }
    sbuf_free(&list);
}

static void banner_listeners(struct banner *bn, ev_tstamp now)
{
    const struct conf *cf = gw.gen->conf;
    for (int i = 0; i < cf->nlsns; i++) {
        const struct conf_listener *cl = &cf->lsns[i];
        struct stats_lsn_row r;
        stats_sum_lsn(cl->name, &r);
        struct dc *first = route_nearest(gw.gen, cl);
        char head[128], pct[16];
        if (!first) {
            const char *what = cl->mode == MODE_TCP ? "connections" : "requests";
            const char *end = cl->mode == MODE_TCP ? "are closed" : "get 503";
            char wait[64];
            snprintf(head, sizeof(head), "%s: no datacenter", cl->name);
            if (cl->hold_timeout > 0)
                snprintf(wait, sizeof(wait), "wait up to %.3g s, then %s", cl->hold_timeout, end);
            else
                snprintf(wait, sizeof(wait), "%s at once", end);
            problem(bn, SEV_BAD, head,
                    "<b>Listener %s has no healthy datacenter</b>: %ld %s held now; new ones %s",
                    cl->name, (long)r.held_now, what, wait);
            continue;
        }
        if (r.held_now > 0) {
            snprintf(head, sizeof(head), "%s holding %ld", cl->name, (long)r.held_now);
            problem(bn, SEV_BAD, head, "<b>Listener %s is holding %ld</b> %s", cl->name,
                    (long)r.held_now, cl->pin == PIN_STRICT
                        ? "(affinity strict: sessions wait for their own datacenter)"
                        : "waiting for a healthy datacenter");
        }
        double away = route_giveaway(first, now);
        struct dc *next = away > 0 ? route_spill_target(gw.gen, cl, first) : NULL;
        if (next) {
            snprintf(pct, sizeof(pct), "%.0f %%", away * 100);
            snprintf(head, sizeof(head), "%s gives %s away", first->name, pct);
            problem(bn, SEV_WARN, head,
                    "<b>%s gives away %s of new sessions</b> of %s to %s (%s)", first->name,
                    pct, cl->name, next->name,
                    first->nup < first->nsrvs ? "spill-over: servers down" : "slow start");
        }
    }
}

/* " (by 127.0.0.1:51234, 2 min 3 s ago)": who said it, and when. */
static void said_by(struct sbuf *b, const struct admin_entry *e, ev_tstamp now)
{
    char a[32];
    sbuf_printf(b, " (by ");
    esc(b, e->origin[0] ? e->origin : "?");
    sbuf_printf(b, ", %s)", ago(now - e->since, a, sizeof(a)));
}

/* A listener whose new sessions go to DC although an operator drains it
 * (routing falls back to drained datacenters when no other can take them):
 * the first, NULL when none. */
static const struct conf_listener *still_new_sessions(const struct dc *dc)
{
    const struct conf *cf = gw.gen->conf;
    for (int i = 0; i < cf->nlsns; i++)
        if (route_nearest(gw.gen, &cf->lsns[i]) == dc)
            return &cf->lsns[i];
    return NULL;
}

/* What operators did on purpose: warnings, not outages. */
static void banner_operator(struct banner *bn, ev_tstamp now)
{
    const struct gen *g = gw.gen;
    char head[128], d[32];
    for (int i = 0; i < g->ndcs; i++) {
        const struct dc *dc = g->dcs[i];
        struct admin_entry e;
        double left = 0;
        if (dc->admin == ADMIN_READY)
            continue;
        bool known = control_dc_admin(dc, &e, &left);
        struct sbuf line = {0};
        if (dc->admin == ADMIN_DOWN) {
            snprintf(head, sizeof(head), "%s down by an operator", dc->name);
            sbuf_printf(&line, "<b>Datacenter %s is down by an operator</b>: its servers are "
                               "marked down, its sessions go elsewhere", dc->name);
        } else {
            snprintf(head, sizeof(head), "%s %s", dc->name,
                     dc->drained ? "drained" : "draining");
            sbuf_printf(&line, "<b>Datacenter %s is drained by an operator</b>: new sessions "
                               "go elsewhere; sessions pinned to it ", dc->name);
            if (dc->drained)
                sbuf_printf(&line, "leave too (the drain's time ran out)");
            else
                sbuf_printf(&line, "leave in %s", dur(ceil(left), d, sizeof(d)));
            const struct conf_listener *cl = still_new_sessions(dc);
            if (cl)
                sbuf_printf(&line, "; but listener %s has no other datacenter: its new "
                                   "sessions still go there", cl->name);
        }
        if (known)
            said_by(&line, &e, now);
        problem(bn, SEV_WARN, head, "%s", line.s);
        sbuf_free(&line);
    }
    /* Servers an operator drains or took down, in datacenters it left alone. */
    int drained = 0, down = 0;
    struct sbuf list = {0};
    for (int i = 0; i < g->ndcs; i++) {
        const struct dc *dc = g->dcs[i];
        for (int k = 0; dc->admin == ADMIN_READY && k < dc->nsrvs; k++) {
            const struct srv *s = dc->srvs[k];
            if (s->admin == ADMIN_READY)
                continue;
            drained += s->admin == ADMIN_DRAIN;
            down += s->admin == ADMIN_DOWN;
            if (drained + down <= MAX_LISTED)
                sbuf_printf(&list, "%s%s of %s (%s)", drained + down > 1 ? "; " : "", s->name,
                            dc->name, s->admin == ADMIN_DRAIN ? "drained" : "down");
        }
    }
    int n = drained + down;
    if (n > MAX_LISTED)
        sbuf_printf(&list, "; and %d more", n - MAX_LISTED);
    if (n) {
        snprintf(head, sizeof(head), "%d %s %s by an operator", n,
                 plural(n, "server", "servers"),
                 !down ? "drained" : !drained ? "down" : "drained or down");
        problem(bn, SEV_WARN, head, "<b>%s</b>: %s", head, list.s);
    }
    sbuf_free(&list);
}

static void banner(struct sbuf *b, ev_tstamp now)
{
    struct banner bn = {0};
    char d[32];
    if (gw.draining)
        problem(&bn, SEV_WARN, "Draining",
                "<b>Draining</b>: no new connections; open ones finish within drain_timeout");
    banner_datacenters(&bn, now);
    banner_listeners(&bn, now);
    banner_servers(&bn, now);
    banner_operator(&bn, now);
    struct redis_status rs;
    redis_status(&rs);
    if (rs.configured && !rs.connected)
        problem(&bn, SEV_WARN, "Redis down",
                "<b>Redis is unreachable</b> (%s without it in all): sessions are answered from "
                "the local cache, new ones by rendezvous hashing",
                dur(rs.degraded_s, d, sizeof(d)));
    if (bn.worst == SEV_OK) {
        int nup = 0, n = 0;
        for (int i = 0; i < gw.gen->ndcs; i++) {
            nup += gw.gen->dcs[i]->nup;
            n += gw.gen->dcs[i]->nsrvs;
        }
        sbuf_printf(b, "<section class=\"banner ok\" id=\"banner\"><p class=\"headline\">All is "
                       "well: %d %s healthy, %d of %d servers up%s</p></section>",
                    gw.gen->ndcs, plural(gw.gen->ndcs, "datacenter", "datacenters"), nup, n,
                    rs.configured ? ", Redis connected" : "");
    } else {
        sbuf_printf(b, "<section class=\"banner %s\" id=\"banner\" role=\"alert\">"
                       "<p class=\"headline\">%s</p><ul>%s</ul></section>",
                    bn.worst == SEV_BAD ? "bad" : "warn", bn.head.s, bn.items.s);
    }
    sbuf_free(&bn.head);
    sbuf_free(&bn.items);
}

/* ---- rates ---- */

/* A line of the last minute, one point a second, scaled to its maximum. */
static void sparkline(struct sbuf *b, const double *v, int n, const char *what)
{
    double max = 0;
    for (int i = 0; i < n; i++)
        max = v[i] > max ? v[i] : max;
    char m[32];
    sbuf_printf(b, "<svg class=\"spark\" viewBox=\"0 0 %d 30\" preserveAspectRatio=\"none\" "
                   "role=\"img\"><title>%s per second over the last minute, at most %s</title>"
                   "<polyline points=\"",
                2 * (n - 1), what, rate_str(max, m, sizeof(m)));
    for (int i = 0; i < n; i++)
        sbuf_printf(b, "%s%d,%.1f", i ? " " : "", 2 * i, max > 0 ? 29 - 27 * v[i] / max : 29.0);
    sbuf_printf(b, "\"/></svg>");
}

static void rates(struct sbuf *b)
{
    static const struct {
        enum rates_kind k;
        const char *title, *what;
        bool error;
    } tiles[] = {
        {RATES_REQUESTS, "Requests", "requests and tcp connections", false},
        {RATES_HTTP_5XX, "5xx answers", "5xx answers (the servers' and the gateway's)", true},
        {RATES_ERRORS, "Gateway errors", "errors the gateway answered itself (4xx, 502, 503, "
                                         "504, tcp connections it closed)", true},
    };
    sbuf_printf(b, "<section class=\"rates\" aria-label=\"rates\">");
    for (size_t i = 0; i < ARRAY_LEN(tiles); i++) {
        double series[RATES_SERIES];
        rates_series(tiles[i].k, series);
        double r10 = rates_per_s(tiles[i].k, 10), r60 = rates_per_s(tiles[i].k, 60);
        char a[32], c[32];
        bool hot = tiles[i].error && (r10 > 0 || r60 > 0);
        sbuf_printf(b, "<div class=\"rate%s\" title=\"%s\"><div class=\"label\">%s</div>"
                       "<div class=\"value\"><b>%s</b>/s <span>last 10 s</span></div>"
                       "<div class=\"sub\">%s/s over 1 min</div>",
                    hot ? " hot" : "", tiles[i].what, tiles[i].title,
                    rate_str(r10, a, sizeof(a)), rate_str(r60, c, sizeof(c)));
        sparkline(b, series, RATES_SERIES, tiles[i].title);
        sbuf_printf(b, "</div>");
    }
    sbuf_printf(b, "</section>");
}

/* ---- listeners ---- */

static void count_cell(struct sbuf *b, const char *label, uint64_t v, bool error)
{
    char n[32];
    sbuf_printf(b, "<td class=\"num%s\" data-label=\"%s\">%s</td>",
                error && v ? " err" : v ? "" : " zero", label, num(v, n, sizeof(n)));
}

static void listeners(struct sbuf *b, ev_tstamp now)
{
    const struct conf *cf = gw.gen->conf;
    sbuf_printf(b, "<h2>Listeners</h2><table class=\"rows\"><thead><tr><th>listener</th>"
                   "<th>new sessions go to</th><th class=\"num\">held</th>"
                   "<th class=\"num\">connections</th><th class=\"num\">requests</th>"
                   "<th class=\"num\">4xx</th><th class=\"num\">5xx</th></tr></thead><tbody>");
    for (int i = 0; i < cf->nlsns; i++) {
        const struct conf_listener *cl = &cf->lsns[i];
        struct stats_lsn_row r;
        stats_sum_lsn(cl->name, &r);
        char n1[32], n2[32];
        sbuf_printf(b, "<tr><th scope=\"row\" data-label=\"listener\">%s <span class=\"tag\">%s%s%s"
                       "</span></th><td data-label=\"new sessions\">",
                    cl->name, cl->mode == MODE_TCP ? "tcp" : "http", cl->ncerts ? " + tls" : "",
                    cl->pin == PIN_STRICT ? ", strict" : "");
        struct dc *first = route_nearest(gw.gen, cl);
        if (!first) {
            sbuf_printf(b, "<span class=\"bad\">nowhere: no healthy datacenter</span>");
        } else {
            double away = route_giveaway(first, now);
            struct dc *next = away > 0 ? route_spill_target(gw.gen, cl, first) : NULL;
            sbuf_printf(b, "<b>%s</b>", first->name);
            if (first->admin == ADMIN_DRAIN) /* routing's fallback: no other can take them */
                sbuf_printf(b, " <span class=\"warn\">(drained, but no other datacenter can "
                               "take them)</span>");
            if (next)
                sbuf_printf(b, " <span class=\"warn\">(%.0f %% to %s)</span>", away * 100,
                            next->name);
        }
        sbuf_printf(b, "</td>");
        count_cell(b, "held", (uint64_t)(r.held_now > 0 ? r.held_now : 0), true);
        sbuf_printf(b, "<td class=\"num\" data-label=\"connections\">%s <span class=\"muted\">/ "
                       "%s</span></td>",
                    num((uint64_t)(r.connections_active > 0 ? r.connections_active : 0), n1,
                        sizeof(n1)),
                    num(r.connections_total, n2, sizeof(n2)));
        count_cell(b, "requests", r.requests_total, false);
        count_cell(b, "4xx", r.status[4], false);
        count_cell(b, "5xx", r.status[5], true);
        sbuf_printf(b, "</tr>");
    }
    sbuf_printf(b, "</tbody></table>");
}

/* ---- datacenters ---- */

static void server_row(struct sbuf *b, const struct srv *s, ev_tstamp now, bool checked)
{
    struct stats_srv_row r;
    stats_sum_srv(s->dc->name, s->name, &r);
    char d[32], a[32], m[32], n1[32], n2[32], x[32], y[32];
    bool ejected = !s->up && s->reason == SRV_R_OUTLIER;
    sbuf_printf(b, "<tr class=\"%s\"><th scope=\"row\" data-label=\"server\"><span class=\"dot "
                   "%s\"></span>%s%s</th>",
                s->up ? "up" : "down", s->up ? "up" : "down", s->name, s->tls ? " (tls)" : "");
    sbuf_printf(b, "<td data-label=\"state\">");
    if (s->up)
        sbuf_printf(b, "up <span class=\"muted\">for %s</span>",
                    dur(now - s->since, d, sizeof(d)));
    else if (s->reason == SRV_R_CHECK_FAIL || s->reason == SRV_R_ADMIN_DOWN) /* said elsewhere */
        sbuf_printf(b, "<span class=\"bad\">down</span> for %s",
                    dur(now - s->since, d, sizeof(d)));
    else
        sbuf_printf(b, "<span class=\"bad\">%s</span> for %s <span class=\"muted\">(%s)</span>",
                    ejected ? "ejected" : "down", dur(now - s->since, d, sizeof(d)),
                    ejected ? "consecutive 5xx" : srv_reason_name(s->reason));
    if (s->admin != ADMIN_READY) /* its own, or its datacenter's */
        sbuf_printf(b, " <span class=\"tag admin\">%s by an operator</span>",
                    s->admin == ADMIN_DRAIN ? "drained" : "down");
    sbuf_printf(b, "</td>");
    const struct check_result *c = &s->last_check;
    if (c->cause == CHECK_C_NONE) {
        sbuf_printf(b, "<td data-label=\"last check\" class=\"muted\">%s</td>",
                    checked ? "not yet" : "no active check");
    } else {
        char what[128];
        check_describe(c, what, sizeof(what));
        sbuf_printf(b, "<td data-label=\"last check\"><span class=\"%s\">", c->ok ? "ok" : "bad");
        esc(b, what);
        sbuf_printf(b, "</span> <span class=\"muted\">");
        if (c->cause != CHECK_C_TIMEOUT) /* which says how long it waited */
            sbuf_printf(b, "in %s, ", ms(c->duration_ms, m, sizeof(m)));
        sbuf_printf(b, "%s</span></td>", ago(now - c->at, a, sizeof(a)));
    }
    /* An operator's weight, with the configured one; the configured one
     * alone is not worth a line on a phone. */
    if (s->weight != s->cs->weight)
        sbuf_printf(b, "<td class=\"num warn\" data-label=\"weight\" title=\"set by an "
                       "operator; configured: %d\">%d (%d)</td>",
                    s->cs->weight, s->weight, s->cs->weight);
    else
        sbuf_printf(b, "<td class=\"num wide\" data-label=\"weight\">%d</td>", s->weight);
    sbuf_printf(b, "<td class=\"num\" data-label=\"RTT\">%s</td>",
                ms(s->up ? s->rtt_ms : -1, m, sizeof(m)));
    sbuf_printf(b, "<td class=\"num wide\" data-label=\"connections\">%s <span class=\"muted\">/ "
                   "%s</span></td>",
                num((uint64_t)(r.connections_active > 0 ? r.connections_active : 0), n1,
                    sizeof(n1)),
                num(r.connections_total, n2, sizeof(n2)));
    count_cell(b, "failures", r.failures_total, true);
    sbuf_printf(b, "<td class=\"num wide\" data-label=\"in / out\">%s / %s</td></tr>",
                bytes(r.bytes_in, x, sizeof(x)), bytes(r.bytes_out, y, sizeof(y)));
}

/* What an operator said of DC, as a tag: a drain and its clock, or down. */
static void dc_admin_tag(struct sbuf *b, const struct dc *dc, ev_tstamp now)
{
    struct admin_entry e;
    double left = 0;
    char d[32], a[32];
    if (dc->admin == ADMIN_READY)
        return;
    bool known = control_dc_admin(dc, &e, &left);
    sbuf_printf(b, "<span class=\"tag admin\"");
    if (known) {
        sbuf_printf(b, " title=\"by ");
        esc(b, e.origin);
        sbuf_printf(b, ", %s\"", ago(now - e.since, a, sizeof(a)));
    }
    if (dc->admin == ADMIN_DOWN)
        sbuf_printf(b, ">DOWN by an operator</span>");
    else if (dc->drained)
        sbuf_printf(b, ">DRAINED: sessions leave</span>");
    else
        sbuf_printf(b, ">DRAINING: sessions leave in %s</span>", dur(ceil(left), d, sizeof(d)));
}

static void datacenter(struct sbuf *b, const struct dc *dc, ev_tstamp now)
{
    struct stats_dc_row r;
    stats_sum_dc(dc->name, &r);
    char d[32], m[32], n[32];
    sbuf_printf(b, "<article class=\"card%s\" id=\"dc-%s\"><div class=\"top\"><h3>%s</h3>"
                   "<span class=\"pill %s\">%s</span><span class=\"for\">for %s</span>",
                dc->healthy ? "" : dc->admin == ADMIN_DOWN ? " down op" : " down", dc->name, dc->name, dc->healthy ? "up" : "down",
                dc->healthy ? "UP" : "DOWN", dur(now - dc->changed_at, d, sizeof(d)));
    if (dc->healthy && dc->leader && dc->admin != ADMIN_DRAIN)
        sbuf_printf(b, "<span class=\"tag near\">nearest of priority %d</span>",
                    dc->cd->priority);
    dc_admin_tag(b, dc, now);
    sbuf_printf(b, "</div><p class=\"facts\"><span>priority <b>%d</b></span>"
                   "<span>RTT <b>%s</b></span><span>servers up <b class=\"%s\">%d of %d</b>"
                   " <span class=\"muted\">(%d needed)</span></span>"
                   "<span>requests <b>%s</b></span>",
                dc->cd->priority, ms(dc->healthy ? dc->rtt_ms : -1, m, sizeof(m)),
                dc->nup < dc->nsrvs ? (dc->healthy ? "warn" : "bad") : "", dc->nup, dc->nsrvs,
                dc->cd->min_servers, num(r.requests_total, n, sizeof(n)));
    if (r.sessions_total)
        sbuf_printf(b, "<span>tcp sessions <b>%s</b></span>",
                    num(r.sessions_total, n, sizeof(n)));
    if (dc->healthy) {
        double away = route_giveaway(dc, now);
        if (away > 0)
            sbuf_printf(b, "<span class=\"warn\">gives away <b>%.0f %%</b> of new "
                           "sessions</span>", away * 100);
    }
    sbuf_printf(b, "</p>");
    if (dc->nsrvs == 0) {
        sbuf_printf(b, "<p class=\"muted\">no servers (names not resolved yet?)</p></article>");
        return;
    }
    sbuf_printf(b, "<table class=\"rows servers\"><thead><tr><th>server</th><th>state</th>"
                   "<th>last check</th><th class=\"num\">weight</th><th class=\"num\">RTT</th>"
                   "<th class=\"num wide\">connections</th><th class=\"num\">failures</th>"
                   "<th class=\"num wide\">in / out</th></tr></thead><tbody>");
    for (int i = 0; i < dc->nsrvs; i++)
        server_row(b, dc->srvs[i], now, dc->cd->check.type != CHECK_NONE);
    sbuf_printf(b, "</tbody></table></article>");
}

/* Down first: during an outage the card that matters is at the top. */
static void datacenters(struct sbuf *b, ev_tstamp now)
{
    sbuf_printf(b, "<h2>Datacenters</h2><div class=\"dcs\">");
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < gw.gen->ndcs; i++)
            if (gw.gen->dcs[i]->healthy == (pass == 1))
                datacenter(b, gw.gen->dcs[i], now);
    sbuf_printf(b, "</div>");
}

/* ---- operator ---- */

/* Whose operator state this is (the fleet's through Redis, or this
 * gateway's), and the recent changes, newest first: as /stats has them. */
static void operator_section(struct sbuf *b, ev_tstamp now)
{
    struct control_fleet f;
    control_fleet(&f);
    sbuf_printf(b, "<h2>Operator</h2><p class=\"box\" id=\"operator\">");
    if (!f.redis) {
        sbuf_printf(b, "Without Redis, operator state is this gateway's: shared by its workers "
                       "and kept across reloads, not across a restart.");
    } else {
        sbuf_printf(b, "<span class=\"dot %s\"></span>Operator state is <b>fleet-wide</b> "
                       "(Redis): ", f.connected ? "up" : "down");
        if (!f.connected)
            sbuf_printf(b, "<b class=\"bad\">Redis unreachable</b>, the last state holds; "
                           "changes made here apply here and are written when it is back");
        else if (!f.subscribed)
            sbuf_printf(b, "connected, <span class=\"warn\">not subscribed</span>: changes made "
                           "elsewhere are read when it connects again, not heard as they happen");
        else
            sbuf_printf(b, "connected and subscribed");
        if (f.pending)
            sbuf_printf(b, " &middot; <span class=\"warn\">%d %s waiting for Redis</span>",
                        f.pending, plural(f.pending, "change", "changes"));
        if (f.bad_messages)
            sbuf_printf(b, " &middot; <span class=\"err\">%lu bad %s</span>", f.bad_messages,
                        plural((long)f.bad_messages, "message", "messages"));
    }
    sbuf_printf(b, "</p>");
    struct admin_event ev[ADMIN_EVENTS];
    int n = admin_events(ev, ADMIN_EVENTS);
    if (n == 0) {
        sbuf_printf(b, "<p class=\"muted\">No operator change yet.</p>");
        return;
    }
    sbuf_printf(b, "<table class=\"rows changes\"><thead><tr><th>when</th><th>change</th>"
                   "<th>by</th></tr></thead><tbody>");
    for (int i = 0; i < n; i++) {
        char a[32];
        struct tm tm;
        time_t t = (time_t)ev[i].at;
        gmtime_r(&t, &tm);
        sbuf_printf(b, "<tr><th scope=\"row\" data-label=\"when\">%02d:%02d:%02d UTC "
                       "<span class=\"muted\">%s</span></th><td data-label=\"change\">",
                    tm.tm_hour, tm.tm_min, tm.tm_sec, ago(now - ev[i].at, a, sizeof(a)));
        esc(b, ev[i].what);
        sbuf_printf(b, "</td><td data-label=\"by\">");
        esc(b, ev[i].origin);
        sbuf_printf(b, "</td></tr>");
    }
    sbuf_printf(b, "</tbody></table>");
}

/* ---- affinity ---- */

static void affinity(struct sbuf *b)
{
    struct redis_status rs;
    redis_status(&rs);
    char n[32], d[32];
    sbuf_printf(b, "<h2>Session affinity</h2><p class=\"box\">");
    if (!rs.configured) {
        sbuf_printf(b, "In memory: <b>%s</b> sessions.</p>",
                    num(affinity_count(), n, sizeof(n)));
        return;
    }
    sbuf_printf(b, "<span class=\"dot %s\"></span>Redis ", rs.connected ? "up" : "down");
    if (rs.connected) {
        sbuf_printf(b, "connected to <b>");
        esc(b, rs.server);
        sbuf_printf(b, "</b>");
    } else {
        sbuf_printf(b, "<b class=\"bad\">unreachable</b>: serving from the cache and "
                       "rendezvous hashing");
    }
    sbuf_printf(b, " &middot; %s cached sessions &middot; %s without Redis in all",
                num(affinity_count(), n, sizeof(n)), dur(rs.degraded_s, d, sizeof(d)));
    sbuf_printf(b, " &middot; <span class=\"%s\">%lu timeouts</span>, <span class=\"%s\">%lu "
                   "errors</span>, %lu reconnects</p>",
                rs.timeouts ? "err" : "", rs.timeouts, rs.errors ? "err" : "", rs.errors,
                rs.reconnects);
}

/* ---- counters ---- */

/* The counters in groups, each marked as an error (highlighted when not
 * zero) or not. A counter no group names (a new one) goes under "Other":
 * the page never hides one /stats has. */
static const struct group {
    const char *title;
    const char *const names[16];
    const char *const errors[16];
} groups[] = {
    {"Errors clients saw",
     {NULL},
     {"client_errors_total", "http_4xx_total", "http_502_total", "http_503_total",
      "http_504_total", "http_5xx_other_total", "hold_expired_total", "hold_full_total",
      "invalid_responses_total", "bad_session_keys_total", "tls_failures_total", NULL}},
    {"Failover",
     {"retries_total", "failovers_total", "inflight_moved_total", "held_total", "hedges_total",
      "hedges_won_total", NULL},
     {"retry_budget_exhausted_total", NULL}},
    {"Traffic",
     {"connections_total", "connections_active", "requests_total", "bytes_in_total",
      "bytes_out_total", "tls_handshakes_total", "tls_resumed_total", NULL},
     {"max_connections_hits_total", NULL}},
    {"Affinity",
     {"affinity_hits_total", "affinity_misses_total", "affinity_cache_hits_total",
      "failbacks_total", NULL},
     {NULL}},
    {"HTTP/2",
     {"h2_connections_total", "h2_requests_total", "h2_streams_active",
      "h2_upstream_streams_total", "h2_resets_client_total", "h2_goaway_graceful_total", NULL},
     {"h2_resets_refused_total", "h2_resets_protocol_total", "h2_resets_internal_total",
      "h2_resets_cancel_total", "h2_goaway_error_total", "h2_floods_total", NULL}},
    {"Operator",
     {"control_requests_total", "operator_changes_total", "operator_fleet_changes_total",
      "session_moves_total", NULL},
     {"control_refused_total", NULL}},
    {"Process",
     {"reloads_total", NULL},
     {"reload_failures_total", "worker_restarts_total", "log_lines_dropped_total",
      "check_local_errors_total", NULL}},
};

static bool listed(const char *const *names, const char *name)
{
    for (; *names; names++)
        if (strcmp(*names, name) == 0)
            return true;
    return false;
}

static bool grouped(const char *name)
{
    for (size_t g = 0; g < ARRAY_LEN(groups); g++)
        if (listed(groups[g].names, name) || listed(groups[g].errors, name))
            return true;
    return false;
}

static void counter_row(struct sbuf *b, const char *name, uint64_t v, bool error)
{
    char n[32], label[64];
    snprintf(label, sizeof(label), "%s", name);
    size_t l = strlen(label);
    if (l > 6 && strcmp(label + l - 6, "_total") == 0)
        label[l - 6] = '\0';
    for (char *p = label; *p; p++)
        *p = *p == '_' ? ' ' : *p;
    bool bytes_counter = strncmp(name, "bytes_", 6) == 0;
    char bb[32];
    sbuf_printf(b, "<tr class=\"%s\"><th scope=\"row\">%s</th><td class=\"num\">%s</td></tr>",
                error && v ? "err" : v ? "" : "zero", label,
                bytes_counter ? bytes(v, bb, sizeof(bb)) : num(v, n, sizeof(n)));
}

static void counters_section(struct sbuf *b)
{
    struct stats_counters c;
    stats_sum_counters(&c);
    size_t n = stats_counter_count();
    sbuf_printf(b, "<h2>Counters <span class=\"muted\">since start, every process</span></h2>"
                   "<div class=\"groups\">");
    for (size_t g = 0; g < ARRAY_LEN(groups); g++) {
        sbuf_printf(b, "<section class=\"group\"><h3>%s</h3><table class=\"kv\">",
                    groups[g].title);
        for (int pass = 0; pass < 2; pass++) {
            const char *const *names = pass ? groups[g].names : groups[g].errors;
            for (; *names; names++)
                for (size_t i = 0; i < n; i++)
                    if (strcmp(stats_counter_name(i), *names) == 0)
                        counter_row(b, *names, stats_counter_value(&c, i), pass == 0);
        }
        if (g == ARRAY_LEN(groups) - 1) {
            counter_row(b, "checks_total", check_total(), false);
            counter_row(b, "dns_queries_total", dns_queries_total(), false);
            counter_row(b, "buffers_in_use", buf_in_use(), false);
            counter_row(b, "pooled_connections", c.pooled_now, false);
        }
        sbuf_printf(b, "</table></section>");
    }
    bool other = false;
    for (size_t i = 0; i < n; i++) {
        if (grouped(stats_counter_name(i)))
            continue;
        if (!other)
            sbuf_printf(b, "<section class=\"group\"><h3>Other</h3><table class=\"kv\">");
        other = true;
        counter_row(b, stats_counter_name(i), stats_counter_value(&c, i), false);
    }
    if (other)
        sbuf_printf(b, "</table></section>");
    sbuf_printf(b, "</div>");
}

/* ---- the page ---- */

static void header(struct sbuf *b, ev_tstamp now)
{
    char d[32], host[64] = "";
    gethostname(host, sizeof(host) - 1);
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    sbuf_printf(b, "<header id=\"top\"><h1>edgegate</h1><p class=\"meta\">");
    esc(b, host);
    sbuf_printf(b, " &middot; version %s &middot; up %s &middot; pid %d &middot; %d %s &middot; "
                   "configuration #%u%s</p><p class=\"at\">%02d:%02d:%02d UTC</p></header>",
                EG_VERSION, dur(now - gw.started, d, sizeof(d)), (int)getpid(), gw.workers,
                plural(gw.workers, "worker", "workers"), gw.gen->id,
                gw.draining ? " &middot; <b>draining</b>" : "", tm.tm_hour, tm.tm_min,
                tm.tm_sec);
}

void stats_page(struct sbuf *b)
{
    ev_tstamp now = ev_now(gw.loop);
    const char *mark = strstr(shell, MARK);
    size_t before = mark ? (size_t)(mark - shell) : strlen(shell);
    sbuf_add(b, shell, before);
    sbuf_printf(b, "<div id=\"live\">");
    header(b, now);
    banner(b, now);
    sbuf_printf(b, "<main>");
    rates(b);
    listeners(b, now);
    datacenters(b, now);
    operator_section(b, now);
    affinity(b);
    counters_section(b);
    sbuf_printf(b, "</main></div>");
    if (mark)
        sbuf_add(b, mark + strlen(MARK), strlen(mark + strlen(MARK)));
}
