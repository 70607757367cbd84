/* Load and measuring tools for tests/bench/bench.sh (`make bench`). Every
 * address is on loopback; every loop is bounded in time or count.
 *
 *   benchtool serve PORT sink|echo
 *       a server on 127.0.0.1:PORT: sink reads and discards, echo sends back
 *       what it reads
 *   benchtool bulk PORT SECONDS CONNS
 *       CONNS connections write 64 KiB chunks as fast as they can; prints
 *       MB/s (10^6 bytes) over SECONDS, after half a second of warm-up
 *   benchtool connrate PORT SECONDS CONC
 *       CONC connections at a time: connect, send "ping\n", read it back,
 *       close; prints completed connections per second and errors
 *   benchtool tlsrate PORT SECONDS CONC MAX
 *       CONC TLS connections at a time, each a full handshake (no session
 *       cache, no tickets asked for: nothing can be resumed), one request
 *       "GET / HTTP/1.1" with Connection: close, its whole answer read, then
 *       closed; until SECONDS have passed or MAX connections completed.
 *       Prints: connections per second, errors, resumed handshakes (0), and
 *       this process's own CPU time over the wall time (1.0: a whole core)
 *   benchtool idle PORT PID[,PID...] N1[,N2...] [tls] [batch B] [warmup W] [hold F]
 *       opens connections to PORT, each sends one HTTP/1.1 request (over TLS
 *       with tls), reads the whole answer and stays open. After W warm-up
 *       connections (opened, used, closed; default 256) it reads the base,
 *       then at each stage Ni it prints the growth of the summed VmRSS of
 *       the PIDs and of the kernel's slab memory, per connection:
 *         stage N rss_per_conn B slab_per_conn B tcp_slab_per_conn B ...
 *       B connections at a time (default 16). The connections are held by
 *       as many client processes as the descriptor limit asks (18,000 each
 *       at most); sources are spread over 127.0.0.2, .3 ... (4,000
 *       connections each) so that finding a free port stays cheap. With
 *       hold, it prints "warm" after the warm-up and waits for the file F to
 *       appear (and removes it) there and after each stage, connections
 *       open: time for a profiler to look (tests/bench/tls_allocs.sh).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

#define MAXFD (1 << 18)
/* Connections per source address of the idle client: the kernel looks for a
 * free port by walking the ephemeral range, which slows connect() down as
 * the range fills up (28,000 ports here). */
#define PER_SOURCE 4000

static void die(const char *what)
{
    fprintf(stderr, "benchtool: %s: %s\n", what, strerror(errno));
    exit(1);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Raises the descriptor limit towards WANT, up to the hard limit. */
static void raise_nofile(rlim_t want)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= want)
        return;
    rl.rlim_cur = want < rl.rlim_max ? want : rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
}

static void nonblock(int fd)
{
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

static struct sockaddr_in loopback(int port, int last_octet)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(0x7f000000u | (uint32_t)last_octet);
    return a;
}

/* A TCP socket bound to 127.0.0.SRC (0: left to the kernel), the port chosen
 * at connect time. */
static int client_socket(int src)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        die("socket");
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (src) {
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
        struct sockaddr_in a = loopback(0, src);
        if (bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0)
            die("bind");
    }
    return fd;
}

/* ---- serve ---- */

static _Noreturn void serve(int port, int echo)
{
    raise_nofile(65536);
    signal(SIGPIPE, SIG_IGN);
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in a = loopback(port, 1);
    if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(l, 4096) != 0)
        die("listen");
    nonblock(l);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = l};
    epoll_ctl(ep, EPOLL_CTL_ADD, l, &ev);
    static char buf[256 * 1024];
    struct epoll_event evs[256];
    for (;;) {
        int n = epoll_wait(ep, evs, 256, -1);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == l) {
                int c;
                while ((c = accept4(l, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
                    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                    struct epoll_event ce = {.events = EPOLLIN, .data.fd = c};
                    epoll_ctl(ep, EPOLL_CTL_ADD, c, &ce);
                }
                continue;
            }
            ssize_t r = read(fd, buf, sizeof(buf));
            if (r > 0 && echo && write(fd, buf, (size_t)r) == r)
                continue;
            if (r > 0 && !echo)
                continue;
            if (r < 0 && errno == EAGAIN)
                continue;
            close(fd); /* end of stream, error, or an echo that did not fit */
        }
    }
}

