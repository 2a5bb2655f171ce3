/*
 * api.c — Prometheus HTTP API v1 for the querier (see api.h).
 */
#include "api/api.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "net/api_compress.h"
#include "net/api_params.h"
#include "net/api_response.h"
#include "base/alloc.h"
#include "base/clock.h"
#include "base/flags.h"
#include "base/log.h"
#include "base/vec.h"
#include "base/workers.h"
#include "promql/ast.h"
#include "promql/engine.h"
#include "query/queryable.h"
#include "query/tenancy.h"
#include "store/rulesapi.h"
#include "tsdb/xor.h"

#define API_DEFAULT_TIMEOUT_MS (2 * 60 * 1000)
#define API_DEFAULT_MAX_CONCURRENT 20
#define CANCEL_POLL_MS 100
#define FORMAT_QUERY_MAX 16777216 /* bytes of format_query output */
#define STR_OF_(x) #x
#define STR_OF(x) STR_OF_(x)

enum qkind { Q_INSTANT, Q_RANGE, Q_SERIES, Q_LABELS, Q_VALUES };

typedef struct qctx qctx_t;

struct api {
	http_server_t *srv;
	loop_t *loop;
	endpoint_set_t *es;
	strlist_t replica;
	dedup_mode_t dedup_mode;
	bool partial;
	int64_t timeout_ms, lookback_ms, max_samples, eval_ms;
	size_t max_memory;
	arena_budget_pool_t *memory_pool; /* every running query's memory counts here too (or NULL) */
	bool auto_downsampling, dynamic_lookback;
	int64_t instant_max_res;
	int max_conc;
	int select_ahead; /* promql_opts_t.select_ahead (--query.max-concurrent-select - 1) */
	workers_t *engine_pool; /* shared by all queries: promql_opts_t.workers */
	strlist_t flag_names, flag_values;
	char *tenant_header, *default_tenant, *tenant_label, *tenant_cert_field; /* tenancy (api.h) */
	bool enforce_tenancy;
	atomic_bool ready;
	size_t running;           /* loop thread */
	VEC(qctx_t *) queue;      /* FIFO from qhead */
	size_t qhead;
};

/* Per request; heap, freed by the completion posted from the worker (or on the loop if never run). */
struct qctx {
	api_t *api;
	http_req_t *r;
	enum qkind kind;
	bool limited;        /* counts against max_concurrent */
	uint64_t arrival_ms; /* monotonic */
	uint64_t arrival_ns, start_ns; /* monotonic: submitted, taken by a worker (query stats) */
	volatile int cancel;
	atomic_int done;
	uint64_t timer;
	str_t tenant; /* in the request's arena (taken on the loop thread: the certificate is there) */
};

/* ------------------------------------------------------------------ responses */

static void common_headers(http_req_t *r)
{
	http_add_header(r, "Access-Control-Allow-Origin", "*");
	http_add_header(r, "Access-Control-Allow-Methods", "GET, POST, OPTIONS");
	http_add_header(r, "Access-Control-Allow-Headers", "Accept, Authorization, Content-Type, Origin");
	http_add_header(r, "Access-Control-Expose-Headers", "Date");
}

static void reply_ok(http_req_t *r, str_t data, const char *const *w, size_t nw)
{
	buf_t b = BUF_INIT;
	api_envelope_success(&b, data, w, nw);
	common_headers(r);
	if (nw)
		http_add_header(r, "Cache-Control", "no-store");
	api_respond_json(r, 200, &b);
	buf_release(&b);
}

static void reply_err(http_req_t *r, api_error_type_t t, const char *msg, const char *const *w, size_t nw)
{
	buf_t b = BUF_INIT;
	api_envelope_error(&b, t, msg, w, nw);
	common_headers(r);
	http_add_header(r, "Cache-Control", "no-store");
	api_respond_json(r, api_error_status(t), &b);
	buf_release(&b);
}

static void reply_bad(http_req_t *r, const char *msg)
{
	reply_err(r, API_ERR_BAD_DATA, msg, NULL, 0);
}

static api_error_type_t type_from_name(const char *name, int code)
{
	static const struct {
		const char *n;
		api_error_type_t t;
	} m[] = {{"bad_data", API_ERR_BAD_DATA}, {"execution", API_ERR_EXECUTION}, {"timeout", API_ERR_TIMEOUT},
		 {"canceled", API_ERR_CANCELED}, {"internal", API_ERR_INTERNAL}};
	for (size_t i = 0; name && i < ARRAY_LEN(m); i++)
		if (strcmp(name, m[i].n) == 0)
			return m[i].t;
	return api_error_type_for(code);
}

/* ------------------------------------------------------------------ parameters */

/* Go strconv.ParseBool. */
static bool parse_bool(str_t s, bool *out)
{
	static const char *const t[] = {"1", "t", "T", "TRUE", "true", "True"};
	static const char *const f[] = {"0", "f", "F", "FALSE", "false", "False"};
	for (size_t i = 0; i < ARRAY_LEN(t); i++) {
		if (str_eq_c(s, t[i]))
			return *out = true, true;
		if (str_eq_c(s, f[i]))
			return *out = false, true;
	}
	return false;
}

static int bool_param(http_req_t *r, const char *name, bool def, bool *out, err_t *err)
{
	str_t v;
	*out = def;
	if (!http_req_param(r, name, &v) || v.n == 0)
		return 0;
	if (!parse_bool(v, out))
		return err_set(err, ERR_INVALID, "'%s' parameter: strconv.ParseBool: parsing \"%.*s\": invalid syntax",
			       name, STR_ARG(v));
	return 0;
}

