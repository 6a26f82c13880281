/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * One client connection: NUL-framed messages in, replies out, with every
 * buffer bounded. Each message becomes a job for a worker, one at a time,
 * so replies keep their order. A client that sends slowly, floods, or
 * never reads its replies costs at most its own buffers, never blocks the
 * loop, and is disconnected when it makes no progress: a whole message
 * must arrive, and the replies must be read, within the idle timeout.
 *
 * What the buffers hold is charged to the memory budget. Up to READ_CHUNK
 * of input may always be held; more only while the budget has room. When
 * it has none, a connection with earlier requests still to answer is not
 * read until they are; otherwise the message it is receiving is refused
 * with MemoryLimitReached.
 */

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "manager.h"
#include "policy.h"
#include "vmaq-proto.h"

#define READ_CHUNK (16U * 1024U)
/* Stop reading requests while this much output waits for the client. */
#define OUTPUT_HIGH_WATER (1U * 1024U * 1024U)
/* Make the next part of a streamed reply when less than this waits to be read. */
#define STREAM_LOW_WATER (256U * 1024U)
/* Reading this much of its replies counts as progress for a client; so does reading them all. */
#define OUTPUT_PROGRESS (64U * 1024U)

static int connection_update(Connection *c);

static uint64_t connection_now(const Connection *c) {
        uint64_t now = 0;

        (void) sd_event_now(c->manager->event, CLOCK_MONOTONIC, &now);
        return now;
}

static size_t connection_pending_output(const Connection *c) {
        return c->out_size - c->out_start;
}

static size_t connection_pending_input(const Connection *c) {
        return c->in_end - c->in_start;
}

static int connection_charge(Connection *c, size_t size, bool force, size_t *ret_limit) {
        int r;

        r = manager_charge(c->manager, c->user, c->peer.privileged, size, force, ret_limit);
        if (r < 0)
                return r;
        c->charged += size;
        return 0;
}

static void connection_uncharge(Connection *c, size_t size) {
        manager_uncharge(c->manager, c->user, c->peer.privileged, size);
        c->charged -= size;
}

/*
 * A message buffer past the first chunk is a mapping of its own, given back
 * to the system as soon as it is freed. From the heap, the buffers clients
 * make us grow, and that are then refused and freed, would leave it
 * fragmented and resident past the budget: glibc raises its mmap threshold
 * each time such a buffer is freed, up to 32 MiB. The first chunks, on
 * every connection, stay on the heap, as small requests' buffers do.
 */
static bool message_buffer_mapped(size_t size) {
        return size > READ_CHUNK;
}

size_t message_buffer_size(size_t size) {
        /* A mapping takes whole pages: what is charged is what it takes. */
        return message_buffer_mapped(size) ? ALIGN_POW2(size, (size_t) sysconf(_SC_PAGESIZE)) : size;
}

/*
 * Grow @p of @size bytes to @new_size, both as message_buffer_size() gives
 * them; NULL on failure, @p then untouched.
 */
static char *message_buffer_resize(char *p, size_t size, size_t new_size) {
        void *q;

        assert(new_size >= size);
        if (!message_buffer_mapped(new_size))
                return realloc(p, new_size);    /* then neither is @p */
        if (message_buffer_mapped(size)) {
                q = mremap(p, size, new_size, MREMAP_MAYMOVE);
                return q == MAP_FAILED ? NULL : q;
        }
        q = mmap(NULL, new_size, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0);
        if (q == MAP_FAILED)
                return NULL;
        if (size > 0)
                memcpy(q, p, size);
        free(p);
        return q;
}

void message_buffer_free(char *p, size_t size) {
        if (p && message_buffer_mapped(size))
                (void) munmap(p, size);
        else
                free(p);
}

/* Nothing left to read or to write in a buffer: give its memory back. */
static void connection_release_input(Connection *c) {
        connection_uncharge(c, c->in_allocated);
        message_buffer_free(c->in, c->in_allocated);
        c->in = NULL;
        c->in_start = c->in_end = c->in_allocated = c->in_scanned = 0;
}

