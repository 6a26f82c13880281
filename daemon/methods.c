/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The methods, run by a worker for one job: decode a call with proto/, do
 * the work with the core, encode the reply into the job. Errors become
 * Varlink errors through proto's one table.
 */

#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "log.h"
#include "manager.h"
#include "reply.h"
#include "varlink.h"
#include "vmaq-proto.h"

/* ListMappings holds its mappings and their reply: about twice the reply. */
#define LIST_BYTES_PER_REPLY_BYTE 2U
/* The smallest ListMappings part worth sending. */
#define LIST_PART_MIN (64U * 1024U)

typedef struct Call {
        Job *job;
        Manager *manager;
        const Peer *peer;
        VarlinkCall *varlink;
        size_t charged;                 /* of the memory budget, while the call runs */
        size_t refused_limit;           /* the limit the parse's reservation hit */
        /* For the debug log of the request: what it asked about, and whether it was answered with an error. */
        bool has_target;
        ProtoTarget target;
        pid_t target_pid;
        size_t n_addresses;
        bool failed;
} Call;

/*
 * Take @size bytes of the memory budget for the call (@force: even beyond
 * it). -EBUSY with *ret_limit when it has not that much left.
 */
static int call_try_reserve(Call *call, size_t size, bool force, size_t *ret_limit) {
        int r;

        r = manager_charge(call->manager, call->job->user, call->job->peer.privileged, size, force, ret_limit);
        if (r < 0)
                return r;
        call->charged += size;
        return 0;
}

/* Answer that the budget had no room for the call. */
static int call_refuse_memory(Call *call, size_t limit) {
        Job *job = call->job;

        manager_count(&call->manager->refused_memory);
        call->failed = true;
        log_ratelimit(&call->manager->log_refused, call->manager->log_level, LOG_WARNING, 0,
                      "Refusing a request of pid %d uid %u: memory limit of %zu bytes reached.",
                      (int) job->peer.cred.pid, (unsigned) job->peer.cred.uid, limit);
        if (call->varlink && call->varlink->oneway)
                return 0;
        manager_count(&call->manager->errors);
        return proto_error_format(PROTO_ERROR_MEMORY_LIMIT, &(ProtoErrorDetails) { .limit = limit },
                                  &job->reply, &job->reply_size);
}

static int call_reply(Call *call, struct json_object *parameters) {
        if (call->varlink->oneway) {
                json_object_put(parameters);
                return 0;
        }
        return varlink_reply_format(parameters, false, &call->job->reply, &call->job->reply_size);
}

static int call_error(Call *call, ProtoError e, const ProtoErrorDetails *details) {
        call->failed = true;
        if (call->varlink->oneway)
                return 0;
        manager_count(&call->manager->errors);
        return proto_error_format(e, details, &call->job->reply, &call->job->reply_size);
}

/* A failure of the core, for @pid, as a Varlink error. */
static int call_error_errno(Call *call, int error, pid_t pid, const Proc *p) {
        ProtoError e = PROTO_ERROR_INTERNAL;

        /* Only what the core documents about the process is the client's business. */
        if (IN_SET(-error, ESRCH, ENXIO, EACCES, EPERM, ESTALE, EXDEV))
                e = proto_error_from_errno(error);
        if (e == PROTO_ERROR_INTERNAL)
                log_ratelimit(&call->manager->log_denied, call->manager->log_level, LOG_WARNING, error,
                              "Request about pid %d failed: %m", (int) pid);
        if (e == PROTO_ERROR_PERMISSION_DENIED) {
                /* By policy, or because the daemon itself may not read it: logged once, here. */
                manager_count(&call->manager->denied);
                log_ratelimit(&call->manager->log_denied, call->manager->log_level, LOG_NOTICE, 0,
                              "Denied client pid %d uid %u access to pid %d.",
                              (int) call->peer->cred.pid, (unsigned) call->peer->cred.uid, (int) pid);
        }

        return call_error(call, e, &(ProtoErrorDetails) {
                        .pid = pid,
                        .start_time = p ? proc_start_time(p) : 0,
                        .error = error < 0 ? -error : error,
                });
}

static int call_invalid_parameter(Call *call, int error, const char *parameter, uint64_t limit) {
        if (error == -E2BIG)
                return call_error(call, PROTO_ERROR_REQUEST_TOO_LARGE, &(ProtoErrorDetails) {
                                .parameter = parameter,
                                .limit = limit,
                        });
        if (error == -EINVAL)
                return call_error(call, PROTO_ERROR_INVALID_PARAMETER, &(ProtoErrorDetails) {
                                .parameter = parameter,
                        });
        return error;
}

static int method_get_info(Call *call) {
        struct json_object *reply = NULL;
        const char *parameter = NULL;
        int r;

        r = proto_empty_request_decode(call->varlink->parameters, &parameter);
        if (r < 0)
                return call_invalid_parameter(call, r, parameter, 0);

        r = proto_info_encode(&(ProtoInfo) {
                        .vendor = "vmaqd",
                        .product = "vmaqd",
                        .version = PACKAGE_VERSION,
                        .url = PACKAGE_URL,
                }, &reply);
        if (r < 0)
                return r;
        return call_reply(call, reply);
}

static int method_get_interface_description(Call *call) {
        struct json_object *reply = NULL;
        const char *parameter = NULL;
        int r;

        r = proto_interface_description_encode(call->varlink->parameters, &reply, &parameter);
        if (r == -EADDRNOTAVAIL) {
                struct json_object *name = json_object_object_get(call->varlink->parameters, "interface");

                return call_error(call, PROTO_ERROR_INTERFACE_NOT_FOUND, &(ProtoErrorDetails) {
                                .interface = json_object_get_string(name),
                        });
        }
        if (r < 0)
                return call_invalid_parameter(call, r, parameter, 0);
        return call_reply(call, reply);
}

