/*
 * rule.c — `strata rule`: recording and alerting rules evaluated against the querier's global view,
 * results stored in a local TSDB (head + WAL) served over the StoreAPI and shipped to the bucket,
 * alerts sent to Alertmanager (Thanos `rule` in stateful mode; reference thanos.md §1.10, §9).
 *
 * Threads: the main thread runs the HTTP server (/api/v1/rules, /api/v1/alerts, POST /-/reload,
 * /metrics, probes) and takes SIGTERM/SIGINT; a signal thread takes SIGHUP (reload); the gRPC server
 * (thanos.Store, thanos.info.Info) runs on its own loop; the rules manager runs a thread per group;
 * the notifier has its sender thread; a background thread cuts head blocks, ships them, applies
 * retention, refreshes file SD every --query.sd-interval and re-resolves --grpc-query-endpoint DNS names
 * every --query.sd-dns-interval.
 * Shutdown: HTTP drains, groups stop (an evaluation in progress finishes), the notifier sends what is
 * queued, the head is cut and shipped, gRPC stops, the TSDB closes.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/metrics.h"
#include "block/shipper.h"
#include "cmd/cmd.h"
#include "cmd/grpc_tls.h"
#include "model/relabel.h"
#include "net/api_response.h"
#include "net/grpc.h"
#include "net/http.h"
#include "objstore/config.h"
#include "rule/manager.h"
#include "rule/notifier.h"
#include "rule/queryapi.h"
#include "rule/rulefile.h"
#include "rule/rulesrv.h"
#include "store/rulesapi.h"
#include "store/grpc_server.h"
#include "store/tsdbstore.h"
#include "tsdb/db.h"

typedef struct ruler {
	cmd_server_flags_t sf;
	cmd_grpc_server_tls_t gt;
	tls_server_t *gtls; /* NULL: plaintext gRPC */
	cmd_grpc_client_tls_t gct;
	tls_client_t *gctls; /* --grpc-client-tls-*, for --grpc-query-endpoint; NULL: plaintext */
	strlist_t grpc_queries;
	int64_t query_dns_interval_ms;
	char *grpc_address, *data_dir;
	int64_t grpc_grace_ms;
	strlist_t rule_files, labels, queries, query_sd_files, am_urls, label_drop;
	char *query_config, *query_config_file, *query_method;
	int64_t query_sd_interval_ms;
	char *am_config, *am_config_file;
	int64_t am_timeout_ms;
	char *alert_query_url, *relabel_config, *relabel_config_file;
	int64_t eval_interval_ms, resend_delay_ms, outage_tol_ms, grace_ms, max_concurrent_evals;
	int64_t block_ms, retention_ms;
	bool wal_compression;
	char *objstore_config, *objstore_config_file;
	/* state */
	labels_t ext;
	arena_t ext_arena;
	bucket_t *bucket;
	relabel_t *relabel;
	qapi_t *query;
	notifier_t *notifier;
	db_t *db;
	shipper_t *shipper;
	rulemgr_t *mgr;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stopping;
	pthread_t bg_thr, hup_thr;
} ruler_t;

static int parse_labels(const strlist_t *flags, arena_t *a, labels_t *out, err_t *err)
{
	labels_t ls = {ARENA_NEW_ARRAY(a, label_t, flags->n + 1), 0};
	for (size_t i = 0; i < flags->n; i++) {
		const char *kv = flags->v[i], *eq = strchr(kv, '=');
		if (!eq || eq == kv)
			return err_set(err, ERR_INVALID, "--label %s: want name=\"value\"", kv);
		const char *v = eq + 1;
		size_t vn = strlen(v);
		if (vn >= 2 && v[0] == '"' && v[vn - 1] == '"') {
			v++;
			vn -= 2;
		}
		str_t name = str_from(kv, (size_t)(eq - kv));
		if (!label_name_valid(name))
			return err_set(err, ERR_INVALID, "--label %s: invalid label name", kv);
		ls.v[ls.n++] = (label_t){name, str_from(v, vn)};
	}
	if (labels_normalize(&ls) != 0)
		return err_set(err, ERR_INVALID, "--label: duplicate or empty label names");
	*out = ls;
	return 0;
}

