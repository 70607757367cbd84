/* HTTP/1.1 parser. One byte-driven state machine for request and status
 * lines and header fields, one for chunked bodies. Each header is checked
 * when its line ends; framing rules that need the whole head (Content-Length
 * against Transfer-Encoding, Host) are checked when the head ends. */
#include "proto/http.h"
#include "base/util.h"

#include <string.h>
#include <strings.h>

enum {
    ST_METHOD, ST_TARGET, ST_VERSION, ST_LINE_LF,
    ST_RVERSION, ST_STATUS, ST_REASON,
    ST_HDR_START, ST_HDR_NAME, ST_HDR_OWS, ST_HDR_VALUE, ST_HDR_LF, ST_END_LF, ST_DONE
};

/* Character classes, from RFC 9110 5.6.2 (tchar) and 5.5 (field values). */
#define C_TCHAR 1
#define C_VCHAR 2   /* visible ASCII */
#define C_FIELD 4   /* field-value byte: VCHAR, obs-text, SP, HTAB */
#define C_HEX 8

static unsigned char cls[256];

static void init_classes(void)
{
    for (int c = 0x21; c < 0x7f; c++)
        cls[c] |= C_VCHAR | C_FIELD;
    for (int c = 0x80; c < 0x100; c++)
        cls[c] |= C_FIELD;
    cls[' '] |= C_FIELD;
    cls['\t'] |= C_FIELD;
    for (const char *s = "!#$%&'*+-.^_`|~"; *s; s++)
        cls[(unsigned char)*s] |= C_TCHAR;
    for (int c = '0'; c <= '9'; c++)
        cls[c] |= C_TCHAR | C_HEX;
    for (int c = 'a'; c <= 'z'; c++)
        cls[c] |= C_TCHAR, cls[c - 32] |= C_TCHAR;
    for (int c = 'a'; c <= 'f'; c++)
        cls[c] |= C_HEX, cls[c - 32] |= C_HEX;
}

static inline bool is_tchar(unsigned char c) { return cls[c] & C_TCHAR; }

void http_msg_init(struct http_msg *m, bool response, struct http_hdr *hdrs, uint16_t cap)
{
    m->hdrs = hdrs;
    m->hdr_cap = cap;
    if (!cls['a'])
        init_classes();
    m->pos = 0;
    m->state = response ? ST_RVERSION : ST_METHOD;
    m->response = response;
    m->cur = 0;
    m->method = HTTP_OTHER;
    m->minor = 1;
    m->status = 0;
    m->method_len = 0;
    m->target = m->target_len = 0;
    m->head_len = m->line_len = 0;
    m->content_length = -1;
    m->flags = 0;
    m->nhdrs = 0;
    m->sess_hdr = -1;
    for (size_t i = 0; i < ARRAY_LEN(m->cookie_hdr); i++)
        m->cookie_hdr[i] = -1;
    m->err_status = 0;
    m->err = NULL;
}

static int fail(struct http_msg *m, int status, const char *why)
{
    m->err_status = (uint16_t)status;
    m->err = why;
    return EG_ERR;
}

static const struct {
    const char *name;
    uint8_t len, method;
} methods[] = {
    {"GET", 3, HTTP_GET}, {"HEAD", 4, HTTP_HEAD}, {"POST", 4, HTTP_POST},
    {"PUT", 3, HTTP_PUT}, {"DELETE", 6, HTTP_DELETE}, {"OPTIONS", 7, HTTP_OPTIONS},
    {"PATCH", 5, HTTP_PATCH}, {"TRACE", 5, HTTP_TRACE}, {"CONNECT", 7, HTTP_CONNECT},
};

bool http_method_idempotent(int method)
{
    return method == HTTP_GET || method == HTTP_HEAD || method == HTTP_OPTIONS ||
           method == HTTP_PUT || method == HTTP_DELETE || method == HTTP_TRACE;
}

static void set_method(struct http_msg *m, const char *buf)
{
    for (size_t i = 0; i < ARRAY_LEN(methods); i++)
        if (m->method_len == methods[i].len && memcmp(buf, methods[i].name, methods[i].len) == 0) {
            m->method = methods[i].method;
            return;
        }
    m->method = HTTP_OTHER;
}

