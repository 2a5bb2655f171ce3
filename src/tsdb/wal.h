/*
 * wal.h — the Prometheus write-ahead log, byte-compatible with Prometheus 2.42 (reference
 * prometheus.md §2.1, §2.3): a directory of segment files named %08d, written in 32 KiB pages;
 * every record is split into fragments with a 7-byte header (type byte: 1 full, 2 first, 3 middle,
 * 4 last, | 0x08 when the record is snappy-compressed as a whole; BE16 length; BE32 CRC32C of the
 * fragment data); a page with fewer than 7 bytes left is zero-padded. A record never spans segments.
 * Checkpoints live in checkpoint.%08d/ subdirectories in the same format (checkpoint.h).
 *
 * Writer: wal_open starts a new segment after the last existing one (as Prometheus does), so a
 * segment left by a crash is never appended to. wal_log frames records into the in-memory page and
 * writes whole pages as they fill; wal_sync(seq) makes every record logged up to ticket seq durable
 * (writes the partial page, fdatasync). Group commit: while one caller waits for fdatasync, others
 * keep logging, and the next sync covers all of them. A write or sync failure is sticky: every later
 * wal_log / wal_sync fails with the first error (a WAL that may have lost data must not acknowledge
 * anything more). wal_log and wal_sync are thread-safe; the rest is for one thread at a time.
 *
 * Reader: one segment at a time (Prometheus replays each segment with its own reader too), mapped
 * read-only. wal_reader_next yields records (decompressed); at a corrupt or torn fragment it
 * returns ERR_CORRUPT naming the file and offset, and valid_end says where the last complete record
 * ended. wal_repair truncates that segment there, zero-pads its last page and deletes every later
 * segment — Prometheus's repair, so only the torn tail is lost.
 */
#ifndef STRATA_TSDB_WAL_H
#define STRATA_TSDB_WAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "base/str.h"

#define WAL_PAGE_SIZE            32768
#define WAL_REC_HEADER           7
#define WAL_DEFAULT_SEGMENT_SIZE (128u << 20)

/* Fragment type bits. */
enum {
	WAL_FRAG_PAGE_TERM = 0,
	WAL_FRAG_FULL = 1,
	WAL_FRAG_FIRST = 2,
	WAL_FRAG_MIDDLE = 3,
	WAL_FRAG_LAST = 4
};
#define WAL_FRAG_SNAPPY 0x08
#define WAL_FRAG_ZSTD   0x10

typedef struct wal wal_t;

typedef struct wal_opts {
	uint64_t segment_size; /* bytes, rounded down to whole pages; 0 = 128 MiB, at least 2 pages */
	bool compress;         /* snappy-compress records (Prometheus's --storage.tsdb.wal-compression) */
} wal_opts_t;

/* Create dir if missing and start segment last+1 (0 in an empty dir). */
int wal_open(wal_t **out, const char *dir, const wal_opts_t *opts, err_t *err);
/* Flush, pad the last page, fsync and close. Returns the sticky error if there is one; w is freed
 * either way. */
int wal_close(wal_t *w, err_t *err);
const char *wal_dir(const wal_t *w);

/* Append records recs[0..n) in order. *seq (may be NULL) gets the ticket to pass to wal_sync. A
 * record larger than a segment can hold is ERR_LIMIT. Thread-safe. */
int wal_log(wal_t *w, const str_t *recs, size_t n, uint64_t *seq, err_t *err);
/* Make every record logged up to ticket seq durable. Thread-safe (group commit). */
int wal_sync(wal_t *w, uint64_t seq, err_t *err);
/* Hand every record logged so far to the kernel (the partial page written, no fdatasync): a crash of
 * the process loses none of them, a crash of the machine may. Thread-safe. */
int wal_flush(wal_t *w, err_t *err);
/* Close the current segment (padded, fsynced) and start the next one; *seg (may be NULL) gets its
 * index. Thread-safe. */
int wal_next_segment(wal_t *w, int *seg, err_t *err);
/* Index of the segment being written. Thread-safe. */
int wal_current_segment(wal_t *w);
/* Delete segments with index < before (never the current one). */
int wal_truncate(wal_t *w, int before, err_t *err);
/* Bytes written to segment files since open (metrics). Thread-safe. */
uint64_t wal_bytes_written(wal_t *w);
/* Seconds spent in each fdatasync, for prometheus_tsdb_wal_fsync_duration_seconds: fn(arg, s). */
void wal_set_fsync_observer(wal_t *w, void (*fn)(void *arg, double seconds), void *arg);

/* ---- segments on disk ---- */

/* First and last segment index in dir (-1, -1 if none). Non-numeric names are ignored; a gap in the
 * sequence is ERR_CORRUPT naming it. */
int wal_segments(const char *dir, int *first, int *last, err_t *err);
/* "<dir>/%08d" into out (>= 4096 bytes). */
void wal_segment_path(char *out, const char *dir, int seg);

/* ---- reading ---- */

typedef struct wal_reader {
	char *path;
	const uint8_t *p; /* the mapped segment */
	size_t len;
	size_t off;       /* next byte to read */
	size_t valid_end; /* end of the last complete record (or of padding after it) */
	buf_t rec, zbuf;
	uint64_t records;
} wal_reader_t;

/* Map one segment file. An empty file is fine (no records). */
int wal_reader_open(wal_reader_t *r, const char *path, err_t *err);
/* 1 = *rec holds the next record (valid until the next call), 0 = clean end of the segment,
 * ERR_CORRUPT = torn or corrupt data at r->off (message names file and offset; valid_end is where
 * good data ends). */
int wal_reader_next(wal_reader_t *r, str_t *rec, err_t *err);
void wal_reader_close(wal_reader_t *r);

/* Truncate segment seg of dir at valid_end, zero-pad to a page boundary, fsync, and delete every
 * segment after it. */
int wal_repair(const char *dir, int seg, size_t valid_end, err_t *err);

#endif
