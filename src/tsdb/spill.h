/*
 * spill.h — anonymous temp files for the block and index writers' external sorts.
 *
 * spill_open creates <prefix>.spill-XXXXXX with O_EXCL and unlinks it at once: the file has no
 * name while it is used, so it is gone on spill_close, on every error path and after a crash, and
 * never appears in a block directory. Bytes are appended through a 256 KiB buffer; readers read
 * back any range sequentially with their own bounded buffer (pread, so several readers can walk
 * different runs of one file at once). Errors name the temp file and the offset. Not thread-safe.
 */
#ifndef STRATA_TSDB_SPILL_H
#define STRATA_TSDB_SPILL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "base/str.h"

typedef struct spill {
	int fd;       /* -1 when closed */
	char *path;   /* the (already unlinked) name, for messages */
	uint64_t end; /* bytes appended, buffered ones included */
	buf_t out;    /* appended, not yet written */
} spill_t;

/* Zeroes s (fd -1) so spill_close is safe on a spill never opened. */
void spill_init(spill_t *s);
int spill_open(spill_t *s, const char *prefix, err_t *err);
bool spill_is_open(const spill_t *s);
int spill_append(spill_t *s, const void *p, size_t n, err_t *err);
/* Writes buffered bytes; readers call it themselves before reading. */
int spill_flush(spill_t *s, err_t *err);
void spill_close(spill_t *s);

/* Sequential reader of [off, end) of a spill; the buffer grows only to the largest single need. */
typedef struct spill_reader {
	spill_t *s;
	uint64_t pos, end; /* file offset of buf[w]; end of the range */
	uint8_t *buf;
	size_t cap, r, w; /* unread bytes are buf[r..w) */
} spill_reader_t;

void spill_reader_init(spill_reader_t *rd, spill_t *s, uint64_t off, uint64_t end, size_t bufsize);
/* Bytes left in the range (unread buffered ones included). */
uint64_t spill_reader_left(const spill_reader_t *rd);
/* Makes n contiguous bytes available at *p (valid until the next call); ERR_CORRUPT if the range
 * has fewer than n bytes left, ERR_IO on a read error. Does not consume them. */
int spill_reader_need(spill_reader_t *rd, size_t n, const uint8_t **p, err_t *err);
void spill_reader_skip(spill_reader_t *rd, size_t n); /* after a successful need of >= n */
void spill_reader_release(spill_reader_t *rd);

#endif
