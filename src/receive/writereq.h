/*
 * writereq.h — remote write 1.0 request bodies (reference prometheus.md §4.1): snappy block format
 * around a prometheus.WriteRequest, decoded by hand in two passes over the bytes (count, then fill
 * arrays sized exactly), so a request costs a handful of allocations from its arena whatever it
 * holds, and no object per sample or label. Label names and values point into the decoded body.
 *
 * Hostile input: the decompressed size is checked against the snappy header before anything is
 * allocated (a claim above max_decoded, or above what snappy can expand the body to, is refused);
 * every length is checked against what is left; groups and unknown wire types are errors; unknown
 * fields are skipped (proto3). The first pass also refuses a time series without labels and a label
 * too short to hold a name and a value, so the arrays allocated stay within a small multiple of the
 * body. Errors are ERR_INVALID saying what and at which byte.
 *
 * Labels are not checked here: labels_check (model/labels.h) does that, as Thanos's
 * labelpb.ValidateLabels plus UTF-8, once per series the receiver has not seen before.
 */
#ifndef STRATA_RECEIVE_WRITEREQ_H
#define STRATA_RECEIVE_WRITEREQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/arena.h"
#include "base/err.h"
#include "model/labels.h"

/* Snappy cannot expand its input more than ~21x; a claim beyond this is a lie. */
#define WR_SNAPPY_MAX_RATIO 24

typedef struct wr_series {
	labels_t ls;
	/* The series' label fields as sent, when they are head_labels_key's canonical form (adjacent,
	 * 0a len 0a len name 12 len value with one-byte lengths, as senders write them); else NULL. */
	const uint8_t *raw;
	uint32_t nraw;
	/* The whole TimeSeries message as sent (what a router forwards unchanged). */
	const uint8_t *msg;
	uint32_t nmsg;
	const int64_t *t;
	const double *v;
	uint32_t n;           /* samples */
	uint32_t nexemplars;  /* ignored (exemplar storage is off, as with Thanos's default) */
	uint32_t nhistograms; /* native histograms: not supported */
} wr_series_t;

typedef struct wr_meta {
	uint8_t type; /* MetricMetadata.MetricType */
	str_t family, help, unit;
} wr_meta_t;

typedef struct wr_request {
	wr_series_t *series;
	size_t nseries;
	wr_meta_t *meta;
	size_t nmeta;
	size_t nsamples, nlabels, nhistograms, nexemplars;
	/* thanos.WriteRequest (gRPC RemoteWrite between receivers) adds tenant = 2, replica = 3. */
	str_t tenant;
	uint64_t replica;
} wr_request_t;

/* Decompress (snappy block) and decode. ERR_LIMIT when the decompressed size exceeds max_decoded. */
int wr_decode_body(arena_t *a, const void *body, size_t n, size_t max_decoded, wr_request_t *out, err_t *err);
/* The same; with labels_only the samples are counted but not decoded (t and v stay NULL): what a
 * router that stores nothing needs, since it forwards each series' bytes as they came. */
int wr_decode_body_ex(arena_t *a, const void *body, size_t n, size_t max_decoded, bool labels_only,
                      wr_request_t *out, err_t *err);
/* Only the snappy block: the decompressed bytes in a (same checks and errors as wr_decode_body). */
int wr_uncompress_body(arena_t *a, const void *body, size_t n, size_t max_decoded, const uint8_t **out,
                       size_t *out_n, err_t *err);
/* Decode a WriteRequest protobuf (p must outlive out: strings point into it). */
int wr_decode(arena_t *a, const uint8_t *p, size_t n, wr_request_t *out, err_t *err);

#endif