static int method_get_status(Call *call) {
        Manager *m = call->manager;
        struct json_object *reply = NULL;
        const char *parameter = NULL;
        BuildIdCacheStats st;
        size_t snapshots, exited, snapshot_memory;
        struct timespec ts;
        uint64_t now;
        int r;

        r = proto_empty_request_decode(call->varlink->parameters, &parameter);
        if (r < 0)
                return call_invalid_parameter(call, r, parameter, 0);

        clock_gettime(CLOCK_MONOTONIC, &ts);
        now = (uint64_t) ts.tv_sec * 1000000U + (uint64_t) ts.tv_nsec / 1000U;
        build_id_cache_stats(m->build_ids, &st);
        manager_snapshot_stats(m, &snapshots, &exited, &snapshot_memory);
        r = proto_status_encode(&(ProtoStatus) {
                        .version = PACKAGE_VERSION,
                        .backend = vma_backend_to_string(m->backend),
                        .uptime_usec = now - m->start_usec,
                        .connections = __atomic_load_n(&m->n_connections, __ATOMIC_RELAXED),
                        .connections_max = m->config.max_connections,
                        .connections_per_user_max = m->config.max_connections_per_user,
                        .workers_used = worker_pool_busy(m->workers),
                        .workers_max = m->config.workers,
                        .memory_used = __atomic_load_n(&m->memory_used, __ATOMIC_RELAXED),
                        .memory_max = m->config.max_memory,
                        .refused_connections = __atomic_load_n(&m->refused_connections, __ATOMIC_RELAXED),
                        .refused_user_connections = __atomic_load_n(&m->refused_user_connections, __ATOMIC_RELAXED),
                        .refused_memory = __atomic_load_n(&m->refused_memory, __ATOMIC_RELAXED),
                        .refused_timeouts = __atomic_load_n(&m->refused_timeouts, __ATOMIC_RELAXED),
                        .refused_idle = __atomic_load_n(&m->refused_idle, __ATOMIC_RELAXED),
                        .proc_cache_size = manager_proc_cache_size(m),
                        .proc_cache_max = lru_max(m->procs),
                        .proc_cache_hits = __atomic_load_n(&m->proc_cache_hits, __ATOMIC_RELAXED),
                        .proc_cache_misses = __atomic_load_n(&m->proc_cache_misses, __ATOMIC_RELAXED),
                        .build_id_cache_size = st.size,
                        .build_id_cache_max = st.max,
                        .build_id_cache_hits = st.hits,
                        .build_id_cache_misses = st.misses,
                        .requests = __atomic_load_n(&m->requests, __ATOMIC_RELAXED),
                        .errors = __atomic_load_n(&m->errors, __ATOMIC_RELAXED),
                        .denied = __atomic_load_n(&m->denied, __ATOMIC_RELAXED),
                        .snapshots_held = snapshots,
                        .snapshots_exited = exited,
                        .snapshot_memory_used = snapshot_memory,
                        .snapshot_memory_max = m->config.max_snapshot_memory,
                        .max_addresses = m->config.max_addresses,
                        .max_message_size = m->config.max_message_size,
                        .max_reply_size = m->config.max_reply_size,
                }, &reply);
        if (r < 0)
                return r;
        return call_reply(call, reply);
}

/*
 * The process of one call: taken from the manager and given back when the
 * call is done, or a Proc of the call's own on a maps fd it was sent.
 */
typedef struct ProcHandle {
        Manager *manager;
        CachedProc *cp;
        Proc *own;
        pid_t pid;                      /* to tell the client in errors: the pid the call names, if any */
} ProcHandle;

static Proc *proc_handle_get(ProcHandle *h) {
        return h->cp ? cached_proc_get(h->cp) : h->own;
}

static void proc_handle_release(ProcHandle *h) {
        manager_release_proc(h->manager, TAKE_PTR(h->cp), false);
        h->own = proc_free(h->own);
}

static int call_bad_fd(Call *call, const char *parameter, const char *reason) {
        return call_error(call, PROTO_ERROR_BAD_FILE_DESCRIPTOR, &(ProtoErrorDetails) {
                        .parameter = parameter,
                        .reason = reason,
                });
}

/*
 * Whether the fds sent with the call are those it uses: none, or the one
 * at @index (-1: none). > 0 if so, else 0 after an error reply: an fd sent
 * in vain is a mistake of the client's, and it is closed.
 */
static int call_check_fds(Call *call, const char *parameter, int64_t index) {
        size_t n = call->job->n_fds;

        if (index < 0 && n > 0)
                return call_bad_fd(call, NULL, "file descriptors were sent with a call that takes none");
        if (index >= 0 && (uint64_t) index >= n)
                return call_bad_fd(call, parameter, "no file descriptor of this index was sent with the call");
        if (index >= 0 && n > 1)
                return call_bad_fd(call, NULL, "more file descriptors were sent than the call uses");
        return 1;
}

