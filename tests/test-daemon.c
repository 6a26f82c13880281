/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The daemon end to end: start the built vmaqd ($VMAQD) on a private
 * socket and talk raw Varlink to it. Built once per backend (TEST_BACKEND
 * is "ioctl" or "text"), so every `make check` runs both.
 *
 * Each test starts its own daemon in a directory below the run directory
 * and stops it with SIGTERM. Check kills a failing test with _exit(), so
 * cleanup cannot rely on the test: every daemon and forked helper dies
 * with its parent (PR_SET_PDEATHSIG), and the runner prints the logs of
 * the daemons that were not stopped and removes the run directory.
 *
 * Forked clients never use ck_assert() (it would report from the wrong
 * process): they check with CHILD_CHECK() and report through their exit
 * status.
 */

#include <assert.h>
#include <check.h>
#include <dirent.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <linux/kcmp.h>
#include <linux/sched.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check-run.h"
#include "macro.h"
#include "proc.h"
#include "sha256.h"
#include "stall-fs.h"
#include "test-daemon-util.h"
#include "test-util.h"
#include "vma.h"

/* Every wait in this file is bounded by this; none is a timing assertion. */
#define TIMEOUT_MS 10000
/* Forked clients doing many calls, possibly under sanitizers. */
#define CLIENT_TIMEOUT_MS 60000
/* How long "no reply" is waited for: long enough to see a wrong reply, not a bound on speed. */
#define NO_REPLY_MS 300
#define TEST_TIMEOUT_SEC 120

/* vmaqd --help: the defaults of --max-connections, --max-connections-per-user, --max-memory. */
#define DOCUMENTED_MAX_CONNECTIONS 4096
#define DOCUMENTED_MAX_CONNECTIONS_PER_USER 256
#define DOCUMENTED_MAX_MEMORY (256 << 20)
/* docs/SECURITY.md: the input every connection may hold, budget or not. */
#define READ_CHUNK_BYTES (16U * 1024U)

static const char *vmaqd_path;
static char run_dir[64];

static VmaBackend test_backend(void) {
        VmaBackend b = vma_backend_from_string(TEST_BACKEND);

        ck_assert_int_ge(b, 0);
        return b;
}

/* --- the client (see test-daemon-util.h) ------------------------------------ */

/*
 * After an error that closes the connection: EOF. With @unread_bytes, ECONNRESET too: the kernel
 * reports it when the daemon closed with bytes of ours it never read.
 */
static void assert_closed(Client *c, bool unread_bytes) {
        _cleanup_free_ char *m = NULL;
        int r;

        r = client_read(c, TIMEOUT_MS, &m);
        if (unread_bytes)
                ck_assert_msg(r == 0 || r == -ECONNRESET, "connection not closed: %s",
                              r == 1 ? m : strerror(-r));
        else
                ck_assert_msg(r == 0, "connection not closed: %s", r == 1 ? m : strerror(-r));
}

/* Read whatever replies were still on their way, then the end of the connection. */
static void assert_closed_after_replies(Client *c) {
        int r;

        for (;;) {
                _cleanup_free_ char *m = NULL;

                r = client_read(c, TIMEOUT_MS, &m);
                if (r != 1)
                        break;
        }
        ck_assert_msg(r == 0 || r == -ECONNRESET, "connection not closed: %s", strerror(-r));
}

/* Poll GetStatus (bounded) until "connections" is @n; the daemon sees closes asynchronously. */
static void wait_connections(Client *c, uint64_t n) {
        int64_t deadline = now_ms() + TIMEOUT_MS;
        uint64_t seen;

        for (;;) {
                _cleanup_(json_object_putp) struct json_object *s = get_status(c);

                seen = status_field(s, "connections");
                if (seen == n || now_ms() > deadline)
                        break;
                /* Let the daemon run; a poll with nothing to wait for is a bounded pause. */
                (void) poll(NULL, 0, 10);
        }
        ck_assert_uint_eq(seen, n);
}

/* --- Normalize, expected and received ---------------------------------------- */

#define LAYOUT_N 9

static void layout_addrs(const TestChild *c, uint64_t addrs[static LAYOUT_N]) {
        uint64_t ps = test_page_size();

        addrs[0] = c->file_addr + 0x123;
        addrs[1] = c->file_addr + ps + 5;
        addrs[2] = c->deleted_addr + 0x10;
        addrs[3] = c->anon_addr + 8;
        addrs[4] = c->unmapped_addr;
        addrs[5] = c->heap_addr;
        addrs[6] = c->stack_addr;
        addrs[7] = c->code_addr;
        addrs[8] = c->vdso_addr + 0x40;
}

/* The layout scrambled, with duplicates, and the ends of the address space. */
static const unsigned scramble[] = { 8, 3, 0, 5, 8, 1, 7, 2, 6, 4, 0, 3, 7, 7, 1, 2, 6, 5 };
#define MIXED_N (ELEMENTSOF(scramble) + 2)

static void mixed_addrs(const TestChild *c, uint64_t addrs[static MIXED_N]) {
        uint64_t base[LAYOUT_N];

        layout_addrs(c, base);
        for (size_t i = 0; i < ELEMENTSOF(scramble); i++)
                addrs[i] = base[scramble[i]];
        addrs[ELEMENTSOF(scramble)] = UINT64_MAX;
        addrs[ELEMENTSOF(scramble) + 1] = 0;
}

/* What the core answers in this process, with the daemon's backend. */
static Normalization *core_normalize_flags(pid_t pid, const uint64_t *addrs, size_t n, unsigned flags) {
        _cleanup_(proc_freep) Proc *p = NULL;
        /* As the daemon asks: ELF facts with build IDs. */
        NormalizeOptions opts = { .flags = flags | (flags & NORMALIZE_BUILD_IDS ? NORMALIZE_ELF : 0) };
        Normalization *ret = NULL;
        int r;

        r = proc_open(&p, pid, test_backend());
        ck_assert_msg(r == 0, "proc_open(%d): %s", (int) pid, strerror(-r));
        r = proc_normalize(p, addrs, n, &opts, &ret);
        ck_assert_msg(r == 0, "proc_normalize: %s", strerror(-r));
        return ret;
}

/* The daemon's defaults: build IDs, no map_files. */
static Normalization *core_normalize(pid_t pid, const uint64_t *addrs, size_t n) {
        return core_normalize_flags(pid, addrs, n, NORMALIZE_BUILD_IDS);
}

static uint64_t core_start_time(pid_t pid) {
        _cleanup_(proc_freep) Proc *p = NULL;

        ck_assert_int_eq(proc_open(&p, pid, test_backend()), 0);
        return proc_start_time(p);
}

static void hex(const uint8_t *data, size_t n, char *ret) {
        for (size_t i = 0; i < n; i++)
                sprintf(ret + 2 * i, "%02x", data[i]);
        ret[2 * n] = '\0';
}

static void assert_build_id(struct json_object *o, const uint8_t *id, size_t len) {
        char h[2 * BUILD_ID_MAX + 1];

        if (len == 0) {
                (void) json_get(o, "build_id", json_type_null);
                return;
        }
        hex(id, len, h);
        ck_assert_str_eq(json_get_string(o, "build_id"), h);
}

/* The reply's parameters describe exactly what the core found. */
static void assert_normalize_equals(struct json_object *p, const Normalization *n) {
        struct json_object *modules = json_get_array(p, "modules"), *results = json_get_array(p, "results");

        ck_assert_int_eq((int64_t) json_get_u64(p, "pid"), n->pid);
        ck_assert_uint_eq(json_get_u64(p, "start_time"), n->start_time);
        ck_assert_uint_eq(json_object_array_length(results), n->n_results);
        ck_assert_uint_eq(json_object_array_length(modules), n->n_modules);

        for (size_t i = 0; i < n->n_results; i++) {
                struct json_object *r = json_object_array_get_idx(results, i), *m;
                const NormResult *nr = &n->results[i];
                const NormModule *nm;
                uint64_t idx;

                ck_assert(json_object_is_type(r, json_type_object));
                if (nr->kind != NORM_MODULE) {
                        ck_assert_str_eq(json_get_string(r, "unknown"), norm_kind_to_string(nr->kind));
                        ck_assert(!json_has(r, "module"));
                        ck_assert(!json_has(r, "offset"));
                        continue;
                }

                ck_assert_msg(!json_has(r, "unknown"), "result %zu: %s", i, json_object_to_json_string(r));
                ck_assert_uint_eq(json_get_u64(r, "offset"), nr->offset);
                /* The ELF address, or why there is none, as the core says. */
                if (nr->vaddr_status == NORM_VADDR_OK)
                        ck_assert_uint_eq(json_get_u64(r, "elf_address"), nr->vaddr);
                else
                        ck_assert(!json_has(r, "elf_address"));
                switch (nr->vaddr_status) {
                case NORM_VADDR_NOT_ELF:
                        ck_assert_str_eq(json_get_string(r, "no_elf_address"), "not_elf");
                        break;
                case NORM_VADDR_NOT_LOADED:
                        ck_assert_str_eq(json_get_string(r, "no_elf_address"), "outside_load_segments");
                        break;
                case NORM_VADDR_UNREADABLE:
                case NORM_VADDR_SKIPPED:
                        ck_assert_str_eq(json_get_string(r, "no_elf_address"), "unreadable");
                        break;
                default:
                        ck_assert(!json_has(r, "no_elf_address"));
                }
                idx = json_get_u64(r, "module");
                ck_assert_uint_lt(idx, n->n_modules);
                m = json_object_array_get_idx(modules, idx);
                nm = &n->modules[nr->module];

                ck_assert_str_eq(json_get_string(m, "path"), nm->path);
                ck_assert_int_eq(json_get_bool(m, "deleted"), nm->deleted);
                ck_assert_int_eq(json_get_bool(m, "vdso"), nm->vdso);
                ck_assert_uint_eq(json_get_u64(m, "dev_major"), nm->dev_major);
                ck_assert_uint_eq(json_get_u64(m, "dev_minor"), nm->dev_minor);
                ck_assert_uint_eq(json_get_u64(m, "inode"), nm->inode);
                assert_build_id(m, nm->build_id, nm->build_id_len);
                if (nm->elf_status == NORM_VADDR_OK && IN_SET(nm->elf->type, ELF_TYPE_EXEC, ELF_TYPE_DYN, ELF_TYPE_OTHER))
                        ck_assert_str_eq(json_get_string(m, "elf_type"), elf_type_to_string(nm->elf->type));
                else
                        ck_assert(!json_has(m, "elf_type"));
                if (nm->elf_status == NORM_VADDR_OK && nm->elf->go_build_id)
                        ck_assert_str_eq(json_get_string(m, "go_build_id"), nm->elf->go_build_id);
                else
                        ck_assert(!json_has(m, "go_build_id"));
                /* Not asked for here. */
                ck_assert(!json_has(m, "htlhash"));
                if (nm->map_files)
                        ck_assert_str_eq(json_get_string(m, "map_files"), nm->map_files);
                else
                        ck_assert_msg(!json_has(m, "map_files"), "%s", json_object_to_json_string(m));
        }
}

/*
 * One line per result, for forked clients to compare whole replies without
 * ck_assert(). NULL if @p is malformed.
 */
static char *canonical_from_reply(struct json_object *p) {
        struct json_object *modules, *results, *pid, *st;
        char *buf = NULL;
        size_t size = 0;
        FILE *f;
        bool ok = true;

        if (!json_object_object_get_ex(p, "modules", &modules) ||
            !json_object_is_type(modules, json_type_array) ||
            !json_object_object_get_ex(p, "results", &results) ||
            !json_object_is_type(results, json_type_array) ||
            !json_object_object_get_ex(p, "pid", &pid) || !json_object_object_get_ex(p, "start_time", &st))
                return NULL;

        f = open_memstream(&buf, &size);
        if (!f)
                return NULL;
        fprintf(f, "pid=%" PRIu64 " start_time=%" PRIu64 "\n", json_object_get_uint64(pid),
                json_object_get_uint64(st));
        for (size_t i = 0; ok && i < json_object_array_length(results); i++) {
                struct json_object *r = json_object_array_get_idx(results, i), *v, *m;
                const char *bid;

                if (json_object_object_get_ex(r, "unknown", &v)) {
                        fprintf(f, "unknown %s\n", json_object_get_string(v));
                        continue;
                }
                if (!json_object_object_get_ex(r, "module", &v) ||
                    json_object_get_uint64(v) >= json_object_array_length(modules)) {
                        ok = false;
                        break;
                }
                m = json_object_array_get_idx(modules, json_object_get_uint64(v));
                if (!json_object_object_get_ex(r, "offset", &v))
                        ok = false;
                fprintf(f, "offset=%" PRIu64, json_object_get_uint64(v));
                bid = json_object_object_get_ex(m, "build_id", &v) && v ? json_object_get_string(v) : "-";
                fprintf(f, " build_id=%s", bid);
                if (json_object_object_get_ex(m, "deleted", &v))
                        fprintf(f, " deleted=%d", json_object_get_boolean(v));
                if (json_object_object_get_ex(m, "vdso", &v))
                        fprintf(f, " vdso=%d", json_object_get_boolean(v));
                if (json_object_object_get_ex(m, "path", &v))
                        fprintf(f, " path=%s", json_object_get_string(v));
                fputc('\n', f);
        }
        if (fclose(f) != 0 || !ok) {
                free(buf);
                return NULL;
        }
        return buf;
}

static char *canonical_from_core(const Normalization *n) {
        char *buf = NULL;
        size_t size = 0;
        FILE *f;

        f = open_memstream(&buf, &size);
        ck_assert_ptr_nonnull(f);
        fprintf(f, "pid=%d start_time=%" PRIu64 "\n", (int) n->pid, n->start_time);
        for (size_t i = 0; i < n->n_results; i++) {
                const NormResult *r = &n->results[i];
                const NormModule *m;
                char h[2 * BUILD_ID_MAX + 1] = "-";

                if (r->kind != NORM_MODULE) {
                        fprintf(f, "unknown %s\n", norm_kind_to_string(r->kind));
                        continue;
                }
                m = &n->modules[r->module];
                if (m->build_id_len > 0)
                        hex(m->build_id, m->build_id_len, h);
                fprintf(f, "offset=%" PRIu64 " build_id=%s deleted=%d vdso=%d path=%s\n", r->offset, h,
                        m->deleted, m->vdso, m->path);
        }
        ck_assert_int_eq(fclose(f), 0);
        return buf;
}

/* The TestChild of this test, stopped at the end (a failing test leaves it to PR_SET_PDEATHSIG). */
static TestChild test_child;

/* Its directory is noted in the run directory, for the runner to remove should the test fail. */
static TestChild *spawn_test_child(void) {
        char path[PATH_MAX];
        FILE *f;

        fflush(NULL);
        test_child_spawn(&test_child);
        snprintf(path, sizeof(path), "%s/test-child-dirs", run_dir);
        f = fopen(path, "ae");
        ck_assert_ptr_nonnull(f);
        fprintf(f, "%s\n", test_child.dir);
        ck_assert_int_eq(fclose(f), 0);
        return &test_child;
}

/* --- tests: org.varlink.service -------------------------------------------- */

START_TEST(test_get_info) {
        Daemon *d = daemon_start(NULL);
        _cleanup_(client_freep) Client *c = client_connect(d);
        _cleanup_(json_object_putp) struct json_object *reply = NULL;
        struct json_object *p, *ifaces;
        bool vmaq = false, service = false;
        struct stat st;

        reply = client_call(c, "{\"method\":\"org.varlink.service.GetInfo\"}");
        p = reply_parameters(reply);
        ck_assert_str_eq(json_get_string(p, "vendor"), "vmaqd");
        ck_assert_str_eq(json_get_string(p, "product"), "vmaqd");
        ck_assert_str_eq(json_get_string(p, "version"), PACKAGE_VERSION);
        ck_assert_str_eq(json_get_string(p, "url"), PACKAGE_URL);
        ifaces = json_get_array(p, "interfaces");
        for (size_t i = 0; i < json_object_array_length(ifaces); i++) {
                struct json_object *v = json_object_array_get_idx(ifaces, i);

                ck_assert(json_object_is_type(v, json_type_string));
                vmaq = vmaq || streq(json_object_get_string(v), "io.vmaq");
                service = service || streq(json_object_get_string(v), "org.varlink.service");
        }
        ck_assert(vmaq);
        ck_assert(service);
        ck_assert_uint_eq(json_object_array_length(ifaces), 2);

        /* GetInfo takes no parameters. */
        reply = (json_object_put(reply), NULL);
        reply = client_call(c, "{\"method\":\"org.varlink.service.GetInfo\",\"parameters\":{\"x\":1}}");
        assert_error_parameter(reply, "org.varlink.service.InvalidParameter", "x");

        /* The socket has the documented mode: anyone may connect, the policy decides. */
        ck_assert_int_eq(lstat(d->socket_path, &st), 0);
        ck_assert(S_ISSOCK(st.st_mode));
        ck_assert_uint_eq(st.st_mode & 07777, 0666);

        daemon_stop(d);
}
END_TEST

/* The text of the interface definition: comments and blank lines, then "interface NAME". */
static void assert_interface_text(const char *desc, const char *name) {
        const char *p = desc;
        char want[128];

        while (*p == '#' || *p == '\n') {
                p = strchr(p, '\n');
                ck_assert_ptr_nonnull(p);
                p++;
        }
        snprintf(want, sizeof(want), "interface %s\n", name);
        ck_assert_msg(strncmp(p, want, strlen(want)) == 0, "description does not start with '%s': '%.80s'",
                      want, p);
}

static char *read_text_file(const char *path) {
        char *buf = NULL;
        size_t size = 0;
        FILE *in, *out;
        int ch;

        in = fopen(path, "re");
        ck_assert_msg(in, "cannot open '%s': %s", path, strerror(errno));
        out = open_memstream(&buf, &size);
        ck_assert_ptr_nonnull(out);
        while ((ch = fgetc(in)) != EOF)
                fputc(ch, out);
        fclose(in);
        ck_assert_int_eq(fclose(out), 0);
        return buf;
}

START_TEST(test_interface_description) {
        Daemon *d = daemon_start(NULL);
        _cleanup_(client_freep) Client *c = client_connect(d);
        _cleanup_(json_object_putp) struct json_object *reply = NULL;
        _cleanup_free_ char *file = read_text_file(TEST_INTERFACE_FILE);
        struct json_object *p;
        const char *desc;

        reply = client_call(c, "{\"method\":\"org.varlink.service.GetInterfaceDescription\","
                               "\"parameters\":{\"interface\":\"io.vmaq\"}}");
        desc = json_get_string(reply_parameters(reply), "description");
        assert_interface_text(desc, "io.vmaq");
        ck_assert_ptr_nonnull(strstr(desc, "method Normalize("));
        ck_assert_ptr_nonnull(strstr(desc, "method ListMappings("));
        ck_assert_ptr_nonnull(strstr(desc, "method GetStatus("));
        /* It is the file the build embeds, verbatim. */
        ck_assert_str_eq(desc, file);

        reply = (json_object_put(reply), NULL);
        reply = client_call(c, "{\"method\":\"org.varlink.service.GetInterfaceDescription\","
                               "\"parameters\":{\"interface\":\"org.varlink.service\"}}");
        desc = json_get_string(reply_parameters(reply), "description");
        assert_interface_text(desc, "org.varlink.service");
        ck_assert_ptr_nonnull(strstr(desc, "method GetInfo("));

        reply = (json_object_put(reply), NULL);
        reply = client_call(c, "{\"method\":\"org.varlink.service.GetInterfaceDescription\","
                               "\"parameters\":{\"interface\":\"com.example.nothing\"}}");
        p = reply_error(reply, "org.varlink.service.InterfaceNotFound");
        ck_assert_str_eq(json_get_string(p, "interface"), "com.example.nothing");

        reply = (json_object_put(reply), NULL);
        reply = client_call(c, "{\"method\":\"org.varlink.service.GetInterfaceDescription\","
                               "\"parameters\":{}}");
        assert_error_parameter(reply, "org.varlink.service.InvalidParameter", "interface");

        reply = (json_object_put(reply), NULL);
        reply = client_call(c, "{\"method\":\"org.varlink.service.GetInterfaceDescription\","
                               "\"parameters\":{\"interface\":1}}");
        assert_error_parameter(reply, "org.varlink.service.InvalidParameter", "interface");

        daemon_stop(d);
}
END_TEST

/* --- tests: io.vmaq.Normalize ------------------------------------------------ */

START_TEST(test_normalize_matches_core) {
        Daemon *d = daemon_start(NULL);
        TestChild *tc = spawn_test_child();
        _cleanup_(client_freep) Client *c = client_connect(d);
        _cleanup_(json_object_putp) struct json_object *reply = NULL;
        _cleanup_(normalization_freep) Normalization *n = NULL;
        _cleanup_free_ char *msg = NULL;
        uint64_t addrs[MIXED_N];
        uint8_t id[BUILD_ID_MAX];
        char exe[PATH_MAX], h[2 * BUILD_ID_MAX + 1];
        struct json_object *p, *r, *m;

        mixed_addrs(tc, addrs);
        msg = normalize_call(tc->pid, addrs, MIXED_N, NULL);
        reply = client_call(c, "%s", msg);
        n = core_normalize(tc->pid, addrs, MIXED_N);
        p = reply_parameters(reply);
        assert_normalize_equals(p, n);
        ck_assert_uint_eq(json_get_u64(p, "start_time"), core_start_time(tc->pid));

        /* Not only equal to the core: right. Index 6 is the test executable's marker function. */
        test_self_exe(exe);
        hex(id, test_self_build_id(id), h);
        r = json_object_array_get_idx(json_get_array(p, "results"), 6);
        m = json_object_array_get_idx(json_get_array(p, "modules"), json_get_u64(r, "module"));
        ck_assert_str_eq(json_get_string(m, "path"), exe);
        ck_assert_str_eq(json_get_string(m, "build_id"), h);
        /* Index 2 is the mapped file, from page TEST_FILE_MAP_PGOFF on. */
        r = json_object_array_get_idx(json_get_array(p, "results"), 2);
        ck_assert_uint_eq(json_get_u64(r, "offset"), TEST_FILE_MAP_PGOFF * test_page_size() + 0x123);
        /* Each module once: the file, the deleted file, the executable, the vDSO. */
        ck_assert_uint_eq(json_object_array_length(json_get_array(p, "modules")), 4);
        /* The ends of the address space are unmapped. */
        r = json_object_array_get_idx(json_get_array(p, "results"), MIXED_N - 2);
        ck_assert_str_eq(json_get_string(r, "unknown"), "unmapped");
        r = json_object_array_get_idx(json_get_array(p, "results"), MIXED_N - 1);
        ck_assert_str_eq(json_get_string(r, "unknown"), "unmapped");

        /* The same again: the cached process answers the same. */
        reply = (json_object_put(reply), NULL);
        reply = client_call(c, "%s", msg);
        assert_normalize_equals(reply_parameters(reply), n);

        test_child_stop(tc);
        daemon_stop(d);
}
END_TEST

/* The first module of a Normalize reply, or NULL. No ck_assert(): forked clients use it. */
static struct json_object *module_of(struct json_object *r) {
        struct json_object *p, *modules;

        if (!r || !json_object_object_get_ex(r, "parameters", &p) ||
            !json_object_object_get_ex(p, "modules", &modules) || json_object_array_length(modules) < 1)
                return NULL;
        return json_object_array_get_idx(modules, 0);
}

/*
 * With "htlhash": the file's htlhash, computed here from the file itself:
 * SHA-256 over its first 4 KiB, its last 4 KiB and its length, big-endian.
 * Without: none. And the test executable's ELF type.
 */
