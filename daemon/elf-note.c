/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * GNU build ID lookup in ELF images, and the facts parse (elf_read_info())
 * that also collects the type, PT_LOADs and other notes.
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

#include <json-c/json.h>

#include "elf-note.h"
#include "macro.h"
#include "sha256.h"
#include "string-table.h"

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
        size_t e_type;
        size_t e_shnum;
        size_t p_vaddr;
        size_t p_memsz;
        size_t p_flags;
        size_t sh_type;
        size_t sh_offset;
        size_t sh_size;
        size_t sh_addralign;
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
        .e_type = offsetof(Elf32_Ehdr, e_type),
        .e_shnum = offsetof(Elf32_Ehdr, e_shnum),
        .p_vaddr = offsetof(Elf32_Phdr, p_vaddr),
        .p_memsz = offsetof(Elf32_Phdr, p_memsz),
        .p_flags = offsetof(Elf32_Phdr, p_flags),
        .sh_type = offsetof(Elf32_Shdr, sh_type),
        .sh_offset = offsetof(Elf32_Shdr, sh_offset),
        .sh_size = offsetof(Elf32_Shdr, sh_size),
        .sh_addralign = offsetof(Elf32_Shdr, sh_addralign),
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
        .e_type = offsetof(Elf64_Ehdr, e_type),
        .e_shnum = offsetof(Elf64_Ehdr, e_shnum),
        .p_vaddr = offsetof(Elf64_Phdr, p_vaddr),
        .p_memsz = offsetof(Elf64_Phdr, p_memsz),
        .p_flags = offsetof(Elf64_Phdr, p_flags),
        .sh_type = offsetof(Elf64_Shdr, sh_type),
        .sh_offset = offsetof(Elf64_Shdr, sh_offset),
        .sh_size = offsetof(Elf64_Shdr, sh_size),
        .sh_addralign = offsetof(Elf64_Shdr, sh_addralign),
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

/* --- ELF facts -------------------------------------------------------------- */

static const char *const elf_type_table[_ELF_TYPE_MAX] = {
        [ELF_TYPE_NOT_ELF] = "not-elf",
        [ELF_TYPE_MALFORMED] = "malformed",
        [ELF_TYPE_EXEC] = "exec",
        [ELF_TYPE_DYN] = "dyn",
        [ELF_TYPE_OTHER] = "other",
};

DEFINE_STRING_TABLE_LOOKUP(elf_type, ElfType);

static const char *const elf_package_field_table[_ELF_PACKAGE_FIELD_MAX] = {
        [ELF_PACKAGE_TYPE] = "type",
        [ELF_PACKAGE_NAME] = "name",
        [ELF_PACKAGE_VERSION] = "version",
        [ELF_PACKAGE_ARCHITECTURE] = "architecture",
        [ELF_PACKAGE_OS] = "os",
        [ELF_PACKAGE_OS_VERSION] = "osVersion",
        [ELF_PACKAGE_DEBUG_INFO_URL] = "debugInfoUrl",
};

DEFINE_STRING_TABLE_LOOKUP(elf_package_field, ElfPackageField);

/* The Go toolchain's note: name "Go", type 4, the build ID string as descriptor. */
#define ELF_NOTE_NAME_GO "Go"
#define ELF_NOTE_NAME_GO_SIZE sizeof(ELF_NOTE_NAME_GO)
#ifndef NT_GO_BUILDID
#define NT_GO_BUILDID 4U
#endif

/* systemd's package metadata note (.note.package): name "FDO", a JSON object as descriptor. */
#define ELF_NOTE_NAME_FDO "FDO"
#define ELF_NOTE_NAME_FDO_SIZE sizeof(ELF_NOTE_NAME_FDO)
#ifndef NT_FDO_PACKAGING_METADATA
#define NT_FDO_PACKAGING_METADATA 0xcafe1a7eU
#endif

static void json_object_putp(struct json_object **o) {
        if (*o)
                (void) json_object_put(*o);
}

/* The package JSON is a flat object: a little nesting is allowed, so that a richer one still parses. */
#define ELF_PACKAGE_JSON_DEPTH 4

ElfInfo *elf_info_ref(ElfInfo *i) {
        if (i)
                __atomic_add_fetch(&i->n_ref, 1, __ATOMIC_RELAXED);
        return i;
}

ElfInfo *elf_info_unref(ElfInfo *i) {
        if (!i)
                return NULL;
        if (__atomic_sub_fetch(&i->n_ref, 1, __ATOMIC_ACQ_REL) > 0)
                return NULL;

        free(i->loads);
        free(i->go_build_id);
        for (size_t f = 0; f < _ELF_PACKAGE_FIELD_MAX; f++)
                free(i->package[f]);
        free(i);
        return NULL;
}

