/*
 * prom_store_test.c — the Prometheus remote-read store against a fake Prometheus (Strata's HTTP
 * server on a thread) answering STREAMED_XOR_CHUNKS, SAMPLES, garbage and errors.
 */
#include <pthread.h>
#include <snappy-c.h>
#include <string.h>

#include "base/alloc.h"
#include "base/crc32c.h"
#include "base/varint.h"
#include "net/http.h"
#include "prompb_remote.pb-c.h"
#include "sidecar/prom_store.h"
#include "test.h"
#include "tsdb/xor.h"

enum mode { M_STREAM, M_SAMPLES, M_BADCRC, M_GARBAGE, M_HTML, M_HTTP400, M_TRUNCATED };

typedef struct fake {
	loop_t *loop;
	http_server_t *http;
	pthread_t thr;
	char url[64];
	enum mode mode;
	int reads;            /* remote-read requests seen */
	size_t last_nmatchers;
	int last_accepted;    /* first accepted response type */
	char last_query[512]; /* raw query string of the last label API call */
} fake_t;

static void *fake_main(void *arg)
{
	loop_run(((fake_t *)arg)->loop);
	return NULL;
}

/* A chunk with samples t = from, from+step, ... (n of them), value = t/1000. */
static Prometheus__Chunk *mk_chunk(int64_t from, int n)
{
	xor_enc_t e;
	xor_enc_init(&e);
	for (int i = 0; i < n; i++)
		xor_enc_append(&e, from + i * 15000, (double)(from + i * 15000) / 1000.0);
	size_t len;
	const uint8_t *p = xor_enc_bytes(&e, &len);
	Prometheus__Chunk *c = xcalloc(1, sizeof *c);
	prometheus__chunk__init(c);
	c->min_time_ms = from;
	c->max_time_ms = from + (n - 1) * 15000;
	c->type = PROMETHEUS__CHUNK__ENCODING__XOR;
	c->data.data = xmemdup(p, len);
	c->data.len = len;
	xor_enc_release(&e);
	return c;
}

static Prometheus__Label lbl_name = PROMETHEUS__LABEL__INIT, lbl_job_a = PROMETHEUS__LABEL__INIT,
			 lbl_job_b = PROMETHEUS__LABEL__INIT;
static Prometheus__Label *labels_a[2], *labels_b[2];

static void init_labels(void)
{
	lbl_name.name = "__name__";
	lbl_name.value = "up";
	lbl_job_a.name = "job";
	lbl_job_a.value = "a";
	lbl_job_b.name = "job";
	lbl_job_b.value = "b";
	labels_a[0] = labels_b[0] = &lbl_name;
	labels_a[1] = &lbl_job_a;
	labels_b[1] = &lbl_job_b;
}

/* One frame: series (labels, chunks[0..n)) appended as uvarint + CRC32C + message. */
static void put_frame(buf_t *out, Prometheus__ChunkedSeries **series, size_t n, bool bad_crc)
{
	Prometheus__ChunkedReadResponse r = PROMETHEUS__CHUNKED_READ_RESPONSE__INIT;
	r.n_chunked_series = n;
	r.chunked_series = series;
	size_t len = prometheus__chunked_read_response__get_packed_size(&r);
	uint8_t *p = xmalloc(len + 1);
	prometheus__chunked_read_response__pack(&r, p);
	buf_put_uvarint(out, len);
	buf_put_be32(out, crc32c(0, p, len) ^ (bad_crc ? 1u : 0u));
	buf_append(out, p, len);
	free(p);
}

static void free_series(Prometheus__ChunkedSeries *s)
{
	for (size_t i = 0; i < s->n_chunks; i++) {
		free(s->chunks[i]->data.data);
		free(s->chunks[i]);
	}
	free(s->chunks);
}