/* A series selector (match[], storeMatch[]) parsed with PromQL's parser into arena matchers. */
static int parse_selector(arena_t *a, str_t s, const matcher_t **ms, size_t *nms, err_t *err)
{
	promql_expr_t *e;
	if (promql_parse(a, s.p, s.n, &e, err)) {
		if (strstr(err->msg, "vector selector must contain at least one non-empty matcher"))
			return err_set(err, ERR_INVALID, "match[] must contain at least one non-empty matcher");
		return err->code;
	}
	if (e->kind != PROMQL_VECTOR_SEL || e->u.vs.mods.offset || e->u.vs.mods.at_kind)
		return err_set(err, ERR_INVALID, "1:1: parse error: expected a series selector, got %s",
			       e->kind == PROMQL_MATRIX_SEL ? "a range selector" : "an expression");
	*ms = e->u.vs.ms;
	*nms = e->u.vs.nms;
	return 0;
}

typedef struct selectors {
	const matcher_t **sets;
	size_t *nsets;
	size_t n;
} selectors_t;

static int parse_selectors(http_req_t *r, const char *key, selectors_t *out, err_t *err)
{
	size_t n = url_params_all(&r->form, key, NULL, 0);
	str_t *v = ARENA_NEW_ARRAY(&r->arena, str_t, n ? n : 1);
	url_params_all(&r->form, key, v, n);
	out->sets = ARENA_NEW_ARRAY(&r->arena, const matcher_t *, n ? n : 1);
	out->nsets = ARENA_NEW_ARRAY(&r->arena, size_t, n ? n : 1);
	out->n = n;
	for (size_t i = 0; i < n; i++)
		if (parse_selector(&r->arena, v[i], &out->sets[i], &out->nsets[i], err))
			return err_wrap(err, "invalid parameter \"%s\"", key);
	return 0;
}

/* Thanos's per-request parameters. */
typedef struct common {
	bool partial;
	const str_t *replica;
	size_t nreplica;
	selectors_t store_match;
	int64_t max_res; /* max_source_resolution (ms); 0 = raw only */
} common_t;

/* replicaLabels[] if given, else --query.replica-label. */
static size_t replica_labels(api_t *api, http_req_t *r, str_t **out)
{
	size_t nrl = url_params_all(&r->form, "replicaLabels[]", NULL, 0);
	str_t *rl = ARENA_NEW_ARRAY(&r->arena, str_t, (nrl ? nrl : 1) + api->replica.n);
	if (nrl) {
		url_params_all(&r->form, "replicaLabels[]", rl, nrl);
	} else {
		for (size_t i = 0; i < api->replica.n; i++)
			rl[i] = str_c(api->replica.v[i]);
		nrl = api->replica.n;
	}
	*out = rl;
	return nrl;
}

static int parse_common(api_t *api, http_req_t *r, bool range, int64_t step, common_t *c, err_t *err)
{
	bool dedup;
	memset(c, 0, sizeof *c);
	if (bool_param(r, "dedup", true, &dedup, err) || bool_param(r, "partial_response", api->partial, &c->partial, err))
		return err->code;
	str_t *rl;
	size_t nrl = replica_labels(api, r, &rl);
	if (dedup) {
		c->replica = rl;
		c->nreplica = nrl;
	}
	str_t msr;
	bool given = http_req_param(r, "max_source_resolution", &msr) && msr.n;
	if (given && !str_eq_c(msr, "auto")) {
		if (api_parse_duration(msr, &c->max_res, err))
			return err_wrap(err, "'max_source_resolution' parameter");
		if (c->max_res < 0)
			return err_set(err, ERR_INVALID,
				       "negative 'max_source_resolution' is not accepted. Try a positive integer");
	} else if (given || api->auto_downsampling) {
		c->max_res = range ? step / 5 : api->instant_max_res;
	}
	if (parse_selectors(r, "storeMatch[]", &c->store_match, err))
		return err->code;
	return 0;
}

/* The stores for a request: the endpoint set's proxy seen through the request's tenant. */
static store_t *query_store(qctx_t *q, const common_t *c)
{
	api_t *api = q->api;
	http_req_t *r = q->r;
	store_t *s = endpoint_set_store(api->es, &r->arena, c->store_match.sets, c->store_match.nsets,
	                                c->store_match.n);
	return tenancy_store(&r->arena, s, str_c(api->tenant_label), q->tenant, api->enforce_tenancy);
}

/* ------------------------------------------------------------------ PromQL */

/* A queryable that measures the time spent in select() (the engine's calls to storage: Prometheus's
 * queryPreparationTime is its Select calls). Selects may come from pool threads, hence the atomic. */
typedef struct timed_queryable {
	queryable_t base;
	queryable_t *inner;
	atomic_uint_fast64_t select_ns;
} timed_queryable_t;

static int timed_select(queryable_t *q, arena_t *a, const matcher_t *ms, size_t nms, int64_t mint, int64_t maxt,
			const select_hints_t *hints, series_set_t **out, err_t *err)
{
	timed_queryable_t *t = (timed_queryable_t *)q;
	uint64_t t0 = clock_mono_ns();
	int rc = t->inner->ops->select(t->inner, a, ms, nms, mint, maxt, hints, out, err);
	atomic_fetch_add(&t->select_ns, clock_mono_ns() - t0);
	return rc;
}

