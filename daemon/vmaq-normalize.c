/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * vmaq-normalize: normalize addresses of a process with the core, without
 * the daemon. A tool for development and the quick start.
 *
 *   vmaq-normalize [--backend=auto|ioctl|text] [--no-build-ids] PID [ADDR...]
 *
 * Without ADDR it picks a few: the start of each executable mapping, the
 * heap, and an address nothing maps.
 */

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "parse-util.h"
#include "proc.h"

static VmaBackend arg_backend = VMA_BACKEND_AUTO;
static unsigned arg_flags = NORMALIZE_BUILD_IDS;

typedef struct AddrList {
        uint64_t *addrs;
        size_t n;
        size_t allocated;
} AddrList;

static int addr_list_push(AddrList *l, uint64_t addr) {
        if (l->n == l->allocated) {
                size_t n = MAX(l->allocated * 2, (size_t) 16);
                uint64_t *a = reallocarray(l->addrs, n, sizeof(uint64_t));

                if (!a)
                        return -ENOMEM;
                l->addrs = a;
                l->allocated = n;
        }
        l->addrs[l->n++] = addr;
        return 0;
}

static int pick_cb(const Vma *v, void *userdata) {
        if ((v->perms & VMA_PERM_EXEC) || strcmp(v->name, "[heap]") == 0)
                return addr_list_push(userdata, v->start + 0x10);
        return 0;
}

static void print_result(const Normalization *n, size_t i, uint64_t addr) {
        const NormResult *res = &n->results[i];
        const NormModule *m;

        if (res->kind != NORM_MODULE) {
                printf("0x%012" PRIx64 ": unknown (%s)\n", addr, norm_kind_to_string(res->kind));
                return;
        }

        m = &n->modules[res->module];
        printf("0x%012" PRIx64 ": file offset 0x%" PRIx64 " in %s%s", addr, res->offset, m->path,
               m->deleted ? " (deleted)" : "");
        if (m->build_id_len > 0) {
                printf(" (build ID ");
                for (size_t j = 0; j < m->build_id_len; j++)
                        printf("%02x", m->build_id[j]);
                printf(")");
        }
        printf("\n");
}

static void help(void) {
        printf("%s [OPTIONS...] PID [ADDR...]\n\n"
               "Normalize addresses of process PID to file offsets and build IDs.\n\n"
               "  -h --help             Show this help\n"
               "     --backend=BACKEND  auto, ioctl or text (default: auto)\n"
               "     --no-build-ids     Do not look up build IDs\n",
               program_invocation_short_name);
}

static int parse_argv(int argc, char *argv[]) {
        enum { ARG_BACKEND = 0x100, ARG_NO_BUILD_IDS };
        static const struct option options[] = {
                { "help",         no_argument,       NULL, 'h' },
                { "backend",      required_argument, NULL, ARG_BACKEND },
                { "no-build-ids", no_argument,       NULL, ARG_NO_BUILD_IDS },
                {}
        };
        int c;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        help();
                        return 0;
                case ARG_BACKEND:
                        arg_backend = vma_backend_from_string(optarg);
                        if (arg_backend < 0) {
                                fprintf(stderr, "Unknown backend '%s'.\n", optarg);
                                return -EINVAL;
                        }
                        break;
                case ARG_NO_BUILD_IDS:
                        arg_flags &= ~NORMALIZE_BUILD_IDS;
                        break;
                default:
                        return -EINVAL;
                }

        if (optind >= argc) {
                fprintf(stderr, "Missing PID, see --help.\n");
                return -EINVAL;
        }
        return 1;
}

int main(int argc, char *argv[]) {
        _cleanup_(normalization_freep) Normalization *n = NULL;
        _cleanup_(proc_freep) Proc *p = NULL;
        AddrList list = {};
        VmaBackend backend;
        pid_t pid;
        int r;

        r = parse_argv(argc, argv);
        if (r <= 0)
                return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;

        r = parse_pid(argv[optind], &pid);
        if (r < 0) {
                fprintf(stderr, "Invalid PID '%s': %s\n", argv[optind], strerror(-r));
                return EXIT_FAILURE;
        }

        r = vma_backend_resolve(arg_backend, &backend);
        if (r < 0) {
                fprintf(stderr, "Backend '%s' is not usable: %s\n", vma_backend_to_string(arg_backend), strerror(-r));
                return EXIT_FAILURE;
        }

        r = proc_open(&p, pid, backend);
        if (r < 0) {
                fprintf(stderr, "Cannot open process %d: %s\n", (int) pid,
                        r == -ENXIO ? "it has no address space" : strerror(-r));
                return EXIT_FAILURE;
        }

        for (int i = optind + 1; i < argc; i++) {
                uint64_t addr;

                r = parse_address(argv[i], &addr);
                if (r < 0) {
                        fprintf(stderr, "Invalid address '%s': %s\n", argv[i], strerror(-r));
                        goto finish;
                }
                r = addr_list_push(&list, addr);
                if (r < 0)
                        goto finish;
        }
        if (list.n == 0) {
                r = proc_foreach_vma(p, 0, NULL, pick_cb, &list);
                if (r >= 0)
                        r = addr_list_push(&list, 0x10);
                if (r < 0) {
                        fprintf(stderr, "Cannot list mappings of process %d: %s\n", (int) pid, strerror(-r));
                        goto finish;
                }
        }

        r = proc_normalize(p, list.addrs, list.n, &(NormalizeOptions) { .flags = arg_flags }, &n);
        if (r < 0) {
                fprintf(stderr, "Cannot normalize addresses of process %d: %s\n", (int) pid, strerror(-r));
                goto finish;
        }

        printf("pid %d, start time %" PRIu64 ", backend %s, %zu lookups\n",
               (int) pid, n->start_time, vma_backend_to_string(backend), n->n_lookups);
        for (size_t i = 0; i < list.n; i++)
                print_result(n, i, list.addrs[i]);

finish:
        free(list.addrs);
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
