/* Unit tests for the PromQL engine: function edge cases, limits, result JSON. */
#include "test.h"

#include <pthread.h>
#include <time.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/workers.h"
#include "model/memstore.h"
#include "promql/engine.h"

static memstore_t *store;

static void add(const char *name, const char *lname, const char *lval, int64_t t, double v)
{
	label_t l[2] = {{STR_NULL, STR_NULL}, {STR_NULL, STR_NULL}};
	labels_t ls = {l, 0};
	l[ls.n++] = (label_t){STR(LABEL_METRIC_NAME), str_c(name)};
	if (lname)
		l[ls.n++] = (label_t){str_c(lname), str_c(lval)};
	labels_normalize(&ls);
	memstore_add(store, &ls, t, v);
}

static void setup(void)
{
	if (store)
		memstore_clear(store);
	else
		store = memstore_new();
	for (int i = 0; i <= 20; i++) {
		add("c", "i", "a", i * 15000, i * 10.0);
		add("c", "i", "b", i * 15000, i < 10 ? i * 5.0 : (i - 10) * 5.0); /* reset at i=10 */
		add("g", NULL, NULL, i * 15000, i % 2 ? 1.0 : -1.0);
	}
}

/* Instant query returning the JSON data object. */
static int q_json(const char *expr, int64_t t, const promql_opts_t *o, char *out, size_t n, const char **etype)
{
	arena_t a;
	arena_init(&a, 0);
	promql_result_t r;
	err_t err = {0};
	promql_opts_t def = {0};
	int rc = promql_query(o ? o : &def, memstore_queryable(store), &a, str_c(expr), t, t, 0, &r, &err);
	if (rc) {
		snprintf(out, n, "%s", err.msg);
		if (etype)
			*etype = r.error_type;
	} else {
		buf_t b = BUF_INIT;
		promql_result_json(&b, &r);
		snprintf(out, n, "%s", b.p);
		buf_release(&b);
	}
	arena_release(&a);
	return rc;
}

#define CHECK_Q(expr, t, want)                                                                           \
	do {                                                                                             \
		char got_[4096];                                                                         \
		int rc_ = q_json((expr), (t), NULL, got_, sizeof got_, NULL);                            \
		if (rc_ || strcmp(got_, (want)))                                                         \
			TEST_FAILF("%s: got %s (rc %d) want %s", (expr), got_, rc_, (want));            \
	} while (0)

TEST(rate_with_reset_and_extrapolation)
{
	setup();
	/* a: 10 per 15s -> 0.666.. per second; window [240s, 300s] holds samples at 240..300 */
	CHECK_Q("rate(c{i=\"a\"}[1m])", 300000,
		"{\"resultType\":\"vector\",\"result\":[{\"metric\":{\"i\":\"a\"},\"value\":[300,\"0.6666666666666666\"]}]}");
	/* b resets at 150s: increase over [120s,180s] = (45 - 40) + 45 ... counter-corrected */
	CHECK_Q("increase(c{i=\"b\"}[1m])", 180000,
		"{\"resultType\":\"vector\",\"result\":[{\"metric\":{\"i\":\"b\"},\"value\":[180,\"15\"]}]}");
	CHECK_Q("resets(c[5m])", 300000,
		"{\"resultType\":\"vector\",\"result\":[{\"metric\":{\"i\":\"a\"},\"value\":[300,\"0\"]},{\"metric\":{\"i\":\"b\"},\"value\":[300,\"1\"]}]}");
	/* a single sample in the window: no rate */
	CHECK_Q("rate(c{i=\"a\"}[10s])", 300000, "{\"resultType\":\"vector\",\"result\":[]}");
}

TEST(scalar_and_string_results)
{
	setup();
	CHECK_Q("1e-7", 1500, "{\"resultType\":\"scalar\",\"result\":[1.5,\"0.0000001\"]}");
	CHECK_Q("\"hi\"", 2000, "{\"resultType\":\"string\",\"result\":[2,\"hi\"]}");
	CHECK_Q("scalar(g)", 30000, "{\"resultType\":\"scalar\",\"result\":[30,\"-1\"]}");
	CHECK_Q("scalar(c)", 30000, "{\"resultType\":\"scalar\",\"result\":[30,\"NaN\"]}");
	CHECK_Q("vector(1e21)", 1, "{\"resultType\":\"vector\",\"result\":[{\"metric\":{},\"value\":[0.001,\"1e+21\"]}]}");
}

