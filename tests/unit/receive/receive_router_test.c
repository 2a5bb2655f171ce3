/*
 * receive_router_test.c — (receive/router.h; net/ has a router_test of its own) the thanos.WriteRequest the
 * router forwards, checked field by field against the protobuf code generated from proto/storepb_write.proto
 * (another encoder and decoder).
 */
#include <string.h>

#include "base/alloc.h"
#include "net/grpc.h"
#include "receive/router.h"
#include "prompb_remote.pb-c.h"
#include "storepb_write.pb-c.h"
#include "test.h"

/* A prometheus.WriteRequest body with two series, decoded as the HTTP handler does. */
static void two_series(arena_t *a, wr_request_t *req, buf_t *raw)
{
	Prometheus__Label l1[] = {PROMETHEUS__LABEL__INIT, PROMETHEUS__LABEL__INIT};
	l1[0].name = "__name__", l1[0].value = "up";
	l1[1].name = "job", l1[1].value = "node";
	Prometheus__Label *lp1[] = {&l1[0], &l1[1]};
	Prometheus__Sample s1[] = {PROMETHEUS__SAMPLE__INIT, PROMETHEUS__SAMPLE__INIT};
	s1[0].value = 1, s1[0].timestamp = 1000;
	s1[1].value = 2.5, s1[1].timestamp = 2000;
	Prometheus__Sample *sp1[] = {&s1[0], &s1[1]};
	Prometheus__TimeSeries ts[2] = {PROMETHEUS__TIME_SERIES__INIT, PROMETHEUS__TIME_SERIES__INIT};
	ts[0].n_labels = 2, ts[0].labels = lp1, ts[0].n_samples = 2, ts[0].samples = sp1;
	Prometheus__Label l2 = PROMETHEUS__LABEL__INIT;
	l2.name = "__name__", l2.value = "a_very_long_metric_name_to_be_sure";
	Prometheus__Label *lp2[] = {&l2};
	Prometheus__Sample s2 = PROMETHEUS__SAMPLE__INIT, *sp2[] = {&s2};
	s2.value = -1, s2.timestamp = 1700000000000;
	ts[1].n_labels = 1, ts[1].labels = lp2, ts[1].n_samples = 1, ts[1].samples = sp2;
	Prometheus__TimeSeries *tsp[] = {&ts[0], &ts[1]};
	Prometheus__WriteRequest wr = PROMETHEUS__WRITE_REQUEST__INIT;
	wr.n_timeseries = 2, wr.timeseries = tsp;
	size_t n = prometheus__write_request__get_packed_size(&wr);
	buf_reserve(raw, n);
	prometheus__write_request__pack(&wr, (uint8_t *)raw->p);
	raw->n = n;
	err_t err = {0};
	if (wr_decode(a, (const uint8_t *)raw->p, raw->n, req, &err) != 0)
		TEST_FAILF("%s", err.msg);
}

static void check_forwarded(const uint8_t *p, size_t n, const char *tenant, int64_t replica)
{
	Thanos__WriteRequest *w = thanos__write_request__unpack(NULL, n, p);
	CHECK(w != NULL);
	CHECK(!strcmp(w->tenant, tenant));
	CHECK_EQ_INT(w->replica, replica);
	CHECK_EQ_INT(w->n_timeseries, 2);
	CHECK_EQ_INT(w->timeseries[0]->n_labels, 2);
	CHECK(!strcmp(w->timeseries[0]->labels[1]->value, "node"));
	CHECK_EQ_INT(w->timeseries[0]->n_samples, 2);
	CHECK(w->timeseries[0]->samples[1]->value == 2.5 && w->timeseries[0]->samples[1]->timestamp == 2000);
	CHECK(w->timeseries[1]->samples[0]->timestamp == 1700000000000 &&
	      w->timeseries[1]->samples[0]->value == -1);
	CHECK(!strcmp(w->timeseries[1]->labels[0]->value, "a_very_long_metric_name_to_be_sure"));
	thanos__write_request__free_unpacked(w, NULL);
}

