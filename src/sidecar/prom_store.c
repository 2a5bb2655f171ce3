/*
 * prom_store.c — store_t over Prometheus remote read + HTTP API (see prom_store.h).
 */
#include "sidecar/prom_store.h"

#include <jansson.h>
#include <pthread.h>
#include <snappy-c.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "base/alloc.h"
#include "base/crc32c.h"
#include "base/varint.h"
#include "net/httpcfg.h"
#include "net/httpclient.h"
#include "net/url.h"
#include "prompb_remote.pb-c.h"
#include "tsdb/xor.h"

#define PROM_DEFAULT_TIMEOUT_MS (2 * 60 * 1000)
#define PROM_MAX_FRAME (64u * 1024 * 1024)      /* Prometheus targets 1 MiB frames */
#define PROM_MAX_SAMPLES_BODY (512u * 1024 * 1024) /* SAMPLES responses are read whole */
#define STREAMED_CT "application/x-streamed-protobuf; proto=prometheus.ChunkedReadResponse"

struct prom_store {
	store_t base;
	char *url;
	int64_t timeout_ms;
	int64_t min_time;
	const httpcfg_t *http;
	pthread_mutex_t mu; /* guards ext_arena, ext, data_mint */
	arena_t ext_arena;
	labels_t ext;
	int64_t data_mint;
};

/* ---- small helpers ---- */

static int64_t max64(int64_t a, int64_t b)
{
	return a > b ? a : b;
}

labels_t prom_store_external_labels(prom_store_t *s, arena_t *a)
{
	pthread_mutex_lock(&s->mu);
	labels_t ls = labels_copy(a, &s->ext);
	pthread_mutex_unlock(&s->mu);
	return ls;
}

void prom_store_set_external_labels(prom_store_t *s, const labels_t *ext)
{
	arena_t na;
	arena_init(&na, 0);
	labels_t cp = labels_copy(&na, ext);
	labels_normalize(&cp);
	pthread_mutex_lock(&s->mu);
	arena_t old = s->ext_arena;
	s->ext_arena = na;
	s->ext = cp;
	pthread_mutex_unlock(&s->mu);
	arena_release(&old);
}

void prom_store_set_data_min_time(prom_store_t *s, int64_t mint)
{
	pthread_mutex_lock(&s->mu);
	s->data_mint = mint;
	pthread_mutex_unlock(&s->mu);
}

/* Labels of a decoded remote-read series into a (sorted, empty values dropped). */
static labels_t pb_labels(arena_t *a, Prometheus__Label **in, size_t n)
{
	labels_t ls = {ARENA_NEW_ARRAY(a, label_t, n ? n : 1), 0};
	for (size_t i = 0; i < n; i++) {
		str_t name = str_c(in[i]->name), value = str_c(in[i]->value);
		ls.v[ls.n].name = str_from(arena_memdup(a, name.p, name.n + 1), name.n);
		ls.v[ls.n].value = str_from(arena_memdup(a, value.p, value.n + 1), value.n);
		ls.n++;
	}
	labels_normalize(&ls);
	return ls;
}

static bool pb_labels_eq(Prometheus__Label **a, size_t na, Prometheus__Label **b, size_t nb)
{
	if (na != nb)
		return false;
	for (size_t i = 0; i < na; i++)
		if (strcmp(a[i]->name, b[i]->name) || strcmp(a[i]->value, b[i]->value))
			return false;
	return true;
}

static uint8_t chunk_enc_of(Prometheus__Chunk__Encoding t)
{
	switch (t) {
	case PROMETHEUS__CHUNK__ENCODING__XOR:
		return CHUNK_ENC_XOR;
	case PROMETHEUS__CHUNK__ENCODING__HISTOGRAM:
		return CHUNK_ENC_HISTOGRAM;
	case PROMETHEUS__CHUNK__ENCODING__FLOAT_HISTOGRAM:
		return CHUNK_ENC_FLOAT_HISTOGRAM;
	default:
		return CHUNK_ENC_NONE;
	}
}

/* ---- series sets ---- */

typedef struct chunk_vec {
	chunk_t *v;
	size_t n, cap;
} chunk_vec_t;

typedef struct prom_set {
	series_set_t base;
	prom_store_t *st;
	labels_t ext;
	int64_t mint, maxt, limit, returned;
	bool skip_chunks;
	bool done;
	/* streamed mode */
	httpc_stream_t *stream;
	str_t mem; /* instead of stream: the whole response in memory (prom_store_decode) */
	httpc_req_t req;
	char *url;
	const char *hdrs[3];
	buf_t body;
	uint64_t offset; /* bytes of the response consumed so far (for messages) */
	Prometheus__ChunkedReadResponse *frame;
	size_t fidx;
	arena_t scratch; /* current series (reset per series) */
	/* samples mode: every series decoded up front */
	bool samples_mode;
	labels_t *sl;
	chunk_vec_t *sc;
	size_t sn, si;
	/* current series */
	labels_t cur;
	chunk_vec_t chunks;
	xor_iter_t it;
} prom_set_t;

