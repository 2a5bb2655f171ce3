/*
 * functions.c — the 70 PromQL functions of Prometheus 2.42 (float samples; native-histogram-only
 * functions return nothing since Strata stores no native histograms yet).
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <ctype.h>
#include <math.h>
#include <pcre2.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "promql/engine_int.h"
#include "promql/gosort.h"

enum fkind {
	F_RATE, F_INCREASE, F_DELTA, F_IRATE, F_IDELTA, F_DERIV, F_PREDICT_LINEAR, F_HOLT_WINTERS, F_RESETS, F_CHANGES,
	F_AVG_OT, F_SUM_OT, F_MIN_OT, F_MAX_OT, F_COUNT_OT, F_STDDEV_OT, F_STDVAR_OT, F_LAST_OT, F_PRESENT_OT,
	F_QUANTILE_OT, F_ABSENT_OT,
};

static const struct {
	const char *name;
	enum fkind k;
} range_funcs[] = {
	{"rate", F_RATE}, {"increase", F_INCREASE}, {"delta", F_DELTA}, {"irate", F_IRATE}, {"idelta", F_IDELTA},
	{"deriv", F_DERIV}, {"predict_linear", F_PREDICT_LINEAR}, {"holt_winters", F_HOLT_WINTERS},
	{"resets", F_RESETS}, {"changes", F_CHANGES}, {"avg_over_time", F_AVG_OT}, {"sum_over_time", F_SUM_OT},
	{"min_over_time", F_MIN_OT}, {"max_over_time", F_MAX_OT}, {"count_over_time", F_COUNT_OT},
	{"stddev_over_time", F_STDDEV_OT}, {"stdvar_over_time", F_STDVAR_OT}, {"last_over_time", F_LAST_OT},
	{"present_over_time", F_PRESENT_OT}, {"quantile_over_time", F_QUANTILE_OT},
	{"absent_over_time", F_ABSENT_OT},
};

/* ------------------------------------------------------------------------------ range kernels */

/* resets_known: the caller knows the window holds no counter reset (skips the scan; same result).
 * rate_kernel_steps (the batched path) repeats this arithmetic two windows at a time: change both
 * together (engine_test rate_increase_delta_bit_identical_to_reference holds it to the definition). */
static bool extrapolated_rate(const int64_t *t, const double *v, size_t n, int64_t rstart, int64_t rend, int64_t range,
			      bool counter, bool rate, double *out, bool no_resets)
{
	if (n < 2)
		return false;
	double result = v[n - 1] - v[0];
	if (counter && !no_resets) {
		double prev = v[0];
		for (size_t i = 1; i < n; i++) {
			if (v[i] < prev)
				result += prev;
			prev = v[i];
		}
	}
	double to_start = (double)(t[0] - rstart) / 1000;
	double to_end = (double)(rend - t[n - 1]) / 1000;
	double sampled = (double)(t[n - 1] - t[0]) / 1000;
	double avg = sampled / (double)(n - 1);
	if (counter && result > 0 && v[0] >= 0) {
		double to_zero = sampled * (v[0] / result);
		if (to_zero < to_start)
			to_start = to_zero;
	}
	double thr = avg * 1.1;
	double ext = sampled;
	ext += to_start < thr ? to_start : avg / 2;
	ext += to_end < thr ? to_end : avg / 2;
	double factor = ext / sampled;
	if (rate)
		factor /= (double)range / 1000;
	*out = result * factor;
	return true;
}

static void linreg(const int64_t *t, const double *v, size_t n, int64_t icept, double *slope, double *intercept)
{
	double cn = 0, sx = 0, cx = 0, sy = 0, cy = 0, sxy = 0, cxy = 0, sx2 = 0, cx2 = 0;
	double inity = v[0];
	bool consty = true;
	for (size_t i = 0; i < n; i++) {
		if (consty && i > 0 && v[i] != inity)
			consty = false;
		cn += 1;
		double x = (double)(t[i] - icept) / 1e3;
		kahan_inc(x, &sx, &cx);
		kahan_inc(v[i], &sy, &cy);
		kahan_inc(x * v[i], &sxy, &cxy);
		kahan_inc(x * x, &sx2, &cx2);
	}
	if (consty) {
		if (isinf(inity)) {
			*slope = NAN;
			*intercept = NAN;
			return;
		}
		*slope = 0;
		*intercept = inity;
		return;
	}
	sx += cx;
	sy += cy;
	sxy += cxy;
	sx2 += cx2;
	double cov = sxy - sx * sy / cn;
	double var = sx2 - sx * sx / cn;
	*slope = cov / var;
	*intercept = sy / cn - *slope * sx / cn;
}

typedef struct rctx {
	enum fkind k;
	const char *fname;
	int64_t range;
	int64_t *ref;
	double *p1, *p2; /* scalar params per step */
	obuild_t *ob;
	uint8_t *seen; /* absent_over_time */
	double *qbuf;
	size_t qcap;
	size_t nsteps;          /* evaluator's steps (batched kernels) */
	int64_t tstart, tstep;  /* evaluator's time range (predict_linear) */
	bool no_resets;         /* per window: known to hold no counter reset (rate/increase) */
	const ev_t *poll;       /* batched kernels: polled with ev_stop_requested (read only) */
} rctx_t;

static bool range_kernel(ev_t *ev, rctx_t *c, size_t step, const int64_t *t, const double *v, size_t n, double *out)
{
	int64_t rend = c->ref[step], rstart = rend - c->range;
	switch (c->k) {
	case F_RATE: return extrapolated_rate(t, v, n, rstart, rend, c->range, true, true, out, c->no_resets);
	case F_INCREASE: return extrapolated_rate(t, v, n, rstart, rend, c->range, true, false, out, c->no_resets);
	case F_DELTA: return extrapolated_rate(t, v, n, rstart, rend, c->range, false, false, out, true);
	case F_IRATE:
	case F_IDELTA: {
		if (n < 2)
			return false;
		double last = v[n - 1], prev = v[n - 2];
		double r = (c->k == F_IRATE && last < prev) ? last : last - prev;
		int64_t dt = t[n - 1] - t[n - 2];
		if (dt == 0)
			return false;
		if (c->k == F_IRATE)
			r /= (double)dt / 1000;
		*out = r;
		return true;
	}
	case F_DERIV: {
		if (n < 2)
			return false;
		double s, i;
		linreg(t, v, n, t[0], &s, &i);
		*out = s;
		return true;
	}
	case F_PREDICT_LINEAR: {
		if (n < 2)
			return false;
		double s, i;
		linreg(t, v, n, c->tstart + (int64_t)step * c->tstep, &s, &i);
		*out = s * c->p1[step] + i;
		return true;
	}
	case F_HOLT_WINTERS: {
		double sf = c->p1[step], tf = c->p2[step];
		if (sf <= 0 || sf >= 1) {
			ev->scr->error_type = "execution";
			ev_fail(ev, ERR_INVALID, "invalid smoothing factor. Expected: 0 < sf < 1, got: %f", sf);
		}
		if (tf <= 0 || tf >= 1) {
			ev->scr->error_type = "execution";
			ev_fail(ev, ERR_INVALID, "invalid trend factor. Expected: 0 < tf < 1, got: %f", tf);
		}
		if (n < 2)
			return false;
		double s0 = 0, s1 = v[0], b = v[1] - v[0];
		for (size_t i = 1; i < n; i++) {
			double x = sf * v[i];
			if (i - 1 != 0)
				b = tf * (s1 - s0) + (1 - tf) * b;
			double y = (1 - sf) * (s1 + b);
			s0 = s1;
			s1 = x + y;
		}
		*out = s1;
		return true;
	}
	case F_RESETS:
	case F_CHANGES: {
		if (n == 0)
			return false;
		double cnt = 0, prev = v[0];
		for (size_t i = 1; i < n; i++) {
			double cur = v[i];
			if (c->k == F_RESETS ? cur < prev : (cur != prev && !(isnan(cur) && isnan(prev))))
				cnt++;
			prev = cur;
		}
		*out = cnt;
		return true;
	}
	default:
		break;
	}
	if (n == 0)
		return false;
	switch (c->k) {
	case F_AVG_OT: {
		double mean = 0, comp = 0, cnt = 0;
		for (size_t i = 0; i < n; i++) {
			cnt++;
			if (isinf(mean)) {
				if (isinf(v[i]) && (mean > 0) == (v[i] > 0))
					continue;
				if (!isinf(v[i]) && !isnan(v[i]))
					continue;
			}
			kahan_inc(v[i] / cnt - mean / cnt, &mean, &comp);
		}
		*out = isinf(mean) ? mean : mean + comp;
		return true;
	}
	case F_SUM_OT: {
		double sum = 0, comp = 0;
		for (size_t i = 0; i < n; i++)
			kahan_inc(v[i], &sum, &comp);
		*out = isinf(sum) ? sum : sum + comp;
		return true;
	}
	case F_MIN_OT:
	case F_MAX_OT: {
		double m = v[0];
		for (size_t i = 1; i < n; i++)
			if ((c->k == F_MAX_OT ? v[i] > m : v[i] < m) || isnan(m))
				m = v[i];
		*out = m;
		return true;
	}
	case F_COUNT_OT: *out = (double)n; return true;
	case F_PRESENT_OT: *out = 1; return true;
	case F_LAST_OT: *out = v[n - 1]; return true;
	case F_STDDEV_OT:
	case F_STDVAR_OT: {
		double cnt = 0, mean = 0, cmean = 0, aux = 0, caux = 0;
		for (size_t i = 0; i < n; i++) {
			cnt++;
			double delta = v[i] - (mean + cmean);
			kahan_inc(delta / cnt, &mean, &cmean);
			kahan_inc(delta * (v[i] - (mean + cmean)), &aux, &caux);
		}
		double var = (aux + caux) / cnt;
		*out = c->k == F_STDDEV_OT ? sqrt(var) : var;
		return true;
	}
	case F_QUANTILE_OT: {
		if (c->qcap < n) {
			c->qcap = n * 2;
			c->qbuf = ev_alloc(ev, c->qcap * sizeof(double));
		}
		memcpy(c->qbuf, v, n * sizeof(double));
		*out = quantile_sorted(c->p1[step], c->qbuf, n);
		return true;
	}
	default:
		return false;
	}
}

static void range_series(ev_t *ev, void *arg, const labels_t *ls, const int64_t *t, const double *v, size_t n)
{
	rctx_t *c = arg;
	size_t idx = (size_t)-1, lo = 0, hi = 0, maxwin = 0, lastwin = 0, npts = 0;
	for (size_t i = 0; i < ev->nsteps; i++) {
		range_window(t, n, c->ref, i, c->range, &lo, &hi);
		/* the kernels cost O(window) per step: check by samples processed, not by steps */
		ev_check_work(ev, hi - lo + 1);
		if (ev->qs)
			qs_add(ev, i, (int64_t)(hi - lo));
		if (hi - lo > maxwin)
			maxwin = hi - lo;
		lastwin = hi - lo;
		if (c->k == F_ABSENT_OT) {
			/* 2.42 produces a 1 per non-empty window and per series before building the result */
			if (hi > lo) {
				c->seen[i] = 1;
				npts++;
			}
			continue;
		}
		double out;
		if (!range_kernel(ev, c, i, t + lo, v + lo, hi - lo, &out))
			continue;
		if (idx == (size_t)-1) {
			labels_t ol = c->k == F_LAST_OT ? labels_copy(ev->a, ls) : lb_drop_name(ev, labels_copy(ev->a, ls));
			idx = ob_get_unique(ev, c->ob, ol);
		}
		ob_set(ev, c->ob, idx, i, out);
		npts++;
	}
	rk_out_t ro = {npts, maxwin, lastwin};
	acct_series(ev, &ro);
}

/* Labels absent() / absent_over_time() report: equality matchers of a plain selector argument. */
static labels_t absent_labels(ev_t *ev, const promql_expr_t *arg)
{
	while (arg->kind == PROMQL_PAREN)
		arg = arg->u.paren.expr;
	const promql_expr_t *vs = NULL;
	if (arg->kind == PROMQL_VECTOR_SEL)
		vs = arg;
	else if (arg->kind == PROMQL_MATRIX_SEL)
		vs = arg->u.ms.vs;
	labels_t ls = {NULL, 0};
	if (!vs)
		return ls;
	str_t empty[64];
	size_t nempty = 0;
	for (size_t i = 0; i < vs->u.vs.nms; i++) {
		const matcher_t *m = &vs->u.vs.ms[i];
		if (str_eq_c(m->name, LABEL_METRIC_NAME))
			continue;
		bool has;
		labels_get(&ls, m->name, &has);
		if (m->type == MATCH_EQ && !has)
			ls = lb_set(ev, ls, m->name, m->value);
		else if (nempty < 64)
			empty[nempty++] = m->name;
	}
	for (size_t i = 0; i < nempty; i++)
		ls = lb_set(ev, ls, empty[i], STR_NULL);
	return ls;
}

