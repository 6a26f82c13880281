/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * make bench: Normalize end to end, through libvmaq and a vmaqd this
 * program starts, against the floors it stands on, in one run. Needs root.
 *
 * Two targets: a child mapping every other page of a file 2,000 times (as
 * in bench-normalize), and a plain forked child that sleeps (a few dozen
 * VMAs). For batches of 1, 100, 10,000 and 100,000 random addresses inside
 * their mappings (unsorted, with repeats), the median time per call of
 *
 *   - ping-pong: a bare exchange over a socketpair between two processes,
 *     of a request and a reply of the sizes of the real ones;
 *   - ioctl floor: one bare PROCMAP_QUERY per distinct VMA, in-process,
 *     over the same addresses already sorted;
 *   - core ioctl, core text: proc_normalize() in-process, build IDs on,
 *     with a build ID cache as the daemon has;
 *   - end to end: vmaq_normalize() on one reused connection, build IDs on,
 *     daemon on the ioctl backend.
 *
 * Then what the JSON costs at 10,000 and 100,000 addresses, both sides,
 * in-process on the real request and answer; a GetStatus round trip, the
 * daemon's cost of a call without work; the aggregate rate of 1, 8 and 64
 * clients, each its own process and connection; and the daemon's memory:
 * idle, peak over a 100,000-address call (on a fresh daemon, and on the
 * warm one with VmHWM reset), and per cached process with 1,000 of them
 * cached (on a fresh daemon again).
 *
 * A table for people on stdout, and the same figures as JSON in
 * $BENCH_JSON (default bench-e2e.json).
 */

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "buildid-cache.h"
#include "macro.h"
#include "proc.h"
#include "procmap-query.h"
#include "reply.h"
#include "varlink.h"
#include "vmaq-proto.h"
#include "vmaq.h"

#define N_MAPPINGS 2000
#define N_CACHED 1000
#define MAX_ADDRESSES 100000U
#define MAX_REPLY_SIZE (16U << 20)
#define BUILD_ID_CACHE_SIZE 4096        /* the daemon's defaults */
#define MAX_BUILD_ID_READS 256
#define CONCURRENT_SECONDS 1.0
#define N_BUSY 4000                     /* connections that keep a GetStatus in flight */
#define BUSY_SECONDS 2.0
#define BUSY_PROBE_MS 20
#define BUSY_PROBES_MAX 100             /* BUSY_SECONDS / BUSY_PROBE_MS */
#define BUSY_OTHER_UID 65534            /* nobody: another user than the busy connections' */

/*
 * Each median: at least MIN_SAMPLES calls and MIN_SECONDS, at most
 * MAX_SAMPLES calls. The rows of one batch are measured in turn, ROUNDS
 * times over, so that all of them see the same machine: the VMs this runs
 * on are shared, and their load comes and goes within seconds.
 */
#define MIN_SECONDS 0.25
#define MIN_SAMPLES 6
#define MAX_SAMPLES 20000
#define ROUNDS 4

static const size_t batch_sizes[] = { 1, 100, 10000, 100000 };
#define N_BATCHES ELEMENTSOF(batch_sizes)
#define BATCH_10K 2
#define BATCH_100K 3

typedef enum Row {
        ROW_PINGPONG,
        ROW_IOCTL_FLOOR,
        ROW_CORE_IOCTL,
        ROW_CORE_TEXT,
        ROW_E2E,
        _ROW_MAX,
} Row;

static const char *const row_keys[_ROW_MAX] = {
        [ROW_PINGPONG]    = "pingpong",
        [ROW_IOCTL_FLOOR] = "ioctl_floor",
        [ROW_CORE_IOCTL]  = "core_ioctl",
        [ROW_CORE_TEXT]   = "core_text",
        [ROW_E2E]         = "e2e",
};

typedef enum JsonPart {
        JSON_REQUEST_FORMAT,            /* client */
        JSON_REQUEST_PARSE,             /* daemon: parse and decode */
        JSON_REPLY_FORMAT,              /* daemon: the reply structs and their text */
        JSON_REPLY_PARSE,               /* client: parse and decode */
        _JSON_PART_MAX,
} JsonPart;

static const char *const json_part_keys[_JSON_PART_MAX] = {
        [JSON_REQUEST_FORMAT] = "client_request_format",
        [JSON_REQUEST_PARSE]  = "daemon_request_parse_decode",
        [JSON_REPLY_FORMAT]   = "daemon_reply_format",
        [JSON_REPLY_PARSE]    = "client_reply_parse_decode",
};

typedef struct Batch {
        size_t n;
        uint64_t *addrs;                /* random, unsorted, with repeats */
        uint64_t *sorted;
        size_t distinct;                /* VMAs they fall in */
        size_t request_size, reply_size;        /* on the wire, NUL included */
        double ns[_ROW_MAX];            /* median per call */
        bool has_json;
        double json_ns[_JSON_PART_MAX]; /* median of each part, in-process */
        double json_share;              /* their sum over the end to end median */
} Batch;

typedef struct Target {
        const char *name;
        const char *key;
        pid_t pid;
        int ctl;                        /* closing it ends the child */
        size_t n_vmas;                  /* lines of its maps file */
        uint64_t *range_start, *range_end;      /* where addresses are drawn from */
        size_t n_ranges;
        int maps_fd;
        Proc *ioctl_proc, *text_proc;
        BuildIdCache *build_ids;
        Batch batches[N_BATCHES];
} Target;

typedef struct Bench {
        char dir[64];
        char socket_path[128];
        const char *vmaqd;
        pid_t daemon;
        Target targets[2];
        struct vmaq_client *client;
} Bench;

/* For the exit path: whatever is still running gets stopped. */
static Bench *bench_cleanup_target;
static bool bench_failed;

static double now(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return ts.tv_sec + ts.tv_nsec / 1e9;
}

_Noreturn static void die(const char *what, int r) {
        fprintf(stderr, "bench-e2e: %s: %s\n", what, strerror(r < 0 ? -r : r));
        bench_failed = true;
        exit(EXIT_FAILURE);
}

static void *xmalloc(size_t size) {
        void *p = malloc(MAX(size, (size_t) 1));

        if (!p)
                die("malloc", ENOMEM);
        return p;
}

static int compare_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;

        return x < y ? -1 : x > y;
}

static int compare_double(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;

        return x < y ? -1 : x > y;
}

typedef void (*BenchFn)(void *userdata);

typedef struct Samples {
        double v[MAX_SAMPLES];          /* seconds */
        size_t n;
} Samples;

/* Time calls of @fn for one round (a share of MIN_SECONDS), the first one not counted. */
static void samples_round(Samples *s, BenchFn fn, void *userdata, unsigned rounds) {
        size_t added = 0;
        double start;

        if (s->n == 0)
                fn(userdata);
        start = now();
        while (s->n < MAX_SAMPLES &&
               (added < (MIN_SAMPLES + rounds - 1) / rounds || now() - start < MIN_SECONDS / rounds)) {
                double t = now();

                fn(userdata);
                s->v[s->n++] = now() - t;
                added++;
        }
}

/* The median in ns. */
static double samples_median(Samples *s) {
        size_t n = s->n;

        assert(n > 0);
        qsort(s->v, n, sizeof(double), compare_double);
        return 1e9 * (n % 2 ? s->v[n / 2] : (s->v[n / 2 - 1] + s->v[n / 2]) / 2);
}

/* The median of @fn's duration in ns, alone. */
static double median_ns(BenchFn fn, void *userdata) {
        static Samples s;

        s.n = 0;
        samples_round(&s, fn, userdata, 1);
        return samples_median(&s);
}

static int read_exact(int fd, void *buf, size_t size) {
        for (size_t done = 0; done < size;) {
                ssize_t k = read(fd, (uint8_t *) buf + done, size - done);

                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return -errno;
                if (k == 0)
                        return -EPIPE;
                done += (size_t) k;
        }
        return 0;
}

