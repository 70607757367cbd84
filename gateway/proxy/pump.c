#include "gateway/proxy/pump.h"
#include "base/alloc.h"
#include "base/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* ---- pipes for splice: taken while bytes are in them ---- */

struct pump_pipe {
    int r, w;
    uint32_t len;               /* bytes in the pipe */
    struct pump_pipe *next;     /* in spares */
};

static struct pump_pipe *spares;
static unsigned nspares, nopen, max_open;

/* An empty pipe, or NULL when the process cannot spare the descriptors. */
static struct pump_pipe *pipe_take(void)
{
    struct pump_pipe *pp = spares;
    if (pp) {
        spares = pp->next;
        nspares--;
        return pp;
    }
    if (max_open == 0) {
        struct rlimit rl;
        rlim_t n = getrlimit(RLIMIT_NOFILE, &rl) == 0 ? rl.rlim_cur : 1024;
        max_open = (unsigned)MAX(MIN(n, (rlim_t)1 << 30) / 2 / PUMP_PIPE_SHARE, 1);
    }
    int fd[2];
    if (nopen >= max_open || pipe2(fd, O_NONBLOCK | O_CLOEXEC) != 0)
        return NULL; /* EMFILE, ENFILE: the bytes take the buffer path */
    pp = eg_malloc(sizeof(*pp));
    *pp = (struct pump_pipe){.r = fd[0], .w = fd[1]};
    nopen++;
    return pp;
}

/* An empty pipe joins the spares; one that still holds bytes (the stream
 * ended with them), or one too many, is closed. */
static void pipe_give(struct pump_pipe *pp)
{
    if (pp->len == 0 && nspares < PUMP_PIPE_SPARE) {
        pp->next = spares;
        spares = pp;
        nspares++;
        return;
    }
    close(pp->r);
    close(pp->w);
    free(pp);
    nopen--;
}

static size_t pipe_len(const struct pump *p) { return p->pipe ? p->pipe->len : 0; }

static size_t data_pending(const struct pump *p) { return p->b ? buf_len(p->b) - p->sent : 0; }

size_t pump_pending(const struct pump *p)
{
    return (size_t)(p->pre_len - p->pre_sent) + data_pending(p) + pipe_len(p);
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
    return !p->eof && !p->pipe && (!p->b || buf_room(p->b) > 0 || p->b->head > 0);
}

/* Splices what FROM has into a pipe; false when no pipe could be had (the
 * caller reads instead). Only with nothing else pending: the pipe's bytes
 * come after the buffer's, and EAGAIN from an empty pipe means the socket
 * is empty (from a part-filled one it could mean the pipe is full). */
static bool splice_in(struct pump *p, struct sk *from, size_t *got, enum pump_status *rc)
{
    struct pump_pipe *pp = pipe_take();
    if (!pp)
        return false;
    ssize_t n;
    do
        n = splice(from->fd, NULL, pp->w, NULL, PUMP_PIPE_SIZE,
                   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    while (n < 0 && errno == EINTR);
    *rc = PUMP_OK;
    /* Short: the socket is (most likely) empty, as after a short read. */
    p->dry = n > 0 && n < PUMP_PIPE_SIZE;
    if (n > 0) {
        pp->len = (uint32_t)n;
        p->pipe = pp;
        *got = (size_t)n;
        return true;
    }
    pipe_give(pp);
    if (n == 0) {
        p->eof = true;
    } else if (errno != EAGAIN) {
        from->err = errno;
        *rc = PUMP_SRC_ERROR;
    }
    return true;
}

/* Splices the pipe's bytes to TO; the pipe goes back once empty. */
static enum pump_status splice_out(struct pump *p, struct sk *to, size_t *put)
{
    struct pump_pipe *pp = p->pipe;
    ssize_t w;
    do
        w = splice(pp->r, NULL, to->fd, NULL, pp->len, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    while (w < 0 && errno == EINTR);
    if (w < 0 && errno == EAGAIN)
        return PUMP_OK;
    if (w <= 0) {
        to->err = w < 0 ? errno : EPIPE;
        return PUMP_DST_ERROR;
    }
    *put = (size_t)w;
    pp->len -= (uint32_t)w;
    if (pp->len == 0) {
        pipe_give(pp);
        p->pipe = NULL;
    }
    return PUMP_OK;
}

enum pump_status pump_read(struct pump *p, struct sk *from, size_t *got)
{
    *got = 0;
    if (p->eof || p->pipe || room(p) == 0)
        return PUMP_OK;
    enum pump_status rc;
    if (PUMP_SPLICE && p->splice && !p->retain && !p->b && p->pre_sent == p->pre_len &&
        splice_in(p, from, got, &rc))
        return rc;
    if (!p->b)
        p->b = buf_get();
    size_t asked = buf_room(p->b);
    ssize_t n = sk_read(from, buf_wpos(p->b), asked);
    /* A short read of a plain socket emptied it: asking again would only
     * get EAGAIN. TLS returns a record at a time, short or not. */
    p->dry = n > 0 && (size_t)n < asked && !sk_is_tls(from);
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
    if (p->pipe && pump_pending(p) == p->pipe->len) {
        size_t w = 0;
        if (splice_out(p, to, &w) != PUMP_OK)
            return PUMP_DST_ERROR;
        *put += w;
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
    if (p->pipe)
        pipe_give(p->pipe);
    p->pipe = NULL;
    buf_put(p->b);
    p->b = NULL;
    p->sent = 0;
}