static double *scalar_arg(ev_t *ev, const promql_expr_t *e)
{
	val_t v;
	eval_expr(ev, e, &v);
	return v.sc;
}

/* ------------------------------------------------------------------------------ batched path */

/* Kernels that only read their context (no errors, no allocation) can run on worker threads. */
static bool kind_batchable(enum fkind k)
{
	return k != F_HOLT_WINTERS && k != F_QUANTILE_OT && k != F_ABSENT_OT;
}

static void range_kernel_steps(const void *kctx, const int64_t *t, const double *v, size_t n, double *out,
			       uint8_t *ok, rk_out_t *ro)
{
	/* batchable kinds only read the context; a local copy carries the per-window reset flag */
	rctx_t c = *(const rctx_t *)kctx;
	bool counter = c.k == F_RATE || c.k == F_INCREASE;
	size_t lo = 0, hi = 0, maxwin = 0, cnt = 0, resets = 0;
	ro->lastwin = 0; /* resets: j in (lo, hi) with v[j] < v[j-1] */
	ro->stopped = false;
	size_t work = 0;
	for (size_t i = 0; i < c.nsteps; i++) {
		int64_t rend = c.ref[i], rstart = rend - c.range;
		if (i > 0 && rend < c.ref[i - 1])
			lo = hi = resets = 0;
		while (hi < n && t[hi] <= rend) {
			if (counter && hi > lo && v[hi] < v[hi - 1])
				resets++;
			hi++;
		}
		while (lo < hi && t[lo] < rstart) {
			if (counter && lo + 1 < hi && v[lo + 1] < v[lo])
				resets--;
			lo++;
		}
		if (hi - lo > maxwin)
			maxwin = hi - lo;
		ro->lastwin = hi - lo;
		work += hi - lo + 1;
		if (work >= EV_POLL_WORK) { /* huge windows: a series alone can take long */
			work = 0;
			if (c.poll && ev_stop_requested(c.poll)) {
				memset(ok + i, 0, c.nsteps - i);
				ro->stopped = true;
				break;
			}
		}
		c.no_resets = resets == 0;
		ok[i] = range_kernel(NULL, &c, i, t + lo, v + lo, hi - lo, &out[i]);
		cnt += ok[i];
	}
	ro->npts = cnt;
	ro->maxwin = maxwin;
}

/* The machine's vector width for the window kernels: SIMD_BASE (SSE2), SIMD_AVX2 or SIMD_AVX512. */
int promql_simd(void)
{
	int l = atomic_load_explicit(&promql_simd_level, memory_order_relaxed);
	if (l < 0) { /* every thread that gets here stores the same value */
		l = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
		            __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw")
		        ? PROMQL_SIMD_AVX512
		    : __builtin_cpu_supports("avx2") ? PROMQL_SIMD_AVX2
		                                     : PROMQL_SIMD_BASE;
		atomic_store_explicit(&promql_simd_level, l, memory_order_relaxed);
	}
	return l;
}

/* 8 lanes: one AVX-512 register, two AVX2 ones, four SSE2 ones (the compiler splits the operations) */
typedef double ot_v8d __attribute__((vector_size(64)));
typedef int64_t ot_v8i __attribute__((vector_size(64)));
/* 4 and 2 lanes: one AVX2 register, one SSE2 register (the AVX2 and SSE2 variants' width) */
typedef double ot_v4d __attribute__((vector_size(32)));
typedef int64_t ot_v4i __attribute__((vector_size(32)));
typedef double ot_v2d __attribute__((vector_size(16)));
typedef int64_t ot_v2i __attribute__((vector_size(16)));
/* kahan_inc on the lanes of a vector of doubles of type V (VI: the same lanes as int64), updating only
 * those in the lane mask m (all of them when !masked): the 8-lane kernels below (ot_v8d) and the 4-lane
 * ones of deriv and predict_linear (lr_v4d). kahan_inc's Neumaier branch takes the rounding error of
 * sum + inc from whichever is larger; TwoSum's five operations here give the same exact error without
 * the compare and select (so every finite result is bit-identical; once a sum overflows or meets ±Inf
 * the result is NaN or ±Inf either way). Macros, not functions: vector arguments have a different ABI
 * with and without AVX. */
#define VK_ABS(V, VI, x)       ((V)((VI)(x)&INT64_MAX))
#define VK_SEL(V, VI, m, a, b) ((V)(((m) & (VI)(a)) | (~(m) & (VI)(b))))
#define VK_KAHAN(V, VI, masked, m, inc_, sum, c)                                                             \
	do {                                                                                                 \
		V inc = (inc_), t_ = (sum) + inc;                                                            \
		V b_ = t_ - (sum), d_ = ((sum) - (t_ - b_)) + (inc - b_);                                    \
		(c) = (masked) ? VK_SEL(V, VI, m, (c) + d_, (c)) : (c) + d_;                                 \
		(sum) = (masked) ? VK_SEL(V, VI, m, t_, (sum)) : t_;                                         \
	} while (0)
#define OT_SEL(m, a, b)                  VK_SEL(ot_v8d, ot_v8i, m, a, b)
#define OT_KAHAN(masked, m, inc, sum, c) VK_KAHAN(ot_v8d, ot_v8i, masked, m, inc, sum, c)

/* rate / increase / delta over every step of one series, in two phases per block of RK_BLOCK steps:
 * first the sliding window (indices only), then extrapolated_rate's arithmetic for the block's
 * windows side by side in 8-lane vectors (AVX-512 where the CPU has it). The arithmetic is
 * extrapolated_rate's, operation for operation (same divisions, same order, selects instead of
 * branches; avg / 2 as avg * 0.5, the same correctly rounded value), so results are bit-identical;
 * what changes is that the windows' division chains no longer wait for each other (one window's
 * chain is ~7 dependent divisions and a compare) and each division instruction serves eight windows.
 * Resets: a window holds one iff the newest reset j (v[j] < v[j-1]) at or before its last sample
 * has j > lo, so only the window's leading edge looks at values. */
#define RK_BLOCK 64

typedef struct rk_lanes {
	/* per block, the windows with >= 2 samples ("lanes"), padded to a multiple of 8 */
	double st[RK_BLOCK + 8], en[RK_BLOCK + 8], sm[RK_BLOCK + 8], n1[RK_BLOCK + 8], v0[RK_BLOCK + 8],
	    res[RK_BLOCK + 8], out[RK_BLOCK + 8];
	size_t idx[RK_BLOCK + 8];
} rk_lanes_t;

/* rk_math over W-lane vectors VD (masks VI): 8 lanes for AVX-512, the register width for AVX2 (4) and
 * SSE2 (2), where 8-lane vectors wider than the registers are lowered through the stack (see ot_run4). */
#define RK_MATH(NAME, VD, VI, W)                                                                         \
	static inline __attribute__((always_inline)) void NAME(rk_lanes_t *l, size_t nl, bool counter,   \
	                                                       bool rate, double rsec)                   \
	{                                                                                                \
		for (size_t k = 0; k < nl; k += W) {                                                     \
			VD st, en, sm, n1, v0, res;                                                      \
			memcpy(&st, l->st + k, sizeof st);                                               \
			memcpy(&en, l->en + k, sizeof en);                                               \
			memcpy(&sm, l->sm + k, sizeof sm);                                               \
			memcpy(&n1, l->n1 + k, sizeof n1);                                               \
			memcpy(&v0, l->v0 + k, sizeof v0);                                               \
			memcpy(&res, l->res + k, sizeof res);                                            \
			VD to_start = st / 1000.0, to_end = en / 1000.0, sampled = sm / 1000.0;          \
			VD avg = sampled / n1;                                                           \
			if (counter) {                                                                   \
				VD to_zero = sampled * (v0 / res);                                       \
				VI zm = (res > 0.0) & (v0 >= 0.0) & (to_zero < to_start);                \
				to_start = VK_SEL(VD, VI, zm, to_zero, to_start);                        \
			}                                                                                \
			VD thr = avg * 1.1, half = avg * 0.5;                                            \
			VD ext = sampled;                                                                \
			ext += VK_SEL(VD, VI, to_start < thr, to_start, half);                           \
			ext += VK_SEL(VD, VI, to_end < thr, to_end, half);                               \
			VD factor = ext / sampled;                                                       \
			if (rate)                                                                        \
				factor /= rsec;                                                          \
			VD o = res * factor;                                                             \
			memcpy(l->out + k, &o, sizeof o);                                                \
		}                                                                                        \
	}
RK_MATH(rk_math, ot_v8d, ot_v8i, 8)
RK_MATH(rk_math4, ot_v4d, ot_v4i, 4)
RK_MATH(rk_math2, ot_v2d, ot_v2i, 2)

__attribute__((target("avx512f,avx512dq,avx512vl,avx512bw"))) static void
rk_math_avx512(rk_lanes_t *l, size_t nl, bool counter, bool rate, double rsec)
{
	rk_math(l, nl, counter, rate, rsec);
}

__attribute__((target("avx2"))) static void rk_math_avx2(rk_lanes_t *l, size_t nl, bool counter, bool rate,
                                                         double rsec)
{
	rk_math4(l, nl, counter, rate, rsec);
}

static void rk_math_base(rk_lanes_t *l, size_t nl, bool counter, bool rate, double rsec)
{
	rk_math2(l, nl, counter, rate, rsec);
}

/* The first index at or after h (below n) whose timestamp is above x (at or above x when lt), for
 * timestamps in order: where the one-by-one scan stops. A window edge moves a sample or two a step, by
 * a count that scrape jitter makes unpredictable: four compares counted instead of a branch each. */
static inline size_t rk_edge(const int64_t *t, size_t h, size_t n, int64_t x, bool lt)
{
	while (h + 4 <= n) {
		size_t k = lt ? (size_t)(t[h] < x) + (size_t)(t[h + 1] < x) + (size_t)(t[h + 2] < x) +
		                    (size_t)(t[h + 3] < x)
		              : (size_t)(t[h] <= x) + (size_t)(t[h + 1] <= x) + (size_t)(t[h + 2] <= x) +
		                    (size_t)(t[h + 3] <= x);
		h += k;
		if (k < 4)
			return h;
	}
	while (h < n && (lt ? t[h] < x : t[h] <= x))
		h++;
	return h;
}

/* Whether t is in order and whether v ever decreases (a counter reset), 8 samples a step in vectors (the
 * compiler at -O2 leaves the scalar loop scalar: ~15% of the rate kernel); compiled three times like the
 * window kernels. */
static inline __attribute__((always_inline)) void rk_check(const int64_t *t, const double *v, size_t n,
                                                           bool *sorted, bool *resets)
{
	ot_v8i bad = {0}, down = {0};
	size_t j = 1;
	for (; j + 8 <= n; j += 8) {
		ot_v8i a, b;
		ot_v8d x, y;
		memcpy(&a, t + j, sizeof a);
		memcpy(&b, t + j - 1, sizeof b);
		memcpy(&x, v + j, sizeof x);
		memcpy(&y, v + j - 1, sizeof y);
		bad |= a < b;
		down |= x < y;
	}
	bool s = true, r = false;
	for (size_t k = 0; k < 8; k++)
		s &= !bad[k], r |= down[k] != 0;
	for (; j < n; j++) {
		s &= t[j] >= t[j - 1];
		r |= v[j] < v[j - 1];
	}
	*sorted = s, *resets = r;
}

/* rk_check at the AVX2 register width (as rk_math4) */
static inline __attribute__((always_inline)) void rk_check4(const int64_t *t, const double *v, size_t n,
                                                           bool *sorted, bool *resets)
{
	ot_v4i bad = {0}, down = {0};
	size_t j = 1;
	for (; j + 4 <= n; j += 4) {
		ot_v4i a, b;
		ot_v4d x, y;
		memcpy(&a, t + j, sizeof a);
		memcpy(&b, t + j - 1, sizeof b);
		memcpy(&x, v + j, sizeof x);
		memcpy(&y, v + j - 1, sizeof y);
		bad |= a < b;
		down |= x < y;
	}
	bool s = true, r = false;
	for (size_t k = 0; k < 4; k++)
		s &= !bad[k], r |= down[k] != 0;
	for (; j < n; j++) {
		s &= t[j] >= t[j - 1];
		r |= v[j] < v[j - 1];
	}
	*sorted = s, *resets = r;
}

