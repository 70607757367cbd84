/* TLS with OpenSSL 3: listener contexts (certificates chosen by SNI, ALPN,
 * resumption by session cache and by tickets with rotating keys) and client
 * contexts for TLS to servers. */
#ifndef EG_BASE_TLS_H
#define EG_BASE_TLS_H

#include <openssl/ssl.h>
#include <stdbool.h>

struct tls_lsn;

/* Once per process, before any context. */
int tls_init(char *err, size_t errlen);

/* A listener's contexts, for NCERTS certificates added next (the first is
 * the default); HTTP: offer ALPN http/1.1, preceded by h2 when H2. */
struct tls_lsn *tls_lsn_new(int ncerts, bool http, bool h2);
/* Adds a certificate chain and its key. On error ERR says what is wrong;
 * *UNREADABLE tells a file that could not be read (a runtime failure) from
 * a bad one (configuration). */
int tls_lsn_add_cert(struct tls_lsn *t, const char *cert, const char *key, char *err,
                     size_t errlen, bool *unreadable);
void tls_lsn_free(struct tls_lsn *t);
SSL *tls_lsn_ssl(struct tls_lsn *t, int fd);
/* The server name a client asked for, NULL without SNI. */
const char *tls_sni(SSL *ssl);
/* Whether the handshake settled on ALPN h2 (either side). */
bool tls_alpn_h2(SSL *ssl);
/* A client session that asks for ALPN h2 (HTTP/2 to a server). */
void tls_offer_h2(SSL *ssl);

/* TLS towards a server: a context verifying against VERIFY_CA (NULL: no
 * verification), or NULL with ERR set. */
SSL_CTX *tls_client_ctx(const char *verify_ca, char *err, size_t errlen);
/* A client session on FD, sending SNI (may be NULL) and checking the
 * certificate against CHECK (a name, or an IP address when CHECK_IP; NULL:
 * no name check). */
SSL *tls_client_ssl(SSL_CTX *ctx, int fd, const char *sni, const char *check, bool check_ip);

/* Session ticket keys shared by a fleet (`tls_ticket_keys FILE`): one per
 * line, 160 hex digits (80 bytes: 16 of name, 32 of AES-256 key, 32 of
 * HMAC-SHA256 key); blank lines and # comments are skipped. The first key
 * encrypts new tickets, every key decrypts (a ticket under another than the
 * first is renewed). NULL with ERR saying what is wrong (*UNREADABLE: the
 * file could not be read); the keys themselves never appear in ERR. */
#define TLS_TICKET_KEYS_MAX 16
struct tls_ticket_keys;
struct tls_ticket_keys *tls_ticket_keys_load(const char *file, char *err, size_t errlen,
                                             bool *unreadable);
void tls_ticket_keys_free(struct tls_ticket_keys *k);
/* From now on tickets use K (copied), or, with NULL, keys derived from this
 * process's secret that rotate hourly. */
void tls_ticket_keys_use(const struct tls_ticket_keys *k);

/* Counts a finished client handshake (and whether it resumed a session). */
void tls_count_handshake(SSL *ssl);
void tls_count_failure(void);

#endif
