/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <check.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/capability.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "macro.h"
#include "test-util.h"

uint64_t test_page_size(void) {
        return (uint64_t) sysconf(_SC_PAGESIZE);
}

__attribute__((__noinline__)) void test_marker_function(void) {
        __asm__ __volatile__("" ::: "memory");
}

void test_self_exe(char path[static PATH_MAX]) {
        ssize_t n = readlink("/proc/self/exe", path, PATH_MAX - 1);

        ck_assert_int_gt(n, 0);
        path[n] = '\0';
}

typedef struct BuildIdSearch {
        size_t len;
        uint8_t *id;
} BuildIdSearch;

/* Find the main program's build ID in its loaded notes, as the dynamic loader sees them. */
static int find_main_build_id(struct dl_phdr_info *info, size_t size, void *userdata) {
        BuildIdSearch *s = userdata;

        /* The main program comes first, with an empty name. */
        for (int i = 0; i < info->dlpi_phnum; i++) {
                const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
                const uint8_t *p, *e;

                if (ph->p_type != PT_NOTE)
                        continue;
                p = (const uint8_t *) (info->dlpi_addr + ph->p_vaddr);
                e = p + ph->p_memsz;
                while (p + sizeof(ElfW(Nhdr)) <= e) {
                        const ElfW(Nhdr) *nh = (const ElfW(Nhdr) *) p;
                        const uint8_t *name = p + sizeof(*nh);
                        const uint8_t *desc = name + ALIGN_POW2((size_t) nh->n_namesz, 4);

                        if (nh->n_type == NT_GNU_BUILD_ID && nh->n_namesz == 4 &&
                            memcmp(name, "GNU", 4) == 0 && nh->n_descsz <= BUILD_ID_MAX) {
                                memcpy(s->id, desc, nh->n_descsz);
                                s->len = nh->n_descsz;
                                return 1;
                        }
                        p = desc + ALIGN_POW2((size_t) nh->n_descsz, 4);
                }
        }
        return 1;
}

size_t test_self_build_id(uint8_t ret[static BUILD_ID_MAX]) {
        BuildIdSearch s = { .id = ret };

        dl_iterate_phdr(find_main_build_id, &s);
        return s.len;
}

static void write_pattern_file(const char *path, unsigned pages) {
        _cleanup_close_ int fd = -EBADF;
        uint64_t ps = test_page_size();
        _cleanup_free_ uint8_t *buf = malloc(ps);

        ck_assert_ptr_nonnull(buf);
        fd = open(path, O_WRONLY|O_CREAT|O_TRUNC|O_CLOEXEC, 0644);
        ck_assert_int_ge(fd, 0);
        for (unsigned i = 0; i < pages; i++) {
                memset(buf, 'a' + i, ps);
                ck_assert_int_eq(write(fd, buf, ps), (ssize_t) ps);
        }
}

static void *map_file(const char *path, size_t len, off_t off) {
        _cleanup_close_ int fd = open(path, O_RDONLY|O_CLOEXEC);
        void *p;

        if (fd < 0)
                return NULL;
        p = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, off);
        return p == MAP_FAILED ? NULL : p;
}

/* The child's side: build the layout, report it, wait for the end. */
_Noreturn static void child_main(TestChild *c, int report_fd, int ctl_fd) {
        uint64_t ps = test_page_size();
        volatile uint8_t *anon;
        uint8_t *hole;
        char b;

        (void) prctl(PR_SET_PDEATHSIG, SIGKILL);

        c->file_addr = (uintptr_t) map_file(c->file_path, 2 * ps, TEST_FILE_MAP_PGOFF * ps);
        c->deleted_addr = (uintptr_t) map_file(c->deleted_path, ps, 0);
        if (!c->file_addr || !c->deleted_addr || unlink(c->deleted_path) < 0)
                _exit(EXIT_FAILURE);

        anon = mmap(NULL, ps, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0);
        hole = mmap(NULL, 3 * ps, PROT_NONE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0);
        if (anon == MAP_FAILED || hole == MAP_FAILED || munmap(hole + ps, ps) < 0)
                _exit(EXIT_FAILURE);
        anon[0] = 1;
        c->anon_addr = (uintptr_t) anon;
        c->unmapped_addr = (uintptr_t) hole + ps + 16;

        /* Grow the program break so that "[heap]" exists, whatever malloc uses. */
        c->heap_addr = (uintptr_t) sbrk((intptr_t) ps);
        if (c->heap_addr == (uintptr_t) -1)
                _exit(EXIT_FAILURE);
        c->stack_addr = (uintptr_t) __builtin_frame_address(0);
        c->code_addr = (uintptr_t) test_marker_function;
        c->vdso_addr = getauxval(AT_SYSINFO_EHDR);

        if (write(report_fd, c, sizeof(*c)) != (ssize_t) sizeof(*c))
                _exit(EXIT_FAILURE);
        close(report_fd);

        while (read(ctl_fd, &b, 1) > 0)
                ;
        _exit(EXIT_SUCCESS);
}

