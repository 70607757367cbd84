/* A growable string for building responses that are not on the hot path
 * (stats pages, error reports). */
#ifndef EG_BASE_STRBUF_H
#define EG_BASE_STRBUF_H

#include <stddef.h>

struct sbuf {
    char *s;
    size_t len, cap;
};

void sbuf_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sbuf_add(struct sbuf *b, const char *s, size_t n);
void sbuf_free(struct sbuf *b);

#endif
