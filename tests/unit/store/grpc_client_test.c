/*
 * grpc_client_test.c — the StoreAPI gRPC client store against in-process servers on their own loop
 * thread: the generic server over an in-memory store (results must equal the store's own), and a fake
 * thanos.Store whose Series misbehaves on request (hang, garbage frames, out-of-order series, split
 * series, warnings, an error after some series). Also deadlines, closing a set mid-stream, the server
 * going away mid-stream, reconnecting, and concurrent callers on one client.
 */
#include "test.h"

#include <pthread.h>
#include <unistd.h>

#include "base/arena.h"
#include "net/grpc.h"
#include "store/grpc_client.h"
#include "store/grpc_server.h"
#include "store/inmem.h"
#include "store/proxy.h"
#include "storepb_rpc.pb-c.h"
#include "tsdb/xor.h"

typedef struct env {
	loop_t *loop;
	grpc_server_t *srv;
	listener_t *ls;
	store_service_t *svc;
	inmem_store_t *mem;
	pthread_t th;
	int port;
	char addr[64];
} env_t;

static void add(inmem_store_t *s, const char *name, const char *inst, int n, int64_t step)
{
	label_t lv[] = {{STR("__name__"), str_c(name)}, {STR("instance"), str_c(inst)}};
	labels_t ls = {lv, 2};
	labels_normalize(&ls);
	int64_t *t = calloc((size_t)n, sizeof *t);
	double *v = calloc((size_t)n, sizeof *v);
	for (int i = 0; i < n; i++)
		t[i] = (int64_t)i * step, v[i] = i * 0.5;
	err_t err = {0};
	if (inmem_store_add(s, &ls, t, v, (size_t)n, &err))
		TEST_FAILF("add: %s", err.msg);
	free(t);
	free(v);
}

/* ---- the fake store: Series behaviour chosen by the value of the first matcher ---- */

static void *pb_alloc(void *d, size_t n)
{
	return arena_alloc(d, n ? n : 1);
}
static void pb_free(void *d, void *p)
{
}

static void send_series(grpc_call_t *call, const char *inst, int64_t from, int nsamples)
{
	arena_t *a = grpc_call_arena(call);
	Thanos__Label l1 = THANOS__LABEL__INIT, l2 = THANOS__LABEL__INIT;
	l1.name = "__name__", l1.value = "fake";
	l2.name = "instance", l2.value = (char *)inst;
	Thanos__Label *lp[] = {&l1, &l2};
	Thanos__Series s = THANOS__SERIES__INIT;
	s.labels = lp, s.n_labels = 2;
	xor_enc_t e;
	xor_enc_init(&e);
	for (int i = 0; i < nsamples; i++)
		xor_enc_append(&e, from + i * 1000, 1);
	size_t len;
	const uint8_t *p = xor_enc_bytes(&e, &len);
	Thanos__Chunk raw = THANOS__CHUNK__INIT;
	raw.type = THANOS__CHUNK__ENCODING__XOR;
	raw.data.data = arena_memdup(a, p, len), raw.data.len = len;
	xor_enc_release(&e);
	Thanos__AggrChunk ac = THANOS__AGGR_CHUNK__INIT;
	ac.min_time = from, ac.max_time = from + (nsamples - 1) * 1000, ac.raw = &raw;
	Thanos__AggrChunk *acp[] = {&ac};
	s.chunks = acp, s.n_chunks = 1;
	Thanos__SeriesResponse r = THANOS__SERIES_RESPONSE__INIT;
	r.result_case = THANOS__SERIES_RESPONSE__RESULT_SERIES;
	r.series = &s;
	size_t n = thanos__series_response__get_packed_size(&r);
	thanos__series_response__pack(&r, grpc_call_reserve(call, n));
}