static int parse_version(struct http_msg *m, const char *v, size_t n)
{
    if (n == 8 && memcmp(v, "HTTP/1.", 7) == 0 && (v[7] == '0' || v[7] == '1')) {
        m->minor = (uint8_t)(v[7] - '0');
        return EG_OK;
    }
    if (n == 8 && memcmp(v, "HTTP/", 5) == 0 && v[5] >= '0' && v[5] <= '9' && v[6] == '.' &&
        v[7] >= '0' && v[7] <= '9')
        return fail(m, 505, "HTTP version not supported");
    return fail(m, 400, "malformed HTTP version");
}

static const struct {
    const char *name;
    uint8_t len, kind;
} known_hdrs[] = {
    {"content-length", 14, HH_CONTENT_LENGTH}, {"transfer-encoding", 17, HH_TRANSFER_ENCODING},
    {"connection", 10, HH_CONNECTION}, {"keep-alive", 10, HH_KEEP_ALIVE},
    {"proxy-connection", 16, HH_PROXY_CONNECTION}, {"upgrade", 7, HH_UPGRADE},
    {"host", 4, HH_HOST}, {"expect", 6, HH_EXPECT}, {"idempotency-key", 15, HH_IDEMPOTENCY_KEY},
    {"cookie", 6, HH_COOKIE}, {"te", 2, HH_TE}, {"x-forwarded-for", 15, HH_X_FORWARDED_FOR},
    {"x-forwarded-proto", 17, HH_X_FORWARDED_PROTO}, {"forwarded", 9, HH_FORWARDED},
};

static int classify(const char *name, size_t len)
{
    for (size_t i = 0; i < ARRAY_LEN(known_hdrs); i++)
        if (known_hdrs[i].len == len && strncasecmp(name, known_hdrs[i].name, len) == 0)
            return known_hdrs[i].kind;
    return HH_OTHER;
}

static bool is_session_header(const struct http_hdr *h, const char *buf,
                              const struct http_limits *lim)
{
    return lim->sess_header && h->name_len == lim->sess_header_len &&
           strncasecmp(buf + h->name, lim->sess_header, h->name_len) == 0;
}

bool http_list_next(const char **p, const char *end, const char **e, size_t *len)
{
    const char *s = *p;
    if (s > end)
        return false;
    while (s < end && (*s == ' ' || *s == '\t'))
        s++;
    const char *start = s;
    while (s < end && *s != ',')
        s++;
    const char *stop = s;
    while (stop > start && (stop[-1] == ' ' || stop[-1] == '\t'))
        stop--;
    *e = start;
    *len = (size_t)(stop - start);
    *p = s + 1;
    return true;
}

static bool elem_is(const char *e, size_t len, const char *word)
{
    return strlen(word) == len && strncasecmp(e, word, len) == 0;
}

static int hdr_content_length(struct http_msg *m, const char *v, size_t n)
{
    if (m->flags & HF_HAS_CL)
        return fail(m, 400, "repeated Content-Length");
    if (n == 0 || n > 18)
        return fail(m, 400, "invalid Content-Length");
    int64_t cl = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return fail(m, 400, "invalid Content-Length");
        cl = cl * 10 + (v[i] - '0');
    }
    m->content_length = cl;
    m->flags |= HF_HAS_CL;
    return EG_OK;
}

/* Only a list whose last coding is chunked, with chunked nowhere else,
 * frames a body unambiguously. */
static int hdr_transfer_encoding(struct http_msg *m, const char *v, size_t n)
{
    const char *p = v, *end = v + n, *e;
    size_t len;
    m->flags |= HF_HAS_TE;
    while (http_list_next(&p, end, &e, &len)) {
        if (len == 0)
            return fail(m, 400, "empty Transfer-Encoding element");
        for (size_t i = 0; i < len; i++)
            if (!is_tchar((unsigned char)e[i]))
                return fail(m, 400, "invalid Transfer-Encoding");
        if (m->flags & HF_CHUNKED)
            return fail(m, 400, "chunked is not the final transfer coding");
        if (elem_is(e, len, "chunked"))
            m->flags |= HF_CHUNKED;
    }
    return EG_OK;
}

