/*
 * memstore.h — an in-memory queryable: series added by labels with float samples, read back through
 * queryable_t (select with matchers, label names, label values) exactly like a block or the head.
 *
 * For the PromQL conformance runner and unit tests of anything that consumes a queryable. Samples of
 * a series are kept sorted by time; adding a sample at an existing timestamp replaces its value (stale
 * markers are ordinary NaN bit patterns and kept bit-exact). Not thread-safe for writes; concurrent
 * selects without writes are fine.
 */
#ifndef STRATA_MODEL_MEMSTORE_H
#define STRATA_MODEL_MEMSTORE_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "model/series.h"

typedef struct memstore memstore_t;

memstore_t *memstore_new(void);
void memstore_free(memstore_t *m);
void memstore_clear(memstore_t *m); /* drop every series */
/* Add one sample to the series with labels ls (copied; must be normalised: sorted, unique names). */
void memstore_add(memstore_t *m, const labels_t *ls, int64_t t, double v);
size_t memstore_series_count(const memstore_t *m);
/* The queryable view (lives as long as m). */
queryable_t *memstore_queryable(memstore_t *m);

#endif
