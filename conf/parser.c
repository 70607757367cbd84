/* Configuration parser: the grammar and the entry points. Parsing is driven
 * by the directive table (conf/directives.c); this file knows statements,
 * blocks and errors, nothing of any directive. */
#include "conf/parser.h"
#include "conf/conf.h"
#include "conf/directive.h"
#include "conf/errors.h"
#include "conf/validate.h"
#include "base/alloc.h"
#include "base/util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define CONF_MAX_DEPTH 8
#define CONF_MAX_ERRORS 50

/* Past CONF_MAX_ERRORS the input is most likely not a configuration at all,
 * so parsing stops with one last line saying so. */
static void perr_v(struct parser *p, const char *file, int line, const char *fmt, va_list ap)
{
    if (p->nerrs >= CONF_MAX_ERRORS) {
        if (p->nerrs++ == CONF_MAX_ERRORS)
            conf_errs_add(p->errs, file, line, "too many errors, giving up");
        p->fatal = true;
        return;
    }
    p->nerrs++;
    conf_errs_vadd(p->errs, file, line, fmt, ap);
}

void conf_perr(struct parser *p, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    perr_v(p, p->lx ? p->lx->file : p->conf->file, line, fmt, ap);
    va_end(ap);
}

void conf_perr_at(struct parser *p, const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    perr_v(p, file, line, fmt, ap);
    va_end(ap);
}

int conf_bad_value(struct parser *p, const struct stmt *st, int i, const char *what)
{
    conf_perr_at(p, st->file, st->args[i].line, "\"%s\": %s, got \"%s\"", st->name, what,
                 ARG(i));
    return EG_ERR;
}

void *conf_obj(struct parser *p, unsigned ctx, int idx)
{
    switch ((enum conf_ctx)ctx) {
    case CTX_MAIN: return p->conf;
    case CTX_DC: return &p->conf->dcs[idx];
    case CTX_LSN: return &p->conf->lsns[idx];
    case CTX_REDIS: return &p->conf->redis;
    }
    return NULL;
}

static const char *ctx_name(unsigned ctx)
{
    switch ((enum conf_ctx)ctx) {
    case CTX_MAIN: return "at the top level";
    case CTX_DC: return "in a datacenter block";
    case CTX_LSN: return "in a listener block";
    case CTX_REDIS: return "in the redis block";
    }
    return "here";
}

/* The lexer found something that is not text: nothing after it is read. */
static void lex_failed(struct parser *p, struct tok t)
{
    conf_perr(p, t.line, "%s", p->lx->err);
    p->fatal = true;
}

/* Skips a block whose '{' was just read, including nested blocks. */
static void skip_block(struct parser *p)
{
    int level = 1;
    while (level > 0 && !p->fatal) {
        struct tok t = conf_lex_next(p->lx);
        if (t.type == TOK_ERROR)
            lex_failed(p, t);
        if (t.type == TOK_EOF || t.type == TOK_ERROR)
            return;
        if (t.type == TOK_LBRACE)
            level++;
        else if (t.type == TOK_RBRACE)
            level--;
    }
}

/* Reads the arguments of the statement in ST up to its terminator. Returns
 * the terminator token (';', '{', or what ended it too early). */
static struct tok read_args(struct parser *p, struct stmt *st)
{
    for (;;) {
        struct tok t = conf_lex_next(p->lx);
        if (t.type != TOK_WORD)
            return t;
        if (st->nargs == CONF_MAX_ARGS) {
            conf_perr(p, t.line, "\"%s\": too many arguments", st->name);
            continue;
        }
        st->args[st->nargs++] = t;
    }
}

/* The directive of ST in its context, with the right number of arguments
 * and a block exactly when it takes one; NULL after reporting. */
static const struct conf_directive *lookup(struct parser *p, const struct stmt *st,
                                           bool has_block)
{
    bool elsewhere;
    const struct conf_directive *d = conf_dir_find(st->name, st->ctx, &elsewhere);
    if (!d) {
        if (elsewhere)
            conf_perr(p, st->line, "\"%s\" is not allowed %s", st->name, ctx_name(st->ctx));
        else
            conf_perr(p, st->line, "unknown directive \"%s\"", st->name);
        return NULL;
    }
    bool is_block = d->kind == KIND_BLOCK;
    if (is_block && !has_block) {
        conf_perr(p, st->line, "\"%s\": expected \"{\" after its arguments", st->name);
        return NULL;
    }
    if (!is_block && has_block) {
        conf_perr(p, st->line, "\"%s\": missing \";\" (it takes no block)", st->name);
        return NULL;
    }
    int min, max;
    conf_dir_arity(d, &min, &max);
    if (st->nargs < min || (max != CONF_ANY_ARGS && st->nargs > max)) {
        conf_perr(p, st->line, "\"%s\": %s", st->name,
                  st->nargs < min ? "missing argument" : "too many arguments");
        return NULL;
    }
    return d;
}

static void run_block(struct parser *p, const struct conf_directive *d, const struct stmt *st)
{
    int idx = d->open(p, st);
    if (idx < 0) {
        skip_block(p);
        return;
    }
    conf_parse_body(p, d->block_ctx, idx, st->depth + 1, st->line, true);
    if (d->close && !p->fatal)
        d->close(p, conf_obj(p, d->block_ctx, idx));
}

