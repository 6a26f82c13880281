/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <check.h>
#include <errno.h>
#include <stdlib.h>

#include "check-run.h"
#include "macro.h"
#include "parse-util.h"

static const struct {
        const char *s;
        int r;
        uint64_t v;
} address_vectors[] = {
        { "0",                    0,       0 },
        { "1234",                 0,       1234 },
        { "0x0",                  0,       0 },
        { "0xdeadBEEF",           0,       0xdeadbeef },
        { "0X10",                 0,       16 },
        { "9223372036854775808",  0,       UINT64_C(9223372036854775808) },
        { "18446744073709551615", 0,       UINT64_MAX },
        { "0xffffffffffffffff",   0,       UINT64_MAX },
        { "18446744073709551616", -ERANGE, 0 },
        { "0x10000000000000000",  -ERANGE, 0 },
        { "",                     -EINVAL, 0 },
        { "0x",                   -EINVAL, 0 },
        { "-1",                   -EINVAL, 0 },
        { "+1",                   -EINVAL, 0 },
        { " 1",                   -EINVAL, 0 },
        { "1 ",                   -EINVAL, 0 },
        { "12a",                  -EINVAL, 0 },
        { "0xg",                  -EINVAL, 0 },
        { "0x-1",                 -EINVAL, 0 },
};

START_TEST(test_parse_address) {
        uint64_t v = 42;
        int r;

        r = parse_address(address_vectors[_i].s, &v);
        ck_assert_msg(r == address_vectors[_i].r, "'%s': %d", address_vectors[_i].s, r);
        if (r == 0)
                ck_assert_uint_eq(v, address_vectors[_i].v);
        else
                ck_assert_uint_eq(v, 42);       /* untouched on failure */
}
END_TEST

START_TEST(test_parse_u64_n) {
        uint64_t v;

        ck_assert_int_eq(parse_u64_n("12345", 3, 10, &v), 0);
        ck_assert_uint_eq(v, 123);
        ck_assert_int_eq(parse_u64_n("ff:00", 2, 16, &v), 0);
        ck_assert_uint_eq(v, 255);
        ck_assert_int_eq(parse_u64_n("ff", 2, 10, &v), -EINVAL);
        ck_assert_int_eq(parse_u64_n("1", 0, 10, &v), -EINVAL);
        ck_assert_int_eq(parse_u64_n("1", 1, 8, &v), -EINVAL);
}
END_TEST

START_TEST(test_parse_pid) {
        pid_t pid = 0;

        ck_assert_int_eq(parse_pid("1", &pid), 0);
        ck_assert_int_eq(pid, 1);
        ck_assert_int_eq(parse_pid("2147483647", &pid), 0);
        ck_assert_int_eq(pid, 2147483647);
        ck_assert_int_eq(parse_pid("2147483648", &pid), -ERANGE);
        ck_assert_int_eq(parse_pid("0", &pid), -EINVAL);
        ck_assert_int_eq(parse_pid("-1", &pid), -EINVAL);
        ck_assert_int_eq(parse_pid("0x10", &pid), -EINVAL);
        ck_assert_int_eq(parse_pid("", &pid), -EINVAL);
}
END_TEST

static Suite *parse_util_suite(void) {
        Suite *s = suite_create("parse-util");
        TCase *tc;

        tc = tcase_create("address");
        tcase_add_loop_test(tc, test_parse_address, 0, ELEMENTSOF(address_vectors));
        suite_add_tcase(s, tc);

        tc = tcase_create("u64_n");
        tcase_add_test(tc, test_parse_u64_n);
        suite_add_tcase(s, tc);

        tc = tcase_create("pid");
        tcase_add_test(tc, test_parse_pid);
        suite_add_tcase(s, tc);

        return s;
}

int main(void) {
        return check_run(parse_util_suite());
}
