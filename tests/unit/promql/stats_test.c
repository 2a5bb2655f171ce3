/* Unit tests for the engine's query statistics: samples read (2.42's totalQueryableSamples and its
 * per-step form). Expected counts are worked out by hand from 2.42's rules (engine.h);
 * tests/integration/promql_stats.py compares the same numbers with a real Prometheus 2.42. */
#include "test.h"

#include "base/alloc.h"
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

/* c{i="a"}, c{i="b"}: 21 samples each, 15 s apart from 0 to 300 s. */
static void setup(void)
{
	if (store)
		memstore_clear(store);
	else
		store = memstore_new();
	for (int i = 0; i <= 20; i++) {
		add("c", "i", "a", i * 15000, i * 10.0);
		add("c", "i", "b", i * 15000, i * 5.0);
	}
}

typedef struct counts {
	int rc;
	int64_t total;
	int64_t step[16];
	size_t nsteps;
} counts_t;

/* Range query over [0, 300 s] step 30 s (11 steps), or an instant query at 300 s (range == false). */
static counts_t run(const char *expr, bool range, int stats, workers_t *w)
{
	arena_t a;
	arena_init(&a, 0);
	promql_result_t r;
	err_t err = {0};
	promql_opts_t o = {.stats = stats, .workers = w};
	counts_t c = {0};
	c.rc = range ? promql_query(&o, memstore_queryable(store), &a, str_c(expr), 0, 300000, 30000, &r, &err)
		     : promql_query(&o, memstore_queryable(store), &a, str_c(expr), 300000, 300000, 0, &r, &err);
	if (c.rc == 0) {
		c.total = r.samples_total;
		c.nsteps = r.nsteps;
		for (size_t i = 0; i < r.nsteps && i < ARRAY_LEN(c.step); i++)
			c.step[i] = r.samples_per_step[i];
	}
	arena_release(&a);
	return c;
}

/* Per-step counts as a string "2,2,2,..." for comparison. */
static const char *steps_str(const counts_t *c)
{
	static char s[256];
	size_t n = 0;
	s[0] = 0;
	for (size_t i = 0; i < c->nsteps && n < sizeof s - 24; i++)
		n += (size_t)snprintf(s + n, sizeof s - n, "%s%lld", i ? "," : "", (long long)c->step[i]);
	return s;
}

#define CHECK_COUNTS(expr, range, want_total, want_steps)                                                \
	do {                                                                                             \
		counts_t c_ = run((expr), (range), PROMQL_STATS_PER_STEP, NULL);                         \
		if (c_.rc)                                                                               \
			TEST_FAILF("%s: rc %d", (expr), c_.rc);                                          \
		if (c_.total != (want_total) || strcmp(steps_str(&c_), (want_steps)))                    \
			TEST_FAILF("%s: total %lld steps [%s], want %lld [%s]", (expr), (long long)c_.total, \
				   steps_str(&c_), (long long)(want_total), (want_steps));              \
	} while (0)

TEST(selectors_count_points_per_step)
{
	setup();
	/* every step sees one point per series (5 m lookback) */
	CHECK_COUNTS("c", true, 22, "2,2,2,2,2,2,2,2,2,2,2");
	CHECK_COUNTS("timestamp(c)", true, 22, "2,2,2,2,2,2,2,2,2,2,2");
	/* operators, aggregations and literals read nothing more */
	CHECK_COUNTS("sum(c) * 2 + count(c)", true, 44, "4,4,4,4,4,4,4,4,4,4,4");
	CHECK_COUNTS("1 + 2", true, 0, "0,0,0,0,0,0,0,0,0,0,0");
	CHECK_COUNTS("c", false, 2, "2");
	CHECK_COUNTS("nonexistent", true, 0, "0,0,0,0,0,0,0,0,0,0,0");
}

