/*
 * querysrv.c — the Query API over gRPC (see querysrv.h).
 */
#include "query/querysrv.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/flags.h"
#include "base/workers.h"
#include "promql/ast.h"
#include "promql/engine.h"
#include "query/queryable.h"
#include "querypb.pb-c.h"
#include "tsdb/xor.h"

#define QUERYSRV_DEFAULT_TIMEOUT_MS     (2 * 60 * 1000)
#define QUERYSRV_DEFAULT_MAX_CONCURRENT 20

struct querysrv {
	loop_t *loop;
	endpoint_set_t *es;
	strlist_t replica;
	dedup_mode_t dedup_mode;
	int64_t timeout_ms, lookback_ms, max_samples, eval_ms;
	size_t max_memory;
	arena_budget_pool_t *memory_pool;
	bool dynamic_lookback;
	int select_ahead;       /* promql_opts_t.select_ahead (--query.max-concurrent-select - 1) */
	workers_t *workers;     /* one thread per concurrent query; FIFO beyond that */
	workers_t *engine_pool; /* parallel decoding/evaluation inside a query */
	size_t njobs;           /* loop thread */
};

/* One call. Loop thread: everything until submitted, then deliver/dropped. Worker: the evaluation.
 * cancel is written by the loop (call_done) while the worker's engine reads it. */
typedef struct job {
	querysrv_t *s;
	grpc_call_t *call; /* held until the job ends */
	bool range;
	/* the request, decoded into the call's arena */
	str_t query;
	int64_t start, end, step; /* ms */
	int64_t timeout_ms;       /* from the request and --query.timeout, counted from arrival */
	int64_t lookback_ms;      /* 0 = the default */
	int64_t max_res;          /* ms */
	bool dedup, partial;
	bool unimplemented; /* decode: a request this server cannot serve (UNIMPLEMENTED) */
	const str_t *replica;
	size_t nreplica;
	const matcher_t **sets; /* storeMatchers */
	size_t *nsets, nstore;
	int64_t batch;
	uint64_t arrival_ms;
	volatile int cancel;
	/* worker result */
	buf_t out; /* framed messages */
	int status;
	char *message; /* heap */
} job_t;

/* ---- request decoding (loop thread) ---- */

static void *pb_alloc(void *data, size_t size)
{
	return arena_alloc(data, size ? size : 1);
}

static void pb_free(void *data, void *p)
{
	(void)data, (void)p;
}

static void release_matcher(void *p)
{
	matcher_release(p);
}

typedef struct common_req {
	const char *query;
	int64_t timeout_s, max_res_s, lookback_s, batch;
	char **replica;
	size_t nreplica;
	Thanos__StoreMatchers **store;
	size_t nstore;
	bool dedup, partial;
	Thanos__ShardInfo *shard;
	Thanos__QueryPlan *plan;
} common_req_t;

