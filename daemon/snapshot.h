/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * A snapshot of a process's executable file mappings, to answer for its
 * addresses after it exited.
 *
 * It keeps, per executable mapping of a file (the vDSO included), its
 * range, file offset, file identity, path and build ID, sorted by start,
 * with the paths in one blob, and a reference to the file's ELF facts
 * (shared with the build-ID cache, counted in its size); and the ranges of the process's other file
 * mappings, only to tell that an address there is not a change the
 * snapshot missed. Nothing else: anonymous and special mappings are not
 * kept, nor any data of the process.
 *
 * A snapshot never changes once taken, and is reference counted (the
 * count is atomic), so that threads may share one.
 *
 * Errors shared by the calls below: -EINVAL, -ENOMEM.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"
#include "proc.h"

typedef struct Snapshot Snapshot;

/*
 * Walk the process of @p once and keep its executable file mappings, with
 * their build IDs and ELF facts as proc_foreach_vma() reads them with
 * @opts (may be NULL: its pin, cache and max_build_id_reads are used) when
 * @opts is NULL or has NORMALIZE_BUILD_IDS in its flags; the files of the
 * other mappings are never read. @max_size (0: no limit) bounds what the snapshot may
 * hold: -E2BIG when it would hold more. Besides those, the errors of
 * proc_foreach_vma().
 */
int snapshot_take(Proc *p, const NormalizeOptions *opts, size_t max_size, Snapshot **ret);
Snapshot *snapshot_ref(Snapshot *s);
Snapshot *snapshot_unref(Snapshot *s);
DEFINE_CLEANUP(Snapshot *, snapshot_unref);

pid_t snapshot_pid(const Snapshot *s);
/* Of the process it was taken of. */
uint64_t snapshot_start_time(const Snapshot *s);
/* The executable file mappings it holds. */
size_t snapshot_n_mappings(const Snapshot *s);
/* Whether it was taken with build IDs. */
bool snapshot_has_build_ids(const Snapshot *s);
/* The heap bytes it holds, itself included. */
size_t snapshot_size(const Snapshot *s);

/*
 * Answer @n addresses as proc_normalize() would have answered them for the
 * process when the snapshot was taken: an address in an executable file
 * mapping is NORM_MODULE with its file offset, any other NORM_EXITED.
 * Modules are numbered as proc_normalize() numbers them, in the order of
 * their lowest address asked about; with NORMALIZE_BUILD_IDS in @flags
 * they carry the build IDs kept, and never map_files; with NORMALIZE_ELF,
 * of a snapshot taken with build IDs, their ELF facts, and each result
 * its ELF virtual address as proc_normalize() gives it. ->reattached is
 * false, ->n_lookups counts the mappings found, ->strategy is AUTO.
 */
int snapshot_normalize(const Snapshot *s, const uint64_t *addrs, size_t n, unsigned flags, Normalization **ret);

/*
 * Whether @n, a fresh answer of proc_normalize() for the @n_addrs
 * addresses @addrs of the same process, shows a mapping the snapshot
 * lacks: an answer from another address space (a different start time,
 * or ->reattached), or a NORM_MODULE result at an address that the
 * snapshot knows as no file mapping, or as another file or offset. Then
 * the caller takes a new one.
 */
bool snapshot_is_stale(const Snapshot *s, const uint64_t *addrs, size_t n_addrs, const Normalization *n);
