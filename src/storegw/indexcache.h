/*
 * indexcache.h — the store gateway's index cache: postings lists and series entries of blocks, keyed
 * by (block ULID, item type, key bytes). Two backends behind one API, chosen by the YAML `type`:
 *
 *   IN-MEMORY  size-bounded, least-recently-used eviction. Values are copied in on put and copied out
 *              (into the caller's arena) on get, so no entry is referenced after eviction. Items larger
 *              than max_item_size are not stored.
 *   MEMCACHED  shared by every store gateway of a bucket (net/memcache.h): gets are one batched
 *              multi-get per call, puts are asynchronous and never block a query; any memcached
 *              failure is a miss. Entries expire after `ttl` (default 24h); drop_block is a no-op.
 *              Memcached keys: "strata:P:<ulid>:<16 hex of xxhash64(key)>" for postings (label
 *              name 0xff value, hashed because label values may hold any byte and be long),
 *              "strata:S:<ulid>:<series id>" for series. The value is
 *              [0x01][uvarint key length][key bytes][crc32c(key bytes, payload) big-endian][payload]:
 *              the full key guards against hash collisions and the CRC against foreign or damaged
 *              values; a value failing either check is a miss. The "strata:" namespace keeps these
 *              apart from a Thanos store sharing the same memcached.
 *
 * `enabled_items` limits caching to some item types (others always miss and are never stored).
 * Metrics use Thanos's names: thanos_store_index_cache_requests_total / _hits_total {item_type}
 * (both backends), _items_added_total / _items_evicted_total {item_type}, _items and
 * _total_size_bytes (IN-MEMORY), and the memcached client's thanos_memcached_* {name="index-cache"}.
 * Thread-safe.
 */
#ifndef STRATA_STOREGW_INDEXCACHE_H
#define STRATA_STOREGW_INDEXCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/arena.h"
#include "base/err.h"
#include "base/str.h"
#include "net/memcache.h"

typedef enum indexcache_item { INDEXCACHE_POSTINGS = 0, INDEXCACHE_SERIES = 1 } indexcache_item_t;

typedef struct indexcache indexcache_t;

/* max_size 0 disables caching (every get misses, puts are dropped); max_item_size 0 = max_size / 2. */
indexcache_t *indexcache_new(size_t max_size, size_t max_item_size);
void indexcache_free(indexcache_t *c); /* NULL ok */

typedef enum indexcache_backend { INDEXCACHE_IN_MEMORY = 0, INDEXCACHE_MEMCACHED = 1 } indexcache_backend_t;

typedef struct indexcache_config {
	indexcache_backend_t backend;
	size_t max_size, max_item_size; /* IN-MEMORY */
	memcache_config_t memcached;    /* MEMCACHED (metrics name "index-cache") */
	unsigned enabled_items;         /* bit (1 << item type) per cached type; 0 = all */
	int64_t ttl_ms;                 /* MEMCACHED expiry; 0 = 24h */
} indexcache_config_t;

/* IN-MEMORY with the given sizes, memcached defaults. Release with indexcache_config_release. */
void indexcache_config_init(indexcache_config_t *c, size_t max_size, size_t max_item_size);
void indexcache_config_release(indexcache_config_t *c);
/* Parse Thanos's --index-cache.config YAML into c (which holds the defaults):
 *   type: IN-MEMORY   config: {max_size, max_item_size}   (sizes like "250MB")
 *   type: MEMCACHED   config: {addresses: [...], timeout, max_idle_connections, max_async_concurrency,
 *                     max_async_buffer_size, max_get_multi_concurrency, max_get_multi_batch_size,
 *                     max_item_size, dns_provider_update_interval, auto_discovery (false only),
 *                     set_async_circuit_breaker_config (enabled: false only)}
 *   top level: enabled_items: [Postings, Series, ExpandedPostings], ttl: <duration>.
 * REDIS and unknown keys/types are ERR_INVALID naming what:line:column. `what` names the source
 * (file name or flag). */
int indexcache_config_parse(const char *yaml, size_t len, const char *what, indexcache_config_t *c, err_t *err);
/* Build the cache a config describes (MEMCACHED: connects lazily; bad addresses are ERR_INVALID). */
int indexcache_new_from_config(indexcache_t **out, const indexcache_config_t *c, err_t *err);

/* IN-MEMORY only (kept for existing callers): like indexcache_config_parse, but a MEMCACHED config is
 * ERR_INVALID. Unset sizes keep the values passed in. */
int indexcache_parse_config(const char *yaml, size_t len, const char *what, size_t *max_size, size_t *max_item_size,
			    err_t *err);

/* On a hit copies the value into a and returns true. */
bool indexcache_get(indexcache_t *c, const char *block, indexcache_item_t type, str_t key, arena_t *a, str_t *out);
/* Look up n keys of one block at once (one memcached round trip per server): hit[i] says whether
 * vals[i] (copied into a) was found. Returns the number of hits. */
size_t indexcache_get_multi(indexcache_t *c, const char *block, indexcache_item_t type, const str_t *keys, size_t n,
			    arena_t *a, str_t *vals, bool *hit);
void indexcache_put(indexcache_t *c, const char *block, indexcache_item_t type, str_t key, const void *val,
		    size_t n);
/* Drop every entry of a block (when it is unloaded). */
void indexcache_drop_block(indexcache_t *c, const char *block);

/* Whether lookups go over the network (MEMCACHED): they may then block for a round trip. */
bool indexcache_remote(const indexcache_t *c);
/* IN-MEMORY occupancy (0 for MEMCACHED). */
size_t indexcache_bytes(indexcache_t *c);
size_t indexcache_items(indexcache_t *c);
/* MEMCACHED: wait until queued puts were sent (tests, shutdown). No-op for IN-MEMORY. */
void indexcache_flush(indexcache_t *c);

#endif
