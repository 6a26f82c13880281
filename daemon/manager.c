/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/pidfd.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "log.h"
#include "manager.h"
#include "pidns.h"
#include "policy.h"
#include "vmaq-proto.h"

/* Each cached process holds three fds: its /proc directory, its maps file and a pidfd. */
#define FDS_PER_PROC 3
/* Fds kept for everything else: stdio, the socket, the event loop; and what one job may hold open. */
#define FDS_RESERVED 64
#define FDS_PER_JOB 16
/* How long a stopping daemon waits for clients to read their last replies. */
#define STOP_TIMEOUT_USEC (5U * 1000000U)
/* How long a stopping daemon waits for workers still reading a target. */
#define WORKERS_STOP_TIMEOUT_USEC (1U * 1000000U)
/* Out of fds: accept again after this long, or when a connection closes. */
#define ACCEPT_RETRY_USEC (100U * 1000U)
/*
 * What a job takes before its message is scanned, per value the message
 * may hold (at most n / 2 + 1 for n bytes, and the limit): the addresses
 * the scan packs, as their array grows. The rest is charged once the scan
 * has counted them (JOB_BYTES_PER_VALUE, JOB_BYTES_PER_ADDRESS).
 */
#define JOB_BYTES_PER_SCANNED_VALUE 16U
/* After a job that held this much, give the freed memory back to the system, once a second at most. */
#define TRIM_THRESHOLD (1U * 1024U * 1024U)
#define TRIM_INTERVAL_USEC (1U * 1000000U)
/* Threads that may run jobs given up on, beyond --workers: per worker. */
#define ABANDONED_PER_WORKER 3U

/*
 * A snapshot of a process's executable mappings, and what the policy
 * needs to judge who may read it once the process is gone: held by its
 * CachedProc while the process lives, then in Manager.exited for the
 * grace. All under procs_lock.
 */
struct SnapshotRecord {
        Manager *manager;
        SnapshotRecord *older, *newer;  /* in the exited list */
        pid_t pid;
        uint64_t start_time;
        uint64_t expire_usec;           /* CLOCK_MONOTONIC, once exited */
        size_t size;                    /* charged to Manager.snapshot_memory */
        uint64_t pidfs_ino;             /* of its pidfds, unique to the process on pidfs; 0: not known */
        PidnsClient pidns;              /* its own pid namespace (level 0: not known) */
        pid_t pidns_pid;                /* and its pid there, for clients of that namespace */
        Snapshot *snapshot;
        /*
         * Last: allocated only up to the parents it has (of USERNS_DEPTH_MAX),
         * which most processes have none of. Only ever read through a pointer.
         */
        PolicyTarget target;
};

/* The bytes of @t that hold something: its parents array only as far as it is used. */
static size_t policy_target_used_size(const PolicyTarget *t) {
        return offsetof(PolicyTarget, parents) + t->n_parents * sizeof(t->parents[0]);
}

#ifndef PID_FS_MAGIC
#define PID_FS_MAGIC 0x50494446
#endif

/*
 * The inode of the pidfd @fd, where pidfds live on pidfs (Linux 6.9): one
 * per process, never reused while the system runs. 0 before (every pidfd
 * shares one anonymous inode), or when it cannot be told.
 */
static uint64_t pidfd_inode(int fd) {
        struct statfs sfs;
        struct stat st;

        if (fstatfs(fd, &sfs) < 0 || sfs.f_type != PID_FS_MAGIC || fstat(fd, &st) < 0)
                return 0;
        return (uint64_t) st.st_ino;
}

/* What a record's entry in Manager.exited takes besides the record: counted with it. */
#define SNAPSHOT_ENTRY_SIZE 64U

/* The key of Manager.exited: no padding, so that its bytes compare as its fields. */
typedef struct SnapshotKey {
        uint64_t pid;
        uint64_t start_time;
} SnapshotKey;

/* An exited process as a client of its pid namespace knows it. Compared by its bytes: zero it first. */
typedef struct SnapshotNsKey {
        NsId ns;
        uint64_t start_time;
        uint32_t level;
        int32_t pid;
} SnapshotNsKey;

static SnapshotNsKey snapshot_ns_key(const PidnsClient *ns, pid_t pid, uint64_t start_time) {
        SnapshotNsKey key;

        memset(&key, 0, sizeof(key));
        key.ns = ns->ns;
        key.start_time = start_time;
        key.level = ns->level;
        key.pid = pid;
        return key;
}

struct CachedProc {
        unsigned n_ref;                 /* the cache's, and the worker's using it */
        pid_t pid;
        bool cached;                    /* in Manager.procs */
        bool busy;                      /* a worker uses it */
        Proc *proc;
        int pidfd;                      /* readable once the process exits */
        int exit_fd;                    /* the epoll set watching pidfd, while cached */
        Manager *manager;
        SnapshotRecord *record;         /* while cached, under procs_lock */
        bool track_failed;              /* the last snapshot could not be kept: wait for a new address space */
        unsigned track_generation;      /* the Proc's generation then */
};

/* Let go of a record that is in no list: with procs_lock held. */
static void snapshot_record_free(SnapshotRecord *rec) {
        Manager *m;

        if (!rec)
                return;
        m = rec->manager;
        m->snapshot_memory -= rec->size;
        m->n_snapshots--;
        snapshot_unref(rec->snapshot);
        free(rec);
}

/* Manager.exited lets go of a record (expired, evicted, replaced): with procs_lock held. */
static void snapshot_record_unexit(void *p) {
        SnapshotRecord *rec = p;
        Manager *m = rec->manager;

        /* Out of the indexes too, where they still lead to it. */
        if (rec->pidfs_ino != 0 && lru_get(m->exited_by_inode, &rec->pidfs_ino) == rec)
                (void) lru_remove(m->exited_by_inode, &rec->pidfs_ino);
        if (rec->pidns.level > 0) {
                SnapshotNsKey key = snapshot_ns_key(&rec->pidns, rec->pidns_pid, rec->start_time);

                if (lru_get(m->exited_by_ns, &key) == rec)
                        (void) lru_remove(m->exited_by_ns, &key);
        }

        if (rec->older)
                rec->older->newer = rec->newer;
        else
                m->exited_oldest = rec->newer;
        if (rec->newer)
                rec->newer->older = rec->older;
        else
                m->exited_newest = rec->older;
        m->n_exited--;
        snapshot_record_free(rec);
}

/* With procs_lock held, or before the object is shared. */
static void cached_proc_unref(CachedProc *cp) {
        if (!cp || --cp->n_ref > 0)
                return;
        proc_free(cp->proc);
        safe_close(cp->pidfd);
        free(cp);
}

/* The cache lets go of an entry (evicted, removed): with procs_lock held. */
static void cached_proc_uncache(void *p) {
        CachedProc *cp = p;

        /*
         * A worker may hold it on: its pidfd must not stay in the set, which
         * is level-triggered and would report the exit over and over.
         */
        (void) epoll_ctl(cp->exit_fd, EPOLL_CTL_DEL, cp->pidfd, NULL);
        cp->cached = false;
        snapshot_record_free(TAKE_PTR(cp->record));
        cached_proc_unref(cp);
}

Proc *cached_proc_get(CachedProc *cp) {
        return cp->proc;
}

/* Raise the soft fd limit to the hard one and size the process cache to fit in it, next to the connections. */
static size_t manager_fit_fds(Manager *m) {
        struct rlimit rl;
        rlim_t reserved;
        size_t fit;

        if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
                return MIN(m->config.proc_cache_size, (size_t) 64);
        if (rl.rlim_cur < rl.rlim_max) {
                rlim_t soft = rl.rlim_cur;

                rl.rlim_cur = rl.rlim_max;
                if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
                        rl.rlim_cur = soft;
        }

        reserved = FDS_RESERVED + FDS_PER_JOB * m->config.workers + m->config.max_connections + PASSED_FDS_MAX;
        if (rl.rlim_cur <= reserved + FDS_PER_PROC) {
                log_warning(m->log_level, "RLIMIT_NOFILE %llu is too low for %zu connections: "
                            "accepting pauses whenever fds run out.",
                            (unsigned long long) rl.rlim_cur, m->config.max_connections);
                return 1;
        }
        fit = (size_t) MIN(rl.rlim_cur - reserved, (rlim_t) SIZE_MAX) / FDS_PER_PROC;
        if (fit < m->config.proc_cache_size)
                log_warning(m->log_level, "RLIMIT_NOFILE %llu leaves room for %zu cached processes, not %zu.",
                            (unsigned long long) rl.rlim_cur, fit, m->config.proc_cache_size);
        return MIN(fit, m->config.proc_cache_size);
}

