/* The grammar: statements `name arg ...;` and blocks `name arg ... { ... }`,
 * read from the lexer of the file at hand and handed to the directive table.
 * The parser never stops at the first error (each one is reported as
 * FILE:LINE: message) unless the rest cannot be trusted. */
#ifndef EG_CONF_PARSER_H
#define EG_CONF_PARSER_H

#include "conf/conf-types.h"
#include "conf/lexer.h"

#include <stdbool.h>
#include <sys/types.h>

#define CONF_MAX_ARGS 64
#define CONF_MAX_INCLUDE_DEPTH 16

/* One statement: its name, arguments and where it stands. */
struct stmt {
    const char *name;
    const char *file;
    int line;
    struct tok args[CONF_MAX_ARGS];
    int nargs;
    unsigned ctx;           /* the context it is in (enum conf_ctx) */
    int idx;                /* the index of that context's object */
    int depth;              /* blocks around it */
};

#define ARG(i) (st->args[i].s)

/* A file being read, for include loops. */
struct conf_file_id {
    dev_t dev;
    ino_t ino;
};

struct parser {
    struct lexer *lx;       /* the file being read */
    struct conf *conf;
    struct conf_errs *errs;
    int nerrs;
    bool fatal;             /* stop parsing: the rest cannot be trusted */
    bool isolated;          /* an `include` is refused */
    struct conf_file_id reading[CONF_MAX_INCLUDE_DEPTH];
    int nreading;
    int nincluded;          /* files read by `include`, for a bound */
};

/* Reports an error at LINE of the file being read. */
void conf_perr(struct parser *p, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void conf_perr_at(struct parser *p, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* "NAME": WHAT, got "ARG i". Returns EG_ERR. */
int conf_bad_value(struct parser *p, const struct stmt *st, int i, const char *what);

/* The object of context CTX whose index is IDX (blocks hold indices: the
 * arrays they point into grow while the file is read). */
void *conf_obj(struct parser *p, unsigned ctx, int idx);
/* Reads statements from p->lx into context CTX until the end of the file or,
 * IN_BLOCK, the '}' closing the block opened at OPEN_LINE. */
void conf_parse_body(struct parser *p, unsigned ctx, int idx, int depth, int open_line,
                     bool in_block);

/* `include FILE|GLOB` (conf/include.c). */
int conf_include(struct parser *p, const struct stmt *st, void *obj);
/* Reads FILE whole; NULL with a reason in ERR. */
char *conf_read_file(const char *file, size_t *len, char *err, size_t errlen);

#endif
