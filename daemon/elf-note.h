/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Reading the GNU build ID of an ELF image, and the facts a symbolizer
 * needs of it (elf_read_info(), below).
 *
 * The image is reached through a read callback so the same bounds-checked
 * parser serves files (pread), another process's memory (/proc/PID/mem,
 * for the vDSO) and in-memory buffers (tests, fuzzing). Both ELF classes
 * and both byte orders are understood. The parser trusts no field of the
 * image: every offset and size is checked against @size before use, and
 * the work one image can cause is bounded by the limits below.
 */

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"

/* Longest build ID we keep. GNU ld writes 16 (md5/uuid) or 20 (sha1). */
#define BUILD_ID_MAX 64

/*
 * Largest program header table (e_phnum times e_phentsize, in bytes) we
 * read; it is read whole, in one call of the read callback. That is 1170
 * ELF64 or 2048 ELF32 headers of the standard size, where linkers emit a
 * dozen or so. The kernel's ELF loader refuses a larger table
 * (load_elf_phdrs()), so no program it executes has one; ld.so has no
 * such cap, but no toolchain makes libraries that would need it.
 */
#define ELF_PHDR_TABLE_MAX (64U * 1024U)

/*
 * Most PT_NOTE program headers looked at, and most bytes of their
 * segments read in all, per image. Each segment is read whole, in one
 * call of the read callback, and its notes are walked in memory. Real
 * images have one to three PT_NOTE segments of a few hundred bytes at
 * most (build ID, ABI tag, GNU properties, package metadata); only core
 * files carry big ones, and no build ID of their own in them.
 */
#define ELF_PT_NOTE_MAX 16U
#define ELF_NOTE_BYTES_MAX (64U * 1024U)

/*
 * The most one parse of one image costs, whatever the image claims:
 * calls of the read callback, and bytes asked for in all. They are
 * e_ident (16 bytes), the ELF header (up to 64), sh_info of section header
 * 0 (4, only for PN_XNUM), the program header table, and one read per
 * PT_NOTE segment looked at. A caller that reads many images in one
 * request budgets with these. Memory held at once is at most
 * ELF_PHDR_TABLE_MAX + ELF_NOTE_BYTES_MAX bytes (the table and one
 * segment), all freed before the parse returns.
 */
#define ELF_READS_MAX (4U + ELF_PT_NOTE_MAX)
#define ELF_BYTES_MAX (16U + 64U + 4U + ELF_PHDR_TABLE_MAX + ELF_NOTE_BYTES_MAX)

/*
 * Read exactly @n bytes at offset @off of the image into @buf. Returns 0
 * or a negative errno (a short read is -EIO). The parser never asks for
 * bytes past the @size it was given.
 */
typedef int (*ElfReadFn)(void *userdata, uint64_t off, void *buf, size_t n);

/*
 * Find the NT_GNU_BUILD_ID note in the PT_NOTE segments of the image of
 * @size bytes read through @read. On success copies the build ID to @ret
 * and returns its length (1..BUILD_ID_MAX); returns 0 when the image is a
 * valid ELF file without a build ID. Calls @read at most ELF_READS_MAX
 * times, for at most ELF_BYTES_MAX bytes in all.
 *
 * The first GNU build-ID note (name "GNU", type NT_GNU_BUILD_ID) found
 * walking the program headers in order wins; headers after it are not
 * looked at. @ret is written only when a build ID is returned.
 *
 * Errors:
 *   -ENOEXEC  not an ELF image: shorter than the 4 magic bytes, bad
 *             magic, or unknown EI_CLASS or EI_DATA
 *   -EBADMSG  malformed: e_ident or the ELF header truncated; the program
 *             header table, a PT_NOTE segment, or section header 0 (for
 *             PN_XNUM) out of bounds; e_phentsize smaller than a program
 *             header; a note name or descriptor running past its segment;
 *             a GNU build-ID note with an empty descriptor or one longer
 *             than BUILD_ID_MAX; a program header table larger than
 *             ELF_PHDR_TABLE_MAX; before the build ID, more than
 *             ELF_PT_NOTE_MAX PT_NOTE headers or PT_NOTE segments of more
 *             than ELF_NOTE_BYTES_MAX bytes in all
 *   -ENOMEM   no memory for the program header table or a note segment
 *   other     passed up from @read
 */
int elf_read_build_id(ElfReadFn read, void *userdata, uint64_t size, uint8_t ret[static BUILD_ID_MAX]);

