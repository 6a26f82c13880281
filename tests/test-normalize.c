/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The normalization core against live processes. Built once per backend
 * (TEST_BACKEND), so every `make check` runs both.
 */

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <signal.h>
#include <sys/auxv.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check-run.h"
#include "elf-note.h"
#include "macro.h"
#include "parse-util.h"
#include "proc.h"
#include "test-util.h"
#include "vma.h"

static int compare_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;

        return x < y ? -1 : x > y;
}

static Proc *open_proc(pid_t pid) {
        Proc *p = NULL;
        int r;

        r = proc_open(&p, pid, TEST_BACKEND);
        ck_assert_msg(r == 0, "proc_open(%d): %s", (int) pid, strerror(-r));
        return p;
}

static Normalization *normalize(Proc *p, const uint64_t *addrs, size_t n, unsigned flags) {
        NormalizeOptions opts = { .flags = flags };
        Normalization *out = NULL;
        int r;

        r = proc_normalize(p, addrs, n, &opts, &out);
        ck_assert_msg(r == 0, "proc_normalize: %s", strerror(-r));
        ck_assert_uint_eq(out->n_results, n);
        ck_assert_int_eq(out->pid, proc_pid(p));
        ck_assert_uint_eq(out->start_time, proc_start_time(p));
        return out;
}

static Normalization *normalize_with(Proc *p, const uint64_t *addrs, size_t n, unsigned flags,
                                     VmaBackend strategy) {
        NormalizeOptions opts = { .flags = flags, .strategy = strategy };
        Normalization *out = NULL;
        int r;

        r = proc_normalize(p, addrs, n, &opts, &out);
        ck_assert_msg(r == 0, "proc_normalize: %s", strerror(-r));
        if (strategy != VMA_BACKEND_AUTO)
                ck_assert_int_eq(out->strategy, strategy);
        return out;
}

/* Every field of two answers, but how they read the map. */
static void assert_same_answer(const Normalization *a, const Normalization *b) {
        ck_assert_int_eq(a->pid, b->pid);
        ck_assert_uint_eq(a->start_time, b->start_time);
        ck_assert_int_eq(a->reattached, b->reattached);
        ck_assert_uint_eq(a->n_lookups, b->n_lookups);
        ck_assert_uint_eq(a->n_results, b->n_results);
        ck_assert_uint_eq(a->n_build_ids_skipped, b->n_build_ids_skipped);
        ck_assert_uint_eq(a->n_modules, b->n_modules);
        for (size_t i = 0; i < a->n_modules; i++) {
                const NormModule *x = &a->modules[i], *y = &b->modules[i];

                ck_assert_str_eq(x->path, y->path);
                ck_assert_pstr_eq(x->map_files, y->map_files);
                ck_assert_uint_eq(x->inode, y->inode);
                ck_assert_uint_eq(x->dev_major, y->dev_major);
                ck_assert_uint_eq(x->dev_minor, y->dev_minor);
                ck_assert_int_eq(x->deleted, y->deleted);
                ck_assert_int_eq(x->vdso, y->vdso);
                ck_assert_uint_eq(x->build_id_len, y->build_id_len);
                ck_assert_mem_eq(x->build_id, y->build_id, x->build_id_len);
                ck_assert_int_eq(x->build_id_skipped, y->build_id_skipped);
        }
        for (size_t i = 0; i < a->n_results; i++) {
                ck_assert_int_eq(a->results[i].kind, b->results[i].kind);
                ck_assert_uint_eq(a->results[i].module, b->results[i].module);
                ck_assert_uint_eq(a->results[i].offset, b->results[i].offset);
        }
}

static const NormModule *result_module(const Normalization *n, size_t i) {
        ck_assert_int_eq(n->results[i].kind, NORM_MODULE);
        ck_assert_uint_lt(n->results[i].module, n->n_modules);
        return &n->modules[n->results[i].module];
}

/* Seed test: an address no VMA covers has none, for the source alone. */
START_TEST(test_query_unmapped) {
        _cleanup_(proc_freep) Proc *p = open_proc(getpid());
        _cleanup_(normalization_freep) Normalization *n = NULL;
        uint64_t addr = 0xfffffffff000;

        n = normalize(p, &addr, 1, NORMALIZE_BUILD_IDS);
        ck_assert_int_eq(n->results[0].kind, NORM_UNMAPPED);
        ck_assert_uint_eq(n->n_modules, 0);
}
END_TEST

typedef struct FindVma {
        uint64_t addr;
        bool found;
        Vma vma;
        char name[PATH_MAX];
} FindVma;

static int find_vma_cb(const Vma *v, void *userdata) {
        FindVma *f = userdata;

        if (f->addr >= v->start && f->addr < v->end) {
                f->vma = *v;
                snprintf(f->name, sizeof(f->name), "%s", v->name);
                f->vma.name = f->name;
                f->found = true;
        }
        return 0;
}

/* Seed test: a function of the test binary is in an r-x VMA of the executable, with its build ID. */
START_TEST(test_query_function) {
        _cleanup_(proc_freep) Proc *p = open_proc(getpid());
        uint8_t build_id[BUILD_ID_MAX];
        char exe[PATH_MAX];
        size_t build_id_len;

        test_self_exe(exe);
        build_id_len = test_self_build_id(build_id);
        ck_assert_uint_eq(build_id_len, 20);

        for (unsigned with_build_id = 0; with_build_id <= 1; with_build_id++) {
                FindVma f = { .addr = (uintptr_t) test_marker_function };

                ck_assert_int_eq(proc_foreach_vma(p, with_build_id ? PROC_LIST_BUILD_IDS : 0, NULL,
                                                  find_vma_cb, &f), 0);
                ck_assert(f.found);
                ck_assert_uint_le(f.vma.start, f.addr);
                ck_assert_uint_gt(f.vma.end, f.addr);
                ck_assert_uint_eq(f.vma.perms, VMA_PERM_READ | VMA_PERM_EXEC);
                ck_assert_int_eq(f.vma.kind, VMA_KIND_FILE);
                ck_assert_str_eq(f.vma.name, exe);
                if (with_build_id) {
                        ck_assert_uint_eq(f.vma.build_id_len, build_id_len);
                        ck_assert_mem_eq(f.vma.build_id, build_id, build_id_len);
                } else
                        ck_assert_uint_eq(f.vma.build_id_len, 0);
        }
}
END_TEST

/* The executable's mappings, in a walk with build IDs for executable VMAs only. */
typedef struct ExecBuildIds {
        const char *exe;
        unsigned n_exec, n_other;
} ExecBuildIds;

static int exec_build_ids_cb(const Vma *v, void *userdata) {
        ExecBuildIds *e = userdata;

        if (v->kind != VMA_KIND_FILE || strcmp(v->name, e->exe) != 0)
                return 0;
        if (v->perms & VMA_PERM_EXEC) {
                ck_assert_uint_eq(v->build_id_len, 20);
                e->n_exec++;
        } else {
                /* The same file: only the flag kept its build ID from being read for these. */
                ck_assert_uint_eq(v->build_id_len, 0);
                ck_assert(!v->build_id_skipped);
                e->n_other++;
        }
        return 0;
}

START_TEST(test_foreach_exec_build_ids) {
        _cleanup_(proc_freep) Proc *p = open_proc(getpid());
        char exe[PATH_MAX];
        ExecBuildIds e = { .exe = exe };

        test_self_exe(exe);
        ck_assert_int_eq(proc_foreach_vma(p, PROC_LIST_BUILD_IDS | PROC_LIST_EXEC_BUILD_IDS, NULL,
                                          exec_build_ids_cb, &e), 0);
        ck_assert_uint_ge(e.n_exec, 1);
        ck_assert_uint_ge(e.n_other, 1);
}
END_TEST

static int count_exec_cb(const Vma *v, void *userdata) {
        ck_assert(v->perms & VMA_PERM_EXEC);
        (*(unsigned *) userdata)++;
        return 0;
}

static int stop_cb(const Vma *v, void *userdata) {
        (*(unsigned *) userdata)++;
        return -ECANCELED;
}

START_TEST(test_foreach_flags) {
        _cleanup_(proc_freep) Proc *p = open_proc(getpid());
        unsigned n = 0;

        ck_assert_int_eq(proc_foreach_vma(p, PROC_LIST_EXEC_ONLY, NULL, count_exec_cb, &n), 0);
        ck_assert_uint_ge(n, 2);        /* at least the executable and the vDSO */

        n = 0;
        ck_assert_int_eq(proc_foreach_vma(p, 0, NULL, stop_cb, &n), -ECANCELED);
        ck_assert_uint_eq(n, 1);
}
END_TEST

/* The vDSO build ID read from our own memory: a forked child shares the image. */
static size_t self_vdso_build_id(uint64_t vdso, uint8_t id[static BUILD_ID_MAX]) {
        _cleanup_(proc_freep) Proc *self = open_proc(getpid());
        FindVma f = { .addr = vdso };
        int r;

        ck_assert_int_eq(proc_foreach_vma(self, 0, NULL, find_vma_cb, &f), 0);
        ck_assert(f.found);
        ck_assert_int_eq(f.vma.kind, VMA_KIND_VDSO);
        ck_assert_uint_eq(f.vma.start, vdso);
        r = elf_build_id_from_buffer((const void *) (uintptr_t) vdso, f.vma.end - f.vma.start, id);
        ck_assert_int_gt(r, 0);
        return (size_t) r;
}

static void assert_layout(const TestChild *c, const Normalization *n, const uint64_t *addrs) {
        uint64_t ps = test_page_size();
        const NormModule *m;
        char exe[PATH_MAX];
        uint8_t id[BUILD_ID_MAX];
        struct stat st;

        /* 0, 1: the file, mapped from page 2 on */
        m = result_module(n, 0);
        ck_assert_str_eq(m->path, c->file_path);
        ck_assert(!m->deleted);
        ck_assert(!m->vdso);
        ck_assert_uint_eq(n->results[0].offset, TEST_FILE_MAP_PGOFF * ps + 0x123);
        ck_assert_uint_eq(n->results[1].offset, (TEST_FILE_MAP_PGOFF + 1) * ps + 5);
        ck_assert_uint_eq(n->results[1].module, n->results[0].module);
        ck_assert_int_eq(stat(c->file_path, &st), 0);
        ck_assert_uint_eq(m->inode, st.st_ino);
        ck_assert_uint_eq(m->dev_major, major(st.st_dev));
        ck_assert_uint_eq(m->dev_minor, minor(st.st_dev));
        ck_assert_uint_eq(m->build_id_len, 0);          /* not an ELF file */

        /* 2: the deleted file */
        m = result_module(n, 2);
        ck_assert_str_eq(m->path, c->deleted_path);
        ck_assert(m->deleted);
        ck_assert_uint_eq(n->results[2].offset, 0x10);

        ck_assert_int_eq(n->results[3].kind, NORM_ANONYMOUS);
        ck_assert_int_eq(n->results[4].kind, NORM_UNMAPPED);
        ck_assert_int_eq(n->results[5].kind, NORM_SPECIAL);     /* [heap] */
        ck_assert_int_eq(n->results[6].kind, NORM_SPECIAL);     /* [stack] */

        /* 7: the test executable, with the build ID its loader sees */
        m = result_module(n, 7);
        test_self_exe(exe);
        ck_assert_str_eq(m->path, exe);
        ck_assert_uint_eq(m->build_id_len, test_self_build_id(id));
        ck_assert_mem_eq(m->build_id, id, m->build_id_len);

        /* 8: the vDSO, by offset into its image, with its build ID */
        m = result_module(n, 8);
        ck_assert(m->vdso);
        ck_assert_str_eq(m->path, "[vdso]");
        ck_assert_uint_eq(n->results[8].offset, 0x40);
        ck_assert_uint_eq(m->build_id_len, self_vdso_build_id(c->vdso_addr, id));
        ck_assert_uint_gt(m->build_id_len, 0);
        ck_assert_mem_eq(m->build_id, id, m->build_id_len);

        ck_assert_uint_eq(n->n_modules, 4);
        (void) addrs;
}

static void layout_addrs(const TestChild *c, uint64_t addrs[static 9]) {
        uint64_t ps = test_page_size();

        addrs[0] = c->file_addr + 0x123;
        addrs[1] = c->file_addr + ps + 5;
        addrs[2] = c->deleted_addr + 0x10;
        addrs[3] = c->anon_addr + 8;
        addrs[4] = c->unmapped_addr;
        addrs[5] = c->heap_addr;
        addrs[6] = c->stack_addr;
        addrs[7] = c->code_addr;
        addrs[8] = c->vdso_addr + 0x40;
}

START_TEST(test_layout) {
        _cleanup_(normalization_freep) Normalization *n = NULL;
        _cleanup_(proc_freep) Proc *p = NULL;
        TestChild c;
        uint64_t addrs[9];

        test_child_spawn(&c);
        p = open_proc(c.pid);
        layout_addrs(&c, addrs);

        n = normalize(p, addrs, ELEMENTSOF(addrs), NORMALIZE_BUILD_IDS);
        assert_layout(&c, n, addrs);
        ck_assert(!n->reattached);
        test_child_stop(&c);
}
END_TEST

START_TEST(test_no_build_ids_map_files) {
        _cleanup_(normalization_freep) Normalization *n = NULL;
        _cleanup_(proc_freep) Proc *p = NULL;
        char link[PATH_MAX], expect[128];
        TestChild c;
        uint64_t addrs[9];
        ssize_t len;

        test_child_spawn(&c);
        p = open_proc(c.pid);
        layout_addrs(&c, addrs);

        n = normalize(p, addrs, ELEMENTSOF(addrs), NORMALIZE_MAP_FILES);
        for (size_t i = 0; i < n->n_modules; i++)
                ck_assert_uint_eq(n->modules[i].build_id_len, 0);

        /* The map_files path names the mapped file itself. */
        snprintf(expect, sizeof(expect), "/proc/%d/map_files/%" PRIx64 "-%" PRIx64,
                 (int) c.pid, c.file_addr, c.file_addr + 2 * test_page_size());
        ck_assert_str_eq(result_module(n, 0)->map_files, expect);
        len = readlink(expect, link, sizeof(link) - 1);
        ck_assert_int_gt(len, 0);
        link[len] = '\0';
        ck_assert_str_eq(link, c.file_path);
        ck_assert_ptr_null(result_module(n, 8)->map_files);     /* no file behind the vDSO */
        test_child_stop(&c);
}
END_TEST

