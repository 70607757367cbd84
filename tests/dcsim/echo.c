/* Echo mode: every byte read is written back, in order.
 *
 * Bytes are read straight into the output buffer. Reading stops while
 * ECHO_MAX bytes are unsent, so a peer that does not read stops us from
 * reading (backpressure). With --delay, each read is stamped with its
 * release time in a ring of marks and held (out_hold) until then. When the
 * peer half-closes, what is pending still goes out, then our FIN (linger). */
#include "tests/dcsim/dcsim.h"

#define ECHO_MAX (1024 * 1024)   /* unsent bytes before we stop reading */
#define ECHO_READ (64 * 1024)    /* room made before each read */
#define TIMER_SLACK 0.0001        /* a timer may fire this much before its mark */

bool echo_wants_read(const struct conn *c)
{
    return !c->peer_eof && buf_pending(&c->out) < ECHO_MAX && c->echo.count < ECHO_MARKS;
}

/* Holds the N bytes just read until the delay has passed. Reads in the same
 * loop iteration share their mark. */
static void echo_hold(struct conn *c, size_t n)
{
    struct echo_state *e = &c->echo;
    ev_tstamp due = ev_now(srv.loop) + srv.delay;

    c->out_hold += n;
    if (e->count) {
        struct echo_mark *last = &e->marks[(e->head + e->count - 1) % ECHO_MARKS];
        if (due <= last->at) {
            last->end = e->received;
            return;
        }
    }
    e->marks[(e->head + e->count++) % ECHO_MARKS] = (struct echo_mark){ e->received, due };
    if (!ev_is_active(&c->delay)) {
        ev_timer_set(&c->delay, srv.delay, 0);
        ev_timer_start(srv.loop, &c->delay);
    }
}

/* Releases the marks that are due and re-arms the timer for the next one. */
void echo_on_delay(struct conn *c)
{
    struct echo_state *e = &c->echo;
    ev_tstamp now = ev_now(srv.loop);

    while (e->count && e->marks[e->head].at <= now + TIMER_SLACK) {
        c->out_hold -= e->marks[e->head].end - e->released;
        e->released = e->marks[e->head].end;
        e->head = (e->head + 1) % ECHO_MARKS;
        e->count--;
    }
    if (e->count) {
        ev_timer_set(&c->delay, e->marks[e->head].at - now, 0);
        ev_timer_start(srv.loop, &c->delay);
    }
}

static bool echo_read(struct conn *c)
{
    if (buf_reserve(&c->out, ECHO_READ)) {
        c->state = CS_CLOSED;
        return false;
    }
    size_t n = conn_recv(c, c->out.data + c->out.len, c->out.cap - c->out.len);
    if (!n)
        return false;
    c->out.len += n;
    c->echo.received += n;
    if (srv.delay > 0)
        echo_hold(c, n);
    return true;
}

void echo_drive(struct conn *c)
{
    bool progress;

    do {
        progress = echo_wants_read(c) && echo_read(c);
        if (c->state == CS_CLOSED)
            return;
        progress |= conn_flush(c);
        if (c->state == CS_CLOSED)
            return;
        if (c->peer_eof && !buf_pending(&c->out)) {
            conn_linger(c);
            return;
        }
    } while (progress);
}
