/* edgegatectl's HTTP/1.1 client: one request per connection to the stats
 * listener, blocking, bounded by a timeout. It is a command-line tool: it
 * has no loop to share. */
#ifndef EG_CTL_CLIENT_H
#define EG_CTL_CLIENT_H

#include "base/net.h"
#include "base/strbuf.h"

struct ctl_response {
    int status;
    struct sbuf body;
};

/* Sends METHOD PATH (with BODY as JSON when not NULL, the bearer TOKEN when
 * not NULL) to ADDR and reads the answer into RESP. EG_OK, or EG_ERR with
 * ERR saying why (cannot connect, timeout, not HTTP). */
int ctl_request(const struct net_addr *addr, const char *method, const char *path,
                const char *body, const char *token, double timeout, struct ctl_response *resp,
                char *err, size_t errlen);
/* Appends S percent-encoded (everything but letters, digits, "-._~:"). */
void ctl_path_escape(struct sbuf *b, const char *s);

#endif
