/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * make bench: the daemon's memory at its default limits, against the
 * worst case that docs/SECURITY.md computes. Needs root, to connect as
 * several users.
 *
 * Every connection the limits allow is opened, by root and by eight
 * unprivileged uids, and each sends a request of the largest size that
 * never ends: the daemon reads as much of them as its budget holds and
 * refuses the rest. The connections a client sees closed are opened again
 * with only their first input chunk. The daemon's peak resident memory is
 * then compared to the computed bound, next to what GetStatus says it
 * holds.
 *
 * The caches are not filled (that takes 1,024 processes and 4,096 mapped
 * files): their share of the bound is computed, not measured.
 */

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "macro.h"

/* The defaults of vmaqd, and the bound docs/SECURITY.md gives for them. */
#define MAX_CONNECTIONS 4096U
#define MAX_PER_USER 256U
#define MAX_MESSAGE (16U << 20)
#define BUDGET (256ULL << 20)
#define DOCUMENTED_BOUND (369ULL << 20)

#define N_USERS 8U
#define FIRST_UID 61000U
#define ROOT_CONNECTIONS (MAX_CONNECTIONS / 2 - 1)  /* one more asks GetStatus */
#define QUIET_MS 2000
#define FIRST_CHUNK (16U << 10)         /* what the daemon reads of every connection */

typedef struct Conn {
        int fd;
        unsigned user;          /* index into Bench.users; 0 is root */
        size_t sent;
        size_t limit;           /* of the message, what it is to send */
} Conn;

typedef struct User {
        uid_t uid;
        pid_t pid;              /* the process that connects as uid */
        int ctl;                /* asks it for connections, receives their fds */
} User;

typedef struct Bench {
        char dir[64];
        char socket_path[128];
        pid_t daemon;
        User users[1 + N_USERS];
        Conn *conns;
        size_t n_conns;
        char *message;
        unsigned reopened;
} Bench;

static int connect_to(const char *path) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd;

        strncpy(sa.sun_path, path, sizeof(sa.sun_path) - 1);
        fd = socket(AF_UNIX, SOCK_STREAM|SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0) {
                int r = -errno;

                close(fd);
                return r;
        }
        return fd;
}

static int send_fd(int sock, int fd) {
        union {
                struct cmsghdr h;
                char buf[CMSG_SPACE(sizeof(int))];
        } control = {};
        char byte = fd < 0 ? 'E' : 'F';
        struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

        if (fd >= 0) {
                mh.msg_control = &control;
                mh.msg_controllen = sizeof(control.buf);
                CMSG_FIRSTHDR(&mh)->cmsg_level = SOL_SOCKET;
                CMSG_FIRSTHDR(&mh)->cmsg_type = SCM_RIGHTS;
                CMSG_FIRSTHDR(&mh)->cmsg_len = CMSG_LEN(sizeof(int));
                memcpy(CMSG_DATA(CMSG_FIRSTHDR(&mh)), &fd, sizeof(int));
        }
        return sendmsg(sock, &mh, MSG_NOSIGNAL) == 1 ? 0 : -errno;
}

static int recv_fd(int sock) {
        union {
                struct cmsghdr h;
                char buf[CMSG_SPACE(sizeof(int))];
        } control;
        char byte;
        struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
        struct msghdr mh = {
                .msg_iov = &iov, .msg_iovlen = 1,
                .msg_control = &control, .msg_controllen = sizeof(control.buf),
        };
        struct cmsghdr *h;
        int fd;

        if (recvmsg(sock, &mh, MSG_CMSG_CLOEXEC) != 1)
                return -EIO;
        h = CMSG_FIRSTHDR(&mh);
        if (byte != 'F' || !h || h->cmsg_type != SCM_RIGHTS)
                return -ECONNREFUSED;
        memcpy(&fd, CMSG_DATA(h), sizeof(int));
        return fd;
}