static int decode_common(job_t *j, arena_t *a, const common_req_t *c, err_t *err)
{
	if ((!c->query || !*c->query) && c->plan) {
		j->unimplemented = true;
		return err_set(err, ERR_INVALID, "query plans are not supported: send the query string");
	}
	if (c->shard && c->shard->total_shards > 1) {
		j->unimplemented = true;
		return err_set(err, ERR_INVALID, "sharded queries (shard_info) are not supported");
	}
	if (c->timeout_s < 0 || c->max_res_s < 0 || c->lookback_s < 0)
		return err_set(err, ERR_INVALID, "negative timeout, max_resolution or lookback_delta");
	j->query = str_c(c->query ? c->query : "");
	j->dedup = c->dedup;
	j->partial = c->partial;
	j->max_res = c->max_res_s * 1000;
	j->lookback_ms = c->lookback_s * 1000;
	j->batch = c->batch > 0 ? c->batch : 0;
	int64_t t = j->s->timeout_ms;
	if (c->timeout_s > 0 && c->timeout_s * 1000 < t)
		t = c->timeout_s * 1000;
	uint64_t deadline = grpc_call_deadline(j->call);
	if (deadline) {
		int64_t left = (int64_t)deadline - (int64_t)clock_mono_ms();
		if (left < t)
			t = left > 0 ? left : 1;
	}
	j->timeout_ms = t;
	if (c->nreplica) {
		str_t *rl = ARENA_NEW_ARRAY(a, str_t, c->nreplica);
		for (size_t i = 0; i < c->nreplica; i++)
			rl[i] = str_c(c->replica[i]);
		j->replica = rl;
		j->nreplica = c->nreplica;
	} else {
		str_t *rl = ARENA_NEW_ARRAY(a, str_t, j->s->replica.n ? j->s->replica.n : 1);
		for (size_t i = 0; i < j->s->replica.n; i++)
			rl[i] = str_c(j->s->replica.v[i]);
		j->replica = rl;
		j->nreplica = j->s->replica.n;
	}
	j->nstore = c->nstore;
	j->sets = ARENA_NEW_ARRAY(a, const matcher_t *, c->nstore ? c->nstore : 1);
	j->nsets = ARENA_NEW_ARRAY(a, size_t, c->nstore ? c->nstore : 1);
	for (size_t i = 0; i < c->nstore; i++) {
		Thanos__StoreMatchers *sm = c->store[i];
		matcher_t *ms = ARENA_NEW_ARRAY(a, matcher_t, sm->n_labelmatchers ? sm->n_labelmatchers : 1);
		for (size_t k = 0; k < sm->n_labelmatchers; k++) {
			Thanos__LabelMatcher *m = sm->labelmatchers[k];
			if ((unsigned)m->type > 3)
				return err_set(err, ERR_INVALID, "storeMatchers: unknown matcher type %d",
				               (int)m->type);
			if (matcher_init(&ms[k], (match_type_t)m->type, str_c(m->name), str_c(m->value), err))
				return err_wrap(err, "storeMatchers");
			arena_on_release(a, release_matcher, &ms[k]);
		}
		j->sets[i] = ms;
		j->nsets[i] = sm->n_labelmatchers;
	}
	return 0;
}

static int decode(job_t *j, str_t msg, err_t *err)
{
	arena_t *a = grpc_call_arena(j->call);
	ProtobufCAllocator al = {pb_alloc, pb_free, a};
	if (!j->range) {
		Thanos__QueryRequest *r = thanos__query_request__unpack(&al, msg.n, (const uint8_t *)msg.p);
		if (!r)
			return err_set(err, ERR_INVALID, "malformed QueryRequest");
		common_req_t c = {r->query,
		                  r->timeout_seconds,
		                  r->max_resolution_seconds,
		                  r->lookback_delta_seconds,
		                  r->response_batch_size,
		                  r->replica_labels,
		                  r->n_replica_labels,
		                  r->storematchers,
		                  r->n_storematchers,
		                  r->enablededup,
		                  r->enablepartialresponse,
		                  r->shard_info,
		                  r->queryplan};
		if (r->time_seconds > INT64_MAX / 1000 || r->time_seconds < INT64_MIN / 1000)
			return err_set(err, ERR_INVALID, "time_seconds out of range");
		j->start = j->end = r->time_seconds * 1000;
		return decode_common(j, a, &c, err);
	}
	Thanos__QueryRangeRequest *r =
	    thanos__query_range_request__unpack(&al, msg.n, (const uint8_t *)msg.p);
	if (!r)
		return err_set(err, ERR_INVALID, "malformed QueryRangeRequest");
	common_req_t c = {r->query,
	                  r->timeout_seconds,
	                  r->max_resolution_seconds,
	                  r->lookback_delta_seconds,
	                  r->response_batch_size,
	                  r->replica_labels,
	                  r->n_replica_labels,
	                  r->storematchers,
	                  r->n_storematchers,
	                  r->enablededup,
	                  r->enablepartialresponse,
	                  r->shard_info,
	                  r->queryplan};
	const int64_t lim = INT64_MAX / 1000;
	if (r->start_time_seconds > lim || r->start_time_seconds < -lim || r->end_time_seconds > lim ||
	    r->end_time_seconds < -lim || r->interval_seconds > lim)
		return err_set(err, ERR_INVALID, "start, end or interval out of range");
	if (r->interval_seconds <= 0)
		return err_set(
		    err, ERR_INVALID,
		    "zero or negative query resolution step widths are not accepted. Try a positive "
		    "integer");
	if (r->end_time_seconds < r->start_time_seconds)
		return err_set(err, ERR_INVALID, "end timestamp must not be before start time");
	/* Prometheus's limit on points per series (11,000), as /api/v1/query_range */
	if ((r->end_time_seconds - r->start_time_seconds) / r->interval_seconds > 11000)
		return err_set(
		    err, ERR_INVALID,
		    "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the "
		    "query resolution (?step=XX)");
	j->start = r->start_time_seconds * 1000;
	j->end = r->end_time_seconds * 1000;
	j->step = r->interval_seconds * 1000;
	return decode_common(j, a, &c, err);
}