TEST(encode_as_sent_and_reencoded)
{
	arena_t a;
	arena_init(&a, 0);
	wr_request_t req;
	buf_t raw = BUF_INIT, out = BUF_INIT;
	two_series(&a, &req, &raw);
	const wr_series_t *ss[] = {&req.series[0], &req.series[1]};
	rcv_router_encode(&out, ss, 2, STR("team-a"), 2);
	check_forwarded((const uint8_t *)out.p, out.n, "team-a", 2);
	/* relabelled series have no bytes as sent: encoded from labels and samples */
	wr_series_t copy[2] = {req.series[0], req.series[1]};
	copy[0].msg = copy[1].msg = NULL;
	const wr_series_t *cs[] = {&copy[0], &copy[1]};
	buf_reset(&out);
	rcv_router_encode(&out, cs, 2, STR("t"), 3);
	check_forwarded((const uint8_t *)out.p, out.n, "t", 3);
	buf_release(&raw);
	buf_release(&out);
	arena_release(&a);
}

/* The gRPC message as sent, plain and snappy-framed (many series: several 64 KiB chunks). */
TEST(encode_framed_plain_and_snappy)
{
	arena_t a;
	arena_init(&a, 0);
	wr_request_t req;
	buf_t raw = BUF_INIT, out = BUF_INIT, plain = BUF_INIT;
	two_series(&a, &req, &raw);
	enum { N = 3001 }; /* ~150 KiB */
	const wr_series_t **ss = arena_alloc(&a, N * sizeof *ss);
	for (size_t i = 0; i < N; i++)
		ss[i] = &req.series[i % 2];
	for (int compress = 0; compress <= 1; compress++) {
		buf_reset(&out);
		buf_reset(&plain);
		rcv_router_encode_framed(&out, compress, ss, N, STR("team-b"), 1);
		const uint8_t *h = (const uint8_t *)out.p;
		CHECK_EQ_INT(h[0], compress);
		CHECK_EQ_INT((size_t)h[1] << 24 | (size_t)h[2] << 16 | (size_t)h[3] << 8 | h[4], out.n - 5);
		if (compress) {
			err_t err = {0};
			CHECK_EQ_INT(grpc_snappy_decode(&plain, h + 5, out.n - 5, 1u << 24, &err), 0);
			CHECK(out.n < plain.n / 2); /* it did compress */
		} else {
			buf_append(&plain, h + 5, out.n - 5);
		}
		Thanos__WriteRequest *w =
		    thanos__write_request__unpack(NULL, plain.n, (const uint8_t *)plain.p);
		CHECK(w != NULL);
		CHECK(!strcmp(w->tenant, "team-b"));
		CHECK_EQ_INT(w->replica, 1);
		CHECK_EQ_INT(w->n_timeseries, N);
		CHECK(!strcmp(w->timeseries[N - 1]->labels[1]->value, "node"));
		CHECK(w->timeseries[N - 2]->samples[0]->timestamp == 1700000000000);
		thanos__write_request__free_unpacked(w, NULL);
	}
	buf_release(&raw);
	buf_release(&out);
	buf_release(&plain);
	arena_release(&a);
}

TEST(decode_what_thanos_sends)
{
	arena_t a;
	arena_init(&a, 0);
	wr_request_t req0;
	buf_t raw = BUF_INIT;
	two_series(&a, &req0, &raw);
	Prometheus__WriteRequest *pw = prometheus__write_request__unpack(NULL, raw.n, (const uint8_t *)raw.p);
	Thanos__WriteRequest w = THANOS__WRITE_REQUEST__INIT;
	w.n_timeseries = pw->n_timeseries;
	w.timeseries = pw->timeseries;
	w.tenant = "default-tenant";
	w.replica = 1;
	size_t n = thanos__write_request__get_packed_size(&w);
	uint8_t *p = arena_alloc(&a, n);
	thanos__write_request__pack(&w, p);
	wr_request_t req;
	str_t tenant;
	uint64_t replica;
	err_t err = {0};
	CHECK(rcv_router_decode(&a, p, n, &req, &tenant, &replica, &err) == 0);
	CHECK(str_eq_c(tenant, "default-tenant"));
	CHECK_EQ_INT(replica, 1);
	CHECK_EQ_INT(req.nseries, 2);
	CHECK_EQ_INT(req.nsamples, 3);
	CHECK(req.series[0].t[1] == 2000 && req.series[1].v[0] == -1);
	CHECK(str_eq_c(req.series[0].ls.v[1].name, "job"));
	prometheus__write_request__free_unpacked(pw, NULL);
	/* garbage and truncation are errors, never crashes */
	for (size_t cut = 1; cut < n; cut += 3)
		rcv_router_decode(&a, p, cut, &req, &tenant, &replica, &err);
	static const uint8_t bad[] = {0x12, 0xff, 0xff};
	CHECK(rcv_router_decode(&a, bad, sizeof bad, &req, &tenant, &replica, &err) == ERR_INVALID);
	buf_release(&raw);
	arena_release(&a);
}

