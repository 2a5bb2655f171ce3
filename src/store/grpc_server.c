/*
 * grpc_server.c — thanos.Store and thanos.info.Info over any store_t (see grpc_server.h).
 */
#include "store/grpc_server.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/workers.h"
#include "info.pb-c.h"
#include "store/seriesenc.h"
#include "storepb_rpc.pb-c.h"
#include "tsdb/xor.h"

/* Where encoded responses go: straight into the call (loop mode) or into a worker's batch of framed
 * messages (pool mode). */
typedef struct sink {
	grpc_call_t *call; /* loop mode */
	buf_t *out;        /* pool mode */
	bool compress;
	buf_t tmp;         /* pool mode with compression: the body before framing */
} sink_t;

static uint8_t *sink_reserve(sink_t *k, size_t len)
{
	if (!k->out)
		return grpc_call_reserve(k->call, len);
	if (k->compress) {
		buf_reset(&k->tmp);
		return (uint8_t *)buf_extend(&k->tmp, len);
	}
	uint8_t *p = (uint8_t *)buf_extend(k->out, 5 + len);
	p[0] = 0;
	p[1] = (uint8_t)(len >> 24), p[2] = (uint8_t)(len >> 16), p[3] = (uint8_t)(len >> 8), p[4] = (uint8_t)len;
	return p + 5;
}

/* The reserved message is complete. */
static void sink_commit(sink_t *k)
{
	if (k->out && k->compress)
		grpc_frame_append(k->out, true, k->tmp.p, k->tmp.n);
}

static size_t sink_size(const sink_t *k)
{
	return k->out ? k->out->n : grpc_call_pending(k->call);
}

typedef struct series_stream {
	series_set_t *set;
	bool skip_chunks;
	unsigned aggregates; /* filled into AggrChunks from aggregate (0xFF) chunks: bits 1 << AGGR_* */
	arena_t scratch;     /* one series' message */
	xor_enc_t enc;
} series_stream_t;

/* How a call ended: a gRPC status and a message (empty = none). */
typedef struct result {
	int status;
	err_t err;
} result_t;

static void result_set(result_t *r, int status, const char *msg)
{
	r->status = status;
	snprintf(r->err.msg, sizeof r->err.msg, "%s", msg ? msg : "");
}

static void result_err(result_t *r, int code, const err_t *err)
{
	result_set(r, grpc_status_from_err(code), err->msg);
}

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

/* Convert storepb matchers; matchers are released with the arena. */
static int convert_matchers(arena_t *a, Thanos__LabelMatcher **in, size_t n, matcher_t **out, err_t *err)
{
	matcher_t *ms = ARENA_NEW_ARRAY(a, matcher_t, n ? n : 1);
	for (size_t i = 0; i < n; i++) {
		if ((unsigned)in[i]->type > 3)
			return err_set(err, ERR_INVALID, "matcher %zu: unknown type %d", i, (int)in[i]->type);
		int rc = matcher_init(&ms[i], (match_type_t)in[i]->type, str_c(in[i]->name), str_c(in[i]->value), err);
		if (rc)
			return rc;
		arena_on_release(a, release_matcher, &ms[i]);
	}
	*out = ms;
	return 0;
}

static Thanos__AggrChunk *make_chunk(arena_t *a, int64_t mint, int64_t maxt, uint8_t enc, const uint8_t *p,
				     size_t len)
{
	Thanos__AggrChunk *ac = ARENA_NEW(a, Thanos__AggrChunk);
	thanos__aggr_chunk__init(ac);
	ac->min_time = mint;
	ac->max_time = maxt;
	ac->raw = ARENA_NEW(a, Thanos__Chunk);
	thanos__chunk__init(ac->raw);
	/* TSDB encoding byte (XOR=1, histogram=2, float histogram=3) to storepb (XOR=0, ...). */
	ac->raw->type = enc == CHUNK_ENC_HISTOGRAM	   ? THANOS__CHUNK__ENCODING__HISTOGRAM
			: enc == CHUNK_ENC_FLOAT_HISTOGRAM ? THANOS__CHUNK__ENCODING__FLOAT_HISTOGRAM
							   : THANOS__CHUNK__ENCODING__XOR;
	ac->raw->data.data = (uint8_t *)p;
	ac->raw->data.len = len;
	return ac;
}