static int write_all(int fd, const void *buf, size_t size) {
        for (size_t done = 0; done < size;) {
                ssize_t k = write(fd, (const uint8_t *) buf + done, size - done);

                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return -errno;
                done += (size_t) k;
        }
        return 0;
}

/* A field of /proc/PID/status in bytes ("VmRSS", "VmHWM"), or 0. */
static uint64_t proc_status_bytes(pid_t pid, const char *field) {
        char path[64], line[256];
        uint64_t kib = 0;
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%d/status", (int) pid);
        f = fopen(path, "re");
        if (!f)
                return 0;
        while (fgets(line, sizeof(line), f))
                if (strncmp(line, field, strlen(field)) == 0 && line[strlen(field)] == ':')
                        (void) sscanf(line + strlen(field) + 1, "%" SCNu64, &kib);
        fclose(f);
        return kib * 1024;
}

/* --- targets ---------------------------------------------------------------- */

/* A child that waits until its end of @ctl closes; the bench keeps the other. */
_Noreturn static void child_wait(int ctl) {
        char b;

        while (read(ctl, &b, 1) > 0 || errno == EINTR)
                ;
        _exit(EXIT_SUCCESS);
}

/* A child mapping every other page of a file, so that no two mappings merge. */
static void target_spawn_mappings(Target *t) {
        char path[] = "/tmp/vmaq-bench-XXXXXX";
        long ps = sysconf(_SC_PAGESIZE);
        int report[2], ctl[2], fd;
        pid_t pid;

        t->n_ranges = N_MAPPINGS;
        t->range_start = xmalloc(N_MAPPINGS * sizeof(uint64_t));
        t->range_end = xmalloc(N_MAPPINGS * sizeof(uint64_t));

        fd = mkostemp(path, O_CLOEXEC);
        if (fd < 0 || unlink(path) < 0 || ftruncate(fd, 2 * N_MAPPINGS * ps) < 0)
                die("temporary file", errno);
        if (pipe2(report, O_CLOEXEC) < 0 || pipe2(ctl, O_CLOEXEC) < 0)
                die("pipe", errno);

        pid = fork();
        if (pid < 0)
                die("fork", errno);
        if (pid == 0) {
                (void) prctl(PR_SET_PDEATHSIG, SIGKILL);
                close(ctl[1]);
                for (size_t i = 0; i < N_MAPPINGS; i++) {
                        void *p = mmap(NULL, ps, PROT_READ, MAP_PRIVATE, fd, 2 * i * ps);

                        if (p == MAP_FAILED)
                                _exit(EXIT_FAILURE);
                        t->range_start[i] = (uintptr_t) p;
                }
                if (write_all(report[1], t->range_start, N_MAPPINGS * sizeof(uint64_t)) < 0)
                        _exit(EXIT_FAILURE);
                child_wait(ctl[0]);
        }

        close(fd);
        close(report[1]);
        close(ctl[0]);
        if (read_exact(report[0], t->range_start, N_MAPPINGS * sizeof(uint64_t)) < 0)
                die("child setup", EIO);
        close(report[0]);
        for (size_t i = 0; i < N_MAPPINGS; i++)
                t->range_end[i] = t->range_start[i] + ps;
        t->pid = pid;
        t->ctl = ctl[1];
}

/* A plain forked child that sleeps: the bench's own few dozen VMAs. */
static void target_spawn_small(Target *t) {
        int ctl[2];
        pid_t pid;

        if (pipe2(ctl, O_CLOEXEC) < 0)
                die("pipe", errno);
        pid = fork();
        if (pid < 0)
                die("fork", errno);
        if (pid == 0) {
                (void) prctl(PR_SET_PDEATHSIG, SIGKILL);
                close(ctl[1]);
                child_wait(ctl[0]);
        }
        close(ctl[0]);
        t->pid = pid;
        t->ctl = ctl[1];
}

/*
 * Count the target's VMAs; for the small one, also take them all as the
 * ranges to draw from ([vsyscall] aside: it is no VMA of the process, the
 * ioctl does not see it).
 */
static void target_read_maps(Target *t, bool take_ranges) {
        char path[64], line[PATH_MAX + 256];
        size_t allocated = 0;
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%d/maps", (int) t->pid);
        f = fopen(path, "re");
        if (!f)
                die(path, errno);
        t->n_vmas = 0;
        while (fgets(line, sizeof(line), f)) {
                uint64_t start, end;

                t->n_vmas++;
                if (!take_ranges || strstr(line, "[vsyscall]"))
                        continue;
                if (sscanf(line, "%" SCNx64 "-%" SCNx64, &start, &end) != 2)
                        die("maps line", EBADMSG);
                if (t->n_ranges == allocated) {
                        allocated = MAX(allocated * 2, (size_t) 64);
                        t->range_start = realloc(t->range_start, allocated * sizeof(uint64_t));
                        t->range_end = realloc(t->range_end, allocated * sizeof(uint64_t));
                        if (!t->range_start || !t->range_end)
                                die("realloc", ENOMEM);
                }
                t->range_start[t->n_ranges] = start;
                t->range_end[t->n_ranges] = end;
                t->n_ranges++;
        }
        fclose(f);
}

static void target_open(Target *t) {
        char path[64];
        int r;

        snprintf(path, sizeof(path), "/proc/%d/maps", (int) t->pid);
        t->maps_fd = open(path, O_RDONLY|O_CLOEXEC);
        if (t->maps_fd < 0)
                die(path, errno);
        r = proc_open(&t->ioctl_proc, t->pid, VMA_BACKEND_IOCTL);
        if (r < 0)
                die("proc_open ioctl", r);
        r = proc_open(&t->text_proc, t->pid, VMA_BACKEND_TEXT);
        if (r < 0)
                die("proc_open text", r);
        r = build_id_cache_new(&t->build_ids, BUILD_ID_CACHE_SIZE);
        if (r < 0)
                die("build_id_cache_new", r);
}

static void target_stop(Target *t) {
        t->ioctl_proc = proc_free(t->ioctl_proc);
        t->text_proc = proc_free(t->text_proc);
        t->build_ids = build_id_cache_free(t->build_ids);
        t->maps_fd = safe_close(t->maps_fd);
        for (size_t i = 0; i < N_BATCHES; i++) {
                t->batches[i].addrs = mfree(t->batches[i].addrs);
                t->batches[i].sorted = mfree(t->batches[i].sorted);
        }
        t->range_start = mfree(t->range_start);
        t->range_end = mfree(t->range_end);
        if (t->pid > 0) {
                t->ctl = safe_close(t->ctl);
                (void) waitpid(t->pid, NULL, 0);
                t->pid = 0;
        }
}

/* --- the measured calls ------------------------------------------------------ */

/* One bare PROCMAP_QUERY per distinct VMA, over sorted addresses; returns how many. */
static size_t ioctl_floor(int maps_fd, const uint64_t *sorted, size_t n) {
        char name[PATH_MAX];
        size_t n_queries = 0;

        for (size_t i = 0; i < n;) {
                struct procmap_query q = {
                        .size = sizeof(q),
                        .query_addr = sorted[i],
                        .vma_name_addr = (uintptr_t) name,
                        .vma_name_size = sizeof(name),
                };

                n_queries++;
                if (ioctl(maps_fd, PROCMAP_QUERY, &q) < 0) {
                        if (errno != ENOENT)
                                die("PROCMAP_QUERY", errno);
                        i++;
                        continue;
                }
                while (i < n && sorted[i] < q.vma_end)
                        i++;
        }
        return n_queries;
}

static Normalization *core_normalize(Target *t, Proc *p, const Batch *b) {
        Normalization *out = NULL;
        int r;

        /* What the daemon asks for a Normalize with build IDs. */
        r = proc_normalize(p, b->addrs, b->n, &(NormalizeOptions) {
                        .flags = NORMALIZE_BUILD_IDS | NORMALIZE_ELF,
                        .build_id_cache = t->build_ids,
                        .max_build_id_reads = MAX_BUILD_ID_READS,
                }, &out);
        if (r < 0)
                die("proc_normalize", r);
        return out;
}

