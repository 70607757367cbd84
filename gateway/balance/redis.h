/* Redis, asynchronously, on the gateway's loop (hiredis and its libev
 * adapter). One data connection; with Sentinel, one more to a sentinel to
 * find the primary and hear about failovers. No call here ever blocks. */
#ifndef EG_GATEWAY_BALANCE_REDIS_H
#define EG_GATEWAY_BALANCE_REDIS_H

#include "conf/conf-types.h"

#include <ev.h>
#include <hiredis/hiredis.h>
#include <stdbool.h>

struct redis_req;

/* REPLY is NULL when Redis did not answer within the timeout, or the
 * connection failed: the caller falls back. */
typedef void (*redis_cb)(void *ctx, const redisReply *reply);

void redis_init(struct ev_loop *loop);
/* Starts, restarts or stops using Redis as C says; a running connection is
 * kept when the settings that matter did not change. */
void redis_configure(const struct conf_redis *c);
/* Connected and ready for commands. */
bool redis_ready(void);
/* Sends a command; NULL when Redis is not ready (no callback then). */
struct redis_req *redis_command(int argc, const char **argv, const size_t *argvlen, redis_cb cb,
                            void *ctx);
/* The script redis_script() runs, loaded on every new connection. */
void redis_set_script(const char *script);
/* Runs the script: EVALSHA once loaded, EVAL before. */
struct redis_req *redis_script(const char *script, int nkeys, int argc, const char **argv,
                           const size_t *argvlen, redis_cb cb, void *ctx);

/* Subscribes to CHANNEL (replacing any previous one): ON_MESSAGE gets each
 * message. ON_RESYNC is called when a (new) connection is ready and again
 * when its subscription starts: what was published while nobody listened
 * is then to be re-read. */
typedef void (*redis_msg_cb)(const char *msg, size_t len);
void redis_subscribe(const char *channel, redis_msg_cb on_message, void (*on_resync)(void));
/* Connected, and the subscription confirmed. */
bool redis_subscribed(void);

/* hiredis' reply constructors, with arrays limited to a size no answer of
 * ours comes near: a reply announcing a billion elements is a protocol error,
 * not an attempt to allocate them. Used on every connection (and by the
 * fuzz target). */
redisReplyObjectFunctions *redis_reply_functions(void);

struct redis_status {
    bool configured, connected;
    double degraded_s;          /* total time configured but not connected */
    unsigned long commands, timeouts, errors, reconnects;
    char server[64];            /* address of the connected primary */
};
void redis_status(struct redis_status *st);

#endif
