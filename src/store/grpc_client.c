/*
 * grpc_client.c — store_t over a remote StoreAPI endpoint (see grpc_client.h).
 *
 * The series set reads SeriesResponse frames one at a time. Each frame is unpacked into a scratch
 * arena and converted (labels sorted, chunks mapped and copied) into the arena of the series it
 * belongs to; two series arenas alternate: the current series and the look-ahead one.
 */
#include "store/grpc_client.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "info.pb-c.h"
#include "net/grpc_pool.h"
#include "storepb_rpc.pb-c.h"
#include "tsdb/xor.h"

typedef struct grpc_store {
	store_t base;
	grpc_channel_t *ch;
	grpc_pool_t *pool; /* Series calls, run by the calling thread (see series() in grpc_client.h) */
	char *name;
	int64_t timeout_ms, info_timeout_ms;
	bool compress;
} grpc_store_t;

static void *pb_alloc(void *data, size_t size)
{
	return arena_alloc(data, size ? size : 1);
}

static void pb_free(void *data, void *p)
{
	(void)data, (void)p;
}

/* A converted series: labels and chunks in one arena. */
typedef struct rseries {
	labels_t ls;
	chunk_t *chunks;
	size_t n, cap;
} rseries_t;

typedef struct remote_set {
	series_set_t base;
	grpc_store_t *gs;
	arena_t *a; /* the caller's: warnings */
	grpc_stream_t *st;
	grpc_pool_call_t *pc; /* instead of st: the call on a pooled connection */
	const str_t *mem; /* instead of st: messages in memory (store_grpc_decode_series) */
	size_t nmem, mem_i;
	int64_t mint, maxt;
	bool arrival_order; /* without_replica_labels asked: joined frames' chunks keep their order */
	arena_t msg;       /* the frame being converted (and a batch being consumed) */
	arena_t ar[2];     /* cur and look-ahead series */
	int cur_i;
	rseries_t cur, ahead;
	bool have_cur, have_ahead;
	Thanos__SeriesBatch *batch;
	size_t batch_pos;
	bool eof;    /* the stream has ended (rc/err hold how) */
	int end_rc;
	err_t end_err;
	size_t frames;
	xor_iter_t xit;
	aggr_iter_t ait;  /* series with aggregate chunks (downsampled) */
	bool aggr;        /* the current series has some: ait, else xit */
	aggr_view_t view; /* the request's aggregates */
	const char **warnings;
	size_t nwarnings, capwarnings;
} remote_set_t;

static int set_fail(remote_set_t *rs, int code, err_t *err, const char *fmt, const char *detail)
{
	err_set(err, code, fmt, rs->gs->name, detail);
	return code;
}

static void add_warning(remote_set_t *rs, const char *w)
{
	if (rs->nwarnings == rs->capwarnings) {
		size_t cap = rs->capwarnings ? 2 * rs->capwarnings : 4;
		rs->warnings = arena_realloc(rs->a, rs->warnings, rs->capwarnings * sizeof *rs->warnings,
					     cap * sizeof *rs->warnings);
		rs->capwarnings = cap;
	}
	rs->warnings[rs->nwarnings++] = arena_printf(rs->a, "store %s: %s", rs->gs->name, w);
}

static int chunk_enc(int type)
{
	switch (type) {
	case THANOS__CHUNK__ENCODING__XOR:
		return CHUNK_ENC_XOR;
	case THANOS__CHUNK__ENCODING__HISTOGRAM:
		return CHUNK_ENC_HISTOGRAM;
	case THANOS__CHUNK__ENCODING__FLOAT_HISTOGRAM:
		return CHUNK_ENC_FLOAT_HISTOGRAM;
	default:
		return -1;
	}
}

static void push_chunk(arena_t *a, rseries_t *out, chunk_t c)
{
	if (out->n == out->cap) {
		size_t cap = out->cap ? 2 * out->cap : 4;
		out->chunks =
		    arena_realloc(a, out->chunks, out->cap * sizeof *out->chunks, cap * sizeof *out->chunks);
		out->cap = cap;
	}
	out->chunks[out->n++] = c;
}

/* A downsampled AggrChunk (aggregates, no raw) as one aggregate chunk (encoding 0xFF) holding the
 * aggregates that came; nothing when none did. */
