/* Control requests and operator-state records. Everything here is input
 * from the network (a client of the stats listener, or Redis): each field
 * is checked for its type, its bounds and its characters before anything
 * is copied, and an unknown member of a body is an error rather than
 * something silently ignored (a misspelt "wieght" must not look applied). */
#include "proto/control_req.h"
#include "proto/http.h"
#include "proto/json.h"
#include "base/util.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define PREFIX "/control"

static const char *const state_names[] = {[CTL_READY] = "ready", [CTL_DRAIN] = "drain",
                                           [CTL_DOWN] = "down"};

int ctl_state_parse(const char *s)
{
    for (int i = 0; i < (int)ARRAY_LEN(state_names); i++)
        if (strcmp(s, state_names[i]) == 0)
            return i;
    return -1;
}

bool ctl_name_valid(const char *s, size_t n)
{
    if (n == 0 || n >= CTL_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.'))
            return false;
    }
    return true;
}

/* A server as the gateway names it: "ip:port", "[ipv6]:port". */
static bool addr_valid(const char *s, size_t n)
{
    if (n < 3 || n >= CTL_ADDR_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || (c >= '0' && c <= '9') ||
              c == '.' || c == ':' || c == '[' || c == ']'))
            return false;
    }
    return true;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decodes N bytes of S into D (room for CAP bytes and a NUL).
 * Returns the length, or -1 when an escape is malformed, the result does
 * not fit, or it holds a byte outside printable ASCII. */
static long pct_decode(const char *s, size_t n, char *d, size_t cap)
{
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i];
        if (c == '%') {
            int hi = i + 2 < n ? hexval(s[i + 1]) : -1;
            int lo = hi >= 0 ? hexval(s[i + 2]) : -1;
            if (hi < 0 || lo < 0)
                return -1;
            c = hi << 4 | lo;
            i += 2;
        }
        if (c < 0x20 || c > 0x7e || len == cap)
            return -1;
        d[len++] = (char)c;
    }
    d[len] = '\0';
    return (long)len;
}

bool ctl_path_claimed(const char *path, size_t n)
{
    size_t p = strlen(PREFIX);
    return n >= p && memcmp(path, PREFIX, p) == 0 && (n == p || path[p] == '/');
}

bool ctl_method_changes(int method) { return method != HTTP_GET && method != HTTP_HEAD; }

static int bad(char *err, size_t errlen, int status, const char *fmt, const char *arg)
{
    snprintf(err, errlen, fmt, arg);
    return status;
}

/* Splits "A/B/..." : the segment at *P up to the next '/' (or the end). */
static bool segment(const char **p, const char *end, const char **seg, size_t *len)
{
    if (*p >= end)
        return false;
    const char *slash = memchr(*p, '/', (size_t)(end - *p));
    *seg = *p;
    *len = slash ? (size_t)(slash - *p) : (size_t)(end - *p);
    *p = slash ? slash + 1 : end;
    return true;
}

/* The object named by the path after "/control". */
static int parse_path(const char *p, const char *end, struct ctl_cmd *cmd, char *err,
                      size_t errlen)
{
    const char *seg;
    size_t len;
    if (p == end || (p + 1 == end && *p == '/')) {
        cmd->object = CTL_OVERVIEW;
        return 0;
    }
    p++; /* the '/' after /control */
    if (!segment(&p, end, &seg, &len))
        return bad(err, errlen, 404, "no such control path%s", "");
    if (len == 8 && memcmp(seg, "sessions", 8) == 0) {
        /* The key is the rest of the path: it may hold '/' itself. */
        long n = p < end ? pct_decode(p, (size_t)(end - p), cmd->key, CTL_KEY_MAX) : -1;
        if (n <= 0)
            return bad(err, errlen, 400,
                       "a session key is 1 to 256 printable ASCII characters, "
                       "percent-encoded%s", "");
        cmd->key_len = (size_t)n;
        cmd->object = CTL_SESSION;
        return 0;
    }
    if (len != 3 || memcmp(seg, "dcs", 3) != 0)
        return bad(err, errlen, 404, "no such control path%s", "");
    if (!segment(&p, end, &seg, &len) || !ctl_name_valid(seg, len))
        return bad(err, errlen, 404, "no such datacenter%s", "");
    memcpy(cmd->dc, seg, len);
    cmd->dc[len] = '\0';
    cmd->object = CTL_DC;
    if (seg + len == end) /* nothing after the name, not even a '/' */
        return 0;
    if (!segment(&p, end, &seg, &len) || len != 7 || memcmp(seg, "servers", 7) != 0)
        return bad(err, errlen, 404, "no such control path%s", "");
    char addr[CTL_ADDR_MAX];
    long n = p < end && !memchr(p, '/', (size_t)(end - p))
                 ? pct_decode(p, (size_t)(end - p), addr, sizeof(addr) - 1)
                 : -1;
    if (n < 0 || !addr_valid(addr, (size_t)n))
        return bad(err, errlen, 404, "no such server%s", "");
    memcpy(cmd->server, addr, (size_t)n + 1);
    cmd->object = CTL_SERVER;
    return 0;
}

