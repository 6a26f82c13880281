/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Tests for elf-note: hand-built images in all four class/byte-order
 * variants, a table of malformed images with their exact errors, the work
 * bounds, the fd reader, and two real images cross-checked against what
 * the dynamic loader sees: our own executable and the vDSO.
 */

/* dl_iterate_phdr() and mkostemp() are GNU extensions. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <check.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check-run.h"
#include "elf-note.h"
#include "macro.h"
#include "sha256.h"

/*
 * Room for the largest image we build: a program header table of
 * ELF_PHDR_TABLE_MAX bytes and a few KiB of notes, or note segments of
 * ELF_NOTE_BYTES_MAX bytes.
 */
#define IMAGE_MAX (80 * 1024)

/* Fixed places in the images built by image_build(). */
#define IMAGE_PHOFF 64U
#define IMAGE_NOTES_OFF 0x200U

/* Filled into output buffers, to see that nothing is written on failure. */
#define POISON 0xa5

/* The four variants a loop test runs over: bit 0 is "64-bit", bit 1 "big endian". */
#define VARIANTS 4

static const uint8_t id20[20] = {
        0x3c, 0x9f, 0x02, 0x41, 0xde, 0xad, 0xbe, 0xef, 0x00, 0x11,
        0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb,
};

static const uint8_t id16[16] = {
        0xf0, 0xe1, 0xd2, 0xc3, 0xb4, 0xa5, 0x96, 0x87,
        0x78, 0x69, 0x5a, 0x4b, 0x3c, 0x2d, 0x1e, 0x0f,
};

typedef struct Image {
        bool is64;
        bool msb;
        size_t size;
        size_t phentsize;
        /* Set by image_build(): where the notes and the build-ID note start. */
        size_t notes_end;
        size_t bid_note;
        uint8_t data[IMAGE_MAX];
} Image;

static inline void fclosep(FILE **f) {
        if (*f)
                fclose(*f);
}

/* Store @v in @n bytes at @off, in the image's byte order, growing the image. */
static void image_put(Image *im, size_t off, uint64_t v, size_t n) {
        ck_assert_uint_le(off + n, IMAGE_MAX);

        for (size_t i = 0; i < n; i++) {
                size_t shift = 8 * (im->msb ? n - 1 - i : i);

                im->data[off + i] = (uint8_t) (v >> shift);
        }
        im->size = MAX(im->size, off + n);
}

static void image_put_bytes(Image *im, size_t off, const void *p, size_t n) {
        ck_assert_uint_le(off + n, IMAGE_MAX);
        if (n == 0)
                return; /* @p may be NULL then, which memcpy() does not allow. */
        memcpy(im->data + off, p, n);
        im->size = MAX(im->size, off + n);
}

