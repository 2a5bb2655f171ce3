/*
 * chunkfile.h — block chunk segment files (chunks/000001, ...), reference prometheus.md §1.3-1.4.
 *
 * Segment: magic 0x85BD40DD BE32, version 1, 3 zero bytes, then records uvarint(len) enc data
 * CRC32C(enc+data) BE32. A chunk reference is (segment position << 32) | record offset, where the
 * position is 0-based in the sorted list of numeric file names.
 *
 * The writer appends one series' chunks at a time (a batch is never split across segments unless it
 * alone exceeds the segment size, like Prometheus), buffers writes and fsyncs on close.
 * The reader mmaps every segment, checks headers at open and checks bounds and CRC on every get.
 * Errors name the file and offset. Not thread-safe for writing; the reader is read-only after open.
 */
#ifndef STRATA_TSDB_CHUNKFILE_H
#define STRATA_TSDB_CHUNKFILE_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "base/str.h"
#include "model/series.h"

#define CHUNKFILE_MAGIC 0x85BD40DDu
#define CHUNKFILE_HEADER_SIZE 8
#define CHUNKFILE_DEFAULT_SEGMENT_SIZE (512ull * 1024 * 1024)

typedef struct chunkfile_writer {
	char *dir;
	int fd;
	uint32_t nseg;      /* segments created so far */
	uint64_t n;         /* bytes in the current segment */
	uint64_t seg_size;
	buf_t buf;          /* pending bytes of the current segment */
	uint64_t total_bytes;
} chunkfile_writer_t;

/* dir is the chunks/ directory (created if missing). seg_size 0 = 512 MiB. */
int chunkfile_writer_open(chunkfile_writer_t *w, const char *dir, uint64_t seg_size, err_t *err);
/* Write chks[0..n) (one series) and fill refs[i]. */
int chunkfile_writer_write(chunkfile_writer_t *w, const chunk_t *chks, size_t n, uint64_t *refs, err_t *err);
/* Flush, fsync and close; also releases. Safe to call after a failed write (then it just cleans up). */
int chunkfile_writer_close(chunkfile_writer_t *w, err_t *err);
void chunkfile_writer_abort(chunkfile_writer_t *w);

typedef struct chunkfile_seg {
	char *path;
	const uint8_t *p;
	size_t len;
} chunkfile_seg_t;

typedef struct chunkfile_reader {
	chunkfile_seg_t *seg;
	size_t nseg;
	uint64_t total_bytes;
} chunkfile_reader_t;

int chunkfile_reader_open(chunkfile_reader_t *r, const char *dir, err_t *err);
void chunkfile_reader_close(chunkfile_reader_t *r);
/* Resolve ref: fills out->enc, out->data, out->len (pointing into the mmap; mint/maxt untouched). */
int chunkfile_reader_get(const chunkfile_reader_t *r, uint64_t ref, chunk_t *out, err_t *err);

#endif