static void series_init(Prometheus__ChunkedSeries *s, Prometheus__Label **ls, int nchunks, int64_t from, int per)
{
	prometheus__chunked_series__init(s);
	s->n_labels = 2;
	s->labels = ls;
	s->n_chunks = (size_t)nchunks;
	s->chunks = xcalloc((size_t)nchunks, sizeof *s->chunks);
	for (int i = 0; i < nchunks; i++)
		s->chunks[i] = mk_chunk(from + (int64_t)i * per * 15000, per);
}

/* Streamed answer: series a (3 chunks) and b (chunk 1 in frame 1, chunk 2 in frame 2). */
static void streamed_body(buf_t *out, bool bad_crc)
{
	Prometheus__ChunkedSeries a, b1, b2;
	series_init(&a, labels_a, 3, 0, 100);
	series_init(&b1, labels_b, 1, 0, 120);
	series_init(&b2, labels_b, 1, 120 * 15000, 50);
	Prometheus__ChunkedSeries *f1[] = {&a, &b1}, *f2[] = {&b2};
	put_frame(out, f1, 2, false);
	put_frame(out, f2, 1, bad_crc);
	free_series(&a);
	free_series(&b1);
	free_series(&b2);
}

/* SAMPLES answer: b first (unsorted on purpose) with 10 samples, a with 300. */
static void samples_body(buf_t *out)
{
	Prometheus__Sample *sa = xcalloc(300, sizeof *sa), **pa = xcalloc(300, sizeof *pa);
	for (int i = 0; i < 300; i++) {
		prometheus__sample__init(&sa[i]);
		sa[i].timestamp = i * 15000;
		sa[i].value = i;
		pa[i] = &sa[i];
	}
	Prometheus__TimeSeries ta = PROMETHEUS__TIME_SERIES__INIT, tb = PROMETHEUS__TIME_SERIES__INIT;
	ta.n_labels = tb.n_labels = 2;
	ta.labels = labels_a;
	tb.labels = labels_b;
	ta.n_samples = 300;
	ta.samples = pa;
	tb.n_samples = 10;
	tb.samples = pa;
	Prometheus__TimeSeries *ts[] = {&tb, &ta};
	Prometheus__QueryResult qr = PROMETHEUS__QUERY_RESULT__INIT;
	qr.n_timeseries = 2;
	qr.timeseries = ts;
	Prometheus__QueryResult *qrp = &qr;
	Prometheus__ReadResponse rr = PROMETHEUS__READ_RESPONSE__INIT;
	rr.n_results = 1;
	rr.results = &qrp;
	size_t len = prometheus__read_response__get_packed_size(&rr);
	char *p = xmalloc(len);
	prometheus__read_response__pack(&rr, (uint8_t *)p);
	size_t clen = snappy_max_compressed_length(len);
	char *c = buf_extend(out, clen);
	snappy_compress(p, len, c, &clen);
	buf_truncate(out, clen);
	free(p);
	free(sa);
	free(pa);
}

static void h_read(http_req_t *r, void *arg)
{
	fake_t *f = arg;
	f->reads++;
	size_t ulen = 0;
	char *raw = NULL;
	if (snappy_uncompressed_length(r->body.p, r->body.n, &ulen) == SNAPPY_OK) {
		raw = xmalloc(ulen + 1);
		snappy_uncompress(r->body.p, r->body.n, raw, &ulen);
	}
	Prometheus__ReadRequest *rq = raw ? prometheus__read_request__unpack(NULL, ulen, (uint8_t *)raw) : NULL;
	free(raw);
	if (!rq) {
		http_error(r, 400, "bad request");
		return;
	}
	f->last_nmatchers = rq->n_queries ? rq->queries[0]->n_matchers : 99;
	f->last_accepted = rq->n_accepted_response_types ? (int)rq->accepted_response_types[0] : -1;
	prometheus__read_request__free_unpacked(rq, NULL);
	buf_t b = BUF_INIT;
	switch (f->mode) {
	case M_STREAM:
	case M_BADCRC:
	case M_TRUNCATED:
		streamed_body(&b, f->mode == M_BADCRC);
		if (f->mode == M_TRUNCATED)
			buf_truncate(&b, b.n - 7);
		http_respond(r, 200, "application/x-streamed-protobuf; proto=prometheus.ChunkedReadResponse", b.p, b.n);
		break;
	case M_SAMPLES:
		samples_body(&b);
		http_add_header(r, "Content-Encoding", "snappy");
		http_respond(r, 200, "application/x-protobuf", b.p, b.n);
		break;
	case M_GARBAGE:
		http_add_header(r, "Content-Encoding", "snappy");
		http_respond(r, 200, "application/x-protobuf", "\xff\xff\xff\xff\xffgarbage", 12);
		break;
	case M_HTML:
		http_respond(r, 200, "text/html", "<html>", 6);
		break;
	case M_HTTP400:
		http_error(r, 400, "remote read sample limit exceeded");
		break;
	}
	buf_release(&b);
}

