/* Datacenter directives with a syntax of their own: the block's opening
 * line, `server HOST:PORT [OPTION ...]` and `check TYPE [PATH] [OPTION ...]`.
 * Their options (weight, interval, ...) are rows of the table. */
#include "conf/handlers.h"
#include "conf/arena.h"
#include "conf/conf.h"
#include "conf/parser.h"
#include "base/util.h"

#include <stdio.h>
#include <string.h>

static const struct conf_enum check_types[] = {
    {"tcp", CHECK_TCP}, {"http", CHECK_HTTP}, {"tls", CHECK_TLS}, {NULL, 0},
};

/* datacenter NAME { ... } */
int conf_open_datacenter(struct parser *p, const struct stmt *st)
{
    if (conf_name_arg(p, st, 0) != EG_OK)
        return EG_ERR;
    struct conf *c = p->conf;
    if (conf_dc_index(c, ARG(0)) >= 0) {
        conf_perr(p, st->line, "\"datacenter\": \"%s\" is defined twice", ARG(0));
        return EG_ERR;
    }
    c->dcs = conf_arena_push(&c->arena, c->dcs, &c->ndcs, sizeof(*c->dcs));
    struct conf_dc *dc = &c->dcs[c->ndcs - 1];
    dc->name = ARG(0);
    dc->file = st->file;
    dc->line = st->line;
    conf_dir_defaults(p, CTX_DC, dc, st);
    return c->ndcs - 1;
}

void conf_print_datacenters(FILE *f, const struct conf_directive *d, const struct conf *c,
                            const void *obj, int indent)
{
    (void)obj;
    for (int i = 0; i < c->ndcs; i++) {
        fputc('\n', f);
        conf_print_indent(f, indent);
        fprintf(f, "%s ", d->name);
        conf_print_word(f, c->dcs[i].name);
        fputs(" {\n", f);
        conf_print_rows(f, c, CTX_DC, &c->dcs[i], indent + 1);
        conf_print_indent(f, indent);
        fputs("}\n", f);
    }
}

/* The address of S: numeric ones are parsed now, names resolved later. */
static int server_addr(struct parser *p, const struct stmt *st, struct conf_server *s)
{
    char host[256], err[EG_ERRLEN];
    if (net_split_hostport(ARG(0), host, sizeof(host), &s->port, err, sizeof(err)) != EG_OK) {
        conf_perr_at(p, st->file, st->line, "\"server\": %s", err);
        return EG_ERR;
    }
    if (s->port == 0 || !conf_host_valid(host))
        return conf_bad_value(p, st, 0, "expected HOST:PORT with a port from 1 to 65535");
    s->host = conf_arena_strndup(&p->conf->arena, host, strlen(host));
    char numeric[300];
    snprintf(numeric, sizeof(numeric), strchr(host, ':') ? "[%s]:%u" : "%s:%u", host, s->port);
    s->resolve = net_parse_addr(numeric, &s->addr, err, sizeof(err)) != EG_OK;
    return EG_OK;
}

/* server HOST:PORT [weight N] [tls] [verify CAFILE] [sni NAME] [h2] */
int conf_set_server(struct parser *p, const struct stmt *st, void *obj)
{
    struct conf_dc *dc = obj;
    dc->server_lines++;
    struct conf_server s = {.spec = ARG(0), .file = st->file, .line = st->line};
    conf_dir_option_defaults(p, "server", &s, st);
    if (server_addr(p, st, &s) != EG_OK || conf_dir_options(p, st, 1, "server", NULL, &s) != EG_OK)
        return EG_ERR;
    if ((s.verify || s.sni) && !s.tls) {
        conf_perr_at(p, st->file, st->line, "\"server\": verify and sni need tls");
        return EG_ERR;
    }
    dc->servers = conf_arena_push(&p->conf->arena, dc->servers, &dc->nservers,
                                  sizeof(*dc->servers));
    dc->servers[dc->nservers - 1] = s;
    return EG_OK;
}

void conf_print_servers(FILE *f, const struct conf_directive *d, const struct conf *c,
                        const void *obj, int indent)
{
    (void)c;
    const struct conf_dc *dc = obj;
    for (int i = 0; i < dc->nservers; i++) {
        conf_print_indent(f, indent);
        fprintf(f, "%s ", d->name);
        conf_print_word(f, dc->servers[i].spec);
        conf_print_options(f, d->name, NULL, &dc->servers[i]);
        fputs(";\n", f);
    }
}

/* The request path of an http check goes into a request line as is. */
static int check_path(struct parser *p, const struct stmt *st, struct conf_check *ck)
{
    if (st->nargs < 2 || ARG(1)[0] != '/') {
        conf_perr_at(p, st->file, st->line, "\"check\": http needs a path starting with /");
        return EG_ERR;
    }
    for (const char *s = ARG(1); *s; s++)
        if ((unsigned char)*s <= 0x20 || *s == 0x7f) {
            conf_perr_at(p, st->file, st->line,
                         "\"check\": the path may not contain spaces or controls");
            return EG_ERR;
        }
    ck->path = ARG(1);
    return EG_OK;
}

/* check tcp|tls [OPTION ...] | check http PATH [OPTION ...] */
int conf_set_check(struct parser *p, const struct stmt *st, void *obj)
{
    struct conf_dc *dc = obj;
    struct conf_check ck = {.file = st->file, .line = st->line};
    int type = conf_enum_value(check_types, ARG(0));
    if (type < 0)
        return conf_bad_value(p, st, 0, "expected tcp, http or tls");
    ck.type = (enum conf_check_type)type;
    conf_dir_option_defaults(p, "check", &ck, st);
    if (ck.type == CHECK_HTTP && check_path(p, st, &ck) != EG_OK)
        return EG_ERR;
    if (conf_dir_options(p, st, ck.path ? 2 : 1, "check", ARG(0), &ck) != EG_OK)
        return EG_ERR;
    dc->check = ck;
    return EG_OK;
}

void conf_print_check(FILE *f, const struct conf_directive *d, const struct conf *c,
                      const void *obj, int indent)
{
    (void)c;
    const struct conf_check *ck = &((const struct conf_dc *)obj)->check;
    if (ck->type == CHECK_NONE)
        return;
    const char *type = conf_enum_name(check_types, ck->type);
    conf_print_indent(f, indent);
    fprintf(f, "%s %s", d->name, type);
    if (ck->path) {
        fputc(' ', f);
        conf_print_word(f, ck->path);
    }
    conf_print_options(f, d->name, type, ck);
    fputs(";\n", f);
}
