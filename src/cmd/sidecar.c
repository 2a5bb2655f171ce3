/*
 * sidecar.c — `strata sidecar`: StoreAPI over a live Prometheus (remote read), block shipping to the
 * bucket, config/rules reloader (Thanos `sidecar`; reference thanos.md §1.4).
 *
 * Lifecycle: wait (at most --prometheus.ready_timeout) until Prometheus is ready and its external
 * labels are known; when shipping, refuse empty external labels and unequal min/max block durations;
 * then serve HTTP (/metrics, /-/healthy, /-/ready) on the main thread and gRPC (thanos.Store,
 * thanos.info.Info) on its own loop thread, because remote-read calls block on Prometheus. A third
 * thread does the periodic work: external labels every --prometheus.get_config_interval (also the
 * thanos_sidecar_prometheus_up heartbeat), a shipper sync every 30s, the reloader's file check.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/stat.h>
#include <dirent.h>
#include <errno.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/duration.h"
#include "base/hmap.h"
#include "base/log.h"
#include "base/metrics.h"
#include "cmd/cmd.h"
#include "cmd/grpc_tls.h"
#include "net/grpc.h"
#include "net/http.h"
#include "net/httpcfg.h"
#include "net/httpclient.h"
#include "objstore/config.h"
#include "store/grpc_server.h"
#include "sidecar/prom_store.h"
#include "block/shipper.h"

typedef struct sidecar {
	/* flags */
	cmd_server_flags_t sf;
	char *grpc_address;
	cmd_grpc_server_tls_t grpc_tls_flags;
	int64_t grpc_grace_ms;
	char *prom_url;
	char *prom_http_client, *prom_http_client_file;
	int64_t ready_timeout_ms, config_interval_ms, config_timeout_ms;
	char *tsdb_path;
	char *objstore_config, *objstore_config_file;
	bool upload_compacted;
	int64_t shipper_interval_ms;
	char *min_time_s;
	char *reloader_config;
	strlist_t reloader_rule_dirs;
	int64_t reloader_watch_ms, reloader_retry_ms;
	/* state */
	tls_server_t *grpc_tls; /* NULL: plaintext */
	httpcfg_t *prom_http;   /* --prometheus.http-client: auth and TLS towards Prometheus */
	int64_t min_time;
	bucket_t *bucket;
	shipper_t *shipper;
	prom_store_t *store;
	loop_t *grpc_loop;
	pthread_t grpc_thr, bg_thr;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stopping;
	uint64_t reload_hash;
	bool reload_pending;
	metric_child_t *m_up, *m_heartbeat, *m_reloads, *m_reload_fails;
} sidecar_t;

/* ---- reloader: hash of the config file and every file in the rule dirs ---- */

static uint64_t hash_file(uint64_t h, const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return h ^ 0x9e3779b97f4a7c15ull;
	char buf[8192];
	size_t n;
	h ^= hash_bytes(path, strlen(path));
	while ((n = fread(buf, 1, sizeof buf, f)) > 0)
		h = h * 31 + hash_bytes(buf, n);
	fclose(f);
	return h;
}

