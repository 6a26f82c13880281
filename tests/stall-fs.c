/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "macro.h"
#include "stall-fs.h"

#define FILE_INO 2
#define FILE_SIZE 8192
#define FILE_NAME "file"

static void fill_attr(struct fuse_attr *a, uint64_t ino) {
        *a = (struct fuse_attr) {
                .ino = ino,
                .size = ino == FILE_INO ? FILE_SIZE : 0,
                .blocks = ino == FILE_INO ? FILE_SIZE / 512 : 0,
                .mode = ino == FILE_INO ? S_IFREG|0644 : S_IFDIR|0755,
                .nlink = ino == FILE_INO ? 1 : 2,
                .blksize = 4096,
        };
}

static void reply(int fd, uint64_t unique, int error, const void *payload, size_t size) {
        struct {
                struct fuse_out_header h;
                uint8_t payload[256];
        } out = {
                .h = {
                        .len = (uint32_t) (sizeof(struct fuse_out_header) + (error ? 0 : size)),
                        .error = error,
                        .unique = unique,
                },
        };

        if (!error && size > 0)
                memcpy(out.payload, payload, size);
        (void) write(fd, &out, out.h.len);
}

/* The server: answers everything but reads, which it only reports on @reads_fd. */
static _Noreturn void serve(int fd, int reads_fd) {
        static uint8_t buf[FUSE_MIN_READ_BUFFER + 65536];

        for (;;) {
                const struct fuse_in_header *in = (const void *) buf;
                const void *arg = buf + sizeof(*in);
                ssize_t n = read(fd, buf, sizeof(buf));

                if (n < 0 && (errno == EINTR || errno == ENOENT))
                        continue;
                if (n < (ssize_t) sizeof(*in))
                        _exit(EXIT_SUCCESS);            /* unmounted */

                switch (in->opcode) {
                case FUSE_INIT: {
                        struct fuse_init_out o = {
                                .major = FUSE_KERNEL_VERSION,
                                .minor = FUSE_KERNEL_MINOR_VERSION,
                                .max_readahead = 4096,
                                .max_write = 4096,
                                .max_background = 16,
                                .congestion_threshold = 12,
                        };

                        reply(fd, in->unique, 0, &o, sizeof(o));
                        break;
                }
                case FUSE_LOOKUP: {
                        struct fuse_entry_out o = { .nodeid = FILE_INO, .generation = 1 };

                        if (in->nodeid != FUSE_ROOT_ID || strcmp(arg, FILE_NAME) != 0) {
                                reply(fd, in->unique, -ENOENT, NULL, 0);
                                break;
                        }
                        fill_attr(&o.attr, FILE_INO);
                        reply(fd, in->unique, 0, &o, sizeof(o));
                        break;
                }
                case FUSE_GETATTR: {
                        struct fuse_attr_out o = {};

                        fill_attr(&o.attr, in->nodeid);
                        reply(fd, in->unique, 0, &o, sizeof(o));
                        break;
                }
                case FUSE_OPEN:
                case FUSE_OPENDIR: {
                        struct fuse_open_out o = { .fh = 1 };

                        reply(fd, in->unique, 0, &o, sizeof(o));
                        break;
                }
                case FUSE_READ:
                        /* Never answered. */
                        (void) write(reads_fd, "r", 1);
                        break;
                case FUSE_FORGET:
                case FUSE_BATCH_FORGET:
                case FUSE_INTERRUPT:
                        break;                          /* no reply expected */
                case FUSE_RELEASE:
                case FUSE_RELEASEDIR:
                case FUSE_FLUSH:
                        reply(fd, in->unique, 0, NULL, 0);
                        break;
                case FUSE_DESTROY:
                        reply(fd, in->unique, 0, NULL, 0);
                        _exit(EXIT_SUCCESS);
                default:
                        reply(fd, in->unique, -ENOSYS, NULL, 0);
                }
        }
}

int stall_fs_mount(StallFs *fs, const char *dir) {
        _cleanup_close_ int fd = -EBADF;
        int reads[2], r;
        char opts[128];

        *fs = (StallFs) { .server = -1, .reads_fd = -EBADF };
        snprintf(fs->mount_point, sizeof(fs->mount_point), "%s/stall-fs", dir);
        snprintf(fs->file, sizeof(fs->file), "%s/" FILE_NAME, fs->mount_point);
        if (mkdir(fs->mount_point, 0755) < 0 && errno != EEXIST)
                return -errno;

        fd = open("/dev/fuse", O_RDWR|O_CLOEXEC);
        if (fd < 0)
                return errno == ENOENT || errno == ENXIO ? -ENODEV : -errno;
        snprintf(opts, sizeof(opts), "fd=%d,rootmode=40000,user_id=0,group_id=0,allow_other", fd);
        if (mount("stall-fs", fs->mount_point, "fuse", MS_NOSUID|MS_NODEV, opts) < 0) {
                r = -errno;
                (void) rmdir(fs->mount_point);
                return r == -EACCES ? -EPERM : r;
        }

        if (pipe2(reads, O_CLOEXEC) < 0) {
                r = -errno;
                stall_fs_unmount(fs);
                return r;
        }
        fs->server = fork();
        if (fs->server < 0) {
                r = -errno;
                close(reads[0]);
                close(reads[1]);
                stall_fs_unmount(fs);
                return r;
        }
        if (fs->server == 0) {
                (void) prctl(PR_SET_PDEATHSIG, SIGKILL);
                close(reads[0]);
                serve(fd, reads[1]);
        }
        close(reads[1]);
        fs->reads_fd = reads[0];
        return 0;
}

int stall_fs_wait_read(StallFs *fs, int timeout_ms) {
        struct pollfd p = { .fd = fs->reads_fd, .events = POLLIN };
        char b;
        int r;

        do
                r = poll(&p, 1, timeout_ms);
        while (r < 0 && errno == EINTR);
        if (r <= 0 || read(fs->reads_fd, &b, 1) != 1)
                return -ETIMEDOUT;
        return 0;
}

void stall_fs_unmount(StallFs *fs) {
        /* With the server gone the connection is aborted: every held request fails. */
        if (fs->server > 0) {
                (void) kill(fs->server, SIGKILL);
                (void) waitpid(fs->server, NULL, 0);
                fs->server = -1;
        }
        (void) umount2(fs->mount_point, MNT_DETACH);
        (void) rmdir(fs->mount_point);
        fs->reads_fd = safe_close(fs->reads_fd);
}
