/* libFuzzer target: the control API's request path. Arbitrary bytes are a
 * request as the stats listener receives it: the head goes through the
 * HTTP parser with the stats endpoint's limits, then path, method and body
 * through the control parser, exactly as gateway/ops/control.c calls it.
 * The same bytes, split at their first newline, are also an operator-state
 * message from Redis (field, record). Whatever is accepted must be within
 * the bounds the rest of the gateway relies on. */
#include "proto/control_req.h"
#include "proto/http.h"

#include <stdlib.h>
#include <string.h>

static void check_name(const char *s)
{
    if (!ctl_name_valid(s, strlen(s)))
        abort();
}

static void request(const char *data, size_t size)
{
    struct http_msg m;
    struct http_hdr hdrs[64];
    struct http_limits lim = {.max_line = 4096, .max_head = 8192, .max_headers = 64};
    http_msg_init(&m, false, hdrs, 64);
    if (http_parse(&m, data, size, &lim) != EG_OK)
        return;
    const char *t = data + m.target;
    const char *q = memchr(t, '?', m.target_len);
    size_t plen = q ? (size_t)(q - t) : m.target_len;
    size_t blen = size - m.head_len;
    if (m.content_length >= 0 && (size_t)m.content_length < blen)
        blen = (size_t)m.content_length;
    struct ctl_cmd cmd;
    char err[160];
    int status = ctl_parse(m.method, t, plen, data + m.head_len, blen, &cmd, err, sizeof(err));
    if (status) {
        if (status < 400 || status > 499 || !err[0])
            abort();
        return;
    }
    if (cmd.object == CTL_DC || cmd.object == CTL_SERVER)
        check_name(cmd.dc);
    if (cmd.object == CTL_SERVER && (strlen(cmd.server) < 3 || strlen(cmd.server) >= CTL_ADDR_MAX))
        abort();
    if (cmd.object == CTL_SESSION) {
        if (cmd.key_len == 0 || cmd.key_len > CTL_KEY_MAX || strlen(cmd.key) != cmd.key_len)
            abort();
        for (size_t i = 0; i < cmd.key_len; i++)
            if ((unsigned char)cmd.key[i] < 0x20 || (unsigned char)cmd.key[i] > 0x7e)
                abort();
        if (cmd.method == HTTP_PUT)
            check_name(cmd.to_dc);
    }
    if (cmd.state != CTL_KEEP && (cmd.state < CTL_READY || cmd.state > CTL_DOWN))
        abort();
    if (cmd.weight != CTL_WEIGHT_KEEP && cmd.weight != CTL_WEIGHT_CONF &&
        (cmd.weight < 0 || cmd.weight > CTL_WEIGHT_MAX))
        abort();
    if (cmd.drain_timeout > CTL_DRAIN_MAX)
        abort();
}

static void message(const char *data, size_t size)
{
    const char *nl = memchr(data, '\n', size);
    if (!nl)
        return;
    struct ctl_field f;
    if (ctl_parse_field(data, (size_t)(nl - data), &f) == EG_OK)
        check_name(f.dc);
    struct ctl_record r;
    size_t rlen = size - (size_t)(nl - data) - 1;
    if (ctl_parse_record(nl + 1, rlen, &r) == EG_OK) {
        if (r.state < CTL_READY || r.state > CTL_DOWN || r.until < r.since ||
            (r.weight != CTL_WEIGHT_CONF && (r.weight < 0 || r.weight > CTL_WEIGHT_MAX)))
            abort();
        for (const char *p = r.origin; *p; p++)
            if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
                abort();
    }
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    request((const char *)data, size);
    message((const char *)data, size);
    return 0;
}
