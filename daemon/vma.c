/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <linux/magic.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#include "macro.h"
#include "parse-util.h"
#include "procmap-query.h"
#include "string-table.h"
#include "vma.h"

/*
 * The text backend reads the maps file in chunks of this size. A line is
 * at most the fixed fields plus a path of PATH_MAX bytes in which the
 * kernel may have escaped every byte to four ("\012"), so a line always
 * fits.
 */
#define TEXT_BUFFER_SIZE VMA_TEXT_READ_SIZE
#define DELETED_SUFFIX " (deleted)"

struct VmaSource {
        int fd;
        VmaBackend backend;
        VmaBackend pass;                /* what the current pass reads */
        uint64_t max_text_bytes;        /* of the current text pass; 0: no limit */
        VmaPassStats stats;             /* of the current pass */
        size_t n_ioctls_ever;           /* counted finds over all passes, to pick those timed */

        /*
         * What a pass needs, allocated by it and dropped by
         * vma_source_release(), so that a cached source is small.
         * ioctl: the kernel writes the VMA's name here, PATH_MAX bytes.
         */
        char *name;

        /* text: a window on the file, and the line last parsed */
        char *buf;
        size_t buf_len;                 /* bytes of buf that hold data */
        size_t buf_pos;                 /* start of the next unparsed line */
        bool eof;
        bool have_line;                 /* line holds the last parsed line */
        Vma line;
        uint64_t floor;                 /* no VMA below this was skipped */
        uint64_t buf_base;              /* file offset of buf[0] */
        size_t line_no;                 /* lines parsed in this pass */
        VmaTextProfile *profile;        /* what text passes saw, allocated by the first */
};

static const char *const vma_backend_table[_VMA_BACKEND_MAX] = {
        [VMA_BACKEND_AUTO]  = "auto",
        [VMA_BACKEND_IOCTL] = "ioctl",
        [VMA_BACKEND_TEXT]  = "text",
};

DEFINE_STRING_TABLE_LOOKUP(vma_backend, VmaBackend);

unsigned vma_flags_to_perms(uint64_t vma_flags) {
        unsigned perms = 0;

        if (vma_flags & PROCMAP_QUERY_VMA_READABLE)
                perms |= VMA_PERM_READ;
        if (vma_flags & PROCMAP_QUERY_VMA_WRITABLE)
                perms |= VMA_PERM_WRITE;
        if (vma_flags & PROCMAP_QUERY_VMA_EXECUTABLE)
                perms |= VMA_PERM_EXEC;
        if (vma_flags & PROCMAP_QUERY_VMA_SHARED)
                perms |= VMA_PERM_SHARED;
        return perms;
}

static bool startswith(const char *s, const char *prefix) {
        return strncmp(s, prefix, strlen(prefix)) == 0;
}

VmaKind vma_kind_from_name(const char *name, uint64_t inode) {
        if (name[0] == '\0')
                return VMA_KIND_ANONYMOUS;
        if (name[0] == '/')
                return VMA_KIND_FILE;
        if (strcmp(name, "[vdso]") == 0)
                return VMA_KIND_VDSO;
        /* Names given with prctl(PR_SET_VMA_ANON_NAME) label anonymous memory. */
        if (startswith(name, "[anon:") || startswith(name, "[anon_shmem:"))
                return VMA_KIND_ANONYMOUS;
        /* "[heap]", "[stack]", "[vvar]", "anon_inode:[perf_event]", ... */
        return VMA_KIND_SPECIAL;
}

/*
 * Remove the " (deleted)" suffix the kernel appends to unlinked files, and
 * classify. Shared anonymous memory is backed by an unlinked "/dev/zero"
 * shmem file; it has no file a symbolizer could open, so it is anonymous.
 */
static void vma_finish_name(Vma *v, char *name, size_t len) {
        v->deleted = false;
        if (name[0] == '/' && len >= strlen(DELETED_SUFFIX) &&
            memcmp(name + len - strlen(DELETED_SUFFIX), DELETED_SUFFIX, strlen(DELETED_SUFFIX)) == 0) {
                len -= strlen(DELETED_SUFFIX);
                name[len] = '\0';
                v->deleted = true;
        }

        v->name = name;
        v->name_len = len;
        v->kind = vma_kind_from_name(name, v->inode);
        if (v->kind == VMA_KIND_FILE && v->deleted && strcmp(name, "/dev/zero") == 0)
                v->kind = VMA_KIND_ANONYMOUS;
}

