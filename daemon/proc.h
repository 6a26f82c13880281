/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * One target process and the normalization of its addresses.
 *
 * A Proc pins the process it was opened on: it holds a /proc/PID directory
 * fd (which never follows a reused pid) and a VMA source on its maps file
 * (which is bound to the address space it was opened on). When that address
 * space goes away, because the process exec'd, the next call re-attaches
 * through the pinned directory; if the process itself is gone, it looks the
 * pid up afresh and reports the new process's start time, or -ESTALE when
 * the caller pinned the old one. So an answer always comes with the start
 * time of the process it describes.
 *
 * Threads: a Proc is used by one thread at a time; different Procs may be
 * used by different threads at once, even on the same process, and may
 * share one BuildIdCache (see buildid-cache.h). The core keeps no other
 * state of its own: no globals, no static buffers.
 *
 * Errors shared by the calls below:
 *   -ESRCH       no such process
 *   -ENXIO       the process has no address space (kernel thread, zombie)
 *   -EACCES      not allowed to read the process's memory map
 *   -ESTALE      the pid now names another process than the pinned one
 *   -EINVAL      invalid argument
 *   -EOPNOTSUPP  the backend is IOCTL and the kernel lacks PROCMAP_QUERY
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "buildid-cache.h"
#include "macro.h"
#include "vma.h"

typedef struct Proc Proc;

/* Open process @pid with the concrete @backend (see vma_backend_resolve()). */
int proc_open(Proc **ret, pid_t pid, VmaBackend backend);
/* Open /proc/@pid (O_PATH): a handle on this process that never follows a reused pid. -ESRCH if none. */
int proc_open_dir(pid_t pid);
/* proc_open() on the open /proc/@pid directory @dir_fd, which it takes over, also on failure. */
int proc_open_at(Proc **ret, pid_t pid, int dir_fd, VmaBackend backend);
/*
 * A Proc on the open maps file @maps_fd alone (see vma_check_maps_fd()),
 * which it takes over, also on failure. It reads that address space and
 * no other: when it is gone, calls fail with -ESRCH. Without the process's
 * directory, nothing else of it is opened: build IDs are the kernel's
 * (ioctl backend) or none, no map_files paths; its pid and start time are
 * 0.
 */
int proc_open_maps(Proc **ret, int maps_fd, VmaBackend backend);
Proc *proc_free(Proc *p);
DEFINE_CLEANUP(Proc *, proc_free);

pid_t proc_pid(const Proc *p);
/* Counts attachments: it changes whenever a call had to attach to a new address space. */
unsigned proc_generation(const Proc *p);
/* The /proc/PID directory of the process attached to, for access checks; owned by @p. */
int proc_dir_fd(const Proc *p);
/* Start time (clock ticks after boot, field 22 of /proc/PID/stat) of the process attached to. */
uint64_t proc_start_time(const Proc *p);

/*
 * Read the start time, state and flags of the process behind the open
 * /proc/PID directory @dir_fd. Returns 0; -ESRCH if it is gone; -ENXIO if it
 * has no address space; -EBADMSG if the stat file cannot be parsed.
 */
int proc_read_start_time(int dir_fd, uint64_t *ret);

typedef enum NormKind {
        NORM_MODULE,            /* normalized: module index and file offset */
        NORM_UNMAPPED,          /* no VMA covers the address */
        NORM_ANONYMOUS,         /* the VMA has no backing file */
        NORM_SPECIAL,           /* a kernel special mapping: [heap], [stack], [vvar], ... */
        NORM_EXITED,            /* not known: the process exited, only its executable file mappings were kept */
        _NORM_KIND_MAX,
        _NORM_KIND_INVALID = -EINVAL,
} NormKind;

const char *norm_kind_to_string(NormKind k);
NormKind norm_kind_from_string(const char *s);

