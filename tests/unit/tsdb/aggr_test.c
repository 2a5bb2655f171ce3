/*
 * aggr_test.c — aggregate chunks (0xFF): split/join byte layout, corrupt input (every truncation and
 * bad byte gives an error, never a crash), and the views a querier reads (count, sum, min, max,
 * average, apply-counter-resets across chunks, raw chunks interleaved).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "test.h"
#include "tsdb/aggr.h"

/* An aggregate chunk from points (t, count, sum, min, max, counter) plus the counter framing. */
static void make(buf_t *out, aggr_builder_t *ab, const int64_t *t, const double (*p)[5], int n,
                 int64_t first_t, double first_raw, double last_raw, chunk_t *c)
{
	aggr_builder_reset(ab);
	aggr_builder_append(ab, AGGR_COUNTER, first_t, first_raw);
	for (int i = 0; i < n; i++)
		aggr_builder_add(ab, t[i], p[i][0], p[i][1], p[i][2], p[i][3], p[i][4]);
	aggr_builder_append(ab, AGGR_COUNTER, t[n - 1], last_raw);
	aggr_builder_encode(ab, out);
	*c = (chunk_t){ab->mint, ab->maxt, CHUNK_ENC_AGGR, (const uint8_t *)out->p, out->n};
}

static int read_all(const chunk_t *c, size_t n, aggr_view_t view, int64_t *t, double *v, int cap, err_t *err)
{
	aggr_iter_t it;
	aggr_iter_init(&it, c, n, INT64_MIN, INT64_MAX, view);
	int total = 0, k;
	while ((k = sample_iter_next_batch(&it.base, t + total, v + total, cap - total, err)) > 0)
		total += k;
	return k < 0 ? k : total;
}

TEST(split_join_layout)
{
	aggr_builder_t ab;
	aggr_builder_init(&ab);
	buf_t b = BUF_INIT;
	int64_t t[2] = {299999, 599999};
	double p[2][5] = {{5, 10, 1, 3, 100}, {5, 20, 2, 6, 120}};
	chunk_t c;
	make(&b, &ab, t, p, 2, 0, 90, 118, &c);
	chunk_t subs[AGGR_N];
	err_t err = {0};
	CHECK_EQ_INT(aggr_chunk_split(c.data, c.len, subs, &err), 0);
	for (int i = 0; i < AGGR_N; i++) {
		CHECK(subs[i].len > 2);
		CHECK_EQ_INT(subs[i].enc, CHUNK_ENC_XOR);
	}
	/* layout: uvarint len, encoding byte, data, for count first */
	CHECK_EQ_INT(c.data[0], subs[0].len);
	CHECK_EQ_INT(c.data[1], CHUNK_ENC_XOR);
	CHECK(subs[0].data == c.data + 2);
	CHECK_EQ_INT(aggr_chunk_num_samples(c.data, c.len), 2);
	CHECK_EQ_INT(c.mint, 299999);
	CHECK_EQ_INT(c.maxt, 599999);
	/* absent aggregates are a zero length */
	chunk_t only[AGGR_N] = {0};
	only[AGGR_MAX] = subs[AGGR_MAX];
	buf_t j = BUF_INIT;
	aggr_chunk_join(&j, only);
	CHECK(j.p[0] == 0 && j.p[1] == 0 && j.p[2] == 0);
	chunk_t back[AGGR_N];
	CHECK_EQ_INT(aggr_chunk_split((const uint8_t *)j.p, j.n, back, &err), 0);
	CHECK(!back[AGGR_COUNT].len && back[AGGR_MAX].len == subs[AGGR_MAX].len);
	CHECK_EQ_INT(aggr_chunk_num_samples((const uint8_t *)j.p, j.n), 2);
	buf_release(&j);
	buf_release(&b);
	aggr_builder_release(&ab);
}

