/*
 * compact.c — `strata compact`: the compactor (flags as Thanos's, reference thanos.md §1.8). Serves
 * /metrics, /-/healthy and /-/ready over HTTP while a thread runs compaction iterations
 * (compact/compactor.h): once (the exit code says whether it succeeded) or, with --wait, every
 * --wait-interval, with a cleanup of deletion-marked blocks every --compact.cleanup-interval in
 * between. SIGTERM stops the running iteration at its next safe point. Unless --web.disable, the
 * same port serves the block viewer (as Thanos's compactor): /blocks (the bucket, refreshed every
 * --block-viewer.global.sync-block-interval) and /loaded (the blocks the last iteration worked on).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/metrics.h"
#include "block/bucket_relabel.h"
#include "cmd/cmd.h"
#include "compact/compactor.h"
#include "net/http.h"
#include "objstore/config.h"
#include "ui/blockview.h"
#include "ui/ui.h"

static const char summary[] =
    "Continuously compacts blocks in an object store bucket: compaction levels, vertical compaction "
    "with offline deduplication, retention, cleanup; never halts.";

typedef struct runner {
	compactor_t *c;
	http_server_t *http;
	bool wait;
	int64_t interval_ms, cleanup_ms;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stop;
	int rc; /* of the last iteration */
} runner_t;

static void stopped(http_server_t *srv, void *arg)
{
	(void)arg;
	loop_stop(http_server_loop(srv));
}

static void shutdown_server(void *arg)
{
	runner_t *r = arg;
	http_server_shutdown(r->http, 0, stopped, NULL);
}

/* Sleep up to ms unless stopped; true when stopped. */
static bool sleep_unless_stopped(runner_t *r, int64_t ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	int64_t ns = (int64_t)ts.tv_nsec + (ms % 1000) * 1000000;
	ts.tv_sec += ms / 1000 + ns / 1000000000;
	ts.tv_nsec = ns % 1000000000;
	pthread_mutex_lock(&r->mu);
	if (!r->stop)
		pthread_cond_timedwait(&r->cv, &r->mu, &ts);
	bool s = r->stop;
	pthread_mutex_unlock(&r->mu);
	return s;
}

static void *run_main(void *arg)
{
	runner_t *r = arg;
	for (;;) {
		err_t err = {0};
		r->rc = compactor_run(r->c, &err);
		if (!r->wait)
			break;
		/* Between iterations, deletion-marked blocks and partial uploads are cleaned up every
		 * cleanup interval. */
		int64_t left = r->interval_ms;
		bool stop = false;
		while (!stop && left > 0) {
			int64_t step = r->cleanup_ms > 0 && r->cleanup_ms < left ? r->cleanup_ms : left;
			stop = sleep_unless_stopped(r, step);
			left -= step;
			if (!stop && left > 0 && compactor_cleanup(r->c, &err))
				log_error("background cleanup failed", "err", err.msg);
		}
		if (stop)
			break;
	}
	if (!r->wait)
		loop_post(http_server_loop(r->http), shutdown_server, r);
	return NULL;
}

static size_t loaded_blocks(void *arg, arena_t *a, const char ***ids)
{
	return compactor_block_ids(arg, a, ids);
}