static int add_aggr_chunk(remote_set_t *rs, arena_t *a, rseries_t *out, const Thanos__AggrChunk *ac,
                          err_t *err)
{
	const Thanos__Chunk *in[AGGR_N] = {ac->count, ac->sum, ac->min, ac->max, ac->counter};
	chunk_t subs[AGGR_N] = {0};
	bool any = false;
	for (int i = 0; i < AGGR_N; i++) {
		if (!in[i] || !in[i]->data.len)
			continue;
		int enc = chunk_enc(in[i]->type);
		if (enc < 0)
			return err_set(err, ERR_CORRUPT,
			               "store %s: Series: frame %zu: %s aggregate: unknown chunk encoding %d",
			               rs->gs->name, rs->frames, aggr_type_name(i), (int)in[i]->type);
		subs[i] = (chunk_t){0, 0, (uint8_t)enc, in[i]->data.data, in[i]->data.len};
		any = true;
	}
	if (!any)
		return 0;
	if (ac->min_time > ac->max_time)
		return err_set(err, ERR_CORRUPT,
		               "store %s: Series: frame %zu: chunk min_time %lld > max_time %lld",
		               rs->gs->name, rs->frames, (long long)ac->min_time, (long long)ac->max_time);
	buf_t b = BUF_INIT;
	aggr_chunk_join(&b, subs);
	push_chunk(a, out,
	           (chunk_t){ac->min_time, ac->max_time, CHUNK_ENC_AGGR, arena_memdup(a, b.p, b.n), b.n});
	buf_release(&b);
	return 0;
}

/* Append s's chunks to out (copied into a). */
static int add_chunks(remote_set_t *rs, arena_t *a, rseries_t *out, const Thanos__Series *s, err_t *err)
{
	for (size_t i = 0; i < s->n_chunks; i++) {
		const Thanos__AggrChunk *ac = s->chunks[i];
		if (!ac->raw) {
			int rc = add_aggr_chunk(rs, a, out, ac, err);
			if (rc)
				return rc;
			continue;
		}
		int enc = chunk_enc(ac->raw->type);
		if (enc < 0)
			return err_set(err, ERR_CORRUPT, "store %s: Series: frame %zu: unknown chunk encoding %d", rs->gs->name,
				       rs->frames, (int)ac->raw->type);
		if (ac->min_time > ac->max_time)
			return err_set(err, ERR_CORRUPT, "store %s: Series: frame %zu: chunk min_time %lld > max_time %lld",
				       rs->gs->name, rs->frames, (long long)ac->min_time, (long long)ac->max_time);
		if (out->n == out->cap) {
			size_t cap = out->cap ? 2 * out->cap : 4;
			out->chunks = arena_realloc(a, out->chunks, out->cap * sizeof *out->chunks, cap * sizeof *out->chunks);
			out->cap = cap;
		}
		/* an empty chunk arrives with data NULL (protobuf-c): copy from "" (seriesresp_fuzz) */
		out->chunks[out->n++] = (chunk_t){ac->min_time, ac->max_time, (uint8_t)enc,
						  arena_memdup(a, ac->raw->data.len ? ac->raw->data.data : (const uint8_t *)"",
							       ac->raw->data.len ? ac->raw->data.len : 1),
						  ac->raw->data.len};
	}
	return 0;
}

static int convert(remote_set_t *rs, arena_t *a, rseries_t *out, const Thanos__Series *s, err_t *err)
{
	memset(out, 0, sizeof *out);
	out->ls.v = ARENA_NEW_ARRAY(a, label_t, s->n_labels ? s->n_labels : 1);
	for (size_t i = 0; i < s->n_labels; i++) {
		const char *n = s->labels[i]->name, *v = s->labels[i]->value;
		out->ls.v[out->ls.n++] = (label_t){{arena_strdup(a, n), strlen(n)}, {arena_strdup(a, v), strlen(v)}};
	}
	if (labels_normalize(&out->ls) != 0)
		return err_set(err, ERR_CORRUPT, "store %s: Series: frame %zu: invalid label set (empty or duplicate names)",
			       rs->gs->name, rs->frames);
	return add_chunks(rs, a, out, s, err);
}

/* Read the next series frame into *out (arena a). 1 = got one, 0 = end of stream (OK), <0 = error.
 * Warning and hints frames are handled on the way. */