static void fake_series(grpc_call_t *call, str_t msg, void *arg)
{
	ProtobufCAllocator al = {pb_alloc, pb_free, grpc_call_arena(call)};
	Thanos__SeriesRequest *req = thanos__series_request__unpack(&al, msg.n, (const uint8_t *)msg.p);
	const char *mode = req && req->n_matchers ? req->matchers[0]->value : "";
	if (strcmp(mode, "hang") == 0) {
		grpc_call_set_producer(call, NULL, NULL, NULL);
	} else if (strcmp(mode, "garbage") == 0) {
		send_series(call, "a", 0, 10);
		grpc_call_send(call, "\xff\xff\xff\xff\x0f garbage", 14);
		grpc_call_finish(call, GRPC_OK, NULL);
	} else if (strcmp(mode, "unsorted") == 0) {
		send_series(call, "b", 0, 10);
		send_series(call, "a", 0, 10);
		grpc_call_finish(call, GRPC_OK, NULL);
	} else if (strcmp(mode, "split") == 0) {
		send_series(call, "a", 20000, 10); /* out of time order too: the client sorts chunks */
		send_series(call, "a", 0, 10);
		send_series(call, "b", 0, 5);
		Thanos__SeriesResponse r = THANOS__SERIES_RESPONSE__INIT;
		r.result_case = THANOS__SERIES_RESPONSE__RESULT_WARNING;
		r.warning = "block 01X unavailable";
		size_t n = thanos__series_response__get_packed_size(&r);
		thanos__series_response__pack(&r, grpc_call_reserve(call, n));
		grpc_call_finish(call, GRPC_OK, NULL);
	} else if (strcmp(mode, "error") == 0) {
		send_series(call, "a", 0, 10);
		grpc_call_finish(call, GRPC_RESOURCE_EXHAUSTED, "exceeded series limit");
	} else {
		grpc_call_finish(call, GRPC_INVALID_ARGUMENT, "unknown fake mode");
	}
}

static void *loop_thread(void *arg)
{
	loop_run(((env_t *)arg)->loop);
	return NULL;
}

/* The server over the in-memory store is registered with component type reg (NULL: the store's own),
 * the store reporting mem_type. */
static void env_start_typed(env_t *e, int nseries, bool fake, const char *reg, const char *mem_type)
{
	memset(e, 0, sizeof *e);
	err_t err = {0};
	if (loop_new(&e->loop, &err))
		TEST_FAILF("loop: %s", err.msg);
	e->srv = grpc_server_new(e->loop, NULL);
	if (fake) {
		grpc_server_register(e->srv, "/thanos.Store/Series", fake_series, NULL);
	} else {
		label_t el[] = {{STR("region"), STR("eu")}};
		labels_t ext = {el, 1};
		e->mem = inmem_store_new("mem", &ext);
		add(e->mem, "up", "a", 300, 15000);
		add(e->mem, "up", "b", 50, 15000);
		add(e->mem, "other", "a", 10, 15000);
		char inst[32];
		for (int i = 0; i < nseries; i++) {
			snprintf(inst, sizeof inst, "%06d", i);
			add(e->mem, "load", inst, 240, 15000);
		}
		inmem_store_set_component(e->mem, mem_type);
		e->svc = store_grpc_register(e->srv, inmem_store_base(e->mem), reg);
	}
	if (grpc_server_listen(e->srv, "127.0.0.1:0", &e->ls, &err))
		TEST_FAILF("listen: %s", err.msg);
	e->port = listener_port(e->ls);
	snprintf(e->addr, sizeof e->addr, "127.0.0.1:%d", e->port);
	pthread_create(&e->th, NULL, loop_thread, e);
}

static void env_start(env_t *e, int nseries, bool fake)
{
	env_start_typed(e, nseries, fake, "store", NULL);
}

static void env_stop(env_t *e)
{
	loop_stop(e->loop);
	loop_wakeup(e->loop);
	pthread_join(e->th, NULL);
	if (e->ls)
		listener_free(e->ls);
	store_grpc_service_free(e->svc);
	grpc_server_free(e->srv);
	loop_free(e->loop);
	if (e->mem)
		inmem_store_free(e->mem);
}

static store_t *client_mode(env_t *e, int64_t timeout_ms, bool channel_series)
{
	store_grpc_client_config_t cfg = {
	    .timeout_ms = timeout_ms, .backoff_max_ms = 100, .channel_series = channel_series};
	store_t *s;
	err_t err = {0};
	if (store_grpc_client_new(&s, e->addr, &cfg, &err))
		TEST_FAILF("client: %s", err.msg);
	return s;
}

static store_t *client(env_t *e, int64_t timeout_ms)
{
	return client_mode(e, timeout_ms, false);
}

