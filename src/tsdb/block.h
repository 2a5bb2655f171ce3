/*
 * block.h — persisted TSDB blocks: writer (series + samples in, complete block dir out) and reader
 * (a queryable_t over one block).
 *
 * Writer: block_writer_new creates <parent>/<ULID>.tmp-for-creation/; block_writer_add_series takes
 * one series' samples (ascending timestamps), cuts XOR chunks exactly as Prometheus' head does
 * (120-sample target estimated at the 30th sample, 240 cap, never across a chunk_range-aligned
 * boundary) and streams them to chunks/. Series may come in any order but sorted input gives chunk
 * files byte-identical to Prometheus'. block_writer_finish writes index, meta.json, tombstones,
 * fsyncs and renames to <parent>/<ULID>/. meta.json's thanos.index_stats get the largest series entry
 * and chunk record written.
 * Memory is independent of the number of samples and series: one series' chunks while it is
 * encoded, the distinct label names and values (the index's symbol table), and at most mem_limit
 * bytes of series (labels + chunk metas); beyond that they are sorted and spilled as a run to an
 * unlinked temp file in the temp dir (series.spill-XXXXXX: it has no name, so nothing is left
 * behind on success, failure or crash) and finish merges the runs into the index writer, which
 * bounds its postings the same way (index.h). The output does not depend on mem_limit.
 *
 * Reader: block_open mmaps index and chunks (no full read). The queryable's select returns series
 * sorted by labels, chunks overlapping [mint, maxt] and samples trimmed to it. Tombstones are
 * applied: chunks wholly inside a deleted interval are dropped (and series left without chunks),
 * samples in deleted intervals are skipped, and a series with deletions inside its remaining
 * chunks reports no raw chunks (chunks() = -1) so consumers read its samples. A block is read-only
 * after open; one series set per thread.
 */
#ifndef STRATA_TSDB_BLOCK_H
#define STRATA_TSDB_BLOCK_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "model/labels.h"
#include "model/series.h"
#include "tsdb/chunkfile.h"
#include "tsdb/index.h"
#include "tsdb/meta.h"

#define BLOCK_DEFAULT_DURATION (2 * 3600 * 1000ll)

typedef struct block_writer block_writer_t;

typedef struct block_writer_opts {
	int64_t chunk_range;   /* ms; chunk cut boundary (Prometheus head chunk range); 0 = 2h */
	uint64_t segment_size; /* 0 = 512 MiB */
	size_t mem_limit;      /* bytes of series and of postings held before spilling; 0 = 4 MiB */
	/* meta.json's minTime/maxTime: when meta_maxt > meta_mint, these (a block cut from a head covers
	 * its whole range, as Prometheus writes it) instead of the data's first sample and last + 1 */
	int64_t meta_mint, meta_maxt;
} block_writer_opts_t;

#define BLOCK_WRITER_MEM_DEFAULT (4u << 20)

int block_writer_new(block_writer_t **bw, const char *parent_dir, const block_writer_opts_t *opts, err_t *err);
/* Samples must have strictly increasing timestamps; n may be 0 (series skipped). */
int block_writer_add_series(block_writer_t *bw, const labels_t *ls, const int64_t *t, const double *v, size_t n,
			    err_t *err);
/* A series whose chunks are already encoded (sorted by mint, not overlapping): the records are
 * copied to chunks/ as they are (compaction passes chunks through this way). nsamples is the
 * series' sample count for meta.json's stats. */
int block_writer_add_chunks(block_writer_t *bw, const labels_t *ls, const chunk_t *chks, size_t n, uint64_t nsamples,
			    err_t *err);
/* Writes the block. meta_in (may be NULL) supplies the thanos section and compaction info; ulid, times,
 * stats are computed. On success out_dir (if not NULL, >= 4096 bytes) gets the final path. Frees bw. */
int block_writer_finish(block_writer_t *bw, const block_meta_t *meta_in, char *out_dir, err_t *err);
void block_writer_abort(block_writer_t *bw); /* removes the temp dir, frees bw */
/* Runs of series spilled to the temp file so far (for tests and benchmarks). */
size_t block_writer_spilled_runs(const block_writer_t *bw);

typedef struct block {
	queryable_t q;
	char *dir;
	block_meta_t meta;
	index_reader_t ix;
	chunkfile_reader_t cf;
	tombstones_t tomb; /* deleted intervals, applied by select */
} block_t;

int block_open(block_t **b, const char *dir, err_t *err);
void block_close(block_t *b);

/* A block's series in file order (= label order), one at a time with its chunk metas, for readers of
 * whole blocks (compaction, downsampling, checks). The mapped index and chunk bytes behind the walk
 * are dropped from the process's resident memory as it goes, so RSS stays flat in block size (pages
 * read again, e.g. chunks laid out out of order, simply come back from the file). */
typedef struct block_walk {
	block_t *b;
	uint32_t id;        /* current series (index series ID); 0 before the first and after the last */
	labels_t ls;        /* current series: valid until the next call */
	chunk_meta_t *cm;
	size_t ncm;
	arena_t a;
	uint64_t rel_index, rel_seg, rel_off; /* released up to: index offset; chunk segment and offset */
} block_walk_t;

void block_walk_init(block_walk_t *w, block_t *b);
/* 1: the next series is current; 0: no more; <0: error naming the block (a corrupt entry). */
int block_walk_next(block_walk_t *w, err_t *err);
void block_walk_release(block_walk_t *w);

#endif
