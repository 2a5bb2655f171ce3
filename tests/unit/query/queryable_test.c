/*
 * queryable_test — downsampled data through store_queryable_t and the engine: a series of 5m aggregate
 * chunks followed by raw chunks (a finer resolution filling the gap) evaluated with the engine decoding
 * chunks on its own (promql_opts_t.decode_aggr_chunks = store_queryable_decode_aggr; count_over_time
 * sums count weights) must answer exactly as through the store's sample iterators (the aggregate views,
 * count_over_time over expanded unit samples), on the workers too, and count_over_time must be the raw
 * sample count. rate/increase differ on purpose: decoding chunks, the engine reads the counter at the
 * range start from the aggregate point before the range (promql's rb_aggr_t.lead), which a sample
 * iterator bounded by the range does not give; that value is checked by hand.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"

#include "base/alloc.h"
#include "promql/engine.h"
#include "query/queryable.h"
#include "tsdb/aggr.h"
#include "tsdb/xor.h"

#define R 300000      /* 5m */
#define SCRAPE 15000  /* raw samples every 15 s */
#define HOURS_AGGR 4  /* [0, 4h) as 5m aggregates, then raw */
#define HOURS_ALL 7

static double raw_value(int64_t t)
{
	int64_t i = t / SCRAPE;
	return (double)((i * 7) % 1000) + (i % 3) * 0.25; /* a counter with resets every ~143 samples */
}

typedef struct fake {
	store_t base;
	chunk_t chunks[64];
	size_t n;
	buf_t bufs[64];
	int series_calls;
	unsigned last_aggregates;
	bool merged; /* as the proxy's merge of replicas: samples only, flagged downsampled */
} fake_t;

typedef struct fset {
	series_set_t base;
	fake_t *f;
	int pos;
	aggr_iter_t it;
	aggr_view_t view;
	labels_t ls;
	int64_t mint, maxt;
} fset_t;

static int fs_next(series_set_t *s, err_t *err)
{
	(void)err;
	return ((fset_t *)s)->pos++ == 0;
}

static const labels_t *fs_labels(series_set_t *s)
{
	return &((fset_t *)s)->ls;
}

static sample_iter_t *fs_samples(series_set_t *s)
{
	fset_t *fs = (fset_t *)s;
	aggr_iter_init(&fs->it, fs->f->chunks, fs->f->n, fs->mint, fs->maxt, fs->view);
	return &fs->it.base;
}

static int fs_chunks(series_set_t *s, const chunk_t **out)
{
	fset_t *fs = (fset_t *)s;
	if (fs->f->merged)
		return -1;
	*out = fs->f->chunks;
	return (int)fs->f->n;
}

static bool fs_aggr_samples(series_set_t *s)
{
	return ((fset_t *)s)->f->merged;
}

static void fs_close(series_set_t *s)
{
	(void)s;
}

static const struct series_set_ops fs_ops = {.next = fs_next,
                                             .labels = fs_labels,
                                             .samples = fs_samples,
                                             .chunks = fs_chunks,
                                             .close = fs_close,
                                             .aggr_samples = fs_aggr_samples};

static int fake_series(store_t *s, arena_t *a, const store_series_req_t *req, series_set_t **out, err_t *err)
{
	(void)err;
	fake_t *f = (fake_t *)s;
	f->series_calls++;
	f->last_aggregates = req->aggregates;
	fset_t *fs = ARENA_NEW(a, fset_t);
	fs->base.ops = &fs_ops;
	fs->f = f;
	fs->view = store_aggr_view(req->aggregates);
	fs->mint = req->mint;
	fs->maxt = req->maxt;
	label_t *l = ARENA_NEW(a, label_t);
	l[0] = (label_t){STR(LABEL_METRIC_NAME), STR("x")};
	fs->ls = (labels_t){l, 1};
	*out = &fs->base;
	return 0;
}

static const struct store_ops fake_ops = {.series = fake_series};

/* The data: 5m windows of the raw samples in [0, HOURS_AGGR h) as aggregate chunks (one per hour, with
 * the counter's raw first / last framing), the raw samples after that as XOR chunks of 120. */
