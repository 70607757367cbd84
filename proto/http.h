/* Layer proto: pure protocol code (HTTP/1.1, PROXY protocol, forwarding
 * headers): no loop, no sockets, no configuration. It may use base. */
/* HTTP/1.1 message parsing (RFC 9112), incremental and strict.
 *
 * The parser never copies: it records offsets into the caller's buffer,
 * counted from the first byte of the message. It can be fed any split of
 * the input: call http_parse() again with the same start and a longer
 * length, it resumes where it stopped. Anything RFC 9112 forbids, or that
 * could make two parsers disagree on framing (request smuggling), is an
 * error with the status to answer and a short reason. */
#ifndef EG_PROTO_HTTP_H
#define EG_PROTO_HTTP_H

#include "base/util.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HTTP_MAX_HDRS 100


enum http_method {
    HTTP_GET, HTTP_HEAD, HTTP_POST, HTTP_PUT, HTTP_DELETE, HTTP_OPTIONS, HTTP_PATCH,
    HTTP_TRACE, HTTP_CONNECT, HTTP_OTHER
};

/* Headers whose meaning the gateway needs; others are only validated. */
enum http_hdr_kind {
    HH_OTHER, HH_CONTENT_LENGTH, HH_TRANSFER_ENCODING, HH_CONNECTION, HH_KEEP_ALIVE,
    HH_PROXY_CONNECTION, HH_UPGRADE, HH_HOST, HH_EXPECT, HH_IDEMPOTENCY_KEY, HH_COOKIE,
    HH_TE, HH_X_FORWARDED_FOR, HH_X_FORWARDED_PROTO, HH_FORWARDED, HH_SESSION,
    HH_HOP      /* named in Connection: hop-by-hop (set by the proxy, not the parser) */
};

struct http_hdr {
    uint16_t name, name_len;    /* offsets from the start of the message */
    uint16_t val, val_len;      /* value without surrounding whitespace */
    uint16_t line, line_len;    /* the whole line, CRLF included */
    uint8_t kind;               /* enum http_hdr_kind */
};

struct http_limits {
    uint32_t max_line;          /* request line: longer gets 414 */
    uint32_t max_head;          /* whole head: longer gets 431 */
    uint16_t max_headers;       /* more header lines gets 431 */
    const char *sess_header;    /* header whose value is the session key */
    uint16_t sess_header_len;
};

/* Message flags. */
#define HF_CHUNKED      0x0001
#define HF_HAS_CL       0x0002
#define HF_CONN_CLOSE   0x0004
#define HF_CONN_KA      0x0008
#define HF_CONN_UPGRADE 0x0010
#define HF_UPGRADE      0x0020  /* an Upgrade header is present */
#define HF_EXPECT_100   0x0040
#define HF_IDEMPOTENCY  0x0080  /* Idempotency-Key present */
#define HF_HAS_TE       0x0100
#define HF_HAS_HOST     0x0200
#define HF_HAS_HOP      0x0400  /* a Connection, Keep-Alive or Proxy-Connection header */

struct http_msg {
    /* parser state */
    uint32_t pos;
    uint8_t state;
    bool response;
    uint16_t cur;               /* header being parsed */
    /* results */
    uint8_t method;
    uint8_t minor;              /* HTTP/1.minor */
    uint16_t status;            /* responses */
    uint16_t method_len;
    uint16_t target, target_len;
    uint32_t head_len;          /* bytes up to and including the empty line */
    uint32_t line_len;          /* first line, CRLF included */
    int64_t content_length;     /* -1 when absent */
    uint16_t flags;
    uint16_t nhdrs;
    int16_t sess_hdr;           /* index of the session header, -1 none */
    int16_t cookie_hdr[4];      /* Cookie headers (they may be split), -1 none */
    struct http_hdr *hdrs;      /* caller's storage; with hdr_cap 1 (responses) */
    uint16_t hdr_cap;           /* only the header being parsed is kept */
    /* error */
    uint16_t err_status;
    const char *err;
};

/* HDRS has room for CAP headers (at least 1); headers beyond CAP are still
 * parsed and checked, but only the last one is kept. */
void http_msg_init(struct http_msg *m, bool response, struct http_hdr *hdrs, uint16_t cap);
/* Parses a head from BUF (the first byte of the message) up to LEN bytes. */
int http_parse(struct http_msg *m, const char *buf, size_t len, const struct http_limits *lim);

/* Body framing. */
enum http_body_kind { BODY_NONE, BODY_LENGTH, BODY_CHUNKED, BODY_CLOSE };

struct http_body {
    uint8_t kind;
    uint8_t state;
    uint16_t trailer_len;
    uint64_t left;              /* bytes left: of the body, or of the current chunk */
    const char *err;
};

/* Sets up framing for a request that was just parsed. */
void http_body_request(struct http_body *b, const struct http_msg *m);
/* Sets up framing for a response to a request with METHOD. */
void http_body_response(struct http_body *b, const struct http_msg *m, int method);
/* Consumes body bytes from P: *USED is how many belong to this message.
 * EG_OK when the message ended there, EG_AGAIN when more is needed,
 * EG_ERR on a malformed chunked body. */
int http_body_scan(struct http_body *b, const char *p, size_t len, size_t *used);

/* Iterates over the elements of a comma-separated header value: each call
 * sets *E and *LEN to the next one, trimmed (*LEN 0 for an empty one), and
 * returns false at the end. */
bool http_list_next(const char **p, const char *end, const char **e, size_t *len);

bool http_method_idempotent(int method);
/* Finds cookie NAME in the Cookie headers of M; sets *val and *len. */
bool http_find_cookie(const struct http_msg *m, const char *buf, const char *name, size_t nlen,
                      const char **val, size_t *len);
/* Finds the value a Set-Cookie header of the parsed response head HEAD
 * (HEAD_LEN bytes) gives cookie NAME; sets *val and *len (quotes removed). */
bool http_find_set_cookie(const char *head, size_t head_len, const char *name, size_t nlen,
                          const char **val, size_t *len);
/* Removes the hop-by-hop header lines of the parsed head HEAD (LEN bytes)
 * in place: Connection, Keep-Alive, Proxy-Connection and the headers a
 * Connection header names, except those that frame the message
 * (Content-Length, Transfer-Encoding). Returns the head's new length; it
 * still ends with the empty line. */
size_t http_drop_hop(char *head, size_t len);

#endif
