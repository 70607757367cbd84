/* Fleet-wide operator state and sessions in Redis (see fleet.h).
 *
 * Writes go through a script so that the hash and the message never
 * disagree: a gateway that hears a message finds the hash already saying
 * it, and one that (re)subscribes and then reads the hash misses nothing.
 * Messages and records come from Redis and are read as untrusted input
 * (proto/control_req.c); a malformed one is counted and ignored. */
#include "gateway/balance/fleet.h"
#include "gateway/balance/affinity.h"
#include "gateway/balance/redis.h"
#include "healthcheck/admin.h"
#include "proto/control_req.h"
#include "proto/json.h"
#include "base/alloc.h"
#include "base/counters.h"
#include "base/log.h"
#include "base/strbuf.h"
#include "base/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* KEYS: state hash, channel. ARGV: field, record ("" clears). The field
 * "seeded" tells a hash the fleet wrote from one a Redis that lost its
 * data (or never had any) does not have. */
static const char write_script[] =
    "redis.call('HSET', KEYS[1], 'seeded', '1')\n"
    "if ARGV[2] == '' then redis.call('HDEL', KEYS[1], ARGV[1])\n"
    "else redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end\n"
    "redis.call('PUBLISH', KEYS[2], ARGV[1] .. '\\n' .. ARGV[2])\n"
    "return 1\n";

/* KEYS: aff key, home key. */
static const char get_script[] =
    "return {redis.call('GET', KEYS[1]) or '', redis.call('GET', KEYS[2]) or '',\n"
    "        redis.call('PTTL', KEYS[1])}\n";

/* KEYS: aff key, home key, channel. ARGV: datacenter ("" forgets), ttl, session key. */
static const char move_script[] =
    "if ARGV[1] == '' then redis.call('DEL', KEYS[1])\n"
    "else redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2]) end\n"
    "redis.call('DEL', KEYS[2])\n"
    "redis.call('PUBLISH', KEYS[3], 'session\\n' .. ARGV[3])\n"
    "return 1\n";

static struct {
    bool on;
    char prefix[72];
    char hash[96], channel[96];
    double ttl;
    unsigned long bad;          /* messages and records that could not be read */
} F;

/* A write in flight: which entry, as it was when sent. */
struct fleet_write {
    char dc[CONF_NAME_MAX];
    char srv[ADMIN_ADDR_MAX];
    double changed;
};

struct fleet_call {
    fleet_session_cb cb;
    void *ctx;
    char key[CTL_KEY_MAX + 1];
    size_t len;
};

static struct admin_entry list_buf[ADMIN_MAX];

bool fleet_on(void) { return F.on; }

bool fleet_connected(void) { return F.on && redis_ready(); }

bool fleet_ready(void) { return F.on && redis_subscribed(); }

unsigned long fleet_bad_messages(void) { return F.bad; }

static void field_of(const struct admin_entry *e, char *buf, size_t len)
{
    struct ctl_field f;
    snprintf(f.dc, sizeof(f.dc), "%s", e->dc);
    snprintf(f.server, sizeof(f.server), "%s", e->srv);
    ctl_format_field(&f, buf, len);
}

static void record_of(const struct admin_entry *e, struct sbuf *b)
{
    sbuf_printf(b, "{\"state\": \"%s\", \"weight\": ", admin_state_name(e->state));
    if (e->weight >= 0)
        sbuf_printf(b, "%d", e->weight);
    else
        sbuf_printf(b, "null");
    sbuf_printf(b, ", \"since\": %.3f, \"until\": %.3f, \"origin\": ", e->since, e->until);
    json_write_str(b, e->origin, strlen(e->origin));
    sbuf_printf(b, "}");
}

/* ---- operator state ---- */

static void on_written(void *ctx, const redisReply *r)
{
    struct fleet_write *w = ctx;
    if (r && r->type == REDIS_REPLY_INTEGER)
        admin_written(w->dc, w->srv, w->changed);
    else
        log_warn("redis: operator state of %s%s%s not written, kept to retry", w->dc,
                 w->srv[0] ? "/" : "", w->srv);
    free(w);
}

