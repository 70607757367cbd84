/* Connection lifecycle and transport.
 *
 * This file moves bytes: plain or TLS reads and writes, the io watcher's
 * interest, idle and linger timeouts, and freeing. What the bytes mean is
 * decided in http.c, ws.c and echo.c. Handlers deeper down never free a
 * connection; they set CS_CLOSED and the event handler that started the work
 * frees it on the way out (conn_settle), so no code runs on freed memory. */
#include "tests/dcsim/dcsim.h"

#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#define SEND_MAX (1024 * 1024)    /* largest single write of a non-repeating body */
#define LINGER_READS 16           /* reads per event while discarding input */

static void conn_on_io(struct ev_loop *loop, ev_io *w, int revents);
static void conn_on_idle(struct ev_loop *loop, ev_timer *w, int revents);
static void conn_on_delay(struct ev_loop *loop, ev_timer *w, int revents);
static void conn_update_events(struct conn *c);

static void conn_free(struct conn *c)
{
    if (srv.log && srv.mode == MODE_ECHO)
        log_line("conn close bytes=%llu", (unsigned long long)c->echo.received);
    ev_io_stop(srv.loop, &c->io);
    ev_timer_stop(srv.loop, &c->idle);
    ev_timer_stop(srv.loop, &c->delay);
    SSL_free(c->ssl);
    close(c->fd);
    buf_free(&c->in);
    buf_free(&c->out);
    buf_free(&c->target);
    buf_free(&c->body);
    free(c);
    server_conn_closed();
}

