/* The monitoring endpoint: HTML status page, JSON, Prometheus, health. */
#ifndef EG_MON_H
#define EG_MON_H

#include "conf/conf-types.h"

#include <stdbool.h>
#include <stddef.h>

/* Opens, moves or closes the endpoint to match C. REUSEPORT: workers share
 * the address. */
int mon_apply(const struct conf *c, bool reuseport, char *err, size_t errlen);

#endif