static void hdr_connection(struct http_msg *m, const char *v, size_t n)
{
    const char *p = v, *end = v + n, *e;
    size_t len;
    while (http_list_next(&p, end, &e, &len)) {
        if (elem_is(e, len, "close"))
            m->flags |= HF_CONN_CLOSE;
        else if (elem_is(e, len, "keep-alive"))
            m->flags |= HF_CONN_KA;
        else if (elem_is(e, len, "upgrade"))
            m->flags |= HF_CONN_UPGRADE;
    }
}

static inline struct http_hdr *cur_hdr(struct http_msg *m)
{
    return &m->hdrs[MIN(m->cur, m->hdr_cap - 1)];
}

static int header_done(struct http_msg *m, const char *buf, const struct http_limits *lim)
{
    struct http_hdr *h = cur_hdr(m);
    const char *v = buf + h->val;
    size_t n = h->val_len;
    h->kind = (uint8_t)classify(buf + h->name, h->name_len);
    /* Indices are only kept for headers that have their own slot. */
    bool stored = m->cur < m->hdr_cap;
    if (is_session_header(h, buf, lim)) {
        if (m->sess_hdr >= 0)
            return fail(m, 400, "repeated session header");
        if (stored)
            m->sess_hdr = (int16_t)m->cur;
        if (h->kind == HH_OTHER)
            h->kind = HH_SESSION;
    }
    switch (h->kind) {
    case HH_CONTENT_LENGTH:
        return hdr_content_length(m, v, n);
    case HH_KEEP_ALIVE:
    case HH_PROXY_CONNECTION:
        m->flags |= HF_HAS_HOP;
        break;
    case HH_TRANSFER_ENCODING:
        return hdr_transfer_encoding(m, v, n);
    case HH_CONNECTION:
        m->flags |= HF_HAS_HOP;
        hdr_connection(m, v, n);
        break;
    case HH_UPGRADE:
        m->flags |= HF_UPGRADE;
        break;
    case HH_HOST:
        if (m->flags & HF_HAS_HOST)
            return fail(m, 400, "repeated Host");
        m->flags |= HF_HAS_HOST;
        break;
    case HH_EXPECT:
        if (elem_is(v, n, "100-continue"))
            m->flags |= HF_EXPECT_100;
        break;
    case HH_IDEMPOTENCY_KEY:
        m->flags |= HF_IDEMPOTENCY;
        break;
    case HH_COOKIE:
        for (size_t i = 0; stored && i < ARRAY_LEN(m->cookie_hdr); i++)
            if (m->cookie_hdr[i] < 0) {
                m->cookie_hdr[i] = (int16_t)m->cur;
                break;
            }
        break;
    }
    return EG_OK;
}

static int head_done(struct http_msg *m)
{
    if ((m->flags & HF_HAS_CL) && (m->flags & HF_HAS_TE))
        return fail(m, m->response ? 502 : 400, "both Content-Length and Transfer-Encoding");
    if (m->response)
        return EG_OK;
    if ((m->flags & HF_HAS_TE) && m->minor == 0)
        return fail(m, 400, "Transfer-Encoding in an HTTP/1.0 request");
    if ((m->flags & HF_HAS_TE) && !(m->flags & HF_CHUNKED))
        return fail(m, 400, "Transfer-Encoding without a final chunked");
    if (m->minor == 1 && !(m->flags & HF_HAS_HOST))
        return fail(m, 400, "missing Host");
    return EG_OK;
}

/* Scans a run of field-value bytes at once: the common case of a value. */
static inline size_t value_run(const unsigned char *p, size_t n)
{
    size_t i = 0;
    while (i < n && (cls[p[i]] & C_FIELD))
        i++;
    return i;
}

