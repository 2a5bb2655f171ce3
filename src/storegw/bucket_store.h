/*
 * bucket_store.h — the store gateway: a store_t over every block in a bucket (reference thanos.md
 * §1.5, §3.5, §6.6). Blocks are found by bucket_store_sync (block/fetcher.h: list, meta.json, filters,
 * deletion marks); each gets a local index-header under data_dir/<ULID>/ (built from range reads, reused across
 * restarts, mmapped lazily on first use and unmapped when idle). A Series call resolves matchers to
 * postings with merged range reads of the remote index, fetches the series entries the same way,
 * then fetches only the chunks overlapping the request — lazily, in batches of series, with parallel
 * range GETs — so memory per call is the series metadata plus one batch of chunk bytes.
 *
 * Blocks are reference-counted: a sync that drops a block never disturbs a call in flight (the call's
 * arena holds references until it is released). Downsampled blocks (5m, 1h) are served too: a Series
 * call reads, per stream of blocks (external labels), the coarsest resolution not above its
 * max_resolution first and fills the gaps with finer blocks (Thanos's getFor, thanos.md §4.5); their
 * aggregate chunks (0xFF) go out as they are (the gRPC server fills the requested aggregates).
 *
 * Threading: bucket_store_sync and bucket_store_unload_idle may run on one background thread while
 * the store_t operations run on another (each call then uses blocking bucket I/O on its thread).
 * Errors name the block and what failed; limits are ERR_LIMIT with the limit in the message.
 * A Series call reads the postings and series entries of its blocks on up to read_concurrency threads
 * (the store's read pool plus the calling thread), then fetches chunks lazily in batches that span
 * blocks; the series come out merged and in label order whatever the read order. LabelNames and
 * LabelValues with matchers read their blocks the same way (answers sorted and unique whatever the
 * read order; the bytes and series-touched limits apply to them too).
 * Concurrency: more than series_max_concurrency open Series calls are rejected (ERR_LIMIT), not
 * queued: the gRPC server runs handlers and producers on its loop thread, so a call cannot wait here
 * for a slot without blocking the calls that would free it.
 *
 * Implementation: bucket_store.c (store object, blocks, Info), bucket_sync.c (sync), bucket_read.c
 * (Series and label paths); shared internals in bucket_block.h.
 */
#ifndef STRATA_STOREGW_BUCKET_STORE_H
#define STRATA_STOREGW_BUCKET_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "model/labels.h"
#include "objstore/bucket.h"
#include "store/store.h"

/* Block selection by external labels (--selector.relabel-config); ext includes __block_id. */
typedef bool (*bucket_store_select_fn)(void *arg, const labels_t *ext);

typedef struct bucket_store_config {
	bucket_t *bkt;                  /* not owned; must outlive the store */
	const char *data_dir;           /* created if missing */
	int64_t min_time, max_time;     /* blocks overlapping [min_time, max_time] (ms) are served */
	size_t index_cache_size;        /* bytes; 0 = no index cache */
	size_t index_cache_item_size;   /* 0 = index_cache_size / 2 */
	struct indexcache *index_cache; /* if set, used instead of the sizes above (e.g. MEMCACHED); the
					 * store owns it from bucket_store_new on (even when that fails) */
	int64_t series_sample_limit;    /* per Series call, estimated as chunks x 120; 0 = unlimited */
	int64_t series_touched_limit;   /* per call, series after postings; 0 = unlimited */
	int64_t bytes_limit;            /* per call, bytes downloaded; 0 = unlimited */
	int64_t chunk_pool_size;        /* bytes of chunk batches held at once by all calls; 0 = unlimited */
	int series_max_concurrency;     /* open Series calls at once; 0 = 20 */
	int block_sync_concurrency;     /* parallel block loads at sync; 0 = 20 */
	int read_concurrency;           /* blocks a Series call reads at once (threads of the store's read
					 * pool, shared by all calls; each call's own thread reads too); 0 = 4 */
	bool read_lanes_eager;          /* start every read lane of a call at once even when reads are local
	                                 * (FILESYSTEM bucket, no remote index cache), where by default the
	                                 * caller starts alone and wakes helpers only for slow calls (tests) */
	int64_t ignore_deletion_marks_delay_ms;
	int64_t consistency_delay_ms;   /* blocks younger than this are not served yet (compactor-made ones are) */
	int block_meta_fetch_concurrency; /* block directories listed / metas read at once at sync; 0 = 32 */
	int64_t header_idle_timeout_ms; /* unmap headers unused this long; 0 = never */
	bucket_store_select_fn select;  /* NULL = every block */
	void *select_arg;
} bucket_store_config_t;

typedef struct bucket_store bucket_store_t;

/* The config is copied (strings too). */
int bucket_store_new(bucket_store_t **out, const bucket_store_config_t *cfg, err_t *err);
store_t *bucket_store_base(bucket_store_t *s);
/* Frees the store; no call may be in flight. store_free() on the base does the same. */
void bucket_store_free(bucket_store_t *s);

/* One sync: list, read new metas, apply filters and marks, load new blocks, drop gone ones. Returns 0
 * when the listing worked (individual block failures are logged and counted, not returned). */
int bucket_store_sync(bucket_store_t *s, err_t *err);
/* Unmap index-headers idle for longer than the configured timeout (no call holding the block). */
void bucket_store_unload_idle(bucket_store_t *s);

typedef struct bucket_store_stats {
	size_t blocks;          /* loaded */
	size_t headers_open;    /* mmapped index-headers */
	size_t header_builds;   /* index-headers built from the bucket since start */
	size_t load_failures;
} bucket_store_stats_t;
void bucket_store_stats(bucket_store_t *s, bucket_store_stats_t *out);

/* ULIDs of loaded blocks (sorted), allocated in a. */
size_t bucket_store_block_ids(bucket_store_t *s, arena_t *a, const char ***out);

#endif
