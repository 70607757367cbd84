/* Layer base: what knows nothing of edgegate (sockets, buffers, memory,
 * logs, counters, TLS contexts). It may use only the C library, libev and
 * OpenSSL; every other layer may use it. */
/* Small helpers shared by every module: no state, no functions with a body
 * longer than a line. */
#ifndef EG_BASE_UTIL_H
#define EG_BASE_UTIL_H

#include <stddef.h>
#include <stdint.h>

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define container_of(ptr, type, member) \
    ((type *)(void *)((char *)(ptr) - offsetof(type, member)))
#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

/* The one status convention. A function that can finish, have to wait, or
 * fail returns one of these (reads and writes return a byte count >= 0 in
 * place of EG_OK); the errno of a failure is kept in the object that failed
 * (struct sk's err), or a message in the caller's error buffer. */
enum eg_status { EG_OK = 0, EG_ERR = -1, EG_AGAIN = -2 };

#define EG_ERRLEN 256

/* Intrusive doubly linked list, as small as it can be. */
struct dlist {
    struct dlist *prev, *next;
};

static inline void dlist_init(struct dlist *h) { h->prev = h->next = h; }
static inline int dlist_empty(const struct dlist *h) { return h->next == h; }
static inline void dlist_add(struct dlist *h, struct dlist *n)
{
    n->next = h->next;
    n->prev = h;
    h->next->prev = n;
    h->next = n;
}
static inline void dlist_add_tail(struct dlist *h, struct dlist *n) { dlist_add(h->prev, n); }
static inline void dlist_del(struct dlist *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->prev = n->next = n;
}

#endif
