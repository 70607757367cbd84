/* Configuration parser.
 *
 * The grammar is nginx's: `directive arg ...;` and `name arg { ... }` blocks,
 * `#` comments, double or single quoted strings. Parsing is driven by one
 * table of directives (name, contexts where it may appear, argument count,
 * whether it opens a block, handler): adding a directive is adding a row and
 * a handler. The parser works on a buffer, never stops at the first error
 * (every error is reported as FILE:LINE: message), and never trusts its input:
 * it is fuzzed. */
#include "conf/conf.h"
#include "base/alloc.h"
#include "base/log.h"
#include "base/util.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CONF_MAX_ARGS 64
#define CONF_MAX_DEPTH 8
#define CONF_MAX_ERRORS 50
#define CONF_MAX_FILE (16 * 1024 * 1024)

/* ---- arena: every allocation of a configuration, freed at once ---- */

struct conf_arena {
    struct conf_arena *next;
    size_t used, cap;
    char data[];
};

static void *arena_alloc(struct conf_arena **ap, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    struct conf_arena *a = *ap;
    if (!a || a->cap - a->used < n) {
        size_t cap = MAX(n, (size_t)16384);
        struct conf_arena *na = eg_malloc(sizeof(*na) + cap);
        na->next = a;
        na->used = 0;
        na->cap = cap;
        *ap = na;
        a = na;
    }
    void *p = a->data + a->used;
    a->used += n;
    memset(p, 0, n);
    return p;
}

static void arena_free(struct conf_arena *a)
{
    while (a) {
        struct conf_arena *n = a->next;
        free(a);
        a = n;
    }
}

