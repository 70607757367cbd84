/* edgegatectl: run-time control of a gateway through its control API (the
 * stats listener's /control paths, README "Control API"). It finds the
 * listener's address and token in the gateway's configuration (the same
 * parser as the gateway), sends one request, and prints the answer as a
 * table, or as the JSON it got (--json).
 *
 * Exit status: 0 done, 1 bad command line or configuration, 2 the gateway
 * could not be reached, 3 the gateway refused (its message is printed). */
#include "conf/conf.h"
#include "base/util.h"
#include "ctl/client.h"
#include "proto/control_req.h"
#include "proto/json.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DEFAULT_CONF "/etc/edgegate/edgegate.conf"

enum { EXIT_USAGE = 1, EXIT_UNREACHABLE = 2, EXIT_REFUSED = 3 };

struct opts {
    const char *conf;
    const char *addr;           /* -s: overrides the configuration's */
    const char *token;          /* -t: overrides the configuration's */
    double timeout;
    bool json;
};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: edgegatectl [-c FILE] [-s ADDR:PORT] [-t TOKEN] [-T SECONDS] [--json] "
            "COMMAND\n"
            "  status                         datacenters, servers, operator state, changes\n"
            "  dc drain NAME [SECONDS]        new sessions avoid NAME; pinned ones leave after\n"
            "                                 SECONDS (default: the gateway's drain_timeout)\n"
            "  dc ready|down NAME             back to normal; or its servers marked down\n"
            "  server drain|ready|down DC ADDR\n"
            "  server weight DC ADDR N|default\n"
            "  session get KEY\n"
            "  session move KEY DC\n"
            "  session forget KEY\n"
            "options:\n"
            "  -c FILE     gateway configuration: stats address and stats_token (default "
            DEFAULT_CONF ")\n"
            "  -s ADDR     the stats listener, instead of the configuration's\n"
            "  -t TOKEN    the token, instead of the configuration's\n"
            "  -T SECONDS  give up after this long (default 5)\n"
            "  --json      print the gateway's JSON answer as it is\n");
}

/* ---- printing ---- */

static const char *str(const struct json_val *o, const char *key, const char *dflt)
{
    const struct json_val *v = json_get(o, key);
    return v && v->type == JSON_STR ? v->str : dflt;
}

static double num(const struct json_val *o, const char *key, double dflt)
{
    const struct json_val *v = json_get(o, key);
    return v && v->type == JSON_NUM ? v->num : dflt;
}

static bool flag(const struct json_val *o, const char *key)
{
    const struct json_val *v = json_get(o, key);
    return v && v->type == JSON_BOOL && v->b;
}

static void print_dcs(const struct json_val *dcs)
{
    printf("%-16s %-6s %-8s %-8s %-14s %s\n", "DATACENTER", "STATE", "HEALTHY", "UP",
           "SESSIONS LEAVE", "ORIGIN");
    for (const struct json_val *d = dcs ? dcs->child : NULL; d; d = d->next) {
        int n = 0;
        for (const struct json_val *s = json_get(d, "servers") ? json_get(d, "servers")->child
                                                               : NULL;
             s; s = s->next)
            n++;
        char up[24], leave[24] = "-";
        snprintf(up, sizeof(up), "%.0f/%d", num(d, "servers_up", 0), n);
        if (strcmp(str(d, "state", ""), "drain") == 0)
            snprintf(leave, sizeof(leave), flag(d, "drained") ? "now" : "in %.0fs",
                     num(d, "sessions_leave_in_s", 0));
        printf("%-16s %-6s %-8s %-8s %-14s %s\n", str(d, "name", "?"), str(d, "state", "?"),
               flag(d, "healthy") ? "yes" : "no", up, leave, str(d, "origin", "-"));
    }
}

