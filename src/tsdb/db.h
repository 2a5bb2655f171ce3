/*
 * db.h — a local TSDB directory laid out as Prometheus lays it out: the head (head.h: wal/, wbl/,
 * chunks_head/) and the blocks cut from it (<ULID>/, tsdb/block.h). What a receiver keeps per tenant
 * and what the ruler stores its results in; the directory can be handed to Prometheus 2.42 as is.
 *
 * Cutting (db_compact) follows Prometheus's head compaction (reference prometheus.md §3.1): while the
 * head spans more than 1.5 block durations, the block [head mint, the next multiple of the duration)
 * is written (tmp dir + rename, meta.json with that exact range), the head is truncated to its end
 * and the WAL checkpointed. Out-of-order samples are cut into blocks of their own at the same time
 * (one per duration-aligned window they fall in). db_compact(flush) cuts everything the head holds
 * (what a receiver does on shutdown), still one block per aligned window, the last one ending right
 * after the newest sample (so after a restart the head takes samples from there on).
 *
 * Blocks are reference-counted: a view (db_view) keeps the blocks it saw open until its arena is
 * released, so retention (db_delete_blocks) never pulls a block from under a reader.
 *
 * Threading: appends (through db_head) and views from any thread; db_compact and db_delete_blocks
 * from one background thread at a time.
 */
#ifndef STRATA_TSDB_DB_H
#define STRATA_TSDB_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/arena.h"
#include "base/err.h"
#include "model/series.h"
#include "tsdb/head.h"

typedef struct db db_t;

typedef struct db_opts {
	int64_t block_duration; /* ms: --tsdb.min-block-duration, the head's chunk range; 0 = 2h */
	head_opts_t head;       /* chunk_range is taken from block_duration */
} db_opts_t;

/* Open or create dir: remove leftover temporary block directories, open the blocks, open the head
 * (replaying its WAL; stats may be NULL). */
int db_open(db_t **out, const char *dir, const db_opts_t *opts, head_replay_stats_t *stats, err_t *err);
/* Close the head and every block (blocks still referenced by a view close with it). */
int db_close(db_t *db, err_t *err);
head_t *db_head(db_t *db);
const char *db_dir(const db_t *db);

/* Cut blocks as described above; *nblocks (may be NULL) gets how many were written. */
int db_compact(db_t *db, bool flush, int *nblocks, err_t *err);

/* Delete blocks whose maxTime is at or before before_ms and for which may_delete(arg, ulid) says yes
 * (e.g. "already uploaded"); may_delete NULL = yes. *ndeleted may be NULL. */
int db_delete_blocks(db_t *db, int64_t before_ms, bool (*may_delete)(void *arg, const char *ulid), void *arg,
                     int *ndeleted, err_t *err);

/* Everything readable now: the head and the blocks, as queryables (head first, then blocks by time),
 * kept alive until a is released. */
typedef struct db_view {
	queryable_t **q;
	size_t n;
} db_view_t;
void db_view(db_t *db, arena_t *a, db_view_t *out);

/* Time range of the data held (INT64_MAX / INT64_MIN when empty), and the block count. */
int64_t db_min_time(db_t *db);
int64_t db_max_time(db_t *db);
size_t db_num_blocks(db_t *db);
/* Refresh the head's gauges and prometheus_tsdb_blocks_loaded, write buffered head chunks (every second or
 * so). */
void db_publish_metrics(db_t *db);

#endif