/* The bytes Thanos's EncodeAggrChunk writes for one window point (t 299999: count 5, sum 10, min 1,
 * max 3, counter 100), worked out by hand from thanos.md §4.2 and Prometheus's XOR chunk format:
 * per aggregate uvarint 14 (the sub-chunk's length, without its encoding byte), 0x01 (XOR), then the
 * XOR chunk: 2-byte sample count, varint(t) zig-zagged (599998: be cf 24), the float's 8 bytes and
 * the empty byte Prometheus's bit stream always ends on after whole bytes were written. */
TEST(golden_bytes_thanos_encoding)
{
	static const uint8_t want[] = {
	    0x0e, 0x01, 0x00, 0x01, 0xbe, 0xcf, 0x24, 0x40, 0x14, 0, 0, 0, 0, 0, 0, 0,
	    0x0e, 0x01, 0x00, 0x01, 0xbe, 0xcf, 0x24, 0x40, 0x24, 0, 0, 0, 0, 0, 0, 0,
	    0x0e, 0x01, 0x00, 0x01, 0xbe, 0xcf, 0x24, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0, 0,
	    0x0e, 0x01, 0x00, 0x01, 0xbe, 0xcf, 0x24, 0x40, 0x08, 0, 0, 0, 0, 0, 0, 0,
	    0x0e, 0x01, 0x00, 0x01, 0xbe, 0xcf, 0x24, 0x40, 0x59, 0, 0, 0, 0, 0, 0, 0};
	aggr_builder_t ab;
	aggr_builder_init(&ab);
	aggr_builder_add(&ab, 299999, 5, 10, 1, 3, 100);
	buf_t b = BUF_INIT, j = BUF_INIT;
	aggr_builder_encode(&ab, &b);
	bool same = b.n == sizeof want && memcmp(b.p, want, sizeof want) == 0;
	/* Only the max aggregate: four zero lengths around its entry. */
	chunk_t subs[AGGR_N] = {0}, only[AGGR_N] = {0};
	err_t err = {0};
	int rc = aggr_chunk_split((const uint8_t *)b.p, b.n, subs, &err);
	only[AGGR_MAX] = subs[AGGR_MAX];
	if (!rc)
		aggr_chunk_join(&j, only);
	bool max_only =
	    j.n == 3 + 16 + 1 && !memcmp(j.p, "\0\0\0", 3) && !memcmp(j.p + 3, want + 48, 16) && j.p[19] == 0;
	size_t n = b.n;
	buf_release(&j);
	buf_release(&b);
	aggr_builder_release(&ab);
	CHECK_EQ_INT(n, sizeof want);
	CHECK(same);
	CHECK_EQ_INT(rc, 0);
	CHECK(max_only);
}

TEST(corrupt_chunks_error_never_crash)
{
	aggr_builder_t ab;
	aggr_builder_init(&ab);
	buf_t b = BUF_INIT;
	int64_t t[3] = {299999, 599999, 899999};
	double p[3][5] = {{5, 10, 1, 3, 100}, {5, 20, 2, 6, 120}, {4, 8, 1, 4, 130}};
	chunk_t c;
	make(&b, &ab, t, p, 3, 0, 90, 128, &c);
	err_t err = {0};
	chunk_t subs[AGGR_N];
	/* unknown sub-encoding, trailing bytes, a length past the end */
	uint8_t *d = xmalloc(c.len + 1);
	memcpy(d, c.data, c.len);
	d[c.len] = 0;
	d[1] = 7;
	CHECK_EQ_INT(aggr_chunk_split(d, c.len, subs, &err), ERR_CORRUPT);
	CHECK(strstr(err.msg, "unknown sub-chunk encoding 7") != NULL);
	memcpy(d, c.data, c.len);
	CHECK_EQ_INT(aggr_chunk_split(d, c.len + 1, subs, &err), ERR_CORRUPT);
	CHECK(strstr(err.msg, "trailing") != NULL);
	d[0] = 0xFF;
	d[1] = 0x7F;
	CHECK_EQ_INT(aggr_chunk_split(d, c.len, subs, &err), ERR_CORRUPT);
	free(d);
	/* every truncation and every single-byte change: split or the iterators fail cleanly or read */
	int64_t ts[64];
	double vs[64];
	for (size_t n = 0; n < c.len; n++) {
		chunk_t tc = c;
		tc.len = n;
		for (aggr_view_t v = AGGR_VIEW_COUNT; v <= AGGR_VIEW_COUNT_WEIGHTS; v++)
			CHECK(read_all(&tc, 1, v, ts, vs, 64, &err) <= 64);
	}
	for (size_t i = 0; i < c.len; i++)
		for (int bit = 0; bit < 8; bit++) {
			uint8_t *m = xmemdup(c.data, c.len);
			m[i] ^= (uint8_t)(1 << bit);
			chunk_t mc = c;
			mc.data = m;
			for (aggr_view_t v = AGGR_VIEW_COUNT; v <= AGGR_VIEW_COUNT_WEIGHTS; v++)
				CHECK(read_all(&mc, 1, v, ts, vs, 64, &err) <= 64);
			free(m);
		}
	buf_release(&b);
	aggr_builder_release(&ab);
}

