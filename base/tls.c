/* TLS contexts.
 *
 * A listener has one SSL_CTX per certificate; the first is the default. The
 * client-hello callback reads the requested name and switches a connection to
 * the context whose certificate names it (exact names first, then one-label
 * wildcards), which is how OpenSSL serves several certificates on one socket.
 * It runs before session resumption is considered, and sets the session-id
 * context to a digest of the name: a session (from the cache or a ticket)
 * then only resumes under the name it was made for (RFC 6066, section 3).
 *
 * Resumption works two ways: a server-side session cache (TLS 1.2 session
 * IDs) and stateless tickets. Ticket keys rotate every hour; each key is
 * derived from one random secret and the hour's number, so keys never need
 * to be stored, the previous hour's tickets still resume (and get renewed),
 * and processes that share the secret (workers forked from one master)
 * accept each other's tickets.
 *
 * A fleet shares keys instead (`tls_ticket_keys FILE`): the operator's
 * keys replace the derived ones, the first issuing tickets and every one
 * accepting them, so that a ticket one gateway issued resumes on another.
 * Rotating is writing a new key first, keeping the previous ones after it
 * for as long as their tickets should resume, and reloading every gateway.
 * Keys are never logged: errors name the line, not its content. */
#include "base/tls.h"
#include "base/tls_record.h"
#include "base/alloc.h"
#include "base/log.h"
#include "base/counters.h"
#include "base/util.h"

#include <errno.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define TICKET_PERIOD 3600
#define MAX_NAMES 64
#define KEY_FILE_MAX 65536

/* Mozilla's "intermediate" TLS 1.2 suites; TLS 1.3 uses OpenSSL's defaults. */
static const char ciphers12[] =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

struct tls_cert {
    SSL_CTX *ctx;
    char *names[MAX_NAMES];     /* DNS names of the certificate, lower case */
    int nnames;
};

struct tls_lsn {
    struct tls_cert *certs;
    int ncerts;
    bool http;                  /* ALPN http/1.1 */
    bool h2;                    /* ALPN h2 first */
};

struct ticket_key {
    long period;
    unsigned char name[16], aes[32], hmac[32];
};

struct tls_ticket_keys {
    int n;
    struct ticket_key k[TLS_TICKET_KEYS_MAX];
};

static unsigned char ticket_secret[32];
static struct ticket_key tkeys[2];
static struct tls_ticket_keys shared;  /* the operator's, in use when n > 0 */
void tls_count_failure(void) { counters->tls_failures_total++; }

void tls_count_handshake(SSL *ssl)
{
    counters->tls_handshakes_total++;
    if (SSL_session_reused(ssl))
        counters->tls_resumed_total++;
}

int tls_init(char *err, size_t errlen)
{
    if (RAND_bytes(ticket_secret, sizeof(ticket_secret)) != 1) {
        snprintf(err, errlen, "TLS: no randomness for ticket keys");
        return EG_ERR;
    }
    return EG_OK;
}

/* ---- tickets ---- */

static void derive(long period, struct ticket_key *k)
{
    unsigned char out[32];
    unsigned int len;
    const char *parts[3] = {"name", "aes", "hmac"};
    unsigned char *dst[3] = {k->name, k->aes, k->hmac};
    size_t dlen[3] = {sizeof(k->name), sizeof(k->aes), sizeof(k->hmac)};
    for (int i = 0; i < 3; i++) {
        char msg[64];
        int n = snprintf(msg, sizeof(msg), "edgegate ticket %s %ld", parts[i], period);
        HMAC(EVP_sha256(), ticket_secret, sizeof(ticket_secret), (unsigned char *)msg,
             (size_t)n, out, &len);
        memcpy(dst[i], out, dlen[i]);
    }
    k->period = period;
}

