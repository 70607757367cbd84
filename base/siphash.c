/* SipHash-2-4, written from the paper ("SipHash: a fast short-input PRF",
 * 2012): two compression rounds per 8-byte word, four finalization rounds. */
#include "base/siphash.h"
#include "base/util.h"

#include <endian.h>
#include <openssl/rand.h>
#include <string.h>

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))

static uint64_t load_le64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof(v));
    return le64toh(v);
}

static void sipround(uint64_t v[4])
{
    v[0] += v[1];
    v[1] = ROTL(v[1], 13) ^ v[0];
    v[0] = ROTL(v[0], 32);
    v[2] += v[3];
    v[3] = ROTL(v[3], 16) ^ v[2];
    v[0] += v[3];
    v[3] = ROTL(v[3], 21) ^ v[0];
    v[2] += v[1];
    v[1] = ROTL(v[1], 17) ^ v[2];
    v[2] = ROTL(v[2], 32);
}

static void compress(uint64_t v[4], uint64_t m)
{
    v[3] ^= m;
    sipround(v);
    sipround(v);
    v[0] ^= m;
}

void siphash_key_from_bytes(struct siphash_key *k, const uint8_t bytes[16])
{
    k->k0 = load_le64(bytes);
    k->k1 = load_le64(bytes + 8);
}

int siphash_key_random(struct siphash_key *k)
{
    uint8_t b[16];
    if (RAND_bytes(b, sizeof(b)) != 1)
        return EG_ERR;
    siphash_key_from_bytes(k, b);
    return EG_OK;
}

uint64_t siphash24(const struct siphash_key *k, const void *data, size_t len)
{
    const uint8_t *p = data;
    uint64_t v[4] = {k->k0 ^ 0x736f6d6570736575ULL, k->k1 ^ 0x646f72616e646f6dULL,
                     k->k0 ^ 0x6c7967656e657261ULL, k->k1 ^ 0x7465646279746573ULL};
    size_t whole = len & ~(size_t)7;
    for (size_t i = 0; i < whole; i += 8)
        compress(v, load_le64(p + i));
    /* The last word: the remaining bytes, and the length's low byte on top. */
    uint8_t tail[8] = {0};
    if (len > whole)
        memcpy(tail, p + whole, len - whole);
    tail[7] = (uint8_t)len;
    compress(v, load_le64(tail));
    v[2] ^= 0xff;
    for (int i = 0; i < 4; i++)
        sipround(v);
    return v[0] ^ v[1] ^ v[2] ^ v[3];
}
