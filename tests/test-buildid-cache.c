/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "buildid-cache.h"
#include "check-run.h"
#include "macro.h"

static FileIdentity file(uint64_t inode) {
        return (FileIdentity) {
                .inode = inode,
                .dev_major = 8,
                .dev_minor = 1,
                .ctime_sec = 1700000000,
                .ctime_nsec = 5,
        };
}

/* Every field of a file's stat that names it goes into its identity, and only those. */
START_TEST(test_identity_from_stat) {
        struct stat st = {
                .st_dev = makedev(259, 3),
                .st_ino = 1311012,
                .st_size = 4096,
                .st_ctim = { .tv_sec = 1700000123, .tv_nsec = 456 },
                .st_mtim = { .tv_sec = 1, .tv_nsec = 2 },
        };
        FileIdentity a = file_identity_from_stat(&st), b;

        ck_assert_uint_eq(a.inode, 1311012);
        ck_assert_uint_eq(a.dev_major, 259);
        ck_assert_uint_eq(a.dev_minor, 3);
        ck_assert_int_eq(a.ctime_sec, 1700000123);
        ck_assert_int_eq(a.ctime_nsec, 456);

        /* Contents changed in place: a new ctime, another file for the cache. */
        st.st_ctim.tv_nsec++;
        b = file_identity_from_stat(&st);
        ck_assert(!file_identity_equal(&a, &b));
        st.st_ctim.tv_nsec--;
        st.st_mtim.tv_sec = 99;
        st.st_size = 1;
        b = file_identity_from_stat(&st);
        ck_assert(file_identity_equal(&a, &b));
        st.st_dev = makedev(259, 4);
        b = file_identity_from_stat(&st);
        ck_assert(!file_identity_equal(&a, &b));
}
END_TEST

/* Reading a file leaves its identity alone. */
START_TEST(test_identity_of_file) {
        char path[] = "/tmp/vmaq-cache-XXXXXX";
        _cleanup_close_ int fd = mkostemp(path, O_CLOEXEC);
        struct stat st;
        FileIdentity a, b;
        char c;

        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(unlink(path), 0);
        ck_assert_int_eq(write(fd, "x", 1), 1);
        ck_assert_int_eq(fstat(fd, &st), 0);
        a = file_identity_from_stat(&st);
        ck_assert_int_eq(pread(fd, &c, 1, 0), 1);
        ck_assert_int_eq(fstat(fd, &st), 0);
        b = file_identity_from_stat(&st);
        ck_assert(file_identity_equal(&a, &b));
        ck_assert_uint_eq(a.inode, st.st_ino);
}
END_TEST

START_TEST(test_lookup_insert) {
        _cleanup_(build_id_cache_freep) BuildIdCache *c = NULL;
        static const uint8_t id[20] = { 0x4c, 0x2b, 0x7e, 0x0d, 0x91 };
        uint8_t out[BUILD_ID_MAX];
        FileIdentity f = file(42), g = file(43), h = file(44);
        BuildIdCacheStats st;

        ck_assert_int_eq(build_id_cache_new(&c, 0), -EINVAL);
        ck_assert_int_eq(build_id_cache_new(&c, 2), 0);

        ck_assert_int_eq(build_id_cache_lookup(c, &f, out), -ENOENT);
        ck_assert_int_eq(build_id_cache_insert(c, &f, id, sizeof(id)), 0);
        ck_assert_int_eq(build_id_cache_insert(c, &g, NULL, 0), 0);   /* "none" is remembered too */
        ck_assert_int_eq(build_id_cache_insert(c, &h, id, BUILD_ID_MAX + 1), -EINVAL);

        memset(out, 0, sizeof(out));
        ck_assert_int_eq(build_id_cache_lookup(c, &f, out), (int) sizeof(id));
        ck_assert_mem_eq(out, id, sizeof(id));
        ck_assert_int_eq(build_id_cache_lookup(c, &g, out), 0);

        /* Full: the least recently used (g) goes. */
        ck_assert_int_eq(build_id_cache_lookup(c, &f, out), (int) sizeof(id));
        ck_assert_int_eq(build_id_cache_insert(c, &h, id, 16), 0);
        ck_assert_int_eq(build_id_cache_lookup(c, &g, out), -ENOENT);
        ck_assert_int_eq(build_id_cache_lookup(c, &h, out), 16);

        build_id_cache_stats(c, &st);
        ck_assert_uint_eq(st.size, 2);
        ck_assert_uint_eq(st.max, 2);
        ck_assert_uint_eq(st.hits, 4);
        ck_assert_uint_eq(st.misses, 2);
}
END_TEST

