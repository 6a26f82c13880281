/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * libvmaq against the built daemon ($VMAQD), started per test on a private
 * socket, and against small fake servers for what a real daemon never does
 * (stay silent, hang up mid-call, send garbage).
 *
 * Every daemon and forked helper dies with the test (PR_SET_PDEATHSIG).
 * Forked helpers never use ck_assert(): they report through their exit
 * status (CHILD_CHECK()). SIGPIPE keeps its default action on purpose: the
 * library must not raise it.
 *
 * Memory: CK_FORK=no CK_EXCLUDE_TAGS="slow layout" valgrind --leak-check=full
 * --child-silent-after-fork=yes tests/.libs/test-libvmaq. "layout" tests
 * check the TestChild's [heap], which valgrind's own brk() does not make.
 */

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check-run.h"
#include "macro.h"
#include "proc.h"
#include "test-daemon-util.h"
#include "test-util.h"
#include "vma.h"
#include "vmaq.h"

/* Every wait here is bounded by this; none is a timing assertion. */
#define TIMEOUT_MS 10000
#define TEST_TIMEOUT_SEC 120
#define BATCH 100000

DEFINE_CLEANUP(struct vmaq_client *, vmaq_close);
DEFINE_CLEANUP(struct vmaq_normalization *, vmaq_normalization_free);
DEFINE_CLEANUP(struct vmaq_mappings *, vmaq_mappings_free);
DEFINE_CLEANUP(struct vmaq_status *, vmaq_status_free);

#define CHILD_CHECK(expr)                                                               \
        do {                                                                            \
                if (!(expr)) {                                                          \
                        fprintf(stderr, "%s:%d: check in child %d failed: %s\n",       \
                                __FILE__, __LINE__, (int) getpid(), #expr);             \
                        _exit(EXIT_FAILURE);                                            \
                }                                                                       \
        } while (0)

static const char *vmaqd_path;
static char run_dir[64];

static void wait_child_ok(pid_t pid) {
        int status = 0;

        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "helper %d failed: status 0x%x",
                      (int) pid, (unsigned) status);
}

/* --- the daemon -------------------------------------------------------------- */

static struct vmaq_client *connect_ok(const Daemon *d) {
        struct vmaq_client *c = NULL;

        ck_assert_int_eq(vmaq_connect(&c, d->socket_path), 0);
        ck_assert_ptr_nonnull(c);
        ck_assert_str_eq(vmaq_errmsg(c), "");
        return c;
}

/* --- the core, for reference ------------------------------------------------- */

static Normalization *core_normalize(pid_t pid, const uint64_t *addrs, size_t n, unsigned flags) {
        _cleanup_(proc_freep) Proc *p = NULL;
        Normalization *result = NULL;
        VmaBackend backend;

        ck_assert_int_eq(vma_backend_resolve(VMA_BACKEND_AUTO, &backend), 0);
        ck_assert_int_eq(proc_open(&p, pid, backend), 0);
        ck_assert_int_eq(proc_normalize(p, addrs, n, &(NormalizeOptions) { .flags = flags }, &result), 0);
        return result;
}

static void assert_same_module(const struct vmaq_module *g, const NormModule *w) {
        ck_assert_str_eq(g->path, w->path);
        if (w->map_files)
                ck_assert_str_eq(g->map_files, w->map_files);
        else
                ck_assert_ptr_null(g->map_files);
        ck_assert_uint_eq(g->build_id_len, w->build_id_len);
        if (w->build_id_len > 0)
                ck_assert_mem_eq(g->build_id, w->build_id, w->build_id_len);
        else
                ck_assert_ptr_null(g->build_id);
        ck_assert_int_eq(g->deleted, w->deleted);
        ck_assert_int_eq(g->vdso, w->vdso);
        ck_assert_uint_eq(g->dev_major, w->dev_major);
        ck_assert_uint_eq(g->dev_minor, w->dev_minor);
        ck_assert_uint_eq(g->inode, w->inode);
}

/*
 * @got must say exactly what the core says for the same batch. Its modules
 * may come in another order (a streamed answer numbers them as its
 * results first name them), but each of the core's is one of them, once.
 */
static void assert_same_as_core(const struct vmaq_normalization *got, const Normalization *want,
                                const uint64_t *addrs, size_t n) {
        _cleanup_free_ size_t *got_of = NULL, *want_of = NULL;

        ck_assert_int_eq(got->pid, want->pid);
        ck_assert_uint_eq(got->start_time, want->start_time);
        ck_assert_uint_eq(got->n_results, n);
        ck_assert_uint_eq(want->n_results, n);
        ck_assert_uint_eq(got->n_modules, want->n_modules);

        got_of = calloc(want->n_modules + 1, sizeof(size_t));
        want_of = calloc(got->n_modules + 1, sizeof(size_t));
        ck_assert(got_of && want_of);
        for (size_t i = 0; i < want->n_modules; i++)
                got_of[i] = want_of[i] = SIZE_MAX;

        for (size_t i = 0; i < n; i++) {
                const struct vmaq_result *g = vmaq_result_get(got, i);
                const NormResult *w = &want->results[i];
                static const enum vmaq_unknown kinds[] = {
                        [NORM_MODULE] = VMAQ_NORMALIZED,
                        [NORM_UNMAPPED] = VMAQ_UNKNOWN_UNMAPPED,
                        [NORM_ANONYMOUS] = VMAQ_UNKNOWN_ANONYMOUS,
                        [NORM_SPECIAL] = VMAQ_UNKNOWN_SPECIAL,
                        [NORM_EXITED] = VMAQ_UNKNOWN_EXITED,
                };

                ck_assert_uint_eq(g->address, addrs[i]);
                ck_assert_int_eq(g->unknown, kinds[w->kind]);
                if (w->kind != NORM_MODULE)
                        continue;
                ck_assert_uint_eq(g->offset, w->offset);
                ck_assert_uint_lt(g->module, got->n_modules);
                /* One module of the core's is one of ours, the same every time. */
                if (got_of[w->module] == SIZE_MAX) {
                        ck_assert_uint_eq(want_of[g->module], SIZE_MAX);
                        got_of[w->module] = g->module;
                        want_of[g->module] = w->module;
                        assert_same_module(vmaq_module_get(got, g->module), &want->modules[w->module]);
                } else
                        ck_assert_uint_eq(g->module, got_of[w->module]);
        }
}

/* The addresses of @c with a known answer, in this order. */
enum {
        A_FILE, A_FILE_END, A_DELETED, A_ANON, A_UNMAPPED, A_HEAP, A_STACK, A_CODE, A_VDSO, A_ZERO, _A_MAX,
};

static void child_addresses(const TestChild *c, uint64_t a[static _A_MAX]) {
        a[A_FILE] = c->file_addr + 100;
        a[A_FILE_END] = c->file_addr + 2 * test_page_size() - 1;
        a[A_DELETED] = c->deleted_addr;
        a[A_ANON] = c->anon_addr;
        a[A_UNMAPPED] = c->unmapped_addr;
        a[A_HEAP] = c->heap_addr;
        a[A_STACK] = c->stack_addr;
        a[A_CODE] = c->code_addr;
        a[A_VDSO] = c->vdso_addr;
        a[A_ZERO] = 0;
}

/* --- Normalize ----------------------------------------------------------------- */

START_TEST(test_normalize) {
        _cleanup_(vmaq_closep) struct vmaq_client *c = NULL;
        _cleanup_(vmaq_normalization_freep) struct vmaq_normalization *n = NULL;
        _cleanup_(normalization_freep) Normalization *want = NULL;
        uint8_t self_id[BUILD_ID_MAX];
        char self_path[PATH_MAX];
        uint64_t a[_A_MAX], ps = test_page_size();
        size_t self_id_len;
        const struct vmaq_module *m;
        TestChild child;
        Daemon *d;

        d = daemon_start(NULL);
        test_child_spawn(&child);
        child_addresses(&child, a);
        c = connect_ok(d);

        ck_assert_int_eq(vmaq_normalize(c, child.pid, a, _A_MAX, VMAQ_NORMALIZE_MAP_FILES, 0, &n), 0);
        ck_assert_str_eq(vmaq_errmsg(c), "");
        want = core_normalize(child.pid, a, _A_MAX, NORMALIZE_BUILD_IDS | NORMALIZE_MAP_FILES);
        assert_same_as_core(n, want, a, _A_MAX);

        /* And what that is, independently of the core. */
        ck_assert_int_eq(n->pid, child.pid);
        ck_assert_int_eq(vmaq_result_get(n, A_FILE)->unknown, VMAQ_NORMALIZED);
        ck_assert_uint_eq(vmaq_result_get(n, A_FILE)->offset, TEST_FILE_MAP_PGOFF * ps + 100);
        m = vmaq_module_get(n, vmaq_result_get(n, A_FILE)->module);
        ck_assert_str_eq(m->path, child.file_path);
        ck_assert_int_eq(m->deleted, 0);
        ck_assert_int_eq(m->vdso, 0);
        ck_assert_ptr_nonnull(m->map_files);
        ck_assert_int_eq(strncmp(m->map_files, "/proc/", 6), 0);
        ck_assert_uint_eq(vmaq_result_get(n, A_FILE_END)->module, vmaq_result_get(n, A_FILE)->module);
        ck_assert_uint_eq(vmaq_result_get(n, A_FILE_END)->offset, (TEST_FILE_MAP_PGOFF + 2) * ps - 1);

        ck_assert_int_eq(vmaq_result_get(n, A_DELETED)->unknown, VMAQ_NORMALIZED);
        ck_assert_uint_eq(vmaq_result_get(n, A_DELETED)->offset, 0);
        ck_assert_int_eq(vmaq_module_get(n, vmaq_result_get(n, A_DELETED)->module)->deleted, 1);

        ck_assert_int_eq(vmaq_result_get(n, A_ANON)->unknown, VMAQ_UNKNOWN_ANONYMOUS);
        ck_assert_int_eq(vmaq_result_get(n, A_UNMAPPED)->unknown, VMAQ_UNKNOWN_UNMAPPED);
        ck_assert_int_eq(vmaq_result_get(n, A_HEAP)->unknown, VMAQ_UNKNOWN_SPECIAL);
        ck_assert_int_eq(vmaq_result_get(n, A_STACK)->unknown, VMAQ_UNKNOWN_SPECIAL);
        ck_assert_int_eq(vmaq_result_get(n, A_ZERO)->unknown, VMAQ_UNKNOWN_UNMAPPED);

        test_self_exe(self_path);
        self_id_len = test_self_build_id(self_id);
        m = vmaq_module_get(n, vmaq_result_get(n, A_CODE)->module);
        ck_assert_str_eq(m->path, self_path);
        ck_assert_uint_eq(m->build_id_len, self_id_len);
        if (self_id_len > 0)
                ck_assert_mem_eq(m->build_id, self_id, self_id_len);

        ck_assert_int_eq(vmaq_result_get(n, A_VDSO)->unknown, VMAQ_NORMALIZED);
        ck_assert_uint_eq(vmaq_result_get(n, A_VDSO)->offset, 0);
        m = vmaq_module_get(n, vmaq_result_get(n, A_VDSO)->module);
        ck_assert_str_eq(m->path, "[vdso]");
        ck_assert_int_eq(m->vdso, 1);
        ck_assert_ptr_null(m->map_files);

        test_child_stop(&child);
        vmaq_close(TAKE_PTR(c));
        daemon_stop(d);
}
END_TEST

