/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The ELF build-ID parser (daemon/elf-note.h) on an image of any bytes.
 *
 * ASan catches reads outside the input through elf_build_id_from_buffer();
 * the second pass through a reader that aborts on any request outside
 * [0, size) catches a bounds bug even where the memcpy would have stayed
 * inside the allocation, and one that costs more reads or bytes than
 * ELF_READS_MAX and ELF_BYTES_MAX. The third reads the image from a
 * memfd with pread(), as the daemon reads files and /proc/PID/mem. Any
 * result outside the documented set, or any disagreement, aborts.
 *
 * Then the facts parse (elf_read_info()), with the htlhash, the section
 * header fallback and the package JSON, through the same strict reader
 * held to ELF_INFO_READS_MAX and ELF_INFO_BYTES_MAX: its fields must stay
 * within their documented bounds, agree with the build ID parse where
 * both see the same note, and be the same read from the memfd.
 */

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "elf-note.h"
#include "fuzz.h"
#include "macro.h"

typedef struct FuzzInput {
        const uint8_t *data;
        size_t size;
        unsigned reads;
        uint64_t bytes;
        unsigned max_reads;
        uint64_t max_bytes;
} FuzzInput;

static int fuzz_read(void *userdata, uint64_t off, void *buf, size_t n) {
        FuzzInput *in = userdata;

        FUZZ_CHECK(off <= in->size && n <= in->size - off);

        /* n is at most the input size, so the sum cannot wrap. */
        in->reads++;
        in->bytes += n;
        FUZZ_CHECK(in->reads <= in->max_reads && in->bytes <= in->max_bytes);

        memcpy(buf, in->data + off, n);
        return 0;
}

static void check_info(const ElfInfo *i, size_t size) {
        FUZZ_CHECK(i->n_ref == 1);
        FUZZ_CHECK(i->type >= 0 && i->type < _ELF_TYPE_MAX);
        FUZZ_CHECK(i->n_loads <= ELF_LOAD_MAX);
        FUZZ_CHECK(!i->loads_truncated || i->n_loads == ELF_LOAD_MAX);
        FUZZ_CHECK((i->n_loads == 0) == !i->loads);
        FUZZ_CHECK(i->build_id_len <= BUILD_ID_MAX);
        FUZZ_CHECK(i->has_htlhash);
        if (IN_SET(i->type, ELF_TYPE_NOT_ELF, ELF_TYPE_MALFORMED))
                FUZZ_CHECK(i->n_loads == 0 && i->build_id_len == 0 && !i->go_build_id);
        if (i->go_build_id) {
                size_t n = strlen(i->go_build_id);

                FUZZ_CHECK(n > 0 && n <= GO_BUILD_ID_MAX);
                for (size_t k = 0; k < n; k++)
                        FUZZ_CHECK(i->go_build_id[k] >= 0x20 && i->go_build_id[k] <= 0x7e);
        }
        for (size_t f = 0; f < _ELF_PACKAGE_FIELD_MAX; f++)
                FUZZ_CHECK(!i->package[f] ||
                           (strlen(i->package[f]) > 0 && strlen(i->package[f]) <= ELF_PACKAGE_STRING_MAX));

        /* Each load maps its own first and last file byte (or an earlier load does), and nothing past them. */
        for (size_t k = 0; k < i->n_loads; k++) {
                const ElfLoad *l = &i->loads[k];
                uint64_t v;

                if (l->filesz == 0 || l->offset > UINT64_MAX - l->filesz)
                        continue;
                FUZZ_CHECK(elf_info_offset_to_vaddr(i, l->offset, &v) == 0);
                FUZZ_CHECK(elf_info_offset_to_vaddr(i, l->offset + l->filesz - 1, &v) == 0);
        }
        {
                uint64_t v;
                int r = elf_info_offset_to_vaddr(i, size, &v);

                FUZZ_CHECK(r == 0 || r == -ENOENT || (r == -E2BIG && i->loads_truncated));
        }
}

