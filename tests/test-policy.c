/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check-run.h"
#include "macro.h"
#include "policy.h"

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

/*
 * A child with the given user IDs and dumpable flag; it waits until the
 * pipe closes. Returns its /proc directory.
 */
static int spawn_target(uid_t ruid, uid_t euid, uid_t suid, int dumpable, pid_t *ret_pid, int *ret_ctl) {
        int ready[2], ctl[2], dir_fd;
        char path[64], b;
        pid_t pid;

        ck_assert_int_eq(pipe2(ready, O_CLOEXEC), 0);
        ck_assert_int_eq(pipe2(ctl, O_CLOEXEC), 0);
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                close(ready[0]);
                close(ctl[1]);
                if (setresuid(ruid, euid, suid) < 0 || prctl(PR_SET_DUMPABLE, dumpable, 0, 0, 0) < 0)
                        _exit(EXIT_FAILURE);
                close(ready[1]);
                (void) read(ctl[0], &b, 1);
                _exit(EXIT_SUCCESS);
        }
        close(ready[1]);
        close(ctl[0]);
        ck_assert_int_eq(read(ready[0], &b, 1), 0);     /* closed once set up */
        close(ready[0]);

        snprintf(path, sizeof(path), "/proc/%d", (int) pid);
        dir_fd = open(path, O_PATH|O_DIRECTORY|O_CLOEXEC);
        ck_assert_int_ge(dir_fd, 0);
        *ret_pid = pid;
        *ret_ctl = ctl[1];
        return dir_fd;
}

static void stop_target(pid_t pid, int ctl) {
        int status;

        close(ctl);
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

START_TEST(test_check_target) {
        static const struct {
                uid_t ruid, euid, suid;
                int dumpable;
                uid_t client;
                int expect;
        } cases[] = {
                { 65534, 65534, 65534, 1, 65534, 0 },           /* the client's own process */
                { 65534, 65534, 65534, 1, 1000,  -EACCES },     /* another user's */
                { 65534, 65534, 65534, 0, 65534, -EACCES },     /* its own, not dumpable */
                { 65534, 65534, 0,     1, 65534, -EACCES },     /* saved uid root: could regain it */
                { 0,     65534, 65534, 1, 65534, -EACCES },     /* real uid root */
        };

        if (geteuid() != 0) {
                fprintf(stderr, "NOTE: target checks need root to set up users, not run\n");
                return;
        }

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_close_ int dir_fd = -EBADF;
                pid_t pid;
                int ctl;

                dir_fd = spawn_target(cases[i].ruid, cases[i].euid, cases[i].suid, cases[i].dumpable, &pid, &ctl);
                ck_assert_msg(policy_check_target(dir_fd, cases[i].client) == cases[i].expect, "case %zu", i);
                stop_target(pid, ctl);

                /* Gone: the pinned directory says so. */
                ck_assert_int_eq(policy_check_target(dir_fd, cases[i].client), -ESRCH);
        }
}
END_TEST

START_TEST(test_pid_namespace) {
        ino_t a = 0, b = 0;

        ck_assert_int_eq(policy_pid_namespace(0, &a), 0);
        ck_assert_int_eq(policy_pid_namespace(getpid(), &b), 0);
        ck_assert_uint_ne(a, 0);
        ck_assert_uint_eq(a, b);
        ck_assert_int_eq(policy_pid_namespace(getppid(), &b), 0);
        ck_assert_uint_eq(a, b);
}
END_TEST

static Suite *policy_suite(void) {
        Suite *s = suite_create("policy");
        TCase *tc;

        tc = tcase_create("privileged");
        tcase_add_test(tc, test_is_privileged);
        suite_add_tcase(s, tc);

        tc = tcase_create("target");
        tcase_add_test(tc, test_check_target);
        suite_add_tcase(s, tc);

        tc = tcase_create("pid-namespace");
        tcase_add_test(tc, test_pid_namespace);
        suite_add_tcase(s, tc);

        return s;
}

int main(void) {
        return check_run(policy_suite());
}