static void *loop_main(void *arg)
{
	loop_run(arg);
	return NULL;
}

static bool wait_stop(ruler_t *rl, int64_t ms)
{
	pthread_mutex_lock(&rl->mu);
	if (!rl->stopping) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += ms / 1000;
		ts.tv_nsec += (ms % 1000) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&rl->cv, &rl->mu, &ts);
	}
	bool stop = rl->stopping;
	pthread_mutex_unlock(&rl->mu);
	return stop;
}

static bool is_shipped(void *arg, const char *ulid)
{
	char **ulids = ((char ***)arg)[0];
	size_t n = (size_t)((char ***)arg)[1];
	for (size_t i = 0; i < n; i++)
		if (!strcmp(ulids[i], ulid))
			return true;
	return false;
}

static int housekeeping(ruler_t *rl, bool flush, err_t *err)
{
	int nb;
	if (db_compact(rl->db, flush, &nb, err))
		return -1;
	if (rl->shipper) {
		shipper_stats_t st;
		if (shipper_sync(rl->shipper, &rl->ext, &st, err))
			return -1;
	}
	if (rl->retention_ms > 0) {
		int64_t before = clock_now_ms() - rl->retention_ms;
		int nd;
		if (rl->shipper) {
			char **ulids = NULL;
			size_t n = 0;
			if (shipper_meta_read(db_dir(rl->db), &ulids, &n, err))
				return -1;
			void *arg[2] = {ulids, (void *)n};
			int rc = db_delete_blocks(rl->db, before, is_shipped, arg, &nd, err);
			shipper_ulids_free(ulids, n);
			return rc;
		}
		return db_delete_blocks(rl->db, before, NULL, NULL, &nd, err);
	}
	return 0;
}

static void *bg_main(void *arg)
{
	ruler_t *rl = arg;
	uint64_t next_hk = clock_mono_ms() + 60000, next_sd = clock_mono_ms() + (uint64_t)rl->query_sd_interval_ms;
	uint64_t next_dns = clock_mono_ms() + (uint64_t)rl->query_dns_interval_ms;
	while (!wait_stop(rl, 1000)) {
		uint64_t now = clock_mono_ms();
		err_t err = {0};
		if (now >= next_hk) {
			if (housekeeping(rl, false, &err))
				log_error("cutting or shipping blocks failed", "err", err.msg);
			next_hk = clock_mono_ms() + 60000;
		}
		if (now >= next_sd) {
			qapi_refresh(rl->query);
			if (rl->notifier)
				notifier_refresh(rl->notifier);
			next_sd = clock_mono_ms() + (uint64_t)rl->query_sd_interval_ms;
		}
		if (now >= next_dns) {
			qapi_refresh_dns(rl->query);
			next_dns = clock_mono_ms() + (uint64_t)rl->query_dns_interval_ms;
		}
		db_publish_metrics(rl->db);
	}
	return NULL;
}

static void reload(ruler_t *rl, const char *why)
{
	err_t err = {0};
	if (rulemgr_reload(rl->mgr, &err) != 0)
		log_error("reloading rules failed; the previous rules keep running", "trigger", why, "err", err.msg);
	else
		log_info("rules reloaded", "trigger", why);
}

static void *hup_main(void *arg)
{
	ruler_t *rl = arg;
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGHUP);
	for (;;) {
		int sig;
		if (sigwait(&set, &sig) != 0)
			continue;
		pthread_mutex_lock(&rl->mu);
		bool stop = rl->stopping;
		pthread_mutex_unlock(&rl->mu);
		if (stop)
			return NULL;
		reload(rl, "SIGHUP");
	}
}

/* ---- HTTP ---- */

