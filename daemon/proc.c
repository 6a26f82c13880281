/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/openat2.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "buildid-cache.h"
#include "elf-note.h"
#include "macro.h"
#include "parse-util.h"
#include "proc.h"
#include "string-table.h"

/* Passes over a map that an exec or exit cut short before a call gives up with -ESRCH. */
#define PROC_ATTEMPTS 3

/*
 * The automatic strategy (see proc_set_costs() in proc.h): how much a new
 * measurement moves an estimate, and how far above the estimate it may
 * pull it (noise only ever slows things down: a stray slow batch must not
 * move an estimate by more than a quarter); after how many batches
 * without a measurement an estimate counts as stale, and how close the
 * prediction for the other strategy must be then for it to be tried.
 * That bound grows with the age, so that an estimate far off is tried
 * again too, only more rarely: a trial at r times the choice comes once
 * in 8r batches at most, so that trials cost less than an eighth more in
 * the worst case, and a text trial is held to its budget besides.
 */
#define PROC_EMA_WEIGHT 0.25
#define PROC_EMA_MAX_RISE 2.0
#define PROC_STALE_BATCHES 16U
#define PROC_TRIAL_FACTOR 2.0
#define PROC_AGE_MAX (1U << 20)

/* From the kernel's include/linux/sched.h: the task is a kernel thread. */
#define PF_KTHREAD 0x00200000U

struct Proc {
        pid_t pid;
        VmaBackend backend;
        int dir_fd;                     /* /proc/PID of the process attached to */
        uint64_t start_time;
        unsigned generation;            /* attachments so far */
        VmaSource *source;              /* NULL: address space gone, reattach first */

        /*
         * The vDSO's build ID, once read in this address space: the image
         * is the kernel's and stays, only where it is mapped may change.
         */
        bool vdso_known;
        uint64_t vdso_start;
        uint64_t vdso_end;
        size_t vdso_build_id_len;
        uint8_t vdso_build_id[BUILD_ID_MAX];
        /* The vDSO's ELF facts, once read in this address space, for the range they were read at. */
        ElfInfo *vdso_info;
        uint64_t vdso_info_start;
        uint64_t vdso_info_end;

        /* The automatic strategy's estimates, in ns; 0: not measured yet. */
        double ioctl_ns;                /* per lookup */
        double text_ns;                 /* per byte of text */
        unsigned ioctl_age;             /* batches since the last measurement */
        unsigned text_age;
        bool costs_fixed;               /* proc_set_costs(): no measurements, no trials */
};

static const char *const norm_kind_table[_NORM_KIND_MAX] = {
        [NORM_MODULE]    = "module",
        [NORM_UNMAPPED]  = "unmapped",
        [NORM_ANONYMOUS] = "anonymous",
        [NORM_SPECIAL]   = "special",
        [NORM_EXITED]    = "exited",
};

DEFINE_STRING_TABLE_LOOKUP(norm_kind, NormKind);

static const char *const norm_vaddr_table[_NORM_VADDR_MAX] = {
        [NORM_VADDR_NONE] = "none",
        [NORM_VADDR_OK] = "ok",
        [NORM_VADDR_NOT_ELF] = "not-elf",
        [NORM_VADDR_NOT_LOADED] = "not-loaded",
        [NORM_VADDR_UNREADABLE] = "unreadable",
        [NORM_VADDR_SKIPPED] = "skipped",
};

DEFINE_STRING_TABLE_LOOKUP(norm_vaddr, NormVaddr);

/* A file of a dead process's /proc directory is gone, not missing. */
static int openat_proc(int dir_fd, const char *name, int flags) {
        int fd;

        fd = openat(dir_fd, name, flags|O_CLOEXEC|O_NOCTTY);
        if (fd < 0)
                return errno == ENOENT ? -ESRCH : -errno;
        return fd;
}

int proc_read_start_time(int dir_fd, uint64_t *ret) {
        _cleanup_close_ int fd = -EBADF;
        char buf[4096], *p, *e;
        uint64_t flags = 0, start_time = 0;
        char state = 0;
        ssize_t n;

        fd = openat_proc(dir_fd, "stat", O_RDONLY);
        if (fd < 0)
                return fd;

        do
                n = read(fd, buf, sizeof(buf) - 1);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return errno == ENOENT ? -ESRCH : -errno;
        if (n == 0)
                return -ESRCH;
        buf[n] = '\0';

        /*
         * "PID (COMM) STATE PPID ...": COMM may hold spaces and parentheses,
         * so the fields start after the last ')'.
         */
        p = strrchr(buf, ')');
        if (!p || p[1] != ' ')
                return -EBADMSG;
        p += 2;

        for (unsigned field = 3; field <= 22; field++) {
                size_t len;

                e = strchr(p, ' ');
                len = e ? (size_t) (e - p) : strlen(p);
                if (len == 0)
                        return -EBADMSG;

                if (field == 3) {
                        if (len != 1)
                                return -EBADMSG;
                        state = p[0];
                } else if (field == 9) {
                        if (parse_u64_n(p, len, 10, &flags) < 0)
                                return -EBADMSG;
                } else if (field == 22) {
                        if (parse_u64_n(p, len, 10, &start_time) < 0)
                                return -EBADMSG;
                        break;
                }

                if (!e)
                        return -EBADMSG;
                p = e + 1;
        }

        /* Zombies, dead tasks and kernel threads have no address space. */
        if (state == 'Z' || state == 'X' || state == 'x' || (flags & PF_KTHREAD))
                return -ENXIO;

        *ret = start_time;
        return 0;
}

/* Attach to the process behind @dir_fd: its start time and a source on its current map. */
static int proc_attach(Proc *p, int dir_fd) {
        _cleanup_close_ int maps_fd = -EBADF;
        VmaSource *source = NULL;
        uint64_t start_time;
        int r;

        r = proc_read_start_time(dir_fd, &start_time);
        if (r < 0)
                return r;

        maps_fd = openat_proc(dir_fd, "maps", O_RDONLY);
        if (maps_fd < 0)
                return maps_fd;

        r = vma_source_new(&source, TAKE_FD(maps_fd), p->backend);
        if (r < 0)
                return r;

        vma_source_free(p->source);
        p->source = source;
        p->start_time = start_time;
        p->generation++;
        p->vdso_known = false;
        p->vdso_info = elf_info_unref(p->vdso_info);
        return 0;
}

int proc_open_dir(pid_t pid) {
        char path[sizeof("/proc/") + 3 * sizeof(pid_t)];
        int fd;

        snprintf(path, sizeof(path), "/proc/%d", (int) pid);
        fd = open(path, O_PATH|O_DIRECTORY|O_CLOEXEC);
        if (fd < 0)
                return errno == ENOENT ? -ESRCH : -errno;
        return fd;
}

int proc_open_at(Proc **ret, pid_t pid, int dir_fd, VmaBackend backend) {
        _cleanup_close_ int fd = dir_fd;
        _cleanup_(proc_freep) Proc *p = NULL;
        int r;

        if (pid <= 0 || fd < 0 || (backend != VMA_BACKEND_IOCTL && backend != VMA_BACKEND_TEXT))
                return -EINVAL;

        p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        p->pid = pid;
        p->backend = backend;
        p->dir_fd = TAKE_FD(fd);
        /* Never measured: stale, so that the text is tried once it may be cheaper. */
        p->text_age = PROC_STALE_BATCHES;

        r = proc_attach(p, p->dir_fd);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(p);
        return 0;
}