TEST(views)
{
	aggr_builder_t ab;
	aggr_builder_init(&ab);
	buf_t b = BUF_INIT;
	int64_t t[2] = {299999, 599999};
	double p[2][5] = {{5, 10, 1, 3, 100}, {4, 20, 2, 6, 120}};
	chunk_t c;
	make(&b, &ab, t, p, 2, 0, 90, 118, &c);
	int64_t ts[16];
	double vs[16];
	err_t err = {0};
	/* count: 5 then 4 unit samples ending at the window points */
	CHECK_EQ_INT(read_all(&c, 1, AGGR_VIEW_COUNT, ts, vs, 16, &err), 9);
	CHECK(ts[0] == 299995 && ts[4] == 299999 && ts[5] == 599996 && ts[8] == 599999);
	for (int i = 0; i < 9; i++)
		CHECK_DBL(vs[i], 1);
	/* count weights: the same counts, one sample per window point */
	CHECK_EQ_INT(read_all(&c, 1, AGGR_VIEW_COUNT_WEIGHTS, ts, vs, 16, &err), 2);
	CHECK(ts[0] == 299999 && vs[0] == 5 && ts[1] == 599999 && vs[1] == 4);
	CHECK_EQ_INT(read_all(&c, 1, AGGR_VIEW_SUM, ts, vs, 16, &err), 2);
	CHECK(vs[0] == 10 && vs[1] == 20);
	CHECK_EQ_INT(read_all(&c, 1, AGGR_VIEW_MIN, ts, vs, 16, &err), 2);
	CHECK(vs[0] == 1 && vs[1] == 2);
	CHECK_EQ_INT(read_all(&c, 1, AGGR_VIEW_MAX, ts, vs, 16, &err), 2);
	CHECK(vs[0] == 3 && vs[1] == 6);
	CHECK_EQ_INT(read_all(&c, 1, AGGR_VIEW_AVG, ts, vs, 16, &err), 2);
	CHECK(vs[0] == 2 && vs[1] == 5);
	/* counter: first raw 90 at 0, windows 100, 120, then the last raw value at the last window */
	CHECK_EQ_INT(read_all(&c, 1, AGGR_VIEW_COUNTER, ts, vs, 16, &err), 3);
	CHECK(ts[0] == 0 && vs[0] == 90 && ts[1] == 299999 && vs[1] == 100 && ts[2] == 599999 &&
	      vs[2] == 120);
	/* range trimming */
	aggr_iter_t it;
	aggr_iter_init(&it, &c, 1, 300000, 700000, AGGR_VIEW_SUM);
	CHECK_EQ_INT(sample_iter_next_batch(&it.base, ts, vs, 16, &err), 1);
	CHECK_EQ_INT(ts[0], 599999);
	/* a missing aggregate is an error naming it */
	chunk_t subs[AGGR_N];
	CHECK_EQ_INT(aggr_chunk_split(c.data, c.len, subs, &err), 0);
	subs[AGGR_MIN].len = 0;
	buf_t j = BUF_INIT;
	aggr_chunk_join(&j, subs);
	chunk_t jc = {c.mint, c.maxt, CHUNK_ENC_AGGR, (const uint8_t *)j.p, j.n};
	CHECK(read_all(&jc, 1, AGGR_VIEW_MIN, ts, vs, 16, &err) < 0);
	CHECK(strstr(err.msg, "without the min aggregate") != NULL);
	/* average: count and sum out of step */
	subs[AGGR_COUNT] = subs[AGGR_COUNTER];
	buf_reset(&j);
	aggr_chunk_join(&j, subs);
	jc.data = (const uint8_t *)j.p;
	jc.len = j.n;
	CHECK(read_all(&jc, 1, AGGR_VIEW_AVG, ts, vs, 16, &err) < 0);
	CHECK(strstr(err.msg, "sum and count timestamps not aligned") != NULL);
	buf_release(&j);
	buf_release(&b);
	aggr_builder_release(&ab);
}

