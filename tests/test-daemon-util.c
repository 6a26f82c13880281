/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <assert.h>
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "macro.h"
#include "test-daemon-util.h"

#define DAEMONS_MAX 4
#define ARGS_MAX 32

#define streq(a, b) (strcmp((a), (b)) == 0)

static const char *vmaqd_path;
static const char *run_dir;
static const char *const *default_args;
static Daemon daemons[DAEMONS_MAX];

void daemon_setup(const char *vmaqd, const char *dir, const char *const *args) {
        vmaqd_path = vmaqd;
        run_dir = dir;
        default_args = args;
}

/* --- helpers ----------------------------------------------------------------- */

int64_t now_ms(void) {
        struct timespec ts;

        assert(clock_gettime(CLOCK_MONOTONIC, &ts) == 0);
        return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int remaining_ms(int64_t deadline) {
        int64_t left = deadline - now_ms();

        return left < 0 ? 0 : (int) left;
}

static int rm_rf_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        (void) remove(path);
        return 0;
}

void rm_rf(const char *path) {
        (void) nftw(path, rm_rf_cb, 16, FTW_DEPTH|FTW_PHYS);
}

pid_t fork_child(void) {
        pid_t parent = getpid(), pid;

        fflush(NULL);
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
                        _exit(EXIT_FAILURE);
        }
        return pid;
}

pid_t spawn_many_mappings(size_t n, int *ret_ctl) {
        int ctl[2], ready[2];
        pid_t pid;
        char b;

        ck_assert_int_eq(pipe2(ctl, O_CLOEXEC), 0);
        ck_assert_int_eq(pipe2(ready, O_CLOEXEC), 0);
        pid = fork_child();
        if (pid == 0) {
                size_t ps = (size_t) sysconf(_SC_PAGESIZE);
                uint8_t *base = mmap(NULL, 2 * n * ps, PROT_NONE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0);

                close(ctl[1]);
                close(ready[0]);
                if (base == MAP_FAILED)
                        _exit(EXIT_FAILURE);
                for (size_t i = 0; i < n; i++)
                        if (mprotect(base + 2 * i * ps, ps, i % 2 ? PROT_READ : PROT_READ|PROT_WRITE) < 0)
                                _exit(EXIT_FAILURE);
                close(ready[1]);
                while (read(ctl[0], &b, 1) > 0)
                        ;
                _exit(EXIT_SUCCESS);
        }
        close(ctl[0]);
        close(ready[1]);
        /* EOF once it closed its end: it is set up. */
        ck_assert_int_eq(read(ready[0], &b, 1), 0);
        close(ready[0]);
        *ret_ctl = ctl[1];
        return pid;
}

int unix_connect(const char *path, int rcvbuf, int *ret_fd) {
        _cleanup_close_ int fd = -EBADF;
        struct sockaddr_un sa = { .sun_family = AF_UNIX };

        if (strlen(path) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, path);

        fd = socket(AF_UNIX, SOCK_STREAM|SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        /* Before connect(), so that it bounds the connection from the start. */
        if (rcvbuf > 0 && setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)) < 0)
                return -errno;
        if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0)
                return -errno;
        *ret_fd = TAKE_FD(fd);
        return 0;
}

const char *describe_status(int status, char buf[static 64]) {
        if (WIFEXITED(status))
                snprintf(buf, 64, "exit status %d", WEXITSTATUS(status));
        else if (WIFSIGNALED(status))
                snprintf(buf, 64, "killed by signal %d", WTERMSIG(status));
        else
                snprintf(buf, 64, "wait status 0x%x", (unsigned) status);
        return buf;
}

