/*
 * indexheader.h — the store gateway's local index-header (reference thanos.md §3.5): the symbol table
 * and the postings offset table of a block's remote index, fetched with range reads (never the
 * whole index), persisted as one small file and read through an mmap.
 *
 * File layout (Thanos binary index-header v1):
 *   magic 0xBAAAD792 BE32 | version 1 | index version 2 | BE64 offset of the postings offset table in
 *   the original index | symbol table (byte copy: len, count, entries, CRC) | postings offset table
 *   (byte copy) | TOC: BE64 symbols ref, BE64 postings offset table ref, CRC32C of those 16 bytes.
 * The postings offset table's offsets point into the remote index: a postings list spans from its
 * offset to the next entry's offset (the last one to the postings offset table), which bounds the
 * range read for it.
 *
 * indexheader_build writes the file atomically (tmp + fsync + rename), so a crash never leaves a
 * half file under the final name. indexheader_open validates the TOC and both section CRCs and keeps
 * only a sample (every 32nd symbol, every 32nd value per label name) in memory; lookups walk the
 * mmap from the nearest sample. Corrupt files are ERR_CORRUPT naming the file and offset (callers
 * rebuild). After open a header is read-only: lookups may run from many threads at once.
 */
#ifndef STRATA_STOREGW_INDEXHEADER_H
#define STRATA_STOREGW_INDEXHEADER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/arena.h"
#include "base/err.h"
#include "base/str.h"
#include "objstore/bucket.h"

#define INDEXHEADER_MAGIC 0xBAAAD792u
#define INDEXHEADER_FILE "index-header"

typedef struct indexheader indexheader_t;

/* Build the header for object `index_name` ("<ULID>/index") of size index_size (< 0: asked from the
 * bucket with one attributes call) and write it to path. Uses two bucket operations besides that: the
 * TOC, then the two sections in one batched range read. ERR_CORRUPT for a malformed remote index. */
int indexheader_build(bucket_t *b, const char *index_name, int64_t index_size, const char *path, err_t *err);

int indexheader_open(indexheader_t **out, const char *path, err_t *err);
void indexheader_close(indexheader_t *h); /* NULL ok */
/* Bytes of the file (mmapped) and of the in-memory samples. */
size_t indexheader_size(const indexheader_t *h);
size_t indexheader_mem(const indexheader_t *h);

uint32_t indexheader_nsymbols(const indexheader_t *h);
/* Symbol by ordinal; ERR_CORRUPT naming the header when out of range. */
int indexheader_symbol(const indexheader_t *h, uint32_t idx, str_t *out, err_t *err);

/* Byte range [*start, *end) of the postings list of name=value in the remote index; false if the
 * pair does not exist. */
bool indexheader_postings_range(const indexheader_t *h, str_t name, str_t value, int64_t *start, int64_t *end);
/* Call fn for every value of name in ascending order with its postings range; fn returns false to
 * stop. Returns false if the name does not exist. */
typedef bool (*indexheader_value_fn)(void *arg, str_t value, int64_t start, int64_t end);
bool indexheader_each_value(const indexheader_t *h, str_t name, indexheader_value_fn fn, void *arg);
/* Label names (sorted, "" excluded), allocated in a. */
void indexheader_label_names(const indexheader_t *h, arena_t *a, str_t **out, size_t *n);

#endif
