/*
 * xor.h — Prometheus XOR ("Gorilla" with millisecond timestamps) chunk encoding, bit-exact with
 * Prometheus 2.42 (reference prometheus.md §1.5).
 *
 * xor_enc_t appends samples (strictly increasing timestamps are the caller's job) and exposes the
 * chunk bytes at any point (header count included, last byte zero-padded). xor_dec_t decodes one
 * chunk with bounds checks: corrupt data yields ERR_CORRUPT naming the bit offset, never a read past
 * the end. xor_iter_t is a sample_iter_t over a list of chunks (sorted by mint), trimmed to
 * [mint, maxt]; its seek(t) goes to the first sample at or after both t and mint (never backwards),
 * skipping whole chunks by their maxt without decoding them. Overlapping chunks (a series read from
 * blocks that overlap in time) give each timestamp once: a chunk continues after the last sample of
 * the chunks before it (the first chunk with a timestamp wins), as Thanos's querier does.
 * Stale NaN markers (and every other NaN payload) round-trip bit-exactly.
 */
#ifndef STRATA_TSDB_XOR_H
#define STRATA_TSDB_XOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "model/series.h"

/* Samples per chunk Prometheus' head aims for, and the hard cap (2x). */
#define XOR_SAMPLES_PER_CHUNK 120

/* Prometheus' staleness marker: a NaN with this exact bit pattern. */
#define STALE_NAN_BITS 0x7ff0000000000002ull
bool value_is_stale_nan(double v);
double stale_nan(void);

typedef struct xor_enc {
	uint8_t *p;
	size_t n, cap;   /* bytes committed (header + full bytes) */
	uint64_t acc;    /* pending bits (low nacc bits, oldest first) */
	int nacc;        /* 0..7 between calls */
	uint16_t num;
	int64_t t, tdelta;
	uint64_t v;
	uint8_t leading, trailing;
	bool last_bytewise; /* last Prometheus writeBits call was whole bytes (see xor_enc_bytes) */
} xor_enc_t;

void xor_enc_init(xor_enc_t *e);
void xor_enc_release(xor_enc_t *e);
void xor_enc_reset(xor_enc_t *e); /* empty chunk, keeps memory */
void xor_enc_append(xor_enc_t *e, int64_t t, double v);
/* The chunk bytes so far (valid until the next append/reset/release). */
const uint8_t *xor_enc_bytes(xor_enc_t *e, size_t *len);
static inline uint16_t xor_enc_count(const xor_enc_t *e)
{
	return e->num;
}

/*
 * xor_app_t: the same encoding with a compact state for long-lived open chunks (the head keeps one
 * per series): bits are written straight into a buffer the appender owns, 40 bytes of state instead of
 * xor_enc_t's 80. The buffer comes from the head's slab (hslab.h) in 16-byte steps, or from the heap
 * (slab NULL: grown by about an eighth). Produces exactly xor_enc_t's bytes (Prometheus's, including the
 * empty trailing byte after a byte-aligned write). Consecutive timestamps must be less than 2^31 ms
 * apart (the head cuts a chunk before its span reaches that).
 */
typedef struct xor_app {
	uint8_t *p;      /* chunk bytes; bytes past the written bits are zero */
	int64_t t;
	uint64_t v;
	int32_t tdelta;
	uint16_t cap;    /* bytes allocated */
	uint16_t nbits;  /* bits written, header included */
	uint16_t num;    /* samples */
	uint8_t leading; /* 0xff = no value window yet */
	uint8_t trailing;
	uint8_t bytewise; /* the last write was whole bytes */
} xor_app_t;

/* Most samples an appender chunk may hold (the head's hard cap: 2 x 120); nbits then stays < 2^16. */
#define XOR_APP_MAX_SAMPLES (2 * XOR_SAMPLES_PER_CHUNK)
/* Largest gap between consecutive timestamps of one appender chunk. */
#define XOR_APP_MAX_DELTA INT32_MAX

struct hslab;
/* slab: where the buffer comes from (NULL = the heap); the same one on every call for an appender. */
void xor_app_init(xor_app_t *a); /* empty, nothing allocated */
void xor_app_release(xor_app_t *a, struct hslab *slab); /* empty, buffer freed */
void xor_app_reset(xor_app_t *a); /* empty chunk, keeps the buffer */
/* Append (strictly increasing timestamps are the caller's job; at most XOR_APP_MAX_SAMPLES). */
void xor_app_append(xor_app_t *a, struct hslab *slab, int64_t t, double v);
/* The chunk bytes (valid until the next append/reset/release); NULL with *len 0 when empty. */
const uint8_t *xor_app_bytes(const xor_app_t *a, size_t *len);

typedef struct xor_dec {
	const uint8_t *p;
	size_t len;
	uint64_t pos; /* bit position */
	uint16_t total, read;
	int64_t t, tdelta;
	uint64_t v;
	uint8_t leading, trailing;
} xor_dec_t;

/* ERR_CORRUPT if len < 2. */
int xor_dec_init(xor_dec_t *d, const uint8_t *p, size_t len, err_t *err);
/* 1 = sample stored in t and v, 0 = end, <0 error. */
int xor_dec_next(xor_dec_t *d, int64_t *t, double *v, err_t *err);
/* Decode up to cap samples into t[]/v[]: the count (0 at the end), <0 on error. The fast path:
 * no per-sample calls or bounds checks except near the end of the chunk. */
int xor_dec_batch(xor_dec_t *d, int64_t *t, double *v, int cap, err_t *err);
/* Number of samples the header claims. */
static inline uint16_t xor_dec_count(const xor_dec_t *d)
{
	return d->total;
}

typedef struct xor_iter {
	sample_iter_t base;
	const chunk_t *chunks;
	size_t nchunks, ci;
	int64_t mint, maxt;
	bool active; /* dec is positioned in chunks[ci] */
	bool done;
	xor_dec_t dec;
	bool have_pending; /* a decoded sample (pt, pv) not yet returned */
	int64_t pt;
	double pv;
	bool have_last; /* the last sample returned (later chunks start after it) */
	int64_t last;
} xor_iter_t;

/* Iterate the samples of chunks[0..n) within [mint, maxt]. The chunks array and the data must
 * outlive the iterator. Non-XOR chunks fail in next_batch with ERR_CORRUPT/ERR_INVALID. */
void xor_iter_init(xor_iter_t *it, const chunk_t *chunks, size_t n, int64_t mint, int64_t maxt);

/* Decode chunks[0..n) within [mint, maxt] into the growable heap arrays *t / *v (capacity *cap,
 * grown with xreallocarray; the caller owns and frees them). Returns the sample count or <0 with err
 * filled. Thread-safe; this is the PromQL engine's promql_opts_t.decode_chunks for XOR data. */
int64_t xor_decode_chunks(const chunk_t *chunks, size_t n, int64_t mint, int64_t maxt, int64_t **t, double **v,
			  size_t *cap, err_t *err);

#endif