/* ---- bulk ---- */

static int bulk(int port, double secs, int conns)
{
    signal(SIGPIPE, SIG_IGN);
    static char chunk[64 * 1024];
    memset(chunk, 'x', sizeof(chunk));
    int ep = epoll_create1(EPOLL_CLOEXEC);
    for (int i = 0; i < conns; i++) {
        int fd = client_socket(0);
        struct sockaddr_in a = loopback(port, 1);
        if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0)
            die("connect");
        nonblock(fd);
        struct epoll_event ev = {.events = EPOLLOUT, .data.fd = fd};
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    }
    double t0 = now(), start = t0 + 0.5, end = start + secs;
    long long counted = 0;
    struct epoll_event evs[64];
    for (double t = t0; t < end; t = now()) {
        int n = epoll_wait(ep, evs, 64, 100);
        for (int i = 0; i < n; i++) {
            ssize_t w = write(evs[i].data.fd, chunk, sizeof(chunk));
            if (w < 0 && errno != EAGAIN)
                die("bulk write");
            if (w > 0 && t >= start)
                counted += w;
        }
    }
    printf("%.1f\n", (double)counted / 1e6 / (now() - start));
    return 0;
}

/* ---- connrate ---- */

static int connrate(int port, double secs, int conc)
{
    signal(SIGPIPE, SIG_IGN);
    raise_nofile((rlim_t)conc + 64);
    static unsigned char got[MAXFD];
    int ep = epoll_create1(EPOLL_CLOEXEC);
    long done = 0, errors = 0, seq = 0;
    struct sockaddr_in a = loopback(port, 1);
    double end = now() + secs;
#define START_ONE()                                                                      \
    do {                                                                                 \
        int fd = client_socket(2 + (int)(seq++ % 8));                                    \
        nonblock(fd);                                                                    \
        if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0 && errno != EINPROGRESS) \
            die("connect");                                                              \
        got[fd] = 0;                                                                     \
        struct epoll_event ev = {.events = EPOLLOUT, .data.fd = fd};                     \
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);                                           \
    } while (0)
    for (int i = 0; i < conc; i++)
        START_ONE();
    struct epoll_event evs[256];
    char buf[64];
    while (now() < end) {
        int n = epoll_wait(ep, evs, 256, 100);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd, err = 0;
            socklen_t el = sizeof(err);
            if (evs[i].events & EPOLLOUT) {
                getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
                if (err == 0 && write(fd, "ping\n", 5) == 5) {
                    struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
                    epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
                    continue;
                }
            } else {
                ssize_t r = read(fd, buf, sizeof(buf));
                if (r < 0 && errno == EAGAIN)
                    continue;
                if (r > 0) {
                    got[fd] = (unsigned char)(got[fd] + r);
                    if (got[fd] < 5)
                        continue;
                    done++;
                    close(fd);
                    START_ONE();
                    continue;
                }
            }
            errors++;
            close(fd);
            START_ONE();
        }
    }
    printf("%.0f %ld\n", (double)done / secs, errors);
    return 0;
}

/* ---- tlsrate ---- */

enum tls_state { T_CONNECT, T_HANDSHAKE, T_WRITE, T_READ };

struct tls_conn {
    SSL *ssl;
    enum tls_state st;
    int have;          /* bytes of the answer read */
    long want;         /* its whole length once the head is in, else -1 */
    char buf[2048];
};

static const char close_request[] =
    "GET / HTTP/1.1\r\nHost: bench\r\nUser-Agent: benchtool\r\nConnection: close\r\n\r\n";

static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* Parses what has been read of an answer: -1 while the head is incomplete,
 * then the whole length (head + Content-Length); -2 for a non-200. */
static long answer_length(struct tls_conn *c)
{
    c->buf[c->have] = 0;
    char *end = strstr(c->buf, "\r\n\r\n");
    if (!end)
        return -1;
    if (strncmp(c->buf, "HTTP/1.1 200", 12) != 0)
        return -2;
    long clen = 0;
    for (char *h = strstr(c->buf, "\r\n"); h && h < end; h = strstr(h + 2, "\r\n"))
        if (strncasecmp(h + 2, "content-length:", 15) == 0)
            clen = atol(h + 17);
    return (long)(end + 4 - c->buf) + clen;
}

