/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check-run.h"
#include "macro.h"
#include "policy.h"

#define NOBODY 65534
#define OTHER 1000

START_TEST(test_is_privileged) {
        static const gid_t groups[] = { 10, 20, 30 };

        ck_assert(policy_is_privileged(0, 0, NULL, 0, (gid_t) -1));
        ck_assert(!policy_is_privileged(1000, 1000, groups, 3, (gid_t) -1));
        ck_assert(policy_is_privileged(1000, 1000, groups, 3, 20));
        ck_assert(policy_is_privileged(1000, 20, NULL, 0, 20));
        ck_assert(!policy_is_privileged(1000, 1000, groups, 3, 40));
        ck_assert(!policy_is_privileged(1000, 1000, groups, 2, 30));
}
END_TEST

typedef enum TargetNs {
        TARGET_OUR_NS,
        TARGET_NS_OF_ROOT,      /* a user namespace root made, identity-mapped */
        TARGET_NS_OF_ITS_OWN,   /* one it made itself, after dropping to its uids */
} TargetNs;

typedef struct Target {
        uid_t uid[3];           /* real, effective, saved */
        gid_t gid[3];
        int dumpable;
        bool keep_caps;         /* keep permitted capabilities across the uid change */
        TargetNs ns;
} Target;

static int write_file(const char *path, const char *text) {
        _cleanup_close_ int fd = open(path, O_WRONLY|O_CLOEXEC);

        if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t) strlen(text))
                return -1;
        return 0;
}

/* In the child: a user namespace of root's, whose identity maps the parent writes (only it may). */
static int enter_root_ns(int ready_fd, int mapped_fd) {
        char b = 0;

        if (unshare(CLONE_NEWUSER) < 0 || write(ready_fd, &b, 1) != 1 || read(mapped_fd, &b, 1) != 1)
                return -1;
        return 0;
}

static void map_root_ns(pid_t pid, int ready_fd, int mapped_fd) {
        char path[64], b;

        ck_assert_int_eq(read(ready_fd, &b, 1), 1);
        snprintf(path, sizeof(path), "/proc/%d/uid_map", (int) pid);
        ck_assert_int_eq(write_file(path, "0 0 4294967295"), 0);
        snprintf(path, sizeof(path), "/proc/%d/gid_map", (int) pid);
        ck_assert_int_eq(write_file(path, "0 0 4294967295"), 0);
        ck_assert_int_eq(write(mapped_fd, &b, 1), 1);
}

static int become_target(const Target *t) {
        if (t->keep_caps && prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
                return -1;
        if (setgroups(0, NULL) < 0 ||
            setresgid(t->gid[0], t->gid[1], t->gid[2]) < 0 ||
            setresuid(t->uid[0], t->uid[1], t->uid[2]) < 0)
                return -1;
        if (t->ns == TARGET_NS_OF_ITS_OWN && unshare(CLONE_NEWUSER) < 0)
                return -1;
        return prctl(PR_SET_DUMPABLE, t->dumpable, 0, 0, 0);
}

/* A child set up as @t; it waits until the pipe closes. Returns its /proc directory. */
static int spawn_target(const Target *t, pid_t *ret_pid, int *ret_ctl) {
        int ready[2], ctl[2], dir_fd;
        siginfo_t si = {};
        char path[64], b;
        pid_t pid;

        ck_assert_int_eq(pipe2(ready, O_CLOEXEC), 0);
        ck_assert_int_eq(pipe2(ctl, O_CLOEXEC), 0);
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                close(ready[0]);
                close(ctl[1]);
                if ((t->ns == TARGET_NS_OF_ROOT && enter_root_ns(ready[1], ctl[0]) < 0) || become_target(t) < 0)
                        _exit(EXIT_FAILURE);
                close(ready[1]);
                (void) read(ctl[0], &b, 1);
                _exit(EXIT_SUCCESS);
        }
        close(ready[1]);
        close(ctl[0]);
        if (t->ns == TARGET_NS_OF_ROOT)
                map_root_ns(pid, ready[0], ctl[1]);
        ck_assert_int_eq(read(ready[0], &b, 1), 0);     /* closed once set up */
        /* Still there: it did not fail to set itself up. */
        ck_assert_int_eq(waitid(P_PID, pid, &si, WEXITED|WNOHANG|WNOWAIT), 0);
        ck_assert_int_eq(si.si_pid, 0);
        close(ready[0]);

        snprintf(path, sizeof(path), "/proc/%d", (int) pid);
        dir_fd = open(path, O_PATH|O_DIRECTORY|O_CLOEXEC);
        ck_assert_int_ge(dir_fd, 0);
        *ret_pid = pid;
        *ret_ctl = ctl[1];
        return dir_fd;
}

