/* Unit tests of gateway/route.c over datacenters and servers built by hand:
 * nearest datacenter (priority, RTT, hysteresis), affinity, failover order,
 * smooth weighted round-robin, rendezvous hashing, and what operators say
 * (drained datacenters and servers, weights). */
#include "gateway/balance/route.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DCS 8

/* A generation of datacenters and a listener that lists all of them. */
struct world {
    struct gen g;
    struct dc *dcs[MAX_DCS];
    struct conf_listener cl;
    int listener_dcs[MAX_DCS];
};

static struct world *world_new(void)
{
    struct world *w = calloc(1, sizeof(*w));
    assert_non_null(w);
    w->g.dcs = w->dcs;
    w->cl.dcs = w->listener_dcs;
    w->cl.retries = 2;
    return w;
}

/* Adds a healthy datacenter with NSRVS up servers of weight 1. */
static struct dc *add_dc(struct world *w, const char *name, int priority, double rtt_ms,
                         int nsrvs)
{
    assert_true(w->g.ndcs < MAX_DCS);
    struct conf_dc *cd = calloc(1, sizeof(*cd));
    struct dc *dc = calloc(1, sizeof(*dc));
    assert_non_null(cd);
    assert_non_null(dc);
    cd->name = (char *)name;
    cd->priority = priority;
    dc->cd = cd;
    dc->name = name;
    dc->idx = w->g.ndcs;
    dc->healthy = true;
    dc->rtt_ms = rtt_ms;
    dc->srvs = calloc((size_t)(nsrvs ? nsrvs : 1), sizeof(*dc->srvs));
    assert_non_null(dc->srvs);
    dc->nsrvs = dc->cap = nsrvs;
    for (int i = 0; i < nsrvs; i++) {
        struct srv *s = calloc(1, sizeof(*s));
        assert_non_null(s);
        s->dc = dc;
        s->up = true;
        s->weight = 1;
        s->rtt_ms = rtt_ms;
        snprintf(s->name, sizeof(s->name), "%s-%d", name, i);
        dc->srvs[i] = s;
    }
    dc->nup = nsrvs;
    w->dcs[w->g.ndcs] = dc;
    w->listener_dcs[w->g.ndcs] = dc->idx;
    w->g.ndcs++;
    w->cl.ndcs = w->g.ndcs;
    return dc;
}

static void world_free(struct world *w)
{
    for (int i = 0; i < w->g.ndcs; i++) {
        struct dc *dc = w->dcs[i];
        for (int k = 0; k < dc->nsrvs; k++)
            free(dc->srvs[k]);
        free(dc->srvs);
        free((void *)dc->cd);
        free(dc);
    }
    free(w);
}

/* ---- nearest datacenter ---- */

static void lowest_priority_wins(void **state)
{
    (void)state;
    struct world *w = world_new();
    add_dc(w, "far-but-preferred", 1, 80, 1);
    struct dc *near = add_dc(w, "near-backup", 2, 1, 1);
    assert_string_equal(route_nearest(&w->g, &w->cl)->name, "far-but-preferred");
    w->dcs[0]->healthy = false;
    assert_ptr_equal(route_nearest(&w->g, &w->cl), near);
    world_free(w);
}

static void equal_priority_lowest_rtt_wins(void **state)
{
    (void)state;
    struct world *w = world_new();
    add_dc(w, "a", 1, 30, 1);
    struct dc *b = add_dc(w, "b", 1, 10, 1);
    add_dc(w, "c", 1, 20, 1);
    add_dc(w, "d", 2, 1, 1);
    assert_ptr_equal(route_nearest(&w->g, &w->cl), b);
    route_update_leaders(&w->g);
    assert_true(b->leader);
    assert_ptr_equal(route_nearest(&w->g, &w->cl), b);
    world_free(w);
}

