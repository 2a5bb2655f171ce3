/*
 * store_proxy — in-process throughput of the proxy store: N series spread over 2 replica stores
 * (replica="a"/"b", 120 samples each), merged without dedup (chunks passed through) and with
 * penalty dedup (samples decoded and merged). Usage: store_proxy [series]  (default 100000)
 * Prints series/s and samples/s for each mode.
 */
#include <stdio.h>
#include <stdlib.h>

#include "base/clock.h"
#include "store/inmem.h"
#include "store/proxy.h"

static double now_s(void)
{
	return (double)clock_mono_ms() / 1000.0;
}

static void run(store_t *p, const char *mode, bool dedup, bool decode)
{
	arena_t a;
	arena_init(&a, 1 << 20);
	matcher_t m;
	err_t err = {0};
	matcher_init(&m, MATCH_EQ, STR("__name__"), STR("bench"), &err);
	str_t rl = STR("replica");
	store_series_req_t req = {.mint = 0, .maxt = INT64_MAX, .ms = &m, .nms = 1, .replica_labels = &rl,
				  .nreplica_labels = dedup ? 1 : 0};
	double t0 = now_s();
	series_set_t *set;
	if (store_series(p, &a, &req, &set, &err)) {
		fprintf(stderr, "series: %s\n", err.msg);
		exit(1);
	}
	long ns = 0, nsamp = 0, nchunks = 0;
	int64_t t[256];
	double v[256];
	int rc;
	while ((rc = series_set_next(set, &err)) == 1) {
		ns++;
		const chunk_t *cs;
		int nc = set->ops->chunks(set, &cs);
		if (nc > 0)
			nchunks += nc;
		if (decode) {
			sample_iter_t *it = series_set_samples(set);
			int k;
			while ((k = sample_iter_next_batch(it, t, v, 256, &err)) > 0)
				nsamp += k;
		}
	}
	double dt = now_s() - t0;
	printf("%-28s %8ld series %10ld samples %8ld chunks  %6.3fs  %10.0f series/s %12.0f samples/s  arena %zu KiB\n",
	       mode, ns, nsamp, nchunks, dt, ns / dt, nsamp / dt, a.allocated / 1024);
	series_set_close(set);
	matcher_release(&m);
	arena_release(&a);
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? strtol(argv[1], NULL, 10) : 100000;
	label_t ea[] = {{STR("replica"), STR("a")}}, eb[] = {{STR("replica"), STR("b")}};
	labels_t la = {ea, 1}, lb = {eb, 1};
	inmem_store_t *sa = inmem_store_new("a", &la), *sb = inmem_store_new("b", &lb);
	int64_t t[120];
	double v[120];
	char num[32];
	for (long i = 0; i < n; i++) {
		snprintf(num, sizeof num, "%08ld", i);
		label_t l[] = {{STR("__name__"), STR("bench")}, {STR("i"), str_c(num)}};
		labels_t ls = {l, 2};
		for (int j = 0; j < 120; j++)
			t[j] = j * 15000 + (i % 7), v[j] = (double)(i + j);
		inmem_store_add(i % 2 ? sb : sa, &ls, t, v, 120, NULL);
		if (i % 3 == 0) /* a third of the series exist in both replicas */
			inmem_store_add(i % 2 ? sa : sb, &ls, t, v, 120, NULL);
	}
	proxy_store_t *p = proxy_store_new("proxy");
	proxy_store_add(p, inmem_store_base(sa));
	proxy_store_add(p, inmem_store_base(sb));
	run(proxy_store_base(p), "merge, chunks only", false, false);
	run(proxy_store_base(p), "merge, decode samples", false, true);
	run(proxy_store_base(p), "dedup, decode samples", true, true);
	proxy_store_free(p);
	inmem_store_free(sa);
	inmem_store_free(sb);
	return 0;
}
