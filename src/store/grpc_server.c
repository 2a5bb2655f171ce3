/*
 * grpc_server.c — thanos.Store and thanos.info.Info over any store_t (see grpc_server.h).
 */
#include "store/grpc_server.h"

#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "info.pb-c.h"
#include "storepb_rpc.pb-c.h"
#include "tsdb/xor.h"

struct store_service {
	store_t *store;
	const char *component;
};

typedef struct series_stream {
	store_t *store;
	series_set_t *set;
	bool skip_chunks;
	arena_t scratch; /* one series' message */
	xor_enc_t enc;
} series_stream_t;

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

static void finish_err(grpc_call_t *call, int code, const err_t *err)
{
	grpc_call_finish(call, grpc_status_from_err(code), err->msg);
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

static int send_series(grpc_call_t *call, series_stream_t *st, err_t *err)
{
	arena_t *a = &st->scratch;
	arena_reset(a);
	const labels_t *ls = series_set_labels(st->set);
	Thanos__Series *s = ARENA_NEW(a, Thanos__Series);
	thanos__series__init(s);
	s->n_labels = ls->n;
	s->labels = ARENA_NEW_ARRAY(a, Thanos__Label *, ls->n ? ls->n : 1);
	Thanos__Label *lv = ARENA_NEW_ARRAY(a, Thanos__Label, ls->n ? ls->n : 1);
	for (size_t i = 0; i < ls->n; i++) {
		thanos__label__init(&lv[i]);
		lv[i].name = arena_strndup(a, ls->v[i].name.p, ls->v[i].name.n);
		lv[i].value = arena_strndup(a, ls->v[i].value.p, ls->v[i].value.n);
		s->labels[i] = &lv[i];
	}
	if (!st->skip_chunks) {
		const chunk_t *cs;
		int n = st->set->ops->chunks ? st->set->ops->chunks(st->set, &cs) : -1;
		if (n >= 0) {
			s->n_chunks = (size_t)n;
			s->chunks = ARENA_NEW_ARRAY(a, Thanos__AggrChunk *, n ? (size_t)n : 1);
			for (int i = 0; i < n; i++)
				s->chunks[i] = make_chunk(a, cs[i].mint, cs[i].maxt, cs[i].enc, cs[i].data, cs[i].len);
		} else {
			int rc = encode_samples(st, s, err);
			if (rc < 0)
				return rc;
		}
	}
	Thanos__SeriesResponse resp = THANOS__SERIES_RESPONSE__INIT;
	resp.result_case = THANOS__SERIES_RESPONSE__RESULT_SERIES;
	resp.series = s;
	size_t len = thanos__series_response__get_packed_size(&resp);
	thanos__series_response__pack(&resp, grpc_call_reserve(call, len));
	return 0;
}

static void series_produce(grpc_call_t *call, void *arg)
{
	series_stream_t *st = arg;
	err_t err = {0};
	while (grpc_call_pending(call) < GRPC_OUT_HIGH && !grpc_call_cancelled(call)) {
		int rc = series_set_next(st->set, &err);
		if (rc < 0) {
			finish_err(call, rc, &err);
			return;
		}
		if (rc == 0) {
			const char *const *w = NULL;
			size_t nw = st->set->ops->warnings ? st->set->ops->warnings(st->set, &w) : 0;
			for (size_t i = 0; i < nw; i++) {
				Thanos__SeriesResponse resp = THANOS__SERIES_RESPONSE__INIT;
				resp.result_case = THANOS__SERIES_RESPONSE__RESULT_WARNING;
				resp.warning = (char *)w[i];
				size_t len = thanos__series_response__get_packed_size(&resp);
				thanos__series_response__pack(&resp, grpc_call_reserve(call, len));
			}
			grpc_call_finish(call, GRPC_OK, NULL);
			return;
		}
		if ((rc = send_series(call, st, &err)) < 0) {
			finish_err(call, rc, &err);
			return;
		}
	}
}

static void series_done(grpc_call_t *call, void *arg)
{
	series_stream_t *st = arg;
	(void)call;
	series_set_close(st->set);
	st->set = NULL;
	xor_enc_release(&st->enc);
	arena_release(&st->scratch);
}

static void handle_series(grpc_call_t *call, str_t msg, void *arg)
{
	store_service_t *svc = arg;
	arena_t *a = grpc_call_arena(call);
	ProtobufCAllocator al = {pb_alloc, pb_free, a};
	Thanos__SeriesRequest *req = thanos__series_request__unpack(&al, msg.n, (const uint8_t *)msg.p);
	if (!req) {
		grpc_call_finish(call, GRPC_INVALID_ARGUMENT, "Series: cannot decode SeriesRequest");
		return;
	}
	err_t err = {0};
	matcher_t *ms;
	int rc = convert_matchers(a, req->matchers, req->n_matchers, &ms, &err);
	if (rc) {
		grpc_call_finish(call, GRPC_INVALID_ARGUMENT, err.msg);
		return;
	}
	if (req->n_matchers == 0) {
		grpc_call_finish(call, GRPC_INVALID_ARGUMENT, "no matchers specified (excluding selector labels)");
		return;
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
	series_stream_t *st = ARENA_NEW(a, series_stream_t);
	st->store = svc->store;
	st->skip_chunks = req->skip_chunks;
	rc = store_series(svc->store, a, &sr, &st->set, &err);
	if (rc < 0) {
		finish_err(call, rc, &err);
		return;
	}
	arena_init(&st->scratch, 16 * 1024);
	xor_enc_init(&st->enc);
	grpc_call_set_producer(call, series_produce, series_done, st);
}

static void send_strings(grpc_call_t *call, bool names, const store_strings_t *r)
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
		thanos__label_names_response__pack(&resp, grpc_call_reserve(call, len));
	} else {
		Thanos__LabelValuesResponse resp = THANOS__LABEL_VALUES_RESPONSE__INIT;
		resp.n_values = r->n, resp.values = v, resp.n_warnings = r->nwarnings, resp.warnings = w;
		len = thanos__label_values_response__get_packed_size(&resp);
		thanos__label_values_response__pack(&resp, grpc_call_reserve(call, len));
	}
	grpc_call_finish(call, GRPC_OK, NULL);
}

