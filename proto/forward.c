#include "proto/forward.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

/* Hop-by-hop headers are not forwarded (an upgrade keeps Connection and
 * Upgrade: the server needs them), nor X-Forwarded-Proto when we set it. */
static bool dropped(const struct fwd *f, const struct http_msg *req, const struct http_hdr *h)
{
    bool upgrade = req->flags & HF_CONN_UPGRADE;
    switch (h->kind) {
    case HH_CONNECTION:
    case HH_UPGRADE:
        return !upgrade;
    case HH_KEEP_ALIVE:
    case HH_PROXY_CONNECTION:
    case HH_TE:
    case HH_HOP:
        return true;
    case HH_X_FORWARDED_PROTO:
        return f->opts & FWD_FOR;
    default:
        return false;
    }
}

/* Headers the Connection header names are hop-by-hop too (RFC 9110 7.6.1).
 * Only ordinary ones: a client naming Content-Length or Host there must not
 * be able to strip what frames or routes its request. */
static void mark_connection_listed(struct http_msg *req, const char *head)
{
    for (int i = 0; i < req->nhdrs; i++) {
        const struct http_hdr *c = &req->hdrs[i];
        if (c->kind != HH_CONNECTION)
            continue;
        const char *p = head + c->val, *end = p + c->val_len, *e;
        size_t n;
        while (http_list_next(&p, end, &e, &n))
            for (int k = 0; k < req->nhdrs && n > 0; k++) {
                struct http_hdr *h = &req->hdrs[k];
                if (h->kind == HH_OTHER && h->name_len == n &&
                    strncasecmp(head + h->name, e, n) == 0)
                    h->kind = HH_HOP;
            }
    }
}

/* Appends the pieces in order. They always fit (xtra is sized for the
 * longest address) and this runs on every request: no printf. */
static size_t put(char *dst, size_t at, const char *const *parts, int n)
{
    for (int i = 0; i < n; i++) {
        size_t l = strlen(parts[i]);
        memcpy(dst + at, parts[i], l);
        at += l;
    }
    return at;
}

int fwd_prepare(struct fwd *f, struct http_msg *req, const char *head, unsigned opts,
                const char *ip, bool tls)
{
    mark_connection_listed(req, head);
    f->opts = (uint8_t)opts;
    const char *proto = tls ? "https" : "http";
    size_t len = 0;
    f->xff_hdr = -1;
    f->xa_len = 0;
    if (opts & FWD_FOR) {
        for (int i = 0; i < req->nhdrs; i++)
            if (req->hdrs[i].kind == HH_X_FORWARDED_FOR)
                f->xff_hdr = (int16_t)i;
        if (f->xff_hdr >= 0) {
            bool empty = req->hdrs[f->xff_hdr].val_len == 0;
            len = put(f->xtra, len, (const char *[]){empty ? "" : ", ", ip}, 2);
            f->xa_len = (uint8_t)len;
        } else {
            len = put(f->xtra, len, (const char *[]){"X-Forwarded-For: ", ip, "\r\n"}, 3);
        }
        len = put(f->xtra, len, (const char *[]){"X-Forwarded-Proto: ", proto, "\r\n"}, 3);
    }
    if (req->minor == 0 && (req->flags & HF_CONN_KA) && !(req->flags & HF_CONN_UPGRADE))
        len = put(f->xtra, len, (const char *[]){"Connection: keep-alive\r\n"}, 1);
    if (opts & FWD_FORWARDED) {
        bool v6 = strchr(ip, ':') != NULL;
        len += (size_t)snprintf(f->xtra + len, sizeof(f->xtra) - len,
                                "Forwarded: for=%s%s%s%s;proto=%s\r\n", v6 ? "\"[" : "", ip,
                                v6 ? "]" : "", v6 ? "\"" : "", proto);
    }
    f->xb_len = (uint8_t)(len - f->xa_len);
    int n = 0;
    for (int i = 0; i < req->nhdrs; i++)
        n += dropped(f, req, &req->hdrs[i]);
    return n;
}

int fwd_head(const struct fwd *f, const struct http_msg *req, const char *head,
             struct iovec *iov, int n)
{
    uint32_t from = 0;
    for (int i = 0; i < req->nhdrs; i++) {
        const struct http_hdr *h = &req->hdrs[i];
        if (dropped(f, req, h)) {
            n = iov_add(iov, n, head + from, h->line - from);
            from = h->line + h->line_len;
        } else if (i == f->xff_hdr) {
            uint32_t end = h->val + h->val_len;
            n = iov_add(iov, n, head + from, end - from);
            n = iov_add(iov, n, f->xtra, f->xa_len);
            from = end;
        }
    }
    /* Our header lines go just before the empty line ending the head. */
    uint32_t last = req->head_len - 2;
    n = iov_add(iov, n, head + from, last - from);
    n = iov_add(iov, n, f->xtra + f->xa_len, f->xb_len);
    return iov_add(iov, n, head + last, 2);
}