static void print_servers(const struct json_val *dcs)
{
    printf("%-16s %-24s %-5s %-6s %-7s %s\n", "DATACENTER", "SERVER", "UP", "STATE", "WEIGHT",
           "REASON");
    for (const struct json_val *d = dcs ? dcs->child : NULL; d; d = d->next) {
        const struct json_val *srvs = json_get(d, "servers");
        for (const struct json_val *s = srvs ? srvs->child : NULL; s; s = s->next) {
            char w[32];
            double wt = num(s, "weight", 0), conf = num(s, "weight_configured", 0);
            if (wt != conf)
                snprintf(w, sizeof(w), "%.0f (%.0f)", wt, conf);
            else
                snprintf(w, sizeof(w), "%.0f", wt);
            printf("%-16s %-24s %-5s %-6s %-7s %s\n", str(d, "name", "?"),
                   str(s, "address", "?"), flag(s, "up") ? "yes" : "no", str(s, "state", "?"), w,
                   str(s, "reason", ""));
        }
    }
}

static void print_time(double t)
{
    time_t s = (time_t)t;
    struct tm tm;
    char buf[32];
    strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S", localtime_r(&s, &tm));
    printf("%s", buf);
}

static void print_status(const struct json_val *root)
{
    const struct json_val *dcs = json_get(root, "datacenters");
    print_dcs(dcs);
    printf("\n");
    print_servers(dcs);
    const struct json_val *fleet = json_get(root, "fleet");
    printf("\noperator state: ");
    if (!flag(fleet, "redis"))
        printf("this gateway only (no Redis)\n");
    else
        printf("fleet-wide, Redis %s, %.0f change(s) waiting to be written\n",
               !flag(fleet, "connected") ? "NOT CONNECTED"
               : flag(fleet, "subscribed") ? "connected"
                                           : "connected but NOT SUBSCRIBED (others' changes unheard)",
               num(fleet, "pending", 0));
    const struct json_val *ch = json_get(root, "changes");
    if (ch && ch->child)
        printf("\nrecent changes:\n");
    for (const struct json_val *e = ch ? ch->child : NULL; e; e = e->next) {
        printf("  ");
        print_time(num(e, "at", 0));
        printf("  %s  (by %s)\n", str(e, "what", "?"), str(e, "origin", "?"));
    }
}

static void print_dc(const struct json_val *d)
{
    printf("datacenter %s: %s", str(d, "name", "?"), str(d, "state", "?"));
    if (strcmp(str(d, "state", ""), "drain") == 0)
        printf(flag(d, "drained") ? ", pinned sessions leave now" : ", pinned sessions leave in %.0fs",
               num(d, "sessions_leave_in_s", 0));
    printf(", %s, %.0f server(s) up", flag(d, "healthy") ? "healthy" : "NOT HEALTHY",
           num(d, "servers_up", 0));
    if (json_get(d, "applied"))
        printf(" [%s]", str(d, "applied", "?"));
    printf("\n");
}

static void print_srv(const struct json_val *s)
{
    printf("server %s: %s, weight %.0f (configured %.0f), %s", str(s, "address", "?"),
           str(s, "state", "?"), num(s, "weight", 0), num(s, "weight_configured", 0),
           flag(s, "up") ? "up" : "DOWN");
    if (json_get(s, "applied"))
        printf(" [%s]", str(s, "applied", "?"));
    printf("\n");
}

static void print_session(const struct json_val *s)
{
    if (flag(s, "forgotten")) {
        printf("session %s forgotten [%s]\n", str(s, "key", "?"), str(s, "source", "?"));
        return;
    }
    printf("session %s: datacenter %s, home %s, ", str(s, "key", "?"), str(s, "dc", "?"),
           str(s, "home", "-"));
    const struct json_val *ttl = json_get(s, "ttl_s");
    if (ttl && ttl->type == JSON_NUM)
        printf("expires in %.0fs", ttl->num);
    else
        printf("no expiry");
    printf(" [%s]\n", str(s, "source", "?"));
}

/* ---- commands ---- */

struct call {
    const char *method;
    struct sbuf path;
    struct sbuf body;
    void (*print)(const struct json_val *root);
};

static int bad_usage(const char *why)
{
    fprintf(stderr, "edgegatectl: %s\n", why);
    usage(stderr);
    return EXIT_USAGE;
}