static void write_entry(const struct admin_entry *e)
{
    char field[160];
    struct sbuf rec = {0};
    field_of(e, field, sizeof(field));
    if (!(e->state == ADMIN_READY && e->weight < 0))
        record_of(e, &rec);
    struct fleet_write *w = eg_calloc(1, sizeof(*w));
    memcpy(w->dc, e->dc, sizeof(w->dc));
    memcpy(w->srv, e->srv, sizeof(w->srv));
    w->changed = e->changed;
    const char *argv[] = {"EVAL", write_script, "2", F.hash, F.channel, field,
                          rec.s ? rec.s : ""};
    size_t argl[ARRAY_LEN(argv)];
    for (size_t i = 0; i < ARRAY_LEN(argv); i++)
        argl[i] = i == 6 ? rec.len : strlen(argv[i]);
    if (!redis_command((int)ARRAY_LEN(argv), argv, argl, on_written, w))
        free(w);
    sbuf_free(&rec);
}

void fleet_push(void)
{
    if (!F.on || !redis_ready())
        return;
    int n = MIN(admin_list(list_buf, ADMIN_MAX), ADMIN_MAX);
    for (int i = 0; i < n; i++)
        if (list_buf[i].pending)
            write_entry(&list_buf[i]);
}

int fleet_pending(void)
{
    int n = MIN(admin_list(list_buf, ADMIN_MAX), ADMIN_MAX), pending = 0;
    for (int i = 0; i < n; i++)
        pending += list_buf[i].pending;
    return pending;
}

/* FIELD and RECORD (as Redis holds them) into an entry; false when either
 * is malformed. */
static bool entry_of(const char *field, size_t flen, const char *rec, size_t rlen,
                     struct admin_entry *e)
{
    struct ctl_field f;
    struct ctl_record r;
    memset(e, 0, sizeof(*e));
    if (ctl_parse_field(field, flen, &f) != EG_OK)
        return false;
    memcpy(e->dc, f.dc, sizeof(e->dc));
    memcpy(e->srv, f.server, sizeof(e->srv));
    if (rlen == 0) { /* cleared */
        e->state = ADMIN_READY;
        e->weight = -1;
        snprintf(e->origin, sizeof(e->origin), "?");
        return true;
    }
    if (ctl_parse_record(rec, rlen, &r) != EG_OK)
        return false;
    e->state = (uint8_t)r.state;
    e->weight = r.weight;
    e->since = r.since;
    e->until = r.until;
    memcpy(e->origin, r.origin, sizeof(e->origin));
    return true;
}

static void on_state(void *ctx, const redisReply *r)
{
    (void)ctx;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements % 2) {
        log_warn("redis: cannot read the operator state: %s",
                 r && r->type == REDIS_REPLY_ERROR ? r->str : "no answer");
        return;
    }
    int n = 0;
    bool seeded = false;
    for (size_t i = 0; i + 1 < r->elements && n < ADMIN_MAX; i += 2) {
        const redisReply *f = r->element[i], *v = r->element[i + 1];
        if (f->type == REDIS_REPLY_STRING && strcmp(f->str, "seeded") == 0) {
            seeded = true;
            continue;
        }
        if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING ||
            !entry_of(f->str, f->len, v->str, v->len, &list_buf[n]) || v->len == 0) {
            F.bad++;
            continue;
        }
        n++;
    }
    if (!seeded) {
        /* An empty Redis (new, or restarted without its data) knows less
         * than the gateways: it gets what this one knows, and the fleet's
         * last state holds. */
        int mine = admin_mark_pending();
        if (mine)
            log_warn("redis: no operator state in Redis: writing this gateway's (%d entries)",
                     mine);
    } else {
        int changes = admin_replace(list_buf, n);
        counters->operator_fleet_changes_total += (uint64_t)changes;
        log_debug("redis: operator state read: %d entries, %d changes", n, changes);
    }
    fleet_push(); /* ours, changed while Redis was away: kept by admin_replace */
}

/* What may have changed while we were not listening: the fleet's state is
 * read, then what changed here meanwhile (pending) is written over it. */
static void resync(void)
{
    if (!fleet_connected())
        return;
    const char *argv[] = {"HGETALL", F.hash};
    size_t argl[] = {7, strlen(F.hash)};
    redis_command(2, argv, argl, on_state, NULL);
}

static void on_resync(void) { resync(); }

static void on_message(const char *msg, size_t len)
{
    const char *nl = memchr(msg, '\n', len);
    if (!nl) {
        F.bad++;
        return;
    }
    size_t flen = (size_t)(nl - msg), rlen = len - flen - 1;
    if (flen == 7 && memcmp(msg, "session", 7) == 0) {
        if (rlen > 0 && affinity_key_valid(nl + 1, rlen))
            affinity_forget(nl + 1, rlen);
        else
            F.bad++;
        return;
    }
    struct admin_entry e;
    if (!entry_of(msg, flen, nl + 1, rlen, &e)) {
        F.bad++;
        log_warn("redis: unreadable operator change on %s ignored", F.channel);
        return;
    }
    if (admin_set_fleet(&e))
        counters->operator_fleet_changes_total++;
}

