/*
 * storegw_blockgen — writes the store gateway benchmark's bucket (helper of bench/storegw_bench.sh;
 * run with no arguments, as bench/run does, it says so and exits 0).
 *
 *   storegw_blockgen OUT_DIR NBLOCKS SERIES END_MS [INTERVAL_MS]
 *
 * NBLOCKS consecutive 2h blocks ending at END_MS (rounded down to 2h), each written by the TSDB block
 * writer with SERIES series of 120 samples (one a minute) and a thanos section (cluster="bench",
 * resolution 0, source "bench"). Series: bench_metric{a, b, c} with a and b in 10 values each and
 * c in SERIES / 100 values, so the index grows with SERIES while the symbol table stays small (what
 * an index-header holds). Values are counters with per-series steps (deterministic).
 * INTERVAL_MS (default 60000, one a minute) sets the sample spacing (downsample_bench.sh: 15s).
 * Prints "blocks N series S" on success.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/arena.h"
#include "tsdb/block.h"

#define H2 (2 * 3600 * 1000ll)

int main(int argc, char **argv)
{
	if (argc == 1) {
		printf("storegw_blockgen: helper of bench/storegw_bench.sh; nothing to do on its own\n");
		return 0;
	}
	if (argc != 5 && argc != 6) {
		fprintf(stderr, "usage: storegw_blockgen OUT_DIR NBLOCKS SERIES END_MS [INTERVAL_MS]\n");
		return 2;
	}
	long nblocks = atol(argv[2]), nseries = atol(argv[3]);
	long long end = atoll(argv[4]) / H2 * H2;
	long long step = argc == 6 ? atoll(argv[5]) : 60000;
	int ns = step >= 1000 && step <= H2 ? (int)(H2 / step) : 0;
	if (nblocks < 1 || nseries < 100 || nseries % 100 || end < nblocks * H2 || ns < 1) {
		fprintf(stderr, "storegw_blockgen: want NBLOCKS >= 1, SERIES a multiple of 100, END_MS after "
		                "the blocks\n");
		return 2;
	}
	arena_t a;
	arena_init(&a, 1 << 16);
	labels_t *ls = xcalloc((size_t)nseries, sizeof *ls);
	long nc = nseries / 100, k = 0;
	char va[8], vb[8], vc[16];
	/* sorted by labels: a, b, c compare as fixed-width strings */
	for (int i = 0; i < 10; i++)
		for (int j = 0; j < 10; j++)
			for (long c = 0; c < nc; c++, k++) {
				snprintf(va, sizeof va, "a%d", i);
				snprintf(vb, sizeof vb, "b%d", j);
				snprintf(vc, sizeof vc, "c%05ld", c);
				label_t *l = arena_alloc(&a, 4 * sizeof *l);
				l[0] = (label_t){STR("__name__"), STR("bench_metric")};
				l[1] = (label_t){STR("a"), str_c(arena_strdup(&a, va))};
				l[2] = (label_t){STR("b"), str_c(arena_strdup(&a, vb))};
				l[3] = (label_t){STR("c"), str_c(arena_strdup(&a, vc))};
				ls[k] = (labels_t){l, 4};
			}
	int64_t *t = xcalloc((size_t)ns, sizeof *t);
	double *v = xcalloc((size_t)ns, sizeof *v);
	block_meta_t meta = {0};
	meta.has_thanos = true;
	meta_set_label(&meta, "cluster", "bench");
	meta.source = xstrdup("bench");
	err_t err = {0};
	for (long bi = 0; bi < nblocks; bi++) {
		int64_t mint = end - (nblocks - bi) * H2;
		block_writer_t *bw;
		if (block_writer_new(&bw, argv[1], NULL, &err))
			goto fail;
		for (long s = 0; s < nseries; s++) {
			double val = (double)(s * 7 % 1000);
			for (int i = 0; i < ns; i++) {
				t[i] = mint + i * step;
				val += (double)((s + i) % 5);
				v[i] = val;
			}
			if (block_writer_add_series(bw, &ls[s], t, v, (size_t)ns, &err)) {
				block_writer_abort(bw);
				goto fail;
			}
		}
		if (block_writer_finish(bw, &meta, NULL, &err))
			goto fail;
	}
	printf("blocks %ld series %ld\n", nblocks, nseries);
	meta_release(&meta);
	free(ls);
	free(t);
	free(v);
	arena_release(&a);
	return 0;
fail:
	fprintf(stderr, "storegw_blockgen: %s\n", err.msg);
	meta_release(&meta);
	free(ls);
	free(t);
	free(v);
	arena_release(&a);
	return 1;
}
