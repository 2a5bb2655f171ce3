/*
 * planner.h — which blocks of one stream to compact next (reference thanos.md §5.2, prometheus.md
 * §3.2): Thanos's Prometheus-TSDB-like planner, as a pure function over block descriptions.
 *
 * planner_plan, over a stream's blocks sorted by minTime:
 *   1. blocks with a no-compact mark take no part;
 *   2. overlaps first: the first run of blocks overlapping in time (vertical compaction);
 *   3. otherwise, the newest block (highest minTime) left out, for each range after the first
 *      (8h, 2d, 14d with the default levels): the blocks split into buckets aligned to the range (a
 *      block that does not fit in its bucket is skipped); a bucket of two or more blocks, none marked
 *      failed, is compacted when it spans the whole range or ends before the newest remaining block
 *      starts (it can no longer grow); no-compact blocks split a bucket, the first run of two or
 *      more is returned;
 *   4. otherwise, from the newest back while blocks span at least the middle range, the first block
 *      with more than 5% tombstones per series is rewritten alone.
 * planner_overlaps finds step 2's run alone (the compactor reports it when vertical compaction is
 * off). planner_progress simulates planning to completion (each plan merged into one block) to
 * count the compactions and blocks still to do.
 */
#ifndef STRATA_COMPACT_PLANNER_H
#define STRATA_COMPACT_PLANNER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct planner_block {
	int64_t mint, maxt; /* [mint, maxt) */
	bool no_compact;    /* no-compact-mark.json */
	bool failed;        /* compaction.failed */
	uint64_t num_series, num_tombstones;
} planner_block_t;

/* Thanos's default ranges: 2h, 8h, 2d, 14d (levels 1-4). */
#define PLANNER_MAX_LEVEL 4
extern const int64_t planner_default_ranges[PLANNER_MAX_LEVEL];

/* b[0..n) sorted by mint; ranges[0..nranges) ascending. Writes the indexes of the blocks to compact
 * (ascending) to out (room for n) and returns their count: 0 when there is nothing to do, 1 only for
 * a tombstone rewrite. */
size_t planner_plan(const planner_block_t *b, size_t n, const int64_t *ranges, size_t nranges, size_t *out);
/* The first run of overlapping blocks (no-compact ones left out), as planner_plan's step 2. */
size_t planner_overlaps(const planner_block_t *b, size_t n, size_t *out);
/* Compactions and input blocks a complete planning of b[0..n) would take. */
void planner_progress(const planner_block_t *b, size_t n, const int64_t *ranges, size_t nranges,
                      size_t *compactions, size_t *blocks);

#endif
