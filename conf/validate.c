/* Validation: what one directive cannot check alone. A block is checked when
 * it closes (a datacenter needs a server), the tree once the file is read
 * (names a listener refers to, addresses used twice, limits that depend on
 * each other). Errors name the file and line of the directive at fault, which
 * may be an included file. */
#include "conf/validate.h"
#include "conf/arena.h"
#include "conf/conf.h"
#include "conf/parser.h"
#include "base/util.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

/* "502,503,504" into one bit per status above 500; false on anything else. */
static bool parse_codes(const char *s, uint64_t bits[2])
{
    bits[0] = bits[1] = 0;
    for (;;) {
        if (s[0] != '5' || !isdigit((unsigned char)s[1]) || !isdigit((unsigned char)s[2]))
            return false;
        int n = (s[1] - '0') * 10 + (s[2] - '0');
        bits[n / 64] |= 1ULL << (n % 64);
        s += 3;
        if (*s == '\0')
            return true;
        if (*s++ != ',')
            return false;
    }
}

void conf_close_datacenter(struct parser *p, void *obj)
{
    struct conf_dc *dc = obj;
    if (!parse_codes(dc->passive_codes, dc->passive_code_bits))
        conf_perr_at(p, dc->file, dc->line,
                     "datacenter \"%s\": \"passive codes %s\": expected 5xx statuses separated "
                     "by commas, e.g. 502,503,504", dc->name, dc->passive_codes);
    if (dc->server_lines == 0) { /* an invalid one was reported already */
        conf_perr_at(p, dc->file, dc->line, "datacenter \"%s\": no \"server\"", dc->name);
        return;
    }
    if (dc->min_servers <= dc->nservers || dc->nservers == 0)
        return;
    /* Names may resolve to several addresses: only numeric ones are counted. */
    for (int i = 0; i < dc->nservers; i++)
        if (dc->servers[i].resolve)
            return;
    conf_perr_at(p, dc->file, dc->line, "datacenter \"%s\": \"min_servers %d\" but only %d servers",
                 dc->name, dc->min_servers, dc->nservers);
}

void conf_close_listener(struct parser *p, void *obj)
{
    struct conf_listener *l = obj;
    if (l->nlistens == 0) {
        conf_perr_at(p, l->file, l->line, "listener \"%s\": no \"listen\"", l->name);
        return;
    }
    if (l->mode == MODE_TCP && (l->sess == SESS_HEADER || l->sess == SESS_COOKIE)) {
        conf_perr_at(p, l->sess_at.file, l->sess_at.line,
                     "listener \"%s\": \"session %s\" needs mode http", l->name,
                     l->sess == SESS_HEADER ? "header" : "cookie");
        return;
    }
    if (l->sess == SESS_SNI && l->ncerts == 0)
        conf_perr_at(p, l->sess_at.file, l->sess_at.line,
                     "listener \"%s\": \"session sni\" needs \"tls\"", l->name);
    if (!l->defer_accept_at.line)
        l->defer_accept = l->mode == MODE_HTTP; /* HTTP, TLS and PROXY clients speak first */
    if (!l->http2_at.line)
        l->http2 = l->mode == MODE_HTTP && l->ncerts > 0;
    else if (l->http2 && l->mode != MODE_HTTP)
        conf_perr_at(p, l->http2_at.file, l->http2_at.line,
                     "listener \"%s\": \"http2 on\" needs mode http", l->name);
}

void conf_close_redis(struct parser *p, void *obj)
{
    struct conf_redis *r = obj;
    if (r->sentinel && !r->master)
        conf_perr_at(p, r->file, r->line,
                     "\"redis sentinel\": no \"master\" (the name of the monitored set)");
    if (!r->sentinel && r->master)
        conf_perr_at(p, r->file, r->line, "\"redis\": \"master\" is only for \"redis sentinel\"");
}

int conf_dc_index(const struct conf *c, const char *name)
{
    for (int i = 0; i < c->ndcs; i++)
        if (strcmp(c->dcs[i].name, name) == 0)
            return i;
    return -1;
}

/* `datacenters` names into indices; none listed is every datacenter. */
static void resolve_dc_list(struct parser *p, struct conf_listener *l)
{
    struct conf *c = p->conf;
    if (l->ndc_names == 0) {
        l->dcs = conf_arena_alloc(&c->arena, sizeof(int) * (size_t)MAX(c->ndcs, 1));
        for (int i = 0; i < c->ndcs; i++)
            l->dcs[i] = i;
        l->ndcs = c->ndcs;
        return;
    }
    l->dcs = conf_arena_alloc(&c->arena, sizeof(int) * (size_t)l->ndc_names);
    for (int i = 0; i < l->ndc_names; i++) {
        int idx = conf_dc_index(c, l->dc_names[i]);
        if (idx < 0) {
            conf_perr_at(p, l->dcs_at.file, l->dcs_at.line,
                         "\"datacenters\": unknown datacenter \"%s\"", l->dc_names[i]);
            continue;
        }
        for (int k = 0; k < l->ndcs && idx >= 0; k++)
            if (l->dcs[k] == idx) {
                conf_perr_at(p, l->dcs_at.file, l->dcs_at.line,
                             "\"datacenters\": \"%s\" is listed twice", l->dc_names[i]);
                idx = -1;
            }
        if (idx >= 0)
            l->dcs[l->ndcs++] = idx;
    }
}

