/* Log sinks. Lines are formatted into a sink's in-memory buffer; an
 * ev_prepare watcher writes the buffers out once per loop iteration, just
 * before the loop sleeps, so a burst of lines costs one write().
 *
 * A sink never blocks the loop, whoever reads (or stops reading) the other
 * end: its descriptor is non-blocking. What the reader does not take now
 * stays in the buffer and an ev_io watcher writes it when the descriptor is
 * writable again; lines that do not fit in the buffer are dropped and
 * counted (log_lines_dropped_total), and a line says so once the sink
 * drains. Before log_attach() and after log_detach() (start-up, -t, the
 * master of workers) there is no loop to wait with: lines are written at
 * once as far as the descriptor takes them, and the rest dropped; at exit,
 * log_detach() gives a slow reader a second to take what is left.
 *
 * There are two sinks, each with its buffer: the log, and the access log
 * when it has a target of its own (else access lines go into the log).
 *
 * syslog is a datagram socket (/dev/log: journald or rsyslog), one line a
 * datagram, RFC 3164 as syslog(3) writes it or RFC 5424. The buffer holds
 * whole datagrams, newline-separated (a newline inside a message is sent as
 * a space). A full socket queue is waited for like a full pipe; a socket
 * that went away (the daemon restarted) is connected again, at most once a
 * second, and what could not be sent meanwhile is dropped and counted.
 *
 * stderr is usually shared with other processes (the shell, a supervisor, a
 * pipeline), and O_NONBLOCK belongs to the open file description, which
 * dup() shares: setting it on fd 2 would make their writes fail with EAGAIN.
 * So the sink writes through a description of its own: a pipe, FIFO or
 * terminal is opened again through /proc/self/fd/2 (a new description of the
 * same object); a socket (journald) cannot be opened that way and is written
 * with send(MSG_DONTWAIT), non-blocking for that call only; a regular file
 * never makes a write wait for a reader and is used as it is. Only without
 * /proc is O_NONBLOCK set on the shared description: a gateway that cannot
 * block on its log matters more than a neighbour's stderr. */
#include "base/log.h"
#include "base/counters.h"
#include "base/util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define LOG_BUF_SIZE (256 * 1024)
#define LOG_EXIT_WAIT 1.0         /* seconds */
#define SYSLOG_RETRY 1.0          /* seconds between two connects to a socket that went away */

int log_level = LOG_INFO;

struct sink {
    struct log_target t;        /* its strings are the copies below */
    char *file, *socket;
    int fd;                     /* -1: none (stderr not set up yet, syslog not connected) */
    bool own;                   /* ours to close: a file, a reopened stderr, a syslog socket */
    bool sock;                  /* a stream socket, written with send(MSG_DONTWAIT) */
    bool dgram;                 /* syslog: a datagram per line */
    double retry_at;            /* syslog: no connect before then */
    char *buf;
    size_t head, len;           /* pending bytes: buf[head, len) */
    unsigned long dropped;      /* since the last notice */
    ev_io io;                   /* active while the descriptor is full */
};

static char main_buf[LOG_BUF_SIZE], access_buf[LOG_BUF_SIZE];
static struct sink sinks[2] = {
    [LOG_MAIN] = {.t = {.to = LOG_TO_STDERR}, .fd = -1, .buf = main_buf},
    [LOG_ACCESS] = {.t = {.to = LOG_TO_LOG}, .fd = -1, .buf = access_buf},
};
static struct ev_loop *log_loop;
static ev_prepare log_prepare;

static const char *const level_names[] = {"error", "warn", "info", "debug"};
static const int severities[] = {3, 4, 6, 7}; /* syslog's err, warning, info, debug */

static const char *const facilities[] = {
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron",
    "authpriv", "ftp", "ntp", "security", "console", "solaris-cron", "local0", "local1",
    "local2", "local3", "local4", "local5", "local6", "local7",
};

/* What a line is: a message takes a prefix on a stream, an access line and
 * a notice of dropped lines are written as they are. */