START_TEST(test_normalize_htlhash) {
        Daemon *d = daemon_start(NULL);
        _cleanup_(client_freep) Client *c = client_connect(d);
        _cleanup_(json_object_putp) struct json_object *with = NULL, *without = NULL;
        _cleanup_free_ char *msg = NULL, *plain = NULL;
        _cleanup_close_ int fd = -EBADF;
        uint64_t code = (uintptr_t) test_marker_function, be;
        uint8_t head[4096], tail[4096], digest[SHA256_DIGEST_SIZE];
        char exe[PATH_MAX], want[2 * 16 + 1];
        size_t n_head, n_tail;
        struct stat st;
        Sha256 h;

        test_self_exe(exe);
        fd = open(exe, O_RDONLY|O_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(fstat(fd, &st), 0);
        n_head = (size_t) MIN((off_t) sizeof(head), st.st_size);
        n_tail = n_head;
        ck_assert_int_eq(pread(fd, head, n_head, 0), (ssize_t) n_head);
        ck_assert_int_eq(pread(fd, tail, n_tail, st.st_size - (off_t) n_tail), (ssize_t) n_tail);
        sha256_init(&h);
        sha256_update(&h, head, n_head);
        sha256_update(&h, tail, n_tail);
        be = htobe64((uint64_t) st.st_size);
        sha256_update(&h, &be, sizeof(be));
        sha256_final(&h, digest);
        hex(digest, 16, want);

        ck_assert_int_ge(asprintf(&msg, "{\"method\":\"io.vmaq.Normalize\",\"parameters\":{\"pid\":%d,"
                                        "\"addresses\":[%" PRIu64 "],\"htlhash\":true}}", (int) getpid(), code), 0);
        with = client_call(c, "%s", msg);
        ck_assert_str_eq(single_module_path(with), exe);
        ck_assert_str_eq(json_get_string(module_of(with), "htlhash"), want);
        ck_assert_str_eq(json_get_string(module_of(with), "elf_type"), "dyn");

        plain = normalize_one(getpid(), code);
        without = client_call(c, "%s", plain);
        ck_assert(!json_has(module_of(without), "htlhash"));
        ck_assert_str_eq(json_get_string(module_of(without), "elf_type"), "dyn");
        daemon_stop(d);
}
END_TEST

START_TEST(test_normalize_address_strings) {
        Daemon *d = daemon_start(NULL);
        TestChild *tc = spawn_test_child();
        _cleanup_(client_freep) Client *c = client_connect(d);
        _cleanup_(json_object_putp) struct json_object *ints = NULL, *strs = NULL;
        _cleanup_(normalization_freep) Normalization *n = NULL;
        _cleanup_free_ char *msg = NULL, *strmsg = NULL;
        uint64_t addrs[LAYOUT_N];
        char *buf = NULL;
        size_t size = 0;
        FILE *f;

        layout_addrs(tc, addrs);
        msg = normalize_call(tc->pid, addrs, LAYOUT_N, NULL);
        ints = client_call(c, "%s", msg);

        /* The same addresses as strings, hexadecimal and decimal in turn. */
        f = open_memstream(&buf, &size);
        ck_assert_ptr_nonnull(f);
        fprintf(f, "{\"method\":\"io.vmaq.Normalize\",\"parameters\":{\"pid\":%d,\"addresses\":[",
                (int) tc->pid);
        for (size_t i = 0; i < LAYOUT_N; i++)
                if (i % 3 == 0)
                        fprintf(f, "%s\"0x%" PRIx64 "\"", i > 0 ? "," : "", addrs[i]);
                else if (i % 3 == 1)
                        fprintf(f, ",\"0X%" PRIX64 "\"", addrs[i]);
                else
                        fprintf(f, ",\"%" PRIu64 "\"", addrs[i]);
        fprintf(f, "]}}");
        ck_assert_int_eq(fclose(f), 0);
        strmsg = buf;
        strs = client_call(c, "%s", strmsg);

        n = core_normalize(tc->pid, addrs, LAYOUT_N);
        assert_normalize_equals(reply_parameters(ints), n);
        assert_normalize_equals(reply_parameters(strs), n);
        ck_assert_msg(json_object_equal(reply_parameters(ints), reply_parameters(strs)), "%s != %s",
                      json_object_to_json_string(ints), json_object_to_json_string(strs));

        /* 2^64-1 round-trips as an integer and as strings: unmapped. */
        ints = (json_object_put(ints), NULL);
        ints = client_call(c, "{\"method\":\"io.vmaq.Normalize\",\"parameters\":{\"pid\":%d,\"addresses\":"
                              "[18446744073709551615,\"0xffffffffffffffff\",\"18446744073709551615\","
                              "\"0XFFFFFFFFFFFFFFFF\"]}}",
                           (int) tc->pid);
        for (size_t i = 0; i < 4; i++) {
                struct json_object *results = json_get_array(reply_parameters(ints), "results");

                struct json_object *res = json_object_array_get_idx(results, i);

                ck_assert_str_eq(json_get_string(res, "unknown"), "unmapped");
        }
        ck_assert_uint_eq(json_object_array_length(json_get_array(reply_parameters(ints), "results")), 4);
        ck_assert_uint_eq(json_object_array_length(json_get_array(reply_parameters(ints), "modules")), 0);

        test_child_stop(tc);
        daemon_stop(d);
}
END_TEST

START_TEST(test_normalize_options) {
        Daemon *d = daemon_start(NULL);
        TestChild *tc = spawn_test_child();
        _cleanup_(client_freep) Client *c = client_connect(d);
        uint64_t addrs[LAYOUT_N];
        static const struct {
                const char *extra;
                unsigned flags;
        } options[] = {
                { "\"build_ids\":false",                       0 },
                { "\"build_ids\":true,\"map_files\":false",    NORMALIZE_BUILD_IDS },
                { "\"map_files\":true",                        NORMALIZE_BUILD_IDS | NORMALIZE_MAP_FILES },
                { "\"build_ids\":false,\"map_files\":true",    NORMALIZE_MAP_FILES },
        };

        layout_addrs(tc, addrs);
        for (size_t i = 0; i < ELEMENTSOF(options); i++) {
                _cleanup_(json_object_putp) struct json_object *r = NULL;
                _cleanup_(normalization_freep) Normalization *n = NULL;
                _cleanup_free_ char *msg = normalize_call(tc->pid, addrs, LAYOUT_N, options[i].extra);
                struct json_object *modules;
                size_t n_map_files = 0;

                r = client_call(c, "%s", msg);
                n = core_normalize_flags(tc->pid, addrs, LAYOUT_N, options[i].flags);
                assert_normalize_equals(reply_parameters(r), n);

                /* Each file module names its map_files entry when asked, the vDSO never. */
                modules = json_get_array(reply_parameters(r), "modules");
                for (size_t k = 0; k < json_object_array_length(modules); k++) {
                        struct json_object *m = json_object_array_get_idx(modules, k);
                        char prefix[64];

                        if (!(options[i].flags & NORMALIZE_BUILD_IDS))
                                (void) json_get(m, "build_id", json_type_null);
                        if (!json_has(m, "map_files"))
                                continue;
                        snprintf(prefix, sizeof(prefix), "/proc/%d/map_files/", (int) tc->pid);
                        ck_assert_msg(strncmp(json_get_string(m, "map_files"), prefix, strlen(prefix)) == 0,
                                      "%s", json_get_string(m, "map_files"));
                        ck_assert(!json_get_bool(m, "vdso"));
                        n_map_files++;
                }
                /* The file, the deleted file and the executable, not the vDSO. */
                ck_assert_uint_eq(n_map_files, options[i].flags & NORMALIZE_MAP_FILES ? 3 : 0);
        }

        test_child_stop(tc);
        daemon_stop(d);
}
END_TEST

/* --- tests: io.vmaq.ListMappings --------------------------------------------- */

typedef struct CoreVma {
        Vma vma;
        char name[PATH_MAX];
} CoreVma;

typedef struct CoreVmaList {
        CoreVma *items;
        size_t n, allocated;
} CoreVmaList;

static int core_vma_add(const Vma *v, void *userdata) {
        CoreVmaList *l = userdata;

        if (l->n == l->allocated) {
                size_t n = MAX(l->allocated * 2, (size_t) 64);
                CoreVma *a = reallocarray(l->items, n, sizeof(CoreVma));

                if (!a)
                        return -ENOMEM;
                l->items = a;
                l->allocated = n;
        }
        l->items[l->n].vma = *v;
        snprintf(l->items[l->n].name, sizeof(l->items[l->n].name), "%s", v->name);
        l->items[l->n].vma.name = NULL;
        l->n++;
        return 0;
}

static const char *kind_name(VmaKind k) {
        switch (k) {
        case VMA_KIND_FILE:
                return "file";
        case VMA_KIND_ANONYMOUS:
                return "anonymous";
        case VMA_KIND_SPECIAL:
                return "special";
        case VMA_KIND_VDSO:
                return "vdso";
        default:
                return "?";
        }
}

/* The "mappings" of a reply equal the core's walk, field by field. */
static void assert_mappings_equal(struct json_object *mappings, const CoreVmaList *l) {
        ck_assert_uint_eq(json_object_array_length(mappings), l->n);
        for (size_t i = 0; i < l->n; i++) {
                struct json_object *m = json_object_array_get_idx(mappings, i);
                const Vma *v = &l->items[i].vma;
                char perms[5] = {
                        v->perms & VMA_PERM_READ ? 'r' : '-',
                        v->perms & VMA_PERM_WRITE ? 'w' : '-',
                        v->perms & VMA_PERM_EXEC ? 'x' : '-',
                        v->perms & VMA_PERM_SHARED ? 's' : 'p',
                        '\0',
                };

                ck_assert_uint_eq(json_get_u64(m, "start"), v->start);
                ck_assert_uint_eq(json_get_u64(m, "end"), v->end);
                ck_assert_uint_eq(json_get_u64(m, "offset"), v->offset);
                ck_assert_uint_eq(json_get_u64(m, "inode"), v->inode);
                ck_assert_uint_eq(json_get_u64(m, "dev_major"), v->dev_major);
                ck_assert_uint_eq(json_get_u64(m, "dev_minor"), v->dev_minor);
                ck_assert_str_eq(json_get_string(m, "perms"), perms);
                ck_assert_str_eq(json_get_string(m, "kind"), kind_name(v->kind));
                ck_assert_int_eq(json_get_bool(m, "deleted"), v->deleted);
                if (l->items[i].name[0])
                        ck_assert_str_eq(json_get_string(m, "path"), l->items[i].name);
                else
                        ck_assert_msg(!json_has(m, "path"), "unnamed mapping with a path: %s",
                                      json_object_to_json_string(m));
                assert_build_id(m, v->build_id, v->build_id_len);
                if (IN_SET(v->elf_type, ELF_TYPE_EXEC, ELF_TYPE_DYN, ELF_TYPE_OTHER))
                        ck_assert_str_eq(json_get_string(m, "elf_type"), elf_type_to_string((ElfType) v->elf_type));
                else
                        ck_assert(!json_has(m, "elf_type"));
        }
}

START_TEST(test_list_mappings) {
        Daemon *d = daemon_start(NULL);
        TestChild *tc = spawn_test_child();
        _cleanup_(client_freep) Client *c = client_connect(d);
        _cleanup_(json_object_putp) struct json_object *all = NULL, *exec = NULL;
        _cleanup_(proc_freep) Proc *proc = NULL;
        CoreVmaList l_all = {}, l_exec = {};
        struct json_object *mappings;
        uint8_t id[BUILD_ID_MAX];
        char exe[PATH_MAX], h[2 * BUILD_ID_MAX + 1];
        size_t n_exec = 0, n_exe = 0, n_file = 0;

        test_self_exe(exe);
        hex(id, test_self_build_id(id), h);

        exec = client_call(c, "{\"method\":\"io.vmaq.ListMappings\","
                              "\"parameters\":{\"pid\":%d,\"exec_only\":true}}", (int) tc->pid);
        mappings = json_get_array(reply_parameters(exec), "mappings");
        ck_assert_int_eq((int64_t) json_get_u64(reply_parameters(exec), "pid"), tc->pid);
        ck_assert_uint_eq(json_get_u64(reply_parameters(exec), "start_time"), core_start_time(tc->pid));
        for (size_t i = 0; i < json_object_array_length(mappings); i++) {
                struct json_object *m = json_object_array_get_idx(mappings, i);
                const char *perms = json_get_string(m, "perms");

                ck_assert_uint_eq(strlen(perms), 4);
                ck_assert_msg(perms[2] == 'x', "non-executable mapping listed: %s",
                              json_object_to_json_string(m));
                if (json_has(m, "path") && streq(json_get_string(m, "path"), exe)) {
                        ck_assert_str_eq(json_get_string(m, "build_id"), h);
                        ck_assert_str_eq(json_get_string(m, "kind"), "file");
                        /* The test executable is position-independent. */
                        ck_assert_str_eq(json_get_string(m, "elf_type"), "dyn");
                        ck_assert_uint_le(json_get_u64(m, "start"), tc->code_addr);
                        ck_assert_uint_gt(json_get_u64(m, "end"), tc->code_addr);
                        n_exe++;
                }
        }
        ck_assert_uint_eq(n_exe, 1);

        all = client_call(c, "{\"method\":\"io.vmaq.ListMappings\",\"parameters\":{\"pid\":%d}}",
                          (int) tc->pid);
        mappings = json_get_array(reply_parameters(all), "mappings");
        for (size_t i = 0; i < json_object_array_length(mappings); i++) {
                struct json_object *m = json_object_array_get_idx(mappings, i);

                if (json_get_string(m, "perms")[2] == 'x')
                        n_exec++;
                if (json_has(m, "path") && streq(json_get_string(m, "path"), tc->file_path)) {
                        ck_assert_str_eq(json_get_string(m, "perms"), "r--p");
                        ck_assert_uint_eq(json_get_u64(m, "offset"),
                                          TEST_FILE_MAP_PGOFF * test_page_size());
                        /* A data file, not ELF: no type. */
                        ck_assert(!json_has(m, "elf_type"));
                        n_file++;
                }
        }
        ck_assert_uint_eq(n_file, 1);
        ck_assert_uint_eq(n_exec,
                          json_object_array_length(json_get_array(reply_parameters(exec), "mappings")));
        ck_assert_uint_gt(json_object_array_length(mappings), n_exec);

        /* Field by field what the core walks, with and without the filter (the child's map is still). */
        ck_assert_int_eq(proc_open(&proc, tc->pid, test_backend()), 0);
        ck_assert_int_eq(proc_foreach_vma(proc, PROC_LIST_BUILD_IDS | PROC_LIST_ELF, NULL, core_vma_add, &l_all), 0);
        ck_assert_int_eq(proc_foreach_vma(proc, PROC_LIST_BUILD_IDS | PROC_LIST_ELF | PROC_LIST_EXEC_ONLY, NULL,
                                          core_vma_add, &l_exec), 0);
        assert_mappings_equal(json_get_array(reply_parameters(all), "mappings"), &l_all);
        assert_mappings_equal(json_get_array(reply_parameters(exec), "mappings"), &l_exec);
        free(l_all.items);
        free(l_exec.items);

        /* Without build IDs, there are none. */
        all = (json_object_put(all), NULL);
        all = client_call(c, "{\"method\":\"io.vmaq.ListMappings\","
                             "\"parameters\":{\"pid\":%d,\"build_ids\":false}}", (int) tc->pid);
        mappings = json_get_array(reply_parameters(all), "mappings");
        for (size_t i = 0; i < json_object_array_length(mappings); i++)
                (void) json_get(json_object_array_get_idx(mappings, i), "build_id", json_type_null);

        test_child_stop(tc);
        daemon_stop(d);
}
END_TEST

/* --- tests: io.vmaq.GetStatus ------------------------------------------------ */

START_TEST(test_status_counters) {
        Daemon *d = daemon_start(NULL);
        TestChild *tc = spawn_test_child();
        _cleanup_(client_freep) Client *c = client_connect(d), *c2 = client_connect(d);
        _cleanup_(json_object_putp) struct json_object *s1 = NULL, *s2 = NULL, *s3 = NULL, *x = NULL;
        _cleanup_free_ char *msg = NULL;
        uint64_t addrs[LAYOUT_N];

        layout_addrs(tc, addrs);
        msg = normalize_call(tc->pid, addrs, LAYOUT_N, NULL);

        s1 = get_status(c);
        ck_assert_str_eq(json_get_string(reply_parameters(s1), "backend"), TEST_BACKEND);
        ck_assert_str_eq(json_get_string(reply_parameters(s1), "version"), PACKAGE_VERSION);

        /* Five calls, two of them failing, on two connections. */
        x = client_call(c, "%s", msg);
        (void) reply_parameters(x);
        x = (json_object_put(x), NULL);
        x = client_call(c2, "%s", msg);
        (void) reply_parameters(x);
        x = (json_object_put(x), NULL);
        x = client_call(c2, "{\"method\":\"org.varlink.service.GetInfo\"}");
        (void) reply_parameters(x);
        x = (json_object_put(x), NULL);
        x = client_call(c, "{\"method\":\"io.vmaq.Normalize\","
                           "\"parameters\":{\"pid\":0,\"addresses\":[1]}}");
        (void) reply_error(x, "org.varlink.service.InvalidParameter");
        x = (json_object_put(x), NULL);
        x = client_call(c2, "{\"method\":\"io.vmaq.Nothing\"}");
        (void) reply_error(x, "org.varlink.service.MethodNotFound");

        s2 = get_status(c);
        /* The five calls and this GetStatus itself. */
        ck_assert_uint_eq(status_field(s2, "requests") - status_field(s1, "requests"), 5 + 1);
        ck_assert_uint_eq(status_field(s2, "errors") - status_field(s1, "errors"), 2);
        ck_assert_uint_eq(status_field(s2, "denied"), 0);
        /* The child was opened once and then found in the cache. */
        ck_assert_uint_eq(cache_delta(s1, s2, "proc_cache", "misses"), 1);
        ck_assert_uint_eq(cache_delta(s1, s2, "proc_cache", "hits"), 1);
        ck_assert_uint_eq(status_cache(s2, "proc_cache", "size"), 1);
        ck_assert_uint_ge(status_cache(s2, "proc_cache", "max"), 1);
        /* The second Normalize found every build ID in the cache. */
        ck_assert_uint_gt(status_cache(s2, "build_id_cache", "size"), 0);
        ck_assert_uint_gt(cache_delta(s1, s2, "build_id_cache", "hits"), 0);
        ck_assert_uint_ge(status_field(s2, "uptime_usec"), status_field(s1, "uptime_usec"));
        ck_assert_uint_eq(status_field(s2, "connections_max"), DOCUMENTED_MAX_CONNECTIONS);
        ck_assert_uint_eq(status_field(s2, "connections_per_user_max"), DOCUMENTED_MAX_CONNECTIONS_PER_USER);
        ck_assert_uint_eq(status_cache(s2, "memory", "max"), DOCUMENTED_MAX_MEMORY);
        /* What this connection holds now, at least: its request is being answered. */
        ck_assert_uint_gt(status_cache(s2, "memory", "used"), 0);
        ck_assert_uint_le(status_cache(s2, "memory", "used"), DOCUMENTED_MAX_MEMORY);
        /* The GetStatus call itself is running. */
        ck_assert_uint_ge(status_cache(s2, "workers", "used"), 1);
        ck_assert_uint_eq(status_cache(s2, "workers", "max"), 16);

        s3 = get_status(c2);
        ck_assert_uint_eq(status_field(s3, "requests") - status_field(s2, "requests"), 1);
        ck_assert_uint_eq(cache_delta(s2, s3, "build_id_cache", "misses"), 0);

        test_child_stop(tc);
        daemon_stop(d);
}
END_TEST

/* With --cache-size 1, two processes take turns in the cache and are answered right. */
START_TEST(test_proc_cache_bounded) {
        Daemon *d = daemon_start(ARGS("--cache-size", "1"));
        _cleanup_(client_freep) Client *c = client_connect(d);
        _cleanup_(json_object_putp) struct json_object *s1 = NULL, *s2 = NULL;
        uint64_t code = (uintptr_t) test_marker_function;
        char exe[PATH_MAX];
        pid_t pids[2];
        int ctl[2];

        test_self_exe(exe);
        for (size_t i = 0; i < 2; i++)
                pids[i] = spawn_waiting_child(&ctl[i], NULL, NULL);

        s1 = get_status(c);
        ck_assert_uint_eq(status_cache(s1, "proc_cache", "max"), 1);
        for (unsigned k = 0; k < 4; k++) {
                _cleanup_(json_object_putp) struct json_object *r = NULL;
                _cleanup_free_ char *msg = normalize_one(pids[k % 2], code);

                r = client_call(c, "%s", msg);
                ck_assert_int_eq((int64_t) json_get_u64(reply_parameters(r), "pid"), pids[k % 2]);
                ck_assert_uint_eq(json_get_u64(reply_parameters(r), "start_time"),
                                  core_start_time(pids[k % 2]));
                ck_assert_pstr_eq(single_module_path(r), exe);
        }
        s2 = get_status(c);
        ck_assert_uint_eq(status_cache(s2, "proc_cache", "size"), 1);
        ck_assert_uint_eq(cache_delta(s1, s2, "proc_cache", "misses"), 4);
        ck_assert_uint_eq(cache_delta(s1, s2, "proc_cache", "hits"), 0);

        for (size_t i = 0; i < 2; i++) {
                close(ctl[i]);
                assert_child_ok(pids[i], TIMEOUT_MS);
        }
        daemon_stop(d);
}
END_TEST

START_TEST(test_status_connections) {
        Daemon *d = daemon_start(ARGS("--max-connections", "7"));
        _cleanup_(client_freep) Client *c1 = client_connect(d), *c2 = NULL, *c3 = NULL;
        _cleanup_(json_object_putp) struct json_object *s = NULL, *x = NULL;

        /* The probe connection of daemon_start() may still be counted until the daemon sees it closed. */
        wait_connections(c1, 1);

        c2 = client_connect(d);
        c3 = client_connect(d);
        /* An answer proves the daemon accepted them. */
        x = client_call(c2, "{\"method\":\"org.varlink.service.GetInfo\"}");
        x = (json_object_put(x), NULL);
        x = client_call(c3, "{\"method\":\"org.varlink.service.GetInfo\"}");

        s = get_status(c1);
        ck_assert_uint_eq(status_field(s, "connections"), 3);
        ck_assert_uint_eq(status_field(s, "connections_max"), 7);

        c3 = client_free(c3);
        wait_connections(c1, 2);
        c2 = client_free(c2);
        wait_connections(c1, 1);

        daemon_stop(d);
}
END_TEST

/* --- tests: framing ---------------------------------------------------------- */

START_TEST(test_pipelined) {
        Daemon *d = daemon_start(NULL);
        TestChild *tc = spawn_test_child();
        _cleanup_(client_freep) Client *c = client_connect(d);
        _cleanup_(json_object_putp) struct json_object *r1 = NULL, *r2 = NULL, *r3 = NULL;
        _cleanup_free_ char *batch = NULL;
        int n;

        /* Three calls in one write(), the middle one failing. */
        n = asprintf(&batch,
                     "{\"method\":\"io.vmaq.Normalize\","
                     "\"parameters\":{\"pid\":%d,\"addresses\":[%" PRIu64 "]}}%c"
                     "{\"method\":\"io.vmaq.Nothing\"}%c"
                     "{\"method\":\"org.varlink.service.GetInfo\"}%c",
                     (int) tc->pid, tc->code_addr, 0, 0, 0);
        ck_assert_int_gt(n, 0);
        ck_assert_int_eq(write(c->fd, batch, (size_t) n), n);

        r1 = client_reply(c);
        ck_assert_uint_eq(json_object_array_length(json_get_array(reply_parameters(r1), "results")), 1);
        ck_assert_int_eq((int64_t) json_get_u64(reply_parameters(r1), "pid"), tc->pid);
        r2 = client_reply(c);
        ck_assert_str_eq(json_get_string(reply_error(r2, "org.varlink.service.MethodNotFound"), "method"),
                         "io.vmaq.Nothing");
        r3 = client_reply(c);
        ck_assert_str_eq(json_get_string(reply_parameters(r3), "version"), PACKAGE_VERSION);

        test_child_stop(tc);
        daemon_stop(d);
}
END_TEST

START_TEST(test_oneway) {
        Daemon *d = daemon_start(NULL);
        TestChild *tc = spawn_test_child();
        _cleanup_(client_freep) Client *c = client_connect(d);
        _cleanup_(json_object_putp) struct json_object *s1 = NULL, *s2 = NULL, *r = NULL;
        _cleanup_free_ char *m = NULL, *batch = NULL;
        int n;

        s1 = get_status(c);

        /* A oneway Normalize (executed: the process gets cached), a oneway error, then GetInfo. */
        n = asprintf(&batch,
                     "{\"method\":\"io.vmaq.Normalize\",\"oneway\":true,"
                     "\"parameters\":{\"pid\":%d,\"addresses\":[%" PRIu64 "]}}%c"
                     "{\"method\":\"io.vmaq.Normalize\",\"oneway\":true,\"parameters\":{\"pid\":0}}%c"
                     "{\"method\":\"org.varlink.service.GetInfo\"}%c",
                     (int) tc->pid, tc->code_addr, 0, 0, 0);
        ck_assert_int_gt(n, 0);
        ck_assert_int_eq(write(c->fd, batch, (size_t) n), n);

        r = client_reply(c);
        ck_assert_str_eq(json_get_string(reply_parameters(r), "version"), PACKAGE_VERSION);

        /* A oneway call alone: nothing comes back. */
        ck_assert_int_eq(client_send(c, "{\"method\":\"io.vmaq.GetStatus\",\"oneway\":true}"), 0);
        ck_assert_int_eq(client_read(c, NO_REPLY_MS, &m), -ETIMEDOUT);

        s2 = get_status(c);
        ck_assert_uint_eq(status_field(s2, "requests") - status_field(s1, "requests"), 4 + 1);
        ck_assert_uint_eq(cache_delta(s1, s2, "proc_cache", "misses"), 1);

        test_child_stop(tc);
        daemon_stop(d);
}
END_TEST

/* The pid of a child that has exited and been reaped. */
static pid_t spawn_exited_pid(void) {
        int ctl;
        pid_t pid = spawn_waiting_child(&ctl, NULL, NULL);

        close(ctl);
        assert_child_ok(pid, TIMEOUT_MS);
        return pid;
}

/*
 * A method that does not stream, or a Normalize answer small enough for
 * one part: "more": true gets the one ordinary reply, without "continues",
 * and the connection goes on. "parameters": null is {}.
 */
START_TEST(test_more) {
        Daemon *d = daemon_start(NULL);
        _cleanup_(client_freep) Client *c = client_connect(d);
        _cleanup_(json_object_putp) struct json_object *r = NULL;
        pid_t gone = spawn_exited_pid();

        r = client_call(c, "{\"method\":\"org.varlink.service.GetInfo\",\"more\":false}");
        ck_assert_str_eq(json_get_string(reply_parameters(r), "version"), PACKAGE_VERSION);

        r = (json_object_put(r), NULL);
        r = client_call(c, "{\"method\":\"io.vmaq.GetStatus\",\"more\":true}");
        ck_assert(!json_has(r, "continues"));
        ck_assert_str_eq(json_get_string(reply_parameters(r), "version"), PACKAGE_VERSION);

        r = (json_object_put(r), NULL);
        r = client_call(c, "{\"method\":\"io.vmaq.Normalize\",\"more\":true,"
                           "\"parameters\":{\"pid\":%d,\"addresses\":[%" PRIuPTR "]}}",
                        (int) getpid(), (uintptr_t) test_marker_function);
        ck_assert(!json_has(r, "continues"));
        ck_assert_int_eq(json_object_array_length(json_get(reply_parameters(r), "results", json_type_array)), 1);

        /* An error ends the call just the same. */
        r = (json_object_put(r), NULL);
        r = client_call(c, "{\"method\":\"io.vmaq.Normalize\",\"more\":true,"
                           "\"parameters\":{\"pid\":%d,\"addresses\":[1]}}", (int) gone);
        ck_assert(!json_has(r, "continues"));
        ck_assert_int_eq(json_get_u64(reply_error(r, "io.vmaq.NoSuchProcess"), "pid"), gone);

        r = (json_object_put(r), NULL);
        r = client_call(c, "{\"method\":\"org.varlink.service.GetInfo\",\"parameters\":null}");
        ck_assert_str_eq(json_get_string(reply_parameters(r), "version"), PACKAGE_VERSION);

        r = (json_object_put(r), NULL);
        r = client_call(c, "{\"method\":\"io.vmaq.Normalize\",\"parameters\":null}");
        ck_assert_str_eq(json_get_string(reply_error(r, "org.varlink.service.InvalidParameter"), "parameter"), "pid");

        daemon_stop(d);
}
END_TEST

/* The largest part of a streamed Normalize reply, in results (methods.c). */
#define STREAM_PART_RESULTS 4096U
#define STREAM_N (3 * STREAM_PART_RESULTS + 17)

/* @msg, a call, with "more": true. */
static char *call_with_more(const char *msg) {
        char *m = NULL;

        ck_assert_uint_gt(strlen(msg), 1);
        ck_assert_int_ge(asprintf(&m, "%.*s,\"more\":true}", (int) (strlen(msg) - 1), msg), 0);
        return m;
}

/*
 * "more": true streams a large Normalize answer in parts: each bounded,
 * all but the last with "continues", each with the modules its results
 * name first, their indexes going on from the parts before. Together they
 * say what the core says, and the connection goes on after them.
 */
START_TEST(test_normalize_stream) {
        Daemon *d = daemon_start(NULL);
        TestChild *tc = spawn_test_child();
        _cleanup_(client_freep) Client *c = client_connect(d);
        _cleanup_(json_object_putp) struct json_object *all = NULL, *r = NULL;
        _cleanup_(normalization_freep) Normalization *n = NULL;
        _cleanup_free_ char *msg = NULL, *streamed = NULL, *got = NULL, *want = NULL;
        _cleanup_free_ uint64_t *addrs = calloc(STREAM_N, sizeof(uint64_t));
        struct json_object *modules, *results;
        uint64_t mixed[MIXED_N];
        size_t n_parts = 0;
        bool continues;

        ck_assert_ptr_nonnull(addrs);
        /* Nothing but unmapped addresses in the first part: its modules come in later parts. */
        mixed_addrs(tc, mixed);
        for (size_t i = 0; i < STREAM_N; i++)
                addrs[i] = i < STREAM_PART_RESULTS + 5 ? 8 * i : mixed[i % MIXED_N];
        msg = normalize_call(tc->pid, addrs, STREAM_N, NULL);
        streamed = call_with_more(msg);
        ck_assert_int_ge(client_send(c, streamed), 0);
        /* Pipelined: answered once the stream is done. */
        ck_assert_int_ge(client_send(c, "{\"method\":\"io.vmaq.GetStatus\"}"), 0);

        all = json_object_new_object();
        modules = json_object_new_array();
        results = json_object_new_array();
        ck_assert(all && modules && results);
        do {
                _cleanup_(json_object_putp) struct json_object *part = client_reply(c);
                struct json_object *p, *a;

                ck_assert(!json_has(part, "error"));
                p = json_get(part, "parameters", json_type_object);
                continues = json_has(part, "continues");
                if (continues)
                        ck_assert(json_object_get_boolean(json_get(part, "continues", json_type_boolean)));
                if (n_parts == 0) {
                        json_object_object_add(all, "pid", json_object_get(json_get(p, "pid", json_type_int)));
                        json_object_object_add(all, "start_time",
                                               json_object_get(json_get(p, "start_time", json_type_int)));
                        ck_assert_uint_eq(json_object_array_length(json_get_array(p, "modules")), 0);
                }
                a = json_get_array(p, "results");
                ck_assert_uint_ge(json_object_array_length(a), 1);
                ck_assert_uint_le(json_object_array_length(a), STREAM_PART_RESULTS);
                for (size_t i = 0; i < json_object_array_length(a); i++) {
                        struct json_object *res = json_object_array_get_idx(a, i), *v;

                        /* An index names a module of this part or of one before. */
                        if (json_object_object_get_ex(res, "module", &v))
                                ck_assert_uint_lt(json_object_get_uint64(v), json_object_array_length(modules) +
                                                  json_object_array_length(json_get_array(p, "modules")));
                        json_object_array_add(results, json_object_get(res));
                }
                a = json_get_array(p, "modules");
                for (size_t i = 0; i < json_object_array_length(a); i++)
                        json_object_array_add(modules, json_object_get(json_object_array_get_idx(a, i)));
                n_parts++;
        } while (continues);
        json_object_object_add(all, "modules", modules);
        json_object_object_add(all, "results", results);

        ck_assert_uint_ge(n_parts, 4);
        ck_assert_uint_eq(json_object_array_length(results), STREAM_N);
        n = core_normalize(tc->pid, addrs, STREAM_N);
        got = canonical_from_reply(all);
        want = canonical_from_core(n);
        ck_assert_ptr_nonnull(got);
        ck_assert_str_eq(got, want);

        r = client_reply(c);
        ck_assert_str_eq(json_get_string(reply_parameters(r), "version"), PACKAGE_VERSION);

        /* Oneway: no reply, streamed or not; the next call is answered. */
        r = (json_object_put(r), NULL);
        free(streamed);
        streamed = NULL;
        ck_assert_int_ge(asprintf(&streamed, "%.*s,\"more\":true,\"oneway\":true}", (int) (strlen(msg) - 1),
                                  msg), 0);
        ck_assert_int_ge(client_send(c, streamed), 0);
        r = client_call(c, "{\"method\":\"io.vmaq.GetStatus\"}");
        ck_assert_str_eq(json_get_string(reply_parameters(r), "version"), PACKAGE_VERSION);

        test_child_stop(tc);
        daemon_stop(d);
}
END_TEST

/* A message trickling in byte by byte is one message; a finished sender gets its answers, then EOF. */
START_TEST(test_split_and_eof) {
        Daemon *d = daemon_start(NULL);
        _cleanup_(client_freep) Client *c = client_connect(d);
        _cleanup_(json_object_putp) struct json_object *r = NULL;
        static const char call[] = "{\"method\":\"org.varlink.service.GetInfo\"}";

        for (size_t i = 0; i < sizeof(call); i++) {
                _cleanup_free_ char *m = NULL;

                ck_assert_int_eq(client_send_raw(c, call + i, 1), 0);
                if (i + 1 < sizeof(call))
                        ck_assert_int_eq(client_read(c, i % 8 == 0 ? 20 : 0, &m), -ETIMEDOUT);
        }
        r = client_reply(c);
        ck_assert_str_eq(json_get_string(reply_parameters(r), "version"), PACKAGE_VERSION);

        /* Two calls, then the end of our sending: both answered, then the daemon closes. */
        ck_assert_int_eq(client_send(c, call), 0);
        ck_assert_int_eq(client_send(c, "{\"method\":\"io.vmaq.GetStatus\"}"), 0);
        ck_assert_int_eq(shutdown(c->fd, SHUT_WR), 0);
        r = (json_object_put(r), NULL);
        r = client_reply(c);
        ck_assert_str_eq(json_get_string(reply_parameters(r), "version"), PACKAGE_VERSION);
        r = (json_object_put(r), NULL);
        r = client_reply(c);
        ck_assert_str_eq(json_get_string(reply_parameters(r), "backend"), TEST_BACKEND);
        assert_closed(c, false);

        assert_serves(d);
        daemon_stop(d);
}
END_TEST

/* --- tests: bad input -------------------------------------------------------- */

/* Each gets io.vmaq.InvalidMessage and the connection closed. */
static const char *const invalid_messages[] = {
        /* not JSON */
        "{\"method\":",
        "{\"method\":\"org.varlink.service.GetInfo\",}",
        "{'method':'org.varlink.service.GetInfo'}",
        "{\"method\":\"org.varlink.service.GetInfo\"} {}",
        "{\"method\":\"org.varlink.service.GetInfo\"}x",
        "{\"method\":\"org.varlink.service.\xff\"}",
        "",
        /* JSON, but no object */
        "[1,2]",
        "\"org.varlink.service.GetInfo\"",
        "42",
        "null",
        /* an object, but no call */
        "{}",
        "{\"method\":1}",
        "{\"method\":\"GetInfo\"}",
        "{\"method\":\"org.varlink.service.GetInfo\",\"parameters\":[]}",
        "{\"method\":\"org.varlink.service.GetInfo\",\"oneway\":1}",
        "{\"method\":\"org.varlink.service.GetInfo\",\"more\":\"yes\"}",
        "{\"method\":\"org.varlink.service.GetInfo\",\"upgrade\":true}",
        "{\"method\":\"org.varlink.service.GetInfo\",\"frobnicate\":true}",
        /* strictness */
        "\xef\xbb\xbf{\"method\":\"org.varlink.service.GetInfo\"}",
        "{\"method\":\"org.varlink.service.GetInfo\"} /* comment */",
        "{\"method\":\"io.vmaq.GetStatus\",\"parameters\":{\"x\":\"a\\u0000b\"}}",
        "{\"method\":\"io.vmaq.GetStatus\",\"parameters\":{\"x\":\"\\ud800\"}}",
        "{\"method\":\"io.vmaq.GetStatus\",\"parameters\":{\"x\":\"a\tb\"}}",
        "{\"method\":\"io.vmaq.GetStatus\",\"parameters\":{\"x\":\"\xc0\xaf\"}}",
        "{\"method\":\"io.vmaq.GetStatus\",\"parameters\":{\"x\":NaN}}",
        "{\"method\":\"io.vmaq.GetStatus\",\"parameters\":{\"x\":01}}",
        "{\"method\":\"io.vmaq.GetStatus\",\"parameters\":{\"x\":1.}}",
        "{\"method\":\"io.vmaq.GetStatus\",\"parameters\":{\"x\":+1}}",
        "{\"method\":\"io.vmaq.GetStatus\",\"parameters\":{\"x\":0x10}}",
        /* deeper than VARLINK_DEPTH_MAX */
        "{\"method\":\"io.vmaq.GetStatus\","
        "\"parameters\":{\"x\":[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]}}",
};

START_TEST(test_invalid_messages) {
        Daemon *d = daemon_start(NULL);

        for (size_t i = 0; i < ELEMENTSOF(invalid_messages); i++) {
                _cleanup_(client_freep) Client *c = client_connect(d);
                _cleanup_(json_object_putp) struct json_object *r = NULL;
                struct json_object *p;

                ck_assert_int_eq(client_send(c, invalid_messages[i]), 0);
                r = client_reply(c);
                p = reply_error(r, "io.vmaq.InvalidMessage");
                ck_assert_msg(strlen(json_get_string(p, "reason")) > 0, "message %zu", i);
                assert_closed(c, false);
                assert_serves(d);
        }

        /*
         * 16 levels of nesting are fine, 17 are not: the message object, "parameters", then
         * arrays around a scalar (docs/PROTOCOL.md counts {"parameters":{"a":[[1]]}} as 5).
         */
        for (unsigned depth = 16; depth <= 17; depth++) {
                _cleanup_(client_freep) Client *c = client_connect(d);
                _cleanup_(json_object_putp) struct json_object *r = NULL;
                char msg[256], *p = msg;

                p += sprintf(p, "{\"method\":\"io.vmaq.GetStatus\",\"parameters\":{\"a\":");
                for (unsigned i = 0; i < depth - 3; i++)
                        *p++ = '[';
                *p++ = '1';
                for (unsigned i = 0; i < depth - 3; i++)
                        *p++ = ']';
                strcpy(p, "}}");

                r = client_call(c, "%s", msg);
                if (depth == 16) {
                        /* Parsed: GetStatus has no parameter "a". */
                        assert_error_parameter(r, "org.varlink.service.InvalidParameter", "a");
                        continue;
                }
                (void) reply_error(r, "io.vmaq.InvalidMessage");
                assert_closed(c, false);
        }

        /* A valid call behind an invalid one in the same write is not answered: the stream is dropped. */
        {
                _cleanup_(client_freep) Client *c = client_connect(d);
                _cleanup_(json_object_putp) struct json_object *r = NULL;
                static const char batch[] = "{\"method\":}\0{\"method\":\"org.varlink.service.GetInfo\"}";

                ck_assert_int_eq(client_send_raw(c, batch, sizeof(batch)), 0);
                r = client_reply(c);
                (void) reply_error(r, "io.vmaq.InvalidMessage");
                assert_closed(c, false);
        }

        daemon_stop(d);
}
END_TEST

START_TEST(test_eof_inside_message) {
        Daemon *d = daemon_start(NULL);
        _cleanup_(client_freep) Client *c = client_connect(d), *c2 = client_connect(d);
        _cleanup_(json_object_putp) struct json_object *r = NULL;
        static const char part[] = "{\"method\":\"org.varlink.service.GetInfo\"}";

        /* A whole message without its NUL, then EOF. */
        ck_assert_int_eq(client_send_raw(c, part, strlen(part)), 0);
        ck_assert_int_eq(shutdown(c->fd, SHUT_WR), 0);
        r = client_reply(c);
        ck_assert_uint_gt(strlen(json_get_string(reply_error(r, "io.vmaq.InvalidMessage"), "reason")), 0);
        assert_closed(c, false);

        /* A complete call is still answered before the broken rest. */
        ck_assert_int_eq(client_send(c2, part), 0);
        ck_assert_int_eq(client_send_raw(c2, part, 10), 0);
        ck_assert_int_eq(shutdown(c2->fd, SHUT_WR), 0);
        r = (json_object_put(r), NULL);
        r = client_reply(c2);
        ck_assert_str_eq(json_get_string(reply_parameters(r), "version"), PACKAGE_VERSION);
        r = (json_object_put(r), NULL);
        r = client_reply(c2);
        (void) reply_error(r, "io.vmaq.InvalidMessage");
        assert_closed(c2, false);

        assert_serves(d);
        daemon_stop(d);
}
END_TEST

START_TEST(test_unknown_method_and_interface) {
        Daemon *d = daemon_start(NULL);
        _cleanup_(client_freep) Client *c = client_connect(d);
        _cleanup_(json_object_putp) struct json_object *r = NULL;
        struct json_object *p;

        r = client_call(c, "{\"method\":\"io.vmaq.Frobnicate\",\"parameters\":{}}");
        p = reply_error(r, "org.varlink.service.MethodNotFound");
        ck_assert_str_eq(json_get_string(p, "method"), "io.vmaq.Frobnicate");
        r = (json_object_put(r), NULL);
        r = client_call(c, "{\"method\":\"org.varlink.service.Frobnicate\"}");
        p = reply_error(r, "org.varlink.service.MethodNotFound");
        ck_assert_str_eq(json_get_string(p, "method"), "org.varlink.service.Frobnicate");
        r = (json_object_put(r), NULL);
        r = client_call(c, "{\"method\":\"com.example.Frobnicate\"}");
        p = reply_error(r, "org.varlink.service.InterfaceNotFound");
        ck_assert_str_eq(json_get_string(p, "interface"), "com.example");
        r = (json_object_put(r), NULL);
        r = client_call(c, "{\"method\":\"io.vmaqx.Normalize\"}");
        p = reply_error(r, "org.varlink.service.InterfaceNotFound");
        ck_assert_str_eq(json_get_string(p, "interface"), "io.vmaqx");

        /* Such errors do not end the connection. */
        r = (json_object_put(r), NULL);
        r = client_call(c, "{\"method\":\"org.varlink.service.GetInfo\"}");
        ck_assert_str_eq(json_get_string(reply_parameters(r), "version"), PACKAGE_VERSION);

        assert_serves(d);
        daemon_stop(d);
}
END_TEST

typedef struct InvalidParameter {
        const char *method;
        const char *parameters;
        const char *parameter;          /* the one the error names */
} InvalidParameter;

static const InvalidParameter invalid_parameters[] = {
        { "io.vmaq.Normalize", "{\"addresses\":[1]}",                                    "pid" },
        { "io.vmaq.Normalize", "{\"pid\":\"1\",\"addresses\":[1]}",                       "pid" },
        { "io.vmaq.Normalize", "{\"pid\":1.0,\"addresses\":[1]}",                         "pid" },
        { "io.vmaq.Normalize", "{\"pid\":true,\"addresses\":[1]}",                        "pid" },
        { "io.vmaq.Normalize", "{\"pid\":null,\"addresses\":[1]}",                        "pid" },
        { "io.vmaq.Normalize", "{\"pid\":-1,\"addresses\":[1]}",                          "pid" },
        { "io.vmaq.Normalize", "{\"pid\":0,\"addresses\":[1]}",                           "pid" },
        { "io.vmaq.Normalize", "{\"pid\":2147483648,\"addresses\":[1]}",                  "pid" },
        { "io.vmaq.Normalize", "{\"pid\":4294967296,\"addresses\":[1]}",                  "pid" },
        { "io.vmaq.Normalize", "{\"pid\":9223372036854775808,\"addresses\":[1]}",         "pid" },
        { "io.vmaq.Normalize", "{\"pid\":18446744073709551615,\"addresses\":[1]}",        "pid" },
        { "io.vmaq.Normalize", "{\"pid\":18446744073709551616,\"addresses\":[1]}",        "pid" },
        { "io.vmaq.Normalize", "{\"pid\":1e3,\"addresses\":[1]}",                         "pid" },
        { "io.vmaq.Normalize", "{\"pid\":-0,\"addresses\":[1]}",                          "pid" },
        { "io.vmaq.Normalize", "{\"addresses\":[],\"pid\":0}",                            "addresses" },
        { "io.vmaq.Normalize", "{\"pid\":0,\"addresses\":[]}",                            "pid" },
        { "io.vmaq.Normalize", "{\"pid\":1}",                                             "addresses" },
        { "io.vmaq.Normalize", "{\"pid\":1,\"addresses\":5}",                             "addresses" },
        { "io.vmaq.Normalize", "{\"pid\":1,\"addresses\":\"0x10\"}",                      "addresses" },
        { "io.vmaq.Normalize", "{\"pid\":1,\"addresses\":{}}",                            "addresses" },
        { "io.vmaq.Normalize", "{\"pid\":1,\"addresses\":null}",                          "addresses" },
        { "io.vmaq.Normalize", "{\"pid\":1,\"addresses\":[]}",                            "addresses" },
        { "io.vmaq.Normalize", "{\"pid\":1,\"addresses\":[\"zz\"]}",                      "addresses" },
        { "io.vmaq.Normalize", "{\"pid\":1,\"addresses\":[\"0x\"]}",                      "addresses" },
        { "io.vmaq.Normalize", "{\"pid\":1,\"addresses\":[\"0xzz\"]}",                    "addresses" },
        { "io.vmaq.Normalize", "{\"pid\":1,\"addresses\":[\"\"]}",                        "addresses" },
        { "io.vmaq.Normalize", "{\"pid\":1,\"addresses\":[\"-1\"]}",                      "addresses" },
        { "io.vmaq.Normalize", "{\"pid\":1,\"addresses\":[\"0x10000000000000000\"]}",     "addresses" },
        { "io.vmaq.Normalize", "{\"pid\":1,\"addresses\":[\"18446744073709551616\"]}",    "addresses" },
        { "io.vmaq.Normalize", "{\"pid\":1,\"addresses\":[\"+1\"]}",                      "addresses" },
        { "io.vmaq.Normalize", "{\"pid\":1,\"addresses\":[\" 1\"]}",                      "addresses" },
        { "io.vmaq.Normalize", "{\"pid\":1,\"addresses\":[\"1 \"]}",                      "addresses" },
        { "io.vmaq.Normalize", "{\"pid\":1,\"addresses\":[\"1e3\"]}",                     "addresses" },
        { "io.vmaq.Normalize", "{\"pid\":1,\"addresses\":[1e3]}",                         "addresses" },
        { "io.vmaq.Normalize", "{\"pid\":1,\"addresses\":[1,-1]}",                        "addresses" },
        { "io.vmaq.Normalize", "{\"pid\":1,\"addresses\":[18446744073709551616]}",        "addresses" },
        { "io.vmaq.Normalize", "{\"pid\":1,\"addresses\":[1.5]}",                         "addresses" },
        { "io.vmaq.Normalize", "{\"pid\":1,\"addresses\":[true]}",                        "addresses" },
        { "io.vmaq.Normalize", "{\"pid\":1,\"addresses\":[null]}",                        "addresses" },
        { "io.vmaq.Normalize", "{\"pid\":1,\"addresses\":[[1]]}",                         "addresses" },
        { "io.vmaq.Normalize", "{\"pid\":1,\"addresses\":[1],\"frobnicate\":1}",          "frobnicate" },
        { "io.vmaq.Normalize", "{\"pid\":1,\"addresses\":[1],\"build_ids\":\"yes\"}",     "build_ids" },
        { "io.vmaq.Normalize", "{\"pid\":1,\"addresses\":[1],\"map_files\":1}",           "map_files" },
        { "io.vmaq.Normalize", "{\"pid\":1,\"addresses\":[1],\"build_ids\":0}",           "build_ids" },
        { "io.vmaq.Normalize", "{\"pid\":1,\"addresses\":[1],\"build_ids\":null}",        "build_ids" },
        { "io.vmaq.Normalize", "{\"pid\":1,\"addresses\":[1],\"start_time\":-1}",         "start_time" },
        { "io.vmaq.Normalize", "{\"pid\":1,\"addresses\":[1],\"start_time\":\"1\"}",      "start_time" },
        { "io.vmaq.Normalize", "{\"pid\":1,\"addresses\":[1],\"start_time\":18446744073709551616}",
          "start_time" },
        { "io.vmaq.ListMappings", "{}",                                                   "pid" },
        { "io.vmaq.ListMappings", "{\"pid\":-1}",                                         "pid" },
        { "io.vmaq.ListMappings", "{\"pid\":4294967296}",                                 "pid" },
        { "io.vmaq.ListMappings", "{\"pid\":1,\"exec_only\":\"yes\"}",                    "exec_only" },
        { "io.vmaq.ListMappings", "{\"pid\":1,\"frobnicate\":true}",                      "frobnicate" },
        { "io.vmaq.GetStatus", "{\"frobnicate\":true}",                                   "frobnicate" },
        { "org.varlink.service.GetInfo", "{\"frobnicate\":true}",                         "frobnicate" },
        { "org.varlink.service.GetInterfaceDescription", "{}",                             "interface" },
        { "org.varlink.service.GetInterfaceDescription", "{\"interface\":null}",           "interface" },
};

START_TEST(test_invalid_parameters) {
        Daemon *d = daemon_start(NULL);
        _cleanup_(client_freep) Client *c = client_connect(d);

        /* All on one connection: a bad parameter does not end it. */
        for (size_t i = 0; i < ELEMENTSOF(invalid_parameters); i++) {
                const InvalidParameter *t = &invalid_parameters[i];
                _cleanup_(json_object_putp) struct json_object *r = NULL;
                struct json_object *e = NULL, *p;

                r = client_call(c, "{\"method\":\"%s\",\"parameters\":%s}", t->method, t->parameters);
                ck_assert_msg(json_object_object_get_ex(r, "error", &e) &&
                              streq(json_object_get_string(e), "org.varlink.service.InvalidParameter"),
                              "%s %s: %s", t->method, t->parameters, json_object_to_json_string(r));
                p = reply_error(r, "org.varlink.service.InvalidParameter");
                ck_assert_msg(streq(json_get_string(p, "parameter"), t->parameter), "%s %s: %s", t->method,
                              t->parameters, json_object_to_json_string(r));
        }

        assert_serves(d);
        daemon_stop(d);
}
END_TEST

/* --- tests: limits ----------------------------------------------------------- */

START_TEST(test_too_many_addresses) {
        Daemon *d = daemon_start(ARGS("--max-addresses", "10"));
        _cleanup_(client_freep) Client *c = client_connect(d);
        _cleanup_(json_object_putp) struct json_object *r = NULL;
        _cleanup_free_ char *ten = NULL, *eleven = NULL;
        uint64_t addrs[11];
        struct json_object *p;

        for (size_t i = 0; i < ELEMENTSOF(addrs); i++)
                addrs[i] = (uintptr_t) test_marker_function + i;

        /* The limit itself is fine. */
        ten = normalize_call(getpid(), addrs, 10, NULL);
        r = client_call(c, "%s", ten);
        ck_assert_uint_eq(json_object_array_length(json_get_array(reply_parameters(r), "results")), 10);

        eleven = normalize_call(getpid(), addrs, 11, NULL);
        r = (json_object_put(r), NULL);
        r = client_call(c, "%s", eleven);
        p = reply_error(r, "io.vmaq.RequestTooLarge");
        ck_assert_str_eq(json_get_string(p, "parameter"), "addresses");
        ck_assert_uint_eq(json_get_u64(p, "limit"), 10);

        /* The connection carries on. */
        r = (json_object_put(r), NULL);
        r = client_call(c, "%s", ten);
        ck_assert_uint_eq(json_object_array_length(json_get_array(reply_parameters(r), "results")), 10);

        assert_serves(d);
        daemon_stop(d);
}
END_TEST

/* GetInfo padded with spaces to exactly @size bytes (without the NUL). */
static char *padded_get_info(size_t size) {
        static const char head[] = "{\"method\":\"org.varlink.service.GetInfo\"";
        char *m;

        ck_assert_uint_gt(size, sizeof(head));
        m = malloc(size + 1);
        ck_assert_ptr_nonnull(m);
        memcpy(m, head, strlen(head));
        memset(m + strlen(head), ' ', size - strlen(head) - 1);
        m[size - 1] = '}';
        m[size] = '\0';
        return m;
}

START_TEST(test_message_too_large) {
        Daemon *d = daemon_start(ARGS("--max-message-size", "4096"));
        _cleanup_(client_freep) Client *c = client_connect(d), *c2 = client_connect(d),
                                       *c3 = client_connect(d);
        _cleanup_(json_object_putp) struct json_object *r = NULL;
        _cleanup_free_ char *fits = padded_get_info(4096), *over = padded_get_info(4097), *huge = NULL;
        struct json_object *p;

        /* 4096 bytes and the NUL: allowed, twice in a row. */
        r = client_call(c, "%s", fits);
        ck_assert_str_eq(json_get_string(reply_parameters(r), "version"), PACKAGE_VERSION);
        r = (json_object_put(r), NULL);
        r = client_call(c, "%s", fits);
        ck_assert_str_eq(json_get_string(reply_parameters(r), "version"), PACKAGE_VERSION);

        /* One byte more: refused, and the connection is closed. */
        r = (json_object_put(r), NULL);
        r = client_call(c2, "%s", over);
        p = reply_error(r, "io.vmaq.RequestTooLarge");
        ck_assert_uint_eq(json_get_u64(p, "limit"), 4096);
        ck_assert(!json_has(p, "parameter"));
        assert_closed(c2, true);

        /* A megabyte without any NUL: the same, without reading it all first. */
        huge = padded_get_info(1024 * 1024);
        huge[1024 * 1024 - 1] = ' ';
        {
                /* It may close before all of it went out: that is the point. */
                int k = client_send_raw(c3, huge, 64 * 1024);

                ck_assert_msg(k == 0 || k == -EPIPE || k == -ECONNRESET, "send: %s", strerror(-k));
        }
        r = (json_object_put(r), NULL);
        r = client_reply(c3);
        ck_assert_uint_eq(json_get_u64(reply_error(r, "io.vmaq.RequestTooLarge"), "limit"), 4096);
        assert_closed(c3, true);

        r = (json_object_put(r), NULL);
        r = client_call(c, "{\"method\":\"org.varlink.service.GetInfo\"}");
        ck_assert_str_eq(json_get_string(reply_parameters(r), "version"), PACKAGE_VERSION);

        /* The limit is per message: many messages in one write, ten times the limit together, all pass. */
        {
                _cleanup_(client_freep) Client *c4 = client_connect(d);
                static const char call[] = "{\"method\":\"org.varlink.service.GetInfo\"}";
                const size_t n_small = 1000;
                _cleanup_free_ char *batch = malloc(n_small * sizeof(call) + 2 * 4097);
                size_t size = 0;

                ck_assert_ptr_nonnull(batch);
                memcpy(batch, fits, 4097);
                size += 4097;
                for (size_t i = 0; i < n_small; i++, size += sizeof(call))
                        memcpy(batch + size, call, sizeof(call));
                memcpy(batch + size, fits, 4097);
                size += 4097;
                ck_assert_uint_gt(size, 10 * 4096);
                ck_assert_int_eq(client_send_raw(c4, batch, size), 0);
                for (size_t i = 0; i < n_small + 2; i++) {
                        r = (json_object_put(r), NULL);
                        r = client_reply(c4);
                        ck_assert_str_eq(json_get_string(reply_parameters(r), "version"), PACKAGE_VERSION);
                }
        }

        assert_serves(d);
        daemon_stop(d);
}
END_TEST

START_TEST(test_max_connections) {
        Daemon *d = daemon_start(ARGS("--max-connections", "2"));
        _cleanup_(client_freep) Client *c1 = client_connect(d), *c2 = client_connect(d), *c3 = NULL;
        _cleanup_(json_object_putp) struct json_object *r = NULL;
        struct json_object *p;
        int64_t deadline;
        int k;

        /* Wait for the probe connection of daemon_start() to be gone, then fill both slots. */
        wait_connections(c1, 2);
        r = client_call(c2, "{\"method\":\"org.varlink.service.GetInfo\"}");
        (void) reply_parameters(r);

        /*
         * The third is accepted by the kernel, told why and closed by the
         * daemon, maybe before we send: the reason is there to read.
         */
        c3 = client_connect(d);
        k = client_send(c3, "{\"method\":\"org.varlink.service.GetInfo\"}");
        ck_assert_msg(k == 0 || k == -EPIPE, "send: %s", strerror(-k));
        r = (json_object_put(r), NULL);
        r = client_reply(c3);
        p = reply_error(r, "io.vmaq.TooManyConnections");
        ck_assert_str_eq(json_get_string(p, "reason"), "in total");
        ck_assert_int_eq(json_get_u64(p, "limit"), 2);
        assert_closed(c3, true);
        c3 = client_free(c3);
        r = (json_object_put(r), NULL);
        r = get_status(c1);
        ck_assert_uint_eq(status_cache(r, "refused", "connections"), 1);
        ck_assert_uint_eq(status_cache(r, "refused", "user_connections"), 0);

        /* Once one leaves, a new one is served. The close is seen asynchronously: retry, bounded. */
        c2 = client_free(c2);
        deadline = now_ms() + TIMEOUT_MS;
        for (;;) {
                c3 = client_connect(d);
                r = (json_object_put(r), NULL);
                r = client_call_raw(c3, "{\"method\":\"org.varlink.service.GetInfo\"}", TIMEOUT_MS);
                /* Refused while the daemon has not seen the close yet: try again. */
                if ((r && !json_has(r, "error")) || now_ms() > deadline)
                        break;
                c3 = client_free(c3);
                (void) poll(NULL, 0, 10);
        }
        ck_assert_ptr_nonnull(r);
        ck_assert_str_eq(json_get_string(reply_parameters(r), "version"), PACKAGE_VERSION);

        daemon_stop(d);
}
END_TEST

/* --- tests: the post-mortem window ------------------------------------------ */

/* In the test executable's read-only data: a file mapping that is not executable. */
static const char post_mortem_rodata[] = "kept only while the process lives";

/* Poll GetStatus (bounded) until snapshots.@key is @n. */
static void wait_snapshots(Client *c, const char *key, uint64_t n) {
        int64_t deadline = now_ms() + TIMEOUT_MS;

        for (;;) {
                _cleanup_(json_object_putp) struct json_object *s = get_status(c);
                uint64_t seen = status_cache(s, "snapshots", key);

                if (seen == n)
                        return;
                ck_assert_msg(now_ms() < deadline, "snapshots.%s stayed %" PRIu64 ", not %" PRIu64, key, seen, n);
                (void) poll(NULL, 0, 10);
        }
}

/* A Normalize call of @n addresses pinned to @start_time. */
static char *normalize_pinned(pid_t pid, const uint64_t *addrs, size_t n, uint64_t start_time) {
        _cleanup_free_ char *pin = NULL;

        if (asprintf(&pin, "\"start_time\":%" PRIu64, start_time) < 0)
                return NULL;
        return normalize_call(pid, addrs, n, pin);
}

static struct json_object *track(Client *c, pid_t pid, uint64_t start_time) {
        return client_call(c, "{\"method\":\"io.vmaq.Track\",\"parameters\":{\"pid\":%d,\"start_time\":%" PRIu64 "}}",
                           (int) pid, start_time);
}

/* The module of result @i of a Normalize reply's parameters @p, or NULL for an unknown one (its reason in *ret_unknown). */
static struct json_object *result_at(struct json_object *p, size_t i) {
        struct json_object *res = json_object_array_get_idx(json_get_array(p, "results"), i);

        ck_assert_ptr_nonnull(res);
        return res;
}

static struct json_object *result_module(struct json_object *p, size_t i, uint64_t *ret_offset, const char **ret_unknown) {
        struct json_object *res = json_object_array_get_idx(json_get_array(p, "results"), i);

        ck_assert_ptr_nonnull(res);
        if (json_has(res, "unknown")) {
                *ret_unknown = json_get_string(res, "unknown");
                return NULL;
        }
        *ret_unknown = NULL;
        *ret_offset = json_get_u64(res, "offset");
        return json_object_array_get_idx(json_get_array(p, "modules"), json_get_u64(res, "module"));
}

START_TEST(test_post_mortem) {
        Daemon *d = daemon_start(ARGS("--exit-grace", "600"));
        _cleanup_(client_freep) Client *c = client_connect(d);
        _cleanup_(json_object_putp) struct json_object *r = NULL, *live = NULL, *s = NULL;
        _cleanup_free_ char *heap = malloc(16);
        const uint64_t addrs[] = {
                (uintptr_t) test_marker_function,
                (uintptr_t) getpid,
                (uintptr_t) post_mortem_rodata,
                (uintptr_t) heap,
                1,
                (uintptr_t) test_marker_function + 1,
        };
        /* Which of them only the live process could answer. */
        static const bool kept[] = { true, true, false, false, false, true };
        _cleanup_free_ char *pinned = NULL, *unpinned = NULL, *other = NULL, *streamed = NULL, *plain = NULL;
        struct json_object *p, *m0;
        uint64_t st;
        int ctl;
        pid_t pid;

        ck_assert_ptr_nonnull(heap);
        pid = spawn_waiting_child(&ctl, NULL, NULL);
        st = core_start_time(pid);
        pinned = normalize_pinned(pid, addrs, ELEMENTSOF(addrs), st);
        other = normalize_pinned(pid, addrs, ELEMENTSOF(addrs), st + 1);
        unpinned = normalize_call(pid, addrs, ELEMENTSOF(addrs), NULL);

        /* Track answers about the process it snapshot. */
        r = track(c, pid, st);
        ck_assert_int_eq(json_get_u64(reply_parameters(r), "pid"), pid);
        ck_assert_uint_eq(json_get_u64(reply_parameters(r), "start_time"), st);
        r = (json_object_put(r), NULL);
        r = track(c, pid, st + 1);
        ck_assert_uint_eq(json_get_u64(reply_error(r, "io.vmaq.ProcessChanged"), "start_time"), st);

        live = client_call(c, "%s", pinned);
        ck_assert(!json_has(reply_parameters(live), "exited"));

        s = get_status(c);
        ck_assert_uint_eq(status_cache(s, "snapshots", "held"), 1);
        ck_assert_uint_eq(status_cache(s, "snapshots", "exited"), 0);
        ck_assert_uint_gt(status_cache(s, "snapshots", "memory_used"), 0);
        ck_assert_uint_eq(status_cache(s, "snapshots", "memory_max"), 16U << 20);

        close(ctl);
        assert_child_ok(pid, TIMEOUT_MS);
        wait_snapshots(c, "exited", 1);

        /* Gone: answered from the snapshot, the same for what it kept, "exited" for the rest. */
        r = (json_object_put(r), NULL);
        r = client_call(c, "%s", pinned);
        p = reply_parameters(r);
        ck_assert(json_get_bool(p, "exited"));
        ck_assert_int_eq(json_get_u64(p, "pid"), pid);
        ck_assert_uint_eq(json_get_u64(p, "start_time"), st);
        for (size_t i = 0; i < ELEMENTSOF(addrs); i++) {
                const char *unknown = NULL, *live_unknown = NULL;
                uint64_t offset = 0, live_offset = 0;
                struct json_object *m = result_module(p, i, &offset, &unknown);
                struct json_object *lm = result_module(reply_parameters(live), i, &live_offset, &live_unknown);

                if (!kept[i]) {
                        ck_assert_pstr_eq(unknown, "exited");
                        continue;
                }
                ck_assert_ptr_nonnull(m);
                ck_assert_ptr_nonnull(lm);
                ck_assert_uint_eq(offset, live_offset);
                ck_assert_str_eq(json_get_string(m, "path"), json_get_string(lm, "path"));
                ck_assert_str_eq(json_object_to_json_string(json_object_object_get(m, "build_id")),
                                 json_object_to_json_string(json_object_object_get(lm, "build_id")));
                ck_assert_uint_eq(json_get_u64(m, "inode"), json_get_u64(lm, "inode"));
                ck_assert_str_eq(json_get_string(m, "elf_type"), json_get_string(lm, "elf_type"));
                /* What a symbolizer takes, as the live answer gave it. */
                ck_assert_uint_eq(json_get_u64(result_at(p, i), "elf_address"),
                                  json_get_u64(result_at(reply_parameters(live), i), "elf_address"));
        }
        /* The live answer had a module for the read-only data: the snapshot has not. */
        ck_assert_ptr_nonnull(result_module(reply_parameters(live), 2, &(uint64_t) { 0 }, &(const char *) { NULL }));

        /* Asked for htlhash without build IDs: the ELF facts all the same, as live. */
        plain = strdup(pinned);
        ck_assert_ptr_nonnull(plain);
        plain[strlen(plain) - 2] = '\0';
        r = (json_object_put(r), NULL);
        r = client_call(c, "%s,\"build_ids\":false,\"htlhash\":true}}", plain);
        p = reply_parameters(r);
        ck_assert(json_get_bool(p, "exited"));
        m0 = result_module(p, 0, &(uint64_t) { 0 }, &(const char *) { NULL });
        ck_assert_ptr_nonnull(m0);
        (void) json_get(m0, "build_id", json_type_null);
        ck_assert_str_eq(json_get_string(m0, "elf_type"),
                         json_get_string(result_module(reply_parameters(live), 0, &(uint64_t) { 0 },
                                                       &(const char *) { NULL }), "elf_type"));
        ck_assert_uint_eq(json_get_u64(result_at(p, 0), "elf_address"),
                          json_get_u64(result_at(reply_parameters(live), 0), "elf_address"));

        /* In parts too, each saying so. */
        streamed = strdup(pinned);
        ck_assert_ptr_nonnull(streamed);
        streamed[strlen(streamed) - 1] = '\0';
        r = (json_object_put(r), NULL);
        r = client_call(c, "%s,\"more\":true}", streamed);
        ck_assert(json_get_bool(reply_parameters(r), "exited"));

        /* A pid alone is ambiguous, and another start time is another process. */
        r = (json_object_put(r), NULL);
        r = client_call(c, "%s", unpinned);
        ck_assert_int_eq(json_get_u64(reply_error(r, "io.vmaq.NoSuchProcess"), "pid"), pid);
        r = (json_object_put(r), NULL);
        r = client_call(c, "%s", other);
        ck_assert_int_eq(json_get_u64(reply_error(r, "io.vmaq.NoSuchProcess"), "pid"), pid);
        r = (json_object_put(r), NULL);
        r = track(c, pid, st);
        ck_assert_int_eq(json_get_u64(reply_error(r, "io.vmaq.NoSuchProcess"), "pid"), pid);

        daemon_stop(d);
}
END_TEST

/*
 * A new process that gets the pid of an exited one is never answered from
 * the old one's snapshot: only a call pinned to the old start time is.
 * The pid is taken again on purpose, with clone3()'s set_tid.
 */
START_TEST(test_post_mortem_pid_reuse) {
        Daemon *d = daemon_start(ARGS("--exit-grace", "600"));
        _cleanup_(client_freep) Client *c = client_connect(d);
        _cleanup_(json_object_putp) struct json_object *r = NULL;
        _cleanup_free_ char *old_pin = NULL, *new_pin = NULL, *unpinned = NULL;
        uint64_t code = (uintptr_t) test_marker_function, st_old, st_new;
        struct clone_args args = { .exit_signal = SIGCHLD };
        int ctl[2], old_ctl;
        pid_t old, again;

        old = spawn_waiting_child(&old_ctl, NULL, NULL);
        st_old = core_start_time(old);
        r = track(c, old, st_old);
        ck_assert_uint_eq(json_get_u64(reply_parameters(r), "start_time"), st_old);
        close(old_ctl);
        assert_child_ok(old, TIMEOUT_MS);
        wait_snapshots(c, "exited", 1);

        /*
         * Start times count clock ticks: one started in the same tick would
         * be the same process to a pid and start time (a pidfd tells them
         * apart). Wait for the next tick, bounded.
         */
        {
                int64_t deadline = now_ms() + TIMEOUT_MS;
                long hz = sysconf(_SC_CLK_TCK);

                for (;;) {
                        struct timespec ts;

                        ck_assert_int_eq(clock_gettime(CLOCK_BOOTTIME, &ts), 0);
                        if ((uint64_t) ts.tv_sec * (uint64_t) hz + (uint64_t) ts.tv_nsec / (1000000000U / hz) >
                            st_old + 1)
                                break;
                        ck_assert(now_ms() < deadline);
                        (void) poll(NULL, 0, 1);
                }
        }

        ck_assert_int_eq(pipe2(ctl, O_CLOEXEC), 0);
        args.set_tid = (uintptr_t) &old;
        args.set_tid_size = 1;
        again = (pid_t) syscall(SYS_clone3, &args, sizeof(args));
        if (again == 0) {
                char b;

                close(ctl[1]);
                (void) read(ctl[0], &b, 1);
                _exit(EXIT_SUCCESS);
        }
        ck_assert_msg(again == old, "clone3() with set_tid %d: %s", (int) old, strerror(errno));
        close(ctl[0]);
        st_new = core_start_time(again);
        ck_assert_uint_ne(st_new, st_old);

        /* The pid alone, and with the new start time: the new process, live. */
        unpinned = normalize_one(again, code);
        r = (json_object_put(r), client_call(c, "%s", unpinned));
        ck_assert(!json_has(reply_parameters(r), "exited"));
        ck_assert_uint_eq(json_get_u64(reply_parameters(r), "start_time"), st_new);
        new_pin = normalize_pinned(again, &code, 1, st_new);
        r = (json_object_put(r), client_call(c, "%s", new_pin));
        ck_assert(!json_has(reply_parameters(r), "exited"));
        ck_assert_uint_eq(json_get_u64(reply_parameters(r), "start_time"), st_new);
        /* The old start time: the old process, from its snapshot. */
        old_pin = normalize_pinned(old, &code, 1, st_old);
        r = (json_object_put(r), client_call(c, "%s", old_pin));
        ck_assert(json_get_bool(reply_parameters(r), "exited"));
        ck_assert_uint_eq(json_get_u64(reply_parameters(r), "start_time"), st_old);

        close(ctl[1]);
        assert_child_ok(again, TIMEOUT_MS);
        daemon_stop(d);
}
END_TEST

/* After the grace, and with the window closed, a gone process is gone. */
START_TEST(test_post_mortem_expiry) {
        Daemon *d = daemon_start(ARGS("--exit-grace", "1"));
        _cleanup_(client_freep) Client *c = client_connect(d);
        _cleanup_(json_object_putp) struct json_object *r = NULL;
        _cleanup_free_ char *msg = NULL;
        uint64_t code = (uintptr_t) test_marker_function, st;
        int ctl;
        pid_t pid;

        pid = spawn_waiting_child(&ctl, NULL, NULL);
        st = core_start_time(pid);
        msg = normalize_pinned(pid, &code, 1, st);
        r = client_call(c, "%s", msg);
        ck_assert(!json_has(reply_parameters(r), "exited"));
        wait_snapshots(c, "held", 1);

        close(ctl);
        assert_child_ok(pid, TIMEOUT_MS);
        /* Kept, then expired: none is held once the grace is over. */
        wait_snapshots(c, "held", 0);
        ck_assert_uint_eq(status_cache(r = (json_object_put(r), get_status(c)), "snapshots", "exited"), 0);
        r = (json_object_put(r), NULL);
        r = client_call(c, "%s", msg);
        ck_assert_int_eq(json_get_u64(reply_error(r, "io.vmaq.NoSuchProcess"), "pid"), pid);
        daemon_stop(d);

        /* --exit-grace=0: nothing is kept at all. */
        d = daemon_start(ARGS("--exit-grace", "0"));
        client_free(c);
        c = client_connect(d);
        pid = spawn_waiting_child(&ctl, NULL, NULL);
        r = (json_object_put(r), NULL);
        r = track(c, pid, core_start_time(pid));
        ck_assert_int_eq(json_get_u64(reply_parameters(r), "pid"), pid);
        r = (json_object_put(r), get_status(c));
        ck_assert_uint_eq(status_cache(r, "snapshots", "held"), 0);
        close(ctl);
        assert_child_ok(pid, TIMEOUT_MS);
        daemon_stop(d);
}
END_TEST

/* Snapshot memory is bounded: what does not fit is refused, and the oldest exited go first. */
START_TEST(test_post_mortem_memory) {
        Daemon *d = daemon_start(ARGS("--exit-grace", "600", "--max-snapshot-memory", "1000"));
        _cleanup_(client_freep) Client *c = client_connect(d);
        _cleanup_(json_object_putp) struct json_object *r = NULL;
        _cleanup_free_ char *limit = NULL;
        uint64_t code = (uintptr_t) test_marker_function, one, st[5];
        int ctl[5];
        pid_t pid[5];

        pid[0] = spawn_waiting_child(&ctl[0], NULL, NULL);
        r = track(c, pid[0], core_start_time(pid[0]));
        ck_assert_uint_eq(json_get_u64(reply_error(r, "io.vmaq.MemoryLimitReached"), "limit"), 1000);
        r = (json_object_put(r), get_status(c));
        ck_assert_uint_eq(status_cache(r, "snapshots", "held"), 0);
        ck_assert_uint_eq(status_cache(r, "snapshots", "memory_used"), 0);
        close(ctl[0]);
        assert_child_ok(pid[0], TIMEOUT_MS);
        daemon_stop(d);

        /* What one snapshot of a child like ours takes. */
        d = daemon_start(ARGS("--exit-grace", "600"));
        client_free(c);
        c = client_connect(d);
        pid[0] = spawn_waiting_child(&ctl[0], NULL, NULL);
        r = (json_object_put(r), track(c, pid[0], core_start_time(pid[0])));
        r = (json_object_put(r), get_status(c));
        one = status_cache(r, "snapshots", "memory_used");
        ck_assert_uint_gt(one, 0);
        close(ctl[0]);
        assert_child_ok(pid[0], TIMEOUT_MS);
        daemon_stop(d);

        /* Room for four and a half: the fifth pushes out the first to exit. */
        ck_assert_int_ge(asprintf(&limit, "%" PRIu64, 4 * one + one / 2), 0);
        d = daemon_start(ARGS("--exit-grace", "600", "--max-snapshot-memory", limit));
        client_free(c);
        c = client_connect(d);
        for (unsigned i = 0; i < 5; i++) {
                pid[i] = spawn_waiting_child(&ctl[i], NULL, NULL);
                st[i] = core_start_time(pid[i]);
                r = (json_object_put(r), track(c, pid[i], st[i]));
                ck_assert_uint_eq(json_get_u64(reply_parameters(r), "start_time"), st[i]);
                close(ctl[i]);
                assert_child_ok(pid[i], TIMEOUT_MS);
                wait_snapshots(c, "exited", MIN(i + 1, 4U));
        }
        r = (json_object_put(r), get_status(c));
        ck_assert_uint_le(status_cache(r, "snapshots", "memory_used"), 4 * one + one / 2);
        for (unsigned i = 0; i < 5; i++) {
                _cleanup_free_ char *msg = normalize_pinned(pid[i], &code, 1, st[i]);

                r = (json_object_put(r), client_call(c, "%s", msg));
                if (i == 0)
                        ck_assert_int_eq(json_get_u64(reply_error(r, "io.vmaq.NoSuchProcess"), "pid"), pid[i]);
                else
                        ck_assert(json_get_bool(reply_parameters(r), "exited"));
        }
        daemon_stop(d);
}
END_TEST

/* An exited process's snapshot is shown to whom the live process was: never another user's. */
START_TEST(test_post_mortem_access) {
        Daemon *d = daemon_start(ARGS("--group", "", "--exit-grace", "600"));
        _cleanup_(client_freep) Client *c = client_connect(d);
        _cleanup_(json_object_putp) struct json_object *r = NULL, *s = NULL;
        _cleanup_free_ char *msg = NULL;
        uint64_t code = (uintptr_t) test_marker_function, st;
        int ctl;
        pid_t pid, client;

        /* Root's process, tracked by root, exited. */
        pid = spawn_waiting_child(&ctl, NULL, NULL);
        st = core_start_time(pid);
        r = track(c, pid, st);
        ck_assert_uint_eq(json_get_u64(reply_parameters(r), "start_time"), st);
        close(ctl);
        assert_child_ok(pid, TIMEOUT_MS);
        wait_snapshots(c, "exited", 1);
        msg = normalize_pinned(pid, &code, 1, st);

        client = fork_child();
        if (client == 0) {
                Client *nc = NULL;
                struct json_object *q, *p;
                char *own_msg = NULL;
                siginfo_t si = {};
                uint64_t own_st;
                int own_ctl;
                pid_t own;

                drop_to_nobody();
                CHILD_CHECK(client_open(d->socket_path, 0, &nc) == 0);

                /* Root's: refused, as the live process would have been. */
                q = client_call_raw(nc, msg, TIMEOUT_MS);
                CHILD_CHECK(is_denied_for(q, pid));
                q = client_call_raw(nc, "{\"method\":\"io.vmaq.Track\",\"parameters\":{\"pid\":1}}", TIMEOUT_MS);
                CHILD_CHECK(is_denied_for(q, 1));

                /* Its own: tracked, exited, answered. */
                own = nobody_target(true, &own_ctl);
                q = client_call_raw(nc, normalize_one(own, code), TIMEOUT_MS);
                CHILD_CHECK(q && !error_name(q));
                p = json_object_object_get(q, "parameters");
                own_st = json_object_get_uint64(json_object_object_get(p, "start_time"));
                /* It holds its own copy of the pipe's end: only a signal ends it. */
                CHILD_CHECK(kill(own, SIGKILL) == 0);
                CHILD_CHECK(waitid(P_PID, own, &si, WEXITED) == 0);
                close(own_ctl);
                own_msg = normalize_pinned(own, &code, 1, own_st);
                CHILD_CHECK(own_msg);
                for (int64_t deadline = now_ms() + TIMEOUT_MS;;) {
                        q = client_call_raw(nc, own_msg, TIMEOUT_MS);
                        CHILD_CHECK(q);
                        if (!error_name(q))
                                break;
                        /* The daemon may not have seen the exit yet: then it answers live, or NoSuchProcess. */
                        CHILD_CHECK(streq(error_name(q), "io.vmaq.NoSuchProcess") && now_ms() < deadline);
                        (void) poll(NULL, 0, 10);
                }
                p = json_object_object_get(q, "parameters");
                CHILD_CHECK(json_object_get_boolean(json_object_object_get(p, "exited")));
                _exit(EXIT_SUCCESS);
        }
        assert_child_ok(client, CLIENT_TIMEOUT_MS);

        s = get_status(c);
        ck_assert_uint_eq(status_field(s, "denied"), 2);
        daemon_stop(d);
}
END_TEST

/* --- tests: access control --------------------------------------------------- */

START_TEST(test_access_nobody) {
        Daemon *d = daemon_start(ARGS("--group", ""));
        _cleanup_(client_freep) Client *c = client_connect(d);
        _cleanup_(json_object_putp) struct json_object *s = NULL;
        uint64_t code = (uintptr_t) test_marker_function;
        pid_t pid, test_pid = getpid();
        char exe[PATH_MAX];

        test_self_exe(exe);

        pid = fork_child();
        if (pid == 0) {
                Client *nc = NULL;
                struct json_object *r;
                int ctl;
                pid_t own;

                drop_to_nobody();
                CHILD_CHECK(client_open(d->socket_path, 0, &nc) == 0);

                /* pid 1 is root's. */
                r = client_call_raw(nc, normalize_one(1, code), TIMEOUT_MS);
                CHILD_CHECK(is_denied_for(r, 1));
                r = client_call_raw(nc, "{\"method\":\"io.vmaq.ListMappings\",\"parameters\":{\"pid\":1}}",
                                    TIMEOUT_MS);
                CHILD_CHECK(is_denied_for(r, 1));
                /* So is the test process, which the daemon can read. */
                r = client_call_raw(nc, normalize_one(test_pid, code), TIMEOUT_MS);
                CHILD_CHECK(is_denied_for(r, test_pid));

                /* Our own child, forked after dropping privileges: allowed, and answered right. */
                own = nobody_target(true, &ctl);
                r = client_call_raw(nc, normalize_one(own, code), TIMEOUT_MS);
                CHILD_CHECK(single_module_path(r) && streq(single_module_path(r), exe));

                /* Harmless calls are open to all. */
                r = client_call_raw(nc, "{\"method\":\"io.vmaq.GetStatus\"}", TIMEOUT_MS);
                CHILD_CHECK(r && !error_name(r));
                _exit(EXIT_SUCCESS);
        }
        assert_child_ok(pid, CLIENT_TIMEOUT_MS);

        s = get_status(c);
        /* Each refusal counts, whether by policy or because the daemon itself may not read pid 1. */
        ck_assert_uint_eq(status_field(s, "denied"), 3);
        daemon_stop(d);
}
END_TEST

START_TEST(test_access_non_dumpable) {
        Daemon *d = daemon_start(ARGS("--group", ""));
        _cleanup_(client_freep) Client *c = client_connect(d);
        _cleanup_(json_object_putp) struct json_object *s = NULL;
        uint64_t code = (uintptr_t) test_marker_function;
        pid_t pid;

        pid = fork_child();
        if (pid == 0) {
                Client *nc = NULL;
                struct json_object *r;
                int ctl;
                pid_t target;

                drop_to_nobody();
                CHILD_CHECK(client_open(d->socket_path, 0, &nc) == 0);

                /* Same uid, but it asked not to be inspected. */
                target = nobody_target(false, &ctl);
                r = client_call_raw(nc, normalize_one(target, code), TIMEOUT_MS);
                CHILD_CHECK(is_denied_for(r, target));
                _exit(EXIT_SUCCESS);
        }
        assert_child_ok(pid, CLIENT_TIMEOUT_MS);

        s = get_status(c);
        ck_assert_uint_eq(status_field(s, "denied"), 1);
        daemon_stop(d);
}
END_TEST

/* --- tests: process lifecycle ------------------------------------------------ */

START_TEST(test_exit_between_calls) {
        Daemon *d = daemon_start(NULL);
        _cleanup_(client_freep) Client *c = client_connect(d);
        _cleanup_(json_object_putp) struct json_object *r = NULL;
        _cleanup_free_ char *msg = NULL;
        char exe[PATH_MAX];
        int ctl;
        pid_t pid;

        test_self_exe(exe);
        pid = spawn_waiting_child(&ctl, NULL, NULL);
        msg = normalize_one(pid, (uintptr_t) test_marker_function);
        ck_assert_ptr_nonnull(msg);

        r = client_call(c, "%s", msg);
        ck_assert_pstr_eq(single_module_path(r), exe);

        /* It exits and is reaped. */
        close(ctl);
        assert_child_ok(pid, TIMEOUT_MS);

        r = (json_object_put(r), NULL);
        r = client_call(c, "%s", msg);
        ck_assert_int_eq(json_get_u64(reply_error(r, "io.vmaq.NoSuchProcess"), "pid"), pid);
        r = (json_object_put(r), NULL);
        r = client_call(c, "{\"method\":\"io.vmaq.ListMappings\",\"parameters\":{\"pid\":%d}}", (int) pid);
        ck_assert_int_eq(json_get_u64(reply_error(r, "io.vmaq.NoSuchProcess"), "pid"), pid);

        daemon_stop(d);
}
END_TEST

START_TEST(test_exec_between_calls) {
        Daemon *d = daemon_start(NULL);
        _cleanup_(client_freep) Client *c = client_connect(d);
        _cleanup_(json_object_putp) struct json_object *r = NULL;
        _cleanup_free_ char *msg = NULL;
        struct json_object *p, *mappings;
        char exe[PATH_MAX], sleep_path[PATH_MAX], b;
        uint64_t start_time;
        int ctl, execd;
        bool sleep_seen = false;
        pid_t pid;

        test_self_exe(exe);
        /* The maps show the file, not the symlink (/bin may be one, or sleep a multi-call binary). */
        ck_assert_ptr_nonnull(realpath("/bin/sleep", sleep_path));
        pid = spawn_waiting_child(&ctl, "/bin/sleep", &execd);
        msg = normalize_one(pid, (uintptr_t) test_marker_function);
        ck_assert_ptr_nonnull(msg);

        r = client_call(c, "%s", msg);
        ck_assert_pstr_eq(single_module_path(r), exe);
        start_time = json_get_u64(reply_parameters(r), "start_time");
        ck_assert_uint_eq(start_time, core_start_time(pid));

        /* Let it exec; the close-on-exec pipe reports it. */
        close(ctl);
        ck_assert_int_eq(read(execd, &b, 1), 0);
        close(execd);

        /* The same process (the pinned start time holds), a new image. */
        r = (json_object_put(r), NULL);
        r = client_call(c, "{\"method\":\"io.vmaq.Normalize\",\"parameters\":{\"pid\":%d,"
                           "\"addresses\":[%" PRIu64 "],\"start_time\":%" PRIu64 "}}",
                        (int) pid, (uint64_t) (uintptr_t) test_marker_function, start_time);
        p = reply_parameters(r);
        ck_assert_uint_eq(json_get_u64(p, "start_time"), start_time);
        ck_assert_uint_eq(json_object_array_length(json_get_array(p, "results")), 1);
        ck_assert_msg(!single_module_path(r) || !streq(single_module_path(r), exe),
                      "the old image answered: %s", json_object_to_json_string(r));

        r = (json_object_put(r), NULL);
        r = client_call(c, "{\"method\":\"io.vmaq.ListMappings\",\"parameters\":{\"pid\":%d}}", (int) pid);
        mappings = json_get_array(reply_parameters(r), "mappings");
        for (size_t i = 0; i < json_object_array_length(mappings); i++) {
                struct json_object *m = json_object_array_get_idx(mappings, i);
                const char *path;

                if (!json_has(m, "path"))
                        continue;
                path = json_get_string(m, "path");
                ck_assert_str_ne(path, exe);
                if (streq(path, sleep_path))
                        sleep_seen = true;
        }
        ck_assert(sleep_seen);
        ck_assert_uint_eq(json_get_u64(reply_parameters(r), "start_time"), start_time);

        ck_assert_int_eq(kill(pid, SIGKILL), 0);
        (void) wait_child(pid, TIMEOUT_MS);
        daemon_stop(d);
}
END_TEST

START_TEST(test_pinned_start_time) {
        Daemon *d = daemon_start(NULL);
        _cleanup_(client_freep) Client *c = client_connect(d);
        _cleanup_(json_object_putp) struct json_object *r = NULL;
        uint64_t code = (uintptr_t) test_marker_function, st;
        struct json_object *p;
        int ctl;
        pid_t pid;

        pid = spawn_waiting_child(&ctl, NULL, NULL);
        st = core_start_time(pid);

        /* Not cached yet, then cached, then cached and wrong again. */
        for (unsigned i = 0; i < 3; i++) {
                uint64_t pin = i == 1 ? st : st + 1;

                r = (json_object_put(r), NULL);
                r = client_call(c, "{\"method\":\"io.vmaq.Normalize\",\"parameters\":{\"pid\":%d,"
                                   "\"addresses\":[%" PRIu64 "],\"start_time\":%" PRIu64 "}}",
                                (int) pid, code, pin);
                if (i == 1) {
                        ck_assert_uint_eq(json_get_u64(reply_parameters(r), "start_time"), st);
                        continue;
                }
                p = reply_error(r, "io.vmaq.ProcessChanged");
                ck_assert_int_eq(json_get_u64(p, "pid"), pid);
                ck_assert_uint_eq(json_get_u64(p, "start_time"), st);
        }

        r = (json_object_put(r), NULL);
        r = client_call(c, "{\"method\":\"io.vmaq.ListMappings\","
                           "\"parameters\":{\"pid\":%d,\"start_time\":%" PRIu64 "}}", (int) pid, st + 1);
        p = reply_error(r, "io.vmaq.ProcessChanged");
        ck_assert_uint_eq(json_get_u64(p, "start_time"), st);

        close(ctl);
        assert_child_ok(pid, TIMEOUT_MS);
        daemon_stop(d);
}
END_TEST

START_TEST(test_zombie) {
        Daemon *d = daemon_start(NULL);
        _cleanup_(client_freep) Client *c = client_connect(d);
        _cleanup_(json_object_putp) struct json_object *r = NULL;
        uint64_t code = (uintptr_t) test_marker_function;
        _cleanup_free_ char *msg_cached = NULL, *msg_fresh = NULL;
        siginfo_t si = {};
        int ctl_cached, ctl_fresh;
        pid_t cached, fresh;

        cached = spawn_waiting_child(&ctl_cached, NULL, NULL);
        fresh = spawn_waiting_child(&ctl_fresh, NULL, NULL);
        msg_cached = normalize_one(cached, code);
        msg_fresh = normalize_one(fresh, code);
        ck_assert_ptr_nonnull(msg_cached);
        ck_assert_ptr_nonnull(msg_fresh);

        /* One known to the daemon before it dies, one not. */
        r = client_call(c, "%s", msg_cached);
        ck_assert_ptr_nonnull(single_module_path(r));

        /* Let both exit, and wait without reaping: zombies. */
        close(ctl_cached);
        close(ctl_fresh);
        ck_assert_int_eq(waitid(P_PID, cached, &si, WEXITED|WNOWAIT), 0);
        ck_assert_int_eq(waitid(P_PID, fresh, &si, WEXITED|WNOWAIT), 0);

        r = (json_object_put(r), NULL);
        r = client_call(c, "%s", msg_cached);
        ck_assert_int_eq(json_get_u64(reply_error(r, "io.vmaq.NoAddressSpace"), "pid"), cached);
        r = (json_object_put(r), NULL);
        r = client_call(c, "%s", msg_fresh);
        ck_assert_int_eq(json_get_u64(reply_error(r, "io.vmaq.NoAddressSpace"), "pid"), fresh);

        assert_child_ok(cached, TIMEOUT_MS);
        assert_child_ok(fresh, TIMEOUT_MS);
        daemon_stop(d);
}
END_TEST

/* --- tests: concurrency ------------------------------------------------------ */

#define N_CLIENTS 4
#define N_CALLS 50

START_TEST(test_many_clients) {
        Daemon *d = daemon_start(NULL);
        TestChild *tc = spawn_test_child();
        _cleanup_(client_freep) Client *c = client_connect(d);
        _cleanup_(json_object_putp) struct json_object *s1 = NULL, *s2 = NULL;
        _cleanup_(normalization_freep) Normalization *n = NULL;
        _cleanup_free_ char *msg = NULL, *expected = NULL;
        uint64_t addrs[MIXED_N];
        pid_t pids[N_CLIENTS];
        int go[2];

        mixed_addrs(tc, addrs);
        msg = normalize_call(tc->pid, addrs, MIXED_N, NULL);
        n = core_normalize(tc->pid, addrs, MIXED_N);
        expected = canonical_from_core(n);
        s1 = get_status(c);

        ck_assert_int_eq(pipe2(go, O_CLOEXEC), 0);
        for (size_t i = 0; i < N_CLIENTS; i++) {
                pids[i] = fork_child();
                if (pids[i] == 0) {
                        Client *cc = NULL;
                        char b;

                        close(go[1]);
                        CHILD_CHECK(client_open(d->socket_path, 0, &cc) == 0);
                        /* All connected: start together. */
                        CHILD_CHECK(read(go[0], &b, 1) == 0);
                        for (unsigned k = 0; k < N_CALLS; k++) {
                                struct json_object *r = client_call_raw(cc, msg, CLIENT_TIMEOUT_MS), *p;
                                char *got;

                                CHILD_CHECK(r);
                                CHILD_CHECK(!error_name(r));
                                CHILD_CHECK(json_object_object_get_ex(r, "parameters", &p));
                                got = canonical_from_reply(p);
                                CHILD_CHECK(got);
                                if (!streq(got, expected))
                                        fprintf(stderr, "call %u got:\n%s\nexpected:\n%s\n", k, got,
                                                expected);
                                CHILD_CHECK(streq(got, expected));
                                free(got);
                                json_object_put(r);
                        }
                        _exit(EXIT_SUCCESS);
                }
        }
        close(go[0]);
        close(go[1]);
        for (size_t i = 0; i < N_CLIENTS; i++)
                assert_child_ok(pids[i], CLIENT_TIMEOUT_MS);

        s2 = get_status(c);
        ck_assert_uint_eq(status_field(s2, "requests") - status_field(s1, "requests"),
                          N_CLIENTS * N_CALLS + 1);
        ck_assert_uint_eq(status_field(s2, "errors"), status_field(s1, "errors"));

        test_child_stop(tc);
        daemon_stop(d);
}
END_TEST

/* --- tests: slow and idle clients -------------------------------------------- */

static const char status_call[] = "{\"method\":\"io.vmaq.GetStatus\"}";

/*
 * A reader that stops reading leaves up to one message size of calls
 * unread in the daemon: with the default, hundreds of thousands of them,
 * each answered once it reads again. A smaller bound keeps these tests short.
 */
#define FLOOD_ARGS ARGS("--max-message-size", "262144")

/*
 * Send GetStatus calls without reading until the daemon stops taking them
 * (no progress for a while). Returns the number of complete calls sent;
 * *ret_partial is how many bytes of one more went out.
 */
static size_t flood(Client *c, size_t *ret_partial) {
        const size_t len = sizeof(status_call), per_chunk = 256;
        _cleanup_free_ char *chunk = malloc(len * per_chunk);
        size_t sent = 0, off = 0;

        ck_assert_ptr_nonnull(chunk);
        for (size_t i = 0; i < per_chunk; i++)
                memcpy(chunk + i * len, status_call, len);

        /* Bounded: 64 MiB of calls would be far beyond any buffering. */
        while (sent < (size_t) 64 << 20) {
                struct pollfd p = { .fd = c->fd, .events = POLLOUT };
                ssize_t n = send(c->fd, chunk + off, len * per_chunk - off, MSG_DONTWAIT|MSG_NOSIGNAL);

                if (n > 0) {
                        sent += (size_t) n;
                        off = (off + (size_t) n) % (len * per_chunk);
                        continue;
                }
                ck_assert_msg(n < 0 && (errno == EAGAIN || errno == EINTR), "send: %m");
                /* Nothing moves for a second: the daemon stopped reading from us. */
                if (poll(&p, 1, 1000) == 0)
                        break;
        }
        ck_assert_uint_lt(sent, (size_t) 64 << 20);
        *ret_partial = sent % len;
        return sent / len;
}

/* Read @n GetStatus replies; their request counters only grow. */
static void read_status_replies(Client *c, size_t n) {
        uint64_t last = 0;

        for (size_t i = 0; i < n; i++) {
                _cleanup_free_ char *m = NULL;
                _cleanup_(json_object_putp) struct json_object *r = NULL;
                uint64_t req;
                int k;

                k = client_read(c, TIMEOUT_MS, &m);
                ck_assert_msg(k == 1, "reply %zu of %zu: %s", i, n, k == 0 ? "EOF" : strerror(-k));
                r = json_tokener_parse(m);
                ck_assert_ptr_nonnull(r);
                req = status_field(r, "requests");
                ck_assert_uint_gt(req, last);
                last = req;
        }
}

START_TEST(test_stuck_reader) {
        Daemon *d = daemon_start(FLOOD_ARGS);
        _cleanup_(client_freep) Client *stuck = NULL, *other = NULL;
        _cleanup_(json_object_putp) struct json_object *r = NULL, *s = NULL;
        size_t calls, partial;

        ck_assert_int_eq(client_open(d->socket_path, 4096, &stuck), 0);
        calls = flood(stuck, &partial);
        ck_assert_uint_gt(calls, 0);

        /* Another client is served while the first one's replies pile up. */
        other = client_connect(d);
        r = client_call(other, "{\"method\":\"org.varlink.service.GetInfo\"}");
        ck_assert_str_eq(json_get_string(reply_parameters(r), "version"), PACKAGE_VERSION);
        wait_connections(other, 2);

        /* The stuck one was not dropped: reading now, it gets every answer, in order. */
        read_status_replies(stuck, calls);
        if (partial > 0) {
                size_t rest = sizeof(status_call) - partial;

                ck_assert_int_eq(client_send_raw(stuck, status_call + partial, rest), 0);
                read_status_replies(stuck, 1);
        }

        daemon_stop(d);
}
END_TEST

/* Stopping with a client whose replies are still queued: it gets them, then the daemon exits 0. */
START_TEST(test_stop_flushes_replies) {
        Daemon *d = daemon_start(FLOOD_ARGS);
        _cleanup_(client_freep) Client *stuck = NULL, *idle = NULL;
        _cleanup_free_ char *m = NULL;
        char buf[64];
        size_t calls, partial, got = 0;
        int r;

        idle = client_connect(d);
        ck_assert_int_eq(client_open(d->socket_path, 4096, &stuck), 0);
        /* Both accepted (and the probe of daemon_start() gone); the idle one never sends a byte. */
        wait_connections(stuck, 2);
        calls = flood(stuck, &partial);
        ck_assert_uint_gt(calls, 0);

        ck_assert_int_eq(kill(d->pid, SIGTERM), 0);
        ck_assert_int_eq(daemon_wait_notify(d, "STOPPING=1", TIMEOUT_MS), 0);

        /* The idle connection is closed at once. */
        r = client_read(idle, TIMEOUT_MS, &m);
        ck_assert_int_eq(r, 0);

        /* Replies keep coming until the connection ends. */
        for (;;) {
                _cleanup_(json_object_putp) struct json_object *o = NULL;

                free(m);
                m = NULL;
                r = client_read(stuck, TIMEOUT_MS, &m);
                if (r != 1)
                        break;
                o = json_tokener_parse(m);
                ck_assert_ptr_nonnull(o);
                (void) status_field(o, "requests");
                got++;
        }
        /* Whatever the daemon had not read when it stopped stays unread: a reset is fine then. */
        ck_assert_msg(r == 0 || r == -ECONNRESET, "%s", strerror(-r));
        ck_assert_uint_gt(got, 0);
        ck_assert_uint_le(got, calls);

        r = daemon_wait_exit(d, TIMEOUT_MS);
        if (r < 0 || !WIFEXITED(d->status) || WEXITSTATUS(d->status) != 0)
                daemon_dump_log(d->log_path);
        ck_assert_int_eq(r, 0);
        ck_assert_msg(WIFEXITED(d->status) && WEXITSTATUS(d->status) == 0, "vmaqd stopped with %s",
                      describe_status(d->status, buf));
        daemon_release(d);
}
END_TEST

START_TEST(test_idle_timeout) {
        Daemon *d = daemon_start(ARGS("--idle-timeout", "1"));
        _cleanup_(client_freep) Client *silent = client_connect(d), *done = client_connect(d),
                                       *slow = client_connect(d);
        _cleanup_(json_object_putp) struct json_object *r = NULL;

        r = client_call(done, "{\"method\":\"org.varlink.service.GetInfo\"}");
        (void) reply_parameters(r);
        ck_assert_int_eq(client_send_raw(slow, "{\"method\"", 9), 0);

        /* Silent from the start, idle after a call, stuck inside a message: all closed. */
        assert_closed(silent, false);
        assert_closed(done, false);
        assert_closed(slow, false);

        assert_serves(d);
        daemon_stop(d);
}
END_TEST

/* A client that never reads its replies is cut off once its output made no progress for the timeout. */
START_TEST(test_stuck_reader_timeout) {
        Daemon *d = daemon_start(ARGS("--idle-timeout", "1"));
        _cleanup_(client_freep) Client *stuck = NULL, *other = NULL;
        const size_t len = sizeof(status_call), count = 8000;
        _cleanup_free_ char *calls = malloc(count * len);
        size_t sent = 0;

        ck_assert_ptr_nonnull(calls);
        for (size_t i = 0; i < count; i++)
                memcpy(calls + i * len, status_call, len);

        ck_assert_int_eq(client_open(d->socket_path, 4096, &stuck), 0);
        /* In big writes, far more replies than any socket buffer holds; stop where the socket is full. */
        while (sent < count * len) {
                ssize_t n = send(stuck->fd, calls + sent, count * len - sent, MSG_DONTWAIT|MSG_NOSIGNAL);

                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        ck_assert_int_eq(errno, EAGAIN);
                        break;
                }
                sent += (size_t) n;
        }
        ck_assert_uint_ge(sent, 1000 * len);

        /* Another client, busy all along, watches it go. */
        other = client_connect(d);
        wait_connections(other, 1);
        assert_closed_after_replies(stuck);

        assert_serves(d);
        daemon_stop(d);
}
END_TEST