static int state_body(struct call *c, const char *state)
{
    if (ctl_state_parse(state) < 0)
        return bad_usage("a state is drain, ready or down");
    sbuf_printf(&c->body, "{\"state\": \"%s\"", state);
    return 0;
}

/* Builds the request for ARGV (the words after the options). */
static int build(int argc, char **argv, struct call *c)
{
    c->method = "GET";
    if (argc == 1 && strcmp(argv[0], "status") == 0) {
        sbuf_printf(&c->path, "/control");
        c->print = print_status;
        return 0;
    }
    if (argc >= 3 && strcmp(argv[0], "dc") == 0) {
        bool drain = strcmp(argv[1], "drain") == 0;
        if (argc > (drain ? 4 : 3))
            return bad_usage("too many arguments");
        c->method = "PUT";
        sbuf_printf(&c->path, "/control/dcs/");
        ctl_path_escape(&c->path, argv[2]);
        int rc = state_body(c, argv[1]);
        if (rc)
            return rc;
        if (argc == 4) {
            char *end;
            double t = strtod(argv[3], &end);
            if (*end || end == argv[3] || t < 0)
                return bad_usage("a drain timeout is a number of seconds");
            sbuf_printf(&c->body, ", \"drain_timeout\": %g", t);
        }
        sbuf_printf(&c->body, "}");
        c->print = print_dc;
        return 0;
    }
    if (argc >= 4 && strcmp(argv[0], "server") == 0) {
        bool weight = strcmp(argv[1], "weight") == 0;
        if (argc != (weight ? 5 : 4))
            return bad_usage(weight ? "server weight DC ADDR N|default" : "server STATE DC ADDR");
        c->method = "PUT";
        sbuf_printf(&c->path, "/control/dcs/");
        ctl_path_escape(&c->path, argv[2]);
        sbuf_printf(&c->path, "/servers/");
        ctl_path_escape(&c->path, argv[3]);
        if (weight) {
            char *end;
            long w = strtol(argv[4], &end, 10);
            if (strcmp(argv[4], "default") == 0)
                sbuf_printf(&c->body, "{\"weight\": null}");
            else if (*end || end == argv[4] || w < 0 || w > CTL_WEIGHT_MAX)
                return bad_usage("a weight is 0 to 1000, or default");
            else
                sbuf_printf(&c->body, "{\"weight\": %ld}", w);
        } else {
            int rc = state_body(c, argv[1]);
            if (rc)
                return rc;
            sbuf_printf(&c->body, "}");
        }
        c->print = print_srv;
        return 0;
    }
    if (argc >= 3 && strcmp(argv[0], "session") == 0) {
        bool move = strcmp(argv[1], "move") == 0;
        if (argc != (move ? 4 : 3) ||
            (!move && strcmp(argv[1], "get") != 0 && strcmp(argv[1], "forget") != 0))
            return bad_usage("session get KEY | session move KEY DC | session forget KEY");
        sbuf_printf(&c->path, "/control/sessions/");
        ctl_path_escape(&c->path, argv[2]);
        if (move) {
            c->method = "PUT";
            sbuf_printf(&c->body, "{\"dc\": ");
            json_write_str(&c->body, argv[3], strlen(argv[3]));
            sbuf_printf(&c->body, "}");
        } else if (strcmp(argv[1], "forget") == 0) {
            c->method = "DELETE";
        }
        c->print = print_session;
        return 0;
    }
    return bad_usage(argc ? "unknown command" : "no command");
}

