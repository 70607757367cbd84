/* Log sink. Lines are formatted into one in-memory buffer; an ev_prepare
 * watcher writes the buffer out once per loop iteration, just before the loop
 * sleeps, so a burst of lines costs one write().
 *
 * The sink never blocks the loop, whoever reads (or stops reading) the other
 * end: its descriptor is non-blocking. What the reader does not take now
 * stays in the buffer and an ev_io watcher writes it when the descriptor is
 * writable again; lines that do not fit in the buffer are dropped and
 * counted (log_lines_dropped_total), and a line says so once the sink
 * drains. Before log_attach() and after log_detach() (start-up, -t, the
 * master of workers) there is no loop to wait with: lines are written at
 * once as far as the descriptor takes them, and the rest dropped; at exit,
 * log_detach() gives a slow reader a second to take what is left.
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
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define LOG_BUF_SIZE (256 * 1024)
#define LOG_EXIT_WAIT 1.0         /* seconds */

int log_level = LOG_INFO;

static struct {
    int fd;                     /* -1: stderr, not set up yet */
    bool own;                   /* ours to close: the log file, a reopened stderr */
    bool sock;                  /* written with send(MSG_DONTWAIT) */
} sink = {.fd = -1};

static char *log_file;
static char log_buf[LOG_BUF_SIZE];
static size_t log_head, log_len;  /* pending bytes: log_buf[log_head, log_len) */
static unsigned long log_dropped; /* since the last notice */
static struct ev_loop *log_loop;
static ev_prepare log_prepare;
static ev_io log_io;              /* active while the descriptor is full */

static const char *const level_names[] = {"error", "warn", "info", "debug"};

static void stop_waiting(void);

int log_level_parse(const char *s)
{
    for (size_t i = 0; i < ARRAY_LEN(level_names); i++)
        if (strcmp(s, level_names[i]) == 0)
            return (int)i;
    return -1;
}

/* ---- the descriptor ---- */

static void sink_set(int fd, bool own, bool sock)
{
    if (sink.own)
        close(sink.fd);
    sink.fd = fd;
    sink.own = own;
    sink.sock = sock;
}

/* stderr as described at the top: a description of our own when there can
 * be one. */
static void sink_stderr(void)
{
    struct stat st;
    if (fstat(2, &st) != 0 || S_ISREG(st.st_mode)) {
        sink_set(2, false, false);
        return;
    }
    if (S_ISSOCK(st.st_mode)) {
        sink_set(2, false, true);
        return;
    }
    int fd = open("/proc/self/fd/2", O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd >= 0) {
        sink_set(fd, true, false);
        return;
    }
    fcntl(2, F_SETFL, fcntl(2, F_GETFL) | O_NONBLOCK);
    sink_set(2, false, false);
}

static int sink_fd(void)
{
    if (sink.fd < 0)
        sink_stderr();
    return sink.fd;
}

/* Bytes the descriptor took, 0 when it is full for now, -1 when it is
 * broken (a reader that closed its end): nowhere left to report that. */
static ssize_t sink_write(const char *p, size_t n)
{
    int fd = sink_fd();
    for (;;) {
        ssize_t w = sink.sock ? send(fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL) : write(fd, p, n);
        if (w >= 0)
            return w;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return 0;
        if (errno != EINTR)
            return -1;
    }
}

int log_open(const char *file)
{
    int fd = -1;
    if (file) {
        fd = open(file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NONBLOCK, 0640);
        if (fd < 0)
            return EG_ERR;
    }
    log_flush(); /* what the old sink takes now goes there, the rest to the new one */
    stop_waiting();
    if (fd >= 0)
        sink_set(fd, true, false);
    else
        sink_stderr();
    if (file != log_file) {
        free(log_file);
        log_file = file ? strdup(file) : NULL;
    }
    return EG_OK;
}

int log_reopen(void)
{
    if (!log_file)
        return EG_OK;
    char *f = strdup(log_file);
    int rc = log_open(f);
    free(f);
    return rc;
}

/* ---- the buffer ---- */

static void count_dropped(unsigned long lines)
{
    log_dropped += lines;
    if (counters)
        counters->log_lines_dropped_total += lines;
}