/* --- tests: pid namespaces --------------------------------------------------- */

#define FOREIGN "io.vmaq.ForeignPidNamespace"

/*
 * A client in a pid namespace below the daemon's is answered in its own
 * pids: about itself, pid 1 there, and never about a process outside it.
 */
START_TEST(test_foreign_pid_namespace) {
        Daemon *d = daemon_start(NULL);
        pid_t outer = getpid(), pid;

        pid = fork_child();
        if (pid == 0) {
                pid_t inner;
                int status;

                CHILD_CHECK(unshare(CLONE_NEWPID) == 0);
                inner = fork();
                CHILD_CHECK(inner >= 0);
                if (inner == 0) {
                        Client *c = NULL;
                        struct json_object *r, *p;
                        char exe[PATH_MAX];
                        ssize_t n;

                        CHILD_CHECK(prctl(PR_SET_PDEATHSIG, SIGKILL) == 0);
                        CHILD_CHECK(getpid() == 1);
                        /* Our /proc is still the daemon's: there we are under our pid of its namespace. */
                        n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
                        CHILD_CHECK(n > 0);
                        exe[n] = '\0';
                        CHILD_CHECK(client_open(d->socket_path, 0, &c) == 0);

                        r = client_call_raw(c, "{\"method\":\"org.varlink.service.GetInfo\"}", TIMEOUT_MS);
                        CHILD_CHECK(r && !error_name(r));
                        /* Ourselves by our pid here: the answer speaks of pid 1, not of our pid outside. */
                        r = client_call_raw(c, normalize_one(1, (uintptr_t) test_marker_function),
                                            TIMEOUT_MS);
                        CHILD_CHECK(r && !error_name(r));
                        CHILD_CHECK(json_object_object_get_ex(r, "parameters", &p));
                        CHILD_CHECK(json_object_get_int64(json_object_object_get(p, "pid")) == 1);
                        CHILD_CHECK(single_module_path(r) && streq(single_module_path(r), exe));
                        r = client_call_raw(c, "{\"method\":\"io.vmaq.ListMappings\","
                                               "\"parameters\":{\"pid\":1}}", TIMEOUT_MS);
                        CHILD_CHECK(r && !error_name(r));
                        CHILD_CHECK(json_object_object_get_ex(r, "parameters", &p));
                        CHILD_CHECK(json_object_get_int64(json_object_object_get(p, "pid")) == 1);
                        /* Nobody else is here: not pid 2, and not the test's pid outside. */
                        r = client_call_raw(c, normalize_one(2, (uintptr_t) test_marker_function),
                                            TIMEOUT_MS);
                        CHILD_CHECK(r && error_name(r) && streq(error_name(r), "io.vmaq.NoSuchProcess"));
                        CHILD_CHECK(json_object_object_get_ex(r, "parameters", &p));
                        CHILD_CHECK(json_object_get_int64(json_object_object_get(p, "pid")) == 2);
                        r = client_call_raw(c, normalize_one(outer, (uintptr_t) test_marker_function),
                                            TIMEOUT_MS);
                        CHILD_CHECK(r && error_name(r) && streq(error_name(r), "io.vmaq.NoSuchProcess"));
                        CHILD_CHECK(json_object_object_get_ex(r, "parameters", &p));
                        CHILD_CHECK(json_object_get_int64(json_object_object_get(p, "pid")) == outer);
                        /* In a mount namespace of our own: no host path, which would tell our pid outside. */
                        CHILD_CHECK(unshare(CLONE_NEWNS) == 0);
                        r = client_call_raw(c, normalize_one(1, (uintptr_t) test_marker_function),
                                            TIMEOUT_MS);
                        CHILD_CHECK(single_module_path(r) && streq(single_module_path(r), exe));
                        CHILD_CHECK(!json_has(module_of(r), "host_path"));
                        _exit(EXIT_SUCCESS);
                }
                CHILD_CHECK(waitpid(inner, &status, 0) == inner);
                _exit(WIFEXITED(status) ? WEXITSTATUS(status) : EXIT_FAILURE);
        }
        assert_child_ok(pid, CLIENT_TIMEOUT_MS);

        assert_serves(d);
        daemon_stop(d);
}
END_TEST