/* ---- evaluation (worker) ---- */

/* QueryResponse and QueryRangeResponse are the same message on the wire (same oneof, same numbers):
 * both are encoded as QueryResponse. */
static void emit(job_t *j, bool compress, const Thanos__QueryResponse *m, arena_t *scratch)
{
	size_t n = thanos__query_response__get_packed_size(m);
	uint8_t *p = arena_alloc(scratch, n ? n : 1);
	thanos__query_response__pack(m, p);
	grpc_frame_append(&j->out, compress, p, n);
}

static Prometheus__TimeSeries *series_msg(arena_t *a, const labels_t *ls, const int64_t *t, const double *v,
                                          size_t n)
{
	Prometheus__TimeSeries *ts = ARENA_NEW(a, Prometheus__TimeSeries);
	prometheus__time_series__init(ts);
	size_t nl = ls ? ls->n : 0;
	ts->n_labels = nl;
	ts->labels = ARENA_NEW_ARRAY(a, Prometheus__Label *, nl ? nl : 1);
	for (size_t i = 0; i < nl; i++) {
		Prometheus__Label *l = ARENA_NEW(a, Prometheus__Label);
		prometheus__label__init(l);
		l->name = arena_strndup(a, ls->v[i].name.p, ls->v[i].name.n);
		l->value = arena_strndup(a, ls->v[i].value.p, ls->v[i].value.n);
		ts->labels[i] = l;
	}
	ts->n_samples = n;
	ts->samples = ARENA_NEW_ARRAY(a, Prometheus__Sample *, n ? n : 1);
	Prometheus__Sample *s = ARENA_NEW_ARRAY(a, Prometheus__Sample, n ? n : 1);
	for (size_t i = 0; i < n; i++) {
		prometheus__sample__init(&s[i]);
		s[i].value = v[i];
		s[i].timestamp = t[i];
		ts->samples[i] = &s[i];
	}
	return ts;
}

static void encode_result(job_t *j, const promql_result_t *res, const char *const *w, size_t nw)
{
	bool compress = grpc_call_compresses(j->call);
	arena_t scratch;
	arena_init(&scratch, 0);
	for (size_t i = 0; i < nw; i++) {
		Thanos__QueryResponse m = THANOS__QUERY_RESPONSE__INIT;
		m.result_case = THANOS__QUERY_RESPONSE__RESULT_WARNINGS;
		m.warnings = (char *)w[i];
		emit(j, compress, &m, &scratch);
		arena_reset(&scratch);
	}
	if (res->type == PROMQL_TYPE_SCALAR) {
		Thanos__QueryResponse m = THANOS__QUERY_RESPONSE__INIT;
		m.result_case = THANOS__QUERY_RESPONSE__RESULT_TIMESERIES;
		m.timeseries = series_msg(&scratch, NULL, &res->ts, &res->scalar, 1);
		emit(j, compress, &m, &scratch);
		arena_reset(&scratch);
	} else {
		size_t per = j->batch > 0 ? (size_t)j->batch : 1;
		for (size_t i = 0; i < res->nseries; i += per) {
			size_t k = res->nseries - i < per ? res->nseries - i : per;
			Thanos__QueryResponse m = THANOS__QUERY_RESPONSE__INIT;
			Thanos__TimeSeriesBatch b = THANOS__TIME_SERIES_BATCH__INIT;
			Prometheus__TimeSeries **v = ARENA_NEW_ARRAY(&scratch, Prometheus__TimeSeries *, k);
			for (size_t x = 0; x < k; x++) {
				const promql_series_t *s = &res->series[i + x];
				v[x] = series_msg(&scratch, &s->ls, s->t, s->v, s->n);
			}
			if (j->batch > 0) {
				b.n_series = k;
				b.series = v;
				m.result_case = THANOS__QUERY_RESPONSE__RESULT_TIMESERIES_BATCH;
				m.timeseries_batch = &b;
			} else {
				m.result_case = THANOS__QUERY_RESPONSE__RESULT_TIMESERIES;
				m.timeseries = v[0];
			}
			emit(j, compress, &m, &scratch);
			arena_reset(&scratch);
		}
	}
	Thanos__QueryResponse m = THANOS__QUERY_RESPONSE__INIT;
	Thanos__QueryStats st = THANOS__QUERY_STATS__INIT;
	st.samples_total = res->samples_total;
	st.peak_samples = res->samples_peak;
	m.result_case = THANOS__QUERY_RESPONSE__RESULT_STATS;
	m.stats = &st;
	emit(j, compress, &m, &scratch);
	arena_release(&scratch);
}

