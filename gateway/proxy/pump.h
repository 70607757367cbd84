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
 * buffer made bulk transfers cost an epoll_wait every few reads.
 *
 * Between two plain sockets (`splice`, set by the mode) and once nothing is
 * retained, prefixed or buffered, bytes go socket -> pipe -> socket with
 * splice(2) and never cross into user space. The pipe is taken when a read
 * finds bytes and given back as soon as it is empty, to a few spares kept
 * open (PUMP_PIPE_SPARE): an idle stream holds no pipe, a stalled one holds
 * one (at most PUMP_PIPE_SIZE bytes) where the other path holds a buffer.
 * When no pipe can be had (descriptors short: EMFILE, or PUMP_PIPE_SHARE
 * reached) the bytes take the buffer path. */
#ifndef EG_GATEWAY_PROXY_PUMP_H
#define EG_GATEWAY_PROXY_PUMP_H

#include "base/buffer.h"
#include "base/socket.h"

#include <stdbool.h>
#include <stdint.h>

struct pump_pipe;

struct pump {
    struct buf *b;
    const unsigned char *pre;   /* written first, before any byte of b (a PROXY header) */
    uint16_t pre_len, pre_sent;
    struct pump_pipe *pipe;     /* spliced bytes, after b's; NULL when there are none */
    uint32_t sent;              /* retained bytes already written (retain only) */
    bool splice;                /* both ends are plain sockets: splice when nothing else waits */
    bool retain;
    bool eof;                   /* the source ended */
    bool shut;                  /* the end was passed on (destination shut for writing) */
    bool dry;                   /* the last read got less than it asked: the source is empty */
};

/* Bytes one wake-up moves through a pump at most: a busy connection then
 * gives way to the others (16 reads of the default 16 KiB buffer). */
#define PUMP_BUDGET (256 * 1024)

/* The compile-time switch of the splice path (the A/B measurement of
 * README's Figures builds it with -DPUMP_SPLICE=0). */
#ifndef PUMP_SPLICE
#define PUMP_SPLICE 1
#endif
/* Bytes one splice from a socket asks for: the default pipe capacity. */
#define PUMP_PIPE_SIZE (64 * 1024)
/* Empty pipes kept open for the next stream that has bytes. */
#define PUMP_PIPE_SPARE 8
/* Pipes take at most one descriptor in PUMP_PIPE_SHARE of the process'
 * limit (two per pipe), whatever the connections leave free. */
#define PUMP_PIPE_SHARE 8

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
/* Gives the buffer and the pipe back. */
void pump_clear(struct pump *p);

#endif