/* The maps file a client sent: a Proc of the call's own on it, if it is one. */
static int call_open_maps(Call *call, unsigned index, ProcHandle *h) {
        int *fd = &call->job->fds[index], r;

        r = vma_check_maps_fd(*fd, call->manager->backend);
        if (r == -EBADF)
                return call_bad_fd(call, "maps_fd", "not open for reading");
        if (r == -EMEDIUMTYPE)
                return call_bad_fd(call, "maps_fd", "not a file of /proc");
        if (r == -ENOTTY)
                return call_bad_fd(call, "maps_fd", "not a /proc/PID/maps file");
        if (r < 0)
                return call_error_errno(call, r, 0, NULL);

        r = proc_open_maps(&h->own, TAKE_FD(*fd), call->manager->backend);
        if (r < 0)
                return r;
        return 1;
}

/*
 * The process a call names, by @target: its pid, a pidfd or a maps fd sent
 * with it (@fd_index). > 0 with @h holding it, or 0 when the caller got an
 * error reply instead. With @ret_gone, a pid or pidfd whose process is gone
 * (-ESRCH, -ENXIO) gets no reply: 0 with the error in *ret_gone, for the
 * caller to answer, from a snapshot maybe.
 */
static int call_acquire(Call *call, ProtoTarget target, pid_t pid, unsigned fd_index, ProcHandle *h,
                        int *ret_gone) {
        int r;

        call->has_target = true;
        call->target = target;
        call->target_pid = pid;
        r = call_check_fds(call, proto_target_to_string(target), target == PROTO_TARGET_PID ? -1 : (int64_t) fd_index);
        if (r <= 0)
                return r;

        switch (target) {
        case PROTO_TARGET_PID:
                r = manager_acquire_proc(call->manager, call->peer, pid, &h->cp);
                break;
        case PROTO_TARGET_PIDFD:
                r = manager_acquire_pidfd(call->manager, call->peer, call->job->fds[fd_index], &h->cp, &pid);
                if (r == -EBADF)
                        return call_bad_fd(call, "pidfd", "not a pidfd");
                pid = call->peer->foreign_pidns ? 0 : MAX(pid, 0);
                break;
        case PROTO_TARGET_MAPS_FD:
                return call_open_maps(call, fd_index, h);
        default:
                return -EINVAL;
        }
        h->pid = pid;
        if (r < 0 && ret_gone && IN_SET(r, -ESRCH, -ENXIO)) {
                *ret_gone = r;
                return 0;
        }
        if (r < 0)
                return call_error_errno(call, r, pid, NULL);
        return 1;
}

/*
 * The pid to tell the client about @p: for a client in another pid
 * namespace, the pid it named the process by (0 for a pidfd); else ours (0
 * for a maps fd).
 */
static pid_t call_reply_pid(Call *call, const ProcHandle *h, const Proc *p) {
        return call->peer->foreign_pidns ? h->pid : proc_pid(p);
}

/*
 * After the core answered with @r about what the client calls @pid: drop
 * dead processes, re-check access if the address space was replaced (an
 * exec may have made it setuid; or, the process gone, the Proc found
 * another by its pid, which for a client in another pid namespace may lie
 * outside it). > 0 if the answer may be sent, else as call_acquire().
 */
static int call_finish(Call *call, ProcHandle *h, int r, bool reattached) {
        Proc *p = proc_handle_get(h);
        pid_t pid = call_reply_pid(call, h, p);
        int k = 1;

        /* A failure about another process than the one it named (ProcessChanged) must not reach it either. */
        if (reattached && call->peer->foreign_pidns && r < 0 && r != -ESRCH && r != -ENXIO &&
            manager_recheck_proc_pid(call->manager, call->peer, h->pid, p) == -ESRCH)
                r = -ESRCH;

        if (r == -ESRCH || r == -ENXIO)
                k = call_error_errno(call, r, pid, NULL);
        else if (r < 0)
                k = call_error_errno(call, r, pid, p);
        else if (reattached) {
                r = manager_recheck_proc_pid(call->manager, call->peer, h->pid, p);
                if (r < 0)
                        k = call_error_errno(call, r, pid, NULL);
        }
        if (k <= 0) {
                manager_release_proc(call->manager, TAKE_PTR(h->cp), r == -ESRCH || r == -ENXIO);
                return k;
        }
        return 1;
}

/*
 * The answer about our @host_pid, in the pid the client named it by: they
 * differ for a client in another pid namespace, whose /proc shows the
 * process's map_files under its own pid.
 */
static int normalization_speak_pid(Normalization *n, pid_t host_pid, pid_t pid) {
        n->pid = pid;
        if (pid == host_pid)
                return 0;
        for (size_t i = 0; i < n->n_modules; i++) {
                char *path = n->modules[i].map_files, *s;
                const char *rest = path ? strstr(path, "/map_files/") : NULL;

                /* No pid to name it by (a pidfd from another namespace): no path either. */
                if (pid <= 0)
                        n->modules[i].map_files = mfree(path);
                if (!rest || pid <= 0)
                        continue;
                if (asprintf(&s, "/proc/%d%s", (int) pid, rest) < 0)
                        return -ENOMEM;
                free(path);
                n->modules[i].map_files = s;
        }
        return 0;
}

/*
 * The paths of a process in another mount namespace than ours name files
 * there: add where they are from ours, through its root. Not for a client
 * in another pid namespace, which would learn our pid of the process and
 * could not open the path. A target whose namespace we cannot read (gone)
 * gets none.
 */
static bool call_wants_host_paths(Call *call, Proc *p) {
        const NsId *ours = &call->manager->mntns;
        struct stat st;

        return !call->peer->foreign_pidns && fstatat(proc_dir_fd(p), "ns/mnt", &st, 0) >= 0 &&
               (st.st_dev != ours->dev || st.st_ino != ours->ino);
}

