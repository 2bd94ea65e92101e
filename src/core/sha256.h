/* SHA-256 (FIPS 180-4), streaming. Used for output checksums (the cross-ISA checksum table)
 * and file hashes. */
#ifndef SF_CORE_SHA256_H
#define SF_CORE_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct sf_sha256 {
  uint32_t h[8];
  uint64_t bytes;
  uint8_t block[64];
  size_t fill;
} sf_sha256;

void sf_sha256_init(sf_sha256 *s);
void sf_sha256_update(sf_sha256 *s, const void *data, size_t len);
void sf_sha256_final(sf_sha256 *s, uint8_t out[32]);
/* out: 65 bytes, lowercase hex with a NUL. */
void sf_sha256_hex(const uint8_t digest[32], char out[65]);

#endif
