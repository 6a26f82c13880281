/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * libvmaq: a blocking Varlink client for vmaqd. One call at a time per
 * connection: send the whole call, then read until the reply's NUL, both
 * bounded by the connection's timeout. Replies are decoded by proto/ and
 * copied into one allocation per result, so results do not depend on the
 * connection or on json-c.
 */

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "macro.h"
#include "varlink.h"
#include "vmaq-proto.h"
#include "vmaq.h"

/* A reply bigger than this is refused: far above what 100,000 addresses take (a few MiB). */
#define REPLY_SIZE_MAX (UINT64_C(256) * 1024 * 1024)
#define READ_CHUNK (64 * 1024)

/* Normalize asks for its answer in several replies ("more") above this many addresses. */
#define NORMALIZE_STREAM_MIN 16384U
/* A stream of more replies than this is refused: the daemon sends thousands of results in each. */
#define NORMALIZE_PARTS_MAX 65536U

struct vmaq_client {
        int fd;
        uint64_t timeout_usec;                  /* 0: wait forever */
        bool broken;                            /* the stream is out of step: only close is left */
        size_t max_addresses;                   /* the daemon's limit, once it refused more; 0: not known */
        char *in;                               /* read past the last reply: the next ones of a stream */
        size_t in_size;
        char errmsg[512];
};

static void json_object_putp(struct json_object **o) {
        json_object_put(*o);
}

/* Record why the call failed, and return @r. */
__attribute__((__format__(printf, 3, 4)))
static int fail(struct vmaq_client *c, int r, const char *format, ...) {
        va_list ap;

        va_start(ap, format);
        vsnprintf(c->errmsg, sizeof(c->errmsg), format, ap);
        va_end(ap);
        return r;
}

/* The stream can no longer be trusted: a reply may be half read, or a call half sent. */
__attribute__((__format__(printf, 3, 4)))
static int fail_broken(struct vmaq_client *c, int r, const char *format, ...) {
        va_list ap;

        c->broken = true;
        va_start(ap, format);
        vsnprintf(c->errmsg, sizeof(c->errmsg), format, ap);
        va_end(ap);
        return r;
}

static uint64_t now_usec(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000;
}

/*
 * Connect @fd to @sa, waiting at most @usec (0: forever) for room in the
 * listener's backlog. Not O_NONBLOCK and poll(): an AF_UNIX connect to a
 * full backlog then fails with EAGAIN at once, and poll() cannot wait for
 * room. A blocking connect waits for it, bounded by SO_SNDTIMEO, and fails
 * with EAGAIN when that runs out.
 */
static int connect_bounded(int fd, const struct sockaddr_un *sa, uint64_t usec) {
        uint64_t deadline = usec == 0 ? UINT64_MAX : now_usec() + MIN(usec, UINT64_MAX / 2);

        for (;;) {
                if (deadline != UINT64_MAX) {
                        uint64_t n = now_usec(), left;
                        struct timeval tv;

                        if (n >= deadline)
                                return -ETIMEDOUT;
                        left = deadline - n;
                        tv = (struct timeval) { .tv_sec = left / 1000000, .tv_usec = left % 1000000 };
                        if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0)
                                return negative_errno();
                }
                if (connect(fd, (const struct sockaddr *) sa, sizeof(*sa)) >= 0)
                        break;
                if (errno == EAGAIN)
                        return -ETIMEDOUT;
                /* Interrupted while waiting for room: nothing is set up yet, go on with what is left. */
                if (errno != EINTR)
                        return negative_errno();
        }

        /* Sends are bounded by poll(): leave no send timeout behind. */
        if (deadline != UINT64_MAX &&
            setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &(struct timeval) {}, sizeof(struct timeval)) < 0)
                return negative_errno();
        return 0;
}

_public_ int vmaq_connect(struct vmaq_client **ret, const char *path) {
        return vmaq_connect_timeout(ret, path, VMAQ_DEFAULT_TIMEOUT_USEC);
}

_public_ int vmaq_connect_timeout(struct vmaq_client **ret, const char *path, uint64_t usec) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        struct vmaq_client *c;
        _cleanup_close_ int fd = -EBADF;
        int r;

        if (!ret)
                return -EINVAL;
        *ret = NULL;

        if (!path) {
                /* Not for setuid programs: their environment is their caller's. */
                path = secure_getenv("VMAQ_SOCKET");
                if (!path || path[0] == '\0')
                        path = VMAQ_DEFAULT_SOCKET;
        }
        if (path[0] == '\0')
                return -EINVAL;
        if (strlen(path) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, path);

        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return negative_errno();
        r = connect_bounded(fd, &sa, usec);
        /* -EACCES is the daemon's refusal of a process: a socket we may not open is -EPERM. */
        if (IN_SET(r, -EACCES, -EPERM))
                return -EPERM;
        if (r < 0)
                return r;

        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->fd = TAKE_FD(fd);
        c->timeout_usec = usec;

        *ret = c;
        return 0;
}

_public_ void vmaq_close(struct vmaq_client *client) {
        if (!client)
                return;
        safe_close(client->fd);
        free(client->in);
        free(client);
}

_public_ int vmaq_set_timeout(struct vmaq_client *client, uint64_t usec) {
        if (!client)
                return -EINVAL;
        client->timeout_usec = usec;
        return 0;
}

_public_ const char *vmaq_errmsg(const struct vmaq_client *client) {
        if (!client)
                return "";
        return client->errmsg;
}

/* --- I/O ------------------------------------------------------------------ */

/*
 * Wait for @events on the socket until @deadline (UINT64_MAX: forever).
 * Returns the revents, or -ETIMEDOUT.
 */
static int wait_for(struct vmaq_client *c, short events, uint64_t deadline) {
        for (;;) {
                struct pollfd p = { .fd = c->fd, .events = events };
                int timeout_ms = -1, r;

                if (deadline != UINT64_MAX) {
                        uint64_t n = now_usec(), left;

                        if (n >= deadline)
                                return -ETIMEDOUT;
                        /* Round up: waking early would just poll again. */
                        left = (deadline - n + 999) / 1000;
                        timeout_ms = (int) MIN(left, (uint64_t) INT32_MAX);
                }

                r = poll(&p, 1, timeout_ms);
                if (r < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                if (r > 0)
                        return p.revents;
        }
}

static int timed_out(struct vmaq_client *c) {
        return fail_broken(c, -ETIMEDOUT, "no reply from the daemon within %llu ms",
                           (unsigned long long) (c->timeout_usec / 1000));
}

/*
 * Send @fd (-1: none) with the first bytes of @msg, as SCM_RIGHTS: the
 * daemon gives a message the fds that come with its bytes.
 */
static ssize_t send_with_fd(int sock, const char *msg, size_t size, int fd) {
        union {
                struct cmsghdr header;
                uint8_t buf[CMSG_SPACE(sizeof(int))];
        } control = {};
        struct iovec iov = { .iov_base = (char *) msg, .iov_len = size };
        struct msghdr mh = {
                .msg_iov = &iov,
                .msg_iovlen = 1,
        };
        struct cmsghdr *cm;

        if (fd < 0)
                return send(sock, msg, size, MSG_NOSIGNAL | MSG_DONTWAIT);

        mh.msg_control = &control;
        mh.msg_controllen = sizeof(control.buf);
        cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cm), &fd, sizeof(int));
        return sendmsg(sock, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
}

