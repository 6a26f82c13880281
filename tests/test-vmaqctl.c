/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * vmaqctl end to end: start the built vmaqd ($VMAQD) on a private socket,
 * run the built vmaqctl ($VMAQCTL, in the build tree a libtool wrapper
 * script) against it and check its output, standard error and exit code.
 * Its answers are compared with what the core computes in this process for
 * the same batch.
 *
 * Every daemon and every vmaqctl dies with this process
 * (PR_SET_PDEATHSIG), and every wait is bounded.
 */

#include <assert.h>
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check-run.h"
#include "macro.h"
#include "proc.h"
#include "test-daemon-util.h"
#include "test-util.h"
#include "vma.h"

/* Every wait in this file is bounded by this; none is a timing assertion. */
#define TIMEOUT_MS 20000
#define TEST_TIMEOUT_SEC 120

#define EXIT_DAEMON_ERROR 1
#define EXIT_USAGE 2
#define EXIT_UNREACHABLE 3

#define startswith(s, prefix) (strncmp((s), (prefix), strlen(prefix)) == 0)

static const char *vmaqd_path;
static const char *vmaqctl_path;
static char run_dir[64];

/* --- running vmaqctl ------------------------------------------------------------ */

typedef struct Run {
        int exit_code;                  /* -1 if it did not exit normally */
        char *out;
        size_t out_len;
        char *err;
        size_t err_len;
        long maxrss_kib;                /* its peak resident memory */
} Run;

static void run_done(Run *r) {
        free(r->out);
        free(r->err);
        *r = (Run) {};
}

static void append(char **buf, size_t *len, const char *data, size_t n) {
        char *p = realloc(*buf, *len + n + 1);

        ck_assert_ptr_nonnull(p);
        memcpy(p + *len, data, n);
        *len += n;
        p[*len] = '\0';
        *buf = p;
}

typedef struct RunOptions {
        const char *input;              /* written to its stdin; NULL: /dev/null */
        const char *vmaq_socket;        /* $VMAQ_SOCKET; NULL: unset */
        uid_t uid;                      /* run as this user; 0: as we are */
} RunOptions;

/* Run vmaqctl with @args (NULL-terminated), capturing stdout and stderr. */
static void ctl_run_opts(const RunOptions *o, const char *const *args, Run *ret) {
        int out[2], err[2], in[2] = { -EBADF, -EBADF };
        const char *argv[64];
        size_t n = 0, in_off = 0, in_len = o->input ? strlen(o->input) : 0;
        int64_t deadline = now_ms() + TIMEOUT_MS;
        _cleanup_close_ int pidfd = -EBADF;
        bool out_open = true, err_open = true;
        int status;
        pid_t pid;

        argv[n++] = vmaqctl_path;
        for (size_t i = 0; args[i]; i++) {
                ck_assert_uint_lt(n, ELEMENTSOF(argv) - 1);
                argv[n++] = args[i];
        }
        argv[n] = NULL;

        *ret = (Run) { .exit_code = -1 };
        append(&ret->out, &ret->out_len, "", 0);
        append(&ret->err, &ret->err_len, "", 0);

        ck_assert_int_eq(pipe2(out, O_CLOEXEC), 0);
        ck_assert_int_eq(pipe2(err, O_CLOEXEC), 0);
        if (o->input)
                ck_assert_int_eq(pipe2(in, O_CLOEXEC), 0);

        pid = fork_child();
        if (pid == 0) {
                int fd = o->input ? in[0] : open("/dev/null", O_RDONLY|O_CLOEXEC);

                if (fd < 0 || dup2(fd, STDIN_FILENO) < 0 || dup2(out[1], STDOUT_FILENO) < 0 ||
                    dup2(err[1], STDERR_FILENO) < 0)
                        _exit(127);
                if (o->vmaq_socket ? setenv("VMAQ_SOCKET", o->vmaq_socket, 1) < 0 : unsetenv("VMAQ_SOCKET") < 0)
                        _exit(127);
                if (o->uid != 0 && (setgroups(0, NULL) < 0 || setresgid(o->uid, o->uid, o->uid) < 0 ||
                                    setresuid(o->uid, o->uid, o->uid) < 0))
                        _exit(127);
                execv(argv[0], (char *const *) argv);
                fprintf(stderr, "Failed to execute '%s': %m\n", argv[0]);
                _exit(127);
        }
        pidfd = pidfd_open(pid, 0);
        ck_assert_int_ge(pidfd, 0);
        close(out[1]);
        close(err[1]);
        if (o->input) {
                close(in[0]);
                ck_assert_int_eq(fcntl(in[1], F_SETFL, O_NONBLOCK), 0);
                if (in_len == 0)
                        in[1] = safe_close(in[1]);
        }

        /* stdin, stdout and stderr at once: a full pipe on either side must not block the other. */
        while (out_open || err_open) {
                struct pollfd p[3] = {
                        { .fd = out_open ? out[0] : -1, .events = POLLIN },
                        { .fd = err_open ? err[0] : -1, .events = POLLIN },
                        { .fd = in[1], .events = POLLOUT },
                };
                char buf[65536];
                ssize_t k;
                int r;

                r = poll(p, ELEMENTSOF(p), remaining_ms(deadline));
                if (r < 0 && errno == EINTR)
                        continue;
                ck_assert_int_ge(r, 0);
                ck_assert_msg(r > 0, "vmaqctl did not finish in time");

                if (p[0].revents) {
                        k = read(out[0], buf, sizeof(buf));
                        ck_assert_int_ge(k, 0);
                        if (k == 0)
                                out_open = false;
                        else
                                append(&ret->out, &ret->out_len, buf, (size_t) k);
                }
                if (p[1].revents) {
                        k = read(err[0], buf, sizeof(buf));
                        ck_assert_int_ge(k, 0);
                        if (k == 0)
                                err_open = false;
                        else
                                append(&ret->err, &ret->err_len, buf, (size_t) k);
                }
                if (in[1] >= 0 && p[2].revents) {
                        k = write(in[1], o->input + in_off, in_len - in_off);
                        if (k < 0 && errno == EAGAIN)
                                continue;
                        /* It may exit without reading everything (a usage error). */
                        if (k < 0 && errno == EPIPE) {
                                in[1] = safe_close(in[1]);
                                continue;
                        }
                        ck_assert_int_ge(k, 0);
                        in_off += (size_t) k;
                        if (in_off == in_len)
                                in[1] = safe_close(in[1]);
                }
        }
        safe_close(in[1]);
        close(out[0]);
        close(err[0]);

        {
                struct pollfd p = { .fd = pidfd, .events = POLLIN };
                int r;

                do
                        r = poll(&p, 1, remaining_ms(deadline));
                while (r < 0 && errno == EINTR);
                ck_assert_msg(r == 1, "vmaqctl did not exit in time");
        }
        {
                struct rusage ru;

                ck_assert_int_eq(wait4(pid, &status, 0, &ru), pid);
                ret->maxrss_kib = ru.ru_maxrss;
        }
        if (WIFEXITED(status))
                ret->exit_code = WEXITSTATUS(status);
        ck_assert_msg(ret->exit_code != 127, "could not run '%s': %s", vmaqctl_path, ret->err);
}

static void ctl_run(const char *const *args, Run *ret) {
        ctl_run_opts(&(RunOptions) {}, args, ret);
}

/* Run and require exit status @code; on a mismatch show what it printed. */
static void ctl_expect(const RunOptions *o, const char *const *args, int code, Run *ret) {
        ctl_run_opts(o ?: &(RunOptions) {}, args, ret);
        ck_assert_msg(ret->exit_code == code, "vmaqctl %s...: exit %d, expected %d\nstdout: %s\nstderr: %s",
                      args[0] ? args[0] : "", ret->exit_code, code, ret->out, ret->err);
}

/* The usual success: exit 0, nothing on stderr. */
static void ctl_ok(const char *const *args, Run *ret) {
        ctl_expect(NULL, args, 0, ret);
        ck_assert_msg(ret->err_len == 0, "vmaqctl wrote to stderr: %s", ret->err);
}

static struct json_object *parse_json(const char *text) {
        struct json_tokener *tok = json_tokener_new();
        struct json_object *o;
        size_t len = strlen(text);

        ck_assert_ptr_nonnull(tok);
        json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
        /* One document and a newline, nothing else. */
        ck_assert_uint_gt(len, 1);
        ck_assert_int_eq(text[len - 1], '\n');
        o = json_tokener_parse_ex(tok, text, (int) len - 1);
        ck_assert_msg(o && json_tokener_get_error(tok) == json_tokener_success, "invalid JSON: %s", text);
        ck_assert_uint_eq(json_tokener_get_parse_end(tok), len - 1);
        json_tokener_free(tok);
        return o;
}

static struct json_object *get(struct json_object *o, const char *key, json_type type) {
        struct json_object *v = NULL;

        ck_assert_msg(json_object_object_get_ex(o, key, &v), "no key '%s' in %s", key,
                      json_object_to_json_string(o));
        ck_assert_msg(json_object_is_type(v, type), "key '%s' has type %s", key,
                      json_type_to_name(json_object_get_type(v)));
        return v;
}

static uint64_t get_u64(struct json_object *o, const char *key) {
        struct json_object *v = get(o, key, json_type_int);

        /* json-c keeps integers above INT64_MAX exactly, as unsigned. */
        errno = 0;
        return json_object_get_uint64(v);
}

static const char *get_str(struct json_object *o, const char *key) {
        return json_object_get_string(get(o, key, json_type_string));
}

static bool get_bool(struct json_object *o, const char *key) {
        return json_object_get_boolean(get(o, key, json_type_boolean));
}

static void hex(const uint8_t *data, size_t n, char *ret) {
        for (size_t i = 0; i < n; i++)
                sprintf(ret + 2 * i, "%02x", data[i]);
        ret[2 * n] = '\0';
}

static VmaBackend core_backend(void) {
        VmaBackend b;

        ck_assert_int_eq(vma_backend_resolve(VMA_BACKEND_AUTO, &b), 0);
        return b;
}

static Normalization *core_normalize(pid_t pid, const uint64_t *addrs, size_t n, unsigned flags) {
        _cleanup_(proc_freep) Proc *p = NULL;
        /* As the daemon asks: ELF facts with build IDs. */
        NormalizeOptions opts = { .flags = flags | (flags & NORMALIZE_BUILD_IDS ? NORMALIZE_ELF : 0) };
        Normalization *ret = NULL;
        int r;

        r = proc_open(&p, pid, core_backend());
        ck_assert_msg(r == 0, "proc_open(%d): %s", (int) pid, strerror(-r));
        r = proc_normalize(p, addrs, n, &opts, &ret);
        ck_assert_msg(r == 0, "proc_normalize: %s", strerror(-r));
        return ret;
}

static char *xasprintf(const char *fmt, ...) __attribute__((__format__(__printf__, 1, 2)));
static char *xasprintf(const char *fmt, ...) {
        va_list ap;
        char *s;
        int r;

        va_start(ap, fmt);
        r = vasprintf(&s, fmt, ap);
        va_end(ap);
        ck_assert_int_ge(r, 0);
        return s;
}

