/* Unit tests for the PromQL engine: function edge cases, limits, result JSON. */
#include "test.h"

#include <pthread.h>
#include <time.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/fmt.h"
#include "base/workers.h"
#include "model/memstore.h"
#include "promql/engine.h"
#include "promql/engine_int.h" /* promql_simd_level */

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
static int q_json(const char *expr, int64_t t, const promql_opts_t *o, char *out, size_t n,
                  const char **etype)
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

#define CHECK_Q(expr, t, want)                                                                               \
	do {                                                                                                 \
		char got_[4096];                                                                             \
		int rc_ = q_json((expr), (t), NULL, got_, sizeof got_, NULL);                                \
		if (rc_ || strcmp(got_, (want)))                                                             \
			TEST_FAILF("%s: got %s (rc %d) want %s", (expr), got_, rc_, (want));                 \
	} while (0)

/* A queryable over the test's memstore that logs every select (its arguments, and whether it ran on
 * another thread than the test's) and fails selects of the metric "down" as an unreachable store. */
typedef struct logq {
	queryable_t base;
	pthread_mutex_t mu;
	pthread_t main;
	buf_t log;      /* one line per select */
	int off_thread; /* selects made on a pool thread */
} logq_t;

static int logq_select(queryable_t *q, arena_t *a, const matcher_t *ms, size_t nms, int64_t mint,
                       int64_t maxt, const select_hints_t *h, series_set_t **out, err_t *err)
{
	logq_t *l = (logq_t *)q;
	pthread_mutex_lock(&l->mu);
	for (size_t i = 0; i < nms; i++)
		buf_printf(&l->log, "%.*s%d%.*s ", (int)ms[i].name.n, ms[i].name.p, (int)ms[i].type,
		           (int)ms[i].value.n, ms[i].value.p);
	buf_printf(&l->log, "[%lld, %lld] step %lld range %lld func %s\n", (long long)mint, (long long)maxt,
	           (long long)h->step, (long long)h->range, h->func ? h->func : "-");
	bool main = pthread_equal(pthread_self(), l->main);
	l->off_thread += !main;
	pthread_mutex_unlock(&l->mu);
	if (main) /* as a store's round trip: the selects started ahead get going meanwhile */
		nanosleep(&(struct timespec){0, 5000000}, NULL);
	for (size_t i = 0; i < nms; i++)
		if (str_eq_c(ms[i].value, "down"))
			return err_set(err, ERR_UNAVAILABLE, "store s1: unreachable");
	queryable_t *in = memstore_queryable(store);
	return in->ops->select(in, a, ms, nms, mint, maxt, h, out, err);
}

static const struct queryable_ops logq_ops = {.select = logq_select};

/* The selects a run made, as sorted lines (the order differs when they are started ahead). */
static void sorted_lines(const buf_t *in, buf_t *out)
{
	size_t n = 0;
	char **v = NULL;
	char *copy = xstrdup(in->n ? in->p : "");
	for (char *save = NULL, *t = strtok_r(copy, "\n", &save); t; t = strtok_r(NULL, "\n", &save)) {
		v = xreallocarray(v, n + 1, sizeof *v);
		v[n++] = t;
	}
	for (size_t i = 1; i < n; i++)
		for (size_t j = i; j > 0 && strcmp(v[j - 1], v[j]) > 0; j--) {
			char *x = v[j];
			v[j] = v[j - 1];
			v[j - 1] = x;
		}
	buf_reset(out);
	for (size_t i = 0; i < n; i++)
		buf_printf(out, "%s\n", v[i]);
	free(v);
	free(copy);
}

TEST(selects_ahead_same_results_selects_and_errors)
{
	setup();
	workers_t *w = workers_new(2);
	logq_t lq = {.base = {&logq_ops}, .main = pthread_self()};
	pthread_mutex_init(&lq.mu, NULL);
	buf_init(&lq.log);
	promql_opts_t seq = {.workers = w}, ahead = {.workers = w, .select_ahead = 2};
	/* predicted exactly (the same selects are made), then mispredicted or unplanned ones (subqueries, @,
	 * selectors never evaluated): the results must be the same all the same */
	static const char *const exact[] = {
	    "c / g",
	    "sum(rate(c[1m])) / sum(rate(c[2m]))",
	    "sum by (i) (c) + count by (i) ((c))",
	    "topk(1, c) + c",
	    "timestamp(c) * on() group_left abs(g)",
	    "(c) - on() group_left() (sum((c)))",
	    "rate(c[1m]) / on() group_left() (g + g offset 1m)",
	    "c + c offset 1m - c",
	    "absent(nope) or g",
	    "-g + c > -1000",
	    "histogram_quantile(0.5, sum by (le) (rate(c[1m]))) or vector(1) + g"};
	static const char *const other[] = {
	    "max_over_time(c[5m:30s]) + c + g",    "c @ 100 + g + c offset 1m",       "g and g @ end() + c",
	    "predict_linear(c[2m] @ 120, 60) + g", "sum_over_time((g + c)[2m:]) / c", "scalar(g) * c + c"};
	const char *why = NULL;
	char q[256];
	buf_t a = BUF_INIT, b = BUF_INIT, la = BUF_INIT, lb = BUF_INIT;
	q[0] = 0;
	for (size_t i = 0; i < ARRAY_LEN(exact) + ARRAY_LEN(other) && !why; i++) {
		const char *e = i < ARRAY_LEN(exact) ? exact[i] : other[i - ARRAY_LEN(exact)];
		arena_t ar;
		for (int k = 0; k < 2; k++) {
			buf_reset(&lq.log);
			arena_init(&ar, 0);
			promql_result_t r;
			err_t err = {0};
			buf_t *out = k ? &b : &a;
			buf_reset(out);
			if (promql_query(k ? &ahead : &seq, &lq.base, &ar, str_c(e), 0, 300000, 15000, &r,
			                 &err))
				buf_printf(out, "error %s: %s", r.error_type, err.msg);
			else
				promql_result_json(out, &r);
			arena_release(&ar);
			sorted_lines(&lq.log, k ? &lb : &la);
		}
		snprintf(q, sizeof q, "%s", e);
		if (a.n < 20 || !strncmp(a.p, "error", 5))
			why = "unexpected result";
		else if (a.n != b.n || memcmp(a.p, b.p, a.n))
			why = "result differs with selects ahead";
		else if (i < ARRAY_LEN(exact) && (la.n != lb.n || memcmp(la.p, lb.p, la.n)))
			why = "other selects with selects ahead";
	}
	if (!why && lq.off_thread == 0)
		why = "no select was made ahead on the pool", q[0] = 0;
	/* a failing select fails the query alike wherever it comes, on the pool or not */
	static const char *const fails[] = {"g + down", "down + g", "c + g * down",
	                                    "sum(rate(down[1m])) + c / g"};
	for (size_t i = 0; i < ARRAY_LEN(fails) && !why; i++) {
		for (int k = 0; k < 2; k++) {
			arena_t ar;
			arena_init(&ar, 0);
			promql_result_t r;
			err_t err = {0};
			buf_t *out = k ? &b : &a;
			buf_reset(out);
			int rc = promql_query(k ? &ahead : &seq, &lq.base, &ar, str_c(fails[i]), 0, 300000,
			                      15000, &r, &err);
			buf_printf(out, "rc %d %s: %s", rc, r.error_type ? r.error_type : "-", err.msg);
			arena_release(&ar);
		}
		snprintf(q, sizeof q, "%s", fails[i]);
		if (strstr(a.p, "internal: store s1: unreachable") == NULL)
			why = "unexpected error";
		else if (strcmp(a.p, b.p))
			why = "error differs with selects ahead";
	}
	workers_free(w);
	static char msg[1500];
	if (why)
		snprintf(msg, sizeof msg, "%s: %s\nsequential: %.300s\n     ahead: %.300s\n%.300s%.300s", q,
		         why, a.p, b.p, la.p, lb.p);
	buf_release(&a);
	buf_release(&b);
	buf_release(&la);
	buf_release(&lb);
	buf_release(&lq.log);
	pthread_mutex_destroy(&lq.mu);
	if (why)
		TEST_FAILF("%s", msg);
}