static char *arena_strndup(struct conf_arena **ap, const char *s, size_t n)
{
    char *p = arena_alloc(ap, n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

/* Grows an arena array by one element, doubling its capacity when full.
 * Capacity is implicit: a power of two >= count. */
static void *arena_push(struct conf_arena **ap, void *arr, int *count, size_t elsize)
{
    int n = *count;
    if (n == 0 || (n & (n - 1)) == 0) {
        void *na = arena_alloc(ap, elsize * (size_t)(n ? n * 2 : 1));
        if (n)
            memcpy(na, arr, elsize * (size_t)n);
        arr = na;
    }
    memset((char *)arr + elsize * (size_t)n, 0, elsize);
    *count = n + 1;
    return arr;
}

/* ---- errors ---- */

static void errs_add(struct conf_errs *e, const char *file, int line, const char *fmt, va_list ap)
{
    char msg[1024];
    int n = snprintf(msg, sizeof(msg), "%s:%d: ", file, line);
    if (n < 0 || (size_t)n >= sizeof(msg) / 2) /* a very long path: keep room for the message */
        n = snprintf(msg, sizeof(msg), "...%s:%d: ", file + strlen(file) - 200, line);
    vsnprintf(msg + n, sizeof(msg) - (size_t)n, fmt, ap);
    size_t len = strlen(msg);
    if (e->len + len + 2 > e->cap) {
        size_t cap = MAX(e->cap * 2, e->len + len + 256);
        char *t = eg_realloc(e->text, cap);
        e->text = t;
        e->cap = cap;
    }
    memcpy(e->text + e->len, msg, len);
    e->len += len;
    e->text[e->len++] = '\n';
    e->text[e->len] = '\0';
    e->count++;
}

void conf_errs_log(const struct conf_errs *e)
{
    const char *p = e->text;
    while (p && *p) {
        const char *nl = strchr(p, '\n');
        int len = nl ? (int)(nl - p) : (int)strlen(p);
        log_err("%.*s", len, p);
        p = nl ? nl + 1 : p + len;
    }
}

void conf_errs_free(struct conf_errs *e)
{
    free(e->text);
    memset(e, 0, sizeof(*e));
}

/* ---- tokenizer ---- */

enum tok_type { TOK_EOF, TOK_WORD, TOK_SEMI, TOK_LBRACE, TOK_RBRACE, TOK_ERROR };

struct tok {
    int type;
    int line;
    char *s;        /* TOK_WORD: NUL-terminated, in the arena */
    size_t len;
};

struct parser {
    const char *file;
    const char *p, *end;
    int line;
    struct conf *conf;
    struct conf_errs *errs;
    int nerrs;
    bool fatal;             /* stop parsing: the rest cannot be trusted */
    struct tok peeked;
    bool has_peek;
};

static void perr(struct parser *p, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

void conf_errs_add(struct conf_errs *e, const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    errs_add(e, file, line, fmt, ap);
    va_end(ap);
}

/* Reports an error; past CONF_MAX_ERRORS the input is most likely not a
 * configuration at all, so parsing stops with one last line saying so. */
static void perr(struct parser *p, int line, const char *fmt, ...)
{
    if (p->nerrs >= CONF_MAX_ERRORS) {
        if (p->nerrs++ == CONF_MAX_ERRORS)
            conf_errs_add(p->errs, p->file, line, "too many errors, giving up");
        p->fatal = true;
        return;
    }
    p->nerrs++;
    va_list ap;
    va_start(ap, fmt);
    errs_add(p->errs, p->file, line, fmt, ap);
    va_end(ap);
}

static bool is_word_byte(unsigned char c)
{
    return c > 0x20 && c < 0x7f && c != ';' && c != '{' && c != '}' && c != '#' && c != '"' &&
           c != '\'';
}

static struct tok lex_quoted(struct parser *p)
{
    struct tok t = {.type = TOK_WORD, .line = p->line};
    char q = *p->p++;
    size_t cap = 64, n = 0;
    char *tmp = eg_malloc(cap);
    while (p->p < p->end && *p->p != q) {
        char c = *p->p++;
        if (c == '\n')
            p->line++;
        if (c == '\\' && p->p < p->end) {
            c = *p->p++;
            if (c == '\n')
                p->line++;
            else if (c == 'n')
                c = '\n';
            else if (c == 't')
                c = '\t';
        }
        if (c == '\0') {
            free(tmp);
            perr(p, p->line, "NUL byte inside a quoted string");
            p->fatal = true;
            return (struct tok){.type = TOK_ERROR, .line = p->line};
        }
        if (n + 1 >= cap) {
            cap *= 2;
            char *nt = eg_realloc(tmp, cap);
            tmp = nt;
        }
        tmp[n++] = c;
    }
    if (p->p >= p->end) {
        free(tmp);
        perr(p, t.line, "unterminated quoted string");
        p->fatal = true;
        return (struct tok){.type = TOK_ERROR, .line = t.line};
    }
    p->p++;
    t.s = arena_strndup(&p->conf->arena, tmp, n);
    t.len = n;
    free(tmp);
    return t;
}

static struct tok lex(struct parser *p)
{
    if (p->has_peek) {
        p->has_peek = false;
        return p->peeked;
    }
    for (;;) {
        while (p->p < p->end && (*p->p == ' ' || *p->p == '\t' || *p->p == '\r' || *p->p == '\n')) {
            if (*p->p == '\n')
                p->line++;
            p->p++;
        }
        if (p->p < p->end && *p->p == '#') {
            while (p->p < p->end && *p->p != '\n')
                p->p++;
            continue;
        }
        break;
    }
    struct tok t = {.line = p->line};
    if (p->p >= p->end) {
        t.type = TOK_EOF;
        return t;
    }
    unsigned char c = (unsigned char)*p->p;
    switch (c) {
    case ';': p->p++; t.type = TOK_SEMI; return t;
    case '{': p->p++; t.type = TOK_LBRACE; return t;
    case '}': p->p++; t.type = TOK_RBRACE; return t;
    case '"':
    case '\'': return lex_quoted(p);
    }
    if (!is_word_byte(c)) {
        perr(p, p->line, "invalid byte 0x%02x (the configuration is text)", c);
        p->fatal = true;
        t.type = TOK_ERROR;
        return t;
    }
    const char *s = p->p;
    while (p->p < p->end && is_word_byte((unsigned char)*p->p))
        p->p++;
    t.type = TOK_WORD;
    t.len = (size_t)(p->p - s);
    t.s = arena_strndup(&p->conf->arena, s, t.len);
    return t;
}

static void unlex(struct parser *p, struct tok t)
{
    p->peeked = t;
    p->has_peek = true;
}

/* ---- value parsers ---- */

int conf_parse_duration(const char *s, double *sec)
{
    /* Digits, an optional fraction, a unit: nothing strtod would also take
     * (hexadecimal, exponents, inf). */
    const char *end = s;
    while (isdigit((unsigned char)*end))
        end++;
    if (end == s || end - s > 9)
        return EG_ERR;
    if (*end == '.') {
        const char *frac = ++end;
        while (isdigit((unsigned char)*end))
            end++;
        if (end == frac || end - frac > 6)
            return EG_ERR;
    }
    double v = strtod(s, NULL);
    double mul;
    if (strcmp(end, "ms") == 0)
        mul = 0.001;
    else if (strcmp(end, "s") == 0 || *end == '\0')
        mul = 1;
    else if (strcmp(end, "m") == 0)
        mul = 60;
    else if (strcmp(end, "h") == 0)
        mul = 3600;
    else if (strcmp(end, "d") == 0)
        mul = 86400;
    else
        return EG_ERR;
    v *= mul;
    if (v > 365 * 86400.0)
        return EG_ERR;
    *sec = v;
    return EG_OK;
}

int conf_parse_size(const char *s, size_t *bytes)
{
    char *end;
    errno = 0;
    if (!isdigit((unsigned char)*s))
        return EG_ERR;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno)
        return EG_ERR;
    unsigned long long mul = 1;
    if (*end == 'k' || *end == 'K')
        mul = 1024, end++;
    else if (*end == 'm' || *end == 'M')
        mul = 1024 * 1024, end++;
    else if (*end == 'g' || *end == 'G')
        mul = 1024ULL * 1024 * 1024, end++;
    if (*end != '\0' || v > (1ULL << 40) / mul)
        return EG_ERR;
    *bytes = (size_t)(v * mul);
    return EG_OK;
}

static int parse_int(const char *s, long min, long max, long *out)
{
    char *end;
    errno = 0;
    if (!isdigit((unsigned char)*s) && *s != '-')
        return EG_ERR;
    long v = strtol(s, &end, 10);
    if (errno || *end != '\0' || v < min || v > max)
        return EG_ERR;
    *out = v;
    return EG_OK;
}

/* ---- directive handlers ---- */

enum { CTX_MAIN = 1, CTX_DC = 2, CTX_LSN = 4, CTX_REDIS = 8 };

struct stmt {
    const char *name;
    int line;
    struct tok args[CONF_MAX_ARGS];
    int nargs;
    void *obj;              /* the block object the statement is in */
};

/* A handler returns EG_OK or EG_ERR (after reporting). A block handler sets
 * *child to the object its block fills. */
typedef int (*cmd_fn)(struct parser *p, struct stmt *st, void **child);

struct cmd {
    const char *name;
    int ctx;
    int min_args, max_args;
    int block_ctx;          /* 0: a plain directive; else the context of its block */
    cmd_fn fn;
    cmd_fn end;             /* block: called when the block closes */
};

#define ARG(i) (st->args[i].s)

static int bad_value(struct parser *p, struct stmt *st, int i, const char *what)
{
    perr(p, st->args[i].line, "\"%s\": %s, got \"%s\"", st->name, what, ARG(i));
    return EG_ERR;
}

static int get_duration(struct parser *p, struct stmt *st, int i, double *out)
{
    if (conf_parse_duration(ARG(i), out) != EG_OK)
        return bad_value(p, st, i, "expected a duration such as 500ms, 2s, 1m, 1h");
    return EG_OK;
}

static int get_positive_duration(struct parser *p, struct stmt *st, int i, double *out)
{
    if (conf_parse_duration(ARG(i), out) != EG_OK || *out <= 0)
        return bad_value(p, st, i, "expected a duration above zero such as 500ms, 2s, 1m");
    return EG_OK;
}

static int get_int(struct parser *p, struct stmt *st, int i, long min, long max, int *out)
{
    long v;
    if (parse_int(ARG(i), min, max, &v) != EG_OK) {
        perr(p, st->args[i].line, "\"%s\": expected an integer from %ld to %ld, got \"%s\"",
             st->name, min, max, ARG(i));
        return EG_ERR;
    }
    *out = (int)v;
    return EG_OK;
}

static int get_bool(struct parser *p, struct stmt *st, int i, bool *out)
{
    if (strcmp(ARG(i), "on") == 0)
        *out = true;
    else if (strcmp(ARG(i), "off") == 0)
        *out = false;
    else
        return bad_value(p, st, i, "expected on or off");
    return EG_OK;
}

static int get_name(struct parser *p, struct stmt *st, int i)
{
    const char *s = ARG(i);
    size_t n = st->args[i].len;
    if (n == 0 || n >= CONF_NAME_MAX)
        return bad_value(p, st, i, "expected a name of 1 to 63 characters");
    for (size_t k = 0; k < n; k++)
        if (!isalnum((unsigned char)s[k]) && s[k] != '-' && s[k] != '_' && s[k] != '.')
            return bad_value(p, st, i, "a name holds letters, digits, '-', '_' and '.'");
    return EG_OK;
}

static int cmd_workers(struct parser *p, struct stmt *st, void **child)
{
    (void)child;
    if (strcmp(ARG(0), "auto") == 0) {
        p->conf->workers = 0;
        return EG_OK;
    }
    return get_int(p, st, 0, 1, 256, &p->conf->workers);
}

static int cmd_log(struct parser *p, struct stmt *st, void **child)
{
    (void)child;
    const char *lvl = ARG(st->nargs - 1);
    int level = log_level_parse(lvl);
    if (level < 0)
        return bad_value(p, st, st->nargs - 1, "expected a level: error, warn, info or debug");
    p->conf->log_level = level;
    if (st->nargs == 2) {
        if (ARG(0)[0] != '/')
            return bad_value(p, st, 0, "expected an absolute file path");
        p->conf->log_file = ARG(0);
    }
    return EG_OK;
}

static int get_addr(struct parser *p, struct stmt *st, int i, struct net_addr *a)
{
    char err[EG_ERRLEN];
    if (net_parse_addr(ARG(i), a, err, sizeof(err)) != EG_OK) {
        perr(p, st->args[i].line, "\"%s\": %s", st->name, err);
        return EG_ERR;
    }
    return EG_OK;
}

static int cmd_stats(struct parser *p, struct stmt *st, void **child)
{
    (void)child;
    if (strcmp(ARG(0), "off") == 0) {
        p->conf->stats_on = false;
        return EG_OK;
    }
    if (get_addr(p, st, 0, &p->conf->stats_addr) != EG_OK)
        return EG_ERR;
    p->conf->stats_on = true;
    return EG_OK;
}

static int get_word(struct parser *p, struct stmt *st, char **out);

static int cmd_stats_token(struct parser *p, struct stmt *st, void **child)
{
    (void)child;
    if (st->args[0].len < 8)
        return bad_value(p, st, 0, "expected a token of at least 8 characters");
    return get_word(p, st, &p->conf->stats_token);
}

/* access_log off|on|json: on is key=value */
static int cmd_access_log(struct parser *p, struct stmt *st, void **child)
{
    (void)child;
    static const char *const forms[] = {"off", "on", "json"};
    for (int i = 0; i < 3; i++)
        if (strcmp(ARG(0), forms[i]) == 0) {
            p->conf->access_log = i;
            return EG_OK;
        }
    return bad_value(p, st, 0, "expected off, on or json");
}

static int cmd_user(struct parser *p, struct stmt *st, void **child)
{
    (void)child;
    return get_word(p, st, &p->conf->user);
}

static int cmd_pid(struct parser *p, struct stmt *st, void **child)
{
    (void)child;
    if (ARG(0)[0] != '/')
        return bad_value(p, st, 0, "expected an absolute file path");
    p->conf->pid_file = ARG(0);
    return EG_OK;
}

static int cmd_buffer_size(struct parser *p, struct stmt *st, void **child)
{
    (void)child;
    size_t v;
    if (conf_parse_size(ARG(0), &v) != EG_OK || v < 4096 || v > 1024 * 1024)
        return bad_value(p, st, 0, "expected a size from 4k to 1m");
    p->conf->buffer_size = v;
    return EG_OK;
}

static int cmd_drain_timeout(struct parser *p, struct stmt *st, void **child)
{
    (void)child;
    return get_duration(p, st, 0, &p->conf->drain_timeout);
}

/* datacenter NAME { ... } */

static int cmd_datacenter(struct parser *p, struct stmt *st, void **child)
{
    if (get_name(p, st, 0) != EG_OK)
        return EG_ERR;
    struct conf *c = p->conf;
    if (conf_dc_index(c, ARG(0)) >= 0) {
        perr(p, st->line, "\"datacenter\": \"%s\" is defined twice", ARG(0));
        return EG_ERR;
    }
    c->dcs = arena_push(&c->arena, c->dcs, &c->ndcs, sizeof(*c->dcs));
    struct conf_dc *dc = &c->dcs[c->ndcs - 1];
    dc->name = ARG(0);
    dc->line = st->line;
    dc->priority = 1;
    dc->min_servers = 1;
    dc->passive_fall = 3;
    dc->passive_timeout = 10;
    dc->resolve_interval = 30;
    *child = (void *)(intptr_t)(c->ndcs - 1);
    return EG_OK;
}

/* Block objects are array elements that may move when the array grows, so
 * blocks carry an index, not a pointer. */
static struct conf_dc *cur_dc(struct parser *p, struct stmt *st)
{
    return &p->conf->dcs[(intptr_t)st->obj];
}

static struct conf_listener *cur_lsn(struct parser *p, struct stmt *st)
{
    return &p->conf->lsns[(intptr_t)st->obj];
}

static int cmd_dc_end(struct parser *p, struct stmt *st, void **child)
{
    (void)child;
    struct conf_dc *dc = cur_dc(p, st);
    if (dc->server_lines == 0) { /* an invalid one was reported already */
        perr(p, dc->line, "datacenter \"%s\": no \"server\"", dc->name);
        return EG_ERR;
    }
    if (dc->min_servers > dc->nservers && dc->nservers > 0) {
        bool names = false;
        for (int i = 0; i < dc->nservers; i++)
            names |= dc->servers[i].resolve;
        if (!names) {
            perr(p, dc->line, "datacenter \"%s\": \"min_servers %d\" but only %d servers",
                 dc->name, dc->min_servers, dc->nservers);
            return EG_ERR;
        }
    }
    return EG_OK;
}

static int cmd_priority(struct parser *p, struct stmt *st, void **child)
{
    (void)child;
    return get_int(p, st, 0, 0, 1000000, &cur_dc(p, st)->priority);
}

static int cmd_min_servers(struct parser *p, struct stmt *st, void **child)
{
    (void)child;
    return get_int(p, st, 0, 1, 100000, &cur_dc(p, st)->min_servers);
}

static int cmd_passive(struct parser *p, struct stmt *st, void **child)
{
    (void)child;
    struct conf_dc *dc = cur_dc(p, st);
    for (int i = 0; i < st->nargs; i += 2) {
        if (i + 1 >= st->nargs) {
            perr(p, st->line, "\"passive\": \"%s\" needs a value", ARG(i));
            return EG_ERR;
        }
        if (strcmp(ARG(i), "fall") == 0) {
            if (get_int(p, st, i + 1, 0, 1000, &dc->passive_fall) != EG_OK)
                return EG_ERR;
        } else if (strcmp(ARG(i), "timeout") == 0) {
            if (get_positive_duration(p, st, i + 1, &dc->passive_timeout) != EG_OK)
                return EG_ERR;
        } else {
            return bad_value(p, st, i, "expected fall or timeout");
        }
    }
    return EG_OK;
}

static int cmd_resolve_interval(struct parser *p, struct stmt *st, void **child)
{
    (void)child;
    return get_positive_duration(p, st, 0, &cur_dc(p, st)->resolve_interval);
}

static bool host_is_valid(const char *h)
{
    /* A DNS name or an address literal; nothing that could smuggle bytes
     * into a Host header or a log line. */
    for (const char *s = h; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '-' && *s != '.' && *s != ':' && *s != '_')
            return false;
    return *h != '\0';
}

/* server HOST:PORT [weight N] */
static int cmd_server(struct parser *p, struct stmt *st, void **child)
{
    (void)child;
    struct conf_dc *dc = cur_dc(p, st);
    char host[256], err[EG_ERRLEN];
    uint16_t port;
    dc->server_lines++;
    if (net_split_hostport(ARG(0), host, sizeof(host), &port, err, sizeof(err)) != EG_OK) {
        perr(p, st->line, "\"server\": %s", err);
        return EG_ERR;
    }
    if (port == 0 || !host_is_valid(host))
        return bad_value(p, st, 0, "expected HOST:PORT with a port from 1 to 65535");
    struct conf_server s = {.spec = ARG(0), .port = port, .weight = 1, .line = st->line};
    s.host = arena_strndup(&p->conf->arena, host, strlen(host));
    char numeric[300];
    snprintf(numeric, sizeof(numeric), strchr(host, ':') ? "[%s]:%u" : "%s:%u", host, port);
    s.resolve = net_parse_addr(numeric, &s.addr, err, sizeof(err)) != EG_OK;
    for (int i = 1; i < st->nargs; i++) {
        const char *k = ARG(i);
        bool has_value = i + 1 < st->nargs;
        if (strcmp(k, "weight") == 0 && has_value) {
            if (get_int(p, st, ++i, 1, 1000, &s.weight) != EG_OK)
                return EG_ERR;
        } else if (strcmp(k, "tls") == 0) {
            s.tls = true;
        } else if (strcmp(k, "verify") == 0 && has_value) {
            s.verify = ARG(++i);
        } else if (strcmp(k, "sni") == 0 && has_value) {
            if (!host_is_valid(ARG(++i)))
                return bad_value(p, st, i, "expected a host name");
            s.sni = ARG(i);
        } else {
            return bad_value(p, st, i, "expected weight N, tls, verify CAFILE or sni NAME");
        }
    }
    if ((s.verify || s.sni) && !s.tls) {
        perr(p, st->line, "\"server\": verify and sni need tls");
        return EG_ERR;
    }
    dc->servers = arena_push(&p->conf->arena, dc->servers, &dc->nservers, sizeof(*dc->servers));
    dc->servers[dc->nservers - 1] = s;
    return EG_OK;
}

/* check tcp|http PATH|tls [interval D] [timeout D] [rise N] [fall N] [expect CODE] [host NAME] */
static int cmd_check(struct parser *p, struct stmt *st, void **child)
{
    (void)child;
    struct conf_dc *dc = cur_dc(p, st);
    struct conf_check ck = {.interval = 1, .timeout = 1, .rise = 2, .fall = 3, .line = st->line};
    int i = 1;
    if (strcmp(ARG(0), "tcp") == 0) {
        ck.type = CHECK_TCP;
    } else if (strcmp(ARG(0), "tls") == 0) {
        ck.type = CHECK_TLS;
    } else if (strcmp(ARG(0), "http") == 0) {
        ck.type = CHECK_HTTP;
        if (st->nargs < 2 || ARG(1)[0] != '/') {
            perr(p, st->line, "\"check\": http needs a path starting with /");
            return EG_ERR;
        }
        ck.path = ARG(1);
        i = 2;
    } else {
        return bad_value(p, st, 0, "expected tcp, http or tls");
    }
    for (; i < st->nargs; i += 2) {
        const char *k = ARG(i);
        if (i + 1 >= st->nargs) {
            perr(p, st->args[i].line, "\"check\": \"%s\" needs a value", k);
            return EG_ERR;
        }
        int rc;
        if (strcmp(k, "interval") == 0)
            rc = get_positive_duration(p, st, i + 1, &ck.interval);
        else if (strcmp(k, "timeout") == 0)
            rc = get_positive_duration(p, st, i + 1, &ck.timeout);
        else if (strcmp(k, "rise") == 0)
            rc = get_int(p, st, i + 1, 1, 100, &ck.rise);
        else if (strcmp(k, "fall") == 0)
            rc = get_int(p, st, i + 1, 1, 100, &ck.fall);
        else if (strcmp(k, "expect") == 0 && ck.type == CHECK_HTTP)
            rc = get_int(p, st, i + 1, 100, 599, &ck.expect);
        else if (strcmp(k, "host") == 0 && ck.type == CHECK_HTTP)
            rc = host_is_valid(ARG(i + 1)) ? (ck.host = ARG(i + 1), EG_OK)
                                            : bad_value(p, st, i + 1, "expected a host name");
        else
            rc = bad_value(p, st, i, "expected interval, timeout, rise, fall"
                                     " (http: also expect, host)");
        if (rc != EG_OK)
            return EG_ERR;
    }
    if (ck.path)
        for (const char *s = ck.path; *s; s++)
            if ((unsigned char)*s <= 0x20 || *s == 0x7f) {
                perr(p, st->line, "\"check\": the path may not contain spaces or controls");
                return EG_ERR;
            }
    dc->check = ck;
    return EG_OK;
}

/* listener NAME { ... } */

static int cmd_listener(struct parser *p, struct stmt *st, void **child)
{
    if (get_name(p, st, 0) != EG_OK)
        return EG_ERR;
    struct conf *c = p->conf;
    for (int i = 0; i < c->nlsns; i++)
        if (strcmp(c->lsns[i].name, ARG(0)) == 0) {
            perr(p, st->line, "\"listener\": \"%s\" is defined twice", ARG(0));
            return EG_ERR;
        }
    c->lsns = arena_push(&c->arena, c->lsns, &c->nlsns, sizeof(*c->lsns));
    struct conf_listener *l = &c->lsns[c->nlsns - 1];
    l->name = ARG(0);
    l->line = st->line;
    l->mode = MODE_HTTP;
    l->retries = 2;
    l->connect_timeout = 1;
    l->idle_timeout = 60;
    l->hold_timeout = 5;
    l->handshake_timeout = 10;
    l->request_timeout = 10;
    l->response_timeout = 30;
    l->max_request_line = 8192;
    l->max_header_size = 16384 - 1024;
    l->max_headers = 100;
    l->replay_buffer = 65536;
    l->forward_for = true;
    *child = (void *)(intptr_t)(c->nlsns - 1);
    return EG_OK;
}

static int cmd_listener_end(struct parser *p, struct stmt *st, void **child)
{
    (void)child;
    struct conf_listener *l = cur_lsn(p, st);
    if (l->nlistens == 0) {
        perr(p, l->line, "listener \"%s\": no \"listen\"", l->name);
        return EG_ERR;
    }
    if (l->mode == MODE_TCP && (l->sess == SESS_HEADER || l->sess == SESS_COOKIE)) {
        perr(p, l->sess_line, "listener \"%s\": \"session %s\" needs mode http", l->name,
             l->sess == SESS_HEADER ? "header" : "cookie");
        return EG_ERR;
    }
    if (l->sess == SESS_SNI && l->ncerts == 0) {
        perr(p, l->sess_line, "listener \"%s\": \"session sni\" needs \"tls\"", l->name);
        return EG_ERR;
    }
    return EG_OK;
}

static int cmd_listen(struct parser *p, struct stmt *st, void **child)
{
    (void)child;
    struct conf_listener *l = cur_lsn(p, st);
    struct net_addr a;
    if (get_addr(p, st, 0, &a) != EG_OK)
        return EG_ERR;
    l->listens = arena_push(&p->conf->arena, l->listens, &l->nlistens, sizeof(*l->listens));
    l->listens[l->nlistens - 1] = (struct conf_listen){.addr = a, .line = st->line};
    return EG_OK;
}

static int cmd_mode(struct parser *p, struct stmt *st, void **child)
{
    (void)child;
    if (strcmp(ARG(0), "http") == 0)
        cur_lsn(p, st)->mode = MODE_HTTP;
    else if (strcmp(ARG(0), "tcp") == 0)
        cur_lsn(p, st)->mode = MODE_TCP;
    else
        return bad_value(p, st, 0, "expected http or tcp");
    return EG_OK;
}

/* tls cert FILE key FILE */
static int cmd_tls(struct parser *p, struct stmt *st, void **child)
{
    (void)child;
    struct conf_listener *l = cur_lsn(p, st);
    if (st->nargs != 4 || strcmp(ARG(0), "cert") != 0 || strcmp(ARG(2), "key") != 0) {
        perr(p, st->line, "\"tls\": expected \"tls cert FILE key FILE\"");
        return EG_ERR;
    }
    l->certs = arena_push(&p->conf->arena, l->certs, &l->ncerts, sizeof(*l->certs));
    l->certs[l->ncerts - 1] = (struct conf_cert){.cert = ARG(1), .key = ARG(3), .line = st->line};
    return EG_OK;
}

static bool token_is_header_name(const char *s)
{
    static const char tchar[] = "!#$%&'*+-.^_`|~";
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr(tchar, *s))
            return false;
    return true;
}

/* session header NAME | cookie NAME | client_ip | sni */
static int cmd_session(struct parser *p, struct stmt *st, void **child)
{
    (void)child;
    struct conf_listener *l = cur_lsn(p, st);
    const char *k = ARG(0);
    l->sess_line = st->line;
    bool named = strcmp(k, "header") == 0 || strcmp(k, "cookie") == 0;
    if (named) {
        if (st->nargs != 2 || !token_is_header_name(ARG(1))) {
            perr(p, st->line, "\"session\": \"%s\" needs a name (a header or cookie token)", k);
            return EG_ERR;
        }
        l->sess = k[0] == 'h' ? SESS_HEADER : SESS_COOKIE;
        l->sess_name = ARG(1);
        l->sess_name_len = st->args[1].len;
        return EG_OK;
    }
    if (st->nargs != 1)
        return bad_value(p, st, 1, "unexpected argument");
    if (strcmp(k, "client_ip") == 0)
        l->sess = SESS_CLIENT_IP;
    else if (strcmp(k, "sni") == 0)
        l->sess = SESS_SNI;
    else if (strcmp(k, "none") == 0)
        l->sess = SESS_NONE;
    else
        return bad_value(p, st, 0, "expected header NAME, cookie NAME, client_ip, sni or none");
    return EG_OK;
}

static int cmd_datacenters(struct parser *p, struct stmt *st, void **child)
{
    (void)child;
    struct conf_listener *l = cur_lsn(p, st);
    l->dcs_line = st->line;
    for (int i = 0; i < st->nargs; i++) {
        l->dc_names = arena_push(&p->conf->arena, l->dc_names, &l->ndc_names, sizeof(char *));
        l->dc_names[l->ndc_names - 1] = ARG(i);
    }
    return EG_OK;
}

static int cmd_failback(struct parser *p, struct stmt *st, void **child)
{
    (void)child;
    return get_bool(p, st, 0, &cur_lsn(p, st)->failback);
}

static int cmd_retries(struct parser *p, struct stmt *st, void **child)
{
    (void)child;
    return get_int(p, st, 0, 0, CONF_MAX_RETRIES, &cur_lsn(p, st)->retries);
}

static int cmd_connect_timeout(struct parser *p, struct stmt *st, void **child)
{
    (void)child;
    return get_positive_duration(p, st, 0, &cur_lsn(p, st)->connect_timeout);
}

static int cmd_idle_timeout(struct parser *p, struct stmt *st, void **child)
{
    (void)child;
    return get_positive_duration(p, st, 0, &cur_lsn(p, st)->idle_timeout);
}

static int cmd_hold_timeout(struct parser *p, struct stmt *st, void **child)
{
    (void)child;
    return get_duration(p, st, 0, &cur_lsn(p, st)->hold_timeout);
}

/* The listener timeouts that share one form: a positive duration. */
static int cmd_lsn_timeout(struct parser *p, struct stmt *st, void **child)
{
    (void)child;
    struct conf_listener *l = cur_lsn(p, st);
    double *d = strcmp(st->name, "handshake_timeout") == 0 ? &l->handshake_timeout
                : strcmp(st->name, "request_timeout") == 0 ? &l->request_timeout
                                                           : &l->response_timeout;
    return get_positive_duration(p, st, 0, d);
}

static int get_size_in(struct parser *p, struct stmt *st, size_t min, size_t max, size_t *out)
{
    size_t v;
    if (conf_parse_size(ARG(0), &v) != EG_OK || v < min || v > max) {
        perr(p, st->args[0].line, "\"%s\": expected a size from %zu to %zu, got \"%s\"",
             st->name, min, max, ARG(0));
        return EG_ERR;
    }
    *out = v;
    return EG_OK;
}

static int cmd_max_request_line(struct parser *p, struct stmt *st, void **child)
{
    (void)child;
    size_t v;
    if (get_size_in(p, st, 256, 65535, &v) != EG_OK)
        return EG_ERR;
    cur_lsn(p, st)->max_request_line = (uint32_t)v;
    return EG_OK;
}

static int cmd_max_header_size(struct parser *p, struct stmt *st, void **child)
{
    (void)child;
    size_t v;
    if (get_size_in(p, st, 1024, 65535, &v) != EG_OK)
        return EG_ERR;
    cur_lsn(p, st)->max_header_size = (uint32_t)v;
    return EG_OK;
}

static int cmd_max_headers(struct parser *p, struct stmt *st, void **child)
{
    (void)child;
    return get_int(p, st, 0, 1, CONF_MAX_HEADERS, &cur_lsn(p, st)->max_headers);
}

static int cmd_max_connections(struct parser *p, struct stmt *st, void **child)
{
    (void)child;
    return get_int(p, st, 0, 0, 10000000, &cur_lsn(p, st)->max_connections);
}

static int cmd_replay_buffer(struct parser *p, struct stmt *st, void **child)
{
    (void)child;
    return get_size_in(p, st, 0, 64 * 1024 * 1024, &cur_lsn(p, st)->replay_buffer);
}

static int cmd_forward(struct parser *p, struct stmt *st, void **child)
{
    (void)child;
    struct conf_listener *l = cur_lsn(p, st);
    return get_bool(p, st, 0, strcmp(st->name, "forward_for") == 0 ? &l->forward_for
                                                                   : &l->forwarded);
}

static int cmd_send_proxy(struct parser *p, struct stmt *st, void **child)
{
    (void)child;
    struct conf_listener *l = cur_lsn(p, st);
    if (strcmp(ARG(0), "v1") == 0)
        l->send_proxy = 1;
    else if (strcmp(ARG(0), "v2") == 0)
        l->send_proxy = 2;
    else if (strcmp(ARG(0), "off") == 0)
        l->send_proxy = 0;
    else
        return bad_value(p, st, 0, "expected v1, v2 or off");
    return EG_OK;
}

/* accept_proxy [from CIDR ...] */
static int cmd_accept_proxy(struct parser *p, struct stmt *st, void **child)
{
    (void)child;
    struct conf_listener *l = cur_lsn(p, st);
    l->accept_proxy = true;
    if (st->nargs == 0)
        return EG_OK;
    if (strcmp(ARG(0), "from") != 0 || st->nargs < 2)
        return bad_value(p, st, 0, "expected \"from CIDR ...\"");
    for (int i = 1; i < st->nargs; i++) {
        char ip[64];
        const char *slash = strchr(ARG(i), '/');
        size_t n = slash ? (size_t)(slash - ARG(i)) : strlen(ARG(i));
        long bits = -1;
        struct conf_cidr c;
        char spec[80], err[EG_ERRLEN];
        if (n >= sizeof(ip))
            return bad_value(p, st, i, "expected an address or CIDR");
        memcpy(ip, ARG(i), n);
        ip[n] = '\0';
        snprintf(spec, sizeof(spec), strchr(ip, ':') ? "[%s]:0" : "%s:0", ip);
        if (net_parse_addr(spec, &c.net, err, sizeof(err)) != EG_OK)
            return bad_value(p, st, i, "expected an address or CIDR");
        int max = c.net.ss.ss_family == AF_INET6 ? 128 : 32;
        if (slash && parse_int(slash + 1, 0, max, &bits) != EG_OK)
            return bad_value(p, st, i, "bad prefix length");
        c.bits = slash ? (int)bits : max;
        l->proxy_from = arena_push(&p->conf->arena, l->proxy_from, &l->nproxy_from,
                                   sizeof(*l->proxy_from));
        l->proxy_from[l->nproxy_from - 1] = c;
    }
    return EG_OK;
}

/* redis HOST:PORT { ... } | redis sentinel HOST:PORT ... { master NAME; ... } */
static int cmd_redis(struct parser *p, struct stmt *st, void **child)
{
    struct conf_redis *r = &p->conf->redis;
    if (r->on) {
        perr(p, st->line, "\"redis\" is defined twice");
        return EG_ERR;
    }
    int i = 0;
    if (strcmp(ARG(0), "sentinel") == 0) {
        r->sentinel = true;
        i = 1;
        if (st->nargs < 2) {
            perr(p, st->line, "\"redis\": sentinel needs at least one HOST:PORT");
            return EG_ERR;
        }
    } else if (st->nargs > 1) {
        return bad_value(p, st, 1, "expected one HOST:PORT (or: sentinel HOST:PORT ...)");
    }
    for (; i < st->nargs; i++) {
        if (r->naddrs == CONF_MAX_SENTINELS)
            return bad_value(p, st, i, "too many addresses (at most 8)");
        char host[256], err[EG_ERRLEN];
        uint16_t port;
        if (net_split_hostport(ARG(i), host, sizeof(host), &port, err, sizeof(err)) != EG_OK ||
            port == 0 || !host_is_valid(host))
            return bad_value(p, st, i, "expected HOST:PORT");
        r->addrs[r->naddrs++] = (struct conf_hostport){
            .host = arena_strndup(&p->conf->arena, host, strlen(host)), .port = port};
    }
    r->on = true;
    r->line = st->line;
    r->prefix = "edgegate:";
    r->ttl = 3600;
    r->timeout = 0.05;
    r->cache_size = 65536;
    r->cache_ttl = 10;
    (void)child;
    return EG_OK;
}

static int cmd_redis_end(struct parser *p, struct stmt *st, void **child)
{
    (void)child;
    struct conf_redis *r = &p->conf->redis;
    if (r->sentinel && !r->master) {
        perr(p, st->line, "\"redis sentinel\": no \"master\" (the name of the monitored set)");
        return EG_ERR;
    }
    if (!r->sentinel && r->master) {
        perr(p, st->line, "\"redis\": \"master\" is only for \"redis sentinel\"");
        return EG_ERR;
    }
    return EG_OK;
}

static int get_word(struct parser *p, struct stmt *st, char **out)
{
    for (const char *s = ARG(0); *s; s++)
        if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f)
            return bad_value(p, st, 0, "expected printable characters without spaces");
    *out = ARG(0);
    return EG_OK;
}

