/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * make bench: the normalization core against a raw PROCMAP_QUERY loop (one
 * ioctl per address, the naive use of the kernel interface) and against
 * the text backend, on a child process with ~2,000 mappings. Reports ns per
 * address, ns per distinct VMA, and ratios measured in the same run; for
 * the automatic strategy also the ratio to the cheaper of the ioctl and
 * the text, and how many of its batches read the text.
 *
 * Then the cost of many distinct files in one batch: children mapping
 * thousands of memfds, one address in each, so that every VMA is a module
 * of its own. The ns per module should not grow with their number.
 */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "macro.h"
#include "proc.h"
#include "procmap-query.h"

#define N_MAPPINGS 2000
#define MIN_SECONDS 0.3
/* The methods take turns, in this many rounds of MIN_SECONDS / ROUNDS each: the best counts. */
#define ROUNDS 5

static double now(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what, int r) {
        fprintf(stderr, "%s: %s\n", what, strerror(r < 0 ? -r : r));
        exit(EXIT_FAILURE);
}

/*
 * A child mapping every other page of a file, so that no two mappings
 * merge: N_MAPPINGS VMAs, reported through @fd.
 */
static pid_t spawn_target(uint64_t addrs[static N_MAPPINGS], int *ret_ctl) {
        char path[] = "/tmp/vmaq-bench-XXXXXX";
        long ps = sysconf(_SC_PAGESIZE);
        int report[2], ctl[2], fd;
        pid_t pid;

        fd = mkostemp(path, O_CLOEXEC);
        if (fd < 0 || unlink(path) < 0 || ftruncate(fd, 2 * N_MAPPINGS * ps) < 0)
                die("temporary file", errno);
        if (pipe2(report, O_CLOEXEC) < 0 || pipe2(ctl, O_CLOEXEC) < 0)
                die("pipe", errno);

        pid = fork();
        if (pid < 0)
                die("fork", errno);
        if (pid == 0) {
                char b;

                (void) prctl(PR_SET_PDEATHSIG, SIGKILL);
                close(ctl[1]);
                for (size_t i = 0; i < N_MAPPINGS; i++) {
                        void *p = mmap(NULL, ps, PROT_READ, MAP_PRIVATE, fd, 2 * i * ps);

                        if (p == MAP_FAILED)
                                _exit(EXIT_FAILURE);
                        addrs[i] = (uintptr_t) p;
                }
                if (write(report[1], addrs, N_MAPPINGS * sizeof(uint64_t)) != N_MAPPINGS * sizeof(uint64_t))
                        _exit(EXIT_FAILURE);
                while (read(ctl[0], &b, 1) > 0)
                        ;
                _exit(EXIT_SUCCESS);
        }

        close(fd);
        close(report[1]);
        close(ctl[0]);
        if (read(report[0], addrs, N_MAPPINGS * sizeof(uint64_t)) != N_MAPPINGS * sizeof(uint64_t))
                die("child setup", EIO);
        close(report[0]);
        *ret_ctl = ctl[1];
        return pid;
}

/* The naive loop: one ioctl per address, as a caller without the core would do. */
static void raw_ioctl_batch(int maps_fd, const uint64_t *addrs, size_t n) {
        char name[PATH_MAX];

        for (size_t i = 0; i < n; i++) {
                struct procmap_query q = {
                        .size = sizeof(q),
                        .query_addr = addrs[i],
                        .vma_name_addr = (uintptr_t) name,
                        .vma_name_size = sizeof(name),
                };

                if (ioctl(maps_fd, PROCMAP_QUERY, &q) < 0 && errno != ENOENT)
                        die("PROCMAP_QUERY", errno);
        }
}

/* Returns how the batch read the map. */
static VmaBackend core_batch(Proc *p, const uint64_t *addrs, size_t n, unsigned flags,
                             VmaBackend strategy) {
        NormalizeOptions opts = { .flags = flags, .strategy = strategy };
        Normalization *out = NULL;
        VmaBackend how;
        int r;

        r = proc_normalize(p, addrs, n, &opts, &out);
        if (r < 0)
                die("proc_normalize", r);
        how = out->strategy;
        normalization_free(out);
        return how;
}

