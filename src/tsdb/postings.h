/*
 * postings.h — sorted series-ID lists and their set operations (arena-allocated results).
 */
#ifndef STRATA_TSDB_POSTINGS_H
#define STRATA_TSDB_POSTINGS_H

#include <stddef.h>
#include <stdint.h>

#include "base/arena.h"

typedef struct postings {
	uint32_t *v; /* ascending, unique */
	size_t n;
} postings_t;

/* Intersection of a and b (galloping when sizes differ a lot). */
postings_t postings_intersect(arena_t *a, postings_t x, postings_t y);
/* Union of lists[0..n). */
postings_t postings_merge(arena_t *a, const postings_t *lists, size_t n);
/* x minus y. */
postings_t postings_subtract(arena_t *a, postings_t x, postings_t y);

#endif
