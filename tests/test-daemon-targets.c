/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The daemon against targets that are hard on it, once per backend
 * (TEST_BACKEND): a process with more mappings than the default
 * vm.max_map_count allows, queried for as many addresses as one call takes
 * while another client is served; and a process that maps and unmaps
 * pages as fast as it can while it is queried.
 *
 * And every kind of client (root, a member of the privileged group, two
 * other users) against every kind of target: each other's processes, one
 * that is not dumpable, one whose real and effective uids differ, a
 * kernel thread, a zombie and a pid that is gone.
 *
 * The first two map one file page by page, each page at its own file offset, so
 * every answer can be checked: the address base + i * page + k is the
 * file at offset i * page + k, or nothing.
 */

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check-run.h"
#include "macro.h"
#include "test-daemon-util.h"
#include "vma.h"

#define TEST_TIMEOUT_SEC 600

/* More mappings than the default vm.max_map_count (65530); as many addresses as a call may hold. */
#define HUGE_MAPPINGS 100000U
#define HUGE_MAP_COUNT 200000U
#define MAX_MAP_COUNT "/proc/sys/vm/max_map_count"

/* The churning region, and how often it is queried. */
#define CHURN_PAGES 64U
#define CHURN_ROUNDS 200U

/* One call for HUGE_MAPPINGS addresses; bounds the wait, not a timing assertion. */
#define HUGE_REPLY_TIMEOUT_MS 120000

static char run_dir[64];
static char file_path[PATH_MAX];

static size_t page_size(void) {
        return (size_t) sysconf(_SC_PAGESIZE);
}

static int read_max_map_count(unsigned long *ret) {
        FILE *f = fopen(MAX_MAP_COUNT, "re");
        int r;

        if (!f)
                return -errno;
        r = fscanf(f, "%lu", ret) == 1 ? 0 : -EIO;
        fclose(f);
        return r;
}

static int write_max_map_count(unsigned long v) {
        FILE *f = fopen(MAX_MAP_COUNT, "we");
        bool ok;

        if (!f)
                return -errno;
        ok = fprintf(f, "%lu\n", v) > 0;
        return fclose(f) == 0 && ok ? 0 : -EIO;
}

/* A sparse file of @pages pages, in run_dir: mapping it reads nothing. */
static void make_file(size_t pages) {
        _cleanup_close_ int fd = -EBADF;

        snprintf(file_path, sizeof(file_path), "%s/target-file", run_dir);
        fd = open(file_path, O_RDWR|O_CREAT|O_TRUNC|O_CLOEXEC, 0644);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(ftruncate(fd, (off_t) (pages * page_size())), 0);
}

/*
 * A child that maps @pages pages of the file at one address, then gives
 * every other page other permissions: @pages mappings, page i at file
 * offset i * page. It writes the address to *ret_ctl's peer, then waits
 * until *ret_ctl is closed.
 */
static pid_t spawn_split_mapping(size_t pages, int *ret_ctl, uintptr_t *ret_base) {
        int ctl[2], ready[2];
        uintptr_t base;
        pid_t pid;

        ck_assert_int_eq(pipe2(ctl, O_CLOEXEC), 0);
        ck_assert_int_eq(pipe2(ready, O_CLOEXEC), 0);
        pid = fork_child();
        if (pid == 0) {
                int fd = open(file_path, O_RDONLY|O_CLOEXEC);
                uint8_t *p;
                char b;

                close(ctl[1]);
                close(ready[0]);
                CHILD_CHECK(fd >= 0);
                p = mmap(NULL, pages * page_size(), PROT_READ, MAP_PRIVATE, fd, 0);
                CHILD_CHECK(p != MAP_FAILED);
                for (size_t i = 1; i < pages; i += 2)
                        CHILD_CHECK(mprotect(p + i * page_size(), page_size(), PROT_READ|PROT_WRITE) == 0);
                base = (uintptr_t) p;
                CHILD_CHECK(write(ready[1], &base, sizeof(base)) == (ssize_t) sizeof(base));
                close(ready[1]);
                while (read(ctl[0], &b, 1) > 0)
                        ;
                _exit(EXIT_SUCCESS);
        }
        close(ctl[0]);
        close(ready[1]);
        ck_assert_int_eq(read(ready[0], &base, sizeof(base)), (ssize_t) sizeof(base));
        close(ready[0]);
        *ret_ctl = ctl[1];
        *ret_base = base;
        return pid;
}

