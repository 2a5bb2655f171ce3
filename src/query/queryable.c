/*
 * queryable.c — store_t as queryable_t (see queryable.h).
 */
#include "query/queryable.h"

#include <stdint.h>
#include <string.h>

typedef struct wset {
	series_set_t base;
	series_set_t *in;
	store_queryable_t *q;
} wset_t;

void store_queryable_warn(store_queryable_t *q, const char *w)
{
	for (size_t i = 0; i < q->nwarnings; i++)
		if (strcmp(q->warnings[i], w) == 0)
			return;
	if (q->nwarnings == q->capwarnings) {
		size_t cap = q->capwarnings ? 2 * q->capwarnings : 4;
		q->warnings = arena_realloc(q->a, q->warnings, q->capwarnings * sizeof *q->warnings,
					    cap * sizeof *q->warnings);
		q->capwarnings = cap;
	}
	q->warnings[q->nwarnings++] = arena_strdup(q->a, w);
}

size_t store_queryable_warnings(const store_queryable_t *q, const char *const **out)
{
	*out = q->warnings;
	return q->nwarnings;
}

static int wset_next(series_set_t *s, err_t *err)
{
	return series_set_next(((wset_t *)s)->in, err);
}

static const labels_t *wset_labels(series_set_t *s)
{
	return series_set_labels(((wset_t *)s)->in);
}

static sample_iter_t *wset_samples(series_set_t *s)
{
	return series_set_samples(((wset_t *)s)->in);
}

static int wset_chunks(series_set_t *s, const chunk_t **out)
{
	series_set_t *in = ((wset_t *)s)->in;
	return in->ops->chunks ? in->ops->chunks(in, out) : -1;
}

static bool wset_aggr_samples(series_set_t *s)
{
	return series_set_aggr_samples(((wset_t *)s)->in);
}

static size_t wset_warnings(series_set_t *s, const char *const **out)
{
	series_set_t *in = ((wset_t *)s)->in;
	if (!in->ops->warnings) {
		*out = NULL;
		return 0;
	}
	return in->ops->warnings(in, out);
}

static void wset_close(series_set_t *s)
{
	wset_t *w = (wset_t *)s;
	if (!w->in)
		return;
	const char *const *v;
	size_t n = wset_warnings(s, &v);
	for (size_t i = 0; i < n; i++)
		store_queryable_warn(w->q, v[i]);
	series_set_close(w->in);
	w->in = NULL;
}

static const struct series_set_ops wset_ops = {
	.next = wset_next,
	.labels = wset_labels,
	.samples = wset_samples,
	.chunks = wset_chunks,
	.warnings = wset_warnings,
	.close = wset_close,
	.aggr_samples = wset_aggr_samples,
};

static int q_select(queryable_t *base, arena_t *a, const matcher_t *ms, size_t nms, int64_t mint, int64_t maxt,
		    const select_hints_t *hints, series_set_t **out, err_t *err)
{
	store_queryable_t *q = (store_queryable_t *)base;
	store_series_req_t req = {
		.mint = mint,
		.maxt = maxt,
		.ms = ms,
		.nms = nms,
		.skip_chunks = hints && hints->func && strcmp(hints->func, "series") == 0,
		.limit = q->o.series_limit,
		.abort_on_error = !q->o.partial_response,
		.replica_labels = q->o.replica_labels,
		.nreplica_labels = q->o.nreplica_labels,
		.dedup_mode = q->o.dedup_mode,
		.func = hints ? hints->func : NULL,
	};
	int64_t res = q->o.max_source_resolution;
	if (res > 0 && hints && hints->range > 0 && store_func_needs_two_samples(hints->func) &&
	    hints->range / 2 < res)
		res = hints->range / 2;
	if (res > 0) {
		req.max_resolution = res;
		req.aggregates = store_aggregates_for_func(req.func);
		/* rate/increase over downsampled data read the counter at the range start from the aggregate
		 * point before it and the spacing from the one before that (promql's rb_aggr_t.lead): at most
		 * two resolution steps earlier (merged replicas' samples start at the request's mint) */
		if (hints && hints->range > 0 && req.func &&
		    (!strcmp(req.func, "rate") || !strcmp(req.func, "increase")) &&
		    req.mint >= INT64_MIN + 2 * res)
			req.mint -= 2 * res;
	}
	series_set_t *in;
	int rc = store_series(q->store, a, &req, &in, err);
	if (rc < 0)
		return rc;
	wset_t *w = ARENA_NEW(a, wset_t);
	w->base.ops = &wset_ops;
	w->in = in;
	w->q = q;
	*out = &w->base;
	return 0;
}

static int q_strings(store_queryable_t *q, arena_t *a, bool names, str_t name, const matcher_t *ms, size_t nms,
		     int64_t mint, int64_t maxt, str_t **out, size_t *n, err_t *err)
{
	store_label_req_t req = {
		.mint = mint,
		.maxt = maxt,
		.ms = ms,
		.nms = nms,
		.name = name,
		.abort_on_error = !q->o.partial_response,
	};
	store_strings_t r;
	int rc = names ? store_label_names(q->store, a, &req, &r, err) : store_label_values(q->store, a, &req, &r, err);
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < r.nwarnings; i++)
		store_queryable_warn(q, r.warnings[i]);
	*out = r.v;
	*n = r.n;
	return 0;
}

static int q_label_names(queryable_t *base, arena_t *a, const matcher_t *ms, size_t nms, int64_t mint, int64_t maxt,
			 str_t **out, size_t *n, err_t *err)
{
	return q_strings((store_queryable_t *)base, a, true, STR(""), ms, nms, mint, maxt, out, n, err);
}

static int q_label_values(queryable_t *base, arena_t *a, str_t name, const matcher_t *ms, size_t nms, int64_t mint,
			  int64_t maxt, str_t **out, size_t *n, err_t *err)
{
	return q_strings((store_queryable_t *)base, a, false, name, ms, nms, mint, maxt, out, n, err);
}

static const struct queryable_ops q_ops = {
	.select = q_select,
	.label_names = q_label_names,
	.label_values = q_label_values,
};

int64_t store_queryable_decode_aggr(const chunk_t *chks, size_t n, int64_t mint, int64_t maxt,
                                    const char *func, bool count_weights, int64_t **t, double **v,
                                    size_t *cap, err_t *err)
{
	aggr_view_t view = store_aggr_view(store_aggregates_for_func(func));
	if (count_weights && view == AGGR_VIEW_COUNT)
		view = AGGR_VIEW_COUNT_WEIGHTS;
	return aggr_decode_chunks(chks, n, mint, maxt, view, t, v, cap, err);
}

void store_queryable_init(store_queryable_t *q, store_t *s, arena_t *a, const store_queryable_opts_t *o)
{
	memset(q, 0, sizeof *q);
	q->base.ops = &q_ops;
	q->store = s;
	q->a = a;
	if (o)
		q->o = *o;
}