/* Slot 0: this period's key, slot 1: the previous period's. */
static const struct ticket_key *ticket_key(int slot)
{
    long period = (long)(time(NULL) / TICKET_PERIOD) - slot;
    if (tkeys[slot].period != period)
        derive(period, &tkeys[slot]);
    return &tkeys[slot];
}

static int set_mac_key(EVP_MAC_CTX *hctx, const struct ticket_key *k)
{
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, (void *)k->hmac, sizeof(k->hmac)),
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0),
        OSSL_PARAM_construct_end(),
    };
    return EVP_MAC_CTX_set_params(hctx, params);
}

/* ---- the operator's keys ---- */

static int hexval(int c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* One line's key: 160 hex digits, name | AES | HMAC. */
static bool parse_key(const char *s, size_t n, struct ticket_key *k)
{
    unsigned char raw[80];
    if (n != 2 * sizeof(raw))
        return false;
    for (size_t i = 0; i < sizeof(raw); i++) {
        int hi = hexval((unsigned char)s[2 * i]), lo = hexval((unsigned char)s[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            OPENSSL_cleanse(raw, sizeof(raw));
            return false;
        }
        raw[i] = (unsigned char)(hi << 4 | lo);
    }
    memcpy(k->name, raw, 16);
    memcpy(k->aes, raw + 16, 32);
    memcpy(k->hmac, raw + 48, 32);
    k->period = 0;
    OPENSSL_cleanse(raw, sizeof(raw));
    return true;
}

static int parse_keys(const char *text, size_t len, struct tls_ticket_keys *k, char *err,
                      size_t errlen)
{
    int line = 0;
    for (const char *p = text, *end = text + len; p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *e = nl ? nl : end;
        line++;
        while (p < e && (*p == ' ' || *p == '\t'))
            p++;
        const char *t = e;
        while (t > p && (t[-1] == ' ' || t[-1] == '\t' || t[-1] == '\r'))
            t--;
        if (t > p && *p != '#') {
            if (k->n == TLS_TICKET_KEYS_MAX) {
                snprintf(err, errlen, "line %d: at most %d keys", line, TLS_TICKET_KEYS_MAX);
                return EG_ERR;
            }
            if (!parse_key(p, (size_t)(t - p), &k->k[k->n])) {
                snprintf(err, errlen, "line %d: a key is 160 hex digits (80 random bytes: "
                                      "`openssl rand -hex 80`)", line);
                return EG_ERR;
            }
            for (int i = 0; i < k->n; i++)
                if (memcmp(k->k[i].name, k->k[k->n].name, 16) == 0) {
                    snprintf(err, errlen, "line %d: the same key name (first 16 bytes) as an "
                                          "earlier key", line);
                    return EG_ERR;
                }
            k->n++;
        }
        p = nl ? nl + 1 : end;
    }
    if (k->n == 0) {
        snprintf(err, errlen, "no key (one per line: `openssl rand -hex 80`)");
        return EG_ERR;
    }
    return EG_OK;
}

struct tls_ticket_keys *tls_ticket_keys_load(const char *file, char *err, size_t errlen,
                                             bool *unreadable)
{
    FILE *f = fopen(file, "r");
    if (!f) {
        snprintf(err, errlen, "cannot read %s: %s", file, strerror(errno));
        *unreadable = true;
        return NULL;
    }
    char *text = eg_malloc(KEY_FILE_MAX + 1);
    size_t len = fread(text, 1, KEY_FILE_MAX + 1, f);
    bool failed = ferror(f);
    fclose(f);
    struct tls_ticket_keys *k = eg_calloc(1, sizeof(*k));
    char why[160];
    int rc = EG_ERR;
    if (failed)
        snprintf(why, sizeof(why), "read error");
    else if (len > KEY_FILE_MAX)
        snprintf(why, sizeof(why), "larger than %d bytes", KEY_FILE_MAX);
    else
        rc = parse_keys(text, len, k, why, sizeof(why));
    OPENSSL_cleanse(text, KEY_FILE_MAX + 1);
    free(text);
    if (rc != EG_OK) {
        snprintf(err, errlen, "%s: %s", file, why);
        tls_ticket_keys_free(k);
        return NULL;
    }
    return k;
}

void tls_ticket_keys_free(struct tls_ticket_keys *k)
{
    if (!k)
        return;
    OPENSSL_cleanse(k, sizeof(*k));
    free(k);
}

void tls_ticket_keys_use(const struct tls_ticket_keys *k)
{
    OPENSSL_cleanse(&shared, sizeof(shared));
    if (k)
        shared = *k;
}

/* Returns 1 (key found), 2 (found, old: issue a new ticket), 0 (unknown
 * key: full handshake), -1 (error). */
static int on_ticket(SSL *ssl, unsigned char name[16], unsigned char *iv, EVP_CIPHER_CTX *ectx,
                     EVP_MAC_CTX *hctx, int enc)
{
    if (enc) {
        const struct ticket_key *k = shared.n ? &shared.k[0] : ticket_key(0);
        if (RAND_bytes(iv, 16) != 1)
            return -1;
        memcpy(name, k->name, 16);
        if (!EVP_EncryptInit_ex(ectx, EVP_aes_256_cbc(), NULL, k->aes, iv) ||
            !set_mac_key(hctx, k))
            return -1;
        tls_rec_ticket_sent(ssl);
        return 1;
    }
    int nkeys = shared.n ? shared.n : 2;
    for (int slot = 0; slot < nkeys; slot++) {
        const struct ticket_key *k = shared.n ? &shared.k[slot] : ticket_key(slot);
        if (memcmp(name, k->name, 16) != 0)
            continue;
        if (!set_mac_key(hctx, k) || !EVP_DecryptInit_ex(ectx, EVP_aes_256_cbc(), NULL, k->aes, iv))
            return -1;
        return slot == 0 ? 1 : 2;
    }
    return 0;
}

/* ---- certificates and SNI ---- */

static const char *ssl_error(void)
{
    static char buf[256];
    unsigned long e = ERR_peek_last_error();
    ERR_error_string_n(e, buf, sizeof(buf));
    ERR_clear_error();
    return e ? buf : "unknown error";
}

static void add_name(struct tls_cert *c, const char *name, size_t len)
{
    if (c->nnames == MAX_NAMES || len == 0 || len > 253)
        return;
    char *n = eg_strndup(name, len);
    for (char *p = n; *p; p++)
        *p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
    c->names[c->nnames++] = n;
}

/* The names a certificate serves: its DNS subject alternative names, or its
 * common name when it has none. */
static void collect_names(struct tls_cert *c)
{
    X509 *x = SSL_CTX_get0_certificate(c->ctx);
    if (!x)
        return;
    GENERAL_NAMES *sans = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    for (int i = 0; sans && i < sk_GENERAL_NAME_num(sans); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(sans, i);
        if (g->type == GEN_DNS)
            add_name(c, (const char *)ASN1_STRING_get0_data(g->d.dNSName),
                     (size_t)ASN1_STRING_length(g->d.dNSName));
    }
    GENERAL_NAMES_free(sans);
    if (c->nnames == 0) {
        char cn[256];
        int n = X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn,
                                          sizeof(cn));
        if (n > 0)
            add_name(c, cn, (size_t)n);
    }
}

static bool name_matches(const char *pattern, const char *host)
{
    if (strcasecmp(pattern, host) == 0)
        return true;
    if (pattern[0] != '*' || pattern[1] != '.')
        return false;
    /* A wildcard covers exactly one label. */
    const char *dot = strchr(host, '.');
    return dot && dot != host && strcasecmp(pattern + 1, dot) == 0;
}

static struct tls_cert *find_cert(struct tls_lsn *t, const char *host)
{
    for (int wild = 0; wild < 2; wild++)
        for (int i = 0; i < t->ncerts; i++)
            for (int k = 0; k < t->certs[i].nnames; k++) {
                const char *n = t->certs[i].names[k];
                if ((n[0] == '*') == wild && name_matches(n, host))
                    return &t->certs[i];
            }
    return NULL;
}

/* Reads the host name of a server_name extension (RFC 6066); false when
 * there is none or it is malformed. */
static bool parse_sni(const unsigned char *p, size_t len, char *host, size_t cap)
{
    if (len < 2 || (size_t)(p[0] << 8 | p[1]) != len - 2)
        return false;
    p += 2;
    len -= 2;
    while (len >= 3) {
        size_t n = (size_t)(p[1] << 8 | p[2]);
        if (n > len - 3)
            return false;
        if (p[0] == TLSEXT_NAMETYPE_host_name) {
            if (n == 0 || n >= cap || memchr(p + 3, '\0', n))
                return false;
            memcpy(host, p + 3, n);
            host[n] = '\0';
            return true;
        }
        p += 3 + n;
        len -= 3 + n;
    }
    return false;
}

static int on_client_hello(SSL *ssl, int *alert, void *arg)
{
    (void)alert;
    const unsigned char *ext;
    size_t len;
    char host[256];
    if (!SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &ext, &len) ||
        !parse_sni(ext, len, host, sizeof(host)))
        return SSL_CLIENT_HELLO_SUCCESS; /* the default certificate */
    struct tls_cert *c = find_cert(arg, host);
    if (c && c->ctx != SSL_get_SSL_CTX(ssl))
        SSL_set_SSL_CTX(ssl, c->ctx);
    for (char *h = host; *h; h++)
        *h = (char)(*h >= 'A' && *h <= 'Z' ? *h + 32 : *h);
    unsigned char sid[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)host, strlen(host), sid);
    SSL_set_session_id_context(ssl, sid, sizeof(sid));
    return SSL_CLIENT_HELLO_SUCCESS;
}

