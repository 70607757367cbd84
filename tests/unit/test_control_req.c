/* Unit tests of proto/json.c and proto/control_req.c: the JSON reader's
 * strictness, the control API's paths, methods and bodies, and the records
 * of operator state read back from Redis. */
#include "proto/control_req.h"
#include "proto/http.h"
#include "proto/json.h"
#include "base/util.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- JSON ---- */

static int parses(const char *s)
{
    struct json_doc d;
    int rc = json_parse(s, strlen(s), &d, NULL, 0);
    json_free(&d);
    return rc == EG_OK;
}

static void json_accepts_rfc8259(void **state)
{
    (void)state;
    const char *ok[] = {"{}", "[]", " {\"a\": [1, -2.5e+3, true, false, null, \"x\"]} ",
                        "\"\\u00e9\\ud83d\\ude00\\n\"", "0", "-0.0", "\"caf\xc3\xa9\""};
    for (size_t i = 0; i < ARRAY_LEN(ok); i++)
        assert_true(parses(ok[i]));
}

static void json_refuses_what_rfc8259_does(void **state)
{
    (void)state;
    const char *bad[] = {"", "{", "{\"a\" 1}", "{\"a\": 1,}", "[1 2]", "01", "1.", ".5",
                         "1e", "+1", "tru", "nul", "\"\\x\"", "\"\\ud800\"", "\"\\udc00\"",
                         "\"\\u0000\"", "\"a\tb\"", "\"\xc3\"", "\"\xed\xa0\x80\"",
                         "\"\xc0\xaf\"", "{} {}", "{1: 2}", "'a'", "[1]]"};
    for (size_t i = 0; i < ARRAY_LEN(bad); i++)
        assert_false(parses(bad[i]));
}

static void json_limits_nesting(void **state)
{
    (void)state;
    char deep[200];
    memset(deep, '[', 100);
    memset(deep + 100, ']', 100);
    struct json_doc d;
    char err[96];
    assert_int_equal(json_parse(deep, sizeof(deep), &d, err, sizeof(err)), EG_ERR);
    assert_non_null(strstr(err, "nested too deep"));
    json_free(&d);
    assert_true(parses("[[[[[[[[[[1]]]]]]]]]]"));
}

static void json_reads_values_and_writes_strings(void **state)
{
    (void)state;
    struct json_doc d;
    const char *s = "{\"a\": \"x\\\"y\", \"n\": 42, \"a\": \"last\"}";
    assert_int_equal(json_parse(s, strlen(s), &d, NULL, 0), EG_OK);
    assert_string_equal(json_get(d.root, "a")->str, "last");
    assert_true(json_get(d.root, "n")->num == 42);
    assert_null(json_get(d.root, "missing"));
    static const char *const known[] = {"a", NULL};
    assert_string_equal(json_unknown_key(d.root, known), "n");
    json_free(&d);
    struct sbuf b = {0};
    json_write_str(&b, "q\"\\\n\x01", 5);
    assert_int_equal(b.len, strlen("\"q\\\"\\\\\\u000a\\u0001\""));
    assert_memory_equal(b.s, "\"q\\\"\\\\\\u000a\\u0001\"", b.len);
    sbuf_free(&b);
}

/* ---- requests ---- */

static int parse(int method, const char *path, const char *body, struct ctl_cmd *cmd)
{
    char err[160];
    int status = ctl_parse(method, path, strlen(path), body, body ? strlen(body) : 0, cmd, err,
                           sizeof(err));
    if (status)
        assert_true(err[0] != '\0');
    return status;
}

static void paths_name_objects(void **state)
{
    (void)state;
    struct ctl_cmd c;
    assert_int_equal(parse(HTTP_GET, "/control", NULL, &c), 0);
    assert_int_equal(c.object, CTL_OVERVIEW);
    assert_int_equal(parse(HTTP_GET, "/control/", NULL, &c), 0);
    assert_int_equal(parse(HTTP_GET, "/control/dcs/ams-1.x_y", NULL, &c), 0);
    assert_int_equal(c.object, CTL_DC);
    assert_string_equal(c.dc, "ams-1.x_y");
    assert_int_equal(parse(HTTP_GET, "/control/dcs/ams/servers/%5B::1%5D:8080", NULL, &c), 0);
    assert_int_equal(c.object, CTL_SERVER);
    assert_string_equal(c.server, "[::1]:8080");
    assert_int_equal(parse(HTTP_GET, "/control/sessions/a%2Fb/c%20d", NULL, &c), 0);
    assert_int_equal(c.object, CTL_SESSION);
    assert_string_equal(c.key, "a/b/c d");
    assert_int_equal(c.key_len, 7);
    assert_false(ctl_path_claimed("/controls", 9));
    assert_false(ctl_path_claimed("/stats", 6));
    assert_true(ctl_path_claimed("/control/x", 10));
}

