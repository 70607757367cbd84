/* Server names resolved with c-ares on the caller's loop: at start, then on
 * an interval (or the record's TTL when shorter). Every address a name
 * yields is a server; a failed resolution keeps the last good addresses. */
#ifndef EG_HEALTHCHECK_SERVER_DNS_H
#define EG_HEALTHCHECK_SERVER_DNS_H

#include "healthcheck/datacenter-types.h"

int dns_init(struct ev_loop *loop, char *err, size_t errlen);
/* Resolves CS for DC from now on. Servers OLD (the same datacenter in the
 * previous generation) got from the same name are carried over at once. */
void dns_watch(struct dc *dc, const struct conf_server *cs, const struct dc *old);
void dns_unwatch(struct dc *dc);
/* Not the machine's checker (healthcheck/view.h): names are not resolved
 * here; their servers follow what the checker resolved. Called when the
 * view changed. */
void dns_apply_shared(void);
unsigned long dns_queries_total(void);

/* One lookup: CB gets the first address of HOST (numeric or name), with
 * PORT set, or NULL when it does not resolve. May call CB before returning. */
typedef void (*dns_cb)(void *ctx, const struct net_addr *a);
void dns_lookup(const char *host, uint16_t port, dns_cb cb, void *ctx);

#endif