/* The router-only path hashes labels off the wire: the same hash as from decoded labels, whatever
 * the encoding of the labels (lengths over 127, fields reversed or unknown ones inside). */
TEST(wire_hash_as_decoded)
{
	arena_t a;
	arena_init(&a, 0);
	wr_request_t req;
	buf_t raw = BUF_INIT;
	two_series(&a, &req, &raw);
	for (size_t i = 0; i < req.nseries; i++) {
		uint64_t h = 0;
		size_t ns = 0;
		err_t err = {0};
		CHECK_EQ_INT(
		    rcv_router_wire_hash(str_c("t1"), req.series[i].msg, req.series[i].nmsg, &h, &ns, &err),
		    0);
		CHECK(h == hashring_series_hash(str_c("t1"), &req.series[i].ls));
		CHECK_EQ_INT(ns, req.series[i].n);
	}
	/* hand-made: label 1 value first plus an unknown varint field; label 2 with a 200-byte value;
	 * two samples and an exemplar-like field 3 */
	char big[200];
	memset(big, 'v', sizeof big);
	buf_t m = BUF_INIT;
	const uint8_t l1[] = {0x0a, 13, 0x12, 4, 'n', 'o', 'd', 'e', 0x18, 7, 0x0a, 3, 'j', 'o', 'b'};
	buf_append(&m, l1, 2);
	buf_append(&m, l1 + 2, sizeof l1 - 2);
	const uint8_t l2h[] = {0x0a, 0xd1, 0x01, 0x0a, 4, 'z', 'o', 'n', 'e', 0x12, 0xc8, 0x01};
	buf_append(&m, l2h, sizeof l2h);
	buf_append(&m, big, sizeof big);
	const uint8_t smp[] = {0x12, 11, 0x09, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f, 0x10, 0x01};
	buf_append(&m, smp, sizeof smp);
	buf_append(&m, smp, sizeof smp);
	const uint8_t ex[] = {0x1a, 0};
	buf_append(&m, ex, sizeof ex);
	label_t lv[] = {{str_c("job"), str_c("node")}, {str_c("zone"), str_from(big, sizeof big)}};
	labels_t ls = {lv, 2};
	uint64_t h = 0;
	size_t ns = 0;
	err_t err = {0};
	CHECK_EQ_INT(rcv_router_wire_hash(str_c("tenant-a"), (const uint8_t *)m.p, m.n, &h, &ns, &err), 0);
	CHECK(h == hashring_series_hash(str_c("tenant-a"), &ls));
	CHECK_EQ_INT(ns, 2);
	/* refused: no labels; a label too short; a length past the end */
	CHECK(rcv_router_wire_hash(str_c("t"), smp, sizeof smp, &h, &ns, &err) == ERR_INVALID);
	CHECK(strstr(err.msg, "without labels") != NULL);
	const uint8_t shortl[] = {0x0a, 4, 0x0a, 0, 0x12, 0};
	CHECK(rcv_router_wire_hash(str_c("t"), shortl, sizeof shortl, &h, &ns, &err) == ERR_INVALID);
	const uint8_t past[] = {0x0a, 40, 0x0a, 1, 'a'};
	CHECK(rcv_router_wire_hash(str_c("t"), past, sizeof past, &h, &ns, &err) == ERR_INVALID);
	buf_release(&m);
	buf_release(&raw);
	arena_release(&a);
}

TEST_MAIN()
