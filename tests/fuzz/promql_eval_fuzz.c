/*
 * libFuzzer target for the PromQL evaluator (not only the parser): every input is a query that is
 * evaluated over a small in-memory data set with tight limits (16 MiB memory budget, 1M samples, a 2 s
 * deadline), as an instant and a range query. The evaluation must end with a result or an error that
 * carries a message and an error type: no crash, no hang, no sanitizer report, no leak, memory within
 * the budget (make fuzz runs it with -rss_limit_mb and -timeout).
 *
 * Two input modes:
 *   - text: the input is the query (the seed corpus holds the conformance and differential queries,
 *     tests/fuzz/promql_eval_seeds.py);
 *   - grammar: an input starting with byte 0xff drives a generator of well-typed queries: functions
 *     with the right argument types, aggregations with parameters, binary operators with matching
 *     modifiers, selectors, ranges, subqueries, offsets and @, and long operator chains, with ranges,
 *     resolutions and parameters drawn from ordinary and hostile values (1ms steps over 10000 days,
 *     huge k, NaN quantiles, long replacement templates).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/arena.h"
#include "base/str.h"
#include "fuzz_util.h"
#include "model/memstore.h"
#include "promql/engine.h"

#define T_END (3600 * 1000) /* data from 0 to 1h, 15 s apart */

static memstore_t *store;

static void add(const char *const *kv, size_t n, int64_t t, double v)
{
	label_t l[64];
	labels_t ls = {l, 0};
	for (size_t i = 0; i + 1 < n && ls.n < 64; i += 2)
		l[ls.n++] = (label_t){str_c(kv[i]), str_c(kv[i + 1])};
	labels_normalize(&ls);
	memstore_add(store, &ls, t, v);
}

static void setup(void)
{
	static const char *const jobs[] = {"api", "web", "db"}, *const inst[] = {"0", "1", "2", "3"};
	static const char *const le[] = {"0.1", "0.5", "1", "1.0", "+Inf", "NaN"};
	static char longval[8192], lname[50][8];
	double stale;
	uint64_t sb = 0x7ff0000000000002ull;
	memcpy(&stale, &sb, 8);
	store = memstore_new();
	memset(longval, 'x', sizeof longval - 1);
	for (int i = 0; i < 50; i++)
		snprintf(lname[i], sizeof lname[i], "l%02d", i);
	for (int64_t t = 0, k = 0; t <= T_END; t += 15000, k++) {
		for (int j = 0; j < 3; j++)
			for (int i = 0; i < 4; i++) {
				const char *kv[] = {"__name__", "up", "job", jobs[j], "instance", inst[i]};
				add(kv, 6, t, (k + i + j) % 7 ? 1 : 0);
				const char *kc[] = {"__name__", "c_total",  "job",
				                    jobs[j],    "instance", inst[i]};
				add(kc, 6, t, (double)((k * (i + 1)) % (50 + 10 * j)));
			}
		const char *kg[] = {"__name__", "g", "k", "x"}, *kg2[] = {"__name__", "g", "k", "y"};
		static const double gv[] = {1, -1, NAN, INFINITY, -INFINITY, 0, 1e308, -0.0, 3};
		add(kg, 4, t, gv[k % 9]);
		if (k % 11 != 5) /* gaps, and a stale marker now and then */
			add(kg2, 4, t, k % 13 == 0 ? stale : (double)(k % 4));
		for (size_t b = 0; b < sizeof le / sizeof *le; b++) {
			const char *kh[] = {"__name__", "h_bucket", "le", le[b]};
			add(kh, 4, t, (double)(k * (b + 1)));
		}
		const char *kl[] = {"__name__", "long", "v", longval};
		add(kl, 4, t, (double)k);
		const char *km[102];
		km[0] = "__name__";
		km[1] = "wide";
		for (int i = 0; i < 50; i++) {
			km[2 + 2 * i] = lname[i];
			km[3 + 2 * i] = inst[i % 4];
		}
		add(km, 102, t, (double)(k % 5));
	}
}

/* ------------------------------------------------------------------ grammar */

typedef struct gen {
	const uint8_t *p;
	size_t n, i;
	buf_t *b;
} gen_t;

