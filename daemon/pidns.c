/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/nsfs.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lru.h"
#include "parse-util.h"
#include "pidns.h"

/* A status line longer than this is not NSpid (33 pids of 10 digits and tabs), and is skipped. */
#define STATUS_CHUNK 4096U

typedef struct PidnsTable {
        PidnsClient client;
        uid_t owner;                    /* the user whose request made it */
        uint64_t last_used;             /* a tick of PidnsIndex.clock */
        uint64_t scan_tat;              /* see gcra_allows() */
        bool scanning;                  /* a scan for it runs, without the lock */
        Lru *pids;                      /* its pid -> ours, as uintptr_t */
} PidnsTable;

struct PidnsIndex {
        pthread_mutex_t lock;
        pthread_cond_t scanned;         /* a scan finished */
        PidnsLimits limits;
        PidnsTable **tables;            /* limits.max_namespaces slots, NULL: free */
        uint64_t clock;
        uint64_t scan_tat;              /* of all namespaces together */
        uint64_t hits, stale, scans, scans_refused;
};

/* One process a scan found in the namespace. */
typedef struct PidnsHit {
        pid_t pid, host_pid;
} PidnsHit;

static uint64_t now_usec(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000U + (uint64_t) ts.tv_nsec / 1000U;
}

static PidnsTable *pidns_table_free(PidnsTable *t) {
        if (!t)
                return NULL;
        lru_free(t->pids);
        free(t);
        return NULL;
}

int pidns_index_new(PidnsIndex **ret, const PidnsLimits *limits) {
        PidnsIndex *x;

        if (limits->max_namespaces == 0 || limits->max_entries == 0 || limits->max_namespaces > 65536)
                return -EINVAL;

        x = calloc(1, sizeof(*x));
        if (!x)
                return -ENOMEM;
        x->limits = *limits;
        x->tables = calloc(limits->max_namespaces, sizeof(PidnsTable *));
        if (!x->tables) {
                free(x);
                return -ENOMEM;
        }
        pthread_mutex_init(&x->lock, NULL);
        pthread_cond_init(&x->scanned, NULL);
        *ret = x;
        return 0;
}

PidnsIndex *pidns_index_free(PidnsIndex *x) {
        if (!x)
                return NULL;
        for (size_t i = 0; i < x->limits.max_namespaces; i++)
                pidns_table_free(x->tables[i]);
        free(x->tables);
        pthread_cond_destroy(&x->scanned);
        pthread_mutex_destroy(&x->lock);
        free(x);
        return NULL;
}

/* --- reading a process ----------------------------------------------------------- */

static int errno_proc(int error) {
        return error == ENOENT ? -ESRCH : -error;
}

/* The pids of an NSpid line's value: "\t1234\t1" up to @end. */
static int parse_nspid_values(const char *p, const char *end, pid_t ret[static PIDNS_LEVEL_MAX + 1]) {
        int n = 0;

        while (p < end) {
                const char *v;
                uint64_t u;

                if (*p != '\t' && *p != ' ')
                        return -EBADMSG;
                p++;
                v = p;
                while (p < end && *p >= '0' && *p <= '9')
                        p++;
                if (n > (int) PIDNS_LEVEL_MAX || parse_u64_n(v, (size_t) (p - v), 10, &u) < 0 ||
                    u == 0 || u > INT32_MAX)
                        return -EBADMSG;
                ret[n++] = (pid_t) u;
        }
        return n > 0 ? n : -EBADMSG;
}

int pidns_parse_nspid(const char *status, pid_t ret[static PIDNS_LEVEL_MAX + 1]) {
        const char *p, *end;

        if (strncmp(status, "NSpid:", 6) == 0)
                p = status;
        else {
                p = strstr(status, "\nNSpid:");
                if (!p)
                        return -EBADMSG;
                p++;
        }
        p += strlen("NSpid:");
        end = strchr(p, '\n');
        if (!end)
                return -EBADMSG;
        return parse_nspid_values(p, end, ret);
}

