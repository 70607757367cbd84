#include "base/alloc.h"

#include <malloc.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *checked(void *p, size_t n)
{
    if (!p && n) {
        fprintf(stderr, "edgegate: out of memory (%zu bytes)\n", n);
        abort();
    }
    return p;
}

void *eg_malloc(size_t n) { return checked(malloc(n), n); }
void *eg_calloc(size_t n, size_t size) { return checked(calloc(n, size), n * size); }
void *eg_realloc(void *p, size_t n) { return checked(realloc(p, n), n); }
char *eg_strndup(const char *s, size_t n) { return checked(strndup(s, n), n + 1); }

void *pool_get(struct pool *p)
{
    void *obj = p->free;
    if (obj) {
        memcpy(&p->free, obj, sizeof(void *));
        p->nfree--;
    } else {
        obj = eg_malloc(p->size);
    }
    p->live++;
    return obj;
}

void pool_put(struct pool *p, void *obj)
{
    if (!obj)
        return;
    p->live--;
    if (p->nfree >= p->max_free) {
        free(obj);
        return;
    }
    memcpy(obj, &p->free, sizeof(void *));
    p->free = obj;
    p->nfree++;
}

/* After a burst (1000+ live objects), glibc keeps the freed heap. Trim each
 * time the live count halves, down to zero: one trim at half the peak would
 * leave the pages that the last few hundred connections pinned. */
void eg_release_after_peak(unsigned long live, unsigned long high)
{
    static unsigned long peak; /* highest live count since the last trim */
    static bool after_burst;   /* memory of a burst may still be held */
    if (high > peak)
        peak = high;
    if (peak >= 1000)
        after_burst = true;
    if (after_burst && live < peak / 2) {
        malloc_trim(0);
        peak = live;
        after_burst = live > 0;
    }
}
