/*
 * merge.h — one queryable over several (e.g. every block of a data directory): series with equal
 * label sets are merged into one, samples ordered by time, duplicates (same timestamp) taken from
 * the first source. Streaming k-way merge: only the current series' samples are held.
 * The sources must outlive the merge queryable. Single-threaded per series set.
 */
#ifndef STRATA_PROMQL_MERGE_H
#define STRATA_PROMQL_MERGE_H

#include <stddef.h>

#include "model/series.h"

typedef struct promql_merge promql_merge_t;

promql_merge_t *promql_merge_new(queryable_t *const *srcs, size_t n);
void promql_merge_free(promql_merge_t *m);
queryable_t *promql_merge_queryable(promql_merge_t *m);

#endif
