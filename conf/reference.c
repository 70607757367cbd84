/* The configuration reference, generated from the directive table in two
 * forms: Markdown (docs/configuration.md) and a man page (edgegate.conf(5)).
 * The text around the tables is written once, with `code` marked as in
 * Markdown, and rendered to both. */
#include "conf/conf.h"
#include "conf/directive.h"
#include "conf/values.h"
#include "base/util.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

enum ref_format { REF_MD, REF_MAN };

static const char *const intro[] = {
    "edgegate reads one file (`-c FILE`, default `/etc/edgegate/edgegate.conf`) and the files "
    "it includes. The grammar is nginx's: a statement is `name argument ...;`, a block is "
    "`name argument ... { statements }`, `#` starts a comment that ends with the line, and an "
    "argument holding blanks or any of `;{}#'\"` is quoted with double or single quotes "
    "(inside them, `\\n` is a newline, `\\t` a tab, and a backslash keeps the next byte as it "
    "is).",
    "Durations take a unit: `ms`, `s`, `m`, `h` or `d` (`500ms`, `1.5s`, at most `365d`). "
    "Sizes take one too: `b`, `k`, `m` or `g`, powers of 1024 (`512b`, `16k`). A number "
    "without its unit is an error (`interval 500` would be read as seconds by some and as "
    "milliseconds by others); only `0` may go without one. Integers are decimal, switches are "
    "`on` or `off`.",
    "Unknown directives, directives out of place, missing or extra arguments, bad values and "
    "references to unknown names are errors reported as `FILE:LINE: message`, all of them in "
    "one run. `edgegate -t` checks a file (certificates, log and pid files included); "
    "`edgegate -T` checks it and prints the configuration with every default filled in and "
    "every include expanded.",
    "Options are written after their directive, in any order: `check http /health interval "
    "500ms fall 2`. A directive marked repeatable adds one more each time it is written; any "
    "other one written twice keeps its last value.",
};

static const struct section {
    unsigned ctx;
    const char *title;
} sections[] = {
    {CTX_ANY, "Anywhere"},
    {CTX_MAIN, "Top level"},
    {CTX_REDIS, "`redis` block"},
    {CTX_DC, "`datacenter` block"},
    {CTX_LSN, "`listener` block"},
};

/* Text with `code` spans: Markdown as is, bold in a man page, with what
 * troff would read as requests or escapes escaped. */
static void put_text(FILE *f, enum ref_format fmt, const char *s)
{
    if (fmt == REF_MD) {
        fputs(s, f);
        return;
    }
    bool code = false;
    if (*s == '.' || *s == '\'')
        fputs("\\&", f);
    for (; *s; s++) {
        if (*s == '`')
            fputs((code = !code) ? "\\fB" : "\\fR", f);
        else if (*s == '\\')
            fputs("\\e", f);
        else if (*s == '-' && code)
            fputs("\\-", f);
        else
            fputc(*s, f);
    }
}

/* A table cell: its pipes are escaped, or they would end it. */
static void put_cell(FILE *f, const char *s)
{
    fputs(" ", f);
    for (; *s; s++) {
        if (*s == '|')
            fputc('\\', f);
        fputc(*s, f);
    }
    fputs(" |", f);
}

/* "`check` ... `interval`" for an option, "`listen`" for a directive. */
static void name_of(const struct conf_directive *d, char *buf, size_t len)
{
    if (d->parent)
        snprintf(buf, len, "`%s` ... `%s`", d->parent, d->name);
    else
        snprintf(buf, len, "`%s`", d->name);
}

/* "`SIZE`, 4k to 1m": the arguments and the bounds of their values. */
static void args_of(const struct conf_directive *d, char *buf, size_t len)
{
    char syn[96], lo[32], hi[32], bounds[96] = "";
    conf_dir_args(d, syn, sizeof(syn));
    if (d->kind == KIND_INT)
        snprintf(bounds, sizeof(bounds), ", %ld to %ld", (long)d->min, (long)d->max);
    if (d->kind == KIND_SIZE) {
        conf_format_size((size_t)d->min, lo, sizeof(lo));
        conf_format_size((size_t)d->max, hi, sizeof(hi));
        snprintf(bounds, sizeof(bounds), ", %s to %s", lo, hi);
    }
    if (d->kind == KIND_DURATION && d->min > 0) {
        conf_format_duration(d->min, lo, sizeof(lo));
        snprintf(bounds, sizeof(bounds), ", at least %s", lo);
    } else if (d->kind == KIND_DURATION && (d->flags & F_POSITIVE)) {
        snprintf(bounds, sizeof(bounds), ", above 0");
    }
    if (d->kind == KIND_WORD && d->min > 0)
        snprintf(bounds, sizeof(bounds), ", at least %d characters", (int)d->min);
    if (d->kind == KIND_WORD && d->max > 0)
        snprintf(bounds, sizeof(bounds), ", at most %d characters", (int)d->max);
    if (d->flags & F_ABSOLUTE)
        snprintf(bounds, sizeof(bounds), ", absolute");
    if (syn[0])
        snprintf(buf, len, "`%s`%s", syn, bounds);
    else
        snprintf(buf, len, "no value");
}

