/* The status page (`/`), made for an outage: rendered whole on the server
 * for each request, so that it reads without JavaScript (its script only
 * fetches it again every second). */
#ifndef EG_GATEWAY_OPS_STATS_PAGE_H
#define EG_GATEWAY_OPS_STATS_PAGE_H

#include "base/strbuf.h"

/* Appends the page, as it stands now, to B. */
void stats_page(struct sbuf *b);

#endif
