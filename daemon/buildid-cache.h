/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Build IDs of files already seen, so that a file's build ID is asked of
 * the kernel or read from the file once, not once per request.
 *
 * A file is identified by device, inode number and change time: an inode
 * number is reused after its file is deleted, and a file rewritten in place
 * keeps it, but both change the ctime. "No build ID" is remembered too.
 *
 * Thread safety: one cache may be shared by any number of threads; every
 * call below except build_id_cache_free() may run at the same time as
 * any other, each holding an internal lock only for its own short while.
 * build_id_cache_free() must run alone, once no other thread uses the
 * cache.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "elf-note.h"
#include "macro.h"

typedef struct FileIdentity {
        uint64_t inode;
        uint32_t dev_major;
        uint32_t dev_minor;
        int64_t ctime_sec;
        int64_t ctime_nsec;
} FileIdentity;

/* The identity of the file @st describes. */
FileIdentity file_identity_from_stat(const struct stat *st);
bool file_identity_equal(const FileIdentity *a, const FileIdentity *b);

typedef struct BuildIdCache BuildIdCache;

typedef struct BuildIdCacheStats {
        size_t size;
        size_t max;
        uint64_t hits;
        uint64_t misses;
} BuildIdCacheStats;

/* A cache of at most @max files. -EINVAL for 0. */
int build_id_cache_new(BuildIdCache **ret, size_t max);
BuildIdCache *build_id_cache_free(BuildIdCache *c);
DEFINE_CLEANUP(BuildIdCache *, build_id_cache_free);

/* The build ID of @file: its length (0: the file has none), or -ENOENT if not cached. */
int build_id_cache_lookup(BuildIdCache *c, const FileIdentity *file, uint8_t ret[static BUILD_ID_MAX]);

/*
 * Remember the build ID of @file (@len 0: none). -EINVAL if @len > BUILD_ID_MAX, -ENOMEM.
 * The caller vouches that @id was read from the file @file names, which
 * is why @file should come from fstat() of the fd the build ID was read
 * through, not from an earlier look at a path.
 */
int build_id_cache_insert(BuildIdCache *c, const FileIdentity *file, const uint8_t *id, size_t len);

void build_id_cache_stats(const BuildIdCache *c, BuildIdCacheStats *ret);
