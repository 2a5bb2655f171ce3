/*
 * grpcquery_test.c — the ruler's gRPC query endpoints against in-process thanos.Query servers: an
 * address that leaves the (faked) DNS resolution has its connection closed (the server sees it go),
 * at once when idle and only after the query that still uses it has answered; queries keep working
 * on the addresses left.
 */
#include "test.h"

#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "base/arena.h"
#include "net/grpc.h"
#include "net/loop.h"
#include "querypb.pb-c.h"
#include "rule/grpcquery.h"

typedef struct srv {
	loop_t *loop;
	grpc_server_t *srv;
	listener_t *ls;
	pthread_t th;
	int port;
	char addr[32];
	atomic_int slow_ms; /* delay before answering */
	atomic_int calls;
} srv_t;

static void reply(grpc_call_t *call, srv_t *s)
{
	Prometheus__Label l = PROMETHEUS__LABEL__INIT, *lp = &l;
	l.name = "srv";
	l.value = s->addr;
	Prometheus__Sample smp = PROMETHEUS__SAMPLE__INIT, *sp = &smp;
	smp.value = s->port;
	Prometheus__TimeSeries ts = PROMETHEUS__TIME_SERIES__INIT;
	ts.n_labels = 1;
	ts.labels = &lp;
	ts.n_samples = 1;
	ts.samples = &sp;
	Thanos__QueryResponse r = THANOS__QUERY_RESPONSE__INIT;
	r.result_case = THANOS__QUERY_RESPONSE__RESULT_TIMESERIES;
	r.timeseries = &ts;
	uint8_t buf[256];
	size_t n = thanos__query_response__pack(&r, buf);
	grpc_call_reply(call, buf, n);
}

typedef struct later {
	grpc_call_t *call;
	srv_t *s;
} later_t;

static int64_t reply_later(loop_t *l, uint64_t id, void *arg)
{
	later_t *x = arg;
	if (!grpc_call_cancelled(x->call))
		reply(x->call, x->s);
	grpc_call_release(x->call);
	free(x);
	return LOOP_TIMER_DONE;
}

static void h_query(grpc_call_t *call, str_t msg, void *arg)
{
	srv_t *s = arg;
	atomic_fetch_add(&s->calls, 1);
	int ms = atomic_load(&s->slow_ms);
	if (!ms) {
		reply(call, s);
		return;
	}
	later_t *x = calloc(1, sizeof *x);
	x->call = call;
	x->s = s;
	grpc_call_hold(call);
	loop_add_timer(s->loop, ms, reply_later, x);
}

static void *srv_thread(void *arg)
{
	loop_run(((srv_t *)arg)->loop);
	return NULL;
}

static void srv_start(srv_t *s)
{
	memset(s, 0, sizeof *s);
	err_t err = {0};
	if (loop_new(&s->loop, &err))
		TEST_FAILF("loop: %s", err.msg);
	grpc_server_config_t cfg = {0};
	s->srv = grpc_server_new(s->loop, &cfg);
	grpc_server_register(s->srv, "/thanos.Query/Query", h_query, s);
	if (grpc_server_listen(s->srv, "127.0.0.1:0", &s->ls, &err))
		TEST_FAILF("listen: %s", err.msg);
	s->port = listener_port(s->ls);
	snprintf(s->addr, sizeof s->addr, "127.0.0.1:%d", s->port);
	pthread_create(&s->th, NULL, srv_thread, s);
}

static void srv_stop(srv_t *s)
{
	loop_stop(s->loop);
	loop_wakeup(s->loop);
	pthread_join(s->th, NULL);
	listener_free(s->ls);
	grpc_server_free(s->srv);
	loop_free(s->loop);
}

/* The server's open connections, read on its loop thread. */
typedef struct count_req {
	srv_t *s;
	atomic_int n;
	atomic_bool done;
} count_req_t;

static void count_on_loop(void *arg)
{
	count_req_t *r = arg;
	atomic_store(&r->n, (int)listener_conn_count(r->s->ls));
	atomic_store(&r->done, true);
}

static int conns(srv_t *s)
{
	count_req_t r = {.s = s};
	loop_post(s->loop, count_on_loop, &r);
	for (int i = 0; i < 2000 && !atomic_load(&r.done); i++)
		usleep(1000);
	if (!atomic_load(&r.done))
		TEST_FAILF("server loop did not answer");
	return atomic_load(&r.n);
}

static int wait_conns(srv_t *s, int want)
{
	int n = conns(s);
	for (int i = 0; i < 500 && n != want; i++) {
		usleep(10000);
		n = conns(s);
	}
	return n;
}

/* The fake resolution: every configured name resolves to the addresses listed here. */
typedef struct fake_dns {
	pthread_mutex_t mu;
	strlist_t addrs;
} fake_dns_t;

