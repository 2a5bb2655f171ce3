/*
 * store_proxy — in-process throughput and memory of the proxy store: N series spread over 2 replica
 * stores (120 samples each; a third of the series in both replicas), read through the proxy:
 *   merge, chunks only      no dedup, chunks passed through
 *   merge, decode samples   no dedup, every sample decoded
 *   dedup, replica external penalty dedup by "replica", which is each store's external label
 *                           (Info): the stores are streamed with the label stripped on the fly
 *   dedup ext, <func>       the same with --deduplication.func penalty-thanos / chain / penalty again
 *                           (alternating, so the modes' cost per sample compares under the same load)
 *   dedup, replica in series the same data with "replica" as a series label and no external labels:
 *                           the proxy must collect and re-sort each store's response (the contrast)
 *   merge, 64 stores        no dedup, the series spread over 64 stores (external label zone), chunks
 *                           only: the k-way merge's cost per series
 *   gateway A+B, streamed   penalty dedup over a store gateway (bucket store on a FILESYSTEM bucket)
 *                           holding one block of each replica (external labels replica=A / B, all
 *                           series in both): the store announces without_replica_labels, so the
 *                           proxy asks with it and streams the store's answer
 *   gateway A+B, buffered   the same store with the announcement hidden: the proxy reads its whole
 *                           answer (chunk bytes included), strips and re-sorts — what it did for such
 *                           a store before without_replica_labels (the "before" of that change)
 * Memory per mode: the request arena's size, the peak RSS growth during the query (VmHWM after the
 * query minus VmRSS before it, with the peak reset through /proc/self/clear_refs) and the RSS growth
 * still held when the last series has been read (before the set is closed).
 * Usage: store_proxy [series ...]  (default: 10000 100000). Prints a table and RESULT lines.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/stat.h>
#include <unistd.h>

#include "base/clock.h"
#include "objstore/config.h"
#include "storegw/bucket_store.h"
#include "store/inmem.h"
#include "store/proxy.h"
#include "tsdb/block.h"

static double now_s(void)
{
	return (double)clock_mono_ns() / 1e9;
}

/* kB value of a /proc/self/status field, or -1. */
static long status_kb(const char *field)
{
	FILE *f = fopen("/proc/self/status", "r");
	if (!f)
		return -1;
	char line[256];
	long v = -1;
	size_t n = strlen(field);
	while (fgets(line, sizeof line, f))
		if (strncmp(line, field, n) == 0 && line[n] == ':') {
			v = strtol(line + n + 1, NULL, 10);
			break;
		}
	fclose(f);
	return v;
}

static void reset_peak(void)
{
	FILE *f = fopen("/proc/self/clear_refs", "w");
	if (f) {
		fputs("5", f);
		fclose(f);
	}
}

static dedup_mode_t dedup_func; /* the request's dedup mode (store/dedup.h) */

static void run(store_t *p, long nseries, const char *mode, const char *key, bool dedup, bool decode)
{
	arena_t a;
	arena_init(&a, 64 * 1024);
	matcher_t m;
	err_t err = {0};
	if (matcher_init(&m, MATCH_EQ, STR("__name__"), STR("bench"), &err)) {
		fprintf(stderr, "matcher: %s\n", err.msg);
		exit(1);
	}
	str_t rl = STR("replica");
	store_series_req_t req = {.mint = 0, .maxt = INT64_MAX, .ms = &m, .nms = 1, .replica_labels = &rl,
				  .nreplica_labels = dedup ? 1 : 0, .dedup_mode = dedup_func};
	reset_peak();
	long rss0 = status_kb("VmRSS");
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
			if (k < 0)
				rc = k;
		}
		if (rc < 0)
			break;
	}
	if (rc < 0) {
		fprintf(stderr, "%s: %s\n", mode, err.msg);
		exit(1);
	}
	double dt = now_s() - t0;
	long peak = status_kb("VmHWM"), end = status_kb("VmRSS");
	series_set_close(set);
	long grow = peak >= 0 && rss0 >= 0 ? peak - rss0 : -1, held = end >= 0 && rss0 >= 0 ? end - rss0 : -1;
	printf("%-24s %7ld series %9ld samples %7ld chunks %7.3fs %9.0f series/s %11.0f samples/s  arena %6zu KiB  "
	       "peak RSS +%ld KiB  RSS at end +%ld KiB\n",
	       mode, ns, nsamp, nchunks, dt, ns / dt, nsamp / dt, a.allocated / 1024, grow, held);
	printf("RESULT store_proxy_%s_%ld_series_per_s %.0f series/s\n", key, nseries, ns / dt);
	printf("RESULT store_proxy_%s_%ld_arena %zu KiB\n", key, nseries, a.allocated / 1024);
	printf("RESULT store_proxy_%s_%ld_peak_rss_growth %ld KiB\n", key, nseries, grow);
	printf("RESULT store_proxy_%s_%ld_end_rss_growth %ld KiB\n", key, nseries, held);
	matcher_release(&m);
	arena_release(&a);
}

