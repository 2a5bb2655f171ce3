/*
 * marker.h — Thanos's block marker files and the order in which a block leaves the bucket
 * (reference thanos.md §3.3, §3.1, §5.5).
 *
 * Markers are small JSON objects next to a block's meta.json:
 *   deletion-mark.json       {"id", "version": 1, "details", "deletion_time": <unix s>}
 *   no-compact-mark.json     {"id", "version": 1, "details", "no_compact_time": <unix s>, "reason"}
 *   no-downsample-mark.json  {"id", "version": 1, "details", "no_downsample_time": <unix s>, "reason"}
 * written with Go's json.MarshalIndent layout (tabs), as Thanos does. A reader rejects a marker
 * whose version is not 1, whose id is not the block's, or whose time is missing (ERR_CORRUPT naming
 * the object).
 *
 * marker_delete_block removes a block in the order that keeps every reader safe: meta.json first
 * (the block turns into a partial upload that readers ignore), then every other object except the
 * deletion mark, the deletion mark last (so a crash in between leaves a block that the next cleanup
 * finds and finishes).
 *
 * Thread-safety: all functions may run concurrently (the bucket is thread-safe); callers serialise
 * changes to one block's markers.
 */
#ifndef STRATA_BLOCK_MARKER_H
#define STRATA_BLOCK_MARKER_H

#include <stdbool.h>
#include <stdint.h>

#include "base/err.h"
#include "base/str.h"
#include "objstore/bucket.h"
#include "tsdb/meta.h"

typedef enum marker_kind { MARKER_DELETION, MARKER_NO_COMPACT, MARKER_NO_DOWNSAMPLE, MARKER_N } marker_kind_t;

/* Reasons Thanos uses in no-compact / no-downsample marks. */
#define MARKER_REASON_MANUAL              "manual"
#define MARKER_REASON_INDEX_SIZE          "index-size-exceeding"
#define MARKER_REASON_OUT_OF_ORDER        "block-index-out-of-order-chunk"
#define MARKER_REASON_DOWNSAMPLE_VERTICAL "downsample-vertical-compaction"
/* Strata's own: a block that could not be read (corrupt chunk, unreadable index...). */
#define MARKER_REASON_CORRUPT "corrupt-block"

typedef struct marker {
	marker_kind_t kind;
	char id[ULID_LEN + 1];
	int64_t time_s; /* deletion_time / no_compact_time / no_downsample_time */
	char *reason;   /* NULL for deletion marks */
	char *details;  /* may be NULL */
} marker_t;

/* "deletion-mark.json", ... */
const char *marker_file(marker_kind_t kind);
/* The kind named by a file name or by "deletion-mark.json"-style flag values; -1 if none. */
int marker_kind_of(const char *file);

int marker_parse(marker_t *m, marker_kind_t kind, const char *json, size_t len, const char *what, err_t *err);
void marker_format(buf_t *b, const marker_t *m);
void marker_release(marker_t *m);

/* Read <ulid>/<marker file>: ERR_NOT_FOUND when absent. */
int marker_read(bucket_t *b, const char *ulid, marker_kind_t kind, marker_t *out, err_t *err);
/* Upload a marker for ulid stamped now. An existing marker of that kind is left as it is and
 * *created (if given) is false. reason is ignored for deletion marks. */
int marker_write(bucket_t *b, const char *ulid, marker_kind_t kind, const char *reason, const char *details,
                 bool *created, err_t *err);
/* Remove a marker; an absent one is not an error. */
int marker_remove(bucket_t *b, const char *ulid, marker_kind_t kind, err_t *err);

/* Delete every object of the block (see above). A block already gone is not an error. */
int marker_delete_block(bucket_t *b, const char *ulid, err_t *err);

#endif