static void equal_rtt_more_up_weight_wins(void **state)
{
    (void)state;
    struct world *w = world_new();
    add_dc(w, "a", 1, 10, 1);
    struct dc *b = add_dc(w, "b", 1, 10, 2);
    assert_ptr_equal(route_nearest(&w->g, &w->cl), b);
    b->srvs[0]->up = false;
    assert_ptr_equal(route_nearest(&w->g, &w->cl), w->dcs[0]); /* tie: first listed */
    world_free(w);
}

static void unknown_rtt_falls_back_to_weight(void **state)
{
    (void)state;
    struct world *w = world_new();
    add_dc(w, "a", 1, -1, 1);
    struct dc *b = add_dc(w, "b", 1, 5, 3);
    assert_ptr_equal(route_nearest(&w->g, &w->cl), b);
    world_free(w);
}

static void slightly_nearer_dc_does_not_take_over(void **state)
{
    (void)state;
    struct world *w = world_new();
    struct dc *a = add_dc(w, "a", 1, 10, 1);
    struct dc *b = add_dc(w, "b", 1, 12, 1);
    route_update_leaders(&w->g);
    assert_true(a->leader);
    assert_false(b->leader);
    b->rtt_ms = 9; /* 10% nearer: noise */
    route_update_leaders(&w->g);
    assert_true(a->leader);
    assert_false(b->leader);
    assert_ptr_equal(route_nearest(&w->g, &w->cl), a);
    /* 10 ms nearer, but only 10%: still noise */
    a->rtt_ms = 100;
    b->rtt_ms = 90;
    route_update_leaders(&w->g);
    assert_ptr_equal(route_nearest(&w->g, &w->cl), a);
    /* 25% nearer but by less than a millisecond: still noise */
    a->rtt_ms = 2;
    b->rtt_ms = 1.5;
    route_update_leaders(&w->g);
    assert_ptr_equal(route_nearest(&w->g, &w->cl), a);
    world_free(w);
}

static void much_nearer_dc_takes_over(void **state)
{
    (void)state;
    struct world *w = world_new();
    struct dc *a = add_dc(w, "a", 1, 10, 1);
    struct dc *b = add_dc(w, "b", 1, 12, 1);
    route_update_leaders(&w->g);
    assert_ptr_equal(route_nearest(&w->g, &w->cl), a);
    b->rtt_ms = 5;
    route_update_leaders(&w->g);
    assert_false(a->leader);
    assert_true(b->leader);
    assert_ptr_equal(route_nearest(&w->g, &w->cl), b);
    /* and A, now slightly nearer again, does not take it back */
    a->rtt_ms = 4.5;
    route_update_leaders(&w->g);
    assert_ptr_equal(route_nearest(&w->g, &w->cl), b);
    world_free(w);
}

static void unhealthy_leader_is_replaced(void **state)
{
    (void)state;
    struct world *w = world_new();
    struct dc *a = add_dc(w, "a", 1, 10, 1);
    struct dc *b = add_dc(w, "b", 1, 11, 1);
    route_update_leaders(&w->g);
    assert_true(a->leader);
    a->healthy = false;
    route_update_leaders(&w->g);
    assert_true(b->leader);
    assert_false(a->leader);
    assert_ptr_equal(route_nearest(&w->g, &w->cl), b);
    world_free(w);
}

static void unhealthy_dcs_are_skipped(void **state)
{
    (void)state;
    struct world *w = world_new();
    struct dc *a = add_dc(w, "a", 1, 1, 1);
    struct dc *b = add_dc(w, "b", 1, 5, 1);
    struct dc *c = add_dc(w, "c", 2, 1, 1);
    a->healthy = false;
    assert_ptr_equal(route_nearest(&w->g, &w->cl), b);
    b->healthy = false;
    assert_ptr_equal(route_nearest(&w->g, &w->cl), c);
    assert_true(route_any_healthy(&w->g, &w->cl));
    world_free(w);
}

