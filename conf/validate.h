/* Checks that need more than one statement: a block once it is closed,
 * cross references and limits once the whole file is read. */
#ifndef EG_CONF_VALIDATE_H
#define EG_CONF_VALIDATE_H

#include "conf/directive.h"

conf_close_fn conf_close_datacenter, conf_close_listener, conf_close_redis;

/* Checks of the whole tree. LAST is the main file's last line, where errors
 * about something missing are reported. */
void conf_validate(struct parser *p, int last);

#endif
