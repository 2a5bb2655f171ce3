/*
 * walrec.h — the records inside Prometheus's WAL (reference prometheus.md §2.2), encoded and
 * decoded byte-compatibly with Prometheus 2.42:
 *
 *   Series (1):     repeated BE64 ref, uvarint #labels, (uvarint-string name, uvarint-string value)...
 *   Samples (2):    BE64 first ref, BE64 first ts, then per sample varint(ref - first ref),
 *                   varint(ts - first ts), BE64 float bits (the first sample is repeated as deltas 0, 0)
 *   Tombstones (3): repeated BE64 ref, varint mint, varint maxt
 *   Metadata (6):   repeated uvarint ref, type byte, uvarint #fields, (uvarint-string name,
 *                   uvarint-string value)... with the fields UNIT and HELP
 * Other types (exemplars, histograms, mmap markers) are recognised by walrec_type and skipped by
 * readers that do not store them.
 *
 * Encoders append to a buf_t. Decoders read a record in place: strings point into the record bytes;
 * malformed input is ERR_CORRUPT saying which field at which byte, never a read past the end.
 */
#ifndef STRATA_TSDB_WALREC_H
#define STRATA_TSDB_WALREC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "base/str.h"
#include "model/labels.h"

enum walrec_type {
	WALREC_UNKNOWN = 255,
	WALREC_SERIES = 1,
	WALREC_SAMPLES = 2,
	WALREC_TOMBSTONES = 3,
	WALREC_EXEMPLARS = 4,
	WALREC_MMAP_MARKERS = 5,
	WALREC_METADATA = 6,
	WALREC_HISTOGRAMS = 7,
	WALREC_FLOAT_HISTOGRAMS = 8,
};

/* Metric types (record.MetricType numbering, equal to the remote-write MetricMetadata enum). */
enum {
	WALREC_MT_UNKNOWN = 0,
	WALREC_MT_COUNTER,
	WALREC_MT_GAUGE,
	WALREC_MT_HISTOGRAM,
	WALREC_MT_GAUGEHISTOGRAM,
	WALREC_MT_SUMMARY,
	WALREC_MT_INFO,
	WALREC_MT_STATESET
};

typedef struct walrec_sample {
	uint64_t ref;
	int64_t t;
	double v;
} walrec_sample_t;

typedef struct walrec_tombstone {
	uint64_t ref;
	int64_t mint, maxt;
} walrec_tombstone_t;

typedef struct walrec_meta {
	uint64_t ref;
	uint8_t type;
	str_t unit, help;
} walrec_meta_t;

/* The record's type, WALREC_UNKNOWN for an empty record. */
int walrec_type(str_t rec);

/* ---- encoding (append to b) ---- */

void walrec_series_begin(buf_t *b);
void walrec_series_add(buf_t *b, uint64_t ref, const labels_t *ls);
void walrec_samples_encode(buf_t *b, const walrec_sample_t *s, size_t n);
void walrec_tombstones_encode(buf_t *b, const walrec_tombstone_t *t, size_t n);
void walrec_metadata_begin(buf_t *b);
void walrec_metadata_add(buf_t *b, const walrec_meta_t *m);

/* ---- decoding ---- */

typedef struct walrec_iter {
	str_t rec;
	size_t off;
	/* Samples: the base */
	uint64_t base_ref;
	int64_t base_t;
	label_t *lbuf; /* Series: label scratch (heap, grown) */
	size_t lcap;
} walrec_iter_t;

/* Start iterating rec (its type must match the next() used). Free with walrec_iter_release. */
int walrec_iter_init(walrec_iter_t *it, str_t rec, err_t *err);
void walrec_iter_release(walrec_iter_t *it);
/* Each returns 1 with the next entry, 0 at the end, ERR_CORRUPT. Labels point into the record and
 * into the iterator's scratch (valid until the next call). */
int walrec_next_series(walrec_iter_t *it, uint64_t *ref, labels_t *ls, err_t *err);
int walrec_next_sample(walrec_iter_t *it, walrec_sample_t *s, err_t *err);
int walrec_next_tombstone(walrec_iter_t *it, walrec_tombstone_t *t, err_t *err);
int walrec_next_metadata(walrec_iter_t *it, walrec_meta_t *m, err_t *err);

#endif