/* The module of result @r of Normalize reply parameters @p must be the file; its offset. */
static uint64_t file_offset(struct json_object *p, struct json_object *r) {
        struct json_object *m;

        m = json_object_array_get_idx(json_get_array(p, "modules"), json_get_u64(r, "module"));
        ck_assert_ptr_nonnull(m);
        ck_assert_str_eq(json_get_string(m, "path"), file_path);
        return json_get_u64(r, "offset");
}

START_TEST(test_huge_map) {
        _cleanup_(client_freep) Client *big = NULL, *other = NULL;
        _cleanup_(json_object_putp) struct json_object *reply = NULL, *info = NULL;
        _cleanup_free_ uint64_t *addrs = NULL;
        _cleanup_free_ char *msg = NULL, *text = NULL;
        unsigned long count;
        struct json_object *p, *results;
        uintptr_t base;
        Daemon *d;
        pid_t pid;
        int ctl;

        ck_assert_int_eq(read_max_map_count(&count), 0);
        if (count < HUGE_MAP_COUNT)
                /* Set back by main(), whatever happens here. */
                ck_assert_int_eq(write_max_map_count(HUGE_MAP_COUNT), 0);

        make_file(HUGE_MAPPINGS);
        pid = spawn_split_mapping(HUGE_MAPPINGS, &ctl, &base);

        addrs = calloc(HUGE_MAPPINGS, sizeof(*addrs));
        ck_assert_ptr_nonnull(addrs);
        for (size_t i = 0; i < HUGE_MAPPINGS; i++)
                addrs[i] = base + i * page_size() + (i * 8) % page_size();
        msg = normalize_call(pid, addrs, HUGE_MAPPINGS, NULL);

        d = daemon_start(NULL);
        big = client_connect(d);
        other = client_connect(d);

        /* While the call for every mapping runs, another client is answered. */
        ck_assert_int_eq(client_send(big, msg), 0);
        info = client_call(other, "{\"method\":\"org.varlink.service.GetInfo\"}");
        (void) reply_parameters(info);

        ck_assert_int_eq(client_read(big, HUGE_REPLY_TIMEOUT_MS, &text), 1);
        reply = json_tokener_parse(text);
        ck_assert_ptr_nonnull(reply);
        p = reply_parameters(reply);
        ck_assert_uint_eq(json_get_u64(p, "pid"), (uint64_t) pid);
        results = json_get_array(p, "results");
        ck_assert_uint_eq(json_object_array_length(results), HUGE_MAPPINGS);
        for (size_t i = 0; i < HUGE_MAPPINGS; i++) {
                struct json_object *r = json_object_array_get_idx(results, i);

                ck_assert_msg(!json_has(r, "unknown"), "address %zu of %u not normalized", i, HUGE_MAPPINGS);
                ck_assert_uint_eq(file_offset(p, r), i * page_size() + (i * 8) % page_size());
        }
        /* One file, one module. */
        ck_assert_uint_eq(json_object_array_length(json_get_array(p, "modules")), 1);

        close(ctl);
        assert_child_ok(pid, DAEMON_TIMEOUT_MS);
        daemon_stop(d);
        ck_assert_int_eq(write_max_map_count(count), 0);
}
END_TEST

/*
 * A child that maps and unmaps the pages of a region at random, without
 * pause, until *ret_ctl is closed: page j of the region, when mapped, is
 * always page j of the file. The region's address goes to *ret_base.
 */
static pid_t spawn_churn(int *ret_ctl, uintptr_t *ret_base) {
        int ctl[2], ready[2];
        uintptr_t base;
        pid_t pid;

        ck_assert_int_eq(pipe2(ctl, O_CLOEXEC), 0);
        ck_assert_int_eq(pipe2(ready, O_CLOEXEC), 0);
        pid = fork_child();
        if (pid == 0) {
                int fd = open(file_path, O_RDONLY|O_CLOEXEC);
                unsigned seed = (unsigned) getpid();
                uint8_t *p;

                close(ctl[1]);
                close(ready[0]);
                CHILD_CHECK(fd >= 0);
                CHILD_CHECK(fcntl(ctl[0], F_SETFL, O_NONBLOCK) == 0);
                p = mmap(NULL, CHURN_PAGES * page_size(), PROT_READ, MAP_PRIVATE, fd, 0);
                CHILD_CHECK(p != MAP_FAILED);
                base = (uintptr_t) p;
                CHILD_CHECK(write(ready[1], &base, sizeof(base)) == (ssize_t) sizeof(base));
                close(ready[1]);

                for (unsigned n = 0;; n++) {
                        size_t j = (size_t) rand_r(&seed) % CHURN_PAGES;
                        uint8_t *at = p + j * page_size();
                        char b;

                        if (rand_r(&seed) % 2)
                                CHILD_CHECK(munmap(at, page_size()) == 0);
                        else
                                CHILD_CHECK(mmap(at, page_size(), rand_r(&seed) % 2 ? PROT_READ : PROT_NONE,
                                                 MAP_PRIVATE|MAP_FIXED, fd, (off_t) (j * page_size())) == at);
                        if (n % 256 == 0 && read(ctl[0], &b, 1) == 0)
                                _exit(EXIT_SUCCESS);
                }
        }
        close(ctl[0]);
        close(ready[1]);
        ck_assert_int_eq(read(ready[0], &base, sizeof(base)), (ssize_t) sizeof(base));
        close(ready[0]);
        *ret_ctl = ctl[1];
        *ret_base = base;
        return pid;
}