/* Parse the field at *p up to @delim (or the end for '\0'), and step past the delimiter. */
static int take_number(const char **p, const char *e, char delim, unsigned base, uint64_t *ret) {
        const char *d;

        if (delim == '\0')
                d = memchr(*p, ' ', e - *p) ?: e;
        else {
                d = memchr(*p, delim, e - *p);
                if (!d)
                        return -EBADMSG;
        }

        if (parse_u64_n(*p, d - *p, base, ret) < 0)
                return -EBADMSG;

        *p = d < e ? d + 1 : e;
        return 0;
}

/* Undo the kernel's escaping of newlines in paths ("\012"), in place. Returns the new length. */
static size_t unescape_name(char *name, size_t len) {
        size_t i = 0, j = 0;

        while (i < len) {
                if (len - i >= 4 && memcmp(name + i, "\\012", 4) == 0) {
                        name[j++] = '\n';
                        i += 4;
                } else
                        name[j++] = name[i++];
        }
        return j;
}

int vma_parse_maps_line(char *line, size_t len, Vma *ret) {
        const char *p = line, *e = line + len;
        uint64_t start, end, offset, major, minor, inode;
        unsigned perms = 0;
        Vma v = {};
        char *name;

        /* "start-end rwxp offset major:minor inode [padding name]" */
        if (take_number(&p, e, '-', 16, &start) < 0 ||
            take_number(&p, e, ' ', 16, &end) < 0)
                return -EBADMSG;
        if (start >= end)
                return -EBADMSG;

        if (e - p < 5 || p[4] != ' ')
                return -EBADMSG;
        /* "rwx" map to VMA_PERM_READ, _WRITE and _EXEC, in this order. */
        for (unsigned i = 0; i < 3; i++) {
                if (p[i] == "rwx"[i])
                        perms |= 1U << i;
                else if (p[i] != '-')
                        return -EBADMSG;
        }
        if (p[3] == 's')
                perms |= VMA_PERM_SHARED;
        else if (p[3] != 'p')
                return -EBADMSG;
        p += 5;

        if (take_number(&p, e, ' ', 16, &offset) < 0 ||
            take_number(&p, e, ':', 16, &major) < 0 ||
            take_number(&p, e, ' ', 16, &minor) < 0 ||
            take_number(&p, e, '\0', 10, &inode) < 0)
                return -EBADMSG;
        if (major > UINT32_MAX || minor > UINT32_MAX)
                return -EBADMSG;

        while (p < e && *p == ' ')
                p++;

        v = (Vma) {
                .start = start,
                .end = end,
                .offset = offset,
                .inode = inode,
                .dev_major = (uint32_t) major,
                .dev_minor = (uint32_t) minor,
                .perms = perms,
        };

        name = line + (p - line);
        len = unescape_name(name, e - p);
        name[len] = '\0';
        /* The kernel never prints a NUL, nor a name longer than a path. */
        if (strlen(name) != len || len >= PATH_MAX)
                return -EBADMSG;
        vma_finish_name(&v, name, len);

        *ret = v;
        return 0;
}