/* One line per series: labels, chunk count, samples and their sum. */
static int dump(store_t *s, arena_t *a, const store_series_req_t *req, buf_t *out, err_t *err)
{
	series_set_t *set;
	int rc = store_series(s, a, req, &set, err);
	if (rc)
		return rc;
	while ((rc = series_set_next(set, err)) == 1) {
		labels_format(out, series_set_labels(set));
		const chunk_t *cs;
		int nc = set->ops->chunks ? set->ops->chunks(set, &cs) : -1;
		int64_t t[64];
		double v[64], sum = 0;
		long n = 0;
		int k;
		sample_iter_t *it = series_set_samples(set);
		while ((k = sample_iter_next_batch(it, t, v, 64, err)) > 0)
			for (int i = 0; i < k; i++)
				n++, sum += v[i];
		if (k < 0) {
			rc = k;
			break;
		}
		buf_printf(out, " chunks=%d n=%ld sum=%g\n", nc, n, sum);
	}
	const char *const *w;
	size_t nw = set->ops->warnings ? set->ops->warnings(set, &w) : 0;
	for (size_t i = 0; i < nw; i++)
		buf_printf(out, "warning %s\n", w[i]);
	series_set_close(set);
	return rc;
}

static matcher_t M(match_type_t type, const char *name, const char *value)
{
	matcher_t m;
	err_t err = {0};
	if (matcher_init(&m, type, str_c(name), str_c(value), &err))
		TEST_FAILF("matcher: %s", err.msg);
	return m;
}

TEST(series_labels_info_equal_the_store_itself)
{
	env_t e;
	env_start(&e, 3, false);
	store_t *s = client(&e, 5000), *mem = inmem_store_base(e.mem);
	arena_t a;
	arena_init(&a, 0);
	err_t err = {0};
	matcher_t ms[3] = {M(MATCH_RE, "__name__", ".+"), M(MATCH_EQ, "__name__", "up"), M(MATCH_NEQ, "instance", "b")};
	matcher_t ext_no = M(MATCH_EQ, "region", "us");
	store_series_req_t reqs[] = {
		{.mint = INT64_MIN, .maxt = INT64_MAX, .ms = ms, .nms = 1},
		{.mint = 1000000, .maxt = 2000000, .ms = ms + 1, .nms = 2},
		{.mint = 0, .maxt = 10000000, .ms = ms + 1, .nms = 1, .skip_chunks = true},
		{.mint = 0, .maxt = 10000000, .ms = &ext_no, .nms = 1},
		{.mint = 0, .maxt = 10000000, .ms = ms, .nms = 1, .limit = 2},
	};
	for (size_t i = 0; i < sizeof reqs / sizeof reqs[0]; i++) {
		buf_t got = BUF_INIT, want = BUF_INIT;
		CHECK_EQ_INT(dump(s, &a, &reqs[i], &got, &err), 0);
		CHECK_EQ_INT(dump(mem, &a, &reqs[i], &want, &err), 0);
		if (reqs[i].skip_chunks) /* labels only over the wire */
			CHECK(strstr(got.p, "chunks=0 n=0") != NULL);
		else
			CHECK_STR(got.p, want.p);
		CHECK(i == 3 ? got.n == 0 : got.n > 0);
		buf_release(&got);
		buf_release(&want);
	}
	store_label_req_t lr = {.mint = INT64_MIN, .maxt = INT64_MAX};
	store_strings_t r1, r2;
	CHECK_EQ_INT(store_label_names(s, &a, &lr, &r1, &err), 0);
	CHECK_EQ_INT(store_label_names(mem, &a, &lr, &r2, &err), 0);
	CHECK_EQ_INT(r1.n, r2.n);
	for (size_t i = 0; i < r1.n; i++)
		CHECK(str_eq(r1.v[i], r2.v[i]));
	lr.name = STR("instance");
	lr.ms = ms + 1, lr.nms = 1;
	CHECK_EQ_INT(store_label_values(s, &a, &lr, &r1, &err), 0);
	CHECK_EQ_INT(r1.n, 2);
	CHECK_SLICE(r1.v[0], "a");
	CHECK_SLICE(r1.v[1], "b");
	store_info_t info;
	CHECK_EQ_INT(store_info(s, &a, &info, &err), 0);
	CHECK_EQ_INT(info.nlabel_sets, 1);
	CHECK_SLICE(info.label_sets[0].v[0].value, "eu");
	CHECK_EQ_INT(info.mint, 0);
	CHECK_EQ_INT(info.maxt, 299 * 15000);
	CHECK(info.component_type != NULL);
	CHECK_STR(info.component_type, "store");
	CHECK_EQ_INT(grpc_channel_connects(store_grpc_client_channel(s)), 1);
	arena_release(&a);
	for (int i = 0; i < 3; i++)
		matcher_release(&ms[i]);
	matcher_release(&ext_no);
	store_free(s);
	env_stop(&e);
}