static void default_of(const struct conf_directive *d, char *buf, size_t len)
{
    if (d->def)
        snprintf(buf, len, "`%s`", d->def);
    else
        snprintf(buf, len, "%s", d->def_doc ? d->def_doc : "");
}

static void meaning_of(const struct conf_directive *d, char *buf, size_t len)
{
    snprintf(buf, len, "%s%s", d->help, (d->flags & F_REPEAT) ? " (repeatable)" : "");
}

static bool in_section(const struct conf_directive *d, unsigned ctx)
{
    return ctx == CTX_ANY ? d->ctx == CTX_ANY : d->ctx == ctx;
}

static void md_row(FILE *f, const struct conf_directive *d)
{
    char cell[512];
    fputs("|", f);
    name_of(d, cell, sizeof(cell));
    put_cell(f, cell);
    args_of(d, cell, sizeof(cell));
    put_cell(f, cell);
    default_of(d, cell, sizeof(cell));
    put_cell(f, cell);
    meaning_of(d, cell, sizeof(cell));
    put_cell(f, cell);
    fputs("\n", f);
}

static void man_entry(FILE *f, const struct conf_directive *d)
{
    char cell[512];
    fputs(".TP\n", f);
    name_of(d, cell, sizeof(cell));
    put_text(f, REF_MAN, cell);
    fputs(" ", f);
    args_of(d, cell, sizeof(cell));
    put_text(f, REF_MAN, cell);
    fputs("\n", f);
    meaning_of(d, cell, sizeof(cell));
    put_text(f, REF_MAN, cell);
    default_of(d, cell, sizeof(cell));
    if (cell[0]) {
        fputs(". Default: ", f);
        put_text(f, REF_MAN, cell);
    }
    fputs(".\n", f);
}

static void section(FILE *f, enum ref_format fmt, const struct section *s)
{
    if (fmt == REF_MD) {
        fprintf(f, "\n## %s\n\n| directive | arguments | default | meaning |\n"
                   "| --- | --- | --- | --- |\n", s->title);
    } else {
        fputs(".SH \"", f);
        for (const char *t = s->title; *t; t++) /* man headings are in capitals, plain */
            if (*t != '`')
                fputc(toupper((unsigned char)*t), f);
        fputs("\"\n", f);
    }
    for (size_t i = 0; i < conf_ndirectives; i++) {
        const struct conf_directive *d = &conf_directives[i];
        if (!in_section(d, s->ctx))
            continue;
        if (fmt == REF_MD)
            md_row(f, d);
        else
            man_entry(f, d);
    }
}

static void header(FILE *f, enum ref_format fmt)
{
    static const char generated[] =
        "Generated from the directive table (conf/directives.c) by `make reference`: "
        "do not edit.";
    if (fmt == REF_MD) {
        fprintf(f, "# Configuration reference\n\n<!-- %s -->\n", generated);
        return;
    }
    fprintf(f, ".\\\" %s\n", generated);
    fputs(".TH EDGEGATE.CONF 5 \"\" \"edgegate\" \"File Formats\"\n.SH NAME\n"
          "edgegate.conf \\- configuration file of edgegate\n.SH DESCRIPTION\n", f);
}

int conf_print_reference(FILE *f, const char *format)
{
    enum ref_format fmt;
    if (strcmp(format, "md") == 0)
        fmt = REF_MD;
    else if (strcmp(format, "man") == 0)
        fmt = REF_MAN;
    else
        return EG_ERR;
    header(f, fmt);
    for (size_t i = 0; i < ARRAY_LEN(intro); i++) {
        fputs(fmt == REF_MD ? "\n" : i ? ".PP\n" : "", f);
        put_text(f, fmt, intro[i]);
        fputs("\n", f);
    }
    for (size_t i = 0; i < ARRAY_LEN(sections); i++)
        section(f, fmt, &sections[i]);
    if (fmt == REF_MAN)
        fputs(".SH \"SEE ALSO\"\n.BR edgegate (8)\n", f);
    return EG_OK;
}