/*
 * Whether a result has an ELF virtual address (NormResult.vaddr), and why
 * not. Only results of kind NORM_MODULE of a call with NORMALIZE_ELF get
 * anything but NONE. The module-level reasons (UNREADABLE, SKIPPED) are
 * also in NormModule.elf_status.
 */
typedef enum NormVaddr {
        NORM_VADDR_NONE,        /* not asked for (no NORMALIZE_ELF), or not a NORM_MODULE result */
        NORM_VADDR_OK,          /* vaddr holds the ELF virtual address of the offset */
        NORM_VADDR_NOT_ELF,     /* the file is not ELF, or its headers are malformed */
        NORM_VADDR_NOT_LOADED,  /* no PT_LOAD covers the offset within p_filesz (or the image has
                                 * more than ELF_LOAD_MAX PT_LOADs, none of those kept does) */
        NORM_VADDR_UNREADABLE,  /* the file's headers could not be read: no access to the file, it
                                 * changed meanwhile, or a Proc on a maps fd alone (no files read) */
        NORM_VADDR_SKIPPED,     /* not read: the call reached max_build_id_reads */
        _NORM_VADDR_MAX,
        _NORM_VADDR_INVALID = -EINVAL,
} NormVaddr;

/* "none", "ok", "not-elf", "not-loaded", "unreadable", "skipped". */
const char *norm_vaddr_to_string(NormVaddr v);
NormVaddr norm_vaddr_from_string(const char *s);

typedef struct NormResult {
        NormKind kind;
        uint32_t module;        /* index into Normalization.modules, for NORM_MODULE */
        uint64_t offset;        /* file offset, or offset into the vDSO image */
        uint64_t vaddr;         /* with vaddr_status NORM_VADDR_OK: the ELF virtual address, see
                                 * elf_info_offset_to_vaddr(); else 0 */
        NormVaddr vaddr_status;
} NormResult;

/*
 * Names and deletion. The core settles what vma.h leaves open, for file
 * VMAs, in NormModule.path and .deleted and in the Vma given to ProcVmaFn:
 *
 *   - deleted means the name no longer leads to the mapped file: it was
 *     unlinked, or replaced (say, renamed over). The kernel marks such a
 *     name with " (deleted)"; the suffix stays part of the name instead
 *     when that name, resolved inside the process's root, leads to the
 *     mapped file (same device and inode), with or without map_files.
 *   - With map_files (CAP_CHECKPOINT_RESTORE or CAP_SYS_ADMIN), the text
 *     backend reads a name that printed a "\012" back from the link, so
 *     it is exact.
 *
 * What remains ambiguous: without map_files, a newline in a text
 * backend's name may have been a literal "\012" in the file's name; and a
 * live file whose own name ends in " (deleted)" but cannot be reached
 * under that name from the process's root (the names are relative to our
 * root, so for a process in a chroot) is reported deleted, suffix removed.
 */

typedef struct NormModule {
        char *path;             /* as the process sees it; "[vdso]" for the vDSO */
        char *map_files;        /* "/proc/PID/map_files/START-END", when asked for */
        char *host_path;        /* not filled by the core: a caller's, freed with the rest */
        uint64_t inode;
        uint32_t dev_major;
        uint32_t dev_minor;
        bool deleted;           /* the path no longer leads to the file, see above */
        bool vdso;
        size_t build_id_len;    /* 0: not asked for, or not available */
        uint8_t build_id[BUILD_ID_MAX];
        bool build_id_skipped;  /* not read: the call reached max_build_id_reads */
        /*
         * With NORMALIZE_ELF: the file's (or vDSO image's) ELF facts,
         * shared with the cache, immutable, unref'd with the rest: its
         * type, PT_LOADs, GNU and Go build IDs, package note fields, and
         * with NORMALIZE_HTLHASH its htlhash (for files, not the vDSO;
         * has_htlhash may also be set without the flag, by a cache entry
         * read with it: encode it only when asked).
         * NULL when not asked for or not read; elf_status says which:
         * NONE, OK (elf set), UNREADABLE or SKIPPED.
         */
        ElfInfo *elf;
        NormVaddr elf_status;
} NormModule;