static int tlsrate(int port, double secs, int conc, long max)
{
    signal(SIGPIPE, SIG_IGN);
    raise_nofile((rlim_t)conc + 64);
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL); /* the handshake's signature is
                                                      * still checked */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    static struct tls_conn *conns[MAXFD];
    int ep = epoll_create1(EPOLL_CLOEXEC);
    long done = 0, errors = 0, resumed = 0, started = 0, seq = 0;
    struct sockaddr_in a = loopback(port, 1);
    double c0 = cpu_seconds(), t0 = now(), end = t0 + secs;
    int open = 0;
    /* A new connection, unless the count is reached. */
#define TLS_START()                                                                      \
    do {                                                                                 \
        if (started >= max)                                                              \
            break;                                                                       \
        started++;                                                                       \
        int fd = client_socket(2 + (int)(seq++ % 8));                                    \
        nonblock(fd);                                                                    \
        if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0 && errno != EINPROGRESS) \
            die("connect");                                                              \
        struct tls_conn *c = conns[fd];                                                  \
        if (!c && !(c = conns[fd] = malloc(sizeof(*c))))                                 \
            die("malloc");                                                               \
        c->ssl = NULL;                                                                   \
        c->st = T_CONNECT;                                                               \
        c->have = 0;                                                                     \
        c->want = -1;                                                                    \
        struct epoll_event ev = {.events = EPOLLOUT, .data.fd = fd};                     \
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);                                           \
        open++;                                                                          \
    } while (0)
    for (int i = 0; i < conc; i++)
        TLS_START();
    struct epoll_event evs[256];
    while (open > 0 && now() < end) {
        int n = epoll_wait(ep, evs, 256, 100);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd, r, fail = 0, finished = 0;
            struct tls_conn *c = conns[fd];
            uint32_t want_ev = 0;
            if (c->st == T_CONNECT) {
                int err = 0;
                socklen_t el = sizeof(err);
                getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
                if (err) {
                    fail = 1;
                    goto next;
                }
                c->ssl = SSL_new(ctx);
                SSL_set_fd(c->ssl, fd);
                SSL_set_tlsext_host_name(c->ssl, "bench.test");
                c->st = T_HANDSHAKE;
            }
            for (;;) { /* as far as the socket lets it go */
                if (c->st == T_HANDSHAKE) {
                    r = SSL_connect(c->ssl);
                    if (r == 1) {
                        if (SSL_session_reused(c->ssl))
                            resumed++;
                        c->st = T_WRITE;
                        continue;
                    }
                } else if (c->st == T_WRITE) {
                    r = SSL_write(c->ssl, close_request, (int)sizeof(close_request) - 1);
                    if (r == (int)sizeof(close_request) - 1) {
                        c->st = T_READ;
                        continue;
                    }
                } else {
                    r = SSL_read(c->ssl, c->buf + c->have, (int)sizeof(c->buf) - 1 - c->have);
                    if (r > 0) {
                        c->have += r;
                        if (c->want < 0)
                            c->want = answer_length(c);
                        if (c->want == -2 || (c->want < 0 && c->have >= (int)sizeof(c->buf) - 1)) {
                            fail = 1;
                            break;
                        }
                        if (c->want >= 0 && c->have >= c->want) {
                            finished = 1;
                            break;
                        }
                        if (c->want >= 0 && c->have > 1024) { /* a long body: count it only */
                            c->want -= c->have;
                            c->have = 0;
                        }
                        continue;
                    }
                }
                int e = SSL_get_error(c->ssl, r);
                if (e == SSL_ERROR_WANT_READ)
                    want_ev = EPOLLIN;
                else if (e == SSL_ERROR_WANT_WRITE)
                    want_ev = EPOLLOUT;
                else
                    fail = 1;
                ERR_clear_error();
                break;
            }
        next:
            if (want_ev && !fail) {
                struct epoll_event ev = {.events = want_ev, .data.fd = fd};
                epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
                continue;
            }
            if (finished)
                done++;
            else
                errors++;
            if (c->ssl)
                SSL_free(c->ssl);
            c->ssl = NULL;
            close(fd); /* the answer is whole: no close_notify awaited */
            open--;
            TLS_START();
        }
    }
    double wall = now() - t0;
    printf("%.0f %ld %ld %.2f\n", (double)done / wall, errors, resumed,
           (cpu_seconds() - c0) / wall);
    return 0;
}

