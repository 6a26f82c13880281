/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "snapshot.h"

/*
 * One executable file mapping. Its path and build ID live in the
 * snapshot's blob, shared by the mappings of one file that follow each
 * other.
 */
typedef struct SnapshotEntry {
        uint64_t start;                 /* first, as in SnapshotRange: see first_above() */
        uint64_t end;
        uint64_t offset;
        uint64_t inode;
        uint32_t dev_major;
        uint32_t dev_minor;
        uint32_t path;                  /* offset into the blob, NUL-terminated */
        uint32_t build_id;              /* offset into the blob, of build_id_len bytes */
        uint32_t file;                  /* the index of its file: one per module proc_normalize() would make */
        ElfInfo *elf;                   /* the file's ELF facts, a reference; NULL when not read */
        uint8_t build_id_len;
        bool build_id_skipped;
        bool deleted;
        bool vdso;
} SnapshotEntry;

/* A file mapping that is not executable: only where it lies. Adjacent ones are merged. */
typedef struct SnapshotRange {
        uint64_t start;
        uint64_t end;
} SnapshotRange;

struct Snapshot {
        unsigned n_ref;                 /* atomic */
        pid_t pid;
        uint64_t start_time;
        SnapshotEntry *entries;         /* sorted by start, never overlapping */
        size_t n_entries, allocated_entries;
        SnapshotRange *others;          /* sorted, never overlapping */
        size_t n_others, allocated_others;
        char *blob;
        size_t blob_size, allocated_blob;
        size_t n_files;
        size_t elf_memory;              /* of the ELF facts it keeps alive, each counted once a run of entries */
        size_t max_size;                /* while it is taken; 0: no limit */
        bool build_ids;                 /* taken with build IDs, and ELF facts */
};

static void snapshot_reset(Snapshot *s) {
        for (size_t i = 0; i < s->n_entries; i++)
                s->entries[i].elf = elf_info_unref(s->entries[i].elf);
        s->n_entries = s->n_others = s->blob_size = 0;
        s->elf_memory = 0;
}

static Snapshot *snapshot_free(Snapshot *s) {
        if (!s)
                return NULL;
        snapshot_reset(s);
        free(s->entries);
        free(s->others);
        free(s->blob);
        free(s);
        return NULL;
}

DEFINE_CLEANUP(Snapshot *, snapshot_free);

Snapshot *snapshot_ref(Snapshot *s) {
        if (s)
                __atomic_add_fetch(&s->n_ref, 1, __ATOMIC_RELAXED);
        return s;
}

Snapshot *snapshot_unref(Snapshot *s) {
        if (s && __atomic_sub_fetch(&s->n_ref, 1, __ATOMIC_ACQ_REL) == 0)
                snapshot_free(s);
        return NULL;
}

pid_t snapshot_pid(const Snapshot *s) {
        return s->pid;
}

uint64_t snapshot_start_time(const Snapshot *s) {
        return s->start_time;
}

size_t snapshot_n_mappings(const Snapshot *s) {
        return s->n_entries;
}

bool snapshot_has_build_ids(const Snapshot *s) {
        return s->build_ids;
}

size_t snapshot_size(const Snapshot *s) {
        return sizeof(*s) + s->allocated_entries * sizeof(SnapshotEntry) +
               s->allocated_others * sizeof(SnapshotRange) + s->allocated_blob + s->elf_memory;
}

/* Shrink @*array of @*allocated elements of @size bytes to the @n it holds; kept as it is if that fails. */
static void shrink_array(void **array, size_t *allocated, size_t size, size_t n) {
        void *p;

        if (n == *allocated)
                return;
        if (n == 0) {
                *array = mfree(*array);
                *allocated = 0;
                return;
        }
        p = realloc(*array, n * size);
        if (p) {
                *array = p;
                *allocated = n;
        }
}