START_TEST(test_churn) {
        _cleanup_(client_freep) Client *c = NULL;
        _cleanup_free_ char *msg = NULL;
        uint64_t addrs[CHURN_PAGES];
        unsigned mapped = 0, unmapped = 0;
        uintptr_t base;
        Daemon *d;
        pid_t pid;
        int ctl;

        make_file(CHURN_PAGES);
        pid = spawn_churn(&ctl, &base);
        for (size_t j = 0; j < CHURN_PAGES; j++)
                addrs[j] = base + j * page_size() + j;
        msg = normalize_call(pid, addrs, CHURN_PAGES, NULL);

        d = daemon_start(NULL);
        c = client_connect(d);
        for (unsigned round = 0; round < CHURN_ROUNDS; round++) {
                _cleanup_(json_object_putp) struct json_object *reply = client_call(c, "%s", msg);
                struct json_object *p = reply_parameters(reply), *results = json_get_array(p, "results");

                ck_assert_uint_eq(json_object_array_length(results), CHURN_PAGES);
                for (size_t j = 0; j < CHURN_PAGES; j++) {
                        struct json_object *r = json_object_array_get_idx(results, j);

                        /* Whatever the moment: the right page of the file, or nothing there. */
                        if (json_has(r, "unknown")) {
                                ck_assert_str_eq(json_get_string(r, "unknown"), "unmapped");
                                unmapped++;
                        } else {
                                ck_assert_uint_eq(file_offset(p, r), j * page_size() + j);
                                mapped++;
                        }
                }
        }
        /* Both answers were seen: the map did change under the queries. */
        ck_assert_uint_gt(mapped, 0);
        ck_assert_uint_gt(unmapped, 0);

        close(ctl);
        assert_child_ok(pid, DAEMON_TIMEOUT_MS);
        daemon_stop(d);
}
END_TEST

/* --- who may ask about whom ------------------------------------------------ */

/* The users of the matrix: the privileged one is in MATRIX_GROUP, which the daemon is given. */
#define MATRIX_GROUP "users"
#define UID_PRIV 61100U
#define UID_A 61101U
#define UID_B 61102U

typedef enum Expect {
        ALLOW,          /* the map: the test executable at the marker's address */
        DENY,           /* PermissionDenied with the pid, nothing else */
        NO_MM,          /* NoAddressSpace: allowed, but nothing is mapped */
        GONE,           /* NoSuchProcess */
} Expect;

enum { T_ROOT, T_A, T_B, T_A_UNDUMPABLE, T_MIXED, T_KTHREADD, T_ZOMBIE_A, T_VANISHED, _T_MAX };
enum { C_ROOT, C_PRIV, C_A, C_B, _C_MAX };

static const char *const target_names[_T_MAX] = {
        "root's process", "A's process", "B's process", "A's undumpable process",
        "a process of real uid A, effective B", "kthreadd", "A's zombie", "a vanished pid",
};
static const char *const client_names[_C_MAX] = { "root", "privileged", "A", "B" };

static const Expect matrix[_C_MAX][_T_MAX] = {
        [C_ROOT] = { ALLOW, ALLOW, ALLOW, ALLOW, ALLOW, NO_MM, NO_MM, GONE },
        [C_PRIV] = { ALLOW, ALLOW, ALLOW, ALLOW, ALLOW, NO_MM, NO_MM, GONE },
        [C_A]    = { DENY,  ALLOW, DENY,  DENY,  DENY,  DENY,  NO_MM, GONE },
        [C_B]    = { DENY,  DENY,  ALLOW, DENY,  DENY,  DENY,  DENY,  GONE },
};

static void marker(void) {
}