/* ---- idle ---- */

struct meter {
    long rss_kb, slab_kb, tcp_slab_b, sockmem_pages;
};

static long status_kb(const char *path, const char *key)
{
    FILE *f = fopen(path, "r");
    char line[256];
    long v = -1;
    size_t kl = strlen(key);
    while (f && fgets(line, sizeof(line), f))
        if (strncmp(line, key, kl) == 0)
            v = atol(line + kl);
    if (f)
        fclose(f);
    return v;
}

/* Bytes held by the TCP socket slab caches (both ends of every connection). */
static long tcp_slab(void)
{
    FILE *f = fopen("/proc/slabinfo", "r");
    char line[512], name[64];
    long total = 0, active, num, size;
    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "%63s %ld %ld %ld", name, &active, &num, &size) == 4 &&
            (strcmp(name, "TCP") == 0 || strcmp(name, "sock_inode_cache") == 0 ||
             strcmp(name, "filp") == 0 || strcmp(name, "eventpoll_epi") == 0 ||
             strcmp(name, "dentry") == 0))
            total += active * size;
    if (f)
        fclose(f);
    return total;
}

static long sockmem(void)
{
    FILE *f = fopen("/proc/net/sockstat", "r");
    char line[256];
    long mem = 0;
    while (f && fgets(line, sizeof(line), f)) {
        char *m = strstr(line, " mem ");
        if (strncmp(line, "TCP:", 4) == 0 && m)
            mem = atol(m + 5);
    }
    if (f)
        fclose(f);
    return mem;
}

/* PIDS: the proxy's processes, their VmRSS summed. */
static struct meter measure(const int *pids, int npids)
{
    struct meter m = {0, status_kb("/proc/meminfo", "Slab:"), tcp_slab(), sockmem()};
    for (int i = 0; i < npids; i++) {
        char path[64];
        snprintf(path, sizeof(path), "/proc/%d/status", pids[i]);
        long kb = status_kb(path, "VmRSS:");
        if (kb < 0) {
            fprintf(stderr, "benchtool: no process %d\n", pids[i]);
            exit(1);
        }
        m.rss_kb += kb;
    }
    return m;
}

static const char request[] = "GET / HTTP/1.1\r\nHost: bench\r\nUser-Agent: benchtool\r\n\r\n";

struct idle_conn {
    int fd;
    SSL *ssl;
};

static SSL_CTX *tls_ctx;

static int io_write(struct idle_conn *c, const char *p, int n)
{
    return c->ssl ? SSL_write(c->ssl, p, n) : (int)write(c->fd, p, (size_t)n);
}

static int io_read(struct idle_conn *c, char *p, int n)
{
    return c->ssl ? SSL_read(c->ssl, p, n) : (int)read(c->fd, p, (size_t)n);
}

/* Reads one whole response (a head with Content-Length and its body); false
 * on anything else than 200. */
static int read_response(struct idle_conn *c)
{
    char buf[8192];
    int have = 0;
    for (;;) {
        int r = io_read(c, buf + have, (int)sizeof(buf) - 1 - have);
        if (r <= 0)
            return 0;
        have += r;
        buf[have] = 0;
        char *end = strstr(buf, "\r\n\r\n");
        if (!end)
            continue;
        long clen = 0;
        for (char *h = strstr(buf, "\r\n"); h && h < end; h = strstr(h + 2, "\r\n"))
            if (strncasecmp(h + 2, "content-length:", 15) == 0)
                clen = atol(h + 17);
        int ok = strncmp(buf, "HTTP/1.1 200", 12) == 0;
        long want = (long)(end + 4 - buf) + clen;
        while (have < want) {
            r = io_read(c, buf, (int)sizeof(buf) - 1);
            if (r <= 0)
                return 0;
            have += r;
        }
        return ok;
    }
}

