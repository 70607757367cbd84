/* TLS 1.3 records after the handshake, without OpenSSL's SSL object.
 *
 * An SSL object costs about 12 KB for as long as a connection lives (its
 * record layer's fixed arrays, the session, the handshake's digests and
 * keys, locks), which is most of what an idle TLS client costs. Once
 * OpenSSL finished a TLS 1.3 handshake with a client, the connection's
 * records are protected and checked here instead (RFC 8446 5), with the
 * traffic secrets OpenSSL derived (captured through its key log callback)
 * and the sequence numbers it reached, and the SSL is freed: what remains
 * is two AEAD contexts and this structure, about 2.5 KB. Buffers are held
 * only while a record is partly read or partly sent.
 *
 * Handled after the handshake: application data, close_notify (an end of
 * stream), other alerts (an error), KeyUpdate both ways (RFC 8446 4.6.3),
 * and our own KeyUpdate before a write key has protected 2^24 records.
 * Anything else (a TLS 1.2 connection, another cipher suite) stays with
 * OpenSSL. */
#ifndef EG_BASE_TLS_RECORD_H
#define EG_BASE_TLS_RECORD_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct tls_rec;

/* On a listener's context: capture what tls_rec_take needs. */
void tls_rec_prepare(SSL_CTX *ctx);
/* The server sent a session ticket on SSL (from the ticket key callback):
 * one record more under the application write key. */
void tls_rec_ticket_sent(SSL *ssl);
/* After SSL's handshake finished: the record layer that replaces it, or
 * NULL (not TLS 1.3, a suite not handled here, out of memory, or something
 * OpenSSL still holds): then keep using SSL. On success the caller frees
 * SSL (tls_rec_take does not). */
struct tls_rec *tls_rec_take(SSL *ssl);
/* The record layer of cipher suite SUITE (0x1301, 0x1302 or 0x1303) reading
 * with RD_SECRET and writing with WR_SECRET (LEN bytes each, the suite's
 * hash length), both at sequence 0; NULL for another suite or length. */
struct tls_rec *tls_rec_new(uint16_t suite, const unsigned char *rd_secret,
                            const unsigned char *wr_secret, size_t len);
void tls_rec_free(struct tls_rec *r);

/* As sk_read: > 0 bytes, 0 at the end (close_notify, or the peer's FIN),
 * EG_AGAIN or EG_ERR (*ERR: an errno, 0 for a TLS error). */
ssize_t tls_rec_read(struct tls_rec *r, int fd, void *buf, size_t len, int *err);
/* As SSL_write with partial writes: > 0 bytes taken (at most one record's
 * worth), EG_AGAIN or EG_ERR. After EG_AGAIN the caller offers the same
 * bytes again (a record may be built and partly sent already). */
ssize_t tls_rec_write(struct tls_rec *r, int fd, const void *buf, size_t len, int *err);
/* One record of content TYPE (any, for tests: a peer's side) holding up to
 * 2^14 of BUF's bytes; results as tls_rec_write. */
ssize_t tls_rec_send_record(struct tls_rec *r, int fd, int type, const void *buf, size_t len,
                            int *err);
/* Decrypted bytes, or a whole record, wait: the socket will not tell. */
bool tls_rec_pending(const struct tls_rec *r);
/* Sends close_notify if nothing is half sent; best effort. */
void tls_rec_close_notify(struct tls_rec *r, int fd);
/* The server name the client asked for, NULL without SNI. */
const char *tls_rec_sni(const struct tls_rec *r);

#endif
