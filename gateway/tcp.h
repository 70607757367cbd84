/* tcp mode: a byte stream between client and server, with transparent
 * connect-failover while the server has not spoken yet. */
#ifndef EG_TCP_H
#define EG_TCP_H

#include "gateway/net.h"

struct lsn;

void tcp_accept(int fd, struct lsn *l, const struct net_addr *peer);

#endif
