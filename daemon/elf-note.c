/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * GNU build ID lookup in ELF images.
 *
 * The image is untrusted: it may be a file an unprivileged user planted or
 * the memory of a process we inspect, and every read of it may be a
 * syscall. So the parser reads the ELF header into a small stack buffer,
 * then the program header table and each PT_NOTE segment it looks at
 * whole, one read each, into heap buffers (up to 64 KiB each, too much to
 * take from a caller's stack; they are freed before we return), and walks
 * the notes in memory. The number and size of those reads are capped (see
 * elf-note.h), so one image costs a few reads whatever it claims. Fields
 * are decoded byte by byte in the image's byte order (never by casting a
 * struct over the bytes, which would break on the other byte order and on
 * misaligned data), and each offset and size is checked against the image
 * size before it is read.
 *
 * <elf.h> is used for constants and for the field offsets of its structs
 * (offsetof/sizeof), which are the on-disk layout by definition.
 */

#include <assert.h>
#include <elf.h>
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "elf-note.h"
#include "macro.h"

/*
 * elf-note.h spells out the bytes of the reads before the table, so that
 * it need not include <elf.h>: e_ident, the larger ELF header, sh_info.
 */
_Static_assert(ELF_BYTES_MAX == EI_NIDENT + sizeof(Elf64_Ehdr) + sizeof(Elf64_Word) +
               ELF_PHDR_TABLE_MAX + ELF_NOTE_BYTES_MAX, "ELF_BYTES_MAX out of date");

/* n_namesz, n_descsz, n_type: three 32-bit words in both classes. */
#define ELF_NHDR_SIZE 12U

/* The note name GNU tools use, with its terminating NUL (n_namesz 4). */
#define ELF_NOTE_NAME_GNU "GNU"
#define ELF_NOTE_NAME_GNU_SIZE sizeof(ELF_NOTE_NAME_GNU)

/*
 * Where the fields we need live in each class. Addresses, offsets and
 * sizes ("words") are 4 bytes in ELF32 and 8 in ELF64; the rest is the
 * same width in both. Note that Elf32_Phdr orders p_flags differently.
 */
typedef struct ElfLayout {
        size_t word;
        size_t ehdr_size;
        size_t e_phoff;
        size_t e_shoff;
        size_t e_phentsize;
        size_t e_phnum;
        size_t e_shentsize;
        size_t phdr_size;
        size_t p_type;
        size_t p_offset;
        size_t p_filesz;
        size_t p_align;
        size_t shdr_size;
        size_t sh_info;
} ElfLayout;

static const ElfLayout elf_layout_32 = {
        .word = 4,
        .ehdr_size = sizeof(Elf32_Ehdr),
        .e_phoff = offsetof(Elf32_Ehdr, e_phoff),
        .e_shoff = offsetof(Elf32_Ehdr, e_shoff),
        .e_phentsize = offsetof(Elf32_Ehdr, e_phentsize),
        .e_phnum = offsetof(Elf32_Ehdr, e_phnum),
        .e_shentsize = offsetof(Elf32_Ehdr, e_shentsize),
        .phdr_size = sizeof(Elf32_Phdr),
        .p_type = offsetof(Elf32_Phdr, p_type),
        .p_offset = offsetof(Elf32_Phdr, p_offset),
        .p_filesz = offsetof(Elf32_Phdr, p_filesz),
        .p_align = offsetof(Elf32_Phdr, p_align),
        .shdr_size = sizeof(Elf32_Shdr),
        .sh_info = offsetof(Elf32_Shdr, sh_info),
};

static const ElfLayout elf_layout_64 = {
        .word = 8,
        .ehdr_size = sizeof(Elf64_Ehdr),
        .e_phoff = offsetof(Elf64_Ehdr, e_phoff),
        .e_shoff = offsetof(Elf64_Ehdr, e_shoff),
        .e_phentsize = offsetof(Elf64_Ehdr, e_phentsize),
        .e_phnum = offsetof(Elf64_Ehdr, e_phnum),
        .e_shentsize = offsetof(Elf64_Ehdr, e_shentsize),
        .phdr_size = sizeof(Elf64_Phdr),
        .p_type = offsetof(Elf64_Phdr, p_type),
        .p_offset = offsetof(Elf64_Phdr, p_offset),
        .p_filesz = offsetof(Elf64_Phdr, p_filesz),
        .p_align = offsetof(Elf64_Phdr, p_align),
        .shdr_size = sizeof(Elf64_Shdr),
        .sh_info = offsetof(Elf64_Shdr, sh_info),
};