static bool has_line(const char *text, const char *line) {
        size_t len = strlen(line);

        for (const char *p = text; p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
                if (strncmp(p, line, len) == 0 && (p[len] == '\n' || p[len] == '\0'))
                        return true;
        return false;
}

/* --- the daemon -------------------------------------------------------------- */

void daemon_dump_log(const char *log_path) {
        char line[4096], shown[PATH_MAX];
        FILE *f;

        f = fopen(log_path, "re");
        if (!f)
                return;
        fprintf(stderr, "--- %s ---\n", log_path);
        while (fgets(line, sizeof(line), f))
                fputs(line, stderr);
        fprintf(stderr, "--- end of %s ---\n", log_path);
        fclose(f);
        snprintf(shown, sizeof(shown), "%s.shown", log_path);
        (void) rename(log_path, shown);
}

Daemon *daemon_new(void) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        char dir[sizeof(daemons[0].dir)];
        Daemon *d = NULL;

        ck_assert_ptr_nonnull(vmaqd_path);
        ck_assert_ptr_nonnull(run_dir);
        for (size_t i = 0; i < DAEMONS_MAX && !d; i++)
                if (daemons[i].dir[0] == '\0')
                        d = &daemons[i];
        ck_assert_ptr_nonnull(d);

        snprintf(dir, sizeof(dir), "%s/vmaqd-XXXXXX", run_dir);
        ck_assert_ptr_nonnull(mkdtemp(dir));
        /* Searchable by all: clients that drop privileges must reach the socket. */
        ck_assert_int_eq(chmod(dir, 0755), 0);

        *d = (Daemon) { .pidfd = -EBADF, .notify_fd = -EBADF };
        strcpy(d->dir, dir);
        snprintf(d->socket_path, sizeof(d->socket_path), "%s/vmaqd.sock", dir);
        snprintf(d->notify_path, sizeof(d->notify_path), "%s/notify.sock", dir);
        snprintf(d->log_path, sizeof(d->log_path), "%s/vmaqd.log", dir);
        ck_assert_uint_lt(strlen(d->socket_path), sizeof(sa.sun_path));

        d->notify_fd = socket(AF_UNIX, SOCK_DGRAM|SOCK_CLOEXEC, 0);
        ck_assert_int_ge(d->notify_fd, 0);
        strcpy(sa.sun_path, d->notify_path);
        ck_assert_int_eq(bind(d->notify_fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
        return d;
}

void daemon_release(Daemon *d) {
        ck_assert(d->exited);
        safe_close(d->pidfd);
        safe_close(d->notify_fd);
        rm_rf(d->dir);
        *d = (Daemon) { .pidfd = -EBADF, .notify_fd = -EBADF };
}

void daemon_exec(Daemon *d, const char *const *argv) {
        pid_t pid = fork_child();

        if (pid == 0) {
                char stream[64];
                struct stat st;
                int fd;

                fd = open(d->log_path, O_WRONLY|O_CREAT|O_APPEND|O_CLOEXEC, 0644);
                if (fd < 0 || dup2(fd, STDOUT_FILENO) < 0 || dup2(fd, STDERR_FILENO) < 0)
                        _exit(127);
                fd = open("/dev/null", O_RDONLY|O_CLOEXEC);
                if (fd < 0 || dup2(fd, STDIN_FILENO) < 0)
                        _exit(127);
                /* The log file stands in for the journal: lines keep their "<N>" levels. */
                if (fstat(STDERR_FILENO, &st) < 0)
                        _exit(127);
                snprintf(stream, sizeof(stream), "%llu:%llu",
                         (unsigned long long) st.st_dev, (unsigned long long) st.st_ino);
                if (setenv("JOURNAL_STREAM", stream, 1) < 0)
                        _exit(127);
                if (setenv("NOTIFY_SOCKET", d->notify_path, 1) < 0)
                        _exit(127);
                (void) unsetenv("LISTEN_PID");
                (void) unsetenv("LISTEN_FDS");
                (void) unsetenv("LISTEN_FDNAMES");
                (void) unsetenv("WATCHDOG_PID");
                (void) unsetenv("WATCHDOG_USEC");
                (void) unsetenv("VMAQ_SOCKET");
                if (d->watchdog_usec > 0) {
                        char pid_s[32], usec_s[32];

                        /* We exec in place: this pid is the daemon's. */
                        snprintf(pid_s, sizeof(pid_s), "%d", (int) getpid());
                        snprintf(usec_s, sizeof(usec_s), "%" PRIu64, d->watchdog_usec);
                        if (setenv("WATCHDOG_PID", pid_s, 1) < 0 || setenv("WATCHDOG_USEC", usec_s, 1) < 0)
                                _exit(127);
                }
                if (d->nofile_hard > 0 &&
                    setrlimit(RLIMIT_NOFILE, &(struct rlimit) { d->nofile_soft, d->nofile_hard }) < 0)
                        _exit(127);
                execv(argv[0], (char *const *) argv);
                fprintf(stderr, "Failed to execute '%s': %m\n", argv[0]);
                _exit(127);
        }

        d->pid = pid;
        d->pidfd = pidfd_open(pid, 0);
        ck_assert_int_ge(d->pidfd, 0);
}

void daemon_spawn_in(Daemon *d, const char *const *extra) {
        const char *argv[ARGS_MAX];
        size_t n = 0;

        argv[n++] = vmaqd_path;
        argv[n++] = "--socket";
        argv[n++] = d->socket_path;
        argv[n++] = "--log-level";
        argv[n++] = "debug";
        for (size_t i = 0; default_args && default_args[i]; i++) {
                ck_assert_uint_lt(n, ELEMENTSOF(argv) - 1);
                argv[n++] = default_args[i];
        }
        for (size_t i = 0; extra && extra[i]; i++) {
                ck_assert_uint_lt(n, ELEMENTSOF(argv) - 1);
                argv[n++] = extra[i];
        }
        argv[n] = NULL;

        daemon_exec(d, argv);
}

Daemon *daemon_spawn(const char *const *extra) {
        Daemon *d = daemon_new();

        daemon_spawn_in(d, extra);
        return d;
}

int daemon_wait_notify(Daemon *d, const char *want, int timeout_ms) {
        int64_t deadline = now_ms() + timeout_ms;

        for (;;) {
                struct pollfd p[2] = {
                        { .fd = d->notify_fd, .events = POLLIN },
                        { .fd = d->pidfd, .events = POLLIN },
                };
                char buf[4096];
                ssize_t n;
                int r;

                n = recv(d->notify_fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
                if (n >= 0) {
                        buf[n] = '\0';
                        if (has_line(buf, want)) {
                                memcpy(d->last_notify, buf, (size_t) n + 1);
                                return 0;
                        }
                        continue;
                }
                if (errno != EAGAIN && errno != EINTR)
                        return -errno;

                r = poll(p, ELEMENTSOF(p), remaining_ms(deadline));
                if (r < 0 && errno == EINTR)
                        continue;
                if (r < 0)
                        return -errno;
                if (r == 0)
                        return -ETIMEDOUT;
                if (!(p[0].revents & POLLIN) && (p[1].revents & POLLIN))
                        return -ECHILD;
        }
}

int daemon_wait_exit(Daemon *d, int timeout_ms) {
        struct pollfd p = { .fd = d->pidfd, .events = POLLIN };
        int r;

        if (d->exited)
                return 0;
        do
                r = poll(&p, 1, timeout_ms);
        while (r < 0 && errno == EINTR);
        if (r <= 0)
                return r < 0 ? -errno : -ETIMEDOUT;
        ck_assert_int_eq(waitpid(d->pid, &d->status, 0), d->pid);
        d->exited = true;
        return 0;
}

void daemon_wait_ready(Daemon *d, const char *socket_path) {
        _cleanup_close_ int fd = -EBADF;
        char buf[64];
        int r;

        r = daemon_wait_notify(d, "READY=1", DAEMON_TIMEOUT_MS);
        if (r == -ECHILD)
                (void) daemon_wait_exit(d, DAEMON_TIMEOUT_MS);
        if (r < 0)
                daemon_dump_log(d->log_path);
        ck_assert_msg(r == 0, "vmaqd sent no READY=1: %s%s%s", strerror(-r),
                      d->exited ? ", " : "", d->exited ? describe_status(d->status, buf) : "");

        r = unix_connect(socket_path, 0, &fd);
        ck_assert_msg(r == 0, "connect() right after READY=1 failed: %s", strerror(-r));
}

Daemon *daemon_start(const char *const *extra) {
        Daemon *d = daemon_spawn(extra);

        daemon_wait_ready(d, d->socket_path);
        return d;
}

void daemon_stop_with(Daemon *d, int sig) {
        char buf[64];
        int r;

        ck_assert_int_eq(kill(d->pid, sig), 0);
        r = daemon_wait_notify(d, "STOPPING=1", DAEMON_TIMEOUT_MS);
        if (r < 0)
                daemon_dump_log(d->log_path);
        ck_assert_msg(r == 0, "vmaqd sent no STOPPING=1: %s", strerror(-r));

        r = daemon_wait_exit(d, DAEMON_TIMEOUT_MS);
        if (r < 0 || !WIFEXITED(d->status) || WEXITSTATUS(d->status) != 0)
                daemon_dump_log(d->log_path);
        ck_assert_msg(r == 0, "vmaqd did not exit after signal %d", sig);
        ck_assert_msg(WIFEXITED(d->status) && WEXITSTATUS(d->status) == 0, "vmaqd stopped with %s",
                      describe_status(d->status, buf));

        if (!d->activated)
                ck_assert_msg(access(d->socket_path, F_OK) < 0 && errno == ENOENT,
                              "vmaqd left its socket '%s' behind", d->socket_path);
        daemon_release(d);
}

void daemon_stop(Daemon *d) {
        daemon_stop_with(d, SIGTERM);
}

void daemon_cleanup_run_dir(void) {
        char path[PATH_MAX], line[PATH_MAX];
        struct dirent *de;
        DIR *dir;
        FILE *f;

        dir = opendir(run_dir);
        if (dir) {
                while ((de = readdir(dir))) {
                        if (strncmp(de->d_name, "vmaqd-", 6) != 0)
                                continue;
                        snprintf(path, sizeof(path), "%s/%s/vmaqd.log", run_dir, de->d_name);
                        daemon_dump_log(path);
                }
                closedir(dir);
        }

        snprintf(path, sizeof(path), "%s/test-child-dirs", run_dir);
        f = fopen(path, "re");
        if (f) {
                while (fgets(line, sizeof(line), f)) {
                        line[strcspn(line, "\n")] = '\0';
                        /* Only what test_child_spawn() creates. */
                        if (strncmp(line, "/tmp/vmaq-test-", 15) == 0 && !strchr(line, '.'))
                                rm_rf(line);
                }
                fclose(f);
        }

        rm_rf(run_dir);
}

/* --- forked helpers ---------------------------------------------------------- */

/* Wait (bounded) for child @pid and return its wait status. */
int wait_child(pid_t pid, int timeout_ms) {
        _cleanup_close_ int fd = pidfd_open(pid, 0);
        struct pollfd p = { .events = POLLIN };
        int r, status;

        ck_assert_int_ge(fd, 0);
        p.fd = fd;
        do
                r = poll(&p, 1, timeout_ms);
        while (r < 0 && errno == EINTR);
        ck_assert_msg(r == 1, "child %d did not exit in time", (int) pid);
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        return status;
}

void assert_child_ok(pid_t pid, int timeout_ms) {
        int status = wait_child(pid, timeout_ms);
        char buf[64];

        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child %d failed: %s", (int) pid,
                      describe_status(status, buf));
}

/* In a forked child: close every fd above stderr except @a and @b. */
void close_all_but(int a, int b) {
        int lo = MIN(a, b), hi = MAX(a, b);

        if (lo > 3)
                (void) close_range(3, (unsigned) lo - 1, 0);
        if (hi > lo + 1)
                (void) close_range((unsigned) lo + 1, (unsigned) hi - 1, 0);
        (void) close_range((unsigned) hi + 1, ~0U, 0);
}

/*
 * A child that blocks until *ret_ctl is closed, then exits. With
 * @exec_path it execs that instead of exiting; *ret_execd then reads EOF
 * once the exec happened (a close-on-exec pipe).
 */
pid_t spawn_waiting_child(int *ret_ctl, const char *exec_path, int *ret_execd) {
        int ctl[2], execd[2];
        pid_t pid;

        ck_assert_int_eq(pipe2(ctl, O_CLOEXEC), 0);
        ck_assert_int_eq(pipe2(execd, O_CLOEXEC), 0);
        pid = fork_child();
        if (pid == 0) {
                char b;

                /* Only our ends: a sibling's inherited pipe end would keep the sibling waiting. */
                close_all_but(ctl[0], execd[1]);
                while (read(ctl[0], &b, 1) > 0)
                        ;
                if (exec_path)
                        execl(exec_path, exec_path, "30", (char *) NULL);
                _exit(exec_path ? 127 : 0);
        }
        close(ctl[0]);
        close(execd[1]);
        *ret_ctl = ctl[1];
        if (ret_execd)
                *ret_execd = execd[0];
        else
                close(execd[0]);
        return pid;
}

/* --- a raw Varlink client ---------------------------------------------------- */

Client *client_free(Client *c) {
        if (!c)
                return NULL;
        safe_close(c->fd);
        free(c->buf);
        free(c);
        return NULL;
}

/* No ck_assert(): usable in forked clients. */
int client_open(const char *path, int rcvbuf, Client **ret) {
        _cleanup_close_ int fd = -EBADF;
        Client *c;
        int r;

        r = unix_connect(path, rcvbuf, &fd);
        if (r < 0)
                return r;
        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->fd = TAKE_FD(fd);
        *ret = c;
        return 0;
}

Client *client_connect_path(const char *path) {
        Client *c = NULL;
        int r;

        r = client_open(path, 0, &c);
        ck_assert_msg(r == 0, "connect('%s'): %s", path, strerror(-r));
        return c;
}

Client *client_connect(const Daemon *d) {
        return client_connect_path(d->socket_path);
}

int client_send_raw(Client *c, const void *data, size_t size) {
        const char *p = data;

        while (size > 0) {
                ssize_t n = send(c->fd, p, size, MSG_NOSIGNAL);

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                p += n;
                size -= (size_t) n;
        }
        return 0;
}

/* Send @json and its terminating NUL. */
int client_send(Client *c, const char *json) {
        return client_send_raw(c, json, strlen(json) + 1);
}

int client_send_fds(Client *c, const char *json, const int *fds, size_t n_fds) {
        size_t size = strlen(json) + 1;
        union {
                struct cmsghdr header;
                uint8_t buf[CMSG_SPACE(sizeof(int) * 16)];
        } control = {};
        struct iovec iov = { .iov_base = (char *) json, .iov_len = size };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
        ssize_t n;

        if (n_fds > 16)
                return -EINVAL;
        if (n_fds > 0) {
                struct cmsghdr *cm;

                mh.msg_control = &control;
                mh.msg_controllen = CMSG_SPACE(sizeof(int) * n_fds);
                cm = CMSG_FIRSTHDR(&mh);
                cm->cmsg_level = SOL_SOCKET;
                cm->cmsg_type = SCM_RIGHTS;
                cm->cmsg_len = CMSG_LEN(sizeof(int) * n_fds);
                memcpy(CMSG_DATA(cm), fds, sizeof(int) * n_fds);
        }
        do
                n = sendmsg(c->fd, &mh, MSG_NOSIGNAL);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return -errno;
        return client_send_raw(c, json + n, size - (size_t) n);
}

/*
 * Read one NUL-terminated message into *ret (owned by the caller). Returns
 * 1; 0 on a clean EOF; -EBADMSG on EOF inside a message; -ETIMEDOUT when
 * nothing complete arrived within @timeout_ms; or -errno (-ECONNRESET).
 */
int client_read(Client *c, int timeout_ms, char **ret) {
        int64_t deadline = now_ms() + timeout_ms;

        for (;;) {
                char *nul = c->size > c->start ? memchr(c->buf + c->start, '\0', c->size - c->start) : NULL;
                struct pollfd p = { .fd = c->fd, .events = POLLIN };
                ssize_t n;
                int r;

                if (nul) {
                        char *m = strdup(c->buf + c->start);

                        if (!m)
                                return -ENOMEM;
                        c->start = (size_t) (nul - c->buf) + 1;
                        *ret = m;
                        return 1;
                }

                if (c->start > 0) {
                        memmove(c->buf, c->buf + c->start, c->size - c->start);
                        c->size -= c->start;
                        c->start = 0;
                }
                if (c->allocated - c->size < 65536) {
                        size_t want = c->size + 4 * 65536;
                        char *b = realloc(c->buf, want);

                        if (!b)
                                return -ENOMEM;
                        c->buf = b;
                        c->allocated = want;
                }

                r = poll(&p, 1, remaining_ms(deadline));
                if (r < 0 && errno == EINTR)
                        continue;
                if (r < 0)
                        return -errno;
                if (r == 0)
                        return -ETIMEDOUT;

                n = recv(c->fd, c->buf + c->size, c->allocated - c->size, MSG_DONTWAIT);
                if (n < 0) {
                        if (errno == EAGAIN || errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        return c->size > 0 ? -EBADMSG : 0;
                c->size += (size_t) n;
        }
}

/* Send @json and parse the reply; NULL on any failure. No ck_assert(): usable in forked clients. */
struct json_object *client_call_raw(Client *c, const char *json, int timeout_ms) {
        _cleanup_free_ char *m = NULL;
        struct json_object *o;

        if (client_send(c, json) < 0 || client_read(c, timeout_ms, &m) != 1)
                return NULL;
        o = json_tokener_parse(m);
        if (o && !json_object_is_type(o, json_type_object))
                o = (json_object_put(o), NULL);
        return o;
}

/* Read and parse one reply; it must arrive. */
struct json_object *client_reply(Client *c) {
        _cleanup_free_ char *m = NULL;
        struct json_object *o;
        int r;

        r = client_read(c, REPLY_TIMEOUT_MS, &m);
        ck_assert_msg(r == 1, "no reply: %s", r == 0 ? "connection closed" : strerror(-r));
        o = json_tokener_parse(m);
        ck_assert_msg(o && json_object_is_type(o, json_type_object), "reply is no JSON object: '%s'", m);
        return o;
}

__attribute__((__format__(__printf__, 2, 3)))
struct json_object *client_call(Client *c, const char *format, ...) {
        _cleanup_free_ char *json = NULL;
        va_list ap;
        int r;

        va_start(ap, format);
        r = vasprintf(&json, format, ap);
        va_end(ap);
        ck_assert_int_ge(r, 0);
        r = client_send(c, json);
        ck_assert_msg(r == 0, "send: %s", strerror(-r));
        return client_reply(c);
}

struct json_object *client_call_fds(Client *c, const int *fds, size_t n_fds, const char *format, ...) {
        _cleanup_free_ char *json = NULL;
        va_list ap;
        int r;

        va_start(ap, format);
        r = vasprintf(&json, format, ap);
        va_end(ap);
        ck_assert_int_ge(r, 0);
        r = client_send_fds(c, json, fds, n_fds);
        ck_assert_msg(r == 0, "send: %s", strerror(-r));
        return client_reply(c);
}

/* --- JSON ------------------------------------------------------------------ */

struct json_object *json_get(struct json_object *o, const char *key, enum json_type type) {
        struct json_object *v = NULL;

        ck_assert_msg(json_object_object_get_ex(o, key, &v), "'%s' missing in %s", key,
                      json_object_to_json_string(o));
        ck_assert_msg(json_object_is_type(v, type), "'%s' is %s, not %s, in %s", key,
                      json_type_to_name(json_object_get_type(v)), json_type_to_name(type),
                      json_object_to_json_string(o));
        return v;
}

bool json_has(struct json_object *o, const char *key) {
        return json_object_object_get_ex(o, key, NULL);
}

const char *json_get_string(struct json_object *o, const char *key) {
        return json_object_get_string(json_get(o, key, json_type_string));
}

bool json_get_bool(struct json_object *o, const char *key) {
        return json_object_get_boolean(json_get(o, key, json_type_boolean));
}

uint64_t json_get_u64(struct json_object *o, const char *key) {
        struct json_object *v = json_get(o, key, json_type_int);

        /* json-c clamps: a negative value reads as INT64 < 0, a large one as UINT64 > INT64_MAX. */
        ck_assert_msg(json_object_get_int64(v) >= 0, "'%s' is negative in %s", key,
                      json_object_to_json_string(o));
        return json_object_get_uint64(v);
}

struct json_object *json_get_array(struct json_object *o, const char *key) {
        return json_get(o, key, json_type_array);
}

/* The parameters of a successful reply. */
struct json_object *reply_parameters(struct json_object *reply) {
        ck_assert_msg(!json_has(reply, "error"), "unexpected error reply %s",
                      json_object_to_json_string(reply));
        ck_assert_msg(!json_has(reply, "continues"), "unexpected 'continues' in %s",
                      json_object_to_json_string(reply));
        return json_get(reply, "parameters", json_type_object);
}

/* docs/PROTOCOL.md: "Every error reply has exactly the parameters listed here." '?': optional. */
static const struct {
        const char *error;
        const char *parameters[3];
} error_parameters[] = {
        { "org.varlink.service.InterfaceNotFound",    { "interface" } },
        { "org.varlink.service.MethodNotFound",       { "method" } },
        { "org.varlink.service.MethodNotImplemented", { "method" } },
        { "org.varlink.service.InvalidParameter",     { "parameter" } },
        { "io.vmaq.InvalidMessage",                   { "reason" } },
        { "io.vmaq.RequestTooLarge",                  { "limit", "?parameter" } },
        { "io.vmaq.ReplyTooLarge",                    { "limit" } },
        { "io.vmaq.NoSuchProcess",                    { "pid" } },
        { "io.vmaq.NoAddressSpace",                   { "pid" } },
        { "io.vmaq.PermissionDenied",                 { "pid" } },
        { "io.vmaq.ProcessChanged",                   { "pid", "start_time" } },
        { "io.vmaq.ForeignPidNamespace",              {} },
        { "io.vmaq.InternalError",                    { "errno" } },
        { "io.vmaq.TooManyConnections",               { "reason", "limit" } },
        { "io.vmaq.MemoryLimitReached",               { "limit" } },
        { "io.vmaq.TimedOut",                         { "limit" } },
        { "io.vmaq.BadFileDescriptor",                { "reason", "?parameter" } },
};

/* The parameters of an error reply, which must be @error, with exactly its documented parameters. */
struct json_object *reply_error(struct json_object *reply, const char *error) {
        struct json_object *p;
        size_t row = SIZE_MAX;

        ck_assert_str_eq(json_get_string(reply, "error"), error);
        p = json_get(reply, "parameters", json_type_object);

        for (size_t i = 0; i < ELEMENTSOF(error_parameters); i++)
                if (streq(error_parameters[i].error, error))
                        row = i;
        ck_assert_uint_ne(row, SIZE_MAX);

        json_object_object_foreach(p, key, value) {
                bool known = false;

                for (size_t k = 0; k < 3 && error_parameters[row].parameters[k]; k++) {
                        const char *name = error_parameters[row].parameters[k];

                        known = known || streq(name[0] == '?' ? name + 1 : name, key);
                }
                ck_assert_msg(known, "%s carries '%s': %s", error, key, json_object_to_json_string(reply));
                (void) value;
        }
        for (size_t k = 0; k < 3 && error_parameters[row].parameters[k]; k++)
                if (error_parameters[row].parameters[k][0] != '?')
                        ck_assert_msg(json_has(p, error_parameters[row].parameters[k]), "%s lacks '%s': %s",
                                      error, error_parameters[row].parameters[k],
                                      json_object_to_json_string(reply));
        return p;
}

void assert_error_parameter(struct json_object *reply, const char *error, const char *parameter) {
        struct json_object *p = reply_error(reply, error);

        ck_assert_str_eq(json_get_string(p, "parameter"), parameter);
}

/* For forked clients: the error name of @reply, or NULL. */
const char *error_name(struct json_object *reply) {
        struct json_object *e = NULL;

        if (!json_object_object_get_ex(reply, "error", &e) || !json_object_is_type(e, json_type_string))
                return NULL;
        return json_object_get_string(e);
}

/* A fresh connection to @d still works. */
void assert_serves(const Daemon *d) {
        _cleanup_(client_freep) Client *c = client_connect(d);
        _cleanup_(json_object_putp) struct json_object *reply = NULL;

        reply = client_call(c, "{\"method\":\"org.varlink.service.GetInfo\"}");
        ck_assert_str_eq(json_get_string(reply_parameters(reply), "version"), PACKAGE_VERSION);
}

struct json_object *get_status(Client *c) {
        struct json_object *reply = client_call(c, "{\"method\":\"io.vmaq.GetStatus\"}");

        (void) reply_parameters(reply);
        return reply;
}

uint64_t status_field(struct json_object *reply, const char *key) {
        return json_get_u64(reply_parameters(reply), key);
}

/* A counter of one of the caches: "proc_cache" or "build_id_cache". */
uint64_t status_cache(struct json_object *reply, const char *cache, const char *key) {
        return json_get_u64(json_get(reply_parameters(reply), cache, json_type_object), key);
}

/* How much a cache counter moved from GetStatus reply @before to @after. */
uint64_t cache_delta(struct json_object *before, struct json_object *after, const char *cache,
                            const char *key) {
        return status_cache(after, cache, key) - status_cache(before, cache, key);
}

/* A Normalize call for one address. No ck_assert(): usable in forked clients; aborts on ENOMEM. */
char *normalize_one(pid_t pid, uint64_t addr) {
        char *m = NULL;

        if (asprintf(&m, "{\"method\":\"io.vmaq.Normalize\","
                         "\"parameters\":{\"pid\":%d,\"addresses\":[%" PRIu64 "]}}", (int) pid, addr) < 0)
                abort();
        return m;
}

bool is_denied_for(struct json_object *r, pid_t pid) {
        struct json_object *p, *v;

        return r && error_name(r) && streq(error_name(r), "io.vmaq.PermissionDenied") &&
               json_object_object_get_ex(r, "parameters", &p) && json_object_object_get_ex(p, "pid", &v) &&
               json_object_get_int64(v) == pid;
}

/* The path of the single module of a one-address Normalize reply, or NULL. */
const char *single_module_path(struct json_object *r) {
        struct json_object *p, *modules, *results, *v;

        if (!r || error_name(r) || !json_object_object_get_ex(r, "parameters", &p) ||
            !json_object_object_get_ex(p, "modules", &modules) ||
            !json_object_object_get_ex(p, "results", &results) ||
            json_object_array_length(results) != 1 || json_object_array_length(modules) != 1 ||
            !json_object_object_get_ex(json_object_array_get_idx(results, 0), "module", &v) ||
            json_object_get_int64(v) != 0 ||
            !json_object_object_get_ex(json_object_array_get_idx(modules, 0), "path", &v))
                return NULL;
        return json_object_get_string(v);
}

/* {"method":"io.vmaq.Normalize","parameters":{"pid":…,"addresses":[…]…@extra}} */
char *normalize_call(pid_t pid, const uint64_t *addrs, size_t n, const char *extra) {
        char *buf = NULL;
        size_t size = 0;
        FILE *f;

        f = open_memstream(&buf, &size);
        ck_assert_ptr_nonnull(f);
        fprintf(f, "{\"method\":\"io.vmaq.Normalize\",\"parameters\":{\"pid\":%d,\"addresses\":[",
                (int) pid);
        for (size_t i = 0; i < n; i++)
                fprintf(f, "%s%" PRIu64, i > 0 ? "," : "", addrs[i]);
        fprintf(f, "]%s%s}}", extra ? "," : "", extra ?: "");
        ck_assert_int_eq(fclose(f), 0);
        return buf;
}

/* --- clients of other users ------------------------------------------------- */

/* In a forked client: become nobody, keep dying with the parent, stay dumpable like any user process. */
void drop_to_nobody(void) {
        CHILD_CHECK(setgroups(0, NULL) == 0);
        CHILD_CHECK(setresgid(NOBODY, NOBODY, NOBODY) == 0);
        CHILD_CHECK(setresuid(NOBODY, NOBODY, NOBODY) == 0);
        /* Changing uids cleared both. */
        CHILD_CHECK(prctl(PR_SET_DUMPABLE, 1) == 0);
        CHILD_CHECK(prctl(PR_SET_PDEATHSIG, SIGKILL) == 0);
        CHILD_CHECK(getppid() != 1);
}

/* In the nobody client: a child of ours that blocks until *ret_ctl closes, optionally non-dumpable. */
pid_t nobody_target(bool dumpable, int *ret_ctl) {
        int ctl[2], ready[2];
        pid_t pid;
        char b;

        CHILD_CHECK(pipe2(ctl, O_CLOEXEC) == 0);
        CHILD_CHECK(pipe2(ready, O_CLOEXEC) == 0);
        pid = fork();
        CHILD_CHECK(pid >= 0);
        if (pid == 0) {
                if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || (!dumpable && prctl(PR_SET_DUMPABLE, 0) < 0))
                        _exit(EXIT_FAILURE);
                close(ready[1]);
                while (read(ctl[0], &b, 1) > 0)
                        ;
                _exit(EXIT_SUCCESS);
        }
        close(ctl[0]);
        close(ready[1]);
        /* EOF once it closed its copy: it is set up. */
        CHILD_CHECK(read(ready[0], &b, 1) == 0);
        close(ready[0]);
        *ret_ctl = ctl[1];
        return pid;
}

/* In a forked client: become @uid, with no groups, and stay dumpable. */
void drop_to(uid_t uid) {
        CHILD_CHECK(setgroups(0, NULL) == 0);
        CHILD_CHECK(setresgid(uid, uid, uid) == 0);
        CHILD_CHECK(setresuid(uid, uid, uid) == 0);
        CHILD_CHECK(prctl(PR_SET_DUMPABLE, 1) == 0);
        CHILD_CHECK(prctl(PR_SET_PDEATHSIG, SIGKILL) == 0);
}

void drop_to_groups(uid_t uid, gid_t gid, const gid_t *groups, size_t n_groups) {
        CHILD_CHECK(setgroups(n_groups, groups) == 0);
        CHILD_CHECK(setresgid(gid, gid, gid) == 0);
        CHILD_CHECK(setresuid(uid, uid, uid) == 0);
        CHILD_CHECK(prctl(PR_SET_DUMPABLE, 1) == 0);
        CHILD_CHECK(prctl(PR_SET_PDEATHSIG, SIGKILL) == 0);
}