/*
 * Build IDs of files that changed after they were mapped: one intact, one
 * deleted, one hidden by a mount over its directory with another ELF file
 * at its name (in the target's own mount namespace). The kernel (ioctl)
 * knows the mapped file; reading it ourselves goes through map_files when
 * we may, else by name, which must never yield the build ID of the file now
 * at that name.
 */
static void build_id_sources(bool drop_caps) {
        _cleanup_(normalization_freep) Normalization *n = NULL;
        _cleanup_(proc_freep) Proc *p = NULL;
        char dir[] = "/tmp/vmaq-elf-XXXXXX", exe[PATH_MAX], paths[3][PATH_MAX], other[PATH_MAX];
        char hidden[64];
        uint8_t self_id[BUILD_ID_MAX], other_id[BUILD_ID_MAX];
        size_t self_len, other_len;
        uint64_t addrs[3];
        int report[2], ctl[2], fd;
        pid_t pid;
        char b;

        test_self_exe(exe);
        self_len = test_self_build_id(self_id);
        ck_assert_ptr_nonnull(mkdtemp(dir));
        snprintf(hidden, sizeof(hidden), "%s/hidden", dir);
        ck_assert_int_eq(mkdir(hidden, 0755), 0);
        for (size_t i = 0; i < 3; i++) {
                snprintf(paths[i], sizeof(paths[i]), "%s/copy-%zu", i == 2 ? hidden : dir, i);
                test_copy_file(exe, paths[i]);
        }
        snprintf(other, sizeof(other), "%s/other", dir);
        test_copy_file("/bin/true", other);
        fd = open(other, O_RDONLY|O_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        other_len = (size_t) elf_build_id_from_fd(fd, 0, lseek(fd, 0, SEEK_END), other_id);
        ck_assert_uint_gt(other_len, 0);
        ck_assert(other_len != self_len || memcmp(other_id, self_id, self_len) != 0);

        ck_assert_int_eq(pipe2(report, O_CLOEXEC), 0);
        ck_assert_int_eq(pipe2(ctl, O_CLOEXEC), 0);
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                char buf[65536];
                ssize_t k;
                int out;

                close(ctl[1]);
                if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC|MS_PRIVATE, NULL) < 0)
                        _exit(EXIT_FAILURE);
                for (size_t i = 0; i < 3; i++) {
                        int f = open(paths[i], O_RDONLY|O_CLOEXEC);
                        void *m = f < 0 ? MAP_FAILED : mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, f, 0);

                        if (m == MAP_FAILED)
                                _exit(EXIT_FAILURE);
                        addrs[i] = (uintptr_t) m + 0x10;
                }
                /* Hide the directory, and put the other ELF file at copy-2's name. */
                if (mount("tmpfs", hidden, "tmpfs", 0, NULL) < 0)
                        _exit(EXIT_FAILURE);
                out = open(paths[2], O_WRONLY|O_CREAT|O_CLOEXEC, 0755);
                if (out < 0 || lseek(fd, 0, SEEK_SET) < 0)
                        _exit(EXIT_FAILURE);
                while ((k = read(fd, buf, sizeof(buf))) > 0)
                        if (write(out, buf, k) != k)
                                _exit(EXIT_FAILURE);
                close(out);
                if (write(report[1], addrs, sizeof(addrs)) != sizeof(addrs))
                        _exit(EXIT_FAILURE);
                (void) read(ctl[0], &b, 1);
                _exit(EXIT_SUCCESS);
        }
        close(fd);
        close(report[1]);
        close(ctl[0]);
        ck_assert_int_eq(read(report[0], addrs, sizeof(addrs)), (ssize_t) sizeof(addrs));
        close(report[0]);
        ck_assert_int_eq(unlink(paths[1]), 0);

        if (drop_caps)
                test_drop_map_files_caps();
        p = open_proc(pid);
        n = normalize(p, addrs, 3, NORMALIZE_BUILD_IDS);
        ck_assert_uint_eq(n->n_modules, 3);
        for (size_t i = 0; i < 3; i++) {
                const NormModule *m = result_module(n, i);
                bool known = TEST_BACKEND == VMA_BACKEND_IOCTL || !drop_caps || i == 0;

                ck_assert_str_eq(m->path, paths[i]);
                ck_assert_uint_eq(n->results[i].offset, 0x10);
                ck_assert_int_eq(m->deleted, i == 1);
                if (known) {
                        ck_assert_uint_eq(m->build_id_len, self_len);
                        ck_assert_mem_eq(m->build_id, self_id, self_len);
                } else
                        ck_assert_uint_eq(m->build_id_len, 0);
        }

        close(ctl[1]);
        waitpid(pid, NULL, 0);
        (void) unlink(paths[0]);
        (void) unlink(paths[2]);
        (void) unlink(other);
        (void) rmdir(hidden);
        (void) rmdir(dir);
}

START_TEST(test_build_id_map_files) {
        build_id_sources(false);
}
END_TEST

START_TEST(test_build_id_by_name) {
        build_id_sources(true);
}
END_TEST

/*
 * What a target can put where its mapped file was, in its own mount
 * namespace, or map in the first place: the core must open none of these
 * for reading (an open of a FIFO wakes its writers, of a device runs its
 * driver), never block on them, and report no build ID from them.
 */
typedef enum Planted {
        PLANTED_FIFO,           /* the mapped file's path now leads to a FIFO */
        PLANTED_DEVICE,         /* ... to a character device */
        PLANTED_OTHER_FILE,     /* ... to another ELF file */
        PLANTED_MAPPED_DEVICE,  /* a character device mapped itself */
        _PLANTED_MAX,
} Planted;

static void planted_file(Planted what, bool drop_caps) {
        _cleanup_(normalization_freep) Normalization *n = NULL;
        _cleanup_(proc_freep) Proc *p = NULL;
        char dir[] = "/tmp/vmaq-plant-XXXXXX", exe[PATH_MAX], hidden[64], path[96], watch[128];
        uint8_t self_id[BUILD_ID_MAX];
        _cleanup_close_ int ifd = -EBADF;
        int report[2], ctl[2];
        size_t self_len;
        uint64_t addr;
        char b, ev[4096];
        pid_t pid;

        test_self_exe(exe);
        self_len = test_self_build_id(self_id);
        ck_assert_ptr_nonnull(mkdtemp(dir));
        snprintf(hidden, sizeof(hidden), "%s/hidden", dir);
        ck_assert_int_eq(mkdir(hidden, 0755), 0);
        snprintf(path, sizeof(path), "%s/lib.so", hidden);
        test_copy_file(exe, path);

        ck_assert_int_eq(pipe2(report, O_CLOEXEC), 0);
        ck_assert_int_eq(pipe2(ctl, O_CLOEXEC), 0);
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                void *m = MAP_FAILED;
                int fd = -EBADF;

                close(ctl[1]);
                (void) prctl(PR_SET_PDEATHSIG, SIGKILL);
                if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC|MS_PRIVATE, NULL) < 0)
                        _exit(EXIT_FAILURE);
                if (what != PLANTED_MAPPED_DEVICE)
                        fd = open(path, O_RDONLY|O_CLOEXEC);
                /* A tmpfs of its own over the directory: devices work there. */
                if (mount("tmpfs", hidden, "tmpfs", 0, NULL) < 0)
                        _exit(EXIT_FAILURE);
                switch (what) {
                case PLANTED_FIFO:
                        if (mkfifo(path, 0644) < 0)
                                _exit(EXIT_FAILURE);
                        break;
                case PLANTED_DEVICE:
                        if (mknod(path, S_IFCHR|0644, makedev(1, 5)) < 0)
                                _exit(EXIT_FAILURE);
                        break;
                case PLANTED_OTHER_FILE:
                        test_copy_file("/bin/true", path);
                        break;
                case PLANTED_MAPPED_DEVICE:
                        /* /dev/zero's numbers, mapped privately: a file VMA with a device behind it. */
                        if (mknod(path, S_IFCHR|0644, makedev(1, 5)) < 0)
                                _exit(EXIT_FAILURE);
                        fd = open(path, O_RDONLY|O_CLOEXEC);
                        break;
                default:
                        _exit(EXIT_FAILURE);
                }
                if (fd >= 0)
                        m = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, fd, 0);
                if (m == MAP_FAILED)
                        _exit(EXIT_FAILURE);
                addr = (uintptr_t) m + 0x10;
                if (write(report[1], &addr, sizeof(addr)) != sizeof(addr))
                        _exit(EXIT_FAILURE);
                (void) read(ctl[0], &b, 1);
                _exit(EXIT_SUCCESS);
        }
        close(report[1]);
        close(ctl[0]);
        ck_assert_int_eq(read(report[0], &addr, sizeof(addr)), (ssize_t) sizeof(addr));
        close(report[0]);

        /* Any open of what is planted shows here, as it happens. */
        ifd = inotify_init1(IN_NONBLOCK|IN_CLOEXEC);
        ck_assert_int_ge(ifd, 0);
        snprintf(watch, sizeof(watch), "/proc/%d/root%s", (int) pid, path);
        ck_assert_int_ge(inotify_add_watch(ifd, watch, IN_OPEN|IN_ACCESS), 0);

        if (drop_caps)
                test_drop_map_files_caps();
        p = open_proc(pid);
        n = normalize(p, &addr, 1, NORMALIZE_BUILD_IDS);
        ck_assert_uint_eq(n->n_modules, 1);
        ck_assert_str_eq(result_module(n, 0)->path, path);
        ck_assert_uint_eq(n->results[0].offset, 0x10);
        if (what != PLANTED_MAPPED_DEVICE && (!drop_caps || TEST_BACKEND == VMA_BACKEND_IOCTL)) {
                /* The mapped file itself, through map_files or the kernel. */
                ck_assert_uint_eq(result_module(n, 0)->build_id_len, self_len);
                ck_assert_mem_eq(result_module(n, 0)->build_id, self_id, self_len);
        } else
                ck_assert_uint_eq(result_module(n, 0)->build_id_len, 0);

        ck_assert_int_eq(read(ifd, ev, sizeof(ev)), -1);
        ck_assert_int_eq(errno, EAGAIN);

        close(ctl[1]);
        ck_assert_int_eq(waitpid(pid, NULL, 0), pid);
        (void) unlink(path);
        (void) rmdir(hidden);
        (void) rmdir(dir);
}

START_TEST(test_planted_by_name) {
        planted_file(_i, true);
}
END_TEST

START_TEST(test_planted_map_files) {
        planted_file(_i, false);
}
END_TEST

/*
 * Names that read two ways in the maps file: a literal "\\012" (which the
 * text prints just like a newline), a live file whose name ends in
 * " (deleted)", and the kernel's own " (deleted)" marks.
 */
static const struct {
        const char *name;
        enum { KEEP, UNLINK, RENAME_OVER } fate;
        bool deleted;
} tricky_names[] = {
        { "lit\\012eral",     KEEP,           false },
        { "new\nline",         KEEP,           false },
        { "live (deleted)",     KEEP,           false },
        { "gone (deleted)",     UNLINK,         true },
        { "plain",              UNLINK,         true },
        /* Replaced by a rename while another link keeps the file alive. */
        { "replaced",           RENAME_OVER,    true },
};

typedef struct NameWalk {
        uint64_t addrs[ELEMENTSOF(tricky_names)];
        char names[ELEMENTSOF(tricky_names)][PATH_MAX];
        bool deleted[ELEMENTSOF(tricky_names)];
        unsigned found;
} NameWalk;

static int name_walk_cb(const Vma *v, void *userdata) {
        NameWalk *w = userdata;

        for (size_t i = 0; i < ELEMENTSOF(tricky_names); i++)
                if (v->start <= w->addrs[i] && w->addrs[i] < v->end) {
                        ck_assert_uint_eq(strlen(v->name), v->name_len);
                        snprintf(w->names[i], sizeof(w->names[i]), "%s", v->name);
                        w->deleted[i] = v->deleted;
                        w->found++;
                }
        return 0;
}

