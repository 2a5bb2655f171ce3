/*
 * store.h — the in-process StoreAPI: what every data source (in-memory, block, head, Prometheus
 * remote read, another querier over gRPC, the proxy itself) implements, and what the gRPC server
 * exposes as thanos.Store + thanos.info.Info (ARCHITECTURE.md; reference thanos.md §2.5, §2.6).
 *
 * Semantics every implementation honours:
 *   - series() returns series sorted by labels (labels_cmp), with the store's external labels merged
 *     in (external value wins on a name clash). Matchers on external-label names are evaluated
 *     against the external labels: a mismatch yields an empty set, a match drops the matcher before
 *     the local lookup (store_match_external() does this for implementations).
 *   - Samples are trimmed to [mint, maxt] (inclusive, ms) by the sample iterators; encoded chunks
 *     (series_set ops chunks()) may extend beyond that range (the consumer trims).
 *   - skip_chunks: labels only; sample iterators may be empty and chunks() may return 0 chunks.
 *   - Everything returned is allocated from the arena passed in (or owned by the store and valid
 *     while the arena lives); the series set must be closed before the arena is released.
 *   - Errors are negative ERR_* with err naming the store and what failed.
 * A store is used from one thread at a time unless its implementation says otherwise.
 */
#ifndef STRATA_STORE_STORE_H
#define STRATA_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/arena.h"
#include "base/err.h"
#include "base/str.h"
#include "model/labels.h"
#include "model/matcher.h"
#include "model/series.h"
#include "store/dedup.h"
#include "tsdb/aggr.h"

/* Function names whose input is a counter: the proxy's dedup then applies counter adjustment. */
bool store_func_is_counter(const char *func);

/* Downsampled data (reference thanos.md §4.4): the aggregates (bits 1 << AGGR_*) a querier asks for
 * when the selector sits in func: min/min_* MIN, max/max_* MAX, count/count_* COUNT, sum_over_time
 * SUM, rate/increase/irate/resets/xrate/xincrease COUNTER, anything else COUNT and SUM (average). */
unsigned store_aggregates_for_func(const char *func);
/* The view that reads those aggregates (COUNT|SUM: average; one of them: itself). */
aggr_view_t store_aggr_view(unsigned aggregates);
/* Functions that need two samples in their range: the resolution used is capped at range / 2. */
bool store_func_needs_two_samples(const char *func);

typedef struct store_series_req {
	int64_t mint, maxt;     /* inclusive, ms */
	const matcher_t *ms;    /* all must match */
	size_t nms;
	bool skip_chunks;
	int64_t limit;          /* max series returned, 0 = unlimited */
	bool abort_on_error;    /* partial response off (ABORT); otherwise failing sub-stores become warnings */
	const str_t *replica_labels; /* dedup by these labels (proxy); 0 = no dedup */
	size_t nreplica_labels;
	dedup_mode_t dedup_mode;     /* how the proxy deduplicates (store/dedup.h); 0 = DEDUP_PENALTY */
	/* SeriesRequest.without_replica_labels (thanos.md §2.5 field 14, §6.3): not a dedup request but
	 * "drop replica_labels from every series and sort without them". A store whose info() announces
	 * supports_without_replica_labels then returns series without those labels, sorted by the rest;
	 * series that differ only in them (the replicas) come out as consecutive separate series with
	 * identical labels (each replica's own series, never merged), in a deterministic order; no
	 * deduplication (that is the caller's job; the proxy deduplicates only when replica_labels come
	 * without this flag). Stores without support ignore the flag and the replica labels. */
	bool without_replica_labels;
	const char *func;       /* enclosing PromQL function (hint), NULL if none */
	/* SeriesRequest.max_resolution_window and .aggregates (thanos.md §2.3, §4.5): the coarsest
	 * downsampling resolution (ms) the caller accepts (0: raw data only), and which aggregates of
	 * aggregate chunks it wants (bits 1 << AGGR_*; 0: count and sum). A store with downsampled data
	 * picks blocks coarsest first and fills gaps with finer ones; its series then carry aggregate
	 * chunks (encoding 0xFF) beside raw ones, which readers see through store_aggr_view(). */
	int64_t max_resolution;
	unsigned aggregates;
	const char *tenant; /* the querier's tenant (query/tenancy.h), sent as gRPC metadata thanos-tenant;
	                       NULL = none */
} store_series_req_t;

