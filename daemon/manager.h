/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The service layer: one Manager owns the event loop, the listening socket,
 * the connections, the worker pool, the caches and the counters. All
 * mutable state of the daemon lives here.
 *
 * Threads: the event loop runs on the main thread and never touches a
 * target process or a file it maps. Each request is a Job that a worker
 * thread runs from its raw bytes to its formatted reply: parsing, the
 * access check, the core, encoding, and sending it when nothing waits to
 * be written before it (see JOB_DIRECT_ARMED). What workers share is locked (the
 * process cache), internally synchronized (the build-ID cache, the log
 * rate limits) or atomic (the counters); config is read-only. A connection
 * has at most one job in flight, so its replies keep their order, and each
 * user at most a share of the workers, so that no user's stuck or slow
 * requests can hold up another's.
 */

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <systemd/sd-event.h>

#include "buildid-cache.h"
#include "log.h"
#include "lru.h"
#include "macro.h"
#include "pidns.h"
#include "policy.h"
#include "proc.h"
#include "snapshot.h"
#include "varlink.h"
#include "vma.h"
#include "worker.h"

#define DEFAULT_SOCKET_PATH "/run/vmaqd.sock"
#define DEFAULT_MAX_MESSAGE_SIZE (16U * 1024U * 1024U)
#define DEFAULT_MAX_REPLY_SIZE (16U * 1024U * 1024U)
#define DEFAULT_MAX_ADDRESSES 100000U
#define DEFAULT_MAX_CONNECTIONS 4096U
#define DEFAULT_MAX_CONNECTIONS_PER_USER 256U
#define DEFAULT_MAX_MEMORY (256U * 1024U * 1024U)
#define DEFAULT_REQUEST_TIMEOUT_USEC (30U * 1000000U)
#define DEFAULT_PROC_CACHE_SIZE 1024U
#define DEFAULT_BUILD_ID_CACHE_SIZE 4096U
#define DEFAULT_MAX_BUILD_ID_READS 256U
#define DEFAULT_IDLE_TIMEOUT_USEC (60U * 1000000U)
#define DEFAULT_WORKERS 16U
#define DEFAULT_EXIT_GRACE_USEC (30U * 1000000U)
#define DEFAULT_MAX_SNAPSHOT_MEMORY (16U * 1024U * 1024U)
#define DEFAULT_GROUP "vmaq"
#define DEFAULT_SOCKET_MODE 0666

/*
 * Connection events taken per dispatch of the loop. The kernel hands out
 * ready sockets in turn, a still-ready one after the others: each dispatch
 * costs its batch, not every busy connection.
 */
#define CONNECTION_EVENTS_BATCH 64

typedef struct ManagerConfig {
        const char *socket_path;
        VmaBackend backend;
        int log_level;
        size_t max_message_size;
        size_t max_reply_size;
        size_t max_addresses;
        size_t max_connections;
        size_t max_connections_per_user;
        size_t max_memory;              /* bytes held for all clients together */
        size_t proc_cache_size;
        size_t build_id_cache_size;
        size_t max_build_id_reads;
        uint64_t idle_timeout_usec;
        uint64_t request_timeout_usec;
        size_t workers;
        const char *group;              /* NULL or "": none */
        mode_t socket_mode;
        uint64_t exit_grace_usec;       /* how long an exited process's snapshot answers; 0: never */
        size_t max_snapshot_memory;     /* bytes all snapshots together may hold */
} ManagerConfig;

typedef struct Manager Manager;
typedef struct Connection Connection;
typedef struct Job Job;
typedef struct CachedProc CachedProc;
typedef struct SnapshotRecord SnapshotRecord;

/* Who a connection's peer is, taken once when it connects. */
typedef struct Peer {
        struct ucred cred;
        bool privileged;                /* may query any process */
        bool foreign_pidns;             /* pids it sends mean other processes */
        PidnsClient pidns;              /* with foreign_pidns: its namespace; level 0: unknown, refused */
        PolicyClient client;            /* for the access check of the unprivileged */
} Peer;

/* What one uid holds: its connections, the jobs run for it, and the memory of both. */
typedef struct UserShare {
        uid_t uid;
        size_t n_connections;
        size_t n_jobs;
        size_t n_fds;                   /* sent by its clients, held for their messages */
        size_t memory;                  /* atomic: workers charge it too */
} UserShare;

