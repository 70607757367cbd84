#include "base/tls_record.h"
#include "base/alloc.h"
#include "base/util.h"

#include <errno.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <string.h>
#include <sys/socket.h>

#define HDR 5                           /* type, legacy version, length */
#define TAG 16
#define PLAIN_MAX 16384                 /* 2^14 (RFC 8446 5.1) */
#define CIPHER_MAX (PLAIN_MAX + 256)    /* RFC 8446 5.2 */
#define REC_MAX (HDR + CIPHER_MAX)
#define SECRET_MAX 48
#define IV_LEN 12
#define KEY_UPDATE_AFTER (1ull << 24)   /* records under one write key: well within
                                         * AES-GCM's limits (RFC 8446 5.5) */
enum { CT_ALERT = 21, CT_HANDSHAKE = 22, CT_DATA = 23 };
enum { REC_END = 0, REC_OPENED = 1 };   /* next_record's results besides EG_AGAIN, EG_ERR */
enum { HS_KEY_UPDATE = 24 };

/* What the handshake leaves for tls_rec_take, kept with the SSL. */
struct captured {
    unsigned char client[SECRET_MAX], server[SECRET_MAX];
    uint8_t client_len, server_len;
    uint32_t tickets;           /* records the server wrote under its application key */
};

/* Bytes of at most one record in flight, from a pool: a connection holds
 * one only while a record is partly read, partly handed over or partly
 * sent. */
struct rbuf {
    uint32_t head, tail;        /* bytes read (or to send) and not consumed */
    uint32_t rec_end;           /* end of the opened record at head (0: none opened) */
    uint32_t pt, pt_end;        /* its plaintext not handed over yet */
    unsigned char data[REC_MAX];
};

/* One direction's protection (RFC 8446 5.3). */
struct dir {
    EVP_CIPHER_CTX *ctx;
    unsigned char secret[SECRET_MAX];
    unsigned char iv[IV_LEN];
    uint64_t seq;
};

struct tls_rec {
    struct dir rd, wr;
    const EVP_CIPHER *cipher;
    const char *md;             /* the suite's hash, for KeyUpdate */
    uint8_t keylen, seclen;
    bool closed;                /* close_notify came */
    bool update_owed;           /* the peer asked for our KeyUpdate */
    bool notified;              /* our close_notify went */
    uint32_t out_plain;         /* application bytes the record in `out` carries */
    struct rbuf *in, *out;
    char *sni;
};

static struct pool rbufs = POOL_INIT(struct rbuf, 64);
static int ex_index = -1;
static EVP_KDF *hkdf;

/* ---- capturing the handshake's results ---- */

