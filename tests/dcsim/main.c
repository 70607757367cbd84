/* dcsim entry point: command line, listener, signals and accept.
 *
 * Options come from one table (name, argument count, setter), the way
 * edgegate's configuration directives do: an option is one row. */
#include "tests/dcsim/dcsim.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define NAME_MAX_LEN 64
#define ACCEPT_BATCH 64          /* accepts per event, so one listener can't starve the rest */
#define ACCEPT_RETRY 0.1         /* seconds to wait after running out of descriptors */
#define LISTEN_BACKLOG 4096
#define DELAY_MAX 86400.0

struct server srv = { .health_status = 200 };

/* Settings only needed until the listener is up. */
static struct {
    const char *listen;
    struct sockaddr_storage addr;
    socklen_t addr_len;
    const char *cert, *key;
} start;

static const char usage[] =
    "usage: dcsim --name NAME --listen ADDR:PORT [options]\n"
    "  --name NAME           datacenter name, sent back in every answer\n"
    "  --listen ADDR:PORT    127.0.0.1:9001, 0.0.0.0:9001 or [::1]:9001; port 0 picks one\n"
    "  --delay DURATION      before every answer: 150ms, 2s, 0.5s, 1m (default 0)\n"
    "  --mode http|echo      HTTP/1.1 server (default) or raw TCP echo\n"
    "  --health-status CODE  what GET /health answers while healthy (default 200)\n"
    "  --tls CERT KEY        speak TLS with this certificate chain and key (PEM)\n"
    "  --log                 one stdout line per request (http) or connection (echo)\n"
    "  --max-conns N         stop accepting while N connections are open\n"
    "signals: SIGUSR1 makes /health answer 503, SIGUSR2 restores it; SIGTERM exits\n";

void log_line(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
}

/* ---- option setters: 0, or -1 with a message in err ---- */

static int parse_uint(const char *s, unsigned long min, unsigned long max, unsigned long *v)
{
    char *end;

    if (*s < '0' || *s > '9')
        return -1;
    errno = 0;
    *v = strtoul(s, &end, 10);
    return errno || *end || *v < min || *v > max ? -1 : 0;
}