static void tricky_file_names(bool drop_caps) {
        _cleanup_(normalization_freep) Normalization *n = NULL;
        _cleanup_(proc_freep) Proc *p = NULL;
        char dir[] = "/tmp/vmaq-names-XXXXXX", path[ELEMENTSOF(tricky_names)][96], other[96], link_path[96];
        NameWalk w = {};
        int report[2], ctl[2];
        pid_t pid;
        char b;

        ck_assert_ptr_nonnull(mkdtemp(dir));
        for (size_t i = 0; i < ELEMENTSOF(tricky_names); i++) {
                _cleanup_close_ int fd = -EBADF;

                snprintf(path[i], sizeof(path[i]), "%s/%s", dir, tricky_names[i].name);
                fd = open(path[i], O_RDWR|O_CREAT|O_EXCL|O_CLOEXEC, 0644);
                ck_assert_int_ge(fd, 0);
                ck_assert_int_eq(ftruncate(fd, 4096), 0);
        }
        snprintf(other, sizeof(other), "%s/other", dir);
        snprintf(link_path, sizeof(link_path), "%s/replaced.link", dir);
        test_copy_file("/bin/true", other);

        ck_assert_int_eq(pipe2(report, O_CLOEXEC), 0);
        ck_assert_int_eq(pipe2(ctl, O_CLOEXEC), 0);
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                close(ctl[1]);
                (void) prctl(PR_SET_PDEATHSIG, SIGKILL);
                for (size_t i = 0; i < ELEMENTSOF(tricky_names); i++) {
                        int fd = open(path[i], O_RDONLY|O_CLOEXEC);
                        void *m = fd < 0 ? MAP_FAILED : mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, fd, 0);

                        if (m == MAP_FAILED)
                                _exit(EXIT_FAILURE);
                        close(fd);
                        w.addrs[i] = (uintptr_t) m + 0x10;
                        if ((tricky_names[i].fate == UNLINK && unlink(path[i]) < 0) ||
                            (tricky_names[i].fate == RENAME_OVER &&
                             (link(path[i], link_path) < 0 || rename(other, path[i]) < 0)))
                                _exit(EXIT_FAILURE);
                }
                if (write(report[1], w.addrs, sizeof(w.addrs)) != sizeof(w.addrs))
                        _exit(EXIT_FAILURE);
                (void) read(ctl[0], &b, 1);
                _exit(EXIT_SUCCESS);
        }
        close(report[1]);
        close(ctl[0]);
        ck_assert_int_eq(read(report[0], w.addrs, sizeof(w.addrs)), (ssize_t) sizeof(w.addrs));
        close(report[0]);

        if (drop_caps)
                test_drop_map_files_caps();
        p = open_proc(pid);
        n = normalize(p, w.addrs, ELEMENTSOF(tricky_names), NORMALIZE_BUILD_IDS);
        ck_assert_int_eq(proc_foreach_vma(p, 0, NULL, name_walk_cb, &w), 0);
        ck_assert_uint_eq(w.found, ELEMENTSOF(tricky_names));

        for (size_t i = 0; i < ELEMENTSOF(tricky_names); i++) {
                const NormModule *m = result_module(n, i);
                const char *expect = path[i];
                char newline[96];

                /*
                 * Without map_files the text cannot tell a literal "\\012"
                 * from a newline, and takes it for a newline.
                 */
                if (i == 0 && drop_caps && TEST_BACKEND == VMA_BACKEND_TEXT) {
                        snprintf(newline, sizeof(newline), "%s/lit\neral", dir);
                        expect = newline;
                }

                ck_assert_str_eq(m->path, expect);
                ck_assert_int_eq(m->deleted, tricky_names[i].deleted);
                ck_assert_str_eq(w.names[i], expect);
                ck_assert_int_eq(w.deleted[i], tricky_names[i].deleted);
        }

        /*
         * An ioctl Proc that reads the text for a batch asks the ioctl for
         * the raw names the text cannot tell: the same answer, also
         * without map_files.
         */
        if (TEST_BACKEND == VMA_BACKEND_IOCTL) {
                _cleanup_(normalization_freep) Normalization *t = NULL;

                t = normalize_with(p, w.addrs, ELEMENTSOF(tricky_names), NORMALIZE_BUILD_IDS, VMA_BACKEND_TEXT);
                assert_same_answer(n, t);
        }

        close(ctl[1]);
        ck_assert_int_eq(waitpid(pid, NULL, 0), pid);
        for (size_t i = 0; i < ELEMENTSOF(tricky_names); i++)
                (void) unlink(path[i]);
        (void) unlink(link_path);
        (void) rmdir(dir);
}

START_TEST(test_names_map_files) {
        tricky_file_names(false);
}
END_TEST

START_TEST(test_names_by_name) {
        tricky_file_names(true);
}
END_TEST

/*
 * Two ELF files with different build IDs, and a child mapping one page of
 * either at one address, MAP_FIXED over the other, on command or as fast as
 * it can.
 */
typedef struct Flip {
        char dir[32];
        char path[2][64];
        uint8_t id[2][BUILD_ID_MAX];
        size_t id_len[2];
        FileIdentity file[2];
        pid_t pid;
        int cmd_fd;             /* a byte: map the other file (on command) */
        int ack_fd;             /* a byte: done */
        uint64_t addr;
} Flip;

#define FLIP_BELOW UINT64_C(0x40000000)
#define FLIP_ADDR UINT64_C(0x40002000)

static void flip_setup(Flip *f, bool free_running) {
        int cmd[2], ack[2], fds[2];
        char exe[PATH_MAX];
        struct stat st;

        *f = (Flip) { .dir = "/tmp/vmaq-flip-XXXXXX" };
        test_self_exe(exe);
        ck_assert_ptr_nonnull(mkdtemp(f->dir));
        for (unsigned i = 0; i < 2; i++) {
                snprintf(f->path[i], sizeof(f->path[i]), "%s/%c", f->dir, "xy"[i]);
                test_copy_file(i == 0 ? exe : "/bin/true", f->path[i]);
                fds[i] = open(f->path[i], O_RDONLY|O_CLOEXEC);
                ck_assert_int_ge(fds[i], 0);
                ck_assert_int_eq(fstat(fds[i], &st), 0);
                f->id_len[i] = (size_t) elf_build_id_from_fd(fds[i], 0, (uint64_t) st.st_size, f->id[i]);
                ck_assert_uint_gt(f->id_len[i], 0);
                f->file[i] = (FileIdentity) {
                        .inode = st.st_ino,
                        .dev_major = major(st.st_dev),
                        .dev_minor = minor(st.st_dev),
                        .ctime_sec = st.st_ctim.tv_sec,
                        .ctime_nsec = st.st_ctim.tv_nsec,
                };
        }
        ck_assert(f->id_len[0] != f->id_len[1] || memcmp(f->id[0], f->id[1], f->id_len[0]) != 0);

        ck_assert_int_eq(pipe2(cmd, O_CLOEXEC), 0);
        ck_assert_int_eq(pipe2(ack, O_CLOEXEC), 0);
        f->pid = fork();
        ck_assert_int_ge(f->pid, 0);
        if (f->pid == 0) {
                uint8_t *m;
                char b;

                (void) prctl(PR_SET_PDEATHSIG, SIGKILL);
                /*
                 * Low, below anything else but an anonymous page of its own,
                 * so that it comes near the start of the maps file, within
                 * the text backend's first read, however large the map (the
                 * sanitizers add many VMAs).
                 */
                if (mmap((void *) FLIP_BELOW, 4096, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED_NOREPLACE,
                         -1, 0) != (void *) FLIP_BELOW)
                        _exit(EXIT_FAILURE);
                m = mmap((void *) FLIP_ADDR, 4096, PROT_READ, MAP_PRIVATE|MAP_FIXED_NOREPLACE, fds[0], 0);
                if (m != (void *) FLIP_ADDR)
                        _exit(EXIT_FAILURE);
                f->addr = (uintptr_t) m;
                if (write(ack[1], &f->addr, sizeof(f->addr)) != sizeof(f->addr))
                        _exit(EXIT_FAILURE);
                for (unsigned i = 1;; i ^= 1) {
                        if (!free_running && read(cmd[0], &b, 1) != 1)
                                _exit(EXIT_SUCCESS);
                        if (mmap(m, 4096, PROT_READ, MAP_PRIVATE|MAP_FIXED, fds[i], 0) != m)
                                _exit(EXIT_FAILURE);
                        if (!free_running && write(ack[1], &b, 1) != 1)
                                _exit(EXIT_FAILURE);
                }
        }
        close(fds[0]);
        close(fds[1]);
        close(cmd[0]);
        close(ack[1]);
        f->cmd_fd = cmd[1];
        f->ack_fd = ack[0];
        ck_assert_int_eq(read(f->ack_fd, &f->addr, sizeof(f->addr)), (ssize_t) sizeof(f->addr));
}

static void flip_command(Flip *f) {
        char b = 'f';

        ck_assert_int_eq(write(f->cmd_fd, &b, 1), 1);
        ck_assert_int_eq(read(f->ack_fd, &b, 1), 1);
}

static void flip_done(Flip *f) {
        kill(f->pid, SIGKILL);
        ck_assert_int_eq(waitpid(f->pid, NULL, 0), f->pid);
        f->cmd_fd = safe_close(f->cmd_fd);
        f->ack_fd = safe_close(f->ack_fd);
        for (unsigned i = 0; i < 2; i++)
                (void) unlink(f->path[i]);
        (void) rmdir(f->dir);
}

/*
 * Whether a build ID answered for the file with @inode is the right one:
 * that file's, or none. Counts the wrong ones.
 */
static unsigned flip_check(const Flip *f, uint64_t inode, const uint8_t *id, size_t len) {
        for (unsigned i = 0; i < 2; i++)
                if (inode == f->file[i].inode)
                        return len == 0 || (len == f->id_len[i] && memcmp(id, f->id[i], len) == 0) ? 0 : 1;
        return 1;       /* no VMA of ours at all */
}

/* Whether @cache holds a wrong build ID for either file. */
static unsigned flip_check_cache(const Flip *f, BuildIdCache *cache) {
        unsigned wrong = 0;

        for (unsigned i = 0; i < 2; i++) {
                uint8_t id[BUILD_ID_MAX];
                int r = build_id_cache_lookup(cache, &f->file[i], id);

                if (r != -ENOENT && (r != (int) f->id_len[i] || memcmp(id, f->id[i], f->id_len[i]) != 0))
                        wrong++;
        }
        return wrong;
}

typedef struct FlipWalk {
        const Flip *flip;
        Flip *command;          /* flip it on the first VMA, which lies below ours */
        unsigned wrong;
        unsigned found;
        uint64_t inode;         /* what was said of our VMA */
        size_t build_id_len;
        uint8_t build_id[BUILD_ID_MAX];
} FlipWalk;

static int flip_walk_cb(const Vma *v, void *userdata) {
        FlipWalk *w = userdata;

        if (w->command) {
                ck_assert_uint_lt(v->start, w->flip->addr);
                flip_command(w->command);
                w->command = NULL;
        }
        if (v->start == w->flip->addr) {
                w->wrong += flip_check(w->flip, v->inode, v->build_id, v->build_id_len);
                w->found++;
                w->inode = v->inode;
                w->build_id_len = v->build_id_len;
                memcpy(w->build_id, v->build_id, v->build_id_len);
        }
        return 0;
}

/*
 * A process flipping one mapping between two files while it is normalized:
 * every build ID answered, and every one remembered, belongs to the file
 * it is given for. A fresh cache each time, so that every try misses.
 */
START_TEST(test_build_id_flip_race) {
        _cleanup_(proc_freep) Proc *p = NULL;
        unsigned wrong = 0, found = 0;
        uint64_t addr;
        Flip f;

        flip_setup(&f, true);
        p = open_proc(f.pid);
        addr = f.addr + 0x10;

        for (unsigned i = 0; i < 600; i++) {
                _cleanup_(build_id_cache_freep) BuildIdCache *cache = NULL;
                _cleanup_(normalization_freep) Normalization *n = NULL;
                NormalizeOptions opts = { .flags = NORMALIZE_BUILD_IDS };

                ck_assert_int_eq(build_id_cache_new(&cache, 4), 0);
                opts.build_id_cache = cache;
                if (i % 2 == 0) {
                        const NormModule *m;

                        ck_assert_int_eq(proc_normalize(p, &addr, 1, &opts, &n), 0);
                        m = result_module(n, 0);
                        wrong += flip_check(&f, m->inode, m->build_id, m->build_id_len);
                        found++;
                } else {
                        FlipWalk w = { .flip = &f };

                        ck_assert_int_eq(proc_foreach_vma(p, PROC_LIST_BUILD_IDS, &opts, flip_walk_cb, &w), 0);
                        wrong += w.wrong;
                        found += w.found;
                }
                wrong += flip_check_cache(&f, cache);
        }

        flip_done(&f);
        ck_assert_uint_eq(found, 600);
        ck_assert_uint_eq(wrong, 0);
}
END_TEST

/*
 * The same, made to happen: the mapping flips after the walk found it but
 * before its build ID is read. The text backend still describes the file
 * it read in the map, which is no longer there: no build ID then, and
 * nothing remembered. The ioctl backend sees the flip.
 */
START_TEST(test_build_id_flip_stale) {
        _cleanup_(build_id_cache_freep) BuildIdCache *cache = NULL;
        _cleanup_(proc_freep) Proc *p = NULL;
        NormalizeOptions opts = { .flags = NORMALIZE_BUILD_IDS };
        uint8_t id[BUILD_ID_MAX];
        FlipWalk w;
        Flip f;

        flip_setup(&f, false);
        p = open_proc(f.pid);
        ck_assert_int_eq(build_id_cache_new(&cache, 4), 0);
        opts.build_id_cache = cache;

        /* On the first VMA, the anonymous page below ours, map the other file. */
        w = (FlipWalk) { .flip = &f, .command = &f };
        ck_assert_int_eq(proc_foreach_vma(p, PROC_LIST_BUILD_IDS, &opts, flip_walk_cb, &w), 0);
        ck_assert_uint_eq(w.found, 1);
        if (TEST_BACKEND == VMA_BACKEND_TEXT) {
                ck_assert_uint_eq(w.inode, f.file[0].inode);
                ck_assert_uint_eq(w.build_id_len, 0);
        } else {
                ck_assert_uint_eq(w.inode, f.file[1].inode);
                ck_assert_uint_eq(w.build_id_len, f.id_len[1]);
                ck_assert_mem_eq(w.build_id, f.id[1], f.id_len[1]);
        }
        ck_assert_int_eq(build_id_cache_lookup(cache, &f.file[0], id), -ENOENT);

        flip_done(&f);
}
END_TEST

/* A second batch takes build IDs from the cache, and they are the same. */
START_TEST(test_build_id_cache_use) {
        _cleanup_(normalization_freep) Normalization *a = NULL, *b = NULL;
        _cleanup_(build_id_cache_freep) BuildIdCache *cache = NULL;
        _cleanup_(proc_freep) Proc *p = NULL;
        NormalizeOptions opts = { .flags = NORMALIZE_BUILD_IDS };
        BuildIdCacheStats st;
        TestChild c;
        uint64_t addrs[9];

        test_child_spawn(&c);
        p = open_proc(c.pid);
        layout_addrs(&c, addrs);
        ck_assert_int_eq(build_id_cache_new(&cache, 16), 0);
        opts.build_id_cache = cache;

        ck_assert_int_eq(proc_normalize(p, addrs, ELEMENTSOF(addrs), &opts, &a), 0);
        build_id_cache_stats(cache, &st);
        /* The three files (the vDSO is not a file); root may look at map_files. */
        ck_assert_uint_eq(st.size, 3);
        ck_assert_uint_eq(st.misses, 3);
        ck_assert_uint_eq(st.hits, 0);

        ck_assert_int_eq(proc_normalize(p, addrs, ELEMENTSOF(addrs), &opts, &b), 0);
        build_id_cache_stats(cache, &st);
        ck_assert_uint_eq(st.hits, 3);
        ck_assert_uint_eq(st.misses, 3);
        assert_layout(&c, b, addrs);
        for (size_t i = 0; i < a->n_modules; i++) {
                ck_assert_uint_eq(a->modules[i].build_id_len, b->modules[i].build_id_len);
                ck_assert_mem_eq(a->modules[i].build_id, b->modules[i].build_id, a->modules[i].build_id_len);
        }
        test_child_stop(&c);
}
END_TEST