/* The host path of a file @path of @p, into *ret; NULL for none (a deleted file is not there under its name). */
static int host_path_of(Proc *p, const char *path, bool deleted, char **ret) {
        *ret = NULL;
        if (deleted || path[0] != '/')
                return 0;
        if (asprintf(ret, "/proc/%d/root%s", (int) proc_pid(p), path) < 0) {
                *ret = NULL;
                return -ENOMEM;
        }
        return 0;
}

static int normalization_add_host_paths(Call *call, Proc *p, Normalization *n) {
        if (!call_wants_host_paths(call, p))
                return 0;
        for (size_t i = 0; i < n->n_modules; i++) {
                NormModule *nm = &n->modules[i];
                int r;

                if (nm->vdso)
                        continue;
                r = host_path_of(p, nm->path, nm->deleted, &nm->host_path);
                if (r < 0)
                        return r;
        }
        return 0;
}

/*
 * A Normalize answer sent in parts: each of at most PART_RESULTS results
 * and about PART_BYTES, with the modules its results name first. Modules
 * are numbered in the order the results first name them, so that each
 * part's modules continue the list of the parts before it.
 */
#define PART_RESULTS 4096U
#define PART_BYTES (512U * 1024U)

struct ReplyStream {
        Normalization *n;
        uint32_t *order;                /* order[i]: the core's index of the i-th module sent */
        uint32_t *remap;                /* remap[core's index]: the index sent */
        ProtoModule *modules;           /* room for one part */
        ProtoResult *results;
        size_t next;                    /* the first result not sent */
        size_t n_modules_sent;
        size_t size;                    /* the memory all this holds */
        bool exited;                    /* answered from an exited process's snapshot */
        bool htlhash;                   /* asked for: modules carry their htlhash */
};

ReplyStream *reply_stream_free(ReplyStream *s) {
        if (!s)
                return NULL;
        normalization_free(s->n);
        free(s->order);
        free(s->remap);
        free(s->modules);
        free(s->results);
        free(s);
        return NULL;
}

size_t reply_stream_size(const ReplyStream *s) {
        return s->size;
}

/* Take @n, to send in parts. */
static int reply_stream_new(Normalization *n, bool exited, bool htlhash, ReplyStream **ret) {
        _cleanup_(reply_stream_freep) ReplyStream *s = NULL;
        size_t n_sent = 0;

        s = calloc(1, sizeof(*s));
        if (!s) {
                normalization_free(n);
                return -ENOMEM;
        }
        s->n = n;
        s->exited = exited;
        s->htlhash = htlhash;
        s->order = calloc(MAX(n->n_modules, (size_t) 1), sizeof(uint32_t));
        s->remap = calloc(MAX(n->n_modules, (size_t) 1), sizeof(uint32_t));
        s->modules = calloc(PART_RESULTS, sizeof(ProtoModule));
        s->results = calloc(PART_RESULTS, sizeof(ProtoResult));
        if (!s->order || !s->remap || !s->modules || !s->results)
                return -ENOMEM;

        memset(s->remap, 0xff, n->n_modules * sizeof(uint32_t));
        for (size_t i = 0; i < n->n_results; i++) {
                const NormResult *nr = &n->results[i];

                if (nr->kind == NORM_MODULE && s->remap[nr->module] == UINT32_MAX) {
                        s->remap[nr->module] = (uint32_t) n_sent;
                        s->order[n_sent++] = nr->module;
                }
        }

        s->size = sizeof(*s) + n->n_results * sizeof(NormResult) +
                  n->n_modules * (sizeof(NormModule) + 2 * sizeof(uint32_t)) +
                  PART_RESULTS * (sizeof(ProtoModule) + sizeof(ProtoResult));
        for (size_t i = 0; i < n->n_modules; i++)
                s->size += strlen(n->modules[i].path) + 1 +
                           (n->modules[i].map_files ? strlen(n->modules[i].map_files) + 1 : 0) +
                           (n->modules[i].host_path ? strlen(n->modules[i].host_path) + 1 : 0);

        *ret = TAKE_PTR(s);
        return 0;
}

int reply_stream_next(ReplyStream *s, char **ret, size_t *ret_size) {
        const Normalization *n = s->n;
        size_t first = s->next, end, n_modules = s->n_modules_sent, used = 0;
        bool continues;
        int r;

        /* As many results as fit, one at least; a module the first time a result names it. */
        for (end = first; end < n->n_results && end - first < PART_RESULTS; end++) {
                const NormResult *nr = &n->results[end];
                size_t add = proto_result_size_max();
                bool introduces = nr->kind == NORM_MODULE && s->remap[nr->module] == n_modules;

                if (introduces) {
                        s->modules[n_modules - s->n_modules_sent] = reply_module(&n->modules[nr->module],
                                                                                    s->htlhash);
                        add += proto_module_size_max(&s->modules[n_modules - s->n_modules_sent]);
                }
                if (end > first && used + add > PART_BYTES)
                        break;
                used += add;
                n_modules += introduces;
                s->results[end - first] = reply_result(nr, s->remap);
        }

        continues = end < n->n_results;
        r = proto_normalize_reply_format(&(ProtoNormalizeReply) {
                        .pid = n->pid,
                        .start_time = n->start_time,
                        .n_modules = n_modules - s->n_modules_sent,
                        .modules = s->modules,
                        .n_results = end - first,
                        .results = s->results,
                        .exited = s->exited,
                }, s->n_modules_sent, continues, ret, ret_size);
        if (r < 0)
                return r;

        s->next = end;
        s->n_modules_sent = n_modules;
        return continues;
}

