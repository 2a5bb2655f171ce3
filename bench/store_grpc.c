/*
 * store_grpc — StoreAPI Series streaming over gRPC: the generic server (store/grpc_server.h) over an
 * in-memory store in a child process, the client store (store/grpc_client.h) in this one.
 * Usage: store_grpc [series [certdir]] (default 100000; 240 samples = 2 XOR chunks each). With certdir
 * (ca.crt, server.crt/.key, client.crt/.key, as tests/integration/lib_tls.py makes them) both ends
 * speak mutual TLS and the results are named store_grpc_mtls_* (bench/tls_grpc_bench.sh compares).
 *
 * Reports (RESULT lines):
 *   - direct: iterating the in-memory store's series set in-process (chunks touched), the baseline;
 *   - grpc: the same series streamed over loopback gRPC and iterated by the client (series/s, chunks/s);
 *   - grpc_decode: the same, also decoding every sample (what PromQL would do);
 *   - proxy_grpc: through a proxy store over the client (the querier's path);
 *   - latency of a one-series query: direct, over gRPC, and proxy over gRPC (median of 300);
 *   - client peak RSS after streaming 10% of the series and after all of them (flat = streaming).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/clock.h"
#include "net/grpc.h"
#include "store/grpc_client.h"
#include "store/grpc_server.h"
#include "store/inmem.h"
#include "store/proxy.h"

static inmem_store_t *build_store(long n)
{
	label_t el[] = {{STR("region"), STR("eu")}};
	labels_t ext = {el, 1};
	inmem_store_t *s = inmem_store_new("bench", &ext);
	int64_t t[240];
	double v[240];
	char inst[32];
	err_t err = {0};
	for (long i = 0; i < n; i++) {
		for (int k = 0; k < 240; k++)
			t[k] = (int64_t)k * 15000, v[k] = (double)(i + k);
		snprintf(inst, sizeof inst, "%07ld", i);
		label_t lv[] = {{STR("__name__"), STR("bench")}, {STR("instance"), str_c(inst)}, {STR("job"), STR("api")}};
		labels_t ls = {lv, 3};
		labels_normalize(&ls);
		if (inmem_store_add(s, &ls, t, v, 240, &err)) {
			fprintf(stderr, "add: %s\n", err.msg);
			exit(1);
		}
	}
	return s;
}

static long rss_peak_kib(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kib = 0;
	while (f && fgets(line, sizeof line, f))
		if (strncmp(line, "VmHWM:", 6) == 0)
			kib = strtol(line + 6, NULL, 10);
	if (f)
		fclose(f);
	return kib;
}

typedef struct stats {
	long series, chunks, samples;
	double secs;
} stats_t;

/* Iterate up to max series (0 = all) of {__name__="bench"} (or one instance). */
static stats_t run(store_t *s, const char *instance, bool decode, long max)
{
	arena_t a;
	arena_init(&a, 1 << 16);
	matcher_t m[2];
	err_t err = {0};
	matcher_init(&m[0], MATCH_EQ, STR("__name__"), STR("bench"), &err);
	if (instance)
		matcher_init(&m[1], MATCH_EQ, STR("instance"), str_c(instance), &err);
	store_series_req_t req = {.mint = 0, .maxt = INT64_MAX, .ms = m, .nms = instance ? 2 : 1};
	stats_t st = {0};
	uint64_t t0 = clock_mono_ns();
	series_set_t *set;
	if (store_series(s, &a, &req, &set, &err)) {
		fprintf(stderr, "series: %s\n", err.msg);
		exit(1);
	}
	int rc;
	int64_t t[256];
	double v[256];
	while ((rc = series_set_next(set, &err)) == 1) {
		st.series++;
		const chunk_t *cs;
		int nc = set->ops->chunks(set, &cs);
		for (int i = 0; i < nc; i++)
			st.chunks++, st.samples += cs[i].data[1]; /* touch the bytes */
		if (decode) {
			st.samples = 0;
			sample_iter_t *it = series_set_samples(set);
			int k;
			while ((k = sample_iter_next_batch(it, t, v, 256, &err)) > 0)
				st.samples += k;
		}
		if (max && st.series == max)
			break;
	}
	if (rc < 0) {
		fprintf(stderr, "next: %s\n", err.msg);
		exit(1);
	}
	series_set_close(set);
	st.secs = (double)(clock_mono_ns() - t0) / 1e9;
	matcher_release(&m[0]);
	if (instance)
		matcher_release(&m[1]);
	arena_release(&a);
	return st;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double latency_us(store_t *s)
{
	double v[300];
	for (int i = 0; i < 300; i++)
		v[i] = run(s, "0000042", true, 0).secs * 1e6;
	qsort(v, 300, sizeof v[0], cmp_d);
	return v[150];
}

static const char *pfx = "store_grpc";

static void report(const char *name, stats_t st)
{
	printf("RESULT %s_%s_series %.0f series/s (%ld series in %.2fs)\n", pfx, name, st.series / st.secs, st.series,
	       st.secs);
	printf("RESULT %s_%s_chunks %.0f chunks/s\n", pfx, name, st.chunks / st.secs);
	fflush(stdout);
}

static void on_signal(loop_t *l, int signo, void *arg)
{
	loop_stop(l);
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? strtol(argv[1], NULL, 10) : 100000;
	const char *certs = argc > 2 ? argv[2] : NULL;
	char f[5][512];
	if (certs) {
		pfx = "store_grpc_mtls";
		const char *names[5] = {"ca.crt", "server.crt", "server.key", "client.crt", "client.key"};
		for (int i = 0; i < 5; i++)
			snprintf(f[i], sizeof f[i], "%s/%s", certs, names[i]);
	}
	int pfd[2];
	if (pipe(pfd) != 0)
		return 1;
	pid_t pid = fork();
	if (pid == 0) { /* the server */
		close(pfd[0]);
		inmem_store_t *s = build_store(n), *small = build_store(100);
		loop_t *loop;
		err_t err = {0};
		if (loop_new(&loop, &err) || loop_handle_signals(loop, on_signal, NULL, &err))
			_exit(1);
		grpc_server_t *srv = grpc_server_new(loop, NULL);
		store_service_t *svc = store_grpc_register(srv, inmem_store_base(s), "store");
		grpc_server_t *srv2 = grpc_server_new(loop, NULL);
		store_service_t *svc2 = store_grpc_register(srv2, inmem_store_base(small), "store");
		listener_t *ls, *ls2;
		tls_server_t *tls = NULL;
		if (certs && tls_server_new(&tls,
		                            &(tls_server_opts_t){.cert_file = f[1], .key_file = f[2], .client_ca_file = f[0],
		                                                 .client_auth = TLS_CLIENT_AUTH_REQUIRE_AND_VERIFY,
		                                                 .alpn = "h2"},
		                            &err)) {
			fprintf(stderr, "%s\n", err.msg);
			_exit(1);
		}
		if (grpc_server_listen_tls(srv, "127.0.0.1:0", tls, &ls, &err) ||
		    grpc_server_listen_tls(srv2, "127.0.0.1:0", tls, &ls2, &err))
			_exit(1);
		int port[2] = {listener_port(ls), listener_port(ls2)};
		if (write(pfd[1], port, sizeof port) != sizeof port)
			_exit(1);
		close(pfd[1]);
		loop_run(loop);
		listener_free(ls);
		listener_free(ls2);
		store_grpc_service_free(svc);
		store_grpc_service_free(svc2);
		grpc_server_free(srv);
		grpc_server_free(srv2);
		tls_server_free(tls);
		inmem_store_free(small);
		loop_free(loop);
		inmem_store_free(s);
		_exit(0);
	}
	close(pfd[1]);
	int port[2];
	if (read(pfd[0], port, sizeof port) != sizeof port) {
		fprintf(stderr, "server did not start\n");
		return 1;
	}
	char addr[64], addr2[64];
	snprintf(addr, sizeof addr, "127.0.0.1:%d", port[0]);
	snprintf(addr2, sizeof addr2, "127.0.0.1:%d", port[1]);
	store_t *client, *client2;
	err_t err = {0};
	store_grpc_client_config_t cfg = {.timeout_ms = 600000};
	if (certs && tls_client_new(&cfg.tls,
	                            &(tls_client_opts_t){.ca_file = f[0], .cert_file = f[3], .key_file = f[4], .alpn = "h2"},
	                            &err)) {
		fprintf(stderr, "%s\n", err.msg);
		return 1;
	}
	if (store_grpc_client_new(&client, addr, &cfg, &err) || store_grpc_client_new(&client2, addr2, &cfg, &err)) {
		fprintf(stderr, "%s\n", err.msg);
		return 1;
	}
	printf("store_grpc: %ld series x 240 samples, server in pid %d at %s\n", n, (int)pid, addr);
	run(client, NULL, false, n / 10); /* connect, warm up */
	long rss_10 = rss_peak_kib();
	stats_t g = run(client, NULL, false, 0);
	long rss_all = rss_peak_kib();
	report("grpc", g);
	report("grpc_decode", run(client, NULL, true, 0));
	proxy_store_t *p = proxy_store_new("proxy");
	proxy_store_add(p, client);
	report("proxy_grpc", run(proxy_store_base(p), NULL, false, 0));
	printf("RESULT %s_client_peak_rss_10pct %ld KiB\n", pfx, rss_10);
	printf("RESULT %s_client_peak_rss_all %ld KiB\n", pfx, rss_all);
	/* latency on a 100-series store, so matching does not dominate */
	proxy_store_t *p2 = proxy_store_new("proxy");
	proxy_store_add(p2, client2);
	printf("RESULT %s_latency_grpc %.0f us (one series of 100, median)\n", pfx, latency_us(client2));
	printf("RESULT %s_latency_proxy_grpc %.0f us (one series of 100, median)\n", pfx,
	       latency_us(proxy_store_base(p2)));
	fflush(stdout);
	proxy_store_free(p);
	proxy_store_free(p2);
	store_free(client2);
	store_free(client);
	tls_client_free(cfg.tls);
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
	if (certs)
		return 0; /* the in-process baseline does not depend on the wire */
	/* the in-process baseline (after the child is gone: the machine has 2 cores) */
	inmem_store_t *s = build_store(n);
	report("direct", run(inmem_store_base(s), NULL, false, 0));
	report("direct_decode", run(inmem_store_base(s), NULL, true, 0));
	inmem_store_free(s);
	s = build_store(100);
	printf("RESULT store_grpc_latency_direct %.1f us (one series of 100, median)\n", latency_us(inmem_store_base(s)));
	inmem_store_free(s);
	return 0;
}
