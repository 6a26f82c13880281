/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * A bounded map with least-recently-used eviction: fixed-size keys compared
 * by their bytes, opaque values. Lookups and insertions are O(1). When a
 * value leaves the map (evicted, removed, replaced or at lru_free()), the
 * map calls the free function given at creation on it.
 */

#include <stddef.h>
#include <stdint.h>

#include "macro.h"

typedef struct Lru Lru;
typedef void (*LruFreeFn)(void *value);

/* A map of at most @max entries with keys of @key_size bytes. @free_value may be NULL. */
int lru_new(Lru **ret, size_t key_size, size_t max, LruFreeFn free_value);
Lru *lru_free(Lru *l);
DEFINE_CLEANUP(Lru *, lru_free);

/* The value for @key, which becomes the most recently used, or NULL. */
void *lru_get(Lru *l, const void *key);

/*
 * Insert or replace the value for @key. When the map is full, the least
 * recently used entry is evicted first. Returns 0 or -ENOMEM (then @value
 * was not taken: the caller still owns it).
 */
int lru_put(Lru *l, const void *key, void *value);

/* Remove @key, freeing its value. Returns 1 if it was there, 0 if not. */
int lru_remove(Lru *l, const void *key);

/* Remove the least recently used entry, freeing its value. Returns 1 if there was one, 0 if empty. */
int lru_remove_oldest(Lru *l);

size_t lru_size(const Lru *l);
size_t lru_max(const Lru *l);
