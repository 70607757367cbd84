#include "base/net.h"
#include "base/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int net_split_hostport(const char *s, char *host, size_t hostlen, uint16_t *port,
                       char *err, size_t errlen)
{
    const char *colon, *h = s;
    size_t hl;
    if (*s == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':') {
            snprintf(err, errlen, "\"%s\": expected [IPv6]:PORT", s);
            return EG_ERR;
        }
        h = s + 1;
        hl = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon) {
            snprintf(err, errlen, "\"%s\": expected HOST:PORT", s);
            return EG_ERR;
        }
        hl = (size_t)(colon - s);
    }
    if (hl == 0 || hl >= hostlen) {
        snprintf(err, errlen, "\"%s\": bad host", s);
        return EG_ERR;
    }
    char *end;
    errno = 0;
    long p = strtol(colon + 1, &end, 10);
    if (colon[1] == '\0' || *end != '\0' || errno || p < 0 || p > 65535) {
        snprintf(err, errlen, "\"%s\": bad port", s);
        return EG_ERR;
    }
    memcpy(host, h, hl);
    host[hl] = '\0';
    *port = (uint16_t)p;
    return EG_OK;
}

int net_parse_addr(const char *s, struct net_addr *a, char *err, size_t errlen)
{
    char host[256];
    uint16_t port;
    if (net_split_hostport(s, host, sizeof(host), &port, err, errlen) != EG_OK)
        return EG_ERR;
    memset(a, 0, sizeof(*a));
    struct sockaddr_in *in = (struct sockaddr_in *)&a->ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&a->ss;
    if (strcmp(host, "*") == 0) {
        in->sin_family = AF_INET;
        in->sin_addr.s_addr = htonl(INADDR_ANY);
        in->sin_port = htons(port);
        a->len = sizeof(*in);
    } else if (inet_pton(AF_INET, host, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        in->sin_port = htons(port);
        a->len = sizeof(*in);
    } else if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(port);
        a->len = sizeof(*in6);
    } else {
        snprintf(err, errlen, "\"%s\": not a numeric IP address", host);
        return EG_ERR;
    }
    return EG_OK;
}

const char *net_ip_str(const struct sockaddr *sa, char *buf, size_t len)
{
    const void *src = sa->sa_family == AF_INET6
                          ? (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr
                          : (const void *)&((const struct sockaddr_in *)sa)->sin_addr;
    if (!inet_ntop(sa->sa_family, src, buf, (socklen_t)len))
        snprintf(buf, len, "?");
    return buf;
}

const char *net_addr_str(const struct net_addr *a, char *buf, size_t len)
{
    char ip[INET6_ADDRSTRLEN];
    net_ip_str((const struct sockaddr *)&a->ss, ip, sizeof(ip));
    if (a->ss.ss_family == AF_INET6)
        snprintf(buf, len, "[%s]:%u", ip, net_addr_port(a));
    else
        snprintf(buf, len, "%s:%u", ip, net_addr_port(a));
    return buf;
}

uint16_t net_addr_port(const struct net_addr *a)
{
    if (a->ss.ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)&a->ss)->sin6_port);
    return ntohs(((const struct sockaddr_in *)&a->ss)->sin_port);
}

void net_addr_set_port(struct net_addr *a, uint16_t port)
{
    if (a->ss.ss_family == AF_INET6)
        ((struct sockaddr_in6 *)&a->ss)->sin6_port = htons(port);
    else
        ((struct sockaddr_in *)&a->ss)->sin_port = htons(port);
}

bool net_addr_equal(const struct net_addr *a, const struct net_addr *b)
{
    return a->len == b->len && memcmp(&a->ss, &b->ss, a->len) == 0;
}

void net_set_nodelay(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

int net_listen(const struct net_addr *a, int backlog, bool reuseport, char *err, size_t errlen)
{
    char as[64];
    int fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -1;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0) {
        snprintf(err, errlen, "SO_REUSEPORT: %s", strerror(errno));
        close(fd);
        return -1;
    }
    if (a->ss.ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    /* Accepted sockets inherit it: no setsockopt per connection. */
    net_set_nodelay(fd);
    if (bind(fd, (const struct sockaddr *)&a->ss, a->len) < 0 || listen(fd, backlog) < 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", net_addr_str(a, as, sizeof(as)),
                 strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

void net_set_quickack(int fd, bool on)
{
    int v = on;
    setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &v, sizeof(v));
}

void net_set_defer_accept(int fd, int seconds)
{
    setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &seconds, sizeof(seconds));
}

int net_connect(const struct net_addr *a, unsigned flags)
{
    int fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (flags & NET_NODELAY)
        net_set_nodelay(fd);
    if (flags & NET_DELAYED_ACK)
        net_set_quickack(fd, false);
    if (connect(fd, (const struct sockaddr *)&a->ss, a->len) < 0 && errno != EINPROGRESS) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

int net_connect_result(int fd)
{
    int e = 0;
    socklen_t l = sizeof(e);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &l) < 0)
        return errno;
    return e;
}

bool net_local_exhaustion(int err)
{
    return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM;
}

bool net_addr_is_loopback(const struct net_addr *a)
{
    if (a->ss.ss_family == AF_INET)
        return (ntohl(a->ss.in.sin_addr.s_addr) >> 24) == 127;
    if (a->ss.ss_family != AF_INET6)
        return false;
    const struct in6_addr *v6 = &a->ss.in6.sin6_addr;
    return IN6_IS_ADDR_LOOPBACK(v6) || (IN6_IS_ADDR_V4MAPPED(v6) && v6->s6_addr[12] == 127);
}
