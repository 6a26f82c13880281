/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Snapshots of a process's executable file mappings: against the test
 * process itself and a forked child, compared with proc_normalize()'s
 * answers for the same addresses.
 */

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <unistd.h>

#include "check-run.h"
#include "macro.h"
#include "proc.h"
#include "snapshot.h"
#include "test-util.h"

static Proc *open_proc(pid_t pid) {
        Proc *p = NULL;

        ck_assert_int_eq(proc_open(&p, pid, VMA_BACKEND_TEXT), 0);
        return p;
}

static Snapshot *take(Proc *p) {
        Snapshot *s = NULL;
        int r;

        r = snapshot_take(p, NULL, 0, &s);
        ck_assert_msg(r == 0, "snapshot_take: %s", strerror(-r));
        ck_assert_int_eq(snapshot_pid(s), proc_pid(p));
        ck_assert_uint_eq(snapshot_start_time(s), proc_start_time(p));
        return s;
}

static Normalization *live_flags(Proc *p, const uint64_t *addrs, size_t n, unsigned flags) {
        NormalizeOptions opts = { .flags = flags };
        Normalization *out = NULL;

        ck_assert_int_eq(proc_normalize(p, addrs, n, &opts, &out), 0);
        return out;
}

static Normalization *live(Proc *p, const uint64_t *addrs, size_t n) {
        return live_flags(p, addrs, n, NORMALIZE_BUILD_IDS);
}

/* With NORMALIZE_ELF: each result's ELF address and each module's ELF type as the live answer had them. */
static void assert_same_elf(const Normalization *got, const Normalization *want) {
        size_t n_ok = 0;

        for (size_t i = 0; i < got->n_results; i++) {
                const NormResult *g = &got->results[i], *w = &want->results[i];

                if (w->kind != NORM_MODULE)
                        continue;
                ck_assert_int_eq(g->vaddr_status, w->vaddr_status);
                ck_assert_uint_eq(g->vaddr, w->vaddr);
                n_ok += g->vaddr_status == NORM_VADDR_OK;
        }
        ck_assert_uint_gt(n_ok, 0);
        for (size_t i = 0; i < got->n_modules; i++) {
                const NormModule *g = &got->modules[i], *w = &want->modules[i];

                ck_assert_int_eq(g->elf_status, w->elf_status);
                ck_assert_int_eq(!!g->elf, !!w->elf);
                if (g->elf)
                        ck_assert_int_eq(g->elf->type, w->elf->type);
        }
}

static Normalization *from_snapshot(const Snapshot *s, const uint64_t *addrs, size_t n, unsigned flags) {
        Normalization *out = NULL;
        int r;

        r = snapshot_normalize(s, addrs, n, flags, &out);
        ck_assert_msg(r == 0, "snapshot_normalize: %s", strerror(-r));
        ck_assert_int_eq(out->pid, snapshot_pid(s));
        ck_assert_uint_eq(out->start_time, snapshot_start_time(s));
        ck_assert_uint_eq(out->n_results, n);
        ck_assert(!out->reattached);
        return out;
}

/*
 * For addresses in executable file mappings or in none: module for
 * module, offset for offset the same answer, except that what the live
 * answer had no module for is "exited".
 */
