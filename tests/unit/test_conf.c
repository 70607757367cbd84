/* Unit tests of conf/: the directive table, error reporting (FILE:LINE:
 * message naming the directive), defaults, units, includes, the effective
 * configuration (-T) and the generated reference, robustness against garbage
 * and mutated files, and the duration and size value parsers. */
#include "conf/conf.h"
#include "conf/directive.h"
#include "conf/values.h"
#include "base/log.h"
#include "base/util.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ftw.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define FILE_NAME "test.conf"

/* One-line blocks that make a file valid; snippets below count lines with
 * them in mind. */
#define DC "datacenter a { server 127.0.0.1:9001; }\n"
#define LSN "listener l { listen 127.0.0.1:8080; }\n"

static struct conf *parse(const char *text, struct conf_errs *e)
{
    memset(e, 0, sizeof(*e));
    return conf_parse(FILE_NAME, text, strlen(text), e);
}

/* Is there an error line "FILE:LINE: ..." that contains NEEDLE? */
static bool has_error_in(const struct conf_errs *e, const char *file, int line,
                         const char *needle)
{
    char prefix[300];
    snprintf(prefix, sizeof(prefix), "%s:%d: ", file, line);
    for (const char *s = e->text; s && *s;) {
        const char *nl = strchr(s, '\n');
        size_t n = nl ? (size_t)(nl - s) : strlen(s);
        char l[1024];
        snprintf(l, sizeof(l), "%.*s", (int)MIN(n, sizeof(l) - 1), s);
        if (strncmp(l, prefix, strlen(prefix)) == 0 && strstr(l, needle))
            return true;
        s += n + (nl ? 1 : 0);
    }
    return false;
}

static bool has_error(const struct conf_errs *e, int line, const char *needle)
{
    return has_error_in(e, FILE_NAME, line, needle);
}

/* TEXT is rejected with an error at LINE whose message contains NEEDLE. */
static void expect_error(const char *text, int line, const char *needle)
{
    struct conf_errs e;
    struct conf *c = parse(text, &e);
    bool found = e.count >= 1 && has_error(&e, line, needle);
    if (c || !found)
        print_error("input:\n%s\nerrors (%d):\n%s\nwanted %s:%d: ...%s...\n", text, e.count,
                    e.text ? e.text : "(none)", FILE_NAME, line, needle);
    conf_free(c);
    conf_errs_free(&e);
    assert_null(c);
    assert_true(found);
}

static struct conf *expect_ok(const char *text)
{
    struct conf_errs e;
    struct conf *c = parse(text, &e);
    if (!c)
        print_error("input:\n%s\nerrors:\n%s\n", text, e.text ? e.text : "(none)");
    int count = e.count;
    conf_errs_free(&e);
    assert_non_null(c);
    assert_int_equal(count, 0);
    return c;
}

static uint16_t port_of(const struct net_addr *a)
{
    if (a->ss.ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)&a->ss)->sin6_port);
    return ntohs(((const struct sockaddr_in *)&a->ss)->sin_port);
}

static const char full_conf[] =
    "# edgegate: every directive of the table\n"
    "workers 4;\n"
    "log /var/log/edgegate.log debug;   # file and level\n"
    "stats 127.0.0.1:9100;\n"
    "buffer_size 16k;\n"
    "drain_timeout 1m;\n"
    "\n"
    "datacenter ams {\n"
    "    priority 1;\n"
    "    server 127.0.0.1:9001;\n"
    "    server app.ams.example:80 weight 2;   # a name, resolved\n"
    "    server [::1]:9003 weight 3;\n"
    "    check http /health interval 500ms timeout 2s rise 4 fall 5 expect 204 host \"hc.example\";\n"
    "    min_servers 2;\n"
    "    passive fall 7 timeout 1h;\n"
    "    resolve_interval 1m;\n"
    "}\n"
    "\n"
    "datacenter \"fra\" {\n"
    "    priority 2;\n"
    "    server 10.0.0.2:9002;\n"
    "    check tcp interval 2s;\n"
    "}\n"
    "\n"
    "datacenter lon { priority 1; server 10.0.0.3:9003; check tls; }\n"
    "\n"
    "listener web {\n"
    "    listen 0.0.0.0:8080;\n"
    "    listen [::1]:8080;\n"
    "    mode http;\n"
    "    tls cert \"/etc/edgegate/site.pem\" key '/etc/edgegate/site.key';\n"
    "    tls cert /etc/edgegate/b.pem key /etc/edgegate/b.key;\n"
    "    session cookie sid;\n"
    "    datacenters lon ams;\n"
    "    failback on;\n"
    "    retries 5;\n"
    "    connect_timeout 500ms;\n"
    "    idle_timeout 1h;\n"
    "    hold_timeout 2s;\n"
    "}\n"
    "\n"
    "listener raw {\n"
    "    listen [::]:9000;\n"
    "    mode tcp;\n"
    "    session client_ip;\n"
    "}\n";

/* ---- valid files ---- */

static void full_file_globals(void **state)
{
    (void)state;
    struct conf *c = expect_ok(full_conf);
    assert_string_equal(c->file, FILE_NAME);
    assert_int_equal(c->workers, 4);
    assert_int_equal(c->log_level, LOG_DEBUG);
    assert_string_equal(c->log_file, "/var/log/edgegate.log");
    assert_true(c->stats_on);
    assert_int_equal(c->stats_addr.ss.ss_family, AF_INET);
    assert_int_equal(port_of(&c->stats_addr), 9100);
    assert_int_equal(c->buffer_size, 16384);
    assert_float_equal(c->drain_timeout, 60, 1e-9);
    assert_int_equal(c->ndcs, 3);
    assert_int_equal(c->nlsns, 2);
    conf_free(c);
}

static void full_file_datacenter_with_http_check(void **state)
{
    (void)state;
    struct conf *c = expect_ok(full_conf);
    const struct conf_dc *d = &c->dcs[0];
    assert_string_equal(d->name, "ams");
    assert_int_equal(d->line, 8);
    assert_int_equal(d->priority, 1);
    assert_int_equal(d->nservers, 3);
    assert_string_equal(d->servers[0].host, "127.0.0.1");
    assert_int_equal(d->servers[0].port, 9001);
    assert_int_equal(d->servers[0].weight, 1);
    assert_false(d->servers[0].resolve);
    assert_int_equal(d->servers[0].addr.ss.ss_family, AF_INET);
    assert_int_equal(d->servers[0].line, 10);
    assert_string_equal(d->servers[1].spec, "app.ams.example:80");
    assert_string_equal(d->servers[1].host, "app.ams.example");
    assert_int_equal(d->servers[1].port, 80);
    assert_int_equal(d->servers[1].weight, 2);
    assert_true(d->servers[1].resolve);
    assert_string_equal(d->servers[2].host, "::1");
    assert_int_equal(d->servers[2].port, 9003);
    assert_int_equal(d->servers[2].weight, 3);
    assert_false(d->servers[2].resolve);
    assert_int_equal(d->servers[2].addr.ss.ss_family, AF_INET6);
    assert_int_equal(d->check.type, CHECK_HTTP);
    assert_string_equal(d->check.path, "/health");
    assert_string_equal(d->check.host, "hc.example");
    assert_int_equal(d->check.expect, 204);
    assert_float_equal(d->check.interval, 0.5, 1e-9);
    assert_float_equal(d->check.timeout, 2, 1e-9);
    assert_int_equal(d->check.rise, 4);
    assert_int_equal(d->check.fall, 5);
    assert_int_equal(d->min_servers, 2);
    assert_int_equal(d->passive_fall, 7);
    assert_float_equal(d->passive_timeout, 3600, 1e-9);
    assert_float_equal(d->resolve_interval, 60, 1e-9);
    conf_free(c);
}

static void full_file_tcp_and_tls_checks(void **state)
{
    (void)state;
    struct conf *c = expect_ok(full_conf);
    const struct conf_dc *fra = &c->dcs[1], *lon = &c->dcs[2];
    assert_string_equal(fra->name, "fra");
    assert_int_equal(fra->priority, 2);
    assert_int_equal(fra->check.type, CHECK_TCP);
    assert_float_equal(fra->check.interval, 2, 1e-9);
    assert_float_equal(fra->check.timeout, 1, 1e-9);
    assert_int_equal(fra->check.rise, 2);
    assert_int_equal(fra->check.fall, 3);
    assert_null(fra->check.path);
    assert_string_equal(lon->name, "lon");
    assert_int_equal(lon->priority, 1);
    assert_int_equal(lon->check.type, CHECK_TLS);
    assert_int_equal(lon->nservers, 1);
    assert_int_equal(lon->servers[0].port, 9003);
    conf_free(c);
}