static void connection_release_output(Connection *c) {
        connection_uncharge(c, c->out_allocated);
        c->out = mfree(c->out);
        c->out_start = c->out_size = c->out_allocated = 0;
}

/* Close the fds received for messages not taken yet. */
static void connection_close_fds(Connection *c) {
        for (size_t i = 0; i < c->n_in_fds; i++)
                safe_close(c->in_fds[i]);
        if (c->user)
                manager_release_fds(c->manager, c->user, c->n_in_fds);
        c->n_in_fds = 0;
}

/*
 * Whether a whole message waits at in_start; scans each received byte
 * once. Once one is found, in_scanned is its size.
 */
static bool connection_has_message(Connection *c) {
        size_t n = connection_pending_input(c);
        const char *p = c->in + c->in_start, *nul;

        if (c->in_scanned >= n)
                return false;
        if (p[c->in_scanned] == '\0')
                return true;
        nul = memchr(p + c->in_scanned, '\0', n - c->in_scanned);
        c->in_scanned = nul ? (size_t) (nul - p) : n;
        return nul;
}

size_t connection_message_size(Connection *c, bool *ret_last) {
        if (!connection_has_message(c))
                return 0;
        *ret_last = c->in_scanned + 1 == connection_pending_input(c);
        return c->in_scanned;
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
                c->out_progress += (size_t) n;
        }

        if (c->out_progress >= OUTPUT_PROGRESS || (c->out_progress > 0 && connection_pending_output(c) == 0)) {
                c->out_progress = 0;
                c->deadline_base = connection_now(c);
        }
        if (c->out_start == c->out_size)
                connection_release_output(c);
        return 0;
}

static int connection_queue(Connection *c, const char *message, size_t size) {
        if (connection_pending_output(c) == 0)
                /* The client has had nothing to read until now. */
                c->deadline_base = connection_now(c);

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
                if (need > c->out_allocated) {
                        /* Replies are charged by the jobs that make them: this copy is bounded by them. */
                        n = MAX(need, c->out_allocated * 2);
                        p = realloc(c->out, n);
                        if (!p)
                                return -ENOMEM;
                        (void) connection_charge(c, n - c->out_allocated, true, NULL);
                        c->out = p;
                        c->out_allocated = n;
                }
        }

        memcpy(c->out + c->out_size, message, size);
        c->out_size += size;
        return connection_flush(c);
}

/* Queue the reply of @job: its buffer, when nothing else waits to be written. */
static int connection_queue_reply(Connection *c, Job *job) {
        /* What the worker sent itself is progress, as what we send. */
        if (job->direct_sent == job->reply_size) {
                c->deadline_base = connection_now(c);
                return 0;
        }
        if (connection_pending_output(c) > 0 || c->out)
                return connection_queue(c, job->reply + job->direct_sent, job->reply_size - job->direct_sent);

        c->deadline_base = connection_now(c);
        c->out = TAKE_PTR(job->reply);
        c->out_allocated = c->out_size = job->reply_size;
        c->out_start = job->direct_sent;
        c->charged += job->reply_charged;
        job->reply_charged = 0;
        return connection_flush(c);
}

/* Reply with an error when the stream itself is broken, and close after it. */
static void connection_fail(Connection *c, ProtoError e, const ProtoErrorDetails *details) {
        _cleanup_free_ char *msg = NULL;
        size_t size;

        manager_count(&c->manager->errors);
        if (proto_error_format(e, details, &msg, &size) >= 0)
                (void) connection_queue(c, msg, size);
        c->closing = true;
}

int connection_direct_fd(Connection *c) {
        int fd;

        if (connection_pending_output(c) > 0 || c->stream)
                return -EBUSY;
        /* A dup: should the connection close meanwhile, its number may be another client's. */
        fd = fcntl(c->fd, F_DUPFD_CLOEXEC, 3);
        return fd < 0 ? -errno : fd;
}