#define N_NORMALIZERS 3

typedef struct Normalizer {
        TestChild child;
        BuildIdCache *cache;
        const uint8_t *self_id;
        size_t self_len;
        unsigned wrong;
} Normalizer;

static void *normalizer_thread(void *userdata) {
        Normalizer *w = userdata;
        Proc *p = NULL;
        uint64_t addrs[9];

        layout_addrs(&w->child, addrs);
        if (proc_open(&p, w->child.pid, TEST_BACKEND) < 0) {
                w->wrong++;
                return NULL;
        }
        for (unsigned i = 0; i < 200; i++) {
                NormalizeOptions opts = { .flags = NORMALIZE_BUILD_IDS, .build_id_cache = w->cache };
                Normalization *n = NULL;
                const NormModule *m;

                if (proc_normalize(p, addrs, ELEMENTSOF(addrs), &opts, &n) < 0) {
                        w->wrong++;
                        continue;
                }
                /* The executable, which all share in the cache; the plain file, which is not ELF. */
                m = &n->modules[n->results[7].module];
                if (m->build_id_len != w->self_len || memcmp(m->build_id, w->self_id, w->self_len) != 0)
                        w->wrong++;
                m = &n->modules[n->results[0].module];
                if (m->build_id_len != 0 || strcmp(m->path, w->child.file_path) != 0)
                        w->wrong++;
                if (n->n_modules != 4)
                        w->wrong++;
                normalization_free(n);
        }
        proc_free(p);
        return NULL;
}

/* Threads normalizing different processes at once, through one cache smaller than their files. */
START_TEST(test_threads_share_cache) {
        _cleanup_(build_id_cache_freep) BuildIdCache *cache = NULL;
        Normalizer w[N_NORMALIZERS];
        pthread_t t[N_NORMALIZERS];
        uint8_t self_id[BUILD_ID_MAX];
        size_t self_len = test_self_build_id(self_id);
        BuildIdCacheStats st;

        ck_assert_int_eq(build_id_cache_new(&cache, 2), 0);
        for (unsigned i = 0; i < N_NORMALIZERS; i++) {
                w[i] = (Normalizer) { .cache = cache, .self_id = self_id, .self_len = self_len };
                test_child_spawn(&w[i].child);
        }
        for (unsigned i = 0; i < N_NORMALIZERS; i++)
                ck_assert_int_eq(pthread_create(&t[i], NULL, normalizer_thread, &w[i]), 0);
        for (unsigned i = 0; i < N_NORMALIZERS; i++)
                ck_assert_int_eq(pthread_join(t[i], NULL), 0);
        /* Last first: a child holds the control pipes of those spawned before it. */
        for (unsigned i = N_NORMALIZERS; i-- > 0;) {
                ck_assert_uint_eq(w[i].wrong, 0);
                test_child_stop(&w[i].child);
        }

        /* Three files each, the executable shared: every one looked up 200 times. */
        build_id_cache_stats(cache, &st);
        ck_assert_uint_eq(st.hits + st.misses, N_NORMALIZERS * 200 * 3);
}
END_TEST

/* Unsorted input with duplicates: answers in input order, one lookup per window. */
START_TEST(test_order_and_duplicates) {
        _cleanup_(normalization_freep) Normalization *n = NULL;
        _cleanup_(proc_freep) Proc *p = NULL;
        uint64_t ps = test_page_size();
        const size_t count = 1000;
        _cleanup_free_ uint64_t *addrs = malloc(count * sizeof(uint64_t));
        TestChild c;

        ck_assert_ptr_nonnull(addrs);
        test_child_spawn(&c);
        p = open_proc(c.pid);

        /* Descending, then repeated, all within the two pages of the file mapping. */
        for (size_t i = 0; i < count; i++)
                addrs[i] = c.file_addr + ((count - 1 - i) * 7) % (2 * ps);
        addrs[10] = addrs[20];
        addrs[11] = addrs[20];

        n = normalize(p, addrs, count, NORMALIZE_BUILD_IDS);
        ck_assert_uint_eq(n->n_lookups, 1);
        ck_assert_uint_eq(n->n_modules, 1);
        for (size_t i = 0; i < count; i++) {
                ck_assert_int_eq(n->results[i].kind, NORM_MODULE);
                ck_assert_uint_eq(n->results[i].offset, addrs[i] - c.file_addr + TEST_FILE_MAP_PGOFF * ps);
        }
        n = normalization_free(n);

        /* The layout shuffled with duplicates: same answers as in order. */
        {
                uint64_t base[9], mixed[18];
                static const unsigned perm[18] = { 8, 3, 0, 5, 8, 1, 7, 2, 6, 4, 0, 3, 7, 7, 1, 2, 6, 5 };
                _cleanup_(normalization_freep) Normalization *ref = NULL;

                layout_addrs(&c, base);
                for (size_t i = 0; i < ELEMENTSOF(mixed); i++)
                        mixed[i] = base[perm[i]];
                ref = normalize(p, base, ELEMENTSOF(base), NORMALIZE_BUILD_IDS);
                n = normalize(p, mixed, ELEMENTSOF(mixed), NORMALIZE_BUILD_IDS);
                ck_assert_uint_eq(n->n_modules, ref->n_modules);
                for (size_t i = 0; i < ELEMENTSOF(mixed); i++) {
                        const NormResult *a = &n->results[i], *b = &ref->results[perm[i]];

                        ck_assert_int_eq(a->kind, b->kind);
                        if (a->kind != NORM_MODULE)
                                continue;
                        ck_assert_uint_eq(a->offset, b->offset);
                        ck_assert_str_eq(n->modules[a->module].path, ref->modules[b->module].path);
                }
        }
        test_child_stop(&c);
}
END_TEST

#define MANY_FILES 600

/*
 * A batch over many files, each mapped twice far apart (so that the VMAs
 * of one file do not follow each other), shuffled: one module per file,
 * numbered in the order of their lowest address, and every address points
 * at its own file's module.
 */
START_TEST(test_many_files) {
        _cleanup_(normalization_freep) Normalization *n = NULL;
        _cleanup_(proc_freep) Proc *p = NULL;
        _cleanup_free_ uint64_t *addrs = malloc(2 * MANY_FILES * sizeof(uint64_t));
        _cleanup_free_ uint64_t *inodes = malloc(MANY_FILES * sizeof(uint64_t));
        _cleanup_free_ uint32_t *seen = calloc(MANY_FILES, sizeof(uint32_t));
        char dir[] = "/tmp/vmaq-many-XXXXXX", path[64];
        int report[2], ctl[2];
        uint32_t next = 0;
        unsigned seed = 7;
        pid_t pid;
        char b;

        ck_assert_ptr_nonnull(addrs);
        ck_assert_ptr_nonnull(inodes);
        ck_assert_ptr_nonnull(seen);
        ck_assert_ptr_nonnull(mkdtemp(dir));
        for (size_t i = 0; i < MANY_FILES; i++) {
                _cleanup_close_ int fd = -EBADF;
                struct stat st;

                snprintf(path, sizeof(path), "%s/%zu", dir, i);
                fd = open(path, O_RDWR|O_CREAT|O_EXCL|O_CLOEXEC, 0644);
                ck_assert_int_ge(fd, 0);
                ck_assert_int_eq(ftruncate(fd, 4096), 0);
                ck_assert_int_eq(fstat(fd, &st), 0);
                inodes[i] = st.st_ino;
        }

        ck_assert_int_eq(pipe2(report, O_CLOEXEC), 0);
        ck_assert_int_eq(pipe2(ctl, O_CLOEXEC), 0);
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                close(ctl[1]);
                (void) prctl(PR_SET_PDEATHSIG, SIGKILL);
                /* File i at addrs[i] and at addrs[MANY_FILES + i]. */
                for (size_t pass = 0; pass < 2; pass++)
                        for (size_t i = 0; i < MANY_FILES; i++) {
                                int fd;
                                void *m;

                                snprintf(path, sizeof(path), "%s/%zu", dir, i);
                                fd = open(path, O_RDONLY|O_CLOEXEC);
                                m = fd < 0 ? MAP_FAILED : mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, fd, 0);
                                if (m == MAP_FAILED)
                                        _exit(EXIT_FAILURE);
                                close(fd);
                                addrs[pass * MANY_FILES + i] = (uintptr_t) m + 4 * i;
                        }
                if (write(report[1], addrs, 2 * MANY_FILES * sizeof(uint64_t)) != 2 * MANY_FILES * sizeof(uint64_t))
                        _exit(EXIT_FAILURE);
                (void) read(ctl[0], &b, 1);
                _exit(EXIT_SUCCESS);
        }
        close(report[1]);
        close(ctl[0]);
        ck_assert_int_eq(read(report[0], addrs, 2 * MANY_FILES * sizeof(uint64_t)),
                         (ssize_t) (2 * MANY_FILES * sizeof(uint64_t)));
        close(report[0]);

        /* Shuffle, remembering which file each address is in (the low bits say). */
        for (size_t i = 2 * MANY_FILES - 1; i > 0; i--) {
                size_t j = rand_r(&seed) % (i + 1);
                uint64_t t = addrs[i];

                addrs[i] = addrs[j];
                addrs[j] = t;
        }

        p = open_proc(pid);
        n = normalize(p, addrs, 2 * MANY_FILES, 0);
        ck_assert_uint_eq(n->n_modules, MANY_FILES);
        ck_assert_uint_eq(n->n_lookups, 2 * MANY_FILES);
        for (size_t i = 0; i < 2 * MANY_FILES; i++) {
                size_t file = (addrs[i] & 0xfff) / 4;
                const NormModule *m = result_module(n, i);

                snprintf(path, sizeof(path), "%s/%zu", dir, file);
                ck_assert_str_eq(m->path, path);
                ck_assert_uint_eq(m->inode, inodes[file]);
                ck_assert_uint_eq(n->results[i].offset, 4 * file);
                /* Both VMAs of a file: one module. */
                if (seen[file] == 0)
                        seen[file] = n->results[i].module + 1;
                ck_assert_uint_eq(n->results[i].module, seen[file] - 1);
        }

        /* Numbered in address order: walk the addresses sorted. */
        qsort(addrs, 2 * MANY_FILES, sizeof(uint64_t), compare_u64);
        n = normalization_free(n);
        n = normalize(p, addrs, 2 * MANY_FILES, 0);
        for (size_t i = 0; i < 2 * MANY_FILES; i++) {
                ck_assert_uint_le(n->results[i].module, next);
                if (n->results[i].module == next)
                        next++;
        }
        ck_assert_uint_eq(next, MANY_FILES);

        close(ctl[1]);
        ck_assert_int_eq(waitpid(pid, NULL, 0), pid);
        for (size_t i = 0; i < MANY_FILES; i++) {
                snprintf(path, sizeof(path), "%s/%zu", dir, i);
                (void) unlink(path);
        }
        (void) rmdir(dir);
}
END_TEST

#define CAP_FILES 5

/* A child mapping the first page of CAP_FILES copies of the test executable; their addresses, then the vDSO's. */
static pid_t spawn_copies(char dir[static 32], uint64_t addrs[static CAP_FILES + 1], int *ret_ctl) {
        int report[2], ctl[2];
        char exe[PATH_MAX], path[64];
        pid_t pid;

        test_self_exe(exe);
        strcpy(dir, "/tmp/vmaq-cap-XXXXXX");
        ck_assert_ptr_nonnull(mkdtemp(dir));
        for (size_t i = 0; i < CAP_FILES; i++) {
                snprintf(path, sizeof(path), "%s/%zu", dir, i);
                test_copy_file(exe, path);
        }

        ck_assert_int_eq(pipe2(report, O_CLOEXEC), 0);
        ck_assert_int_eq(pipe2(ctl, O_CLOEXEC), 0);
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                char b;

                close(ctl[1]);
                (void) prctl(PR_SET_PDEATHSIG, SIGKILL);
                for (size_t i = 0; i < CAP_FILES; i++) {
                        int fd;
                        void *m;

                        snprintf(path, sizeof(path), "%s/%zu", dir, i);
                        fd = open(path, O_RDONLY|O_CLOEXEC);
                        m = fd < 0 ? MAP_FAILED : mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, fd, 0);
                        if (m == MAP_FAILED)
                                _exit(EXIT_FAILURE);
                        close(fd);
                        addrs[i] = (uintptr_t) m + 0x10;
                }
                addrs[CAP_FILES] = getauxval(AT_SYSINFO_EHDR) + 0x10;
                if (write(report[1], addrs, (CAP_FILES + 1) * sizeof(uint64_t)) != (CAP_FILES + 1) * sizeof(uint64_t))
                        _exit(EXIT_FAILURE);
                (void) read(ctl[0], &b, 1);
                _exit(EXIT_SUCCESS);
        }
        close(report[1]);
        close(ctl[0]);
        ck_assert_int_eq(read(report[0], addrs, (CAP_FILES + 1) * sizeof(uint64_t)),
                         (ssize_t) ((CAP_FILES + 1) * sizeof(uint64_t)));
        close(report[0]);
        *ret_ctl = ctl[1];
        return pid;
}

static void remove_copies(const char *dir) {
        char path[64];

        for (size_t i = 0; i < CAP_FILES; i++) {
                snprintf(path, sizeof(path), "%s/%zu", dir, i);
                (void) unlink(path);
        }
        (void) rmdir(dir);
}

/*
 * A batch over more files than it may read: the first ones in address
 * order get their build IDs, the rest are marked skipped and counted. Cache
 * hits are free, so with a cache each batch gets further; so is the vDSO
 * once read, as the Proc remembers it.
 */
