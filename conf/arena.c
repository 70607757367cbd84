/* Configuration arena: chunks of at least 16k, never freed one by one. */
#include "conf/arena.h"
#include "base/alloc.h"
#include "base/util.h"

#include <stdlib.h>
#include <string.h>

struct conf_arena {
    struct conf_arena *next;
    size_t used, cap;
    char data[];
};

void *conf_arena_alloc(struct conf_arena **ap, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    struct conf_arena *a = *ap;
    if (!a || a->cap - a->used < n) {
        size_t cap = MAX(n, (size_t)16384);
        struct conf_arena *na = eg_malloc(sizeof(*na) + cap);
        na->next = a;
        na->used = 0;
        na->cap = cap;
        *ap = na;
        a = na;
    }
    void *p = a->data + a->used;
    a->used += n;
    memset(p, 0, n);
    return p;
}

void conf_arena_free(struct conf_arena *a)
{
    while (a) {
        struct conf_arena *n = a->next;
        free(a);
        a = n;
    }
}

char *conf_arena_strndup(struct conf_arena **ap, const char *s, size_t n)
{
    char *p = conf_arena_alloc(ap, n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

/* Capacity is implicit: a power of two >= count, so that an array needs no
 * field besides its count. */
void *conf_arena_push(struct conf_arena **ap, void *arr, int *count, size_t elsize)
{
    int n = *count;
    if (n == 0 || (n & (n - 1)) == 0) {
        void *na = conf_arena_alloc(ap, elsize * (size_t)(n ? n * 2 : 1));
        if (n)
            memcpy(na, arr, elsize * (size_t)n);
        arr = na;
    }
    memset((char *)arr + elsize * (size_t)n, 0, elsize);
    *count = n + 1;
    return arr;
}