static void free_captured(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
                          void *argp)
{
    (void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
    if (ptr) {
        OPENSSL_cleanse(ptr, sizeof(struct captured));
        free(ptr);
    }
}

static struct captured *captured(const SSL *ssl, bool create)
{
    struct captured *c = SSL_get_ex_data(ssl, ex_index);
    if (!c && create) {
        c = eg_calloc(1, sizeof(*c));
        if (!SSL_set_ex_data((SSL *)ssl, ex_index, c)) {
            free(c);
            return NULL;
        }
    }
    return c;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* OpenSSL's key log line "LABEL <client random> <secret>", both in hex:
 * the application traffic secrets are kept. */
static void on_keylog(const SSL *ssl, const char *line)
{
    static const char client[] = "CLIENT_TRAFFIC_SECRET_0 ", server[] = "SERVER_TRAFFIC_SECRET_0 ";
    bool is_client = strncmp(line, client, sizeof(client) - 1) == 0;
    if (!is_client && strncmp(line, server, sizeof(server) - 1) != 0)
        return;
    const char *p = strchr(line + sizeof(client) - 1, ' ');
    if (!p)
        return;
    p++;
    size_t hex = strlen(p);
    if (hex % 2 != 0 || hex / 2 > SECRET_MAX)
        return;
    struct captured *c = captured(ssl, true);
    if (!c)
        return;
    unsigned char *dst = is_client ? c->client : c->server;
    for (size_t i = 0; i < hex / 2; i++) {
        int hi = hexval(p[2 * i]), lo = hexval(p[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return;
        dst[i] = (unsigned char)(hi << 4 | lo);
    }
    *(is_client ? &c->client_len : &c->server_len) = (uint8_t)(hex / 2);
}

void tls_rec_prepare(SSL_CTX *ctx)
{
    if (ex_index < 0)
        ex_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, free_captured);
    SSL_CTX_set_keylog_callback(ctx, on_keylog);
}

void tls_rec_ticket_sent(SSL *ssl)
{
    struct captured *c = ex_index >= 0 ? captured(ssl, true) : NULL;
    if (c)
        c->tickets++;
}

/* ---- keys ---- */

/* HKDF-Expand-Label(SECRET, LABEL, "", OUTLEN) (RFC 8446 7.1). */
static bool expand_label(const struct tls_rec *r, const unsigned char *secret, const char *label,
                         unsigned char *out, size_t outlen)
{
    unsigned char info[2 + 1 + 6 + 16 + 1];
    size_t ll = strlen(label);
    info[0] = (unsigned char)(outlen >> 8);
    info[1] = (unsigned char)outlen;
    info[2] = (unsigned char)(6 + ll);
    memcpy(info + 3, "tls13 ", 6);
    memcpy(info + 9, label, ll);
    info[9 + ll] = 0; /* no context */
    if (!hkdf && !(hkdf = EVP_KDF_fetch(NULL, "HKDF", NULL)))
        return false;
    EVP_KDF_CTX *k = EVP_KDF_CTX_new(hkdf);
    if (!k)
        return false;
    int mode = EVP_KDF_HKDF_MODE_EXPAND_ONLY;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode),
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)r->md, 0),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)secret, r->seclen),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info, 10 + ll),
        OSSL_PARAM_construct_end(),
    };
    bool ok = EVP_KDF_derive(k, out, outlen, params) == 1;
    EVP_KDF_CTX_free(k);
    return ok;
}

/* D now protects with SECRET: its key and IV, sequence 0 (RFC 8446 7.3). */
static bool set_secret(struct tls_rec *r, struct dir *d, const unsigned char *secret, bool enc)
{
    unsigned char key[32];
    if (secret != d->secret)
        memcpy(d->secret, secret, r->seclen);
    bool ok = expand_label(r, d->secret, "key", key, r->keylen) &&
              expand_label(r, d->secret, "iv", d->iv, IV_LEN) &&
              EVP_CipherInit_ex(d->ctx, r->cipher, NULL, key, NULL, enc) == 1;
    OPENSSL_cleanse(key, sizeof(key));
    d->seq = 0;
    return ok;
}

/* The next generation of D's secret (RFC 8446 7.2). */
static bool key_update(struct tls_rec *r, struct dir *d, bool enc)
{
    unsigned char next[SECRET_MAX];
    bool ok = expand_label(r, d->secret, "traffic upd", next, r->seclen) &&
              set_secret(r, d, next, enc);
    OPENSSL_cleanse(next, sizeof(next));
    return ok;
}

static void nonce(const struct dir *d, unsigned char out[IV_LEN])
{
    memcpy(out, d->iv, IV_LEN);
    for (int i = 0; i < 8; i++)
        out[IV_LEN - 1 - i] ^= (unsigned char)(d->seq >> (8 * i));
}

/* ---- taking over from OpenSSL ---- */

static bool suite(struct tls_rec *r, uint16_t id)
{
    switch (id) {
    case 0x1301:
        r->cipher = EVP_aes_128_gcm(), r->md = "SHA256", r->keylen = 16, r->seclen = 32;
        return true;
    case 0x1302:
        r->cipher = EVP_aes_256_gcm(), r->md = "SHA384", r->keylen = 32, r->seclen = 48;
        return true;
    case 0x1303:
        r->cipher = EVP_chacha20_poly1305(), r->md = "SHA256", r->keylen = 32, r->seclen = 32;
        return true;
    default:
        return false;
    }
}