static void chunk_push(arena_t *a, chunk_vec_t *cv, chunk_t c)
{
	if (cv->n == cv->cap) {
		size_t ncap = cv->cap ? cv->cap * 2 : 8;
		cv->v = arena_realloc(a, cv->v, cv->cap * sizeof *cv->v, ncap * sizeof *cv->v);
		cv->cap = ncap;
	}
	cv->v[cv->n++] = c;
}

/* The response body: the HTTP stream, or set->mem for responses decoded from memory. */
static int src_fill(prom_set_t *set, size_t want, err_t *err)
{
	return set->stream ? httpc_stream_fill(set->stream, want, err) : 0;
}

static str_t src_buf(const prom_set_t *set)
{
	return set->stream ? httpc_stream_buf(set->stream) : set->mem;
}

static void src_consume(prom_set_t *set, size_t n)
{
	if (set->stream)
		httpc_stream_consume(set->stream, n);
	else
		set->mem = str_sub(set->mem, n, set->mem.n);
}

/* Read the next frame into set->frame (NULL at the end of the stream). */
static int read_frame(prom_set_t *set, err_t *err)
{
	if (set->frame) {
		prometheus__chunked_read_response__free_unpacked(set->frame, NULL);
		set->frame = NULL;
	}
	set->fidx = 0;
	int rc = src_fill(set, 1, err);
	if (rc)
		return err_wrap(err, "remote read");
	str_t b = src_buf(set);
	if (b.n == 0)
		return 0; /* clean end */
	if ((rc = src_fill(set, VARINT_MAX_LEN, err)) != 0)
		return err_wrap(err, "remote read");
	b = src_buf(set);
	uint64_t len;
	int hl = uvarint_get((const uint8_t *)b.p, (const uint8_t *)b.p + b.n, &len);
	if (hl <= 0)
		return err_set(err, ERR_CORRUPT, "remote read %s: offset %llu: %s frame length", set->url,
			       (unsigned long long)set->offset, hl == 0 ? "truncated" : "overflowing");
	if (len > PROM_MAX_FRAME)
		return err_set(err, ERR_CORRUPT, "remote read %s: offset %llu: frame of %llu bytes exceeds %u",
			       set->url, (unsigned long long)set->offset, (unsigned long long)len, PROM_MAX_FRAME);
	size_t total = (size_t)hl + 4 + (size_t)len;
	if ((rc = src_fill(set, total, err)) != 0)
		return err_wrap(err, "remote read");
	b = src_buf(set);
	if (b.n < total)
		return err_set(err, ERR_CORRUPT, "remote read %s: offset %llu: truncated frame (%zu of %zu bytes)",
			       set->url, (unsigned long long)set->offset, b.n, total);
	const uint8_t *p = (const uint8_t *)b.p + hl;
	uint32_t want = be32_get(p), got = crc32c(0, p + 4, (size_t)len);
	if (want != got)
		return err_set(err, ERR_CORRUPT, "remote read %s: offset %llu: frame CRC32C mismatch (frame says %08x, data has %08x)",
			       set->url, (unsigned long long)set->offset, want, got);
	set->frame = prometheus__chunked_read_response__unpack(NULL, (size_t)len, p + 4);
	if (!set->frame)
		return err_set(err, ERR_CORRUPT, "remote read %s: offset %llu: undecodable ChunkedReadResponse",
			       set->url, (unsigned long long)set->offset);
	if (set->frame->query_index != 0)
		return err_set(err, ERR_CORRUPT, "remote read %s: offset %llu: query_index %lld, only 0 was asked",
			       set->url, (unsigned long long)set->offset, (long long)set->frame->query_index);
	src_consume(set, total);
	set->offset += total;
	return 0;
}

/* Append the chunks of cs to the current series (copied into scratch). */
static void take_chunks(prom_set_t *set, const Prometheus__ChunkedSeries *cs)
{
	if (set->skip_chunks)
		return;
	for (size_t i = 0; i < cs->n_chunks; i++) {
		const Prometheus__Chunk *c = cs->chunks[i];
		chunk_t ch = {.mint = c->min_time_ms,
			      .maxt = c->max_time_ms,
			      .enc = chunk_enc_of(c->type),
			      .data = arena_memdup(&set->scratch, c->data.data ? c->data.data : (const uint8_t *)"",
						   c->data.len),
			      .len = c->data.len};
		chunk_push(&set->scratch, &set->chunks, ch);
	}
}