static void snapshot_trim(Snapshot *s) {
        shrink_array((void **) &s->entries, &s->allocated_entries, sizeof(SnapshotEntry), s->n_entries);
        shrink_array((void **) &s->others, &s->allocated_others, sizeof(SnapshotRange), s->n_others);
        shrink_array((void **) &s->blob, &s->allocated_blob, 1, s->blob_size);
}

/* Grow @*array of @*allocated elements of @size bytes to hold @n, within the snapshot's limit. */
/* The bytes it holds once trimmed: what its arrays use, not what they were grown to. */
static size_t snapshot_used_size(const Snapshot *s) {
        return sizeof(*s) + s->n_entries * sizeof(SnapshotEntry) + s->n_others * sizeof(SnapshotRange) +
               s->blob_size + s->elf_memory;
}

/*
 * Grow @*array of @*allocated elements of @size bytes, @used of them in use,
 * to hold @n, within the snapshot's limit. The limit is on what it holds
 * once trimmed: the doubling may take up to twice that while it is taken.
 */
static int snapshot_grow(Snapshot *s, void **array, size_t *allocated, size_t size, size_t used, size_t n) {
        size_t a;
        void *p;

        assert(n >= used);
        if (s->max_size > 0 && snapshot_used_size(s) + (n - used) * size > s->max_size)
                return -E2BIG;
        if (n <= *allocated)
                return 0;
        a = MAX(*allocated * 2, (size_t) 16);
        a = MAX(a, n);
        if (a > UINT32_MAX / size)
                return -E2BIG;
        p = realloc(*array, a * size);
        if (!p)
                return -ENOMEM;
        *array = p;
        *allocated = a;
        return 0;
}

/* Copy @len bytes into the blob; their offset in *ret. */
static int snapshot_blob_add(Snapshot *s, const void *data, size_t len, uint32_t *ret) {
        int r;

        if (len > UINT32_MAX - s->blob_size)
                return -E2BIG;
        r = snapshot_grow(s, (void **) &s->blob, &s->allocated_blob, 1, s->blob_size, s->blob_size + len);
        if (r < 0)
                return r;
        memcpy(s->blob + s->blob_size, data, len);
        *ret = (uint32_t) s->blob_size;
        s->blob_size += len;
        return 0;
}

static bool vma_same_file(const Vma *v, const SnapshotEntry *e, const char *blob) {
        if ((v->kind == VMA_KIND_VDSO) != e->vdso)
                return false;
        if (e->vdso)
                return true;
        return v->inode == e->inode && v->dev_major == e->dev_major && v->dev_minor == e->dev_minor &&
               strcmp(v->name, blob + e->path) == 0;
}

static int snapshot_add_vma(const Vma *v, void *userdata) {
        Snapshot *s = userdata;
        SnapshotEntry *e, *last;
        int r;

        /* The process exec'd during the walk: start over on the new address space. */
        if (!v) {
                snapshot_reset(s);
                return 0;
        }

        if (!IN_SET(v->kind, VMA_KIND_FILE, VMA_KIND_VDSO))
                return 0;

        if (!(v->perms & VMA_PERM_EXEC)) {
                SnapshotRange *o = s->n_others > 0 ? &s->others[s->n_others - 1] : NULL;

                if (o && o->end == v->start) {
                        o->end = v->end;
                        return 0;
                }
                r = snapshot_grow(s, (void **) &s->others, &s->allocated_others, sizeof(SnapshotRange),
                                  s->n_others, s->n_others + 1);
                if (r < 0)
                        return r;
                s->others[s->n_others++] = (SnapshotRange) { .start = v->start, .end = v->end };
                return 0;
        }

        r = snapshot_grow(s, (void **) &s->entries, &s->allocated_entries, sizeof(SnapshotEntry),
                          s->n_entries, s->n_entries + 1);
        if (r < 0)
                return r;
        last = s->n_entries > 0 ? &s->entries[s->n_entries - 1] : NULL;
        e = &s->entries[s->n_entries];
        *e = (SnapshotEntry) {
                .start = v->start,
                .end = v->end,
                .offset = v->offset,
                .inode = v->inode,
                .dev_major = v->dev_major,
                .dev_minor = v->dev_minor,
                .build_id_len = (uint8_t) MIN(v->build_id_len, (size_t) BUILD_ID_MAX),
                .build_id_skipped = v->build_id_skipped,
                .deleted = v->deleted,
                .vdso = v->kind == VMA_KIND_VDSO,
        };

        /* The mappings of one file follow each other: share its strings with the last one. */
        if (last && vma_same_file(v, last, s->blob) && last->deleted == e->deleted &&
            last->build_id_len == e->build_id_len &&
            memcmp(s->blob + last->build_id, v->build_id, e->build_id_len) == 0) {
                e->path = last->path;
                e->build_id = last->build_id;
        } else {
                r = snapshot_blob_add(s, v->name, v->name_len + 1, &e->path);
                if (r >= 0)
                        r = snapshot_blob_add(s, v->build_id, e->build_id_len, &e->build_id);
                if (r < 0)
                        return r;
        }
        /* Shared with the cache; counted as if the snapshot alone kept them, which it may. */
        if (v->elf && !(last && last->elf == v->elf)) {
                if (s->max_size > 0 && snapshot_used_size(s) + sizeof(SnapshotEntry) + v->elf->memory > s->max_size)
                        return -E2BIG;
                s->elf_memory += v->elf->memory;
        }
        e->elf = elf_info_ref(v->elf);
        s->n_entries++;
        return 0;
}