int connection_take_job(Connection *c, Job **ret) {
        _cleanup_(job_freep) Job *job = NULL;
        char *start = c->in + c->in_start, *nul;
        size_t len;

        if (c->closing || connection_pending_input(c) == 0)
                return 0;
        nul = memchr(start, '\0', connection_pending_input(c));
        if (!nul)
                return 0;
        len = (size_t) (nul - start);

        job = calloc(1, sizeof(*job));
        if (!job)
                return -ENOMEM;
        job->manager = c->manager;
        job->direct_fd = -EBADF;
        job->user = c->user;
        job->peer = c->peer;
        job->size = len;

        /* The fds that came with its bytes are its; those of later messages move up. */
        for (size_t i = 0, k = 0; i < c->n_in_fds; i++)
                if (c->in_fd_at[i] <= len)
                        job->fds[job->n_fds++] = c->in_fds[i];
                else {
                        c->in_fds[k] = c->in_fds[i];
                        c->in_fd_at[k++] = c->in_fd_at[i] - (len + 1);
                }
        c->n_in_fds -= job->n_fds;

        if (start + len + 1 == c->in + c->in_end) {
                /* The message is all there is: the job takes the buffer, and its charge. */
                job->buffer = TAKE_PTR(c->in);
                job->buffer_size = c->in_allocated;
                job->message = start;
                job->buffer_charged = c->in_allocated;
                c->charged -= c->in_allocated;
                c->in_start = c->in_end = c->in_allocated = c->in_scanned = 0;
        } else {
                /* More follows: copy this one out. The caller charges the copy. */
                job->buffer_size = message_buffer_size(len + 1);
                job->buffer = message_buffer_resize(NULL, 0, job->buffer_size);
                if (!job->buffer)
                        return -ENOMEM;
                memcpy(job->buffer, start, len + 1);
                job->message = job->buffer;
                job->copied = true;
                c->in_start += len + 1;
                c->in_scanned = 0;
        }

        /* A whole message is progress; the next one's clock starts now. */
        c->deadline_base = c->in_since = connection_now(c);

        *ret = TAKE_PTR(job);
        return 1;
}

/* Hand the next complete message to a worker when we may, or refuse what cannot be one. */
/* The stream is done, or given up on: its memory goes back. */
static void connection_end_stream(Connection *c) {
        c->stream = reply_stream_free(c->stream);
        connection_uncharge(c, c->stream_charged);
        c->stream_charged = 0;
}

/*
 * Queue the next parts of the reply being streamed while the client reads
 * the ones before: at most STREAM_LOW_WATER waits in the buffer. Returns
 * true when the stream is done and the next request may be handled.
 */
static bool connection_stream(Connection *c) {
        while (c->stream && connection_pending_output(c) < STREAM_LOW_WATER) {
                _cleanup_free_ char *msg = NULL;
                size_t size = 0;
                int r;

                r = reply_stream_next(c->stream, &msg, &size);
                if (r <= 0)
                        connection_end_stream(c);
                if (r < 0) {
                        /* Out of memory: an error ends the stream, and the connection with it. */
                        log_ratelimit(&c->manager->log_denied, c->manager->log_level, LOG_WARNING, r,
                                      "Failed to stream a reply to pid %d: %m", (int) c->peer.cred.pid);
                        connection_fail(c, PROTO_ERROR_INTERNAL, &(ProtoErrorDetails) {});
                        return false;
                }
                /* Charged while it waits, as any reply: connection_queue() charges what it copies. */
                if (connection_queue(c, msg, size) < 0) {
                        connection_end_stream(c);
                        c->closing = true;
                        return false;
                }
        }
        return !c->stream;
}