/*
 * The rest of a reply that comes in parts (a call with "more"): made on
 * the loop, a part at a time, as the client reads the parts before it.
 * It holds the answer, not its text. methods.c.
 */
typedef struct ReplyStream ReplyStream;
/* The next part into *ret, NUL included in *ret_size. Returns 1 if more follow, 0 after the last. */
int reply_stream_next(ReplyStream *s, char **ret, size_t *ret_size);
/* The bytes it holds, to charge to the memory budget. */
size_t reply_stream_size(const ReplyStream *s);
ReplyStream *reply_stream_free(ReplyStream *s);
DEFINE_CLEANUP(ReplyStream *, reply_stream_free);

/*
 * A worker may send its job's reply itself, when nothing else waits to be
 * written before it: the client then need not wait for the loop to wake
 * up. The loop disarms it when it gives up on the job; whoever changes the
 * state first wins.
 */
enum {
        JOB_DIRECT_OFF,
        JOB_DIRECT_ARMED,               /* the worker may send */
        JOB_DIRECT_TAKEN,               /* the worker sends, or has sent: the loop must not write before */
};

/* On the loop: stop the worker from sending. false if it has begun: the job is done but for being taken back. */
bool job_disarm_direct(Job *job);

/*
 * What a job takes while it runs, charged once its message is scanned and
 * before anything is built: per value json-c builds, its parse tree (about
 * 90 bytes) and what is decoded from it; per address the scan packed, the
 * address and its sort entries (40 bytes), the core's result (32) and
 * proto's (48), and the reply's text (at most 128 bytes a result, with its
 * ELF address).
 */
#define JOB_BYTES_PER_VALUE 256U
#define JOB_BYTES_PER_ADDRESS 256U
/*
 * Charged with the scan's share before the job starts, so that a small
 * request waits for memory there rather than being refused after its scan:
 * only what it needs beyond this is charged then.
 */
#define JOB_BYTES_BASE (4U * 1024U)

/*
 * File descriptors a client may send (SCM_RIGHTS): one message carries at
 * most MESSAGE_FDS_MAX, and a connection holds at most as many for the
 * messages it has received and not handled yet; all connections of one
 * user at most USER_FDS_MAX, all of them PASSED_FDS_MAX.
 */
#define MESSAGE_FDS_MAX 8U
#define USER_FDS_MAX 64U
#define PASSED_FDS_MAX 1024U

/* One request, from its bytes to its reply, run by a worker. */
struct Job {
        WorkItem item;
        Manager *manager;
        Connection *connection;         /* NULL once the connection closed: the reply is dropped */
        UserShare *user;
        Peer peer;                      /* a copy: the job may outlive its connection */
        char *buffer;                   /* holds the message; freed once it is parsed */
        size_t buffer_size;             /* allocated: see message_buffer_free() */
        const char *message;            /* NUL-terminated, in buffer */
        size_t size;                    /* without the NUL */
        size_t buffer_charged;          /* of the memory budget: for buffer */
        bool copied;                    /* buffer is a copy of the message, not the connection's buffer */
        int fds[MESSAGE_FDS_MAX];       /* sent with the message, in order; -EBADF once taken */
        size_t n_fds;
        char *reply;                    /* with its NUL, NULL for none (oneway) */
        size_t reply_size;
        size_t reply_charged;           /* for reply */
        ReplyStream *stream;            /* the parts after reply, if it is the first of several */
        size_t stream_charged;          /* for stream */
        size_t work_charged;            /* for what the job takes while it runs */
        int direct_fd;                  /* a dup of its connection's socket, or -EBADF: see job_send_direct() */
        int direct;                     /* atomic: JOB_DIRECT_* */
        size_t direct_sent;             /* bytes of reply the worker sent itself */
        bool alone;                     /* its user had no other job running when it started */
        bool oneway;                    /* atomic: set by the worker once the call is parsed */
        bool shutdown;                  /* the stream is broken: close after the reply */
        bool abandoned;                 /* given up on (timed out) while it ran: see manager_on_abandon() */
        Job *running_prev, *running_next;       /* in Manager.running while not abandoned */
        uint64_t deadline_usec;         /* CLOCK_MONOTONIC: --request-timeout after it started */
};