static int read_series(remote_set_t *rs, arena_t *a, rseries_t *out, err_t *err)
{
	for (;;) {
		if (rs->batch && rs->batch_pos < rs->batch->n_series) {
			rs->frames++;
			int rc = convert(rs, a, out, rs->batch->series[rs->batch_pos++], err);
			return rc < 0 ? rc : 1;
		}
		rs->batch = NULL;
		if (rs->eof) {
			if (rs->end_rc && err)
				*err = rs->end_err;
			return rs->end_rc;
		}
		const uint8_t *m = NULL;
		size_t len = 0;
		int rc;
		if (rs->pc) {
			rc = grpc_pool_stream_recv(rs->pc, &m, &len, &rs->end_err);
		} else if (rs->st) {
			rc = grpc_stream_recv(rs->st, &m, &len, &rs->end_err);
		} else if ((rc = rs->mem_i < rs->nmem) != 0) {
			m = (const uint8_t *)rs->mem[rs->mem_i].p;
			len = rs->mem[rs->mem_i++].n;
		}
		if (rc <= 0) {
			rs->eof = true;
			rs->end_rc = rc;
			if (rc < 0)
				err_wrap(&rs->end_err, "store %s: Series", rs->gs->name);
			continue;
		}
		rs->frames++;
		arena_reset(&rs->msg);
		ProtobufCAllocator al = {pb_alloc, pb_free, &rs->msg};
		Thanos__SeriesResponse *r = thanos__series_response__unpack(&al, len, m);
		if (!r) {
			char d[96];
			snprintf(d, sizeof d, "frame %zu: cannot decode SeriesResponse (%zu bytes)", rs->frames, len);
			return set_fail(rs, ERR_CORRUPT, err, "store %s: Series: %s", d);
		}
		switch (r->result_case) {
		case THANOS__SERIES_RESPONSE__RESULT_SERIES:
			rc = convert(rs, a, out, r->series, err);
			return rc < 0 ? rc : 1;
		case THANOS__SERIES_RESPONSE__RESULT_WARNING:
			add_warning(rs, r->warning);
			break;
		case THANOS__SERIES_RESPONSE__RESULT_BATCH:
			rs->batch = r->batch;
			rs->batch_pos = 0;
			rs->frames--;
			break;
		default: /* hints, or a field we do not know */
			break;
		}
	}
}

static int rs_next(series_set_t *s, err_t *err)
{
	remote_set_t *rs = (remote_set_t *)s;
	int rc;
	if (rs->have_ahead) {
		rs->cur_i ^= 1; /* the look-ahead arena becomes current */
		rs->cur = rs->ahead;
		rs->have_ahead = false;
	} else {
		if (rs->have_cur)
			rs->have_cur = false;
		arena_reset(&rs->ar[rs->cur_i]);
		rc = read_series(rs, &rs->ar[rs->cur_i], &rs->cur, err);
		if (rc <= 0)
			return rc;
	}
	rs->have_cur = true;
	/* Look ahead: frames with the same labels continue this series. */
	arena_t *ca = &rs->ar[rs->cur_i], *na = &rs->ar[rs->cur_i ^ 1];
	for (;;) {
		arena_reset(na);
		err_t aerr = {0};
		rc = read_series(rs, na, &rs->ahead, &aerr);
		if (rc < 0) {
			/* Hand out this series; the error comes with the next call. */
			if (!rs->eof) {
				rs->eof = true;
				rs->end_rc = rc;
				rs->end_err = aerr;
			}
			break;
		}
		if (rc == 0)
			break;
		int c = labels_cmp(&rs->ahead.ls, &rs->cur.ls);
		if (c == 0) {
			for (size_t i = 0; i < rs->ahead.n; i++) {
				if (rs->cur.n == rs->cur.cap) {
					size_t cap = rs->cur.cap ? 2 * rs->cur.cap : 4;
					rs->cur.chunks = arena_realloc(ca, rs->cur.chunks, rs->cur.cap * sizeof(chunk_t),
								       cap * sizeof(chunk_t));
					rs->cur.cap = cap;
				}
				chunk_t ch = rs->ahead.chunks[i];
				ch.data = arena_memdup(ca, ch.data, ch.len ? ch.len : 1);
				rs->cur.chunks[rs->cur.n++] = ch;
			}
			continue;
		}
		if (c < 0) {
			buf_t b = BUF_INIT, p = BUF_INIT;
			labels_format(&b, &rs->ahead.ls);
			labels_format(&p, &rs->cur.ls);
			err_set(&rs->end_err, ERR_CORRUPT, "store %s: Series: frame %zu: series out of order: %s after %s",
				rs->gs->name, rs->frames, b.p, p.p);
			buf_release(&b);
			buf_release(&p);
			rs->eof = true;
			rs->end_rc = ERR_CORRUPT;
			break;
		}
		rs->have_ahead = true;
		break;
	}
	/* chunks sorted by mint (frames of one series may come in any order): insertion sort, stable;
	 * not for without_replica_labels, where frames with equal labels may be different replicas and
	 * their order tells them apart (the proxy's overlap split) */
	for (size_t i = 1; i < rs->cur.n && !rs->arrival_order; i++) {
		chunk_t x = rs->cur.chunks[i];
		size_t j = i;
		while (j > 0 && rs->cur.chunks[j - 1].mint > x.mint) {
			rs->cur.chunks[j] = rs->cur.chunks[j - 1];
			j--;
		}
		rs->cur.chunks[j] = x;
	}
	rs->aggr = aggr_chunks_any(rs->cur.chunks, rs->cur.n);
	if (rs->aggr)
		aggr_iter_init(&rs->ait, rs->cur.chunks, rs->cur.n, rs->mint, rs->maxt, rs->view);
	else
		xor_iter_init(&rs->xit, rs->cur.chunks, rs->cur.n, rs->mint, rs->maxt);
	return 1;
}