/* As @uid, connect whenever asked and pass the connection back; until @ctl closes. */
_Noreturn static void user_main(uid_t uid, int ctl, const char *path) {
        char byte;

        if (uid != 0 &&
            (setgroups(0, NULL) < 0 || setresgid(uid, uid, uid) < 0 || setresuid(uid, uid, uid) < 0))
                _exit(EXIT_FAILURE);
        while (read(ctl, &byte, 1) == 1) {
                int fd = connect_to(path);

                if (send_fd(ctl, fd) < 0)
                        _exit(EXIT_FAILURE);
                if (fd >= 0)
                        close(fd);
        }
        _exit(EXIT_SUCCESS);
}

static int user_start(Bench *b, unsigned i, uid_t uid) {
        int pair[2];
        pid_t pid;

        if (socketpair(AF_UNIX, SOCK_SEQPACKET|SOCK_CLOEXEC, 0, pair) < 0)
                return -errno;
        pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0) {
                /* Only its own: the others must see EOF when the bench closes their end. */
                close(pair[0]);
                for (unsigned k = 0; k < i; k++)
                        close(b->users[k].ctl);
                user_main(uid, pair[1], b->socket_path);
        }
        close(pair[1]);
        b->users[i] = (User) { .uid = uid, .pid = pid, .ctl = pair[0] };
        return 0;
}

static int user_connect(Bench *b, unsigned i) {
        if (write(b->users[i].ctl, "c", 1) != 1)
                return -errno;
        return recv_fd(b->users[i].ctl);
}

static int daemon_launch(Bench *b, const char *vmaqd) {
        char log_path[128];
        pid_t pid;

        snprintf(log_path, sizeof(log_path), "%s/vmaqd.log", b->dir);
        pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0) {
                struct rlimit rl = { 16384, 16384 };
                int fd = open(log_path, O_WRONLY|O_CREAT|O_TRUNC|O_CLOEXEC, 0644);

                if (fd < 0 || dup2(fd, STDOUT_FILENO) < 0 || dup2(fd, STDERR_FILENO) < 0 ||
                    setrlimit(RLIMIT_NOFILE, &rl) < 0)
                        _exit(EXIT_FAILURE);
                /* The limits at their defaults; only the idle timeout is raised, so a slow fill is not cut short. */
                execl(vmaqd, vmaqd, "--socket", b->socket_path, "--log-level", "warning",
                      "--idle-timeout", "3600", (char *) NULL);
                _exit(127);
        }
        b->daemon = pid;

        for (unsigned i = 0; i < 500; i++) {
                int fd = connect_to(b->socket_path);

                if (fd >= 0) {
                        close(fd);
                        return 0;
                }
                if (waitpid(pid, NULL, WNOHANG) == pid)
                        return -ECHILD;
                (void) poll(NULL, 0, 10);
        }
        return -ETIMEDOUT;
}

/* A field of /proc/PID/status in bytes ("VmRSS", "VmHWM"), or 0. */
static uint64_t proc_status_bytes(pid_t pid, const char *field) {
        char path[64], line[256];
        uint64_t kib = 0;
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%d/status", (int) pid);
        f = fopen(path, "re");
        if (!f)
                return 0;
        while (fgets(line, sizeof(line), f))
                if (strncmp(line, field, strlen(field)) == 0 && line[strlen(field)] == ':')
                        (void) sscanf(line + strlen(field) + 1, "%" SCNu64, &kib);
        fclose(f);
        return kib * 1024;
}

/* A number in the GetStatus reply @json: the member @key of the object @group. */
static uint64_t json_member(const char *json, const char *group, const char *key) {
        char pattern[64];
        const char *p = strstr(json, group);

        snprintf(pattern, sizeof(pattern), "\"%s\":", key);
        p = p ? strstr(p, pattern) : NULL;
        return p ? strtoull(p + strlen(pattern), NULL, 10) : 0;
}