/* One facts parse: the image, the budgets left, what was found so far. */
typedef struct ElfInfoParse {
        ElfImage img;
        ElfInfo *info;
        uint64_t note_bytes_left;
        /* The PT_NOTE segments walked, so that sections inside them are not read again. */
        unsigned n_walked;
        uint64_t walked_off[ELF_PT_NOTE_MAX];
        uint64_t walked_size[ELF_PT_NOTE_MAX];
        bool have_package;
} ElfInfoParse;

static bool elf_info_parse_complete(const ElfInfoParse *p) {
        return p->info->build_id_len > 0 && p->info->go_build_id && p->have_package;
}

static int elf_info_take_go_build_id(ElfInfo *info, const uint8_t *desc, uint32_t descsz) {
        size_t n = descsz;
        char *s;

        /* Go writes the string without a NUL; a padded or terminated one is the same ID. */
        while (n > 0 && desc[n - 1] == 0)
                n--;
        if (n == 0 || n > GO_BUILD_ID_MAX)
                return 0;
        for (size_t i = 0; i < n; i++)
                if (desc[i] < 0x20 || desc[i] > 0x7e)
                        return 0;

        s = strndup((const char *) desc, n);
        if (!s)
                return -ENOMEM;
        info->go_build_id = s;
        info->memory += n + 1;
        return 0;
}

/*
 * Parse the package note's descriptor: a NUL-terminated JSON object. Only
 * the string fields we know are kept, each at most ELF_PACKAGE_STRING_MAX
 * bytes and without an embedded NUL; anything else in it is ignored. A
 * descriptor that is not such an object is ignored as a whole. Returns 1
 * when the note was taken, 0 when ignored, -ENOMEM.
 */
static int elf_info_take_package(ElfInfo *info, const uint8_t *desc, uint32_t descsz) {
        _cleanup_(json_object_putp) struct json_object *obj = NULL;
        struct json_tokener *tok;
        size_t len;

        if (descsz == 0 || descsz > ELF_PACKAGE_NOTE_MAX)
                return 0;
        len = strnlen((const char *) desc, descsz);
        if (len == 0)
                return 0;

        tok = json_tokener_new_ex(ELF_PACKAGE_JSON_DEPTH);
        if (!tok)
                return -ENOMEM;
        json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
        obj = json_tokener_parse_ex(tok, (const char *) desc, (int) len);
        if (!obj || json_tokener_get_error(tok) != json_tokener_success ||
            json_tokener_get_parse_end(tok) != len) {
                json_tokener_free(tok);
                return 0;
        }
        json_tokener_free(tok);
        if (!json_object_is_type(obj, json_type_object))
                return 0;

        for (size_t f = 0; f < _ELF_PACKAGE_FIELD_MAX; f++) {
                struct json_object *v;
                const char *s;
                size_t n;

                if (!json_object_object_get_ex(obj, elf_package_field_table[f], &v) ||
                    !json_object_is_type(v, json_type_string))
                        continue;
                s = json_object_get_string(v);
                n = (size_t) json_object_get_string_len(v);
                if (n == 0 || n > ELF_PACKAGE_STRING_MAX || strlen(s) != n)
                        continue;
                info->package[f] = strndup(s, n);
                if (!info->package[f])
                        return -ENOMEM;
                info->memory += n + 1;
        }
        return 1;
}

/*
 * Walk the notes of one note segment or section, as elf_image_find_note()
 * does, taking the first of each kind we keep that is still missing.
 * Stops quietly at a note that runs past the end. Returns 0 or -ENOMEM.
 */