static bool allowed(const struct ctl_cmd *cmd)
{
    switch (cmd->method) {
    case HTTP_GET:
    case HTTP_HEAD:
        return true;
    case HTTP_PUT:
        return cmd->object != CTL_OVERVIEW;
    case HTTP_DELETE:
        return cmd->object == CTL_SESSION;
    default:
        return false;
    }
}

static int body_state(const struct json_val *v, int *state, char *err, size_t errlen)
{
    if (!v)
        return 0;
    int st = v->type == JSON_STR ? ctl_state_parse(v->str) : -1;
    if (st < 0)
        return bad(err, errlen, 400, "\"state\" is \"ready\", \"drain\" or \"down\"%s", "");
    *state = st;
    return 0;
}

static int parse_body(struct ctl_cmd *cmd, const struct json_val *o, char *err, size_t errlen)
{
    static const char *const dc_keys[] = {"state", "drain_timeout", NULL};
    static const char *const srv_keys[] = {"state", "weight", NULL};
    static const char *const sess_keys[] = {"dc", NULL};
    const char *const *known = cmd->object == CTL_DC       ? dc_keys
                               : cmd->object == CTL_SERVER ? srv_keys
                                                           : sess_keys;
    if (!o || o->type != JSON_OBJ)
        return bad(err, errlen, 400, "the body is a JSON object%s", "");
    const char *unknown = json_unknown_key(o, known);
    if (unknown)
        return bad(err, errlen, 400, "unknown member \"%.64s\"", unknown);
    if (cmd->object == CTL_SESSION) {
        const struct json_val *dc = json_get(o, "dc");
        if (!dc || dc->type != JSON_STR || !ctl_name_valid(dc->str, dc->len))
            return bad(err, errlen, 400, "\"dc\" names a datacenter%s", "");
        memcpy(cmd->to_dc, dc->str, dc->len + 1);
        return 0;
    }
    int rc = body_state(json_get(o, "state"), &cmd->state, err, errlen);
    if (rc)
        return rc;
    if (cmd->object == CTL_DC) {
        if (cmd->state == CTL_KEEP)
            return bad(err, errlen, 400, "\"state\" is required%s", "");
        const struct json_val *t = json_get(o, "drain_timeout");
        if (t && (t->type != JSON_NUM || !(t->num >= 0 && t->num <= CTL_DRAIN_MAX) ||
                  cmd->state != CTL_DRAIN))
            return bad(err, errlen, 400,
                       "\"drain_timeout\" is seconds (0 to 86400), with \"state\": \"drain\"%s",
                       "");
        if (t)
            cmd->drain_timeout = t->num;
        return 0;
    }
    const struct json_val *w = json_get(o, "weight");
    if (w && w->type == JSON_NULL) {
        cmd->weight = CTL_WEIGHT_CONF;
    } else if (w) {
        if (w->type != JSON_NUM || !(w->num >= 0 && w->num <= CTL_WEIGHT_MAX) ||
            w->num != floor(w->num))
            return bad(err, errlen, 400, "\"weight\" is an integer from 0 to 1000, or null%s", "");
        cmd->weight = (int)w->num;
    }
    if (cmd->state == CTL_KEEP && cmd->weight == CTL_WEIGHT_KEEP)
        return bad(err, errlen, 400, "\"state\" or \"weight\" is required%s", "");
    return 0;
}

