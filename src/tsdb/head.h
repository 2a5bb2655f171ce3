/*
 * head.h — the in-memory head of a TSDB: the series being written, their open XOR chunks, full chunks
 * in chunks_head/ (headchunks.h), a Prometheus-format WAL (wal.h, walrec.h) that every append goes
 * through before it is acknowledged, and the index (postings) that queries select series with.
 * The receiver's per-tenant TSDB and the ruler's result storage both sit on it (db.h adds blocks,
 * cutting and retention).
 *
 * Memory per series (what sizes a receiver): labels are interned once per head — every distinct
 * string once, every distinct (name, value) pair once with its postings list — and a series holds
 * only the pair ids; its open chunk (at most 2 x 120 samples) is the only sample data in memory:
 * full chunks are written to chunks_head/ and read back through a shared mapping. A series is
 * found by a 128-bit hash of its labels (XXH3-128 over their canonical form, head_labels_key): two label sets
 * with the same 128-bit hash would be taken for one series (probability ~n^2/2^129, i.e. never).
 *
 * Appends (head_append) are one commit: every series is all-or-nothing and gets its own verdict
 * (out of order, duplicate timestamp with another value, out of bounds, too old, too far in the
 * future, series limit); a sample identical to one already stored is accepted and skipped (so a
 * request sent again after its answer was lost succeeds), the accepted samples become one Samples record
 * (plus a Series record for new series) in the WAL, and the call returns only once they are durable
 * (fdatasync; concurrent commits share one). Samples are visible to queries as soon as they are appended.
 * Chunks are cut exactly as Prometheus's head cuts them (120-sample target estimated at the 30th sample, 240
 * cap, never across a chunk_range boundary), so chunks_head/ and the WAL can be handed to Prometheus 2.42.
 * Out-of-order samples (ooo_window > 0) within the window go to a per-series sorted in-memory list
 * (16 bytes a sample; the window bounds how many), are logged to the out-of-order WAL (wbl/, same
 * format, as Prometheus 2.42 does) and are merged into queries; they are cut into blocks of their own.
 *
 * Reading: head_queryable() is a queryable_t (select with matchers, label names/values). A series set
 * pins the head's memory until closed (a truncation waits for it), so keep them short-lived.
 *
 * Threading: head_append from any number of threads (commits are serialised, fsyncs shared); queries
 * from any number of threads concurrently with appends; head_truncate and head_checkpoint from one
 * background thread.
 */
#ifndef STRATA_TSDB_HEAD_H
#define STRATA_TSDB_HEAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "model/labels.h"
#include "model/series.h"

typedef struct head head_t;

typedef struct head_opts {
	int64_t chunk_range;        /* ms: chunks never cross a multiple of it (the block duration); 0 = 2h */
	int64_t ooo_window;         /* ms: out-of-order samples this much older than the head's max time are
	                               accepted; 0 = none */
	int64_t too_far_in_future;  /* ms: samples newer than now + this are rejected; 0 = no check */
	bool wal_compression;       /* snappy WAL records (Prometheus's default) */
	bool wal_no_sync;           /* appends return once their WAL records are written, not fsynced (as
	                               Prometheus's own head): a process crash loses nothing, a machine crash
	                               may lose the last ones; for data nobody was promised (the ruler's) */
	uint64_t wal_segment_size;  /* 0 = 128 MiB */
	const char *metrics_tenant; /* tenant label value for the head's metrics; NULL = no tenant label */
} head_opts_t;

/* Open (or create) the head in dir: replays chunks_head/, the newest WAL checkpoint and the WAL
 * segments after it (repairing a torn or corrupt tail: logged, and only that tail is lost), then
 * starts a new WAL segment. min_valid_time: samples older than this (the end of the newest block on
 * disk) are dropped from the replay and rejected by appends. stats (may be NULL) describe the
 * replay. */
typedef struct head_replay_stats {
	uint64_t series, samples, skipped_samples, mmapped_chunks, records;
	double seconds;
	bool wal_repaired, chunks_repaired;
	char repair_msg[512];
} head_replay_stats_t;

int head_open(head_t **out, const char *dir, const head_opts_t *opts, int64_t min_valid_time,
              head_replay_stats_t *stats, err_t *err);
/* Close the WAL (flushed, fsynced) and the chunk files; frees h. */
int head_close(head_t *h, err_t *err);

/* ---- appending ---- */

typedef enum head_verdict {
	HEAD_OK = 0,
	HEAD_OUT_OF_ORDER,  /* older than the series' newest sample (and out-of-order not allowed) */
	HEAD_DUPLICATE,     /* same timestamp as a stored sample, different value */
	HEAD_OUT_OF_BOUNDS, /* older than the head's minimum valid time */
	HEAD_TOO_OLD,       /* out-of-order and older than the out-of-order window */
	HEAD_TOO_FAR_IN_FUTURE,
	HEAD_SERIES_LIMIT,   /* new series over the head's series limit */
	HEAD_INVALID_LABELS, /* an unchecked new series whose labels labels_check refuses */
} head_verdict_t;