static void full_file_http_listener(void **state)
{
    (void)state;
    struct conf *c = expect_ok(full_conf);
    const struct conf_listener *l = &c->lsns[0];
    assert_string_equal(l->name, "web");
    assert_int_equal(l->line, 27);
    assert_int_equal(l->nlistens, 2);
    assert_int_equal(l->listens[0].addr.ss.ss_family, AF_INET);
    assert_int_equal(port_of(&l->listens[0].addr), 8080);
    assert_int_equal(l->listens[1].addr.ss.ss_family, AF_INET6);
    assert_int_equal(port_of(&l->listens[1].addr), 8080);
    assert_int_equal(l->listens[1].line, 29);
    assert_int_equal(l->mode, MODE_HTTP);
    assert_int_equal(l->ncerts, 2);
    assert_string_equal(l->certs[0].cert, "/etc/edgegate/site.pem");
    assert_string_equal(l->certs[0].key, "/etc/edgegate/site.key");
    assert_string_equal(l->certs[1].cert, "/etc/edgegate/b.pem");
    assert_string_equal(l->certs[1].key, "/etc/edgegate/b.key");
    assert_int_equal(l->sess, SESS_COOKIE);
    assert_string_equal(l->sess_name, "sid");
    assert_int_equal(l->sess_name_len, 3);
    assert_int_equal(l->ndcs, 2);
    assert_int_equal(l->dcs[0], 2); /* lon */
    assert_int_equal(l->dcs[1], 0); /* ams */
    assert_true(l->failback);
    assert_int_equal(l->retries, 5);
    assert_float_equal(l->connect_timeout, 0.5, 1e-9);
    assert_float_equal(l->idle_timeout, 3600, 1e-9);
    assert_float_equal(l->hold_timeout, 2, 1e-9);
    conf_free(c);
}