static int get_status(const Bench *b, char *buf, size_t size) {
        static const char call[] = "{\"method\":\"io.vmaq.GetStatus\"}";
        size_t got = 0;
        int fd;

        fd = user_connect((Bench *) b, 0);
        if (fd < 0)
                return fd;
        if (send(fd, call, sizeof(call), MSG_NOSIGNAL) != (ssize_t) sizeof(call)) {
                close(fd);
                return -EIO;
        }
        while (got < size - 1) {
                ssize_t n = recv(fd, buf + got, size - 1 - got, 0);

                if (n <= 0)
                        break;
                got += (size_t) n;
                if (memchr(buf, '\0', got))
                        break;
        }
        close(fd);
        buf[got] = '\0';
        return got > 0 ? 0 : -EIO;
}

static int conn_open(Bench *b, Conn *c) {
        int fd = user_connect(b, c->user);

        if (fd < 0)
                return fd;
        if (fcntl(fd, F_SETFL, O_NONBLOCK) < 0) {
                close(fd);
                return -errno;
        }
        c->fd = fd;
        c->sent = 0;
        c->limit = FIRST_CHUNK;
        return 0;
}

/*
 * Send more of each message, up to its limit, until nothing moves for
 * QUIET_MS. The daemon writes to a connection only to refuse its message
 * (MemoryLimitReached), then closes it: such a connection is opened again
 * and sends only the first chunk, which the daemon always takes, so that
 * the refusals end with every connection held. Returns the number refused.
 */
static unsigned fill(Bench *b) {
        _cleanup_free_ struct pollfd *p = calloc(b->n_conns, sizeof(*p));
        _cleanup_free_ size_t *index = calloc(b->n_conns, sizeof(*index));
        unsigned refused = 0;

        if (!p || !index)
                return 0;
        for (;;) {
                size_t n_polled = 0;
                int k;

                for (size_t i = 0; i < b->n_conns; i++) {
                        Conn *c = &b->conns[i];
                        ssize_t n;

                        if (c->fd < 0)
                                continue;
                        if (c->sent < c->limit) {
                                n = send(c->fd, b->message, c->limit - c->sent, MSG_NOSIGNAL|MSG_DONTWAIT);
                                if (n > 0)
                                        c->sent += (size_t) n;
                        }
                        index[n_polled] = i;
                        p[n_polled++] = (struct pollfd) {
                                .fd = c->fd,
                                .events = POLLIN | (c->sent < c->limit ? POLLOUT : 0),
                        };
                }
                k = n_polled > 0 ? poll(p, n_polled, QUIET_MS) : 0;
                if (k <= 0)
                        break;
                for (size_t j = 0; j < n_polled; j++) {
                        Conn *c = &b->conns[index[j]];

                        if (!(p[j].revents & (POLLIN | POLLHUP | POLLERR)))
                                continue;
                        /* Refused: opened again with only the first chunk. */
                        close(c->fd);
                        refused++;
                        if (conn_open(b, c) < 0)
                                c->fd = -1;
                }
        }
        return refused;
}

static double mib(uint64_t bytes) {
        return (double) bytes / (1 << 20);
}

