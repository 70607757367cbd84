/* TLS with OpenSSL 3: listener contexts (certificates chosen by SNI, ALPN,
 * resumption by session cache and by tickets with rotating keys) and client
 * contexts for TLS to servers. */
#ifndef EG_TLS_H
#define EG_TLS_H

#include "conf/conf-types.h"

#include <openssl/ssl.h>
#include <stdbool.h>

struct tls_lsn;

/* Once per process, before any context. */
int tls_init(char *err, size_t errlen);

/* The contexts of listener CL (NULL when it has no `tls`). On error returns
 * NULL and appends "FILE:LINE: ..." lines to ERRS; *UNREADABLE tells a file
 * that could not be read (a runtime failure) from a bad one (configuration). */
struct tls_lsn *tls_lsn_create(const struct conf *c, const struct conf_listener *cl,
                               struct conf_errs *errs, bool *unreadable);
void tls_lsn_free(struct tls_lsn *t);
SSL *tls_lsn_ssl(struct tls_lsn *t, int fd);
/* The server name a client asked for, NULL without SNI. */
const char *tls_sni(SSL *ssl);

/* Checks every certificate of C; what -t and a reload run. */
int tls_check_conf(const struct conf *c, struct conf_errs *errs, bool *unreadable);

/* TLS towards a server. */
SSL_CTX *tls_client_ctx(const struct conf *c, const struct conf_server *cs,
                        struct conf_errs *errs);
/* A client session for FD: SNI and the verified name set from CS. */
SSL *tls_client_ssl(SSL_CTX *ctx, const struct conf_server *cs, int fd);

/* Counts a finished client handshake (and whether it resumed a session). */
void tls_count_handshake(SSL *ssl);
void tls_count_failure(void);

#endif