typedef enum Method {
        METHOD_RAW_IOCTL,
        METHOD_CORE_IOCTL,
        METHOD_CORE_IOCTL_BUILD_IDS,
        METHOD_CORE_TEXT,
        METHOD_CORE_AUTO,
        _METHOD_MAX,
} Method;

static const char *const method_names[_METHOD_MAX] = {
        [METHOD_RAW_IOCTL]            = "raw ioctl loop",
        [METHOD_CORE_IOCTL]           = "core, ioctl",
        [METHOD_CORE_IOCTL_BUILD_IDS] = "core, ioctl, build IDs",
        [METHOD_CORE_TEXT]            = "core, text",
        [METHOD_CORE_AUTO]            = "core, auto",
};

/*
 * Nanoseconds per batch, over enough repetitions to last @seconds. Adds
 * the batches to *n_batches and those that read the text to *n_text.
 */
static double measure(Method m, int maps_fd, Proc *ioctl_proc, Proc *text_proc, Proc *auto_proc,
                      const uint64_t *addrs, size_t n, double seconds,
                      unsigned long *n_batches, unsigned long *n_text) {
        unsigned long reps = 0;
        double start = now(), t;

        do {
                switch (m) {
                case METHOD_RAW_IOCTL:
                        raw_ioctl_batch(maps_fd, addrs, n);
                        break;
                case METHOD_CORE_IOCTL:
                        core_batch(ioctl_proc, addrs, n, 0, VMA_BACKEND_IOCTL);
                        break;
                case METHOD_CORE_IOCTL_BUILD_IDS:
                        core_batch(ioctl_proc, addrs, n, NORMALIZE_BUILD_IDS, VMA_BACKEND_IOCTL);
                        break;
                case METHOD_CORE_TEXT:
                        core_batch(text_proc, addrs, n, 0, VMA_BACKEND_AUTO);
                        break;
                case METHOD_CORE_AUTO:
                        if (core_batch(auto_proc, addrs, n, 0, VMA_BACKEND_AUTO) == VMA_BACKEND_TEXT)
                                (*n_text)++;
                        break;
                default:
                        abort();
                }
                reps++;
                t = now() - start;
        } while (t < seconds);

        *n_batches += reps;
        return t * 1e9 / reps;
}

static int compare_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;

        return x < y ? -1 : x > y;
}

/* Distinct mappings among @n addresses: each mapping is one page. */
static size_t count_distinct(const uint64_t *addrs, size_t n, long ps) {
        _cleanup_free_ uint64_t *pages = malloc(n * sizeof(uint64_t));
        size_t d = 0;

        if (!pages)
                die("malloc", ENOMEM);
        for (size_t i = 0; i < n; i++)
                pages[i] = addrs[i] / ps;
        qsort(pages, n, sizeof(uint64_t), compare_u64);
        for (size_t i = 0; i < n; i++)
                if (i == 0 || pages[i] != pages[i - 1])
                        d++;
        return d;
}

