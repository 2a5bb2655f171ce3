/*
 * writer.h — local ingestion of a decoded remote-write request for one tenant: label checks,
 * relabelling, the tenant's head-series limit, one commit to the tenant's head (WAL first, head.h),
 * and the outcome as an HTTP status with a message naming what was wrong and for which series.
 * The HTTP handler calls it after decoding; a hashring router calls it for the local share of a
 * request. Every series is all or nothing (head.h); the others of the request still go in.
 *
 * Status (reference thanos.md §8.5, with this project's choice of 400 for malformed labels):
 *   200 everything stored (duplicates of stored samples count as stored)
 *   400 some series had invalid labels (empty name or value, duplicate or unsorted names, bad
 *       UTF-8) or native histograms (not supported)
 *   409 some series had samples out of order, a duplicate timestamp with another value, out of
 *       bounds, too old, or too far in the future
 *   429 some new series were refused by the tenant's head_series_limit
 *   500 the WAL could not be written (nothing of the request is acknowledged)
 *   503 the tenant's TSDB could not be opened
 * When several apply, the one a sender should act on first wins: 500, 503, 429, 400, 409.
 */
#ifndef STRATA_RECEIVE_WRITER_H
#define STRATA_RECEIVE_WRITER_H

#include <stddef.h>
#include <stdint.h>

#include "base/arena.h"
#include "base/str.h"
#include "model/relabel.h"
#include "receive/multitsdb.h"
#include "receive/writereq.h"

typedef struct rcv_write_result {
	int status;
	buf_t msg;              /* plain text for the response body (empty on 200) */
	size_t series, samples; /* in the request */
	size_t appended;        /* samples stored */
	size_t rejected_series; /* by any rule */
	size_t dropped_series;  /* by relabelling */
	size_t limited_series;  /* by head_series_limit */
} rcv_write_result_t;

void rcv_write_result_init(rcv_write_result_t *r);
void rcv_write_result_release(rcv_write_result_t *r);

/* Ingest req for tenant. relabel may be NULL; head_series_limit 0 = unlimited. Allocates from a. */
void rcv_write(mtsdb_t *mt, str_t tenant, const wr_request_t *req, const relabel_t *relabel,
               int64_t head_series_limit, arena_t *a, rcv_write_result_t *res);

#endif
