/*
 * receive.c — `strata receive`: Prometheus remote-write ingestion into per-tenant TSDBs with a WAL,
 * blocks uploaded to the bucket, everything served over the StoreAPI (Thanos `receive` as an
 * ingestor; reference thanos.md §1.9, §8).
 *
 * Threads: the main thread runs the HTTP server (/metrics, /-/healthy, /-/ready) and takes
 * SIGTERM/SIGINT; the remote-write server (--remote-write.address, POST /api/v1/receive, writes on its
 * worker pool) and the gRPC server (thanos.Store, thanos.info.Info) run on loops of their own; a
 * background thread first reopens the tenants found in --tsdb.path (replaying their WALs: not ready
 * until then), then does the periodic work: limits reload, cutting blocks, uploading, retention.
 * Shutdown: the HTTP server drains, the remote-write server stops taking writes and finishes the ones
 * in flight, every head is cut into blocks and uploaded, then gRPC stops and the TSDBs close.
 */
#include <malloc.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <sys/stat.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/metrics.h"
#include "cmd/cmd.h"
#include "cmd/grpc_tls.h"
#include "model/relabel.h"
#include "net/grpc.h"
#include "net/http.h"
#include "objstore/config.h"
#include "receive/handler.h"
#include "receive/limits.h"
#include "receive/multitsdb.h"
#include "receive/router.h"
#include "store/grpc_server.h"

typedef struct receiver {
	cmd_server_flags_t sf;
	char *grpc_address, *rw_address, *tsdb_path;
	int64_t grpc_grace_ms;
	strlist_t label_flags;
	int64_t retention_ms, min_block_ms, max_block_ms, tff_ms, ooo_ms, ooo_cap, housekeeping_ms,
	    limits_reload_ms;
	int64_t max_exemplars;
	bool wal_compression;
	char *objstore_config, *objstore_config_file;
	char *tenant_header, *default_tenant, *tenant_label;
	char *relabel_config, *relabel_config_file, *limits_config, *limits_config_file;
	char *hashrings, *hashrings_file, *hashrings_algo, *local_endpoint, *replica_header, *grpc_compression;
	char *replication_protocol;
	int64_t hashrings_refresh_ms, replication_factor, forward_timeout_ms, forward_backoff_ms, forward_workers;
	char *tenant_cert_field;
	cmd_grpc_server_tls_t grpc_tls_flags, rw_tls_flags;
	cmd_grpc_client_tls_t rw_client_tls_flags;
	/* state */
	tls_server_t *grpc_tls, *rw_tls; /* NULL: plaintext */
	tls_client_t *peer_tls;          /* forwarding to peers; NULL: h2c */
	rcv_router_t *router;
	hashring_algo_t algo;
	uint8_t ring_md5[16];
	struct stat ring_st;
	bucket_t *bucket;
	relabel_t *relabel;
	rcv_limiter_t *limiter;
	mtsdb_t *mt;
	rcv_handler_t *handler;
	http_server_t *http, *rw;
	loop_t *rw_loop, *grpc_loop;
	pthread_t rw_thr, grpc_thr, bg_thr;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stopping, startup_failed;
} receiver_t;

/* --label name="value" (quotes optional). */
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

static int read_text(const char *inline_text, const char *file, buf_t *out, const char **what, err_t *err)
{
	if (inline_text && *inline_text) {
		buf_puts(out, inline_text);
		*what = "<inline>";
		return 0;
	}
	if (!file || !*file)
		return 0;
	FILE *f = fopen(file, "rb");
	if (!f)
		return err_errno(err, "read %s", file);
	char tmp[8192];
	size_t n;
	while ((n = fread(tmp, 1, sizeof tmp, f)) > 0)
		buf_append(out, tmp, n);
	fclose(f);
	*what = file;
	return 0;
}

static void *loop_main(void *arg)
{
	loop_run(arg);
	return NULL;
}

static bool wait_stop(receiver_t *rc, int64_t ms)
{
	pthread_mutex_lock(&rc->mu);
	if (!rc->stopping) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += ms / 1000;
		ts.tv_nsec += (ms % 1000) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&rc->cv, &rc->mu, &ts);
	}
	bool stop = rc->stopping;
	pthread_mutex_unlock(&rc->mu);
	return stop;
}