/* Our preference wins: h2 when the listener has it and the client offers
 * it, else http/1.1. */
static int on_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                   const unsigned char *in, unsigned int inlen, void *arg)
{
    (void)ssl;
    static const unsigned char h1[] = "\x08http/1.1", both[] = "\x02h2\x08http/1.1";
    const struct tls_lsn *t = arg;
    const unsigned char *ours = t->h2 ? both : h1;
    unsigned ourslen = t->h2 ? sizeof(both) - 1 : sizeof(h1) - 1;
    unsigned char *sel;
    if (SSL_select_next_proto(&sel, outlen, ours, ourslen, in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK; /* carry on without ALPN */
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

static SSL_CTX *server_ctx(void)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx)
        return NULL;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_cipher_list(ctx, ciphers12);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                                 SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
    SSL_CTX_sess_set_cache_size(ctx, 20480);
    SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"edgegate", 8);
    SSL_CTX_set_timeout(ctx, 2 * TICKET_PERIOD);
    SSL_CTX_set_num_tickets(ctx, 1);
    SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, on_ticket);
    tls_rec_prepare(ctx);
    return ctx;
}

/* Loads one certificate and its key into CTX; says what is wrong in ERR. */
static int load_cert(SSL_CTX *ctx, const char *cert, const char *key, char *err, size_t errlen,
                     bool *unreadable)
{
    const char *paths[2] = {cert, key};
    for (int i = 0; i < 2; i++)
        if (access(paths[i], R_OK) != 0) {
            snprintf(err, errlen, "cannot read %s: %s", paths[i], strerror(errno));
            *unreadable = true;
            return EG_ERR;
        }
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        snprintf(err, errlen, "%s: not a PEM certificate (%s)", cert, ssl_error());
        return EG_ERR;
    }
    /* Read first, then attach: "not a key" and "not this certificate's
     * key" are different mistakes with different messages. */
    BIO *bio = BIO_new_file(key, "r");
    EVP_PKEY *pkey = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    if (!pkey) {
        snprintf(err, errlen, "%s: not a PEM private key (%s)", key, ssl_error());
        return EG_ERR;
    }
    int ok = SSL_CTX_use_PrivateKey(ctx, pkey) == 1 && SSL_CTX_check_private_key(ctx) == 1;
    EVP_PKEY_free(pkey);
    ERR_clear_error();
    if (!ok) {
        snprintf(err, errlen, "the key %s does not match the certificate %s", key, cert);
        return EG_ERR;
    }
    return EG_OK;
}