static int opt_name(char **args, char *err, size_t errlen)
{
    size_t n = strlen(args[0]);

    if (!n || n > NAME_MAX_LEN || strspn(args[0], "abcdefghijklmnopqrstuvwxyz"
                                                  "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != n) {
        snprintf(err, errlen, "'%s': want 1 to %d of [A-Za-z0-9._-]", args[0], NAME_MAX_LEN);
        return -1;
    }
    srv.name = args[0];
    srv.name_len = n;
    return 0;
}

/* ADDR:PORT with an IPv4 address, or [ADDR]:PORT with an IPv6 one. */
static int opt_listen(char **args, char *err, size_t errlen)
{
    const char *s = args[0], *host = s, *port;
    char text[INET6_ADDRSTRLEN];
    size_t host_len;
    unsigned long p;
    bool v6 = s[0] == '[';

    if (v6) {
        const char *close = strchr(s, ']');
        host = s + 1;
        host_len = close ? (size_t)(close - host) : 0;
        port = close && close[1] == ':' ? close + 2 : NULL;
    } else {
        port = strrchr(s, ':');
        host_len = port ? (size_t)(port - s) : 0;
        port = port ? port + 1 : NULL;
    }
    if (!port || !host_len || host_len >= sizeof text || parse_uint(port, 0, 65535, &p))
        goto bad;
    memcpy(text, host, host_len);
    text[host_len] = '\0';
    start.listen = s;
    memset(&start.addr, 0, sizeof start.addr);
    if (v6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&start.addr;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons(p);
        start.addr_len = sizeof *a;
        if (inet_pton(AF_INET6, text, &a->sin6_addr) == 1)
            return 0;
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&start.addr;
        a->sin_family = AF_INET;
        a->sin_port = htons(p);
        start.addr_len = sizeof *a;
        if (inet_pton(AF_INET, text, &a->sin_addr) == 1)
            return 0;
    }
bad:
    snprintf(err, errlen, "'%s': want IPV4:PORT or [IPV6]:PORT", s);
    return -1;
}

/* 150ms, 2s, 0.5s, 1m, 1h, or a bare number of seconds. */
static int opt_delay(char **args, char *err, size_t errlen)
{
    static const struct {
        const char *suffix;
        double seconds;
    } units[] = { { "", 1 }, { "s", 1 }, { "ms", 0.001 }, { "m", 60 }, { "h", 3600 } };
    char *end;
    double v = strtod(args[0], &end);

    for (size_t i = 0; end != args[0] && v >= 0 && i < sizeof units / sizeof units[0]; i++) {
        if (!strcmp(end, units[i].suffix) && v * units[i].seconds <= DELAY_MAX) {
            srv.delay = v * units[i].seconds;
            return 0;
        }
    }
    snprintf(err, errlen, "'%s': want a duration such as 150ms, 2s, 0.5s or 1m", args[0]);
    return -1;
}

static int opt_mode(char **args, char *err, size_t errlen)
{
    if (!strcmp(args[0], "http"))
        srv.mode = MODE_HTTP;
    else if (!strcmp(args[0], "echo"))
        srv.mode = MODE_ECHO;
    else {
        snprintf(err, errlen, "'%s': want http or echo", args[0]);
        return -1;
    }
    return 0;
}

static int opt_health_status(char **args, char *err, size_t errlen)
{
    unsigned long v;

    if (parse_uint(args[0], 200, 599, &v)) {
        snprintf(err, errlen, "'%s': want a status code from 200 to 599", args[0]);
        return -1;
    }
    srv.health_status = v;
    return 0;
}

static int opt_tls(char **args, char *err, size_t errlen)
{
    (void)err;
    (void)errlen;
    start.cert = args[0];
    start.key = args[1];
    return 0;
}

static int opt_log(char **args, char *err, size_t errlen)
{
    (void)args;
    (void)err;
    (void)errlen;
    srv.log = true;
    return 0;
}

static int opt_max_conns(char **args, char *err, size_t errlen)
{
    unsigned long v;

    if (parse_uint(args[0], 1, 10000000, &v)) {
        snprintf(err, errlen, "'%s': want a number from 1 to 10000000", args[0]);
        return -1;
    }
    srv.max_conns = v;
    return 0;
}

static const struct opt_row {
    const char *name;
    int nargs;
    int (*set)(char **args, char *err, size_t errlen);
} options[] = {
    { "--name", 1, opt_name },
    { "--listen", 1, opt_listen },
    { "--delay", 1, opt_delay },
    { "--mode", 1, opt_mode },
    { "--health-status", 1, opt_health_status },
    { "--tls", 2, opt_tls },
    { "--log", 0, opt_log },
    { "--max-conns", 1, opt_max_conns },
};

static void __attribute__((noreturn, format(printf, 1, 2))) usage_error(const char *fmt, ...)
{
    va_list ap;

    fputs("dcsim: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\nTry 'dcsim --help'.\n", stderr);
    exit(1);
}

static void parse_args(int argc, char **argv)
{
    char err[256];

    for (int i = 1; i < argc;) {
        const struct opt_row *o = NULL;
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            fputs(usage, stdout);
            exit(0);
        }
        for (size_t k = 0; k < sizeof options / sizeof options[0]; k++)
            if (!strcmp(argv[i], options[k].name))
                o = &options[k];
        if (!o)
            usage_error("unknown option '%s'", argv[i]);
        if (i + o->nargs >= argc)
            usage_error("%s needs %d argument%s", o->name, o->nargs, o->nargs > 1 ? "s" : "");
        if (o->set(argv + i + 1, err, sizeof err))
            usage_error("%s %s", o->name, err);
        i += 1 + o->nargs;
    }
    if (!srv.name)
        usage_error("--name is required");
    if (!start.addr_len)
        usage_error("--listen is required");
}

/* ---- start-up ---- */

static SSL_CTX *tls_context(char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

    if (ctx && SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) &&
        SSL_CTX_use_certificate_chain_file(ctx, start.cert) == 1 &&
        SSL_CTX_use_PrivateKey_file(ctx, start.key, SSL_FILETYPE_PEM) == 1 &&
        SSL_CTX_check_private_key(ctx) == 1) {
        /* A peer closing TCP without close_notify is a plain EOF here. */
        SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_RENEGOTIATION);
        SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
        return ctx;
    }
    char ssl_err[256];
    ERR_error_string_n(ERR_get_error(), ssl_err, sizeof ssl_err);
    snprintf(err, errlen, "--tls %s %s: %s", start.cert, start.key, ssl_err);
    SSL_CTX_free(ctx);
    return NULL;
}