typedef struct store_label_req {
	int64_t mint, maxt;
	const matcher_t *ms;
	size_t nms;
	str_t name;             /* label_values only */
	int64_t limit;          /* 0 = unlimited */
	bool abort_on_error;
	const char *tenant; /* as store_series_req_t's */
} store_label_req_t;

/* Sorted unique strings plus warnings (partial response). */
typedef struct store_strings {
	str_t *v;
	size_t n;
	const char **warnings;
	size_t nwarnings;
} store_strings_t;

typedef struct store_info {
	const labels_t *label_sets; /* external label sets (may be 0 sets) */
	size_t nlabel_sets;
	int64_t mint, maxt;         /* data time range, ms */
	/* Info's ComponentType (thanos.md §2.6): "store", "sidecar", "query", "rule", "receive", "debug";
	 * NULL when the store does not know what serves it (the gRPC server then sends the type it was
	 * registered with, grpc_server.h). A static string or allocated like the rest. */
	const char *component_type;
	/* StoreInfo.supports_without_replica_labels (field 5): series() honours without_replica_labels. */
	bool supports_without_replica_labels;
} store_info_t;

typedef struct store store_t;
struct store_ops {
	int (*series)(store_t *s, arena_t *a, const store_series_req_t *req, series_set_t **out, err_t *err);
	int (*label_names)(store_t *s, arena_t *a, const store_label_req_t *req, store_strings_t *out, err_t *err);
	int (*label_values)(store_t *s, arena_t *a, const store_label_req_t *req, store_strings_t *out, err_t *err);
	/* Current info; pointers valid until the arena is released. *out is zeroed by store_info()
	 * before the call, so fields an implementation does not know stay 0/NULL. */
	int (*info)(store_t *s, arena_t *a, store_info_t *out, err_t *err);
	void (*free)(store_t *s);
};
struct store {
	const struct store_ops *ops;
	const char *name; /* for warnings/errors, e.g. "127.0.0.1:10901" or "mem" */
};

static inline int store_series(store_t *s, arena_t *a, const store_series_req_t *req, series_set_t **out, err_t *err)
{
	return s->ops->series(s, a, req, out, err);
}
static inline int store_label_names(store_t *s, arena_t *a, const store_label_req_t *req, store_strings_t *out,
				    err_t *err)
{
	return s->ops->label_names(s, a, req, out, err);
}
static inline int store_label_values(store_t *s, arena_t *a, const store_label_req_t *req, store_strings_t *out,
				     err_t *err)
{
	return s->ops->label_values(s, a, req, out, err);
}
static inline int store_info(store_t *s, arena_t *a, store_info_t *out, err_t *err)
{
	*out = (store_info_t){0};
	return s->ops->info(s, a, out, err);
}
static inline void store_free(store_t *s)
{
	if (s)
		s->ops->free(s);
}

/* Evaluate matchers against one external label set: false if some matcher on an external label name
 * does not match (the store has nothing); else the remaining matchers (those on other names) are
 * copied to *rest (arena array) with their count in *nrest. */
bool store_match_external(arena_t *a, const labels_t *ext, const matcher_t *ms, size_t nms, const matcher_t **rest,
			  size_t *nrest);
/* Proxy store selection: can a store with these external label sets hold series matching ms? True if
 * it has no label sets, or if in at least one set every matcher whose name is present matches. */
bool store_labelsets_compatible(const labels_t *sets, size_t nsets, const matcher_t *ms, size_t nms);
/* Labels ls with ext merged in (ext wins), sorted; allocated in a. */
labels_t store_merge_external(arena_t *a, const labels_t *ls, const labels_t *ext);
/* Sort and deduplicate n strings in place; returns the new count. */
size_t store_strings_sort_unique(str_t *v, size_t n);

#endif