/* A child mapping one page of each of @n memfds, every one a file of its own; their addresses in *ret_addrs. */
static pid_t spawn_many_files(size_t n, uint64_t **ret_addrs, int *ret_ctl) {
        uint64_t *addrs = malloc(n * sizeof(uint64_t));
        long ps = sysconf(_SC_PAGESIZE);
        int report[2], ctl[2];
        pid_t pid;

        if (!addrs)
                die("malloc", ENOMEM);
        if (pipe2(report, O_CLOEXEC) < 0 || pipe2(ctl, O_CLOEXEC) < 0)
                die("pipe", errno);

        pid = fork();
        if (pid < 0)
                die("fork", errno);
        if (pid == 0) {
                char b;

                (void) prctl(PR_SET_PDEATHSIG, SIGKILL);
                close(ctl[1]);
                for (size_t i = 0; i < n; i++) {
                        int fd = memfd_create("bench", MFD_CLOEXEC);
                        void *p;

                        if (fd < 0 || ftruncate(fd, ps) < 0)
                                _exit(EXIT_FAILURE);
                        p = mmap(NULL, ps, PROT_READ, MAP_PRIVATE, fd, 0);
                        if (p == MAP_FAILED)
                                _exit(EXIT_FAILURE);
                        close(fd);
                        addrs[i] = (uintptr_t) p + 16;
                }
                for (size_t done = 0; done < n * sizeof(uint64_t);) {
                        ssize_t k = write(report[1], (uint8_t *) addrs + done, n * sizeof(uint64_t) - done);

                        if (k <= 0)
                                _exit(EXIT_FAILURE);
                        done += (size_t) k;
                }
                while (read(ctl[0], &b, 1) > 0)
                        ;
                _exit(EXIT_SUCCESS);
        }

        close(report[1]);
        close(ctl[0]);
        for (size_t done = 0; done < n * sizeof(uint64_t);) {
                ssize_t k = read(report[0], (uint8_t *) addrs + done, n * sizeof(uint64_t) - done);

                if (k <= 0)
                        die("child setup", k < 0 ? errno : EIO);
                done += (size_t) k;
        }
        close(report[0]);
        *ret_addrs = addrs;
        *ret_ctl = ctl[1];
        return pid;
}

/*
 * One batch with an address in each of @n distinct files, against the raw
 * ioctl loop over the same addresses: the kernel's own lookup grows with
 * the size of the map, so the ratio to it is what shows the core's part.
 */
static void bench_many_files(void) {
        static const size_t counts[] = { 2000, 8000, 32000 };
        double first = 0;

        printf("%-9s %14s %12s %14s %12s %10s %10s\n",
               "files", "raw ns/batch", "raw ns/file", "core ns/batch", "ns/module", "vs raw", "vs first");
        for (size_t c = 0; c < ELEMENTSOF(counts); c++) {
                _cleanup_(proc_freep) Proc *p = NULL;
                _cleanup_free_ uint64_t *addrs = NULL;
                _cleanup_close_ int maps_fd = -EBADF;
                unsigned long reps = 0;
                Normalization *out = NULL;
                double start, t, ns, raw;
                char path[64];
                int ctl, r;
                pid_t pid;

                pid = spawn_many_files(counts[c], &addrs, &ctl);
                snprintf(path, sizeof(path), "/proc/%d/maps", (int) pid);
                maps_fd = open(path, O_RDONLY|O_CLOEXEC);
                if (maps_fd < 0)
                        die(path, errno);
                r = proc_open(&p, pid, VMA_BACKEND_IOCTL);
                if (r < 0)
                        die("proc_open", r);

                start = now();
                do {
                        raw_ioctl_batch(maps_fd, addrs, counts[c]);
                        reps++;
                        t = now() - start;
                } while (t < MIN_SECONDS);
                raw = t * 1e9 / reps;

                reps = 0;
                start = now();
                do {
                        r = proc_normalize(p, addrs, counts[c],
                                           &(NormalizeOptions) { .strategy = VMA_BACKEND_IOCTL }, &out);
                        if (r < 0)
                                die("proc_normalize", r);
                        if (out->n_modules != counts[c])
                                die("one module per file", EPROTO);
                        out = normalization_free(out);
                        reps++;
                        t = now() - start;
                } while (t < MIN_SECONDS);
                ns = t * 1e9 / reps;
                if (c == 0)
                        first = ns / raw;

                printf("%-9zu %14.0f %12.1f %14.0f %12.1f %9.2fx %9.2fx\n",
                       counts[c], raw, raw / counts[c], ns, ns / counts[c], ns / raw, ns / raw / first);
                close(ctl);
                waitpid(pid, NULL, 0);
        }
        printf("\n");
}

