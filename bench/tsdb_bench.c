/*
 * tsdb_bench — TSDB block performance, per core (CPU time of the measuring thread, so numbers hold on
 * a shared machine):
 *   - XOR encode/decode on 120-sample chunks, two data sets: "scrape" (15s scrapes with occasional
 *     jitter; a mix of counters, constant and wandering gauges, like node_exporter), "jitter"
 *     (every timestamp jittered, every value changed: the hard case for the bit-serial format) and
 *     "query" (the counters bench/promql_bench.sh's sum(rate) decodes, as promql_blockgen writes them);
 *   - block writing incl. index (samples/s) and its peak RSS for 10x more samples per series and for
 *     10x more series (forked children, so each has its own high-water mark);
 *   - block open time (mmap; meta.json, index header/TOC, chunk segment headers) and the first
 *     query's one-off index load;
 *   - postings for 2-matcher selectors over 1M series.
 * Usage: tsdb_bench [series (default 1000000)] | tsdb_bench xor (only the XOR part, a few seconds).
 * Works in $TMPDIR (default /tmp). Prints RESULT lines.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/arena.h"
#include "tsdb/block.h"
#include "tsdb/xor.h"

static double cpu_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double wall_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t seed = 1;
static uint64_t rnd(void)
{
	seed = seed * 6364136223846793005ull + 1442695040888963407ull;
	return seed >> 11;
}

enum { NCHUNK = 1000, N = 120, ROUNDS = 50 };

static void gen(const char *kind, int c, int64_t *t, double *v)
{
	double val = (double)c;
	int64_t ts = 1700000000000ll;
	for (int i = 0; i < N; i++) {
		if (!strcmp(kind, "query")) {
			/* promql_blockgen's counter x (bench/promql_bench.sh's sum(rate)): 0-3 ms jitter on every
			 * scrape, increments 0..5 for most series, up to 0..200 for a few */
			double scale = c % 10 < 3 ? 20.0 / (c % 20 + 1) : 0.5;
			if (i == 0)
				val = (double)(rnd() % 100000);
			ts = 1700000000000ll + i * 15000 + (int64_t)(rnd() & 3);
			val += (double)(rnd() % (uint64_t)(scale * 10 + 1));
		} else if (!strcmp(kind, "jitter")) {
			ts = 1700000000000ll + i * 15000 + (int64_t)(rnd() % 16);
			val += (double)(rnd() % 64);
		} else {
			ts += 15000 + (rnd() % 20 == 0 ? (int64_t)(rnd() % 7) - 3 : 0);
			switch (c % 3) {
			case 0: val += (double)(rnd() % 100); break;          /* counter */
			case 1: if (rnd() % 30 == 0) val = (double)(rnd() % 4); break; /* mostly constant */
			default: val += ((double)(rnd() % 1000) - 500) / 1000.0; break; /* wandering gauge */
			}
		}
		t[i] = ts;
		v[i] = val;
	}
}

