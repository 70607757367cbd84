/* Redis client.
 *
 * States: OFF (not configured) -> [SENTINEL: ask a sentinel for the primary]
 * -> CONNECTING -> HANDSHAKE (AUTH, SELECT, SCRIPT LOAD, with Sentinel ROLE,
 * PING; each answer must be the one Redis gives) -> READY. Any failure drops
 * the connection and waits (exponential backoff with jitter, from the start
 * again only once a connection has lasted) before starting over.
 *
 * hiredis 0.14 has no command timeouts, so commands in flight are kept in
 * order with their deadlines and one timer watches the oldest: an answer
 * slower than `timeout` counts as Redis being down. The connection is then
 * dropped, which hands a NULL reply to every command in flight: their callers
 * fall back at once instead of waiting.
 *
 * A subscription (redis_subscribe) takes a third connection, to the same
 * primary, opened once the data connection is ready: a subscribed
 * connection can send no other command. Its troubles never touch the data
 * connection (a Redis whose ACL forbids SUBSCRIBE still keeps affinity): it
 * is opened again a second later. Its owner is told (on_resync) when the
 * data connection is ready and again when the subscription starts, to
 * re-read what it may have missed. */
#include "gateway/balance/redis.h"
#include "base/alloc.h"
#include "base/log.h"
#include "base/util.h"
#include "healthcheck/server_dns.h"

#include <hiredis/adapters/libev.h>
#include <hiredis/async.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_REPLY_ELEMENTS 1024
#define BACKOFF_MIN 0.1
#define BACKOFF_MAX 5.0
#define CONNECT_TIMEOUT 1.0
#define SUB_RETRY 1.0

enum redis_state { RS_OFF, RS_WAIT, RS_SENTINEL, RS_CONNECTING, RS_HANDSHAKE, RS_READY };

struct redis_req {
    struct dlist link;          /* in flight, oldest first */
    ev_tstamp deadline;
    redis_cb cb;
    void *ctx;
};

/* A private copy: the configuration it came from dies with its generation. */
struct redis_cfg {
    bool on, sentinel;
    char hosts[CONF_MAX_SENTINELS][256];
    uint16_t ports[CONF_MAX_SENTINELS];
    int naddrs;
    char master[128];
    char password[256];
    int db;
    double timeout;
};

static struct {
    struct ev_loop *loop;
    struct redis_cfg cfg;
    int state;
    unsigned attempt;           /* tells stale DNS answers from current ones */
    redisAsyncContext *ac;      /* data connection */
    redisAsyncContext *sac;     /* sentinel connection (discovery, then +switch-master) */
    redisAsyncContext *pac;     /* subscriber connection */
    bool subscribed;            /* pac's subscription is confirmed */
    bool sub_failing;           /* its failures are logged once until it works */
    ev_timer sub_tm;            /* pac's connect timeout, then the wait to retry */
    struct net_addr addr;       /* of the primary */
    char channel[160];
    redis_msg_cb on_message;
    void (*on_resync)(void);
    int sentinel_idx;
    char server[64];
    ev_timer retry_tm, conn_tm, cmd_tm;
    double backoff;
    struct dlist inflight;
    ev_tstamp degraded_since;
    ev_tstamp ready_since;
    double degraded_total;
    const char *script;
    char sha[48];
    unsigned long commands, timeouts, errors, reconnects;
    bool failing;               /* failures are logged once per outage */
} R;

static struct pool req_pool = POOL_INIT(struct redis_req, 256);

/* The first failure of an outage is a warning, the retries that follow are
 * debug noise. */
#define log_failure(...)                                                                  \
    do {                                                                                  \
        if (R.failing)                                                                    \
            log_debug(__VA_ARGS__);                                                       \
        else                                                                              \
            log_warn(__VA_ARGS__);                                                        \
        R.failing = true;                                                                 \
    } while (0)

static void start(void);
static void drop(const char *why);

