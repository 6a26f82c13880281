/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>

#include "buildid-cache.h"
#include "lru.h"

/* Shared between the threads normalizing for different processes: everything below the lock. */
struct BuildIdCache {
        pthread_mutex_t lock;
        Lru *lru;
        size_t bytes;           /* held by the entries, counted as they come and go */
        size_t max_bytes;
        uint64_t hits;
        uint64_t misses;
};

typedef struct BuildIdEntry {
        BuildIdCache *cache;    /* whose byte count the entry is in */
        size_t bytes;
        size_t len;
        uint8_t id[BUILD_ID_MAX];
        ElfInfo *info;          /* NULL: only the build ID is known */
} BuildIdEntry;

/* The Lru's destructor: always called with the cache locked, or from build_id_cache_free(). */
static void build_id_entry_free(void *p) {
        BuildIdEntry *e = p;

        e->cache->bytes -= e->bytes;
        elf_info_unref(e->info);
        free(e);
}

_Static_assert(sizeof(FileIdentity) == 32, "FileIdentity must have no padding: it is compared bytewise");

FileIdentity file_identity_from_stat(const struct stat *st) {
        return (FileIdentity) {
                .inode = st->st_ino,
                .dev_major = major(st->st_dev),
                .dev_minor = minor(st->st_dev),
                .ctime_sec = st->st_ctim.tv_sec,
                .ctime_nsec = st->st_ctim.tv_nsec,
        };
}

bool file_identity_equal(const FileIdentity *a, const FileIdentity *b) {
        return memcmp(a, b, sizeof(*a)) == 0;
}

int build_id_cache_new(BuildIdCache **ret, size_t max) {
        BuildIdCache *c;
        int r;

        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->max_bytes = max > SIZE_MAX / BUILD_ID_CACHE_BYTES_PER_ENTRY ? SIZE_MAX :
                       max * BUILD_ID_CACHE_BYTES_PER_ENTRY;
        r = lru_new(&c->lru, sizeof(FileIdentity), max, build_id_entry_free);
        if (r < 0) {
                free(c);
                return r;
        }
        r = pthread_mutex_init(&c->lock, NULL);
        if (r != 0) {
                lru_free(c->lru);
                free(c);
                return -r;
        }

        *ret = c;
        return 0;
}

BuildIdCache *build_id_cache_free(BuildIdCache *c) {
        if (!c)
                return NULL;
        lru_free(c->lru);
        (void) pthread_mutex_destroy(&c->lock);
        free(c);
        return NULL;
}

static void unlockp(pthread_mutex_t **m) {
        if (*m)
                (void) pthread_mutex_unlock(*m);
}

/* Hold @c's lock until the end of the scope. */
#define BUILD_ID_CACHE_LOCKED(c)                                                        \
        _cleanup_(unlockp) _unused_ pthread_mutex_t *_held_ = ({                        \
                (void) pthread_mutex_lock(&(c)->lock);                                  \
                &(c)->lock;                                                             \
        })

int build_id_cache_lookup(BuildIdCache *c, const FileIdentity *file, uint8_t ret[static BUILD_ID_MAX]) {
        BUILD_ID_CACHE_LOCKED(c);
        BuildIdEntry *e;

        /* lru_get() reorders the list: a lookup writes too. */
        e = lru_get(c->lru, file);
        if (!e) {
                c->misses++;
                return -ENOENT;
        }
        c->hits++;
        memcpy(ret, e->id, e->len);
        return (int) e->len;
}

/* Put @e under @file and evict down to the byte budget. Called with the lock held. */
static int build_id_cache_put_locked(BuildIdCache *c, const FileIdentity *file, BuildIdEntry *e) {
        int r;

        r = lru_put(c->lru, file, e);
        if (r < 0)
                return r;
        c->bytes += e->bytes;

        /* @e is the newest and fits alone: the loop stops before it. */
        while (c->bytes > c->max_bytes && lru_remove_oldest(c->lru) > 0)
                ;
        return 0;
}

int build_id_cache_insert(BuildIdCache *c, const FileIdentity *file, const uint8_t *id, size_t len) {
        BuildIdEntry *e;
        int r;

        if (len > BUILD_ID_MAX)
                return -EINVAL;

        /* Made before taking the lock, to hold it no longer than the map needs. */
        e = calloc(1, sizeof(*e));
        if (!e)
                return -ENOMEM;
        e->cache = c;
        e->bytes = sizeof(*e);
        e->len = len;
        if (len > 0)
                memcpy(e->id, id, len);

        {
                BUILD_ID_CACHE_LOCKED(c);

                if (e->bytes > c->max_bytes)
                        r = -E2BIG;
                else
                        r = build_id_cache_put_locked(c, file, e);
        }
        if (r < 0)
                free(e);
        return r;
}

int build_id_cache_lookup_info(BuildIdCache *c, const FileIdentity *file, ElfInfo **ret) {
        BUILD_ID_CACHE_LOCKED(c);
        BuildIdEntry *e;

        e = lru_get(c->lru, file);
        if (!e || !e->info) {
                c->misses++;
                return -ENOENT;
        }
        c->hits++;
        *ret = elf_info_ref(e->info);
        return 0;
}

int build_id_cache_insert_info(BuildIdCache *c, const FileIdentity *file, ElfInfo *info) {
        BuildIdEntry *e;
        int r;

        assert(info);

        e = calloc(1, sizeof(*e));
        if (!e)
                return -ENOMEM;
        e->cache = c;
        e->bytes = sizeof(*e) + info->memory;
        e->len = info->build_id_len;
        memcpy(e->id, info->build_id, e->len);
        e->info = elf_info_ref(info);

        {
                BUILD_ID_CACHE_LOCKED(c);

                if (e->bytes > c->max_bytes)
                        r = -E2BIG;
                else
                        r = build_id_cache_put_locked(c, file, e);
        }
        if (r < 0) {
                elf_info_unref(e->info);
                free(e);
        }
        return r;
}

int build_id_cache_set_max_bytes(BuildIdCache *c, size_t max_bytes) {
        BUILD_ID_CACHE_LOCKED(c);

        if (max_bytes == 0)
                return -EINVAL;
        c->max_bytes = max_bytes;
        while (c->bytes > c->max_bytes && lru_remove_oldest(c->lru) > 0)
                ;
        return 0;
}

void build_id_cache_stats(const BuildIdCache *c, BuildIdCacheStats *ret) {
        /* Taking the lock is no change to the cache as its users see it. */
        BuildIdCache *m = (BuildIdCache *) c;
        BUILD_ID_CACHE_LOCKED(m);

        *ret = (BuildIdCacheStats) {
                .size = lru_size(m->lru),
                .max = lru_max(m->lru),
                .bytes = m->bytes,
                .max_bytes = m->max_bytes,
                .hits = m->hits,
                .misses = m->misses,
        };
}