static void handle_labels(grpc_call_t *call, str_t msg, store_service_t *svc, bool names)
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
			grpc_call_finish(call, GRPC_INVALID_ARGUMENT, "LabelNames: cannot decode LabelNamesRequest");
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
			grpc_call_finish(call, GRPC_INVALID_ARGUMENT, "LabelValues: cannot decode LabelValuesRequest");
			return;
		}
		if (!req->label[0]) {
			grpc_call_finish(call, GRPC_INVALID_ARGUMENT, "label name parameter cannot be empty");
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
		grpc_call_finish(call, GRPC_INVALID_ARGUMENT, err.msg);
		return;
	}
	lr.ms = ms, lr.nms = npm, lr.abort_on_error = abort_on_error;
	store_strings_t r;
	int rc = names ? store_label_names(svc->store, a, &lr, &r, &err) : store_label_values(svc->store, a, &lr, &r, &err);
	if (rc < 0) {
		finish_err(call, rc, &err);
		return;
	}
	send_strings(call, names, &r);
}

static void handle_label_names(grpc_call_t *call, str_t msg, void *arg)
{
	handle_labels(call, msg, arg, true);
}

static void handle_label_values(grpc_call_t *call, str_t msg, void *arg)
{
	handle_labels(call, msg, arg, false);
}

static void handle_info(grpc_call_t *call, str_t msg, void *arg)
{
	store_service_t *svc = arg;
	arena_t *a = grpc_call_arena(call);
	(void)msg; /* InfoRequest is empty */
	store_info_t info;
	err_t err = {0};
	int rc = store_info(svc->store, a, &info, &err);
	if (rc < 0) {
		finish_err(call, rc, &err);
		return;
	}
	Thanos__Info__InfoResponse resp = THANOS__INFO__INFO_RESPONSE__INIT;
	resp.componenttype = (char *)svc->component;
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
	Thanos__Info__StoreInfo si = THANOS__INFO__STORE_INFO__INIT;
	si.min_time = info.mint;
	si.max_time = info.maxt;
	resp.store = &si;
	size_t len = thanos__info__info_response__get_packed_size(&resp);
	thanos__info__info_response__pack(&resp, grpc_call_reserve(call, len));
	grpc_call_finish(call, GRPC_OK, NULL);
}

store_service_t *store_grpc_register(grpc_server_t *srv, store_t *store, const char *component_type)
{
	store_service_t *svc = xcalloc(1, sizeof *svc);
	svc->store = store;
	svc->component = xstrdup(component_type);
	grpc_server_register(srv, "/thanos.Store/Series", handle_series, svc);
	grpc_server_register(srv, "/thanos.Store/LabelNames", handle_label_names, svc);
	grpc_server_register(srv, "/thanos.Store/LabelValues", handle_label_values, svc);
	grpc_server_register(srv, "/thanos.info.Info/Info", handle_info, svc);
	return svc;
}

void store_grpc_service_free(store_service_t *svc)
{
	if (!svc)
		return;
	free((char *)svc->component);
	free(svc);
}