__attribute__((target("avx512f,avx512dq,avx512vl,avx512bw"))) static void
rk_check_avx512(const int64_t *t, const double *v, size_t n, bool *sorted, bool *resets)
{
	rk_check(t, v, n, sorted, resets);
}

__attribute__((target("avx2"))) static void rk_check_avx2(const int64_t *t, const double *v, size_t n,
                                                          bool *sorted, bool *resets)
{
	rk_check4(t, v, n, sorted, resets);
}

static void rk_check_base(const int64_t *t, const double *v, size_t n, bool *sorted, bool *resets)
{
	bool s = true, r = false;
	for (size_t j = 1; j < n; j++) {
		s &= t[j] >= t[j - 1];
		r |= v[j] < v[j - 1];
	}
	*sorted = s, *resets = r;
}

static void rate_kernel_steps(const void *kctx, const int64_t *t, const double *v, size_t n, double *out,
			      uint8_t *ok, rk_out_t *ro)
{
	const rctx_t *c = kctx;
	bool counter = c->k == F_RATE || c->k == F_INCREASE, rate = c->k == F_RATE;
	size_t lo = 0, hi = 0, maxwin = 0, cnt = 0, last_reset = 0, work = 0;
	double rsec = (double)c->range / 1000; /* extrapolated_rate's divisor, the same value every window */
	int simd = promql_simd();
	rk_lanes_t l;
	ro->lastwin = 0;
	ro->stopped = false;
	/* timestamps in order (always, but for corrupt data) and, for counters, no reset anywhere (most
	 * series): the edges move by counting (rk_edge) and no window needs to look at values */
	bool sorted, resets;
	if (simd == PROMQL_SIMD_AVX512)
		rk_check_avx512(t, v, n, &sorted, &resets);
	else if (simd == PROMQL_SIMD_AVX2)
		rk_check_avx2(t, v, n, &sorted, &resets);
	else
		rk_check_base(t, v, n, &sorted, &resets);
	bool fast = sorted && !(counter && resets);
	for (size_t b0 = 0; b0 < c->nsteps; b0 += RK_BLOCK) {
		size_t b1 = b0 + RK_BLOCK < c->nsteps ? b0 + RK_BLOCK : c->nsteps, nl = 0;
		for (size_t i = b0; i < b1; i++) {
			int64_t rend = c->ref[i], rstart = rend - c->range;
			if (i > 0 && rend < c->ref[i - 1])
				lo = hi = last_reset = 0;
			if (fast) {
				hi = rk_edge(t, hi, n, rend, false);
				lo = rk_edge(t, lo, hi, rstart, true);
			} else if (counter) {
				while (hi < n && t[hi] <= rend) {
					if (hi > 0 && v[hi] < v[hi - 1])
						last_reset = hi;
					hi++;
				}
			} else {
				while (hi < n && t[hi] <= rend)
					hi++;
			}
			/* the trailing edge moves forward: every sample is passed once by each edge */
			while (!fast && lo < hi && t[lo] < rstart)
				lo++;
			size_t w = hi - lo;
			if (w > maxwin)
				maxwin = w;
			ro->lastwin = w;
			work += w + 1;
			if (work >= EV_POLL_WORK) { /* huge windows: a series alone can take long */
				work = 0;
				if (c->poll && ev_stop_requested(c->poll)) {
					memset(ok + i, 0, c->nsteps - i);
					b1 = i;
					ro->stopped = true;
					break;
				}
			}
			ok[i] = 0;
			if (w < 2)
				continue;
			double result = v[hi - 1] - v[lo];
			if (counter && last_reset > lo) {
				double prev = v[lo];
				for (size_t j = lo + 1; j < hi; j++) {
					if (v[j] < prev)
						result += prev;
					prev = v[j];
				}
			}
			l.idx[nl] = i;
			l.st[nl] = (double)(t[lo] - rstart);
			l.en[nl] = (double)(rend - t[hi - 1]);
			l.sm[nl] = (double)(t[hi - 1] - t[lo]);
			l.n1[nl] = (double)(w - 1);
			l.v0[nl] = v[lo];
			l.res[nl] = result;
			nl++;
		}
		if (nl) {
			for (size_t k = nl; k % 8;
			     k++) { /* pad with copies of lane 0 (computed, never stored) */
				l.st[k] = l.st[0], l.en[k] = l.en[0], l.sm[k] = l.sm[0], l.n1[k] = l.n1[0];
				l.v0[k] = l.v0[0], l.res[k] = l.res[0];
			}
			if (simd == PROMQL_SIMD_AVX512)
				rk_math_avx512(&l, nl, counter, rate, rsec);
			else if (simd == PROMQL_SIMD_AVX2)
				rk_math_avx2(&l, nl, counter, rate, rsec);
			else
				rk_math_base(&l, nl, counter, rate, rsec);
			for (size_t k = 0; k < nl; k++) {
				out[l.idx[k]] = l.out[k];
				ok[l.idx[k]] = 1;
			}
		}
		cnt += nl;
		if (ro->stopped)
			break;
	}
	ro->npts = cnt;
	ro->maxwin = maxwin;
}

/* rate / increase of a downsampled series, read through the counter view (thanos.md §4.4: a monotonic
 * counter, one point per aggregate window stamped at the window's end, 1 ms before the next window
 * starts; a chunk's last one at its last raw sample). The first point inside a range is the counter at
 * the end of the range's first window, up to one resolution step after the range start: Prometheus's
 * extrapolation from it (what Thanos answers) stretches 54-55 minutes of a [1h] range over 5m data to
 * 60 and misses what the counter did in that window (a burst, a reset). The point before the range
 * (the previous window's end; the batch keeps it, rb_aggr_t.lead) holds the counter where the range
 * starts. So the counter at the range start is interpolated between that point and the first inside
 * (at a range start on a window boundary: the point's value, 1 ms away), and the increase runs from it
 * as from a sample at the range start, with Prometheus's extrapolation at the end only. Used when the
 * point before is no further from the first inside than 1.1 times the series' spacing there (no gap:
 * Prometheus's own threshold; see lead_rate); otherwise, and when a point sits at the range start, the
 * window is computed as Prometheus computes raw data. Raw series never come here. */
static bool lead_rate(const int64_t *t, const double *v, size_t lo, size_t hi, int64_t rstart, int64_t rend,
                      int64_t range, bool rate, double *out)
{
	size_t w = hi - lo;
	if (w < 2 || lo == 0 || t[lo] <= rstart || t[lo - 1] >= rstart || v[lo] < v[lo - 1])
		return false;
	/* the series' spacing around the range start: inside the average, or the first or last step when
	 * larger (a chunk's last point sits at its last raw sample and the next chunk's first at its first
	 * raw sample: two points close together); before it the step to the point before, when larger (1h
	 * points before finer data filling a gap after them) */
	double space = (double)(t[hi - 1] - t[lo]) / (double)(w - 1);
	if ((double)(t[lo + 1] - t[lo]) > space)
		space = (double)(t[lo + 1] - t[lo]);
	if ((double)(t[hi - 1] - t[hi - 2]) > space)
		space = (double)(t[hi - 1] - t[hi - 2]);
	if (lo >= 2 && (double)(t[lo - 1] - t[lo - 2]) > space)
		space = (double)(t[lo - 1] - t[lo - 2]);
	double gap = (double)(t[lo] - t[lo - 1]);
	if (!(gap <= space * 1.1))
		return false;
	double v0 = v[lo - 1] + (v[lo] - v[lo - 1]) * ((double)(rstart - t[lo - 1]) / gap);
	double result = v[hi - 1] - v0, prev = v0;
	for (size_t j = lo; j < hi; j++) { /* the counter view is monotonic; a drop is a reset all the same */
		if (v[j] < prev)
			result += prev;
		prev = v[j];
	}
	double sampled = (double)(t[hi - 1] - rstart) / 1000;
	double to_end = (double)(rend - t[hi - 1]) / 1000;
	double avg = sampled / (double)w; /* w + 1 samples with the one at the range start */
	double ext = sampled + (to_end < avg * 1.1 ? to_end : avg / 2);
	double factor = ext / sampled;
	if (rate)
		factor /= (double)range / 1000;
	*out = result * factor;
	return true;
}

static void rate_aggr_kernel_steps(const void *kctx, const int64_t *t, const double *v, size_t n, double *out,
                                   uint8_t *ok, rk_out_t *ro)
{
	const rctx_t *c = kctx;
	bool rate = c->k == F_RATE;
	size_t lo = 0, hi = 0, maxwin = 0, cnt = 0, work = 0;
	ro->lastwin = 0;
	ro->stopped = false;
	for (size_t i = 0; i < c->nsteps; i++) {
		range_window(t, n, c->ref, i, c->range, &lo, &hi);
		int64_t rend = c->ref[i], rstart = rend - c->range;
		size_t w = hi - lo;
		if (w > maxwin)
			maxwin = w;
		ro->lastwin = w;
		work += w + 1;
		if (work >= EV_POLL_WORK) {
			work = 0;
			if (c->poll && ev_stop_requested(c->poll)) {
				memset(ok + i, 0, c->nsteps - i);
				ro->stopped = true;
				break;
			}
		}
		ok[i] =
		    lead_rate(t, v, lo, hi, rstart, rend, c->range, rate, &out[i]) ||
		    extrapolated_rate(t + lo, v + lo, w, rstart, rend, c->range, true, rate, &out[i], false);
		cnt += ok[i];
	}
	ro->npts = cnt;
	ro->maxwin = maxwin;
}

/* min/max/sum/avg/stddev/stdvar_over_time over every step of one series.
 *
 * min and max: a sliding-window extremum (a deque of the indices of non-NaN samples whose values do
 * not increase, for max, from the front), so each sample is looked at a constant number of times
 * instead of once per window holding it. What range_kernel returns is the earliest sample with the
 * extreme value among the window's non-NaN ones (it replaces only on a strict > or <, so -0 and 0
 * keep the first), NaN when all are NaN: the deque keeps equal values and its front is exactly that.
 *
 * sum, avg, stddev, stdvar: their arithmetic is sequential within a window (Kahan sums, avg's
 * incremental mean), so windows cannot reuse each other's sums without changing results. Instead 32
 * windows (stddev, stdvar: 16) run side by side, 8-lane vectors of the same IEEE operations in the same
 * order as range_kernel, branches as selects: per window operation for operation the same, so bit-identical;
 * the division and addition chains of the windows overlap instead of one waiting for the next. avg's
 * special case for an infinite running mean cannot arise when every sample is NaN or |v| <= 1e307
 * (the mean stays within the samples' range); series with others take range_kernel's path. */
#define OT_BIG 1e307

typedef struct ot_win {
	size_t lo, w, step;
} ot_win_t;

/* Samples [from, to) of ng groups of 8 windows into the groups' states (st[4g..4g+3]: a, ca, b, cb);
 * all lanes hold a sample at every position below the shortest window, so that stretch runs without
 * masks (no selects in the chains). */
static inline __attribute__((always_inline)) void ot_run(enum fkind k, size_t ng, const double *v,
                                                         const size_t *lo, const size_t *w, size_t from,
                                                         size_t to, bool masked, ot_v8d *st)
{
	ot_v8i m = {-1, -1, -1, -1, -1, -1, -1, -1};
	for (size_t i = from; i < to; i++) {
		double n = (double)(i + 1);
		ot_v8d cnt = {n, n, n, n, n, n, n, n};
#pragma GCC unroll 4
		for (size_t g = 0; g < ng; g++) {
			const size_t *gl = lo + 8 * g, *gw = w + 8 * g;
			size_t ix[8];
			for (size_t j = 0; j < 8; j++) {
				ix[j] = i;
				if (masked) {
					m[j] = -(int64_t)(i < gw[j]);
					ix[j] = i < gw[j] ? i : 0;
				}
			}
			ot_v8d x = {v[gl[0] + ix[0]], v[gl[1] + ix[1]], v[gl[2] + ix[2]], v[gl[3] + ix[3]],
			            v[gl[4] + ix[4]], v[gl[5] + ix[5]], v[gl[6] + ix[6]], v[gl[7] + ix[7]]};
			ot_v8d *a = &st[4 * g], *ca = &st[4 * g + 1], *b = &st[4 * g + 2],
			       *cb = &st[4 * g + 3];
			if (k == F_SUM_OT) {
				OT_KAHAN(masked, m, x, *a, *ca);
			} else if (k == F_AVG_OT) {
				OT_KAHAN(masked, m, x / cnt - *a / cnt, *a, *ca);
			} else { /* stddev, stdvar: a, ca = mean; b, cb = aux */
				ot_v8d delta = x - (*a + *ca);
				OT_KAHAN(masked, m, delta / cnt, *a, *ca);
				OT_KAHAN(masked, m, delta * (x - (*a + *ca)), *b, *cb);
			}
		}
	}
}

