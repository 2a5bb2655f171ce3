/*
 * compact_merge — compacts local TSDB blocks into one with the compactor's merge (tsdb/blockmerge.h),
 * for bench/compact_bench.sh (run with no arguments, as bench/run does, it says so and exits 0).
 *
 *   compact_merge OUT_PARENT BLOCK_DIR...
 *
 * Prints "series S samples N seconds T cpu_seconds C maxrss_kb K chunks_copied A chunks_reencoded B".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "tsdb/blockmerge.h"

int main(int argc, char **argv)
{
	if (argc == 1) {
		printf("compact_merge: helper of bench/compact_bench.sh; nothing to do on its own\n");
		return 0;
	}
	if (argc < 3) {
		fprintf(stderr, "usage: compact_merge OUT_PARENT BLOCK_DIR...\n");
		return 2;
	}
	size_t n = (size_t)argc - 2;
	block_t **in = xcalloc(n, sizeof *in);
	err_t err = {0};
	block_meta_t m = {0};
	for (size_t i = 0; i < n; i++) {
		if (block_open(&in[i], argv[i + 2], &err)) {
			fprintf(stderr, "compact_merge: %s\n", err.msg);
			return 1;
		}
		meta_add_source(&m, in[i]->meta.ulid);
	}
	m.level = 2;
	m.has_thanos = true;
	m.source = xstrdup("compactor");
	blockmerge_result_t res;
	uint64_t t0 = clock_mono_ns();
	int rc = blockmerge_run(in, n, argv[1], &m, NULL, &res, &err);
	double secs = clock_since_s(t0);
	if (rc) {
		fprintf(stderr, "compact_merge: %s\n", err.msg);
		return 1;
	}
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	double cpu = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
	             ru.ru_stime.tv_usec / 1e6;
	printf("series %llu samples %llu seconds %.3f cpu_seconds %.3f maxrss_kb %ld chunks_copied %llu "
	       "chunks_reencoded %llu\n",
	       (unsigned long long)res.series, (unsigned long long)res.samples, secs, cpu, ru.ru_maxrss,
	       (unsigned long long)res.chunks_copied, (unsigned long long)res.chunks_reencoded);
	for (size_t i = 0; i < n; i++)
		block_close(in[i]);
	free(in);
	meta_release(&m);
	return 0;
}