void conn_open(int fd)
{
    static const int one = 1;
    struct conn *c = calloc(1, sizeof *c);

    /* Answers are small and written whole: don't let Nagle hold them back. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (!c || (srv.mode == MODE_HTTP && buf_reserve(&c->in, HDR_MAX)))
        goto fail;
    if (srv.tls) {
        c->ssl = SSL_new(srv.tls);
        if (!c->ssl || !SSL_set_fd(c->ssl, fd))
            goto fail;
        SSL_set_accept_state(c->ssl);
        c->state = CS_HANDSHAKE;
    } else {
        c->state = srv.mode == MODE_ECHO ? CS_ECHO : CS_HEAD;
    }
    c->fd = fd;
    c->rd_want = EV_READ;
    c->wr_want = EV_WRITE;
    ev_io_init(&c->io, conn_on_io, fd, 0);
    c->io.data = c;
    ev_init(&c->delay, conn_on_delay);
    c->delay.data = c;
    ev_init(&c->idle, conn_on_idle);
    c->idle.data = c;
    c->idle_limit = c->idle.repeat = IDLE_TIMEOUT;
    c->last_active = ev_now(srv.loop);
    ev_timer_again(srv.loop, &c->idle);
    srv.nconns++;
    if (srv.log && srv.mode == MODE_ECHO)
        log_line("conn open");
    conn_update_events(c);
    return;
fail:
    if (c) {
        SSL_free(c->ssl);
        buf_free(&c->in);
        free(c);
    }
    close(fd);
}

/* ---- transport ---- */

static size_t tcp_recv(struct conn *c, void *p, size_t len)
{
    for (;;) {
        ssize_t n = recv(c->fd, p, len, 0);
        if (n > 0)
            return n;
        if (n == 0)
            c->peer_eof = true;
        else if (errno == EINTR)
            continue;
        else if (errno == EAGAIN || errno == EWOULDBLOCK)
            c->rd_drained = true;
        else
            c->state = CS_CLOSED;
        return 0;
    }
}

static size_t tls_recv(struct conn *c, void *p, size_t len)
{
    ERR_clear_error();
    int n = SSL_read(c->ssl, p, len > INT_MAX ? INT_MAX : (int)len);
    if (n > 0) {
        c->rd_want = EV_READ;
        return n;
    }
    switch (SSL_get_error(c->ssl, n)) {
    case SSL_ERROR_WANT_READ:
        c->rd_want = EV_READ;
        c->rd_drained = true;
        break;
    case SSL_ERROR_WANT_WRITE:
        c->rd_want = EV_WRITE;
        c->rd_drained = true;
        break;
    case SSL_ERROR_ZERO_RETURN:
        c->peer_eof = true;
        break;
    default:
        c->state = CS_CLOSED;
        break;
    }
    return 0;
}

size_t conn_recv(struct conn *c, void *p, size_t len)
{
    if (c->rd_drained || c->peer_eof || !len)
        return 0;
    size_t n = c->ssl ? tls_recv(c, p, len) : tcp_recv(c, p, len);
    if (n) {
        c->last_active = ev_now(srv.loop);
        /* A short read means the socket is empty for now; level-triggered
         * epoll reports the next bytes. TLS may still hold decrypted ones. */
        c->rd_drained = n < len && !(c->ssl && SSL_has_pending(c->ssl));
    }
    return n;
}

static size_t tcp_send(struct conn *c, const void *p, size_t len)
{
    for (;;) {
        ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
        if (n >= 0)
            return n;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            c->state = CS_CLOSED;
        return 0;
    }
}

/* A retried SSL_write must offer at least the bytes of the failed one; our
 * pending output only grows at its end, and the SSL_CTX accepts that the
 * buffer moves (compaction). */
static size_t tls_send(struct conn *c, const void *p, size_t len)
{
    ERR_clear_error();
    int n = SSL_write(c->ssl, p, len > INT_MAX ? INT_MAX : (int)len);
    if (n > 0) {
        c->wr_want = EV_WRITE;
        return n;
    }
    switch (SSL_get_error(c->ssl, n)) {
    case SSL_ERROR_WANT_WRITE:
        c->wr_want = EV_WRITE;
        break;
    case SSL_ERROR_WANT_READ:
        c->wr_want = EV_READ;
        break;
    default:
        c->state = CS_CLOSED;
        break;
    }
    return 0;
}

static size_t conn_send(struct conn *c, const void *p, size_t len)
{
    size_t n = c->ssl ? tls_send(c, p, len) : tcp_send(c, p, len);
    if (n)
        c->last_active = ev_now(srv.loop);
    return n;
}

bool conn_has_output(const struct conn *c)
{
    return buf_pending(&c->out) > c->out_hold || c->src_left;
}

bool conn_flush(struct conn *c)
{
    size_t sent = 0;

    while (buf_pending(&c->out) > c->out_hold) {
        size_t want = buf_pending(&c->out) - c->out_hold;
        size_t n = conn_send(c, buf_head(&c->out), want);
        buf_consume(&c->out, n);
        sent += n;
        if (n < want)
            return sent > 0;
    }
    while (c->src_left) {
        size_t max = c->src_fill ? SRC_CHUNK : SEND_MAX;
        size_t want = c->src_left < max ? c->src_left : max;
        size_t n = conn_send(c, c->src, want);
        c->src_left -= n;
        if (!c->src_fill)
            c->src += n;
        sent += n;
        if (n < want)
            break;
    }
    return sent > 0;
}

/* ---- state transitions ---- */

static bool conn_handshake(struct conn *c)
{
    ERR_clear_error();
    int r = SSL_accept(c->ssl);
    if (r == 1) {
        c->rd_want = EV_READ;
        c->state = srv.mode == MODE_ECHO ? CS_ECHO : CS_HEAD;
        return true;
    }
    switch (SSL_get_error(c->ssl, r)) {
    case SSL_ERROR_WANT_READ:
        c->rd_want = EV_READ;
        break;
    case SSL_ERROR_WANT_WRITE:
        c->rd_want = EV_WRITE;
        break;
    default:
        c->state = CS_CLOSED;
        break;
    }
    return false;
}

/* Closing right after the last answer would reset the connection if the
 * peer's unread bytes are still queued, and the reset can destroy the answer
 * in flight. So: send everything, send FIN, discard input until the peer's
 * FIN or LINGER_TIMEOUT. */
void conn_linger(struct conn *c)
{
    c->state = CS_LINGER;
    ev_timer_stop(srv.loop, &c->delay);
    c->last_active = ev_now(srv.loop);
    c->idle_limit = c->idle.repeat = LINGER_TIMEOUT;
    ev_timer_again(srv.loop, &c->idle);
}

static void linger_drive(struct conn *c)
{
    static char discard[16 * 1024];

    for (int i = 0; i < LINGER_READS && conn_recv(c, discard, sizeof discard); i++)
        ;
    if (c->state == CS_CLOSED)
        return;
    conn_flush(c);
    if (c->state == CS_CLOSED || conn_has_output(c))
        return;
    if (!c->wr_shut) {
        if (c->ssl)
            SSL_shutdown(c->ssl);  /* best effort close_notify */
        shutdown(c->fd, SHUT_WR);
        c->wr_shut = true;
    }
    if (c->peer_eof)
        c->state = CS_CLOSED;
}

static void conn_drive(struct conn *c)
{
    if (c->state == CS_HANDSHAKE && !conn_handshake(c))
        return;
    if (c->state == CS_ECHO)
        echo_drive(c);
    else if (c->state != CS_LINGER && c->state != CS_CLOSED)
        http_drive(c);
    if (c->state == CS_LINGER)
        linger_drive(c);
}

static bool conn_wants_read(const struct conn *c)
{
    switch (c->state) {
    case CS_LINGER:
        return !c->peer_eof;
    case CS_ECHO:
        return echo_wants_read(c);
    case CS_HEAD:
    case CS_BODY:
    case CS_WAIT:
    case CS_WS:
        return http_wants_read(c);
    default:
        return false;
    }
}

static void conn_update_events(struct conn *c)
{
    int ev = 0;

    if (c->state == CS_HANDSHAKE) {
        ev = c->rd_want;
    } else {
        if (conn_wants_read(c))
            ev |= c->rd_want;
        if (conn_has_output(c))
            ev |= c->wr_want;
    }
    if (ev == c->events)
        return;
    ev_io_stop(srv.loop, &c->io);
    ev_io_set(&c->io, c->fd, ev);
    if (ev)
        ev_io_start(srv.loop, &c->io);
    c->events = ev;
}

/* Every event handler ends here: free a closed connection, else re-arm. */
static void conn_settle(struct conn *c)
{
    if (c->state == CS_CLOSED)
        conn_free(c);
    else
        conn_update_events(c);
}

/* ---- event handlers ---- */

static void conn_on_io(struct ev_loop *loop, ev_io *w, int revents)
{
    struct conn *c = w->data;

    (void)loop;
    (void)revents;
    c->rd_drained = false;
    conn_drive(c);
    conn_settle(c);
}

static void conn_on_delay(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct conn *c = w->data;

    (void)loop;
    (void)revents;
    if (srv.mode == MODE_ECHO)
        echo_on_delay(c);
    else
        http_on_delay(c);
    conn_drive(c);
    conn_settle(c);
}

/* One timer per connection, re-armed lazily: activity only stamps
 * last_active, and the timer recomputes its deadline when it fires. */
static void conn_on_idle(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct conn *c = w->data;
    ev_tstamp now = ev_now(loop);

    (void)revents;
    /* Holding back our own answer or echo is not the peer being idle. */
    if (c->state == CS_WAIT || c->out_hold)
        c->last_active = now;
    ev_tstamp left = c->last_active + c->idle_limit - now;
    if (left > 0) {
        w->repeat = left;
        ev_timer_again(loop, w);
        return;
    }
    c->state = CS_CLOSED;
    conn_settle(c);
}