static TestChild test_child;

static TestChild *spawn_test_child(void) {
        char path[PATH_MAX];
        FILE *f;

        fflush(NULL);
        test_child_spawn(&test_child);
        /* Noted for the runner to remove should the test fail. */
        snprintf(path, sizeof(path), "%s/test-child-dirs", run_dir);
        f = fopen(path, "ae");
        ck_assert_ptr_nonnull(f);
        fprintf(f, "%s\n", test_child.dir);
        ck_assert_int_eq(fclose(f), 0);
        return &test_child;
}

/* A pid that names no process: a child we reaped. */
static pid_t reaped_pid(void) {
        pid_t pid = fork_child();
        int status;

        if (pid == 0)
                _exit(0);
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        return pid;
}

/* --- tests: status ---------------------------------------------------------- */

/* Whether @s is a duration as systemctl prints it: "1h 2min 3s", or "250ms" under a second. */
static bool is_timespan(const char *s, size_t n) {
        static const char *const units[] = { "w", "d", "h", "min", "s" };
        size_t i = 0, next_unit = 0, k;

        k = strspn(s, "0123456789");
        if (k > 0 && k + 2 == n && strncmp(s + k, "ms", 2) == 0)
                return true;
        while (i < n) {
                bool found = false;

                if (i > 0 && s[i++] != ' ')
                        return false;
                k = strspn(s + i, "0123456789");
                if (k == 0)
                        return false;
                i += k;
                /* Each unit at most once, largest first. */
                for (; next_unit < ELEMENTSOF(units); next_unit++) {
                        size_t u = strlen(units[next_unit]);

                        if (i + u <= n && strncmp(s + i, units[next_unit], u) == 0 &&
                            (i + u == n || s[i + u] == ' ')) {
                                i += u;
                                next_unit++;
                                found = true;
                                break;
                        }
                }
                if (!found)
                        return false;
        }
        return n > 0;
}

/* Whether @s is a size as systemctl prints it: "512B" or "12.3M". */
static bool is_size(const char *s, size_t n) {
        size_t k = strspn(s, "0123456789");

        if (k == 0)
                return false;
        if (k + 1 == n && s[k] == 'B')
                return true;
        return k + 3 == n && s[k] == '.' && s[k + 1] >= '0' && s[k + 1] <= '9' && strchr("KMGTPE", s[k + 2]);
}

START_TEST(test_status_human) {
        Daemon *d = daemon_start(ARGS("--max-memory", "1610612736"));
        _cleanup_(run_done) Run r = {};
        static const char *const keys[] = {
                "uptime", "connections", "connections_max", "connections_per_user_max",
                "proc_cache_size", "proc_cache_max", "proc_cache_hits", "proc_cache_misses",
                "build_id_cache_size", "build_id_cache_max", "build_id_cache_hits", "build_id_cache_misses",
                "workers_used", "workers_max", "memory_used", "memory_max", "refused_connections",
                "refused_user_connections", "refused_memory", "refused_timeouts", "refused_idle",
                "requests", "errors", "denied", "max_addresses", "max_message_size", "max_reply_size",
                "snapshots_held", "snapshots_exited", "snapshot_memory_used", "snapshot_memory_max",
        };
        _cleanup_free_ char *version = xasprintf("version: %s\n", PACKAGE_VERSION);
        const char *p;
        size_t lines = 0;

        ctl_ok(ARGS("--socket", d->socket_path, "status"), &r);
        /* First the version and the backend, then the counters in documented order. */
        ck_assert_msg(strncmp(r.out, version, strlen(version)) == 0, "%s", r.out);
        p = r.out + strlen(version);
        ck_assert_msg(strncmp(p, "backend: ioctl\n", 15) == 0 || strncmp(p, "backend: text\n", 14) == 0,
                      "%s", r.out);
        p = strchr(p, '\n') + 1;
        for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
                size_t k = strlen(keys[i]);
                const char *e = strchr(p, '\n'), *v;
                size_t n;

                ck_assert_ptr_nonnull(e);
                ck_assert_msg(strncmp(p, keys[i], k) == 0 && p[k] == ':' && p[k + 1] == ' ',
                              "expected '%s: ' in line '%.*s'", keys[i], (int) (e - p), p);
                v = p + k + 2;
                n = (size_t) (e - v);
                /* The uptime as a duration, memory as sizes, the rest as counts. */
                if (streq(keys[i], "uptime"))
                        ck_assert_msg(is_timespan(v, n), "not a duration: '%.*s'", (int) (e - p), p);
                else if (startswith(keys[i], "memory_") || startswith(keys[i], "snapshot_memory_") ||
                         startswith(keys[i], "max_message") || startswith(keys[i], "max_reply"))
                        ck_assert_msg(is_size(v, n), "not a size: '%.*s'", (int) (e - p), p);
                else
                        ck_assert_msg(strspn(v, "0123456789") == n, "not a number: '%.*s'", (int) (e - p), p);
                p = e + 1;
        }
        ck_assert_str_eq(p, "");
        for (p = r.out; *p; p++)
                lines += *p == '\n';
        ck_assert_uint_eq(lines, 2 + ELEMENTSOF(keys));
        ck_assert_ptr_nonnull(strstr(r.out, "\nconnections: 1\n"));
        ck_assert_ptr_nonnull(strstr(r.out, "\nconnections_max: 4096\n"));
        ck_assert_ptr_nonnull(strstr(r.out, "\nconnections_per_user_max: 256\n"));
        /* 1.5 GiB. */
        ck_assert_ptr_nonnull(strstr(r.out, "\nmemory_max: 1.5G\n"));
        /* The limits of a call. */
        ck_assert_ptr_nonnull(strstr(r.out, "\nmax_addresses: 100000\n"));
        ck_assert_ptr_nonnull(strstr(r.out, "\nmax_message_size: 16.0M\n"));

        /* The checker itself. */
        ck_assert(is_timespan("1h 2min 3s", 10));
        ck_assert(is_timespan("250ms", 5));
        ck_assert(is_timespan("3s", 2));
        ck_assert(!is_timespan("3s 1h", 5));
        ck_assert(!is_timespan("1 h", 3));
        ck_assert(is_size("256.0M", 6));
        ck_assert(is_size("512B", 4));
        ck_assert(!is_size("12M", 3));

        daemon_stop(d);
}
END_TEST

START_TEST(test_status_json) {
        Daemon *d = daemon_start(NULL);
        _cleanup_(run_done) Run r = {};
        _cleanup_(json_object_putp) struct json_object *o = NULL;
        struct json_object *cache;
        const char *backend;

        /* --json is accepted before and after the command. */
        ctl_ok(ARGS("--socket", d->socket_path, "--json", "status"), &r);
        o = parse_json(r.out);
        ck_assert_int_eq(json_object_object_length(o), 16);
        ck_assert_uint_eq(get_u64(get(o, "limits", json_type_object), "max_addresses"), 100000);
        ck_assert_uint_eq(get_u64(get(o, "snapshots", json_type_object), "memory_max"), 16U << 20);
        ck_assert_str_eq(get_str(o, "version"), PACKAGE_VERSION);
        backend = get_str(o, "backend");
        ck_assert(streq(backend, "ioctl") || streq(backend, "text"));
        (void) get_u64(o, "uptime_usec");
        ck_assert_uint_eq(get_u64(o, "connections"), 1);
        ck_assert_uint_eq(get_u64(o, "connections_max"), 4096);
        cache = get(o, "proc_cache", json_type_object);
        ck_assert_int_eq(json_object_object_length(cache), 4);
        ck_assert_uint_eq(get_u64(cache, "max"), 1024);
        (void) get_u64(cache, "size");
        (void) get_u64(cache, "hits");
        (void) get_u64(cache, "misses");
        cache = get(o, "build_id_cache", json_type_object);
        ck_assert_int_eq(json_object_object_length(cache), 4);
        ck_assert_uint_eq(get_u64(cache, "max"), 4096);
        (void) get_u64(cache, "size");
        (void) get_u64(cache, "hits");
        (void) get_u64(cache, "misses");
        ck_assert_uint_eq(get_u64(o, "connections_per_user_max"), 256);
        cache = get(o, "workers", json_type_object);
        ck_assert_int_eq(json_object_object_length(cache), 2);
        ck_assert_uint_eq(get_u64(cache, "used"), 1);        /* the one answering */
        ck_assert_uint_eq(get_u64(cache, "max"), 16);
        cache = get(o, "memory", json_type_object);
        ck_assert_int_eq(json_object_object_length(cache), 2);
        ck_assert_uint_gt(get_u64(cache, "used"), 0);
        ck_assert_uint_eq(get_u64(cache, "max"), 256U << 20);
        cache = get(o, "refused", json_type_object);
        ck_assert_int_eq(json_object_object_length(cache), 5);
        ck_assert_uint_eq(get_u64(cache, "connections"), 0);
        ck_assert_uint_eq(get_u64(cache, "user_connections"), 0);
        ck_assert_uint_eq(get_u64(cache, "memory"), 0);
        ck_assert_uint_eq(get_u64(cache, "timeouts"), 0);
        ck_assert_uint_eq(get_u64(cache, "idle"), 0);
        ck_assert_uint_ge(get_u64(o, "requests"), 1);
        (void) get_u64(o, "errors");
        ck_assert_uint_eq(get_u64(o, "denied"), 0);
        run_done(&r);
        json_object_put(TAKE_PTR(o));

        ctl_ok(ARGS("status", "--json", "--socket", d->socket_path), &r);
        o = parse_json(r.out);
        ck_assert_str_eq(get_str(o, "version"), PACKAGE_VERSION);

        daemon_stop(d);
}
END_TEST

/* --- tests: normalize --------------------------------------------------------- */

/* The human line vmaqctl prints for result @i of @n. */
static char *expected_line(const Normalization *n, size_t i, uint64_t addr) {
        const NormResult *res = &n->results[i];
        const NormModule *m;
        char id[2 * BUILD_ID_MAX + 1], bid[2 * BUILD_ID_MAX + 32] = "";

        if (res->kind != NORM_MODULE)
                return xasprintf("0x%012" PRIx64 ": unknown (%s)\n", addr, norm_kind_to_string(res->kind));
        m = &n->modules[res->module];
        if (m->build_id_len > 0) {
                hex(m->build_id, m->build_id_len, id);
                snprintf(bid, sizeof(bid), " (build ID %s)", id);
        }
        return xasprintf("0x%012" PRIx64 ": file offset 0x%" PRIx64 " in %s%s%s\n", addr, res->offset, m->path,
                         m->deleted ? " (deleted)" : "", bid);
}

