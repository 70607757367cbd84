/* Access log: one line per http request or tcp connection, key=value (a
 * stable format: keys never change meaning, new keys are only appended) or
 * JSON, written to the access log sink (buffered, flushed by the loop): the
 * log, a file of its own or syslog. */
#ifndef EG_GATEWAY_OPS_ACCESS_LOG_H
#define EG_GATEWAY_OPS_ACCESS_LOG_H

#include <stddef.h>

enum access_log_format { ACCESS_LOG_OFF, ACCESS_LOG_KV, ACCESS_LOG_JSON };

struct access_log_rec {
    const char *client;         /* "ip:port" */
    const char *listener;
    const char *mode;           /* "http", "h2" (a stream of an HTTP/2 connection) or "tcp" */
    const char *session;        /* may be NULL */
    size_t session_len;
    const char *dc, *server;    /* may be NULL */
    const char *method;         /* http only */
    const char *path;           /* http only */
    size_t path_len;
    int status;                 /* http status; tcp: 0 */
    unsigned long long bytes_in, bytes_out;
    double duration_s;
    int retries;
    const char *end;            /* how it ended: "ok", "timeout", "reset", ... */
};

extern int access_log_format;
void access_log_write(const struct access_log_rec *r);

#endif