/* Send all of @msg, and @fd with it. -EPIPE when the daemon closed its end (its reply may still be readable). */
static int send_all(struct vmaq_client *c, const char *msg, size_t size, int fd, uint64_t deadline) {
        while (size > 0) {
                ssize_t n;
                int r;

                r = wait_for(c, POLLOUT, deadline);
                if (r == -ETIMEDOUT)
                        return timed_out(c);
                if (r < 0)
                        return fail_broken(c, r, "failed to wait for the daemon: %s", strerror(-r));

                /* MSG_NOSIGNAL: a daemon going away must not raise SIGPIPE in the caller. */
                n = send_with_fd(c->fd, msg, size, fd);
                if (n < 0) {
                        if (errno == EAGAIN || errno == EINTR)
                                continue;
                        if (errno == EPIPE || errno == ECONNRESET)
                                return -EPIPE;
                        r = negative_errno();
                        return fail_broken(c, r, "failed to send to the daemon: %s", strerror(-r));
                }
                msg += n;
                size -= (size_t) n;
                fd = -1;                /* sent with the first bytes */
        }
        return 0;
}

/*
 * Read one reply; *ret holds it NUL-terminated, *ret_size without the NUL.
 * With @stream, more replies may follow it: what was read of them is kept
 * for the next call. Without, nothing may follow.
 */
static int receive(struct vmaq_client *c, uint64_t deadline, bool stream, char **ret, size_t *ret_size) {
        _cleanup_free_ char *buf = TAKE_PTR(c->in);
        size_t size = c->in_size, allocated = c->in_size, scanned = 0;

        c->in_size = 0;
        for (;;) {
                char *nul = size > scanned ? memchr(buf + scanned, '\0', size - scanned) : NULL;
                ssize_t n;
                int r;

                if (nul) {
                        size_t len = (size_t) (nul - buf), rest = size - len - 1;

                        if (rest > 0) {
                                /* One call, one reply, unless it asked for a stream. */
                                if (!stream)
                                        return fail_broken(c, -EPROTO,
                                                           "invalid reply: unexpected bytes after the reply");
                                c->in = malloc(rest);
                                if (!c->in)
                                        return fail_broken(c, -ENOMEM, "out of memory");
                                memcpy(c->in, nul + 1, rest);
                                c->in_size = rest;
                        }
                        *ret_size = len;
                        *ret = TAKE_PTR(buf);
                        return 0;
                }
                scanned = size;

                if (allocated - size < READ_CHUNK) {
                        size_t want = MAX(allocated * 2, (size_t) READ_CHUNK * 2);
                        char *p;

                        want = MIN(want, (size_t) REPLY_SIZE_MAX + 1);
                        if (want <= size)
                                return fail_broken(c, -EPROTO, "reply too large (over %llu bytes)",
                                                   (unsigned long long) REPLY_SIZE_MAX);
                        p = realloc(buf, want);
                        if (!p)
                                return fail_broken(c, -ENOMEM, "out of memory");
                        buf = p;
                        allocated = want;
                }

                r = wait_for(c, POLLIN, deadline);
                if (r == -ETIMEDOUT)
                        return timed_out(c);
                if (r < 0)
                        return fail_broken(c, r, "failed to wait for the daemon: %s", strerror(-r));

                n = recv(c->fd, buf + size, allocated - size, MSG_DONTWAIT);
                if (n < 0) {
                        if (errno == EAGAIN || errno == EINTR)
                                continue;
                        if (errno == ECONNRESET || errno == EPIPE)
                                return fail_broken(c, -ECONNRESET, "the daemon closed the connection");
                        r = negative_errno();
                        return fail_broken(c, r, "failed to read from the daemon: %s", strerror(-r));
                }
                if (n == 0)
                        return fail_broken(c, -ECONNRESET, "the daemon closed the connection%s",
                                           size > 0 ? " in the middle of a reply" : "");
                size += (size_t) n;
        }
}

/*
 * Start a call: send @request whole, with @fd (-1: none), unless the
 * connection is unusable. *ret_deadline bounds its replies.
 */
static int call_send(struct vmaq_client *c, const char *request, size_t request_size, int fd,
                     uint64_t *ret_deadline) {
        int r;

        if (c->broken)
                return fail(c, -ENOTCONN, "the connection is unusable after an earlier failure");

        *ret_deadline = c->timeout_usec == 0 ? UINT64_MAX : now_usec() + MIN(c->timeout_usec, UINT64_MAX / 2);

        r = send_all(c, request, request_size, fd, *ret_deadline);
        /* On -EPIPE the daemon may have answered before closing (e.g. RequestTooLarge): read on. */
        if (r < 0 && r != -EPIPE)
                return r;
        return 0;
}

/*
 * Read the next reply of a call: its message in *ret_message and its
 * parameters (NULL: {}) in *ret_parameters; an error reply is turned into
 * its errno. With @ret_results, a Normalize reply's results are read from
 * the text into it (see proto_reply_parse()); the caller frees them. With
 * @ret_continues, the reply may be one of a stream.
 */