void test_child_spawn(TestChild *ret) {
        TestChild c = { .ctl_fd = -EBADF };
        int report[2], ctl[2];
        ssize_t n;

        strcpy(c.dir, "/tmp/vmaq-test-XXXXXX");
        ck_assert_ptr_nonnull(mkdtemp(c.dir));
        /* A space in the name: the text parser must keep it. */
        snprintf(c.file_path, sizeof(c.file_path), "%s/mapped file.bin", c.dir);
        snprintf(c.deleted_path, sizeof(c.deleted_path), "%s/deleted.bin", c.dir);
        write_pattern_file(c.file_path, TEST_FILE_PAGES);
        write_pattern_file(c.deleted_path, 1);

        ck_assert_int_eq(pipe2(report, O_CLOEXEC), 0);
        ck_assert_int_eq(pipe2(ctl, O_CLOEXEC), 0);

        c.pid = fork();
        ck_assert_int_ge(c.pid, 0);
        if (c.pid == 0) {
                close(report[0]);
                close(ctl[1]);
                child_main(&c, report[1], ctl[0]);
        }
        close(report[1]);
        close(ctl[0]);

        n = read(report[0], ret, sizeof(*ret));
        close(report[0]);
        ck_assert_int_eq(n, (ssize_t) sizeof(*ret));
        ret->pid = c.pid;
        ret->ctl_fd = ctl[1];
}

void test_child_stop(TestChild *c) {
        char path[PATH_MAX];

        c->ctl_fd = safe_close(c->ctl_fd);
        if (c->pid > 0)
                (void) waitpid(c->pid, NULL, 0);
        c->pid = 0;

        snprintf(path, sizeof(path), "%s", c->file_path);
        (void) unlink(path);
        (void) unlink(c->deleted_path);
        (void) rmdir(c->dir);
}

void test_drop_map_files_caps(void) {
        struct __user_cap_header_struct header = { .version = _LINUX_CAPABILITY_VERSION_3 };
        struct __user_cap_data_struct data[2] = {};
        static const unsigned caps[] = { 21 /* CAP_SYS_ADMIN */, 40 /* CAP_CHECKPOINT_RESTORE */ };

        ck_assert_int_eq(syscall(SYS_capget, &header, data), 0);
        for (size_t i = 0; i < ELEMENTSOF(caps); i++) {
                data[caps[i] / 32].effective &= ~(1U << (caps[i] % 32));
                data[caps[i] / 32].permitted &= ~(1U << (caps[i] % 32));
        }
        ck_assert_int_eq(syscall(SYS_capset, &header, data), 0);
}

void test_copy_file(const char *from, const char *to) {
        _cleanup_close_ int in = open(from, O_RDONLY|O_CLOEXEC), out = -EBADF;
        char buf[65536];
        ssize_t n;

        ck_assert_int_ge(in, 0);
        out = open(to, O_WRONLY|O_CREAT|O_TRUNC|O_CLOEXEC, 0755);
        ck_assert_int_ge(out, 0);
        while ((n = read(in, buf, sizeof(buf))) > 0)
                ck_assert_int_eq(write(out, buf, n), n);
        ck_assert_int_eq(n, 0);
}
