/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check-run.h"
#include "macro.h"
#include "procmap-query.h"
#include "vma.h"

START_TEST(test_flags_to_perms) {
        ck_assert_uint_eq(vma_flags_to_perms(0), 0);
        ck_assert_uint_eq(vma_flags_to_perms(PROCMAP_QUERY_VMA_READABLE), VMA_PERM_READ);
        ck_assert_uint_eq(vma_flags_to_perms(PROCMAP_QUERY_VMA_READABLE | PROCMAP_QUERY_VMA_WRITABLE),
                          VMA_PERM_READ | VMA_PERM_WRITE);
        ck_assert_uint_eq(vma_flags_to_perms(PROCMAP_QUERY_VMA_EXECUTABLE | PROCMAP_QUERY_VMA_SHARED),
                          VMA_PERM_EXEC | VMA_PERM_SHARED);
        /* Query flags are not permissions. */
        ck_assert_uint_eq(vma_flags_to_perms(PROCMAP_QUERY_COVERING_OR_NEXT_VMA | PROCMAP_QUERY_VMA_EXECUTABLE),
                          VMA_PERM_EXEC);
        ck_assert_uint_eq(vma_flags_to_perms(PROCMAP_QUERY_FILE_BACKED_VMA), 0);
}
END_TEST

START_TEST(test_probe) {
        int r = vma_backend_probe();
        VmaBackend b = _VMA_BACKEND_INVALID;

        ck_assert_msg(r == 0 || r == 1, "probe failed: %s", strerror(-r));

        ck_assert_int_eq(vma_backend_resolve(VMA_BACKEND_AUTO, &b), 0);
        ck_assert_int_eq(b, r ? VMA_BACKEND_IOCTL : VMA_BACKEND_TEXT);
        ck_assert_int_eq(vma_backend_resolve(VMA_BACKEND_TEXT, &b), 0);
        ck_assert_int_eq(b, VMA_BACKEND_TEXT);
        ck_assert_int_eq(vma_backend_resolve(VMA_BACKEND_IOCTL, &b), r ? 0 : -EOPNOTSUPP);
        ck_assert_int_eq(vma_backend_resolve(_VMA_BACKEND_MAX, &b), -EINVAL);
}
END_TEST

START_TEST(test_backend_strings) {
        for (VmaBackend b = 0; b < _VMA_BACKEND_MAX; b++)
                ck_assert_int_eq(vma_backend_from_string(vma_backend_to_string(b)), b);
        ck_assert_str_eq(vma_backend_to_string(VMA_BACKEND_IOCTL), "ioctl");
        ck_assert_int_eq(vma_backend_from_string("Text"), _VMA_BACKEND_INVALID);
        ck_assert_int_eq(vma_backend_from_string(""), _VMA_BACKEND_INVALID);
        ck_assert_ptr_null(vma_backend_to_string(_VMA_BACKEND_MAX));
        ck_assert_ptr_null(vma_backend_to_string(_VMA_BACKEND_INVALID));
}
END_TEST

static const struct {
        const char *name;
        VmaKind kind;
} kind_vectors[] = {
        { "",                           VMA_KIND_ANONYMOUS },
        { "/usr/lib/libc.so.6",         VMA_KIND_FILE },
        { "/memfd:jit",                 VMA_KIND_FILE },
        { "[vdso]",                     VMA_KIND_VDSO },
        { "[heap]",                     VMA_KIND_SPECIAL },
        { "[stack]",                    VMA_KIND_SPECIAL },
        { "[vvar]",                     VMA_KIND_SPECIAL },
        { "[vvar_vclock]",              VMA_KIND_SPECIAL },
        { "[uprobes]",                  VMA_KIND_SPECIAL },
        { "[anon:malloc arena]",        VMA_KIND_ANONYMOUS },
        { "[anon_shmem:buf]",           VMA_KIND_ANONYMOUS },
        { "anon_inode:[perf_event]",    VMA_KIND_SPECIAL },
};

START_TEST(test_kind_from_name) {
        ck_assert_int_eq(vma_kind_from_name(kind_vectors[_i].name, 1), kind_vectors[_i].kind);
}
END_TEST