static unsigned pick(gen_t *g, unsigned n)
{
	return g->i < g->n ? g->p[g->i++] % n : 0;
}

#define ONE_OF(g, arr) ((arr)[pick((g), (unsigned)(sizeof(arr) / sizeof(*(arr))))])

static const char *const durations[] = {"1ms", "1s", "15s",  "30s",    "1m", "5m",
                                        "1h",  "1d", "100d", "10000d", "3y"};
static const char *const numbers[] = {"0",   "1",    "2", "-1",     "0.5",    "1e308", "NaN",
                                      "Inf", "-Inf", "3", "100000", "9.3e18", "0x10",  "1e-300"};

static void gen_vector(gen_t *g, int depth);
static void gen_scalar(gen_t *g, int depth);

static void put(gen_t *g, const char *s)
{
	buf_puts(g->b, s);
}

static void gen_selector(gen_t *g)
{
	static const char *const sels[] = {"up",
	                                   "c_total",
	                                   "g",
	                                   "h_bucket",
	                                   "long",
	                                   "wide",
	                                   "nothing",
	                                   "up{job=\"api\"}",
	                                   "up{job=~\"a.*|w.*\"}",
	                                   "c_total{instance!=\"1\"}",
	                                   "{__name__=~\"up|g\"}",
	                                   "{__name__=~\".+\"}",
	                                   "up{job!~\"\"}"};
	put(g, ONE_OF(g, sels));
	switch (pick(g, 8)) {
	case 0:
		put(g, " offset ");
		put(g, ONE_OF(g, durations));
		break;
	case 1:
		put(g, " offset -");
		put(g, ONE_OF(g, durations));
		break;
	case 2:
		put(g, " @ ");
		put(g, ONE_OF(g, numbers));
		break;
	case 3:
		put(g, " @ start()");
		break;
	case 4:
		put(g, " @ end()");
		break;
	default:
		break;
	}
}

/* A range vector: selector[range] or subquery[range:step]. */
static void gen_matrix(gen_t *g, int depth)
{
	if (depth > 0 && pick(g, 3) == 0) {
		gen_vector(g, depth - 1);
		put(g, "[");
		put(g, ONE_OF(g, durations));
		put(g, ":");
		if (pick(g, 3))
			put(g, ONE_OF(g, durations));
		put(g, "]");
		if (pick(g, 4) == 0) {
			put(g, " offset ");
			put(g, ONE_OF(g, durations));
		}
		return;
	}
	static const char *const sels[] = {"up", "c_total", "g", "{__name__=~\"up|c_total\"}", "h_bucket"};
	put(g, ONE_OF(g, sels));
	put(g, "[");
	put(g, ONE_OF(g, durations));
	put(g, "]");
	if (pick(g, 4) == 0) {
		put(g, " offset ");
		put(g, ONE_OF(g, durations));
	}
}

static void gen_scalar(gen_t *g, int depth)
{
	if (depth <= 0) {
		put(g, ONE_OF(g, numbers));
		return;
	}
	switch (pick(g, 6)) {
	case 0:
		put(g, "scalar(");
		gen_vector(g, depth - 1);
		put(g, ")");
		break;
	case 1:
		put(g, "time()");
		break;
	case 2:
		gen_scalar(g, depth - 1);
		put(g, " + ");
		gen_scalar(g, depth - 1);
		break;
	case 3:
		put(g, "(");
		gen_scalar(g, depth - 1);
		put(g, ")");
		break;
	default:
		put(g, ONE_OF(g, numbers));
		break;
	}
}

static void gen_grouping(gen_t *g)
{
	static const char *const gr[] = {
	    "",         " by (job)",      " without (instance)", " by ()", " without ()",
	    " by (le)", " by (__name__)", " without (job, k, v)"};
	put(g, ONE_OF(g, gr));
}