static size_t manager_job_cost(Manager *m, size_t size);
static int manager_on_workers(sd_event_source *s, int fd, uint32_t revents, void *userdata);
static int manager_on_proc_exit(sd_event_source *s, int fd, uint32_t revents, void *userdata);
static int manager_on_connections(sd_event_source *s, int fd, uint32_t revents, void *userdata);
static int manager_on_abandon(sd_event_source *s, uint64_t usec, void *userdata);

int manager_new(Manager **ret, const ManagerConfig *config) {
        _cleanup_(manager_freep) Manager *m = NULL;
        size_t proc_cache_size;
        int r;

        m = calloc(1, sizeof(*m));
        if (!m)
                return -ENOMEM;
        m->config = *config;
        m->log_level = config->log_level;
        m->listen_fd = -EBADF;
        m->proc_exit_fd = -EBADF;
        m->connections_fd = -EBADF;
        m->privileged_gid = (gid_t) -1;
        proto_request_limits(config->max_addresses, &m->request_limits);
        pthread_mutex_init(&m->procs_lock, NULL);
        m->log_refused = RATELIMIT_INIT(10U * 1000000U, 10);
        m->log_denied = RATELIMIT_INIT(10U * 1000000U, 10);
        m->log_accept = RATELIMIT_INIT(10U * 1000000U, 5);

        r = vma_backend_resolve(config->backend, &m->backend);
        if (r < 0)
                return log_error_errno(m->log_level, r, "Backend '%s' is not usable: %m",
                                       vma_backend_to_string(config->backend));

        if (config->group && config->group[0] && manager_privileged_gid(m) == (gid_t) -1)
                log_info(m->log_level, "Group '%s' does not exist (yet): only root may query any process.",
                         config->group);

        r = policy_namespace(0, "pid", &m->pidns);
        if (r >= 0)
                r = policy_namespace(0, "user", &m->userns);
        if (r >= 0)
                r = policy_namespace(0, "mnt", &m->mntns);
        if (r < 0)
                return log_error_errno(m->log_level, r, "Failed to identify our namespaces: %m");

        proc_cache_size = manager_fit_fds(m);

        /*
         * Shares of the workers: no user may hold all of them, and all
         * unprivileged users together leave the privileged share free, so
         * that stuck requests of theirs cannot hold up root's.
         */
        m->jobs_per_user = MAX(config->workers / 4, (size_t) 1);
        m->jobs_per_privileged_user = MAX(config->workers / 2, (size_t) 1);
        m->jobs_unprivileged = MAX(config->workers - m->jobs_per_privileged_user, (size_t) 1);

        /*
         * Connections and memory are shared out the same way: an
         * unprivileged user gets its own limit, a privileged one half of
         * all; all unprivileged users together leave an eighth of the
         * connections and a quarter of the memory to the privileged.
         */
        m->connections_unprivileged = MAX(m->config.max_connections - m->config.max_connections / 8, (size_t) 1);
        m->connections_per_privileged_user = MAX(m->config.max_connections / 2, m->config.max_connections_per_user);
        m->memory_per_user = config->max_memory / 4;
        m->memory_per_privileged_user = config->max_memory / 2;
        m->memory_unprivileged = config->max_memory - config->max_memory / 4;
        {
                /*
                 * The largest request while it runs, copied out of a buffer
                 * that holds as much again: one user must be able to make it.
                 */
                size_t largest = 2 * (config->max_message_size + 1) + manager_job_cost(m, config->max_message_size) +
                                 m->request_limits.max_values * JOB_BYTES_PER_VALUE;

                if (m->memory_per_user < largest)
                        return log_error_errno(m->log_level, -EINVAL,
                                               "--max-memory=%zu is too small for the largest request: a user's "
                                               "quarter must hold %zu bytes, so at least %zu.",
                                               config->max_memory, largest, largest * 4);
        }
        /* Room for the spare threads of abandoned jobs: threads start as jobs need them. */
        r = worker_pool_new(&m->workers, config->workers * (1 + ABANDONED_PER_WORKER));
        if (r < 0)
                return log_error_errno(m->log_level, r, "Failed to set up the workers: %m");

        r = lru_new(&m->procs, sizeof(pid_t), proc_cache_size, cached_proc_uncache);
        if (r < 0)
                return log_error_errno(m->log_level, r, "Failed to allocate the process cache: %m");
        /* A user's share lives while it has connections or jobs: never more than these. */
        r = lru_new(&m->users, sizeof(uid_t), m->config.max_connections + config->workers, free);
        if (r < 0)
                return log_error_errno(m->log_level, r, "Failed to allocate the user table: %m");
        r = build_id_cache_new(&m->build_ids, config->build_id_cache_size);
        if (r < 0)
                return log_error_errno(m->log_level, r, "Failed to allocate the build ID cache: %m");
        if (config->exit_grace_usec > 0) {
                /* Never more than the snapshot memory holds of the smallest records. */
                size_t max = MIN(config->max_snapshot_memory / sizeof(SnapshotRecord) + 1, (size_t) 65536);

                r = lru_new(&m->exited, sizeof(SnapshotKey), max, snapshot_record_unexit);
                /*
                 * Indexes of the same records, which leave them as the table
                 * does: one more, for the record that goes in before the
                 * table evicts its oldest.
                 */
                if (r >= 0)
                        r = lru_new(&m->exited_by_inode, sizeof(uint64_t), max + 1, NULL);
                if (r >= 0)
                        r = lru_new(&m->exited_by_ns, sizeof(SnapshotNsKey), max + 1, NULL);
                if (r < 0)
                        return log_error_errno(m->log_level, r, "Failed to allocate the exited processes: %m");
        }
        r = pidns_index_new(&m->pidns_index, &PIDNS_LIMITS_DEFAULT);
        if (r < 0)
                return log_error_errno(m->log_level, r, "Failed to allocate the pid namespace index: %m");

        m->proc_exit_fd = epoll_create1(EPOLL_CLOEXEC);
        m->connections_fd = epoll_create1(EPOLL_CLOEXEC);
        if (m->proc_exit_fd < 0 || m->connections_fd < 0)
                return log_error_errno(m->log_level, -errno, "Failed to create an epoll set: %m");

        r = sd_event_default(&m->event);
        if (r < 0)
                return log_error_errno(m->log_level, r, "Failed to allocate the event loop: %m");
        (void) sd_event_set_watchdog(m->event, true);
        r = sd_event_now(m->event, CLOCK_MONOTONIC, &m->start_usec);
        if (r < 0)
                return r;
        r = sd_event_add_io(m->event, &m->workers_source, worker_pool_fd(m->workers), EPOLLIN,
                            manager_on_workers, m);
        if (r >= 0)
                r = sd_event_add_io(m->event, &m->proc_exit_source, m->proc_exit_fd, EPOLLIN,
                                    manager_on_proc_exit, m);
        if (r >= 0)
                r = sd_event_add_io(m->event, &m->connections_source, m->connections_fd, EPOLLIN,
                                    manager_on_connections, m);
        if (r >= 0) {
                r = sd_event_add_time(m->event, &m->abandon_timer, CLOCK_MONOTONIC, UINT64_MAX, 0,
                                      manager_on_abandon, m);
                if (r >= 0)
                        r = sd_event_source_set_enabled(m->abandon_timer, SD_EVENT_OFF);
        }
        if (r < 0)
                return log_error_errno(m->log_level, r, "Failed to set up the event sources: %m");

        *ret = TAKE_PTR(m);
        return 0;
}

int manager_stop_workers(Manager *m) {
        int r;

        r = worker_pool_stop(m->workers, WORKERS_STOP_TIMEOUT_USEC);
        if (r < 0)
                log_warning(m->log_level, "%zu requests still wait on the kernel, exiting without them.",
                            worker_pool_busy(m->workers));
        return r;
}

Manager *manager_free(Manager *m) {
        if (!m)
                return NULL;

        /* Nothing more is answered: the jobs in flight lose their connections. */
        while (m->connections)
                manager_connection_closed(m, m->connections);
        sd_event_source_disable_unref(m->listen_source);
        sd_event_source_disable_unref(m->accept_retry_source);
        sd_event_source_disable_unref(m->trim_source);
        sd_event_source_disable_unref(m->sigterm_source);
        sd_event_source_disable_unref(m->sigint_source);
        sd_event_source_disable_unref(m->exit_timer_source);
        sd_event_source_disable_unref(m->workers_source);
        sd_event_source_disable_unref(m->proc_exit_source);
        sd_event_source_disable_unref(m->connections_source);
        sd_event_source_disable_unref(m->abandon_timer);
        sd_event_source_disable_unref(m->exited_timer_source);
        if (m->socket_bound)
                (void) unlink(m->config.socket_path);
        safe_close(m->listen_fd);

        /*
         * A worker still inside a target's file or map may use the caches and
         * its job whenever it returns: then leave them be, the process is
         * about to exit.
         */
        if (m->workers && manager_stop_workers(m) < 0)
                return NULL;
        for (WorkItem *i = m->workers ? worker_pool_take_finished(m->workers) : NULL, *next; i; i = next) {
                next = i->next;
                job_free((Job *) i);
        }
        worker_pool_free(m->workers);

        lru_free(m->procs);
        lru_free(m->exited);
        lru_free(m->exited_by_inode);
        lru_free(m->exited_by_ns);
        lru_free(m->users);
        build_id_cache_free(m->build_ids);
        pidns_index_free(m->pidns_index);
        safe_close(m->proc_exit_fd);
        safe_close(m->connections_fd);
        pthread_mutex_destroy(&m->procs_lock);
        sd_event_unref(m->event);
        free(m);
        return NULL;
}