typedef struct Normalization {
        pid_t pid;
        uint64_t start_time;    /* of the process the answer describes */
        bool reattached;        /* the address space changed since the Proc's last answer */
        size_t n_lookups;       /* VMA lookups this batch cost */
        size_t n_results;       /* == number of input addresses, in input order */
        NormResult *results;
        size_t n_modules;       /* each distinct file once, in the order of its lowest address */
        NormModule *modules;
        size_t n_build_ids_skipped;     /* modules with build_id_skipped */
        VmaBackend strategy;    /* how the batch read the map: IOCTL or TEXT, see NormalizeOptions */
} Normalization;

Normalization *normalization_free(Normalization *n);

/*
 * Set @res->vaddr and ->vaddr_status from its offset and module @m (its
 * ->elf and ->elf_status), as proc_normalize() does with NORMALIZE_ELF.
 */
void norm_result_set_vaddr(const NormModule *m, NormResult *res);
DEFINE_CLEANUP(Normalization *, normalization_free);

enum {
        NORMALIZE_BUILD_IDS     = 1 << 0,       /* fill NormModule.build_id */
        NORMALIZE_MAP_FILES     = 1 << 1,       /* fill NormModule.map_files */
        NORMALIZE_PIN           = 1 << 2,       /* fail with -ESTALE unless start time matches */
        /*
         * Fill NormModule.elf and each NORM_MODULE result's vaddr. Costs a
         * read of each file's headers (the kernel gives build IDs, not
         * the rest), through the same checked open as build IDs read
         * without the kernel, counted in max_build_id_reads, and
         * remembered in build_id_cache. With NORMALIZE_BUILD_IDS too, a
         * module whose facts were read takes its build ID from them,
         * without a second read. A Proc from proc_open_maps() reads no
         * files: its file modules are NORM_VADDR_UNREADABLE (the vDSO is
         * read from memory only with a process directory too).
         */
        NORMALIZE_ELF           = 1 << 3,
        /* With NORMALIZE_ELF (implied): also compute the htlhash of each file (ElfInfo.htlhash). */
        NORMALIZE_HTLHASH       = 1 << 4,
};

typedef struct NormalizeOptions {
        unsigned flags;         /* NORMALIZE_* */
        uint64_t start_time;    /* with NORMALIZE_PIN */
        BuildIdCache *build_id_cache;   /* optional: remembers build IDs across calls */
        /*
         * How many images (files, the vDSO) one call may read for build
         * IDs and, with NORMALIZE_ELF, for ELF facts (one read of a file
         * serves both); 0: no limit. Cache hits are not reads, nor is the vDSO once
         * the Proc has read it in this address space; reads over every pass
         * of a call count (an exec during it starts it over). Past the
         * limit, modules get no build ID and are marked build_id_skipped,
         * so that a caller can tell "not read" from "none"; with
         * NORMALIZE_ELF their elf_status is NORM_VADDR_SKIPPED.
         */
        size_t max_build_id_reads;
        /* proc_foreach_vma(): walk from the VMA that covers or follows this address. */
        uint64_t start;
        /*
         * proc_normalize() on a Proc with the ioctl backend: how the batch
         * reads the map. AUTO (the default): whichever the Proc's costs so
         * far predict to be cheaper, see proc_set_costs(); IOCTL: one
         * ioctl per VMA; TEXT: one read of the maps file, up to the
         * highest address. A Proc with the text backend always reads the
         * text, and refuses IOCTL with -EOPNOTSUPP. The answer is the
         * same either way (see "Names and deletion" above, and proc.c).
         */
        VmaBackend strategy;
} NormalizeOptions;

/*
 * Normalize @n_addrs addresses, in any order and with duplicates, of the
 * process. Addresses in one VMA cost one lookup. On success *ret holds one
 * result per address in input order, to be freed with normalization_free().
 * Build ID failures are not errors: the module just has none. Besides the
 * shared errors: -EOPNOTSUPP for the IOCTL strategy on a text Proc,
 * -EINVAL for a strategy that is none of AUTO, IOCTL and TEXT.
 */