static void bad_paths_and_methods(void **state)
{
    (void)state;
    struct ctl_cmd c;
    assert_int_equal(parse(HTTP_GET, "/control/nothing", NULL, &c), 404);
    assert_int_equal(parse(HTTP_GET, "/control/dcs/", NULL, &c), 404);
    assert_int_equal(parse(HTTP_GET, "/control/dcs/a b", NULL, &c), 404);
    assert_int_equal(parse(HTTP_GET, "/control/dcs/ams/", NULL, &c), 404);
    assert_int_equal(parse(HTTP_GET, "/control/dcs/ams/servers/", NULL, &c), 404);
    assert_int_equal(parse(HTTP_GET, "/control/dcs/ams/servers/1.2.3.4:5/x", NULL, &c), 404);
    assert_int_equal(parse(HTTP_GET, "/control/dcs/ams/servers/host.example:80", NULL, &c), 404);
    assert_int_equal(parse(HTTP_GET, "/control/dcs/ams/other/1.2.3.4:5", NULL, &c), 404);
    assert_int_equal(parse(HTTP_GET, "/control/sessions/", NULL, &c), 400);
    assert_int_equal(parse(HTTP_GET, "/control/sessions/%4", NULL, &c), 400);
    assert_int_equal(parse(HTTP_GET, "/control/sessions/%0a", NULL, &c), 400);
    char longkey[300] = "/control/sessions/";
    memset(longkey + strlen(longkey), 'k', 257);
    assert_int_equal(parse(HTTP_GET, longkey, NULL, &c), 400);
    assert_int_equal(parse(HTTP_POST, "/control/dcs/ams", "{}", &c), 405);
    assert_int_equal(parse(HTTP_DELETE, "/control/dcs/ams", NULL, &c), 405);
    assert_int_equal(parse(HTTP_PUT, "/control", "{}", &c), 405);
    assert_int_equal(parse(HTTP_GET, "/control/dcs/ams", "{}", &c), 400);
}

