/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * VMA sources: the memory map of one process, read either with the
 * PROCMAP_QUERY ioctl or from the text of /proc/PID/maps, behind one
 * interface. Both answer the same question: "which VMA covers @addr, or
 * comes next after it?".
 */

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "elf-note.h"

typedef enum VmaBackend {
        VMA_BACKEND_AUTO,
        VMA_BACKEND_IOCTL,
        VMA_BACKEND_TEXT,
        _VMA_BACKEND_MAX,
        _VMA_BACKEND_INVALID = -EINVAL,
} VmaBackend;

const char *vma_backend_to_string(VmaBackend b);
VmaBackend vma_backend_from_string(const char *s);

/*
 * Probe whether this kernel has PROCMAP_QUERY, on /proc/self/maps. Returns
 * 1 if it does, 0 if the ioctl is unknown (ENOTTY), a negative errno if
 * the probe itself failed.
 */
int vma_backend_probe(void);

/*
 * Turn a requested backend into a concrete one: AUTO becomes IOCTL or TEXT
 * by probing. Returns -EOPNOTSUPP if IOCTL is requested but unsupported.
 * Callers probe once and keep the result.
 */
int vma_backend_resolve(VmaBackend requested, VmaBackend *ret);

/* Permission bits, as in the "rwxs" column of /proc/PID/maps (the parser relies on this order). */
enum {
        VMA_PERM_READ   = 1 << 0,
        VMA_PERM_WRITE  = 1 << 1,
        VMA_PERM_EXEC   = 1 << 2,
        VMA_PERM_SHARED = 1 << 3,
};

/* Convert PROCMAP_QUERY vma_flags to VMA_PERM_* bits; other bits are ignored. */
unsigned vma_flags_to_perms(uint64_t vma_flags);

typedef enum VmaKind {
        VMA_KIND_FILE,          /* backed by a file: name is its path */
        VMA_KIND_ANONYMOUS,     /* no name, or a user-given "[anon:...]" name */
        VMA_KIND_SPECIAL,       /* a kernel name such as "[heap]", "[stack]", "[vvar]" */
        VMA_KIND_VDSO,          /* "[vdso]" */
        _VMA_KIND_MAX,
        _VMA_KIND_INVALID = -EINVAL,
} VmaKind;

/* Classify a VMA from its name (" (deleted)" already removed) and inode. */
VmaKind vma_kind_from_name(const char *name, uint64_t inode);

typedef struct Vma {
        uint64_t start;                 /* inclusive */
        uint64_t end;                   /* exclusive */
        uint64_t offset;                /* file offset of start, in bytes */
        uint64_t inode;
        uint32_t dev_major;
        uint32_t dev_minor;
        unsigned perms;                 /* VMA_PERM_* */
        VmaKind kind;
        bool deleted;                   /* the name carried a " (deleted)" suffix */
        /*
         * NUL-terminated, without the " (deleted)" suffix; "" when the VMA
         * has no name. Owned by the source and valid until its next call.
         *
         * The kernel's names can be read two ways, and a source takes the
         * common reading, which proc.h refines:
         *   - a trailing " (deleted)" is taken for the kernel's mark of a
         *     name that no longer leads to the file; a live file whose own
         *     name ends so reads the same;
         *   - text backend: the kernel prints a newline in a name as
         *     "\012" and leaves backslashes alone, so "\012" is taken for a
         *     newline; a name holding those four characters reads the
         *     same. The ioctl backend's names are raw, without this doubt.
         */
        const char *name;
        size_t name_len;
        /* Filled only by the ioctl backend when asked for; 0 if unknown. */
        size_t build_id_len;
        uint8_t build_id[BUILD_ID_MAX];
        /* Never set by a source: proc_foreach_vma() did not read the build ID, for its cap. */
        bool build_id_skipped;
        /* Never set by a source: with PROC_LIST_ELF, the file's ElfType (elf-note.h); 0 if not known. */
        uint8_t elf_type;
        /*
         * Never set by a source: with PROC_LIST_ELF, the file's ELF facts,
         * borrowed for the callback (take a reference to keep them); NULL
         * if not read.
         */
        ElfInfo *elf;
} Vma;

/*
 * Parse one line of /proc/PID/maps. @line holds @len bytes without the
 * trailing newline and must be writable, including line[len]: the name is
 * NUL-terminated and unescaped in place, and ret->name points into @line.
 * Returns 0 or -EBADMSG for a malformed line.
 */
int vma_parse_maps_line(char *line, size_t len, Vma *ret);

typedef struct VmaSource VmaSource;

/* The text backend reads the maps file in chunks of this size, and the kernel prints whole chunks. */
#define VMA_TEXT_READ_SIZE (64U * 1024U)

enum {
        /* Ask the kernel for the build ID too (ioctl backend only); implies VMA_FIND_LIVE. */
        VMA_FIND_BUILD_ID = 1 << 0,
        /*
         * Ask the live map with the ioctl, also during a text pass, whose
         * place this leaves alone (ioctl backend only, else -EOPNOTSUPP).
         * Not counted in the pass's statistics.
         */
        VMA_FIND_LIVE     = 1 << 1,
};