/* Lines as the kernel prints them, and what they must parse to. */
static const struct {
        const char *line;
        uint64_t start, end, offset, inode;
        uint32_t major, minor;
        unsigned perms;
        const char *name;
        bool deleted;
        VmaKind kind;
} line_vectors[] = {
        { "564a1f438000-564a1f43d000 r-xp 00002000 fe:00 247134                     /usr/bin/cat",
          0x564a1f438000, 0x564a1f43d000, 0x2000, 247134, 0xfe, 0, VMA_PERM_READ | VMA_PERM_EXEC,
          "/usr/bin/cat", false, VMA_KIND_FILE },
        { "7f0e56140000-7f0e56204000 rw-p 00000000 00:00 0 ",
          0x7f0e56140000, 0x7f0e56204000, 0, 0, 0, 0, VMA_PERM_READ | VMA_PERM_WRITE,
          "", false, VMA_KIND_ANONYMOUS },
        { "7f0e56140000-7f0e56204000 ---p 00000000 00:00 0",
          0x7f0e56140000, 0x7f0e56204000, 0, 0, 0, 0, 0, "", false, VMA_KIND_ANONYMOUS },
        { "564a44075000-564a44096000 rw-p 00000000 00:00 0                          [heap]",
          0x564a44075000, 0x564a44096000, 0, 0, 0, 0, VMA_PERM_READ | VMA_PERM_WRITE,
          "[heap]", false, VMA_KIND_SPECIAL },
        { "7ffc1000-7ffc3000 r-xp 00000000 00:00 0 [vdso]",
          0x7ffc1000, 0x7ffc3000, 0, 0, 0, 0, VMA_PERM_READ | VMA_PERM_EXEC,
          "[vdso]", false, VMA_KIND_VDSO },
        { "7f00-8f00 r--s 0badc0de000 103:1f 18446744073709551615   /tmp/a dir/with  spaces.so (deleted)",
          0x7f00, 0x8f00, 0xbadc0de000, UINT64_MAX, 0x103, 0x1f, VMA_PERM_READ | VMA_PERM_SHARED,
          "/tmp/a dir/with  spaces.so", true, VMA_KIND_FILE },
        { "1000-2000 r--p 00000000 00:01 42 /dev/zero (deleted)",
          0x1000, 0x2000, 0, 42, 0, 1, VMA_PERM_READ, "/dev/zero", true, VMA_KIND_ANONYMOUS },
        { "1000-2000 r--p 00000000 00:05 42 /tmp/new\\012line",
          0x1000, 0x2000, 0, 42, 0, 5, VMA_PERM_READ, "/tmp/new\nline", false, VMA_KIND_FILE },
        { "1000-2000 r--p 00000000 00:05 42 /tmp/x (deleted) (deleted)",
          0x1000, 0x2000, 0, 42, 0, 5, VMA_PERM_READ, "/tmp/x (deleted)", true, VMA_KIND_FILE },
        { "1000-2000 rw-p 00000000 00:00 0 [anon:jit cache]",
          0x1000, 0x2000, 0, 0, 0, 0, VMA_PERM_READ | VMA_PERM_WRITE,
          "[anon:jit cache]", false, VMA_KIND_ANONYMOUS },
        { "ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]",
          0xffffffffff600000, 0xffffffffff601000, 0, 0, 0, 0, VMA_PERM_EXEC,
          "[vsyscall]", false, VMA_KIND_SPECIAL },
};

START_TEST(test_parse_line) {
        char buf[512];
        size_t len = strlen(line_vectors[_i].line);
        Vma v;

        memcpy(buf, line_vectors[_i].line, len + 1);
        ck_assert_int_eq(vma_parse_maps_line(buf, len, &v), 0);
        ck_assert_uint_eq(v.start, line_vectors[_i].start);
        ck_assert_uint_eq(v.end, line_vectors[_i].end);
        ck_assert_uint_eq(v.offset, line_vectors[_i].offset);
        ck_assert_uint_eq(v.inode, line_vectors[_i].inode);
        ck_assert_uint_eq(v.dev_major, line_vectors[_i].major);
        ck_assert_uint_eq(v.dev_minor, line_vectors[_i].minor);
        ck_assert_uint_eq(v.perms, line_vectors[_i].perms);
        ck_assert_str_eq(v.name, line_vectors[_i].name);
        ck_assert_uint_eq(v.name_len, strlen(line_vectors[_i].name));
        ck_assert_int_eq(v.deleted, line_vectors[_i].deleted);
        ck_assert_int_eq(v.kind, line_vectors[_i].kind);
        ck_assert_uint_eq(v.build_id_len, 0);
}
END_TEST

