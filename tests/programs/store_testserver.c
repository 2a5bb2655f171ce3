/*
 * store_testserver — serves an in-memory store over gRPC (thanos.Store + thanos.info.Info) for
 * interop tests. Usage: store_testserver [address] [extra_series]
 * Default address 127.0.0.1:0 (a free port). Prints "port <n>" on stdout once listening, runs until
 * SIGTERM/SIGINT.
 * Data (external labels region="eu"), samples every 15s from t=0:
 *   up{instance="a", job="api"}                  300 samples, value 1
 *   up{instance="b", job="db"}                   300 samples, value 0 for t < 1500s, 1 after
 *   http_requests_total{code="200", job="api"}   300 samples, counter t/1000
 *   http_requests_total{code="500", job="api"}    10 samples (t = 0..135s), value 7
 *   load_series{i="<n>"}                         extra_series series of 240 samples (for streaming)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/arena.h"
#include "net/grpc.h"
#include "net/loop.h"
#include "store/grpc_server.h"
#include "store/inmem.h"

static void on_signal(loop_t *l, int signo, void *arg)
{
	(void)signo, (void)arg;
	loop_stop(l);
}

static void add(inmem_store_t *s, label_t *lv, size_t nl, int n, int kind)
{
	labels_t ls = {lv, nl};
	labels_normalize(&ls);
	int64_t *t = calloc((size_t)n, sizeof *t);
	double *v = calloc((size_t)n, sizeof *v);
	for (int i = 0; i < n; i++) {
		t[i] = (int64_t)i * 15000;
		v[i] = kind == 0 ? 1 : kind == 1 ? (t[i] < 1500000 ? 0 : 1) : kind == 2 ? (double)t[i] / 1000 : 7;
	}
	err_t err = {0};
	if (inmem_store_add(s, &ls, t, v, (size_t)n, &err)) {
		fprintf(stderr, "store_testserver: %s\n", err.msg);
		exit(1);
	}
	free(t);
	free(v);
}

int main(int argc, char **argv)
{
	const char *addr = argc > 1 ? argv[1] : "127.0.0.1:0";
	long extra = argc > 2 ? strtol(argv[2], NULL, 10) : 0;
	label_t ext_l[] = {{STR("region"), STR("eu")}};
	labels_t ext = {ext_l, 1};
	inmem_store_t *s = inmem_store_new("testserver", &ext);
	add(s, (label_t[]){{STR("__name__"), STR("up")}, {STR("job"), STR("api")}, {STR("instance"), STR("a")}}, 3, 300, 0);
	add(s, (label_t[]){{STR("__name__"), STR("up")}, {STR("job"), STR("db")}, {STR("instance"), STR("b")}}, 3, 300, 1);
	add(s, (label_t[]){{STR("__name__"), STR("http_requests_total")}, {STR("job"), STR("api")}, {STR("code"), STR("200")}},
	    3, 300, 2);
	add(s, (label_t[]){{STR("__name__"), STR("http_requests_total")}, {STR("job"), STR("api")}, {STR("code"), STR("500")}},
	    3, 10, 3);
	char num[32];
	for (long i = 0; i < extra; i++) {
		snprintf(num, sizeof num, "%06ld", i);
		add(s, (label_t[]){{STR("__name__"), STR("load_series")}, {STR("i"), str_c(num)}}, 2, 240, 2);
	}
	loop_t *loop;
	err_t err = {0};
	if (loop_new(&loop, &err) || loop_handle_signals(loop, on_signal, NULL, &err)) {
		fprintf(stderr, "store_testserver: %s\n", err.msg);
		return 1;
	}
	grpc_server_t *srv = grpc_server_new(loop, NULL);
	store_service_t *svc = store_grpc_register(srv, inmem_store_base(s), "store");
	listener_t *ls;
	if (grpc_server_listen(srv, addr, &ls, &err)) {
		fprintf(stderr, "store_testserver: %s\n", err.msg);
		return 1;
	}
	printf("port %d\n", listener_port(ls));
	fflush(stdout);
	loop_run(loop);
	listener_free(ls);
	store_grpc_service_free(svc);
	grpc_server_free(srv);
	loop_free(loop);
	inmem_store_free(s);
	return 0;
}
