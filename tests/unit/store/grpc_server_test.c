/*
 * grpc_server_test.c — the StoreAPI server in pool mode (store_grpc_register_pool): calls run on
 * worker threads against a test store that can block inside series() (a gate) or sleep per series,
 * with the server loop on its own thread and net/grpc_client (or a raw socket) as the peer.
 * Covers: slow Series calls running in parallel while Info answers, FIFO queueing above the limit,
 * cancelled and expired queued calls leaving the queue, flow-control back-pressure bounding what the
 * worker produces, a client vanishing while a worker is inside the store (ASan: no use-after-free),
 * lone calls (up to two) made on the loop thread batch after batch until a third comes (first_batch_on_loop),
 * and pool-mode answers equal to the in-memory store's own (plain and snappy).
 */
#include "test.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "base/arena.h"
#include "base/clock.h"
#include "net/grpc.h"
#include "net/grpc_client.h"
#include "store/grpc_client.h"
#include "store/grpc_server.h"
#include "store/inmem.h"
#include "storepb_rpc.pb-c.h"

/* ---- the test store ----
 * series(): records the first matcher's value in entry order; a value starting with "gate" waits
 * until the gate opens. The set then yields nseries series (endless if nseries < 0), sleeping
 * delay_ms before each, each carrying one chunk of payload bytes. */

typedef struct tstore {
	store_t base;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool open;
	int inside, max_inside;
	char order[32][32];
	int norder;
	int nseries;
	int delay_ms;
	size_t payload;
	atomic_long produced;
	atomic_int sets_open, sets_closed;
	pthread_t loop_th;             /* set by tests that count where series are made */
	atomic_long on_loop, off_loop; /* ts_next calls on / off the loop thread */
} tstore_t;

typedef struct tset {
	series_set_t base;
	tstore_t *st;
	int i;
	label_t lv[2];
	labels_t ls;
	char num[16];
	chunk_t chunk;
	uint8_t *data;
} tset_t;

static int ts_next(series_set_t *s, err_t *err)
{
	tset_t *t = (tset_t *)s;
	(void)err;
	if (t->st->nseries >= 0 && t->i >= t->st->nseries)
		return 0;
	if (t->st->delay_ms)
		usleep((useconds_t)t->st->delay_ms * 1000);
	snprintf(t->num, sizeof t->num, "%08d", t->i++);
	t->lv[1].value = str_c(t->num);
	atomic_fetch_add(&t->st->produced, 1);
	atomic_fetch_add(pthread_equal(pthread_self(), t->st->loop_th) ? &t->st->on_loop : &t->st->off_loop,
	                 1);
	return 1;
}

static const labels_t *ts_labels(series_set_t *s)
{
	return &((tset_t *)s)->ls;
}

static int ts_chunks(series_set_t *s, const chunk_t **out)
{
	*out = &((tset_t *)s)->chunk;
	return 1;
}

static void ts_close(series_set_t *s)
{
	tset_t *t = (tset_t *)s;
	free(t->data);
	atomic_fetch_add(&t->st->sets_closed, 1);
}

static const struct series_set_ops ts_ops = {
	.next = ts_next, .labels = ts_labels, .chunks = ts_chunks, .close = ts_close};

static int ts_series(store_t *base, arena_t *a, const store_series_req_t *req, series_set_t **out, err_t *err)
{
	tstore_t *st = (tstore_t *)base;
	(void)err;
	str_t v = req->nms ? req->ms[0].value : STR("");
	pthread_mutex_lock(&st->mu);
	if (st->norder < 32)
		snprintf(st->order[st->norder++], sizeof st->order[0], "%.*s", (int)v.n, v.p);
	if (v.n >= 4 && memcmp(v.p, "gate", 4) == 0) {
		st->inside++;
		if (st->inside > st->max_inside)
			st->max_inside = st->inside;
		pthread_cond_broadcast(&st->cv);
		while (!st->open)
			pthread_cond_wait(&st->cv, &st->mu);
		st->inside--;
	}
	pthread_mutex_unlock(&st->mu);
	tset_t *t = ARENA_NEW(a, tset_t);
	t->base.ops = &ts_ops;
	t->st = st;
	t->lv[0] = (label_t){STR("__name__"), STR("t")};
	t->lv[1] = (label_t){STR("i"), STR("")};
	t->ls = (labels_t){t->lv, 2};
	t->data = calloc(1, st->payload ? st->payload : 1);
	t->chunk = (chunk_t){.mint = 0, .maxt = 1000, .enc = 1, .data = t->data, .len = st->payload};
	atomic_fetch_add(&st->sets_open, 1);
	*out = &t->base;
	return 0;
}