START_TEST(test_build_id_cap) {
        _cleanup_(build_id_cache_freep) BuildIdCache *cache = NULL;
        _cleanup_(proc_freep) Proc *p = NULL;
        bool cached[CAP_FILES + 1] = {}, vdso_read = false;
        uint64_t addrs[CAP_FILES + 1];
        uint8_t self_id[BUILD_ID_MAX];
        size_t self_len;
        char dir[32];
        int ctl;
        pid_t pid;

        self_len = test_self_build_id(self_id);
        pid = spawn_copies(dir, addrs, &ctl);
        p = open_proc(pid);
        ck_assert_int_eq(build_id_cache_new(&cache, 16), 0);

        /* With and without the cache (root may look at map_files: the files are cached). */
        for (unsigned round = 0; round < 5; round++) {
                _cleanup_(normalization_freep) Normalization *n = NULL;
                NormalizeOptions opts = {
                        .flags = NORMALIZE_BUILD_IDS,
                        .max_build_id_reads = 2,
                        .build_id_cache = round > 0 ? cache : NULL,
                };
                size_t reads = 0, skipped = 0;

                ck_assert_int_eq(proc_normalize(p, addrs, CAP_FILES + 1, &opts, &n), 0);
                ck_assert_uint_eq(n->n_modules, CAP_FILES + 1);
                for (size_t i = 0; i < n->n_modules; i++) {
                        const NormModule *m = &n->modules[i];
                        /* Which input address: the modules are in address order, the inputs are not. */
                        size_t k = 0;

                        while (n->results[k].module != i)
                                k++;
                        if ((round > 0 && cached[k]) || (m->vdso && vdso_read)) {
                                ck_assert(!m->build_id_skipped);
                                ck_assert_uint_gt(m->build_id_len, 0);
                                ck_assert(m->vdso || m->build_id_len == self_len);
                        } else if (reads < 2) {
                                reads++;
                                ck_assert(!m->build_id_skipped);
                                ck_assert_uint_gt(m->build_id_len, 0);
                                if (m->vdso) {
                                        vdso_read = true;
                                        continue;
                                }
                                ck_assert_uint_eq(m->build_id_len, self_len);
                                ck_assert_mem_eq(m->build_id, self_id, self_len);
                                cached[k] = round > 0;
                        } else {
                                skipped++;
                                ck_assert(m->build_id_skipped);
                                ck_assert_uint_eq(m->build_id_len, 0);
                        }
                }
                ck_assert_uint_eq(n->n_build_ids_skipped, skipped);
                ck_assert_uint_eq(skipped, round == 0 ? CAP_FILES - 1 : round < 3 ? CAP_FILES + 1 - 2 * round : 0);
                ck_assert_uint_eq(reads, round < 4 ? 2 : 0);
        }
        /* The vDSO comes last and was read only in the last round. */
        ck_assert(vdso_read);

        /* No cap: none skipped. */
        {
                _cleanup_(normalization_freep) Normalization *n = NULL;

                n = normalize(p, addrs, CAP_FILES + 1, NORMALIZE_BUILD_IDS);
                ck_assert_uint_eq(n->n_build_ids_skipped, 0);
                for (size_t i = 0; i < n->n_modules; i++) {
                        ck_assert(!n->modules[i].build_id_skipped);
                        ck_assert_uint_gt(n->modules[i].build_id_len, 0);
                }
        }

        close(ctl);
        ck_assert_int_eq(waitpid(pid, NULL, 0), pid);
        remove_copies(dir);
}
END_TEST

typedef struct CapWalk {
        size_t max;             /* the cap */
        bool vdso_known;        /* read by an earlier call: free */
        size_t images;          /* images begun so far: a file or vDSO VMA other than the last file's */
        uint64_t last_inode;
        unsigned n_skipped;
        unsigned n_with_id;
} CapWalk;

static int cap_walk_cb(const Vma *v, void *userdata) {
        CapWalk *w = userdata;
        bool image = v->kind == VMA_KIND_VDSO || v->kind == VMA_KIND_FILE;

        if (!image || (v->kind == VMA_KIND_VDSO && w->vdso_known)) {
                ck_assert(!v->build_id_skipped);
                ck_assert(v->kind != VMA_KIND_VDSO || v->build_id_len > 0);
                return 0;
        }
        /* A file's next VMAs share its answer; any other image costs a read. */
        if (v->kind == VMA_KIND_VDSO || v->inode != w->last_inode)
                w->images++;
        w->last_inode = v->kind == VMA_KIND_FILE ? v->inode : 0;

        ck_assert_int_eq(v->build_id_skipped, w->images > w->max);
        if (v->build_id_skipped) {
                ck_assert_uint_eq(v->build_id_len, 0);
                w->n_skipped++;
        } else if (v->build_id_len > 0)
                w->n_with_id++;
        return 0;
}

/* A walk reads as many images as it may, and reports how many VMAs it gave without. */
START_TEST(test_build_id_cap_walk) {
        _cleanup_(proc_freep) Proc *p = NULL;
        uint64_t addrs[CAP_FILES + 1];
        char dir[32];
        int ctl, r;
        pid_t pid;

        pid = spawn_copies(dir, addrs, &ctl);
        p = open_proc(pid);

        for (size_t max = 0; max <= 8; max += 4) {
                NormalizeOptions opts = { .max_build_id_reads = max };
                CapWalk w = { .max = max > 0 ? max : SIZE_MAX, .vdso_known = max > 0 };

                r = proc_foreach_vma(p, PROC_LIST_BUILD_IDS, &opts, cap_walk_cb, &w);
                ck_assert_int_ge(r, 0);
                ck_assert_uint_eq((unsigned) r, w.n_skipped);
                /* The executable, its libraries, the copies and the vDSO: more than 8. */
                ck_assert_uint_gt(w.images, 8);
                if (max == 0)
                        ck_assert_uint_eq(w.n_skipped, 0);
                else
                        ck_assert_uint_gt(w.n_skipped, 0);
                ck_assert_uint_gt(w.n_with_id, 0);
        }

        close(ctl);
        ck_assert_int_eq(waitpid(pid, NULL, 0), pid);
        remove_copies(dir);
}
END_TEST

START_TEST(test_norm_kind_strings) {
        for (NormKind k = 0; k < _NORM_KIND_MAX; k++)
                ck_assert_int_eq(norm_kind_from_string(norm_kind_to_string(k)), k);
        ck_assert_str_eq(norm_kind_to_string(NORM_UNMAPPED), "unmapped");
        ck_assert_str_eq(norm_kind_to_string(NORM_ANONYMOUS), "anonymous");
        ck_assert_str_eq(norm_kind_to_string(NORM_SPECIAL), "special");
        ck_assert_int_eq(norm_kind_from_string("vdso"), _NORM_KIND_INVALID);
        ck_assert_ptr_null(norm_kind_to_string(_NORM_KIND_MAX));
}
END_TEST

START_TEST(test_empty_and_invalid) {
        _cleanup_(normalization_freep) Normalization *n = NULL;
        _cleanup_(proc_freep) Proc *p = open_proc(getpid());
        Proc *q = NULL;

        n = normalize(p, NULL, 0, NORMALIZE_BUILD_IDS);
        ck_assert_uint_eq(n->n_modules, 0);
        ck_assert_uint_eq(n->n_lookups, 0);

        ck_assert_int_eq(proc_normalize(p, NULL, 1, NULL, &n), -EINVAL);
        ck_assert_int_eq(proc_open(&q, 0, TEST_BACKEND), -EINVAL);
        ck_assert_int_eq(proc_open(&q, -1, TEST_BACKEND), -EINVAL);
        ck_assert_int_eq(proc_open(&q, getpid(), VMA_BACKEND_AUTO), -EINVAL);
        ck_assert_ptr_null(q);
}
END_TEST

START_TEST(test_no_such_process) {
        Proc *p = NULL;
        pid_t pid;

        /* A child that has been reaped leaves a pid nobody uses (for a while). */
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0)
                _exit(0);
        ck_assert_int_eq(waitpid(pid, NULL, 0), pid);

        ck_assert_int_eq(proc_open(&p, pid, TEST_BACKEND), -ESRCH);
        ck_assert_ptr_null(p);
}
END_TEST

START_TEST(test_kernel_thread) {
        char comm[32] = "";
        FILE *f;
        Proc *p = NULL;

        /* pid 2 is kthreadd in the initial pid namespace. */
        f = fopen("/proc/2/comm", "re");
        ck_assert_ptr_nonnull(f);
        ck_assert_ptr_nonnull(fgets(comm, sizeof(comm), f));
        fclose(f);
        ck_assert_str_eq(comm, "kthreadd\n");

        ck_assert_int_eq(proc_open(&p, 2, TEST_BACKEND), -ENXIO);
}
END_TEST

START_TEST(test_zombie) {
        _cleanup_(proc_freep) Proc *cached = NULL;
        _cleanup_(normalization_freep) Normalization *n = NULL;
        uint64_t addr = (uintptr_t) test_marker_function;
        siginfo_t si = {};
        int pipefd[2];
        Proc *p = NULL;
        pid_t pid;
        char b;

        ck_assert_int_eq(pipe2(pipefd, O_CLOEXEC), 0);
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                close(pipefd[1]);
                (void) read(pipefd[0], &b, 1);
                _exit(0);
        }
        close(pipefd[0]);

        cached = open_proc(pid);
        n = normalize(cached, &addr, 1, 0);
        ck_assert_int_eq(n->results[0].kind, NORM_MODULE);
        n = normalization_free(n);

        /* Let it exit, and wait without reaping: a zombie. */
        close(pipefd[1]);
        ck_assert_int_eq(waitid(P_PID, pid, &si, WEXITED|WNOWAIT), 0);

        ck_assert_int_eq(proc_open(&p, pid, TEST_BACKEND), -ENXIO);
        ck_assert_int_eq(proc_normalize(cached, &addr, 1, NULL, &n), -ENXIO);

        /* Reaped: gone. */
        ck_assert_int_eq(waitpid(pid, NULL, 0), pid);
        ck_assert_int_eq(proc_normalize(cached, &addr, 1, NULL, &n), -ESRCH);
        ck_assert_int_eq(proc_open(&p, pid, TEST_BACKEND), -ESRCH);
}
END_TEST

START_TEST(test_exec_between_calls) {
        _cleanup_(normalization_freep) Normalization *before = NULL, *after = NULL;
        _cleanup_(proc_freep) Proc *p = NULL;
        uint64_t addr = (uintptr_t) test_marker_function;
        int go[2], execd[2];
        char exe[PATH_MAX], b;
        uint64_t start_time;
        pid_t pid;

        test_self_exe(exe);
        ck_assert_int_eq(pipe2(go, O_CLOEXEC), 0);
        ck_assert_int_eq(pipe2(execd, O_CLOEXEC), 0);
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                close(execd[0]);
                close(go[1]);
                (void) read(go[0], &b, 1);
                execl("/bin/sleep", "sleep", "30", (char *) NULL);
                _exit(127);
        }
        close(go[0]);
        close(execd[1]);

        p = open_proc(pid);
        start_time = proc_start_time(p);
        before = normalize(p, &addr, 1, 0);
        ck_assert_str_eq(result_module(before, 0)->path, exe);
        ck_assert(!before->reattached);

        /* The close-on-exec pipe reports the exec. */
        close(go[1]);
        ck_assert_int_eq(read(execd[0], &b, 1), 0);

        /* The pinned start time still matches: exec keeps the process. */
        after = NULL;
        ck_assert_int_eq(proc_normalize(p, &addr, 1,
                                        &(NormalizeOptions) { .flags = NORMALIZE_PIN, .start_time = start_time },
                                        &after), 0);
        ck_assert(after->reattached);
        ck_assert_uint_eq(after->start_time, start_time);
        ck_assert(after->results[0].kind != NORM_MODULE ||
                  strcmp(after->modules[after->results[0].module].path, exe) != 0);

        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
}
END_TEST

START_TEST(test_pinned_start_time) {
        _cleanup_(normalization_freep) Normalization *n = NULL;
        _cleanup_(proc_freep) Proc *p = open_proc(getpid());
        uint64_t addr = (uintptr_t) test_marker_function;
        uint64_t st = proc_start_time(p);
        NormalizeOptions opts = { .flags = NORMALIZE_PIN, .start_time = st + 1 };

        ck_assert_int_eq(proc_normalize(p, &addr, 1, &opts, &n), -ESTALE);
        ck_assert_ptr_null(n);
        ck_assert_int_eq(proc_foreach_vma(p, 0, &opts, stop_cb, &(unsigned) { 0 }), -ESTALE);

        opts.start_time = st;
        ck_assert_int_eq(proc_normalize(p, &addr, 1, &opts, &n), 0);
        ck_assert_uint_eq(n->start_time, st);
}
END_TEST

START_TEST(test_start_time) {
        _cleanup_close_ int dir_fd = open("/proc/self", O_PATH|O_DIRECTORY|O_CLOEXEC);
        unsigned long long field22 = 0;
        uint64_t st;
        char buf[1024], *p;
        FILE *f;

        ck_assert_int_ge(dir_fd, 0);
        ck_assert_int_eq(proc_read_start_time(dir_fd, &st), 0);

        /* Independently: field 22, counted after the ')' that ends the command. */
        f = fopen("/proc/self/stat", "re");
        ck_assert_ptr_nonnull(f);
        ck_assert_ptr_nonnull(fgets(buf, sizeof(buf), f));
        fclose(f);
        p = strrchr(buf, ')');
        ck_assert_ptr_nonnull(p);
        ck_assert_int_eq(sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d %*d %llu",
                                &field22), 1);
        ck_assert_uint_eq(st, field22);
}
END_TEST

START_TEST(test_permission_denied) {
        Proc *p = NULL;

        /* Check runs this in its own forked process: dropping root here is contained. */
        if (geteuid() == 0)
                ck_assert_int_eq(setresuid(65534, 65534, 65534), 0);
        ck_assert_int_eq(proc_open(&p, 1, TEST_BACKEND), -EACCES);
        ck_assert_ptr_null(p);
}
END_TEST

/* The other backend must give the very same answers. */
static VmaBackend other_backend(void) {
        return TEST_BACKEND == VMA_BACKEND_IOCTL ? VMA_BACKEND_TEXT : VMA_BACKEND_IOCTL;
}

