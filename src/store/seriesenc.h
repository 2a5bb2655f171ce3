/*
 * seriesenc.h — SeriesResponse{series} messages encoded by hand (reference thanos.md §2.3): the
 * Series call's hot path, where protobuf-c's table-driven get_packed_size + pack and the structs
 * and string copies they need cost more than the rest of the message's work.
 *
 * Wire layout: SeriesResponse{series = 1} > Series{labels = 1 (repeated Label{name = 1, value = 2}),
 * chunks = 2 (repeated AggrChunk{min_time = 1, max_time = 2, raw = 3, count = 4, sum = 5, min = 6,
 * max = 7, counter = 8, each Chunk{type = 1, data = 2, hash = 3}})}. As protobuf-c writes proto3:
 * fields in field-number order, zero scalars, empty strings and bytes and absent messages left out,
 * repeated elements always written (an empty Label is two bytes). The bytes equal protobuf-c's
 * thanos__series_response__pack of the same message (seriesenc_test), except that label strings
 * are written with their full length where protobuf-c would stop at a NUL byte.
 */
#ifndef STRATA_STORE_SERIESENC_H
#define STRATA_STORE_SERIESENC_H

#include <stddef.h>
#include <stdint.h>

#include "model/labels.h"
#include "storepb_rpc.pb-c.h"

/* Encoded length of the SeriesResponse carrying labels ls and chunks cs[0..n). */
size_t seriesenc_size(const labels_t *ls, Thanos__AggrChunk *const *cs, size_t n);
/* Write it to p: len is what seriesenc_size returned for the same series; returns p + len. */
uint8_t *seriesenc_write(uint8_t *p, size_t len, const labels_t *ls, Thanos__AggrChunk *const *cs, size_t n);

#endif
