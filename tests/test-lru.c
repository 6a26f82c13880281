/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "buildid-cache.h"
#include "check-run.h"
#include "lru.h"

/* Values are counters of how often the map freed them. */
static void count_free(void *value) {
        (*(unsigned *) value)++;
}

START_TEST(test_lru_basic) {
        _cleanup_(lru_freep) Lru *l = NULL;
        unsigned freed[4] = {};
        uint32_t k;

        ck_assert_int_eq(lru_new(&l, sizeof(uint32_t), 3, count_free), 0);
        for (k = 0; k < 3; k++)
                ck_assert_int_eq(lru_put(l, &k, &freed[k]), 0);
        ck_assert_uint_eq(lru_size(l), 3);
        ck_assert_uint_eq(lru_max(l), 3);

        /* Using 0 makes 1 the least recently used: it goes first. */
        k = 0;
        ck_assert_ptr_eq(lru_get(l, &k), &freed[0]);
        k = 3;
        ck_assert_int_eq(lru_put(l, &k, &freed[3]), 0);
        ck_assert_uint_eq(freed[1], 1);
        ck_assert_uint_eq(lru_size(l), 3);
        k = 1;
        ck_assert_ptr_null(lru_get(l, &k));
        k = 2;
        ck_assert_ptr_eq(lru_get(l, &k), &freed[2]);

        /* Replacing a value frees the old one. */
        k = 2;
        ck_assert_int_eq(lru_put(l, &k, &freed[1]), 0);
        ck_assert_uint_eq(freed[2], 1);
        ck_assert_ptr_eq(lru_get(l, &k), &freed[1]);

        ck_assert_int_eq(lru_remove(l, &k), 1);
        ck_assert_int_eq(lru_remove(l, &k), 0);
        ck_assert_uint_eq(freed[1], 2);
        ck_assert_uint_eq(lru_size(l), 2);

        /* The oldest of 0 and 3 is 0: used before 3 was put. */
        ck_assert_int_eq(lru_remove_oldest(l), 1);
        ck_assert_uint_eq(freed[0], 1);
        ck_assert_uint_eq(lru_size(l), 1);
        k = 3;
        ck_assert_ptr_eq(lru_get(l, &k), &freed[3]);
        k = 0;
        ck_assert_int_eq(lru_put(l, &k, &freed[0]), 0);

        l = lru_free(l);
        ck_assert_uint_eq(freed[0], 2);
        ck_assert_uint_eq(freed[3], 1);
}
END_TEST

START_TEST(test_lru_many) {
        _cleanup_(lru_freep) Lru *l = NULL;
        const uint64_t n = 10000, max = 1000;
        unsigned freed = 0;

        ck_assert_int_eq(lru_new(&l, sizeof(uint64_t), max, count_free), 0);
        for (uint64_t k = 0; k < n; k++)
                ck_assert_int_eq(lru_put(l, &k, &freed), 0);
        ck_assert_uint_eq(lru_size(l), max);
        ck_assert_uint_eq(freed, n - max);
        for (uint64_t k = 0; k < n; k++)
                ck_assert((lru_get(l, &k) != NULL) == (k >= n - max));
}
END_TEST

START_TEST(test_lru_invalid) {
        Lru *l = NULL;

        ck_assert_int_eq(lru_new(&l, 0, 1, NULL), -EINVAL);
        ck_assert_int_eq(lru_new(&l, 4, 0, NULL), -EINVAL);
        ck_assert_ptr_null(l);
}
END_TEST

START_TEST(test_build_id_cache) {
        _cleanup_(build_id_cache_freep) BuildIdCache *c = NULL;
        FileIdentity a = { .inode = 7, .dev_major = 8, .dev_minor = 1, .ctime_sec = 100, .ctime_nsec = 5 };
        FileIdentity b = a;
        uint8_t id[BUILD_ID_MAX], out[BUILD_ID_MAX];
        BuildIdCacheStats st;

        memset(id, 0xab, sizeof(id));
        ck_assert_int_eq(build_id_cache_new(&c, 2), 0);
        ck_assert_int_eq(build_id_cache_lookup(c, &a, out), -ENOENT);
        ck_assert_int_eq(build_id_cache_insert(c, &a, id, 20), 0);
        ck_assert_int_eq(build_id_cache_lookup(c, &a, out), 20);
        ck_assert_mem_eq(out, id, 20);

        /* The same inode changed (or reused): another file. */
        b.ctime_nsec++;
        ck_assert_int_eq(build_id_cache_lookup(c, &b, out), -ENOENT);
        ck_assert_int_eq(build_id_cache_insert(c, &b, NULL, 0), 0);
        ck_assert_int_eq(build_id_cache_lookup(c, &b, out), 0);

        ck_assert_int_eq(build_id_cache_insert(c, &a, id, BUILD_ID_MAX + 1), -EINVAL);

        build_id_cache_stats(c, &st);
        ck_assert_uint_eq(st.size, 2);
        ck_assert_uint_eq(st.max, 2);
        ck_assert_uint_eq(st.hits, 2);
        ck_assert_uint_eq(st.misses, 2);
}
END_TEST

static Suite *lru_suite(void) {
        Suite *s = suite_create("lru");
        TCase *tc;

        tc = tcase_create("lru");
        tcase_add_test(tc, test_lru_basic);
        tcase_add_test(tc, test_lru_many);
        tcase_add_test(tc, test_lru_invalid);
        suite_add_tcase(s, tc);

        tc = tcase_create("build-id-cache");
        tcase_add_test(tc, test_build_id_cache);
        suite_add_tcase(s, tc);

        return s;
}

int main(void) {
        return check_run(lru_suite());
}