static void bench_xor(const char *kind)
{
	static int64_t t[NCHUNK][N];
	static double v[NCHUNK][N];
	static xor_enc_t enc[NCHUNK];
	static chunk_t ch[NCHUNK];
	for (int c = 0; c < NCHUNK; c++)
		gen(kind, c, t[c], v[c]);
	double t0 = cpu_now();
	for (int r = 0; r < ROUNDS; r++) {
		for (int c = 0; c < NCHUNK; c++) {
			if (r == 0)
				xor_enc_init(&enc[c]);
			else
				xor_enc_reset(&enc[c]);
			for (int i = 0; i < N; i++)
				xor_enc_append(&enc[c], t[c][i], v[c][i]);
		}
	}
	double enc_s = cpu_now() - t0;
	size_t bytes = 0;
	for (int c = 0; c < NCHUNK; c++) {
		size_t len;
		ch[c].data = xor_enc_bytes(&enc[c], &len);
		ch[c].len = len;
		ch[c].enc = CHUNK_ENC_XOR;
		ch[c].mint = t[c][0];
		ch[c].maxt = t[c][N - 1];
		bytes += len;
	}
	double sum = 0;
	int64_t bt[N];
	double bv[N];
	t0 = cpu_now();
	for (int r = 0; r < ROUNDS * 4; r++) {
		for (int c = 0; c < NCHUNK; c++) {
			xor_dec_t d;
			xor_dec_init(&d, ch[c].data, ch[c].len, NULL);
			int k;
			while ((k = xor_dec_batch(&d, bt, bv, N, NULL)) > 0)
				sum += bv[k - 1];
		}
	}
	double dec_s = cpu_now() - t0;
	/* the same through the sample iterator (what queries use), batches of 64 */
	t0 = cpu_now();
	for (int r = 0; r < ROUNDS * 4; r++) {
		for (int c = 0; c < NCHUNK; c++) {
			xor_iter_t it;
			xor_iter_init(&it, &ch[c], 1, INT64_MIN, INT64_MAX);
			int k;
			while ((k = sample_iter_next_batch(&it.base, bt, bv, 64, NULL)) > 0)
				sum += bv[k - 1];
		}
	}
	double iter_s = cpu_now() - t0;
	/* seek to a sample somewhere in the chunk, then read the rest (what ev_load_samples does with
	 * series from a store); counted as the chunk's 120 samples */
	t0 = cpu_now();
	for (int r = 0; r < ROUNDS * 4; r++) {
		for (int c = 0; c < NCHUNK; c++) {
			xor_iter_t it;
			xor_iter_init(&it, &ch[c], 1, INT64_MIN, INT64_MAX);
			if (sample_iter_seek(&it.base, t[c][(r * 7 + c) % N], NULL))
				die("seek failed");
			int k;
			while ((k = sample_iter_next_batch(&it.base, bt, bv, 64, NULL)) > 0)
				sum += bv[k - 1];
		}
	}
	double seek_s = cpu_now() - t0;
	double total_enc = (double)NCHUNK * N * ROUNDS, total_dec = (double)NCHUNK * N * ROUNDS * 4;
	printf("xor %s: %.2f bytes/sample (checksum %g)\n", kind, (double)bytes / (NCHUNK * N), sum);
	printf("RESULT xor_encode_%s %.1f Msamples/s\n", kind, total_enc / enc_s / 1e6);
	printf("RESULT xor_decode_%s %.1f Msamples/s (xor_dec_batch, 120-sample chunks)\n", kind,
	       total_dec / dec_s / 1e6);
	printf("RESULT xor_decode_iter_%s %.1f Msamples/s (sample_iter, batches of 64)\n", kind,
	       total_dec / iter_s / 1e6);
	printf("RESULT xor_decode_seek_%s %.1f Msamples/s (seek into the chunk, then sample_iter)\n", kind,
	       total_dec / seek_s / 1e6);
	for (int c = 0; c < NCHUNK; c++)
		xor_enc_release(&enc[c]);
}

/* Series i: __name__=m<i%100>, instance=i<i/100>, job=j<(i/100)%10>: 100 names x 10k series,
 * 10 jobs x 100k series. With ninstances set, instance=i<(i/100)%ninstances>,job=j<i/100> instead:
 * the same number of series over a fixed set of instances (but a new job every 100 series). */
static size_t ninstances;
static labels_t series_labels(arena_t *a, size_t i)
{
	if (ninstances) {
		labels_t ls;
		ls.v = arena_alloc(a, 3 * sizeof(label_t));
		ls.n = 3;
		ls.v[0] = (label_t){STR("__name__"), str_c(arena_printf(a, "m%zu", i % 100))};
		ls.v[1] = (label_t){STR("instance"), str_c(arena_printf(a, "i%zu", (i / 100) % ninstances))};
		ls.v[2] = (label_t){STR("job"), str_c(arena_printf(a, "j%zu", i / 100 / ninstances))};
		return ls;
	}
	labels_t ls;
	ls.v = arena_alloc(a, 3 * sizeof(label_t));
	ls.n = 3;
	ls.v[0] = (label_t){STR("__name__"), str_c(arena_printf(a, "m%zu", i % 100))};
	ls.v[1] = (label_t){STR("instance"), str_c(arena_printf(a, "i%zu", i / 100))};
	ls.v[2] = (label_t){STR("job"), str_c(arena_printf(a, "j%zu", (i / 100) % 10))};
	return ls;
}