/* How many exited processes the daemon holds snapshots of, by GetStatus; -1 on failure. For forked clients. */
static int64_t exited_snapshots(Client *c) {
        struct json_object *r, *p, *snap, *v;

        r = client_call_raw(c, "{\"method\":\"io.vmaq.GetStatus\"}", TIMEOUT_MS);
        if (!r || error_name(r) || !json_object_object_get_ex(r, "parameters", &p) ||
            !json_object_object_get_ex(p, "snapshots", &snap) || !json_object_object_get_ex(snap, "exited", &v))
                return -1;
        return json_object_get_int64(v);
}

/*
 * A client in a container is answered about a process of its namespace
 * that exited, by the pid and start time it knew it by, and never without
 * the start time.
 */
START_TEST(test_foreign_post_mortem) {
        Daemon *d = daemon_start(ARGS("--exit-grace", "600"));
        pid_t pid;

        pid = fork_child();
        if (pid == 0) {
                pid_t inner;
                int status;

                CHILD_CHECK(unshare(CLONE_NEWPID) == 0);
                inner = fork();
                CHILD_CHECK(inner >= 0);
                if (inner == 0) {
                        uint64_t code = (uintptr_t) test_marker_function, st, offset;
                        struct json_object *r, *p, *res;
                        char *pinned = NULL, *unpinned;
                        int ctl[2];
                        Client *c = NULL;
                        pid_t target;

                        CHILD_CHECK(prctl(PR_SET_PDEATHSIG, SIGKILL) == 0);
                        CHILD_CHECK(pipe2(ctl, O_CLOEXEC) == 0);
                        target = fork();
                        CHILD_CHECK(target >= 0);
                        if (target == 0) {
                                char b;

                                close(ctl[1]);
                                (void) read(ctl[0], &b, 1);
                                _exit(EXIT_SUCCESS);
                        }
                        close(ctl[0]);
                        CHILD_CHECK(target == 2);
                        CHILD_CHECK(client_open(d->socket_path, 0, &c) == 0);

                        /* Alive: answered, and a snapshot taken. */
                        unpinned = normalize_one(target, code);
                        r = client_call_raw(c, unpinned, TIMEOUT_MS);
                        CHILD_CHECK(r && !error_name(r));
                        CHILD_CHECK(json_object_object_get_ex(r, "parameters", &p));
                        st = (uint64_t) json_object_get_int64(json_object_object_get(p, "start_time"));
                        res = json_object_array_get_idx(json_object_object_get(p, "results"), 0);
                        offset = (uint64_t) json_object_get_int64(json_object_object_get(res, "offset"));
                        CHILD_CHECK(asprintf(&pinned, "{\"method\":\"io.vmaq.Normalize\",\"parameters\":{\"pid\":2,"
                                                      "\"addresses\":[%" PRIu64 "],\"start_time\":%" PRIu64 "}}",
                                             code, st) > 0);

                        close(ctl[1]);
                        CHILD_CHECK(waitpid(target, &status, 0) == target);
                        {
                                int64_t deadline = now_ms() + TIMEOUT_MS;

                                while (exited_snapshots(c) != 1) {
                                        CHILD_CHECK(now_ms() < deadline);
                                        (void) poll(NULL, 0, 10);
                                }
                        }

                        /* Gone: by its pid here and start time, from the snapshot; in our pids. */
                        r = client_call_raw(c, pinned, TIMEOUT_MS);
                        CHILD_CHECK(r && !error_name(r));
                        CHILD_CHECK(json_object_object_get_ex(r, "parameters", &p));
                        CHILD_CHECK(json_object_get_boolean(json_object_object_get(p, "exited")));
                        CHILD_CHECK(json_object_get_int64(json_object_object_get(p, "pid")) == 2);
                        res = json_object_array_get_idx(json_object_object_get(p, "results"), 0);
                        CHILD_CHECK((uint64_t) json_object_get_int64(json_object_object_get(res, "offset")) == offset);
                        /* A pid alone is no process once it is gone. */
                        r = client_call_raw(c, unpinned, TIMEOUT_MS);
                        CHILD_CHECK(r && error_name(r) && streq(error_name(r), "io.vmaq.NoSuchProcess"));
                        _exit(EXIT_SUCCESS);
                }
                CHILD_CHECK(waitpid(inner, &status, 0) == inner);
                _exit(WIFEXITED(status) ? WEXITSTATUS(status) : EXIT_FAILURE);
        }
        assert_child_ok(pid, CLIENT_TIMEOUT_MS);

        daemon_stop(d);
}
END_TEST

