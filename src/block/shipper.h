/*
 * shipper.h — uploads finished TSDB blocks from a local directory (Prometheus's --storage.tsdb.path,
 * or a receiver/ruler TSDB) to the bucket, as Thanos's shipper does (reference thanos.md §1.4, §3.1,
 * §3.6).
 *
 * One shipper_sync() call (the sidecar runs one every 30s):
 *   - reads <dir>/thanos.shipper.json ({"version":1,"uploaded":[ULID...]}, Thanos's format); a missing
 *     or unreadable file means "nothing uploaded yet" (blocks already in the bucket are then detected
 *     by their meta.json there and not uploaded again);
 *   - scans <dir> for finished blocks (<ULID>/ with a readable meta.json; temp directories ignored),
 *     oldest first; compaction level > 1 only with upload_compacted;
 *   - uploads each new one: the chunk segments, then index, then meta.json with the thanos section (external
 *     labels, resolution 0, source, files with sizes). A block is visible only once meta.json is in
 *     the bucket, so an upload interrupted by a crash leaves an invisible partial block that the next
 *     sync uploads again completely;
 *   - records each uploaded ULID in thanos.shipper.json at once (temp file + fsync + rename).
 * A failed upload is counted and retried on the next sync; other blocks still go. The shipper never
 * writes anything in <dir> except thanos.shipper.json (and its temp file) and never deletes there.
 *
 * Metrics: thanos_shipper_uploads_total, thanos_shipper_upload_failures_total,
 * thanos_shipper_dir_syncs_total, thanos_shipper_dir_sync_failures_total,
 * thanos_shipper_last_successful_upload_time (unix seconds).
 * Threading: one sync at a time per shipper (it blocks on the bucket: run it on its own thread).
 */
#ifndef STRATA_BLOCK_SHIPPER_H
#define STRATA_BLOCK_SHIPPER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "model/labels.h"
#include "objstore/bucket.h"

#define SHIPPER_META_FILE "thanos.shipper.json"

/* ---- one block (shared with `strata tools bucket upload-blocks`) ---- */

typedef struct block_upload_opts {
	const labels_t *labels; /* external labels set in thanos.labels (added to those already there) */
	const char *source;     /* thanos.source */
	bool keep_source;       /* keep a non-empty source already in the local meta.json */
} block_upload_opts_t;

/* Upload <dir>/<ulid> to <ulid>/ in the bucket: chunk segments and index first, meta.json (with the
 * thanos section and files list) last. Errors name the block and file. The local block is not
 * modified. */
int shipper_upload_block(bucket_t *b, const char *dir, const char *ulid, const block_upload_opts_t *o, err_t *err);

/* ---- the shipper ---- */

typedef struct shipper shipper_t;

typedef struct shipper_config {
	const char *dir;       /* TSDB directory (copied) */
	bucket_t *bucket;      /* not owned */
	bool upload_compacted; /* also upload blocks with compaction level > 1 */
	const char *source;    /* thanos.source: "sidecar", "receive", "ruler" (copied) */
} shipper_config_t;

typedef struct shipper_stats {
	int uploaded; /* blocks uploaded by this sync */
	int failed;   /* uploads that failed (retried next sync) */
	int skipped;  /* not eligible (level > 1) */
} shipper_stats_t;

shipper_t *shipper_new(const shipper_config_t *cfg);
void shipper_free(shipper_t *s);
/* One pass (see above) with these external labels (must be non-empty). Returns 0 when every
 * eligible block is in the bucket, else the first error (err names the block); stats are filled
 * either way. */
int shipper_sync(shipper_t *s, const labels_t *ext, shipper_stats_t *stats, err_t *err);

/* Lowest minTime over the finished blocks in dir and, when s is given, the blocks it recorded as
 * uploaded (their meta.json read from the bucket once and cached). INT64_MIN when there are none. */
int64_t shipper_min_time(shipper_t *s, const char *dir);

/* Finished blocks in dir: ULID-named directories holding a regular meta.json, sorted by name (oldest
 * first). *ulids is a heap array of heap strings (free with shipper_ulids_free); a missing dir gives 0
 * entries; an unreadable one is ERR_IO naming it. */
int shipper_finished_blocks(const char *dir, char ***ulids, size_t *n, err_t *err);

/* Read/write thanos.shipper.json in dir. read: *ulids is a heap array of heap strings (free with
 * shipper_ulids_free); a missing file gives 0 entries; a corrupt one is ERR_CORRUPT naming it. */
int shipper_meta_read(const char *dir, char ***ulids, size_t *n, err_t *err);
int shipper_meta_write(const char *dir, char *const *ulids, size_t n, err_t *err);
void shipper_ulids_free(char **ulids, size_t n);

#endif