static int procmap_query(int fd, uint64_t addr, char *name, size_t name_size, unsigned flags, Vma *ret) {
        struct procmap_query q = {
                .size = sizeof(q),
                .query_flags = PROCMAP_QUERY_COVERING_OR_NEXT_VMA,
                .query_addr = addr,
                .vma_name_addr = (uintptr_t) name,
                .vma_name_size = name ? name_size : 0,
        };
        /*
         * The kernel writes the build ID before we know the call succeeded:
         * into a buffer of our own, so that *ret is written only on success.
         * Zeroed because tools like valgrind cannot know the kernel fills it.
         */
        uint8_t build_id[BUILD_ID_MAX] = {};
        Vma v = {};

        if (flags & VMA_FIND_BUILD_ID) {
                q.build_id_addr = (uintptr_t) build_id;
                q.build_id_size = sizeof(build_id);
        }

        if (ioctl(fd, PROCMAP_QUERY, &q) < 0) {
                if (errno == ENOENT)
                        return 0;
                if (errno == ENOTTY)
                        return -EOPNOTSUPP;
                return -errno;
        }

        if (!name)
                return 1;

        /* vma_name_size counts the terminating NUL; 0 means no name. */
        if (q.vma_name_size > name_size)
                return -EBADMSG;
        name[q.vma_name_size > 0 ? q.vma_name_size - 1 : 0] = '\0';

        v = (Vma) {
                .start = q.vma_start,
                .end = q.vma_end,
                .offset = q.vma_offset,
                .inode = q.inode,
                .dev_major = q.dev_major,
                .dev_minor = q.dev_minor,
                .perms = vma_flags_to_perms(q.vma_flags),
        };
        if (flags & VMA_FIND_BUILD_ID) {
                if (q.build_id_size > sizeof(v.build_id))
                        return -EBADMSG;
                memcpy(v.build_id, build_id, q.build_id_size);
                v.build_id_len = q.build_id_size;
        }
        vma_finish_name(&v, name, strlen(name));

        *ret = v;
        return 1;
}

int vma_backend_probe(void) {
        _cleanup_close_ int fd = -EBADF;
        Vma v;
        int r;

        fd = open("/proc/self/maps", O_RDONLY|O_CLOEXEC);
        if (fd < 0)
                return -errno;

        r = procmap_query(fd, 0, NULL, 0, 0, &v);
        if (r == -EOPNOTSUPP)
                return 0;
        if (r < 0)
                return r;
        return 1;
}

/* Whether the link target @path of an fd names a maps file of a process or thread: ".../N/maps". */
static bool path_is_maps(const char *path) {
        const char *slash, *digits;
        size_t n;

        n = strlen(path);
        if (n < strlen("/1/maps") || strcmp(path + n - strlen("/maps"), "/maps") != 0)
                return false;
        slash = path + n - strlen("/maps");
        digits = slash;
        while (digits > path && digits[-1] >= '0' && digits[-1] <= '9')
                digits--;
        return digits < slash && digits > path && digits[-1] == '/';
}

int vma_check_maps_fd(int fd, VmaBackend backend) {
        char link[sizeof("/proc/self/fd/") + 3 * sizeof(int)], path[PATH_MAX];
        struct statfs sfs;
        struct stat st;
        ssize_t n;
        Vma v;
        int flags, r;

        if (fd < 0)
                return -EBADF;

        /* The kernel's name for what the fd is: its path, or "socket:[...]", "pipe:[...]". */
        snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
        n = readlink(link, path, sizeof(path) - 1);
        if (n < 0)
                return -errno;
        path[n] = '\0';

        flags = fcntl(fd, F_GETFL);
        if (flags < 0)
                return -errno;
        if ((flags & O_PATH) || (flags & O_ACCMODE) == O_WRONLY)
                return -EBADF;
        if (fstatfs(fd, &sfs) < 0)
                return -errno;
        if (sfs.f_type != PROC_SUPER_MAGIC)
                return -EMEDIUMTYPE;
        if (fstat(fd, &st) < 0)
                return -errno;
        /* Another file of /proc: status, smaps, a directory... */
        if (!S_ISREG(st.st_mode) || !path_is_maps(path))
                return -ENOTTY;

        if (backend != VMA_BACKEND_IOCTL)
                return 0;
        /* The ioctl answers only on a maps file, and only while its address space lives. */
        r = procmap_query(fd, 0, NULL, 0, 0, &v);
        if (r == -EOPNOTSUPP)
                return -ENOTTY;
        return r < 0 ? r : 0;
}