static int ts_strings(store_t *base, arena_t *a, const store_label_req_t *req, store_strings_t *out, err_t *err)
{
	(void)base, (void)req, (void)err;
	out->v = ARENA_NEW_ARRAY(a, str_t, 1);
	out->v[0] = STR("__name__");
	out->n = 1;
	out->warnings = NULL;
	out->nwarnings = 0;
	return 0;
}

static int ts_info(store_t *base, arena_t *a, store_info_t *out, err_t *err)
{
	(void)base, (void)a, (void)err;
	*out = (store_info_t){.mint = 0, .maxt = 1000};
	return 0;
}

static void ts_free(store_t *base)
{
	(void)base;
}

static const struct store_ops ts_store_ops = {
	.series = ts_series, .label_names = ts_strings, .label_values = ts_strings, .info = ts_info, .free = ts_free};

static void ts_init(tstore_t *st, int nseries, int delay_ms, size_t payload)
{
	memset(st, 0, sizeof *st);
	st->base = (store_t){&ts_store_ops, "test"};
	pthread_mutex_init(&st->mu, NULL);
	pthread_cond_init(&st->cv, NULL);
	st->nseries = nseries;
	st->delay_ms = delay_ms;
	st->payload = payload;
}

static void ts_open_gate(tstore_t *st)
{
	pthread_mutex_lock(&st->mu);
	st->open = true;
	pthread_cond_broadcast(&st->cv);
	pthread_mutex_unlock(&st->mu);
}

/* Wait (up to 5s) until n series() calls sit at the gate. */
static bool ts_wait_inside(tstore_t *st, int n)
{
	struct timespec dl;
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += 5;
	pthread_mutex_lock(&st->mu);
	while (st->inside < n)
		if (pthread_cond_timedwait(&st->cv, &st->mu, &dl) != 0)
			break;
	bool ok = st->inside >= n;
	pthread_mutex_unlock(&st->mu);
	return ok;
}

static void ts_release(tstore_t *st)
{
	pthread_mutex_destroy(&st->mu);
	pthread_cond_destroy(&st->cv);
}

/* ---- server environment ---- */

typedef struct env {
	loop_t *loop;
	grpc_server_t *srv;
	listener_t *ls;
	store_service_t *svc;
	pthread_t th;
	char addr[64];
	int port;
	grpc_channel_t *ch;
} env_t;

static void *loop_thread(void *arg)
{
	loop_run(arg);
	return NULL;
}

static void env_start(env_t *e, store_t *store, const store_grpc_config_t *cfg)
{
	memset(e, 0, sizeof *e);
	err_t err = {0};
	if (loop_new(&e->loop, &err))
		TEST_FAILF("loop: %s", err.msg);
	e->srv = grpc_server_new(e->loop, NULL);
	e->svc = store_grpc_register_pool(e->srv, store, "store", cfg);
	if (grpc_server_listen(e->srv, "127.0.0.1:0", &e->ls, &err))
		TEST_FAILF("listen: %s", err.msg);
	e->port = listener_port(e->ls);
	snprintf(e->addr, sizeof e->addr, "127.0.0.1:%d", e->port);
	pthread_create(&e->th, NULL, loop_thread, e->loop);
	if (grpc_channel_new(&e->ch, NULL, e->addr, NULL, &err))
		TEST_FAILF("channel: %s", err.msg);
}

static void env_stop(env_t *e)
{
	if (e->ch)
		grpc_channel_free(e->ch);
	loop_stop(e->loop);
	loop_wakeup(e->loop);
	pthread_join(e->th, NULL);
	listener_free(e->ls);
	store_grpc_service_free(e->svc);
	grpc_server_free(e->srv);
	loop_free(e->loop);
}

static store_grpc_stats_t stats(env_t *e)
{
	store_grpc_stats_t s;
	store_grpc_stats(e->svc, &s);
	return s;
}