int ctl_parse(int method, const char *path, size_t plen, const char *body, size_t blen,
              struct ctl_cmd *cmd, char *err, size_t errlen)
{
    memset(cmd, 0, sizeof(*cmd));
    cmd->method = method;
    cmd->state = CTL_KEEP;
    cmd->weight = CTL_WEIGHT_KEEP;
    cmd->drain_timeout = -1;
    if (err && errlen)
        err[0] = '\0';
    if (!ctl_path_claimed(path, plen))
        return bad(err, errlen, 404, "no such control path%s", "");
    size_t p = strlen(PREFIX);
    int rc = parse_path(path + p, path + plen, cmd, err, errlen);
    if (rc)
        return rc;
    if (!allowed(cmd))
        return bad(err, errlen, 405, "method not allowed here%s", "");
    if (method != HTTP_PUT)
        return blen ? bad(err, errlen, 400, "no body expected%s", "") : 0;
    if (blen == 0)
        return bad(err, errlen, 400, "a JSON body is required%s", "");
    if (blen > CTL_BODY_MAX)
        return bad(err, errlen, 413, "the body is limited to 4096 bytes%s", "");
    struct json_doc doc;
    char jerr[96];
    if (json_parse(body, blen, &doc, jerr, sizeof(jerr)) != EG_OK) {
        json_free(&doc);
        return bad(err, errlen, 400, "malformed JSON: %s", jerr);
    }
    rc = parse_body(cmd, doc.root, err, errlen);
    json_free(&doc);
    return rc;
}

/* ---- records ---- */

int ctl_parse_field(const char *s, size_t n, struct ctl_field *f)
{
    memset(f, 0, sizeof(*f));
    bool srv = n > 4 && memcmp(s, "srv:", 4) == 0;
    if (!srv && !(n > 3 && memcmp(s, "dc:", 3) == 0))
        return EG_ERR;
    const char *p = s + (srv ? 4 : 3), *end = s + n;
    const char *colon = srv ? memchr(p, ':', (size_t)(end - p)) : end;
    if (!colon || !ctl_name_valid(p, (size_t)(colon - p)))
        return EG_ERR;
    memcpy(f->dc, p, (size_t)(colon - p));
    if (!srv)
        return EG_OK;
    const char *a = colon + 1;
    if (!addr_valid(a, (size_t)(end - a)))
        return EG_ERR;
    memcpy(f->server, a, (size_t)(end - a));
    return EG_OK;
}

void ctl_format_field(const struct ctl_field *f, char *buf, size_t len)
{
    if (f->server[0])
        snprintf(buf, len, "srv:%s:%s", f->dc, f->server);
    else
        snprintf(buf, len, "dc:%s", f->dc);
}

static bool time_ok(const struct json_val *v)
{
    return v && v->type == JSON_NUM && v->num >= 0 && v->num < 1e11;
}

int ctl_parse_record(const char *s, size_t n, struct ctl_record *r)
{
    memset(r, 0, sizeof(*r));
    struct json_doc doc = {0};
    int rc = EG_ERR;
    if (n > CTL_BODY_MAX || json_parse(s, n, &doc, NULL, 0) != EG_OK)
        goto out;
    const struct json_val *o = doc.root;
    const struct json_val *st = json_get(o, "state"), *w = json_get(o, "weight");
    const struct json_val *since = json_get(o, "since"), *until = json_get(o, "until");
    const struct json_val *origin = json_get(o, "origin");
    if (!st || st->type != JSON_STR || (r->state = ctl_state_parse(st->str)) < 0)
        goto out;
    if (!w || w->type == JSON_NULL)
        r->weight = CTL_WEIGHT_CONF;
    else if (w->type == JSON_NUM && w->num >= 0 && w->num <= CTL_WEIGHT_MAX &&
             w->num == floor(w->num))
        r->weight = (int)w->num;
    else
        goto out;
    if (!time_ok(since) || !time_ok(until) || until->num < since->num)
        goto out;
    r->since = since->num;
    r->until = until->num;
    if (origin) {
        if (origin->type != JSON_STR || origin->len >= sizeof(r->origin))
            goto out;
        for (size_t i = 0; i < origin->len; i++)
            if ((unsigned char)origin->str[i] < 0x20 || (unsigned char)origin->str[i] > 0x7e)
                goto out;
        memcpy(r->origin, origin->str, origin->len + 1);
    }
    rc = EG_OK;
out:
    json_free(&doc);
    return rc;
}