/* up + up + ... with n terms (n up to a few thousand): the evaluator must not recurse per operator. */
static void gen_chain(gen_t *g)
{
	static const char *const ops[] = {
	    " + ", " * ", " ^ ", " and ", " or ", " / on(job, instance) ", " > bool ", " unless "};
	static const char *const terms[] = {"up", "c_total", "1", "up{job=\"api\"}"};
	unsigned n = 2 + pick(g, 64) * pick(g, 64);
	const char *op = ONE_OF(g, ops), *term = ONE_OF(g, terms);
	bool scalar_ok =
	    !strstr(op, "and") && !strstr(op, "or") && !strstr(op, "unless") && !strstr(op, "on(");
	if (!scalar_ok && !strcmp(term, "1"))
		term = "up";
	put(g, term);
	for (unsigned i = 1; i < n; i++) {
		put(g, op);
		put(g, term);
	}
}

static void gen_vector(gen_t *g, int depth)
{
	static const char *const rfuncs[] = {"rate",
	                                     "irate",
	                                     "increase",
	                                     "delta",
	                                     "idelta",
	                                     "deriv",
	                                     "changes",
	                                     "resets",
	                                     "sum_over_time",
	                                     "avg_over_time",
	                                     "count_over_time",
	                                     "max_over_time",
	                                     "min_over_time",
	                                     "stddev_over_time",
	                                     "last_over_time",
	                                     "present_over_time",
	                                     "absent_over_time",
	                                     "stdvar_over_time"};
	static const char *const vfuncs[] = {"abs",    "ceil",        "floor",     "exp",  "ln",
	                                     "sqrt",   "sgn",         "timestamp", "sort", "sort_desc",
	                                     "absent", "day_of_week", "hour",      "-",    "log2"};
	static const char *const aggrs[] = {"sum", "avg", "count", "min", "max", "group", "stddev", "stdvar"};
	static const char *const binops[] = {" + ",       " - ",   " * ",  " / ",      " % ",
	                                     " ^ ",       " == ",  " != ", " > ",      " < ",
	                                     " >= bool ", " and ", " or ", " unless ", " atan2 "};
	static const char *const matching[] = {"",
	                                       " on(job)",
	                                       " ignoring(instance)",
	                                       " on(job, instance)",
	                                       " on(job) group_left",
	                                       " ignoring(instance) group_right",
	                                       " on()"};
	static const char *const templates[] = {"\"$1\"", "\"a-$1-$2\"",
	                                        "\"${1}${1}${1}${1}${1}${1}${1}${1}\"", "\"\"", "\"$name\""};
	if (depth <= 0) {
		gen_selector(g);
		return;
	}
	switch (pick(g, 20)) {
	case 0:
	case 1:
		gen_selector(g);
		break;
	case 2:
		put(g, ONE_OF(g, rfuncs));
		put(g, "(");
		gen_matrix(g, depth - 1);
		put(g, ")");
		break;
	case 3: {
		const char *f = ONE_OF(g, vfuncs);
		put(g, f);
		if (strcmp(f, "-"))
			put(g, "(");
		gen_vector(g, depth - 1);
		if (strcmp(f, "-"))
			put(g, ")");
		break;
	}
	case 4:
		put(g, ONE_OF(g, aggrs));
		gen_grouping(g);
		put(g, " (");
		gen_vector(g, depth - 1);
		put(g, ")");
		break;
	case 5:
		put(g, pick(g, 2) ? "topk" : "bottomk");
		gen_grouping(g);
		put(g, " (");
		gen_scalar(g, depth - 1);
		put(g, ", ");
		gen_vector(g, depth - 1);
		put(g, ")");
		break;
	case 6:
		put(g, "quantile");
		gen_grouping(g);
		put(g, " (");
		gen_scalar(g, depth - 1);
		put(g, ", ");
		gen_vector(g, depth - 1);
		put(g, ")");
		break;
	case 7:
		put(g, "count_values");
		gen_grouping(g);
		put(g, pick(g, 2) ? " (\"v\", " : " (\"job\", ");
		gen_vector(g, depth - 1);
		put(g, ")");
		break;
	case 8:
	case 9: {
		gen_vector(g, depth - 1);
		const char *op = ONE_OF(g, binops);
		put(g, op);
		if (!strstr(op, "bool") || pick(g, 2))
			put(g, ONE_OF(g, matching));
		put(g, " ");
		if (pick(g, 3) == 0 && !strstr(op, "and") && !strstr(op, "or") && !strstr(op, "unless"))
			gen_scalar(g, depth - 1);
		else
			gen_vector(g, depth - 1);
		break;
	}
	case 10:
		gen_chain(g);
		break;
	case 11:
		put(g, "(");
		gen_vector(g, depth - 1);
		put(g, ")");
		break;
	case 12:
		put(g, "label_replace(");
		gen_vector(g, depth - 1);
		put(g, pick(g, 2) ? ", \"dst\", " : ", \"job\", ");
		put(g, ONE_OF(g, templates));
		put(g, pick(g, 2) ? ", \"job\", \"(.*)\")" : ", \"v\", \"(x*)(x)\")");
		break;
	case 13:
		put(g, "label_join(");
		gen_vector(g, depth - 1);
		put(g, ", \"dst\", \"--\"");
		for (unsigned i = pick(g, 8) * 4; i > 0; i--)
			put(g, pick(g, 2) ? ", \"v\"" : ", \"job\"");
		put(g, ")");
		break;
	case 14:
		put(g, "histogram_quantile(");
		gen_scalar(g, depth - 1);
		put(g, ", ");
		gen_vector(g, depth - 1);
		put(g, ")");
		break;
	case 15:
		put(g, "vector(");
		gen_scalar(g, depth - 1);
		put(g, ")");
		break;
	case 16:
		put(g, pick(g, 2) ? "quantile_over_time(" : "predict_linear(");
		gen_scalar(g, depth - 1);
		put(g, ", ");
		gen_matrix(g, depth - 1);
		put(g, ")");
		break;
	case 17:
		put(g, "holt_winters(");
		gen_matrix(g, depth - 1);
		put(g, ", 0.5, 0.5)");
		break;
	case 18:
		put(g, "clamp(");
		gen_vector(g, depth - 1);
		put(g, ", ");
		gen_scalar(g, 0);
		put(g, ", ");
		gen_scalar(g, 0);
		put(g, ")");
		break;
	default:
		put(g, "round(");
		gen_vector(g, depth - 1);
		put(g, ", ");
		gen_scalar(g, 0);
		put(g, ")");
		break;
	}
}

