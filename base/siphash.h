/* SipHash-2-4 (Aumasson and Bernstein): a keyed 64-bit hash for tables whose
 * keys come from clients. With a secret key nobody outside the process can
 * choose keys that collide, so a table cannot be flooded into long chains. */
#ifndef EG_BASE_SIPHASH_H
#define EG_BASE_SIPHASH_H

#include <stddef.h>
#include <stdint.h>

struct siphash_key {
    uint64_t k0, k1;
};

/* K from 16 bytes, read little-endian as the reference does. */
void siphash_key_from_bytes(struct siphash_key *k, const uint8_t bytes[16]);
/* A fresh secret key from OpenSSL's generator. EG_OK, or EG_ERR when it has
 * no entropy to give. */
int siphash_key_random(struct siphash_key *k);
uint64_t siphash24(const struct siphash_key *k, const void *data, size_t len);

#endif
