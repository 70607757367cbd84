/* One direction of a byte stream between two sockets: tcp mode and the
 * tunnel after an HTTP upgrade each run two of them.
 *
 * Bytes wait in a buffer taken when they arrive and given back once they
 * are written. Reading stops while the buffer is full (backpressure); the
 * source's end is passed on as a half-close once everything is out. While
 * `retain` is set, written bytes stay in the buffer (between head and
 * head + sent) so that they can be written again to another server.
 *
 * A ready source is read, and what was read written, again and again in one
 * wake-up (see pump_read_more): going back to the event loop after each
 * buffer made bulk transfers cost an epoll_wait every few reads. */
#ifndef EG_GATEWAY_PROXY_PUMP_H
#define EG_GATEWAY_PROXY_PUMP_H

#include "base/buffer.h"
#include "base/socket.h"

#include <stdbool.h>
#include <stdint.h>

struct pump {
    struct buf *b;
    const unsigned char *pre;   /* written first, before any byte of b (a PROXY header) */
    uint16_t pre_len, pre_sent;
    uint32_t sent;              /* retained bytes already written (retain only) */
    bool retain;
    bool eof;                   /* the source ended */
    bool shut;                  /* the end was passed on (destination shut for writing) */
    bool dry;                   /* the last read got less than it asked: the source is empty */
};

/* Bytes one wake-up moves through a pump at most: a busy connection then
 * gives way to the others (16 reads of the default 16 KiB buffer). */
#define PUMP_BUDGET (256 * 1024)

enum pump_status {
    PUMP_OK,
    PUMP_SRC_ERROR,             /* reading failed (reset) */
    PUMP_DST_ERROR,             /* writing failed (reset) */
};

/* Reads what fits from FROM; *GOT: bytes read. */
enum pump_status pump_read(struct pump *p, struct sk *from, size_t *got);
/* Writes what is pending to TO, then passes the end on once all is out;
 * *PUT: bytes written. */
enum pump_status pump_write(struct pump *p, struct sk *to, size_t *put);
/* Bytes waiting to be written (the prefix included). */
size_t pump_pending(const struct pump *p);
bool pump_wants_read(const struct pump *p);
/* After a read of GOT bytes was written on, MOVED bytes in this wake-up so
 * far: whether to read again now. Not when the source is empty or ended, the
 * destination did not take everything (backpressure: its writability comes
 * first), or the budget is spent. */
static inline bool pump_read_more(const struct pump *p, size_t got, size_t moved)
{
    return got > 0 && !p->dry && !p->eof && moved < PUMP_BUDGET && pump_pending(p) == 0;
}
/* Bytes to write, or an end to pass on. */
static inline bool pump_wants_write(const struct pump *p)
{
    return pump_pending(p) > 0 || (p->eof && !p->shut);
}
/* The source ended and the destination was told. */
static inline bool pump_finished(const struct pump *p) { return p->eof && p->shut; }
/* Forgets retained bytes and stops retaining. */
void pump_stop_retaining(struct pump *p);
/* Writes retained bytes again from the start, after PRE (LEN bytes, kept by
 * the caller): a new destination. */
void pump_rewind(struct pump *p, const unsigned char *pre, size_t len);
/* Gives the buffer back. */
void pump_clear(struct pump *p);

#endif
