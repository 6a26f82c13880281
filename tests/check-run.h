/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <check.h>
#include <stdlib.h>

/*
 * Run the test cases of a test program's suite tagged @include_tags and not
 * @exclude_tags (space-separated; NULL: $CK_INCLUDE_TAGS, $CK_EXCLUDE_TAGS)
 * in Check's default fork mode; the exit status for automake.
 */
static inline int check_run_tagged(Suite *s, const char *include_tags, const char *exclude_tags) {
        SRunner *sr = srunner_create(s);
        int failed;

        srunner_run_tagged(sr, NULL, NULL, include_tags, exclude_tags, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/* Run all of a test program's suite. */
static inline int check_run(Suite *s) {
        return check_run_tagged(s, NULL, NULL);
}