static int call_receive(struct vmaq_client *c, uint64_t deadline, ProtoResults *ret_results,
                        struct json_object **ret_message, struct json_object **ret_parameters,
                        bool *ret_continues) {
        _cleanup_(json_object_putp) struct json_object *message = NULL;
        _cleanup_free_ char *reply = NULL;
        struct json_object *reply_parameters = NULL;
        _cleanup_(proto_results_done) ProtoResults results = {};
        const char *error = NULL, *field = NULL;
        size_t reply_size = 0;
        ProtoErrorReply e;
        int r;

        r = receive(c, deadline, ret_continues, &reply, &reply_size);
        if (r < 0)
                return r;

        if (ret_results)
                r = proto_reply_parse(reply, reply_size, &message, &results);
        else
                r = varlink_json_parse(reply, reply_size, NULL, &message);
        if (r == -ENOMEM)
                return fail_broken(c, r, "out of memory");
        if (r < 0)
                return fail_broken(c, -EPROTO, "invalid reply: not valid JSON");

        r = proto_reply_split(message, &error, &reply_parameters, ret_continues, &field);
        if (r < 0)
                return fail_broken(c, -EPROTO, "invalid reply: bad '%s'", field);

        if (error) {
                /* An error ends a call, a stream too: nothing may follow it. */
                if (c->in_size > 0)
                        return fail_broken(c, -EPROTO, "invalid reply: unexpected bytes after an error");
                r = proto_error_reply_decode(error, reply_parameters, &e, &field);
                if (r < 0)
                        return fail(c, -EPROTO, "invalid error reply '%s': bad '%s'", error, field);
                /* Too many addresses: the limit, for calls to come in batches. */
                if (e.error == PROTO_ERROR_REQUEST_TOO_LARGE && e.details.parameter &&
                    strcmp(e.details.parameter, "addresses") == 0 && e.details.limit > 0 && e.details.limit <= SIZE_MAX)
                        c->max_addresses = (size_t) e.details.limit;
                return fail(c, e.error_errno, "%s", e.message);
        }

        if (ret_results) {
                *ret_results = results;
                results = (ProtoResults) {};
        }
        *ret_message = TAKE_PTR(message);
        *ret_parameters = reply_parameters;
        return 0;
}

/*
 * Send @parameters (taken over) as a call of @method and read the reply.
 * On success *ret_message is the parsed reply and *ret_parameters its
 * parameters (NULL: {}); an error reply is turned into its errno.
 */
static int call(struct vmaq_client *c, ProtoMethod method, struct json_object *parameters,
                struct json_object **ret_message, struct json_object **ret_parameters) {
        _cleanup_free_ char *request = NULL;
        size_t request_size = 0;
        uint64_t deadline;
        int r;

        r = proto_call_format(method, parameters, &request, &request_size);
        if (r < 0)
                return fail(c, r, "failed to format the call: %s", strerror(-r));

        r = call_send(c, request, request_size, -1, &deadline);
        if (r < 0)
                return r;
        return call_receive(c, deadline, NULL, ret_message, ret_parameters, NULL);
}

/* --- results ----------------------------------------------------------------- */

/* Builds one allocation: structs first, then bytes and strings. */
typedef struct Block {
        uint8_t *base;
        size_t size;                            /* counted first, then allocated */
        size_t used;
} Block;

static void block_count(Block *b, size_t n) {
        /* Saturate: the allocation then fails instead of overflowing. */
        b->size = n > SIZE_MAX - b->size ? SIZE_MAX : b->size + n;
}

static void block_count_array(Block *b, size_t n, size_t size) {
        size_t total;

        if (__builtin_mul_overflow(n, size, &total))
                total = SIZE_MAX;
        block_count(b, ALIGN_POW2(MIN(total, SIZE_MAX - 16), (size_t) 16));
}

static void block_count_string(Block *b, const char *s) {
        if (s)
                block_count(b, strlen(s) + 1);
}

static int block_alloc(Block *b) {
        if (b->size == SIZE_MAX)
                return -ENOMEM;
        b->base = calloc(1, MAX(b->size, (size_t) 1));
        return b->base ? 0 : -ENOMEM;
}

static void *block_take(Block *b, size_t n, size_t size) {
        void *p = b->base + b->used;

        b->used += ALIGN_POW2(n * size, (size_t) 16);
        return p;
}

static const char *block_string(Block *b, const char *s) {
        char *p;
        size_t n;

        if (!s)
                return NULL;
        n = strlen(s) + 1;
        p = memcpy(b->base + b->used, s, n);
        b->used += n;
        return p;
}

static const uint8_t *block_bytes(Block *b, const uint8_t *bytes, size_t n) {
        uint8_t *p;

        if (!bytes || n == 0)
                return NULL;
        p = memcpy(b->base + b->used, bytes, n);
        b->used += n;
        return p;
}

static enum vmaq_unknown unknown_from_string(const char *s) {
        if (!s)
                return VMAQ_NORMALIZED;
        if (strcmp(s, "unmapped") == 0)
                return VMAQ_UNKNOWN_UNMAPPED;
        if (strcmp(s, "anonymous") == 0)
                return VMAQ_UNKNOWN_ANONYMOUS;
        if (strcmp(s, "exited") == 0)
                return VMAQ_UNKNOWN_EXITED;
        return VMAQ_UNKNOWN_SPECIAL;    /* the decoder let nothing else through */
}

/*
 * Room for one more in the two arrays of a reply made of parts: the
 * messages, and the replies decoded from them (@reply_size bytes each).
 */
static int parts_reserve(struct json_object ***messages, void **replies, size_t reply_size, size_t n,
                         size_t *allocated) {
        struct json_object **m;
        void *r;
        size_t a;

        if (n < *allocated)
                return 0;
        a = MAX(*allocated * 2, (size_t) 4);
        m = reallocarray(*messages, a, sizeof(*m));
        if (!m)
                return -ENOMEM;
        *messages = m;
        r = reallocarray(*replies, a, reply_size);
        if (!r)
                return -ENOMEM;
        *replies = r;
        *allocated = a;
        return 0;
}

/* The replies of one Normalize call: one, or those of a stream, each part of the results and modules. */
/*
 * The replies of one answer: the parts of a stream, and of the calls of a
 * batch too large for one. A call's results number its modules from 0;
 * the modules of its parts follow each other.
 */
typedef struct Parts {
        ProtoNormalizeReply *replies;
        struct json_object **messages;          /* their strings point into these */
        size_t *bases;                          /* of each reply, its call's first module among all */
        size_t n, allocated, allocated_bases;
        size_t n_results, n_modules;
        size_t n_calls;
        size_t call_base;                       /* the current call's first module */
} Parts;

static void parts_done(Parts *p) {
        for (size_t i = 0; i < p->n; i++) {
                proto_normalize_reply_done(&p->replies[i]);
                json_object_put(p->messages[i]);
        }
        free(p->replies);
        free(p->messages);
        free(p->bases);
}

/* Start the replies of another call. */
static void parts_begin_call(Parts *p) {
        p->call_base = p->n_modules;
        p->n_calls++;
}

