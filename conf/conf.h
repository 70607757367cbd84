/* Configuration: an nginx-like file parsed by a table of directives. */
#ifndef EG_CONF_CONF_H
#define EG_CONF_CONF_H

#include "conf/conf-types.h"

/* Parse a configuration held in memory. FILE names it in error messages.
 * Returns NULL when there is any error; every error is appended to ERRS. */
struct conf *conf_parse(const char *file, const char *buf, size_t len, struct conf_errs *errs);
/* Read and parse FILE. */
struct conf *conf_load(const char *file, struct conf_errs *errs);
void conf_free(struct conf *c);
void conf_errs_free(struct conf_errs *e);
/* Logs every error of E, one line each. */
void conf_errs_log(const struct conf_errs *e);
/* Appends "FILE:LINE: message" to E (for checks made outside the parser). */
void conf_errs_add(struct conf_errs *e, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

int conf_dc_index(const struct conf *c, const char *name);

/* Value parsers, shared with the command line of dcsim-like tools and tests. */
int conf_parse_duration(const char *s, double *sec);
int conf_parse_size(const char *s, size_t *bytes);

#endif
