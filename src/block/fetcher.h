/*
 * fetcher.h — the meta fetcher: which blocks a bucket holds, their meta.json and marker files, and
 * the filters that pick the blocks a component works on (reference thanos.md §5.1 step 1, §5.5,
 * §3.3). Shared by the store gateway, the compactor and the bucket tools.
 *
 * block_fetcher_fetch lists the bucket's top-level <ULID>/ directories, then lists each block
 * directory (up to `concurrency` at once) to learn which of meta.json and the three marker files it
 * holds. meta.json is read once per block and kept (in memory, and under cache_dir/<ULID>/meta.json
 * when cache_dir is set, so a restart reads nothing again): a block's meta never changes. A marker is
 * read when it appears and kept while it exists. A block directory without meta.json is a partial
 * (or in-progress) upload; one whose meta.json does not parse or names another ULID is corrupt; both
 * are reported, never returned as blocks.
 *
 * The result is a fetch_list_t: `v` holds the blocks still selected, sorted by ULID; `dropped` the
 * ones a filter (or the fetch itself) set aside, each with its state, so later steps can still see
 * them (cleanup deletes the deletion-marked ones; GC marks the duplicates). Filters run in the
 * order the caller calls them; the compactor's order is time → replica-label removal → labels →
 * consistency delay → deletion marks → duplicates (§5.1).
 *
 * Metrics (Thanos's names, one family per process): thanos_blocks_meta_syncs_total,
 * thanos_blocks_meta_sync_failures_total, thanos_blocks_meta_sync_duration_seconds, and
 * thanos_blocks_meta_synced{state}, set by fetch_list_publish from a list's counts.
 *
 * Threading: one fetch at a time per fetcher; lists are plain data owned by the caller.
 */
#ifndef STRATA_BLOCK_FETCHER_H
#define STRATA_BLOCK_FETCHER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "block/marker.h"
#include "model/labels.h"
#include "objstore/bucket.h"
#include "tsdb/meta.h"

/* Why a block is (or is not) in the selected list; names are the thanos_blocks_meta_synced states. */
typedef enum fetch_state {
	FETCH_LOADED,     /* "loaded": selected */
	FETCH_PARTIAL,    /* "no-meta-json" */
	FETCH_CORRUPT,    /* "corrupted-meta-json" */
	FETCH_FAILED,     /* "failed": reading it from the bucket failed (or a caller's own step did) */
	FETCH_TIME,       /* "time-excluded" */
	FETCH_LABEL,      /* "label-excluded" */
	FETCH_TOO_FRESH,  /* "too-fresh": inside the consistency delay */
	FETCH_MARKED,     /* "marked-for-deletion" (past the ignore delay) */
	FETCH_DUPLICATE,  /* "duplicate": its sources are covered by another block of its stream */
	FETCH_RESOLUTION, /* "resolution-excluded": a caller's own resolution rule */
	FETCH_N
} fetch_state_t;

const char *fetch_state_name(fetch_state_t s);

typedef struct fetched_block {
	char ulid[ULID_LEN + 1];
	fetch_state_t state;
	block_meta_t meta;         /* zero for partial/corrupt/failed blocks */
	int64_t mark_ms[MARKER_N]; /* marker time (ms since epoch), -1 when there is none */
	char *no_compact_reason;   /* reason of the no-compact mark, NULL when none */
	char *error;               /* corrupt/failed: what went wrong */
} fetched_block_t;

typedef struct fetch_list {
	fetched_block_t *v; /* selected, sorted by ULID */
	size_t n, cap;
	fetched_block_t *dropped; /* set aside, with their state */
	size_t ndropped, capdropped;
	size_t counts[FETCH_N];
} fetch_list_t;

void fetch_list_release(fetch_list_t *l);
/* The selected block with this ULID, or NULL. */
fetched_block_t *fetch_list_find(fetch_list_t *l, const char *ulid);
/* Move v[i] to dropped with state s (keeps v sorted). */
void fetch_list_drop(fetch_list_t *l, size_t i, fetch_state_t s);
/* Set thanos_blocks_meta_synced{state} from l->counts. */
void fetch_list_publish(const fetch_list_t *l);

/* The block's external labels as a view into its meta (allocated in a). */
labels_t fetched_block_labels(const fetched_block_t *b, arena_t *a);

typedef struct block_fetcher_config {
	bucket_t *bkt;         /* not owned */
	const char *cache_dir; /* NULL: metas are kept in memory only */
	int concurrency;       /* block directories listed / metas read at once; 0 = 32 */
} block_fetcher_config_t;

typedef struct block_fetcher block_fetcher_t;

block_fetcher_t *block_fetcher_new(const block_fetcher_config_t *cfg);
void block_fetcher_free(block_fetcher_t *f);
/* One fetch (see above) into *out (initialised here). Fails only when the bucket cannot be listed;
 * a block that cannot be read is a FETCH_FAILED entry in out->dropped, logged. */
int block_fetcher_fetch(block_fetcher_t *f, fetch_list_t *out, err_t *err);

/* ---- filters (each moves the blocks it excludes to dropped) ---- */

/* Keep blocks overlapping [min_ms, max_ms] (inclusive; maxTime is exclusive in meta). */
void fetch_filter_time(fetch_list_t *l, int64_t min_ms, int64_t max_ms);
/* Remove these external labels from every block's meta (--deduplication.replica-label), so replicas
 * fall into one stream. */
void fetch_drop_labels(fetch_list_t *l, char *const *names, size_t n);
/* Keep blocks for which keep(arg, labels) is true; labels are the external labels plus __block_id. */
void fetch_filter_labels(fetch_list_t *l, bool (*keep)(void *arg, const labels_t *ls), void *arg);
/* Drop blocks younger than delay_ms (age from thanos.upload_time, else the ULID's time) unless the
 * compactor or a repair wrote them. */
void fetch_filter_consistency(fetch_list_t *l, int64_t delay_ms, int64_t now_ms);
/* Drop blocks whose deletion mark is at least delay_ms old. */
void fetch_filter_deleted(fetch_list_t *l, int64_t delay_ms, int64_t now_ms);
/* Within each stream (resolution + external labels), drop blocks whose compaction sources are all
 * sources of another block of the stream (older copies a crashed or finished compaction left). */
void fetch_filter_duplicates(fetch_list_t *l);

/* Stream key of a block: "<resolution>@<labels hash>" as Thanos's group key (thanos.md §3.2). */
void fetched_block_group_key(const fetched_block_t *b, char *out, size_t n);

#endif
