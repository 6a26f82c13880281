/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * A fuzz target without libFuzzer: runs LLVMFuzzerTestOneInput() once on
 * each input given, a file or every regular file of a directory (not
 * recursive, in name order). Without arguments it replays the target's seed
 * corpus and regression inputs in the source tree, FUZZ_DIR/corpus/FUZZ_TARGET
 * and FUZZ_DIR/regress/FUZZ_TARGET; that is the test `make check` runs, with
 * the sanitizers of the build if it has them. To see a crash that
 * `make fuzz` found in any build:
 *
 *   tests/fuzz-request-replay fuzz-run/request/crash-...
 *
 * Each input is copied to a buffer of its exact size, so that ASan sees a
 * read past its end. Exits 0 when all inputs ran, 1 when one could not be
 * read or a directory without arguments is missing or empty: a replay of
 * nothing must not pass.
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"
#include "macro.h"

#ifndef FUZZ_TARGET
#error "FUZZ_TARGET must name the target, e.g. \"request\""
#endif
#ifndef FUZZ_DIR
#error "FUZZ_DIR must be the absolute path of tests/fuzz in the source tree"
#endif

/* The largest input we replay; libFuzzer's own inputs are a few KiB. */
#define INPUT_MAX (64U * 1024U * 1024U)

/* Read all of @fd, of @size bytes, into a buffer of exactly that size (1 byte for an empty file). */
static int read_input(int fd, size_t size, uint8_t **ret) {
        _cleanup_free_ uint8_t *buf = NULL;
        size_t n = 0;

        buf = malloc(MAX(size, (size_t) 1));
        if (!buf)
                return -ENOMEM;

        while (n < size) {
                ssize_t k = read(fd, buf + n, size - n);

                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (k == 0)
                        return -EIO;    /* the file shrank while we read it */
                n += (size_t) k;
        }

        *ret = TAKE_PTR(buf);
        return 0;
}

/* Run the target on the file @name in @dir_fd. Returns 0, or a negative errno. */
static int replay_file(int dir_fd, const char *name) {
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ uint8_t *buf = NULL;
        struct stat st;
        int r;

        fd = openat(dir_fd, name, O_RDONLY|O_CLOEXEC);
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return -EISDIR;
        if ((uint64_t) st.st_size > INPUT_MAX)
                return -EFBIG;

        r = read_input(fd, (size_t) st.st_size, &buf);
        if (r < 0)
                return r;

        (void) LLVMFuzzerTestOneInput(buf, (size_t) st.st_size);
        return 0;
}

/* Not ".", "..", nor what an editor or libFuzzer keeps hidden. */
static int keep_entry(const struct dirent *de) {
        return de->d_name[0] != '.';
}

/* Replay @path, a file or a directory. Returns the number of inputs run, or a negative errno. */
static int replay_path(const char *path) {
        _cleanup_close_ int dir_fd = -EBADF;
        struct dirent **entries = NULL;
        struct stat st;
        int n, count = 0, r = 0;

        if (stat(path, &st) < 0)
                return -errno;
        if (!S_ISDIR(st.st_mode)) {
                r = replay_file(AT_FDCWD, path);
                return r < 0 ? r : 1;
        }

        dir_fd = open(path, O_RDONLY|O_DIRECTORY|O_CLOEXEC);
        if (dir_fd < 0)
                return -errno;

        n = scandir(path, &entries, keep_entry, alphasort);
        if (n < 0)
                return -errno;

        for (int i = 0; i < n; i++) {
                if (r >= 0) {
                        struct stat est;

                        if (fstatat(dir_fd, entries[i]->d_name, &est, 0) < 0)
                                r = -errno;
                        else if (S_ISREG(est.st_mode)) {
                                r = replay_file(dir_fd, entries[i]->d_name);
                                if (r < 0)
                                        fprintf(stderr, "Failed to replay '%s/%s': %s\n", path,
                                                entries[i]->d_name, strerror(-r));
                                else
                                        count++;
                        }
                }
                free(entries[i]);
        }
        free(entries);

        return r < 0 ? r : count;
}

int main(int argc, char *argv[]) {
        static const char *const defaults[] = {
                FUZZ_DIR "/corpus/" FUZZ_TARGET,
                FUZZ_DIR "/regress/" FUZZ_TARGET,
        };
        bool use_defaults = argc < 2;
        size_t n_paths = use_defaults ? ELEMENTSOF(defaults) : (size_t) argc - 1;
        int total = 0;

        for (size_t i = 0; i < n_paths; i++) {
                const char *path = use_defaults ? defaults[i] : argv[i + 1];
                int r;

                r = replay_path(path);
                if (r < 0) {
                        fprintf(stderr, "Failed to replay '%s': %s\n", path, strerror(-r));
                        return EXIT_FAILURE;
                }
                if (r == 0 && use_defaults) {
                        fprintf(stderr, "No inputs in '%s'.\n", path);
                        return EXIT_FAILURE;
                }
                printf("%s: %d inputs from '%s'\n", FUZZ_TARGET, r, path);
                total += r;
        }

        printf("%s: %d inputs replayed\n", FUZZ_TARGET, total);
        return EXIT_SUCCESS;
}