struct Connection {
        Manager *manager;
        Connection *prev, *next;
        Connection *ready_prev, *ready_next;    /* waiting for a worker */
        bool ready;
        int fd;
        uint32_t io_events;             /* as watched in the manager's connections_fd; 0: not in it */
        sd_event_source *timer_source;
        Peer peer;
        UserShare *user;
        Job *job;                       /* in flight */
        char *in;                       /* received bytes: [in_start, in_end) not yet processed */
        size_t in_start, in_end, in_allocated;
        bool memory_blocked;            /* not read: its next bytes need memory the budget lacks */
        size_t in_scanned;              /* bytes after in_start known to hold no NUL */
        int in_fds[MESSAGE_FDS_MAX];    /* received, for messages not taken yet, in order */
        size_t in_fd_at[MESSAGE_FDS_MAX]; /* the message of each: one of its bytes, counted from in_start */
        size_t n_in_fds;
        uint64_t in_since;              /* when the unfinished message's first byte arrived */
        uint64_t request_since;         /* when a worker took up its job: the request timeout counts from there */
        ReplyStream *stream;            /* parts of a reply still to send, before the next request */
        size_t stream_charged;
        char *out;                      /* replies not yet written */
        size_t out_start, out_size, out_allocated;
        size_t out_progress;            /* bytes written since the deadline was last pushed */
        size_t charged;                 /* of the memory budget: in and out, as allocated */
        uint64_t deadline_base;         /* last progress: the deadline is this + the idle timeout */
        bool eof;                       /* the peer sent all it will send */
        bool draining;                  /* the daemon stops: answer what was received, read no more */
        bool closing;                   /* read no more; close once out is written */
};

struct Manager {
        ManagerConfig config;
        int log_level;
        VmaBackend backend;
        VarlinkLimits request_limits;   /* what a request may hold, checked before it is parsed */
        gid_t privileged_gid;           /* (gid_t) -1: no such group; see manager_privileged_gid() */
        uint64_t privileged_gid_usec;   /* CLOCK_MONOTONIC of its last lookup, 0: never */
        NsId pidns, userns;
        NsId mntns;                     /* targets in another get host paths */
        sd_event *event;
        int listen_fd;
        bool socket_bound;              /* we bound it (not socket activation): unlink at exit */
        sd_event_source *listen_source;
        sd_event_source *accept_retry_source;   /* out of fds: accept again later */
        sd_event_source *sigterm_source, *sigint_source;
        sd_event_source *exit_timer_source;
        sd_event_source *workers_source;
        sd_event_source *proc_exit_source;
        int proc_exit_fd;               /* epoll set of the cached processes' pidfds */
        /*
         * The connections' sockets, in an epoll set of their own: the loop
         * sees one source, and each dispatch takes a batch of them.
         */
        sd_event_source *connections_source;
        int connections_fd;
        struct epoll_event connection_events[CONNECTION_EVENTS_BATCH];
        size_t n_connection_events, connection_event_next;  /* the batch being dispatched */
        WorkerPool *workers;
        size_t jobs_per_user, jobs_per_privileged_user, jobs_unprivileged;
        size_t n_jobs, n_unprivileged_jobs;     /* running, the abandoned ones not counted */
        size_t n_abandoned;                     /* given up on, still running: each holds a spare thread */
        Job *running_first, *running_last;      /* the others, in the order they started: of their deadlines */
        sd_event_source *abandon_timer;         /* at the first one's deadline */
        size_t connections_per_privileged_user, connections_unprivileged;
        size_t n_unprivileged_connections;
        /* The memory budget and its shares; what is used is atomic, workers charge it too. */
        size_t memory_per_user, memory_per_privileged_user, memory_unprivileged;
        size_t memory_used, memory_unprivileged_used;
        uint64_t last_trim_usec;
        sd_event_source *trim_source;   /* a trim put off: the last one was too recent */
        Connection *connections;
        size_t n_connections;
        Connection *ready_first, *ready_last;
        size_t n_passed_fds;            /* held for clients' messages, over all users */
        Lru *users;                     /* uid_t -> UserShare */
        pthread_mutex_t procs_lock;     /* guards procs and every CachedProc */
        Lru *procs;                     /* pid_t -> CachedProc */
        BuildIdCache *build_ids;
        /*
         * Snapshots of executable mappings, under procs_lock: one per cached
         * process that has one, and those of exited processes, oldest first,
         * which expire after the grace.
         */
        Lru *exited;                    /* SnapshotKey -> SnapshotRecord */
        Lru *exited_by_inode;           /* their pidfds' inode -> the same records */
        Lru *exited_by_ns;              /* SnapshotNsKey (as their pid namespace knows them) -> the same */
        SnapshotRecord *exited_oldest, *exited_newest;
        sd_event_source *exited_timer_source;
        size_t n_snapshots, n_exited, snapshot_memory;
        PidnsIndex *pidns_index;        /* foreign peers' pids -> ours; locks itself */
        uint64_t start_usec;
        /* Counters: updated with atomics, workers count too. */
        uint64_t requests, errors, denied;
        uint64_t refused_connections, refused_user_connections, refused_memory, refused_timeouts, refused_idle;
        uint64_t proc_cache_hits, proc_cache_misses;
        RateLimit log_refused, log_denied, log_accept;
        bool stopping;
};

