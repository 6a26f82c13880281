/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The text of /proc/PID/maps, as a hostile target could make the kernel
 * print it: any bytes in a path.
 *
 * Each line (the input split at newlines) goes to vma_parse_maps_line() in
 * a buffer of exactly its length plus the byte the parser may write, so
 * that ASan sees a step past it. A parsed line must keep the promises of
 * vma.h, and printed back as the kernel would print that VMA it must parse
 * to the same VMA.
 *
 * Then the whole input is the maps file of a text backend source, on a
 * memfd (the backend only reads, seeks and preads its fd). A walk over it
 * in address order must move forwards, and each address of the walk looked
 * up again, from the last one back (each a new pass from the start), must
 * find the same VMA: vma.h promises any order is correct.
 */

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "macro.h"
#include "vma.h"

/* Finds of one walk that are looked up again; a few KiB of input hold no more lines. */
#define WALK_MAX 256U

#define DELETED_SUFFIX " (deleted)"

DEFINE_CLEANUP(VmaSource *, vma_source_free);

static bool vma_kind_is_valid(VmaKind k) {
        return k >= 0 && k < _VMA_KIND_MAX;
}

/* What vma.h promises of a VMA, whichever backend made it. */
static void check_vma(const Vma *v) {
        FUZZ_CHECK(v->start < v->end);
        FUZZ_CHECK((v->perms & ~(unsigned) (VMA_PERM_READ|VMA_PERM_WRITE|VMA_PERM_EXEC|VMA_PERM_SHARED)) == 0);
        FUZZ_CHECK(vma_kind_is_valid(v->kind));
        FUZZ_CHECK(v->name);
        FUZZ_CHECK(strlen(v->name) == v->name_len);
        FUZZ_CHECK(v->name_len < PATH_MAX);
        FUZZ_CHECK(!v->deleted || v->name[0] == '/');
        FUZZ_CHECK(v->build_id_len == 0);
        FUZZ_CHECK(!v->build_id_skipped);

        /* The kind is the name's, except for shared anonymous memory: a deleted "/dev/zero". */
        if (v->deleted && strcmp(v->name, "/dev/zero") == 0)
                FUZZ_CHECK(v->kind == VMA_KIND_ANONYMOUS);
        else
                FUZZ_CHECK(v->kind == vma_kind_from_name(v->name, v->inode));
}

static bool vma_equal(const Vma *a, const Vma *b) {
        return a->start == b->start && a->end == b->end && a->offset == b->offset && a->inode == b->inode &&
               a->dev_major == b->dev_major && a->dev_minor == b->dev_minor && a->perms == b->perms &&
               a->kind == b->kind && a->deleted == b->deleted && a->name_len == b->name_len &&
               memcmp(a->name, b->name, a->name_len) == 0;
}

/*
 * Print @v as the kernel's show_map_vma() does: the fixed fields, padding
 * when there is a name, the name with each newline as "\012", and the
 * mark of a deleted file. Returns the length; @buf has room for it.
 */
static size_t print_vma(const Vma *v, char *buf, size_t size) {
        size_t n;
        int k;

        k = snprintf(buf, size, "%08" PRIx64 "-%08" PRIx64 " %c%c%c%c %08" PRIx64 " %02" PRIx32 ":%02" PRIx32 " %" PRIu64,
                     v->start, v->end,
                     v->perms & VMA_PERM_READ ? 'r' : '-',
                     v->perms & VMA_PERM_WRITE ? 'w' : '-',
                     v->perms & VMA_PERM_EXEC ? 'x' : '-',
                     v->perms & VMA_PERM_SHARED ? 's' : 'p',
                     v->offset, v->dev_major, v->dev_minor, v->inode);
        FUZZ_CHECK(k > 0 && (size_t) k < size);
        n = (size_t) k;

        if (v->name_len == 0 && !v->deleted)
                return n;

        /* The kernel pads to column 73; one space is what the parser needs. */
        buf[n++] = ' ';
        for (size_t i = 0; i < v->name_len; i++) {
                if (v->name[i] == '\n') {
                        memcpy(buf + n, "\\012", 4);
                        n += 4;
                } else
                        buf[n++] = v->name[i];
        }
        if (v->deleted) {
                memcpy(buf + n, DELETED_SUFFIX, strlen(DELETED_SUFFIX));
                n += strlen(DELETED_SUFFIX);
        }
        FUZZ_CHECK(n < size);
        return n;
}

