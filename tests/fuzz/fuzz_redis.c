/* libFuzzer target: Redis replies. Arbitrary bytes go through hiredis'
 * protocol reader, set up as the gateway sets it up (array sizes limited);
 * every reply it builds, however odd (nested arrays, nil, errors, huge or
 * binary strings), goes through the affinity script's reply interpretation,
 * which must accept only the exact expected shape. */
#include "gateway/balance/affinity.h"
#include "gateway/balance/redis.h"

#include <hiredis/hiredis.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    redisReader *r = redisReaderCreateWithFunctions(redis_reply_functions());
    if (!r)
        return 0;
    redisReaderFeed(r, (const char *)data, size);
    for (int i = 0; i < 64; i++) {
        void *reply = NULL;
        if (redisReaderGetReply(r, &reply) != REDIS_OK || !reply)
            break;
        struct affinity_answer a;
        if (affinity_parse_reply(reply, &a)) {
            /* An accepted answer names a datacenter in printable ASCII. */
            size_t n = strlen(a.dc);
            if (n == 0 || n >= sizeof(a.dc) || strlen(a.home) >= sizeof(a.home))
                abort();
            for (size_t k = 0; k < n; k++)
                if ((unsigned char)a.dc[k] <= 0x20 || (unsigned char)a.dc[k] >= 0x7f)
                    abort();
        }
        freeReplyObject(reply);
    }
    redisReaderFree(r);
    return 0;
}