static void full_file_tcp_listener_gets_defaults(void **state)
{
    (void)state;
    struct conf *c = expect_ok(full_conf);
    const struct conf_listener *l = &c->lsns[1];
    assert_string_equal(l->name, "raw");
    assert_int_equal(l->nlistens, 1);
    assert_int_equal(l->listens[0].addr.ss.ss_family, AF_INET6);
    assert_int_equal(port_of(&l->listens[0].addr), 9000);
    assert_int_equal(l->mode, MODE_TCP);
    assert_int_equal(l->sess, SESS_CLIENT_IP);
    assert_int_equal(l->ncerts, 0);
    assert_int_equal(l->ndcs, 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(l->dcs[i], i);
    assert_false(l->failback);
    assert_int_equal(l->retries, 2);
    assert_float_equal(l->connect_timeout, 1, 1e-9);
    assert_float_equal(l->idle_timeout, 60, 1e-9);
    conf_free(c);
}

static void minimal_file_gets_defaults(void **state)
{
    (void)state;
    struct conf *c = expect_ok(DC "datacenter b { server 127.0.0.1:9002; }\n" LSN);
    assert_int_equal(c->workers, 1);
    assert_int_equal(c->log_level, LOG_INFO);
    assert_null(c->log_file);
    assert_false(c->stats_on);
    assert_int_equal(c->buffer_size, 16384);
    assert_float_equal(c->drain_timeout, 30, 1e-9);
    assert_int_equal(c->dcs[0].priority, 1);
    assert_int_equal(c->dcs[0].check.type, CHECK_NONE);
    assert_int_equal(c->dcs[0].servers[0].weight, 1);
    const struct conf_listener *l = &c->lsns[0];
    assert_int_equal(l->mode, MODE_HTTP);
    assert_int_equal(l->sess, SESS_NONE);
    assert_int_equal(l->retries, 2);
    assert_float_equal(l->connect_timeout, 1, 1e-9);
    assert_float_equal(l->idle_timeout, 60, 1e-9);
    assert_false(l->failback);
    assert_int_equal(l->ndcs, 2);
    assert_int_equal(l->dcs[0], 0);
    assert_int_equal(l->dcs[1], 1);
    conf_free(c);
}

static void workers_auto_is_zero(void **state)
{
    (void)state;
    struct conf *c = expect_ok("workers auto;\n" DC LSN);
    assert_int_equal(c->workers, 0);
    conf_free(c);
}

static void log_level_alone_and_buffer_size_1m(void **state)
{
    (void)state;
    struct conf *c = expect_ok("log warn;\nbuffer_size 1m;\n" DC LSN);
    assert_int_equal(c->log_level, LOG_WARN);
    assert_null(c->log_file);
    assert_int_equal(c->buffer_size, 1024 * 1024);
    conf_free(c);
}

static void session_header_and_sni(void **state)
{
    (void)state;
    struct conf *c = expect_ok(DC
                               "listener h { listen 127.0.0.1:8080; session header X-Session; }\n"
                               "listener s { listen 127.0.0.1:8443; mode tcp;\n"
                               "  tls cert /c.pem key /k.pem; session sni; }\n");
    assert_int_equal(c->lsns[0].sess, SESS_HEADER);
    assert_string_equal(c->lsns[0].sess_name, "X-Session");
    assert_int_equal(c->lsns[0].sess_name_len, 9);
    assert_int_equal(c->lsns[1].sess, SESS_SNI);
    assert_int_equal(c->lsns[1].mode, MODE_TCP);
    conf_free(c);
}

/* The example of SPEC.md "Configuration", as written there. */
static void spec_example_parses(void **state)
{
    (void)state;
    struct conf *c = expect_ok(
        "workers auto;\n"
        "log info;\n"
        "stats 127.0.0.1:9100;\n"
        "redis 127.0.0.1:6379 {\n"
        "    password secret;\n"
        "    prefix edgegate:;\n"
        "    ttl 1h;\n"
        "    timeout 50ms;\n"
        "}\n"
        "datacenter ams {\n"
        "    priority 1;\n"
        "    server 127.0.0.1:9001;\n"
        "    server app.ams.example:80 weight 2;\n"
        "    check http /health interval 1s timeout 500ms rise 2 fall 3;\n"
        "}\n"
        "datacenter fra { priority 1; server 127.0.0.1:9002; check tcp interval 1s; }\n"
        "listener web {\n"
        "    listen 0.0.0.0:8080;\n"
        "    mode http;\n"
        "    tls cert /etc/edgegate/site.pem key /etc/edgegate/site.key;\n"
        "    session cookie sid;\n"
        "    datacenters ams fra;\n"
        "    failback off;\n"
        "    retries 2;\n"
        "    connect_timeout 1s;\n"
        "    idle_timeout 60s;\n"
        "}\n");
    assert_int_equal(c->ndcs, 2);
    assert_int_equal(c->nlsns, 1);
    conf_free(c);
}

/* ---- one error each ---- */

static void unknown_directive(void **state)
{
    (void)state;
    expect_error("bogus 1;\n" DC LSN, 1, "unknown directive \"bogus\"");
    expect_error(DC "listener l {\n listen 127.0.0.1:8080;\n frobnicate on;\n}\n", 4,
                 "unknown directive \"frobnicate\"");
}

static void directive_in_wrong_block(void **state)
{
    (void)state;
    expect_error("server 127.0.0.1:9001;\n" DC LSN, 1, "\"server\" is not allowed at the top level");
    expect_error("datacenter a {\n server 127.0.0.1:9001;\n listen 127.0.0.1:8081;\n}\n" LSN, 3,
                 "\"listen\" is not allowed in a datacenter block");
    expect_error(DC "listener l {\n listen 127.0.0.1:8080;\n workers 2;\n}\n", 4,
                 "\"workers\" is not allowed in a listener block");
}

static void missing_semicolon_at_end_of_file(void **state)
{
    (void)state;
    expect_error(DC LSN "workers 2", 3, "\"workers\": missing \";\"");
}

static void missing_semicolon_before_brace(void **state)
{
    (void)state;
    expect_error("datacenter a {\n server 127.0.0.1:9001;\n priority 2\n}\n" LSN, 3,
                 "\"priority\": missing \";\"");
}

static void missing_argument(void **state)
{
    (void)state;
    expect_error("datacenter a {\n server 127.0.0.1:9001;\n passive 5xx 3 codes 502,404;\n}\n" LSN,
                 1, "\"passive codes 502,404\": expected 5xx statuses separated by commas");
    expect_error("datacenter a {\n server 127.0.0.1:9001;\n passive codes 503,;\n}\n" LSN, 1,
                 "expected 5xx statuses");
    expect_error("workers;\n" DC LSN, 1, "\"workers\": missing argument");
    expect_error(DC "listener l {\n listen;\n}\n", 3, "\"listen\": missing argument");
}

static void too_many_arguments(void **state)
{
    (void)state;
    expect_error("workers 1 2;\n" DC LSN, 1, "\"workers\": too many arguments");
    expect_error(DC "listener l {\n listen 127.0.0.1:8080;\n retries 1 2;\n}\n", 4,
                 "\"retries\": too many arguments");
}

static void bad_duration(void **state)
{
    (void)state;
    expect_error(DC "listener l {\n listen 127.0.0.1:8080;\n connect_timeout 5x;\n}\n", 4,
                 "\"connect_timeout\": expected a duration");
    expect_error("drain_timeout soon;\n" DC LSN, 1, "\"drain_timeout\": expected a duration");
    expect_error(DC "listener l {\n listen 127.0.0.1:8080;\n idle_timeout 0s;\n}\n", 4,
                 "\"idle_timeout\": expected a duration above zero");
}

static void bad_size(void **state)
{
    (void)state;
    expect_error("buffer_size 16q;\n" DC LSN, 1, "\"buffer_size\": expected a size");
    expect_error("buffer_size 2m;\n" DC LSN, 1, "\"buffer_size\": expected a size from 4k to 1m");
}

static void bad_integer(void **state)
{
    (void)state;
    expect_error("workers two;\n" DC LSN, 1, "\"workers\": expected an integer");
    expect_error("datacenter a {\n server 127.0.0.1:9001;\n priority 1.5;\n}\n" LSN, 3,
                 "\"priority\": expected an integer");
}

static void out_of_range_value(void **state)
{
    (void)state;
    expect_error(DC "listener l {\n listen 127.0.0.1:8080;\n retries 17;\n}\n", 4,
                 "\"retries\": expected an integer from 0 to 16, got \"17\"");
    expect_error("workers 0;\n" DC LSN, 1, "\"workers\": expected an integer from 1 to 256");
    expect_error("datacenter a {\n server 127.0.0.1:9001;\n priority -1;\n}\n" LSN, 3,
                 "\"priority\": expected an integer from 0");
}

static void bad_keyword_value(void **state)
{
    (void)state;
    expect_error(DC "listener l {\n listen 127.0.0.1:8080;\n mode udp;\n}\n", 4,
                 "\"mode\": expected http or tcp");
    expect_error(DC "listener l {\n listen 127.0.0.1:8080;\n failback maybe;\n}\n", 4,
                 "\"failback\": expected on or off");
    expect_error("log loud;\n" DC LSN, 1, "\"log\": expected a level");
}

static void printed_configuration_parses_back(const char *text);

/* log [FILE | syslog [FACILITY]] LEVEL; access_log off | on|json [FILE |
 * syslog [FACILITY]]; syslog socket PATH format rfc3164|rfc5424. */
static void log_targets(void **state)
{
    (void)state;
    struct log_target l, a;
    struct conf *c = expect_ok("log syslog warn;\naccess_log json /var/log/eg/access.log;\n" DC LSN);
    assert_true(c->log_syslog);
    assert_int_equal(c->log_level, LOG_WARN);
    conf_log_targets(c, &l, &a);
    assert_int_equal(l.to, LOG_TO_SYSLOG);
    assert_int_equal(l.facility, 3); /* daemon */
    assert_string_equal(l.socket, "/dev/log");
    assert_int_equal(l.format, LOG_RFC3164);
    assert_int_equal(a.to, LOG_TO_FILE);
    assert_string_equal(a.file, "/var/log/eg/access.log");
    assert_int_equal(c->access_log, CONF_ACCESS_LOG_JSON);
    conf_free(c);

    c = expect_ok("log /var/log/e.log info;\naccess_log on syslog local5;\n"
                  "syslog socket /run/rsyslog.sock format rfc5424;\n" DC LSN);
    conf_log_targets(c, &l, &a);
    assert_int_equal(l.to, LOG_TO_FILE);
    assert_int_equal(a.to, LOG_TO_SYSLOG);
    assert_int_equal(a.facility, 21);
    assert_string_equal(a.socket, "/run/rsyslog.sock");
    assert_int_equal(a.format, LOG_RFC5424);
    conf_free(c);

    /* Without a target, the access log goes into the log; the last `log`
     * written says everything. */
    c = expect_ok("log syslog local0 debug;\nlog info;\naccess_log on;\n" DC LSN);
    conf_log_targets(c, &l, &a);
    assert_int_equal(l.to, LOG_TO_STDERR);
    assert_int_equal(a.to, LOG_TO_LOG);
    conf_free(c);
    printed_configuration_parses_back("log syslog local7 error;\naccess_log json syslog user;\n"
                                      "syslog format rfc5424;\n" DC LSN);
    printed_configuration_parses_back("access_log on \"/var/log/a b.log\";\n" DC LSN);

    expect_error("log syslog loud info;\n" DC LSN, 1, "\"log\": expected a syslog facility");
    expect_error("log var.log info;\n" DC LSN, 1, "expected an absolute file path, or syslog");
    expect_error("log /a /b info;\n" DC LSN, 1, "expected one FILE, or: syslog [FACILITY]");
    expect_error("access_log off /x.log;\n" DC LSN, 1, "\"off\" takes no target");
    expect_error("access_log loud;\n" DC LSN, 1, "expected off, on or json");
    expect_error("access_log on x.log;\n" DC LSN, 1, "expected an absolute file path");
    expect_error("access_log on syslog local9;\n" DC LSN, 1, "expected a syslog facility");
    expect_error("syslog socket dev/log;\n" DC LSN, 1, "expected an absolute file path");
    expect_error("syslog format rfc9999;\n" DC LSN, 1, "expected rfc3164 or rfc5424");
}

static void unknown_datacenter_in_datacenters(void **state)
{
    (void)state;
    expect_error(DC "listener l {\n listen 127.0.0.1:8080;\n datacenters a nowhere;\n}\n", 4,
                 "\"datacenters\": unknown datacenter \"nowhere\"");
}

static void datacenter_listed_twice_in_datacenters(void **state)
{
    (void)state;
    expect_error(DC "listener l {\n listen 127.0.0.1:8080;\n datacenters a a;\n}\n", 4,
                 "\"datacenters\": \"a\" is listed twice");
}

static void duplicate_datacenter_name(void **state)
{
    (void)state;
    expect_error(DC "datacenter a { server 127.0.0.1:9002; }\n" LSN, 2,
                 "\"datacenter\": \"a\" is defined twice");
}

static void duplicate_listener_name(void **state)
{
    (void)state;
    expect_error(DC LSN "listener l { listen 127.0.0.1:8081; }\n", 3,
                 "\"listener\": \"l\" is defined twice");
}

static void duplicate_listen_address(void **state)
{
    (void)state;
    expect_error(DC LSN "listener m {\n listen 127.0.0.1:8080;\n}\n", 4,
                 "\"listen\": this address is already used by listener \"l\"");
    expect_error(DC "listener l {\n listen [::1]:80;\n listen [::1]:80;\n}\n", 4,
                 "already used by listener \"l\"");
    expect_error("stats 127.0.0.1:8080;\n" DC LSN, 3, "\"listen\": the stats endpoint uses this");
}

static void unterminated_block(void **state)
{
    (void)state;
    expect_error(DC "listener l {\n listen 127.0.0.1:8080;\n", 2, "not closed");
}

static void unterminated_quoted_string(void **state)
{
    (void)state;
    expect_error(DC LSN "log \"info;\n\n", 3, "unterminated quoted string");
}

static void stray_closing_brace(void **state)
{
    (void)state;
    expect_error(DC "}\n" LSN, 2, "unexpected \"}\"");
}

static void empty_file(void **state)
{
    (void)state;
    expect_error("", 1, "empty");
}

static void only_comments(void **state)
{
    (void)state;
    struct conf_errs e;
    struct conf *c = parse("# nothing\n   # here either\n", &e);
    assert_null(c);
    assert_true(e.count >= 1);
    assert_non_null(strstr(e.text, FILE_NAME ":"));
    assert_non_null(strstr(e.text, "no \"datacenter\""));
    conf_errs_free(&e);
}

static uint32_t rng_state;

static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return rng_state;
}

