#include "gateway/proxy/pump.h"
#include "base/util.h"

#include <string.h>

static size_t data_pending(const struct pump *p) { return p->b ? buf_len(p->b) - p->sent : 0; }

size_t pump_pending(const struct pump *p)
{
    return (size_t)(p->pre_len - p->pre_sent) + data_pending(p);
}

static void release_if_empty(struct pump *p)
{
    if (p->b && buf_len(p->b) == 0) {
        buf_put(p->b);
        p->b = NULL;
        p->sent = 0;
    }
}

/* Room for more source bytes, compacting when that makes some. Retained
 * bytes are never dropped here: the mode decides when to stop retaining. */
static size_t room(struct pump *p)
{
    if (!p->b)
        return buf_size();
    if (buf_room(p->b) == 0 && p->b->head > 0)
        buf_compact(p->b);
    return buf_room(p->b);
}

bool pump_wants_read(const struct pump *p)
{
    return !p->eof && (!p->b || buf_room(p->b) > 0 || p->b->head > 0);
}

enum pump_status pump_read(struct pump *p, struct sk *from, size_t *got)
{
    *got = 0;
    if (p->eof || room(p) == 0)
        return PUMP_OK;
    if (!p->b)
        p->b = buf_get();
    size_t asked = buf_room(p->b);
    ssize_t n = sk_read(from, buf_wpos(p->b), asked);
    /* A short read of a plain socket emptied it: asking again would only
     * get EAGAIN. TLS returns a record at a time, short or not. */
    p->dry = n > 0 && (size_t)n < asked && !from->ssl;
    if (n > 0) {
        p->b->tail += (uint32_t)n;
        *got = (size_t)n;
    } else if (n == 0) {
        p->eof = true;
    }
    release_if_empty(p);
    return n == EG_ERR ? PUMP_SRC_ERROR : PUMP_OK;
}

/* Accounts W written bytes: the prefix's first, then the buffer's. */
static void advance(struct pump *p, size_t w)
{
    size_t from_pre = MIN(w, (size_t)(p->pre_len - p->pre_sent));
    p->pre_sent += (uint16_t)from_pre;
    w -= from_pre;
    if (p->retain)
        p->sent += (uint32_t)w;
    else if (w > 0)
        p->b->head += (uint32_t)w;
    release_if_empty(p);
}

enum pump_status pump_write(struct pump *p, struct sk *to, size_t *put)
{
    *put = 0;
    size_t pre = (size_t)(p->pre_len - p->pre_sent), n = data_pending(p);
    if (pre + n > 0) {
        struct iovec iov[2] = {{(void *)(p->pre + p->pre_sent), pre},
                               {n ? buf_rpos(p->b) + p->sent : NULL, n}};
        ssize_t w = sk_writev(to, iov + (pre == 0), (pre > 0) + (n > 0));
        if (w == EG_ERR)
            return PUMP_DST_ERROR;
        if (w > 0) {
            *put = (size_t)w;
            advance(p, (size_t)w);
        }
    }
    if (p->eof && !p->shut && pump_pending(p) == 0) {
        sk_shutdown_wr(to);
        p->shut = true;
    }
    return PUMP_OK;
}

void pump_stop_retaining(struct pump *p)
{
    p->retain = false;
    if (p->b) {
        p->b->head += p->sent;
        p->sent = 0;
        release_if_empty(p);
    }
}

void pump_rewind(struct pump *p, const unsigned char *pre, size_t len)
{
    p->pre = pre;
    p->pre_len = (uint16_t)len;
    p->pre_sent = 0;
    p->sent = 0;
    p->shut = false;
}

void pump_clear(struct pump *p)
{
    buf_put(p->b);
    p->b = NULL;
    p->sent = 0;
}
