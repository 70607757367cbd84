/* Shared memory and its lock. Critical sections are a few hundred bytes of
 * copying: spinning (and yielding now and then) costs less than any kernel
 * object, and needs nothing but the word itself. */
#include "base/shm.h"

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

void *shm_map(size_t size, const char *what)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        fprintf(stderr, "edgegate: cannot map %zu bytes for %s\n", size, what);
        abort();
    }
    return p;
}

void shm_lock(int *lock)
{
    int me = (int)getpid();
    for (unsigned spins = 1;; spins++) {
        int owner = 0;
        if (__atomic_compare_exchange_n(lock, &owner, me, false, __ATOMIC_ACQUIRE,
                                        __ATOMIC_RELAXED))
            return;
        if (spins % 4096 == 0) {
            /* A process killed while holding it would block every other. */
            if (owner > 0 && kill(owner, 0) != 0 && errno == ESRCH)
                __atomic_compare_exchange_n(lock, &owner, 0, false, __ATOMIC_RELEASE,
                                            __ATOMIC_RELAXED);
            sched_yield();
        }
    }
}

void shm_unlock(int *lock) { __atomic_store_n(lock, 0, __ATOMIC_RELEASE); }