/* An aggregate chunk (encoding 0xFF) as an AggrChunk with the requested aggregates (thanos.md §2.3);
 * NULL with err set when one of them is not in the chunk. */
static Thanos__AggrChunk *make_aggr_chunk(arena_t *a, const chunk_t *c, unsigned aggregates, err_t *err)
{
	chunk_t subs[AGGR_N];
	if (aggr_chunk_split(c->data, c->len, subs, err))
		return NULL;
	Thanos__AggrChunk *ac = ARENA_NEW(a, Thanos__AggrChunk);
	thanos__aggr_chunk__init(ac);
	ac->min_time = c->mint;
	ac->max_time = c->maxt;
	Thanos__Chunk **dst[AGGR_N] = {&ac->count, &ac->sum, &ac->min, &ac->max, &ac->counter};
	for (int i = 0; i < AGGR_N; i++) {
		if (!(aggregates & 1u << i))
			continue;
		if (!subs[i].len) {
			err_set(err, ERR_CORRUPT, "aggregate %s does not exist in the chunk [%lld, %lld]",
			        aggr_type_name(i), (long long)c->mint, (long long)c->maxt);
			return NULL;
		}
		Thanos__Chunk *ch = ARENA_NEW(a, Thanos__Chunk);
		thanos__chunk__init(ch);
		ch->type = subs[i].enc == CHUNK_ENC_HISTOGRAM ? THANOS__CHUNK__ENCODING__HISTOGRAM
		           : subs[i].enc == CHUNK_ENC_FLOAT_HISTOGRAM
		               ? THANOS__CHUNK__ENCODING__FLOAT_HISTOGRAM
		               : THANOS__CHUNK__ENCODING__XOR;
		ch->data.data = (uint8_t *)subs[i].data;
		ch->data.len = subs[i].len;
		*dst[i] = ch;
	}
	return ac;
}

/* Encode the current series' samples into XOR chunks of <= 120 samples (scratch arena). */
static int encode_samples(series_stream_t *st, Thanos__Series *s, err_t *err)
{
	arena_t *a = &st->scratch;
	size_t cap = 4;
	s->chunks = ARENA_NEW_ARRAY(a, Thanos__AggrChunk *, cap);
	sample_iter_t *it = series_set_samples(st->set);
	int64_t t[128], first = 0, last = 0;
	double v[128];
	int k;
	xor_enc_reset(&st->enc);
	for (;;) {
		k = sample_iter_next_batch(it, t, v, 128, err);
		if (k < 0)
			return k;
		for (int i = 0; i <= k; i++) {
			bool end = k == 0 && i == 0;
			if (i == k && !end)
				break;
			if (!end) {
				if (xor_enc_count(&st->enc) == 0)
					first = t[i];
				xor_enc_append(&st->enc, t[i], v[i]);
				last = t[i];
			}
			if ((end && xor_enc_count(&st->enc) > 0) || xor_enc_count(&st->enc) == XOR_SAMPLES_PER_CHUNK) {
				if (s->n_chunks == cap) {
					s->chunks = arena_realloc(a, s->chunks, cap * sizeof *s->chunks,
								  2 * cap * sizeof *s->chunks);
					cap *= 2;
				}
				size_t len;
				const uint8_t *p = xor_enc_bytes(&st->enc, &len);
				s->chunks[s->n_chunks++] =
					make_chunk(a, first, last, CHUNK_ENC_XOR, arena_memdup(a, p, len), len);
				xor_enc_reset(&st->enc);
			}
		}
		if (k == 0)
			return 0;
	}
}

static int send_series(sink_t *k, series_stream_t *st, err_t *err)
{
	arena_t *a = &st->scratch;
	arena_reset(a);
	const labels_t *ls = series_set_labels(st->set);
	/* only the chunks go into the struct: the message is written by seriesenc straight from ls */
	Thanos__Series *s = ARENA_NEW(a, Thanos__Series);
	thanos__series__init(s);
	if (!st->skip_chunks) {
		const chunk_t *cs;
		int n = st->set->ops->chunks ? st->set->ops->chunks(st->set, &cs) : -1;
		if (n >= 0) {
			s->n_chunks = (size_t)n;
			s->chunks = ARENA_NEW_ARRAY(a, Thanos__AggrChunk *, n ? (size_t)n : 1);
			for (int i = 0; i < n; i++) {
				if (cs[i].enc != CHUNK_ENC_AGGR) {
					s->chunks[i] = make_chunk(a, cs[i].mint, cs[i].maxt, cs[i].enc, cs[i].data, cs[i].len);
					continue;
				}
				if (!(s->chunks[i] = make_aggr_chunk(a, &cs[i], st->aggregates, err)))
					return err->code;
			}
		} else {
			int rc = encode_samples(st, s, err);
			if (rc < 0)
				return rc;
		}
	}
	size_t len = seriesenc_size(ls, s->chunks, s->n_chunks);
	seriesenc_write(sink_reserve(k, len), len, ls, s->chunks, s->n_chunks);
	sink_commit(k);
	return 0;
}