/* Wait (up to 5s) until cond holds. */
#define WAIT_FOR(cond)                                                                                   \
	do {                                                                                             \
		for (int w_ = 0; w_ < 1000 && !(cond); w_++)                                             \
			usleep(5000);                                                                    \
	} while (0)

/* A SeriesRequest with one matcher __name__="<value>". */
static grpc_stream_t *series_call(env_t *e, const char *value, int64_t timeout_ms)
{
	Thanos__LabelMatcher m = THANOS__LABEL_MATCHER__INIT;
	m.type = THANOS__LABEL_MATCHER__TYPE__EQ;
	m.name = "__name__";
	m.value = (char *)value;
	Thanos__LabelMatcher *mp[] = {&m};
	Thanos__SeriesRequest req = THANOS__SERIES_REQUEST__INIT;
	req.min_time = 0, req.max_time = 1000, req.matchers = mp, req.n_matchers = 1;
	uint8_t buf[256];
	size_t n = thanos__series_request__pack(&req, buf);
	return grpc_channel_call(e->ch, "/thanos.Store/Series", buf, n, timeout_ms);
}

/* Drain a stream: number of messages, or the negative error (message in err). */
static long drain(grpc_stream_t *st, err_t *err)
{
	const uint8_t *msg;
	size_t len;
	long n = 0;
	int rc;
	while ((rc = grpc_stream_recv(st, &msg, &len, err)) == 1)
		n++;
	return rc < 0 ? rc : n;
}

static int info_call(env_t *e, int64_t timeout_ms, err_t *err)
{
	arena_t a;
	arena_init(&a, 0);
	uint8_t *resp;
	size_t len;
	int rc = grpc_channel_unary(e->ch, "/thanos.info.Info/Info", "", 0, timeout_ms, &a, &resp, &len, err);
	arena_release(&a);
	return rc;
}

TEST(slow_series_calls_run_in_parallel_and_do_not_block_info)
{
	tstore_t st;
	ts_init(&st, 3, 0, 100);
	env_t e;
	store_grpc_config_t cfg = {.series_concurrency = 4};
	env_start(&e, &st.base, &cfg);
	grpc_stream_t *s[3];
	for (int i = 0; i < 3; i++)
		s[i] = series_call(&e, "gate", 10000);
	/* all three are inside the store at once: they run on three workers, not one after another */
	CHECK(ts_wait_inside(&st, 3));
	CHECK_EQ_INT(stats(&e).series_running, 3);
	CHECK_EQ_INT(stats(&e).series_queued, 0);
	/* Info and LabelNames answer while every Series call is stuck in the store */
	err_t err = {0};
	uint64_t t0 = clock_mono_ms();
	CHECK_EQ_INT(info_call(&e, 2000, &err), 0);
	CHECK(clock_mono_ms() - t0 < 1000);
	arena_t a;
	arena_init(&a, 0);
	uint8_t *resp;
	size_t len;
	CHECK_EQ_INT(grpc_channel_unary(e.ch, "/thanos.Store/LabelNames", "", 0, 2000, &a, &resp, &len, &err), 0);
	Thanos__LabelNamesResponse *ln = thanos__label_names_response__unpack(NULL, len, resp);
	CHECK(ln && ln->n_names == 1 && strcmp(ln->names[0], "__name__") == 0);
	thanos__label_names_response__free_unpacked(ln, NULL);
	arena_release(&a);
	ts_open_gate(&st);
	for (int i = 0; i < 3; i++) {
		CHECK_EQ_INT(drain(s[i], &err), 3);
		grpc_stream_free(s[i]);
	}
	CHECK_EQ_INT(st.max_inside, 3);
	WAIT_FOR(stats(&e).series_running == 0);
	CHECK_EQ_INT(stats(&e).series_running, 0);
	env_stop(&e);
	CHECK_EQ_INT(atomic_load(&st.sets_closed), 3);
	ts_release(&st);
}