static void assert_same_modules(const Normalization *got, const Normalization *want) {
        ck_assert_uint_eq(got->n_results, want->n_results);
        ck_assert_uint_eq(got->n_modules, want->n_modules);
        for (size_t i = 0; i < got->n_results; i++) {
                if (want->results[i].kind != NORM_MODULE) {
                        ck_assert_int_eq(got->results[i].kind, NORM_EXITED);
                        continue;
                }
                ck_assert_int_eq(got->results[i].kind, NORM_MODULE);
                ck_assert_uint_eq(got->results[i].module, want->results[i].module);
                ck_assert_uint_eq(got->results[i].offset, want->results[i].offset);
        }
        for (size_t i = 0; i < got->n_modules; i++) {
                const NormModule *g = &got->modules[i], *w = &want->modules[i];

                ck_assert_str_eq(g->path, w->path);
                ck_assert_uint_eq(g->inode, w->inode);
                ck_assert_uint_eq(g->dev_major, w->dev_major);
                ck_assert_uint_eq(g->dev_minor, w->dev_minor);
                ck_assert_int_eq(g->deleted, w->deleted);
                ck_assert_int_eq(g->vdso, w->vdso);
                ck_assert_uint_eq(g->build_id_len, w->build_id_len);
                ck_assert_mem_eq(g->build_id, w->build_id, g->build_id_len);
                ck_assert_ptr_null(g->map_files);
        }
}

START_TEST(test_self) {
        _cleanup_(proc_freep) Proc *p = open_proc(getpid());
        _cleanup_(snapshot_unrefp) Snapshot *s = NULL;
        _cleanup_(normalization_freep) Normalization *want = NULL, *got = NULL;
        _cleanup_free_ char *heap = malloc(64);
        uint8_t self_id[BUILD_ID_MAX];
        size_t self_id_len = test_self_build_id(self_id);
        uint64_t vdso = getauxval(AT_SYSINFO_EHDR);
        int on_stack = 0;
        void *anon;
        uint64_t addrs[8];

        ck_assert_ptr_nonnull(heap);
        anon = mmap(NULL, 4096, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0);
        ck_assert_ptr_ne(anon, MAP_FAILED);

        s = take(p);
        ck_assert_uint_gt(snapshot_n_mappings(s), 1);

        /* Out of order and duplicated, as callers send them. */
        addrs[0] = (uint64_t) (uintptr_t) &getpid;
        addrs[1] = (uint64_t) (uintptr_t) &test_marker_function;
        addrs[2] = (uint64_t) (uintptr_t) heap;
        addrs[3] = (uint64_t) (uintptr_t) &on_stack;
        addrs[4] = (uint64_t) (uintptr_t) anon;
        addrs[5] = (uint64_t) (uintptr_t) &test_marker_function;
        addrs[6] = vdso ? vdso : (uint64_t) (uintptr_t) &strlen;
        addrs[7] = 1;

        want = live(p, addrs, ELEMENTSOF(addrs));
        got = from_snapshot(s, addrs, ELEMENTSOF(addrs), NORMALIZE_BUILD_IDS);
        assert_same_modules(got, want);

        ck_assert_int_eq(got->results[0].kind, NORM_MODULE);
        ck_assert_int_eq(got->results[1].kind, NORM_MODULE);
        ck_assert_int_eq(got->results[2].kind, NORM_EXITED);
        ck_assert_int_eq(got->results[3].kind, NORM_EXITED);
        ck_assert_int_eq(got->results[4].kind, NORM_EXITED);
        ck_assert_uint_eq(got->results[5].module, got->results[1].module);
        ck_assert_uint_eq(got->results[5].offset, got->results[1].offset);
        ck_assert_int_eq(got->results[7].kind, NORM_EXITED);
        /* The test executable's own build ID, read independently. */
        ck_assert_uint_eq(got->modules[got->results[1].module].build_id_len, self_id_len);
        ck_assert_mem_eq(got->modules[got->results[1].module].build_id, self_id, self_id_len);
        if (vdso)
                ck_assert(got->modules[got->results[6].module].vdso);
        ck_assert_str_eq(norm_kind_to_string(NORM_EXITED), "exited");

        /* With ELF facts, as live. */
        {
                _cleanup_(normalization_freep) Normalization *want_elf = NULL, *got_elf = NULL;

                want_elf = live_flags(p, addrs, ELEMENTSOF(addrs), NORMALIZE_BUILD_IDS | NORMALIZE_ELF);
                got_elf = from_snapshot(s, addrs, ELEMENTSOF(addrs), NORMALIZE_BUILD_IDS | NORMALIZE_ELF);
                assert_same_modules(got_elf, want_elf);
                assert_same_elf(got_elf, want_elf);
                ck_assert_int_eq(got_elf->results[1].vaddr_status, NORM_VADDR_OK);
        }

        /* Without build IDs asked for, none. */
        normalization_free(got);
        got = from_snapshot(s, addrs, ELEMENTSOF(addrs), 0);
        for (size_t i = 0; i < got->n_modules; i++)
                ck_assert_uint_eq(got->modules[i].build_id_len, 0);
        ck_assert(!snapshot_is_stale(s, addrs, ELEMENTSOF(addrs), want));
        munmap(anon, 4096);
}
END_TEST