static void fake_build(fake_t *f)
{
	memset(f, 0, sizeof *f);
	for (size_t i = 0; i < ARRAY_LEN(f->bufs); i++)
		f->bufs[i] = (buf_t)BUF_INIT;
	f->base.ops = &fake_ops;
	f->base.name = "fake";
	aggr_builder_t ab;
	aggr_builder_init(&ab);
	double total = 0, last = 0;
	bool have = false;
	for (int h = 0; h < HOURS_AGGR; h++) {
		aggr_builder_reset(&ab);
		int64_t h0 = (int64_t)h * 3600000, first_t = h0;
		aggr_builder_append(&ab, AGGR_COUNTER, first_t, raw_value(first_t));
		for (int64_t w0 = h0; w0 < h0 + 3600000; w0 += R) {
			double cnt = 0, sum = 0, mn = 0, mx = 0;
			for (int64_t t = w0; t < w0 + R; t += SCRAPE) {
				double v = raw_value(t);
				if (!have)
					total = v, have = true;
				else
					total += v >= last ? v - last : v;
				last = v;
				mn = cnt ? (v < mn ? v : mn) : v;
				mx = cnt ? (v > mx ? v : mx) : v;
				cnt++;
				sum += v;
			}
			aggr_builder_add(&ab, w0 + R - 1, cnt, sum, mn, mx, total);
		}
		aggr_builder_append(&ab, AGGR_COUNTER, h0 + 3600000 - 1, last);
		aggr_builder_encode(&ab, &f->bufs[f->n]);
		f->chunks[f->n] = (chunk_t){ab.mint < first_t ? ab.mint : first_t, ab.maxt, CHUNK_ENC_AGGR,
		                            (const uint8_t *)f->bufs[f->n].p, f->bufs[f->n].n};
		f->n++;
	}
	aggr_builder_release(&ab);
	xor_enc_t e;
	xor_enc_init(&e);
	int64_t t = (int64_t)HOURS_AGGR * 3600000, end = (int64_t)HOURS_ALL * 3600000;
	while (t < end) {
		xor_enc_reset(&e);
		int64_t c0 = t;
		for (int i = 0; i < 120 && t < end; i++, t += SCRAPE)
			xor_enc_append(&e, t, raw_value(t));
		size_t len;
		const uint8_t *p = xor_enc_bytes(&e, &len);
		buf_append(&f->bufs[f->n], p, len);
		f->chunks[f->n] = (chunk_t){c0, t - SCRAPE, CHUNK_ENC_XOR, (const uint8_t *)f->bufs[f->n].p, len};
		f->n++;
	}
	xor_enc_release(&e);
}

static void fake_release(fake_t *f)
{
	for (size_t i = 0; i < f->n; i++)
		buf_release(&f->bufs[i]);
}

/* A range query (1h step) over the fake store with 5m data allowed, as JSON; "error: ..." on failure. */
static void run(fake_t *f, const char *q, const promql_opts_t *o, buf_t *out)
{
	arena_t a;
	arena_init(&a, 0);
	store_queryable_t sq;
	store_queryable_opts_t so = {.max_source_resolution = 720000};
	store_queryable_init(&sq, &f->base, &a, &so);
	promql_result_t r;
	err_t err = {0};
	buf_reset(out);
	if (promql_query(o, store_queryable_base(&sq), &a, str_c(q), 3600000, (int64_t)HOURS_ALL * 3600000,
	                 3600000, &r, &err))
		buf_printf(out, "error: %s", err.msg);
	else
		promql_result_json(out, &r);
	arena_release(&a);
}

TEST(engine_decode_equals_store_views)
{
	static fake_t f;
	fake_build(&f);
	promql_opts_t iter = {0}; /* no decoders: samples through the store's aggregate views */
	promql_opts_t dec = {.decode_chunks = xor_decode_chunks,
	                     .decode_aggr_chunks = store_queryable_decode_aggr};
	workers_t *w = workers_new(2);
	promql_opts_t par = dec;
	par.workers = w;
	static const char *const qs[] = {"count_over_time(x[1h])",
	                                 "count_over_time(x[30m])",
	                                 "sum_over_time(x[1h])",
	                                 "max_over_time(x[1h])",
	                                 "min_over_time(x[1h])",
	                                 "rate(x[1h])",
	                                 "increase(x[2h])",
	                                 "x",
	                                 "avg(x)",
	                                 "count(x)",
	                                 "avg_over_time(x[1h])",
	                                 "sum(count_over_time(x[1h]))",
	                                 "rate(x[1h] offset 10m)"};
	buf_t a = BUF_INIT, b = BUF_INIT, c = BUF_INIT;
	for (size_t i = 0; i < ARRAY_LEN(qs); i++) {
		run(&f, qs[i], &iter, &a);
		run(&f, qs[i], &dec, &b);
		run(&f, qs[i], &par, &c);
		if (a.n < 40 || strncmp(a.p, "error", 5) == 0 || strncmp(b.p, "error", 5) == 0)
			TEST_FAILF("%s: unexpected result %.200s %.200s", qs[i], a.p, b.p);
		bool counter = strncmp(qs[i], "rate", 4) == 0 || strncmp(qs[i], "increase", 8) == 0;
		if (!counter && (a.n != b.n || memcmp(a.p, b.p, a.n) != 0))
			TEST_FAILF("%s: engine decode differs from the store's views:\n%s\n%s", qs[i], a.p, b.p);
		if (b.n != c.n || memcmp(b.p, c.p, b.n) != 0)
			TEST_FAILF("%s: parallel decode differs", qs[i]);
	}
	/* count_over_time is the raw sample count: 240 samples an hour in the aggregated hours (the
	 * window [t-1h, t] holds 12 window points of 20), 241 where raw samples are at both ends */
	run(&f, "count_over_time(x[1h])", &dec, &b);
	CHECK(strstr(b.p, "[7200,\"240\"]") != NULL);
	CHECK(strstr(b.p, "[21600,\"241\"]") != NULL);
	CHECK(f.last_aggregates == 1u << AGGR_COUNT);
	buf_release(&a);
	buf_release(&b);
	buf_release(&c);
	workers_free(w);
	fake_release(&f);
}