int vma_backend_resolve(VmaBackend requested, VmaBackend *ret) {
        int r;

        switch (requested) {
        case VMA_BACKEND_TEXT:
                *ret = VMA_BACKEND_TEXT;
                return 0;
        case VMA_BACKEND_AUTO:
        case VMA_BACKEND_IOCTL:
                r = vma_backend_probe();
                if (r < 0)
                        return r;
                if (r == 0 && requested == VMA_BACKEND_IOCTL)
                        return -EOPNOTSUPP;
                *ret = r > 0 ? VMA_BACKEND_IOCTL : VMA_BACKEND_TEXT;
                return 0;
        default:
                return -EINVAL;
        }
}

int vma_source_new(VmaSource **ret, int maps_fd, VmaBackend backend) {
        _cleanup_close_ int fd = maps_fd;
        VmaSource *s;

        if (fd < 0 || (backend != VMA_BACKEND_IOCTL && backend != VMA_BACKEND_TEXT))
                return -EINVAL;

        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->backend = s->pass = backend;
        s->fd = TAKE_FD(fd);

        *ret = s;
        return 0;
}

VmaSource *vma_source_free(VmaSource *s) {
        if (!s)
                return NULL;
        safe_close(s->fd);
        vma_source_release(s);
        free(s->profile);
        free(s);
        return NULL;
}

void vma_source_release(VmaSource *s) {
        s->name = mfree(s->name);
        s->buf = mfree(s->buf);
        s->buf_len = s->buf_pos = 0;
        s->have_line = false;
        s->pass = s->backend;
}

VmaBackend vma_source_backend(const VmaSource *s) {
        return s->backend;
}

static uint64_t now_ns(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * UINT64_C(1000000000) + (uint64_t) ts.tv_nsec;
}

/*
 * Read more of the maps file behind what is buffered. Returns bytes read,
 * 0 at EOF, -EDQUOT when the pass has read its budget.
 */
static int text_fill(VmaSource *s) {
        size_t want;
        ssize_t n;

        if (s->buf_pos > 0) {
                memmove(s->buf, s->buf + s->buf_pos, s->buf_len - s->buf_pos);
                s->buf_len -= s->buf_pos;
                s->buf_base += s->buf_pos;
                s->buf_pos = 0;
        }
        if (s->buf_len == TEXT_BUFFER_SIZE)
                return -EBADMSG;        /* a line longer than the kernel can write */

        /*
         * The kernel prints as much as we ask for, and that is the cost: a
         * pass on a budget asks for no more than what is left of it (but
         * a page, so that any line fits in a few reads).
         */
        want = TEXT_BUFFER_SIZE - s->buf_len;
        if (s->max_text_bytes > 0) {
                uint64_t left;

                if (s->stats.text_bytes >= s->max_text_bytes)
                        return -EDQUOT;
                left = s->max_text_bytes - s->stats.text_bytes;
                want = (size_t) MIN((uint64_t) want, MAX(left, (uint64_t) 4096));
        }

        /*
         * At our own offset, not the file position: a maps fd a client sent
         * shares its position with the client's. Reading where the last
         * read ended costs the kernel nothing more than read() would.
         */
        do
                n = pread(s->fd, s->buf + s->buf_len, want, (off_t) (s->buf_base + s->buf_len));
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return -errno;

        if (n == 0) {
                char c;

                /*
                 * The end of the map, or of the address space: once that is
                 * gone (an exec, an exit), reads come back empty as if the
                 * map had ended, and what we read so far was only its start.
                 * A live address space is never empty: read its first byte.
                 */
                do
                        n = pread(s->fd, &c, 1, 0);
                while (n < 0 && errno == EINTR);
                if (n < 0)
                        return -errno;
                if (n == 0)
                        return -ESRCH;
                s->eof = true;
                return 0;
        }

        s->buf_len += n;
        s->stats.text_bytes += (uint64_t) n;
        return (int) n;
}

static int text_rewind(VmaSource *s) {
        int r;

        s->buf_len = s->buf_pos = 0;
        s->buf_base = 0;
        s->line_no = 0;
        s->eof = false;
        s->have_line = false;
        s->floor = 0;

        /* An empty map means the address space is gone, which text_fill() tells. */
        r = text_fill(s);
        if (r < 0)
                return r;
        if (r == 0)
                return -ESRCH;
        return 0;
}