static double now(void) { return ev_now(R.loop); }

static double jitter(double v) { return v * (0.75 + 0.5 * (random() / (RAND_MAX + 1.0))); }

static void set_state(int st)
{
    if (st == RS_READY && R.state != RS_READY) {
        double out = now() - R.degraded_since;
        R.degraded_total += out;
        R.ready_since = now();
        R.failing = false;
        if (R.reconnects)
            log_info("redis: connected to %s (after %.1fs without it)", R.server, out);
        else
            log_info("redis: connected to %s", R.server);
    } else if (st != RS_READY && R.state == RS_READY) {
        R.degraded_since = now();
        /* A connection that lasted starts the backoff over. One lost soon
         * after its handshake (a Redis that stalls or answers commands with
         * garbage) keeps it growing: else it would be reopened ten times a
         * second. */
        if (now() - R.ready_since >= BACKOFF_MAX)
            R.backoff = BACKOFF_MIN;
    }
    R.state = st;
}

static void retry_later(void)
{
    set_state(RS_WAIT);
    ev_timer_stop(R.loop, &R.conn_tm);
    double d = jitter(R.backoff);
    R.backoff = MIN(R.backoff * 2, BACKOFF_MAX);
    ev_timer_stop(R.loop, &R.retry_tm);
    ev_timer_set(&R.retry_tm, d, 0);
    ev_timer_start(R.loop, &R.retry_tm);
}

/* ---- commands in flight ---- */

static void arm_cmd_timer(void)
{
    ev_timer_stop(R.loop, &R.cmd_tm);
    if (dlist_empty(&R.inflight))
        return;
    struct redis_req *rq = container_of(R.inflight.next, struct redis_req, link);
    double d = rq->deadline - now();
    ev_timer_set(&R.cmd_tm, d > 0 ? d : 0, 0);
    ev_timer_start(R.loop, &R.cmd_tm);
}

static void on_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    struct redis_req *rq = priv;
    bool head = R.inflight.next == &rq->link;
    dlist_del(&rq->link);
    const redisReply *r = reply;
    if (r && r->type == REDIS_REPLY_ERROR) {
        R.errors++;
        if (strncmp(r->str, "READONLY", 8) == 0) {
            /* A replica now: the primary moved (Sentinel failover). */
            log_warn("redis: %s is read-only now, looking for the primary", R.server);
            drop("read-only");
        } else if (strncmp(r->str, "NOSCRIPT", 8) == 0) {
            R.sha[0] = '\0';
        }
    }
    if (rq->cb)
        rq->cb(rq->ctx, r);
    pool_put(&req_pool, rq);
    if (head)
        arm_cmd_timer();
}

static void on_cmd_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop, (void)w, (void)revents;
    if (dlist_empty(&R.inflight))
        return;
    struct redis_req *rq = container_of(R.inflight.next, struct redis_req, link);
    if (rq->deadline > now() + 0.0005) {
        arm_cmd_timer();
        return;
    }
    R.timeouts++;
    log_warn("redis: no answer from %s within %.0fms, serving without it", R.server,
             R.cfg.timeout * 1000);
    drop("timeout");
}

/* Sends on the data connection whatever the state (the handshake uses it). */
static struct redis_req *send_cmd(int argc, const char **argv, const size_t *argvlen, redis_cb cb,
                                void *ctx)
{
    if (!R.ac)
        return NULL;
    struct redis_req *rq = pool_get(&req_pool);
    rq->cb = cb;
    rq->ctx = ctx;
    rq->deadline = now() + R.cfg.timeout;
    if (redisAsyncCommandArgv(R.ac, on_reply, rq, argc, argv, argvlen) != REDIS_OK) {
        pool_put(&req_pool, rq);
        return NULL;
    }
    R.commands++;
    bool first = dlist_empty(&R.inflight);
    dlist_add_tail(&R.inflight, &rq->link);
    if (first)
        arm_cmd_timer();
    return rq;
}

