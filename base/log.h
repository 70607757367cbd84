/* Logging: leveled messages and access lines, buffered in memory and flushed
 * by the event loop so that a slow disk or a stopped reader never stalls
 * the data path. Two sinks: the log, and the access log, which goes into
 * the log unless it has a target of its own. A target is standard error, a
 * file or syslog (datagrams to a local socket, /dev/log). */
#ifndef EG_BASE_LOG_H
#define EG_BASE_LOG_H

#include <ev.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

enum log_level { LOG_ERR, LOG_WARN, LOG_INFO, LOG_DEBUG };

extern int log_level;

int log_level_parse(const char *s);

enum log_to {
    LOG_TO_STDERR,
    LOG_TO_FILE,
    LOG_TO_SYSLOG,
    LOG_TO_LOG,                 /* the access log only: into the log */
};

enum log_syslog_format {
    LOG_RFC3164,                /* <PRI>Mmm dd hh:mm:ss TAG[PID]: MSG, as syslog(3) sends */
    LOG_RFC5424,                /* <PRI>1 TIMESTAMP HOST APP PID MSGID - MSG */
};

#define LOG_SYSLOG_SOCKET "/dev/log"

struct log_target {
    enum log_to to;
    const char *file;           /* LOG_TO_FILE: an absolute path */
    int facility;               /* LOG_TO_SYSLOG: 0 (kern) to 23 (local7) */
    const char *socket;         /* LOG_TO_SYSLOG: NULL for LOG_SYSLOG_SOCKET */
    enum log_syslog_format format;
};

enum log_sink_id { LOG_MAIN, LOG_ACCESS };

/* The facility named NAME ("daemon", "local0", ...), or -1. */
int log_facility_parse(const char *name);
const char *log_facility_name(int facility);

/* Sink ID writes to T from now on (what it had not written yet included).
 * Nothing changes when T is what it already writes to. Returns EG_OK, or
 * EG_ERR with ERR filled in and the sink as it was. */
int log_open(enum log_sink_id id, const struct log_target *t, char *err, size_t errlen);
/* For a reload that changes targets only once everything else is ready:
 * whether ID's target differs from T, and T opened ahead (its descriptor
 * in *FD, -1 for stderr and the log) to be used by log_use or closed. */
bool log_changes(enum log_sink_id id, const struct log_target *t);
int log_target_open(const struct log_target *t, int *fd, char *err, size_t errlen);
void log_use(enum log_sink_id id, const struct log_target *t, int fd);
/* Reopens the files (logrotate) and reconnects syslog. Returns EG_OK, or
 * EG_ERR with errno set when a file could not be opened. */
int log_reopen(void);
/* From now on, buffer and flush from LOOP instead of writing at once. */
void log_attach(struct ev_loop *loop);
void log_detach(void);
void log_flush(void);
void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* An access line (without its newline), to the access log. */
void log_access(const char *line, size_t len);

/* For a message that can repeat as fast as the loop turns (a failed accept,
 * a skipped check round): said at most once per PERIOD seconds from one
 * place, with the number held back in between. */
struct log_limit {
    double next;                /* held back until then */
    unsigned long held;
};
void log_limited(struct log_limit *l, double period, int level, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#define log_err(...) log_msg(LOG_ERR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) do { if (log_level >= LOG_INFO) log_msg(LOG_INFO, __VA_ARGS__); } while (0)
#define log_debug(...) do { if (log_level >= LOG_DEBUG) log_msg(LOG_DEBUG, __VA_ARGS__); } while (0)

#endif