/*
 * The NSpid line of the process behind @dir_fd, read a chunk at a time: a
 * scan allocates nothing per process, and no line before it (Groups can
 * be long) costs more than the chunk.
 */
static int read_nspid(int dir_fd, pid_t ret[static PIDNS_LEVEL_MAX + 1]) {
        _cleanup_close_ int fd = -EBADF;
        char buf[STATUS_CHUNK];
        size_t have = 0;
        bool skipping = false;

        fd = openat(dir_fd, "status", O_RDONLY|O_CLOEXEC|O_NOCTTY);
        if (fd < 0)
                return errno_proc(errno);

        for (;;) {
                ssize_t n;
                char *p;

                n = read(fd, buf + have, sizeof(buf) - have);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return errno_proc(errno);
                }
                if (n == 0)
                        /* A process that exited while we read has no NSpid line: that is gone too. */
                        return -ESRCH;
                have += (size_t) n;

                p = buf;
                for (;;) {
                        char *nl = memchr(p, '\n', (size_t) (buf + have - p));

                        if (!nl)
                                break;
                        if (!skipping && (size_t) (nl - p) >= 6 && memcmp(p, "NSpid:", 6) == 0)
                                return parse_nspid_values(p + 6, nl, ret);
                        skipping = false;
                        p = nl + 1;
                }
                if (p == buf && have == sizeof(buf)) {
                        /* A line longer than the chunk: not the one we want, drop what we have of it. */
                        skipping = true;
                        have = 0;
                } else {
                        memmove(buf, p, (size_t) (buf + have - p));
                        have = (size_t) (buf + have - p);
                }
        }
}

static int ns_fd_id(int fd, NsId *ret) {
        struct stat st;

        if (fstat(fd, &st) < 0)
                return -errno;
        *ret = (NsId) { .dev = st.st_dev, .ino = st.st_ino };
        return 0;
}

/*
 * Whether the pid namespace of the process behind @dir_fd, @depth levels
 * below ours, is @client's or lies below it: its ancestor at the client's
 * level must be the client's namespace.
 */
static int check_ancestry(int dir_fd, unsigned depth, const PidnsClient *client) {
        _cleanup_close_ int fd = -EBADF;
        NsId id = {};
        int r;

        fd = openat(dir_fd, "ns/pid", O_RDONLY|O_CLOEXEC);
        if (fd < 0)
                return errno_proc(errno);
        for (unsigned i = depth; i > client->level; i--) {
                int parent = ioctl(fd, NS_GET_PARENT);

                if (parent < 0)
                        /* EPERM: above ours, which cannot be, as it lies below ours. */
                        return errno == EPERM || errno == ENOENT ? -ESRCH : -errno;
                safe_close(fd);
                fd = parent;
        }
        r = ns_fd_id(fd, &id);
        if (r < 0)
                return r;
        return ns_id_equal(&id, &client->ns) ? 0 : -ESRCH;
}

static bool client_valid(const PidnsClient *client) {
        return client->level > 0 && client->level <= PIDNS_LEVEL_MAX;
}

/*
 * The process behind @dir_fd, our @host_pid: in @client's namespace or
 * below, 0 with its pid there in *ret_pid; else -ESRCH.
 */
static int identify(int dir_fd, pid_t host_pid, const PidnsClient *client, pid_t *ret_pid) {
        pid_t nspid[PIDNS_LEVEL_MAX + 1];
        int n, r;

        n = read_nspid(dir_fd, nspid);
        if (n < 0)
                return n;
        /* Read through our /proc, NSpid starts with our pid: else it is some other /proc. */
        if (host_pid > 0 && nspid[0] != host_pid)
                return -ESRCH;
        if ((unsigned) n <= client->level)
                return -ESRCH;          /* above the client's level: it cannot see it */
        r = check_ancestry(dir_fd, (unsigned) n - 1, client);
        if (r < 0)
                return r;
        *ret_pid = nspid[client->level];
        return 0;
}