/* thanos_receive_config_hash: the first 6 bytes of the MD5 of the file as a number (as Thanos and
 * Prometheus's config reloader expose a config's hash). */
static double hash_metric_value(const uint8_t md5[16])
{
	uint64_t v = 0;
	for (int i = 5; i >= 0; i--)
		v = v << 8 | md5[i];
	return (double)v;
}

static void set_all_ready(receiver_t *rc, bool ready)
{
	rcv_handler_set_ready(rc->handler, ready);
	rcv_router_set_ready(rc->router, ready);
	http_server_set_ready(rc->rw, ready);
	http_server_set_ready(rc->http, ready);
}

/* Read and parse the hashring config (inline or file); *md5 gets its hash. */
static int hashrings_load(receiver_t *rc, hashrings_t **out, uint8_t md5[16], err_t *err)
{
	buf_t text = BUF_INIT;
	const char *what = NULL;
	int r = read_text(rc->hashrings, rc->hashrings_file, &text, &what, err);
	if (!r) {
		unsigned int ml = 16;
		EVP_Digest(text.p ? text.p : "", text.n, md5, &ml, EVP_md5(), NULL);
		r = hashrings_parse(text.p ? text.p : "", text.n, what, rc->algo, (uint64_t)rc->replication_factor,
		                    out, err);
	}
	buf_release(&text);
	return r;
}

static metric_t *m_cfg_hash, *m_cfg_ok, *m_cfg_ok_ts, *m_ring_changes, *m_ring_errors;

static void hashrings_metrics(receiver_t *rc, bool ok)
{
	metric_set(metric_with(m_cfg_ok), ok ? 1 : 0);
	if (ok) {
		metric_set(metric_with(m_cfg_hash), hash_metric_value(rc->ring_md5));
		metric_set(metric_with(m_cfg_ok_ts), (double)clock_now_ms() / 1000.0);
	}
}

/* The file changed (or the refresh interval passed): if its content differs, switch rings the way
 * Thanos does: not ready, running writes finish, every head is cut into blocks and shipped, the new
 * rings take over, ready again. A file that does not parse keeps the old rings. */
static void hashrings_watch(receiver_t *rc, bool force)
{
	struct stat st;
	if (stat(rc->hashrings_file, &st) != 0)
		memset(&st, 0, sizeof st);
	bool touched = st.st_mtim.tv_sec != rc->ring_st.st_mtim.tv_sec ||
	               st.st_mtim.tv_nsec != rc->ring_st.st_mtim.tv_nsec || st.st_size != rc->ring_st.st_size ||
	               st.st_ino != rc->ring_st.st_ino;
	if (!touched && !force)
		return;
	rc->ring_st = st;
	uint8_t md5[16];
	hashrings_t *h = NULL;
	err_t err = {0};
	if (hashrings_load(rc, &h, md5, &err) != 0) {
		if (touched) {
			log_error("hashring config reload failed; keeping the previous hashrings", "err", err.msg);
			metric_inc(metric_with(m_ring_errors));
			metric_set(metric_with(m_cfg_ok), 0);
		}
		return;
	}
	if (!memcmp(md5, rc->ring_md5, 16)) {
		hashrings_free(h);
		return;
	}
	log_info("hashring config changed: flushing the heads before taking writes again", "file",
	         rc->hashrings_file);
	uint64_t t0 = clock_mono_ns();
	set_all_ready(rc, false);
	rcv_handler_wait_idle(rc->handler);
	rcv_router_wait_idle(rc->router);
	if (mtsdb_housekeeping(rc->mt, true, &err) != 0)
		log_error("flushing the heads for the hashring change failed (continuing)", "err", err.msg);
	rcv_router_set_hashrings(rc->router, h);
	memcpy(rc->ring_md5, md5, 16);
	metric_inc(metric_with(m_ring_changes));
	hashrings_metrics(rc, true);
	set_all_ready(rc, true);
	char secs[32];
	snprintf(secs, sizeof secs, "%.3f", clock_since_s(t0));
	log_info("hashring config applied", "mode", rcv_router_mode(rc->router), "switch_seconds", secs);
}