/* The two replicas; with ext the replica label is external, else a label of every series. */
static void build(long n, bool ext, inmem_store_t **pa, inmem_store_t **pb)
{
	label_t ea[] = {{STR("replica"), STR("a")}}, eb[] = {{STR("replica"), STR("b")}};
	labels_t la = {ea, 1}, lb = {eb, 1}, none = {NULL, 0};
	inmem_store_t *sa = inmem_store_new("a", ext ? &la : &none), *sb = inmem_store_new("b", ext ? &lb : &none);
	int64_t t[120];
	double v[120];
	char num[32];
	for (long i = 0; i < n; i++) {
		snprintf(num, sizeof num, "%08ld", i);
		for (int j = 0; j < 120; j++)
			t[j] = j * 15000 + (i % 7), v[j] = (double)(i + j);
		for (int r = 0; r < 2; r++) {
			/* every series in replica i%2; a third of them in the other one too */
			bool in_b = r == 0 ? i % 2 : !(i % 2);
			if (r == 1 && i % 3 != 0)
				break;
			label_t l[] = {{STR("__name__"), STR("bench")}, {STR("i"), str_c(num)},
				       {STR("replica"), in_b ? STR("b") : STR("a")}};
			labels_t ls = {l, ext ? 2 : 3};
			err_t err = {0};
			if (inmem_store_add(in_b ? sb : sa, &ls, t, v, 120, &err)) {
				fprintf(stderr, "add: %s\n", err.msg);
				exit(1);
			}
		}
	}
	*pa = sa;
	*pb = sb;
}

/* n series spread round-robin over k stores with external label zone=<store>, no replica overlap. */
static void bench_many(long n, int k)
{
	inmem_store_t **st = calloc((size_t)k, sizeof *st);
	proxy_store_t *p = proxy_store_new("proxy");
	char zone[16], num[32];
	for (int s = 0; s < k; s++) {
		snprintf(zone, sizeof zone, "%02d", s);
		label_t e[] = {{STR("zone"), str_c(zone)}};
		labels_t el = {e, 1};
		st[s] = inmem_store_new(zone, &el);
		proxy_store_add(p, inmem_store_base(st[s]));
	}
	int64_t t[120];
	double v[120];
	for (int j = 0; j < 120; j++)
		t[j] = j * 15000, v[j] = j;
	for (long i = 0; i < n; i++) {
		snprintf(num, sizeof num, "%08ld", i / k);
		label_t l[] = {{STR("__name__"), STR("bench")}, {STR("i"), str_c(num)}};
		labels_t ls = {l, 2};
		err_t err = {0};
		if (inmem_store_add(st[i % k], &ls, t, v, 120, &err)) {
			fprintf(stderr, "add: %s\n", err.msg);
			exit(1);
		}
	}
	run(proxy_store_base(p), n, "merge, 64 stores", "merge_64_stores", false, false);
	proxy_store_free(p);
	for (int s = 0; s < k; s++)
		inmem_store_free(st[s]);
	free(st);
}

/* A store forwarding to another with supports_without_replica_labels hidden (the old proxy path). */
typedef struct hide {
	store_t base;
	store_t *in;
} hide_t;
static int hide_series(store_t *s, arena_t *a, const store_series_req_t *req, series_set_t **out, err_t *err)
{
	return store_series(((hide_t *)s)->in, a, req, out, err);
}
static int hide_names(store_t *s, arena_t *a, const store_label_req_t *req, store_strings_t *out, err_t *err)
{
	return store_label_names(((hide_t *)s)->in, a, req, out, err);
}
static int hide_values(store_t *s, arena_t *a, const store_label_req_t *req, store_strings_t *out, err_t *err)
{
	return store_label_values(((hide_t *)s)->in, a, req, out, err);
}
static int hide_info(store_t *s, arena_t *a, store_info_t *out, err_t *err)
{
	int rc = store_info(((hide_t *)s)->in, a, out, err);
	out->supports_without_replica_labels = false;
	return rc;
}
static void hide_free(store_t *s)
{
	(void)s;
}
static const struct store_ops hide_ops = {hide_series, hide_names, hide_values, hide_info, hide_free};

static void die_err(const char *what, const err_t *err)
{
	fprintf(stderr, "%s: %s\n", what, err->msg);
	exit(1);
}

/* n series bench{i} x 120 samples in one block per replica (A, B 3 ms later), in a FILESYSTEM bucket
 * under a temporary directory; both proxies read the same bucket store. */