START_TEST(test_child_after_exit) {
        _cleanup_(snapshot_unrefp) Snapshot *s = NULL;
        _cleanup_(normalization_freep) Normalization *want = NULL, *got = NULL;
        TestChild c;
        Proc *p;
        uint64_t addrs[5];

        test_child_spawn(&c);
        p = open_proc(c.pid);
        s = take(p);
        addrs[0] = c.code_addr;
        addrs[1] = c.file_addr;         /* mapped read-only: not kept */
        addrs[2] = c.anon_addr;
        addrs[3] = c.vdso_addr ? c.vdso_addr : c.code_addr;
        addrs[4] = c.unmapped_addr;
        want = live_flags(p, addrs, ELEMENTSOF(addrs), NORMALIZE_BUILD_IDS | NORMALIZE_ELF);
        ck_assert(!snapshot_is_stale(s, addrs, ELEMENTSOF(addrs), want));
        proc_free(p);
        test_child_stop(&c);

        /* The child is gone: the snapshot still answers for it, ELF addresses included. */
        got = from_snapshot(s, addrs, ELEMENTSOF(addrs), NORMALIZE_BUILD_IDS | NORMALIZE_ELF);
        ck_assert_int_eq(got->results[0].vaddr_status, NORM_VADDR_OK);
        ck_assert_uint_eq(got->results[0].vaddr, want->results[0].vaddr);
        ck_assert_int_eq(got->results[3].vaddr_status, want->results[3].vaddr_status);
        ck_assert_uint_eq(got->results[3].vaddr, want->results[3].vaddr);
        ck_assert_int_eq(want->results[1].kind, NORM_MODULE);
        ck_assert_int_eq(got->results[0].kind, NORM_MODULE);
        ck_assert_uint_eq(got->results[0].offset, want->results[0].offset);
        ck_assert_str_eq(got->modules[got->results[0].module].path,
                         want->modules[want->results[0].module].path);
        ck_assert_uint_eq(got->modules[got->results[0].module].build_id_len,
                          want->modules[want->results[0].module].build_id_len);
        ck_assert_mem_eq(got->modules[got->results[0].module].build_id,
                         want->modules[want->results[0].module].build_id,
                         got->modules[got->results[0].module].build_id_len);
        ck_assert_int_eq(got->results[1].kind, NORM_EXITED);
        ck_assert_int_eq(got->results[2].kind, NORM_EXITED);
        ck_assert_int_eq(got->results[3].kind, NORM_MODULE);
        ck_assert_uint_eq(got->results[3].offset, want->results[3].offset);
        ck_assert_int_eq(got->results[4].kind, NORM_EXITED);
        /* The read-only file was the live answer's module 1 (by address): the snapshot has one less. */
        ck_assert_uint_eq(got->n_modules + 1, want->n_modules);
}
END_TEST

