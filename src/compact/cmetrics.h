/*
 * cmetrics.h — the compactor's metric families (Thanos's names, see compactor.h), registered once per
 * process, and marking a block with its count in thanos_compact_blocks_marked_total.
 */
#ifndef STRATA_COMPACT_CMETRICS_H
#define STRATA_COMPACT_CMETRICS_H

#include <stdbool.h>

#include "base/err.h"
#include "base/metrics.h"
#include "block/marker.h"
#include "objstore/bucket.h"

typedef struct cmetrics {
	metric_t *iterations, *halted, *iteration_duration;
	metric_t *group_compactions, *group_runs_started, *group_runs_completed, *group_failures,
	    *group_vertical, *group_duration;
	metric_t *marked, *gc_blocks, *cleaned, *cleanup_failures, *partial_deletions;
	metric_t *todo_compactions, *todo_compaction_blocks, *todo_deletion_blocks, *todo_downsample_blocks;
	metric_t *skipped;
	metric_t *downsamples, *downsample_failures, *downsample_duration;
} cmetrics_t;

extern cmetrics_t cmetrics;

/* Registers the families (idempotent, thread-safe). */
void cmetrics_init(void);

/* marker_write, then thanos_compact_blocks_marked_total{marker,reason} when a mark was created and a
 * log line saying why. reason: the no-compact/no-downsample reason, or the deletion's cause
 * ("compacted", "retention", "duplicate", "manual", ...). */
int cmetrics_mark(bucket_t *b, const char *ulid, marker_kind_t kind, const char *reason, const char *details,
                  err_t *err);

#endif
