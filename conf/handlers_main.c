/* Top-level directives with a syntax of their own: `log [FILE|syslog
 * [FACILITY]] LEVEL`, `access_log FORM [FILE|syslog [FACILITY]]`, `stats
 * ADDR|off` and the `redis` block's opening line. */
#include "conf/handlers.h"
#include "conf/arena.h"
#include "conf/parser.h"
#include "base/util.h"

#include <string.h>

#define LOG_DAEMON_FACILITY 3 /* syslog's "daemon" */

static const struct conf_enum log_levels[] = {
    {"error", LOG_ERR}, {"warn", LOG_WARN}, {"info", LOG_INFO}, {"debug", LOG_DEBUG}, {NULL, 0},
};

/* Where a log goes: FILE (absolute) or `syslog [FACILITY]`, from argument
 * FIRST up to (not including) argument END. */
static int set_target(struct parser *p, const struct stmt *st, int first, int end, char **file,
                      bool *syslog, int *facility)
{
    *file = NULL;
    *syslog = false;
    *facility = LOG_DAEMON_FACILITY;
    if (first == end)
        return EG_OK;
    if (strcmp(ARG(first), "syslog") == 0) {
        *syslog = true;
        if (end - first == 2 && (*facility = log_facility_parse(ARG(first + 1))) < 0)
            return conf_bad_value(p, st, first + 1,
                                  "expected a syslog facility: daemon, user, local0 to local7, ...");
        return EG_OK;
    }
    if (end - first > 1)
        return conf_bad_value(p, st, first + 1, "expected one FILE, or: syslog [FACILITY]");
    if (ARG(first)[0] != '/')
        return conf_bad_value(p, st, first, "expected an absolute file path, or syslog");
    *file = ARG(first);
    return EG_OK;
}

static void print_target(FILE *f, const char *file, bool syslog, int facility)
{
    if (syslog) {
        fprintf(f, " syslog %s", log_facility_name(facility));
    } else if (file) {
        fputc(' ', f);
        conf_print_word(f, file);
    }
}

/* log [FILE | syslog [FACILITY]] LEVEL */
int conf_set_log(struct parser *p, const struct stmt *st, void *obj)
{
    struct conf *c = obj;
    int level = conf_enum_value(log_levels, ARG(st->nargs - 1));
    if (level < 0)
        return conf_bad_value(p, st, st->nargs - 1, "expected a level: error, warn, info or debug");
    if (set_target(p, st, 0, st->nargs - 1, &c->log_file, &c->log_syslog, &c->log_facility) !=
        EG_OK)
        return EG_ERR;
    c->log_level = (enum log_level)level;
    c->log_at = (struct conf_loc){st->file, st->line};
    return EG_OK;
}

void conf_print_log(FILE *f, const struct conf_directive *d, const struct conf *c,
                    const void *obj, int indent)
{
    (void)obj;
    conf_print_indent(f, indent);
    fputs(d->name, f);
    print_target(f, c->log_file, c->log_syslog, c->log_facility);
    fprintf(f, " %s;\n", conf_enum_name(log_levels, (int)c->log_level));
}

static const struct conf_enum access_log_forms[] = {
    {"off", CONF_ACCESS_LOG_OFF}, {"on", CONF_ACCESS_LOG_KV}, {"json", CONF_ACCESS_LOG_JSON},
    {NULL, 0},
};

/* access_log off | on|json [FILE | syslog [FACILITY]] */
int conf_set_access_log(struct parser *p, const struct stmt *st, void *obj)
{
    struct conf *c = obj;
    int form = conf_enum_value(access_log_forms, ARG(0));
    if (form < 0)
        return conf_bad_value(p, st, 0, "expected off, on or json");
    if (form == CONF_ACCESS_LOG_OFF && st->nargs > 1)
        return conf_bad_value(p, st, 1, "\"off\" takes no target");
    if (set_target(p, st, 1, st->nargs, &c->access_log_file, &c->access_log_syslog,
                   &c->access_log_facility) != EG_OK)
        return EG_ERR;
    c->access_log = (enum conf_access_log)form;
    c->access_log_at = (struct conf_loc){st->file, st->line};
    return EG_OK;
}

void conf_print_access_log(FILE *f, const struct conf_directive *d, const struct conf *c,
                           const void *obj, int indent)
{
    (void)obj;
    conf_print_indent(f, indent);
    fprintf(f, "%s %s", d->name, conf_enum_name(access_log_forms, (int)c->access_log));
    print_target(f, c->access_log_file, c->access_log_syslog, c->access_log_facility);
    fputs(";\n", f);
}

void conf_log_targets(const struct conf *c, struct log_target *log, struct log_target *access)
{
    *log = (struct log_target){.to = c->log_syslog ? LOG_TO_SYSLOG
                                     : c->log_file ? LOG_TO_FILE : LOG_TO_STDERR,
                               .file = c->log_file, .facility = c->log_facility,
                               .socket = c->syslog_socket, .format = c->syslog_format};
    *access = (struct log_target){.to = c->access_log == CONF_ACCESS_LOG_OFF ? LOG_TO_LOG
                                        : c->access_log_syslog ? LOG_TO_SYSLOG
                                        : c->access_log_file ? LOG_TO_FILE : LOG_TO_LOG,
                                  .file = c->access_log_file, .facility = c->access_log_facility,
                                  .socket = c->syslog_socket, .format = c->syslog_format};
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