static int timed_label_names(queryable_t *q, arena_t *a, const matcher_t *ms, size_t nms, int64_t mint, int64_t maxt,
			     str_t **out, size_t *n, err_t *err)
{
	queryable_t *in = ((timed_queryable_t *)q)->inner;
	return in->ops->label_names(in, a, ms, nms, mint, maxt, out, n, err);
}

static int timed_label_values(queryable_t *q, arena_t *a, str_t name, const matcher_t *ms, size_t nms, int64_t mint,
			      int64_t maxt, str_t **out, size_t *n, err_t *err)
{
	queryable_t *in = ((timed_queryable_t *)q)->inner;
	return in->ops->label_values(in, a, name, ms, nms, mint, maxt, out, n, err);
}

static const struct queryable_ops timed_ops = {timed_select, timed_label_names, timed_label_values};

/* Append ,"stats":{...} to the data object promql_result_json_open left open in b. */
static void add_stats(buf_t *b, const qctx_t *q, uint64_t eval_ns, uint64_t select_ns,
                      const promql_result_t *res, int64_t start, int64_t step)
{
	uint64_t queue_ns = q->start_ns - q->arrival_ns;
	if (select_ns > eval_ns)
		select_ns = eval_ns;
	/* The engine sorts results inside its evaluation: resultSortTime is part of innerEvalTime. */
	api_query_stats_t st = {.eval_total_ns = eval_ns, .preparation_ns = select_ns, .inner_eval_ns = eval_ns - select_ns,
				.queue_ns = queue_ns, .exec_total_ns = queue_ns + eval_ns,
				.peak_samples = res->samples_peak, .total_samples = res->samples_total};
	if (res->samples_per_step && res->nsteps) {
		int64_t *ts = arena_alloc(&q->r->arena, res->nsteps * sizeof(int64_t));
		for (size_t i = 0; i < res->nsteps; i++)
			ts[i] = start + (int64_t)i * step;
		st.per_step_t = ts;
		st.per_step = res->samples_per_step;
		st.nsteps = res->nsteps;
	}
	buf_puts(b, ",\"stats\":");
	api_query_stats_json(b, &st);
}

static bool out_flush(void *arg)
{
	return api_json_out_flush(arg);
}

static void run_query(qctx_t *q)
{
	api_t *api = q->api;
	http_req_t *r = q->r;
	err_t err = {0};
	str_t qs = STR(""), ts = STR(""), tos = STR("");
	http_req_param(r, "query", &qs);
	http_req_param(r, "timeout", &tos);
	int64_t start, end, step = 0;
	if (q->kind == Q_INSTANT) {
		http_req_param(r, "time", &ts);
		if (api_param_time(ts, "time", clock_now_ms(), &start, &err))
			return reply_bad(r, err.msg);
		end = start;
	} else {
		str_t s = STR(""), e = STR(""), st = STR("");
		http_req_param(r, "start", &s);
		http_req_param(r, "end", &e);
		http_req_param(r, "step", &st);
		if (api_range_params(s, e, st, &start, &end, &step, &err))
			return reply_bad(r, err.msg);
	}
	int64_t timeout = api->timeout_ms;
	if (tos.n) {
		int64_t t;
		if (api_parse_duration(tos, &t, &err)) {
			err_wrap(&err, "invalid parameter \"timeout\"");
			return reply_bad(r, err.msg);
		}
		if (t > 0 && t < timeout)
			timeout = t;
	}
	int64_t lookback = api->lookback_ms;
	str_t lbs = {0};
	if (http_req_param(r, "lookback_delta", &lbs) && lbs.n) {
		if (api_parse_duration(lbs, &lookback, &err)) {
			err_wrap(&err, "invalid parameter \"lookback_delta\"");
			return reply_bad(r, err.msg);
		}
	}
	common_t c;
	if (parse_common(api, r, q->kind == Q_RANGE, step, &c, &err))
		return reply_bad(r, err.msg);
	if (!lbs.n && api->dynamic_lookback) {
		/* Dynamic lookback: at least the resolution level the query may read (thanos.md §4.5). */
		int64_t level = c.max_res >= 3600000 ? 3600000 : c.max_res >= 300000 ? 300000 : 0;
		int64_t base = lookback > 0 ? lookback : 300000;
		if (level > base)
			lookback = level;
	}
	promql_expr_t *expr;
	if (promql_parse(&r->arena, qs.p, qs.n, &expr, &err)) {
		/* Prometheus 2.42 names the parameter for instant queries only */
		if (q->kind == Q_INSTANT)
			err_wrap(&err, "invalid parameter \"query\"");
		return reply_bad(r, err.msg);
	}
	if (q->kind == Q_RANGE) {
		promql_type_t ty = promql_expr_type(expr);
		if (ty != PROMQL_TYPE_SCALAR && ty != PROMQL_TYPE_VECTOR) {
			/* Prometheus 2.42 reports this one without the parameter prefix. */
			err_set(&err, ERR_INVALID,
			        "invalid expression type \"%s\" for range query, must be Scalar or instant "
			        "Vector",
			        ty == PROMQL_TYPE_MATRIX ? "range vector" : promql_type_name(ty));
			return reply_bad(r, err.msg);
		}
	}
	int64_t left = timeout - (int64_t)(clock_mono_ms() - q->arrival_ms);
	if (left <= 0)
		return reply_err(r, API_ERR_TIMEOUT, "query timed out in query queue", NULL, 0);
	store_queryable_t sq;
	store_queryable_opts_t so = {.partial_response = c.partial, .replica_labels = c.replica,
				     .nreplica_labels = c.nreplica, .dedup_mode = api->dedup_mode,
				     .max_source_resolution = c.max_res};
	store_queryable_init(&sq, query_store(q, &c), &r->arena, &so);
	timed_queryable_t tq = {.base = {&timed_ops}, .inner = store_queryable_base(&sq)};
	atomic_init(&tq.select_ns, 0);
	promql_opts_t o = {
		.lookback_ms = lookback,
		.max_samples = api->max_samples,
		.max_memory = api->max_memory,
		.memory_pool = api->memory_pool,
		.timeout_ms = left,
		.subquery_step_ms = api->eval_ms,
		.cancel = &q->cancel,
		.workers = api->engine_pool,
		.decode_chunks = xor_decode_chunks,
		.decode_aggr_chunks = store_queryable_decode_aggr,
		.select_ahead = api->select_ahead, /* the store queryable's select() is thread-safe */
	};
	str_t stats;
	if (http_req_param(r, "stats", &stats) && stats.n)
		o.stats = str_eq_c(stats, "all") ? PROMQL_STATS_PER_STEP : PROMQL_STATS_TOTAL;
	promql_result_t res;
	uint64_t t_eval = clock_mono_ns();
	int rc = promql_eval(&o, &tq.base, &r->arena, expr, start, end, step, &res, &err);
	uint64_t eval_ns = clock_mono_ns() - t_eval;
	const char *const *w;
	size_t nw = store_queryable_warnings(&sq, &w);
	if (rc < 0)
		return reply_err(r, type_from_name(res.error_type, rc), err.msg, w, nw);
	/* The envelope of reply_ok, written as the result is formatted and sent in parts when large. */
	common_headers(r);
	if (nw)
		http_add_header(r, "Cache-Control", "no-store");
	api_json_out_t out;
	api_json_out_init(&out, r, 200);
	buf_puts(&out.b, "{\"status\":\"success\",\"data\":");
	promql_result_json_open(&out.b, &res, out_flush, &out);
	if (o.stats)
		add_stats(&out.b, q, eval_ns, atomic_load(&tq.select_ns), &res, start, step);
	buf_putc(&out.b, '}');
	api_envelope_warnings(&out.b, w, nw);
	buf_putc(&out.b, '}');
	api_json_out_end(&out);
}