#define N_THREADS 4
#define N_OPS 100000
#define N_KEYS 96

typedef struct Worker {
        BuildIdCache *cache;
        unsigned seed;
        uint64_t lookups;
        uint64_t wrong;
} Worker;

/* The build ID every thread remembers for key @k: its value says which key it is. */
static size_t key_id(uint64_t k, uint8_t id[static BUILD_ID_MAX]) {
        size_t len = 1 + k % 20;

        for (size_t i = 0; i < len; i++)
                id[i] = (uint8_t) (k * 31 + i);
        return len;
}

static void *worker(void *userdata) {
        Worker *w = userdata;

        for (unsigned i = 0; i < N_OPS; i++) {
                uint64_t k = (uint64_t) rand_r(&w->seed) % N_KEYS;
                FileIdentity f = file(1000 + k);
                uint8_t id[BUILD_ID_MAX], out[BUILD_ID_MAX];
                size_t len = key_id(k, id);
                int r;

                if (i % 64 == 0) {
                        BuildIdCacheStats st;

                        build_id_cache_stats(w->cache, &st);
                        if (st.size > st.max)
                                w->wrong++;
                }
                r = build_id_cache_lookup(w->cache, &f, out);
                w->lookups++;
                if (r == -ENOENT) {
                        if (build_id_cache_insert(w->cache, &f, id, len) < 0)
                                w->wrong++;
                } else if (r != (int) len || memcmp(out, id, len) != 0)
                        w->wrong++;
        }
        return NULL;
}

/*
 * Threads hammering one cache smaller than their keys (so that entries are
 * evicted all the time): every answer is right, and every lookup counted.
 */
/* An ElfInfo as a parse leaves it, of @type, with a build ID of @id_len bytes of @fill. */
static ElfInfo *info_new(ElfType type, size_t id_len, uint8_t fill, size_t n_loads) {
        ElfInfo *i;

        i = calloc(1, sizeof(*i));
        ck_assert_ptr_nonnull(i);
        i->n_ref = 1;
        i->type = type;
        i->build_id_len = (uint8_t) id_len;
        memset(i->build_id, fill, id_len);
        i->memory = sizeof(*i);
        if (n_loads > 0) {
                i->loads = calloc(n_loads, sizeof(ElfLoad));
                ck_assert_ptr_nonnull(i->loads);
                i->n_loads = n_loads;
                i->memory += n_loads * sizeof(ElfLoad);
        }
        return i;
}