struct redis_req *redis_command(int argc, const char **argv, const size_t *argvlen, redis_cb cb,
                            void *ctx)
{
    return R.state == RS_READY ? send_cmd(argc, argv, argvlen, cb, ctx) : NULL;
}

struct redis_req *redis_script(const char *script, int nkeys, int argc, const char **argv,
                           const size_t *argvlen, redis_cb cb, void *ctx)
{
    const char *av[64];
    size_t al[64];
    char nk[16];
    if (argc + 3 > (int)ARRAY_LEN(av))
        return NULL;
    bool sha = R.sha[0] != '\0';
    av[0] = sha ? "EVALSHA" : "EVAL";
    av[1] = sha ? R.sha : script;
    snprintf(nk, sizeof(nk), "%d", nkeys);
    av[2] = nk;
    for (int i = 0; i < 3; i++)
        al[i] = strlen(av[i]);
    memcpy(av + 3, argv, sizeof(*argv) * (size_t)argc);
    memcpy(al + 3, argvlen, sizeof(*argvlen) * (size_t)argc);
    return redis_command(argc + 3, av, al, cb, ctx);
}

/* ---- replies ---- */

static redisReplyObjectFunctions reply_fns;
static void *(*default_create_array)(const redisReadTask *, int);

static void *create_array(const redisReadTask *task, int elements)
{
    return elements > MAX_REPLY_ELEMENTS ? NULL : default_create_array(task, elements);
}

redisReplyObjectFunctions *redis_reply_functions(void)
{
    if (!default_create_array) {
        /* hiredis keeps its defaults private: borrow them from a reader. */
        redisReader *r = redisReaderCreate();
        if (!r) {
            log_err("redis: out of memory");
            abort();
        }
        reply_fns = *r->fn;
        redisReaderFree(r);
        default_create_array = reply_fns.createArray;
        reply_fns.createArray = create_array;
    }
    return &reply_fns;
}

/* ---- connection ---- */

static void close_sub(void)
{
    redisAsyncContext *pac = R.pac;
    R.pac = NULL;
    R.subscribed = false;
    ev_timer_stop(R.loop, &R.sub_tm);
    if (pac)
        redisAsyncFree(pac);
}

static void sub_retry_later(const char *why)
{
    if (R.sub_failing)
        log_debug("redis: subscription to %s: %s", R.channel, why);
    else
        log_warn("redis: subscription to %s: %s (trying again every second)", R.channel, why);
    R.sub_failing = true;
    close_sub();
    ev_timer_set(&R.sub_tm, jitter(SUB_RETRY), 0);
    ev_timer_start(R.loop, &R.sub_tm);
}

/* Forgets the connections now; hiredis hands NULL replies to everything in
 * flight (from inside redisAsyncFree, or deferred when called from one of
 * its callbacks). */
static void drop(const char *why)
{
    if (R.state == RS_OFF)
        return;
    redisAsyncContext *ac = R.ac, *sac = R.sac;
    R.ac = R.sac = NULL;
    close_sub();
    ev_timer_stop(R.loop, &R.conn_tm);
    if (R.state == RS_READY)
        log_warn("redis: dropping the connection to %s (%s)", R.server, why);
    else if (R.state == RS_HANDSHAKE)
        log_failure("redis: dropping the connection to %s (%s)", R.server, why);
    retry_later();
    if (ac)
        redisAsyncFree(ac);
    if (sac)
        redisAsyncFree(sac);
}

static void on_connect_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop, (void)w, (void)revents;
    drop("connect timeout");
}

