/*
 * dedup.h — merging the sample streams of one series coming from several sources.
 *
 * DEDUP_PENALTY is Thanos's penalty algorithm for HA replicas (reference thanos.md §6.4),
 * generalised from its pairwise fold to N replicas at once (identical for N = 2): every replica is
 * advanced to the first sample at or after last_t + 1 + its penalty; the earliest wins (ties go to the
 * lower index); every other replica still holding samples gets penalty 2 * (t_chosen - last_t), or
 * 5000 ms before the first sample; the chosen one's penalty is reset. So the output sticks to one
 * replica and switches only across a gap larger than about two scrape intervals.
 * With counter adjustment on (the enclosing function is rate/increase/...; store_func_is_counter),
 * switching to a replica whose value is below the last emitted one adds the difference to that
 * replica as a persistent offset, so a switch never looks like a counter reset.
 * DEDUP_CHAIN is the union of samples with identical timestamps collapsed (first source wins): the
 * same series served by several stores, e.g. over adjacent time ranges.
 *
 * No allocation: the caller provides the cursor array (one per source, DEDUP_BATCH samples of
 * buffer each). seek() walks forward sample by sample so the gap logic sees every sample.
 */
#ifndef STRATA_STORE_DEDUP_H
#define STRATA_STORE_DEDUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model/series.h"

#define DEDUP_BATCH 64
#define DEDUP_INITIAL_PENALTY_MS 5000

typedef enum dedup_mode { DEDUP_PENALTY, DEDUP_CHAIN } dedup_mode_t;

typedef struct dedup_cursor {
	sample_iter_t *it;
	int64_t t[DEDUP_BATCH];
	double v[DEDUP_BATCH];
	int pos, n;
	bool done;
	int64_t penalty;
	double offset; /* counter adjustment */
} dedup_cursor_t;

typedef struct dedup_iter {
	sample_iter_t base;
	dedup_cursor_t *c;
	size_t n;
	dedup_mode_t mode;
	bool counter;
	bool have_last;
	int64_t last_t;
	double last_v;
	size_t cur; /* replica of the last emitted sample */
	bool have_pending;
	int64_t pt;
	double pv;
} dedup_iter_t;

/* its[0..n) are the sources (ascending time each); cursors[0..n) storage owned by the caller. */
void dedup_iter_init(dedup_iter_t *d, dedup_cursor_t *cursors, sample_iter_t *const *its, size_t n,
		     dedup_mode_t mode, bool counter);

#endif