START_TEST(test_backends_agree_normalize) {
        _cleanup_(normalization_freep) Normalization *a = NULL, *b = NULL;
        _cleanup_(proc_freep) Proc *p = NULL, *q = NULL;
        TestChild c;
        uint64_t addrs[9];

        test_child_spawn(&c);
        layout_addrs(&c, addrs);
        p = open_proc(c.pid);
        ck_assert_int_eq(proc_open(&q, c.pid, other_backend()), 0);

        a = normalize(p, addrs, ELEMENTSOF(addrs), NORMALIZE_BUILD_IDS | NORMALIZE_MAP_FILES);
        b = normalize(q, addrs, ELEMENTSOF(addrs), NORMALIZE_BUILD_IDS | NORMALIZE_MAP_FILES);
        assert_layout(&c, b, addrs);

        ck_assert_uint_eq(a->start_time, b->start_time);
        ck_assert_uint_eq(a->n_modules, b->n_modules);
        for (size_t i = 0; i < a->n_modules; i++) {
                const NormModule *x = &a->modules[i], *y = &b->modules[i];

                ck_assert_str_eq(x->path, y->path);
                ck_assert_pstr_eq(x->map_files, y->map_files);
                ck_assert_uint_eq(x->inode, y->inode);
                ck_assert_uint_eq(x->dev_major, y->dev_major);
                ck_assert_uint_eq(x->dev_minor, y->dev_minor);
                ck_assert_int_eq(x->deleted, y->deleted);
                ck_assert_int_eq(x->vdso, y->vdso);
                ck_assert_uint_eq(x->build_id_len, y->build_id_len);
                ck_assert_mem_eq(x->build_id, y->build_id, x->build_id_len);
        }
        ck_assert_mem_eq(a->results, b->results, sizeof(NormResult) * ELEMENTSOF(addrs));
        test_child_stop(&c);
}
END_TEST

typedef struct VmaList {
        size_t n;
        Vma vmas[4096];
        char names[4096][256];
} VmaList;

#define STRATEGY_MAPPINGS 2000

/*
 * A child with many VMAs: the first page of the test executable (which
 * has a build ID) mapped STRATEGY_MAPPINGS times, and a file mapped then
 * unlinked, besides what it inherits (libraries, heap, stack, vDSO).
 */
static pid_t spawn_many_mappings(char deleted[static 64], int *ret_ctl) {
        char exe[PATH_MAX];
        int ready[2], ctl[2], fd;
        pid_t pid;
        char b;

        test_self_exe(exe);
        strcpy(deleted, "/tmp/vmaq-strategy-XXXXXX");
        fd = mkostemp(deleted, O_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(ftruncate(fd, 8192), 0);
        ck_assert_int_eq(pipe2(ready, O_CLOEXEC), 0);
        ck_assert_int_eq(pipe2(ctl, O_CLOEXEC), 0);
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                int exe_fd = open(exe, O_RDONLY|O_CLOEXEC);

                close(ctl[1]);
                (void) prctl(PR_SET_PDEATHSIG, SIGKILL);
                if (exe_fd < 0 || mmap(NULL, 8192, PROT_READ, MAP_PRIVATE, fd, 0) == MAP_FAILED ||
                    unlink(deleted) < 0)
                        _exit(EXIT_FAILURE);
                for (size_t i = 0; i < STRATEGY_MAPPINGS; i++)
                        if (mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, exe_fd, 0) == MAP_FAILED)
                                _exit(EXIT_FAILURE);
                if (write(ready[1], "x", 1) != 1)
                        _exit(EXIT_FAILURE);
                (void) read(ctl[0], &b, 1);
                _exit(EXIT_SUCCESS);
        }
        close(fd);
        close(ready[1]);
        close(ctl[0]);
        ck_assert_int_eq(read(ready[0], &b, 1), 1);
        close(ready[0]);
        *ret_ctl = ctl[1];
        return pid;
}

static int collect_cb(const Vma *v, void *userdata);

/* The length of the maps file of @pid. */
static size_t maps_size(pid_t pid) {
        _cleanup_close_ int fd = -EBADF;
        char path[64], buf[65536];
        size_t total = 0;
        ssize_t k;

        snprintf(path, sizeof(path), "/proc/%d/maps", (int) pid);
        fd = open(path, O_RDONLY|O_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        while ((k = read(fd, buf, sizeof(buf))) > 0)
                total += (size_t) k;
        ck_assert_int_eq(k, 0);
        return total;
}

/*
 * @n random addresses, unsorted and with repeats: most in the VMAs of @l,
 * some in the gaps between them and beyond, and the last VMA's, so that a
 * text pass reads the whole map.
 */
static void random_addrs(const VmaList *l, uint64_t *addrs, size_t n, unsigned *seed) {
        for (size_t i = 0; i < n; i++) {
                const Vma *v = &l->vmas[rand_r(seed) % l->n];
                unsigned dice = rand_r(seed) % 16;

                if (i > 0 && dice < 4)
                        addrs[i] = addrs[rand_r(seed) % i];             /* a repeat */
                else if (dice == 4)
                        addrs[i] = v->end + rand_r(seed) % 4096;        /* a gap, or the next VMA */
                else if (dice == 5 && i % 7 == 0)
                        addrs[i] = UINT64_MAX - rand_r(seed) % 4096;    /* beyond every VMA */
                else
                        addrs[i] = v->start + (uint64_t) rand_r(seed) % (v->end - v->start);
        }
        if (n > 1)
                addrs[rand_r(seed) % n] = l->vmas[l->n - 1].start;
}

/*
 * The same batches on the same process give the very same answers whether
 * an ioctl Proc reads them with the ioctl, the text, or as it chooses,
 * build IDs included: also when its choice is made for it by the costs,
 * either way, and when a text pass runs over its budget.
 */
START_TEST(test_strategies_agree) {
        static const size_t sizes[] = { 1, 3, 100, 5000, 100000 };
        _cleanup_(proc_freep) Proc *p = NULL, *to_text = NULL, *to_ioctl = NULL;
        _cleanup_free_ VmaList *l = calloc(1, sizeof(VmaList));
        _cleanup_free_ uint64_t *addrs = malloc(100000 * sizeof(uint64_t));
        char deleted[64];
        unsigned seed = 11;
        int ctl;
        pid_t pid;

        ck_assert_ptr_nonnull(l);
        ck_assert_ptr_nonnull(addrs);
        pid = spawn_many_mappings(deleted, &ctl);
        ck_assert_int_eq(proc_open(&p, pid, VMA_BACKEND_IOCTL), 0);
        ck_assert_int_eq(proc_open(&to_text, pid, VMA_BACKEND_IOCTL), 0);
        ck_assert_int_eq(proc_open(&to_ioctl, pid, VMA_BACKEND_IOCTL), 0);
        ck_assert_int_eq(proc_set_costs(to_text, 1e6, 1e-3), 0);
        ck_assert_int_eq(proc_set_costs(to_ioctl, 1e-3, 1e6), 0);
        ck_assert_int_eq(proc_foreach_vma(p, 0, NULL, collect_cb, l), 0);
        ck_assert_uint_gt(l->n, STRATEGY_MAPPINGS);

        for (unsigned round = 0; round < 2; round++)
                for (size_t k = 0; k < ELEMENTSOF(sizes); k++) {
                        _cleanup_(normalization_freep) Normalization *a = NULL, *b = NULL, *c = NULL,
                                *d = NULL, *e = NULL;
                        unsigned flags = NORMALIZE_BUILD_IDS | (round ? NORMALIZE_MAP_FILES : 0);

                        random_addrs(l, addrs, sizes[k], &seed);
                        a = normalize_with(p, addrs, sizes[k], flags, VMA_BACKEND_IOCTL);
                        b = normalize_with(p, addrs, sizes[k], flags, VMA_BACKEND_TEXT);
                        c = normalize_with(p, addrs, sizes[k], flags, VMA_BACKEND_AUTO);
                        d = normalize_with(to_text, addrs, sizes[k], flags, VMA_BACKEND_AUTO);
                        e = normalize_with(to_ioctl, addrs, sizes[k], flags, VMA_BACKEND_AUTO);
                        ck_assert_int_eq(d->strategy, VMA_BACKEND_TEXT);
                        ck_assert_int_eq(e->strategy, VMA_BACKEND_IOCTL);
                        /* A few random addresses may all fall into anonymous maps (ASan has large ones). */
                        if (sizes[k] >= 100)
                                ck_assert_uint_gt(a->n_modules, 0);
                        assert_same_answer(a, b);
                        assert_same_answer(a, c);
                        assert_same_answer(a, d);
                        assert_same_answer(a, e);
                }

        /*
         * A Proc that has never read the text assumes a read of one chunk:
         * at 1000 ns a lookup and 1 ns a byte, 70 addresses (70 µs) pick
         * the text with a budget of 140,000 bytes, which the map is longer
         * than. The ioctl answers the rest.
         */
        {
                _cleanup_(normalization_freep) Normalization *a = NULL, *b = NULL;
                _cleanup_(proc_freep) Proc *q = NULL;

                ck_assert_uint_gt(maps_size(pid), 150000);
                ck_assert_int_eq(proc_open(&q, pid, VMA_BACKEND_IOCTL), 0);
                ck_assert_int_eq(proc_set_costs(q, 1000, 1), 0);
                for (size_t i = 0; i < 70; i++)
                        addrs[i] = l->vmas[l->n - 1 - i].start;
                a = normalize_with(p, addrs, 70, NORMALIZE_BUILD_IDS, VMA_BACKEND_IOCTL);
                ck_assert_uint_eq(a->n_lookups, 70);
                b = normalize_with(q, addrs, 70, NORMALIZE_BUILD_IDS, VMA_BACKEND_AUTO);
                ck_assert_int_eq(b->strategy, VMA_BACKEND_TEXT);
                assert_same_answer(a, b);
        }

        close(ctl);
        ck_assert_int_eq(waitpid(pid, NULL, 0), pid);
}
END_TEST

/*
 * The automatic choice, with the costs given: the ioctl for one address,
 * the text for a batch over every mapping once the Proc has seen the map,
 * and the ioctl again when lookups are cheap. Before any measurement, the
 * ioctl.
 */
START_TEST(test_strategy_choice) {
        _cleanup_(proc_freep) Proc *p = NULL;
        _cleanup_free_ VmaList *l = calloc(1, sizeof(VmaList));
        _cleanup_free_ uint64_t *addrs = malloc(100000 * sizeof(uint64_t));
        Normalization *n;
        char deleted[64];
        unsigned seed = 5;
        int ctl;
        pid_t pid;

        ck_assert_ptr_nonnull(l);
        ck_assert_ptr_nonnull(addrs);
        pid = spawn_many_mappings(deleted, &ctl);
        ck_assert_int_eq(proc_open(&p, pid, VMA_BACKEND_IOCTL), 0);
        ck_assert_int_eq(proc_foreach_vma(p, 0, NULL, collect_cb, l), 0);
        random_addrs(l, addrs, 100000, &seed);

        n = normalize_with(p, addrs, 100000, 0, VMA_BACKEND_AUTO);
        ck_assert_int_eq(n->strategy, VMA_BACKEND_IOCTL);
        normalization_free(n);

        /* Seeing the whole map once, then 1000 ns a lookup against 1 ns a byte. */
        normalization_free(normalize_with(p, addrs, 100000, 0, VMA_BACKEND_TEXT));
        ck_assert_int_eq(proc_set_costs(p, 1000, 1), 0);
        n = normalize_with(p, addrs, 1, 0, VMA_BACKEND_AUTO);
        ck_assert_int_eq(n->strategy, VMA_BACKEND_IOCTL);
        normalization_free(n);
        n = normalize_with(p, &l->vmas[l->n - 1].start, 1, 0, VMA_BACKEND_AUTO);
        ck_assert_int_eq(n->strategy, VMA_BACKEND_IOCTL);
        normalization_free(n);
        n = normalize_with(p, addrs, 100000, 0, VMA_BACKEND_AUTO);
        ck_assert_int_eq(n->strategy, VMA_BACKEND_TEXT);
        ck_assert_uint_gt(n->n_lookups, STRATEGY_MAPPINGS);
        normalization_free(n);

        ck_assert_int_eq(proc_set_costs(p, 1, 1000), 0);
        n = normalize_with(p, addrs, 100000, 0, VMA_BACKEND_AUTO);
        ck_assert_int_eq(n->strategy, VMA_BACKEND_IOCTL);
        normalization_free(n);

        ck_assert_int_eq(proc_set_costs(p, 0, 1), -EINVAL);
        ck_assert_int_eq(proc_set_costs(p, 1, -1), -EINVAL);
        n = NULL;
        ck_assert_int_eq(proc_normalize(p, addrs, 1, &(NormalizeOptions) { .strategy = _VMA_BACKEND_MAX }, &n),
                         -EINVAL);
        ck_assert_ptr_null(n);

        close(ctl);
        ck_assert_int_eq(waitpid(pid, NULL, 0), pid);
}
END_TEST

/* A text Proc always reads the text, and refuses the ioctl. */
START_TEST(test_strategy_text_backend) {
        _cleanup_(normalization_freep) Normalization *a = NULL, *b = NULL;
        _cleanup_(proc_freep) Proc *p = NULL;
        uint64_t addr = (uintptr_t) test_marker_function;
        Normalization *n = NULL;

        ck_assert_int_eq(proc_open(&p, getpid(), VMA_BACKEND_TEXT), 0);
        ck_assert_int_eq(proc_normalize(p, &addr, 1, &(NormalizeOptions) { .strategy = VMA_BACKEND_IOCTL }, &n),
                         -EOPNOTSUPP);
        ck_assert_ptr_null(n);
        a = normalize_with(p, &addr, 1, 0, VMA_BACKEND_AUTO);
        ck_assert_int_eq(a->strategy, VMA_BACKEND_TEXT);
        ck_assert_int_eq(proc_set_costs(p, 1e6, 1e-3), 0);
        b = normalize_with(p, &addr, 1, 0, VMA_BACKEND_TEXT);
        assert_same_answer(a, b);
}
END_TEST

static int collect_cb(const Vma *v, void *userdata) {
        VmaList *l = userdata;

        if (l->n == ELEMENTSOF(l->vmas))
                return -ENOBUFS;
        l->vmas[l->n] = *v;
        snprintf(l->names[l->n], sizeof(l->names[l->n]), "%s", v->name);
        l->vmas[l->n].name = l->names[l->n];
        l->n++;
        return 0;
}

static bool vma_lists_equal(const VmaList *a, const VmaList *b) {
        if (a->n != b->n)
                return false;
        for (size_t i = 0; i < a->n; i++) {
                const Vma *x = &a->vmas[i], *y = &b->vmas[i];

                if (x->start != y->start || x->end != y->end || x->offset != y->offset ||
                    x->perms != y->perms || x->inode != y->inode || x->dev_major != y->dev_major ||
                    x->dev_minor != y->dev_minor || x->kind != y->kind || x->deleted != y->deleted ||
                    strcmp(x->name, y->name) != 0)
                        return false;
        }
        return true;
}

/*
 * Seed test: both backends list the same VMAs of a process, a child that
 * waits: listing our own map would change it (each listing allocates its
 * buffers, and a sanitizer's allocator maps fresh memory for them).
 */
START_TEST(test_backends_agree_list) {
        _cleanup_(proc_freep) Proc *p = NULL, *q = NULL;
        _cleanup_free_ VmaList *a = calloc(1, sizeof(VmaList)), *b = calloc(1, sizeof(VmaList));
        TestChild c;

        ck_assert_ptr_nonnull(a);
        ck_assert_ptr_nonnull(b);
        test_child_spawn(&c);
        p = open_proc(c.pid);
        ck_assert_int_eq(proc_open(&q, c.pid, other_backend()), 0);

        ck_assert_int_eq(proc_foreach_vma(p, 0, NULL, collect_cb, a), 0);
        ck_assert_int_eq(proc_foreach_vma(q, 0, NULL, collect_cb, b), 0);
        ck_assert_uint_gt(a->n, 5);
        ck_assert(vma_lists_equal(a, b));
        test_child_stop(&c);
}
END_TEST

/*
 * The test executable as an exec target: with VMAQ_TEST_EXEC_READY=FD it
 * reports on FD that it is up and waits to be killed; with
 * VMAQ_TEST_EXEC_LOOP it maps EXEC_LOOP_VMAS VMAs, pauses a little, and
 * execs itself again, for ever. The pause is much longer than a walk
 * takes, so that a walk started over after an exec is not cut short by
 * the next one, even on a loaded machine: a walk fails after a few.
 */
#define EXEC_LOOP_VMAS 1000

static void exec_target(char *argv[]) {
        const char *e;

        e = getenv("VMAQ_TEST_EXEC_READY");
        if (e) {
                uint64_t fd;
                char b = 'r';

                if (parse_u64(e, 10, &fd) < 0 || fd > INT_MAX || write((int) fd, &b, 1) != 1)
                        _exit(EXIT_FAILURE);
                for (;;)
                        pause();
        }

        if (getenv("VMAQ_TEST_EXEC_LOOP")) {
                for (unsigned i = 0; i < EXEC_LOOP_VMAS; i++)
                        /* Alternating protections: no two merge. */
                        if (mmap(NULL, 4096, i % 2 ? PROT_READ : PROT_NONE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) ==
                            MAP_FAILED)
                                _exit(EXIT_FAILURE);
                (void) nanosleep(&(struct timespec) { .tv_nsec = 20 * 1000 * 1000 }, NULL);
                execv("/proc/self/exe", argv);
                _exit(127);
        }
}

typedef struct ExecWalk {
        VmaList *list;          /* what the walk gave since it last started */
        unsigned n_restarts;
        int go_fd;              /* a byte: exec now (on the first VMA), then -EBADF */
        int ready_fd;           /* a byte: the new image is up */
} ExecWalk;

static int exec_walk_cb(const Vma *v, void *userdata) {
        ExecWalk *w = userdata;

        if (!v) {
                w->n_restarts++;
                w->list->n = 0;
                return 0;
        }
        if (w->list->n > 0)
                ck_assert_uint_le(w->list->vmas[w->list->n - 1].end, v->start);
        if (w->go_fd >= 0) {
                char b = 'x';

                ck_assert_int_eq(write(w->go_fd, &b, 1), 1);
                ck_assert_int_eq(read(w->ready_fd, &b, 1), 1);
                w->go_fd = safe_close(w->go_fd);
        }
        return collect_cb(v, w->list);
}

/*
 * The process execs while it is walked, after part of its map was given:
 * with PROC_LIST_RESTART the caller is told to drop it, once, and gets the
 * whole new map; without it, the walk fails as it did.
 */
START_TEST(test_exec_during_walk) {
        _cleanup_free_ VmaList *fresh = calloc(1, sizeof(VmaList));
        _cleanup_free_ VmaList *list = calloc(1, sizeof(VmaList));
        _cleanup_(proc_freep) Proc *p = NULL;
        unsigned flags = _i ? PROC_LIST_RESTART | PROC_LIST_BUILD_IDS : 0;
        int go[2], ready[2], r;
        ExecWalk w;
        unsigned generation;
        char exe[PATH_MAX];
        pid_t pid;

        ck_assert_ptr_nonnull(fresh);
        ck_assert_ptr_nonnull(list);
        test_self_exe(exe);
        ck_assert_int_eq(pipe2(go, O_CLOEXEC), 0);
        ck_assert_int_eq(pipe2(ready, O_CLOEXEC), 0);
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                char b, env[32];

                (void) prctl(PR_SET_PDEATHSIG, SIGKILL);
                close(go[1]);
                close(ready[0]);
                snprintf(env, sizeof(env), "%d", ready[1]);
                if (fcntl(ready[1], F_SETFD, 0) < 0 || setenv("VMAQ_TEST_EXEC_READY", env, 1) < 0 ||
                    read(go[0], &b, 1) != 1)
                        _exit(EXIT_FAILURE);
                execl(exe, exe, (char *) NULL);
                _exit(127);
        }
        close(go[0]);
        close(ready[1]);

        p = open_proc(pid);
        generation = proc_generation(p);
        w = (ExecWalk) { .list = list, .go_fd = go[1], .ready_fd = ready[0] };
        r = proc_foreach_vma(p, flags, NULL, exec_walk_cb, &w);
        if (flags & PROC_LIST_RESTART) {
                ck_assert_int_eq(r, 0);
                ck_assert_uint_eq(w.n_restarts, 1);
                ck_assert_uint_eq(proc_generation(p), generation + 1);
        } else {
                ck_assert_int_eq(r, -ESRCH);
                ck_assert_uint_eq(w.n_restarts, 0);
                /* The next call attaches to the new image. */
                list->n = 0;
                ck_assert_int_eq(proc_foreach_vma(p, flags, NULL, collect_cb, list), 0);
        }

        /* The whole map of the new image, which has settled: as a walk now sees it. */
        ck_assert_int_eq(proc_foreach_vma(p, 0, NULL, collect_cb, fresh), 0);
        ck_assert(vma_lists_equal(list, fresh));
        ck_assert_uint_gt(list->n, 5);

        close(ready[0]);
        kill(pid, SIGKILL);
        ck_assert_int_eq(waitpid(pid, NULL, 0), pid);
}
END_TEST