START_TEST(test_normalize_human) {
        Daemon *d = daemon_start(NULL);
        TestChild *tc = spawn_test_child();
        _cleanup_(normalization_freep) Normalization *n = NULL;
        _cleanup_(run_done) Run r = {};
        _cleanup_free_ char *pid = xasprintf("%d", (int) tc->pid);
        _cleanup_free_ char *expected = NULL;
        const uint64_t addrs[] = {
                tc->file_addr, tc->deleted_addr, tc->anon_addr, tc->unmapped_addr, tc->heap_addr,
                tc->stack_addr, tc->code_addr, tc->vdso_addr, 0xdeadbeef,
        };
        char a[ELEMENTSOF(addrs)][32];
        size_t len = 0;

        for (size_t i = 0; i < ELEMENTSOF(addrs); i++)
                snprintf(a[i], sizeof(a[i]), "0x%" PRIx64, addrs[i]);
        n = core_normalize(tc->pid, addrs, ELEMENTSOF(addrs), NORMALIZE_BUILD_IDS);
        ck_assert_int_eq(n->results[0].kind, NORM_MODULE);
        ck_assert_int_eq(n->results[1].kind, NORM_MODULE);
        ck_assert(n->modules[n->results[1].module].deleted);
        ck_assert_int_eq(n->results[2].kind, NORM_ANONYMOUS);
        ck_assert_int_eq(n->results[3].kind, NORM_UNMAPPED);
        ck_assert_int_eq(n->results[4].kind, NORM_SPECIAL);

        expected = strdup("");
        for (size_t i = 0; i < ELEMENTSOF(addrs); i++) {
                _cleanup_free_ char *line = expected_line(n, i, addrs[i]);

                append(&expected, &len, line, strlen(line));
        }

        ctl_ok(ARGS("--socket", d->socket_path, "normalize", pid, a[0], a[1], a[2], a[3], a[4], a[5], a[6],
                    a[7], a[8]), &r);
        ck_assert_str_eq(r.out, expected);
        run_done(&r);

        /* The documented forms: 12 hex digits, zero-padded; "2151214" is hex, as from perf script -F ip. */
        ctl_ok(ARGS("--socket", d->socket_path, "normalize", pid, "2151214"), &r);
        ck_assert_str_eq(r.out, "0x000002151214: unknown (unmapped)\n");
        run_done(&r);
        ctl_ok(ARGS("--socket", d->socket_path, "normalize", "--decimal", pid, "16"), &r);
        ck_assert_str_eq(r.out, "0x000000000010: unknown (unmapped)\n");
        run_done(&r);
        ctl_ok(ARGS("--socket", d->socket_path, "normalize", pid, "0xFFFFFFFFFFFFFFFF"), &r);
        ck_assert_str_eq(r.out, "0xffffffffffffffff: unknown (unmapped)\n");
        run_done(&r);

        /* --no-build-ids drops the build IDs. */
        {
                _cleanup_(normalization_freep) Normalization *nb = NULL;
                _cleanup_free_ char *line = NULL;

                nb = core_normalize(tc->pid, addrs, 1, 0);
                line = expected_line(nb, 0, addrs[0]);
                ctl_ok(ARGS("--socket", d->socket_path, "normalize", "--no-build-ids", pid, a[0]), &r);
                ck_assert_str_eq(r.out, line);
                ck_assert_ptr_null(strstr(r.out, "build ID"));
                run_done(&r);
        }

        test_child_stop(tc);
        daemon_stop(d);
}
END_TEST

/*
 * Check the --json output @text of normalize against the core's answer @n
 * for @addrs: exactly the documented keys, in input order.
 */
static void check_json_matches_core(const char *text, const Normalization *n, const uint64_t *addrs, size_t n_addrs,
                                    bool build_ids, bool map_files) {
        _cleanup_(json_object_putp) struct json_object *o = parse_json(text);
        struct json_object *results;

        ck_assert_int_eq(json_object_object_length(o), 3);
        ck_assert_int_eq((int) get_u64(o, "pid"), (int) n->pid);
        ck_assert_uint_eq(get_u64(o, "start_time"), n->start_time);
        results = get(o, "results", json_type_array);
        ck_assert_uint_eq(json_object_array_length(results), n_addrs);
        ck_assert_uint_eq(n->n_results, n_addrs);

        for (size_t i = 0; i < n_addrs; i++) {
                struct json_object *res = json_object_array_get_idx(results, i);
                const NormResult *nr = &n->results[i];
                struct json_object *bid;

                ck_assert(json_object_is_type(res, json_type_object));
                ck_assert_uint_eq(get_u64(res, "address"), addrs[i]);
                if (nr->kind != NORM_MODULE) {
                        ck_assert_int_eq(json_object_object_length(res), 2);
                        ck_assert_str_eq(get_str(res, "unknown"), norm_kind_to_string(nr->kind));
                        continue;
                }

                const NormModule *m = &n->modules[nr->module];

                /* The ELF address when the file has one for it, and nothing else. */
                if (nr->vaddr_status == NORM_VADDR_OK)
                        ck_assert_uint_eq(get_u64(res, "elf_address"), nr->vaddr);
                else
                        ck_assert(!json_object_object_get_ex(res, "elf_address", NULL));
                /* Its file's ELF type, when the file is ELF; the test's files have no Go build ID. */
                if (m->elf_status == NORM_VADDR_OK && IN_SET(m->elf->type, ELF_TYPE_EXEC, ELF_TYPE_DYN))
                        ck_assert_str_eq(get_str(res, "elf_type"), elf_type_to_string(m->elf->type));
                else
                        ck_assert(!json_object_object_get_ex(res, "elf_type", NULL));
                ck_assert(!json_object_object_get_ex(res, "go_build_id", NULL));
                ck_assert_int_eq(json_object_object_length(res),
                                 (map_files ? 10 : 9) + (nr->vaddr_status == NORM_VADDR_OK) +
                                 json_object_object_get_ex(res, "elf_type", NULL));
                ck_assert_str_eq(get_str(res, "path"), m->path);
                ck_assert_uint_eq(get_u64(res, "offset"), nr->offset);
                ck_assert_int_eq(get_bool(res, "deleted"), m->deleted);
                /* The file's identity, and whether the offset is into the vDSO image. */
                ck_assert_int_eq(get_bool(res, "vdso"), m->vdso);
                ck_assert_uint_eq(get_u64(res, "dev_major"), m->dev_major);
                ck_assert_uint_eq(get_u64(res, "dev_minor"), m->dev_minor);
                ck_assert_uint_eq(get_u64(res, "inode"), m->inode);
                ck_assert(json_object_object_get_ex(res, "build_id", &bid));
                if (m->build_id_len > 0) {
                        char id[2 * BUILD_ID_MAX + 1];

                        ck_assert(build_ids);
                        hex(m->build_id, m->build_id_len, id);
                        ck_assert_str_eq(get_str(res, "build_id"), id);
                } else
                        ck_assert_msg(bid == NULL, "build_id should be null: %s", json_object_to_json_string(res));
                if (map_files) {
                        struct json_object *mf;

                        ck_assert(json_object_object_get_ex(res, "map_files", &mf));
                        if (m->map_files)
                                ck_assert_str_eq(get_str(res, "map_files"), m->map_files);
                        else
                                ck_assert_ptr_null(mf);
                }
        }
}

START_TEST(test_normalize_json) {
        Daemon *d = daemon_start(NULL);
        TestChild *tc = spawn_test_child();
        _cleanup_(normalization_freep) Normalization *n = NULL;
        _cleanup_(run_done) Run r = {};
        _cleanup_free_ char *pid = xasprintf("%d", (int) tc->pid);
        uint64_t page = test_page_size();
        /* Out of order, with duplicates, the extremes and every kind of answer. */
        const uint64_t addrs[] = {
                tc->code_addr, tc->file_addr + page + 7, tc->unmapped_addr, tc->file_addr, tc->deleted_addr,
                tc->code_addr, tc->anon_addr, tc->heap_addr, tc->stack_addr, tc->vdso_addr + 16, 0,
                UINT64_MAX, UINT64_C(1) << 63, tc->file_addr + page + 7,
        };
        char a[ELEMENTSOF(addrs)][32];
        bool has_build_id = false;

        for (size_t i = 0; i < ELEMENTSOF(addrs); i++)
                /* Hex with and without 0x, as perf script prints it. */
                snprintf(a[i], sizeof(a[i]), i % 2 ? "%" PRIx64 : "0x%" PRIx64, addrs[i]);
        n = core_normalize(tc->pid, addrs, ELEMENTSOF(addrs), NORMALIZE_BUILD_IDS);
        for (size_t i = 0; i < n->n_modules; i++)
                has_build_id = has_build_id || n->modules[i].build_id_len > 0;
        ck_assert(has_build_id);

        ctl_ok(ARGS("--socket", d->socket_path, "--json", "normalize", pid, a[0], a[1], a[2], a[3], a[4], a[5],
                    a[6], a[7], a[8], a[9], a[10], a[11], a[12], a[13]), &r);
        check_json_matches_core(r.out, n, addrs, ELEMENTSOF(addrs), true, false);
        run_done(&r);

        /* --no-build-ids: every build_id is null. */
        {
                _cleanup_(normalization_freep) Normalization *nb = NULL;

                nb = core_normalize(tc->pid, addrs, ELEMENTSOF(addrs), 0);
                ctl_ok(ARGS("--socket", d->socket_path, "--json", "normalize", "--no-build-ids", pid, a[0], a[1],
                            a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11], a[12], a[13]), &r);
                check_json_matches_core(r.out, nb, addrs, ELEMENTSOF(addrs), false, false);
                ck_assert_ptr_null(strstr(r.out, "\"build_id\": \""));
                run_done(&r);
        }

        /* --map-files adds map_files to each result in a file. */
        {
                _cleanup_(normalization_freep) Normalization *nm = NULL;

                nm = core_normalize(tc->pid, addrs, 4, NORMALIZE_BUILD_IDS | NORMALIZE_MAP_FILES);
                ctl_ok(ARGS("--socket", d->socket_path, "normalize", "--json", "--map-files", pid, a[0], a[1],
                            a[2], a[3]), &r);
                check_json_matches_core(r.out, nm, addrs, 4, true, true);
                run_done(&r);
        }

        test_child_stop(tc);
        daemon_stop(d);
}
END_TEST

START_TEST(test_normalize_start_time) {
        Daemon *d = daemon_start(NULL);
        TestChild *tc = spawn_test_child();
        _cleanup_(normalization_freep) Normalization *n = NULL;
        _cleanup_(run_done) Run r = {};
        _cleanup_free_ char *pid = xasprintf("%d", (int) tc->pid);
        _cleanup_free_ char *a = xasprintf("0x%" PRIx64, tc->file_addr);
        _cleanup_free_ char *st = NULL, *wrong = NULL, *msg = NULL;

        n = core_normalize(tc->pid, &tc->file_addr, 1, NORMALIZE_BUILD_IDS);
        st = xasprintf("%" PRIu64, n->start_time);
        wrong = xasprintf("%" PRIu64, n->start_time + 1);

        ctl_ok(ARGS("--socket", d->socket_path, "--json", "normalize", "--start-time", st, pid, a), &r);
        check_json_matches_core(r.out, n, &tc->file_addr, 1, true, false);
        run_done(&r);

        ctl_expect(NULL, ARGS("--socket", d->socket_path, "normalize", "--start-time", wrong, pid, a),
                   EXIT_DAEMON_ERROR, &r);
        ck_assert_str_eq(r.out, "");
        /* Said once, not "process changed: ...: process changed: ...". */
        msg = xasprintf("vmaqctl: process changed: pid %s is no longer the process started at %s: "
                        "pid %s now has start time %" PRIu64 " (io.vmaq.ProcessChanged)\n", pid, wrong, pid,
                        n->start_time);
        ck_assert_str_eq(r.err, msg);

        test_child_stop(tc);
        daemon_stop(d);
}
END_TEST

