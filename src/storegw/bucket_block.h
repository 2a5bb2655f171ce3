/*
 * bucket_block.h — internals shared by the store gateway's files (not for use outside src/storegw/bucket_*.c):
 *   bucket_store.c  the store object, refcounted blocks and their lazily opened index-headers, Info;
 *   bucket_sync.c   bucket sync (the block/ meta fetcher and its filters, parallel block loads, drops),
 *                   idle header unloading, stats;
 *   bucket_read.c   the read path: postings, series entries and chunks by merged range reads, the
 *                   lazily fetched series set, limits, label names/values.
 *
 * Blocks: a bucket_block_t is created by sync with one reference held by the store's block list; a
 * call takes one more per block it reads (bucket_store_acquire_blocks, released with the call's
 * arena), so a sync that drops a block never frees it under a call. hdr/last_used_ms are guarded by
 * the block's mu; the store's block list by st->mu.
 */
#ifndef STRATA_STOREGW_BUCKET_BLOCK_H
#define STRATA_STOREGW_BUCKET_BLOCK_H

#include <pthread.h>
#include <stdatomic.h>

#include "base/metrics.h"
#include "base/workers.h"
#include "block/fetcher.h"
#include "storegw/bucket_store.h"
#include "storegw/indexcache.h"
#include "storegw/indexheader.h"
#include "tsdb/meta.h"

typedef struct bucket_block {
	atomic_int refs;
	bucket_store_t *st;
	char ulid[ULID_LEN + 1];
	block_meta_t meta;
	arena_t arena; /* ext labels, segment names, paths */
	labels_t ext;
	char *dir;      /* data_dir/<ULID> */
	char *hdr_path;
	char **segs;    /* chunk segment object names by position */
	size_t nsegs;
	pthread_mutex_t mu; /* guards hdr and last_used */
	indexheader_t *hdr;
	int64_t last_used_ms;
} bucket_block_t;

struct bucket_store {
	store_t base;
	bucket_store_config_t cfg;
	char *data_dir;
	indexcache_t *cache;
	pthread_mutex_t mu; /* guards blocks */
	bucket_block_t **blocks;
	size_t nblocks;
	pthread_mutex_t sync_mu;
	block_fetcher_t *fetcher; /* meta.json files cached under data_dir */
	bool synced_once;
	atomic_int open_sets;
	atomic_llong pool_used;
	workers_t *pool; /* read pool of Series and label calls (read_concurrency - 1 threads) */
	bool local_reads; /* FILESYSTEM bucket, no remote index cache: reads never wait on the network */
	atomic_size_t header_builds, load_failures;
};


/* Thanos-named metrics, registered once by bucket_store_new. */
typedef struct bucket_metrics {
	metric_t *loads, *load_fail, *drops, *fetched, *fetched_bytes, *dropped,
		*get_all, *blocks_queried, *result_series, *hdr_load, *hdr_unload, *loaded;
} bucket_metrics_t;
extern bucket_metrics_t bucket_metrics;

/* ---- bucket_store.c ---- */
/* Drop one reference; the last one closes the header, evicts the block's cache entries and frees it. */
void bucket_block_unref(bucket_block_t *b);
void bucket_block_unref_cb(void *arg); /* arena_on_release form */
/* The block's index-header, opened (or rebuilt from the bucket if missing/corrupt) on first use.
 * Errors name the block. Thread-safe. */
int bucket_block_header(bucket_block_t *b, indexheader_t **out, err_t *err);
/* Object name of the chunk segment at position pos (from meta.json, else Prometheus numbering). */
const char *bucket_block_segment_name(bucket_block_t *b, arena_t *a, uint32_t pos);
/* Snapshot of the loaded blocks overlapping [mint, maxt], each referenced until a is released. */
/* Threads a Series call reads its blocks on (read_concurrency, the caller included). */
int bucket_store_read_lanes(const bucket_store_t *st);
size_t bucket_store_acquire_blocks(bucket_store_t *st, arena_t *a, int64_t mint, int64_t maxt, bucket_block_t ***out);


/* ---- bucket_read.c: the store_t operations ---- */
int bucket_read_series(store_t *base, arena_t *a, const store_series_req_t *req, series_set_t **out, err_t *err);
int bucket_read_label_names(store_t *base, arena_t *a, const store_label_req_t *req, store_strings_t *out,
			    err_t *err);
int bucket_read_label_values(store_t *base, arena_t *a, const store_label_req_t *req, store_strings_t *out,
			     err_t *err);

#endif
