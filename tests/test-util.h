/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Helpers shared by the core's tests: a child process with a known memory layout. */

#include <limits.h>
#include <stdint.h>
#include <sys/types.h>

#include "elf-note.h"

/*
 * Built with AddressSanitizer (GCC says so with __SANITIZE_ADDRESS__, clang
 * with __has_feature): resident sizes then measure ASan's shadow memory and
 * quarantine, not the program.
 */
#if defined(__SANITIZE_ADDRESS__)
#  define TEST_ASAN 1
#elif defined(__has_feature)
#  if __has_feature(address_sanitizer)
#    define TEST_ASAN 1
#  endif
#endif
#ifndef TEST_ASAN
#  define TEST_ASAN 0
#endif

#define TEST_FILE_PAGES 4
#define TEST_FILE_MAP_PGOFF 2           /* the child maps pages 2 and 3 of the file */

typedef struct TestChild {
        pid_t pid;
        int ctl_fd;                     /* closing it makes the child exit */
        char dir[64];                   /* temporary directory holding the files */
        char file_path[PATH_MAX];       /* mapped at page TEST_FILE_MAP_PGOFF, 2 pages */
        char deleted_path[PATH_MAX];    /* mapped at offset 0, then unlinked */
        uint64_t file_addr;
        uint64_t deleted_addr;
        uint64_t anon_addr;
        uint64_t unmapped_addr;         /* inside a hole the child punched */
        uint64_t heap_addr;
        uint64_t stack_addr;
        uint64_t code_addr;             /* a function of the test executable */
        uint64_t vdso_addr;             /* start of the vDSO image */
} TestChild;

/* Fork a child that sets up the layout above and waits. Aborts the test on failure. */
void test_child_spawn(TestChild *ret);

/* Make the child exit, reap it and remove its files. */
void test_child_stop(TestChild *c);

/* A function of the test executable, to look up. */
void test_marker_function(void);

/* The test executable's path and build ID, read independently of the core. */
void test_self_exe(char path[static PATH_MAX]);
size_t test_self_build_id(uint8_t ret[static BUILD_ID_MAX]);

/* The page size. */
uint64_t test_page_size(void);

/* Drop CAP_SYS_ADMIN and CAP_CHECKPOINT_RESTORE: /proc/PID/map_files is closed then. */
void test_drop_map_files_caps(void);

/* Copy the file at @from to @to. */
void test_copy_file(const char *from, const char *to);