enum line_kind { LINE_MSG, LINE_ACCESS, LINE_NOTICE };

static void stop_waiting(struct sink *s);

int log_level_parse(const char *s)
{
    for (size_t i = 0; i < ARRAY_LEN(level_names); i++)
        if (strcmp(s, level_names[i]) == 0)
            return (int)i;
    return -1;
}

int log_facility_parse(const char *name)
{
    for (size_t i = 0; i < ARRAY_LEN(facilities); i++)
        if (strcmp(name, facilities[i]) == 0)
            return (int)i;
    return -1;
}

const char *log_facility_name(int facility)
{
    return facility >= 0 && (size_t)facility < ARRAY_LEN(facilities) ? facilities[facility] : "?";
}

/* ---- descriptors ---- */

static void sink_set(struct sink *s, int fd, bool own, bool sock)
{
    if (s->own && s->fd >= 0)
        close(s->fd);
    s->fd = fd;
    s->own = own;
    s->sock = sock;
}

/* stderr as described at the top: a description of our own when there can
 * be one. */
static void sink_stderr(struct sink *s)
{
    struct stat st;
    if (fstat(2, &st) != 0 || S_ISREG(st.st_mode)) {
        sink_set(s, 2, false, false);
        return;
    }
    if (S_ISSOCK(st.st_mode)) {
        sink_set(s, 2, false, true);
        return;
    }
    int fd = open("/proc/self/fd/2", O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd >= 0) {
        sink_set(s, fd, true, false);
        return;
    }
    fcntl(2, F_SETFL, fcntl(2, F_GETFL) | O_NONBLOCK);
    sink_set(s, 2, false, false);
}

static int sink_fd(struct sink *s)
{
    if (s->fd < 0 && s->t.to == LOG_TO_STDERR)
        sink_stderr(s);
    return s->fd;
}