int pidns_verify(int dir_fd, const PidnsClient *client, pid_t pid) {
        pid_t found;
        int r;

        if (!client_valid(client) || pid <= 0)
                return -ESRCH;
        r = identify(dir_fd, 0, client, &found);
        if (r < 0)
                return r;
        return found == pid ? 0 : -ESRCH;
}

int pidns_read_process(int dir_fd, PidnsClient *ret, pid_t *ret_pid) {
        _cleanup_close_ int fd = -EBADF;
        pid_t nspid[PIDNS_LEVEL_MAX + 1];
        NsId id = {};
        int n, r;

        n = read_nspid(dir_fd, nspid);
        if (n < 0)
                return n;
        fd = openat(dir_fd, "ns/pid", O_RDONLY|O_CLOEXEC);
        if (fd < 0)
                return errno_proc(errno);
        r = ns_fd_id(fd, &id);
        if (r < 0)
                return r;
        *ret = (PidnsClient) { .ns = id, .level = (unsigned) n - 1 };
        if (ret_pid)
                *ret_pid = nspid[n - 1];
        return 0;
}

int pidns_read_client(int dir_fd, PidnsClient *ret) {
        return pidns_read_process(dir_fd, ret, NULL);
}

/* Open our /proc/@pid and check it is what @client calls @pid. */
static int verify_host_pid(pid_t host_pid, const PidnsClient *client, pid_t pid) {
        _cleanup_close_ int dir_fd = -EBADF;
        char path[32];
        pid_t found;
        int r;

        snprintf(path, sizeof(path), "/proc/%d", (int) host_pid);
        dir_fd = open(path, O_PATH|O_DIRECTORY|O_CLOEXEC);
        if (dir_fd < 0)
                return errno_proc(errno);
        r = identify(dir_fd, host_pid, client, &found);
        if (r < 0)
                return r;
        return found == pid ? 0 : -ESRCH;
}

/*
 * Every process of /proc in @client's namespace or below, up to @max of
 * them, the one it calls @pid always among them (last). Returns the count.
 */
static int scan(const PidnsClient *client, pid_t pid, size_t max, PidnsHit **ret, pid_t *ret_host_pid) {
        _cleanup_free_ PidnsHit *hits = NULL;
        DIR *d;
        struct dirent *de;
        size_t n = 0;
        pid_t wanted = 0;

        hits = calloc(max, sizeof(PidnsHit));
        if (!hits)
                return -ENOMEM;
        d = opendir("/proc");
        if (!d)
                return -errno;

        while ((errno = 0, de = readdir(d))) {
                _cleanup_close_ int dir_fd = -EBADF;
                pid_t host_pid, found;
                uint64_t u;

                if (parse_u64(de->d_name, 10, &u) < 0 || u == 0 || u > INT32_MAX)
                        continue;
                host_pid = (pid_t) u;
                dir_fd = openat(dirfd(d), de->d_name, O_PATH|O_DIRECTORY|O_CLOEXEC);
                if (dir_fd < 0)
                        continue;       /* gone meanwhile */
                if (identify(dir_fd, host_pid, client, &found) < 0)
                        continue;
                if (found == pid) {
                        wanted = host_pid;
                        continue;
                }
                /* Keep the first max - 1: the last slot is the wanted one's. */
                if (n + 1 < max)
                        hits[n++] = (PidnsHit) { .pid = found, .host_pid = host_pid };
        }
        closedir(d);

        if (wanted > 0)
                hits[n++] = (PidnsHit) { .pid = pid, .host_pid = wanted };
        *ret = TAKE_PTR(hits);
        *ret_host_pid = wanted;
        return (int) n;
}

/* --- the tables, with the lock held ------------------------------------------------ */