/* Take @message and @reply. */
static int parts_add(Parts *p, struct json_object *message, ProtoNormalizeReply *reply) {
        int r;

        r = parts_reserve(&p->messages, (void **) &p->replies, sizeof(*p->replies), p->n, &p->allocated);
        if (r < 0)
                return r;
        if (p->n == p->allocated_bases) {
                size_t *b = reallocarray(p->bases, p->allocated, sizeof(size_t));

                if (!b)
                        return -ENOMEM;
                p->bases = b;
                p->allocated_bases = p->allocated;
        }
        p->messages[p->n] = message;
        p->replies[p->n] = *reply;
        p->bases[p->n] = p->call_base;
        *reply = (ProtoNormalizeReply) {};
        p->n++;
        p->n_results += p->replies[p->n - 1].n_results;
        p->n_modules += p->replies[p->n - 1].n_modules;
        return 0;
}

/* The package note fields, in the order of ModuleExtra.package. */
static const char *const package_fields[] = {
        "type", "name", "version", "architecture", "os", "osVersion", "debugInfoUrl",
};

/* What a module and a result have beyond their public structs, for the accessors. */
typedef struct ModuleExtra {
        const char *host_path;
        enum vmaq_elf_type elf_type;
        const char *go_build_id;
        bool has_htlhash;
        uint8_t htlhash[VMAQ_HTLHASH_SIZE];
        const char *package[ELEMENTSOF(package_fields)];
} ModuleExtra;

typedef struct ResultExtra {
        uint64_t elf_address;
        int elf_error;                          /* 0: elf_address holds; else as vmaq_result_elf_address() */
} ResultExtra;

/* A normalization as libvmaq allocates it: the public struct first, then what only accessors show. */
typedef struct NormalizationFull {
        struct vmaq_normalization public;
        struct vmaq_result *results;
        struct vmaq_module *modules;
        ResultExtra *result_extras;
        ModuleExtra *module_extras;
} NormalizationFull;

/* Mappings likewise. */
typedef struct MappingsFull {
        struct vmaq_mappings public;
        struct vmaq_mapping *mappings;
} MappingsFull;

static const char *const *package_values(const ProtoPackage *pk, const char *ret[static ELEMENTSOF(package_fields)]) {
        ret[0] = pk->type;
        ret[1] = pk->name;
        ret[2] = pk->version;
        ret[3] = pk->architecture;
        ret[4] = pk->os;
        ret[5] = pk->os_version;
        ret[6] = pk->debug_info_url;
        return ret;
}

static enum vmaq_elf_type elf_type_from_string(const char *s) {
        if (!s)
                return VMAQ_ELF_UNKNOWN;
        if (strcmp(s, "exec") == 0)
                return VMAQ_ELF_EXEC;
        if (strcmp(s, "dyn") == 0)
                return VMAQ_ELF_DYN;
        return VMAQ_ELF_OTHER;
}

static int elf_error_from_result(const ProtoResult *res) {
        if (res->has_elf_address)
                return 0;
        if (!res->no_elf_address)
                return -ENODATA;
        if (strcmp(res->no_elf_address, "not_elf") == 0)
                return -ENOEXEC;
        if (strcmp(res->no_elf_address, "outside_load_segments") == 0)
                return -ERANGE;
        return -EIO;
}

static uint64_t module_hash(const ProtoModule *m) {
        uint64_t h = UINT64_C(14695981039346656037);
        const uint64_t v[] = { m->inode, m->dev_major, m->dev_minor, m->vdso, m->deleted };

        for (size_t i = 0; i < ELEMENTSOF(v); i++)
                h = (h ^ v[i]) * UINT64_C(1099511628211);
        for (const char *c = m->path; *c; c++)
                h = (h ^ (uint8_t) *c) * UINT64_C(1099511628211);
        return h;
}

static bool module_same(const ProtoModule *a, const ProtoModule *b) {
        return a->inode == b->inode && a->dev_major == b->dev_major && a->dev_minor == b->dev_minor &&
               a->vdso == b->vdso && a->deleted == b->deleted && strcmp(a->path, b->path) == 0;
}

/*
 * Where each module of @p, in reply order, goes in the answer: a file the
 * calls of a batch each named is one module of the answer. *ret_n is how
 * many there are. One call names each file once: nothing to merge then.
 */
static int modules_merge(const Parts *p, size_t **ret, size_t *ret_n) {
        _cleanup_free_ const ProtoModule **raw = NULL;
        _cleanup_free_ size_t *slots = NULL, *to = NULL;
        size_t n_slots = 16, n_final = 0, l = 0;

        to = calloc(MAX(p->n_modules, (size_t) 1), sizeof(size_t));
        if (!to)
                return -ENOMEM;
        if (p->n_calls <= 1) {
                for (size_t i = 0; i < p->n_modules; i++)
                        to[i] = i;
                *ret_n = p->n_modules;
                *ret = TAKE_PTR(to);
                return 0;
        }

        while (n_slots < 2 * p->n_modules)
                n_slots *= 2;
        raw = calloc(MAX(p->n_modules, (size_t) 1), sizeof(*raw));
        slots = malloc(n_slots * sizeof(size_t));
        if (!raw || !slots)
                return -ENOMEM;
        memset(slots, 0xff, n_slots * sizeof(size_t));

        for (size_t i = 0; i < p->n; i++)
                for (size_t j = 0; j < p->replies[i].n_modules; j++, l++) {
                        const ProtoModule *m = &p->replies[i].modules[j];
                        size_t s = (size_t) module_hash(m) & (n_slots - 1);

                        while (slots[s] != SIZE_MAX && !module_same(raw[slots[s]], m))
                                s = (s + 1) & (n_slots - 1);
                        if (slots[s] == SIZE_MAX) {
                                slots[s] = n_final;
                                raw[n_final++] = m;
                        }
                        to[l] = slots[s];
                }

        *ret_n = n_final;
        *ret = TAKE_PTR(to);
        return 0;
}

