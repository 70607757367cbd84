/* A strict JSON reader: recursive descent over the grammar of RFC 8259,
 * nesting limited to JSON_MAX_DEPTH so that a hostile body cannot exhaust
 * the stack. Strings are decoded (escapes, \u surrogate pairs to UTF-8);
 * raw control characters, lone surrogates, \u0000 and malformed UTF-8 are
 * refused, so a decoded string is always valid UTF-8 without NUL. */
#include "proto/json.h"
#include "base/alloc.h"
#include "base/util.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct reader {
    const char *s;
    size_t n, pos;
    struct json_doc *doc;
    char *err;
    size_t errlen;
};

static int fail(struct reader *r, const char *what)
{
    if (r->err && !r->err[0])
        snprintf(r->err, r->errlen, "%s at byte %zu", what, r->pos);
    return EG_ERR;
}

static struct json_val *node(struct reader *r, enum json_type t)
{
    struct json_val *v = eg_calloc(1, sizeof(*v));
    v->type = t;
    v->arena_next = r->doc->nodes;
    r->doc->nodes = v;
    r->doc->count++;
    return v;
}

static void skip_ws(struct reader *r)
{
    while (r->pos < r->n && (r->s[r->pos] == ' ' || r->s[r->pos] == '\t' ||
                             r->s[r->pos] == '\n' || r->s[r->pos] == '\r'))
        r->pos++;
}

static bool literal(struct reader *r, const char *word)
{
    size_t len = strlen(word);
    if (r->n - r->pos < len || memcmp(r->s + r->pos, word, len) != 0)
        return false;
    r->pos += len;
    return true;
}

static int hex4(struct reader *r, unsigned *out)
{
    if (r->n - r->pos < 4)
        return fail(r, "short \\u escape");
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = r->s[r->pos++];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return fail(r, "bad \\u escape");
    }
    *out = v;
    return EG_OK;
}