static void connection_process(Connection *c) {
        if (c->closing && c->stream)
                /* Whatever ended the connection ended the stream. */
                connection_end_stream(c);
        if (c->closing || c->job)
                return;
        if (c->stream && !connection_stream(c))
                return;

        if (connection_has_message(c)) {
                if (connection_pending_output(c) < OUTPUT_HIGH_WATER)
                        manager_schedule(c->manager, c);
                return;
        }

        if (connection_pending_input(c) > c->manager->config.max_message_size)
                connection_fail(c, PROTO_ERROR_REQUEST_TOO_LARGE, &(ProtoErrorDetails) {
                                .limit = c->manager->config.max_message_size,
                        });
        else if (c->eof && connection_pending_input(c) > 0)
                /* The peer is done sending: a rest without its NUL is a broken message. */
                connection_fail(c, PROTO_ERROR_INVALID_MESSAGE, &(ProtoErrorDetails) {
                                .reason = "connection closed inside a message",
                        });
}

void connection_job_done(Connection *c, Job *job) {
        Manager *m = c->manager;
        int r = 0;

        if (job->reply)
                r = connection_queue_reply(c, job);
        if (job->shutdown)
                c->closing = true;
        if (job->stream) {
                /* Its charge moves with it. */
                c->stream = TAKE_PTR(job->stream);
                c->stream_charged = job->stream_charged;
                c->charged += job->stream_charged;
                job->stream_charged = 0;
        }
        job_free(job);
        /* Memory came free: read again, and see whether the budget has room now. */
        c->memory_blocked = false;

        if (r >= 0) {
                connection_process(c);
                r = connection_update(c);
        }
        if (r < 0)
                manager_connection_closed(m, c);
}

/*
 * The budget has no room for more of the message being received. With
 * requests before it still to answer, wait for them: they give memory
 * back. Else refuse it; the rest of the stream cannot be told apart from
 * it, so the connection closes after the reply.
 */
static void connection_out_of_memory(Connection *c, size_t limit) {
        Manager *m = c->manager;

        if (c->job || c->ready || connection_has_message(c)) {
                c->memory_blocked = true;
                return;
        }

        manager_count(&m->refused_memory);
        log_ratelimit(&m->log_refused, m->log_level, LOG_WARNING, 0,
                      "Refusing a request of pid %d uid %u: memory limit of %zu bytes reached.",
                      (int) c->peer.cred.pid, (unsigned) c->peer.cred.uid, limit);
        connection_release_input(c);
        connection_fail(c, PROTO_ERROR_MEMORY_LIMIT, &(ProtoErrorDetails) { .limit = limit });
}

/*
 * Keep the fds a read brought (SCM_RIGHTS) for the message that holds @at,
 * the read's last byte: the kernel ends a read with the data the fds were
 * sent with. More than a connection may hold, or than the control buffer
 * took, end the stream: which message they were for is lost.
 */
static int connection_take_fds(Connection *c, struct msghdr *mh, size_t at) {
        size_t n = 0;
        int fds[MESSAGE_FDS_MAX];
        const char *reason = NULL;

        for (struct cmsghdr *cm = CMSG_FIRSTHDR(mh); cm; cm = CMSG_NXTHDR(mh, cm)) {
                size_t k;

                if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
                        continue;
                k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                for (size_t i = 0; i < k; i++) {
                        int fd;

                        memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
                        if (n < ELEMENTSOF(fds))
                                fds[n++] = fd;
                        else
                                safe_close(fd);
                }
        }

        if (mh->msg_flags & MSG_CTRUNC)
                reason = "too many file descriptors with one message";
        else if (n == 0)
                return 0;
        else if (n > MESSAGE_FDS_MAX - c->n_in_fds)
                reason = "too many file descriptors with messages not answered yet";
        else if (manager_take_fds(c->manager, c->user, n) < 0)
                reason = "too many file descriptors held for this user";
        if (reason) {
                for (size_t i = 0; i < n; i++)
                        safe_close(fds[i]);
                log_debug(c->manager->log_level, "Closing connection of pid %d: %s.", (int) c->peer.cred.pid,
                          reason);
                connection_fail(c, PROTO_ERROR_BAD_FILE_DESCRIPTOR, &(ProtoErrorDetails) { .reason = reason });
                return 0;
        }

        for (size_t i = 0; i < n; i++) {
                c->in_fds[c->n_in_fds] = fds[i];
                c->in_fd_at[c->n_in_fds++] = at;
        }
        return 0;
}