static int elf_info_walk_notes(ElfInfoParse *p, const uint8_t *notes, uint64_t size, uint64_t align) {
        ElfInfo *info = p->info;
        uint64_t pos = 0;
        int r;

        for (;;) {
                uint64_t name_off, desc_off, next;
                uint32_t namesz, descsz, type;
                const uint8_t *name, *desc;

                if (size - pos < ELF_NHDR_SIZE)
                        return 0;

                namesz = elf_image_get32(&p->img, notes + pos);
                descsz = elf_image_get32(&p->img, notes + pos + 4);
                type = elf_image_get32(&p->img, notes + pos + 8);

                name_off = pos + ELF_NHDR_SIZE;
                if (namesz > size - name_off)
                        return 0;
                if (!elf_align_up(name_off + namesz, align, &desc_off) ||
                    desc_off > size ||
                    descsz > size - desc_off)
                        return 0;
                name = notes + name_off;
                desc = notes + desc_off;

                if (type == NT_GNU_BUILD_ID && namesz == ELF_NOTE_NAME_GNU_SIZE &&
                    memcmp(name, ELF_NOTE_NAME_GNU, ELF_NOTE_NAME_GNU_SIZE) == 0) {
                        if (info->build_id_len == 0 && descsz > 0 && descsz <= BUILD_ID_MAX) {
                                memcpy(info->build_id, desc, descsz);
                                info->build_id_len = (uint8_t) descsz;
                        }
                } else if (type == NT_GO_BUILDID && namesz == ELF_NOTE_NAME_GO_SIZE &&
                           memcmp(name, ELF_NOTE_NAME_GO, ELF_NOTE_NAME_GO_SIZE) == 0) {
                        if (!info->go_build_id) {
                                r = elf_info_take_go_build_id(info, desc, descsz);
                                if (r < 0)
                                        return r;
                        }
                } else if (type == NT_FDO_PACKAGING_METADATA && namesz == ELF_NOTE_NAME_FDO_SIZE &&
                           memcmp(name, ELF_NOTE_NAME_FDO, ELF_NOTE_NAME_FDO_SIZE) == 0) {
                        if (!p->have_package) {
                                r = elf_info_take_package(info, desc, descsz);
                                if (r < 0)
                                        return r;
                                if (r > 0)
                                        p->have_package = true;
                        }
                }

                if (!elf_align_up(desc_off + descsz, align, &next) || next >= size)
                        return 0;
                pos = next;
        }
}

/*
 * Read the @size bytes of notes at @off, within the shared budget, and
 * walk them. Returns 1 when read and walked; 0 when not read (out of
 * bounds, over the budget, too small for a note); -ENOMEM or an error of
 * the read callback.
 */
static int elf_info_read_notes(ElfInfoParse *p, uint64_t off, uint64_t size, uint64_t align) {
        _cleanup_free_ uint8_t *notes = NULL;
        int r;

        if (!elf_image_contains(&p->img, off, size) || size < ELF_NHDR_SIZE)
                return 0;
        if (size > p->note_bytes_left)
                return 0;
        p->note_bytes_left -= size;

        notes = malloc(size);
        if (!notes)
                return -ENOMEM;
        r = elf_image_read(&p->img, off, notes, size);
        if (r < 0)
                return r;

        r = elf_info_walk_notes(p, notes, size, align == 8 ? 8 : 4);
        if (r < 0)
                return r;
        return 1;
}

static int elf_info_add_load(ElfInfoParse *p, const uint8_t *phdr) {
        const ElfLayout *l = p->img.layout;
        ElfInfo *info = p->info;

        if (info->n_loads >= ELF_LOAD_MAX) {
                info->loads_truncated = true;
                return 0;
        }
        if (!info->loads) {
                info->loads = calloc(ELF_LOAD_MAX, sizeof(ElfLoad));
                if (!info->loads)
                        return -ENOMEM;
        }

        info->loads[info->n_loads++] = (ElfLoad) {
                .offset = elf_image_get_word(&p->img, phdr + l->p_offset),
                .vaddr = elf_image_get_word(&p->img, phdr + l->p_vaddr),
                .filesz = elf_image_get_word(&p->img, phdr + l->p_filesz),
                .memsz = elf_image_get_word(&p->img, phdr + l->p_memsz),
                .flags = elf_image_get32(&p->img, phdr + l->p_flags),
        };
        return 0;
}

/* Shrink the PT_LOAD array to what it holds, and count it. */
static int elf_info_trim_loads(ElfInfo *info) {
        ElfLoad *a;

        if (!info->loads)
                return 0;

        a = reallocarray(info->loads, info->n_loads, sizeof(ElfLoad));
        if (a)
                info->loads = a;
        info->memory += info->n_loads * sizeof(ElfLoad);
        return 0;
}

/*
 * The program headers: PT_LOADs kept, PT_NOTEs walked. Returns 0, 1 when
 * the ELF header or table does not hold (the image is malformed), or a
 * negative errno.
 */
