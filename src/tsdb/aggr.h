/*
 * aggr.h — Thanos's downsampled aggregate chunks (chunk encoding 0xFF, reference thanos.md §4.2,
 * §4.4) and the iterators that read them.
 *
 * An aggregate chunk holds up to five sub-chunks in the fixed order count, sum, min, max, counter;
 * each is `uvarint L`, then, when L > 0, one encoding byte (XOR 1, histogram 2, float histogram 3)
 * and L bytes of sub-chunk data (L counts the data only). It is stored in ordinary chunk segment
 * files with encoding byte 0xFF, so Thanos's store gateway reads Strata's downsampled blocks and the
 * other way round.
 *
 * Reading (§4.4): aggr_iter_t is a sample iterator over a series' chunks (sorted by mint) where each
 * chunk is either raw (XOR: used as it is) or aggregated (0xFF: the view's aggregate is read):
 *   AGGR_VIEW_SUM/MIN/MAX        that sub-chunk's samples;
 *   AGGR_VIEW_COUNT              the raw samples counted: a count point c at window end w stands for
 *                                c unit samples (value 1) at w-c+1 .. w (inside its window), a raw
 *                                sample for one; so count_over_time over whole windows counts the raw
 *                                samples (Thanos counts the aggregate points instead);
 *   AGGR_VIEW_COUNT_WEIGHTS      the same counts without the expansion: one sample per count point,
 *                                at w with value c, and value 1 per raw sample; a reader that sums
 *                                the values of a window (the engine's count_over_time over such a
 *                                series) gets AGGR_VIEW_COUNT's count while decoding c times fewer
 *                                samples;
 *   AGGR_VIEW_COUNTER            the counter sub-chunks through the apply-counter-resets logic: the
 *                                first sample starts the total; a later timestamp adds the delta
 *                                (or the whole value after a drop: a reset); a sample at the same
 *                                timestamp as the one before only records the true last raw value
 *                                (used to see a reset between chunks); NaN dropped; samples going
 *                                back in time (overlaps) skipped. The output is a monotonic counter;
 *   AGGR_VIEW_AVG                sum / count per timestamp (ERR_CORRUPT "sum and count timestamps
 *                                not aligned" when they differ).
 * Raw chunks interleave with aggregated ones (a finer resolution filling a gap): both pass through
 * the view (raw samples as they are, 1 in the count views except stale markers, which stay markers; the
 * counter view also runs raw samples through its total, so a reset at the border is applied). Every error
 * names the chunk and what is wrong (bad lengths, unknown sub-encodings, a missing aggregate): a corrupt
 * chunk never crashes or reads past its end.
 */
#ifndef STRATA_TSDB_AGGR_H
#define STRATA_TSDB_AGGR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "base/str.h"
#include "model/series.h"
#include "tsdb/xor.h"

typedef enum aggr_type { AGGR_COUNT, AGGR_SUM, AGGR_MIN, AGGR_MAX, AGGR_COUNTER, AGGR_N } aggr_type_t;

const char *aggr_type_name(aggr_type_t t); /* "count", "sum", "min", "max", "counter" */

/* The sub-chunks of an aggregate chunk's data: subs[t].len == 0 when aggregate t is absent; enc,
 * data, len set otherwise (data points into p). mint/maxt are left 0. ERR_CORRUPT naming the
 * aggregate and offset on bad lengths, unknown encodings or trailing bytes. */
int aggr_chunk_split(const uint8_t *p, size_t len, chunk_t subs[AGGR_N], err_t *err);
/* Append the encoding of subs (absent ones with len 0) to b: the chunk data of an 0xFF chunk. */
void aggr_chunk_join(buf_t *b, const chunk_t subs[AGGR_N]);
/* Samples of an aggregate chunk as Thanos counts them: those of its first present sub-chunk. */
uint16_t aggr_chunk_num_samples(const uint8_t *p, size_t len);