/* One parse: the reader and what e_ident told us. */
typedef struct ElfImage {
        ElfReadFn read;
        void *userdata;
        uint64_t size;
        const ElfLayout *layout;
        bool msb;
} ElfImage;

/* Decode an unsigned integer of @n bytes (at most 8) in the image's byte order. */
static uint64_t elf_image_decode(const ElfImage *img, const uint8_t *p, size_t n) {
        uint64_t v = 0;

        assert(n > 0 && n <= sizeof(uint64_t));

        for (size_t i = 0; i < n; i++) {
                size_t byte = img->msb ? i : n - 1 - i;

                v = (v << 8) | p[byte];
        }
        return v;
}

static uint32_t elf_image_get32(const ElfImage *img, const uint8_t *p) {
        return (uint32_t) elf_image_decode(img, p, 4);
}

static uint16_t elf_image_get16(const ElfImage *img, const uint8_t *p) {
        return (uint16_t) elf_image_decode(img, p, 2);
}

/* An address, offset or size: 4 bytes in ELF32, 8 in ELF64. */
static uint64_t elf_image_get_word(const ElfImage *img, const uint8_t *p) {
        return elf_image_decode(img, p, img->layout->word);
}

/* Whether [off, off + n) lies inside the image, written so that nothing can wrap. */
static bool elf_image_contains(const ElfImage *img, uint64_t off, uint64_t n) {
        return off <= img->size && n <= img->size - off;
}

/* The only way the parser touches the image: bounds first, then the callback. */
static int elf_image_read(const ElfImage *img, uint64_t off, void *buf, size_t n) {
        if (!elf_image_contains(img, off, n))
                return -EBADMSG;

        return img->read(img->userdata, off, buf, n);
}

/* Round @x up to @align (a power of two); false if that does not fit in 64 bits. */
static bool elf_align_up(uint64_t x, uint64_t align, uint64_t *ret) {
        if (x > UINT64_MAX - (align - 1))
                return false;

        *ret = ALIGN_POW2(x, align);
        return true;
}

/*
 * Check e_ident and pick the class layout and byte order. An input that
 * does not start with the ELF magic is "not ELF" (-ENOEXEC), including one
 * too short to hold the magic. An input with the magic but cut off before
 * the end of e_ident is an ELF file that is truncated (-EBADMSG). We do not
 * look at EI_VERSION or EI_OSABI: nothing we read depends on them.
 */
static int elf_image_identify(ElfImage *img) {
        uint8_t ident[EI_NIDENT];
        int r;

        if (img->size < SELFMAG)
                return -ENOEXEC;

        r = elf_image_read(img, 0, ident, MIN(img->size, (uint64_t) EI_NIDENT));
        if (r < 0)
                return r;

        if (memcmp(ident, ELFMAG, SELFMAG) != 0)
                return -ENOEXEC;
        if (img->size < EI_NIDENT)
                return -EBADMSG;

        switch (ident[EI_CLASS]) {
        case ELFCLASS32:
                img->layout = &elf_layout_32;
                break;
        case ELFCLASS64:
                img->layout = &elf_layout_64;
                break;
        default:
                return -ENOEXEC;
        }

        switch (ident[EI_DATA]) {
        case ELFDATA2LSB:
                img->msb = false;
                break;
        case ELFDATA2MSB:
                img->msb = true;
                break;
        default:
                return -ENOEXEC;
        }

        return 0;
}

/*
 * The number of program headers. When it does not fit in e_phnum, e_phnum
 * is PN_XNUM and the real count sits in sh_info of section header 0 (gABI
 * "extended program header numbering", used by large core files). That
 * section header must then exist and be whole.
 */
static int elf_image_count_phdrs(const ElfImage *img, const uint8_t *ehdr, uint64_t *ret) {
        const ElfLayout *l = img->layout;
        uint8_t info[4];
        uint64_t shoff;
        uint16_t phnum;
        int r;

        phnum = elf_image_get16(img, ehdr + l->e_phnum);
        if (phnum != PN_XNUM) {
                *ret = phnum;
                return 0;
        }

        shoff = elf_image_get_word(img, ehdr + l->e_shoff);
        if (shoff == 0)
                return -EBADMSG;
        if (elf_image_get16(img, ehdr + l->e_shentsize) < l->shdr_size)
                return -EBADMSG;
        if (!elf_image_contains(img, shoff, l->shdr_size))
                return -EBADMSG;

        r = elf_image_read(img, shoff + l->sh_info, info, sizeof(info));
        if (r < 0)
                return r;

        *ret = elf_image_get32(img, info);
        return 0;
}