/* Send series until the sink holds limit bytes (false: more to come), or the stream ends (true, with
 * the status in r): the last series, then the set's warnings, or an error. */
static bool series_fill(series_stream_t *st, grpc_call_t *call, sink_t *k, size_t limit, result_t *r)
{
	err_t err = {0};
	while (sink_size(k) < limit) {
		if (grpc_call_cancelled(call)) {
			result_set(r, GRPC_CANCELLED, "call cancelled");
			return true;
		}
		int rc = series_set_next(st->set, &err);
		if (rc < 0) {
			result_err(r, rc, &err);
			return true;
		}
		if (rc == 0) {
			const char *const *w = NULL;
			size_t nw = st->set->ops->warnings ? st->set->ops->warnings(st->set, &w) : 0;
			for (size_t i = 0; i < nw; i++) {
				Thanos__SeriesResponse resp = THANOS__SERIES_RESPONSE__INIT;
				resp.result_case = THANOS__SERIES_RESPONSE__RESULT_WARNING;
				resp.warning = (char *)w[i];
				size_t len = thanos__series_response__get_packed_size(&resp);
				thanos__series_response__pack(&resp, sink_reserve(k, len));
				sink_commit(k);
			}
			result_set(r, GRPC_OK, NULL);
			return true;
		}
		if ((rc = send_series(k, st, &err)) < 0) {
			result_err(r, rc, &err);
			return true;
		}
	}
	return false;
}

static void series_close(series_stream_t *st)
{
	if (!st->set)
		return;
	series_set_close(st->set);
	st->set = NULL;
	xor_enc_release(&st->enc);
	arena_release(&st->scratch);
}

/* Decode the request and open the series set (st->set) in the call's arena; false with r set if
 * the call is already over. */
static bool series_open(store_t *store, grpc_call_t *call, str_t msg, series_stream_t *st, result_t *r)
{
	arena_t *a = grpc_call_arena(call);
	ProtobufCAllocator al = {pb_alloc, pb_free, a};
	Thanos__SeriesRequest *req = thanos__series_request__unpack(&al, msg.n, (const uint8_t *)msg.p);
	if (!req) {
		result_set(r, GRPC_INVALID_ARGUMENT, "Series: cannot decode SeriesRequest");
		return false;
	}
	err_t err = {0};
	matcher_t *ms;
	int rc = convert_matchers(a, req->matchers, req->n_matchers, &ms, &err);
	if (rc) {
		result_set(r, GRPC_INVALID_ARGUMENT, err.msg);
		return false;
	}
	if (req->n_matchers == 0) {
		result_set(r, GRPC_INVALID_ARGUMENT, "no matchers specified (excluding selector labels)");
		return false;
	}
	store_series_req_t sr = {
		.mint = req->min_time,
		.maxt = req->max_time,
		.ms = ms,
		.nms = req->n_matchers,
		.skip_chunks = req->skip_chunks,
		.limit = req->limit,
		.abort_on_error = req->partial_response_disabled ||
				  req->partial_response_strategy == THANOS__PARTIAL_RESPONSE_STRATEGY__ABORT,
		.func = req->query_hints && req->query_hints->func ? req->query_hints->func->name : NULL,
	};
	if (req->n_without_replica_labels) {
		/* passed on as asked; a store without support ignores it (store.h) */
		str_t *rl = ARENA_NEW_ARRAY(a, str_t, req->n_without_replica_labels);
		for (size_t i = 0; i < req->n_without_replica_labels; i++)
			rl[i] = str_c(req->without_replica_labels[i]);
		sr.replica_labels = rl;
		sr.nreplica_labels = req->n_without_replica_labels;
		sr.without_replica_labels = true;
	}
	sr.max_resolution = req->max_resolution_window > 0 ? req->max_resolution_window : 0;
	for (size_t i = 0; i < req->n_aggregates; i++)
		if (req->aggregates[i] >= THANOS__AGGR__COUNT && req->aggregates[i] <= THANOS__AGGR__COUNTER)
			sr.aggregates |= 1u << (req->aggregates[i] - THANOS__AGGR__COUNT);
	st->aggregates = sr.aggregates ? sr.aggregates : 1u << AGGR_COUNT | 1u << AGGR_SUM;
	st->skip_chunks = req->skip_chunks;
	rc = store_series(store, a, &sr, &st->set, &err);
	if (rc < 0) {
		st->set = NULL;
		result_err(r, rc, &err);
		return false;
	}
	arena_init(&st->scratch, 16 * 1024);
	xor_enc_init(&st->enc);
	return true;
}

