/*
 * index.h — Prometheus TSDB index format v2, reader and writer (reference prometheus.md §1.7).
 *
 * Writer: index_writer_open, then index_writer_add_symbols (every label name and value, sorted,
 * unique; "" is added as symbol 0 like Prometheus), then index_writer_add_series in labels_cmp order,
 * then index_writer_close (label indices, postings, offset tables, TOC, fsync). Memory is bounded
 * by the number of distinct symbols and label pairs, not by series or samples: the symbol table,
 * the label pairs, and at most mem_limit bytes of postings (a 4-byte series ID per series and label);
 * beyond that the postings collected so far are sorted by label pair and appended as a run to an
 * unlinked temp file next to the index (index.spill-XXXXXX, gone on close, abort and crash), and
 * close merges the runs (at most 16 at a time, 64 KiB read buffer each) into the postings section.
 * The output does not depend on mem_limit. Samples never pass through.
 *
 * Reader: mmaps the file. index_reader_open checks only the header and the TOC (constant time); the
 * symbol table and the postings offset table are CRC-checked and sampled (every 32nd entry) on first
 * use. Series and postings are CRC-checked on every read. Every error names the file and offset.
 * A reader is not thread-safe until index_reader_load has been called once; after that lookups only
 * read shared state.
 */
#ifndef STRATA_TSDB_INDEX_H
#define STRATA_TSDB_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/arena.h"
#include "base/err.h"
#include "base/hmap.h"
#include "base/str.h"
#include "model/labels.h"
#include "model/matcher.h"
#include "tsdb/indextoc.h"
#include "tsdb/postings.h"

#define INDEX_MAGIC 0xBAAAD700u
#define INDEX_WRITER_MEM_DEFAULT (4u << 20)

typedef struct chunk_meta {
	int64_t mint, maxt; /* inclusive */
	uint64_t ref;
} chunk_meta_t;

/* Puts a series' chunk metas in time order (by mint, then maxt) if they are not. Prometheus's format can list
 * them out of order (the mint delta is an unsigned varint of a wrapped difference) and some old writers did;
 * every reader here wants them in order, so both index decoders call this. */
void index_chunk_metas_order(chunk_meta_t *c, size_t n);

typedef struct index_writer index_writer_t;

int index_writer_open(index_writer_t **w, const char *path, err_t *err);
int index_writer_add_symbols(index_writer_t *w, const str_t *syms, size_t n, err_t *err);
int index_writer_add_series(index_writer_t *w, const labels_t *ls, const chunk_meta_t *chks, size_t n, err_t *err);
/* Bytes of postings held in memory before spilling a run (0 = INDEX_WRITER_MEM_DEFAULT); set
 * before adding series. */
void index_writer_set_mem_limit(index_writer_t *w, size_t bytes);
/* Runs spilled to the temp file so far (for tests and benchmarks). */
size_t index_writer_spilled_runs(const index_writer_t *w);
/* Largest series entry written so far (bytes), for meta.json's thanos.index_stats. */
uint64_t index_writer_max_series_size(const index_writer_t *w);
int index_writer_close(index_writer_t *w, err_t *err); /* frees w */
void index_writer_abort(index_writer_t *w);           /* frees w, leaves the partial file */

typedef struct index_reader {
	char *path;
	const uint8_t *p;
	size_t len;
	bool mapped; /* p is our mmap (else borrowed, see index_reader_open_mem) */
	uint64_t toc_symbols, toc_series, toc_label_indices, toc_label_offsets, toc_postings, toc_postings_offsets;
	bool loaded;
	indextoc_symbols_t syms; /* symbol table, sampled */
	indextoc_ptab_t ptab;    /* postings offset table, grouped by name */
	uint32_t nseries_hint;
} index_reader_t;

int index_reader_open(index_reader_t *r, const char *path, err_t *err);
/* Same over bytes the caller owns (must outlive the reader); name is used in error messages. */
int index_reader_open_mem(index_reader_t *r, const char *name, const uint8_t *p, size_t len, err_t *err);
void index_reader_close(index_reader_t *r);
int index_reader_load(index_reader_t *r, err_t *err);
int index_reader_symbol(index_reader_t *r, uint32_t idx, str_t *out, err_t *err);
/* ERR_NOT_FOUND if absent. */
int index_reader_symbol_index(index_reader_t *r, str_t s, uint32_t *idx, err_t *err);
/* Postings for name=value (empty if absent). */
int index_reader_postings(index_reader_t *r, arena_t *a, str_t name, str_t value, postings_t *out, err_t *err);
/* Postings for a conjunction of matchers (Prometheus semantics for negative/empty-matching ones). */
int index_reader_postings_for_matchers(index_reader_t *r, arena_t *a, const matcher_t *ms, size_t n,
				       postings_t *out, err_t *err);
/* Series id (offset/16): labels (pointing into the mmap) and chunk metas (arena). */
int index_reader_series(index_reader_t *r, arena_t *a, uint32_t id, labels_t *ls, chunk_meta_t **chks, size_t *nchks,
			err_t *err);
/* Walk the series section in file order, which is label order: *id = 0 gives the first series,
 * otherwise the one after *id; *id = 0 on return means there are no more. Series entries are
 * checked only as far as their length; index_reader_series checks the rest. */
int index_reader_next_series(index_reader_t *r, uint32_t *id, err_t *err);
/* Sorted label names (excluding ""), of series matching ms (all names when n == 0). */
int index_reader_label_names(index_reader_t *r, arena_t *a, const matcher_t *ms, size_t n, str_t **out, size_t *nout,
			     err_t *err);
int index_reader_label_values(index_reader_t *r, arena_t *a, str_t name, const matcher_t *ms, size_t n, str_t **out,
			      size_t *nout, err_t *err);
/* Number of distinct values per name, for inspect: callback per name. */
int index_reader_each_name(index_reader_t *r, void (*fn)(void *arg, str_t name, size_t nvalues), void *arg, err_t *err);

#endif
