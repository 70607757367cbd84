/* Lexer of the nginx-like grammar: `#` comments to the end of the line,
 * double or single quoted strings with \n, \t and \<any> escapes. It never
 * trusts its input (it is fuzzed): a NUL or a non-ASCII byte outside quotes is
 * an error, not a word. */
#include "conf/lexer.h"
#include "base/alloc.h"

#include <stdio.h>
#include <stdlib.h>

void conf_lex_init(struct lexer *lx, const char *file, const char *buf, size_t len,
                   struct conf_arena **arena)
{
    *lx = (struct lexer){.file = file, .p = buf, .end = buf + len, .line = 1, .arena = arena};
}

bool conf_lex_word_byte(unsigned char c)
{
    return c > 0x20 && c < 0x7f && c != ';' && c != '{' && c != '}' && c != '#' && c != '"' &&
           c != '\'';
}

static struct tok lex_error(struct lexer *lx, int line, const char *what)
{
    snprintf(lx->err, sizeof(lx->err), "%s", what);
    return (struct tok){.type = TOK_ERROR, .line = line};
}

/* The byte after a backslash inside quotes. */
static char unescape(struct lexer *lx, char c)
{
    if (c == '\n')
        lx->line++;
    return c == 'n' ? '\n' : c == 't' ? '\t' : c;
}

static struct tok lex_quoted(struct lexer *lx)
{
    int start = lx->line;
    char q = *lx->p++;
    size_t cap = 64, n = 0;
    char *tmp = eg_malloc(cap);
    while (lx->p < lx->end && *lx->p != q) {
        char c = *lx->p++;
        if (c == '\n')
            lx->line++;
        if (c == '\\' && lx->p < lx->end)
            c = unescape(lx, *lx->p++);
        if (c == '\0') {
            free(tmp);
            return lex_error(lx, lx->line, "NUL byte inside a quoted string");
        }
        if (n + 1 >= cap)
            tmp = eg_realloc(tmp, cap *= 2);
        tmp[n++] = c;
    }
    if (lx->p >= lx->end) {
        free(tmp);
        return lex_error(lx, start, "unterminated quoted string");
    }
    lx->p++;
    struct tok t = {.type = TOK_WORD, .line = start, .len = n};
    t.s = conf_arena_strndup(lx->arena, tmp, n);
    free(tmp);
    return t;
}

static void skip_blanks_and_comments(struct lexer *lx)
{
    for (;;) {
        while (lx->p < lx->end &&
               (*lx->p == ' ' || *lx->p == '\t' || *lx->p == '\r' || *lx->p == '\n')) {
            if (*lx->p == '\n')
                lx->line++;
            lx->p++;
        }
        if (lx->p >= lx->end || *lx->p != '#')
            return;
        while (lx->p < lx->end && *lx->p != '\n')
            lx->p++;
    }
}

struct tok conf_lex_next(struct lexer *lx)
{
    if (lx->has_peek) {
        lx->has_peek = false;
        return lx->peeked;
    }
    skip_blanks_and_comments(lx);
    struct tok t = {.line = lx->line};
    if (lx->p >= lx->end)
        return t; /* TOK_EOF */
    unsigned char c = (unsigned char)*lx->p;
    switch (c) {
    case ';': lx->p++; t.type = TOK_SEMI; return t;
    case '{': lx->p++; t.type = TOK_LBRACE; return t;
    case '}': lx->p++; t.type = TOK_RBRACE; return t;
    case '"':
    case '\'': return lex_quoted(lx);
    }
    if (!conf_lex_word_byte(c)) {
        char what[64];
        snprintf(what, sizeof(what), "invalid byte 0x%02x (the configuration is text)", c);
        return lex_error(lx, lx->line, what);
    }
    const char *s = lx->p;
    while (lx->p < lx->end && conf_lex_word_byte((unsigned char)*lx->p))
        lx->p++;
    t.type = TOK_WORD;
    t.len = (size_t)(lx->p - s);
    t.s = conf_arena_strndup(lx->arena, s, t.len);
    return t;
}

void conf_lex_unget(struct lexer *lx, struct tok t)
{
    lx->peeked = t;
    lx->has_peek = true;
}