int proc_open_maps(Proc **ret, int maps_fd, VmaBackend backend) {
        _cleanup_close_ int fd = maps_fd;
        _cleanup_(proc_freep) Proc *p = NULL;
        int r;

        if (fd < 0 || (backend != VMA_BACKEND_IOCTL && backend != VMA_BACKEND_TEXT))
                return -EINVAL;

        p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        p->backend = backend;
        p->dir_fd = -EBADF;
        p->text_age = PROC_STALE_BATCHES;
        p->generation = 1;

        r = vma_source_new(&p->source, TAKE_FD(fd), backend);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(p);
        return 0;
}

int proc_open(Proc **ret, pid_t pid, VmaBackend backend) {
        int dir_fd;

        if (pid <= 0)
                return -EINVAL;
        dir_fd = proc_open_dir(pid);
        if (dir_fd < 0)
                return dir_fd;
        return proc_open_at(ret, pid, dir_fd, backend);
}

Proc *proc_free(Proc *p) {
        if (!p)
                return NULL;
        vma_source_free(p->source);
        safe_close(p->dir_fd);
        elf_info_unref(p->vdso_info);
        free(p);
        return NULL;
}

pid_t proc_pid(const Proc *p) {
        return p->pid;
}

unsigned proc_generation(const Proc *p) {
        return p->generation;
}

int proc_dir_fd(const Proc *p) {
        return p->dir_fd;
}

uint64_t proc_start_time(const Proc *p) {
        return p->start_time;
}

int proc_set_costs(Proc *p, double ioctl_ns_per_lookup, double text_ns_per_byte) {
        if (!(ioctl_ns_per_lookup > 0) || !(text_ns_per_byte > 0))
                return -EINVAL;
        p->ioctl_ns = ioctl_ns_per_lookup;
        p->text_ns = text_ns_per_byte;
        p->ioctl_age = p->text_age = 0;
        p->costs_fixed = true;
        return 0;
}

/*
 * The address space we were attached to is gone. If the process itself
 * lives on (it exec'd), attach to its new map through the pinned directory.
 * Otherwise the pid may have been reused: look it up afresh.
 */
static int proc_reattach(Proc *p) {
        int r, dir_fd;

        p->source = vma_source_free(p->source);
        /* Opened on a maps file alone: there is no process to follow. */
        if (p->dir_fd < 0)
                return -ESRCH;

        r = proc_attach(p, p->dir_fd);
        if (r != -ESRCH)
                return r;

        dir_fd = proc_open_dir(p->pid);
        if (dir_fd < 0)
                return dir_fd;
        safe_close(p->dir_fd);
        p->dir_fd = dir_fd;

        return proc_attach(p, p->dir_fd);
}

static int proc_prepare(Proc *p, const NormalizeOptions *opts, bool *reattached) {
        int r;

        if (!p->source) {
                r = proc_reattach(p);
                if (r < 0)
                        return r;
                *reattached = true;
        }

        if (opts && (opts->flags & NORMALIZE_PIN) && opts->start_time != p->start_time)
                return -ESTALE;
        return 0;
}

/*
 * What one call (a batch or a walk) carries along: its build ID cache, and
 * what it opened on the way, closed when a pass over an address space ends.
 */
typedef struct ProcCall {
        Proc *proc;
        BuildIdCache *cache;
        size_t max_reads;       /* images the call may read for build IDs; 0: no limit */
        size_t n_reads;         /* so far, over all passes */
        uint64_t start;         /* a walk's first address of interest */
        int root_fd;            /* the process's root, opened on first use */
        bool root_tried;
} ProcCall;

/*
 * Drop what the last pass opened: the next may be on another process (a
 * reused pid); and the source's buffers, so that a cached Proc is small.
 */
static void proc_call_reset(ProcCall *c) {
        c->root_fd = safe_close(c->root_fd);
        c->root_tried = false;
        if (c->proc->source)
                vma_source_release(c->proc->source);
}

static void proc_call_done(ProcCall *c) {
        proc_call_reset(c);
}

/*
 * The process's root directory, for paths as it sees them. Opening it
 * costs more than the lookups made in it (a ptrace access check), so a
 * call opens it once; a process that changes its root during one call is
 * still looked at in the old one. Returns the fd, owned by @c, or -errno.
 */
static int proc_call_root(ProcCall *c) {
        if (!c->root_tried) {
                c->root_fd = openat_proc(c->proc->dir_fd, "root", O_PATH|O_DIRECTORY);
                c->root_tried = true;
        }
        return c->root_fd;
}

/* Whether @st is the very file @v maps: the same inode on the same device, and a regular file. */
static bool stat_is_vma_file(const struct stat *st, const Vma *v) {
        return S_ISREG(st->st_mode) && st->st_ino == v->inode &&
               major(st->st_dev) == v->dev_major && minor(st->st_dev) == v->dev_minor;
}

/*
 * Open for reading the file that the O_PATH fd @path_fd refers to, if it is
 * the regular file @v maps. An O_PATH open runs no driver's open and wakes
 * no FIFO writer, so what the target put at a path is looked at before
 * anything opens it for real. The reopen goes through our own
 * /proc/self/fd/N, which opens that very inode, whatever lies at its path
 * by now. Returns the fd, and its stat in *ret_st.
 */