/* --- the memory budget ------------------------------------------------------------ */

/* Add @size to @counter unless that passes @limit. */
static bool memory_take(size_t *counter, size_t size, size_t limit, bool force) {
        if (__atomic_add_fetch(counter, size, __ATOMIC_RELAXED) <= limit || force)
                return true;
        __atomic_sub_fetch(counter, size, __ATOMIC_RELAXED);
        return false;
}

int manager_charge(Manager *m, UserShare *user, bool privileged, size_t size, bool force, size_t *ret_limit) {
        size_t share = privileged ? m->memory_per_privileged_user : m->memory_per_user;
        size_t limit;

        if (size == 0)
                return 0;

        limit = share;
        if (!memory_take(&user->memory, size, share, force))
                goto refuse;
        limit = m->config.max_memory;
        if (!privileged && !memory_take(&m->memory_unprivileged_used, size, m->memory_unprivileged, force))
                goto undo_user;
        if (!memory_take(&m->memory_used, size, m->config.max_memory, force))
                goto undo_unprivileged;
        return 0;

undo_unprivileged:
        if (!privileged)
                __atomic_sub_fetch(&m->memory_unprivileged_used, size, __ATOMIC_RELAXED);
undo_user:
        __atomic_sub_fetch(&user->memory, size, __ATOMIC_RELAXED);
refuse:
        if (ret_limit)
                *ret_limit = limit;
        return -EBUSY;
}

void manager_uncharge(Manager *m, UserShare *user, bool privileged, size_t size) {
        if (size == 0)
                return;
        __atomic_sub_fetch(&user->memory, size, __ATOMIC_RELAXED);
        if (!privileged)
                __atomic_sub_fetch(&m->memory_unprivileged_used, size, __ATOMIC_RELAXED);
        __atomic_sub_fetch(&m->memory_used, size, __ATOMIC_RELAXED);
}

/* --- users and scheduling ------------------------------------------------------ */

static UserShare *manager_user(Manager *m, uid_t uid) {
        UserShare *u = lru_get(m->users, &uid);

        if (u)
                return u;
        u = calloc(1, sizeof(*u));
        if (!u)
                return NULL;
        u->uid = uid;
        if (lru_put(m->users, &uid, u) < 0) {
                free(u);
                return NULL;
        }
        return u;
}

static void manager_user_unref(Manager *m, UserShare *u) {
        if (u->n_connections == 0 && u->n_jobs == 0)
                (void) lru_remove(m->users, &u->uid);
}

static uint64_t manager_now(Manager *m) {
        uint64_t now = 0;

        (void) sd_event_now(m->event, CLOCK_MONOTONIC, &now);
        return now;
}

/* The group's gid, or (gid_t) -1: none, or it could not be read. */
static gid_t group_lookup(const char *name) {
        size_t size = 1024;

        for (;;) {
                _cleanup_free_ char *buf = malloc(size);
                struct group grp, *g = NULL;
                int r;

                if (!buf)
                        return (gid_t) -1;
                r = getgrnam_r(name, &grp, buf, size, &g);
                if (r == ERANGE && size < 1024U * 1024U) {
                        size *= 4;
                        continue;
                }
                return r == 0 && g ? g->gr_gid : (gid_t) -1;
        }
}

gid_t manager_privileged_gid(Manager *m) {
        uint64_t now;

        if (!m->config.group || !m->config.group[0])
                return (gid_t) -1;

        /* The group may be created (sysusers, a package) or removed after we
         * started: look it up again when a client connects, at most once a
         * second, so that a flood of connections costs no NSS storm. */
        now = m->event ? manager_now(m) : 0;
        if (m->privileged_gid_usec != 0 && now != 0 && now - m->privileged_gid_usec < 1000000U)
                return m->privileged_gid;

        m->privileged_gid = group_lookup(m->config.group);
        m->privileged_gid_usec = now;
        return m->privileged_gid;
}

/*
 * malloc_trim() walks and locks every arena: a client must not be able to
 * make us run it at will.
 */
static int manager_on_trim(sd_event_source *s, uint64_t usec, void *userdata) {
        Manager *m = userdata;

        m->trim_source = sd_event_source_disable_unref(m->trim_source);
        m->last_trim_usec = usec;
        (void) malloc_trim(0);
        return 0;
}

static void manager_trim(Manager *m) {
        uint64_t now = manager_now(m);

        if (m->last_trim_usec == 0 || now - m->last_trim_usec >= TRIM_INTERVAL_USEC) {
                m->last_trim_usec = now;
                (void) malloc_trim(0);
                return;
        }
        /* Too soon after the last one: once more when the interval is over. */
        if (!m->trim_source)
                (void) sd_event_add_time(m->event, &m->trim_source, CLOCK_MONOTONIC,
                                         m->last_trim_usec + TRIM_INTERVAL_USEC, 0, manager_on_trim, m);
}

static void manager_unready(Manager *m, Connection *c) {
        if (!c->ready)
                return;
        if (c->ready_prev)
                c->ready_prev->ready_next = c->ready_next;
        else
                m->ready_first = c->ready_next;
        if (c->ready_next)
                c->ready_next->ready_prev = c->ready_prev;
        else
                m->ready_last = c->ready_prev;
        c->ready_prev = c->ready_next = NULL;
        c->ready = false;
}

bool job_disarm_direct(Job *job) {
        int state = JOB_DIRECT_ARMED;

        return __atomic_compare_exchange_n(&job->direct, &state, JOB_DIRECT_OFF, false, __ATOMIC_ACQ_REL,
                                           __ATOMIC_ACQUIRE) || state == JOB_DIRECT_OFF;
}

/*
 * On the worker, once the reply is made: send what the socket takes now,
 * unless the loop gave up on the job. The loop sends the rest, if any,
 * when it takes the job back.
 */
static void job_send_direct(Job *job) {
        int state = JOB_DIRECT_ARMED;

        if (job->direct_fd < 0)
                return;
        if (job->reply &&
            __atomic_compare_exchange_n(&job->direct, &state, JOB_DIRECT_TAKEN, false, __ATOMIC_ACQ_REL,
                                        __ATOMIC_ACQUIRE))
                while (job->direct_sent < job->reply_size) {
                        ssize_t n = send(job->direct_fd, job->reply + job->direct_sent,
                                         job->reply_size - job->direct_sent, MSG_DONTWAIT | MSG_NOSIGNAL);

                        if (n < 0) {
                                if (errno == EINTR)
                                        continue;
                                break;          /* full, or gone: the loop finds out */
                        }
                        job->direct_sent += (size_t) n;
                }
        job->direct_fd = safe_close(job->direct_fd);
}

static void manager_run_job(WorkItem *item) {
        Job *job = (Job *) item;

        method_dispatch(job);
        job_send_direct(job);
}

/* What the job for a message of @size bytes is charged while it runs. */
static size_t manager_job_cost(Manager *m, size_t size) {
        return MIN(size / 2 + 1, m->request_limits.max_values) * JOB_BYTES_PER_SCANNED_VALUE + JOB_BYTES_BASE;
}

/*
 * A job past its deadline runs on, stuck in the kernel maybe (a FUSE file
 * that never answers), its connection answered TimedOut or gone: it keeps
 * its thread and counts against its user's share of jobs until it
 * returns, but no longer against the workers nor the unprivileged users'
 * share, which a few uids would otherwise fill with stuck jobs and lock
 * every other user out. A spare thread takes its place, up to
 * ABANDONED_PER_WORKER per worker; past that, it counts on as before.
 */
static bool manager_may_abandon(const Manager *m) {
        return m->n_abandoned < m->config.workers * ABANDONED_PER_WORKER;
}

static void manager_arm_abandon(Manager *m) {
        if (!m->running_first || !manager_may_abandon(m)) {
                (void) sd_event_source_set_enabled(m->abandon_timer, SD_EVENT_OFF);
                return;
        }
        (void) sd_event_source_set_time(m->abandon_timer, m->running_first->deadline_usec);
        (void) sd_event_source_set_enabled(m->abandon_timer, SD_EVENT_ONESHOT);
}

