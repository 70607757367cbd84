/* The rate ring. A sample is the counters summed over every process (the
 * same sums /stats shows) at one instant; rates are differences between
 * samples, so that workers, restarts and reloads change nothing: totals
 * never go back (a dead worker's are kept, see base/counters.c). */
#include "gateway/ops/stats_rates.h"
#include "base/counters.h"
#include "gateway/balance/generation.h"

#include <string.h>

struct sample {
    ev_tstamp t;                /* 0: empty */
    uint64_t v[RATES_KINDS];
};

/* One more than the series, for its first difference. */
#define RING (RATES_SERIES + 1)

static struct sample ring[RING];
static int head;                /* the newest sample */
static struct ev_loop *rates_loop;
static ev_timer tick;

static void take(struct sample *s)
{
    struct stats_counters c;
    stats_sum_counters(&c);
    memset(s, 0, sizeof(*s));
    s->t = ev_time();
    s->v[RATES_REQUESTS] = c.requests_total;
    s->v[RATES_ERRORS] = c.client_errors_total;
    /* tcp connections are a listener's requests; 5xx are counted by class
     * per listener, whoever answered. */
    const struct conf *cf = gw.gen ? gw.gen->conf : NULL;
    for (int i = 0; cf && i < cf->nlsns; i++) {
        struct stats_lsn_row r;
        stats_sum_lsn(cf->lsns[i].name, &r);
        if (cf->lsns[i].mode == MODE_TCP)
            s->v[RATES_REQUESTS] += r.connections_total;
        s->v[RATES_HTTP_5XX] += r.status[5];
    }
}

static void on_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop, (void)w, (void)revents;
    head = (head + 1) % RING;
    take(&ring[head]);
}

void rates_start(struct ev_loop *loop)
{
    if (rates_loop)
        return;
    rates_loop = loop;
    memset(ring, 0, sizeof(ring));
    head = 0;
    take(&ring[0]);
    ev_timer_init(&tick, on_tick, 1, 1);
    ev_timer_start(loop, &tick);
    ev_unref(loop); /* sampling alone must not keep the loop running */
}

void rates_stop(void)
{
    if (!rates_loop)
        return;
    ev_ref(rates_loop);
    ev_timer_stop(rates_loop, &tick);
    rates_loop = NULL;
}

/* The sample I seconds before the newest one, NULL when there is none. */
static const struct sample *back(int i)
{
    if (i >= RING)
        return NULL;
    const struct sample *s = &ring[(head - i + RING) % RING];
    return s->t > 0 ? s : NULL;
}

/* Per second from A to B; a total that went down (a listener renamed by a
 * reload leaves the sum) counts as nothing. */
static double rate(const struct sample *a, const struct sample *b, enum rates_kind k)
{
    if (b->t - a->t < 0.5 || b->v[k] < a->v[k])
        return 0;
    return (double)(b->v[k] - a->v[k]) / (b->t - a->t);
}

double rates_per_s(enum rates_kind k, int seconds)
{
    if (!rates_loop)
        return 0;
    struct sample now;
    take(&now);
    const struct sample *from = NULL;
    for (int i = seconds - 1; i >= 0 && !from; i--)
        from = back(i);
    return from ? rate(from, &now, k) : 0;
}

int rates_series(enum rates_kind k, double out[RATES_SERIES])
{
    int known = 0;
    for (int i = 0; i < RATES_SERIES; i++) {
        const struct sample *a = back(RATES_SERIES - i), *b = back(RATES_SERIES - 1 - i);
        out[i] = 0;
        if (a && b) {
            out[i] = rate(a, b, k);
            known++;
        }
    }
    return known;
}

static const char *const kind_names[RATES_KINDS] = {
    [RATES_REQUESTS] = "requests", [RATES_HTTP_5XX] = "http_5xx", [RATES_ERRORS] = "errors",
};

void rates_json(struct sbuf *b)
{
    sbuf_printf(b, "\"rates\": {");
    for (int k = 0; k < RATES_KINDS; k++) {
        double series[RATES_SERIES];
        rates_series(k, series);
        sbuf_printf(b, "%s\"%s\": {\"per_s_10s\": %.3f, \"per_s_1m\": %.3f, \"last_60s\": [",
                    k ? ", " : "", kind_names[k], rates_per_s(k, 10), rates_per_s(k, 60));
        for (int i = 0; i < RATES_SERIES; i++)
            sbuf_printf(b, "%s%.3g", i ? ", " : "", series[i]);
        sbuf_printf(b, "]}");
    }
    sbuf_printf(b, "}");
}
