/* Reading rows of the directive table: lookup, argument counts, the generic
 * setters (duration, size, integer, enum, word, host, path, flag), options
 * and defaults. A row's value goes to its offset in the object of its
 * context, written with the width of the field it names. */
#include "conf/directive.h"
#include "conf/conf.h"
#include "conf/parser.h"
#include "conf/values.h"
#include "base/util.h"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

const struct conf_directive *conf_dir_find(const char *name, unsigned ctx, bool *elsewhere)
{
    *elsewhere = false;
    for (size_t i = 0; i < conf_ndirectives; i++) {
        const struct conf_directive *d = &conf_directives[i];
        if (d->parent || strcmp(d->name, name) != 0)
            continue;
        if (d->ctx & ctx)
            return d;
        *elsewhere = true;
    }
    return NULL;
}

static const struct conf_directive *option_find(const char *parent, const char *variant,
                                                const char *name)
{
    for (size_t i = 0; i < conf_ndirectives; i++) {
        const struct conf_directive *d = &conf_directives[i];
        if (d->parent && strcmp(d->parent, parent) == 0 && strcmp(d->name, name) == 0 &&
            (!d->only || (variant && strcmp(d->only, variant) == 0)))
            return d;
    }
    return NULL;
}

static int count_options(const char *parent)
{
    int n = 0;
    for (size_t i = 0; i < conf_ndirectives; i++)
        n += conf_directives[i].parent && strcmp(conf_directives[i].parent, parent) == 0;
    return n;
}

void conf_dir_arity(const struct conf_directive *d, int *min, int *max)
{
    switch (d->kind) {
    case KIND_OPTIONS:
        *min = 2;
        *max = 2 * count_options(d->name);
        return;
    case KIND_CUSTOM:
    case KIND_BLOCK:
        *min = d->min_args;
        *max = d->max_args;
        return;
    case KIND_FLAG:
        *min = *max = 0;
        return;
    case KIND_DURATION:
    case KIND_SIZE:
    case KIND_INT:
    case KIND_ENUM:
    case KIND_WORD:
    case KIND_HOST:
    case KIND_PATH:
        break;
    }
    *min = *max = 1;
}

/* ---- fields ---- */

static void *field(const struct conf_directive *d, void *obj)
{
    return (char *)obj + d->offset;
}

static void store_int(const struct conf_directive *d, void *obj, long long v)
{
    void *at = field(d, obj);
    switch (d->width) {
    case 1: { bool b = v != 0; memcpy(at, &b, 1); return; }
    case 4: { int32_t i = (int32_t)v; memcpy(at, &i, 4); return; }
    case 8: { int64_t i = v; memcpy(at, &i, 8); return; }
    }
}

long long conf_field_int(const struct conf_directive *d, const void *obj)
{
    const char *at = (const char *)obj + d->offset;
    switch (d->width) {
    case 1: { bool b; memcpy(&b, at, 1); return b; }
    case 4: { int32_t i; memcpy(&i, at, 4); return i; }
    case 8: { int64_t i; memcpy(&i, at, 8); return i; }
    }
    return 0;
}

double conf_field_double(const struct conf_directive *d, const void *obj)
{
    double v;
    memcpy(&v, (const char *)obj + d->offset, sizeof(v));
    return v;
}

const char *conf_field_str(const struct conf_directive *d, const void *obj)
{
    const char *s;
    memcpy(&s, (const char *)obj + d->offset, sizeof(s));
    return s;
}

static void store_str(const struct conf_directive *d, void *obj, const char *s)
{
    memcpy(field(d, obj), &s, sizeof(s));
}

/* ---- one setter per kind of value ---- */

