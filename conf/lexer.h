/* The lexer: words (bare or quoted), ';', '{', '}' and the line each starts
 * on, from one file's bytes. Comments and blanks are skipped. */
#ifndef EG_CONF_LEXER_H
#define EG_CONF_LEXER_H

#include "conf/arena.h"

#include <stdbool.h>
#include <stddef.h>

enum tok_type { TOK_EOF, TOK_WORD, TOK_SEMI, TOK_LBRACE, TOK_RBRACE, TOK_ERROR };

struct tok {
    enum tok_type type;
    int line;
    char *s;        /* TOK_WORD: NUL-terminated, in the arena */
    size_t len;
};

struct lexer {
    const char *file;
    const char *p, *end;
    int line;
    struct conf_arena **arena;  /* where words are copied */
    char err[96];               /* TOK_ERROR: what is wrong */
    struct tok peeked;
    bool has_peek;
};

void conf_lex_init(struct lexer *lx, const char *file, const char *buf, size_t len,
                   struct conf_arena **arena);
/* The next token. After a TOK_ERROR the rest of the input is not trusted. */
struct tok conf_lex_next(struct lexer *lx);
/* Gives T back: the next conf_lex_next returns it. */
void conf_lex_unget(struct lexer *lx, struct tok t);
/* Bytes a bare word may hold; anything else must be quoted. */
bool conf_lex_word_byte(unsigned char c);

#endif