/* Whether two mappings are of one file, as proc_normalize() tells its modules apart. */
static int entry_file_compare(const SnapshotEntry *a, const SnapshotEntry *b, const char *blob) {
        if (a->vdso != b->vdso)
                return a->vdso ? 1 : -1;
        if (a->vdso)
                return 0;
        if (a->inode != b->inode)
                return a->inode < b->inode ? -1 : 1;
        if (a->dev_major != b->dev_major)
                return a->dev_major < b->dev_major ? -1 : 1;
        if (a->dev_minor != b->dev_minor)
                return a->dev_minor < b->dev_minor ? -1 : 1;
        /* Without an inode number the path is all there is to tell files apart. */
        return a->inode == 0 ? strcmp(blob + a->path, blob + b->path) : 0;
}

static int entry_index_compare(const void *x, const void *y, void *userdata) {
        const Snapshot *s = userdata;
        uint32_t a = *(const uint32_t *) x, b = *(const uint32_t *) y;
        int c = entry_file_compare(&s->entries[a], &s->entries[b], s->blob);

        return c != 0 ? c : (a > b) - (a < b);
}

/* Number the files: the entries of one file get one index, whatever lies between them. */
static int snapshot_number_files(Snapshot *s) {
        _cleanup_free_ uint32_t *order = NULL;

        s->n_files = 0;
        if (s->n_entries == 0)
                return 0;
        order = calloc(s->n_entries, sizeof(uint32_t));
        if (!order)
                return -ENOMEM;
        for (size_t i = 0; i < s->n_entries; i++)
                order[i] = (uint32_t) i;
        qsort_r(order, s->n_entries, sizeof(uint32_t), entry_index_compare, s);

        for (size_t i = 0; i < s->n_entries; i++) {
                if (i > 0 && entry_file_compare(&s->entries[order[i - 1]], &s->entries[order[i]], s->blob) != 0)
                        s->n_files++;
                s->entries[order[i]].file = (uint32_t) s->n_files;
        }
        s->n_files++;
        return 0;
}