/* Deadlines are --request-timeout after the start: appended, the list stays in their order. */
static void manager_running_add(Manager *m, Job *job) {
        job->running_prev = m->running_last;
        if (m->running_last)
                m->running_last->running_next = job;
        else
                m->running_first = job;
        m->running_last = job;
        if (m->running_first == job)
                manager_arm_abandon(m);
}

static void manager_running_remove(Manager *m, Job *job) {
        bool first = m->running_first == job;

        if (job->running_prev)
                job->running_prev->running_next = job->running_next;
        else
                m->running_first = job->running_next;
        if (job->running_next)
                job->running_next->running_prev = job->running_prev;
        else
                m->running_last = job->running_prev;
        job->running_prev = job->running_next = NULL;
        if (first)
                manager_arm_abandon(m);
}

static int manager_on_abandon(sd_event_source *s, uint64_t usec, void *userdata) {
        Manager *m = userdata;
        size_t n = 0;

        while (m->running_first && m->running_first->deadline_usec <= usec && manager_may_abandon(m)) {
                Job *job = m->running_first;

                manager_running_remove(m, job);
                job->abandoned = true;
                m->n_abandoned++;
                m->n_jobs--;
                if (!job->peer.privileged)
                        m->n_unprivileged_jobs--;
                n++;
        }
        if (n > 0)
                log_debug(m->log_level, "%zu requests past their deadline run on, on spare threads.", n);
        manager_arm_abandon(m);
        /* Their places are free: what waits for them may start. */
        if (n > 0)
                manager_dispatch(m);
        return 0;
}

/*
 * Start the job of @c now, @cost charged for its work and @copy for a copy
 * of its message, if it needs one. Returns 0, or a negative errno when @c
 * must be closed.
 */
static int manager_start(Manager *m, Connection *c, size_t cost, size_t copy) {
        _cleanup_(job_freep) Job *job = NULL;
        int r;

        r = connection_take_job(c, &job);
        if (r <= 0) {
                manager_uncharge(m, c->user, c->peer.privileged, cost + copy);
                return r;
        }
        job->work_charged = cost;
        if (job->copied)
                job->buffer_charged = copy;
        /* What the scan finds is charged on the worker: forced for a user's only job, as here. */
        job->alone = c->user->n_jobs == 0;
        job->direct_fd = connection_direct_fd(c);
        if (job->direct_fd >= 0)
                job->direct = JOB_DIRECT_ARMED;

        job->item.run = manager_run_job;
        job->connection = c;
        r = worker_pool_submit(m->workers, &job->item);
        if (r < 0)
                return log_error_errno(m->log_level, r, "Failed to hand a request to a worker: %m");

        c->request_since = manager_now(m);
        job->deadline_usec = c->request_since + m->config.request_timeout_usec;
        manager_running_add(m, job);
        c->job = TAKE_PTR(job);
        c->user->n_jobs++;
        m->n_jobs++;
        if (!c->peer.privileged)
                m->n_unprivileged_jobs++;
        /* The job's time is ours: the connection's deadline waits for it. */
        return connection_update_timer(c);
}

/*
 * Start what waits, oldest first, as far as the workers, each user's share
 * of them and the memory budget allow. A user at its share is skipped, not
 * waited for: the others go ahead.
 */
void manager_dispatch(Manager *m) {
        Connection *c, *next;

        for (c = m->ready_first; c && m->n_jobs < m->config.workers; c = next) {
                size_t share = c->peer.privileged ? m->jobs_per_privileged_user : m->jobs_per_user;
                size_t cost, size, copy;
                bool last = false;

                next = c->ready_next;
                if (c->user->n_jobs >= share)
                        continue;
                /* Unprivileged users together leave the privileged share free. */
                if (!c->peer.privileged && m->n_unprivileged_jobs >= m->jobs_unprivileged)
                        continue;
                /*
                 * Until memory comes free: when a job ends, or a client reads
                 * its replies. With room for a copy of the message when more
                 * follows it: else the job takes the connection's buffer.
                 */
                size = connection_message_size(c, &last);
                cost = manager_job_cost(m, size);
                copy = last ? 0 : message_buffer_size(size + 1);
                /*
                 * A user with nothing running is let through anyway: its own
                 * received messages may be what holds its share, and only
                 * running them gives that back.
                 */
                if (manager_charge(m, c->user, c->peer.privileged, cost + copy, c->user->n_jobs == 0, NULL) < 0)
                        continue;
                manager_unready(m, c);
                if (manager_start(m, c, cost, copy) < 0)
                        manager_connection_closed(m, c);
        }
}

void manager_schedule(Manager *m, Connection *c) {
        if (c->ready || c->job)
                return;
        c->ready = true;
        c->ready_prev = m->ready_last;
        if (m->ready_last)
                m->ready_last->ready_next = c;
        else
                m->ready_first = c;
        m->ready_last = c;
}

int manager_take_fds(Manager *m, UserShare *user, size_t n) {
        if (n > USER_FDS_MAX - user->n_fds || n > PASSED_FDS_MAX - m->n_passed_fds)
                return -EMFILE;
        user->n_fds += n;
        m->n_passed_fds += n;
        return 0;
}

void manager_release_fds(Manager *m, UserShare *user, size_t n) {
        assert(user->n_fds >= n && m->n_passed_fds >= n);
        user->n_fds -= n;
        m->n_passed_fds -= n;
}

Job *job_free(Job *job) {
        if (!job)
                return NULL;
        manager_uncharge(job->manager, job->user, job->peer.privileged,
                         job->buffer_charged + job->reply_charged + job->stream_charged + job->work_charged);
        for (size_t i = 0; i < job->n_fds; i++)
                safe_close(job->fds[i]);
        manager_release_fds(job->manager, job->user, job->n_fds);
        safe_close(job->direct_fd);
        message_buffer_free(job->buffer, job->buffer_size);
        free(job->reply);
        reply_stream_free(job->stream);
        free(job);
        return NULL;
}

static int manager_on_workers(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Manager *m = userdata;
        bool trim = false;

        for (WorkItem *i = worker_pool_take_finished(m->workers), *next; i; i = next) {
                Job *job = (Job *) i;

                next = i->next;
                job->user->n_jobs--;
                if (job->abandoned) {
                        m->n_abandoned--;
                        /* A spare thread came back: the next past its deadline may have one. */
                        manager_arm_abandon(m);
                } else {
                        manager_running_remove(m, job);
                        m->n_jobs--;
                        if (!job->peer.privileged)
                                m->n_unprivileged_jobs--;
                }
                trim = trim || job->size >= TRIM_THRESHOLD || job->reply_size >= TRIM_THRESHOLD;

                /* Its message and working memory go back; what its reply holds is charged instead. */
                (void) manager_charge(m, job->user, job->peer.privileged, job->reply_size, true, NULL);
                job->reply_charged = job->reply_size;
                if (job->stream) {
                        job->stream_charged = reply_stream_size(job->stream);
                        (void) manager_charge(m, job->user, job->peer.privileged, job->stream_charged, true, NULL);
                }
                manager_uncharge(m, job->user, job->peer.privileged, job->work_charged + job->buffer_charged);
                job->work_charged = job->buffer_charged = 0;
                message_buffer_free(job->buffer, job->buffer_size);
                job->buffer = NULL;
                job->message = NULL;
                if (job->connection) {
                        job->connection->job = NULL;
                        connection_job_done(job->connection, job);
                } else {
                        /* Its connection closed or gave up on it: the reply goes nowhere. */
                        UserShare *u = job->user;

                        job_free(job);
                        manager_user_unref(m, u);
                }
        }

        manager_dispatch(m);
        /* A large request or reply leaves its arenas grown: give the memory back. */
        if (trim)
                manager_trim(m);
        return 0;
}

/* --- connections ------------------------------------------------------------------ */

static int manager_on_accept(sd_event_source *s, int fd, uint32_t revents, void *userdata);

/*
 * Sockets that are ready, a batch at a time: the loop dispatches this source
 * again while more are, between its other sources.
 */
static int manager_on_connections(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Manager *m = userdata;
        int n;

        n = epoll_wait(fd, m->connection_events, ELEMENTSOF(m->connection_events), 0);
        if (n < 0) {
                if (errno != EINTR)
                        log_ratelimit(&m->log_accept, m->log_level, LOG_WARNING, -errno,
                                      "Failed to wait for the connections: %m");
                return 0;
        }
        m->n_connection_events = (size_t) n;
        /* A connection closed meanwhile is taken out of the batch (NULL): see connection_free(). */
        for (m->connection_event_next = 0; m->connection_event_next < m->n_connection_events;) {
                const struct epoll_event *ev = &m->connection_events[m->connection_event_next++];

                if (ev->data.ptr)
                        connection_dispatch(ev->data.ptr, ev->events);
        }
        m->n_connection_events = m->connection_event_next = 0;
        /* Once for the batch: a walk of what waits costs the ready connections, not each event. */
        manager_dispatch(m);
        return 0;
}