TEST(counter_resets_across_chunks_and_raw_chunks)
{
	aggr_builder_t ab;
	aggr_builder_init(&ab);
	buf_t b1 = BUF_INIT, b2 = BUF_INIT;
	/* chunk 1: raw 100 .. 140, reset to 10, 30: running counter 170; last raw 30 */
	int64_t t1[1] = {599999};
	double p1[1][5] = {{5, 0, 0, 0, 170}};
	chunk_t c[3];
	make(&b1, &ab, t1, p1, 1, 0, 100, 30, &c[0]);
	/* chunk 2: starts at raw 5 (a reset between the chunks: 5 < 30), goes to 25 */
	int64_t t2[1] = {1199999};
	double p2[1][5] = {{5, 0, 0, 0, 25}};
	aggr_builder_t ab2;
	aggr_builder_init(&ab2);
	make(&b2, &ab2, t2, p2, 1, 600000, 5, 25, &c[1]);
	/* then a raw chunk (a finer resolution filling a gap): 27, 2 (reset), 4 */
	xor_enc_t e;
	xor_enc_init(&e);
	xor_enc_append(&e, 1200000, 27);
	xor_enc_append(&e, 1260000, 2);
	xor_enc_append(&e, 1320000, 4);
	size_t rl;
	c[2] = (chunk_t){1200000, 1320000, CHUNK_ENC_XOR, xor_enc_bytes(&e, &rl), 0};
	c[2].len = rl;
	int64_t ts[16];
	double vs[16];
	err_t err = {0};
	CHECK_EQ_INT(read_all(c, 3, AGGR_VIEW_COUNTER, ts, vs, 16, &err), 7);
	int64_t wt[7] = {0, 599999, 600000, 1199999, 1200000, 1260000, 1320000};
	double wv[7] = {100, 170, 175, 195, 197, 199, 201};
	for (int i = 0; i < 7; i++) {
		CHECK_EQ_INT(ts[i], wt[i]);
		CHECK_DBL(vs[i], wv[i]);
	}
	/* the count view: 5 + 5 unit samples for the aggregates, one per raw sample */
	CHECK_EQ_INT(read_all(c, 3, AGGR_VIEW_COUNT, ts, vs, 16, &err), 13);
	CHECK(ts[9] == 1199999 && ts[10] == 1200000 && vs[12] == 1);
	/* count weights: 5, 5, then 1 per raw sample */
	CHECK_EQ_INT(read_all(c, 3, AGGR_VIEW_COUNT_WEIGHTS, ts, vs, 16, &err), 5);
	CHECK(ts[0] == 599999 && vs[0] == 5 && ts[1] == 1199999 && vs[1] == 5);
	CHECK(ts[2] == 1200000 && vs[2] == 1 && ts[4] == 1320000 && vs[4] == 1);
	CHECK(aggr_chunks_any(c, 3) && !aggr_chunks_any(&c[2], 1));
	xor_enc_release(&e);
	buf_release(&b1);
	buf_release(&b2);
	aggr_builder_release(&ab);
	aggr_builder_release(&ab2);
}

/* Chunks longer than the iterator's decode buffer, views against the points written, trimming in the
 * middle of a buffer, and stale markers of raw chunks (they stay markers in the count views). */