typedef struct Run {
        Bench *bench;
        Target *target;
        Batch *batch;
        Proc *proc;
        int fd;
        void *request, *reply;
        size_t request_size, reply_size;
        /* For the JSON parts. */
        char *text;
        size_t text_size;
        const Normalization *normalization;
        VarlinkLimits limits;
} Run;

static void run_floor(void *userdata) {
        Run *run = userdata;

        (void) ioctl_floor(run->target->maps_fd, run->batch->sorted, run->batch->n);
}

static void run_core(void *userdata) {
        Run *run = userdata;

        normalization_free(core_normalize(run->target, run->proc, run->batch));
}

static void run_e2e(void *userdata) {
        Run *run = userdata;
        struct vmaq_normalization *out = NULL;
        int r;

        r = vmaq_normalize(run->bench->client, run->target->pid, run->batch->addrs, run->batch->n, 0, 0,
                           &out);
        if (r < 0) {
                fprintf(stderr, "bench-e2e: vmaq_normalize: %s\n", vmaq_errmsg(run->bench->client));
                die("vmaq_normalize", r);
        }
        if (out->n_results != run->batch->n)
                die("vmaq_normalize results", EPROTO);
        vmaq_normalization_free(out);
}

static void run_pingpong(void *userdata) {
        Run *run = userdata;

        if (write_all(run->fd, run->request, run->request_size) < 0 ||
            read_exact(run->fd, run->reply, run->reply_size) < 0)
                die("ping-pong", EIO);
}

/* A forked child answering each request of @request_size bytes with @reply_size bytes, over a socketpair. */
static void pingpong_start(Run *run, size_t request_size, size_t reply_size, pid_t *ret_pid) {
        int sv[2];
        pid_t pid;

        run->request = xmalloc(request_size);
        run->reply = xmalloc(reply_size);
        run->request_size = request_size;
        run->reply_size = reply_size;
        memset(run->request, 'q', request_size);
        memset(run->reply, 'r', reply_size);
        if (socketpair(AF_UNIX, SOCK_STREAM|SOCK_CLOEXEC, 0, sv) < 0)
                die("socketpair", errno);
        pid = fork();
        if (pid < 0)
                die("fork", errno);
        if (pid == 0) {
                (void) prctl(PR_SET_PDEATHSIG, SIGKILL);
                close(sv[0]);
                while (read_exact(sv[1], run->request, request_size) >= 0)
                        if (write_all(sv[1], run->reply, reply_size) < 0)
                                break;
                _exit(EXIT_SUCCESS);
        }
        close(sv[1]);
        run->fd = sv[0];
        *ret_pid = pid;
}

static void pingpong_stop(Run *run, pid_t pid) {
        run->fd = safe_close(run->fd);
        (void) waitpid(pid, NULL, 0);
        run->request = mfree(run->request);
        run->reply = mfree(run->reply);
}

/* --- JSON, as the daemon and libvmaq do it ----------------------------------- */

static ProtoNormalizeRequest batch_request(const Target *t, const Batch *b) {
        return (ProtoNormalizeRequest) {
                .pid = t->pid,
                .addresses = b->addrs,
                .n_addresses = b->n,
                .build_ids = true,
        };
}

/* The reply's text for @n, built as daemon/methods.c builds a whole one. */
static int reply_format(const Normalization *n, char **ret, size_t *ret_size) {
        _cleanup_free_ ProtoModule *modules = NULL;
        _cleanup_free_ ProtoResult *results = NULL;

        modules = calloc(MAX(n->n_modules, (size_t) 1), sizeof(ProtoModule));
        results = calloc(MAX(n->n_results, (size_t) 1), sizeof(ProtoResult));
        if (!modules || !results)
                return -ENOMEM;
        for (size_t i = 0; i < n->n_modules; i++)
                modules[i] = reply_module(&n->modules[i], false);
        for (size_t i = 0; i < n->n_results; i++)
                results[i] = reply_result(&n->results[i], NULL);
        return proto_normalize_reply_format(&(ProtoNormalizeReply) {
                        .pid = n->pid,
                        .start_time = n->start_time,
                        .n_modules = n->n_modules,
                        .modules = modules,
                        .n_results = n->n_results,
                        .results = results,
                }, 0, false, ret, ret_size);
}

static void run_request_format(void *userdata) {
        Run *run = userdata;
        ProtoNormalizeRequest req = batch_request(run->target, run->batch);
        _cleanup_free_ char *text = NULL;
        size_t size;
        int r;

        r = proto_normalize_request_format(&req, false, &text, &size);
        if (r < 0)
                die("proto_normalize_request_format", r);
}

static void run_request_parse(void *userdata) {
        Run *run = userdata;
        _cleanup_(proto_normalize_request_done) ProtoNormalizeRequest req = {};
        _cleanup_(varlink_call_done) VarlinkCall call = {};
        const char *parameter = NULL;
        int r;

        r = proto_call_parse(run->text, run->text_size - 1, &run->limits, &call);
        if (r < 0)
                die("proto_call_parse", r);
        r = proto_normalize_request_decode(call.parameters, &call.packed, MAX_ADDRESSES, &req, &parameter);
        if (r < 0)
                die("proto_normalize_request_decode", r);
        if (req.n_addresses != run->batch->n)
                die("request decode", EPROTO);
}

static void run_reply_format(void *userdata) {
        Run *run = userdata;
        _cleanup_free_ char *text = NULL;
        size_t size;
        int r;

        r = reply_format(run->normalization, &text, &size);
        if (r < 0)
                die("proto_normalize_reply_format", r);
}

static void run_reply_parse(void *userdata) {
        Run *run = userdata;
        _cleanup_(proto_normalize_reply_done) ProtoNormalizeReply out = {};
        struct json_object *msg = NULL, *params = NULL;
        const char *error = NULL, *field = NULL;
        _cleanup_(proto_results_done) ProtoResults read = {};
        int r;

        r = proto_reply_parse(run->text, run->text_size - 1, &msg, &read);
        if (r < 0)
                die("proto_reply_parse", r);
        r = proto_reply_split(msg, &error, &params, NULL, &field);
        if (r >= 0)
                r = proto_normalize_reply_decode(params, &read, 0, &out, &field);
        if (r >= 0 && out.n_results != run->batch->n)
                r = -EPROTO;
        json_object_put(msg);
        if (r < 0)
                die("proto_normalize_reply_decode", r);
}

/* The four JSON parts at batch @b, each alone, in-process. */
static void measure_json(Target *t, Batch *b) {
        double sum = 0;

        _cleanup_(normalization_freep) Normalization *n = core_normalize(t, t->ioctl_proc, b);
        ProtoNormalizeRequest req = batch_request(t, b);
        _cleanup_free_ char *request = NULL, *reply = NULL;
        size_t request_size, reply_size;
        Run run = { .target = t, .batch = b, .normalization = n };
        int r;

        r = proto_normalize_request_format(&req, false, &request, &request_size);
        if (r < 0)
                die("proto_normalize_request_format", r);
        r = reply_format(n, &reply, &reply_size);
        if (r < 0)
                die("proto_normalize_reply_format", r);
        proto_request_limits(MAX_ADDRESSES, &run.limits);

        b->json_ns[JSON_REQUEST_FORMAT] = median_ns(run_request_format, &run);
        run.text = request;
        run.text_size = request_size;
        b->json_ns[JSON_REQUEST_PARSE] = median_ns(run_request_parse, &run);
        b->json_ns[JSON_REPLY_FORMAT] = median_ns(run_reply_format, &run);
        run.text = reply;
        run.text_size = reply_size;
        b->json_ns[JSON_REPLY_PARSE] = median_ns(run_reply_parse, &run);

        for (JsonPart p = 0; p < _JSON_PART_MAX; p++)
                sum += b->json_ns[p];
        b->json_share = sum / b->ns[ROW_E2E];
        b->has_json = true;
}

