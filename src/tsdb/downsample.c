/*
 * downsample.c — raw → 5m and 5m → 1h aggregate chunks, and whole blocks (see downsample.h).
 */
#include "tsdb/downsample.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/vec.h"
#include "tsdb/aggr.h"
#include "tsdb/xor.h"

#define MAX_SAMPLES_PER_CHUNK 140

void downsample_out_init(downsample_out_t *o)
{
	memset(o, 0, sizeof *o);
	buf_init(&o->data);
}

void downsample_out_release(downsample_out_t *o)
{
	buf_release(&o->data);
	free(o->chunks);
	free(o->off);
	memset(o, 0, sizeof *o);
}

static void out_clear(downsample_out_t *o)
{
	buf_reset(&o->data);
	o->n = 0;
}

static void out_add(downsample_out_t *o, aggr_builder_t *ab, buf_t *tmp)
{
	aggr_builder_encode(ab, tmp);
	if (o->n == o->cap) {
		o->cap = alloc_grow_cap(o->cap, o->n + 1);
		o->chunks = xreallocarray(o->chunks, o->cap, sizeof *o->chunks);
		o->off = xreallocarray(o->off, o->cap, sizeof *o->off);
	}
	o->off[o->n] = o->data.n;
	o->chunks[o->n] = (chunk_t){ab->mint, ab->maxt, CHUNK_ENC_AGGR, NULL, tmp->n};
	o->n++;
	buf_append(&o->data, tmp->p, tmp->n);
}

/* Points chunks[i].data into data (valid until o changes). */
static void out_finish(downsample_out_t *o)
{
	for (size_t i = 0; i < o->n; i++)
		o->chunks[i].data = (const uint8_t *)o->data.p + o->off[i];
}

int downsample_target_chunks(int64_t mint, int64_t maxt, int64_t in_res, int64_t out_res, size_t count)
{
	double max_samples = (double)((maxt - mint) / out_res);
	double span = (double)(maxt - mint) / (double)in_res;
	double full = span > 0 ? (double)count / span : 1;
	if (full > 1)
		full = 1;
	long long expected = (long long)(max_samples * full) + 1;
	int x = 1;
	while (expected / x > MAX_SAMPLES_PER_CHUNK)
		x++;
	return x;
}

/* The window of resolution r holding t ends at this timestamp (inclusive). */
static int64_t window_end(int64_t t, int64_t r)
{
	int64_t m = t % r;
	if (m < 0)
		m += r;
	return t - m + r - 1;
}

typedef struct aggregator {
	uint64_t total, count;
	double sum, min, max, counter, last;
} aggregator_t;

static void aggr_reset(aggregator_t *a)
{
	a->count = 0;
	a->sum = 0;
	a->min = DBL_MAX;
	a->max = -DBL_MAX;
}

static void aggr_add(aggregator_t *a, double v)
{
	if (a->total > 0)
		a->counter += v < a->last ? v : v - a->last;
	else
		a->counter = v;
	a->last = v;
	a->sum += v;
	a->count++;
	a->total++;
	if (v < a->min)
		a->min = v;
	if (v > a->max)
		a->max = v;
}

typedef void (*window_fn)(void *arg, int64_t t, const aggregator_t *a);

/* One point per window of samples t/v[0..n) (NaN skipped), at the window's end capped to the last
 * timestamp; returns the last point's timestamp. */
static int64_t batch_windows(const int64_t *t, const double *v, size_t n, int64_t r, window_fn fn, void *arg)
{
	aggregator_t a = {0};
	aggr_reset(&a);
	int64_t next = INT64_MIN, last = t[n - 1];
	bool open = false;
	for (size_t i = 0; i < n; i++) {
		if (isnan(v[i]))
			continue;
		if (!open || t[i] > next) {
			if (open)
				fn(arg, next, &a);
			aggr_reset(&a);
			next = window_end(t[i], r);
			if (next > last)
				next = last;
			open = true;
		}
		aggr_add(&a, v[i]);
	}
	if (open)
		fn(arg, next, &a);
	return next;
}

static void raw_window(void *arg, int64_t t, const aggregator_t *a)
{
	aggr_builder_add(arg, t, (double)a->count, a->sum, a->min, a->max, a->counter);
}

void downsample_raw(const int64_t *t, const double *v, size_t n, int64_t block_mint, int64_t block_maxt,
                    int64_t res, downsample_out_t *o)
{
	out_clear(o);
	if (n == 0)
		return;
	int chunks = downsample_target_chunks(block_mint, block_maxt, DOWNSAMPLE_RAW_STEP, res, n);
	size_t batch = n / (size_t)chunks + 1;
	aggr_builder_t ab;
	aggr_builder_init(&ab);
	buf_t tmp = BUF_INIT;
	size_t i = 0;
	while (i < n) {
		size_t j = i + batch < n ? i + batch : n;
		/* The batch goes on to the end of the window its last sample falls in. */
		int64_t w = window_end(t[j - 1], res);
		while (j < n && t[j] <= w)
			j++;
		aggr_builder_reset(&ab);
		/* The counter starts with the batch's first raw value and ends with its last one. */
		aggr_builder_append(&ab, AGGR_COUNTER, t[i], v[i]);
		int64_t last_t = batch_windows(t + i, v + i, j - i, res, raw_window, &ab);
		aggr_builder_append(&ab, AGGR_COUNTER, last_t, v[j - 1]);
		out_add(o, &ab, &tmp);
		i = j;
	}
	out_finish(o);
	buf_release(&tmp);
	aggr_builder_release(&ab);
}

