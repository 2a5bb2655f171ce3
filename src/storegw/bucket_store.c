/*
 * bucket_store.c — the store gateway object: config, metrics, refcounted blocks with lazily opened
 * index-headers, Info, and the store_t vtable (see bucket_store.h; sync in bucket_sync.c, the read
 * path in bucket_read.c, shared internals in bucket_block.h).
 */
#include "storegw/bucket_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/fsutil.h"
#include "base/log.h"
#include "storegw/bucket_block.h"

/* ================================ metrics ================================ */

bucket_metrics_t bucket_metrics;

static void init_metrics(void)
{
	bucket_metrics.loads = metrics_counter("thanos_bucket_store_block_loads_total",
				  "Total number of remote block loading attempts.", NULL);
	bucket_metrics.load_fail = metrics_counter("thanos_bucket_store_block_load_failures_total",
				      "Total number of failed remote block loading attempts.", NULL);
	bucket_metrics.drops = metrics_counter("thanos_bucket_store_block_drops_total", "Total number of local blocks that were dropped.",
				  NULL);
	bucket_metrics.fetched = metrics_counter("thanos_bucket_store_series_data_fetched_total",
				    "Items (postings lists, series entries, chunks) fetched from the bucket.", "data_type");
	bucket_metrics.fetched_bytes = metrics_counter("thanos_bucket_store_series_data_size_fetched_bytes_total",
					  "Bytes fetched from the bucket for Series/label calls.", "data_type");
	bucket_metrics.dropped = metrics_counter("thanos_bucket_store_queries_dropped_total",
				    "Number of queries that were dropped due to a limit.", "reason");
	bucket_metrics.get_all = metrics_histogram("thanos_bucket_store_series_get_all_duration_seconds",
				      "Time it takes until all per-block prepares and loads for a query are finished.",
				      NULL, NULL, 0);
	static const double qb[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024};
	bucket_metrics.blocks_queried = metrics_histogram("thanos_bucket_store_series_blocks_queried",
					     "Number of blocks in a bucket store that were touched to satisfy a query.",
					     NULL, qb, ARRAY_LEN(qb));
	static const double sb[] = {1, 10, 100, 1000, 10000, 100000, 1000000};
	bucket_metrics.result_series = metrics_histogram("thanos_bucket_store_series_result_series",
					    "Number of series observed in the final result of a query.", NULL, sb,
					    ARRAY_LEN(sb));
	bucket_metrics.hdr_load = metrics_counter("thanos_bucket_store_indexheader_lazy_load_total",
				     "Total number of index-header lazy load operations.", NULL);
	bucket_metrics.loaded = metrics_gauge("thanos_bucket_store_blocks_loaded", "Number of currently loaded blocks.", NULL);
	bucket_metrics.hdr_unload = metrics_counter("thanos_bucket_store_indexheader_lazy_unload_total",
				       "Total number of index-header lazy unload operations.", NULL);
}

void bucket_block_unref(bucket_block_t *b)
{
	if (atomic_fetch_sub(&b->refs, 1) != 1)
		return;
	indexheader_close(b->hdr);
	indexcache_drop_block(b->st->cache, b->ulid);
	meta_release(&b->meta);
	pthread_mutex_destroy(&b->mu);
	arena_release(&b->arena);
	free(b);
}

void bucket_block_unref_cb(void *arg)
{
	bucket_block_unref(arg);
}

/* The block's index-header, opened (or rebuilt if missing/corrupt) on first use. */
int bucket_block_header(bucket_block_t *b, indexheader_t **out, err_t *err)
{
	pthread_mutex_lock(&b->mu);
	int rc = 0;
	if (!b->hdr) {
		rc = indexheader_open(&b->hdr, b->hdr_path, err);
		if (rc == ERR_CORRUPT || rc == ERR_NOT_FOUND) {
			log_warn("rebuilding index-header", "block", b->ulid, "err", err ? err->msg : "");
			char name[64];
			snprintf(name, sizeof name, "%s/index", b->ulid);
			rc = indexheader_build(b->st->cfg.bkt, name, -1, b->hdr_path, err);
			if (!rc) {
				atomic_fetch_add(&b->st->header_builds, 1);
				rc = indexheader_open(&b->hdr, b->hdr_path, err);
			}
		}
		if (!rc)
			metric_inc(metric_with(bucket_metrics.hdr_load));
	}
	b->last_used_ms = clock_now_ms();
	*out = b->hdr;
	pthread_mutex_unlock(&b->mu);
	if (rc)
		err_wrap(err, "block %s", b->ulid);
	return rc;
}

