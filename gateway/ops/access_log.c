#include "gateway/ops/access_log.h"
#include "base/log.h"
#include "base/strbuf.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

int access_log_format = ACCESS_LOG_OFF;

/* Values are quoted when they hold anything but plain token characters, so
 * that a line always splits the same way. */
static void kv(struct sbuf *b, const char *k, const char *v, size_t n)
{
    bool plain = n > 0;
    for (size_t i = 0; i < n && plain; i++)
        plain = v[i] > 0x20 && v[i] < 0x7f && v[i] != '"' && v[i] != '=' && v[i] != '\\';
    sbuf_printf(b, " %s=", k);
    if (plain) {
        sbuf_add(b, v, n);
        return;
    }
    sbuf_add(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        if (c == '"' || c == '\\')
            sbuf_printf(b, "\\%c", c);
        else if (c < 0x20 || c >= 0x7f)
            sbuf_printf(b, "\\x%02x", c);
        else
            sbuf_add(b, (const char *)&c, 1);
    }
    sbuf_add(b, "\"", 1);
}

static void js(struct sbuf *b, const char *k, const char *v, size_t n)
{
    sbuf_printf(b, ",\"%s\":\"", k);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        if (c == '"' || c == '\\')
            sbuf_printf(b, "\\%c", c);
        else if (c < 0x20 || c >= 0x7f)
            sbuf_printf(b, "\\u%04x", c);
        else
            sbuf_add(b, (const char *)&c, 1);
    }
    sbuf_add(b, "\"", 1);
}

void access_log_write(const struct access_log_rec *r)
{
    static struct sbuf b; /* reused: the access log allocates once */
    struct timeval tv;
    struct tm tm;
    char ts[96];
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(tv.tv_usec / 1000));
    b.len = 0;
    bool json = access_log_format == ACCESS_LOG_JSON;
    void (*str)(struct sbuf *, const char *, const char *, size_t) = json ? js : kv;
    sbuf_printf(&b, json ? "{\"time\":\"%s\"" : "time=%s", ts);
    const char *fields[][2] = {{"client", r->client}, {"listener", r->listener},
                               {"mode", r->mode},     {"dc", r->dc ? r->dc : "-"},
                               {"server", r->server ? r->server : "-"}};
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
        str(&b, fields[i][0], fields[i][1], strlen(fields[i][1]));
    str(&b, "session", r->session ? r->session : "-", r->session ? r->session_len : 1);
    if (r->method) {
        str(&b, "method", r->method, strlen(r->method));
        str(&b, "path", r->path, r->path_len);
    }
    sbuf_printf(&b, json ? ",\"status\":%d,\"bytes_in\":%llu,\"bytes_out\":%llu,"
                           "\"duration_ms\":%.3f,\"retries\":%d"
                         : " status=%d bytes_in=%llu bytes_out=%llu duration_ms=%.3f retries=%d",
                r->status, r->bytes_in, r->bytes_out, r->duration_s * 1000, r->retries);
    str(&b, "end", r->end, strlen(r->end));
    if (json)
        sbuf_add(&b, "}", 1);
    log_access(b.s, b.len);
}