static int cmd_redis_password(struct parser *p, struct stmt *st, void **child)
{
    (void)child;
    return get_word(p, st, &p->conf->redis.password);
}

static int cmd_redis_master(struct parser *p, struct stmt *st, void **child)
{
    (void)child;
    return get_word(p, st, &p->conf->redis.master);
}

static int cmd_redis_prefix(struct parser *p, struct stmt *st, void **child)
{
    (void)child;
    if (st->args[0].len > 64)
        return bad_value(p, st, 0, "expected at most 64 characters");
    return get_word(p, st, &p->conf->redis.prefix);
}

static int cmd_redis_db(struct parser *p, struct stmt *st, void **child)
{
    (void)child;
    return get_int(p, st, 0, 0, 1000000, &p->conf->redis.db);
}

static int cmd_redis_ttl(struct parser *p, struct stmt *st, void **child)
{
    (void)child;
    double v;
    if (get_positive_duration(p, st, 0, &v) != EG_OK)
        return EG_ERR;
    if (v < 1)
        return bad_value(p, st, 0, "expected at least 1s");
    p->conf->redis.ttl = v;
    return EG_OK;
}

static int cmd_redis_timeout(struct parser *p, struct stmt *st, void **child)
{
    (void)child;
    return get_positive_duration(p, st, 0, &p->conf->redis.timeout);
}

