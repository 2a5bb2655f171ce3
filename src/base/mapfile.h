/*
 * mapfile.h — map a whole file read-only (open + fstat + mmap + close, one error path).
 *
 * Used by the on-disk readers (tsdb index and chunk segments, the store gateway's index-header)
 * that parse a file in place. The mapping is MAP_SHARED, PROT_READ; the descriptor is closed
 * before mapfile_map returns.
 *
 *     const uint8_t *p; size_t len;
 *     int rc = mapfile_map(path, 16, &p, &len, &err);
 *     if (rc) return rc;
 *     if (!p) return err_set(&err, ERR_CORRUPT, "%s: file of %zu bytes is too short", path, len);
 *     ...
 *     mapfile_unmap(p, len);
 *
 * Thread-safety: none needed (no shared state).
 */
#ifndef STRATA_BASE_MAPFILE_H
#define STRATA_BASE_MAPFILE_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

/* Map the file at path. On success returns 0 and sets *len to the file size and *p to the mapping,
 * except that a file shorter than min_len (or empty) is not mapped: *p = NULL, *len = its size, and
 * the caller reports it in its own words (format-specific "too short" error).
 * Errors: the negative code of err_errno with the message "open <path>: ...", "stat <path>: ..."
 * or "mmap <path>: ..."; then *p = NULL and *len = 0. */
int mapfile_map(const char *path, size_t min_len, const uint8_t **p, size_t *len, err_t *err);

/* Unmap what mapfile_map returned; p == NULL is a no-op. */
void mapfile_unmap(const uint8_t *p, size_t len);
/* Drop the resident pages of [from, to) of a mapping (whole pages inside the range only): memory a
 * sequential reader is done with stops counting in its RSS; the bytes come back from the file if
 * they are read again. */
void mapfile_release(const uint8_t *p, size_t from, size_t to);

#endif