static void only_listed_dcs_are_considered(void **state)
{
    (void)state;
    struct world *w = world_new();
    add_dc(w, "a", 1, 1, 1);
    struct dc *b = add_dc(w, "b", 1, 50, 1);
    w->listener_dcs[0] = b->idx;
    w->cl.ndcs = 1;
    assert_ptr_equal(route_nearest(&w->g, &w->cl), b);
    struct route r;
    struct srv *s = route_first(&w->g, &w->cl, w->dcs[0], &r);
    assert_ptr_equal(s, b->srvs[0]);
    world_free(w);
}

static void no_healthy_dc_gives_null(void **state)
{
    (void)state;
    struct world *w = world_new();
    add_dc(w, "a", 1, 1, 1)->healthy = false;
    add_dc(w, "b", 2, 1, 1)->healthy = false;
    struct route r;
    assert_null(route_nearest(&w->g, &w->cl));
    assert_false(route_any_healthy(&w->g, &w->cl));
    assert_null(route_first(&w->g, &w->cl, NULL, &r));
    assert_null(route_first(&w->g, &w->cl, w->dcs[0], &r));
    assert_null(route_hrw(&w->g, &w->cl, "key", 3));
    world_free(w);
}

/* ---- first server and failover ---- */

static void route_first_prefers_affinity_dc(void **state)
{
    (void)state;
    struct world *w = world_new();
    add_dc(w, "near", 1, 1, 1);
    struct dc *home = add_dc(w, "home", 2, 90, 1);
    struct route r;
    struct srv *s = route_first(&w->g, &w->cl, home, &r);
    assert_ptr_equal(s, home->srvs[0]);
    assert_ptr_equal(r.dc, home);
    world_free(w);
}

static void route_first_unhealthy_affinity_goes_nearest(void **state)
{
    (void)state;
    struct world *w = world_new();
    struct dc *near = add_dc(w, "near", 1, 1, 1);
    struct dc *home = add_dc(w, "home", 1, 20, 1);
    home->healthy = false;
    struct route r;
    assert_ptr_equal(route_first(&w->g, &w->cl, home, &r), near->srvs[0]);
    assert_ptr_equal(r.dc, near);
    assert_ptr_equal(route_first(&w->g, &w->cl, NULL, &r), near->srvs[0]);
    world_free(w);
}

static void route_next_tries_same_dc_then_next_dc(void **state)
{
    (void)state;
    struct world *w = world_new();
    struct dc *a = add_dc(w, "a", 1, 1, 2);
    struct dc *b = add_dc(w, "b", 1, 5, 1);
    struct dc *c = add_dc(w, "c", 2, 1, 1);
    struct route r;
    struct srv *s1 = route_first(&w->g, &w->cl, NULL, &r);
    assert_ptr_equal(s1->dc, a);
    struct srv *s2 = route_next(&w->g, &w->cl, &r);
    assert_non_null(s2);
    assert_ptr_equal(s2->dc, a);
    assert_ptr_not_equal(s2, s1);
    assert_ptr_equal(route_next(&w->g, &w->cl, &r), b->srvs[0]);
    assert_ptr_equal(r.dc, b);
    assert_ptr_equal(route_next(&w->g, &w->cl, &r), c->srvs[0]);
    assert_null(route_next(&w->g, &w->cl, &r));
    world_free(w);
}

static void route_next_from_affinity_dc_goes_nearest(void **state)
{
    (void)state;
    struct world *w = world_new();
    struct dc *near = add_dc(w, "near", 1, 1, 1);
    add_dc(w, "mid", 1, 9, 1);
    struct dc *home = add_dc(w, "home", 1, 40, 1);
    struct route r;
    assert_ptr_equal(route_first(&w->g, &w->cl, home, &r), home->srvs[0]);
    assert_ptr_equal(route_next(&w->g, &w->cl, &r), near->srvs[0]);
    world_free(w);
}