/* Gives up on the pending bytes; a line cut short counts as dropped. */
static void drop_pending(void)
{
    unsigned long lines = 0;
    for (const char *p = log_buf + log_head, *end = log_buf + log_len;
         (p = memchr(p, '\n', (size_t)(end - p))); p++)
        lines++;
    log_head = log_len = 0;
    count_dropped(lines ? lines : 1);
}

/* Room for N more bytes, moving the pending ones to the front if needed. */
static bool make_room(size_t n)
{
    if (n > sizeof(log_buf) - (log_len - log_head))
        return false;
    if (n > sizeof(log_buf) - log_len) {
        memmove(log_buf, log_buf + log_head, log_len - log_head);
        log_len -= log_head;
        log_head = 0;
    }
    return true;
}

static void append(const char *p, size_t n)
{
    if (!make_room(n)) {
        count_dropped(1);
        return;
    }
    memcpy(log_buf + log_len, p, n);
    log_len += n;
}

/* Once the sink has caught up, one line says how much it missed. */
static void append_dropped_notice(void)
{
    char msg[96];
    int n = snprintf(msg, sizeof(msg), "edgegate: %lu log lines dropped (log sink too slow)\n",
                     log_dropped);
    if (make_room((size_t)n)) {
        memcpy(log_buf + log_len, msg, (size_t)n);
        log_len += (size_t)n;
        log_dropped = 0;
    }
}

static void on_writable(struct ev_loop *loop, ev_io *w, int revents);

/* Waits for the descriptor to take more, without keeping the loop alive. */
static void wait_writable(void)
{
    if (ev_is_active(&log_io))
        return;
    ev_io_init(&log_io, on_writable, sink_fd(), EV_WRITE);
    ev_io_start(log_loop, &log_io);
    ev_unref(log_loop);
}

static void stop_waiting(void)
{
    if (!log_loop || !ev_is_active(&log_io))
        return;
    ev_ref(log_loop);
    ev_io_stop(log_loop, &log_io);
}

/* Writes what the descriptor takes now: 1 when nothing is left, 0 when it
 * is full, -1 when it is broken. */
static int write_pending(void)
{
    while (log_head < log_len) {
        ssize_t w = sink_write(log_buf + log_head, log_len - log_head);
        if (w <= 0)
            return (int)w;
        log_head += (size_t)w;
        if (log_head == log_len && log_dropped > 0)
            append_dropped_notice();
    }
    log_head = log_len = 0;
    return 1;
}

void log_flush(void)
{
    int rc = write_pending();
    if (rc == 0 && log_loop) {
        wait_writable();
        return;
    }
    /* Broken, or full with no loop to wait with: what is left is lost. */
    if (rc != 1)
        drop_pending();
    stop_waiting();
}

/* At exit nothing is left to protect from a slow reader: give it a moment
 * to take the last lines (the drain, the reason for stopping). */
static void flush_before_exit(void)
{
    double deadline = ev_time() + LOG_EXIT_WAIT;
    while (write_pending() == 0 && ev_time() < deadline) {
        struct pollfd p = {.fd = sink_fd(), .events = POLLOUT};
        poll(&p, 1, (int)((deadline - ev_time()) * 1000) + 1);
    }
}

static void on_writable(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop, (void)w, (void)revents;
    log_flush();
}

static void on_prepare(struct ev_loop *loop, ev_prepare *w, int revents)
{
    (void)loop, (void)w, (void)revents;
    if (!ev_is_active(&log_io)) /* else on_writable says when to try again */
        log_flush();
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
        stop_waiting();
        ev_ref(log_loop);
        ev_prepare_stop(log_loop, &log_prepare);
        log_loop = NULL;
    }
    flush_before_exit();
    log_flush();
}

void log_raw(const char *line, size_t len)
{
    append(line, len);
    if (!log_loop)
        log_flush();
}

void log_msg(int level, const char *fmt, ...)
{
    if (level > log_level)
        return;
    char line[2048];
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    int n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ edgegate[%d] %s: ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, (int)(tv.tv_usec / 1000), (int)getpid(), level_names[level]);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (size_t)MIN(m, (int)(sizeof(line) - (size_t)n - 2));
    line[len++] = '\n';
    log_raw(line, len);
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
