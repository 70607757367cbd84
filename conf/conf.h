/* Layer conf: the configuration file, its directive table, defaults and
 * checks. It may use base only. */
/* Configuration: an nginx-like file parsed by a table of directives. */
#ifndef EG_CONF_CONF_H
#define EG_CONF_CONF_H

#include "conf/conf-types.h"

#include <stdio.h>

/* Parse a configuration held in memory. FILE names it in error messages,
 * and `include` paths are relative to its directory. Returns NULL when there
 * is any error; every error is appended to ERRS. */
struct conf *conf_parse(const char *file, const char *buf, size_t len, struct conf_errs *errs);
/* As conf_parse, for input that must not reach the file system (the
 * fuzzer): an `include` is an error. */
struct conf *conf_parse_isolated(const char *file, const char *buf, size_t len,
                                 struct conf_errs *errs);
/* Read and parse FILE. */
struct conf *conf_load(const char *file, struct conf_errs *errs);
void conf_free(struct conf *c);
void conf_errs_free(struct conf_errs *e);
/* Logs every error of E, one line each. */
void conf_errs_log(const struct conf_errs *e);
/* Appends "FILE:LINE: message" to E (for checks made outside the parser). */
void conf_errs_add(struct conf_errs *e, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Checks, for -t, that the log files and the pid file can be opened or
 * created, without creating them, and that syslog's socket takes
 * datagrams. Returns EG_OK or EG_ERR with ERRS filled. */
int conf_check_files(const struct conf *c, struct conf_errs *errs);
/* Where C sends its log and its access log (LOG_TO_LOG: into the log). */
void conf_log_targets(const struct conf *c, struct log_target *log, struct log_target *access);

/* Prints C as a configuration file with every default filled in; parsing
 * what it prints gives the same configuration. */
void conf_print(FILE *f, const struct conf *c);
/* Prints the reference of every directive, FORMAT "md" or "man". Returns
 * EG_OK, or EG_ERR for an unknown format. */
int conf_print_reference(FILE *f, const char *format);

int conf_dc_index(const struct conf *c, const char *name);

/* Value parsers, shared with the command line of dcsim-like tools and tests.
 * A value needs its unit ("500ms", "16k"); only 0 may go without one. */
int conf_parse_duration(const char *s, double *sec);
int conf_parse_size(const char *s, size_t *bytes);

#endif
