/* Memory shared by the processes of one machine (a master and the workers
 * it forks) and the lock that guards what several of them write. */
#ifndef EG_BASE_SHM_H
#define EG_BASE_SHM_H

#include <stddef.h>

/* SIZE bytes of zeroed shared anonymous memory, mapped before a fork;
 * aborts when it cannot be had (at start, nothing can run without it). */
void *shm_map(size_t size, const char *what);

/* A lock in shared memory: the word holds its owner's pid (0: free). A
 * process killed while holding it is noticed, and the lock taken over. */
void shm_lock(int *lock);
void shm_unlock(int *lock);

#endif