/* ------------------------------------------------------------------ evaluation */

static void eval_one(const char *q, size_t n, int64_t start, int64_t end, int64_t step, bool stats)
{
	arena_t a;
	arena_init(&a, 0);
	promql_opts_t o = {.max_memory = 16u << 20,
	                   .max_samples = 1000000,
	                   .timeout_ms = 2000,
	                   .stats = stats ? PROMQL_STATS_PER_STEP : PROMQL_STATS_NONE};
	promql_result_t r;
	err_t err = {0};
	int rc = promql_query(&o, memstore_queryable(store), &a, (str_t){q, n}, start, end, step, &r, &err);
	if (rc > 0)
		abort();
	if (rc < 0 && (!err.msg[0] || !r.error_type)) {
		fprintf(stderr, "error %d without a message or type: %s\n", rc, q);
		abort();
	}
	if (rc == 0) {
		buf_t b = BUF_INIT;
		promql_result_json(&b, &r);
		buf_release(&b);
	}
	arena_release(&a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!store)
		setup();
	if (size > 8192)
		return 0;
	buf_t q = BUF_INIT;
	unsigned sel = 0;
	if (size && data[0] == 0xff) {
		gen_t g = {data + 1, size - 1, 0, &q};
		gen_vector(&g, 1 + (int)pick(&g, 6));
		sel = pick(&g, 256);
	} else {
		buf_append(&q, (const char *)data, size);
		for (size_t i = 0; i < size; i++)
			sel = sel * 31 + data[i];
	}
	static const int64_t times[] = {T_END / 2, 0, T_END, -T_END, 1000LL * T_END};
	static const int64_t steps[] = {15000, 60000, 1000, 250, 30000}; /* hostile resolutions: subqueries */
	int64_t t = times[sel % 5];
	eval_one(q.p, q.n, t, t, 0, sel & 8);
	eval_one(q.p, q.n, t - T_END / 2, t + T_END / 2, steps[(sel / 16) % 5], sel & 128);
	buf_release(&q);
	return 0;
}