/* ---- 5m -> 1h ---- */

typedef struct samples {
	int64_t *t;
	double *v;
	size_t n, cap;
} samples_t;

static void samples_push(samples_t *s, int64_t t, double v)
{
	if (s->n == s->cap) {
		s->cap = alloc_grow_cap(s->cap, s->n + 1);
		s->t = xreallocarray(s->t, s->cap, sizeof *s->t);
		s->v = xreallocarray(s->v, s->cap, sizeof *s->v);
	}
	s->t[s->n] = t;
	s->v[s->n++] = v;
}

typedef struct aggr_ctx {
	aggr_builder_t *ab;
	aggr_type_t type;
} aggr_ctx_t;

static void aggr_window(void *arg, int64_t t, const aggregator_t *a)
{
	aggr_ctx_t *c = arg;
	double v = c->type == AGGR_MIN       ? a->min
	           : c->type == AGGR_MAX     ? a->max
	           : c->type == AGGR_COUNTER ? a->max
	                                     : a->sum;
	if (t < c->ab->mint)
		c->ab->mint = t;
	if (t > c->ab->maxt)
		c->ab->maxt = t;
	aggr_builder_append(c->ab, c->type, t, v);
}

/* The samples of aggregate `type` of chunks[0..n) (absent aggregates skipped). */
static int expand(const chunk_t *chunks, size_t n, aggr_type_t type, samples_t *s, err_t *err)
{
	s->n = 0;
	for (size_t i = 0; i < n; i++) {
		chunk_t subs[AGGR_N];
		int rc = aggr_chunk_split(chunks[i].data, chunks[i].len, subs, err);
		if (rc)
			return rc;
		if (!subs[type].len)
			continue;
		if (subs[type].enc != CHUNK_ENC_XOR)
			return err_set(err, ERR_INVALID,
			               "%s aggregate with encoding %u: only float series are downsampled",
			               aggr_type_name(type), subs[type].enc);
		xor_dec_t d;
		if ((rc = xor_dec_init(&d, subs[type].data, subs[type].len, err)))
			return rc;
		int64_t t;
		double v;
		while ((rc = xor_dec_next(&d, &t, &v, err)) == 1)
			samples_push(s, t, v);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static int aggr_batch(const chunk_t *chunks, size_t n, int64_t res, aggr_builder_t *ab, samples_t *s,
                      err_t *err)
{
	aggr_builder_reset(ab);
	for (aggr_type_t a = AGGR_COUNT; a <= AGGR_MAX; a++) {
		int rc = expand(chunks, n, a, s, err);
		if (rc)
			return rc;
		if (!s->n)
			continue;
		aggr_ctx_t c = {ab, a}; /* count: the sum of the counts */
		batch_windows(s->t, s->v, s->n, res, aggr_window, &c);
	}
	/* The counter, made monotonic across the input chunks first. */
	samples_t raw = {0};
	int rc = expand(chunks, n, AGGR_COUNTER, &raw, err);
	if (rc) {
		free(raw.t);
		free(raw.v);
		return rc;
	}
	/* Each input chunk's counter reads through apply-counter-resets; a chunk's first sample is its
	 * first raw value, a repeated timestamp its true last raw value. */
	aggr_counter_t ctr = {0};
	s->n = 0;
	for (size_t i = 0; i < raw.n; i++)
		if (aggr_counter_add(&ctr, raw.t[i], raw.v[i]))
			samples_push(s, ctr.last_t, ctr.total_v);
	free(raw.t);
	free(raw.v);
	if (s->n) {
		aggr_builder_append(ab, AGGR_COUNTER, s->t[0], s->v[0]);
		aggr_ctx_t c = {ab, AGGR_COUNTER};
		int64_t last_t = batch_windows(s->t, s->v, s->n, res, aggr_window, &c);
		aggr_builder_append(ab, AGGR_COUNTER, last_t, ctr.last_v);
	}
	return 0;
}

int downsample_aggr(const chunk_t *chunks, size_t n, int64_t block_mint, int64_t block_maxt, int64_t in_res,
                    int64_t res, downsample_out_t *o, err_t *err)
{
	out_clear(o);
	if (n == 0)
		return 0;
	size_t count = 0;
	for (size_t i = 0; i < n; i++)
		count += aggr_chunk_num_samples(chunks[i].data, chunks[i].len);
	int nchunks = downsample_target_chunks(block_mint, block_maxt, in_res, res, count);
	size_t batch = n / (size_t)nchunks;
	if (batch < 1)
		batch = 1;
	aggr_builder_t ab;
	aggr_builder_init(&ab);
	buf_t tmp = BUF_INIT;
	samples_t s = {0};
	int rc = 0;
	for (size_t i = 0; i < n && !rc; i += batch) {
		size_t k = i + batch <= n ? batch : n - i;
		rc = aggr_batch(chunks + i, k, res, &ab, &s, err);
		if (!rc && ab.mint <= ab.maxt)
			out_add(o, &ab, &tmp);
	}
	out_finish(o);
	free(s.t);
	free(s.v);
	buf_release(&tmp);
	aggr_builder_release(&ab);
	return rc;
}

/* ---- blocks ---- */

static bool in_tombstone(const tomb_interval_t *iv, size_t n, int64_t t)
{
	for (size_t i = 0; i < n; i++)
		if (iv[i].mint <= t && t <= iv[i].maxt)
			return true;
	return false;
}

int downsample_block(block_t *in, const char *parent_dir, int64_t res, const block_meta_t *meta_in,
                     bool (*progress)(void *arg, uint64_t series), void *progress_arg,
                     downsample_result_t *out, err_t *err)
{
	memset(out, 0, sizeof *out);
	int64_t in_res = in->meta.resolution;
	if (in_res >= res)
		return err_set(err, ERR_INVALID, "block %s: resolution %lld is not below %lld", in->dir,
		               (long long)in_res, (long long)res);
	block_writer_opts_t wo = {.meta_mint = in->meta.mint, .meta_maxt = in->meta.maxt};
	block_writer_t *bw;
	int rc = block_writer_new(&bw, parent_dir, &wo, err);
	if (rc)
		return rc;
	block_walk_t w;
	block_walk_init(&w, in);
	VEC(chunk_t) chunks = {0};
	samples_t raw = {0};
	downsample_out_t o;
	downsample_out_init(&o);
	int64_t t[256];
	double v[256];
	for (;;) {
		int more = block_walk_next(&w, err);
		if (more <= 0) {
			rc = more;
			break;
		}
		VEC_RESERVE(&chunks, w.ncm + 1);
		chunks.n = 0;
		for (size_t k = 0; k < w.ncm && !rc; k++) {
			chunk_t *c = &chunks.v[chunks.n++];
			c->mint = w.cm[k].mint;
			c->maxt = w.cm[k].maxt;
			rc = chunkfile_reader_get(&in->cf, w.cm[k].ref, c, err);
		}
		if (rc) {
			err_wrap(err, "block %s", in->dir);
			break;
		}
		if (in_res == 0) {
			/* One series' samples, tombstones and NaN (stale markers too) dropped. */
			size_t nd = 0;
			const tomb_interval_t *del = tombstones_of(&in->tomb, w.id, &nd);
			xor_iter_t it;
			xor_iter_init(&it, chunks.v, chunks.n, INT64_MIN, INT64_MAX);
			raw.n = 0;
			int k;
			while ((k = sample_iter_next_batch(&it.base, t, v, 256, err)) > 0)
				for (int i = 0; i < k; i++)
					if (!isnan(v[i]) && !in_tombstone(del, nd, t[i]))
						samples_push(&raw, t[i], v[i]);
			if (k < 0) {
				rc = err_wrap(err, "block %s", in->dir);
				break;
			}
			out->samples_in += raw.n;
			downsample_raw(raw.t, raw.v, raw.n, in->meta.mint, in->meta.maxt, res, &o);
		} else {
			for (size_t i = 0; i < chunks.n; i++)
				out->samples_in += aggr_chunk_num_samples(chunks.v[i].data, chunks.v[i].len);
			if ((rc = downsample_aggr(chunks.v, chunks.n, in->meta.mint, in->meta.maxt, in_res,
			                          res, &o, err))) {
				err_wrap(err, "block %s", in->dir);
				break;
			}
		}
		if (!o.n)
			continue;
		uint64_t ns = 0;
		for (size_t i = 0; i < o.n; i++)
			ns += aggr_chunk_num_samples(o.chunks[i].data, o.chunks[i].len);
		if ((rc = block_writer_add_chunks(bw, &w.ls, o.chunks, o.n, ns, err)))
			break;
		out->series++;
		out->samples_out += ns;
		out->chunks += o.n;
		if (progress && out->series % 1024 == 0 && !progress(progress_arg, out->series)) {
			rc = err_set(err, ERR_CANCELED, "downsampling of block %s stopped", in->dir);
			break;
		}
	}
	block_walk_release(&w);
	VEC_FREE(&chunks);
	free(raw.t);
	free(raw.v);
	downsample_out_release(&o);
	if (rc) {
		block_writer_abort(bw);
		return rc;
	}
	if (!out->series) {
		out->empty = true;
		block_writer_abort(bw);
		return 0;
	}
	return block_writer_finish(bw, meta_in, out->dir, err);
}