static void binary_garbage(void **state)
{
    (void)state;
    rng_state = 0x1234567;
    for (int round = 0; round < 200; round++) {
        char buf[1024];
        size_t n = 1 + rnd() % sizeof(buf);
        for (size_t i = 0; i < n; i++)
            buf[i] = (char)rnd();
        if (round % 2) /* half without NUL: the tokenizer has to reject them */
            for (size_t i = 0; i < n; i++)
                buf[i] = buf[i] ? buf[i] : (char)0xff;
        struct conf_errs e = {0};
        struct conf *c = conf_parse(FILE_NAME, buf, n, &e);
        assert_null(c);
        assert_true(e.count >= 1);
        assert_int_equal(strncmp(e.text, FILE_NAME ":", strlen(FILE_NAME ":")), 0);
        conf_errs_free(&e);
    }
}

static void high_byte_in_a_word(void **state)
{
    (void)state;
    expect_error(DC LSN "work\xe9rs 1;\n", 3, "invalid byte 0xe9");
}

static void datacenter_without_server(void **state)
{
    (void)state;
    expect_error("datacenter a {\n priority 1;\n}\n" LSN, 1, "datacenter \"a\": no \"server\"");
}

static void listener_without_listen(void **state)
{
    (void)state;
    expect_error(DC "listener l {\n mode tcp;\n}\n", 2, "listener \"l\": no \"listen\"");
}

static void session_header_in_tcp_mode(void **state)
{
    (void)state;
    expect_error(DC "listener l {\n listen 127.0.0.1:8080;\n mode tcp;\n session header X-S;\n}\n",
                 5, "\"session header\" needs mode http");
}

static void session_sni_without_tls(void **state)
{
    (void)state;
    expect_error(DC "listener l {\n listen 127.0.0.1:8080;\n session sni;\n}\n", 4,
                 "\"session sni\" needs \"tls\"");
}

static void bad_session_arguments(void **state)
{
    (void)state;
    expect_error(DC "listener l {\n listen 127.0.0.1:8080;\n session cookie;\n}\n", 4,
                 "\"session\": \"cookie\" needs a name");
    expect_error(DC "listener l {\n listen 127.0.0.1:8080;\n session header \"a b\";\n}\n", 4,
                 "\"session\": \"header\" needs a name");
    expect_error(DC "listener l {\n listen 127.0.0.1:8080;\n session url;\n}\n", 4,
                 "\"session\": expected header NAME");
}

static void bad_server_address(void **state)
{
    (void)state;
    const char *bad[] = {"nohost", "127.0.0.1:0", "127.0.0.1:70000", "127.0.0.1:", ":80",
                         "bad!host:80", "[::1:80", "127.0.0.1:80x"};
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        char text[256];
        snprintf(text, sizeof(text), "datacenter a {\n server 127.0.0.1:1;\n server %s;\n}\n" LSN,
                 bad[i]);
        expect_error(text, 3, "\"server\"");
    }
    expect_error("datacenter a {\n server 127.0.0.1:80 weight 0;\n}\n" LSN, 2,
                 "\"server\": expected an integer from 1 to 1000");
    expect_error("datacenter a {\n server 127.0.0.1:80 wieght 2;\n}\n" LSN, 2,
                 "\"server\": expected weight N, tls, verify CAFILE, sni NAME or h2");
}

static void bad_listen_address(void **state)
{
    (void)state;
    expect_error(DC "listener l {\n listen example.com:80;\n}\n", 3, "\"listen\"");
    expect_error(DC "listener l {\n listen 127.0.0.1;\n}\n", 3, "\"listen\"");
}

static void bad_check_arguments(void **state)
{
    (void)state;
    static const struct {
        const char *check, *needle;
    } bad[] = {
        {"check udp", "\"check\": expected tcp, http or tls"},
        {"check http", "\"check\": http needs a path"},
        {"check http health", "\"check\": http needs a path"},
        {"check tcp interval", "\"check\": \"interval\" needs a value"},
        {"check tcp interval 0s", "\"check\": expected a duration above zero"},
        {"check tcp timeout x", "\"check\": expected a duration"},
        {"check tcp rise 0", "\"check\": expected an integer from 1 to 100"},
        {"check tcp fall 101", "\"check\": expected an integer from 1 to 100"},
        {"check tcp expect 200", "\"check\": expected interval, timeout"},
        {"check http /h expect 99", "\"check\": expected an integer from 100 to 599"},
        {"check http /h bogus 1", "\"check\": expected interval, timeout"},
        {"check http /h host \"a b\"", "\"check\": expected a host name"},
        {"check http \"/a b\"", "\"check\": the path may not contain spaces"},
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        char text[256];
        snprintf(text, sizeof(text), "datacenter a {\n server 127.0.0.1:1;\n %s;\n}\n" LSN,
                 bad[i].check);
        expect_error(text, 3, bad[i].needle);
    }
}

static void bad_tls_arguments(void **state)
{
    (void)state;
    expect_error(DC "listener l {\n listen 127.0.0.1:8080;\n tls /c.pem /k.pem;\n}\n", 4,
                 "\"tls\": expected \"tls cert FILE key FILE\"");
    expect_error(DC "listener l {\n listen 127.0.0.1:8080;\n tls cert /c.pem;\n}\n", 4,
                 "\"tls\": expected \"tls cert FILE key FILE\"");
}

static void bad_datacenter_tuning(void **state)
{
    (void)state;
    expect_error("datacenter a {\n server 127.0.0.1:1;\n passive fall;\n}\n" LSN, 3,
                 "\"passive\": missing argument");
    expect_error("datacenter a {\n server 127.0.0.1:1;\n passive fall 2 timeout;\n}\n" LSN, 3,
                 "\"passive\": \"timeout\" needs a value");
    expect_error("datacenter a {\n server 127.0.0.1:1;\n passive rise 2;\n}\n" LSN, 3,
                 "\"passive\": expected fall, timeout, 5xx, codes or eject");
    expect_error("datacenter a {\n server 127.0.0.1:1;\n max_ejected 101;\n}\n" LSN, 3,
                 "\"max_ejected\"");
    expect_error("datacenter a {\n server 127.0.0.1:1;\n min_servers 2;\n}\n" LSN, 1,
                 "\"min_servers 2\" but only 1 servers");
    expect_error("datacenter a {\n server 127.0.0.1:1;\n resolve_interval 0;\n}\n" LSN, 3,
                 "\"resolve_interval\": expected a duration above zero");
}

static void bad_names(void **state)
{
    (void)state;
    expect_error("datacenter \"a b\" { server 127.0.0.1:1; }\n" LSN, 1, "\"datacenter\"");
    expect_error(DC "listener \"\" { listen 127.0.0.1:8080; }\n", 2, "\"listener\"");
}

/* A quoted string that spans lines counts them, with or without an escaped
 * newline. */
static void quoted_newlines_keep_line_numbers(void **state)
{
    (void)state;
    expect_error("foo \"a\nb\";\nbar;\n", 3, "unknown directive \"bar\"");
    expect_error("foo \"a\\\nb\";\nbar;\n", 3, "unknown directive \"bar\"");
}

/* A file name longer than the message buffer must neither overflow it nor
 * crowd out the message. Run in a child so that a crash is a failure. */
