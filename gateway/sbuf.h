/* A growable string for building responses that are not on the hot path
 * (stats pages, error reports). */
#ifndef EG_SBUF_H
#define EG_SBUF_H

#include <stddef.h>

struct sbuf {
    char *s;
    size_t len, cap;
};

void sbuf_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sbuf_add(struct sbuf *b, const char *s, size_t n);
/* Appends S as the body of a JSON string (no quotes). */
void sbuf_json_str(struct sbuf *b, const char *s);
/* Appends S with HTML special characters escaped. */
void sbuf_html_str(struct sbuf *b, const char *s);
void sbuf_free(struct sbuf *b);

#endif