void fleet_configure(const struct conf *c)
{
    F.on = c->redis.on;
    F.ttl = c->redis.ttl;
    snprintf(F.prefix, sizeof(F.prefix), "%s", c->redis.on ? c->redis.prefix : "");
    snprintf(F.hash, sizeof(F.hash), "%sop:state", F.prefix);
    snprintf(F.channel, sizeof(F.channel), "%sop:changes", F.prefix);
    if (!F.on)
        return;
    redis_subscribe(F.channel, on_message, on_resync);
    resync();
}

/* ---- sessions ---- */

static void on_session(void *ctx, const redisReply *r)
{
    struct fleet_call *call = ctx;
    struct fleet_session s = {0};
    bool ok = r && r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
              r->element[0]->type == REDIS_REPLY_STRING &&
              r->element[1]->type == REDIS_REPLY_STRING &&
              r->element[2]->type == REDIS_REPLY_INTEGER &&
              r->element[0]->len < sizeof(s.dc) && r->element[1]->len < sizeof(s.home);
    if (ok && r->element[0]->len > 0) {
        s.found = true;
        memcpy(s.dc, r->element[0]->str, r->element[0]->len);
        memcpy(s.home, r->element[1]->str, r->element[1]->len);
        s.ttl_s = r->element[2]->integer >= 0 ? (double)r->element[2]->integer / 1000 : -1;
    }
    call->cb(call->ctx, ok, &s);
    free(call);
}

static void on_moved(void *ctx, const redisReply *r)
{
    struct fleet_call *call = ctx;
    struct fleet_session s = {0};
    call->cb(call->ctx, r && r->type == REDIS_REPLY_INTEGER, &s);
    free(call);
}

static struct fleet_call *new_call(const char *key, size_t len, fleet_session_cb cb, void *ctx)
{
    struct fleet_call *call = eg_calloc(1, sizeof(*call));
    call->cb = cb;
    call->ctx = ctx;
    call->len = MIN(len, CTL_KEY_MAX);
    memcpy(call->key, key, call->len);
    return call;
}

static bool session_script(const char *script, int nkeys, int argc, const char **argv,
                           redis_cb done, struct fleet_call *call)
{
    const char *av[12];
    size_t al[12];
    char nk[8];
    snprintf(nk, sizeof(nk), "%d", nkeys);
    av[0] = "EVAL";
    av[1] = script;
    av[2] = nk;
    for (int i = 0; i < argc; i++)
        av[3 + i] = argv[i];
    for (int i = 0; i < argc + 3; i++)
        al[i] = strlen(av[i]);
    if (!F.on || !redis_ready() || !redis_command(argc + 3, av, al, done, call)) {
        free(call);
        return false;
    }
    return true;
}

bool fleet_session_get(const char *key, size_t len, fleet_session_cb cb, void *ctx)
{
    struct fleet_call *call = new_call(key, len, cb, ctx);
    char aff[CTL_KEY_MAX + 96], home[CTL_KEY_MAX + 96];
    snprintf(aff, sizeof(aff), "%saff:%s", F.prefix, call->key);
    snprintf(home, sizeof(home), "%shome:%s", F.prefix, call->key);
    return session_script(get_script, 2, 2, (const char *[]){aff, home}, on_session, call);
}

static bool move(const char *key, size_t len, const char *dc, fleet_session_cb cb, void *ctx)
{
    struct fleet_call *call = new_call(key, len, cb, ctx);
    char aff[CTL_KEY_MAX + 96], home[CTL_KEY_MAX + 96], ttl[24];
    snprintf(aff, sizeof(aff), "%saff:%s", F.prefix, call->key);
    snprintf(home, sizeof(home), "%shome:%s", F.prefix, call->key);
    snprintf(ttl, sizeof(ttl), "%.0f", F.ttl);
    return session_script(move_script, 3, 6,
                          (const char *[]){aff, home, F.channel, dc, ttl, call->key}, on_moved,
                          call);
}

bool fleet_session_move(const char *key, size_t len, const char *dc, fleet_session_cb cb,
                        void *ctx)
{
    return move(key, len, dc, cb, ctx);
}

bool fleet_session_forget(const char *key, size_t len, fleet_session_cb cb, void *ctx)
{
    return move(key, len, "", cb, ctx);
}