int manager_new(Manager **ret, const ManagerConfig *config);
/* Returns NULL; leaves what busy workers still use allocated (see worker_pool_stop()). */
Manager *manager_free(Manager *m);
DEFINE_CLEANUP(Manager *, manager_free);

/*
 * The gid of the privileged group (--group), or (gid_t) -1 when there is
 * none. Looked up by name again at most once a second, so that a group
 * created or removed after start takes effect for the next client.
 */
gid_t manager_privileged_gid(Manager *m);

/* Take the socket from systemd, or bind it. Then serve until told to stop. Returns 0 on a clean stop. */
int manager_listen(Manager *m);
int manager_run(Manager *m);
/*
 * Let the workers finish their jobs, for a second at most. -ETIMEDOUT if
 * some are still stuck in the kernel: then the process must exit without
 * freeing the manager, which they may still use.
 */
int manager_stop_workers(Manager *m);

/* Counters, from any thread. */
static inline void manager_count(uint64_t *counter) {
        __atomic_add_fetch(counter, 1, __ATOMIC_RELAXED);
}

/*
 * The memory budget, from any thread: take @size bytes for @user, within
 * the user's share, the unprivileged users' share and the whole budget.
 * -EBUSY with *ret_limit set to the limit that was hit; @force takes it
 * anyway (for what is already allocated, or bounded elsewhere).
 */
int manager_charge(Manager *m, UserShare *user, bool privileged, size_t size, bool force, size_t *ret_limit);
void manager_uncharge(Manager *m, UserShare *user, bool privileged, size_t size);

/*
 * From a worker: the process @pid as @peer may see it, checked by the
 * policy before anything is opened for it or taken from the cache. For a
 * peer in another pid namespace, @pid is the pid in its namespace: the
 * process must be in that namespace or below it, and is looked up by ours
 * (proc_pid() of the handle's Proc). The handle is the caller's until
 * manager_release_proc(); its Proc is used by no one else meanwhile.
 * Errors: -EXDEV (peer in another pid namespace that could not be told),
 * -EACCES, -ESRCH (also for a thread id, and a pid not in the peer's
 * namespace), and those of proc_open().
 */
int manager_acquire_proc(Manager *m, const Peer *peer, pid_t pid, CachedProc **ret);
/*
 * The same, for the process behind the pidfd @pidfd a client sent, in any
 * pid namespace: its pid in ours in *ret_pid (-1 or 0 when it has none,
 * then -ESRCH). The policy decides as for its pid.
 * Errors: -EBADF (not a pidfd), and those above.
 */
int manager_acquire_pidfd(Manager *m, const Peer *peer, int pidfd, CachedProc **ret, pid_t *ret_pid);
Proc *cached_proc_get(CachedProc *cp);
/* Give the handle back; with @gone, the process is gone or changed and leaves the cache. */
void manager_release_proc(Manager *m, CachedProc *cp, bool gone);
/* Re-check access after the address space was replaced (exec). -EACCES if now refused. */
int manager_recheck_proc(Manager *m, const Peer *peer, Proc *p);