/* The stats listener and token: from the options, else the configuration. */
static int target(const struct opts *o, struct net_addr *addr, char **token)
{
    char err[EG_ERRLEN];
    *token = o->token ? strdup(o->token) : NULL;
    if (o->addr && !o->token) {
        if (net_parse_addr(o->addr, addr, err, sizeof(err)) != EG_OK) {
            fprintf(stderr, "edgegatectl: -s %s: %s\n", o->addr, err);
            return EXIT_USAGE;
        }
        return 0;
    }
    struct conf_errs errs = {0};
    struct conf *c = conf_load(o->conf, &errs);
    if (!c) {
        fputs(errs.text ? errs.text : "edgegatectl: cannot read the configuration\n", stderr);
        conf_errs_free(&errs);
        return EXIT_USAGE;
    }
    conf_errs_free(&errs);
    int rc = 0;
    if (o->addr) {
        if (net_parse_addr(o->addr, addr, err, sizeof(err)) != EG_OK) {
            fprintf(stderr, "edgegatectl: -s %s: %s\n", o->addr, err);
            rc = EXIT_USAGE;
        }
    } else if (!c->stats_on) {
        fprintf(stderr, "edgegatectl: %s has no \"stats\" listener: nothing to talk to\n",
                o->conf);
        rc = EXIT_USAGE;
    } else {
        *addr = c->stats_addr;
        /* A wildcard address is reached on loopback. */
        if (addr->ss.ss_family == AF_INET && addr->ss.in.sin_addr.s_addr == htonl(INADDR_ANY))
            addr->ss.in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        else if (addr->ss.ss_family == AF_INET6 &&
                 IN6_IS_ADDR_UNSPECIFIED(&addr->ss.in6.sin6_addr))
            addr->ss.in6.sin6_addr = in6addr_loopback;
    }
    if (!*token && c->stats_token)
        *token = strdup(c->stats_token);
    conf_free(c);
    return rc;
}

static int run(const struct opts *o, struct call *c)
{
    struct net_addr addr;
    char *token = NULL, err[EG_ERRLEN];
    int rc = target(o, &addr, &token);
    if (rc) {
        free(token);
        return rc;
    }
    struct ctl_response resp;
    if (ctl_request(&addr, c->method, c->path.s, c->body.s, token, o->timeout, &resp, err,
                    sizeof(err)) != EG_OK) {
        fprintf(stderr, "edgegatectl: %s\n", err);
        free(token);
        return EXIT_UNREACHABLE;
    }
    free(token);
    struct json_doc doc;
    bool parsed = json_parse(resp.body.s ? resp.body.s : "", resp.body.len, &doc, err,
                             sizeof(err)) == EG_OK;
    if (resp.status != 200) {
        const char *msg = parsed ? str(doc.root, "error", NULL) : NULL;
        fprintf(stderr, "edgegatectl: %d: %s\n", resp.status,
                msg ? msg : resp.body.s ? resp.body.s : "refused");
        rc = EXIT_REFUSED;
    } else if (o->json) {
        fwrite(resp.body.s, 1, resp.body.len, stdout);
    } else if (!parsed) {
        fprintf(stderr, "edgegatectl: the answer is not JSON: %s\n", err);
        rc = EXIT_UNREACHABLE;
    } else {
        c->print(doc.root);
    }
    json_free(&doc);
    sbuf_free(&resp.body);
    return rc;
}

int main(int argc, char **argv)
{
    struct opts o = {.conf = DEFAULT_CONF, .timeout = 5};
    static const struct option longopts[] = {
        {"json", no_argument, NULL, 'j'}, {"help", no_argument, NULL, 'h'}, {0, 0, 0, 0}};
    int opt;
    while ((opt = getopt_long(argc, argv, "+c:s:t:T:jhV", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c': o.conf = optarg; break;
        case 's': o.addr = optarg; break;
        case 't': o.token = optarg; break;
        case 'T':
            o.timeout = atof(optarg);
            if (o.timeout <= 0)
                return bad_usage("-T takes a number of seconds");
            break;
        case 'j': o.json = true; break;
        case 'h': usage(stdout); return 0;
        case 'V': printf("edgegatectl %s\n", EG_VERSION); return 0;
        default: usage(stderr); return EXIT_USAGE;
        }
    }
    struct call c = {0};
    int rc = build(argc - optind, argv + optind, &c);
    if (rc == 0)
        rc = run(&o, &c);
    sbuf_free(&c.path);
    sbuf_free(&c.body);
    return rc;
}
