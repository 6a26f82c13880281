/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check-run.h"
#include "macro.h"
#include "pidns.h"

/* No limit on scans: each miss scans. */
#define UNLIMITED ((PidnsLimits) { .max_namespaces = 8, .max_entries = 64 })
/* Effectively one scan per namespace for the whole test. */
#define ONCE_USEC (UINT64_MAX / 2)

/* --- processes in pid namespaces ---------------------------------------------------- */

typedef struct Member {
        unsigned level;         /* of its namespace, below the nest's base */
        unsigned index;         /* 0: the namespace's init; else an extra one */
        pid_t pid;              /* in its own namespace */
        pid_t host_pid;         /* in ours */
} Member;

typedef struct Nest {
        int ctl;                /* closing it ends them all */
        size_t n;
        Member m[16];
} Nest;

/* In a member: tell the test who we are. The kernel puts our pid in its view into the credentials. */
static void report(int sock, unsigned level, unsigned index) {
        union {
                struct cmsghdr h;
                char buf[CMSG_SPACE(sizeof(struct ucred))];
        } control = {};
        Member m = { .level = level, .index = index, .pid = getpid() };
        struct iovec iov = { .iov_base = &m, .iov_len = sizeof(m) };
        struct msghdr mh = {
                .msg_iov = &iov, .msg_iovlen = 1,
                .msg_control = &control, .msg_controllen = sizeof(control),
        };
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);

        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_CREDENTIALS;
        c->cmsg_len = CMSG_LEN(sizeof(struct ucred));
        memcpy(CMSG_DATA(c), &(struct ucred) { .pid = getpid(), .uid = getuid(), .gid = getgid() },
               sizeof(struct ucred));
        if (sendmsg(sock, &mh, MSG_NOSIGNAL) < 0)
                _exit(EXIT_FAILURE);
}

/* In a member: wait for the test to end. */
static _Noreturn void linger(int ctl) {
        char b;

        (void) read(ctl, &b, 1);
        _exit(EXIT_SUCCESS);
}

static void member_setup(void) {
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
                _exit(EXIT_FAILURE);
        /* Inits reap what ends before them. */
        signal(SIGCHLD, SIG_IGN);
}

/*
 * A chain of @depth pid namespaces, each below the one before, the first
 * below ours; the innermost has @extra processes besides its init.
 */
static void nest_spawn(Nest *n, unsigned depth, unsigned extra) {
        int ctl[2], sock[2], one = 1;
        size_t want = depth + extra;
        pid_t pid;

        ck_assert_uint_le(want, ELEMENTSOF(n->m));
        ck_assert_int_eq(pipe2(ctl, O_CLOEXEC), 0);
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_DGRAM|SOCK_CLOEXEC, 0, sock), 0);
        ck_assert_int_eq(setsockopt(sock[0], SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)), 0);

        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                close(ctl[1]);
                member_setup();
                for (unsigned level = 1; level <= depth; level++) {
                        pid_t child;

                        if (unshare(CLONE_NEWPID) < 0)
                                _exit(EXIT_FAILURE);
                        child = fork();
                        if (child < 0)
                                _exit(EXIT_FAILURE);
                        if (child > 0)
                                linger(ctl[0]);
                        member_setup();
                        report(sock[1], level, 0);
                }
                for (unsigned i = 1; i <= extra; i++) {
                        pid_t child = fork();

                        if (child < 0)
                                _exit(EXIT_FAILURE);
                        if (child == 0) {
                                member_setup();
                                report(sock[1], depth, i);
                                linger(ctl[0]);
                        }
                }
                linger(ctl[0]);
        }
        close(ctl[0]);
        close(sock[1]);

        *n = (Nest) { .ctl = ctl[1] };
        while (n->n < want) {
                union {
                        struct cmsghdr h;
                        char buf[CMSG_SPACE(sizeof(struct ucred))];
                } control = {};
                Member m;
                struct iovec iov = { .iov_base = &m, .iov_len = sizeof(m) };
                struct msghdr mh = {
                        .msg_iov = &iov, .msg_iovlen = 1,
                        .msg_control = &control, .msg_controllen = sizeof(control),
                };
                struct cmsghdr *c;
                struct ucred cred;

                /* A member that fails closes its end: then this ends short. */
                ck_assert_int_eq(recvmsg(sock[0], &mh, 0), (ssize_t) sizeof(m));
                c = CMSG_FIRSTHDR(&mh);
                ck_assert_ptr_nonnull(c);
                ck_assert_int_eq(c->cmsg_type, SCM_CREDENTIALS);
                memcpy(&cred, CMSG_DATA(c), sizeof(cred));
                m.host_pid = cred.pid;
                ck_assert_int_gt(m.host_pid, 0);
                n->m[n->n++] = m;
        }
        close(sock[0]);
}