static const labels_t *rs_labels(series_set_t *s)
{
	return &((remote_set_t *)s)->cur.ls;
}

static sample_iter_t *rs_samples(series_set_t *s)
{
	remote_set_t *rs = (remote_set_t *)s;
	return rs->aggr ? &rs->ait.base : &rs->xit.base;
}

static int rs_chunks(series_set_t *s, const chunk_t **out)
{
	remote_set_t *rs = (remote_set_t *)s;
	*out = rs->cur.chunks;
	return (int)rs->cur.n;
}

static size_t rs_warnings(series_set_t *s, const char *const **out)
{
	remote_set_t *rs = (remote_set_t *)s;
	*out = rs->warnings;
	return rs->nwarnings;
}

static void rs_close(series_set_t *s)
{
	remote_set_t *rs = (remote_set_t *)s;
	grpc_stream_free(rs->st);
	rs->st = NULL;
	if (rs->pc)
		grpc_pool_call_end(rs->pc, NULL, NULL); /* cancels an unfinished call */
	rs->pc = NULL;
	arena_release(&rs->msg);
	arena_release(&rs->ar[0]);
	arena_release(&rs->ar[1]);
}

static const struct series_set_ops remote_set_ops = {
	.next = rs_next,
	.labels = rs_labels,
	.samples = rs_samples,
	.chunks = rs_chunks,
	.warnings = rs_warnings,
	.close = rs_close,
};

static Thanos__LabelMatcher **pb_matchers(arena_t *a, const matcher_t *ms, size_t n)
{
	Thanos__LabelMatcher **out = ARENA_NEW_ARRAY(a, Thanos__LabelMatcher *, n ? n : 1);
	for (size_t i = 0; i < n; i++) {
		Thanos__LabelMatcher *m = ARENA_NEW(a, Thanos__LabelMatcher);
		thanos__label_matcher__init(m);
		m->type = (Thanos__LabelMatcher__Type)ms[i].type;
		m->name = arena_strndup(a, ms[i].name.p, ms[i].name.n);
		m->value = arena_strndup(a, ms[i].value.p, ms[i].value.n);
		out[i] = m;
	}
	return out;
}