/* ------------------------------------------------------------------ metadata */

static int time_range(http_req_t *r, int64_t *start, int64_t *end, err_t *err)
{
	str_t s = STR(""), e = STR("");
	http_req_param(r, "start", &s);
	http_req_param(r, "end", &e);
	if (api_param_time(s, "start", API_MIN_TIME_MS, start, err) || api_param_time(e, "end", API_MAX_TIME_MS, end, err))
		return err->code;
	return 0;
}

typedef VEC(const char *) warnvec_t;

static void add_warns(arena_t *a, warnvec_t *w, const char *const *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		bool dup = false;
		for (size_t j = 0; j < w->n && !dup; j++)
			dup = strcmp(w->v[j], v[i]) == 0;
		if (!dup)
			VEC_PUSH(w, arena_strdup(a, v[i]));
	}
}

static int labels_ptr_cmp(const void *a, const void *b)
{
	return labels_cmp(*(const labels_t *const *)a, *(const labels_t *const *)b);
}

/* What series and label calls share: start/end, the match[] selectors, the common options and the store
 * to ask. NULL after answering a bad request. */
static store_t *metadata_call(qctx_t *q, int64_t *start, int64_t *end, selectors_t *sel, common_t *c)
{
	http_req_t *r = q->r;
	err_t err = {0};
	if (time_range(r, start, end, &err) || parse_selectors(r, "match[]", sel, &err) ||
	    parse_common(q->api, r, false, 0, c, &err)) {
		reply_bad(r, err.msg);
		return NULL;
	}
	return query_store(q, c);
}

static void run_series(qctx_t *q)
{
	http_req_t *r = q->r;
	err_t err = {0};
	if (url_params_all(&r->form, "match[]", NULL, 0) == 0)
		return reply_bad(r, "no match[] parameter provided");
	int64_t start, end;
	selectors_t sel;
	common_t c;
	store_t *s = metadata_call(q, &start, &end, &sel, &c);
	if (!s)
		return;
	VEC(labels_t *) all = {0};
	warnvec_t w = {0};
	int rc = 0;
	for (size_t i = 0; i < sel.n && rc == 0; i++) {
		store_series_req_t req = {.mint = start, .maxt = end, .ms = sel.sets[i], .nms = sel.nsets[i],
					  .skip_chunks = true, .abort_on_error = !c.partial, .replica_labels = c.replica,
					  .nreplica_labels = c.nreplica, .dedup_mode = q->api->dedup_mode, .func = "series"};
		series_set_t *set;
		if ((rc = store_series(s, &r->arena, &req, &set, &err)) < 0)
			break;
		while ((rc = series_set_next(set, &err)) > 0) {
			labels_t *ls = ARENA_NEW(&r->arena, labels_t);
			*ls = labels_copy(&r->arena, series_set_labels(set));
			VEC_PUSH(&all, ls);
		}
		if (set->ops->warnings) {
			const char *const *v;
			size_t n = set->ops->warnings(set, &v);
			add_warns(&r->arena, &w, v, n);
		}
		series_set_close(set);
	}
	if (rc < 0) {
		reply_err(r, API_ERR_INTERNAL, err.msg, w.v, w.n);
	} else {
		if (all.n) /* all.v is NULL when nothing matched: qsort's pointer must not be */
			qsort(all.v, all.n, sizeof *all.v, labels_ptr_cmp);
		buf_t b = BUF_INIT;
		buf_putc(&b, '[');
		size_t k = 0;
		for (size_t i = 0; i < all.n; i++) {
			if (i && labels_eq(all.v[i], all.v[i - 1]))
				continue;
			if (k++)
				buf_putc(&b, ',');
			promql_labels_json(&b, all.v[i]);
		}
		buf_putc(&b, ']');
		reply_ok(r, buf_str(&b), w.v, w.n);
		buf_release(&b);
	}
	VEC_FREE(&all);
	VEC_FREE(&w);
}

