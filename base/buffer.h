/* I/O buffers from a free list. A connection takes a buffer when bytes are
 * pending and gives it back as soon as they are written, so an idle
 * connection holds none. All buffers of a process have the same size. */
#ifndef EG_BASE_BUFFER_H
#define EG_BASE_BUFFER_H

#include <stddef.h>
#include <stdint.h>

struct buf {
    struct buf *next;   /* free-list link */
    uint32_t head;      /* first unconsumed byte */
    uint32_t tail;      /* one past the last byte */
    uint32_t cap;       /* the pool's size, or more for a grown buffer */
    char data[];
};

void buf_pool_init(size_t size);
size_t buf_size(void);
struct buf *buf_get(void);
void buf_put(struct buf *b);
/* A copy of B with capacity CAP (> B's), B given back: for the rare request
 * that must be kept whole although it outgrows one buffer. */
struct buf *buf_grow(struct buf *b, size_t cap);
/* Buffers handed out and not yet returned; tests and stats read it. */
size_t buf_in_use(void);

static inline size_t buf_len(const struct buf *b) { return b->tail - b->head; }
static inline size_t buf_room(const struct buf *b) { return b->cap - b->tail; }
static inline char *buf_rpos(struct buf *b) { return b->data + b->head; }
static inline char *buf_wpos(struct buf *b) { return b->data + b->tail; }
/* Move pending bytes to the front so that the tail has room again. */
void buf_compact(struct buf *b);

#endif