static int cmp_cstr(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static uint64_t reloader_hash(const sidecar_t *sc)
{
	uint64_t h = 1469598103934665603ull;
	if (sc->reloader_config && *sc->reloader_config)
		h = hash_file(h, sc->reloader_config);
	for (size_t i = 0; i < sc->reloader_rule_dirs.n; i++) {
		DIR *d = opendir(sc->reloader_rule_dirs.v[i]);
		if (!d)
			continue;
		char *names[4096];
		size_t n = 0;
		struct dirent *de;
		while ((de = readdir(d)) != NULL && n < ARRAY_LEN(names))
			if (de->d_name[0] != '.')
				names[n++] = xstrdup(de->d_name);
		closedir(d);
		qsort(names, n, sizeof *names, cmp_cstr);
		for (size_t k = 0; k < n; k++) {
			char p[4096];
			snprintf(p, sizeof p, "%s/%s", sc->reloader_rule_dirs.v[i], names[k]);
			h = hash_file(h, p);
			free(names[k]);
		}
	}
	return h;
}

static int prometheus_reload(const sidecar_t *sc, err_t *err)
{
	char url[1024];
	snprintf(url, sizeof url, "%s/-/reload", sc->prom_url);
	httpc_resp_t resp;
	httpc_resp_init(&resp);
	httpc_req_t req = {.method = "POST", .url = url, .timeout_ms = 30000, .cfg = sc->prom_http};
	int rc = httpc_do(&req, &resp, err);
	if (rc == 0 && resp.status != 200) {
		str_t b = str_trim(buf_str(&resp.body));
		if (b.n > 300)
			b.n = 300;
		rc = err_set(err, ERR_UNAVAILABLE, "POST %s: HTTP %ld: " STR_FMT, url, resp.status, STR_ARG(b));
	}
	httpc_resp_release(&resp);
	return rc;
}

/* ---- periodic work ---- */

static bool labels_same(const labels_t *a, const labels_t *b)
{
	return labels_eq(a, b);
}

static void refresh_external_labels(sidecar_t *sc)
{
	arena_t a;
	arena_init(&a, 0);
	labels_t ls;
	err_t err = {0};
	if (prom_api_external_labels(sc->prom_url, sc->prom_http, sc->config_timeout_ms, &a, &ls, &err) != 0) {
		metric_set(sc->m_up, 0);
		log_warn("cannot read Prometheus external labels", "err", err.msg);
	} else {
		metric_set(sc->m_up, 1);
		metric_set(sc->m_heartbeat, (double)clock_now_ms() / 1000.0);
		labels_t cur = prom_store_external_labels(sc->store, &a);
		if (!labels_same(&cur, &ls)) {
			buf_t b = BUF_INIT;
			labels_format_full(&b, &ls);
			log_info("Prometheus external labels changed", "labels", b.p);
			buf_release(&b);
			prom_store_set_external_labels(sc->store, &ls);
		}
	}
	arena_release(&a);
}

static void ship(sidecar_t *sc)
{
	arena_t a;
	arena_init(&a, 0);
	labels_t ext = prom_store_external_labels(sc->store, &a);
	shipper_stats_t st;
	err_t err = {0};
	if (shipper_sync(sc->shipper, &ext, &st, &err) != 0)
		log_warn("shipper sync failed", "err", err.msg);
	arena_release(&a);
}

/* Prometheus's lowest timestamp, what Info announces as the sidecar's min time (so queries for older
 * ranges skip it): the oldest of its blocks (and of those the shipper uploaded) and of its head, whose
 * min time Prometheus reports from the first sample on, so the sidecar need not wait ~2h for a block.
 * INT64_MIN when unknown: no sample anywhere yet, or Prometheus did not answer and there is no block. */
static int64_t data_min_time(sidecar_t *sc)
{
	int64_t blocks = shipper_min_time(sc->shipper, sc->tsdb_path), head;
	err_t err = {0};
	if (prom_api_head_min_time(sc->prom_url, sc->prom_http, sc->config_timeout_ms, &head, &err) != 0) {
		log_warn("cannot read Prometheus's head min time; Info uses its blocks only", "err", err.msg);
		return blocks;
	}
	if (head == INT64_MAX)
		return blocks;
	return blocks == INT64_MIN || head < blocks ? head : blocks;
}

static void *bg_main(void *arg)
{
	sidecar_t *sc = arg;
	uint64_t next_cfg = clock_mono_ms() + (uint64_t)sc->config_interval_ms, next_ship = 0, next_reload = 0;
	uint64_t next_mint = 0;
	for (;;) {
		pthread_mutex_lock(&sc->mu);
		if (!sc->stopping) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += 500 * 1000000L;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&sc->cv, &sc->mu, &ts);
		}
		bool stop = sc->stopping;
		pthread_mutex_unlock(&sc->mu);
		if (stop)
			break;
		uint64_t now = clock_mono_ms();
		if (now >= next_cfg) {
			refresh_external_labels(sc);
			next_cfg = now + (uint64_t)sc->config_interval_ms;
		}
		if (sc->shipper && now >= next_ship) {
			ship(sc);
			next_ship = clock_mono_ms() + (uint64_t)sc->shipper_interval_ms;
			next_mint = 0;
		}
		if (now >= next_mint) {
			int64_t mint = data_min_time(sc);
			prom_store_set_data_min_time(sc->store, mint);
			/* until Prometheus holds a sample, look again soon: Info says "all time" meanwhile */
			next_mint = now + (mint == INT64_MIN ? 5000 : 30000);
		}
		if ((sc->reloader_config || sc->reloader_rule_dirs.n) && now >= next_reload) {
			uint64_t h = reloader_hash(sc);
			/* Polling stands in for Thanos's fsnotify: at least every second. */
			next_reload = now + (uint64_t)(sc->reloader_watch_ms < 1000 ? sc->reloader_watch_ms : 1000);
			if (h != sc->reload_hash || sc->reload_pending) {
				err_t err = {0};
				if (prometheus_reload(sc, &err) == 0) {
					metric_inc(sc->m_reloads);
					log_info("Prometheus reload triggered", "cfg", sc->reloader_config);
					sc->reload_hash = h;
					sc->reload_pending = false;
				} else {
					metric_inc(sc->m_reload_fails);
					log_error("Prometheus reload failed, retrying", "err", err.msg);
					sc->reload_pending = true;
					next_reload = now + (uint64_t)sc->reloader_retry_ms;
				}
			}
		}
	}
	return NULL;
}