static int gs_series(store_t *s, arena_t *a, const store_series_req_t *req, series_set_t **out, err_t *err)
{
	grpc_store_t *gs = (grpc_store_t *)s;
	Thanos__SeriesRequest r = THANOS__SERIES_REQUEST__INIT;
	r.min_time = req->mint;
	r.max_time = req->maxt;
	r.n_matchers = req->nms;
	r.matchers = pb_matchers(a, req->ms, req->nms);
	r.skip_chunks = req->skip_chunks;
	r.limit = req->limit;
	r.partial_response_strategy =
		req->abort_on_error ? THANOS__PARTIAL_RESPONSE_STRATEGY__ABORT : THANOS__PARTIAL_RESPONSE_STRATEGY__WARN;
	r.partial_response_disabled = req->abort_on_error;
	if (req->without_replica_labels && req->nreplica_labels) {
		r.n_without_replica_labels = req->nreplica_labels;
		r.without_replica_labels = ARENA_NEW_ARRAY(a, char *, req->nreplica_labels);
		for (size_t i = 0; i < req->nreplica_labels; i++)
			r.without_replica_labels[i] =
				arena_strndup(a, req->replica_labels[i].p, req->replica_labels[i].n);
	}
	Thanos__Aggr aggr[AGGR_N];
	if (req->max_resolution > 0) {
		r.max_resolution_window = req->max_resolution;
		unsigned want = req->aggregates ? req->aggregates : 1u << AGGR_COUNT | 1u << AGGR_SUM;
		for (int i = 0; i < AGGR_N; i++)
			if (want & 1u << i)
				aggr[r.n_aggregates++] = (Thanos__Aggr)(THANOS__AGGR__COUNT + i);
		r.aggregates = aggr;
	}
	Thanos__QueryHints qh = THANOS__QUERY_HINTS__INIT;
	Thanos__Func fn = THANOS__FUNC__INIT;
	if (req->func) {
		fn.name = (char *)req->func;
		qh.func = &fn;
		r.query_hints = &qh;
	}
	size_t len = thanos__series_request__get_packed_size(&r);
	uint8_t *buf = arena_alloc(a, len ? len : 1);
	thanos__series_request__pack(&r, buf);
	remote_set_t *rs = ARENA_NEW(a, remote_set_t);
	rs->base.ops = &remote_set_ops;
	rs->gs = gs;
	rs->a = a;
	rs->mint = req->mint;
	rs->maxt = req->maxt;
	rs->view = store_aggr_view(req->aggregates);
	rs->arrival_order = r.n_without_replica_labels > 0;
	arena_init(&rs->msg, 16 * 1024);
	arena_init(&rs->ar[0], 16 * 1024);
	arena_init(&rs->ar[1], 16 * 1024);
	if (gs->pool) {
		buf_t framed;
		buf_init(&framed);
		grpc_frame_append(&framed, gs->compress, buf, len);
		rs->pc = grpc_pool_stream_start(gs->pool, "/thanos.Store/Series", &framed,
		                                clock_mono_ms() + (uint64_t)gs->timeout_ms,
		                                req->tenant ? GRPC_TENANT_METADATA : NULL, req->tenant);
		buf_release(&framed);
	} else {
		rs->st = grpc_channel_call_md(gs->ch, "/thanos.Store/Series", buf, len, gs->timeout_ms,
		                              req->tenant ? GRPC_TENANT_METADATA : NULL, req->tenant);
	}
	/* The call runs from here on; the first next() waits for its first frame. Failures (unreachable,
	 * refused) surface there, so calls to several stores proceed in parallel. */
	*out = &rs->base;
	return 0;
}

int store_grpc_decode_series(arena_t *a, const str_t *msgs, size_t n, int64_t mint, int64_t maxt, series_set_t **out)
{
	grpc_store_t *gs = ARENA_NEW(a, grpc_store_t);
	gs->name = arena_strdup(a, "(memory)");
	remote_set_t *rs = ARENA_NEW(a, remote_set_t);
	rs->base.ops = &remote_set_ops;
	rs->gs = gs;
	rs->a = a;
	rs->mint = mint;
	rs->maxt = maxt;
	rs->mem = msgs;
	rs->nmem = n;
	arena_init(&rs->msg, 16 * 1024);
	arena_init(&rs->ar[0], 16 * 1024);
	arena_init(&rs->ar[1], 16 * 1024);
	*out = &rs->base;
	return 0;
}

static int unary(grpc_store_t *gs, const char *what, const char *path, const void *req, size_t len,
		 int64_t timeout_ms, const char *tenant, arena_t *a, uint8_t **resp, size_t *rlen, err_t *err)
{
	int rc = grpc_channel_unary_md(gs->ch, path, req, len, timeout_ms, tenant ? GRPC_TENANT_METADATA : NULL, tenant,
				       a, resp, rlen, err);
	if (rc < 0)
		err_wrap(err, "store %s: %s", gs->name, what);
	return rc;
}