static void on_retry(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop, (void)w, (void)revents;
    R.reconnects++;
    start();
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    (void)status;
    if (ac == R.pac) {
        R.pac = NULL;
        if (R.state == RS_READY)
            sub_retry_later("connection lost");
        return;
    }
    if (ac == R.sac) {
        R.sac = NULL; /* losing the sentinel only costs fast failover notice */
        return;
    }
    if (ac != R.ac)
        return; /* one we dropped ourselves */
    R.ac = NULL;
    log_warn("redis: connection to %s lost", R.server);
    ev_timer_stop(R.loop, &R.conn_tm);
    retry_later();
}

/* What Redis answers each handshake command. A server that says anything
 * else (another service on the port, a proxy that answers +OK to all) is
 * not a Redis we can use, however well-formed its replies. ROLE only has to
 * be a role here: whether it is the primary's is decided apart. */
static bool expected_answer(const char *what, const redisReply *r)
{
    if (strcmp(what, "SCRIPT LOAD") == 0)
        return r->type == REDIS_REPLY_STRING && r->len == 40 &&
               strspn(r->str, "0123456789abcdef") == 40;
    if (strcmp(what, "ROLE") == 0)
        return r->type == REDIS_REPLY_ARRAY && r->elements >= 1 &&
               r->element[0]->type == REDIS_REPLY_STRING;
    const char *status = strcmp(what, "PING") == 0 ? "PONG" : "OK"; /* PING, AUTH, SELECT */
    return r->type == REDIS_REPLY_STATUS && strcmp(r->str, status) == 0;
}

static bool reply_ok(const redisReply *r, const char *what)
{
    if (!r || r->type == REDIS_REPLY_ERROR) {
        const char *why = r ? r->str : R.ac && R.ac->err ? R.ac->errstr : "no answer";
        log_failure("redis: %s failed: %s", what, why);
        return false;
    }
    if (!expected_answer(what, r)) {
        R.errors++;
        log_failure("redis: %s does not answer %s as Redis does (reply type %d): not using it",
                    R.server, what, r->type);
        return false;
    }
    return true;
}

static void open_sub(void);

/* Every handshake answer, PING's last. */
static void on_handshake_step(void *ctx, const redisReply *r)
{
    const char *what = ctx;
    if (R.state != RS_HANDSHAKE)
        return;
    if (!reply_ok(r, what)) {
        drop(what);
        return;
    }
    if (strcmp(what, "SCRIPT LOAD") == 0)
        memcpy(R.sha, r->str, r->len + 1);
    if (strcmp(what, "ROLE") == 0 && strcmp(r->element[0]->str, "master") != 0) {
        log_warn("redis: %s is not the primary (yet), asking the sentinels again", R.server);
        drop("not primary");
        return;
    }
    if (strcmp(what, "PING") == 0) {
        ev_timer_stop(R.loop, &R.conn_tm);
        set_state(RS_READY);
        if (R.channel[0]) {
            open_sub();
            if (R.on_resync)
                R.on_resync();
        }
    }
}

/* Sends a handshake command as a plain command: its answer is also bound by
 * the timeout (a Redis that cannot answer PING in time is no use). */
static void hs_cmd(const char *what, int argc, const char **argv)
{
    size_t len[4];
    for (int i = 0; i < argc; i++)
        len[i] = strlen(argv[i]);
    send_cmd(argc, argv, len, on_handshake_step, (void *)what);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    if (ac != R.ac)
        return;
    if (status != REDIS_OK) {
        R.ac = NULL; /* hiredis frees it after this callback */
        log_failure("redis: cannot connect to %s: %s", R.server, ac->errstr);
        ev_timer_stop(R.loop, &R.conn_tm);
        retry_later();
        return;
    }
    set_state(RS_HANDSHAKE);
    if (R.cfg.password[0])
        hs_cmd("AUTH", 2, (const char *[]){"AUTH", R.cfg.password});
    if (R.cfg.db) {
        char db[16];
        snprintf(db, sizeof(db), "%d", R.cfg.db);
        hs_cmd("SELECT", 2, (const char *[]){"SELECT", db});
    }
    R.sha[0] = '\0';
    if (R.script)
        hs_cmd("SCRIPT LOAD", 3, (const char *[]){"SCRIPT", "LOAD", R.script});
    if (R.cfg.sentinel)
        hs_cmd("ROLE", 1, (const char *[]){"ROLE"});
    hs_cmd("PING", 1, (const char *[]){"PING"});
}

