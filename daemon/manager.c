/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/pidfd.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "log.h"
#include "manager.h"
#include "policy.h"

/* Each cached process holds three fds: its /proc directory, its maps file and a pidfd. */
#define FDS_PER_PROC 3
/* Fds kept for everything else: stdio, the socket, the event loop, files being read. */
#define FDS_RESERVED 64
/* How long a stopping daemon waits for clients to read their last replies. */
#define STOP_TIMEOUT_USEC (5U * 1000000U)

typedef struct CachedProc {
        Manager *manager;
        pid_t pid;
        Proc *proc;
        sd_event_source *exit_source;   /* the pidfd: readable once the process exits */
} CachedProc;

static void cached_proc_free(void *p) {
        CachedProc *cp = p;

        if (!cp)
                return;
        sd_event_source_disable_unref(cp->exit_source);
        proc_free(cp->proc);
        free(cp);
}

/* Raise the soft fd limit to the hard one and size the process cache to fit in it. */
static size_t manager_fit_proc_cache(Manager *m) {
        struct rlimit rl;
        size_t fit;

        if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
                return MIN(m->config.proc_cache_size, (size_t) 64);
        if (rl.rlim_cur < rl.rlim_max) {
                rlim_t soft = rl.rlim_cur;

                rl.rlim_cur = rl.rlim_max;
                if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
                        rl.rlim_cur = soft;
        }

        if (rl.rlim_cur <= FDS_RESERVED + m->config.max_connections + FDS_PER_PROC)
                return 1;
        fit = (size_t) MIN(rl.rlim_cur - FDS_RESERVED - m->config.max_connections, (rlim_t) SIZE_MAX)
              / FDS_PER_PROC;
        if (fit < m->config.proc_cache_size)
                log_warning(m->log_level, "RLIMIT_NOFILE %llu leaves room for %zu cached processes, not %zu.",
                            (unsigned long long) rl.rlim_cur, fit, m->config.proc_cache_size);
        return MIN(fit, m->config.proc_cache_size);
}

int manager_new(Manager **ret, const ManagerConfig *config) {
        _cleanup_(manager_freep) Manager *m = NULL;
        int r;

        m = calloc(1, sizeof(*m));
        if (!m)
                return -ENOMEM;
        m->config = *config;
        m->log_level = config->log_level;
        m->listen_fd = -EBADF;
        m->privileged_gid = (gid_t) -1;

        r = vma_backend_resolve(config->backend, &m->backend);
        if (r < 0)
                return log_error_errno(m->log_level, r, "Backend '%s' is not usable: %m",
                                       vma_backend_to_string(config->backend));

        if (config->group && config->group[0]) {
                struct group *g;

                errno = 0;
                g = getgrnam(config->group);
                if (g)
                        m->privileged_gid = g->gr_gid;
                else
                        log_info(m->log_level, "Group '%s' does not exist: only root may query any process.",
                                 config->group);
        }

        r = policy_pid_namespace(0, &m->pidns);
        if (r < 0)
                return log_error_errno(m->log_level, r, "Failed to identify our pid namespace: %m");

        r = lru_new(&m->procs, sizeof(pid_t), manager_fit_proc_cache(m), cached_proc_free);
        if (r < 0)
                return log_error_errno(m->log_level, r, "Failed to allocate the process cache: %m");
        r = build_id_cache_new(&m->build_ids, config->build_id_cache_size);
        if (r < 0)
                return log_error_errno(m->log_level, r, "Failed to allocate the build ID cache: %m");

        r = sd_event_default(&m->event);
        if (r < 0)
                return log_error_errno(m->log_level, r, "Failed to allocate the event loop: %m");
        (void) sd_event_set_watchdog(m->event, true);
        r = sd_event_now(m->event, CLOCK_MONOTONIC, &m->start_usec);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(m);
        return 0;
}

Manager *manager_free(Manager *m) {
        if (!m)
                return NULL;
        while (m->connections)
                manager_connection_closed(m, m->connections);
        lru_free(m->procs);
        build_id_cache_free(m->build_ids);
        sd_event_source_disable_unref(m->listen_source);
        sd_event_source_disable_unref(m->sigterm_source);
        sd_event_source_disable_unref(m->sigint_source);
        sd_event_source_disable_unref(m->exit_timer_source);
        if (m->socket_bound)
                (void) unlink(m->config.socket_path);
        safe_close(m->listen_fd);
        sd_event_unref(m->event);
        free(m);
        return NULL;
}

void manager_connection_closed(Manager *m, Connection *c) {
        if (c->prev)
                c->prev->next = c->next;
        else
                m->connections = c->next;
        if (c->next)
                c->next->prev = c->prev;
        m->n_connections--;
        connection_free(c);

        if (m->stopping && !m->connections)
                (void) sd_event_exit(m->event, 0);
}