static void fuzz_line(const uint8_t *data, size_t len) {
        _cleanup_free_ char *line = NULL, *again = NULL;
        Vma v, w;
        size_t size, n;
        int r;

        /* The parser may write line[len]. */
        line = malloc(len + 1);
        FUZZ_CHECK(line);
        memcpy(line, data, len);
        line[len] = 'X';

        r = vma_parse_maps_line(line, len, &v);
        FUZZ_CHECK(r == 0 || r == -EBADMSG);
        if (r < 0)
                return;

        check_vma(&v);
        FUZZ_CHECK(v.name >= line && v.name + v.name_len <= line + len);

        /*
         * Printed back, it parses the same. Unescaping only shrinks the
         * name, so the fixed fields (at most 128 bytes), the escaped name
         * and the mark bound the line.
         */
        size = 128 + 4 * v.name_len + strlen(DELETED_SUFFIX) + 1;
        again = malloc(size);
        FUZZ_CHECK(again);
        n = print_vma(&v, again, size);
        r = vma_parse_maps_line(again, n, &w);
        FUZZ_CHECK(r == 0);
        FUZZ_CHECK(vma_equal(&v, &w));
}

/* One find of a walk: the address asked for, and the VMA found (its name copied) or the result. */
typedef struct Find {
        uint64_t addr;
        int r;
        Vma vma;
        char *name;
} Find;

static int find(VmaSource *s, uint64_t addr, Find *ret) {
        int r;

        *ret = (Find) { .addr = addr };
        r = vma_source_find(s, addr, 0, &ret->vma);
        FUZZ_CHECK(r == 0 || r == 1 || IN_SET(r, -EBADMSG, -ESRCH, -ENOMEM));
        ret->r = r;
        if (r <= 0)
                return r;

        check_vma(&ret->vma);
        /* The VMA covering @addr, or the next one above it. */
        FUZZ_CHECK(addr < ret->vma.end);
        FUZZ_CHECK(strcmp(ret->vma.name, "[vsyscall]") != 0);

        ret->name = strndup(ret->vma.name, ret->vma.name_len);
        FUZZ_CHECK(ret->name);
        ret->vma.name = ret->name;
        return r;
}

static void fuzz_source(const uint8_t *data, size_t size) {
        _cleanup_(vma_source_freep) VmaSource *s = NULL;
        Find walk[WALK_MAX];
        size_t n = 0;
        uint64_t addr = 0;
        int fd, r;

        fd = fuzz_memfd("fuzz-maps", data, size);
        FUZZ_CHECK(fd >= 0);
        r = vma_source_new(&s, fd, VMA_BACKEND_TEXT);
        FUZZ_CHECK(r == 0);

        r = vma_source_begin(s);
        /* An empty map is an address space gone. */
        FUZZ_CHECK(r == 0 || r == -ESRCH);
        FUZZ_CHECK(r == -ESRCH ? size == 0 : size > 0);
        if (r < 0)
                return;

        /* In address order, each find starting where the last VMA ended. */
        while (n < WALK_MAX) {
                r = find(s, addr, &walk[n]);
                n++;
                if (r <= 0)
                        break;
                FUZZ_CHECK(walk[n - 1].vma.end > addr);
                addr = walk[n - 1].vma.end;
        }

        /*
         * Backwards: every find a new pass, and the same answers. After an
         * error the source is only good for a new pass, as the daemon
         * makes one for its next call.
         */
        r = vma_source_begin(s);
        FUZZ_CHECK(r == 0);
        for (size_t i = n; i > 0; i--) {
                const Find *f = &walk[i - 1];
                Find g;

                r = find(s, f->addr, &g);
                FUZZ_CHECK(r == f->r);
                if (r > 0)
                        FUZZ_CHECK(vma_equal(&f->vma, &g.vma));
                free(g.name);
        }

        for (size_t i = 0; i < n; i++)
                free(walk[i].name);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const uint8_t *p = data, *end = data + size;

        while (p < end) {
                const uint8_t *nl = memchr(p, '\n', (size_t) (end - p));
                size_t len = (size_t) ((nl ?: end) - p);

                fuzz_line(p, len);
                p += len + (nl ? 1 : 0);
        }

        fuzz_source(data, size);
        return 0;
}