static int elf_info_parse_phdrs(ElfInfoParse *p, const uint8_t *ehdr) {
        const ElfLayout *l = p->img.layout;
        _cleanup_free_ uint8_t *phdrs = NULL;
        uint64_t phoff, phnum, table_size;
        uint16_t phentsize;
        unsigned pt_notes = 0;
        int r;

        r = elf_image_count_phdrs(&p->img, ehdr, &phnum);
        if (r == -EBADMSG)
                return 1;
        if (r < 0)
                return r;
        if (phnum == 0)
                return 0;

        phoff = elf_image_get_word(&p->img, ehdr + l->e_phoff);
        phentsize = elf_image_get16(&p->img, ehdr + l->e_phentsize);
        if (phentsize < l->phdr_size)
                return 1;
        table_size = phnum * phentsize;
        if (table_size > ELF_PHDR_TABLE_MAX || !elf_image_contains(&p->img, phoff, table_size))
                return 1;

        phdrs = malloc(table_size);
        if (!phdrs)
                return -ENOMEM;
        r = elf_image_read(&p->img, phoff, phdrs, table_size);
        if (r < 0)
                return r;

        for (uint64_t i = 0; i < phnum; i++) {
                const uint8_t *phdr = phdrs + i * phentsize;
                uint64_t off, size;

                switch (elf_image_get32(&p->img, phdr + l->p_type)) {
                case PT_LOAD:
                        r = elf_info_add_load(p, phdr);
                        if (r < 0)
                                return r;
                        break;
                case PT_NOTE:
                        if (pt_notes >= ELF_PT_NOTE_MAX || elf_info_parse_complete(p))
                                break;
                        pt_notes++;
                        off = elf_image_get_word(&p->img, phdr + l->p_offset);
                        size = elf_image_get_word(&p->img, phdr + l->p_filesz);
                        r = elf_info_read_notes(p, off, size, elf_image_get_word(&p->img, phdr + l->p_align));
                        if (r < 0)
                                return r;
                        if (r > 0) {
                                p->walked_off[p->n_walked] = off;
                                p->walked_size[p->n_walked] = size;
                                p->n_walked++;
                        }
                        break;
                }
        }

        return 0;
}

static bool elf_info_parse_walked(const ElfInfoParse *p, uint64_t off, uint64_t size) {
        for (unsigned i = 0; i < p->n_walked; i++)
                if (off >= p->walked_off[i] && off - p->walked_off[i] <= p->walked_size[i] &&
                    size <= p->walked_size[i] - (off - p->walked_off[i]))
                        return true;
        return false;
}

/*
 * The fallback: the SHT_NOTE sections of the section header table. A table
 * that does not hold is ignored: the section headers are not needed to
 * run the image, so strip tools and packers leave odd ones.
 */
static int elf_info_parse_shdrs(ElfInfoParse *p, const uint8_t *ehdr) {
        const ElfLayout *l = p->img.layout;
        _cleanup_free_ uint8_t *shdrs = NULL;
        uint64_t shoff, table_size;
        uint16_t shnum, shentsize;
        unsigned sh_notes = 0;
        int r;

        shoff = elf_image_get_word(&p->img, ehdr + l->e_shoff);
        shnum = elf_image_get16(&p->img, ehdr + l->e_shnum);
        shentsize = elf_image_get16(&p->img, ehdr + l->e_shentsize);
        if (shoff == 0 || shnum == 0 || shentsize < l->shdr_size)
                return 0;
        table_size = (uint64_t) shnum * shentsize;
        if (table_size > ELF_SHDR_TABLE_MAX || !elf_image_contains(&p->img, shoff, table_size))
                return 0;

        shdrs = malloc(table_size);
        if (!shdrs)
                return -ENOMEM;
        r = elf_image_read(&p->img, shoff, shdrs, table_size);
        if (r < 0)
                return r;

        for (uint64_t i = 0; i < shnum && sh_notes < ELF_SH_NOTE_MAX && !elf_info_parse_complete(p); i++) {
                const uint8_t *shdr = shdrs + i * shentsize;
                uint64_t off, size;

                if (elf_image_get32(&p->img, shdr + l->sh_type) != SHT_NOTE)
                        continue;
                off = elf_image_get_word(&p->img, shdr + l->sh_offset);
                size = elf_image_get_word(&p->img, shdr + l->sh_size);
                if (elf_info_parse_walked(p, off, size))
                        continue;
                sh_notes++;
                r = elf_info_read_notes(p, off, size, elf_image_get_word(&p->img, shdr + l->sh_addralign));
                if (r < 0)
                        return r;
        }

        return 0;
}