static void run_labels(qctx_t *q, str_t name)
{
	http_req_t *r = q->r;
	err_t err = {0};
	int64_t start, end;
	selectors_t sel;
	common_t c;
	store_t *s = metadata_call(q, &start, &end, &sel, &c);
	if (!s)
		return;
	VEC(str_t) all = {0};
	warnvec_t w = {0};
	int rc = 0;
	size_t rounds = sel.n ? sel.n : 1;
	for (size_t i = 0; i < rounds && rc == 0; i++) {
		store_label_req_t req = {.mint = start, .maxt = end, .ms = sel.n ? sel.sets[i] : NULL,
					 .nms = sel.n ? sel.nsets[i] : 0, .name = name, .abort_on_error = !c.partial};
		store_strings_t out;
		rc = q->kind == Q_LABELS ? store_label_names(s, &r->arena, &req, &out, &err)
					 : store_label_values(s, &r->arena, &req, &out, &err);
		if (rc < 0)
			break;
		for (size_t j = 0; j < out.n; j++)
			VEC_PUSH(&all, out.v[j]);
		add_warns(&r->arena, &w, out.warnings, out.nwarnings);
	}
	if (rc < 0) {
		reply_err(r, API_ERR_INTERNAL, err.msg, w.v, w.n);
	} else {
		size_t n = store_strings_sort_unique(all.v, all.n);
		buf_t b = BUF_INIT;
		buf_putc(&b, '[');
		for (size_t i = 0; i < n; i++) {
			if (i)
				buf_putc(&b, ',');
			buf_json_str(&b, all.v[i]);
		}
		buf_putc(&b, ']');
		reply_ok(r, buf_str(&b), w.v, w.n);
		buf_release(&b);
	}
	VEC_FREE(&all);
	VEC_FREE(&w);
}

/* ------------------------------------------------------------------ dispatch and the queue */

static str_t values_name(http_req_t *r)
{
	static const str_t pre = STR("/api/v1/label/"), suf = STR("/values");
	return str_sub(r->path, pre.n, r->path.n - suf.n);
}

static void q_finished(void *arg);

static void work(http_req_t *r, void *arg)
{
	qctx_t *q = arg;
	q->start_ns = clock_mono_ns();
	switch (q->kind) {
	case Q_INSTANT:
	case Q_RANGE: run_query(q); break;
	case Q_SERIES: run_series(q); break;
	case Q_LABELS: run_labels(q, STR("")); break;
	case Q_VALUES: run_labels(q, values_name(r)); break;
	}
	atomic_store(&q->done, 1); /* q_finished follows on the loop (http_run_on_worker_then) */
}

static int64_t cancel_poll(loop_t *l, uint64_t id, void *arg)
{
	(void)l, (void)id;
	qctx_t *q = arg;
	if (atomic_load(&q->done))
		return q->timer = 0, LOOP_TIMER_DONE;
	/* Gone, or EOF on its side: like Prometheus (Go's net/http cancels the request context on EOF). */
	if (!http_req_connected(q->r) || http_req_peer_eof(q->r)) {
		q->cancel = 1;
		return q->timer = 0, LOOP_TIMER_DONE;
	}
	return CANCEL_POLL_MS;
}

static void start(qctx_t *q)
{
	if (q->limited) {
		q->api->running++;
		q->timer = loop_add_timer(q->api->loop, CANCEL_POLL_MS, cancel_poll, q);
	}
	http_run_on_worker_then(q->r, work, q_finished, q);
}

static void q_finished(void *arg)
{
	qctx_t *q = arg;
	api_t *api = q->api;
	if (q->timer)
		loop_del_timer(api->loop, q->timer);
	if (q->limited) {
		api->running--;
		while (api->qhead < api->queue.n && (int)api->running < api->max_conc) {
			qctx_t *next = api->queue.v[api->qhead++];
			start(next);
		}
		if (api->qhead == api->queue.n)
			api->queue.n = api->qhead = 0;
	}
	free(q);
}

static bool not_ready(api_t *api, http_req_t *r)
{
	if (atomic_load(&api->ready))
		return false;
	http_respond(r, 503, "text/plain; charset=utf-8", "Service Unavailable", 19);
	return true;
}

/* The request's tenant, as Thanos's querier takes it: the tenant header (or THANOS-TENANT), else the
 * default tenant; with a certificate field, that field of the verified client certificate instead (no
 * such field: refused). false after answering 400. Loop thread. */