struct tls_rec *tls_rec_new(uint16_t suite_id, const unsigned char *rd_secret,
                            const unsigned char *wr_secret, size_t len)
{
    struct tls_rec *r = eg_calloc(1, sizeof(*r));
    if (!suite(r, suite_id) || len != r->seclen)
        goto fail;
    r->rd.ctx = EVP_CIPHER_CTX_new();
    r->wr.ctx = EVP_CIPHER_CTX_new();
    if (!r->rd.ctx || !r->wr.ctx || !set_secret(r, &r->rd, rd_secret, false) ||
        !set_secret(r, &r->wr, wr_secret, true))
        goto fail;
    return r;
fail:
    tls_rec_free(r);
    return NULL;
}

struct tls_rec *tls_rec_take(SSL *ssl)
{
    if (ex_index < 0 || SSL_version(ssl) != TLS1_3_VERSION || SSL_has_pending(ssl))
        return NULL;
    struct captured *c = captured(ssl, false);
    const SSL_CIPHER *sc = SSL_get_current_cipher(ssl);
    if (!c || !sc || c->client_len != c->server_len)
        return NULL;
    struct tls_rec *r = tls_rec_new(SSL_CIPHER_get_protocol_id(sc), c->client, c->server,
                                    c->client_len);
    if (!r)
        return NULL;
    r->wr.seq = c->tickets; /* the NewSessionTickets went under this key */
    const char *sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (sni)
        r->sni = eg_strndup(sni, strlen(sni));
    return r;
}

static void put_buf(struct rbuf **b)
{
    if (*b) {
        pool_put(&rbufs, *b);
        *b = NULL;
    }
}

void tls_rec_free(struct tls_rec *r)
{
    if (!r)
        return;
    EVP_CIPHER_CTX_free(r->rd.ctx);
    EVP_CIPHER_CTX_free(r->wr.ctx);
    put_buf(&r->in);
    put_buf(&r->out);
    free(r->sni);
    OPENSSL_cleanse(r, sizeof(*r));
    free(r);
}

const char *tls_rec_sni(const struct tls_rec *r) { return r->sni; }

/* ---- reading ---- */

/* Authenticates and decrypts the whole record at B's head in place;
 * returns its content type with the content at pt..pt_end, or -1. */
static int open_record(struct tls_rec *r, struct rbuf *b, size_t clen)
{
    unsigned char *hdr = b->data + b->head, *p = hdr + HDR, iv[IV_LEN];
    /* The inner plaintext, padding included, is 1 to 2^14 + 1 bytes (5.4). */
    if (clen < TAG + 1 || clen > TAG + PLAIN_MAX + 1)
        return -1;
    size_t n = clen - TAG;
    int outl;
    nonce(&r->rd, iv);
    if (EVP_DecryptInit_ex(r->rd.ctx, NULL, NULL, NULL, iv) != 1 ||
        EVP_CIPHER_CTX_ctrl(r->rd.ctx, EVP_CTRL_AEAD_SET_TAG, TAG, p + n) != 1 ||
        EVP_DecryptUpdate(r->rd.ctx, NULL, &outl, hdr, HDR) != 1 ||
        EVP_DecryptUpdate(r->rd.ctx, p, &outl, p, (int)n) != 1 ||
        EVP_DecryptFinal_ex(r->rd.ctx, p + n, &outl) != 1)
        return -1; /* bad_record_mac */
    r->rd.seq++;
    while (n > 0 && p[n - 1] == 0) /* padding */
        n--;
    if (n == 0) /* no content type */
        return -1;
    b->rec_end = b->head + HDR + (uint32_t)clen;
    b->pt = b->head + HDR;
    b->pt_end = b->pt + (uint32_t)n - 1;
    return p[n - 1];
}

/* The opened record is used up: its bytes go, and the buffer with them
 * when nothing else is in it. */
static void consume_record(struct tls_rec *r)
{
    struct rbuf *b = r->in;
    b->head = b->rec_end;
    b->rec_end = b->pt = b->pt_end = 0;
    if (b->head == b->tail)
        put_buf(&r->in);
}

/* Length of the whole record at B's head, 0 while its header is incomplete. */
static size_t record_len(const struct rbuf *b)
{
    if (b->tail - b->head < HDR)
        return 0;
    const unsigned char *h = b->data + b->head;
    return HDR + ((size_t)h[3] << 8 | h[4]);
}