static void h_rules(http_req_t *r, void *arg)
{
	ruler_t *rl = arg;
	str_t t;
	int type = RULES_ALL;
	if (http_req_param(r, "type", &t) && t.n) {
		if (str_eq_c(t, "alert"))
			type = RULES_ALERT;
		else if (str_eq_c(t, "record"))
			type = RULES_RECORD;
		else {
			char msg[256];
			snprintf(msg, sizeof msg, "not supported value \"%.*s\"", (int)(t.n > 100 ? 100 : t.n), t.p);
			api_respond_error(r, API_ERR_BAD_DATA, msg);
			return;
		}
	}
	arena_t a;
	arena_init(&a, 0);
	rules_group_t *g;
	size_t n = rulemgr_snapshot(rl->mgr, &a, &g);
	buf_t b = BUF_INIT;
	rules_json(&b, g, n, type);
	api_respond_success(r, buf_str(&b), NULL, 0);
	buf_release(&b);
	arena_release(&a);
}

static void h_alerts(http_req_t *r, void *arg)
{
	ruler_t *rl = arg;
	arena_t a;
	arena_init(&a, 0);
	rules_group_t *g;
	size_t n = rulemgr_snapshot(rl->mgr, &a, &g);
	buf_t b = BUF_INIT;
	rules_alerts_json(&b, g, n);
	api_respond_success(r, buf_str(&b), NULL, 0);
	buf_release(&b);
	arena_release(&a);
}

static void reload_work(http_req_t *r, void *arg)
{
	ruler_t *rl = arg;
	err_t err = {0};
	if (rulemgr_reload(rl->mgr, &err) != 0) {
		log_error("reloading rules failed; the previous rules keep running", "trigger", "HTTP", "err", err.msg);
		http_error(r, 500, "failed to reload config: %s", err.msg);
		return;
	}
	log_info("rules reloaded", "trigger", "HTTP");
	http_respond(r, 200, "text/plain; charset=utf-8", "", 0);
}

static void h_reload(http_req_t *r, void *arg)
{
	http_run_on_worker(r, reload_work, arg);
}

static void ruler_release(ruler_t *rl)
{
	tls_server_free(rl->gtls);
	tls_client_free(rl->gctls);
	relabel_free(rl->relabel);
	bucket_free(rl->bucket);
	arena_release(&rl->ext_arena);
	pthread_mutex_destroy(&rl->mu);
	pthread_cond_destroy(&rl->cv);
}

