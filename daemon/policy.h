/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Who may ask about which process. The daemon can read every process's map;
 * a client may learn only what it could read itself:
 *
 * - root, and members of the privileged group, may query any process;
 * - any other client only processes whose real, effective and saved user
 *   IDs all equal its own and that are dumpable (the kernel makes the
 *   files in /proc/PID root-owned when they are not: setuid programs, and
 *   processes that asked not to be inspected).
 *
 * Pids are only meaningful in one pid namespace: a client in another one
 * is refused (-EXDEV), never answered about the wrong process.
 */

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Whether a client with these credentials may query any process. @privileged_gid (gid_t) -1: no group. */
bool policy_is_privileged(uid_t uid, gid_t gid, const gid_t *groups, size_t n_groups, gid_t privileged_gid);

/*
 * Whether a non-privileged client with @uid may query the process behind
 * the open /proc/PID directory @dir_fd. Returns 0 if so, -EACCES if not,
 * -ESRCH if the process is gone.
 */
int policy_check_target(int dir_fd, uid_t uid);

/* The inode of the pid namespace of process @pid (0: our own), identifying it. */
int policy_pid_namespace(pid_t pid, ino_t *ret);