/* --pidfd and --maps-fd: the same answer, the process sent as an fd of ours. */
START_TEST(test_normalize_fds) {
        Daemon *d = daemon_start(NULL);
        TestChild *tc = spawn_test_child();
        _cleanup_(normalization_freep) Normalization *n = NULL;
        _cleanup_(run_done) Run plain = {}, by_pidfd = {}, by_maps = {}, json = {}, gone = {};
        _cleanup_free_ char *pid = xasprintf("%d", (int) tc->pid);
        _cleanup_free_ char *a = xasprintf("0x%" PRIx64, tc->file_addr);
        _cleanup_free_ char *msg = NULL;

        ctl_ok(ARGS("--socket", d->socket_path, "normalize", pid, a), &plain);
        ctl_ok(ARGS("--socket", d->socket_path, "normalize", "--pidfd", pid, a), &by_pidfd);
        ck_assert_str_eq(by_pidfd.out, plain.out);
        ctl_ok(ARGS("--socket", d->socket_path, "normalize", "--maps-fd", pid, a), &by_maps);
        ck_assert_str_eq(by_maps.out, plain.out);

        n = core_normalize(tc->pid, &tc->file_addr, 1, NORMALIZE_BUILD_IDS);
        ctl_ok(ARGS("--socket", d->socket_path, "--json", "normalize", "--pidfd", pid, a), &json);
        check_json_matches_core(json.out, n, &tc->file_addr, 1, true, false);

        test_child_stop(tc);
        /* Nothing to open: said by vmaqctl, as the daemon would. */
        ctl_expect(NULL, ARGS("--socket", d->socket_path, "normalize", "--maps-fd", pid, a), EXIT_DAEMON_ERROR,
                   &gone);
        ck_assert_str_eq(gone.out, "");
        msg = xasprintf("vmaqctl: cannot open /proc/PID/maps of pid %s: no such process\n", pid);
        ck_assert_str_eq(gone.err, msg);
        daemon_stop(d);
}
END_TEST

/* track: the snapshot is kept, and said so with the start time to pin later calls with. */
START_TEST(test_track) {
        Daemon *d = daemon_start(NULL);
        TestChild *tc = spawn_test_child();
        _cleanup_(normalization_freep) Normalization *n = NULL;
        _cleanup_(run_done) Run human = {}, json = {}, wrong = {};
        _cleanup_free_ char *pid = xasprintf("%d", (int) tc->pid);
        _cleanup_free_ char *want = NULL, *want_json = NULL, *st1 = NULL;

        n = core_normalize(tc->pid, &tc->file_addr, 1, 0);
        want = xasprintf("pid %s, start time %" PRIu64 ": snapshot kept\n", pid, n->start_time);
        want_json = xasprintf("{\"pid\": %s, \"start_time\": %" PRIu64 "}\n", pid, n->start_time);
        st1 = xasprintf("%" PRIu64, n->start_time + 1);

        ctl_ok(ARGS("--socket", d->socket_path, "track", pid), &human);
        ck_assert_str_eq(human.out, want);
        ctl_ok(ARGS("--socket", d->socket_path, "--json", "track", pid), &json);
        ck_assert_str_eq(json.out, want_json);
        ctl_expect(NULL, ARGS("--socket", d->socket_path, "track", "--start-time", st1, pid), EXIT_DAEMON_ERROR,
                   &wrong);
        ck_assert_msg(startswith(wrong.err, "vmaqctl: process changed: pid "), "stderr: %s", wrong.err);

        test_child_stop(tc);
        daemon_stop(d);
}
END_TEST

START_TEST(test_normalize_stdin) {
        Daemon *d = daemon_start(NULL);
        TestChild *tc = spawn_test_child();
        _cleanup_(normalization_freep) Normalization *n = NULL;
        _cleanup_(run_done) Run r = {};
        _cleanup_free_ char *pid = xasprintf("%d", (int) tc->pid);
        _cleanup_free_ char *input = NULL, *bad = NULL;
        const uint64_t addrs[] = { 0x20, tc->file_addr, tc->code_addr, tc->file_addr, tc->anon_addr, 0x30 };

        /* "-" in place: arguments before and after it keep their order. Blank lines are skipped. */
        input = xasprintf("0x%" PRIx64 "\n\n  %" PRIx64 "\r\n0x%" PRIx64 "\n\n0X%" PRIX64,
                          tc->file_addr, tc->code_addr, tc->file_addr, tc->anon_addr);
        n = core_normalize(tc->pid, addrs, ELEMENTSOF(addrs), NORMALIZE_BUILD_IDS);
        ctl_expect(&(RunOptions) { .input = input },
                   ARGS("--socket", d->socket_path, "--json", "normalize", pid, "0x20", "-", "30"), 0, &r);
        ck_assert_str_eq(r.err, "");
        check_json_matches_core(r.out, n, addrs, ELEMENTSOF(addrs), true, false);
        run_done(&r);

        /* Only standard input, human output: hex without 0x, as perf script -F ip prints it. */
        ctl_expect(&(RunOptions) { .input = "16\n" }, ARGS("--socket", d->socket_path, "normalize", pid, "-"),
                   0, &r);
        ck_assert_str_eq(r.out, "0x000000000016: unknown (unmapped)\n");
        run_done(&r);

        /* --decimal: arguments and lines are decimal, and hex digits are then an error. */
        ctl_expect(&(RunOptions) { .input = "16\n" },
                   ARGS("--socket", d->socket_path, "normalize", "--decimal", pid, "-", "32"), 0, &r);
        ck_assert_str_eq(r.out, "0x000000000010: unknown (unmapped)\n0x000000000020: unknown (unmapped)\n");
        run_done(&r);
        ctl_expect(&(RunOptions) { .input = "1a\n" },
                   ARGS("--socket", d->socket_path, "normalize", "--decimal", pid, "-"), EXIT_USAGE, &r);
        ck_assert_str_eq(r.out, "");
        ck_assert_str_eq(r.err, "vmaqctl: invalid address '1a' on line 1 of standard input: decimal\n"
                                "See 'vmaqctl --help'.\n");
        run_done(&r);

        /* A bad line is a usage error naming its number; nothing is asked. */
        bad = xasprintf("0x10\n\n0x%" PRIx64 "\nzz\n", tc->file_addr);
        ctl_expect(&(RunOptions) { .input = bad }, ARGS("--socket", d->socket_path, "normalize", pid, "-"),
                   EXIT_USAGE, &r);
        ck_assert_str_eq(r.out, "");
        ck_assert_msg(strstr(r.err, "'zz'") && strstr(r.err, "line 4"), "stderr: %s", r.err);
        run_done(&r);

        ctl_expect(&(RunOptions) { .input = "0x10\n-1\n" },
                   ARGS("--socket", d->socket_path, "normalize", pid, "-"), EXIT_USAGE, &r);
        ck_assert_msg(strstr(r.err, "line 2"), "stderr: %s", r.err);
        run_done(&r);

        /* No address at all. */
        ctl_expect(&(RunOptions) { .input = "\n\n" }, ARGS("--socket", d->socket_path, "normalize", pid, "-"),
                   EXIT_USAGE, &r);
        ck_assert_str_eq(r.out, "");
        ck_assert_str_ne(r.err, "");
        run_done(&r);

        test_child_stop(tc);
        daemon_stop(d);
}
END_TEST