static int get_count(struct parser *p, struct stmt *st, int i, size_t *out)
{
    int v;
    if (get_int(p, st, i, 1, 100000000, &v) != EG_OK)
        return EG_ERR;
    *out = (size_t)v;
    return EG_OK;
}

static int cmd_redis_cache(struct parser *p, struct stmt *st, void **child)
{
    (void)child;
    if (strcmp(st->name, "cache_size") == 0)
        return get_count(p, st, 0, &p->conf->redis.cache_size);
    return get_duration(p, st, 0, &p->conf->redis.cache_ttl);
}

/* affinity [size N] [ttl D]: the in-memory store used without Redis. */
static int cmd_affinity(struct parser *p, struct stmt *st, void **child)
{
    (void)child;
    for (int i = 0; i < st->nargs; i += 2) {
        if (i + 1 >= st->nargs) {
            perr(p, st->line, "\"affinity\": \"%s\" needs a value", ARG(i));
            return EG_ERR;
        }
        int rc;
        if (strcmp(ARG(i), "size") == 0)
            rc = get_count(p, st, i + 1, &p->conf->affinity_size);
        else if (strcmp(ARG(i), "ttl") == 0)
            rc = get_positive_duration(p, st, i + 1, &p->conf->affinity_ttl);
        else
            rc = bad_value(p, st, i, "expected size or ttl");
        if (rc != EG_OK)
            return EG_ERR;
    }
    return EG_OK;
}

