/*
 * aggr.c — aggregate chunks (encoding 0xFF) and their iterators (see aggr.h).
 */
#include "tsdb/aggr.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

#include "base/alloc.h"
#include "base/varint.h"

static const char *const names[AGGR_N] = {"count", "sum", "min", "max", "counter"};

const char *aggr_type_name(aggr_type_t t)
{
	return t < AGGR_N ? names[t] : "?";
}

int aggr_chunk_split(const uint8_t *p, size_t len, chunk_t subs[AGGR_N], err_t *err)
{
	memset(subs, 0, AGGR_N * sizeof *subs);
	size_t off = 0;
	for (int i = 0; i < AGGR_N; i++) {
		uint64_t l;
		int k = uvarint_get(p + off, p + len, &l);
		if (k <= 0)
			return err_set(err, ERR_CORRUPT, "aggregate chunk: %s: offset %zu: bad length",
			               names[i], off);
		off += (size_t)k;
		if (l == 0)
			continue;
		if (off >= len || l > len - off - 1)
			return err_set(err, ERR_CORRUPT,
			               "aggregate chunk: %s: offset %zu: %llu bytes run past the end (%zu)",
			               names[i], off, (unsigned long long)l, len);
		uint8_t enc = p[off];
		if (enc != CHUNK_ENC_XOR && enc != CHUNK_ENC_HISTOGRAM && enc != CHUNK_ENC_FLOAT_HISTOGRAM)
			return err_set(err, ERR_CORRUPT,
			               "aggregate chunk: %s: offset %zu: unknown sub-chunk encoding %u",
			               names[i], off, enc);
		subs[i].enc = enc;
		subs[i].data = p + off + 1;
		subs[i].len = (size_t)l;
		off += 1 + (size_t)l;
	}
	if (off != len)
		return err_set(err, ERR_CORRUPT, "aggregate chunk: %zu trailing bytes after the counter",
		               len - off);
	return 0;
}

void aggr_chunk_join(buf_t *b, const chunk_t subs[AGGR_N])
{
	for (int i = 0; i < AGGR_N; i++) {
		buf_put_uvarint(b, subs[i].len);
		if (!subs[i].len)
			continue;
		buf_putc(b, (char)subs[i].enc);
		buf_append(b, subs[i].data, subs[i].len);
	}
}

uint16_t aggr_chunk_num_samples(const uint8_t *p, size_t len)
{
	chunk_t subs[AGGR_N];
	if (aggr_chunk_split(p, len, subs, NULL))
		return 0;
	for (int i = 0; i < AGGR_N; i++)
		if (subs[i].len >= 2)
			return (uint16_t)((subs[i].data[0] << 8) | subs[i].data[1]);
	return 0;
}

bool aggr_chunks_any(const chunk_t *chunks, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (chunks[i].enc == CHUNK_ENC_AGGR)
			return true;
	return false;
}

/* ---- builder ---- */

void aggr_builder_init(aggr_builder_t *b)
{
	memset(b, 0, sizeof *b);
	for (int i = 0; i < AGGR_N; i++)
		xor_enc_init(&b->enc[i]);
	b->mint = INT64_MAX;
	b->maxt = INT64_MIN;
}

void aggr_builder_release(aggr_builder_t *b)
{
	for (int i = 0; i < AGGR_N; i++)
		xor_enc_release(&b->enc[i]);
}

void aggr_builder_reset(aggr_builder_t *b)
{
	for (int i = 0; i < AGGR_N; i++) {
		xor_enc_reset(&b->enc[i]);
		b->used[i] = false;
	}
	b->mint = INT64_MAX;
	b->maxt = INT64_MIN;
}

void aggr_builder_append(aggr_builder_t *b, aggr_type_t t, int64_t ts, double v)
{
	xor_enc_append(&b->enc[t], ts, v);
	b->used[t] = true;
}

void aggr_builder_add(aggr_builder_t *b, int64_t t, double count, double sum, double min, double max,
                      double counter)
{
	if (t < b->mint)
		b->mint = t;
	if (t > b->maxt)
		b->maxt = t;
	aggr_builder_append(b, AGGR_COUNT, t, count);
	aggr_builder_append(b, AGGR_SUM, t, sum);
	aggr_builder_append(b, AGGR_MIN, t, min);
	aggr_builder_append(b, AGGR_MAX, t, max);
	aggr_builder_append(b, AGGR_COUNTER, t, counter);
}