static bool request_tenant(api_t *api, http_req_t *r, str_t *out)
{
	str_t t = {0};
	if (api->tenant_cert_field) {
		buf_t b = BUF_INIT;
		err_t err = {0};
		int rc = http_req_tls_subject(r, api->tenant_cert_field, &b, &err);
		if (rc == 0)
			t = str_from(arena_strndup(&r->arena, b.p ? b.p : "", b.n), b.n);
		buf_release(&b);
		if (rc) {
			reply_bad(r, arena_printf(&r->arena, "tenant from client certificate: %s", err.msg));
			return false;
		}
	} else {
		if (!http_req_header(r, api->tenant_header, &t) && !http_req_header(r, "THANOS-TENANT", &t))
			t = str_c(api->default_tenant);
		t = str_trim(t);
		if (!t.n)
			t = str_c(api->default_tenant);
	}
	if (!tenancy_tenant_valid(t)) {
		reply_bad(r, arena_printf(&r->arena, "tenant name not valid: \"%.*s\"", STR_ARG(t)));
		return false;
	}
	*out = t;
	return true;
}

static void submit(api_t *api, http_req_t *r, enum qkind kind)
{
	if (not_ready(api, r))
		return;
	str_t tenant;
	if (!request_tenant(api, r, &tenant))
		return;
	qctx_t *q = xcalloc(1, sizeof *q);
	q->tenant = tenant;
	q->api = api;
	q->r = r;
	q->kind = kind;
	q->limited = kind == Q_INSTANT || kind == Q_RANGE;
	q->arrival_ns = clock_mono_ns();
	q->arrival_ms = q->arrival_ns / 1000000;
	atomic_init(&q->done, 0);
	if (q->limited && (int)api->running >= api->max_conc) {
		VEC_PUSH(&api->queue, q);
		return;
	}
	start(q);
}

static void h_query(http_req_t *r, void *arg)
{
	submit(arg, r, Q_INSTANT);
}

static void h_query_range(http_req_t *r, void *arg)
{
	submit(arg, r, Q_RANGE);
}

static void h_series(http_req_t *r, void *arg)
{
	submit(arg, r, Q_SERIES);
}

static void h_labels(http_req_t *r, void *arg)
{
	submit(arg, r, Q_LABELS);
}

static void h_label_values(http_req_t *r, void *arg)
{
	api_t *api = arg;
	if (not_ready(api, r))
		return;
	if (!str_has_suffix(r->path, STR("/values")) || r->path.n <= strlen("/api/v1/label/") + strlen("/values")) {
		http_error(r, 404, "404 page not found");
		return;
	}
	str_t name = values_name(r);
	if (!label_name_valid(name)) {
		buf_t b = BUF_INIT;
		buf_puts(&b, "invalid label name: ");
		buf_json_str(&b, name);
		reply_bad(r, b.p);
		buf_release(&b);
		return;
	}
	submit(api, r, Q_VALUES);
}

/* ------------------------------------------------------------------ small endpoints */

static void h_format_query(http_req_t *r, void *arg)
{
	if (not_ready(arg, r))
		return;
	str_t qs = STR("");
	http_req_param(r, "query", &qs);
	promql_expr_t *e;
	err_t err = {0};
	if (promql_parse(&r->arena, qs.p, qs.n, &e, &err)) {
		err_wrap(&err, "invalid parameter \"query\"");
		return reply_bad(r, err.msg);
	}
	buf_t s = BUF_INIT, b = BUF_INIT;
	/* one level of indentation per operator: a long chain would print hundreds of megabytes */
	if (!promql_expr_pretty_max(&s, e, FORMAT_QUERY_MAX)) {
		buf_release(&s);
		return reply_bad(r, "formatted query would be longer than " STR_OF(FORMAT_QUERY_MAX) " bytes");
	}
	buf_json_str(&b, buf_str(&s));
	reply_ok(r, buf_str(&b), NULL, 0);
	buf_release(&s);
	buf_release(&b);
}

static void h_buildinfo(http_req_t *r, void *arg)
{
	if (not_ready(arg, r))
		return;
	reply_ok(r,
	         STR("{\"version\":\"" STRATA_VERSION "\",\"revision\":\"unknown\",\"branch\":\"unknown\","
	             "\"buildUser\":\"unknown\",\"buildDate\":\"unknown\",\"goVersion\":\"none (strata is "
	             "C11)\"}"),
	         NULL, 0);
}

static void h_flags(http_req_t *r, void *arg)
{
	api_t *api = arg;
	if (not_ready(api, r))
		return;
	/* JSON object keys sorted, as Go's encoder does for maps. */
	size_t n = api->flag_names.n;
	size_t *idx = ARENA_NEW_ARRAY(&r->arena, size_t, n ? n : 1);
	for (size_t i = 0; i < n; i++)
		idx[i] = i;
	for (size_t i = 1; i < n; i++)
		for (size_t j = i; j > 0 && strcmp(api->flag_names.v[idx[j - 1]], api->flag_names.v[idx[j]]) > 0; j--) {
			size_t t = idx[j];
			idx[j] = idx[j - 1];
			idx[j - 1] = t;
		}
	buf_t b = BUF_INIT;
	buf_putc(&b, '{');
	for (size_t i = 0; i < n; i++) {
		if (i)
			buf_putc(&b, ',');
		buf_json_str(&b, str_c(api->flag_names.v[idx[i]]));
		buf_putc(&b, ':');
		buf_json_str(&b, str_c(api->flag_values.v[idx[i]]));
	}
	buf_putc(&b, '}');
	reply_ok(r, buf_str(&b), NULL, 0);
	buf_release(&b);
}

