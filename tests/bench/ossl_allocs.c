/* A profiler of OpenSSL's heap, preloaded (LD_PRELOAD) into edgegate or
 * HAProxy by tests/bench/tls_allocs.sh: its constructor installs
 * CRYPTO_set_mem_functions before the program's first OpenSSL allocation,
 * so that every one is seen with the source file and line that made it
 * (OpenSSL passes them), and the live ones are kept in a table.
 *
 * Driven from gdb, the process being stopped at a known point:
 *   call ossl_allocs_mark()          later dumps count only what comes after
 *   print ossl_allocs_heap()         bytes of the heap in use (all of it:
 *                                    glibc's mallinfo2 uordblks, chunk bytes)
 *   call ossl_allocs_dump("FILE")    the live allocations made since the mark,
 *       one line per site, most bytes first:
 *         COUNT BYTES CHUNK_BYTES FILE:LINE
 *       CHUNK_BYTES is what glibc's malloc spends on them (its usable size
 *       plus the 8-byte chunk header). Not thread-safe: for single-threaded
 *       programs (edgegate's processes, HAProxy with nbthread 1). */
#include <malloc.h>
#include <openssl/crypto.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define SLOTS (1u << 22) /* live allocations at most; open addressing */
#define TOMB ((void *)1)
#define SITES 4096

struct live {
    void *p;
    const char *file;
    int line;
    size_t n;
    unsigned long seq;
};

struct site {
    const char *file;
    int line;
    long count, bytes, chunk;
};

static struct live *tab;
static unsigned long seq, mark_seq;

static size_t slot(const void *p) { return ((uintptr_t)p >> 4) * 2654435761u & (SLOTS - 1); }

static void track(void *p, size_t n, const char *file, int line)
{
    if (!p)
        return;
    size_t i = slot(p);
    while (tab[i].p && tab[i].p != TOMB)
        i = (i + 1) & (SLOTS - 1);
    tab[i] = (struct live){p, file, line, n, ++seq};
}

static void untrack(void *p)
{
    if (!p)
        return;
    for (size_t i = slot(p); tab[i].p; i = (i + 1) & (SLOTS - 1))
        if (tab[i].p == p) {
            tab[i].p = TOMB;
            return;
        }
}

static void *on_malloc(size_t n, const char *file, int line)
{
    void *p = malloc(n);
    track(p, n, file, line);
    return p;
}

static void *on_realloc(void *old, size_t n, const char *file, int line)
{
    size_t was = old ? malloc_usable_size(old) : 0;
    untrack(old);
    void *p = realloc(old, n);
    if (p)
        track(p, n, file, line);
    else if (n)  /* OLD is still there: known again, at the new site */
        track(old, was, file, line);
    return p;
}

static void on_free(void *p, const char *file, int line)
{
    (void)file;
    (void)line;
    untrack(p);
    free(p);
}

__attribute__((constructor)) static void install(void)
{
    /* Untouched pages cost nothing: the table is as large as it is sparse. */
    tab = mmap(NULL, SLOTS * sizeof(*tab), PROT_READ | PROT_WRITE,
               MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (tab == MAP_FAILED || !CRYPTO_set_mem_functions(on_malloc, on_realloc, on_free)) {
        fprintf(stderr, "ossl_allocs: not installed (OpenSSL allocated already?)\n");
        abort();
    }
}

void ossl_allocs_mark(void) { mark_seq = seq; }

long ossl_allocs_heap(void) { return (long)mallinfo2().uordblks; }

static int by_chunk(const void *a, const void *b)
{
    long x = ((const struct site *)a)->chunk, y = ((const struct site *)b)->chunk;
    return (x < y) - (x > y);
}

void ossl_allocs_dump(const char *path)
{
    static struct site sites[SITES];
    int n = 0;
    for (size_t i = 0; i < SLOTS; i++) {
        const struct live *e = &tab[i];
        if (!e->p || e->p == TOMB || e->seq <= mark_seq)
            continue;
        int k = 0;
        while (k < n && (sites[k].file != e->file || sites[k].line != e->line))
            k++;
        if (k == n) {
            if (n == SITES)
                continue;
            sites[n++] = (struct site){e->file, e->line, 0, 0, 0};
        }
        sites[k].count++;
        sites[k].bytes += (long)e->n;
        sites[k].chunk += (long)(malloc_usable_size(e->p) + 8);
    }
    qsort(sites, (size_t)n, sizeof(*sites), by_chunk);
    FILE *f = fopen(path, "w");
    for (int k = 0; f && k < n; k++)
        fprintf(f, "%ld %ld %ld %s:%d\n", sites[k].count, sites[k].bytes, sites[k].chunk,
                sites[k].file, sites[k].line);
    if (f)
        fclose(f);
}
