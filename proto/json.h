/* JSON (RFC 8259): a strict reader into a small tree, and a string writer.
 *
 * Used by the control API (request bodies, operator state kept in Redis)
 * and by edgegatectl (the answers it prints). Input comes from the network:
 * the reader checks everything RFC 8259 asks, limits nesting, and never
 * reads past the length it is given. */
#ifndef EG_PROTO_JSON_H
#define EG_PROTO_JSON_H

#include "base/strbuf.h"

#include <stdbool.h>
#include <stddef.h>

#define JSON_MAX_DEPTH 32

enum json_type { JSON_NULL, JSON_BOOL, JSON_NUM, JSON_STR, JSON_ARR, JSON_OBJ };

struct json_val {
    enum json_type type;
    bool b;
    double num;
    char *str;                  /* JSON_STR: decoded, NUL-terminated (no NUL inside) */
    size_t len;
    struct json_val *child;     /* arrays and objects: the first element or member */
    struct json_val *next;      /* the next element or member */
    char *key;                  /* a member's name, decoded */
    struct json_val *arena_next;/* every node of the document, to free them */
};

struct json_doc {
    struct json_val *root;
    struct json_val *nodes;     /* all nodes, for json_free */
    size_t count;
};

/* Parses the N bytes at S (one value, whitespace around it allowed). EG_OK
 * with DOC filled, or EG_ERR with ERR saying what and where. Either way
 * json_free(DOC) releases what it holds. */
int json_parse(const char *s, size_t n, struct json_doc *doc, char *err, size_t errlen);
void json_free(struct json_doc *doc);

/* The member KEY of object O, NULL when O is not an object or has none. */
const struct json_val *json_get(const struct json_val *o, const char *key);
/* Members of O that are not among the NULL-terminated KNOWN: the first such
 * name, or NULL. */
const char *json_unknown_key(const struct json_val *o, const char *const *known);

/* Appends S (N bytes) as a JSON string, quoted and escaped. */
void json_write_str(struct sbuf *b, const char *s, size_t n);

#endif
