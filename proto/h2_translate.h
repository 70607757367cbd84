/* HTTP/2 messages as HTTP/1.1 and back (RFC 9113 8, RFC 9112), for a
 * gateway between the two: pure functions over caller memory, no nghttp2
 * types, no allocation.
 *
 * Towards HTTP/1.1: the request line from :method and :path, Host from
 * :authority, cookie crumbs joined into one Cookie line, connection-specific
 * fields dropped, chunked framing when the length is not known, trailers as
 * the chunked body's trailer section. Towards HTTP/2: the response head's
 * fields with lowercase names, connection-specific ones and those Connection
 * names dropped; a chunked body unframed in place, its trailer section kept
 * apart to be sent as trailers. */
#ifndef EG_PROTO_H2_TRANSLATE_H
#define EG_PROTO_H2_TRANSLATE_H

#include "proto/http.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A header field, name and value not NUL-terminated. */
struct h2t_field {
    const char *name, *value;
    uint32_t name_len, value_len;
};

/* What h2t_request_head found out about a request. */
struct h2t_req_info {
    const char *err;            /* why it was refused */
    bool has_cl;                /* it carries content-length */
    bool chunked;               /* its body goes out chunked (length unknown) */
};

/* Writes into OUT (CAP bytes) the HTTP/1.1 head of the HTTP/2 request whose
 * fields are F[0..N), pseudo-header fields first. BODY: DATA frames follow
 * the HEADERS. Returns the head's length; 0 when it does not fit (431),
 * -1 with INFO->err set when it cannot be one (400). */
int h2t_request_head(const struct h2t_field *f, size_t n, bool body, char *out, size_t cap,
                     struct h2t_req_info *info);

/* Whether a trailer field may be passed on (not framing, routing or
 * connection-specific). NAME is lowercase. */
bool h2t_trailer_allowed(const char *name, size_t len);

/* "SIZE\r\n" for a chunk of LEN bytes, into OUT (at least 20 bytes);
 * returns its length. */
size_t h2t_chunk_head(char *out, size_t len);

/* The fields of the response head parsed into M (HEAD its first byte, every
 * header kept: M's hdr_cap at least its nhdrs) for HTTP/2, in F (CAP
 * entries): names lowercased in HEAD, hop-by-hop fields dropped. Returns
 * how many. */
size_t h2t_response_fields(const struct http_msg *m, char *head, struct h2t_field *f,
                           size_t cap);

/* The fields of the HTTP/1.1 request head parsed into M (HEAD its first byte,
 * every header kept) for an HTTP/2 server, in F (CAP entries, at least 4):
 * :method, :scheme (SCHEME), :authority (from Host), :path, then the other
 * fields with lowercase names (in HEAD), hop-by-hop ones dropped. Returns
 * how many. */
size_t h2t_request_fields(const struct http_msg *m, char *head, const char *scheme,
                          struct h2t_field *f, size_t cap);

/* A chunked body undone in place. */
struct h2t_unchunk {
    uint8_t state;
    uint64_t left;              /* bytes left in the current chunk */
    uint32_t trailer_len;       /* trailer section bytes so far */
    const char *err;
};

#define H2T_MAX_TRAILER 8192

void h2t_unchunk_init(struct h2t_unchunk *u);
/* Consumes the chunked body bytes P[0..LEN): their payload is moved to the
 * front of P (*OUT bytes), their trailer section appended to TR (*TR_LEN
 * bytes so far, at most H2T_MAX_TRAILER: TR has that room), as
 * "name: value\r\n" lines. *USED: bytes consumed. EG_OK at the end of the
 * body (bytes after *USED are not its own), EG_AGAIN when more is needed,
 * EG_ERR on a malformed body (U->err). */
int h2t_unchunk(struct h2t_unchunk *u, char *p, size_t len, size_t *used, size_t *out,
                char *tr, size_t *tr_len);

/* The fields of a trailer section as h2t_unchunk keeps it (TEXT, LEN),
 * names lowercased in place, those that may not be passed on dropped, in F
 * (CAP entries). Returns how many. */
size_t h2t_trailer_fields(char *text, size_t len, struct h2t_field *f, size_t cap);

#endif