/* Opens an asynchronous connection to A, set up as every connection of ours
 * is: replies built with our constructors, on our loop, CONNECTED called
 * back, bounded by the connect timer. NULL (WHY says why) when it failed at
 * once. */
static redisAsyncContext *open_conn(const struct net_addr *a, redisConnectCallback *connected,
                                    char *why, size_t whylen)
{
    char ip[64];
    net_ip_str((const struct sockaddr *)&a->ss, ip, sizeof(ip));
    redisAsyncContext *ac = redisAsyncConnect(ip, net_addr_port(a));
    if (!ac || ac->err) {
        snprintf(why, whylen, "%s", ac ? ac->errstr : "out of memory");
        if (ac)
            redisAsyncFree(ac);
        return NULL;
    }
    ac->c.reader->fn = redis_reply_functions();
    redisLibevAttach(R.loop, ac);
    redisAsyncSetConnectCallback(ac, connected);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    ev_timer_stop(R.loop, &R.conn_tm);
    ev_timer_set(&R.conn_tm, CONNECT_TIMEOUT, 0);
    ev_timer_start(R.loop, &R.conn_tm);
    return ac;
}

static void connect_to(const struct net_addr *a)
{
    R.addr = *a;
    net_addr_str(a, R.server, sizeof(R.server));
    char why[128];
    R.ac = open_conn(a, on_connect, why, sizeof(why));
    if (!R.ac) {
        log_failure("redis: cannot connect to %s: %s", R.server, why);
        retry_later();
        return;
    }
    set_state(RS_CONNECTING);
}

static void on_primary_resolved(void *ctx, const struct net_addr *a)
{
    if ((uintptr_t)ctx != R.attempt || R.state == RS_OFF)
        return;
    if (!a) {
        log_failure("redis: cannot resolve %s", R.cfg.hosts[0]);
        retry_later();
        return;
    }
    connect_to(a);
}

/* ---- subscription ---- */

/* Confirmations ("subscribe") and messages; any other answer (an error:
 * NOAUTH, NOPERM, a proxy that does not do pub/sub) closes the subscriber
 * connection, to be opened again later. */
static void on_sub_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)priv;
    const redisReply *r = reply;
    if (ac != R.pac || !r)
        return;
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
        r->element[0]->type == REDIS_REPLY_STRING) {
        const char *kind = r->element[0]->str;
        if (strcmp(kind, "message") == 0 && r->element[2]->type == REDIS_REPLY_STRING) {
            if (R.on_message)
                R.on_message(r->element[2]->str, r->element[2]->len);
            return;
        }
        if (strcmp(kind, "subscribe") == 0) {
            log_debug("redis: subscribed to %s", R.channel);
            R.subscribed = true;
            R.sub_failing = false;
            if (R.on_resync)
                R.on_resync();
            return;
        }
    }
    if (r->type == REDIS_REPLY_STATUS) /* AUTH's +OK */
        return;
    R.errors++;
    sub_retry_later(r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
}

static void on_sub_connect(const redisAsyncContext *ac, int status)
{
    if (ac != R.pac)
        return;
    ev_timer_stop(R.loop, &R.sub_tm);
    if (status != REDIS_OK) {
        R.pac = NULL; /* hiredis frees it after this callback */
        sub_retry_later(ac->errstr);
        return;
    }
    if (R.cfg.password[0])
        redisAsyncCommand(R.pac, on_sub_reply, NULL, "AUTH %s", R.cfg.password);
    redisAsyncCommand(R.pac, on_sub_reply, NULL, "SUBSCRIBE %s", R.channel);
}

