/* Layer gateway/proxy: client and server connections, the attempt engine
 * and the modes (tcp, http). It may use every layer but gateway/process. */
/* The attempt engine: how one http request or one tcp connection finds a
 * server, written once for every mode.
 *
 * route (affinity of the session key, else the nearest healthy datacenter)
 *   -> pick a server -> connect (TCP, then TLS) -> the mode's exchange
 * and when an attempt fails: the next server, then the next datacenter (up
 * to `retries`), or HOLD while no datacenter is healthy, or give up.
 *
 * A mode (tcp, http) embeds a struct attempt, keeps only its framing and
 * tells the engine, through struct attempt_ops, what the engine cannot know:
 * whether what the client sent may go to another server, and what to do
 * with a ready connection or a final failure. The engine owns the server
 * connection while it connects; once `ready` ran the mode drives it. */
#ifndef EG_GATEWAY_PROXY_ATTEMPT_H
#define EG_GATEWAY_PROXY_ATTEMPT_H

#include "gateway/balance/affinity.h"
#include "gateway/balance/route.h"
#include "gateway/proxy/hold.h"
#include "healthcheck/datacenter.h"

struct conn;
struct attempt;
struct upstream;
struct access_log_rec;

/* Why an attempt failed, which decides what it costs the server and
 * whether the request may go elsewhere. A request charges at most one
 * server, whatever happens to its later attempts, but for refused
 * connections, which are never the request's doing. */
enum attempt_fault {
    FAULT_REFUSED,      /* nothing listens: charged, tried elsewhere */
    FAULT_RESET,        /* reset or closed before answering: charged, tried elsewhere when replayable */
    FAULT_TIMEOUT,      /* no connection in time: charged, likewise */
    FAULT_SLOW,         /* no answer in time: charged only where no active check watches
                         * the server (a slow endpoint is not a dead server), likewise */
    FAULT_DOWN,         /* the server was marked down meanwhile: not charged again, likewise */
    FAULT_INVALID,      /* the answer could not be passed on: the request's fault as much as
                         * the server's, counted apart from health and never replayed */
};

enum attempt_state {
    ATTEMPT_IDLE,       /* nothing in progress (before routing, between requests) */
    ATTEMPT_ROUTE,      /* waiting for the session's datacenter (Redis) */
    ATTEMPT_HOLD,       /* waiting for a healthy datacenter */
    ATTEMPT_CONNECT,    /* opening a connection to a server */
    ATTEMPT_READY,      /* a server connection carries the exchange: the mode drives it */
};

struct attempt_ops {
    /* A server connection is ready (a->up): the mode starts its exchange. */
    void (*ready)(struct attempt *a);
    /* No server will take it: the mode answers STATUS (502, 503, 504) or
     * closes; WHY says what happened (for the access log). The attempt is
     * idle again. */
    void (*give_up)(struct attempt *a, int status, const char *why);
    /* Whether what the client sent so far may go to another server. */
    bool (*replayable)(const struct attempt *a);
    /* The attempt waits (routing, holding, connecting): the mode sets what
     * it wants from the client meanwhile. */
    void (*waiting)(struct attempt *a);
    /* The ready server connection can be read (RD) or written (WR). */
    void (*server_io)(struct attempt *a, bool rd, bool wr);
    /* Hedging (see attempt_await_answer): the hedge connection a->hedge is
     * ready, or writable again: the mode writes the request on it, from its
     * first byte the first time after ready. Returns false when it cannot
     * (the hedge is then dropped). */
    bool (*hedge_write)(struct attempt *a);
    /* The hedge answered first and is now a->up (the first connection was
     * closed): the mode carries on with it. */
    void (*hedge_won)(struct attempt *a);
    /* The server of the ready connection was marked down: the mode moves
     * what has not reached the client yet (attempt_failed with FAULT_DOWN),
     * answers what cannot move, or closes a tunnel. */
    void (*server_down)(struct attempt *a);
};