int main(void) {
        static const size_t batch_sizes[] = { 1, 100, 10000, 100000 };
        _cleanup_(proc_freep) Proc *ioctl_proc = NULL, *text_proc = NULL, *auto_proc = NULL;
        uint64_t mappings[N_MAPPINGS];
        long ps = sysconf(_SC_PAGESIZE);
        _cleanup_close_ int maps_fd = -EBADF;
        char path[64];
        int ctl, r;
        unsigned seed = 1;
        pid_t pid;

        r = vma_backend_probe();
        if (r <= 0) {
                fprintf(stderr, "The benchmark compares against PROCMAP_QUERY, which this kernel lacks.\n");
                return r < 0 ? EXIT_FAILURE : 77;
        }

        pid = spawn_target(mappings, &ctl);
        snprintf(path, sizeof(path), "/proc/%d/maps", (int) pid);
        maps_fd = open(path, O_RDONLY|O_CLOEXEC);
        if (maps_fd < 0)
                die(path, errno);
        r = proc_open(&ioctl_proc, pid, VMA_BACKEND_IOCTL);
        if (r < 0)
                die("proc_open", r);
        r = proc_open(&text_proc, pid, VMA_BACKEND_TEXT);
        if (r < 0)
                die("proc_open", r);
        /* Its own Proc, so that what it learns comes from its own batches. */
        r = proc_open(&auto_proc, pid, VMA_BACKEND_IOCTL);
        if (r < 0)
                die("proc_open", r);

        printf("Target: pid %d with %d file mappings (plus its own); best of %d rounds of %d ms per measurement.\n\n",
               (int) pid, N_MAPPINGS, ROUNDS, (int) (MIN_SECONDS * 1000 / ROUNDS));
        printf("%-7s %-9s %-24s %12s %12s %12s %10s %10s %9s\n",
               "batch", "distinct", "method", "ns/batch", "ns/address", "ns/VMA", "vs raw", "vs best", "as text");

        for (size_t b = 0; b < ELEMENTSOF(batch_sizes); b++) {
                size_t n = batch_sizes[b], distinct;
                _cleanup_free_ uint64_t *addrs = malloc(n * sizeof(uint64_t));
                unsigned long n_batches[_METHOD_MAX] = {}, n_text[_METHOD_MAX] = {};
                double best[_METHOD_MAX];

                if (!addrs)
                        die("malloc", ENOMEM);
                /* Random mappings, random offsets in them: unsorted, with repeats. */
                for (size_t i = 0; i < n; i++)
                        addrs[i] = mappings[rand_r(&seed) % N_MAPPINGS] + (uint64_t) (rand_r(&seed) % ps);
                distinct = count_distinct(addrs, n, ps);

                /*
                 * Taking turns, so that a noisy moment of the machine
                 * does not fall on one method alone.
                 */
                for (unsigned round = 0; round < ROUNDS; round++)
                        for (Method m = 0; m < _METHOD_MAX; m++) {
                                double ns = measure(m, maps_fd, ioctl_proc, text_proc, auto_proc, addrs, n,
                                                    MIN_SECONDS / ROUNDS, &n_batches[m], &n_text[m]);

                                best[m] = round == 0 ? ns : MIN(best[m], ns);
                        }

                for (Method m = 0; m < _METHOD_MAX; m++) {
                        double ns = best[m];

                        printf("%-7zu %-9zu %-24s %12.0f %12.1f %12.1f %9.2fx",
                               n, distinct, method_names[m], ns, ns / n, ns / distinct,
                               ns / best[METHOD_RAW_IOCTL]);
                        /* The automatic strategy against the cheaper of the two it chooses from. */
                        if (m == METHOD_CORE_AUTO)
                                printf(" %9.2fx %8.1f%%",
                                       ns / MIN(best[METHOD_CORE_IOCTL], best[METHOD_CORE_TEXT]),
                                       100.0 * n_text[m] / n_batches[m]);
                        printf("\n");
                }
                printf("\n");
        }

        close(ctl);
        waitpid(pid, NULL, 0);

        bench_many_files();
        return EXIT_SUCCESS;
}