static void long_file_name_error_names_the_directive(void **state)
{
    (void)state;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char name[700];
        memset(name, 'd', sizeof(name) - 1);
        name[sizeof(name) - 1] = '\0';
        struct conf_errs e = {0};
        struct conf *c = conf_parse(name, "bogus;\n", 7, &e);
        bool ok = !c && e.count >= 1 && strstr(e.text, "unknown directive \"bogus\"");
        _exit(ok ? 0 : 1);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

/* ---- several errors ---- */

static void every_error_is_reported(void **state)
{
    (void)state;
    struct conf_errs e;
    struct conf *c = parse("workers two;\n"                 /* 1 */
                           "bogus;\n"                       /* 2 */
                           "datacenter a {\n"               /* 3 */
                           "  server 127.0.0.1:9001;\n"     /* 4 */
                           "  priority high;\n"             /* 5 */
                           "  listen 127.0.0.1:1;\n"        /* 6 */
                           "}\n"                            /* 7 */
                           "listener l {\n"                 /* 8 */
                           "  listen 127.0.0.1:8080;\n"     /* 9 */
                           "  retries 99;\n"                /* 10 */
                           "  idle_timeout forever;\n"      /* 11 */
                           "  mode ftp;\n"                  /* 12 */
                           "}\n"                            /* 13 */
                           "buffer_size lots;\n",           /* 14 */
                           &e);
    assert_null(c);
    assert_true(e.count >= 7);
    assert_true(has_error(&e, 1, "\"workers\""));
    assert_true(has_error(&e, 2, "\"bogus\""));
    assert_true(has_error(&e, 5, "\"priority\""));
    assert_true(has_error(&e, 6, "\"listen\""));
    assert_true(has_error(&e, 10, "\"retries\""));
    assert_true(has_error(&e, 11, "\"idle_timeout\""));
    assert_true(has_error(&e, 12, "\"mode\""));
    assert_true(has_error(&e, 14, "\"buffer_size\""));
    conf_errs_free(&e);
}

/* ---- mutations of a valid file ---- */

static void check_valid(const struct conf *c)
{
    assert_true(c->ndcs >= 1);
    assert_true(c->nlsns >= 1);
    for (int i = 0; i < c->ndcs; i++) {
        const struct conf_dc *d = &c->dcs[i];
        assert_non_null(d->name);
        assert_true(d->nservers >= 1);
        for (int k = 0; k < d->nservers; k++) {
            assert_in_range(d->servers[k].port, 1, 65535);
            assert_in_range(d->servers[k].weight, 1, 1000);
        }
    }
    for (int i = 0; i < c->nlsns; i++) {
        const struct conf_listener *l = &c->lsns[i];
        assert_true(l->nlistens >= 1);
        assert_true(l->ndcs >= 1);
        for (int k = 0; k < l->ndcs; k++)
            assert_in_range(l->dcs[k], 0, c->ndcs - 1);
        assert_in_range(l->retries, 0, CONF_MAX_RETRIES);
        assert_true(l->mode == MODE_HTTP || l->mode == MODE_TCP);
        assert_true(l->connect_timeout > 0 && l->idle_timeout > 0);
    }
}

static size_t mutate(char *buf, size_t n, size_t cap)
{
    static const char ins[] = {'{', '}', ';', '"', '#', '\0'};
    int times = 1 + (int)(rnd() % 4);
    for (int t = 0; t < times && n > 0; t++) {
        size_t pos = rnd() % n;
        switch (rnd() % 5) {
        case 0:
            buf[pos] = (char)(buf[pos] ^ (1 << (rnd() % 8)));
            break;
        case 1:
            n = pos;
            break;
        case 2:
        case 3:
            if (n < cap) {
                memmove(buf + pos + 1, buf + pos, n - pos);
                buf[pos] = ins[rnd() % sizeof(ins)];
                n++;
            }
            break;
        case 4:
            buf[pos] = ' ';
            break;
        }
    }
    return n;
}

static void random_mutations_do_not_crash(void **state)
{
    (void)state;
    rng_state = 20240601;
    size_t base = strlen(full_conf), cap = base + 16;
    char *buf = malloc(cap);
    assert_non_null(buf);
    int valid = 0;
    for (int i = 0; i < 10000; i++) {
        memcpy(buf, full_conf, base);
        size_t n = mutate(buf, base, cap);
        /* An exact-size copy, so that a read past the end is caught under ASan. */
        char *exact = malloc(n ? n : 1);
        assert_non_null(exact);
        memcpy(exact, buf, n);
        struct conf_errs e = {0};
        struct conf *c = conf_parse(FILE_NAME, exact, n, &e);
        if (c) {
            assert_int_equal(e.count, 0);
            check_valid(c);
            valid++;
        } else {
            assert_true(e.count > 0);
            assert_non_null(e.text);
        }
        conf_free(c);
        conf_errs_free(&e);
        free(exact);
    }
    free(buf);
    /* Some mutations (inside comments) leave the file valid. */
    assert_true(valid > 0);
}

/* ---- value parsers ---- */

static void durations(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        double v;
    } good[] = {
        {"500ms", 0.5}, {"2s", 2}, {"1m", 60}, {"1h", 3600}, {"1d", 86400}, {"0", 0},
        {"0s", 0}, {"10s", 10}, {"1.5s", 1.5}, {"250ms", 0.25}, {"365d", 365 * 86400.0},
    };
    for (size_t i = 0; i < ARRAY_LEN(good); i++) {
        double v = -1;
        if (conf_parse_duration(good[i].s, &v) != 0)
            print_error("duration \"%s\" rejected\n", good[i].s);
        assert_int_equal(conf_parse_duration(good[i].s, &v), 0);
        assert_float_equal(v, good[i].v, 1e-9);
    }
}

static void bad_durations(void **state)
{
    (void)state;
    static const char *bad[] = {"", "s", "ms", "-1s", "+1s", " 1s", "1 s", "1x", "1sec", "1ms2",
                                "1mss", "inf", "nan", "1e999s", ".5s", "366d", "8761h",
                                "10", "500", "1.5", "0.0", "00"};
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        double v = 42;
        if (conf_parse_duration(bad[i], &v) == 0)
            print_error("duration \"%s\" accepted\n", bad[i]);
        assert_int_equal(conf_parse_duration(bad[i], &v), -1);
        assert_float_equal(v, 42, 0);
    }
}

/* A duration is decimal: strtod would read "0x10s" as 16 seconds. */
static void hex_duration_is_rejected(void **state)
{
    (void)state;
    double v = 42;
    assert_int_equal(conf_parse_duration("0x10s", &v), -1);
    assert_int_equal(conf_parse_duration("0x1p3", &v), -1);
}

static void sizes(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        size_t v;
    } good[] = {
        {"16k", 16384}, {"1m", 1048576}, {"16K", 16384}, {"1M", 1048576},
        {"1g", 1073741824}, {"0", 0}, {"100b", 100}, {"100B", 100}, {"1024g", (size_t)1 << 40},
        {"1099511627776b", (size_t)1 << 40},
    };
    for (size_t i = 0; i < ARRAY_LEN(good); i++) {
        size_t v = 7;
        assert_int_equal(conf_parse_size(good[i].s, &v), 0);
        assert_int_equal(v, good[i].v);
    }
}

static void bad_sizes(void **state)
{
    (void)state;
    static const char *bad[] = {"", "k", "-1", "+1", " 1", "1 k", "1.5k", "1kb", "1t", "1x",
                                "1025g", "1099511627777b", "18446744073709551616b", "0x10",
                                "100", "1099511627776", "00", "b"};
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        size_t v = 7;
        if (conf_parse_size(bad[i], &v) == 0)
            print_error("size \"%s\" accepted\n", bad[i]);
        assert_int_equal(conf_parse_size(bad[i], &v), -1);
        assert_int_equal(v, 7);
    }
}

/* ---- units ---- */

/* `interval 500` meant seconds to some and milliseconds to others: a number
 * without its unit is refused, and the message names the units. */
static void unitless_duration_is_an_error(void **state)
{
    (void)state;
    expect_error(DC "listener l {\n listen 127.0.0.1:8080;\n connect_timeout 5;\n}\n", 4,
                 "\"connect_timeout\": a duration needs a unit: ms, s, m, h or d");
    expect_error("datacenter a {\n server 127.0.0.1:1;\n check tcp interval 500;\n}\n" LSN, 3,
                 "\"check\": a duration needs a unit: ms, s, m, h or d");
    expect_error("drain_timeout 1.5;\n" DC LSN, 1, "\"drain_timeout\": a duration needs a unit");
    expect_error("redis 127.0.0.1:6379 {\n ttl 3600;\n}\n" DC LSN, 2, "\"ttl\": a duration needs");
}

static void unitless_size_is_an_error(void **state)
{
    (void)state;
    expect_error("buffer_size 16384;\n" DC LSN, 1,
                 "\"buffer_size\": a size needs a unit: b, k, m or g");
    expect_error(DC "listener l {\n listen 127.0.0.1:8080;\n replay_buffer 1000;\n}\n", 4,
                 "\"replay_buffer\": a size needs a unit");
}

/* 0 is 0 in every unit; bytes are written with b. */
static void zero_and_bytes(void **state)
{
    (void)state;
    struct conf *c = expect_ok(DC "listener l {\n listen 127.0.0.1:8080;\n hold_timeout 0;\n"
                                  " replay_buffer 0;\n max_request_line 300b;\n}\n");
    assert_float_equal(c->lsns[0].hold_timeout, 0, 0);
    assert_int_equal(c->lsns[0].replay_buffer, 0);
    assert_int_equal(c->lsns[0].max_request_line, 300);
    conf_free(c);
}

/* ---- the table ---- */

static size_t width_of(enum conf_kind k)
{
    switch (k) {
    case KIND_DURATION: return sizeof(double);
    case KIND_FLAG: return sizeof(bool);
    case KIND_WORD:
    case KIND_HOST:
    case KIND_PATH: return sizeof(char *);
    case KIND_SIZE:
    case KIND_INT:
    case KIND_ENUM:
    case KIND_OPTIONS:
    case KIND_CUSTOM:
    case KIND_BLOCK: break;
    }
    return 0;
}