void aggr_builder_encode(aggr_builder_t *b, buf_t *out)
{
	chunk_t subs[AGGR_N] = {0};
	for (int i = 0; i < AGGR_N; i++) {
		if (!b->used[i])
			continue;
		size_t len;
		subs[i].data = xor_enc_bytes(&b->enc[i], &len);
		subs[i].len = len;
		subs[i].enc = CHUNK_ENC_XOR;
	}
	buf_reset(out);
	aggr_chunk_join(out, subs);
}

/* ---- apply counter resets ---- */

int aggr_counter_add(aggr_counter_t *c, int64_t t, double v)
{
	if (isnan(v))
		return 0;
	if (c->total == 0) {
		c->total = 1;
		c->last_t = t;
		c->last_v = v;
		c->total_v = v;
		return 1;
	}
	if (t > c->last_t) {
		c->total_v += v >= c->last_v ? v - c->last_v : v;
		c->total++;
		c->last_t = t;
		c->last_v = v;
		return 1;
	}
	if (t == c->last_t)
		c->last_v = v; /* the true last raw value of the chunk before */
	return 0;              /* same timestamp, or back in time (overlap) */
}

/* ---- iterator ---- */

static int open_chunk(aggr_iter_t *it, err_t *err)
{
	while (it->ci < it->n) {
		const chunk_t *c = &it->chunks[it->ci];
		if (c->maxt < it->mint) {
			it->ci++;
			continue;
		}
		if (c->mint > it->maxt)
			break;
		int rc;
		if (c->enc == CHUNK_ENC_XOR) {
			rc = xor_dec_init(&it->dec[0], c->data, c->len, err);
		} else if (c->enc == CHUNK_ENC_AGGR) {
			chunk_t subs[AGGR_N];
			if ((rc = aggr_chunk_split(c->data, c->len, subs, err)))
				return err_wrap(err, "chunk %zu", it->ci);
			aggr_type_t want = it->view == AGGR_VIEW_AVG             ? AGGR_SUM
			                   : it->view == AGGR_VIEW_COUNT_WEIGHTS ? AGGR_COUNT
			                                                         : (aggr_type_t)it->view;
			for (int k = 0; k < (it->view == AGGR_VIEW_AVG ? 2 : 1); k++) {
				aggr_type_t a = k ? AGGR_COUNT : want;
				if (!subs[a].len)
					return err_set(err, ERR_CORRUPT,
					               "chunk %zu: aggregate chunk without the %s aggregate",
					               it->ci, names[a]);
				if (subs[a].enc != CHUNK_ENC_XOR)
					return err_set(
					    err, ERR_INVALID,
					    "chunk %zu: %s aggregate with encoding %u (only XOR is read)",
					    it->ci, names[a], subs[a].enc);
				if ((rc = xor_dec_init(&it->dec[k], subs[a].data, subs[a].len, err)))
					return err_wrap(err, "chunk %zu: %s aggregate", it->ci, names[a]);
			}
		} else {
			return err_set(err, ERR_INVALID, "chunk %zu: unsupported chunk encoding %u", it->ci,
			               c->enc);
		}
		if (rc)
			return err_wrap(err, "chunk %zu", it->ci);
		it->open = true;
		it->raw = c->enc == CHUNK_ENC_XOR;
		return 0;
	}
	it->ci = it->n;
	return 0;
}

/* A count point never stands for more raw samples than this (a corrupt count stays bounded). */
#define COUNT_EXPAND_MAX (24 * 3600 * 1000ull)

static inline bool is_stale(double v)
{
	uint64_t b;
	memcpy(&b, &v, 8);
	return b == STALE_NAN_BITS;
}

/* Decode the next samples of the open chunk (opening the next one as needed) into the buffer, the
 * view applied per sample where it needs no state (average, raw samples of the count views): 1 = some,
 * 0 at the end, <0 on error. */
