/*
 * store.c — `strata store`: the store gateway. Flags as Thanos's (reference thanos.md §1.5); serves
 * thanos.Store + thanos.info.Info over gRPC and /metrics, /-/healthy, /-/ready over HTTP. A background
 * thread syncs the bucket every --sync-block-duration (the first sync right away; ready after it)
 * and unmaps idle index-headers.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/duration.h"
#include "base/metrics.h"
#include "cmd/cmd.h"
#include "cmd/grpc_tls.h"
#include "net/grpc.h"
#include "net/http.h"
#include "objstore/config.h"
#include "block/bucket_relabel.h"
#include "storegw/bucket_store.h"
#include "ui/blockview.h"
#include "ui/ui.h"
#include "store/grpc_server.h"
#include "storegw/indexcache.h"

static const char summary[] = "Store node giving access to blocks in a bucket provider.";

typedef struct syncer {
	bucket_store_t *bs;
	http_server_t *http;
	int64_t interval_ms;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stop;
} syncer_t;

static void *sync_main(void *arg)
{
	syncer_t *s = arg;
	bool first = true;
	pthread_mutex_lock(&s->mu);
	while (!s->stop) {
		pthread_mutex_unlock(&s->mu);
		err_t err = {0};
		uint64_t t0 = clock_mono_ns();
		if (bucket_store_sync(s->bs, &err)) {
			log_error("bucket sync failed", "err", err.msg);
		} else {
			bucket_store_stats_t st;
			bucket_store_stats(s->bs, &st);
			char nb[32], el[32];
			snprintf(nb, sizeof nb, "%zu", st.blocks);
			snprintf(el, sizeof el, "%.3fs", clock_since_s(t0));
			log_info("bucket store synced", "blocks", nb, "elapsed", el);
			if (first) {
				http_server_set_ready(s->http, true);
				first = false;
			}
		}
		bucket_store_unload_idle(s->bs);
		/* Retry a failed first sync sooner. */
		int64_t wait = first ? 5000 : s->interval_ms;
		if (wait > 60000 && !first)
			wait = s->interval_ms;
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		int64_t ns = (int64_t)ts.tv_nsec + (wait % 1000) * 1000000;
		ts.tv_sec += wait / 1000 + ns / 1000000000;
		ts.tv_nsec = ns % 1000000000;
		pthread_mutex_lock(&s->mu);
		if (!s->stop)
			pthread_cond_timedwait(&s->cv, &s->mu, &ts);
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

static size_t loaded_blocks(void *arg, arena_t *a, const char ***ids)
{
	return bucket_store_block_ids(arg, a, ids);
}