static void run_stmt(struct parser *p, const struct stmt *st, struct tok term)
{
    bool has_block = term.type == TOK_LBRACE;
    const struct conf_directive *d = lookup(p, st, has_block);
    if (!d) {
        if (has_block)
            skip_block(p);
        return;
    }
    if (d->kind == KIND_BLOCK)
        run_block(p, d, st);
    else
        conf_dir_run(p, d, st, conf_obj(p, st->ctx, st->idx));
}

/* A token that cannot start a statement. Returns false when the body ends. */
static bool stray_token(struct parser *p, struct tok t, int open_line, bool in_block)
{
    switch (t.type) {
    case TOK_ERROR:
        lex_failed(p, t);
        return false;
    case TOK_EOF:
        if (in_block) {
            conf_perr(p, open_line, "the block opened here is not closed (unexpected end of file)");
            p->fatal = true;
        }
        return false;
    case TOK_RBRACE:
        if (in_block)
            return false;
        conf_perr(p, t.line, "unexpected \"}\"");
        return true;
    case TOK_SEMI:
        conf_perr(p, t.line, "unexpected \";\"");
        return true;
    case TOK_LBRACE:
        conf_perr(p, t.line, "unexpected \"{\"");
        skip_block(p);
        return true;
    case TOK_WORD:
        break;
    }
    return true;
}

void conf_parse_body(struct parser *p, unsigned ctx, int idx, int depth, int open_line,
                     bool in_block)
{
    if (depth > CONF_MAX_DEPTH) {
        conf_perr(p, open_line, "blocks nested too deeply");
        p->fatal = true;
        return;
    }
    while (!p->fatal) {
        struct tok t = conf_lex_next(p->lx);
        if (t.type != TOK_WORD) {
            if (!stray_token(p, t, open_line, in_block))
                return;
            continue;
        }
        struct stmt *st = eg_calloc(1, sizeof(*st));
        *st = (struct stmt){.name = t.s, .file = p->lx->file, .line = t.line, .ctx = ctx,
                            .idx = idx, .depth = depth};
        struct tok term = read_args(p, st);
        if (term.type == TOK_EOF || term.type == TOK_RBRACE) {
            conf_perr(p, st->line, "\"%s\": missing \";\"", st->name);
            conf_lex_unget(p->lx, term);
        } else if (term.type == TOK_ERROR) {
            conf_lex_unget(p->lx, term); /* reported as the body's next token */
        } else {
            run_stmt(p, st, term);
        }
        free(st);
    }
}

/* ---- entry points ---- */

static struct conf *conf_new(const char *file)
{
    struct conf_arena *arena = NULL;
    struct conf *c = conf_arena_alloc(&arena, sizeof(*c));
    c->arena = arena;
    c->file = conf_arena_strndup(&c->arena, file, strlen(file));
    return c;
}

/* The main file counts as being read, so that including it is a loop. */
static void push_main_file(struct parser *p)
{
    struct stat sb;
    if (!p->isolated && stat(p->conf->file, &sb) == 0)
        p->reading[p->nreading++] = (struct conf_file_id){sb.st_dev, sb.st_ino};
}

static struct conf *parse(const char *file, const char *buf, size_t len, bool isolated,
                          struct conf_errs *errs)
{
    struct conf *c = conf_new(file);
    struct parser p = {.conf = c, .errs = errs, .isolated = isolated};
    struct stmt at = {.name = "(defaults)", .file = c->file};
    conf_dir_defaults(&p, CTX_MAIN, c, &at);
    conf_dir_defaults(&p, CTX_REDIS, &c->redis, &at);
    struct lexer lx;
    conf_lex_init(&lx, c->file, buf, len, &c->arena);
    p.lx = &lx;
    push_main_file(&p);
    if (len == 0 || memchr(buf, '\0', len))
        conf_perr(&p, 1, len == 0 ? "the file is empty" : "the file holds a NUL byte (not text)");
    else
        conf_parse_body(&p, CTX_MAIN, 0, 0, 1, false);
    /* Cross references are checked even after syntax errors, so that one -t
     * run reports everything it can. */
    if (!p.fatal)
        conf_validate(&p, MAX(1, lx.line - (len > 0 && buf[len - 1] == '\n')));
    if (p.nerrs > 0) {
        conf_free(c);
        return NULL;
    }
    return c;
}

struct conf *conf_parse(const char *file, const char *buf, size_t len, struct conf_errs *errs)
{
    return parse(file, buf, len, false, errs);
}

struct conf *conf_parse_isolated(const char *file, const char *buf, size_t len,
                                 struct conf_errs *errs)
{
    return parse(file, buf, len, true, errs);
}

struct conf *conf_load(const char *file, struct conf_errs *errs)
{
    char why[EG_ERRLEN];
    size_t len;
    char *buf = conf_read_file(file, &len, why, sizeof(why));
    if (!buf) {
        conf_errs_add(errs, file, 0, "cannot read the configuration: %s", why);
        return NULL;
    }
    struct conf *c = conf_parse(file, buf, len, errs);
    free(buf);
    return c;
}

void conf_free(struct conf *c)
{
    if (c)
        conf_arena_free(c->arena);
}
