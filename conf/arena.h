/* The memory of one configuration: every allocation of a parse lives in one
 * arena, freed at once with the configuration. */
#ifndef EG_CONF_ARENA_H
#define EG_CONF_ARENA_H

#include <stddef.h>

struct conf_arena;

/* N zeroed bytes. *AP is the arena (NULL: a new one is started). */
void *conf_arena_alloc(struct conf_arena **ap, size_t n);
char *conf_arena_strndup(struct conf_arena **ap, const char *s, size_t n);
/* Grows an arena array by one zeroed element and returns the (maybe moved)
 * array; *COUNT is incremented. */
void *conf_arena_push(struct conf_arena **ap, void *arr, int *count, size_t elsize);
void conf_arena_free(struct conf_arena *a);

#endif