static void bench_gateway(long n)
{
	char tmp[64], bdir[128], ddir[128];
	snprintf(tmp, sizeof tmp, "/tmp/strata-bench-sgw.XXXXXX");
	if (!mkdtemp(tmp)) {
		perror("mkdtemp");
		exit(1);
	}
	snprintf(bdir, sizeof bdir, "%s/bucket", tmp);
	snprintf(ddir, sizeof ddir, "%s/data", tmp);
	mkdir(bdir, 0755);
	err_t err = {0};
	int64_t t[120];
	double v[120];
	char num[32];
	for (int r = 0; r < 2; r++) {
		block_writer_t *bw;
		if (block_writer_new(&bw, bdir, NULL, &err))
			die_err("block writer", &err);
		for (long i = 0; i < n; i++) {
			snprintf(num, sizeof num, "%08ld", i);
			for (int j = 0; j < 120; j++)
				t[j] = j * 15000 + 3 * r, v[j] = (double)(i + j);
			label_t l[] = {{STR("__name__"), STR("bench")}, {STR("i"), str_c(num)}};
			labels_t ls = {l, 2};
			if (block_writer_add_series(bw, &ls, t, v, 120, &err))
				die_err("add", &err);
		}
		block_meta_t m = {0};
		meta_set_label(&m, "replica", r ? "B" : "A");
		char dir[4096];
		if (block_writer_finish(bw, &m, dir, &err))
			die_err("block", &err);
		meta_release(&m);
	}
	char yaml[256];
	snprintf(yaml, sizeof yaml, "type: FILESYSTEM\nconfig: {directory: %s}", bdir);
	bucket_t *bkt;
	if (objstore_from_config(yaml, strlen(yaml), &bkt, &err))
		die_err("bucket", &err);
	bucket_store_config_t cfg = {.bkt = bkt, .data_dir = ddir, .min_time = INT64_MIN, .max_time = INT64_MAX};
	bucket_store_t *bs;
	if (bucket_store_new(&bs, &cfg, &err) || bucket_store_sync(bs, &err))
		die_err("bucket store", &err);
	hide_t h = {{&hide_ops, "hidden"}, bucket_store_base(bs)};
	proxy_store_t *ps = proxy_store_new("streamed"), *pb = proxy_store_new("buffered");
	proxy_store_add(ps, bucket_store_base(bs));
	proxy_store_add(pb, &h.base);
	/* warm-up: index-headers built, files in the page cache */
	run(proxy_store_base(ps), n, "(warm-up)", "sgw_warmup", true, true);
	run(proxy_store_base(ps), n, "gateway A+B, streamed", "sgw_dedup_streamed", true, true);
	run(proxy_store_base(pb), n, "gateway A+B, buffered", "sgw_dedup_buffered", true, true);
	run(proxy_store_base(ps), n, "gateway A+B, streamed", "sgw_dedup_streamed", true, true);
	run(proxy_store_base(pb), n, "gateway A+B, buffered", "sgw_dedup_buffered", true, true);
	proxy_store_free(ps);
	proxy_store_free(pb);
	bucket_store_free(bs);
	bucket_free(bkt);
	char cmd[256];
	snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", tmp);
}

static void bench(long n)
{
	inmem_store_t *sa, *sb;
	build(n, true, &sa, &sb);
	proxy_store_t *p = proxy_store_new("proxy");
	proxy_store_add(p, inmem_store_base(sa));
	proxy_store_add(p, inmem_store_base(sb));
	run(proxy_store_base(p), n, "merge, chunks only", "merge_chunks", false, false);
	run(proxy_store_base(p), n, "merge, decode samples", "merge_decode", false, true);
	run(proxy_store_base(p), n, "dedup, replica external", "dedup_streamed", true, true);
	for (int round = 0; round < 2; round++) {
		dedup_func = DEDUP_PENALTY_THANOS;
		run(proxy_store_base(p), n, "dedup ext, penalty-thanos", "dedup_streamed_penalty_thanos", true, true);
		dedup_func = DEDUP_CHAIN;
		run(proxy_store_base(p), n, "dedup ext, chain", "dedup_streamed_chain", true, true);
		dedup_func = DEDUP_PENALTY;
		run(proxy_store_base(p), n, "dedup ext, penalty", "dedup_streamed_penalty", true, true);
	}
	proxy_store_free(p);
	inmem_store_free(sa);
	inmem_store_free(sb);
	build(n, false, &sa, &sb);
	p = proxy_store_new("proxy");
	proxy_store_add(p, inmem_store_base(sa));
	proxy_store_add(p, inmem_store_base(sb));
	run(proxy_store_base(p), n, "dedup, replica in series", "dedup_buffered", true, true);
	proxy_store_free(p);
	inmem_store_free(sa);
	inmem_store_free(sb);
	bench_many(n, 64);
	bench_gateway(n);
}

int main(int argc, char **argv)
{
	if (argc > 1) {
		for (int i = 1; i < argc; i++)
			bench(strtol(argv[i], NULL, 10));
	} else {
		bench(10000);
		bench(100000);
	}
	return 0;
}