static int refill(aggr_iter_t *it, err_t *err)
{
	for (;;) {
		if (!it->open) {
			int rc = open_chunk(it, err);
			if (rc)
				return rc;
			if (!it->open)
				return 0;
		}
		int k = xor_dec_batch(&it->dec[0], it->bt, it->bv, AGGR_ITER_BUF, err);
		if (k < 0)
			return err_wrap(err, "chunk %zu", it->ci);
		if (k == 0) {
			it->open = false;
			it->ci++;
			continue;
		}
		if (it->raw) {
			if (it->view == AGGR_VIEW_COUNT || it->view == AGGR_VIEW_COUNT_WEIGHTS)
				for (int i = 0; i < k; i++)
					if (!is_stale(it->bv[i]))
						it->bv[i] = 1; /* a raw sample counts once */
		} else if (it->view == AGGR_VIEW_AVG) {
			int64_t tc[AGGR_ITER_BUF];
			double cnt[AGGR_ITER_BUF];
			int k2 = xor_dec_batch(&it->dec[1], tc, cnt, k, err);
			if (k2 < 0)
				return err_wrap(err, "chunk %zu: count aggregate", it->ci);
			if (k2 != k || memcmp(tc, it->bt, (size_t)k * sizeof *tc) != 0)
				return err_set(err, ERR_CORRUPT,
				               "chunk %zu: sum and count timestamps not aligned", it->ci);
			for (int i = 0; i < k; i++)
				it->bv[i] /= cnt[i];
		}
		it->bn = k;
		it->bpos = 0;
		it->braw = it->raw;
		return 1;
	}
}

static int aggr_next_batch(sample_iter_t *base, int64_t *t, double *v, int cap, err_t *err)
{
	aggr_iter_t *it = (aggr_iter_t *)base;
	int n = 0;
	while (n < cap) {
		int64_t ts;
		double val;
		if (it->exp_left) {
			ts = it->exp_end - (int64_t)--it->exp_left;
			val = 1;
		} else {
			if (it->bpos == it->bn) {
				int rc = refill(it, err);
				if (rc < 0)
					return rc;
				if (rc == 0)
					break;
			}
			ts = it->bt[it->bpos];
			val = it->bv[it->bpos++];
			if (!it->braw &&
			    (it->view == AGGR_VIEW_COUNT || it->view == AGGR_VIEW_COUNT_WEIGHTS)) {
				/* a window's count c: c raw samples */
				if (!(val >= 1))
					continue;
				uint64_t c =
				    val > (double)COUNT_EXPAND_MAX ? COUNT_EXPAND_MAX : (uint64_t)val;
				if (it->view == AGGR_VIEW_COUNT_WEIGHTS) {
					val = (double)c; /* one sample of weight c at the window's end */
				} else {
					/* c unit samples ending at the window point */
					it->exp_left = c;
					it->exp_end = ts;
					ts = it->exp_end - (int64_t)it->exp_left + 1;
					it->exp_left--;
					val = 1;
				}
			} else if (it->view == AGGR_VIEW_COUNTER) {
				if (!aggr_counter_add(&it->ctr, ts, val))
					continue;
				ts = it->ctr.last_t;
				val = it->ctr.total_v;
			}
		}
		if (ts < it->mint || (it->have_last && ts <= it->last))
			continue;
		if (ts > it->maxt) {
			it->ci = it->n; /* done */
			it->open = false;
			it->exp_left = 0;
			it->bpos = it->bn = 0;
			break;
		}
		it->have_last = true;
		it->last = ts;
		t[n] = ts;
		v[n] = val;
		n++;
	}
	return n;
}

static int aggr_seek(sample_iter_t *base, int64_t t, err_t *err)
{
	aggr_iter_t *it = (aggr_iter_t *)base;
	(void)err;
	if (t > it->mint)
		it->mint = t; /* samples before t are skipped as the batch reads on */
	return 0;
}

static const struct sample_iter_ops aggr_ops = {aggr_next_batch, aggr_seek};

void aggr_iter_init(aggr_iter_t *it, const chunk_t *chunks, size_t n, int64_t mint, int64_t maxt,
                    aggr_view_t view)
{
	/* the sample buffer is left uninitialised: bpos == bn == 0 */
	memset(it, 0, offsetof(aggr_iter_t, bt));
	it->base.ops = &aggr_ops;
	it->chunks = chunks;
	it->n = n;
	it->mint = mint;
	it->maxt = maxt;
	it->view = view;
}

int64_t aggr_decode_chunks(const chunk_t *chunks, size_t n, int64_t mint, int64_t maxt, aggr_view_t view,
                           int64_t **t, double **v, size_t *cap, err_t *err)
{
	aggr_iter_t it;
	aggr_iter_init(&it, chunks, n, mint, maxt, view);
	return sample_iter_drain(&it.base, t, v, cap, err);
}