static ssize_t send_key_update(struct tls_rec *r, int fd, int *err);

/* An alert or a handshake message after the handshake: REC_OPENED (carry
 * on), REC_END (the peer's close_notify) or EG_ERR. */
static int control(struct tls_rec *r, int fd, int type, const unsigned char *p, size_t n,
                   int *err)
{
    *err = 0;
    if (type == CT_ALERT) {
        if (n != 2)
            return EG_ERR;
        if (p[1] != 0) /* anything but close_notify ends it in error */
            return EG_ERR;
        r->closed = true;
        return REC_END;
    }
    /* Only KeyUpdate may come now, alone in its record: the next record is
     * under the new key (RFC 8446 5.1). */
    if (type != CT_HANDSHAKE || n != 5 || p[0] != HS_KEY_UPDATE || p[1] || p[2] || p[3] != 1 ||
        p[4] > 1 || !key_update(r, &r->rd, false))
        return EG_ERR;
    if (p[4] == 1)
        r->update_owed = true;
    /* Answered now if nothing is half sent, else before the next write. */
    if (r->update_owed && !r->out) {
        if (send_key_update(r, fd, err) == EG_ERR)
            return EG_ERR;
    }
    return REC_OPENED;
}

/* Reads until an application data record is opened: REC_OPENED, REC_END,
 * EG_AGAIN or EG_ERR. */