static const char *const malformed_lines[] = {
        "",
        " ",
        "1000",
        "1000-",
        "1000-2000",
        "1000-2000 ",
        "1000-2000 r-xp",
        "1000-2000 r-xp ",
        "1000-2000 r-xp 0",
        "1000-2000 r-xp 0 fe:00",
        "1000-2000 r-xp 0 fe:00 ",
        "1000-2000 r-xp 0 fe00 1 /x",
        "1000-2000 rwxq 0 fe:00 1 /x",
        "1000-2000 Rwxp 0 fe:00 1 /x",
        "1000-2000 r-x 0 fe:00 1 /x",
        "1000-2000 r-xp- 0 fe:00 1 /x",
        "2000-1000 r-xp 0 fe:00 1 /x",
        "1000-1000 r-xp 0 fe:00 1 /x",
        "-2000 r-xp 0 fe:00 1 /x",
        "x1000-2000 r-xp 0 fe:00 1 /x",
        "1000-2000 r-xp 0x0 fe:00 1 /x",
        "1000-2000 r-xp 0 fe:00 -1 /x",
        "1000-2000 r-xp 0 fe:00 1a /x",
        "1000-2000 r-xp 0 100000000:00 1 /x",
        "1000-10000000000000000 r-xp 0 fe:00 1 /x",
        "1000-2000 r-xp 10000000000000000 fe:00 1 /x",
        "1000-2000 r-xp 0 fe:00 18446744073709551616 /x",
        "1000\t2000 r-xp 0 fe:00 1 /x",
};

START_TEST(test_parse_line_malformed) {
        char buf[256];
        size_t len = strlen(malformed_lines[_i]);
        Vma v = { .start = 7 };

        memcpy(buf, malformed_lines[_i], len + 1);
        ck_assert_msg(vma_parse_maps_line(buf, len, &v) == -EBADMSG, "'%s' parsed", malformed_lines[_i]);
        ck_assert_uint_eq(v.start, 7);
}
END_TEST

START_TEST(test_parse_line_long_name) {
        static const char prefix[] = "1000-2000 r-xp 0 fe:00 1 /";
        size_t len = strlen(prefix) + PATH_MAX;
        _cleanup_free_ char *line = malloc(len + 1);

        ck_assert_ptr_nonnull(line);
        memcpy(line, prefix, strlen(prefix));
        memset(line + strlen(prefix), 'a', PATH_MAX);
        line[len] = '\0';
        ck_assert_int_eq(vma_parse_maps_line(line, len, &(Vma) {}), -EBADMSG);
        /* One byte shorter than PATH_MAX with its NUL: a valid path. */
        ck_assert_int_eq(vma_parse_maps_line(line, len - 2, &(Vma) {}), 0);
}
END_TEST

START_TEST(test_parse_line_embedded_nul) {
        char buf[] = "1000-2000 r-xp 0 fe:00 1 /x\0y";

        ck_assert_int_eq(vma_parse_maps_line(buf, sizeof(buf) - 1, &(Vma) {}), -EBADMSG);
}
END_TEST