static int normalization_build(const Parts *p, const uint64_t *addresses, struct vmaq_normalization **ret) {
        _cleanup_free_ size_t *to = NULL;
        struct vmaq_normalization *n;
        NormalizationFull *full;
        struct vmaq_result *results;
        struct vmaq_module *modules;
        ModuleExtra *mx;
        ResultExtra *rx;
        size_t k = 0, l = 0, n_final = 0, next = 0, raw = 0;
        Block b = {};

        if (modules_merge(p, &to, &n_final) < 0)
                return -ENOMEM;

        block_count_array(&b, 1, sizeof(NormalizationFull));
        block_count_array(&b, p->n_results, sizeof(struct vmaq_result));
        block_count_array(&b, p->n_modules, sizeof(struct vmaq_module));
        block_count_array(&b, p->n_modules, sizeof(ModuleExtra));
        block_count_array(&b, p->n_results, sizeof(ResultExtra));
        for (size_t i = 0; i < p->n; i++)
                for (size_t j = 0; j < p->replies[i].n_modules; j++) {
                        const ProtoModule *m = &p->replies[i].modules[j];
                        const char *pkg[ELEMENTSOF(package_fields)];

                        block_count_string(&b, m->path);
                        block_count_string(&b, m->map_files);
                        block_count(&b, m->build_id_len);
                        block_count_string(&b, m->go_build_id);
                        block_count_string(&b, m->host_path);
                        if (m->has_package)
                                for (size_t f = 0; f < ELEMENTSOF(package_fields); f++)
                                        block_count_string(&b, package_values(&m->package, pkg)[f]);
                }
        if (block_alloc(&b) < 0)
                return -ENOMEM;

        full = block_take(&b, 1, sizeof(*full));
        n = &full->public;
        results = block_take(&b, p->n_results, sizeof(*results));
        modules = block_take(&b, p->n_modules, sizeof(*modules));
        mx = block_take(&b, p->n_modules, sizeof(*mx));
        rx = block_take(&b, p->n_results, sizeof(*rx));
        full->results = results;
        full->modules = modules;
        full->result_extras = rx;
        full->module_extras = mx;

        for (size_t i = 0; i < p->n; i++) {
                const ProtoNormalizeReply *reply = &p->replies[i];

                for (size_t j = 0; j < reply->n_results; j++, k++) {
                        results[k] = (struct vmaq_result) {
                                .address = addresses[k],
                                .unknown = unknown_from_string(reply->results[j].unknown),
                                .module = reply->results[j].unknown ? 0 :
                                          (uint32_t) to[p->bases[i] + reply->results[j].module],
                                .offset = reply->results[j].unknown ? 0 : reply->results[j].offset,
                        };
                        rx[k] = (ResultExtra) {
                                .elf_address = reply->results[j].elf_address,
                                .elf_error = elf_error_from_result(&reply->results[j]),
                        };
                }
                for (size_t j = 0; j < reply->n_modules; j++) {
                        const ProtoModule *m = &reply->modules[j];

                        /* One an earlier call named too, or the next of the answer. */
                        if (to[raw++] < next)
                                continue;
                        l = next++;
                        modules[l] = (struct vmaq_module) {
                                .path = block_string(&b, m->path),
                                .map_files = block_string(&b, m->map_files),
                                .build_id = block_bytes(&b, m->build_id, m->build_id_len),
                                .build_id_len = m->build_id ? m->build_id_len : 0,
                                .deleted = m->deleted,
                                .vdso = m->vdso,
                                .dev_major = m->dev_major,
                                .dev_minor = m->dev_minor,
                                .inode = m->inode,
                        };
                        mx[l] = (ModuleExtra) {
                                .host_path = block_string(&b, m->host_path),
                                .elf_type = elf_type_from_string(m->elf_type),
                                .go_build_id = block_string(&b, m->go_build_id),
                                .has_htlhash = m->has_htlhash,
                        };
                        memcpy(mx[l].htlhash, m->htlhash, sizeof(mx[l].htlhash));
                        if (m->has_package) {
                                const char *pkg[ELEMENTSOF(package_fields)];

                                package_values(&m->package, pkg);
                                for (size_t f = 0; f < ELEMENTSOF(package_fields); f++)
                                        mx[l].package[f] = block_string(&b, pkg[f]);
                        }
                }
        }

        *n = (struct vmaq_normalization) {
                .pid = p->replies[0].pid,
                .start_time = p->replies[0].start_time,
                .n_results = p->n_results,
                .n_modules = n_final,
                .exited = p->replies[0].exited,
        };
        *ret = n;
        return 0;
}

/* Normalize for the process @target names: @pid, or the pidfd or maps fd @fd, sent with the call. */
/* One call for @n_addresses addresses, its replies added to @parts. */
static int normalize_call(struct vmaq_client *client, ProtoTarget target, pid_t pid, int fd,
                          const uint64_t *addresses, size_t n_addresses, unsigned flags, uint64_t start_time,
                          Parts *p) {
        _cleanup_free_ char *request = NULL;
        size_t request_size = 0, results_before = p->n_results;
        uint64_t deadline;
        bool stream, continues = false;
        int r;

        parts_begin_call(p);

        /* A large batch comes back in parts: neither side holds the whole answer as text. */
        stream = n_addresses > NORMALIZE_STREAM_MIN;

        /* The daemon judges pid and count: the same rules, one place, one message. */
        r = proto_normalize_request_format(&(ProtoNormalizeRequest) {
                        .target = target,
                        .pid = pid,
                        .fd_index = 0,
                        .addresses = (uint64_t *) addresses,
                        .n_addresses = n_addresses,
                        .build_ids = !(flags & VMAQ_NORMALIZE_NO_BUILD_IDS),
                        .map_files = flags & VMAQ_NORMALIZE_MAP_FILES,
                        .htlhash = flags & VMAQ_NORMALIZE_HTLHASH,
                        .pin = flags & VMAQ_NORMALIZE_PIN,
                        .start_time = start_time,
                }, stream, &request, &request_size);
        if (r < 0)
                return fail(client, r, "out of memory");

        r = call_send(client, request, request_size, target == PROTO_TARGET_PID ? -1 : fd, &deadline);
        if (r < 0)
                return r;

        do {
                _cleanup_(json_object_putp) struct json_object *message = NULL;
                _cleanup_(proto_normalize_reply_done) ProtoNormalizeReply reply = {};
                _cleanup_(proto_results_done) ProtoResults results = {};
                struct json_object *parameters = NULL;
                const char *field = NULL;

                r = call_receive(client, deadline, &results, &message, &parameters, stream ? &continues : NULL);
                if (r < 0)
                        return r;

                /* A bad part in the middle of a stream leaves the rest of it unread. */
                r = proto_normalize_reply_decode(parameters, &results, p->n_modules - p->call_base, &reply, &field);
                if (r < 0)
                        client->broken = client->broken || continues;
                if (r == -ENOMEM)
                        return fail(client, r, "out of memory");
                if (r < 0)
                        return fail(client, -EPROTO, "invalid Normalize reply: bad '%s'", field);
                /* All parts, and all calls of a batch, are about one process. */
                if (p->n > 0 && (reply.pid != p->replies[0].pid ||
                                 reply.start_time != p->replies[0].start_time ||
                                 reply.exited != p->replies[0].exited))
                        return fail_broken(client, -EPROTO, "invalid Normalize reply: parts of different processes");
                if (continues && reply.n_results > n_addresses - (p->n_results - results_before))
                        return fail_broken(client, -EPROTO, "invalid Normalize reply: more results than addresses");
                if (continues && p->n + 1 >= NORMALIZE_PARTS_MAX)
                        return fail_broken(client, -EPROTO, "invalid Normalize reply: more than %u parts",
                                           NORMALIZE_PARTS_MAX);

                r = parts_add(p, message, &reply);
                if (r < 0)
                        return fail_broken(client, r, "out of memory");
                TAKE_PTR(message);
        } while (continues);

        if (p->n_results - results_before != n_addresses)
                return fail(client, -EPROTO, "invalid Normalize reply: %zu results for %zu addresses",
                            p->n_results - results_before, n_addresses);
        return 0;
}

