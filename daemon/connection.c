/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * One client connection: NUL-framed messages in, replies out, with every
 * buffer bounded. A client that sends slowly, floods, or never reads its
 * replies costs at most its own buffers and is disconnected after the idle
 * timeout; it never blocks the loop.
 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "manager.h"
#include "policy.h"
#include "vmaq-proto.h"

#define READ_CHUNK (64U * 1024U)
/* Stop reading requests while this much output waits for the client. */
#define OUTPUT_HIGH_WATER (1U * 1024U * 1024U)

static int connection_update_events(Connection *c);

static int connection_arm_timer(Connection *c) {
        return sd_event_source_set_time_relative(c->timer_source, c->manager->config.idle_timeout_usec);
}

static size_t connection_pending_output(const Connection *c) {
        return c->out_size - c->out_start;
}

/* Write what the socket takes without blocking. */
static int connection_flush(Connection *c) {
        while (connection_pending_output(c) > 0) {
                ssize_t n = send(c->fd, c->out + c->out_start, connection_pending_output(c),
                                 MSG_DONTWAIT|MSG_NOSIGNAL);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN)
                                break;
                        return -errno;
                }
                c->out_start += (size_t) n;
                (void) connection_arm_timer(c);
        }

        if (c->out_start == c->out_size)
                c->out_start = c->out_size = 0;
        return 0;
}

int connection_queue(Connection *c, const char *message, size_t size) {
        if (c->out_start > 0 && c->out_start == c->out_size)
                c->out_start = c->out_size = 0;

        if (size > c->out_allocated - c->out_size) {
                size_t need, n;
                char *p;

                /* Move what is left to the front before growing. */
                if (c->out_start > 0) {
                        memmove(c->out, c->out + c->out_start, connection_pending_output(c));
                        c->out_size -= c->out_start;
                        c->out_start = 0;
                }
                if (__builtin_add_overflow(c->out_size, size, &need))
                        return -ENOMEM;
                n = MAX(need, c->out_allocated * 2);
                p = realloc(c->out, n);
                if (!p)
                        return -ENOMEM;
                c->out = p;
                c->out_allocated = n;
        }

        memcpy(c->out + c->out_size, message, size);
        c->out_size += size;
        return connection_flush(c);
}

void connection_shutdown(Connection *c) {
        c->closing = true;
}

/* Reply with an error when the stream itself is broken, and close after it. */
static void connection_fail(Connection *c, ProtoError e, const ProtoErrorDetails *details) {
        _cleanup_free_ char *msg = NULL;
        size_t size;

        c->manager->errors++;
        if (proto_error_format(e, details, &msg, &size) >= 0)
                (void) connection_queue(c, msg, size);
        connection_shutdown(c);
}

/* Handle complete messages while the output has room. */
static int connection_process(Connection *c) {
        size_t start = 0;
        int r = 0;

        while (!c->closing && connection_pending_output(c) < OUTPUT_HIGH_WATER) {
                char *nul = c->in_size > start ? memchr(c->in + start, '\0', c->in_size - start) : NULL;
                size_t len;

                if (!nul)
                        break;
                len = (size_t) (nul - (c->in + start));
                r = method_dispatch(c, c->in + start, len);
                start += len + 1;
                if (r < 0)
                        break;
        }

        if (start > 0) {
                memmove(c->in, c->in + start, c->in_size - start);
                c->in_size -= start;
        }

        if (r >= 0 && !c->closing && c->in_size > c->manager->config.max_message_size)
                connection_fail(c, PROTO_ERROR_REQUEST_TOO_LARGE, &(ProtoErrorDetails) {
                                .limit = c->manager->config.max_message_size,
                        });
        return r;
}

static int connection_read(Connection *c) {
        size_t limit = c->manager->config.max_message_size + 1;
        ssize_t n;

        if (c->in_size >= limit)
                return 0;

        if (c->in_allocated - c->in_size < READ_CHUNK && c->in_allocated < limit) {
                size_t want = MIN(MAX(c->in_allocated * 2, c->in_size + READ_CHUNK), limit);
                char *p = realloc(c->in, want);

                if (!p)
                        return -ENOMEM;
                c->in = p;
                c->in_allocated = want;
        }

        n = recv(c->fd, c->in + c->in_size, MIN(c->in_allocated, limit) - c->in_size, MSG_DONTWAIT);
        if (n < 0) {
                if (errno == EAGAIN || errno == EINTR)
                        return 0;
                return -errno;
        }
        if (n == 0) {
                c->eof = true;
                return 0;
        }

        c->in_size += (size_t) n;
        (void) connection_arm_timer(c);
        return 0;
}

