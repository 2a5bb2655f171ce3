/*
 * series.h — the interfaces that hold Strata together: sample iterators, series sets, queryables.
 *
 * A series set yields series sorted by labels (labels_cmp order), each with its samples. Block
 * readers, the head, remote read, the StoreAPI client and the dedup merger produce series sets; the
 * PromQL engine and the StoreAPI server consume them. Producers that hold encoded chunks also expose
 * them (chunks()) so servers can pass chunks through without decoding.
 *
 * All returned pointers stay valid until the next call on the same object (or close()). Objects are
 * single-threaded. Errors are returned as negative ERR_* codes with err filled.
 */
#ifndef STRATA_MODEL_SERIES_H
#define STRATA_MODEL_SERIES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/arena.h"
#include "base/err.h"
#include "model/labels.h"
#include "model/matcher.h"

/* Chunk encodings (Prometheus chunkenc numbering; 0xFF: Thanos's aggregate chunk, tsdb/aggr.h). */
enum chunk_encoding {
	CHUNK_ENC_NONE = 0,
	CHUNK_ENC_XOR = 1,
	CHUNK_ENC_HISTOGRAM = 2,
	CHUNK_ENC_FLOAT_HISTOGRAM = 3,
	CHUNK_ENC_AGGR = 0xFF
};

typedef struct chunk {
	int64_t mint, maxt; /* inclusive, ms */
	uint8_t enc;
	const uint8_t *data;
	size_t len;
} chunk_t;

/* Samples of one series in ascending time order, decoded in batches into caller arrays. */
typedef struct sample_iter sample_iter_t;
struct sample_iter_ops {
	/* Decode up to cap samples into t[]/v[]; returns the count, 0 when exhausted, <0 on error. */
	int (*next_batch)(sample_iter_t *it, int64_t *t, double *v, int cap, err_t *err);
	/* The next batch starts at the first sample with timestamp >= t (never moves backwards).
	 * Returns 0 or <0 on error. */
	int (*seek)(sample_iter_t *it, int64_t t, err_t *err);
};
struct sample_iter {
	const struct sample_iter_ops *ops;
};

/* The first index in the sorted timestamps t[0..n) with t[i] > x (n if none): how many are <= x. */
size_t samples_upper_bound(const int64_t *t, size_t n, int64_t x);

static inline int sample_iter_next_batch(sample_iter_t *it, int64_t *t, double *v, int cap, err_t *err)
{
	return it->ops->next_batch(it, t, v, cap, err);
}
static inline int sample_iter_seek(sample_iter_t *it, int64_t t, err_t *err)
{
	return it->ops->seek(it, t, err);
}
/* Decodes every remaining sample of it into the arrays at t and v (grown by doubling; cap holds their
 * capacity); returns the count or <0 on error. */
int64_t sample_iter_drain(sample_iter_t *it, int64_t **t, double **v, size_t *cap, err_t *err);

typedef struct series_set series_set_t;
struct series_set_ops {
	/* Advance to the next series: 1 = there is one, 0 = end, <0 = error (err filled). */
	int (*next)(series_set_t *s, err_t *err);
	const labels_t *(*labels)(series_set_t *s);
	/* Sample iterator over the current series. */
	sample_iter_t *(*samples)(series_set_t *s);
	/* Encoded chunks of the current series (sorted by mint), or -1 if the producer has none. May
	 * be NULL in the ops table (= -1). */
	int (*chunks)(series_set_t *s, const chunk_t **out);
	/* Non-fatal warnings gathered so far (e.g. a partial response); may be NULL in the ops table. */
	size_t (*warnings)(series_set_t *s, const char *const **out);
	void (*close)(series_set_t *s);
	/* Optional (NULL = false): whether the bytes of the chunks chunks() returns (chunk_t.data, not
	 * the array) stay valid until close(), so a consumer may keep them across next() without a copy
	 * (e.g. a block reader's mapped chunk files). */
	bool (*chunk_data_stable)(series_set_t *s);
	/* Optional (NULL = false): whether the current series' samples() come from downsampled aggregate
	 * chunks (read through the request's aggregate view), e.g. several sources' aggregate chunks merged
	 * where chunks() returns -1; a consumer may then read them as downsampled data. */
	bool (*aggr_samples)(series_set_t *s);
};
struct series_set {
	const struct series_set_ops *ops;
};

static inline int series_set_next(series_set_t *s, err_t *err)
{
	return s->ops->next(s, err);
}
static inline const labels_t *series_set_labels(series_set_t *s)
{
	return s->ops->labels(s);
}
static inline sample_iter_t *series_set_samples(series_set_t *s)
{
	return s->ops->samples(s);
}
static inline bool series_set_aggr_samples(series_set_t *s)
{
	return s->ops->aggr_samples && s->ops->aggr_samples(s);
}
static inline void series_set_close(series_set_t *s)
{
	if (s)
		s->ops->close(s);
}

/* An empty series set (static, close is a no-op). */
series_set_t *series_set_empty(void);
/* An iterator without samples (static). */
sample_iter_t *sample_iter_empty(void);

/* An iterator over arrays of samples the caller keeps alive (t ascending). */
typedef struct sample_iter_array {
	sample_iter_t base;
	const int64_t *t;
	const double *v;
	size_t n, i;
} sample_iter_array_t;
sample_iter_t *sample_iter_array_init(sample_iter_array_t *it, const int64_t *t, const double *v, size_t n);

/* Hints a consumer passes to select() so sources can prune or push down work. */
typedef struct select_hints {
	int64_t start, end; /* ms, the samples needed (incl. lookback and ranges) */
	int64_t step;       /* ms, 0 for instant queries */
	int64_t range;      /* ms, range of the enclosing range selector, 0 if none */
	const char *func;   /* enclosing function name, "series" for metadata-only, NULL if none */
	const str_t *grouping;
	size_t ngrouping;
	int by;             /* 1 = by(grouping), 0 = without(grouping) */
	int64_t shard_index, shard_count;
} select_hints_t;

/* Anything the PromQL engine can read from. select() returns series sorted by labels, with samples in
 * [mint, maxt]; allocations go to the arena, which outlives the returned set. */
typedef struct queryable queryable_t;
struct queryable_ops {
	int (*select)(queryable_t *q, arena_t *a, const matcher_t *ms, size_t nms, int64_t mint, int64_t maxt,
		      const select_hints_t *hints, series_set_t **out, err_t *err);
	/* Label names (sorted, unique) of series matching ms (nms may be 0) in [mint, maxt]. */
	int (*label_names)(queryable_t *q, arena_t *a, const matcher_t *ms, size_t nms, int64_t mint, int64_t maxt,
			   str_t **out, size_t *n, err_t *err);
	int (*label_values)(queryable_t *q, arena_t *a, str_t name, const matcher_t *ms, size_t nms, int64_t mint,
			    int64_t maxt, str_t **out, size_t *n, err_t *err);
};
struct queryable {
	const struct queryable_ops *ops;
};

#endif
