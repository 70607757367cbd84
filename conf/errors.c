/* Error lists: "FILE:LINE: message" lines, collected so that one -t run
 * reports every problem, logged or printed by the caller. */
#include "conf/errors.h"
#include "conf/conf.h"
#include "base/alloc.h"
#include "base/log.h"
#include "base/util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void conf_errs_vadd(struct conf_errs *e, const char *file, int line, const char *fmt,
                    va_list ap)
{
    char msg[1024];
    int n = snprintf(msg, sizeof(msg), "%s:%d: ", file, line);
    if (n < 0 || (size_t)n >= sizeof(msg) / 2) /* a very long path: keep room for the message */
        n = snprintf(msg, sizeof(msg), "...%s:%d: ", file + strlen(file) - 200, line);
    vsnprintf(msg + n, sizeof(msg) - (size_t)n, fmt, ap);
    size_t len = strlen(msg);
    if (e->len + len + 2 > e->cap) {
        size_t cap = MAX(e->cap * 2, e->len + len + 256);
        e->text = eg_realloc(e->text, cap);
        e->cap = cap;
    }
    memcpy(e->text + e->len, msg, len);
    e->len += len;
    e->text[e->len++] = '\n';
    e->text[e->len] = '\0';
    e->count++;
}

void conf_errs_add(struct conf_errs *e, const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    conf_errs_vadd(e, file, line, fmt, ap);
    va_end(ap);
}

void conf_errs_log(const struct conf_errs *e)
{
    const char *p = e->text;
    while (p && *p) {
        const char *nl = strchr(p, '\n');
        int len = nl ? (int)(nl - p) : (int)strlen(p);
        log_err("%.*s", len, p);
        p = nl ? nl + 1 : p + len;
    }
}

void conf_errs_free(struct conf_errs *e)
{
    free(e->text);
    memset(e, 0, sizeof(*e));
}