static const Member *nest_member(const Nest *n, unsigned level, unsigned index) {
        for (size_t i = 0; i < n->n; i++)
                if (n->m[i].level == level && n->m[i].index == index)
                        return &n->m[i];
        ck_abort_msg("no member %u/%u", level, index);
        return NULL;
}

static int open_proc(pid_t pid) {
        char path[32];
        int fd;

        snprintf(path, sizeof(path), "/proc/%d", (int) pid);
        fd = open(path, O_PATH|O_DIRECTORY|O_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        return fd;
}

/* The pid namespace of @host_pid, as the daemon would take it of a client there. */
static PidnsClient client_of(pid_t host_pid) {
        _cleanup_close_ int fd = open_proc(host_pid);
        PidnsClient c;

        ck_assert_int_eq(pidns_read_client(fd, &c), 0);
        return c;
}

/* The pids of @host_pid, outermost first. */
static int nspid_of(pid_t host_pid, pid_t pids[static PIDNS_LEVEL_MAX + 1]) {
        char path[64], buf[65536];
        _cleanup_close_ int fd = -EBADF;
        ssize_t n;

        snprintf(path, sizeof(path), "/proc/%d/status", (int) host_pid);
        fd = open(path, O_RDONLY|O_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        n = read(fd, buf, sizeof(buf) - 1);
        ck_assert_int_gt(n, 0);
        buf[n] = '\0';
        return pidns_parse_nspid(buf, pids);
}

static int translate(PidnsIndex *x, const PidnsClient *c, pid_t pid, pid_t *ret) {
        return pidns_translate(x, c, 0, pid, ret);
}

static void assert_translates(PidnsIndex *x, const PidnsClient *c, pid_t pid, pid_t host_pid) {
        pid_t got = 0;

        ck_assert_msg(pidns_translate(x, c, 0, pid, &got) == 0, "pid %d (ours %d) not found", (int) pid,
                      (int) host_pid);
        ck_assert_int_eq(got, host_pid);
}

/* --- tests ------------------------------------------------------------------------ */

static const struct {
        const char *text;
        int n;
        pid_t first, last;
} nspid_vectors[] = {
        { "NSpid:\t5\n",                                 1, 5, 5 },
        { "Name:\tx\nNSpid:\t10\t3\t1\nNSpgid:\t1\n",    3, 10, 1 },
        { "Name:\tx\nNSpid:\t2147483647\t1\n",           2, 2147483647, 1 },
        { "NStgid:\t7\nNSpid:\t7\t2\n",                  2, 7, 2 },
        { "Name:\tNSpid:\t3\nNSpid:\t4\n",               1, 4, 4 },
        /* Malformed. */
        { "NSpid:\n",                                    -EBADMSG, 0, 0 },
        { "NSpid:\t\n",                                  -EBADMSG, 0, 0 },
        { "NSpid:\t0\n",                                 -EBADMSG, 0, 0 },
        { "NSpid:\t-1\n",                                -EBADMSG, 0, 0 },
        { "NSpid:\t1a\n",                                -EBADMSG, 0, 0 },
        { "NSpid:\t5\t\n",                               -EBADMSG, 0, 0 },
        { "NSpid:\t2147483648\n",                        -EBADMSG, 0, 0 },
        { "NSpid:\t18446744073709551621\n",              -EBADMSG, 0, 0 },
        { "NSpid:\t5",                                   -EBADMSG, 0, 0 },
        { "Name:\tx\nPid:\t5\n",                         -EBADMSG, 0, 0 },
        { "XNSpid:\t5\n",                                -EBADMSG, 0, 0 },
        { "",                                            -EBADMSG, 0, 0 },
};

START_TEST(test_parse_nspid) {
        pid_t pids[PIDNS_LEVEL_MAX + 1];
        char text[512], *p;

        for (size_t i = 0; i < ELEMENTSOF(nspid_vectors); i++) {
                int n = pidns_parse_nspid(nspid_vectors[i].text, pids);

                ck_assert_msg(n == nspid_vectors[i].n, "vector %zu: %d", i, n);
                if (n > 0) {
                        ck_assert_int_eq(pids[0], nspid_vectors[i].first);
                        ck_assert_int_eq(pids[n - 1], nspid_vectors[i].last);
                }
        }

        /* 33 levels are the kernel's most; 34 are not a status file's. */
        p = text + sprintf(text, "NSpid:");
        for (unsigned i = 0; i < PIDNS_LEVEL_MAX + 1; i++)
                p += sprintf(p, "\t%u", 100 + i);
        strcpy(p, "\n");
        ck_assert_int_eq(pidns_parse_nspid(text, pids), (int) PIDNS_LEVEL_MAX + 1);
        ck_assert_int_eq(pids[PIDNS_LEVEL_MAX], 100 + (int) PIDNS_LEVEL_MAX);
        strcpy(p, "\t1\n");
        ck_assert_int_eq(pidns_parse_nspid(text, pids), -EBADMSG);
}
END_TEST

/* Ours: level 0, our namespace; also past a Groups line longer than a read. */
START_TEST(test_read_client_self) {
        _cleanup_close_ int fd = -EBADF;
        static gid_t groups[4000];
        PidnsClient c;
        struct stat st;

        for (size_t i = 0; i < ELEMENTSOF(groups); i++)
                groups[i] = (gid_t) (1000000 + i);
        ck_assert_int_eq(setgroups(ELEMENTSOF(groups), groups), 0);

        fd = open("/proc/self", O_PATH|O_DIRECTORY|O_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(pidns_read_client(fd, &c), 0);
        ck_assert_int_eq(stat("/proc/self/ns/pid", &st), 0);
        ck_assert_uint_eq(c.level, 0);
        ck_assert_uint_eq(c.ns.dev, st.st_dev);
        ck_assert_uint_eq(c.ns.ino, st.st_ino);
        /* A client of our own namespace is not one to translate for. */
        ck_assert_int_eq(pidns_verify(fd, &c, getpid()), -ESRCH);
}
END_TEST

START_TEST(test_read_client_nested) {
        Nest n;
        const Member *init1, *init2;
        PidnsClient c1, c2;
        pid_t pids[PIDNS_LEVEL_MAX + 1];
        struct stat st;
        char path[64];

        nest_spawn(&n, 2, 0);
        init1 = nest_member(&n, 1, 0);
        init2 = nest_member(&n, 2, 0);
        c1 = client_of(init1->host_pid);
        c2 = client_of(init2->host_pid);

        ck_assert_uint_eq(c1.level, 1);
        ck_assert_uint_eq(c2.level, 2);
        snprintf(path, sizeof(path), "/proc/%d/ns/pid", (int) init1->host_pid);
        ck_assert_int_eq(stat(path, &st), 0);
        ck_assert_uint_eq(c1.ns.ino, st.st_ino);
        ck_assert(!ns_id_equal(&c1.ns, &c2.ns));

        /* The second init: pid 1 of its own, another in the first, its host pid in ours. */
        ck_assert_int_eq(init2->pid, 1);
        ck_assert_int_eq(nspid_of(init2->host_pid, pids), 3);
        ck_assert_int_eq(pids[0], init2->host_pid);
        ck_assert_int_gt(pids[1], 1);
        ck_assert_int_eq(pids[2], 1);
        close(n.ctl);
}
END_TEST

START_TEST(test_translate) {
        _cleanup_(pidns_index_freep) PidnsIndex *x = NULL;
        const Member *init1, *init2, *extra;
        PidnsClient c1, c2;
        PidnsStats st;
        pid_t pids[PIDNS_LEVEL_MAX + 1], got;
        Nest n;

        nest_spawn(&n, 2, 2);
        init1 = nest_member(&n, 1, 0);
        init2 = nest_member(&n, 2, 0);
        extra = nest_member(&n, 2, 2);
        c1 = client_of(init1->host_pid);
        c2 = client_of(init2->host_pid);
        ck_assert_int_eq(pidns_index_new(&x, &UNLIMITED), 0);

        /* From the first namespace: its init, and those below it by their pids there. */
        assert_translates(x, &c1, 1, init1->host_pid);
        ck_assert_int_eq(nspid_of(init2->host_pid, pids), 3);
        assert_translates(x, &c1, pids[1], init2->host_pid);
        ck_assert_int_eq(nspid_of(extra->host_pid, pids), 3);
        assert_translates(x, &c1, pids[1], extra->host_pid);
        pidns_index_stats(x, &st);
        ck_assert_uint_eq(st.scans, 1);         /* one scan found them all */
        ck_assert_uint_eq(st.hits, 2);
        ck_assert_uint_eq(st.n_namespaces, 1);
        ck_assert_uint_eq(st.n_entries, 4);

        /* From the second: pid 1 is its own init, not the first's. */
        assert_translates(x, &c2, 1, init2->host_pid);
        assert_translates(x, &c2, extra->pid, extra->host_pid);
        ck_assert_int_gt(extra->pid, 1);

        /* Each checked against the process itself. */
        for (size_t i = 0; i < n.n; i++) {
                _cleanup_close_ int fd = open_proc(n.m[i].host_pid);

                ck_assert_int_eq(pidns_verify(fd, &c2, n.m[i].pid), n.m[i].level == 2 ? 0 : -ESRCH);
        }

        /* Nobody there by that pid. */
        ck_assert_int_eq(translate(x, &c2, 999999, &got), -ESRCH);
        ck_assert_int_eq(translate(x, &c1, INT32_MAX, &got), -ESRCH);
        ck_assert_int_eq(translate(x, &c1, 0, &got), -EINVAL);
        ck_assert_int_eq(translate(x, &c1, -1, &got), -EINVAL);
        close(n.ctl);
}
END_TEST

/* A client never gets a process outside its namespace: above it, or beside it at the same depth. */
START_TEST(test_outside_refused) {
        _cleanup_(pidns_index_freep) PidnsIndex *x = NULL;
        const Member *a1, *a2, *b1;
        PidnsClient ca2, cb;
        pid_t got;
        Nest a, b;

        nest_spawn(&a, 2, 0);
        nest_spawn(&b, 1, 1);
        a1 = nest_member(&a, 1, 0);
        a2 = nest_member(&a, 2, 0);
        b1 = nest_member(&b, 1, 0);
        ca2 = client_of(a2->host_pid);
        cb = client_of(b1->host_pid);
        ck_assert_int_eq(pidns_index_new(&x, &UNLIMITED), 0);

        /* Our own process, by its pid here: there is no such pid in theirs. */
        ck_assert_int_eq(translate(x, &cb, getpid(), &got), -ESRCH);
        {
                _cleanup_close_ int fd = open_proc(getpid());

                ck_assert_int_eq(pidns_verify(fd, &cb, getpid()), -ESRCH);
        }
        /* a1 is pid 1 of the namespace above a2's, which has a pid 1 of its own. */
        {
                _cleanup_close_ int fd = open_proc(a1->host_pid);

                ck_assert_int_eq(pidns_verify(fd, &ca2, 1), -ESRCH);
        }
        /* b's and a's first namespaces lie at the same depth: their pids there are other processes. */
        assert_translates(x, &cb, 1, b1->host_pid);
        assert_translates(x, &cb, nest_member(&b, 1, 1)->pid, nest_member(&b, 1, 1)->host_pid);
        {
                _cleanup_close_ int fd = open_proc(a1->host_pid);
                _cleanup_close_ int fd2 = open_proc(a2->host_pid);
                pid_t pids[PIDNS_LEVEL_MAX + 1];

                ck_assert_int_eq(pidns_verify(fd, &cb, 1), -ESRCH);
                ck_assert_int_eq(nspid_of(a2->host_pid, pids), (int) cb.level + 2);
                ck_assert_int_eq(pidns_verify(fd2, &cb, pids[cb.level]), -ESRCH);
        }
        /* A client that is not below ours, or not at a level, is no client to translate for. */
        ck_assert_int_eq(translate(x, &(PidnsClient) { .ns = cb.ns, .level = 0 }, 1, &got), -EINVAL);
        ck_assert_int_eq(translate(x, &(PidnsClient) { .ns = cb.ns, .level = PIDNS_LEVEL_MAX + 1 }, 1, &got),
                         -EINVAL);
        /* The right namespace claimed at the wrong depth names no process. */
        ck_assert_int_eq(translate(x, &(PidnsClient) { .ns = cb.ns, .level = 2 }, 1, &got), -ESRCH);
        close(a.ctl);
        close(b.ctl);
}
END_TEST

static pid_t clone_with_pids(pid_t in_ns, pid_t in_ours) {
        pid_t tids[2] = { in_ns, in_ours };
        struct clone_args args = {
                .exit_signal = SIGCHLD,
                .set_tid = (uintptr_t) tids,
                .set_tid_size = in_ours > 0 ? 2 : 1,
        };

        return (pid_t) syscall(SYS_clone3, &args, sizeof(args));
}

/* In the child @pid (0) of a fork: wait for the pipe @ctl to close. */
static pid_t spawn_waiting(pid_t pid, const int ctl[static 2]) {
        if (pid == 0) {
                close(ctl[1]);
                linger(ctl[0]);
        }
        return pid;
}

/*
 * An entry whose process exited is not answered from: the pid is gone in
 * the namespace, or names another process, even one that took the same
 * host pid.
 */
START_TEST(test_stale) {
        _cleanup_(pidns_index_freep) PidnsIndex *x = NULL;
        pid_t init, second, third, reused, got, pids[PIDNS_LEVEL_MAX + 1];
        int ctl[2], status;
        _cleanup_close_ int own = open("/proc/self/ns/pid", O_RDONLY|O_CLOEXEC);
        pid_t second_pid;
        PidnsClient c;
        PidnsStats st;

        /* Our children from now on are in a namespace of their own: we reap them ourselves. */
        ck_assert_int_ge(own, 0);
        ck_assert_int_eq(unshare(CLONE_NEWPID), 0);
        ck_assert_int_eq(pipe2(ctl, O_CLOEXEC), 0);
        init = fork();
        ck_assert_int_ge(init, 0);
        if (init == 0) {
                member_setup();
                close(ctl[1]);
                linger(ctl[0]);
        }
        second = spawn_waiting(fork(), ctl);
        ck_assert_int_gt(second, 0);
        c = client_of(init);
        ck_assert_uint_eq(c.level, client_of(getpid()).level + 1);
        ck_assert_int_eq(pidns_index_new(&x, &UNLIMITED), 0);
        ck_assert_int_eq(nspid_of(second, pids), (int) c.level + 1);
        second_pid = pids[c.level];
        assert_translates(x, &c, second_pid, second);

        /* Gone, and its host pid taken by a process that is pid 7 there. */
        ck_assert_int_eq(kill(second, SIGKILL), 0);
        ck_assert_int_eq(waitpid(second, &status, 0), second);
        reused = clone_with_pids(7, second);
        if (reused < 0 && errno == EEXIST)
                /* Someone took it meanwhile: the entry is merely stale then. */
                reused = clone_with_pids(7, 0);
        reused = spawn_waiting(reused, ctl);
        ck_assert_int_gt(reused, 0);
        ck_assert_int_eq(translate(x, &c, second_pid, &got), -ESRCH);
        pidns_index_stats(x, &st);
        ck_assert_uint_eq(st.stale, 1);
        ck_assert_uint_eq(st.scans, 2);         /* the miss looked again */
        assert_translates(x, &c, 7, reused);
        {
                _cleanup_close_ int fd = open_proc(reused);

                ck_assert_int_eq(pidns_verify(fd, &c, second_pid), -ESRCH);
                ck_assert_int_eq(pidns_verify(fd, &c, 7), 0);
        }

        /* Gone, its pid not reused. */
        third = spawn_waiting(fork(), ctl);
        ck_assert_int_gt(third, 0);
        ck_assert_int_eq(nspid_of(third, pids), (int) c.level + 1);
        assert_translates(x, &c, pids[c.level], third);
        ck_assert_int_eq(kill(third, SIGKILL), 0);
        ck_assert_int_eq(waitpid(third, &status, 0), third);
        ck_assert_int_eq(translate(x, &c, pids[c.level], &got), -ESRCH);
        pidns_index_stats(x, &st);
        ck_assert_uint_eq(st.stale, 2);

        close(ctl[1]);
        ck_assert_int_eq(waitpid(reused, &status, 0), reused);
        /* Back to ours for children, so that what runs at our exit (LeakSanitizer) may fork. */
        ck_assert_int_eq(setns(own, CLONE_NEWPID), 0);
}
END_TEST

/* Misses scan once per interval at most, per namespace and in all; hits never scan. */
START_TEST(test_rate_limit) {
        _cleanup_(pidns_index_freep) PidnsIndex *x = NULL, *y = NULL, *z = NULL;
        const Member *extra;
        PidnsClient ca, cb;
        PidnsStats st;
        pid_t got;
        Nest a, b, late;

        nest_spawn(&a, 1, 1);
        nest_spawn(&b, 1, 0);
        ca = client_of(nest_member(&a, 1, 0)->host_pid);
        cb = client_of(nest_member(&b, 1, 0)->host_pid);

        ck_assert_int_eq(pidns_index_new(&x, &(PidnsLimits) {
                        .max_namespaces = 8, .max_entries = 64, .scan_interval_usec = ONCE_USEC,
                }), 0);
        assert_translates(x, &ca, 1, nest_member(&a, 1, 0)->host_pid);
        /* A pid nobody has, over and over: one scan was all it got. */
        for (unsigned i = 0; i < 100; i++)
                ck_assert_int_eq(translate(x, &ca, 1000 + i, &got), -ESRCH);
        /* Known ones still answer. */
        assert_translates(x, &ca, nest_member(&a, 1, 1)->pid, nest_member(&a, 1, 1)->host_pid);
        /* Another namespace has its own allowance. */
        assert_translates(x, &cb, 1, nest_member(&b, 1, 0)->host_pid);
        pidns_index_stats(x, &st);
        ck_assert_uint_eq(st.scans, 2);
        ck_assert_uint_eq(st.scans_refused, 100);
        ck_assert_uint_eq(st.hits, 1);

        /* All namespaces together: one scan for any. */
        ck_assert_int_eq(pidns_index_new(&y, &(PidnsLimits) {
                        .max_namespaces = 8, .max_entries = 64, .global_scan_interval_usec = ONCE_USEC,
                }), 0);
        assert_translates(y, &ca, 1, nest_member(&a, 1, 0)->host_pid);
        ck_assert_int_eq(translate(y, &cb, 1, &got), -ESRCH);
        pidns_index_stats(y, &st);
        ck_assert_uint_eq(st.scans, 1);
        ck_assert_uint_eq(st.scans_refused, 1);

        /* A burst of three, then none until one comes back. */
        z = pidns_index_free(z);
        ck_assert_int_eq(pidns_index_new(&z, &(PidnsLimits) {
                        .max_namespaces = 8, .max_entries = 64, .scan_interval_usec = ONCE_USEC, .scan_burst = 3,
                }), 0);
        for (unsigned i = 0; i < 5; i++)
                ck_assert_int_eq(translate(z, &ca, 1000 + i, &got), -ESRCH);
        pidns_index_stats(z, &st);
        ck_assert_uint_eq(st.scans, 3);
        ck_assert_uint_eq(st.scans_refused, 2);
        z = pidns_index_free(z);

        /* Without a limit, a process that came after the last scan is found by the next. */
        nest_spawn(&late, 1, 0);
        ck_assert_int_eq(pidns_index_new(&z, &UNLIMITED), 0);
        assert_translates(z, &ca, 1, nest_member(&a, 1, 0)->host_pid);
        extra = nest_member(&late, 1, 0);
        cb = client_of(extra->host_pid);
        assert_translates(z, &cb, 1, extra->host_pid);
        pidns_index_stats(z, &st);
        ck_assert_uint_eq(st.scans, 2);
        close(a.ctl);
        close(b.ctl);
        close(late.ctl);
}
END_TEST

typedef struct Worker {
        PidnsIndex *x;
        const Nest *nests[2];
        PidnsClient clients[2];
        unsigned seed;
        unsigned wrong;
} Worker;

/*
 * Translate the nests' pids, known and unknown, in a random order; count
 * wrong answers. With tables this small, a pid that exists may be missed
 * (its table evicted before the scan that would have found it ends), but
 * never answered with another process.
 */
static void *worker_run(void *userdata) {
        Worker *w = userdata;

        for (unsigned i = 0; i < 300; i++) {
                unsigned k = (unsigned) rand_r(&w->seed);
                const Nest *n = w->nests[k % 2];
                const Member *m = &n->m[(k / 2) % n->n];
                pid_t got = 0;
                int r;

                if ((k / 64) % 4 == 0) {
                        /* Nobody: a miss, which may scan. */
                        r = pidns_translate(w->x, &w->clients[k % 2], k % 3, 5000 + (pid_t) (k % 100), &got);
                        w->wrong += r != -ESRCH;
                        continue;
                }
                r = pidns_translate(w->x, &w->clients[k % 2], k % 3, m->pid, &got);
                w->wrong += r == 0 ? got != m->host_pid : r != -ESRCH;
        }
        return NULL;
}

/* Threads at once, on tables being filled, scanned and evicted: every answer right. */
START_TEST(test_threads) {
        _cleanup_(pidns_index_freep) PidnsIndex *x = NULL;
        pthread_t threads[8];
        Worker workers[8];
        Nest a, b;

        nest_spawn(&a, 1, 6);
        nest_spawn(&b, 1, 6);
        /* Room for fewer pids than there are, in fewer tables than users: entries come and go. */
        ck_assert_int_eq(pidns_index_new(&x, &(PidnsLimits) { .max_namespaces = 1, .max_entries = 4 }), 0);
        for (size_t i = 0; i < ELEMENTSOF(workers); i++) {
                workers[i] = (Worker) {
                        .x = x,
                        .nests = { &a, &b },
                        .clients = { client_of(a.m[0].host_pid), client_of(b.m[0].host_pid) },
                        .seed = (unsigned) i + 1,
                };
                ck_assert_int_eq(pthread_create(&threads[i], NULL, worker_run, &workers[i]), 0);
        }
        for (size_t i = 0; i < ELEMENTSOF(workers); i++) {
                ck_assert_int_eq(pthread_join(threads[i], NULL), 0);
                ck_assert_uint_eq(workers[i].wrong, 0);
        }
        /* And the index is whole afterwards: each found, alone. */
        for (size_t i = 0; i < a.n; i++) {
                assert_translates(x, &workers[0].clients[0], a.m[i].pid, a.m[i].host_pid);
                assert_translates(x, &workers[0].clients[1], b.m[i].pid, b.m[i].host_pid);
        }
        close(a.ctl);
        close(b.ctl);
}
END_TEST

/* The tables are bounded; one user's namespaces evict that user's own first. */
START_TEST(test_bounds) {
        _cleanup_(pidns_index_freep) PidnsIndex *x = NULL, *y = NULL;
        PidnsClient ca, cb, cc, cd;
        PidnsStats st;
        pid_t got;
        Nest a, b, c, d;

        nest_spawn(&a, 1, 5);
        nest_spawn(&b, 1, 0);
        nest_spawn(&c, 1, 0);
        nest_spawn(&d, 1, 0);
        ca = client_of(nest_member(&a, 1, 0)->host_pid);
        cb = client_of(nest_member(&b, 1, 0)->host_pid);
        cc = client_of(nest_member(&c, 1, 0)->host_pid);
        cd = client_of(nest_member(&d, 1, 0)->host_pid);

        /* Six processes, room for two pids: the one asked for is kept. */
        ck_assert_int_eq(pidns_index_new(&x, &(PidnsLimits) {
                        .max_namespaces = 2, .max_entries = 2, .scan_interval_usec = ONCE_USEC,
                }), 0);
        assert_translates(x, &ca, nest_member(&a, 1, 3)->pid, nest_member(&a, 1, 3)->host_pid);
        pidns_index_stats(x, &st);
        ck_assert_uint_eq(st.n_entries, 2);
        assert_translates(x, &ca, nest_member(&a, 1, 3)->pid, nest_member(&a, 1, 3)->host_pid);
        pidns_index_stats(x, &st);
        ck_assert_uint_eq(st.hits, 1);
        ck_assert_uint_eq(st.scans, 1);
        /* Room for two namespaces. */
        assert_translates(x, &cb, 1, nest_member(&b, 1, 0)->host_pid);
        assert_translates(x, &cc, 1, nest_member(&c, 1, 0)->host_pid);
        pidns_index_stats(x, &st);
        ck_assert_uint_eq(st.n_namespaces, 2);
        ck_assert_uint_le(st.n_entries, 4);

        /* Four slots, a fair share of one each: user 2's new namespace takes the place of its oldest. */
        ck_assert_int_eq(pidns_index_new(&y, &(PidnsLimits) {
                        .max_namespaces = 4, .max_entries = 8, .scan_interval_usec = ONCE_USEC,
                }), 0);
        ck_assert_int_eq(pidns_translate(y, &ca, 1, 1, &got), 0);
        ck_assert_int_eq(pidns_translate(y, &cb, 1, 1, &got), 0);
        ck_assert_int_eq(pidns_translate(y, &cc, 2, 1, &got), 0);
        ck_assert_int_eq(pidns_translate(y, &cd, 2, 1, &got), 0);
        pidns_index_stats(y, &st);
        ck_assert_uint_eq(st.n_namespaces, 4);
        ck_assert_uint_eq(st.scans, 4);
        ck_assert_int_eq(pidns_translate(y, &(PidnsClient) { .ns = { .dev = 1, .ino = 1 }, .level = 1 }, 2, 1, &got),
                         -ESRCH);
        /* User 1's and user 2's newer one answer without a scan; user 2's oldest had to go. */
        ck_assert_int_eq(pidns_translate(y, &ca, 1, 1, &got), 0);
        ck_assert_int_eq(pidns_translate(y, &cb, 1, 1, &got), 0);
        ck_assert_int_eq(pidns_translate(y, &cd, 2, 1, &got), 0);
        pidns_index_stats(y, &st);
        ck_assert_uint_eq(st.n_namespaces, 4);
        ck_assert_uint_eq(st.scans, 5);
        ck_assert_uint_eq(st.hits, 3);
        ck_assert_int_eq(pidns_translate(y, &cc, 2, 1, &got), 0);
        pidns_index_stats(y, &st);
        ck_assert_uint_eq(st.scans, 6);
        ck_assert_uint_eq(st.n_namespaces, 4);

        ck_assert_int_eq(pidns_index_new(&x, &(PidnsLimits) { .max_namespaces = 0, .max_entries = 1 }), -EINVAL);
        ck_assert_int_eq(pidns_index_new(&x, &(PidnsLimits) { .max_namespaces = 1, .max_entries = 0 }), -EINVAL);
        close(a.ctl);
        close(b.ctl);
        close(c.ctl);
        close(d.ctl);
}
END_TEST

static Suite *pidns_suite(bool root) {
        Suite *s = suite_create("pidns");
        TCase *tc;

        tc = tcase_create("parse_nspid");
        tcase_add_test(tc, test_parse_nspid);
        suite_add_tcase(s, tc);

        if (!root)
                return s;

        const struct {
                const char *name;
                const TTest *test;
        } cases[] = {
                { "read_client_self",   test_read_client_self },
                { "read_client_nested", test_read_client_nested },
                { "translate",          test_translate },
                { "outside_refused",    test_outside_refused },
                { "stale",              test_stale },
                { "rate_limit",         test_rate_limit },
                { "bounds",             test_bounds },
                { "threads",            test_threads },
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                tc = tcase_create(cases[i].name);
                tcase_add_test(tc, cases[i].test);
                tcase_set_timeout(tc, 60);
                suite_add_tcase(s, tc);
        }
        return s;
}

int main(void) {
        bool root = geteuid() == 0;
        int r;

        r = check_run(pidns_suite(root));
        if (r == EXIT_SUCCESS && !root) {
                fprintf(stderr, "SKIP: the namespace checks need root to create pid namespaces\n");
                return 77;
        }
        return r;
}
