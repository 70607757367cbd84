/* The directive table: one row per directive (and per option of a directive
 * such as `check ... interval D`), saying where it may appear, what its
 * arguments are, their bounds and default, where the value goes and what it
 * means. The parser, the defaults, -T and the reference all read these rows;
 * adding a directive is adding a row (and a handler only when its syntax is
 * its own). */
#ifndef EG_CONF_DIRECTIVE_H
#define EG_CONF_DIRECTIVE_H

#include "conf/conf-types.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

struct parser;
struct stmt;
struct conf_directive;

/* Where a directive may appear. */
enum conf_ctx { CTX_MAIN = 1, CTX_DC = 2, CTX_LSN = 4, CTX_REDIS = 8 };
#define CTX_ANY (CTX_MAIN | CTX_DC | CTX_LSN | CTX_REDIS)

enum conf_kind {
    KIND_DURATION,  /* double, seconds */
    KIND_SIZE,      /* bytes, in a size_t or a uint32_t */
    KIND_INT,       /* an int or a size_t */
    KIND_ENUM,      /* one word of a list (on|off included), stored as its value */
    KIND_WORD,      /* printable text without spaces: tokens, names, prefixes */
    KIND_HOST,      /* a DNS name or an address literal */
    KIND_PATH,      /* a file name */
    KIND_FLAG,      /* an option without a value: sets a bool */
    KIND_OPTIONS,   /* `NAME KEY VALUE ...`: the rows naming it as parent */
    KIND_CUSTOM,    /* a handler reads the arguments */
    KIND_BLOCK,     /* a handler opens a block of another context */
};

enum conf_flag {
    F_POSITIVE = 1, /* durations: above zero */
    F_ABSOLUTE = 2, /* paths: absolute */
    F_REPEAT = 4,   /* each occurrence adds one more (server, listen, tls) */
};

struct conf_enum {
    const char *name;
    int value;
};

#define CONF_ANY_ARGS (-1)

/* A handler reads the statement ST into OBJ, the object of the context it is
 * in, and returns EG_OK or EG_ERR (after reporting). */
typedef int conf_set_fn(struct parser *p, const struct stmt *st, void *obj);
/* A block opener returns the index of the object its block fills, or EG_ERR. */
typedef int conf_open_fn(struct parser *p, const struct stmt *st);
/* Checks a block once it is closed. */
typedef void conf_close_fn(struct parser *p, void *obj);
/* Writes the directive as it would be configured, every occurrence of it in
 * OBJ, an object of configuration C. */
typedef void conf_print_fn(FILE *f, const struct conf_directive *d, const struct conf *c,
                           const void *obj, int indent);

struct conf_directive {
    const char *name;
    const char *parent;     /* an option of that directive, written after it */
    unsigned ctx;           /* enum conf_ctx bits; an option: its parent's */
    enum conf_kind kind;
    unsigned flags;         /* enum conf_flag bits */
    const char *args;       /* the arguments in words; generic kinds derive them */
    double min, max;        /* bounds: seconds, bytes, integers, word lengths */
    const char *zero;       /* integers: a word that stands for 0 ("auto") */
    const struct conf_enum *values;  /* enums, NULL-terminated */
    const char *only;       /* options: only after this first argument ("http") */
    const char *def;        /* the default as a file would write it; NULL: none */
    const char *def_doc;    /* the default in words, when no value states it */
    size_t offset, width;   /* where the value goes in the object of its context */
    bool has_loc;           /* record where it was written ... */
    size_t loc;             /* ... in this struct conf_loc of the object */
    int min_args, max_args; /* custom and block directives */
    unsigned block_ctx;     /* blocks: the context inside */
    conf_set_fn *set;
    conf_open_fn *open;
    conf_close_fn *close;
    conf_print_fn *print;
    const char *help;       /* what it means, one line */
};

/* A value's place in its object, for the table's rows. */
#define CONF_AT(type, field) \
    .offset = offsetof(type, field), .width = sizeof(((type *)0)->field)
#define CONF_LOC(type, field) .has_loc = true, .loc = offsetof(type, field)

extern const struct conf_directive conf_directives[];
extern const size_t conf_ndirectives;

/* The row of directive NAME (not an option) allowed in CTX. When there is
 * none, *ELSEWHERE tells whether NAME is allowed in another context. */
const struct conf_directive *conf_dir_find(const char *name, unsigned ctx, bool *elsewhere);
/* How many arguments D takes (CONF_ANY_ARGS: no limit). */
void conf_dir_arity(const struct conf_directive *d, int *min, int *max);
/* Runs the statement ST of directive D (not a block) on OBJ. */
int conf_dir_run(struct parser *p, const struct conf_directive *d, const struct stmt *st,
                 void *obj);
/* Reads `KEY VALUE` options of directive PARENT from argument FIRST on into
 * OBJ. VARIANT is the directive's first argument, for options given `only`. */
int conf_dir_options(struct parser *p, const struct stmt *st, int first, const char *parent,
                     const char *variant, void *obj);
/* Sets the defaults of the directives of context CTX, their options
 * included, in OBJ. AT is where the object was opened (for the handlers that
 * record a place). */
void conf_dir_defaults(struct parser *p, unsigned ctx, void *obj, const struct stmt *at);
/* Sets the defaults of the options of PARENT in OBJ (a check, a server). */
void conf_dir_option_defaults(struct parser *p, const char *parent, void *obj,
                              const struct stmt *at);
/* The value of D in OBJ: an integer of any width (bool and enums included),
 * a double, a string. */
long long conf_field_int(const struct conf_directive *d, const void *obj);
double conf_field_double(const struct conf_directive *d, const void *obj);
const char *conf_field_str(const struct conf_directive *d, const void *obj);
/* A DNS name or an address literal. */
bool conf_host_valid(const char *h);
/* Argument I of ST is a name of a datacenter or a listener; EG_ERR after
 * reporting. */
int conf_name_arg(struct parser *p, const struct stmt *st, int i);
/* The value of NAME in the list V, or -1. */
int conf_enum_value(const struct conf_enum *v, const char *name);
/* The name of VALUE in the list V, or "?". */
const char *conf_enum_name(const struct conf_enum *v, int value);
/* "a, b or c" */
void conf_enum_join(const struct conf_enum *v, char *buf, size_t len);
/* The argument synopsis of D ("D", "N|auto", "http|tcp", ...). */
const char *conf_dir_args(const struct conf_directive *d, char *buf, size_t len);

/* ---- printing (conf/print.c) ---- */

/* Every directive of context CTX in OBJ, in table order. */
void conf_print_rows(FILE *f, const struct conf *c, unsigned ctx, const void *obj, int indent);
/* " KEY VALUE" for every option of PARENT that OBJ sets. */
void conf_print_options(FILE *f, const char *parent, const char *variant, const void *obj);
void conf_print_indent(FILE *f, int indent);
/* S as one word, quoted when it has to be. */
void conf_print_word(FILE *f, const char *s);

#endif
