/* PROXY protocol (HAProxy's, versions 1 and 2): reading the header a
 * trusted load balancer puts before a client connection, and writing one
 * before a connection to a server. */
#ifndef EG_PROTO_PROXY_PROTOCOL_H
#define EG_PROTO_PROXY_PROTOCOL_H

#include "base/net.h"

#include <stddef.h>

#define PP_MAX_HEADER 536   /* v1 is at most 107 bytes; v2 TLVs capped here */
#define PP_BUILD_MAX 108    /* what pp_build() writes at most */

struct pp_info {
    bool local;                 /* LOCAL / UNKNOWN: keep the socket's addresses */
    struct net_addr src, dst;
};

/* Parses a header at the start of P. Returns its length (> 0), 0 when more
 * bytes are needed, or -1 when this is not a valid PROXY header. */
int pp_parse(const unsigned char *p, size_t len, struct pp_info *out);
/* Writes a header of VERSION (1 or 2) for a connection from SRC to DST into
 * OUT (PP_BUILD_MAX bytes); returns its length. An IPv4 address facing an
 * IPv6 one is written IPv4-mapped. */
size_t pp_build(int version, const struct net_addr *src, const struct net_addr *dst,
                unsigned char *out, size_t cap);

#endif
