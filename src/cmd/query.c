/*
 * query.c — `strata query`: the querier. Flags as Thanos's (reference thanos.md §1.6). Discovers
 * StoreAPI endpoints (query/endpoints.h), serves the Prometheus HTTP API v1 (api/api.h), the web UI
 * (ui/ui.h: /graph, /stores, ...) and the proxy as thanos.Store + thanos.info.Info on gRPC so queriers can be
 * layered, and the Query API as thanos.Query (query/querysrv.h) for rulers with --grpc-query-endpoint.
 *
 * Threads: the HTTP loop (main thread) with its worker pool evaluating queries; the endpoint refresh
 * thread (DNS, file SD, Info every 5s); the gRPC server's own loop thread, because proxy calls block
 * on remote endpoints (the StoreAPI client is a blocking facade) and must not stall HTTP. Ready once
 * both listeners are up and the first endpoint refresh round has finished.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "api/api.h"
#include "base/alloc.h"
#include "base/clock.h"
#include "base/duration.h"
#include "base/log.h"
#include "cmd/cmd.h"
#include "cmd/endpoint_config.h"
#include "cmd/grpc_tls.h"
#include "net/grpc.h"
#include "model/labels.h"
#include "net/http.h"
#include "net/tls.h"
#include "promql/engine.h"
#include "query/endpoints.h"
#include "query/querysrv.h"
#include "store/grpc_server.h"
#include "store/dedup.h"
#include "store/grpc_client.h"
#include "ui/ui.h"

#define QUERY_MAX_CONCURRENT     10000
#define QUERY_EXTRA_HTTP_WORKERS 4 /* HTTP worker threads beyond --query.max-concurrent */

static const char summary[] = "Query node exposing PromQL enabled Query API with data retrieved from multiple store nodes.";

typedef struct dial_opts {
	int64_t info_timeout_ms;
	tls_client_t *tls; /* --grpc-client-tls-*; NULL: plaintext */
	pthread_mutex_t mu; /* guards sd (the reloader swaps it; dials run on the refresh thread) */
	const cmd_endpoint_config_t *sd; /* --endpoint.sd-config: per-endpoint and default client configs */
} dial_opts_t;

/* Remote endpoints: a StoreAPI client per address. */
static store_t *dial_remote(const char *address, void *arg, err_t *err)
{
	const dial_opts_t *o = arg;
	store_grpc_client_config_t cfg = {.info_timeout_ms = o->info_timeout_ms, .tls = o->tls};
	pthread_mutex_lock((pthread_mutex_t *)&o->mu);
	const cmd_endpoint_client_t *c = cmd_endpoint_client_for(o->sd, address);
	if (c) { /* its TLS context lives until exit (every loaded config is kept) */
		cfg.tls = c->tls;
		cfg.compress = c->compress;
	}
	pthread_mutex_unlock((pthread_mutex_t *)&o->mu);
	store_t *s;
	if (store_grpc_client_new(&s, address, &cfg, err))
		return NULL;
	return s;
}

/* "a,b" values of a repeatable flag split into one list. */
static void split_commas(const strlist_t *in, strlist_t *out)
{
	for (size_t i = 0; i < in->n; i++) {
		const char *p = in->v[i];
		while (*p) {
			size_t n = strcspn(p, ",");
			if (n) {
				char *s = xstrndup(p, n);
				strlist_push(out, s);
				free(s);
			}
			p += n + (p[n] == ',');
		}
	}
}

static char *flag_value(const flag_def_t *d)
{
	buf_t b = BUF_INIT;
	switch (d->type) {
	case FLAG_STRING:
	case FLAG_ENUM: {
		const char *s = *(char **)d->dst;
		buf_puts(&b, s ? s : "");
		break;
	}
	case FLAG_BOOL: buf_puts(&b, *(bool *)d->dst ? "true" : "false"); break;
	case FLAG_INT:
	case FLAG_BYTES: buf_put_i64(&b, *(int64_t *)d->dst); break;
	case FLAG_FLOAT: buf_printf(&b, "%g", *(double *)d->dst); break;
	case FLAG_DURATION: duration_format(&b, *(int64_t *)d->dst); break;
	case FLAG_STRINGS: {
		const strlist_t *l = d->dst;
		for (size_t i = 0; i < l->n; i++) {
			if (i)
				buf_putc(&b, ',');
			buf_puts(&b, l->v[i]);
		}
		break;
	}
	}
	size_t n;
	char *s = buf_detach(&b, &n);
	return s ? s : xstrdup("");
}