/*
 * Note the line just parsed in the profile, if it is a stride-th one. The
 * samples of an earlier pass beyond this one are kept, as long as they
 * still follow in address order.
 */
static void text_profile_note(VmaSource *s) {
        VmaTextProfile *pr = s->profile;
        size_t i = s->line_no++, k;

        if (!pr)
                return;
        if (s->line.end > pr->reach_end) {
                pr->reach_end = s->line.end;
                pr->reach_bytes = s->buf_base + s->buf_pos;
        }
        if (i % pr->stride != 0)
                return;
        k = i / pr->stride;
        if (k >= ELEMENTSOF(pr->ends)) {
                /* Full: keep every other sample, at twice the stride. */
                for (size_t j = 0; 2 * j < pr->n; j++) {
                        pr->ends[j] = pr->ends[2 * j];
                        pr->bytes[j] = pr->bytes[2 * j];
                }
                pr->n = (pr->n + 1) / 2;
                pr->stride *= 2;
                if (i % pr->stride != 0)
                        return;
                k = i / pr->stride;
        }

        pr->ends[k] = s->line.end;
        pr->bytes[k] = s->buf_base + s->buf_pos;
        if (k >= pr->n)
                pr->n = k + 1;
        else if (k + 1 < pr->n && pr->ends[k + 1] <= pr->ends[k])
                pr->n = k + 1;
}

static void text_profile_end(VmaSource *s) {
        VmaTextProfile *pr = s->profile;

        if (!pr)
                return;
        pr->n = MIN(pr->n, (s->line_no + pr->stride - 1) / pr->stride);
        pr->complete = true;
        pr->total_bytes = s->buf_base + s->buf_len;
}

/* Parse the next line into s->line. Returns 1, or 0 at the end of the file. */
static int text_next_line(VmaSource *s) {
        for (;;) {
                char *start = s->buf + s->buf_pos, *nl;
                int r;

                nl = memchr(start, '\n', s->buf_len - s->buf_pos);
                if (nl) {
                        s->buf_pos = nl - s->buf + 1;
                        r = vma_parse_maps_line(start, nl - start, &s->line);
                        if (r < 0)
                                return r;
                        text_profile_note(s);
                        return 1;
                }

                if (s->eof) {
                        /* Every line ends in a newline; a rest is a torn line. */
                        if (s->buf_pos < s->buf_len)
                                return -EBADMSG;
                        text_profile_end(s);
                        return 0;
                }

                r = text_fill(s);
                if (r < 0)
                        return r;
        }
}

static int text_find_slow(VmaSource *s, uint64_t addr, Vma *ret) {
        int r;

        /* Lines are in address order: going backwards means reading again. */
        if (addr < s->floor) {
                r = text_rewind(s);
                if (r < 0)
                        return r;
        }

        for (;;) {
                if (s->have_line) {
                        if (addr < s->line.end) {
                                *ret = s->line;
                                return 1;
                        }
                        s->floor = s->line.end;
                        s->have_line = false;
                }

                r = text_next_line(s);
                if (r <= 0)
                        return r;
                /*
                 * The map may change between reads; never step backwards.
                 * "[vsyscall]" is the kernel's gate page, listed in the text
                 * but no VMA of the process: the ioctl does not know it.
                 */
                s->have_line = s->line.end > s->floor && strcmp(s->line.name, "[vsyscall]") != 0;
        }
}

static int text_find(VmaSource *s, uint64_t addr, Vma *ret) {
        uint64_t t;
        int r;

        /* The line at hand answers most finds of a dense batch; only reading and parsing is timed. */
        if (s->have_line && addr >= s->floor && addr < s->line.end) {
                *ret = s->line;
                return 1;
        }

        t = now_ns();
        r = text_find_slow(s, addr, ret);
        s->stats.text_ns += now_ns() - t;
        return r;
}