TEST(calls_above_the_limit_queue_fifo_and_cancelled_ones_leave)
{
	tstore_t st;
	ts_init(&st, 2, 0, 10);
	env_t e;
	store_grpc_config_t cfg = {.series_concurrency = 1};
	env_start(&e, &st.base, &cfg);
	grpc_stream_t *a = series_call(&e, "gate-a", 10000);
	CHECK(ts_wait_inside(&st, 1));
	grpc_stream_t *b = series_call(&e, "b", 10000);
	WAIT_FOR(stats(&e).series_queued == 1);
	grpc_stream_t *c = series_call(&e, "c", 10000);
	WAIT_FOR(stats(&e).series_queued == 2);
	grpc_stream_t *d = series_call(&e, "d", 10000);
	WAIT_FOR(stats(&e).series_queued == 3);
	CHECK_EQ_INT(stats(&e).series_queued, 3);
	CHECK_EQ_INT(stats(&e).series_running, 1);
	/* queued, not rejected: nothing has answered yet */
	const uint8_t *msg;
	size_t len;
	err_t err = {0};
	CHECK_EQ_INT(grpc_stream_recv_timed(b, &msg, &len, 50, &err), ERR_TIMEOUT);
	/* c gives up while queued: it leaves the queue */
	grpc_stream_cancel(c);
	WAIT_FOR(stats(&e).series_queued == 2);
	CHECK_EQ_INT(stats(&e).series_queued, 2);
	CHECK_EQ_INT(drain(c, &err), ERR_CANCELED);
	grpc_stream_free(c);
	ts_open_gate(&st);
	CHECK_EQ_INT(drain(a, &err), 2);
	CHECK_EQ_INT(drain(b, &err), 2);
	CHECK_EQ_INT(drain(d, &err), 2);
	grpc_stream_free(a);
	grpc_stream_free(b);
	grpc_stream_free(d);
	/* entry order: a, then the queue in arrival order without c */
	CHECK_EQ_INT(st.norder, 3);
	CHECK_STR(st.order[0], "gate-a");
	CHECK_STR(st.order[1], "b");
	CHECK_STR(st.order[2], "d");
	CHECK_EQ_INT(st.max_inside, 1);
	env_stop(&e);
	CHECK_EQ_INT(atomic_load(&st.sets_open), 3);
	CHECK_EQ_INT(atomic_load(&st.sets_closed), 3);
	ts_release(&st);
}

TEST(deadline_while_queued)
{
	tstore_t st;
	ts_init(&st, 1, 0, 10);
	env_t e;
	store_grpc_config_t cfg = {.series_concurrency = 1};
	env_start(&e, &st.base, &cfg);
	grpc_stream_t *a = series_call(&e, "gate", 10000);
	CHECK(ts_wait_inside(&st, 1));
	uint64_t t0 = clock_mono_ms();
	grpc_stream_t *b = series_call(&e, "b", 150);
	err_t err = {0};
	CHECK_EQ_INT(drain(b, &err), ERR_TIMEOUT);
	CHECK(clock_mono_ms() - t0 < 3000);
	grpc_stream_free(b);
	WAIT_FOR(stats(&e).series_queued == 0);
	CHECK_EQ_INT(stats(&e).series_queued, 0);
	CHECK_EQ_INT(stats(&e).series_running, 1);
	ts_open_gate(&st);
	CHECK_EQ_INT(drain(a, &err), 1);
	grpc_stream_free(a);
	CHECK_EQ_INT(st.norder, 1); /* b never reached the store */
	env_stop(&e);
	ts_release(&st);
}

TEST(back_pressure_bounds_what_the_worker_produces)
{
	tstore_t st;
	ts_init(&st, -1, 0, 1024); /* endless, ~1 KiB per series */
	env_t e;
	env_start(&e, &st.base, NULL);
	grpc_stream_t *s = series_call(&e, "x", 20000);
	const uint8_t *msg;
	size_t len;
	err_t err = {0};
	CHECK_EQ_INT(grpc_stream_recv(s, &msg, &len, &err), 1);
	/* the client stops reading: production must stop too */
	long p1 = -1, p2 = atomic_load(&st.produced);
	for (int i = 0; i < 100 && p1 != p2; i++) {
		usleep(50000);
		p1 = p2;
		p2 = atomic_load(&st.produced);
	}
	CHECK_EQ_INT(p1, p2);
	/* client buffer 256 KiB + stream window 1 MiB + server connection buffer 256 KiB + call output and
	 * one worker batch (~128 KiB): about 1,700 series of 1 KiB; far from unbounded */
	CHECK(p2 > 100);
	CHECK(p2 < 3000);
	/* reading on resumes production */
	for (int i = 0; i < 5000; i++)
		CHECK_EQ_INT(grpc_stream_recv(s, &msg, &len, &err), 1);
	CHECK(atomic_load(&st.produced) > p2 + 3000);
	grpc_stream_free(s); /* cancels: the worker stops and closes the set */
	WAIT_FOR(atomic_load(&st.sets_closed) == 1);
	CHECK_EQ_INT(atomic_load(&st.sets_closed), 1);
	WAIT_FOR(stats(&e).series_running == 0);
	CHECK_EQ_INT(stats(&e).series_running, 0);
	env_stop(&e);
	ts_release(&st);
}

