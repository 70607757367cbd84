/* libFuzzer target: the configuration parser on arbitrary bytes. It must
 * either return a configuration or report at least one error, never crash;
 * and a configuration it accepts, printed (-T) and parsed again, must print
 * the same. Includes are refused: the fuzzer must not read the file system. */
#include "conf/conf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* C printed, in a malloc'ed buffer. */
static char *printed(const struct conf *c, size_t *len)
{
    char *text = NULL;
    FILE *f = open_memstream(&text, len);
    if (!f)
        abort();
    conf_print(f, c);
    fclose(f);
    return text;
}

static void check_round_trip(const struct conf *c)
{
    size_t len, len2;
    char *text = printed(c, &len);
    struct conf_errs errs = {0};
    struct conf *again = conf_parse_isolated("fuzz.conf", text, len, &errs);
    if (!again) {
        fprintf(stderr, "-T output rejected:\n%s\n%s", text, errs.text);
        abort();
    }
    char *text2 = printed(again, &len2);
    if (len != len2 || memcmp(text, text2, len) != 0) {
        fprintf(stderr, "-T output differs once parsed again:\n%s\n---\n%s", text, text2);
        abort();
    }
    free(text);
    free(text2);
    conf_free(again);
    conf_errs_free(&errs);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    struct conf_errs errs = {0};
    struct conf *c = conf_parse_isolated("fuzz.conf", (const char *)data, size, &errs);
    if (!c && errs.count == 0)
        abort();
    if (c && errs.count != 0)
        abort();
    if (c)
        check_round_trip(c);
    conf_free(c);
    conf_errs_free(&errs);
    return 0;
}