/* Field access by name, with the width and place of the image's class. */
#define IMAGE_FIELD(im, T, field) \
        ((im)->is64 ? offsetof(Elf64_##T, field) : offsetof(Elf32_##T, field))
#define IMAGE_FIELD_SIZE(im, T, field) \
        ((im)->is64 ? sizeof(((Elf64_##T) {}).field) : sizeof(((Elf32_##T) {}).field))
#define IMAGE_SIZEOF(im, T) ((im)->is64 ? sizeof(Elf64_##T) : sizeof(Elf32_##T))

#define EHDR_SET(im, field, v) \
        image_put((im), IMAGE_FIELD(im, Ehdr, field), (v), IMAGE_FIELD_SIZE(im, Ehdr, field))
#define PHDR_SET(im, idx, field, v)                                                     \
        image_put((im), IMAGE_PHOFF + (idx) * (im)->phentsize + IMAGE_FIELD(im, Phdr, field), \
                  (v), IMAGE_FIELD_SIZE(im, Phdr, field))

/* A valid header without program headers. */
static void image_init(Image *im, unsigned variant) {
        memset(im, 0, sizeof(*im));
        im->is64 = variant & 1;
        im->msb = variant & 2;
        im->phentsize = IMAGE_SIZEOF(im, Phdr);

        image_put_bytes(im, 0, ELFMAG, SELFMAG);
        im->data[EI_CLASS] = im->is64 ? ELFCLASS64 : ELFCLASS32;
        im->data[EI_DATA] = im->msb ? ELFDATA2MSB : ELFDATA2LSB;
        im->data[EI_VERSION] = EV_CURRENT;
        im->size = IMAGE_SIZEOF(im, Ehdr);

        EHDR_SET(im, e_type, ET_DYN);
        EHDR_SET(im, e_machine, im->is64 ? EM_AARCH64 : EM_ARM);
        EHDR_SET(im, e_version, EV_CURRENT);
        EHDR_SET(im, e_ehsize, IMAGE_SIZEOF(im, Ehdr));
        EHDR_SET(im, e_shentsize, IMAGE_SIZEOF(im, Shdr));
}

/* Program headers live at IMAGE_PHOFF, @phnum of them, im->phentsize apart. */
static void image_set_phdrs(Image *im, unsigned phnum) {
        EHDR_SET(im, e_phoff, IMAGE_PHOFF);
        EHDR_SET(im, e_phentsize, im->phentsize);
        EHDR_SET(im, e_phnum, phnum);
        im->size = MAX(im->size, IMAGE_PHOFF + phnum * im->phentsize);
}

static void image_put_phdr(Image *im, unsigned idx, uint32_t type, uint64_t off, uint64_t filesz,
                           uint64_t align) {
        PHDR_SET(im, idx, p_type, type);
        PHDR_SET(im, idx, p_offset, off);
        PHDR_SET(im, idx, p_filesz, filesz);
        PHDR_SET(im, idx, p_memsz, filesz);
        PHDR_SET(im, idx, p_align, align);
}

/*
 * Append a note at @pos (@align-aligned) and return where the next one
 * goes: header, name right after it, descriptor and next note at the next
 * multiple of @align. Independent of the parser on purpose.
 */
static size_t image_put_note(Image *im, size_t pos, size_t align, const char *name, uint32_t namesz,
                             uint32_t type, const void *desc, uint32_t descsz) {
        size_t desc_off;

        image_put(im, pos, namesz, 4);
        image_put(im, pos + 4, descsz, 4);
        image_put(im, pos + 8, type, 4);
        image_put_bytes(im, pos + 12, name, namesz);
        desc_off = ALIGN_POW2(pos + 12 + namesz, align);
        /* Zero padding, explicitly, so that a mistaken parse reads known bytes. */
        memset(im->data + pos + 12 + namesz, 0, desc_off - (pos + 12 + namesz));
        image_put_bytes(im, desc_off, desc, descsz);
        im->size = MAX(im->size, ALIGN_POW2(desc_off + descsz, align));
        return ALIGN_POW2(desc_off + descsz, align);
}

/*
 * The reference image: a PT_LOAD, then a PT_NOTE at IMAGE_NOTES_OFF with
 * a GNU ABI tag (right name, wrong type), a "Linux" note of type 3 (right
 * type, wrong name, namesz 6 so it needs padding), the build ID, and a
 * filler note after it. With @align 8 a note with a 3-byte name and a
 * 12-byte descriptor goes first, so that the 4- and 8-byte layouts differ.
 */
static void image_build(Image *im, unsigned variant, const uint8_t *id, uint32_t id_len, size_t align) {
        static const uint8_t abi_tag[16] = { 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0, 0 };
        static const uint8_t other[12] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 };
        uint8_t filler[80];
        size_t pos = IMAGE_NOTES_OFF;

        image_init(im, variant);
        image_set_phdrs(im, 2);

        if (align == 8)
                pos = image_put_note(im, pos, align, "XY", 3, 1, other, sizeof(other));
        pos = image_put_note(im, pos, align, "GNU", 4, NT_GNU_ABI_TAG, abi_tag, sizeof(abi_tag));
        pos = image_put_note(im, pos, align, "Linux", 6, NT_GNU_BUILD_ID, other, 4);
        im->bid_note = pos;
        pos = image_put_note(im, pos, align, "GNU", 4, NT_GNU_BUILD_ID, id, id_len);
        memset(filler, 0x5a, sizeof(filler));
        pos = image_put_note(im, pos, align, "FILL", 5, 0x1234, filler, sizeof(filler));
        im->notes_end = pos;

        image_put_phdr(im, 0, PT_LOAD, 0, im->size, 0x1000);
        image_put_phdr(im, 1, PT_NOTE, IMAGE_NOTES_OFF, pos - IMAGE_NOTES_OFF, align);
}

/*
 * A reader over an Image that fails the test if the parser asks for
 * anything outside [0, size): "never reads outside the image" checked
 * directly, not only through ASan.
 */
static int image_read_checked(void *userdata, uint64_t off, void *buf, size_t n) {
        const Image *im = userdata;

        ck_assert_uint_le(off, im->size);
        ck_assert_uint_le(n, im->size - off);
        memcpy(buf, im->data + off, n);
        return 0;
}

/*
 * A reader over an Image that counts the calls and bytes asked for, and
 * fails with -ENXIO from its @fail_at-th call on.
 */
typedef struct CountingReader {
        const Image *im;
        unsigned fail_at;
        unsigned calls;
        uint64_t bytes;
} CountingReader;

static int counting_read(void *userdata, uint64_t off, void *buf, size_t n) {
        CountingReader *f = userdata;

        if (f->calls++ >= f->fail_at)
                return -ENXIO;
        f->bytes += n;
        return image_read_checked((void *) f->im, off, buf, n);
}

/*
 * Parse @im both ways, check they agree and that @ret is untouched on
 * failure, and that the parse stayed within the documented cost.
 */
static int image_parse(const Image *im, uint8_t ret[static BUILD_ID_MAX]) {
        CountingReader f = { .im = im, .fail_at = UINT32_MAX };
        uint8_t a[BUILD_ID_MAX], b[BUILD_ID_MAX];
        int ra, rb;

        memset(a, POISON, sizeof(a));
        memset(b, POISON, sizeof(b));

        ra = elf_build_id_from_buffer(im->data, im->size, a);
        rb = elf_read_build_id(counting_read, &f, im->size, b);
        ck_assert_int_eq(ra, rb);
        ck_assert_mem_eq(a, b, BUILD_ID_MAX);
        ck_assert_uint_le(f.calls, ELF_READS_MAX);
        ck_assert_uint_le(f.bytes, ELF_BYTES_MAX);
        if (ra <= 0)
                for (size_t i = 0; i < BUILD_ID_MAX; i++)
                        ck_assert_uint_eq(a[i], POISON);

        memcpy(ret, a, BUILD_ID_MAX);
        return ra;
}

/*
 * Parse @im through a CountingReader and check the result and the exact
 * cost: @reads calls of the reader, asking for @bytes in all.
 */
static void image_check_cost(const Image *im, int expected, unsigned reads, uint64_t bytes) {
        CountingReader f = { .im = im, .fail_at = UINT32_MAX };
        uint8_t id[BUILD_ID_MAX];

        ck_assert_int_eq(elf_read_build_id(counting_read, &f, im->size, id), expected);
        ck_assert_uint_eq(f.calls, reads);
        ck_assert_uint_eq(f.bytes, bytes);
}

/* The bytes of e_ident, the ELF header and a table of @phnum program headers of @im. */
static uint64_t image_header_bytes(const Image *im, unsigned phnum) {
        return EI_NIDENT + IMAGE_SIZEOF(im, Ehdr) + (uint64_t) phnum * im->phentsize;
}

START_TEST(test_build_id_20) {
        uint8_t id[BUILD_ID_MAX];
        Image im;

        image_build(&im, _i, id20, sizeof(id20), 4);
        ck_assert_int_eq(image_parse(&im, id), 20);
        ck_assert_mem_eq(id, id20, 20);
        ck_assert_uint_eq(id[20], POISON);
}
END_TEST

START_TEST(test_build_id_16) {
        uint8_t id[BUILD_ID_MAX];
        Image im;

        image_build(&im, _i, id16, sizeof(id16), 4);
        ck_assert_int_eq(image_parse(&im, id), 16);
        ck_assert_mem_eq(id, id16, 16);
        ck_assert_uint_eq(id[16], POISON);
}
END_TEST

/* 1 and BUILD_ID_MAX bytes are the bounds of what is accepted. */
START_TEST(test_build_id_sizes) {
        uint8_t big[BUILD_ID_MAX], id[BUILD_ID_MAX];
        Image im;

        for (size_t i = 0; i < sizeof(big); i++)
                big[i] = (uint8_t) (0x80 + i);

        image_build(&im, _i, big, BUILD_ID_MAX, 4);
        ck_assert_int_eq(image_parse(&im, id), BUILD_ID_MAX);
        ck_assert_mem_eq(id, big, BUILD_ID_MAX);

        image_build(&im, _i, id20, 1, 4);
        ck_assert_int_eq(image_parse(&im, id), 1);
        ck_assert_uint_eq(id[0], id20[0]);
        ck_assert_uint_eq(id[1], POISON);
}
END_TEST

START_TEST(test_align8) {
        uint8_t id[BUILD_ID_MAX];
        Image im;

        image_build(&im, _i, id20, sizeof(id20), 8);
        /* The layout really differs from the 4-byte one: the build ID note moved. */
        ck_assert_uint_eq(im.bid_note, IMAGE_NOTES_OFF + 32 + 32 + 32);
        ck_assert_int_eq(image_parse(&im, id), 20);
        ck_assert_mem_eq(id, id20, 20);

        /*
         * The same bytes read with 4-byte padding: after the first note the
         * parser lands in padding and then reads "GNU\0" as a name size.
         */
        PHDR_SET(&im, 1, p_align, 4);
        ck_assert_int_eq(image_parse(&im, id), -EBADMSG);

        /* p_align values other than 8 mean 4-byte notes. */
        image_build(&im, _i, id16, sizeof(id16), 4);
        PHDR_SET(&im, 1, p_align, 16);
        ck_assert_int_eq(image_parse(&im, id), 16);
        ck_assert_mem_eq(id, id16, 16);
}
END_TEST

START_TEST(test_no_build_id) {
        uint8_t id[BUILD_ID_MAX];
        Image im;

        /* A note segment without a build ID: stop at the filler note. */
        image_build(&im, _i, id20, sizeof(id20), 4);
        PHDR_SET(&im, 1, p_filesz, im.bid_note - IMAGE_NOTES_OFF);
        ck_assert_int_eq(image_parse(&im, id), 0);

        /* An empty PT_NOTE. */
        PHDR_SET(&im, 1, p_filesz, 0);
        ck_assert_int_eq(image_parse(&im, id), 0);

        /* No PT_NOTE at all. */
        image_build(&im, _i, id20, sizeof(id20), 4);
        PHDR_SET(&im, 1, p_type, PT_NULL);
        ck_assert_int_eq(image_parse(&im, id), 0);

        /* No program headers (a relocatable object: e_phoff and e_phentsize 0). */
        image_init(&im, _i);
        ck_assert_uint_eq(im.size, IMAGE_SIZEOF(&im, Ehdr));
        ck_assert_int_eq(image_parse(&im, id), 0);
}
END_TEST

/* Several PT_NOTE segments: the build ID is in the second; the first found wins. */
START_TEST(test_segments) {
        uint8_t id[BUILD_ID_MAX];
        size_t second;
        Image im;

        image_build(&im, _i, id20, sizeof(id20), 4);
        image_set_phdrs(&im, 4);
        image_put_phdr(&im, 1, PT_NOTE, IMAGE_NOTES_OFF, im.bid_note - IMAGE_NOTES_OFF, 4);
        second = im.notes_end;
        (void) image_put_note(&im, second, 4, "GNU", 4, NT_GNU_BUILD_ID, id16, sizeof(id16));
        image_put_phdr(&im, 2, PT_NOTE, second, im.size - second, 4);
        image_put_phdr(&im, 3, PT_NOTE, im.bid_note, im.notes_end - im.bid_note, 4);

        ck_assert_int_eq(image_parse(&im, id), 16);
        ck_assert_mem_eq(id, id16, 16);
}
END_TEST

/* e_phentsize larger than the class's Phdr: entries are read at that stride. */
START_TEST(test_phentsize_large) {
        uint8_t id[BUILD_ID_MAX];
        Image im;

        image_init(&im, _i);
        im.phentsize = IMAGE_SIZEOF(&im, Phdr) + 24;
        image_set_phdrs(&im, 2);
        image_put_phdr(&im, 0, PT_LOAD, 0, 0, 0x1000);
        (void) image_put_note(&im, IMAGE_NOTES_OFF, 4, "GNU", 4, NT_GNU_BUILD_ID, id20, 20);
        image_put_phdr(&im, 1, PT_NOTE, IMAGE_NOTES_OFF, 12 + 4 + 20, 4);

        ck_assert_int_eq(image_parse(&im, id), 20);
        ck_assert_mem_eq(id, id20, 20);
}
END_TEST

/*
 * @phnum program headers @phentsize apart, all PT_NULL but the last: a
 * PT_NOTE with the 20-byte build ID, in a note right after the table.
 */
static void image_build_table(Image *im, unsigned variant, size_t phentsize, unsigned phnum) {
        size_t notes;

        image_init(im, variant);
        im->phentsize = phentsize;
        image_set_phdrs(im, phnum);
        notes = ALIGN_POW2(im->size, 8);
        im->bid_note = notes;
        im->notes_end = image_put_note(im, notes, 4, "GNU", 4, NT_GNU_BUILD_ID, id20, sizeof(id20));
        image_put_phdr(im, phnum - 1, PT_NOTE, notes, im->notes_end - notes, 4);
}

/*
 * The program header table is read whole, in one read, up to
 * ELF_PHDR_TABLE_MAX bytes; one entry more is refused unread, although the
 * image holds it. With the standard entry size the cap falls on a whole
 * number of ELF32 headers; a 64-byte stride makes it exact in both classes.
 */
START_TEST(test_phdr_table_limit) {
        _cleanup_free_ Image *im = NULL;
        uint8_t id[BUILD_ID_MAX];

        im = malloc(sizeof(*im));
        ck_assert_ptr_nonnull(im);

        ck_assert_uint_eq(ELF_PHDR_TABLE_MAX, 65536);

        for (unsigned k = 0; k < 2; k++) {
                size_t stride;
                unsigned max;

                image_init(im, _i);
                stride = k == 0 ? IMAGE_SIZEOF(im, Phdr) : 64;
                max = ELF_PHDR_TABLE_MAX / stride;
                ck_assert_uint_eq(max, k == 1 ? 1024 : im->is64 ? 1170 : 2048);

                image_build_table(im, _i, stride, max);
                ck_assert_int_eq(image_parse(im, id), 20);
                ck_assert_mem_eq(id, id20, 20);

                /* e_ident, the ELF header, the table, then the note segment. */
                image_check_cost(im, 20, 4, image_header_bytes(im, max) + 12 + 4 + 20);

                image_build_table(im, _i, stride, max + 1);
                ck_assert_uint_ge(im->size, IMAGE_PHOFF + (max + 1) * stride);
                ck_assert_int_eq(image_parse(im, id), -EBADMSG);
                image_check_cost(im, -EBADMSG, 2, image_header_bytes(im, 0));
        }
}
END_TEST

/* PN_XNUM: the real count (2) is in sh_info of section header 0. */
START_TEST(test_pn_xnum) {
        const size_t shoff = 0x1000;
        uint8_t id[BUILD_ID_MAX];
        Image im;

        image_build(&im, _i, id20, sizeof(id20), 4);
        EHDR_SET(&im, e_phnum, PN_XNUM);
        EHDR_SET(&im, e_shoff, shoff);
        EHDR_SET(&im, e_shnum, 0);
        image_put(&im, shoff + IMAGE_FIELD(&im, Shdr, sh_info), 2, 4);
        im.size = shoff + IMAGE_SIZEOF(&im, Shdr);

        ck_assert_int_eq(image_parse(&im, id), 20);
        ck_assert_mem_eq(id, id20, 20);

        /* sh_info 1: only the PT_LOAD is walked. */
        image_put(&im, shoff + IMAGE_FIELD(&im, Shdr, sh_info), 1, 4);
        ck_assert_int_eq(image_parse(&im, id), 0);
}
END_TEST

/* Bytes after the last note, fewer than a note header, are padding (as in the kernel). */
START_TEST(test_trailing_bytes) {
        uint8_t id[BUILD_ID_MAX];
        Image im;

        image_build(&im, _i, id20, sizeof(id20), 4);
        PHDR_SET(&im, 1, p_filesz, im.bid_note - IMAGE_NOTES_OFF + 11);
        ck_assert_int_eq(image_parse(&im, id), 0);

        /* The last descriptor unpadded up to the segment end is fine too. */
        image_build(&im, _i, id20, 17, 8);
        PHDR_SET(&im, 1, p_filesz, im.bid_note - IMAGE_NOTES_OFF + 12 + 4 + 17);
        ck_assert_int_eq(image_parse(&im, id), 17);
        ck_assert_mem_eq(id, id20, 17);
}
END_TEST

/* Malformed images: each row edits the reference image. */
typedef struct MalformedVector {
        const char *name;
        void (*edit)(Image *im);
        int expected;
} MalformedVector;

static uint64_t image_word_max(const Image *im) {
        return im->is64 ? UINT64_MAX : UINT32_MAX;
}

static void edit_empty(Image *im) {
        im->size = 0;
}

static void edit_short_magic(Image *im) {
        im->size = 3;
}

static void edit_truncated_ident(Image *im) {
        im->size = EI_CLASS + 2;
}

static void edit_ident_one_short(Image *im) {
        im->size = EI_NIDENT - 1;
}

static void edit_bad_magic(Image *im) {
        im->data[EI_MAG3] = 'X';
}

static void edit_class_none(Image *im) {
        im->data[EI_CLASS] = ELFCLASSNONE;
}

static void edit_class_3(Image *im) {
        im->data[EI_CLASS] = 3;
}

static void edit_data_none(Image *im) {
        im->data[EI_DATA] = ELFDATANONE;
}

static void edit_data_3(Image *im) {
        im->data[EI_DATA] = 3;
}

static void edit_truncated_ehdr(Image *im) {
        im->size = IMAGE_SIZEOF(im, Ehdr) - 1;
}

static void edit_phoff_past_end(Image *im) {
        EHDR_SET(im, e_phoff, im->size + 8);
}

static void edit_phoff_at_end(Image *im) {
        EHDR_SET(im, e_phoff, im->size);
}

static void edit_phoff_overflow(Image *im) {
        /* phoff + phnum * phentsize wraps to a small offset (64-bit); past end (32-bit). */
        EHDR_SET(im, e_phoff, image_word_max(im) - 15);
}

static void edit_phdrs_cross_end(Image *im) {
        EHDR_SET(im, e_phnum, (im->size - IMAGE_PHOFF) / im->phentsize + 1);
}

static void edit_phentsize_small(Image *im) {
        EHDR_SET(im, e_phentsize, IMAGE_SIZEOF(im, Phdr) - 1);
}

static void edit_phentsize_zero(Image *im) {
        EHDR_SET(im, e_phentsize, 0);
}

static void edit_note_offset_past_end(Image *im) {
        PHDR_SET(im, 1, p_offset, im->size + 1);
        PHDR_SET(im, 1, p_filesz, 0);
}

static void edit_note_size_past_end(Image *im) {
        PHDR_SET(im, 1, p_filesz, im->size - IMAGE_NOTES_OFF + 1);
}

static void edit_note_range_overflow(Image *im) {
        PHDR_SET(im, 1, p_filesz, image_word_max(im) - IMAGE_NOTES_OFF + 0x20);
}

static void edit_note_offset_max(Image *im) {
        PHDR_SET(im, 1, p_offset, image_word_max(im));
        PHDR_SET(im, 1, p_filesz, 1);
}

static void edit_namesz_huge(Image *im) {
        image_put(im, IMAGE_NOTES_OFF, UINT32_MAX, 4);
}

static void edit_descsz_huge(Image *im) {
        image_put(im, IMAGE_NOTES_OFF + 4, UINT32_MAX, 4);
}

static void edit_build_id_namesz_huge(Image *im) {
        image_put(im, im->bid_note, UINT32_MAX, 4);
}

static void edit_build_id_descsz_huge(Image *im) {
        image_put(im, im->bid_note + 4, UINT32_MAX, 4);
}

static void edit_note_crosses_end(Image *im) {
        /* The segment ends in the middle of the build ID. */
        PHDR_SET(im, 1, p_filesz, im->bid_note - IMAGE_NOTES_OFF + 12 + 4 + 10);
}

static void edit_name_crosses_end(Image *im) {
        PHDR_SET(im, 1, p_filesz, im->bid_note - IMAGE_NOTES_OFF + 12 + 2);
}

static void edit_desc_after_end(Image *im) {
        /*
         * The segment ends right after the 6-byte name of the "Linux" note:
         * its padded descriptor starts past the end, though it is not empty.
         */
        size_t linux_note = IMAGE_NOTES_OFF + 12 + 4 + 16;

        PHDR_SET(im, 1, p_filesz, linux_note - IMAGE_NOTES_OFF + 12 + 6);
}

static void edit_build_id_too_long(Image *im) {
        /* Still inside the segment thanks to the filler note, so only the size is wrong. */
        image_put(im, im->bid_note + 4, BUILD_ID_MAX + 1, 4);
}

static void edit_build_id_empty(Image *im) {
        image_put(im, im->bid_note + 4, 0, 4);
}

static void edit_xnum_no_shdrs(Image *im) {
        EHDR_SET(im, e_phnum, PN_XNUM);
        EHDR_SET(im, e_shoff, 0);
}

static void edit_xnum_shoff_past_end(Image *im) {
        EHDR_SET(im, e_phnum, PN_XNUM);
        EHDR_SET(im, e_shoff, im->size + 64);
}

static void edit_xnum_shdr_cross_end(Image *im) {
        EHDR_SET(im, e_phnum, PN_XNUM);
        EHDR_SET(im, e_shoff, im->size - 4);
}

static void edit_xnum_shoff_overflow(Image *im) {
        EHDR_SET(im, e_phnum, PN_XNUM);
        EHDR_SET(im, e_shoff, image_word_max(im) - 7);
}

static void edit_xnum_shentsize_small(Image *im) {
        size_t shoff = im->size;

        EHDR_SET(im, e_phnum, PN_XNUM);
        EHDR_SET(im, e_shoff, shoff);
        image_put(im, shoff + IMAGE_SIZEOF(im, Shdr) - 1, 0, 1);
        image_put(im, shoff + IMAGE_FIELD(im, Shdr, sh_info), 2, 4);
        EHDR_SET(im, e_shentsize, IMAGE_SIZEOF(im, Shdr) - 1);
}

static void edit_xnum_info_huge(Image *im) {
        size_t shoff = im->size;

        EHDR_SET(im, e_phnum, PN_XNUM);
        EHDR_SET(im, e_shoff, shoff);
        image_put(im, shoff + IMAGE_SIZEOF(im, Shdr) - 1, 0, 1);
        image_put(im, shoff + IMAGE_FIELD(im, Shdr, sh_info), UINT32_MAX, 4);
}

static void edit_xnum_info_too_many(Image *im) {
        size_t shoff = im->size;

        EHDR_SET(im, e_phnum, PN_XNUM);
        EHDR_SET(im, e_shoff, shoff);
        image_put(im, shoff + IMAGE_SIZEOF(im, Shdr) - 1, 0, 1);
        image_put(im, shoff + IMAGE_FIELD(im, Shdr, sh_info), 65537, 4);
}

static const MalformedVector malformed[] = {
        { "empty buffer",                       edit_empty,                     -ENOEXEC },
        { "shorter than the magic",             edit_short_magic,               -ENOEXEC },
        { "e_ident truncated after EI_DATA",    edit_truncated_ident,           -EBADMSG },
        { "e_ident one byte short",             edit_ident_one_short,           -EBADMSG },
        { "bad magic",                          edit_bad_magic,                 -ENOEXEC },
        { "EI_CLASS none",                      edit_class_none,                -ENOEXEC },
        { "EI_CLASS 3",                         edit_class_3,                   -ENOEXEC },
        { "EI_DATA none",                       edit_data_none,                 -ENOEXEC },
        { "EI_DATA 3",                          edit_data_3,                    -ENOEXEC },
        { "ELF header truncated",               edit_truncated_ehdr,            -EBADMSG },
        { "e_phoff past end",                   edit_phoff_past_end,            -EBADMSG },
        { "e_phoff at end",                     edit_phoff_at_end,              -EBADMSG },
        { "e_phoff + table wraps",              edit_phoff_overflow,            -EBADMSG },
        { "phdr table crosses end",             edit_phdrs_cross_end,           -EBADMSG },
        { "e_phentsize too small",              edit_phentsize_small,           -EBADMSG },
        { "e_phentsize 0",                      edit_phentsize_zero,            -EBADMSG },
        { "PT_NOTE offset past end",            edit_note_offset_past_end,      -EBADMSG },
        { "PT_NOTE size past end",              edit_note_size_past_end,        -EBADMSG },
        { "PT_NOTE offset + size wraps",        edit_note_range_overflow,       -EBADMSG },
        { "PT_NOTE offset at word max",         edit_note_offset_max,           -EBADMSG },
        { "first note namesz 0xffffffff",       edit_namesz_huge,               -EBADMSG },
        { "first note descsz 0xffffffff",       edit_descsz_huge,               -EBADMSG },
        { "build-ID namesz 0xffffffff",         edit_build_id_namesz_huge,      -EBADMSG },
        { "build-ID descsz 0xffffffff",         edit_build_id_descsz_huge,      -EBADMSG },
        { "descriptor crosses segment end",     edit_note_crosses_end,          -EBADMSG },
        { "name crosses segment end",           edit_name_crosses_end,          -EBADMSG },
        { "descriptor starts past segment end", edit_desc_after_end,            -EBADMSG },
        { "build-ID descsz BUILD_ID_MAX + 1",   edit_build_id_too_long,         -EBADMSG },
        { "build-ID descsz 0",                  edit_build_id_empty,            -EBADMSG },
        { "PN_XNUM, e_shoff 0",                 edit_xnum_no_shdrs,             -EBADMSG },
        { "PN_XNUM, e_shoff past end",          edit_xnum_shoff_past_end,       -EBADMSG },
        { "PN_XNUM, section 0 crosses end",     edit_xnum_shdr_cross_end,       -EBADMSG },
        { "PN_XNUM, e_shoff wraps",             edit_xnum_shoff_overflow,       -EBADMSG },
        { "PN_XNUM, e_shentsize too small",     edit_xnum_shentsize_small,      -EBADMSG },
        { "PN_XNUM, sh_info 0xffffffff",        edit_xnum_info_huge,            -EBADMSG },
        { "PN_XNUM, sh_info 65537",             edit_xnum_info_too_many,        -EBADMSG },
};

/* Loop index: row * VARIANTS + variant. */
START_TEST(test_malformed) {
        const MalformedVector *v = &malformed[_i / VARIANTS];
        uint8_t id[BUILD_ID_MAX];
        Image im;
        int r;

        image_build(&im, _i % VARIANTS, id20, sizeof(id20), 4);
        v->edit(&im);

        r = image_parse(&im, id);
        ck_assert_msg(r == v->expected, "%s (variant %d): got %d, expected %d",
                      v->name, _i % VARIANTS, r, v->expected);
}
END_TEST

/* An image with one PT_NOTE of @empty empty notes followed by the 20-byte build ID. */
static void image_build_many_notes(Image *im, unsigned variant, unsigned empty, unsigned copies) {
        size_t pos = IMAGE_NOTES_OFF;

        image_init(im, variant);
        image_set_phdrs(im, copies);
        for (unsigned i = 0; i < empty; i++)
                pos = image_put_note(im, pos, 4, "", 0, 0, NULL, 0);
        pos = image_put_note(im, pos, 4, "GNU", 4, NT_GNU_BUILD_ID, id20, sizeof(id20));
        for (unsigned i = 0; i < copies; i++)
                image_put_phdr(im, i, PT_NOTE, IMAGE_NOTES_OFF, pos - IMAGE_NOTES_OFF, 4);
}

/* A note of @total bytes (a multiple of 4, at least 12) that is not GNU's. Returns its end. */
static size_t image_put_filler(Image *im, size_t pos, size_t total) {
        ck_assert_uint_ge(total, 12);
        ck_assert_uint_eq(total % 4, 0);
        ck_assert_uint_le(pos + total, IMAGE_MAX);

        image_put(im, pos, 0, 4);
        image_put(im, pos + 4, total - 12, 4);
        image_put(im, pos + 8, 0x1234, 4);
        memset(im->data + pos + 12, 0x5a, total - 12);
        im->size = MAX(im->size, pos + total);
        return pos + total;
}

/*
 * A PT_NOTE segment is read whole and walked in memory, so the notes in
 * it need no count limit of their own (there used to be one of 4096 per
 * segment, since each note cost a read): only its bytes are bounded. The
 * most notes that fit are walked, a segment of exactly ELF_NOTE_BYTES_MAX
 * bytes is read, one byte more is refused unread.
 */
START_TEST(test_note_segment_limit) {
        _cleanup_free_ Image *im = NULL;
        uint8_t id[BUILD_ID_MAX];
        unsigned most;
        size_t pos;

        im = malloc(sizeof(*im));
        ck_assert_ptr_nonnull(im);

        ck_assert_uint_eq(ELF_NOTE_BYTES_MAX, 65536);

        image_build_many_notes(im, _i, 4096, 1);
        ck_assert_int_eq(image_parse(im, id), 20);
        ck_assert_mem_eq(id, id20, 20);
        /* e_ident, the ELF header, the program header table, the segment. */
        image_check_cost(im, 20, 4, image_header_bytes(im, 1) + 4096 * 12 + 36);

        /* 5458 empty notes and the build ID: 65532 bytes. */
        most = (ELF_NOTE_BYTES_MAX - 36) / 12;
        ck_assert_uint_eq(most, 5458);
        image_build_many_notes(im, _i, most, 1);
        ck_assert_int_eq(image_parse(im, id), 20);
        ck_assert_mem_eq(id, id20, 20);
        image_check_cost(im, 20, 4, image_header_bytes(im, 1) + most * 12 + 36);

        /* A filler note and the build ID at the very end of the segment. */
        image_init(im, _i);
        image_set_phdrs(im, 1);
        pos = image_put_filler(im, IMAGE_NOTES_OFF, ELF_NOTE_BYTES_MAX - 36);
        pos = image_put_note(im, pos, 4, "GNU", 4, NT_GNU_BUILD_ID, id20, sizeof(id20));
        ck_assert_uint_eq(pos - IMAGE_NOTES_OFF, ELF_NOTE_BYTES_MAX);
        image_put_phdr(im, 0, PT_NOTE, IMAGE_NOTES_OFF, ELF_NOTE_BYTES_MAX, 4);
        ck_assert_int_eq(image_parse(im, id), 20);
        ck_assert_mem_eq(id, id20, 20);
        image_check_cost(im, 20, 4, image_header_bytes(im, 1) + ELF_NOTE_BYTES_MAX);

        /* One byte of padding more, inside the image. */
        image_put(im, pos, 0, 1);
        PHDR_SET(im, 0, p_filesz, ELF_NOTE_BYTES_MAX + 1);
        ck_assert_int_eq(image_parse(im, id), -EBADMSG);
        image_check_cost(im, -EBADMSG, 3, image_header_bytes(im, 1));
}
END_TEST

/*
 * The ELF_NOTE_BYTES_MAX budget is shared by the PT_NOTE segments: two
 * halves are read; one byte more in the second is refused after the first
 * was read. This also bounds many headers pointing at one big segment
 * (there used to be a budget of 16384 notes for that).
 */
START_TEST(test_note_bytes_shared) {
        const size_t half = ELF_NOTE_BYTES_MAX / 2;
        _cleanup_free_ Image *im = NULL;
        uint8_t id[BUILD_ID_MAX];
        size_t pos;

        im = malloc(sizeof(*im));
        ck_assert_ptr_nonnull(im);

        image_init(im, _i);
        image_set_phdrs(im, 2);
        pos = image_put_filler(im, IMAGE_NOTES_OFF, half);
        image_put_phdr(im, 0, PT_NOTE, IMAGE_NOTES_OFF, half, 4);
        pos = image_put_filler(im, pos, half - 36);
        pos = image_put_note(im, pos, 4, "GNU", 4, NT_GNU_BUILD_ID, id20, sizeof(id20));
        image_put_phdr(im, 1, PT_NOTE, IMAGE_NOTES_OFF + half, half, 4);
        ck_assert_uint_eq(pos, IMAGE_NOTES_OFF + ELF_NOTE_BYTES_MAX);
        ck_assert_int_eq(image_parse(im, id), 20);
        ck_assert_mem_eq(id, id20, 20);
        image_check_cost(im, 20, 5, image_header_bytes(im, 2) + ELF_NOTE_BYTES_MAX);

        image_put(im, pos, 0, 1);
        PHDR_SET(im, 1, p_filesz, half + 1);
        ck_assert_int_eq(image_parse(im, id), -EBADMSG);
        image_check_cost(im, -EBADMSG, 4, image_header_bytes(im, 2) + half);

        /* Two headers on one segment: its 3000 empty notes, then all of it. */
        image_build_many_notes(im, _i, 3000, 2);
        PHDR_SET(im, 0, p_filesz, 3000 * 12);
        ck_assert_int_eq(image_parse(im, id), -EBADMSG);
        image_check_cost(im, -EBADMSG, 4, image_header_bytes(im, 2) + 3000 * 12);

        /* The same with the segment halved: both fit. */
        image_build_many_notes(im, _i, 1500, 2);
        PHDR_SET(im, 0, p_filesz, 1500 * 12);
        ck_assert_int_eq(image_parse(im, id), 20);
        ck_assert_mem_eq(id, id20, 20);
        image_check_cost(im, 20, 5, image_header_bytes(im, 2) + 1500 * 12 + 1500 * 12 + 36);
}
END_TEST

/*
 * @n PT_NOTE headers: the last one covers the build ID, each other one a
 * segment of @filesz bytes (@filesz < 0: i % 12 for header i, all too
 * small to hold a note) at the start of an empty note.
 */
static void image_build_pt_notes(Image *im, unsigned variant, unsigned n, int filesz) {
        size_t notes, bid;

        image_init(im, variant);
        image_set_phdrs(im, n);
        notes = ALIGN_POW2(im->size, 8);
        bid = image_put_note(im, notes, 4, "", 0, 0, NULL, 0);
        (void) image_put_note(im, bid, 4, "GNU", 4, NT_GNU_BUILD_ID, id20, sizeof(id20));
        for (unsigned i = 0; i + 1 < n; i++)
                image_put_phdr(im, i, PT_NOTE, notes, filesz < 0 ? i % 12 : (unsigned) filesz, 4);
        image_put_phdr(im, n - 1, PT_NOTE, bid, 12 + 4 + 20, 4);
}

/*
 * At most ELF_PT_NOTE_MAX PT_NOTE headers are looked at, one read each;
 * a build ID behind one more is refused. Segments too small to hold a
 * note cost no read, but their headers count all the same.
 */
START_TEST(test_pt_note_limit) {
        const unsigned n = ELF_PT_NOTE_MAX;
        uint8_t id[BUILD_ID_MAX];
        Image im;

        ck_assert_uint_eq(ELF_PT_NOTE_MAX, 16);

        image_build_pt_notes(&im, _i, n, 12);
        ck_assert_int_eq(image_parse(&im, id), 20);
        ck_assert_mem_eq(id, id20, 20);
        image_check_cost(&im, 20, 3 + n, image_header_bytes(&im, n) + (n - 1) * 12 + 36);

        image_build_pt_notes(&im, _i, n + 1, 12);
        ck_assert_int_eq(image_parse(&im, id), -EBADMSG);
        image_check_cost(&im, -EBADMSG, 3 + n, image_header_bytes(&im, n + 1) + n * 12);

        image_build_pt_notes(&im, _i, n, -1);
        ck_assert_int_eq(image_parse(&im, id), 20);
        ck_assert_mem_eq(id, id20, 20);
        image_check_cost(&im, 20, 4, image_header_bytes(&im, n) + 36);

        image_build_pt_notes(&im, _i, n + 1, -1);
        ck_assert_int_eq(image_parse(&im, id), -EBADMSG);
        image_check_cost(&im, -EBADMSG, 3, image_header_bytes(&im, n + 1));
}
END_TEST

/*
 * An image that costs exactly the documented maximum: PN_XNUM, a table of
 * ELF_PHDR_TABLE_MAX bytes, and ELF_PT_NOTE_MAX PT_NOTE headers whose
 * segments take ELF_NOTE_BYTES_MAX bytes, the build ID at the end of the
 * last one. Only the ELF header is smaller in ELF32.
 */
START_TEST(test_cost_max) {
        const size_t seg = ELF_NOTE_BYTES_MAX / ELF_PT_NOTE_MAX;
        const unsigned phnum = ELF_PHDR_TABLE_MAX / 64;
        _cleanup_free_ Image *im = NULL;
        uint8_t id[BUILD_ID_MAX];
        size_t empty, last, shoff;

        im = malloc(sizeof(*im));
        ck_assert_ptr_nonnull(im);

        ck_assert_uint_eq(ELF_READS_MAX, 20);
        ck_assert_uint_eq(ELF_BYTES_MAX, 16 + 64 + 4 + 65536 + 65536);

        image_init(im, _i);
        im->phentsize = 64;
        image_set_phdrs(im, phnum);
        empty = ALIGN_POW2(im->size, 8);
        last = image_put_filler(im, empty, seg);
        ck_assert_uint_eq(image_put_filler(im, last, seg - 36), last + seg - 36);
        shoff = image_put_note(im, last + seg - 36, 4, "GNU", 4, NT_GNU_BUILD_ID, id20, sizeof(id20));
        for (unsigned i = phnum - ELF_PT_NOTE_MAX; i < phnum - 1; i++)
                image_put_phdr(im, i, PT_NOTE, empty, seg, 4);
        image_put_phdr(im, phnum - 1, PT_NOTE, last, seg, 4);

        EHDR_SET(im, e_phnum, PN_XNUM);
        EHDR_SET(im, e_shoff, shoff);
        image_put(im, shoff + IMAGE_FIELD(im, Shdr, sh_info), phnum, 4);
        im->size = shoff + IMAGE_SIZEOF(im, Shdr);

        ck_assert_int_eq(image_parse(im, id), 20);
        ck_assert_mem_eq(id, id20, 20);
        image_check_cost(im, 20, ELF_READS_MAX,
                         ELF_BYTES_MAX - (sizeof(Elf64_Ehdr) - IMAGE_SIZEOF(im, Ehdr)));
}
END_TEST

/*
 * A sparse image of 1 TiB: an ELF header with PN_XNUM, section 0 at a
 * fixed place, and zero bytes (PT_NULL headers) everywhere else. It lets
 * us offer 65536 program headers and more without building megabytes.
 */
typedef struct SparseImage {
        Image head;
        uint64_t shoff;
        uint8_t shdr[sizeof(Elf64_Shdr)];
        uint64_t size;
        uint64_t reads;
        uint64_t bytes;
} SparseImage;

static int sparse_read(void *userdata, uint64_t off, void *buf, size_t n) {
        SparseImage *s = userdata;
        uint8_t *p = buf;

        ck_assert_uint_le(off, s->size);
        ck_assert_uint_le(n, s->size - off);
        s->reads++;
        s->bytes += n;

        for (size_t i = 0; i < n; i++) {
                uint64_t o = off + i;

                if (o < s->head.size)
                        p[i] = s->head.data[o];
                else if (o >= s->shoff && o - s->shoff < sizeof(s->shdr))
                        p[i] = s->shdr[o - s->shoff];
                else
                        p[i] = 0;
        }
        return 0;
}

static void sparse_init(SparseImage *s, unsigned variant, uint32_t phnum) {
        const uint64_t phoff = 0x1000;

        image_init(&s->head, variant);
        s->size = UINT64_C(1) << 40;
        s->shoff = s->size - 0x1000;
        s->reads = 0;
        s->bytes = 0;
        if (!s->head.is64)
                s->shoff = UINT32_MAX - 0x1000;

        EHDR_SET(&s->head, e_phoff, phoff);
        EHDR_SET(&s->head, e_phentsize, IMAGE_SIZEOF(&s->head, Phdr));
        EHDR_SET(&s->head, e_phnum, PN_XNUM);
        EHDR_SET(&s->head, e_shoff, s->shoff);

        /* Encode sh_info through a scratch Image so the byte order matches. */
        memset(s->shdr, 0, sizeof(s->shdr));
        for (size_t i = 0; i < 4; i++) {
                size_t shift = 8 * (s->head.msb ? 3 - i : i);

                s->shdr[IMAGE_FIELD(&s->head, Shdr, sh_info) + i] = (uint8_t) (phnum >> shift);
        }
}

/*
 * A hostile count of program headers costs the reads of the headers that
 * hold it, not one read per header: the table is refused before it is read.
 */
START_TEST(test_phdr_count_hostile) {
        uint8_t id[BUILD_ID_MAX];
        size_t ehdr_size, phdr_size;
        unsigned max;
        SparseImage s;

        sparse_init(&s, _i, 65536);
        ehdr_size = IMAGE_SIZEOF(&s.head, Ehdr);
        phdr_size = IMAGE_SIZEOF(&s.head, Phdr);
        max = ELF_PHDR_TABLE_MAX / phdr_size;

        /* e_ident, the ELF header and sh_info of section 0, then nothing. */
        ck_assert_int_eq(elf_read_build_id(sparse_read, &s, s.size, id), -EBADMSG);
        ck_assert_uint_eq(s.reads, 3);
        ck_assert_uint_eq(s.bytes, EI_NIDENT + ehdr_size + 4);

        sparse_init(&s, _i, UINT32_MAX);
        ck_assert_int_eq(elf_read_build_id(sparse_read, &s, s.size, id), -EBADMSG);
        ck_assert_uint_eq(s.reads, 3);

        /* The most headers of the standard size that fit: all PT_NULL, read at once. */
        sparse_init(&s, _i, max);
        ck_assert_int_eq(elf_read_build_id(sparse_read, &s, s.size, id), 0);
        ck_assert_uint_eq(s.reads, 4);
        ck_assert_uint_eq(s.bytes, EI_NIDENT + ehdr_size + 4 + max * phdr_size);

        sparse_init(&s, _i, max + 1);
        ck_assert_int_eq(elf_read_build_id(sparse_read, &s, s.size, id), -EBADMSG);
        ck_assert_uint_eq(s.reads, 3);

        /* Without PN_XNUM: the largest plain e_phnum is far over the cap too. */
        sparse_init(&s, _i, 0);
        EHDR_SET(&s.head, e_phnum, PN_XNUM - 1);
        ck_assert_int_eq(elf_read_build_id(sparse_read, &s, s.size, id), -EBADMSG);
        ck_assert_uint_eq(s.reads, 2);
        ck_assert_uint_eq(s.bytes, EI_NIDENT + ehdr_size);
}
END_TEST

/* An error of the reader at any step is passed up unchanged, and nothing is returned. */
START_TEST(test_read_error) {
        CountingReader f = { .fail_at = UINT32_MAX };
        uint8_t id[BUILD_ID_MAX];
        Image im;

        image_build(&im, _i, id20, sizeof(id20), 4);
        f.im = &im;

        /* e_ident, ELF header, the program header table, the note segment. */
        ck_assert_int_eq(elf_read_build_id(counting_read, &f, im.size, id), 20);
        ck_assert_uint_eq(f.calls, 4);

        for (unsigned k = 0; k < 4; k++) {
                f = (CountingReader) { .im = &im, .fail_at = k };
                memset(id, POISON, sizeof(id));
                ck_assert_int_eq(elf_read_build_id(counting_read, &f, im.size, id), -ENXIO);
                ck_assert_uint_eq(f.calls, k + 1);
                ck_assert_uint_eq(id[0], POISON);
        }

        /* With PN_XNUM the third read is sh_info of section 0. */
        EHDR_SET(&im, e_phnum, PN_XNUM);
        EHDR_SET(&im, e_shoff, im.size);
        image_put(&im, im.size + IMAGE_SIZEOF(&im, Shdr) - 1, 0, 1);
        f = (CountingReader) { .im = &im, .fail_at = 2 };
        ck_assert_int_eq(elf_read_build_id(counting_read, &f, im.size, id), -ENXIO);
        ck_assert_uint_eq(f.calls, 3);
}
END_TEST

/* Write @im to an unlinked temporary file and return its fd. */
static int image_to_tmpfile(const Image *im) {
        char path[] = "/tmp/test-elf-XXXXXX";
        int fd;

        fd = mkostemp(path, O_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(unlink(path), 0);
        ck_assert_int_eq(write(fd, im->data, im->size), (ssize_t) im->size);
        return fd;
}

START_TEST(test_fd) {
        uint8_t id[BUILD_ID_MAX];
        _cleanup_close_ int fd = -EBADF;
        struct stat st;
        Image im;

        image_build(&im, _i, id20, sizeof(id20), 4);
        fd = image_to_tmpfile(&im);
        ck_assert_int_eq(fstat(fd, &st), 0);
        ck_assert_uint_eq(st.st_size, im.size);

        memset(id, POISON, sizeof(id));
        ck_assert_int_eq(elf_build_id_from_fd(fd, 0, st.st_size, id), 20);
        ck_assert_mem_eq(id, id20, 20);

        /* The same image at an offset inside a bigger file. */
        ck_assert_int_eq(pwrite(fd, im.data, im.size, 4096), (ssize_t) im.size);
        ck_assert_int_eq(elf_build_id_from_fd(fd, 4096, im.size, id), 20);
        ck_assert_mem_eq(id, id20, 20);

        /*
         * The size may exceed the file as long as nothing past its end is
         * read; base + size must not wrap though (this image would parse).
         */
        ck_assert_int_eq(elf_build_id_from_fd(fd, 4096, UINT64_MAX - 4096, id), 20);
        memset(id, POISON, sizeof(id));
        ck_assert_int_eq(elf_build_id_from_fd(fd, 4096, UINT64_MAX - 4095, id), -EINVAL);
        ck_assert_uint_eq(id[0], POISON);

        /* Truncated in the middle of the note segment, size from fstat: malformed. */
        ck_assert_int_eq(ftruncate(fd, im.bid_note + 20), 0);
        ck_assert_int_eq(fstat(fd, &st), 0);
        memset(id, POISON, sizeof(id));
        ck_assert_int_eq(elf_build_id_from_fd(fd, 0, st.st_size, id), -EBADMSG);
        ck_assert_uint_eq(id[0], POISON);

        /* Truncated, but the caller claims the old size: the short read is -EIO. */
        ck_assert_int_eq(elf_build_id_from_fd(fd, 0, im.size, id), -EIO);
        ck_assert_uint_eq(id[0], POISON);

        ck_assert_int_eq(elf_build_id_from_fd(-EBADF, 0, im.size, id), -EBADF);
}
END_TEST

/* pread() errors come back as -errno. */
START_TEST(test_fd_errors) {
        uint8_t id[BUILD_ID_MAX];
        _cleanup_close_ int fd = -EBADF;

        fd = open("/tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(elf_build_id_from_fd(fd, 0, 4096, id), -EISDIR);

        /* A valid-looking number that is not an open fd. */
        ck_assert_int_eq(fcntl(INT32_MAX / 2, F_GETFD), -1);
        ck_assert_int_eq(elf_build_id_from_fd(INT32_MAX / 2, 0, 4096, id), -EBADF);
}
END_TEST

/* Find the GNU build ID among the notes at @p, as mapped in memory by the loader. */
static int notes_find_build_id(const uint8_t *p, size_t size, size_t align, uint8_t *ret) {
        size_t pos = 0;

        while (size - pos >= sizeof(ElfW(Nhdr))) {
                ElfW(Nhdr) nh;
                size_t name, desc;

                memcpy(&nh, p + pos, sizeof(nh));
                name = pos + sizeof(nh);
                desc = ALIGN_POW2(name + nh.n_namesz, align);
                ck_assert_uint_le(desc + nh.n_descsz, size);

                if (nh.n_type == NT_GNU_BUILD_ID && nh.n_namesz == 4 &&
                    memcmp(p + name, "GNU", 4) == 0) {
                        ck_assert_uint_le(nh.n_descsz, BUILD_ID_MAX);
                        memcpy(ret, p + desc, nh.n_descsz);
                        return (int) nh.n_descsz;
                }
                pos = ALIGN_POW2(desc + nh.n_descsz, align);
        }
        return 0;
}

typedef struct LoadedObject {
        /* In: which object. The main program is the first one reported. */
        bool main_program;
        uintptr_t start, end;
        /* Out. */
        bool found;
        char name[64];
        int id_len;
        uint8_t id[BUILD_ID_MAX];
} LoadedObject;

static int loaded_object_visit(struct dl_phdr_info *info, size_t size, void *userdata) {
        LoadedObject *o = userdata;

        if (!o->main_program) {
                uintptr_t phdr = (uintptr_t) info->dlpi_phdr;

                if (phdr < o->start || phdr >= o->end)
                        return 0;
        }

        o->found = true;
        snprintf(o->name, sizeof(o->name), "%s", info->dlpi_name ?: "");
        for (unsigned i = 0; i < info->dlpi_phnum; i++) {
                const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
                int r;

                if (ph->p_type != PT_NOTE)
                        continue;

                r = notes_find_build_id((const uint8_t *) (info->dlpi_addr + ph->p_vaddr),
                                        ph->p_memsz, ph->p_align == 8 ? 8 : 4, o->id);
                if (r > 0) {
                        o->id_len = r;
                        break;
                }
        }
        return 1;
}

START_TEST(test_self_exe) {
        LoadedObject o = { .main_program = true };
        uint8_t id[BUILD_ID_MAX];
        _cleanup_close_ int fd = -EBADF;
        struct stat st;

        ck_assert_int_eq(dl_iterate_phdr(loaded_object_visit, &o), 1);
        ck_assert(o.found);
        /* gcc on Debian links with --build-id (sha1). */
        ck_assert_int_eq(o.id_len, 20);

        fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(fstat(fd, &st), 0);

        memset(id, POISON, sizeof(id));
        ck_assert_int_eq(elf_build_id_from_fd(fd, 0, st.st_size, id), 20);
        ck_assert_mem_eq(id, o.id, 20);
        ck_assert_uint_eq(id[20], POISON);
}
END_TEST

/* The [vdso] mapping from /proc/self/maps. */
static void vdso_find_mapping(uintptr_t *ret_start, uintptr_t *ret_end) {
        _cleanup_(fclosep) FILE *f = NULL;
        _cleanup_free_ char *line = NULL;
        size_t n = 0;
        bool found = false;

        f = fopen("/proc/self/maps", "re");
        ck_assert_ptr_nonnull(f);

        while (getline(&line, &n, f) > 0) {
                size_t len = strcspn(line, "\n");
                unsigned long start, end;

                line[len] = '\0';
                if (len < 6 || strcmp(line + len - 6, "[vdso]") != 0)
                        continue;

                ck_assert_int_eq(sscanf(line, "%lx-%lx", &start, &end), 2);
                ck_assert(!found);
                found = true;
                *ret_start = start;
                *ret_end = end;
        }
        ck_assert_msg(found, "no [vdso] in /proc/self/maps");
}

START_TEST(test_vdso) {
        uintptr_t base, start = 0, end = 0;
        uint8_t id[BUILD_ID_MAX];
        _cleanup_close_ int fd = -EBADF;
        LoadedObject o = {};

        base = getauxval(AT_SYSINFO_EHDR);
        ck_assert_msg(base != 0, "no AT_SYSINFO_EHDR");

        vdso_find_mapping(&start, &end);
        ck_assert_uint_eq(start, base);
        ck_assert_uint_gt(end, start);

        o.start = start;
        o.end = end;
        ck_assert_int_eq(dl_iterate_phdr(loaded_object_visit, &o), 1);
        ck_assert(o.found);
#if defined(__x86_64__) || defined(__aarch64__)
        ck_assert_str_eq(o.name, "linux-vdso.so.1");
#endif
        ck_assert_int_eq(o.id_len, 20);

        memset(id, POISON, sizeof(id));
        ck_assert_int_eq(elf_build_id_from_buffer((const void *) base, end - start, id), 20);
        ck_assert_mem_eq(id, o.id, 20);

        fd = open("/proc/self/mem", O_RDONLY | O_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        memset(id, POISON, sizeof(id));
        ck_assert_int_eq(elf_build_id_from_fd(fd, start, end - start, id), 20);
        ck_assert_mem_eq(id, o.id, 20);
}
END_TEST

/* --- ELF facts ------------------------------------------------------------ */

#define SHDR_SET(im, shoff, idx, field, v)                                               \
        image_put((im), (shoff) + (idx) * IMAGE_SIZEOF(im, Shdr) + IMAGE_FIELD(im, Shdr, field), \
                  (v), IMAGE_FIELD_SIZE(im, Shdr, field))

static ElfInfo *info_parse(const Image *im, unsigned flags) {
        ElfInfo *info = NULL;
        CountingReader c = { .im = im, .fail_at = UINT32_MAX };

        ck_assert_int_eq(elf_read_info(counting_read, &c, im->size, flags, &info), 0);
        ck_assert_ptr_nonnull(info);
        ck_assert_uint_le(c.calls, ELF_INFO_READS_MAX);
        ck_assert_uint_le(c.bytes, ELF_INFO_BYTES_MAX);
        return info;
}

/* The reference image: its type, its one PT_LOAD, its build ID, nothing else. */
START_TEST(test_info_ref) {
        _cleanup_(elf_info_unrefp) ElfInfo *info = NULL;
        Image im;

        image_build(&im, _i, id20, sizeof(id20), 4);
        PHDR_SET(&im, 0, p_vaddr, 0x400000);
        PHDR_SET(&im, 0, p_flags, PF_R | PF_X);
        info = info_parse(&im, 0);

        ck_assert_int_eq(info->type, ELF_TYPE_DYN);
        ck_assert_uint_eq(info->n_loads, 1);
        ck_assert(!info->loads_truncated);
        ck_assert_uint_eq(info->loads[0].offset, 0);
        ck_assert_uint_eq(info->loads[0].vaddr, 0x400000);
        ck_assert_uint_eq(info->loads[0].filesz, im.notes_end);
        ck_assert_uint_eq(info->loads[0].flags, PF_R | PF_X);
        ck_assert_uint_eq(info->build_id_len, 20);
        ck_assert_mem_eq(info->build_id, id20, 20);
        ck_assert_ptr_null(info->go_build_id);
        for (size_t f = 0; f < _ELF_PACKAGE_FIELD_MAX; f++)
                ck_assert_ptr_null(info->package[f]);
        ck_assert(!info->has_htlhash);
        ck_assert_uint_eq(info->memory, sizeof(ElfInfo) + sizeof(ElfLoad));
}
END_TEST

/* e_type, and what is not ELF or not whole. */
START_TEST(test_info_types) {
        static const struct {
                uint16_t e_type;
                ElfType type;
        } types[] = {
                { ET_EXEC, ELF_TYPE_EXEC },
                { ET_DYN, ELF_TYPE_DYN },
                { ET_REL, ELF_TYPE_OTHER },
                { ET_CORE, ELF_TYPE_OTHER },
                { ET_NONE, ELF_TYPE_OTHER },
        };
        Image im;

        for (size_t k = 0; k < ELEMENTSOF(types); k++) {
                _cleanup_(elf_info_unrefp) ElfInfo *info = NULL;

                image_build(&im, _i, id16, sizeof(id16), 4);
                EHDR_SET(&im, e_type, types[k].e_type);
                info = info_parse(&im, 0);
                ck_assert_int_eq(info->type, types[k].type);
                ck_assert_uint_eq(info->build_id_len, 16);
        }

        {
                _cleanup_(elf_info_unrefp) ElfInfo *info = NULL;

                image_build(&im, _i, id16, sizeof(id16), 4);
                im.data[0] = 0x7e;
                info = info_parse(&im, 0);
                ck_assert_int_eq(info->type, ELF_TYPE_NOT_ELF);
                ck_assert_uint_eq(info->n_loads, 0);
                ck_assert_uint_eq(info->build_id_len, 0);
        }
        {
                _cleanup_(elf_info_unrefp) ElfInfo *info = NULL;

                /* The table past the end: nothing of the image is kept. */
                image_build(&im, _i, id16, sizeof(id16), 4);
                EHDR_SET(&im, e_phoff, im.size);
                info = info_parse(&im, 0);
                ck_assert_int_eq(info->type, ELF_TYPE_MALFORMED);
                ck_assert_uint_eq(info->n_loads, 0);
                ck_assert_ptr_null(info->loads);
        }
        {
                _cleanup_(elf_info_unrefp) ElfInfo *info = NULL;

                image_build(&im, _i, id16, sizeof(id16), 4);
                im.size = 20;
                info = info_parse(&im, 0);
                ck_assert_int_eq(info->type, ELF_TYPE_MALFORMED);
        }

        ck_assert_str_eq(elf_type_to_string(ELF_TYPE_EXEC), "exec");
        ck_assert_str_eq(elf_type_to_string(ELF_TYPE_NOT_ELF), "not-elf");
        ck_assert_int_eq(elf_type_from_string("dyn"), ELF_TYPE_DYN);
        ck_assert_int_eq(elf_type_from_string("nope"), -EINVAL);
        ck_assert_ptr_null(elf_type_to_string(_ELF_TYPE_MAX));
}
END_TEST

/* A PT_NOTE with a Go build ID and a package note besides the GNU one. */
static size_t image_build_notes(Image *im, unsigned variant, const char *go, const char *package) {
        size_t pos = IMAGE_NOTES_OFF;

        image_init(im, variant);
        image_set_phdrs(im, 2);
        pos = image_put_note(im, pos, 4, "GNU", 4, NT_GNU_BUILD_ID, id20, sizeof(id20));
        if (go)
                pos = image_put_note(im, pos, 4, "Go", 3, 4, go, (uint32_t) strlen(go));
        if (package)
                pos = image_put_note(im, pos, 4, "FDO", 4, 0xcafe1a7e, package, (uint32_t) strlen(package) + 1);
        image_put_phdr(im, 0, PT_LOAD, 0, pos, 0x1000);
        image_put_phdr(im, 1, PT_NOTE, IMAGE_NOTES_OFF, pos - IMAGE_NOTES_OFF, 4);
        return pos;
}

START_TEST(test_info_notes) {
        _cleanup_(elf_info_unrefp) ElfInfo *info = NULL;
        Image im;

        image_build_notes(&im, _i, "abc/def-GHI_123",
                          "{\"type\":\"deb\",\"name\":\"coreutils\",\"version\":\"9.1-1\","
                          "\"architecture\":\"amd64\",\"os\":\"debian\",\"osVersion\":12,"
                          "\"debugInfoUrl\":\"https://debuginfod.debian.net\",\"extra\":[1,2]}");
        info = info_parse(&im, 0);

        ck_assert_uint_eq(info->build_id_len, 20);
        ck_assert_str_eq(info->go_build_id, "abc/def-GHI_123");
        ck_assert_str_eq(info->package[ELF_PACKAGE_TYPE], "deb");
        ck_assert_str_eq(info->package[ELF_PACKAGE_NAME], "coreutils");
        ck_assert_str_eq(info->package[ELF_PACKAGE_VERSION], "9.1-1");
        ck_assert_str_eq(info->package[ELF_PACKAGE_ARCHITECTURE], "amd64");
        ck_assert_str_eq(info->package[ELF_PACKAGE_OS], "debian");
        /* Not a string: ignored. */
        ck_assert_ptr_null(info->package[ELF_PACKAGE_OS_VERSION]);
        ck_assert_str_eq(info->package[ELF_PACKAGE_DEBUG_INFO_URL], "https://debuginfod.debian.net");
        ck_assert_str_eq(elf_package_field_to_string(ELF_PACKAGE_OS_VERSION), "osVersion");
        ck_assert_int_eq(elf_package_field_from_string("debugInfoUrl"), ELF_PACKAGE_DEBUG_INFO_URL);
}
END_TEST

/* Go build IDs and package notes we refuse, each with the GNU build ID still found. */
START_TEST(test_info_notes_refused) {
        static const struct {
                const char *go;
                const char *package;
        } vectors[] = {
                { "tab\there", "[\"not\",\"an\",\"object\"]" },
                { "\x7f", "{\"name\":\"x\"" },                          /* truncated JSON */
                { "", "{\"name\":\"x\"} trailing" },
                { "é", "{\"name\":\"a\\u0000b\"}" },                    /* embedded NUL */
                { NULL, "{\"a\":{\"b\":{\"c\":{\"d\":{\"e\":1}}}},\"name\":\"deep\"}" },
                { NULL, "" },
        };
        char long_go[GO_BUILD_ID_MAX + 2];
        Image im;

        for (size_t k = 0; k < ELEMENTSOF(vectors); k++) {
                _cleanup_(elf_info_unrefp) ElfInfo *info = NULL;

                image_build_notes(&im, _i, vectors[k].go, vectors[k].package);
                info = info_parse(&im, 0);
                ck_assert_uint_eq(info->build_id_len, 20);
                ck_assert_ptr_null(info->go_build_id);
                ck_assert_ptr_null(info->package[ELF_PACKAGE_NAME]);
        }

        /* GO_BUILD_ID_MAX is kept, one more is not. */
        memset(long_go, 'g', sizeof(long_go));
        long_go[GO_BUILD_ID_MAX] = '\0';
        {
                _cleanup_(elf_info_unrefp) ElfInfo *info = NULL;

                image_build_notes(&im, _i, long_go, NULL);
                info = info_parse(&im, 0);
                ck_assert_uint_eq(strlen(info->go_build_id), GO_BUILD_ID_MAX);
        }
        long_go[GO_BUILD_ID_MAX] = 'g';
        long_go[GO_BUILD_ID_MAX + 1] = '\0';
        {
                _cleanup_(elf_info_unrefp) ElfInfo *info = NULL;

                image_build_notes(&im, _i, long_go, NULL);
                info = info_parse(&im, 0);
                ck_assert_ptr_null(info->go_build_id);
        }

        /* A string field of ELF_PACKAGE_STRING_MAX + 1 bytes is dropped, the others kept. */
        {
                _cleanup_(elf_info_unrefp) ElfInfo *info = NULL;
                char json[ELF_PACKAGE_STRING_MAX + 64];

                snprintf(json, sizeof(json), "{\"os\":\"fedora\",\"name\":\"%0*d\"}",
                         (int) ELF_PACKAGE_STRING_MAX + 1, 0);
                image_build_notes(&im, _i, NULL, json);
                info = info_parse(&im, 0);
                ck_assert_ptr_null(info->package[ELF_PACKAGE_NAME]);
                ck_assert_str_eq(info->package[ELF_PACKAGE_OS], "fedora");
        }
}
END_TEST

/*
 * No PT_NOTE: the notes are found through the section header table, in
 * SHT_NOTE sections, and only there; other section types are not read.
 */
START_TEST(test_info_sections) {
        _cleanup_(elf_info_unrefp) ElfInfo *info = NULL;
        const size_t shoff = 0x800;
        size_t pos = IMAGE_NOTES_OFF, bid_end, go_start;
        Image im;

        image_init(&im, _i);
        image_set_phdrs(&im, 1);
        pos = image_put_note(&im, pos, 4, "GNU", 4, NT_GNU_BUILD_ID, id16, sizeof(id16));
        bid_end = pos;
        go_start = pos = ALIGN_POW2(pos + 40, 8);
        pos = image_put_note(&im, pos, 4, "Go", 3, 4, "go-id", 5);
        image_put_phdr(&im, 0, PT_LOAD, 0, 0x100, 0x1000);

        EHDR_SET(&im, e_shoff, shoff);
        EHDR_SET(&im, e_shnum, 4);
        im.size = MAX(im.size, shoff + 4 * IMAGE_SIZEOF(&im, Shdr));
        /* 0: SHN_UNDEF; 1: a PROGBITS over the notes; 2, 3: the note sections. */
        SHDR_SET(&im, shoff, 1, sh_type, SHT_PROGBITS);
        SHDR_SET(&im, shoff, 1, sh_offset, IMAGE_NOTES_OFF);
        SHDR_SET(&im, shoff, 1, sh_size, 12);
        SHDR_SET(&im, shoff, 2, sh_type, SHT_NOTE);
        SHDR_SET(&im, shoff, 2, sh_offset, IMAGE_NOTES_OFF);
        SHDR_SET(&im, shoff, 2, sh_size, bid_end - IMAGE_NOTES_OFF);
        SHDR_SET(&im, shoff, 2, sh_addralign, 4);
        SHDR_SET(&im, shoff, 3, sh_type, SHT_NOTE);
        SHDR_SET(&im, shoff, 3, sh_offset, go_start);
        SHDR_SET(&im, shoff, 3, sh_size, pos - go_start);
        SHDR_SET(&im, shoff, 3, sh_addralign, 4);

        /* elf_read_build_id() looks at segments only. */
        {
                uint8_t id[BUILD_ID_MAX];

                ck_assert_int_eq(image_parse(&im, id), 0);
        }

        info = info_parse(&im, 0);
        ck_assert_int_eq(info->type, ELF_TYPE_DYN);
        ck_assert_uint_eq(info->build_id_len, 16);
        ck_assert_mem_eq(info->build_id, id16, 16);
        ck_assert_str_eq(info->go_build_id, "go-id");
        info = elf_info_unref(info);

        /* A table that does not hold is ignored, the rest kept. */
        EHDR_SET(&im, e_shoff, im.size - 8);
        info = info_parse(&im, 0);
        ck_assert_int_eq(info->type, ELF_TYPE_DYN);
        ck_assert_uint_eq(info->n_loads, 1);
        ck_assert_uint_eq(info->build_id_len, 0);
        info = elf_info_unref(info);

        EHDR_SET(&im, e_shoff, shoff);
        EHDR_SET(&im, e_shentsize, 8);
        info = info_parse(&im, 0);
        ck_assert_uint_eq(info->build_id_len, 0);
        info = elf_info_unref(info);

        /* A note section running past the end is not read; the next one is. */
        EHDR_SET(&im, e_shentsize, IMAGE_SIZEOF(&im, Shdr));
        SHDR_SET(&im, shoff, 2, sh_size, 0x100000);
        info = info_parse(&im, 0);
        ck_assert_uint_eq(info->build_id_len, 0);
        ck_assert_str_eq(info->go_build_id, "go-id");
}
END_TEST

/* A section inside a PT_NOTE segment already walked is not read again. */
START_TEST(test_info_sections_walked) {
        _cleanup_(elf_info_unrefp) ElfInfo *info = NULL;
        const size_t shoff = 0x800;
        size_t end;
        CountingReader c = { .fail_at = UINT32_MAX };
        Image im;

        end = image_build_notes(&im, _i, NULL, NULL);
        EHDR_SET(&im, e_shoff, shoff);
        EHDR_SET(&im, e_shnum, 2);
        im.size = MAX(im.size, shoff + 2 * IMAGE_SIZEOF(&im, Shdr));
        SHDR_SET(&im, shoff, 1, sh_type, SHT_NOTE);
        SHDR_SET(&im, shoff, 1, sh_offset, IMAGE_NOTES_OFF);
        SHDR_SET(&im, shoff, 1, sh_size, end - IMAGE_NOTES_OFF);

        c.im = &im;
        ck_assert_int_eq(elf_read_info(counting_read, &c, im.size, 0, &info), 0);
        ck_assert_uint_eq(info->build_id_len, 20);
        /* e_ident, ELF header, program headers, the PT_NOTE, the section headers. */
        ck_assert_uint_eq(c.calls, 5);
        info = elf_info_unref(info);

        /* A PT_NOTE that could not be read does not hide the section at its place. */
        PHDR_SET(&im, 1, p_filesz, 0x100000);
        c = (CountingReader) { .im = &im, .fail_at = UINT32_MAX };
        ck_assert_int_eq(elf_read_info(counting_read, &c, im.size, 0, &info), 0);
        ck_assert_uint_eq(info->build_id_len, 20);
        ck_assert_mem_eq(info->build_id, id20, 20);
        ck_assert_uint_eq(c.calls, 5);
}
END_TEST

/* More PT_LOADs than kept. */
START_TEST(test_info_load_limit) {
        _cleanup_(elf_info_unrefp) ElfInfo *info = NULL;
        const unsigned n = ELF_LOAD_MAX + 3;
        uint64_t vaddr;
        Image im;

        image_init(&im, _i);
        image_set_phdrs(&im, n);
        for (unsigned k = 0; k < n; k++) {
                image_put_phdr(&im, k, PT_LOAD, 0x1000 * k, 0x100, 0x1000);
                PHDR_SET(&im, k, p_vaddr, 0x10000 + 0x1000 * k);
        }
        info = info_parse(&im, 0);
        ck_assert_uint_eq(info->n_loads, ELF_LOAD_MAX);
        ck_assert(info->loads_truncated);
        ck_assert_int_eq(elf_info_offset_to_vaddr(info, 0x1000 * (ELF_LOAD_MAX - 1) + 5, &vaddr), 0);
        ck_assert_uint_eq(vaddr, 0x10000 + 0x1000 * (ELF_LOAD_MAX - 1) + 5);
        ck_assert_int_eq(elf_info_offset_to_vaddr(info, 0x1000 * ELF_LOAD_MAX + 5, &vaddr), -E2BIG);
        ck_assert_uint_eq(info->memory, sizeof(ElfInfo) + ELF_LOAD_MAX * sizeof(ElfLoad));
}
END_TEST

/* Offsets against PT_LOADs: the end of p_filesz, bss, holes, overlaps, order. */
START_TEST(test_offset_to_vaddr) {
        ElfLoad loads[] = {
                /* Out of order on purpose, the second overlapping the first's end. */
                { .offset = 0x3000, .vaddr = 0x403000, .filesz = 0x800, .memsz = 0x5000 },
                { .offset = 0x0, .vaddr = 0x400000, .filesz = 0x1234, .memsz = 0x1234 },
                { .offset = 0x1000, .vaddr = 0x900000, .filesz = 0x2000, .memsz = 0x2000 },
                /* bss only: no file bytes. */
                { .offset = 0x5000, .vaddr = 0x600000, .filesz = 0, .memsz = 0x1000 },
                /* wraps: the loader's sum is modulo 2^64 */
                { .offset = 0x8000, .vaddr = UINT64_MAX - 0xf, .filesz = 0x100, .memsz = 0x100 },
        };
        ElfInfo info = {
                .type = ELF_TYPE_DYN,
                .n_loads = ELEMENTSOF(loads),
                .loads = loads,
        };
        static const struct {
                uint64_t offset;
                int r;
                uint64_t vaddr;
        } vectors[] = {
                { 0x0, 0, 0x400000 },
                { 0x1233, 0, 0x401233 },        /* p_offset + p_filesz - 1 */
                { 0x1234, 0, 0x900234 },        /* p_filesz end: the next that covers it */
                { 0x2fff, 0, 0x901fff },
                { 0x3000, 0, 0x403000 },        /* first in program header order wins */
                { 0x37ff, 0, 0x4037ff },
                { 0x3800, -ENOENT, 0 },         /* past p_filesz, inside p_memsz */
                { 0x4fff, -ENOENT, 0 },
                { 0x5000, -ENOENT, 0 },         /* bss-only segment */
                { 0x8010, 0, 0 },               /* wraps to 0 */
                { 0x80ff, 0, 0xef },
                { 0x8100, -ENOENT, 0 },
                { UINT64_MAX, -ENOENT, 0 },
        };

        for (size_t k = 0; k < ELEMENTSOF(vectors); k++) {
                uint64_t vaddr = 0xdead;

                ck_assert_int_eq(elf_info_offset_to_vaddr(&info, vectors[k].offset, &vaddr), vectors[k].r);
                ck_assert_uint_eq(vaddr, vectors[k].r == 0 ? vectors[k].vaddr : 0xdead);
        }

        info.n_loads = 0;
        {
                uint64_t vaddr;

                ck_assert_int_eq(elf_info_offset_to_vaddr(&info, 0, &vaddr), -ENOENT);
        }
}
END_TEST

/* The htlhash, by its definition, for sizes around HTLHASH_CHUNK; any file, ELF or not. */
START_TEST(test_info_htlhash) {
        static const size_t sizes[] = { 0, 1, 100, HTLHASH_CHUNK - 1, HTLHASH_CHUNK, HTLHASH_CHUNK + 1,
                                        2 * HTLHASH_CHUNK, 3 * HTLHASH_CHUNK + 17 };
        static uint8_t data[3 * HTLHASH_CHUNK + 17];

        for (size_t i = 0; i < sizeof(data); i++)
                data[i] = (uint8_t) (i * 7 + i / 251);

        for (size_t k = 0; k < ELEMENTSOF(sizes); k++) {
                _cleanup_(elf_info_unrefp) ElfInfo *info = NULL;
                size_t n = sizes[k], head = MIN(n, (size_t) HTLHASH_CHUNK);
                uint8_t expected[SHA256_DIGEST_SIZE], be[8];
                Sha256 s;

                sha256_init(&s);
                sha256_update(&s, data, head);
                sha256_update(&s, data + n - head, head);
                for (size_t i = 0; i < 8; i++)
                        be[i] = (uint8_t) ((uint64_t) n >> (56 - 8 * i));
                sha256_update(&s, be, 8);
                sha256_final(&s, expected);

                ck_assert_int_eq(elf_info_from_buffer(data, n, ELF_INFO_HTLHASH, &info), 0);
                ck_assert_int_eq(info->type, ELF_TYPE_NOT_ELF);
                ck_assert(info->has_htlhash);
                ck_assert_mem_eq(info->htlhash, expected, HTLHASH_SIZE);
                info = elf_info_unref(info);

                ck_assert_int_eq(elf_info_from_buffer(data, n, 0, &info), 0);
                ck_assert(!info->has_htlhash);
        }

        /* A known value: SHA-256("abc" "abc" 00 00 00 00 00 00 00 03), its first 16 bytes. */
        {
                _cleanup_(elf_info_unrefp) ElfInfo *info = NULL;
                static const uint8_t abc_expected[16] = {
                        0xa7, 0xe7, 0x9e, 0x8a, 0x85, 0xda, 0x69, 0xba,
                        0xd5, 0xc3, 0xfe, 0xa2, 0x09, 0x34, 0x2a, 0xc9,
                };

                ck_assert_int_eq(elf_info_from_buffer("abc", 3, ELF_INFO_HTLHASH, &info), 0);
                ck_assert_mem_eq(info->htlhash, abc_expected, 16);
        }
}
END_TEST

/* A read error fails the parse; nothing is returned. */
START_TEST(test_info_read_error) {
        ElfInfo *info = NULL;
        Image im;

        image_build(&im, _i, id20, sizeof(id20), 4);
        for (unsigned fail_at = 0; fail_at < 4; fail_at++) {
                CountingReader c = { .im = &im, .fail_at = fail_at };

                ck_assert_int_eq(elf_read_info(counting_read, &c, im.size, 0, &info), -ENXIO);
                ck_assert_ptr_null(info);
        }
}
END_TEST

/* --- real binaries, built here -------------------------------------------- */

static bool have_tools;

/* Run @cmd with sh; fail the test unless it exits 0. */
static void run(const char *fmt, ...) __attribute__((__format__(__printf__, 1, 2)));
static void run(const char *fmt, ...) {
        _cleanup_free_ char *cmd = NULL;
        va_list ap;
        int r;

        va_start(ap, fmt);
        ck_assert_int_ge(vasprintf(&cmd, fmt, ap), 0);
        va_end(ap);
        r = system(cmd);
        ck_assert_msg(r == 0, "'%s' failed: %d", cmd, r);
}

static void write_file(const char *path, const void *p, size_t n) {
        _cleanup_(fclosep) FILE *f = fopen(path, "we");

        ck_assert_ptr_nonnull(f);
        ck_assert_uint_eq(fwrite(p, 1, n, f), n);
}

/* A note as objcopy --add-section takes it: header, padded name, padded descriptor. */
static size_t note_bytes(uint8_t *buf, const char *name, uint32_t type, const void *desc, uint32_t descsz) {
        uint32_t namesz = (uint32_t) strlen(name) + 1, h[3] = { namesz, descsz, type };
        size_t pos = 0;

        memcpy(buf, h, sizeof(h));
        pos = sizeof(h);
        memset(buf + pos, 0, ALIGN_POW2(namesz, 4U) + ALIGN_POW2(descsz, 4U));
        memcpy(buf + pos, name, namesz);
        pos += ALIGN_POW2(namesz, 4U);
        memcpy(buf + pos, desc, descsz);
        return pos + ALIGN_POW2(descsz, 4U);
}

static ElfInfo *info_of_file(const char *path, unsigned flags, int *ret_build_id_len, uint8_t id[static BUILD_ID_MAX]) {
        _cleanup_close_ int fd = -EBADF;
        ElfInfo *info = NULL;
        struct stat st;

        fd = open(path, O_RDONLY | O_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(fstat(fd, &st), 0);
        ck_assert_int_eq(elf_info_from_fd(fd, 0, st.st_size, flags, &info), 0);
        *ret_build_id_len = elf_build_id_from_fd(fd, 0, st.st_size, id);
        return info;
}

static bool info_has_exec_load(const ElfInfo *info) {
        for (size_t k = 0; k < info->n_loads; k++)
                if (info->loads[k].flags & PF_X)
                        return true;
        return false;
}

static const char test_program[] = "int main(void) { return 0; }\n";

START_TEST(test_built_binaries) {
        static const struct {
                const char *name;
                const char *flags;
                ElfType type;
                bool build_id;
                size_t min_loads;
        } builds[] = {
                { "pie", "-fPIE -pie", ELF_TYPE_DYN, true, 2 },
                { "nopie", "-fno-PIE -no-pie", ELF_TYPE_EXEC, true, 2 },
                { "sepcode", "-Wl,-z,separate-code", ELF_TYPE_DYN, true, 4 },
                { "nobid", "-Wl,--build-id=none", ELF_TYPE_DYN, false, 2 },
                { "shared", "-shared -fPIC", ELF_TYPE_DYN, true, 2 },
        };
        char dir[] = "/tmp/test-elf-XXXXXX";

        ck_assert_ptr_nonnull(mkdtemp(dir));
        run("printf '%%s' '%s' > %s/t.c", test_program, dir);

        for (size_t k = 0; k < ELEMENTSOF(builds); k++) {
                _cleanup_(elf_info_unrefp) ElfInfo *info = NULL;
                _cleanup_free_ char *path = NULL;
                uint8_t id[BUILD_ID_MAX];
                int len;

                ck_assert_int_ge(asprintf(&path, "%s/%s", dir, builds[k].name), 0);
                run("gcc -O1 %s -o %s %s/t.c", builds[k].flags, path, dir);
                info = info_of_file(path, ELF_INFO_HTLHASH, &len, id);

                ck_assert_msg(info->type == builds[k].type, "%s: type %s", builds[k].name,
                              elf_type_to_string(info->type));
                ck_assert_uint_ge(info->n_loads, builds[k].min_loads);
                ck_assert(!info->loads_truncated);
                ck_assert(info_has_exec_load(info));
                ck_assert(info->has_htlhash);
                ck_assert_ptr_null(info->go_build_id);
                if (builds[k].build_id) {
                        ck_assert_int_eq(len, 20);
                        ck_assert_uint_eq(info->build_id_len, 20);
                        ck_assert_mem_eq(info->build_id, id, 20);
                } else {
                        ck_assert_int_eq(len, 0);
                        ck_assert_uint_eq(info->build_id_len, 0);
                }
        }

        run("rm -rf %s", dir);
}
END_TEST

/*
 * Notes that only the section headers lead to: a build ID, a Go build ID
 * and a package note added by objcopy to a binary linked without a build
 * ID. objcopy makes no segment for a section it adds, so no PT_NOTE holds
 * them.
 */
START_TEST(test_built_notes) {
        static const uint8_t bid[20] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20 };
        static const char go[] = "Zf3kq_9u1/abcdEFGH-ijkl/mnop";
        static const char pkg[] = "{\"type\":\"rpm\",\"name\":\"hello\",\"version\":\"1.0-1.fc40\","
                                  "\"architecture\":\"x86_64\",\"osCpe\":\"cpe:/o:fedoraproject:fedora:40\"}";
        _cleanup_(elf_info_unrefp) ElfInfo *info = NULL;
        char dir[] = "/tmp/test-elf-XXXXXX";
        _cleanup_free_ char *path = NULL;
        uint8_t buf[512], id[BUILD_ID_MAX];
        size_t n;
        int len;

        ck_assert_ptr_nonnull(mkdtemp(dir));
        run("printf '%%s' '%s' > %s/t.c", test_program, dir);
        run("gcc -O1 -Wl,--build-id=none -o %s/t %s/t.c", dir, dir);

        n = note_bytes(buf, "GNU", NT_GNU_BUILD_ID, bid, sizeof(bid));
        ck_assert_int_ge(asprintf(&path, "%s/bid.note", dir), 0);
        write_file(path, buf, n);
        path = mfree(path);
        n = note_bytes(buf, "Go", 4, go, sizeof(go) - 1);
        ck_assert_int_ge(asprintf(&path, "%s/go.note", dir), 0);
        write_file(path, buf, n);
        path = mfree(path);
        n = note_bytes(buf, "FDO", 0xcafe1a7e, pkg, sizeof(pkg));
        ck_assert_int_ge(asprintf(&path, "%s/pkg.note", dir), 0);
        write_file(path, buf, n);
        path = mfree(path);

        run("cd %s && objcopy --add-section .note.gnu.build-id=bid.note "
            "--add-section .note.go.buildid=go.note --add-section .note.package=pkg.note t t2", dir);
        ck_assert_int_ge(asprintf(&path, "%s/t2", dir), 0);
        info = info_of_file(path, 0, &len, id);

        /* Not in any PT_NOTE: the segment-only reader finds nothing. */
        ck_assert_int_eq(len, 0);
        ck_assert_int_eq(info->type, ELF_TYPE_DYN);
        ck_assert_uint_eq(info->build_id_len, 20);
        ck_assert_mem_eq(info->build_id, bid, 20);
        ck_assert_str_eq(info->go_build_id, go);
        ck_assert_str_eq(info->package[ELF_PACKAGE_TYPE], "rpm");
        ck_assert_str_eq(info->package[ELF_PACKAGE_NAME], "hello");
        ck_assert_str_eq(info->package[ELF_PACKAGE_VERSION], "1.0-1.fc40");
        ck_assert_str_eq(info->package[ELF_PACKAGE_ARCHITECTURE], "x86_64");
        ck_assert_ptr_null(info->package[ELF_PACKAGE_OS]);
        info = elf_info_unref(info);

        /* The same, made allocated, as Go's linker does for its note. */
        run("cd %s && objcopy --add-section .note.go.buildid=go.note "
            "--set-section-flags .note.go.buildid=alloc,readonly t t3 2>/dev/null", dir);
        path = mfree(path);
        ck_assert_int_ge(asprintf(&path, "%s/t3", dir), 0);
        info = info_of_file(path, 0, &len, id);
        ck_assert_str_eq(info->go_build_id, go);
        ck_assert_uint_eq(info->build_id_len, 0);

        run("rm -rf %s", dir);
}
END_TEST

/* The distribution's libc, as the loader has it mapped in this process. */
static int libc_visit(struct dl_phdr_info *i, size_t size, void *userdata) {
        char **ret = userdata;

        if (i->dlpi_name && strstr(i->dlpi_name, "/libc.so")) {
                *ret = strdup(i->dlpi_name);
                return 1;
        }
        return 0;
}

START_TEST(test_libc) {
        _cleanup_(elf_info_unrefp) ElfInfo *info = NULL;
        _cleanup_free_ char *path = NULL;
        uint8_t id[BUILD_ID_MAX];
        int len;

        ck_assert_int_eq(dl_iterate_phdr(libc_visit, &path), 1);
        ck_assert_ptr_nonnull(path);
        info = info_of_file(path, 0, &len, id);
        ck_assert_int_eq(info->type, ELF_TYPE_DYN);
        ck_assert_int_gt(len, 0);
        ck_assert_uint_eq(info->build_id_len, (size_t) len);
        ck_assert_mem_eq(info->build_id, id, (size_t) len);
        ck_assert_uint_ge(info->n_loads, 2);
        ck_assert(info_has_exec_load(info));
        /* The loader's view: its first PT_LOAD maps offset 0 at vaddr 0 (a DSO). */
        ck_assert_uint_eq(info->loads[0].offset, 0);
        ck_assert_uint_eq(info->loads[0].vaddr, 0);
}
END_TEST

static Suite *elf_suite(bool have_vdso) {
        Suite *s;
        TCase *tc;

        s = suite_create("elf");

#define ADD_TCASE(name, fn, n) do {                             \
                tc = tcase_create(name);                        \
                tcase_add_loop_test(tc, fn, 0, n);              \
                suite_add_tcase(s, tc);                         \
        } while (0)

        ADD_TCASE("build_id_20", test_build_id_20, VARIANTS);
        ADD_TCASE("build_id_16", test_build_id_16, VARIANTS);
        ADD_TCASE("build_id_sizes", test_build_id_sizes, VARIANTS);
        ADD_TCASE("align8", test_align8, VARIANTS);
        ADD_TCASE("no_build_id", test_no_build_id, VARIANTS);
        ADD_TCASE("segments", test_segments, VARIANTS);
        ADD_TCASE("phentsize_large", test_phentsize_large, VARIANTS);
        ADD_TCASE("pn_xnum", test_pn_xnum, VARIANTS);
        ADD_TCASE("trailing_bytes", test_trailing_bytes, VARIANTS);
        ADD_TCASE("malformed", test_malformed, (int) ELEMENTSOF(malformed) * VARIANTS);
        ADD_TCASE("note_segment_limit", test_note_segment_limit, VARIANTS);
        ADD_TCASE("note_bytes_shared", test_note_bytes_shared, VARIANTS);
        ADD_TCASE("pt_note_limit", test_pt_note_limit, VARIANTS);
        ADD_TCASE("cost_max", test_cost_max, VARIANTS);
        ADD_TCASE("phdr_table_limit", test_phdr_table_limit, VARIANTS);
        ADD_TCASE("phdr_count_hostile", test_phdr_count_hostile, VARIANTS);
        ADD_TCASE("read_error", test_read_error, VARIANTS);
        ADD_TCASE("fd", test_fd, VARIANTS);
        ADD_TCASE("fd_errors", test_fd_errors, 1);
        ADD_TCASE("self_exe", test_self_exe, 1);
        if (have_vdso)
                ADD_TCASE("vdso", test_vdso, 1);
        ADD_TCASE("info_ref", test_info_ref, VARIANTS);
        ADD_TCASE("info_types", test_info_types, VARIANTS);
        ADD_TCASE("info_notes", test_info_notes, VARIANTS);
        ADD_TCASE("info_notes_refused", test_info_notes_refused, VARIANTS);
        ADD_TCASE("info_sections", test_info_sections, VARIANTS);
        ADD_TCASE("info_sections_walked", test_info_sections_walked, VARIANTS);
        ADD_TCASE("info_load_limit", test_info_load_limit, VARIANTS);
        ADD_TCASE("offset_to_vaddr", test_offset_to_vaddr, 1);
        ADD_TCASE("info_htlhash", test_info_htlhash, 1);
        ADD_TCASE("info_read_error", test_info_read_error, VARIANTS);
        if (have_tools) {
                ADD_TCASE("built_binaries", test_built_binaries, 1);
                ADD_TCASE("built_notes", test_built_notes, 1);
        }
        ADD_TCASE("libc", test_libc, 1);

#undef ADD_TCASE

        return s;
}

int main(void) {
        bool have_vdso;
        int r;

        /*
         * Valgrind hides the vDSO from its guest (and vdso=0 disables it).
         * Then the vDSO test cannot run: the program reports SKIP (77)
         * instead of success, so a missing test never looks like a pass.
         */
        have_vdso = getauxval(AT_SYSINFO_EHDR) != 0;
        if (!have_vdso)
                fprintf(stderr, "No vDSO in this process (valgrind, vdso=0?), skipping the vdso test.\n");

        /* The binaries built at run time need gcc and objcopy. */
        have_tools = system("command -v gcc >/dev/null 2>&1 && command -v objcopy >/dev/null 2>&1") == 0;
        if (!have_tools)
                fprintf(stderr, "No gcc or objcopy, skipping the tests on built binaries.\n");

        r = check_run(elf_suite(have_vdso));
        if (r == EXIT_SUCCESS && (!have_vdso || !have_tools))
                return 77;
        return r;
}