static int status_for(const char *error_type, int code)
{
	if (error_type) {
		if (!strcmp(error_type, "bad_data"))
			return GRPC_INVALID_ARGUMENT;
		if (!strcmp(error_type, "timeout"))
			return GRPC_DEADLINE_EXCEEDED;
		if (!strcmp(error_type, "canceled"))
			return GRPC_CANCELLED;
		if (!strcmp(error_type, "execution"))
			return GRPC_UNKNOWN;
	}
	return grpc_status_from_err(code);
}

static void fail(job_t *j, int status, const char *msg)
{
	j->status = status;
	free(j->message);
	j->message = xstrdup(msg);
}

static void evaluate(job_t *j)
{
	querysrv_t *s = j->s;
	arena_t *a = grpc_call_arena(j->call);
	err_t err = {0};
	promql_expr_t *expr;
	if (promql_parse(a, j->query.p, j->query.n, &expr, &err))
		return fail(j, GRPC_INVALID_ARGUMENT, err.msg);
	promql_type_t ty = promql_expr_type(expr);
	if (j->range && ty != PROMQL_TYPE_SCALAR && ty != PROMQL_TYPE_VECTOR) {
		err_set(&err, ERR_INVALID,
		        "invalid expression type \"%s\" for range query, must be Scalar or instant Vector",
		        ty == PROMQL_TYPE_MATRIX ? "range vector" : promql_type_name(ty));
		return fail(j, GRPC_INVALID_ARGUMENT, err.msg);
	}
	if (ty == PROMQL_TYPE_STRING)
		return fail(j, GRPC_INVALID_ARGUMENT,
		            "string results are not supported by the gRPC Query API");
	int64_t lookback = j->lookback_ms > 0 ? j->lookback_ms : s->lookback_ms;
	if (!j->lookback_ms && s->dynamic_lookback) {
		/* as the HTTP API: at least the resolution level the query may read (thanos.md §4.5) */
		int64_t level = j->max_res >= 3600000 ? 3600000 : j->max_res >= 300000 ? 300000 : 0;
		int64_t base = lookback > 0 ? lookback : 300000;
		if (level > base)
			lookback = level;
	}
	int64_t left = j->timeout_ms - (int64_t)(clock_mono_ms() - j->arrival_ms);
	if (left <= 0)
		return fail(j, GRPC_DEADLINE_EXCEEDED, "query timed out in query queue");
	store_queryable_t sq;
	store_queryable_opts_t so = {.partial_response = j->partial,
	                             .replica_labels = j->dedup ? j->replica : NULL,
	                             .nreplica_labels = j->dedup ? j->nreplica : 0,
	                             .dedup_mode = s->dedup_mode,
	                             .max_source_resolution = j->max_res};
	store_t *st = endpoint_set_store(s->es, a, j->sets, j->nsets, j->nstore);
	store_queryable_init(&sq, st, a, &so);
	promql_opts_t o = {
	    .lookback_ms = lookback,
	    .max_samples = s->max_samples,
	    .max_memory = s->max_memory,
	    .memory_pool = s->memory_pool,
	    .timeout_ms = left,
	    .subquery_step_ms = s->eval_ms,
	    .cancel = &j->cancel,
	    .workers = s->engine_pool,
	    .decode_chunks = xor_decode_chunks,
	    .decode_aggr_chunks = store_queryable_decode_aggr,
	    .stats = PROMQL_STATS_TOTAL,
	    .select_ahead = s->select_ahead,
	};
	promql_result_t res;
	int rc = promql_eval(&o, store_queryable_base(&sq), a, expr, j->start, j->end, j->step, &res, &err);
	if (rc < 0)
		return fail(j, status_for(res.error_type, rc), err.msg);
	const char *const *w;
	size_t nw = store_queryable_warnings(&sq, &w);
	encode_result(j, &res, w, nw);
	j->status = GRPC_OK;
}

