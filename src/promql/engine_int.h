/*
 * engine_int.h — internals shared by engine.c and functions.c (not a public interface).
 *
 * Values during evaluation: scalars are per-step arrays; instant vectors are lists of series, each
 * with a dense per-step value array and presence flags; range vectors appear only as function
 * arguments (streamed) or as a top-level instant result. Runtime errors longjmp back to the query
 * entry point; every allocation is in the query arena, so nothing leaks on that path.
 */
#ifndef STRATA_PROMQL_ENGINE_INT_H
#define STRATA_PROMQL_ENGINE_INT_H

#include <math.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <string.h>

#include "base/hmap.h"
#include "promql/engine.h"

typedef struct rk_out {
	size_t npts;    /* steps with a value */
	size_t maxwin;  /* largest window */
	size_t lastwin; /* window at the last step */
	bool stopped;   /* the kernel gave up early (ev_stop_requested): its output is incomplete */
} rk_out_t;

/* Per-step point counts of the arguments of the node being evaluated (see eval_expr). */
typedef struct argrec {
	int depth;
	const int64_t *cnt[8];
	size_t n;
} argrec_t;

typedef struct vseries {
	labels_t ls;
	double *v;
	uint8_t *ok;
} vseries_t;

/* A series of raw samples (range vector member). */
typedef struct rseries {
	labels_t ls;
	int64_t *t;
	double *v;
	size_t n;
} rseries_t;

typedef struct val {
	promql_type_t type;
	double *sc;   /* SCALAR: per step */
	vseries_t *s; /* VECTOR */
	size_t n;
	str_t str;     /* STRING */
	rseries_t *rs; /* MATRIX (top-level only) */
	size_t nrs;
} val_t;

/* Samples read, as 2.42's query stats count them (totalQueryableSamples; see promql_result_t). A
 * sub-evaluator whose reads 2.42 counts separately (a step-invariant part, a top-level subquery) gets
 * its own, totals only; one whose reads it drops (a subquery argument of a function) gets none. */
typedef struct qstats {
	int64_t total;
	int64_t *per_step; /* the evaluator's steps, or NULL: totals only */
} qstats_t;

typedef struct ev {
	arena_t *a;
	queryable_t *q;
	const promql_opts_t *o;
	int64_t start, end, step; /* this evaluator's range */
	size_t nsteps;
	int64_t qstart, qend; /* top-level query range for @ start()/end() */
	int64_t lookback, max_samples, deadline_ms;
	int64_t cur_samples, peak_samples;
	uint64_t checks;
	uint64_t work;           /* units of work since the clock was last read (ev_check_work) */
	int depth;               /* eval_expr nesting */
	argrec_t *argrec;        /* argument recorder of the rangeEval-like node being evaluated */
	const imap_t *invariant; /* step-invariant subexpressions (node address -> 1), as 2.42 wraps them */
	qstats_t *qs;            /* samples read; NULL = not counted */
	bool at_shift;           /* evaluating predict_linear's range argument (see ref_times) */
	err_t *err;
	jmp_buf *jmp;
	struct ev_scratch *scr; /* shared with sub-evaluators; heap arrays freed by an arena hook */
} ev_t;

/* State shared by a query's evaluator and its subquery evaluators (which are copies). */
typedef struct ev_scratch {
	int64_t *t;
	double *v;
	size_t cap;
	int rc;
	const char *error_type;
	series_set_t *open_set;
	arena_t *open_arena;   /* the open set's own arena (released once it is closed) */
	arena_budget_t budget; /* the query's memory: every arena it allocates from, and heap scratch */
	struct bframe *frames; /* binary operators being evaluated, innermost first (eval_binary_tree) */
	size_t open_charge;    /* bytes a select started ahead allocated before it was taken: charged */
	struct prefetch **pf;  /* selects started ahead (engine.c, opts.select_ahead), in evaluation order */
	size_t npf, pf_next;   /* how many; the next to start */
	size_t pf_running;     /* started and not yet taken or dropped */
} ev_scratch_t;

