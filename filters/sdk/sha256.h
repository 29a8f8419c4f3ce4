/* SHA-256 (FIPS 180-4) and HMAC-SHA256 (RFC 2104), for signed URLs and digests. */
#ifndef EDGENODE_SHA256_H
#define EDGENODE_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct { uint32_t h[8]; uint64_t bytes; uint8_t block[64]; size_t used; } pw_sha256;

void pw_sha256_init(pw_sha256 *c);
void pw_sha256_update(pw_sha256 *c, const void *data, size_t len);
void pw_sha256_final(pw_sha256 *c, uint8_t out[32]);
void pw_hmac_sha256(const void *key, size_t key_len, const void *msg, size_t msg_len, uint8_t out[32]);
/* Lower-case hex of `len` bytes into `out` (2*len+1 bytes, NUL-terminated). */
void pw_hex(const uint8_t *data, size_t len, char *out);

#endif
