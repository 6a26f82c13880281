/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The PROCMAP_QUERY ioctl of /proc/PID/maps (Linux 6.11), laid out exactly
 * as in the kernel's include/uapi/linux/fs.h. Distribution headers older
 * than 6.11 lack it, so we carry our own copy. The kernel copies at most
 * @size bytes in and out, so this struct stays compatible with kernels that
 * know a shorter or longer version of it.
 */

#include <linux/ioctl.h>
#include <stdint.h>

#define PROCFS_IOCTL_MAGIC 'f'

enum {
        /* Filter flags, and the VMA permission bits reported in vma_flags. */
        PROCMAP_QUERY_VMA_READABLE       = 0x01,
        PROCMAP_QUERY_VMA_WRITABLE       = 0x02,
        PROCMAP_QUERY_VMA_EXECUTABLE     = 0x04,
        PROCMAP_QUERY_VMA_SHARED         = 0x08,
        /* Return the VMA covering query_addr or, if none, the next one. */
        PROCMAP_QUERY_COVERING_OR_NEXT_VMA = 0x10,
        /* Only consider file-backed VMAs. */
        PROCMAP_QUERY_FILE_BACKED_VMA    = 0x20,
};

struct procmap_query {
        uint64_t size;                  /* in: sizeof(struct procmap_query) */
        uint64_t query_flags;           /* in: PROCMAP_QUERY_* */
        uint64_t query_addr;            /* in */
        uint64_t vma_start;             /* out: inclusive */
        uint64_t vma_end;               /* out: exclusive */
        uint64_t vma_flags;             /* out: PROCMAP_QUERY_VMA_* */
        uint64_t vma_page_size;         /* out */
        uint64_t vma_offset;            /* out: file offset of vma_start, in bytes */
        uint64_t inode;                 /* out: 0 without a backing file */
        uint32_t dev_major;             /* out */
        uint32_t dev_minor;             /* out */
        uint32_t vma_name_size;         /* in: buffer size; out: bytes used incl. NUL, 0 if none */
        uint32_t build_id_size;         /* in: buffer size; out: bytes used, 0 if none */
        uint64_t vma_name_addr;         /* in: user buffer for the name, or 0 */
        uint64_t build_id_addr;         /* in: user buffer for the build ID, or 0 */
};

#define PROCMAP_QUERY _IOWR(PROCFS_IOCTL_MAGIC, 17, struct procmap_query)

_Static_assert(sizeof(struct procmap_query) == 104, "struct procmap_query must match the kernel's");
_Static_assert(PROCMAP_QUERY == 0xC0686611, "PROCMAP_QUERY must match the kernel's");