static PidnsTable *table_find(PidnsIndex *x, const PidnsClient *client) {
        for (size_t i = 0; i < x->limits.max_namespaces; i++) {
                PidnsTable *t = x->tables[i];

                if (t && ns_id_equal(&t->client.ns, &client->ns) && t->client.level == client->level) {
                        t->last_used = ++x->clock;
                        return t;
                }
        }
        return NULL;
}

/*
 * A slot for a new table of @uid: a free one; else the least recently
 * used of @uid's own once it holds a fair share; else of anyone's. Never
 * one a scan is filling.
 */
static size_t table_slot(PidnsIndex *x, uid_t uid) {
        size_t n_own = 0, oldest = SIZE_MAX, oldest_own = SIZE_MAX;

        for (size_t i = 0; i < x->limits.max_namespaces; i++) {
                PidnsTable *t = x->tables[i];

                if (!t)
                        return i;
                if (t->scanning)
                        continue;
                if (oldest == SIZE_MAX || t->last_used < x->tables[oldest]->last_used)
                        oldest = i;
                if (t->owner == uid) {
                        n_own++;
                        if (oldest_own == SIZE_MAX || t->last_used < x->tables[oldest_own]->last_used)
                                oldest_own = i;
                }
        }
        if (oldest_own != SIZE_MAX && n_own >= MAX(x->limits.max_namespaces / 4, (size_t) 1))
                return oldest_own;
        return oldest;
}

static int table_get(PidnsIndex *x, const PidnsClient *client, uid_t uid, PidnsTable **ret) {
        PidnsTable *t;
        size_t slot;
        int r;

        t = table_find(x, client);
        if (t) {
                *ret = t;
                return 0;
        }
        slot = table_slot(x, uid);
        if (slot == SIZE_MAX)
                return -EBUSY;          /* every table is being scanned */

        t = calloc(1, sizeof(*t));
        if (!t)
                return -ENOMEM;
        t->client = *client;
        t->owner = uid;
        t->last_used = ++x->clock;
        r = lru_new(&t->pids, sizeof(pid_t), x->limits.max_entries, NULL);
        if (r < 0) {
                free(t);
                return r;
        }
        pidns_table_free(x->tables[slot]);
        x->tables[slot] = t;
        *ret = t;
        return 0;
}

static pid_t table_lookup(PidnsIndex *x, const PidnsClient *client, pid_t pid) {
        PidnsTable *t = table_find(x, client);

        return t ? (pid_t) (uintptr_t) lru_get(t->pids, &pid) : 0;
}

/* Forget @pid -> @host_pid, unless a scan replaced it meanwhile. */
static void table_forget(PidnsIndex *x, const PidnsClient *client, pid_t pid, pid_t host_pid) {
        PidnsTable *t = table_find(x, client);

        if (t && (pid_t) (uintptr_t) lru_get(t->pids, &pid) == host_pid)
                (void) lru_remove(t->pids, &pid);
}

/*
 * A bucket of @burst scans, one back per @interval, kept as the time at
 * which it will be full again (@tat, 0: full), as GCRA does: a scan may
 * start once that is at most (@burst - 1) intervals ahead. Intervals and
 * bursts are capped (at some 12 days, and 2^20) so that none of this
 * overflows.
 */
#define GCRA_INTERVAL_MAX (UINT64_C(1) << 40)
#define GCRA_BURST_MAX ((size_t) 1 << 20)

static bool gcra_allows(uint64_t tat, uint64_t now, uint64_t interval, size_t burst) {
        uint64_t slack = (uint64_t) (MIN(MAX(burst, (size_t) 1), GCRA_BURST_MAX) - 1) * MIN(interval, GCRA_INTERVAL_MAX);

        return tat <= now || tat - now <= slack;
}

static void gcra_take(uint64_t *tat, uint64_t now, uint64_t interval) {
        *tat = MAX(*tat, now) + MIN(interval, GCRA_INTERVAL_MAX);
}

