#include "base/socket.h"
#include "base/tls.h"
#include "base/util.h"

#include <errno.h>
#include <openssl/err.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

void sk_init(struct sk *s, int fd, void (*cb)(struct ev_loop *, ev_io *, int), void *data)
{
    memset(s, 0, sizeof(*s));
    s->fd = fd;
    ev_io_init(&s->io, cb, fd, 0);
    s->io.data = data;
}

/* Maps an OpenSSL result onto our return codes, remembering cross wants. */
static ssize_t tls_result(struct sk *s, int ret, bool reading)
{
    int e = SSL_get_error(s->ssl, ret);
    switch (e) {
    case SSL_ERROR_WANT_READ:
        if (!reading)
            s->wr_wants_r = 1;
        return EG_AGAIN;
    case SSL_ERROR_WANT_WRITE:
        if (reading)
            s->rd_wants_w = 1;
        return EG_AGAIN;
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    case SSL_ERROR_SYSCALL:
        s->err = errno ? errno : ECONNRESET;
        ERR_clear_error();
        /* With SSL_OP_IGNORE_UNEXPECTED_EOF a bare TCP close reads as EOF. */
        return reading && errno == 0 ? 0 : EG_ERR;
    default:
        s->err = 0;
        ERR_clear_error();
        return EG_ERR;
    }
}

ssize_t sk_read(struct sk *s, void *buf, size_t len)
{
    if (s->rec)
        return tls_rec_read(s->rec, s->fd, buf, len, &s->err);
    if (s->ssl) {
        s->rd_wants_w = 0;
        ERR_clear_error();
        errno = 0;
        int r = SSL_read(s->ssl, buf, (int)MIN(len, (size_t)0x7fffffff));
        return r > 0 ? r : tls_result(s, r, true);
    }
    for (;;) {
        /* recv, not read: a socket's reads then skip the file layer. */
        ssize_t r = recv(s->fd, buf, len, 0);
        if (r >= 0)
            return r;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN)
            return EG_AGAIN;
        s->err = errno;
        return EG_ERR;
    }
}

/* TLS has no writev: small pieces are gathered into one record so that a
 * response head and its body do not cost one record each. */
static ssize_t tls_writev(struct sk *s, const struct iovec *iov, int n)
{
    char gather[16384];
    size_t glen = 0;
    int i = 0;
    while (i < n && glen + iov[i].iov_len <= sizeof(gather)) {
        memcpy(gather + glen, iov[i].iov_base, iov[i].iov_len);
        glen += iov[i].iov_len;
        i++;
    }
    const void *p = glen ? gather : iov[0].iov_base;
    size_t len = glen ? glen : iov[0].iov_len;
    if (s->rec)
        return tls_rec_write(s->rec, s->fd, p, len, &s->err);
    s->wr_wants_r = 0;
    ERR_clear_error();
    errno = 0;
    int w = SSL_write(s->ssl, p, (int)MIN(len, (size_t)0x7fffffff));
    return w > 0 ? w : tls_result(s, w, false);
}

ssize_t sk_writev(struct sk *s, const struct iovec *iov, int n)
{
    if (sk_is_tls(s))
        return tls_writev(s, iov, n);
    for (;;) {
        ssize_t w = n == 1 ? send(s->fd, iov[0].iov_base, iov[0].iov_len, MSG_NOSIGNAL)
                           : writev(s->fd, iov, n);
        if (w >= 0)
            return w;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN)
            return EG_AGAIN;
        s->err = errno;
        return EG_ERR;
    }
}

ssize_t sk_write(struct sk *s, const void *buf, size_t len)
{
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
    return sk_writev(s, &iov, 1);
}

int sk_handshake(struct sk *s)
{
    ERR_clear_error();
    errno = 0;
    int r = SSL_do_handshake(s->ssl);
    if (r == 1) {
        s->hs_ev = 0;
        return EG_OK;
    }
    switch (SSL_get_error(s->ssl, r)) {
    case SSL_ERROR_WANT_READ:
        s->hs_ev = EV_READ;
        return EG_AGAIN;
    case SSL_ERROR_WANT_WRITE:
        s->hs_ev = EV_WRITE;
        return EG_AGAIN;
    default:
        s->err = errno;
        ERR_clear_error();
        return EG_ERR;
    }
}

void sk_tls_take_over(struct sk *s)
{
    struct tls_rec *r = tls_rec_take(s->ssl);
    if (!r)
        return;
    /* Marked as shut down, so that freeing it does not drop its session. */
    SSL_set_shutdown(s->ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
    SSL_free(s->ssl);
    s->ssl = NULL;
    s->rec = r;
}

const char *sk_sni(const struct sk *s)
{
    return s->rec ? tls_rec_sni(s->rec) : s->ssl ? tls_sni(s->ssl) : NULL;
}

void sk_want_raw(struct ev_loop *loop, struct sk *s, int events)
{
    if (s->ev == events)
        return;
    s->ev = (unsigned char)events;
    if (ev_is_active(&s->io))
        ev_io_stop(loop, &s->io);
    if (events) {
        ev_io_set(&s->io, s->fd, events);
        ev_io_start(loop, &s->io);
    }
}

void sk_want(struct ev_loop *loop, struct sk *s, bool rd, bool wr)
{
    int ev = 0;
    if (rd)
        ev |= s->rd_wants_w ? EV_WRITE : EV_READ;
    if (wr)
        ev |= s->wr_wants_r ? EV_READ : EV_WRITE;
    sk_want_raw(loop, s, ev);
    /* Bytes already decrypted never make the socket readable again. */
    if (rd && ((s->ssl && SSL_has_pending(s->ssl)) || (s->rec && tls_rec_pending(s->rec))))
        ev_feed_event(loop, &s->io, EV_READ | EV_CUSTOM);
}

void sk_ready(const struct sk *s, int revents, bool *rd, bool *wr)
{
    bool r = revents & (EV_READ | EV_CUSTOM), w = revents & EV_WRITE;
    *rd = s->rd_wants_w ? w : r;
    *wr = s->wr_wants_r ? r : w;
}

void sk_shutdown_wr(struct sk *s)
{
    if (s->rec)
        tls_rec_close_notify(s->rec, s->fd);
    if (s->ssl) {
        ERR_clear_error();
        SSL_shutdown(s->ssl); /* sends close_notify; a failure changes nothing here */
        ERR_clear_error();
    }
    shutdown(s->fd, SHUT_WR);
}

/* A clean close sends close_notify: besides good manners, OpenSSL drops a
 * session from its cache when the connection ends without it. */
static void close_fd(struct ev_loop *loop, struct sk *s, bool clean)
{
    if (ev_is_active(&s->io))
        ev_io_stop(loop, &s->io);
    if (ev_is_pending(&s->io))
        ev_clear_pending(loop, &s->io);
    if (s->rec) {
        if (clean)
            tls_rec_close_notify(s->rec, s->fd);
        tls_rec_free(s->rec);
        s->rec = NULL;
    }
    if (s->ssl) {
        if (clean && SSL_is_init_finished(s->ssl))
            SSL_shutdown(s->ssl);
        ERR_clear_error();
        SSL_free(s->ssl);
        s->ssl = NULL;
    }
    close(s->fd);
    s->fd = -1;
    s->ev = 0;
}

void sk_close(struct ev_loop *loop, struct sk *s)
{
    if (s->fd >= 0)
        close_fd(loop, s, true);
}

void sk_abort(struct ev_loop *loop, struct sk *s)
{
    if (s->fd < 0)
        return;
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(s->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close_fd(loop, s, false);
}