/* The same results as @want, each in a module of the same path; pid and start time aside. */
static void assert_same_results(const struct vmaq_normalization *got, const struct vmaq_normalization *want) {
        ck_assert_uint_eq(got->n_results, want->n_results);
        for (size_t i = 0; i < got->n_results; i++) {
                const struct vmaq_result *g = vmaq_result_get(got, i), *w = vmaq_result_get(want, i);

                ck_assert_uint_eq(g->address, w->address);
                ck_assert_int_eq(g->unknown, w->unknown);
                if (w->unknown != VMAQ_NORMALIZED)
                        continue;
                ck_assert_uint_eq(g->offset, w->offset);
                ck_assert_str_eq(vmaq_module_get(got, g->module)->path, vmaq_module_get(want, w->module)->path);
                ck_assert_int_eq(vmaq_module_get(got, g->module)->deleted, vmaq_module_get(want, w->module)->deleted);
                ck_assert_int_eq(vmaq_module_get(got, g->module)->vdso, vmaq_module_get(want, w->module)->vdso);
                ck_assert_uint_eq(vmaq_module_get(got, g->module)->inode, vmaq_module_get(want, w->module)->inode);
        }
}

/* A process named by a pidfd, or by its maps file, as by its pid; the fds stay the caller's. */
START_TEST(test_normalize_fds) {
        _cleanup_(vmaq_closep) struct vmaq_client *c = NULL;
        _cleanup_(vmaq_normalization_freep) struct vmaq_normalization *by_pid = NULL, *by_pidfd = NULL,
                *by_maps = NULL, *self = NULL, *self_by_pid = NULL, *bad = NULL;
        _cleanup_(normalization_freep) Normalization *want = NULL;
        _cleanup_close_ int pidfd = -EBADF, maps = -EBADF, file = -EBADF;
        uint64_t a[_A_MAX], code = (uintptr_t) test_marker_function;
        char path[64];
        TestChild child;
        Daemon *d;

        /* Without the post-mortem window: a gone process is gone. */
        d = daemon_start(ARGS("--exit-grace", "0"));
        test_child_spawn(&child);
        child_addresses(&child, a);
        c = connect_ok(d);

        pidfd = (int) syscall(SYS_pidfd_open, child.pid, 0);
        ck_assert_int_ge(pidfd, 0);
        ck_assert_int_eq(vmaq_normalize_pidfd(c, pidfd, a, _A_MAX, VMAQ_NORMALIZE_MAP_FILES, &by_pidfd), 0);
        want = core_normalize(child.pid, a, _A_MAX, NORMALIZE_BUILD_IDS | NORMALIZE_MAP_FILES);
        assert_same_as_core(by_pidfd, want, a, _A_MAX);

        ck_assert_int_eq(vmaq_normalize(c, child.pid, a, _A_MAX, 0, 0, &by_pid), 0);
        snprintf(path, sizeof(path), "/proc/%d/maps", (int) child.pid);
        maps = open(path, O_RDONLY | O_CLOEXEC);
        ck_assert_int_ge(maps, 0);
        ck_assert_int_eq(vmaq_normalize_maps_fd(c, maps, a, _A_MAX, VMAQ_NORMALIZE_MAP_FILES, &by_maps), 0);
        assert_same_results(by_maps, by_pid);
        ck_assert_int_eq(by_maps->pid, 0);
        ck_assert_uint_eq(by_maps->start_time, 0);
        /* Nothing but the map is opened: no map_files paths. */
        for (size_t i = 0; i < by_maps->n_modules; i++)
                ck_assert_ptr_null(vmaq_module_get(by_maps, i)->map_files);
        ck_assert_int_ge(fcntl(pidfd, F_GETFD), 0);
        ck_assert_int_ge(fcntl(maps, F_GETFD), 0);

        ck_assert_int_eq(vmaq_normalize_self(c, &code, 1, 0, &self), 0);
        ck_assert_int_eq(vmaq_normalize(c, getpid(), &code, 1, 0, 0, &self_by_pid), 0);
        assert_same_results(self, self_by_pid);
        ck_assert_int_eq(vmaq_result_get(self, 0)->unknown, VMAQ_NORMALIZED);

        /* What the caller and the daemon refuse. */
        ck_assert_int_eq(vmaq_normalize_pidfd(c, pidfd, a, 1, VMAQ_NORMALIZE_PIN, &bad), -EINVAL);
        ck_assert_int_eq(vmaq_normalize_maps_fd(c, -1, a, 1, 0, &bad), -EBADF);
        file = open("/dev/null", O_RDONLY | O_CLOEXEC);
        ck_assert_int_ge(file, 0);
        ck_assert_int_eq(vmaq_normalize_maps_fd(c, file, a, 1, 0, &bad), -EBADF);
        ck_assert_ptr_nonnull(strstr(vmaq_errmsg(c), "not a file of /proc"));
        ck_assert_int_eq(vmaq_normalize_pidfd(c, maps, a, 1, 0, &bad), -EBADF);
        ck_assert_ptr_nonnull(strstr(vmaq_errmsg(c), "not a pidfd"));
        ck_assert_ptr_null(bad);

        /* Once the process is gone, so is what its fds name. */
        test_child_stop(&child);
        ck_assert_int_eq(vmaq_normalize_pidfd(c, pidfd, a, 1, 0, &bad), -ESRCH);
        ck_assert_int_eq(vmaq_normalize_maps_fd(c, maps, a, 1, 0, &bad), -ESRCH);

        vmaq_close(TAKE_PTR(c));
        daemon_stop(d);
}
END_TEST

START_TEST(test_normalize_no_build_ids) {
        _cleanup_(vmaq_closep) struct vmaq_client *c = NULL;
        _cleanup_(vmaq_normalization_freep) struct vmaq_normalization *n = NULL;
        _cleanup_(normalization_freep) Normalization *want = NULL;
        uint64_t a[_A_MAX];
        TestChild child;
        Daemon *d;

        d = daemon_start(NULL);
        test_child_spawn(&child);
        child_addresses(&child, a);
        c = connect_ok(d);

        ck_assert_int_eq(vmaq_normalize(c, child.pid, a, _A_MAX, VMAQ_NORMALIZE_NO_BUILD_IDS, 0, &n), 0);
        want = core_normalize(child.pid, a, _A_MAX, 0);
        assert_same_as_core(n, want, a, _A_MAX);
        ck_assert_uint_gt(n->n_modules, 0);
        for (size_t i = 0; i < n->n_modules; i++) {
                ck_assert_uint_eq(vmaq_module_get(n, i)->build_id_len, 0);
                ck_assert_ptr_null(vmaq_module_get(n, i)->build_id);
                ck_assert_ptr_null(vmaq_module_get(n, i)->map_files);
        }

        test_child_stop(&child);
        vmaq_close(TAKE_PTR(c));
        daemon_stop(d);
}
END_TEST

/* Pinned to the right start time it answers; to another, -ESTALE with the current one. */
START_TEST(test_normalize_pin) {
        _cleanup_(vmaq_closep) struct vmaq_client *c = NULL;
        _cleanup_(vmaq_normalization_freep) struct vmaq_normalization *n = NULL, *pinned = NULL, *stale = NULL;
        char expected[256];
        uint64_t a[_A_MAX];
        TestChild child;
        Daemon *d;

        d = daemon_start(NULL);
        test_child_spawn(&child);
        child_addresses(&child, a);
        c = connect_ok(d);

        ck_assert_int_eq(vmaq_normalize(c, child.pid, a, 1, 0, 0, &n), 0);
        ck_assert_uint_gt(n->start_time, 0);
        ck_assert_int_eq(vmaq_normalize(c, child.pid, a, 1, VMAQ_NORMALIZE_PIN, n->start_time, &pinned), 0);
        ck_assert_uint_eq(pinned->start_time, n->start_time);

        ck_assert_int_eq(vmaq_normalize(c, child.pid, a, 1, VMAQ_NORMALIZE_PIN, n->start_time + 1, &stale), -ESTALE);
        ck_assert_ptr_null(stale);
        snprintf(expected, sizeof(expected), "process changed: pid %d now has start time %" PRIu64
                 " (io.vmaq.ProcessChanged)", (int) child.pid, n->start_time);
        ck_assert_str_eq(vmaq_errmsg(c), expected);

        test_child_stop(&child);
        vmaq_close(TAKE_PTR(c));
        daemon_stop(d);
}
END_TEST