/* Windows side by side: sum and avg 32 (four groups of 8 lanes), stddev and stdvar 16 (their state is
 * twice as large). avg's chain (a division and a Kahan step a sample) is long and its two divisions a
 * sample are the limit: with 32 windows in flight the divider stays busy, and an AVX-512 division does
 * eight at once (measured 4x the throughput of the SSE2 one on this machine). */
#define OT_MAX_WINDOWS 32

static size_t ot_lanes(enum fkind k)
{
	return k == F_SUM_OT || k == F_AVG_OT ? 32 : 16;
}

static inline __attribute__((always_inline)) void ot_sums(enum fkind k, const double *v, const size_t *lo,
                                                          const size_t *w, size_t wmin, size_t wmax,
                                                          ot_v8d *st)
{
	switch (k) { /* one copy of the loops per kind, the kind's branches folded away */
	case F_SUM_OT:
		ot_run(F_SUM_OT, 4, v, lo, w, 0, wmin, false, st);
		ot_run(F_SUM_OT, 4, v, lo, w, wmin, wmax, true, st);
		break;
	case F_AVG_OT:
		ot_run(F_AVG_OT, 4, v, lo, w, 0, wmin, false, st);
		ot_run(F_AVG_OT, 4, v, lo, w, wmin, wmax, true, st);
		break;
	default:
		ot_run(F_STDVAR_OT, 2, v, lo, w, 0, wmin, false, st);
		ot_run(F_STDVAR_OT, 2, v, lo, w, wmin, wmax, true, st);
		break;
	}
}

__attribute__((target("avx512f,avx512dq,avx512vl,avx512bw"))) static void
ot_sums_avx512(enum fkind k, const double *v, const size_t *lo, const size_t *w, size_t wmin, size_t wmax,
               ot_v8d *st)
{
	ot_sums(k, v, lo, w, wmin, wmax, st);
}

/* AVX2: ot_run on 4-lane vectors (one ymm each), twice as many groups; the states come back in ot_run's
 * 8-lane layout. */

static inline __attribute__((always_inline)) void ot_run4(enum fkind k, size_t ng, const double *v,
                                                          const size_t *lo, const size_t *w, size_t from,
                                                          size_t to, bool masked, ot_v4d *st)
{
	ot_v4i m = {-1, -1, -1, -1};
	for (size_t i = from; i < to; i++) {
		double n = (double)(i + 1);
		ot_v4d cnt = {n, n, n, n};
#pragma GCC unroll 8
		for (size_t g = 0; g < ng; g++) {
			const size_t *gl = lo + 4 * g, *gw = w + 4 * g;
			size_t ix[4];
			for (size_t j = 0; j < 4; j++) {
				ix[j] = i;
				if (masked) {
					m[j] = -(int64_t)(i < gw[j]);
					ix[j] = i < gw[j] ? i : 0;
				}
			}
			ot_v4d x = {v[gl[0] + ix[0]], v[gl[1] + ix[1]], v[gl[2] + ix[2]], v[gl[3] + ix[3]]};
			ot_v4d *a = &st[4 * g], *ca = &st[4 * g + 1], *b = &st[4 * g + 2],
			       *cb = &st[4 * g + 3];
			if (k == F_SUM_OT) {
				VK_KAHAN(ot_v4d, ot_v4i, masked, m, x, *a, *ca);
			} else if (k == F_AVG_OT) {
				VK_KAHAN(ot_v4d, ot_v4i, masked, m, x / cnt - *a / cnt, *a, *ca);
			} else {
				ot_v4d delta = x - (*a + *ca);
				VK_KAHAN(ot_v4d, ot_v4i, masked, m, delta / cnt, *a, *ca);
				VK_KAHAN(ot_v4d, ot_v4i, masked, m, delta * (x - (*a + *ca)), *b, *cb);
			}
		}
	}
}

/* ot_sums by RUN over W-lane vectors VD (ot_run4, ot_run2): 8 / W groups of W lanes for each 8-lane group
 * of ot_run, whose layout the states are copied back into (state q of a group at st[4 * group + q]). */
#define OT_SUMS(ATTR, NAME, RUN, VD, W)                                                                  \
	ATTR static void NAME(enum fkind k, const double *v, const size_t *lo, const size_t *w,          \
	                      size_t wmin, size_t wmax, ot_v8d *st)                                      \
	{                                                                                                \
		enum { PER8 = 8 / (W) };                                                                 \
		VD sw[PER8 / 2 * OT_MAX_WINDOWS];                                                        \
		memset(sw, 0, sizeof sw);                                                                \
		size_t ng = 0;                                                                           \
		switch (k) {                                                                             \
		case F_SUM_OT:                                                                           \
			RUN(F_SUM_OT, 4 * PER8, v, lo, w, 0, wmin, false, sw);                           \
			RUN(F_SUM_OT, 4 * PER8, v, lo, w, wmin, wmax, true, sw);                         \
			ng = 4 * PER8;                                                                   \
			break;                                                                           \
		case F_AVG_OT:                                                                           \
			RUN(F_AVG_OT, 4 * PER8, v, lo, w, 0, wmin, false, sw);                           \
			RUN(F_AVG_OT, 4 * PER8, v, lo, w, wmin, wmax, true, sw);                         \
			ng = 4 * PER8;                                                                   \
			break;                                                                           \
		default:                                                                                 \
			RUN(F_STDVAR_OT, 2 * PER8, v, lo, w, 0, wmin, false, sw);                        \
			RUN(F_STDVAR_OT, 2 * PER8, v, lo, w, wmin, wmax, true, sw);                      \
			ng = 2 * PER8;                                                                   \
			break;                                                                           \
		}                                                                                        \
		for (size_t g = 0; g < ng; g++)                                                          \
			for (size_t q = 0; q < 4; q++)                                                   \
				memcpy((double *)&st[4 * (g / PER8) + q] + (W) * (g % PER8),             \
				       &sw[4 * g + q], sizeof sw[0]);                                    \
	}
OT_SUMS(__attribute__((target("avx2"))), ot_sums_avx2, ot_run4, ot_v4d, 4)

/* The baseline (SSE2): ot_run on 2-lane vectors (one xmm each), four times the groups. */

static inline __attribute__((always_inline)) void ot_run2(enum fkind k, size_t ng, const double *v,
                                                          const size_t *lo, const size_t *w, size_t from,
                                                          size_t to, bool masked, ot_v2d *st)
{
	ot_v2i m = {-1, -1};
	for (size_t i = from; i < to; i++) {
		double n = (double)(i + 1);
		ot_v2d cnt = {n, n};
#pragma GCC unroll 16
		for (size_t g = 0; g < ng; g++) {
			const size_t *gl = lo + 2 * g, *gw = w + 2 * g;
			size_t ix[2];
			if (masked)
				m = (ot_v2i){-(int64_t)(i < gw[0]), -(int64_t)(i < gw[1])};
			for (size_t j = 0; j < 2; j++)
				ix[j] = !masked || i < gw[j] ? i : 0;
			ot_v2d x = {v[gl[0] + ix[0]], v[gl[1] + ix[1]]};
			ot_v2d *a = &st[4 * g], *ca = &st[4 * g + 1], *b = &st[4 * g + 2],
			       *cb = &st[4 * g + 3];
			if (k == F_SUM_OT) {
				VK_KAHAN(ot_v2d, ot_v2i, masked, m, x, *a, *ca);
			} else if (k == F_AVG_OT) {
				VK_KAHAN(ot_v2d, ot_v2i, masked, m, x / cnt - *a / cnt, *a, *ca);
			} else {
				ot_v2d delta = x - (*a + *ca);
				VK_KAHAN(ot_v2d, ot_v2i, masked, m, delta / cnt, *a, *ca);
				VK_KAHAN(ot_v2d, ot_v2i, masked, m, delta * (x - (*a + *ca)), *b, *cb);
			}
		}
	}
}

OT_SUMS(, ot_sums_base, ot_run2, ot_v2d, 2)

/* The results of up to ot_lanes(k) windows (ws[0..nw)) into out[ws[i].step]. */
static void ot_windows(enum fkind k, const double *v, const ot_win_t *ws, size_t nw, double *out)
{
	size_t lo[OT_MAX_WINDOWS], w[OT_MAX_WINDOWS], wmax = 0, wmin = SIZE_MAX, nl = ot_lanes(k);
	for (size_t j = 0; j < nl; j++) {
		lo[j] = j < nw ? ws[j].lo : ws[0].lo;
		w[j] = j < nw ? ws[j].w : 0;
		wmax = w[j] > wmax ? w[j] : wmax;
		wmin = w[j] < wmin ? w[j] : wmin;
	}
	/* st: lanes 0-7, 8-15, ..., each a, ca, b, cb (sum or mean and its compensation; stddev's aux) */
	ot_v8d st[OT_MAX_WINDOWS / 2];
	memset(st, 0, sizeof st);
	/* AVX2 runs 4-lane vectors (ot_run4), SSE2 2-lane ones (ot_run2): vectors wider than the
	 * registers go through the stack in pieces (in-process CPU, dashboard data, sum_over_time: AVX2
	 * 119 ms with ot_run's 8 lanes, 18 with 4; SSE2 79 with 8, 25 with 2). */
	int simd = promql_simd();
	if (simd == PROMQL_SIMD_AVX512)
		ot_sums_avx512(k, v, lo, w, wmin, wmax, st);
	else if (simd == PROMQL_SIMD_AVX2)
		ot_sums_avx2(k, v, lo, w, wmin, wmax, st);
	else
		ot_sums_base(k, v, lo, w, wmin, wmax, st);
	for (size_t j = 0; j < nw; j++) {
		const ot_v8d *l = st + (j / 8) * 4;
		double a = l[0][j % 8], ca = l[1][j % 8], b = l[2][j % 8], cb = l[3][j % 8], r;
		if (k == F_SUM_OT || k == F_AVG_OT) {
			r = isinf(a) ? a : a + ca;
		} else {
			double var = (b + cb) / (double)w[j];
			r = k == F_STDDEV_OT ? sqrt(var) : var;
		}
		out[ws[j].step] = r;
	}
}

static bool ot_kind(enum fkind k)
{
	return k == F_MIN_OT || k == F_MAX_OT || k == F_SUM_OT || k == F_AVG_OT || k == F_STDDEV_OT ||
	       k == F_STDVAR_OT;
}

static void overtime_kernel_steps(const void *kctx, const int64_t *t, const double *v, size_t n, double *out,
				  uint8_t *ok, rk_out_t *ro)
{
	const rctx_t *c = kctx;
	bool minmax = c->k == F_MIN_OT || c->k == F_MAX_OT, is_max = c->k == F_MAX_OT;
	if (c->k == F_AVG_OT)
		for (size_t i = 0; i < n; i++)
			if (fabs(v[i]) > OT_BIG) /* an infinity, or a mean that might overflow: range_kernel */
				return range_kernel_steps(kctx, t, v, n, out, ok, ro);
	/* max: indices of non-NaN samples in the window, values non-increasing from dq[dh] (min: non-decreasing) */
	uint32_t dq_local[512], *dq = n <= 512 ? dq_local : minmax ? xmalloc(n * sizeof *dq) : NULL;
	size_t dh = 0, dt = 0;
	size_t lo = 0, hi = 0, maxwin = 0, cnt = 0, work = 0;
	ot_win_t ws[OT_MAX_WINDOWS];
	size_t nw = 0, nl = ot_lanes(c->k);
	ro->lastwin = 0;
	ro->stopped = false;
	for (size_t i = 0; i < c->nsteps; i++) {
		int64_t rend = c->ref[i], rstart = rend - c->range;
		if (i > 0 && rend < c->ref[i - 1])
			lo = hi = dh = dt = 0;
		while (hi < n && t[hi] <= rend) {
			if (minmax && !isnan(v[hi])) {
				while (dt > dh && (is_max ? v[dq[dt - 1]] < v[hi] : v[dq[dt - 1]] > v[hi]))
					dt--;
				dq[dt++] = (uint32_t)hi;
			}
			hi++;
		}
		while (lo < hi && t[lo] < rstart)
			lo++;
		size_t win = hi - lo;
		if (win > maxwin)
			maxwin = win;
		ro->lastwin = win;
		work += win + 1;
		if (work >= EV_POLL_WORK) { /* huge windows: a series alone can take long */
			work = 0;
			if (c->poll && ev_stop_requested(c->poll)) {
				memset(ok + i, 0, c->nsteps - i);
				ro->stopped = true;
				break;
			}
		}
		ok[i] = win > 0;
		if (!win)
			continue;
		cnt++;
		if (minmax) {
			while (dt > dh && dq[dh] < lo)
				dh++;
			out[i] = dt > dh ? v[dq[dh]] : NAN;
			continue;
		}
		ws[nw++] = (ot_win_t){lo, win, i};
		if (nw == nl) {
			ot_windows(c->k, v, ws, nw, out);
			nw = 0;
		}
	}
	if (nw)
		ot_windows(c->k, v, ws, nw, out);
	if (dq != dq_local)
		free(dq);
	ro->npts = cnt;
	ro->maxwin = maxwin;
}