static void send_strings(grpc_call_t *call, sink_t *k, bool names, const store_strings_t *r)
{
	arena_t *a = grpc_call_arena(call);
	char **v = ARENA_NEW_ARRAY(a, char *, r->n ? r->n : 1);
	for (size_t i = 0; i < r->n; i++)
		v[i] = arena_strndup(a, r->v[i].p, r->v[i].n);
	char **w = ARENA_NEW_ARRAY(a, char *, r->nwarnings ? r->nwarnings : 1);
	for (size_t i = 0; i < r->nwarnings; i++)
		w[i] = (char *)r->warnings[i];
	size_t len;
	if (names) {
		Thanos__LabelNamesResponse resp = THANOS__LABEL_NAMES_RESPONSE__INIT;
		resp.n_names = r->n, resp.names = v, resp.n_warnings = r->nwarnings, resp.warnings = w;
		len = thanos__label_names_response__get_packed_size(&resp);
		thanos__label_names_response__pack(&resp, sink_reserve(k, len));
	} else {
		Thanos__LabelValuesResponse resp = THANOS__LABEL_VALUES_RESPONSE__INIT;
		resp.n_values = r->n, resp.values = v, resp.n_warnings = r->nwarnings, resp.warnings = w;
		len = thanos__label_values_response__get_packed_size(&resp);
		thanos__label_values_response__pack(&resp, sink_reserve(k, len));
	}
	sink_commit(k);
}

static void run_labels(store_t *store, grpc_call_t *call, str_t msg, sink_t *k, bool names, result_t *res)
{
	arena_t *a = grpc_call_arena(call);
	ProtobufCAllocator al = {pb_alloc, pb_free, a};
	store_label_req_t lr = {0};
	Thanos__LabelMatcher **pm;
	size_t npm;
	bool abort_on_error;
	if (names) {
		Thanos__LabelNamesRequest *req = thanos__label_names_request__unpack(&al, msg.n, (const uint8_t *)msg.p);
		if (!req) {
			result_set(res, GRPC_INVALID_ARGUMENT, "LabelNames: cannot decode LabelNamesRequest");
			return;
		}
		lr.mint = req->start, lr.maxt = req->end, lr.limit = req->limit;
		pm = req->matchers, npm = req->n_matchers;
		abort_on_error = req->partial_response_disabled ||
				 req->partial_response_strategy == THANOS__PARTIAL_RESPONSE_STRATEGY__ABORT;
	} else {
		Thanos__LabelValuesRequest *req =
			thanos__label_values_request__unpack(&al, msg.n, (const uint8_t *)msg.p);
		if (!req) {
			result_set(res, GRPC_INVALID_ARGUMENT, "LabelValues: cannot decode LabelValuesRequest");
			return;
		}
		if (!req->label[0]) {
			result_set(res, GRPC_INVALID_ARGUMENT, "label name parameter cannot be empty");
			return;
		}
		lr.mint = req->start, lr.maxt = req->end, lr.limit = req->limit;
		lr.name = str_c(req->label);
		pm = req->matchers, npm = req->n_matchers;
		abort_on_error = req->partial_response_disabled ||
				 req->partial_response_strategy == THANOS__PARTIAL_RESPONSE_STRATEGY__ABORT;
	}
	err_t err = {0};
	matcher_t *ms;
	if (convert_matchers(a, pm, npm, &ms, &err)) {
		result_set(res, GRPC_INVALID_ARGUMENT, err.msg);
		return;
	}
	lr.ms = ms, lr.nms = npm, lr.abort_on_error = abort_on_error;
	store_strings_t r;
	int rc = names ? store_label_names(store, a, &lr, &r, &err) : store_label_values(store, a, &lr, &r, &err);
	if (rc < 0) {
		result_err(res, rc, &err);
		return;
	}
	send_strings(call, k, names, &r);
	result_set(res, GRPC_OK, NULL);
}