/* A tracked process, once gone, is answered from its snapshot when pinned. */
START_TEST(test_track) {
        _cleanup_(vmaq_closep) struct vmaq_client *c = NULL;
        _cleanup_(vmaq_normalization_freep) struct vmaq_normalization *live = NULL, *gone = NULL, *none = NULL;
        _cleanup_(vmaq_status_freep) struct vmaq_status *s = NULL;
        int64_t deadline = now_ms() + 10000;
        uint64_t a[_A_MAX], st = 0, st2 = 0;
        TestChild child;
        Daemon *d;
        pid_t pid;

        d = daemon_start(ARGS("--exit-grace", "600"));
        test_child_spawn(&child);
        child_addresses(&child, a);
        c = connect_ok(d);

        ck_assert_int_eq(vmaq_track(c, child.pid, 0, &st), 0);
        ck_assert_uint_gt(st, 0);
        ck_assert_int_eq(vmaq_track(c, child.pid, st, &st2), 0);
        ck_assert_uint_eq(st2, st);
        ck_assert_int_eq(vmaq_track(c, child.pid, st + 1, NULL), -ESTALE);
        ck_assert_int_eq(vmaq_normalize(c, child.pid, a, _A_MAX, VMAQ_NORMALIZE_PIN, st, &live), 0);
        ck_assert(!live->exited);
        pid = child.pid;
        test_child_stop(&child);

        /* Bounded: the daemon learns of the exit from the process's pidfd. */
        for (;;) {
                ck_assert_int_eq(vmaq_get_status(c, &s), 0);
                ck_assert_uint_eq(s->snapshot_memory_max, 16U << 20);
                if (s->snapshots_exited == 1)
                        break;
                ck_assert(now_ms() < deadline);
                vmaq_status_free(TAKE_PTR(s));
                (void) poll(NULL, 0, 10);
        }
        ck_assert_uint_eq(s->snapshots_held, 1);
        ck_assert_uint_gt(s->snapshot_memory_used, 0);

        ck_assert_msg(vmaq_normalize(c, pid, a, _A_MAX, VMAQ_NORMALIZE_PIN, st, &gone) == 0, "%s", vmaq_errmsg(c));
        ck_assert(gone->exited);
        ck_assert_uint_eq(gone->start_time, st);
        ck_assert_uint_eq(gone->n_results, _A_MAX);
        for (size_t i = 0; i < _A_MAX; i++) {
                const struct vmaq_result *g = vmaq_result_get(gone, i), *l = vmaq_result_get(live, i);

                ck_assert_uint_eq(g->address, a[i]);
                if (i == A_CODE || i == A_VDSO) {
                        ck_assert_int_eq(g->unknown, VMAQ_NORMALIZED);
                        ck_assert_uint_eq(g->offset, l->offset);
                        ck_assert_str_eq(vmaq_module_get(gone, g->module)->path, vmaq_module_get(live, l->module)->path);
                        ck_assert_uint_eq(vmaq_module_get(gone, g->module)->build_id_len,
                                          vmaq_module_get(live, l->module)->build_id_len);
                } else
                        ck_assert_int_eq(g->unknown, VMAQ_UNKNOWN_EXITED);
        }

        ck_assert_int_eq(vmaq_normalize(c, pid, a, 1, 0, 0, &none), -ESRCH);
        ck_assert_int_eq(vmaq_track(c, pid, st, NULL), -ESRCH);
        vmaq_close(TAKE_PTR(c));
        daemon_stop(d);
}
END_TEST

/* 100,000 addresses in one call: every result there, in input order. */
START_TEST(test_normalize_batch) {
        static const size_t sizes[] = { 10000, BATCH };
        _cleanup_(vmaq_closep) struct vmaq_client *c = NULL;
        _cleanup_(vmaq_normalization_freep) struct vmaq_normalization *n = NULL;
        _cleanup_(normalization_freep) Normalization *want = NULL;
        _cleanup_free_ uint64_t *addrs = NULL;
        uint64_t a[_A_MAX], span = 2 * test_page_size();
        TestChild child;
        Daemon *d;

        d = daemon_start(NULL);
        test_child_spawn(&child);
        child_addresses(&child, a);
        c = connect_ok(d);

        addrs = calloc(BATCH, sizeof(uint64_t));
        ck_assert_ptr_nonnull(addrs);
        for (size_t i = 0; i < BATCH; i++)
                /* Every other one walks the file mapping, so each result is told apart by its offset. */
                addrs[i] = i % 2 == 0 ? child.file_addr + (i / 2) % span : a[(i / 2) % _A_MAX];

        /* In one reply, and in a stream of them. */
        for (size_t k = 0; k < ELEMENTSOF(sizes); k++) {
                ck_assert_int_eq(vmaq_normalize(c, child.pid, addrs, sizes[k], 0, 0, &n), 0);
                ck_assert_uint_eq(n->n_results, sizes[k]);
                want = core_normalize(child.pid, addrs, sizes[k], NORMALIZE_BUILD_IDS);
                assert_same_as_core(n, want, addrs, sizes[k]);
                for (size_t i = 0; i < sizes[k]; i += 2)
                        ck_assert_uint_eq(vmaq_result_get(n, i)->offset,
                                          TEST_FILE_MAP_PGOFF * test_page_size() + (i / 2) % span);
                vmaq_normalization_free(TAKE_PTR(n));
                want = normalization_free(want);
        }

        test_child_stop(&child);
        vmaq_close(TAKE_PTR(c));
        daemon_stop(d);
}
END_TEST

/* --- ListMappings ------------------------------------------------------------------ */

static const struct vmaq_mapping *find_mapping(const struct vmaq_mappings *m, uint64_t addr) {
        for (size_t i = 0; i < m->n_mappings; i++)
                if (vmaq_mapping_get(m, i)->start <= addr && addr < vmaq_mapping_get(m, i)->end)
                        return vmaq_mapping_get(m, i);
        return NULL;
}

START_TEST(test_list_mappings) {
        _cleanup_(vmaq_closep) struct vmaq_client *c = NULL;
        _cleanup_(vmaq_mappings_freep) struct vmaq_mappings *m = NULL;
        uint64_t ps = test_page_size();
        const struct vmaq_mapping *v;
        TestChild child;
        struct stat st;
        Daemon *d;

        d = daemon_start(NULL);
        test_child_spawn(&child);
        c = connect_ok(d);

        ck_assert_int_eq(vmaq_list_mappings(c, child.pid, 0, &m), 0);
        ck_assert_str_eq(vmaq_errmsg(c), "");
        ck_assert_int_eq(m->pid, child.pid);
        ck_assert_uint_gt(m->start_time, 0);
        ck_assert_uint_gt(m->n_mappings, 5);
        ck_assert_ptr_null(vmaq_mapping_get(m, m->n_mappings));
        ck_assert_ptr_null(vmaq_mapping_get(NULL, 0));
        for (size_t i = 0; i < m->n_mappings; i++) {
                ck_assert_uint_lt(vmaq_mapping_get(m, i)->start, vmaq_mapping_get(m, i)->end);
                if (i > 0)
                        ck_assert_uint_le(vmaq_mapping_get(m, i - 1)->end, vmaq_mapping_get(m, i)->start);
                ck_assert_uint_eq(strlen(vmaq_mapping_get(m, i)->perms), 4);
        }

        ck_assert_int_eq(stat(child.file_path, &st), 0);
        v = find_mapping(m, child.file_addr);
        ck_assert_ptr_nonnull(v);
        ck_assert_uint_eq(v->start, child.file_addr);
        ck_assert_uint_eq(v->end, child.file_addr + 2 * ps);
        ck_assert_uint_eq(v->offset, TEST_FILE_MAP_PGOFF * ps);
        ck_assert_str_eq(v->perms, "r--p");
        ck_assert_str_eq(v->path, child.file_path);
        ck_assert_str_eq(v->kind, "file");
        ck_assert_int_eq(v->deleted, 0);
        ck_assert_uint_eq(v->inode, st.st_ino);
        ck_assert_uint_eq(v->dev_major, major(st.st_dev));
        ck_assert_uint_eq(v->dev_minor, minor(st.st_dev));

        v = find_mapping(m, child.deleted_addr);
        ck_assert_ptr_nonnull(v);
        ck_assert_str_eq(v->kind, "file");
        ck_assert_int_eq(v->deleted, 1);

        v = find_mapping(m, child.anon_addr);
        ck_assert_ptr_nonnull(v);
        ck_assert_str_eq(v->kind, "anonymous");
        ck_assert_ptr_null(v->path);
        ck_assert_str_eq(v->perms, "rw-p");
        ck_assert_uint_eq(v->build_id_len, 0);
        ck_assert_ptr_null(v->build_id);

        ck_assert_ptr_null(find_mapping(m, child.unmapped_addr));

        v = find_mapping(m, child.vdso_addr);
        ck_assert_ptr_nonnull(v);
        ck_assert_str_eq(v->kind, "vdso");
        ck_assert_str_eq(v->path, "[vdso]");

        v = find_mapping(m, child.heap_addr);
        ck_assert_ptr_nonnull(v);
        ck_assert_str_eq(v->kind, "special");
        ck_assert_str_eq(v->path, "[heap]");

        test_child_stop(&child);
        vmaq_close(TAKE_PTR(c));
        daemon_stop(d);
}
END_TEST

/* Pinned to a start time: the process that started then, or -ESTALE. */
START_TEST(test_list_mappings_pinned) {
        _cleanup_(vmaq_closep) struct vmaq_client *c = NULL;
        _cleanup_(vmaq_mappings_freep) struct vmaq_mappings *m = NULL, *pinned = NULL, *wrong = NULL;
        TestChild child;
        Daemon *d;

        d = daemon_start(NULL);
        test_child_spawn(&child);
        c = connect_ok(d);
        ck_assert_int_eq(vmaq_list_mappings(c, child.pid, 0, &m), 0);
        ck_assert_int_eq(vmaq_list_mappings_pinned(c, child.pid, 0, m->start_time, &pinned), 0);
        ck_assert_uint_eq(pinned->start_time, m->start_time);
        ck_assert_uint_eq(pinned->n_mappings, m->n_mappings);
        ck_assert_int_eq(vmaq_list_mappings_pinned(c, child.pid, 0, m->start_time + 1, &wrong), -ESTALE);
        ck_assert_ptr_null(wrong);
        test_child_stop(&child);
        vmaq_close(TAKE_PTR(c));
        daemon_stop(d);
}
END_TEST