static int manager_on_accept(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Manager *m = userdata;
        Connection *c;
        int cfd, r;

        cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK|SOCK_CLOEXEC);
        if (cfd < 0) {
                if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                        log_warning_errno(m->log_level, -errno, "Failed to accept a connection, ignoring: %m");
                return 0;
        }

        if (m->n_connections >= m->config.max_connections) {
                log_warning(m->log_level, "Refusing a connection: %zu connections already.", m->n_connections);
                safe_close(cfd);
                return 0;
        }

        r = connection_new(&c, m, cfd);
        if (r < 0) {
                log_warning_errno(m->log_level, r, "Failed to set up a connection, ignoring: %m");
                return 0;
        }
        c->next = m->connections;
        if (m->connections)
                m->connections->prev = c;
        m->connections = c;
        m->n_connections++;
        log_debug(m->log_level, "Connection from pid %d uid %u%s.", (int) c->cred.pid, (unsigned) c->cred.uid,
                  c->privileged ? " (privileged)" : "");
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

        for (c = m->connections; c; c = next) {
                next = c->next;
                if (connection_drain(c) < 0)
                        manager_connection_closed(m, c);
        }
        if (!m->connections)
                return sd_event_exit(m->event, 0);

        return sd_event_add_time_relative(m->event, &m->exit_timer_source, CLOCK_MONOTONIC, STOP_TIMEOUT_USEC, 0,
                                          manager_on_exit_timeout, m);
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

        /* Created with the final mode: no window in which it is more open. */
        old_umask = umask(~m->config.socket_mode & 0777);
        r = bind(fd, (struct sockaddr *) &sa, sizeof(sa));
        umask(old_umask);
        if (r < 0)
                return log_error_errno(m->log_level, -errno, "Failed to bind '%s': %m", path);
        m->socket_bound = true;
        if (chmod(path, m->config.socket_mode) < 0)
                return log_error_errno(m->log_level, -errno, "Failed to set the mode of '%s': %m", path);
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
                r = sd_event_add_io(m->event, &m->listen_source, m->listen_fd, EPOLLIN, manager_on_accept, m);
        } else {
                m->listen_fd = manager_bind(m);
                if (m->listen_fd < 0)
                        return m->listen_fd;
                r = sd_event_add_io(m->event, &m->listen_source, m->listen_fd, EPOLLIN, manager_on_accept, m);
        }
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

        log_info(m->log_level, "Listening on %s, backend %s, caching up to %zu processes.",
                 m->socket_bound ? m->config.socket_path : "the socket passed by systemd",
                 vma_backend_to_string(m->backend), lru_max(m->procs));
        (void) sd_notifyf(false, "READY=1\nSTATUS=Serving with the %s backend.", vma_backend_to_string(m->backend));

        r = sd_event_loop(m->event);
        if (r < 0)
                return log_error_errno(m->log_level, r, "Event loop failed: %m");
        return r;
}

/* The process exited: its cache entry goes, with its fds. */
static int manager_on_proc_exit(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        CachedProc *cp = userdata;

        log_debug(cp->manager->log_level, "Process %d exited, dropping it from the cache.", (int) cp->pid);
        manager_forget_proc(cp->manager, cp->pid);
        return 0;
}

void manager_forget_proc(Manager *m, pid_t pid) {
        (void) lru_remove(m->procs, &pid);
}

/* Open @pid and cache it, watched through a pidfd so that it leaves the cache when it exits. */
static int manager_cache_proc(Manager *m, pid_t pid, Proc **ret) {
        _cleanup_close_ int pidfd = -EBADF;
        CachedProc *cp;
        int r;

        cp = calloc(1, sizeof(*cp));
        if (!cp)
                return -ENOMEM;
        cp->manager = m;
        cp->pid = pid;

        /*
         * The pidfd first: if the pid is reused before /proc/PID is opened,
         * the pidfd names the dead process and fires at once.
         */
        pidfd = pidfd_open(pid, 0);
        if (pidfd < 0) {
                r = errno == ESRCH ? -ESRCH : -errno;
                goto fail;
        }
        r = proc_open(&cp->proc, pid, m->backend);
        if (r < 0)
                goto fail;
        r = sd_event_add_io(m->event, &cp->exit_source, pidfd, EPOLLIN, manager_on_proc_exit, cp);
        if (r < 0)
                goto fail;
        r = sd_event_source_set_io_fd_own(cp->exit_source, true);
        if (r < 0)
                goto fail;
        TAKE_FD(pidfd);

        r = lru_put(m->procs, &pid, cp);
        if (r < 0)
                goto fail;

        *ret = cp->proc;
        return 0;

fail:
        cached_proc_free(cp);
        return r;
}

int manager_acquire_proc(Manager *m, Connection *c, pid_t pid, Proc **ret) {
        Proc *p = NULL;
        CachedProc *cp;
        int r;

        if (c->foreign_pidns)
                return -EXDEV;

        cp = lru_get(m->procs, &pid);
        if (cp) {
                m->proc_cache_hits++;
                p = cp->proc;
        } else {
                m->proc_cache_misses++;
                r = manager_cache_proc(m, pid, &p);
                if (r < 0)
                        return r;
        }

        r = manager_recheck_proc(m, c, p);
        if (r < 0)
                return r;

        *ret = p;
        return 0;
}

int manager_recheck_proc(Manager *m, Connection *c, Proc *p) {
        if (c->privileged)
                return 0;

        return policy_check_target(proc_dir_fd(p), c->cred.uid);
}