/* A new executable mapping, after the snapshot, makes it stale; a read-only one it knew does not. */
START_TEST(test_stale) {
        _cleanup_(proc_freep) Proc *p = open_proc(getpid());
        _cleanup_(snapshot_unrefp) Snapshot *s = NULL;
        _cleanup_(normalization_freep) Normalization *n = NULL;
        char exe[PATH_MAX];
        _cleanup_close_ int fd = -EBADF;
        void *ro, *x;
        uint64_t addrs[2];

        test_self_exe(exe);
        fd = open(exe, O_RDONLY|O_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        ro = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, fd, 0);
        ck_assert_ptr_ne(ro, MAP_FAILED);

        s = take(p);
        addrs[0] = (uint64_t) (uintptr_t) ro + 16;
        addrs[1] = (uint64_t) (uintptr_t) &test_marker_function;
        n = live(p, addrs, 2);
        ck_assert_int_eq(n->results[0].kind, NORM_MODULE);
        ck_assert(!snapshot_is_stale(s, addrs, 2, n));
        normalization_free(n);

        x = mmap(NULL, 4096, PROT_READ|PROT_EXEC, MAP_PRIVATE, fd, 0);
        ck_assert_ptr_ne(x, MAP_FAILED);
        addrs[0] = (uint64_t) (uintptr_t) x + 16;
        n = live(p, addrs, 2);
        ck_assert_int_eq(n->results[0].kind, NORM_MODULE);
        ck_assert(snapshot_is_stale(s, addrs, 2, n));

        /* The new snapshot has it, at the same offset as the live answer. */
        snapshot_unref(s);
        s = take(p);
        ck_assert(!snapshot_is_stale(s, addrs, 2, n));
        {
                _cleanup_(normalization_freep) Normalization *got = from_snapshot(s, addrs, 2, 0);

                ck_assert_int_eq(got->results[0].kind, NORM_MODULE);
                ck_assert_uint_eq(got->results[0].offset, 16);
        }

        /* An answer about another process's start time is never the snapshot's. */
        n->start_time++;
        ck_assert(snapshot_is_stale(s, addrs, 2, n));
        munmap(x, 4096);
        munmap(ro, 4096);
}
END_TEST

/* Taken without build IDs, it has none, and says so; the mappings are the same. */
START_TEST(test_no_build_ids) {
        _cleanup_(proc_freep) Proc *p = open_proc(getpid());
        _cleanup_(snapshot_unrefp) Snapshot *with = NULL, *without = NULL;
        _cleanup_(normalization_freep) Normalization *a = NULL, *b = NULL;
        NormalizeOptions none = {}, some = { .flags = NORMALIZE_BUILD_IDS };
        uint64_t addr = (uint64_t) (uintptr_t) &test_marker_function;

        ck_assert_int_eq(snapshot_take(p, &none, 0, &without), 0);
        ck_assert_int_eq(snapshot_take(p, &some, 0, &with), 0);
        ck_assert(!snapshot_has_build_ids(without));
        ck_assert(snapshot_has_build_ids(with));
        ck_assert_uint_eq(snapshot_n_mappings(without), snapshot_n_mappings(with));

        a = from_snapshot(without, &addr, 1, NORMALIZE_BUILD_IDS);
        b = from_snapshot(with, &addr, 1, NORMALIZE_BUILD_IDS);
        ck_assert_uint_eq(a->modules[0].build_id_len, 0);
        ck_assert_uint_eq(b->modules[0].build_id_len, 20);
        ck_assert_uint_eq(a->results[0].offset, b->results[0].offset);
}
END_TEST