/* --pid-column: "PID ADDR" lines as perf script -F pid,ip prints them, answered in input order. */
START_TEST(test_normalize_pid_column) {
        Daemon *d = daemon_start(NULL);
        TestChild *tc = spawn_test_child();
        _cleanup_(normalization_freep) Normalization *n = NULL;
        _cleanup_(run_done) Run r = {};
        _cleanup_(json_object_putp) struct json_object *o = NULL;
        _cleanup_free_ char *input = NULL, *line = NULL, *want = NULL;
        pid_t self = getpid();
        struct json_object *results, *res;

        /* Two pids interleaved, spaces and tabs between the columns, a blank line. */
        input = xasprintf("%d %" PRIx64 "\n  %d\t10\n\n%d   0x20\n", (int) tc->pid, tc->file_addr, (int) self,
                          (int) tc->pid);
        n = core_normalize(tc->pid, &tc->file_addr, 1, NORMALIZE_BUILD_IDS);
        line = expected_line(n, 0, tc->file_addr);
        want = xasprintf("%d %s%d 0x000000000010: unknown (unmapped)\n%d 0x000000000020: unknown (unmapped)\n",
                         (int) tc->pid, line, (int) self, (int) tc->pid);
        ctl_expect(&(RunOptions) { .input = input },
                   ARGS("--socket", d->socket_path, "normalize", "--pid-column"), 0, &r);
        ck_assert_str_eq(r.err, "");
        ck_assert_str_eq(r.out, want);
        run_done(&r);

        /* JSON: one array, a "pid" and "start_time" in each result. */
        ctl_expect(&(RunOptions) { .input = input },
                   ARGS("--socket", d->socket_path, "--json", "normalize", "--pid-column", "-"), 0, &r);
        ck_assert_str_eq(r.err, "");
        o = parse_json(r.out);
        ck_assert_int_eq(json_object_object_length(o), 1);
        results = get(o, "results", json_type_array);
        ck_assert_uint_eq(json_object_array_length(results), 3);
        res = json_object_array_get_idx(results, 0);
        ck_assert_int_eq((int) get_u64(res, "pid"), (int) tc->pid);
        ck_assert_uint_eq(get_u64(res, "start_time"), n->start_time);
        ck_assert_uint_eq(get_u64(res, "address"), tc->file_addr);
        ck_assert_str_eq(get_str(res, "path"), tc->file_path);
        res = json_object_array_get_idx(results, 1);
        ck_assert_int_eq((int) get_u64(res, "pid"), (int) self);
        ck_assert_uint_eq(get_u64(res, "address"), 0x10);
        ck_assert_str_eq(get_str(res, "unknown"), "unmapped");
        res = json_object_array_get_idx(results, 2);
        ck_assert_int_eq((int) get_u64(res, "pid"), (int) tc->pid);
        ck_assert_uint_eq(get_u64(res, "address"), 0x20);
        run_done(&r);

        /* --decimal applies to the ADDR column. */
        {
                _cleanup_free_ char *in = xasprintf("%d 16\n", (int) self);
                _cleanup_free_ char *out = xasprintf("%d 0x000000000010: unknown (unmapped)\n", (int) self);

                ctl_expect(&(RunOptions) { .input = in },
                           ARGS("--socket", d->socket_path, "normalize", "--pid-column", "--decimal"), 0, &r);
                ck_assert_str_eq(r.out, out);
                run_done(&r);
                ctl_expect(&(RunOptions) { .input = in },
                           ARGS("--socket", d->socket_path, "normalize", "--pid-column", "-q"), 0, &r);
                ck_assert_str_eq(r.out, "");
                run_done(&r);
        }

        /* Malformed lines and arguments are usage errors; nothing is asked. */
        ctl_expect(&(RunOptions) { .input = "1 0x10\n42\n" },
                   ARGS("--socket", d->socket_path, "normalize", "--pid-column"), EXIT_USAGE, &r);
        ck_assert_str_eq(r.out, "");
        ck_assert_str_eq(r.err, "vmaqctl: invalid line '42' on line 2 of standard input: \"PID ADDR\" expected, "
                                "ADDR hex, with or without 0x\nSee 'vmaqctl --help'.\n");
        run_done(&r);
        ctl_expect(&(RunOptions) { .input = "x 0x10\n" },
                   ARGS("--socket", d->socket_path, "normalize", "--pid-column"), EXIT_USAGE, &r);
        ck_assert_str_eq(r.err, "vmaqctl: invalid PID 'x' on line 1 of standard input: \"PID ADDR\" expected, "
                                "ADDR hex, with or without 0x\nSee 'vmaqctl --help'.\n");
        run_done(&r);
        ctl_expect(&(RunOptions) { .input = "1 0x10\n" },
                   ARGS("--socket", d->socket_path, "normalize", "--pid-column", "1", "0x10"), EXIT_USAGE, &r);
        ck_assert_str_eq(r.err, "vmaqctl: --pid-column reads \"PID ADDR\" lines from standard input only, "
                                "unexpected '1'\nSee 'vmaqctl --help'.\n");
        run_done(&r);
        ctl_expect(&(RunOptions) { .input = "1 0x10\n" },
                   ARGS("--socket", d->socket_path, "normalize", "--pid-column", "--format=addr2line"),
                   EXIT_USAGE, &r);
        ck_assert_str_eq(r.out, "");
        run_done(&r);

        /*
         * A pid that exited (or that we may not ask about) costs its own
         * addresses only: they are answered with the error, the others as
         * usual, and the exit status says that some failed.
         */
        {
                pid_t gone = reaped_pid();
                _cleanup_free_ char *in = xasprintf("%d 10\n%d 20\n%d 30\n", (int) self, (int) gone, (int) self);
                _cleanup_free_ char *msg = xasprintf("vmaqctl: no answers for pid %d: no such process\n", (int) gone);
                _cleanup_free_ char *out = xasprintf("%d 0x000000000010: unknown (unmapped)\n"
                                                     "%d 0x000000000020: error (no such process)\n"
                                                     "%d 0x000000000030: unknown (unmapped)\n",
                                                     (int) self, (int) gone, (int) self);

                ctl_expect(&(RunOptions) { .input = in },
                           ARGS("--socket", d->socket_path, "normalize", "--pid-column"), EXIT_DAEMON_ERROR, &r);
                ck_assert_str_eq(r.out, out);
                ck_assert_str_eq(r.err, msg);
                run_done(&r);

                ctl_expect(&(RunOptions) { .input = in },
                           ARGS("--socket", d->socket_path, "--json=short", "normalize", "--pid-column"),
                           EXIT_DAEMON_ERROR, &r);
                ck_assert_str_eq(r.err, msg);
                json_object_put(o);
                o = parse_json(r.out);
                results = get(o, "results", json_type_array);
                ck_assert_uint_eq(json_object_array_length(results), 3);
                res = json_object_array_get_idx(results, 1);
                ck_assert_int_eq((int) get_u64(res, "pid"), (int) gone);
                ck_assert_uint_eq(get_u64(res, "address"), 0x20);
                ck_assert_str_eq(get_str(res, "error"), "io.vmaq.NoSuchProcess");
                ck_assert_str_eq(get_str(json_object_array_get_idx(results, 2), "unknown"), "unmapped");
                run_done(&r);

                ctl_expect(&(RunOptions) { .input = in },
                           ARGS("--socket", d->socket_path, "-q", "normalize", "--pid-column"), EXIT_DAEMON_ERROR,
                           &r);
                ck_assert_str_eq(r.out, "");
                run_done(&r);
        }

        test_child_stop(tc);
        daemon_stop(d);
}
END_TEST

/* A path with quotes, a backslash, control characters and a byte that is not UTF-8. */
START_TEST(test_normalize_odd_path) {
        Daemon *d = daemon_start(NULL);
        _cleanup_(run_done) Run r = {};
        _cleanup_(json_object_putp) struct json_object *o = NULL;
        _cleanup_free_ char *path = xasprintf("%s/we\"ird\\na\nme\x01\x7f\xff.bin", run_dir);
        _cleanup_free_ char *want = xasprintf("%s/we\"ird\\na\nme\x01\x7f\xef\xbf\xbd.bin", run_dir);
        _cleanup_free_ char *want_human = NULL, *pid = NULL, *addr = NULL;
        _cleanup_close_ int fd = -EBADF;
        int ctl[2], ready[2];
        uint64_t page = test_page_size(), a;
        struct json_object *res;
        pid_t child;

        fd = open(path, O_RDWR|O_CREAT|O_CLOEXEC, 0644);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(ftruncate(fd, (off_t) page * 2), 0);
        ck_assert_int_eq(pipe2(ctl, O_CLOEXEC), 0);
        ck_assert_int_eq(pipe2(ready, O_CLOEXEC), 0);
        child = fork_child();
        if (child == 0) {
                void *p = mmap(NULL, page, PROT_READ, MAP_PRIVATE, fd, (off_t) page);
                uint64_t v = (uint64_t) (uintptr_t) p;
                char b;

                if (p == MAP_FAILED || write(ready[1], &v, sizeof(v)) != sizeof(v))
                        _exit(EXIT_FAILURE);
                close(ctl[1]);
                while (read(ctl[0], &b, 1) > 0)
                        ;
                _exit(EXIT_SUCCESS);
        }
        close(ctl[0]);
        close(ready[1]);
        ck_assert_int_eq(read(ready[0], &a, sizeof(a)), (ssize_t) sizeof(a));
        close(ready[0]);
        a += 0x123;
        pid = xasprintf("%d", (int) child);
        addr = xasprintf("0x%" PRIx64, a);

        ctl_ok(ARGS("--socket", d->socket_path, "--json", "normalize", "--no-build-ids", pid, addr), &r);
        /* Escaped as JSON requires: no raw control character; the daemon already sent U+FFFD. */
        ck_assert_msg(strstr(r.out, "we\\\"ird\\\\na\\u000ame\\u0001\\u007f\xef\xbf\xbd.bin"), "%s", r.out);
        o = parse_json(r.out);
        res = json_object_array_get_idx(get(o, "results", json_type_array), 0);
        ck_assert_str_eq(get_str(res, "path"), want);
        ck_assert_uint_eq(get_u64(res, "offset"), page + 0x123);
        run_done(&r);

        /* For people: one line, control characters and backslashes as \xNN. */
        want_human = xasprintf("0x%012" PRIx64 ": file offset 0x%" PRIx64 " in %s/we\"ird\\x5cna\\x0ame\\x01\\x7f\xef\xbf\xbd.bin\n",
                               a, page + 0x123, run_dir);
        ctl_ok(ARGS("--socket", d->socket_path, "normalize", "--no-build-ids", pid, addr), &r);
        ck_assert_str_eq(r.out, want_human);

        close(ctl[1]);
        ck_assert_int_eq(waitpid(child, NULL, 0), child);
        ck_assert_int_eq(unlink(path), 0);
        daemon_stop(d);
}
END_TEST

/* --- tests: maps -------------------------------------------------------------- */

typedef struct CoreVmas {
        size_t n;
        Vma v[512];
        char names[512][PATH_MAX];
} CoreVmas;

static int collect_vma(const Vma *v, void *userdata) {
        CoreVmas *c = userdata;

        if (c->n >= ELEMENTSOF(c->v))
                return -E2BIG;
        c->v[c->n] = *v;
        snprintf(c->names[c->n], sizeof(c->names[c->n]), "%s", v->name);
        c->v[c->n].name = c->names[c->n];
        c->n++;
        return 0;
}

static void core_vmas(pid_t pid, unsigned flags, CoreVmas *ret) {
        _cleanup_(proc_freep) Proc *p = NULL;
        NormalizeOptions opts = {};

        ck_assert_int_eq(proc_open(&p, pid, core_backend()), 0);
        ret->n = 0;
        ck_assert_int_eq(proc_foreach_vma(p, flags, &opts, collect_vma, ret), 0);
}

static void perms_string(unsigned perms, char ret[static 5]) {
        ret[0] = perms & VMA_PERM_READ ? 'r' : '-';
        ret[1] = perms & VMA_PERM_WRITE ? 'w' : '-';
        ret[2] = perms & VMA_PERM_EXEC ? 'x' : '-';
        ret[3] = perms & VMA_PERM_SHARED ? 's' : 'p';
        ret[4] = '\0';
}

static const char *kind_string(VmaKind k) {
        static const char *const names[] = {
                [VMA_KIND_FILE] = "file",
                [VMA_KIND_ANONYMOUS] = "anonymous",
                [VMA_KIND_SPECIAL] = "special",
                [VMA_KIND_VDSO] = "vdso",
        };

        ck_assert_int_ge(k, 0);
        ck_assert_int_lt(k, _VMA_KIND_MAX);
        return names[k];
}