static int stream_next(prom_set_t *set, err_t *err)
{
	int rc;
	while (!set->frame || set->fidx >= set->frame->n_chunked_series) {
		if ((rc = read_frame(set, err)) != 0)
			return rc;
		if (!set->frame)
			return 0;
	}
	arena_reset(&set->scratch);
	memset(&set->chunks, 0, sizeof set->chunks);
	Prometheus__ChunkedSeries *cs = set->frame->chunked_series[set->fidx++];
	labels_t raw = pb_labels(&set->scratch, cs->labels, cs->n_labels);
	if (raw.n == 0)
		return err_set(err, ERR_CORRUPT, "remote read %s: offset %llu: series without labels", set->url,
			       (unsigned long long)set->offset);
	set->cur = store_merge_external(&set->scratch, &raw, &set->ext);
	take_chunks(set, cs);
	/* A large series continues in the next frame(s) under the same labels. */
	Prometheus__Label **keep = NULL;
	size_t nl = cs->n_labels;
	while (set->fidx >= set->frame->n_chunked_series) {
		if (!keep) { /* cs dies with its frame: keep its labels for the comparison */
			keep = ARENA_NEW_ARRAY(&set->scratch, Prometheus__Label *, nl ? nl : 1);
			for (size_t i = 0; i < nl; i++) {
				keep[i] = ARENA_NEW(&set->scratch, Prometheus__Label);
				keep[i]->name = arena_strdup(&set->scratch, cs->labels[i]->name);
				keep[i]->value = arena_strdup(&set->scratch, cs->labels[i]->value);
			}
		}
		if ((rc = read_frame(set, err)) != 0)
			return rc;
		if (!set->frame)
			break;
		if (set->frame->n_chunked_series == 0)
			continue;
		cs = set->frame->chunked_series[0];
		if (!pb_labels_eq(keep, nl, cs->labels, cs->n_labels))
			break;
		set->fidx = 1;
		take_chunks(set, cs);
	}
	return 1;
}

static int samples_next(prom_set_t *set)
{
	if (set->si >= set->sn)
		return 0;
	set->cur = set->sl[set->si];
	set->chunks = set->skip_chunks ? (chunk_vec_t){0} : set->sc[set->si];
	set->si++;
	return 1;
}

static int set_next(series_set_t *base, err_t *err)
{
	prom_set_t *set = (prom_set_t *)base;
	if (set->done || (set->limit > 0 && set->returned >= set->limit))
		return 0;
	int rc = set->samples_mode ? samples_next(set) : stream_next(set, err);
	if (rc <= 0) {
		set->done = true;
		return rc;
	}
	set->returned++;
	return 1;
}

static const labels_t *set_labels(series_set_t *base)
{
	return &((prom_set_t *)base)->cur;
}

static sample_iter_t *set_samples(series_set_t *base)
{
	prom_set_t *set = (prom_set_t *)base;
	if (set->skip_chunks)
		return sample_iter_empty();
	xor_iter_init(&set->it, set->chunks.v, set->chunks.n, set->mint, set->maxt);
	return &set->it.base;
}

static int set_chunks(series_set_t *base, const chunk_t **out)
{
	prom_set_t *set = (prom_set_t *)base;
	*out = set->chunks.v;
	return (int)set->chunks.n;
}

static void set_close(series_set_t *base)
{
	prom_set_t *set = (prom_set_t *)base;
	if (set->frame)
		prometheus__chunked_read_response__free_unpacked(set->frame, NULL);
	set->frame = NULL;
	httpc_stream_free(set->stream);
	set->stream = NULL;
	buf_release(&set->body);
	arena_release(&set->scratch);
}

static const struct series_set_ops prom_set_ops = {
	.next = set_next,
	.labels = set_labels,
	.samples = set_samples,
	.chunks = set_chunks,
	.warnings = NULL,
	.close = set_close,
};

/* ---- SAMPLES fallback ---- */

typedef struct sorted_series {
	labels_t ls;
	chunk_vec_t cv;
} sorted_series_t;

static int sorted_cmp(const void *a, const void *b)
{
	return labels_cmp(&((const sorted_series_t *)a)->ls, &((const sorted_series_t *)b)->ls);
}

