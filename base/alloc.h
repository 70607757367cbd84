/* Memory: the one place that decides what running out of it means (the
 * process logs and aborts: a gateway that cannot allocate a few hundred bytes
 * cannot serve, and a supervisor restarts it), and bounded object pools for
 * per-connection structures. */
#ifndef EG_BASE_ALLOC_H
#define EG_BASE_ALLOC_H

#include <stddef.h>

void *eg_malloc(size_t n);
void *eg_calloc(size_t n, size_t size);
void *eg_realloc(void *p, size_t n);
char *eg_strndup(const char *s, size_t n);

/* A free list of equal-sized objects that keeps at most MAX_FREE of them:
 * a burst of connections leaves no more than that behind once it is over. */
struct pool {
    size_t size;
    unsigned max_free;
    unsigned nfree;
    unsigned live;              /* objects handed out and not yet returned */
    void *free;                 /* singly linked through each object's first word */
};

#define POOL_INIT(type, max) {.size = sizeof(type), .max_free = (max)}

/* An object of the pool's size, uninitialised. */
void *pool_get(struct pool *p);
void pool_put(struct pool *p, void *obj);
/* Gives memory freed after a peak back to the system, when the live count
 * LIVE (client connections) fell below half the peak (HIGH: the most seen
 * since the last call) since the last trim: a burst of connections leaves
 * no lasting footprint. Cheap to call every few seconds. */
void eg_release_after_peak(unsigned long live, unsigned long high);

#endif
