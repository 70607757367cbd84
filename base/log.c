/* Log sink. Lines are formatted into one in-memory buffer; an ev_prepare
 * watcher writes the buffer out once per loop iteration, just before the loop
 * sleeps, so a burst of lines costs one write(). When the buffer is full
 * (the disk cannot keep up) lines are dropped and counted rather than
 * blocking the loop. Before log_attach() and after log_detach() lines are
 * written at once: at start-up and in -t there is no loop to wait for. */
#include "base/log.h"
#include "base/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define LOG_BUF_SIZE (256 * 1024)

int log_level = LOG_INFO;

static int log_fd = 2;
static char *log_file;
static char log_buf[LOG_BUF_SIZE];
static size_t log_len;
static unsigned long log_dropped;
static struct ev_loop *log_loop;
static ev_prepare log_prepare;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

int log_level_parse(const char *s)
{
    for (size_t i = 0; i < ARRAY_LEN(level_names); i++)
        if (strcmp(s, level_names[i]) == 0)
            return (int)i;
    return -1;
}

int log_open(const char *file)
{
    int fd = 2;
    if (file) {
        fd = open(file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
        if (fd < 0)
            return EG_ERR;
    }
    log_flush();
    if (log_fd > 2)
        close(log_fd);
    log_fd = fd;
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

static void write_all(const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(log_fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return; /* nowhere left to report it */
        }
        p += w;
        n -= (size_t)w;
    }
}

void log_flush(void)
{
    if (log_len > 0)
        write_all(log_buf, log_len);
    log_len = 0;
    if (log_dropped > 0) {
        char msg[96];
        int n = snprintf(msg, sizeof(msg), "edgegate: %lu log lines dropped (log sink too slow)\n",
                         log_dropped);
        log_dropped = 0;
        write_all(msg, (size_t)n);
    }
}

static void on_prepare(struct ev_loop *loop, ev_prepare *w, int revents)
{
    (void)loop, (void)w, (void)revents;
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
        ev_ref(log_loop);
        ev_prepare_stop(log_loop, &log_prepare);
        log_loop = NULL;
    }
    log_flush();
}

void log_raw(const char *line, size_t len)
{
    if (!log_loop) {
        write_all(line, len);
        return;
    }
    if (len > sizeof(log_buf) - log_len) {
        log_dropped++;
        return;
    }
    memcpy(log_buf + log_len, line, len);
    log_len += len;
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