/* Info's ComponentType: the type the service was registered with wins over the store's own; with none
 * registered the store's own is sent; with neither the field is empty and the client reports NULL. */
TEST(info_component_type_round_trip)
{
	const char *reg[] = {"sidecar", NULL, NULL, "query"};
	const char *mem[] = {"rule", "receive", NULL, NULL};
	const char *want[] = {"sidecar", "receive", NULL, "query"};
	for (int i = 0; i < 4; i++) {
		env_t e;
		env_start_typed(&e, 0, false, reg[i], mem[i]);
		store_t *s = client(&e, 2000);
		arena_t a;
		arena_init(&a, 0);
		err_t err = {0};
		store_info_t info;
		CHECK_EQ_INT(store_info(s, &a, &info, &err), 0);
		if (want[i]) {
			CHECK(info.component_type != NULL);
			CHECK_STR(info.component_type, want[i]);
		} else {
			CHECK(info.component_type == NULL);
		}
		CHECK_EQ_INT(info.nlabel_sets, 1); /* the rest of Info is unchanged */
		CHECK_EQ_INT(info.maxt, 299 * 15000);
		arena_release(&a);
		store_free(s);
		env_stop(&e);
	}
}

TEST(misbehaving_servers_become_errors_naming_the_store)
{
	env_t e;
	env_start(&e, 0, true);
	store_t *s = client(&e, 300);
	arena_t a;
	arena_init(&a, 0);
	err_t err = {0};
	const char *modes[] = {"hang", "garbage", "unsorted", "error", "nope"};
	int codes[] = {ERR_TIMEOUT, ERR_CORRUPT, ERR_CORRUPT, ERR_LIMIT, ERR_INVALID};
	const char *what[] = {"DeadlineExceeded", "cannot decode", "out of order", "exceeded series limit", "unknown fake"};
	for (int i = 0; i < 5; i++) {
		matcher_t m = M(MATCH_EQ, "mode", modes[i]);
		store_series_req_t req = {.mint = 0, .maxt = 100000, .ms = &m, .nms = 1};
		buf_t out = BUF_INIT;
		volatile int rc = dump(s, &a, &req, &out, &err);
		if (rc != codes[i])
			TEST_FAILF("mode %s: rc %d (%s), want %d", modes[i], rc, err.msg, codes[i]);
		CHECK(strstr(err.msg, e.addr) != NULL);
		CHECK(strstr(err.msg, "store ") == err.msg);
		if (!strstr(err.msg, what[i]))
			TEST_FAILF("mode %s: %s", modes[i], err.msg);
		/* series before the failure were handed out */
		if (i == 1 || i == 3)
			CHECK(strstr(out.p, "instance=\"a\"") != NULL);
		matcher_release(&m);
		buf_release(&out);
	}
	/* split series merged, chunks sorted, warning collected */
	matcher_t m = M(MATCH_EQ, "mode", "split");
	store_series_req_t req = {.mint = 0, .maxt = 100000, .ms = &m, .nms = 1};
	buf_t out = BUF_INIT;
	CHECK_EQ_INT(dump(s, &a, &req, &out, &err), 0);
	char want[512];
	snprintf(want, sizeof want,
		 "fake{instance=\"a\"} chunks=2 n=20 sum=20\nfake{instance=\"b\"} chunks=1 n=5 sum=5\n"
		 "warning store %s: block 01X unavailable\n",
		 e.addr);
	CHECK_STR(out.p, want);
	/* the methods the fake does not serve */
	store_strings_t r;
	store_label_req_t lr = {.mint = 0, .maxt = 1};
	CHECK_EQ_INT(store_label_names(s, &a, &lr, &r, &err), ERR_INTERNAL);
	CHECK(strstr(err.msg, "Unimplemented") != NULL);
	buf_release(&out);
	matcher_release(&m);
	arena_release(&a);
	store_free(s);
	env_stop(&e);
}

