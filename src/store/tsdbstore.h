/*
 * tsdbstore.h — the StoreAPI over a local TSDB (tsdb/db.h: the head and the blocks cut from it),
 * with a fixed external label set: what `strata receive` serves per tenant and `strata rule` serves
 * for its results (Thanos's TSDBStore).
 *
 * series() reads the head and every block overlapping the request, merges a series found in several
 * of them into one (chunks in time order; where chunks of different sources overlap in time — the head
 * and the block just cut from it — the samples are merged instead and the series carries no raw
 * chunks), adds the external labels and returns the series sorted by the labels it serves. Adding
 * external labels can reorder series ({a} < {a,b} but {a,z} > {a,b,z}), so the series' labels and
 * chunk references are collected and sorted first (as the store gateway does); chunk bytes are not
 * copied (the head's open chunks are). The head's memory and the blocks stay pinned until the set is
 * closed. Matchers on external labels are answered from them (store.h).
 * Thread-safe: any number of concurrent calls.
 */
#ifndef STRATA_STORE_TSDBSTORE_H
#define STRATA_STORE_TSDBSTORE_H

#include "store/store.h"
#include "tsdb/db.h"

typedef struct tsdb_store tsdb_store_t;

/* name, ext (sorted) and component_type ("receive", "rule") are copied; db must outlive the store. */
tsdb_store_t *tsdb_store_new(const char *name, db_t *db, const labels_t *ext, const char *component_type);
store_t *tsdb_store_base(tsdb_store_t *s);
void tsdb_store_free(tsdb_store_t *s);
/* The external labels (arena copy). */
labels_t tsdb_store_external_labels(tsdb_store_t *s, arena_t *a);

#endif