void tls_lsn_free(struct tls_lsn *t)
{
    if (!t)
        return;
    for (int i = 0; i < t->ncerts; i++) {
        SSL_CTX_free(t->certs[i].ctx);
        for (int k = 0; k < t->certs[i].nnames; k++)
            free(t->certs[i].names[k]);
    }
    free(t->certs);
    free(t);
}

struct tls_lsn *tls_lsn_new(int ncerts, bool http, bool h2)
{
    struct tls_lsn *t = eg_calloc(1, sizeof(*t));
    t->certs = eg_calloc((size_t)ncerts, sizeof(*t->certs));
    t->http = http;
    t->h2 = http && h2;
    return t;
}

int tls_lsn_add_cert(struct tls_lsn *t, const char *cert, const char *key, char *err,
                     size_t errlen, bool *unreadable)
{
    struct tls_cert *tc = &t->certs[t->ncerts];
    tc->ctx = server_ctx();
    if (!tc->ctx) {
        snprintf(err, errlen, "%s", ssl_error());
        return EG_ERR;
    }
    t->ncerts++;
    if (load_cert(tc->ctx, cert, key, err, errlen, unreadable) != EG_OK)
        return EG_ERR;
    collect_names(tc);
    SSL_CTX_set_client_hello_cb(tc->ctx, on_client_hello, t);
    if (t->http)
        SSL_CTX_set_alpn_select_cb(tc->ctx, on_alpn, t);
    return EG_OK;
}

