/* Files: reading one whole, and `include FILE|GLOB`, which parses other
 * files in the context of the statement, as if their statements were written
 * there. Paths are relative to the including file's directory, as in nginx
 * only more predictable: the result does not depend on the working
 * directory of the process. */
#include "conf/parser.h"
#include "conf/arena.h"
#include "base/alloc.h"
#include "base/util.h"

#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CONF_MAX_FILE (16 * 1024 * 1024)
#define CONF_MAX_INCLUDED 256   /* files one configuration may include, loops aside */

char *conf_read_file(const char *file, size_t *len, char *err, size_t errlen)
{
    /* O_NONBLOCK: a FIFO is refused below instead of waiting for a writer. */
    int fd = open(file, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    struct stat sb;
    const char *why = fd < 0 || fstat(fd, &sb) < 0 ? strerror(errno)
                      : !S_ISREG(sb.st_mode)        ? "not a regular file"
                      : sb.st_size > CONF_MAX_FILE  ? "too large"
                                                    : NULL;
    if (why) {
        snprintf(err, errlen, "%s", why);
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    size_t size = (size_t)sb.st_size, got = 0;
    char *buf = eg_malloc(size + 1);
    while (got < size) {
        ssize_t r = read(fd, buf + got, size - got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    *len = got;
    return buf;
}

/* Writes into OUT the path of NAME seen from the file FROM. With ESCAPE,
 * glob's special characters of FROM's directory are escaped, so that only
 * those of NAME match. */
static int join_path(const char *from, const char *name, bool escape, char *out, size_t len)
{
    const char *slash = strrchr(from, '/');
    size_t n = 0;
    if (name[0] != '/' && slash) {
        for (const char *s = from; s <= slash && n + 2 < len; s++) {
            if (escape && strchr("*?[]\\", *s))
                out[n++] = '\\';
            out[n++] = *s;
        }
    }
    int w = snprintf(out + n, len - n, "%s", name);
    return w < 0 || (size_t)w >= len - n ? EG_ERR : EG_OK;
}

static bool has_glob_chars(const char *s)
{
    return strpbrk(s, "*?[") != NULL;
}

/* Why the file ID cannot be included now, or NULL. */
static const char *include_refused(struct parser *p, struct conf_file_id id)
{
    for (int i = 0; i < p->nreading; i++)
        if (p->reading[i].dev == id.dev && p->reading[i].ino == id.ino)
            return "it is being read already (an include loop)";
    if (p->nreading == CONF_MAX_INCLUDE_DEPTH)
        return "includes are nested too deeply";
    if (p->nincluded == CONF_MAX_INCLUDED)
        return "too many included files";
    return NULL;
}

/* Parses the statements of FILE where ST stands. */
static void include_file(struct parser *p, const struct stmt *st, const char *file)
{
    struct stat sb;
    char why[EG_ERRLEN];
    if (stat(file, &sb) != 0) {
        conf_perr_at(p, st->file, st->line, "\"include\": cannot read %s: %s", file,
                     strerror(errno));
        return;
    }
    struct conf_file_id id = {sb.st_dev, sb.st_ino};
    const char *refused = include_refused(p, id);
    size_t len;
    char *buf = refused ? NULL : conf_read_file(file, &len, why, sizeof(why));
    if (!buf) {
        conf_perr_at(p, st->file, st->line, "\"include\": cannot read %s: %s", file,
                     refused ? refused : why);
        return;
    }
    p->nincluded++;
    p->reading[p->nreading++] = id;
    struct lexer lx, *outer = p->lx;
    conf_lex_init(&lx, conf_arena_strndup(&p->conf->arena, file, strlen(file)), buf, len,
                  &p->conf->arena);
    p->lx = &lx;
    conf_parse_body(p, st->ctx, st->idx, st->depth, st->line, false);
    p->lx = outer;
    p->nreading--;
    free(buf);
}

/* A directory of the pattern that does not exist holds no match; one that
 * cannot be read is an error. */
static int glob_failed(const char *path, int err)
{
    (void)path;
    return err != ENOENT && err != ENOTDIR;
}

/* A pattern may match nothing (an empty or absent conf.d/): that is not an
 * error, a missing plain file is. */
static void include_glob(struct parser *p, const struct stmt *st, const char *pattern)
{
    glob_t g;
    int rc = glob(pattern, 0, glob_failed, &g);
    if (rc != 0 && rc != GLOB_NOMATCH)
        conf_perr_at(p, st->file, st->line, "\"include\": cannot list %s: %s", ARG(0),
                     rc == GLOB_NOSPACE ? "out of memory" : "a directory cannot be read");
    for (size_t i = 0; rc == 0 && i < g.gl_pathc && !p->fatal; i++)
        include_file(p, st, g.gl_pathv[i]);
    if (rc == 0)
        globfree(&g);
}

int conf_include(struct parser *p, const struct stmt *st, void *obj)
{
    (void)obj;
    if (p->isolated)
        return conf_bad_value(p, st, 0, "not read here (this configuration is parsed in "
                                        "isolation from the file system)");
    bool pattern = has_glob_chars(ARG(0));
    char path[4096];
    if (ARG(0)[0] == '\0' || join_path(st->file, ARG(0), pattern, path, sizeof(path)) != EG_OK)
        return conf_bad_value(p, st, 0, "expected a file name or a pattern");
    if (pattern)
        include_glob(p, st, path);
    else
        include_file(p, st, path);
    return EG_OK;
}