/* Send the answer @n (taken), whole or in parts as the call asked; with @htlhash, the modules' htlhashes. */
static int call_normalize_reply(Call *call, Normalization *n_in, bool exited, bool htlhash) {
        _cleanup_(normalization_freep) Normalization *n = n_in;
        _cleanup_free_ ProtoModule *modules = NULL;
        _cleanup_free_ ProtoResult *results = NULL;
        Manager *m = call->manager;
        ProtoNormalizeReply out;
        int r;

        if (call->varlink->oneway)
                return 0;

        if (call->varlink->more) {
                /* Asked for a stream: the first part now, the rest as the client reads. */
                _cleanup_(reply_stream_freep) ReplyStream *stream = NULL;

                r = reply_stream_new(TAKE_PTR(n), exited, htlhash, &stream);
                if (r < 0)
                        return r;
                r = reply_stream_next(stream, &call->job->reply, &call->job->reply_size);
                if (r < 0)
                        return r;
                if (r > 0)
                        call->job->stream = TAKE_PTR(stream);
                return 0;
        }

        modules = calloc(MAX(n->n_modules, (size_t) 1), sizeof(ProtoModule));
        results = calloc(MAX(n->n_results, (size_t) 1), sizeof(ProtoResult));
        if (!modules || !results)
                return -ENOMEM;
        for (size_t i = 0; i < n->n_modules; i++)
                modules[i] = reply_module(&n->modules[i], htlhash);
        for (size_t i = 0; i < n->n_results; i++)
                results[i] = reply_result(&n->results[i], NULL);

        out = (ProtoNormalizeReply) {
                .pid = n->pid,
                .start_time = n->start_time,
                .n_modules = n->n_modules,
                .modules = modules,
                .n_results = n->n_results,
                .results = results,
                .exited = exited,
        };
        /* Refused before it is built: a reply costs more to build than to send. */
        if (proto_normalize_reply_size_max(&out) > m->config.max_reply_size)
                return call_error(call, PROTO_ERROR_REPLY_TOO_LARGE, &(ProtoErrorDetails) {
                                .limit = m->config.max_reply_size,
                        });

        return proto_normalize_reply_format(&out, 0, false, &call->job->reply, &call->job->reply_size);
}

/*
 * The process the call named is gone (@error: -ESRCH, -ENXIO or -ESTALE):
 * answer from its snapshot if one was kept and the client may read it. By
 * pid, only a call pinned with start_time names one process; a pidfd always
 * does, found by @p (NULL: not found before it went). > 0 if answered, 0 if
 * not kept (the caller answers @error), or the reply's failure.
 */
static int call_normalize_exited(Call *call, const ProtoNormalizeRequest *req, const ProcHandle *h, const Proc *p,
                                 int error) {
        _cleanup_(snapshot_unrefp) Snapshot *s = NULL;
        Normalization *n = NULL;
        int r;

        if (!IN_SET(error, -ESRCH, -ENXIO, -ESTALE))
                return 0;
        if (req->target == PROTO_TARGET_PID && req->pin)
                r = manager_lookup_exited(call->manager, call->peer, req->pid, req->start_time, &s);
        else if (req->target == PROTO_TARGET_PIDFD)
                r = manager_lookup_exited_pidfd(call->manager, call->peer, call->job->fds[req->fd_index],
                                                p ? proc_pid(p) : 0, p ? proc_start_time(p) : 0, &s);
        else
                return 0;
        if (r == -EACCES) {
                r = call_error_errno(call, r, h->pid, NULL);
                return r < 0 ? r : 1;
        }
        if (r < 0)
                return 0;

        /* ELF facts with build IDs or htlhash, as a live answer has them. */
        r = snapshot_normalize(s, req->addresses, req->n_addresses,
                               (req->build_ids ? NORMALIZE_BUILD_IDS : 0) |
                               (req->build_ids || req->htlhash ? NORMALIZE_ELF : 0), &n);
        if (r < 0)
                return r;
        if (call->peer->foreign_pidns)
                n->pid = h->pid;
        r = call_normalize_reply(call, n, true, req->htlhash);
        return r < 0 ? r : 1;
}