int vma_source_begin_pass(VmaSource *s, VmaBackend how, uint64_t max_text_bytes) {
        uint64_t t;
        int r;

        if (how != VMA_BACKEND_IOCTL && how != VMA_BACKEND_TEXT)
                return -EINVAL;
        if (how != VMA_BACKEND_TEXT && how != s->backend)
                return -EOPNOTSUPP;

        s->stats = (VmaPassStats) {};
        s->pass = how;
        s->max_text_bytes = s->backend == VMA_BACKEND_IOCTL ? max_text_bytes : 0;
        /* Each ioctl reads the live map, there is nothing to prepare. */
        if (how == VMA_BACKEND_IOCTL)
                return 0;

        if (!s->buf) {
                s->buf = malloc(TEXT_BUFFER_SIZE);
                if (!s->buf)
                        return -ENOMEM;
        }
        /* Only an ioctl source chooses, by what its text passes saw. */
        if (!s->profile && s->backend == VMA_BACKEND_IOCTL) {
                s->profile = calloc(1, sizeof(VmaTextProfile));
                if (!s->profile)
                        return -ENOMEM;
                s->profile->stride = 1;
        }

        t = now_ns();
        r = text_rewind(s);
        s->stats.text_ns += now_ns() - t;
        return r;
}

int vma_source_begin(VmaSource *s) {
        return vma_source_begin_pass(s, s->backend, 0);
}

VmaBackend vma_source_pass_backend(const VmaSource *s) {
        return s->pass;
}

void vma_source_pass_stats(const VmaSource *s, VmaPassStats *ret) {
        *ret = s->stats;
}

const VmaTextProfile *vma_source_text_profile(const VmaSource *s) {
        return s->profile && s->profile->n > 0 ? s->profile : NULL;
}

uint64_t vma_source_text_bytes_to(const VmaSource *s, uint64_t addr) {
        const VmaTextProfile *pr = vma_source_text_profile(s);
        size_t lo = 0, hi;
        uint64_t b;

        if (!pr)
                return 0;

        /* The first sample ending above @addr: the line covering it is no further. */
        hi = pr->n;
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;

                if (pr->ends[mid] > addr)
                        hi = mid;
                else
                        lo = mid + 1;
        }
        if (lo < pr->n)
                b = pr->bytes[lo];
        else if (addr < pr->reach_end)
                b = pr->reach_bytes;
        else if (pr->complete)
                b = pr->total_bytes;
        else
                return 0;

        /* The kernel prints whole reads. */
        b = ALIGN_POW2(MAX(b, (uint64_t) 1), (uint64_t) TEXT_BUFFER_SIZE);
        if (pr->complete)
                b = MIN(b, MAX(pr->total_bytes, (uint64_t) 1));
        return b;
}

static int ioctl_find(VmaSource *s, uint64_t addr, unsigned flags, Vma *ret) {
        if (!s->name) {
                s->name = malloc(PATH_MAX);
                if (!s->name)
                        return -ENOMEM;
        }
        return procmap_query(s->fd, addr, s->name, PATH_MAX, flags, ret);
}

int vma_source_find(VmaSource *s, uint64_t addr, unsigned flags, Vma *ret) {
        bool timed;
        uint64_t t = 0;
        int r;

        if (s->backend == VMA_BACKEND_IOCTL && (flags & (VMA_FIND_LIVE | VMA_FIND_BUILD_ID)))
                return ioctl_find(s, addr, flags, ret);
        if (flags & VMA_FIND_LIVE)
                return -EOPNOTSUPP;

        if (s->pass == VMA_BACKEND_TEXT) {
                if (!s->buf)
                        return -EINVAL;         /* no pass begun */
                r = text_find(s, addr, ret);
                if (r != -EDQUOT)
                        return r;
                /* Over its budget: the pass goes on with the ioctl (only an ioctl source has one). */
                s->pass = VMA_BACKEND_IOCTL;
        }

        /* Sampled over all passes, so that a pass of one lookup is timed once in a while only. */
        timed = s->n_ioctls_ever++ % VMA_STATS_IOCTL_SAMPLE == 0;
        if (timed)
                t = now_ns();
        r = ioctl_find(s, addr, flags, ret);
        if (timed) {
                s->stats.ioctl_ns += now_ns() - t;
                s->stats.n_ioctls_timed++;
        }
        s->stats.n_ioctls++;
        return r;
}