int http_parse(struct http_msg *m, const char *buf, size_t len, const struct http_limits *lim)
{
    const unsigned char *b = (const unsigned char *)buf;
    uint32_t i = m->pos;
    if (m->state == ST_DONE)
        return EG_OK;
    if (len > 65535)
        len = 65535; /* offsets are 16-bit; the limits keep heads well below */
    for (; i < len; i++) {
        unsigned char c = b[i];
        if (i >= lim->max_head && m->state >= ST_HDR_START)
            return m->pos = i, fail(m, 431, "header block too large");
        switch (m->state) {
        case ST_METHOD:
            if (is_tchar(c)) {
                if (i >= 32)
                    return m->pos = i, fail(m, 400, "method too long");
                continue;
            }
            if (c != ' ' || i == 0)
                return m->pos = i, fail(m, 400, "malformed method");
            m->method_len = (uint16_t)i;
            set_method(m, buf);
            m->target = (uint16_t)(i + 1);
            m->state = ST_TARGET;
            continue;
        case ST_TARGET:
            if (i >= lim->max_line)
                return m->pos = i, fail(m, 414, "request line too long");
            if (cls[c] & C_VCHAR)
                continue;
            if (c != ' ' || i == m->target)
                return m->pos = i, fail(m, 400, "malformed request target");
            m->target_len = (uint16_t)(i - m->target);
            m->state = ST_VERSION;
            m->cur = (uint16_t)(i + 1); /* start of the version */
            continue;
        case ST_VERSION:
        case ST_RVERSION:
            if (i >= lim->max_line)
                return m->pos = i, m->response ? fail(m, 502, "status line too long")
                                                : fail(m, 414, "request line too long");
            if (m->state == ST_VERSION && c == '\r') {
                if (parse_version(m, buf + m->cur, i - m->cur) != EG_OK)
                    return m->pos = i, EG_ERR;
                m->state = ST_LINE_LF;
                continue;
            }
            if (m->state == ST_RVERSION && c == ' ') {
                if (parse_version(m, buf, i) != EG_OK)
                    return m->pos = i, fail(m, 502, m->err);
                m->state = ST_STATUS;
                m->cur = (uint16_t)(i + 1);
                continue;
            }
            if (!(cls[c] & C_VCHAR))
                return m->pos = i, fail(m, m->response ? 502 : 400, "malformed HTTP version");
            continue;
        case ST_STATUS:
            if (c >= '0' && c <= '9' && i - m->cur < 3) {
                m->status = (uint16_t)(m->status * 10 + (c - '0'));
                continue;
            }
            if (i - m->cur != 3 || m->status < 100 || (c != ' ' && c != '\r'))
                return m->pos = i, fail(m, 502, "malformed status line");
            m->state = c == '\r' ? ST_LINE_LF : ST_REASON;
            continue;
        case ST_REASON:
            if (c == '\r') {
                m->state = ST_LINE_LF;
                continue;
            }
            if (!(cls[c] & C_FIELD))
                return m->pos = i, fail(m, 502, "malformed reason phrase");
            if (i >= lim->max_line)
                return m->pos = i, fail(m, 502, "status line too long");
            continue;
        case ST_LINE_LF:
            if (c != '\n')
                return m->pos = i, fail(m, m->response ? 502 : 400, "bare CR in start line");
            m->line_len = i + 1;
            m->state = ST_HDR_START;
            continue;
        case ST_HDR_START:
            if (c == '\r') {
                m->state = ST_END_LF;
                continue;
            }
            if (c == ' ' || c == '\t')
                return m->pos = i, fail(m, m->response ? 502 : 400, "obsolete line folding");
            if (!is_tchar(c))
                return m->pos = i, fail(m, m->response ? 502 : 400,
                                        c == '\n' ? "bare LF" : "invalid header name");
            if (m->nhdrs >= lim->max_headers || m->nhdrs >= HTTP_MAX_HDRS)
                return m->pos = i, fail(m, m->response ? 502 : 431, "too many headers");
            m->cur = m->nhdrs++;
            *cur_hdr(m) = (struct http_hdr){.name = (uint16_t)i, .line = (uint16_t)i};
            m->state = ST_HDR_NAME;
            continue;
        case ST_HDR_NAME:
            if (is_tchar(c))
                continue;
            if (c != ':')
                return m->pos = i, fail(m, m->response ? 502 : 400,
                                        c == ' ' || c == '\t' ? "whitespace before colon"
                                                              : "invalid header name");
            cur_hdr(m)->name_len = (uint16_t)(i - cur_hdr(m)->name);
            m->state = ST_HDR_OWS;
            continue;
        case ST_HDR_OWS:
            if (c == ' ' || c == '\t')
                continue;
            cur_hdr(m)->val = (uint16_t)i;
            m->state = ST_HDR_VALUE;
            /* fall through */
        case ST_HDR_VALUE: {
            i += (uint32_t)value_run(b + i, len - i);
            if (i >= len)
                goto more;
            c = b[i];
            if (c != '\r')
                return m->pos = i, fail(m, m->response ? 502 : 400,
                                        c == '\n' ? "bare LF" : "invalid byte in header value");
            struct http_hdr *h = cur_hdr(m);
            uint32_t end = i;
            while (end > h->val && (b[end - 1] == ' ' || b[end - 1] == '\t'))
                end--;
            h->val_len = (uint16_t)(end - h->val);
            m->state = ST_HDR_LF;
            continue;
        }
        case ST_HDR_LF: {
            if (c != '\n')
                return m->pos = i, fail(m, m->response ? 502 : 400, "bare CR in header");
            struct http_hdr *h = cur_hdr(m);
            h->line_len = (uint16_t)(i + 1 - h->line);
            m->state = ST_HDR_START;
            if (header_done(m, buf, lim) != EG_OK) {
                if (m->response)
                    m->err_status = 502;
                return m->pos = i, EG_ERR;
            }
            continue;
        }
        case ST_END_LF:
            if (c != '\n')
                return m->pos = i, fail(m, m->response ? 502 : 400, "bare CR ending the head");
            m->head_len = i + 1;
            m->pos = i + 1;
            m->state = ST_DONE;
            return head_done(m);
        }
    }
more:
    m->pos = i;
    if (m->state <= ST_VERSION && i >= lim->max_line)
        return fail(m, 414, "request line too long");
    if (m->state == ST_RVERSION && i >= lim->max_line)
        return fail(m, 502, "status line too long");
    if (i >= lim->max_head)
        return fail(m, m->response ? 502 : 431, "header block too large");
    return EG_AGAIN;
}

