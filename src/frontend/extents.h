/*
 * extents.h — results-cache entries (reference thanos.md §7.3): the cached answer for one cache key is a
 * list of extents, each a time range [start, end] (ms) with the response for exactly that range.
 *
 * Value bytes: protobuf queryrange.CachedResponse{key, extents[]} with each Extent's response in an Any
 * (type.googleapis.com/queryrange.PrometheusResponse, or queryfrontend.ThanosLabelsResponse /
 * ThanosSeriesResponse), optionally snappy-compressed (block format) as a whole. The full key string is
 * stored inside: a value whose key differs (an FNV-1a collision) or that does not decode is a miss.
 *
 * For a request [start, end] on a step grid (labels/series: step 1 ms):
 *   extents_partition  which extents answer which part, and which sub-ranges must still be fetched;
 *   extents_merge      the cached extents plus the newly fetched ones, overlapping/adjacent ones joined;
 *   extents_trim       nothing newer than the freshness limit kept (a matrix is cut at the last grid
 *                      point not after it; a labels/series extent reaching past it is dropped).
 * An extent is only used for a request on the same grid (start and end congruent modulo step), so two
 * requests with different step phases sharing a key never mix points; extents shorter than 5 minutes
 * are skipped for requests longer than that (as Cortex: a few larger queries beat many tiny ones).
 * Requests that need stats only use extents that carry per-step stats.
 *
 * Allocation in the caller's arena; thread-safe (no shared state).
 */
#ifndef STRATA_FRONTEND_EXTENTS_H
#define STRATA_FRONTEND_EXTENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/arena.h"
#include "base/str.h"
#include "frontend/cache.h"
#include "frontend/promresp.h"
#include "frontend/split.h"

#define EXTENTS_MIN_MS (5 * 60 * 1000)

typedef struct extent {
	int64_t start, end;
	promresp_t resp;
} extent_t;

typedef struct extents {
	extent_t *v;
	size_t n;
} extents_t;

/* Cache key string -> memcached/IN-MEMORY key: 16 lowercase hex digits of FNV-1a 64. */
void extents_hash_key(str_t key, char out[17]);

/* Decode a cached value for `key` (snappy: value was compressed). false: not usable (a miss). */
bool extents_decode(arena_t *a, promresp_kind_t kind, str_t value, str_t key, bool snappy, extents_t *out);
/* Encode extents for key into out (replacing its content). */
void extents_encode(buf_t *out, str_t key, const extents_t *ex, bool snappy);

typedef struct extents_plan {
	split_piece_t *fetch; /* sub-ranges to ask the downstream for */
	size_t nfetch;
	promresp_t *cached; /* parts answered from cache, already cut to the request */
	size_t ncached;
} extents_plan_t;

/* need_stats: only extents with per-step stats qualify. */
void extents_partition(arena_t *a, const extents_t *ex, int64_t start, int64_t end, int64_t step,
                       bool need_stats, extents_plan_t *plan);

/* ex (cached, may be empty) plus added (new extents), sorted and joined where they overlap or touch
 * (gap <= step); extents off the grid of (start, step) are dropped. */
void extents_merge(arena_t *a, const extents_t *ex, const extent_t *added, size_t nadded, int64_t grid_start,
                   int64_t step, extents_t *out);

/* Keep nothing after max_time (see above); drops extents left empty. */
void extents_trim(arena_t *a, extents_t *ex, int64_t max_time, int64_t step);

/* Ready answers. A range query with stats (which has no ready series, below) whose every point came
 * from the cache or went into it is also kept as the JSON body it was answered with, under its own key
 * (extents_hash_key of a "fe-json:" key naming every piece's cache key, start, end, step and the stats
 * parameter), together with the fingerprint (length and XXH3-64) of each piece's cached value as it was when
 * the body was made. The body is used only while every piece's value is still byte for byte the same: any
 * change to an extent (a merge, a put from another frontend on a shared memcached, an eviction or expiry)
 * makes it a miss, and the answer is computed again from the extents. Value: "SFJ1", u32 key length, key, u32
 * number of pieces, per piece u64 length and u64 hash (little-endian), then the body. */
typedef fecache_fp_t extents_fp_t; /* fecache_fingerprint of the value */
void extents_json_encode(buf_t *out, str_t jkey, const extents_fp_t *fp, size_t n, const void *body,
                         size_t blen);
/* Only the part before the body, appended to out (the body is then appended by the caller). */
void extents_json_head(buf_t *out, str_t jkey, const extents_fp_t *fp, size_t n);
/* The body stored for jkey, if the value is for jkey and its fingerprints are exactly fp[0..n). */
bool extents_json_decode(str_t value, str_t jkey, const extents_fp_t *fp, size_t n, str_t *body);

/* One piece's ready series (promresp_frag_t) for the range [start, end] they were made for, kept the
 * same way with n = 1 under an "fe-frag2:" key of the piece's cache key, so a range sharing whole
 * pieces with an earlier one (a dashboard refresh shifted by a step) renders only its last piece: a
 * piece within [start, end] on the same grid is the ready series cut (promresp_frag_cut). Bytes: i64
 * start, i64 end; u32 number of series; per series u32 number of labels, each u32 length + name, u32
 * length + value; u32 length + points text, appended to out. extents_frag_decode points into bytes;
 * false if they are malformed. */
void extents_frag_encode(buf_t *out, const promresp_frag_t *f, int64_t start, int64_t end);
/* The same for the ready series of n fragments of disjoint time ranges in time order, joined (as
 * promresp_frag_encode assembles them): what extents_frag_encode gives for the ready series of their
 * merge. A series with no point in any of them is left out. */
void extents_frag_encode_join(buf_t *out, const promresp_frag_t *const *f, size_t n, int64_t start,
                              int64_t end);
bool extents_frag_decode(arena_t *a, str_t bytes, promresp_frag_t *out, int64_t *start, int64_t *end);

#endif