/* Writes a block of nseries x nsamp (15s scrapes) with the writer's mem_limit (0 = default);
 * returns CPU seconds, dir in out. */
static double write_block(const char *parent, size_t nseries, int nsamp, size_t mem_limit, char *out)
{
	int64_t *t = xcalloc((size_t)nsamp, sizeof *t);
	double *v = xcalloc((size_t)nsamp, sizeof *v);
	arena_t a;
	arena_init(&a, 0);
	block_writer_t *bw;
	err_t err = {0};
	double t0 = cpu_now();
	block_writer_opts_t opts = {.mem_limit = mem_limit};
	if (block_writer_new(&bw, parent, &opts, &err))
		die("%s", err.msg);
	for (size_t s = 0; s < nseries; s++) {
		labels_t ls = series_labels(&a, s);
		double val = (double)s;
		int64_t ts = 1700000000000ll - 1700000000000ll % 7200000;
		for (int i = 0; i < nsamp; i++) {
			ts += 15000;
			val += (double)(s % 7);
			t[i] = ts, v[i] = val;
		}
		if (block_writer_add_series(bw, &ls, t, v, (size_t)nsamp, &err))
			die("%s", err.msg);
		arena_reset(&a);
	}
	if (block_writer_finish(bw, NULL, out, &err))
		die("%s", err.msg);
	double s = cpu_now() - t0;
	arena_release(&a);
	free(t);
	free(v);
	return s;
}