TEST(long_chunks_and_stale_raw_samples)
{
	enum { N = 333 };
	aggr_builder_t ab;
	aggr_builder_init(&ab);
	buf_t b = BUF_INIT;
	static int64_t t[N];
	static double p[N][5];
	for (int i = 0; i < N; i++) {
		t[i] = 299999 + (int64_t)i * 300000;
		p[i][0] = 1 + i % 20;
		p[i][1] = i * 3.5;
		p[i][2] = -i;
		p[i][3] = i * 2;
		p[i][4] = i * 10.0;
	}
	chunk_t c;
	make(&b, &ab, t, p, N, 0, 0, N * 10.0 - 10, &c);
	static int64_t ts[N * 21];
	static double vs[N * 21];
	err_t err = {0};
	CHECK_EQ_INT(read_all(&c, 1, AGGR_VIEW_AVG, ts, vs, N * 21, &err), N);
	for (int i = 0; i < N; i++)
		CHECK(ts[i] == t[i] && vs[i] == p[i][1] / p[i][0]);
	CHECK_EQ_INT(read_all(&c, 1, AGGR_VIEW_MIN, ts, vs, N * 21, &err), N);
	CHECK(vs[N - 1] == -(N - 1) && ts[200] == t[200]);
	int64_t total = 0;
	for (int i = 0; i < N; i++)
		total += (int64_t)p[i][0];
	CHECK_EQ_INT(read_all(&c, 1, AGGR_VIEW_COUNT, ts, vs, N * 21, &err), (int)total);
	CHECK_EQ_INT(read_all(&c, 1, AGGR_VIEW_COUNT_WEIGHTS, ts, vs, N * 21, &err), N);
	double wsum = 0;
	for (int i = 0; i < N; i++)
		wsum += vs[i];
	CHECK_DBL(wsum, (double)total);
	CHECK_EQ_INT(read_all(&c, 1, AGGR_VIEW_COUNTER, ts, vs, N * 21, &err), N + 1);
	CHECK(ts[N] == t[N - 1] && vs[N] == (N - 1) * 10.0);
	/* trimmed to [t[150], t[250]], in small batches */
	aggr_iter_t it;
	aggr_iter_init(&it, &c, 1, t[150], t[250], AGGR_VIEW_SUM);
	int got = 0, k;
	while ((k = sample_iter_next_batch(&it.base, ts + got, vs + got, 7, &err)) > 0)
		got += k;
	CHECK_EQ_INT(got, 101);
	CHECK(ts[0] == t[150] && vs[100] == p[250][1]);
	/* a raw chunk with a stale marker: kept as the marker in the count views */
	xor_enc_t e;
	xor_enc_init(&e);
	xor_enc_append(&e, 1000, 42);
	xor_enc_append(&e, 2000, stale_nan());
	xor_enc_append(&e, 3000, 7);
	size_t rl;
	chunk_t rc = {1000, 3000, CHUNK_ENC_XOR, xor_enc_bytes(&e, &rl), 0};
	rc.len = rl;
	for (aggr_view_t v = AGGR_VIEW_COUNT; v <= AGGR_VIEW_COUNT_WEIGHTS; v += AGGR_VIEW_COUNT_WEIGHTS) {
		CHECK_EQ_INT(read_all(&rc, 1, v, ts, vs, 16, &err), 3);
		CHECK(vs[0] == 1 && value_is_stale_nan(vs[1]) && vs[2] == 1);
	}
	/* aggr_decode_chunks: the iterator's samples into growable arrays */
	int64_t *dt = NULL;
	double *dv = NULL;
	size_t cap = 0;
	CHECK_EQ_INT(
	    (int)aggr_decode_chunks(&c, 1, INT64_MIN, INT64_MAX, AGGR_VIEW_COUNT, &dt, &dv, &cap, &err),
	    (int)total);
	CHECK(cap >= (size_t)total && dt[total - 1] == t[N - 1] && dv[0] == 1);
	free(dt);
	free(dv);
	xor_enc_release(&e);
	buf_release(&b);
	aggr_builder_release(&ab);
}

TEST_MAIN()