static void down_servers_are_skipped(void **state)
{
    (void)state;
    struct world *w = world_new();
    struct dc *a = add_dc(w, "a", 1, 1, 3);
    struct dc *b = add_dc(w, "b", 1, 5, 1);
    a->srvs[0]->up = false;
    a->srvs[2]->up = false;
    struct route r;
    assert_ptr_equal(route_first(&w->g, &w->cl, NULL, &r), a->srvs[1]);
    assert_ptr_equal(route_next(&w->g, &w->cl, &r), b->srvs[0]);
    /* a healthy datacenter whose servers are all down hands over at once */
    a->srvs[1]->up = false;
    assert_ptr_equal(route_first(&w->g, &w->cl, a, &r), b->srvs[0]);
    world_free(w);
}

static void weighted_round_robin_follows_weights(void **state)
{
    (void)state;
    struct world *w = world_new();
    struct dc *a = add_dc(w, "a", 1, 1, 2);
    a->srvs[0]->weight = 1;
    a->srvs[1]->weight = 3;
    int count[2] = {0, 0};
    for (int i = 0; i < 400; i++) {
        struct route r;
        struct srv *s = route_first(&w->g, &w->cl, NULL, &r);
        assert_non_null(s);
        count[s == a->srvs[1]]++;
        /* smooth: every window of 4 picks holds exactly one of the light server */
        if (i % 4 == 3)
            assert_int_equal(count[0], (i + 1) / 4);
    }
    assert_int_equal(count[0], 100);
    assert_int_equal(count[1], 300);
    world_free(w);
}

static void round_robin_skips_down_server(void **state)
{
    (void)state;
    struct world *w = world_new();
    struct dc *a = add_dc(w, "a", 1, 1, 3);
    a->srvs[1]->up = false;
    int count[3] = {0, 0, 0};
    for (int i = 0; i < 100; i++) {
        struct route r;
        struct srv *s = route_first(&w->g, &w->cl, NULL, &r);
        for (int k = 0; k < 3; k++)
            count[k] += s == a->srvs[k];
    }
    assert_int_equal(count[0], 50);
    assert_int_equal(count[1], 0);
    assert_int_equal(count[2], 50);
    world_free(w);
}

/* ---- rendezvous hashing ---- */

static void hrw_same_key_same_dc(void **state)
{
    (void)state;
    struct world *w = world_new();
    add_dc(w, "ams", 1, 1, 1);
    add_dc(w, "fra", 1, 2, 1);
    add_dc(w, "lon", 1, 3, 1);
    for (int i = 0; i < 100; i++) {
        char key[32];
        int n = snprintf(key, sizeof(key), "session-%d", i);
        struct dc *d = route_hrw(&w->g, &w->cl, key, (size_t)n);
        assert_non_null(d);
        assert_ptr_equal(route_hrw(&w->g, &w->cl, key, (size_t)n), d);
    }
    world_free(w);
}

/* The choice depends on names, not on RTTs or the listener's order, so that
 * gateways with different measurements agree. */
static void hrw_ignores_rtt_and_order(void **state)
{
    (void)state;
    struct world *w1 = world_new(), *w2 = world_new();
    add_dc(w1, "ams", 1, 1, 1);
    add_dc(w1, "fra", 1, 2, 1);
    add_dc(w1, "lon", 1, 3, 1);
    add_dc(w2, "lon", 1, 9, 1);
    add_dc(w2, "ams", 1, 30, 1);
    add_dc(w2, "fra", 1, 1, 1);
    for (int i = 0; i < 300; i++) {
        char key[32];
        int n = snprintf(key, sizeof(key), "k%d", i);
        assert_string_equal(route_hrw(&w1->g, &w1->cl, key, (size_t)n)->name,
                            route_hrw(&w2->g, &w2->cl, key, (size_t)n)->name);
    }
    world_free(w1);
    world_free(w2);
}

