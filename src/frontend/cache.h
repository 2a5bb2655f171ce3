/*
 * cache.h — the query frontend's response cache backends (reference thanos.md §7.4): byte values by
 * string key, configured by Thanos's YAML:
 *
 *   type: IN-MEMORY   config: {max_size: "256MB", max_size_items: 0, validity: 0s}
 *   type: MEMCACHED   config: {addresses: [...], timeout, max_idle_connections, max_async_concurrency,
 *                     max_async_buffer_size, max_get_multi_concurrency, max_item_size,
 *                     max_get_multi_batch_size, dns_provider_update_interval, auto_discovery,
 *                     set_async_circuit_breaker_config, expiration: 24h}
 *
 * IN-MEMORY keeps entries up to max_size bytes (key + value + ~100 bytes of bookkeeping each) and
 * max_size_items entries (either 0 = no limit of that kind; both 0 = no cache, as Thanos), evicting the
 * least recently used; an entry older than `validity` (0 = forever) is a miss. MEMCACHED is the shared
 * net/memcache.h client (jump hash over the servers, batched gets, asynchronous sets, any failure a
 * miss); entries expire after `expiration` (0 = 24h).
 *
 * Metrics, labelled name="frontend.fifocache"|"frontend.memcache" and tripperware: as Cortex/Thanos
 * expose them, cortex_cache_fetched_keys, cortex_cache_hits, cortex_cache_request_duration_seconds
 * {method}; IN-MEMORY also querier_cache_entries, querier_cache_memory_bytes, querier_cache_added_total,
 * querier_cache_evicted_total. Thread-safe.
 */
#ifndef STRATA_FRONTEND_CACHE_H
#define STRATA_FRONTEND_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/arena.h"
#include "base/err.h"
#include "base/str.h"
#include "net/memcache.h"

typedef enum fecache_type { FECACHE_NONE = 0, FECACHE_IN_MEMORY, FECACHE_MEMCACHED } fecache_type_t;

typedef struct fecache_config {
	fecache_type_t type;
	size_t max_size;        /* IN-MEMORY bytes */
	int64_t max_size_items; /* IN-MEMORY entries */
	int64_t validity_ms;    /* IN-MEMORY TTL; 0 = none */
	memcache_config_t memcached;
	int64_t expiration_ms; /* MEMCACHED; 0 = 24h */
} fecache_config_t;

void fecache_config_init(fecache_config_t *c);
void fecache_config_release(fecache_config_t *c);
/* Parse the YAML above (`what` names the flag or file in messages: "<what>:<line>:<col>: ..."). An
 * IN-MEMORY config with neither size set leaves type FECACHE_NONE. */
int fecache_config_parse(const char *yaml, size_t len, const char *what, fecache_config_t *c, err_t *err);

typedef struct fecache fecache_t;

/* tripperware: metrics label ("query_range", "labels"). */
int fecache_new(fecache_t **out, const fecache_config_t *c, const char *tripperware, err_t *err);
void fecache_free(fecache_t *c); /* NULL ok; waits for queued memcached sets */

/* found[i]/vals[i] for each key; returns the number of hits. Values are valid until a is released or
 * reset: MEMCACHED's are read into a, IN-MEMORY lends its own (nothing copied; an entry evicted or
 * replaced meanwhile is freed when the last arena holding it goes). Every such arena must be released
 * before fecache_free. */
size_t fecache_get_multi(fecache_t *c, const str_t *keys, size_t n, arena_t *a, str_t *vals, bool *found);

/* A value's fingerprint: its length and XXH3-64. */
typedef struct fecache_fp {
	uint64_t len, hash;
} fecache_fp_t;
fecache_fp_t fecache_fingerprint(const void *p, size_t n);
/* fecache_get_multi plus each found value's fingerprint in fps[i]; for i with peek[i] the IN-MEMORY
 * cache gives only the fingerprint (kept with the entry: nothing copied, vals[i].p NULL). MEMCACHED
 * values always arrive whole (vals[i] set). */
size_t fecache_get_multi_fp(fecache_t *c, const str_t *keys, size_t n, const bool *peek, arena_t *a,
                            str_t *vals, bool *found, fecache_fp_t *fps);
/* The values of keys peeked at just before, not counted again in the metrics. A value may have
 * changed since: callers fingerprint what they get. */
size_t fecache_get_values(fecache_t *c, const str_t *keys, size_t n, arena_t *a, str_t *vals, bool *found);
void fecache_put(fecache_t *c, str_t key, const void *val, size_t n);
/* Wait for queued sets (MEMCACHED; tests and shutdown). */
void fecache_flush(fecache_t *c);
/* IN-MEMORY occupancy. */
size_t fecache_bytes(fecache_t *c);
size_t fecache_items(fecache_t *c);

#endif
