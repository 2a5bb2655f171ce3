/*
 * indexcache.h — the store gateway's in-memory index cache (Thanos IN-MEMORY index cache): postings
 * lists and series entries of blocks, keyed by (block ULID, item type, key bytes), size-bounded with
 * least-recently-used eviction.
 *
 * Values are copied in on put and copied out (into the caller's arena) on get, so no entry is ever
 * referenced after eviction. Items larger than max_item_size are not stored. Metrics use Thanos's
 * names: thanos_store_index_cache_requests_total / _hits_total / _items_added_total /
 * _items_evicted_total {item_type}, thanos_store_index_cache_items and _total_size_bytes.
 * Thread-safe (one mutex; lookups are hash-map probes).
 */
#ifndef STRATA_STORE_INDEXCACHE_H
#define STRATA_STORE_INDEXCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/arena.h"
#include "base/err.h"
#include "base/str.h"

typedef enum indexcache_item { INDEXCACHE_POSTINGS = 0, INDEXCACHE_SERIES = 1 } indexcache_item_t;

typedef struct indexcache indexcache_t;

/* max_size 0 disables caching (every get misses, puts are dropped); max_item_size 0 = max_size / 2. */
indexcache_t *indexcache_new(size_t max_size, size_t max_item_size);
void indexcache_free(indexcache_t *c); /* NULL ok */

/* Parse Thanos's --index-cache.config YAML: `type: IN-MEMORY` with `config: {max_size, max_item_size}`
 * (sizes like "250MB"). Other types are ERR_INVALID ("not supported yet"). Unset sizes keep the
 * values passed in. */
int indexcache_parse_config(const char *yaml, size_t len, const char *what, size_t *max_size, size_t *max_item_size,
			    err_t *err);

/* On a hit copies the value into a and returns true. */
bool indexcache_get(indexcache_t *c, const char *block, indexcache_item_t type, str_t key, arena_t *a, str_t *out);
void indexcache_put(indexcache_t *c, const char *block, indexcache_item_t type, str_t key, const void *val,
		    size_t n);
/* Drop every entry of a block (when it is unloaded). */
void indexcache_drop_block(indexcache_t *c, const char *block);

size_t indexcache_bytes(indexcache_t *c);
size_t indexcache_items(indexcache_t *c);

#endif
