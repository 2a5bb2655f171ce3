/*
 * query_frontend.c — `strata query-frontend`: flags as Thanos's (reference thanos.md §1.7), the response
 * caches (frontend/cache.h), the downstream (frontend/downstream.h) and the routes (frontend/frontend.h)
 * on one HTTP server whose worker pool runs the requests.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/duration.h"
#include "cmd/cmd.h"
#include "frontend/cache.h"
#include "frontend/downstream.h"
#include "frontend/frontend.h"
#include "net/http.h"
#include "net/httpcfg.h"

static const char summary[] =
    "Query frontend command implements a service deployed in front of queriers to improve "
    "query parallelization and caching.";

/* Worker threads running requests: each one blocks on the downstream while its query runs. */
#define FRONTEND_WORKERS 64

/* Build the cache a --x.response-cache-config[-file] pair describes (NULL when none). */
static int cache_from_flags(const char *flag, const char *yaml, const char *file, const char *tripperware,
                            fecache_t **out)
{
	char *text;
	size_t len;
	const char *what;
	*out = NULL;
	if (cmd_read_config("strata query-frontend", yaml, file, &text, &len, &what))
		return 1;
	if (!text)
		return 0;
	fecache_config_t c;
	fecache_config_init(&c);
	err_t err = {0};
	int rc = fecache_config_parse(text, len, what, &c, &err);
	free(text);
	if (!rc)
		rc = fecache_new(out, &c, tripperware, &err);
	fecache_config_release(&c);
	if (rc) {
		fprintf(stderr, "strata query-frontend: --%s: %s\n", flag, err.msg);
		return 2;
	}
	return 0;
}