static void *grpc_main(void *arg)
{
	loop_run(((sidecar_t *)arg)->grpc_loop);
	return NULL;
}

/* ---- start-up checks ---- */

static int wait_for_prometheus(sidecar_t *sc, arena_t *a, labels_t *ext)
{
	uint64_t start = clock_mono_ms();
	err_t err = {0};
	int64_t attempt_timeout = 5000;
	for (int i = 0;; i++) {
		if (prom_api_ready(sc->prom_url, sc->prom_http, attempt_timeout, &err) == 0 &&
		    prom_api_external_labels(sc->prom_url, sc->prom_http, sc->config_timeout_ms, a, ext, &err) == 0)
			return 0;
		if (clock_mono_ms() - start >= (uint64_t)sc->ready_timeout_ms)
			break;
		if (i % 5 == 0)
			log_warn("waiting for Prometheus to be ready", "url", sc->prom_url, "err", err.msg);
		usleep(2000 * 1000);
	}
	buf_t d = BUF_INIT;
	duration_format(&d, sc->ready_timeout_ms);
	log_error("Prometheus not ready in time (--prometheus.ready_timeout)", "url", sc->prom_url, "timeout", d.p,
		  "err", err.msg);
	fprintf(stderr, "strata sidecar: Prometheus at %s not ready within %s: %s\n", sc->prom_url, d.p, err.msg);
	buf_release(&d);
	return 1;
}

static int check_block_durations(sidecar_t *sc)
{
	arena_t a;
	arena_init(&a, 0);
	const char *mn = NULL, *mx = NULL;
	err_t err = {0};
	int rc = 0;
	if (prom_api_flag(sc->prom_url, sc->prom_http, sc->config_timeout_ms, "storage.tsdb.min-block-duration", &a, &mn, &err) ||
	    prom_api_flag(sc->prom_url, sc->prom_http, sc->config_timeout_ms, "storage.tsdb.max-block-duration", &a, &mx, &err)) {
		fprintf(stderr, "strata sidecar: cannot check Prometheus block durations: %s\n", err.msg);
		rc = 1;
	} else {
		int64_t dmn = 0, dmx = 0;
		duration_parse(str_c(mn), &dmn, NULL);
		duration_parse(str_c(mx), &dmx, NULL);
		if (dmn != dmx || dmn == 0) {
			fprintf(stderr,
				"strata sidecar: Prometheus has --storage.tsdb.min-block-duration=%s and "
				"--storage.tsdb.max-block-duration=%s; when uploading blocks they must be equal (Prometheus "
				"must not compact blocks itself): start Prometheus with "
				"--storage.tsdb.min-block-duration=2h --storage.tsdb.max-block-duration=2h\n",
				mn, mx);
			rc = 1;
		}
	}
	arena_release(&a);
	return rc;
}

