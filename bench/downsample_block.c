/*
 * downsample_block — downsamples one local raw block to 5m (tsdb/downsample.h), for
 * bench/downsample_bench.sh (run with no arguments, as bench/run does, it says so and exits 0).
 *
 *   downsample_block OUT_PARENT BLOCK_DIR
 *
 * Prints "series S samples_in N samples_out M seconds T cpu_seconds C maxrss_kb K".
 */
#include <stdio.h>
#include <sys/resource.h>

#include "base/clock.h"
#include "tsdb/downsample.h"

int main(int argc, char **argv)
{
	if (argc == 1) {
		printf("downsample_block: helper of bench/downsample_bench.sh; nothing to do on its own\n");
		return 0;
	}
	if (argc != 3) {
		fprintf(stderr, "usage: downsample_block OUT_PARENT BLOCK_DIR\n");
		return 2;
	}
	block_t *in;
	err_t err = {0};
	if (block_open(&in, argv[2], &err)) {
		fprintf(stderr, "downsample_block: %s\n", err.msg);
		return 1;
	}
	block_meta_t m;
	meta_copy(&m, &in->meta);
	m.resolution = DOWNSAMPLE_RES_5M;
	m.has_thanos = true;
	downsample_result_t res;
	uint64_t t0 = clock_mono_ns();
	int rc = downsample_block(in, argv[1], DOWNSAMPLE_RES_5M, &m, NULL, NULL, &res, &err);
	double secs = clock_since_s(t0);
	meta_release(&m);
	block_close(in);
	if (rc) {
		fprintf(stderr, "downsample_block: %s\n", err.msg);
		return 1;
	}
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	double cpu = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
	             ru.ru_stime.tv_usec / 1e6;
	printf("series %llu samples_in %llu samples_out %llu seconds %.3f cpu_seconds %.3f maxrss_kb %ld\n",
	       (unsigned long long)res.series, (unsigned long long)res.samples_in,
	       (unsigned long long)res.samples_out, secs, cpu, ru.ru_maxrss);
	return 0;
}