static void datacenter_bodies(void **state)
{
    (void)state;
    struct ctl_cmd c;
    assert_int_equal(parse(HTTP_PUT, "/control/dcs/ams", "{\"state\": \"drain\"}", &c), 0);
    assert_int_equal(c.state, CTL_DRAIN);
    assert_true(c.drain_timeout < 0);
    assert_int_equal(
        parse(HTTP_PUT, "/control/dcs/ams", "{\"state\":\"drain\",\"drain_timeout\":2.5}", &c), 0);
    assert_true(c.drain_timeout == 2.5);
    assert_int_equal(parse(HTTP_PUT, "/control/dcs/ams", "{\"state\": \"down\"}", &c), 0);
    assert_int_equal(c.state, CTL_DOWN);
    const char *bad[] = {NULL, "", "{}", "[]", "\"drain\"", "{\"state\": \"Drain\"}",
                         "{\"state\": 1}", "{\"state\": \"drain\", \"weight\": 3}",
                         "{\"state\": \"ready\", \"drain_timeout\": 3}",
                         "{\"state\": \"drain\", \"drain_timeout\": 86401}",
                         "{\"state\": \"drain\", \"drain_timeout\": \"3\"}",
                         "{\"state\": \"drain\"", "{\"state\": \"drain\"}}"};
    for (size_t i = 0; i < ARRAY_LEN(bad); i++)
        assert_int_equal(parse(HTTP_PUT, "/control/dcs/ams", bad[i], &c), 400);
    char big[CTL_BODY_MAX + 10];
    memset(big, ' ', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    big[0] = '{';
    big[sizeof(big) - 2] = '}';
    assert_int_equal(parse(HTTP_PUT, "/control/dcs/ams", big, &c), 413);
}

static void server_and_session_bodies(void **state)
{
    (void)state;
    struct ctl_cmd c;
    const char *srv = "/control/dcs/ams/servers/10.0.0.1:80";
    assert_int_equal(parse(HTTP_PUT, srv, "{\"weight\": 0}", &c), 0);
    assert_int_equal(c.weight, 0);
    assert_int_equal(c.state, CTL_KEEP);
    assert_int_equal(parse(HTTP_PUT, srv, "{\"weight\": null, \"state\": \"ready\"}", &c), 0);
    assert_int_equal(c.weight, CTL_WEIGHT_CONF);
    assert_int_equal(c.state, CTL_READY);
    assert_int_equal(parse(HTTP_PUT, srv, "{\"state\": \"drain\"}", &c), 0);
    assert_int_equal(c.weight, CTL_WEIGHT_KEEP);
    const char *bad[] = {"{}", "{\"weight\": -1}", "{\"weight\": 1001}", "{\"weight\": 1.5}",
                         "{\"weight\": true}", "{\"drain_timeout\": 1}"};
    for (size_t i = 0; i < ARRAY_LEN(bad); i++)
        assert_int_equal(parse(HTTP_PUT, srv, bad[i], &c), 400);
    assert_int_equal(parse(HTTP_PUT, "/control/sessions/k", "{\"dc\": \"fra\"}", &c), 0);
    assert_string_equal(c.to_dc, "fra");
    assert_int_equal(parse(HTTP_PUT, "/control/sessions/k", "{\"dc\": \"f r\"}", &c), 400);
    assert_int_equal(parse(HTTP_PUT, "/control/sessions/k", "{\"dc\": \"fra\", \"x\": 1}", &c),
                     400);
    assert_int_equal(parse(HTTP_DELETE, "/control/sessions/k", NULL, &c), 0);
}

/* ---- records ---- */

static void records_from_redis(void **state)
{
    (void)state;
    struct ctl_field f;
    assert_int_equal(ctl_parse_field("dc:ams", 6, &f), EG_OK);
    assert_string_equal(f.dc, "ams");
    assert_string_equal(f.server, "");
    assert_int_equal(ctl_parse_field("srv:ams:[::1]:80", 16, &f), EG_OK);
    assert_string_equal(f.server, "[::1]:80");
    char buf[160];
    ctl_format_field(&f, buf, sizeof(buf));
    assert_string_equal(buf, "srv:ams:[::1]:80");
    const char *badf[] = {"dc:", "dc:a b", "srv:ams", "srv:ams:", "srv::1.2.3.4:5", "x:ams",
                          "srv:ams:evil\nname"};
    for (size_t i = 0; i < ARRAY_LEN(badf); i++)
        assert_int_equal(ctl_parse_field(badf[i], strlen(badf[i]), &f), EG_ERR);

    struct ctl_record r;
    const char *ok = "{\"state\": \"drain\", \"weight\": null, \"since\": 10.5, \"until\": 40.5, "
                     "\"origin\": \"10.0.0.9:4000\"}";
    assert_int_equal(ctl_parse_record(ok, strlen(ok), &r), EG_OK);
    assert_int_equal(r.state, CTL_DRAIN);
    assert_int_equal(r.weight, CTL_WEIGHT_CONF);
    assert_true(r.until == 40.5);
    assert_string_equal(r.origin, "10.0.0.9:4000");
    const char *bad[] = {
        "{}", "{\"state\": \"drain\"}",
        "{\"state\": \"drain\", \"since\": 10, \"until\": 5}",
        "{\"state\": \"up\", \"since\": 1, \"until\": 1}",
        "{\"state\": \"ready\", \"weight\": 2000, \"since\": 1, \"until\": 1}",
        "{\"state\": \"ready\", \"since\": -1, \"until\": 1}",
        "{\"state\": \"ready\", \"since\": 1, \"until\": 1, \"origin\": \"a\\nb\"}",
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++)
        assert_int_equal(ctl_parse_record(bad[i], strlen(bad[i]), &r), EG_ERR);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(json_accepts_rfc8259),
        cmocka_unit_test(json_refuses_what_rfc8259_does),
        cmocka_unit_test(json_limits_nesting),
        cmocka_unit_test(json_reads_values_and_writes_strings),
        cmocka_unit_test(paths_name_objects),
        cmocka_unit_test(bad_paths_and_methods),
        cmocka_unit_test(datacenter_bodies),
        cmocka_unit_test(server_and_session_bodies),
        cmocka_unit_test(records_from_redis),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
