/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "parse-util.h"

static int digit_value(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

int parse_u64_n(const char *s, size_t n, unsigned base, uint64_t *ret) {
        uint64_t v = 0;

        if (base != 10 && base != 16)
                return -EINVAL;
        if (n == 0)
                return -EINVAL;

        for (size_t i = 0; i < n; i++) {
                int d = digit_value(s[i]);

                if (d < 0 || (unsigned) d >= base)
                        return -EINVAL;
                /*
                 * Checked arithmetic, not a division per digit: this parses
                 * every maps line and address. 19 decimal or 15 hex digits
                 * cannot overflow, so only longer numbers pay for the check.
                 */
                if (i < (base == 10 ? 19U : 15U))
                        v = v * base + (unsigned) d;
                else if (__builtin_mul_overflow(v, base, &v) || __builtin_add_overflow(v, (unsigned) d, &v))
                        return -ERANGE;
        }

        *ret = v;
        return 0;
}

int parse_u64(const char *s, unsigned base, uint64_t *ret) {
        return parse_u64_n(s, strlen(s), base, ret);
}

int parse_address(const char *s, uint64_t *ret) {
        if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
                return parse_u64(s + 2, 16, ret);
        return parse_u64(s, 10, ret);
}

int parse_pid(const char *s, pid_t *ret) {
        uint64_t v;
        int r;

        r = parse_u64(s, 10, &v);
        if (r < 0)
                return r;
        if (v == 0)
                return -EINVAL;
        if (v > INT32_MAX)
                return -ERANGE;

        *ret = (pid_t) v;
        return 0;
}