/* --- the daemon ---------------------------------------------------------------- */

static int connect_to(const char *path) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd;

        strncpy(sa.sun_path, path, sizeof(sa.sun_path) - 1);
        fd = socket(AF_UNIX, SOCK_STREAM|SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0) {
                int r = -errno;

                close(fd);
                return r;
        }
        return fd;
}

static int daemon_launch(Bench *b) {
        char log_path[160], max_addresses[32], max_reply[32];
        pid_t pid;

        snprintf(log_path, sizeof(log_path), "%s/vmaqd.log", b->dir);
        snprintf(max_addresses, sizeof(max_addresses), "%u", MAX_ADDRESSES);
        snprintf(max_reply, sizeof(max_reply), "%u", MAX_REPLY_SIZE);
        (void) unlink(b->socket_path);
        pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0) {
                /* Room for the 1,000 processes cached below: the cache is bounded by RLIMIT_NOFILE. */
                struct rlimit rl = { 16384, 16384 };
                int fd = open(log_path, O_WRONLY|O_CREAT|O_APPEND|O_CLOEXEC, 0644);

                (void) prctl(PR_SET_PDEATHSIG, SIGTERM);
                if (fd < 0 || dup2(fd, STDOUT_FILENO) < 0 || dup2(fd, STDERR_FILENO) < 0 ||
                    setrlimit(RLIMIT_NOFILE, &rl) < 0)
                        _exit(EXIT_FAILURE);
                /* One user holds the busy connections below: its share of them is raised. */
                execl(b->vmaqd, b->vmaqd, "--socket", b->socket_path, "--log-level", "warning",
                      "--backend", "ioctl", "--max-addresses", max_addresses,
                      "--max-reply-size", max_reply, "--idle-timeout", "3600",
                      "--max-connections-per-user", "4096", (char *) NULL);
                _exit(127);
        }
        b->daemon = pid;

        for (unsigned i = 0; i < 500; i++) {
                int fd = connect_to(b->socket_path);

                if (fd >= 0) {
                        close(fd);
                        return 0;
                }
                if (waitpid(pid, NULL, WNOHANG) == pid) {
                        b->daemon = 0;
                        return -ECHILD;
                }
                (void) poll(NULL, 0, 10);
        }
        return -ETIMEDOUT;
}

static void daemon_stop(Bench *b) {
        if (b->daemon <= 0)
                return;
        (void) kill(b->daemon, SIGTERM);
        (void) waitpid(b->daemon, NULL, 0);
        b->daemon = 0;
}

static void bench_connect(Bench *b) {
        int r;

        vmaq_close(b->client);
        b->client = NULL;
        r = vmaq_connect(&b->client, b->socket_path);
        if (r < 0)
                die("vmaq_connect", r);
}

/* A fresh daemon, and a new connection to it. */
static void bench_restart(Bench *b) {
        int r;

        vmaq_close(b->client);
        b->client = NULL;
        daemon_stop(b);
        r = daemon_launch(b);
        if (r < 0)
                die("restarting vmaqd", r);
        bench_connect(b);
}

/*
 * The bytes one vmaq_normalize() of @batch moves each way, counted by a
 * forked relay between libvmaq and the daemon: what is really sent, a
 * streamed answer's parts and all.
 */
static void wire_sizes(Bench *b, const Target *t, const Batch *batch, size_t *ret_request, size_t *ret_reply) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        struct vmaq_client *c = NULL;
        struct vmaq_normalization *out = NULL;
        uint64_t counts[2];
        int listen_fd, report[2], r;
        pid_t pid;

        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/relay.sock", b->dir);
        (void) unlink(sa.sun_path);
        listen_fd = socket(AF_UNIX, SOCK_STREAM|SOCK_CLOEXEC, 0);
        if (listen_fd < 0 || bind(listen_fd, (struct sockaddr *) &sa, sizeof(sa)) < 0 || listen(listen_fd, 1) < 0)
                die("relay socket", errno);
        if (pipe2(report, O_CLOEXEC) < 0)
                die("pipe", errno);
        pid = fork();
        if (pid < 0)
                die("fork", errno);
        if (pid == 0) {
                static char buf[1 << 16];
                uint64_t moved[2] = {};
                struct pollfd p[2];
                int fds[2];

                (void) prctl(PR_SET_PDEATHSIG, SIGKILL);
                fds[0] = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
                fds[1] = connect_to(b->socket_path);
                if (fds[0] < 0 || fds[1] < 0)
                        _exit(EXIT_FAILURE);
                /* Until the client hangs up: moved[0] client to daemon, moved[1] back. */
                for (;;) {
                        p[0] = (struct pollfd) { .fd = fds[0], .events = POLLIN };
                        p[1] = (struct pollfd) { .fd = fds[1], .events = POLLIN };
                        if (poll(p, 2, -1) < 0) {
                                if (errno == EINTR)
                                        continue;
                                _exit(EXIT_FAILURE);
                        }
                        for (unsigned k = 0; k < 2; k++) {
                                ssize_t n;

                                if (!(p[k].revents & (POLLIN|POLLHUP|POLLERR)))
                                        continue;
                                n = read(fds[k], buf, sizeof(buf));
                                if (n <= 0)
                                        goto done;
                                if (write_all(fds[!k], buf, (size_t) n) < 0)
                                        _exit(EXIT_FAILURE);
                                moved[k] += (uint64_t) n;
                        }
                }
        done:
                _exit(write_all(report[1], moved, sizeof(moved)) < 0 ? EXIT_FAILURE : EXIT_SUCCESS);
        }
        close(listen_fd);
        close(report[1]);

        r = vmaq_connect(&c, sa.sun_path);
        if (r < 0)
                die("vmaq_connect (relay)", r);
        r = vmaq_normalize(c, t->pid, batch->addrs, batch->n, 0, 0, &out);
        if (r < 0)
                die("vmaq_normalize (relay)", r);
        vmaq_normalization_free(out);
        vmaq_close(c);
        if (read_exact(report[0], counts, sizeof(counts)) < 0)
                die("relay", EIO);
        close(report[0]);
        (void) waitpid(pid, NULL, 0);
        (void) unlink(sa.sun_path);
        *ret_request = counts[0];
        *ret_reply = counts[1];
}

static void run_status(void *userdata) {
        Bench *b = userdata;
        struct vmaq_status *status = NULL;
        int r;

        r = vmaq_get_status(b->client, &status);
        if (r < 0)
                die("vmaq_get_status", r);
        vmaq_status_free(status);
}

static void bench_cleanup(void) {
        Bench *b = bench_cleanup_target;
        char path[160];

        if (!b)
                return;
        vmaq_close(b->client);
        b->client = NULL;
        for (size_t i = 0; i < ELEMENTSOF(b->targets); i++)
                target_stop(&b->targets[i]);
        daemon_stop(b);
        if (bench_failed) {
                fprintf(stderr, "bench-e2e: the daemon's log is in %s/vmaqd.log\n", b->dir);
                return;
        }
        snprintf(path, sizeof(path), "%s/vmaqd.log", b->dir);
        (void) unlink(path);
        (void) unlink(b->socket_path);
        (void) rmdir(b->dir);
}

/* --- concurrent clients ----------------------------------------------------------- */

typedef struct ClientResult {
        uint64_t calls;
        uint64_t busy;                  /* refused with -EBUSY, retried */
        double seconds;
        int error;
} ClientResult;

/*
 * One call on *@c. Returns 1 on success; 0 when the daemon's memory budget
 * had no room for it: it answers MemoryLimitReached and closes the
 * connection (we may see only the close), so as libvmaq(3) says we retry
 * later, on a new connection made here. Else a negative errno.
 */