static void h_metadata(http_req_t *r, void *arg)
{
	if (not_ready(arg, r))
		return;
	str_t lim;
	if (http_req_param(r, "limit", &lim) && lim.n) {
		int64_t v;
		if (!str_to_i64(lim, &v))
			return reply_bad(r, "limit must be a number");
	}
	const char *w = "metadata is not available: the configured stores do not provide metric metadata yet";
	reply_ok(r, STR("{}"), &w, 1);
}

/* Rules and alerts: gathered from every endpoint whose Info says it is a ruler, over the Rules gRPC
 * API (store/rulesapi.h), replicas merged by the replica labels, on a worker (the calls block). An
 * unreachable ruler is a warning with partial_response (the default from --query.partial-response),
 * else the request fails. */
typedef struct rules_req {
	api_t *api;
	int type;
	bool alerts, partial;
	const str_t *replica;
	size_t nreplica;
} rules_req_t;

static void rules_work(http_req_t *r, void *arg)
{
	rules_req_t *q = arg;
	endpoint_status_t *st;
	size_t n = endpoint_set_status(q->api->es, &r->arena, &st);
	rules_set_t set = {0};
	VEC(const char *) warns = {0};
	for (size_t i = 0; i < n; i++) {
		if (!st[i].component || strcmp(st[i].component, "rule") != 0)
			continue;
		err_t err = {0};
		if (rules_fetch(st[i].address, q->type, 30000, &r->arena, &set, &err) != 0) {
			const char *msg = arena_printf(&r->arena, "fetching rules from %s: %s", st[i].address, err.msg);
			if (!q->partial) {
				free(warns.v);
				return reply_err(r, API_ERR_INTERNAL, msg, NULL, 0);
			}
			VEC_PUSH(&warns, msg);
		}
	}
	for (size_t i = 0; i < set.nwarnings; i++)
		VEC_PUSH(&warns, set.warnings[i]);
	const char **rl = ARENA_NEW_ARRAY(&r->arena, const char *, q->nreplica + 1);
	for (size_t i = 0; i < q->nreplica; i++)
		rl[i] = arena_strndup(&r->arena, q->replica[i].p, q->replica[i].n);
	rules_dedup(&r->arena, &set, rl, q->nreplica);
	buf_t b = BUF_INIT;
	if (q->alerts)
		rules_alerts_json(&b, set.v, set.n);
	else
		rules_json(&b, set.v, set.n, q->type);
	reply_ok(r, buf_str(&b), warns.v, warns.n);
	buf_release(&b);
	free(warns.v);
}

static void rules_start(http_req_t *r, api_t *api, bool alerts)
{
	if (not_ready(api, r))
		return;
	rules_req_t *q = ARENA_NEW(&r->arena, rules_req_t);
	memset(q, 0, sizeof *q);
	q->api = api;
	q->alerts = alerts;
	str_t type;
	if (!alerts && http_req_param(r, "type", &type) && type.n) {
		if (str_eq(type, STR("alert")))
			q->type = RULES_ALERT;
		else if (str_eq(type, STR("record")))
			q->type = RULES_RECORD;
		else
			return reply_bad(r, "unsupported type: only 'alert' or 'record' are supported");
	}
	err_t err = {0};
	if (bool_param(r, "partial_response", api->partial, &q->partial, &err))
		return reply_bad(r, err.msg);
	str_t *rl;
	q->nreplica = replica_labels(api, r, &rl);
	q->replica = rl;
	http_run_on_worker(r, rules_work, q);
}

static void h_rules(http_req_t *r, void *arg)
{
	rules_start(r, arg, false);
}

static void h_alerts(http_req_t *r, void *arg)
{
	rules_start(r, arg, true);
}

static void put_time_go(buf_t *b, int64_t ms)
{
	if (ms == 0) {
		buf_puts(b, "\"0001-01-01T00:00:00Z\"");
		return;
	}
	buf_putc(b, '"');
	buf_put_rfc3339_ms(b, ms);
	buf_putc(b, '"');
}

/* Component type, then address (endpoint_set_status returns them sorted by address). */
static int status_cmp(const void *x, const void *y)
{
	const endpoint_status_t *a = x, *b = y;
	int c = strcmp(a->component, b->component);
	return c ? c : strcmp(a->address, b->address);
}

static void h_stores(http_req_t *r, void *arg)
{
	api_t *api = arg;
	if (not_ready(api, r))
		return;
	endpoint_status_t *st;
	size_t n = endpoint_set_status(api->es, &r->arena, &st);
	/* Grouped by the component type each endpoint's Info named, as Thanos: {"<type>": [...], ...}. */
	if (n)
		qsort(st, n, sizeof *st, status_cmp);
	buf_t b = BUF_INIT;
	buf_putc(&b, '{');
	for (size_t i = 0; i < n; i++) {
		bool first = i == 0 || strcmp(st[i - 1].component, st[i].component) != 0;
		if (first) {
			if (i)
				buf_puts(&b, "],");
			buf_json_str(&b, str_c(st[i].component));
			buf_puts(&b, ":[");
		} else {
			buf_putc(&b, ',');
		}
		buf_puts(&b, "{\"name\":");
		buf_json_str(&b, str_c(st[i].address));
		buf_puts(&b, ",\"lastCheck\":");
		put_time_go(&b, st[i].last_check_ms);
		buf_puts(&b, ",\"lastError\":");
		if (st[i].last_error)
			buf_json_str(&b, str_c(st[i].last_error));
		else
			buf_puts(&b, "null");
		buf_puts(&b, ",\"labelSets\":[");
		for (size_t j = 0; j < st[i].nlabel_sets; j++) {
			if (j)
				buf_putc(&b, ',');
			promql_labels_json(&b, &st[i].label_sets[j]);
		}
		buf_puts(&b, "],\"minTime\":");
		buf_put_i64(&b, st[i].mint);
		buf_puts(&b, ",\"maxTime\":");
		buf_put_i64(&b, st[i].maxt);
		buf_putc(&b, '}');
	}
	if (n)
		buf_putc(&b, ']');
	buf_putc(&b, '}');
	reply_ok(r, buf_str(&b), NULL, 0);
	buf_release(&b);
}