START_TEST(test_maps) {
        Daemon *d = daemon_start(NULL);
        TestChild *tc = spawn_test_child();
        _cleanup_(run_done) Run r = {};
        _cleanup_(json_object_putp) struct json_object *o = NULL;
        _cleanup_free_ char *pid = xasprintf("%d", (int) tc->pid);
        _cleanup_free_ CoreVmas *core = calloc(1, sizeof(CoreVmas));
        struct json_object *maps;
        bool seen_file = false, seen_deleted = false, seen_code = false;
        uint8_t self_id[BUILD_ID_MAX];
        size_t self_id_len = test_self_build_id(self_id);
        char self_hex[2 * BUILD_ID_MAX + 1];

        ck_assert_ptr_nonnull(core);
        ck_assert_uint_gt(self_id_len, 0);
        hex(self_id, self_id_len, self_hex);

        /* JSON: every mapping as the core sees it. Build IDs come from the core's ELF reader. */
        core_vmas(tc->pid, 0, core);
        ctl_ok(ARGS("--socket", d->socket_path, "--json", "maps", pid), &r);
        o = parse_json(r.out);
        ck_assert_int_eq(json_object_object_length(o), 3);
        ck_assert_int_eq((int) get_u64(o, "pid"), (int) tc->pid);
        (void) get_u64(o, "start_time");
        maps = get(o, "mappings", json_type_array);
        ck_assert_uint_eq(json_object_array_length(maps), core->n);
        for (size_t i = 0; i < core->n; i++) {
                struct json_object *m = json_object_array_get_idx(maps, i), *path, *bid;
                const Vma *v = &core->v[i];
                char perms[5];

                perms_string(v->perms, perms);
                ck_assert_int_eq(json_object_object_length(m), 11);
                ck_assert_uint_eq(get_u64(m, "start"), v->start);
                ck_assert_uint_eq(get_u64(m, "end"), v->end);
                ck_assert_str_eq(get_str(m, "perms"), perms);
                ck_assert_uint_eq(get_u64(m, "offset"), v->offset);
                ck_assert_uint_eq(get_u64(m, "dev_major"), v->dev_major);
                ck_assert_uint_eq(get_u64(m, "dev_minor"), v->dev_minor);
                ck_assert_uint_eq(get_u64(m, "inode"), v->inode);
                ck_assert_str_eq(get_str(m, "kind"), kind_string(v->kind));
                ck_assert_int_eq(get_bool(m, "deleted"), v->deleted);
                ck_assert(json_object_object_get_ex(m, "path", &path));
                if (v->name[0])
                        ck_assert_str_eq(get_str(m, "path"), v->name);
                else
                        ck_assert_ptr_null(path);
                ck_assert(json_object_object_get_ex(m, "build_id", &bid));
                if (bid)
                        ck_assert_uint_gt(strlen(get_str(m, "build_id")), 0);
                if (v->start <= tc->file_addr && tc->file_addr < v->end) {
                        ck_assert_str_eq(get_str(m, "path"), tc->file_path);
                        ck_assert_uint_eq(v->offset, TEST_FILE_MAP_PGOFF * test_page_size());
                        seen_file = true;
                }
                if (v->start <= tc->code_addr && tc->code_addr < v->end) {
                        /* The child runs this test program: its build ID, read by the loader's notes. */
                        ck_assert_str_eq(get_str(m, "build_id"), self_hex);
                        seen_code = true;
                }
                if (v->start <= tc->deleted_addr && tc->deleted_addr < v->end) {
                        ck_assert(get_bool(m, "deleted"));
                        seen_deleted = true;
                }
        }
        ck_assert(seen_file && seen_deleted && seen_code);
        run_done(&r);
        json_object_put(TAKE_PTR(o));

        /* Human: a header, then one line per mapping as in /proc/PID/maps, in aligned columns. */
        ctl_ok(ARGS("--socket", d->socket_path, "maps", "--no-build-ids", pid), &r);
        {
                int w_start = 8, w_end = 8, w_off = 8, w_dev = 5, w_inode = 5;
                _cleanup_free_ char *want = NULL, *header = NULL;
                _cleanup_(run_done) Run nl = {};
                size_t len = 0;

                for (size_t i = 0; i < core->n; i++) {
                        const Vma *v = &core->v[i];
                        char buf[64];
                        int k;

                        k = snprintf(buf, sizeof(buf), "%" PRIx64, v->start);
                        w_start = k > w_start ? k : w_start;
                        k = snprintf(buf, sizeof(buf), "%" PRIx64, v->end);
                        w_end = k > w_end ? k : w_end;
                        k = snprintf(buf, sizeof(buf), "%" PRIx64, v->offset);
                        w_off = k > w_off ? k : w_off;
                        k = snprintf(buf, sizeof(buf), "%02" PRIx32 ":%02" PRIx32, v->dev_major, v->dev_minor);
                        w_dev = k > w_dev ? k : w_dev;
                        k = snprintf(buf, sizeof(buf), "%" PRIu64, v->inode);
                        w_inode = k > w_inode ? k : w_inode;
                }
                header = xasprintf("%-*s %-*s PERMS %-*s %-*s %-*s PATH\n", w_start, "START", w_end, "END", w_off,
                                   "OFFSET", w_dev, "DEV", w_inode, "INODE");
                append(&want, &len, header, strlen(header));
                for (size_t i = 0; i < core->n; i++) {
                        const Vma *v = &core->v[i];
                        _cleanup_free_ char *line = NULL, *inode = xasprintf("%" PRIu64, v->inode);
                        char perms[5], dev[32];

                        char start[17], end[17], off[17];

                        perms_string(v->perms, perms);
                        /* The cells as in /proc/PID/maps, left-aligned in their columns. */
                        snprintf(start, sizeof(start), "%08" PRIx64, v->start);
                        snprintf(end, sizeof(end), "%08" PRIx64, v->end);
                        snprintf(off, sizeof(off), "%08" PRIx64, v->offset);
                        snprintf(dev, sizeof(dev), "%02" PRIx32 ":%02" PRIx32, v->dev_major, v->dev_minor);
                        if (v->name[0])
                                line = xasprintf("%-*s %-*s %s  %-*s %-*s %-*s %s%s\n", w_start, start, w_end, end,
                                                 perms, w_off, off, w_dev, dev, w_inode, inode, v->name,
                                                 v->deleted ? " (deleted)" : "");
                        else
                                line = xasprintf("%-*s %-*s %s  %-*s %-*s %s\n", w_start, start, w_end, end, perms,
                                                 w_off, off, w_dev, dev, inode);
                        append(&want, &len, line, strlen(line));
                }
                ck_assert_str_eq(r.out, want);

                /* --no-legend: the same without the header. */
                ctl_ok(ARGS("--socket", d->socket_path, "--no-legend", "maps", "--no-build-ids", pid), &nl);
                ck_assert_str_eq(nl.out, want + strlen(header));
        }
        run_done(&r);

        /* --start-time: the mappings only of the process started then. */
        {
                _cleanup_(normalization_freep) Normalization *ns = core_normalize(tc->pid, &tc->file_addr, 1, 0);
                _cleanup_free_ char *st = xasprintf("%" PRIu64, ns->start_time);
                _cleanup_free_ char *wrong = xasprintf("%" PRIu64, ns->start_time + 1);
                /* Pinned in the call: the daemon's refusal, said once. */
                _cleanup_free_ char *msg = xasprintf("process changed: pid %s is no longer the process started "
                                                     "at %s: pid %s now has start time %s (io.vmaq.ProcessChanged)",
                                                     pid, wrong, pid, st);
                _cleanup_free_ char *err = xasprintf("vmaqctl: %s\n", msg);
                _cleanup_free_ char *json = xasprintf("{\"error\": \"io.vmaq.ProcessChanged\", "
                                                      "\"message\": \"%s\"}\n", msg);
                _cleanup_(run_done) Run plain = {};

                ctl_ok(ARGS("--socket", d->socket_path, "maps", "--no-legend", pid), &plain);
                ctl_ok(ARGS("--socket", d->socket_path, "maps", "--no-legend", "--start-time", st, pid), &r);
                ck_assert_str_eq(r.out, plain.out);
                run_done(&r);
                ctl_expect(NULL, ARGS("--socket", d->socket_path, "maps", "--start-time", wrong, pid),
                           EXIT_DAEMON_ERROR, &r);
                ck_assert_str_eq(r.out, "");
                ck_assert_str_eq(r.err, err);
                run_done(&r);
                ctl_expect(NULL, ARGS("--socket", d->socket_path, "--json", "maps", "--start-time", wrong, pid),
                           EXIT_DAEMON_ERROR, &r);
                ck_assert_str_eq(r.out, json);
                ck_assert_str_eq(r.err, err);
                run_done(&r);
        }

        /* --exec-only: exactly the executable ones. */
        core_vmas(tc->pid, PROC_LIST_EXEC_ONLY, core);
        ck_assert_uint_gt(core->n, 0);
        ctl_ok(ARGS("--socket", d->socket_path, "maps", "--json", "--exec-only", pid), &r);
        o = parse_json(r.out);
        maps = get(o, "mappings", json_type_array);
        ck_assert_uint_eq(json_object_array_length(maps), core->n);
        for (size_t i = 0; i < core->n; i++) {
                struct json_object *m = json_object_array_get_idx(maps, i);

                ck_assert_uint_eq(get_u64(m, "start"), core->v[i].start);
                ck_assert_int_eq(get_str(m, "perms")[2], 'x');
        }

        test_child_stop(tc);
        daemon_stop(d);
}
END_TEST

/* --json=pretty|short|off, --quiet and --no-pager. */
START_TEST(test_output_modes) {
        Daemon *d = daemon_start(NULL);
        TestChild *tc = spawn_test_child();
        _cleanup_(normalization_freep) Normalization *n = NULL;
        _cleanup_(run_done) Run r = {};
        _cleanup_free_ char *pid = xasprintf("%d", (int) tc->pid);
        _cleanup_free_ char *human = NULL, *shrt = NULL, *pretty = NULL;

        n = core_normalize(tc->pid, &tc->file_addr, 1, 0);
        human = xasprintf("pid %s, start time %" PRIu64 ": snapshot kept\n", pid, n->start_time);
        shrt = xasprintf("{\"pid\": %s, \"start_time\": %" PRIu64 "}\n", pid, n->start_time);
        pretty = xasprintf("{\n  \"pid\": %s,\n  \"start_time\": %" PRIu64 "\n}\n", pid, n->start_time);

        ctl_ok(ARGS("--socket", d->socket_path, "--json=pretty", "track", pid), &r);
        ck_assert_str_eq(r.out, pretty);
        run_done(&r);
        ctl_ok(ARGS("--socket", d->socket_path, "--json=short", "track", pid), &r);
        ck_assert_str_eq(r.out, shrt);
        run_done(&r);
        ctl_ok(ARGS("--socket", d->socket_path, "--json", "track", pid), &r);
        ck_assert_str_eq(r.out, shrt);
        run_done(&r);
        /* The last one counts. */
        ctl_ok(ARGS("--socket", d->socket_path, "--json", "track", "--json=off", pid), &r);
        ck_assert_str_eq(r.out, human);
        run_done(&r);

        /* Empty arrays stay on one line; nested objects are indented a level each. */
        ctl_ok(ARGS("--socket", d->socket_path, "--json=pretty", "normalize", "--no-build-ids", pid, "0x10"), &r);
        {
                _cleanup_free_ char *want = xasprintf("{\n  \"pid\": %s,\n  \"start_time\": %" PRIu64 ",\n"
                                                      "  \"results\": [\n    {\n      \"address\": 16,\n"
                                                      "      \"unknown\": \"unmapped\"\n    }\n  ]\n}\n",
                                                      pid, n->start_time);

                ck_assert_str_eq(r.out, want);
        }
        run_done(&r);

        /* The same document as the short form. */
        {
                _cleanup_(run_done) Run s = {};
                _cleanup_(json_object_putp) struct json_object *a = NULL, *b = NULL;

                ctl_ok(ARGS("--socket", d->socket_path, "--json=pretty", "maps", "--no-build-ids", pid), &r);
                ctl_ok(ARGS("--socket", d->socket_path, "--json=short", "maps", "--no-build-ids", pid), &s);
                ck_assert_ptr_nonnull(strstr(r.out, "\n      \"perms\": \""));
                a = parse_json(r.out);
                b = parse_json(s.out);
                ck_assert(json_object_equal(a, b));
                run_done(&r);
        }

        /* --quiet: nothing on success, in any format. */
        ctl_ok(ARGS("--socket", d->socket_path, "-q", "track", pid), &r);
        ck_assert_str_eq(r.out, "");
        run_done(&r);
        ctl_ok(ARGS("--socket", d->socket_path, "normalize", "--quiet", "--json", pid, "0x10"), &r);
        ck_assert_str_eq(r.out, "");
        run_done(&r);
        ctl_ok(ARGS("--socket", d->socket_path, "--quiet", "maps", pid), &r);
        ck_assert_str_eq(r.out, "");
        run_done(&r);
        ctl_ok(ARGS("--socket", d->socket_path, "status", "-q"), &r);
        ck_assert_str_eq(r.out, "");
        run_done(&r);

        /* --no-pager is accepted; there is no pager to turn off. */
        ctl_ok(ARGS("--socket", d->socket_path, "--no-pager", "track", pid), &r);
        ck_assert_str_eq(r.out, human);
        run_done(&r);

        test_child_stop(tc);
        daemon_stop(d);
}
END_TEST

