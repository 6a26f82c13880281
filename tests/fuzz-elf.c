/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * libFuzzer entry point for the ELF build-ID parser.
 *
 *   clang -fsanitize=fuzzer,address,undefined -I common -I daemon \
 *         tests/fuzz-elf.c daemon/elf-note.c -o fuzz-elf
 *
 * ASan catches reads outside the input through elf_build_id_from_buffer();
 * the second pass through a reader that aborts on any request outside
 * [0, size) catches a bounds bug even where the memcpy would have stayed
 * inside the allocation, and one that costs more reads or bytes than
 * ELF_READS_MAX and ELF_BYTES_MAX. Any result outside the documented set
 * aborts.
 */

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "elf-note.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct FuzzInput {
        const uint8_t *data;
        size_t size;
        unsigned reads;
        uint64_t bytes;
} FuzzInput;

static int fuzz_read(void *userdata, uint64_t off, void *buf, size_t n) {
        FuzzInput *in = userdata;

        if (off > in->size || n > in->size - off)
                abort();

        /* n is at most the input size, so the sum cannot wrap. */
        in->reads++;
        in->bytes += n;
        if (in->reads > ELF_READS_MAX || in->bytes > ELF_BYTES_MAX)
                abort();

        memcpy(buf, in->data + off, n);
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        uint8_t a[BUILD_ID_MAX], b[BUILD_ID_MAX];
        FuzzInput in = {
                .data = data,
                .size = size,
        };
        int ra, rb;

        ra = elf_build_id_from_buffer(data, size, a);
        if (ra != -ENOEXEC && ra != -EBADMSG && ra != -ENOMEM && (ra < 0 || ra > BUILD_ID_MAX))
                abort();

        /* The same parse through the strict reader must agree, ID bytes included. */
        rb = elf_read_build_id(fuzz_read, &in, size, b);
        if (rb != ra)
                abort();
        if (ra > 0 && memcmp(a, b, (size_t) ra) != 0)
                abort();

        return 0;
}