/* --- tests: file descriptors sent with a call -------------------------------- */

#define BAD_FD "io.vmaq.BadFileDescriptor"

/* Whether @d has the open file behind our @fd (the same file description, as SCM_RIGHTS passes it). */
static bool daemon_holds(const Daemon *d, int fd) {
        char path[64];
        bool found = false;
        DIR *dir;

        snprintf(path, sizeof(path), "/proc/%d/fd", (int) d->pid);
        dir = opendir(path);
        ck_assert_ptr_nonnull(dir);
        for (struct dirent *e; !found && (e = readdir(dir));) {
                long r;

                if (e->d_name[0] == '.')
                        continue;
                r = syscall(SYS_kcmp, d->pid, getpid(), KCMP_FILE, atoi(e->d_name), fd);
                /* Closed since we read the directory: not held, then. */
                if (r < 0 && errno == EBADF)
                        continue;
                ck_assert_msg(r >= 0, "kcmp: %s", strerror(errno));
                found = r == 0;
        }
        closedir(dir);
        return found;
}

/* Until @d holds none of the @n fds @fds: a call's fds are closed once its job is freed, after the reply. */
static void wait_daemon_closed(const Daemon *d, const int *fds, size_t n) {
        int64_t deadline = now_ms() + DAEMON_TIMEOUT_MS;

        for (size_t i = 0; i < n; i++)
                while (daemon_holds(d, fds[i])) {
                        ck_assert_msg(remaining_ms(deadline) > 0, "the daemon still holds fd %d we sent", fds[i]);
                        usleep(1000);
                }
}

static struct json_object *normalize_by_fd(Client *c, const char *parameter, int fd, uint64_t addr) {
        return client_call_fds(c, &fd, 1, "{\"method\":\"io.vmaq.Normalize\",\"parameters\":"
                               "{\"%s\":0,\"addresses\":[%" PRIu64 "]}}", parameter, addr);
}

/* The offset of the single result of a one-address Normalize reply. */
static uint64_t single_offset(struct json_object *r) {
        struct json_object *results = json_get_array(reply_parameters(r), "results");

        ck_assert_uint_eq(json_object_array_length(results), 1);
        return json_get_u64(json_object_array_get_idx(results, 0), "offset");
}