static bool info_equal(const ElfInfo *a, const ElfInfo *b) {
        if (a->type != b->type || a->n_loads != b->n_loads || a->loads_truncated != b->loads_truncated ||
            a->build_id_len != b->build_id_len || memcmp(a->build_id, b->build_id, a->build_id_len) != 0 ||
            memcmp(a->htlhash, b->htlhash, HTLHASH_SIZE) != 0 || a->memory != b->memory)
                return false;
        if (a->n_loads > 0 && memcmp(a->loads, b->loads, a->n_loads * sizeof(ElfLoad)) != 0)
                return false;
        if (!a->go_build_id != !b->go_build_id || (a->go_build_id && strcmp(a->go_build_id, b->go_build_id) != 0))
                return false;
        for (size_t f = 0; f < _ELF_PACKAGE_FIELD_MAX; f++)
                if (!a->package[f] != !b->package[f] ||
                    (a->package[f] && strcmp(a->package[f], b->package[f]) != 0))
                        return false;
        return true;
}

/* The facts parse, against the build ID parse's result @ra (and ID @id) of the same image. */
static void fuzz_info(const uint8_t *data, size_t size, int ra, const uint8_t *id, int fd) {
        _cleanup_(elf_info_unrefp) ElfInfo *i = NULL, *j = NULL;
        FuzzInput in = {
                .data = data,
                .size = size,
                .max_reads = ELF_INFO_READS_MAX,
                .max_bytes = ELF_INFO_BYTES_MAX,
        };
        int r;

        r = elf_read_info(fuzz_read, &in, size, ELF_INFO_HTLHASH, &i);
        FUZZ_CHECK(r == 0 || r == -ENOMEM);
        if (r < 0)
                return;
        check_info(i, size);

        FUZZ_CHECK((ra == -ENOEXEC) == (i->type == ELF_TYPE_NOT_ELF));
        /* A build ID in a PT_NOTE is the first the facts find too. */
        if (ra > 0)
                FUZZ_CHECK(i->build_id_len == (size_t) ra && memcmp(i->build_id, id, (size_t) ra) == 0);

        r = elf_info_from_fd(fd, 0, size, ELF_INFO_HTLHASH, &j);
        FUZZ_CHECK(r == 0 || r == -ENOMEM);
        if (r == 0)
                FUZZ_CHECK(info_equal(i, j));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        uint8_t a[BUILD_ID_MAX], b[BUILD_ID_MAX], c[BUILD_ID_MAX];
        FuzzInput in = {
                .data = data,
                .size = size,
                .max_reads = ELF_READS_MAX,
                .max_bytes = ELF_BYTES_MAX,
        };
        _cleanup_close_ int fd = -EBADF;
        int ra, rb, rc;

        ra = elf_build_id_from_buffer(data, size, a);
        FUZZ_CHECK(IN_SET(ra, -ENOEXEC, -EBADMSG, -ENOMEM) || (ra >= 0 && ra <= BUILD_ID_MAX));

        /* The same parse through the strict reader must agree, ID bytes included. */
        rb = elf_read_build_id(fuzz_read, &in, size, b);
        FUZZ_CHECK(rb == ra);
        FUZZ_CHECK(ra <= 0 || memcmp(a, b, (size_t) ra) == 0);

        /* And through pread(), but for the memory it may lack. */
        fd = fuzz_memfd("fuzz-elf", data, size);
        FUZZ_CHECK(fd >= 0);
        rc = elf_build_id_from_fd(fd, 0, size, c);
        FUZZ_CHECK(rc == ra || rc == -ENOMEM || ra == -ENOMEM);
        FUZZ_CHECK(rc != ra || ra <= 0 || memcmp(a, c, (size_t) ra) == 0);

        fuzz_info(data, size, ra, a, fd);
        return 0;
}