static int syslog_connect(const char *path, char *err, size_t errlen)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sun.sun_path)) {
        snprintf(err, errlen, "%s: name too long for a socket", path);
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(sun.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "syslog: socket: %s", strerror(errno));
        return -1;
    }
    if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0) {
        int e = errno;
        snprintf(err, errlen, "syslog: cannot connect to %s: %s", path, strerror(e));
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

static const char *syslog_path(const struct log_target *t)
{
    return t->socket ? t->socket : LOG_SYSLOG_SOCKET;
}

int log_target_open(const struct log_target *t, int *fd, char *err, size_t errlen)
{
    *fd = -1;
    switch (t->to) {
    case LOG_TO_STDERR:
    case LOG_TO_LOG:
        return EG_OK;
    case LOG_TO_FILE:
        *fd = open(t->file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NONBLOCK, 0640);
        if (*fd < 0) {
            snprintf(err, errlen, "cannot open %s: %s", t->file, strerror(errno));
            return EG_ERR;
        }
        return EG_OK;
    case LOG_TO_SYSLOG:
        *fd = syslog_connect(syslog_path(t), err, errlen);
        return *fd < 0 ? EG_ERR : EG_OK;
    }
    return EG_ERR;
}

static bool same_str(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

bool log_changes(enum log_sink_id id, const struct log_target *t)
{
    const struct log_target *c = &sinks[id].t;
    if (c->to != t->to)
        return true;
    switch (t->to) {
    case LOG_TO_FILE:
        return !same_str(c->file, t->file);
    case LOG_TO_SYSLOG:
        return c->facility != t->facility || c->format != t->format ||
               strcmp(syslog_path(c), syslog_path(t)) != 0;
    default:
        return false;
    }
}

/* ---- the buffers ---- */

static void count_dropped(struct sink *s, unsigned long lines)
{
    s->dropped += lines;
    if (counters)
        counters->log_lines_dropped_total += lines;
}

/* Gives up on the pending bytes; a line cut short counts as dropped. */
static void drop_pending(struct sink *s)
{
    unsigned long lines = 0;
    for (const char *p = s->buf + s->head, *end = s->buf + s->len;
         (p = memchr(p, '\n', (size_t)(end - p))); p++)
        lines++;
    if (s->len > s->head)
        count_dropped(s, lines ? lines : 1);
    s->head = s->len = 0;
}

/* Room for N more bytes, moving the pending ones to the front if needed. */
static bool make_room(struct sink *s, size_t n)
{
    if (n > LOG_BUF_SIZE - (s->len - s->head))
        return false;
    if (n > LOG_BUF_SIZE - s->len) {
        memmove(s->buf, s->buf + s->head, s->len - s->head);
        s->len -= s->head;
        s->head = 0;
    }
    return true;
}

/* The start of a line as sink S writes it: on a stream, a message's time,
 * process and level; on syslog, the header with the priority. */
static int line_head(const struct sink *s, int level, enum line_kind kind, char *out, size_t len)
{
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    if (!s->dgram) {
        if (kind != LINE_MSG)
            return 0;
        gmtime_r(&tv.tv_sec, &tm);
        return snprintf(out, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ edgegate[%d] %s: ",
                        tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                        tm.tm_sec, (int)(tv.tv_usec / 1000), (int)getpid(), level_names[level]);
    }
    int pri = s->t.facility * 8 + severities[level];
    if (s->t.format == LOG_RFC3164) {
        static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                             "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
        localtime_r(&tv.tv_sec, &tm);
        return snprintf(out, len, "<%d>%s %2d %02d:%02d:%02d edgegate[%d]: ", pri,
                        months[tm.tm_mon], tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                        (int)getpid());
    }
    static char host[256];
    if (!host[0] && (gethostname(host, sizeof(host) - 1) != 0 || !host[0]))
        snprintf(host, sizeof(host), "-");
    gmtime_r(&tv.tv_sec, &tm);
    return snprintf(out, len, "<%d>1 %04d-%02d-%02dT%02d:%02d:%02d.%03dZ %s edgegate %d %s - ",
                    pri, tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                    tm.tm_sec, (int)(tv.tv_usec / 1000), host, (int)getpid(),
                    kind == LINE_ACCESS ? "access" : "-");
}

/* Appends one line, MSG (N bytes, no newline) after its head. False when
 * it does not fit: the caller counts it. */
static bool put_line(struct sink *s, int level, enum line_kind kind, const char *msg, size_t n)
{
    char head[256];
    int h = line_head(s, level, kind, head, sizeof(head));
    size_t hn = h > 0 ? MIN((size_t)h, sizeof(head) - 1) : 0;
    if (!make_room(s, hn + n + 1))
        return false;
    char *p = s->buf + s->len;
    memcpy(p, head, hn);
    memcpy(p + hn, msg, n);
    if (s->dgram) /* the newline ends the datagram */
        for (char *q = p + hn, *end = p + hn + n; q < end; q++)
            if (*q == '\n')
                *q = ' ';
    p[hn + n] = '\n';
    s->len += hn + n + 1;
    return true;
}

static void append(struct sink *s, int level, enum line_kind kind, const char *msg, size_t n)
{
    if (!put_line(s, level, kind, msg, n))
        count_dropped(s, 1);
}

/* Once the sink has caught up, one line says how much it missed. */
static void append_dropped_notice(struct sink *s)
{
    char msg[96];
    int n = snprintf(msg, sizeof(msg), "%s%lu log lines dropped (log sink too slow)",
                     s->dgram ? "" : "edgegate: ", s->dropped);
    if (put_line(s, LOG_WARN, LINE_NOTICE, msg, (size_t)n))
        s->dropped = 0;
}

/* ---- writing ---- */

/* Bytes the stream took, 0 when it is full for now, -1 when it is broken
 * (a reader that closed its end): nowhere left to report that. */
static ssize_t stream_write(struct sink *s, const char *p, size_t n)
{
    int fd = sink_fd(s);
    if (fd < 0)
        return -1;
    for (;;) {
        ssize_t w = s->sock ? send(fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL) : write(fd, p, n);
        if (w >= 0)
            return w;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return 0;
        if (errno != EINTR)
            return -1;
    }
}

/* The syslog socket went away (or was never there): connect again, not
 * more than once a second. */
static bool syslog_reconnect(struct sink *s)
{
    double now = ev_time();
    if (now < s->retry_at)
        return false;
    char err[EG_ERRLEN];
    stop_waiting(s);
    int fd = syslog_connect(syslog_path(&s->t), err, sizeof(err));
    if (fd < 0) {
        s->retry_at = now + SYSLOG_RETRY;
        if (s->own && s->fd >= 0)
            close(s->fd);
        s->fd = -1;
        return false;
    }
    sink_set(s, fd, true, false);
    return true;
}

/* The next line as one datagram: bytes consumed, 0 when the socket is full
 * for now, -1 when it is broken. A line too long for a datagram is
 * dropped. */
static ssize_t dgram_write(struct sink *s, const char *p, size_t n)
{
    const char *nl = memchr(p, '\n', n);
    size_t len = nl ? (size_t)(nl - p) : n;
    for (int tries = 0; tries < 2; tries++) {
        if (s->fd < 0 && !syslog_reconnect(s))
            return -1;
        ssize_t w = send(s->fd, p, len, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w >= 0 || errno == EMSGSIZE || errno == ENOBUFS) {
            if (w < 0)
                count_dropped(s, 1);
            return (ssize_t)len + (nl != NULL);
        }
        if (errno == EINTR) {
            tries--;
            continue;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return 0;
        if (!syslog_reconnect(s)) /* ECONNREFUSED, ENOTCONN: the daemon restarted */
            return -1;
    }
    return -1;
}

/* Writes what the descriptor takes now: 1 when nothing is left, 0 when it
 * is full, -1 when it is broken. */
static int write_pending(struct sink *s)
{
    while (s->head < s->len) {
        ssize_t w = s->dgram ? dgram_write(s, s->buf + s->head, s->len - s->head)
                             : stream_write(s, s->buf + s->head, s->len - s->head);
        if (w <= 0)
            return (int)w;
        s->head += (size_t)w;
        if (s->head == s->len && s->dropped > 0)
            append_dropped_notice(s);
    }
    s->head = s->len = 0;
    return 1;
}

static void on_writable(struct ev_loop *loop, ev_io *w, int revents);

/* Waits for the descriptor to take more, without keeping the loop alive. */
static void wait_writable(struct sink *s)
{
    if (ev_is_active(&s->io))
        return;
    ev_io_init(&s->io, on_writable, s->fd, EV_WRITE);
    s->io.data = s;
    ev_io_start(log_loop, &s->io);
    ev_unref(log_loop);
}

static void stop_waiting(struct sink *s)
{
    if (!log_loop || !ev_is_active(&s->io))
        return;
    ev_ref(log_loop);
    ev_io_stop(log_loop, &s->io);
}

static void sink_flush(struct sink *s)
{
    int rc = write_pending(s);
    if (rc == 0 && log_loop) {
        wait_writable(s);
        return;
    }
    /* Broken, or full with no loop to wait with: what is left is lost. */
    if (rc != 1)
        drop_pending(s);
    stop_waiting(s);
}

void log_flush(void)
{
    for (size_t i = 0; i < ARRAY_LEN(sinks); i++)
        sink_flush(&sinks[i]);
}

/* At exit nothing is left to protect from a slow reader: give it a moment
 * to take the last lines (the drain, the reason for stopping). */
static void flush_before_exit(struct sink *s)
{
    double deadline = ev_time() + LOG_EXIT_WAIT;
    while (write_pending(s) == 0 && ev_time() < deadline) {
        struct pollfd p = {.fd = s->fd, .events = POLLOUT};
        poll(&p, 1, (int)((deadline - ev_time()) * 1000) + 1);
    }
}

static void on_writable(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop, (void)revents;
    sink_flush(w->data);
}

static void on_prepare(struct ev_loop *loop, ev_prepare *w, int revents)
{
    (void)loop, (void)w, (void)revents;
    for (size_t i = 0; i < ARRAY_LEN(sinks); i++)
        if (!ev_is_active(&sinks[i].io)) /* else on_writable says when to try again */
            sink_flush(&sinks[i]);
}

/* ---- targets ---- */

void log_use(enum log_sink_id id, const struct log_target *t, int fd)
{
    struct sink *s = &sinks[id];
    bool dgram = t->to == LOG_TO_SYSLOG;
    write_pending(s); /* what the old target takes now goes there */
    stop_waiting(s);
    /* The rest goes to the new one, unless lines of one kind would reach a
     * target of the other (or the access log joins the log). */
    if (dgram != s->dgram || t->to == LOG_TO_LOG)
        drop_pending(s);
    sink_set(s, fd, fd >= 0, false);
    s->dgram = dgram;
    s->retry_at = 0;
    free(s->file);
    free(s->socket);
    s->file = t->file ? strdup(t->file) : NULL;
    s->socket = t->socket ? strdup(t->socket) : NULL;
    s->t = *t;
    s->t.file = s->file;
    s->t.socket = s->socket;
}

int log_open(enum log_sink_id id, const struct log_target *t, char *err, size_t errlen)
{
    if (!log_changes(id, t))
        return EG_OK;
    int fd;
    if (log_target_open(t, &fd, err, errlen) != EG_OK)
        return EG_ERR;
    log_use(id, t, fd);
    return EG_OK;
}

int log_reopen(void)
{
    int rc = EG_OK, saved = 0;
    for (size_t i = 0; i < ARRAY_LEN(sinks); i++) {
        struct sink *s = &sinks[i];
        if (s->t.to == LOG_TO_SYSLOG) {
            s->retry_at = 0;
            syslog_reconnect(s);
            continue;
        }
        if (s->t.to != LOG_TO_FILE)
            continue;
        char err[EG_ERRLEN];
        int fd;
        if (log_target_open(&s->t, &fd, err, sizeof(err)) != EG_OK) {
            saved = errno;
            rc = EG_ERR;
            continue;
        }
        write_pending(s);
        stop_waiting(s);
        sink_set(s, fd, true, false);
    }
    errno = saved;
    return rc;
}

void log_attach(struct ev_loop *loop)
{
    log_loop = loop;
    ev_prepare_init(&log_prepare, on_prepare);
    ev_prepare_start(loop, &log_prepare);
    ev_unref(loop); /* logging alone must not keep the loop alive */
}

void log_detach(void)
{
    if (log_loop) {
        for (size_t i = 0; i < ARRAY_LEN(sinks); i++)
            stop_waiting(&sinks[i]);
        ev_ref(log_loop);
        ev_prepare_stop(log_loop, &log_prepare);
        log_loop = NULL;
    }
    for (size_t i = 0; i < ARRAY_LEN(sinks); i++)
        flush_before_exit(&sinks[i]);
    log_flush();
}

/* ---- lines ---- */

void log_access(const char *line, size_t len)
{
    struct sink *s = sinks[LOG_ACCESS].t.to == LOG_TO_LOG ? &sinks[LOG_MAIN] : &sinks[LOG_ACCESS];
    if (len > 0 && line[len - 1] == '\n')
        len--;
    append(s, LOG_INFO, LINE_ACCESS, line, len);
    if (!log_loop)
        sink_flush(s);
}

void log_msg(int level, const char *fmt, ...)
{
    if (level > log_level)
        return;
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    struct sink *s = &sinks[LOG_MAIN];
    append(s, level, LINE_MSG, line, (size_t)MIN(MAX(m, 0), (int)sizeof(line) - 1));
    if (!log_loop)
        sink_flush(s);
}

void log_limited(struct log_limit *l, double period, int level, const char *fmt, ...)
{
    if (level > log_level)
        return;
    double now = ev_time();
    if (now < l->next) {
        l->held++;
        return;
    }
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (l->held)
        log_msg(level, "%s (%lu more like it held back)", msg, l->held);
    else
        log_msg(level, "%s", msg);
    l->next = now + period;
    l->held = 0;
}