TEST(rate_with_reset_and_extrapolation)
{
	setup();
	/* a: 10 per 15s -> 0.666.. per second; window [240s, 300s] holds samples at 240..300 */
	CHECK_Q("rate(c{i=\"a\"}[1m])", 300000,
	        "{\"resultType\":\"vector\",\"result\":[{\"metric\":{\"i\":\"a\"},\"value\":[300,\"0."
	        "6666666666666666\"]}]}");
	/* b resets at 150s: increase over [120s,180s] = (45 - 40) + 45 ... counter-corrected */
	CHECK_Q("increase(c{i=\"b\"}[1m])", 180000,
	        "{\"resultType\":\"vector\",\"result\":[{\"metric\":{\"i\":\"b\"},\"value\":[180,\"15\"]}]}");
	CHECK_Q("resets(c[5m])", 300000,
	        "{\"resultType\":\"vector\",\"result\":[{\"metric\":{\"i\":\"a\"},\"value\":[300,\"0\"]},{"
	        "\"metric\":{\"i\":\"b\"},\"value\":[300,\"1\"]}]}");
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
	CHECK_Q("vector(1e21)", 1,
	        "{\"resultType\":\"vector\",\"result\":[{\"metric\":{},\"value\":[0.001,\"1e+21\"]}]}");
}

TEST(math_edge_cases)
{
	setup();
	CHECK_Q("sgn(g)", 15000,
	        "{\"resultType\":\"vector\",\"result\":[{\"metric\":{},\"value\":[15,\"1\"]}]}");
	CHECK_Q("clamp(g, 2, 1)", 15000, "{\"resultType\":\"vector\",\"result\":[]}");
	CHECK_Q("clamp_min(g, 0)", 0,
	        "{\"resultType\":\"vector\",\"result\":[{\"metric\":{},\"value\":[0,\"0\"]}]}");
	CHECK_Q("sqrt(g)", 0,
	        "{\"resultType\":\"vector\",\"result\":[{\"metric\":{},\"value\":[0,\"NaN\"]}]}");
	CHECK_Q("ln(g - g)", 0,
	        "{\"resultType\":\"vector\",\"result\":[{\"metric\":{},\"value\":[0,\"-Inf\"]}]}");
	CHECK_Q("round(vector(2.5))", 0,
	        "{\"resultType\":\"vector\",\"result\":[{\"metric\":{},\"value\":[0,\"3\"]}]}");
	CHECK_Q("round(vector(-2.5))", 0,
	        "{\"resultType\":\"vector\",\"result\":[{\"metric\":{},\"value\":[0,\"-2\"]}]}");
	CHECK_Q("vector(1) % 0", 0,
	        "{\"resultType\":\"vector\",\"result\":[{\"metric\":{},\"value\":[0,\"NaN\"]}]}");
	CHECK_Q("vector(-1) / 0", 0,
	        "{\"resultType\":\"vector\",\"result\":[{\"metric\":{},\"value\":[0,\"-Inf\"]}]}");
	CHECK_Q(
	    "days_in_month(vector(951782400))", 0,
	    "{\"resultType\":\"vector\",\"result\":[{\"metric\":{},\"value\":[0,\"29\"]}]}"); /* Feb 2000 */
	CHECK_Q(
	    "day_of_week(vector(-86400))", 0,
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
	        "{\"resultType\":\"vector\",\"result\":[{\"metric\":{\"__name__\":\"g\",\"dst\":\"\\u003cg$"
	        "\\u003eg\"},\"value\":[0,\"-1\"]}]}");
	/* dropping the name makes two series collide */
	CHECK(q_json("c{i=\"a\"} * 1 or label_replace(c{i=\"a\"}, \"__name__\", \"\", \"\", \"\")", 0, NULL,
	             out, sizeof out, &et) == 0);
	CHECK(q_json("label_replace(c, \"i\", \"same\", \"\", \"\")", 0, NULL, out, sizeof out, &et) != 0);
	CHECK_STR(out, "vector cannot contain metrics with the same labelset");
}