static int connection_read(Connection *c) {
        size_t limit = c->manager->config.max_message_size + 1, n_in;
        union {
                struct cmsghdr header;
                uint8_t buf[CMSG_SPACE(sizeof(int) * MESSAGE_FDS_MAX)];
        } control;
        struct msghdr mh;
        struct iovec iov;
        ssize_t n;
        int r;

        /* Enough for the largest message, or more than one: no more until it is handled. */
        if (connection_pending_input(c) >= limit || c->memory_blocked)
                return 0;

        /* Make room: first by moving what is left to the front, then by growing. */
        if (c->in_start > 0 && c->in_allocated - c->in_end < READ_CHUNK) {
                memmove(c->in, c->in + c->in_start, connection_pending_input(c));
                c->in_end -= c->in_start;
                c->in_start = 0;
        }
        if (c->in_allocated - c->in_end < READ_CHUNK && c->in_allocated < limit) {
                size_t want = message_buffer_size(MIN(MAX(c->in_allocated * 2, c->in_end + READ_CHUNK), limit));
                size_t over = 0;
                char *p;

                /* The first chunk is every connection's; beyond it, the budget decides. */
                if (connection_charge(c, want - c->in_allocated, want <= READ_CHUNK, &over) < 0) {
                        if (c->in_allocated > c->in_end)
                                goto read;      /* the room left, then */
                        connection_out_of_memory(c, over);
                        return 0;
                }
                p = message_buffer_resize(c->in, c->in_allocated, want);
                if (!p) {
                        connection_uncharge(c, want - c->in_allocated);
                        return -ENOMEM;
                }
                c->in = p;
                c->in_allocated = want;
        }

read:
        n_in = MIN(c->in_allocated - c->in_end, limit - connection_pending_input(c));
        if (n_in == 0)
                return 0;
        iov = (struct iovec) { .iov_base = c->in + c->in_end, .iov_len = n_in };
        mh = (struct msghdr) {
                .msg_iov = &iov,
                .msg_iovlen = 1,
                .msg_control = &control,
                .msg_controllen = sizeof(control),
        };
        n = recvmsg(c->fd, &mh, MSG_DONTWAIT|MSG_CMSG_CLOEXEC);
        if (n < 0) {
                if (errno == EAGAIN || errno == EINTR)
                        return 0;
                return -errno;
        }
        if (n > 0) {
                r = connection_take_fds(c, &mh, connection_pending_input(c) + (size_t) n - 1);
                if (r < 0)
                        return r;
        }
        if (n == 0) {
                c->eof = true;
                return 0;
        }

        if (connection_pending_input(c) == 0)
                /* The first byte of a message: it has the idle timeout to arrive whole. */
                c->in_since = connection_now(c);
        c->in_end += (size_t) n;
        return 0;
}

/*
 * The deadlines: from the last progress while the client owes us something
 * (the rest of a message, reading its replies) or has nothing going on;
 * and the request timeout while a worker runs its request, which is our
 * debt, not its. None while its request waits for a worker.
 */
int connection_update_timer(Connection *c) {
        const Manager *m = c->manager;
        uint64_t deadline = UINT64_MAX;
        int r;

        if (connection_pending_output(c) > 0 || (!c->job && !c->ready)) {
                uint64_t base = c->deadline_base;

                if (connection_pending_output(c) == 0 && connection_pending_input(c) > 0)
                        /* Stuck inside a message: more bytes of it are no progress. */
                        base = MAX(c->in_since, c->deadline_base);
                deadline = base + m->config.idle_timeout_usec;
        }
        if (c->job)
                deadline = MIN(deadline, c->request_since + m->config.request_timeout_usec);

        if (deadline == UINT64_MAX)
                return sd_event_source_set_enabled(c->timer_source, SD_EVENT_OFF);
        r = sd_event_source_set_time(c->timer_source, deadline);
        if (r < 0)
                return r;
        return sd_event_source_set_enabled(c->timer_source, SD_EVENT_ONESHOT);
}