/* Another process's map, through a maps file it opened itself: the answer of a call by pid. */
START_TEST(test_fd_maps) {
        Daemon *d = daemon_start(NULL);
        _cleanup_(client_freep) Client *c = client_connect(d);
        _cleanup_(json_object_putp) struct json_object *by_pid = NULL, *by_fd = NULL, *list = NULL;
        _cleanup_free_ char *call = NULL;
        uint64_t code = (uintptr_t) test_marker_function;
        _cleanup_close_ int maps = -EBADF;
        pid_t child;
        int ctl;

        child = spawn_waiting_child(&ctl, NULL, NULL);
        call = normalize_one(child, code);
        by_pid = client_call(c, "%s", call);

        {
                char path[64];

                snprintf(path, sizeof(path), "/proc/%d/maps", (int) child);
                char head[100];

                maps = open(path, O_RDONLY|O_CLOEXEC);
                ck_assert_int_ge(maps, 0);
                /* The client reads it too: the daemon reads at its own offsets, and leaves ours. */
                ck_assert_int_eq(read(maps, head, sizeof(head)), (ssize_t) sizeof(head));
        }
        by_fd = normalize_by_fd(c, "maps_fd", maps, code);
        ck_assert_int_eq(lseek(maps, 0, SEEK_CUR), 100);
        ck_assert_str_eq(single_module_path(by_fd), single_module_path(by_pid));
        ck_assert_uint_eq(single_offset(by_fd), single_offset(by_pid));
        /* Whose map it is, the daemon does not look up. */
        ck_assert_uint_eq(json_get_u64(reply_parameters(by_fd), "pid"), 0);
        ck_assert_uint_eq(json_get_u64(reply_parameters(by_fd), "start_time"), 0);
        wait_daemon_closed(d, &maps, 1);

        list = client_call_fds(c, &maps, 1, "{\"method\":\"io.vmaq.ListMappings\",\"parameters\":"
                               "{\"maps_fd\":0,\"exec_only\":true,\"start\":%" PRIu64 "}}", code);
        ck_assert_uint_le(json_get_u64(json_object_array_get_idx(json_get_array(reply_parameters(list), "mappings"), 0),
                                       "start"), code);
        wait_daemon_closed(d, &maps, 1);

        /* The fd is bound to the address space it was opened on: gone with it. */
        close(ctl);
        ck_assert_int_eq(wait_child(child, TIMEOUT_MS), 0);
        json_object_put(by_fd);
        by_fd = normalize_by_fd(c, "maps_fd", maps, code);
        ck_assert_uint_eq(json_get_u64(reply_error(by_fd, "io.vmaq.NoSuchProcess"), "pid"), 0);
        wait_daemon_closed(d, &maps, 1);

        daemon_stop(d);
}
END_TEST

/* A process named by its pidfd: the answer of a call by pid, and none once it is gone. */
START_TEST(test_fd_pidfd) {
        /* Without the post-mortem window (see test_post_mortem_pidfd): a gone process is gone. */
        Daemon *d = daemon_start(ARGS("--exit-grace", "0"));
        _cleanup_(client_freep) Client *c = client_connect(d);
        _cleanup_(json_object_putp) struct json_object *by_pid = NULL, *by_fd = NULL;
        _cleanup_free_ char *call = NULL;
        uint64_t code = (uintptr_t) test_marker_function;
        _cleanup_close_ int pidfd = -EBADF;
        pid_t child;
        int ctl;

        child = spawn_waiting_child(&ctl, NULL, NULL);
        pidfd = pidfd_open(child, 0);
        ck_assert_int_ge(pidfd, 0);
        call = normalize_one(child, code);
        by_pid = client_call(c, "%s", call);

        by_fd = normalize_by_fd(c, "pidfd", pidfd, code);
        ck_assert_int_eq(json_get_u64(reply_parameters(by_fd), "pid"), child);
        ck_assert_uint_eq(json_get_u64(reply_parameters(by_fd), "start_time"),
                          json_get_u64(reply_parameters(by_pid), "start_time"));
        ck_assert_str_eq(single_module_path(by_fd), single_module_path(by_pid));
        ck_assert_uint_eq(single_offset(by_fd), single_offset(by_pid));

        /* Reaped: the pidfd names no process any more, whoever gets its pid next. */
        close(ctl);
        ck_assert_int_eq(wait_child(child, TIMEOUT_MS), 0);
        json_object_put(by_fd);
        by_fd = normalize_by_fd(c, "pidfd", pidfd, code);
        reply_error(by_fd, "io.vmaq.NoSuchProcess");

        daemon_stop(d);
}
END_TEST

/* Fds of the wrong kind, or not the ones the call uses: told which, closed, and the connection goes on. */
START_TEST(test_fd_wrong) {
        Daemon *d = daemon_start(NULL);
        _cleanup_(client_freep) Client *c = client_connect(d);
        uint64_t code = (uintptr_t) test_marker_function;
        int pair[2], file, status, smaps, path_maps, maps, pidfd, dir;
        char tmp[] = "/tmp/vmaq-not-maps-XXXXXX";
        struct {
                const char *parameter;
                int *fd;
                const char *reason;
        } wrong[] = {
                { "maps_fd", &file,      "not a file of /proc" },
                { "maps_fd", &pair[0],   "not a file of /proc" },
                { "maps_fd", &status,    "not a /proc/PID/maps file" },
                { "maps_fd", &smaps,     "not a /proc/PID/maps file" },
                { "maps_fd", &dir,       "not a /proc/PID/maps file" },
                { "maps_fd", &path_maps, "not open for reading" },
                { "maps_fd", &pidfd,     "not a file of /proc" },
                { "pidfd",   &maps,      "not a pidfd" },
                { "pidfd",   &file,      "not a pidfd" },
        };
        int all[9];

        file = mkostemp(tmp, O_CLOEXEC);
        ck_assert_int_ge(file, 0);
        ck_assert_int_eq(unlink(tmp), 0);
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM|SOCK_CLOEXEC, 0, pair), 0);
        status = open("/proc/self/status", O_RDONLY|O_CLOEXEC);
        smaps = open("/proc/self/smaps", O_RDONLY|O_CLOEXEC);
        dir = open("/proc/self", O_RDONLY|O_DIRECTORY|O_CLOEXEC);
        path_maps = open("/proc/self/maps", O_PATH|O_CLOEXEC);
        maps = open("/proc/self/maps", O_RDONLY|O_CLOEXEC);
        pidfd = pidfd_open(getpid(), 0);
        ck_assert(status >= 0 && smaps >= 0 && dir >= 0 && path_maps >= 0 && maps >= 0 && pidfd >= 0);

        all[0] = file, all[1] = pair[0], all[2] = status, all[3] = smaps, all[4] = dir;
        all[5] = path_maps, all[6] = maps, all[7] = pidfd, all[8] = pair[1];

        for (size_t i = 0; i < ELEMENTSOF(wrong); i++) {
                _cleanup_(json_object_putp) struct json_object *r = NULL;
                struct json_object *p;

                r = normalize_by_fd(c, wrong[i].parameter, *wrong[i].fd, code);
                p = reply_error(r, BAD_FD);
                ck_assert_str_eq(json_get_string(p, "parameter"), wrong[i].parameter);
                ck_assert_msg(streq(json_get_string(p, "reason"), wrong[i].reason), "%zu: %s", i,
                              json_get_string(p, "reason"));
        }

        /* An index no fd was sent for; more fds than the call uses; fds with a call that takes none. */
        {
                _cleanup_(json_object_putp) struct json_object *r = NULL, *two = NULL, *none = NULL, *status_fd = NULL;
                int both[2] = { maps, maps };

                r = client_call_fds(c, &maps, 1, "{\"method\":\"io.vmaq.Normalize\",\"parameters\":"
                                    "{\"maps_fd\":1,\"addresses\":[%" PRIu64 "]}}", code);
                ck_assert_str_eq(json_get_string(reply_error(r, BAD_FD), "parameter"), "maps_fd");
                two = client_call_fds(c, both, 2, "{\"method\":\"io.vmaq.Normalize\",\"parameters\":"
                                      "{\"maps_fd\":0,\"addresses\":[%" PRIu64 "]}}", code);
                ck_assert(!json_has(reply_error(two, BAD_FD), "parameter"));
                none = client_call_fds(c, &maps, 1, "{\"method\":\"io.vmaq.Normalize\",\"parameters\":"
                                       "{\"pid\":%d,\"addresses\":[%" PRIu64 "]}}", (int) getpid(), code);
                ck_assert(!json_has(reply_error(none, BAD_FD), "parameter"));
                status_fd = client_call_fds(c, &maps, 1, "{\"method\":\"io.vmaq.GetStatus\"}");
                reply_error(status_fd, BAD_FD);
        }
        {
                _cleanup_(json_object_putp) struct json_object *r = NULL;

                /* Without any fd. */
                r = client_call(c, "{\"method\":\"io.vmaq.Normalize\",\"parameters\":"
                                   "{\"pidfd\":0,\"addresses\":[%" PRIu64 "]}}", code);
                ck_assert_str_eq(json_get_string(reply_error(r, BAD_FD), "parameter"), "pidfd");
                r = (json_object_put(r), NULL);
                r = client_call(c, "{\"method\":\"org.varlink.service.GetInfo\"}");
                ck_assert_str_eq(json_get_string(reply_parameters(r), "version"), PACKAGE_VERSION);
        }
        wait_daemon_closed(d, all, ELEMENTSOF(all));

        /* More than a message may carry: the stream cannot be trusted, the connection closes. */
        {
                _cleanup_(client_freep) Client *many = client_connect(d);
                _cleanup_(json_object_putp) struct json_object *r = NULL;
                int nine[9];
                char *msg = NULL;

                for (size_t i = 0; i < ELEMENTSOF(nine); i++)
                        nine[i] = maps;
                r = client_call_fds(many, nine, ELEMENTSOF(nine), "{\"method\":\"io.vmaq.Normalize\","
                                    "\"parameters\":{\"maps_fd\":0,\"addresses\":[1]}}");
                ck_assert(!json_has(reply_error(r, BAD_FD), "parameter"));
                ck_assert_int_eq(client_read(many, TIMEOUT_MS, &msg), 0);
        }
        wait_daemon_closed(d, &maps, 1);

        safe_close(file);
        safe_close(pair[0]);
        safe_close(pair[1]);
        safe_close(status);
        safe_close(smaps);
        safe_close(dir);
        safe_close(path_maps);
        safe_close(maps);
        safe_close(pidfd);
        daemon_stop(d);
}
END_TEST

/*
 * The kernel decides who may open a maps file, not the policy: a client
 * that may not ask about its non-dumpable process by pid may hand over the
 * maps file the process opened itself.
 */
START_TEST(test_fd_maps_unprivileged) {
        Daemon *d = daemon_start(NULL);
        uint64_t code = (uintptr_t) test_marker_function;
        pid_t pid;

        pid = fork_child();
        if (pid == 0) {
                _cleanup_free_ char *call = NULL;
                struct json_object *r;
                Client *c = NULL;
                int fd;

                drop_to_nobody();
                CHILD_CHECK(prctl(PR_SET_DUMPABLE, 0) == 0);
                CHILD_CHECK(client_open(d->socket_path, 0, &c) == 0);

                call = normalize_one(getpid(), code);
                r = client_call_raw(c, call, TIMEOUT_MS);
                CHILD_CHECK(r && is_denied_for(r, getpid()));

                fd = open("/proc/self/maps", O_RDONLY|O_CLOEXEC);
                CHILD_CHECK(fd >= 0);
                CHILD_CHECK(client_send_fds(c, "{\"method\":\"io.vmaq.Normalize\",\"parameters\":"
                                               "{\"maps_fd\":0,\"addresses\":[1]}}", &fd, 1) == 0);
                r = client_reply(c);
                CHILD_CHECK(r && !error_name(r));
                _exit(EXIT_SUCCESS);
        }
        assert_child_ok(pid, CLIENT_TIMEOUT_MS);

        daemon_stop(d);
}
END_TEST

/* A pidfd names its process from any pid namespace: a client in another one is answered about it. */
START_TEST(test_fd_pidfd_foreign) {
        Daemon *d = daemon_start(NULL);
        uint64_t code = (uintptr_t) test_marker_function;
        struct json_object *want;
        const char *path;
        uint64_t offset;
        pid_t pid;

        {
                _cleanup_(client_freep) Client *c = client_connect(d);
                _cleanup_free_ char *call = normalize_one(getpid(), code);

                want = client_call(c, "%s", call);
                path = single_module_path(want);
                offset = single_offset(want);
        }

        pid = fork_child();
        if (pid == 0) {
                pid_t inner;
                int status;

                CHILD_CHECK(unshare(CLONE_NEWPID) == 0);
                inner = fork();
                CHILD_CHECK(inner >= 0);
                if (inner == 0) {
                        struct json_object *r, *results;
                        Client *c = NULL;
                        int fd;

                        CHILD_CHECK(prctl(PR_SET_PDEATHSIG, SIGKILL) == 0);
                        CHILD_CHECK(client_open(d->socket_path, 0, &c) == 0);
                        fd = pidfd_open(getpid(), 0);
                        CHILD_CHECK(fd >= 0);
                        CHILD_CHECK(client_send_fds(c, "{\"method\":\"io.vmaq.Normalize\",\"parameters\":"
                                                       "{\"pidfd\":0,\"addresses\":[1]}}", &fd, 1) == 0);
                        r = client_reply(c);
                        CHILD_CHECK(r && !error_name(r));
                        /* Its pid here is not the daemon's: none is told. */
                        CHILD_CHECK(json_get_u64(reply_parameters(r), "pid") == 0);
                        {
                                char *msg = NULL;

                                if (asprintf(&msg, "{\"method\":\"io.vmaq.Normalize\",\"parameters\":"
                                                   "{\"pidfd\":0,\"addresses\":[%" PRIu64 "]}}", code) < 0)
                                        _exit(EXIT_FAILURE);
                                CHILD_CHECK(client_send_fds(c, msg, &fd, 1) == 0);
                        }
                        r = client_reply(c);
                        CHILD_CHECK(r && !error_name(r));
                        CHILD_CHECK(streq(single_module_path(r), path));
                        results = json_get_array(reply_parameters(r), "results");
                        CHILD_CHECK(json_get_u64(json_object_array_get_idx(results, 0), "offset") == offset);
                        _exit(EXIT_SUCCESS);
                }
                CHILD_CHECK(waitpid(inner, &status, 0) == inner);
                _exit(WIFEXITED(status) ? WEXITSTATUS(status) : EXIT_FAILURE);
        }
        assert_child_ok(pid, CLIENT_TIMEOUT_MS);

        json_object_put(want);
        daemon_stop(d);
}
END_TEST

/*
 * A pidfd names its process after it exited too: answered from its
 * snapshot while it is a zombie, and once reaped where pidfds tell
 * processes apart (pidfs, Linux 6.9).
 */
START_TEST(test_post_mortem_pidfd) {
        Daemon *d = daemon_start(ARGS("--exit-grace", "600"));
        _cleanup_(client_freep) Client *c = client_connect(d);
        _cleanup_(json_object_putp) struct json_object *live = NULL, *zombie = NULL, *reaped = NULL;
        uint64_t code = (uintptr_t) test_marker_function, offset = 0;
        _cleanup_close_ int pidfd = -EBADF;
        const char *unknown = NULL;
        struct json_object *m;
        struct statfs sfs;
        int ctl, status;
        pid_t pid;

        pid = spawn_waiting_child(&ctl, NULL, NULL);
        pidfd = pidfd_open(pid, 0);
        ck_assert_int_ge(pidfd, 0);
        live = normalize_by_fd(c, "pidfd", pidfd, code);
        ck_assert(!json_has(reply_parameters(live), "exited"));

        /* Exited, not reaped: the daemon learns of it through its own pidfd. */
        close(ctl);
        ck_assert_int_eq(waitid(P_PID, (id_t) pid, &(siginfo_t) {}, WEXITED | WNOWAIT), 0);
        wait_snapshots(c, "exited", 1);
        zombie = normalize_by_fd(c, "pidfd", pidfd, code);
        ck_assert(json_get_bool(reply_parameters(zombie), "exited"));
        ck_assert_int_eq(json_get_u64(reply_parameters(zombie), "pid"), pid);
        m = result_module(reply_parameters(zombie), 0, &offset, &unknown);
        ck_assert_ptr_nonnull(m);
        ck_assert_uint_eq(offset, single_offset(live));
        ck_assert_str_eq(json_get_string(m, "path"), single_module_path(live));

        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        reaped = normalize_by_fd(c, "pidfd", pidfd, code);
        ck_assert_int_eq(fstatfs(pidfd, &sfs), 0);
        if (sfs.f_type != 0x50494446 /* PID_FS_MAGIC */) {
                /*
                 * Every pidfd shares one inode: the process cannot be told,
                 * and is gone. That fallback is what this kernel checks.
                 */
                fprintf(stderr, "post-mortem-pidfd: no pidfs (Linux 6.9): checking that a reaped process's "
                        "pidfd is answered as gone, not from its snapshot\n");
                reply_error(reaped, "io.vmaq.NoSuchProcess");
        } else {
                ck_assert(json_get_bool(reply_parameters(reaped), "exited"));
                m = result_module(reply_parameters(reaped), 0, &offset, &unknown);
                ck_assert_ptr_nonnull(m);
                ck_assert_uint_eq(offset, single_offset(live));
        }

        daemon_stop(d);
}
END_TEST

/*
 * A target in another mount namespace than the daemon's gets a host path
 * for each module, through its root; one in the daemon's gets none, and
 * its reply is as it always was.
 */
START_TEST(test_host_path) {
        _cleanup_(client_freep) Client *c = NULL;
        _cleanup_free_ char *exe = NULL, *want = NULL, *msg_other = NULL, *msg_same = NULL;
        Daemon *d = daemon_start(NULL);
        int ready[2], ctl[2];
        pid_t other, same;
        char b;

        exe = realpath("/proc/self/exe", NULL);
        ck_assert_ptr_nonnull(exe);
        ck_assert_int_eq(pipe2(ready, O_CLOEXEC), 0);
        ck_assert_int_eq(pipe2(ctl, O_CLOEXEC), 0);
        other = fork_child();
        if (other == 0) {
                close(ready[0]);
                close(ctl[1]);
                CHILD_CHECK(unshare(CLONE_NEWNS) == 0);
                close(ready[1]);
                (void) read(ctl[0], &b, 1);
                _exit(EXIT_SUCCESS);
        }
        close(ready[1]);
        ck_assert_int_eq(read(ready[0], &b, 1), 0);
        close(ready[0]);
        same = fork_child();
        if (same == 0) {
                close(ctl[1]);
                (void) read(ctl[0], &b, 1);
                _exit(EXIT_SUCCESS);
        }
        close(ctl[0]);

        c = client_connect(d);
        ck_assert_int_ge(asprintf(&want, "/proc/%d/root%s", (int) other, exe), 0);
        msg_other = normalize_one(other, (uintptr_t) test_marker_function);
        msg_same = normalize_one(same, (uintptr_t) test_marker_function);
        {
                _cleanup_(json_object_putp) struct json_object *r = client_call_raw(c, msg_other, TIMEOUT_MS);

                ck_assert_str_eq(single_module_path(r), exe);
                ck_assert_str_eq(json_get_string(module_of(r), "host_path"), want);
        }
        {
                _cleanup_(json_object_putp) struct json_object *r = client_call_raw(c, msg_same, TIMEOUT_MS);

                ck_assert_str_eq(single_module_path(r), exe);
                ck_assert(!json_has(module_of(r), "host_path"));
        }
        /* ListMappings too: each file mapping of the other one, none of ours. */
        for (unsigned k = 0; k < 2; k++) {
                _cleanup_(json_object_putp) struct json_object *r = NULL;
                struct json_object *mappings;
                size_t n_files = 0;

                r = client_call(c, "{\"method\":\"io.vmaq.ListMappings\",\"parameters\":{\"pid\":%d}}",
                                (int) (k == 0 ? other : same));
                mappings = json_get_array(reply_parameters(r), "mappings");
                for (size_t i = 0; i < json_object_array_length(mappings); i++) {
                        struct json_object *m = json_object_array_get_idx(mappings, i);
                        _cleanup_free_ char *host = NULL;
                        bool file = streq(json_get_string(m, "kind"), "file") && !json_get_bool(m, "deleted");

                        if (k == 1 || !file) {
                                ck_assert(!json_has(m, "host_path"));
                                continue;
                        }
                        ck_assert_int_ge(asprintf(&host, "/proc/%d/root%s", (int) other, json_get_string(m, "path")), 0);
                        ck_assert_str_eq(json_get_string(m, "host_path"), host);
                        n_files++;
                }
                if (k == 0)
                        ck_assert_uint_gt(n_files, 0);
        }
        close(ctl[1]);
        assert_child_ok(other, CLIENT_TIMEOUT_MS);
        assert_child_ok(same, CLIENT_TIMEOUT_MS);
        daemon_stop(d);
}
END_TEST

/*
 * A peer that is gone before the daemon takes its connection cannot be
 * tied to a pid namespace: its calls about pids are refused, never
 * answered in the wrong namespace's pids. The daemon is stopped meanwhile,
 * so that it takes the connection only once the peer is gone.
 */
START_TEST(test_unresolved_pid_namespace) {
        _cleanup_(client_freep) Client *c = NULL;
        _cleanup_(json_object_putp) struct json_object *r = NULL;
        _cleanup_free_ char *msg = NULL;
        Daemon *d = daemon_start(NULL);
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        pid_t pid;

        c = calloc(1, sizeof(*c));
        ck_assert_ptr_nonnull(c);
        c->fd = socket(AF_UNIX, SOCK_STREAM|SOCK_CLOEXEC, 0);
        ck_assert_int_ge(c->fd, 0);
        strcpy(sa.sun_path, d->socket_path);

        ck_assert_int_eq(kill(d->pid, SIGSTOP), 0);
        pid = fork_child();
        if (pid == 0) {
                /* Our socket, connected by a process that then exits: the peer is it. */
                CHILD_CHECK(connect(c->fd, (struct sockaddr *) &sa, sizeof(sa)) == 0);
                _exit(EXIT_SUCCESS);
        }
        assert_child_ok(pid, CLIENT_TIMEOUT_MS);
        ck_assert_int_eq(kill(d->pid, SIGCONT), 0);

        msg = normalize_one(getpid(), (uintptr_t) test_marker_function);
        r = client_call_raw(c, msg, TIMEOUT_MS);
        ck_assert_ptr_nonnull(r);
        reply_error(r, FOREIGN);
        json_object_put(r);
        r = client_call_raw(c, "{\"method\":\"org.varlink.service.GetInfo\"}", TIMEOUT_MS);
        ck_assert_ptr_nonnull(r);
        ck_assert_ptr_null(error_name(r));

        assert_serves(d);
        daemon_stop(d);
}
END_TEST

/* --- tests: the socket ------------------------------------------------------- */

