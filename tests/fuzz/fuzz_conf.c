/* libFuzzer target: the configuration parser on arbitrary bytes. It must
 * either return a configuration or report at least one error, never crash. */
#include "conf/conf.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    struct conf_errs errs = {0};
    struct conf *c = conf_parse("fuzz.conf", (const char *)data, size, &errs);
    if (!c && errs.count == 0)
        abort();
    if (c && errs.count != 0)
        abort();
    conf_free(c);
    conf_errs_free(&errs);
    return 0;
}