/* Each row's value fits the field it names, each handler it needs is there,
 * each option belongs to a directive that takes options. */
static void table_rows_are_well_formed(void **state)
{
    (void)state;
    for (size_t i = 0; i < conf_ndirectives; i++) {
        const struct conf_directive *d = &conf_directives[i];
        if (!d->help || !d->help[0] || !d->ctx)
            print_error("row \"%s\": no help or no context\n", d->name);
        assert_true(d->help && d->help[0] && d->ctx);
        size_t w = width_of(d->kind);
        if (w)
            assert_int_equal(d->width, w);
        if (d->kind == KIND_INT || d->kind == KIND_SIZE)
            assert_true(d->width == 4 || d->width == 8);
        if (d->kind == KIND_ENUM)
            assert_true(d->values && (d->width == 1 || d->width == 4));
        if (d->kind == KIND_CUSTOM)
            assert_non_null(d->set);
        if (d->kind == KIND_BLOCK)
            assert_true(d->open && d->block_ctx);
        if (d->parent) {
            bool elsewhere;
            const struct conf_directive *p = conf_dir_find(d->parent, d->ctx, &elsewhere);
            assert_non_null(p);
            assert_true(p->kind == KIND_OPTIONS || p->kind == KIND_CUSTOM);
        }
        for (size_t k = 0; k < i; k++) {
            const struct conf_directive *o = &conf_directives[k];
            bool same_parent = (!o->parent && !d->parent) ||
                               (o->parent && d->parent && strcmp(o->parent, d->parent) == 0);
            if (same_parent && strcmp(o->name, d->name) == 0 && (o->ctx & d->ctx))
                fail_msg("\"%s\" has two rows", d->name);
        }
    }
}

/* Every default of the table is a valid value: a file that sets nothing
 * gets them all without an error, and they are the documented ones. */
static void defaults_come_from_the_table(void **state)
{
    (void)state;
    struct conf *c = expect_ok(DC LSN);
    assert_int_equal(c->access_log, CONF_ACCESS_LOG_OFF);
    assert_int_equal(c->affinity_size, 100000);
    assert_float_equal(c->affinity_ttl, 3600, 0);
    assert_string_equal(c->redis.prefix, "edgegate:");
    assert_float_equal(c->redis.timeout, 0.05, 1e-12);
    assert_int_equal(c->redis.cache_size, 65536);
    assert_float_equal(c->redis.cache_ttl, 10, 0);
    assert_int_equal(c->dcs[0].min_servers, 1);
    assert_int_equal(c->dcs[0].passive_fall, 3);
    assert_float_equal(c->dcs[0].passive_timeout, 10, 0);
    assert_float_equal(c->dcs[0].resolve_interval, 30, 0);
    const struct conf_listener *l = &c->lsns[0];
    assert_float_equal(l->hold_timeout, 5, 0);
    assert_float_equal(l->handshake_timeout, 10, 0);
    assert_float_equal(l->request_timeout, 10, 0);
    assert_float_equal(l->response_timeout, 30, 0);
    assert_int_equal(l->max_request_line, 8192);
    assert_int_equal(l->max_header_size, 15 * 1024);
    assert_int_equal(l->max_headers, 100);
    assert_int_equal(l->replay_buffer, 65536);
    assert_int_equal(l->max_connections, 0);
    assert_true(l->forward_for);
    assert_false(l->forwarded);
    assert_int_equal(l->send_proxy, SEND_PROXY_OFF);
    assert_false(l->accept_proxy);
    conf_free(c);
}

/* ---- include ---- */

static char tmp_dir[64];

static void tmp_make(void)
{
    snprintf(tmp_dir, sizeof(tmp_dir), "/tmp/test_conf.XXXXXX");
    assert_non_null(mkdtemp(tmp_dir));
}

/* Writes TEXT to NAME under the temporary directory (making its folder) and
 * returns the file's path, in a static buffer. */