int cmd_query_frontend(int argc, char **argv)
{
	static cmd_server_flags_t sf;
	static char *downstream, *tripper, *tripper_file, *rc_cfg, *rc_file, *lc_cfg, *lc_file, *compression,
	    *tenant_header, *slow_s;
	static strlist_t fwd_headers, org_id_headers;
	static int64_t split_ms, max_len_ms, freshness_ms, lsplit_ms, lfreshness_ms, ldefault_ms, retries,
	    iretries, lretries, parallel, lparallel;
	static bool align, downsampled, partial, lpartial, compress;
	flag_def_t defs[] = {
	    CMD_SERVER_FLAGS(&sf, "0.0.0.0:10902"),
	    {"query-frontend.downstream-url", FLAG_STRING, &downstream, "http://localhost:9090",
	     "URL of downstream Prometheus Query compatible API."},
	    {"query-frontend.downstream-tripper-config", FLAG_STRING, &tripper, NULL,
	     "Alternative to 'query-frontend.downstream-tripper-config-file': downstream tripper "
	     "configuration in YAML."},
	    {"query-frontend.downstream-tripper-config-file", FLAG_STRING, &tripper_file, NULL,
	     "Path to YAML file that contains downstream tripper configuration."},
	    {"query-range.split-interval", FLAG_DURATION, &split_ms, "24h",
	     "Split query range requests by an interval and execute in parallel, it should be greater than 0 "
	     "when "
	     "query-range.response-cache-config is configured."},
	    {"query-range.align-range-with-step", FLAG_BOOL, &align, "true",
	     "Mutate incoming queries to align their start and end with their step for better "
	     "cache-ability."},
	    {"query-range.request-downsampled", FLAG_BOOL, &downsampled, "true",
	     "Make additional query for downsampled data in case of empty or incomplete response to range "
	     "request "
	     "(max_source_resolution=auto)."},
	    {"query-range.max-retries-per-request", FLAG_INT, &retries, "5",
	     "Maximum number of retries for a single query range request; beyond this, the downstream error "
	     "is returned."},
	    {"query.max-retries-per-request", FLAG_INT, &iretries, "5",
	     "Maximum number of retries for a single instant query request."},
	    {"query-range.max-query-length", FLAG_DURATION, &max_len_ms, "0",
	     "Limit the query time range (end - start time) in the query-frontend, 0 disables it."},
	    {"query-range.max-query-parallelism", FLAG_INT, &parallel, "14",
	     "Maximum number of query range requests will be scheduled in parallel by the Frontend."},
	    {"query-range.response-cache-max-freshness", FLAG_DURATION, &freshness_ms, "1m",
	     "Most recent allowed cacheable result for query range requests, to prevent caching very recent "
	     "results "
	     "that might still be in flux."},
	    {"query-range.response-cache-config", FLAG_STRING, &rc_cfg, NULL,
	     "Alternative to 'query-range.response-cache-config-file': response cache configuration in "
	     "YAML."},
	    {"query-range.response-cache-config-file", FLAG_STRING, &rc_file, NULL,
	     "Path to YAML file that contains response cache configuration (IN-MEMORY or MEMCACHED)."},
	    {"query-range.partial-response", FLAG_BOOL, &partial, "true",
	     "Enable partial response for query range requests if no partial_response param is specified."},
	    {"labels.split-interval", FLAG_DURATION, &lsplit_ms, "24h",
	     "Split labels requests by an interval and execute in parallel, it should be greater than 0 when "
	     "labels.response-cache-config is configured."},
	    {"labels.max-retries-per-request", FLAG_INT, &lretries, "5",
	     "Maximum number of retries for a single label/series API request."},
	    {"labels.max-query-parallelism", FLAG_INT, &lparallel, "14",
	     "Maximum number of labels requests will be scheduled in parallel by the Frontend."},
	    {"labels.response-cache-max-freshness", FLAG_DURATION, &lfreshness_ms, "1m",
	     "Most recent allowed cacheable result for labels requests."},
	    {"labels.response-cache-config", FLAG_STRING, &lc_cfg, NULL,
	     "Alternative to 'labels.response-cache-config-file': labels response cache configuration in "
	     "YAML."},
	    {"labels.response-cache-config-file", FLAG_STRING, &lc_file, NULL,
	     "Path to YAML file that contains labels response cache configuration."},
	    {"labels.partial-response", FLAG_BOOL, &lpartial, "true",
	     "Enable partial response for labels requests if no partial_response param is specified."},
	    {"labels.default-time-range", FLAG_DURATION, &ldefault_ms, "24h",
	     "The default metadata time range duration for retrieving labels through Labels and Series API "
	     "when the "
	     "range parameters are not specified."},
	    {"cache-compression-type", FLAG_ENUM, &compression, "",
	     "Use compression in results cache. Supported values are: 'snappy' and '' (disable compression).",
	     "|snappy"},
	    {"query-frontend.compress-responses", FLAG_BOOL, &compress, "false", "Compress HTTP responses."},
	    {"query-frontend.log-queries-longer-than", FLAG_STRING, &slow_s, "0",
	     "Log queries that are slower than the specified duration. Set to 0 to disable. Set to < 0 to "
	     "enable on "
	     "all queries."},
	    {"query-frontend.forward-header", FLAG_STRINGS, &fwd_headers, NULL,
	     "List of headers forwarded by the query-frontend to downstream queriers (repeatable)."},
	    {"query-frontend.org-id-header", FLAG_STRINGS, &org_id_headers, NULL,
	     "Deprecated: request headers whose value names the tenant for the results cache (repeatable)."},
	    {"query-frontend.tenant-header", FLAG_STRING, &tenant_header, "THANOS-TENANT",
	     "HTTP header to determine tenant for the results cache.", NULL, true},
	};
	flags_result_t res = {0};
	int exit_now;
	int rc = cmd_parse_flags("strata query-frontend", summary, defs, ARRAY_LEN(defs), argc, argv, &res,
	                         &exit_now);
	if (exit_now)
		return rc;
	if (res.npos) {
		fprintf(stderr, "strata query-frontend: unexpected argument %s\n", res.pos[0]);
		free(res.pos);
		return 2;
	}
	free(res.pos);
	if ((rc = cmd_server_setup_logging("strata query-frontend", &sf)))
		return rc;
	int64_t slow_ms = 0;
	err_t err = {0};
	bool neg = slow_s[0] == '-';
	if (duration_parse(str_c(slow_s + neg), &slow_ms, &err)) {
		fprintf(stderr, "strata query-frontend: --query-frontend.log-queries-longer-than: %s\n",
		        err.msg);
		return 2;
	}
	if (neg)
		slow_ms = slow_ms ? -slow_ms : -1;
	if (parallel <= 0 || lparallel <= 0 || retries < 0 || iretries < 0 || lretries < 0) {
		fprintf(stderr,
		        "strata query-frontend: parallelism must be positive and retries non-negative\n");
		return 2;
	}

	strlist_t tenants = {0};
	for (size_t i = 0; i < org_id_headers.n; i++)
		strlist_push(&tenants, org_id_headers.v[i]);
	if (tenant_header && *tenant_header)
		strlist_push(&tenants, tenant_header);
	downstream_config_t dc = {.url = downstream,
	                          .forward_headers = (const char *const *)fwd_headers.v,
	                          .nforward_headers = fwd_headers.n,
	                          .tenant_headers = (const char *const *)tenants.v,
	                          .ntenant_headers = tenants.n};
	char *text;
	size_t len;
	const char *what;
	fecache_t *rcache = NULL, *lcache = NULL;
	downstream_t *ds = NULL;
	loop_t *loop = NULL;
	http_server_t *http = NULL;
	frontend_t *fe = NULL;
	rc = 2;
	if (cmd_read_config("strata query-frontend", tripper, tripper_file, &text, &len, &what))
		goto out;
	if (text) {
		int prc = downstream_tripper_parse(text, len, what, &dc, &err);
		free(text);
		if (prc) {
			httpcfg_free(dc.tls);
			fprintf(stderr,
			        "strata query-frontend: --query-frontend.downstream-tripper-config: %s\n",
			        err.msg);
			goto out;
		}
	}
	if (downstream_new(&ds, &dc, &err)) {
		fprintf(stderr, "strata query-frontend: --query-frontend.downstream-url: %s\n", err.msg);
		goto out;
	}
	if ((rc = cache_from_flags("query-range.response-cache-config", rc_cfg, rc_file, "query_range",
	                           &rcache)) ||
	    (rc = cache_from_flags("labels.response-cache-config", lc_cfg, lc_file, "labels", &lcache)))
		goto out;
	rc = 2;
	if (rcache && split_ms <= 0) {
		fprintf(stderr,
		        "strata query-frontend: --query-range.split-interval must be greater than 0 when "
		        "--query-range.response-cache-config is set\n");
		goto out;
	}
	if (lcache && lsplit_ms <= 0) {
		fprintf(stderr, "strata query-frontend: --labels.split-interval must be greater than 0 when "
		                "--labels.response-cache-config is set\n");
		goto out;
	}
	if ((rc = cmd_check_config("strata query-frontend", &sf, NULL)) >= 0)
		goto out;
	rc = 1;
	if (loop_new(&loop, &err)) {
		fprintf(stderr, "strata query-frontend: %s\n", err.msg);
		goto out;
	}
	http_server_config_t hc = {.address = sf.http_address,
	                           .component = "query-frontend",
	                           .worker_threads = FRONTEND_WORKERS,
	                           .web_config_file = sf.http_config};
	if (http_server_new(&http, loop, &hc, &err)) {
		fprintf(stderr, "strata query-frontend: %s\n", err.msg);
		goto out;
	}
	frontend_config_t fc = {.downstream = ds,
	                        .split_interval_ms = split_ms,
	                        .align_range_with_step = align,
	                        .request_downsampled = downsampled,
	                        .partial_response = partial,
	                        .max_retries = (int)retries,
	                        .instant_max_retries = (int)iretries,
	                        .max_parallelism = (int)parallel,
	                        .max_query_length_ms = max_len_ms,
	                        .max_freshness_ms = freshness_ms,
	                        .range_cache = rcache,
	                        .labels_split_interval_ms = lsplit_ms,
	                        .labels_default_range_ms = ldefault_ms,
	                        .labels_max_freshness_ms = lfreshness_ms,
	                        .labels_max_retries = (int)lretries,
	                        .labels_max_parallelism = (int)lparallel,
	                        .labels_partial_response = lpartial,
	                        .labels_cache = lcache,
	                        .snappy = compression && strcmp(compression, "snappy") == 0,
	                        .compress_responses = compress,
	                        .log_queries_longer_than_ms = slow_ms};
	fe = frontend_new(http, &fc);
	frontend_start_probe(fe);
	log_info("starting query frontend", "http", sf.http_address, "downstream", downstream_url(ds));
	rc = http_server_run(http, sf.http_grace_ms, &err) ? 1 : 0;
	if (rc)
		log_error("server failed", "err", err.msg);
	log_info("query frontend stopped");
out:
	frontend_stop_probe(fe); /* it sets the server's readiness */
	http_server_free(http);
	frontend_free(fe);
	fecache_free(rcache);
	fecache_free(lcache);
	downstream_free(ds);
	if (loop)
		loop_free(loop);
	strlist_free(&tenants);
	return rc;
}