/* A target with these ids, dumpable or not, that waits until *ret_ctl closes. */
static pid_t spawn_target(uid_t ruid, uid_t euid, bool dumpable, int *ret_ctl) {
        int ctl[2], ready[2];
        pid_t pid;
        char b;

        ck_assert_int_eq(pipe2(ctl, O_CLOEXEC), 0);
        ck_assert_int_eq(pipe2(ready, O_CLOEXEC), 0);
        pid = fork_child();
        if (pid == 0) {
                close(ctl[1]);
                close(ready[0]);
                CHILD_CHECK(setgroups(0, NULL) == 0);
                CHILD_CHECK(setresgid(ruid, ruid, ruid) == 0);
                CHILD_CHECK(setresuid(ruid, euid, ruid) == 0);
                CHILD_CHECK(prctl(PR_SET_DUMPABLE, dumpable) == 0);
                close(ready[1]);
                while (read(ctl[0], &b, 1) > 0)
                        ;
                _exit(EXIT_SUCCESS);
        }
        close(ctl[0]);
        close(ready[1]);
        ck_assert_int_eq(read(ready[0], &b, 1), 0);
        close(ready[0]);
        *ret_ctl = ctl[1];
        return pid;
}

static bool answer_is(struct json_object *r, const char *error, pid_t pid) {
        struct json_object *p, *v;

        /* The error names the pid, and nothing else: a refusal tells nothing about the target. */
        return r && error_name(r) && streq(error_name(r), error) &&
               json_object_object_get_ex(r, "parameters", &p) && json_object_object_length(p) == 1 &&
               json_object_object_get_ex(p, "pid", &v) && json_object_get_int64(v) == pid;
}

/* In a forked client: ask about every target twice, and each answer must be the matrix's. */
static void ask_all(const Daemon *d, unsigned client, const pid_t *targets, const char *exe) {
        Client *c = NULL;

        CHILD_CHECK(client_open(d->socket_path, 0, &c) == 0);
        for (unsigned t = 0; t < _T_MAX; t++)
                for (unsigned k = 0; k < 2; k++) {
                        _cleanup_free_ char *msg = normalize_one(targets[t], (uintptr_t) marker);
                        struct json_object *r = client_call_raw(c, msg, REPLY_TIMEOUT_MS);
                        const char *path;
                        bool ok = false;

                        switch (matrix[client][t]) {
                        case ALLOW:
                                path = single_module_path(r);
                                ok = path && streq(path, exe);
                                break;
                        case DENY:
                                ok = answer_is(r, "io.vmaq.PermissionDenied", targets[t]);
                                break;
                        case NO_MM:
                                ok = answer_is(r, "io.vmaq.NoAddressSpace", targets[t]);
                                break;
                        case GONE:
                                ok = answer_is(r, "io.vmaq.NoSuchProcess", targets[t]);
                                break;
                        }
                        if (!ok) {
                                fprintf(stderr, "%s asking about %s (pid %d): %s\n",
                                        client_names[client], target_names[t], (int) targets[t],
                                        r ? json_object_to_json_string(r) : "no reply");
                                _exit(EXIT_FAILURE);
                        }
                        json_object_put(r);
                }
        client_free(c);
}

