/* Traffic waiting for a healthy datacenter: a queue woken when a datacenter
 * becomes healthy (never on a mere RTT update), a reload, or drain. */
#ifndef EG_GATEWAY_PROXY_HOLD_H
#define EG_GATEWAY_PROXY_HOLD_H

#include "base/util.h"

struct hold {
    struct dlist link;
    void (*wake)(struct hold *h);
};

void hold_add(struct hold *h);
void hold_del(struct hold *h);
/* Lets every held request or connection try again. */
void hold_wake_all(void);

#endif