int cmd_store(int argc, char **argv)
{
	static bool disable_admin;
	static cmd_server_flags_t sf;
	static cmd_grpc_server_tls_t gt;
	static char *objcfg, *objcfg_file, *data_dir, *min_time_s, *max_time_s, *ic_cfg, *ic_cfg_file, *relabel,
		*relabel_file, *grpc_address;
	static int64_t sync_ms, ic_size, chunk_pool, sample_limit, touched_limit, bytes_limit, max_conc, sync_conc,
		del_delay_ms, idle_ms, consistency_ms, meta_conc;
	flag_def_t defs[] = {
		CMD_SERVER_FLAGS(&sf, "0.0.0.0:10902"),
		{"grpc-address", FLAG_STRING, &grpc_address, "0.0.0.0:10901", "Listen ip:port address for gRPC endpoints (StoreAPI)."},
		CMD_GRPC_SERVER_TLS_FLAGS(&gt),
		{"objstore.config", FLAG_STRING, &objcfg, NULL, "Alternative to 'objstore.config-file': object store configuration in YAML."},
		{"objstore.config-file", FLAG_STRING, &objcfg_file, NULL, "Path to YAML file that contains object store configuration."},
		{"data-dir", FLAG_STRING, &data_dir, "./data", "Local data directory used for caching purposes (index-header, meta.json)."},
		{"sync-block-duration", FLAG_DURATION, &sync_ms, "15m", "Repeat interval for syncing the blocks between local and remote view."},
		{"min-time", FLAG_STRING, &min_time_s, "0000-01-01T00:00:00Z",
		 "Start of time range limit to serve: RFC3339 or a duration relative to now (e.g. -2w)."},
		{"max-time", FLAG_STRING, &max_time_s, "9999-12-31T23:59:59Z",
		 "End of time range limit to serve: RFC3339 or a duration relative to now."},
		{"index-cache-size", FLAG_BYTES, &ic_size, "250MB", "Maximum size of items held in the in-memory index cache."},
		{"index-cache.config", FLAG_STRING, &ic_cfg, NULL, "Alternative to 'index-cache.config-file': index cache configuration in YAML."},
		{"index-cache.config-file", FLAG_STRING, &ic_cfg_file, NULL, "Path to YAML file that contains index cache configuration (IN-MEMORY or MEMCACHED)."},
		{"chunk-pool-size", FLAG_BYTES, &chunk_pool, "2GB", "Maximum size of concurrently fetched chunk bytes."},
		{"store.grpc.series-sample-limit", FLAG_INT, &sample_limit, "0",
		 "Maximum samples a single Series call may touch (estimated as chunks x 120); 0 = no limit."},
		{"store.grpc.touched-series-limit", FLAG_INT, &touched_limit, "0",
		 "Maximum series a single Series call may touch; 0 = no limit."},
		{"store.grpc.downloaded-bytes-limit", FLAG_BYTES, &bytes_limit, "0",
		 "Maximum bytes a single Series call may download from the bucket; 0 = no limit."},
		{"store.grpc.series-max-concurrency", FLAG_INT, &max_conc, "20", "Maximum number of concurrent Series calls."},
		{"block-sync-concurrency", FLAG_INT, &sync_conc, "20", "Number of goroutines to use when constructing index-cache.json blocks from object storage."},
		{"selector.relabel-config", FLAG_STRING, &relabel, NULL, "Alternative to 'selector.relabel-config-file'."},
		{"selector.relabel-config-file", FLAG_STRING, &relabel_file, NULL,
		 "Path to YAML file with relabeling configuration (keep/drop) that selects blocks by external labels."},
		{"disable-admin-operations", FLAG_BOOL, &disable_admin, "false",
		 "Disable UI/API admin operations like marking blocks for deletion and no compaction."},
		{"ignore-deletion-marks-delay", FLAG_DURATION, &del_delay_ms, "24h",
		 "Duration after which blocks marked for deletion are filtered out while fetching blocks."},
		{"consistency-delay", FLAG_DURATION, &consistency_ms, "0s",
		 "Minimum age of all blocks before they are being read (blocks made by the compactor are read at once)."},
		{"block-meta-fetch-concurrency", FLAG_INT, &meta_conc, "32",
		 "Number of goroutines to use when fetching block metadata from object storage."},
		{"store.index-header-lazy-reader-idle-timeout", FLAG_DURATION, &idle_ms, "5m",
		 "Unmap an index-header after it was idle for this long (0 disables).", NULL, true},
	};
	flags_result_t res = {0};
	int exit_now;
	int rc = cmd_parse_flags("strata store", summary, defs, ARRAY_LEN(defs), argc, argv, &res, &exit_now);
	if (exit_now)
		return rc;
	free(res.pos);
	if ((rc = cmd_server_setup_logging("strata store", &sf)))
		return rc;
	bucket_store_config_t cfg = {.data_dir = data_dir, .index_cache_size = (size_t)ic_size,
				     .series_sample_limit = sample_limit, .series_touched_limit = touched_limit,
				     .bytes_limit = bytes_limit, .chunk_pool_size = chunk_pool,
				     .series_max_concurrency = (int)max_conc, .block_sync_concurrency = (int)sync_conc,
				     .ignore_deletion_marks_delay_ms = del_delay_ms, .header_idle_timeout_ms = idle_ms,
				     .consistency_delay_ms = consistency_ms, .block_meta_fetch_concurrency = (int)meta_conc};
	err_t err = {0};
	if (cmd_time_or_duration("min-time", min_time_s, &cfg.min_time, &err) ||
	    cmd_time_or_duration("max-time", max_time_s, &cfg.max_time, &err)) {
		fprintf(stderr, "strata store: %s\n", err.msg);
		return 2;
	}
	if (cfg.min_time > cfg.max_time) {
		fprintf(stderr, "strata store: --min-time is after --max-time\n");
		return 2;
	}
	char *text;
	size_t len;
	const char *what = NULL;
	bucket_relabel_t *sel = NULL;
	if (cmd_read_config("strata store", relabel, relabel_file, &text, &len, &what))
		return 1;
	if (text) {
		rc = bucket_relabel_parse(text, len, what, &sel, &err);
		free(text);
		if (rc) {
			fprintf(stderr, "strata store: --selector.relabel-config: %s\n", err.msg);
			return 2;
		}
		cfg.select = bucket_relabel_keep;
		cfg.select_arg = sel;
	}
	bucket_t *bkt;
	if (objstore_from_flags(objcfg, objcfg_file, &bkt, &err)) {
		fprintf(stderr, "strata store: %s\n", err.msg);
		bucket_relabel_free(sel);
		return 2;
	}
	cfg.bkt = bkt;
	/* The index cache last: a MEMCACHED one starts threads, and the bucket store owns it from here on. */
	if (cmd_read_config("strata store", ic_cfg, ic_cfg_file, &text, &len, &what)) {
		bucket_free(bkt);
		bucket_relabel_free(sel);
		return 1;
	}
	bool remote_cache = false; /* reads that may wait on the network, besides the bucket's */
	if (text) {
		indexcache_config_t icc;
		indexcache_config_init(&icc, cfg.index_cache_size, cfg.index_cache_item_size);
		rc = indexcache_config_parse(text, len, what, &icc, &err);
		free(text);
		remote_cache = icc.backend == INDEXCACHE_MEMCACHED;
		if (!rc && !sf.check_config) /* a dry run parses it but connects to no memcached */
			rc = indexcache_new_from_config(&cfg.index_cache, &icc, &err);
		indexcache_config_release(&icc);
		if (rc) {
			fprintf(stderr, "strata store: --index-cache.config: %s\n", err.msg);
			bucket_free(bkt);
			bucket_relabel_free(sel);
			return 2;
		}
	}
	tls_server_t *gtls = NULL;
	if ((rc = cmd_grpc_server_tls_new("strata store", &gt, &gtls)) > 0 ||
	    (rc = cmd_check_config("strata store", &sf, grpc_address, NULL)) >= 0) {
		tls_server_free(gtls);
		bucket_free(bkt);
		bucket_relabel_free(sel);
		return rc;
	}
	bucket_store_t *bs;
	if (bucket_store_new(&bs, &cfg, &err)) {
		fprintf(stderr, "strata store: %s\n", err.msg);
		tls_server_free(gtls);
		bucket_free(bkt);
		bucket_relabel_free(sel);
		return 1;
	}
	loop_t *loop;
	http_server_t *http = NULL;
	grpc_server_t *grpc = NULL;
	listener_t *gl = NULL;
	store_service_t *svc = NULL;
	ui_t *ui = NULL;
	blockview_t *bv = NULL;
	rc = 1;
	if (loop_new(&loop, &err)) {
		fprintf(stderr, "strata store: %s\n", err.msg);
		goto out_store;
	}
	http_server_config_t hc = {.address = sf.http_address, .component = "store", .web_config_file = sf.http_config};
	if (http_server_new(&http, loop, &hc, &err)) {
		fprintf(stderr, "strata store: %s\n", err.msg);
		goto out_loop;
	}
	/* The block viewer: /blocks (the bucket) and /loaded (the blocks this gateway serves). */
	ui = ui_new(http, &(ui_config_t){.component = "store", .pages = {UI_PAGES_BLOCKS}, .admin_disabled = disable_admin});
	bv = blockview_new(http, &(blockview_config_t){.bkt = bkt, .admin_disabled = disable_admin,
							.refresh_ms = sync_ms, .loaded = loaded_blocks, .loaded_arg = bs});
	grpc = grpc_server_new(loop, NULL);
	/* a local bucket's reads are file reads: a lone call's first batch is made on the loop */
	store_grpc_config_t sgc = {.series_concurrency = (int)max_conc,
				   .first_batch_on_loop = !remote_cache && strcmp(bucket_type(bkt), "FILESYSTEM") == 0};
	svc = store_grpc_register_pool(grpc, bucket_store_base(bs), "store", &sgc);
	if (grpc_server_listen_tls(grpc, grpc_address, gtls, &gl, &err)) {
		fprintf(stderr, "strata store: %s\n", err.msg);
		goto out_servers;
	}
	log_info("starting store gateway", "grpc", grpc_address, "grpc_tls", gtls ? "on" : "off", "http", sf.http_address, "bucket", bucket_name(bkt),
		 "data_dir", data_dir);
	syncer_t sy = {.bs = bs, .http = http, .interval_ms = sync_ms > 0 ? sync_ms : 900000};
	pthread_mutex_init(&sy.mu, NULL);
	pthread_cond_init(&sy.cv, NULL);
	pthread_t th;
	if (pthread_create(&th, NULL, sync_main, &sy) != 0)
		die("strata store: cannot start the sync thread");
	rc = http_server_run(http, sf.http_grace_ms, &err) ? 1 : 0;
	if (rc)
		log_error("server failed", "err", err.msg);
	pthread_mutex_lock(&sy.mu);
	sy.stop = true;
	pthread_cond_signal(&sy.cv);
	pthread_mutex_unlock(&sy.mu);
	pthread_join(th, NULL);
	pthread_cond_destroy(&sy.cv);
	pthread_mutex_destroy(&sy.mu);
	log_info("store gateway stopped");
out_servers:
	listener_free(gl);
	http_server_free(http);
	blockview_free(bv);
	ui_free(ui);
	store_grpc_service_free(svc);
	grpc_server_free(grpc);
out_loop:
	loop_free(loop);
out_store:
	bucket_store_free(bs);
	bucket_free(bkt);
	bucket_relabel_free(sel);
	tls_server_free(gtls);
	return rc;
}
