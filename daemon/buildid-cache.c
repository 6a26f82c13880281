/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>

#include "buildid-cache.h"
#include "lru.h"

struct BuildIdCache {
        Lru *lru;
        uint64_t hits;
        uint64_t misses;
};

typedef struct BuildIdEntry {
        size_t len;
        uint8_t id[BUILD_ID_MAX];
} BuildIdEntry;

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
        r = lru_new(&c->lru, sizeof(FileIdentity), max, free);
        if (r < 0) {
                free(c);
                return r;
        }

        *ret = c;
        return 0;
}

BuildIdCache *build_id_cache_free(BuildIdCache *c) {
        if (!c)
                return NULL;
        lru_free(c->lru);
        free(c);
        return NULL;
}

int build_id_cache_lookup(BuildIdCache *c, const FileIdentity *file, uint8_t ret[static BUILD_ID_MAX]) {
        BuildIdEntry *e = lru_get(c->lru, file);

        if (!e) {
                c->misses++;
                return -ENOENT;
        }
        c->hits++;
        memcpy(ret, e->id, e->len);
        return (int) e->len;
}

int build_id_cache_insert(BuildIdCache *c, const FileIdentity *file, const uint8_t *id, size_t len) {
        BuildIdEntry *e;
        int r;

        if (len > BUILD_ID_MAX)
                return -EINVAL;

        e = calloc(1, sizeof(*e));
        if (!e)
                return -ENOMEM;
        e->len = len;
        if (len > 0)
                memcpy(e->id, id, len);

        r = lru_put(c->lru, file, e);
        if (r < 0)
                free(e);
        return r;
}

void build_id_cache_stats(const BuildIdCache *c, BuildIdCacheStats *ret) {
        *ret = (BuildIdCacheStats) {
                .size = lru_size(c->lru),
                .max = lru_max(c->lru),
                .hits = c->hits,
                .misses = c->misses,
        };
}