/*
 * From a worker holding @cp: keep a snapshot of its executable mappings,
 * taking one if it has none, if @force, if @build_ids and it has none, or
 * if @n (the answer the core just gave for the @n_addrs addresses @addrs;
 * NULL: none) shows a mapping its snapshot lacks. A new one reads build
 * IDs with @build_ids only: a request that asked for none reads no file.
 * Returns 1 if one was taken, 0 if the one held stands;
 * -ENOBUFS if the snapshot memory cannot hold it (the oldest exited
 * processes' went first), -E2BIG if it is too large, -ESTALE if the
 * process is no longer the one @n described, and the errors of
 * snapshot_take() and policy_read_target().
 */
int manager_track_proc(Manager *m, CachedProc *cp, const Normalization *n, const uint64_t *addrs, size_t n_addrs,
                       bool build_ids, bool force);
/*
 * From a worker: the snapshot of the exited process @pid that started at
 * @start_time, if the daemon kept it and @peer may read it as it could
 * the live process. A reference the caller drops with snapshot_unref().
 * Errors: -ESRCH (none kept, or the process lives), -EACCES, -EXDEV (peer
 * in another pid namespace).
 */
int manager_lookup_exited(Manager *m, const Peer *peer, pid_t pid, uint64_t start_time, Snapshot **ret);
/*
 * The same for the process of the pidfd @pidfd a client sent, from any pid
 * namespace: by @pid (ours, 0: not known) and @start_time when the process
 * was found before it went (a zombie), else by the pidfd itself, which
 * needs pidfs (Linux 6.9) to be told from other processes' pidfds.
 */
int manager_lookup_exited_pidfd(Manager *m, const Peer *peer, int pidfd, pid_t pid, uint64_t start_time,
                                Snapshot **ret);
/* The counters of the snapshots, as one consistent reading. */
void manager_snapshot_stats(Manager *m, size_t *ret_held, size_t *ret_exited, size_t *ret_memory);
/* As manager_recheck_proc(), and that @p is still the process @peer calls @pid (-ESRCH if not). */
int manager_recheck_proc_pid(Manager *m, const Peer *peer, pid_t pid, Proc *p);
size_t manager_proc_cache_size(Manager *m);

/*
 * Main thread: count @n fds a client of @user sent as held, within
 * USER_FDS_MAX and PASSED_FDS_MAX; -EMFILE if they do not fit. Then give
 * them back.
 */
int manager_take_fds(Manager *m, UserShare *user, size_t n);
void manager_release_fds(Manager *m, UserShare *user, size_t n);

/* Main thread: connections and their jobs. */
void manager_connection_closed(Manager *m, Connection *c);
/* @c has a complete message and no job: queue it for a worker. */
void manager_schedule(Manager *m, Connection *c);
/*
 * Start the queued jobs the workers and each user's share allow. May close
 * connections: call it last in an event handler.
 */
void manager_dispatch(Manager *m);

/* connection.c */
int connection_new(Connection **ret, Manager *m, int fd);
Connection *connection_free(Connection *c);
/* The bytes a message buffer of @size takes, and is charged: the larger ones are mappings, in pages. */
size_t message_buffer_size(size_t size);
/* Free a connection's message buffer of @size bytes (as message_buffer_size() gives it), or a job's. */
void message_buffer_free(char *p, size_t size);
/* Handle what its socket reported (EPOLL* flags). May close it; the caller dispatches the jobs it queued. */
void connection_dispatch(Connection *c, uint32_t revents);
/* Answer the requests already received, read no more. -ECONNRESET when nothing is left to do. */
int connection_drain(Connection *c);
/* Arm the connection's deadline for its state: none while its job runs or waits for a worker. */
int connection_update_timer(Connection *c);
/* The size of the next complete message, 0 if there is none; whether it is all there is, in *ret_last. */
size_t connection_message_size(Connection *c, bool *ret_last);
/* Take the next complete message into a new job. -ENOMEM; 0 if there is none. */
int connection_take_job(Connection *c, Job **ret);
/* A socket for @c's job to send its reply on (a dup), when nothing waits to be written before it; else -EBUSY. */
int connection_direct_fd(Connection *c);
/* The request of @c did not finish in time: answer it with TimedOut and go on. */
void connection_request_timeout(Connection *c);
/* The job of @c is done: queue its reply and go on with the next message. Frees the job. */
void connection_job_done(Connection *c, Job *job);

Job *job_free(Job *job);
DEFINE_CLEANUP(Job *, job_free);

/* methods.c, on a worker: handle job->message, leave the reply in job->reply. */
void method_dispatch(Job *job);
