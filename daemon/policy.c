/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <fcntl.h>
#include <linux/nsfs.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/pidfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "macro.h"
#include "parse-util.h"
#include "pidns.h"
#include "policy.h"

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif

/* /proc/PID/status is a few KiB; a "Groups:" line of 65536 groups makes it some 400 KiB. */
#define STATUS_SIZE_MAX (1024U * 1024U)

bool policy_is_privileged(uid_t uid, gid_t gid, const gid_t *groups, size_t n_groups, gid_t privileged_gid) {
        if (uid == 0)
                return true;
        if (privileged_gid == (gid_t) -1)
                return false;
        if (gid == privileged_gid)
                return true;
        for (size_t i = 0; i < n_groups; i++)
                if (groups[i] == privileged_gid)
                        return true;
        return false;
}

/* A file of a dead process's /proc directory is gone, not missing. */
static int errno_proc(int error) {
        return error == ENOENT ? -ESRCH : -error;
}

static int read_status(int dir_fd, char **ret) {
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ char *buf = NULL;
        size_t size = 0, allocated = 0;

        fd = openat(dir_fd, "status", O_RDONLY|O_CLOEXEC|O_NOCTTY);
        if (fd < 0)
                return errno_proc(errno);

        for (;;) {
                ssize_t n;

                if (allocated - size < 4096) {
                        size_t a = MAX(allocated * 2, (size_t) 8192);
                        char *p;

                        if (a > STATUS_SIZE_MAX + 1)
                                return -EBADMSG;
                        p = realloc(buf, a);
                        if (!p)
                                return -ENOMEM;
                        buf = p;
                        allocated = a;
                }
                n = read(fd, buf + size, allocated - size - 1);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return errno_proc(errno);
                }
                if (n == 0)
                        break;
                size += (size_t) n;
        }
        if (size == 0)
                return -ESRCH;
        buf[size] = '\0';

        *ret = TAKE_PTR(buf);
        return 0;
}

/* The first @n numbers in @base of the status line "\n@key:\t...", separated by tabs. */
static int status_field(const char *status, const char *key, unsigned base, uint64_t *ret, size_t n) {
        char needle[32];
        const char *p;

        snprintf(needle, sizeof(needle), "\n%s:\t", key);
        p = strstr(status, needle);
        if (!p)
                return -EBADMSG;
        p += strlen(needle);

        for (size_t i = 0; i < n; i++) {
                size_t len = strspn(p, "0123456789abcdef");

                if (parse_u64_n(p, len, base, &ret[i]) < 0)
                        return -EBADMSG;
                p += len;
                if (*p != '\t' && (*p != '\n' || i + 1 < n))
                        return -EBADMSG;
                p++;
        }
        return 0;
}

static int ns_id_from_fd(int fd, NsId *ret) {
        struct stat st;

        if (fstat(fd, &st) < 0)
                return -errno;
        *ret = (NsId) { .dev = st.st_dev, .ino = st.st_ino };
        return 0;
}

int policy_read_target(int dir_fd, PolicyTarget *ret) {
        _cleanup_close_ int ns_fd = -EBADF, fd = -EBADF;
        _cleanup_free_ char *status = NULL;
        PolicyTarget t = {};
        struct stat st;
        int r;

        /* First, as it fails for a process that is gone, which the reads below would not tell. */
        r = read_status(dir_fd, &status);
        if (r < 0)
                return r;

        ns_fd = openat(dir_fd, "ns/user", O_RDONLY|O_CLOEXEC);
        if (ns_fd < 0)
                return errno_proc(errno);
        r = ns_id_from_fd(ns_fd, &t.userns);
        if (r < 0)
                return r;

        r = status_field(status, "Uid", 10, t.uids, 3);
        if (r >= 0)
                r = status_field(status, "Gid", 10, t.gids, 3);
        if (r >= 0)
                r = status_field(status, "CapPrm", 16, &t.cap_prm, 1);
        if (r < 0)
                return r;

        t.has_mm = strstr(status, "\nVmSize:");
        if (t.has_mm) {
                /*
                 * Not dumpable: the kernel hands the files in /proc/PID to root
                 * (not the directory itself, which keeps the effective uid).
                 */
                if (fstatat(dir_fd, "stat", &st, AT_SYMLINK_NOFOLLOW) < 0)
                        return errno_proc(errno);
                t.files_uid = st.st_uid;
        }

        /* The namespaces above the target's, each with the owner of the one right below it. */
        for (; t.n_parents < USERNS_DEPTH_MAX; t.n_parents++) {
                _cleanup_close_ int parent = -EBADF;
                uid_t owner;

                parent = ioctl(fd >= 0 ? fd : ns_fd, NS_GET_PARENT);
                if (parent < 0) {
                        /* EPERM: the parent is outside our own namespace; the top has none. */
                        if (errno == EPERM || errno == ENOENT)
                                break;
                        return -errno;
                }
                if (ioctl(fd >= 0 ? fd : ns_fd, NS_GET_OWNER_UID, &owner) < 0)
                        return -errno;
                r = ns_id_from_fd(parent, &t.parents[t.n_parents].ns);
                if (r < 0)
                        return r;
                t.parents[t.n_parents].owner = owner;
                safe_close(fd);
                fd = TAKE_FD(parent);
        }

        *ret = t;
        return 0;
}

