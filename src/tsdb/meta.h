/*
 * meta.h — block meta.json (Prometheus BlockMeta + Thanos "thanos" section), ULIDs, tombstones.
 *
 * meta_write produces Go json.MarshalIndent(meta, "", "\t") layout: fields in Go struct order, zero
 * stats omitted, no trailing newline; written to meta.json.tmp, fsynced, renamed. meta_read accepts
 * any field order (jansson) and rejects version != 1.
 */
#ifndef STRATA_TSDB_META_H
#define STRATA_TSDB_META_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "base/str.h"

#define ULID_LEN 26

typedef struct block_parent {
	char ulid[ULID_LEN + 1];
	int64_t mint, maxt;
} block_parent_t;

typedef struct meta_file {
	char *rel_path;
	int64_t size_bytes; /* 0 = omitted */
} meta_file_t;

typedef struct block_meta {
	char ulid[ULID_LEN + 1];
	int64_t mint, maxt; /* [mint, maxt) */
	uint64_t num_samples, num_series, num_chunks, num_tombstones;
	int level;
	char (*sources)[ULID_LEN + 1];
	size_t nsources;
	block_parent_t *parents;
	size_t nparents;
	bool deletable; /* compaction produced an empty block */
	bool failed;    /* compaction.failed: the planner leaves such blocks alone */
	/* thanos section */
	bool has_thanos;
	char **labels; /* name, value, name, value ... (sorted by name) */
	size_t nlabels;
	int64_t resolution;
	char *source;
	char **segment_files;
	size_t nsegment_files;
	meta_file_t *files;
	size_t nfiles;
	int64_t series_max_size, chunk_max_size; /* thanos.index_stats (bytes); 0 = omitted */
	char *rewrites;         /* thanos.rewrites as JSON text (an array), NULL = none; kept verbatim */
	char *extensions;       /* thanos.extensions as JSON text, NULL = none; kept verbatim */
	int64_t upload_time_ms; /* thanos.upload_time (RFC 3339 in the file); 0 = omitted */
} block_meta_t;

void meta_release(block_meta_t *m);
int meta_read(block_meta_t *m, const char *block_dir, err_t *err);
int meta_parse(block_meta_t *m, const char *json, size_t len, const char *what, err_t *err);
void meta_format(buf_t *b, const block_meta_t *m);
int meta_write(const block_meta_t *m, const char *block_dir, err_t *err);
void meta_add_source(block_meta_t *m, const char *ulid);
void meta_set_label(block_meta_t *m, const char *name, const char *value);
/* Deep copy of src into dst (dst's old content is not released). */
void meta_copy(block_meta_t *dst, const block_meta_t *src);
/* Is every source of a also a source of b? (False when a has none.) */
bool meta_sources_subset(const block_meta_t *a, const block_meta_t *b);

/* New ULID for time ms (crypto-random entropy). out has ULID_LEN + 1 bytes. */
void ulid_new(char *out, int64_t ms);
bool ulid_valid(const char *s);
/* Timestamp (ms) encoded in a valid ULID. */
int64_t ulid_time(const char *s);

/* tombstones: count of intervals (0 for an empty file); ERR_CORRUPT naming the offset. */
int tombstones_read(const char *block_dir, uint64_t *nintervals, err_t *err);

/* Deleted intervals (inclusive) per series reference (the index series ID), sorted by ref then
 * mint; an absent file means none. */
typedef struct tomb_interval {
	uint64_t ref;
	int64_t mint, maxt;
} tomb_interval_t;

typedef struct tombstones {
	tomb_interval_t *v;
	size_t n;
} tombstones_t;

int tombstones_load(const char *block_dir, tombstones_t *t, err_t *err);
void tombstones_release(tombstones_t *t);
/* The intervals of ref (count in *n, pointer into t), NULL if none. */
const tomb_interval_t *tombstones_of(const tombstones_t *t, uint64_t ref, size_t *n);
/* Write intervals (any order) as a tombstones file (atomically, via a temp file). */
int tombstones_write(const char *block_dir, const tomb_interval_t *v, size_t n, err_t *err);
int tombstones_write_empty(const char *block_dir, err_t *err);

#endif
