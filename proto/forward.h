/* An http request on its way to a server: which header lines stay behind
 * (hop-by-hop ones), what is added (X-Forwarded-For appended to the client's
 * own, X-Forwarded-Proto, Forwarded), all as iovecs over the request's own
 * bytes so that nothing is copied. */
#ifndef EG_PROTO_FORWARD_H
#define EG_PROTO_FORWARD_H

#include "proto/http.h"

#include <sys/uio.h>

/* What a listener adds (fwd_prepare's OPTS). */
#define FWD_FOR       0x01      /* X-Forwarded-For and X-Forwarded-Proto */
#define FWD_FORWARDED 0x02      /* RFC 7239 Forwarded */

struct fwd {
    uint8_t opts;               /* FWD_* */
    int16_t xff_hdr;            /* last X-Forwarded-For: the client is appended to it */
    uint8_t xa_len;             /* xtra[0, xa_len): ", <client>" appended there */
    uint8_t xb_len;             /* xtra[xa_len, +xb_len): header lines added */
    char xtra[224];             /* sized for the longest address in every line */
};

static inline int iov_add(struct iovec *v, int n, const void *p, size_t len)
{
    if (len > 0)
        v[n++] = (struct iovec){(void *)p, len};
    return n;
}

/* Prepares the request REQ (its head at HEAD) from CLIENT_IP, adding what
 * OPTS (FWD_*) asks for. Returns how many header lines stay behind: the head
 * then takes at most that many plus 5 segments. An HTTP/1.0 request that
 * asked for keep-alive keeps asking the server for it: its Connection
 * header is hop-by-hop and stays behind. */
int fwd_prepare(struct fwd *f, struct http_msg *req, const char *head, unsigned opts,
                const char *client_ip, bool tls);
/* Appends the outgoing head's segments to IOV (N used); returns the count. */
int fwd_head(const struct fwd *f, const struct http_msg *req, const char *head,
             struct iovec *iov, int n);

#endif