/*
 * Walk the notes of one PT_NOTE segment, the @size bytes at @notes. Each
 * note is a 12-byte header, the name and the descriptor. The name starts
 * right after the header; the descriptor and the next note start at the
 * next multiple of @align from the segment start (4, or 8 for segments
 * with p_align 8 such as .note.gnu.property on x86-64).
 *
 * Like the kernel, we stop when less than a whole header is left: those
 * bytes are taken as padding, and the last note's descriptor need not be
 * padded either. A name or descriptor running past the segment end is
 * -EBADMSG. A GNU build-ID note whose descriptor is empty or longer than
 * BUILD_ID_MAX is -EBADMSG too, rather than skipped: no linker writes one,
 * and returning 0 for it would claim "no build ID" for an image that does
 * carry one we cannot hold.
 *
 * The walk needs no bound of its own: each note takes at least 12 bytes,
 * and the caller bounds the bytes.
 *
 * Returns the build ID length with the ID in @ret (written only then), 0
 * if the segment has none, or -EBADMSG.
 */
static int elf_image_find_note(
                const ElfImage *img,
                const uint8_t *notes,
                uint64_t size,
                uint64_t align,
                uint8_t ret[static BUILD_ID_MAX]) {

        uint64_t pos = 0;

        for (;;) {
                uint64_t name_off, desc_off, next;
                uint32_t namesz, descsz, type;

                if (size - pos < ELF_NHDR_SIZE)
                        return 0;

                namesz = elf_image_get32(img, notes + pos);
                descsz = elf_image_get32(img, notes + pos + 4);
                type = elf_image_get32(img, notes + pos + 8);

                /* All positions are relative to the segment and stay <= size. */
                name_off = pos + ELF_NHDR_SIZE;
                if (namesz > size - name_off)
                        return -EBADMSG;

                if (!elf_align_up(name_off + namesz, align, &desc_off) ||
                    desc_off > size ||
                    descsz > size - desc_off)
                        return -EBADMSG;

                if (type == NT_GNU_BUILD_ID && namesz == ELF_NOTE_NAME_GNU_SIZE &&
                    memcmp(notes + name_off, ELF_NOTE_NAME_GNU, ELF_NOTE_NAME_GNU_SIZE) == 0) {
                        if (descsz == 0 || descsz > BUILD_ID_MAX)
                                return -EBADMSG;

                        memcpy(ret, notes + desc_off, descsz);
                        return (int) descsz;
                }

                if (!elf_align_up(desc_off + descsz, align, &next) || next >= size)
                        return 0;
                pos = next;
        }
}

