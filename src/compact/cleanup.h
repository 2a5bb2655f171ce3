/*
 * cleanup.h — how blocks leave the bucket, shared by `strata compact` and `tools bucket retention`,
 * `tools bucket cleanup` (reference thanos.md §5.1 steps 5-6, §3.3, §5.5).
 *
 * cleanup_retention marks for deletion (deletion-mark.json) every selected block of a fetch list
 * whose maxTime is older than the retention of its resolution (0 = keep forever).
 * cleanup_deleted deletes (meta.json first, the deletion mark last: block/marker.h) every block whose
 * deletion mark is at least delete_delay old, among the list's selected blocks and the ones the
 * deletion-mark filter set aside (not those other filters set aside: a shard deletes only its own);
 * cleanup_partial deletes partial uploads (no meta.json) whose ULID and newest object (last-modified
 * time: an old block being uploaded now is not an aborted upload) are both older than
 * COMPACTOR_PARTIAL_UPLOAD_AGE_MS, or that carry a deletion mark (a deletion that stopped half-way). Each
 * counts what it did (thanos_compact_* metrics, cmetrics.h) and logs every block; a block that fails is
 * counted and logged and the others still go; the first error is returned.
 */
#ifndef STRATA_COMPACT_CLEANUP_H
#define STRATA_COMPACT_CLEANUP_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "block/fetcher.h"
#include "objstore/bucket.h"

/* retention_ms[0..2]: raw, 5m, 1h. *marked: blocks newly marked. */
int cleanup_retention(bucket_t *b, const fetch_list_t *l, const int64_t *retention_ms, int64_t now_ms,
                      size_t *marked, err_t *err);
/* Blocks whose deletion mark crossed delete_delay_ms (the todo_deletion_blocks gauge is set to those
 * still waiting). */
int cleanup_deleted(bucket_t *b, const fetch_list_t *l, int64_t delete_delay_ms, int64_t now_ms,
                    size_t *deleted, err_t *err);
int cleanup_partial(bucket_t *b, const fetch_list_t *l, int64_t now_ms, size_t *deleted, err_t *err);

#endif
