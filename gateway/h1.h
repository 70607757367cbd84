/* http mode: HTTP/1.1 requests routed one by one, keep-alive on both sides. */
#ifndef EG_H1_H
#define EG_H1_H

#include "gateway/net.h"

struct lsn;

void h1_accept(int fd, struct lsn *l, const struct net_addr *peer);
/* Closes client connections that sit idle between requests (drain). */
void h1_close_idle(void);

#endif