TEST(math_edge_cases)
{
	setup();
	CHECK_Q("sgn(g)", 15000, "{\"resultType\":\"vector\",\"result\":[{\"metric\":{},\"value\":[15,\"1\"]}]}");
	CHECK_Q("clamp(g, 2, 1)", 15000, "{\"resultType\":\"vector\",\"result\":[]}");
	CHECK_Q("clamp_min(g, 0)", 0, "{\"resultType\":\"vector\",\"result\":[{\"metric\":{},\"value\":[0,\"0\"]}]}");
	CHECK_Q("sqrt(g)", 0, "{\"resultType\":\"vector\",\"result\":[{\"metric\":{},\"value\":[0,\"NaN\"]}]}");
	CHECK_Q("ln(g - g)", 0, "{\"resultType\":\"vector\",\"result\":[{\"metric\":{},\"value\":[0,\"-Inf\"]}]}");
	CHECK_Q("round(vector(2.5))", 0, "{\"resultType\":\"vector\",\"result\":[{\"metric\":{},\"value\":[0,\"3\"]}]}");
	CHECK_Q("round(vector(-2.5))", 0, "{\"resultType\":\"vector\",\"result\":[{\"metric\":{},\"value\":[0,\"-2\"]}]}");
	CHECK_Q("vector(1) % 0", 0, "{\"resultType\":\"vector\",\"result\":[{\"metric\":{},\"value\":[0,\"NaN\"]}]}");
	CHECK_Q("vector(-1) / 0", 0, "{\"resultType\":\"vector\",\"result\":[{\"metric\":{},\"value\":[0,\"-Inf\"]}]}");
	CHECK_Q("days_in_month(vector(951782400))", 0,
		"{\"resultType\":\"vector\",\"result\":[{\"metric\":{},\"value\":[0,\"29\"]}]}"); /* Feb 2000 */
	CHECK_Q("day_of_week(vector(-86400))", 0,
		"{\"resultType\":\"vector\",\"result\":[{\"metric\":{},\"value\":[0,\"3\"]}]}"); /* 1969-12-31 */
}

TEST(histogram_quantile_edges)
{
	setup();
	label_t l[2];
	const char *les[] = {"0.1", "1", "+Inf"};
	double cnt[] = {5, 4, 10}; /* non-monotonic: 4 is raised to 5 */
	for (int k = 0; k < 3; k++) {
		l[0] = (label_t){STR(LABEL_METRIC_NAME), STR("h_bucket")};
		l[1] = (label_t){STR("le"), str_c(les[k])};
		labels_t ls = {l, 2};
		memstore_add(store, &ls, 0, cnt[k]);
	}
	CHECK_Q("histogram_quantile(0.5, h_bucket)", 0,
		"{\"resultType\":\"vector\",\"result\":[{\"metric\":{},\"value\":[0,\"0.1\"]}]}");
	CHECK_Q("histogram_quantile(0.75, h_bucket)", 0,
		"{\"resultType\":\"vector\",\"result\":[{\"metric\":{},\"value\":[0,\"1\"]}]}");
	CHECK_Q("histogram_quantile(-1, h_bucket)", 0,
		"{\"resultType\":\"vector\",\"result\":[{\"metric\":{},\"value\":[0,\"-Inf\"]}]}");
	CHECK_Q("histogram_quantile(NaN, h_bucket)", 0,
		"{\"resultType\":\"vector\",\"result\":[{\"metric\":{},\"value\":[0,\"NaN\"]}]}");
}