static void post_kill(void *arg)
{
	env_t *e = arg;
	listener_free(e->ls);
	e->ls = NULL;
}

static void post_relisten(void *arg)
{
	env_t *e = arg;
	err_t err = {0};
	if (grpc_server_listen(e->srv, e->addr, &e->ls, &err))
		e->ls = NULL;
}

/* Series on pooled connections (channel = false: a cancelled call closes its connection, so one
 * more connect than on the shared channel) or on the channel. */
static void killed_case(bool channel)
{
	env_t e;
	env_start(&e, 5000, false);
	store_t *s = client_mode(&e, 10000, channel);
	arena_t a;
	arena_init(&a, 0);
	err_t err = {0};
	matcher_t m = M(MATCH_EQ, "__name__", "load");
	store_series_req_t req = {.mint = INT64_MIN, .maxt = INT64_MAX, .ms = &m, .nms = 1};
	/* close after a few series: the stream is cancelled, the connection stays usable */
	series_set_t *set;
	CHECK_EQ_INT(store_series(s, &a, &req, &set, &err), 0);
	for (int i = 0; i < 10; i++)
		CHECK_EQ_INT(series_set_next(set, &err), 1);
	series_set_close(set);
	buf_t out = BUF_INIT;
	matcher_t m2 = M(MATCH_EQ, "__name__", "up");
	store_series_req_t req2 = {.mint = INT64_MIN, .maxt = INT64_MAX, .ms = &m2, .nms = 1};
	CHECK_EQ_INT(dump(s, &a, &req2, &out, &err), 0);
	CHECK(strstr(out.p, "instance=\"b\"") != NULL);
	/* the server goes away in the middle of a 5000-series stream */
	CHECK_EQ_INT(store_series(s, &a, &req, &set, &err), 0);
	CHECK_EQ_INT(series_set_next(set, &err), 1);
	loop_post(e.loop, post_kill, &e);
	int rc, n = 1;
	while ((rc = series_set_next(set, &err)) == 1)
		n++;
	series_set_close(set);
	CHECK_EQ_INT(rc, ERR_UNAVAILABLE);
	CHECK(n < 5000);
	CHECK(strstr(err.msg, e.addr) != NULL);
	/* down: calls fail (at the first next()), naming the store */
	CHECK(dump(s, &a, &req2, &out, &err) == ERR_UNAVAILABLE);
	CHECK(strstr(err.msg, "store 127.0.0.1:") == err.msg);
	/* back: the client reconnects */
	loop_post(e.loop, post_relisten, &e);
	for (int i = 0; i < 100; i++) {
		buf_reset(&out);
		if ((rc = dump(s, &a, &req2, &out, &err)) == 0)
			break;
		usleep(20000);
	}
	CHECK_EQ_INT(rc, 0);
	CHECK(strstr(out.p, "instance=\"a\"") != NULL);
	CHECK_EQ_INT(store_grpc_client_connects(s), channel ? 2 : 3);
	if (channel)
		CHECK_EQ_INT(grpc_channel_connects(store_grpc_client_channel(s)), 2);
	buf_release(&out);
	matcher_release(&m);
	matcher_release(&m2);
	arena_release(&a);
	store_free(s);
	env_stop(&e);
}

TEST(close_midstream_server_killed_and_reconnect)
{
	killed_case(false);
	killed_case(true);
}

typedef struct worker {
	store_t *s;
	long series;
	int rc;
} worker_t;

static void *worker_main(void *arg)
{
	worker_t *w = arg;
	arena_t a;
	arena_init(&a, 0);
	err_t err = {0};
	matcher_t m;
	matcher_init(&m, MATCH_RE, STR("__name__"), STR("load|up"), &err);
	store_series_req_t req = {.mint = INT64_MIN, .maxt = INT64_MAX, .ms = &m, .nms = 1};
	for (int round = 0; round < 3; round++) {
		series_set_t *set;
		if ((w->rc = store_series(w->s, &a, &req, &set, &err)) != 0)
			break;
		while ((w->rc = series_set_next(set, &err)) == 1)
			w->series++;
		series_set_close(set);
		if (w->rc)
			break;
	}
	matcher_release(&m);
	arena_release(&a);
	return NULL;
}

