/* HTTP/1.1 mode: request parsing, routing and answers.
 *
 * One request is handled at a time: its head is parsed from the input
 * buffer, its body consumed (kept only for /echo), then after the delay its
 * answer is appended to the connection's output. Only then is the next
 * pipelined request parsed, which keeps answers in order without a queue. */
#include "tests/dcsim/dcsim.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define CHUNK_LINE_MAX 4096                         /* chunk size line with extensions */
#define ECHO_BODY_MAX (1024ULL * 1024 * 1024)       /* /echo keeps the whole body */
#define BODY_KEEP (1024 * 1024)                     /* larger /echo buffers are not kept */
#define HEAD_ROOM 256                               /* header fields we write, sans name */
#define NUM_DIGITS_MAX 12                           /* numbers in /status/, /slow/, /bytes/ */

struct part {
    const char *p;
    size_t n;
};

static enum step http_fail(struct conn *c, int status);
static enum step request_done(struct conn *c);

/* ---- small lexical helpers ---- */

static bool is_tchar(unsigned char ch)
{
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
           (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

static void trim(const char **s, size_t *n)
{
    while (*n && (**s == ' ' || **s == '\t')) {
        (*s)++;
        (*n)--;
    }
    while (*n && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t'))
        (*n)--;
}

static bool word_is(const char *s, size_t n, const char *word)
{
    return n == strlen(word) && !strncasecmp(s, word, n);
}

/* Whether the comma-separated list V holds TOK (case-insensitive), or with
 * LAST_ONLY whether TOK is its last element. */
static bool list_has(const char *v, size_t n, const char *tok, bool last_only)
{
    bool found = false;

    for (;;) {
        const char *comma = memchr(v, ',', n);
        const char *item = v;
        size_t len = comma ? (size_t)(comma - v) : n;
        trim(&item, &len);
        found = word_is(item, len, tok) || (found && !last_only);
        if (!comma)
            return found;
        n -= comma + 1 - v;
        v = comma + 1;
    }
}

/* Finds the next line in b's pending bytes: returns its start, with *len
 * its length without CR LF and *used the bytes to consume. NULL: incomplete. */
static const char *take_line(const struct buf *b, size_t *len, size_t *used)
{
    const char *p = buf_head(b);
    const char *lf = memchr(p, '\n', buf_pending(b));
    if (!lf)
        return NULL;
    *used = lf + 1 - p;
    *len = lf - p;
    if (*len && p[*len - 1] == '\r')
        (*len)--;
    return p;
}

/* End of the header section (after its empty line) in p[0, n), or 0. */
static size_t head_end(const char *p, size_t n)
{
    const char *s = p, *end = p + n;

    while ((s = memchr(s, '\n', end - s)) && ++s < end) {
        if (*s == '\n')
            return s + 1 - p;
        if (*s == '\r' && s + 1 < end && s[1] == '\n')
            return s + 2 - p;
    }
    return 0;
}

static bool path_is(const char *path, size_t n, const char *want)
{
    return n == strlen(want) && !memcmp(path, want, n);
}

/* PATH (without query) is PREFIX then a decimal number, then its end or '/'. */
static bool path_number(const char *path, size_t n, const char *prefix, uint64_t *v)
{
    size_t pl = strlen(prefix), i;

    if (n <= pl || memcmp(path, prefix, pl))
        return false;
    *v = 0;
    for (i = pl; i < n && path[i] >= '0' && path[i] <= '9'; i++) {
        if (i - pl == NUM_DIGITS_MAX)
            return false;
        *v = *v * 10 + (path[i] - '0');
    }
    return i > pl && (i == n || path[i] == '/');
}

/* ---- request head ---- */

static int field_content_length(struct http_req *q, const char *v, size_t n)
{
    uint64_t len = 0;

    if (!n || n > 15)
        return 400;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return 400;
        len = len * 10 + (v[i] - '0');
    }
    if (q->has_length && q->length != len)
        return 400;
    q->has_length = true;
    q->length = len;
    return 0;
}

static int field_transfer_encoding(struct http_req *q, const char *v, size_t n)
{
    q->te_seen = true;
    q->chunked = list_has(v, n, "chunked", true);
    return 0;
}

static int field_connection(struct http_req *q, const char *v, size_t n)
{
    q->conn_close |= list_has(v, n, "close", false);
    q->conn_keep_alive |= list_has(v, n, "keep-alive", false);
    return 0;
}

static int field_upgrade(struct http_req *q, const char *v, size_t n)
{
    q->upgrade_ws |= list_has(v, n, "websocket", false);
    return 0;
}

static int field_ws_key(struct http_req *q, const char *v, size_t n)
{
    if (n >= sizeof q->ws_key)
        return 400;
    memcpy(q->ws_key, v, n);
    q->ws_key[n] = '\0';
    return 0;
}

static int field_expect(struct http_req *q, const char *v, size_t n)
{
    q->expect_continue = word_is(v, n, "100-continue");
    return 0;
}

/* The header fields dcsim acts on; others are checked for syntax only. */
static const struct {
    const char *name;
    int (*apply)(struct http_req *q, const char *v, size_t n);
} fields[] = {
    { "content-length", field_content_length },
    { "transfer-encoding", field_transfer_encoding },
    { "connection", field_connection },
    { "upgrade", field_upgrade },
    { "sec-websocket-key", field_ws_key },
    { "expect", field_expect },
};

static int parse_field(struct http_req *q, const char *p, size_t n)
{
    const char *colon = memchr(p, ':', n);
    if (!colon || colon == p)
        return 400;
    size_t name_len = colon - p;
    for (size_t i = 0; i < name_len; i++)
        if (!is_tchar(p[i]))
            return 400;  /* also rejects obsolete line folding */
    const char *v = colon + 1;
    size_t vl = p + n - v;
    trim(&v, &vl);
    for (size_t i = 0; i < vl; i++) {
        unsigned char ch = v[i];
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
            return 400;
    }
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        if (word_is(p, name_len, fields[i].name))
            return fields[i].apply(q, v, vl);
    return 0;
}

static int parse_request_line(struct conn *c, const char *p, size_t n)
{
    struct http_req *q = &c->req;
    const char *end = p + n;
    const char *sp1 = memchr(p, ' ', n);
    if (!sp1 || sp1 == p || (size_t)(sp1 - p) >= sizeof q->method)
        return 400;
    for (const char *s = p; s < sp1; s++)
        if (!is_tchar(*s))
            return 400;
    memcpy(q->method, p, sp1 - p);
    q->method[sp1 - p] = '\0';
    q->head = !strcmp(q->method, "HEAD");

    const char *t = sp1 + 1;
    const char *sp2 = memchr(t, ' ', end - t);
    if (!sp2 || sp2 == t)
        return 400;
    for (const char *s = t; s < sp2; s++)
        if ((unsigned char)*s <= ' ' || *s == 0x7f)
            return 400;
    c->target.off = c->target.len = 0;
    if (buf_append(&c->target, t, sp2 - t))
        return 500;

    const char *v = sp2 + 1;
    if (end - v == 8 && !memcmp(v, "HTTP/1.", 7) && (v[7] == '0' || v[7] == '1')) {
        q->minor = v[7] - '0';
        return 0;
    }
    return end - v >= 5 && !memcmp(v, "HTTP/", 5) ? 505 : 400;
}

static void route_request(struct conn *c)
{
    struct http_req *q = &c->req;
    const char *path = c->target.data;
    const char *query = memchr(path, '?', c->target.len);
    size_t n = query ? (size_t)(query - path) : c->target.len;
    uint64_t v;

    if (path_is(path, n, "/health"))
        q->route = R_HEALTH;
    else if (path_is(path, n, "/echo"))
        q->route = R_ECHO;
    else if (path_is(path, n, "/ws") && q->upgrade_ws && q->ws_key[0])
        q->route = R_WS;
    else if (path_number(path, n, "/status/", &v) && v >= 200 && v <= 599) {
        q->route = R_STATUS;
        q->arg = v;
    } else if (path_number(path, n, "/bytes/", &v)) {
        q->route = R_BYTES;
        q->arg = v;
    } else if (path_number(path, n, "/slow/", &v)) {
        q->slow = v / 1000.0;
    }
}

/* Parses the head in p[0, n) (ending with its empty line) into c->req.
 * Returns 0, or the status of the error answer. */
static int parse_head(struct conn *c, const char *p, size_t n)
{
    struct http_req *q = &c->req;
    const char *end = p + n;
    const char *lf = memchr(p, '\n', n);
    size_t len = lf - p - (lf > p && lf[-1] == '\r');
    int status = parse_request_line(c, p, len);

    while (!status) {
        p = lf + 1;
        lf = memchr(p, '\n', end - p);
        len = lf - p - (lf > p && lf[-1] == '\r');
        if (!len)
            break;
        status = parse_field(q, p, len);
    }
    if (status)
        return status;
    /* A body framed two ways is how requests get smuggled: refuse it. */
    if (q->te_seen && (q->has_length || !q->chunked))
        return 400;
    q->keep_alive = !q->conn_close && (q->minor == 1 || q->conn_keep_alive);
    q->body_left = q->chunked ? 0 : q->length;
    route_request(c);
    if (q->route == R_ECHO && q->length > ECHO_BODY_MAX)
        return 413;
    return 0;
}

static void request_reset(struct conn *c)
{
    memset(&c->req, 0, sizeof c->req);
    c->body.off = c->body.len = 0;
    if (c->body.cap > BODY_KEEP)
        buf_free(&c->body);
}

/* Leading empty lines before a request are allowed (RFC 9112, 2.2). */
static void skip_empty_lines(struct buf *b)
{
    size_t len, used;

    while (take_line(b, &len, &used) && !len)
        buf_consume(b, used);
}

static enum step http_on_head(struct conn *c)
{
    static const char continue_100[] = "HTTP/1.1 100 Continue\r\n\r\n";

    if (c->src_left || buf_pending(&c->out) > OUT_HIGH)
        return STEP_BLOCKED;
    skip_empty_lines(&c->in);
    size_t end = head_end(buf_head(&c->in), buf_pending(&c->in));
    if (!end)
        return buf_pending(&c->in) >= HDR_MAX ? http_fail(c, 431) : STEP_NEED_INPUT;
    request_reset(c);
    int status = parse_head(c, buf_head(&c->in), end);
    if (status)
        return http_fail(c, status);
    buf_consume(&c->in, end);
    if (c->req.expect_continue && c->req.minor == 1 && (c->req.chunked || c->req.body_left) &&
        buf_append(&c->out, continue_100, sizeof continue_100 - 1))
        return http_fail(c, 500);
    c->state = CS_BODY;
    return STEP_PROGRESS;
}

/* ---- request body ---- */

static enum step body_take(struct conn *c)
{
    struct http_req *q = &c->req;
    size_t n = buf_pending(&c->in);

    if (n > q->body_left)
        n = q->body_left;
    if (!n)
        return STEP_NEED_INPUT;
    if (q->route == R_ECHO) {
        if (q->body_len + n > ECHO_BODY_MAX)
            return http_fail(c, 413);
        if (buf_append(&c->body, buf_head(&c->in), n))
            return http_fail(c, 500);
    }
    q->body_len += n;
    q->body_left -= n;
    buf_consume(&c->in, n);
    return STEP_PROGRESS;
}

static enum step chunk_size_line(struct conn *c)
{
    struct http_req *q = &c->req;
    size_t len, used, i;
    const char *p = take_line(&c->in, &len, &used);
    uint64_t size = 0;

    if (!p)
        return buf_pending(&c->in) > CHUNK_LINE_MAX ? http_fail(c, 400) : STEP_NEED_INPUT;
    for (i = 0; i < len; i++) {
        int d = p[i] >= '0' && p[i] <= '9' ? p[i] - '0'
              : (p[i] | 0x20) >= 'a' && (p[i] | 0x20) <= 'f' ? (p[i] | 0x20) - 'a' + 10 : -1;
        if (d < 0)
            break;
        if (i == 15)
            return http_fail(c, 400);
        size = size * 16 + d;
    }
    while (i < len && (p[i] == ' ' || p[i] == '\t'))
        i++;
    /* Chunk extensions (";name=value") are allowed and ignored. */
    if (!i || (i < len && p[i] != ';'))
        return http_fail(c, 400);
    buf_consume(&c->in, used);
    q->body_left = size;
    q->chunk = size ? CH_DATA : CH_TRAILER;
    return STEP_PROGRESS;
}

static enum step chunk_data_end(struct conn *c)
{
    size_t len, used;

    if (!take_line(&c->in, &len, &used))
        return buf_pending(&c->in) >= 2 ? http_fail(c, 400) : STEP_NEED_INPUT;
    if (len)
        return http_fail(c, 400);
    buf_consume(&c->in, used);
    c->req.chunk = CH_SIZE;
    return STEP_PROGRESS;
}

static enum step chunk_trailer_line(struct conn *c)
{
    size_t len, used;

    if (!take_line(&c->in, &len, &used))
        return buf_pending(&c->in) >= HDR_MAX ? http_fail(c, 431) : STEP_NEED_INPUT;
    buf_consume(&c->in, used);
    if (!len)
        return request_done(c);
    c->req.trailer_len += used;
    return c->req.trailer_len > HDR_MAX ? http_fail(c, 431) : STEP_PROGRESS;
}

static enum step http_on_body(struct conn *c)
{
    struct http_req *q = &c->req;

    if (!q->chunked)
        return q->body_left ? body_take(c) : request_done(c);
    switch (q->chunk) {
    case CH_SIZE:
        return chunk_size_line(c);
    case CH_DATA:
        if (q->body_left)
            return body_take(c);
        q->chunk = CH_DATA_END;
        return STEP_PROGRESS;
    case CH_DATA_END:
        return chunk_data_end(c);
    default:
        return chunk_trailer_line(c);
    }
}

/* ---- answers ---- */

static const char *reason(int status)
{
    static const struct {
        int status;
        const char *text;
    } reasons[] = {
        { 200, "OK" }, { 201, "Created" }, { 202, "Accepted" }, { 204, "No Content" },
        { 301, "Moved Permanently" }, { 302, "Found" }, { 304, "Not Modified" },
        { 400, "Bad Request" }, { 401, "Unauthorized" }, { 403, "Forbidden" },
        { 404, "Not Found" }, { 405, "Method Not Allowed" }, { 408, "Request Timeout" },
        { 413, "Content Too Large" }, { 429, "Too Many Requests" },
        { 431, "Request Header Fields Too Large" }, { 500, "Internal Server Error" },
        { 501, "Not Implemented" }, { 502, "Bad Gateway" }, { 503, "Service Unavailable" },
        { 504, "Gateway Timeout" }, { 505, "HTTP Version Not Supported" },
    };

    for (size_t i = 0; i < sizeof reasons / sizeof reasons[0]; i++)
        if (reasons[i].status == status)
            return reasons[i].text;
    return "Unknown";
}

/* Appends an answer whose body is PARTS followed by STREAM bytes that the
 * caller hands to conn_flush through c->src. -1: out of memory. */
static int put_answer(struct conn *c, int status, const struct part *parts, int nparts,
                      uint64_t stream)
{
    const struct http_req *q = &c->req;
    bool bodyless = status == 204 || status == 304;
    size_t inline_len = 0;

    for (int i = 0; i < nparts; i++)
        inline_len += parts[i].n;
    if (buf_reserve(&c->out, HEAD_ROOM + srv.name_len + inline_len))
        return -1;
    char *p = c->out.data + c->out.len;
    size_t room = c->out.cap - c->out.len;
    const char *connection = !q->keep_alive ? "Connection: close\r\n"
                           : q->minor == 0 ? "Connection: keep-alive\r\n" : "";
    int n = snprintf(p, room, "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nX-DC: %s\r\n%s",
                     status, reason(status), srv.name, connection);
    if (!bodyless)
        n += snprintf(p + n, room - n, "Content-Length: %" PRIu64 "\r\n", inline_len + stream);
    memcpy(p + n, "\r\n", 2);
    c->out.len += n + 2;
    if (q->head || bodyless)
        return 0;
    for (int i = 0; i < nparts; i++) {
        memcpy(c->out.data + c->out.len, parts[i].p, parts[i].n);
        c->out.len += parts[i].n;
    }
    return 0;
}

static void set_stream(struct conn *c, const char *src, uint64_t len, bool fill)
{
    if (c->req.head)
        return;
    c->src = src;
    c->src_left = len;
    c->src_fill = fill;
}

/* The answer to a malformed or refused request: immediate, then close. */
static enum step http_fail(struct conn *c, int status)
{
    const char *text = reason(status);
    const struct part parts[] = { { text, strlen(text) }, { "\n", 1 } };

    c->req.keep_alive = false;
    c->req.head = false;
    if (put_answer(c, status, parts, 2, 0))
        c->state = CS_CLOSED;
    else
        conn_linger(c);
    return STEP_PROGRESS;
}

static int answer_default(struct conn *c, int status)
{
    const struct part parts[] = {
        { "dc=", 3 }, { srv.name, srv.name_len }, { "\npath=", 6 },
        { c->target.data, c->target.len }, { "\n", 1 },
    };

    return put_answer(c, status, parts, 5, 0);
}

static int answer_health(struct conn *c)
{
    int status = srv.health_failed ? 503 : srv.health_status;
    const struct part ok = { "ok\n", 3 }, fail = { "fail\n", 5 };

    return put_answer(c, status, status < 300 ? &ok : &fail, 1, 0);
}

static int answer_bytes(struct conn *c)
{
    static char fill[SRC_CHUNK];

    if (!fill[0])
        memset(fill, 'x', sizeof fill);
    if (put_answer(c, 200, NULL, 0, c->req.arg))
        return -1;
    set_stream(c, fill, c->req.arg, true);
    return 0;
}

static int answer_echo(struct conn *c)
{
    if (put_answer(c, 200, NULL, 0, c->body.len))
        return -1;
    set_stream(c, c->body.data, c->body.len, false);
    return 0;
}

static void http_answer(struct conn *c)
{
    struct http_req *q = &c->req;
    int r;

    if (srv.log)
        log_line("req %s %.*s body=%" PRIu64, q->method, (int)c->target.len, c->target.data,
                 q->body_len);
    switch (q->route) {
    case R_WS:
        ws_upgrade(c);
        return;
    case R_HEALTH:
        r = answer_health(c);
        break;
    case R_ECHO:
        r = answer_echo(c);
        break;
    case R_BYTES:
        r = answer_bytes(c);
        break;
    case R_STATUS:
        r = answer_default(c, (int)q->arg);
        break;
    default:
        r = answer_default(c, 200);
        break;
    }
    if (r)
        c->state = CS_CLOSED;
    else if (q->keep_alive)
        c->state = CS_HEAD;
    else
        conn_linger(c);
}

/* The request is read: answer now, or when the delay timer fires. */
static enum step request_done(struct conn *c)
{
    double wait = srv.delay + c->req.slow;

    c->state = CS_WAIT;
    if (wait > 0) {
        ev_timer_set(&c->delay, wait, 0);
        ev_timer_start(srv.loop, &c->delay);
    } else {
        http_answer(c);
    }
    return STEP_PROGRESS;
}

void http_on_delay(struct conn *c)
{
    http_answer(c);
}

/* ---- driving ---- */

bool http_wants_read(const struct conn *c)
{
    return !c->peer_eof && buf_pending(&c->in) < c->in.cap && buf_pending(&c->out) <= OUT_HIGH;
}

static bool http_read(struct conn *c)
{
    buf_compact(&c->in);
    size_t n = conn_recv(c, c->in.data + c->in.len, c->in.cap - c->in.len);
    c->in.len += n;
    return n > 0;
}

/* Runs parsing steps until one needs bytes, output room or the timer. */
static bool http_process(struct conn *c)
{
    bool progress = false;

    for (;;) {
        enum step s;
        switch (c->state) {
        case CS_HEAD:
            s = http_on_head(c);
            break;
        case CS_BODY:
            s = http_on_body(c);
            break;
        case CS_WS:
            s = ws_on_input(c);
            break;
        default:
            return progress;
        }
        if (s == STEP_NEED_INPUT && c->peer_eof) {
            conn_linger(c);
            return true;
        }
        if (s != STEP_PROGRESS)
            return progress;
        progress = true;
    }
}

void http_drive(struct conn *c)
{
    bool progress;

    do {
        progress = http_wants_read(c) && http_read(c);
        if (c->state == CS_CLOSED)
            return;
        progress |= http_process(c);
        if (c->state == CS_CLOSED || c->state == CS_LINGER)
            return;
        progress |= conn_flush(c);
    } while (progress && c->state != CS_CLOSED);
}
