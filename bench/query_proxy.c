/*
 * query_proxy — latency a query pays for the querier's proxy path, against evaluating PromQL directly
 * on the store in-process. The same data (N series "bench_total{i}" of 240 samples, 15s apart, two
 * replicas replica="a"/"b") is queried three ways:
 *   direct       PromQL over the replica-a store through query/queryable.h (no proxy);
 *   proxy        PromQL over an endpoint-set snapshot (query/endpoints.h + store/proxy.h) of the
 *                replica-a store in-process: the cost of the proxy layer alone;
 *   grpc         as proxy, but the store is reached through the StoreAPI gRPC server and client over
 *                127.0.0.1: the cost of the network hop (encode, HTTP/2, decode);
 *   proxy_dedup / grpc_dedup   both replicas, penalty dedup by replica (what `strata query` does
 *                for an HA pair; twice the data of the modes above).
 * The grpc modes need the StoreAPI client (store/grpc_client.h).
 * Usage: query_proxy [series] [runs]  (default 2000 series, 15 runs). Prints the median latency per
 * query and mode as RESULT lines.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/log.h"
#include "promql/engine.h"
#include "query/endpoints.h"
#include "store/grpc_server.h"
#include "store/inmem.h"
#include "query/queryable.h"
#if __has_include("store/grpc_client.h")
#include "store/grpc_client.h"
#define HAVE_STORE_CLIENT 1
#endif

#define NSAMPLES 240
#define STEP_MS 15000

static long nseries = 2000;

static inmem_store_t *make_store(const char *replica)
{
	label_t el = {STR("replica"), str_c(replica)};
	labels_t ext = {&el, 1};
	inmem_store_t *s = inmem_store_new(replica, &ext);
	int64_t t[NSAMPLES];
	double v[NSAMPLES];
	char iv[32], jv[32];
	for (long i = 0; i < nseries; i++) {
		snprintf(iv, sizeof iv, "%ld", i);
		snprintf(jv, sizeof jv, "j%ld", i % 10);
		label_t lv[] = {{STR("__name__"), STR("bench_total")}, {STR("i"), str_c(iv)}, {STR("job"), str_c(jv)}};
		labels_t ls = {lv, 3};
		for (int k = 0; k < NSAMPLES; k++) {
			t[k] = (int64_t)k * STEP_MS + (replica[0] == 'b' ? 1000 : 0);
			v[k] = (double)(k * (i % 7 + 1));
		}
		err_t err = {0};
		if (inmem_store_add(s, &ls, t, v, NSAMPLES, &err))
			die("query_proxy: %s", err.msg);
	}
	return s;
}

typedef struct {
	store_t *stores[2]; /* what dial hands out, by address "a:1" / "b:1" */
} dialer_t;

static store_t *dial(const char *addr, void *arg, err_t *err)
{
	dialer_t *d = arg;
	(void)err;
	return d->stores[addr[0] == 'a' ? 0 : 1];
}

#ifdef HAVE_STORE_CLIENT
static store_t *dial_grpc(const char *addr, void *arg, err_t *err)
{
	(void)arg;
	store_grpc_client_config_t cfg = {0};
	store_t *s;
	return store_grpc_client_new(&s, addr, &cfg, err) ? NULL : s;
}
#endif

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

typedef store_t *(*source_fn)(arena_t *a, void *arg);

static store_t *src_direct(arena_t *a, void *arg)
{
	(void)a;
	return arg;
}

static store_t *src_endpoints(arena_t *a, void *arg)
{
	return endpoint_set_store(arg, a, NULL, NULL, 0);
}

static const struct {
	const char *name;
	const char *expr;
	bool range;
} queries[] = {
	{"instant_one_series", "bench_total{i=\"7\"}", false},
	{"instant_count", "count(bench_total)", false},
	{"range_sum_rate", "sum by (job) (rate(bench_total[5m]))", true},
};

