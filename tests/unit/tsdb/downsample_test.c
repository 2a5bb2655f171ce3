/*
 * downsample_test.c — the downsampling algorithm against hand-computed windows (thanos.md §4.3):
 * count/sum/min/max/counter per 5m window, window-end timestamps, NaN and stale markers dropped, the
 * counter's first/last raw value framing, resets inside and across chunks, chunk sizing, 5m → 1h from
 * aggregates, and a whole block.
 */
#include <math.h>
#include <string.h>

#include "base/alloc.h"
#include "test.h"
#include "tsdb/aggr.h"
#include "tsdb/downsample.h"
#include "tsdb/xor.h"
#include "tsdb_testutil.h"

#define M  (60 * 1000ll)
#define R5 DOWNSAMPLE_RES_5M

static int read_view(const downsample_out_t *o, aggr_view_t view, int64_t *t, double *v, int cap)
{
	aggr_iter_t it;
	aggr_iter_init(&it, o->chunks, o->n, INT64_MIN, INT64_MAX, view);
	int total = 0, k;
	err_t err = {0};
	while ((k = sample_iter_next_batch(&it.base, t + total, v + total, cap - total, &err)) > 0)
		total += k;
	if (k < 0)
		TEST_FAILF("read: %s", err.msg);
	return total;
}

TEST(raw_windows_hand_computed)
{
	/* 20 one-minute samples from t=0: values 1..20, except a stale marker at minute 7 and a NaN at 13 */
	int64_t t[20];
	double v[20];
	for (int i = 0; i < 20; i++)
		t[i] = i * M, v[i] = i + 1;
	v[7] = stale_nan();
	v[13] = NAN;
	downsample_out_t o;
	downsample_out_init(&o);
	downsample_raw(t, v, 20, 0, 20 * M, R5, &o);
	CHECK_EQ_INT(o.n, 1);
	int64_t rt[32];
	double rv[32];
	/* windows end at 5m-1ms, 10m-1ms, 15m-1ms, then the last is capped at the last sample (19m) */
	int64_t we[4] = {5 * M - 1, 10 * M - 1, 15 * M - 1, 19 * M};
	double cnt[4] = {5, 4, 4, 5};
	double sum[4] = {1 + 2 + 3 + 4 + 5, 6 + 7 + 9 + 10, 11 + 12 + 13 + 15, 16 + 17 + 18 + 19 + 20};
	double mn[4] = {1, 6, 11, 16}, mx[4] = {5, 10, 15, 20};
	/* the count view: one unit sample per raw sample, the last of each window at its end */
	CHECK_EQ_INT(read_view(&o, AGGR_VIEW_COUNT, rt, rv, 32), 18);
	for (int i = 0, k = 0; i < 4; k += (int)cnt[i], i++)
		CHECK_EQ_INT(rt[k + (int)cnt[i] - 1], we[i]);
	CHECK_EQ_INT(read_view(&o, AGGR_VIEW_SUM, rt, rv, 32), 4);
	for (int i = 0; i < 4; i++)
		CHECK_EQ_INT(rt[i], we[i]);
	CHECK_EQ_INT(read_view(&o, AGGR_VIEW_SUM, rt, rv, 32), 4);
	for (int i = 0; i < 4; i++)
		CHECK_DBL(rv[i], sum[i]);
	CHECK_EQ_INT(read_view(&o, AGGR_VIEW_MIN, rt, rv, 32), 4);
	for (int i = 0; i < 4; i++)
		CHECK_DBL(rv[i], mn[i]);
	CHECK_EQ_INT(read_view(&o, AGGR_VIEW_MAX, rt, rv, 32), 4);
	for (int i = 0; i < 4; i++)
		CHECK_DBL(rv[i], mx[i]);
	CHECK_EQ_INT(read_view(&o, AGGR_VIEW_AVG, rt, rv, 32), 4);
	CHECK_DBL(rv[1], sum[1] / 4);
	/* the counter sub-chunk: first raw value at its timestamp, the running counter at each window,
	 * the last raw value again at the last window */
	chunk_t subs[AGGR_N];
	err_t err = {0};
	CHECK_EQ_INT(aggr_chunk_split(o.chunks[0].data, o.chunks[0].len, subs, &err), 0);
	xor_dec_t d;
	CHECK_EQ_INT(xor_dec_init(&d, subs[AGGR_COUNTER].data, subs[AGGR_COUNTER].len, &err), 0);
	int64_t ct;
	double cv;
	int64_t want_t[6] = {0, 5 * M - 1, 10 * M - 1, 15 * M - 1, 19 * M, 19 * M};
	double want_v[6] = {1, 5, 10, 15, 20, 20};
	for (int i = 0; i < 6; i++) {
		CHECK_EQ_INT(xor_dec_next(&d, &ct, &cv, &err), 1);
		CHECK_EQ_INT(ct, want_t[i]);
		CHECK_DBL(cv, want_v[i]);
	}
	CHECK_EQ_INT(xor_dec_next(&d, &ct, &cv, &err), 0);
	CHECK_EQ_INT(o.chunks[0].mint, 5 * M - 1);
	CHECK_EQ_INT(o.chunks[0].maxt, 19 * M);
	downsample_out_release(&o);
}

