/* tcp mode: a byte stream between client and server, with transparent
 * connect-failover while the server has not spoken yet. */
#ifndef EG_GATEWAY_PROXY_TCP_H
#define EG_GATEWAY_PROXY_TCP_H

#include "gateway/proxy/client.h"

/* What tcp mode gives its client connections (see conn_accept). */
extern const struct conn_ops tcp_conn_ops;

#endif