/* ---- bodies ---- */

enum {
    CB_SIZE_FIRST, CB_SIZE, CB_EXT, CB_SIZE_LF, CB_DATA, CB_DATA_CR, CB_DATA_LF,
    CB_TRAILER_START, CB_TRAILER, CB_TRAILER_LF, CB_END_LF, CB_DONE
};

#define MAX_TRAILER 8192

void http_body_request(struct http_body *b, const struct http_msg *m)
{
    b->state = CB_SIZE_FIRST;
    b->trailer_len = 0;
    b->err = NULL;
    if (m->flags & HF_CHUNKED) {
        b->kind = BODY_CHUNKED;
        b->left = 0;
    } else if (m->content_length > 0) {
        b->kind = BODY_LENGTH;
        b->left = (uint64_t)m->content_length;
    } else {
        b->kind = BODY_NONE;
        b->left = 0;
    }
}

void http_body_response(struct http_body *b, const struct http_msg *m, int method)
{
    b->state = CB_SIZE_FIRST;
    b->trailer_len = 0;
    b->err = NULL;
    b->left = 0;
    if (method == HTTP_HEAD || m->status < 200 || m->status == 204 || m->status == 304)
        b->kind = BODY_NONE;
    else if (m->flags & HF_CHUNKED)
        b->kind = BODY_CHUNKED;
    else if (m->flags & HF_HAS_CL) {
        b->kind = m->content_length > 0 ? BODY_LENGTH : BODY_NONE;
        b->left = (uint64_t)m->content_length;
    } else
        b->kind = BODY_CLOSE;
}

static int body_fail(struct http_body *b, const char *why)
{
    b->err = why;
    return EG_ERR;
}

static int hexval(unsigned char c)
{
    return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
}

/* On error *used still tells how many bytes were consumed before it. */
#define FAIL(why) return (*used = i, body_fail(b, why))