/* Decode a whole snappy ReadResponse into XOR chunks of <= 120 samples, sorted by labels. */
static int decode_samples(prom_set_t *set, arena_t *a, const char *body, size_t n, err_t *err)
{
	size_t ulen;
	if (snappy_uncompressed_length(body, n, &ulen) != SNAPPY_OK || ulen > PROM_MAX_SAMPLES_BODY)
		return err_set(err, ERR_CORRUPT, "remote read %s: SAMPLES response: not a snappy block", set->url);
	char *raw = xmalloc(ulen ? ulen : 1);
	if (snappy_uncompress(body, n, raw, &ulen) != SNAPPY_OK) {
		free(raw);
		return err_set(err, ERR_CORRUPT, "remote read %s: SAMPLES response: corrupt snappy data", set->url);
	}
	Prometheus__ReadResponse *rr = prometheus__read_response__unpack(NULL, ulen, (const uint8_t *)raw);
	free(raw);
	if (!rr)
		return err_set(err, ERR_CORRUPT, "remote read %s: SAMPLES response: undecodable ReadResponse", set->url);
	int rc = 0;
	size_t nts = rr->n_results ? rr->results[0]->n_timeseries : 0;
	sorted_series_t *ss = ARENA_NEW_ARRAY(a, sorted_series_t, nts ? nts : 1);
	size_t ns = 0;
	xor_enc_t enc;
	xor_enc_init(&enc);
	for (size_t i = 0; i < nts && rc == 0; i++) {
		Prometheus__TimeSeries *ts = rr->results[0]->timeseries[i];
		labels_t raw_ls = pb_labels(a, ts->labels, ts->n_labels);
		sorted_series_t *out = &ss[ns];
		memset(out, 0, sizeof *out);
		out->ls = store_merge_external(a, &raw_ls, &set->ext);
		int64_t prev = INT64_MIN;
		xor_enc_reset(&enc);
		int64_t cmint = 0;
		for (size_t j = 0; j <= ts->n_samples; j++) {
			bool end = j == ts->n_samples;
			if (!end && ts->samples[j]->timestamp <= prev) {
				rc = err_set(err, ERR_CORRUPT, "remote read %s: SAMPLES response: series %zu: timestamps not increasing at sample %zu",
					     set->url, i, j);
				break;
			}
			if (xor_enc_count(&enc) > 0 && (end || xor_enc_count(&enc) == XOR_SAMPLES_PER_CHUNK)) {
				size_t len;
				const uint8_t *p = xor_enc_bytes(&enc, &len);
				chunk_push(a, &out->cv, (chunk_t){cmint, prev, CHUNK_ENC_XOR, arena_memdup(a, p, len), len});
				xor_enc_reset(&enc);
			}
			if (end)
				break;
			if (xor_enc_count(&enc) == 0)
				cmint = ts->samples[j]->timestamp;
			xor_enc_append(&enc, ts->samples[j]->timestamp, ts->samples[j]->value);
			prev = ts->samples[j]->timestamp;
		}
		if (rc == 0 && out->cv.n > 0)
			ns++;
	}
	xor_enc_release(&enc);
	prometheus__read_response__free_unpacked(rr, NULL);
	if (rc)
		return rc;
	qsort(ss, ns, sizeof *ss, sorted_cmp);
	set->samples_mode = true;
	set->sl = ARENA_NEW_ARRAY(a, labels_t, ns ? ns : 1);
	set->sc = ARENA_NEW_ARRAY(a, chunk_vec_t, ns ? ns : 1);
	for (size_t i = 0; i < ns; i++) {
		set->sl[i] = ss[i].ls;
		set->sc[i] = ss[i].cv;
	}
	set->sn = ns;
	return 0;
}

/* ---- store ops ---- */

static int build_read_request(const matcher_t *ms, size_t nms, int64_t mint, int64_t maxt, buf_t *out)
{
	Prometheus__LabelMatcher *pm = xcalloc(nms ? nms : 1, sizeof *pm);
	Prometheus__LabelMatcher **pmp = xcalloc(nms ? nms : 1, sizeof *pmp);
	char **strs = xcalloc(2 * (nms ? nms : 1), sizeof *strs);
	for (size_t i = 0; i < nms; i++) {
		prometheus__label_matcher__init(&pm[i]);
		pm[i].type = (Prometheus__LabelMatcher__Type)ms[i].type;
		pm[i].name = strs[2 * i] = xstrndup(ms[i].name.p, ms[i].name.n);
		pm[i].value = strs[2 * i + 1] = xstrndup(ms[i].value.p, ms[i].value.n);
		pmp[i] = &pm[i];
	}
	Prometheus__ReadHints hints = PROMETHEUS__READ_HINTS__INIT;
	hints.start_ms = mint;
	hints.end_ms = maxt;
	Prometheus__Query q = PROMETHEUS__QUERY__INIT;
	q.start_timestamp_ms = mint;
	q.end_timestamp_ms = maxt;
	q.n_matchers = nms;
	q.matchers = pmp;
	q.hints = &hints;
	Prometheus__Query *qp = &q;
	Prometheus__ReadRequest__ResponseType types[] = {PROMETHEUS__READ_REQUEST__RESPONSE_TYPE__STREAMED_XOR_CHUNKS};
	Prometheus__ReadRequest rr = PROMETHEUS__READ_REQUEST__INIT;
	rr.n_queries = 1;
	rr.queries = &qp;
	rr.n_accepted_response_types = 1;
	rr.accepted_response_types = types;
	size_t plen = prometheus__read_request__get_packed_size(&rr);
	uint8_t *packed = xmalloc(plen ? plen : 1);
	prometheus__read_request__pack(&rr, packed);
	size_t clen = snappy_max_compressed_length(plen);
	buf_reset(out);
	char *dst = buf_extend(out, clen);
	int rc = snappy_compress((const char *)packed, plen, dst, &clen) == SNAPPY_OK ? 0 : ERR_INTERNAL;
	buf_truncate(out, rc ? 0 : clen);
	free(packed);
	for (size_t i = 0; i < 2 * nms; i++)
		free(strs[i]);
	free(strs);
	free(pmp);
	free(pm);
	return rc;
}

