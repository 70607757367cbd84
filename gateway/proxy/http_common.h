/* What the HTTP/1.1 mode (http_*.c) and the HTTP/2 mode (h2_*.c) share
 * about a listener's requests: the forwarding headers asked for, the head's
 * limits, and the accounting of the error responses the gateway writes. */
#ifndef EG_GATEWAY_PROXY_HTTP_COMMON_H
#define EG_GATEWAY_PROXY_HTTP_COMMON_H

#include "conf/conf.h"
#include "proto/http.h"

/* FWD_* bits (proto/forward.h) for CL's forward_for and forwarded. */
unsigned http_fwd_opts(const struct conf_listener *cl);
/* The parser's limits for CL's request heads, with its session header. */
void http_limits_of(const struct conf_listener *cl, struct http_limits *lim);
/* Counts an error response of STATUS written by the gateway itself. */
void http_count_error(int status);

#endif