static int copy_strings(grpc_store_t *gs, arena_t *a, const char *what, char **v, size_t n, char **w, size_t nw,
			store_strings_t *out, err_t *err)
{
	memset(out, 0, sizeof *out);
	out->v = ARENA_NEW_ARRAY(a, str_t, n ? n : 1);
	for (size_t i = 0; i < n; i++)
		out->v[i] = str_c(v[i]);
	out->n = n;
	for (size_t i = 1; i < n; i++)
		if (str_cmp(out->v[i - 1], out->v[i]) >= 0) {
			out->n = store_strings_sort_unique(out->v, n);
			break;
		}
	out->warnings = ARENA_NEW_ARRAY(a, const char *, nw ? nw : 1);
	for (size_t i = 0; i < nw; i++)
		out->warnings[i] = arena_printf(a, "store %s: %s", gs->name, w[i]);
	out->nwarnings = nw;
	(void)what, (void)err;
	return 0;
}

static int gs_labels(store_t *s, arena_t *a, const store_label_req_t *req, store_strings_t *out, err_t *err,
		     bool names)
{
	grpc_store_t *gs = (grpc_store_t *)s;
	ProtobufCAllocator al = {pb_alloc, pb_free, a};
	uint8_t *buf, *resp;
	size_t len, rlen;
	int strategy = req->abort_on_error ? THANOS__PARTIAL_RESPONSE_STRATEGY__ABORT
					   : THANOS__PARTIAL_RESPONSE_STRATEGY__WARN;
	if (names) {
		Thanos__LabelNamesRequest r = THANOS__LABEL_NAMES_REQUEST__INIT;
		r.start = req->mint, r.end = req->maxt, r.limit = req->limit;
		r.partial_response_strategy = strategy;
		r.partial_response_disabled = req->abort_on_error;
		r.n_matchers = req->nms, r.matchers = pb_matchers(a, req->ms, req->nms);
		len = thanos__label_names_request__get_packed_size(&r);
		buf = arena_alloc(a, len ? len : 1);
		thanos__label_names_request__pack(&r, buf);
		int rc = unary(gs, "LabelNames", "/thanos.Store/LabelNames", buf, len, gs->timeout_ms, req->tenant, a, &resp,
			       &rlen, err);
		if (rc < 0)
			return rc;
		Thanos__LabelNamesResponse *p = thanos__label_names_response__unpack(&al, rlen, resp);
		if (!p)
			return err_set(err, ERR_CORRUPT, "store %s: LabelNames: cannot decode LabelNamesResponse (%zu bytes)",
				       gs->name, rlen);
		return copy_strings(gs, a, "LabelNames", p->names, p->n_names, p->warnings, p->n_warnings, out, err);
	}
	Thanos__LabelValuesRequest r = THANOS__LABEL_VALUES_REQUEST__INIT;
	r.label = arena_strndup(a, req->name.p, req->name.n);
	r.start = req->mint, r.end = req->maxt, r.limit = req->limit;
	r.partial_response_strategy = strategy;
	r.partial_response_disabled = req->abort_on_error;
	r.n_matchers = req->nms, r.matchers = pb_matchers(a, req->ms, req->nms);
	len = thanos__label_values_request__get_packed_size(&r);
	buf = arena_alloc(a, len ? len : 1);
	thanos__label_values_request__pack(&r, buf);
	int rc = unary(gs, "LabelValues", "/thanos.Store/LabelValues", buf, len, gs->timeout_ms, req->tenant, a, &resp,
			       &rlen, err);
	if (rc < 0)
		return rc;
	Thanos__LabelValuesResponse *p = thanos__label_values_response__unpack(&al, rlen, resp);
	if (!p)
		return err_set(err, ERR_CORRUPT, "store %s: LabelValues: cannot decode LabelValuesResponse (%zu bytes)",
			       gs->name, rlen);
	return copy_strings(gs, a, "LabelValues", p->values, p->n_values, p->warnings, p->n_warnings, out, err);
}

static int gs_label_names(store_t *s, arena_t *a, const store_label_req_t *req, store_strings_t *out, err_t *err)
{
	return gs_labels(s, a, req, out, err, true);
}

static int gs_label_values(store_t *s, arena_t *a, const store_label_req_t *req, store_strings_t *out, err_t *err)
{
	return gs_labels(s, a, req, out, err, false);
}

