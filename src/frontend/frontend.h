/*
 * frontend.h — `strata query-frontend`: the HTTP front of one or more queriers (reference thanos.md §7).
 *
 * Routing (§7.1), by path:
 *   /api/v1/query_range   limits -> step alignment -> downsampled retry (max_source_resolution=auto)
 *                         -> split by interval -> results cache -> retries -> downstream, the pieces of
 *                         one query in parallel up to max_parallelism; the answer is the pieces merged
 *                         (frontend/promresp.h), byte for byte what the querier answers for the whole
 *                         range (stats aside: peakSamples and timings cannot be).
 *   /api/v1/query         retries -> downstream (no cache, as Thanos).
 *   /api/v1/labels, /api/v1/label/<name>/values, /api/v1/series
 *                         default time range -> split -> results cache -> retries -> downstream.
 *   anything else         proxied unchanged (the querier's UI, /api/v1/stores, status pages ...).
 * A request the frontend cannot take apart (a missing or malformed parameter, a PromQL parse error,
 * more than 11,000 points) goes to the downstream unchanged, so the client gets the querier's own
 * error. Results are never cached for requests with dedup=false, storeMatch[] or "Cache-Control:
 * no-store", nor are responses with warnings, errors or "Cache-Control: no-store", nor anything newer
 * than the freshness limit, nor a query whose `@` time lies after it (the data there may still change).
 *
 * Cache keys (§7.3), hashed with FNV-1a 64 for the backend, the full key stored in the value:
 *   fe:<tenant>:<query>:<step>:<split>:<start/split>:<resolution index>:-:<lookback_delta>:<engine>:
 *   <partial_response>:<sorted replicaLabels[]>:<analyze>
 *   fe:<tenant>:<label name>:<match[]...>:<split>:<start/split>     (labels; "" for /api/v1/labels)
 *   fe:<tenant>:<match[]...>:<split>:<start/split>                  (series)
 * tenant: the --query-frontend.tenant-header (or org-id) header's value, else "anonymous".
 *
 * Metrics: thanos_query_frontend_queries_total{op}, thanos_frontend_split_queries_total{tripperware},
 * thanos_frontend_downsampled_extra_queries_total, cortex_frontend_query_range_duration_seconds
 * {method=<middleware>,status_code,tripperware} (each middleware's time including what follows it),
 * the caches' cortex_cache_* and the retries' cortex_query_frontend_retries. Requests slower than
 * log_queries_longer_than (< 0: all) are logged as "slow query detected" with their parameters.
 *
 * Threads: every request runs on the HTTP server's worker pool (it blocks on the downstream and
 * memcached); `/-/ready` follows the downstream's /-/ready, probed by a thread of its own.
 */
#ifndef STRATA_FRONTEND_FRONTEND_H
#define STRATA_FRONTEND_FRONTEND_H

#include <stdbool.h>
#include <stdint.h>

#include "frontend/cache.h"
#include "frontend/downstream.h"
#include "net/http.h"

typedef struct frontend_config {
	downstream_t *downstream; /* borrowed */
	/* range queries */
	int64_t split_interval_ms; /* 0 = no splitting (and no caching) */
	bool align_range_with_step;
	bool request_downsampled;
	bool partial_response;       /* default of partial_response */
	int max_retries;             /* attempts per downstream request */
	int instant_max_retries;     /* /api/v1/query */
	int max_parallelism;         /* downstream requests in flight per query */
	int64_t max_query_length_ms; /* 0 = unlimited */
	int64_t max_freshness_ms;
	fecache_t *range_cache; /* NULL = none; borrowed */
	/* labels and series */
	int64_t labels_split_interval_ms;
	int64_t labels_default_range_ms;
	int64_t labels_max_freshness_ms;
	int labels_max_retries, labels_max_parallelism;
	bool labels_partial_response;
	fecache_t *labels_cache;
	/* common */
	bool snappy;                        /* --cache-compression-type=snappy */
	bool compress_responses;            /* gzip/deflate merged responses when the client accepts */
	int64_t log_queries_longer_than_ms; /* 0 = off, < 0 = every query */
} frontend_config_t;

typedef struct frontend frontend_t;

/* Registers the routes on srv (cfg is copied). */
frontend_t *frontend_new(http_server_t *srv, const frontend_config_t *cfg);
/* Start probing the downstream's /-/ready every second (1s while not ready, 5s once ready) and set
 * the server's readiness from it. */
void frontend_start_probe(frontend_t *fe);
/* Stops the probe and waits for it (it sets the server's readiness): call before the server is freed.
 * Idempotent. */
void frontend_stop_probe(frontend_t *fe);
/* Stops the probe if still running; call after the server is freed. */
void frontend_free(frontend_t *fe);

#endif