/* --endpoint.sd-config-file re-read when it changes (checked every second) and every
 * --endpoint.sd-config-reload-interval, as Thanos does: the new endpoint list replaces the old one at the
 * next refresh round and new dials take the new client configs; an address kept with a changed
 * client_config (TLS on or off, another CA, certificate, server name, compression) is dialled anew at
 * that round, as Thanos re-dials, its old connection serving the queries that already took it (query/
 * endpoints.h: endpoint_set_redial). A bad file is logged and the previous configuration stays. Every
 * loaded configuration is kept until exit, since the stores dialled with it borrow its TLS contexts.
 * Runs on the main loop. */
typedef struct sd_reloader {
	const char *path;
	int64_t interval_ms;
	uint64_t next_ms;
	struct stat st;
	char *text; /* the content last seen */
	size_t len;
	dial_opts_t *dial;
	endpoint_set_t *es;
	const strlist_t *static_specs; /* --endpoint, --store */
	cmd_endpoint_config_t **all;
	size_t nall;
} sd_reloader_t;

typedef struct cfg_pair {
	const cmd_endpoint_config_t *old, *cur;
} cfg_pair_t;

static bool client_changed(const char *address, void *arg)
{
	const cfg_pair_t *p = arg;
	return cmd_endpoint_client_changed(p->old, p->cur, address);
}

static bool stat_changed(const struct stat *a, const struct stat *b)
{
	return a->st_ino != b->st_ino || a->st_size != b->st_size || a->st_mtim.tv_sec != b->st_mtim.tv_sec ||
	       a->st_mtim.tv_nsec != b->st_mtim.tv_nsec;
}

static void sd_reload(sd_reloader_t *r)
{
	FILE *f = fopen(r->path, "rb");
	if (!f) {
		log_error("re-reading --endpoint.sd-config-file failed; keeping the previous endpoints",
		          "file", r->path, "err", strerror(errno));
		return;
	}
	buf_t b = BUF_INIT;
	char tmp[4096];
	size_t n;
	while ((n = fread(tmp, 1, sizeof tmp, f)) > 0)
		buf_append(&b, tmp, n);
	fclose(f);
	size_t len;
	char *text = buf_detach(&b, &len);
	if (!text)
		text = xstrdup("");
	if (r->text && len == r->len && !memcmp(text, r->text, len)) {
		free(text);
		return;
	}
	free(r->text);
	r->text = text;
	r->len = len;
	err_t err = {0};
	cmd_endpoint_config_t *c = xcalloc(1, sizeof *c);
	if (cmd_endpoint_config_parse(text, len, r->path, c, &err)) {
		log_error("reloading --endpoint.sd-config-file failed; keeping the previous endpoints",
		          "file", r->path, "err", err.msg);
		free(c);
		return;
	}
	strlist_t specs = {0};
	for (size_t i = 0; i < r->static_specs->n; i++)
		strlist_push(&specs, r->static_specs->v[i]);
	for (size_t i = 0; i < c->n; i++)
		strlist_push(&specs, c->v[i].address);
	/* the new client configs first, so the addresses the next round dials find theirs */
	pthread_mutex_lock(&r->dial->mu);
	const cmd_endpoint_config_t *old = r->dial->sd;
	r->dial->sd = c;
	pthread_mutex_unlock(&r->dial->mu);
	if (endpoint_set_set_specs(r->es, (const char *const *)specs.v, specs.n, &err)) {
		log_error("reloading --endpoint.sd-config-file failed; keeping the previous endpoints",
		          "file", r->path, "err", err.msg);
		pthread_mutex_lock(&r->dial->mu);
		r->dial->sd = old;
		pthread_mutex_unlock(&r->dial->mu);
		cmd_endpoint_config_release(c);
		free(c);
		strlist_free(&specs);
		return;
	}
	cfg_pair_t pair = {old, c};
	size_t redial = endpoint_set_redial(r->es, client_changed, &pair);
	r->all = xreallocarray(r->all, r->nall + 1, sizeof *r->all);
	r->all[r->nall++] = c;
	char num[24], nredial[24];
	snprintf(num, sizeof num, "%zu", c->n);
	snprintf(nredial, sizeof nredial, "%zu", redial);
	log_info("endpoint config reloaded", "file", r->path, "endpoints", num, "redial", nredial);
	strlist_free(&specs);
}

