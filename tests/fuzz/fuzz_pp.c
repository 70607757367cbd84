/* libFuzzer target: the PROXY protocol parser. Any input is accepted,
 * refused or asks for more; an accepted header has a length within the input
 * and, rebuilt from what was parsed, parses again to the same addresses. */
#include "proto/proxy_protocol.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    struct pp_info a, b;
    int n = pp_parse(data, size, &a);
    if (n < -1 || n > (int)size || n > PP_MAX_HEADER)
        abort();
    /* Fed byte by byte, the answer is "more" until the full length. */
    for (size_t k = 1; n > 0 && k < (size_t)n; k++)
        if (pp_parse(data, k, &b) != 0)
            abort();
    if (n > 0 && !a.local) {
        unsigned char out[PP_MAX_HEADER];
        for (int v = 1; v <= 2; v++) {
            size_t len = pp_build(v, &a.src, &a.dst, out, sizeof(out));
            if (len == 0 || pp_parse(out, len, &b) != (int)len ||
                !net_addr_equal(&a.src, &b.src) || !net_addr_equal(&a.dst, &b.dst))
                abort();
        }
    }
    return 0;
}
