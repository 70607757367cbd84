/* An http request on its way to a server: which header lines stay behind
 * (hop-by-hop ones), what is added (X-Forwarded-For appended to the client's
 * own, X-Forwarded-Proto, Forwarded), all as iovecs over the request's own
 * bytes so that nothing is copied. */
#ifndef EG_FWD_H
#define EG_FWD_H

#include "conf/conf-types.h"
#include "gateway/http.h"

#include <sys/uio.h>

struct fwd {
    int16_t xff_hdr;            /* last X-Forwarded-For: the client is appended to it */
    uint8_t xa_len;             /* xtra[0, xa_len): ", <client>" appended there */
    uint8_t xb_len;             /* xtra[xa_len, +xb_len): header lines added */
    char xtra[192];             /* sized for the longest address in every line */
};

static inline int iov_add(struct iovec *v, int n, const void *p, size_t len)
{
    if (len > 0)
        v[n++] = (struct iovec){(void *)p, len};
    return n;
}

/* Prepares the request REQ (its head at HEAD) from CLIENT_IP on listener
 * CL. Returns how many header lines stay behind: the head then takes at
 * most that many plus 5 segments. */
int fwd_prepare(struct fwd *f, struct http_msg *req, const char *head,
                const struct conf_listener *cl, const char *client_ip, bool tls);
/* Appends the outgoing head's segments to IOV (N used); returns the count. */
int fwd_head(const struct fwd *f, const struct http_msg *req, const char *head,
             const struct conf_listener *cl, struct iovec *iov, int n);

#endif