static void stop_child(pid_t pid, int ctl) {
        int status;

        close(ctl);
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child %d failed", (int) pid);
}

/*
 * A client with @uid and @gid and no capabilities, in a user namespace of
 * its own if @own_ns. It waits for a pid on its pipe, tries to open that
 * process's maps file as the kernel lets it, and writes back the errno (0
 * for success).
 */
typedef struct Client {
        pid_t pid;
        int to, from;
        PolicyClient policy;
} Client;

static void spawn_client(uid_t uid, gid_t gid, bool own_ns, Client *ret) {
        int to[2], from[2];
        pid_t pid;

        ck_assert_int_eq(pipe2(to, O_CLOEXEC), 0);
        ck_assert_int_eq(pipe2(from, O_CLOEXEC), 0);
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                char path[64];
                pid_t target;
                int e;

                close(to[1]);
                close(from[0]);
                if (setgroups(0, NULL) < 0 || setresgid(gid, gid, gid) < 0 || setresuid(uid, uid, uid) < 0 ||
                    (own_ns && unshare(CLONE_NEWUSER) < 0))
                        _exit(EXIT_FAILURE);
                e = 0;
                if (write(from[1], &e, sizeof(e)) != sizeof(e))
                        _exit(EXIT_FAILURE);
                while (read(to[0], &target, sizeof(target)) == sizeof(target)) {
                        int fd;

                        snprintf(path, sizeof(path), "/proc/%d/maps", (int) target);
                        fd = open(path, O_RDONLY|O_CLOEXEC);
                        e = fd >= 0 ? 0 : errno;
                        if (fd >= 0)
                                close(fd);
                        if (write(from[1], &e, sizeof(e)) != sizeof(e))
                                _exit(EXIT_FAILURE);
                }
                _exit(EXIT_SUCCESS);
        }
        close(to[0]);
        close(from[1]);

        int e = -1;
        ck_assert_int_eq(read(from[0], &e, sizeof(e)), sizeof(e));      /* set up */
        ck_assert_int_eq(e, 0);

        *ret = (Client) {
                .pid = pid,
                .to = to[1],
                .from = from[0],
                .policy = { .uid = uid, .gid = gid },
        };
        ck_assert_int_eq(policy_namespace(pid, "user", &ret->policy.userns), 0);
}

/* What the kernel answers @c about @target: 0 or an errno. */
static int client_kernel_verdict(Client *c, pid_t target) {
        int e = -1;

        ck_assert_int_eq(write(c->to, &target, sizeof(target)), sizeof(target));
        ck_assert_int_eq(read(c->from, &e, sizeof(e)), sizeof(e));
        return e;
}

static void stop_client(Client *c) {
        close(c->from);
        stop_child(c->pid, c->to);
}

/*
 * Every cell of the matrix: what the policy says must be what the kernel
 * says to the client itself, and the expected verdict.
 */