/* The path of executable @name found through $PATH, or NULL. No ck_assert(): the runner uses it. */
static char *find_in_path(const char *name) {
        _cleanup_free_ char *path = strdup(getenv("PATH") ?: "/usr/bin:/bin");
        char *save = NULL;

        if (!path)
                return NULL;
        for (char *dir = strtok_r(path, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
                char *p = NULL;

                if (asprintf(&p, "%s/%s", dir, name) < 0)
                        return NULL;
                if (access(p, X_OK) == 0)
                        return p;
                free(p);
        }
        return NULL;
}

/* Wait (bounded) for @path to appear in directory @dir. */
static void wait_for_file(const char *dir, const char *path, int timeout_ms) {
        _cleanup_close_ int fd = inotify_init1(IN_CLOEXEC|IN_NONBLOCK);
        int64_t deadline = now_ms() + timeout_ms;

        ck_assert_int_ge(fd, 0);
        ck_assert_int_ge(inotify_add_watch(fd, dir, IN_CREATE|IN_MOVED_TO), 0);
        while (access(path, F_OK) < 0) {
                struct pollfd p = { .fd = fd, .events = POLLIN };
                char buf[4096];
                int r;

                r = poll(&p, 1, remaining_ms(deadline));
                ck_assert_msg(r > 0 || (r < 0 && errno == EINTR), "'%s' did not appear", path);
                while (read(fd, buf, sizeof(buf)) > 0)
                        ;
        }
}

START_TEST(test_socket_activation) {
        _cleanup_free_ char *tool = find_in_path("systemd-socket-activate"), *listen = NULL, *notify = NULL;
        _cleanup_(client_freep) Client *c = NULL;
        _cleanup_(json_object_putp) struct json_object *r = NULL;
        Daemon *d = daemon_new();
        const char *argv[32];
        size_t n = 0;

        ck_assert_ptr_nonnull(tool);
        d->activated = true;
        /* vmaqd.sock stays unused: the socket is the one systemd-socket-activate passes. */
        strcpy(strrchr(d->socket_path, '/'), "/act.sock");
        ck_assert_int_ge(asprintf(&listen, "--listen=%s", d->socket_path), 0);
        ck_assert_int_ge(asprintf(&notify, "--setenv=NOTIFY_SOCKET=%s", d->notify_path), 0);

        argv[n++] = tool;
        argv[n++] = listen;
        argv[n++] = notify;
        /* It passes on only some variables: the sanitizers' options too, if set. */
        if (getenv("ASAN_OPTIONS"))
                argv[n++] = "--setenv=ASAN_OPTIONS";
        if (getenv("UBSAN_OPTIONS"))
                argv[n++] = "--setenv=UBSAN_OPTIONS";
        argv[n++] = vmaqd_path;
        argv[n++] = "--backend";
        argv[n++] = TEST_BACKEND;
        argv[n++] = "--log-level";
        argv[n++] = "debug";
        /* A --socket it must not use: the passed socket wins. */
        argv[n++] = "--socket";
        argv[n++] = "/nonexistent/vmaqd.sock";
        argv[n] = NULL;
        daemon_exec(d, argv);

        /* It starts vmaqd on the first connection, which vmaqd then finds waiting on the socket. */
        wait_for_file(d->dir, d->socket_path, TIMEOUT_MS);
        /* The file exists once bound, a moment before the tool listens on it. */
        for (int64_t deadline = now_ms() + TIMEOUT_MS;;) {
                _cleanup_close_ int fd = -EBADF;
                int k = unix_connect(d->socket_path, 0, &fd);

                if (k != -ECONNREFUSED) {
                        ck_assert_int_eq(k, 0);
                        break;
                }
                ck_assert_msg(remaining_ms(deadline) > 0, "'%s' never listened", d->socket_path);
                (void) poll(NULL, 0, 10);
        }
        c = client_connect_path(d->socket_path);
        daemon_wait_ready(d, d->socket_path);
        r = client_call(c, "{\"method\":\"org.varlink.service.GetInfo\"}");
        ck_assert_str_eq(json_get_string(reply_parameters(r), "version"), PACKAGE_VERSION);
        r = (json_object_put(r), NULL);
        r = get_status(c);
        ck_assert_str_eq(json_get_string(reply_parameters(r), "backend"), TEST_BACKEND);

        daemon_stop(d);
}
END_TEST

START_TEST(test_stale_socket) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_close_ int fd = -EBADF;
        Daemon *d = daemon_new();
        struct stat st;

        /* A socket file whose listener is gone, as a crashed instance leaves it. */
        strcpy(sa.sun_path, d->socket_path);
        fd = socket(AF_UNIX, SOCK_STREAM|SOCK_CLOEXEC, 0);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(bind(fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
        fd = safe_close(fd);
        ck_assert_int_eq(lstat(d->socket_path, &st), 0);
        ck_assert(S_ISSOCK(st.st_mode));
        ck_assert_int_eq(unix_connect(d->socket_path, 0, &fd), -ECONNREFUSED);

        daemon_spawn_in(d, NULL);
        daemon_wait_ready(d, d->socket_path);
        assert_serves(d);
        daemon_stop(d);
}
END_TEST

START_TEST(test_live_instance) {
        Daemon *d = daemon_start(NULL), *d2;
        char buf[64];
        struct stat st;

        /* A second instance on the same path fails and leaves the live one alone. */
        d2 = daemon_spawn(ARGS("--socket", d->socket_path));
        ck_assert_int_eq(daemon_wait_exit(d2, TIMEOUT_MS), 0);
        ck_assert_msg(WIFEXITED(d2->status) && WEXITSTATUS(d2->status) != 0, "second instance: %s",
                      describe_status(d2->status, buf));
        ck_assert_int_eq(daemon_wait_notify(d2, "READY=1", 0), -ECHILD);
        daemon_release(d2);

        ck_assert_int_eq(lstat(d->socket_path, &st), 0);
        ck_assert(S_ISSOCK(st.st_mode));
        assert_serves(d);
        daemon_stop(d);
}
END_TEST

START_TEST(test_path_not_a_socket) {
        _cleanup_close_ int fd = -EBADF;
        Daemon *d = daemon_new();
        char buf[64];

        /* Not ours to replace: vmaqd refuses to start and leaves it. */
        fd = open(d->socket_path, O_WRONLY|O_CREAT|O_EXCL|O_CLOEXEC, 0644);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(write(fd, "data", 4), 4);
        fd = safe_close(fd);

        daemon_spawn_in(d, NULL);
        ck_assert_int_eq(daemon_wait_exit(d, TIMEOUT_MS), 0);
        ck_assert_msg(WIFEXITED(d->status) && WEXITSTATUS(d->status) != 0, "%s",
                      describe_status(d->status, buf));
        ck_assert_int_eq(daemon_wait_notify(d, "READY=1", 0), -ECHILD);

        fd = open(d->socket_path, O_RDONLY|O_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(read(fd, buf, sizeof(buf)), 4);
        ck_assert_mem_eq(buf, "data", 4);
        daemon_release(d);
}
END_TEST

/* The sd_notify protocol beyond READY=1: STATUS=, WATCHDOG=1, and SIGINT stops like SIGTERM. */
START_TEST(test_notify) {
        Daemon *d = daemon_new();

        d->watchdog_usec = 1000000;
        daemon_spawn_in(d, NULL);
        daemon_wait_ready(d, d->socket_path);
        ck_assert_msg(strstr(d->last_notify, "\nSTATUS=") || strncmp(d->last_notify, "STATUS=", 7) == 0,
                      "no STATUS= with READY=1: '%s'", d->last_notify);

        /* Pinged at least twice per period: one comes within the bounded wait. */
        ck_assert_int_eq(daemon_wait_notify(d, "WATCHDOG=1", TIMEOUT_MS), 0);
        ck_assert_int_eq(daemon_wait_notify(d, "WATCHDOG=1", TIMEOUT_MS), 0);
        assert_serves(d);

        daemon_stop_with(d, SIGINT);
}
END_TEST

/* It raises its soft RLIMIT_NOFILE to the hard one and keeps the process cache within it. */
START_TEST(test_fd_limit) {
        _cleanup_(client_freep) Client *c = NULL;
        _cleanup_(json_object_putp) struct json_object *s = NULL;
        Daemon *d = daemon_new();
        unsigned long long soft = 0, hard = 0;
        char path[64], line[256];
        FILE *f;

        d->nofile_soft = 128;
        d->nofile_hard = 512;
        daemon_spawn_in(d, ARGS("--max-connections", "256"));
        daemon_wait_ready(d, d->socket_path);

        snprintf(path, sizeof(path), "/proc/%d/limits", (int) d->pid);
        f = fopen(path, "re");
        ck_assert_ptr_nonnull(f);
        while (fgets(line, sizeof(line), f))
                if (strncmp(line, "Max open files", 14) == 0)
                        ck_assert_int_eq(sscanf(line + 14, "%llu %llu", &soft, &hard), 2);
        fclose(f);
        ck_assert_uint_eq(hard, 512);
        ck_assert_uint_eq(soft, 512);

        /* The default of 1024 cached processes cannot fit: fewer are cached, at least one. */
        c = client_connect(d);
        s = get_status(c);
        ck_assert_uint_ge(status_cache(s, "proc_cache", "max"), 1);
        ck_assert_uint_lt(status_cache(s, "proc_cache", "max") + status_field(s, "connections_max"), 512);
        daemon_stop(d);
}
END_TEST

/* A map larger than a reply comes in parts that join up to exactly the core's walk. */
START_TEST(test_list_mappings_parts) {
        Daemon *d = daemon_start(ARGS("--max-reply-size", "65536"));
        _cleanup_(client_freep) Client *c = client_connect(d);
        _cleanup_(json_object_putp) struct json_object *joined = json_object_new_array();
        _cleanup_(proc_freep) Proc *proc = NULL;
        CoreVmaList l = {};
        uint64_t start = 0, start_time = 0;
        size_t parts = 0;
        int ctl;
        pid_t pid;

        pid = spawn_many_mappings(3000, &ctl);
        for (;;) {
                _cleanup_(json_object_putp) struct json_object *r = NULL;
                struct json_object *p, *mappings;

                if (parts == 0)
                        r = client_call(c, "{\"method\":\"io.vmaq.ListMappings\",\"parameters\":"
                                           "{\"pid\":%d,\"build_ids\":false}}", (int) pid);
                else
                        r = client_call(c, "{\"method\":\"io.vmaq.ListMappings\",\"parameters\":"
                                           "{\"pid\":%d,\"build_ids\":false,\"start_time\":%" PRIu64 ","
                                           "\"start\":\"0x%" PRIx64 "\"}}", (int) pid, start_time, start);
                p = reply_parameters(r);
                mappings = json_get_array(p, "mappings");
                ck_assert_uint_gt(json_object_array_length(mappings), 0);
                ck_assert_uint_lt(strlen(json_object_to_json_string(p)), 65536);
                if (parts == 0)
                        start_time = json_get_u64(p, "start_time");
                /* Each part goes on where the last one stopped. */
                if (parts > 0)
                        ck_assert_uint_eq(json_get_u64(json_object_array_get_idx(mappings, 0), "start"), start);
                for (size_t i = 0; i < json_object_array_length(mappings); i++)
                        json_object_array_add(joined, json_object_get(json_object_array_get_idx(mappings, i)));
                parts++;
                if (!json_has(p, "next"))
                        break;
                start = json_get_u64(p, "next");
                ck_assert_uint_lt(parts, 1000);
        }
        ck_assert_uint_gt(parts, 3);

        ck_assert_int_eq(proc_open(&proc, pid, test_backend()), 0);
        ck_assert_int_eq(proc_foreach_vma(proc, 0, NULL, core_vma_add, &l), 0);
        assert_mappings_equal(joined, &l);
        free(l.items);

        close(ctl);
        assert_child_ok(pid, TIMEOUT_MS);
        daemon_stop(d);
}
END_TEST

/* Past --max-build-id-reads, build IDs are marked skipped, never silently missing; the next call goes on. */
START_TEST(test_build_id_reads_capped) {
        Daemon *d = daemon_start(ARGS("--max-build-id-reads", "1"));
        TestChild *tc = spawn_test_child();
        _cleanup_(client_freep) Client *c = client_connect(d);
        _cleanup_free_ char *msg = NULL;
        uint64_t addrs[LAYOUT_N];
        size_t last = SIZE_MAX, calls = 0;

        layout_addrs(tc, addrs);
        msg = normalize_call(tc->pid, addrs, LAYOUT_N, NULL);
        for (;;) {
                _cleanup_(json_object_putp) struct json_object *r = client_call(c, "%s", msg);
                struct json_object *modules = json_get_array(reply_parameters(r), "modules");
                size_t skipped = 0;

                for (size_t i = 0; i < json_object_array_length(modules); i++) {
                        struct json_object *m = json_object_array_get_idx(modules, i);

                        if (json_has(m, "build_id_skipped")) {
                                ck_assert(json_get_bool(m, "build_id_skipped"));
                                (void) json_get(m, "build_id", json_type_null);
                                skipped++;
                        }
                }
                calls++;
                if (calls == 1)
                        ck_assert_uint_gt(skipped, 0);
                /* Each call reads one more file; what it read before comes from the cache. */
                ck_assert_uint_lt(skipped, last);
                last = skipped;
                if (skipped == 0)
                        break;
                ck_assert_uint_lt(calls, 20);
        }
        ck_assert_uint_gt(calls, 1);

        test_child_stop(tc);
        daemon_stop(d);
}
END_TEST

/* A process that execs again and again is listed every time, never reported gone. */
START_TEST(test_list_mappings_exec_loop) {
        Daemon *d = daemon_start(NULL);
        _cleanup_(client_freep) Client *c = client_connect(d);
        char script[PATH_MAX];
        size_t answered = 0;
        pid_t pid;
        FILE *f;

        snprintf(script, sizeof(script), "%s/exec-loop.sh", d->dir);
        f = fopen(script, "we");
        ck_assert_ptr_nonnull(f);
        /* An exec every 10 ms or so: a walk may meet one, never the three in a row that end it. */
        fputs("[ \"$1\" -lt 400 ] && { sleep 0.01; exec /bin/sh \"$0\" $(($1 + 1)); }\nexec sleep 60\n", f);
        ck_assert_int_eq(fclose(f), 0);

        pid = fork_child();
        if (pid == 0) {
                execl("/bin/sh", "/bin/sh", script, "0", (char *) NULL);
                _exit(127);
        }

        /* While it execs: every answer is a listing. */
        for (unsigned i = 0; i < 1000; i++) {
                _cleanup_(json_object_putp) struct json_object *r = NULL;

                r = client_call(c, "{\"method\":\"io.vmaq.ListMappings\",\"parameters\":{\"pid\":%d}}", (int) pid);
                ck_assert_msg(!error_name(r), "call %u: %s", i, json_object_to_json_string(r));
                ck_assert_uint_gt(json_object_array_length(json_get_array(reply_parameters(r), "mappings")), 0);
                answered++;
        }
        ck_assert_uint_eq(answered, 1000);

        kill(pid, SIGKILL);
        (void) wait_child(pid, TIMEOUT_MS);
        daemon_stop(d);
}
END_TEST

/* A Normalize reply that would not fit is refused with its limit, not cut short. */
START_TEST(test_normalize_reply_too_large) {
        Daemon *d = daemon_start(ARGS("--max-reply-size", "65536"));
        TestChild *tc = spawn_test_child();
        _cleanup_(client_freep) Client *c = client_connect(d);
        _cleanup_(json_object_putp) struct json_object *r = NULL;
        _cleanup_free_ uint64_t *addrs = calloc(2000, sizeof(uint64_t));
        _cleanup_free_ char *many = NULL, *few = NULL;

        ck_assert_ptr_nonnull(addrs);
        for (size_t i = 0; i < 2000; i++)
                addrs[i] = tc->code_addr + i;
        many = normalize_call(tc->pid, addrs, 2000, NULL);
        few = normalize_call(tc->pid, addrs, 100, NULL);

        r = client_call(c, "%s", many);
        ck_assert_uint_eq(json_get_u64(reply_error(r, "io.vmaq.ReplyTooLarge"), "limit"), 65536);
        r = (json_object_put(r), NULL);
        r = client_call(c, "%s", few);
        ck_assert_uint_eq(json_object_array_length(json_get_array(reply_parameters(r), "results")), 100);

        test_child_stop(tc);
        daemon_stop(d);
}
END_TEST

/* --- tests: hostile clients and targets -------------------------------------- */

/* Bytes trickled into one message are no progress: the connection is closed after the idle timeout. */
START_TEST(test_trickle_timeout) {
        Daemon *d = daemon_start(ARGS("--idle-timeout", "1"));
        _cleanup_(client_freep) Client *c = client_connect(d);
        static const char msg[] = "{\"method\":\"org.varlink.service.GetInfo\"}";
        bool closed = false;

        /* A byte every 200 ms: the whole message would take 8 s, against 1 s allowed for it. */
        for (size_t i = 0; i < sizeof(msg) && !closed; i++) {
                struct pollfd p = { .fd = c->fd, .events = POLLIN };
                char b;

                if (send(c->fd, msg + i, 1, MSG_NOSIGNAL) < 0) {
                        ck_assert_msg(errno == EPIPE || errno == ECONNRESET, "send: %m");
                        closed = true;
                } else if (poll(&p, 1, 200) > 0) {
                        ssize_t n = recv(c->fd, &b, 1, MSG_DONTWAIT);

                        ck_assert_msg(n == 0 || (n < 0 && errno == ECONNRESET),
                                      "got a reply, or an error other than the close: %zd", n);
                        closed = true;
                }
        }
        ck_assert_msg(closed, "a message trickled in byte by byte kept its connection open");

        assert_serves(d);
        daemon_stop(d);
}
END_TEST

static void *wait_forever(void *userdata) {
        pid_t *tid = userdata;

        __atomic_store_n(tid, gettid(), __ATOMIC_RELEASE);
        for (;;)
                pause();
        return NULL;
}

/* A thread id is no process: NoSuchProcess, without a warning in the log. */
START_TEST(test_thread_id) {
        Daemon *d = daemon_start(NULL);
        _cleanup_(client_freep) Client *c = client_connect(d);
        _cleanup_(json_object_putp) struct json_object *r = NULL;
        _cleanup_free_ char *msg = NULL, *log = NULL;
        pid_t tid = 0;
        pthread_t t;

        ck_assert_int_eq(pthread_create(&t, NULL, wait_forever, &tid), 0);
        while (__atomic_load_n(&tid, __ATOMIC_ACQUIRE) == 0)
                (void) poll(NULL, 0, 1);

        msg = normalize_one(tid, (uintptr_t) test_marker_function);
        for (unsigned i = 0; i < 3; i++) {
                r = client_call(c, "%s", msg);
                ck_assert_int_eq(json_get_u64(reply_error(r, "io.vmaq.NoSuchProcess"), "pid"), tid);
                r = (json_object_put(r), NULL);
        }

        log = read_text_file(d->log_path);
        ck_assert_msg(!strstr(log, "<4>") && !strstr(log, "<3>"), "warnings were logged:\n%s", log);
        daemon_stop(d);
}
END_TEST

/*
 * A refused client learns nothing: not the state of the process (a zombie,
 * a kernel thread or a thread all look like any process it may not see),
 * and it leaves no trace in the process cache.
 */
START_TEST(test_denied_learns_nothing) {
        Daemon *d = daemon_start(ARGS("--group", ""));
        _cleanup_(client_freep) Client *c = client_connect(d);
        _cleanup_(json_object_putp) struct json_object *s1 = NULL, *s2 = NULL;
        uint64_t code = (uintptr_t) test_marker_function;
        pid_t live, zombie, client, tid = 0;
        siginfo_t si = {};
        int ctl_live, ctl_zombie;
        pthread_t t;

        live = spawn_waiting_child(&ctl_live, NULL, NULL);
        zombie = spawn_waiting_child(&ctl_zombie, NULL, NULL);
        close(ctl_zombie);
        ck_assert_int_eq(waitid(P_PID, zombie, &si, WEXITED|WNOWAIT), 0);
        ck_assert_int_eq(pthread_create(&t, NULL, wait_forever, &tid), 0);
        while (__atomic_load_n(&tid, __ATOMIC_ACQUIRE) == 0)
                (void) poll(NULL, 0, 1);

        s1 = get_status(c);
        client = fork_child();
        if (client == 0) {
                const pid_t targets[] = { live, zombie, 2 /* kthreadd */, tid };
                Client *nc = NULL;

                drop_to_nobody();
                CHILD_CHECK(client_open(d->socket_path, 0, &nc) == 0);
                for (size_t i = 0; i < ELEMENTSOF(targets); i++) {
                        struct json_object *r;

                        r = client_call_raw(nc, normalize_one(targets[i], code), TIMEOUT_MS);
                        CHILD_CHECK(is_denied_for(r, targets[i]));
                        r = client_call_raw(nc, normalize_one(targets[i], code), TIMEOUT_MS);
                        CHILD_CHECK(is_denied_for(r, targets[i]));
                }
                _exit(EXIT_SUCCESS);
        }
        assert_child_ok(client, CLIENT_TIMEOUT_MS);
        s2 = get_status(c);

        ck_assert_uint_eq(status_field(s2, "denied") - status_field(s1, "denied"), 8);
        ck_assert_uint_eq(cache_delta(s1, s2, "proc_cache", "misses"), 0);
        ck_assert_uint_eq(cache_delta(s1, s2, "proc_cache", "hits"), 0);
        ck_assert_uint_eq(status_cache(s2, "proc_cache", "size"), status_cache(s1, "proc_cache", "size"));

        close(ctl_live);
        assert_child_ok(live, TIMEOUT_MS);
        assert_child_ok(zombie, TIMEOUT_MS);
        daemon_stop(d);
}
END_TEST

/*
 * A client's own child execs a setuid-root program while the client asks
 * about it. Whatever the race, the client never gets the map of the
 * privileged program: the check is repeated once the maps file is open.
 */
START_TEST(test_setuid_exec_race) {
        Daemon *d = daemon_start(ARGS("--group", ""));
        char suid[PATH_MAX + 16];
        pid_t client;

        snprintf(suid, sizeof(suid), "%s/suid-sleep", d->dir);
        test_copy_file("/bin/sleep", suid);
        ck_assert_int_eq(chmod(suid, 04755), 0);

        client = fork_child();
        if (client == 0) {
                Client *nc = NULL;
                unsigned denied = 0, listed = 0;

                drop_to_nobody();
                CHILD_CHECK(client_open(d->socket_path, 0, &nc) == 0);
                for (unsigned i = 0; i < 4000; i++) {
                        _cleanup_free_ char *call = NULL;
                        struct json_object *r, *p, *mappings;
                        int go[2];
                        pid_t t;

                        CHILD_CHECK(pipe2(go, O_CLOEXEC) == 0);
                        t = fork();
                        CHILD_CHECK(t >= 0);
                        if (t == 0) {
                                char b;

                                close(go[1]);
                                (void) read(go[0], &b, 1);
                                execl(suid, suid, "5", (char *) NULL);
                                _exit(127);
                        }
                        close(go[0]);
                        CHILD_CHECK(asprintf(&call, "{\"method\":\"io.vmaq.ListMappings\",\"parameters\":"
                                                    "{\"pid\":%d,\"build_ids\":false}}", (int) t) > 0);
                        /* Exec now, and ask after 0 to 1.5 ms: before, during and after the exec. */
                        close(go[1]);
                        (void) nanosleep(&(struct timespec) { .tv_nsec = (long) ((i * 7919U) % 1500000U) }, NULL);
                        r = client_call_raw(nc, call, TIMEOUT_MS);
                        CHILD_CHECK(r);
                        if (is_denied_for(r, t))
                                denied++;
                        else {
                                CHILD_CHECK(!error_name(r));
                                CHILD_CHECK(json_object_object_get_ex(r, "parameters", &p));
                                CHILD_CHECK(json_object_object_get_ex(p, "mappings", &mappings));
                                for (size_t k = 0; k < json_object_array_length(mappings); k++) {
                                        struct json_object *path;

                                        if (json_object_object_get_ex(json_object_array_get_idx(mappings, k),
                                                                      "path", &path))
                                                CHILD_CHECK(!streq(json_object_get_string(path), suid));
                                }
                                listed++;
                        }
                        json_object_put(r);
                        kill(t, SIGKILL);
                        CHILD_CHECK(waitpid(t, NULL, 0) == t);
                }
                /* Both sides of the race were seen: the test is no walk-over. */
                CHILD_CHECK(denied > 0);
                CHILD_CHECK(listed > 0);
                _exit(EXIT_SUCCESS);
        }
        assert_child_ok(client, 4 * CLIENT_TIMEOUT_MS);
        daemon_stop(d);
}
END_TEST

/* A socket directory others may write to is refused, unless it is sticky. */
START_TEST(test_socket_dir_writable) {
        const mode_t modes[] = { 0777, 0770, 01777 };

        for (size_t i = 0; i < ELEMENTSOF(modes); i++) {
                Daemon *d = daemon_new();
                char dir[PATH_MAX], path[PATH_MAX + 8], buf[64];

                snprintf(dir, sizeof(dir), "%s/open", d->dir);
                snprintf(path, sizeof(path), "%s/s", dir);
                ck_assert_int_eq(mkdir(dir, 0700), 0);
                ck_assert_int_eq(chmod(dir, modes[i]), 0);

                daemon_spawn_in(d, ARGS("--socket", path));
                if (modes[i] & S_ISVTX) {
                        struct stat st;

                        daemon_wait_ready(d, path);
                        ck_assert_int_eq(lstat(path, &st), 0);
                        ck_assert_uint_eq(st.st_mode & 07777, 0666);
                        daemon_stop(d);
                        continue;
                }
                ck_assert_int_eq(daemon_wait_exit(d, TIMEOUT_MS), 0);
                ck_assert_msg(WIFEXITED(d->status) && WEXITSTATUS(d->status) != 0, "mode %o: %s",
                              (unsigned) modes[i], describe_status(d->status, buf));
                ck_assert_int_eq(access(path, F_OK), -1);
                daemon_release(d);
        }
}
END_TEST

/* Out of fds, the daemon pauses accepting instead of spinning and logging in a loop, and recovers. */
START_TEST(test_accept_out_of_fds) {
        Client *clients[160] = {};
        _cleanup_free_ char *log = NULL;
        Daemon *d = daemon_new();
        size_t n_failed = 0;
        const char *p;

        d->nofile_soft = d->nofile_hard = 96;
        daemon_spawn_in(d, ARGS("--cache-size", "1"));
        daemon_wait_ready(d, d->socket_path);

        /* More than its fds: the kernel queues the rest, which vmaqd cannot accept for now. */
        for (size_t i = 0; i < ELEMENTSOF(clients); i++)
                ck_assert_int_eq(client_open(d->socket_path, 0, &clients[i]), 0);
        /* Let it run into the limit for a while: a busy loop would log thousands of lines here. */
        (void) poll(NULL, 0, 1500);
        for (size_t i = 0; i < ELEMENTSOF(clients); i++)
                client_free(clients[i]);

        assert_serves(d);

        log = read_text_file(d->log_path);
        for (p = log; (p = strstr(p, "Failed to accept")); p++)
                n_failed++;
        ck_assert_uint_ge(n_failed, 1);
        ck_assert_uint_le(n_failed, 10);
        daemon_stop(d);
}
END_TEST

/* A forked client as @uid: @n connections at once, each calls GetInfo; exits 0 when all are answered. */
static pid_t spawn_many_callers(const char *path, uid_t uid, size_t n) {
        pid_t pid = fork_child();

        if (pid == 0) {
                Client **clients = calloc(n, sizeof(Client *));

                CHILD_CHECK(clients);
                if (uid != 0)
                        drop_to(uid);
                for (size_t i = 0; i < n; i++) {
                        CHILD_CHECK(client_open(path, 0, &clients[i]) == 0);
                        CHILD_CHECK(client_send(clients[i], "{\"method\":\"org.varlink.service.GetInfo\"}") == 0);
                }
                for (size_t i = 0; i < n; i++) {
                        _cleanup_free_ char *m = NULL;

                        CHILD_CHECK(client_read(clients[i], CLIENT_TIMEOUT_MS, &m) == 1);
                        CHILD_CHECK(strstr(m, "\"version\":\"" PACKAGE_VERSION "\""));
                        client_free(clients[i]);
                }
                free(clients);
                _exit(EXIT_SUCCESS);
        }
        return pid;
}

/*
 * A user holding all the connections it may, silent: its next one is
 * refused and told why; root and another user are still answered. Then,
 * with the default limits, 1,000 clients of four users at once are all
 * answered.
 */
START_TEST(test_connection_shares) {
        static const uid_t uids[] = { 0, NOBODY, NOBODY - 1, NOBODY - 2 };
        Daemon *d = daemon_start(NULL);
        _cleanup_(client_freep) Client *root = client_connect(d);
        _cleanup_(json_object_putp) struct json_object *r = NULL;
        pid_t holder, other, callers[ELEMENTSOF(uids)];
        int ready[2], ctl[2];
        char b;

        ck_assert_int_eq(pipe2(ready, O_CLOEXEC), 0);
        ck_assert_int_eq(pipe2(ctl, O_CLOEXEC), 0);
        holder = fork_child();
        if (holder == 0) {
                Client *held[DOCUMENTED_MAX_CONNECTIONS_PER_USER], *extra = NULL;
                _cleanup_free_ char *m = NULL;

                close(ready[0]);
                close(ctl[1]);
                drop_to(NOBODY);
                for (size_t i = 0; i < ELEMENTSOF(held); i++)
                        CHILD_CHECK(client_open(d->socket_path, 0, &held[i]) == 0);
                /* Accepted after all of those: over the share. The reason may come before we send. */
                CHILD_CHECK(client_open(d->socket_path, 0, &extra) == 0);
                (void) client_send(extra, "{\"method\":\"org.varlink.service.GetInfo\"}");
                CHILD_CHECK(client_read(extra, TIMEOUT_MS, &m) == 1);
                CHILD_CHECK(strstr(m, "\"error\":\"io.vmaq.TooManyConnections\""));
                CHILD_CHECK(strstr(m, "\"reason\":\"per user\""));
                CHILD_CHECK(strstr(m, "\"limit\":256"));
                CHILD_CHECK(write(ready[1], "x", 1) == 1);
                while (read(ctl[0], &b, 1) > 0)
                        ;
                _exit(EXIT_SUCCESS);
        }
        close(ready[1]);
        close(ctl[0]);
        ck_assert_int_eq(read(ready[0], &b, 1), 1);
        close(ready[0]);

        /* Root and another unprivileged user get in and are answered. */
        r = client_call(root, "{\"method\":\"org.varlink.service.GetInfo\"}");
        ck_assert_str_eq(json_get_string(reply_parameters(r), "version"), PACKAGE_VERSION);
        other = spawn_many_callers(d->socket_path, NOBODY - 1, 1);
        assert_child_ok(other, TIMEOUT_MS);
        r = (json_object_put(r), NULL);
        r = get_status(root);
        ck_assert_uint_eq(status_cache(r, "refused", "user_connections"), 1);
        ck_assert_uint_eq(status_cache(r, "refused", "connections"), 0);
        ck_assert_uint_ge(status_field(r, "connections"), DOCUMENTED_MAX_CONNECTIONS_PER_USER + 1);

        close(ctl[1]);
        assert_child_ok(holder, TIMEOUT_MS);

        /* 1,000 at once, of four users, each within its share. */
        for (size_t i = 0; i < ELEMENTSOF(uids); i++)
                callers[i] = spawn_many_callers(d->socket_path, uids[i], 250);
        for (size_t i = 0; i < ELEMENTSOF(uids); i++)
                assert_child_ok(callers[i], CLIENT_TIMEOUT_MS);
        r = (json_object_put(r), NULL);
        r = get_status(root);
        ck_assert_uint_eq(status_cache(r, "refused", "user_connections"), 1);
        ck_assert_uint_eq(status_cache(r, "refused", "connections"), 0);

        daemon_stop(d);
}
END_TEST

/*
 * A target maps a file whose reads never return. The request about it
 * waits, on a worker; every other client is answered meanwhile; after
 * --request-timeout the stuck request is answered with TimedOut, and once
 * the file system goes away the worker and its memory come back.
 */
/* CPU time (user and system, in clock ticks) the daemon used so far. */
static uint64_t daemon_cpu_ticks(const Daemon *d) {
        char path[64], buf[1024], *p;
        unsigned long long utime = 0, stime = 0;
        ssize_t n;
        int fd;

        snprintf(path, sizeof(path), "/proc/%d/stat", (int) d->pid);
        fd = open(path, O_RDONLY|O_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        ck_assert_int_gt(n, 0);
        buf[n] = '\0';
        p = strrchr(buf, ')');
        ck_assert_ptr_nonnull(p);
        /* After "pid (comm)": state is field 3, utime 14, stime 15. */
        ck_assert_int_eq(sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime), 2);
        return utime + stime;
}

/*
 * Over a second in which nothing is asked of it, the daemon uses a small
 * part of a core: a loop woken over and over by the same event would use
 * all of it (100 ticks). A bound on CPU use, not on speed.
 */
static void assert_daemon_idle(const Daemon *d) {
        uint64_t before = daemon_cpu_ticks(d), used;

        (void) poll(NULL, 0, 1000);
        used = daemon_cpu_ticks(d) - before;
        ck_assert_msg(used < 40, "the daemon used %" PRIu64 " ticks of CPU in a second of nothing to do", used);
}

/*
 * Mount a StallFs in a mount namespace of the test's own (the mount goes
 * with it, whatever becomes of the test) and start a target that maps its
 * file: the target's pid, and in *ret_addr where the file is mapped.
 */
static pid_t stalled_target(StallFs *fs, uint64_t *ret_addr) {
        uint64_t addr = 0;
        int ready[2];
        pid_t target;

        ck_assert_int_eq(unshare(CLONE_NEWNS), 0);
        ck_assert_int_eq(mount(NULL, "/", NULL, MS_REC|MS_PRIVATE, NULL), 0);
        ck_assert_int_eq(stall_fs_mount(fs, run_dir), 0);

        ck_assert_int_eq(pipe2(ready, O_CLOEXEC), 0);
        target = fork_child();
        if (target == 0) {
                int fd = open(fs->file, O_RDONLY|O_CLOEXEC);
                void *p;

                CHILD_CHECK(fd >= 0);
                p = mmap(NULL, 8192, PROT_READ, MAP_PRIVATE, fd, 0);
                CHILD_CHECK(p != MAP_FAILED);
                addr = (uintptr_t) p;
                CHILD_CHECK(write(ready[1], &addr, sizeof(addr)) == sizeof(addr));
                for (;;)
                        pause();
        }
        close(ready[1]);
        ck_assert_int_eq(read(ready[0], &addr, sizeof(addr)), sizeof(addr));
        close(ready[0]);
        *ret_addr = addr;
        return target;
}

START_TEST(test_stalled_target) {
        Daemon *d = daemon_start(ARGS("--idle-timeout", "10", "--request-timeout", "2"));
        TestChild *tc = spawn_test_child();
        _cleanup_(client_freep) Client *stuck = client_connect(d), *other = client_connect(d), *gone = NULL;
        _cleanup_(json_object_putp) struct json_object *r = NULL, *idle = NULL;
        _cleanup_free_ char *msg = NULL, *m = NULL;
        char exe[PATH_MAX];
        uint64_t addr = 0;
        int64_t deadline;
        StallFs fs;
        pid_t target;
        int k;

        target = stalled_target(&fs, &addr);
        test_self_exe(exe);

        /* What the daemon holds when nothing but a GetStatus runs. */
        idle = get_status(other);

        msg = normalize_one(target, addr + 16);
        ck_assert_int_eq(client_send(stuck, msg), 0);
        ck_assert_int_eq(stall_fs_wait_read(&fs, TIMEOUT_MS), 0);

        /* The daemon is inside the read. Others are served, the stuck client waits. */
        for (unsigned i = 0; i < 3; i++) {
                _cleanup_free_ char *own = normalize_one(tc->pid, (uintptr_t) test_marker_function);

                r = client_call(other, "%s", own);
                ck_assert_pstr_eq(single_module_path(r), exe);
                r = (json_object_put(r), NULL);
                r = get_status(other);
                r = (json_object_put(r), NULL);
        }
        assert_serves(d);

        /* After --request-timeout, the daemon gives up on it; the connection goes on. */
        r = (json_object_put(r), NULL);
        r = client_reply(stuck);
        ck_assert_int_eq(json_get_u64(reply_error(r, "io.vmaq.TimedOut"), "limit"), 2000000);
        r = (json_object_put(r), NULL);
        r = get_status(stuck);
        ck_assert_uint_eq(status_cache(r, "refused", "timeouts"), 1);
        /* Its worker is still inside the read. */
        ck_assert_uint_ge(status_cache(r, "workers", "used"), 2);
        r = (json_object_put(r), NULL);

        /* A client that hangs up while its request waits: nothing to answer, nothing to spin on. */
        gone = client_connect(d);
        {
                _cleanup_(json_object_putp) struct json_object *s0 = get_status(other);
                deadline = now_ms() + TIMEOUT_MS;

                ck_assert_int_eq(client_send(gone, msg), 0);
                /* Its request is being handled (it waits for the same page) once it is counted. */
                for (;;) {
                        _cleanup_(json_object_putp) struct json_object *s1 = get_status(other);

                        /* The GetStatus itself counts one. */
                        if (status_field(s1, "requests") - status_field(s0, "requests") >= 2)
                                break;
                        ck_assert_msg(remaining_ms(deadline) > 0, "the request was never taken up");
                        (void) poll(NULL, 0, 10);
                }
        }
        gone = client_free(gone);
        assert_daemon_idle(d);

        /* The target dies while its process is in use: its cache entry goes, nothing spins either. */
        kill(target, SIGKILL);
        (void) wait_child(target, TIMEOUT_MS);
        assert_daemon_idle(d);

        /*
         * The file system goes away: the reads fail, the workers come back,
         * and what they held is given back. The late answer goes nowhere.
         */
        stall_fs_unmount(&fs);
        deadline = now_ms() + TIMEOUT_MS;
        for (;;) {
                r = get_status(other);
                if (status_cache(r, "workers", "used") == 1 &&
                    status_cache(r, "memory", "used") == status_cache(idle, "memory", "used"))
                        break;
                ck_assert_msg(remaining_ms(deadline) > 0, "still held: %s", json_object_to_json_string(r));
                r = (json_object_put(r), NULL);
                (void) poll(NULL, 0, 20);
        }
        k = client_read(stuck, NO_REPLY_MS, &m);
        ck_assert_msg(k != 1, "late answer: %s", m);
        assert_serves(d);
        test_child_stop(tc);
        daemon_stop(d);
}
END_TEST

/*
 * A request stuck past its deadline holds its thread, not the others'
 * places. With one worker, root's request stuck in a FUSE read, whose
 * client hung up, would keep every other user waiting for as long as the
 * file system holds it; after --request-timeout it runs on a spare thread
 * and nobody's call is answered. Root itself still waits: its share is
 * its stuck request's.
 */
START_TEST(test_stuck_past_deadline) {
        Daemon *d = daemon_start(ARGS("--workers", "1", "--request-timeout", "1"));
        _cleanup_(client_freep) Client *stuck = client_connect(d), *other = NULL;
        _cleanup_(json_object_putp) struct json_object *r = NULL;
        _cleanup_free_ char *msg = NULL;
        uint64_t addr = 0;
        pid_t target, client;
        StallFs fs;

        target = stalled_target(&fs, &addr);

        /* Stuck in the read, and its client gone: no connection's timer will ever speak for it. */
        msg = normalize_one(target, addr + 16);
        ck_assert_int_eq(client_send(stuck, msg), 0);
        ck_assert_int_eq(stall_fs_wait_read(&fs, TIMEOUT_MS), 0);
        stuck = client_free(stuck);

        /* Another user is answered once the deadline is past, the read still held. */
        client = fork_child();
        if (client == 0) {
                Client *nc = NULL;
                struct json_object *info;

                drop_to_nobody();
                CHILD_CHECK(client_open(d->socket_path, 0, &nc) == 0);
                info = client_call_raw(nc, "{\"method\":\"org.varlink.service.GetInfo\"}", CLIENT_TIMEOUT_MS);
                CHILD_CHECK(info && json_object_object_get_ex(info, "parameters", NULL));
                _exit(EXIT_SUCCESS);
        }
        assert_child_ok(client, CLIENT_TIMEOUT_MS);

        /* Root's own share is its stuck request's: its next call waits for it to come back. */
        other = client_connect(d);
        ck_assert_int_eq(client_send(other, "{\"method\":\"org.varlink.service.GetInfo\"}"), 0);
        {
                _cleanup_free_ char *m = NULL;
                int k = client_read(other, NO_REPLY_MS, &m);

                ck_assert_msg(k != 1, "answered while its share was held: %s", m);
        }
        stall_fs_unmount(&fs);
        r = client_reply(other);
        ck_assert(json_object_object_get_ex(r, "parameters", NULL));

        kill(target, SIGKILL);
        (void) wait_child(target, TIMEOUT_MS);
        assert_serves(d);
        daemon_stop(d);
}
END_TEST

/* The daemon's resident memory, "VmRSS" or its peak "VmHWM", in KiB. */
static uint64_t daemon_memory_kib(const Daemon *d, const char *field) {
        char path[64], line[256];
        uint64_t kib = 0;
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%d/status", (int) d->pid);
        f = fopen(path, "re");
        ck_assert_ptr_nonnull(f);
        while (fgets(line, sizeof(line), f))
                if (strncmp(line, field, strlen(field)) == 0 && line[strlen(field)] == ':')
                        ck_assert_int_eq(sscanf(line + strlen(field) + 1, "%" SCNu64, &kib), 1);
        fclose(f);
        ck_assert_uint_gt(kib, 0);
        return kib;
}

/*
 * 256 connections each send a message near the size limit and read
 * nothing. The daemon holds no more than its memory budget for them: the
 * messages that do not fit are refused with MemoryLimitReached, the
 * daemon's resident memory grows by at most the budget, one input chunk
 * per connection and some slack, and another connection is answered. Scaled-down limits, so that the test moves megabytes, not
 * gigabytes.
 */
START_TEST(test_memory_budget) {
        const size_t budget = 16U << 20, n = 256, size = 1000000;
        Daemon *d = daemon_start(ARGS("--max-message-size", "1048576", "--max-addresses", "1000",
                                      "--max-reply-size", "65536", "--max-memory", "16777216"));
        static const char call[] = "{\"method\":\"io.vmaq.GetStatus\"}";
        _cleanup_(client_freep) Client *other = client_connect(d);
        _cleanup_(json_object_putp) struct json_object *r = NULL;
        _cleanup_free_ char *msg = malloc(size + sizeof(call));
        static const char info[] = "{\"method\":\"org.varlink.service.GetInfo\"}";
        _cleanup_free_ char *m = NULL;
        Client *clients[256] = {};
        size_t sent[256] = {}, n_done = 0, n_refused = 0, n_answered = 0;
        bool asked = false;
        uint64_t before, peak;
        int64_t deadline;

        ck_assert_ptr_nonnull(msg);
        memset(msg, ' ', size);
        memcpy(msg + size, call, sizeof(call));         /* with its NUL */
        before = daemon_memory_kib(d, "VmRSS");

        for (size_t i = 0; i < n; i++) {
                clients[i] = client_connect(d);
                ck_assert_int_eq(fcntl(clients[i]->fd, F_SETFL, O_NONBLOCK), 0);
        }

        /* Send all of each, or until the daemon closes it. */
        deadline = now_ms() + CLIENT_TIMEOUT_MS;
        while (n_done < n) {
                ck_assert_msg(remaining_ms(deadline) > 0, "%zu of %zu connections still sending", n - n_done, n);
                for (size_t i = 0; i < n; i++) {
                        ssize_t k;

                        if (sent[i] == SIZE_MAX || sent[i] == size + sizeof(call))
                                continue;
                        k = send(clients[i]->fd, msg + sent[i], size + sizeof(call) - sent[i], MSG_NOSIGNAL);
                        if (k < 0 && IN_SET(errno, EPIPE, ECONNRESET)) {
                                sent[i] = SIZE_MAX;
                                n_done++;
                                continue;
                        }
                        ck_assert_msg(k >= 0 || errno == EAGAIN, "send: %m");
                        if (k > 0) {
                                sent[i] += (size_t) k;
                                if (sent[i] == size + sizeof(call))
                                        n_done++;
                        }
                }
                /*
                 * Another connection asks meanwhile, without waiting: of the
                 * same user, its request may wait for the memory the partial
                 * messages hold until they are refused or complete.
                 */
                if (!asked) {
                        ck_assert_int_eq(client_send(other, info), 0);
                        asked = true;
                }
                if (client_read(other, 0, &m) == 1) {
                        ck_assert_ptr_nonnull(strstr(m, "\"version\":\"" PACKAGE_VERSION "\""));
                        m = mfree(m);
                        asked = false;
                        n_answered++;
                }
        }
        if (asked) {
                ck_assert_int_eq(client_read(other, TIMEOUT_MS, &m), 1);
                ck_assert_ptr_nonnull(strstr(m, "\"version\":\"" PACKAGE_VERSION "\""));
                n_answered++;
        }
        ck_assert_uint_ge(n_answered, 1);

        /* The refused were told why before their connection closed. */
        for (size_t i = 0; i < n; i++) {
                _cleanup_free_ char *reason = NULL;

                ck_assert_int_eq(fcntl(clients[i]->fd, F_SETFL, 0), 0);
                if (sent[i] == SIZE_MAX) {
                        int k = client_read(clients[i], TIMEOUT_MS, &reason);

                        ck_assert_msg(k == 1, "refused without a reason: %s", k == 0 ? "EOF" : strerror(-k));
                        ck_assert_msg(strstr(reason, "\"error\":\"io.vmaq.MemoryLimitReached\""), "%s", reason);
                        n_refused++;
                }
        }
        ck_assert_uint_gt(n_refused, 0);

        r = (json_object_put(r), NULL);
        r = get_status(other);
        ck_assert_uint_ge(status_cache(r, "refused", "memory"), n_refused);
        ck_assert_uint_le(status_cache(r, "memory", "used"), budget);
        peak = daemon_memory_kib(d, "VmHWM");
#if TEST_ASAN
        /* ASan's quarantine and shadow memory: the resident size measures ASan, not the budget. */
        (void) before;
        (void) peak;
#else
        ck_assert_msg(peak - before <= (budget + n * READ_CHUNK_BYTES + (16U << 20)) / 1024,
                      "grew by %" PRIu64 " KiB", peak - before);
#endif

        for (size_t i = 0; i < n; i++)
                client_free(clients[i]);
        assert_serves(d);
        daemon_stop(d);
}
END_TEST

/*
 * Messages near the size limit whose values are costly to build: refused
 * before they are built, and what they took is given back afterwards.
 */
START_TEST(test_costly_messages) {
        static const char *const elements[] = { "{}", "[]", "0", "\"\"" };
        Daemon *d = daemon_start(NULL);
        uint64_t before, peak, after;
        const size_t size = 12U << 20;

        before = daemon_memory_kib(d, "VmRSS");
        for (size_t i = 0; i < ELEMENTSOF(elements); i++) {
                _cleanup_(client_freep) Client *c = client_connect(d);
                _cleanup_(json_object_putp) struct json_object *r = NULL;
                _cleanup_free_ char *msg = malloc(size + 128);
                size_t len, n = 0;

                ck_assert_ptr_nonnull(msg);
                n = (size_t) sprintf(msg, "{\"method\":\"io.vmaq.Normalize\",\"parameters\":{\"pid\":1,\"addresses\":[");
                len = strlen(elements[i]);
                while (n + len + 8 < size) {
                        memcpy(msg + n, elements[i], len);
                        n += len;
                        msg[n++] = ',';
                }
                memcpy(msg + n, "0]}}", 5);

                r = client_call(c, "%s", msg);
                ck_assert_str_eq(json_get_string(reply_error(r, "io.vmaq.RequestTooLarge"), "parameter"),
                                 "addresses");
        }
#if TEST_ASAN
        /* ASan keeps freed memory in quarantine: resident sizes say nothing about the daemon then. */
        daemon_stop(d);
        return;
#endif
        /* A 12 MiB message is read and copied once: far below what building it would have cost. */
        peak = daemon_memory_kib(d, "VmHWM");
        ck_assert_msg(peak < before + 64 * 1024, "peak %" PRIu64 " KiB from %" PRIu64, peak, before);

        /*
         * The connections are gone: so is their memory, bar what malloc keeps
         * (not the 12 MiB). The daemon gives it back at most once a second.
         */
        {
                _cleanup_(client_freep) Client *w = client_connect(d);
                int64_t deadline = now_ms() + TIMEOUT_MS;

                wait_connections(w, 1);
                while ((after = daemon_memory_kib(d, "VmRSS")) >= before + 8 * 1024 && remaining_ms(deadline) > 0)
                        (void) poll(NULL, 0, 100);
        }
        ck_assert_msg(after < before + 8 * 1024, "resident %" PRIu64 " KiB from %" PRIu64, after, before);
        daemon_stop(d);
}
END_TEST

/* A flood of oneway calls on one connection does not make another client wait for it. */
START_TEST(test_oneway_flood_fair) {
        Daemon *d = daemon_start(NULL);
        TestChild *tc = spawn_test_child();
        _cleanup_(client_freep) Client *flooder = client_connect(d), *other = client_connect(d);
        _cleanup_(json_object_putp) struct json_object *s1 = NULL, *s2 = NULL;
        _cleanup_free_ char *call = NULL, *calls = NULL;
        const size_t n = 3000;
        size_t len;

        ck_assert_int_ge(asprintf(&call, "{\"method\":\"io.vmaq.ListMappings\",\"oneway\":true,"
                                         "\"parameters\":{\"pid\":%d}}", (int) tc->pid), 0);
        len = strlen(call) + 1;
        calls = malloc(n * len);
        ck_assert_ptr_nonnull(calls);
        for (size_t i = 0; i < n; i++)
                memcpy(calls + i * len, call, len);

        s1 = get_status(other);
        ck_assert_int_eq(client_send_raw(flooder, calls, n * len), 0);
        s2 = get_status(other);

        /* Answered in its turn, not after the flood: few of the flood's calls ran before it. */
        ck_assert_uint_lt(status_field(s2, "requests") - status_field(s1, "requests"), n / 10);

        test_child_stop(tc);
        daemon_stop(d);
}
END_TEST

/* --- the suite --------------------------------------------------------------- */

/*
 * The groups that need root are tagged "root" and run on their own, in
 * tests/test-daemon-root-*, built with TEST_ROOT_GROUPS: without root that
 * program exits 77, so they show up as SKIP rather than vanish from a run.
 */
#ifndef TEST_ROOT_GROUPS
#define TEST_ROOT_GROUPS 0
#endif

static TCase *tcase(Suite *s, const char *name) {
        TCase *tc = tcase_create(name);

        tcase_set_timeout(tc, TEST_TIMEOUT_SEC);
        suite_add_tcase(s, tc);
        return tc;
}

/* A group that needs root, for the reason @why. */
static TCase *root_tcase(Suite *s, const char *name, const char *why) {
        TCase *tc = tcase(s, name);

        tcase_set_tags(tc, "root");
        if (TEST_ROOT_GROUPS && geteuid() != 0)
                fprintf(stderr, "SKIP: %s: %s\n", name, why);
        return tc;
}

static Suite *daemon_suite(void) {
        _cleanup_free_ char *activate = find_in_path("systemd-socket-activate");
        Suite *s = suite_create("daemon-" TEST_BACKEND);
        TCase *tc;

        tc = tcase(s, "varlink-service");
        tcase_add_test(tc, test_get_info);
        tcase_add_test(tc, test_interface_description);

        tc = tcase(s, "normalize");
        tcase_add_test(tc, test_normalize_matches_core);
        tcase_add_test(tc, test_normalize_htlhash);
        tcase_add_test(tc, test_normalize_address_strings);
        tcase_add_test(tc, test_normalize_options);

        tc = tcase(s, "list-mappings");
        tcase_add_test(tc, test_list_mappings);
        tcase_add_test(tc, test_list_mappings_parts);
        tcase_add_test(tc, test_normalize_reply_too_large);
        tcase_add_test(tc, test_build_id_reads_capped);
        tcase_add_test(tc, test_list_mappings_exec_loop);

        tc = tcase(s, "status");
        tcase_add_test(tc, test_status_counters);
        tcase_add_test(tc, test_status_connections);
        tcase_add_test(tc, test_proc_cache_bounded);

        tc = tcase(s, "framing");
        tcase_add_test(tc, test_pipelined);
        tcase_add_test(tc, test_oneway);
        tcase_add_test(tc, test_more);
        tcase_add_test(tc, test_normalize_stream);
        tcase_add_test(tc, test_split_and_eof);

        tc = tcase(s, "bad-input");
        tcase_add_test(tc, test_invalid_messages);
        tcase_add_test(tc, test_eof_inside_message);
        tcase_add_test(tc, test_unknown_method_and_interface);
        tcase_add_test(tc, test_invalid_parameters);

        tc = tcase(s, "limits");
        tcase_add_test(tc, test_too_many_addresses);
        tcase_add_test(tc, test_message_too_large);
        tcase_add_test(tc, test_max_connections);

        tc = root_tcase(s, "access-control", "needs root to become nobody");
        tcase_add_test(tc, test_access_nobody);
        tcase_add_test(tc, test_access_non_dumpable);
        tcase_add_test(tc, test_post_mortem_access);

        tc = tcase(s, "post-mortem");
        tcase_add_test(tc, test_post_mortem);
        tcase_add_test(tc, test_post_mortem_expiry);
        tcase_add_test(tc, test_post_mortem_memory);
        tcase_add_test(tc, test_post_mortem_pidfd);

        tc = tcase(s, "lifecycle");
        tcase_add_test(tc, test_exit_between_calls);
        tcase_add_test(tc, test_exec_between_calls);
        tcase_add_test(tc, test_pinned_start_time);
        tcase_add_test(tc, test_zombie);

        tc = tcase(s, "concurrency");
        tcase_add_test(tc, test_many_clients);

        tc = tcase(s, "slow-clients");
        tcase_add_test(tc, test_stuck_reader);
        tcase_add_test(tc, test_stop_flushes_replies);
        tcase_add_test(tc, test_idle_timeout);
        tcase_add_test(tc, test_stuck_reader_timeout);

        tc = root_tcase(s, "post-mortem-reuse", "clone3() with set_tid needs root");
        tcase_add_test(tc, test_post_mortem_pid_reuse);

        tc = root_tcase(s, "pid-namespace", "unshare(CLONE_NEWPID) needs root");
        tcase_add_test(tc, test_foreign_pid_namespace);
        tcase_add_test(tc, test_foreign_post_mortem);
        tcase_add_test(tc, test_host_path);
        tc = tcase(s, "unresolved-pid-namespace");
        tcase_add_test(tc, test_unresolved_pid_namespace);

        tc = tcase(s, "fds");
        tcase_add_test(tc, test_fd_maps);
        tcase_add_test(tc, test_fd_pidfd);
        tcase_add_test(tc, test_fd_wrong);

        tc = root_tcase(s, "fds-root", "needs root to become nobody and to unshare(CLONE_NEWPID)");
        tcase_add_test(tc, test_fd_maps_unprivileged);
        tcase_add_test(tc, test_fd_pidfd_foreign);

        tc = tcase(s, "service");
        tcase_add_test(tc, test_notify);
        tcase_add_test(tc, test_fd_limit);

        tc = tcase(s, "hostile");
        tcase_add_test(tc, test_trickle_timeout);
        tcase_add_test(tc, test_thread_id);
        tcase_add_test(tc, test_socket_dir_writable);
        tcase_add_test(tc, test_accept_out_of_fds);
        tcase_add_test(tc, test_oneway_flood_fair);
        tcase_add_test(tc, test_costly_messages);
        tcase_add_test(tc, test_memory_budget);

        tc = root_tcase(s, "hostile-denied", "needs root to become nobody");
        tcase_set_timeout(tc, 4 * TEST_TIMEOUT_SEC);
        tcase_add_test(tc, test_denied_learns_nothing);
        tcase_add_test(tc, test_setuid_exec_race);

        tc = root_tcase(s, "quotas", "needs root to connect as several users");
        tcase_set_timeout(tc, 4 * TEST_TIMEOUT_SEC);
        tcase_add_test(tc, test_connection_shares);

        tc = root_tcase(s, "hostile-stalled", "needs root to mount a FUSE file system");
        if (access("/dev/fuse", R_OK|W_OK) >= 0) {
                tcase_add_test(tc, test_stalled_target);
                tcase_add_test(tc, test_stuck_past_deadline);
        } else if (geteuid() == 0)
                fprintf(stderr, "NOTE: hostile-stalled: no /dev/fuse, the stalled target tests do not run\n");

        tc = tcase(s, "socket");
        if (activate)
                tcase_add_test(tc, test_socket_activation);
        else
                fprintf(stderr, "NOTE: socket activation not tested: no systemd-socket-activate\n");
        tcase_add_test(tc, test_stale_socket);
        tcase_add_test(tc, test_live_instance);
        tcase_add_test(tc, test_path_not_a_socket);

        return s;
}

int main(void) {
        Suite *s;
        int r;

        vmaqd_path = getenv("VMAQD");
        if (!vmaqd_path || vmaqd_path[0] != '/') {
                fprintf(stderr, "Set VMAQD to the absolute path of the vmaqd to test (make check does).\n");
                return EXIT_FAILURE;
        }
        if (access(vmaqd_path, X_OK) < 0) {
                fprintf(stderr, "VMAQD='%s' is not executable: %m\n", vmaqd_path);
                return EXIT_FAILURE;
        }

        r = vma_backend_probe();
        if (r < 0) {
                fprintf(stderr, "Cannot probe for PROCMAP_QUERY: %s\n", strerror(-r));
                return EXIT_FAILURE;
        }
        if (r == 0 && streq(TEST_BACKEND, "ioctl")) {
                fprintf(stderr, "SKIP: this kernel lacks the PROCMAP_QUERY ioctl (Linux >= 6.11)\n");
                return 77;
        }

        strcpy(run_dir, "/tmp/vmaqd-test-XXXXXX");
        if (!mkdtemp(run_dir) || chmod(run_dir, 0755) < 0) {
                fprintf(stderr, "Failed to create a temporary directory: %m\n");
                return EXIT_FAILURE;
        }

        daemon_setup(vmaqd_path, run_dir, ARGS("--backend", TEST_BACKEND));
        s = daemon_suite();
        if (TEST_ROOT_GROUPS && geteuid() != 0) {
                /* daemon_suite() said which groups and why. */
                srunner_free(srunner_create(s));
                daemon_cleanup_run_dir();
                return 77;
        }
        r = TEST_ROOT_GROUPS ? check_run_tagged(s, "root", NULL) : check_run_tagged(s, NULL, "root");
        daemon_cleanup_run_dir();
        return r;
}
