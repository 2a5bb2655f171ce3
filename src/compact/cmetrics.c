/*
 * cmetrics.c — compactor metrics and counted marks (see cmetrics.h).
 */
#include "compact/cmetrics.h"

#include <pthread.h>

#include "base/alloc.h"
#include "base/log.h"

cmetrics_t cmetrics;

static void init(void)
{
	cmetrics_t *m = &cmetrics;
	m->iterations = metrics_counter("thanos_compact_iterations_total",
	                                "Total number of iterations that were executed successfully.", NULL);
	m->halted = metrics_gauge(
	    "thanos_compact_halted",
	    "Set to 1 if the compactor halted due to an unexpected error (Strata never halts).", NULL);
	static const double ib[] = {1, 10, 60, 300, 900, 1800, 3600, 7200, 14400, 28800};
	m->iteration_duration =
	    metrics_histogram("thanos_compact_iteration_duration_seconds",
	                      "Duration of compaction iterations (sync, GC, compaction, retention, cleanup).",
	                      NULL, ib, ARRAY_LEN(ib));
	m->group_compactions = metrics_counter(
	    "thanos_compact_group_compactions_total",
	    "Total number of group compaction attempts that resulted in a new block.", "resolution");
	m->group_runs_started = metrics_counter("thanos_compact_group_compaction_runs_started_total",
	                                        "Total number of group compaction attempts.", "resolution");
	m->group_runs_completed =
	    metrics_counter("thanos_compact_group_compaction_runs_completed_total",
	                    "Total number of group completed compaction runs.", "resolution");
	m->group_failures = metrics_counter("thanos_compact_group_compactions_failures_total",
	                                    "Total number of failed group compactions.", "resolution");
	m->group_vertical =
	    metrics_counter("thanos_compact_group_vertical_compactions_total",
	                    "Total number of group compaction attempts that resulted in a new block based on "
	                    "overlapping blocks.",
	                    "resolution");
	m->group_duration =
	    metrics_histogram("thanos_compact_group_compaction_duration_seconds",
	                      "Duration of one compaction (download, merge, verify, upload, marks).",
	                      "resolution", ib, ARRAY_LEN(ib));
	m->marked = metrics_counter("thanos_compact_blocks_marked_total",
	                            "Total number of blocks marked in compactor.", "marker,reason");
	m->gc_blocks = metrics_counter("thanos_compact_garbage_collected_blocks_total",
	                               "Total number of blocks marked for deletion by compactor.", NULL);
	m->cleaned = metrics_counter("thanos_compact_blocks_cleaned_total",
	                             "Total number of blocks deleted in compactor.", NULL);
	m->cleanup_failures =
	    metrics_counter("thanos_compact_block_cleanup_failures_total",
	                    "Failures encountered while deleting blocks in compactor.", NULL);
	m->partial_deletions =
	    metrics_counter("thanos_compact_aborted_partial_uploads_deletion_attempts_total",
	                    "Total number of started deletions of blocks that are assumed aborted and "
	                    "only partially uploaded.",
	                    NULL);
	m->todo_compactions =
	    metrics_gauge("thanos_compact_todo_compactions", "The number of planned compactions.", "group");
	m->todo_compaction_blocks = metrics_gauge("thanos_compact_todo_compaction_blocks",
	                                          "The number of blocks planned to be merged.", "group");
	m->todo_deletion_blocks =
	    metrics_gauge("thanos_compact_todo_deletion_blocks",
	                  "The number of blocks that have crossed their deletion delay.", NULL);
	m->todo_downsample_blocks = metrics_gauge("thanos_compact_todo_downsample_blocks",
	                                          "The number of blocks to be downsampled.", "group");
	m->skipped = metrics_gauge("strata_compact_skipped_blocks",
	                           "Blocks the last compaction iteration left alone, by reason.", "reason");
	m->downsamples = metrics_counter("thanos_compact_downsample_total",
	                                 "Total number of downsampling attempts.", "resolution");
	m->downsample_failures =
	    metrics_counter("thanos_compact_downsample_failures_total",
	                    "Total number of failed downsampling attempts.", "resolution");
	m->downsample_duration =
	    metrics_histogram("thanos_compact_downsample_duration_seconds", "Duration of downsample runs",
	                      "resolution", ib, ARRAY_LEN(ib));
	metric_set(metric_with(m->halted), 0);
}

void cmetrics_init(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, init);
}

int cmetrics_mark(bucket_t *b, const char *ulid, marker_kind_t kind, const char *reason, const char *details,
                  err_t *err)
{
	cmetrics_init();
	bool created = false;
	int rc = marker_write(b, ulid, kind, kind == MARKER_DELETION ? NULL : reason, details, &created, err);
	if (rc)
		return err_wrap(err, "mark block %s with %s", ulid, marker_file(kind));
	if (created) {
		metric_inc(metric_with(cmetrics.marked, marker_file(kind), reason ? reason : ""));
		log_info("marked block", "block", ulid, "marker", marker_file(kind), "reason", reason,
		         "details", details);
	}
	return 0;
}
