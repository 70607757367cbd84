/* Listener directives with a syntax of their own: the block's opening line,
 * addresses (`listen`), certificates (`tls cert FILE key FILE`), session
 * keys, the datacenter list and who may send a PROXY header. */
#include "conf/handlers.h"
#include "conf/arena.h"
#include "conf/parser.h"
#include "conf/values.h"
#include "base/util.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

static const struct conf_enum session_kinds[] = {
    {"none", SESS_NONE}, {"header", SESS_HEADER}, {"cookie", SESS_COOKIE},
    {"client_ip", SESS_CLIENT_IP}, {"sni", SESS_SNI}, {NULL, 0},
};

/* listener NAME { ... } */
int conf_open_listener(struct parser *p, const struct stmt *st)
{
    if (conf_name_arg(p, st, 0) != EG_OK)
        return EG_ERR;
    struct conf *c = p->conf;
    for (int i = 0; i < c->nlsns; i++)
        if (strcmp(c->lsns[i].name, ARG(0)) == 0) {
            conf_perr(p, st->line, "\"listener\": \"%s\" is defined twice", ARG(0));
            return EG_ERR;
        }
    c->lsns = conf_arena_push(&c->arena, c->lsns, &c->nlsns, sizeof(*c->lsns));
    struct conf_listener *l = &c->lsns[c->nlsns - 1];
    l->name = ARG(0);
    l->file = st->file;
    l->line = st->line;
    conf_dir_defaults(p, CTX_LSN, l, st);
    return c->nlsns - 1;
}

void conf_print_listeners(FILE *f, const struct conf_directive *d, const struct conf *c,
                          const void *obj, int indent)
{
    (void)obj;
    for (int i = 0; i < c->nlsns; i++) {
        fputc('\n', f);
        conf_print_indent(f, indent);
        fprintf(f, "%s ", d->name);
        conf_print_word(f, c->lsns[i].name);
        fputs(" {\n", f);
        conf_print_rows(f, c, CTX_LSN, &c->lsns[i], indent + 1);
        conf_print_indent(f, indent);
        fputs("}\n", f);
    }
}

int conf_set_listen(struct parser *p, const struct stmt *st, void *obj)
{
    struct conf_listener *l = obj;
    struct net_addr a;
    char err[EG_ERRLEN];
    if (net_parse_addr(ARG(0), &a, err, sizeof(err)) != EG_OK) {
        conf_perr_at(p, st->file, st->args[0].line, "\"%s\": %s", st->name, err);
        return EG_ERR;
    }
    l->listens = conf_arena_push(&p->conf->arena, l->listens, &l->nlistens, sizeof(*l->listens));
    l->listens[l->nlistens - 1] = (struct conf_listen){.addr = a, .file = st->file,
                                                       .line = st->line};
    return EG_OK;
}

void conf_print_listens(FILE *f, const struct conf_directive *d, const struct conf *c,
                        const void *obj, int indent)
{
    (void)c;
    const struct conf_listener *l = obj;
    for (int i = 0; i < l->nlistens; i++) {
        char addr[128];
        conf_print_indent(f, indent);
        fprintf(f, "%s %s;\n", d->name, net_addr_str(&l->listens[i].addr, addr, sizeof(addr)));
    }
}

/* tls cert FILE key FILE */
int conf_set_tls(struct parser *p, const struct stmt *st, void *obj)
{
    struct conf_listener *l = obj;
    if (st->nargs != 4 || strcmp(ARG(0), "cert") != 0 || strcmp(ARG(2), "key") != 0) {
        conf_perr_at(p, st->file, st->line, "\"tls\": expected \"tls cert FILE key FILE\"");
        return EG_ERR;
    }
    l->certs = conf_arena_push(&p->conf->arena, l->certs, &l->ncerts, sizeof(*l->certs));
    l->certs[l->ncerts - 1] = (struct conf_cert){.cert = ARG(1), .key = ARG(3),
                                                 .file = st->file, .line = st->line};
    return EG_OK;
}

void conf_print_tls(FILE *f, const struct conf_directive *d, const struct conf *c,
                    const void *obj, int indent)
{
    (void)c;
    const struct conf_listener *l = obj;
    for (int i = 0; i < l->ncerts; i++) {
        conf_print_indent(f, indent);
        fprintf(f, "%s cert ", d->name);
        conf_print_word(f, l->certs[i].cert);
        fputs(" key ", f);
        conf_print_word(f, l->certs[i].key);
        fputs(";\n", f);
    }
}

static bool token_is_header_name(const char *s)
{
    static const char tchar[] = "!#$%&'*+-.^_`|~";
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr(tchar, *s))
            return false;
    return true;
}

