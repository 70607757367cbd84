/* PROXY protocol, following haproxy's doc/proxy-protocol.txt. The parser is
 * strict: a header must be exactly what the specification allows, and
 * anything else closes the connection rather than guessing. */
#include "proto/proxy_protocol.h"
#include "base/util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const unsigned char v2sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                        0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

static bool set_addr(struct net_addr *a, int fam, const char *ip, const char *port)
{
    char *end;
    long p = strtol(port, &end, 10);
    if (*port == '\0' || *end != '\0' || p < 0 || p > 65535 || (port[0] == '0' && port[1]))
        return false;
    memset(a, 0, sizeof(*a));
    if (fam == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)&a->ss;
        if (inet_pton(AF_INET, ip, &in->sin_addr) != 1)
            return false;
        in->sin_family = AF_INET;
        in->sin_port = htons((uint16_t)p);
        a->len = sizeof(*in);
    } else {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&a->ss;
        if (inet_pton(AF_INET6, ip, &in6->sin6_addr) != 1)
            return false;
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)p);
        a->len = sizeof(*in6);
    }
    return true;
}

/* "PROXY TCP4 1.2.3.4 5.6.7.8 1111 2222\r\n" or "PROXY UNKNOWN ...\r\n" */
static int parse_v1(const unsigned char *p, size_t len, struct pp_info *out)
{
    size_t n = MIN(len, (size_t)107);
    const unsigned char *crlf = NULL;
    for (size_t i = 0; i + 1 < n; i++)
        if (p[i] == '\r' && p[i + 1] == '\n') {
            crlf = p + i;
            break;
        }
    if (!crlf)
        return len >= 107 ? -1 : 0;
    char line[108];
    size_t ll = (size_t)(crlf - p);
    memcpy(line, p, ll);
    line[ll] = '\0';
    for (size_t i = 0; i < ll; i++)
        if ((unsigned char)line[i] < 0x20 || (unsigned char)line[i] > 0x7e)
            return -1;
    char *f[7];
    int nf = 0;
    for (char *tok = line, *sp; nf < 7; tok = sp + 1) {
        f[nf++] = tok;
        sp = strchr(tok, ' ');
        if (!sp)
            break;
        *sp = '\0';
    }
    if (nf < 2 || strcmp(f[0], "PROXY") != 0)
        return -1;
    memset(out, 0, sizeof(*out));
    if (strcmp(f[1], "UNKNOWN") == 0) {
        out->local = true;
        return (int)ll + 2;
    }
    int fam = strcmp(f[1], "TCP4") == 0 ? AF_INET : strcmp(f[1], "TCP6") == 0 ? AF_INET6 : 0;
    if (!fam || nf != 6 || !set_addr(&out->src, fam, f[2], f[4]) ||
        !set_addr(&out->dst, fam, f[3], f[5]))
        return -1;
    return (int)ll + 2;
}

static int parse_v2(const unsigned char *p, size_t len, struct pp_info *out)
{
    if (len < 16)
        return 0;
    int ver = p[12] >> 4, cmd = p[12] & 0x0f, fam = p[13];
    size_t body = (size_t)p[14] << 8 | p[15];
    if (ver != 2 || cmd > 1 || 16 + body > PP_MAX_HEADER)
        return -1;
    if (len < 16 + body)
        return 0;
    memset(out, 0, sizeof(*out));
    const unsigned char *b = p + 16;
    if (cmd == 0 || fam == 0x00) { /* LOCAL, or UNSPEC: health checks of the balancer */
        out->local = true;
        return (int)(16 + body);
    }
    if (fam == 0x11 && body >= 12) {
        struct sockaddr_in *s = (struct sockaddr_in *)&out->src.ss;
        struct sockaddr_in *d = (struct sockaddr_in *)&out->dst.ss;
        s->sin_family = d->sin_family = AF_INET;
        memcpy(&s->sin_addr, b, 4);
        memcpy(&d->sin_addr, b + 4, 4);
        memcpy(&s->sin_port, b + 8, 2);
        memcpy(&d->sin_port, b + 10, 2);
        out->src.len = out->dst.len = sizeof(*s);
    } else if (fam == 0x21 && body >= 36) {
        struct sockaddr_in6 *s = (struct sockaddr_in6 *)&out->src.ss;
        struct sockaddr_in6 *d = (struct sockaddr_in6 *)&out->dst.ss;
        s->sin6_family = d->sin6_family = AF_INET6;
        memcpy(&s->sin6_addr, b, 16);
        memcpy(&d->sin6_addr, b + 16, 16);
        memcpy(&s->sin6_port, b + 32, 2);
        memcpy(&d->sin6_port, b + 34, 2);
        out->src.len = out->dst.len = sizeof(*s);
    } else {
        return -1; /* UDP and UNIX sockets are not for us */
    }
    return (int)(16 + body);
}