int main(int argc, char *argv[]) {
        struct rlimit rl = { 16384, 16384 };
        char status[8192];
        uint64_t before, rss, peak;
        unsigned refused, held = 0;
        Bench b = {};
        int r, ret = EXIT_FAILURE;

        if (argc != 2) {
                fprintf(stderr, "usage: %s VMAQD\n", argv[0]);
                return EXIT_FAILURE;
        }
        if (geteuid() != 0) {
                printf("memory: skipped, it needs root to connect as several users\n");
                return EXIT_SUCCESS;
        }
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
                fprintf(stderr, "RLIMIT_NOFILE: %m\n");
                return EXIT_FAILURE;
        }
        (void) signal(SIGPIPE, SIG_IGN);

        snprintf(b.dir, sizeof(b.dir), "/tmp/vmaqd-bench-XXXXXX");
        if (!mkdtemp(b.dir) || chmod(b.dir, 0755) < 0) {
                fprintf(stderr, "mkdtemp: %m\n");
                return EXIT_FAILURE;
        }
        snprintf(b.socket_path, sizeof(b.socket_path), "%s/vmaqd.sock", b.dir);

        b.message = malloc(MAX_MESSAGE);
        b.conns = calloc(MAX_CONNECTIONS, sizeof(Conn));
        if (!b.message || !b.conns) {
                fprintf(stderr, "out of memory\n");
                goto finish;
        }
        /* Never a NUL: the request never ends, the daemon holds what it read of it. */
        memset(b.message, ' ', MAX_MESSAGE);

        r = daemon_launch(&b, argv[1]);
        if (r < 0) {
                fprintf(stderr, "starting %s: %s (see %s/vmaqd.log)\n", argv[1], strerror(-r), b.dir);
                goto finish;
        }
        before = proc_status_bytes(b.daemon, "VmRSS");

        for (unsigned i = 0; i <= N_USERS; i++) {
                r = user_start(&b, i, i == 0 ? 0 : FIRST_UID + i - 1);
                if (r < 0) {
                        fprintf(stderr, "fork: %s\n", strerror(-r));
                        goto finish;
                }
        }
        for (unsigned i = 0; i <= N_USERS; i++)
                for (unsigned k = 0; k < (i == 0 ? ROOT_CONNECTIONS : MAX_PER_USER); k++) {
                        Conn *c = &b.conns[b.n_conns];

                        c->user = i;
                        r = conn_open(&b, c);
                        if (r < 0) {
                                fprintf(stderr, "connecting as uid %u: %s\n", (unsigned) b.users[i].uid,
                                        strerror(-r));
                                goto finish;
                        }
                        b.n_conns++;
                }

        /* First every connection's first chunk, then as much more as the daemon takes. */
        refused = fill(&b);
        for (size_t i = 0; i < b.n_conns; i++)
                b.conns[i].limit = MAX_MESSAGE - 1;
        /* Until a quiet spell ends with no refusal: the daemon may refuse what it read late. */
        for (unsigned n = fill(&b); n > 0; n = fill(&b))
                refused += n;
        for (size_t i = 0; i < b.n_conns; i++)
                held += b.conns[i].fd >= 0;

        r = get_status(&b, status, sizeof(status));
        if (r < 0) {
                fprintf(stderr, "GetStatus: %s\n", strerror(-r));
                goto finish;
        }
        rss = proc_status_bytes(b.daemon, "VmRSS");
        peak = proc_status_bytes(b.daemon, "VmHWM");

        printf("memory: %u connections opened by %u users, %u closed by the daemon and opened again\n",
               held, 1 + N_USERS, refused);
        printf("memory: the daemon holds %" PRIu64 " connections, refused %" PRIu64 " requests for memory\n",
               json_member(status, "{", "connections"), json_member(status, "\"refused\"", "memory"));
        printf("memory: budget used %.1f of %.1f MiB\n",
               mib(json_member(status, "\"memory\"", "used")), mib(BUDGET));
        printf("memory: resident %.1f MiB at start, %.1f MiB now, peak %.1f MiB\n",
               mib(before), mib(rss), mib(peak));
        printf("memory: peak / documented worst case (%.0f MiB) = %.2f\n",
               mib(DOCUMENTED_BOUND), (double) peak / DOCUMENTED_BOUND);
        if (peak > DOCUMENTED_BOUND)
                fprintf(stderr, "memory: the peak is over the documented worst case\n");
        else
                ret = EXIT_SUCCESS;

finish:
        for (size_t i = 0; i < b.n_conns; i++)
                if (b.conns[i].fd >= 0)
                        close(b.conns[i].fd);
        for (unsigned i = 0; i <= N_USERS; i++)
                if (b.users[i].pid > 0) {
                        close(b.users[i].ctl);
                        (void) waitpid(b.users[i].pid, NULL, 0);
                }
        if (b.daemon > 0) {
                (void) kill(b.daemon, SIGTERM);
                (void) waitpid(b.daemon, NULL, 0);
        }
        free(b.conns);
        free(b.message);
        if (ret == EXIT_SUCCESS) {
                char path[160];

                snprintf(path, sizeof(path), "%s/vmaqd.log", b.dir);
                (void) unlink(path);
                (void) rmdir(b.dir);
        }
        return ret;
}