static void hrw_spreads_keys_evenly(void **state)
{
    (void)state;
    struct world *w = world_new();
    add_dc(w, "ams", 1, 1, 1);
    add_dc(w, "fra", 1, 2, 1);
    add_dc(w, "lon", 1, 3, 1);
    int count[3] = {0, 0, 0};
    for (int i = 0; i < 3000; i++) {
        char key[32];
        int n = snprintf(key, sizeof(key), "sess-%08d", i);
        count[route_hrw(&w->g, &w->cl, key, (size_t)n)->idx]++;
    }
    for (int k = 0; k < 3; k++) {
        if (count[k] < 600 || count[k] > 1410)
            print_error("dc %d got %d of 3000 keys\n", k, count[k]);
        assert_in_range(count[k], 600, 1410);
    }
    world_free(w);
}

static void hrw_ignores_unhealthy_and_moves_only_their_keys(void **state)
{
    (void)state;
    struct world *w = world_new();
    add_dc(w, "ams", 1, 1, 1);
    struct dc *fra = add_dc(w, "fra", 1, 2, 1);
    add_dc(w, "lon", 1, 3, 1);
    struct dc *before[1000];
    for (int i = 0; i < 1000; i++) {
        char key[32];
        int n = snprintf(key, sizeof(key), "user:%d", i);
        before[i] = route_hrw(&w->g, &w->cl, key, (size_t)n);
    }
    fra->healthy = false;
    int moved = 0;
    for (int i = 0; i < 1000; i++) {
        char key[32];
        int n = snprintf(key, sizeof(key), "user:%d", i);
        struct dc *d = route_hrw(&w->g, &w->cl, key, (size_t)n);
        assert_ptr_not_equal(d, fra);
        if (before[i] != fra)
            assert_ptr_equal(d, before[i]);
        else
            moved++;
    }
    assert_true(moved > 0);
    world_free(w);
}

static void hrw_considers_only_best_priority_tier(void **state)
{
    (void)state;
    struct world *w = world_new();
    struct dc *ams = add_dc(w, "ams", 1, 50, 1);
    struct dc *fra = add_dc(w, "fra", 2, 1, 1);
    struct dc *lon = add_dc(w, "lon", 2, 1, 1);
    int count[3] = {0, 0, 0};
    for (int i = 0; i < 500; i++) {
        char key[32];
        int n = snprintf(key, sizeof(key), "s%d", i);
        count[route_hrw(&w->g, &w->cl, key, (size_t)n)->idx]++;
    }
    assert_int_equal(count[ams->idx], 500);
    /* the preferred tier down: the next one shares the keys */
    ams->healthy = false;
    count[0] = count[1] = count[2] = 0;
    for (int i = 0; i < 500; i++) {
        char key[32];
        int n = snprintf(key, sizeof(key), "s%d", i);
        count[route_hrw(&w->g, &w->cl, key, (size_t)n)->idx]++;
    }
    assert_int_equal(count[ams->idx], 0);
    assert_true(count[fra->idx] > 100);
    assert_true(count[lon->idx] > 100);
    world_free(w);
}

/* ---- operator state ---- */

static void drained_dc_takes_no_new_session_while_another_can(void **state)
{
    (void)state;
    struct world *w = world_new();
    struct dc *a = add_dc(w, "a", 1, 1, 1);
    struct dc *b = add_dc(w, "b", 2, 50, 1);
    a->admin = ADMIN_DRAIN;
    assert_ptr_equal(route_nearest(&w->g, &w->cl), b);
    struct route r;
    assert_ptr_equal(route_first(&w->g, &w->cl, NULL, &r), b->srvs[0]);
    /* every one drained: serving beats refusing */
    b->admin = ADMIN_DRAIN;
    assert_ptr_equal(route_nearest(&w->g, &w->cl), a);
    /* rendezvous hashing (Redis away) avoids it too */
    b->admin = ADMIN_READY;
    struct dc *c = add_dc(w, "c", 1, 5, 1);
    for (int i = 0; i < 50; i++) {
        char key[16];
        snprintf(key, sizeof(key), "k%d", i);
        assert_ptr_equal(route_hrw(&w->g, &w->cl, key, strlen(key)), c);
    }
    world_free(w);
}

