/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * A FUSE file system for tests whose one file never answers a read: it
 * holds whoever reads it (a page fault, a read(), the kernel fetching a
 * build ID) until the file system goes away. It speaks the kernel's FUSE
 * protocol on /dev/fuse itself, so it needs no library, only root and
 * FUSE in the kernel.
 */

#include <limits.h>
#include <sys/types.h>

typedef struct StallFs {
        pid_t server;
        int reads_fd;                   /* a byte per read request the server holds */
        char mount_point[PATH_MAX];
        char file[PATH_MAX + 16];       /* mount_point/file, 8 KiB, regular */
} StallFs;

/*
 * Mount it on a new directory below @dir. Returns 0; -ENODEV without FUSE
 * or -EPERM without the privilege to mount (the caller skips then); other
 * errors fail.
 */
int stall_fs_mount(StallFs *fs, const char *dir);

/* Wait until a read of the file is being held. Returns 0 or -ETIMEDOUT. */
int stall_fs_wait_read(StallFs *fs, int timeout_ms);

/* Abort the file system: held reads fail with ENOTCONN. Then unmount it. */
void stall_fs_unmount(StallFs *fs);