static int open_listener(char *err, size_t errlen)
{
    static const int one = 1;
    int fd = socket(start.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    if (fd >= 0 && !setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) &&
        !bind(fd, (struct sockaddr *)&start.addr, start.addr_len) && !listen(fd, LISTEN_BACKLOG))
        return fd;
    snprintf(err, errlen, "cannot listen on %s: %s", start.listen, strerror(errno));
    if (fd >= 0)
        close(fd);
    return -1;
}

/* The readiness line tests wait for, with the port the kernel chose. */
static void print_ready(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    char host[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;

    memset(&ss, 0, sizeof ss);
    if (!getsockname(fd, (struct sockaddr *)&ss, &len)) {
        if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
            inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
            port = ntohs(a->sin6_port);
        } else {
            struct sockaddr_in *a = (struct sockaddr_in *)&ss;
            inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
            port = ntohs(a->sin_port);
        }
    }
    if (ss.ss_family == AF_INET6)
        log_line("dcsim %s listening on [%s]:%u", srv.name, host, port);
    else
        log_line("dcsim %s listening on %s:%u", srv.name, host, port);
}

/* Thousands of connections need thousands of descriptors. */
static void raise_nofile(void)
{
    struct rlimit rl;

    if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* ---- events ---- */

static void on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)revents;
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        if (srv.max_conns && srv.nconns >= srv.max_conns) {
            ev_io_stop(loop, w);  /* server_conn_closed() resumes */
            return;
        }
        int fd = accept4(w->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            conn_open(fd);
            continue;
        }
        if (errno == EINTR || errno == ECONNABORTED)
            continue;
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
            /* The listener stays readable: pause rather than spin. */
            ev_io_stop(loop, w);
            ev_timer_start(loop, &srv.accept_retry);
        }
        return;
    }
}

static void on_accept_retry(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)w;
    (void)revents;
    ev_io_start(loop, &srv.accept_w);
}

void server_conn_closed(void)
{
    srv.nconns--;
    if (!ev_is_active(&srv.accept_w)) {
        ev_timer_stop(srv.loop, &srv.accept_retry);
        ev_io_start(srv.loop, &srv.accept_w);
    }
}

static void on_stop(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)w;
    (void)revents;
    ev_break(loop, EVBREAK_ALL);
}

static void on_health(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)loop;
    (void)revents;
    srv.health_failed = w->signum == SIGUSR1;
}

int main(int argc, char **argv)
{
    static ev_signal sigs[4];
    static const int signums[4] = { SIGTERM, SIGINT, SIGUSR1, SIGUSR2 };
    char err[512];
    int fd;

    parse_args(argc, argv);
    signal(SIGPIPE, SIG_IGN);
    raise_nofile();
    if (start.cert && !(srv.tls = tls_context(err, sizeof err))) {
        fprintf(stderr, "dcsim: %s\n", err);
        return 2;
    }
    if ((fd = open_listener(err, sizeof err)) < 0) {
        fprintf(stderr, "dcsim: %s\n", err);
        return 2;
    }
    srv.loop = ev_default_loop(EVBACKEND_EPOLL);
    if (!srv.loop) {
        fprintf(stderr, "dcsim: cannot start the epoll event loop\n");
        return 2;
    }
    ev_io_init(&srv.accept_w, on_accept, fd, EV_READ);
    ev_io_start(srv.loop, &srv.accept_w);
    ev_timer_init(&srv.accept_retry, on_accept_retry, ACCEPT_RETRY, 0);
    for (int i = 0; i < 4; i++) {
        ev_signal_init(&sigs[i], signums[i] == SIGUSR1 || signums[i] == SIGUSR2 ? on_health : on_stop,
                       signums[i]);
        ev_signal_start(srv.loop, &sigs[i]);
    }
    print_ready(fd);
    ev_run(srv.loop, 0);
    return 0;
}