/* A raw h2c client: preface, SETTINGS, one HEADERS+DATA Series request, then gone. */
static int raw_series_then_close(int port, tstore_t *st, int wait_series)
{
	static const uint8_t req_frames[] = {
		/* preface */
		'P', 'R', 'I', ' ', '*', ' ', 'H', 'T', 'T', 'P', '/', '2', '.', '0', '\r', '\n', '\r', '\n', 'S', 'M', '\r',
		'\n', '\r', '\n',
		/* SETTINGS (empty) */
		0, 0, 0, 4, 0, 0, 0, 0, 0};
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0)
		return -1;
	if (write(fd, req_frames, sizeof req_frames) != (ssize_t)sizeof req_frames)
		return -1;
	/* HEADERS (END_HEADERS) with literal fields without indexing */
	uint8_t hb[256];
	size_t n = 0;
	hb[n++] = 0x83; /* :method POST */
	hb[n++] = 0x86; /* :scheme http */
	const char *hdrs[][2] = {{":path", "/thanos.Store/Series"}, {":authority", "x"}, {"content-type", "application/grpc"},
				 {"te", "trailers"}};
	for (size_t i = 0; i < 4; i++) {
		size_t kl = strlen(hdrs[i][0]), vl = strlen(hdrs[i][1]);
		hb[n++] = 0x00;
		hb[n++] = (uint8_t)kl;
		memcpy(hb + n, hdrs[i][0], kl), n += kl;
		hb[n++] = (uint8_t)vl;
		memcpy(hb + n, hdrs[i][1], vl), n += vl;
	}
	uint8_t fh[9] = {0, 0, (uint8_t)n, 1, 0x4, 0, 0, 0, 1};
	if (write(fd, fh, 9) != 9 || write(fd, hb, n) != (ssize_t)n)
		return -1;
	Thanos__LabelMatcher m = THANOS__LABEL_MATCHER__INIT;
	m.name = "__name__", m.value = "x";
	Thanos__LabelMatcher *mp[] = {&m};
	Thanos__SeriesRequest req = THANOS__SERIES_REQUEST__INIT;
	req.max_time = 1000, req.matchers = mp, req.n_matchers = 1;
	uint8_t body[128];
	size_t bl = thanos__series_request__pack(&req, body + 5);
	body[0] = 0, body[1] = 0, body[2] = 0, body[3] = 0, body[4] = (uint8_t)bl;
	uint8_t dh[9] = {0, 0, (uint8_t)(bl + 5), 0, 0x1, 0, 0, 0, 1};
	if (write(fd, dh, 9) != 9 || write(fd, body, bl + 5) != (ssize_t)(bl + 5))
		return -1;
	for (int i = 0; i < 1000 && atomic_load(&st->produced) < wait_series; i++)
		usleep(2000);
	close(fd);
	return 0;
}