TEST(range_functions_count_window_samples)
{
	setup();
	/* window [t - 60 s, t]: 1 sample at t = 0, 3 at 30 s, then 5; two series. The batched path
	 * (rate) and the per-series one (quantile_over_time) agree. */
	CHECK_COUNTS("rate(c[1m])", true, 98, "2,6,10,10,10,10,10,10,10,10,10");
	CHECK_COUNTS("quantile_over_time(0.5, c[1m])", true, 98, "2,6,10,10,10,10,10,10,10,10,10");
	CHECK_COUNTS("sum(rate(c[1m])) + count(c)", true, 120, "4,8,12,12,12,12,12,12,12,12,12");
	/* a window of one sample counts although rate() returns nothing for it */
	CHECK_COUNTS("rate(c[1m])", false, 10, "10");
	/* a subquery argument: the points of its result in each window (steps at multiples of 30 s from
	 * 0 on: 1, 2, then 3 per series), not what the subquery itself read */
	CHECK_COUNTS("max_over_time(c[1m:30s])", true, 60, "2,4,6,6,6,6,6,6,6,6,6");
	/* rate has no point at 0 s (one sample): 0, 1, 2, then 3 per series */
	CHECK_COUNTS("max_over_time(rate(c[1m])[1m:30s])", true, 54, "0,2,4,6,6,6,6,6,6,6,6");
}

TEST(top_level_matrix_and_step_invariant)
{
	setup();
	/* an instant query for a range vector: its samples (5 per series in [240 s, 300 s]) */
	CHECK_COUNTS("c[1m]", false, 10, "10");
	/* a top-level subquery: what its inner evaluation read (steps 240, 270, 300 s: 3 per series) */
	CHECK_COUNTS("c[1m:30s]", false, 6, "6");
	/* "@": evaluated once, counted at every step */
	CHECK_COUNTS("sum(c @ 150)", true, 22, "2,2,2,2,2,2,2,2,2,2,2");
	CHECK_COUNTS("rate(c[1m] @ 300)", true, 110, "10,10,10,10,10,10,10,10,10,10,10");
}

TEST(totals_without_per_step_and_off)
{
	setup();
	counts_t c = run("rate(c[1m])", true, PROMQL_STATS_TOTAL, NULL);
	CHECK_EQ_INT(c.rc, 0);
	CHECK_EQ_INT(c.total, 98);
	CHECK_EQ_INT(c.nsteps, 0);
	c = run("rate(c[1m])", true, PROMQL_STATS_NONE, NULL);
	CHECK_EQ_INT(c.rc, 0);
	CHECK_EQ_INT(c.total, 0);
	CHECK_EQ_INT(c.nsteps, 0);
}

TEST(parallel_batches_count_like_sequential)
{
	/* 300 series of 1,000 samples 1 s apart: batches of 256 series go to the pool */
	setup();
	char name[16];
	for (int s = 0; s < 300; s++) {
		snprintf(name, sizeof name, "s%03d", s);
		for (int i = 0; i < 1000; i++)
			add("big", "s", name, i * 1000 + s, i);
	}
	workers_t *w = workers_new(2);
	static const char *const qs[] = {"sum(rate(big[1m]))", "big", "count_over_time(big[30s])", "timestamp(big)"};
	char why[256] = "";
	for (size_t i = 0; i < ARRAY_LEN(qs) && !why[0]; i++) {
		counts_t a = run(qs[i], true, PROMQL_STATS_PER_STEP, NULL), b = run(qs[i], true, PROMQL_STATS_PER_STEP, w);
		if (a.rc || b.rc || a.total == 0)
			snprintf(why, sizeof why, "%s: rc %d/%d total %lld", qs[i], a.rc, b.rc, (long long)a.total);
		else if (a.total != b.total || strcmp(steps_str(&a), steps_str(&b)))
			snprintf(why, sizeof why, "%s: parallel %lld differs from sequential %lld", qs[i], (long long)b.total,
				 (long long)a.total);
	}
	/* big at 300 s (lookback from 0): 300 per step but the first (t = 0: s000 only) */
	counts_t c = run("big", true, PROMQL_STATS_PER_STEP, w);
	workers_free(w);
	if (why[0])
		TEST_FAILF("%s", why);
	CHECK_EQ_INT(c.step[0], 1);
	CHECK_EQ_INT(c.step[1], 300);
	CHECK_EQ_INT(c.total, 1 + 10 * 300);
}

TEST_MAIN()