/* deriv and predict_linear over every step of one series. linreg's four Kahan sums (x, y, x*y, x*x)
 * are sequential within a window and the offsets x = (t - icept) / 1e3 differ from window to window
 * (scrape jitter), so windows cannot share work. As for sum_over_time, four windows run side by side
 * in 4-lane vectors instead, operation for operation linreg's (x's division included, branches as
 * selects): bit-identical, with the four windows' dependency chains overlapping. The vector code is
 * compiled twice, for AVX2 (one register a quantity) and for the baseline (two), and chosen at run
 * time. A window whose values are all equal takes linreg's constant-y answer without any sums; it is
 * found from the newest j with v[j] != v[j-1] (NaN compares unequal, as linreg's v[i] != v[0] does). */
atomic_int promql_simd_level = -1;

typedef double lr_v4d __attribute__((vector_size(32)));
typedef int64_t lr_v4i __attribute__((vector_size(32)));

typedef struct lr_win {
	size_t lo, w, step;
	int64_t icept;
} lr_win_t;

#define LR_KAHAN(masked, m, inc, sum, c) VK_KAHAN(lr_v4d, lr_v4i, masked, m, inc, sum, c)

/* Samples [from, to) of four windows into st (sx, cx, sy, cy, sxy, cxy, sx2, cx2); all four windows
 * hold a sample at every position below the shortest, so that stretch runs without masks. */
static inline __attribute__((always_inline)) void lr_run4(const int64_t *t, const double *v, const size_t *lo,
                                                          const size_t *w, const int64_t *ic, size_t from,
                                                          size_t to, bool masked, lr_v4d *st)
{
	const lr_v4d k1e3 = {1e3, 1e3, 1e3, 1e3};
	lr_v4i m = {-1, -1, -1, -1};
	lr_v4d sx = st[0], cx = st[1], sy = st[2], cy = st[3], sxy = st[4], cxy = st[5], sx2 = st[6],
	       cx2 = st[7];
	for (size_t i = from; i < to; i++) {
		size_t i0 = i, i1 = i, i2 = i, i3 = i;
		if (masked) {
			m = (lr_v4i){-(int64_t)(i < w[0]), -(int64_t)(i < w[1]), -(int64_t)(i < w[2]),
			             -(int64_t)(i < w[3])};
			i0 = i < w[0] ? i : 0, i1 = i < w[1] ? i : 0, i2 = i < w[2] ? i : 0,
			i3 = i < w[3] ? i : 0;
		}
		lr_v4d x = {(double)(t[lo[0] + i0] - ic[0]), (double)(t[lo[1] + i1] - ic[1]),
		            (double)(t[lo[2] + i2] - ic[2]), (double)(t[lo[3] + i3] - ic[3])};
		lr_v4d y = {v[lo[0] + i0], v[lo[1] + i1], v[lo[2] + i2], v[lo[3] + i3]};
		x /= k1e3;
		LR_KAHAN(masked, m, x, sx, cx);
		LR_KAHAN(masked, m, y, sy, cy);
		LR_KAHAN(masked, m, x * y, sxy, cxy);
		LR_KAHAN(masked, m, x * x, sx2, cx2);
	}
	st[0] = sx, st[1] = cx, st[2] = sy, st[3] = cy, st[4] = sxy, st[5] = cxy, st[6] = sx2, st[7] = cx2;
}

/* linreg's slope and intercept of N windows from their sums st (sx, cx, sy, cy, sxy, cxy, sx2, cx2; V:
 * N-lane vectors of doubles, VI: of int64) and lengths w: lane by lane the scalar code's operations in its
 * order, with no transposition of the sums and N divisions at once. */
#define LR_FIT(V, VI, st, w, slope_out, icpt_out)                                                            \
	do {                                                                                                 \
		VI wi_;                                                                                      \
		memcpy(&wi_, (w), sizeof wi_);                                                               \
		V sx_ = (st)[0] + (st)[1], sy_ = (st)[2] + (st)[3], sxy_ = (st)[4] + (st)[5],                \
		  sx2_ = (st)[6] + (st)[7], cn_ = __builtin_convertvector(wi_, V); /* lengths < 2^63 */      \
		V cov_ = sxy_ - sx_ * sy_ / cn_;                                                             \
		V var_ = sx2_ - sx_ * sx_ / cn_;                                                             \
		V slope_ = cov_ / var_;                                                                      \
		V icpt_ = sy_ / cn_ - slope_ * sx_ / cn_;                                                    \
		memcpy((slope_out), &slope_, sizeof slope_);                                                 \
		memcpy((icpt_out), &icpt_, sizeof icpt_);                                                    \
	} while (0)

/* Four windows' sums, then their slopes and intercepts into slope[0..4), icpt[0..4). */
static inline __attribute__((always_inline)) void lr_fit4(const int64_t *t, const double *v, const size_t *lo,
                                                          const size_t *w, const int64_t *ic, size_t wmin,
                                                          size_t wmax, double *slope, double *icpt)
{
	lr_v4d st[8];
	memset(st, 0, sizeof st);
	lr_run4(t, v, lo, w, ic, 0, wmin, false, st);
	lr_run4(t, v, lo, w, ic, wmin, wmax, true, st);
	LR_FIT(lr_v4d, lr_v4i, st, w, slope, icpt);
}

__attribute__((target("avx2"))) static void lr_fit4_avx2(const int64_t *t, const double *v, const size_t *lo,
                                                         const size_t *w, const int64_t *ic, size_t wmin,
                                                         size_t wmax, double *slope, double *icpt)
{
	lr_fit4(t, v, lo, w, ic, wmin, wmax, slope, icpt);
}

/* The baseline (SSE2): the four windows as two groups of 2-lane vectors (one xmm each; 4-lane vectors
 * wider than the registers go through the stack in pieces, as for *_over_time). */
static void lr_fit4_base(const int64_t *t, const double *v, const size_t *lo, const size_t *w,
                         const int64_t *ic, size_t wmin, size_t wmax, double *slope, double *icpt)
{
	ot_v2d st[2][8];
	memset(st, 0, sizeof st);
	for (int pass = 0; pass < 2; pass++) {
		size_t from = pass ? wmin : 0, to = pass ? wmax : wmin;
		bool masked = pass;
		ot_v2i m0 = {-1, -1}, m1 = {-1, -1};
		for (size_t i = from; i < to; i++) {
			size_t ix[4];
			if (masked) {
				m0 = (ot_v2i){-(int64_t)(i < w[0]), -(int64_t)(i < w[1])};
				m1 = (ot_v2i){-(int64_t)(i < w[2]), -(int64_t)(i < w[3])};
			}
			for (size_t j = 0; j < 4; j++)
				ix[j] = !masked || i < w[j] ? i : 0;
			ot_v2d x0 = {(double)(t[lo[0] + ix[0]] - ic[0]), (double)(t[lo[1] + ix[1]] - ic[1])};
			ot_v2d x1 = {(double)(t[lo[2] + ix[2]] - ic[2]), (double)(t[lo[3] + ix[3]] - ic[3])};
			ot_v2d y0 = {v[lo[0] + ix[0]], v[lo[1] + ix[1]]},
			       y1 = {v[lo[2] + ix[2]], v[lo[3] + ix[3]]};
			x0 /= 1e3;
			x1 /= 1e3;
			ot_v2d *s0 = st[0], *s1 = st[1];
			VK_KAHAN(ot_v2d, ot_v2i, masked, m0, x0, s0[0], s0[1]);
			VK_KAHAN(ot_v2d, ot_v2i, masked, m1, x1, s1[0], s1[1]);
			VK_KAHAN(ot_v2d, ot_v2i, masked, m0, y0, s0[2], s0[3]);
			VK_KAHAN(ot_v2d, ot_v2i, masked, m1, y1, s1[2], s1[3]);
			VK_KAHAN(ot_v2d, ot_v2i, masked, m0, x0 * y0, s0[4], s0[5]);
			VK_KAHAN(ot_v2d, ot_v2i, masked, m1, x1 * y1, s1[4], s1[5]);
			VK_KAHAN(ot_v2d, ot_v2i, masked, m0, x0 * x0, s0[6], s0[7]);
			VK_KAHAN(ot_v2d, ot_v2i, masked, m1, x1 * x1, s1[6], s1[7]);
		}
	}
	LR_FIT(ot_v2d, ot_v2i, st[0], w, slope, icpt);
	LR_FIT(ot_v2d, ot_v2i, st[1], w + 2, slope + 2, icpt + 2);
}

/* lr_run4's stretch on eight windows in 8-lane vectors (AVX-512 only: the eight sums would not fit
 * the 16 AVX2 registers twice over). */
static inline __attribute__((always_inline)) void lr_run8(const int64_t *t, const double *v, const size_t *lo,
                                                          const size_t *w, const int64_t *ic, size_t from,
                                                          size_t to, bool masked, ot_v8d *st)
{
	ot_v8i m = {-1, -1, -1, -1, -1, -1, -1, -1};
	ot_v8d sx = st[0], cx = st[1], sy = st[2], cy = st[3], sxy = st[4], cxy = st[5], sx2 = st[6],
	       cx2 = st[7];
	for (size_t i = from; i < to; i++) {
		size_t ix[8];
		for (size_t j = 0; j < 8; j++) {
			ix[j] = i;
			if (masked) {
				m[j] = -(int64_t)(i < w[j]);
				ix[j] = i < w[j] ? i : 0;
			}
		}
		ot_v8d x = {(double)(t[lo[0] + ix[0]] - ic[0]), (double)(t[lo[1] + ix[1]] - ic[1]),
		            (double)(t[lo[2] + ix[2]] - ic[2]), (double)(t[lo[3] + ix[3]] - ic[3]),
		            (double)(t[lo[4] + ix[4]] - ic[4]), (double)(t[lo[5] + ix[5]] - ic[5]),
		            (double)(t[lo[6] + ix[6]] - ic[6]), (double)(t[lo[7] + ix[7]] - ic[7])};
		ot_v8d y = {v[lo[0] + ix[0]], v[lo[1] + ix[1]], v[lo[2] + ix[2]], v[lo[3] + ix[3]],
		            v[lo[4] + ix[4]], v[lo[5] + ix[5]], v[lo[6] + ix[6]], v[lo[7] + ix[7]]};
		x /= 1e3;
		OT_KAHAN(masked, m, x, sx, cx);
		OT_KAHAN(masked, m, y, sy, cy);
		OT_KAHAN(masked, m, x * y, sxy, cxy);
		OT_KAHAN(masked, m, x * x, sx2, cx2);
	}
	st[0] = sx, st[1] = cx, st[2] = sy, st[3] = cy, st[4] = sxy, st[5] = cxy, st[6] = sx2, st[7] = cx2;
}

/* Eight windows' sums (lr_run8), then their slopes and intercepts into slope[0..8), icpt[0..8). */
__attribute__((target("avx512f,avx512dq,avx512vl,avx512bw"))) static void
lr_fit8_avx512(const int64_t *t, const double *v, const size_t *lo, const size_t *w, const int64_t *ic,
               size_t wmin, size_t wmax, double *slope, double *icpt)
{
	ot_v8d st[8];
	memset(st, 0, sizeof st);
	lr_run8(t, v, lo, w, ic, 0, wmin, false, st);
	lr_run8(t, v, lo, w, ic, wmin, wmax, true, st);
	LR_FIT(ot_v8d, ot_v8i, st, w, slope, icpt);
}

