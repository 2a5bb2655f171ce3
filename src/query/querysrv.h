/*
 * querysrv.h — the querier's Query API over gRPC: /thanos.Query/Query and /thanos.Query/QueryRange
 * (server-streaming, proto/querypb.proto; reference thanos.md §2.1, §2.7), what a Thanos or Strata
 * ruler calls with --grpc-query-endpoint. Queries run through the same endpoint set, queryable and
 * engine options as the HTTP API (api/api.h), so answers equal /api/v1/query and /api/v1/query_range.
 *
 * Request fields: query; time_seconds (instant) or start/end_time_seconds + interval_seconds (range,
 * interval > 0, a scalar or instant-vector expression); timeout_seconds (0 = --query.timeout, never
 * above it; the call's grpc-timeout also applies); enableDedup with replica_labels (none given = the
 * querier's --query.replica-label); enablePartialResponse; max_resolution_seconds (downsampled data
 * allowed, as max_source_resolution); lookback_delta_seconds (0 = --query.lookback-delta, raised to
 * the resolution level with dynamic lookback, as the HTTP API does); storeMatchers (each a selector
 * over the endpoints' __address__, as storeMatch[]); response_batch_size (> 0: series go in
 * timeseries_batch messages of that many). engine and skipChunks are accepted and ignored (one
 * engine). A query plan without a query string, and shard_info with more than one shard, are
 * UNIMPLEMENTED.
 *
 * Responses: the warnings first (one message each), then the result: a vector as one TimeSeries per
 * element (labels, one sample at the evaluation time), a scalar as one TimeSeries without labels, a
 * matrix (range queries) as one TimeSeries per series; then QueryStats {samples_total, peak_samples}.
 * A string result is INVALID_ARGUMENT. Errors: a parse or bad-argument error INVALID_ARGUMENT,
 * timeout DEADLINE_EXCEEDED, canceled CANCELLED, an execution error (a store failing without partial
 * response, too many samples, out of memory budget) UNKNOWN, as Go's plain errors; the message is the
 * HTTP API's error text.
 *
 * Threads: requests are decoded on the gRPC loop; each query is evaluated on the service's workers
 * (at most max_concurrent at once, the rest wait in FIFO order, time spent waiting counting against
 * the timeout); the whole framed response is handed back to the loop in one post. A call that ends
 * (client cancel, deadline, connection lost) sets the engine's cancel flag.
 */
#ifndef STRATA_QUERY_QUERYSRV_H
#define STRATA_QUERY_QUERYSRV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/arena.h"
#include "net/grpc.h"
#include "query/endpoints.h"

typedef struct querysrv_config {
	endpoint_set_t *endpoints;
	const char *const *replica_labels; /* --query.replica-label */
	size_t nreplica_labels;
	dedup_mode_t dedup_mode;          /* --deduplication.func */
	int64_t timeout_ms;               /* --query.timeout; 0 = 2m */
	int64_t lookback_ms;              /* --query.lookback-delta; 0 = 5m */
	bool dynamic_lookback;            /* --query.dynamic-lookback-delta */
	int64_t max_samples;              /* 0 = 50,000,000 */
	size_t max_memory;                /* 0 = the engine's default */
	arena_budget_pool_t *memory_pool; /* all running queries' memory together, or NULL */
	int64_t default_eval_interval_ms; /* subquery default step; 0 = 1m */
	int max_concurrent;               /* queries evaluating at once; 0 = 20 */
	int max_concurrent_select;        /* selects of one query at once; 0 = 1: none ahead */
} querysrv_config_t;

typedef struct querysrv querysrv_t;

/* Registers both methods on srv (cfg and its arrays copied). */
querysrv_t *querysrv_register(grpc_server_t *srv, const querysrv_config_t *cfg);
/* After the server's listeners are freed, with its loop no longer running: waits for queries still
 * evaluating (cancelled, they stop at the engine's next check), then frees. */
void querysrv_free(querysrv_t *s);

#endif
