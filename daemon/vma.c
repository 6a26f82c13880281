/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
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
#define TEXT_BUFFER_SIZE (64U * 1024U)
#define DELETED_SUFFIX " (deleted)"

struct VmaSource {
        int fd;
        VmaBackend backend;

        /* ioctl backend: the kernel writes the VMA's name here */
        char name[PATH_MAX];

        /* text backend: a window on the file, and the line last parsed */
        char *buf;
        size_t buf_len;                 /* bytes of buf that hold data */
        size_t buf_pos;                 /* start of the next unparsed line */
        bool eof;
        bool have_line;                 /* line holds the last parsed line */
        Vma line;
        uint64_t floor;                 /* no VMA below this was skipped */
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
        s->backend = backend;
        if (backend == VMA_BACKEND_TEXT) {
                s->buf = malloc(TEXT_BUFFER_SIZE);
                if (!s->buf) {
                        free(s);
                        return -ENOMEM;
                }
        }
        s->fd = TAKE_FD(fd);

        *ret = s;
        return 0;
}

VmaSource *vma_source_free(VmaSource *s) {
        if (!s)
                return NULL;
        safe_close(s->fd);
        free(s->buf);
        free(s);
        return NULL;
}

VmaBackend vma_source_backend(const VmaSource *s) {
        return s->backend;
}

/* Read more of the maps file behind what is buffered. Returns bytes read, 0 at EOF. */
static int text_fill(VmaSource *s) {
        ssize_t n;

        if (s->buf_pos > 0) {
                memmove(s->buf, s->buf + s->buf_pos, s->buf_len - s->buf_pos);
                s->buf_len -= s->buf_pos;
                s->buf_pos = 0;
        }
        if (s->buf_len == TEXT_BUFFER_SIZE)
                return -EBADMSG;        /* a line longer than the kernel can write */

        do
                n = read(s->fd, s->buf + s->buf_len, TEXT_BUFFER_SIZE - s->buf_len);
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
        return (int) n;
}

static int text_rewind(VmaSource *s) {
        int r;

        if (lseek(s->fd, 0, SEEK_SET) < 0)
                return -errno;

        s->buf_len = s->buf_pos = 0;
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
                        return 1;
                }

                if (s->eof)
                        /* Every line ends in a newline; a rest is a torn line. */
                        return s->buf_pos < s->buf_len ? -EBADMSG : 0;

                r = text_fill(s);
                if (r < 0)
                        return r;
        }
}

static int text_find(VmaSource *s, uint64_t addr, Vma *ret) {
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

int vma_source_begin(VmaSource *s) {
        /* Each ioctl reads the live map, there is nothing to prepare. */
        if (s->backend == VMA_BACKEND_TEXT)
                return text_rewind(s);
        return 0;
}

int vma_source_find(VmaSource *s, uint64_t addr, unsigned flags, Vma *ret) {
        if (s->backend == VMA_BACKEND_TEXT)
                return text_find(s, addr, ret);
        return procmap_query(s->fd, addr, s->name, sizeof(s->name), flags, ret);
}
