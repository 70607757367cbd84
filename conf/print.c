/* The effective configuration (edgegate -T): every directive of the table in
 * table order, defaults included, written so that parsing the output gives
 * the same configuration. Included files are flattened into one. */
#include "conf/conf.h"
#include "conf/directive.h"
#include "conf/lexer.h"
#include "conf/values.h"

#include <string.h>

void conf_print_indent(FILE *f, int indent)
{
    for (int i = 0; i < indent; i++)
        fputs("    ", f);
}

void conf_print_word(FILE *f, const char *s)
{
    bool bare = *s != '\0';
    for (const char *k = s; *k && bare; k++)
        bare = conf_lex_word_byte((unsigned char)*k);
    if (bare) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fputc('\\', f);
        if (*s == '\n')
            fputs("\\n", f);
        else
            fputc(*s, f);
    }
    fputc('"', f);
}

/* Is there something to print for D? A default always is; without one, an
 * unset value (no string, 0, off) is the directive left out. */
static bool is_set(const struct conf_directive *d, const void *obj)
{
    if (d->def)
        return true;
    switch (d->kind) {
    case KIND_WORD:
    case KIND_HOST:
    case KIND_PATH:
        return conf_field_str(d, obj) != NULL;
    case KIND_DURATION:
        return conf_field_double(d, obj) != 0;
    case KIND_SIZE:
    case KIND_INT:
    case KIND_ENUM:
    case KIND_FLAG:
        return conf_field_int(d, obj) != 0;
    case KIND_OPTIONS:
    case KIND_CUSTOM:
    case KIND_BLOCK:
        break;
    }
    return false;
}

static void print_value(FILE *f, const struct conf_directive *d, const void *obj)
{
    char buf[64];
    long long v;
    switch (d->kind) {
    case KIND_DURATION:
        conf_format_duration(conf_field_double(d, obj), buf, sizeof(buf));
        fputs(buf, f);
        return;
    case KIND_SIZE:
        conf_format_size((size_t)conf_field_int(d, obj), buf, sizeof(buf));
        fputs(buf, f);
        return;
    case KIND_INT:
        v = conf_field_int(d, obj);
        if (v == 0 && d->zero)
            fputs(d->zero, f);
        else
            fprintf(f, "%lld", v);
        return;
    case KIND_ENUM:
        fputs(conf_enum_name(d->values, (int)conf_field_int(d, obj)), f);
        return;
    case KIND_WORD:
    case KIND_HOST:
    case KIND_PATH:
        conf_print_word(f, conf_field_str(d, obj));
        return;
    case KIND_FLAG:
    case KIND_OPTIONS:
    case KIND_CUSTOM:
    case KIND_BLOCK:
        return;
    }
}

void conf_print_options(FILE *f, const char *parent, const char *variant, const void *obj)
{
    for (size_t i = 0; i < conf_ndirectives; i++) {
        const struct conf_directive *o = &conf_directives[i];
        if (!o->parent || strcmp(o->parent, parent) != 0 || !is_set(o, obj))
            continue;
        if (o->only && (!variant || strcmp(o->only, variant) != 0))
            continue;
        fprintf(f, " %s", o->name);
        if (o->kind != KIND_FLAG) {
            fputc(' ', f);
            print_value(f, o, obj);
        }
    }
}

void conf_print_rows(FILE *f, const struct conf *c, unsigned ctx, const void *obj, int indent)
{
    for (size_t i = 0; i < conf_ndirectives; i++) {
        const struct conf_directive *d = &conf_directives[i];
        if (d->parent || d->ctx != ctx)
            continue;
        if (d->print) {
            d->print(f, d, c, obj, indent);
            continue;
        }
        if (d->kind != KIND_OPTIONS && !is_set(d, obj))
            continue;
        conf_print_indent(f, indent);
        fputs(d->name, f);
        if (d->kind == KIND_OPTIONS) {
            conf_print_options(f, d->name, NULL, obj);
        } else {
            fputc(' ', f);
            print_value(f, d, obj);
        }
        fputs(";\n", f);
    }
}

void conf_print(FILE *f, const struct conf *c)
{
    fputs("# ", f);
    conf_print_word(f, c->file);
    fputs(" with every default filled in (edgegate -T)\n", f);
    conf_print_rows(f, c, CTX_MAIN, c, 0);
}