TEST(label_functions_validate)
{
	setup();
	char out[1024];
	const char *et = NULL;
	CHECK(q_json("label_replace(g, \"1bad\", \"x\", \"\", \".*\")", 0, NULL, out, sizeof out, &et) != 0);
	CHECK_STR(out, "invalid destination label name in label_replace(): 1bad");
	CHECK_STR(et, "execution");
	CHECK(q_json("label_replace(g, \"a\", \"x\", \"\", \"(\")", 0, NULL, out, sizeof out, &et) != 0);
	CHECK_STR(out, "invalid regular expression in label_replace(): (");
	CHECK(q_json("label_join(g, \"a\", \",\", \"b-c\")", 0, NULL, out, sizeof out, &et) != 0);
	CHECK_STR(out, "invalid source label name in label_join(): b-c");
	CHECK_Q("label_replace(g, \"dst\", \"<$1$$>${1}\", \"__name__\", \"(.)\")", 0,
		"{\"resultType\":\"vector\",\"result\":[{\"metric\":{\"__name__\":\"g\",\"dst\":\"\\u003cg$\\u003eg\"},\"value\":[0,\"-1\"]}]}");
	/* dropping the name makes two series collide */
	CHECK(q_json("c{i=\"a\"} * 1 or label_replace(c{i=\"a\"}, \"__name__\", \"\", \"\", \"\")", 0, NULL, out, sizeof out, &et) == 0);
	CHECK(q_json("label_replace(c, \"i\", \"same\", \"\", \"\")", 0, NULL, out, sizeof out, &et) != 0);
	CHECK_STR(out, "vector cannot contain metrics with the same labelset");
}

TEST(matching_errors)
{
	setup();
	char out[1024];
	const char *et = NULL;
	CHECK(q_json("c + on() g", 0, NULL, out, sizeof out, &et) != 0);
	CHECK_STR(out, "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)");
	CHECK(q_json("g + on() c", 0, NULL, out, sizeof out, &et) != 0);
	/* label sets as 2.42's Labels.String(): every label (the name too) as name="strconv.Quote(value)" */
	CHECK_STR(out, "found duplicate series for the match group {} on the right hand-side of the operation: "
		       "[{__name__=\"c\", i=\"b\"}, {__name__=\"c\", i=\"a\"}];many-to-many matching not allowed: "
		       "matching labels must be unique on one side");
	add("d", "i", "x\"y\n", 0, 1);
	add("e", "i", "x\"y\n", 0, 2);
	CHECK(q_json("c + on(i) {__name__=~\"d|e\"}", 0, NULL, out, sizeof out, &et) != 0);
	CHECK_STR(out, "found duplicate series for the match group {i=\"x\\\"y\\n\"} on the right hand-side of the "
		       "operation: [{__name__=\"e\", i=\"x\\\"y\\n\"}, {__name__=\"d\", i=\"x\\\"y\\n\"}];many-to-many "
		       "matching not allowed: matching labels must be unique on one side");
	CHECK_STR(et, "execution");
	CHECK(q_json("{__name__=~\"d|e\"} + on(i) group_right c", 0, NULL, out, sizeof out, &et) != 0);
	CHECK(strstr(out, "found duplicate series for the match group {i=\"x\\\"y\\n\"} on the left hand-side of the operation: [{__name__=\"e\"") == out);
	CHECK_Q("c * on() group_left g", 0,
		"{\"resultType\":\"vector\",\"result\":[{\"metric\":{\"i\":\"a\"},\"value\":[0,\"-0\"]},{\"metric\":{\"i\":\"b\"},\"value\":[0,\"-0\"]}]}");
}