/* Address A of listener I is neither the stats endpoint's nor one that an
 * earlier listen took. */
static void check_listen(struct parser *p, int i, int a)
{
    const struct conf *c = p->conf;
    const struct conf_listen *ln = &c->lsns[i].listens[a];
    if (c->stats_on && net_addr_equal(&ln->addr, &c->stats_addr))
        conf_perr_at(p, ln->file, ln->line, "\"listen\": the stats endpoint uses this address");
    for (int j = 0; j <= i; j++)
        for (int b = 0; b < (j == i ? a : c->lsns[j].nlistens); b++)
            if (net_addr_equal(&ln->addr, &c->lsns[j].listens[b].addr))
                conf_perr_at(p, ln->file, ln->line,
                             "\"listen\": this address is already used by listener \"%s\"",
                             c->lsns[j].name);
}

void conf_validate(struct parser *p, int last)
{
    struct conf *c = p->conf;
    for (int i = 0; i < c->nlsns; i++) {
        const struct conf_listener *l = &c->lsns[i];
        if (l->max_header_size + 1024 > c->buffer_size)
            conf_perr_at(p, l->file, l->line,
                         "listener \"%s\": max_header_size %u needs buffer_size %u or more",
                         l->name, l->max_header_size, l->max_header_size + 1024);
    }
    if (c->ndcs == 0)
        conf_perr(p, last, "no \"datacenter\" is defined");
    if (c->nlsns == 0)
        conf_perr(p, last, "no \"listener\" is defined");
    for (int i = 0; i < c->nlsns; i++) {
        resolve_dc_list(p, &c->lsns[i]);
        for (int a = 0; a < c->lsns[i].nlistens; a++)
            check_listen(p, i, a);
    }
}

/* Could FILE be opened for writing, or created? Answered without creating
 * it: -t changes nothing. */
static int writable(const char *file, char *why, size_t len)
{
    int fd = open(file, O_WRONLY | O_APPEND | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd >= 0) {
        close(fd);
        return EG_OK;
    }
    if (errno == ENOENT) {
        const char *slash = strrchr(file, '/');
        char dir[4096];
        snprintf(dir, sizeof(dir), "%.*s", slash && slash != file ? (int)(slash - file) : 1,
                 slash ? file : ".");
        if (access(dir, W_OK | X_OK) == 0)
            return EG_OK;
    }
    snprintf(why, len, "%s", strerror(errno));
    return EG_ERR;
}

/* The log and the access log: a file is checked as the pid file is; a
 * syslog socket is connected to (which sends nothing). */
static int check_log_targets(const struct conf *c, struct conf_errs *errs)
{
    struct log_target t[2];
    conf_log_targets(c, &t[LOG_MAIN], &t[LOG_ACCESS]);
    int rc = EG_OK;
    for (int i = LOG_MAIN; i <= LOG_ACCESS; i++) {
        const struct conf_loc *at = i == LOG_MAIN ? &c->log_at : &c->access_log_at;
        const char *name = i == LOG_MAIN ? "log" : "access_log";
        char why[EG_ERRLEN];
        int fd;
        if (t[i].to == LOG_TO_FILE && writable(t[i].file, why, sizeof(why)) != EG_OK) {
            conf_errs_add(errs, at->file, at->line, "\"%s\": cannot open %s: %s", name,
                          t[i].file, why);
            rc = EG_ERR;
        } else if (t[i].to == LOG_TO_SYSLOG) {
            if (log_target_open(&t[i], &fd, why, sizeof(why)) != EG_OK) {
                conf_errs_add(errs, at->file, at->line, "\"%s\": %s", name, why);
                rc = EG_ERR;
            } else {
                close(fd);
            }
        }
    }
    return rc;
}

int conf_check_files(const struct conf *c, struct conf_errs *errs)
{
    char why[EG_ERRLEN];
    int rc = check_log_targets(c, errs);
    if (c->pid_file && writable(c->pid_file, why, sizeof(why)) != EG_OK) {
        conf_errs_add(errs, c->pid_at.file, c->pid_at.line, "\"pid\": cannot create %s: %s",
                      c->pid_file, why);
        rc = EG_ERR;
    }
    return rc;
}
