/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Strict number parsing. Unlike strtoul() these accept no leading
 * whitespace, no sign, no trailing garbage and no overflow.
 */

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/*
 * Parse the @n bytes at @s as an unsigned integer in @base (10 or 16, no
 * prefix). Returns 0, -EINVAL on an empty or malformed string, -ERANGE on
 * overflow. *ret is written only on success.
 */
int parse_u64_n(const char *s, size_t n, unsigned base, uint64_t *ret);

/* As parse_u64_n() on a NUL-terminated string. */
int parse_u64(const char *s, unsigned base, uint64_t *ret);

/*
 * Parse an address: "0x" or "0X" followed by hex digits, or decimal digits.
 * Same errors as parse_u64().
 */
int parse_address(const char *s, uint64_t *ret);

/* Parse a positive pid (1 .. INT32_MAX). -EINVAL or -ERANGE otherwise. */
int parse_pid(const char *s, pid_t *ret);
