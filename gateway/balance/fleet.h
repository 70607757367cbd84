/* Fleet-wide operator state and sessions, through Redis.
 *
 * Operator state (healthcheck/admin.h) is kept in the hash
 * `<prefix>op:state`, one field per datacenter ("dc:NAME") or server
 * ("srv:NAME:ADDR") with a JSON record, and every change is published on
 * `<prefix>op:changes` ("FIELD\nRECORD", an empty record when cleared) by
 * the same script that writes it. Every gateway subscribes and applies what
 * it hears; it re-reads the whole hash when its subscription starts (start,
 * Redis back) and at reload. A change made while Redis is away is applied
 * here and written once Redis is back; meanwhile the last known state holds.
 *
 * Sessions moved or forgotten by an operator are published too
 * ("session\nKEY"), so that every gateway drops its cached answer. */
#ifndef EG_GATEWAY_BALANCE_FLEET_H
#define EG_GATEWAY_BALANCE_FLEET_H

#include "conf/conf-types.h"

#include <stdbool.h>
#include <stddef.h>

/* Start and reload: Redis or not, the prefix; re-reads the state. */
void fleet_configure(const struct conf *c);
/* Redis configured: operator state is fleet-wide. */
bool fleet_on(void);
/* Redis connected: changes made here are written. */
bool fleet_connected(void);
/* And subscribed: changes made elsewhere are heard. */
bool fleet_ready(void);
/* Writes every pending operator change to Redis (when it is there). */
void fleet_push(void);
/* Operator changes not yet written to Redis. */
int fleet_pending(void);

struct fleet_session {
    bool found;
    char dc[CONF_NAME_MAX];
    char home[CONF_NAME_MAX];
    double ttl_s;
};
/* Called once with the outcome; OK false when Redis did not answer. */
typedef void (*fleet_session_cb)(void *ctx, bool ok, const struct fleet_session *s);
/* Reads, moves (to DC, its home forgotten) or forgets session KEY in Redis.
 * False when Redis is not ready (CB is then not called). */
bool fleet_session_get(const char *key, size_t len, fleet_session_cb cb, void *ctx);
bool fleet_session_move(const char *key, size_t len, const char *dc, fleet_session_cb cb,
                        void *ctx);
bool fleet_session_forget(const char *key, size_t len, fleet_session_cb cb, void *ctx);

/* Messages and records from Redis that could not be read (this process). */
unsigned long fleet_bad_messages(void);

#endif