TEST(client_gone_while_the_worker_is_inside_the_store)
{
	tstore_t st;
	ts_init(&st, -1, 20, 64); /* endless, 20 ms per series: the worker is mostly inside next() */
	env_t e;
	store_grpc_config_t cfg = {.series_concurrency = 2};
	env_start(&e, &st.base, &cfg);
	/* connection closed under a running call */
	CHECK_EQ_INT(raw_series_then_close(e.port, &st, 3), 0);
	WAIT_FOR(atomic_load(&st.sets_closed) == 1);
	CHECK_EQ_INT(atomic_load(&st.sets_closed), 1);
	WAIT_FOR(stats(&e).series_running == 0);
	CHECK_EQ_INT(stats(&e).series_running, 0);
	/* stream reset under a running call, twice in a row on the same connection */
	for (int k = 0; k < 2; k++) {
		long before = atomic_load(&st.produced);
		grpc_stream_t *s = series_call(&e, "x", 10000);
		for (int i = 0; i < 1000 && atomic_load(&st.produced) < before + 2; i++)
			usleep(2000);
		grpc_stream_free(s);
	}
	WAIT_FOR(atomic_load(&st.sets_closed) == 3);
	CHECK_EQ_INT(atomic_load(&st.sets_closed), 3);
	/* the server is fine afterwards */
	err_t err = {0};
	CHECK_EQ_INT(info_call(&e, 2000, &err), 0);
	/* shutdown with a call still inside the store: service_free waits for the worker */
	grpc_stream_t *s = series_call(&e, "x", 10000);
	long before = atomic_load(&st.produced);
	for (int i = 0; i < 1000 && atomic_load(&st.produced) < before + 1; i++)
		usleep(2000);
	grpc_stream_cancel(s);
	grpc_stream_free(s);
	env_stop(&e);
	CHECK_EQ_INT(atomic_load(&st.sets_open), atomic_load(&st.sets_closed));
	ts_release(&st);
}

/* first_batch_on_loop: a lone call (or two at once) is made on the loop thread batch after batch (no
 * worker wake-up per batch); once a third call comes, the rest of them goes to the workers. */
TEST(lone_calls_are_made_on_the_loop_until_a_third_comes)
{
	tstore_t st;
	ts_init(&st, 200, 0, 1000);
	env_t e;
	store_grpc_config_t cfg = {.series_concurrency = 4, .batch_bytes = 8192, .first_batch_on_loop = true};
	env_start(&e, &st.base, &cfg);
	st.loop_th = e.th;
	err_t err = {0};
	grpc_stream_t *a = series_call(&e, "x", 10000);
	CHECK_EQ_INT(drain(a, &err), 200); /* ~25 batches */
	grpc_stream_free(a);
	CHECK_EQ_INT(atomic_load(&st.on_loop), 200);
	CHECK_EQ_INT(atomic_load(&st.off_loop), 0);
	WAIT_FOR(stats(&e).series_running == 0);

	/* two slow calls (1 ms per series, ~50 batches each) on the loop, then a third while they run */
	st.nseries = 400;
	st.delay_ms = 1;
	atomic_store(&st.on_loop, 0);
	atomic_store(&st.produced, 0);
	a = series_call(&e, "x", 30000);
	WAIT_FOR(atomic_load(&st.produced) >= 40);
	grpc_stream_t *b = series_call(&e, "x", 30000);
	WAIT_FOR(atomic_load(&st.produced) >= 100);
	CHECK_EQ_INT(atomic_load(&st.off_loop), 0);
	grpc_stream_t *c = series_call(&e, "gate", 30000);
	CHECK(ts_wait_inside(&st, 1)); /* on a worker: the loop is not blocked by the gate */
	CHECK_EQ_INT(drain(a, &err), 400);
	CHECK_EQ_INT(drain(b, &err), 400);
	grpc_stream_free(a);
	grpc_stream_free(b);
	CHECK(atomic_load(&st.on_loop) >= 100);
	CHECK(atomic_load(&st.off_loop) > 0); /* the rest of the first two went to workers */
	CHECK(atomic_load(&st.on_loop) < 800);
	ts_open_gate(&st);
	CHECK_EQ_INT(drain(c, &err), 400);
	grpc_stream_free(c);
	WAIT_FOR(stats(&e).series_running == 0);
	env_stop(&e);
	CHECK_EQ_INT(atomic_load(&st.sets_closed), 4);
	ts_release(&st);
}

/* ---- answers equal the in-memory store's own ---- */

static void add(inmem_store_t *s, const char *name, const char *inst, int n)
{
	label_t lv[] = {{STR("__name__"), str_c(name)}, {STR("instance"), str_c(inst)}};
	labels_t ls = {lv, 2};
	int64_t *t = calloc((size_t)n, sizeof *t);
	double *v = calloc((size_t)n, sizeof *v);
	for (int i = 0; i < n; i++)
		t[i] = (int64_t)i * 15000, v[i] = i * 0.25;
	err_t err = {0};
	if (inmem_store_add(s, &ls, t, v, (size_t)n, &err))
		TEST_FAILF("add: %s", err.msg);
	free(t);
	free(v);
}