int snapshot_take(Proc *p, const NormalizeOptions *opts, size_t max_size, Snapshot **ret) {
        _cleanup_(snapshot_freep) Snapshot *s = NULL;
        int r;

        if (!p || !ret)
                return -EINVAL;

        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->n_ref = 1;
        s->max_size = max_size;
        if (max_size > 0 && snapshot_size(s) > max_size)
                return -E2BIG;

        /* Only the executable mappings' build IDs are kept: the files of the others are not read. */
        s->build_ids = !opts || (opts->flags & NORMALIZE_BUILD_IDS);
        r = proc_foreach_vma(p, PROC_LIST_RESTART | (s->build_ids ? PROC_LIST_BUILD_IDS | PROC_LIST_EXEC_BUILD_IDS |
                                                     PROC_LIST_ELF : 0),
                             opts, snapshot_add_vma, s);
        if (r < 0)
                return r;
        r = snapshot_number_files(s);
        if (r < 0)
                return r;

        /* After the walk: it answers for the address space it walked, which an exec may have replaced. */
        s->pid = proc_pid(p);
        s->start_time = proc_start_time(p);
        s->max_size = 0;
        /* It never grows again: give back what the growing left over. */
        snapshot_trim(s);
        *ret = TAKE_PTR(s);
        return 0;
}

/*
 * The index of the first of @n elements of @size bytes at @base, sorted by
 * the start address each begins with, that starts above @addr: the one
 * before it is the only one that may cover @addr.
 */
static size_t first_above(const void *base, size_t n, size_t size, uint64_t addr) {
        size_t lo = 0, hi = n;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                uint64_t start;

                memcpy(&start, (const uint8_t *) base + mid * size, sizeof(start));
                if (start <= addr)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return lo;
}

/* The entry covering @addr, or NULL. */
static const SnapshotEntry *snapshot_find(const Snapshot *s, uint64_t addr) {
        size_t i = first_above(s->entries, s->n_entries, sizeof(SnapshotEntry), addr);

        if (i == 0 || addr >= s->entries[i - 1].end)
                return NULL;
        return &s->entries[i - 1];
}

static bool snapshot_other_covers(const Snapshot *s, uint64_t addr) {
        size_t i = first_above(s->others, s->n_others, sizeof(SnapshotRange), addr);

        return i > 0 && addr < s->others[i - 1].end;
}

typedef struct AddrIndex {
        uint64_t addr;
        size_t index;
} AddrIndex;

static int addr_index_compare(const void *x, const void *y) {
        const AddrIndex *a = x, *b = y;

        if (a->addr != b->addr)
                return a->addr < b->addr ? -1 : 1;
        return (a->index > b->index) - (a->index < b->index);
}

static int snapshot_module(const Snapshot *s, const SnapshotEntry *e, unsigned flags, Normalization *out,
                           size_t *allocated, uint32_t *module_of_file, uint32_t *ret) {
        NormModule *m;

        if (module_of_file[e->file] != UINT32_MAX) {
                *ret = module_of_file[e->file];
                return 0;
        }

        if (out->n_modules == *allocated) {
                size_t a = MAX(*allocated * 2, (size_t) 8);
                NormModule *p = reallocarray(out->modules, a, sizeof(NormModule));

                if (!p)
                        return -ENOMEM;
                out->modules = p;
                *allocated = a;
        }
        m = &out->modules[out->n_modules];
        *m = (NormModule) {
                .inode = e->inode,
                .dev_major = e->dev_major,
                .dev_minor = e->dev_minor,
                .deleted = e->deleted,
                .vdso = e->vdso,
        };
        m->path = strdup(s->blob + e->path);
        if (!m->path)
                return -ENOMEM;
        if (flags & NORMALIZE_BUILD_IDS) {
                m->build_id_len = e->build_id_len;
                memcpy(m->build_id, s->blob + e->build_id, e->build_id_len);
                m->build_id_skipped = e->build_id_skipped;
                out->n_build_ids_skipped += e->build_id_skipped;
        }
        /* Only a snapshot taken with build IDs read the files: else there is nothing to tell. */
        if ((flags & NORMALIZE_ELF) && s->build_ids) {
                m->elf = elf_info_ref(e->elf);
                m->elf_status = e->elf ? NORM_VADDR_OK :
                                e->build_id_skipped ? NORM_VADDR_SKIPPED : NORM_VADDR_UNREADABLE;
        }
        module_of_file[e->file] = (uint32_t) out->n_modules;
        *ret = (uint32_t) out->n_modules++;
        return 0;
}