START_TEST(test_list_mappings_flags) {
        _cleanup_(vmaq_closep) struct vmaq_client *c = NULL;
        _cleanup_(vmaq_mappings_freep) struct vmaq_mappings *exec = NULL, *no_ids = NULL;
        uint8_t self_id[BUILD_ID_MAX];
        char self_path[PATH_MAX];
        const struct vmaq_mapping *v;
        size_t self_id_len;
        TestChild child;
        Daemon *d;

        d = daemon_start(NULL);
        test_child_spawn(&child);
        c = connect_ok(d);

        ck_assert_int_eq(vmaq_list_mappings(c, child.pid, VMAQ_LIST_EXEC_ONLY, &exec), 0);
        ck_assert_uint_gt(exec->n_mappings, 0);
        for (size_t i = 0; i < exec->n_mappings; i++)
                ck_assert_int_eq(vmaq_mapping_get(exec, i)->perms[2], 'x');
        ck_assert_ptr_null(find_mapping(exec, child.file_addr));

        test_self_exe(self_path);
        self_id_len = test_self_build_id(self_id);
        v = find_mapping(exec, child.code_addr);
        ck_assert_ptr_nonnull(v);
        ck_assert_str_eq(v->path, self_path);
        ck_assert_uint_eq(v->build_id_len, self_id_len);
        if (self_id_len > 0)
                ck_assert_mem_eq(v->build_id, self_id, self_id_len);

        ck_assert_int_eq(vmaq_list_mappings(c, child.pid, VMAQ_LIST_NO_BUILD_IDS, &no_ids), 0);
        ck_assert_uint_gt(no_ids->n_mappings, exec->n_mappings);
        for (size_t i = 0; i < no_ids->n_mappings; i++) {
                ck_assert_uint_eq(vmaq_mapping_get(no_ids, i)->build_id_len, 0);
                ck_assert_ptr_null(vmaq_mapping_get(no_ids, i)->build_id);
        }

        test_child_stop(&child);
        vmaq_close(TAKE_PTR(c));
        daemon_stop(d);
}
END_TEST

/* A map larger than one reply of the daemon: the parts are joined, and equal one whole listing. */
START_TEST(test_list_mappings_parts) {
        _cleanup_(vmaq_closep) struct vmaq_client *whole = NULL, *parts = NULL;
        _cleanup_(vmaq_mappings_freep) struct vmaq_mappings *a = NULL, *b = NULL;
        Daemon *d1, *d2;
        pid_t pid;
        int ctl;

        pid = spawn_many_mappings(3000, &ctl);
        d1 = daemon_start(NULL);
        d2 = daemon_start(ARGS("--max-reply-size", "65536"));
        whole = connect_ok(d1);
        parts = connect_ok(d2);
        ck_assert_int_eq(vmaq_list_mappings(whole, pid, 0, &a), 0);
        ck_assert_int_eq(vmaq_list_mappings(parts, pid, 0, &b), 0);
        ck_assert_str_eq(vmaq_errmsg(parts), "");

        ck_assert_uint_gt(a->n_mappings, 3000);
        ck_assert_uint_eq(b->n_mappings, a->n_mappings);
        ck_assert_uint_eq(b->start_time, a->start_time);
        for (size_t i = 0; i < a->n_mappings; i++) {
                ck_assert_uint_eq(vmaq_mapping_get(b, i)->start, vmaq_mapping_get(a, i)->start);
                ck_assert_uint_eq(vmaq_mapping_get(b, i)->end, vmaq_mapping_get(a, i)->end);
                ck_assert_str_eq(vmaq_mapping_get(b, i)->perms, vmaq_mapping_get(a, i)->perms);
                ck_assert_pstr_eq(vmaq_mapping_get(b, i)->path, vmaq_mapping_get(a, i)->path);
                ck_assert_uint_eq(vmaq_mapping_get(b, i)->build_id_len, vmaq_mapping_get(a, i)->build_id_len);
        }

        close(ctl);
        ck_assert_int_eq(waitpid(pid, NULL, 0), pid);
        vmaq_close(TAKE_PTR(whole));
        vmaq_close(TAKE_PTR(parts));
        daemon_stop(d2);
        daemon_stop(d1);
}
END_TEST

/* --- GetStatus ------------------------------------------------------------------------ */

START_TEST(test_get_status) {
        _cleanup_(vmaq_closep) struct vmaq_client *c = NULL;
        _cleanup_(vmaq_status_freep) struct vmaq_status *s = NULL, *s2 = NULL;
        _cleanup_(vmaq_normalization_freep) struct vmaq_normalization *n = NULL;
        VmaBackend backend;
        TestChild child;
        Daemon *d;

        d = daemon_start(ARGS("--max-connections", "7", "--cache-size", "5", "--build-id-cache-size", "9",
                              "--max-addresses", "1234", "--max-reply-size", "70000"));
        test_child_spawn(&child);
        c = connect_ok(d);

        ck_assert_int_eq(vmaq_get_status(c, &s), 0);
        ck_assert_str_eq(vmaq_errmsg(c), "");
        ck_assert_str_eq(s->version, PACKAGE_VERSION);
        ck_assert_int_eq(vma_backend_resolve(VMA_BACKEND_AUTO, &backend), 0);
        ck_assert_str_eq(s->backend, vma_backend_to_string(backend));
        ck_assert_uint_eq(s->connections, 1);
        ck_assert_uint_eq(s->connections_max, 7);
        /* The limits a client must stay within. */
        ck_assert_uint_eq(s->max_addresses, 1234);
        ck_assert_uint_eq(s->max_reply_size, 70000);
        ck_assert_uint_eq(s->max_message_size, 16U << 20);
        ck_assert_uint_eq(s->proc_cache_size, 0);
        ck_assert_uint_eq(s->proc_cache_max, 5);
        ck_assert_uint_eq(s->proc_cache_hits, 0);
        ck_assert_uint_eq(s->proc_cache_misses, 0);
        ck_assert_uint_eq(s->build_id_cache_size, 0);
        ck_assert_uint_eq(s->build_id_cache_max, 9);
        ck_assert_uint_eq(s->requests, 1);
        ck_assert_uint_eq(s->errors, 0);
        ck_assert_uint_eq(s->denied, 0);
        ck_assert_uint_eq(s->connections_per_user_max, 7);      /* clamped to the total */
        ck_assert_uint_eq(s->workers_used, 1);                  /* the one answering */
        ck_assert_uint_eq(s->workers_max, 16);
        ck_assert_uint_gt(s->memory_used, 0);                   /* this connection's input */
        ck_assert_uint_le(s->memory_used, s->memory_max);
        ck_assert_uint_eq(s->memory_max, 256U << 20);
        ck_assert_uint_eq(s->refused_connections, 0);
        ck_assert_uint_eq(s->refused_user_connections, 0);
        ck_assert_uint_eq(s->refused_memory, 0);
        ck_assert_uint_eq(s->refused_timeouts, 0);
        ck_assert_uint_eq(s->refused_idle, 0);

        /* A call and an error later, the counters moved. */
        ck_assert_int_eq(vmaq_normalize(c, child.pid, &child.file_addr, 1, 0, 0, &n), 0);
        vmaq_normalization_free(TAKE_PTR(n));
        ck_assert_int_eq(vmaq_normalize(c, 0, &child.file_addr, 1, 0, 0, &n), -EINVAL);
        ck_assert_int_eq(vmaq_get_status(c, &s2), 0);
        ck_assert_uint_eq(s2->requests, 4);
        ck_assert_uint_eq(s2->errors, 1);
        ck_assert_uint_eq(s2->proc_cache_size, 1);
        ck_assert_uint_eq(s2->proc_cache_misses, 1);
        ck_assert_uint_ge(s2->uptime_usec, s->uptime_usec);

        test_child_stop(&child);
        vmaq_close(TAKE_PTR(c));
        daemon_stop(d);
}
END_TEST

/* --- errors from the daemon ------------------------------------------------------------ */

START_TEST(test_error_no_such_process) {
        _cleanup_(vmaq_closep) struct vmaq_client *c = NULL;
        _cleanup_(vmaq_normalization_freep) struct vmaq_normalization *n = NULL;
        _cleanup_(vmaq_mappings_freep) struct vmaq_mappings *m = NULL;
        uint64_t addr = 0x1000;
        char expected[128];
        pid_t pid;
        Daemon *d;

        d = daemon_start(NULL);
        c = connect_ok(d);

        pid = fork_child();
        if (pid == 0)
                _exit(EXIT_SUCCESS);
        wait_child_ok(pid);

        ck_assert_int_eq(vmaq_normalize(c, pid, &addr, 1, 0, 0, &n), -ESRCH);
        ck_assert_ptr_null(n);
        snprintf(expected, sizeof(expected), "no such process: pid %d (io.vmaq.NoSuchProcess)", (int) pid);
        ck_assert_str_eq(vmaq_errmsg(c), expected);

        ck_assert_int_eq(vmaq_list_mappings(c, pid, 0, &m), -ESRCH);
        ck_assert_ptr_null(m);
        ck_assert_str_eq(vmaq_errmsg(c), expected);

        vmaq_close(TAKE_PTR(c));
        daemon_stop(d);
}
END_TEST

START_TEST(test_error_zombie) {
        _cleanup_(vmaq_closep) struct vmaq_client *c = NULL;
        _cleanup_(vmaq_normalization_freep) struct vmaq_normalization *n = NULL;
        uint64_t addr = 0x1000;
        char expected[128];
        siginfo_t si = {};
        pid_t pid;
        Daemon *d;

        d = daemon_start(NULL);
        c = connect_ok(d);

        pid = fork_child();
        if (pid == 0)
                _exit(EXIT_SUCCESS);
        /* Exited, not reaped: a zombie. */
        ck_assert_int_eq(waitid(P_PID, (id_t) pid, &si, WEXITED | WNOWAIT), 0);

        ck_assert_int_eq(vmaq_normalize(c, pid, &addr, 1, 0, 0, &n), -ENXIO);
        snprintf(expected, sizeof(expected), "process has no address space: pid %d (io.vmaq.NoAddressSpace)",
                 (int) pid);
        ck_assert_str_eq(vmaq_errmsg(c), expected);
        wait_child_ok(pid);

        vmaq_close(TAKE_PTR(c));
        daemon_stop(d);
}
END_TEST

/* Asked as nobody, pid 1 (root's) is refused: -EACCES. */
static void check_permission_denied(const char *socket_path) {
        _cleanup_(vmaq_closep) struct vmaq_client *c = NULL;
        struct vmaq_normalization *n = NULL;
        struct vmaq_mappings *m = NULL;
        uint64_t addr = 0x1000;

        CHILD_CHECK(vmaq_connect(&c, socket_path) == 0);
        CHILD_CHECK(vmaq_normalize(c, 1, &addr, 1, 0, 0, &n) == -EACCES);
        CHILD_CHECK(n == NULL);
        CHILD_CHECK(streq(vmaq_errmsg(c), "permission denied: pid 1 (io.vmaq.PermissionDenied)"));
        CHILD_CHECK(vmaq_list_mappings(c, 1, 0, &m) == -EACCES);
        CHILD_CHECK(m == NULL);
}