/* Facts are remembered, negative ones too, and answer build ID lookups. */
START_TEST(test_info) {
        _cleanup_(build_id_cache_freep) BuildIdCache *c = NULL;
        FileIdentity f1 = file(1), f2 = file(2), f3 = file(3);
        ElfInfo *dyn, *not_elf, *got = NULL;
        uint8_t id[BUILD_ID_MAX];
        BuildIdCacheStats st;

        ck_assert_int_eq(build_id_cache_new(&c, 8), 0);
        dyn = info_new(ELF_TYPE_DYN, 20, 0xab, 3);
        not_elf = info_new(ELF_TYPE_NOT_ELF, 0, 0, 0);

        ck_assert_int_eq(build_id_cache_lookup_info(c, &f1, &got), -ENOENT);
        ck_assert_int_eq(build_id_cache_insert_info(c, &f1, dyn), 0);
        ck_assert_int_eq(build_id_cache_insert_info(c, &f2, not_elf), 0);
        /* The cache holds references of its own. */
        ck_assert_uint_eq(dyn->n_ref, 2);
        dyn = elf_info_unref(dyn);
        not_elf = elf_info_unref(not_elf);

        ck_assert_int_eq(build_id_cache_lookup_info(c, &f1, &got), 0);
        ck_assert_int_eq(got->type, ELF_TYPE_DYN);
        ck_assert_uint_eq(got->n_loads, 3);
        ck_assert_uint_eq(got->n_ref, 2);
        got = elf_info_unref(got);

        /* "Not ELF" is an answer, not a miss. */
        ck_assert_int_eq(build_id_cache_lookup_info(c, &f2, &got), 0);
        ck_assert_int_eq(got->type, ELF_TYPE_NOT_ELF);
        got = elf_info_unref(got);

        /* The build ID lookup answers from the facts: 20 bytes, and "none" for f2. */
        memset(id, 0, sizeof(id));
        ck_assert_int_eq(build_id_cache_lookup(c, &f1, id), 20);
        ck_assert_uint_eq(id[0], 0xab);
        ck_assert_uint_eq(id[19], 0xab);
        ck_assert_int_eq(build_id_cache_lookup(c, &f2, id), 0);

        /* A build ID alone is no facts. */
        ck_assert_int_eq(build_id_cache_insert(c, &f3, id, 0), 0);
        ck_assert_int_eq(build_id_cache_lookup(c, &f3, id), 0);
        ck_assert_int_eq(build_id_cache_lookup_info(c, &f3, &got), -ENOENT);
        ck_assert_ptr_null(got);

        build_id_cache_stats(c, &st);
        ck_assert_uint_eq(st.size, 3);
        ck_assert_uint_gt(st.bytes, 2 * sizeof(ElfInfo) + 3 * sizeof(ElfLoad));
        ck_assert_uint_eq(st.max_bytes, 8 * BUILD_ID_CACHE_BYTES_PER_ENTRY);
}
END_TEST