/* The results of up to eight windows (ws[0..nw), none with constant values) into out[ws[i].step]: one
 * group of eight with AVX-512, two of four otherwise. */
static void lr_windows(const rctx_t *c, const int64_t *t, const double *v, const lr_win_t *ws, size_t nw,
                       double *out)
{
	int simd = promql_simd();
	size_t lo[8], w[8];
	int64_t ic[8];
	double slope[8], icpt[8];
	for (size_t j = 0; j < 8; j++) {
		lo[j] = j < nw ? ws[j].lo : ws[0].lo;
		w[j] = j < nw ? ws[j].w : 0;
		ic[j] = j < nw ? ws[j].icept : ws[0].icept;
	}
	for (size_t g = 0, gn = simd == PROMQL_SIMD_AVX512 ? 8 : 4; g < nw; g += gn) {
		size_t wmax = 0, wmin = SIZE_MAX;
		for (size_t j = g; j < g + gn; j++) {
			wmax = w[j] > wmax ? w[j] : wmax;
			wmin = w[j] < wmin ? w[j] : wmin;
		}
		if (simd == PROMQL_SIMD_AVX512)
			lr_fit8_avx512(t, v, lo, w, ic, wmin, wmax, slope, icpt);
		else if (simd == PROMQL_SIMD_AVX2)
			lr_fit4_avx2(t, v, lo + g, w + g, ic + g, wmin, wmax, slope + g, icpt + g);
		else
			lr_fit4_base(t, v, lo + g, w + g, ic + g, wmin, wmax, slope + g, icpt + g);
	}
	for (size_t j = 0; j < nw; j++)
		out[ws[j].step] = c->k == F_DERIV ? slope[j] : slope[j] * c->p1[ws[j].step] + icpt[j];
}

static void linreg_kernel_steps(const void *kctx, const int64_t *t, const double *v, size_t n, double *out,
                                uint8_t *ok, rk_out_t *ro)
{
	const rctx_t *c = kctx;
	size_t lo = 0, hi = 0, maxwin = 0, cnt = 0, work = 0, last_change = 0;
	lr_win_t ws[8];
	size_t nw = 0;
	ro->lastwin = 0;
	ro->stopped = false;
	for (size_t i = 0; i < c->nsteps; i++) {
		int64_t rend = c->ref[i], rstart = rend - c->range;
		if (i > 0 && rend < c->ref[i - 1])
			lo = hi = last_change = 0;
		while (hi < n && t[hi] <= rend) {
			if (hi > 0 && !(v[hi] == v[hi - 1]))
				last_change = hi;
			hi++;
		}
		while (lo < hi && t[lo] < rstart)
			lo++;
		size_t win = hi - lo;
		if (win > maxwin)
			maxwin = win;
		ro->lastwin = win;
		work += win + 1;
		if (work >= EV_POLL_WORK) { /* huge windows: a series alone can take long */
			work = 0;
			if (c->poll && ev_stop_requested(c->poll)) {
				memset(ok + i, 0, c->nsteps - i);
				ro->stopped = true;
				break;
			}
		}
		ok[i] = win >= 2;
		if (win < 2)
			continue;
		cnt++;
		if (last_change <= lo) { /* constant values: linreg's early answer */
			double s = isinf(v[lo]) ? NAN : 0, b = isinf(v[lo]) ? NAN : v[lo];
			out[i] = c->k == F_DERIV ? s : s * c->p1[i] + b;
			continue;
		}
		int64_t icept = c->k == F_DERIV ? t[lo] : c->tstart + (int64_t)i * c->tstep;
		ws[nw++] = (lr_win_t){lo, win, i, icept};
		if (nw == 8) {
			lr_windows(c, t, v, ws, nw, out);
			nw = 0;
		}
	}
	if (nw)
		lr_windows(c, t, v, ws, nw, out);
	ro->npts = cnt;
	ro->maxwin = maxwin;
}

static void range_sink_ob(ev_t *ev, void *sctx, const labels_t *ls, const double *v, const uint8_t *ok, size_t npts)
{
	rctx_t *c = sctx;
	(void)npts;
	labels_t ol = c->k == F_LAST_OT ? labels_copy(ev->a, ls) : lb_drop_name(ev, labels_copy(ev->a, ls));
	size_t idx = ob_get_unique(ev, c->ob, ol);
	for (size_t i = 0; i < ev->nsteps; i++)
		if (ok[i])
			ob_set(ev, c->ob, idx, i, v[i]);
}

static const promql_expr_t *unparen_f(const promql_expr_t *e)
{
	while (e->kind == PROMQL_PAREN)
		e = e->u.paren.expr;
	return e;
}

static bool name_pinned(const promql_expr_t *vs)
{
	for (size_t i = 0; i < vs->u.vs.nms; i++)
		if (vs->u.vs.ms[i].type == MATCH_EQ && str_eq_c(vs->u.vs.ms[i].name, LABEL_METRIC_NAME))
			return true;
	return false;
}

static bool range_kind_of(const promql_expr_t *e, enum fkind *k)
{
	if (e->kind != PROMQL_CALL)
		return false;
	for (size_t i = 0; i < ARRAY_LEN(range_funcs); i++)
		if (!strcmp(e->u.call.func->name, range_funcs[i].name)) {
			*k = range_funcs[i].k;
			return true;
		}
	return false;
}

/* The matrix selector argument of a batchable range function call, or NULL. */
static const promql_expr_t *batchable_arg(const promql_expr_t *e, enum fkind *k)
{
	if (!range_kind_of(e, k) || !kind_batchable(*k))
		return NULL;
	const promql_expr_t *m = unparen_f(e->u.call.args[0]);
	return m->kind == PROMQL_MATRIX_SEL ? m : NULL;
}

/* count_over_time of a downsampled series decoded with count weights (promql_opts_t.decode_aggr_chunks):
 * every sample stands for as many raw samples as its value says, so a window's count is the sum of its
 * values (exact: integers far below 2^53). */
static void count_weights_kernel_steps(const void *kctx, const int64_t *t, const double *v, size_t n,
                                       double *out, uint8_t *ok, rk_out_t *ro)
{
	rctx_t c = *(const rctx_t *)kctx;
	c.k = F_SUM_OT;
	overtime_kernel_steps(&c, t, v, n, out, ok, ro);
}

static void run_batched(ev_t *ev, const promql_expr_t *e, enum fkind k, const promql_expr_t *m, rctx_t *c,
			range_sink_fn sink, void *sctx)
{
	c->k = k;
	c->fname = e->u.call.func->name;
	if (k == F_PREDICT_LINEAR)
		c->p1 = scalar_arg(ev, e->u.call.args[1]);
	c->ref = ev_alloc(ev, (ev->nsteps + 1) * sizeof(int64_t));
	c->nsteps = ev->nsteps;
	c->tstart = ev->start;
	c->tstep = ev->step;
	c->poll = ev;
	ev->at_shift = k == F_PREDICT_LINEAR;
	range_kernel_fn kfn = k == F_RATE || k == F_INCREASE || k == F_DELTA ? rate_kernel_steps
			      : ot_kind(k)						     ? overtime_kernel_steps
			      : k == F_DERIV || k == F_PREDICT_LINEAR			     ? linreg_kernel_steps
											     : range_kernel_steps;
	static const rb_aggr_t count_aggr = {count_weights_kernel_steps, true, false};
	static const rb_aggr_t counter_aggr = {rate_aggr_kernel_steps, false, true};
	const rb_aggr_t *aggr = k == F_COUNT_OT                  ? &count_aggr
	                        : k == F_RATE || k == F_INCREASE ? &counter_aggr
	                                                         : NULL;
	eval_range_batched(ev, m, c->fname, kfn, aggr, c, sink, sctx, &c->range, c->ref);
	ev->at_shift = false;
}

bool is_range_function(const promql_expr_t *call)
{
	enum fkind k;
	return range_kind_of(call, &k);
}

bool range_call_streamable(const promql_expr_t *call, bool need_unique_names)
{
	enum fkind k;
	const promql_expr_t *m = batchable_arg(call, &k);
	return m && !(need_unique_names && k != F_LAST_OT && !name_pinned(m->u.ms.vs));
}

bool eval_range_call_streamed(ev_t *ev, const promql_expr_t *call, bool need_unique_names, range_sink_fn sink,
			      void *sctx)
{
	enum fkind k;
	const promql_expr_t *m = batchable_arg(call, &k);
	if (!range_call_streamable(call, need_unique_names))
		return false;
	rctx_t *c = ev_zalloc(ev, sizeof *c);
	run_batched(ev, call, k, m, c, sink, sctx);
	return true;
}

static void eval_range_func(ev_t *ev, const promql_expr_t *e, enum fkind k, val_t *out)
{
	const promql_expr_t *bm = batchable_arg(e, &k);
	if (bm) {
		rctx_t *bc = ev_zalloc(ev, sizeof *bc);
		bc->ob = ob_new(ev);
		run_batched(ev, e, k, bm, bc, range_sink_ob, bc);
		ob_finish(ev, bc->ob, out);
		return;
	}
	rctx_t c = {.k = k, .fname = e->u.call.func->name, .tstart = ev->start, .tstep = ev->step};
	size_t mi = 0;
	if (k == F_QUANTILE_OT) {
		c.p1 = scalar_arg(ev, e->u.call.args[0]);
		mi = 1;
	} else if (k == F_PREDICT_LINEAR) {
		c.p1 = scalar_arg(ev, e->u.call.args[1]);
	} else if (k == F_HOLT_WINTERS) {
		c.p1 = scalar_arg(ev, e->u.call.args[1]);
		c.p2 = scalar_arg(ev, e->u.call.args[2]);
	}
	c.ref = ev_alloc(ev, (ev->nsteps + 1) * sizeof(int64_t));
	c.ob = ob_new(ev);
	if (k == F_ABSENT_OT)
		c.seen = ev_zalloc(ev, ev->nsteps + 1);
	ev->at_shift = k == F_PREDICT_LINEAR;
	eval_range_arg(ev, e->u.call.args[mi], c.fname, range_series, &c, &c.range, c.ref);
	ev->at_shift = false;
	if (k == F_ABSENT_OT) {
		labels_t ls = absent_labels(ev, e->u.call.args[0]);
		size_t idx = (size_t)-1;
		for (size_t i = 0; i < ev->nsteps; i++) {
			if (c.seen[i])
				continue;
			if (idx == (size_t)-1)
				idx = ob_get(ev, c.ob, ls);
			ob_set(ev, c.ob, idx, i, 1);
		}
	}
	ob_finish(ev, c.ob, out);
}

/* ------------------------------------------------------------------------------ elementwise */

static double go_round(double v, double to_nearest)
{
	double inv = 1.0 / to_nearest;
	return floor(v * inv + 0.5) / inv;
}

static void civil(double v, int *year, int *month, int *day, int *yday, int *wday, int *hour, int *minute)
{
	int64_t secs = (int64_t)v;
	int64_t days = secs / 86400, rem = secs % 86400;
	if (rem < 0) {
		rem += 86400;
		days--;
	}
	*hour = (int)(rem / 3600);
	*minute = (int)(rem % 3600 / 60);
	int64_t w = (days + 4) % 7; /* 1970-01-01 was a Thursday */
	*wday = (int)(w < 0 ? w + 7 : w);
	int64_t z = days + 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	int64_t doe = z - era * 146097;
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t y = yoe + era * 400;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t mp = (5 * doy + 2) / 153;
	int64_t d = doy - (153 * mp + 2) / 5 + 1;
	int64_t m = mp < 10 ? mp + 3 : mp - 9;
	if (m <= 2)
		y++;
	*year = (int)y;
	*month = (int)m;
	*day = (int)d;
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	static const int cum[] = {0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334};
	*yday = cum[m - 1] + (int)d + (leap && m > 2 ? 1 : 0);
}