START_TEST(test_error_permission_denied) {
        Daemon *d;
        pid_t pid;

        d = daemon_start(ARGS("--group", ""));

        pid = fork_child();
        if (pid == 0) {
                if (getuid() == 0) {
                        CHILD_CHECK(setgroups(0, NULL) == 0);
                        CHILD_CHECK(setresgid(NOBODY, NOBODY, NOBODY) == 0);
                        CHILD_CHECK(setresuid(NOBODY, NOBODY, NOBODY) == 0);
                }
                check_permission_denied(d->socket_path);
                _exit(EXIT_SUCCESS);
        }
        wait_child_ok(pid);

        daemon_stop(d);
}
END_TEST

/*
 * More addresses than the daemon takes in one call: libvmaq learns the
 * limit from the refusal and asks in batches, pinned to the process the
 * first answered for, and the answer is the one a single call would give,
 * each file once.
 */
START_TEST(test_batches_over_the_limit) {
        _cleanup_(vmaq_closep) struct vmaq_client *c = NULL;
        _cleanup_(vmaq_normalization_freep) struct vmaq_normalization *n = NULL, *again = NULL, *ten = NULL;
        _cleanup_(normalization_freep) Normalization *want = NULL;
        _cleanup_(vmaq_status_freep) struct vmaq_status *s = NULL;
        uint64_t a[_A_MAX], addrs[3 * _A_MAX + 1];
        TestChild child;
        Daemon *d;

        d = daemon_start(ARGS("--max-addresses", "4"));
        test_child_spawn(&child);
        child_addresses(&child, a);
        c = connect_ok(d);
        /* Every kind of address, each file in several batches. */
        for (size_t i = 0; i < ELEMENTSOF(addrs); i++)
                addrs[i] = a[i % _A_MAX];

        ck_assert_int_eq(vmaq_normalize(c, child.pid, addrs, ELEMENTSOF(addrs), 0, 0, &n), 0);
        ck_assert_str_eq(vmaq_errmsg(c), "");
        want = core_normalize(child.pid, addrs, ELEMENTSOF(addrs), NORMALIZE_BUILD_IDS | NORMALIZE_ELF);
        assert_same_as_core(n, want, addrs, ELEMENTSOF(addrs));
        ck_assert_uint_eq(n->start_time, want->start_time);

        /* The limit known now, straight to batches; at the limit, one call. */
        ck_assert_int_eq(vmaq_normalize(c, child.pid, addrs, ELEMENTSOF(addrs), 0, 0, &again), 0);
        assert_same_as_core(again, want, addrs, ELEMENTSOF(addrs));
        ck_assert_int_eq(vmaq_normalize(c, child.pid, addrs, 4, 0, 0, &ten), 0);
        ck_assert_uint_eq(ten->n_results, 4);
        ck_assert_int_eq(vmaq_get_status(c, &s), 0);
        ck_assert_uint_eq(s->max_addresses, 4);

        test_child_stop(&child);
        vmaq_close(TAKE_PTR(c));
        daemon_stop(d);
}
END_TEST

/* A message over --max-message-size: the daemon answers, then hangs up before reading it all. */
START_TEST(test_error_message_too_large) {
        _cleanup_(vmaq_closep) struct vmaq_client *c = NULL;
        _cleanup_(vmaq_normalization_freep) struct vmaq_normalization *n = NULL;
        _cleanup_(vmaq_status_freep) struct vmaq_status *s = NULL;
        _cleanup_free_ uint64_t *addrs = NULL;
        Daemon *d;

        d = daemon_start(ARGS("--max-message-size", "1000"));
        c = connect_ok(d);
        addrs = calloc(BATCH, sizeof(uint64_t));
        ck_assert_ptr_nonnull(addrs);

        ck_assert_int_eq(vmaq_normalize(c, getpid(), addrs, BATCH, 0, 0, &n), -E2BIG);
        ck_assert_str_eq(vmaq_errmsg(c), "request too large: over the limit of 1000 bytes (io.vmaq.RequestTooLarge)");
        ck_assert_int_eq(vmaq_get_status(c, &s), -ECONNRESET);
        ck_assert_int_eq(vmaq_get_status(c, &s), -ENOTCONN);

        vmaq_close(TAKE_PTR(c));
        daemon_stop(d);
}
END_TEST

/*
 * A connection over the user's share: the daemon says why before it hangs
 * up, the first call returns that, and the connection is then gone.
 */
START_TEST(test_error_too_many_connections) {
        _cleanup_(vmaq_closep) struct vmaq_client *c = NULL, *over = NULL;
        _cleanup_(vmaq_status_freep) struct vmaq_status *s = NULL;
        int64_t deadline = now_ms() + TIMEOUT_MS;
        int r;
        Daemon *d;

        /* One connection for any user, root (half the total) included. */
        d = daemon_start(ARGS("--max-connections", "2", "--max-connections-per-user", "1"));

        /* Until daemon_start()'s own probe is gone, it is the one connection. */
        for (;;) {
                c = connect_ok(d);
                r = vmaq_get_status(c, &s);
                if (r != -EUSERS || now_ms() > deadline)
                        break;
                vmaq_close(TAKE_PTR(c));
                (void) poll(NULL, 0, 20);
        }
        ck_assert_int_eq(r, 0);
        vmaq_status_free(TAKE_PTR(s));

        over = connect_ok(d);
        ck_assert_int_eq(vmaq_get_status(over, &s), -EUSERS);
        ck_assert_ptr_null(s);
        ck_assert_ptr_nonnull(strstr(vmaq_errmsg(over), "(io.vmaq.TooManyConnections)"));
        ck_assert_int_eq(vmaq_get_status(over, &s), -ECONNRESET);

        /* The one who holds the share is still served, and saw the refusal counted. */
        ck_assert_int_eq(vmaq_get_status(c, &s), 0);
        ck_assert_uint_ge(s->refused_connections + s->refused_user_connections, 1);

        vmaq_close(TAKE_PTR(c));
        vmaq_close(TAKE_PTR(over));
        daemon_stop(d);
}
END_TEST

START_TEST(test_error_invalid) {
        _cleanup_(vmaq_closep) struct vmaq_client *c = NULL;
        _cleanup_(vmaq_normalization_freep) struct vmaq_normalization *n = NULL;
        _cleanup_(vmaq_mappings_freep) struct vmaq_mappings *m = NULL;
        _cleanup_(vmaq_status_freep) struct vmaq_status *s = NULL;
        uint64_t addr = 0x1000;
        Daemon *d;

        d = daemon_start(NULL);
        c = connect_ok(d);

        /* The daemon judges pid and count: InvalidParameter. */
        ck_assert_int_eq(vmaq_normalize(c, 0, &addr, 1, 0, 0, &n), -EINVAL);
        ck_assert_ptr_null(n);
        ck_assert_str_eq(vmaq_errmsg(c), "invalid parameter: 'pid' (org.varlink.service.InvalidParameter)");
        ck_assert_int_eq(vmaq_normalize(c, -1, &addr, 1, 0, 0, &n), -EINVAL);
        ck_assert_str_eq(vmaq_errmsg(c), "invalid parameter: 'pid' (org.varlink.service.InvalidParameter)");
        ck_assert_int_eq(vmaq_normalize(c, getpid(), NULL, 0, 0, 0, &n), -EINVAL);
        ck_assert_str_eq(vmaq_errmsg(c), "invalid parameter: 'addresses' (org.varlink.service.InvalidParameter)");
        ck_assert_int_eq(vmaq_list_mappings(c, 0, 0, &m), -EINVAL);
        ck_assert_ptr_null(m);
        ck_assert_str_eq(vmaq_errmsg(c), "invalid parameter: 'pid' (org.varlink.service.InvalidParameter)");

        /* The library's own checks. */
        ck_assert_int_eq(vmaq_normalize(c, getpid(), &addr, 1, 1U << 7, 0, &n), -EINVAL);
        ck_assert_str_eq(vmaq_errmsg(c), "unknown flags 0x80");
        ck_assert_int_eq(vmaq_list_mappings(c, getpid(), 1U << 5, &m), -EINVAL);
        ck_assert_int_eq(vmaq_normalize(c, getpid(), NULL, 1, 0, 0, &n), -EINVAL);
        ck_assert_int_eq(vmaq_normalize(c, getpid(), &addr, 1, 0, 0, NULL), -EINVAL);
        ck_assert_int_eq(vmaq_normalize(NULL, getpid(), &addr, 1, 0, 0, &n), -EINVAL);
        ck_assert_int_eq(vmaq_get_status(NULL, &s), -EINVAL);
        ck_assert_int_eq(vmaq_set_timeout(NULL, 1), -EINVAL);

        /* None of it broke the connection. */
        ck_assert_int_eq(vmaq_get_status(c, &s), 0);

        vmaq_close(TAKE_PTR(c));
        daemon_stop(d);
}
END_TEST

/* --- connecting ------------------------------------------------------------------------- */