TEST(limits_samples_timeout_cancel_memory)
{
	setup();
	char out[1024];
	const char *et = NULL;
	promql_opts_t o = {.max_samples = 5};
	CHECK(q_json("c[5m]", 300000, &o, out, sizeof out, &et) != 0);
	CHECK_STR(out, "query processing would load too many samples into memory in query execution");
	CHECK_STR(et, "execution");
	volatile int cancel = 1;
	promql_opts_t oc = {.cancel = &cancel};
	CHECK(q_json("sum(c)", 0, &oc, out, sizeof out, &et) == ERR_CANCELED);
	CHECK_STR(et, "canceled");
	promql_opts_t om = {.max_memory = 4096};
	int mrc = q_json("sum_over_time(c[10m:1s])", 300000, &om, out, sizeof out, &et);
	if (mrc != ERR_LIMIT)
		TEST_FAILF("memory budget: rc %d %s", mrc, out);
	CHECK(strstr(out, "memory budget") != NULL);
	/* A deadline in the past: the evaluation stops at a check point. */
	promql_opts_t ot = {.timeout_ms = 1};
	arena_t a;
	arena_init(&a, 0);
	promql_result_t r;
	err_t err = {0};
	uint64_t spin = clock_mono_ms();
	int rc = 0;
	for (int i = 0; i < 200 && rc == 0; i++) {
		while (clock_mono_ms() == spin)
			;
		rc = promql_query(&ot, memstore_queryable(store), &a, STR("max_over_time(c[10m:1ms])"), 0, 600000, 60000, &r, &err);
		arena_reset(&a);
	}
	arena_release(&a);
	CHECK_EQ_INT(rc, ERR_TIMEOUT);
	CHECK_STR(err.msg, "query timed out in query execution");
}

/* Range query over [0, 300s] step 30s (11 steps); returns rc, fills *peak on success. */
static int q_range_peak(const char *expr, int64_t max_samples, int64_t *peak)
{
	arena_t a;
	arena_init(&a, 0);
	promql_result_t r;
	err_t err = {0};
	promql_opts_t o = {.max_samples = max_samples};
	int rc = promql_query(&o, memstore_queryable(store), &a, str_c(expr), 0, 300000, 30000, &r, &err);
	if (rc == 0 && peak)
		*peak = r.samples_peak;
	arena_release(&a);
	return rc;
}

TEST(max_samples_accounting_as_2_42)
{
	setup();
	/* Hand-computed with 2.42's rules (c: 2 series, 21 samples each 15s apart; 11 steps):
	 * c: 11 points per series -> 22; sum(c): 22 held + per step 2 inputs + outputs so far + 1
	 *   -> last step 22 + 2 + 10 + 1 = 35; 2: a literal is one point per step -> 11;
	 * sum(rate(c[1m])): rate has 10 outputs per series (the step at 0 sees one sample) after windows of
	 *   <= 5 samples (2nd series: the 1st's 10 + last window 5 + its 10 = 25), then sum's rangeEval over
	 *   those 20: last step 20 + 2 inputs + 9 earlier outputs + 1 = 32. */
	int64_t peak = 0;
	CHECK_EQ_INT(q_range_peak("c", 0, &peak), 0);
	CHECK_EQ_INT(peak, 22);
	CHECK_EQ_INT(q_range_peak("sum(c)", 0, &peak), 0);
	CHECK_EQ_INT(peak, 35);
	CHECK_EQ_INT(q_range_peak("2", 0, &peak), 0);
	CHECK_EQ_INT(peak, 11);
	CHECK_EQ_INT(q_range_peak("sum(rate(c[1m]))", 0, &peak), 0);
	CHECK_EQ_INT(peak, 32);
	/* @: evaluated once (instant: 2 points + 2 inputs + 1 output = 5, leaving the 1 output), then 10
	 * copies of it for the other steps -> 11 */
	CHECK_EQ_INT(q_range_peak("sum(c @ 150)", 0, &peak), 0);
	CHECK_EQ_INT(peak, 11);
	/* The limit fails exactly above the peak, for every kind of node. */
	static const char *const qs[] = {"c", "sum(c)", "sum(rate(c[1m]))", "rate(c[1m])", "c + on(i) c", "-c",
					 "topk(1, c)", "max_over_time(c[2m:30s])", "abs(c) * 2", "sum by (i) (c @ 150)",
					 "count_values(\"v\", c)", "histogram_quantile(0.5, c)", "absent_over_time(c[1m])",
					 "timestamp(c)", "predict_linear(c[1m], 60)", "quantile_over_time(0.5, c[1m])"};
	for (size_t i = 0; i < ARRAY_LEN(qs); i++) {
		int64_t p = 0;
		if (q_range_peak(qs[i], 0, &p) != 0)
			TEST_FAILF("%s failed without a limit", qs[i]);
		if (q_range_peak(qs[i], p, NULL) != 0)
			TEST_FAILF("%s failed at max-samples = its peak %lld", qs[i], (long long)p);
		if (p > 1 && q_range_peak(qs[i], p - 1, NULL) != ERR_LIMIT)
			TEST_FAILF("%s did not fail at max-samples = peak - 1 (%lld)", qs[i], (long long)(p - 1));
	}
}

