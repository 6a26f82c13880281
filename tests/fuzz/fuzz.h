/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * What the fuzz targets share. Each defines libFuzzer's entry point; linked
 * with -fsanitize=fuzzer it is a fuzzer (`make fuzz`), linked with
 * replay.c a test that runs it on the seed corpus and the regression
 * inputs (`make check`).
 */

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "macro.h"

/*
 * Run one input. Inputs that the code under test refuses are fine; the
 * target aborts (a crash for libFuzzer, a failed test for the replay) only
 * where the code broke a promise of its header.
 */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Like assert(), but never compiled out: it is what the fuzzer looks for. */
#define FUZZ_CHECK(expr)                                                                \
        do {                                                                            \
                if (!(expr)) {                                                          \
                        fprintf(stderr, "%s:%d: %s: check failed: %s\n", __FILE__,      \
                                __LINE__, __func__, #expr);                             \
                        abort();                                                        \
                }                                                                       \
        } while (0)

/* A new file (a memfd, no name in any file system) holding the @size bytes at @data; or -errno. */
static inline int fuzz_memfd(const char *name, const uint8_t *data, size_t size) {
        _cleanup_close_ int fd = -EBADF;
        size_t n = 0;

        fd = memfd_create(name, MFD_CLOEXEC);
        if (fd < 0)
                return -errno;
        while (n < size) {
                ssize_t k = write(fd, data + n, size - n);

                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                n += (size_t) k;
        }
        return TAKE_FD(fd);
}