static void h_labels(http_req_t *r, void *arg)
{
	fake_t *f = arg;
	snprintf(f->last_query, sizeof f->last_query, STR_FMT, STR_ARG(r->raw_query));
	const char *body = "{\"status\":\"success\",\"data\":[\"__name__\",\"job\"]}";
	http_respond(r, 200, "application/json", body, strlen(body));
}

static void h_values(http_req_t *r, void *arg)
{
	fake_t *f = arg;
	snprintf(f->last_query, sizeof f->last_query, STR_FMT, STR_ARG(r->raw_query));
	const char *body = "{\"status\":\"success\",\"data\":[\"b\",\"a\"]}";
	http_respond(r, 200, "application/json", body, strlen(body));
}

static void h_config(http_req_t *r, void *arg)
{
	(void)arg;
	const char *body = "{\"status\":\"success\",\"data\":{\"yaml\":\"global:\\n  scrape_interval: 15s\\n  "
			   "external_labels:\\n    replica: \\\"0\\\"\\n    cluster: c1\\nscrape_configs: []\\n\"}}";
	http_respond(r, 200, "application/json", body, strlen(body));
}

static void h_flags(http_req_t *r, void *arg)
{
	(void)arg;
	const char *body = "{\"status\":\"success\",\"data\":{\"storage.tsdb.min-block-duration\":\"2h\","
			   "\"storage.tsdb.max-block-duration\":\"1d12h\"}}";
	http_respond(r, 200, "application/json", body, strlen(body));
}

static void fake_start(fake_t *f)
{
	err_t err = {0};
	memset(f, 0, sizeof *f);
	init_labels();
	if (loop_new(&f->loop, &err))
		TEST_FAILF("loop: %s", err.msg);
	http_server_config_t cfg = {.address = "127.0.0.1:0", .worker_threads = -1};
	if (http_server_new(&f->http, f->loop, &cfg, &err))
		TEST_FAILF("server: %s", err.msg);
	http_handle(f->http, HTTP_M_POST, "/api/v1/read", h_read, f);
	http_handle(f->http, HTTP_M_GET, "/api/v1/labels", h_labels, f);
	http_handle(f->http, HTTP_M_GET, "/api/v1/label/*", h_values, f);
	http_handle(f->http, HTTP_M_GET, "/api/v1/status/config", h_config, f);
	http_handle(f->http, HTTP_M_GET, "/api/v1/status/flags", h_flags, f);
	http_server_set_ready(f->http, true);
	snprintf(f->url, sizeof f->url, "http://127.0.0.1:%d", http_server_port(f->http));
	pthread_create(&f->thr, NULL, fake_main, f);
}

static void fake_stop(fake_t *f)
{
	loop_stop(f->loop);
	pthread_join(f->thr, NULL);
	http_server_free(f->http);
	loop_free(f->loop);
}

static prom_store_t *new_store(const char *url, int64_t min_time)
{
	prom_store_config_t cfg = {.url = url, .timeout_ms = 5000, .min_time = min_time};
	prom_store_t *s = prom_store_new(&cfg);
	label_t ext[] = {{STR("cluster"), STR("c1")}};
	labels_t ls = {ext, 1};
	prom_store_set_external_labels(s, &ls);
	return s;
}