/* elf_read_build_id() on an in-memory image. */
int elf_build_id_from_buffer(const void *buf, size_t size, uint8_t ret[static BUILD_ID_MAX]);

/*
 * elf_read_build_id() on the image of @size bytes at offset @base of @fd,
 * read with pread(). Works for regular files (@base 0, @size from fstat)
 * and for /proc/PID/mem (@base the mapping's start address). @fd is
 * borrowed, not closed; its file position is not changed. Each read of
 * the parser is one pread(), repeated for the rest only when it returns
 * short or is interrupted (a page of /proc/PID/mem, a signal).
 *
 * Errors, besides those of elf_read_build_id():
 *   -EBADF    @fd is negative (or not open: from pread())
 *   -EINVAL   @base + @size does not fit in 64 bits
 *   -EIO      the file ended before @size bytes (also: a page of
 *             /proc/PID/mem could not be read)
 *   other     -errno from pread(), e.g. -EACCES
 */
int elf_build_id_from_fd(int fd, uint64_t base, uint64_t size, uint8_t ret[static BUILD_ID_MAX]);

/*
 * ELF facts: one bounded parse of an image for what a symbolizer needs of
 * it besides the addresses: its type, its PT_LOAD segments (to turn file
 * offsets into ELF virtual addresses), its GNU and Go build IDs and the
 * systemd package note, and on request its htlhash.
 *
 * Notes are looked for in the PT_NOTE segments first, then, for those
 * still missing, in the SHT_NOTE sections the section header table
 * lists, so that an image whose note is in a section no segment covers
 * keeps it. Sections lying inside a PT_NOTE segment already walked are
 * not read again.
 */

typedef enum ElfType {
        ELF_TYPE_NOT_ELF,       /* no ELF magic, or an unknown EI_CLASS or EI_DATA */
        ELF_TYPE_MALFORMED,     /* ELF magic, but the ELF header or program header table does not hold */
        ELF_TYPE_EXEC,          /* ET_EXEC */
        ELF_TYPE_DYN,           /* ET_DYN: PIE executables and shared libraries */
        ELF_TYPE_OTHER,         /* any other e_type: ET_REL, ET_CORE, ... */
        _ELF_TYPE_MAX,
        _ELF_TYPE_INVALID = -EINVAL,
} ElfType;

/* "not-elf", "malformed", "exec", "dyn", "other". */
const char *elf_type_to_string(ElfType t);
ElfType elf_type_from_string(const char *s);

/* The PT_LOAD headers kept, in program header order; more are counted in loads_truncated. */
#define ELF_LOAD_MAX 64U
/* Longest Go build ID kept; longer ones, or any not printable ASCII, are ignored. */
#define GO_BUILD_ID_MAX 128U
/* Largest package note descriptor parsed, and longest string field of it kept. */
#define ELF_PACKAGE_NOTE_MAX (4U * 1024U)
#define ELF_PACKAGE_STRING_MAX 256U
/* Largest section header table read (1024 ELF64 headers), and most SHT_NOTE sections looked at. */
#define ELF_SHDR_TABLE_MAX (64U * 1024U)
#define ELF_SH_NOTE_MAX 16U
/* The htlhash: the first HTLHASH_SIZE bytes of a SHA-256 over HTLHASH_CHUNK bytes at each end. */
#define HTLHASH_SIZE 16U
#define HTLHASH_CHUNK 4096U

/*
 * The most elf_read_info() costs, whatever the image claims: the reads of
 * elf_read_build_id(), one for the section header table, one per SHT_NOTE
 * section looked at, two for the htlhash. The note bytes budget
 * (ELF_NOTE_BYTES_MAX) is shared by segments and sections.
 */
#define ELF_INFO_READS_MAX (ELF_READS_MAX + 1U + ELF_SH_NOTE_MAX + 2U)
#define ELF_INFO_BYTES_MAX (ELF_BYTES_MAX + ELF_SHDR_TABLE_MAX + 2U * HTLHASH_CHUNK)

typedef struct ElfLoad {
        uint64_t offset;        /* p_offset */
        uint64_t vaddr;         /* p_vaddr */
        uint64_t filesz;        /* p_filesz: the bytes of the segment that are in the file */
        uint64_t memsz;         /* p_memsz */
        uint32_t flags;         /* p_flags: PF_R, PF_W, PF_X */
} ElfLoad;

