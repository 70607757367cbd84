#include "base/buffer.h"
#include "base/alloc.h"
#include "base/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Free buffers beyond this many are returned to the allocator, so that a
 * burst of traffic does not pin its peak memory forever. */
#define BUF_KEEP_FREE 256

static size_t bsize = 16384;
static struct buf *free_list;
static size_t nfree, nused;

void buf_pool_init(size_t size)
{
    /* Buffers of the old size are dropped; new ones have the new size. */
    while (free_list) {
        struct buf *b = free_list;
        free_list = b->next;
        free(b);
    }
    nfree = 0;
    bsize = size;
}

size_t buf_size(void) { return bsize; }
size_t buf_in_use(void) { return nused; }
struct buf *buf_get(void)
{
    struct buf *b = free_list;
    if (b) {
        free_list = b->next;
        nfree--;
    } else {
        b = eg_malloc(sizeof(*b) + bsize);
    }
    b->head = b->tail = 0;
    b->cap = (uint32_t)bsize;
    b->next = NULL;
    nused++;
    return b;
}

struct buf *buf_grow(struct buf *b, size_t cap)
{
    struct buf *n = eg_malloc(sizeof(*n) + cap);
    n->next = NULL;
    n->cap = (uint32_t)cap;
    n->head = 0;
    n->tail = (uint32_t)buf_len(b);
    memcpy(n->data, buf_rpos(b), buf_len(b));
    buf_put(b);
    nused++;
    return n;
}

void buf_put(struct buf *b)
{
    if (!b)
        return;
    nused--;
    if (b->cap != bsize || nfree >= BUF_KEEP_FREE) {
        free(b);
        return;
    }
    b->next = free_list;
    free_list = b;
    nfree++;
}

void buf_compact(struct buf *b)
{
    if (b->head == 0)
        return;
    size_t n = buf_len(b);
    if (n)
        memmove(b->data, b->data + b->head, n);
    b->head = 0;
    b->tail = (uint32_t)n;
}