void manager_connection_closed(Manager *m, Connection *c) {
        bool trim = c->in_allocated + c->out_allocated >= TRIM_THRESHOLD;

        manager_unready(m, c);
        if (c->prev)
                c->prev->next = c->next;
        else
                m->connections = c->next;
        if (c->next)
                c->next->prev = c->prev;
        __atomic_sub_fetch(&m->n_connections, 1, __ATOMIC_RELAXED);
        if (!c->peer.privileged)
                m->n_unprivileged_connections--;
        if (c->job) {
                /* Still running: its reply goes nowhere, its user keeps paying for it. */
                (void) job_disarm_direct(c->job);
                c->job->connection = NULL;
        }
        c->user->n_connections--;
        /* Its buffers go back to the budget before its user may go. */
        {
                UserShare *u = c->user;

                connection_free(c);
                manager_user_unref(m, u);
        }
        /* Its buffers grew large: give the memory back rather than keep it for the next one. */
        if (trim)
                manager_trim(m);

        /* An fd came free. */
        if (m->accept_retry_source && !m->stopping) {
                m->accept_retry_source = sd_event_source_disable_unref(m->accept_retry_source);
                (void) sd_event_source_set_enabled(m->listen_source, SD_EVENT_ON);
        }

        if (m->stopping && !m->connections)
                (void) sd_event_exit(m->event, 0);
}

static int manager_on_accept_retry(sd_event_source *s, uint64_t usec, void *userdata) {
        Manager *m = userdata;

        m->accept_retry_source = sd_event_source_disable_unref(m->accept_retry_source);
        if (!m->stopping)
                (void) sd_event_source_set_enabled(m->listen_source, SD_EVENT_ON);
        return 0;
}

/*
 * Tell a refused client why, as the answer to whatever it sends first,
 * if its socket takes it at once; the connection is closed right after.
 */
static void manager_refuse(int fd, const char *reason, size_t limit) {
        _cleanup_free_ char *msg = NULL;
        size_t size;

        if (proto_error_format(PROTO_ERROR_TOO_MANY_CONNECTIONS, &(ProtoErrorDetails) {
                                .reason = reason,
                                .limit = limit,
                        }, &msg, &size) >= 0)
                (void) send(fd, msg, size, MSG_DONTWAIT|MSG_NOSIGNAL);
}

static int manager_on_accept(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Manager *m = userdata;
        Connection *c;
        UserShare *u;
        size_t share;
        int cfd, r;

        cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK|SOCK_CLOEXEC);
        if (cfd < 0) {
                if (IN_SET(errno, EMFILE, ENFILE, ENOBUFS, ENOMEM)) {
                        /*
                         * The pending connection stays pending and the socket stays
                         * readable: stop watching it for a while, or this would spin.
                         */
                        log_ratelimit(&m->log_accept, m->log_level, LOG_WARNING, -errno,
                                      "Failed to accept a connection, pausing: %m");
                        (void) sd_event_source_set_enabled(m->listen_source, SD_EVENT_OFF);
                        if (!m->accept_retry_source)
                                (void) sd_event_add_time_relative(m->event, &m->accept_retry_source,
                                                                  CLOCK_MONOTONIC, ACCEPT_RETRY_USEC, 0,
                                                                  manager_on_accept_retry, m);
                } else if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                        log_ratelimit(&m->log_accept, m->log_level, LOG_WARNING, -errno,
                                      "Failed to accept a connection, ignoring: %m");
                return 0;
        }

        if (m->n_connections >= m->config.max_connections) {
                manager_count(&m->refused_connections);
                log_ratelimit(&m->log_refused, m->log_level, LOG_WARNING, 0,
                              "Refusing a connection: %zu connections already.", m->n_connections);
                manager_refuse(cfd, "in total", m->config.max_connections);
                safe_close(cfd);
                return 0;
        }

        r = connection_new(&c, m, cfd);
        if (r < 0) {
                log_ratelimit(&m->log_accept, m->log_level, LOG_WARNING, r,
                              "Failed to set up a connection, ignoring: %m");
                return 0;
        }

        /* A user at its share, or the unprivileged at theirs: the others still get in. */
        u = lru_get(m->users, &c->peer.cred.uid);
        share = c->peer.privileged ? m->connections_per_privileged_user : m->config.max_connections_per_user;
        if (!c->peer.privileged && m->n_unprivileged_connections >= m->connections_unprivileged) {
                manager_count(&m->refused_connections);
                log_ratelimit(&m->log_refused, m->log_level, LOG_WARNING, 0,
                              "Refusing a connection of uid %u: unprivileged users hold %zu connections.",
                              (unsigned) c->peer.cred.uid, m->n_unprivileged_connections);
                manager_refuse(c->fd, "in total for unprivileged users", m->connections_unprivileged);
                connection_free(c);
                return 0;
        }
        if (u && u->n_connections >= share) {
                manager_count(&m->refused_user_connections);
                log_ratelimit(&m->log_refused, m->log_level, LOG_WARNING, 0,
                              "Refusing a connection of uid %u: it holds %zu connections.",
                              (unsigned) c->peer.cred.uid, u->n_connections);
                manager_refuse(c->fd, "per user", share);
                connection_free(c);
                return 0;
        }

        c->user = manager_user(m, c->peer.cred.uid);
        if (!c->user) {
                connection_free(c);
                return 0;
        }
        c->user->n_connections++;
        if (!c->peer.privileged)
                m->n_unprivileged_connections++;
        c->next = m->connections;
        if (m->connections)
                m->connections->prev = c;
        m->connections = c;
        __atomic_add_fetch(&m->n_connections, 1, __ATOMIC_RELAXED);
        log_debug(m->log_level, "Connection from pid %d uid %u%s.", (int) c->peer.cred.pid,
                  (unsigned) c->peer.cred.uid, c->peer.privileged ? " (privileged)" : "");
        return 0;
}

static int manager_on_exit_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        Manager *m = userdata;

        log_info(m->log_level, "Clients did not read their last replies in time, exiting.");
        return sd_event_exit(m->event, 0);
}

/*
 * Stop: accept nothing more, answer what was received, let clients read
 * the replies, then exit.
 */
static int manager_on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        Manager *m = userdata;
        Connection *c, *next;

        if (m->stopping)
                return 0;
        m->stopping = true;

        log_info(m->log_level, "Received %s, stopping.", strsignal((int) si->ssi_signo));
        (void) sd_notify(false, "STOPPING=1\nSTATUS=Stopping.");
        (void) sd_event_source_set_enabled(m->listen_source, SD_EVENT_OFF);
        m->accept_retry_source = sd_event_source_disable_unref(m->accept_retry_source);

        for (c = m->connections; c; c = next) {
                next = c->next;
                if (connection_drain(c) < 0)
                        manager_connection_closed(m, c);
        }
        manager_dispatch(m);
        if (!m->connections)
                return sd_event_exit(m->event, 0);

        return sd_event_add_time_relative(m->event, &m->exit_timer_source, CLOCK_MONOTONIC, STOP_TIMEOUT_USEC, 0,
                                          manager_on_exit_timeout, m);
}

/*
 * The socket's directory must be writable by its owner alone (root or us),
 * or be sticky: anyone else who may rename entries there could swap the
 * socket for a link to a file of their choosing.
 */
static int manager_check_socket_dir(Manager *m, const char *path) {
        _cleanup_free_ char *dir = strdup(path);
        struct stat st;
        char *slash;

        if (!dir)
                return -ENOMEM;
        slash = strrchr(dir, '/');
        if (slash == dir)
                slash[1] = '\0';
        else
                *slash = '\0';

        if (stat(dir, &st) < 0)
                return log_error_errno(m->log_level, -errno, "Failed to look at '%s': %m", dir);
        if (st.st_uid != 0 && st.st_uid != geteuid())
                return log_error_errno(m->log_level, -EPERM,
                                       "Socket directory '%s' belongs to uid %u, refusing to bind there.",
                                       dir, (unsigned) st.st_uid);
        if ((st.st_mode & (S_IWGRP|S_IWOTH)) && !(st.st_mode & S_ISVTX))
                return log_error_errno(m->log_level, -EPERM,
                                       "Socket directory '%s' is writable by others, refusing to bind there.",
                                       dir);
        return 0;
}

/*
 * Bind the socket ourselves. A socket file left by a dead instance is
 * replaced; a live instance (it accepts) or a file that is no socket is
 * left alone.
 */