static int prom_series(store_t *base, arena_t *a, const store_series_req_t *req, series_set_t **out, err_t *err)
{
	prom_store_t *st = (prom_store_t *)base;
	labels_t ext = prom_store_external_labels(st, a);
	int64_t mint = max64(req->mint, st->min_time), maxt = req->maxt;
	const matcher_t *rest;
	size_t nrest;
	if (mint > maxt || !store_match_external(a, &ext, req->ms, req->nms, &rest, &nrest)) {
		*out = series_set_empty();
		return 0;
	}
	if (nrest == 0)
		return err_set(err, ERR_INVALID, "no matchers specified (excluding external labels)");
	prom_set_t *set = ARENA_NEW(a, prom_set_t);
	set->base.ops = &prom_set_ops;
	set->st = st;
	set->ext = ext;
	set->mint = mint;
	set->maxt = maxt;
	set->limit = req->limit;
	set->skip_chunks = req->skip_chunks;
	arena_init(&set->scratch, 0);
	buf_init(&set->body);
	set->url = arena_printf(a, "%s/api/v1/read", st->url);
	set->hdrs[0] = "Content-Encoding: snappy";
	set->hdrs[1] = "Content-Type: application/x-protobuf";
	set->hdrs[2] = "X-Prometheus-Remote-Read-Version: 0.1.0";
	if (build_read_request(rest, nrest, mint, maxt, &set->body) != 0) {
		set_close(&set->base);
		return err_set(err, ERR_INTERNAL, "remote read %s: snappy compression failed", set->url);
	}
	set->req = (httpc_req_t){.method = "POST",
				 .url = set->url,
				 .headers = set->hdrs,
				 .nheaders = 3,
				 .body = set->body.p,
				 .body_len = set->body.n,
				 .timeout_ms = st->timeout_ms,
				 .cfg = st->http};
	int rc = httpc_stream_open(&set->stream, &set->req, err);
	if (rc) {
		set_close(&set->base);
		return err_wrap(err, "remote read");
	}
	long status = httpc_stream_status(set->stream);
	const char *ct = httpc_stream_content_type(set->stream);
	if (status != 200) {
		httpc_stream_fill(set->stream, 512, err);
		str_t b = httpc_stream_buf(set->stream);
		if (b.n > 512)
			b.n = 512;
		b = str_trim(b);
		rc = err_set(err, status >= 500 ? ERR_UNAVAILABLE : ERR_INVALID, "remote read %s: HTTP %ld: " STR_FMT,
			     set->url, status, STR_ARG(b));
		set_close(&set->base);
		return rc;
	}
	if (ct && !strncmp(ct, "application/x-streamed-protobuf", 31)) {
		if (!strstr(ct, "proto=prometheus.ChunkedReadResponse")) {
			rc = err_set(err, ERR_CORRUPT, "remote read %s: unexpected content type \"%s\"", set->url, ct);
			set_close(&set->base);
			return rc;
		}
		*out = &set->base;
		return 0;
	}
	if (ct && !strncmp(ct, "application/x-protobuf", 22)) {
		/* SAMPLES: the whole (snappy) body, then re-chunk. */
		while (!httpc_stream_eof(set->stream) && rc == 0) {
			str_t b = httpc_stream_buf(set->stream);
			if (b.n > PROM_MAX_SAMPLES_BODY) {
				rc = err_set(err, ERR_LIMIT, "remote read %s: SAMPLES response over %u bytes", set->url,
					     PROM_MAX_SAMPLES_BODY);
				break;
			}
			rc = httpc_stream_fill(set->stream, b.n + 1, err);
			if (httpc_stream_buf(set->stream).n == b.n)
				break;
		}
		if (rc == 0) {
			str_t b = httpc_stream_buf(set->stream);
			rc = decode_samples(set, a, b.p, b.n, err);
		}
		httpc_stream_free(set->stream);
		set->stream = NULL;
		if (rc) {
			set_close(&set->base);
			return rc;
		}
		*out = &set->base;
		return 0;
	}
	rc = err_set(err, ERR_CORRUPT, "remote read %s: unexpected content type \"%s\"", set->url, ct ? ct : "(none)");
	set_close(&set->base);
	return rc;
}

