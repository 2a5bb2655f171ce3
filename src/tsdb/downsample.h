/*
 * downsample.h — Thanos's downsampling (reference thanos.md §4.1-§4.3): raw series into 5m aggregate
 * chunks, 5m aggregate chunks into 1h ones, one series at a time, and a whole block streamed through
 * it. The output chunks use the aggregate encoding (tsdb/aggr.h), so Thanos reads them.
 *
 * Raw → R (downsample_raw): NaN samples (stale markers included) are dropped; the series is cut into
 * ceil-sized batches (their number from the block's range, R and how full the range is: at most
 * ~140 points per chunk), each batch extended to the end of the window its last sample falls in
 * (window end w(t) = t - t mod R + R - 1). Per window one point at w (capped to the batch's last
 * timestamp): count, sum, min, max, and counter = a running total that adds each delta and, after a
 * drop (a reset), the new raw value. The counter sub-chunk also starts with the batch's first raw
 * sample and ends with its last raw value repeated at the last window's timestamp, which is how a
 * reader sees a reset between chunks.
 * 5m → 1h (downsample_aggr): along chunk boundaries (a batch of whole input chunks per output chunk):
 * count = sum of counts, sum = sum of sums, min of mins, max of maxes per 1h window; the counter is
 * rebuilt from the input counters through the apply-counter-resets logic, with the same first/last
 * raw value framing.
 *
 * downsample_block walks a block's series in order (tsdb/block.h block_walk: memory is one series,
 * never the block), applies the block's tombstones, and writes a new block with the input's range.
 */
#ifndef STRATA_TSDB_DOWNSAMPLE_H
#define STRATA_TSDB_DOWNSAMPLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "base/str.h"
#include "model/series.h"
#include "tsdb/block.h"

#define DOWNSAMPLE_RES_RAW 0
#define DOWNSAMPLE_RES_5M  (5 * 60 * 1000ll)
#define DOWNSAMPLE_RES_1H  (60 * 60 * 1000ll)
/* Blocks spanning at least this long are downsampled to the next resolution (§4.1). */
#define DOWNSAMPLE_RANGE_5M (40 * 3600 * 1000ll)
#define DOWNSAMPLE_RANGE_1H (10 * 24 * 3600 * 1000ll)
/* Raw samples are assumed one a minute when sizing chunks (as Thanos does). */
#define DOWNSAMPLE_RAW_STEP (60 * 1000ll)

/* The chunks one series downsamples into: chunk data in `data`, chunks[i].data points there. */
typedef struct downsample_out {
	buf_t data;
	chunk_t *chunks;
	size_t n, cap;
	size_t *off; /* offsets of the chunks' data in `data` (chunks[i].data is fixed up at the end) */
} downsample_out_t;

void downsample_out_init(downsample_out_t *o);
void downsample_out_release(downsample_out_t *o);

/* How many chunks a series of `count` samples over the block range [mint, maxt] at in_res becomes at
 * out_res (Thanos's targetChunkCount). */
int downsample_target_chunks(int64_t mint, int64_t maxt, int64_t in_res, int64_t out_res, size_t count);

/* t/v: a raw series (ascending). block_mint/maxt: the block's range (chunk sizing). Replaces o's
 * content. */
void downsample_raw(const int64_t *t, const double *v, size_t n, int64_t block_mint, int64_t block_maxt,
                    int64_t res, downsample_out_t *o);
/* chunks: a series' aggregate chunks at in_res (sorted by mint). ERR_CORRUPT for unreadable chunks. */
int downsample_aggr(const chunk_t *chunks, size_t n, int64_t block_mint, int64_t block_maxt, int64_t in_res,
                    int64_t res, downsample_out_t *o, err_t *err);

typedef struct downsample_result {
	bool empty;     /* no series had samples: nothing written */
	char dir[4096]; /* the new block's directory */
	uint64_t series, samples_in, samples_out, chunks;
} downsample_result_t;

/* Downsample block `in` (its resolution must be below res) into a new block under parent_dir with
 * meta_in's compaction and thanos sections (the caller sets resolution and source). progress (may be
 * NULL) is called every 1024 series; returning false stops with ERR_CANCELED. Errors reading the
 * input are ERR_CORRUPT naming the block. */
int downsample_block(block_t *in, const char *parent_dir, int64_t res, const block_meta_t *meta_in,
                     bool (*progress)(void *arg, uint64_t series), void *progress_arg,
                     downsample_result_t *out, err_t *err);

#endif