static int chunked_scan(struct http_body *b, const char *p, size_t len, size_t *used)
{
    const unsigned char *u = (const unsigned char *)p;
    size_t i = 0;
    while (i < len) {
        unsigned char c = u[i];
        switch (b->state) {
        case CB_SIZE_FIRST:
            if (!(cls[c] & C_HEX))
                FAIL("malformed chunk size");
            b->left = (uint64_t)hexval(c);
            b->state = CB_SIZE;
            break;
        case CB_SIZE:
            if (cls[c] & C_HEX) {
                if (b->left >> 56)
                    FAIL("chunk size too large");
                b->left = b->left * 16 + (uint64_t)hexval(c);
            } else if (c == ';' || c == ' ' || c == '\t') {
                b->state = CB_EXT;
            } else if (c == '\r') {
                b->state = CB_SIZE_LF;
            } else {
                FAIL("malformed chunk size");
            }
            break;
        case CB_EXT:
            if (c == '\r')
                b->state = CB_SIZE_LF;
            else if (!(cls[c] & C_FIELD))
                FAIL("invalid byte in chunk extension");
            else if (++b->trailer_len > MAX_TRAILER)
                FAIL("chunk extension too long");
            break;
        case CB_SIZE_LF:
            if (c != '\n')
                FAIL("bare CR after chunk size");
            b->trailer_len = 0;
            b->state = b->left ? CB_DATA : CB_TRAILER_START;
            break;
        case CB_DATA: {
            size_t take = (size_t)MIN((uint64_t)(len - i), b->left);
            b->left -= take;
            i += take;
            if (b->left == 0)
                b->state = CB_DATA_CR;
            continue;
        }
        case CB_DATA_CR:
            if (c != '\r')
                FAIL("chunk data longer than its size");
            b->state = CB_DATA_LF;
            break;
        case CB_DATA_LF:
            if (c != '\n')
                FAIL("bare CR after chunk data");
            b->state = CB_SIZE_FIRST;
            break;
        case CB_TRAILER_START:
            if (c == '\r') {
                b->state = CB_END_LF;
                break;
            }
            if (!is_tchar(c))
                FAIL("malformed trailer field");
            b->state = CB_TRAILER;
            /* fall through */
        case CB_TRAILER:
            if (++b->trailer_len > MAX_TRAILER)
                FAIL("trailer section too large");
            if (c == '\r')
                b->state = CB_TRAILER_LF;
            else if (!(cls[c] & C_FIELD) && c != ':')
                FAIL("invalid byte in trailer field");
            break;
        case CB_TRAILER_LF:
            if (c != '\n')
                FAIL("bare CR in trailer field");
            b->state = CB_TRAILER_START;
            break;
        case CB_END_LF:
            if (c != '\n')
                FAIL("bare CR ending the chunked body");
            b->state = CB_DONE;
            *used = i + 1;
            return EG_OK;
        }
        i++;
    }
    *used = len;
    return EG_AGAIN;
}

#undef FAIL

int http_body_scan(struct http_body *b, const char *p, size_t len, size_t *used)
{
    switch (b->kind) {
    case BODY_NONE:
        *used = 0;
        return EG_OK;
    case BODY_LENGTH: {
        size_t take = (size_t)MIN((uint64_t)len, b->left);
        b->left -= take;
        *used = take;
        return b->left == 0 ? EG_OK : EG_AGAIN;
    }
    case BODY_CLOSE:
        *used = len;
        return EG_AGAIN;
    default:
        if (b->state == CB_DONE) {
            *used = 0;
            return EG_OK;
        }
        return chunked_scan(b, p, len, used);
    }
}

bool http_find_cookie(const struct http_msg *m, const char *buf, const char *name, size_t nlen,
                      const char **val, size_t *len)
{
    for (size_t k = 0; k < ARRAY_LEN(m->cookie_hdr) && m->cookie_hdr[k] >= 0; k++) {
        const struct http_hdr *h = &m->hdrs[m->cookie_hdr[k]];
        const char *p = buf + h->val, *end = p + h->val_len;
        while (p < end) {
            while (p < end && (*p == ' ' || *p == ';'))
                p++;
            const char *eq = p;
            while (eq < end && *eq != '=' && *eq != ';')
                eq++;
            const char *stop = eq;
            while (stop < end && *stop != ';')
                stop++;
            if (eq < end && *eq == '=' && (size_t)(eq - p) == nlen && memcmp(p, name, nlen) == 0) {
                const char *v = eq + 1, *ve = stop;
                while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
                    ve--;
                if (ve - v >= 2 && *v == '"' && ve[-1] == '"')
                    v++, ve--;
                *val = v;
                *len = (size_t)(ve - v);
                return true;
            }
            p = stop;
        }
    }
    return false;
}

