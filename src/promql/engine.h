/*
 * engine.h — PromQL evaluation (Prometheus 2.42 semantics) over any queryable_t.
 *
 * A query is evaluated step by step over a range [start, end] with a step (an instant query is
 * start == end, step 0). Intermediate instant vectors are dense per-step arrays allocated in the
 * query arena. Selectors are evaluated in batches of series (batch.c): chunks are decoded and range
 * functions / lookback computed per series on the worker pool (opts.workers, opts.decode_chunks), one
 * decoded series at a time per thread with a sliding window over it; accumulating aggregations of a
 * range function or selector (sum(rate(x[5m])), count by (job) (x), ...) are fed series by series and
 * never hold their input. Step-invariant parts (every selector pinned with @) are evaluated once.
 * Results are bit-identical to a sequential evaluation (series are combined in storage order).
 * Everything a query allocates lives in the arena the caller passes in (results point into it), except
 * the batch scratch (at most ~256 series: their chunk copies up to 16 MiB, 2 M output cells, one
 * decode buffer per task), which is heap memory freed with the arena and counted in max_memory.
 *
 * Statistics: samples_peak always; with opts.stats also the samples read, counted like 2.42 does
 * (promql_result_t.samples_total), which costs a sweep over each series' windows on the workers.
 * Limits: max_samples (Prometheus's wording when exceeded; samples counted exactly as 2.42 counts
 * them, so the same queries fail, and samples_peak equals its stats=all peakSamples), a deadline
 * checked during evaluation, an optional cancel flag polled at the same points, and a memory budget
 * (max_memory) that every allocation whose size comes from the query (steps x series, subquery
 * resolution, samples in the range, label values) is checked against before it is made, so a hostile
 * query fails with an error instead of exhausting memory. Long binary operator chains are evaluated
 * without recursion and release their intermediate results (evaluation depth does not grow with
 * them). On error the return value is negative and err/res->error_type say what happened
 * ("bad_data" for parse errors, "execution", "timeout", "canceled", "internal").
 * Thread-safety: a query runs on the calling thread (with opts.workers, batches of series also on that
 * pool; with opts.select_ahead, selects on a pool of the engine's); distinct queries may run concurrently.
 */
#ifndef STRATA_PROMQL_ENGINE_H
#define STRATA_PROMQL_ENGINE_H

#include <stdint.h>

#include "base/arena.h"
#include "base/err.h"
#include "base/workers.h"
#include "model/series.h"
#include "promql/ast.h"

#define PROMQL_DEFAULT_LOOKBACK_MS (5 * 60 * 1000)
#define PROMQL_DEFAULT_MAX_SAMPLES 50000000
#define PROMQL_DEFAULT_SUBQUERY_STEP_MS (60 * 1000)
/* --query.max-concurrent-select: selects of one query running at once, the one being evaluated and
 * promql_opts_t.select_ahead = this - 1 started ahead. 1, where Thanos's default is 4: on the loopback
 * dashboard bench 4 was no faster and the querier's peak RSS rose by ~3 MiB in 2 of 8 runs, past issue
 * 24's floor once (bench/README.md, "selects ahead"); 4 pays off with stores across a network. */
#define PROMQL_DEFAULT_MAX_CONCURRENT_SELECT 1

typedef struct promql_opts {
	int64_t lookback_ms;     /* 0 = 5m */
	int64_t max_samples;     /* 0 = 50,000,000 */
	int64_t timeout_ms;      /* 0 = no deadline */
	/* Memory budget of the query: everything it holds at once (intermediate vectors, labels, decode and
	 * batch buffers); past it the query fails with an "execution" error. 0 = a quarter of the
	 * machine's physical memory (promql_default_max_memory). */
	size_t max_memory;
	/* Optional: the budget of every query the process runs at once, which this query's memory also
	 * counts against (past it the query fails with the same "execution" error). */
	arena_budget_pool_t *memory_pool;
	int64_t subquery_step_ms; /* default subquery resolution, 0 = 1m */
	const volatile int *cancel; /* non-zero = cancel as soon as possible; may be NULL */
	/* Pool for parallel decoding and evaluation of independent series; NULL = calling thread only.
	 * promql_query must then be called from outside the pool (workers_parallel_for's rule). */
	workers_t *workers;
	/* Optional: decode one series' encoded chunks (as a series set's chunks() returns them) into
	 * t/v, keeping samples in [mint, maxt]; t/v/cap are a growable heap buffer the engine owns
	 * (grow with xreallocarray). Returns the sample count or <0 with err filled. Must be
	 * thread-safe: with it, worker threads decode series in parallel; without it, the evaluating
	 * thread decodes through the series set's sample iterator. */
	int64_t (*decode_chunks)(const chunk_t *chks, size_t n, int64_t mint, int64_t maxt, int64_t **t, double **v,
				 size_t *cap, err_t *err);
	/* Optional, with decode_chunks: the same for a series whose chunks include downsampled aggregate
	 * chunks (CHUNK_ENC_AGGR, beside raw ones), read through the aggregate view that func (the
	 * selector's enclosing function, as the select hints name it) reads, the view a store would use
	 * for its sample iterator. count_weights (count_over_time): the count view's samples are weights,
	 * one per window point with the window's count as value and 1 per raw sample (stale markers stay
	 * markers), which the engine sums instead of counting samples; the true count without expanding
	 * a window's count into that many samples. Without it such series are decoded through the series
	 * set's sample iterator on the evaluating thread. */
	int64_t (*decode_aggr_chunks)(const chunk_t *chks, size_t n, int64_t mint, int64_t maxt,
	                              const char *func, bool count_weights, int64_t **t, double **v,
	                              size_t *cap, err_t *err);
	/* Count the samples the query reads as Prometheus 2.42's stats do (totalQueryableSamples):
	 * PROMQL_STATS_TOTAL the total, PROMQL_STATS_PER_STEP also per step (stats=all with 2.42's
	 * promql-per-step-stats). 0 = not counted (no cost). */
	int stats;
	/* Selects started ahead (Prometheus's populateSeries, Thanos's asynchronous Select): the selectors
	 * after the first (in evaluation order, outside subqueries, without @) have their select() called on
	 * a pool of the engine's own (not workers: these wait on stores), at most this many of the query at
	 * once, so the stores work on the next selector's
	 * series while the current one is read and evaluated. Each is the very select() the evaluation would
	 * make (same arguments; a selector evaluated differently than predicted is selected again and the
	 * early one closed), so results, warnings and errors are the same; a select still queued when the
	 * evaluation reaches it is run inline. What a started select allocates counts against memory_pool
	 * at once and against max_memory when the evaluation takes it. The queryable's select() must be
	 * thread-safe. 0 = every select when its selector is evaluated. */
	int select_ahead;
} promql_opts_t;