static int days_in_month(int y, int m)
{
	static const int dm[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	return m == 2 && leap ? 29 : dm[m - 1];
}

enum efunc {
	E_ABS, E_CEIL, E_FLOOR, E_EXP, E_SQRT, E_LN, E_LOG2, E_LOG10, E_SGN, E_SIN, E_COS, E_TAN, E_ASIN, E_ACOS,
	E_ATAN, E_SINH, E_COSH, E_TANH, E_ASINH, E_ACOSH, E_ATANH, E_DEG, E_RAD, E_ROUND, E_CLAMP, E_CLAMP_MIN,
	E_CLAMP_MAX, E_DOM, E_DOW, E_DOY, E_DIM, E_HOUR, E_MINUTE, E_MONTH, E_YEAR, E_TIMESTAMP,
};

static const struct {
	const char *name;
	enum efunc f;
} elem_funcs[] = {
	{"abs", E_ABS}, {"ceil", E_CEIL}, {"floor", E_FLOOR}, {"exp", E_EXP}, {"sqrt", E_SQRT}, {"ln", E_LN},
	{"log2", E_LOG2}, {"log10", E_LOG10}, {"sgn", E_SGN}, {"sin", E_SIN}, {"cos", E_COS}, {"tan", E_TAN},
	{"asin", E_ASIN}, {"acos", E_ACOS}, {"atan", E_ATAN}, {"sinh", E_SINH}, {"cosh", E_COSH}, {"tanh", E_TANH},
	{"asinh", E_ASINH}, {"acosh", E_ACOSH}, {"atanh", E_ATANH}, {"deg", E_DEG}, {"rad", E_RAD},
	{"round", E_ROUND}, {"clamp", E_CLAMP}, {"clamp_min", E_CLAMP_MIN}, {"clamp_max", E_CLAMP_MAX},
	{"day_of_month", E_DOM}, {"day_of_week", E_DOW}, {"day_of_year", E_DOY}, {"days_in_month", E_DIM},
	{"hour", E_HOUR}, {"minute", E_MINUTE}, {"month", E_MONTH}, {"year", E_YEAR}, {"timestamp", E_TIMESTAMP},
};

static double elem(enum efunc f, double v, double a, double b)
{
	switch (f) {
	case E_ABS: return fabs(v);
	case E_CEIL: return ceil(v);
	case E_FLOOR: return floor(v);
	case E_EXP: return exp(v);
	case E_SQRT: return sqrt(v);
	case E_LN: return log(v);
	case E_LOG2: return log2(v);
	case E_LOG10: return log10(v);
	case E_SGN: return v < 0 ? -1 : v > 0 ? 1 : v;
	case E_SIN: return sin(v);
	case E_COS: return cos(v);
	case E_TAN: return tan(v);
	case E_ASIN: return asin(v);
	case E_ACOS: return acos(v);
	case E_ATAN: return atan(v);
	case E_SINH: return sinh(v);
	case E_COSH: return cosh(v);
	case E_TANH: return tanh(v);
	case E_ASINH: return asinh(v);
	case E_ACOSH: return acosh(v);
	case E_ATANH: return atanh(v);
	case E_DEG: return v * 180 / M_PI;
	case E_RAD: return v * M_PI / 180;
	case E_ROUND: return go_round(v, a);
	case E_CLAMP: return go_max(a, go_min(b, v));
	case E_CLAMP_MIN: return go_max(a, v);
	case E_CLAMP_MAX: return go_min(a, v);
	case E_TIMESTAMP: return v;
	default: break;
	}
	int y, m, d, yd, wd, h, mi;
	civil(v, &y, &m, &d, &yd, &wd, &h, &mi);
	switch (f) {
	case E_DOM: return d;
	case E_DOW: return wd;
	case E_DOY: return yd;
	case E_DIM: return days_in_month(y, m);
	case E_HOUR: return h;
	case E_MINUTE: return mi;
	case E_MONTH: return m;
	case E_YEAR: return y;
	default: return NAN;
	}
}

static void eval_elem(ev_t *ev, const promql_expr_t *e, enum efunc f, val_t *out)
{
	val_t in;
	size_t ns = ev->nsteps;
	double *a = NULL, *b = NULL;
	if (e->u.call.nargs == 0) {
		/* date functions default to vector(time()) */
		in.type = PROMQL_TYPE_VECTOR;
		in.n = 1;
		in.s = ev_alloc(ev, sizeof(vseries_t));
		in.s[0].ls = (labels_t){NULL, 0};
		in.s[0].v = ev_alloc(ev, (ns + 1) * sizeof(double));
		in.s[0].ok = ev_alloc(ev, ns + 1);
		for (size_t i = 0; i < ns; i++) {
			in.s[0].v[i] = (double)ev_ts(ev, i) / 1000;
			in.s[0].ok[i] = 1;
		}
	} else if (f == E_TIMESTAMP) {
		const promql_expr_t *arg = e->u.call.args[0];
		while (arg->kind == PROMQL_PAREN)
			arg = arg->u.paren.expr;
		if (arg->kind == PROMQL_VECTOR_SEL) {
			eval_vector_selector_ts(ev, arg, &in);
		} else {
			eval_expr(ev, arg, &in);
			for (size_t s = 0; s < in.n; s++)
				for (size_t i = 0; i < ns; i++)
					in.s[s].v[i] = (double)ev_ts(ev, i) / 1000;
		}
	} else {
		eval_expr(ev, e->u.call.args[0], &in);
	}
	if (f == E_ROUND && e->u.call.nargs > 1)
		a = scalar_arg(ev, e->u.call.args[1]);
	if ((f == E_CLAMP || f == E_CLAMP_MIN || f == E_CLAMP_MAX))
		a = scalar_arg(ev, e->u.call.args[1]);
	if (f == E_CLAMP)
		b = scalar_arg(ev, e->u.call.args[2]);
	obuild_t *ob = ob_new(ev);
	for (size_t s = 0; s < in.n; s++) {
		size_t idx = (size_t)-1;
		for (size_t i = 0; i < ns; i++) {
			if (!in.s[s].ok[i])
				continue;
			double pa = a ? a[i] : 1, pb = b ? b[i] : 0;
			if (f == E_CLAMP && pb < pa)
				continue;
			if (idx == (size_t)-1)
				idx = ob_get(ev, ob, lb_drop_name(ev, in.s[s].ls));
			ob_set(ev, ob, idx, i, elem(f, in.s[s].v[i], pa, pb));
		}
	}
	ob_finish(ev, ob, out);
}

/* ------------------------------------------------------------------------------ others */

typedef struct bucket {
	double upper, count;
} bucket_t;

/* 2.42's bucketQuantile over b[0..n); up, ix and sorted are scratch arrays of n. */
static double bucket_quantile(double q, const bucket_t *in, size_t n, double *up, size_t *ix, bucket_t *b)
{
	if (isnan(q))
		return NAN;
	if (q < 0)
		return -INFINITY;
	if (q > 1)
		return INFINITY;
	for (size_t i = 0; i < n; i++) { /* Go's sort.Sort by upper bound: equal (and NaN) bounds where Go leaves them */
		up[i] = in[i].upper;
		ix[i] = i;
	}
	gosort_sort(up, ix, n, GOSORT_ASC);
	for (size_t i = 0; i < n; i++)
		b[i] = in[ix[i]];
	if (!(isinf(b[n - 1].upper) && b[n - 1].upper > 0))
		return NAN;
	/* coalesce equal bounds */
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		if (k > 0 && b[k - 1].upper == b[i].upper)
			b[k - 1].count += b[i].count;
		else
			b[k++] = b[i];
	}
	n = k;
	double max = -INFINITY;
	for (size_t i = 0; i < n; i++) {
		if (b[i].count > max)
			max = b[i].count;
		else if (b[i].count < max)
			b[i].count = max;
	}
	if (n < 2)
		return NAN;
	double obs = b[n - 1].count;
	if (obs == 0)
		return NAN;
	double rank = q * obs;
	/* sort.Search over [0, n-1) */
	size_t lo = 0, hi = n - 1;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (!(b[mid].count >= rank))
			lo = mid + 1;
		else
			hi = mid;
	}
	size_t bi = lo;
	if (bi == n - 1)
		return b[n - 2].upper;
	if (bi == 0 && b[0].upper <= 0)
		return b[0].upper;
	double start = 0, end = b[bi].upper, count = b[bi].count;
	if (bi > 0) {
		start = b[bi - 1].upper;
		count -= b[bi - 1].count;
		rank -= b[bi - 1].count;
	}
	return start + (end - start) * (rank / count);
}

static void eval_histogram_quantile(ev_t *ev, const promql_expr_t *e, val_t *out)
{
	double *q = scalar_arg(ev, e->u.call.args[0]);
	val_t in;
	eval_expr(ev, e->u.call.args[1], &in);
	size_t ns = ev->nsteps;
	hmap_t *gm = ev_hmap(ev, 16);
	size_t *grp = ev_alloc(ev, (in.n + 1) * sizeof(size_t));
	double *upper = ev_alloc(ev, (in.n + 1) * sizeof(double));
	labels_t *gl = ev_alloc(ev, (in.n + 1) * sizeof(labels_t));
	size_t ng = 0;
	static const str_t drop[] = {{"le", 2}};
	for (size_t s = 0; s < in.n; s++) {
		bool found;
		str_t le = labels_get(&in.s[s].ls, STR("le"), &found);
		if (!found || !str_to_double(le, &upper[s])) {
			grp[s] = (size_t)-1;
			continue;
		}
		/* Grouped by all labels but le (so __name__ still separates histograms); the output drops
		 * __name__ too, which makes two same-labelled histograms a duplicate-labelset error. */
		labels_t g = in.s[s].ls;
		labels_t g2 = {ev_alloc(ev, (g.n + 1) * sizeof(label_t)), 0};
		for (size_t j = 0; j < g.n; j++)
			if (!str_eq(g.v[j].name, drop[0]))
				g2.v[g2.n++] = g.v[j];
		bool f2;
		void **slot = hmap_slot(gm, lb_key(ev, g2), &f2);
		if (!f2) {
			*slot = (void *)(uintptr_t)(ng + 1);
			gl[ng++] = lb_drop_name(ev, g2);
		}
		grp[s] = (size_t)(uintptr_t)*slot - 1;
	}
	hmap_release(gm);
	bucket_t *bk = ev_alloc(ev, (in.n + 1) * sizeof(bucket_t));
	bucket_t *sorted = ev_alloc(ev, (in.n + 1) * sizeof(bucket_t));
	double *up = ev_alloc(ev, (in.n + 1) * sizeof(double));
	size_t *ix = ev_alloc(ev, (in.n + 1) * sizeof(size_t));
	size_t *gcount = ev_alloc(ev, (ng + 1) * sizeof(size_t));
	size_t *gstart = ev_alloc(ev, (ng + 2) * sizeof(size_t));
	size_t *gfill = ev_alloc(ev, (ng + 1) * sizeof(size_t));
	size_t *oidx = ev_alloc(ev, (ng + 1) * sizeof(size_t));
	for (size_t g = 0; g < ng; g++)
		oidx[g] = (size_t)-1;
	obuild_t *ob = ob_new(ev);
	for (size_t i = 0; i < ns; i++) {
		memset(gcount, 0, (ng + 1) * sizeof(size_t));
		for (size_t s = 0; s < in.n; s++)
			if (grp[s] != (size_t)-1 && in.s[s].ok[i])
				gcount[grp[s]]++;
		gstart[0] = 0;
		for (size_t g = 0; g < ng; g++) {
			gstart[g + 1] = gstart[g] + gcount[g];
			gfill[g] = gstart[g];
		}
		for (size_t s = 0; s < in.n; s++)
			if (grp[s] != (size_t)-1 && in.s[s].ok[i])
				bk[gfill[grp[s]]++] = (bucket_t){upper[s], in.s[s].v[i]};
		for (size_t g = 0; g < ng; g++) {
			if (!gcount[g])
				continue;
			if (oidx[g] == (size_t)-1)
				oidx[g] = ob_get(ev, ob, gl[g]);
			ob_set(ev, ob, oidx[g], i, bucket_quantile(q[i], bk + gstart[g], gcount[g], up, ix, sorted));
		}
	}
	ob_finish(ev, ob, out);
}

/* Go regexp.Expand of template against src with PCRE2 ovector, appended to b; with b NULL only the
 * length of the result is added to *len (checked against the budget before anything is built). */
