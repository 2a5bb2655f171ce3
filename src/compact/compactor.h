/*
 * compactor.h — `strata compact`'s work: one iteration of Thanos's compactor main loop (reference
 * thanos.md §5.1-§5.5, §3.3), made so that it never halts.
 *
 * compactor_run does, in order:
 *   1. sync: the meta fetcher (block/fetcher.h) with the filters time range, replica-label removal,
 *      selector relabelling, consistency delay, deletion marks and duplicate sources;
 *   2. GC: blocks whose sources another block of their stream already holds (left behind by a
 *      compaction that finished or crashed after its upload) are marked for deletion;
 *   3. compaction: blocks grouped by stream (resolution + external labels without replica labels);
 *      up to `concurrency` groups at once, each planned (compact/planner.h) and compacted until
 *      nothing is left to do. One compaction downloads its inputs into <data_dir>/compact/, merges
 *      them (tsdb/blockmerge.h: streaming; overlapping blocks merged vertically with the configured
 *      deduplication, store/dedup.h), verifies the output, uploads it (meta.json last) and only then
 *      marks the inputs for deletion;
 *   4. downsampling (compact/downsampler.h), unless disabled: a pass raw -> 5m, a fresh sync, a pass
 *      5m -> 1h;
 *   5. retention per resolution (only when compaction and downsampling succeeded): blocks whose
 *      maxTime is older than the retention are marked for deletion;
 *   6. cleanup: blocks marked for deletion longer than delete_delay ago are deleted (meta.json first),
 *      and partial uploads (no meta.json) older than 48h.
 * A crash at any point leaves a bucket that reads as before: an upload without meta.json is
 * invisible; an uploaded output whose inputs are not marked yet makes them duplicates, which the next
 * sync hides and GC marks.
 *
 * Never halts: a block that cannot be read (corrupt chunk, unreadable index, failed download that is
 * not transient) gets a no-compact-mark.json with the reason and the error, and its stream goes on
 * without it; overlapping blocks are merged vertically unless vertical compaction is off, in which
 * case they are reported (log, metric) and left alone while the rest of the stream is compacted;
 * overlapping downsampled blocks are marked no-compact (they cannot be merged). thanos_compact_halted
 * exists and is always 0. A failed iteration (bucket errors) is retried by the next one.
 *
 * Metrics (Thanos's names): thanos_compact_iterations_total, thanos_compact_halted,
 * thanos_compact_group_compactions_total, _group_compaction_runs_started_total,
 * _group_compaction_runs_completed_total, _group_compactions_failures_total,
 * _group_vertical_compactions_total, thanos_compact_blocks_marked_total{marker,reason},
 * thanos_compact_garbage_collected_blocks_total, thanos_compact_blocks_cleaned_total,
 * thanos_compact_block_cleanup_failures_total,
 * thanos_compact_aborted_partial_uploads_deletion_attempts_total, thanos_compact_todo_compactions,
 * _todo_compaction_blocks, _todo_deletion_blocks, thanos_compact_iteration_duration_seconds,
 * thanos_compact_group_compaction_duration_seconds, and strata_compact_skipped_blocks{reason} (blocks the
 * last iteration left alone, by reason).
 *
 * Threading: one compactor_run at a time; compactor_stop may be called from any thread and makes a
 * running iteration stop at its next safe point (between series of a merge at the latest) with
 * ERR_CANCELED, leaving nothing half-visible in the bucket.
 */
#ifndef STRATA_COMPACT_COMPACTOR_H
#define STRATA_COMPACT_COMPACTOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/arena.h"
#include "base/err.h"
#include "model/labels.h"
#include "objstore/bucket.h"

/* Retention per resolution. */
enum { COMPACTOR_RES_RAW, COMPACTOR_RES_5M, COMPACTOR_RES_1H, COMPACTOR_RES_N };

/* Partial uploads older than this are deleted (Thanos's PartialUploadThresholdAge). */
#define COMPACTOR_PARTIAL_UPLOAD_AGE_MS (48 * 3600 * 1000ll)

typedef struct compactor_config {
	bucket_t *bkt;        /* not owned */
	const char *data_dir; /* scratch: compact/ (inputs and output), meta-syncer/ (meta.json cache) */
	int64_t consistency_delay_ms;
	int64_t delete_delay_ms;
	int64_t retention_ms[COMPACTOR_RES_N]; /* 0 = keep forever */
	char *const *replica_labels;           /* --deduplication.replica-label */
	size_t nreplica_labels;
	const char *dedup_func; /* "" one-to-one, or a store/dedup.h mode: penalty, penalty-thanos, chain */
	bool vertical;          /* merge overlapping blocks of a stream */
	int concurrency;        /* groups compacted at once; 0 = 1 */
	int fetch_concurrency;  /* blocks downloaded at once; 0 = 1 */
	int meta_fetch_concurrency;
	int max_level;              /* compaction levels (ranges 2h, 8h, 2d, 14d); 0 = 4 */
	int64_t min_time, max_time; /* blocks overlapping [min_time, max_time] */
	bool (*select)(void *arg, const labels_t *ext); /* --selector.relabel-config; NULL = all */
	void *select_arg;
	int64_t max_index_size; /* bytes: plans whose inputs' indexes reach 85% of it are split; 0 = 64 GiB */
	bool downsampling_disable;
	int downsample_concurrency; /* blocks downsampled at once; 0 = 1 */
} compactor_config_t;

typedef struct compactor compactor_t;

/* Validates the config (dedup_func, max_level): ERR_INVALID naming the flag. Strings are copied. */
int compactor_new(compactor_t **out, const compactor_config_t *cfg, err_t *err);
/* compactor_new's checks of cfg without its effects (no directory, no thread): ERR_INVALID naming the
 * flag, or 0 (`strata compact --check-config`). */
int compactor_check_config(const compactor_config_t *cfg, err_t *err);
void compactor_free(compactor_t *c);
/* One iteration (see above). 0 when every step succeeded; otherwise the first error (the steps
 * after a failed one that do not depend on it still run). */
int compactor_run(compactor_t *c, err_t *err);
/* Cleanup alone (step 6, without retention): what `--compact.cleanup-interval` runs between
 * iterations. Not concurrently with compactor_run. */
int compactor_cleanup(compactor_t *c, err_t *err);
/* Thread-safe: the ULIDs of the blocks the latest meta sync selected (after the time, selector,
 * consistency-delay, deletion-mark and duplicate filters; an iteration's last sync is after its
 * retention marks), allocated in a: the block viewer's "loaded" view. 0 before the first sync. */
size_t compactor_block_ids(compactor_t *c, arena_t *a, const char ***ids);
/* Thread-safe: make the running (or next) iteration stop at its next safe point. */
void compactor_stop(compactor_t *c);

typedef struct compactor_stats {
	size_t compactions, vertical, marked_no_compact, marked_deletion, gc, deleted, partial_deleted;
	size_t skipped, downsampled;
} compactor_stats_t;
/* Totals since compactor_new. */
void compactor_stats(compactor_t *c, compactor_stats_t *out);

#endif
