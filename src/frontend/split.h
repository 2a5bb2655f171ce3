/*
 * split.h — how the query frontend cuts requests in time (reference thanos.md §7.2).
 *
 * Range queries: after step alignment (start and end floored to a multiple of the step), a query over
 * [start, end] is cut at absolute multiples of the split interval I (24h: UTC midnight) into pieces
 * [start, e1], [e1+step, e2], ..., [ek+step, end], where each e is the last point of the query's step
 * grid before the next multiple of I. Every piece's points are points of the original grid, so the
 * pieces' answers put together are the whole range's answer. `@ start()` / `@ end()` are first replaced
 * by the whole query's start/end (split_resolve_at), so every piece evaluates them at the same time.
 *
 * Labels and series: pieces at absolute multiples of I as well, [start, B1-1ms], [B1, B2-1ms], ...,
 * [Bk, end], so whole-interval pieces are the same from one request to the next and can be cached.
 *
 * Pure functions; thread-safe.
 */
#ifndef STRATA_FRONTEND_SPLIT_H
#define STRATA_FRONTEND_SPLIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/arena.h"
#include "base/err.h"
#include "base/str.h"

typedef struct split_piece {
	int64_t start, end; /* ms, inclusive */
} split_piece_t;

/* start - start % step (Go's truncating %, as Cortex's step alignment). */
int64_t split_align(int64_t t, int64_t step);

/* The last grid point t + k*step (k >= 0) before the next multiple of interval after t, as §7.2. */
int64_t split_next_boundary(int64_t t, int64_t step, int64_t interval);

/* Range-query pieces of [start, end] on the grid of step; interval <= 0 or start == end gives the
 * whole range as one piece. Returns the count; *out in a. */
size_t split_range(arena_t *a, int64_t start, int64_t end, int64_t step, int64_t interval,
                   split_piece_t **out);

/* Labels/series pieces (see above); interval <= 0 gives one piece. */
size_t split_labels(arena_t *a, int64_t start, int64_t end, int64_t interval, split_piece_t **out);

/* Parse query and replace `@ start()` / `@ end()` on selectors and subqueries by start/end (ms). When
 * the query has any, *out is the rewritten query (Prometheus's String() form, in a) and *changed is
 * true; otherwise *out is query unchanged. *max_at gets the latest `@` time in the query (after
 * resolution), INT64_MIN if none. Parse errors: ERR_INVALID with Prometheus's message. */
int split_resolve_at(arena_t *a, str_t query, int64_t start, int64_t end, str_t *out, bool *changed,
                     int64_t *max_at, err_t *err);

#endif