/* A process that execs in a loop, walked again and again: every walk ends with one whole map. */
START_TEST(test_exec_loop) {
        _cleanup_free_ VmaList *list = calloc(1, sizeof(VmaList));
        _cleanup_(proc_freep) Proc *p = NULL;
        unsigned restarts = 0, max_vmas = 0;
        char exe[PATH_MAX];
        pid_t pid;

        ck_assert_ptr_nonnull(list);
        test_self_exe(exe);
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                (void) prctl(PR_SET_PDEATHSIG, SIGKILL);
                if (setenv("VMAQ_TEST_EXEC_LOOP", "1", 1) < 0)
                        _exit(EXIT_FAILURE);
                execl(exe, exe, (char *) NULL);
                _exit(127);
        }

        p = open_proc(pid);
        for (unsigned i = 0; i < 300; i++) {
                ExecWalk w = { .list = list, .go_fd = -EBADF, .ready_fd = -EBADF };

                list->n = 0;
                ck_assert_int_eq(proc_foreach_vma(p, PROC_LIST_RESTART, NULL, exec_walk_cb, &w), 0);
                ck_assert_uint_gt(list->n, 0);
                restarts += w.n_restarts;
                max_vmas = MAX(max_vmas, (unsigned) list->n);
        }
        fprintf(stderr, "NOTE: %u restarts in 300 walks, up to %u VMAs\n", restarts, max_vmas);

        kill(pid, SIGKILL);
        ck_assert_int_eq(waitpid(pid, NULL, 0), pid);
}
END_TEST

/* --- ELF facts and virtual addresses --------------------------------------- */

static const char elf_target_src[] =
        "#include <dlfcn.h>\n"
        "#include <stdio.h>\n"
        "#include <unistd.h>\n"
        "int bss_var;\n"
        "__attribute__((noinline)) int target_func(int x) { return x * 3 + bss_var; }\n"
        "int main(int argc, char **argv) {\n"
        "        void *lib_func = 0;\n"
        "        char c;\n"
        "        if (argc > 1) {\n"
        "                void *h = dlopen(argv[1], RTLD_NOW);\n"
        "                if (!h || !(lib_func = dlsym(h, \"lib_func\")))\n"
        "                        return 2;\n"
        "        }\n"
        "        printf(\"%p %p %p\\n\", (void *) target_func, lib_func, (void *) &bss_var);\n"
        "        fflush(stdout);\n"
        "        (void) read(0, &c, 1);\n"
        "        return target_func(c);\n"
        "}\n";

static const char elf_lib_src[] =
        "__attribute__((noinline)) int lib_func(int x) { return x + 7; }\n";

static bool have_gcc(void) {
        return system("command -v gcc >/dev/null 2>&1 && command -v nm >/dev/null 2>&1") == 0;
}

static void elf_write(const char *path, const char *text) {
        FILE *f = fopen(path, "we");

        ck_assert_ptr_nonnull(f);
        ck_assert_int_ge(fputs(text, f), 0);
        ck_assert_int_eq(fclose(f), 0);
}

static void elf_sh(const char *cmd) {
        int r = system(cmd);

        ck_assert_msg(r == 0, "'%s' failed: %d", cmd, r);
}

/* The value of symbol @sym in @path, from nm. */
static uint64_t nm_value(const char *path, const char *sym) {
        _cleanup_free_ char *cmd = NULL;
        char line[256];
        uint64_t v = 0;
        bool found = false;
        FILE *f;

        ck_assert_int_ge(asprintf(&cmd, "nm '%s'", path), 0);
        f = popen(cmd, "re");
        ck_assert_ptr_nonnull(f);
        while (fgets(line, sizeof(line), f)) {
                char name[128], type;
                unsigned long long x;

                if (sscanf(line, "%llx %c %127s", &x, &type, name) == 3 && strcmp(name, sym) == 0) {
                        v = x;
                        found = true;
                }
        }
        ck_assert_int_eq(pclose(f), 0);
        ck_assert_msg(found, "no %s in %s", sym, path);
        return v;
}

typedef struct ElfTarget {
        pid_t pid;
        int stdin_fd;
        uint64_t func;
        uint64_t lib_func;
        uint64_t bss;
} ElfTarget;

/* Run @exe (with @lib to dlopen, or NULL) and read the addresses it reports. */
static void elf_target_start(ElfTarget *t, const char *exe, const char *lib) {
        int in[2], out[2];
        char line[256];
        FILE *f;

        ck_assert_int_eq(pipe2(in, O_CLOEXEC), 0);
        ck_assert_int_eq(pipe2(out, O_CLOEXEC), 0);
        t->pid = fork();
        ck_assert_int_ge(t->pid, 0);
        if (t->pid == 0) {
                (void) prctl(PR_SET_PDEATHSIG, SIGKILL);
                if (dup2(in[0], 0) < 0 || dup2(out[1], 1) < 0)
                        _exit(127);
                execl(exe, exe, lib, (char *) NULL);
                _exit(127);
        }
        close(in[0]);
        close(out[1]);
        t->stdin_fd = in[1];

        f = fdopen(out[0], "re");
        ck_assert_ptr_nonnull(f);
        ck_assert_ptr_nonnull(fgets(line, sizeof(line), f));
        fclose(f);
        {
                unsigned long long a, b, c;

                ck_assert_int_eq(sscanf(line, "%llx %llx %llx", &a, &b, &c), 3);
                t->func = a;
                t->lib_func = b;
                t->bss = c;
        }
}

static void elf_target_stop(ElfTarget *t) {
        int status;

        close(t->stdin_fd);
        ck_assert_int_eq(waitpid(t->pid, &status, 0), t->pid);
}

/* The build ID of @path, read independently of the ELF facts parser. */
static size_t file_build_id(const char *path, uint8_t id[static BUILD_ID_MAX]) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        struct stat st;
        int r;

        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(fstat(fd, &st), 0);
        r = elf_build_id_from_fd(fd, 0, st.st_size, id);
        ck_assert_int_gt(r, 0);
        return (size_t) r;
}

static void assert_elf_module(const Normalization *n, size_t i, const char *path, ElfType type) {
        const NormModule *m = result_module(n, i);
        uint8_t id[BUILD_ID_MAX];
        size_t len;

        ck_assert_int_eq(m->elf_status, NORM_VADDR_OK);
        ck_assert_ptr_nonnull(m->elf);
        ck_assert_msg(m->elf->type == type, "%s: %s", path, elf_type_to_string(m->elf->type));
        len = file_build_id(path, id);
        ck_assert_uint_eq(m->build_id_len, len);
        ck_assert_mem_eq(m->build_id, id, len);
        ck_assert_uint_eq(m->elf->build_id_len, len);
}

/*
 * For an executable built here (PIE or not) and a library it dlopens: the
 * ELF address of an address inside a function is the function's symbol
 * value plus the offset into it.
 */