int prom_store_decode(arena_t *a, const void *body, size_t n, bool streamed, const labels_t *ext, int64_t mint,
		      int64_t maxt, series_set_t **out, err_t *err)
{
	prom_set_t *set = ARENA_NEW(a, prom_set_t);
	set->base.ops = &prom_set_ops;
	set->ext = ext ? *ext : (labels_t){0};
	set->mint = mint;
	set->maxt = maxt;
	arena_init(&set->scratch, 0);
	buf_init(&set->body);
	set->url = "(memory)";
	set->mem = str_from(body, n);
	if (!streamed) {
		int rc = decode_samples(set, a, body, n, err);
		if (rc) {
			set_close(&set->base);
			return rc;
		}
	}
	*out = &set->base;
	return 0;
}

/* Time as Prometheus API seconds, or false when the bound is open (outside year 0..9999). */
static bool api_time(buf_t *b, const char *key, int64_t ms)
{
	if (ms <= -62135596800000LL || ms >= 253402300799000LL)
		return false;
	int64_t s = ms / 1000, frac = ms % 1000;
	if (frac < 0) {
		frac += 1000;
		s--;
	}
	buf_printf(b, "%s%s=%lld.%03lld", b->n && strchr(b->p, '?') ? "&" : "?", key, (long long)s, (long long)frac);
	return true;
}

/* GET a Prometheus API URL and return its "data" (a new jansson reference). */
static int api_get_data(const char *url, const httpcfg_t *hc, int64_t timeout_ms, json_t **data, err_t *err)
{
	httpc_resp_t resp;
	httpc_resp_init(&resp);
	httpc_req_t req = {.url = url, .timeout_ms = timeout_ms > 0 ? timeout_ms : PROM_DEFAULT_TIMEOUT_MS, .cfg = hc};
	int rc = httpc_do(&req, &resp, err);
	if (rc) {
		httpc_resp_release(&resp);
		return rc;
	}
	json_error_t je;
	json_t *root = json_loadb(resp.body.p, resp.body.n, 0, &je);
	long status = resp.status;
	httpc_resp_release(&resp);
	if (!root)
		return err_set(err, status >= 500 ? ERR_UNAVAILABLE : ERR_CORRUPT, "GET %s: HTTP %ld: invalid JSON at line %d: %s",
			       url, status, je.line, je.text);
	const char *st = json_string_value(json_object_get(root, "status"));
	if (status != 200 || !st || strcmp(st, "success") != 0) {
		const char *e = json_string_value(json_object_get(root, "error"));
		rc = err_set(err, status >= 500 ? ERR_UNAVAILABLE : ERR_INVALID, "GET %s: HTTP %ld: %s", url, status,
			     e ? e : "status is not \"success\"");
		json_decref(root);
		return rc;
	}
	*data = json_incref(json_object_get(root, "data"));
	json_decref(root);
	if (!*data)
		return err_set(err, ERR_CORRUPT, "GET %s: answer has no \"data\"", url);
	return 0;
}

static int prom_labels_call(prom_store_t *st, arena_t *a, const store_label_req_t *req, bool names,
			    store_strings_t *out, err_t *err)
{
	memset(out, 0, sizeof *out);
	labels_t ext = prom_store_external_labels(st, a);
	const matcher_t *rest;
	size_t nrest;
	int64_t mint = max64(req->mint, st->min_time);
	if (mint > req->maxt || !store_match_external(a, &ext, req->ms, req->nms, &rest, &nrest))
		return 0;
	if (!names) {
		bool found;
		str_t v = labels_get(&ext, req->name, &found);
		if (found) { /* an external label has exactly one value here */
			out->v = ARENA_NEW(a, str_t);
			out->v[0] = v;
			out->n = 1;
			return 0;
		}
	}
	buf_t url = BUF_INIT;
	buf_puts(&url, st->url);
	if (names) {
		buf_puts(&url, "/api/v1/labels");
	} else {
		buf_puts(&url, "/api/v1/label/");
		url_escape(&url, req->name); /* label names are [a-zA-Z0-9_]: nothing to escape in practice */
		buf_puts(&url, "/values");
	}
	api_time(&url, "start", mint);
	api_time(&url, "end", req->maxt);
	if (nrest) {
		buf_t sel = BUF_INIT;
		matchers_format(&sel, rest, nrest);
		buf_puts(&url, strchr(url.p, '?') ? "&match[]=" : "?match[]=");
		url_escape(&url, buf_str(&sel));
		buf_release(&sel);
	}
	json_t *data = NULL;
	int rc = api_get_data(url.p, st->http, st->timeout_ms, &data, err);
	if (rc == 0 && !json_is_array(data))
		rc = err_set(err, ERR_CORRUPT, "GET %s: \"data\" is not an array", url.p);
	if (rc == 0) {
		size_t n = json_array_size(data);
		str_t *v = ARENA_NEW_ARRAY(a, str_t, n + ext.n + 1);
		size_t k = 0;
		for (size_t i = 0; i < n; i++) {
			json_t *e = json_array_get(data, i);
			if (!json_is_string(e)) {
				rc = err_set(err, ERR_CORRUPT, "GET %s: data[%zu] is not a string", url.p, i);
				break;
			}
			v[k++] = str_from(arena_memdup(a, json_string_value(e), json_string_length(e) + 1),
					  json_string_length(e));
		}
		if (names)
			for (size_t i = 0; i < ext.n; i++)
				v[k++] = ext.v[i].name;
		k = store_strings_sort_unique(v, k);
		if (req->limit > 0 && (int64_t)k > req->limit)
			k = (size_t)req->limit;
		out->v = v;
		out->n = k;
	}
	json_decref(data);
	buf_release(&url);
	return rc;
}