int proc_normalize(Proc *p, const uint64_t *addrs, size_t n_addrs, const NormalizeOptions *opts,
                   Normalization **ret);

/*
 * The automatic strategy. A Proc with the ioctl backend keeps running
 * estimates (moving averages) of what one ioctl lookup costs and what one
 * byte of maps text costs to read and parse, measured around that work in
 * its batches, and what its text passes saw of the map (where its lines
 * lie). Each batch then predicts both costs: the VMAs it touches times
 * the lookup, against the bytes up to its highest address times the byte.
 * Before it has measured the ioctl, it takes the ioctl; now and then it
 * tries the other, so that neither estimate goes stale: after 16 batches
 * without a measurement if its prediction is within twice the choice's,
 * the later the further off it is (once in 8r batches at most for r
 * times the choice); a text pass that reads past twice what the ioctl was
 * predicted to cost goes on with the ioctl. A slow measurement raises an
 * estimate by a quarter at most, so that one noisy batch does not tip it.
 *
 * proc_set_costs() replaces the estimates with @ioctl_ns_per_lookup and
 * @text_ns_per_byte and keeps them fixed, without trials: for tests and
 * benchmarks, whose choices must not depend on the machine. Returns
 * -EINVAL for a cost that is not positive.
 */
int proc_set_costs(Proc *p, double ioctl_ns_per_lookup, double text_ns_per_byte);

enum {
        PROC_LIST_EXEC_ONLY     = 1 << 0,       /* only VMAs with VMA_PERM_EXEC */
        PROC_LIST_BUILD_IDS     = 1 << 1,       /* fill Vma.build_id for file-backed VMAs */
        PROC_LIST_RESTART       = 1 << 2,       /* @fn takes NULL: the walk may start over */
        PROC_LIST_EXEC_BUILD_IDS = 1 << 3,      /* with PROC_LIST_BUILD_IDS: only for VMAs with VMA_PERM_EXEC */
        /*
         * With PROC_LIST_BUILD_IDS: fill Vma.elf_type of file-backed VMAs
         * and the vDSO from their ELF facts, read as NORMALIZE_ELF reads
         * them (the same cache and read budget); ELF_TYPE_NOT_ELF (0) when
         * not known.
         */
        PROC_LIST_ELF           = 1 << 4,
};

/*
 * Called once per VMA in address order; a negative return stops the walk
 * and is returned. @v and its name are valid during the call only.
 *
 * With PROC_LIST_RESTART, @v may also be NULL: the process exec'd during
 * the walk, so the VMAs given so far belong to an address space that is
 * gone. @fn must discard all it was given (a negative return stops the
 * walk, as above); the walk then starts over, from the first address again, on
 * the new address space. That happens a few times at most, then the walk
 * fails with -ESRCH.
 */
typedef int (*ProcVmaFn)(const Vma *v, void *userdata);

/*
 * Walk the VMAs of the process, in one pass over one address space (what
 * it maps or unmaps meanwhile may or may not show), in address order and
 * never overlapping: a VMA that grew down over what was given already is
 * given from where the walk stands, as a split of it would be. When the address space
 * goes away (an exec) before @fn was called, the walk starts over on the
 * new one unseen; after, only with PROC_LIST_RESTART, else it fails with
 * -ESRCH. @opts may be NULL; its flags are not used, its pin, cache,
 * max_build_id_reads and start are.
 *
 * Returns the number of VMAs given with Vma.build_id_skipped set (0
 * without PROC_LIST_BUILD_IDS or max_build_id_reads), or what stopped the
 * walk: a negative return of @fn, or the errors of proc_normalize().
 */
int proc_foreach_vma(Proc *p, unsigned flags, const NormalizeOptions *opts, ProcVmaFn fn, void *userdata);
