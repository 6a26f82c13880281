/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The built vmaqd ($VMAQD) for integration tests: each Daemon runs in a
 * fresh directory below the run directory, on its own socket, with
 * NOTIFY_SOCKET pointing at a datagram socket there and its output in a
 * log file. Every wait is bounded by DAEMON_TIMEOUT_MS, and every child
 * dies with its parent (PR_SET_PDEATHSIG). Failures abort the test with
 * ck_assert() after showing the daemon's log.
 */

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>

/* Bounds the readiness and exit waits; not a timing assertion. */
#define DAEMON_TIMEOUT_MS 20000

typedef struct Daemon {
        pid_t pid;
        int pidfd;
        int notify_fd;
        bool exited;
        int status;                     /* wait status, once exited */
        bool activated;                 /* started by systemd-socket-activate: it binds no socket */
        uint64_t watchdog_usec;         /* set WATCHDOG_USEC/WATCHDOG_PID for it; 0: not */
        rlim_t nofile_soft, nofile_hard; /* start it with this RLIMIT_NOFILE; 0: inherit */
        char last_notify[4096];         /* the notification daemon_wait_notify() found */
        char dir[128];
        char socket_path[PATH_MAX];
        char notify_path[PATH_MAX];
        char log_path[PATH_MAX];
} Daemon;

/*
 * Once, in main(): the vmaqd to run, the directory to create daemons in
 * (it must outlive them), and flags every daemon gets (NULL-terminated,
 * may be NULL). The strings are not copied.
 */
void daemon_setup(const char *vmaqd_path, const char *run_dir, const char *const *default_args);

/* A daemon slot with its directory and notify socket, not started yet. */
Daemon *daemon_new(void);

/* Run @argv (NULL-terminated) as @d's process: NOTIFY_SOCKET set, output to its log. No wait. */
void daemon_exec(Daemon *d, const char *const *argv);

/* Run vmaqd --socket <socket_path> --log-level debug, the default flags, then @extra (may be NULL). */
void daemon_spawn_in(Daemon *d, const char *const *extra);
Daemon *daemon_spawn(const char *const *extra);

/*
 * Wait for a notification carrying the line @want; it is kept in
 * last_notify. Returns 0; -ECHILD if the daemon exited without sending it;
 * -ETIMEDOUT.
 */
int daemon_wait_notify(Daemon *d, const char *want, int timeout_ms);

/* Wait for the daemon to exit and reap it: 0, or -ETIMEDOUT. */
int daemon_wait_exit(Daemon *d, int timeout_ms);

/* Wait for READY=1; then @socket_path must accept a connection at once. */
void daemon_wait_ready(Daemon *d, const char *socket_path);

/* daemon_spawn(), then daemon_wait_ready() on its socket. */
Daemon *daemon_start(const char *const *extra);

/*
 * Send @sig: the daemon must send STOPPING=1, exit with status 0 and (unless
 * activated) remove its socket. Then daemon_release().
 */
void daemon_stop_with(Daemon *d, int sig);
void daemon_stop(Daemon *d);                    /* with SIGTERM */

/* Forget a daemon that exited, removing its directory. */
void daemon_release(Daemon *d);

/* Show a daemon log on stderr, once: it is renamed afterwards. */
void daemon_dump_log(const char *log_path);

/*
 * After the run: show the logs of the daemons failed tests left behind,
 * remove the directories listed in <run_dir>/test-child-dirs, then the
 * run directory.
 */
void daemon_cleanup_run_dir(void);

/* Helpers for the tests around the daemon. */

/* Fork, and die with the parent. In the child, returns 0; in the parent, the child's pid. */
pid_t fork_child(void);

/*
 * A child with @n one-page mappings more that cannot merge (their
 * permissions alternate), for maps too large for one reply. It blocks until
 * *ret_ctl is closed, then exits 0.
 */
pid_t spawn_many_mappings(size_t n, int *ret_ctl);

/* Connect to the stream socket @path, with SO_RCVBUF @rcvbuf if > 0. Returns 0 or -errno. */
int unix_connect(const char *path, int rcvbuf, int *ret_fd);

/* "exit status N", "killed by signal N" or the raw wait status. */
const char *describe_status(int status, char buf[static 64]);

/* CLOCK_MONOTONIC in ms, and what is left of it until @deadline (>= 0). */
int64_t now_ms(void);
int remaining_ms(int64_t deadline);

/* Remove @path and everything below it, ignoring errors. */
void rm_rf(const char *path);