TEST(chunk_count_and_counter_resets_across_chunks)
{
	/* Two days at one sample a minute: 576 5m points -> 5 chunks of at most ~140. A counter that
	 * resets every 1000 minutes (inside chunks and at chunk borders). */
	CHECK_EQ_INT(downsample_target_chunks(0, 48 * 60 * M, DOWNSAMPLE_RAW_STEP, R5, 48 * 60), 5);
	CHECK_EQ_INT(downsample_target_chunks(0, 48 * 60 * M, DOWNSAMPLE_RAW_STEP, R5, 48 * 6),
	             1); /* sparse */
	size_t n = 48 * 60;
	int64_t *t = xcalloc(n, sizeof *t);
	double *v = xcalloc(n, sizeof *v);
	double *truth = xcalloc(n, sizeof *truth); /* the monotonic counter */
	for (size_t i = 0; i < n; i++) {
		t[i] = (int64_t)i * M;
		v[i] = (double)(i % 1000) * 3 + 7;
		truth[i] = i ? truth[i - 1] + (v[i] >= v[i - 1] ? v[i] - v[i - 1] : v[i]) : v[0];
	}
	downsample_out_t o;
	downsample_out_init(&o);
	downsample_raw(t, v, n, 0, (int64_t)n * M, R5, &o);
	CHECK_EQ_INT(o.n, 5);
	for (size_t i = 1; i < o.n; i++)
		CHECK(o.chunks[i].mint > o.chunks[i - 1].maxt);
	int64_t *rt = xcalloc(2 * n, sizeof *rt);
	double *rv = xcalloc(2 * n, sizeof *rv);
	int k = read_view(&o, AGGR_VIEW_COUNTER, rt, rv, (int)(2 * n));
	/* every point of the counter view equals the true counter at its timestamp (up to the first
	 * value's offset), and the view is monotonic */
	int checked = 0;
	for (int i = 0; i < k; i++) {
		if (i)
			CHECK(rv[i] >= rv[i - 1] && rt[i] > rt[i - 1]);
		size_t idx = (size_t)(rt[i] / M);
		if (rt[i] % M == 0 || rt[i] % M == M - 1) {
			double want = truth[rt[i] % M == 0 ? idx : idx];
			CHECK_DBL(rv[i], want);
			checked++;
		}
	}
	CHECK(checked >= 576);
	CHECK_EQ_INT(read_view(&o, AGGR_VIEW_COUNT, rt, rv, (int)(2 * n)), (int)n); /* every raw sample counted */

	/* 5m -> 1h from the aggregates: count = sum of counts, sum of sums, min, max, the counter again */
	downsample_out_t h;
	downsample_out_init(&h);
	err_t err = {0};
	CHECK_EQ_INT(downsample_aggr(o.chunks, o.n, 0, (int64_t)n * M, R5, DOWNSAMPLE_RES_1H, &h, &err), 0);
	CHECK(h.n >= 1);
	k = read_view(&h, AGGR_VIEW_MAX, rt, rv, (int)(2 * n));
	CHECK_EQ_INT(k, 48);
	for (int i = 0; i < 48; i++)
		CHECK_EQ_INT(rt[i], i < 47 ? (int64_t)(i + 1) * 60 * M - 1 : (int64_t)(n - 1) * M);
	k = read_view(&h, AGGR_VIEW_COUNT, rt, rv, (int)(2 * n));
	CHECK_EQ_INT(k, (int)n); /* 48 points of 60 */
	CHECK_EQ_INT(rt[59], 60 * M - 1);
	k = read_view(&h, AGGR_VIEW_SUM, rt, rv, (int)(2 * n));
	double s0 = 0;
	for (int i = 0; i < 60; i++)
		s0 += v[i];
	CHECK_DBL(rv[0], s0);
	k = read_view(&h, AGGR_VIEW_MAX, rt, rv, (int)(2 * n));
	CHECK_DBL(rv[16], 999 * 3 + 7); /* hour 16 holds minute 999 */
	k = read_view(&h, AGGR_VIEW_MIN, rt, rv, (int)(2 * n));
	CHECK_DBL(rv[16], 7);
	k = read_view(&h, AGGR_VIEW_COUNTER, rt, rv, (int)(2 * n));
	for (int i = 0; i < k; i++)
		if (rt[i] % M == M - 1)
			CHECK_DBL(rv[i], truth[rt[i] / M]);
	CHECK_DBL(rv[k - 1], truth[n - 1]);
	downsample_out_release(&h);
	downsample_out_release(&o);
	free(t);
	free(v);
	free(truth);
	free(rt);
	free(rv);
}