static int client_call(struct vmaq_client **c, const char *socket_path, const Target *t, const Batch *batch) {
        struct vmaq_normalization *out = NULL;
        int r;

        r = vmaq_normalize(*c, t->pid, batch->addrs, batch->n, 0, 0, &out);
        vmaq_normalization_free(out);
        if (r >= 0)
                return 1;
        if (!IN_SET(r, -EBUSY, -ECONNRESET, -EPIPE))
                return r;
        vmaq_close(*c);
        *c = NULL;
        (void) poll(NULL, 0, 1);
        r = vmaq_connect(c, socket_path);
        return r < 0 ? r : 0;
}

_Noreturn static void client_main(const Bench *b, const Target *t, const Batch *batch, int ready, int go,
                                  int results) {
        struct vmaq_client *c = NULL;
        ClientResult res = {};
        double start;
        char byte;
        int r;

        (void) prctl(PR_SET_PDEATHSIG, SIGKILL);
        r = vmaq_connect(&c, b->socket_path);
        while (r == 0)
                r = client_call(&c, b->socket_path, t, batch);
        if (write(ready, "r", 1) != 1 || read(go, &byte, 1) != 0)
                _exit(EXIT_FAILURE);

        start = now();
        while (r >= 0) {
                r = client_call(&c, b->socket_path, t, batch);
                if (r > 0)
                        res.calls++;
                else if (r == 0)
                        res.busy++;
                res.seconds = now() - start;
                if (res.seconds >= CONCURRENT_SECONDS)
                        break;
        }
        res.error = r < 0 ? -r : 0;
        vmaq_close(c);
        _exit(write(results, &res, sizeof(res)) == sizeof(res) ? EXIT_SUCCESS : EXIT_FAILURE);
}

/* @n_clients processes, each its own connection, normalizing @batch for CONCURRENT_SECONDS. */
static double concurrent_rate(const Bench *b, const Target *t, const Batch *batch, unsigned n_clients,
                              uint64_t *ret_calls, uint64_t *ret_busy) {
        _cleanup_free_ pid_t *pids = xmalloc(n_clients * sizeof(pid_t));
        int ready[2], go[2], results[2];
        double longest = 0;
        uint64_t calls = 0, busy = 0;

        if (pipe2(ready, O_CLOEXEC) < 0 || pipe2(go, O_CLOEXEC) < 0 || pipe2(results, O_CLOEXEC) < 0)
                die("pipe", errno);
        for (unsigned i = 0; i < n_clients; i++) {
                pids[i] = fork();
                if (pids[i] < 0)
                        die("fork", errno);
                if (pids[i] == 0) {
                        close(ready[0]);
                        close(go[1]);
                        close(results[0]);
                        client_main(b, t, batch, ready[1], go[0], results[1]);
                }
        }
        close(ready[1]);
        close(go[0]);
        close(results[1]);

        for (unsigned i = 0; i < n_clients; i++) {
                char byte;

                if (read_exact(ready[0], &byte, 1) < 0)
                        die("client start", EIO);
        }
        /* All start at once: each sees EOF. */
        close(go[1]);

        for (unsigned i = 0; i < n_clients; i++) {
                ClientResult res;

                if (read_exact(results[0], &res, sizeof(res)) < 0)
                        die("client result", EIO);
                if (res.error != 0)
                        die("concurrent vmaq_normalize", res.error);
                calls += res.calls;
                busy += res.busy;
                longest = MAX(longest, res.seconds);
        }
        close(ready[0]);
        close(results[0]);
        for (unsigned i = 0; i < n_clients; i++)
                (void) waitpid(pids[i], NULL, 0);

        *ret_calls = calls;
        *ret_busy = busy;
        return (double) calls * batch->n / longest;
}

static void send_status_call(int fd, const char *what) {
        static const char call[] = "{\"method\":\"io.vmaq.GetStatus\"}";
        int r = write_all(fd, call, sizeof(call));

        if (r < 0)
                die(what, r);
}

/*
 * The probe of busy_connections(), in a child of its own running as @uid:
 * once @go reads EOF, GetStatus every BUSY_PROBE_MS for BUSY_SECONDS; the
 * median round trip goes to @result.
 */
_Noreturn static void probe_main(const Bench *b, uid_t uid, int go, int result) {
        double probes[BUSY_PROBES_MAX], t0, median;
        size_t n_probes = 0;
        char buf[8192];
        int fd;

        if (uid != 0 && (setgroups(0, NULL) < 0 || setresgid(uid, uid, uid) < 0 || setresuid(uid, uid, uid) < 0))
                die("becoming the probe's user", errno);
        fd = connect_to(b->socket_path);
        if (fd < 0)
                die("connecting the probe", fd);
        (void) read(go, buf, 1);

        t0 = now();
        while (now() - t0 < BUSY_SECONDS && n_probes < ELEMENTSOF(probes)) {
                double start = now();
                size_t got = 0;

                send_status_call(fd, "probe GetStatus");
                do {
                        ssize_t k = recv(fd, buf + got, sizeof(buf) - got, 0);

                        if (k <= 0)
                                die("probe reply", k < 0 ? errno : EPIPE);
                        got += (size_t) k;
                } while (!memchr(buf, '\0', got) && got < sizeof(buf));
                probes[n_probes++] = (now() - start) * 1e9;
                (void) poll(NULL, 0, BUSY_PROBE_MS);
        }
        qsort(probes, n_probes, sizeof(double), compare_double);
        median = n_probes > 0 ? probes[n_probes / 2] : 0;
        _exit(write(result, &median, sizeof(median)) == sizeof(median) ? EXIT_SUCCESS : EXIT_FAILURE);
}

/*
 * @n connections of this process, each keeping a GetStatus in flight (the
 * next is sent when its reply arrives), for BUSY_SECONDS; meanwhile a
 * child running as @probe_uid asks GetStatus every BUSY_PROBE_MS. Returns
 * the replies per second the busy ones got, and in *ret_probe_ns the
 * median round trip of the probe's calls.
 */
static double busy_connections(const Bench *b, unsigned n, uid_t probe_uid, double *ret_probe_ns) {
        _cleanup_free_ struct pollfd *p = xmalloc(n * sizeof(*p));
        double t0, elapsed;
        uint64_t replies = 0;
        char buf[8192];
        int go[2], result[2];
        pid_t pid;

        for (unsigned i = 0; i < n; i++) {
                p[i] = (struct pollfd) { .fd = connect_to(b->socket_path), .events = POLLIN };
                if (p[i].fd < 0)
                        die("connecting the busy connections", -p[i].fd);
                send_status_call(p[i].fd, "busy GetStatus");
        }
        if (pipe2(go, O_CLOEXEC) < 0 || pipe2(result, O_CLOEXEC) < 0)
                die("pipe", errno);
        pid = fork();
        if (pid < 0)
                die("fork", errno);
        if (pid == 0) {
                close(go[1]);
                close(result[0]);
                probe_main(b, probe_uid, go[0], result[1]);
        }
        close(go[0]);
        close(result[1]);
        close(go[1]);

        t0 = now();
        while (now() - t0 < BUSY_SECONDS) {
                if (poll(p, n, BUSY_PROBE_MS) <= 0)
                        continue;
                for (unsigned i = 0; i < n; i++) {
                        ssize_t k;

                        if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
                                continue;
                        k = recv(p[i].fd, buf, sizeof(buf), MSG_DONTWAIT);
                        if (k <= 0)
                                die("busy reply", k < 0 ? errno : EPIPE);
                        /* A reply may come in several reads: its NUL ends it. */
                        for (ssize_t j = 0; j < k; j++)
                                if (buf[j] == '\0') {
                                        replies++;
                                        send_status_call(p[i].fd, "busy GetStatus");
                                }
                }
        }
        elapsed = now() - t0;

        if (read_exact(result[0], ret_probe_ns, sizeof(*ret_probe_ns)) < 0)
                die("the probe's result", EIO);
        close(result[0]);
        (void) waitpid(pid, NULL, 0);
        for (unsigned i = 0; i < n; i++)
                close(p[i].fd);
        return (double) replies / elapsed;
}