static void h_options(http_req_t *r, void *arg)
{
	(void)arg;
	common_headers(r);
	http_respond(r, 200, NULL, "", 0);
}

/* ------------------------------------------------------------------ lifecycle */

api_t *api_new(http_server_t *srv, const api_config_t *cfg)
{
	api_t *api = xcalloc(1, sizeof *api);
	api->srv = srv;
	api->loop = http_server_loop(srv);
	api->es = cfg->endpoints;
	for (size_t i = 0; i < cfg->nreplica_labels; i++)
		strlist_push(&api->replica, cfg->replica_labels[i]);
	api->dedup_mode = cfg->dedup_mode;
	api->partial = cfg->partial_response;
	api->timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : API_DEFAULT_TIMEOUT_MS;
	api->lookback_ms = cfg->lookback_ms;
	api->auto_downsampling = cfg->auto_downsampling;
	api->dynamic_lookback = cfg->dynamic_lookback;
	api->instant_max_res = cfg->instant_max_source_resolution;
	api->max_samples = cfg->max_samples;
	api->max_memory = cfg->max_memory;
	api->memory_pool = cfg->memory_pool;
	api->eval_ms = cfg->default_eval_interval_ms;
	api->max_conc = cfg->max_concurrent > 0 ? cfg->max_concurrent : API_DEFAULT_MAX_CONCURRENT;
	api->select_ahead = promql_select_ahead(cfg->max_concurrent_select);
	if (cfg->engine_threads >= 0)
		api->engine_pool = workers_new(cfg->engine_threads);
	for (size_t i = 0; i < cfg->nflags; i++) {
		strlist_push(&api->flag_names, cfg->flag_names[i]);
		strlist_push(&api->flag_values, cfg->flag_values[i]);
	}
	api->tenant_header =
	    xstrdup(cfg->tenant_header && *cfg->tenant_header ? cfg->tenant_header : "THANOS-TENANT");
	api->default_tenant =
	    xstrdup(cfg->default_tenant && *cfg->default_tenant ? cfg->default_tenant : "default-tenant");
	api->tenant_label =
	    xstrdup(cfg->tenant_label && *cfg->tenant_label ? cfg->tenant_label : "tenant_id");
	api->tenant_cert_field =
	    cfg->tenant_cert_field && *cfg->tenant_cert_field ? xstrdup(cfg->tenant_cert_field) : NULL;
	api->enforce_tenancy = cfg->enforce_tenancy;
	atomic_init(&api->ready, false);
	const unsigned gp = HTTP_M_GET | HTTP_M_POST;
	http_handle(srv, gp, "/api/v1/query", h_query, api);
	http_handle(srv, gp, "/api/v1/query_range", h_query_range, api);
	http_handle(srv, gp, "/api/v1/series", h_series, api);
	http_handle(srv, gp, "/api/v1/labels", h_labels, api);
	http_handle(srv, HTTP_M_GET, "/api/v1/label/*", h_label_values, api);
	http_handle(srv, gp, "/api/v1/format_query", h_format_query, api);
	http_handle(srv, HTTP_M_GET, "/api/v1/metadata", h_metadata, api);
	http_handle(srv, HTTP_M_GET, "/api/v1/status/buildinfo", h_buildinfo, api);
	http_handle(srv, HTTP_M_GET, "/api/v1/status/flags", h_flags, api);
	http_handle(srv, HTTP_M_GET, "/api/v1/stores", h_stores, api);
	http_handle(srv, HTTP_M_GET, "/api/v1/rules", h_rules, api);
	http_handle(srv, HTTP_M_GET, "/api/v1/alerts", h_alerts, api);
	http_handle(srv, HTTP_M_OPTIONS, "/api/v1/*", h_options, api);
	return api;
}

void api_free(api_t *api)
{
	if (!api)
		return;
	for (size_t i = api->qhead; i < api->queue.n; i++)
		free(api->queue.v[i]);
	VEC_FREE(&api->queue);
	workers_free(api->engine_pool);
	strlist_free(&api->replica);
	strlist_free(&api->flag_names);
	strlist_free(&api->flag_values);
	free(api->tenant_header);
	free(api->default_tenant);
	free(api->tenant_label);
	free(api->tenant_cert_field);
	free(api);
}

void api_set_ready(api_t *api, bool ready)
{
	atomic_store(&api->ready, ready);
}

size_t api_queries_running(const api_t *api)
{
	return api->running;
}

size_t api_queries_queued(const api_t *api)
{
	return api->queue.n - api->qhead;
}
