/*
 * queryable.h — a store_t (typically the proxy over the endpoint set) seen as a model/series.h
 * queryable_t, so the PromQL engine and the metadata API can read from StoreAPI sources.
 *
 * select() turns the engine's hints into a store_series_req_t: the time range, the enclosing
 * function (so the proxy's dedup applies counter adjustment under rate/increase/...), skip_chunks
 * for metadata-only selects (func "series"), plus the per-query options fixed at init: replica
 * labels and mode (dedup) and partial response (abort_on_error = !partial_response).
 * Downsampled data (thanos.md §4.4, §4.5): with max_source_resolution > 0 the request carries it as
 * max_resolution, capped at range / 2 for functions that need two samples in their range (rate,
 * increase, deriv, ...), and the aggregates the enclosing function reads (store_aggregates_for_func);
 * under rate/increase the request starts two resolution steps earlier, for the aggregate points before
 * the range that the engine reads the counter at the range start from (promql's rb_aggr_t.lead; also
 * when a merged series comes as samples: series_set_aggr_samples).
 * Warnings are collected per query: from every series set when it is closed and from label
 * name/value responses; identical warnings are kept once, in arrival order.
 *
 * Lifetime: a store_queryable_t lives for one query; its arena (the query arena) holds the
 * warnings and must outlive it. Single-threaded like the store it wraps.
 */
#ifndef STRATA_QUERY_QUERYABLE_H
#define STRATA_QUERY_QUERYABLE_H

#include <stdbool.h>
#include <stddef.h>

#include "base/arena.h"
#include "model/series.h"
#include "store/store.h"

typedef struct store_queryable_opts {
	bool partial_response;          /* false: a failing store fails the query (naming the store) */
	const str_t *replica_labels;    /* dedup by these labels; none = no dedup */
	size_t nreplica_labels;
	dedup_mode_t dedup_mode;        /* --deduplication.func */
	int64_t series_limit;           /* 0 = unlimited (per select) */
	int64_t max_source_resolution; /* ms: downsampled data up to this resolution may be read; 0 = raw only */
} store_queryable_opts_t;

typedef struct store_queryable {
	queryable_t base;
	store_t *store;
	arena_t *a;
	store_queryable_opts_t o;
	const char **warnings;
	size_t nwarnings, capwarnings;
} store_queryable_t;

/* promql_opts_t.decode_aggr_chunks for what a store_queryable_t reads: aggregate chunks through the view
 * the stores' sample iterators use for func (store_aggr_view(store_aggregates_for_func(func))), the
 * count view with count weights when asked (count_over_time). Thread-safe. */
int64_t store_queryable_decode_aggr(const chunk_t *chks, size_t n, int64_t mint, int64_t maxt,
                                    const char *func, bool count_weights, int64_t **t, double **v,
                                    size_t *cap, err_t *err);

/* o is copied (replica_labels must stay valid for the query). */
void store_queryable_init(store_queryable_t *q, store_t *s, arena_t *a, const store_queryable_opts_t *o);
static inline queryable_t *store_queryable_base(store_queryable_t *q)
{
	return &q->base;
}
/* Add a warning (copied into the arena unless already present). */
void store_queryable_warn(store_queryable_t *q, const char *w);
/* Warnings gathered so far (valid while the arena lives). */
size_t store_queryable_warnings(const store_queryable_t *q, const char *const **out);

#endif