static int64_t sd_reload_tick(loop_t *l, uint64_t id, void *arg)
{
	(void)l, (void)id;
	sd_reloader_t *r = arg;
	struct stat st;
	uint64_t now = clock_mono_ms();
	bool changed = stat(r->path, &st) == 0 && stat_changed(&st, &r->st);
	if (changed)
		r->st = st;
	if (changed || now >= r->next_ms) {
		r->next_ms = now + (uint64_t)r->interval_ms;
		sd_reload(r);
	}
	return 1000;
}

typedef struct ready_check {
	endpoint_set_t *es;
	http_server_t *http;
	api_t *api;
} ready_check_t;

static int64_t check_ready(loop_t *l, uint64_t id, void *arg)
{
	(void)l, (void)id;
	ready_check_t *rc = arg;
	if (endpoint_set_rounds(rc->es) == 0)
		return 50;
	api_set_ready(rc->api, true);
	http_server_set_ready(rc->http, true);
	log_info("querier ready");
	return LOOP_TIMER_DONE;
}

static void *grpc_loop_main(void *arg)
{
	loop_run(arg);
	return NULL;
}

int cmd_query(int argc, char **argv)
{
	static cmd_server_flags_t sf;
	static cmd_grpc_server_tls_t gst;
	static cmd_grpc_client_tls_t gct;
	static char *grpc_address, *dedup_func, *route_prefix, *external_prefix, *sd_config, *sd_config_file;
	static strlist_t endpoints, stores, sd_files, store_sd_files, replica_flags;
	static int64_t sd_reload_ms;
	static int64_t grpc_grace_ms, timeout_ms, max_conc, lookback_ms, max_samples, eval_ms, default_step_ms,
		sd_interval_ms, dns_interval_ms, info_timeout_ms, meta_range_ms, max_memory, max_memory_total, instant_res_ms,
		max_conc_select;
	static bool partial, auto_ds, dyn_lookback, enforce_tenancy;
	static char *tenant_header, *default_tenant, *tenant_label, *tenant_cert_field;
	flag_def_t defs[] = {
		CMD_SERVER_FLAGS(&sf, "0.0.0.0:10902"),
		{"grpc-address", FLAG_STRING, &grpc_address, "0.0.0.0:10901",
		 "Listen ip:port address for gRPC endpoints (StoreAPI: the proxy over all endpoints)."},
		CMD_GRPC_SERVER_TLS_FLAGS(&gst),
		CMD_GRPC_CLIENT_TLS_FLAGS(&gct),
		{"grpc-grace-period", FLAG_DURATION, &grpc_grace_ms, "2m", "Time to wait after an interrupt received for GRPC Server."},
		{"endpoint", FLAG_STRINGS, &endpoints, NULL,
		 "Addresses of statically configured StoreAPI endpoints (repeatable). The scheme may be prefixed with "
		 "'dns+' or 'dnssrv+' to detect endpoints through respective DNS lookups."},
		{"store", FLAG_STRINGS, &stores, NULL, "Deprecated alias of --endpoint.", NULL, true},
		{"endpoint.sd-config", FLAG_STRING, &sd_config, NULL,
		 "Alternative to 'endpoint.sd-config-file' flag (mutually exclusive). Content of Config File with "
		 "endpoint definitions (addresses, default_client_config and per-endpoint client_config with "
		 "tls_config)."},
		{"endpoint.sd-config-file", FLAG_STRING, &sd_config_file, NULL,
		 "Path to Config File with endpoint definitions. Re-read when it changes and every "
		 "--endpoint.sd-config-reload-interval."},
		{"endpoint.sd-config-reload-interval", FLAG_DURATION, &sd_reload_ms, "5m",
		 "Interval between re-reads of --endpoint.sd-config-file (changes are also picked up within a "
		 "second)."},
		{"endpoint.sd-files", FLAG_STRINGS, &sd_files, NULL,
		 "Path to files (globs allowed) that contain addresses of endpoints in Prometheus file_sd format "
		 "(JSON or YAML). Re-read on change."},
		{"store.sd-files", FLAG_STRINGS, &store_sd_files, NULL, "Deprecated alias of --endpoint.sd-files.", NULL, true},
		{"store.sd-interval", FLAG_DURATION, &sd_interval_ms, "5m", "Refresh interval to re-read file SD files."},
		{"store.sd-dns-interval", FLAG_DURATION, &dns_interval_ms, "30s", "Interval between DNS resolutions."},
		{"endpoint.info-timeout", FLAG_DURATION, &info_timeout_ms, "5s", "Timeout of gRPC Info requests.", NULL, true},
		{"query.replica-label", FLAG_STRINGS, &replica_flags, NULL,
		 "Labels to treat as a replica indicator along which data is deduplicated (repeatable or comma "
		 "separated)."},
		{"deduplication.func", FLAG_STRING, &dedup_func, "penalty",
		 "Deduplication algorithm for merging replicas (at least one --query.replica-label must be set): "
		 "'penalty' sticks to one replica and takes over from another exactly where it has a gap (the other's "
		 "first sample after the last one, nothing lost, the sample rate never doubled); 'chain' merges the "
		 "replicas' samples by timestamp, identical timestamps collapsed (for receiver replication and other "
		 "replicas with identical timestamps); 'penalty-thanos' is Thanos's penalty algorithm exactly (skips "
		 "about two intervals at a hand-over)."},
		{"query.timeout", FLAG_DURATION, &timeout_ms, "2m", "Maximum time to process query by query node."},
		{"query.max-concurrent", FLAG_INT, &max_conc, "20",
		 "Maximum number of queries processed concurrently by query node; the rest wait in a queue."},
		{"query.max-concurrent-select", FLAG_INT, &max_conc_select, "1",
		 "The maximum number of select requests made concurrently per a query: above 1, the selectors after "
		 "the one being evaluated have their Series calls started ahead, so stores work on them meanwhile "
		 "(Thanos's default is 4; worth it with stores across a network, where a query's selects would "
		 "otherwise wait one round trip each)."},
		{"query.lookback-delta", FLAG_DURATION, &lookback_ms, "5m",
		 "The maximum lookback duration for retrieving metrics during expression evaluations."},
		{"query.max-samples", FLAG_INT, &max_samples, "50000000",
		 "Maximum number of samples a single query can load into memory."},
		{"query.max-memory", FLAG_BYTES, &max_memory, "0",
		 "Memory a single query may hold at once (intermediate results, decoded samples, label values); a "
		 "query that needs more fails with an execution error. 0 = a quarter of the machine's memory."},
		{"query.max-memory-total", FLAG_BYTES, &max_memory_total, "0",
		 "Memory all concurrently running queries may hold together; a query that would pass it fails "
		 "with an execution error. 0 = half of the machine's memory, or twice --query.max-memory if that "
		 "is more."},
		{"query.partial-response", FLAG_BOOL, &partial, "true",
		 "Enable partial response for queries if no partial_response param is specified. "
		 "--no-query.partial-response for disabling."},
		{"query.default-evaluation-interval", FLAG_DURATION, &eval_ms, "1m",
		 "Set default evaluation interval for sub queries."},
		{"query.default-step", FLAG_DURATION, &default_step_ms, "1s",
		 "Set default step for range queries (used by the UI; the API requires step)."},
		{"query.metadata.default-time-range", FLAG_DURATION, &meta_range_ms, "0s",
		 "Accepted for compatibility; labels and series default to all time.", NULL, true},
		{"query.auto-downsampling", FLAG_BOOL, &auto_ds, "false",
		 "Enable automatic adjustment (step / 5) to what source of data should be used in store gateways if no "
		 "max_source_resolution param is specified."},
		{"query.instant.default.max_source_resolution", FLAG_DURATION, &instant_res_ms, "0s",
		 "Default max_source_resolution for instant queries (with max_source_resolution=auto).", NULL, true},
		{"query.dynamic-lookback-delta", FLAG_BOOL, &dyn_lookback, "true",
		 "Raise the lookback delta to the downsampling resolution a query may read (5m, 1h).", NULL, true},
		{"query.tenant-header", FLAG_STRING, &tenant_header, "THANOS-TENANT",
		 "HTTP header to determine tenant."},
		{"query.default-tenant-id", FLAG_STRING, &default_tenant, "default-tenant",
		 "Default tenant ID to use if tenant header is not present."},
		{"query.tenant-label-name", FLAG_STRING, &tenant_label, "tenant_id",
		 "Label name to use when enforcing tenancy (if --query.enforce-tenancy is enabled)."},
		{"query.enforce-tenancy", FLAG_BOOL, &enforce_tenancy, "false",
		 "Enforce tenancy on Query APIs. Responses are returned only if the label value of the configured "
		 "tenant-label-name and the value of the tenant header matches."},
		{"query.tenant-certificate-field", FLAG_STRING, &tenant_cert_field, "",
		 "Use TLS client's certificate field to determine tenant for read requests. Must be one of "
		 "organization, organizationalUnit or commonName. This setting will cause the query.tenant-header "
		 "flag value to be ignored."},
		CMD_WEB_PREFIX_FLAGS(&route_prefix, &external_prefix),
	};
	flags_result_t res = {0};
	int exit_now;
	int rc = cmd_parse_flags("strata query", summary, defs, ARRAY_LEN(defs), argc, argv, &res, &exit_now);
	if (exit_now)
		return rc;
	if (res.npos) {
		fprintf(stderr, "strata query: unexpected argument %s\n", res.pos[0]);
		free(res.pos);
		return 2;
	}
	free(res.pos);
	if ((rc = cmd_server_setup_logging("strata query", &sf)))
		return rc;
	dedup_mode_t dedup_mode;
	if (dedup_mode_parse(str_c(dedup_func), &dedup_mode)) {
		fprintf(stderr, "strata query: --deduplication.func: unknown algorithm \"%s\" (penalty, chain or "
				"penalty-thanos)\n", dedup_func);
		return 2;
	}
	if (!label_name_valid(str_c(tenant_label))) {
		fprintf(stderr, "strata query: --query.tenant-label-name %s: invalid label name\n", tenant_label);
		return 2;
	}
	if (!tls_subject_field_valid(tenant_cert_field)) {
		fprintf(stderr,
		        "strata query: --query.tenant-certificate-field %s: want organization, organizationalUnit or "
		        "commonName\n",
		        tenant_cert_field);
		return 2;
	}
	if (!*tenant_header || !*default_tenant) {
		fprintf(stderr, "strata query: --query.tenant-header and --query.default-tenant-id must not be empty\n");
		return 2;
	}
	if (max_conc <= 0 || max_conc > QUERY_MAX_CONCURRENT) {
		fprintf(stderr, "strata query: --query.max-concurrent must be between 1 and %d\n", QUERY_MAX_CONCURRENT);
		return 2;
	}
	err_t err = {0};
	char *routes = NULL, *link_prefix = NULL;
	if (ui_web_prefixes(external_prefix, route_prefix, &routes, &link_prefix, &err)) {
		fprintf(stderr, "strata query: %s\n", err.msg);
		return 2;
	}
	strlist_t specs = {0}, files = {0}, replica = {0};
	for (size_t i = 0; i < endpoints.n; i++)
		strlist_push(&specs, endpoints.v[i]);
	for (size_t i = 0; i < stores.n; i++)
		strlist_push(&specs, stores.v[i]);
	for (size_t i = 0; i < sd_files.n; i++)
		strlist_push(&files, sd_files.v[i]);
	for (size_t i = 0; i < store_sd_files.n; i++)
		strlist_push(&files, store_sd_files.v[i]);
	split_commas(&replica_flags, &replica);
	cmd_endpoint_config_t *sdc = xcalloc(1, sizeof *sdc);
	strlist_t static_specs = {0};
	for (size_t i = 0; i < specs.n; i++)
		strlist_push(&static_specs, specs.v[i]);
	sd_reloader_t reloader = {.path = sd_config_file, .interval_ms = sd_reload_ms > 0 ? sd_reload_ms : 300000,
	                          .static_specs = &static_specs};
	char *sd_text = NULL;
	size_t sd_len = 0;
	const char *sd_what = NULL;
	if (cmd_read_config("strata query", sd_config, sd_config_file, &sd_text, &sd_len, &sd_what)) {
		free(sdc);
		strlist_free(&static_specs);
		return 2;
	}
	if (sd_text) {
		int prc = cmd_endpoint_config_parse(sd_text, sd_len, sd_what, sdc, &err);
		if (prc) {
			fprintf(stderr, "strata query: --endpoint.sd-config: %s\n", err.msg);
			free(sd_text);
			free(sdc);
			strlist_free(&static_specs);
			return 2;
		}
		for (size_t i = 0; i < sdc->n; i++)
			strlist_push(&specs, sdc->v[i].address);
		if (sd_config_file && *sd_config_file && !(sd_config && *sd_config)) {
			reloader.text = sd_text; /* the reloader compares against what was applied */
			reloader.len = sd_len;
			stat(sd_config_file, &reloader.st);
			sd_text = NULL;
		}
		free(sd_text);
	}
	reloader.all = xcalloc(1, sizeof *reloader.all);
	reloader.all[reloader.nall++] = sdc;

	endpoint_set_t *es = NULL;
	tls_server_t *server_tls = NULL;
	dial_opts_t dial = {.info_timeout_ms = info_timeout_ms, .sd = sdc};
	pthread_mutex_init(&dial.mu, NULL);
	endpoint_set_config_t ec = {.specs = (const char *const *)specs.v, .nspecs = specs.n,
				    .sd_files = (const char *const *)files.v, .nsd_files = files.n,
				    .dial = dial_remote, .dial_arg = &dial,
				    .sd_interval_ms = sd_interval_ms, .dns_interval_ms = dns_interval_ms};
	rc = 2;
	char **fnames = xcalloc(ARRAY_LEN(defs), sizeof *fnames), **fvalues = xcalloc(ARRAY_LEN(defs), sizeof *fvalues);
	size_t nflags = 0;
	loop_t *loop = NULL, *gloop = NULL;
	http_server_t *http = NULL;
	grpc_server_t *grpc = NULL;
	listener_t *gl = NULL;
	store_service_t *svc = NULL;
	querysrv_t *qsrv = NULL;
	api_t *api = NULL;
	ui_t *ui = NULL;
	bool gthread = false;
	pthread_t gth;
	if (cmd_grpc_server_tls_new("strata query", &gst, &server_tls) ||
	    cmd_grpc_client_tls_new("strata query", &gct, &dial.tls))
		goto out;
	if (endpoint_set_new(&es, &ec, &err)) {
		fprintf(stderr, "strata query: %s\n", err.msg);
		goto out;
	}
	if ((rc = cmd_check_config("strata query", &sf, grpc_address, NULL)) >= 0)
		goto out;
	for (size_t i = 0; i < ARRAY_LEN(defs); i++) {
		if (defs[i].hidden)
			continue;
		fnames[nflags] = xstrdup(defs[i].name);
		fvalues[nflags++] = flag_value(&defs[i]);
	}
	rc = 1;
	if (loop_new(&loop, &err) || loop_new(&gloop, &err)) {
		fprintf(stderr, "strata query: %s\n", err.msg);
		goto out;
	}
	/* every query of the HTTP and gRPC APIs counts its memory here too */
	static arena_budget_pool_t memory_pool;
	memory_pool.limit =
	    max_memory_total ? (size_t)max_memory_total : promql_default_max_memory_total((size_t)max_memory);
	/* a thread per query that may run (--query.max-concurrent) and a few for the other endpoints: a query
	 * waiting on its stores holds its thread, so fewer threads would run fewer queries than the flag says */
	http_server_config_t hc = {.address = sf.http_address,
	                           .component = "query",
	                           .web_config_file = sf.http_config,
	                           .worker_threads = (int)max_conc + QUERY_EXTRA_HTTP_WORKERS};
	if (http_server_new(&http, loop, &hc, &err) ||
	    http_server_set_route_prefix(http, routes, &err)) {
		fprintf(stderr, "strata query: %s\n", err.msg);
		goto out;
	}
	api_config_t ac = {.endpoints = es, .replica_labels = (const char *const *)replica.v,
			   .nreplica_labels = replica.n, .dedup_mode = dedup_mode, .partial_response = partial, .timeout_ms = timeout_ms,
			   .lookback_ms = lookback_ms, .max_samples = max_samples, .max_memory = (size_t)max_memory,
			   .memory_pool = &memory_pool, .default_eval_interval_ms = eval_ms,
			   .auto_downsampling = auto_ds, .instant_max_source_resolution = instant_res_ms,
			   .dynamic_lookback = dyn_lookback,
			   .max_concurrent = (int)max_conc, .max_concurrent_select = (int)max_conc_select,
			   .tenant_header = tenant_header, .default_tenant = default_tenant, .tenant_label = tenant_label,
			   .tenant_cert_field = tenant_cert_field, .enforce_tenancy = enforce_tenancy,
			   .flag_names = (const char *const *)fnames,
			   .flag_values = (const char *const *)fvalues, .nflags = nflags};
	api = api_new(http, &ac);
	/* The UI's tenant field: where the header decides the tenant and the tenant decides what is seen. */
	bool tenant_field = enforce_tenancy && !*tenant_cert_field;
	ui = ui_new(http, &(ui_config_t){.component = "query",
	                                 .pages = {UI_PAGES_QUERY},
	                                 .prefix = link_prefix,
	                                 .tenant_header = tenant_field ? tenant_header : NULL,
	                                 .default_tenant = default_tenant});
	grpc = grpc_server_new(gloop, NULL);
	svc = store_grpc_register_pool(grpc, endpoint_set_proxy(es), "query", NULL);
	querysrv_config_t qc = {.endpoints = es,
	                        .replica_labels = (const char *const *)replica.v,
	                        .nreplica_labels = replica.n,
	                        .dedup_mode = dedup_mode,
	                        .timeout_ms = timeout_ms,
	                        .lookback_ms = lookback_ms,
	                        .dynamic_lookback = dyn_lookback,
	                        .max_samples = max_samples,
	                        .max_memory = (size_t)max_memory,
	                        .memory_pool = &memory_pool,
	                        .default_eval_interval_ms = eval_ms,
	                        .max_concurrent = (int)max_conc,
	                        .max_concurrent_select = (int)max_conc_select};
	qsrv = querysrv_register(grpc, &qc);
	if (grpc_server_listen_tls(grpc, grpc_address, server_tls, &gl, &err)) {
		fprintf(stderr, "strata query: %s\n", err.msg);
		goto out;
	}
	if (pthread_create(&gth, NULL, grpc_loop_main, gloop) != 0)
		die("strata query: cannot start the gRPC thread");
	gthread = true;
	if (endpoint_set_start(es, &err)) {
		fprintf(stderr, "strata query: %s\n", err.msg);
		goto out;
	}
	ready_check_t ready = {.es = es, .http = http, .api = api};
	loop_add_timer(loop, 0, check_ready, &ready);
	if (reloader.text) {
		reloader.dial = &dial;
		reloader.es = es;
		reloader.next_ms = clock_mono_ms() + (uint64_t)reloader.interval_ms;
		loop_add_timer(loop, 1000, sd_reload_tick, &reloader);
	}
	log_info("starting query node", "http", sf.http_address, "grpc", grpc_address, "grpc_tls",
		 server_tls ? "on" : "off", "grpc_client_tls", dial.tls ? "on" : "off");
	rc = http_server_run(http, sf.http_grace_ms, &err) ? 1 : 0;
	if (rc)
		log_error("server failed", "err", err.msg);
	log_info("query node stopped");
out:
	if (gthread) {
		loop_stop(gloop);
		pthread_join(gth, NULL);
	}
	listener_free(gl);
	http_server_free(http);
	api_free(api);
	ui_free(ui);
	store_grpc_service_free(svc);
	querysrv_free(qsrv);
	if (grpc)
		grpc_server_free(grpc);
	endpoint_set_free(es);
	tls_client_free(dial.tls);
	for (size_t i = 0; i < reloader.nall; i++) {
		cmd_endpoint_config_release(reloader.all[i]);
		free(reloader.all[i]);
	}
	free(reloader.all);
	free(reloader.text);
	strlist_free(&static_specs);
	pthread_mutex_destroy(&dial.mu);
	tls_server_free(server_tls);
	if (gloop)
		loop_free(gloop);
	if (loop)
		loop_free(loop);
	for (size_t i = 0; i < nflags; i++) {
		free(fnames[i]);
		free(fvalues[i]);
	}
	free(fnames);
	free(fvalues);
	free(routes);
	free(link_prefix);
	strlist_free(&specs);
	strlist_free(&files);
	strlist_free(&replica);
	return rc;
}