/* Peak RSS (MiB) of a child writing nseries x nsamp; removes the block. */
static double child_peak_rss(const char *parent, size_t nseries, int nsamp, size_t mem_limit)
{
	pid_t pid = fork();
	if (pid < 0)
		die("fork failed");
	if (pid == 0) {
		char dir[4096], cmd[4200];
		write_block(parent, nseries, nsamp, mem_limit, dir);
		snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
		_exit(system(cmd) == 0 ? 0 : 1);
	}
	int st;
	struct rusage ru;
	if (wait4(pid, &st, 0, &ru) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		die("child failed");
	return (double)ru.ru_maxrss / 1024.0;
}

static void bench_postings(block_t *b, const char *what, const matcher_t *ms, size_t n)
{
	arena_t a;
	arena_init(&a, 0);
	postings_t p = {0};
	err_t err = {0};
	int reps = 20;
	double t0 = cpu_now();
	for (int r = 0; r < reps; r++) {
		arena_reset(&a);
		if (index_reader_postings_for_matchers(&b->ix, &a, ms, n, &p, &err))
			die("%s", err.msg);
	}
	double s = (cpu_now() - t0) / reps;
	printf("RESULT postings_%s %.2f ms (%zu of 1M series)\n", what, s * 1e3, p.n);
	arena_release(&a);
}

int main(int argc, char **argv)
{
	bool xor_only = argc > 1 && !strcmp(argv[1], "xor");
	size_t nseries = argc > 1 && !xor_only ? (size_t)strtoull(argv[1], NULL, 10) : 1000000;
	bench_xor("scrape");
	bench_xor("jitter");
	bench_xor("query");
	if (xor_only)
		return 0;

	const char *tmp = getenv("TMPDIR");
	char parent[4096], dir[4096];
	snprintf(parent, sizeof parent, "%s/strata-tsdb-bench-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(parent))
		die("mkdtemp failed");

	/* write throughput: 100k series x 120 samples (12M samples) */
	double ws = write_block(parent, 100000, 120, 0, dir);
	printf("RESULT block_write %.1f Msamples/s (100k series x 120 samples, incl. index, CPU time)\n",
	       12e6 / ws / 1e6);
	char cmd[8300];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		die("rm failed");
	double r1 = child_peak_rss(parent, 20000, 120, 0), r2 = child_peak_rss(parent, 20000, 1200, 0);
	printf("RESULT block_write_peak_rss %.1f MiB (20k series x 120 samples) vs %.1f MiB (x 1200 samples)\n", r1, r2);
	/* 10x and 100x more series; the symbol table grows too (an instance per 100 series) */
	double r3 = child_peak_rss(parent, 200000, 120, 0), r4 = child_peak_rss(parent, 2000000, 120, 0);
	printf("RESULT block_write_peak_rss_series %.1f MiB (20k series x 120 samples) vs %.1f MiB (200k) vs %.1f MiB "
	       "(2M), mem_limit 4 MiB\n", r1, r3, r4);
	ninstances = 2000; /* symbol table fixed at ~2.1k strings; 12 samples a series to keep it quick */
	double f1 = child_peak_rss(parent, 200000, 12, 0), f2 = child_peak_rss(parent, 1000000, 12, 0),
	       f3 = child_peak_rss(parent, 4000000, 12, 0);
	ninstances = 0;
	printf("RESULT block_write_peak_rss_series_fixed_symbols %.1f MiB (200k series x 12 samples) vs %.1f MiB (1M) vs "
	       "%.1f MiB (4M), mem_limit 4 MiB\n", f1, f2, f3);
	double r5 = child_peak_rss(parent, 20000, 120, 1 << 20), r6 = child_peak_rss(parent, 200000, 120, 1 << 20);
	printf("RESULT block_write_peak_rss_series_1mib %.1f MiB (20k series x 120 samples) vs %.1f MiB (200k), "
	       "mem_limit 1 MiB\n", r5, r6);
	double w1 = write_block(parent, 100000, 120, 1 << 20, dir);
	printf("RESULT block_write_1mib %.1f Msamples/s (100k series x 120 samples, mem_limit 1 MiB: spills)\n",
	       12e6 / w1 / 1e6);
	snprintf(cmd, sizeof cmd, "rm -rf '%s'/*", parent);
	if (system(cmd) != 0)
		die("rm failed");

	/* the big block: nseries x 4 samples, then open and query it */
	double w0 = wall_now();
	write_block(parent, nseries, 4, 0, dir);
	printf("wrote %zu-series block in %.1fs\n", nseries, wall_now() - w0);
	block_t *b;
	err_t err = {0};
	double o0 = wall_now();
	if (block_open(&b, dir, &err))
		die("%s", err.msg);
	double open_s = wall_now() - o0;
	printf("RESULT block_open %.2f ms (%zu series, wall time)\n", open_s * 1e3, nseries);
	o0 = wall_now();
	if (index_reader_load(&b->ix, &err))
		die("%s", err.msg);
	printf("RESULT index_first_load %.2f ms (symbols + postings offset table, once per block)\n",
	       (wall_now() - o0) * 1e3);
	matcher_t ms[3];
	matcher_init(&ms[0], MATCH_EQ, STR("__name__"), STR("m7"), NULL);
	matcher_init(&ms[1], MATCH_EQ, STR("job"), STR("j3"), NULL);
	matcher_init(&ms[2], MATCH_RE, STR("instance"), STR("i1.*"), NULL);
	bench_postings(b, "name_eq_job_eq", ms, 2);
	matcher_t m2[2] = {ms[0], ms[2]};
	bench_postings(b, "name_eq_instance_re", m2, 2);
	for (int i = 0; i < 3; i++)
		matcher_release(&ms[i]);
	block_close(b);
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", parent);
	if (system(cmd) != 0)
		die("rm failed");
	return 0;
}
