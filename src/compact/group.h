/*
 * group.h — one stream of blocks (resolution + external labels without replica labels) and its
 * compaction: plan (compact/planner.h), download, merge (tsdb/blockmerge.h), verify, upload, mark
 * (reference thanos.md §5.2-§5.4). The compactor (compactor.h) runs groups, several at once.
 *
 * group_compact plans and compacts until the planner has nothing left. One compaction:
 *   - downloads its inputs into <work_dir>/<group key>/<ULID>/ (up to fetch_concurrency at once);
 *   - merges them into one block there (chunks copied through where series do not overlap;
 *     overlapping blocks merged vertically with the deduplication mode); level max+1, the union of
 *     sources, parents, the stream's labels and resolution, source "compactor", index_stats;
 *   - verifies it (blockmerge_verify), uploads it (chunks, index, meta.json last), and only then
 *     marks the inputs for deletion; the local copies are removed.
 * A block that cannot be opened or read gets a no-compact mark (reason corrupt-block, the error as
 * details) and planning goes on without it. Overlaps: merged vertically (raw data), or reported and
 * left alone when vertical compaction is off, or marked no-compact when the blocks are downsampled.
 * A plan whose inputs' index files reach 85% of max_index_size gets its biggest input marked
 * no-compact (index-size-exceeding) and is planned again.
 *
 * Not thread-safe per group; different groups may compact at once.
 */
#ifndef STRATA_COMPACT_GROUP_H
#define STRATA_COMPACT_GROUP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "base/workers.h"
#include "block/fetcher.h"
#include "objstore/bucket.h"
#include "tsdb/meta.h"

typedef struct group_block {
	block_meta_t meta; /* owned */
	bool no_compact;   /* marked, or set aside this iteration */
} group_block_t;

typedef struct group {
	char key[64]; /* "<resolution>@<labels hash>" */
	int64_t resolution;
	block_meta_t labels; /* only labels/nlabels used: the stream's external labels */
	group_block_t *b;    /* sorted by mint */
	size_t n, cap;
} group_t;

typedef struct group_env {
	bucket_t *bkt;
	const char *work_dir;     /* <data_dir>/compact */
	workers_t *download_pool; /* NULL: one block at a time */
	const int64_t *ranges;
	size_t nranges;
	bool vertical;
	int dedup_mode; /* store/dedup.h dedup_mode_t for overlapping samples */
	int64_t max_index_size;
	atomic_bool *stop;
} group_env_t;

typedef struct group_result {
	size_t compactions, vertical;
	size_t marked_no_compact, marked_deletion;
	size_t skipped_overlaps; /* blocks left alone: overlapping with vertical compaction off */
} group_result_t;

/* The streams of a fetch list's selected blocks, sorted by key; a block with a no-compact mark is
 * kept (the planner needs it to avoid gaps) but flagged. */
void group_list(const fetch_list_t *l, group_t **out, size_t *n);
void group_list_free(group_t *g, size_t n);

/* Plan and compact until nothing is left (see above). Returns 0, ERR_CANCELED when env->stop was
 * set, or the error that stopped the group (bucket or disk failures: retried by the next
 * iteration). res counts what was done either way. */
int group_compact(group_t *g, const group_env_t *env, group_result_t *res, err_t *err);

/* Compactions and blocks still to do (planner_progress over the group's blocks). */
void group_progress(const group_t *g, const group_env_t *env, size_t *compactions, size_t *blocks);

#endif