#define ANY (-1)

static const struct cmd cmds[] = {
    {"workers", CTX_MAIN, 1, 1, 0, cmd_workers, NULL},
    {"log", CTX_MAIN, 1, 2, 0, cmd_log, NULL},
    {"stats", CTX_MAIN, 1, 1, 0, cmd_stats, NULL},
    {"stats_token", CTX_MAIN, 1, 1, 0, cmd_stats_token, NULL},
    {"access_log", CTX_MAIN, 1, 1, 0, cmd_access_log, NULL},
    {"user", CTX_MAIN, 1, 1, 0, cmd_user, NULL},
    {"pid", CTX_MAIN, 1, 1, 0, cmd_pid, NULL},
    {"buffer_size", CTX_MAIN, 1, 1, 0, cmd_buffer_size, NULL},
    {"drain_timeout", CTX_MAIN, 1, 1, 0, cmd_drain_timeout, NULL},
    {"affinity", CTX_MAIN, 2, 4, 0, cmd_affinity, NULL},
    {"redis", CTX_MAIN, 1, 1 + CONF_MAX_SENTINELS, CTX_REDIS, cmd_redis, cmd_redis_end},
    {"datacenter", CTX_MAIN, 1, 1, CTX_DC, cmd_datacenter, cmd_dc_end},
    {"listener", CTX_MAIN, 1, 1, CTX_LSN, cmd_listener, cmd_listener_end},

    {"priority", CTX_DC, 1, 1, 0, cmd_priority, NULL},
    {"server", CTX_DC, 1, 8, 0, cmd_server, NULL},
    {"check", CTX_DC, 1, 14, 0, cmd_check, NULL},
    {"min_servers", CTX_DC, 1, 1, 0, cmd_min_servers, NULL},
    {"passive", CTX_DC, 2, 4, 0, cmd_passive, NULL},
    {"resolve_interval", CTX_DC, 1, 1, 0, cmd_resolve_interval, NULL},

    {"password", CTX_REDIS, 1, 1, 0, cmd_redis_password, NULL},
    {"master", CTX_REDIS, 1, 1, 0, cmd_redis_master, NULL},
    {"prefix", CTX_REDIS, 1, 1, 0, cmd_redis_prefix, NULL},
    {"db", CTX_REDIS, 1, 1, 0, cmd_redis_db, NULL},
    {"ttl", CTX_REDIS, 1, 1, 0, cmd_redis_ttl, NULL},
    {"timeout", CTX_REDIS, 1, 1, 0, cmd_redis_timeout, NULL},
    {"cache_size", CTX_REDIS, 1, 1, 0, cmd_redis_cache, NULL},
    {"cache_ttl", CTX_REDIS, 1, 1, 0, cmd_redis_cache, NULL},

    {"listen", CTX_LSN, 1, 1, 0, cmd_listen, NULL},
    {"mode", CTX_LSN, 1, 1, 0, cmd_mode, NULL},
    {"tls", CTX_LSN, 1, 4, 0, cmd_tls, NULL},
    {"session", CTX_LSN, 1, 2, 0, cmd_session, NULL},
    {"datacenters", CTX_LSN, 1, ANY, 0, cmd_datacenters, NULL},
    {"failback", CTX_LSN, 1, 1, 0, cmd_failback, NULL},
    {"retries", CTX_LSN, 1, 1, 0, cmd_retries, NULL},
    {"connect_timeout", CTX_LSN, 1, 1, 0, cmd_connect_timeout, NULL},
    {"idle_timeout", CTX_LSN, 1, 1, 0, cmd_idle_timeout, NULL},
    {"hold_timeout", CTX_LSN, 1, 1, 0, cmd_hold_timeout, NULL},
    {"handshake_timeout", CTX_LSN, 1, 1, 0, cmd_lsn_timeout, NULL},
    {"request_timeout", CTX_LSN, 1, 1, 0, cmd_lsn_timeout, NULL},
    {"response_timeout", CTX_LSN, 1, 1, 0, cmd_lsn_timeout, NULL},
    {"max_request_line", CTX_LSN, 1, 1, 0, cmd_max_request_line, NULL},
    {"max_header_size", CTX_LSN, 1, 1, 0, cmd_max_header_size, NULL},
    {"max_headers", CTX_LSN, 1, 1, 0, cmd_max_headers, NULL},
    {"replay_buffer", CTX_LSN, 1, 1, 0, cmd_replay_buffer, NULL},
    {"max_connections", CTX_LSN, 1, 1, 0, cmd_max_connections, NULL},
    {"forward_for", CTX_LSN, 1, 1, 0, cmd_forward, NULL},
    {"forwarded", CTX_LSN, 1, 1, 0, cmd_forward, NULL},
    {"send_proxy", CTX_LSN, 1, 1, 0, cmd_send_proxy, NULL},
    {"accept_proxy", CTX_LSN, 0, ANY, 0, cmd_accept_proxy, NULL},
};

