/* http mode: responses the gateway itself writes (then closes), and the
 * accounting of every finished request (counters, access log). */
#include "base/counters.h"
#include "gateway/ops/access_log.h"
#include "gateway/proxy/http_common.h"
#include "gateway/proxy/http_session.h"

#include <string.h>

#define ERR_RESP(code, reason, extra, body)                                              \
    "HTTP/1.1 " code " " reason "\r\nContent-Type: text/plain\r\nCache-Control: no-store\r\n" \
    extra "Content-Length: " #body "\r\nConnection: close\r\n\r\n"

/* A request that reached a server and cannot be tried again may have been
 * processed there: the answer says so, for clients that must know before
 * they retry on their own. */
#define MAYBE 1000
#define MAYBE_HDR "Edgegate-Processed: unknown\r\n"
/* A session that `affinity strict` keeps in a datacenter that is down. */
#define PINNED 2000
#define PINNED_HDR "Edgegate-Cause: session datacenter down\r\n"

static const struct {
    int status;
    const char *resp;
} err_resps[] = {
    {400, ERR_RESP("400", "Bad Request", "", 12) "bad request\n"},
    {405, ERR_RESP("405", "Method Not Allowed", "", 19) "method not allowed\n"},
    {408, ERR_RESP("408", "Request Timeout", "", 16) "request timeout\n"},
    {413, ERR_RESP("413", "Content Too Large", "", 18) "content too large\n"},
    {414, ERR_RESP("414", "URI Too Long", "", 13) "uri too long\n"},
    {431, ERR_RESP("431", "Request Header Fields Too Large", "", 24)
              "header fields too large\n"},
    {501, ERR_RESP("501", "Not Implemented", "", 16) "not implemented\n"},
    {502, ERR_RESP("502", "Bad Gateway", "", 12) "bad gateway\n"},
    {502 + MAYBE, ERR_RESP("502", "Bad Gateway", MAYBE_HDR, 12) "bad gateway\n"},
    {503, ERR_RESP("503", "Service Unavailable", "Retry-After: 1\r\n", 20)
              "service unavailable\n"},
    {503 + PINNED, ERR_RESP("503", "Service Unavailable", "Retry-After: 1\r\n" PINNED_HDR, 20)
                       "service unavailable\n"},
    {504, ERR_RESP("504", "Gateway Timeout", "", 16) "gateway timeout\n"},
    {504 + MAYBE, ERR_RESP("504", "Gateway Timeout", MAYBE_HDR, 16) "gateway timeout\n"},
    {505, ERR_RESP("505", "HTTP Version Not Supported", "", 27)
              "http version not supported\n"},
};

void http_request_done(struct http_session *s, int status, const char *end)
{
    struct http_exchange *x = s->x;
    if (x->accounted)
        return;
    x->accounted = true;
    struct stats_lsn_row *l = s->c.lst;
    double took = ev_now(gw.loop) - x->start;
    l->requests_total++;
    l->status[status >= 100 && status < 600 ? status / 100 : 0]++;
    stats_observe(&l->request, took);
    struct access_log_rec r = {.mode = "http", .end = end, .method = x->log_method,
                               .path = x->log_path, .path_len = x->log_path_len,
                               .status = status, .bytes_in = x->tx_req,
                               .bytes_out = x->tx_resp, .duration_s = took};
    attempt_log(&x->a, &r);
}

static const char *response_for(int status)
{
    for (size_t i = 0; i < ARRAY_LEN(err_resps); i++)
        if (err_resps[i].status == status)
            return err_resps[i].resp;
    return err_resps[0].resp;
}

void http_send_error(struct http_session *s, int status)
{
    http_count_error(status);
    bool started = false;
    int variant = 0;
    if (s->x) {
        if (s->x->reached && (status == 502 || status == 504))
            variant = MAYBE;
        else if (status == 503 && attempt_pinned_down(&s->x->a))
            variant = PINNED;
        http_request_done(s, status, "error");
        started = s->x->mid_response;
        http_exchange_free(s);
    }
    if (started) {
        http_free(s, true);
        return;
    }
    buf_put(s->ib);
    s->ib = NULL;
    s->err_msg = response_for(status + variant);
    s->err_len = (uint16_t)strlen(s->err_msg);
    s->err_sent = 0;
    s->phase = PHASE_ERROR;
    /* Give the client a moment to read the answer before we close. */
    conn_deadline(&s->c, ev_now(gw.loop) + 2);
    http_update_interest(s);
}

void http_error_io(struct http_session *s, bool rd, bool wr)
{
    if (wr && s->err_sent < s->err_len) {
        ssize_t w = sk_write(&s->c.sk, s->err_msg + s->err_sent, s->err_len - s->err_sent);
        if (w == EG_ERR) {
            http_free(s, false);
            return;
        }
        if (w > 0)
            s->err_sent += (uint16_t)w;
        if (s->err_sent == s->err_len)
            sk_shutdown_wr(&s->c.sk);
    }
    if (rd) {
        /* Lingering close: drain what the client still sends, so that
         * closing does not reset the connection before it read the answer. */
        char sink[4096];
        ssize_t n = sk_read(&s->c.sk, sink, sizeof(sink));
        if (n == 0 || n == EG_ERR) {
            http_free(s, false);
            return;
        }
    }
    http_update_interest(s);
}
