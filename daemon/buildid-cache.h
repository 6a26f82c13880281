/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Build IDs and ELF facts (see ElfInfo in elf-note.h) of files already
 * seen, so that a file's build ID is asked of the kernel or read from the
 * file once, and its headers are read once, not once per request.
 *
 * A file is identified by device, inode number and change time: an inode
 * number is reused after its file is deleted, and a file rewritten in place
 * keeps it, but both change the ctime. "No build ID" is remembered too,
and so are facts that say "not ELF", "malformed" or "no notes".

Memory is bounded twice: by the number of files, and by the bytes the
entries hold (the ElfInfo's loads and strings included, see
ElfInfo.memory); past either, the least recently used go first.
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
        size_t bytes;           /* held by the entries */
        size_t max_bytes;
        uint64_t hits;
        uint64_t misses;
} BuildIdCacheStats;

/*
 * A cache of at most @max files. -EINVAL for 0. Its byte budget starts at
 * @max times BUILD_ID_CACHE_BYTES_PER_ENTRY.
 */
#define BUILD_ID_CACHE_BYTES_PER_ENTRY 2048U
int build_id_cache_new(BuildIdCache **ret, size_t max);
/* Set the byte budget, evicting down to it. -EINVAL for 0. */
int build_id_cache_set_max_bytes(BuildIdCache *c, size_t max_bytes);
BuildIdCache *build_id_cache_free(BuildIdCache *c);
DEFINE_CLEANUP(BuildIdCache *, build_id_cache_free);

/*
 * The build ID of @file: its length (0: the file has none), or -ENOENT if
 * not cached. An entry made by build_id_cache_insert_info() answers too,
 * with the ElfInfo's build ID.
 */
int build_id_cache_lookup(BuildIdCache *c, const FileIdentity *file, uint8_t ret[static BUILD_ID_MAX]);

/*
 * Remember the build ID of @file (@len 0: none). -EINVAL if @len > BUILD_ID_MAX, -ENOMEM.
 * The caller vouches that @id was read from the file @file names, which
 * is why @file should come from fstat() of the fd the build ID was read
 * through, not from an earlier look at a path.
 */
int build_id_cache_insert(BuildIdCache *c, const FileIdentity *file, const uint8_t *id, size_t len);

/*
 * The ELF facts of @file: 0 and a new reference in *ret (the caller
 * unrefs it), or -ENOENT if not cached, also when only its build ID is.
 */
int build_id_cache_lookup_info(BuildIdCache *c, const FileIdentity *file, ElfInfo **ret);

/*
 * Remember @info for @file, taking a reference of its own; the build ID
 * lookup then answers with @info's build ID. It replaces what was cached
 * for @file. Returns 0, -ENOMEM, or -E2BIG when the entry alone exceeds
 * the byte budget (nothing is cached then). The caller vouches for @file
 * as for build_id_cache_insert().
 */
int build_id_cache_insert_info(BuildIdCache *c, const FileIdentity *file, ElfInfo *info);

void build_id_cache_stats(const BuildIdCache *c, BuildIdCacheStats *ret);