static int method_normalize(Call *call) {
        _cleanup_(proto_normalize_request_done) ProtoNormalizeRequest req = {};
        _cleanup_(normalization_freep) Normalization *n = NULL;
        Manager *m = call->manager;
        _cleanup_(proc_handle_release) ProcHandle h = { .manager = m };
        const char *parameter = NULL;
        NormalizeOptions opts;
        unsigned generation;
        int r, k, gone = 0;
        Proc *p;

        r = proto_normalize_request_decode(call->varlink->parameters, &call->varlink->packed,
                                           m->config.max_addresses, &req, &parameter);
        if (r < 0)
                return call_invalid_parameter(call, r, parameter, m->config.max_addresses);
        call->n_addresses = req.n_addresses;

        r = call_acquire(call, req.target, req.pid, req.fd_index, &h, &gone);
        if (r == 0 && gone < 0) {
                /* It may be an exited process whose snapshot is kept. */
                k = call_normalize_exited(call, &req, &h, NULL, gone);
                if (k != 0)
                        return k < 0 ? k : 0;
                return call_error_errno(call, gone, h.pid, NULL);
        }
        if (r <= 0)
                return r;
        p = proc_handle_get(&h);

        opts = (NormalizeOptions) {
                /* ELF facts with build IDs: a symbolizer needs both. */
                .flags = (req.build_ids ? NORMALIZE_BUILD_IDS | NORMALIZE_ELF : 0) |
                         (req.htlhash ? NORMALIZE_HTLHASH : 0) |
                         (req.map_files ? NORMALIZE_MAP_FILES : 0) |
                         (req.pin ? NORMALIZE_PIN : 0),
                .start_time = req.start_time,
                .build_id_cache = m->build_ids,
                .max_build_id_reads = m->config.max_build_id_reads,
        };
        generation = proc_generation(p);
        r = proc_normalize(p, req.addresses, req.n_addresses, &opts, &n);
        if (r < 0 && h.cp) {
                k = call_normalize_exited(call, &req, &h, p, r);
                if (k != 0) {
                        manager_release_proc(m, TAKE_PTR(h.cp), r != -ESTALE);
                        return k < 0 ? k : 0;
                }
        }
        r = call_finish(call, &h, r, proc_generation(p) != generation);
        if (r <= 0)
                return r;
        r = normalization_speak_pid(n, proc_pid(p), call_reply_pid(call, &h, p));
        if (r >= 0)
                r = normalization_add_host_paths(call, p, n);
        if (r < 0)
                return r;

        /* Keep what the process maps, for when it is gone; a maps fd's Proc is the call's alone. */
        if (h.cp) {
                r = manager_track_proc(m, h.cp, n, req.addresses, req.n_addresses, req.build_ids, false);
                if (r < 0)
                        log_debug_errno(m->log_level, r, "Failed to keep a snapshot of pid %d, ignoring: %m",
                                        (int) proc_pid(p));
        }

        return call_normalize_reply(call, TAKE_PTR(n), false, req.htlhash);
}

typedef struct MappingItem {
        char perms[5];
        char *path;
        char *host_path;
        size_t build_id_len;
        uint8_t build_id[BUILD_ID_MAX];
        Vma vma;
} MappingItem;

/*
 * The mappings of one reply: from @start on, while their encoding fits in
 * @budget bytes. When one does not, the walk stops there and the reply says
 * where to go on.
 */
typedef struct MappingList {
        MappingItem *items;
        size_t n, allocated;
        size_t budget, used;
        size_t n_skipped;               /* build IDs not read: over the call's cap */
        bool full;
        uint64_t next;
        Proc *host_paths;               /* the process in another mount namespace, whose files get host paths */
} MappingList;


/* Forget the mappings taken so far, keeping the limits. */
static void mapping_list_reset(MappingList *l) {
        for (size_t i = 0; i < l->n; i++) {
                free(l->items[i].path);
                free(l->items[i].host_path);
        }
        l->n = l->used = l->n_skipped = 0;
        l->full = false;
}

static void mapping_list_done(MappingList *l) {
        mapping_list_reset(l);
        free(l->items);
}

static int mapping_list_add(const Vma *v, void *userdata) {
        MappingList *l = userdata;
        MappingItem *it;
        size_t size;

        /* The process exec'd: what we have is of a map that is gone, and the walk starts over. */
        if (!v) {
                mapping_list_reset(l);
                return 0;
        }

        size = proto_mapping_size_max(v->name_len, l->host_paths);
        if (l->n > 0 && size > l->budget - l->used) {
                l->full = true;
                l->next = v->start;
                return -ENOBUFS;
        }
        l->used += size;

        if (l->n == l->allocated) {
                size_t n = MAX(l->allocated * 2, (size_t) 64);
                MappingItem *a = reallocarray(l->items, n, sizeof(MappingItem));

                if (!a)
                        return -ENOMEM;
                l->items = a;
                l->allocated = n;
        }

        if (v->build_id_skipped)
                l->n_skipped++;
        it = &l->items[l->n];
        /* The walk's ELF facts are borrowed, for this call only: the reply gets elf_type instead. */
        *it = (MappingItem) { .vma = *v };
        it->vma.elf = NULL;
        it->perms[0] = (v->perms & VMA_PERM_READ) ? 'r' : '-';
        it->perms[1] = (v->perms & VMA_PERM_WRITE) ? 'w' : '-';
        it->perms[2] = (v->perms & VMA_PERM_EXEC) ? 'x' : '-';
        it->perms[3] = (v->perms & VMA_PERM_SHARED) ? 's' : 'p';
        if (v->name[0]) {
                it->path = strdup(v->name);
                if (!it->path)
                        return -ENOMEM;
        }
        if (l->host_paths && v->kind == VMA_KIND_FILE) {
                int r = host_path_of(l->host_paths, v->name, v->deleted, &it->host_path);

                if (r < 0) {
                        free(it->path);
                        return r;
                }
        }
        l->n++;
        return 0;
}

static const char *const vma_kind_names[_VMA_KIND_MAX] = {
        [VMA_KIND_FILE] = "file",
        [VMA_KIND_ANONYMOUS] = "anonymous",
        [VMA_KIND_SPECIAL] = "special",
        [VMA_KIND_VDSO] = "vdso",
};