int elf_read_build_id(ElfReadFn read, void *userdata, uint64_t size, uint8_t ret[static BUILD_ID_MAX]) {
        ElfImage img = {
                .read = read,
                .userdata = userdata,
                .size = size,
        };
        uint8_t ehdr[sizeof(Elf64_Ehdr)];
        _cleanup_free_ uint8_t *phdrs = NULL;
        uint64_t phoff, phnum, table_size, note_bytes_left = ELF_NOTE_BYTES_MAX;
        unsigned pt_notes = 0;
        uint16_t phentsize;
        const ElfLayout *l;
        int r;

        assert(read);
        assert(ret);

        r = elf_image_identify(&img);
        if (r < 0)
                return r;
        l = img.layout;

        if (size < l->ehdr_size)
                return -EBADMSG;
        r = elf_image_read(&img, 0, ehdr, l->ehdr_size);
        if (r < 0)
                return r;

        r = elf_image_count_phdrs(&img, ehdr, &phnum);
        if (r < 0)
                return r;

        /* Relocatable objects have no program headers (and e_phentsize 0): no build ID to find. */
        if (phnum == 0)
                return 0;

        /*
         * A larger e_phentsize is allowed (the gABI gives the entry size for
         * that reason); we read the whole table and use the part we know of
         * each entry. phnum < 2^32 and phentsize < 2^16, so the product
         * cannot wrap. Both checks come before the allocation: a hostile
         * count costs neither memory nor a read.
         */
        phoff = elf_image_get_word(&img, ehdr + l->e_phoff);
        phentsize = elf_image_get16(&img, ehdr + l->e_phentsize);
        if (phentsize < l->phdr_size)
                return -EBADMSG;
        table_size = phnum * phentsize;
        if (table_size > ELF_PHDR_TABLE_MAX)
                return -EBADMSG;
        if (!elf_image_contains(&img, phoff, table_size))
                return -EBADMSG;

        phdrs = malloc(table_size);
        if (!phdrs)
                return -ENOMEM;
        r = elf_image_read(&img, phoff, phdrs, table_size);
        if (r < 0)
                return r;

        for (uint64_t i = 0; i < phnum; i++) {
                const uint8_t *phdr = phdrs + i * phentsize;
                _cleanup_free_ uint8_t *notes = NULL;
                uint64_t seg_off, seg_size, align;

                if (elf_image_get32(&img, phdr + l->p_type) != PT_NOTE)
                        continue;

                /*
                 * Every PT_NOTE header counts, even one that costs no read:
                 * the rule stays simple, and real images have two or three.
                 */
                if (pt_notes >= ELF_PT_NOTE_MAX)
                        return -EBADMSG;
                pt_notes++;

                seg_off = elf_image_get_word(&img, phdr + l->p_offset);
                seg_size = elf_image_get_word(&img, phdr + l->p_filesz);
                align = elf_image_get_word(&img, phdr + l->p_align);

                if (!elf_image_contains(&img, seg_off, seg_size))
                        return -EBADMSG;

                /* Less than a note header holds no note: nothing to read. */
                if (seg_size < ELF_NHDR_SIZE)
                        continue;

                /*
                 * The budget is shared by the segments, so that many headers
                 * pointing at one big segment cost no more than the segment.
                 * Refusing rather than skipping what is over it keeps "0"
                 * meaning "no build ID", not "did not look".
                 */
                if (seg_size > note_bytes_left)
                        return -EBADMSG;
                note_bytes_left -= seg_size;

                notes = malloc(seg_size);
                if (!notes)
                        return -ENOMEM;
                r = elf_image_read(&img, seg_off, notes, seg_size);
                if (r < 0)
                        return r;

                /*
                 * The gABI says 4; 8-byte notes are marked by p_align 8.
                 * Anything else means 4. The first build ID wins: later
                 * headers are not looked at.
                 */
                r = elf_image_find_note(&img, notes, seg_size, align == 8 ? 8 : 4, ret);
                if (r != 0)
                        return r;
        }

        return 0;
}

typedef struct ElfBuffer {
        const uint8_t *data;
        size_t size;
} ElfBuffer;

static int elf_buffer_read(void *userdata, uint64_t off, void *buf, size_t n) {
        const ElfBuffer *b = userdata;

        /* The parser never asks past the end; refuse anyway rather than trust that. */
        if (off > b->size || n > b->size - off)
                return -EIO;

        memcpy(buf, b->data + off, n);
        return 0;
}

int elf_build_id_from_buffer(const void *buf, size_t size, uint8_t ret[static BUILD_ID_MAX]) {
        ElfBuffer b = {
                .data = buf,
                .size = size,
        };

        assert(buf || size == 0);

        return elf_read_build_id(elf_buffer_read, &b, size, ret);
}

/*
 * /proc/PID/mem takes offsets above INT64_MAX (the kernel marks it
 * FMODE_UNSIGNED_OFFSET), so we pass the full 64-bit position converted to
 * off_t. That needs a 64-bit off_t: 32-bit builds must use
 * _FILE_OFFSET_BITS=64.
 */
_Static_assert(sizeof(off_t) == sizeof(uint64_t), "elf-note needs a 64-bit off_t");

typedef struct ElfFile {
        int fd;
        uint64_t base;
} ElfFile;

static int elf_file_read(void *userdata, uint64_t off, void *buf, size_t n) {
        const ElfFile *f = userdata;
        uint8_t *p = buf;
        uint64_t pos;

        /* elf_build_id_from_fd() checked that base + size does not wrap. */
        pos = f->base + off;

        /*
         * pread() may return less than asked (a /proc/PID/mem read stops at an
         * unmapped page); ask again for the rest, so that only a read that
         * makes no progress at all, i.e. end of file, turns into -EIO.
         */
        while (n > 0) {
                ssize_t k;

                k = pread(f->fd, p, n, (off_t) pos);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (k == 0)
                        return -EIO;

                p += k;
                n -= (size_t) k;
                pos += (uint64_t) k;
        }

        return 0;
}

int elf_build_id_from_fd(int fd, uint64_t base, uint64_t size, uint8_t ret[static BUILD_ID_MAX]) {
        ElfFile f = {
                .fd = fd,
                .base = base,
        };

        if (fd < 0)
                return -EBADF;
        if (size > UINT64_MAX - base)
                return -EINVAL;

        return elf_read_build_id(elf_file_read, &f, size, ret);
}