static void open_sub(void)
{
    char why[128];
    close_sub();
    R.pac = open_conn(&R.addr, on_sub_connect, why, sizeof(why));
    /* open_conn armed the data connection's timer: this one has its own. */
    ev_timer_stop(R.loop, &R.conn_tm);
    if (!R.pac) {
        sub_retry_later(why);
        return;
    }
    ev_timer_set(&R.sub_tm, CONNECT_TIMEOUT, 0);
    ev_timer_start(R.loop, &R.sub_tm);
}

/* The subscriber's connect timeout, or the wait before trying again. */
static void on_sub_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop, (void)w, (void)revents;
    if (R.pac)
        sub_retry_later("connect timeout");
    else if (R.state == RS_READY && R.channel[0])
        open_sub();
}

bool redis_subscribed(void) { return R.state == RS_READY && R.subscribed; }

void redis_subscribe(const char *channel, redis_msg_cb on_message, void (*on_resync)(void))
{
    R.on_message = on_message;
    R.on_resync = on_resync;
    if (strcmp(R.channel, channel) == 0)
        return;
    snprintf(R.channel, sizeof(R.channel), "%s", channel);
    if (R.state == RS_READY)
        open_sub();
}

/* ---- Sentinel ---- */

static void sentinel_next(const char *why)
{
    log_failure("redis: sentinel %s:%u: %s", R.cfg.hosts[R.sentinel_idx],
                R.cfg.ports[R.sentinel_idx], why);
    R.sentinel_idx = (R.sentinel_idx + 1) % R.cfg.naddrs;
    redisAsyncContext *sac = R.sac;
    R.sac = NULL;
    if (sac)
        redisAsyncFree(sac);
    retry_later();
}

/* "+switch-master <name> <old-ip> <old-port> <new-ip> <new-port>" */
static void on_switch_master(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)priv;
    const redisReply *r = reply;
    if (ac != R.sac || !r || r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
        r->element[2]->type != REDIS_REPLY_STRING)
        return;
    char name[128], oip[64], nip[64];
    unsigned oport, nport;
    if (sscanf(r->element[2]->str, "%127s %63s %u %63s %u", name, oip, &oport, nip, &nport) != 5 ||
        strcmp(name, R.cfg.master) != 0 || nport == 0 || nport > 65535)
        return;
    log_info("redis: sentinel reports a new primary %s:%u", nip, nport);
    char spec[100], err[EG_ERRLEN];
    struct net_addr a;
    snprintf(spec, sizeof(spec), strchr(nip, ':') ? "[%s]:%u" : "%s:%u", nip, nport);
    if (net_parse_addr(spec, &a, err, sizeof(err)) != EG_OK)
        return;
    redisAsyncContext *old = R.ac;
    R.ac = NULL;
    close_sub();
    if (old)
        redisAsyncFree(old);
    R.backoff = BACKOFF_MIN;
    connect_to(&a);
}

static void on_master_addr(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)priv;
    const redisReply *r = reply;
    if (ac != R.sac || R.state != RS_SENTINEL)
        return;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_STRING) {
        sentinel_next(r && r->type == REDIS_REPLY_ERROR ? r->str : "no primary known");
        return;
    }
    char spec[300], err[EG_ERRLEN];
    struct net_addr a;
    const char *ip = r->element[0]->str;
    snprintf(spec, sizeof(spec), strchr(ip, ':') ? "[%s]:%s" : "%s:%s", ip, r->element[1]->str);
    if (net_parse_addr(spec, &a, err, sizeof(err)) != EG_OK) {
        sentinel_next(err);
        return;
    }
    redisAsyncCommand(R.sac, on_switch_master, NULL, "SUBSCRIBE +switch-master");
    connect_to(&a);
}