/* The string fields of the package note kept, by their JSON key (elf_package_field_to_string()). */
typedef enum ElfPackageField {
        ELF_PACKAGE_TYPE,               /* "type" */
        ELF_PACKAGE_NAME,               /* "name" */
        ELF_PACKAGE_VERSION,            /* "version" */
        ELF_PACKAGE_ARCHITECTURE,       /* "architecture" */
        ELF_PACKAGE_OS,                 /* "os" */
        ELF_PACKAGE_OS_VERSION,         /* "osVersion" */
        ELF_PACKAGE_DEBUG_INFO_URL,     /* "debugInfoUrl" */
        _ELF_PACKAGE_FIELD_MAX,
        _ELF_PACKAGE_FIELD_INVALID = -EINVAL,
} ElfPackageField;

const char *elf_package_field_to_string(ElfPackageField f);
ElfPackageField elf_package_field_from_string(const char *s);

/*
 * What one parse found. Immutable once returned and reference counted
 * (atomically), so that a cache and any number of answers, in any
 * threads, can share one.
 */
typedef struct ElfInfo {
        unsigned n_ref;
        ElfType type;
        bool loads_truncated;           /* more PT_LOAD headers than ELF_LOAD_MAX */
        bool has_htlhash;
        uint8_t build_id_len;           /* 0: none found */
        uint8_t build_id[BUILD_ID_MAX];
        uint8_t htlhash[HTLHASH_SIZE];
        size_t n_loads;
        ElfLoad *loads;
        char *go_build_id;              /* NULL: none */
        char *package[_ELF_PACKAGE_FIELD_MAX];  /* NULL: missing, not a string, or too long */
        size_t memory;                  /* bytes held, this struct included */
} ElfInfo;

ElfInfo *elf_info_ref(ElfInfo *i);
/* Drop a reference; frees on the last. Accepts NULL; returns NULL. */
ElfInfo *elf_info_unref(ElfInfo *i);
DEFINE_CLEANUP(ElfInfo *, elf_info_unref);

enum {
        ELF_INFO_HTLHASH = 1 << 0,      /* compute the htlhash, for any file, ELF or not */
};

/*
 * Parse the image of @size bytes read through @read. On success returns 0
 * and a new ElfInfo in *ret, also for an image that is not ELF or is
 * malformed (see ElfType; such an image has no loads and no notes, but an
 * htlhash when asked). Calls @read at most ELF_INFO_READS_MAX times for
 * at most ELF_INFO_BYTES_MAX bytes in all.
 *
 * The notes are best effort, unlike elf_read_build_id(): a PT_NOTE segment
 * or SHT_NOTE section out of bounds or over the budgets above is not
 * read, and a walk of notes stops at the first note that runs past its
 * segment or section; what was found stays. The first note of each kind
 * wins. A GNU build ID longer than BUILD_ID_MAX, a Go build ID longer than
 * GO_BUILD_ID_MAX or not printable ASCII, a package note over
 * ELF_PACKAGE_NOTE_MAX or not a JSON object are ignored. The section
 * header table is read only when a note is still missing after the
 * segments, and only with e_shnum (not the extended count of sh_size of
 * section 0).
 *
 * Errors:
 *   -ENOMEM   out of memory
 *   other     passed up from @read
 */
int elf_read_info(ElfReadFn read, void *userdata, uint64_t size, unsigned flags, ElfInfo **ret);

/* elf_read_info() on an in-memory image. */
int elf_info_from_buffer(const void *buf, size_t size, unsigned flags, ElfInfo **ret);

/* elf_read_info() on @fd, as elf_build_id_from_fd() reads it, with its errors. */
int elf_info_from_fd(int fd, uint64_t base, uint64_t size, unsigned flags, ElfInfo **ret);

/*
 * The ELF virtual address of file offset @offset: offset - p_offset +
 * p_vaddr of the first PT_LOAD, in program header order, that covers it,
 * i.e. with p_offset <= offset < p_offset + p_filesz. Bytes past p_filesz
 * (up to p_memsz, such as .bss) are not in the file, so no offset maps to
 * them. The sum is modulo 2^64, as the loader computes it. Returns 0 and
 * *ret, or:
 *   -ENOENT   no PT_LOAD covers @offset (always so for an image that is not ELF)
 *   -E2BIG    none of the ELF_LOAD_MAX PT_LOADs kept does, and there were more
 */
int elf_info_offset_to_vaddr(const ElfInfo *i, uint64_t offset, uint64_t *ret);