/* A text source over a file with @content instead of a real maps file. */
static VmaSource *file_source(const char *content, size_t len, VmaBackend backend) {
        char path[] = "/tmp/vmaq-maps-XXXXXX";
        VmaSource *s = NULL;
        int fd;

        fd = mkostemp(path, O_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(unlink(path), 0);
        ck_assert_int_eq(write(fd, content, len), (ssize_t) len);
        ck_assert_int_eq(vma_source_new(&s, fd, backend), 0);
        return s;
}

static VmaSource *text_source(const char *content, size_t len) {
        return file_source(content, len, VMA_BACKEND_TEXT);
}

static const char text_map[] =
        "1000-2000 r--p 00000000 fe:00 11 /bin/a\n"
        "2000-3000 r-xp 00001000 fe:00 11 /bin/a\n"
        "5000-6000 rw-p 00000000 00:00 0 \n"
        "7000-8000 r-xp 00000000 00:00 0 [vdso]\n"
        "ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0 [vsyscall]\n";

START_TEST(test_text_source_find) {
        VmaSource *s = text_source(text_map, strlen(text_map));
        Vma v;

        ck_assert_int_eq(vma_source_begin(s), 0);

        ck_assert_int_eq(vma_source_find(s, 0, 0, &v), 1);               /* next */
        ck_assert_uint_eq(v.start, 0x1000);
        ck_assert_int_eq(vma_source_find(s, 0x1fff, 0, &v), 1);          /* covering */
        ck_assert_uint_eq(v.start, 0x1000);
        ck_assert_str_eq(v.name, "/bin/a");
        ck_assert_int_eq(vma_source_find(s, 0x2000, 0, &v), 1);
        ck_assert_uint_eq(v.offset, 0x1000);
        ck_assert_uint_eq(v.perms, VMA_PERM_READ | VMA_PERM_EXEC);
        ck_assert_int_eq(vma_source_find(s, 0x3000, 0, &v), 1);          /* gap: next */
        ck_assert_uint_eq(v.start, 0x5000);
        ck_assert_int_eq(v.kind, VMA_KIND_ANONYMOUS);
        ck_assert_int_eq(vma_source_find(s, 0x7800, 0, &v), 1);
        ck_assert_int_eq(v.kind, VMA_KIND_VDSO);
        /* Past the last VMA; the gate page is no VMA of the process. */
        ck_assert_int_eq(vma_source_find(s, 0x8000, 0, &v), 0);
        ck_assert_int_eq(vma_source_find(s, 0xffffffffff600000, 0, &v), 0);

        /* Backwards is correct too: it reads the file again. */
        ck_assert_int_eq(vma_source_find(s, 0x1000, 0, &v), 1);
        ck_assert_uint_eq(v.end, 0x2000);
        ck_assert_int_eq(vma_source_find(s, 0x5fff, 0, &v), 1);
        ck_assert_uint_eq(v.start, 0x5000);

        /* A new pass starts over. */
        ck_assert_int_eq(vma_source_begin(s), 0);
        ck_assert_int_eq(vma_source_find(s, 0x2500, 0, &v), 1);
        ck_assert_uint_eq(v.start, 0x2000);

        /* Released, it keeps its fd: a find needs a pass again, and a pass reads as before. */
        vma_source_release(s);
        ck_assert_int_eq(vma_source_find(s, 0x2500, 0, &v), -EINVAL);
        ck_assert_int_eq(vma_source_begin(s), 0);
        ck_assert_int_eq(vma_source_find(s, 0x7800, 0, &v), 1);
        ck_assert_int_eq(v.kind, VMA_KIND_VDSO);

        vma_source_free(s);
}
END_TEST

START_TEST(test_text_source_errors) {
        static const char torn[] = "1000-2000 r--p 00000000 fe:00 11 /bin/a\n2000-3000 r-x";
        static const char bad[] = "1000-2000 r--p 00000000 fe:00 11 /bin/a\n2000-3000 r-xp zz fe:00 11 /a\n";
        _cleanup_free_ char *huge = NULL;
        VmaSource *s;
        Vma v;

        /* An empty map: the address space is gone. */
        s = text_source("", 0);
        ck_assert_int_eq(vma_source_begin(s), -ESRCH);
        vma_source_free(s);

        s = text_source(torn, strlen(torn));
        ck_assert_int_eq(vma_source_begin(s), 0);
        ck_assert_int_eq(vma_source_find(s, 0x1000, 0, &v), 1);
        ck_assert_int_eq(vma_source_find(s, 0x2000, 0, &v), -EBADMSG);
        vma_source_free(s);

        s = text_source(bad, strlen(bad));
        ck_assert_int_eq(vma_source_begin(s), 0);
        ck_assert_int_eq(vma_source_find(s, 0x1000, 0, &v), 1);
        ck_assert_int_eq(vma_source_find(s, 0x2000, 0, &v), -EBADMSG);
        vma_source_free(s);

        /* A line longer than the kernel could print is refused, not overrun. */
        huge = malloc(200 * 1024);
        ck_assert_ptr_nonnull(huge);
        memset(huge, 'a', 200 * 1024);
        s = text_source(huge, 200 * 1024);
        ck_assert_int_eq(vma_source_begin(s), 0);
        ck_assert_int_eq(vma_source_find(s, 0, 0, &v), -EBADMSG);
        vma_source_free(s);
}
END_TEST

/* Many lines across several buffer fills parse into the right VMAs. */
START_TEST(test_text_source_long_file) {
        const size_t n = 5000;
        _cleanup_free_ char *map = malloc(n * 128);
        size_t len = 0;
        VmaSource *s;
        Vma v;

        ck_assert_ptr_nonnull(map);
        for (size_t i = 0; i < n; i++)
                len += sprintf(map + len, "%zx-%zx r--p %08zx 08:01 %zu %*s/data/file-%zu\n",
                               (i + 1) * 0x2000, (i + 1) * 0x2000 + 0x1000, i * 0x1000, i + 1,
                               (int) (i % 40), "", i);
        s = text_source(map, len);
        ck_assert_int_eq(vma_source_begin(s), 0);
        for (size_t i = 0; i < n; i++) {
                char name[64];

                ck_assert_int_eq(vma_source_find(s, (i + 1) * 0x2000 + 0x10, 0, &v), 1);
                ck_assert_uint_eq(v.start, (i + 1) * 0x2000);
                ck_assert_uint_eq(v.offset, i * 0x1000);
                ck_assert_uint_eq(v.inode, i + 1);
                snprintf(name, sizeof(name), "/data/file-%zu", i);
                ck_assert_str_eq(v.name, name);
        }
        ck_assert_int_eq(vma_source_find(s, (n + 1) * 0x2000, 0, &v), 0);
        vma_source_free(s);
}
END_TEST

START_TEST(test_source_new_invalid) {
        VmaSource *s = NULL;

        ck_assert_int_eq(vma_source_new(&s, -EBADF, VMA_BACKEND_TEXT), -EINVAL);
        ck_assert_int_eq(vma_source_new(&s, open("/dev/null", O_RDONLY|O_CLOEXEC), VMA_BACKEND_AUTO), -EINVAL);
        ck_assert_ptr_null(s);
}
END_TEST

/* What a failed or empty find must leave alone. */
static void assert_untouched(const Vma *v) {
        const uint8_t *b = (const uint8_t *) v;

        for (size_t i = 0; i < sizeof(*v); i++)
                ck_assert_uint_eq(b[i], 0xa5);
}

/* A find that finds nothing, or fails, writes nothing, also when asked for a build ID. */
START_TEST(test_ioctl_find_untouched) {
        VmaSource *s = NULL;
        int pipefd[2], fd;
        char path[64], b;
        pid_t pid;
        Vma v;

        fd = open("/proc/self/maps", O_RDONLY|O_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(vma_source_new(&s, fd, VMA_BACKEND_IOCTL), 0);
        ck_assert_int_eq(vma_source_begin(s), 0);
        memset(&v, 0xa5, sizeof(v));
        ck_assert_int_eq(vma_source_find(s, UINT64_MAX - 0xfff, VMA_FIND_BUILD_ID, &v), 0);
        assert_untouched(&v);
        s = vma_source_free(s);

        /* The maps fd of a process that is gone. */
        ck_assert_int_eq(pipe2(pipefd, O_CLOEXEC), 0);
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                close(pipefd[1]);
                (void) read(pipefd[0], &b, 1);
                _exit(EXIT_SUCCESS);
        }
        close(pipefd[0]);
        snprintf(path, sizeof(path), "/proc/%d/maps", (int) pid);
        fd = open(path, O_RDONLY|O_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(vma_source_new(&s, fd, VMA_BACKEND_IOCTL), 0);
        close(pipefd[1]);
        ck_assert_int_eq(waitpid(pid, NULL, 0), pid);
        memset(&v, 0xa5, sizeof(v));
        ck_assert_int_eq(vma_source_find(s, 0, VMA_FIND_BUILD_ID, &v), -ESRCH);
        assert_untouched(&v);
        vma_source_free(s);
}
END_TEST

/* A text source takes no ioctl pass and no live find. */
START_TEST(test_text_source_no_ioctl) {
        VmaSource *s = text_source(text_map, strlen(text_map));
        VmaPassStats st;
        Vma v;

        ck_assert_int_eq(vma_source_begin_pass(s, VMA_BACKEND_IOCTL, 0), -EOPNOTSUPP);
        ck_assert_int_eq(vma_source_begin_pass(s, VMA_BACKEND_AUTO, 0), -EINVAL);
        ck_assert_int_eq(vma_source_begin_pass(s, VMA_BACKEND_TEXT, 1), 0);
        ck_assert_int_eq(vma_source_pass_backend(s), VMA_BACKEND_TEXT);
        ck_assert_int_eq(vma_source_find(s, 0x1000, VMA_FIND_LIVE, &v), -EOPNOTSUPP);
        /* No budget on a text source: it has nothing else to go on with. */
        ck_assert_int_eq(vma_source_find(s, 0x7800, 0, &v), 1);
        ck_assert_int_eq(v.kind, VMA_KIND_VDSO);
        ck_assert_int_eq(vma_source_pass_backend(s), VMA_BACKEND_TEXT);
        vma_source_pass_stats(s, &st);
        ck_assert_uint_eq(st.n_ioctls, 0);
        ck_assert_uint_eq(st.text_bytes, strlen(text_map));
        vma_source_free(s);
}
END_TEST

/*
 * Lines of a long map, and where the profile says a text pass reads to.
 * Only an ioctl source keeps one: it chooses how to read by it.
 */
START_TEST(test_text_profile) {
        const size_t n = 2000;
        const VmaTextProfile *pr;
        _cleanup_free_ char *map = malloc(n * 64);
        size_t len = 0;
        VmaSource *s;
        Vma v;

        ck_assert_ptr_nonnull(map);
        for (size_t i = 0; i < n; i++)
                /* Lines of one length: the addresses have as many digits. */
                len += (size_t) sprintf(map + len, "%zx-%zx r--p 00000000 fe:00 11 /bin/a\n",
                                        0x10000000 + i * 0x2000, 0x10001000 + i * 0x2000);
        s = text_source(map, len);
        ck_assert_int_eq(vma_source_begin(s), 0);
        ck_assert_int_eq(vma_source_find(s, UINT64_MAX, 0, &v), 0);
        ck_assert_ptr_null(vma_source_text_profile(s));
        vma_source_free(s);

        /* The file stands in for a maps fd: a text pass only reads it. */
        s = file_source(map, len, VMA_BACKEND_IOCTL);
        ck_assert_ptr_null(vma_source_text_profile(s));
        ck_assert_uint_eq(vma_source_text_bytes_to(s, 0), 0);

        /* Half way: what lies beyond is not known yet. */
        ck_assert_int_eq(vma_source_begin_pass(s, VMA_BACKEND_TEXT, 0), 0);
        ck_assert_int_eq(vma_source_find(s, 0x10000000 + 1000 * 0x2000, 0, &v), 1);
        pr = vma_source_text_profile(s);
        ck_assert_ptr_nonnull(pr);
        ck_assert(!pr->complete);
        ck_assert_uint_eq(pr->ends[0], 0x10001000);
        ck_assert_uint_eq(vma_source_text_bytes_to(s, 0x1000), VMA_TEXT_READ_SIZE);
        ck_assert_uint_eq(vma_source_text_bytes_to(s, 0x10000000 + 1999 * 0x2000), 0);

        /* To the end: every address is known, in whole reads but the last. */
        ck_assert_int_eq(vma_source_find(s, UINT64_MAX, 0, &v), 0);
        ck_assert(pr->complete);
        ck_assert_uint_eq(pr->total_bytes, len);
        ck_assert_uint_le(pr->n, ELEMENTSOF(pr->ends));
        ck_assert_uint_ge(pr->stride * pr->n, n);
        for (size_t i = 1; i < pr->n; i++) {
                ck_assert_uint_eq(pr->ends[i], 0x10001000 + i * pr->stride * 0x2000);
                ck_assert_uint_eq(pr->bytes[i], (i * pr->stride + 1) * (len / n));
        }
        ck_assert_uint_eq(vma_source_text_bytes_to(s, 0x10000000 + 1999 * 0x2000), len);
        ck_assert_uint_eq(vma_source_text_bytes_to(s, UINT64_MAX), len);
        ck_assert_uint_eq(vma_source_text_bytes_to(s, 0x1000), VMA_TEXT_READ_SIZE);
        vma_source_free(s);
}
END_TEST

static void assert_vma_eq(const Vma *x, const Vma *y) {
        ck_assert_uint_eq(x->start, y->start);
        ck_assert_uint_eq(x->end, y->end);
        ck_assert_uint_eq(x->offset, y->offset);
        ck_assert_uint_eq(x->inode, y->inode);
        ck_assert_uint_eq(x->dev_major, y->dev_major);
        ck_assert_uint_eq(x->dev_minor, y->dev_minor);
        ck_assert_uint_eq(x->perms, y->perms);
        ck_assert_int_eq(x->kind, y->kind);
        ck_assert_int_eq(x->deleted, y->deleted);
        ck_assert_str_eq(x->name, y->name);
}

/*
 * An ioctl source reads the text for a pass when asked, with the ioctl's
 * answers; a live find in between leaves the pass where it was; a pass
 * over its budget goes on with the ioctl.
 */
START_TEST(test_ioctl_source_text_pass) {
        long ps = sysconf(_SC_PAGESIZE);
        const size_t n = 1500;
        char name[PATH_MAX];
        VmaSource *s = NULL;
        VmaPassStats st;
        uint8_t *m;
        Vma v, k;

        /* Many VMAs: every other page of an anonymous mapping made read-only. */
        m = mmap(NULL, 2 * n * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        ck_assert_ptr_ne(m, MAP_FAILED);
        for (size_t i = 0; i < n; i++)
                ck_assert_int_eq(mprotect(m + 2 * i * ps, ps, PROT_READ), 0);

        ck_assert_int_eq(vma_source_new(&s, open("/proc/self/maps", O_RDONLY|O_CLOEXEC), VMA_BACKEND_IOCTL), 0);
        ck_assert_int_eq(vma_source_pass_backend(s), VMA_BACKEND_IOCTL);
        ck_assert_int_eq(vma_source_begin_pass(s, VMA_BACKEND_TEXT, 0), 0);
        ck_assert_int_eq(vma_source_pass_backend(s), VMA_BACKEND_TEXT);
        for (size_t i = 0; i < n; i += 100) {
                uint64_t a = (uintptr_t) m + (2 * i + 1) * ps + 8;

                ck_assert_int_eq(vma_source_find(s, a, 0, &v), 1);
                ck_assert_uint_eq(v.start, a - 8);
                snprintf(name, sizeof(name), "%s", v.name);
                v.name = name;
                /* Back to the start of the map, and live: the pass goes on where it stood. */
                ck_assert_int_eq(vma_source_find(s, 0, VMA_FIND_LIVE, &k), 1);
                ck_assert_int_eq(vma_source_find(s, a, VMA_FIND_LIVE, &k), 1);
                assert_vma_eq(&v, &k);
        }
        ck_assert_int_eq(vma_source_pass_backend(s), VMA_BACKEND_TEXT);
        vma_source_pass_stats(s, &st);
        ck_assert_uint_eq(st.n_ioctls, 0);
        ck_assert_uint_gt(st.text_bytes, 0);
        ck_assert_ptr_nonnull(vma_source_text_profile(s));

        /* An ioctl pass counts its lookups and times every VMA_STATS_IOCTL_SAMPLE-th. */
        ck_assert_int_eq(vma_source_begin_pass(s, VMA_BACKEND_IOCTL, 0), 0);
        for (size_t i = 0; i < 9; i++)
                ck_assert_int_eq(vma_source_find(s, (uintptr_t) m + 2 * i * ps, 0, &v), 1);
        ck_assert_int_eq(vma_source_find(s, (uintptr_t) m, VMA_FIND_LIVE, &v), 1);
        vma_source_pass_stats(s, &st);
        ck_assert_uint_eq(st.n_ioctls, 9);
        /* The sample is counted over all passes: 9 in a row hold 2 or 3 of them. */
        ck_assert_uint_ge(st.n_ioctls_timed, 9 / VMA_STATS_IOCTL_SAMPLE);
        ck_assert_uint_le(st.n_ioctls_timed, (9 + VMA_STATS_IOCTL_SAMPLE - 1) / VMA_STATS_IOCTL_SAMPLE);
        ck_assert_uint_eq(st.text_bytes, 0);

        /* On a budget of one byte: one page is read, then the ioctl answers. */
        ck_assert_int_eq(vma_source_begin_pass(s, VMA_BACKEND_TEXT, 1), 0);
        ck_assert_int_eq(vma_source_find(s, (uintptr_t) m + (2 * n - 1) * ps, 0, &v), 1);
        ck_assert_uint_eq(v.start, (uintptr_t) m + (2 * n - 1) * ps);
        ck_assert_int_eq(vma_source_pass_backend(s), VMA_BACKEND_IOCTL);
        vma_source_pass_stats(s, &st);
        ck_assert_uint_le(st.text_bytes, 4096);
        ck_assert_uint_eq(st.n_ioctls, 1);

        /* Released, it answers with the ioctl as before, and keeps what the text passes saw. */
        vma_source_release(s);
        ck_assert_int_eq(vma_source_pass_backend(s), VMA_BACKEND_IOCTL);
        ck_assert_int_eq(vma_source_find(s, (uintptr_t) m + 3 * ps, 0, &v), 1);
        ck_assert_uint_eq(v.start, (uintptr_t) m + 3 * ps);
        ck_assert_ptr_nonnull(vma_source_text_profile(s));

        vma_source_free(s);
        ck_assert_int_eq(munmap(m, 2 * n * ps), 0);
}
END_TEST

static Suite *vma_suite(bool have_ioctl) {
        Suite *s = suite_create("vma");
        TCase *tc;

        tc = tcase_create("flags");
        tcase_add_test(tc, test_flags_to_perms);
        suite_add_tcase(s, tc);

        tc = tcase_create("probe");
        tcase_add_test(tc, test_probe);
        tcase_add_test(tc, test_backend_strings);
        suite_add_tcase(s, tc);

        tc = tcase_create("kind");
        tcase_add_loop_test(tc, test_kind_from_name, 0, ELEMENTSOF(kind_vectors));
        suite_add_tcase(s, tc);

        tc = tcase_create("parse-line");
        tcase_add_loop_test(tc, test_parse_line, 0, ELEMENTSOF(line_vectors));
        suite_add_tcase(s, tc);

        tc = tcase_create("parse-line-malformed");
        tcase_add_loop_test(tc, test_parse_line_malformed, 0, ELEMENTSOF(malformed_lines));
        tcase_add_test(tc, test_parse_line_embedded_nul);
        tcase_add_test(tc, test_parse_line_long_name);
        suite_add_tcase(s, tc);

        tc = tcase_create("text-source");
        tcase_add_test(tc, test_text_source_find);
        tcase_add_test(tc, test_text_source_errors);
        tcase_add_test(tc, test_text_source_long_file);
        tcase_add_test(tc, test_source_new_invalid);
        tcase_add_test(tc, test_text_source_no_ioctl);
        tcase_add_test(tc, test_text_profile);
        suite_add_tcase(s, tc);

        if (have_ioctl) {
                tc = tcase_create("ioctl-source");
                tcase_add_test(tc, test_ioctl_find_untouched);
                tcase_add_test(tc, test_ioctl_source_text_pass);
                suite_add_tcase(s, tc);
        } else
                fprintf(stderr, "NOTE: ioctl source tests not run: the kernel lacks PROCMAP_QUERY\n");

        return s;
}

int main(void) {
        int r;

        r = vma_backend_probe();
        if (r < 0) {
                fprintf(stderr, "Cannot probe for PROCMAP_QUERY: %s\n", strerror(-r));
                return EXIT_FAILURE;
        }
        return check_run(vma_suite(r > 0));
}