static void expand(buf_t *b, size_t *len, str_t tmpl, str_t src, const PCRE2_SIZE *ov, int ngroups,
		   const pcre2_code *code)
{
#define EMIT(p, n) (b ? buf_append(b, (p), (n)) : (void)(*len += (n)))
#define EMIT_C(c) (b ? buf_putc(b, (c)) : (void)(*len += 1))
	for (size_t i = 0; i < tmpl.n; i++) {
		char c = tmpl.p[i];
		if (c != '$' || i + 1 >= tmpl.n) {
			EMIT_C(c);
			continue;
		}
		if (tmpl.p[i + 1] == '$') {
			EMIT_C('$');
			i++;
			continue;
		}
		size_t j = i + 1;
		str_t name;
		bool brace = tmpl.p[j] == '{';
		if (brace) {
			size_t k = j + 1;
			while (k < tmpl.n && (isalnum((unsigned char)tmpl.p[k]) || tmpl.p[k] == '_'))
				k++;
			if (k >= tmpl.n || tmpl.p[k] != '}' || k == j + 1) {
				EMIT_C(c);
				continue;
			}
			name = (str_t){tmpl.p + j + 1, k - j - 1};
			i = k;
		} else {
			size_t k = j;
			while (k < tmpl.n && (isalnum((unsigned char)tmpl.p[k]) || tmpl.p[k] == '_'))
				k++;
			if (k == j) {
				EMIT_C(c);
				continue;
			}
			name = (str_t){tmpl.p + j, k - j};
			i = k - 1;
		}
		int64_t num;
		int gi = -1;
		bool isnum = true;
		for (size_t k = 0; k < name.n; k++)
			if (!isdigit((unsigned char)name.p[k]))
				isnum = false;
		if (isnum) {
			if (name.n < 10 && str_to_i64(name, &num) && num < ngroups)
				gi = (int)num;
		} else {
			char nb[128];
			if (name.n < sizeof nb) {
				memcpy(nb, name.p, name.n);
				nb[name.n] = 0;
				int r = pcre2_substring_number_from_name(code, (PCRE2_SPTR)nb);
				if (r >= 0 && r < ngroups)
					gi = r;
			}
		}
		if (gi >= 0 && ov[2 * gi] != PCRE2_UNSET)
			EMIT(src.p + ov[2 * gi], ov[2 * gi + 1] - ov[2 * gi]);
	}
#undef EMIT
#undef EMIT_C
}

static void re_cleanup(void *arg)
{
	pcre2_code_free(arg);
}

/* src's points into ob under labels ls (ls enters ob only when src has a point). */
static void ob_copy_points(ev_t *ev, obuild_t *ob, labels_t ls, const vseries_t *src)
{
	size_t idx = (size_t)-1;
	for (size_t i = 0; i < ev->nsteps; i++) {
		if (!src->ok[i])
			continue;
		if (idx == (size_t)-1)
			idx = ob_get(ev, ob, ls);
		ob_set(ev, ob, idx, i, src->v[i]);
	}
}

static void eval_label_replace(ev_t *ev, const promql_expr_t *e, val_t *out)
{
	val_t in, dst, repl, src, rx;
	eval_expr(ev, e->u.call.args[1], &dst);
	eval_expr(ev, e->u.call.args[2], &repl);
	eval_expr(ev, e->u.call.args[3], &src);
	eval_expr(ev, e->u.call.args[4], &rx);
	matcher_t m;
	err_t merr = {0};
	if (matcher_init(&m, MATCH_RE, STR("x"), rx.str, &merr)) {
		ev->scr->error_type = "execution";
		ev_fail(ev, ERR_INVALID, "invalid regular expression in label_replace(): %.*s", STR_ARG(rx.str));
	}
	matcher_release(&m);
	buf_t pat;
	buf_init(&pat);
	buf_puts(&pat, "^(?:");
	buf_append_str(&pat, rx.str);
	buf_puts(&pat, ")$");
	int ecode;
	PCRE2_SIZE eoff;
	pcre2_code *code = pcre2_compile((PCRE2_SPTR)pat.p, pat.n, PCRE2_DOLLAR_ENDONLY | PCRE2_UTF | PCRE2_MATCH_INVALID_UTF, &ecode, &eoff, NULL);
	buf_release(&pat);
	if (!code) {
		ev->scr->error_type = "execution";
		ev_fail(ev, ERR_INVALID, "invalid regular expression in label_replace(): %.*s", STR_ARG(rx.str));
	}
	arena_on_release(ev->a, re_cleanup, code);
	if (!label_name_valid(dst.str)) {
		ev->scr->error_type = "execution";
		ev_fail(ev, ERR_INVALID, "invalid destination label name in label_replace(): %.*s", STR_ARG(dst.str));
	}
	eval_expr(ev, e->u.call.args[0], &in);
	pcre2_match_data *md = pcre2_match_data_create_from_pattern(code, NULL);
	arena_on_release(ev->a, (void (*)(void *))pcre2_match_data_free, md);
	uint32_t ncap = 0;
	pcre2_pattern_info(code, PCRE2_INFO_CAPTURECOUNT, &ncap);
	obuild_t *ob = ob_new(ev);
	for (size_t s = 0; s < in.n; s++) {
		bool found;
		str_t sv = labels_get(&in.s[s].ls, src.str, &found);
		labels_t ol = in.s[s].ls;
		int rc = pcre2_match(code, (PCRE2_SPTR)(sv.n ? sv.p : ""), sv.n, 0, 0, md, NULL);
		if (rc >= 0) {
			const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
			size_t len = 0;
			expand(NULL, &len, repl.str, sv, ov, (int)ncap + 1, code);
			char *p = ev_alloc(ev, len + 1); /* a huge value fails here, before it is built */
			buf_t b;
			buf_init(&b);
			expand(&b, NULL, repl.str, sv, ov, (int)ncap + 1, code);
			memcpy(p, b.p, b.n);
			buf_release(&b);
			ol = lb_set(ev, ol, dst.str, (str_t){p, len});
		}
		ob_copy_points(ev, ob, ol, &in.s[s]);
	}
	ob_finish(ev, ob, out);
}

static void eval_label_join(ev_t *ev, const promql_expr_t *e, val_t *out)
{
	val_t in, dst, sep;
	eval_expr(ev, e->u.call.args[1], &dst);
	eval_expr(ev, e->u.call.args[2], &sep);
	size_t nsrc = e->u.call.nargs - 3;
	str_t *srcs = ev_alloc(ev, (nsrc + 1) * sizeof(str_t));
	for (size_t k = 0; k < nsrc; k++) {
		val_t sv;
		eval_expr(ev, e->u.call.args[3 + k], &sv);
		srcs[k] = sv.str;
		if (!label_name_valid(srcs[k])) {
			ev->scr->error_type = "execution";
			ev_fail(ev, ERR_INVALID, "invalid source label name in label_join(): %.*s", STR_ARG(srcs[k]));
		}
	}
	if (!label_name_valid(dst.str)) {
		ev->scr->error_type = "execution";
		ev_fail(ev, ERR_INVALID, "invalid destination label name in label_join(): %.*s", STR_ARG(dst.str));
	}
	eval_expr(ev, e->u.call.args[0], &in);
	obuild_t *ob = ob_new(ev);
	for (size_t s = 0; s < in.n; s++) {
		size_t len = 0;
		for (size_t k = 0; k < nsrc; k++) {
			bool found;
			len += (k ? sep.str.n : 0) + labels_get(&in.s[s].ls, srcs[k], &found).n;
		}
		char *p = ev_alloc(ev, len + 1); /* checked before it is built */
		str_t res = {p, len};
		for (size_t k = 0; k < nsrc; k++) {
			bool found;
			str_t v = labels_get(&in.s[s].ls, srcs[k], &found);
			if (k) {
				memcpy(p, sep.str.p, sep.str.n);
				p += sep.str.n;
			}
			memcpy(p, v.p, v.n);
			p += v.n;
		}
		labels_t ol = lb_set(ev, in.s[s].ls, dst.str, res);
		ob_copy_points(ev, ob, ol, &in.s[s]);
	}
	ob_finish(ev, ob, out);
}

void eval_call(ev_t *ev, const promql_expr_t *e, val_t *out)
{
	const char *name = e->u.call.func->name;
	size_t ns = ev->nsteps;
	for (size_t k = 0; k < ARRAY_LEN(range_funcs); k++)
		if (!strcmp(name, range_funcs[k].name)) {
			eval_range_func(ev, e, range_funcs[k].k, out);
			return;
		}
	for (size_t k = 0; k < ARRAY_LEN(elem_funcs); k++)
		if (!strcmp(name, elem_funcs[k].name)) {
			eval_elem(ev, e, elem_funcs[k].f, out);
			return;
		}
	if (!strcmp(name, "time") || !strcmp(name, "pi")) {
		out->type = PROMQL_TYPE_SCALAR;
		out->sc = ev_alloc(ev, (ns + 1) * sizeof(double));
		for (size_t i = 0; i < ns; i++)
			out->sc[i] = name[0] == 't' ? (double)ev_ts(ev, i) / 1000 : M_PI;
		return;
	}
	if (!strcmp(name, "vector")) {
		double *sc = scalar_arg(ev, e->u.call.args[0]);
		obuild_t *ob = ob_new(ev);
		size_t idx = ob_get(ev, ob, (labels_t){NULL, 0});
		for (size_t i = 0; i < ns; i++)
			ob_set(ev, ob, idx, i, sc[i]);
		ob_finish(ev, ob, out);
		return;
	}
	if (!strcmp(name, "scalar")) {
		val_t in;
		eval_expr(ev, e->u.call.args[0], &in);
		out->type = PROMQL_TYPE_SCALAR;
		out->sc = ev_alloc(ev, (ns + 1) * sizeof(double));
		for (size_t i = 0; i < ns; i++) {
			size_t cnt = 0;
			double v = NAN;
			for (size_t s = 0; s < in.n; s++)
				if (in.s[s].ok[i]) {
					cnt++;
					v = in.s[s].v[i];
				}
			out->sc[i] = cnt == 1 ? v : NAN;
		}
		return;
	}
	if (!strcmp(name, "absent")) {
		val_t in;
		eval_expr(ev, e->u.call.args[0], &in);
		labels_t ls = absent_labels(ev, e->u.call.args[0]);
		obuild_t *ob = ob_new(ev);
		size_t idx = (size_t)-1;
		for (size_t i = 0; i < ns; i++) {
			bool any = false;
			for (size_t s = 0; s < in.n && !any; s++)
				any = in.s[s].ok[i];
			if (any)
				continue;
			if (idx == (size_t)-1)
				idx = ob_get(ev, ob, ls);
			ob_set(ev, ob, idx, i, 1);
		}
		ob_finish(ev, ob, out);
		return;
	}
	if (!strcmp(name, "sort") || !strcmp(name, "sort_desc")) {
		eval_expr(ev, e->u.call.args[0], out);
		if (ns != 1 || out->n < 2)
			return;
		/* 2.42 sorts the step's vector with Go's sort.Sort, reversing vectorByReverseValueHeap's order
		 * (sort) or vectorByValueHeap's (sort_desc): NaN last, ties where Go leaves them */
		double *vals = ev_alloc(ev, out->n * sizeof(double));
		size_t *it = ev_alloc(ev, out->n * sizeof(size_t));
		size_t n = 0;
		for (size_t s = 0; s < out->n; s++)
			if (out->s[s].ok[0]) {
				vals[n] = out->s[s].v[0];
				it[n++] = s;
			}
		gosort_sort(vals, it, n, gosort_reverse(name[4] ? GOSORT_VALUE_HEAP : GOSORT_REVERSE_VALUE_HEAP));
		vseries_t *ns2 = ev_alloc(ev, (n + 1) * sizeof(vseries_t));
		for (size_t k = 0; k < n; k++)
			ns2[k] = out->s[it[k]];
		out->s = ns2;
		out->n = n;
		return;
	}
	if (!strcmp(name, "histogram_quantile")) {
		eval_histogram_quantile(ev, e, out);
		return;
	}
	if (!strcmp(name, "label_replace")) {
		eval_label_replace(ev, e, out);
		return;
	}
	if (!strcmp(name, "label_join")) {
		eval_label_join(ev, e, out);
		return;
	}
	if (!strcmp(name, "histogram_count") || !strcmp(name, "histogram_sum") || !strcmp(name, "histogram_fraction")) {
		/* Only native histograms have these; float samples yield nothing. Evaluate args for errors. */
		for (size_t k = 0; k < e->u.call.nargs; k++) {
			val_t tmp;
			eval_expr(ev, e->u.call.args[k], &tmp);
		}
		out->type = PROMQL_TYPE_VECTOR;
		out->n = 0;
		return;
	}
	ev->scr->error_type = "internal";
	ev_fail(ev, ERR_INTERNAL, "function %s not implemented", name);
}
