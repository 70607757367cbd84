/* Running as root only as long as needed. */
#ifndef EG_GATEWAY_PROCESS_PRIVILEGES_H
#define EG_GATEWAY_PROCESS_PRIVILEGES_H

#include <stddef.h>

/* Becomes USER (and its group). The one capability kept is binding ports
 * below 1024, so that a reload can still open a new privileged listener. */
int priv_drop(const char *user, char *err, size_t errlen);

#endif
