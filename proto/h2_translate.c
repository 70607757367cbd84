#include "proto/h2_translate.h"

#include <string.h>
#include <strings.h>

static bool is(const char *p, size_t n, const char *word)
{
    return strlen(word) == n && memcmp(p, word, n) == 0;
}

static bool name_is(const struct h2t_field *f, const char *word)
{
    return is(f->name, f->name_len, word);
}

/* Fields that describe the HTTP/1.1 connection, not the message (RFC 9113
 * 8.2.2): never carried from one protocol to the other. */
static bool connection_specific(const char *name, size_t n)
{
    return is(name, n, "connection") || is(name, n, "keep-alive") ||
           is(name, n, "proxy-connection") || is(name, n, "transfer-encoding") ||
           is(name, n, "upgrade") || is(name, n, "te");
}

/* CR, LF and NUL would let a field smuggle lines into the HTTP/1.1 head;
 * HTTP/2 forbids them too (RFC 9113 8.2.1). */
static bool clean(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] == '\r' || p[i] == '\n' || p[i] == '\0')
            return false;
    return true;
}

struct out {
    char *p;
    size_t cap, len;
    bool full;
};

static void put(struct out *o, const char *s, size_t n)
{
    if (o->full || n > o->cap - o->len) {
        o->full = true;
        return;
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
}

static void puts_(struct out *o, const char *s) { put(o, s, strlen(s)); }

static void put_field(struct out *o, const char *name, size_t nlen, const char *v, size_t vlen)
{
    put(o, name, nlen);
    put(o, ": ", 2);
    put(o, v, vlen);
    put(o, "\r\n", 2);
}

static int refuse(struct h2t_req_info *info, const char *why)
{
    info->err = why;
    return -1;
}

int h2t_request_head(const struct h2t_field *f, size_t n, bool body, char *out, size_t cap,
                     struct h2t_req_info *info)
{
    const struct h2t_field *method = NULL, *path = NULL, *authority = NULL;
    memset(info, 0, sizeof(*info));
    size_t i = 0;
    for (; i < n && f[i].name_len > 0 && f[i].name[0] == ':'; i++) {
        if (name_is(&f[i], ":method"))
            method = &f[i];
        else if (name_is(&f[i], ":path"))
            path = &f[i];
        else if (name_is(&f[i], ":authority"))
            authority = &f[i];
    }
    if (!method || !path || method->value_len == 0 || path->value_len == 0)
        return refuse(info, "missing :method or :path");
    for (size_t k = 0; k < n; k++) {
        if (k >= i && f[k].name_len > 0 && f[k].name[0] == ':')
            return refuse(info, "pseudo-header after a regular field");
        if (f[k].name_len == 0 || !clean(f[k].name, f[k].name_len) ||
            !clean(f[k].value, f[k].value_len))
            return refuse(info, "invalid byte in a field");
    }
    if (!clean(method->value, method->value_len) || memchr(path->value, ' ', path->value_len) ||
        memchr(method->value, ' ', method->value_len))
        return refuse(info, "invalid request line");
    struct out o = {.p = out, .cap = cap};
    put(&o, method->value, method->value_len);
    put(&o, " ", 1);
    put(&o, path->value, path->value_len);
    puts_(&o, " HTTP/1.1\r\n");
    if (authority)
        put_field(&o, "host", 4, authority->value, authority->value_len);
    bool cookies = false;
    for (size_t k = i; k < n; k++) {
        if (name_is(&f[k], "cookie")) {
            cookies = true;
            continue;
        }
        if ((authority && name_is(&f[k], "host")) ||
            connection_specific(f[k].name, f[k].name_len))
            continue;
        if (name_is(&f[k], "content-length"))
            info->has_cl = true;
        put_field(&o, f[k].name, f[k].name_len, f[k].value, f[k].value_len);
    }
    /* One Cookie line (RFC 9113 8.2.3): HTTP/1.1 servers expect one. */
    if (cookies) {
        puts_(&o, "cookie: ");
        bool first = true;
        for (size_t k = i; k < n; k++)
            if (name_is(&f[k], "cookie")) {
                if (!first)
                    put(&o, "; ", 2);
                put(&o, f[k].value, f[k].value_len);
                first = false;
            }
        put(&o, "\r\n", 2);
    }
    if (body && !info->has_cl) {
        puts_(&o, "transfer-encoding: chunked\r\n");
        info->chunked = true;
    } else if (!body && !info->has_cl &&
               (is(method->value, method->value_len, "POST") ||
                is(method->value, method->value_len, "PUT") ||
                is(method->value, method->value_len, "PATCH"))) {
        /* Some servers want a length on every request that may carry one. */
        puts_(&o, "content-length: 0\r\n");
    }
    put(&o, "\r\n", 2);
    return o.full ? 0 : (int)o.len;
}

bool h2t_trailer_allowed(const char *name, size_t len)
{
    static const char *const banned[] = {
        "content-length", "transfer-encoding", "host", "connection", "keep-alive",
        "proxy-connection", "upgrade", "te", "trailer", "content-type", "content-encoding",
        "content-range", "authorization", "set-cookie", "cookie",
    };
    if (len == 0 || name[0] == ':')
        return false;
    for (size_t i = 0; i < ARRAY_LEN(banned); i++)
        if (is(name, len, banned[i]))
            return false;
    return true;
}

size_t h2t_chunk_head(char *out, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    char tmp[16];
    size_t n = 0;
    do {
        tmp[n++] = hex[len & 15];
        len >>= 4;
    } while (len);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    out[n] = '\r';
    out[n + 1] = '\n';
    return n + 2;
}

static void lower(char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] >= 'A' && p[i] <= 'Z')
            p[i] = (char)(p[i] + 32);
}