static int manager_bind(Manager *m) {
        _cleanup_close_ int fd = -EBADF;
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        const char *path = m->config.socket_path;
        struct stat st;
        mode_t old_umask;
        int r;

        if (strlen(path) >= sizeof(sa.sun_path))
                return log_error_errno(m->log_level, -ENAMETOOLONG, "Socket path '%s' is too long.", path);
        strcpy(sa.sun_path, path);

        r = manager_check_socket_dir(m, path);
        if (r < 0)
                return r;

        if (lstat(path, &st) >= 0) {
                _cleanup_close_ int probe = -EBADF;

                if (!S_ISSOCK(st.st_mode))
                        return log_error_errno(m->log_level, -EEXIST, "'%s' exists and is not a socket.", path);

                probe = socket(AF_UNIX, SOCK_STREAM|SOCK_CLOEXEC, 0);
                if (probe < 0)
                        return -errno;
                if (connect(probe, (struct sockaddr *) &sa, sizeof(sa)) >= 0)
                        return log_error_errno(m->log_level, -EADDRINUSE,
                                               "Another instance is listening on '%s'.", path);
                if (errno != ECONNREFUSED)
                        return log_error_errno(m->log_level, -errno, "Failed to probe '%s': %m", path);
                if (unlink(path) < 0 && errno != ENOENT)
                        return log_error_errno(m->log_level, -errno, "Failed to remove stale '%s': %m", path);
                log_info(m->log_level, "Replaced stale socket '%s'.", path);
        }

        fd = socket(AF_UNIX, SOCK_STREAM|SOCK_NONBLOCK|SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;

        /*
         * bind() creates the file with 0777 less the umask: with this umask
         * it gets its final mode at once, and nothing changes the mode of a
         * path afterwards, which could by then name something else.
         */
        old_umask = umask(~m->config.socket_mode & 0777);
        r = bind(fd, (struct sockaddr *) &sa, sizeof(sa));
        umask(old_umask);
        if (r < 0)
                return log_error_errno(m->log_level, -errno, "Failed to bind '%s': %m", path);
        m->socket_bound = true;
        if (listen(fd, SOMAXCONN) < 0)
                return log_error_errno(m->log_level, -errno, "Failed to listen on '%s': %m", path);

        return TAKE_FD(fd);
}

int manager_listen(Manager *m) {
        sigset_t mask;
        int n, r;

        n = sd_listen_fds(true);
        if (n < 0)
                return log_error_errno(m->log_level, n, "Failed to take sockets from systemd: %m");
        if (n > 1)
                return log_error_errno(m->log_level, -EINVAL, "Expected one socket from systemd, got %d.", n);
        if (n == 1) {
                r = sd_is_socket_unix(SD_LISTEN_FDS_START, SOCK_STREAM, 1, NULL, 0);
                if (r < 0)
                        return log_error_errno(m->log_level, r, "Failed to check the passed socket: %m");
                if (r == 0)
                        return log_error_errno(m->log_level, -EINVAL,
                                               "The passed socket is no listening AF_UNIX stream socket.");
                m->listen_fd = SD_LISTEN_FDS_START;
                /* A client that goes away between poll and accept must not block the loop. */
                if (fcntl(m->listen_fd, F_SETFL, fcntl(m->listen_fd, F_GETFL) | O_NONBLOCK) < 0)
                        return log_error_errno(m->log_level, -errno, "Failed to make the socket non-blocking: %m");
        } else {
                m->listen_fd = manager_bind(m);
                if (m->listen_fd < 0)
                        return m->listen_fd;
        }
        r = sd_event_add_io(m->event, &m->listen_source, m->listen_fd, EPOLLIN, manager_on_accept, m);
        if (r < 0)
                return log_error_errno(m->log_level, r, "Failed to watch the socket: %m");

        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return -errno;
        r = sd_event_add_signal(m->event, &m->sigterm_source, SIGTERM, manager_on_signal, m);
        if (r >= 0)
                r = sd_event_add_signal(m->event, &m->sigint_source, SIGINT, manager_on_signal, m);
        if (r < 0)
                return log_error_errno(m->log_level, r, "Failed to watch signals: %m");

        return 0;
}

int manager_run(Manager *m) {
        int r;

        log_info(m->log_level, "Listening on %s, backend %s, caching up to %zu processes, %zu workers.",
                 m->socket_bound ? m->config.socket_path : "the socket passed by systemd",
                 vma_backend_to_string(m->backend), lru_max(m->procs), m->config.workers);
        (void) sd_notifyf(false, "READY=1\nSTATUS=Serving with the %s backend.", vma_backend_to_string(m->backend));

        r = sd_event_loop(m->event);
        if (r < 0)
                return log_error_errno(m->log_level, r, "Event loop failed: %m");
        return r;
}

/* --- the process cache ----------------------------------------------------------- */

/* --- snapshots of exited processes --------------------------------------------- */

/* Let go of the oldest exited process's snapshot: with procs_lock held. false if it was not in the table. */
static bool manager_drop_oldest_exited(Manager *m) {
        SnapshotRecord *rec = m->exited_oldest;

        /* Every record in the list is in the table, and leaves the list as it leaves the table. */
        return lru_remove(m->exited, &(SnapshotKey) { .pid = (uint64_t) rec->pid,
                                                     .start_time = rec->start_time }) > 0;
}

/* Expire the exited processes whose grace is over, and wait for the next. */
static int manager_on_exited_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Manager *m = userdata;
        uint64_t next = 0, now;
        size_t n = 0;
        int r;

        r = sd_event_now(m->event, CLOCK_MONOTONIC, &now);
        if (r < 0)
                now = usec;
        pthread_mutex_lock(&m->procs_lock);
        while (m->exited_oldest && m->exited_oldest->expire_usec <= now) {
                if (!manager_drop_oldest_exited(m))
                        break;
                n++;
        }
        if (m->exited_oldest)
                next = m->exited_oldest->expire_usec;
        pthread_mutex_unlock(&m->procs_lock);

        if (n > 0)
                log_debug(m->log_level, "The grace of %zu exited processes is over.", n);
        if (next > 0) {
                (void) sd_event_source_set_time(s, next);
                (void) sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
        }
        return 0;
}

/* Move the snapshot of the exited @cp to the exited processes: on the loop, with procs_lock held. */
static void manager_keep_exited(Manager *m, CachedProc *cp) {
        SnapshotRecord *rec = cp->record;
        SnapshotNsKey ns_key;
        SnapshotKey key;
        uint64_t now;
        int r;

        if (!rec || !m->exited || sd_event_now(m->event, CLOCK_MONOTONIC, &now) < 0)
                return;

        key = (SnapshotKey) { .pid = (uint64_t) rec->pid, .start_time = rec->start_time };
        /* A record of the same process, had one come back from a cache entry: the newer stays. */
        (void) lru_remove(m->exited, &key);
        ns_key = snapshot_ns_key(&rec->pidns, rec->pidns_pid, rec->start_time);
        if (rec->pidfs_ino != 0 && lru_put(m->exited_by_inode, &rec->pidfs_ino, rec) < 0)
                return;
        if ((rec->pidns.level > 0 && lru_put(m->exited_by_ns, &ns_key, rec) < 0) ||
            lru_put(m->exited, &key, rec) < 0) {
                if (rec->pidfs_ino != 0)
                        (void) lru_remove(m->exited_by_inode, &rec->pidfs_ino);
                if (rec->pidns.level > 0)
                        (void) lru_remove(m->exited_by_ns, &ns_key);
                return;
        }
        cp->record = NULL;
        rec->expire_usec = now + m->config.exit_grace_usec;
        rec->older = m->exited_newest;
        rec->newer = NULL;
        if (m->exited_newest)
                m->exited_newest->newer = rec;
        else
                m->exited_oldest = rec;
        m->exited_newest = rec;
        m->n_exited++;

        /* The list is in the order of expiry: an armed timer is due no later than this one. */
        if (!m->exited_timer_source)
                r = sd_event_add_time(m->event, &m->exited_timer_source, CLOCK_MONOTONIC, rec->expire_usec,
                                      10U * 1000U, manager_on_exited_timer, m);
        else {
                int enabled = SD_EVENT_OFF;

                r = sd_event_source_get_enabled(m->exited_timer_source, &enabled);
                if (r >= 0 && enabled == SD_EVENT_OFF) {
                        r = sd_event_source_set_time(m->exited_timer_source, m->exited_oldest->expire_usec);
                        if (r >= 0)
                                r = sd_event_source_set_enabled(m->exited_timer_source, SD_EVENT_ONESHOT);
                }
        }
        if (r < 0)
                log_warning_errno(m->log_level, r, "Failed to arm the timer of exited processes, ignoring: %m");
}