static const char *tmp_write(const char *name, const char *text)
{
    static char path[256];
    snprintf(path, sizeof(path), "%s/%s", tmp_dir, name);
    char *slash = strrchr(path, '/');
    *slash = '\0';
    mkdir(path, 0755);
    *slash = '/';
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

static void tmp_remove(void)
{
    nftw(tmp_dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

static struct conf *tmp_load(const char *name, struct conf_errs *e)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", tmp_dir, name);
    memset(e, 0, sizeof(*e));
    return conf_load(path, e);
}

/* Paths are relative to the including file's directory, whatever the
 * working directory; an include in a block is read in that block. */
static void include_is_relative_to_the_including_file(void **state)
{
    (void)state;
    tmp_make();
    tmp_write("main.conf", "include parts/dcs.conf;\n"
                           "listener l {\n listen 127.0.0.1:8080;\n include parts/lsn.conf;\n}\n");
    tmp_write("parts/dcs.conf", "include more.conf;\n");
    tmp_write("parts/more.conf", "# the datacenters\ndatacenter a {\n server 127.0.0.1:9001;\n}\n");
    tmp_write("parts/lsn.conf", "retries 5;\nidle_timeout 2m;\n");
    struct conf_errs e;
    struct conf *c = tmp_load("main.conf", &e);
    if (!c)
        print_error("%s", e.text);
    assert_non_null(c);
    assert_int_equal(c->ndcs, 1);
    assert_int_equal(c->lsns[0].retries, 5);
    assert_float_equal(c->lsns[0].idle_timeout, 120, 0);
    /* What an included file defines remembers where it was written. */
    char more[256];
    snprintf(more, sizeof(more), "%s/parts/more.conf", tmp_dir);
    assert_string_equal(c->dcs[0].file, more);
    assert_int_equal(c->dcs[0].line, 2);
    assert_string_equal(c->dcs[0].servers[0].file, more);
    assert_int_equal(c->dcs[0].servers[0].line, 3);
    conf_free(c);
    conf_errs_free(&e);
    tmp_remove();
}

/* A glob reads its files in name order; one that matches nothing is fine. */
static void include_glob_reads_files_in_name_order(void **state)
{
    (void)state;
    tmp_make();
    tmp_write("main.conf", "include conf.d/*.conf;\ninclude empty.d/*.conf;\n" LSN);
    tmp_write("conf.d/20-b.conf", "datacenter b { server 127.0.0.1:9002; }\n");
    tmp_write("conf.d/10-a.conf", "datacenter a { server 127.0.0.1:9001; }\n");
    tmp_write("conf.d/30-c.txt", "not a configuration\n");
    struct conf_errs e;
    struct conf *c = tmp_load("main.conf", &e);
    if (!c)
        print_error("%s", e.text);
    assert_non_null(c);
    assert_int_equal(c->ndcs, 2);
    assert_string_equal(c->dcs[0].name, "a");
    assert_string_equal(c->dcs[1].name, "b");
    conf_free(c);
    conf_errs_free(&e);
    tmp_remove();
}

/* Errors name the file and line of the include, or of the included file. */
static void include_errors_name_file_and_line(void **state)
{
    (void)state;
    tmp_make();
    const char *main_path = tmp_write("main.conf", DC LSN "include nothere.conf;\n"
                                                   "include bad.conf;\n");
    char main_file[256];
    snprintf(main_file, sizeof(main_file), "%s", main_path);
    const char *bad = tmp_write("bad.conf", "workers 2;\nbogus on;\n");
    char bad_file[256];
    snprintf(bad_file, sizeof(bad_file), "%s", bad);
    struct conf_errs e;
    struct conf *c = tmp_load("main.conf", &e);
    assert_null(c);
    if (!has_error_in(&e, main_file, 3, "\"include\": cannot read") ||
        !has_error_in(&e, main_file, 3, "nothere.conf: No such file or directory") ||
        !has_error_in(&e, bad_file, 2, "unknown directive \"bogus\""))
        print_error("%s", e.text);
    assert_true(has_error_in(&e, main_file, 3, "nothere.conf: No such file or directory"));
    assert_true(has_error_in(&e, bad_file, 2, "unknown directive \"bogus\""));
    conf_errs_free(&e);
    tmp_remove();
}

static void include_loop_is_an_error(void **state)
{
    (void)state;
    tmp_make();
    tmp_write("main.conf", DC LSN "include a.conf;\n");
    tmp_write("a.conf", "\ninclude b.conf;\n");
    const char *b = tmp_write("b.conf", "include a.conf;\n");
    char b_file[256];
    snprintf(b_file, sizeof(b_file), "%s", b);
    struct conf_errs e;
    struct conf *c = tmp_load("main.conf", &e);
    assert_null(c);
    if (!has_error_in(&e, b_file, 1, "an include loop"))
        print_error("%s", e.text);
    assert_true(has_error_in(&e, b_file, 1, "an include loop"));
    conf_errs_free(&e);
    /* The main file including itself is a loop too. */
    const char *m = tmp_write("self.conf", DC LSN "include self.conf;\n");
    char m_file[256];
    snprintf(m_file, sizeof(m_file), "%s", m);
    c = tmp_load("self.conf", &e);
    assert_null(c);
    assert_true(has_error_in(&e, m_file, 3, "an include loop"));
    conf_errs_free(&e);
    tmp_remove();
}

/* An included file holds whole statements and blocks. */
static void include_of_half_a_block_is_an_error(void **state)
{
    (void)state;
    tmp_make();
    tmp_write("main.conf", DC "listener l {\n listen 127.0.0.1:8080;\n include close.conf;\n}\n");
    const char *close = tmp_write("close.conf", "retries 1;\n}\n");
    char close_file[256];
    snprintf(close_file, sizeof(close_file), "%s", close);
    struct conf_errs e;
    struct conf *c = tmp_load("main.conf", &e);
    assert_null(c);
    assert_true(has_error_in(&e, close_file, 2, "unexpected \"}\""));
    conf_errs_free(&e);
    tmp_remove();
}

static void include_is_refused_in_isolation(void **state)
{
    (void)state;
    const char text[] = "include /etc/passwd;\n" DC LSN;
    struct conf_errs e = {0};
    struct conf *c = conf_parse_isolated(FILE_NAME, text, strlen(text), &e);
    assert_null(c);
    assert_true(has_error(&e, 1, "\"include\": not read here"));
    conf_errs_free(&e);
}

/* ---- the effective configuration (-T) ---- */

static char *print_conf(const struct conf *c)
{
    char *text = NULL;
    size_t len;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    conf_print(f, c);
    fclose(f);
    return text;
}

/* What -T prints parses into a configuration that prints the same. */
static void printed_configuration_parses_back(const char *text)
{
    struct conf *c = expect_ok(text);
    char *once = print_conf(c);
    struct conf *again = expect_ok(once);
    char *twice = print_conf(again);
    assert_string_equal(once, twice);
    free(once);
    free(twice);
    conf_free(c);
    conf_free(again);
}

static void print_round_trips(void **state)
{
    (void)state;
    printed_configuration_parses_back(full_conf);
    printed_configuration_parses_back(
        "redis sentinel 10.0.0.1:26379 [::1]:26380 { master m; password p; timeout 0.5ms; }\n"
        "datacenter \"a.b\" { server h.example:80 weight 3 tls verify \"/ca dir/ca.pem\" sni s;\n"
        "  check http \"/h?q=1\" expect 204 host h.example; passive fall 0; }\n"
        "listener l { listen *:8080; tls cert '/c \"q\".pem' key /k.pem; session header X-K;\n"
        "  accept_proxy from 10.0.0.0/8 ::1; send_proxy v2; max_request_line 300b; }\n"
        "listener m { listen [::]:9000; mode tcp; accept_proxy; }\n");
}

/* Every default is written out, so that an operator sees what applies. */
static void print_fills_in_every_default(void **state)
{
    (void)state;
    struct conf *c = expect_ok("datacenter a { server 127.0.0.1:9001; check tcp; }\n" LSN);
    char *text = print_conf(c);
    static const char *const wanted[] = {
        "\nworkers 1;\n", "\nlog info;\n", "\nstats off;\n", "\naccess_log off;\n",
        "\nbuffer_size 16k;\n", "\ndrain_timeout 30s;\n", "\naffinity size 100000 ttl 1h;\n",
        "    server 127.0.0.1:9001 weight 1;\n",
        "    check tcp interval 1s timeout 1s rise 2 fall 3;\n",
        "    passive fall 3 timeout 10s 5xx 0 codes 502,503,504 eject 10s;\n", "    max_ejected 50;\n",
        "    resolve_interval 30s;\n", "    hold_max 0;\n", "    try_timeout 0s;\n",
        "    affinity prefer;\n",
        "    mode http;\n", "    session none;\n", "    datacenters a;\n", "    retries 2;\n",
        "    idle_timeout 1m;\n", "    max_header_size 15k;\n", "    forward_for on;\n",
        "    send_proxy off;\n",
    };
    for (size_t i = 0; i < ARRAY_LEN(wanted); i++) {
        if (!strstr(text, wanted[i]))
            print_error("no \"%s\" in:\n%s", wanted[i], text);
        assert_non_null(strstr(text, wanted[i]));
    }
    assert_null(strstr(text, "redis")); /* no block, nothing to show */
    free(text);
    conf_free(c);
}

static void durations_print_back_to_themselves(void **state)
{
    (void)state;
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"500ms", "500ms"}, {"1000ms", "1s"}, {"90s", "90s"}, {"60s", "1m"}, {"2h", "2h"},
        {"24h", "1d"}, {"1.5s", "1500ms"}, {"0.5ms", "0.5ms"}, {"0.000001ms", "0.000001ms"},
        {"0.000001m", "0.06ms"}, {"365d", "365d"}, {"525599.999999m", "31535999.99994s"},
        {"0", "0s"},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        double v, back;
        char buf[64];
        assert_int_equal(conf_parse_duration(cases[i].in, &v), 0);
        conf_format_duration(v, buf, sizeof(buf));
        if (strcmp(buf, cases[i].out) != 0)
            print_error("%s printed as %s\n", cases[i].in, buf);
        assert_string_equal(buf, cases[i].out);
        assert_int_equal(conf_parse_duration(buf, &back), 0);
        assert_float_equal(back, v, 1e-9);
    }
}

/* ---- -t: files the process will open ---- */

static void log_file_in_a_missing_directory(void **state)
{
    (void)state;
    struct conf *c = expect_ok("log /nonexistent-dir/edgegate.log info;\n"
                               "pid /nonexistent-dir/edgegate.pid;\n"
                               "access_log json /nonexistent-dir/access.log;\n" DC LSN);
    struct conf_errs e = {0};
    assert_int_equal(conf_check_files(c, &e), -1);
    if (!has_error(&e, 1, "\"log\": cannot open /nonexistent-dir/edgegate.log: No such file"))
        print_error("%s", e.text);
    assert_true(has_error(&e, 1, "\"log\": cannot open /nonexistent-dir/edgegate.log: No such"));
    assert_true(has_error(&e, 2, "\"pid\": cannot create /nonexistent-dir/edgegate.pid"));
    assert_true(has_error(&e, 3, "\"access_log\": cannot open /nonexistent-dir/access.log"));
    conf_errs_free(&e);
    conf_free(c);
}

/* A writable place passes, and checking creates nothing. */
static void log_file_in_a_writable_directory(void **state)
{
    (void)state;
    tmp_make();
    char text[512], log[128];
    snprintf(log, sizeof(log), "%s/edgegate.log", tmp_dir);
    snprintf(text, sizeof(text), "log %s debug;\npid %s/edgegate.pid;\n" DC LSN, log, tmp_dir);
    struct conf *c = expect_ok(text);
    struct conf_errs e = {0};
    assert_int_equal(conf_check_files(c, &e), 0);
    assert_int_equal(e.count, 0);
    assert_int_equal(access(log, F_OK), -1);
    conf_free(c);
    /* A directory where the log file should be cannot be written. */
    snprintf(text, sizeof(text), "log %s info;\n" DC LSN, tmp_dir);
    c = expect_ok(text);
    assert_int_equal(conf_check_files(c, &e), -1);
    assert_true(has_error(&e, 1, "\"log\": cannot open"));
    conf_errs_free(&e);
    conf_free(c);
    tmp_remove();
}

/* ---- the reference ---- */

static char *reference(const char *format)
{
    char *text = NULL;
    size_t len;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    assert_int_equal(conf_print_reference(f, format), 0);
    fclose(f);
    return text;
}

/* The file, from the repository's root (where `make unit` runs). */
static char *read_text(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        print_error("cannot read %s (the unit tests run from the repository root)\n", path);
    assert_non_null(f);
    char *text = NULL;
    size_t cap = 0, len = 0;
    for (;;) {
        if (len + 4096 > cap)
            text = realloc(text, cap = cap * 2 + 4096);
        assert_non_null(text);
        size_t n = fread(text + len, 1, cap - len - 1, f);
        if (n == 0)
            break;
        len += n;
    }
    fclose(f);
    text[len] = '\0';
    return text;
}