/* Whether a scan for @t may start now: then it is taken from both buckets. */
static bool scan_allowed(PidnsIndex *x, PidnsTable *t) {
        const PidnsLimits *l = &x->limits;
        uint64_t now = now_usec();

        if (!gcra_allows(t->scan_tat, now, l->scan_interval_usec, l->scan_burst) ||
            !gcra_allows(x->scan_tat, now, l->global_scan_interval_usec, l->global_scan_burst))
                return false;
        gcra_take(&t->scan_tat, now, l->scan_interval_usec);
        gcra_take(&x->scan_tat, now, l->global_scan_interval_usec);
        return true;
}

int pidns_translate(PidnsIndex *x, const PidnsClient *client, uid_t uid, pid_t pid, pid_t *ret_host_pid) {
        _cleanup_free_ PidnsHit *hits = NULL;
        PidnsTable *t;
        pid_t host_pid;
        int n, r;

        if (!client_valid(client) || pid <= 0)
                return -EINVAL;

        pthread_mutex_lock(&x->lock);
        host_pid = table_lookup(x, client, pid);
        pthread_mutex_unlock(&x->lock);

        if (host_pid > 0) {
                r = verify_host_pid(host_pid, client, pid);
                if (r >= 0) {
                        __atomic_add_fetch(&x->hits, 1, __ATOMIC_RELAXED);
                        *ret_host_pid = host_pid;
                        return 0;
                }
                if (r != -ESRCH && r != -EBADMSG)
                        return r;
                /* Exited, or the pid names another process now. */
                __atomic_add_fetch(&x->stale, 1, __ATOMIC_RELAXED);
                pthread_mutex_lock(&x->lock);
                table_forget(x, client, pid, host_pid);
                pthread_mutex_unlock(&x->lock);
        }

        pthread_mutex_lock(&x->lock);
        r = table_get(x, client, uid, &t);
        if (r >= 0 && t->scanning) {
                /*
                 * Another thread scans for this namespace: its result is as
                 * fresh as ours would be. Once it is done, the table may go.
                 */
                while ((t = table_find(x, client)) && t->scanning)
                        pthread_cond_wait(&x->scanned, &x->lock);
                host_pid = table_lookup(x, client, pid);
                pthread_mutex_unlock(&x->lock);
                if (host_pid <= 0 || verify_host_pid(host_pid, client, pid) < 0)
                        return -ESRCH;
                *ret_host_pid = host_pid;
                return 0;
        }
        if (r < 0 || !scan_allowed(x, t)) {
                x->scans_refused++;
                pthread_mutex_unlock(&x->lock);
                return r == -ENOMEM ? r : -ESRCH;
        }
        t->scanning = true;
        x->scans++;
        pthread_mutex_unlock(&x->lock);

        n = scan(client, pid, x->limits.max_entries, &hits, &host_pid);

        pthread_mutex_lock(&x->lock);
        /* A table being scanned is never evicted: t is still ours. */
        t->scanning = false;
        for (int i = 0; i < n; i++)
                (void) lru_put(t->pids, &hits[i].pid, (void *) (uintptr_t) hits[i].host_pid);
        pthread_cond_broadcast(&x->scanned);
        pthread_mutex_unlock(&x->lock);

        if (n < 0)
                return n;
        if (host_pid <= 0)
                return -ESRCH;
        *ret_host_pid = host_pid;
        return 0;
}

void pidns_index_stats(PidnsIndex *x, PidnsStats *ret) {
        PidnsStats st = {};

        pthread_mutex_lock(&x->lock);
        for (size_t i = 0; i < x->limits.max_namespaces; i++)
                if (x->tables[i]) {
                        st.n_namespaces++;
                        st.n_entries += lru_size(x->tables[i]->pids);
                }
        st.scans = x->scans;
        st.scans_refused = x->scans_refused;
        pthread_mutex_unlock(&x->lock);
        st.hits = __atomic_load_n(&x->hits, __ATOMIC_RELAXED);
        st.stale = __atomic_load_n(&x->stale, __ATOMIC_RELAXED);
        *ret = st;
}