/*
 * Watch the socket for @events in the manager's set; none takes it out: an
 * empty mask would still report a hang-up, again and again while a job runs.
 */
static int connection_watch(Connection *c, uint32_t events) {
        struct epoll_event ev = { .events = events, .data.ptr = c };
        int op;

        if (events == c->io_events)
                return 0;
        op = c->io_events == 0 ? EPOLL_CTL_ADD : events == 0 ? EPOLL_CTL_DEL : EPOLL_CTL_MOD;
        if (epoll_ctl(c->manager->connections_fd, op, c->fd, &ev) < 0)
                return -errno;
        c->io_events = events;
        return 0;
}

static int connection_update(Connection *c) {
        uint32_t events = 0;
        int r;

        if (!c->closing && !c->eof && !c->draining && !c->memory_blocked &&
            connection_pending_output(c) < OUTPUT_HIGH_WATER &&
            connection_pending_input(c) <= c->manager->config.max_message_size)
                events |= EPOLLIN;
        /* Output to write, or received requests still to answer once it has room. */
        if (connection_pending_output(c) > 0)
                events |= EPOLLOUT;

        /* Nothing to read, nothing to write, nothing running, nothing left to run: done. */
        if (events == 0 && !c->job && !c->ready && !c->stream &&
            (c->closing || !connection_has_message(c)))
                return -ECONNRESET;

        r = connection_watch(c, events);
        if (r < 0)
                return r;
        return connection_update_timer(c);
}

void connection_dispatch(Connection *c, uint32_t revents) {
        Manager *m = c->manager;
        int r;

        /* Watched for less since the batch was taken: what is no longer asked for waits. */
        if (c->io_events == 0)
                return;
        revents &= c->io_events | EPOLLHUP | EPOLLERR;

        /*
         * Hung up both ways: nothing we could answer would arrive. Its job, if
         * one runs, is dropped when it is done.
         */
        if (revents & EPOLLHUP) {
                r = -ECONNRESET;
                goto fail;
        }

        if (revents & (EPOLLOUT|EPOLLERR)) {
                r = connection_flush(c);
                if (r < 0)
                        goto fail;
        }

        if (revents & EPOLLIN) {
                r = connection_read(c);
                if (r < 0)
                        goto fail;
        }

        connection_process(c);

        r = connection_update(c);
        if (r < 0)
                goto fail;
        return;

fail:
        if (r != -ECONNRESET && r != -EPIPE)
                log_debug_errno(m->log_level, r, "Connection of pid %d closed: %m", (int) c->peer.cred.pid);
        manager_connection_closed(m, c);
}

int connection_drain(Connection *c) {
        c->draining = true;
        connection_process(c);
        return connection_update(c);
}

void connection_request_timeout(Connection *c) {
        Manager *m = c->manager;
        Job *job = c->job;
        int r = 0;

        /* Its reply is being sent: it is done, and about to come back. */
        if (!job_disarm_direct(job))
                return;
        c->job = NULL;

        /* It runs on, stuck in the kernel maybe: its reply goes nowhere, its user keeps paying for it. */
        job->connection = NULL;
        manager_count(&m->refused_timeouts);
        log_ratelimit(&m->log_refused, m->log_level, LOG_WARNING, 0,
                      "Request of pid %d uid %u not answered within %llu ms, giving up on it.",
                      (int) c->peer.cred.pid, (unsigned) c->peer.cred.uid,
                      (unsigned long long) (m->config.request_timeout_usec / 1000U));

        /* A oneway call is answered with nothing, not even this. */
        if (!__atomic_load_n(&job->oneway, __ATOMIC_ACQUIRE)) {
                _cleanup_free_ char *msg = NULL;
                size_t size;

                manager_count(&m->errors);
                r = proto_error_format(PROTO_ERROR_TIMED_OUT, &(ProtoErrorDetails) {
                                .limit = m->config.request_timeout_usec,
                        }, &msg, &size);
                if (r >= 0)
                        r = connection_queue(c, msg, size);
        }
        c->memory_blocked = false;
        if (r >= 0) {
                connection_process(c);
                r = connection_update(c);
        }
        if (r < 0)
                manager_connection_closed(m, c);
        manager_dispatch(m);
}