static size_t put_utf8(char *d, unsigned cp)
{
    if (cp < 0x80) {
        d[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        d[0] = (char)(0xc0 | (cp >> 6));
        d[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        d[0] = (char)(0xe0 | (cp >> 12));
        d[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        d[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    d[0] = (char)(0xf0 | (cp >> 18));
    d[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    d[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    d[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* Length of the UTF-8 sequence at P (at most LEFT bytes), 0 if malformed
 * (overlong forms, surrogates and code points above U+10FFFF included). */
static size_t utf8_len(const unsigned char *p, size_t left)
{
    unsigned cp;
    size_t len;
    if (p[0] < 0x80)
        return 1;
    if ((p[0] & 0xe0) == 0xc0) {
        len = 2;
        cp = p[0] & 0x1fu;
    } else if ((p[0] & 0xf0) == 0xe0) {
        len = 3;
        cp = p[0] & 0x0fu;
    } else if ((p[0] & 0xf8) == 0xf0) {
        len = 4;
        cp = p[0] & 0x07u;
    } else {
        return 0;
    }
    if (left < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (p[i] & 0x3fu);
    }
    static const unsigned min[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

/* A string at the opening quote; *OUT is allocated, NUL-terminated. */
static int string(struct reader *r, char **out, size_t *outlen)
{
    r->pos++; /* the quote */
    /* Decoded text is never longer than its source. */
    size_t end = r->pos;
    while (end < r->n && r->s[end] != '"')
        end += r->s[end] == '\\' ? 2 : 1;
    size_t cap = MIN(end, r->n) - r->pos + 1;
    char *d = eg_malloc(cap);
    size_t len = 0;
    *out = d;
    for (;;) {
        if (r->pos >= r->n)
            return fail(r, "unterminated string");
        unsigned char c = (unsigned char)r->s[r->pos];
        if (c == '"') {
            r->pos++;
            break;
        }
        if (c < 0x20)
            return fail(r, "control character in string");
        if (c != '\\') {
            size_t k = utf8_len((const unsigned char *)r->s + r->pos, r->n - r->pos);
            if (k == 0)
                return fail(r, "malformed UTF-8");
            memcpy(d + len, r->s + r->pos, k);
            len += k;
            r->pos += k;
            continue;
        }
        if (++r->pos >= r->n)
            return fail(r, "unterminated escape");
        char e = r->s[r->pos++];
        const char *simple = strchr("\"\\/bfnrt", e);
        if (simple && e) {
            static const char map[] = "\"\\/\b\f\n\r\t";
            d[len++] = map[simple - "\"\\/bfnrt"];
            continue;
        }
        if (e != 'u')
            return fail(r, "bad escape");
        unsigned cp;
        if (hex4(r, &cp) != EG_OK)
            return EG_ERR;
        if (cp >= 0xdc00 && cp <= 0xdfff)
            return fail(r, "lone low surrogate");
        if (cp >= 0xd800 && cp <= 0xdbff) {
            unsigned lo;
            if (r->n - r->pos < 2 || r->s[r->pos] != '\\' || r->s[r->pos + 1] != 'u')
                return fail(r, "lone high surrogate");
            r->pos += 2;
            if (hex4(r, &lo) != EG_OK)
                return EG_ERR;
            if (lo < 0xdc00 || lo > 0xdfff)
                return fail(r, "bad surrogate pair");
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        }
        if (cp == 0)
            return fail(r, "\\u0000 in string");
        len += put_utf8(d + len, cp);
    }
    d[len] = '\0';
    *outlen = len;
    return EG_OK;
}

static int number(struct reader *r, struct json_val *v)
{
    size_t start = r->pos;
    const char *s = r->s;
    if (r->pos < r->n && s[r->pos] == '-')
        r->pos++;
    if (r->pos >= r->n)
        return fail(r, "bad number");
    if (s[r->pos] == '0') {
        r->pos++;
    } else if (s[r->pos] >= '1' && s[r->pos] <= '9') {
        while (r->pos < r->n && s[r->pos] >= '0' && s[r->pos] <= '9')
            r->pos++;
    } else {
        return fail(r, "bad number");
    }
    if (r->pos < r->n && s[r->pos] == '.') {
        r->pos++;
        size_t d = r->pos;
        while (r->pos < r->n && s[r->pos] >= '0' && s[r->pos] <= '9')
            r->pos++;
        if (r->pos == d)
            return fail(r, "bad fraction");
    }
    if (r->pos < r->n && (s[r->pos] == 'e' || s[r->pos] == 'E')) {
        r->pos++;
        if (r->pos < r->n && (s[r->pos] == '+' || s[r->pos] == '-'))
            r->pos++;
        size_t d = r->pos;
        while (r->pos < r->n && s[r->pos] >= '0' && s[r->pos] <= '9')
            r->pos++;
        if (r->pos == d)
            return fail(r, "bad exponent");
    }
    char buf[64];
    size_t len = r->pos - start;
    if (len >= sizeof(buf))
        return fail(r, "number too long");
    memcpy(buf, s + start, len);
    buf[len] = '\0';
    v->num = strtod(buf, NULL);
    return EG_OK;
}

static int value(struct reader *r, struct json_val **out, int depth);

static int container(struct reader *r, struct json_val *v, int depth)
{
    bool obj = v->type == JSON_OBJ;
    char close = obj ? '}' : ']';
    struct json_val **tail = &v->child;
    r->pos++; /* the opening bracket */
    skip_ws(r);
    if (r->pos < r->n && r->s[r->pos] == close) {
        r->pos++;
        return EG_OK;
    }
    for (;;) {
        char *key = NULL;
        size_t klen = 0;
        skip_ws(r);
        if (obj) {
            if (r->pos >= r->n || r->s[r->pos] != '"')
                return fail(r, "expected a member name");
            int rc = string(r, &key, &klen);
            if (rc != EG_OK) {
                free(key);
                return rc;
            }
            skip_ws(r);
            if (r->pos >= r->n || r->s[r->pos] != ':') {
                free(key);
                return fail(r, "expected ':'");
            }
            r->pos++;
        }
        struct json_val *m = NULL;
        int rc = value(r, &m, depth + 1);
        if (m)
            m->key = key;
        else
            free(key);
        if (rc != EG_OK)
            return rc;
        *tail = m;
        tail = &m->next;
        skip_ws(r);
        if (r->pos >= r->n)
            return fail(r, obj ? "unterminated object" : "unterminated array");
        if (r->s[r->pos] == ',') {
            r->pos++;
            continue;
        }
        if (r->s[r->pos] == close) {
            r->pos++;
            return EG_OK;
        }
        return fail(r, obj ? "expected ',' or '}'" : "expected ',' or ']'");
    }
}

static int value(struct reader *r, struct json_val **out, int depth)
{
    if (depth > JSON_MAX_DEPTH)
        return fail(r, "nested too deep");
    skip_ws(r);
    if (r->pos >= r->n)
        return fail(r, "expected a value");
    char c = r->s[r->pos];
    struct json_val *v;
    switch (c) {
    case '{':
    case '[':
        v = *out = node(r, c == '{' ? JSON_OBJ : JSON_ARR);
        return container(r, v, depth);
    case '"':
        v = *out = node(r, JSON_STR);
        return string(r, &v->str, &v->len);
    case 't':
    case 'f':
        v = *out = node(r, JSON_BOOL);
        v->b = c == 't';
        return literal(r, v->b ? "true" : "false") ? EG_OK : fail(r, "bad literal");
    case 'n':
        *out = node(r, JSON_NULL);
        return literal(r, "null") ? EG_OK : fail(r, "bad literal");
    default:
        if (c == '-' || (c >= '0' && c <= '9'))
            return number(r, *out = node(r, JSON_NUM));
        return fail(r, "unexpected character");
    }
}

int json_parse(const char *s, size_t n, struct json_doc *doc, char *err, size_t errlen)
{
    memset(doc, 0, sizeof(*doc));
    struct reader r = {.s = s, .n = n, .doc = doc, .err = err, .errlen = errlen};
    if (err && errlen)
        err[0] = '\0';
    if (value(&r, &doc->root, 0) != EG_OK)
        return EG_ERR;
    skip_ws(&r);
    if (r.pos != n)
        return fail(&r, "trailing bytes");
    return EG_OK;
}

void json_free(struct json_doc *doc)
{
    for (struct json_val *v = doc->nodes, *next; v; v = next) {
        next = v->arena_next;
        free(v->str);
        free(v->key);
        free(v);
    }
    memset(doc, 0, sizeof(*doc));
}

const struct json_val *json_get(const struct json_val *o, const char *key)
{
    if (!o || o->type != JSON_OBJ)
        return NULL;
    const struct json_val *found = NULL;
    for (const struct json_val *m = o->child; m; m = m->next)
        if (strcmp(m->key, key) == 0)
            found = m; /* the last one, as most readers do */
    return found;
}

const char *json_unknown_key(const struct json_val *o, const char *const *known)
{
    for (const struct json_val *m = o->child; m; m = m->next) {
        bool ok = false;
        for (int i = 0; known[i] && !ok; i++)
            ok = strcmp(m->key, known[i]) == 0;
        if (!ok)
            return m->key;
    }
    return NULL;
}

void json_write_str(struct sbuf *b, const char *s, size_t n)
{
    sbuf_add(b, "\"", 1);
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\' && c != 0x7f)
            continue;
        sbuf_add(b, s + run, i - run);
        run = i + 1;
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            sbuf_add(b, e, 2);
        } else {
            sbuf_printf(b, "\\u%04x", c);
        }
    }
    sbuf_add(b, s + run, n - run);
    sbuf_add(b, "\"", 1);
}