static void run_info(store_t *store, const char *component, grpc_call_t *call, sink_t *k, result_t *res)
{
	arena_t *a = grpc_call_arena(call);
	store_info_t info;
	err_t err = {0};
	int rc = store_info(store, a, &info, &err);
	if (rc < 0) {
		result_err(res, rc, &err);
		return;
	}
	Thanos__Info__InfoResponse resp = THANOS__INFO__INFO_RESPONSE__INIT;
	/* The type the service was registered with names the serving process; else the store's own. */
	resp.componenttype = (char *)(component ? component : info.component_type ? info.component_type : "");
	resp.n_label_sets = info.nlabel_sets;
	resp.label_sets = ARENA_NEW_ARRAY(a, Thanos__ZLabelSet *, info.nlabel_sets ? info.nlabel_sets : 1);
	for (size_t i = 0; i < info.nlabel_sets; i++) {
		const labels_t *ls = &info.label_sets[i];
		Thanos__ZLabelSet *zs = ARENA_NEW(a, Thanos__ZLabelSet);
		thanos__zlabel_set__init(zs);
		zs->n_labels = ls->n;
		zs->labels = ARENA_NEW_ARRAY(a, Thanos__Label *, ls->n ? ls->n : 1);
		for (size_t j = 0; j < ls->n; j++) {
			Thanos__Label *l = ARENA_NEW(a, Thanos__Label);
			thanos__label__init(l);
			l->name = arena_strndup(a, ls->v[j].name.p, ls->v[j].name.n);
			l->value = arena_strndup(a, ls->v[j].value.p, ls->v[j].value.n);
			zs->labels[j] = l;
		}
		resp.label_sets[i] = zs;
	}
	Thanos__Info__RulesInfo ri = THANOS__INFO__RULES_INFO__INIT;
	if (!strcmp(resp.componenttype, "rule")) /* a ruler serves thanos.Rules too */
		resp.rules = &ri;
	Thanos__Info__QueryAPIInfo qi = THANOS__INFO__QUERY_APIINFO__INIT;
	if (!strcmp(resp.componenttype, "query")) /* a querier serves thanos.Query too (query/querysrv.h) */
		resp.query = &qi;
	Thanos__Info__StoreInfo si = THANOS__INFO__STORE_INFO__INIT;
	si.min_time = info.mint;
	si.max_time = info.maxt;
	si.supports_without_replica_labels = info.supports_without_replica_labels;
	resp.store = &si;
	size_t len = thanos__info__info_response__get_packed_size(&resp);
	thanos__info__info_response__pack(&resp, sink_reserve(k, len));
	sink_commit(k);
	result_set(res, GRPC_OK, NULL);
}

/* ---- the service ---- */

enum { K_SERIES, K_LABEL_NAMES, K_LABEL_VALUES, K_INFO, NKINDS };
#define LOOP_CALLS 2 /* first_batch_on_loop: calls made on the loop at once */
enum { CLS_SERIES, CLS_LABELS, CLS_INFO, NCLS };
#define INFO_SLOTS 2

typedef struct job job_t;
typedef struct pool pool_t;

struct store_service {
	store_t *store;
	const char *component;
	pool_t *pool; /* NULL: loop mode */
	struct binding {
		store_service_t *svc;
		int kind;
	} bind[NKINDS];
};

/* ---- loop mode: handlers and producers on the loop thread ---- */

static void finish_result(grpc_call_t *call, const result_t *r)
{
	grpc_call_finish(call, r->status, r->err.msg[0] ? r->err.msg : NULL);
}

static void loop_series_produce(grpc_call_t *call, void *arg)
{
	series_stream_t *st = arg;
	sink_t k = {.call = call};
	result_t r;
	if (series_fill(st, call, &k, GRPC_OUT_HIGH, &r) && !grpc_call_cancelled(call))
		finish_result(call, &r);
}

static void loop_series_done(grpc_call_t *call, void *arg)
{
	(void)call;
	series_close(arg);
}