/* Set-Cookie: NAME=VALUE[; attributes]: VALUE runs to the first ';' (or the
 * line's end), without surrounding blanks or quotes. */
static bool set_cookie_value(const char *p, const char *end, const char *name, size_t nlen,
                             const char **val, size_t *len)
{
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    if ((size_t)(end - p) <= nlen || memcmp(p, name, nlen) != 0 || p[nlen] != '=')
        return false;
    const char *v = p + nlen + 1, *ve = v;
    while (ve < end && *ve != ';')
        ve++;
    while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
        ve--;
    if (ve - v >= 2 && *v == '"' && ve[-1] == '"')
        v++, ve--;
    *val = v;
    *len = (size_t)(ve - v);
    return true;
}

bool http_find_set_cookie(const char *head, size_t head_len, const char *name, size_t nlen,
                          const char **val, size_t *len)
{
    static const char hdr[] = "set-cookie:";
    const char *p = head, *end = head + head_len;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *le = eol ? eol : end;
        if (le > p && le[-1] == '\r')
            le--;
        if ((size_t)(le - p) > sizeof(hdr) - 1 && strncasecmp(p, hdr, sizeof(hdr) - 1) == 0 &&
            set_cookie_value(p + sizeof(hdr) - 1, le, name, nlen, val, len))
            return true;
        if (!eol)
            break;
        p = eol + 1;
    }
    return false;
}

/* One header line of a parsed head: [at, at + len), CRLF included. */
struct head_line {
    uint32_t at, len, name_len;
    uint8_t kind;
    bool drop;
};

static bool listed_in(const char *head, const struct head_line *c, const struct head_line *h)
{
    const char *p = head + c->at + c->name_len + 1, *end = head + c->at + c->len - 2, *e;
    size_t n;
    while (http_list_next(&p, end, &e, &n))
        if (n == h->name_len && strncasecmp(e, head + h->at, n) == 0)
            return true;
    return false;
}

size_t http_drop_hop(char *head, size_t len)
{
    struct head_line lines[HTTP_MAX_HDRS];
    int nl = 0, nconn = 0;
    const char *first = len >= 2 ? memchr(head, '\n', len) : NULL;
    if (!first)
        return len;
    /* The parser checked the head: every line ends with CRLF, every header
     * line has a colon, the last line is empty. Lines beyond the parser's
     * limit (none) would stay. */
    size_t at = (size_t)(first - head) + 1;
    while (at < len - 2 && nl < HTTP_MAX_HDRS) {
        const char *eol = memchr(head + at, '\n', len - at);
        const char *colon = eol ? memchr(head + at, ':', (size_t)(eol - head) - at) : NULL;
        if (!colon)
            return len;
        struct head_line *l = &lines[nl++];
        l->at = (uint32_t)at;
        l->len = (uint32_t)(eol + 1 - (head + at));
        l->name_len = (uint32_t)(colon - (head + at));
        l->kind = (uint8_t)classify(head + at, l->name_len);
        l->drop = l->kind == HH_CONNECTION || l->kind == HH_KEEP_ALIVE ||
                  l->kind == HH_PROXY_CONNECTION;
        nconn += l->kind == HH_CONNECTION;
        at += l->len;
    }
    for (int i = 0; i < nl && nconn > 0; i++) {
        struct head_line *h = &lines[i];
        if (h->drop || h->kind == HH_CONTENT_LENGTH || h->kind == HH_TRANSFER_ENCODING)
            continue;
        for (int k = 0; k < nl && !h->drop; k++)
            h->drop = lines[k].kind == HH_CONNECTION && listed_in(head, &lines[k], h);
    }
    size_t out = (size_t)(first - head) + 1;
    for (int i = 0; i < nl; i++) {
        if (lines[i].drop)
            continue;
        if (out != lines[i].at)
            memmove(head + out, head + lines[i].at, lines[i].len);
        out += lines[i].len;
    }
    memmove(head + out, head + at, len - at);
    return out + len - at;
}
