/*
 * blockmerge.h — compaction of TSDB blocks: a streaming k-way merge of several blocks into one
 * (reference prometheus.md §3.2, thanos.md §5.3, §5.4).
 *
 * The inputs' series sections are walked in file order, which is label order, one series entry at a
 * time; series with equal labels in several inputs are merged into one. Per series, the chunks of
 * all inputs are sorted by start time and grouped into runs of chunks that overlap in time:
 *   - a run of one chunk with no deletion in it is copied through unchanged (its bytes, CRC-checked
 *     on read, go to the output's chunk files as they are);
 *   - a run where chunks meet (vertical compaction: replicas, overlapping blocks, or out-of-order
 *     chunks of one block) is decoded, its samples merged by the merger, and re-encoded as XOR chunks
 *     of at most 120 samples;
 *   - a chunk with deleted samples (input tombstones, or the deletions callback) is re-encoded
 *     without them; a chunk wholly deleted is dropped, a series left without chunks too.
 * The output is written as it goes (block_writer_add_chunks), so memory is one series of every input
 * (its chunk metas and re-encoded chunk bytes) plus the writer's symbol table and bounded series
 * and postings buffers (block.h) — never the size of the blocks.
 *
 * The merger decides what happens to samples from several inputs in one run: NULL gives the
 * one-to-one merge (samples of all inputs interleaved, one sample kept per timestamp, the first
 * input's). The compactor passes the querier's deduplication (store/dedup.h) through it.
 *
 * Errors say which input failed (result.bad_input) when its data cannot be read (corrupt index,
 * chunk CRC mismatch, chunk times outside the block or reversed), so a caller can set that block
 * aside and go on; other errors (writing the output) leave bad_input at -1. On any error the
 * output's temp directory is removed.
 *
 * Thread-safety: one merge per call; inputs are only read (several merges may share them).
 */
#ifndef STRATA_TSDB_BLOCKMERGE_H
#define STRATA_TSDB_BLOCKMERGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "model/labels.h"
#include "model/series.h"
#include "tsdb/block.h"
#include "tsdb/meta.h"

typedef struct blockmerge_merger blockmerge_merger_t;
struct blockmerge_merger {
	/* An iterator over the samples of its[0..n) (n >= 2, each ascending, in input order) merged into
	 * one ascending stream; valid until the next call. */
	sample_iter_t *(*merge)(blockmerge_merger_t *m, sample_iter_t *const *its, size_t n);
};

/* Deleted intervals (inclusive) of a series, e.g. `tools bucket rewrite`'s matchers and intervals:
 * return the count and set *out (valid until the next call); 0 for none. */
typedef size_t (*blockmerge_deletions_fn)(void *arg, const labels_t *ls, const tomb_interval_t **out);

typedef struct blockmerge_opts {
	blockmerge_merger_t *merger;       /* NULL: one-to-one */
	blockmerge_deletions_fn deletions; /* NULL: none beyond the inputs' tombstones */
	/* Per input, its stream (e.g. one replica's blocks, which follow each other in time): a stream's
	 * chunks are one lane of a run, and a series found in several streams is merged as a whole
	 * (all XOR), so the merger (dedup) sees each replica as one sample stream across block
	 * boundaries. NULL: every input is its own lane, runs are overlapping chunks only. */
	const size_t *streams;
	void *deletions_arg;
	block_writer_opts_t writer; /* mint/maxt 0: the union of the inputs' ranges */
	/* Called every `progress_every` series written (0 = never); returning false stops the merge
	 * with ERR_CANCELED (nothing is left behind). */
	bool (*progress)(void *arg, uint64_t series);
	void *progress_arg;
	uint64_t progress_every;
} blockmerge_opts_t;

typedef struct blockmerge_result {
	int bad_input;  /* index of the input whose data failed to read, -1 */
	bool empty;     /* no sample left: nothing was written */
	char dir[4096]; /* the new block's directory (when not empty) */
	uint64_t series, samples, chunks;
	uint64_t chunks_copied, chunks_reencoded; /* output chunks passed through / written anew */
} blockmerge_result_t;

/* Merge in[0..n) into a new block under parent_dir. meta_in supplies level, sources, parents and
 * the thanos section (labels, resolution, source); ULID, range and stats are set here. */
int blockmerge_run(block_t *const *in, size_t n, const char *parent_dir, const block_meta_t *meta_in,
                   const blockmerge_opts_t *opts, blockmerge_result_t *res, err_t *err);

/* Checks of a finished block (the compactor runs it on its output before uploading): the index
 * opens, series are sorted and unique with sorted labels, every chunk lies in the block's
 * [minTime, maxTime), chunks of a series are in order and do not overlap, every chunk reference
 * resolves with a good CRC, and the stats in meta.json match. ERR_CORRUPT naming what is wrong. */
int blockmerge_verify(const char *dir, err_t *err);

#endif