static int method_list_mappings(Call *call) {
        _cleanup_(mapping_list_done) MappingList list = {};
        _cleanup_free_ ProtoMapping *mappings = NULL;
        ProtoListMappingsRequest req = {};
        Manager *m = call->manager;
        _cleanup_(proc_handle_release) ProcHandle h = { .manager = m };
        const char *parameter = NULL;
        NormalizeOptions opts;
        unsigned generation;
        Proc *p;
        int r;

        r = proto_list_mappings_request_decode(call->varlink->parameters, &req, &parameter);
        if (r < 0)
                return call_invalid_parameter(call, r, parameter, 0);

        r = call_acquire(call, req.target, req.pid, req.fd_index, &h, NULL);
        if (r <= 0)
                return r;
        p = proc_handle_get(&h);

        opts = (NormalizeOptions) {
                .flags = req.pin ? NORMALIZE_PIN : 0,
                .start_time = req.start_time,
                .build_id_cache = m->build_ids,
                .max_build_id_reads = m->config.max_build_id_reads,
                .start = req.start,
        };
        /* A part as large as the budget has room for: what does not fit comes in the next one. */
        for (size_t part = m->config.max_reply_size, limit = 0;; part /= 2) {
                if (call_try_reserve(call, part * LIST_BYTES_PER_REPLY_BYTE, false, &limit) >= 0) {
                        /* Room for the reply around the mappings. */
                        list.budget = part - proto_list_mappings_reply_size_max();
                        break;
                }
                if (part / 2 < LIST_PART_MIN)
                        return call_refuse_memory(call, limit);
        }

        if (call_wants_host_paths(call, p))
                list.host_paths = p;
        generation = proc_generation(p);
        r = proc_foreach_vma(p, PROC_LIST_RESTART | (req.exec_only ? PROC_LIST_EXEC_ONLY : 0) |
                             (req.build_ids ? PROC_LIST_BUILD_IDS | PROC_LIST_ELF : 0), &opts, mapping_list_add,
                             &list);
        if (r == -ENOBUFS && list.full)
                r = 0;          /* a full reply: the rest in the next */
        r = call_finish(call, &h, r, proc_generation(p) != generation);
        if (r <= 0)
                return r;

        if (h.cp) {
                r = manager_track_proc(m, h.cp, NULL, NULL, 0, req.build_ids, false);
                if (r < 0)
                        log_debug_errno(m->log_level, r, "Failed to keep a snapshot of pid %d, ignoring: %m",
                                        (int) proc_pid(p));
        }

        mappings = calloc(MAX(list.n, (size_t) 1), sizeof(ProtoMapping));
        if (!mappings)
                return -ENOMEM;
        for (size_t i = 0; i < list.n; i++) {
                const MappingItem *it = &list.items[i];

                mappings[i] = (ProtoMapping) {
                        .start = it->vma.start,
                        .end = it->vma.end,
                        .offset = it->vma.offset,
                        .inode = it->vma.inode,
                        .dev_major = it->vma.dev_major,
                        .dev_minor = it->vma.dev_minor,
                        .perms = it->perms,
                        .path = it->path,
                        .host_path = it->host_path,
                        .kind = vma_kind_names[it->vma.kind],
                        .deleted = it->vma.deleted,
                        .build_id = it->vma.build_id,
                        .build_id_len = it->vma.build_id_len,
                        .build_id_skipped = it->vma.build_id_skipped,
                        .elf_type = reply_elf_type_name((ElfType) it->vma.elf_type),
                };
        }

        if (call->varlink->oneway)
                return 0;
        return proto_list_mappings_reply_format(call_reply_pid(call, &h, p), proc_start_time(p), mappings, list.n, list.full,
                                                list.next, &call->job->reply, &call->job->reply_size);
}

static int method_track(Call *call) {
        Manager *m = call->manager;
        _cleanup_(proc_handle_release) ProcHandle h = { .manager = m };
        struct json_object *reply = NULL;
        const char *parameter = NULL;
        ProtoTrackRequest req = {};
        unsigned generation;
        Proc *p;
        int r;

        r = proto_track_request_decode(call->varlink->parameters, &req, &parameter);
        if (r < 0)
                return call_invalid_parameter(call, r, parameter, 0);

        r = call_acquire(call, PROTO_TARGET_PID, req.pid, 0, &h, NULL);
        if (r <= 0)
                return r;
        p = proc_handle_get(&h);

        /*
         * The walk attaches to the process the pid names now; the snapshot,
         * and the start time it is checked against, are of that one.
         */
        generation = proc_generation(p);
        r = manager_track_proc(m, h.cp, NULL, NULL, 0, true, true);
        if (r >= 0 && req.pin && proc_start_time(p) != req.start_time)
                r = -ESTALE;
        if (r >= 0 || IN_SET(r, -ESRCH, -ENXIO, -ESTALE, -EACCES)) {
                r = call_finish(call, &h, MIN(r, 0), proc_generation(p) != generation);
                if (r <= 0)
                        return r;
        }
        if (r == -ENOBUFS || r == -E2BIG)
                return call_error(call, PROTO_ERROR_MEMORY_LIMIT, &(ProtoErrorDetails) {
                                .limit = m->config.max_snapshot_memory,
                        });
        if (r < 0)
                return r;

        r = proto_track_reply_encode(call_reply_pid(call, &h, p), proc_start_time(p), &reply);
        if (r < 0)
                return r;
        return call_reply(call, reply);
}

/* VarlinkLimits.reserve: what parsing and then handling the message will take. */
static int call_reserve_parse(void *userdata, size_t n_values, size_t n_packed) {
        Call *call = userdata;
        size_t size;

        if (__builtin_mul_overflow(n_values, (size_t) JOB_BYTES_PER_VALUE, &size) ||
            __builtin_add_overflow(size, n_packed * JOB_BYTES_PER_ADDRESS, &size))
                size = SIZE_MAX;
        /* JOB_BYTES_BASE of it was charged before the job started. */
        size -= MIN(size, (size_t) JOB_BYTES_BASE);
        if (size == 0)
                return 0;
        /* A user's only job goes ahead: only running it gives its memory back. */
        return call_try_reserve(call, size, call->job->alone, &call->refused_limit) < 0 ? -ENOBUFS : 0;
}