/* Opens connections [from, to) of CS in batches: all of a batch connect
 * and send, then each reads its answer. Connection i of this process is the
 * (i * stride + offset)th of the run, which picks its source address. */
static void open_batch(struct idle_conn *cs, long from, long to, int port, int batch,
                       long stride, long offset, long *errors)
{
    struct sockaddr_in a = loopback(port, 1);
    for (long b = from; b < to; b += batch) {
        long e = b + batch < to ? b + batch : to;
        for (long i = b; i < e; i++) {
            cs[i].fd = client_socket(2 + (int)((i * stride + offset) / PER_SOURCE));
            if (connect(cs[i].fd, (struct sockaddr *)&a, sizeof(a)) != 0)
                die("connect");
            cs[i].ssl = NULL;
            if (tls_ctx) {
                cs[i].ssl = SSL_new(tls_ctx);
                SSL_set_fd(cs[i].ssl, cs[i].fd);
                SSL_set_tlsext_host_name(cs[i].ssl, "bench.test");
                if (SSL_connect(cs[i].ssl) != 1) {
                    ERR_print_errors_fp(stderr);
                    errno = EPROTO;
                    die("TLS handshake");
                }
            }
            if (io_write(&cs[i], request, (int)sizeof(request) - 1) != (int)sizeof(request) - 1)
                die("write request");
        }
        for (long i = b; i < e; i++)
            if (!read_response(&cs[i]))
                (*errors)++;
    }
}