static int gs_info(store_t *s, arena_t *a, store_info_t *out, err_t *err)
{
	grpc_store_t *gs = (grpc_store_t *)s;
	uint8_t *resp;
	size_t rlen;
	int rc = unary(gs, "Info", "/thanos.info.Info/Info", "", 0, gs->info_timeout_ms, NULL, a, &resp, &rlen, err);
	if (rc < 0)
		return rc;
	ProtobufCAllocator al = {pb_alloc, pb_free, a};
	Thanos__Info__InfoResponse *p = thanos__info__info_response__unpack(&al, rlen, resp);
	if (!p)
		return err_set(err, ERR_CORRUPT, "store %s: Info: cannot decode InfoResponse (%zu bytes)", gs->name, rlen);
	memset(out, 0, sizeof *out);
	labels_t *sets = ARENA_NEW_ARRAY(a, labels_t, p->n_label_sets ? p->n_label_sets : 1);
	for (size_t i = 0; i < p->n_label_sets; i++) {
		const Thanos__ZLabelSet *zs = p->label_sets[i];
		sets[i].v = ARENA_NEW_ARRAY(a, label_t, zs->n_labels ? zs->n_labels : 1);
		for (size_t j = 0; j < zs->n_labels; j++)
			sets[i].v[sets[i].n++] = (label_t){str_c(zs->labels[j]->name), str_c(zs->labels[j]->value)};
		if (labels_normalize(&sets[i]) != 0)
			return err_set(err, ERR_CORRUPT, "store %s: Info: label set %zu is invalid", gs->name, i);
	}
	out->label_sets = sets;
	out->nlabel_sets = p->n_label_sets;
	out->component_type = p->componenttype && p->componenttype[0] ? p->componenttype : NULL; /* in a */
	if (p->store) {
		out->mint = p->store->min_time;
		out->maxt = p->store->max_time;
		out->supports_without_replica_labels = p->store->supports_without_replica_labels;
	} else { /* no StoreAPI served: an empty range, so the proxy never selects it */
		out->mint = INT64_MAX;
		out->maxt = INT64_MIN;
	}
	return 0;
}

static void gs_free(store_t *s)
{
	grpc_store_t *gs = (grpc_store_t *)s;
	grpc_channel_free(gs->ch);
	grpc_pool_free(gs->pool);
	free(gs->name);
	free(gs);
}

static const struct store_ops grpc_store_ops = {
	.series = gs_series,
	.label_names = gs_label_names,
	.label_values = gs_label_values,
	.info = gs_info,
	.free = gs_free,
};

int store_grpc_client_new(store_t **out, const char *address, const store_grpc_client_config_t *cfg, err_t *err)
{
	*out = NULL;
	store_grpc_client_config_t d = {0};
	if (!cfg)
		cfg = &d;
	grpc_channel_config_t cc = {
		.max_recv_msg = cfg->max_recv_msg,
		.compress = cfg->compress,
		.backoff_max_ms = cfg->backoff_max_ms,
		.tls = cfg->tls,
	};
	grpc_channel_t *ch;
	int rc = grpc_channel_new(&ch, cfg->loop, address, &cc, err);
	if (rc)
		return err_wrap(err, "store %s", address);
	grpc_store_t *gs = xcalloc(1, sizeof *gs);
	gs->ch = ch;
	gs->compress = cfg->compress;
	if (!cfg->channel_series) {
		grpc_pool_config_t pc = {
		    .compress = cfg->compress,
		    .max_recv_msg = cfg->max_recv_msg ? cfg->max_recv_msg : 256u << 20,
		    .max_idle = 8,
		    .tls = cfg->tls,
		    .stream_window = 256u << 10,
		    .backoff_max_ms = cfg->backoff_max_ms > 0 ? cfg->backoff_max_ms : 10000,
		};
		if (grpc_pool_new(&gs->pool, address, &pc, err)) {
			grpc_channel_free(ch);
			free(gs);
			return err_wrap(err, "store %s", address);
		}
	}
	gs->name = xstrdup(address);
	gs->timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : 120000;
	gs->info_timeout_ms = cfg->info_timeout_ms > 0 ? cfg->info_timeout_ms : 5000;
	gs->base.ops = &grpc_store_ops;
	gs->base.name = gs->name;
	*out = &gs->base;
	return 0;
}

grpc_channel_t *store_grpc_client_channel(store_t *s)
{
	return ((grpc_store_t *)s)->ch;
}

uint64_t store_grpc_client_connects(store_t *s)
{
	grpc_store_t *gs = (grpc_store_t *)s;
	return grpc_channel_connects(gs->ch) + (gs->pool ? grpc_pool_connects(gs->pool) : 0);
}