TEST(whole_block_raw_then_5m)
{
	char parent[4096], raw_dir[4096];
	tu_tmpdir(parent);
	block_writer_t *bw;
	err_t err = {0};
	block_writer_opts_t wo = {0};
	CHECK_EQ_INT(block_writer_new(&bw, parent, &wo, &err), 0);
	size_t n = 3 * 24 * 60; /* three days a minute */
	int64_t *t = xcalloc(n, sizeof *t);
	double *v = xcalloc(n, sizeof *v);
	for (int s = 0; s < 3; s++) {
		label_t lv[2] = {{STR("__name__"), STR("m")},
		                 {STR("i"), s == 0   ? STR("0")
		                            : s == 1 ? STR("1")
		                                     : STR("2")}};
		labels_t ls = {lv, 2};
		for (size_t i = 0; i < n; i++)
			t[i] = (int64_t)i * M, v[i] = (double)i * (s + 1);
		CHECK_EQ_INT(block_writer_add_series(bw, &ls, t, v, n, &err), 0);
	}
	CHECK_EQ_INT(block_writer_finish(bw, NULL, raw_dir, &err), 0);
	block_t *b;
	CHECK_EQ_INT(block_open(&b, raw_dir, &err), 0);
	block_meta_t m;
	meta_copy(&m, &b->meta);
	m.resolution = R5;
	m.has_thanos = true;
	downsample_result_t r;
	char out[4200];
	snprintf(out, sizeof out, "%s/5m", parent);
	CHECK_EQ_INT(downsample_block(b, out, R5, &m, NULL, NULL, &r, &err), 0);
	CHECK_EQ_U64(r.series, 3);
	CHECK_EQ_U64(r.samples_in, 3 * n);
	CHECK_EQ_U64(r.samples_out, 3 * (n / 5));
	block_t *d;
	CHECK_EQ_INT(block_open(&d, r.dir, &err), 0);
	CHECK_EQ_INT(d->meta.resolution, R5);
	CHECK_EQ_INT(d->meta.mint, b->meta.mint);
	CHECK_EQ_INT(d->meta.maxt, b->meta.maxt);
	CHECK_EQ_INT(d->meta.level, b->meta.level);
	CHECK_EQ_U64(d->meta.num_samples, 3 * (n / 5));
	/* a 5m block cannot be downsampled to 5m again */
	CHECK_EQ_INT(downsample_block(d, out, R5, &m, NULL, NULL, &r, &err), ERR_INVALID);
	block_close(d);
	block_close(b);
	meta_release(&m);
	free(t);
	free(v);
	tu_rm_rf(parent);
}

TEST_MAIN()