static int set_duration(struct parser *p, const struct conf_directive *d, const struct stmt *st,
                        int i, void *obj)
{
    double v;
    if (conf_value_unitless(ARG(i)))
        return conf_bad_value(p, st, i, "a duration needs a unit: ms, s, m, h or d (as in 500ms)");
    bool positive = d->flags & F_POSITIVE;
    if (conf_parse_duration(ARG(i), &v) != EG_OK || (positive && v <= 0))
        return conf_bad_value(p, st, i, positive
                                            ? "expected a duration above zero such as 500ms, 2s, 1m"
                                            : "expected a duration such as 500ms, 2s, 1m, 1h");
    if (v < d->min) {
        char lo[32], what[64];
        conf_format_duration(d->min, lo, sizeof(lo));
        snprintf(what, sizeof(what), "expected a duration of at least %s", lo);
        return conf_bad_value(p, st, i, what);
    }
    memcpy(field(d, obj), &v, sizeof(v));
    return EG_OK;
}

static int set_size(struct parser *p, const struct conf_directive *d, const struct stmt *st,
                    int i, void *obj)
{
    size_t v;
    if (conf_value_unitless(ARG(i)))
        return conf_bad_value(p, st, i, "a size needs a unit: b, k, m or g (as in 512b or 16k)");
    if (conf_parse_size(ARG(i), &v) != EG_OK || v < d->min || v > d->max) {
        char lo[32], hi[32], what[96];
        conf_format_size((size_t)d->min, lo, sizeof(lo));
        conf_format_size((size_t)d->max, hi, sizeof(hi));
        snprintf(what, sizeof(what), "expected a size from %s to %s", lo, hi);
        return conf_bad_value(p, st, i, what);
    }
    store_int(d, obj, (long long)v);
    return EG_OK;
}

static int set_int(struct parser *p, const struct conf_directive *d, const struct stmt *st,
                   int i, void *obj)
{
    long v;
    if (d->zero && strcmp(ARG(i), d->zero) == 0) {
        store_int(d, obj, 0);
        return EG_OK;
    }
    if (conf_parse_long(ARG(i), (long)d->min, (long)d->max, &v) != EG_OK) {
        char what[96];
        snprintf(what, sizeof(what), "expected an integer from %ld to %ld%s%s", (long)d->min,
                 (long)d->max, d->zero ? " or " : "", d->zero ? d->zero : "");
        return conf_bad_value(p, st, i, what);
    }
    store_int(d, obj, v);
    return EG_OK;
}

void conf_enum_join(const struct conf_enum *v, char *buf, size_t len)
{
    size_t n = 0;
    buf[0] = '\0';
    for (int k = 0; v[k].name && n < len; k++)
        n += (size_t)snprintf(buf + n, len - n, "%s%s", k == 0 ? "" : v[k + 1].name ? ", " : " or ",
                              v[k].name);
}

int conf_enum_value(const struct conf_enum *v, const char *name)
{
    for (; v->name; v++)
        if (strcmp(v->name, name) == 0)
            return v->value;
    return -1;
}

const char *conf_enum_name(const struct conf_enum *v, int value)
{
    for (; v->name; v++)
        if (v->value == value)
            return v->name;
    return "?";
}

static int set_enum(struct parser *p, const struct conf_directive *d, const struct stmt *st,
                    int i, void *obj)
{
    int v = conf_enum_value(d->values, ARG(i));
    if (v < 0) {
        char names[128], what[160];
        conf_enum_join(d->values, names, sizeof(names));
        snprintf(what, sizeof(what), "expected %s", names);
        return conf_bad_value(p, st, i, what);
    }
    store_int(d, obj, v);
    return EG_OK;
}

static int set_word(struct parser *p, const struct conf_directive *d, const struct stmt *st,
                    int i, void *obj)
{
    for (const char *s = ARG(i); *s; s++)
        if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f)
            return conf_bad_value(p, st, i, "expected printable characters without spaces");
    char what[64];
    if (st->args[i].len < (size_t)d->min) {
        snprintf(what, sizeof(what), "expected at least %d characters", (int)d->min);
        return conf_bad_value(p, st, i, what);
    }
    if (d->max > 0 && st->args[i].len > (size_t)d->max) {
        snprintf(what, sizeof(what), "expected at most %d characters", (int)d->max);
        return conf_bad_value(p, st, i, what);
    }
    store_str(d, obj, ARG(i));
    return EG_OK;
}

