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
 */

#include <errno.h>
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
} FuzzInput;

static int fuzz_read(void *userdata, uint64_t off, void *buf, size_t n) {
        FuzzInput *in = userdata;

        FUZZ_CHECK(off <= in->size && n <= in->size - off);

        /* n is at most the input size, so the sum cannot wrap. */
        in->reads++;
        in->bytes += n;
        FUZZ_CHECK(in->reads <= ELF_READS_MAX && in->bytes <= ELF_BYTES_MAX);

        memcpy(buf, in->data + off, n);
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        uint8_t a[BUILD_ID_MAX], b[BUILD_ID_MAX], c[BUILD_ID_MAX];
        FuzzInput in = {
                .data = data,
                .size = size,
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

        return 0;
}