int pp_parse(const unsigned char *p, size_t len, struct pp_info *out)
{
    size_t n = MIN(len, sizeof(v2sig));
    if (memcmp(p, v2sig, n) == 0)
        return n < sizeof(v2sig) ? 0 : parse_v2(p, len, out);
    n = MIN(len, (size_t)6);
    if (memcmp(p, "PROXY ", n) == 0)
        return n < 6 ? 0 : parse_v1(p, len, out);
    return -1;
}

/* ::ffff:a.b.c.d */
static struct net_addr v4_mapped(const struct net_addr *a)
{
    const struct sockaddr_in *in = (const void *)&a->ss;
    struct net_addr m = {.len = sizeof(struct sockaddr_in6)};
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&m.ss;
    in6->sin6_family = AF_INET6;
    in6->sin6_port = in->sin_port;
    in6->sin6_addr.s6_addr[10] = in6->sin6_addr.s6_addr[11] = 0xff;
    memcpy(&in6->sin6_addr.s6_addr[12], &in->sin_addr, 4);
    return m;
}

size_t pp_build(int version, const struct net_addr *src, const struct net_addr *dst,
                unsigned char *out, size_t cap)
{
    struct net_addr ms, md;
    if (src->ss.ss_family != dst->ss.ss_family) {
        if (src->ss.ss_family == AF_INET)
            src = (ms = v4_mapped(src), &ms);
        else
            dst = (md = v4_mapped(dst), &md);
    }
    int fam = src->ss.ss_family;
    if (cap < PP_BUILD_MAX)
        return 0;
    if (version == 1) {
        char s[64], d[64];
        net_ip_str((const struct sockaddr *)&src->ss, s, sizeof(s));
        net_ip_str((const struct sockaddr *)&dst->ss, d, sizeof(d));
        int n = snprintf((char *)out, cap, "PROXY %s %s %s %u %u\r\n",
                         fam == AF_INET ? "TCP4" : "TCP6", s, d, net_addr_port(src),
                         net_addr_port(dst));
        return n > 0 ? (size_t)n : 0;
    }
    memcpy(out, v2sig, sizeof(v2sig));
    out[12] = 0x21; /* version 2, PROXY */
    size_t body;
    if (fam == AF_INET) {
        const struct sockaddr_in *s = (const void *)&src->ss, *d = (const void *)&dst->ss;
        out[13] = 0x11;
        body = 12;
        memcpy(out + 16, &s->sin_addr, 4);
        memcpy(out + 20, &d->sin_addr, 4);
        memcpy(out + 24, &s->sin_port, 2);
        memcpy(out + 26, &d->sin_port, 2);
    } else {
        const struct sockaddr_in6 *s = (const void *)&src->ss, *d = (const void *)&dst->ss;
        out[13] = 0x21;
        body = 36;
        memcpy(out + 16, &s->sin6_addr, 16);
        memcpy(out + 32, &d->sin6_addr, 16);
        memcpy(out + 48, &s->sin6_port, 2);
        memcpy(out + 50, &d->sin6_port, 2);
    }
    out[14] = 0;
    out[15] = (unsigned char)body;
    return 16 + body;
}
