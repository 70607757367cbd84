/* http mode: HTTP/1.1 requests routed one by one, keep-alive on both sides. */
#ifndef EG_GATEWAY_PROXY_HTTP_SESSION_H
#define EG_GATEWAY_PROXY_HTTP_SESSION_H

#include "base/net.h"

struct listener;

void http_accept(int fd, struct listener *l, const struct net_addr *peer);
/* Closes client connections that sit idle between requests (drain). */
void http_close_idle(void);

#endif
