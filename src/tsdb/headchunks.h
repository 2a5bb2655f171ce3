/*
 * headchunks.h — the head's full chunks on disk (chunks_head/), byte-compatible with Prometheus
 * 2.42 (reference prometheus.md §2.4): files %06d numbered from 1, each an 8-byte header (magic
 * 0x0130BC91 BE32, version 1, 3 zero bytes) followed by entries
 *     BE64 series ref | BE64 mint | BE64 maxt | encoding byte | uvarint len | data | CRC32C BE32
 * (the CRC covers everything from the series ref through the data). A chunk reference is
 * (file number << 32) | offset of the entry. Files are cut at 128 MiB.
 *
 * Memory holds none of the chunks: entries are written through a 1 MiB buffer, and readers get the
 * bytes from a read-only shared mapping of each file (mapped once, at the file's maximum size, so the
 * mapping never moves while the file grows; only written bytes are ever touched). The WAL, not this
 * file, is what makes samples durable: nothing here is fsynced until close, and a torn or corrupt
 * tail found at open is cut off (the entries after it, and every later file, are dropped; their
 * samples come back from the WAL).
 *
 * Thread-safety: every function may be called from several threads; headchunks_truncate must not
 * run while another thread still uses chunk bytes of the files it deletes (the head guarantees that).
 */
#ifndef STRATA_TSDB_HEADCHUNKS_H
#define STRATA_TSDB_HEADCHUNKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "model/series.h"

#define HEADCHUNKS_MAGIC    0x0130BC91u
#define HEADCHUNKS_HEADER   8
#define HEADCHUNKS_MAX_FILE (128ull << 20)

typedef struct headchunks headchunks_t;

/* Create dir if needed, check the existing files (repairing a torn tail as above) and map them;
 * new chunks go to a new file. *repaired (may be NULL) tells whether anything was cut off. */
int headchunks_open(headchunks_t **out, const char *dir, bool *repaired, err_t *err);
/* Flush, fsync and unmap everything. */
int headchunks_close(headchunks_t *hc, err_t *err);

/* Every entry of the files that existed at open, in file order. fn returning non-zero stops the walk
 * and is returned. */
typedef int (*headchunks_fn)(void *arg, uint64_t series_ref, uint64_t chunk_ref, int64_t mint, int64_t maxt,
                             uint8_t enc);
int headchunks_iterate(headchunks_t *hc, headchunks_fn fn, void *arg, err_t *err);

/* Append one chunk; *ref gets its reference. */
int headchunks_write(headchunks_t *hc, uint64_t series_ref, int64_t mint, int64_t maxt, uint8_t enc,
                     const uint8_t *data, size_t len, uint64_t *ref, err_t *err);
/* The chunk at ref: out->enc, out->data (into the mapping, valid until the file is truncated away),
 * out->len. ERR_CORRUPT for a bad reference or checksum. */
int headchunks_get(headchunks_t *hc, uint64_t ref, chunk_t *out, err_t *err);
/* Write the buffered entries to the file (not fsynced: the WAL holds their samples anyway). */
int headchunks_flush(headchunks_t *hc, err_t *err);
/* Start a new file (so the older ones can be deleted once their chunks are out of the head). */
int headchunks_cut_file(headchunks_t *hc, err_t *err);
/* Delete the files whose number is < first_kept (never the file being written). */
int headchunks_truncate(headchunks_t *hc, uint32_t first_kept, err_t *err);
/* Number of the file being written. */
uint32_t headchunks_current_file(headchunks_t *hc);
/* Total bytes of the files on disk. */
uint64_t headchunks_size(headchunks_t *hc);

#endif
