/* Top-level directives with a syntax of their own: `log [FILE] LEVEL`,
 * `stats ADDR|off` and the `redis` block's opening line. */
#include "conf/handlers.h"
#include "conf/arena.h"
#include "conf/parser.h"
#include "base/util.h"

#include <string.h>

static const struct conf_enum log_levels[] = {
    {"error", LOG_ERR}, {"warn", LOG_WARN}, {"info", LOG_INFO}, {"debug", LOG_DEBUG}, {NULL, 0},
};

int conf_set_log(struct parser *p, const struct stmt *st, void *obj)
{
    struct conf *c = obj;
    int level = conf_enum_value(log_levels, ARG(st->nargs - 1));
    if (level < 0)
        return conf_bad_value(p, st, st->nargs - 1, "expected a level: error, warn, info or debug");
    c->log_level = (enum log_level)level;
    if (st->nargs == 2) {
        if (ARG(0)[0] != '/')
            return conf_bad_value(p, st, 0, "expected an absolute file path");
        c->log_file = ARG(0);
        c->log_at = (struct conf_loc){st->file, st->line};
    }
    return EG_OK;
}

void conf_print_log(FILE *f, const struct conf_directive *d, const struct conf *c,
                    const void *obj, int indent)
{
    (void)obj;
    conf_print_indent(f, indent);
    fprintf(f, "%s ", d->name);
    if (c->log_file) {
        conf_print_word(f, c->log_file);
        fputc(' ', f);
    }
    fprintf(f, "%s;\n", conf_enum_name(log_levels, (int)c->log_level));
}

int conf_set_stats(struct parser *p, const struct stmt *st, void *obj)
{
    struct conf *c = obj;
    if (strcmp(ARG(0), "off") == 0) {
        c->stats_on = false;
        return EG_OK;
    }
    char err[EG_ERRLEN];
    if (net_parse_addr(ARG(0), &c->stats_addr, err, sizeof(err)) != EG_OK) {
        conf_perr_at(p, st->file, st->args[0].line, "\"%s\": %s", st->name, err);
        return EG_ERR;
    }
    c->stats_on = true;
    return EG_OK;
}

void conf_print_stats(FILE *f, const struct conf_directive *d, const struct conf *c,
                      const void *obj, int indent)
{
    (void)obj;
    char addr[128];
    conf_print_indent(f, indent);
    fprintf(f, "%s %s;\n", d->name,
            c->stats_on ? net_addr_str(&c->stats_addr, addr, sizeof(addr)) : "off");
}

static int redis_addr(struct parser *p, const struct stmt *st, int i, struct conf_redis *r)
{
    if (r->naddrs == CONF_MAX_SENTINELS)
        return conf_bad_value(p, st, i, "too many addresses (at most 8)");
    char host[256], err[EG_ERRLEN];
    uint16_t port;
    if (net_split_hostport(ARG(i), host, sizeof(host), &port, err, sizeof(err)) != EG_OK ||
        port == 0 || !conf_host_valid(host))
        return conf_bad_value(p, st, i, "expected HOST:PORT");
    r->addrs[r->naddrs++] = (struct conf_hostport){
        .host = conf_arena_strndup(&p->conf->arena, host, strlen(host)), .port = port};
    return EG_OK;
}

/* redis HOST:PORT { ... } | redis sentinel HOST:PORT ... { master NAME; ... }
 * The block's defaults were set with the configuration: it is part of it. */
int conf_open_redis(struct parser *p, const struct stmt *st)
{
    struct conf_redis *r = &p->conf->redis;
    if (r->on) {
        conf_perr(p, st->line, "\"redis\" is defined twice");
        return EG_ERR;
    }
    bool sentinel = strcmp(ARG(0), "sentinel") == 0;
    if (sentinel && st->nargs < 2) {
        conf_perr(p, st->line, "\"redis\": sentinel needs at least one HOST:PORT");
        return EG_ERR;
    }
    if (!sentinel && st->nargs > 1)
        return conf_bad_value(p, st, 1, "expected one HOST:PORT (or: sentinel HOST:PORT ...)");
    for (int i = sentinel; i < st->nargs; i++)
        if (redis_addr(p, st, i, r) != EG_OK) {
            r->naddrs = 0; /* a later redis block starts afresh */
            return EG_ERR;
        }
    r->on = true;
    r->sentinel = sentinel;
    r->file = st->file;
    r->line = st->line;
    return 0;
}

void conf_print_redis(FILE *f, const struct conf_directive *d, const struct conf *c,
                      const void *obj, int indent)
{
    (void)obj;
    const struct conf_redis *r = &c->redis;
    if (!r->on)
        return;
    fputc('\n', f);
    conf_print_indent(f, indent);
    fprintf(f, "%s%s", d->name, r->sentinel ? " sentinel" : "");
    for (int i = 0; i < r->naddrs; i++)
        fprintf(f, strchr(r->addrs[i].host, ':') ? " [%s]:%u" : " %s:%u", r->addrs[i].host,
                r->addrs[i].port);
    fputs(" {\n", f);
    conf_print_rows(f, c, CTX_REDIS, r, indent + 1);
    conf_print_indent(f, indent);
    fputs("}\n", f);
}