/*
 * Whether @fd, which a client sent, is an open /proc/PID/maps (or
 * /proc/PID/task/TID/maps) that a source with @backend can read: open for
 * reading, and with the ioctl backend, one the kernel answers on. Nothing
 * is read from it with the text backend.
 *
 * Errors: -EBADF       not open for reading (O_PATH, write-only)
 *         -EMEDIUMTYPE not a file of /proc: a regular file, a socket...
 *         -ENOTTY      another file of /proc
 *         -ESRCH       the address space it was opened on is gone
 */
int vma_check_maps_fd(int fd, VmaBackend backend);

/*
 * Create a source reading the open /proc/PID/maps @maps_fd with the
 * concrete @backend (IOCTL or TEXT). Takes ownership of @maps_fd, also on
 * failure.
 */
int vma_source_new(VmaSource **ret, int maps_fd, VmaBackend backend);
VmaSource *vma_source_free(VmaSource *s);
VmaBackend vma_source_backend(const VmaSource *s);

/*
 * Drop the buffers passes and finds allocated (a name buffer, the text
 * window), keeping the fd and what text passes saw, so that an idle source
 * costs little. Invalidates the Vma last found; the next find needs a new
 * pass on a text source.
 */
void vma_source_release(VmaSource *s);

/*
 * Start a pass over the map. The text backend takes a fresh reading of the
 * file here; finds within one pass are cheapest in ascending address order
 * (one read of the file), but any order is correct. The ioctl backend reads
 * the live map on every find and has nothing to do here.
 *
 * Errors: -ESRCH  the address space the fd was opened on is gone (the
 *                 process exec'd or exited, or never had one); the ioctl
 *                 backend reports it from the first find instead
 */
int vma_source_begin(VmaSource *s);

/*
 * vma_source_begin() for a pass that reads the map with @how: TEXT, or
 * IOCTL if that is the source's backend. An ioctl source can run text
 * passes: its fd is the maps file, which it can read as well. In such a
 * pass, once more than @max_text_bytes (0: no limit) have been read, the
 * finds go on with the ioctl, so that a text pass costs what its caller
 * budgeted at most (plus one read) however the map grew.
 *
 * Errors: those of vma_source_begin(); -EOPNOTSUPP for IOCTL on a text
 * source; -ENOMEM.
 */
int vma_source_begin_pass(VmaSource *s, VmaBackend how, uint64_t max_text_bytes);

/* How the current pass reads the map now: TEXT, or IOCTL (also after a text pass went over its budget). */
VmaBackend vma_source_pass_backend(const VmaSource *s);

/*
 * What the finds of the current pass cost, measured with CLOCK_MONOTONIC
 * around the kernel calls and the parsing. Every VMA_STATS_IOCTL_SAMPLE-th
 * ioctl is timed, counted over all passes of the source (the first one
 * is), which is enough for a mean and keeps the clock out of the way;
 * text is timed wherever a find reads or parses a line. Finds with
 * VMA_FIND_LIVE or VMA_FIND_BUILD_ID are not counted.
 */
#define VMA_STATS_IOCTL_SAMPLE 4U
typedef struct VmaPassStats {
        size_t n_ioctls;                /* lookups with the ioctl */
        size_t n_ioctls_timed;
        uint64_t ioctl_ns;              /* spent in the timed ones */
        uint64_t text_bytes;            /* read from the maps file */
        uint64_t text_ns;               /* spent reading and parsing them */
} VmaPassStats;

void vma_source_pass_stats(const VmaSource *s, VmaPassStats *ret);

/*
 * How many bytes of the maps file a text pass reads to reach @addr, by
 * what the text passes so far saw of this map, in whole reads; 0 if no
 * text pass has read that far, or none ran yet. The map may have changed
 * since: this is an estimate, never a promise.
 */
uint64_t vma_source_text_bytes_to(const VmaSource *s, uint64_t addr);

/*
 * What text passes saw of the map, for estimates: the end of every
 * @stride-th line (lines 0, stride, 2 * stride, ...) in address order,
 * up to where they read. NULL before the first text pass.
 */
typedef struct VmaTextProfile {
        size_t n;
        size_t stride;                  /* a power of two */
        bool complete;                  /* a pass read to the end: total_bytes holds */
        uint64_t total_bytes;
        uint64_t reach_end;             /* the highest line end read so far */
        uint64_t reach_bytes;           /* and the bytes up to that line */
        uint64_t ends[64];
        uint64_t bytes[64];            /* of the file, up to and including that line */
} VmaTextProfile;

const VmaTextProfile *vma_source_text_profile(const VmaSource *s);

/*
 * Find the VMA covering @addr or, if none does, the next VMA above it.
 * Returns 1 and fills @ret, or 0 if no VMA lies at or above @addr.
 *
 * Errors: -ESRCH      address space gone, as above: the ioctl backend
 *                     tells on every find, the text backend when it
 *                     reaches the end of the map, which it checks is not
 *                     that of the address space (a gone one reads as
 *                     empty, so the text read so far may be cut short)
 *         -EBADMSG    the kernel produced a line we cannot parse (text)
 *         -EOPNOTSUPP the kernel lacks PROCMAP_QUERY (ioctl)
 */
int vma_source_find(VmaSource *s, uint64_t addr, unsigned flags, Vma *ret);