static void loop_handle(grpc_call_t *call, str_t msg, void *arg)
{
	struct binding *b = arg;
	store_service_t *svc = b->svc;
	sink_t k = {.call = call};
	result_t r;
	switch (b->kind) {
	case K_SERIES: {
		series_stream_t *st = ARENA_NEW(grpc_call_arena(call), series_stream_t);
		if (!series_open(svc->store, call, msg, st, &r)) {
			finish_result(call, &r);
			return;
		}
		grpc_call_set_producer(call, loop_series_produce, loop_series_done, st);
		return;
	}
	case K_LABEL_NAMES:
	case K_LABEL_VALUES:
		run_labels(svc->store, call, msg, &k, b->kind == K_LABEL_NAMES, &r);
		break;
	default:
		run_info(svc->store, svc->component, call, &k, &r);
		break;
	}
	finish_result(call, &r);
}

/* ---- pool mode: every call runs on a worker, its output handed to the loop in batches ----
 *
 * A job is one call. Loop-thread fields: queued/busy and the queue links. A worker runs the job only
 * while busy is set (set on the loop before workers_submit, cleared by the loop when the worker's
 * grpc_call_post arrives), so the job's worker fields (stream, out, result, closed) are touched by
 * one thread at a time, handed over through the pool's and the loop's queues. */
struct job {
	store_service_t *svc;
	grpc_call_t *call; /* held until job_end */
	int kind, cls;
	str_t msg;         /* the request, in the call's arena */
	/* loop thread */
	bool queued, busy;
	job_t *prev, *next;
	/* set by the loop before submitting: stop and release (the call is gone) */
	bool abandon;
	/* loop thread: its steps run on the loop (first_batch_on_loop, started while at most one other
	 * call ran, on the loop); cleared for good once there are more calls */
	bool on_loop;
	bool started_counted; /* job_start ran (nworker counts it while !on_loop) */
	/* worker */
	bool started, closed; /* closed: nothing open any more, result final */
	series_stream_t st;
	sink_t sink;
	buf_t out;
	result_t res;
};

struct pool {
	workers_t *workers;
	loop_t *loop;
	size_t batch;
	bool first_on_loop; /* cfg.first_batch_on_loop */
	size_t njobs; /* loop thread */
	size_t nworker; /* loop thread: jobs started that are not on the loop */
	struct cls {
		int slots, running;
		job_t *head, *tail;
		atomic_int nrunning, nqueued; /* mirrors for store_grpc_stats */
	} cls[NCLS];
};

static void job_submit(job_t *j);
static void job_deliver(grpc_call_t *call, void *arg);
static void job_dropped(grpc_call_t *call, void *arg);

static void job_work(void *arg)
{
	job_t *j = arg;
	grpc_call_t *call = j->call;
	buf_reset(&j->out);
	if (j->abandon || grpc_call_cancelled(call)) {
		series_close(&j->st);
		result_set(&j->res, GRPC_CANCELLED, "call cancelled");
		j->closed = true;
	} else if (!j->started) {
		j->started = true;
		j->sink = (sink_t){.out = &j->out, .compress = grpc_call_compresses(call), .tmp = BUF_INIT};
		store_t *store = j->svc->store;
		switch (j->kind) {
		case K_SERIES:
			if (!series_open(store, call, j->msg, &j->st, &j->res))
				j->closed = true;
			break;
		case K_LABEL_NAMES:
		case K_LABEL_VALUES:
			run_labels(store, call, j->msg, &j->sink, j->kind == K_LABEL_NAMES, &j->res);
			j->closed = true;
			break;
		default:
			run_info(store, j->svc->component, call, &j->sink, &j->res);
			j->closed = true;
			break;
		}
	}
	if (!j->closed && series_fill(&j->st, call, &j->sink, j->svc->pool->batch, &j->res)) {
		series_close(&j->st);
		j->closed = true;
	}
	if (j->closed)
		buf_release(&j->sink.tmp);
	grpc_call_post(call, job_deliver, job_dropped, j);
}

static void job_submit(job_t *j)
{
	BUG_ON(j->busy); /* one worker per job at a time */
	j->busy = true;
	workers_submit(j->svc->pool->workers, job_work, j);
}

/* The job's next step: on the loop thread while there are at most LOOP_CALLS calls and none is on a
 * worker (job_work posts its result back to the loop, delivered on the loop's next round as a
 * worker's would be), else on a worker. A lone call's answer (or two calls', interleaved) is thus
 * made batch by batch between the loop's rounds, without two thread switches per batch; the loop
 * still serves other connections between batches, and a further call sends all to the workers. */