static int connection_on_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        Connection *c = userdata;
        Manager *m = c->manager;

        if (c->job && usec >= c->request_since + m->config.request_timeout_usec) {
                connection_request_timeout(c);
                return 0;
        }

        manager_count(&m->refused_idle);
        log_ratelimit(&m->log_refused, m->log_level, LOG_INFO, 0,
                      "Closing connection of pid %d uid %u: no progress for too long.",
                      (int) c->peer.cred.pid, (unsigned) c->peer.cred.uid);
        manager_connection_closed(m, c);
        manager_dispatch(m);
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
        NsId pidns;
        Connection *c;
        int r;

        c = calloc(1, sizeof(*c));
        if (!c) {
                safe_close(fd);
                return -ENOMEM;
        }
        c->manager = m;
        c->fd = fd;

        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &c->peer.cred, &len) < 0) {
                r = -errno;
                goto fail;
        }
        r = connection_peer_groups(fd, &groups, &n_groups);
        if (r < 0)
                goto fail;
        c->peer.privileged = policy_is_privileged(c->peer.cred.uid, c->peer.cred.gid, groups, n_groups,
                                                  manager_privileged_gid(m));
        c->peer.client = (PolicyClient) {
                .uid = c->peer.cred.uid,
                .gid = c->peer.cred.gid,
        };

        /*
         * The kernel gives the peer's pid as seen from our namespace: 0 if
         * it is not visible here. Its namespace decides what its pids mean;
         * a peer we cannot tie to one (it is gone) is treated as foreign.
         */
        c->peer.foreign_pidns = policy_peer_namespaces(fd, c->peer.cred.pid, &pidns, &c->peer.client.userns) < 0 ||
                                !ns_id_equal(&pidns, &m->pidns);
        if (c->peer.foreign_pidns) {
                /* Its pids are translated, if we know its namespace for sure; else they are refused. */
                r = policy_peer_pidns(fd, c->peer.cred.pid, &c->peer.pidns.ns, &c->peer.pidns.level);
                if (r >= 0 && (c->peer.pidns.level == 0 || !ns_id_equal(&c->peer.pidns.ns, &pidns)))
                        r = -ESRCH;
                if (r < 0) {
                        c->peer.pidns = (PidnsClient) {};
                        log_ratelimit(&m->log_refused, m->log_level, LOG_INFO, r,
                                      "Cannot tell the pid namespace of client pid %d uid %u, "
                                      "refusing its calls about pids: %m",
                                      (int) c->peer.cred.pid, (unsigned) c->peer.cred.uid);
                }
        }

        r = connection_watch(c, EPOLLIN);
        if (r < 0)
                goto fail;
        c->deadline_base = connection_now(c);
        r = sd_event_add_time(m->event, &c->timer_source, CLOCK_MONOTONIC,
                              c->deadline_base + m->config.idle_timeout_usec, 0, connection_on_timeout, c);
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
        /*
         * Out of the set before the socket closes: a worker may hold a dup of
         * it, which would keep it there. And out of the batch being dispatched.
         */
        if (c->io_events != 0)
                (void) epoll_ctl(c->manager->connections_fd, EPOLL_CTL_DEL, c->fd, NULL);
        for (size_t i = c->manager->connection_event_next; i < c->manager->n_connection_events; i++)
                if (c->manager->connection_events[i].data.ptr == c)
                        c->manager->connection_events[i].data.ptr = NULL;
        sd_event_source_disable_unref(c->timer_source);
        safe_close(c->fd);
        if (c->user)
                manager_uncharge(c->manager, c->user, c->peer.privileged, c->charged);
        connection_close_fds(c);
        reply_stream_free(c->stream);
        message_buffer_free(c->in, c->in_allocated);
        free(c->out);
        free(c);
        return NULL;
}