/* The byte budget: the least recently used go first; what a caller holds stays valid. */
START_TEST(test_info_bytes) {
        _cleanup_(build_id_cache_freep) BuildIdCache *c = NULL;
        _cleanup_(elf_info_unrefp) ElfInfo *held = NULL;
        ElfInfo *big, *got = NULL;
        BuildIdCacheStats st;
        size_t entry_bytes;

        ck_assert_int_eq(build_id_cache_new(&c, 100), 0);

        /* Find what one entry of 10 loads costs, then allow three. */
        big = info_new(ELF_TYPE_DYN, 20, 1, 10);
        ck_assert_int_eq(build_id_cache_insert_info(c, &(FileIdentity) { .inode = 1 }, big), 0);
        build_id_cache_stats(c, &st);
        entry_bytes = st.bytes;
        ck_assert_uint_gt(entry_bytes, big->memory);
        ck_assert_int_eq(build_id_cache_set_max_bytes(c, 3 * entry_bytes), 0);
        ck_assert_int_eq(build_id_cache_set_max_bytes(c, 0), -EINVAL);

        for (uint64_t k = 2; k <= 5; k++)
                ck_assert_int_eq(build_id_cache_insert_info(c, &(FileIdentity) { .inode = k }, big), 0);
        build_id_cache_stats(c, &st);
        ck_assert_uint_eq(st.size, 3);
        ck_assert_uint_eq(st.bytes, 3 * entry_bytes);
        ck_assert_int_eq(build_id_cache_lookup_info(c, &(FileIdentity) { .inode = 2 }, &got), -ENOENT);
        ck_assert_int_eq(build_id_cache_lookup_info(c, &(FileIdentity) { .inode = 3 }, &held), 0);

        /* Replacing an entry counts it once. */
        ck_assert_int_eq(build_id_cache_insert_info(c, &(FileIdentity) { .inode = 3 }, big), 0);
        build_id_cache_stats(c, &st);
        ck_assert_uint_eq(st.bytes, 3 * entry_bytes);

        /* Shrinking evicts; the reference we hold outlives its entry. */
        ck_assert_int_eq(build_id_cache_set_max_bytes(c, entry_bytes), 0);
        build_id_cache_stats(c, &st);
        ck_assert_uint_eq(st.size, 1);
        ck_assert_uint_eq(st.bytes, entry_bytes);
        ck_assert_uint_eq(held->n_loads, 10);

        /* An entry larger than the whole budget is refused, and nothing else goes. */
        {
                ElfInfo *huge = info_new(ELF_TYPE_DYN, 0, 0, 64);

                ck_assert_int_eq(build_id_cache_insert_info(c, &(FileIdentity) { .inode = 9 }, huge), -E2BIG);
                ck_assert_uint_eq(huge->n_ref, 1);
                elf_info_unref(huge);
        }
        build_id_cache_stats(c, &st);
        ck_assert_uint_eq(st.size, 1);

        /* Plain build IDs count too. */
        ck_assert_int_eq(build_id_cache_set_max_bytes(c, 1), 0);
        ck_assert_int_eq(build_id_cache_insert(c, &(FileIdentity) { .inode = 10 }, NULL, 0), -E2BIG);
        build_id_cache_stats(c, &st);
        ck_assert_uint_eq(st.size, 0);
        ck_assert_uint_eq(st.bytes, 0);

        elf_info_unref(big);
}
END_TEST

START_TEST(test_threads) {
        _cleanup_(build_id_cache_freep) BuildIdCache *c = NULL;
        Worker w[N_THREADS];
        pthread_t t[N_THREADS];
        BuildIdCacheStats st;
        uint64_t lookups = 0;

        ck_assert_int_eq(build_id_cache_new(&c, N_KEYS / 2), 0);
        for (unsigned i = 0; i < N_THREADS; i++) {
                w[i] = (Worker) { .cache = c, .seed = i + 1 };
                ck_assert_int_eq(pthread_create(&t[i], NULL, worker, &w[i]), 0);
        }
        for (unsigned i = 0; i < N_THREADS; i++) {
                ck_assert_int_eq(pthread_join(t[i], NULL), 0);
                ck_assert_uint_eq(w[i].wrong, 0);
                lookups += w[i].lookups;
        }

        build_id_cache_stats(c, &st);
        ck_assert_uint_eq(lookups, (uint64_t) N_THREADS * N_OPS);
        ck_assert_uint_eq(st.hits + st.misses, lookups);
        ck_assert_uint_eq(st.size, N_KEYS / 2);
}
END_TEST

static Suite *build_id_cache_suite(void) {
        Suite *s = suite_create("buildid-cache");
        TCase *tc;

        tc = tcase_create("identity");
        tcase_add_test(tc, test_identity_from_stat);
        tcase_add_test(tc, test_identity_of_file);
        suite_add_tcase(s, tc);

        tc = tcase_create("cache");
        tcase_add_test(tc, test_lookup_insert);
        suite_add_tcase(s, tc);

        tc = tcase_create("info");
        tcase_add_test(tc, test_info);
        tcase_add_test(tc, test_info_bytes);
        suite_add_tcase(s, tc);

        tc = tcase_create("threads");
        /* Only against a hang: under sanitizers on a loaded machine, Check's default 4 s is not enough. */
        tcase_set_timeout(tc, 120);
        tcase_add_test(tc, test_threads);
        suite_add_tcase(s, tc);

        return s;
}

int main(void) {
        return check_run(build_id_cache_suite());
}