static void *bg_main(void *arg)
{
	receiver_t *rc = arg;
	err_t err = {0};
	uint64_t t0 = clock_mono_ns();
	if (mtsdb_open_existing(rc->mt, &err) != 0) {
		log_error("cannot open the tenants' TSDBs", "err", err.msg);
		fprintf(stderr, "strata receive: %s\n", err.msg);
		rc->startup_failed = true;
		kill(getpid(), SIGTERM);
		return NULL;
	}
	char secs[32], nt[32];
	snprintf(secs, sizeof secs, "%.3f", clock_since_s(t0));
	snprintf(nt, sizeof nt, "%zu", mtsdb_num_tenants(rc->mt));
	log_info("receiver ready", "tenants", nt, "startup_seconds", secs);
	rcv_handler_set_ready(rc->handler, true);
	http_server_set_ready(rc->rw, true);
	http_server_set_ready(rc->http, true);
	uint64_t next_hk = clock_mono_ms() + (uint64_t)rc->housekeeping_ms, next_lim = 0;
	uint64_t next_ring = clock_mono_ms() + (uint64_t)rc->hashrings_refresh_ms;
	while (!wait_stop(rc, 1000)) {
		uint64_t now = clock_mono_ms();
		if (rc->limiter && now >= next_lim) {
			int r = rcv_limiter_reload(rc->limiter, &err);
			if (r < 0)
				log_error("limits config reload failed; keeping the previous one", "err",
				          err.msg);
			else if (r > 0)
				log_info("limits config reloaded");
			next_lim = now + (uint64_t)rc->limits_reload_ms;
		}
		if (rc->hashrings_file && *rc->hashrings_file)
			hashrings_watch(rc, now >= next_ring);
		if (now >= next_ring)
			next_ring = now + (uint64_t)rc->hashrings_refresh_ms;
		if (now >= next_hk) {
			mtsdb_housekeeping(rc->mt, false, &err);
			next_hk = clock_mono_ms() + (uint64_t)rc->housekeeping_ms;
		}
		mtsdb_publish_metrics(rc->mt);
	}
	return NULL;
}

static void rw_stopped(http_server_t *srv, void *arg)
{
	(void)arg;
	loop_stop(http_server_loop(srv));
}

static void rw_shutdown(void *arg)
{
	receiver_t *rc = arg;
	http_server_shutdown(rc->rw, rc->sf.http_grace_ms, rw_stopped, rc);
}

static void receiver_release(receiver_t *rc)
{
	rcv_handler_free(rc->handler);
	rcv_router_free(rc->router);
	rcv_limiter_free(rc->limiter);
	relabel_free(rc->relabel);
	bucket_free(rc->bucket);
	tls_server_free(rc->grpc_tls);
	tls_server_free(rc->rw_tls);
	tls_client_free(rc->peer_tls);
	pthread_mutex_destroy(&rc->mu);
	pthread_cond_destroy(&rc->cv);
}

