/* Logging: leveled messages, buffered in memory and flushed by the event loop
 * so that a slow disk never stalls the data path. */
#ifndef EG_BASE_LOG_H
#define EG_BASE_LOG_H

#include <ev.h>
#include <stdarg.h>

enum log_level { LOG_ERR, LOG_WARN, LOG_INFO, LOG_DEBUG };

extern int log_level;

int log_level_parse(const char *s);
/* Open FILE (NULL: stderr). Returns EG_OK or EG_ERR with errno set. */
int log_open(const char *file);
int log_reopen(void);
/* From now on, buffer and flush from LOOP instead of writing at once. */
void log_attach(struct ev_loop *loop);
void log_detach(void);
void log_flush(void);
void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Access lines go to the same sink, without level prefix. */
void log_raw(const char *line, size_t len);

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