static void job_step(job_t *j)
{
	pool_t *p = j->svc->pool;
	if (j->on_loop && p->njobs <= LOOP_CALLS && !p->nworker) {
		BUG_ON(j->busy);
		j->busy = true;
		job_work(j);
		return;
	}
	if (j->on_loop) {
		j->on_loop = false;
		p->nworker++;
	}
	job_submit(j);
}

static void job_start(job_t *j, bool on_loop)
{
	struct cls *c = &j->svc->pool->cls[j->cls];
	c->running++;
	atomic_store(&c->nrunning, c->running);
	j->on_loop = on_loop;
	j->started_counted = true;
	if (!on_loop)
		j->svc->pool->nworker++;
	job_step(j);
}

static void queue_remove(struct cls *c, job_t *j)
{
	if (j->prev)
		j->prev->next = j->next;
	else
		c->head = j->next;
	if (j->next)
		j->next->prev = j->prev;
	else
		c->tail = j->prev;
	j->prev = j->next = NULL;
	j->queued = false;
	atomic_fetch_sub(&c->nqueued, 1);
}

/* The job is over (its worker is done with it): release the call and, if it held a slot, give the
 * slot to the oldest queued call of its class. */
static void job_end(job_t *j, bool had_slot)
{
	pool_t *p = j->svc->pool;
	struct cls *c = &p->cls[j->cls];
	if (j->started_counted && !j->on_loop)
		p->nworker--;
	grpc_call_release(j->call);
	buf_release(&j->out);
	free(j);
	p->njobs--;
	if (!had_slot)
		return;
	c->running--;
	atomic_store(&c->nrunning, c->running);
	if (c->head) {
		job_t *next = c->head;
		queue_remove(c, next);
		job_start(next, false);
	}
}

/* Loop thread, the call is live: send the worker's batch; finish, or wait for the output to drain. */
static void job_deliver(grpc_call_t *call, void *arg)
{
	job_t *j = arg;
	/* Sending pumps the connection, which may call job_produce: busy stays set until the batch is
	 * out of j->out, so that cannot start a second worker on the job. */
	if (j->closed) {
		/* the last batch and the status in one write; finishing may end the stream and run done
		 * at once: detach the job first */
		grpc_call_set_producer_idle(call, NULL, NULL, NULL);
		j->busy = false;
		grpc_call_finish_framed(call, j->out.p, j->out.n, j->res.status,
		                        j->res.err.msg[0] ? j->res.err.msg : NULL);
		job_end(j, true);
		return;
	}
	grpc_call_send_framed(call, j->out.p, j->out.n);
	j->busy = false;
	if (grpc_call_pending(call) < GRPC_OUT_LOW)
		job_step(j);
}

/* Loop thread, the call ended while the worker ran: release, or let the worker close the stream. */
static void job_dropped(grpc_call_t *call, void *arg)
{
	job_t *j = arg;
	(void)call;
	j->busy = false;
	if (j->closed) {
		job_end(j, true);
		return;
	}
	j->abandon = true;
	job_submit(j);
}

/* Producer: the call's output drained below the low-water mark. */
static void job_produce(grpc_call_t *call, void *arg)
{
	job_t *j = arg;
	(void)call;
	if (!j->queued && !j->busy && !j->closed)
		job_step(j);
}

/* The call ended (peer reset, deadline, connection gone) before the job did. */
static void job_done(grpc_call_t *call, void *arg)
{
	job_t *j = arg;
	(void)call;
	if (j->queued) {
		queue_remove(&j->svc->pool->cls[j->cls], j);
		job_end(j, false);
		return;
	}
	if (j->busy)
		return; /* its post will be dropped: job_dropped */
	j->abandon = true;
	job_submit(j);
}