/* channel: every call a stream of one shared connection; pooled: a connection per concurrent call,
 * reused by the next (4 callers x 3 rounds). */
static void concurrent_case(bool channel)
{
	env_t e;
	env_start(&e, 500, false);
	store_t *s = client_mode(&e, 10000, channel);
	worker_t w[4] = {0};
	pthread_t th[4];
	for (int i = 0; i < 4; i++) {
		w[i].s = s;
		pthread_create(&th[i], NULL, worker_main, &w[i]);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		CHECK_EQ_INT(w[i].rc, 0);
		CHECK_EQ_INT(w[i].series, 3 * 502);
	}
	if (channel)
		CHECK_EQ_INT(grpc_channel_connects(store_grpc_client_channel(s)), 1);
	else
		CHECK(store_grpc_client_connects(s) >= 1 && store_grpc_client_connects(s) <= 4);
	store_free(s);
	env_stop(&e);
}

TEST(concurrent_callers_share_one_connection)
{
	concurrent_case(true);
	concurrent_case(false);
}

/* One packed SeriesResponse (series {__name__="fake", instance=inst} with one XOR chunk, or a warning). */
static str_t pack_response(arena_t *a, const char *inst, int64_t from, int nsamples, const char *warning)
{
	Thanos__Label l1 = THANOS__LABEL__INIT, l2 = THANOS__LABEL__INIT;
	l1.name = "__name__", l1.value = "fake";
	l2.name = "instance", l2.value = (char *)inst;
	Thanos__Label *lp[] = {&l1, &l2};
	Thanos__Series s = THANOS__SERIES__INIT;
	s.labels = lp, s.n_labels = 2;
	xor_enc_t e;
	xor_enc_init(&e);
	for (int i = 0; i < nsamples; i++)
		xor_enc_append(&e, from + i * 1000, 1);
	size_t len;
	const uint8_t *p = xor_enc_bytes(&e, &len);
	Thanos__Chunk raw = THANOS__CHUNK__INIT;
	raw.type = THANOS__CHUNK__ENCODING__XOR;
	raw.data.data = arena_memdup(a, p, len), raw.data.len = len;
	xor_enc_release(&e);
	Thanos__AggrChunk ac = THANOS__AGGR_CHUNK__INIT;
	ac.min_time = from, ac.max_time = from + (nsamples - 1) * 1000, ac.raw = &raw;
	Thanos__AggrChunk *acp[] = {&ac};
	s.chunks = acp, s.n_chunks = 1;
	Thanos__SeriesResponse r = THANOS__SERIES_RESPONSE__INIT;
	if (warning) {
		r.result_case = THANOS__SERIES_RESPONSE__RESULT_WARNING;
		r.warning = (char *)warning;
	} else {
		r.result_case = THANOS__SERIES_RESPONSE__RESULT_SERIES;
		r.series = &s;
	}
	size_t n = thanos__series_response__get_packed_size(&r);
	uint8_t *out = arena_alloc(a, n ? n : 1);
	thanos__series_response__pack(&r, out);
	return (str_t){(const char *)out, n};
}

TEST(decode_series_from_memory)
{
	arena_t a;
	arena_init(&a, 0);
	str_t msgs[5];
	msgs[0] = pack_response(&a, "a", 0, 10, NULL);
	msgs[1] = pack_response(&a, NULL, 0, 0, "partial data");
	msgs[2] = pack_response(&a, "a", 10000, 5, NULL); /* continues series a */
	msgs[3] = pack_response(&a, "b", 0, 3, NULL);
	msgs[4] = (str_t){"\xff\xff", 2}; /* garbage */
	series_set_t *set;
	err_t err = {0};
	CHECK_EQ_INT(store_grpc_decode_series(&a, msgs, 4, INT64_MIN, INT64_MAX, &set), 0);
	int64_t t[64];
	double v[64];
	int counts[2] = {0, 0}, nser = 0, rc;
	while ((rc = series_set_next(set, &err)) > 0 && nser < 2) {
		sample_iter_t *it = series_set_samples(set);
		int n;
		while ((n = sample_iter_next_batch(it, t, v, 64, &err)) > 0)
			counts[nser] += n;
		nser++;
	}
	CHECK_EQ_INT(rc, 0);
	CHECK_EQ_INT(nser, 2);
	CHECK_EQ_INT(counts[0], 15);
	CHECK_EQ_INT(counts[1], 3);
	const char *const *w;
	CHECK_EQ_INT((int)set->ops->warnings(set, &w), 1);
	CHECK(strstr(w[0], "partial data") != NULL);
	series_set_close(set);
	/* out of order (b then a) and garbage are errors naming the frame */
	str_t bad[] = {msgs[3], msgs[0]};
	CHECK_EQ_INT(store_grpc_decode_series(&a, bad, 2, INT64_MIN, INT64_MAX, &set), 0);
	CHECK_EQ_INT(series_set_next(set, &err), 1);
	CHECK_EQ_INT(series_set_next(set, &err), ERR_CORRUPT);
	CHECK(strstr(err.msg, "out of order") != NULL);
	series_set_close(set);
	CHECK_EQ_INT(store_grpc_decode_series(&a, msgs + 4, 1, INT64_MIN, INT64_MAX, &set), 0);
	CHECK_EQ_INT(series_set_next(set, &err), ERR_CORRUPT);
	CHECK(strstr(err.msg, "store (memory): Series: frame 1: cannot decode") != NULL);
	series_set_close(set);
	arena_release(&a);
}