/* Make room for @add bytes of snapshots in place of @sub, evicting the oldest exited: with procs_lock held. */
static bool manager_snapshot_make_room(Manager *m, size_t add, size_t sub) {
        while (m->snapshot_memory - sub + add > m->config.max_snapshot_memory && m->exited_oldest)
                if (!manager_drop_oldest_exited(m))
                        break;
        return m->snapshot_memory - sub + add <= m->config.max_snapshot_memory;
}

int manager_track_proc(Manager *m, CachedProc *cp, const Normalization *n, const uint64_t *addrs, size_t n_addrs,
                       bool build_ids, bool force) {
        _cleanup_(snapshot_unrefp) Snapshot *held = NULL, *snapshot = NULL;
        _cleanup_free_ SnapshotRecord *rec = NULL;
        PolicyTarget target;
        size_t record_size;
        Proc *p = cp->proc;
        NormalizeOptions opts = {
                .flags = build_ids ? NORMALIZE_BUILD_IDS : 0,
                .build_id_cache = m->build_ids,
                .max_build_id_reads = m->config.max_build_id_reads,
        };
        int r;

        if (!m->exited)
                return 0;

        pthread_mutex_lock(&m->procs_lock);
        if (cp->record)
                held = snapshot_ref(cp->record->snapshot);
        pthread_mutex_unlock(&m->procs_lock);

        if (!force) {
                if (held && (!build_ids || snapshot_has_build_ids(held)) &&
                    (!n || !snapshot_is_stale(held, addrs, n_addrs, n)))
                        return 0;
                /* One that could not be kept is tried again once the address space changed. */
                if (cp->track_failed && cp->track_generation == proc_generation(p))
                        return 0;
        }

        if (n) {
                /* Of the process the answer described, or none. */
                opts.flags |= NORMALIZE_PIN;
                opts.start_time = n->start_time;
        }
        r = snapshot_take(p, &opts, m->config.max_snapshot_memory / 4, &snapshot);
        if (r >= 0)
                /*
                 * After the walk, through the directory it attached to: the
                 * credentials of the address space walked, or of one a later
                 * exec made, which a setuid program only makes stricter.
                 */
                r = policy_read_target(proc_dir_fd(p), &target);
        if (r < 0)
                goto fail;
        record_size = offsetof(SnapshotRecord, target) + policy_target_used_size(&target);
        rec = calloc(1, record_size);
        if (!rec)
                return -ENOMEM;
        memcpy(&rec->target, &target, policy_target_used_size(&target));

        rec->manager = m;
        rec->pidfs_ino = pidfd_inode(cp->pidfd);
        /* For clients in its namespace, which ask by its pid there; none if it cannot be read. */
        if (pidns_read_process(proc_dir_fd(p), &rec->pidns, &rec->pidns_pid) < 0)
                rec->pidns = (PidnsClient) {};
        rec->pid = snapshot_pid(snapshot);
        rec->start_time = snapshot_start_time(snapshot);
        rec->size = record_size + SNAPSHOT_ENTRY_SIZE + snapshot_size(snapshot);
        rec->snapshot = TAKE_PTR(snapshot);

        pthread_mutex_lock(&m->procs_lock);
        if (!cp->cached) {
                /* Not the cache's (another request holds that one), or no longer: the snapshot goes with it. */
                snapshot = TAKE_PTR(rec->snapshot);
                pthread_mutex_unlock(&m->procs_lock);
                return 0;
        }
        if (!manager_snapshot_make_room(m, rec->size, cp->record ? cp->record->size : 0)) {
                snapshot = TAKE_PTR(rec->snapshot);
                pthread_mutex_unlock(&m->procs_lock);
                r = -ENOBUFS;
                goto fail;
        }
        m->snapshot_memory += rec->size;
        m->n_snapshots++;
        snapshot_record_free(cp->record);
        cp->record = TAKE_PTR(rec);
        pthread_mutex_unlock(&m->procs_lock);
        cp->track_failed = false;
        return 1;

fail:
        cp->track_failed = true;
        cp->track_generation = proc_generation(p);
        return r;
}

/* With procs_lock held: the record of the exited process whose pidfds have inode @ino. */
static SnapshotRecord *manager_find_exited_inode(Manager *m, uint64_t ino) {
        return ino != 0 ? lru_get(m->exited_by_inode, &ino) : NULL;
}

/* @pid (0: none) and @start_time, else @pidfd (-1: none): the snapshot of an exited process, for @peer. */
static int manager_lookup(Manager *m, const Peer *peer, pid_t pid, uint64_t start_time, int pidfd, Snapshot **ret) {
        SnapshotRecord *rec = NULL;
        CachedProc *cp;
        int r = 0;

        if (!m->exited)
                return -ESRCH;

        pthread_mutex_lock(&m->procs_lock);
        if (pid > 0)
                rec = lru_get(m->exited, &(SnapshotKey) { .pid = (uint64_t) pid, .start_time = start_time });
        if (!rec && pidfd >= 0)
                rec = manager_find_exited_inode(m, pidfd_inode(pidfd));
        if (!rec && pid > 0) {
                /* Exited, but the loop has not handled it yet: its record is still with the cache. */
                cp = lru_get(m->procs, &pid);
                if (cp && cp->record && cp->record->start_time == start_time &&
                    poll(&(struct pollfd) { .fd = cp->pidfd, .events = POLLIN }, 1, 0) > 0)
                        rec = cp->record;
        }
        if (!rec)
                r = -ESRCH;
        else if (!peer->privileged)
                r = policy_check_client(&rec->target, &peer->client);
        if (r >= 0)
                *ret = snapshot_ref(rec->snapshot);
        pthread_mutex_unlock(&m->procs_lock);
        return r;
}

/*
 * With procs_lock held: the record of the exited process that @peer, in
 * another pid namespace, calls @pid. Only a process that was in the
 * peer's own namespace is found so (the common case of a container), not
 * one nested below it.
 */
static SnapshotRecord *manager_find_exited_foreign(Manager *m, const Peer *peer, pid_t pid, uint64_t start_time) {
        SnapshotNsKey key = snapshot_ns_key(&peer->pidns, pid, start_time);

        return peer->pidns.level > 0 ? lru_get(m->exited_by_ns, &key) : NULL;
}

int manager_lookup_exited(Manager *m, const Peer *peer, pid_t pid, uint64_t start_time, Snapshot **ret) {
        SnapshotRecord *rec;
        int r = 0;

        if (!peer->foreign_pidns)
                return manager_lookup(m, peer, pid, start_time, -1, ret);

        /* Its pids are of another namespace: never look them up as ours. */
        if (peer->pidns.level == 0)
                return -EXDEV;
        if (!m->exited)
                return -ESRCH;
        pthread_mutex_lock(&m->procs_lock);
        rec = manager_find_exited_foreign(m, peer, pid, start_time);
        if (!rec)
                r = -ESRCH;
        else if (!peer->privileged)
                r = policy_check_client(&rec->target, &peer->client);
        if (r >= 0)
                *ret = snapshot_ref(rec->snapshot);
        pthread_mutex_unlock(&m->procs_lock);
        return r;
}

int manager_lookup_exited_pidfd(Manager *m, const Peer *peer, int pidfd, pid_t pid, uint64_t start_time,
                                Snapshot **ret) {
        return manager_lookup(m, peer, pid, start_time, pidfd, ret);
}

void manager_snapshot_stats(Manager *m, size_t *ret_held, size_t *ret_exited, size_t *ret_memory) {
        pthread_mutex_lock(&m->procs_lock);
        *ret_held = m->n_snapshots;
        *ret_exited = m->n_exited;
        *ret_memory = m->snapshot_memory;
        pthread_mutex_unlock(&m->procs_lock);
}

/* Cached processes exited: their entries go, with their fds; their snapshots stay for the grace. */
static int manager_on_proc_exit(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Manager *m = userdata;
        struct epoll_event events[64];
        int n;

        n = epoll_wait(fd, events, ELEMENTSOF(events), 0);
        for (int i = 0; i < n; i++) {
                pid_t pid = (pid_t) events[i].data.u64;
                CachedProc *cp;

                pthread_mutex_lock(&m->procs_lock);
                cp = lru_get(m->procs, &pid);
                /* The entry may be a newer process of the same pid by now: only drop one that exited. */
                if (cp && poll(&(struct pollfd) { .fd = cp->pidfd, .events = POLLIN }, 1, 0) > 0) {
                        log_debug(m->log_level, "Process %d exited, dropping it from the cache.", (int) pid);
                        manager_keep_exited(m, cp);
                        (void) lru_remove(m->procs, &pid);
                }
                pthread_mutex_unlock(&m->procs_lock);
        }
        return 0;
}

/*
 * For a peer in another pid namespace: whether the process behind @dir_fd,
 * which pins it, is the one the peer calls @peer_pid.
 */