static int prom_label_names(store_t *base, arena_t *a, const store_label_req_t *req, store_strings_t *out,
			    err_t *err)
{
	return prom_labels_call((prom_store_t *)base, a, req, true, out, err);
}

static int prom_label_values(store_t *base, arena_t *a, const store_label_req_t *req, store_strings_t *out,
			     err_t *err)
{
	return prom_labels_call((prom_store_t *)base, a, req, false, out, err);
}

static int prom_info(store_t *base, arena_t *a, store_info_t *out, err_t *err)
{
	prom_store_t *st = (prom_store_t *)base;
	(void)err;
	labels_t *ext = ARENA_NEW(a, labels_t);
	*ext = prom_store_external_labels(st, a);
	pthread_mutex_lock(&st->mu);
	int64_t dmint = st->data_mint;
	pthread_mutex_unlock(&st->mu);
	out->label_sets = ext->n ? ext : NULL;
	out->nlabel_sets = ext->n ? 1 : 0;
	out->mint = max64(dmint, st->min_time);
	out->maxt = INT64_MAX;
	out->component_type = "sidecar";
	return 0;
}

static void prom_free_base(store_t *base)
{
	prom_store_free((prom_store_t *)base);
}

static const struct store_ops prom_ops = {
	.series = prom_series,
	.label_names = prom_label_names,
	.label_values = prom_label_values,
	.info = prom_info,
	.free = prom_free_base,
};

prom_store_t *prom_store_new(const prom_store_config_t *cfg)
{
	prom_store_t *s = xcalloc(1, sizeof *s);
	s->base.ops = &prom_ops;
	s->url = xstrdup(cfg->url);
	size_t n = strlen(s->url);
	while (n > 0 && s->url[n - 1] == '/')
		s->url[--n] = 0;
	s->base.name = s->url;
	s->timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : PROM_DEFAULT_TIMEOUT_MS;
	s->min_time = cfg->min_time;
	s->http = cfg->http;
	s->data_mint = INT64_MIN;
	pthread_mutex_init(&s->mu, NULL);
	arena_init(&s->ext_arena, 0);
	return s;
}

store_t *prom_store_base(prom_store_t *s)
{
	return &s->base;
}

void prom_store_free(prom_store_t *s)
{
	if (!s)
		return;
	pthread_mutex_destroy(&s->mu);
	arena_release(&s->ext_arena);
	free(s->url);
	free(s);
}

/* ---- Prometheus HTTP API helpers ---- */

int prom_api_ready(const char *url, const httpcfg_t *hc, int64_t timeout_ms, err_t *err)
{
	char u[1024];
	snprintf(u, sizeof u, "%s/-/ready", url);
	httpc_resp_t resp;
	httpc_resp_init(&resp);
	httpc_req_t req = {.url = u, .timeout_ms = timeout_ms > 0 ? timeout_ms : PROM_DEFAULT_TIMEOUT_MS, .cfg = hc};
	int rc = httpc_do(&req, &resp, err);
	if (rc == 0 && resp.status != 200) {
		str_t b = str_trim(buf_str(&resp.body));
		if (b.n > 200)
			b.n = 200;
		rc = err_set(err, ERR_UNAVAILABLE, "GET %s: HTTP %ld: " STR_FMT, u, resp.status, STR_ARG(b));
	}
	httpc_resp_release(&resp);
	return rc;
}

static yaml_node_t *map_get(yaml_document_t *d, yaml_node_t *map, const char *key)
{
	if (!map || map->type != YAML_MAPPING_NODE)
		return NULL;
	for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
		yaml_node_t *k = yaml_document_get_node(d, p->key);
		if (k && k->type == YAML_SCALAR_NODE && !strcmp((const char *)k->data.scalar.value, key))
			return yaml_document_get_node(d, p->value);
	}
	return NULL;
}

