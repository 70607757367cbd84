/* Internal to conf/: appending an error from a va_list. */
#ifndef EG_CONF_ERRORS_H
#define EG_CONF_ERRORS_H

#include "conf/conf-types.h"

#include <stdarg.h>

void conf_errs_vadd(struct conf_errs *e, const char *file, int line, const char *fmt,
                    va_list ap);

#endif
