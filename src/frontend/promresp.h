/*
 * promresp.h — the query frontend's view of a Prometheus HTTP API v1 success response: a range query's
 * matrix, a labels / label-values list, or a series list, with its warnings and query stats; decoded
 * from the downstream's JSON, merged across pieces, cut to a time range, and encoded back exactly as
 * the querier prints it (prometheus.md §5.3/§5.4: values shortest round-trip, timestamps seconds with
 * exactly three decimals when ms != 0, Go's JSON string escaping).
 *
 * Merging reproduces the answer the querier gives for the whole range: matrix series sorted by labels
 * as Prometheus sorts them (labels_cmp), each series' samples in time order with a timestamp present
 * in two pieces kept once (from the earlier piece); label names/values sorted and unique; series label
 * sets sorted and unique; warnings kept once each in first-seen order; stats summed
 * (totalQueryableSamples, timings, per-step entries concatenated in time order; peakSamples is the
 * largest piece's, the one stat a split cannot reproduce).
 *
 * Everything is allocated in the caller's arena. Not thread-safe (arena); results are read-only.
 */
#ifndef STRATA_FRONTEND_PROMRESP_H
#define STRATA_FRONTEND_PROMRESP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "base/arena.h"
#include "base/err.h"
#include "base/str.h"
#include "model/labels.h"

typedef enum promresp_kind {
	PROMRESP_MATRIX, /* /api/v1/query_range */
	PROMRESP_LABELS, /* /api/v1/labels, /api/v1/label/<name>/values: data is a list of strings */
	PROMRESP_SERIES, /* /api/v1/series: data is a list of label sets */
} promresp_kind_t;

typedef struct promresp_point {
	int64_t t; /* ms */
	double v;
} promresp_point_t;

typedef struct promresp_series {
	labels_t ls;
	promresp_point_t *pts; /* MATRIX: ascending t; SERIES: none */
	size_t n;
} promresp_series_t;

enum { PROMRESP_TIMINGS = 6 }; /* evalTotalTime ... execTotalTime, in the order the querier prints them */

typedef struct promresp_stats {
	bool present;                     /* the response carried data.stats */
	bool per_step;                    /* ... with totalQueryableSamplesPerStep */
	double timings[PROMRESP_TIMINGS]; /* seconds */
	int64_t total_samples, peak_samples;
	int64_t *step_t, *step_n; /* per-step (ms, samples), ascending t */
	size_t nsteps;
} promresp_stats_t;

typedef struct promresp {
	promresp_kind_t kind;
	promresp_series_t *series; /* MATRIX, SERIES: sorted by labels, unique */
	size_t nseries;
	str_t *strings; /* LABELS: sorted, unique */
	size_t nstrings;
	str_t *warnings;
	size_t nwarnings;
	promresp_stats_t stats; /* MATRIX only */
} promresp_t;

/* Decode a downstream success body ({"status":"success","data":...}). ERR_CORRUPT with a message
 * saying what is wrong for anything else (an error envelope, a resultType other than matrix, native
 * histograms, malformed JSON). */
int promresp_decode(arena_t *a, promresp_kind_t kind, const char *body, size_t n, promresp_t *out,
                    err_t *err);

/* The whole response envelope as the querier prints it. with_stats: add data.stats (if present in r),
 * with per-step entries only if per_step. */
void promresp_encode(buf_t *b, const promresp_t *r, bool with_stats, bool per_step);

/* Merge responses of the same kind (any order; for a matrix a timestamp already seen for a series is
 * dropped from later inputs in order of their first timestamp). Stats: present only if present in
 * every input. */
void promresp_merge(arena_t *a, const promresp_t *const *in, size_t n, promresp_t *out);

/* MATRIX: the part of r within [start, end] (ms, inclusive): points outside dropped, series left with
 * no point dropped, per-step stats cut and totals recomputed from them (stats without per-step entries
 * become absent unless the range covers everything). LABELS/SERIES: r unchanged. */
void promresp_extract(arena_t *a, const promresp_t *r, int64_t start, int64_t end, promresp_t *out);

/* A matrix answer's series as ready JSON: per series its labels and its points exactly as
 * promresp_encode prints them ([t,"v"],[t,"v"]...). The fragments of pieces that split a range in
 * time order assemble into the answer promresp_encode gives for their merge (without stats). */
typedef struct promresp_frag_series {
	labels_t ls;
	str_t pts;
} promresp_frag_series_t;

typedef struct promresp_frag {
	promresp_frag_series_t *s; /* sorted by labels, unique */
	size_t n;
} promresp_frag_t;

void promresp_frag_make(arena_t *a, const promresp_t *r, promresp_frag_t *out);
/* The series of n fragments in one array, sorted by labels, a label set's entries in fragment order
 * (frag: its fragment's index); *total gets the length. xcalloc'd: the caller frees it. */
typedef struct promresp_frag_ref {
	const promresp_frag_series_t *s;
	size_t frag;
} promresp_frag_ref_t;
promresp_frag_ref_t *promresp_frag_refs(const promresp_frag_t *const *f, size_t n, size_t *total);
/* Cut f's points to [start, end] (ms) in place (the texts get shorter, nothing is copied): points
 * before start and after end dropped, a series may be left with none (promresp_frag_encode leaves out
 * a series with no point in any fragment). false: a points text is not as promresp_frag_make writes it. */
bool promresp_frag_cut(promresp_frag_t *f, int64_t start, int64_t end);
/* The answer for frags of disjoint time ranges in time order (each sorted by labels), with
 * warnings (kept once each, in order). flush (may be NULL) is called with arg whenever b holds
 * PROMRESP_FLUSH_BYTES or more (it sends and empties b), so a large answer needs no buffer of its size. */
#define PROMRESP_FLUSH_BYTES (64 * 1024)
void promresp_frag_encode(buf_t *b, const promresp_frag_t *const *f, size_t n, const str_t *warnings,
                          size_t nwarnings, void (*flush)(void *arg), void *arg);
/* The same answer written as iovecs (write is called with at most max_iov of them, about every part
 * bytes): the fragments' points texts are referenced where they are (they must stay valid as long as
 * what write does with them needs them), the text around them (labels, punctuation, warnings) is
 * copied into a first. */
typedef struct promresp_iov_sink {
	arena_t *a;
	size_t part;
	int max_iov; /* >= 3 */
	void (*write)(void *arg, const struct iovec *iov, int n);
	void *arg;
} promresp_iov_sink_t;
void promresp_frag_encode_iov(const promresp_frag_t *const *f, size_t n, const str_t *warnings,
                              size_t nwarnings, const promresp_iov_sink_t *o);

/* Earliest sample timestamp of a matrix, or -1 when it holds no sample. */
int64_t promresp_min_time(const promresp_t *r);

#endif
