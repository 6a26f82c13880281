/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "macro.h"
#include "parse-util.h"
#include "policy.h"

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

/* The four IDs of the "Uid:" line of /proc/PID/status: real, effective, saved, filesystem. */
static int read_uids(int dir_fd, uint64_t uids[static 4]) {
        _cleanup_close_ int fd = -EBADF;
        char buf[4096], *line;
        ssize_t n;

        fd = openat(dir_fd, "status", O_RDONLY|O_CLOEXEC|O_NOCTTY);
        if (fd < 0)
                return errno == ENOENT ? -ESRCH : -errno;
        n = read(fd, buf, sizeof(buf) - 1);
        if (n < 0)
                return errno == ENOENT ? -ESRCH : -errno;
        buf[n] = '\0';

        line = strstr(buf, "\nUid:\t");
        if (!line)
                return -EBADMSG;
        line += strlen("\nUid:\t");

        for (unsigned i = 0; i < 4; i++) {
                size_t len = strspn(line, "0123456789");

                if (parse_u64_n(line, len, 10, &uids[i]) < 0)
                        return -EBADMSG;
                line += len;
                if (*line != (i < 3 ? '\t' : '\n'))
                        return -EBADMSG;
                line++;
        }
        return 0;
}

int policy_check_target(int dir_fd, uid_t uid) {
        uint64_t uids[4];
        struct stat st;
        int r;

        /* First, as it fails for a process that is gone, which the stat below would not tell. */
        r = read_uids(dir_fd, uids);
        if (r < 0)
                return r;
        for (unsigned i = 0; i < 3; i++)
                if (uids[i] != uid)
                        return -EACCES;

        /*
         * Not dumpable: the kernel hands the files in /proc/PID to root
         * (not the directory itself, which keeps the effective uid).
         */
        if (fstatat(dir_fd, "stat", &st, AT_SYMLINK_NOFOLLOW) < 0)
                return errno == ENOENT ? -ESRCH : -errno;
        if (st.st_uid != uid)
                return -EACCES;
        return 0;
}

int policy_pid_namespace(pid_t pid, ino_t *ret) {
        char path[64];
        struct stat st;

        if (pid == 0)
                snprintf(path, sizeof(path), "/proc/self/ns/pid");
        else
                snprintf(path, sizeof(path), "/proc/%d/ns/pid", (int) pid);
        if (stat(path, &st) < 0)
                return errno == ENOENT ? -ESRCH : -errno;

        *ret = st.st_ino;
        return 0;
}