/* Closes with a reset: no TIME_WAIT left behind for the next run. */
static void reset_all(struct idle_conn *cs, long n)
{
    struct linger lg = {1, 0};
    for (long i = 0; i < n; i++) {
        setsockopt(cs[i].fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        close(cs[i].fd);
    }
}

/* One of the client processes: told how many connections to reach, opens
 * them, answers with its error count; resets them all at end of input. */
static _Noreturn void idle_child(int rd, int wr, int port, int batch, long cap, long stride,
                                 long offset)
{
    struct idle_conn *cs = calloc((size_t)cap, sizeof(*cs));
    long have = 0, target, errors = 0;
    while (read(rd, &target, sizeof(target)) == (ssize_t)sizeof(target)) {
        if (target > cap)
            target = cap;
        open_batch(cs, have, target, port, batch, stride, offset, &errors);
        have = target;
        if (write(wr, &errors, sizeof(errors)) != (ssize_t)sizeof(errors))
            break;
    }
    reset_all(cs, have);
    exit(0);
}

/* Until someone creates FILE (none: at once); then it is removed. */
static void hold(const char *file)
{
    if (!file)
        return;
    fflush(stdout);
    while (access(file, F_OK) != 0)
        usleep(50000);
    unlink(file);
}

static int idle(int argc, char **argv)
{
    const char *hold_file = NULL;
    int port = atoi(argv[0]), batch = 16, warmup = 256, npids = 0, pids[256];
    long per_proc = 18000, stages[16];
    int nst = 0;
    for (char *s = strtok(argv[1], ","); s && npids < 256; s = strtok(NULL, ","))
        pids[npids++] = atoi(s);
    for (char *s = strtok(argv[2], ","); s && nst < 16; s = strtok(NULL, ","))
        stages[nst++] = atol(s);
    for (int i = 3; i < argc; i++) {
        if (strcmp(argv[i], "tls") == 0) {
            tls_ctx = SSL_CTX_new(TLS_client_method());
            SSL_CTX_set_verify(tls_ctx, SSL_VERIFY_NONE, NULL);
            SSL_CTX_set_session_cache_mode(tls_ctx, SSL_SESS_CACHE_OFF);
        } else if (strcmp(argv[i], "batch") == 0 && i + 1 < argc) {
            batch = atoi(argv[++i]);
        } else if (strcmp(argv[i], "warmup") == 0 && i + 1 < argc) {
            warmup = atoi(argv[++i]);
        } else if (strcmp(argv[i], "hold") == 0 && i + 1 < argc) {
            hold_file = argv[++i];
        }
    }
    signal(SIGPIPE, SIG_IGN);
    /* As many descriptors as the hard limit allows: past it, more processes. */
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    if ((long)rl.rlim_cur - 100 < per_proc)
        per_proc = (long)rl.rlim_cur - 100;
    long max = stages[nst - 1], errors = 0;
    /* Warm-up: what a proxy sets up once (server connections, buffers at the
     * batch's concurrency, TLS contexts) is not charged to the connections. */
    struct idle_conn *warm = calloc((size_t)warmup, sizeof(*warm));
    open_batch(warm, 0, warmup, port, batch, 1, 0, &errors);
    for (long i = 0; i < warmup; i++) {
        if (warm[i].ssl)
            SSL_free(warm[i].ssl);
        close(warm[i].fd);
    }
    usleep(500000);
    if (hold_file)
        printf("warm\n");
    hold(hold_file);
    struct meter base = measure(pids, npids);
    int nproc = (int)((max + per_proc - 1) / per_proc), to[64][2], from[64][2];
    if (nproc > 64)
        nproc = 64;
    fflush(stdout);
    for (int j = 0; j < nproc; j++) {
        if (pipe(to[j]) != 0 || pipe(from[j]) != 0)
            die("pipe");
        pid_t p = fork();
        if (p < 0)
            die("fork");
        if (p == 0) {
            for (int k = 0; k < j; k++) /* the parent's ends of the others' pipes */
                close(to[k][1]), close(from[k][0]);
            close(to[j][1]);
            close(from[j][0]);
            idle_child(to[j][0], from[j][1], port, batch, per_proc, nproc, j);
        }
        close(to[j][0]);
        close(from[j][1]);
    }
    for (int s = 0; s < nst; s++) {
        double t0 = now();
        /* One process at a time: at most one batch in flight, as in the
         * warm-up. */
        long errs = 0;
        for (int j = 0; j < nproc; j++) {
            long share = stages[s] / nproc + (j < stages[s] % nproc), e = 0;
            if (write(to[j][1], &share, sizeof(share)) != (ssize_t)sizeof(share) ||
                read(from[j][0], &e, sizeof(e)) != (ssize_t)sizeof(e))
                die("client process");
            errs += e;
        }
        double took = now() - t0;
        usleep(500000);
        struct meter m = measure(pids, npids);
        long n = stages[s];
        printf("stage %ld rss_per_conn %.0f slab_per_conn %.0f tcp_slab_per_conn %.0f "
               "sockmem_per_conn %.0f errors %ld seconds %.1f clients %d\n",
               n, (double)(m.rss_kb - base.rss_kb) * 1024 / (double)n,
               (double)(m.slab_kb - base.slab_kb) * 1024 / (double)n,
               (double)(m.tcp_slab_b - base.tcp_slab_b) / (double)n,
               (double)(m.sockmem_pages - base.sockmem_pages) * 4096 / (double)n,
               errors + errs, took, nproc);
        fflush(stdout);
        if (s == nst - 1)
            errors += errs;
        hold(hold_file);
    }
    for (int j = 0; j < nproc; j++)
        close(to[j][1]);
    while (wait(NULL) > 0)
        ;
    return errors != 0;
}
int main(int argc, char **argv)
{
    if (argc >= 4 && strcmp(argv[1], "serve") == 0)
        serve(atoi(argv[2]), strcmp(argv[3], "echo") == 0);
    if (argc >= 5 && strcmp(argv[1], "bulk") == 0)
        return bulk(atoi(argv[2]), atof(argv[3]), atoi(argv[4]));
    if (argc >= 5 && strcmp(argv[1], "connrate") == 0)
        return connrate(atoi(argv[2]), atof(argv[3]), atoi(argv[4]));
    if (argc >= 6 && strcmp(argv[1], "tlsrate") == 0)
        return tlsrate(atoi(argv[2]), atof(argv[3]), atoi(argv[4]), atol(argv[5]));
    if (argc >= 5 && strcmp(argv[1], "idle") == 0)
        return idle(argc - 2, argv + 2);
    fprintf(stderr, "usage: benchtool serve PORT sink|echo | bulk PORT SECONDS CONNS |\n"
                    "       connrate PORT SECONDS CONC | tlsrate PORT SECONDS CONC MAX |\n"
                    "       idle PORT PID N1[,N2...] [tls] [hold FILE] "
                    "[batch B] [warmup W]\n");
    return 2;
}