/* session header NAME | cookie NAME | client_ip | sni | none */
int conf_set_session(struct parser *p, const struct stmt *st, void *obj)
{
    struct conf_listener *l = obj;
    int kind = conf_enum_value(session_kinds, ARG(0));
    bool named = kind == SESS_HEADER || kind == SESS_COOKIE;
    /* `session cookie NAME issued`: only cookies the servers set count. */
    bool issued = kind == SESS_COOKIE && st->nargs == 3 && strcmp(ARG(2), "issued") == 0;
    if (st->nargs == 3 && !issued) {
        conf_perr_at(p, st->file, st->line,
                     "\"session\": a third word is only \"issued\", after cookie NAME");
        return EG_ERR;
    }
    if (named && (st->nargs - issued != 2 || !token_is_header_name(ARG(1)))) {
        conf_perr_at(p, st->file, st->line,
                     "\"session\": \"%s\" needs a name (a header or cookie token)", ARG(0));
        return EG_ERR;
    }
    if (!named && st->nargs != 1)
        return conf_bad_value(p, st, 1, "unexpected argument");
    if (kind < 0)
        return conf_bad_value(p, st, 0, "expected header NAME, cookie NAME, client_ip, sni or none");
    l->sess = (enum conf_sess)kind;
    l->sess_name = named ? ARG(1) : NULL;
    l->sess_name_len = named ? st->args[1].len : 0;
    l->sess_issued = issued;
    l->sess_at = (struct conf_loc){st->file, st->line};
    return EG_OK;
}

void conf_print_session(FILE *f, const struct conf_directive *d, const struct conf *c,
                        const void *obj, int indent)
{
    (void)c;
    const struct conf_listener *l = obj;
    conf_print_indent(f, indent);
    fprintf(f, "%s %s", d->name, conf_enum_name(session_kinds, l->sess));
    if (l->sess_name) {
        fputc(' ', f);
        conf_print_word(f, l->sess_name);
    }
    fputs(l->sess_issued ? " issued;\n" : ";\n", f);
}

/* datacenters NAME ...: resolved into indices once every datacenter is known. */
int conf_set_dc_list(struct parser *p, const struct stmt *st, void *obj)
{
    struct conf_listener *l = obj;
    l->dcs_at = (struct conf_loc){st->file, st->line};
    for (int i = 0; i < st->nargs; i++) {
        l->dc_names = conf_arena_push(&p->conf->arena, l->dc_names, &l->ndc_names,
                                      sizeof(char *));
        l->dc_names[l->ndc_names - 1] = ARG(i);
    }
    return EG_OK;
}

void conf_print_dc_list(FILE *f, const struct conf_directive *d, const struct conf *c,
                        const void *obj, int indent)
{
    const struct conf_listener *l = obj;
    conf_print_indent(f, indent);
    fputs(d->name, f);
    for (int i = 0; i < l->ndcs; i++) {
        fputc(' ', f);
        conf_print_word(f, c->dcs[l->dcs[i]].name);
    }
    fputs(";\n", f);
}

/* One `from` entry: an address, or an address and a prefix length. */
static int proxy_cidr(struct parser *p, const struct stmt *st, int i, struct conf_cidr *c)
{
    char ip[64], spec[80], err[EG_ERRLEN];
    const char *slash = strchr(ARG(i), '/');
    size_t n = slash ? (size_t)(slash - ARG(i)) : strlen(ARG(i));
    if (n >= sizeof(ip))
        return conf_bad_value(p, st, i, "expected an address or CIDR");
    memcpy(ip, ARG(i), n);
    ip[n] = '\0';
    snprintf(spec, sizeof(spec), strchr(ip, ':') ? "[%s]:0" : "%s:0", ip);
    if (net_parse_addr(spec, &c->net, err, sizeof(err)) != EG_OK)
        return conf_bad_value(p, st, i, "expected an address or CIDR");
    int max = c->net.ss.ss_family == AF_INET6 ? 128 : 32;
    long bits = max;
    if (slash && conf_parse_long(slash + 1, 0, max, &bits) != EG_OK)
        return conf_bad_value(p, st, i, "bad prefix length");
    c->bits = (int)bits;
    return EG_OK;
}

/* accept_proxy [from CIDR ...] */
int conf_set_accept_proxy(struct parser *p, const struct stmt *st, void *obj)
{
    struct conf_listener *l = obj;
    l->accept_proxy = true;
    if (st->nargs == 0)
        return EG_OK;
    if (strcmp(ARG(0), "from") != 0 || st->nargs < 2)
        return conf_bad_value(p, st, 0, "expected \"from CIDR ...\"");
    for (int i = 1; i < st->nargs; i++) {
        struct conf_cidr c;
        if (proxy_cidr(p, st, i, &c) != EG_OK)
            return EG_ERR;
        l->proxy_from = conf_arena_push(&p->conf->arena, l->proxy_from, &l->nproxy_from,
                                        sizeof(*l->proxy_from));
        l->proxy_from[l->nproxy_from - 1] = c;
    }
    return EG_OK;
}

void conf_print_accept_proxy(FILE *f, const struct conf_directive *d, const struct conf *c,
                             const void *obj, int indent)
{
    (void)c;
    const struct conf_listener *l = obj;
    if (!l->accept_proxy)
        return;
    conf_print_indent(f, indent);
    fputs(d->name, f);
    for (int i = 0; i < l->nproxy_from; i++) {
        char ip[64];
        fprintf(f, "%s%s/%d", i == 0 ? " from " : " ",
                net_ip_str((const struct sockaddr *)&l->proxy_from[i].net.ss, ip, sizeof(ip)),
                l->proxy_from[i].bits);
    }
    fputs(";\n", f);
}