static void pool_handle(grpc_call_t *call, str_t msg, void *arg)
{
	struct binding *b = arg;
	store_service_t *svc = b->svc;
	pool_t *p = svc->pool;
	job_t *j = xcalloc(1, sizeof *j);
	j->svc = svc;
	j->call = call;
	j->kind = b->kind;
	j->cls = b->kind == K_SERIES ? CLS_SERIES : b->kind == K_INFO ? CLS_INFO : CLS_LABELS;
	j->msg = msg;
	buf_init(&j->out);
	grpc_call_hold(call);
	grpc_call_set_producer_idle(call, job_produce, job_done, j);
	p->njobs++;
	struct cls *c = &p->cls[j->cls];
	if (c->running < c->slots) {
		job_start(j, p->first_on_loop && p->njobs <= LOOP_CALLS && !p->nworker &&
		                 (j->kind == K_SERIES || j->kind == K_INFO));
		return;
	}
	j->queued = true;
	j->prev = c->tail;
	if (c->tail)
		c->tail->next = j;
	else
		c->head = j;
	c->tail = j;
	atomic_fetch_add(&c->nqueued, 1);
}

/* ---- registration ---- */

static store_service_t *service_new(grpc_server_t *srv, store_t *store, const char *component_type,
				    grpc_handler_fn handler)
{
	store_service_t *svc = xcalloc(1, sizeof *svc);
	svc->store = store;
	svc->component = component_type ? xstrdup(component_type) : NULL;
	for (int k = 0; k < NKINDS; k++)
		svc->bind[k] = (struct binding){svc, k};
	grpc_server_register(srv, "/thanos.Store/Series", handler, &svc->bind[K_SERIES]);
	grpc_server_register(srv, "/thanos.Store/LabelNames", handler, &svc->bind[K_LABEL_NAMES]);
	grpc_server_register(srv, "/thanos.Store/LabelValues", handler, &svc->bind[K_LABEL_VALUES]);
	grpc_server_register(srv, "/thanos.info.Info/Info", handler, &svc->bind[K_INFO]);
	return svc;
}

store_service_t *store_grpc_register(grpc_server_t *srv, store_t *store, const char *component_type)
{
	return service_new(srv, store, component_type, loop_handle);
}

store_service_t *store_grpc_register_pool(grpc_server_t *srv, store_t *store, const char *component_type,
					  const store_grpc_config_t *cfg)
{
	store_service_t *svc = service_new(srv, store, component_type, pool_handle);
	pool_t *p = xcalloc(1, sizeof *p);
	p->loop = grpc_server_loop(srv);
	p->batch = cfg && cfg->batch_bytes ? cfg->batch_bytes : GRPC_OUT_HIGH;
	p->first_on_loop = cfg && cfg->first_batch_on_loop;
	p->cls[CLS_SERIES].slots = cfg && cfg->series_concurrency > 0 ? cfg->series_concurrency : 20;
	p->cls[CLS_LABELS].slots = cfg && cfg->label_concurrency > 0 ? cfg->label_concurrency : 4;
	p->cls[CLS_INFO].slots = INFO_SLOTS;
	int threads = 0;
	for (int i = 0; i < NCLS; i++) {
		atomic_init(&p->cls[i].nrunning, 0);
		atomic_init(&p->cls[i].nqueued, 0);
		threads += p->cls[i].slots;
	}
	/* One thread per slot: a started job never waits for a thread, so slow calls of one class
	 * (blocking bucket or remote reads) cannot delay another class. */
	p->workers = workers_new(threads);
	svc->pool = p;
	return svc;
}

void store_grpc_stats(store_service_t *svc, store_grpc_stats_t *out)
{
	*out = (store_grpc_stats_t){0};
	if (!svc->pool)
		return;
	out->series_running = atomic_load(&svc->pool->cls[CLS_SERIES].nrunning);
	out->series_queued = atomic_load(&svc->pool->cls[CLS_SERIES].nqueued);
	out->labels_running = atomic_load(&svc->pool->cls[CLS_LABELS].nrunning);
	out->labels_queued = atomic_load(&svc->pool->cls[CLS_LABELS].nqueued);
	out->info_running = atomic_load(&svc->pool->cls[CLS_INFO].nrunning);
	out->info_queued = atomic_load(&svc->pool->cls[CLS_INFO].nqueued);
}

void store_grpc_service_free(store_service_t *svc)
{
	if (!svc)
		return;
	pool_t *p = svc->pool;
	if (p) {
		/* Every call has ended (listeners freed); collect the workers' last posts so each job
		 * releases its call. Abandoned jobs finish as soon as their store call returns. */
		while (p->njobs > 0)
			if (!loop_run_posts(p->loop))
				usleep(1000);
		workers_free(p->workers);
		free(p);
	}
	free((char *)svc->component);
	free(svc);
}
