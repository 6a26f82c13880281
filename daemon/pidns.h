/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Pids of clients in other pid namespaces. A client in a container names
 * processes by the pids of its own namespace; the daemon opens them by its
 * own. The kernel lists a process's pids, from the namespace of the /proc
 * we read (ours) down to its own, on the "NSpid:" line of its
 * /proc/PID/status: a client whose namespace lies @level below ours calls a
 * process by the pid at index @level of that line, if the process is in
 * that namespace or below it.
 *
 * A PidnsIndex remembers, per client namespace, which of our pids each of
 * its pids named when it last looked, and never trusts that: every answer
 * is checked against the process itself (pidns_verify()), and the caller
 * checks again on the /proc/PID directory it goes on to use, which pins the
 * process. A pid it does not know is looked for by one scan of /proc, which
 * records the whole namespace; scans are rate-limited, per namespace and in
 * all, so that no client can make the daemon scan /proc in a loop. Memory
 * is bounded: a number of namespaces, each with a number of pids, least
 * recently used first out; a namespace table is evicted among those of the
 * same user first, so that one user cannot push out another's.
 *
 * Threads: the index has a mutex of its own. Scans and checks run without
 * it, so one slow scan holds up only the lookups that wait for its result.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "macro.h"
#include "policy.h"

/* The kernel nests pid namespaces 32 deep at most: NSpid has at most 33 entries. */
#define PIDNS_LEVEL_MAX 32U

/* A client's pid namespace: its identity, and how far below ours it lies (0: ours). */
typedef struct PidnsClient {
        NsId ns;
        unsigned level;
} PidnsClient;

/*
 * Scans come from buckets: one per namespace, of @scan_burst scans that
 * come back one per @scan_interval_usec, and one for all namespaces alike
 * (@global_*). A burst of 0 counts as 1; intervals over 2^40 us (some 12
 * days) count as that, bursts over 2^20 as that.
 */
typedef struct PidnsLimits {
        size_t max_namespaces;          /* namespace tables */
        size_t max_entries;             /* pids in one table */
        uint64_t scan_interval_usec;
        size_t scan_burst;
        uint64_t global_scan_interval_usec;
        size_t global_scan_burst;
} PidnsLimits;

#define PIDNS_LIMITS_DEFAULT ((PidnsLimits) {                   \
        .max_namespaces = 64,                                   \
        .max_entries = 1024,                                    \
        .scan_interval_usec = 250U * 1000U,                     \
        .scan_burst = 4,                                        \
        .global_scan_interval_usec = 50U * 1000U,               \
        .global_scan_burst = 4,                                 \
})

typedef struct PidnsStats {
        size_t n_namespaces, n_entries;
        uint64_t hits, stale, scans, scans_refused;
} PidnsStats;

typedef struct PidnsIndex PidnsIndex;

/* -EINVAL for a limit of 0 entries or namespaces. */
int pidns_index_new(PidnsIndex **ret, const PidnsLimits *limits);
PidnsIndex *pidns_index_free(PidnsIndex *x);
DEFINE_CLEANUP(PidnsIndex *, pidns_index_free);

/*
 * Our pid of the process that @client (asking on behalf of user @uid) calls
 * @pid: in the client's namespace or below it, checked against the process
 * when found. Never answers for a process outside the client's namespace.
 *
 * Errors: -ESRCH  no such process in the client's namespace, or not known
 *                 and the rate limit allows no scan now; also, when more
 *                 namespaces or processes are asked about than the limits
 *                 hold, for a process whose entry went before it was used
 *         -EINVAL @pid is not positive, or @client's level is 0 or too deep
 */
int pidns_translate(PidnsIndex *x, const PidnsClient *client, uid_t uid, pid_t pid, pid_t *ret_host_pid);

void pidns_index_stats(PidnsIndex *x, PidnsStats *ret);

/*
 * Whether the process behind the open /proc/PID directory @dir_fd (of our
 * /proc) is the one @client calls @pid: its NSpid has @pid at the client's
 * level, and its pid namespace is the client's or lies below it. Returns 0,
 * -ESRCH if not (or gone), -EBADMSG if its status cannot be parsed.
 */
int pidns_verify(int dir_fd, const PidnsClient *client, pid_t pid);

/*
 * The pid namespace of the process behind the open /proc/PID directory
 * @dir_fd and its level below ours, from its NSpid line.
 * Errors: -ESRCH (gone), -EBADMSG (no NSpid line, or too deep).
 */
int pidns_read_client(int dir_fd, PidnsClient *ret);
/* The same, and the process's pid in its own namespace in *ret_pid (may be NULL). */
int pidns_read_process(int dir_fd, PidnsClient *ret, pid_t *ret_pid);

/*
 * The pids of the "NSpid:" line of a /proc/PID/status text, outermost
 * first, into @ret (room for PIDNS_LEVEL_MAX + 1). Returns how many, or
 * -EBADMSG.
 */
int pidns_parse_nspid(const char *status, pid_t ret[static PIDNS_LEVEL_MAX + 1]);