/* ---- call lifecycle ---- */

static void job_end(job_t *j)
{
	querysrv_t *s = j->s;
	grpc_call_release(j->call);
	buf_release(&j->out);
	free(j->message);
	free(j);
	s->njobs--;
}

/* Loop thread, the call is live: the response and the status. */
static void job_deliver(grpc_call_t *call, void *arg)
{
	job_t *j = arg;
	grpc_call_set_producer(call, NULL, NULL, NULL); /* finishing may run done at once */
	if (j->out.n)
		grpc_call_send_framed(call, j->out.p, j->out.n);
	grpc_call_finish(call, j->status, j->status == GRPC_OK ? NULL : j->message);
	job_end(j);
}

/* Loop thread, the call ended while the query ran. */
static void job_dropped(grpc_call_t *call, void *arg)
{
	(void)call;
	job_end(arg);
}

static void job_work(void *arg)
{
	job_t *j = arg;
	if (j->cancel || grpc_call_cancelled(j->call))
		fail(j, GRPC_CANCELLED, "call cancelled");
	else
		evaluate(j);
	grpc_call_post(j->call, job_deliver, job_dropped, j);
}

static void job_produce(grpc_call_t *call, void *arg)
{
	(void)call, (void)arg; /* the response is sent whole by job_deliver */
}

/* The call ended (peer reset, deadline, connection gone) before the job did: stop the engine. */
static void job_done(grpc_call_t *call, void *arg)
{
	(void)call;
	((job_t *)arg)->cancel = 1;
}

static void handle(grpc_call_t *call, str_t msg, bool range, querysrv_t *s)
{
	job_t *j = xcalloc(1, sizeof *j);
	j->s = s;
	j->call = call;
	j->range = range;
	j->arrival_ms = clock_mono_ms();
	buf_init(&j->out);
	err_t err = {0};
	if (decode(j, msg, &err)) {
		grpc_call_finish(call, j->unimplemented ? GRPC_UNIMPLEMENTED : grpc_status_from_err(err.code),
		                 err.msg);
		buf_release(&j->out);
		free(j);
		return;
	}
	grpc_call_hold(call);
	grpc_call_set_producer(call, job_produce, job_done, j);
	s->njobs++;
	workers_submit(s->workers, job_work, j);
}

static void h_query(grpc_call_t *call, str_t msg, void *arg)
{
	handle(call, msg, false, arg);
}

static void h_query_range(grpc_call_t *call, str_t msg, void *arg)
{
	handle(call, msg, true, arg);
}

querysrv_t *querysrv_register(grpc_server_t *srv, const querysrv_config_t *cfg)
{
	querysrv_t *s = xcalloc(1, sizeof *s);
	s->loop = grpc_server_loop(srv);
	s->es = cfg->endpoints;
	for (size_t i = 0; i < cfg->nreplica_labels; i++)
		strlist_push(&s->replica, cfg->replica_labels[i]);
	s->dedup_mode = cfg->dedup_mode;
	s->timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : QUERYSRV_DEFAULT_TIMEOUT_MS;
	s->lookback_ms = cfg->lookback_ms;
	s->dynamic_lookback = cfg->dynamic_lookback;
	s->max_samples = cfg->max_samples;
	s->max_memory = cfg->max_memory;
	s->memory_pool = cfg->memory_pool;
	s->eval_ms = cfg->default_eval_interval_ms;
	s->select_ahead = promql_select_ahead(cfg->max_concurrent_select);
	s->workers =
	    workers_new(cfg->max_concurrent > 0 ? cfg->max_concurrent : QUERYSRV_DEFAULT_MAX_CONCURRENT);
	s->engine_pool = workers_new(0);
	grpc_server_register(srv, "/thanos.Query/Query", h_query, s);
	grpc_server_register(srv, "/thanos.Query/QueryRange", h_query_range, s);
	return s;
}

void querysrv_free(querysrv_t *s)
{
	if (!s)
		return;
	/* every call has ended (listeners freed): collect the workers' posts so each job ends */
	while (s->njobs > 0)
		if (!loop_run_posts(s->loop))
			usleep(1000);
	workers_free(s->workers);
	workers_free(s->engine_pool);
	strlist_free(&s->replica);
	free(s);
}