START_TEST(test_connect_errors) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        struct vmaq_client *c = (struct vmaq_client *) &sa;     /* must be reset */
        char path[PATH_MAX], long_path[200];
        _cleanup_close_ int fd = -EBADF;

        snprintf(path, sizeof(path), "%s/missing.sock", run_dir);
        ck_assert_int_eq(vmaq_connect(&c, path), -ENOENT);
        ck_assert_ptr_null(c);

        /* A socket file nobody listens on. */
        snprintf(path, sizeof(path), "%s/dead.sock", run_dir);
        fd = socket(AF_UNIX, SOCK_STREAM|SOCK_CLOEXEC, 0);
        ck_assert_int_ge(fd, 0);
        strcpy(sa.sun_path, path);
        ck_assert_int_eq(bind(fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
        fd = safe_close(fd);
        ck_assert_int_eq(vmaq_connect(&c, path), -ECONNREFUSED);
        ck_assert_ptr_null(c);
        ck_assert_int_eq(unlink(path), 0);

        memset(long_path, 'x', sizeof(long_path) - 1);
        long_path[0] = '/';
        long_path[sizeof(long_path) - 1] = '\0';
        ck_assert_int_eq(vmaq_connect(&c, long_path), -ENAMETOOLONG);
        ck_assert_int_eq(vmaq_connect(&c, ""), -EINVAL);
        ck_assert_int_eq(vmaq_connect(NULL, path), -EINVAL);
}
END_TEST

/*
 * A socket the caller may not open is -EPERM, never -EACCES, which is the
 * policy's refusal of a process. And the header's version is the package's.
 */
START_TEST(test_connect_denied) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_close_ int fd = -EBADF;
        char path[PATH_MAX], version[32];
        pid_t pid;

        snprintf(version, sizeof(version), "%d.%d", VMAQ_VERSION_MAJOR, VMAQ_VERSION_MINOR);
        ck_assert_int_eq(strncmp(PACKAGE_VERSION, version, strlen(version)), 0);
        ck_assert(VMAQ_VERSION_AT_LEAST(0, 0) && VMAQ_VERSION_AT_LEAST(VMAQ_VERSION_MAJOR, VMAQ_VERSION_MINOR));
        ck_assert(!VMAQ_VERSION_AT_LEAST(VMAQ_VERSION_MAJOR + 1, 0));

        snprintf(path, sizeof(path), "%s/closed.sock", run_dir);
        fd = socket(AF_UNIX, SOCK_STREAM|SOCK_CLOEXEC, 0);
        ck_assert_int_ge(fd, 0);
        strcpy(sa.sun_path, path);
        ck_assert_int_eq(bind(fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
        ck_assert_int_eq(listen(fd, 1), 0);
        ck_assert_int_eq(chmod(path, 0), 0);

        pid = fork_child();
        if (pid == 0) {
                struct vmaq_client *c = NULL;

                /* Root opens any socket: be nobody. */
                if (getuid() == 0) {
                        CHILD_CHECK(setgroups(0, NULL) == 0);
                        CHILD_CHECK(setresgid(NOBODY, NOBODY, NOBODY) == 0);
                        CHILD_CHECK(setresuid(NOBODY, NOBODY, NOBODY) == 0);
                }
                CHILD_CHECK(vmaq_connect(&c, path) == -EPERM);
                CHILD_CHECK(!c);
                _exit(EXIT_SUCCESS);
        }
        wait_child_ok(pid);
        ck_assert_int_eq(unlink(path), 0);
}
END_TEST

/* With no path: $VMAQ_SOCKET. */
START_TEST(test_connect_env) {
        _cleanup_(vmaq_closep) struct vmaq_client *c = NULL;
        _cleanup_(vmaq_status_freep) struct vmaq_status *s = NULL;
        char path[PATH_MAX];
        Daemon *d;

        d = daemon_start(NULL);

        snprintf(path, sizeof(path), "%s/missing.sock", run_dir);
        ck_assert_int_eq(setenv("VMAQ_SOCKET", path, 1), 0);
        ck_assert_int_eq(vmaq_connect(&c, NULL), -ENOENT);
        ck_assert_ptr_null(c);

        ck_assert_int_eq(setenv("VMAQ_SOCKET", d->socket_path, 1), 0);
        ck_assert_int_eq(vmaq_connect(&c, NULL), 0);
        ck_assert_int_eq(unsetenv("VMAQ_SOCKET"), 0);
        ck_assert_int_eq(vmaq_get_status(c, &s), 0);
        ck_assert_uint_eq(s->connections, 1);

        vmaq_close(TAKE_PTR(c));
        daemon_stop(d);
}
END_TEST

/* --- the connection failing ------------------------------------------------------------------ */

/* A listening socket in the run directory. */
static int listen_socket(const char *name, char path[static PATH_MAX]) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd;

        snprintf(path, PATH_MAX, "%s/%s", run_dir, name);
        (void) unlink(path);
        fd = socket(AF_UNIX, SOCK_STREAM|SOCK_CLOEXEC, 0);
        ck_assert_int_ge(fd, 0);
        strcpy(sa.sun_path, path);
        ck_assert_int_eq(bind(fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
        ck_assert_int_eq(listen(fd, 8), 0);
        return fd;
}

/* An accepted connection that never answers and never reads: the call times out. */
static void check_timeout(size_t n_addresses) {
        _cleanup_(vmaq_closep) struct vmaq_client *c = NULL;
        _cleanup_(vmaq_normalization_freep) struct vmaq_normalization *n = NULL;
        _cleanup_(vmaq_status_freep) struct vmaq_status *s = NULL;
        _cleanup_close_ int listen_fd = -EBADF, conn_fd = -EBADF;
        _cleanup_free_ uint64_t *addrs = NULL;
        char path[PATH_MAX];
        int64_t start, elapsed;

        listen_fd = listen_socket("silent.sock", path);
        ck_assert_int_eq(vmaq_connect(&c, path), 0);
        conn_fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
        ck_assert_int_ge(conn_fd, 0);
        addrs = calloc(n_addresses, sizeof(uint64_t));
        ck_assert_ptr_nonnull(addrs);
        for (size_t i = 0; i < n_addresses; i++)
                addrs[i] = UINT64_MAX - i;

        ck_assert_int_eq(vmaq_set_timeout(c, 200 * 1000), 0);
        start = now_ms();
        ck_assert_int_eq(vmaq_normalize(c, 1, addrs, n_addresses, 0, 0, &n), -ETIMEDOUT);
        elapsed = now_ms() - start;
        ck_assert_ptr_null(n);
        ck_assert_str_eq(vmaq_errmsg(c), "no reply from the daemon within 200 ms");
        /* It waited, and it came back: not a speed check, a bound. */
        ck_assert_int_ge(elapsed, 200);
        ck_assert_int_lt(elapsed, TIMEOUT_MS);

        /* The stream is out of step now. */
        ck_assert_int_eq(vmaq_get_status(c, &s), -ENOTCONN);
        ck_assert_str_eq(vmaq_errmsg(c), "the connection is unusable after an earlier failure");
        ck_assert_int_eq(unlink(path), 0);
}

/* A listener that never accepts, with a full backlog: each connect then waits for room. */
typedef struct FullListener {
        int fd;
        int queued[8];
        size_t n_queued;
        char path[PATH_MAX];
} FullListener;

static void full_listener_open(FullListener *l) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };

        *l = (FullListener) { .fd = -EBADF };
        snprintf(l->path, sizeof(l->path), "%s/full.sock", run_dir);
        (void) unlink(l->path);
        l->fd = socket(AF_UNIX, SOCK_STREAM|SOCK_CLOEXEC, 0);
        ck_assert_int_ge(l->fd, 0);
        strcpy(sa.sun_path, l->path);
        ck_assert_int_eq(bind(l->fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
        ck_assert_int_eq(listen(l->fd, 0), 0);
        /* A non-blocking connect fails with EAGAIN, rather than waiting, once it is full. */
        for (;;) {
                int q = socket(AF_UNIX, SOCK_STREAM|SOCK_CLOEXEC|SOCK_NONBLOCK, 0);

                ck_assert_int_ge(q, 0);
                if (connect(q, (struct sockaddr *) &sa, sizeof(sa)) < 0) {
                        ck_assert_int_eq(errno, EAGAIN);
                        close(q);
                        break;
                }
                ck_assert_uint_lt(l->n_queued, ELEMENTSOF(l->queued));
                l->queued[l->n_queued++] = q;
        }
        ck_assert_uint_gt(l->n_queued, 0);
}

static void full_listener_close(FullListener *l) {
        for (size_t i = 0; i < l->n_queued; i++)
                safe_close(l->queued[i]);
        safe_close(l->fd);
        (void) unlink(l->path);
}

static volatile sig_atomic_t got_alarm;

static void on_alarm(int sig) {
        got_alarm = 1;
}

START_TEST(test_connect_timeout) {
        _cleanup_(full_listener_close) FullListener l = { .fd = -EBADF };
        _cleanup_(vmaq_status_freep) struct vmaq_status *s = NULL;
        struct vmaq_client *c = (struct vmaq_client *) &l;      /* must be reset */
        struct sigaction sa = { .sa_handler = on_alarm };       /* no SA_RESTART */
        struct itimerval alarm_20ms = { .it_value.tv_usec = 20 * 1000 };
        _cleanup_close_ int conn_fd = -EBADF;

        full_listener_open(&l);
        ck_assert_int_eq(vmaq_connect_timeout(&c, l.path, 100 * 1000), -ETIMEDOUT);
        ck_assert_ptr_null(c);

        /* A signal while waiting for room: the wait goes on, still bounded. */
        ck_assert_int_eq(sigaction(SIGALRM, &sa, NULL), 0);
        ck_assert_int_eq(setitimer(ITIMER_REAL, &alarm_20ms, NULL), 0);
        ck_assert_int_eq(vmaq_connect_timeout(&c, l.path, 200 * 1000), -ETIMEDOUT);
        ck_assert_ptr_null(c);
        ck_assert_int_eq(got_alarm, 1);

        /* Room for one: connected, and the calls have the same timeout. */
        conn_fd = accept4(l.fd, NULL, NULL, SOCK_CLOEXEC);
        ck_assert_int_ge(conn_fd, 0);
        ck_assert_int_eq(vmaq_connect_timeout(&c, l.path, 100 * 1000), 0);
        ck_assert_int_eq(vmaq_get_status(c, &s), -ETIMEDOUT);
        ck_assert_str_eq(vmaq_errmsg(c), "no reply from the daemon within 100 ms");
        vmaq_close(TAKE_PTR(c));

        ck_assert_int_eq(vmaq_connect_timeout(NULL, l.path, 1), -EINVAL);
}
END_TEST

START_TEST(test_timeout_reply) {
        /* The call fits in the socket buffer: the wait is for the reply. */
        check_timeout(1);
}
END_TEST

START_TEST(test_timeout_send) {
        /* A few MiB: the wait is for the daemon to read. */
        check_timeout(BATCH);
}
END_TEST

/*
 * A fake daemon on @listen_fd: accept one connection, read one message up
 * to its NUL if @read_request, send @reply (@size bytes), then hang up.
 */
static pid_t fake_server(int listen_fd, bool read_request, const char *reply, size_t size) {
        pid_t pid = fork_child();

        if (pid == 0) {
                int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
                char buf[65536];

                CHILD_CHECK(fd >= 0);
                while (read_request) {
                        ssize_t n = read(fd, buf, sizeof(buf));

                        CHILD_CHECK(n > 0);
                        if (memchr(buf, '\0', (size_t) n))
                                break;
                }
                for (size_t done = 0; done < size;) {
                        ssize_t n = send(fd, reply + done, size - done, MSG_NOSIGNAL);

                        /* A client that gave up on an endless reply hangs up. */
                        if (n < 0 && (errno == EPIPE || errno == ECONNRESET))
                                break;
                        CHILD_CHECK(n > 0);
                        done += (size_t) n;
                }
                _exit(EXIT_SUCCESS);
        }
        return pid;
}

/* The reply to a call on a connection to a fake server: its return value, and the message. */
static int call_fake(bool read_request, const char *reply, size_t size, size_t n_addresses, char *errmsg,
                     size_t errmsg_size) {
        _cleanup_(vmaq_closep) struct vmaq_client *c = NULL;
        _cleanup_(vmaq_normalization_freep) struct vmaq_normalization *n = NULL;
        _cleanup_(vmaq_status_freep) struct vmaq_status *s = NULL;
        _cleanup_close_ int listen_fd = -EBADF;
        _cleanup_free_ uint64_t *addrs = NULL;
        char path[PATH_MAX];
        pid_t pid;
        int r, r2;

        listen_fd = listen_socket("fake.sock", path);
        pid = fake_server(listen_fd, read_request, reply, size);
        ck_assert_int_eq(vmaq_connect(&c, path), 0);
        ck_assert_int_eq(vmaq_set_timeout(c, TIMEOUT_MS * 1000), 0);
        addrs = calloc(n_addresses, sizeof(uint64_t));
        ck_assert_ptr_nonnull(addrs);
        /* Long numbers: a large batch then takes MiBs, more than the socket buffers. */
        for (size_t i = 0; i < n_addresses; i++)
                addrs[i] = UINT64_MAX - i;

        r = vmaq_normalize(c, 1, addrs, n_addresses, 0, 0, &n);
        ck_assert_ptr_null(n);
        snprintf(errmsg, errmsg_size, "%s", vmaq_errmsg(c));

        /* Whatever went wrong, the server is going: unusable, or found closed now. */
        r2 = vmaq_get_status(c, &s);
        ck_assert_msg(IN_SET(r2, -ENOTCONN, -ECONNRESET), "then %d", r2);
        vmaq_close(TAKE_PTR(c));
        wait_child_ok(pid);
        ck_assert_int_eq(unlink(path), 0);
        return r;
}

/* What the daemon says for symbolizers, through the accessors; nothing of it for an older daemon's answer. */
START_TEST(test_elf_accessors) {
        static const char reply[] =
                "{\"parameters\":{\"pid\":1,\"start_time\":2,\"modules\":["
                "{\"path\":\"/bin/a\",\"build_id\":\"ab\",\"deleted\":false,\"vdso\":false,"
                "\"host_path\":\"/proc/9/root/bin/a\",\"dev_major\":1,"
                "\"dev_minor\":2,\"inode\":3,\"elf_type\":\"exec\",\"go_build_id\":\"go/id\","
                "\"htlhash\":\"000102030405060708090a0b0c0d0e0f\","
                "\"package\":{\"name\":\"a\",\"osVersion\":\"12\",\"future\":\"x\",\"version\":7}},"
                "{\"path\":\"/data\",\"build_id\":null,\"deleted\":false,\"vdso\":false,\"dev_major\":1,"
                "\"dev_minor\":2,\"inode\":4}],"
                "\"results\":[{\"module\":0,\"offset\":4112,\"elf_address\":4198416},"
                "{\"module\":0,\"offset\":9,\"no_elf_address\":\"outside_load_segments\"},"
                "{\"module\":1,\"offset\":1,\"no_elf_address\":\"not_elf\"},"
                "{\"module\":1,\"offset\":2,\"no_elf_address\":\"unreadable\"},"
                "{\"module\":1,\"offset\":3},"
                "{\"unknown\":\"anonymous\"}]}}";
        _cleanup_(vmaq_closep) struct vmaq_client *c = NULL;
        _cleanup_(vmaq_normalization_freep) struct vmaq_normalization *n = NULL;
        _cleanup_close_ int listen_fd = -EBADF;
        uint64_t addrs[6] = { 1, 2, 3, 4, 5, 6 }, a = 0;
        uint8_t h[VMAQ_HTLHASH_SIZE];
        char path[PATH_MAX];
        pid_t pid;

        listen_fd = listen_socket("fake.sock", path);
        pid = fake_server(listen_fd, true, reply, sizeof(reply));
        ck_assert_int_eq(vmaq_connect(&c, path), 0);
        ck_assert_int_eq(vmaq_normalize(c, 1, addrs, ELEMENTSOF(addrs), VMAQ_NORMALIZE_HTLHASH, 0, &n), 0);
        wait_child_ok(pid);
        ck_assert_int_eq(unlink(path), 0);

        ck_assert_str_eq(vmaq_module_host_path(n, 0), "/proc/9/root/bin/a");
        ck_assert_ptr_null(vmaq_module_host_path(n, 1));
        ck_assert_int_eq(vmaq_module_elf_type(n, 0), VMAQ_ELF_EXEC);
        ck_assert_int_eq(vmaq_module_elf_type(n, 1), VMAQ_ELF_UNKNOWN);
        ck_assert_int_eq(vmaq_module_elf_type(n, 2), VMAQ_ELF_UNKNOWN);
        ck_assert_str_eq(vmaq_module_go_build_id(n, 0), "go/id");
        ck_assert_ptr_null(vmaq_module_go_build_id(n, 1));
        ck_assert_int_eq(vmaq_module_htlhash(n, 0, h), 0);
        for (size_t i = 0; i < sizeof(h); i++)
                ck_assert_uint_eq(h[i], i);
        ck_assert_int_eq(vmaq_module_htlhash(n, 1, h), -ENODATA);
        ck_assert_int_eq(vmaq_module_htlhash(n, 2, h), -EINVAL);
        ck_assert_str_eq(vmaq_module_package(n, 0, "name"), "a");
        ck_assert_str_eq(vmaq_module_package(n, 0, "osVersion"), "12");
        ck_assert_ptr_null(vmaq_module_package(n, 0, "version"));       /* not a string */
        ck_assert_ptr_null(vmaq_module_package(n, 0, "future"));        /* not one of ours */
        ck_assert_ptr_null(vmaq_module_package(n, 1, "name"));

        ck_assert_int_eq(vmaq_result_elf_address(n, 0, &a), 0);
        ck_assert_uint_eq(a, 4198416);
        ck_assert_int_eq(vmaq_result_elf_address(n, 1, &a), -ERANGE);
        ck_assert_int_eq(vmaq_result_elf_address(n, 2, &a), -ENOEXEC);
        ck_assert_int_eq(vmaq_result_elf_address(n, 3, &a), -EIO);
        ck_assert_int_eq(vmaq_result_elf_address(n, 4, &a), -ENODATA);
        ck_assert_int_eq(vmaq_result_elf_address(n, 5, &a), -ENODATA);
        ck_assert_int_eq(vmaq_result_elf_address(n, 6, &a), -EINVAL);
        ck_assert_int_eq(vmaq_result_elf_address(NULL, 0, &a), -EINVAL);
        /* The elements, one by one; nothing past the ends. */
        ck_assert_uint_eq(vmaq_result_get(n, 0)->offset, 4112);
        ck_assert_str_eq(vmaq_module_get(n, 1)->path, "/data");
        ck_assert_ptr_nonnull(vmaq_result_get(n, n->n_results - 1));
        ck_assert_ptr_null(vmaq_result_get(n, n->n_results));
        ck_assert_ptr_nonnull(vmaq_module_get(n, n->n_modules - 1));
        ck_assert_ptr_null(vmaq_module_get(n, n->n_modules));
        ck_assert_ptr_null(vmaq_result_get(NULL, 0));
        ck_assert_ptr_null(vmaq_module_get(NULL, 0));
}
END_TEST

/* The daemon reads the call, then goes away. */
START_TEST(test_hangup_after_request) {
        char msg[512];

        ck_assert_int_eq(call_fake(true, NULL, 0, 1, msg, sizeof(msg)), -ECONNRESET);
        ck_assert_str_eq(msg, "the daemon closed the connection");
}
END_TEST

/* The daemon goes away without reading a large call: no SIGPIPE, -ECONNRESET. */
START_TEST(test_hangup_before_request) {
        char msg[512];

        ck_assert_int_eq(call_fake(false, NULL, 0, BATCH, msg, sizeof(msg)), -ECONNRESET);
        ck_assert_str_eq(msg, "the daemon closed the connection");
}
END_TEST

/* The daemon goes away in the middle of its reply. */
START_TEST(test_hangup_mid_reply) {
        static const char partial[] = "{\"parameters\":{\"pid\":1,";
        char msg[512];

        ck_assert_int_eq(call_fake(true, partial, strlen(partial), 1, msg, sizeof(msg)), -ECONNRESET);
        ck_assert_str_eq(msg, "the daemon closed the connection in the middle of a reply");
}
END_TEST

/* A real daemon stopped between two calls. */
START_TEST(test_daemon_stopped) {
        _cleanup_(vmaq_closep) struct vmaq_client *c = NULL;
        _cleanup_(vmaq_status_freep) struct vmaq_status *s = NULL;
        Daemon *d;

        d = daemon_start(NULL);
        c = connect_ok(d);
        ck_assert_int_eq(vmaq_get_status(c, &s), 0);
        vmaq_status_free(TAKE_PTR(s));
        daemon_stop(d);

        ck_assert_int_eq(vmaq_get_status(c, &s), -ECONNRESET);
        ck_assert_ptr_null(s);
        ck_assert_int_eq(vmaq_get_status(c, &s), -ENOTCONN);
}
END_TEST

/* Replies that are not valid: -EPROTO, with the reason. */
static const struct {
        const char *reply;                      /* NUL added */
        int error;
        const char *errmsg;
} bad_reply_vectors[] = {
        { "not json", -EPROTO, "invalid reply: not valid JSON" },
        { "[1]", -EPROTO, "invalid reply: bad 'message'" },
        { "{\"parameters\":{},\"upgrade\":true}", -EPROTO, "invalid reply: bad 'message'" },
        { "{\"parameters\":{},\"continues\":true}", -EPROTO, "invalid reply: bad 'continues'" },
        { "{\"error\":\"nodot\"}", -EPROTO, "invalid reply: bad 'error'" },
        { "{\"parameters\":{}}", -EPROTO, "invalid Normalize reply: bad 'pid'" },
        { "{\"parameters\":{\"pid\":1,\"start_time\":-1,\"modules\":[],\"results\":[]}}", -EPROTO,
          "invalid Normalize reply: bad 'start_time'" },
        { "{\"parameters\":{\"pid\":1,\"start_time\":18446744073709551616,\"modules\":[],\"results\":[]}}",
          -EPROTO, "invalid Normalize reply: bad 'start_time'" },
        { "{\"parameters\":{\"pid\":1,\"start_time\":1,\"modules\":[],\"results\":[{\"module\":0,\"offset\":0}]}}",
          -EPROTO, "invalid Normalize reply: bad 'module'" },
        { "{\"parameters\":{\"pid\":1,\"start_time\":1,\"modules\":[],\"results\":[{\"unknown\":\"weird\"}]}}",
          -EPROTO, "invalid Normalize reply: bad 'unknown'" },
        { "{\"parameters\":{\"pid\":1,\"start_time\":1,\"modules\":[],\"results\":[]}}", -EPROTO,
          "invalid Normalize reply: 0 results for 1 addresses" },
        { "{\"error\":\"io.vmaq.NoSuchProcess\",\"parameters\":{}}", -EPROTO,
          "invalid error reply 'io.vmaq.NoSuchProcess': bad 'pid'" },
        /* Well-formed ones, for the mapping of the rest of the table. */
        { "{\"error\":\"org.example.Weird\",\"parameters\":{}}", -EPROTO, "unknown error (org.example.Weird)" },
        { "{\"error\":\"io.vmaq.ForeignPidNamespace\",\"parameters\":{}}", -EXDEV,
          "client in a pid namespace the daemon cannot tell (io.vmaq.ForeignPidNamespace)" },
        { "{\"error\":\"io.vmaq.InternalError\",\"parameters\":{\"errno\":12}}", -EIO,
          "internal error of the daemon: errno 12 (io.vmaq.InternalError)" },
        { "{\"error\":\"org.varlink.service.MethodNotFound\",\"parameters\":{\"method\":\"io.vmaq.Normalize\"}}",
          -EOPNOTSUPP, "method not found: 'io.vmaq.Normalize' (org.varlink.service.MethodNotFound)" },
        { "{\"error\":\"org.varlink.service.InterfaceNotFound\",\"parameters\":{\"interface\":\"io.vmaq\"}}",
          -EADDRNOTAVAIL, "interface not found: 'io.vmaq' (org.varlink.service.InterfaceNotFound)" },
};

START_TEST(test_bad_reply) {
        _cleanup_free_ char *reply = NULL;
        char msg[512];
        size_t size;

        size = strlen(bad_reply_vectors[_i].reply) + 1;
        reply = strdup(bad_reply_vectors[_i].reply);
        ck_assert_ptr_nonnull(reply);
        ck_assert_int_eq(call_fake(true, reply, size, 1, msg, sizeof(msg)), bad_reply_vectors[_i].error);
        ck_assert_str_eq(msg, bad_reply_vectors[_i].errmsg);
}
END_TEST

/* Streams that are not valid, for a batch large enough to ask for one. */
#define PART_OK "{\"parameters\":{\"pid\":1,\"start_time\":1,\"modules\":[{\"path\":\"/a\",\"build_id\":null," \
        "\"deleted\":false,\"vdso\":false,\"dev_major\":0,\"dev_minor\":0,\"inode\":1}]," \
        "\"results\":[{\"module\":0,\"offset\":0}]},\"continues\":true}"
#define STREAM_VECTOR(s, e, m) { s, sizeof(s), e, m }
static const struct {
        const char *reply;                      /* NUL-separated messages, with their NULs */
        size_t size;
        int error;
        const char *errmsg;
} bad_stream_vectors[] = {
        /* A later part may name the modules of the parts before it, not more. */
        STREAM_VECTOR(PART_OK "\0{\"parameters\":{\"pid\":1,\"start_time\":1,\"modules\":[],"
                      "\"results\":[{\"module\":1,\"offset\":0}]},\"continues\":true}",
                      -EPROTO, "invalid Normalize reply: bad 'module'"),
        STREAM_VECTOR(PART_OK "\0{\"parameters\":{\"pid\":2,\"start_time\":1,\"modules\":[],"
                      "\"results\":[{\"module\":0,\"offset\":0}]}}",
                      -EPROTO, "invalid Normalize reply: parts of different processes"),
        /* An error ends a stream. */
        STREAM_VECTOR(PART_OK "\0{\"error\":\"io.vmaq.NoSuchProcess\",\"parameters\":{\"pid\":1}}",
                      -ESRCH, "no such process: pid 1 (io.vmaq.NoSuchProcess)"),
        STREAM_VECTOR("{\"error\":\"io.vmaq.NoSuchProcess\",\"parameters\":{\"pid\":1},\"continues\":true}",
                      -EPROTO, "invalid reply: bad 'continues'"),
        /* The last part leaves addresses without results. */
        STREAM_VECTOR(PART_OK "\0{\"parameters\":{\"pid\":1,\"start_time\":1,\"modules\":[],"
                      "\"results\":[{\"unknown\":\"unmapped\"}]}}",
                      -EPROTO, "invalid Normalize reply: 2 results for 20000 addresses"),
};

START_TEST(test_bad_stream) {
        _cleanup_free_ char *reply = NULL;
        char msg[512];

        reply = malloc(bad_stream_vectors[_i].size);
        ck_assert_ptr_nonnull(reply);
        memcpy(reply, bad_stream_vectors[_i].reply, bad_stream_vectors[_i].size);
        ck_assert_int_eq(call_fake(true, reply, bad_stream_vectors[_i].size, 20000, msg, sizeof(msg)),
                         bad_stream_vectors[_i].error);
        ck_assert_str_eq(msg, bad_stream_vectors[_i].errmsg);
}
END_TEST

/* A reply that never ends is cut at 256 MiB. */
START_TEST(test_reply_too_large) {
        const size_t size = 257 * 1024 * 1024;
        _cleanup_free_ char *reply = NULL;
        char msg[512];

        reply = malloc(size);
        ck_assert_ptr_nonnull(reply);
        memset(reply, ' ', size);
        ck_assert_int_eq(call_fake(true, reply, size, 1, msg, sizeof(msg)), -EPROTO);
        ck_assert_str_eq(msg, "reply too large (over 268435456 bytes)");
}
END_TEST

START_TEST(test_free_null) {
        vmaq_close(NULL);
        vmaq_normalization_free(NULL);
        vmaq_mappings_free(NULL);
        vmaq_status_free(NULL);
        ck_assert_str_eq(vmaq_errmsg(NULL), "");
}
END_TEST

/* --- the runner ---------------------------------------------------------------------------- */

static void add_test(Suite *s, const char *name, const TTest *t, const char *tags) {
        TCase *tc = tcase_create(name);

        tcase_set_timeout(tc, TEST_TIMEOUT_SEC);
        if (tags)
                tcase_set_tags(tc, tags);
        tcase_add_test(tc, t);
        suite_add_tcase(s, tc);
}

static Suite *libvmaq_suite(void) {
        Suite *s = suite_create("libvmaq");
        TCase *tc;

        add_test(s, "normalize", test_normalize, "layout");
        add_test(s, "normalize-no-build-ids", test_normalize_no_build_ids, NULL);
        add_test(s, "normalize-pin", test_normalize_pin, NULL);
        add_test(s, "normalize-batch", test_normalize_batch, NULL);
        add_test(s, "normalize-fds", test_normalize_fds, NULL);
        add_test(s, "elf-accessors", test_elf_accessors, NULL);
        add_test(s, "track", test_track, NULL);
        add_test(s, "list-mappings", test_list_mappings, "layout");
        add_test(s, "list-mappings-flags", test_list_mappings_flags, NULL);
        add_test(s, "list-mappings-pinned", test_list_mappings_pinned, NULL);
        add_test(s, "list-mappings-parts", test_list_mappings_parts, NULL);
        add_test(s, "get-status", test_get_status, NULL);
        add_test(s, "error-no-such-process", test_error_no_such_process, NULL);
        add_test(s, "error-zombie", test_error_zombie, NULL);
        add_test(s, "error-permission-denied", test_error_permission_denied, NULL);
        add_test(s, "batches-over-the-limit", test_batches_over_the_limit, NULL);
        add_test(s, "error-message-too-large", test_error_message_too_large, NULL);
        add_test(s, "error-too-many-connections", test_error_too_many_connections, NULL);
        add_test(s, "error-invalid", test_error_invalid, NULL);
        add_test(s, "connect-errors", test_connect_errors, NULL);
        add_test(s, "connect-env", test_connect_env, NULL);
        add_test(s, "connect-denied", test_connect_denied, NULL);
        add_test(s, "connect-timeout", test_connect_timeout, NULL);
        add_test(s, "timeout-reply", test_timeout_reply, NULL);
        add_test(s, "timeout-send", test_timeout_send, NULL);
        add_test(s, "hangup-after-request", test_hangup_after_request, NULL);
        add_test(s, "hangup-before-request", test_hangup_before_request, NULL);
        add_test(s, "hangup-mid-reply", test_hangup_mid_reply, NULL);
        add_test(s, "daemon-stopped", test_daemon_stopped, NULL);
        add_test(s, "reply-too-large", test_reply_too_large, "slow");
        add_test(s, "free-null", test_free_null, NULL);

        tc = tcase_create("bad-reply");
        tcase_set_timeout(tc, TEST_TIMEOUT_SEC);
        tcase_add_loop_test(tc, test_bad_reply, 0, ELEMENTSOF(bad_reply_vectors));
        suite_add_tcase(s, tc);

        tc = tcase_create("bad-stream");
        tcase_set_timeout(tc, TEST_TIMEOUT_SEC);
        tcase_add_loop_test(tc, test_bad_stream, 0, ELEMENTSOF(bad_stream_vectors));
        suite_add_tcase(s, tc);

        return s;
}

int main(void) {
        int r;

        vmaqd_path = getenv("VMAQD");
        if (!vmaqd_path || vmaqd_path[0] != '/') {
                fprintf(stderr, "Set VMAQD to the absolute path of the vmaqd to test (make check does).\n");
                return EXIT_FAILURE;
        }
        if (access(vmaqd_path, X_OK) < 0) {
                fprintf(stderr, "VMAQD='%s' is not executable: %m\n", vmaqd_path);
                return EXIT_FAILURE;
        }

        strcpy(run_dir, "/tmp/vmaq-libtest-XXXXXX");
        if (!mkdtemp(run_dir) || chmod(run_dir, 0755) < 0) {
                fprintf(stderr, "Failed to create a temporary directory: %m\n");
                return EXIT_FAILURE;
        }

        daemon_setup(vmaqd_path, run_dir, NULL);
        r = check_run(libvmaq_suite());
        daemon_cleanup_run_dir();
        return r;
}