static const struct cmd *find_cmd(const char *name, int ctx, bool *elsewhere)
{
    *elsewhere = false;
    for (size_t i = 0; i < ARRAY_LEN(cmds); i++)
        if (strcmp(cmds[i].name, name) == 0) {
            if (cmds[i].ctx & ctx)
                return &cmds[i];
            *elsewhere = true;
        }
    return NULL;
}

static const char *ctx_name(int ctx)
{
    return ctx == CTX_MAIN  ? "at the top level"
           : ctx == CTX_DC  ? "in a datacenter block"
           : ctx == CTX_LSN ? "in a listener block"
                            : "in the redis block";
}

/* ---- statement and block parsing ---- */

static void parse_block(struct parser *p, int ctx, void *obj, int depth, int open_line);

/* Skips a block whose '{' was just read, including nested blocks. */
static void skip_block(struct parser *p)
{
    int level = 1;
    while (level > 0 && !p->fatal) {
        struct tok t = lex(p);
        if (t.type == TOK_EOF || t.type == TOK_ERROR)
            return;
        if (t.type == TOK_LBRACE)
            level++;
        else if (t.type == TOK_RBRACE)
            level--;
    }
}

/* Reads the arguments of the directive in st up to its terminator. Returns
 * the terminator token (';', '{', or what ended it too early). */