struct attempt {
    const struct attempt_ops *ops;
    struct conn *c;             /* the client it serves */
    enum attempt_state state;
    uint8_t tries;              /* servers tried for this request or connection */
    bool stale_retried;         /* went out again after a stale kept-alive connection */
    bool charged;               /* a server's health was charged for this request */
    bool private_conn;          /* never from or to the pool (tcp mode, send_proxy) */
    bool sends_first;           /* bytes wait to go as soon as a server connection is up */
    bool mux;                   /* the mode speaks HTTP/2 to servers marked h2 (h2 streams);
                                 * HTTP/1.1 requests are not sent to them */
    struct upstream *up;        /* connecting (CONNECT) or carrying the exchange (READY) */
    struct upstream *hedge;     /* a second connection, to the next datacenter, racing up */
    bool hedge_ready;           /* the hedge connection is open: the request goes out on it */
    bool answering;             /* READY: the server began to answer (or closed) */
    ev_tstamp answer_at;        /* READY: when its server must have answered (0: not yet asked) */
    ev_tstamp hedge_at;         /* READY: when the request goes to the next datacenter too (0: never) */
    struct upstream **kept;     /* private_conn: where the client keeps its idle server
                                 * connection between requests (NULL: it keeps none) */
    ev_tstamp hold_since;       /* when holding started (0: not held yet) */
    bool awaiting_verdict;      /* HOLD after resets only: until the checks judge (await_verdict) */
    unsigned long downs_before; /* servers marked down before it began to await */
    struct hold hold;
    struct dlist inflight;      /* in up->srv->inflight while up is set */
    struct route rt;
    struct affinity_req aff;
    const char *key;            /* session key (owned by the mode), NULL for none */
    uint16_t keylen;
    const char *log_dc;         /* datacenter and server of the last attempt, */
    char log_srv[64];           /* for the access log */
};

/* PRIVATE_CONN: server connections are the client's own (tcp mode,
 * send_proxy), never pooled; KEPT (may be NULL) is where one waits between
 * requests. */
void attempt_init(struct attempt *a, const struct attempt_ops *ops, struct conn *c,
                  bool private_conn, struct upstream **kept);
/* Routes and connects: ends in ops->ready or ops->give_up (possibly before
 * returning). */
void attempt_start(struct attempt *a);
/* The current attempt failed before anything reached the client: FAULT is
 * charged to the server (see enum attempt_fault; never for the stale
 * keep-alive race); the request goes to the next server when
 * ops->replayable and the retry budget allow, else ops->give_up(STATUS). */
void attempt_failed(struct attempt *a, enum attempt_fault fault, int status);
/* The whole request is on the ready connection: its server has until
 * response_timeout to answer, or try_timeout for an IDEMPOTENT request with
 * tries left (then attempt_timeout is false: the mode fails the attempt
 * with FAULT_SLOW). With hedge_after, an IDEMPOTENT request still without
 * an answer after it goes to the next datacenter too (ops->hedge_write),
 * while ops->replayable, the retry budget and a datacenter allow: the first
 * answer wins, the other connection is closed without charging its server.
 * Not for private connections, pinned sessions, or HTTP/2 servers. Sets
 * the client's deadline. */
void attempt_await_answer(struct attempt *a, bool idempotent);
/* The ready connection's server answered STATUS (outlier detection). When
 * that ejects the server, the other attempts on it move; this one, which
 * has its answer, stays. */
void attempt_answered(struct attempt *a, int status);
/* The ready connection's server set session cookie KEY (`session cookie
 * NAME issued`): the session is pinned to its datacenter. */
void attempt_session_issued(struct attempt *a, const char *key, size_t len);
/* Server S was marked down: every attempt connecting to it or waiting for
 * its answer moves (see ops->server_down). */
void attempt_server_down(struct srv *s);
/* The client's deadline passed: true when the attempt owned it (connect or
 * hold timeout, hedge_after: handled here), false when the mode's own
 * deadline is due. */
bool attempt_timeout(struct attempt *a);
/* A session pinned by `affinity strict` whose datacenter is down. */
bool attempt_pinned_down(const struct attempt *a);
/* Ends whatever is in progress (routing, holding, connecting) and closes the
 * server connection. */
void attempt_cancel(struct attempt *a);
/* The exchange ended well: the server connection goes back to the pool, or
 * waits in *kept (private_conn), or is closed when !REUSABLE. */
void attempt_release(struct attempt *a, bool reusable);
/* Writes the access-log record R (when the log is on), completed with what
 * the engine knows: client, listener, session, datacenter, server, retries. */
void attempt_log(struct attempt *a, struct access_log_rec *r);

#endif