static void checked_in_reference_is_generated(void **state)
{
    (void)state;
    static const struct {
        const char *format, *path;
    } files[] = {{"md", "docs/configuration.md"}, {"man", "packaging/edgegate.conf.5"}};
    for (size_t i = 0; i < ARRAY_LEN(files); i++) {
        char *want = reference(files[i].format), *have = read_text(files[i].path);
        if (strcmp(want, have) != 0)
            print_error("%s is not what the directive table generates: run `make reference`\n",
                        files[i].path);
        assert_string_equal(want, have);
        free(want);
        free(have);
    }
}

static void every_directive_is_in_the_reference(void **state)
{
    (void)state;
    char *md = reference("md"), *man = reference("man");
    for (size_t i = 0; i < conf_ndirectives; i++) {
        const struct conf_directive *d = &conf_directives[i];
        char cell[128], bold[128];
        if (d->parent) {
            snprintf(cell, sizeof(cell), "| `%s` ... `%s` |", d->parent, d->name);
            snprintf(bold, sizeof(bold), "\\fB%s\\fR ... \\fB%s\\fR", d->parent, d->name);
        } else {
            snprintf(cell, sizeof(cell), "| `%s` |", d->name);
            snprintf(bold, sizeof(bold), ".TP\n\\fB%s\\fR", d->name);
        }
        if (!strstr(md, cell) || !strstr(man, bold))
            print_error("\"%s\" is missing from the reference\n", d->name);
        assert_non_null(strstr(md, cell));
        assert_non_null(strstr(man, bold));
    }
    free(md);
    free(man);
}

/* The cells of the Markdown table row LINE (one line, "| a | b |"), cut at
 * pipes that are not escaped. */
static int md_cells(const char *line, char cells[][256], int max)
{
    int n = 0;
    size_t len = 0;
    for (const char *s = line + 1; *s && *s != '\n' && n < max; s++) {
        if (*s == '|' && s[-1] != '\\') {
            cells[n][len] = '\0';
            n++;
            len = 0;
        } else if (len + 1 < 256) {
            cells[n][len++] = *s;
        }
    }
    return n;
}

/* README points to the reference for the full list; every directive its own
 * tables name is one of the table, and a default it states as one value is
 * the table's. */
static void readme_points_to_the_reference(void **state)
{
    (void)state;
    char *readme = read_text("README.md");
    char *sec = strstr(readme, "\n## Configuration\n");
    assert_non_null(sec);
    char *end = strstr(sec + 1, "\n## ");
    if (end)
        *end = '\0';
    assert_non_null(strstr(sec, "(docs/configuration.md)"));
    int rows = 0, defaults = 0;
    for (char *l = strstr(sec, "\n| `"); l; l = strstr(l + 1, "\n| `")) {
        char cells[3][256], name[64], def[64];
        if (md_cells(l + 1, cells, 3) < 2 || sscanf(cells[0], " `%63[a-z0-9_]", name) != 1)
            continue;
        bool elsewhere;
        const struct conf_directive *d = conf_dir_find(name, CTX_ANY, &elsewhere);
        if (!d)
            print_error("README.md names \"%s\", which is no directive\n", name);
        assert_non_null(d);
        rows++;
        if (d->def && sscanf(cells[1], " `%63[^`]` %c", def, &(char){0}) == 1) {
            if (strcmp(def, d->def) != 0)
                print_error("README.md: %s defaults to %s, the table says %s\n", name, def,
                            d->def);
            assert_string_equal(def, d->def);
            defaults++;
        }
    }
    assert_true(rows > 20 && defaults > 10);
    free(readme);
}

/* http2: off on cleartext listeners unless asked for, on with tls, http
 * mode only; `server ... h2`. */
static void http2(void **state)
{
    (void)state;
    struct conf *c = expect_ok(DC LSN "listener h { listen 127.0.0.1:8081; http2 on; }\n");
    assert_false(c->lsns[0].http2);
    assert_true(c->lsns[1].http2);
    conf_free(c);
    c = expect_ok("datacenter a { server 127.0.0.1:9001 h2; server 127.0.0.1:9002 tls h2; }\n"
                  LSN);
    assert_true(c->dcs[0].servers[0].h2 && !c->dcs[0].servers[0].tls);
    assert_true(c->dcs[0].servers[1].h2 && c->dcs[0].servers[1].tls);
    conf_free(c);
    expect_error(DC "listener l {\n listen 127.0.0.1:8080;\n mode tcp;\n http2 on;\n}\n", 5,
                 "\"http2 on\" needs mode http");
    expect_error(DC "listener l {\n listen 127.0.0.1:8080;\n http2 maybe;\n}\n", 4,
                 "expected on or off");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(full_file_globals),
        cmocka_unit_test(full_file_datacenter_with_http_check),
        cmocka_unit_test(full_file_tcp_and_tls_checks),
        cmocka_unit_test(full_file_http_listener),
        cmocka_unit_test(full_file_tcp_listener_gets_defaults),
        cmocka_unit_test(minimal_file_gets_defaults),
        cmocka_unit_test(workers_auto_is_zero),
        cmocka_unit_test(log_level_alone_and_buffer_size_1m),
        cmocka_unit_test(session_header_and_sni),
        cmocka_unit_test(spec_example_parses),
        cmocka_unit_test(unknown_directive),
        cmocka_unit_test(directive_in_wrong_block),
        cmocka_unit_test(missing_semicolon_at_end_of_file),
        cmocka_unit_test(missing_semicolon_before_brace),
        cmocka_unit_test(missing_argument),
        cmocka_unit_test(too_many_arguments),
        cmocka_unit_test(bad_duration),
        cmocka_unit_test(bad_size),
        cmocka_unit_test(bad_integer),
        cmocka_unit_test(out_of_range_value),
        cmocka_unit_test(bad_keyword_value),
        cmocka_unit_test(unknown_datacenter_in_datacenters),
        cmocka_unit_test(datacenter_listed_twice_in_datacenters),
        cmocka_unit_test(duplicate_datacenter_name),
        cmocka_unit_test(duplicate_listener_name),
        cmocka_unit_test(duplicate_listen_address),
        cmocka_unit_test(unterminated_block),
        cmocka_unit_test(unterminated_quoted_string),
        cmocka_unit_test(stray_closing_brace),
        cmocka_unit_test(empty_file),
        cmocka_unit_test(only_comments),
        cmocka_unit_test(binary_garbage),
        cmocka_unit_test(high_byte_in_a_word),
        cmocka_unit_test(datacenter_without_server),
        cmocka_unit_test(listener_without_listen),
        cmocka_unit_test(session_header_in_tcp_mode),
        cmocka_unit_test(session_sni_without_tls),
        cmocka_unit_test(bad_session_arguments),
        cmocka_unit_test(bad_server_address),
        cmocka_unit_test(bad_listen_address),
        cmocka_unit_test(bad_check_arguments),
        cmocka_unit_test(bad_tls_arguments),
        cmocka_unit_test(bad_datacenter_tuning),
        cmocka_unit_test(bad_names),
        cmocka_unit_test(quoted_newlines_keep_line_numbers),
        cmocka_unit_test(long_file_name_error_names_the_directive),
        cmocka_unit_test(every_error_is_reported),
        cmocka_unit_test(random_mutations_do_not_crash),
        cmocka_unit_test(durations),
        cmocka_unit_test(bad_durations),
        cmocka_unit_test(hex_duration_is_rejected),
        cmocka_unit_test(sizes),
        cmocka_unit_test(bad_sizes),
        cmocka_unit_test(http2),
        cmocka_unit_test(unitless_duration_is_an_error),
        cmocka_unit_test(unitless_size_is_an_error),
        cmocka_unit_test(zero_and_bytes),
        cmocka_unit_test(table_rows_are_well_formed),
        cmocka_unit_test(defaults_come_from_the_table),
        cmocka_unit_test(include_is_relative_to_the_including_file),
        cmocka_unit_test(include_glob_reads_files_in_name_order),
        cmocka_unit_test(include_errors_name_file_and_line),
        cmocka_unit_test(include_loop_is_an_error),
        cmocka_unit_test(include_of_half_a_block_is_an_error),
        cmocka_unit_test(include_is_refused_in_isolation),
        cmocka_unit_test(print_round_trips),
        cmocka_unit_test(print_fills_in_every_default),
        cmocka_unit_test(durations_print_back_to_themselves),
        cmocka_unit_test(log_targets),
        cmocka_unit_test(log_file_in_a_missing_directory),
        cmocka_unit_test(log_file_in_a_writable_directory),
        cmocka_unit_test(checked_in_reference_is_generated),
        cmocka_unit_test(every_directive_is_in_the_reference),
        cmocka_unit_test(readme_points_to_the_reference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