/* The value at t of the only series a range query (1h..HOURS_ALL h, 1h step) returns; NAN if none. */
static double query_at(fake_t *f, const char *q, const promql_opts_t *o, int64_t t)
{
	arena_t a;
	arena_init(&a, 0);
	store_queryable_t sq;
	store_queryable_opts_t so = {.max_source_resolution = 720000};
	store_queryable_init(&sq, &f->base, &a, &so);
	promql_result_t r;
	err_t err = {0};
	double v = NAN;
	if (promql_query(o, store_queryable_base(&sq), &a, str_c(q), 3600000, (int64_t)HOURS_ALL * 3600000,
	                 3600000, &r, &err) == 0 &&
	    r.nseries == 1)
		for (size_t i = 0; i < r.series[0].n; i++)
			if (r.series[0].t[i] == t)
				v = r.series[0].v[i];
	arena_release(&a);
	return v;
}

/* increase(x[1h] offset 10m) at 2h over 5m data: the window [50m, 1h50m] starts inside an aggregate
 * window; the counter at 50m is interpolated between the points at 50m - 1ms (before the range) and
 * 55m - 1ms (the first inside), the increase runs from there to the last point inside (1h50m - 1ms) and
 * is extrapolated by Prometheus's rule over the 1 ms left to the range end. Without the point before
 * (the store's sample iterators, bounded by the range) the answer is Prometheus's extrapolation from
 * 55m - 1ms, which differs. */
TEST(rate_reads_counter_at_range_start_from_point_before)
{
	static fake_t f;
	fake_build(&f);
	int64_t *t = NULL;
	double *v = NULL;
	size_t cap = 0;
	err_t err = {0};
	int64_t n =
	    aggr_decode_chunks(f.chunks, f.n, INT64_MIN, INT64_MAX, AGGR_VIEW_COUNTER, &t, &v, &cap, &err);
	CHECK(n > 0);
	const int64_t M = 60000, rstart = 50 * M, rend = 110 * M;
	int64_t p = -1, last = -1;
	for (int64_t i = 0; i < n; i++) {
		if (t[i] == rstart - 1)
			p = i;
		if (t[i] == rend - 1)
			last = i;
	}
	CHECK(p >= 0 && last > p + 1 && t[p + 1] == 55 * M - 1);
	double v0 = v[p] + (v[p + 1] - v[p]) * ((double)(rstart - t[p]) / (double)(t[p + 1] - t[p]));
	double sampled = (double)(t[last] - rstart) / 1000;
	double want = (v[last] - v0) * ((sampled + (double)(rend - t[last]) / 1000) / sampled);
	promql_opts_t iter = {0};
	promql_opts_t dec = {.decode_chunks = xor_decode_chunks,
	                     .decode_aggr_chunks = store_queryable_decode_aggr};
	double got = query_at(&f, "increase(x[1h] offset 10m)", &dec, 2 * 3600000);
	if (!(fabs(got - want) <= 1e-9 * fabs(want)))
		TEST_FAILF("increase: %.17g, want %.17g", got, want);
	got = query_at(&f, "rate(x[1h] offset 10m)", &dec, 2 * 3600000);
	if (!(fabs(got - want / 3600) <= 1e-9 * fabs(want / 3600)))
		TEST_FAILF("rate: %.17g, want %.17g", got, want / 3600);
	got = query_at(&f, "increase(x[1h] offset 10m)", &iter, 2 * 3600000);
	if (!(fabs(got - want) > 1e-6 * fabs(want)))
		TEST_FAILF("the store views' answer %.17g should differ from %.17g", got, want);
	free(t);
	free(v);
	fake_release(&f);
}

/* A hole before the range: without the aggregates of [1h, 2h), the point before the window
 * [1h50m, 2h50m] is the one at 1h - 1ms, an hour before the first inside (2h): not adjacent, so the
 * answer is Prometheus's extrapolation from the points inside, as the store views give it. One hour
 * later the point before (2h50m - 1ms) is adjacent again and the answers differ. */