static int normalize(struct vmaq_client *client, ProtoTarget target, pid_t pid, int fd, const uint64_t *addresses,
                     size_t n_addresses, unsigned flags, uint64_t start_time, struct vmaq_normalization **ret) {
        _cleanup_(parts_done) Parts parts = {};
        size_t limit;
        int r;

        if (!client)
                return -EINVAL;
        if (!ret || (!addresses && n_addresses > 0))
                return fail(client, -EINVAL, "invalid argument");
        if (flags & ~(unsigned) (VMAQ_NORMALIZE_NO_BUILD_IDS | VMAQ_NORMALIZE_MAP_FILES | VMAQ_NORMALIZE_PIN |
                                 VMAQ_NORMALIZE_HTLHASH))
                return fail(client, -EINVAL, "unknown flags 0x%x", flags);

        /* More addresses than the daemon takes in one call (it said so before): batches at once. */
        limit = client->max_addresses;
        if (limit == 0 || n_addresses <= limit) {
                r = normalize_call(client, target, pid, fd, addresses, n_addresses, flags, start_time, &parts);
                if (r != -E2BIG || client->max_addresses == 0 || client->max_addresses >= n_addresses) {
                        if (r < 0)
                                return r;
                        goto build;
                }
                /* Refused for its count, which told the limit: again, in batches. */
                parts_done(&parts);
                parts = (Parts) {};
                limit = client->max_addresses;
        }

        for (size_t off = 0; off < n_addresses; off += limit) {
                size_t n = MIN(limit, n_addresses - off);

                /* Each call after the first about the process the first answered for, not a later one of its pid. */
                if (off > 0 && target == PROTO_TARGET_PID) {
                        flags |= VMAQ_NORMALIZE_PIN;
                        start_time = parts.replies[0].start_time;
                }
                r = normalize_call(client, target, pid, fd, addresses + off, n, flags, start_time, &parts);
                if (r < 0)
                        return r;
        }

build:
        r = normalization_build(&parts, addresses, ret);
        if (r < 0)
                return fail(client, r, "out of memory");

        client->errmsg[0] = '\0';
        return 0;
}

_public_ int vmaq_normalize(struct vmaq_client *client, pid_t pid, const uint64_t *addresses, size_t n_addresses,
                            unsigned flags, uint64_t start_time, struct vmaq_normalization **ret) {
        return normalize(client, PROTO_TARGET_PID, pid, -1, addresses, n_addresses, flags, start_time, ret);
}

static int normalize_fd(struct vmaq_client *client, ProtoTarget target, int fd, const uint64_t *addresses,
                        size_t n_addresses, unsigned flags, struct vmaq_normalization **ret) {
        if (!client)
                return -EINVAL;
        if (fd < 0)
                return fail(client, -EBADF, "invalid file descriptor");
        /* The fd names one process already; there is no start time to pin. */
        if (flags & VMAQ_NORMALIZE_PIN)
                return fail(client, -EINVAL, "VMAQ_NORMALIZE_PIN needs a pid");
        return normalize(client, target, 0, fd, addresses, n_addresses, flags, 0, ret);
}

_public_ int vmaq_normalize_pidfd(struct vmaq_client *client, int pidfd, const uint64_t *addresses,
                                  size_t n_addresses, unsigned flags, struct vmaq_normalization **ret) {
        return normalize_fd(client, PROTO_TARGET_PIDFD, pidfd, addresses, n_addresses, flags, ret);
}

_public_ int vmaq_normalize_maps_fd(struct vmaq_client *client, int maps_fd, const uint64_t *addresses,
                                    size_t n_addresses, unsigned flags, struct vmaq_normalization **ret) {
        return normalize_fd(client, PROTO_TARGET_MAPS_FD, maps_fd, addresses, n_addresses, flags, ret);
}

_public_ int vmaq_normalize_self(struct vmaq_client *client, const uint64_t *addresses, size_t n_addresses,
                                 unsigned flags, struct vmaq_normalization **ret) {
        _cleanup_close_ int fd = -EBADF;

        if (!client)
                return -EINVAL;
        fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
                int r = negative_errno();

                return fail(client, r, "failed to open /proc/self/maps: %s", strerror(-r));
        }
        return vmaq_normalize_maps_fd(client, fd, addresses, n_addresses, flags, ret);
}

static const NormalizationFull *normalization_full(const struct vmaq_normalization *n) {
        return (const NormalizationFull *) n;
}

_public_ const struct vmaq_result *vmaq_result_get(const struct vmaq_normalization *n, size_t result) {
        if (!n || result >= n->n_results)
                return NULL;
        return &normalization_full(n)->results[result];
}

_public_ const struct vmaq_module *vmaq_module_get(const struct vmaq_normalization *n, size_t module) {
        if (!n || module >= n->n_modules)
                return NULL;
        return &normalization_full(n)->modules[module];
}

static const ModuleExtra *module_extra(const struct vmaq_normalization *n, size_t module) {
        if (!n || module >= n->n_modules)
                return NULL;
        return &normalization_full(n)->module_extras[module];
}

_public_ enum vmaq_elf_type vmaq_module_elf_type(const struct vmaq_normalization *n, size_t module) {
        const ModuleExtra *x = module_extra(n, module);

        return x ? x->elf_type : VMAQ_ELF_UNKNOWN;
}

_public_ const char *vmaq_module_host_path(const struct vmaq_normalization *n, size_t module) {
        const ModuleExtra *x = module_extra(n, module);

        return x ? x->host_path : NULL;
}

