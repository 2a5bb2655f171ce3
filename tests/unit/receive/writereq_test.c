#include <snappy-c.h>

#include "base/alloc.h"
#include "prompb_remote.pb-c.h"
#include "receive/writereq.h"
#include "test.h"
#include "tsdb/head.h"
#include <xxhash.h>

/* A WriteRequest built with protobuf-c (an independent encoder): nseries series with nl labels and
 * ns samples each, plus one metadata entry. */
static uint8_t *encode(int nseries, int nl, int ns, size_t *len)
{
	Prometheus__WriteRequest req = PROMETHEUS__WRITE_REQUEST__INIT;
	req.n_timeseries = (size_t)nseries;
	req.timeseries = xcalloc((size_t)nseries, sizeof(void *));
	char names[8][16], values[64][8][16];
	for (int i = 0; i < nseries; i++) {
		Prometheus__TimeSeries *ts = xcalloc(1, sizeof *ts);
		prometheus__time_series__init(ts);
		ts->n_labels = (size_t)nl;
		ts->labels = xcalloc((size_t)nl, sizeof(void *));
		for (int k = 0; k < nl; k++) {
			Prometheus__Label *l = xcalloc(1, sizeof *l);
			prometheus__label__init(l);
			snprintf(names[k], sizeof names[k], k ? "l%d" : "__name__", k);
			snprintf(values[i][k], sizeof values[i][k], "v%d_%d", i, k);
			l->name = names[k];
			l->value = values[i][k];
			ts->labels[k] = l;
		}
		ts->n_samples = (size_t)ns;
		ts->samples = xcalloc((size_t)ns, sizeof(void *));
		for (int k = 0; k < ns; k++) {
			Prometheus__Sample *s = xcalloc(1, sizeof *s);
			prometheus__sample__init(s);
			s->value = i * 100 + k + 0.5;
			s->timestamp =
			    k == 0 && i == 0 ? -5 : 1700000000000ll + k * 15000; /* a negative one too */
			ts->samples[k] = s;
		}
		req.timeseries[i] = ts;
	}
	Prometheus__MetricMetadata md = PROMETHEUS__METRIC_METADATA__INIT;
	md.type = PROMETHEUS__METRIC_METADATA__METRIC_TYPE__COUNTER;
	md.metric_family_name = "fam";
	md.help = "Help.";
	md.unit = "";
	Prometheus__MetricMetadata *mds[1] = {&md};
	req.n_metadata = 1;
	req.metadata = mds;
	*len = prometheus__write_request__get_packed_size(&req);
	uint8_t *out = xmalloc(*len + 1);
	prometheus__write_request__pack(&req, out);
	for (int i = 0; i < nseries; i++) {
		for (int k = 0; k < nl; k++)
			free(req.timeseries[i]->labels[k]);
		for (int k = 0; k < ns; k++)
			free(req.timeseries[i]->samples[k]);
		free(req.timeseries[i]->labels);
		free(req.timeseries[i]->samples);
		free(req.timeseries[i]);
	}
	free(req.timeseries);
	return out;
}

static uint8_t *compress(const uint8_t *p, size_t n, size_t *out_len)
{
	size_t cl = snappy_max_compressed_length(n);
	uint8_t *c = xmalloc(cl);
	BUG_ON(snappy_compress((const char *)p, n, (char *)c, &cl) != SNAPPY_OK);
	*out_len = cl;
	return c;
}

TEST(writereq_decode_roundtrip)
{
	size_t len, clen;
	uint8_t *pb = encode(50, 6, 3, &len);
	uint8_t *body = compress(pb, len, &clen);
	arena_t a;
	arena_init(&a, 0);
	wr_request_t r;
	err_t err = {0};
	CHECK_EQ_INT(wr_decode_body(&a, body, clen, 1 << 20, &r, &err), 0);
	CHECK_EQ_INT(r.nseries, 50);
	CHECK_EQ_INT(r.nsamples, 150);
	CHECK_EQ_INT(r.nlabels, 300);
	CHECK_EQ_INT(r.nmeta, 1);
	CHECK_SLICE(r.meta[0].family, "fam");
	CHECK_SLICE(r.meta[0].help, "Help.");
	CHECK_EQ_INT(r.meta[0].type, 1);
	for (size_t i = 0; i < r.nseries; i++) {
		const wr_series_t *s = &r.series[i];
		CHECK_EQ_INT(s->ls.n, 6);
		CHECK_SLICE(s->ls.v[0].name, "__name__");
		char want[16];
		snprintf(want, sizeof want, "v%zu_3", i);
		CHECK_SLICE(s->ls.v[3].value, want);
		CHECK_EQ_INT(s->n, 3);
		CHECK(s->raw != NULL); /* protobuf-c writes labels canonically: the head hashes them as sent */
		uint64_t k1[2], k2[2];
		buf_t kb = BUF_INIT;
		head_labels_key(&kb, &s->ls, k1);
		buf_release(&kb);
		XXH128_hash_t x = XXH3_128bits(s->raw, s->nraw);
		k2[0] = x.low64, k2[1] = x.high64;
		CHECK(k1[0] == k2[0] && k1[1] == k2[1]);
		CHECK_DBL(s->v[2], (double)i * 100 + 2.5);
		CHECK_EQ_INT(s->t[0], i == 0 ? -5 : 1700000000000ll);
		CHECK_EQ_INT(labels_check(&s->ls, &err), 0);
	}
	arena_release(&a);
	free(pb);
	free(body);
}