static void pinned_session_stays_in_draining_dc_until_drained(void **state)
{
    (void)state;
    struct world *w = world_new();
    struct dc *a = add_dc(w, "a", 1, 1, 1);
    struct dc *b = add_dc(w, "b", 1, 5, 1);
    a->admin = ADMIN_DRAIN;
    struct route r;
    assert_ptr_equal(route_first(&w->g, &w->cl, a, &r), a->srvs[0]);
    a->drained = true;
    assert_ptr_equal(route_first(&w->g, &w->cl, a, &r), b->srvs[0]);
    /* strict affinity does not hold a session an operator moves out */
    w->cl.pin = PIN_STRICT;
    assert_ptr_equal(route_first(&w->g, &w->cl, a, &r), b->srvs[0]);
    assert_false(r.pinned);
    world_free(w);
}

static void drained_or_weightless_server_gets_nothing_new(void **state)
{
    (void)state;
    struct world *w = world_new();
    struct dc *a = add_dc(w, "a", 1, 1, 3);
    a->srvs[0]->weight = 0;
    a->srvs[1]->admin = ADMIN_DRAIN;
    for (int i = 0; i < 20; i++) {
        struct route r;
        assert_ptr_equal(route_first(&w->g, &w->cl, NULL, &r), a->srvs[2]);
    }
    /* the only one left up: the drained ones take it rather than nothing */
    a->srvs[2]->up = false;
    int seen[3] = {0};
    for (int i = 0; i < 20; i++) {
        struct route r;
        struct srv *s = route_first(&w->g, &w->cl, NULL, &r);
        assert_non_null(s);
        seen[s == a->srvs[1]]++;
    }
    assert_int_equal(seen[0], 10);
    assert_int_equal(seen[1], 10);
    /* a failed attempt still moves on to a drained server before another dc */
    a->srvs[2]->up = true;
    struct route r;
    assert_ptr_equal(route_first(&w->g, &w->cl, NULL, &r), a->srvs[2]);
    assert_non_null(route_next(&w->g, &w->cl, &r));
    assert_ptr_equal(r.dc, a);
    world_free(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(lowest_priority_wins),
        cmocka_unit_test(equal_priority_lowest_rtt_wins),
        cmocka_unit_test(equal_rtt_more_up_weight_wins),
        cmocka_unit_test(unknown_rtt_falls_back_to_weight),
        cmocka_unit_test(slightly_nearer_dc_does_not_take_over),
        cmocka_unit_test(much_nearer_dc_takes_over),
        cmocka_unit_test(unhealthy_leader_is_replaced),
        cmocka_unit_test(unhealthy_dcs_are_skipped),
        cmocka_unit_test(only_listed_dcs_are_considered),
        cmocka_unit_test(no_healthy_dc_gives_null),
        cmocka_unit_test(route_first_prefers_affinity_dc),
        cmocka_unit_test(route_first_unhealthy_affinity_goes_nearest),
        cmocka_unit_test(route_next_tries_same_dc_then_next_dc),
        cmocka_unit_test(route_next_from_affinity_dc_goes_nearest),
        cmocka_unit_test(down_servers_are_skipped),
        cmocka_unit_test(weighted_round_robin_follows_weights),
        cmocka_unit_test(round_robin_skips_down_server),
        cmocka_unit_test(hrw_same_key_same_dc),
        cmocka_unit_test(hrw_ignores_rtt_and_order),
        cmocka_unit_test(hrw_spreads_keys_evenly),
        cmocka_unit_test(hrw_ignores_unhealthy_and_moves_only_their_keys),
        cmocka_unit_test(hrw_considers_only_best_priority_tier),
        cmocka_unit_test(drained_dc_takes_no_new_session_while_another_can),
        cmocka_unit_test(pinned_session_stays_in_draining_dc_until_drained),
        cmocka_unit_test(drained_or_weightless_server_gets_nothing_new),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
