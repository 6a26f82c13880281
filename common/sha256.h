/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * SHA-256 (FIPS 180-4), streaming. Small and unoptimized: it hashes a few
 * KiB per file, not bulk data.
 */

#include <stddef.h>
#include <stdint.h>

#define SHA256_DIGEST_SIZE 32U
#define SHA256_BLOCK_SIZE 64U

typedef struct Sha256 {
        uint32_t state[8];
        uint64_t length;        /* bytes hashed so far */
        size_t fill;            /* bytes in block */
        uint8_t block[SHA256_BLOCK_SIZE];
} Sha256;

void sha256_init(Sha256 *s);
/* Hash @n more bytes at @data (may be NULL when @n is 0). */
void sha256_update(Sha256 *s, const void *data, size_t n);
/* Write the digest of all bytes given to @ret; @s must be initialized again before reuse. */
void sha256_final(Sha256 *s, uint8_t ret[static SHA256_DIGEST_SIZE]);
/* The digest of the @n bytes at @data, in one call. */
void sha256(const void *data, size_t n, uint8_t ret[static SHA256_DIGEST_SIZE]);
