/* Socket helpers in the manner of redis' anet.c: they return EG_OK/EG_ERR
 * (or a descriptor) and write a message into the caller's buffer instead of
 * logging; the caller knows the context and logs once. */
#ifndef EG_BASE_NET_H
#define EG_BASE_NET_H

#include <stdbool.h>
#include <stdint.h>
#include <netinet/in.h>
#include <sys/socket.h>

/* An IPv4 or IPv6 address with its port: 32 bytes rather than the 132 of a
 * sockaddr_storage, since every client connection holds one. */
struct net_addr {
    union {
        sa_family_t ss_family;  /* the family of whichever is set */
        struct sockaddr sa;
        struct sockaddr_in in;
        struct sockaddr_in6 in6;
    } ss;
    socklen_t len;
};

/* Parses "IP:PORT", "[IPv6]:PORT" or "*:PORT" (any IPv4 address). */
int net_parse_addr(const char *s, struct net_addr *a, char *err, size_t errlen);
/* Splits "HOST:PORT" or "[HOST]:PORT" into its parts; HOST may be a name. */
int net_split_hostport(const char *s, char *host, size_t hostlen, uint16_t *port,
                       char *err, size_t errlen);
/* Formats an address as "IP:PORT" / "[IPv6]:PORT". */
const char *net_addr_str(const struct net_addr *a, char *buf, size_t len);
/* Formats only the IP. */
const char *net_ip_str(const struct sockaddr *sa, char *buf, size_t len);
bool net_addr_equal(const struct net_addr *a, const struct net_addr *b);
uint16_t net_addr_port(const struct net_addr *a);
/* 127.0.0.0/8, ::1, or ::ffff:127.x.y.z. */
bool net_addr_is_loopback(const struct net_addr *a);
void net_addr_set_port(struct net_addr *a, uint16_t port);

int net_listen(const struct net_addr *a, int backlog, bool reuseport, char *err, size_t errlen);
/* How net_connect sets up the socket. */
enum {
    NET_NODELAY = 1,        /* TCP_NODELAY: for sockets that carry data */
    NET_DELAYED_ACK = 2,    /* TCP_QUICKACK off: bytes go as soon as it is up, and the
                             * handshake's last ACK rides on them */
};
/* Starts a non-blocking connect with FLAGS (NET_*); returns the descriptor
 * (connected or in progress) or -1 with errno set. */
int net_connect(const struct net_addr *a, unsigned flags);
/* Pending error of a non-blocking connect (0 when it succeeded). */
int net_connect_result(int fd);
void net_set_nodelay(int fd);
/* TCP_QUICKACK: ON acknowledges at once; off lets an ACK wait (up to the
 * delayed-ACK timer) to ride on data. On a listening socket it is what
 * accepted connections start with. */
void net_set_quickack(int fd, bool on);
/* TCP_DEFER_ACCEPT on a listening socket: connections are queued for
 * accept once their first bytes arrived (or, without any, after about
 * SECONDS); 0 turns it off. */
void net_set_defer_accept(int fd, int seconds);
/* Whether ERR says this process ran out of descriptors or memory: never a
 * fault of the peer, whatever the call was. */
bool net_local_exhaustion(int err);

#endif
