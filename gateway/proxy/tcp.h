/* tcp mode: a byte stream between client and server, with transparent
 * connect-failover while the server has not spoken yet. */
#ifndef EG_GATEWAY_PROXY_TCP_H
#define EG_GATEWAY_PROXY_TCP_H

#include "base/net.h"

struct listener;

void tcp_accept(int fd, struct listener *l, const struct net_addr *peer);

#endif