/* Builds one aggregate chunk: five XOR encoders. */
typedef struct aggr_builder {
	xor_enc_t enc[AGGR_N];
	bool used[AGGR_N];
	int64_t mint, maxt; /* of the window points added with aggr_builder_add */
} aggr_builder_t;

void aggr_builder_init(aggr_builder_t *b);
void aggr_builder_release(aggr_builder_t *b);
void aggr_builder_reset(aggr_builder_t *b);
/* One sample of one aggregate. */
void aggr_builder_append(aggr_builder_t *b, aggr_type_t t, int64_t ts, double v);
/* A window's point: count, sum, min, max and counter at t (widens mint/maxt). */
void aggr_builder_add(aggr_builder_t *b, int64_t t, double count, double sum, double min, double max,
                      double counter);
/* The chunk so far, into b (cleared first): data for encoding CHUNK_ENC_AGGR. */
void aggr_builder_encode(aggr_builder_t *b, buf_t *out);

typedef enum aggr_view {
	AGGR_VIEW_COUNT = AGGR_COUNT,
	AGGR_VIEW_SUM = AGGR_SUM,
	AGGR_VIEW_MIN = AGGR_MIN,
	AGGR_VIEW_MAX = AGGR_MAX,
	AGGR_VIEW_COUNTER = AGGR_COUNTER,
	AGGR_VIEW_AVG,
	AGGR_VIEW_COUNT_WEIGHTS,
} aggr_view_t;

/* Apply-counter-resets state (shared by the reader and the 5m -> 1h downsampling). */
typedef struct aggr_counter {
	uint64_t total; /* samples seen */
	int64_t last_t; /* timestamp of the last sample */
	double last_v;  /* its raw value */
	double total_v; /* the monotonic counter */
} aggr_counter_t;

/* Feed one counter sample: 1 when (last_t, total_v) is an output sample, 0 when it only set the
 * true last value (same timestamp) or was skipped (NaN, back in time). */
int aggr_counter_add(aggr_counter_t *c, int64_t t, double v);

#define AGGR_ITER_BUF 128

typedef struct aggr_iter {
	sample_iter_t base;
	const chunk_t *chunks;
	size_t n, ci;
	int64_t mint, maxt;
	aggr_view_t view;
	bool open;
	xor_dec_t dec[2]; /* the chunk's sub-chunk(s) being read: [0] the view's, [1] count for AVG */
	aggr_counter_t ctr;
	int64_t exp_end; /* AGGR_VIEW_COUNT: unit samples still to give, ending at exp_end */
	uint64_t exp_left;
	bool have_last;
	int64_t last; /* last timestamp given: later chunks continue after it */
	bool raw;     /* the open chunk is raw XOR */
	bool braw;    /* the buffer's samples came from a raw chunk */
	int bpos, bn; /* decoded samples bt/bv[bpos..bn) not given yet (sub-chunks decode in batches) */
	int64_t bt[AGGR_ITER_BUF]; /* last: aggr_iter_init leaves the buffer uninitialised */
	double bv[AGGR_ITER_BUF];
} aggr_iter_t;

/* Iterate chunks[0..n) (raw XOR or 0xFF) within [mint, maxt] through view. The chunks must outlive the
 * iterator. */
void aggr_iter_init(aggr_iter_t *it, const chunk_t *chunks, size_t n, int64_t mint, int64_t maxt,
                    aggr_view_t view);

/* Decode chunks[0..n) (raw XOR or 0xFF) within [mint, maxt] through view into the growable heap arrays
 * *t / *v (capacity *cap, grown with xreallocarray; the caller owns and frees them). Returns the sample
 * count or <0 with err filled. Thread-safe (the PromQL engine's decoder for downsampled series). */
int64_t aggr_decode_chunks(const chunk_t *chunks, size_t n, int64_t mint, int64_t maxt, aggr_view_t view,
                           int64_t **t, double **v, size_t *cap, err_t *err);

/* Does any chunk of chunks[0..n) have the aggregate encoding? */
bool aggr_chunks_any(const chunk_t *chunks, size_t n);

#endif