typedef struct result {
	int rc, next_rc;
	size_t nseries;
	char labels[4][128];
	int nchunks[4];
	int nsamples[4];
	int64_t last_t[4];
	err_t err;
} result_t;

/* Run a Series request for {__name__="up", extra} and collect what came back. */
static void run_series(prom_store_t *s, const char *ext_name, const char *ext_val, result_t *res)
{
	memset(res, 0, sizeof *res);
	arena_t a;
	arena_init(&a, 0);
	matcher_t ms[2];
	size_t nms = 1;
	matcher_init(&ms[0], MATCH_EQ, STR("__name__"), STR("up"), NULL);
	if (ext_name)
		matcher_init(&ms[nms++], MATCH_EQ, str_c(ext_name), str_c(ext_val), NULL);
	store_series_req_t req = {.mint = 0, .maxt = 10 * 3600 * 1000, .ms = ms, .nms = nms};
	series_set_t *set = NULL;
	res->rc = store_series(prom_store_base(s), &a, &req, &set, &res->err);
	if (res->rc == 0) {
		int rc;
		while ((rc = series_set_next(set, &res->err)) == 1) {
			size_t i = res->nseries++;
			if (i >= 4)
				continue;
			buf_t b = BUF_INIT;
			labels_format_full(&b, series_set_labels(set));
			snprintf(res->labels[i], sizeof res->labels[i], "%s", b.p);
			buf_release(&b);
			const chunk_t *cs;
			res->nchunks[i] = set->ops->chunks(set, &cs);
			sample_iter_t *it = series_set_samples(set);
			int64_t t[64];
			double v[64];
			int n;
			while ((n = sample_iter_next_batch(it, t, v, 64, &res->err)) > 0) {
				res->nsamples[i] += n;
				res->last_t[i] = t[n - 1];
			}
			if (n < 0)
				res->next_rc = n;
		}
		if (rc < 0)
			res->next_rc = rc;
		series_set_close(set);
	}
	for (size_t i = 0; i < nms; i++)
		matcher_release(&ms[i]);
	arena_release(&a);
}

TEST(streamed_series_with_external_labels)
{
	fake_t f;
	fake_start(&f);
	prom_store_t *s = new_store(f.url, INT64_MIN);
	result_t r;
	run_series(s, "cluster", "c1", &r);
	fake_stop(&f);
	prom_store_free(s);
	CHECK_EQ_INT(r.rc, 0);
	CHECK_EQ_INT(r.next_rc, 0);
	CHECK_EQ_INT(f.reads, 1);
	CHECK_EQ_INT(f.last_nmatchers, 1); /* the external-label matcher is not sent */
	CHECK_EQ_INT(f.last_accepted, 1);  /* STREAMED_XOR_CHUNKS */
	CHECK_EQ_INT(r.nseries, 2);
	CHECK_STR(r.labels[0], "{__name__=\"up\", cluster=\"c1\", job=\"a\"}");
	CHECK_STR(r.labels[1], "{__name__=\"up\", cluster=\"c1\", job=\"b\"}");
	CHECK_EQ_INT(r.nchunks[0], 3);
	CHECK_EQ_INT(r.nsamples[0], 300);
	CHECK_EQ_INT(r.nchunks[1], 2); /* joined across frames */
	CHECK_EQ_INT(r.nsamples[1], 170);
	CHECK_EQ_INT(r.last_t[1], 169 * 15000);
}

TEST(external_label_mismatch_sends_nothing)
{
	fake_t f;
	fake_start(&f);
	prom_store_t *s = new_store(f.url, INT64_MIN);
	result_t r;
	run_series(s, "cluster", "c2", &r);
	fake_stop(&f);
	prom_store_free(s);
	CHECK_EQ_INT(r.rc, 0);
	CHECK_EQ_INT(r.nseries, 0);
	CHECK_EQ_INT(f.reads, 0);
}