/* Found by seriesresp_fuzz: a raw chunk with empty data (NULL in protobuf-c) was copied from NULL. */
TEST(decode_series_empty_chunk_data)
{
	arena_t a;
	arena_init(&a, 0);
	Thanos__Label l1 = THANOS__LABEL__INIT;
	l1.name = "__name__", l1.value = "x";
	Thanos__Label *lp[] = {&l1};
	Thanos__Chunk raw = THANOS__CHUNK__INIT;
	raw.type = THANOS__CHUNK__ENCODING__XOR;
	Thanos__AggrChunk ac = THANOS__AGGR_CHUNK__INIT;
	ac.min_time = 1, ac.max_time = 2, ac.raw = &raw;
	Thanos__AggrChunk *acp[] = {&ac};
	Thanos__Series s = THANOS__SERIES__INIT;
	s.labels = lp, s.n_labels = 1, s.chunks = acp, s.n_chunks = 1;
	Thanos__SeriesResponse r = THANOS__SERIES_RESPONSE__INIT;
	r.result_case = THANOS__SERIES_RESPONSE__RESULT_SERIES;
	r.series = &s;
	size_t n = thanos__series_response__get_packed_size(&r);
	uint8_t *buf = arena_alloc(&a, n);
	thanos__series_response__pack(&r, buf);
	str_t msg = {(const char *)buf, n};
	series_set_t *set;
	err_t err = {0};
	CHECK_EQ_INT(store_grpc_decode_series(&a, &msg, 1, INT64_MIN, INT64_MAX, &set), 0);
	CHECK_EQ_INT(series_set_next(set, &err), 1);
	const chunk_t *cs;
	CHECK_EQ_INT(set->ops->chunks(set, &cs), 1);
	CHECK_EQ_INT((int)cs[0].len, 0);
	CHECK(cs[0].data != NULL);
	series_set_close(set);
	arena_release(&a);
}

/* ---- without_replica_labels over gRPC: SeriesRequest field 14 and Info field 5 ---- */
typedef struct rec_store {
	store_t base;
	bool supports;
	int calls;
	bool wrl;
	char names[128]; /* the replica label names the store was asked with, comma-separated */
} rec_store_t;

static int rec_series(store_t *s, arena_t *a, const store_series_req_t *req, series_set_t **out, err_t *err)
{
	rec_store_t *r = (rec_store_t *)s;
	(void)a, (void)err;
	r->calls++;
	r->wrl = req->without_replica_labels;
	r->names[0] = 0;
	for (size_t i = 0; i < req->nreplica_labels; i++)
		snprintf(r->names + strlen(r->names), sizeof r->names - strlen(r->names), "%s%.*s", i ? "," : "",
			 (int)req->replica_labels[i].n, req->replica_labels[i].p);
	*out = series_set_empty();
	return 0;
}
static int rec_strings(store_t *s, arena_t *a, const store_label_req_t *req, store_strings_t *out, err_t *err)
{
	(void)s, (void)a, (void)req, (void)err;
	memset(out, 0, sizeof *out);
	return 0;
}
static int rec_info(store_t *s, arena_t *a, store_info_t *out, err_t *err)
{
	(void)a, (void)err;
	out->mint = 0, out->maxt = 1000;
	out->supports_without_replica_labels = ((rec_store_t *)s)->supports;
	return 0;
}
static void rec_free(store_t *s)
{
	(void)s;
}
static const struct store_ops rec_ops = {rec_series, rec_strings, rec_strings, rec_info, rec_free};