/* --- memory ---------------------------------------------------------------------- */

static int clear_peak(pid_t pid) {
        char path[64];
        _cleanup_close_ int fd = -EBADF;

        snprintf(path, sizeof(path), "/proc/%d/clear_refs", (int) pid);
        fd = open(path, O_WRONLY|O_CLOEXEC);
        if (fd < 0)
                return -errno;
        if (write(fd, "5", 1) != 1)
                return -errno;
        return 0;
}

static uintptr_t some_static_address(void) {
        static volatile int here;

        return (uintptr_t) &here;
}

/*
 * Bytes the daemon holds per cached process: @n + 1 sleeping children, one
 * address each; the daemon's RSS after the first (which fills what any
 * call fills once: the build ID of this program, the allocator) and after
 * the last.
 */
static double bytes_per_cached(Bench *b, unsigned n, uint64_t *ret_before, uint64_t *ret_after,
                               uint64_t *ret_cached) {
        _cleanup_free_ pid_t *pids = xmalloc((n + 1) * sizeof(pid_t));
        uint64_t addr = some_static_address();
        struct vmaq_status *status = NULL;
        int ctl[2], r;

        if (pipe2(ctl, O_CLOEXEC) < 0)
                die("pipe", errno);
        for (unsigned i = 0; i <= n; i++) {
                pids[i] = fork();
                if (pids[i] < 0)
                        die("fork", errno);
                if (pids[i] == 0) {
                        (void) prctl(PR_SET_PDEATHSIG, SIGKILL);
                        close(ctl[1]);
                        child_wait(ctl[0]);
                }
        }
        close(ctl[0]);

        for (unsigned i = 0; i <= n; i++) {
                struct vmaq_normalization *out = NULL;

                if (i == 1)
                        *ret_before = proc_status_bytes(b->daemon, "VmRSS");
                r = vmaq_normalize(b->client, pids[i], &addr, 1, 0, 0, &out);
                if (r < 0)
                        die("vmaq_normalize (cached)", r);
                vmaq_normalization_free(out);
        }
        *ret_after = proc_status_bytes(b->daemon, "VmRSS");
        r = vmaq_get_status(b->client, &status);
        if (r < 0)
                die("vmaq_get_status", r);
        *ret_cached = status->proc_cache_size;
        vmaq_status_free(status);

        close(ctl[1]);
        for (unsigned i = 0; i <= n; i++)
                (void) waitpid(pids[i], NULL, 0);
        return ((double) *ret_after - (double) *ret_before) / n;
}

/* --- output ----------------------------------------------------------------------- */

static void json_object_putp(struct json_object **o) {
        json_object_put(*o);
}

static void json_add_double(struct json_object *o, const char *key, double v) {
        json_object_object_add(o, key, json_object_new_double(v));
}

static void json_add_uint(struct json_object *o, const char *key, uint64_t v) {
        json_object_object_add(o, key, json_object_new_uint64(v));
}

static double us(double ns) {
        return ns / 1000;
}

static double mib(uint64_t bytes) {
        return (double) bytes / (1 << 20);
}

static void target_print(const Target *t) {
        printf("%s: pid %d, %zu VMAs, addresses drawn from %zu of them\n",
               t->name, (int) t->pid, t->n_vmas, t->n_ranges);
        printf("%-7s %-8s %9s %9s %10s %10s %10s %10s %10s %9s\n",
               "batch", "distinct", "req B", "reply B", "ping-pong", "ioctl flr", "core ioctl",
               "core text", "end to end", "e2e/core");
        for (size_t i = 0; i < N_BATCHES; i++) {
                const Batch *b = &t->batches[i];

                printf("%-7zu %-8zu %9zu %9zu %10.1f %10.1f %10.1f %10.1f %10.1f %8.2fx\n",
                       b->n, b->distinct, b->request_size, b->reply_size,
                       us(b->ns[ROW_PINGPONG]), us(b->ns[ROW_IOCTL_FLOOR]), us(b->ns[ROW_CORE_IOCTL]),
                       us(b->ns[ROW_CORE_TEXT]), us(b->ns[ROW_E2E]), b->ns[ROW_E2E] / b->ns[ROW_CORE_IOCTL]);
        }
        printf("  (median µs per call)\n");
        printf("%-7s %12s %12s %12s %12s %10s %9s\n", "JSON", "client req", "daemon req", "daemon reply",
               "client reply", "sum", "of e2e");
        for (size_t i = 0; i < N_BATCHES; i++) {
                const Batch *b = &t->batches[i];

                if (!b->has_json)
                        continue;
                printf("%-7zu %12.1f %12.1f %12.1f %12.1f %10.1f %8.0f%%\n", b->n,
                       us(b->json_ns[JSON_REQUEST_FORMAT]), us(b->json_ns[JSON_REQUEST_PARSE]),
                       us(b->json_ns[JSON_REPLY_FORMAT]), us(b->json_ns[JSON_REPLY_PARSE]),
                       us(b->json_share * b->ns[ROW_E2E]), 100 * b->json_share);
        }
        printf("  (median µs: client request format, daemon request parse+decode, daemon reply\n"
               "  format, client reply parse+decode; in-process, on the real request and answer)\n\n");
}

static struct json_object *target_json(const Target *t) {
        struct json_object *o = json_object_new_object(), *batches = json_object_new_array();

        json_object_object_add(o, "name", json_object_new_string(t->name));
        json_add_uint(o, "vmas", t->n_vmas);
        json_add_uint(o, "ranges", t->n_ranges);
        for (size_t i = 0; i < N_BATCHES; i++) {
                const Batch *b = &t->batches[i];
                struct json_object *bo = json_object_new_object(), *ns = json_object_new_object();

                json_add_uint(bo, "addresses", b->n);
                json_add_uint(bo, "distinct_vmas", b->distinct);
                json_add_uint(bo, "request_bytes", b->request_size);
                json_add_uint(bo, "reply_bytes", b->reply_size);
                for (Row r = 0; r < _ROW_MAX; r++)
                        json_add_double(ns, row_keys[r], b->ns[r]);
                json_object_object_add(bo, "median_ns", ns);
                if (b->has_json) {
                        struct json_object *js = json_object_new_object();

                        for (JsonPart p = 0; p < _JSON_PART_MAX; p++)
                                json_add_double(js, json_part_keys[p], b->json_ns[p]);
                        json_add_double(js, "share_of_e2e", b->json_share);
                        json_object_object_add(bo, "json_median_ns", js);
                }
                json_object_array_add(batches, bo);
        }
        json_object_object_add(o, "batches", batches);
        return o;
}

/* --- main -------------------------------------------------------------------------- */