static void on_sentinel_connect(const redisAsyncContext *ac, int status)
{
    if (ac != R.sac)
        return;
    if (status != REDIS_OK) {
        R.sac = NULL;
        sentinel_next(ac->errstr);
        return;
    }
    redisAsyncCommand(R.sac, on_master_addr, NULL, "SENTINEL get-master-addr-by-name %s",
                      R.cfg.master);
}

static void on_sentinel_resolved(void *ctx, const struct net_addr *a)
{
    if ((uintptr_t)ctx != R.attempt || R.state != RS_SENTINEL)
        return;
    if (!a) {
        sentinel_next("does not resolve");
        return;
    }
    char why[128];
    R.sac = open_conn(a, on_sentinel_connect, why, sizeof(why));
    if (!R.sac)
        sentinel_next(why);
}

static void start(void)
{
    R.attempt++;
    void *id = (void *)(uintptr_t)R.attempt;
    if (R.cfg.sentinel) {
        set_state(RS_SENTINEL);
        dns_lookup(R.cfg.hosts[R.sentinel_idx], R.cfg.ports[R.sentinel_idx],
                   on_sentinel_resolved, id);
    } else {
        set_state(RS_CONNECTING);
        dns_lookup(R.cfg.hosts[0], R.cfg.ports[0], on_primary_resolved, id);
    }
}

/* ---- configuration and status ---- */

void redis_init(struct ev_loop *loop)
{
    R.loop = loop;
    dlist_init(&R.inflight);
    ev_timer_init(&R.retry_tm, on_retry, 0, 0);
    ev_timer_init(&R.conn_tm, on_connect_timeout, 0, 0);
    ev_timer_init(&R.cmd_tm, on_cmd_timeout, 0, 0);
    ev_timer_init(&R.sub_tm, on_sub_timer, 0, 0);
    R.backoff = BACKOFF_MIN;
}

void redis_set_script(const char *script) { R.script = script; }

static void copy_cfg(struct redis_cfg *d, const struct conf_redis *c)
{
    memset(d, 0, sizeof(*d));
    d->on = c->on;
    d->sentinel = c->sentinel;
    d->naddrs = c->naddrs;
    for (int i = 0; i < c->naddrs; i++) {
        snprintf(d->hosts[i], sizeof(d->hosts[i]), "%s", c->addrs[i].host);
        d->ports[i] = c->addrs[i].port;
    }
    snprintf(d->master, sizeof(d->master), "%s", c->master ? c->master : "");
    snprintf(d->password, sizeof(d->password), "%s", c->password ? c->password : "");
    d->db = c->db;
    d->timeout = c->timeout;
}

void redis_configure(const struct conf_redis *c)
{
    struct redis_cfg n;
    copy_cfg(&n, c);
    double timeout = n.timeout;
    n.timeout = R.cfg.timeout;
    bool same = memcmp(&n, &R.cfg, sizeof(n)) == 0;
    n.timeout = timeout;
    R.cfg.timeout = timeout;
    if (same)
        return;
    if (R.state != RS_OFF) {
        drop("configuration changed");
        ev_timer_stop(R.loop, &R.retry_tm);
        R.degraded_total += now() - R.degraded_since;
        R.state = RS_OFF;
    }
    R.cfg = n;
    if (!n.on)
        return;
    R.sentinel_idx = 0;
    R.backoff = BACKOFF_MIN;
    R.degraded_since = now();
    R.state = RS_WAIT;
    start();
}

bool redis_ready(void) { return R.state == RS_READY; }

void redis_status(struct redis_status *st)
{
    memset(st, 0, sizeof(*st));
    st->configured = R.state != RS_OFF;
    st->connected = R.state == RS_READY;
    st->degraded_s = R.degraded_total;
    if (st->configured && !st->connected)
        st->degraded_s += ev_time() - R.degraded_since;
    st->commands = R.commands;
    st->timeouts = R.timeouts;
    st->errors = R.errors;
    st->reconnects = R.reconnects;
    snprintf(st->server, sizeof(st->server), "%s", st->connected ? R.server : "");
}