static int dump(store_t *s, arena_t *a, const store_series_req_t *req, buf_t *out, err_t *err)
{
	series_set_t *set;
	int rc = store_series(s, a, req, &set, err);
	if (rc)
		return rc;
	while ((rc = series_set_next(set, err)) == 1) {
		labels_format(out, series_set_labels(set));
		int64_t t[64];
		double v[64], sum = 0;
		long n = 0;
		int k;
		sample_iter_t *it = series_set_samples(set);
		while ((k = sample_iter_next_batch(it, t, v, 64, err)) > 0)
			for (int i = 0; i < k; i++)
				n++, sum += v[i] + (double)t[i];
		if (k < 0) {
			rc = k;
			break;
		}
		buf_printf(out, " n=%ld sum=%.17g\n", n, sum);
	}
	series_set_close(set);
	return rc;
}

TEST(pool_answers_equal_the_store_plain_and_snappy)
{
	label_t el[] = {{STR("region"), STR("eu")}};
	labels_t ext = {el, 1};
	inmem_store_t *mem = inmem_store_new("mem", &ext);
	char inst[32];
	for (int i = 0; i < 400; i++) {
		snprintf(inst, sizeof inst, "%04d", i);
		add(mem, "load", inst, 300);
	}
	add(mem, "up", "a", 10);
	/* on_loop: a lone call's first batch made on the loop thread (the rest on workers) */
	for (int on_loop = 0; on_loop < 2; on_loop++) {
		env_t e;
		store_grpc_config_t cfg = {
		    .series_concurrency = 2, .batch_bytes = 8192, .first_batch_on_loop = on_loop};
		env_start(&e, inmem_store_base(mem), &cfg);
		matcher_t m;
		err_t err = {0};
		CHECK_EQ_INT(matcher_init(&m, MATCH_RE, STR("__name__"), STR(".+"), &err), 0);
		store_series_req_t req = {.mint = 0, .maxt = 1000000000, .ms = &m, .nms = 1};
		arena_t a;
		arena_init(&a, 0);
		buf_t want = BUF_INIT;
		CHECK_EQ_INT(dump(inmem_store_base(mem), &a, &req, &want, &err), 0);
		for (int compress = 0; compress < 2; compress++) {
			store_grpc_client_config_t ccfg = {.timeout_ms = 10000, .compress = compress};
			store_t *c;
			CHECK_EQ_INT(store_grpc_client_new(&c, e.addr, &ccfg, &err), 0);
			buf_t got = BUF_INIT;
			int rc = dump(c, &a, &req, &got, &err);
			if (rc)
				TEST_FAILF("dump: %s", err.msg);
			CHECK_EQ_INT(got.n, want.n);
			CHECK(got.n == want.n && memcmp(got.p, want.p, got.n) == 0);
			store_info_t info;
			CHECK_EQ_INT(store_info(c, &a, &info, &err), 0);
			CHECK_EQ_INT(info.nlabel_sets, 1);
			store_strings_t vals;
			store_label_req_t lr = {.mint = 0, .maxt = 1000000000, .name = STR("__name__")};
			CHECK_EQ_INT(store_label_values(c, &a, &lr, &vals, &err), 0);
			CHECK_EQ_INT(vals.n, 2);
			/* a bad request is an error naming why, through the worker */
			matcher_t bad;
			CHECK_EQ_INT(matcher_init(&bad, MATCH_EQ, STR("region"), STR("us"), &err), 0);
			store_series_req_t none = {.mint = 0, .maxt = 1000, .ms = &bad, .nms = 1};
			buf_t empty = BUF_INIT;
			CHECK_EQ_INT(dump(c, &a, &none, &empty, &err), 0);
			CHECK_EQ_INT(empty.n, 0);
			matcher_release(&bad);
			buf_release(&empty);
			buf_release(&got);
			store_free(c);
		}
		buf_release(&want);
		matcher_release(&m);
		arena_release(&a);
		env_stop(&e);
	}
	inmem_store_free(mem);
}

TEST_MAIN()