static int proc_reopen_vma_file(int path_fd, const Vma *v, struct stat *ret_st) {
        char path[sizeof("/proc/self/fd/") + 3 * sizeof(int)];
        _cleanup_close_ int fd = -EBADF;
        struct stat st;

        if (fstat(path_fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return -EBADFD;
        if (!stat_is_vma_file(&st, v))
                return -ESTALE;

        snprintf(path, sizeof(path), "/proc/self/fd/%d", path_fd);
        fd = open(path, O_RDONLY|O_CLOEXEC|O_NOCTTY|O_NONBLOCK);
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!stat_is_vma_file(&st, v))
                return -ESTALE;

        *ret_st = st;
        return TAKE_FD(fd);
}

/*
 * Open the file a VMA maps, to read its build ID. The target controls its
 * files and its mount namespace, so whatever we reach must be checked to
 * be the regular file that is mapped before it is opened for reading: it
 * may be a FIFO, a device, or another file by now. Returns the fd and its
 * stat in *ret_st; -EBADFD for anything but a regular file, -ESTALE for
 * another file than the mapped one.
 */
static int proc_open_vma_file(ProcCall *c, const Vma *v, struct stat *ret_st) {
        _cleanup_close_ int fd = -EBADF;
        int root_fd;
        char map_files[sizeof("map_files/-") + 32];
        struct open_how how = {
                .flags = O_PATH|O_NOFOLLOW|O_CLOEXEC,
                .resolve = RESOLVE_IN_ROOT|RESOLVE_NO_MAGICLINKS,
        };

        /*
         * map_files/START-END is the mapped file itself, even when deleted
         * or in another mount namespace, but needs CAP_SYS_ADMIN (or
         * CAP_CHECKPOINT_RESTORE). When it answers, its answer is final:
         * the map changed if it names another file.
         */
        snprintf(map_files, sizeof(map_files), "map_files/%" PRIx64 "-%" PRIx64, v->start, v->end);
        fd = openat_proc(c->proc->dir_fd, map_files, O_PATH);
        if (fd >= 0)
                return proc_reopen_vma_file(fd, v, ret_st);

        /*
         * Else the path as the process sees it, resolved inside its root,
         * without following its symlinks. A deleted file cannot be found by
         * name.
         */
        if (v->deleted || v->name[0] != '/')
                return -ENOENT;
        root_fd = proc_call_root(c);
        if (root_fd < 0)
                return root_fd;
        fd = (int) syscall(SYS_openat2, root_fd, v->name + 1, &how, sizeof(how));
        if (fd < 0)
                return -errno;

        return proc_reopen_vma_file(fd, v, ret_st);
}

/*
 * The vDSO has no file: read its image from the process's memory. The mem
 * file is opened on the address space the process has now, which is ours
 * unless it exec'd since we found @v: the ioctl backend can tell cheaply,
 * by finding the same vDSO again after the read, also in a text pass; the
 * text backend cannot without disturbing its pass, and relies on the next
 * pass noticing. Called after the read: 0, or -ESTALE when the image read
 * may not be @v's.
 */
static int proc_vdso_check(Proc *p, const Vma *v) {
        Vma k;
        int r;

        if (vma_source_backend(p->source) != VMA_BACKEND_IOCTL)
                return 0;

        r = vma_source_find(p->source, v->start, VMA_FIND_LIVE, &k);
        if (r < 0)
                return r;
        if (r == 0 || k.kind != VMA_KIND_VDSO || k.start != v->start || k.end != v->end)
                return -ESTALE;
        return 0;
}

/* The vDSO's build ID, read from memory and checked with proc_vdso_check(). */
static int proc_read_vdso_build_id(Proc *p, const Vma *v, uint8_t ret[static BUILD_ID_MAX]) {
        _cleanup_close_ int fd = -EBADF;
        uint8_t id[BUILD_ID_MAX];
        int r, q;

        fd = openat_proc(p->dir_fd, "mem", O_RDONLY);
        if (fd < 0)
                return fd;
        r = elf_build_id_from_fd(fd, v->start, v->end - v->start, id);
        if (r < 0)
                return r;
        q = proc_vdso_check(p, v);
        if (q < 0)
                return q;

        memcpy(ret, id, (size_t) r);
        return r;
}

/* Whether the file behind @a still had the same contents at @b, as far as stat() can tell. */
static bool stat_same_contents(const struct stat *a, const struct stat *b) {
        return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
               a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec &&
               a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/*
 * Read the build ID of the file @v maps ourselves. Returns its length, 0
 * if the file has none, or a negative errno if it could not be read; on
 * success *ret_file is the identity of the file actually read, which did
 * not change while it was read (else we might hold parts of two versions).
 */
static int proc_read_file_build_id(ProcCall *c, const Vma *v, uint8_t ret[static BUILD_ID_MAX],
                                   FileIdentity *ret_file) {
        _cleanup_close_ int fd = -EBADF;
        struct stat before, after;
        uint8_t id[BUILD_ID_MAX];
        int r;

        fd = proc_open_vma_file(c, v, &before);
        if (fd < 0)
                return fd;
        r = elf_build_id_from_fd(fd, 0, (uint64_t) before.st_size, id);
        /* Not ELF, or not well-formed: a file without a build ID. */
        if (r == -ENOEXEC || r == -EBADMSG)
                r = 0;
        if (r < 0)
                return r;

        if (fstat(fd, &after) < 0)
                return -errno;
        if (!stat_same_contents(&before, &after))
                return -ESTALE;

        memcpy(ret, id, (size_t) r);
        *ret_file = file_identity_from_stat(&after);
        return r;
}

/*
 * Ask the kernel for the build ID of the file @v maps. It answers for the
 * VMA at v->start as it is now, which may map another file than @v said a
 * moment ago: only an answer about the same range of the same file counts,
 * else -ESTALE. Returns the length, 0 if the kernel has none to give (not
 * ELF, or not readable without blocking).
 */
static int proc_kernel_build_id(Proc *p, const Vma *v, uint8_t ret[static BUILD_ID_MAX]) {
        Vma k;
        int r;

        r = vma_source_find(p->source, v->start, VMA_FIND_BUILD_ID, &k);
        if (r < 0)
                return r;
        if (r == 0 || k.start != v->start || k.end != v->end || k.inode != v->inode ||
            k.dev_major != v->dev_major || k.dev_minor != v->dev_minor)
                return -ESTALE;

        memcpy(ret, k.build_id, k.build_id_len);
        return (int) k.build_id_len;
}

/*
 * The identity of the file behind @v now, through map_files: needs the same
 * privileges as opening it. -ESTALE if the map changed and it is another
 * file than @v's.
 */
static int proc_vma_file_identity(Proc *p, const Vma *v, FileIdentity *ret) {
        char map_files[sizeof("map_files/-") + 32];
        struct stat st;

        snprintf(map_files, sizeof(map_files), "map_files/%" PRIx64 "-%" PRIx64, v->start, v->end);
        if (fstatat(p->dir_fd, map_files, &st, 0) < 0)
                return -errno;
        if (st.st_ino != v->inode || major(st.st_dev) != v->dev_major || minor(st.st_dev) != v->dev_minor)
                return -ESTALE;

        *ret = file_identity_from_stat(&st);
        return 0;
}

#define DELETED_SUFFIX " (deleted)"

/* Whether @name, resolved inside the process's root, is the file with @v's device and inode. */
static bool proc_name_leads_to(ProcCall *c, const char *name, const Vma *v) {
        _cleanup_close_ int fd = -EBADF;
        int root_fd;
        struct open_how how = {
                .flags = O_PATH|O_NOFOLLOW|O_CLOEXEC,
                .resolve = RESOLVE_IN_ROOT|RESOLVE_NO_MAGICLINKS,
        };
        struct stat st;

        if (name[0] != '/')
                return false;
        root_fd = proc_call_root(c);
        if (root_fd < 0)
                return false;
        fd = (int) syscall(SYS_openat2, root_fd, name + 1, &how, sizeof(how));
        if (fd < 0 || fstat(fd, &st) < 0)
                return false;
        return st.st_ino == v->inode && major(st.st_dev) == v->dev_major && minor(st.st_dev) == v->dev_minor;
}

/*
 * Whether @link, a name read from map_files, is what the maps file printed
 * and the parser read back as @v's name (plus " (deleted)" if it found
 * one). The kernel prints a newline as "\012" but leaves a backslash alone,
 * and the parser turns every "\012" into a newline, so that is @link with
 * each literal "\012" turned into a newline.
 */
static bool link_matches_parsed_name(const char *link, size_t len, const Vma *v) {
        size_t suffix = v->deleted ? strlen(DELETED_SUFFIX) : 0, j = 0;

        for (size_t i = 0; i < len; j++) {
                char c = link[i];

                if (len - i >= 4 && memcmp(link + i, "\\012", 4) == 0) {
                        c = '\n';
                        i += 4;
                } else
                        i++;

                if (j < v->name_len ? v->name[j] != c : j - v->name_len >= suffix ||
                                                         DELETED_SUFFIX[j - v->name_len] != c)
                        return false;
        }
        return j == v->name_len + suffix;
}

/*
 * What the maps file says of a name can mean two things. A trailing
 * " (deleted)" is the kernel's mark of a name that no longer leads to the
 * file (unlinked, or replaced by a rename), or the end of a live file's
 * own name; and in the text, "\012" is a newline or those four characters.
 * The parser takes the first meaning of each; here we tell, for a file VMA
 * whose name has either, as far as we can:
 *
 *   - map_files/START-END, if we may look and it is still @v's file, links
 *     to the name itself, unescaped;
 *   - a live file's name ending in " (deleted)" leads to the file inside
 *     the process's root, which no unlinked or replaced name does. That
 *     is all a link count of 0 through map_files could tell us too, and
 *     that look costs more than this one (a map_files lookup walks the
 *     map), so it is not asked.
 *
 * A text pass of an ioctl source asks the ioctl for the raw name of a VMA
 * whose name has a "\012" instead: it needs no privilege, and so the
 * answer is the one the ioctl strategy gives, whatever map_files allows.
 * The " (deleted)" mark reads the same in both and is told the same way.
 *
 * Rewrites @v to the name in @buf and returns 1 if that changed anything,
 * else 0 and leaves @v alone.
 */
static int proc_vma_resolve_name(ProcCall *c, Vma *v, char buf[static PATH_MAX]) {
        Proc *p = c->proc;
        char link[PATH_MAX + sizeof(DELETED_SUFFIX)];
        bool escaped, deleted = false;
        const char *name;
        size_t len;

        if (v->kind != VMA_KIND_FILE || v->inode == 0)
                return 0;
        /* Only the text escapes; a newline here came from "\012". The ioctl's names are raw. */
        escaped = vma_source_pass_backend(p->source) == VMA_BACKEND_TEXT && memchr(v->name, '\n', v->name_len);
        if (!escaped && !v->deleted)
                return 0;

        if (escaped && vma_source_backend(p->source) == VMA_BACKEND_IOCTL) {
                Vma k;

                /* Only an answer about the same range of the same file counts; else leave it as parsed. */
                if (vma_source_find(p->source, v->start, VMA_FIND_LIVE, &k) <= 0 || k.start != v->start ||
                    k.end != v->end || k.inode != v->inode || k.dev_major != v->dev_major ||
                    k.dev_minor != v->dev_minor || k.kind != VMA_KIND_FILE)
                        return 0;
                if (!k.deleted) {
                        memcpy(buf, k.name, k.name_len + 1);
                        v->name = buf;
                        v->name_len = k.name_len;
                        v->deleted = false;
                        v->kind = k.kind;
                        return 1;
                }
                /* Marked deleted: tell the mark from the name as below, on the raw name. */
                len = k.name_len + strlen(DELETED_SUFFIX);
                memcpy(link, k.name, k.name_len);
                memcpy(link + k.name_len, DELETED_SUFFIX, sizeof(DELETED_SUFFIX));
                /* It may equal the parsed name only if it has no newline: then this changes nothing. */
        } else if (escaped) {
                char map_files[sizeof("map_files/-") + 32];
                struct stat st;
                ssize_t n;

                /* The escaping cannot be undone without the name itself. */
                snprintf(map_files, sizeof(map_files), "map_files/%" PRIx64 "-%" PRIx64, v->start, v->end);
                if (fstatat(p->dir_fd, map_files, &st, 0) < 0 || st.st_ino != v->inode ||
                    major(st.st_dev) != v->dev_major || minor(st.st_dev) != v->dev_minor)
                        return 0;
                n = readlinkat(p->dir_fd, map_files, link, sizeof(link) - 1);
                if (n < 0 || (size_t) n == sizeof(link) - 1 || !link_matches_parsed_name(link, (size_t) n, v))
                        return 0;       /* renamed meanwhile: leave it as parsed */
                link[n] = '\0';
                len = (size_t) n;
        } else {
                len = v->name_len + strlen(DELETED_SUFFIX);
                memcpy(link, v->name, v->name_len);
                memcpy(link + v->name_len, DELETED_SUFFIX, sizeof(DELETED_SUFFIX));
        }
        name = link;

        if (len >= strlen(DELETED_SUFFIX) &&
            memcmp(name + len - strlen(DELETED_SUFFIX), DELETED_SUFFIX, strlen(DELETED_SUFFIX)) == 0 &&
            !proc_name_leads_to(c, name, v)) {
                deleted = true;
                len -= strlen(DELETED_SUFFIX);
        }
        if (len >= PATH_MAX)
                return 0;
        if (deleted == v->deleted && len == v->name_len && memcmp(name, v->name, len) == 0)
                return 0;

        memcpy(buf, name, len);
        buf[len] = '\0';
        v->name = buf;
        v->name_len = len;
        v->deleted = deleted;
        v->kind = vma_kind_from_name(buf, v->inode);
        return 1;
}

/*
 * Whether the call may read one more image for a build ID; counts it if so.
 * Cache hits are not reads.
 */
static bool proc_call_take_read(ProcCall *c) {
        if (c->max_reads > 0 && c->n_reads >= c->max_reads)
                return false;
        c->n_reads++;
        return true;
}

/*
 * The build ID of the file (or vDSO) behind @v: from the call's cache (for
 * the vDSO: the Proc's, for its address space), else from the kernel when
 * the ioctl backend can ask, else from the file. Returns its length, 0
 * when there is none, or a negative errno when it is not known: -EDQUOT
 * when the call may read no more images, other errors when it could not
 * be read. Build IDs are best effort and never fail a request. May reuse
 * the source, so the caller must keep @v->name valid on its own.
 *
 * The target may change its map at any moment, so the cache key (taken
 * before reading, to look up) and the value (read afterwards) may describe
 * two different files. A value is remembered only when what was read is
 * shown to be the keyed file, unchanged: the kernel's answer is about the
 * keyed inode and the key still holds after it; a file we read ourselves
 * has the key's identity by fstat() of the very fd read.
 */
static int proc_vma_build_id(ProcCall *c, const Vma *v, uint8_t ret[static BUILD_ID_MAX]) {
        BuildIdCache *cache = c->cache;
        Proc *p = c->proc;
        FileIdentity key, read_file;
        bool cacheable = false;
        uint8_t id[BUILD_ID_MAX];
        int r;

        if (v->kind != VMA_KIND_FILE && v->kind != VMA_KIND_VDSO)
                return 0;

        /* Without the file's identity (no access to map_files) nothing is remembered. */
        if (cache && v->kind == VMA_KIND_FILE && proc_vma_file_identity(p, v, &key) >= 0) {
                r = build_id_cache_lookup(cache, &key, ret);
                if (r >= 0)
                        return r;
                cacheable = true;
        }

        if (v->kind == VMA_KIND_VDSO && p->vdso_known && p->vdso_start == v->start && p->vdso_end == v->end) {
                memcpy(ret, p->vdso_build_id, p->vdso_build_id_len);
                return (int) p->vdso_build_id_len;
        }

        if (!proc_call_take_read(c))
                return -EDQUOT;

        if (v->kind == VMA_KIND_VDSO) {
                r = proc_read_vdso_build_id(p, v, id);
                if (r < 0)
                        return r;
                p->vdso_known = true;
                p->vdso_start = v->start;
                p->vdso_end = v->end;
                p->vdso_build_id_len = (size_t) r;
                memcpy(p->vdso_build_id, id, (size_t) r);
                memcpy(ret, id, (size_t) r);
                return r;
        }

        r = 0;
        if (vma_source_backend(p->source) == VMA_BACKEND_IOCTL) {
                r = proc_kernel_build_id(p, v, id);
                if (r < 0)
                        return r;
                if (r > 0 && cacheable)
                        cacheable = proc_vma_file_identity(p, v, &read_file) >= 0 &&
                                    file_identity_equal(&read_file, &key);
        }
        /* Zero means none, or the kernel could not read it: then try ourselves. */
        if (r == 0) {
                r = proc_read_file_build_id(c, v, id, &read_file);
                if (r < 0)
                        return r;
                cacheable = cacheable && file_identity_equal(&read_file, &key);
        }

        if (cacheable)
                (void) build_id_cache_insert(cache, &key, id, (size_t) r);
        memcpy(ret, id, (size_t) r);
        return r;
}

/* The vDSO's ELF facts, read from memory and checked with proc_vdso_check(). */
static int proc_read_vdso_info(Proc *p, const Vma *v, ElfInfo **ret) {
        _cleanup_(elf_info_unrefp) ElfInfo *info = NULL;
        _cleanup_close_ int fd = -EBADF;
        int r;

        fd = openat_proc(p->dir_fd, "mem", O_RDONLY);
        if (fd < 0)
                return fd;
        r = elf_info_from_fd(fd, v->start, v->end - v->start, 0, &info);
        if (r < 0)
                return r;
        r = proc_vdso_check(p, v);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(info);
        return 0;
}

/*
 * The ELF facts of the file (or vDSO) behind @v, for NORMALIZE_ELF: from
 * the call's cache (for the vDSO: the Proc's, for its address space),
 * else read from the file's headers, opened as for a build ID read
 * without the kernel (proc_open_vma_file(): the regular file mapped, no
 * other), within the call's read budget. Cached only under the same proof
 * as proc_vma_build_id(): the fd read has the key's identity and did not
 * change while read. A cached entry without an htlhash does not answer a
 * call that wants one. Returns 0 and a reference in *ret; -EBADF for a
 * Proc without a process directory; -EDQUOT over the budget; other errors
 * when the file could not be read.
 */
static int proc_vma_elf_info(ProcCall *c, const Vma *v, unsigned flags, ElfInfo **ret) {
        _cleanup_(elf_info_unrefp) ElfInfo *info = NULL;
        _cleanup_close_ int fd = -EBADF;
        BuildIdCache *cache = c->cache;
        Proc *p = c->proc;
        bool htlhash = flags & NORMALIZE_HTLHASH, cacheable = false;
        FileIdentity key, read_file;
        struct stat before, after;
        int r;

        if (p->dir_fd < 0)
                return -EBADF;

        if (v->kind == VMA_KIND_VDSO) {
                if (p->vdso_info && p->vdso_info_start == v->start && p->vdso_info_end == v->end) {
                        *ret = elf_info_ref(p->vdso_info);
                        return 0;
                }
                if (!proc_call_take_read(c))
                        return -EDQUOT;
                r = proc_read_vdso_info(p, v, &info);
                if (r < 0)
                        return r;
                elf_info_unref(p->vdso_info);
                p->vdso_info = elf_info_ref(info);
                p->vdso_info_start = v->start;
                p->vdso_info_end = v->end;
                *ret = TAKE_PTR(info);
                return 0;
        }
        if (v->kind != VMA_KIND_FILE)
                return -EINVAL;

        if (cache && proc_vma_file_identity(p, v, &key) >= 0) {
                r = build_id_cache_lookup_info(cache, &key, &info);
                if (r >= 0 && (!htlhash || info->has_htlhash)) {
                        *ret = TAKE_PTR(info);
                        return 0;
                }
                info = elf_info_unref(info);
                cacheable = true;
        }

        if (!proc_call_take_read(c))
                return -EDQUOT;

        fd = proc_open_vma_file(c, v, &before);
        if (fd < 0)
                return fd;
        r = elf_info_from_fd(fd, 0, (uint64_t) before.st_size, htlhash ? ELF_INFO_HTLHASH : 0, &info);
        if (r < 0)
                return r;
        if (fstat(fd, &after) < 0)
                return -errno;
        if (!stat_same_contents(&before, &after))
                return -ESTALE;

        read_file = file_identity_from_stat(&after);
        if (cacheable && file_identity_equal(&read_file, &key))
                (void) build_id_cache_insert_info(cache, &key, info);

        *ret = TAKE_PTR(info);
        return 0;
}

void norm_result_set_vaddr(const NormModule *m, NormResult *res) {
        if (m->elf_status != NORM_VADDR_OK) {
                res->vaddr_status = m->elf_status;
                return;
        }
        if (IN_SET(m->elf->type, ELF_TYPE_NOT_ELF, ELF_TYPE_MALFORMED)) {
                res->vaddr_status = NORM_VADDR_NOT_ELF;
                return;
        }
        if (elf_info_offset_to_vaddr(m->elf, res->offset, &res->vaddr) < 0) {
                res->vaddr = 0;
                res->vaddr_status = NORM_VADDR_NOT_LOADED;
                return;
        }
        res->vaddr_status = NORM_VADDR_OK;
}

Normalization *normalization_free(Normalization *n) {
        if (!n)
                return NULL;
        for (size_t i = 0; i < n->n_modules; i++) {
                free(n->modules[i].path);
                free(n->modules[i].map_files);
                free(n->modules[i].host_path);
                elf_info_unref(n->modules[i].elf);
        }
        free(n->modules);
        free(n->results);
        free(n);
        return NULL;
}

static bool module_matches(const NormModule *m, const Vma *v) {
        if (v->kind == VMA_KIND_VDSO)
                return m->vdso;
        if (m->vdso || m->inode != v->inode || m->dev_major != v->dev_major || m->dev_minor != v->dev_minor)
                return false;
        /* Without an inode number the path is all we have to tell files apart. */
        return v->inode != 0 || strcmp(m->path, v->name) == 0;
}

/* The hash of a file for the module table: its device and inode, or its path without an inode. */
static uint64_t module_hash(uint64_t inode, uint32_t dev_major, uint32_t dev_minor, const char *path) {
        uint64_t h = inode ^ ((uint64_t) dev_major << 44) ^ ((uint64_t) dev_minor << 24);

        if (inode == 0)
                /* FNV-1a */
                for (h ^= UINT64_C(0xcbf29ce484222325); *path; path++)
                        h = (h ^ (uint8_t) *path) * UINT64_C(0x100000001b3);

        /* The splitmix64 finalizer: inode numbers are dense, spread them. */
        h = (h ^ (h >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
        h = (h ^ (h >> 27)) * UINT64_C(0x94d049bb133111eb);
        return h ^ (h >> 31);
}

typedef struct NormalizeState {
        Proc *proc;
        ProcCall *call;
        const NormalizeOptions *opts;
        Normalization *out;
        size_t n_modules_allocated;
        uint32_t last_module;
        /*
         * The modules by file, so that a batch over many files costs one
         * probe per VMA, not a scan of the modules found so far: open
         * addressing, module index + 1 per slot (0 is free), at most half
         * full. The vDSO is not in it.
         */
        uint32_t *slots;
        size_t n_slots;         /* a power of two, or 0 */
        uint32_t vdso_module;   /* index + 1, or 0 */
        VmaBackend how;         /* how the pass reads the map */
        uint64_t max_text_bytes;        /* its budget, for a text pass */
} NormalizeState;

static void normalize_state_done(NormalizeState *s) {
        free(s->slots);
        s->slots = NULL;
        s->n_slots = 0;
}

static void module_table_put(uint32_t *slots, size_t n_slots, uint64_t h, uint32_t index) {
        size_t i = (size_t) h & (n_slots - 1);

        while (slots[i] != 0)
                i = (i + 1) & (n_slots - 1);
        slots[i] = index + 1;
}

/* Make room for one more module in the table. */
static int module_table_reserve(NormalizeState *s) {
        const Normalization *out = s->out;
        uint32_t *slots;
        size_t n;

        if (2 * (out->n_modules + 1) <= s->n_slots)
                return 0;

        n = MAX(s->n_slots * 2, (size_t) 64);
        slots = calloc(n, sizeof(uint32_t));
        if (!slots)
                return -ENOMEM;
        for (size_t i = 0; i < out->n_modules; i++) {
                const NormModule *m = &out->modules[i];

                if (!m->vdso)
                        module_table_put(slots, n, module_hash(m->inode, m->dev_major, m->dev_minor, m->path),
                                         (uint32_t) i);
        }

        free(s->slots);
        s->slots = slots;
        s->n_slots = n;
        return 0;
}

/* The index of @v's module if the batch has one: 1 and *ret, or 0. */
static int module_table_find(const NormalizeState *s, const Vma *v, uint64_t h, uint32_t *ret) {
        if (v->kind == VMA_KIND_VDSO) {
                if (s->vdso_module == 0)
                        return 0;
                *ret = s->vdso_module - 1;
                return 1;
        }
        if (s->n_slots == 0)
                return 0;

        for (size_t i = (size_t) h & (s->n_slots - 1); s->slots[i] != 0; i = (i + 1) & (s->n_slots - 1))
                if (module_matches(&s->out->modules[s->slots[i] - 1], v)) {
                        *ret = s->slots[i] - 1;
                        return 1;
                }
        return 0;
}

/* The index of @v's module in this batch, added on first sight. */
static int normalize_module(NormalizeState *s, const Vma *v, uint32_t *ret) {
        Normalization *out = s->out;
        char name[PATH_MAX];
        Vma resolved = *v;
        NormModule *m;
        uint64_t h = 0;
        uint32_t index;
        int r;

        /* VMAs of one file usually follow each other: try the last one first. */
        if (s->last_module < out->n_modules && module_matches(&out->modules[s->last_module], v)) {
                *ret = s->last_module;
                return 0;
        }
        if (v->kind != VMA_KIND_VDSO)
                h = module_hash(v->inode, v->dev_major, v->dev_minor, v->name);
        if (module_table_find(s, v, h, &index) > 0) {
                *ret = s->last_module = index;
                return 0;
        }

        if (out->n_modules >= UINT32_MAX - 1)
                return -E2BIG;
        if (v->kind != VMA_KIND_VDSO) {
                r = module_table_reserve(s);
                if (r < 0)
                        return r;
        }

        if (out->n_modules == s->n_modules_allocated) {
                size_t n = MAX(s->n_modules_allocated * 2, (size_t) 8);
                NormModule *a;

                a = reallocarray(out->modules, n, sizeof(NormModule));
                if (!a)
                        return -ENOMEM;
                out->modules = a;
                s->n_modules_allocated = n;
        }

        /* The name is resolved once per module: the file is the same for all its VMAs. */
        if (proc_vma_resolve_name(s->call, &resolved, name) > 0)
                v = &resolved;

        m = &out->modules[out->n_modules];
        *m = (NormModule) {
                .inode = v->inode,
                .dev_major = v->dev_major,
                .dev_minor = v->dev_minor,
                .deleted = v->deleted,
                .vdso = v->kind == VMA_KIND_VDSO,
        };
        m->path = strdup(v->name);
        if (!m->path)
                return -ENOMEM;
        index = (uint32_t) out->n_modules++;
        if (m->vdso)
                s->vdso_module = index + 1;
        else
                module_table_put(s->slots, s->n_slots, h, index);

        if ((s->opts->flags & NORMALIZE_MAP_FILES) && !m->vdso && s->proc->dir_fd >= 0 &&
            asprintf(&m->map_files, "/proc/%d/map_files/%" PRIx64 "-%" PRIx64,
                     (int) s->proc->pid, v->start, v->end) < 0) {
                m->map_files = NULL;
                return -ENOMEM;
        }

        if (s->opts->flags & (NORMALIZE_ELF | NORMALIZE_HTLHASH)) {
                /* The read may reuse the source's name buffer: keep our copy. */
                Vma copy = *v;

                copy.name = m->path;
                /* Like build IDs, facts are best effort: no failure fails the request. */
                r = proc_vma_elf_info(s->call, &copy, s->opts->flags, &m->elf);
                m->elf_status = r >= 0 ? NORM_VADDR_OK :
                                r == -EDQUOT ? NORM_VADDR_SKIPPED : NORM_VADDR_UNREADABLE;
        }

        if ((s->opts->flags & NORMALIZE_BUILD_IDS) && m->elf) {
                /* The facts were read from this very file: no second read for its build ID. */
                m->build_id_len = m->elf->build_id_len;
                memcpy(m->build_id, m->elf->build_id, m->build_id_len);
        } else if (s->opts->flags & NORMALIZE_BUILD_IDS) {
                /* The lookup may reuse the source's name buffer: keep our copy. */
                Vma copy = *v;

                copy.name = m->path;
                r = proc_vma_build_id(s->call, &copy, m->build_id);
                if (r > 0)
                        m->build_id_len = (size_t) r;
                else if (r == -EDQUOT) {
                        m->build_id_skipped = true;
                        out->n_build_ids_skipped++;
                }
        }

        *ret = s->last_module = index;
        return 0;
}

typedef struct AddrIndex {
        uint64_t addr;
        uint32_t index;
} AddrIndex;

/*
 * Sort by address: an LSD radix sort, byte by byte, skipping the bytes all
 * addresses share (user addresses agree in their top bytes). Linear in the
 * number of addresses, where qsort() cost a third of a large batch. Uses
 * @a and @tmp (both of @n entries) in turn; returns the one holding the
 * result.
 */
static const AddrIndex *addr_index_sort(AddrIndex *a, AddrIndex *tmp, size_t n) {
        size_t counts[8][256] = {};

        for (size_t i = 0; i < n; i++)
                for (unsigned b = 0; b < 8; b++)
                        counts[b][(a[i].addr >> (8 * b)) & 0xff]++;

        for (unsigned b = 0; b < 8 && n > 0; b++) {
                size_t sum = 0;
                AddrIndex *swap;

                /* Every address has the same byte here: nothing to do. */
                if (counts[b][(a[0].addr >> (8 * b)) & 0xff] == n)
                        continue;

                for (unsigned d = 0; d < 256; d++) {
                        size_t c = counts[b][d];

                        counts[b][d] = sum;
                        sum += c;
                }
                for (size_t i = 0; i < n; i++)
                        tmp[counts[b][(a[i].addr >> (8 * b)) & 0xff]++] = a[i];

                swap = a;
                a = tmp;
                tmp = swap;
        }

        return a;
}

/*
 * One pass over the addresses in ascending order. The answer for an address
 * holds for the whole window [lo, hi] around it (a VMA, or a gap between
 * VMAs), so each window costs one lookup, however many addresses it holds.
 */
static int normalize_once(NormalizeState *s, const AddrIndex *sorted, size_t n) {
        Normalization *out = s->out;
        NormResult window = {};
        uint64_t lo = 1, hi = 0;        /* empty */
        uint64_t vma_start = 0, vma_offset = 0;
        int r;

        r = vma_source_begin_pass(s->proc->source, s->how, s->max_text_bytes);
        if (r < 0)
                return r;

        for (size_t i = 0; i < n; i++) {
                uint64_t a = sorted[i].addr;
                NormResult *res = &out->results[sorted[i].index];

                if (a < lo || a > hi) {
                        Vma v;

                        r = vma_source_find(s->proc->source, a, 0, &v);
                        if (r < 0)
                                return r;
                        out->n_lookups++;

                        if (r == 0 || v.start > a) {
                                window = (NormResult) { .kind = NORM_UNMAPPED };
                                lo = a;
                                hi = r == 0 ? UINT64_MAX : v.start - 1;
                        } else {
                                lo = v.start;
                                hi = v.end - 1;
                                vma_start = v.start;
                                vma_offset = v.offset;

                                switch (v.kind) {
                                case VMA_KIND_FILE:
                                case VMA_KIND_VDSO:
                                        window = (NormResult) { .kind = NORM_MODULE };
                                        r = normalize_module(s, &v, &window.module);
                                        if (r < 0)
                                                return r;
                                        break;
                                case VMA_KIND_ANONYMOUS:
                                        window = (NormResult) { .kind = NORM_ANONYMOUS };
                                        break;
                                default:
                                        window = (NormResult) { .kind = NORM_SPECIAL };
                                }
                        }
                }

                *res = window;
                if (window.kind == NORM_MODULE) {
                        res->offset = a - vma_start + vma_offset;
                        if (s->opts->flags & (NORMALIZE_ELF | NORMALIZE_HTLHASH))
                                norm_result_set_vaddr(&out->modules[window.module], res);
                }
        }

        return 0;
}

static void normalization_reset(Normalization *n) {
        for (size_t i = 0; i < n->n_modules; i++) {
                free(n->modules[i].path);
                free(n->modules[i].map_files);
                elf_info_unref(n->modules[i].elf);
        }
        n->n_modules = 0;
        n->n_lookups = 0;
        n->n_build_ids_skipped = 0;
}

/*
 * The lookups a batch will make, by what text passes saw of the map: in
 * each stretch of @stride lines, as many as there are distinct addresses,
 * @stride at most; beyond the lines seen, one per distinct address.
 */
static size_t estimate_lookups(const VmaTextProfile *pr, const AddrIndex *sorted, size_t n) {
        size_t lookups = 0, k = 0, in_stretch = 0;

        for (size_t i = 0; i < n; i++) {
                uint64_t a = sorted[i].addr;

                if (i > 0 && a == sorted[i - 1].addr)
                        continue;
                if (!pr) {
                        lookups++;
                        continue;
                }
                while (k < pr->n && pr->ends[k] <= a) {
                        k++;
                        in_stretch = 0;
                }
                if (k == pr->n || in_stretch < pr->stride) {
                        in_stretch++;
                        lookups++;
                }
        }
        return lookups;
}

static double ema(double old, double sample) {
        if (!(old > 0))
                return sample;
        return old + PROC_EMA_WEIGHT * (MIN(sample, PROC_EMA_MAX_RISE * old) - old);
}

/* Whether an estimate @age batches old, predicting @cost against the choice's, is tried. */
static bool proc_should_try(unsigned age, double cost, double choice_cost) {
        return age >= PROC_STALE_BATCHES &&
                cost <= PROC_TRIAL_FACTOR * choice_cost * (double) age / (double) PROC_STALE_BATCHES;
}

/*
 * How a batch of @n sorted addresses reads the map, and a text pass's
 * budget in bytes (0: none). See proc_set_costs() in proc.h.
 */
static int proc_choose(Proc *p, const NormalizeOptions *opts, const AddrIndex *sorted, size_t n,
                       VmaBackend *ret_how, uint64_t *ret_max_text_bytes) {
        double ioctl_cost, text_cost, text_ns;
        uint64_t bytes;
        VmaBackend how;

        *ret_max_text_bytes = 0;
        if (!IN_SET(opts->strategy, VMA_BACKEND_AUTO, VMA_BACKEND_IOCTL, VMA_BACKEND_TEXT))
                return -EINVAL;
        if (opts->strategy == VMA_BACKEND_IOCTL && p->backend != VMA_BACKEND_IOCTL)
                return -EOPNOTSUPP;
        if (opts->strategy != VMA_BACKEND_AUTO) {
                *ret_how = opts->strategy;
                return 0;
        }

        /* Nothing measured yet, or nothing to choose. */
        if (p->backend != VMA_BACKEND_IOCTL || n == 0 || !(p->ioctl_ns > 0)) {
                *ret_how = p->backend;
                return 0;
        }
        if (p->ioctl_age < PROC_AGE_MAX)
                p->ioctl_age++;
        if (p->text_age < PROC_AGE_MAX)
                p->text_age++;

        ioctl_cost = (double) estimate_lookups(vma_source_text_profile(p->source), sorted, n) * p->ioctl_ns;
        /*
         * Before the text was measured: a line of some 64 bytes costs
         * about a lookup, and a pass reads at least one chunk. Only the
         * first trial rests on this; the budget bounds what it costs.
         */
        text_ns = p->text_ns > 0 ? p->text_ns : p->ioctl_ns / 64;
        bytes = vma_source_text_bytes_to(p->source, sorted[n - 1].addr);
        text_cost = (double) (bytes > 0 ? bytes : VMA_TEXT_READ_SIZE) * text_ns;

        how = text_cost < ioctl_cost ? VMA_BACKEND_TEXT : VMA_BACKEND_IOCTL;
        if (!p->costs_fixed) {
                if (how == VMA_BACKEND_IOCTL && proc_should_try(p->text_age, text_cost, ioctl_cost))
                        how = VMA_BACKEND_TEXT;
                else if (how == VMA_BACKEND_TEXT && proc_should_try(p->ioctl_age, ioctl_cost, text_cost))
                        how = VMA_BACKEND_IOCTL;
        }

        /* A text pass may cost the trial factor times the ioctl's prediction, then the ioctl takes over. */
        if (how == VMA_BACKEND_TEXT)
                *ret_max_text_bytes = MAX((uint64_t) (PROC_TRIAL_FACTOR * ioctl_cost / text_ns), (uint64_t) 1);
        *ret_how = how;
        return 0;
}

/* Learn from the pass just done what its lookups and its text cost. */
static void proc_learn(Proc *p) {
        VmaPassStats st;

        if (p->costs_fixed || p->backend != VMA_BACKEND_IOCTL)
                return;

        vma_source_pass_stats(p->source, &st);
        if (st.n_ioctls_timed > 0) {
                p->ioctl_ns = ema(p->ioctl_ns, (double) st.ioctl_ns / (double) st.n_ioctls_timed);
                p->ioctl_age = 0;
        }
        if (st.text_bytes > 0) {
                p->text_ns = ema(p->text_ns, (double) st.text_ns / (double) st.text_bytes);
                p->text_age = 0;
        }
}

int proc_normalize(Proc *p, const uint64_t *addrs, size_t n_addrs, const NormalizeOptions *opts,
                   Normalization **ret) {
        _cleanup_(normalization_freep) Normalization *out = NULL;
        _cleanup_free_ AddrIndex *buf = NULL;
        const AddrIndex *sorted;
        _cleanup_(proc_call_done) ProcCall call = { .proc = p, .root_fd = -EBADF };
        NormalizeOptions no_opts = {};
        bool reattached = false, in_order = true;
        VmaBackend how = VMA_BACKEND_IOCTL;
        uint64_t max_text_bytes = 0;
        int r;

        if (n_addrs > 0 && !addrs)
                return -EINVAL;
        if (n_addrs > UINT32_MAX)
                return -EINVAL;
        if (!opts)
                opts = &no_opts;
        call.cache = opts->build_id_cache;
        call.max_reads = opts->max_build_id_reads;

        out = calloc(1, sizeof(*out));
        if (!out)
                return -ENOMEM;
        out->pid = p->pid;
        out->n_results = n_addrs;
        out->results = calloc(MAX(n_addrs, (size_t) 1), sizeof(NormResult));
        /* Room for the radix sort's second buffer too. */
        buf = malloc(MAX(n_addrs, (size_t) 1) * 2 * sizeof(AddrIndex));
        if (!out->results || !buf)
                return -ENOMEM;

        for (size_t i = 0; i < n_addrs; i++) {
                buf[i] = (AddrIndex) { .addr = addrs[i], .index = (uint32_t) i };
                if (i > 0 && addrs[i] < addrs[i - 1])
                        in_order = false;
        }
        sorted = in_order ? buf : addr_index_sort(buf, buf + n_addrs, n_addrs);

        /*
         * A failure with -ESRCH means the address space went away under us
         * (exec or exit): reattach and start over, a few times at most.
         */
        for (unsigned attempt = 0;; attempt++) {
                NormalizeState s = {
                        .proc = p,
                        .call = &call,
                        .opts = opts,
                        .out = out,
                };

                r = proc_prepare(p, opts, &reattached);
                if (r < 0)
                        return r;
                /* Chosen on the source the pass runs on: another address space has another map. */
                r = proc_choose(p, opts, sorted, n_addrs, &how, &max_text_bytes);
                if (r < 0)
                        return r;
                s.how = how;
                s.max_text_bytes = max_text_bytes;

                normalization_reset(out);
                s.n_modules_allocated = 0;
                free(out->modules);
                out->modules = NULL;

                r = normalize_once(&s, sorted, n_addrs);
                normalize_state_done(&s);
                proc_call_reset(&call);
                if (r >= 0)
                        proc_learn(p);
                if (r != -ESRCH)
                        break;
                p->source = vma_source_free(p->source);
                if (attempt + 1 == PROC_ATTEMPTS)
                        return r;
        }
        if (r < 0)
                return r;

        out->start_time = p->start_time;
        out->reattached = reattached;
        out->strategy = how;
        *ret = TAKE_PTR(out);
        return 0;
}

/* A walk's memory of the last file it read a build ID for: its other VMAs follow. */
typedef struct LastFile {
        bool valid;
        uint64_t inode;
        uint32_t dev_major;
        uint32_t dev_minor;
        int r;                  /* what proc_vma_build_id() said */
        uint8_t build_id[BUILD_ID_MAX];
        ElfInfo *elf;           /* with PROC_LIST_ELF: what was read, if anything */
        uint8_t elf_type;       /* with PROC_LIST_ELF */
} LastFile;

/*
 * Fill in @v's build ID for a walk. The VMAs of one file follow each
 * other, and a file's build ID was only taken as the file's once it was
 * shown to be that inode's, so the next VMAs of the same inode are told
 * the same without reading (or counting) it again. Returns 1 if the call
 * may read no more images and @v got none for that.
 */
static int proc_walk_build_id(ProcCall *c, Vma *v, unsigned flags, LastFile *last) {
        int r;

        if (!(last->valid && v->kind == VMA_KIND_FILE && v->inode != 0 && last->inode == v->inode &&
              last->dev_major == v->dev_major && last->dev_minor == v->dev_minor)) {
                _cleanup_(elf_info_unrefp) ElfInfo *info = NULL;
                int k = -ENOENT;

                last->elf_type = 0;
                last->elf = elf_info_unref(last->elf);
                /* Best effort, as build IDs: what cannot be read has no type. One read serves both. */
                if ((flags & PROC_LIST_ELF) && IN_SET(v->kind, VMA_KIND_FILE, VMA_KIND_VDSO))
                        k = proc_vma_elf_info(c, v, 0, &info);
                if (k >= 0) {
                        last->elf_type = (uint8_t) info->type;
                        memcpy(last->build_id, info->build_id, info->build_id_len);
                        r = info->build_id_len;
                        last->elf = TAKE_PTR(info);
                } else if (k == -EDQUOT)
                        r = k;
                else
                        r = proc_vma_build_id(c, v, last->build_id);
                /* Only a file's answer, or the lack of one for the cap, holds for its next VMAs. */
                last->valid = v->kind == VMA_KIND_FILE && v->inode != 0 && (r >= 0 || r == -EDQUOT);
                last->inode = v->inode;
                last->dev_major = v->dev_major;
                last->dev_minor = v->dev_minor;
                last->r = r;
        } else
                r = last->r;

        v->build_id_len = r > 0 ? (size_t) r : 0;
        memcpy(v->build_id, last->build_id, v->build_id_len);
        v->build_id_skipped = r == -EDQUOT;
        v->elf_type = last->elf_type;
        v->elf = last->elf;
        return r == -EDQUOT;
}

static void last_file_done(LastFile *last) {
        last->elf = elf_info_unref(last->elf);
}

/*
 * One walk over the address space the source is on. Returns the number of
 * VMAs given without a build ID for the call's cap at its end, or what
 * stopped it: -ESRCH if the address space went away, another -errno, or
 * the negative return of @fn (then *ret_by_fn is set). Sets *ret_emitted
 * once @fn was called.
 */
static int proc_walk_once(ProcCall *c, unsigned flags, ProcVmaFn fn, void *userdata,
                          bool *ret_emitted, bool *ret_by_fn) {
        Proc *p = c->proc;
        _cleanup_(last_file_done) LastFile last = {};
        char name[PATH_MAX];
        uint64_t addr = c->start;
        int r, n_skipped = 0;

        r = vma_source_begin(p->source);
        if (r < 0)
                return r;

        for (;;) {
                Vma v;

                r = vma_source_find(p->source, addr, 0, &v);
                if (r < 0)
                        return r;
                if (r == 0)
                        return n_skipped;
                /*
                 * The map changed since the last find: a mapping now covers
                 * where we are but begins before it. What lies below was
                 * given already; give the rest, as a split of the VMA would
                 * show it, so that the walk never overlaps itself.
                 */
                if (addr > c->start && v.start < addr) {
                        v.offset += addr - v.start;
                        v.start = addr;
                }
                addr = v.end;
                if ((flags & PROC_LIST_EXEC_ONLY) && !(v.perms & VMA_PERM_EXEC))
                        continue;

                if (proc_vma_resolve_name(c, &v, name) == 0 && (flags & PROC_LIST_BUILD_IDS)) {
                        /* The lookup may reuse the source's name buffer. */
                        memcpy(name, v.name, v.name_len + 1);
                        v.name = name;
                }
                if ((flags & PROC_LIST_BUILD_IDS) && n_skipped < INT_MAX &&
                    (!(flags & PROC_LIST_EXEC_BUILD_IDS) || (v.perms & VMA_PERM_EXEC)))
                        n_skipped += proc_walk_build_id(c, &v, flags, &last);

                *ret_emitted = true;
                r = fn(&v, userdata);
                if (r < 0) {
                        *ret_by_fn = true;
                        return r;
                }
        }
}

int proc_foreach_vma(Proc *p, unsigned flags, const NormalizeOptions *opts, ProcVmaFn fn, void *userdata) {
        _cleanup_(proc_call_done) ProcCall call = {
                .proc = p,
                .cache = opts ? opts->build_id_cache : NULL,
                .max_reads = opts ? opts->max_build_id_reads : 0,
                .start = opts ? opts->start : 0,
                .root_fd = -EBADF,
        };
        bool reattached = false, emitted = false;
        int r;

        /*
         * A failure with -ESRCH means the address space went away under us
         * (exec or exit): reattach and start over, a few times at most. Once
         * @fn has seen part of a map, only a caller that can take it back
         * may be started over.
         */
        for (unsigned attempt = 0;; attempt++) {
                bool by_fn = false;

                r = proc_prepare(p, opts, &reattached);
                if (r < 0)
                        return r;
                if (emitted) {
                        r = fn(NULL, userdata);
                        if (r < 0)
                                return r;
                        emitted = false;
                }

                r = proc_walk_once(&call, flags, fn, userdata, &emitted, &by_fn);
                proc_call_reset(&call);
                if (r != -ESRCH || by_fn)
                        break;
                p->source = vma_source_free(p->source);
                if (attempt + 1 == PROC_ATTEMPTS || (emitted && !(flags & PROC_LIST_RESTART)))
                        break;
        }

        return r;
}