/* Whole JSON of a range query over [0, 3000s] step 20s. */
static void q_range_json(const char *expr, const promql_opts_t *o, buf_t *out)
{
	arena_t a;
	arena_init(&a, 0);
	promql_result_t r;
	err_t err = {0};
	buf_reset(out);
	if (promql_query(o, memstore_queryable(store), &a, str_c(expr), 0, 3000000, 20000, &r, &err))
		buf_printf(out, "error: %s", err.msg);
	else
		promql_result_json(out, &r);
	arena_release(&a);
}

TEST(parallel_batches_equal_sequential)
{
	/* Enough series and samples that batches go to the pool; results must be byte-identical. */
	setup();
	char name[16];
	for (int s = 0; s < 300; s++) {
		snprintf(name, sizeof name, "s%03d", s);
		double v = s;
		for (int i = 0; i < 3300; i++) { /* 1s apart: a batch is ~800k samples of work */
			v += (i * 7 + s) % 11;
			if (s % 17 == 0 && i == 1000)
				v = 1; /* a reset */
			add("big", "s", name, i * 1000 + s, v);
		}
	}
	workers_t *w = workers_new(2);
	promql_opts_t seq = {0}, par = {.workers = w};
	buf_t a = BUF_INIT, b = BUF_INIT;
	static const char *const qs[] = {"sum(rate(big[5m]))", "rate(big[1m])", "sum by (s) (increase(big[2m]))",
					 "count(big)", "big", "max_over_time(big[10m])", "avg(deriv(big[5m]))",
					 "predict_linear(big[5m], 60)", "timestamp(big)"};
	char why[256] = "";
	for (size_t i = 0; i < ARRAY_LEN(qs) && !why[0]; i++) {
		q_range_json(qs[i], &seq, &a);
		q_range_json(qs[i], &par, &b);
		if (a.n < 100 || strncmp(a.p, "error", 5) == 0)
			snprintf(why, sizeof why, "%s: unexpected result %.80s", qs[i], a.p);
		else if (a.n != b.n || memcmp(a.p, b.p, a.n) != 0)
			snprintf(why, sizeof why, "%s: parallel result differs from sequential", qs[i]);
	}
	buf_release(&a);
	buf_release(&b);
	workers_free(w);
	if (why[0])
		TEST_FAILF("%s", why);
}

/* A query that must stop: its rc, error and how long it ran. cancel_after_ms >= 0 sets the cancel flag
 * from another thread after that long. */
typedef struct stopq {
	volatile int cancel;
	int64_t after_ms;
} stopq_t;