SSL *tls_lsn_ssl(struct tls_lsn *t, int fd)
{
    SSL *ssl = SSL_new(t->certs[0].ctx);
    if (!ssl)
        return NULL;
    SSL_set_fd(ssl, fd);
    SSL_set_accept_state(ssl);
    return ssl;
}

const char *tls_sni(SSL *ssl) { return SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name); }

void tls_offer_h2(SSL *ssl)
{
    static const unsigned char h2[] = "\x02h2";
    SSL_set_alpn_protos(ssl, h2, sizeof(h2) - 1);
}

bool tls_alpn_h2(SSL *ssl)
{
    const unsigned char *p;
    unsigned len;
    SSL_get0_alpn_selected(ssl, &p, &len);
    return len == 2 && p[0] == 'h' && p[1] == '2';
}

/* ---- towards servers ---- */

SSL_CTX *tls_client_ctx(const char *verify_ca, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        snprintf(err, errlen, "%s", ssl_error());
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                                 SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL);
    if (verify_ca) {
        if (SSL_CTX_load_verify_locations(ctx, verify_ca, NULL) != 1) {
            snprintf(err, errlen, "cannot load CA file %s (%s)", verify_ca, ssl_error());
            SSL_CTX_free(ctx);
            return NULL;
        }
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    }
    return ctx;
}

SSL *tls_client_ssl(SSL_CTX *ctx, int fd, const char *sni, const char *check, bool check_ip)
{
    SSL *ssl = SSL_new(ctx);
    if (!ssl)
        return NULL;
    SSL_set_fd(ssl, fd);
    SSL_set_connect_state(ssl);
    if (sni)
        SSL_set_tlsext_host_name(ssl, sni);
    if (check && check_ip)
        X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), check);
    else if (check)
        SSL_set1_host(ssl, check);
    return ssl;
}
