/*
 * inmem.h — an in-memory store_t: series added as (labels, samples), kept as XOR chunks of at most
 * XOR_SAMPLES_PER_CHUNK (120) samples, served sorted with the store's external labels merged in.
 * Used by the acceptance tests, the gRPC test server and benchmarks; it is also the reference
 * implementation of store.h semantics (external-label matchers, trimming, skip_chunks, limit).
 *
 * Fault injection for partial-response tests: inmem_store_set_fail() makes series/label calls (not info) fail
 * with ERR_UNAVAILABLE (at the call, or after n series have been returned by next()).
 * Not thread-safe; add all series before querying from several places.
 */
#ifndef STRATA_STORE_INMEM_H
#define STRATA_STORE_INMEM_H

#include "store/store.h"

typedef struct inmem_store inmem_store_t;

/* name and ext are copied. ext must be sorted (labels_normalize). */
inmem_store_t *inmem_store_new(const char *name, const labels_t *ext);
/* The store_t view (freed by store_free or inmem_store_free). */
store_t *inmem_store_base(inmem_store_t *s);
void inmem_store_free(inmem_store_t *s);
/* Add a series (labels sorted; copied) with samples in strictly increasing time order.
 * ERR_INVALID if a series with the same labels exists or timestamps are not increasing. */
int inmem_store_add(inmem_store_t *s, const labels_t *ls, const int64_t *t, const double *v, size_t n, err_t *err);
/* The component type info() reports (copied; NULL = none, the default). */
void inmem_store_set_component(inmem_store_t *s, const char *component_type);
/* fail_after < 0: healthy. 0: calls fail at once. n > 0: series sets fail after n series. */
void inmem_store_set_fail(inmem_store_t *s, int fail_after);
size_t inmem_store_series_count(const inmem_store_t *s);

#endif
