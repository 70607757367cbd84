/* Byte buffers: one allocation per buffer, reused for the connection's life. */
#include "tests/dcsim/dcsim.h"

#include <stdlib.h>
#include <string.h>

void buf_compact(struct buf *b)
{
    if (!b->off)
        return;
    memmove(b->data, b->data + b->off, b->len - b->off);
    b->len -= b->off;
    b->off = 0;
}

int buf_reserve(struct buf *b, size_t extra)
{
    if (b->cap - b->len >= extra)
        return 0;
    buf_compact(b);
    if (b->cap - b->len >= extra)
        return 0;
    size_t cap = b->cap * 2;
    if (cap < b->len + extra)
        cap = b->len + extra;
    char *p = realloc(b->data, cap);
    if (!p)
        return -1;
    b->data = p;
    b->cap = cap;
    return 0;
}

int buf_append(struct buf *b, const void *p, size_t n)
{
    if (buf_reserve(b, n))
        return -1;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

void buf_consume(struct buf *b, size_t n)
{
    b->off += n;
    if (b->off == b->len)
        b->off = b->len = 0;
}

void buf_free(struct buf *b)
{
    free(b->data);
    memset(b, 0, sizeof *b);
}