/* Snapshot of the loaded blocks overlapping [mint, maxt], each referenced until a is released. */
size_t bucket_store_acquire_blocks(bucket_store_t *st, arena_t *a, int64_t mint, int64_t maxt, bucket_block_t ***out)
{
	pthread_mutex_lock(&st->mu);
	bucket_block_t **v = ARENA_NEW_ARRAY(a, bucket_block_t *, st->nblocks + 1);
	size_t n = 0;
	for (size_t i = 0; i < st->nblocks; i++) {
		bucket_block_t *b = st->blocks[i];
		if (b->meta.mint > maxt || b->meta.maxt <= mint)
			continue;
		atomic_fetch_add(&b->refs, 1);
		arena_on_release(a, bucket_block_unref_cb, b);
		v[n++] = b;
	}
	pthread_mutex_unlock(&st->mu);
	*out = v;
	return n;
}

const char *bucket_block_segment_name(bucket_block_t *b, arena_t *a, uint32_t pos)
{
	if (pos < b->nsegs)
		return b->segs[pos];
	return arena_printf(a, "%s/chunks/%06u", b->ulid, pos + 1); /* Prometheus numbering */
}

static int bs_info(store_t *base, arena_t *a, store_info_t *out, err_t *err)
{
	bucket_store_t *st = (bucket_store_t *)base;
	(void)err;
	pthread_mutex_lock(&st->mu);
	labels_t *sets = ARENA_NEW_ARRAY(a, labels_t, st->nblocks + 1);
	size_t ns = 0;
	int64_t mint = INT64_MAX, maxt = INT64_MIN;
	for (size_t i = 0; i < st->nblocks; i++) {
		bucket_block_t *b = st->blocks[i];
		if (b->meta.mint < mint)
			mint = b->meta.mint;
		if (b->meta.maxt - 1 > maxt)
			maxt = b->meta.maxt - 1;
		bool dup = false;
		for (size_t k = 0; k < ns && !dup; k++)
			dup = labels_eq(&sets[k], &b->ext);
		if (!dup)
			sets[ns++] = labels_copy(a, &b->ext);
	}
	pthread_mutex_unlock(&st->mu);
	out->label_sets = sets;
	out->nlabel_sets = ns;
	out->mint = mint;
	out->maxt = maxt;
	out->supports_without_replica_labels = true; /* bucket_read_series */
	return 0;
}

static void bs_free_base(store_t *base)
{
	bucket_store_free((bucket_store_t *)base);
}

static const struct store_ops bs_ops = {
	.series = bucket_read_series,
	.label_names = bucket_read_label_names,
	.label_values = bucket_read_label_values,
	.info = bs_info,
	.free = bs_free_base,
};

int bucket_store_read_lanes(const bucket_store_t *st)
{
	return st->cfg.read_concurrency > 0 ? st->cfg.read_concurrency : 4;
}

int bucket_store_new(bucket_store_t **out, const bucket_store_config_t *cfg, err_t *err)
{
	*out = NULL;
	if (!cfg->bkt || !cfg->data_dir || !*cfg->data_dir) {
		indexcache_free(cfg->index_cache);
		return err_set(err, ERR_INVALID, "bucket store: a bucket and a data directory are required");
	}
	int rc = fsutil_mkdir_p(cfg->data_dir, err);
	if (rc) {
		indexcache_free(cfg->index_cache);
		return err_wrap(err, "bucket store: data dir");
	}
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, init_metrics);
	bucket_store_t *st = xcalloc(1, sizeof *st);
	st->base.ops = &bs_ops;
	st->base.name = "bucket";
	st->cfg = *cfg;
	st->data_dir = xstrdup(cfg->data_dir);
	st->cfg.data_dir = st->data_dir;
	st->cache = cfg->index_cache ? cfg->index_cache : indexcache_new(cfg->index_cache_size, cfg->index_cache_item_size);
	pthread_mutex_init(&st->mu, NULL);
	pthread_mutex_init(&st->sync_mu, NULL);
	st->fetcher = block_fetcher_new(&(block_fetcher_config_t){.bkt = cfg->bkt, .cache_dir = st->data_dir,
								 .concurrency = cfg->block_meta_fetch_concurrency});
	const char *type = bucket_type(cfg->bkt);
	st->local_reads = type && strcmp(type, "FILESYSTEM") == 0 && !indexcache_remote(st->cache) &&
	                  !cfg->read_lanes_eager;
	if (bucket_store_read_lanes(st) > 1)
		st->pool = workers_new(bucket_store_read_lanes(st) - 1);
	*out = st;
	return 0;
}

store_t *bucket_store_base(bucket_store_t *s)
{
	return &s->base;
}

void bucket_store_free(bucket_store_t *st)
{
	if (!st)
		return;
	workers_free(st->pool);
	for (size_t i = 0; i < st->nblocks; i++)
		bucket_block_unref(st->blocks[i]);
	free(st->blocks);
	indexcache_free(st->cache);
	block_fetcher_free(st->fetcher);
	pthread_mutex_destroy(&st->mu);
	pthread_mutex_destroy(&st->sync_mu);
	free(st->data_dir);
	free(st);
}