static struct tok read_args(struct parser *p, struct stmt *st)
{
    for (;;) {
        struct tok t = lex(p);
        if (t.type != TOK_WORD)
            return t;
        if (st->nargs == CONF_MAX_ARGS) {
            perr(p, t.line, "\"%s\": too many arguments", st->name);
            continue;
        }
        st->args[st->nargs++] = t;
    }
}

static void run_stmt(struct parser *p, int ctx, struct stmt *st, struct tok term, int depth)
{
    bool elsewhere;
    const struct cmd *cmd = find_cmd(st->name, ctx, &elsewhere);
    bool has_block = term.type == TOK_LBRACE;
    if (!cmd) {
        if (elsewhere)
            perr(p, st->line, "\"%s\" is not allowed %s", st->name, ctx_name(ctx));
        else
            perr(p, st->line, "unknown directive \"%s\"", st->name);
        if (has_block)
            skip_block(p);
        return;
    }
    if (cmd->block_ctx && !has_block) {
        perr(p, st->line, "\"%s\": expected \"{\" after its arguments", st->name);
        return;
    }
    if (!cmd->block_ctx && has_block) {
        perr(p, st->line, "\"%s\": missing \";\" (it takes no block)", st->name);
        skip_block(p);
        return;
    }
    if (st->nargs < cmd->min_args || (cmd->max_args != ANY && st->nargs > cmd->max_args)) {
        if (st->nargs < cmd->min_args)
            perr(p, st->line, "\"%s\": missing argument", st->name);
        else
            perr(p, st->line, "\"%s\": too many arguments", st->name);
        if (has_block)
            skip_block(p);
        return;
    }
    void *child = NULL;
    int rc = cmd->fn(p, st, &child);
    if (!cmd->block_ctx)
        return;
    if (rc != EG_OK) {
        skip_block(p);
        return;
    }
    parse_block(p, cmd->block_ctx, child, depth + 1, st->line);
    if (cmd->end && !p->fatal) {
        struct stmt end = {.name = st->name, .line = st->line, .obj = child};
        cmd->end(p, &end, NULL);
    }
}

