/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Reading the GNU build ID of an ELF image.
 *
 * The image is reached through a read callback so the same bounds-checked
 * parser serves files (pread), another process's memory (/proc/PID/mem,
 * for the vDSO) and in-memory buffers (tests, fuzzing). Both ELF classes
 * and both byte orders are understood. The parser trusts no field of the
 * image: every offset and size is checked against @size before use, and
 * the work one image can cause is bounded by the limits below.
 */

#include <stddef.h>
#include <stdint.h>

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