/* Whether the Connection fields of M name NAME (hop-by-hop, RFC 9110 7.6.1). */
static bool named_by_connection(const struct http_msg *m, const char *head, const char *name,
                                size_t n)
{
    for (int i = 0; i < m->nhdrs; i++) {
        const struct http_hdr *c = &m->hdrs[i];
        if (c->kind != HH_CONNECTION)
            continue;
        const char *p = head + c->val, *end = p + c->val_len, *e;
        size_t len;
        while (http_list_next(&p, end, &e, &len))
            if (len == n && strncasecmp(e, name, n) == 0)
                return true;
    }
    return false;
}

size_t h2t_response_fields(const struct http_msg *m, char *head, struct h2t_field *f,
                           size_t cap)
{
    size_t n = 0;
    for (int i = 0; i < m->nhdrs && n < cap; i++) {
        const struct http_hdr *h = &m->hdrs[i];
        char *name = head + h->name;
        lower(name, h->name_len);
        if (connection_specific(name, h->name_len) ||
            named_by_connection(m, head, name, h->name_len))
            continue;
        f[n++] = (struct h2t_field){name, head + h->val, h->name_len, h->val_len};
    }
    return n;
}

size_t h2t_request_fields(const struct http_msg *m, char *head, const char *scheme,
                          struct h2t_field *f, size_t cap)
{
    size_t n = 0;
    f[n++] = (struct h2t_field){":method", head, 7, m->method_len};
    f[n++] = (struct h2t_field){":scheme", scheme, 7, (uint32_t)strlen(scheme)};
    for (int i = 0; i < m->nhdrs; i++)
        if (m->hdrs[i].kind == HH_HOST) {
            f[n++] = (struct h2t_field){":authority", head + m->hdrs[i].val, 10,
                                        m->hdrs[i].val_len};
            break;
        }
    f[n++] = (struct h2t_field){":path", head + m->target, 5, m->target_len};
    for (int i = 0; i < m->nhdrs && n < cap; i++) {
        const struct http_hdr *h = &m->hdrs[i];
        char *name = head + h->name;
        lower(name, h->name_len);
        if (h->kind == HH_HOST || connection_specific(name, h->name_len) ||
            named_by_connection(m, head, name, h->name_len))
            continue;
        f[n++] = (struct h2t_field){name, head + h->val, h->name_len, h->val_len};
    }
    return n;
}

/* ---- chunked bodies ---- */

enum {
    UC_SIZE_FIRST, UC_SIZE, UC_EXT, UC_SIZE_LF, UC_DATA, UC_DATA_CR, UC_DATA_LF,
    UC_TRAILER_START, UC_TRAILER, UC_TRAILER_LF, UC_END_LF, UC_DONE
};

void h2t_unchunk_init(struct h2t_unchunk *u)
{
    memset(u, 0, sizeof(*u));
}

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static bool tchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static bool field_byte(unsigned char c) { return c == '\t' || (c >= ' ' && c != 0x7f); }

#define FAIL(why) return (*used = i, *out = o, u->err = (why), EG_ERR)

