/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <assert.h>
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
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
                int fd;

                fd = open(d->log_path, O_WRONLY|O_CREAT|O_APPEND|O_CLOEXEC, 0644);
                if (fd < 0 || dup2(fd, STDOUT_FILENO) < 0 || dup2(fd, STDERR_FILENO) < 0)
                        _exit(127);
                fd = open("/dev/null", O_RDONLY|O_CLOEXEC);
                if (fd < 0 || dup2(fd, STDIN_FILENO) < 0)
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