int policy_check_client(const PolicyTarget *t, const PolicyClient *client) {
        if (!ns_id_equal(&t->userns, &client->userns)) {
                size_t i;

                /*
                 * Below the client's namespace, and the one right below it
                 * owned by the client's uid: there the client holds every
                 * capability, as cap_capable() decides.
                 */
                for (i = 0; i < t->n_parents; i++)
                        if (ns_id_equal(&t->parents[i].ns, &client->userns))
                                break;
                if (i == t->n_parents || t->parents[i].owner != client->uid)
                        return -EACCES;
                /*
                 * There the client holds CAP_SYS_PTRACE, but a process that is
                 * not dumpable also needs it in the namespace its address space
                 * was made in, which may be ours: require it to be dumpable,
                 * its files then belonging to its effective uid.
                 */
                if (!t->has_mm)
                        return 0;
                return t->files_uid == t->uids[1] ? 0 : -EACCES;
        }

        for (unsigned i = 0; i < 3; i++)
                if (t->uids[i] != client->uid || t->gids[i] != client->gid)
                        return -EACCES;
        /* The client holds no capabilities: the target's must be a subset of none. */
        if (t->cap_prm != 0)
                return -EACCES;

        /*
         * Without an address space (a zombie) the process's files belong to
         * root and dumpability means nothing: the IDs above decided.
         */
        if (!t->has_mm)
                return 0;
        return t->files_uid == client->uid ? 0 : -EACCES;
}

int policy_check_target(int dir_fd, const PolicyClient *client) {
        PolicyTarget t;
        int r;

        r = policy_read_target(dir_fd, &t);
        if (r < 0)
                return r;
        return policy_check_client(&t, client);
}

int policy_namespace(pid_t pid, const char *type, NsId *ret) {
        char path[64];
        struct stat st;

        if (pid == 0)
                snprintf(path, sizeof(path), "/proc/self/ns/%s", type);
        else
                snprintf(path, sizeof(path), "/proc/%d/ns/%s", (int) pid, type);
        if (stat(path, &st) < 0)
                return errno_proc(errno);

        *ret = (NsId) { .dev = st.st_dev, .ino = st.st_ino };
        return 0;
}

int pidfd_get_pid(int fd, pid_t *ret) {
        _cleanup_close_ int info = -EBADF;
        char path[64], buf[1024], *p;
        uint64_t v;
        ssize_t n;

        snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
        info = open(path, O_RDONLY|O_CLOEXEC);
        if (info < 0)
                return -errno;
        n = read(info, buf, sizeof(buf) - 1);
        if (n < 0)
                return -errno;
        buf[n] = '\0';

        p = strstr(buf, "\nPid:\t");
        if (!p)
                return -EOPNOTSUPP;
        p += strlen("\nPid:\t");
        if (strncmp(p, "-1\n", 3) == 0) {
                *ret = -1;
                return 0;
        }
        if (parse_u64_n(p, strcspn(p, "\n"), 10, &v) < 0 || v > INT32_MAX)
                return -EBADMSG;
        *ret = (pid_t) v;
        return 0;
}

int policy_peer_namespaces(int fd, pid_t pid, NsId *ret_pidns, NsId *ret_userns) {
        _cleanup_close_ int pidfd = -EBADF;
        socklen_t len = sizeof(pidfd);
        NsId pidns, userns;
        pid_t p;
        int r;

        if (pid <= 0)
                return -ESRCH;

        if (getsockopt(fd, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &len) < 0) {
                if (errno != ENOPROTOOPT)
                        return errno == ESRCH ? -ESRCH : -errno;
                /* An older kernel: the best we can do is whoever holds the pid now. */
                pidfd = pidfd_open(pid, 0);
                if (pidfd < 0)
                        return errno == ESRCH || errno == EINVAL || errno == ENOENT ? -ESRCH : -errno;
        } else {
                r = pidfd_get_pid(pidfd, &p);
                if (r < 0 && r != -EOPNOTSUPP)
                        return r;
                if (r >= 0 && p != pid)
                        return -ESRCH;          /* gone (-1), or not the peer we were told of */
        }

        r = policy_namespace(pid, "pid", &pidns);
        if (r < 0)
                return r;
        r = policy_namespace(pid, "user", &userns);
        if (r < 0)
                return r;

        /* Still alive, so the /proc/PID we just read was the process behind the pidfd. */
        if (pidfd_send_signal(pidfd, 0, NULL, 0) < 0 && errno != EPERM)
                return errno == ESRCH ? -ESRCH : -errno;

        *ret_pidns = pidns;
        *ret_userns = userns;
        return 0;
}

int policy_peer_pidns(int fd, pid_t pid, NsId *ret_ns, unsigned *ret_level) {
        _cleanup_close_ int pidfd = -EBADF, dir_fd = -EBADF;
        socklen_t len = sizeof(pidfd);
        PidnsClient client;
        char path[32];
        pid_t p;
        int r;

        if (pid <= 0)
                return -ESRCH;
        if (getsockopt(fd, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &len) < 0)
                return errno == ENOPROTOOPT ? -EOPNOTSUPP : errno == ESRCH ? -ESRCH : -errno;
        r = pidfd_get_pid(pidfd, &p);
        if (r < 0)
                return r;
        if (p != pid)
                return -ESRCH;

        snprintf(path, sizeof(path), "/proc/%d", (int) pid);
        dir_fd = open(path, O_PATH|O_DIRECTORY|O_CLOEXEC);
        if (dir_fd < 0)
                return errno_proc(errno);
        r = pidns_read_client(dir_fd, &client);
        if (r < 0)
                return r;

        /* Still alive, so the /proc/PID we just read was the peer's. */
        if (pidfd_send_signal(pidfd, 0, NULL, 0) < 0 && errno != EPERM)
                return errno == ESRCH ? -ESRCH : -errno;

        *ret_ns = client.ns;
        *ret_level = client.level;
        return 0;
}