TEST(without_replica_labels_round_trip)
{
	for (int sup = 0; sup < 2; sup++) {
		env_t e;
		memset(&e, 0, sizeof e);
		err_t err = {0};
		CHECK_EQ_INT(loop_new(&e.loop, &err), 0);
		e.srv = grpc_server_new(e.loop, NULL);
		rec_store_t rec = {{&rec_ops, "rec"}, sup, 0, false, ""};
		e.svc = store_grpc_register(e.srv, &rec.base, "store");
		CHECK_EQ_INT(grpc_server_listen(e.srv, "127.0.0.1:0", &e.ls, &err), 0);
		snprintf(e.addr, sizeof e.addr, "127.0.0.1:%d", listener_port(e.ls));
		pthread_create(&e.th, NULL, loop_thread, &e);
		store_t *s = client(&e, 2000);
		arena_t a;
		arena_init(&a, 0);
		store_info_t info;
		CHECK_EQ_INT(store_info(s, &a, &info, &err), 0);
		CHECK_EQ_INT(info.supports_without_replica_labels, sup); /* field 5 */
		matcher_t m = M(MATCH_EQ, "__name__", "up");
		str_t rl[] = {STR("replica"), STR("rule_replica")};
		store_series_req_t req = {.mint = 0, .maxt = 1000, .ms = &m, .nms = 1, .replica_labels = rl,
					  .nreplica_labels = 2, .without_replica_labels = true};
		buf_t out = BUF_INIT;
		CHECK_EQ_INT(dump(s, &a, &req, &out, &err), 0);
		CHECK_EQ_INT(rec.calls, 1);
		CHECK(rec.wrl); /* field 14, passed on whether or not the store supports it (it then ignores it) */
		CHECK_STR(rec.names, "replica,rule_replica");
		req.without_replica_labels = false; /* replica labels alone (a dedup request) are not sent */
		CHECK_EQ_INT(dump(s, &a, &req, &out, &err), 0);
		CHECK(!rec.wrl);
		CHECK_STR(rec.names, "");
		/* a deduplicating proxy over the client asks with the flag exactly when Info announced it */
		proxy_store_t *p = proxy_store_new("p");
		proxy_store_add(p, s);
		CHECK_EQ_INT(dump(proxy_store_base(p), &a, &req, &out, &err), 0);
		CHECK_EQ_INT(rec.calls, 3);
		CHECK_EQ_INT(rec.wrl, sup);
		CHECK_STR(rec.names, sup ? "replica,rule_replica" : "");
		proxy_store_free(p);
		buf_release(&out);
		matcher_release(&m);
		arena_release(&a);
		store_free(s);
		env_stop(&e);
	}
	/* frames with equal labels are joined either way; asked without_replica_labels, their chunks keep
	 * the arrival order (they may be different replicas), else they are sorted by mint */
	env_t e;
	env_start(&e, 0, true);
	store_t *s = client(&e, 2000);
	arena_t a;
	arena_init(&a, 0);
	err_t err = {0};
	matcher_t m = M(MATCH_EQ, "mode", "split");
	str_t rl = STR("replica");
	for (int wrl = 0; wrl < 2; wrl++) {
		store_series_req_t req = {.mint = 0, .maxt = 100000, .ms = &m, .nms = 1, .replica_labels = &rl,
					  .nreplica_labels = 1, .without_replica_labels = wrl};
		series_set_t *set;
		CHECK_EQ_INT(store_series(s, &a, &req, &set, &err), 0);
		CHECK_EQ_INT(series_set_next(set, &err), 1);
		const chunk_t *cs;
		CHECK_EQ_INT(set->ops->chunks(set, &cs), 2);
		CHECK_EQ_INT(cs[0].mint, wrl ? 20000 : 0);
		CHECK_EQ_INT(cs[1].mint, wrl ? 0 : 20000);
		series_set_close(set);
	}
	matcher_release(&m);
	arena_release(&a);
	store_free(s);
	env_stop(&e);
}

TEST_MAIN()