int h2t_unchunk(struct h2t_unchunk *u, char *p, size_t len, size_t *used, size_t *out,
                char *tr, size_t *tr_len)
{
    const unsigned char *b = (const unsigned char *)p;
    size_t i = 0, o = 0;
    while (i < len) {
        unsigned char c = b[i];
        switch (u->state) {
        case UC_SIZE_FIRST:
            if (hexval(c) < 0)
                FAIL("malformed chunk size");
            u->left = (uint64_t)hexval(c);
            u->state = UC_SIZE;
            break;
        case UC_SIZE:
            if (hexval(c) >= 0) {
                if (u->left >> 56)
                    FAIL("chunk size too large");
                u->left = u->left * 16 + (uint64_t)hexval(c);
            } else if (c == ';' || c == ' ' || c == '\t') {
                u->state = UC_EXT;
            } else if (c == '\r') {
                u->state = UC_SIZE_LF;
            } else {
                FAIL("malformed chunk size");
            }
            break;
        case UC_EXT:
            if (c == '\r')
                u->state = UC_SIZE_LF;
            else if (!field_byte(c))
                FAIL("invalid byte in chunk extension");
            else if (++u->trailer_len > H2T_MAX_TRAILER)
                FAIL("chunk extension too long");
            break;
        case UC_SIZE_LF:
            if (c != '\n')
                FAIL("bare CR after chunk size");
            u->trailer_len = 0;
            u->state = u->left ? UC_DATA : UC_TRAILER_START;
            break;
        case UC_DATA: {
            size_t take = (size_t)MIN((uint64_t)(len - i), u->left);
            if (o != i)
                memmove(p + o, p + i, take);
            o += take;
            u->left -= take;
            i += take;
            if (u->left == 0)
                u->state = UC_DATA_CR;
            continue;
        }
        case UC_DATA_CR:
            if (c != '\r')
                FAIL("chunk data longer than its size");
            u->state = UC_DATA_LF;
            break;
        case UC_DATA_LF:
            if (c != '\n')
                FAIL("bare CR after chunk data");
            u->state = UC_SIZE_FIRST;
            break;
        case UC_TRAILER_START:
            if (c == '\r') {
                u->state = UC_END_LF;
                break;
            }
            if (!tchar(c))
                FAIL("malformed trailer field");
            u->state = UC_TRAILER;
            /* fall through */
        case UC_TRAILER:
            if (*tr_len + 2 > H2T_MAX_TRAILER)
                FAIL("trailer section too large");
            if (c == '\r')
                u->state = UC_TRAILER_LF;
            else if (!field_byte(c))
                FAIL("invalid byte in trailer field");
            tr[(*tr_len)++] = (char)c;
            break;
        case UC_TRAILER_LF:
            if (c != '\n')
                FAIL("bare CR in trailer field");
            tr[(*tr_len)++] = '\n';
            u->state = UC_TRAILER_START;
            break;
        case UC_END_LF:
            if (c != '\n')
                FAIL("bare CR ending the chunked body");
            u->state = UC_DONE;
            *used = i + 1;
            *out = o;
            return EG_OK;
        case UC_DONE:
            *used = i;
            *out = o;
            return EG_OK;
        }
        i++;
    }
    *used = len;
    *out = o;
    return u->state == UC_DONE ? EG_OK : EG_AGAIN;
}

#undef FAIL

size_t h2t_trailer_fields(char *text, size_t len, struct h2t_field *f, size_t cap)
{
    size_t n = 0;
    char *p = text, *end = text + len;
    while (p < end && n < cap) {
        char *eol = memchr(p, '\n', (size_t)(end - p));
        char *line_end = eol ? eol : end;
        char *colon = memchr(p, ':', (size_t)(line_end - p));
        char *next = eol ? eol + 1 : end;
        if (!colon || colon == p) {
            p = next;
            continue;
        }
        size_t nlen = (size_t)(colon - p);
        bool ok = true;
        for (size_t k = 0; k < nlen; k++)
            ok = ok && tchar((unsigned char)p[k]);
        char *v = colon + 1, *ve = line_end;
        if (ve > v && ve[-1] == '\r')
            ve--;
        while (v < ve && (*v == ' ' || *v == '\t'))
            v++;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
            ve--;
        lower(p, nlen);
        if (ok && h2t_trailer_allowed(p, nlen))
            f[n++] = (struct h2t_field){p, v, (uint32_t)nlen, (uint32_t)(ve - v)};
        p = next;
    }
    return n;
}