/* --- tests: exit codes -------------------------------------------------------- */

START_TEST(test_daemon_errors) {
        Daemon *d = daemon_start(NULL);
        _cleanup_(run_done) Run r = {};
        pid_t gone = reaped_pid();
        _cleanup_free_ char *pid = xasprintf("%d", (int) gone);
        _cleanup_free_ char *msg = xasprintf("vmaqctl: no such process: pid %d\n", (int) gone);

        ctl_expect(NULL, ARGS("--socket", d->socket_path, "normalize", pid, "0x10"), EXIT_DAEMON_ERROR, &r);
        ck_assert_str_eq(r.out, "");
        ck_assert_str_eq(r.err, msg);
        run_done(&r);

        /* With --json, the error is on stdout as well, with its Varlink name. */
        ctl_expect(NULL, ARGS("--socket", d->socket_path, "--json", "maps", pid), EXIT_DAEMON_ERROR, &r);
        {
                _cleanup_free_ char *json = xasprintf("{\"error\": \"io.vmaq.NoSuchProcess\", "
                                                      "\"message\": \"no such process: pid %d\"}\n", (int) gone);

                ck_assert_str_eq(r.out, json);
        }
        ck_assert_str_eq(r.err, msg);
        run_done(&r);
        ctl_expect(NULL, ARGS("--socket", d->socket_path, "--json=pretty", "normalize", pid, "10"),
                   EXIT_DAEMON_ERROR, &r);
        {
                _cleanup_free_ char *json = xasprintf("{\n  \"error\": \"io.vmaq.NoSuchProcess\",\n"
                                                      "  \"message\": \"no such process: pid %d\"\n}\n", (int) gone);

                ck_assert_str_eq(r.out, json);
        }
        ck_assert_str_eq(r.err, msg);
        run_done(&r);

        /*
         * Over the daemon's --max-addresses (100000): asked in batches,
         * answered as one, in memory linear in the input (about 100 bytes
         * an address, not the 1 KB it took when the whole request and reply
         * were held as JSON trees). Not measured under sanitizers, whose
         * shadow memory and quarantine dwarf it.
         */
        {
                size_t n = 100001, len = 0, lines = 0;
                _cleanup_free_ char *input = malloc(n * 2 + 1);
                _cleanup_free_ char *self = xasprintf("%d", (int) getpid());

                ck_assert_ptr_nonnull(input);
                for (size_t i = 0; i < n; i++) {
                        input[len++] = '1';
                        input[len++] = '\n';
                }
                input[len] = '\0';
                ctl_expect(&(RunOptions) { .input = input },
                           ARGS("--socket", d->socket_path, "normalize", self, "-"), 0, &r);
                ck_assert_msg(r.err_len == 0, "vmaqctl wrote to stderr: %s", r.err);
                for (const char *q = r.out; *q; q++)
                        lines += *q == '\n';
                ck_assert_uint_eq(lines, n);
                ck_assert(startswith(r.out, "0x000000000001: unknown (unmapped)\n"));
#if !TEST_ASAN
                ck_assert_msg(r.maxrss_kib < 40 * 1024, "vmaqctl used %ld KiB for %zu addresses",
                              r.maxrss_kib, n);
#endif
                run_done(&r);
        }

        daemon_stop(d);
}
END_TEST

/* A reply over the daemon's --max-reply-size: said so, with what to do about it. */
START_TEST(test_reply_too_large) {
        Daemon *d = daemon_start(ARGS("--max-reply-size", "65536"));
        _cleanup_(run_done) Run r = {};
        _cleanup_free_ char *self = xasprintf("%d", (int) getpid());
        _cleanup_free_ char *input = malloc(2000 * 40);
        size_t len = 0;

        ck_assert_ptr_nonnull(input);
        for (size_t i = 0; i < 2000; i++)
                len += (size_t) sprintf(input + len, "%#" PRIxPTR "\n", (uintptr_t) test_marker_function + i);
        ctl_expect(&(RunOptions) { .input = input }, ARGS("--socket", d->socket_path, "normalize", self, "-"),
                   EXIT_DAEMON_ERROR, &r);
        ck_assert_str_eq(r.out, "");
        ck_assert_str_eq(r.err, "vmaqctl: the reply would be too large for vmaqd, ask about fewer addresses: "
                                "reply too large: over the limit of 65536 bytes, ask for less "
                                "(io.vmaq.ReplyTooLarge)\n");
        run_done(&r);

        /* With --pid-column too: only a failure about the process itself leaves the others answered. */
        len = 0;
        for (size_t i = 0; i < 2000; i++)
                len += (size_t) sprintf(input + len, "%s %#" PRIxPTR "\n", self, (uintptr_t) test_marker_function + i);
        ctl_expect(&(RunOptions) { .input = input }, ARGS("--socket", d->socket_path, "normalize", "--pid-column"),
                   EXIT_DAEMON_ERROR, &r);
        ck_assert_str_eq(r.out, "");
        ck_assert(startswith(r.err, "vmaqctl: the reply would be too large for vmaqd"));
        daemon_stop(d);
}
END_TEST

START_TEST(test_permission_denied) {
        Daemon *d;
        _cleanup_(run_done) Run r = {};

        d = daemon_start(NULL);
        ctl_expect(&(RunOptions) { .uid = NOBODY }, ARGS("--socket", d->socket_path, "normalize", "1", "0x10"),
                   EXIT_DAEMON_ERROR, &r);
        ck_assert_str_eq(r.out, "");
        ck_assert_str_eq(r.err, "vmaqctl: permission denied: pid 1 belongs to another user or is not dumpable "
                                "(ask an administrator to add you to the 'vmaq' group)\n");
        daemon_stop(d);
}
END_TEST

START_TEST(test_usage_errors) {
        /* No daemon here: a usage error must be found before connecting (else it would be exit 3). */
        _cleanup_free_ char *sock = xasprintf("%s/no-such.sock", run_dir);
        const char *s = sock;
        const char *const *cases[] = {
                ARGS("--socket", s),
                ARGS("--socket", s, "frobnicate"),
                ARGS("--socket", s, "--frob", "status"),
                ARGS("--socket", s, "status", "extra"),
                ARGS("--socket", s, "--timeout", "soon", "status"),
                ARGS("--socket", s, "--timeout", "-1", "status"),
                ARGS("--socket", s, "normalize"),
                ARGS("--socket", s, "normalize", "1"),
                ARGS("--socket", s, "normalize", "0", "0x10"),
                ARGS("--socket", s, "normalize", "abc", "0x10"),
                ARGS("--socket", s, "normalize", "2147483648", "0x10"),
                ARGS("--socket", s, "normalize", "1", "zz"),
                ARGS("--socket", s, "normalize", "1", "0x"),
                ARGS("--socket", s, "normalize", "1", "0x10000000000000000"),
                ARGS("--socket", s, "normalize", "1", "10000000000000000"),
                ARGS("--socket", s, "normalize", "--decimal", "1", "18446744073709551616"),
                ARGS("--socket", s, "normalize", "--decimal", "1", "ff"),
                ARGS("--socket", s, "normalize", "1", "0x10", " 1"),
                ARGS("--socket", s, "normalize", "--start-time", "x", "1", "0x10"),
                ARGS("--socket", s, "normalize", "--bogus", "1", "0x10"),
                ARGS("--socket", s, "normalize", "--pidfd", "--maps-fd", "1", "0x10"),
                ARGS("--socket", s, "normalize", "--format=nope", "1", "0x10"),
                ARGS("--socket", s, "normalize", "--format", "", "1", "0x10"),
                ARGS("--socket", s, "--json", "normalize", "--format=addr2line", "1", "0x10"),
                ARGS("--socket", s, "normalize", "--pidfd", "--start-time", "5", "1", "0x10"),
                ARGS("--socket", s, "normalize", "--maps-fd", "--start-time", "5", "1", "0x10"),
                ARGS("--socket", s, "maps"),
                ARGS("--socket", s, "maps", "x"),
                ARGS("--socket", s, "maps", "1", "2"),
                ARGS("--socket", s, "maps", "--no-such-option", "1"),
                ARGS("--socket", s, "maps", "--start-time", "0", "1"),
                ARGS("--socket", s, "maps", "--start-time", "x", "1"),
                ARGS("--socket", s, "track"),
                ARGS("--socket", s, "track", "x"),
                ARGS("--socket", s, "track", "1", "2"),
                ARGS("--socket", s, "track", "--start-time", "0", "1"),
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_(run_done) Run r = {};
                const char *hint;

                ctl_run(cases[i], &r);
                ck_assert_msg(r.exit_code == EXIT_USAGE, "case %zu (%s): exit %d\nstderr: %s", i,
                              cases[i][2] ? cases[i][2] : "", r.exit_code, r.err);
                ck_assert_str_eq(r.out, "");
                ck_assert_msg(startswith(r.err, "vmaqctl: "),
                              "case %zu: stderr: %s", i, r.err);
                /* Reported once: one line, then the hint. */
                hint = strchr(r.err, '\n');
                ck_assert_msg(hint && streq(hint + 1, "See 'vmaqctl --help'.\n"),
                              "case %zu: stderr: %s", i, r.err);
        }
}
END_TEST

/* The exact report of a bad option, wherever it appears: one error, then the hint. */
START_TEST(test_usage_error_once) {
        _cleanup_free_ char *sock = xasprintf("%s/no-such.sock", run_dir);
        const char *s = sock;
        const struct {
                const char *const *args;
                const char *err;
        } cases[] = {
                { ARGS("--socket", s, "normalize", "--timeout=abc", "1", "0x1"),
                  "vmaqctl: invalid --timeout 'abc': seconds, 0 for none\n" },
                { ARGS("--socket", s, "--timeout=abc", "normalize", "1", "0x1"),
                  "vmaqctl: invalid --timeout 'abc': seconds, 0 for none\n" },
                { ARGS("--socket", s, "status", "--timeout=-5"),
                  "vmaqctl: invalid --timeout '-5': seconds, 0 for none\n" },
                { ARGS("maps", "--socket=", "1"),
                  "vmaqctl: --socket needs a path\n" },
                { ARGS("--socket", s, "maps", "--frob", "1"),
                  "vmaqctl: unknown option, or option without its argument: '--frob'\n" },
                { ARGS("--socket", s, "status", "--exec-only"),
                  "vmaqctl: unknown option, or option without its argument: '--exec-only'\n" },
                { ARGS("--socket", s, "normalize", "1", "0x1", "--start-time"),
                  "vmaqctl: unknown option, or option without its argument: '--start-time'\n" },
                { ARGS("--socket", s, "normalize", "--start-time=x", "1", "0x1"),
                  "vmaqctl: invalid --start-time 'x': a decimal number\n" },
                { ARGS("--socket", s, "normalize", "-5", "0x10"),
                  "vmaqctl: unknown option, or option without its argument: '-5'\n" },
                { ARGS("--socket", s, "--json=long", "status"),
                  "vmaqctl: invalid --json 'long': pretty, short or off\n" },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_(run_done) Run r = {};
                _cleanup_free_ char *err = xasprintf("%sSee 'vmaqctl --help'.\n", cases[i].err);

                ctl_run(cases[i].args, &r);
                ck_assert_msg(r.exit_code == EXIT_USAGE, "case %zu: exit %d\nstderr: %s", i, r.exit_code,
                              r.err);
                ck_assert_str_eq(r.out, "");
                ck_assert_str_eq(r.err, err);
        }
}
END_TEST