bool conf_host_valid(const char *h)
{
    /* A DNS name or an address literal; nothing that could smuggle bytes
     * into a Host header or a log line. */
    for (const char *s = h; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '-' && *s != '.' && *s != ':' && *s != '_')
            return false;
    return *h != '\0';
}

int conf_name_arg(struct parser *p, const struct stmt *st, int i)
{
    const char *s = ARG(i);
    size_t n = st->args[i].len;
    if (n == 0 || n >= CONF_NAME_MAX)
        return conf_bad_value(p, st, i, "expected a name of 1 to 63 characters");
    for (size_t k = 0; k < n; k++)
        if (!isalnum((unsigned char)s[k]) && s[k] != '-' && s[k] != '_' && s[k] != '.')
            return conf_bad_value(p, st, i, "a name holds letters, digits, '-', '_' and '.'");
    return EG_OK;
}

static int set_host(struct parser *p, const struct conf_directive *d, const struct stmt *st,
                    int i, void *obj)
{
    if (!conf_host_valid(ARG(i)))
        return conf_bad_value(p, st, i, "expected a host name");
    store_str(d, obj, ARG(i));
    return EG_OK;
}

static int set_path(struct parser *p, const struct conf_directive *d, const struct stmt *st,
                    int i, void *obj)
{
    if ((d->flags & F_ABSOLUTE) && ARG(i)[0] != '/')
        return conf_bad_value(p, st, i, "expected an absolute file path");
    if (ARG(i)[0] == '\0')
        return conf_bad_value(p, st, i, "expected a file name");
    store_str(d, obj, ARG(i));
    return EG_OK;
}

/* Argument I of ST is the value of D: parse it into OBJ. */
static int set_value(struct parser *p, const struct conf_directive *d, const struct stmt *st,
                     int i, void *obj)
{
    switch (d->kind) {
    case KIND_DURATION: return set_duration(p, d, st, i, obj);
    case KIND_SIZE: return set_size(p, d, st, i, obj);
    case KIND_INT: return set_int(p, d, st, i, obj);
    case KIND_ENUM: return set_enum(p, d, st, i, obj);
    case KIND_WORD: return set_word(p, d, st, i, obj);
    case KIND_HOST: return set_host(p, d, st, i, obj);
    case KIND_PATH: return set_path(p, d, st, i, obj);
    case KIND_FLAG: store_int(d, obj, 1); return EG_OK;
    case KIND_OPTIONS: return conf_dir_options(p, st, i, d->name, NULL, obj);
    case KIND_CUSTOM: return d->set(p, st, obj);
    case KIND_BLOCK: break;
    }
    return EG_ERR;
}

int conf_dir_run(struct parser *p, const struct conf_directive *d, const struct stmt *st,
                 void *obj)
{
    if (set_value(p, d, st, 0, obj) != EG_OK)
        return EG_ERR;
    if (d->has_loc)
        memcpy((char *)obj + d->loc, &(struct conf_loc){st->file, st->line},
               sizeof(struct conf_loc));
    return EG_OK;
}

/* ---- options ---- */

/* "expected interval, timeout, rise or fall": the options PARENT takes after
 * VARIANT. Their values are named only when some take none (server ... tls). */
static void options_expected(const char *parent, const char *variant, char *buf, size_t len)
{
    const struct conf_directive *opts[32];
    int n = 0;
    bool flags = false;
    for (size_t i = 0; i < conf_ndirectives && n < (int)ARRAY_LEN(opts); i++) {
        const struct conf_directive *d = &conf_directives[i];
        if (d->parent && strcmp(d->parent, parent) == 0 && option_find(parent, variant, d->name))
            opts[n++] = d, flags |= d->kind == KIND_FLAG;
    }
    size_t used = (size_t)snprintf(buf, len, "expected");
    for (int k = 0; k < n && used < len; k++) {
        char args[64];
        bool named = flags && opts[k]->kind != KIND_FLAG;
        used += (size_t)snprintf(buf + used, len - used, "%s %s%s%s",
                                 k == 0 ? "" : k == n - 1 ? " or" : ",", opts[k]->name,
                                 named ? " " : "",
                                 named ? conf_dir_args(opts[k], args, sizeof(args)) : "");
    }
}