START_TEST(test_check_target) {
        static const struct {
                const char *name;
                Target target;
                bool client_own_ns;
                int expect;
        } cases[] = {
                { "own process",                { { NOBODY, NOBODY, NOBODY }, { NOBODY, NOBODY, NOBODY }, 1 }, false, 0 },
                { "another user's",             { { OTHER, OTHER, OTHER }, { NOBODY, NOBODY, NOBODY }, 1 }, false, -EACCES },
                { "not dumpable",               { { NOBODY, NOBODY, NOBODY }, { NOBODY, NOBODY, NOBODY }, 0 }, false, -EACCES },
                { "saved uid root",             { { NOBODY, NOBODY, 0 }, { NOBODY, NOBODY, NOBODY }, 1 }, false, -EACCES },
                { "real uid root",              { { 0, NOBODY, NOBODY }, { NOBODY, NOBODY, NOBODY }, 1 }, false, -EACCES },
                { "other real/saved gid",       { { NOBODY, NOBODY, NOBODY }, { OTHER, NOBODY, OTHER }, 1 }, false, -EACCES },
                { "other effective gid",        { { NOBODY, NOBODY, NOBODY }, { NOBODY, OTHER, NOBODY }, 1 }, false, -EACCES },
                { "capabilities kept",          { { NOBODY, NOBODY, NOBODY }, { NOBODY, NOBODY, NOBODY }, 1, true }, false, -EACCES },
                { "user namespace of root",     { { NOBODY, NOBODY, NOBODY }, { NOBODY, NOBODY, NOBODY }, 1, false, TARGET_NS_OF_ROOT }, false, -EACCES },
                { "user namespace of its own",  { { NOBODY, NOBODY, NOBODY }, { NOBODY, NOBODY, NOBODY }, 1, false, TARGET_NS_OF_ITS_OWN }, false, 0 },
                { "not dumpable, in a namespace of its own", { { NOBODY, NOBODY, NOBODY }, { NOBODY, NOBODY, NOBODY }, 0, false, TARGET_NS_OF_ITS_OWN }, false, -EACCES },
                { "client in its own namespace", { { NOBODY, NOBODY, NOBODY }, { NOBODY, NOBODY, NOBODY }, 1 }, true, -EACCES },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_close_ int dir_fd = -EBADF;
                PolicyTarget target;
                Client client;
                pid_t pid;
                int ctl, kernel;

                dir_fd = spawn_target(&cases[i].target, &pid, &ctl);
                spawn_client(NOBODY, NOBODY, cases[i].client_own_ns, &client);

                kernel = client_kernel_verdict(&client, pid);
                ck_assert_msg(policy_check_target(dir_fd, &client.policy) == cases[i].expect,
                              "%s: policy says %d", cases[i].name, policy_check_target(dir_fd, &client.policy));
                ck_assert_msg(-kernel == cases[i].expect, "%s: the kernel says %d", cases[i].name, kernel);
                ck_assert_int_eq(policy_read_target(dir_fd, &target), 0);

                stop_client(&client);
                stop_child(pid, ctl);

                /* Gone: the pinned directory says so. */
                ck_assert_int_eq(policy_check_target(dir_fd, &client.policy), -ESRCH);
                ck_assert_int_eq(policy_read_target(dir_fd, &target), -ESRCH);
                /* What was read while it lived judges the same after it is gone. */
                ck_assert_msg(policy_check_client(&target, &client.policy) == cases[i].expect,
                              "%s: policy on what was read says %d", cases[i].name,
                              policy_check_client(&target, &client.policy));
        }
}
END_TEST

/* A zombie of another user is refused like the live process, not reported as a zombie. */
START_TEST(test_check_zombie) {
        _cleanup_close_ int dir_fd = -EBADF;
        Target t = { { OTHER, OTHER, OTHER }, { OTHER, OTHER, OTHER }, 1 };
        PolicyClient c = { .uid = NOBODY, .gid = NOBODY };
        siginfo_t si = {};
        pid_t pid;
        int ctl;

        ck_assert_int_eq(policy_namespace(0, "user", &c.userns), 0);
        dir_fd = spawn_target(&t, &pid, &ctl);
        close(ctl);
        ck_assert_int_eq(waitid(P_PID, pid, &si, WEXITED|WNOWAIT), 0);
        ck_assert_int_eq(policy_check_target(dir_fd, &c), -EACCES);
        c.uid = c.gid = OTHER;
        ck_assert_int_eq(policy_check_target(dir_fd, &c), 0);
        ck_assert_int_eq(waitpid(pid, NULL, 0), pid);
}
END_TEST

START_TEST(test_namespace) {
        NsId a = {}, b = {};

        ck_assert_int_eq(policy_namespace(0, "pid", &a), 0);
        ck_assert_int_eq(policy_namespace(getpid(), "pid", &b), 0);
        ck_assert_uint_ne(a.ino, 0);
        ck_assert(ns_id_equal(&a, &b));
        ck_assert_int_eq(policy_namespace(getppid(), "pid", &b), 0);
        ck_assert(ns_id_equal(&a, &b));
        ck_assert_int_eq(policy_namespace(0, "user", &b), 0);
        ck_assert(!ns_id_equal(&a, &b));
        ck_assert_int_eq(policy_namespace(INT32_MAX, "pid", &b), -ESRCH);
}
END_TEST

