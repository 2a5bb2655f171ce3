/*
 * downsampler.h — the compactor's downsampling passes (reference thanos.md §4.1, §5.1 step 4), shared
 * with `strata tools bucket downsample`.
 *
 * A pass at resolution res takes the selected blocks of a fetch list that are one resolution finer
 * (raw for 5m, 5m for 1h), span at least 40h (5m) or 10 days (1h), carry no no-downsample-mark.json,
 * and whose sources are not all covered by blocks already at res (a block is never downsampled
 * twice). Up to `concurrency` blocks at once, each is downloaded into <work_dir>/<ULID>/, downsampled
 * series by series (tsdb/downsample.h), verified, and uploaded (meta.json last) with the input's range,
 * compaction section and labels, thanos.downsample.resolution = res and source "compactor". A block
 * that cannot be read gets a no-downsample mark with the error and the pass goes on; bucket errors
 * fail the pass (the next iteration retries). Metrics: thanos_compact_downsample_total,
 * _downsample_failures_total, _downsample_duration_seconds{resolution}, and
 * thanos_compact_todo_downsample_blocks.
 */
#ifndef STRATA_COMPACT_DOWNSAMPLER_H
#define STRATA_COMPACT_DOWNSAMPLER_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "base/workers.h"
#include "block/fetcher.h"
#include "objstore/bucket.h"

typedef struct downsampler_env {
	bucket_t *bkt;
	const char *work_dir; /* scratch, emptied by each block */
	workers_t *pool;      /* NULL: one block at a time */
	atomic_bool *stop;    /* may be NULL */
} downsampler_env_t;

/* Blocks of l a pass at res would downsample. */
size_t downsampler_todo(const fetch_list_t *l, int64_t res);
/* One pass (see above); *done counts the blocks written. */
int downsampler_pass(const downsampler_env_t *env, const fetch_list_t *l, int64_t res, size_t *done,
                     err_t *err);

#endif