static int manager_check_pidns(const Peer *peer, pid_t peer_pid, int dir_fd) {
        int r;

        /* A pidfd names its process exactly: there is no pid of the peer's to check. */
        if (!peer->foreign_pidns || peer_pid <= 0)
                return 0;
        r = pidns_verify(dir_fd, &peer->pidns, peer_pid);
        return r == -EBADMSG ? -ESRCH : r;
}

/* Open @pid afresh (@peer_pid as @peer calls it), checked before anything else is opened for it. */
static int manager_open_proc(Manager *m, const Peer *peer, pid_t pid, pid_t peer_pid, CachedProc **ret) {
        _cleanup_close_ int dir_fd = -EBADF, pidfd = -EBADF;
        CachedProc *cp;
        int r;

        dir_fd = proc_open_dir(pid);
        if (dir_fd < 0)
                return dir_fd;
        r = manager_check_pidns(peer, peer_pid, dir_fd);
        if (r < 0)
                return r;
        if (!peer->privileged) {
                r = policy_check_target(dir_fd, &peer->client);
                if (r < 0)
                        return r;
        }

        /*
         * The pidfd, after the directory: if the pid was reused in between,
         * the pidfd names the newer process, whose start time then differs
         * from the pinned directory's; proc_open_at() reports that as gone.
         * /proc/TID exists for every thread, but only a process has a pidfd.
         */
        pidfd = pidfd_open(pid, 0);
        if (pidfd < 0) {
                if (IN_SET(errno, ENOENT, EINVAL)) {
                        log_debug(m->log_level, "Pid %d is a thread, not a process.", (int) pid);
                        return -ESRCH;
                }
                return negative_errno();
        }

        cp = calloc(1, sizeof(*cp));
        if (!cp)
                return -ENOMEM;
        cp->n_ref = 1;
        cp->pid = pid;
        cp->pidfd = TAKE_FD(pidfd);
        cp->exit_fd = -EBADF;
        cp->manager = m;
        r = proc_open_at(&cp->proc, pid, TAKE_FD(dir_fd), m->backend);
        /*
         * Once more, now that the maps file is open: an exec (of a setuid
         * program) between the check and the open would have bound it to an
         * address space the check never saw. The kernel orders opening the
         * maps file against exec, so the credentials read now are those of
         * the address space we hold, or of a later one.
         */
        if (r >= 0)
                r = manager_recheck_proc_pid(m, peer, peer_pid, cp->proc);
        if (r < 0) {
                cached_proc_unref(cp);
                return r;
        }

        *ret = cp;
        return 0;
}

/*
 * @pid, a pid of our namespace, which @peer calls @peer_pid (0: it named
 * the process otherwise, by a pidfd).
 */
static int manager_acquire(Manager *m, const Peer *peer, pid_t pid, pid_t peer_pid, CachedProc **ret) {
        CachedProc *cp, *fresh;
        int r;

        pthread_mutex_lock(&m->procs_lock);
        cp = lru_get(m->procs, &pid);
        if (cp && !cp->busy) {
                cp->busy = true;
                cp->n_ref++;
        } else
                cp = NULL;
        pthread_mutex_unlock(&m->procs_lock);

        if (cp) {
                /* The policy first: a refused client must learn nothing, the cache included. */
                r = manager_recheck_proc_pid(m, peer, peer_pid, cp->proc);
                if (r >= 0) {
                        manager_count(&m->proc_cache_hits);
                        *ret = cp;
                        return 0;
                }
                manager_release_proc(m, cp, r == -ESRCH);
                /* Gone: its exit not handled yet, the pid perhaps reused. Look it up afresh. */
                if (r != -ESRCH)
                        return r;
        }

        /* Not cached, or in use by another request: open our own. */
        r = manager_open_proc(m, peer, pid, peer_pid, &fresh);
        if (r < 0)
                return r;
        manager_count(&m->proc_cache_misses);

        pthread_mutex_lock(&m->procs_lock);
        fresh->busy = true;
        if (!lru_get(m->procs, &pid)) {
                fresh->n_ref++;
                if (lru_put(m->procs, &pid, fresh) >= 0) {
                        fresh->cached = true;
                        fresh->exit_fd = m->proc_exit_fd;
                        (void) epoll_ctl(m->proc_exit_fd, EPOLL_CTL_ADD, fresh->pidfd, &(struct epoll_event) {
                                        .events = EPOLLIN,
                                        .data.u64 = (uint64_t) pid,
                                });
                } else
                        fresh->n_ref--;
        }
        pthread_mutex_unlock(&m->procs_lock);

        *ret = fresh;
        return 0;
}

int manager_acquire_proc(Manager *m, const Peer *peer, pid_t peer_pid, CachedProc **ret) {
        pid_t pid = peer_pid;
        int r;

        if (peer->foreign_pidns) {
                if (peer->pidns.level == 0)
                        return -EXDEV;
                r = pidns_translate(m->pidns_index, &peer->pidns, peer->cred.uid, peer_pid, &pid);
                if (r < 0)
                        return r == -EINVAL ? -ESRCH : r;
        }
        return manager_acquire(m, peer, pid, peer_pid, ret);
}

/* Whether @fd is a pidfd, by the kernel's name for it ("anon_inode:[pidfd]", or "pidfd:[...]" on pidfs). */
static bool fd_is_pidfd(int fd) {
        char link[sizeof("/proc/self/fd/") + 3 * sizeof(int)], name[64];
        ssize_t n;

        snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
        n = readlink(link, name, sizeof(name) - 1);
        if (n < 0)
                return false;
        name[n] = '\0';
        return strcmp(name, "anon_inode:[pidfd]") == 0 || strncmp(name, "pidfd:", strlen("pidfd:")) == 0;
}

int manager_acquire_pidfd(Manager *m, const Peer *peer, int pidfd, CachedProc **ret, pid_t *ret_pid) {
        pid_t pid, now;
        int r;

        if (!fd_is_pidfd(pidfd))
                return -EBADF;
        r = pidfd_get_pid(pidfd, &pid);
        if (r == -EOPNOTSUPP)
                return -EBADF;
        if (r < 0)
                return r;
        *ret_pid = pid;
        /* Exited, or in a pid namespace we cannot see into. */
        if (pid <= 0)
                return -ESRCH;

        /*
         * The pid is the pidfd's process as long as that lives: a pid is
         * reused only once its process is gone. So what we acquire for it
         * is that process if, after acquiring, the pidfd's process still
         * holds the pid, and so does the process we hold (the cache's may
         * be an older one that exited, its exit not handled yet). Both
         * holding it at the second look means they are one.
         */
        for (unsigned attempt = 0; attempt < 2; attempt++) {
                CachedProc *cp;

                r = manager_acquire(m, peer, pid, 0, &cp);
                if (r < 0)
                        return r;
                r = pidfd_get_pid(pidfd, &now);
                if (r >= 0 && now == pid)
                        r = pidfd_get_pid(cp->pidfd, &now);
                if (r >= 0 && now == pid) {
                        *ret = cp;
                        return 0;
                }
                manager_release_proc(m, cp, true);
                if (r < 0)
                        return r;
                r = pidfd_get_pid(pidfd, &now);
                if (r < 0)
                        return r;
                if (now != pid)
                        return -ESRCH;
        }
        return -ESRCH;
}

void manager_release_proc(Manager *m, CachedProc *cp, bool gone) {
        if (!cp)
                return;
        pthread_mutex_lock(&m->procs_lock);
        cp->busy = false;
        /*
         * One that exited with a snapshot stays for the loop, which moves
         * the snapshot to the exited processes: its pidfd is readable.
         */
        if (gone && cp->record && poll(&(struct pollfd) { .fd = cp->pidfd, .events = POLLIN }, 1, 0) > 0)
                gone = false;
        if (gone && cp->cached && lru_get(m->procs, &cp->pid) == cp)
                (void) lru_remove(m->procs, &cp->pid);
        cached_proc_unref(cp);
        pthread_mutex_unlock(&m->procs_lock);
}

size_t manager_proc_cache_size(Manager *m) {
        size_t n;

        pthread_mutex_lock(&m->procs_lock);
        n = lru_size(m->procs);
        pthread_mutex_unlock(&m->procs_lock);
        return n;
}

int manager_recheck_proc(Manager *m, const Peer *peer, Proc *p) {
        if (peer->privileged)
                return 0;

        return policy_check_target(proc_dir_fd(p), &peer->client);
}

int manager_recheck_proc_pid(Manager *m, const Peer *peer, pid_t pid, Proc *p) {
        int r;

        /* First: about a process it cannot see, the peer learns nothing but that. */
        r = manager_check_pidns(peer, pid, proc_dir_fd(p));
        if (r < 0)
                return r;
        return manager_recheck_proc(m, peer, p);
}