int conf_dir_options(struct parser *p, const struct stmt *st, int first, const char *parent,
                     const char *variant, void *obj)
{
    for (int i = first; i < st->nargs;) {
        const struct conf_directive *o = option_find(parent, variant, ARG(i));
        if (!o) {
            char what[256];
            options_expected(parent, variant, what, sizeof(what));
            return conf_bad_value(p, st, i, what);
        }
        if (o->kind != KIND_FLAG && i + 1 >= st->nargs) {
            conf_perr_at(p, st->file, st->args[i].line, "\"%s\": \"%s\" needs a value", st->name,
                         ARG(i));
            return EG_ERR;
        }
        if (set_value(p, o, st, i + (o->kind != KIND_FLAG), obj) != EG_OK)
            return EG_ERR;
        i += o->kind == KIND_FLAG ? 1 : 2;
    }
    return EG_OK;
}

/* ---- defaults ---- */

/* Sets D to its default, read as if written in a file at AT's place. */
static void set_default(struct parser *p, const struct conf_directive *d, void *obj,
                        const struct stmt *at)
{
    struct stmt st = {.name = d->parent ? d->parent : d->name, .file = at->file,
                      .line = at->line, .nargs = 1, .ctx = at->ctx, .idx = at->idx};
    size_t len = strlen(d->def);
    char *s = conf_arena_strndup(&p->conf->arena, d->def, len); /* kept by string fields */
    st.args[0] = (struct tok){.type = TOK_WORD, .line = at->line, .s = s, .len = len};
    if (set_value(p, d, &st, 0, obj) != EG_OK)
        conf_perr_at(p, at->file, at->line, "the default of \"%s\" is invalid (a bug)", d->name);
}

static bool is_options_of_ctx(const char *parent, unsigned ctx)
{
    bool elsewhere;
    const struct conf_directive *d = conf_dir_find(parent, ctx, &elsewhere);
    return d && d->kind == KIND_OPTIONS;
}

void conf_dir_defaults(struct parser *p, unsigned ctx, void *obj, const struct stmt *at)
{
    for (size_t i = 0; i < conf_ndirectives; i++) {
        const struct conf_directive *d = &conf_directives[i];
        if (!d->def)
            continue;
        if (d->parent ? is_options_of_ctx(d->parent, ctx) : d->ctx == ctx)
            set_default(p, d, obj, at);
    }
}

void conf_dir_option_defaults(struct parser *p, const char *parent, void *obj,
                              const struct stmt *at)
{
    for (size_t i = 0; i < conf_ndirectives; i++) {
        const struct conf_directive *d = &conf_directives[i];
        if (d->def && d->parent && strcmp(d->parent, parent) == 0)
            set_default(p, d, obj, at);
    }
}

/* ---- synopsis ---- */

const char *conf_dir_args(const struct conf_directive *d, char *buf, size_t len)
{
    if (d->args)
        snprintf(buf, len, "%s", d->args);
    else if (d->kind == KIND_ENUM) {
        size_t n = 0;
        buf[0] = '\0';
        for (const struct conf_enum *v = d->values; v->name && n < len; v++)
            n += (size_t)snprintf(buf + n, len - n, "%s%s", v == d->values ? "" : "|", v->name);
    } else {
        static const char *const metavar[] = {
            [KIND_DURATION] = "D", [KIND_SIZE] = "SIZE", [KIND_INT] = "N",
            [KIND_WORD] = "WORD", [KIND_HOST] = "NAME", [KIND_PATH] = "FILE",
        };
        const char *m = (size_t)d->kind < ARRAY_LEN(metavar) ? metavar[d->kind] : NULL;
        snprintf(buf, len, "%s%s%s", m ? m : "", d->zero ? "|" : "", d->zero ? d->zero : "");
    }
    return buf;
}