static void *cancel_later(void *arg)
{
	stopq_t *s = arg;
	struct timespec ts = {(time_t)(s->after_ms / 1000), (long)(s->after_ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
	s->cancel = 1;
	return NULL;
}

static int q_stop(const char *expr, int64_t start, int64_t end, int64_t step, int64_t timeout_ms,
		  int64_t cancel_after_ms, workers_t *w, err_t *err, uint64_t *took_ms)
{
	stopq_t s = {0, cancel_after_ms};
	promql_opts_t o = {.timeout_ms = timeout_ms, .workers = w};
	pthread_t th;
	if (cancel_after_ms >= 0) {
		o.cancel = &s.cancel;
		CHECK(pthread_create(&th, NULL, cancel_later, &s) == 0);
	}
	arena_t a;
	arena_init(&a, 0);
	promql_result_t r;
	uint64_t t0 = clock_mono_ms();
	int rc = promql_query(&o, memstore_queryable(store), &a, str_c(expr), start, end, step, &r, err);
	*took_ms = clock_mono_ms() - t0;
	if (cancel_after_ms >= 0)
		pthread_join(th, NULL);
	arena_release(&a);
	return rc;
}

#define CHECK_STOPS(expr, start, end, step, timeout, cancel_after, w, want_rc, want_msg)                    \
	do {                                                                                              \
		err_t e_ = {0};                                                                           \
		uint64_t took_ = 0;                                                                       \
		int rc_ = q_stop((expr), (start), (end), (step), (timeout), (cancel_after), (w), &e_, &took_); \
		if (rc_ != (want_rc) || strcmp(e_.msg, (want_msg)) || took_ > 1000)                        \
			TEST_FAILF("%s: rc %d (%s) after %llu ms, want rc %d (%s) within 1 s", (expr), rc_,     \
				   e_.msg, (unsigned long long)took_, (want_rc), (want_msg));                    \
	} while (0)

TEST(huge_windows_honour_deadline_and_cancel)
{
	/* Few steps, huge windows: quantile_over_time over a 10m:1ms subquery copies and sorts 600k points
	 * per step (1001 steps: about a minute of work), a plain range function over a dense raw series
	 * sums 300k samples per step. Both must stop soon after the deadline or the cancel flag. */
	setup();
	for (int i = 0; i < 300000; i++)
		add("dense", NULL, NULL, i, (double)(i % 97));
	const char *tmo = "query timed out in query execution", *cnl = "query was canceled in query execution";
	const char *sq = "quantile_over_time(0.5, c{i=\"a\"}[10m:1ms])";
	CHECK_STOPS(sq, 0, 1000000, 1000, 200, -1, NULL, ERR_TIMEOUT, tmo);
	CHECK_STOPS(sq, 0, 1000000, 1000, 0, 200, NULL, ERR_CANCELED, cnl);
	/* the batched kernels (worker threads when given a pool) */
	workers_t *w = workers_new(2);
	const char *rq = "sum_over_time(dense[5m])";
	CHECK_STOPS(rq, 300000, 3000000, 100, 200, -1, NULL, ERR_TIMEOUT, tmo);
	CHECK_STOPS(rq, 300000, 3000000, 100, 200, -1, w, ERR_TIMEOUT, tmo);
	CHECK_STOPS(rq, 300000, 3000000, 100, 0, 200, w, ERR_CANCELED, cnl);
	CHECK_STOPS("max_over_time(dense[5m:1ms])", 300000, 1300000, 1000, 200, -1, w, ERR_TIMEOUT, tmo);
	workers_free(w);
}

TEST(range_query_shape)
{
	setup();
	arena_t a;
	arena_init(&a, 0);
	promql_result_t r;
	err_t err = {0};
	promql_opts_t o = {0};
	CHECK(promql_query(&o, memstore_queryable(store), &a, STR("1"), 0, 60000, 30000, &r, &err) == 0);
	buf_t b = BUF_INIT;
	promql_result_json(&b, &r);
	CHECK_STR(b.p, "{\"resultType\":\"matrix\",\"result\":[{\"metric\":{},\"values\":[[0,\"1\"],[30,\"1\"],[60,\"1\"]]}]}");
	buf_reset(&b);
	CHECK(promql_query(&o, memstore_queryable(store), &a, STR("foo[5m]"), 0, 60000, 30000, &r, &err) != 0);
	CHECK_STR(r.error_type, "bad_data");
	/* staleness: a stale marker hides the series from the next step on */
	uint64_t bits = 0x7ff0000000000002ull;
	double stale;
	memcpy(&stale, &bits, 8);
	add("s", NULL, NULL, 0, 1);
	add("s", NULL, NULL, 20000, stale);
	CHECK(promql_query(&o, memstore_queryable(store), &a, STR("s"), 0, 40000, 10000, &r, &err) == 0);
	promql_result_json(&b, &r);
	CHECK_STR(b.p, "{\"resultType\":\"matrix\",\"result\":[{\"metric\":{\"__name__\":\"s\"},\"values\":[[0,\"1\"],[10,\"1\"]]}]}");
	buf_release(&b);
	arena_release(&a);
	memstore_free(store);
	store = NULL;
}

TEST_MAIN()
