/* Layer gateway/process: the process (start, reload, drain, master and
 * workers, privileges). The top: it may use every layer. */
/* A gateway process: its start and run, reload (all or nothing), drain and
 * signals. */
#ifndef EG_GATEWAY_PROCESS_GATEWAY_H
#define EG_GATEWAY_PROCESS_GATEWAY_H

#include "conf/conf-types.h"

/* Runs a gateway process (the only one, or a worker) on configuration C,
 * read from FILE, until it is stopped. Returns the exit code: 0, 1 (bad
 * configuration) or 2 (runtime failure at start). READY_FD (>= 0 in a
 * worker) gets a byte once the sockets are open. Takes ownership of C. */
int gw_run(struct conf *c, const char *file, int workers, int ready_fd);
/* SIGHUP: all or nothing. */
void gw_reload(void);
/* A configuration from FILE, certificates checked too (-t, the master's
 * reload), or NULL with every error in ERRS. */
struct conf *gw_load_checked(const char *file, struct conf_errs *errs);
/* A reload's log targets, opened ahead so that one that cannot be opened
 * fails the reload; applied (or discarded) once the rest is decided. */
struct gw_logs {
    struct log_target t[2];     /* by enum log_sink_id; strings in the configuration */
    int fd[2];
    bool change[2];
};
int gw_logs_prepare(const struct conf *c, struct gw_logs *l, struct conf_errs *errs);
void gw_logs_apply(struct gw_logs *l);
void gw_logs_discard(struct gw_logs *l);
/* Logs and counts a reload that could not be applied. */
void gw_reload_failed(struct conf_errs *errs, const char *what);
/* SIGTERM/SIGINT: stop accepting, let connections finish, then break the
 * loop (at the latest after drain_timeout). */
void gw_drain(void);

#endif