START_TEST(test_unreachable) {
        _cleanup_free_ char *sock = xasprintf("%s/no-such.sock", run_dir);
        _cleanup_free_ char *env_sock = xasprintf("%s/env.sock", run_dir);
        _cleanup_free_ char *silent = xasprintf("%s/silent.sock", run_dir);
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_close_ int fd = -EBADF;
        _cleanup_(run_done) Run r = {};

        /* No socket: with the hint to start the socket unit. */
        {
                _cleanup_free_ char *msg = xasprintf("cannot connect to vmaqd at '%s': %s (is vmaqd running? "
                                                     "systemctl start vmaqd.socket)", sock, strerror(ENOENT));
                _cleanup_free_ char *err = xasprintf("vmaqctl: %s\n", msg);
                _cleanup_free_ char *json = xasprintf("{\"error\": \"ENOENT\", \"message\": \"%s\"}\n", msg);

                ctl_expect(NULL, ARGS("--socket", sock, "status"), EXIT_UNREACHABLE, &r);
                ck_assert_str_eq(r.out, "");
                ck_assert_str_eq(r.err, err);
                run_done(&r);

                ctl_expect(NULL, ARGS("--socket", sock, "--json", "status"), EXIT_UNREACHABLE, &r);
                ck_assert_str_eq(r.out, json);
                ck_assert_str_eq(r.err, err);
                run_done(&r);

                /* --quiet silences the output, not the error. */
                ctl_expect(NULL, ARGS("--socket", sock, "-q", "status"), EXIT_UNREACHABLE, &r);
                ck_assert_str_eq(r.out, "");
                ck_assert_str_eq(r.err, err);
                run_done(&r);
        }

        /* $VMAQ_SOCKET is the default, and named. */
        ctl_expect(&(RunOptions) { .vmaq_socket = env_sock }, ARGS("maps", "1"), EXIT_UNREACHABLE, &r);
        ck_assert_msg(strstr(r.err, env_sock), "stderr: %s", r.err);
        run_done(&r);

        /* A listener that never answers: --timeout gives up. */
        fd = socket(AF_UNIX, SOCK_STREAM|SOCK_CLOEXEC, 0);
        ck_assert_int_ge(fd, 0);
        strcpy(sa.sun_path, silent);
        ck_assert_int_eq(bind(fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
        ck_assert_int_eq(listen(fd, 16), 0);
        ctl_expect(NULL, ARGS("--socket", silent, "--timeout", "1", "status"), EXIT_UNREACHABLE, &r);
        ck_assert_str_eq(r.out, "");
        ck_assert_msg(strstr(r.err, "did not answer"), "stderr: %s", r.err);
        run_done(&r);

        /* A daemon that goes away mid-call: a helper accepts, reads the call and closes. */
        {
                pid_t helper = fork_child();
                int status;

                if (helper == 0) {
                        /* Skip connections left in the backlog by clients that gave up. */
                        for (;;) {
                                int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
                                char buf[256];
                                ssize_t k;

                                if (c < 0)
                                        _exit(EXIT_FAILURE);
                                k = read(c, buf, sizeof(buf));
                                close(c);
                                if (k > 0)
                                        _exit(EXIT_SUCCESS);
                        }
                }
                /* The silent test's connection waits in the backlog still: connect again for a fresh one. */
                ctl_expect(NULL, ARGS("--socket", silent, "--timeout", "10", "status"), EXIT_UNREACHABLE, &r);
                ck_assert_str_eq(r.out, "");
                ck_assert_str_ne(r.err, "");
                ck_assert_int_eq(waitpid(helper, &status, 0), helper);
                ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        }
        (void) unlink(silent);
}
END_TEST

/* A listener that never accepts, its backlog full: connecting gives up after --timeout too. */
START_TEST(test_connect_timeout) {
        _cleanup_free_ char *full = xasprintf("%s/full.sock", run_dir);
        _cleanup_free_ char *err = xasprintf("vmaqctl: cannot connect to vmaqd at '%s': %s\n", full,
                                             strerror(ETIMEDOUT));
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_close_ int fd = -EBADF;
        _cleanup_(run_done) Run r = {};
        int queued[8];
        size_t n = 0;

        fd = socket(AF_UNIX, SOCK_STREAM|SOCK_CLOEXEC, 0);
        ck_assert_int_ge(fd, 0);
        strcpy(sa.sun_path, full);
        ck_assert_int_eq(bind(fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
        ck_assert_int_eq(listen(fd, 0), 0);
        /* Fill the backlog: a non-blocking connect fails with EAGAIN once it is full. */
        for (;;) {
                int q = socket(AF_UNIX, SOCK_STREAM|SOCK_CLOEXEC|SOCK_NONBLOCK, 0);

                ck_assert_int_ge(q, 0);
                if (connect(q, (struct sockaddr *) &sa, sizeof(sa)) < 0) {
                        ck_assert_int_eq(errno, EAGAIN);
                        close(q);
                        break;
                }
                ck_assert_uint_lt(n, ELEMENTSOF(queued));
                queued[n++] = q;
        }

        ctl_expect(NULL, ARGS("--socket", full, "--timeout", "1", "status"), EXIT_UNREACHABLE, &r);
        ck_assert_str_eq(r.out, "");
        ck_assert_str_eq(r.err, err);

        for (size_t i = 0; i < n; i++)
                close(queued[i]);
        (void) unlink(full);
}
END_TEST

START_TEST(test_help_version) {
        _cleanup_(run_done) Run r = {};
        _cleanup_free_ char *version = xasprintf("vmaqctl %s\n", PACKAGE_VERSION);

        ctl_ok(ARGS("--version"), &r);
        ck_assert_str_eq(r.out, version);
        run_done(&r);

        ctl_ok(ARGS("--help"), &r);
        ck_assert_msg(strstr(r.out, "normalize") && strstr(r.out, "maps") && strstr(r.out, "status") &&
                      strstr(r.out, "Exit status"), "%s", r.out);
        /* Every option is documented. */
        ck_assert_msg(strstr(r.out, "--decimal") && strstr(r.out, "--pid-column") && strstr(r.out, "--json[=MODE]") &&
                      strstr(r.out, "--no-legend") && strstr(r.out, "--no-pager") && strstr(r.out, "-q --quiet") &&
                      strstr(r.out, "hex, with or\n                          without 0x"), "%s", r.out);
        run_done(&r);

        ctl_ok(ARGS("-h"), &r);
        ck_assert_uint_gt(r.out_len, 0);
}
END_TEST

/* Whether we can become nobody and nobody can then execute vmaqctl where it was built. */
static bool nobody_can_run_vmaqctl(void) {
        int status;
        pid_t pid;

        if (geteuid() != 0)
                return false;
        pid = fork();
        if (pid < 0)
                return false;
        if (pid == 0)
                _exit(setresgid(NOBODY, NOBODY, NOBODY) >= 0 && setresuid(NOBODY, NOBODY, NOBODY) >= 0 &&
                      access(vmaqctl_path, X_OK) >= 0 ? EXIT_SUCCESS : EXIT_FAILURE);
        return waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == EXIT_SUCCESS;
}

static Suite *vmaqctl_suite(void) {
        Suite *s = suite_create("vmaqctl");
        const struct {
                const char *name;
                const TTest *test;
        } tests[] = {
                { "status_human",       test_status_human },
                { "status_json",        test_status_json },
                { "normalize_human",    test_normalize_human },
                { "normalize_json",     test_normalize_json },
                { "normalize_start_time", test_normalize_start_time },
                { "normalize_fds",      test_normalize_fds },
                { "track",              test_track },
                { "normalize_stdin",    test_normalize_stdin },
                { "normalize_pid_column", test_normalize_pid_column },
                { "normalize_odd_path", test_normalize_odd_path },
                { "maps",               test_maps },
                { "output_modes",       test_output_modes },
                { "daemon_errors",      test_daemon_errors },
                { "reply_too_large",    test_reply_too_large },
                { "usage_errors",       test_usage_errors },
                { "usage_error_once",   test_usage_error_once },
                { "unreachable",        test_unreachable },
                { "connect_timeout",    test_connect_timeout },
                { "help_version",       test_help_version },
        };

        TCase *tc;

        for (size_t i = 0; i < ELEMENTSOF(tests); i++) {
                tc = tcase_create(tests[i].name);
                tcase_set_timeout(tc, TEST_TIMEOUT_SEC);
                tcase_add_test(tc, tests[i].test);
                suite_add_tcase(s, tc);
        }

        if (nobody_can_run_vmaqctl()) {
                tc = tcase_create("permission_denied");
                tcase_set_timeout(tc, TEST_TIMEOUT_SEC);
                tcase_add_test(tc, test_permission_denied);
                suite_add_tcase(s, tc);
        } else
                fprintf(stderr, "NOTE: permission_denied not run: it needs root, and a vmaqctl that "
                        "nobody may execute (the build tree is not reachable for other users)\n");
        return s;
}

static const char *env_program(const char *name) {
        const char *p = getenv(name);

        if (!p || p[0] != '/') {
                fprintf(stderr, "Set %s to an absolute path (make check does).\n", name);
                return NULL;
        }
        if (access(p, X_OK) < 0) {
                fprintf(stderr, "%s='%s' is not executable: %m\n", name, p);
                return NULL;
        }
        return p;
}

int main(void) {
        int r;

        vmaqd_path = env_program("VMAQD");
        vmaqctl_path = env_program("VMAQCTL");
        if (!vmaqd_path || !vmaqctl_path)
                return EXIT_FAILURE;

        /* Writes to a vmaqctl that exited early must fail with EPIPE, not kill us. */
        (void) signal(SIGPIPE, SIG_IGN);

        strcpy(run_dir, "/tmp/vmaqctl-test-XXXXXX");
        if (!mkdtemp(run_dir) || chmod(run_dir, 0755) < 0) {
                fprintf(stderr, "Failed to create a temporary directory: %m\n");
                return EXIT_FAILURE;
        }

        daemon_setup(vmaqd_path, run_dir, NULL);
        r = check_run(vmaqctl_suite());
        daemon_cleanup_run_dir();
        return r;
}