static void measure_target(Bench *b, Target *t, unsigned seed) {
        static const BenchFn row_fns[_ROW_MAX] = {
                [ROW_PINGPONG]    = run_pingpong,
                [ROW_IOCTL_FLOOR] = run_floor,
                [ROW_CORE_IOCTL]  = run_core,
                [ROW_CORE_TEXT]   = run_core,
                [ROW_E2E]         = run_e2e,
        };
        static Samples samples[_ROW_MAX];

        for (size_t i = 0; i < N_BATCHES; i++) {
                Batch *batch = &t->batches[i];
                Run runs[_ROW_MAX];
                pid_t pingpong_pid;

                for (Row row = 0; row < _ROW_MAX; row++)
                        runs[row] = (Run) { .bench = b, .target = t, .batch = batch, .fd = -EBADF };

                batch->n = batch_sizes[i];
                batch->addrs = xmalloc(batch->n * sizeof(uint64_t));
                batch->sorted = xmalloc(batch->n * sizeof(uint64_t));
                /* A random range, a random place in it. */
                for (size_t k = 0; k < batch->n; k++) {
                        size_t j = (size_t) rand_r(&seed) % t->n_ranges;
                        uint64_t len = t->range_end[j] - t->range_start[j];
                        uint64_t off = (((uint64_t) rand_r(&seed) << 31) ^ (uint64_t) rand_r(&seed)) % len;

                        batch->addrs[k] = t->range_start[j] + off;
                }
                memcpy(batch->sorted, batch->addrs, batch->n * sizeof(uint64_t));
                qsort(batch->sorted, batch->n, sizeof(uint64_t), compare_u64);
                batch->distinct = ioctl_floor(t->maps_fd, batch->sorted, batch->n);

                /* The real sizes on the wire, of one call through a relay. */
                wire_sizes(b, t, batch, &batch->request_size, &batch->reply_size);

                pingpong_start(&runs[ROW_PINGPONG], batch->request_size, batch->reply_size, &pingpong_pid);
                runs[ROW_CORE_IOCTL].proc = t->ioctl_proc;
                runs[ROW_CORE_TEXT].proc = t->text_proc;
                for (Row row = 0; row < _ROW_MAX; row++)
                        samples[row].n = 0;
                for (unsigned round = 0; round < ROUNDS; round++)
                        for (Row row = 0; row < _ROW_MAX; row++)
                                samples_round(&samples[row], row_fns[row], &runs[row], ROUNDS);
                for (Row row = 0; row < _ROW_MAX; row++)
                        batch->ns[row] = samples_median(&samples[row]);
                pingpong_stop(&runs[ROW_PINGPONG], pingpong_pid);
        }

        measure_json(t, &t->batches[BATCH_10K]);
        measure_json(t, &t->batches[BATCH_100K]);
}