static void measure(const char *mode, source_fn src, void *arg, bool dedup, int runs)
{
	str_t rl = STR("replica");
	for (size_t qi = 0; qi < ARRAY_LEN(queries); qi++) {
		double *lat = xcalloc((size_t)runs, sizeof *lat);
		size_t nres = 0;
		for (int r = 0; r < runs; r++) {
			arena_t a;
			arena_init(&a, 1 << 16);
			store_queryable_t q;
			store_queryable_opts_t o = {.partial_response = true, .replica_labels = dedup ? &rl : NULL,
						    .nreplica_labels = dedup ? 1 : 0};
			uint64_t t0 = clock_mono_ns();
			store_queryable_init(&q, src(&a, arg), &a, &o);
			promql_opts_t po = {0};
			promql_result_t res;
			err_t err = {0};
			int64_t end = (NSAMPLES - 1) * (int64_t)STEP_MS;
			int rc = queries[qi].range
					 ? promql_query(&po, store_queryable_base(&q), &a, str_c(queries[qi].expr), 0, end, 60000,
							&res, &err)
					 : promql_query(&po, store_queryable_base(&q), &a, str_c(queries[qi].expr), end, end, 0,
							&res, &err);
			if (rc)
				die("query_proxy: %s %s: %s", mode, queries[qi].expr, err.msg);
			lat[r] = (double)(clock_mono_ns() - t0) / 1e6;
			nres = res.nseries;
			arena_release(&a);
		}
		qsort(lat, (size_t)runs, sizeof *lat, cmp_double);
		printf("RESULT query_%s_%s %.3f ms median of %d (%zu result series, %ld series per store)\n", mode,
		       queries[qi].name, lat[runs / 2], runs, nres, nseries);
		fflush(stdout);
		free(lat);
	}
}

#ifdef HAVE_STORE_CLIENT
static void *loop_main(void *arg)
{
	loop_run(arg);
	return NULL;
}
#endif

int main(int argc, char **argv)
{
	if (argc > 1)
		nseries = strtol(argv[1], NULL, 10);
	int runs = argc > 2 ? atoi(argv[2]) : 15;
	if (nseries <= 0 || runs <= 0)
		die("usage: query_proxy [series] [runs]");
	log_set_level(LOG_WARN);
	inmem_store_t *direct = make_store("a");
	measure("direct", src_direct, inmem_store_base(direct), false, runs);

	dialer_t d = {{inmem_store_base(make_store("a")), inmem_store_base(make_store("b"))}};
	const char *specs[] = {"a:1", "b:1"};
	endpoint_set_config_t ec = {.specs = specs, .nspecs = 2, .dial = dial, .dial_arg = &d};
	endpoint_set_t *es;
	err_t err = {0};
	if (endpoint_set_new(&es, &ec, &err))
		die("query_proxy: %s", err.msg);
	endpoint_set_refresh(es);
	measure("proxy_dedup", src_endpoints, es, true, runs);
	endpoint_set_free(es);
	ec.nspecs = 1;
	d.stores[0] = inmem_store_base(make_store("a"));
	if (endpoint_set_new(&es, &ec, &err))
		die("query_proxy: %s", err.msg);
	endpoint_set_refresh(es);
	measure("proxy", src_endpoints, es, false, runs);
	endpoint_set_free(es);

#ifdef HAVE_STORE_CLIENT
	/* Both replicas behind a gRPC server on its own loop thread. */
	loop_t *loop;
	if (loop_new(&loop, &err))
		die("query_proxy: %s", err.msg);
	inmem_store_t *ga = make_store("a"), *gb = make_store("b");
	grpc_server_t *sa = grpc_server_new(loop, NULL), *sb = grpc_server_new(loop, NULL);
	store_service_t *va = store_grpc_register(sa, inmem_store_base(ga), "store");
	store_service_t *vb = store_grpc_register(sb, inmem_store_base(gb), "store");
	listener_t *la, *lb;
	if (grpc_server_listen(sa, "127.0.0.1:0", &la, &err) || grpc_server_listen(sb, "127.0.0.1:0", &lb, &err))
		die("query_proxy: %s", err.msg);
	char aa[64], ab[64];
	snprintf(aa, sizeof aa, "127.0.0.1:%d", listener_port(la));
	snprintf(ab, sizeof ab, "127.0.0.1:%d", listener_port(lb));
	pthread_t th;
	pthread_create(&th, NULL, loop_main, loop);
	const char *gspecs[] = {aa, ab};
	endpoint_set_config_t gc = {.specs = gspecs, .nspecs = 2, .dial = dial_grpc};
	if (endpoint_set_new(&es, &gc, &err))
		die("query_proxy: %s", err.msg);
	endpoint_set_refresh(es);
	measure("grpc_dedup", src_endpoints, es, true, runs);
	endpoint_set_free(es);
	gc.nspecs = 1;
	if (endpoint_set_new(&es, &gc, &err))
		die("query_proxy: %s", err.msg);
	endpoint_set_refresh(es);
	measure("grpc", src_endpoints, es, false, runs);
	endpoint_set_free(es);
	loop_stop(loop);
	pthread_join(th, NULL);
	listener_free(la);
	listener_free(lb);
	store_grpc_service_free(va);
	store_grpc_service_free(vb);
	grpc_server_free(sa);
	grpc_server_free(sb);
	loop_free(loop);
	inmem_store_free(ga);
	inmem_store_free(gb);
#else
	printf("(no StoreAPI gRPC client in this build: the grpc mode is skipped)\n");
#endif
	inmem_store_free(direct);
	return 0;
}