TEST(samples_fallback_rechunked_and_sorted)
{
	fake_t f;
	fake_start(&f);
	f.mode = M_SAMPLES;
	prom_store_t *s = new_store(f.url, INT64_MIN);
	result_t r;
	run_series(s, NULL, NULL, &r);
	fake_stop(&f);
	prom_store_free(s);
	CHECK_EQ_INT(r.rc, 0);
	CHECK_EQ_INT(r.next_rc, 0);
	CHECK_EQ_INT(r.nseries, 2);
	CHECK_STR(r.labels[0], "{__name__=\"up\", cluster=\"c1\", job=\"a\"}");
	CHECK_EQ_INT(r.nchunks[0], 3); /* 300 samples -> 120 + 120 + 60 */
	CHECK_EQ_INT(r.nsamples[0], 300);
	CHECK_EQ_INT(r.last_t[0], 299 * 15000);
	CHECK_EQ_INT(r.nchunks[1], 1);
	CHECK_EQ_INT(r.nsamples[1], 10);
}

TEST(bad_crc_truncation_and_garbage_are_errors)
{
	fake_t f;
	fake_start(&f);
	prom_store_t *s = new_store(f.url, INT64_MIN);
	result_t r1, r2, r3, r4, r5;
	f.mode = M_BADCRC;
	run_series(s, NULL, NULL, &r1);
	f.mode = M_TRUNCATED;
	run_series(s, NULL, NULL, &r2);
	f.mode = M_GARBAGE;
	run_series(s, NULL, NULL, &r3);
	f.mode = M_HTML;
	run_series(s, NULL, NULL, &r4);
	f.mode = M_HTTP400;
	run_series(s, NULL, NULL, &r5);
	fake_stop(&f);
	prom_store_free(s);
	CHECK_EQ_INT(r1.rc, 0);
	CHECK_EQ_INT(r1.next_rc, ERR_CORRUPT); /* first frame fine, second one fails */
	CHECK(strstr(r1.err.msg, "CRC32C") != NULL);
	CHECK(strstr(r1.err.msg, "/api/v1/read") != NULL);
	CHECK_EQ_INT(r2.next_rc, ERR_CORRUPT);
	CHECK(strstr(r2.err.msg, "truncated") != NULL);
	CHECK_EQ_INT(r3.rc, ERR_CORRUPT);
	CHECK(strstr(r3.err.msg, "snappy") != NULL);
	CHECK_EQ_INT(r4.rc, ERR_CORRUPT);
	CHECK(strstr(r4.err.msg, "text/html") != NULL);
	CHECK_EQ_INT(r5.rc, ERR_INVALID);
	CHECK(strstr(r5.err.msg, "sample limit") != NULL);
}

TEST(prometheus_down_is_unavailable)
{
	fake_t f;
	fake_start(&f);
	char url[64];
	snprintf(url, sizeof url, "%s", f.url);
	fake_stop(&f);
	prom_store_t *s = new_store(url, INT64_MIN);
	result_t r;
	run_series(s, NULL, NULL, &r);
	err_t err = {0};
	int rc2 = prom_api_ready(url, NULL, 1000, &err);
	prom_store_free(s);
	CHECK_EQ_INT(r.rc, ERR_UNAVAILABLE);
	CHECK(strstr(r.err.msg, url) != NULL);
	CHECK_EQ_INT(rc2, ERR_UNAVAILABLE);
}

TEST(only_external_matchers_and_min_time)
{
	fake_t f;
	fake_start(&f);
	prom_store_t *s = new_store(f.url, INT64_MIN);
	arena_t a;
	arena_init(&a, 0);
	matcher_t m;
	matcher_init(&m, MATCH_EQ, STR("cluster"), STR("c1"), NULL);
	store_series_req_t req = {.mint = 0, .maxt = 1000, .ms = &m, .nms = 1};
	series_set_t *set = NULL;
	err_t err = {0};
	int rc = store_series(prom_store_base(s), &a, &req, &set, &err);
	prom_store_free(s);
	/* --min-time after the request's range: nothing, without asking Prometheus. */
	s = new_store(f.url, 20 * 3600 * 1000LL);
	result_t r;
	run_series(s, NULL, NULL, &r);
	prom_store_free(s);
	matcher_release(&m);
	arena_release(&a);
	fake_stop(&f);
	CHECK_EQ_INT(rc, ERR_INVALID);
	CHECK_EQ_INT(r.rc, 0);
	CHECK_EQ_INT(r.nseries, 0);
	CHECK_EQ_INT(f.reads, 0);
}