START_TEST(test_size) {
        _cleanup_(proc_freep) Proc *p = open_proc(getpid());
        _cleanup_(snapshot_unrefp) Snapshot *s = NULL, *empty = NULL;
        NormalizeOptions high = { .start = UINT64_MAX - 1 };
        Snapshot *none = NULL;
        size_t size;

        s = take(p);
        size = snapshot_size(s);
        /* Each mapping is accounted for, with its path. */
        ck_assert_uint_gt(size, snapshot_n_mappings(s) * (4 * sizeof(uint64_t)) + strlen("/"));

        /* A limit below what it needs: refused, nothing built. */
        ck_assert_int_eq(snapshot_take(p, NULL, size / 4, &none), -E2BIG);
        ck_assert_ptr_null(none);
        ck_assert_int_eq(snapshot_take(p, NULL, 1, &none), -E2BIG);
        ck_assert_ptr_null(none);
        /* Exactly what it needs: taken. */
        {
                _cleanup_(snapshot_unrefp) Snapshot *fits = NULL;

                ck_assert_int_eq(snapshot_take(p, NULL, size * 2, &fits), 0);
                ck_assert_uint_le(snapshot_size(fits), size * 2);
                ck_assert_uint_eq(snapshot_n_mappings(fits), snapshot_n_mappings(s));
        }

        /* A walk from the top of the address space finds nothing: an empty snapshot costs itself alone. */
        ck_assert_int_eq(snapshot_take(p, &high, 0, &empty), 0);
        ck_assert_uint_eq(snapshot_n_mappings(empty), 0);
        ck_assert_uint_lt(snapshot_size(empty), 256);
        ck_assert_uint_lt(snapshot_size(empty), size);

        /* References. */
        ck_assert_ptr_eq(snapshot_ref(s), s);
        ck_assert_ptr_null(snapshot_unref(s));
        ck_assert_uint_eq(snapshot_size(s), size);
        ck_assert_ptr_null(snapshot_unref(NULL));
}
END_TEST

START_TEST(test_empty) {
        _cleanup_(proc_freep) Proc *p = open_proc(getpid());
        _cleanup_(snapshot_unrefp) Snapshot *s = NULL, *empty = NULL;
        _cleanup_(normalization_freep) Normalization *n = NULL, *none = NULL;
        NormalizeOptions high = { .start = UINT64_MAX - 1 };
        uint64_t addrs[] = { (uint64_t) (uintptr_t) &test_marker_function, 0, UINT64_MAX };
        Normalization *fail = NULL;

        ck_assert_int_eq(snapshot_take(p, &high, 0, &empty), 0);
        n = from_snapshot(empty, addrs, ELEMENTSOF(addrs), NORMALIZE_BUILD_IDS);
        ck_assert_uint_eq(n->n_modules, 0);
        ck_assert_uint_eq(n->n_lookups, 0);
        for (size_t i = 0; i < ELEMENTSOF(addrs); i++)
                ck_assert_int_eq(n->results[i].kind, NORM_EXITED);

        /* No addresses: no results. */
        s = take(p);
        none = from_snapshot(s, NULL, 0, NORMALIZE_BUILD_IDS);
        ck_assert_uint_eq(none->n_results, 0);
        ck_assert_uint_eq(none->n_modules, 0);

        ck_assert_int_eq(snapshot_normalize(NULL, addrs, 1, 0, &fail), -EINVAL);
        ck_assert_int_eq(snapshot_normalize(s, NULL, 1, 0, &fail), -EINVAL);
        ck_assert_ptr_null(fail);
        ck_assert_int_eq(snapshot_take(NULL, NULL, 0, &empty), -EINVAL);
}
END_TEST

static Suite *snapshot_suite(void) {
        Suite *s = suite_create("snapshot");
        TCase *tc;

        tc = tcase_create("self");
        tcase_add_test(tc, test_self);
        suite_add_tcase(s, tc);
        tc = tcase_create("child_after_exit");
        tcase_add_test(tc, test_child_after_exit);
        suite_add_tcase(s, tc);
        tc = tcase_create("stale");
        tcase_add_test(tc, test_stale);
        suite_add_tcase(s, tc);
        tc = tcase_create("no_build_ids");
        tcase_add_test(tc, test_no_build_ids);
        suite_add_tcase(s, tc);
        tc = tcase_create("size");
        tcase_add_test(tc, test_size);
        suite_add_tcase(s, tc);
        tc = tcase_create("empty");
        tcase_add_test(tc, test_empty);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        return check_run(snapshot_suite());
}