static int fake_resolve(const char *raw, strlist_t *out, err_t *err, void *arg)
{
	fake_dns_t *d = arg;
	pthread_mutex_lock(&d->mu);
	for (size_t i = 0; i < d->addrs.n; i++)
		strlist_push(out, d->addrs.v[i]);
	pthread_mutex_unlock(&d->mu);
	return 0;
}

static void fake_set(fake_dns_t *d, srv_t *a, srv_t *b)
{
	pthread_mutex_lock(&d->mu);
	strlist_free(&d->addrs);
	if (a)
		strlist_push(&d->addrs, a->addr);
	if (b)
		strlist_push(&d->addrs, b->addr);
	pthread_mutex_unlock(&d->mu);
}

/* One query: the port of the server that answered, or -1. */
static int query(gquery_t *g)
{
	arena_t a;
	arena_init(&a, 1024);
	tmpl_sample_t *v;
	size_t n, nw;
	char **w;
	bool final;
	err_t err = {0};
	int rc = gquery_query(g, &a, STR("up"), 1000, true, 5000, &v, &n, &w, &nw, &final, &err);
	int port = rc == 0 && n == 1 ? (int)v[0].v : -1;
	arena_release(&a);
	return port;
}

typedef struct bg {
	gquery_t *g;
	pthread_t th;
	int port;
} bg_t;

static void *bg_query(void *arg)
{
	bg_t *b = arg;
	b->port = query(b->g);
	return NULL;
}

TEST(vanished_address_connection_closed)
{
	srv_t A, B;
	srv_start(&A);
	srv_start(&B);
	fake_dns_t dns = {.mu = PTHREAD_MUTEX_INITIALIZER};
	fake_set(&dns, &A, &B);
	strlist_t names = {0};
	strlist_push(&names, "queriers.example:10901"); /* resolved by fake_resolve from the refresh on */
	gquery_t *g;
	err_t err = {0};
	CHECK_EQ_INT(gquery_new(&g, &names, NULL, &err), 0);
	gquery_set_resolver(g, fake_resolve, &dns);
	gquery_refresh(g);
	CHECK_EQ_INT(gquery_num_endpoints(g), 2);

	/* round robin: both get a query, both have a connection */
	int p1 = query(g), p2 = query(g);
	CHECK(p1 > 0 && p2 > 0 && p1 != p2);
	CHECK_EQ_INT(gquery_num_channels(g), 2);
	CHECK_EQ_INT(wait_conns(&A, 1), 1);
	CHECK_EQ_INT(wait_conns(&B, 1), 1);

	/* A leaves: its idle connection is closed at once; queries go to B */
	fake_set(&dns, NULL, &B);
	gquery_refresh(g);
	CHECK_EQ_INT(gquery_num_endpoints(g), 1);
	CHECK_EQ_INT(gquery_num_channels(g), 1);
	CHECK_EQ_INT(wait_conns(&A, 0), 0);
	for (int i = 0; i < 4; i++)
		CHECK_EQ_INT(query(g), B.port);
	CHECK_EQ_INT(conns(&B), 1);

	/* A comes back: a new connection on the next query that picks it */
	fake_set(&dns, &A, &B);
	gquery_refresh(g);
	bool saw_a = false;
	for (int i = 0; i < 4; i++)
		saw_a |= query(g) == A.port;
	CHECK(saw_a);
	CHECK_EQ_INT(wait_conns(&A, 1), 1);

	/* A leaves while a query on it is in flight: the query still gets its answer over the old
	 * connection, which is closed right after */
	atomic_store(&A.slow_ms, 600);
	int calls_a = atomic_load(&A.calls);
	bg_t bgs[2] = {{.g = g}, {.g = g}};
	for (int i = 0; i < 2; i++)
		pthread_create(&bgs[i].th, NULL, bg_query, &bgs[i]);
	for (int i = 0; i < 300 && atomic_load(&A.calls) == calls_a; i++)
		usleep(5000); /* one of the two went to A (round robin) */
	CHECK_EQ_INT(atomic_load(&A.calls), calls_a + 1);
	fake_set(&dns, NULL, &B);
	gquery_refresh(g);
	CHECK_EQ_INT(gquery_num_channels(g), 1);
	CHECK_EQ_INT(conns(&A), 1); /* still in use */
	for (int i = 0; i < 2; i++)
		pthread_join(bgs[i].th, NULL);
	CHECK((bgs[0].port == A.port && bgs[1].port == B.port) ||
	      (bgs[0].port == B.port && bgs[1].port == A.port));
	CHECK_EQ_INT(wait_conns(&A, 0), 0);
	CHECK_EQ_INT(query(g), B.port);
	CHECK_EQ_INT(conns(&B), 1);

	gquery_free(g);
	CHECK_EQ_INT(wait_conns(&B, 0), 0);
	strlist_free(&names);
	strlist_free(&dns.addrs);
	srv_stop(&A);
	srv_stop(&B);
}

TEST_MAIN()