_public_ const char *vmaq_module_go_build_id(const struct vmaq_normalization *n, size_t module) {
        const ModuleExtra *x = module_extra(n, module);

        return x ? x->go_build_id : NULL;
}

_public_ int vmaq_module_htlhash(const struct vmaq_normalization *n, size_t module, uint8_t ret[VMAQ_HTLHASH_SIZE]) {
        const ModuleExtra *x = module_extra(n, module);

        if (!x || !ret)
                return -EINVAL;
        if (!x->has_htlhash)
                return -ENODATA;
        memcpy(ret, x->htlhash, VMAQ_HTLHASH_SIZE);
        return 0;
}

_public_ const char *vmaq_module_package(const struct vmaq_normalization *n, size_t module, const char *field) {
        const ModuleExtra *x = module_extra(n, module);

        if (!x || !field)
                return NULL;
        for (size_t f = 0; f < ELEMENTSOF(package_fields); f++)
                if (strcmp(field, package_fields[f]) == 0)
                        return x->package[f];
        return NULL;
}

_public_ int vmaq_result_elf_address(const struct vmaq_normalization *n, size_t result, uint64_t *ret) {
        const ResultExtra *x;

        if (!n || !ret || result >= n->n_results)
                return -EINVAL;
        x = &normalization_full(n)->result_extras[result];
        if (x->elf_error < 0)
                return x->elf_error;
        *ret = x->elf_address;
        return 0;
}

_public_ void vmaq_normalization_free(struct vmaq_normalization *n) {
        free(n);
}

static int mappings_build(const ProtoListMappingsReply *reply, struct vmaq_mappings **ret) {
        struct vmaq_mapping *mappings;
        MappingsFull *m;
        Block b = {};

        block_count_array(&b, 1, sizeof(MappingsFull));
        block_count_array(&b, reply->n_mappings, sizeof(struct vmaq_mapping));
        for (size_t i = 0; i < reply->n_mappings; i++) {
                block_count_string(&b, reply->mappings[i].path);
                block_count_string(&b, reply->mappings[i].kind);
                block_count(&b, reply->mappings[i].build_id_len);
        }
        if (block_alloc(&b) < 0)
                return -ENOMEM;

        m = block_take(&b, 1, sizeof(*m));
        mappings = block_take(&b, reply->n_mappings, sizeof(*mappings));

        for (size_t i = 0; i < reply->n_mappings; i++) {
                const ProtoMapping *p = &reply->mappings[i];

                mappings[i] = (struct vmaq_mapping) {
                        .start = p->start,
                        .end = p->end,
                        .offset = p->offset,
                        .inode = p->inode,
                        .dev_major = p->dev_major,
                        .dev_minor = p->dev_minor,
                        .path = block_string(&b, p->path),
                        .kind = block_string(&b, p->kind),
                        .deleted = p->deleted,
                        .build_id = block_bytes(&b, p->build_id, p->build_id_len),
                        .build_id_len = p->build_id ? p->build_id_len : 0,
                };
                /* The decoder checked: exactly 4 characters. */
                memcpy(mappings[i].perms, p->perms, 4);
        }

        *m = (MappingsFull) {
                .public = {
                        .pid = reply->pid,
                        .start_time = reply->start_time,
                        .n_mappings = reply->n_mappings,
                },
                .mappings = mappings,
        };
        *ret = &m->public;
        return 0;
}

#define LIST_PARTS_MAX 65536U

/* The replies of one listing, kept until their mappings are copied out. */
typedef struct Pages {
        struct json_object **messages;
        ProtoListMappingsReply *replies;
        size_t n, allocated, n_mappings;
} Pages;

static void pages_done(Pages *p) {
        for (size_t i = 0; i < p->n; i++) {
                proto_list_mappings_reply_done(&p->replies[i]);
                json_object_put(p->messages[i]);
        }
        free(p->replies);
        free(p->messages);
}

static int pages_add(Pages *p, struct json_object *message, const ProtoListMappingsReply *reply) {
        int r;

        r = parts_reserve(&p->messages, (void **) &p->replies, sizeof(*p->replies), p->n, &p->allocated);
        if (r < 0)
                return r;
        p->messages[p->n] = message;
        p->replies[p->n] = *reply;
        p->n++;
        p->n_mappings += reply->n_mappings;
        return 0;
}

/* All pages as one reply, for mappings_build(). The mappings array is the caller's to free. */
static int pages_join(const Pages *p, ProtoListMappingsReply *ret, ProtoMapping **ret_mappings) {
        ProtoMapping *all;
        size_t k = 0;

        all = calloc(MAX(p->n_mappings, (size_t) 1), sizeof(*all));
        if (!all)
                return -ENOMEM;
        for (size_t i = 0; i < p->n; i++)
                for (size_t j = 0; j < p->replies[i].n_mappings; j++)
                        all[k++] = p->replies[i].mappings[j];

        *ret = (ProtoListMappingsReply) {
                .pid = p->replies[0].pid,
                .start_time = p->replies[0].start_time,
                .n_mappings = p->n_mappings,
                .mappings = all,
        };
        *ret_mappings = all;
        return 0;
}