static void parse_block(struct parser *p, int ctx, void *obj, int depth, int open_line)
{
    if (depth > CONF_MAX_DEPTH) {
        perr(p, open_line, "blocks nested too deeply");
        p->fatal = true;
        return;
    }
    while (!p->fatal) {
        struct tok t = lex(p);
        switch (t.type) {
        case TOK_ERROR:
            return;
        case TOK_EOF:
            if (depth > 0) {
                perr(p, open_line, "the block opened here is not closed (unexpected end of file)");
                p->fatal = true;
            }
            return;
        case TOK_RBRACE:
            if (depth > 0)
                return;
            perr(p, t.line, "unexpected \"}\"");
            continue;
        case TOK_SEMI:
            perr(p, t.line, "unexpected \";\"");
            continue;
        case TOK_LBRACE:
            perr(p, t.line, "unexpected \"{\"");
            skip_block(p);
            continue;
        }
        struct stmt *st = eg_calloc(1, sizeof(*st));
        st->name = t.s;
        st->line = t.line;
        st->obj = obj;
        struct tok term = read_args(p, st);
        if (term.type == TOK_ERROR) {
            free(st);
            return;
        }
        if (term.type == TOK_EOF || term.type == TOK_RBRACE) {
            perr(p, st->line, "\"%s\": missing \";\"", st->name);
            unlex(p, term);
            free(st);
            continue;
        }
        run_stmt(p, ctx, st, term, depth);
        free(st);
    }
}

/* ---- validation of the whole tree ---- */

int conf_dc_index(const struct conf *c, const char *name)
{
    for (int i = 0; i < c->ndcs; i++)
        if (strcmp(c->dcs[i].name, name) == 0)
            return i;
    return -1;
}

static void validate_listener(struct parser *p, struct conf_listener *l)
{
    struct conf *c = p->conf;
    if (l->ndc_names == 0) {
        l->dcs = arena_alloc(&c->arena, sizeof(int) * (size_t)MAX(c->ndcs, 1));
        for (int i = 0; i < c->ndcs; i++)
            l->dcs[i] = i;
        l->ndcs = c->ndcs;
        return;
    }
    l->dcs = arena_alloc(&c->arena, sizeof(int) * (size_t)l->ndc_names);
    for (int i = 0; i < l->ndc_names; i++) {
        int idx = conf_dc_index(c, l->dc_names[i]);
        if (idx < 0) {
            perr(p, l->dcs_line, "\"datacenters\": unknown datacenter \"%s\"", l->dc_names[i]);
            continue;
        }
        for (int k = 0; k < l->ndcs; k++)
            if (l->dcs[k] == idx) {
                perr(p, l->dcs_line, "\"datacenters\": \"%s\" is listed twice", l->dc_names[i]);
                idx = -1;
                break;
            }
        if (idx >= 0)
            l->dcs[l->ndcs++] = idx;
    }
}

/* Checks that need the whole file. LAST is the file's last line, where
 * errors about something missing are reported. */
static void validate(struct parser *p, int last)
{
    struct conf *c = p->conf;
    for (int i = 0; i < c->nlsns; i++)
        if (c->lsns[i].max_header_size + 1024 > c->buffer_size)
            perr(p, c->lsns[i].line,
                 "listener \"%s\": max_header_size %u needs buffer_size %u or more",
                 c->lsns[i].name, c->lsns[i].max_header_size, c->lsns[i].max_header_size + 1024);
    if (c->ndcs == 0)
        perr(p, last, "no \"datacenter\" is defined");
    if (c->nlsns == 0)
        perr(p, last, "no \"listener\" is defined");
    for (int i = 0; i < c->nlsns; i++) {
        struct conf_listener *l = &c->lsns[i];
        validate_listener(p, l);
        for (int a = 0; a < l->nlistens; a++) {
            if (c->stats_on && net_addr_equal(&l->listens[a].addr, &c->stats_addr))
                perr(p, l->listens[a].line, "\"listen\": the stats endpoint uses this address");
            for (int j = 0; j <= i; j++)
                for (int b = 0; b < (j == i ? a : c->lsns[j].nlistens); b++)
                    if (net_addr_equal(&l->listens[a].addr, &c->lsns[j].listens[b].addr))
                        perr(p, l->listens[a].line,
                             "\"listen\": this address is already used by listener \"%s\"",
                             c->lsns[j].name);
        }
    }
}

/* ---- entry points ---- */

struct conf *conf_parse(const char *file, const char *buf, size_t len, struct conf_errs *errs)
{
    struct conf_arena *arena = NULL;
    struct conf *c = arena_alloc(&arena, sizeof(*c));
    c->arena = arena;
    c->file = arena_strndup(&c->arena, file, strlen(file));
    c->workers = 1;
    c->log_level = LOG_INFO;
    c->buffer_size = 16384;
    c->drain_timeout = 30;
    c->affinity_size = 100000;
    c->affinity_ttl = 3600;

    struct parser p = {.file = c->file, .p = buf, .end = buf + len, .line = 1, .conf = c,
                       .errs = errs};
    if (len == 0 || memchr(buf, '\0', len))
        perr(&p, 1, len == 0 ? "the file is empty" : "the file holds a NUL byte (not text)");
    else
        parse_block(&p, CTX_MAIN, NULL, 0, 1);
    /* Cross references are checked even after syntax errors, so that one -t
     * run reports everything it can. */
    if (!p.fatal)
        validate(&p, MAX(1, p.line - (len > 0 && buf[len - 1] == '\n')));
    if (p.nerrs > 0) {
        conf_free(c);
        return NULL;
    }
    return c;
}

struct conf *conf_load(const char *file, struct conf_errs *errs)
{
    int fd = open(file, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode) || sb.st_size > CONF_MAX_FILE) {
        const char *why = fd < 0 ? strerror(errno)
                          : (fstat(fd, &sb) == 0 && !S_ISREG(sb.st_mode)) ? "not a regular file"
                                                                         : "too large";
        conf_errs_add(errs, file, 0, "cannot read the configuration: %s", why);
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    size_t len = (size_t)sb.st_size;
    char *buf = eg_malloc(len + 1);
    size_t got = 0;
    while (buf && got < len) {
        ssize_t r = read(fd, buf + got, len - got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    struct conf *c = conf_parse(file, buf, got, errs);
    free(buf);
    return c;
}

void conf_free(struct conf *c)
{
    if (c)
        arena_free(c->arena);
}