int cmd_receive(int argc, char **argv)
{
	static receiver_t rc;
	flag_def_t defs[] = {
	    CMD_SERVER_FLAGS(&rc.sf, "0.0.0.0:10902"),
	    {"grpc-address", FLAG_STRING, &rc.grpc_address, "0.0.0.0:10901",
	     "Listen ip:port address for gRPC endpoints (StoreAPI)."},
	    {"grpc-grace-period", FLAG_DURATION, &rc.grpc_grace_ms, "2m",
	     "Time to wait after an interrupt received for GRPC Server."},
	    CMD_GRPC_SERVER_TLS_FLAGS(&rc.grpc_tls_flags),
	    {"remote-write.address", FLAG_STRING, &rc.rw_address, "0.0.0.0:19291",
	     "Address to listen on for remote write requests."},
	    CMD_RW_SERVER_TLS_FLAGS(&rc.rw_tls_flags),
	    CMD_RW_CLIENT_TLS_FLAGS(&rc.rw_client_tls_flags),
	    {"tsdb.path", FLAG_STRING, &rc.tsdb_path, "./data",
	     "Data directory of TSDB (one directory per tenant)."},
	    {"label", FLAG_STRINGS, &rc.label_flags, NULL,
	     "External labels to announce. This flag will be removed in the future when handling multiple "
	     "tsdb instances is added."},
	    {"tsdb.retention", FLAG_DURATION, &rc.retention_ms, "15d",
	     "How long to retain raw samples on local storage. 0d - disables the retention policy (i.e. "
	     "infinite retention)."},
	    {"tsdb.min-block-duration", FLAG_DURATION, &rc.min_block_ms, "2h",
	     "Min duration for local TSDB blocks.", NULL, true},
	    {"tsdb.max-block-duration", FLAG_DURATION, &rc.max_block_ms, "2h",
	     "Max duration for local TSDB blocks.", NULL, true},
	    {"tsdb.wal-compression", FLAG_BOOL, &rc.wal_compression, "true", "Compress the tsdb WAL."},
	    {"tsdb.too-far-in-future.time-window", FLAG_DURATION, &rc.tff_ms, "0s",
	     "Configures the allowed time window for ingesting samples too far in the future. Disabled (0s) "
	     "by default."},
	    {"tsdb.out-of-order.time-window", FLAG_DURATION, &rc.ooo_ms, "0s",
	     "Configures the allowed time window for ingestion of out-of-order samples. Disabled (0s) by "
	     "default."},
	    {"tsdb.out-of-order.cap-max", FLAG_INT, &rc.ooo_cap, "0",
	     "Accepted for compatibility (out-of-order samples are kept uncompressed until cut)."},
	    {"tsdb.max-exemplars", FLAG_INT, &rc.max_exemplars, "0",
	     "Enables support for ingesting exemplars when set to a positive value; only 0 (exemplars "
	     "dropped) is supported."},
	    {"tsdb.housekeeping-interval", FLAG_DURATION, &rc.housekeeping_ms, "1m",
	     "How often heads are checked for blocks to cut and blocks uploaded.", NULL, true},
	    {"objstore.config", FLAG_STRING, &rc.objstore_config, NULL,
	     "Alternative to 'objstore.config-file' flag (mutually exclusive). Content of YAML file that "
	     "contains object store configuration."},
	    {"objstore.config-file", FLAG_STRING, &rc.objstore_config_file, NULL,
	     "Path to YAML file that contains object store configuration. Without it blocks stay local."},
	    {"receive.tenant-header", FLAG_STRING, &rc.tenant_header, "THANOS-TENANT",
	     "HTTP header to determine tenant for write requests."},
	    {"receive.tenant-certificate-field", FLAG_STRING, &rc.tenant_cert_field, "",
	     "Set the certificate field to be used to determine tenant from the client certificate. "
	     "Possible values are: organization, organizationalUnit, commonName. This setting will cause "
	     "the receive.tenant-header flag value to be ignored."},
	    {"receive.default-tenant-id", FLAG_STRING, &rc.default_tenant, "default-tenant",
	     "Default tenant ID to use when none is provided via a header."},
	    {"receive.tenant-label-name", FLAG_STRING, &rc.tenant_label, "tenant_id",
	     "Label name through which the tenant will be announced."},
	    {"receive.relabel-config", FLAG_STRING, &rc.relabel_config, NULL,
	     "Alternative to 'receive.relabel-config-file' flag (mutually exclusive). Content of YAML file "
	     "that contains relabeling configuration."},
	    {"receive.relabel-config-file", FLAG_STRING, &rc.relabel_config_file, NULL,
	     "Path to YAML file that contains relabeling configuration."},
	    {"receive.limits-config", FLAG_STRING, &rc.limits_config, NULL,
	     "Alternative to 'receive.limits-config-file' flag (mutually exclusive). Content of YAML file "
	     "with limit configuration."},
	    {"receive.limits-config-file", FLAG_STRING, &rc.limits_config_file, NULL,
	     "Path to YAML file with limit configuration (hot-reloaded)."},
	    {"receive.limits-config-reload-timer", FLAG_DURATION, &rc.limits_reload_ms, "1s",
	     "Minimum amount of time to pass for the limit configuration to be reloaded."},
	    {"receive.hashrings-file", FLAG_STRING, &rc.hashrings_file, NULL,
	     "Path to file that contains the hashring configuration. A watcher is initialized to watch "
	     "changes and update the hashring dynamically."},
	    {"receive.hashrings", FLAG_STRING, &rc.hashrings, NULL,
	     "Alternative to 'receive.hashrings-file' flag (lower priority). Content of file that contains "
	     "the hashring configuration."},
	    {"receive.hashrings-file-refresh-interval", FLAG_DURATION, &rc.hashrings_refresh_ms, "5m",
	     "Refresh interval to re-read the hashring configuration file (the file is also checked for "
	     "changes every second)."},
	    {"receive.hashrings-algorithm", FLAG_ENUM, &rc.hashrings_algo, "hashmod",
	     "The algorithm used when distributing series in the hashrings. Must be one of hashmod, ketama. "
	     "Will be overwritten by the tenant-specific algorithm in the hashring config.",
	     "hashmod|ketama"},
	    {"receive.local-endpoint", FLAG_STRING, &rc.local_endpoint, NULL,
	     "Endpoint of local receive node. Used to identify the local node in the hashring configuration. "
	     "If it's empty AND hashring configuration was provided, it means that receive will run in "
	     "RoutingOnly mode."},
	    {"receive.replica-header", FLAG_STRING, &rc.replica_header, "THANOS-REPLICA",
	     "HTTP header specifying the replica number of a write request."},
	    {"receive.replication-factor", FLAG_INT, &rc.replication_factor, "1",
	     "How many times to replicate incoming write requests."},
	    {"receive.grpc-compression", FLAG_ENUM, &rc.grpc_compression, "snappy",
	     "Compression algorithm to use for gRPC requests to other receivers. Must be one of: snappy, "
	     "none",
	     "snappy|none"},
	    {"receive.replication-protocol", FLAG_ENUM, &rc.replication_protocol, "protobuf",
	     "The protocol to use for replicating remote-write requests. One of protobuf, capnproto "
	     "(capnproto is accepted for Thanos manifests and replicates with protobuf over gRPC: every "
	     "Thanos receiver serves that too).",
	     "protobuf|capnproto"},
	    {"receive.forward.async-workers", FLAG_INT, &rc.forward_workers, "5",
	     "Number of concurrent workers processing forwarding of remote-write requests (per peer)."},
	    {"receive-forward-timeout", FLAG_DURATION, &rc.forward_timeout_ms, "5s",
	     "Timeout for each forward request.", NULL, true},
	    {"receive-forward-max-backoff", FLAG_DURATION, &rc.forward_backoff_ms, "5s",
	     "Maximum backoff for each forward fan-out request.", NULL, true},
	};
	flags_result_t res = {0};
	int exit_now, ret = cmd_parse_flags(
	                  argv[0], "Accept Prometheus remote write API requests and write to local tsdb.",
	                  defs, ARRAY_LEN(defs), argc, argv, &res, &exit_now);
	if (exit_now)
		return ret;
	free(res.pos);
	if ((ret = cmd_server_setup_logging(argv[0], &rc.sf)) != 0)
		return ret;
	pthread_mutex_init(&rc.mu, NULL);
	pthread_cond_init(&rc.cv, NULL);
	err_t err = {0};
	arena_t a;
	arena_init(&a, 0);
	labels_t ext;
	buf_t text = BUF_INIT;
	const char *what = NULL;
	if (parse_labels(&rc.label_flags, &a, &ext, &err) != 0)
		goto usage;
	if (rc.min_block_ms <= 0 || rc.max_block_ms != rc.min_block_ms) {
		err_set(&err, ERR_INVALID,
		        "--tsdb.min-block-duration and --tsdb.max-block-duration must be equal and positive "
		        "(blocks are compacted in the bucket, not locally)");
		goto usage;
	}
	if (rc.replication_factor < 1 || rc.replication_factor > 255) {
		err_set(&err, ERR_INVALID, "--receive.replication-factor must be between 1 and 255");
		goto usage;
	}
	if (rc.hashrings_refresh_ms <= 0)
		rc.hashrings_refresh_ms = 300000;
	rc.algo = (hashring_algo_t)hashring_algo_parse(rc.hashrings_algo);
	if (rc.max_exemplars > 0) {
		err_set(&err, ERR_INVALID, "--tsdb.max-exemplars: exemplar storage is not supported (use 0)");
		goto usage;
	}
	if (rc.housekeeping_ms <= 0)
		rc.housekeeping_ms = 60000;
	if (rc.limits_reload_ms <= 0)
		rc.limits_reload_ms = 1000;
	if (!label_name_valid(str_c(rc.tenant_label))) {
		err_set(&err, ERR_INVALID, "--receive.tenant-label-name %s: invalid label name",
		        rc.tenant_label);
		goto usage;
	}
	if (!tls_subject_field_valid(rc.tenant_cert_field)) {
		err_set(&err, ERR_INVALID,
		        "--receive.tenant-certificate-field %s: want organization, organizationalUnit or "
		        "commonName",
		        rc.tenant_cert_field);
		goto usage;
	}
	if (*rc.tenant_cert_field && !*rc.rw_tls_flags.client_ca) {
		err_set(&err, ERR_INVALID,
		        "--receive.tenant-certificate-field needs client certificates: set "
		        "--remote-write.server-tls-cert, --remote-write.server-tls-key and "
		        "--remote-write.server-tls-client-ca");
		goto usage;
	}
	if ((ret = cmd_grpc_server_tls_new(argv[0], &rc.grpc_tls_flags, &rc.grpc_tls)) != 0 ||
	    (ret = cmd_tls_server_new(argv[0], "--remote-write.server-tls", NULL, "remote-write server TLS",
	                              &rc.rw_tls_flags, &rc.rw_tls)) != 0 ||
	    (ret = cmd_tls_client_new(argv[0], "remote-write client TLS", &rc.rw_client_tls_flags,
	                              &rc.peer_tls)) != 0) {
		arena_release(&a);
		receiver_release(&rc);
		return ret;
	}
	if (read_text(rc.relabel_config, rc.relabel_config_file, &text, &what, &err) != 0)
		goto usage;
	if (what && relabel_parse(text.p, text.n, what, &rc.relabel, &err) != 0)
		goto usage;
	if (rcv_limiter_new(&rc.limiter, rc.limits_config, rc.limits_config_file, &err) != 0)
		goto usage;
	if (!rc.limits_config && !rc.limits_config_file) {
		rcv_limiter_free(rc.limiter);
		rc.limiter = NULL;
	}
	if (((rc.objstore_config && *rc.objstore_config) ||
	     (rc.objstore_config_file && *rc.objstore_config_file)) &&
	    objstore_from_flags(rc.objstore_config, rc.objstore_config_file, &rc.bucket, &err) != 0) {
		if (err.code == ERR_INVALID)
			goto usage;
		fprintf(stderr, "%s: %s\n", argv[0], err.msg);
		receiver_release(&rc);
		return 1;
	}
	buf_release(&text);
	hashrings_t *rings = NULL;
	if (((rc.hashrings && *rc.hashrings) || (rc.hashrings_file && *rc.hashrings_file))) {
		if (rc.hashrings_file && *rc.hashrings_file)
			rc.hashrings = NULL; /* the file wins */
		stat(rc.hashrings_file ? rc.hashrings_file : "", &rc.ring_st);
		if (hashrings_load(&rc, &rings, rc.ring_md5, &err) != 0)
			goto usage;
	}
	if ((ret = cmd_check_config("strata receive", &rc.sf, rc.grpc_address, rc.rw_address, NULL)) >= 0) {
		hashrings_free(rings);
		arena_release(&a);
		receiver_release(&rc);
		return ret;
	}
	if (!rc.bucket)
		log_info("no --objstore.config-file: blocks stay on local disk");

	metrics_register_process("receive");
	/* Every write allocates and frees a few MiB (decoded body, label and sample arrays, forwarded
	 * batches): keep that memory in the heap instead of giving it back to the kernel after each
	 * request and faulting it in again (a tenth of a router's CPU went to page faults). */
	mallopt(M_MMAP_THRESHOLD, 64 << 20);
	mallopt(M_TRIM_THRESHOLD, 256 << 20);
	/* nor trim after every 8 MiB of request arenas (malloc_trim took a fifth of a router's CPU) */
	alloc_keep_heap();
	mtsdb_opts_t mo = {
	    .dir = rc.tsdb_path,
	    .db = {.block_duration = rc.min_block_ms,
	           .head = {.ooo_window = rc.ooo_ms,
	                    .too_far_in_future = rc.tff_ms,
	                    .wal_compression = rc.wal_compression}},
	    .ext = &ext,
	    .tenant_label = rc.tenant_label,
	    .bucket = rc.bucket,
	    .retention_ms = rc.retention_ms,
	};
	rc.mt = mtsdb_new(&mo);
	arena_release(&a);
	m_cfg_hash = metrics_gauge("thanos_receive_config_hash", "Hash of the currently loaded hashring configuration.",
	                           "");
	m_cfg_ok = metrics_gauge("thanos_receive_config_last_reload_successful",
	                         "Whether the last hashring configuration reload attempt was successful.", "");
	m_cfg_ok_ts = metrics_gauge("thanos_receive_config_last_reload_success_timestamp_seconds",
	                            "Timestamp of the last successful hashring configuration reload.", "");
	m_ring_changes = metrics_counter("thanos_receive_hashrings_file_changes_total",
	                                 "The number of times the hashrings configuration file has changed.", "");
	m_ring_errors = metrics_counter("thanos_receive_hashrings_file_errors_total",
	                                "The number of errors reading or parsing the hashrings configuration file.",
	                                "");
	rcv_router_config_t rcfg = {
	    .mt = rc.mt,
	    .limits = rc.limiter,
	    .relabel = rc.relabel,
	    .local_endpoint = rc.local_endpoint,
	    .replication_factor = (uint64_t)rc.replication_factor,
	    .forward_timeout_ms = rc.forward_timeout_ms,
	    .peers = {.compress = !strcmp(rc.grpc_compression, "snappy"),
	              .max_backoff_ms = rc.forward_backoff_ms,
	              .workers_per_peer = (int)rc.forward_workers,
	              .tls = rc.peer_tls},
	};
	if (!strcmp(rc.replication_protocol, "capnproto"))
		log_warn("Cap'n Proto replication is not implemented: replicating with protobuf over gRPC",
		         "flag", "--receive.replication-protocol=capnproto");
	rc.router = rcv_router_new(&rcfg);
	mtsdb_set_tenant_labels(rc.mt, rcv_router_tenant_labels, rc.router);
	if (rings) {
		rcv_router_set_hashrings(rc.router, rings);
		hashrings_metrics(&rc, true);
	}
	rcv_handler_config_t hc = {.mt = rc.mt,
	                           .router = rc.router,
	                           .replica_header = rc.replica_header,
	                           .limits = rc.limiter,
	                           .relabel = rc.relabel,
	                           .tenant_header = rc.tenant_header,
	                           .default_tenant = rc.default_tenant,
	                           .tenant_cert_field = rc.tenant_cert_field};
	rc.handler = rcv_handler_new(&hc);

	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	loop_t *http_loop = NULL;
	grpc_server_t *grpc = NULL;
	store_service_t *svc = NULL;
	listener_t *gls = NULL;
	bool rw_started = false, grpc_started = false, bg_started = false;
	ret = 0;
	if (loop_new(&http_loop, &err) || loop_new(&rc.rw_loop, &err) || loop_new(&rc.grpc_loop, &err)) {
		fprintf(stderr, "%s: %s\n", argv[0], err.msg);
		ret = 1;
		goto out;
	}
	http_server_config_t hcfg = {.address = rc.sf.http_address, .web_config_file = rc.sf.http_config};
	/* Writes block on fsync (shared by concurrent writes): more workers than cores keep group commits
	 * full while the CPU-heavy part runs on the cores. */
	http_server_config_t rwcfg = {
	    .address = rc.rw_address, .worker_threads = 16, .max_body_bytes = 64u << 20, .tls = rc.rw_tls};
	if (http_server_new(&rc.http, http_loop, &hcfg, &err) != 0 ||
	    http_server_new(&rc.rw, rc.rw_loop, &rwcfg, &err) != 0) {
		fprintf(stderr, "%s: %s\n", argv[0], err.msg);
		ret = 1;
		goto out;
	}
	rcv_handler_register(rc.handler, rc.rw);
	grpc_server_config_t gcfg = {.max_recv_msg = 64u << 20}; /* forwarded writes */
	grpc = grpc_server_new(rc.grpc_loop, &gcfg);
	svc = store_grpc_register_pool(grpc, mtsdb_store(rc.mt), "receive", NULL);
	rcv_router_register_grpc(rc.router, grpc);
	if (grpc_server_listen_tls(grpc, rc.grpc_address, rc.grpc_tls, &gls, &err) != 0) {
		fprintf(stderr, "%s: %s\n", argv[0], err.msg);
		ret = 1;
		goto out;
	}
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	pthread_create(&rc.rw_thr, NULL, loop_main, rc.rw_loop);
	rw_started = true;
	pthread_create(&rc.grpc_thr, NULL, loop_main, rc.grpc_loop);
	grpc_started = true;
	pthread_create(&rc.bg_thr, NULL, bg_main, &rc);
	bg_started = true;
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	log_info("receiver listening", "http", rc.sf.http_address, "remote_write", rc.rw_address, "grpc",
	         rc.grpc_address, "tsdb_path", rc.tsdb_path, "remote_write_tls", rc.rw_tls ? "on" : "off",
	         "grpc_tls", rc.grpc_tls ? "on" : "off", "forward_tls", rc.peer_tls ? "on" : "off", "mode",
	         rcv_router_mode(rc.router));
	if (http_server_run(rc.http, rc.sf.http_grace_ms, &err) != 0) {
		fprintf(stderr, "%s: %s\n", argv[0], err.msg);
		ret = 1;
	}
	log_info("receiver shutting down");
out:
	if (rw_started) { /* no new writes; the ones in flight finish (acknowledged = in the WAL) */
		rcv_handler_set_ready(rc.handler, false);
		loop_post(rc.rw_loop, rw_shutdown, &rc);
		pthread_join(rc.rw_thr, NULL);
	}
	if (rc.router) /* peers' writes in flight end (answered Unavailable) while gRPC still runs */
		rcv_router_stop(rc.router);
	if (bg_started) {
		pthread_mutex_lock(&rc.mu);
		rc.stopping = true;
		pthread_cond_signal(&rc.cv);
		pthread_mutex_unlock(&rc.mu);
		pthread_join(rc.bg_thr, NULL);
	}
	if (bg_started && !rc.startup_failed) {
		log_info("cutting heads into blocks and uploading them before exit");
		if (mtsdb_housekeeping(rc.mt, true, &err) != 0)
			ret = 1;
	}
	if (rc.startup_failed)
		ret = 1;
	if (grpc_started) {
		loop_stop(rc.grpc_loop);
		pthread_join(rc.grpc_thr, NULL);
	}
	if (gls)
		listener_free(gls);
	store_grpc_service_free(svc);
	if (grpc)
		grpc_server_free(grpc);
	if (rc.rw)
		http_server_free(rc.rw);
	if (rc.http)
		http_server_free(rc.http);
	if (rc.grpc_loop)
		loop_free(rc.grpc_loop);
	if (rc.rw_loop)
		loop_free(rc.rw_loop);
	if (http_loop)
		loop_free(http_loop);
	if (mtsdb_close(rc.mt, false, &err) != 0) {
		log_error("closing TSDBs failed", "err", err.msg);
		ret = 1;
	}
	receiver_release(&rc);
	return ret;
usage:
	fprintf(stderr, "%s: %s\n", argv[0], err.msg);
	buf_release(&text);
	arena_release(&a);
	receiver_release(&rc);
	return 2;
}