int cmd_rule(int argc, char **argv)
{
	static ruler_t rl;
	flag_def_t defs[] = {
	    CMD_SERVER_FLAGS(&rl.sf, "0.0.0.0:10902"),
	    {"grpc-address", FLAG_STRING, &rl.grpc_address, "0.0.0.0:10901",
	     "Listen ip:port address for gRPC endpoints (StoreAPI)."},
	    {"grpc-grace-period", FLAG_DURATION, &rl.grpc_grace_ms, "2m",
	     "Time to wait after an interrupt received for GRPC Server."},
	    CMD_GRPC_SERVER_TLS_FLAGS(&rl.gt),
	    CMD_GRPC_CLIENT_TLS_FLAGS(&rl.gct),
	    {"grpc-query-endpoint", FLAG_STRINGS, &rl.grpc_queries, NULL,
	     "Addresses of Thanos gRPC query API servers (repeatable), queried with thanos.Query/Query. The "
	     "scheme may be prefixed with 'dns+' or 'dnssrv+' to detect endpoints through respective DNS "
	     "lookups. Together with the HTTP ones one HA group: HTTP endpoints are tried first."},
	    {"query.sd-dns-interval", FLAG_DURATION, &rl.query_dns_interval_ms, "30s",
	     "Interval between DNS resolutions of --grpc-query-endpoint names."},
	    {"rule-file", FLAG_STRINGS, &rl.rule_files, NULL,
	     "Rule files that should be used by rule manager. Can be in glob format (repeated). Default rules/"},
	    {"eval-interval", FLAG_DURATION, &rl.eval_interval_ms, "1m", "The default evaluation interval to use."},
	    {"rules.max-concurrent-evals", FLAG_INT, &rl.max_concurrent_evals, "4",
	     "Rules of a group evaluated at the same time, among those that neither read a series another rule of "
	     "the group writes nor write one it reads (results are those of evaluating in order). 1 evaluates "
	     "every rule after the previous one, as Prometheus 2.42 does."},
	    {"data-dir", FLAG_STRING, &rl.data_dir, "data/", "data directory"},
	    {"label", FLAG_STRINGS, &rl.labels, NULL,
	     "Labels to be applied to all generated metrics (repeated). Similar to external labels for Prometheus, "
	     "used to identify ruler and its blocks as unique source."},
	    {"tsdb.block-duration", FLAG_DURATION, &rl.block_ms, "2h", "Block duration for TSDB block."},
	    {"tsdb.retention", FLAG_DURATION, &rl.retention_ms, "48h", "Block retention time on local disk."},
	    {"tsdb.wal-compression", FLAG_BOOL, &rl.wal_compression, "true", "Compress the tsdb WAL."},
	    {"query", FLAG_STRINGS, &rl.queries, NULL,
	     "Addresses of statically configured query API servers (repeatable)."},
	    {"query.sd-files", FLAG_STRINGS, &rl.query_sd_files, NULL,
	     "Path to file that contains addresses of query API servers. The path can be a glob pattern "
	     "(repeatable)."},
	    {"query.sd-interval", FLAG_DURATION, &rl.query_sd_interval_ms, "5m",
	     "Refresh interval to re-read file SD files. (used as a fallback)"},
	    {"query.config", FLAG_STRING, &rl.query_config, NULL,
	     "Alternative to 'query.config-file' flag (mutually exclusive). Content of YAML file that contains "
	     "query API servers configuration."},
	    {"query.config-file", FLAG_STRING, &rl.query_config_file, NULL,
	     "Path to YAML file that contains query API servers configuration."},
	    {"query.http-method", FLAG_ENUM, &rl.query_method, "POST",
	     "HTTP method to use when sending queries. Possible options: [GET, POST]", "GET|POST"},
	    {"alertmanagers.url", FLAG_STRINGS, &rl.am_urls, NULL,
	     "Alertmanager replica URLs to push firing alerts. Ruler claims success if push to at least one "
	     "alertmanager from discovered succeeds."},
	    {"alertmanagers.config", FLAG_STRING, &rl.am_config, NULL,
	     "Alternative to 'alertmanagers.config-file' flag (mutually exclusive). Content of YAML file that "
	     "contains alerting configuration."},
	    {"alertmanagers.config-file", FLAG_STRING, &rl.am_config_file, NULL,
	     "Path to YAML file that contains alerting configuration."},
	    {"alertmanagers.send-timeout", FLAG_DURATION, &rl.am_timeout_ms, "10s",
	     "Timeout for sending alerts to Alertmanager"},
	    {"alert.query-url", FLAG_STRING, &rl.alert_query_url, NULL,
	     "The external Thanos Query URL that would be set in all alerts 'Source' field"},
	    {"alert.label-drop", FLAG_STRINGS, &rl.label_drop, NULL,
	     "Labels by name to drop before sending to alertmanager. This allows alert to be deduplicated on "
	     "replica label (repeated)."},
	    {"alert.relabel-config", FLAG_STRING, &rl.relabel_config, NULL,
	     "Alternative to 'alert.relabel-config-file' flag (mutually exclusive). Content of YAML file that "
	     "contains alert relabelling configuration."},
	    {"alert.relabel-config-file", FLAG_STRING, &rl.relabel_config_file, NULL,
	     "Path to YAML file that contains alert relabelling configuration."},
	    {"resend-delay", FLAG_DURATION, &rl.resend_delay_ms, "1m",
	     "Minimum amount of time to wait before resending an alert to Alertmanager."},
	    {"for-outage-tolerance", FLAG_DURATION, &rl.outage_tol_ms, "1h",
	     "Max time to tolerate prometheus outage for restoring \"for\" state of alert."},
	    {"for-grace-period", FLAG_DURATION, &rl.grace_ms, "10m",
	     "Minimum duration between alert and restored \"for\" state. This is maintained only for alerts with "
	     "configured \"for\" time greater than grace period."},
	    {"objstore.config", FLAG_STRING, &rl.objstore_config, NULL,
	     "Alternative to 'objstore.config-file' flag (mutually exclusive). Content of YAML file that contains "
	     "object store configuration."},
	    {"objstore.config-file", FLAG_STRING, &rl.objstore_config_file, NULL,
	     "Path to YAML file that contains object store configuration. Without it blocks stay local."},
	};
	flags_result_t res = {0};
	int exit_now, ret = cmd_parse_flags(argv[0],
	                                    "Ruler evaluating Prometheus rules against given Query nodes, exposing Store API "
	                                    "and storing old blocks in bucket.",
	                                    defs, ARRAY_LEN(defs), argc, argv, &res, &exit_now);
	if (exit_now)
		return ret;
	free(res.pos);
	if ((ret = cmd_server_setup_logging(argv[0], &rl.sf)) != 0)
		return ret;
	/* SIGHUP is taken by its thread only: blocked before any thread starts (they inherit the mask) */
	sigset_t hup;
	sigemptyset(&hup);
	sigaddset(&hup, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &hup, NULL);
	pthread_mutex_init(&rl.mu, NULL);
	pthread_cond_init(&rl.cv, NULL);
	arena_init(&rl.ext_arena, 0);
	err_t err = {0};
	char *text = NULL;
	size_t tlen;
	const char *what = NULL;
	if (!rl.rule_files.n)
		strlist_push(&rl.rule_files, "rules/");
	if (parse_labels(&rl.labels, &rl.ext_arena, &rl.ext, &err) != 0)
		goto usage;
	if (rl.max_concurrent_evals < 1 || rl.max_concurrent_evals > 256) {
		err_set(&err, ERR_INVALID, "--rules.max-concurrent-evals must be between 1 and 256");
		goto usage;
	}
	if (rl.eval_interval_ms <= 0 || rl.block_ms <= 0) {
		err_set(&err, ERR_INVALID, "--eval-interval and --tsdb.block-duration must be positive");
		goto usage;
	}
	if (rl.query_sd_interval_ms <= 0)
		rl.query_sd_interval_ms = 300000;
	if (rl.query_dns_interval_ms <= 0)
		rl.query_dns_interval_ms = 30000;
	if (cmd_read_config(argv[0], rl.relabel_config, rl.relabel_config_file, &text, &tlen, &what))
		goto fail;
	if (text && relabel_parse(text, tlen, what, &rl.relabel, &err) != 0)
		goto usage;
	free(text);
	text = NULL;
	if ((ret = cmd_grpc_client_tls_new(argv[0], &rl.gct, &rl.gctls)) != 0) {
		ruler_release(&rl);
		return ret;
	}
	if (cmd_read_config(argv[0], rl.query_config, rl.query_config_file, &text, &tlen, &what))
		goto fail;
	qapi_opts_t qo = {.addrs = &rl.queries,
	                  .config = text,
	                  .config_what = what,
	                  .sd_files = &rl.query_sd_files,
	                  .method = rl.query_method,
	                  .grpc_addrs = &rl.grpc_queries,
	                  .grpc_tls = rl.gctls};
	if (qapi_new(&rl.query, &qo, &err) != 0)
		goto usage;
	free(text);
	text = NULL;
	if (cmd_read_config(argv[0], rl.am_config, rl.am_config_file, &text, &tlen, &what))
		goto fail;
	if (text || rl.am_urls.n) {
		notifier_opts_t no = {.urls = &rl.am_urls,
		                      .config = text,
		                      .config_what = what,
		                      .send_timeout_ms = rl.am_timeout_ms,
		                      .ext = &rl.ext,
		                      .label_drop = &rl.label_drop,
		                      .relabel = rl.relabel};
		if (notifier_new(&rl.notifier, &no, &err) != 0)
			goto usage;
	} else {
		log_warn("no alertmanager configured; alerts are evaluated but not sent");
	}
	free(text);
	text = NULL;
	if (((rl.objstore_config && *rl.objstore_config) || (rl.objstore_config_file && *rl.objstore_config_file)) &&
	    objstore_from_flags(rl.objstore_config, rl.objstore_config_file, &rl.bucket, &err) != 0) {
		if (err.code == ERR_INVALID)
			goto usage;
		fprintf(stderr, "%s: %s\n", argv[0], err.msg);
		goto fail;
	}
	if ((ret = cmd_grpc_server_tls_new(argv[0], &rl.gt, &rl.gtls)) != 0) {
		notifier_free(rl.notifier);
		qapi_free(rl.query);
		ruler_release(&rl);
		return ret;
	}
	if (!qapi_num_endpoints(rl.query) && !rl.query_sd_files.n && !rl.grpc_queries.n) {
		/* a dry run reports a bad listen address or config first (what deploy checks look for) */
		if (rl.sf.check_config && (listener_check_address(rl.sf.http_address, &err) ||
		                           listener_check_address(rl.grpc_address, &err)))
			goto usage;
		err_set(&err, ERR_INVALID, "no --query parameter was given");
		goto usage;
	}
	if (rl.sf.check_config) { /* the rule files as a start would load them */
		arena_t ra;
		arena_init(&ra, 0);
		strlist_t errs = {0};
		rule_set_t set = {0};
		size_t nerr = rulefile_load(&ra, &rl.rule_files, true, &set, &errs);
		for (size_t i = 0; i < errs.n; i++)
			fprintf(stderr, "%s: %s\n", argv[0], errs.v[i]);
		strlist_free(&errs);
		rule_set_release(&set);
		arena_release(&ra);
		if (nerr)
			ret = 2;
		else
			ret = cmd_check_config("strata rule", &rl.sf, rl.grpc_address, NULL);
		notifier_free(rl.notifier);
		qapi_free(rl.query);
		ruler_release(&rl);
		return ret;
	}
	if (!rl.bucket)
		log_info("no --objstore.config-file: blocks stay on local disk");
	if (rl.notifier)
		notifier_start(rl.notifier);

	metrics_register_process("rule");

	head_replay_stats_t st = {0};
	/* the WAL is written through on every append but not fsynced, as Prometheus's ruler does: a kill -9
	 * loses no result, an evaluation never waits for the disk */
	db_opts_t dbo = {.block_duration = rl.block_ms,
	                 .head = {.wal_compression = rl.wal_compression, .wal_no_sync = true}};
	if (db_open(&rl.db, rl.data_dir, &dbo, &st, &err) != 0) {
		fprintf(stderr, "%s: %s\n", argv[0], err.msg);
		goto fail;
	}
	char secs[32];
	snprintf(secs, sizeof secs, "%.3f", st.seconds);
	log_info("TSDB opened", "dir", rl.data_dir, "replay_seconds", secs);
	if (rl.bucket) {
		shipper_config_t sc = {.dir = rl.data_dir, .bucket = rl.bucket, .source = "ruler"};
		rl.shipper = shipper_new(&sc);
	}
	rulemgr_opts_t mo = {.db = rl.db,
	                     .query = rl.query,
	                     .notifier = rl.notifier,
	                     .ext = &rl.ext,
	                     .files = &rl.rule_files,
	                     .eval_interval_ms = rl.eval_interval_ms,
	                     .resend_delay_ms = rl.resend_delay_ms,
	                     .outage_tolerance_ms = rl.outage_tol_ms,
	                     .grace_period_ms = rl.grace_ms,
	                     .query_url = rl.alert_query_url,
	                     .max_concurrent_evals = (int)rl.max_concurrent_evals};
	rl.mgr = rulemgr_new(&mo);
	if (rulemgr_reload(rl.mgr, &err) != 0) {
		fprintf(stderr, "%s: loading rules: %s\n", argv[0], err.msg);
		rulemgr_free(rl.mgr);
		db_close(rl.db, &err);
		goto fail;
	}

	loop_t *http_loop = NULL, *grpc_loop = NULL;
	http_server_t *http = NULL;
	grpc_server_t *grpc = NULL;
	store_service_t *svc = NULL;
	rulesrv_t *rsrv = NULL;
	listener_t *gls = NULL;
	tsdb_store_t *store = tsdb_store_new("rule", rl.db, &rl.ext, "rule");
	pthread_t grpc_thr;
	bool grpc_started = false, bg_started = false;
	ret = 0;
	if (loop_new(&http_loop, &err) || loop_new(&grpc_loop, &err)) {
		fprintf(stderr, "%s: %s\n", argv[0], err.msg);
		ret = 1;
		goto out;
	}
	http_server_config_t hcfg = {
	    .address = rl.sf.http_address, .worker_threads = 2, .web_config_file = rl.sf.http_config};
	if (http_server_new(&http, http_loop, &hcfg, &err) != 0) {
		fprintf(stderr, "%s: %s\n", argv[0], err.msg);
		ret = 1;
		goto out;
	}
	http_handle(http, HTTP_M_GET, "/api/v1/rules", h_rules, &rl);
	http_handle(http, HTTP_M_GET, "/api/v1/alerts", h_alerts, &rl);
	http_handle(http, HTTP_M_POST | HTTP_M_PUT, "/-/reload", h_reload, &rl);
	grpc = grpc_server_new(grpc_loop, NULL);
	svc = store_grpc_register_pool(grpc, tsdb_store_base(store), "rule", NULL);
	rsrv = rulesrv_register(grpc, rl.mgr, &rl.ext);
	if (grpc_server_listen_tls(grpc, rl.grpc_address, rl.gtls, &gls, &err) != 0) {
		fprintf(stderr, "%s: %s\n", argv[0], err.msg);
		ret = 1;
		goto out;
	}
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	pthread_create(&grpc_thr, NULL, loop_main, grpc_loop);
	grpc_started = true;
	pthread_create(&rl.bg_thr, NULL, bg_main, &rl);
	pthread_create(&rl.hup_thr, NULL, hup_main, &rl);
	bg_started = true;
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	http_server_set_ready(http, true);
	log_info("ruler listening", "http", rl.sf.http_address, "grpc", rl.grpc_address, "grpc_tls", rl.gtls ? "on" : "off",
	         "grpc_client_tls", rl.gctls ? "on" : "off",
	         "data_dir", rl.data_dir);
	if (http_server_run(http, rl.sf.http_grace_ms, &err) != 0) {
		fprintf(stderr, "%s: %s\n", argv[0], err.msg);
		ret = 1;
	}
	log_info("ruler shutting down");
out:
	if (bg_started) {
		pthread_mutex_lock(&rl.mu);
		rl.stopping = true;
		pthread_cond_signal(&rl.cv);
		pthread_mutex_unlock(&rl.mu);
		pthread_join(rl.bg_thr, NULL);
		pthread_kill(rl.hup_thr, SIGHUP);
		pthread_join(rl.hup_thr, NULL);
	}
	rulemgr_free(rl.mgr);
	notifier_free(rl.notifier);
	if (bg_started && housekeeping(&rl, true, &err) != 0) {
		log_error("cutting or shipping blocks at shutdown failed", "err", err.msg);
		ret = 1;
	}
	if (grpc_started) {
		loop_stop(grpc_loop);
		pthread_join(grpc_thr, NULL);
	}
	if (gls)
		listener_free(gls);
	store_grpc_service_free(svc);
	rulesrv_free(rsrv);
	if (grpc)
		grpc_server_free(grpc);
	if (http)
		http_server_free(http);
	if (grpc_loop)
		loop_free(grpc_loop);
	if (http_loop)
		loop_free(http_loop);
	tsdb_store_free(store);
	shipper_free(rl.shipper);
	if (db_close(rl.db, &err) != 0) {
		log_error("closing the TSDB failed", "err", err.msg);
		ret = 1;
	}
	qapi_free(rl.query);
	ruler_release(&rl);
	return ret;
usage:
	fprintf(stderr, "%s: %s\n", argv[0], err.msg);
	free(text);
	notifier_free(rl.notifier);
	qapi_free(rl.query);
	ruler_release(&rl);
	return 2;
fail:
	free(text);
	notifier_free(rl.notifier);
	qapi_free(rl.query);
	ruler_release(&rl);
	return 1;
}