int main(int argc, char *argv[]) {
        static const unsigned client_counts[] = { 1, 8, 64 };
        static Bench b = {
                .targets = { { .maps_fd = -EBADF, .ctl = -EBADF }, { .maps_fd = -EBADF, .ctl = -EBADF } },
        };
        _cleanup_(json_object_putp) struct json_object *root = NULL;
        uint64_t idle, cold_before, peak, cold_after, warm_before = 0, warm_peak = 0;
        uint64_t cached_before = 0, cached_after = 0, cached = 0;
        double rates[ELEMENTSOF(client_counts)], per_cached, status_ns, start = now();
        double busy_rate, busy_rate_other, busy_probe_ns, busy_other_ns;
        uint64_t calls[ELEMENTSOF(client_counts)], busy[ELEMENTSOF(client_counts)];
        struct json_object *targets, *conc, *mem, *ratios;
        const char *json_path = getenv("BENCH_JSON") ?: "bench-e2e.json";
        Target *big = &b.targets[0], *small = &b.targets[1];
        int r;

        b.vmaqd = argc > 1 ? argv[1] : getenv("VMAQD");
        if (!b.vmaqd) {
                fprintf(stderr, "usage: %s VMAQD (or $VMAQD)\n", argv[0]);
                return EXIT_FAILURE;
        }
        if (geteuid() != 0) {
                printf("SKIP: bench-e2e needs root, to start vmaqd and let it read any process\n");
                return 77;
        }
        r = vma_backend_probe();
        if (r <= 0) {
                printf("SKIP: this kernel lacks PROCMAP_QUERY, the floors and the daemon's backend\n");
                return r < 0 ? EXIT_FAILURE : 77;
        }
        (void) signal(SIGPIPE, SIG_IGN);
        /* Room for the busy connections. */
        if (setrlimit(RLIMIT_NOFILE, &(struct rlimit) { 16384, 16384 }) < 0)
                die("RLIMIT_NOFILE", errno);

        snprintf(b.dir, sizeof(b.dir), "/tmp/vmaqd-bench-e2e-XXXXXX");
        /* Open to the other user that probes the busy connections. */
        if (!mkdtemp(b.dir) || chmod(b.dir, 0755) < 0)
                die("mkdtemp", errno);
        snprintf(b.socket_path, sizeof(b.socket_path), "%s/vmaqd.sock", b.dir);
        bench_cleanup_target = &b;
        if (atexit(bench_cleanup) != 0)
                die("atexit", ENOMEM);

        /* The small one first, while the bench is still small itself. */
        small->name = "small process";
        small->key = "small";
        target_spawn_small(small);
        target_read_maps(small, true);
        big->name = "2,000 file mappings";
        big->key = "mappings_2000";
        target_spawn_mappings(big);
        target_read_maps(big, false);
        target_open(big);
        target_open(small);

        r = daemon_launch(&b);
        if (r < 0) {
                fprintf(stderr, "bench-e2e: starting %s: %s (see %s/vmaqd.log)\n",
                        b.vmaqd, strerror(-r), b.dir);
                bench_cleanup_target = NULL;
                return EXIT_FAILURE;
        }
        (void) poll(NULL, 0, 100);
        idle = proc_status_bytes(b.daemon, "VmRSS");
        bench_connect(&b);

        printf("vmaqd %s, backend ioctl, build IDs on; each figure the median of >= %d calls over >= %.0f ms,\n"
               "in %d rounds taking the rows of a batch in turn\n\n",
               b.vmaqd, MIN_SAMPLES, MIN_SECONDS * 1000, ROUNDS);
        status_ns = median_ns(run_status, &b);
        measure_target(&b, big, 1);
        target_print(big);
        measure_target(&b, small, 2);
        target_print(small);

        /*
         * The peak over one 100,000-address call on this daemon, warm: its heap
         * held such calls already. VmHWM is reset to the RSS of now, if that
         * works.
         */
        if (clear_peak(b.daemon) >= 0 &&
            proc_status_bytes(b.daemon, "VmHWM") <= proc_status_bytes(b.daemon, "VmRSS") + (256U << 10)) {
                warm_before = proc_status_bytes(b.daemon, "VmRSS");
                run_e2e(&(Run) { .bench = &b, .target = big, .batch = &big->batches[BATCH_100K] });
                warm_peak = proc_status_bytes(b.daemon, "VmHWM");
        }

        /* Concurrent clients, on the 2,000 mappings. */
        printf("%-8s %8s %8s %14s %8s\n", "clients", "calls", "busy", "addresses/s", "vs 1");
        for (size_t i = 0; i < ELEMENTSOF(client_counts); i++) {
                rates[i] = concurrent_rate(&b, big, &big->batches[BATCH_10K], client_counts[i], &calls[i],
                                           &busy[i]);
                printf("%-8u %8" PRIu64 " %8" PRIu64 " %14.0f %7.2fx\n", client_counts[i], calls[i], busy[i],
                       rates[i], rates[i] / rates[0]);
        }
        printf("  (%zu-address batches on the 2,000 mappings, %.0f s each; busy: refused for the memory\n"
               "  budget, MemoryLimitReached, and retried on a new connection after 1 ms)\n\n",
               big->batches[BATCH_10K].n, CONCURRENT_SECONDS);

        /* Many connections at once, each with a call in flight: what one more caller waits. */
        busy_rate = busy_connections(&b, N_BUSY, 0, &busy_probe_ns);
        busy_rate_other = busy_connections(&b, N_BUSY, BUSY_OTHER_UID, &busy_other_ns);
        printf("busy connections: %u of root, each with a GetStatus in flight: %.0f replies/s; meanwhile\n"
               "  GetStatus on another connection of root took %.1f ms (median), %.0fx an idle one;\n"
               "  of another user (%.0f replies/s to root): %.2f ms, %.1fx\n\n",
               N_BUSY, busy_rate, busy_probe_ns / 1e6, busy_probe_ns / status_ns, busy_rate_other,
               busy_other_ns / 1e6, busy_other_ns / status_ns);

        /* Cold: a fresh daemon, whose first call is the 100,000 addresses. */
        bench_restart(&b);
        cold_before = proc_status_bytes(b.daemon, "VmRSS");
        run_e2e(&(Run) { .bench = &b, .target = big, .batch = &big->batches[BATCH_100K] });
        peak = proc_status_bytes(b.daemon, "VmHWM");
        cold_after = proc_status_bytes(b.daemon, "VmRSS");

        /* A fresh daemon again: the processes cached must not fill memory that earlier calls freed. */
        bench_restart(&b);
        per_cached = bytes_per_cached(&b, N_CACHED, &cached_before, &cached_after, &cached);

        printf("daemon memory: idle %.1f MiB after start\n", mib(idle));
        printf("daemon memory: %zu-address call on a fresh daemon: %.1f MiB before, peak %.1f MiB, "
               "%.1f MiB after\n",
               big->batches[BATCH_100K].n, mib(cold_before), mib(peak), mib(cold_after));
        if (warm_peak > 0)
                printf("daemon memory: the same call on the daemon of the figures above: %.1f MiB before, "
                       "peak %.1f MiB (VmHWM reset)\n", mib(warm_before), mib(warm_peak));
        printf("daemon memory: %u more processes cached (%" PRIu64 " in the cache): %.1f -> %.1f MiB, "
               "%.0f bytes each\n",
               N_CACHED, cached, mib(cached_before), mib(cached_after), per_cached);
        printf("daemon round trip: GetStatus %.1f µs (median)\n\n", us(status_ns));

        {
                const Batch *b1 = &big->batches[0], *b100 = &big->batches[1],
                        *b10k = &big->batches[BATCH_10K], *b100k = &big->batches[BATCH_100K];
                double wire_100k = b100k->request_size + b100k->reply_size;
                double r_10k = b10k->ns[ROW_E2E] / b10k->ns[ROW_IOCTL_FLOOR];
                double r_100 = b100->ns[ROW_E2E] / (b100->ns[ROW_IOCTL_FLOOR] + b100->ns[ROW_PINGPONG]);
                double r_1 = b1->ns[ROW_E2E] / (b1->ns[ROW_PINGPONG] + b1->ns[ROW_IOCTL_FLOOR]);
                double r_peak = (double) peak / wire_100k;
                double r_peak_growth = ((double) peak - (double) cold_before) / wire_100k;

                printf("Ratios (2,000 file mappings):\n");
                printf("  10,000 e2e / ioctl floor                 %8.2fx\n", r_10k);
                printf("  100 e2e / (ioctl floor + ping-pong)      %8.2fx\n", r_100);
                printf("  1 e2e / (ping-pong + one ioctl)          %8.2fx\n", r_1);
                printf("  JSON share of e2e at 10,000              %8.0f%%\n", 100 * b10k->json_share);
                printf("  8 clients / 1 client                     %8.2fx\n", rates[1] / rates[0]);
                printf("  64 clients / 1 client                    %8.2fx\n", rates[2] / rates[0]);
                printf("  peak RSS / wire bytes at 100,000         %8.2fx\n", r_peak);
                printf("  (peak - RSS before) / wire bytes         %8.2fx\n", r_peak_growth);
                printf("  GetStatus among %u busy / idle         %8.0fx\n", N_BUSY, busy_probe_ns / status_ns);
                printf("  the same, of another user / idle         %8.1fx\n", busy_other_ns / status_ns);
                printf("Ratios (small process):\n");
                printf("  10,000 e2e / ioctl floor                 %8.2fx\n",
                       small->batches[BATCH_10K].ns[ROW_E2E] / small->batches[BATCH_10K].ns[ROW_IOCTL_FLOOR]);
                printf("  100 e2e / (ioctl floor + ping-pong)      %8.2fx\n",
                       small->batches[1].ns[ROW_E2E] /
                       (small->batches[1].ns[ROW_IOCTL_FLOOR] + small->batches[1].ns[ROW_PINGPONG]));
                printf("  1 e2e / (ping-pong + one ioctl)          %8.2fx\n",
                       small->batches[0].ns[ROW_E2E] /
                       (small->batches[0].ns[ROW_PINGPONG] + small->batches[0].ns[ROW_IOCTL_FLOOR]));
                printf("  JSON share of e2e at 10,000              %8.0f%%\n",
                       100 * small->batches[BATCH_10K].json_share);

                root = json_object_new_object();
                targets = json_object_new_object();
                json_object_object_add(targets, big->key, target_json(big));
                json_object_object_add(targets, small->key, target_json(small));
                json_object_object_add(root, "targets", targets);

                conc = json_object_new_array();
                for (size_t i = 0; i < ELEMENTSOF(client_counts); i++) {
                        struct json_object *c = json_object_new_object();

                        json_add_uint(c, "clients", client_counts[i]);
                        json_add_uint(c, "calls", calls[i]);
                        json_add_uint(c, "busy_retried", busy[i]);
                        json_add_double(c, "addresses_per_second", rates[i]);
                        json_add_double(c, "vs_1_client", rates[i] / rates[0]);
                        json_object_array_add(conc, c);
                }
                json_object_object_add(root, "concurrency", conc);
                {
                        struct json_object *bc = json_object_new_object();

                        json_add_uint(bc, "connections", N_BUSY);
                        json_add_double(bc, "replies_per_second", busy_rate);
                        json_add_double(bc, "probe_getstatus_ns", busy_probe_ns);
                        json_add_double(bc, "other_user_replies_per_second", busy_rate_other);
                        json_add_double(bc, "other_user_probe_getstatus_ns", busy_other_ns);
                        json_object_object_add(root, "busy_connections", bc);
                }

                mem = json_object_new_object();
                json_add_uint(mem, "idle_rss_bytes", idle);
                json_add_uint(mem, "rss_before_100k_bytes", cold_before);
                json_add_uint(mem, "peak_rss_100k_bytes", peak);
                json_add_uint(mem, "rss_after_100k_bytes", cold_after);
                if (warm_peak > 0) {
                        json_add_uint(mem, "warm_rss_before_100k_bytes", warm_before);
                        json_add_uint(mem, "warm_peak_rss_100k_bytes", warm_peak);
                }
                json_add_uint(mem, "cached_processes", N_CACHED);
                json_add_uint(mem, "proc_cache_size", cached);
                json_add_uint(mem, "rss_before_cached_bytes", cached_before);
                json_add_uint(mem, "rss_after_cached_bytes", cached_after);
                json_add_double(mem, "bytes_per_cached_process", per_cached);
                json_object_object_add(root, "memory", mem);
                json_add_double(root, "getstatus_roundtrip_ns", status_ns);

                ratios = json_object_new_object();
                json_add_double(ratios, "e2e_10000_vs_ioctl_floor", r_10k);
                json_add_double(ratios, "e2e_100_vs_floor_plus_pingpong", r_100);
                json_add_double(ratios, "e2e_1_vs_pingpong_plus_ioctl", r_1);
                json_add_double(ratios, "json_share_10000", big->batches[BATCH_10K].json_share);
                json_add_double(ratios, "clients_8_vs_1", rates[1] / rates[0]);
                json_add_double(ratios, "clients_64_vs_1", rates[2] / rates[0]);
                json_add_double(ratios, "peak_rss_vs_wire_bytes_100000", r_peak);
                json_add_double(ratios, "peak_growth_vs_wire_bytes_100000", r_peak_growth);
                json_add_double(ratios, "getstatus_busy_vs_idle", busy_probe_ns / status_ns);
                json_add_double(ratios, "getstatus_busy_other_user_vs_idle", busy_other_ns / status_ns);
                json_object_object_add(root, "ratios", ratios);
        }
        json_add_double(root, "seconds", now() - start);
        /* Four decimals are plenty, for ns and ratios alike: not json-c's 17 digits. */
        (void) json_c_set_serialization_double_format("%.4f", JSON_C_OPTION_GLOBAL);

        r = json_object_to_file_ext(json_path, root, JSON_C_TO_STRING_PRETTY|JSON_C_TO_STRING_NOSLASHESCAPE);
        if (r < 0) {
                fprintf(stderr, "bench-e2e: writing %s: %s\n", json_path, json_util_get_last_err());
                return EXIT_FAILURE;
        }
        printf("\n%.0f s; figures also in %s\n", now() - start, json_path);
        return EXIT_SUCCESS;
}