START_TEST(test_peer_namespaces) {
        NsId pidns = {}, userns = {}, ours = {};
        struct ucred cred;
        socklen_t len = sizeof(cred);
        int fds[2];

        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM|SOCK_CLOEXEC, 0, fds), 0);
        ck_assert_int_eq(getsockopt(fds[0], SOL_SOCKET, SO_PEERCRED, &cred, &len), 0);
        ck_assert_int_eq(policy_peer_namespaces(fds[0], cred.pid, &pidns, &userns), 0);
        ck_assert_int_eq(policy_namespace(0, "pid", &ours), 0);
        ck_assert(ns_id_equal(&pidns, &ours));
        ck_assert_int_eq(policy_namespace(0, "user", &ours), 0);
        ck_assert(ns_id_equal(&userns, &ours));
        ck_assert_int_eq(policy_peer_namespaces(fds[0], 0, &pidns, &userns), -ESRCH);
        close(fds[0]);
        close(fds[1]);
}
END_TEST

/* A listening socket "s" in the new directory @dir (a mkdtemp() template). */
static int listen_tmp(char *dir, struct sockaddr_un *sa) {
        int fd;

        ck_assert_ptr_nonnull(mkdtemp(dir));
        snprintf(sa->sun_path, sizeof(sa->sun_path), "%s/s", dir);
        fd = socket(AF_UNIX, SOCK_STREAM|SOCK_CLOEXEC, 0);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(bind(fd, (struct sockaddr *) sa, sizeof(*sa)), 0);
        ck_assert_int_eq(listen(fd, 4), 0);
        return fd;
}

/*
 * A child that connects to @sa from a pid namespace of its own, then
 * waits for @wait_fd (the read end of a pipe; -EBADF: not) to close, and
 * exits 0. Its parent, in ours, is returned: it exits with its status.
 */
static pid_t spawn_peer_in_pidns(const struct sockaddr_un *sa, int wait_fd, int close_fd) {
        pid_t outer;

        outer = fork();
        ck_assert_int_ge(outer, 0);
        if (outer == 0) {
                pid_t inner;
                int status;

                safe_close(close_fd);
                if (unshare(CLONE_NEWPID) < 0)
                        _exit(EXIT_FAILURE);
                inner = fork();
                if (inner < 0)
                        _exit(EXIT_FAILURE);
                if (inner == 0) {
                        int c = socket(AF_UNIX, SOCK_STREAM|SOCK_CLOEXEC, 0);
                        char b;

                        if (c < 0 || connect(c, (const struct sockaddr *) sa, sizeof(*sa)) < 0)
                                _exit(EXIT_FAILURE);
                        if (wait_fd >= 0)
                                (void) read(wait_fd, &b, 1);
                        _exit(EXIT_SUCCESS);
                }
                _exit(waitpid(inner, &status, 0) == inner && WIFEXITED(status) && WEXITSTATUS(status) == 0 ?
                      0 : 1);
        }
        return outer;
}

/* A live peer's pid namespace and its depth: ours for a socketpair, one below for a peer in a child. */
START_TEST(test_peer_pidns) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_close_ int listen_fd = -EBADF, fd = -EBADF;
        char dir[] = "/tmp/test-policy-XXXXXX", path[64];
        NsId ns = {}, ours = {};
        socklen_t len = sizeof(struct ucred);
        struct ucred cred;
        unsigned level = 99, our_level;
        struct stat st;
        int fds[2], ctl[2], status;
        pid_t outer;

        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM|SOCK_CLOEXEC, 0, fds), 0);
        ck_assert_int_eq(getsockopt(fds[0], SOL_SOCKET, SO_PEERCRED, &cred, &len), 0);
        ck_assert_int_eq(policy_peer_pidns(fds[0], cred.pid, &ns, &our_level), 0);
        ck_assert_int_eq(policy_namespace(0, "pid", &ours), 0);
        ck_assert(ns_id_equal(&ns, &ours));
        ck_assert_int_eq(policy_peer_pidns(fds[0], 0, &ns, &level), -ESRCH);
        ck_assert_int_eq(policy_peer_pidns(fds[0], cred.pid + 1, &ns, &level), -ESRCH);
        close(fds[0]);
        close(fds[1]);

        listen_fd = listen_tmp(dir, &sa);
        ck_assert_int_eq(pipe2(ctl, O_CLOEXEC), 0);
        outer = spawn_peer_in_pidns(&sa, ctl[0], ctl[1]);
        close(ctl[0]);

        fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len), 0);
        ck_assert_int_eq(policy_peer_pidns(fd, cred.pid, &ns, &level), 0);
        ck_assert_uint_eq(level, our_level + 1);
        snprintf(path, sizeof(path), "/proc/%d/ns/pid", (int) cred.pid);
        ck_assert_int_eq(stat(path, &st), 0);
        ck_assert_uint_eq(ns.ino, st.st_ino);
        ck_assert_uint_eq(ns.dev, st.st_dev);
        ck_assert(!ns_id_equal(&ns, &ours));

        close(ctl[1]);
        ck_assert_int_eq(waitpid(outer, &status, 0), outer);
        ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        unlink(sa.sun_path);
        rmdir(dir);
}
END_TEST

