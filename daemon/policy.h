/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Who may ask about which process. The daemon can read every process's map;
 * a client may learn only what the kernel would let it read itself:
 *
 * - root, and members of the privileged group, may query any process;
 * - any other client what ptrace_may_access(PTRACE_MODE_READ) grants a
 *   process holding its credentials and no capabilities, which is what
 *   opening /proc/PID/maps checks:
 *     - a target in the client's own user namespace whose real, effective
 *       and saved user IDs all equal the client's, whose real, effective
 *       and saved group IDs all equal the client's, which holds no
 *       capabilities (CapPrm, which includes ambient ones) and which is
 *       dumpable (the kernel makes the files in /proc/PID root's when it is
 *       not: setuid programs, and processes that asked not to be inspected);
 *     - or a target in a user namespace below the client's that the
 *       client's user ID owns: there the client holds CAP_SYS_PTRACE.
 *   Anything else, a target in another user namespace (the client's being
 *   a container's, or the target's owned by someone else) included, is
 *   refused. A target without an address space (zombie, kernel thread) is
 *   judged by the same credentials, so a refusal tells nothing of its
 *   state.
 *
 * Pids are only meaningful in one pid namespace: a client in another one
 * has its pids translated (pidns.h), which needs its namespace for sure
 * (policy_peer_pidns()); one whose namespace cannot be told is refused
 * (-EXDEV), never answered about the wrong process.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* A namespace, as the kernel identifies it: the nsfs inode. */
typedef struct NsId {
        dev_t dev;
        ino_t ino;
} NsId;

static inline bool ns_id_equal(const NsId *a, const NsId *b) {
        return a->dev == b->dev && a->ino == b->ino;
}

/* What the policy knows of an unprivileged client. */
typedef struct PolicyClient {
        uid_t uid;              /* effective, from SO_PEERCRED */
        gid_t gid;
        NsId userns;
} PolicyClient;

/* Whether a client with these credentials may query any process. @privileged_gid (gid_t) -1: no group. */
bool policy_is_privileged(uid_t uid, gid_t gid, const gid_t *groups, size_t n_groups, gid_t privileged_gid);

/* The kernel nests user namespaces 32 deep at most. */
#define USERNS_DEPTH_MAX 33

/*
 * What the policy needs to know of a target to judge any client: its
 * credentials, whether it has an address space and whom its /proc files
 * belong to, and its user namespace with those above it.
 */
typedef struct PolicyTarget {
        uint64_t uids[3];       /* real, effective, saved */
        uint64_t gids[3];
        uint64_t cap_prm;
        bool has_mm;
        uid_t files_uid;        /* of /proc/PID/stat, with has_mm */
        NsId userns;
        size_t n_parents;
        struct {
                NsId ns;        /* an ancestor of userns, nearest first */
                uid_t owner;    /* of the namespace right below it */
        } parents[USERNS_DEPTH_MAX];
} PolicyTarget;

/*
 * Read what the policy needs of the process behind the open /proc/PID
 * directory @dir_fd. Returns 0; -ESRCH if the process is gone, -EBADMSG if
 * its status file cannot be parsed.
 */
int policy_read_target(int dir_fd, PolicyTarget *ret);

/* Whether the non-privileged @client may query the target @t: 0 if so, -EACCES if not. */
int policy_check_client(const PolicyTarget *t, const PolicyClient *client);

/*
 * Whether the non-privileged @client may query the process behind the open
 * /proc/PID directory @dir_fd: policy_read_target(), then
 * policy_check_client(). Returns 0 if so, -EACCES if not, -ESRCH if the
 * process is gone, -EBADMSG if its status file cannot be parsed.
 */
int policy_check_target(int dir_fd, const PolicyClient *client);

/* Namespace @type ("pid", "user") of process @pid (0: our own). -ESRCH if there is no such process. */
int policy_namespace(pid_t pid, const char *type, NsId *ret);

/*
 * The pid and user namespaces of the peer of the connected socket @fd,
 * whose SO_PEERCRED pid is @pid. The peer may have exited and its pid been
 * reused by another process before we asked: where the kernel has
 * SO_PEERPIDFD (Linux 6.5) the answer is tied to the peer itself through its
 * pidfd, and -ESRCH when it is gone. Without it, the process that holds
 * @pid now is asked, which is the peer unless it exited and its pid was
 * reused between connect() and this call.
 *
 * Errors: -ESRCH  the peer is gone, or not visible in our pid namespace
 */
int policy_peer_namespaces(int fd, pid_t pid, NsId *ret_pidns, NsId *ret_userns);

/*
 * The pid the pidfd @fd names in our namespace, from its fdinfo: -1 once
 * it exited, 0 if it is not visible here. -EOPNOTSUPP if @fd is no pidfd
 * (its fdinfo has no pid).
 */
int pidfd_get_pid(int fd, pid_t *ret);

/*
 * The pid namespace of the peer of the connected socket @fd, whose
 * SO_PEERCRED pid is @pid, and how many levels below ours it lies (from
 * its NSpid line), tied to the peer itself through SO_PEERPIDFD: without
 * it, the process holding @pid now may be another one, of another
 * namespace, whose pids we would then translate.
 *
 * Errors: -ESRCH       the peer is gone, or not visible in our pid namespace
 *         -EOPNOTSUPP  the kernel lacks SO_PEERPIDFD
 */
int policy_peer_pidns(int fd, pid_t pid, NsId *ret_ns, unsigned *ret_level);