TEST(label_names_and_values_via_http_api)
{
	fake_t f;
	fake_start(&f);
	prom_store_t *s = new_store(f.url, INT64_MIN);
	arena_t a;
	arena_init(&a, 0);
	matcher_t m;
	matcher_init(&m, MATCH_RE, STR("job"), STR("a|b"), NULL);
	store_label_req_t req = {.mint = 1000, .maxt = 2000, .ms = &m, .nms = 1};
	store_strings_t names, vals, ext_vals;
	err_t err = {0};
	int rc1 = store_label_names(prom_store_base(s), &a, &req, &names, &err);
	char q1[512];
	snprintf(q1, sizeof q1, "%s", f.last_query);
	req.name = STR("job");
	int rc2 = store_label_values(prom_store_base(s), &a, &req, &vals, &err);
	f.last_query[0] = 0;
	req.name = STR("cluster");
	int rc3 = store_label_values(prom_store_base(s), &a, &req, &ext_vals, &err);
	char q3[8];
	snprintf(q3, sizeof q3, "%s", f.last_query);
	store_info_t info;
	prom_store_set_data_min_time(s, 12345);
	int rc4 = store_info(prom_store_base(s), &a, &info, &err);
	fake_stop(&f);
	CHECK_EQ_INT(rc1, 0);
	CHECK_EQ_INT(names.n, 3);
	CHECK_SLICE(names.v[0], "__name__");
	CHECK_SLICE(names.v[1], "cluster");
	CHECK_SLICE(names.v[2], "job");
	CHECK_STR(q1, "start=1.000&end=2.000&match[]=%7Bjob%3D~%22a%7Cb%22%7D");
	CHECK_EQ_INT(rc2, 0);
	CHECK_EQ_INT(vals.n, 2);
	CHECK_SLICE(vals.v[0], "a");
	CHECK_EQ_INT(rc3, 0);
	CHECK_EQ_INT(ext_vals.n, 1);
	CHECK_SLICE(ext_vals.v[0], "c1");
	CHECK_STR(q3, ""); /* answered from the external labels */
	CHECK_EQ_INT(rc4, 0);
	CHECK_EQ_INT(info.nlabel_sets, 1);
	CHECK_SLICE(info.label_sets[0].v[0].name, "cluster");
	CHECK_EQ_INT(info.mint, 12345);
	CHECK(info.maxt == INT64_MAX);
	matcher_release(&m);
	arena_release(&a);
	prom_store_free(s);
}

