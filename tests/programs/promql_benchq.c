/*
 * promql_benchq — in-process PromQL benchmark over the blocks of a directory (used by
 * bench/promql_bench.sh so process start-up and block opening do not count).
 *
 *   promql_benchq DATA_DIR QUERY_FILE RUNS THREADS WARMUP [RESULT_DIR]
 *
 * QUERY_FILE ("-" = stdin, read as the queries come, so a driver can keep one process and its block
 * mappings across rounds the way a server would):
 * one query per line, "name<TAB>start_ms<TAB>end_ms<TAB>step_ms<TAB>expr" (step 0 =
 * instant). With WARMUP=1 each query first runs once untimed (page cache, mmaps), then RUNS times;
 * THREADS > 1 gives the engine a pool of THREADS workers (the caller claims work too); per query one line
 *   Q name wall_ms_median cpu_ms_median mem_peak_kb series points
 * where cpu is process CPU time (all threads) and mem_peak_kb is the growth of the process's anonymous
 * memory (resident minus file-backed pages, sampled every millisecond from /proc/self/statm) during
 * the last run over its level before it: what the engine allocates, not the block pages it maps.
 * With RESULT_DIR, the first result is written there as <name>.json (the API "data" object).
 */
#include <dirent.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>

#include "base/alloc.h"
#include "base/workers.h"
#include "promql/engine.h"
#include "promql/merge.h"
#include "tsdb/block.h"
#include "tsdb/xor.h"

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static double cpu_ms(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
}

/* Anonymous resident memory in KiB (resident - shared pages). */
static long anon_kb(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	if (!f)
		return 0;
	long size, res = 0, shared = 0;
	if (fscanf(f, "%ld %ld %ld", &size, &res, &shared) != 3)
		res = shared = 0;
	fclose(f);
	return (res - shared) * (sysconf(_SC_PAGESIZE) / 1024);
}

static atomic_int sampling;
static atomic_long anon_peak;

static void *sampler(void *arg)
{
	(void)arg;
	while (atomic_load(&sampling)) {
		long k = anon_kb();
		if (k > atomic_load(&anon_peak))
			atomic_store(&anon_peak, k);
		usleep(1000);
	}
	return NULL;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	if (argc < 6) {
		fprintf(stderr, "usage: %s DATA_DIR QUERY_FILE RUNS THREADS WARMUP [RESULT_DIR]\n", argv[0]);
		return 2;
	}
	int runs = atoi(argv[3]), threads = atoi(argv[4]), warm = atoi(argv[5]);
	const char *resdir = argc > 6 ? argv[6] : NULL;
	if (runs < 1)
		runs = 1;
	DIR *d = opendir(argv[1]);
	if (!d) {
		perror(argv[1]);
		return 1;
	}
	block_t *blocks[256];
	queryable_t *qs[256];
	size_t nb = 0;
	struct dirent *de;
	while ((de = readdir(d)) && nb < 256) {
		char dir[4096], meta[4200];
		struct stat st;
		snprintf(dir, sizeof dir, "%s/%s", argv[1], de->d_name);
		snprintf(meta, sizeof meta, "%s/meta.json", dir);
		if (de->d_name[0] == '.' || stat(meta, &st))
			continue;
		err_t err = {0};
		if (block_open(&blocks[nb], dir, &err)) {
			fprintf(stderr, "%s\n", err.msg);
			return 1;
		}
		qs[nb] = &blocks[nb]->q;
		nb++;
	}
	closedir(d);
	promql_merge_t *m = promql_merge_new(qs, nb);
	/* workers_parallel_for runs inline with a 1-thread pool, so the pool gets THREADS workers (the
	 * calling thread claims tasks too) */
	workers_t *w = threads > 1 ? workers_new(threads) : NULL;
	FILE *qf = strcmp(argv[2], "-") ? fopen(argv[2], "r") : stdin;
	if (!qf) {
		perror(argv[2]);
		return 1;
	}
	char line[8192];
	int ret = 0;
	double *wall = xcalloc((size_t)runs, sizeof(double)), *cpu = xcalloc((size_t)runs, sizeof(double));
	while (fgets(line, sizeof line, qf)) {
		line[strcspn(line, "\n")] = 0;
		char *f[5];
		int nf = 0;
		for (char *p = line, *tok; nf < 5 && (tok = strsep(&p, "\t"));)
			f[nf++] = tok;
		if (nf != 5 || line[0] == '#')
			continue;
		int64_t start = atoll(f[1]), end = atoll(f[2]), step = atoll(f[3]);
		promql_opts_t o = {.timeout_ms = 600000, .workers = w, .decode_chunks = xor_decode_chunks};
		long mem = 0;
		size_t nser = 0, npts = 0;
		for (int r = warm ? -1 : 0; r < runs; r++) {
			arena_t a;
			arena_init(&a, 1 << 16);
			promql_result_t res;
			err_t err = {0};
			long rss0 = 0;
			pthread_t th;
			bool sampled = r == runs - 1;
			if (sampled) {
				malloc_trim(0); /* freed memory of earlier queries would hide this one's growth */
				rss0 = anon_kb();
				atomic_store(&anon_peak, rss0);
				atomic_store(&sampling, 1);
				if (pthread_create(&th, NULL, sampler, NULL))
					sampled = false;
			}
			double w0 = now_ms(), c0 = cpu_ms();
			int rc = promql_query(&o, promql_merge_queryable(m), &a, str_c(f[4]), start, end, step, &res, &err);
			double w1 = now_ms(), c1 = cpu_ms();
			if (sampled) {
				atomic_store(&sampling, 0);
				pthread_join(th, NULL);
				long last = anon_kb();
				mem = (last > atomic_load(&anon_peak) ? last : atomic_load(&anon_peak)) - rss0;
			}
			if (rc) {
				fprintf(stderr, "%s: %s: %s\n", f[0], res.error_type, err.msg);
				ret = 1;
				arena_release(&a);
				break;
			}
			if (r == (warm ? -1 : 0)) {
				nser = res.nseries;
				npts = 0;
				for (size_t i = 0; i < res.nseries; i++)
					npts += res.series[i].n;
				if (resdir) {
					char path[4096];
					snprintf(path, sizeof path, "%s/%s.json", resdir, f[0]);
					FILE *o2 = fopen(path, "w");
					if (o2) {
						buf_t b;
						buf_init(&b);
						promql_result_json(&b, &res);
						fwrite(b.p, 1, b.n, o2);
						buf_release(&b);
						fclose(o2);
					}
				}
			}
			if (r >= 0) {
				wall[r] = w1 - w0;
				cpu[r] = c1 - c0;
			}
			arena_release(&a);
		}
		qsort(wall, (size_t)runs, sizeof *wall, cmp_d);
		qsort(cpu, (size_t)runs, sizeof *cpu, cmp_d);
		printf("Q %s %.2f %.2f %ld %zu %zu\n", f[0], wall[runs / 2], cpu[runs / 2], mem, nser, npts);
		fflush(stdout);
	}
	if (qf != stdin)
		fclose(qf);
	free(wall);
	free(cpu);
	if (w)
		workers_free(w);
	promql_merge_free(m);
	for (size_t i = 0; i < nb; i++)
		block_close(blocks[i]);
	return ret;
}