static void sidecar_release(sidecar_t *sc)
{
	shipper_free(sc->shipper);
	bucket_free(sc->bucket);
	prom_store_free(sc->store);
	tls_server_free(sc->grpc_tls);
	httpcfg_free(sc->prom_http);
	pthread_mutex_destroy(&sc->mu);
	pthread_cond_destroy(&sc->cv);
}

int cmd_sidecar(int argc, char **argv)
{
	static sidecar_t sc;
	flag_def_t defs[] = {
		CMD_SERVER_FLAGS(&sc.sf, "0.0.0.0:10902"),
		{"grpc-address", FLAG_STRING, &sc.grpc_address, "0.0.0.0:10901",
		 "Listen ip:port address for gRPC endpoints (StoreAPI)."},
		CMD_GRPC_SERVER_TLS_FLAGS(&sc.grpc_tls_flags),
		{"grpc-grace-period", FLAG_DURATION, &sc.grpc_grace_ms, "2m",
		 "Time to wait after an interrupt received for GRPC Server."},
		{"prometheus.url", FLAG_STRING, &sc.prom_url, "http://localhost:9090",
		 "URL at which to reach Prometheus's API."},
		{"prometheus.http-client", FLAG_STRING, &sc.prom_http_client, NULL,
		 "Alternative to 'prometheus.http-client-file' flag (mutually exclusive). Content of YAML file "
		 "which contains the HTTP client configuration (basic_auth, bearer_token, tls_config) for talking "
		 "to Prometheus."},
		{"prometheus.http-client-file", FLAG_STRING, &sc.prom_http_client_file, NULL,
		 "Path to YAML file that contains the HTTP client configuration for talking to Prometheus."},
		{"prometheus.ready_timeout", FLAG_DURATION, &sc.ready_timeout_ms, "10m",
		 "Maximum time to wait for the Prometheus instance to start up."},
		{"prometheus.get_config_interval", FLAG_DURATION, &sc.config_interval_ms, "30s",
		 "How often to get Prometheus config."},
		{"prometheus.get_config_timeout", FLAG_DURATION, &sc.config_timeout_ms, "30s",
		 "Timeout for getting Prometheus config."},
		{"tsdb.path", FLAG_STRING, &sc.tsdb_path, "./data", "Data directory of TSDB."},
		{"objstore.config", FLAG_STRING, &sc.objstore_config, NULL,
		 "Alternative to 'objstore.config-file' flag (mutually exclusive). Content of YAML file that contains object store configuration."},
		{"objstore.config-file", FLAG_STRING, &sc.objstore_config_file, NULL,
		 "Path to YAML file that contains object store configuration. Without it the sidecar only serves queries."},
		{"shipper.upload-compacted", FLAG_BOOL, &sc.upload_compacted, "false",
		 "If true shipper will try to upload compacted blocks as well. Useful for migration purposes."},
		{"shipper.sync-interval", FLAG_DURATION, &sc.shipper_interval_ms, "30s",
		 "How often the shipper looks for new blocks.", NULL, true},
		{"min-time", FLAG_STRING, &sc.min_time_s, "0000-01-01T00:00:00Z",
		 "Start of time range limit to serve. Option can be a constant time in RFC3339 format or time duration relative to current time, such as -1d or 2h45m."},
		{"reloader.config-file", FLAG_STRING, &sc.reloader_config, NULL,
		 "Config file watched by the reloader (Prometheus is told to reload when it changes)."},
		{"reloader.rule-dir", FLAG_STRINGS, &sc.reloader_rule_dirs, NULL,
		 "Rule directories for the reloader to refresh (repeated field)."},
		{"reloader.watch-interval", FLAG_DURATION, &sc.reloader_watch_ms, "3m",
		 "Controls how often reloader re-reads config and rules (at least every second, which stands in for file-change notifications)."},
		{"reloader.retry-interval", FLAG_DURATION, &sc.reloader_retry_ms, "5s",
		 "Controls how often reloader retries config reload in case of error."},
	};
	flags_result_t res = {0};
	int exit_now, rc = cmd_parse_flags(argv[0], "Sidecar for Prometheus server.", defs, ARRAY_LEN(defs), argc,
					   argv, &res, &exit_now);
	if (exit_now)
		return rc;
	free(res.pos);
	if ((rc = cmd_server_setup_logging(argv[0], &sc.sf)) != 0)
		return rc;
	err_t err = {0};
	if (cmd_time_or_duration("min-time", sc.min_time_s, &sc.min_time, &err) != 0) {
		fprintf(stderr, "%s: %s\n", argv[0], err.msg);
		return 2;
	}
	if (strncmp(sc.prom_url, "http://", 7) != 0 && strncmp(sc.prom_url, "https://", 8) != 0) {
		fprintf(stderr, "%s: --prometheus.url=%s: want an http:// or https:// URL\n", argv[0],
			sc.prom_url);
		return 2;
	}
	if (sc.sf.check_config && sc.reloader_config && *sc.reloader_config &&
	    access(sc.reloader_config, R_OK) != 0) {
		fprintf(stderr, "%s: --reloader.config-file=%s: %s\n", argv[0], sc.reloader_config,
			strerror(errno));
		return 2;
	}
	if (sc.shipper_interval_ms <= 0)
		sc.shipper_interval_ms = 30000;
	if (sc.config_interval_ms <= 0)
		sc.config_interval_ms = 30000;
	pthread_mutex_init(&sc.mu, NULL);
	pthread_cond_init(&sc.cv, NULL);
	char *text;
	size_t len;
	const char *what = NULL;
	if (cmd_read_config(argv[0], sc.prom_http_client, sc.prom_http_client_file, &text, &len, &what)) {
		sidecar_release(&sc);
		return 2;
	}
	if (text) {
		char name[600];
		snprintf(name, sizeof name, "--prometheus.http-client %s", what);
		rc = httpcfg_parse(text, len, name, &sc.prom_http, &err);
		free(text);
		if (rc) {
			fprintf(stderr, "%s: %s\n", argv[0], err.msg);
			sidecar_release(&sc);
			return 2;
		}
	}
	bool shipping = (sc.objstore_config && *sc.objstore_config) || (sc.objstore_config_file && *sc.objstore_config_file);
	if (shipping && objstore_from_flags(sc.objstore_config, sc.objstore_config_file, &sc.bucket, &err) != 0) {
		fprintf(stderr, "%s: %s\n", argv[0], err.msg);
		sidecar_release(&sc);
		return err.code == ERR_INVALID ? 2 : 1;
	}
	if ((rc = cmd_grpc_server_tls_new(argv[0], &sc.grpc_tls_flags, &sc.grpc_tls)) > 0 ||
	    (rc = cmd_check_config(argv[0], &sc.sf, sc.grpc_address, NULL)) >= 0) {
		sidecar_release(&sc);
		return rc;
	}
	prom_store_config_t pcfg = {
	    .url = sc.prom_url, .timeout_ms = 2 * 60 * 1000, .min_time = sc.min_time, .http = sc.prom_http};
	sc.store = prom_store_new(&pcfg);
	metrics_register_process("sidecar");
	sc.m_up = metric_with(metrics_gauge("thanos_sidecar_prometheus_up",
					    "Boolean indicator whether the sidecar can reach its Prometheus peer.", NULL));
	sc.m_heartbeat = metric_with(metrics_gauge("thanos_sidecar_last_heartbeat_success_time_seconds",
						   "Timestamp of the last successful heartbeat in seconds.", NULL));
	sc.m_reloads = metric_with(metrics_counter("thanos_sidecar_reloader_reloads_total",
						   "Total number of reload requests.", NULL));
	sc.m_reload_fails = metric_with(metrics_counter("thanos_sidecar_reloader_reloads_failed_total",
							"Total number of reload requests that failed.", NULL));

	/* Start-up: Prometheus ready, external labels known, shipping preconditions. */
	arena_t a;
	arena_init(&a, 0);
	labels_t ext;
	if (wait_for_prometheus(&sc, &a, &ext) != 0) {
		arena_release(&a);
		sidecar_release(&sc);
		return 1;
	}
	metric_set(sc.m_up, 1);
	prom_store_set_external_labels(sc.store, &ext);
	buf_t lb = BUF_INIT;
	labels_format_full(&lb, &ext);
	log_info("Prometheus is ready", "url", sc.prom_url, "external_labels", lb.p);
	buf_release(&lb);
	if (shipping) {
		if (ext.n == 0) {
			fprintf(stderr, "%s: Prometheus at %s has no external labels; blocks uploaded without them cannot be told apart "
					"in the bucket: set global.external_labels (e.g. cluster, replica) in its configuration\n",
				argv[0], sc.prom_url);
			arena_release(&a);
			sidecar_release(&sc);
			return 1;
		}
		if (check_block_durations(&sc) != 0) {
			arena_release(&a);
			sidecar_release(&sc);
			return 1;
		}
		shipper_config_t shc = {.dir = sc.tsdb_path, .bucket = sc.bucket, .upload_compacted = sc.upload_compacted,
					.source = "sidecar"};
		sc.shipper = shipper_new(&shc);
	} else {
		log_info("no --objstore.config-file: blocks are not uploaded, the sidecar only serves queries");
	}
	arena_release(&a);
	prom_store_set_data_min_time(sc.store, data_min_time(&sc));
	sc.reload_hash = reloader_hash(&sc);

	/* SIGTERM/SIGINT are for the HTTP loop on this thread: the threads started below block them. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);

	loop_t *http_loop = NULL;
	http_server_t *http = NULL;
	grpc_server_t *grpc = NULL;
	store_service_t *svc = NULL;
	listener_t *gls = NULL;
	bool grpc_started = false, bg_started = false;
	if (loop_new(&http_loop, &err) || loop_new(&sc.grpc_loop, &err)) {
		fprintf(stderr, "%s: %s\n", argv[0], err.msg);
		rc = 1;
		goto out;
	}
	http_server_config_t hcfg = {.address = sc.sf.http_address, .web_config_file = sc.sf.http_config};
	if (http_server_new(&http, http_loop, &hcfg, &err) != 0) {
		fprintf(stderr, "%s: %s\n", argv[0], err.msg);
		rc = 1;
		goto out;
	}
	grpc = grpc_server_new(sc.grpc_loop, NULL);
	svc = store_grpc_register_pool(grpc, prom_store_base(sc.store), "sidecar", NULL);
	if (grpc_server_listen_tls(grpc, sc.grpc_address, sc.grpc_tls, &gls, &err) != 0) {
		fprintf(stderr, "%s: %s\n", argv[0], err.msg);
		rc = 1;
		goto out;
	}
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	pthread_create(&sc.grpc_thr, NULL, grpc_main, &sc);
	grpc_started = true;
	pthread_create(&sc.bg_thr, NULL, bg_main, &sc);
	bg_started = true;
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	log_info("sidecar listening", "http", sc.sf.http_address, "grpc", sc.grpc_address, "grpc_tls",
		 sc.grpc_tls ? "on" : "off");
	http_server_set_ready(http, true);
	if (http_server_run(http, sc.sf.http_grace_ms, &err) != 0) {
		fprintf(stderr, "%s: %s\n", argv[0], err.msg);
		rc = 1;
	}
	log_info("sidecar shutting down");
out:
	if (bg_started) {
		pthread_mutex_lock(&sc.mu);
		sc.stopping = true;
		pthread_cond_signal(&sc.cv);
		pthread_mutex_unlock(&sc.mu);
		pthread_join(sc.bg_thr, NULL);
	}
	if (grpc_started) {
		loop_stop(sc.grpc_loop);
		pthread_join(sc.grpc_thr, NULL);
	}
	if (gls)
		listener_free(gls);
	store_grpc_service_free(svc);
	if (grpc)
		grpc_server_free(grpc);
	if (http)
		http_server_free(http);
	if (sc.grpc_loop)
		loop_free(sc.grpc_loop);
	if (http_loop)
		loop_free(http_loop);
	sidecar_release(&sc);
	return rc;
}