START_TEST(test_elf_vaddr) {
        static const char *const exe_flags[] = { "-fPIE -pie", "-fno-PIE -no-pie", "-fPIE -pie -Wl,-z,separate-code" };
        char dir[] = "/tmp/test-norm-elf-XXXXXX", cmd[1024], exe[64], lib[64];

        if (!have_gcc()) {
                fprintf(stderr, "SKIP: no gcc or nm: ELF address tests not run\n");
                return;
        }
        ck_assert_ptr_nonnull(mkdtemp(dir));
        snprintf(exe, sizeof(exe), "%s/t", dir);
        snprintf(lib, sizeof(lib), "%s/lib.so", dir);
        snprintf(cmd, sizeof(cmd), "%s/t.c", dir);
        elf_write(cmd, elf_target_src);
        snprintf(cmd, sizeof(cmd), "%s/lib.c", dir);
        elf_write(cmd, elf_lib_src);
        snprintf(cmd, sizeof(cmd), "gcc -O1 -shared -fPIC -o %s %s/lib.c", lib, dir);
        elf_sh(cmd);

        for (size_t k = 0; k < ELEMENTSOF(exe_flags); k++) {
                _cleanup_(normalization_freep) Normalization *n = NULL, *plain = NULL;
                _cleanup_(proc_freep) Proc *p = NULL;
                uint64_t func_value, lib_value, addrs[5];
                bool pie = k != 1;
                ElfTarget t;

                snprintf(cmd, sizeof(cmd), "gcc -O1 %s -o %s %s/t.c -ldl", exe_flags[k], exe, dir);
                elf_sh(cmd);
                func_value = nm_value(exe, "target_func");
                lib_value = nm_value(lib, "lib_func");

                elf_target_start(&t, exe, lib);
                addrs[0] = t.func;
                addrs[1] = t.func + 3;
                addrs[2] = t.lib_func + 1;
                addrs[3] = t.lib_func;
                addrs[4] = t.bss;

                p = open_proc(t.pid);
                n = normalize(p, addrs, ELEMENTSOF(addrs), NORMALIZE_BUILD_IDS | NORMALIZE_ELF);

                for (size_t i = 0; i < 4; i++)
                        ck_assert_int_eq(n->results[i].vaddr_status, NORM_VADDR_OK);
                ck_assert_uint_eq(n->results[0].vaddr, func_value);
                ck_assert_uint_eq(n->results[1].vaddr, func_value + 3);
                ck_assert_uint_eq(n->results[2].vaddr, lib_value + 1);
                ck_assert_uint_eq(n->results[3].vaddr, lib_value);
                if (!pie)
                        /* Not relocated: the ELF address is the address. */
                        ck_assert_uint_eq(n->results[0].vaddr, t.func);

                assert_elf_module(n, 0, exe, pie ? ELF_TYPE_DYN : ELF_TYPE_EXEC);
                assert_elf_module(n, 2, lib, ELF_TYPE_DYN);

                /*
                 * bss_var lies past p_filesz of the data segment: in the file's
                 * last page it is in a file mapping, yet no file byte.
                 */
                if (n->results[4].kind == NORM_MODULE) {
                        ck_assert_int_eq(n->results[4].vaddr_status, NORM_VADDR_NOT_LOADED);
                        ck_assert_uint_eq(n->results[4].vaddr, 0);
                }

                /* Without NORMALIZE_ELF: no facts, and the same answer otherwise. */
                plain = normalize(p, addrs, ELEMENTSOF(addrs), NORMALIZE_BUILD_IDS);
                for (size_t i = 0; i < ELEMENTSOF(addrs); i++) {
                        ck_assert_int_eq(plain->results[i].vaddr_status, NORM_VADDR_NONE);
                        ck_assert_uint_eq(plain->results[i].vaddr, 0);
                        ck_assert_int_eq(plain->results[i].kind, n->results[i].kind);
                        ck_assert_uint_eq(plain->results[i].offset, n->results[i].offset);
                }
                for (size_t i = 0; i < plain->n_modules; i++) {
                        ck_assert_ptr_null(plain->modules[i].elf);
                        ck_assert_int_eq(plain->modules[i].elf_status, NORM_VADDR_NONE);
                        ck_assert_uint_eq(plain->modules[i].build_id_len, n->modules[i].build_id_len);
                        ck_assert_mem_eq(plain->modules[i].build_id, n->modules[i].build_id,
                                         n->modules[i].build_id_len);
                }

                elf_target_stop(&t);
        }

        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        elf_sh(cmd);
}
END_TEST

/* The test child's layout: a file that is not ELF, our own code, the vDSO; the htlhash. */
START_TEST(test_elf_layout) {
        _cleanup_(normalization_freep) Normalization *n = NULL;
        _cleanup_(proc_freep) Proc *p = NULL;
        _cleanup_(elf_info_unrefp) ElfInfo *self = NULL;
        char exe[PATH_MAX];
        uint64_t addrs[4], vaddr;
        TestChild c;

        test_child_spawn(&c);
        addrs[0] = c.file_addr + 5;
        addrs[1] = c.code_addr;
        addrs[2] = c.vdso_addr + 0x10;
        addrs[3] = c.anon_addr;

        p = open_proc(c.pid);
        n = normalize(p, addrs, ELEMENTSOF(addrs), NORMALIZE_HTLHASH);

        /* The data file: read, not ELF; its htlhash is there all the same. */
        ck_assert_int_eq(n->results[0].kind, NORM_MODULE);
        ck_assert_int_eq(n->results[0].vaddr_status, NORM_VADDR_NOT_ELF);
        ck_assert_int_eq(result_module(n, 0)->elf->type, ELF_TYPE_NOT_ELF);
        ck_assert(result_module(n, 0)->elf->has_htlhash);
        /* No build IDs asked for: none filled. */
        ck_assert_uint_eq(result_module(n, 0)->build_id_len, 0);

        /* Our own executable: the parse of it here agrees. */
        test_self_exe(exe);
        {
                _cleanup_close_ int fd = open(exe, O_RDONLY | O_CLOEXEC);
                struct stat st;

                ck_assert_int_ge(fd, 0);
                ck_assert_int_eq(fstat(fd, &st), 0);
                ck_assert_int_eq(elf_info_from_fd(fd, 0, st.st_size, ELF_INFO_HTLHASH, &self), 0);
        }
        ck_assert_int_eq(n->results[1].vaddr_status, NORM_VADDR_OK);
        ck_assert_int_eq(elf_info_offset_to_vaddr(self, n->results[1].offset, &vaddr), 0);
        ck_assert_uint_eq(n->results[1].vaddr, vaddr);
        ck_assert_int_eq(result_module(n, 1)->elf->type, self->type);
        ck_assert_mem_eq(result_module(n, 1)->elf->htlhash, self->htlhash, HTLHASH_SIZE);

        /* The vDSO, read from memory. */
        ck_assert_int_eq(n->results[2].kind, NORM_MODULE);
        ck_assert_int_eq(n->results[2].vaddr_status, NORM_VADDR_OK);
        ck_assert(result_module(n, 2)->vdso);
        ck_assert_int_eq(result_module(n, 2)->elf->type, ELF_TYPE_DYN);
        ck_assert_int_eq(elf_info_offset_to_vaddr(result_module(n, 2)->elf, 0x10, &vaddr), 0);
        ck_assert_uint_eq(n->results[2].vaddr, vaddr);

        ck_assert_int_eq(n->results[3].kind, NORM_ANONYMOUS);
        ck_assert_int_eq(n->results[3].vaddr_status, NORM_VADDR_NONE);

        ck_assert_str_eq(norm_vaddr_to_string(NORM_VADDR_NOT_LOADED), "not-loaded");
        ck_assert_int_eq(norm_vaddr_from_string("unreadable"), NORM_VADDR_UNREADABLE);
        ck_assert_int_eq(norm_vaddr_from_string("bogus"), -EINVAL);

        test_child_stop(&c);
}
END_TEST

/* A maps fd alone reads no files; a read budget skips; a cache answers the second call. */
START_TEST(test_elf_maps_fd_budget_cache) {
        _cleanup_(build_id_cache_freep) BuildIdCache *cache = NULL;
        _cleanup_(proc_freep) Proc *p = NULL, *q = NULL;
        char path[64];
        uint64_t addrs[2];
        TestChild c;
        int fd;

        test_child_spawn(&c);
        addrs[0] = c.code_addr;
        addrs[1] = c.file_addr;

        snprintf(path, sizeof(path), "/proc/%d/maps", (int) c.pid);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(proc_open_maps(&q, fd, TEST_BACKEND), 0);
        {
                _cleanup_(normalization_freep) Normalization *n = normalize(q, addrs, 2, NORMALIZE_ELF);

                for (size_t i = 0; i < 2; i++) {
                        ck_assert_int_eq(n->results[i].kind, NORM_MODULE);
                        ck_assert_int_eq(n->results[i].vaddr_status, NORM_VADDR_UNREADABLE);
                        ck_assert_ptr_null(result_module(n, i)->elf);
                        ck_assert_int_eq(result_module(n, i)->elf_status, NORM_VADDR_UNREADABLE);
                }
        }

        p = open_proc(c.pid);
        ck_assert_int_eq(build_id_cache_new(&cache, 16), 0);
        for (unsigned round = 0; round < 3; round++) {
                _cleanup_(normalization_freep) Normalization *n = NULL;
                NormalizeOptions opts = {
                        .flags = NORMALIZE_ELF | NORMALIZE_BUILD_IDS,
                        .build_id_cache = cache,
                        .max_build_id_reads = 1,
                };
                BuildIdCacheStats st, before;

                build_id_cache_stats(cache, &before);
                ck_assert_int_eq(proc_normalize(p, addrs, 2, &opts, &n), 0);
                /* The first module (lowest address: the executable) takes the one read. */
                ck_assert_int_eq(n->results[0].vaddr_status, NORM_VADDR_OK);
                build_id_cache_stats(cache, &st);
                if (round == 0 || geteuid() != 0) {
                        ck_assert_int_eq(n->results[1].vaddr_status, NORM_VADDR_SKIPPED);
                        ck_assert_int_eq(result_module(n, 1)->elf_status, NORM_VADDR_SKIPPED);
                        ck_assert(result_module(n, 1)->build_id_skipped);
                } else {
                        /*
                         * With map_files (root), the first call cached the
                         * executable: this call's read goes to the file.
                         */
                        ck_assert_int_eq(n->results[1].vaddr_status, NORM_VADDR_NOT_ELF);
                        ck_assert_uint_ge(st.hits, 1);
                        /*
                         * The third call reads nothing: both answers come
                         * from the cache, "not ELF" too.
                         */
                        if (round == 2)
                                ck_assert_uint_eq(st.hits - before.hits, 2);
                }
        }

        test_child_stop(&c);
}
END_TEST

static Suite *normalize_suite(bool have_ioctl) {
        Suite *s = suite_create("normalize");
        TCase *tc;

        tc = tcase_create("seed");
        tcase_add_test(tc, test_query_unmapped);
        tcase_add_test(tc, test_query_function);
        tcase_add_test(tc, test_foreach_flags);
        tcase_add_test(tc, test_foreach_exec_build_ids);
        suite_add_tcase(s, tc);

        tc = tcase_create("layout");
        tcase_add_test(tc, test_layout);
        tcase_add_test(tc, test_no_build_ids_map_files);
        tcase_add_test(tc, test_order_and_duplicates);
        tcase_add_test(tc, test_empty_and_invalid);
        tcase_add_test(tc, test_norm_kind_strings);
        tcase_add_test(tc, test_build_id_cache_use);
        tcase_add_test(tc, test_many_files);
        tcase_add_test(tc, test_build_id_cap);
        tcase_add_test(tc, test_build_id_cap_walk);
        suite_add_tcase(s, tc);

        tc = tcase_create("threads");
        tcase_add_test(tc, test_threads_share_cache);
        suite_add_tcase(s, tc);

        if (geteuid() == 0) {
                /* Needs a mount namespace and capabilities to drop. */
                tc = tcase_create("build-id-sources");
                tcase_add_test(tc, test_build_id_map_files);
                tcase_add_test(tc, test_build_id_by_name);
                tcase_add_loop_test(tc, test_planted_by_name, 0, _PLANTED_MAX);
                tcase_add_loop_test(tc, test_planted_map_files, 0, _PLANTED_MAX);
                suite_add_tcase(s, tc);

                tc = tcase_create("names");
                tcase_add_test(tc, test_names_map_files);
                tcase_add_test(tc, test_names_by_name);
                suite_add_tcase(s, tc);

                /* Reads map_files. */
                tc = tcase_create("build-id-identity");
                tcase_add_test(tc, test_build_id_flip_race);
                tcase_add_test(tc, test_build_id_flip_stale);
                suite_add_tcase(s, tc);
        } else
                fprintf(stderr, "NOTE: build ID source tests not run: they need root\n");

        tc = tcase_create("strategy");
        if (have_ioctl && TEST_BACKEND == VMA_BACKEND_IOCTL) {
                tcase_add_test(tc, test_strategies_agree);
                tcase_add_test(tc, test_strategy_choice);
        }
        tcase_add_test(tc, test_strategy_text_backend);
        tcase_set_timeout(tc, 60);
        suite_add_tcase(s, tc);

        if (have_ioctl) {
                tc = tcase_create("backends-agree");
                tcase_add_test(tc, test_backends_agree_list);
                tcase_add_test(tc, test_backends_agree_normalize);
                suite_add_tcase(s, tc);
        } else
                fprintf(stderr, "NOTE: backend comparison not run: the kernel lacks PROCMAP_QUERY\n");

        tc = tcase_create("elf");
        tcase_add_test(tc, test_elf_vaddr);
        tcase_add_test(tc, test_elf_layout);
        tcase_add_test(tc, test_elf_maps_fd_budget_cache);
        tcase_set_timeout(tc, 120);
        suite_add_tcase(s, tc);

        tc = tcase_create("identity");
        tcase_add_test(tc, test_start_time);
        tcase_add_test(tc, test_no_such_process);
        tcase_add_test(tc, test_kernel_thread);
        tcase_add_test(tc, test_zombie);
        tcase_add_test(tc, test_exec_between_calls);
        tcase_add_loop_test(tc, test_exec_during_walk, 0, 2);
        tcase_add_test(tc, test_exec_loop);
        tcase_add_test(tc, test_pinned_start_time);
        tcase_add_test(tc, test_permission_denied);
        suite_add_tcase(s, tc);

        return s;
}

int main(int argc, char *argv[]) {
        int r;

        exec_target(argv);

        r = vma_backend_probe();
        if (r < 0) {
                fprintf(stderr, "Cannot probe for PROCMAP_QUERY: %s\n", strerror(-r));
                return EXIT_FAILURE;
        }
        if (r == 0 && TEST_BACKEND == VMA_BACKEND_IOCTL) {
                fprintf(stderr, "SKIP: this kernel lacks the PROCMAP_QUERY ioctl (Linux >= 6.11)\n");
                return 77;
        }

        return check_run(normalize_suite(r > 0));
}