static int next_record(struct tls_rec *r, int fd, int *err)
{
    for (;;) {
        if (r->closed)
            return REC_END;
        struct rbuf *b = r->in;
        size_t have = b ? b->tail - b->head : 0, rlen = b ? record_len(b) : 0;
        if (rlen) {
            const unsigned char *h = b->data + b->head;
            if (h[0] != CT_DATA || h[1] != 3 || h[2] != 3 || rlen > REC_MAX) {
                *err = 0;
                return EG_ERR;
            }
        }
        if (rlen && have >= rlen) {
            int type = open_record(r, b, rlen - HDR);
            if (type < 0) {
                *err = 0;
                return EG_ERR;
            }
            if (type == CT_DATA && b->pt < b->pt_end)
                return REC_OPENED;
            int rc = type == CT_DATA ? REC_OPENED
                                     : control(r, fd, type, b->data + b->pt, b->pt_end - b->pt, err);
            consume_record(r); /* an empty one, or a control record */
            if (rc != REC_OPENED)
                return rc;
            continue;
        }
        if (!b) {
            b = r->in = pool_get(&rbufs);
            b->head = b->tail = b->rec_end = b->pt = b->pt_end = 0;
        } else if (b->head > 0) {
            memmove(b->data, b->data + b->head, have);
            b->head = 0;
            b->tail = (uint32_t)have;
        }
        ssize_t n = recv(fd, b->data + b->tail, REC_MAX - b->tail, 0);
        if (n > 0) {
            b->tail += (uint32_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (have == 0)
            put_buf(&r->in);
        if (n == 0) { /* a bare end of the stream reads as one, between records */
            *err = ECONNRESET;
            return have == 0 ? REC_END : EG_ERR;
        }
        if (errno == EAGAIN)
            return EG_AGAIN;
        *err = errno;
        return EG_ERR;
    }
}

ssize_t tls_rec_read(struct tls_rec *r, int fd, void *buf, size_t len, int *err)
{
    for (;;) {
        struct rbuf *b = r->in;
        if (b && b->pt < b->pt_end) {
            size_t n = MIN(len, (size_t)(b->pt_end - b->pt));
            memcpy(buf, b->data + b->pt, n);
            b->pt += (uint32_t)n;
            if (b->pt == b->pt_end)
                consume_record(r);
            return (ssize_t)n;
        }
        int rc = next_record(r, fd, err);
        if (rc != REC_OPENED)
            return rc;
    }
}

bool tls_rec_pending(const struct tls_rec *r)
{
    const struct rbuf *b = r->in;
    if (!b)
        return false;
    size_t rlen = record_len(b);
    return b->pt < b->pt_end || (rlen && b->tail - b->head >= rlen);
}

/* ---- writing ---- */

/* Sends what is left of `out`: EG_OK when all is gone. */
static int flush(struct tls_rec *r, int fd, int *err)
{
    struct rbuf *b = r->out;
    while (b->head < b->tail) {
        ssize_t n = send(fd, b->data + b->head, b->tail - b->head, MSG_NOSIGNAL);
        if (n > 0) {
            b->head += (uint32_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return EG_AGAIN;
        *err = n < 0 ? errno : EPIPE;
        return EG_ERR;
    }
    return EG_OK;
}

/* Protects LEN (at most PLAIN_MAX) bytes of content TYPE into `out`
 * (empty before). */
static bool seal(struct tls_rec *r, int type, const void *buf, size_t len)
{
    struct rbuf *b = r->out = pool_get(&rbufs);
    unsigned char *hdr = b->data, *p = hdr + HDR, iv[IV_LEN];
    size_t clen = len + 1 + TAG;
    hdr[0] = CT_DATA, hdr[1] = 3, hdr[2] = 3;
    hdr[3] = (unsigned char)(clen >> 8), hdr[4] = (unsigned char)clen;
    memcpy(p, buf, len);
    p[len] = (unsigned char)type;
    int outl;
    nonce(&r->wr, iv);
    if (EVP_EncryptInit_ex(r->wr.ctx, NULL, NULL, NULL, iv) != 1 ||
        EVP_EncryptUpdate(r->wr.ctx, NULL, &outl, hdr, HDR) != 1 ||
        EVP_EncryptUpdate(r->wr.ctx, p, &outl, p, (int)len + 1) != 1 ||
        EVP_EncryptFinal_ex(r->wr.ctx, p + len + 1, &outl) != 1 ||
        EVP_CIPHER_CTX_ctrl(r->wr.ctx, EVP_CTRL_AEAD_GET_TAG, TAG, p + len + 1) != 1)
        return false;
    r->wr.seq++;
    b->head = 0;
    b->tail = (uint32_t)(HDR + clen);
    r->out_plain = type == CT_DATA ? (uint32_t)len : 0;
    return true;
}

ssize_t tls_rec_send_record(struct tls_rec *r, int fd, int type, const void *buf, size_t len,
                            int *err)
{
    if (!seal(r, type, buf, MIN(len, (size_t)PLAIN_MAX))) {
        put_buf(&r->out);
        *err = 0;
        return EG_ERR;
    }
    int rc = flush(r, fd, err);
    if (rc != EG_OK)
        return rc;
    put_buf(&r->out);
    return (ssize_t)MIN(len, (size_t)PLAIN_MAX);
}

/* Our KeyUpdate, after which our write key changes (RFC 8446 4.6.3). */
static ssize_t send_key_update(struct tls_rec *r, int fd, int *err)
{
    static const unsigned char msg[] = {HS_KEY_UPDATE, 0, 0, 1, 0}; /* update_not_requested */
    if (!seal(r, CT_HANDSHAKE, msg, sizeof(msg)) || !key_update(r, &r->wr, true)) {
        put_buf(&r->out);
        *err = 0;
        return EG_ERR;
    }
    r->update_owed = false;
    int rc = flush(r, fd, err);
    if (rc != EG_OK)
        return rc;
    put_buf(&r->out);
    return 0;
}

ssize_t tls_rec_write(struct tls_rec *r, int fd, const void *buf, size_t len, int *err)
{
    if (r->out) { /* a record partly sent: the caller offers its bytes again */
        int rc = flush(r, fd, err);
        if (rc != EG_OK)
            return rc;
        uint32_t done = r->out_plain;
        put_buf(&r->out);
        if (done > 0)
            return done;
    }
    if (r->update_owed || r->wr.seq >= KEY_UPDATE_AFTER) {
        ssize_t rc = send_key_update(r, fd, err);
        if (rc < 0)
            return rc;
    }
    return tls_rec_send_record(r, fd, CT_DATA, buf, len, err);
}

void tls_rec_close_notify(struct tls_rec *r, int fd)
{
    static const unsigned char close_notify[] = {1, 0};
    int err;
    if (!r->out && !r->notified) {
        r->notified = true;
        (void)tls_rec_send_record(r, fd, CT_ALERT, close_notify, sizeof(close_notify), &err);
    }
}