TEST(external_labels_and_flags_from_prometheus)
{
	fake_t f;
	fake_start(&f);
	arena_t a;
	arena_init(&a, 0);
	labels_t ls = {0};
	err_t err = {0};
	int rc = prom_api_external_labels(f.url, NULL, 5000, &a, &ls, &err);
	const char *minb = NULL, *maxb = NULL, *none = NULL;
	int rc2 = prom_api_flag(f.url, NULL, 5000, "storage.tsdb.min-block-duration", &a, &minb, &err);
	int rc3 = prom_api_flag(f.url, NULL, 5000, "storage.tsdb.max-block-duration", &a, &maxb, &err);
	int rc4 = prom_api_flag(f.url, NULL, 5000, "nope", &a, &none, &err);
	int rc5 = prom_api_ready(f.url, NULL, 5000, &err);
	fake_stop(&f);
	labels_t empty = {0}, bad = {0};
	const char *y1 = "global:\n  scrape_interval: 1m\nscrape_configs: []\n";
	int rc6 = prom_config_external_labels(y1, strlen(y1), &a, &empty, &err);
	const char *y2 = "global:\n  external_labels: [a, b]\n";
	int rc7 = prom_config_external_labels(y2, strlen(y2), &a, &bad, &err);
	char msg7[ERR_MSG_MAX];
	snprintf(msg7, sizeof msg7, "%s", err.msg);
	int rc8 = prom_config_external_labels("global: [", 9, &a, &bad, &err);
	CHECK_EQ_INT(rc, 0);
	CHECK_EQ_INT(ls.n, 2);
	CHECK_SLICE(ls.v[0].name, "cluster");
	CHECK_SLICE(ls.v[0].value, "c1");
	CHECK_SLICE(ls.v[1].name, "replica");
	CHECK_SLICE(ls.v[1].value, "0");
	CHECK_EQ_INT(rc2, 0);
	CHECK_STR(minb, "2h");
	CHECK_EQ_INT(rc3, 0);
	CHECK_STR(maxb, "1d12h");
	CHECK_EQ_INT(rc4, ERR_NOT_FOUND);
	CHECK_EQ_INT(rc5, 0);
	CHECK_EQ_INT(rc6, 0);
	CHECK_EQ_INT(empty.n, 0);
	CHECK_EQ_INT(rc7, ERR_INVALID);
	CHECK(strstr(msg7, "2:") != NULL);
	CHECK_EQ_INT(rc8, ERR_INVALID);
	arena_release(&a);
}

/* Count series and samples of a set (closing it); rc of the failing next() or 0. */
static int count_set(series_set_t *set, size_t *nser, size_t *nsamp, err_t *err)
{
	int rc;
	int64_t t[128];
	double v[128];
	*nser = *nsamp = 0;
	while ((rc = series_set_next(set, err)) > 0) {
		(*nser)++;
		sample_iter_t *it = series_set_samples(set);
		int n;
		while ((n = sample_iter_next_batch(it, t, v, 128, err)) > 0)
			*nsamp += (size_t)n;
	}
	series_set_close(set);
	return rc;
}

TEST(decode_from_memory_streamed_and_samples)
{
	init_labels();
	arena_t a;
	arena_init(&a, 0);
	err_t err = {0};
	size_t ns, nsamp;
	series_set_t *set;
	buf_t body = BUF_INIT;
	streamed_body(&body, false);
	CHECK_EQ_INT(prom_store_decode(&a, body.p, body.n, true, NULL, INT64_MIN, INT64_MAX, &set, &err), 0);
	CHECK_EQ_INT(count_set(set, &ns, &nsamp, &err), 0);
	CHECK_EQ_INT((int)ns, 2); /* b's two frames joined */
	CHECK_EQ_INT((int)nsamp, 300 + 120 + 50);
	/* cut in the second frame: the first series still comes, then a truncation error with an offset */
	CHECK_EQ_INT(prom_store_decode(&a, body.p, body.n - 3, true, NULL, INT64_MIN, INT64_MAX, &set, &err), 0);
	CHECK_EQ_INT(count_set(set, &ns, &nsamp, &err), ERR_CORRUPT);
	CHECK(strstr(err.msg, "(memory): offset") != NULL);
	CHECK(strstr(err.msg, "truncated") != NULL);
	buf_reset(&body);
	samples_body(&body);
	CHECK_EQ_INT(prom_store_decode(&a, body.p, body.n, false, NULL, INT64_MIN, INT64_MAX, &set, &err), 0);
	CHECK_EQ_INT(count_set(set, &ns, &nsamp, &err), 0);
	CHECK_EQ_INT((int)ns, 2);
	CHECK_EQ_INT((int)nsamp, 310);
	CHECK_EQ_INT(prom_store_decode(&a, body.p, body.n / 2, false, NULL, INT64_MIN, INT64_MAX, &set, &err),
		     ERR_CORRUPT);
	buf_release(&body);
	arena_release(&a);
}

TEST_MAIN()
