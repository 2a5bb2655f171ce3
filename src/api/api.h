/*
 * api.h — the querier's Prometheus HTTP API v1 (reference prometheus.md §5, thanos.md §11.2) over an
 * endpoint set (query/endpoints.h):
 *
 *   /api/v1/query, /api/v1/query_range       PromQL (GET, POST form), evaluated on the worker pool
 *   /api/v1/series, /api/v1/labels           (GET, POST), /api/v1/label/<name>/values (GET)
 *   /api/v1/metadata                         empty, with a warning (sources do not provide metadata yet)
 *   /api/v1/format_query                     (GET, POST)
 *   /api/v1/status/buildinfo, /status/flags, /api/v1/stores (Thanos)
 *   /api/v1/rules, /api/v1/alerts            from the rulers among the endpoints (Rules gRPC API, replicas
 *                                            merged by replica label; store/rulesapi.h)
 *
 * Thanos parameters: dedup (default true; dedup needs replica labels), partial_response (default
 * from the config), replicaLabels[] (overrides the configured replica labels), max_source_resolution
 * (auto = step / 5 for range queries, the configured instant default otherwise; 0s, 5m, 1h or any
 * duration; negative -> 400; absent: step / 5 with auto_downsampling, else raw only: the coarsest
 * downsampled data the stores may answer from, thanos.md §4.5; with dynamic lookback the lookback
 * delta grows to the resolution level it allows, 5m or 1h), storeMatch[] (selectors over __address__).
 * Booleans are Go ParseBool values; bad values get Thanos's "'<param>' parameter: ..." errors.
 *
 * query/query_range with a non-empty `stats` parameter add Prometheus 2.42's data.stats (same field
 * names and nesting, api_query_stats_json): execQueueTime = waiting for a query slot and a worker,
 * evalTotalTime = the engine's evaluation, queryPreparationTime = time inside the engine's select()
 * calls to the stores, innerEvalTime = the rest, execTotalTime = queue + evaluation, peakSamples =
 * the engine's 2.42-exact peak, totalQueryableSamples = the samples the engine read, counted as 2.42
 * counts them (promql_result_t.samples_total); stats=all adds totalQueryableSamplesPerStep ([t, n]
 * per step), as Prometheus 2.42 does with --enable-feature=promql-per-step-stats. resultSortTime is
 * 0: sorting happens inside the evaluation and is counted in innerEvalTime.
 *
 * Bodies of 1 KiB and more are gzip- or deflate-compressed as the request's Accept-Encoding allows
 * (api/compress.h), on the worker that built them. Query results are formatted series by series and,
 * past 64 KiB, sent as they are produced (chunked, compressed per part; api_json_out_t), so a large
 * matrix's JSON never exists whole in memory and a slow reader holds back the worker, not memory.
 *
 * Tenancy: every query, series, labels and label values request has a tenant: the tenant header's value
 * (THANOS-TENANT also accepted), the default tenant without one, or with a certificate field that field
 * of the client certificate the HTTPS listener verified (the header is then ignored; a connection
 * without it gets 400), as Thanos takes it; names with path separators, "." and ".." get 400. Its
 * store requests carry it (query/tenancy.h: gRPC metadata thanos-tenant); with enforce_tenancy every
 * one of them also gets the matcher <tenant_label>="<tenant>", so a tenant reads only its own series.
 *
 * Every response uses Prometheus's envelope, error types and status codes (api/response.h); errors
 * and responses with warnings carry Cache-Control: no-store; CORS headers are set on every API
 * response and OPTIONS is answered. Until api_set_ready(true), API routes answer a plain-text 503.
 *
 * Queries: at most max_concurrent evaluate at once; the rest wait in a FIFO queue. The query timeout
 * (min of --query.timeout and the request's timeout parameter) counts from the request's arrival,
 * so time spent queued counts ("query timed out in query queue"). A client that disconnects, or shuts
 * down its sending side (EOF: Go's net/http and so Prometheus take that as gone too), cancels its
 * query: the connection is polled every 100 ms and the engine sees the flag at its next check (once
 * per batch of up to 256 series for range functions over selectors). Everything except the
 * evaluation itself runs on the loop thread.
 */
#ifndef STRATA_API_API_H
#define STRATA_API_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/arena.h"
#include "net/http.h"
#include "query/endpoints.h"

typedef struct api_config {
	endpoint_set_t *endpoints;
	const char *const *replica_labels; /* --query.replica-label */
	size_t nreplica_labels;
	dedup_mode_t dedup_mode;     /* --deduplication.func */
	bool partial_response;       /* default of partial_response */
	int64_t timeout_ms;          /* --query.timeout; 0 = 2m */
	int64_t lookback_ms;         /* --query.lookback-delta; 0 = 5m */
	bool auto_downsampling;      /* --query.auto-downsampling */
	int64_t instant_max_source_resolution; /* --query.instant.default.max_source_resolution */
	bool dynamic_lookback;       /* --query.dynamic-lookback-delta */
	int64_t max_samples;         /* --query.max-samples; 0 = 50,000,000 */
	size_t max_memory;           /* --query.max-memory: a query's memory budget; 0 = the engine's default */
	arena_budget_pool_t *memory_pool; /* all running queries' memory together (--query.max-memory-total),
	                                   * shared with the gRPC Query API; NULL = no such limit */
	int64_t default_eval_interval_ms; /* subquery default step; 0 = 1m */
	int max_concurrent;          /* --query.max-concurrent; 0 = 20 */
	int max_concurrent_select;   /* --query.max-concurrent-select; 0 = 1: no select started ahead */
	int engine_threads;          /* pool decoding/evaluating series of one query in parallel: 0 = one
				      * per CPU, < 0 = none (each query on its own worker thread only) */
	/* Tenancy (thanos.md §1.6, §6.7), NULL/"" = the default: */
	const char *tenant_header;     /* --query.tenant-header: THANOS-TENANT */
	const char *default_tenant;    /* --query.default-tenant-id: default-tenant */
	const char *tenant_label;      /* --query.tenant-label-name: tenant_id */
	const char *tenant_cert_field; /* --query.tenant-certificate-field: none */
	bool enforce_tenancy;          /* --query.enforce-tenancy */
	const char *const *flag_names; /* /api/v1/status/flags */
	const char *const *flag_values;
	size_t nflags;
} api_config_t;

typedef struct api api_t;

/* Registers the routes on srv. cfg and its arrays are copied. */
api_t *api_new(http_server_t *srv, const api_config_t *cfg);
/* After the server is freed (no request in flight). */
void api_free(api_t *api);
void api_set_ready(api_t *api, bool ready);
/* Queries evaluating / waiting (loop thread). */
size_t api_queries_running(const api_t *api);
size_t api_queries_queued(const api_t *api);

#endif
