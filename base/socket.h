/* A socket endpoint: a descriptor, its libev watcher and, optionally, a TLS
 * session. Reads and writes hide the difference between plain TCP and TLS,
 * including TLS' cross wants (a read that needs the socket writable). */
#ifndef EG_BASE_SOCKET_H
#define EG_BASE_SOCKET_H

#include "base/util.h"
#include "base/tls_record.h"

#include <ev.h>
#include <openssl/ssl.h>
#include <stdbool.h>
#include <sys/types.h>
#include <sys/uio.h>


struct sk {
    int fd;
    SSL *ssl;                   /* TLS by OpenSSL: the handshake, and TLS 1.2 after it */
    struct tls_rec *rec;        /* TLS 1.3 after the handshake (tls_record.h) */
    ev_io io;
    unsigned char ev;           /* events the watcher is registered for */
    unsigned char rd_wants_w:1; /* TLS read blocked until writable */
    unsigned char wr_wants_r:1; /* TLS write blocked until readable */
    unsigned char hs_ev;        /* events a pending TLS handshake waits for */
    int err;
};

void sk_init(struct sk *s, int fd, void (*cb)(struct ev_loop *, ev_io *, int), void *data);
/* > 0 bytes read, 0 at end of stream, EG_AGAIN (wait for what sk_want()
 * asks for) or EG_ERR (sk.err holds errno, 0 for TLS errors). */
ssize_t sk_read(struct sk *s, void *buf, size_t len);
/* > 0 bytes written, EG_AGAIN or EG_ERR. */
ssize_t sk_writev(struct sk *s, const struct iovec *iov, int n);
ssize_t sk_write(struct sk *s, const void *buf, size_t len);
/* Drives a TLS handshake: EG_OK when done, EG_AGAIN (wait for s->hs_ev) or EG_ERR. */
int sk_handshake(struct sk *s);
/* After a server-side handshake (whatever was asked of the SSL is asked):
 * tls_record.h's record layer replaces the SSL where it can. */
void sk_tls_take_over(struct sk *s);
/* Whether bytes on the socket are TLS records. */
static inline bool sk_is_tls(const struct sk *s) { return s->ssl || s->rec; }
/* The server name a TLS client asked for, NULL without SNI or TLS. */
const char *sk_sni(const struct sk *s);
/* Registers interest: the logical directions are mapped onto the socket
 * events TLS actually waits for. Only touches the watcher when it changes. */
void sk_want(struct ev_loop *loop, struct sk *s, bool rd, bool wr);
void sk_want_raw(struct ev_loop *loop, struct sk *s, int events);
/* Translates the events of a callback into the logical directions. */
void sk_ready(const struct sk *s, int revents, bool *rd, bool *wr);
/* Half-close our sending side (TLS: close_notify, then TCP FIN). */
void sk_shutdown_wr(struct sk *s);
void sk_close(struct ev_loop *loop, struct sk *s);
/* Close with RST instead of FIN: for connections we abort. */
void sk_abort(struct ev_loop *loop, struct sk *s);

#endif