enum { PROMQL_STATS_NONE = 0, PROMQL_STATS_TOTAL = 1, PROMQL_STATS_PER_STEP = 2 };

/* A result series; t and v are read-only (in a matrix, series with a point at every step share t). */
typedef struct promql_series {
	labels_t ls;
	int64_t *t; /* ms */
	double *v;
	size_t n;
} promql_series_t;

typedef struct promql_result {
	promql_type_t type; /* SCALAR, VECTOR, MATRIX or STRING */
	promql_series_t *series; /* VECTOR: one point each (t = eval time); MATRIX: sorted by labels */
	size_t nseries;
	double scalar; /* SCALAR */
	str_t string;  /* STRING */
	int64_t ts;    /* SCALAR/STRING evaluation time */
	const char *error_type; /* on error */
	int64_t samples_peak;   /* statistics */
	/* With opts.stats: samples read (2.42's totalQueryableSamples) and, with PROMQL_STATS_PER_STEP,
	 * per step (nsteps entries for steps start, start + step, ...; one for an instant query). What
	 * counts: an instant selector's points (one per series and step with a value in the lookback
	 * window), the samples in each window of a range function's argument (a matrix selector's, or the
	 * points of a subquery's result: the subquery's own reads are not counted), a top-level matrix
	 * selector's samples or top-level subquery's reads; a step-invariant part (@) counts its single
	 * evaluation at every step. Operators, aggregations and other functions add nothing. */
	int64_t samples_total;
	int64_t *samples_per_step;
	size_t nsteps;
} promql_result_t;

/* promql_opts_t.select_ahead for a --query.max-concurrent-select of n (0 = the default). */
static inline int promql_select_ahead(int n)
{
	return (n > 0 ? n : PROMQL_DEFAULT_MAX_CONCURRENT_SELECT) - 1;
}

size_t promql_default_max_memory(void);
/* The default budget of all queries running at once: half of physical memory, or twice the per-query
 * budget max_memory (0 = the default) if that is more. */
size_t promql_default_max_memory_total(size_t max_memory);

/* Parse and evaluate. Instant query: start == end and step == 0. A range query must have step > 0
 * and an expression of type scalar or instant vector. */
int promql_query(const promql_opts_t *o, queryable_t *q, arena_t *a, str_t query, int64_t start, int64_t end,
		 int64_t step, promql_result_t *res, err_t *err);
/* Evaluate an already parsed expression (same rules). */
int promql_eval(const promql_opts_t *o, queryable_t *q, arena_t *a, const promql_expr_t *e, int64_t start,
		int64_t end, int64_t step, promql_result_t *res, err_t *err);

/* Append the Prometheus HTTP API "data" object for a result:
 * {"resultType":"vector","result":[...]} with Prometheus's number and timestamp formatting. */
void promql_result_json(buf_t *b, const promql_result_t *res);
/* The same without the data object's closing '}' (a caller may add members such as "stats"), calling
 * flush(arg) after each series of a vector or matrix so a caller can send what b holds so far; a flush
 * returning false stops the writing (the client is gone). */
void promql_result_json_open(buf_t *b, const promql_result_t *res, bool (*flush)(void *arg), void *arg);
/* Append a label set as the API prints one: {"__name__":"up","job":"x"} (labels in the set's order,
 * names and values JSON-escaped). Used for result metrics and by the series / stores endpoints. */
void promql_labels_json(buf_t *b, const labels_t *ls);

#endif