/*
 * The peer connects from another pid namespace and exits; a process of
 * ours takes over its pid before the connection is looked at. The
 * namespaces must be the peer's (or the peer be reported gone), never
 * those of the process that holds the pid now.
 */
START_TEST(test_peer_pid_reused) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_close_ int listen_fd = -EBADF, fd = -EBADF;
        char dir[] = "/tmp/test-policy-XXXXXX";
        NsId pidns = {}, userns = {}, ours = {};
        socklen_t len = sizeof(struct ucred);
        struct ucred cred;
        pid_t outer, reuser = -1;
        int status, r;

        listen_fd = listen_tmp(dir, &sa);
        outer = spawn_peer_in_pidns(&sa, -EBADF, -EBADF);
        ck_assert_int_eq(waitpid(outer, &status, 0), outer);
        ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);

        fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len), 0);
        ck_assert_int_gt(cred.pid, 1);

        /*
         * Hand the dead peer's pid to a process of ours, by name: clone3()'s
         * set_tid, which no other fork on the machine can race as it can
         * race a write of ns_last_pid.
         */
        {
                struct clone_args args = {
                        .exit_signal = SIGCHLD,
                        .set_tid = (uintptr_t) &cred.pid,
                        .set_tid_size = 1,
                };

                reuser = (pid_t) syscall(SYS_clone3, &args, sizeof(args));
                if (reuser == 0) {
                        pause();
                        _exit(EXIT_SUCCESS);
                }
                ck_assert_msg(reuser == cred.pid, "clone3() with set_tid %d: %s", (int) cred.pid, strerror(errno));
        }

        r = policy_peer_namespaces(fd, cred.pid, &pidns, &userns);
        ck_assert_int_eq(policy_namespace(0, "pid", &ours), 0);
        ck_assert_msg(r == -ESRCH || (r == 0 && !ns_id_equal(&pidns, &ours)),
                      "answered %d with our own pid namespace: the reused pid was trusted", r);
        /* What translating its pids takes must be the peer's for sure: it is gone. */
        {
                unsigned level = 99;

                ck_assert_int_eq(policy_peer_pidns(fd, cred.pid, &pidns, &level), -ESRCH);
                ck_assert_uint_eq(level, 99);
        }

        kill(reuser, SIGKILL);
        ck_assert_int_eq(waitpid(reuser, NULL, 0), reuser);
        unlink(sa.sun_path);
        rmdir(dir);
}
END_TEST

static Suite *policy_suite(bool root) {
        Suite *s = suite_create("policy");
        TCase *tc;

        tc = tcase_create("privileged");
        tcase_add_test(tc, test_is_privileged);
        suite_add_tcase(s, tc);

        tc = tcase_create("namespace");
        tcase_add_test(tc, test_namespace);
        tcase_add_test(tc, test_peer_namespaces);
        suite_add_tcase(s, tc);

        if (root) {
                tc = tcase_create("target");
                tcase_add_test(tc, test_check_target);
                tcase_add_test(tc, test_check_zombie);
                suite_add_tcase(s, tc);

                tc = tcase_create("peer-pidns");
                tcase_set_timeout(tc, 60);
                tcase_add_test(tc, test_peer_pidns);
                suite_add_tcase(s, tc);

                tc = tcase_create("peer-pid-reused");
                tcase_set_timeout(tc, 60);
                tcase_add_test(tc, test_peer_pid_reused);
                suite_add_tcase(s, tc);
        }

        return s;
}

int main(void) {
        bool root = geteuid() == 0;
        int r;

        r = check_run(policy_suite(root));
        if (r == EXIT_SUCCESS && !root) {
                fprintf(stderr, "SKIP: the target and peer checks need root to set up users and namespaces\n");
                return 77;
        }
        return r;
}