const char *head_verdict_str(head_verdict_t v);

typedef struct head_input {
	labels_t ls;      /* sorted by name, unique, non-empty names and values */
	const int64_t *t; /* samples, ascending time expected (ties/regressions are judged) */
	const double *v;
	size_t n;
	/* results */
	uint8_t verdict;   /* head_verdict_t */
	int64_t bad_t;     /* timestamp of the sample that decided a rejection */
	uint32_t appended; /* samples stored (duplicates of stored samples are not counted) */
	/* Optional: the labels already in head_labels_key's canonical form (protobuf Label fields, as a
	 * remote-write body carries them): hashed as they are instead of being rebuilt. */
	const uint8_t *raw;
	size_t nraw;
	/* The labels are not checked yet: the head checks them (labels_check) only when the series is
	 * new, and refuses it as HEAD_INVALID_LABELS if they are wrong (a known series was checked when
	 * it was created, and the same labels hash to it). */
	bool unchecked;
	uint64_t key_[2]; /* internal */
} head_input_t;

/* The 128-bit key a series is found by: XXH3-128 over the labels' canonical form, the protobuf Label
 * fields a remote-write body carries (0a len 0a len name 12 len value, minimal varints), built in
 * scratch. */
void head_labels_key(buf_t *scratch, const labels_t *ls, uint64_t key[2]);

/* Metric metadata for a metric family (remote write's MetricMetadata): attached to the family's
 * series (name, or name + _bucket/_count/_sum/_total/...) and logged as Metadata records. */
typedef struct head_meta_input {
	str_t family;
	uint8_t type; /* WALREC_MT_* */
	str_t unit, help;
} head_meta_input_t;

/* One commit (see above). Returns 0 with verdicts set, or an error when nothing could be made durable
 * (ERR_IO: the WAL failed, and keeps failing until the head is reopened). */
int head_append(head_t *h, head_input_t *in, size_t n, const head_meta_input_t *meta, size_t nmeta,
                err_t *err);
/* New-series limit (0 = unlimited); may change at any time. */
void head_set_series_limit(head_t *h, uint64_t limit);

/* ---- state ---- */

int64_t head_min_time(head_t *h); /* INT64_MAX when empty */
int64_t head_max_time(head_t *h); /* INT64_MIN when empty */
uint64_t head_num_series(head_t *h);
/* Minimum valid time (samples before it are out of bounds). */
int64_t head_min_valid_time(head_t *h);
/* Refresh the gauges (series, min/max time) and write out buffered head chunks (so a restart has
 * less WAL to replay); the owner calls it every second or so. */
void head_publish_metrics(head_t *h);
/* Out-of-order samples held (both generations). */
uint64_t head_ooo_samples(head_t *h);

/* ---- reading ---- */

/* Select over in-order chunks and out-of-order samples (both generations, see head_ooo_swap). */
queryable_t *head_queryable(head_t *h);

enum { HEAD_SEL_INORDER = 1, HEAD_SEL_OOO = 2, HEAD_SEL_OOO_CUT = 4, HEAD_SEL_ALL = 7 };
/* select with a choice of sources (what cutting needs): series with samples in [mint, maxt] from the
 * chosen sources, sorted by labels; with several sources the samples are merged (a timestamp held
 * twice comes out once). nms may be 0 (every series). */
int head_select(head_t *h, arena_t *a, const matcher_t *ms, size_t nms, int64_t mint, int64_t maxt,
                int sources, series_set_t **out, err_t *err);

/* ---- cutting ---- */

/* Drop everything older than mint from memory (chunks ending before it; series left without data are
 * removed, their labels released), raise the minimum valid time to mint, delete chunk files no longer
 * referenced. Waits for open series sets. */
int head_truncate(head_t *h, int64_t mint, err_t *err);
/* Fold the older two thirds of the WAL segments into a checkpoint (series still in the head, samples
 * at or after the head's minimum valid time, their metadata) and delete those segments and older
 * checkpoints, as Prometheus does after a head compaction. */
int head_checkpoint(head_t *h, err_t *err);

/* Out-of-order samples are cut into blocks of their own (like Prometheus's out-of-order compaction):
 * head_ooo_swap moves every series' out-of-order samples into a second generation that stays
 * queryable and starts a new out-of-order WAL segment (*wbl_seg); the cutter reads that generation
 * (head_select with HEAD_SEL_OOO_CUT), writes blocks, then head_ooo_release drops it and deletes the
 * out-of-order WAL segments before wbl_seg. Returns the number of samples swapped (0: nothing to do,
 * nothing changed, or an error in err) and their time range in *mint, *maxt. */
uint64_t head_ooo_swap(head_t *h, int *wbl_seg, int64_t *mint, int64_t *maxt, err_t *err);
int head_ooo_release(head_t *h, int wbl_seg, err_t *err);

#endif