int prom_config_external_labels(const char *yaml, size_t len, arena_t *a, labels_t *out, err_t *err)
{
	yaml_parser_t p;
	yaml_document_t d;
	out->v = NULL;
	out->n = 0;
	yaml_parser_initialize(&p);
	yaml_parser_set_input_string(&p, (const unsigned char *)yaml, len);
	if (!yaml_parser_load(&p, &d)) {
		int rc = err_set(err, ERR_INVALID, "prometheus config:%zu:%zu: %s", p.problem_mark.line + 1,
				 p.problem_mark.column + 1, p.problem ? p.problem : "invalid YAML");
		yaml_parser_delete(&p);
		return rc;
	}
	int rc = 0;
	yaml_node_t *root = yaml_document_get_root_node(&d);
	yaml_node_t *ext = map_get(&d, map_get(&d, root, "global"), "external_labels");
	if (ext && ext->type == YAML_MAPPING_NODE) {
		size_t n = (size_t)(ext->data.mapping.pairs.top - ext->data.mapping.pairs.start);
		out->v = ARENA_NEW_ARRAY(a, label_t, n ? n : 1);
		for (yaml_node_pair_t *pp = ext->data.mapping.pairs.start; pp < ext->data.mapping.pairs.top; pp++) {
			yaml_node_t *k = yaml_document_get_node(&d, pp->key), *v = yaml_document_get_node(&d, pp->value);
			if (!k || !v || k->type != YAML_SCALAR_NODE || v->type != YAML_SCALAR_NODE) {
				rc = err_set(err, ERR_INVALID, "prometheus config:%zu:%zu: external_labels: want name: value",
					     (k ? k->start_mark.line : 0) + 1, (k ? k->start_mark.column : 0) + 1);
				break;
			}
			label_t *l = &out->v[out->n++];
			l->name = str_from(arena_strndup(a, (const char *)k->data.scalar.value, k->data.scalar.length),
					   k->data.scalar.length);
			l->value = str_from(arena_strndup(a, (const char *)v->data.scalar.value, v->data.scalar.length),
					    v->data.scalar.length);
		}
		if (rc == 0 && labels_normalize(out) != 0)
			rc = err_set(err, ERR_INVALID, "prometheus config: external_labels: empty or duplicate label name");
	} else if (ext && !(ext->type == YAML_SCALAR_NODE && ext->data.scalar.length == 0)) {
		rc = err_set(err, ERR_INVALID, "prometheus config:%zu:%zu: external_labels is not a mapping",
			     ext->start_mark.line + 1, ext->start_mark.column + 1);
	}
	yaml_document_delete(&d);
	yaml_parser_delete(&p);
	return rc;
}

int prom_api_external_labels(const char *url, const httpcfg_t *hc, int64_t timeout_ms, arena_t *a, labels_t *out,
                             err_t *err)
{
	char u[1024];
	snprintf(u, sizeof u, "%s/api/v1/status/config", url);
	json_t *data = NULL;
	int rc = api_get_data(u, hc, timeout_ms, &data, err);
	if (rc)
		return rc;
	json_t *y = json_object_get(data, "yaml");
	if (!json_is_string(y))
		rc = err_set(err, ERR_CORRUPT, "GET %s: data.yaml is not a string", u);
	else if ((rc = prom_config_external_labels(json_string_value(y), json_string_length(y), a, out, err)) != 0)
		err_wrap(err, "GET %s", u);
	json_decref(data);
	return rc;
}

int prom_api_head_min_time(const char *url, const httpcfg_t *hc, int64_t timeout_ms, int64_t *mint, err_t *err)
{
	char u[1024];
	snprintf(u, sizeof u, "%s/api/v1/status/tsdb", url);
	json_t *data = NULL;
	int rc = api_get_data(u, hc, timeout_ms, &data, err);
	if (rc)
		return rc;
	json_t *v = json_object_get(json_object_get(data, "headStats"), "minTime");
	if (!json_is_integer(v))
		rc = err_set(err, ERR_CORRUPT, "GET %s: data.headStats.minTime is not an integer", u);
	else
		*mint = (int64_t)json_integer_value(v);
	json_decref(data);
	return rc;
}

int prom_api_flag(const char *url, const httpcfg_t *hc, int64_t timeout_ms, const char *name, arena_t *a,
                  const char **out, err_t *err)
{
	char u[1024];
	snprintf(u, sizeof u, "%s/api/v1/status/flags", url);
	json_t *data = NULL;
	int rc = api_get_data(u, hc, timeout_ms, &data, err);
	if (rc)
		return rc;
	json_t *v = json_object_get(data, name);
	if (!json_is_string(v))
		rc = err_set(err, ERR_NOT_FOUND, "GET %s: no flag %s", u, name);
	else
		*out = arena_strdup(a, json_string_value(v));
	json_decref(data);
	return rc;
}