START_TEST(test_permission_matrix) {
        static const gid_t priv_groups[] = { 100 };
        Daemon *d = daemon_start(ARGS("--group", MATRIX_GROUP));
        int ctl[_T_MAX] = { -EBADF, -EBADF, -EBADF, -EBADF, -EBADF, -EBADF, -EBADF, -EBADF };
        pid_t targets[_T_MAX], clients[_C_MAX];
        char exe[PATH_MAX];
        ssize_t n;
        siginfo_t si = {};
        struct group *g;

        g = getgrnam(MATRIX_GROUP);
        ck_assert_ptr_nonnull(g);
        ck_assert_uint_eq(g->gr_gid, priv_groups[0]);
        n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
        ck_assert_int_gt(n, 0);
        exe[n] = '\0';

        targets[T_ROOT] = spawn_target(0, 0, true, &ctl[T_ROOT]);
        targets[T_A] = spawn_target(UID_A, UID_A, true, &ctl[T_A]);
        targets[T_B] = spawn_target(UID_B, UID_B, true, &ctl[T_B]);
        targets[T_A_UNDUMPABLE] = spawn_target(UID_A, UID_A, false, &ctl[T_A_UNDUMPABLE]);
        targets[T_MIXED] = spawn_target(UID_A, UID_B, true, &ctl[T_MIXED]);
        targets[T_KTHREADD] = 2;
        targets[T_ZOMBIE_A] = spawn_target(UID_A, UID_A, true, &ctl[T_ZOMBIE_A]);
        close(TAKE_FD(ctl[T_ZOMBIE_A]));
        ck_assert_int_eq(waitid(P_PID, targets[T_ZOMBIE_A], &si, WEXITED|WNOWAIT), 0);
        targets[T_VANISHED] = spawn_target(UID_A, UID_A, true, &ctl[T_VANISHED]);
        close(TAKE_FD(ctl[T_VANISHED]));
        assert_child_ok(targets[T_VANISHED], DAEMON_TIMEOUT_MS);

        for (unsigned c = 0; c < _C_MAX; c++) {
                clients[c] = fork_child();
                if (clients[c] == 0) {
                        if (c == C_PRIV)
                                drop_to_groups(UID_PRIV, UID_PRIV, priv_groups, ELEMENTSOF(priv_groups));
                        else if (c == C_A)
                                drop_to(UID_A);
                        else if (c == C_B)
                                drop_to(UID_B);
                        ask_all(d, c, targets, exe);
                        _exit(EXIT_SUCCESS);
                }
        }
        for (unsigned c = 0; c < _C_MAX; c++)
                assert_child_ok(clients[c], HUGE_REPLY_TIMEOUT_MS);

        /* The last one first: each target holds the ends of those before it. */
        for (unsigned t = _T_MAX; t-- > 0;)
                if (ctl[t] >= 0) {
                        close(ctl[t]);
                        assert_child_ok(targets[t], DAEMON_TIMEOUT_MS);
                }
        assert_child_ok(targets[T_ZOMBIE_A], DAEMON_TIMEOUT_MS);
        daemon_stop(d);
}
END_TEST

int main(void) {
        const char *vmaqd_path = getenv("VMAQD");
        unsigned long count = 0;
        bool huge;
        Suite *s;
        TCase *tc;
        int r;

        if (!vmaqd_path || vmaqd_path[0] != '/') {
                fprintf(stderr, "Set VMAQD to the absolute path of the vmaqd to test (make check does).\n");
                return EXIT_FAILURE;
        }
        r = vma_backend_probe();
        if (r < 0) {
                fprintf(stderr, "Cannot probe for PROCMAP_QUERY: %s\n", strerror(-r));
                return EXIT_FAILURE;
        }
        if (r == 0 && streq(TEST_BACKEND, "ioctl")) {
                fprintf(stderr, "SKIP: this kernel lacks the PROCMAP_QUERY ioctl (Linux >= 6.11)\n");
                return 77;
        }
        if (read_max_map_count(&count) < 0) {
                fprintf(stderr, "Cannot read " MAX_MAP_COUNT ": %m\n");
                return EXIT_FAILURE;
        }

        strcpy(run_dir, "/tmp/vmaqd-test-XXXXXX");
        if (!mkdtemp(run_dir) || chmod(run_dir, 0755) < 0) {
                fprintf(stderr, "Failed to create a temporary directory: %m\n");
                return EXIT_FAILURE;
        }
        daemon_setup(vmaqd_path, run_dir, ARGS("--backend", TEST_BACKEND));

        s = suite_create("daemon-targets-" TEST_BACKEND);
        tc = tcase_create("churn");
        tcase_set_timeout(tc, TEST_TIMEOUT_SEC);
        tcase_add_test(tc, test_churn);
        suite_add_tcase(s, tc);

        huge = count >= HUGE_MAP_COUNT || geteuid() == 0;
        if (huge) {
                tc = tcase_create("huge-map");
                tcase_set_timeout(tc, TEST_TIMEOUT_SEC);
                tcase_add_test(tc, test_huge_map);
                suite_add_tcase(s, tc);
        } else
                printf("SKIP: huge-map: needs root to raise vm.max_map_count to %u\n", HUGE_MAP_COUNT);

        if (geteuid() == 0) {
                tc = tcase_create("permission-matrix");
                tcase_set_timeout(tc, TEST_TIMEOUT_SEC);
                tcase_add_test(tc, test_permission_matrix);
                suite_add_tcase(s, tc);
        } else
                printf("SKIP: permission-matrix: needs root to become other users\n");

        r = check_run(s);
        /* The test raised it in a child of ours: set it back even if that child died. */
        if (huge && count < HUGE_MAP_COUNT && write_max_map_count(count) < 0) {
                fprintf(stderr, "Failed to restore " MAX_MAP_COUNT " to %lu\n", count);
                r = EXIT_FAILURE;
        }
        daemon_cleanup_run_dir();
        return r;
}
