/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lru.h"

typedef struct LruEntry LruEntry;

struct LruEntry {
        LruEntry *older, *newer;        /* the recency list */
        LruEntry *bucket_next;          /* the hash chain */
        void *value;
        uint8_t key[];
};

struct Lru {
        size_t key_size;
        size_t max;
        size_t size;
        LruFreeFn free_value;
        LruEntry *newest, *oldest;
        size_t n_buckets;               /* a power of two */
        LruEntry **buckets;
};

/* FNV-1a: keys are small (a pid, a file identity), this is plenty. */
static size_t lru_bucket(const Lru *l, const void *key) {
        const uint8_t *p = key;
        uint64_t h = UINT64_C(0xcbf29ce484222325);

        for (size_t i = 0; i < l->key_size; i++) {
                h ^= p[i];
                h *= UINT64_C(0x100000001b3);
        }
        return (size_t) (h ^ (h >> 32)) & (l->n_buckets - 1);
}

int lru_new(Lru **ret, size_t key_size, size_t max, LruFreeFn free_value) {
        Lru *l;

        if (key_size == 0 || max == 0 || max > SIZE_MAX / 4)
                return -EINVAL;

        l = calloc(1, sizeof(*l));
        if (!l)
                return -ENOMEM;
        l->key_size = key_size;
        l->max = max;
        l->free_value = free_value;
        /* At most half full: chains stay short. */
        l->n_buckets = 8;
        while (l->n_buckets < 2 * max)
                l->n_buckets *= 2;
        l->buckets = calloc(l->n_buckets, sizeof(LruEntry *));
        if (!l->buckets) {
                free(l);
                return -ENOMEM;
        }

        *ret = l;
        return 0;
}

static LruEntry **lru_find(Lru *l, const void *key) {
        LruEntry **p = &l->buckets[lru_bucket(l, key)];

        while (*p && memcmp((*p)->key, key, l->key_size) != 0)
                p = &(*p)->bucket_next;
        return p;
}

static void lru_unlink(Lru *l, LruEntry *e) {
        if (e->older)
                e->older->newer = e->newer;
        else
                l->oldest = e->newer;
        if (e->newer)
                e->newer->older = e->older;
        else
                l->newest = e->older;
        e->older = e->newer = NULL;
}

static void lru_link_newest(Lru *l, LruEntry *e) {
        e->older = l->newest;
        e->newer = NULL;
        if (l->newest)
                l->newest->newer = e;
        else
                l->oldest = e;
        l->newest = e;
}

/* Drop the entry *slot points to. */
static void lru_drop(Lru *l, LruEntry **slot) {
        LruEntry *e = *slot;

        *slot = e->bucket_next;
        lru_unlink(l, e);
        l->size--;
        if (l->free_value)
                l->free_value(e->value);
        free(e);
}

void *lru_get(Lru *l, const void *key) {
        LruEntry *e = *lru_find(l, key);

        if (!e)
                return NULL;
        lru_unlink(l, e);
        lru_link_newest(l, e);
        return e->value;
}

int lru_put(Lru *l, const void *key, void *value) {
        LruEntry **slot = lru_find(l, key), *e;

        if (*slot) {
                e = *slot;
                if (l->free_value && e->value != value)
                        l->free_value(e->value);
                e->value = value;
                lru_unlink(l, e);
                lru_link_newest(l, e);
                return 0;
        }

        e = malloc(sizeof(*e) + l->key_size);
        if (!e)
                return -ENOMEM;

        if (l->size == l->max) {
                lru_drop(l, lru_find(l, l->oldest->key));
                slot = lru_find(l, key);        /* the chain may have changed */
        }

        memcpy(e->key, key, l->key_size);
        e->value = value;
        e->bucket_next = NULL;
        *slot = e;
        lru_link_newest(l, e);
        l->size++;
        return 0;
}

int lru_remove(Lru *l, const void *key) {
        LruEntry **slot = lru_find(l, key);

        if (!*slot)
                return 0;
        lru_drop(l, slot);
        return 1;
}

int lru_remove_oldest(Lru *l) {
        if (!l->oldest)
                return 0;
        lru_drop(l, lru_find(l, l->oldest->key));
        return 1;
}

size_t lru_size(const Lru *l) {
        return l->size;
}

size_t lru_max(const Lru *l) {
        return l->max;
}

Lru *lru_free(Lru *l) {
        if (!l)
                return NULL;
        while (l->oldest)
                lru_drop(l, lru_find(l, l->oldest->key));
        free(l->buckets);
        free(l);
        return NULL;
}