_Noreturn void ev_fail(ev_t *ev, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
_Noreturn void ev_fail_err(ev_t *ev, int code); /* err already filled */
void ev_check(ev_t *ev); /* deadline / cancellation (the clock is read at every 64th call) */
void ev_check_clock(ev_t *ev, bool read_clock);
/* Work-based check for loops whose iterations cost very different amounts (a step of a range function
 * over a 30m:1ms subquery window sorts 1.8M points): add the units just done (window samples, steps,
 * series points); the cancel flag and the clock are read once per EV_POLL_WORK units. */
#define EV_POLL_WORK 65536
static inline void ev_check_work(ev_t *ev, size_t units)
{
	ev->work += units;
	if (ev->work >= EV_POLL_WORK) {
		ev->work = 0;
		ev_check_clock(ev, true);
	}
}
/* Whether the query is cancelled or past its deadline. Reads only what is fixed for the query's life,
 * so worker threads may poll it; a kernel that stops marks rk_out_t.stopped and the evaluating thread
 * then fails with the timeout/cancel error (ev_check_clock). */
bool ev_stop_requested(const ev_t *ev);
/* Query memory: from ev->a, counted against the query's budget; past it the query fails with the
 * "execution" memory-budget error (never a fatal allocation failure). */
void *ev_alloc(ev_t *ev, size_t n);
void *ev_zalloc(ev_t *ev, size_t n);
/* Hash maps released with ev->a (so a query failing while it fills one leaks nothing); release early
 * with hmap_release/imap_release when done (idempotent). */
hmap_t *ev_hmap(ev_t *ev, size_t expected);
imap_t *ev_imap(ev_t *ev, size_t expected);
/* n * size bytes, the product checked for overflow (a failure like any over-budget allocation). */
void *ev_alloc_array(ev_t *ev, size_t n, size_t size);
size_t ev_array_bytes(ev_t *ev, size_t n, size_t size); /* n * size, or the memory error on overflow */
/* Heap memory the query holds outside its arenas (decode buffers, batch arrays): counted against the
 * budget before it is allocated (ev_charge fails the query past it), given back with ev_uncharge. */
void ev_charge(ev_t *ev, size_t bytes);
/* An evaluator of nsteps steps: every series it holds needs nsteps * 9 bytes at least. Fails the query
 * up front when one series could not fit the budget (a subquery of a billion steps). */
void ev_check_steps(ev_t *ev, size_t nsteps);
void ev_uncharge(arena_budget_t *b, size_t bytes);
/* Fail the query with the memory-budget error. */
_Noreturn void ev_fail_memory(ev_t *ev);
/* Growth of an arena array of elements of size sz holding n of *cap: returns a new array of twice
 * *cap (16 when 0) with the n elements copied, and sets *cap. The old array stays in the arena. */
void *ev_grow(ev_t *ev, const void *v, size_t n, size_t *cap, size_t sz);
/* Samples "in memory" as Prometheus 2.42's engine counts them (currentSamples; --query.max-samples is
 * checked against it and its peak is reported):
 *  - an instant selector adds its points; a number literal (or any scalar) one point per step;
 *  - a range-vector function adds, per input series, its window while evaluating it, then its output
 *    points (acct_series); a subquery argument's points stay counted until the function is done;
 *  - every other node (operators, aggregations, other functions) is 2.42's rangeEval: its arguments
 *    stay counted, each step adds that step's input points again plus the outputs so far, and when it
 *    is done only its own output remains (acct_range_eval);
 *  - a step-invariant subexpression is evaluated once and then copied to every step. */
void ev_add_samples(ev_t *ev, int64_t n);
/* n samples read at step `step` (ev->qs must be set). */
static inline void qs_add(ev_t *ev, size_t step, int64_t n)
{
	ev->qs->total += n;
	if (ev->qs->per_step)
		ev->qs->per_step[step] += n;
}
void acct_set(ev_t *ev, int64_t cur); /* cur becomes the count (peak and limit checked) */
void acct_series(ev_t *ev, const rk_out_t *ro);
void argrec_add(ev_t *ev, argrec_t *r, const int64_t *cnt);
static inline int64_t ev_ts(const ev_t *ev, size_t i)
{
	return ev->start + (int64_t)i * ev->step;
}

/* Output builder: series keyed by label set, each with dense per-step values. */
typedef struct obuild {
	hmap_t map;
	vseries_t *s;
	size_t n, cap;
} obuild_t;

obuild_t *ob_new(ev_t *ev);
size_t ob_get(ev_t *ev, obuild_t *ob, labels_t ls); /* ls must live in the arena */
/* ob_get without value arrays for a new series: the caller sets its v and ok before ob_finish. */
size_t ob_get_bare(ev_t *ev, obuild_t *ob, labels_t ls);
/* A new series; an existing equal label set is the "same labelset" execution error (2.42 checks the
 * whole matrix of a range-vector function or unary minus, not step by step). */
size_t ob_get_unique(ev_t *ev, obuild_t *ob, labels_t ls);
void ob_set(ev_t *ev, obuild_t *ob, size_t idx, size_t step, double v);
void ob_finish(ev_t *ev, obuild_t *ob, val_t *out);

/* Labels helpers (results in the arena). ev_labels_copy: labels_copy into ev->a within the budget. */
labels_t ev_labels_copy(ev_t *ev, const labels_t *ls);
labels_t lb_drop_name(ev_t *ev, labels_t ls);
labels_t lb_set(ev_t *ev, labels_t ls, str_t name, str_t value); /* empty value deletes */
str_t lb_key(ev_t *ev, labels_t ls);

/* Selector plumbing (engine.c). */
const promql_expr_t *expr_unparen(const promql_expr_t *e);
bool ev_at_time(const ev_t *ev, const promql_mods_t *m, int64_t *at); /* false without @ */
void ev_ref_times(ev_t *ev, const promql_mods_t *m, int64_t *ref);    /* window end per step */
/* Matrix selector m (unparenthesised): sets *range, the per-step window ends ref[] and the
 * [*mint, *maxt] to select for all windows (with @ under at_shift only around T, as 2.42 does).
 * Returns false when the query has no steps: nothing to select, mint/maxt unset. */
bool ev_matrix_window(ev_t *ev, const promql_expr_t *m, int64_t *range, int64_t *ref, int64_t *mint,
                      int64_t *maxt);
series_set_t *ev_select(ev_t *ev, const promql_expr_t *vs, int64_t mint, int64_t maxt, int64_t range,
                        const char *func);
void ev_close_set(ev_t *ev, series_set_t *set);
/* The current series' samples in [mint, maxt] into ev->scr->t/v (valid until the next call). */
size_t ev_load_samples(ev_t *ev, series_set_t *set, int64_t mint, int64_t maxt, bool drop_stale);

void eval_expr(ev_t *ev, const promql_expr_t *e, val_t *out);
void eval_call(ev_t *ev, const promql_expr_t *e, val_t *out);

/* Range-vector argument streaming: calls fn for every series of the matrix expression m (a matrix
 * selector or a subquery), with its samples (stale markers removed) and per-step window reference
 * times ref[i] (window = [ref[i] - range, ref[i]]). */
typedef void (*range_series_fn)(ev_t *ev, void *ctx, const labels_t *ls, const int64_t *t, const double *v,
                                size_t n);
void eval_range_arg(ev_t *ev, const promql_expr_t *m, const char *func, range_series_fn fn, void *ctx,
                    int64_t *range, int64_t *ref);
void eval_vector_selector_ts(ev_t *ev, const promql_expr_t *vs,
                             val_t *out); /* values = sample timestamps (s) */

/* Batched (and, with opts->workers, parallel) evaluation of a range function over a matrix selector.
 * The kernel computes one series' per-step outputs from its samples (stale markers removed); it runs
 * on worker threads, so it must only read kctx and write out/ok (never ev); *ro says how many steps got
 * a value and the window sizes (for sample accounting).
 * The sink is then called on the evaluating thread in series order for series with npts > 0. */
typedef void (*range_kernel_fn)(const void *kctx, const int64_t *t, const double *v, size_t n, double *out,
                                uint8_t *ok, rk_out_t *ro);
typedef void (*range_sink_fn)(ev_t *ev, void *sctx, const labels_t *ls, const double *v, const uint8_t *ok,
                              size_t npts);
/* Instant selector e into sink (series with a point, in storage order); ts_mode: values are the
 * samples' timestamps in seconds (timestamp()). */
void eval_vs_into(ev_t *ev, const promql_expr_t *e, bool ts_mode, const char *func, range_sink_fn sink,
                  void *sctx);
/* A sink collecting into a vector (sctx: vs_collect_t, zero-initialised). */
typedef struct vs_collect {
	vseries_t *arr;
	size_t n, cap;
} vs_collect_t;
void vs_collect_sink(ev_t *ev, void *sctx, const labels_t *ls, const double *v, const uint8_t *ok,
                     size_t npts);
/* How a range function reads downsampled series (with aggregate chunks, decoded through
 * promql_opts_t.decode_aggr_chunks); NULL or zero: like raw series. */
typedef struct rb_aggr {
	range_kernel_fn kfn; /* the kernel for such series (NULL: the raw one) */
	bool count_weights;  /* the count view decoded with count weights (count_over_time sums them) */
	/* keep the series' last two points before the selected range too (the kernel sees them before the
	 * first window's samples): rate/increase read the counter at the range start from the last one */
	bool lead;
} rb_aggr_t;
void eval_range_batched(ev_t *ev, const promql_expr_t *ms, const char *func, range_kernel_fn kfn,
                        const rb_aggr_t *aggr, const void *kctx, range_sink_fn sink, void *sctx,
                        int64_t *range, int64_t *ref);
/* If call is a range function that the batched path can evaluate (thread-safe kernel, plain matrix
 * selector argument; with need_unique_names also one that cannot produce two equal output label sets),
 * evaluate it into sink and return true; otherwise return false without doing anything. */
bool range_call_streamable(const promql_expr_t *call, bool need_unique_names);
bool is_range_function(const promql_expr_t *call); /* a call taking a range vector */
bool eval_range_call_streamed(ev_t *ev, const promql_expr_t *call, bool need_unique_names, range_sink_fn sink,
                              void *sctx);

/* Prometheus's staleness marker (inline: checked for every decoded sample). */
#define STALE_NAN_BITS 0x7ff0000000000002ull
/* Moves [*lo, *hi) of t[0..n) to step i's range window [ref[i] - range, ref[i]] (both ends closed, as
 * Prometheus 2.42 selects); a step before the previous one (@ modifiers) scans again from the start. */
static inline void range_window(const int64_t *t, size_t n, const int64_t *ref, size_t i, int64_t range,
                                size_t *lo, size_t *hi)
{
	if (i > 0 && ref[i] < ref[i - 1])
		*lo = *hi = 0;
	while (*hi < n && t[*hi] <= ref[i])
		(*hi)++;
	while (*lo < *hi && t[*lo] < ref[i] - range)
		(*lo)++;
}

static inline bool value_is_stale(double v)
{
	uint64_t b;
	memcpy(&b, &v, 8);
	return b == STALE_NAN_BITS;
}
double go_max(double a, double b);
double go_min(double a, double b);
/* Kahan-Babuska step, as Prometheus's kahanSumInc (inline: it is the inner loop of *_over_time). */
static inline void kahan_inc(double inc, double *sum, double *c)
{
	double t = *sum + inc;
	if (fabs(*sum) >= fabs(inc))
		*c += (*sum - t) + inc;
	else
		*c += (inc - t) + *sum;
	*sum = t;
}
/* The range kernels' vector code (deriv, predict_linear, *_over_time): -1 detect on first use, or one of
 * PROMQL_SIMD_* (tests set it to run each variant); promql_simd() reads it, detecting when -1. */
enum { PROMQL_SIMD_BASE, PROMQL_SIMD_AVX2, PROMQL_SIMD_AVX512 };
extern atomic_int promql_simd_level;
int promql_simd(void);
double quantile_sorted(double q, double *vals, size_t n); /* sorts vals as 2.42 does (Go sort, NaN low) */

#endif