/* Every truncation and many byte flips of a valid body: an error or a decode, never a crash or a read
 * outside the buffer (ASan). */
TEST(writereq_hostile_bytes)
{
	size_t len;
	uint8_t *pb = encode(5, 3, 4, &len);
	arena_t a;
	arena_init(&a, 0);
	for (size_t cut = 0; cut < len; cut++) {
		uint8_t *p = xmemdup(pb, cut + 1);
		wr_request_t r;
		err_t err = {0};
		int rc = wr_decode(&a, p, cut, &r, &err);
		CHECK(rc == 0 || rc == ERR_INVALID);
		if (rc)
			CHECK(strstr(err.msg, "byte") != NULL);
		free(p);
		arena_reset(&a);
	}
	uint64_t x = 88172645463325252ull;
	for (int round = 0; round < 3000; round++) {
		uint8_t *p = xmemdup(pb, len);
		for (int k = 0; k < 3; k++) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			p[x % len] = (uint8_t)(x >> 32);
		}
		wr_request_t r;
		err_t err = {0};
		int rc = wr_decode(&a, p, len, &r, &err);
		CHECK(rc == 0 || rc == ERR_INVALID);
		free(p);
		arena_reset(&a);
	}
	/* absurd lengths: a field claiming 2^60 bytes */
	uint8_t absurd[] = {0x0a, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x10, 0x01};
	wr_request_t r;
	err_t err = {0};
	CHECK_EQ_INT(wr_decode(&a, absurd, sizeof absurd, &r, &err), ERR_INVALID);
	/* a group wire type */
	uint8_t group[] = {0x0b, 0x0c};
	CHECK_EQ_INT(wr_decode(&a, group, sizeof group, &r, &err), ERR_INVALID);
	/* unknown fields are skipped */
	uint8_t unknown[] = {0x10, 0x05, 0x2a, 0x01, 0x00, 0x3d, 1, 2, 3, 4};
	CHECK_EQ_INT(wr_decode(&a, unknown, sizeof unknown, &r, &err), 0);
	CHECK_EQ_INT(r.nseries, 0);
	arena_release(&a);
	free(pb);
}

TEST(writereq_snappy_bomb_and_garbage)
{
	arena_t a;
	arena_init(&a, 0);
	wr_request_t r;
	err_t err = {0};
	/* a header claiming 2 GiB in 6 bytes */
	uint8_t bomb[] = {0xff, 0xff, 0xff, 0xff, 0x07, 0x00};
	CHECK_EQ_INT(wr_decode_body(&a, bomb, sizeof bomb, 1u << 30, &r, &err), ERR_LIMIT);
	/* 100 MB claimed from a few bytes: more than snappy can expand them */
	uint8_t bomb2[] = {0x80, 0xad, 0xe2, 0x04, 0x00, 0x41};
	CHECK_EQ_INT(wr_decode_body(&a, bomb2, sizeof bomb2, 1u << 30, &r, &err), ERR_INVALID);
	CHECK(a.allocated < (1u << 20)); /* nothing was allocated for the claims */
	const char garbage[] = "this is not snappy at all, just text";
	CHECK(wr_decode_body(&a, garbage, sizeof garbage, 1 << 20, &r, &err) < 0);
	/* valid snappy around garbage protobuf */
	size_t clen;
	uint8_t *c = compress((const uint8_t *)"\xff\xff\xff\xff", 4, &clen);
	CHECK_EQ_INT(wr_decode_body(&a, c, clen, 1 << 20, &r, &err), ERR_INVALID);
	free(c);
	arena_release(&a);
}

TEST(writereq_label_checks)
{
	label_t ok[2] = {{STR("__name__"), STR("up")}, {STR("job"), STR("x")}};
	err_t err = {0};
	CHECK_EQ_INT(labels_check(&(labels_t){ok, 2}, &err), 0);
	label_t unsorted[2] = {{STR("job"), STR("x")}, {STR("__name__"), STR("up")}};
	CHECK_EQ_INT(labels_check(&(labels_t){unsorted, 2}, &err), ERR_INVALID);
	CHECK(strstr(err.msg, "not sorted") != NULL);
	label_t dup[2] = {{STR("a"), STR("x")}, {STR("a"), STR("y")}};
	CHECK_EQ_INT(labels_check(&(labels_t){dup, 2}, &err), ERR_INVALID);
	CHECK(strstr(err.msg, "duplicate") != NULL);
	label_t empty_name[1] = {{STR(""), STR("x")}};
	CHECK_EQ_INT(labels_check(&(labels_t){empty_name, 1}, &err), ERR_INVALID);
	label_t empty_value[1] = {{STR("a"), STR("")}};
	CHECK_EQ_INT(labels_check(&(labels_t){empty_value, 1}, &err), ERR_INVALID);
	label_t bad_utf8[1] = {{STR("a"), STR("\xc3\x28")}};
	CHECK_EQ_INT(labels_check(&(labels_t){bad_utf8, 1}, &err), ERR_INVALID);
	CHECK(strstr(err.msg, "UTF-8") != NULL);
	label_t good_utf8[1] = {{STR("a"), STR("\xc3\xbc\xe2\x82\xac")}};
	CHECK_EQ_INT(labels_check(&(labels_t){good_utf8, 1}, &err), 0);
	CHECK_EQ_INT(labels_check(&(labels_t){NULL, 0}, &err), ERR_INVALID);
}

TEST_MAIN()