TEST(rate_ignores_point_before_a_hole)
{
	static fake_t f;
	fake_build(&f);
	buf_t hole = f.bufs[1];
	memmove(&f.chunks[1], &f.chunks[2], (f.n - 2) * sizeof f.chunks[0]);
	memmove(&f.bufs[1], &f.bufs[2], (f.n - 2) * sizeof f.bufs[0]);
	f.bufs[f.n - 1] = hole; /* released with the rest */
	f.n--;
	promql_opts_t iter = {0};
	promql_opts_t dec = {.decode_chunks = xor_decode_chunks,
	                     .decode_aggr_chunks = store_queryable_decode_aggr};
	const char *q = "increase(x[1h] offset 10m)";
	double a = query_at(&f, q, &iter, 3 * 3600000), b = query_at(&f, q, &dec, 3 * 3600000);
	if (!(a == b))
		TEST_FAILF("after the hole: %.17g, the store views' %.17g", b, a);
	a = query_at(&f, q, &iter, 4 * 3600000), b = query_at(&f, q, &dec, 4 * 3600000);
	if (!(fabs(a - b) > 1e-6 * fabs(a)))
		TEST_FAILF("an hour later the point before counts: %.17g vs %.17g", b, a);
	fake_release(&f);
}

/* Several sources' aggregate chunks merged into one series (deduplicated replicas) reach the engine as
 * samples (chunks() -1) flagged by series_set_aggr_samples: rate/increase answer exactly as from the
 * aggregate chunks (the request reaches back far enough for the points before the range), also after a
 * hole and at the aggregates' end; every other function as the store's views, as before. */
TEST(merged_aggregate_samples_read_as_chunks)
{
	static fake_t f, m;
	fake_build(&f);
	fake_build(&m);
	m.merged = true;
	promql_opts_t iter = {0};
	promql_opts_t dec = {.decode_chunks = xor_decode_chunks,
	                     .decode_aggr_chunks = store_queryable_decode_aggr};
	static const char *const counters[] = {"rate(x[1h])", "increase(x[2h])", "rate(x[1h] offset 10m)",
	                                       "increase(x[1h] offset 10m)", "increase(x[30m] offset 7m)"};
	static const char *const others[] = {
	    "count_over_time(x[1h])", "sum_over_time(x[1h])", "x",
	    "max_over_time(x[1h])",   "irate(x[1h])",         "resets(x[2h])"};
	buf_t a = BUF_INIT, b = BUF_INIT, c = BUF_INIT;
	for (int hole = 0; hole < 2; hole++) {
		if (hole) /* the aggregates of [1h, 2h) missing in both */
			for (fake_t *p = &f; p; p = p == &f ? &m : NULL) {
				buf_t h = p->bufs[1];
				memmove(&p->chunks[1], &p->chunks[2], (p->n - 2) * sizeof p->chunks[0]);
				memmove(&p->bufs[1], &p->bufs[2], (p->n - 2) * sizeof p->bufs[0]);
				p->bufs[p->n - 1] = h;
				p->n--;
			}
		for (size_t i = 0; i < ARRAY_LEN(counters); i++) {
			run(&f, counters[i], &dec, &a);
			run(&m, counters[i], &dec, &b);
			/* unflagged samples: Prometheus's answer, which differs where no point sits at the
			 * range start (the chunks' raw framing puts one at every whole hour) */
			run(&f, counters[i], &iter, &c);
			if (a.n < 40 || strncmp(a.p, "error", 5) == 0)
				TEST_FAILF("%s: unexpected result %.200s", counters[i], a.p);
			if (a.n != b.n || memcmp(a.p, b.p, a.n) != 0)
				TEST_FAILF("%s (hole %d): merged samples differ from the chunks:\n%s\n%s",
				           counters[i], hole, a.p, b.p);
			if (strstr(counters[i], "offset") && a.n == c.n && memcmp(a.p, c.p, a.n) == 0)
				TEST_FAILF("%s: the unflagged samples' answer should differ", counters[i]);
		}
		for (size_t i = 0; i < ARRAY_LEN(others); i++) {
			run(&f, others[i], &iter, &a);
			run(&m, others[i], &dec, &b);
			if (a.n < 40 || a.n != b.n || memcmp(a.p, b.p, a.n) != 0)
				TEST_FAILF("%s: merged samples differ from the store views:\n%s\n%s",
				           others[i], a.p, b.p);
		}
	}
	buf_release(&a);
	buf_release(&b);
	buf_release(&c);
	fake_release(&f);
	fake_release(&m);
}

TEST_MAIN()