/* SHA-256 over the first and last HTLHASH_CHUNK bytes (the whole image, twice, if shorter) and the size. */
static int elf_info_htlhash(ElfInfoParse *p) {
        uint8_t chunk[HTLHASH_CHUNK], digest[SHA256_DIGEST_SIZE], be[8];
        uint64_t n = MIN(p->img.size, (uint64_t) HTLHASH_CHUNK);
        Sha256 s;
        int r;

        sha256_init(&s);
        if (n > 0) {
                r = elf_image_read(&p->img, 0, chunk, n);
                if (r < 0)
                        return r;
                sha256_update(&s, chunk, n);
                r = elf_image_read(&p->img, p->img.size - n, chunk, n);
                if (r < 0)
                        return r;
                sha256_update(&s, chunk, n);
        }
        for (size_t i = 0; i < 8; i++)
                be[i] = (uint8_t) (p->img.size >> (56 - 8 * i));
        sha256_update(&s, be, sizeof(be));
        sha256_final(&s, digest);

        memcpy(p->info->htlhash, digest, HTLHASH_SIZE);
        p->info->has_htlhash = true;
        return 0;
}

static int elf_info_parse(ElfInfoParse *p) {
        ElfInfo *info = p->info;
        uint8_t ehdr[sizeof(Elf64_Ehdr)];
        uint16_t type;
        int r;

        r = elf_image_identify(&p->img);
        if (r == -ENOEXEC) {
                info->type = ELF_TYPE_NOT_ELF;
                return 0;
        }
        info->type = ELF_TYPE_MALFORMED;
        if (r == -EBADMSG)
                return 0;
        if (r < 0)
                return r;

        if (p->img.size < p->img.layout->ehdr_size)
                return 0;
        r = elf_image_read(&p->img, 0, ehdr, p->img.layout->ehdr_size);
        if (r < 0)
                return r;

        r = elf_info_parse_phdrs(p, ehdr);
        if (r < 0)
                return r;
        if (r > 0) {
                /* Nothing of a malformed image is kept: its loads and notes are not to be trusted. */
                info->loads = mfree(info->loads);
                info->n_loads = 0;
                info->loads_truncated = false;
                return 0;
        }

        if (!elf_info_parse_complete(p)) {
                r = elf_info_parse_shdrs(p, ehdr);
                if (r < 0)
                        return r;
        }

        type = elf_image_get16(&p->img, ehdr + p->img.layout->e_type);
        info->type = type == ET_EXEC ? ELF_TYPE_EXEC :
                     type == ET_DYN ? ELF_TYPE_DYN : ELF_TYPE_OTHER;
        return 0;
}

int elf_read_info(ElfReadFn read, void *userdata, uint64_t size, unsigned flags, ElfInfo **ret) {
        _cleanup_(elf_info_unrefp) ElfInfo *info = NULL;
        ElfInfoParse p = {
                .img = {
                        .read = read,
                        .userdata = userdata,
                        .size = size,
                },
                .note_bytes_left = ELF_NOTE_BYTES_MAX,
        };
        int r;

        assert(read);
        assert(ret);

        info = calloc(1, sizeof(*info));
        if (!info)
                return -ENOMEM;
        info->n_ref = 1;
        info->memory = sizeof(*info);
        p.info = info;

        r = elf_info_parse(&p);
        if (r < 0)
                return r;
        r = elf_info_trim_loads(info);
        if (r < 0)
                return r;

        if (flags & ELF_INFO_HTLHASH) {
                r = elf_info_htlhash(&p);
                if (r < 0)
                        return r;
        }

        *ret = TAKE_PTR(info);
        return 0;
}

int elf_info_from_buffer(const void *buf, size_t size, unsigned flags, ElfInfo **ret) {
        ElfBuffer b = {
                .data = buf,
                .size = size,
        };

        assert(buf || size == 0);

        return elf_read_info(elf_buffer_read, &b, size, flags, ret);
}

int elf_info_from_fd(int fd, uint64_t base, uint64_t size, unsigned flags, ElfInfo **ret) {
        ElfFile f = {
                .fd = fd,
                .base = base,
        };

        if (fd < 0)
                return -EBADF;
        if (size > UINT64_MAX - base)
                return -EINVAL;

        return elf_read_info(elf_file_read, &f, size, flags, ret);
}

int elf_info_offset_to_vaddr(const ElfInfo *i, uint64_t offset, uint64_t *ret) {
        assert(i);
        assert(ret);

        for (size_t k = 0; k < i->n_loads; k++) {
                const ElfLoad *l = &i->loads[k];

                if (offset >= l->offset && offset - l->offset < l->filesz) {
                        *ret = offset - l->offset + l->vaddr;
                        return 0;
                }
        }

        return i->loads_truncated ? -E2BIG : -ENOENT;
}