int snapshot_normalize(const Snapshot *s, const uint64_t *addrs, size_t n, unsigned flags, Normalization **ret) {
        _cleanup_(normalization_freep) Normalization *out = NULL;
        _cleanup_free_ uint32_t *module_of_file = NULL;
        _cleanup_free_ AddrIndex *sorted = NULL;
        const SnapshotEntry *last = NULL;
        size_t allocated = 0;
        int r;

        if (!s || (n > 0 && !addrs) || !ret)
                return -EINVAL;

        out = calloc(1, sizeof(*out));
        if (!out)
                return -ENOMEM;
        out->pid = s->pid;
        out->start_time = s->start_time;
        out->strategy = VMA_BACKEND_AUTO;
        out->n_results = n;
        out->results = calloc(MAX(n, (size_t) 1), sizeof(NormResult));
        sorted = calloc(MAX(n, (size_t) 1), sizeof(AddrIndex));
        module_of_file = malloc(MAX(s->n_files, (size_t) 1) * sizeof(uint32_t));
        if (!out->results || !sorted || !module_of_file)
                return -ENOMEM;
        memset(module_of_file, 0xff, MAX(s->n_files, (size_t) 1) * sizeof(uint32_t));

        /* In address order, as proc_normalize() goes: its modules are numbered so. */
        for (size_t i = 0; i < n; i++)
                sorted[i] = (AddrIndex) { .addr = addrs[i], .index = i };
        qsort(sorted, n, sizeof(AddrIndex), addr_index_compare);

        for (size_t i = 0; i < n; i++) {
                uint64_t a = sorted[i].addr;
                NormResult *res = &out->results[sorted[i].index];
                const SnapshotEntry *e;

                if (last && a >= last->start && a < last->end)
                        e = last;
                else {
                        e = snapshot_find(s, a);
                        if (e) {
                                out->n_lookups++;
                                last = e;
                        }
                }
                if (!e) {
                        *res = (NormResult) { .kind = NORM_EXITED };
                        continue;
                }

                *res = (NormResult) { .kind = NORM_MODULE, .offset = a - e->start + e->offset };
                r = snapshot_module(s, e, flags, out, &allocated, module_of_file, &res->module);
                if (r < 0)
                        return r;
                if (flags & NORMALIZE_ELF)
                        norm_result_set_vaddr(&out->modules[res->module], res);
        }

        *ret = TAKE_PTR(out);
        return 0;
}

bool snapshot_is_stale(const Snapshot *s, const uint64_t *addrs, size_t n_addrs, const Normalization *n) {
        _cleanup_free_ bool *checked = NULL;

        if (n->start_time != s->start_time || n->reattached)
                return true;

        /*
         * Every batch pays for this: one look per module (at the first
         * address of it), not per address. A file the snapshot has, mapped
         * once more elsewhere, goes unseen until an answer's first address
         * of it lies there; after the exit, addresses there are "exited".
         */
        checked = calloc(MAX(n->n_modules, (size_t) 1), sizeof(bool));
        for (size_t i = 0; i < MIN(n_addrs, n->n_results); i++) {
                const NormResult *res = &n->results[i];
                const SnapshotEntry *e;
                const NormModule *m;

                if (res->kind != NORM_MODULE || res->module >= n->n_modules)
                        continue;
                if (checked) {
                        if (checked[res->module])
                                continue;
                        checked[res->module] = true;
                }
                m = &n->modules[res->module];
                e = snapshot_find(s, addrs[i]);
                if (!e) {
                        if (!snapshot_other_covers(s, addrs[i]))
                                return true;
                        continue;
                }
                if (m->vdso != e->vdso || (!e->vdso && (m->inode != e->inode || m->dev_major != e->dev_major ||
                                                        m->dev_minor != e->dev_minor)) ||
                    res->offset != addrs[i] - e->start + e->offset)
                        return true;
        }
        return false;
}