/* With @pin, the first part too is pinned to @start_time. */
static int list_mappings(struct vmaq_client *client, pid_t pid, unsigned flags, bool pin, uint64_t start_time,
                         struct vmaq_mappings **ret) {
        _cleanup_(pages_done) Pages pages = {};
        _cleanup_free_ ProtoMapping *all = NULL;
        ProtoListMappingsReply joined;
        uint64_t start = 0;
        int r;

        if (!client)
                return -EINVAL;
        if (!ret)
                return fail(client, -EINVAL, "invalid argument");
        if (flags & ~(unsigned) (VMAQ_LIST_EXEC_ONLY | VMAQ_LIST_NO_BUILD_IDS))
                return fail(client, -EINVAL, "unknown flags 0x%x", flags);

        /*
         * The daemon answers a large map in parts, each saying where the
         * next begins; all but the first are pinned to the process the
         * first one described.
         */
        for (;;) {
                _cleanup_(json_object_putp) struct json_object *message = NULL;
                struct json_object *parameters = NULL, *reply_parameters = NULL;
                ProtoListMappingsReply reply = {};
                const char *field = NULL;

                r = proto_list_mappings_request_encode(&(ProtoListMappingsRequest) {
                                .pid = pid,
                                .exec_only = flags & VMAQ_LIST_EXEC_ONLY,
                                .build_ids = !(flags & VMAQ_LIST_NO_BUILD_IDS),
                                .pin = pin || pages.n > 0,
                                .start_time = pages.n > 0 ? pages.replies[0].start_time : start_time,
                                .start = start,
                        }, &parameters);
                if (r < 0)
                        return fail(client, r, "out of memory");

                r = call(client, PROTO_METHOD_LIST_MAPPINGS, parameters, &message, &reply_parameters);
                if (r < 0)
                        return r;

                r = proto_list_mappings_reply_decode(reply_parameters, &reply, &field);
                if (r == -ENOMEM)
                        return fail(client, r, "out of memory");
                if (r < 0)
                        return fail(client, -EPROTO, "invalid ListMappings reply: bad '%s'", field);
                if (reply.has_next && (reply.next <= start || reply.n_mappings == 0)) {
                        proto_list_mappings_reply_done(&reply);
                        return fail(client, -EPROTO, "invalid ListMappings reply: 'next' makes no progress");
                }
                r = pages_add(&pages, message, &reply);
                if (r < 0) {
                        proto_list_mappings_reply_done(&reply);
                        return fail(client, r, "out of memory");
                }
                TAKE_PTR(message);
                if (!reply.has_next)
                        break;
                /* Each part holds a mapping at least, and no map has more than a few million. */
                if (pages.n >= LIST_PARTS_MAX)
                        return fail(client, -EPROTO, "invalid ListMappings reply: more than %u parts",
                                    LIST_PARTS_MAX);
                start = reply.next;
        }

        r = pages_join(&pages, &joined, &all);
        if (r >= 0)
                r = mappings_build(&joined, ret);
        if (r < 0)
                return fail(client, r, "out of memory");

        client->errmsg[0] = '\0';
        return 0;
}

_public_ int vmaq_list_mappings(struct vmaq_client *client, pid_t pid, unsigned flags, struct vmaq_mappings **ret) {
        return list_mappings(client, pid, flags, false, 0, ret);
}

_public_ int vmaq_list_mappings_pinned(struct vmaq_client *client, pid_t pid, unsigned flags, uint64_t start_time,
                                       struct vmaq_mappings **ret) {
        return list_mappings(client, pid, flags, true, start_time, ret);
}

_public_ const struct vmaq_mapping *vmaq_mapping_get(const struct vmaq_mappings *m, size_t mapping) {
        if (!m || mapping >= m->n_mappings)
                return NULL;
        return &((const MappingsFull *) m)->mappings[mapping];
}

_public_ void vmaq_mappings_free(struct vmaq_mappings *m) {
        free(m);
}

_public_ int vmaq_get_status(struct vmaq_client *client, struct vmaq_status **ret) {
        _cleanup_(json_object_putp) struct json_object *message = NULL;
        struct json_object *reply_parameters = NULL;
        struct vmaq_status *s;
        const char *field = NULL;
        ProtoStatus st = {};
        Block b = {};
        int r;

        if (!client)
                return -EINVAL;
        if (!ret)
                return fail(client, -EINVAL, "invalid argument");

        r = call(client, PROTO_METHOD_GET_STATUS, NULL, &message, &reply_parameters);
        if (r < 0)
                return r;

        r = proto_status_decode(reply_parameters, &st, &field);
        if (r < 0)
                return fail(client, -EPROTO, "invalid GetStatus reply: bad '%s'", field);

        block_count_array(&b, 1, sizeof(struct vmaq_status));
        block_count_string(&b, st.version);
        block_count_string(&b, st.backend);
        if (block_alloc(&b) < 0)
                return fail(client, -ENOMEM, "out of memory");

        s = block_take(&b, 1, sizeof(*s));
        *s = (struct vmaq_status) {
                .version = block_string(&b, st.version),
                .backend = block_string(&b, st.backend),
                .uptime_usec = st.uptime_usec,
                .connections = st.connections,
                .connections_max = st.connections_max,
                .proc_cache_size = st.proc_cache_size,
                .proc_cache_max = st.proc_cache_max,
                .proc_cache_hits = st.proc_cache_hits,
                .proc_cache_misses = st.proc_cache_misses,
                .build_id_cache_size = st.build_id_cache_size,
                .build_id_cache_max = st.build_id_cache_max,
                .build_id_cache_hits = st.build_id_cache_hits,
                .build_id_cache_misses = st.build_id_cache_misses,
                .requests = st.requests,
                .errors = st.errors,
                .denied = st.denied,
                .connections_per_user_max = st.connections_per_user_max,
                .workers_used = st.workers_used,
                .workers_max = st.workers_max,
                .memory_used = st.memory_used,
                .memory_max = st.memory_max,
                .refused_connections = st.refused_connections,
                .refused_user_connections = st.refused_user_connections,
                .refused_memory = st.refused_memory,
                .refused_timeouts = st.refused_timeouts,
                .refused_idle = st.refused_idle,
                .snapshots_held = st.snapshots_held,
                .snapshots_exited = st.snapshots_exited,
                .snapshot_memory_used = st.snapshot_memory_used,
                .snapshot_memory_max = st.snapshot_memory_max,
                .max_addresses = st.max_addresses,
                .max_message_size = st.max_message_size,
                .max_reply_size = st.max_reply_size,
        };

        *ret = s;
        client->errmsg[0] = '\0';
        return 0;
}

_public_ void vmaq_status_free(struct vmaq_status *s) {
        free(s);
}

_public_ int vmaq_track(struct vmaq_client *client, pid_t pid, uint64_t start_time, uint64_t *ret_start_time) {
        _cleanup_(json_object_putp) struct json_object *message = NULL;
        struct json_object *parameters = NULL, *reply_parameters = NULL;
        const char *field = NULL;
        uint64_t got = 0;
        pid_t got_pid = 0;
        int r;

        if (!client)
                return -EINVAL;

        r = proto_track_request_encode(&(ProtoTrackRequest) {
                        .pid = pid,
                        .pin = start_time != 0,
                        .start_time = start_time,
                }, &parameters);
        if (r < 0)
                return fail(client, r, "out of memory");

        r = call(client, PROTO_METHOD_TRACK, parameters, &message, &reply_parameters);
        if (r < 0)
                return r;

        r = proto_track_reply_decode(reply_parameters, &got_pid, &got, &field);
        if (r < 0)
                return fail(client, -EPROTO, "invalid Track reply: bad '%s'", field);
        if (got_pid != pid)
                return fail(client, -EPROTO, "invalid Track reply: about pid %d, not %d", (int) got_pid, (int) pid);

        if (ret_start_time)
                *ret_start_time = got;
        client->errmsg[0] = '\0';
        return 0;
}