static int connection_update_events(Connection *c) {
        uint32_t events = 0;

        if (!c->closing && !c->eof && !c->draining && connection_pending_output(c) < OUTPUT_HIGH_WATER)
                events |= EPOLLIN;
        /* Received requests still to answer once the output has room. */
        if (c->draining && !c->closing && c->in_size > 0 && memchr(c->in, '\0', c->in_size))
                events |= EPOLLOUT;
        if (connection_pending_output(c) > 0)
                events |= EPOLLOUT;

        /* Nothing to read and nothing to write: done. */
        if (events == 0)
                return -ECONNRESET;

        return sd_event_source_set_io_events(c->io_source, events);
}

static int connection_on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Connection *c = userdata;
        Manager *m = c->manager;
        int r;

        if (revents & (EPOLLOUT|EPOLLHUP|EPOLLERR)) {
                r = connection_flush(c);
                if (r < 0)
                        goto fail;
        }

        if (revents & (EPOLLIN|EPOLLHUP)) {
                r = connection_read(c);
                if (r < 0)
                        goto fail;
        }

        r = connection_process(c);
        if (r < 0)
                goto fail;

        /* The peer is done sending: a rest without its NUL is a broken message. */
        if (c->eof && !c->closing && c->in_size > 0 && !memchr(c->in, '\0', c->in_size))
                connection_fail(c, PROTO_ERROR_INVALID_MESSAGE, &(ProtoErrorDetails) {
                                .reason = "connection closed inside a message",
                        });

        r = connection_update_events(c);
        if (r < 0)
                goto fail;
        return 0;

fail:
        if (r != -ECONNRESET && r != -EPIPE)
                log_debug_errno(m->log_level, r, "Connection of pid %d closed: %m", (int) c->cred.pid);
        manager_connection_closed(m, c);
        return 0;
}

int connection_drain(Connection *c) {
        int r;

        c->draining = true;
        r = connection_process(c);
        if (r < 0)
                return r;
        return connection_update_events(c);
}

static int connection_on_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        Connection *c = userdata;

        log_info(c->manager->log_level, "Closing connection of pid %d uid %u: idle or stuck for too long",
                 (int) c->cred.pid, (unsigned) c->cred.uid);
        manager_connection_closed(c->manager, c);
        return 0;
}

/* The supplementary groups of the peer, bounded like the kernel bounds them. */
static int connection_peer_groups(int fd, gid_t **ret, size_t *ret_n) {
        socklen_t len = 64 * sizeof(gid_t);

        for (;;) {
                _cleanup_free_ gid_t *groups = malloc(len);

                if (!groups)
                        return -ENOMEM;
                if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) >= 0) {
                        *ret_n = len / sizeof(gid_t);
                        *ret = TAKE_PTR(groups);
                        return 0;
                }
                if (errno != ERANGE || len > 65536 * sizeof(gid_t))
                        return -errno;
        }
}

int connection_new(Connection **ret, Manager *m, int fd) {
        _cleanup_free_ gid_t *groups = NULL;
        socklen_t len = sizeof(struct ucred);
        size_t n_groups = 0;
        Connection *c;
        ino_t pidns;
        int r;

        c = calloc(1, sizeof(*c));
        if (!c) {
                safe_close(fd);
                return -ENOMEM;
        }
        c->manager = m;
        c->fd = fd;

        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &c->cred, &len) < 0) {
                r = -errno;
                goto fail;
        }
        r = connection_peer_groups(fd, &groups, &n_groups);
        if (r < 0)
                goto fail;
        c->privileged = policy_is_privileged(c->cred.uid, c->cred.gid, groups, n_groups, m->privileged_gid);

        /*
         * The kernel gives the peer's pid as seen from our namespace: 0 if
         * it is not visible here. Its namespace decides what its pids mean.
         */
        c->foreign_pidns = c->cred.pid <= 0 || policy_pid_namespace(c->cred.pid, &pidns) < 0 ||
                           pidns != m->pidns;

        r = sd_event_add_io(m->event, &c->io_source, fd, EPOLLIN, connection_on_io, c);
        if (r < 0)
                goto fail;
        r = sd_event_add_time_relative(m->event, &c->timer_source, CLOCK_MONOTONIC,
                                       m->config.idle_timeout_usec, 0, connection_on_timeout, c);
        if (r < 0)
                goto fail;

        *ret = c;
        return 0;

fail:
        connection_free(c);
        return r;
}

Connection *connection_free(Connection *c) {
        if (!c)
                return NULL;
        sd_event_source_disable_unref(c->io_source);
        sd_event_source_disable_unref(c->timer_source);
        safe_close(c->fd);
        free(c->in);
        free(c->out);
        free(c);
        return NULL;
}