TEST(matching_errors)
{
	setup();
	char out[1024];
	const char *et = NULL;
	CHECK(q_json("c + on() g", 0, NULL, out, sizeof out, &et) != 0);
	CHECK_STR(
	    out,
	    "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)");
	CHECK(q_json("g + on() c", 0, NULL, out, sizeof out, &et) != 0);
	/* label sets as 2.42's Labels.String(): every label (the name too) as name="strconv.Quote(value)" */
	CHECK_STR(out,
	          "found duplicate series for the match group {} on the right hand-side of the operation: "
	          "[{__name__=\"c\", i=\"b\"}, {__name__=\"c\", i=\"a\"}];many-to-many matching not allowed: "
	          "matching labels must be unique on one side");
	add("d", "i", "x\"y\n", 0, 1);
	add("e", "i", "x\"y\n", 0, 2);
	CHECK(q_json("c + on(i) {__name__=~\"d|e\"}", 0, NULL, out, sizeof out, &et) != 0);
	CHECK_STR(
	    out,
	    "found duplicate series for the match group {i=\"x\\\"y\\n\"} on the right hand-side of the "
	    "operation: [{__name__=\"e\", i=\"x\\\"y\\n\"}, {__name__=\"d\", i=\"x\\\"y\\n\"}];many-to-many "
	    "matching not allowed: matching labels must be unique on one side");
	CHECK_STR(et, "execution");
	CHECK(q_json("{__name__=~\"d|e\"} + on(i) group_right c", 0, NULL, out, sizeof out, &et) != 0);
	CHECK(strstr(out, "found duplicate series for the match group {i=\"x\\\"y\\n\"} on the left "
	                  "hand-side of the operation: [{__name__=\"e\"") == out);
	CHECK_Q("c * on() group_left g", 0,
	        "{\"resultType\":\"vector\",\"result\":[{\"metric\":{\"i\":\"a\"},\"value\":[0,\"-0\"]},{"
	        "\"metric\":{\"i\":\"b\"},\"value\":[0,\"-0\"]}]}");
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
		rc = promql_query(&ot, memstore_queryable(store), &a, STR("max_over_time(c[10m:1ms])"), 0,
		                  600000, 60000, &r, &err);
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
	static const char *const qs[] = {"c",
	                                 "sum(c)",
	                                 "sum(rate(c[1m]))",
	                                 "rate(c[1m])",
	                                 "c + on(i) c",
	                                 "-c",
	                                 "topk(1, c)",
	                                 "max_over_time(c[2m:30s])",
	                                 "abs(c) * 2",
	                                 "sum by (i) (c @ 150)",
	                                 "count_values(\"v\", c)",
	                                 "histogram_quantile(0.5, c)",
	                                 "absent_over_time(c[1m])",
	                                 "timestamp(c)",
	                                 "predict_linear(c[1m], 60)",
	                                 "quantile_over_time(0.5, c[1m])"};
	for (size_t i = 0; i < ARRAY_LEN(qs); i++) {
		int64_t p = 0;
		if (q_range_peak(qs[i], 0, &p) != 0)
			TEST_FAILF("%s failed without a limit", qs[i]);
		if (q_range_peak(qs[i], p, NULL) != 0)
			TEST_FAILF("%s failed at max-samples = its peak %lld", qs[i], (long long)p);
		if (p > 1 && q_range_peak(qs[i], p - 1, NULL) != ERR_LIMIT)
			TEST_FAILF("%s did not fail at max-samples = peak - 1 (%lld)", qs[i],
			           (long long)(p - 1));
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
	static const char *const qs[] = {"sum(rate(big[5m]))",
	                                 "rate(big[1m])",
	                                 "sum by (s) (increase(big[2m]))",
	                                 "count(big)",
	                                 "big",
	                                 "max_over_time(big[10m])",
	                                 "avg(deriv(big[5m]))",
	                                 "predict_linear(big[5m], 60)",
	                                 "timestamp(big)"};
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

/* expr as a range query over the test's memstore into r (from a, which the caller releases); an error
 * goes to why. */
static void run_expr(const char *expr, int64_t start, int64_t step, int64_t nsteps, arena_t *a,
                     promql_result_t *r, char *why, size_t whysz)
{
	arena_init(a, 0);
	err_t err = {0};
	promql_opts_t o = {0};
	*r = (promql_result_t){0};
	if (promql_query(&o, memstore_queryable(store), a, str_c(expr), start, start + (nsteps - 1) * step,
	                 step, r, &err))
		snprintf(why, whysz, "%s: %s", expr, err.msg);
}

/* The number nn of a result series labelled s="<letter>nn", or -1 with why filled. */
static int series_no(const promql_series_t *ser, const char *expr, char *why, size_t whysz)
{
	bool found = false;
	str_t sv = labels_get(&ser->ls, STR("s"), &found);
	if (!found || sv.n != 3) {
		snprintf(why, whysz, "%s: unexpected series", expr);
		return -1;
	}
	return (sv.p[1] - '0') * 10 + (sv.p[2] - '0');
}

/* The engine's next point of series ser (*j) at step i (ending at rend) against the reference (has, want):
 * the first difference goes to why; a point that is there is counted and passed. */
static void check_point(char *why, size_t whysz, const char *expr, int s, int64_t i, int64_t rend,
                        const promql_series_t *ser, size_t *j, bool has, double want, size_t *checked)
{
	bool got = *j < ser->n && ser->t[*j] == rend;
	if (has != got)
		snprintf(why, whysz, "%s s=%d step %lld: point %s, reference %s", expr, s, (long long)i,
		         got ? "present" : "absent", has ? "present" : "absent");
	else if (got && memcmp(&want, &ser->v[*j], sizeof want) && !(isnan(want) && isnan(ser->v[*j])))
		snprintf(why, whysz, "%s s=%d step %lld: %.17g, reference %.17g", expr, s, (long long)i,
		         ser->v[*j], want);
	if (got)
		++*j, ++*checked;
}

/* After one expression: a missing series or too few points checked fail too; a failure names the SIMD
 * level the kernels ran at. */
static void check_done(char *why, size_t whysz, const char *expr, size_t nseries, size_t want_series,
                       size_t checked)
{
	if (!why[0] && (nseries != want_series || checked < 1000))
		snprintf(why, whysz, "%s: %zu series, %zu points checked", expr, nseries, checked);
	if (why[0])
		snprintf(why + strlen(why), whysz - strlen(why), " (simd level %d)", promql_simd());
}

/* Prometheus 2.42's extrapolatedRate for one window of stale-free samples, written from its definition
 * (the oracle for the engine's blocked, 2-lane version of the same arithmetic). */
static bool ref_extrapolated(const int64_t *t, const double *v, size_t n, int64_t rstart, int64_t rend,
                             int64_t range, bool counter, bool rate, double *out)
{
	if (n < 2)
		return false;
	double result = v[n - 1] - v[0];
	if (counter)
		for (size_t i = 1; i < n; i++)
			if (v[i] < v[i - 1])
				result += v[i - 1];
	double to_start = (double)(t[0] - rstart) / 1000, to_end = (double)(rend - t[n - 1]) / 1000;
	double sampled = (double)(t[n - 1] - t[0]) / 1000, avg = sampled / (double)(n - 1);
	if (counter && result > 0 && v[0] >= 0) {
		double to_zero = sampled * (v[0] / result);
		if (to_zero < to_start)
			to_start = to_zero;
	}
	double thr = avg * 1.1, ext = sampled;
	ext += to_start < thr ? to_start : avg / 2;
	ext += to_end < thr ? to_end : avg / 2;
	double factor = ext / sampled;
	if (rate)
		factor /= (double)range / 1000;
	*out = result * factor;
	return true;
}

TEST(rate_increase_delta_bit_identical_to_reference)
{
	/* Counters with jitter, gaps (windows of 0 and 1 samples), resets (none, one, and more than the
	 * kernel tracks up front), negative starts, NaN and stale markers; 203 steps so the kernel's
	 * blocks of 64 and its odd lane counts are both crossed. Every point is compared bit for bit. */
	setup();
	enum { NS = 12, NPT = 900 };
	static int64_t ts[NS][NPT];
	static double vs[NS][NPT];
	static size_t nv[NS];
	uint64_t seed = 12345;
	char name[16];
	for (int s = 0; s < NS; s++) {
		snprintf(name, sizeof name, "r%02d", s);
		double v = s == 3 ? -50 : s * 3.5;
		int64_t t = s * 777;
		nv[s] = 0;
		for (int i = 0; i < NPT; i++) {
			seed = seed * 6364136223846793005ull + 1442695040888963407ull;
			uint32_t r = (uint32_t)(seed >> 33);
			t += 5000 + (int64_t)(r % 7000);
			if (s == 4 && i % 50 < 20)
				t += 30000; /* sparse stretches */
			v += (double)(r % 13) * 0.37;
			if ((s == 5 && r % 10 == 0) || (s == 6 && i == 400) || (s == 7 && r % 97 == 0))
				v = (double)(r % 5); /* resets: many, one, a few */
			double sv = v;
			if (s == 8 && i == 300)
				sv = NAN;
			add("rc", "s", name, t, sv);
			ts[s][nv[s]] = t, vs[s][nv[s]] = sv, nv[s]++;
			if (s == 9 && i % 100 == 50) {
				union {
					uint64_t b;
					double d;
				} st = {0x7ff0000000000002ull};
				add("rc", "s", name, t + 1, st.d); /* a stale marker: dropped from windows */
				t += 1;
			}
		}
	}
	static const char *const fn[] = {"rate", "increase", "delta"};
	static const int64_t ranges[] = {20000, 60000, 300000};
	int64_t start = 30000, step = 23000, nsteps = 203;
	char why[512] = "";
	/* every vector variant the machine can run: the detected one, then the narrower ones */
	atomic_store(&promql_simd_level, -1);
	int best = promql_simd();
	for (int level = best; level >= PROMQL_SIMD_BASE && !why[0]; level--) {
		atomic_store(&promql_simd_level, level);
		for (size_t f = 0; f < ARRAY_LEN(fn) && !why[0]; f++)
			for (size_t ri = 0; ri < ARRAY_LEN(ranges) && !why[0]; ri++) {
				char expr[64];
				snprintf(expr, sizeof expr, "%s(rc[%llds])", fn[f],
				         (long long)(ranges[ri] / 1000));
				arena_t a;
				promql_result_t r;
				run_expr(expr, start, step, nsteps, &a, &r, why, sizeof why);
				size_t checked = 0;
				for (size_t k = 0; !why[0] && k < r.nseries; k++) {
					int s = series_no(&r.series[k], expr, why, sizeof why);
					if (s < 0)
						break;
					size_t j = 0;
					for (int64_t i = 0; i < nsteps && !why[0]; i++) {
						int64_t rend = start + i * step, rstart = rend - ranges[ri];
						size_t lo = 0, hi = 0;
						while (lo < nv[s] && ts[s][lo] < rstart)
							lo++;
						hi = lo;
						while (hi < nv[s] && ts[s][hi] <= rend)
							hi++;
						double want = 0;
						bool has =
						    ref_extrapolated(ts[s] + lo, vs[s] + lo, hi - lo, rstart,
						                     rend, ranges[ri], f < 2, f == 0, &want);
						check_point(why, sizeof why, expr, s, i, rend, &r.series[k],
						            &j, has, want, &checked);
					}
				}
				check_done(why, sizeof why, expr, r.nseries, NS, checked);
				arena_release(&a);
			}
	}
	atomic_store(&promql_simd_level, -1);
	if (why[0])
		TEST_FAILF("%s", why);
}

/* Prometheus 2.42's kahanSumInc and the *_over_time functions over one window, written from their definitions
 * (the oracle for the engine's sliding-extremum and 4-window kernels). f: 0 min, 1 max, 2 sum, 3 avg,
 * 4 stddev, 5 stdvar. */
static void ref_kahan(double inc, double *sum, double *c)
{
	double t = *sum + inc;
	if (fabs(*sum) >= fabs(inc))
		*c += (*sum - t) + inc;
	else
		*c += (inc - t) + *sum;
	*sum = t;
}

static bool ref_over_time(int f, const double *v, size_t n, double *out)
{
	if (n == 0)
		return false;
	double a = 0, ca = 0, b = 0, cb = 0, cnt = 0;
	switch (f) {
	case 0:
	case 1:
		a = v[0];
		for (size_t i = 1; i < n; i++)
			if ((f == 1 ? v[i] > a : v[i] < a) || isnan(a))
				a = v[i];
		*out = a;
		return true;
	case 2:
		for (size_t i = 0; i < n; i++)
			ref_kahan(v[i], &a, &ca);
		*out = isinf(a) ? a : a + ca;
		return true;
	case 3:
		for (size_t i = 0; i < n; i++) {
			cnt++;
			if (isinf(a)) {
				if (isinf(v[i]) && (a > 0) == (v[i] > 0))
					continue;
				if (!isinf(v[i]) && !isnan(v[i]))
					continue;
			}
			ref_kahan(v[i] / cnt - a / cnt, &a, &ca);
		}
		*out = isinf(a) ? a : a + ca;
		return true;
	default:
		for (size_t i = 0; i < n; i++) {
			cnt++;
			double delta = v[i] - (a + ca);
			ref_kahan(delta / cnt, &a, &ca);
			ref_kahan(delta * (v[i] - (a + ca)), &b, &cb);
		}
		*out = f == 4 ? sqrt((b + cb) / cnt) : (b + cb) / cnt;
		return true;
	}
}

TEST(instant_selector_equal_to_reference)
{
	/* The lookback scan (four stretches of steps side by side when the steps are in order): jittered,
	 * sparse (gaps past the lookback) and dense series, stale markers, a series whose samples all come
	 * after some steps; 67, 203 and 1,000 steps (stretches that do not divide evenly), and timestamp().
	 */
	setup();
	enum { NS = 6, NPT = 900 };
	static int64_t ts[NS][NPT];
	static double vs[NS][NPT];
	uint64_t seed = 777;
	char name[16];
	for (int s = 0; s < NS; s++) {
		snprintf(name, sizeof name, "i%02d", s);
		int64_t t = s == 5 ? 900000 : s * 700;
		for (int i = 0; i < NPT; i++) {
			seed = seed * 6364136223846793005ull + 1442695040888963407ull;
			uint32_t r = (uint32_t)(seed >> 33);
			t += s == 0   ? 15000 + (int64_t)(r % 5)
			     : s == 1 ? 1000 + (int64_t)(r % 3000)
			              : 4000 + (int64_t)(r % 30000);
			if (s == 2 && i % 50 == 0)
				t += 400000; /* a gap past the lookback */
			double v = (double)(r % 1000) / 7;
			if (s == 3 && r % 11 == 0) {
				uint64_t b = 0x7ff0000000000002ull;
				memcpy(&v, &b, 8); /* a stale marker */
			}
			add("inst", "s", name, t, v);
			ts[s][i] = t, vs[s][i] = v;
		}
	}
	static const int64_t nsteps[] = {67, 203, 1000};
	static const char *const exprs[] = {"inst", "timestamp(inst)"};
	char why[512] = "";
	for (size_t e = 0; e < ARRAY_LEN(exprs) && !why[0]; e++)
		for (size_t k = 0; k < ARRAY_LEN(nsteps) && !why[0]; k++) {
			int64_t start = 10000, step = 13000000 / nsteps[k];
			arena_t a;
			promql_result_t r;
			run_expr(exprs[e], start, step, nsteps[k], &a, &r, why, sizeof why);
			size_t checked = 0;
			for (size_t q = 0; !why[0] && q < r.nseries; q++) {
				int s = series_no(&r.series[q], exprs[e], why, sizeof why);
				if (s < 0)
					break;
				size_t j = 0, at = 0;
				for (int64_t i = 0; i < nsteps[k] && !why[0]; i++) {
					int64_t rt = start + i * step;
					while (at < NPT && ts[s][at] <= rt)
						at++;
					double v = at ? vs[s][at - 1] : 0;
					uint64_t b;
					memcpy(&b, &v, 8);
					bool has = at > 0 && ts[s][at - 1] >= rt - 300000 &&
					           b != 0x7ff0000000000002ull;
					double want = e ? (double)ts[s][at ? at - 1 : 0] / 1000.0 : v;
					check_point(why, sizeof why, exprs[e], s, i, rt, &r.series[q], &j,
					            has, want, &checked);
				}
			}
			if (!why[0] && checked < (size_t)nsteps[k])
				snprintf(why, sizeof why, "%s: %zu series, %zu points checked", exprs[e],
				         r.nseries, checked);
			arena_release(&a);
		}
	if (why[0])
		TEST_FAILF("%s", why);
}

TEST(over_time_bit_identical_to_reference)
{
	/* Jittered and sparse series (windows of 0, 1 and many samples), NaN runs, ±Inf, -0/0 and equal
	 * values (which extreme is returned), values near DBL_MAX (avg's overflow path), plateaus, a
	 * series whose first samples are NaN; 203 steps so groups of four windows end part-filled. */
	setup();
	enum { NS = 10, NPT = 700 };
	static int64_t ts[NS][NPT];
	static double vs[NS][NPT];
	uint64_t seed = 99;
	char name[16];
	for (int s = 0; s < NS; s++) {
		snprintf(name, sizeof name, "o%02d", s);
		double v = s * 11.25 - 40;
		int64_t t = s * 913;
		for (int i = 0; i < NPT; i++) {
			seed = seed * 6364136223846793005ull + 1442695040888963407ull;
			uint32_t r = (uint32_t)(seed >> 33);
			t += 4000 + (int64_t)(r % 9000);
			if (s == 2 && i % 40 < 15)
				t += 45000;
			v += ((double)(r % 2001) - 1000) * 0.013;
			double sv = v;
			if (s == 1)
				sv = (r % 3 == 0) ? -0.0 : (r % 3 == 1) ? 0.0 : (double)(r % 4); /* ties */
			if (s == 3 && (i % 60 < 7 || r % 31 == 0))
				sv = NAN;
			if (s == 4 && r % 53 == 0)
				sv = r % 2 ? INFINITY : -INFINITY;
			if (s == 5)
				sv = (r % 2 ? 1.5e308 : 1.7e308) * (r % 5 == 0 ? -1 : 1);
			if (s == 6)
				sv = (double)(i / 25); /* plateaus */
			if (s == 7 && i < 30)
				sv = NAN;
			if (s == 8)
				sv = v * 1e15 + (double)(r % 7) * 1e-3;
			add("ot", "s", name, t, sv);
			ts[s][i] = t, vs[s][i] = sv;
		}
	}
	static const char *const fn[] = {"min_over_time", "max_over_time",    "sum_over_time",
	                                 "avg_over_time", "stddev_over_time", "stdvar_over_time"};
	static const int64_t ranges[] = {10000, 60000, 600000};
	int64_t start = 20000, step = 19000, nsteps = 203;
	char why[512] = "";
	/* every vector variant the machine can run: the detected one, then AVX2 and the baseline */
	atomic_store(&promql_simd_level, -1);
	int best = promql_simd();
	for (int level = best; level >= PROMQL_SIMD_BASE && !why[0]; level--) {
		atomic_store(&promql_simd_level, level);
		for (size_t f = 0; f < ARRAY_LEN(fn) && !why[0]; f++)
			for (size_t ri = 0; ri < ARRAY_LEN(ranges) && !why[0]; ri++) {
				char expr[64];
				snprintf(expr, sizeof expr, "%s(ot[%llds])", fn[f],
				         (long long)(ranges[ri] / 1000));
				arena_t a;
				promql_result_t r;
				run_expr(expr, start, step, nsteps, &a, &r, why, sizeof why);
				size_t checked = 0;
				for (size_t k = 0; !why[0] && k < r.nseries; k++) {
					int s = series_no(&r.series[k], expr, why, sizeof why);
					if (s < 0)
						break;
					size_t j = 0;
					for (int64_t i = 0; i < nsteps && !why[0]; i++) {
						int64_t rend = start + i * step, rstart = rend - ranges[ri];
						size_t lo = 0, hi;
						while (lo < NPT && ts[s][lo] < rstart)
							lo++;
						for (hi = lo; hi < NPT && ts[s][hi] <= rend; hi++)
							;
						double want = 0;
						bool has = ref_over_time((int)f, vs[s] + lo, hi - lo, &want);
						check_point(why, sizeof why, expr, s, i, rend, &r.series[k],
						            &j, has, want, &checked);
					}
				}
				check_done(why, sizeof why, expr, r.nseries, NS, checked);
				arena_release(&a);
			}
	}
	atomic_store(&promql_simd_level, -1);
	if (why[0])
		TEST_FAILF("%s", why);
}

/* Prometheus 2.42's linearRegression over one window, written from its definition (the oracle for the
 * engine's 4-window deriv / predict_linear kernel). */
static void ref_linreg(const int64_t *t, const double *v, size_t n, int64_t icept, double *slope,
                       double *intercept)
{
	double cn = 0, sx = 0, cx = 0, sy = 0, cy = 0, sxy = 0, cxy = 0, sx2 = 0, cx2 = 0;
	bool consty = true;
	for (size_t i = 0; i < n; i++) {
		if (i > 0 && v[i] != v[0])
			consty = false;
		cn += 1;
		double x = (double)(t[i] - icept) / 1e3;
		ref_kahan(x, &sx, &cx);
		ref_kahan(v[i], &sy, &cy);
		ref_kahan(x * v[i], &sxy, &cxy);
		ref_kahan(x * x, &sx2, &cx2);
	}
	if (consty) {
		*slope = isinf(v[0]) ? NAN : 0;
		*intercept = isinf(v[0]) ? NAN : v[0];
		return;
	}
	sx += cx, sy += cy, sxy += cxy, sx2 += cx2;
	double cov = sxy - sx * sy / cn, var = sx2 - sx * sx / cn;
	*slope = cov / var;
	*intercept = sy / cn - *slope * sx / cn;
}

TEST(deriv_predict_linear_bit_identical_to_reference)
{
	/* Jittered and sparse series (windows of 0, 1, 2 and many samples), plateaus (constant windows,
	 * constant ±Inf), NaN, -0/0 runs, large values, a regular series (windows with the same time
	 * offsets, whose x values the kernel reuses) with one late scrape, values whose sums overflow, ±Inf
	 * among finite values; 203 steps so groups of four
	 * windows end part-filled. Every point is compared bit for bit. */
	setup();
	enum { NS = 11, NPT = 700 };
	static int64_t ts[NS][NPT];
	static double vs[NS][NPT];
	uint64_t seed = 4242;
	char name[16];
	for (int s = 0; s < NS; s++) {
		snprintf(name, sizeof name, "l%02d", s);
		double v = s * 7.5 - 20;
		int64_t t = s * 611;
		for (int i = 0; i < NPT; i++) {
			seed = seed * 6364136223846793005ull + 1442695040888963407ull;
			uint32_t r = (uint32_t)(seed >> 33);
			t += s == 8 ? 17000
			            : 3000 + (int64_t)(r % 11000); /* s8: regular, the step's interval */
			if (s == 2 && i % 40 < 15)
				t += 50000;
			if (s == 8 && i == 350)
				t += 1; /* one late scrape: the offsets change for a while */
			v += ((double)(r % 2001) - 1000) * 0.017;
			double sv = v;
			if (s == 1)
				sv = (double)(i / 30); /* plateaus: constant windows */
			if (s == 3 && r % 29 == 0)
				sv = NAN;
			if (s == 4)
				sv = i / 50 % 2 ? INFINITY : (double)(r % 3); /* constant +Inf stretches */
			if (s == 5)
				sv = (r % 2) ? -0.0 : 0.0;
			if (s == 6)
				sv = v * 1e12 + (double)(r % 5);
			if (s == 7)
				sv = (double)(r % 4); /* integers, many repeats */
			if (s == 9) /* sums that overflow (the vector Kahan step's error term past DBL_MAX) */
				sv = (r % 2 ? 1.5e308 : 1.7e308) * (r % 5 == 0 ? -1 : 1);
			if (s == 10 && r % 13 == 0) /* ±Inf among finite values */
				sv = r % 2 ? INFINITY : -INFINITY;
			add("lr", "s", name, t, sv);
			ts[s][i] = t, vs[s][i] = sv;
		}
	}
	static const int64_t ranges[] = {45000, 120000, 900000};
	int64_t start = 20000, step = 17000, nsteps = 203;
	char why[512] = "";
	/* f: deriv, predict_linear with every vector variant the machine can run, widest first */
	atomic_store(&promql_simd_level, -1);
	int best = promql_simd();
	for (int f = 0; f < 2 * (best + 1) && !why[0]; f++)
		for (size_t ri = 0; ri < ARRAY_LEN(ranges) && !why[0]; ri++) {
			char expr[64];
			atomic_store(&promql_simd_level, best - f / 2);
			if (f % 2 == 0)
				snprintf(expr, sizeof expr, "deriv(lr[%llds])",
				         (long long)(ranges[ri] / 1000));
			else
				snprintf(expr, sizeof expr, "predict_linear(lr[%llds], 3600)",
				         (long long)(ranges[ri] / 1000));
			arena_t a;
			promql_result_t r;
			run_expr(expr, start, step, nsteps, &a, &r, why, sizeof why);
			size_t checked = 0;
			for (size_t k = 0; !why[0] && k < r.nseries; k++) {
				int s = series_no(&r.series[k], expr, why, sizeof why);
				if (s < 0)
					break;
				size_t j = 0;
				for (int64_t i = 0; i < nsteps && !why[0]; i++) {
					int64_t rend = start + i * step, rstart = rend - ranges[ri];
					size_t lo = 0, hi;
					while (lo < NPT && ts[s][lo] < rstart)
						lo++;
					for (hi = lo; hi < NPT && ts[s][hi] <= rend; hi++)
						;
					double want = 0, sl, ic;
					bool has = hi - lo >= 2;
					if (has) {
						ref_linreg(ts[s] + lo, vs[s] + lo, hi - lo,
						           f % 2 == 0 ? ts[s][lo] : rend, &sl, &ic);
						want = f % 2 == 0 ? sl : sl * 3600 + ic;
					}
					check_point(why, sizeof why, expr, s, i, rend, &r.series[k], &j, has,
					            want, &checked);
				}
			}
			check_done(why, sizeof why, expr, r.nseries, NS, checked);
			arena_release(&a);
		}
	atomic_store(&promql_simd_level, -1);
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

#define CHECK_STOPS(expr, start, end, step, timeout, cancel_after, w, want_rc, want_msg)                     \
	do {                                                                                                 \
		err_t e_ = {0};                                                                              \
		uint64_t took_ = 0;                                                                          \
		int rc_ =                                                                                    \
		    q_stop((expr), (start), (end), (step), (timeout), (cancel_after), (w), &e_, &took_);     \
		if (rc_ != (want_rc) || strcmp(e_.msg, (want_msg)) || took_ > 5000)                          \
			TEST_FAILF("%s: rc %d (%s) after %llu ms, want rc %d (%s) within 5 s", (expr), rc_,  \
			           e_.msg, (unsigned long long)took_, (want_rc), (want_msg));                \
	} while (0)

TEST(huge_windows_honour_deadline_and_cancel)
{
	/* Few steps, huge windows: quantile_over_time over a 10m:1ms subquery copies and sorts 600k points
	 * per step (1001 steps: about a minute of work), a plain range function over a dense raw series
	 * sums 300k samples per step. Both must stop soon after the deadline or the cancel flag: within 5 s
	 * of wall time, which holds on a 2-core machine under a load of 25 (sanitizer build), while running
	 * to the end would take a minute. */
	setup();
	for (int i = 0; i < 300000; i++)
		add("dense", NULL, NULL, i, (double)(i % 97));
	const char *tmo = "query timed out in query execution",
	           *cnl = "query was canceled in query execution";
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

/* "t op t op ... t" with n terms (heap; free it). */
static char *chain_of(const char *t, const char *op, int n)
{
	size_t tl = strlen(t), ol = strlen(op);
	char *q = xmalloc((size_t)n * (tl + ol + 2) + 1), *p = q;
	for (int i = 0; i < n; i++) {
		if (i) {
			*p++ = ' ';
			memcpy(p, op, ol);
			p += ol;
			*p++ = ' ';
		}
		memcpy(p, t, tl);
		p += tl;
	}
	*p = 0;
	return q;
}

TEST(long_operator_chains_evaluate_in_bounded_memory)
{
	/* 20,000 terms: no recursion per operator (the stack would overflow) and intermediate results
	 * released as the chain goes (each is one small vector; the budget is 8 MiB) */
	setup();
	promql_opts_t o = {.max_memory = 8u << 20};
	char out[4096];
	const char *et = NULL;
	struct {
		const char *t, *op, *want;
	} cases[] = {
	    {"c", "+",
	     "{\"resultType\":\"vector\",\"result\":[{\"metric\":{\"i\":\"a\"},\"value\":[300,\"4000000\"]},"
	     "{\"metric\":{\"i\":\"b\"},\"value\":[300,\"1000000\"]}]}"},
	    {"g", "^", "{\"resultType\":\"vector\",\"result\":[{\"metric\":{},\"value\":[300,\"-1\"]}]}"},
	    {"1", "+", "{\"resultType\":\"scalar\",\"result\":[300,\"20000\"]}"},
	    {"c", "and",
	     "{\"resultType\":\"vector\",\"result\":[{\"metric\":{\"__name__\":\"c\",\"i\":\"a\"},\"value\":["
	     "300,\"200\"]},"
	     "{\"metric\":{\"__name__\":\"c\",\"i\":\"b\"},\"value\":[300,\"50\"]}]}"},
	};
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		char *q = chain_of(cases[i].t, cases[i].op, 20000);
		int rc = q_json(q, 300000, &o, out, sizeof out, &et);
		free(q);
		if (rc || strcmp(out, cases[i].want))
			TEST_FAILF("%s chain: rc %d %s", cases[i].op, rc, out);
	}
	/* as a range query, one vector of 21 steps at a time */
	char *q = chain_of("c{i=\"a\"}", "-", 5000);
	arena_t a;
	arena_init(&a, 0);
	promql_result_t r;
	err_t err = {0};
	CHECK(promql_query(&o, memstore_queryable(store), &a, str_c(q), 0, 300000, 15000, &r, &err) == 0);
	free(q);
	CHECK_EQ_INT(r.nseries, 1);
	CHECK_EQ_INT(r.series[0].n, 21);
	CHECK(r.series[0].v[20] == 200 - 4999 * 200.0);
	arena_release(&a);
}

TEST(query_sized_allocations_fail_softly)
{
	/* steps x series beyond the budget: an execution error before anything is allocated, not a
	 * fatal out-of-memory (the default budget is a quarter of the machine's memory) */
	setup();
	char out[1024];
	const char *et = NULL;
	const char *qs[] = {"sum_over_time(c[10000d:1ms])", "count_over_time(c[100d:1ms])", "c[10000d:1ms]",
	                    "max_over_time(rate(c[1m:1ms])[10000d:1ms])"};
	for (size_t i = 0; i < ARRAY_LEN(qs); i++) {
		int rc = q_json(qs[i], 300000, NULL, out, sizeof out, &et);
		if (rc != ERR_LIMIT || strcmp(et, "execution") || !strstr(out, "memory budget"))
			TEST_FAILF("%s: rc %d %s %s", qs[i], rc, et ? et : "", out);
	}
	arena_t a;
	arena_init(&a, 0);
	promql_result_t r;
	err_t err = {0};
	promql_opts_t o = {0};
	int rc = promql_query(&o, memstore_queryable(store), &a, STR("c"), -4000000000000000000LL,
	                      4000000000000000000LL, 1, &r, &err);
	CHECK_EQ_INT(rc, ERR_LIMIT);
	CHECK_STR(r.error_type, "execution");
	/* a label_replace template expanding to a value bigger than the budget */
	promql_opts_t om = {.max_memory = 256u << 10};
	char *tmpl = chain_of("$1$1$1$1$1$1$1$1$1$1", "", 20000);
	buf_t q = BUF_INIT;
	buf_printf(&q, "label_replace(c, \"x\", \"%s\", \"i\", \"(.*)\")", tmpl);
	free(tmpl);
	rc = promql_query(&om, memstore_queryable(store), &a, buf_str(&q), 300000, 300000, 0, &r, &err);
	buf_release(&q);
	CHECK_EQ_INT(rc, ERR_LIMIT);
	arena_release(&a);
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
	CHECK_STR(b.p, "{\"resultType\":\"matrix\",\"result\":[{\"metric\":{},\"values\":[[0,\"1\"],[30,"
	               "\"1\"],[60,\"1\"]]}]}");
	buf_reset(&b);
	CHECK(promql_query(&o, memstore_queryable(store), &a, STR("foo[5m]"), 0, 60000, 30000, &r, &err) !=
	      0);
	CHECK_STR(r.error_type, "bad_data");
	/* staleness: a stale marker hides the series from the next step on */
	uint64_t bits = 0x7ff0000000000002ull;
	double stale;
	memcpy(&stale, &bits, 8);
	add("s", NULL, NULL, 0, 1);
	add("s", NULL, NULL, 20000, stale);
	CHECK(promql_query(&o, memstore_queryable(store), &a, STR("s"), 0, 40000, 10000, &r, &err) == 0);
	promql_result_json(&b, &r);
	CHECK_STR(b.p, "{\"resultType\":\"matrix\",\"result\":[{\"metric\":{\"__name__\":\"s\"},\"values\":[["
	               "0,\"1\"],[10,\"1\"]]}]}");
	buf_release(&b);
	arena_release(&a);
	memstore_free(store);
	store = NULL;
}

/* A matrix's points as the plain formatters write them, whatever runs of equal values (copied from the
 * point before) and timestamps (on the step grid or off it) the series have; long enough that the
 * buffer grows within a run of copies. */
TEST(result_json_matrix_points)
{
	enum { NS = 3, NP = 3000 };
	static const double vals[] = {0.1 + 0.2, 0.1 + 0.2, 7,        7,        7,         -0.0,    0.0,
	                              0.0,       -0.0,      NAN,      NAN,      1e-7,      1e-7,    1.0 / 3,
	                              2.0 / 3,   2.0 / 3,   INFINITY, INFINITY, -INFINITY, 123456.5};
	promql_series_t series[NS];
	int64_t ts[NS][NP];
	double vs[NS][NP];
	uint64_t x = 0x243F6A8885A308D3ULL;
	for (int i = 0; i < NS; i++) {
		for (int j = 0; j < NP; j++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			ts[i][j] = 1700000000000LL + 30000LL * j + (i == 2 && j % 7 == 3 ? 500 : 0);
			/* series 0: long runs; 1: the list above in order; 2: runs of random length */
			vs[i][j] = i == 0   ? (double)(j / 1000) / 3
			           : i == 1 ? vals[j % ARRAY_LEN(vals)]
			                    : (x % 3 ? vs[i][j ? j - 1 : 0] : (double)(x % 1000) / 7);
		}
		series[i] = (promql_series_t){.t = ts[i], .v = vs[i], .n = NP};
	}
	promql_result_t res = {.type = PROMQL_TYPE_MATRIX, .series = series, .nseries = NS};
	buf_t got = BUF_INIT, want = BUF_INIT;
	promql_result_json(&got, &res);
	buf_puts(&want, "{\"resultType\":\"matrix\",\"result\":[");
	for (int i = 0; i < NS; i++) {
		buf_puts(&want, i ? ",{\"metric\":{},\"values\":[" : "{\"metric\":{},\"values\":[");
		for (int j = 0; j < NP; j++) {
			buf_puts(&want, j ? ",[" : "[");
			buf_put_prom_ts(&want, ts[i][j]);
			buf_puts(&want, ",\"");
			buf_put_prom_value(&want, vs[i][j]);
			buf_puts(&want, "\"]");
		}
		buf_puts(&want, "]}");
	}
	buf_puts(&want, "]}");
	CHECK_EQ_INT((int64_t)got.n, (int64_t)want.n);
	CHECK(strcmp(got.p, want.p) == 0);
	buf_release(&got);
	buf_release(&want);
}

TEST_MAIN()
