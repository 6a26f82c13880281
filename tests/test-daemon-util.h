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
#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/types.h>

#include "macro.h"

#define streq(a, b) (strcmp((a), (b)) == 0)

/* A NULL-terminated argument list, for daemon_setup() and daemon_start(). */
#define ARGS(...) ((const char *const[]) { __VA_ARGS__, NULL })

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

/* --- forked helpers ---------------------------------------------------------- */

/* nobody's uid and gid, the first user tests become. */
#define NOBODY 65534

/* Bounds client_reply() and so client_call(): not a timing assertion. */
#define REPLY_TIMEOUT_MS 10000

/*
 * Forked clients never use ck_assert() (it would report from the wrong
 * process): they check with CHILD_CHECK() and report through their exit
 * status.
 */
#define CHILD_CHECK(expr)                                                               \
        do {                                                                            \
                if (!(expr)) {                                                          \
                        fprintf(stderr, "%s:%d: check in child %d failed: %s\n",       \
                                __FILE__, __LINE__, (int) getpid(), #expr);             \
                        _exit(EXIT_FAILURE);                                            \
                }                                                                       \
        } while (0)

/* Wait for child @pid, at most @timeout_ms, and reap it: its wait status. */
int wait_child(pid_t pid, int timeout_ms);
/* wait_child(), and it must have exited with status 0. */
void assert_child_ok(pid_t pid, int timeout_ms);

/* In a forked child: close every fd above stderr except @a and @b. */
void close_all_but(int a, int b);

/*
 * A child that blocks until *ret_ctl is closed, then exits. With
 * @exec_path it execs that (with the argument "30") instead of exiting;
 * *ret_execd then reads EOF once the exec happened. @ret_execd may be NULL.
 */
pid_t spawn_waiting_child(int *ret_ctl, const char *exec_path, int *ret_execd);

/* --- a raw Varlink client ---------------------------------------------------- */

DEFINE_CLEANUP(struct json_object *, json_object_put);

typedef struct Client {
        int fd;
        char *buf;
        size_t start, size, allocated;
} Client;

Client *client_free(Client *c);
DEFINE_CLEANUP(Client *, client_free);

/*
 * Connect to @path (SO_RCVBUF @rcvbuf if > 0). Returns 0 or -errno. This
 * and the other calls returning an int or NULL never ck_assert(): forked
 * clients use them.
 */
int client_open(const char *path, int rcvbuf, Client **ret);
/* Connect, or fail the test. */
Client *client_connect_path(const char *path);
Client *client_connect(const Daemon *d);

/* Send @size bytes; send @json and its terminating NUL. 0 or -errno. */
int client_send_raw(Client *c, const void *data, size_t size);
int client_send(Client *c, const char *json);
/* client_send() with the @n_fds fds @fds (SCM_RIGHTS) on its first bytes. */
int client_send_fds(Client *c, const char *json, const int *fds, size_t n_fds);

/*
 * Read one NUL-terminated message into *ret (owned by the caller). Returns
 * 1; 0 on a clean EOF; -EBADMSG on EOF inside a message; -ETIMEDOUT when
 * nothing complete arrived within @timeout_ms; or -errno (-ECONNRESET).
 */
int client_read(Client *c, int timeout_ms, char **ret);

/* Send @json and parse the reply, a JSON object; NULL on any failure. */
struct json_object *client_call_raw(Client *c, const char *json, int timeout_ms);
/* Read and parse one reply, which must arrive within REPLY_TIMEOUT_MS. */
struct json_object *client_reply(Client *c);
/* Send the formatted call and return client_reply(). */
__attribute__((__format__(__printf__, 2, 3)))
struct json_object *client_call(Client *c, const char *format, ...);
/* The same, with fds as client_send_fds(). */
__attribute__((__format__(__printf__, 4, 5)))
struct json_object *client_call_fds(Client *c, const int *fds, size_t n_fds, const char *format, ...);

/* --- JSON ------------------------------------------------------------------ */

/* Member @key of @o, which must be there and of @type. */
struct json_object *json_get(struct json_object *o, const char *key, enum json_type type);
bool json_has(struct json_object *o, const char *key);
const char *json_get_string(struct json_object *o, const char *key);
bool json_get_bool(struct json_object *o, const char *key);
/* A non-negative integer. */
uint64_t json_get_u64(struct json_object *o, const char *key);
struct json_object *json_get_array(struct json_object *o, const char *key);

/* The parameters of a successful reply. */
struct json_object *reply_parameters(struct json_object *reply);
/* The parameters of an error reply, which must be @error, with exactly its documented parameters. */
struct json_object *reply_error(struct json_object *reply, const char *error);
/* An error @error about the parameter @parameter. */
void assert_error_parameter(struct json_object *reply, const char *error, const char *parameter);
/* The error name of @reply, or NULL. For forked clients. */
const char *error_name(struct json_object *reply);

/* A fresh connection to @d is answered GetInfo. */
void assert_serves(const Daemon *d);
/* GetStatus, which must succeed; its fields and those of its objects ("proc_cache", ...). */
struct json_object *get_status(Client *c);
uint64_t status_field(struct json_object *reply, const char *key);
uint64_t status_cache(struct json_object *reply, const char *cache, const char *key);
/* How much a counter of object @cache moved from GetStatus reply @before to @after. */
uint64_t cache_delta(struct json_object *before, struct json_object *after, const char *cache,
                     const char *key);

/* A Normalize call for one address, and for @n of them with "…,@extra" (may be NULL) in its parameters. */
char *normalize_one(pid_t pid, uint64_t addr);
char *normalize_call(pid_t pid, const uint64_t *addrs, size_t n, const char *extra);
/* Whether @r is PermissionDenied about @pid. For forked clients. */
bool is_denied_for(struct json_object *r, pid_t pid);
/* The path of the single module of a one-address Normalize reply, or NULL. */
const char *single_module_path(struct json_object *r);

/* --- clients of other users ------------------------------------------------- */

/*
 * In a forked child: become nobody, or @uid (with that gid), with no
 * supplementary groups; keep dying with the parent, and stay dumpable like
 * any user process.
 */
void drop_to_nobody(void);
void drop_to(uid_t uid);
/* The same, as @uid and @gid with the supplementary groups @groups. */
void drop_to_groups(uid_t uid, gid_t gid, const gid_t *groups, size_t n_groups);

/* In a nobody client: a child of its own that blocks until *ret_ctl closes, optionally not dumpable. */
pid_t nobody_target(bool dumpable, int *ret_ctl);