int cmd_compact(int argc, char **argv)
{
	static cmd_server_flags_t sf;
	static char *objcfg, *objcfg_file, *data_dir, *min_time_s, *max_time_s, *relabel, *relabel_file,
	    *dedup_func, *web_label, *route_prefix, *external_prefix;
	static int64_t viewer_sync_ms, viewer_timeout_ms, consistency_ms, ret_raw, ret_5m, ret_1h, wait_ms,
	    delete_ms, conc, fetch_conc, meta_conc, max_level, max_index, cleanup_ms, progress_ms, files_conc,
	    ds_conc;
	static bool web_disable, disable_admin, wait, vertical, halt_on_error, skip_ooo, accept_malformed,
	    ds_disable;
	static strlist_t replica;
	flag_def_t defs[] = {
	    CMD_SERVER_FLAGS(&sf, "0.0.0.0:10902"),
	    {"data-dir", FLAG_STRING, &data_dir, "./data",
	     "Data directory in which to cache blocks and process compactions."},
	    {"objstore.config", FLAG_STRING, &objcfg, NULL,
	     "Alternative to 'objstore.config-file' flag (mutually exclusive). Content of YAML file that "
	     "contains object store configuration."},
	    {"objstore.config-file", FLAG_STRING, &objcfg_file, NULL,
	     "Path to YAML file that contains object store configuration."},
	    {"consistency-delay", FLAG_DURATION, &consistency_ms, "30m",
	     "Minimum age of fresh (non-compacted) blocks before they are being processed."},
	    {"retention.resolution-raw", FLAG_DURATION, &ret_raw, "0d",
	     "How long to retain raw samples in bucket. Setting this to 0d will retain samples of this "
	     "resolution forever."},
	    {"retention.resolution-5m", FLAG_DURATION, &ret_5m, "0d",
	     "How long to retain samples of resolution 1 (5 minutes) in bucket. 0d: forever."},
	    {"retention.resolution-1h", FLAG_DURATION, &ret_1h, "0d",
	     "How long to retain samples of resolution 2 (1 hour) in bucket. 0d: forever."},
	    {"wait", FLAG_BOOL, &wait, "false",
	     "Do not exit after all compactions have been processed and wait for new work."},
	    {"wait-interval", FLAG_DURATION, &wait_ms, "5m",
	     "Wait interval between consecutive compaction runs. Only works when --wait flag specified."},
	    {"delete-delay", FLAG_DURATION, &delete_ms, "48h",
	     "Time before a block marked for deletion is deleted from bucket. 0s deletes at once."},
	    {"deduplication.replica-label", FLAG_STRINGS, &replica, NULL,
	     "Label to treat as a replica indicator of blocks that can be deduplicated (repeated). Enables "
	     "vertical compaction of replicas."},
	    {"deduplication.func", FLAG_STRING, &dedup_func, "",
	     "Deduplication of overlapping samples: \"\" (one-to-one: identical timestamps merged, for "
	     "receive "
	     "replicas), \"penalty\" (the querier's algorithm, for HA Prometheus pairs), \"penalty-thanos\" "
	     "(Thanos's exactly) or \"chain\"."},
	    {"compact.enable-vertical-compaction", FLAG_BOOL, &vertical, "true",
	     "Merge overlapping blocks of a stream (--no-compact.enable-vertical-compaction: report and "
	     "leave them alone).",
	     NULL, true},
	    {"compact.concurrency", FLAG_INT, &conc, "1",
	     "Number of goroutines to use when compacting groups."},
	    {"compact.blocks-fetch-concurrency", FLAG_INT, &fetch_conc, "1",
	     "Number of goroutines to use when download block during compaction."},
	    {"block-meta-fetch-concurrency", FLAG_INT, &meta_conc, "32",
	     "Number of goroutines to use when fetching block metadata from object storage."},
	    {"block-files-concurrency", FLAG_INT, &files_conc, "1",
	     "Number of goroutines to use when fetching/uploading block files.", NULL, true},
	    {"compact.cleanup-interval", FLAG_DURATION, &cleanup_ms, "5m",
	     "How often we should clean up partially uploaded blocks and blocks with deletion mark in the "
	     "background when --wait has been enabled. 0s disables it."},
	    {"compact.progress-interval", FLAG_DURATION, &progress_ms, "5m",
	     "Frequency of calculating the compaction progress (progress is recomputed every iteration and "
	     "after each compaction)."},
	    {"debug.max-compaction-level", FLAG_INT, &max_level, "4",
	     "Maximum compaction level, default is 4: 2h, 8h, 2d, 14d.", NULL, true},
	    {"compact.block-max-index-size", FLAG_BYTES, &max_index, "64GB",
	     "Maximum index size for the resulted block during any compaction.", NULL, true},
	    {"selector.relabel-config", FLAG_STRING, &relabel, NULL,
	     "Alternative to 'selector.relabel-config-file'."},
	    {"selector.relabel-config-file", FLAG_STRING, &relabel_file, NULL,
	     "Path to YAML file with relabeling configuration (keep, drop, hashmod) that selects blocks by "
	     "external labels."},
	    {"min-time", FLAG_STRING, &min_time_s, "0000-01-01T00:00:00Z",
	     "Start of time range limit to compact: RFC3339 or a duration relative to now (e.g. -2w)."},
	    {"max-time", FLAG_STRING, &max_time_s, "9999-12-31T23:59:59Z",
	     "End of time range limit to compact: RFC3339 or a duration relative to now."},
	    {"downsampling.disable", FLAG_BOOL, &ds_disable, "false", "Disables downsampling."},
	    {"downsample.concurrency", FLAG_INT, &ds_conc, "1",
	     "Number of goroutines to use when downsampling blocks."},
	    {"debug.halt-on-error", FLAG_BOOL, &halt_on_error, "true",
	     "Accepted for Thanos compatibility: Strata never halts.", NULL, true},
	    {"compact.skip-block-with-out-of-order-chunks", FLAG_BOOL, &skip_ooo, "false",
	     "Accepted for Thanos compatibility: out-of-order chunks are merged, unreadable blocks always "
	     "get a no-compact mark.",
	     NULL, true},
	    {"debug.accept-malformed-index", FLAG_BOOL, &accept_malformed, "false",
	     "Accepted for Thanos compatibility.", NULL, true},
	    {"web.disable", FLAG_BOOL, &web_disable, "false",
	     "Disable Block Viewer UI (/blocks, /loaded and /api/v1/blocks)."},
	    CMD_WEB_PREFIX_FLAGS(&route_prefix, &external_prefix),
	    {"bucket-web-label", FLAG_STRING, &web_label, "",
	     "External block label to use as group title in the bucket web UI."},
	    {"disable-admin-operations", FLAG_BOOL, &disable_admin, "false",
	     "Disable UI/API admin operations like marking blocks for deletion and no compaction."},
	    {"block-viewer.global.sync-block-interval", FLAG_DURATION, &viewer_sync_ms, "1m",
	     "Repeat interval for syncing the blocks between local and remote view for /global Block "
	     "Viewer UI."},
	    {"block-viewer.global.sync-block-timeout", FLAG_DURATION, &viewer_timeout_ms, "5m",
	     "Maximum time for syncing the blocks between local and remote view for /global Block Viewer "
	     "UI (accepted; the bucket's own request timeouts apply).",
	     NULL, true},
	};
	/* Thanos's short -w for --wait. */
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "-w"))
			argv[i] = "--wait";
	flags_result_t res = {0};
	int exit_now;
	int rc =
	    cmd_parse_flags("strata compact", summary, defs, ARRAY_LEN(defs), argc, argv, &res, &exit_now);
	if (exit_now)
		return rc;
	free(res.pos);
	if ((rc = cmd_server_setup_logging("strata compact", &sf)))
		return rc;
	compactor_config_t cfg = {.data_dir = data_dir,
	                          .consistency_delay_ms = consistency_ms,
	                          .delete_delay_ms = delete_ms,
	                          .retention_ms = {ret_raw, ret_5m, ret_1h},
	                          .replica_labels = replica.v,
	                          .nreplica_labels = replica.n,
	                          .dedup_func = dedup_func,
	                          .vertical = vertical || replica.n > 0,
	                          .concurrency = (int)conc,
	                          .fetch_concurrency = (int)fetch_conc,
	                          .meta_fetch_concurrency = (int)meta_conc,
	                          .max_level = (int)max_level,
	                          .max_index_size = max_index,
	                          .downsampling_disable = ds_disable,
	                          .downsample_concurrency = (int)ds_conc};
	err_t err = {0};
	if (cmd_time_or_duration("min-time", min_time_s, &cfg.min_time, &err) ||
	    cmd_time_or_duration("max-time", max_time_s, &cfg.max_time, &err)) {
		fprintf(stderr, "strata compact: %s\n", err.msg);
		return 2;
	}
	if (conc < 1 || fetch_conc < 1 || meta_conc < 1 || ds_conc < 1) {
		fprintf(stderr, "strata compact: concurrency flags must be at least 1\n");
		return 2;
	}
	char *text;
	size_t len;
	const char *what = NULL;
	bucket_relabel_t *sel = NULL;
	if (cmd_read_config("strata compact", relabel, relabel_file, &text, &len, &what))
		return 2;
	if (text) {
		rc = bucket_relabel_parse(text, len, what, &sel, &err);
		free(text);
		if (rc) {
			fprintf(stderr, "strata compact: --selector.relabel-config: %s\n", err.msg);
			return 2;
		}
		cfg.select = bucket_relabel_keep;
		cfg.select_arg = sel;
	}
	bucket_t *bkt;
	if (objstore_from_flags(objcfg, objcfg_file, &bkt, &err)) {
		fprintf(stderr, "strata compact: %s\n", err.msg);
		bucket_relabel_free(sel);
		return 2;
	}
	cfg.bkt = bkt;
	if (compactor_check_config(&cfg, &err)) {
		fprintf(stderr, "strata compact: %s\n", err.msg);
		bucket_free(bkt);
		bucket_relabel_free(sel);
		return 2;
	}
	char *routes = NULL, *link_prefix = NULL;
	if (ui_web_prefixes(external_prefix, route_prefix, &routes, &link_prefix, &err))
		fprintf(stderr, "strata compact: %s\n", err.msg);
	if (!routes || (rc = cmd_check_config("strata compact", &sf, NULL)) >= 0) {
		free(routes);
		free(link_prefix);
		bucket_free(bkt);
		bucket_relabel_free(sel);
		return routes ? rc : 2;
	}
	compactor_t *c;
	if (compactor_new(&c, &cfg, &err)) {
		fprintf(stderr, "strata compact: %s\n", err.msg);
		free(routes);
		free(link_prefix);
		bucket_free(bkt);
		bucket_relabel_free(sel);
		return err.code == ERR_INVALID ? 2 : 1;
	}
	metrics_register_process("compact");
	loop_t *loop;
	http_server_t *http = NULL;
	ui_t *ui = NULL;
	blockview_t *bv = NULL;
	rc = 1;
	if (loop_new(&loop, &err)) {
		fprintf(stderr, "strata compact: %s\n", err.msg);
		goto out;
	}
	http_server_config_t hc = {.address = sf.http_address,
	                           .component = "compact",
	                           .worker_threads = -1,
	                           .web_config_file = sf.http_config};
	if (http_server_new(&http, loop, &hc, &err) ||
	    (!web_disable && http_server_set_route_prefix(http, routes, &err))) {
		fprintf(stderr, "strata compact: %s\n", err.msg);
		goto out_loop;
	}
	if (!web_disable) {
		ui = ui_new(http, &(ui_config_t){.component = "compact",
		                                 .pages = {UI_PAGES_BLOCKS},
		                                 .admin_disabled = disable_admin,
		                                 .prefix = link_prefix});
		bv = blockview_new(http, &(blockview_config_t){.bkt = bkt,
		                                               .admin_disabled = disable_admin,
		                                               .label = web_label,
		                                               .refresh_ms = viewer_sync_ms,
		                                               .loaded = loaded_blocks,
		                                               .loaded_arg = c});
	}
	log_info("starting compact node", "http", sf.http_address, "bucket", bucket_name(bkt), "data_dir",
	         data_dir, "wait", wait ? "true" : "false");
	http_server_set_ready(http, true);
	runner_t r = {.c = c,
	              .http = http,
	              .wait = wait,
	              .interval_ms = wait_ms > 0 ? wait_ms : 300000,
	              .cleanup_ms = cleanup_ms};
	pthread_mutex_init(&r.mu, NULL);
	pthread_cond_init(&r.cv, NULL);
	pthread_t th;
	if (pthread_create(&th, NULL, run_main, &r) != 0)
		die("strata compact: cannot start the compaction thread");
	int srv = http_server_run(http, sf.http_grace_ms, &err);
	if (srv)
		log_error("server failed", "err", err.msg);
	/* A signal (or the end of a one-shot run): stop the iteration at its next safe point. */
	compactor_stop(c);
	pthread_mutex_lock(&r.mu);
	r.stop = true;
	pthread_cond_signal(&r.cv);
	pthread_mutex_unlock(&r.mu);
	pthread_join(th, NULL);
	pthread_cond_destroy(&r.cv);
	pthread_mutex_destroy(&r.mu);
	rc = srv ? 1 : wait ? 0 : r.rc ? 1 : 0;
	log_info("compact node stopped", "exit_code", rc ? "1" : "0");
out_loop:
	http_server_free(http);
	blockview_free(bv);
	ui_free(ui);
	loop_free(loop);
out:
	compactor_free(c);
	free(routes);
	free(link_prefix);
	bucket_free(bkt);
	bucket_relabel_free(sel);
	return rc;
}