/*
 * One debug line per request: who asked what about which process, and how
 * it was answered; an error as the reply the client got (a short message,
 * every string in it escaped as JSON).
 */
static void log_request(const Call *call, const char *method) {
        const Job *job = call->job;
        char about[128] = "", count[48] = "";

        if (call->has_target && call->target == PROTO_TARGET_PID)
                snprintf(about, sizeof(about), " about pid %d", (int) call->target_pid);
        else if (call->has_target)
                snprintf(about, sizeof(about), " about the %s sent", proto_target_to_string(call->target));
        if (call->n_addresses > 0)
                snprintf(count, sizeof(count), ", %zu address%s", call->n_addresses,
                         call->n_addresses == 1 ? "" : "es");
        log_debug(call->manager->log_level, "Request of pid %d uid %u: %s%s%s: %s%.*s.", (int) job->peer.cred.pid,
                  (unsigned) job->peer.cred.uid, method, about, count,
                  !call->failed ? "answered" : job->reply ? "" : "error, no reply (oneway)",
                  call->failed && job->reply ? (int) MIN(job->reply_size, (size_t) 1024) : 0,
                  call->failed && job->reply ? job->reply : "");
}

static int method_run(Call *call, const char *message, size_t size) {
        VarlinkLimits limits = call->manager->request_limits;
        VarlinkCall v = {};
        ProtoMethod method;
        int r;

        call->varlink = &v;
        limits.reserve = call_reserve_parse;
        limits.userdata = call;
        r = proto_call_parse(message, size, &limits, &v);
        if (r == -ENOBUFS) {
                /* Nothing was built, the framing is intact: the connection carries on. */
                r = call_refuse_memory(call, call->refused_limit);
                goto finish;
        }
        if (r == -E2BIG) {
                /*
                 * Refused before it was built, for holding more values than
                 * the addresses a request may carry. The framing is intact:
                 * the connection carries on.
                 */
                r = call_error(call, PROTO_ERROR_REQUEST_TOO_LARGE, &(ProtoErrorDetails) {
                                .parameter = "addresses",
                                .limit = call->manager->config.max_addresses,
                        });
                goto finish;
        }
        if (r < 0) {
                /* The stream cannot be trusted any more: answer and close. */
                log_debug_errno(call->manager->log_level, r, "Invalid message from pid %d: %m",
                                (int) call->peer->cred.pid);
                call->job->shutdown = true;
                return call_error(call, PROTO_ERROR_INVALID_MESSAGE, &(ProtoErrorDetails) {
                                .reason = r == -EBADMSG ? "not valid JSON" : "not a Varlink call",
                        });
        }
        /* Now it is known whether the call wants a reply, even one that gives up on it. */
        __atomic_store_n(&call->job->oneway, v.oneway, __ATOMIC_RELEASE);

        /*
         * Only Normalize streams: a call of another method that asked for
         * "more" gets its one reply, without "continues", as Varlink allows.
         */
        r = proto_method_lookup(v.method, &method);
        if (r == -EADDRNOTAVAIL || r == -EINVAL) {
                /* A parsed call's method is "interface.Method": the interface is what precedes the last dot. */
                _cleanup_free_ char *interface = strndup(v.method, (size_t) (strrchr(v.method, '.') - v.method));

                r = interface ? call_error(call, PROTO_ERROR_INTERFACE_NOT_FOUND, &(ProtoErrorDetails) {
                                .interface = interface,
                        }) : -ENOMEM;
        } else if (r < 0)
                r = call_error(call, PROTO_ERROR_METHOD_NOT_FOUND, &(ProtoErrorDetails) {
                                .method = v.method,
                        });
        else if (!IN_SET(method, PROTO_METHOD_NORMALIZE, PROTO_METHOD_LIST_MAPPINGS) && call->job->n_fds > 0)
                r = call_check_fds(call, NULL, -1);
        else
                switch (method) {
                case PROTO_METHOD_GET_INFO:
                        r = method_get_info(call);
                        break;
                case PROTO_METHOD_GET_INTERFACE_DESCRIPTION:
                        r = method_get_interface_description(call);
                        break;
                case PROTO_METHOD_NORMALIZE:
                        r = method_normalize(call);
                        break;
                case PROTO_METHOD_LIST_MAPPINGS:
                        r = method_list_mappings(call);
                        break;
                case PROTO_METHOD_GET_STATUS:
                        r = method_get_status(call);
                        break;
                case PROTO_METHOD_TRACK:
                        r = method_track(call);
                        break;
                default:
                        r = -EINVAL;
                }

finish:
        if (r >= 0 && call->manager->log_level >= LOG_DEBUG)
                log_request(call, v.method ?: "a call too large to read");
        varlink_call_done(&v);
        return r;
}

void method_dispatch(Job *job) {
        Manager *m = job->manager;
        Call call = {
                .job = job,
                .manager = m,
                .peer = &job->peer,
        };
        int r;

        manager_count(&m->requests);
        r = method_run(&call, job->message, job->size);
        manager_uncharge(m, job->user, job->peer.privileged, call.charged);
        if (r < 0) {
                /* Out of memory, mostly: say so if we still can, and end the connection. */
                log_ratelimit(&m->log_denied, m->log_level, LOG_WARNING, r,
                              "Failed to handle a request of pid %d: %m", (int) job->peer.cred.pid);
                free(job->reply);
                job->reply = NULL;
                job->reply_size = 0;
                (void) proto_error_format(PROTO_ERROR_INTERNAL, &(ProtoErrorDetails) {}, &job->reply,
                                          &job->reply_size);
                job->shutdown = true;
        }
}
